//! The presets: for each kind of inference server, its route table, how it is launched, its
//! health route, and its own security guide. Data only; `super` reads it.

use super::{Access, Control, CustomPython, Guide, Preset, Rule};
use crate::checklist::ItemId;
use crate::keys::Scope;

const fn rule(methods: &'static [&'static str], pattern: &'static str, access: Access) -> Rule {
    Rule {
        methods,
        pattern,
        access,
    }
}

const ANY: &[&str] = &[];
const READ: &[&str] = &["GET", "HEAD"];
const WRITE: &[&str] = &["POST"];
const INFER: Access = Access::Key(Scope::Infer);
const WORKFLOWS: Access = Access::Key(Scope::Workflows);
const ADMIN: Access = Access::Key(Scope::Admin);
const OBSERVE: Access = Access::Observe;

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "ollama",
        servers: "Ollama",
        default_port: 11434,
        health: Some("/"),
        launch_env: &[("OLLAMA_HOST", "127.0.0.1:{port}"), ("OLLAMA_ORIGINS", "")],
        // Pulling, pushing, creating, copying and deleting models, blobs and sign-in change the
        // server or reach the internet: admin. `/api/create` and `/api/push` are where a crafted
        // model file could read the server's memory out to a registry.
        rules: &[
            rule(READ, "/", Access::Public),
            rule(ANY, "/api/generate", INFER),
            rule(ANY, "/api/chat", INFER),
            rule(ANY, "/api/embed", INFER),
            rule(ANY, "/api/embeddings", INFER),
            rule(ANY, "/api/show", INFER),
            rule(READ, "/api/tags", INFER),
            rule(READ, "/api/ps", INFER),
            rule(READ, "/api/version", INFER),
            rule(ANY, "/v1/**", INFER),
        ],
        otherwise: ADMIN,
        admin_probe: Some(("POST", "/api/pull")),
        browser_login: false,
        description: "runs LLMs; has no keys or TLS of its own",
        program: Some("ollama"),
        install: Some("curl -fsSL https://ollama.com/install.sh | sh"),
        launch: &["ollama", "serve"],
        custom_python: None,
        guide: None,
    },
    Preset {
        name: "openai",
        servers: "llama.cpp's llama-server, vLLM, LM Studio, LocalAI",
        default_port: 8080,
        health: Some("/health"),
        launch_env: &[],
        rules: &[rule(READ, "/health", Access::Public), rule(ANY, "/v1/**", INFER)],
        otherwise: ADMIN,
        admin_probe: Some(("GET", "/slots")),
        browser_login: false,
        description: "OpenAI-compatible servers; their key, if any, covers only some routes",
        program: Some("llama-server"),
        install: None,
        launch: &[
            "llama-server",
            "-m",
            "model.gguf",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ],
        custom_python: None,
        guide: None,
    },
    Preset {
        name: "oip",
        servers: "Triton, KServe, Seldon MLServer, OpenVINO Model Server (Open Inference Protocol)",
        default_port: 8000,
        health: Some("/v2/health/ready"),
        launch_env: &[("MLSERVER_HOST", "127.0.0.1"), ("MLSERVER_HTTP_PORT", "{port}")],
        // Loading and unloading models, tracing, logging and shared-memory registration change
        // the server: admin, by falling through.
        rules: &[
            rule(READ, "/v2/health/live", Access::Public),
            rule(READ, "/v2/health/ready", Access::Public),
            rule(READ, "/v2", INFER),
            rule(READ, "/v2/models/*", INFER),
            rule(READ, "/v2/models/*/ready", INFER),
            rule(READ, "/v2/models/*/config", INFER),
            rule(READ, "/v2/models/*/stats", INFER),
            rule(READ, "/v2/models/stats", INFER),
            rule(ANY, "/v2/models/*/infer", INFER),
            rule(ANY, "/v2/models/*/infer_stream", INFER),
            rule(ANY, "/v2/models/*/generate", INFER),
            rule(ANY, "/v2/models/*/generate_stream", INFER),
            rule(READ, "/v2/models/*/versions/*", INFER),
            rule(READ, "/v2/models/*/versions/*/ready", INFER),
            rule(ANY, "/v2/models/*/versions/*/infer", INFER),
            rule(ANY, "/v2/models/*/versions/*/infer_stream", INFER),
            rule(ANY, "/v2/models/*/versions/*/generate", INFER),
            rule(ANY, "/v2/models/*/versions/*/generate_stream", INFER),
            rule(&["POST"], "/v2/repository/index", INFER),
        ],
        otherwise: ADMIN,
        admin_probe: Some(("POST", "/v2/repository/models/gatehouse-probe/unload")),
        browser_login: false,
        description: "the Open Inference Protocol; no keys of their own",
        program: Some("mlserver"),
        install: Some("pip install mlserver"),
        launch: &["mlserver", "start", "."],
        custom_python: None,
        guide: None,
    },
    Preset {
        name: "tfserving",
        servers: "TensorFlow Serving",
        default_port: 8501,
        health: None,
        launch_env: &[],
        rules: &[
            rule(ANY, "/v1/models/*:predict", INFER),
            rule(ANY, "/v1/models/*:classify", INFER),
            rule(ANY, "/v1/models/*:regress", INFER),
            rule(ANY, "/v1/models/*/versions/*:predict", INFER),
            rule(ANY, "/v1/models/*/versions/*:classify", INFER),
            rule(ANY, "/v1/models/*/versions/*:regress", INFER),
            rule(ANY, "/v1/models/*/labels/*:predict", INFER),
            rule(READ, "/v1/models/*", INFER),
            rule(READ, "/v1/models/*/metadata", INFER),
            rule(READ, "/v1/models/*/versions/*", INFER),
            rule(READ, "/v1/models/*/versions/*/metadata", INFER),
        ],
        otherwise: ADMIN,
        admin_probe: Some(("GET", "/monitoring/prometheus/metrics")),
        browser_login: false,
        description: "TensorFlow models over REST; no keys of its own",
        program: Some("tensorflow_model_server"),
        install: None,
        launch: &[
            "tensorflow_model_server",
            "--rest_api_port={port}",
            "--model_base_path=/models/m",
        ],
        custom_python: None,
        guide: None,
    },
    Preset {
        name: "roboflow",
        servers: "Roboflow Inference",
        default_port: 9001,
        health: Some("/healthz"),
        launch_env: &[
            ("HOST", "127.0.0.1"),
            ("PORT", "{port}"),
            ("ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS", "{custom_python}"),
            // Modal would run the code elsewhere with the person's Roboflow account; the switch
            // is about this computer, and off means off.
            ("WORKFLOWS_CUSTOM_PYTHON_EXECUTION_MODE", "local"),
        ],
        // Roboflow's own `api_key` (query or body) is the person's Roboflow account key for
        // fetching models: the guard takes its key from headers only and passes that one on.
        rules: &[
            rule(READ, "/healthz", Access::Public),
            rule(READ, "/readiness", Access::Public),
            // Open in Roboflow even with its workspace check on; they describe the server.
            rule(READ, "/info", OBSERVE),
            rule(READ, "/metrics", OBSERVE),
            rule(READ, "/device/stats", OBSERVE),
            rule(READ, "/docs", OBSERVE),
            rule(READ, "/docs/oauth2-redirect", OBSERVE),
            rule(READ, "/redoc", OBSERVE),
            rule(READ, "/openapi.json", OBSERVE),
            rule(READ, "/model/registry", INFER),
            rule(ANY, "/workflows/**", WORKFLOWS),
            rule(WRITE, "/infer/workflows/**", WORKFLOWS),
            rule(WRITE, "/*/workflows/**", WORKFLOWS),
            rule(WRITE, "/initialise_webrtc_worker", WORKFLOWS),
            rule(WRITE, "/webrtc/**", WORKFLOWS),
            rule(WRITE, "/infer/**", INFER),
            rule(WRITE, "/clip/**", INFER),
            rule(WRITE, "/perception_encoder/**", INFER),
            rule(WRITE, "/grounding_dino/**", INFER),
            rule(WRITE, "/yolo_world/**", INFER),
            rule(WRITE, "/doctr/**", INFER),
            rule(WRITE, "/easy_ocr/**", INFER),
            rule(WRITE, "/sam/**", INFER),
            rule(WRITE, "/sam2/**", INFER),
            rule(WRITE, "/sam3/**", INFER),
            rule(WRITE, "/gaze/**", INFER),
            rule(WRITE, "/ocr/**", INFER),
            // Adding, removing and clearing models, the cache, the notebook, the logs and the
            // legacy per-dataset routes fall through to admin.
        ],
        otherwise: ADMIN,
        admin_probe: Some(("POST", "/model/clear")),
        browser_login: false,
        description: "Roboflow's vision server; runs Workflows, which may carry custom Python",
        program: Some("inference"),
        install: Some("pip install \"inference[http]\""),
        launch: &["{python}", "-c", ROBOFLOW_APP],
        custom_python: Some(CustomPython {
            env: "ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS",
            routes: &[
                "/workflows/**",
                "/infer/workflows/**",
                "/*/workflows/**",
                "/initialise_webrtc_worker",
            ],
            probe: ("/workflows/run", ROBOFLOW_PYTHON_PROBE),
        }),
        guide: Some(Guide {
            title: "Roboflow's recommended baseline for a self-hosted server",
            controls: &[
                Control {
                    control: "1. Restrict network access",
                    items: &[ItemId::NetworkExposure, ItemId::GuardUpstreamLoopback],
                    how: "Roboflow Inference listens on loopback only (HOST=127.0.0.1); Gatehouse is the one way in",
                },
                Control {
                    control: "2. Enforce authentication",
                    items: &[ItemId::AuthRequired],
                    how: "Gatehouse's keys with scopes in front of every inference and Workflow route; Roboflow's own api_key passes through for fetching models",
                },
                Control {
                    control: "3. Enable TLS when the network requires it",
                    items: &[ItemId::TransportTls],
                    how: "Gatehouse terminates TLS with the local CA or an imported certificate",
                },
                Control {
                    control: "4. Disable custom Python execution in Workflows",
                    items: &[ItemId::GuardCustomPython],
                    how: "ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS follows the switch, and workflows carrying code are refused at the gate while it is off",
                },
            ],
        }),
    },
    Preset {
        name: "prefect",
        servers: "a Prefect server",
        default_port: 4200,
        health: Some("/api/health"),
        launch_env: &[
            ("PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
            // The UI's browser code calls the API where the person opened the UI: through
            // Gatehouse, never around it.
            ("PREFECT_UI_API_URL", "{public_url}/api"),
            ("PREFECT_SERVER_API_HOST", "127.0.0.1"),
            ("PREFECT_SERVER_API_PORT", "{port}"),
            // Origins are Gatehouse's allowlist, checked before a request gets here.
            ("PREFECT_SERVER_CORS_ALLOWED_ORIGINS", ""),
        ],
        // Everything Prefect serves, UI included, shows or runs flows: a `workflows` key, sent as
        // a Bearer token or as the password of the Basic form Prefect's client sends from
        // PREFECT_API_AUTH_STRING.
        rules: &[
            rule(READ, "/api/health", Access::Public),
            rule(READ, "/api/ready", Access::Public),
            rule(ANY, "/api/admin/**", ADMIN),
            rule(ANY, "/api/**", WORKFLOWS),
            rule(READ, "/**", WORKFLOWS),
        ],
        otherwise: ADMIN,
        admin_probe: Some(("POST", "/api/admin/database/clear")),
        browser_login: true,
        description: "orchestrates Python workflows; its UI and API have no accounts of their own",
        program: Some("prefect"),
        install: Some("pip install prefect"),
        launch: &[
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            "{port}",
        ],
        custom_python: None,
        guide: Some(Guide {
            title: "Prefect's settings for securing a self-hosted server",
            controls: &[
                Control {
                    control: "server.api.auth_string (Basic authentication)",
                    items: &[ItemId::AuthRequired],
                    how: "Gatehouse's keys instead: Bearer, X-API-Key, or the password of PREFECT_API_AUTH_STRING (user:KEY); Prefect itself needs no auth string",
                },
                Control {
                    control: "server.api.csrf_protection_enabled",
                    items: &[],
                    how: "Gatehouse refuses a Basic-authenticated request that changes something unless it is JSON or comes from Gatehouse's own origin",
                },
                Control {
                    control: "server.api.cors_allowed_origins",
                    items: &[ItemId::CorsPolicy],
                    how: "Gatehouse's cors.allowed_origins; Prefect's own list is left empty",
                },
                Control {
                    control: "ui.api_url behind a reverse proxy",
                    items: &[],
                    how: "set to Gatehouse's address when Gatehouse launches Prefect, so the UI calls the API through Gatehouse",
                },
                Control {
                    control: "TLS in front of the server",
                    items: &[ItemId::TransportTls, ItemId::GuardUpstreamLoopback],
                    how: "Gatehouse terminates TLS; Prefect listens on loopback only",
                },
            ],
        }),
    },
    Preset {
        name: "generic",
        servers: "any HTTP server",
        default_port: 8000,
        health: None,
        launch_env: &[],
        rules: &[],
        otherwise: INFER,
        admin_probe: None,
        browser_login: false,
        description: "every route needs an `infer` key unless guard.route_scopes says otherwise",
        program: None,
        install: None,
        launch: &[],
        custom_python: None,
        guide: None,
    },
];

/// Roboflow Inference's HTTP app, started the way its container's entry point starts it (the
/// `inference` package ships the app, not the entry point), from a scratch directory holding the
/// two static folders the app mounts; the directory goes when the server stops. No access log:
/// Gatehouse's audit log has every request, and request lines can carry the person's Roboflow
/// `api_key`.
const ROBOFLOW_APP: &str = "\
import os, tempfile, uvicorn
with tempfile.TemporaryDirectory(prefix='gatehouse-roboflow-') as scratch:
    os.chdir(scratch)
    for folder in ('inference/landing/out/static', 'inference/landing/out/_next/static'):
        os.makedirs(folder)
    from inference.core.interfaces.http.http_api import HttpInterface
    from inference.core.managers.base import ModelManager
    from inference.core.registries.roboflow import RoboflowModelRegistry
    from inference.models.utils import ROBOFLOW_MODEL_TYPES
    app = HttpInterface(ModelManager(RoboflowModelRegistry(ROBOFLOW_MODEL_TYPES))).app
    uvicorn.run(app, host=os.environ['HOST'], port=int(os.environ['PORT']), access_log=False)
";

/// A workflow whose one step is a custom Python block that returns 42: what the checklist
/// submits to prove the gate refuses code while the switch is off.
pub(super) const ROBOFLOW_PYTHON_PROBE: &str = r#"{"specification":{"version":"1.0","inputs":[],"dynamic_blocks_definitions":[{"type":"DynamicBlockDefinition","manifest":{"type":"ManifestDescription","block_type":"GatehouseProbe","inputs":{},"outputs":{"ok":{"type":"DynamicOutputDefinition","kind":[]}}},"code":{"type":"PythonCode","run_function_code":"def run(self) -> BlockResult:\n    return {'ok': 6 * 7}\n"}}],"steps":[{"type":"GatehouseProbe","name":"probe"}],"outputs":[{"type":"JsonField","name":"ok","selector":"$steps.probe.ok"}]},"inputs":{}}"#;
