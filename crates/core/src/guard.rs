//! Guard mode's data: the server Gatehouse stands in front of, and presets — for each kind of
//! inference server, which of its routes need which scope. A preset is a table, not code, so
//! the proxy, the checklist and the panel read the same answer to "what may this key reach?".
//!
//! Routes no rule names need `admin` (or the preset's stated default): a route added by a new
//! version of the upstream is closed until someone opens it on purpose.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::keys::Scope;

/// `[guard]` in `settings.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct GuardSettings {
    /// The server Gatehouse guards, e.g. `http://127.0.0.1:11434`; it must listen on loopback
    /// only. Unset: Gatehouse serves its own ONNX models instead.
    pub upstream: Option<String>,
    /// Which route table applies: ollama, openai, oip, tfserving or generic.
    pub preset: String,
    /// The command that starts the upstream, when Gatehouse launches it; `{port}` becomes the
    /// loopback port Gatehouse picked for it.
    pub launch: Vec<String>,
    /// Environment for the launched upstream, after the preset's (`{port}` as above).
    pub launch_env: BTreeMap<String, String>,
    /// Route rules ahead of the preset's: a path pattern (`*` one segment, `**` the rest) →
    /// `public` or a scope. The longest pattern is tried first.
    pub route_scopes: BTreeMap<String, String>,
}

impl Default for GuardSettings {
    fn default() -> Self {
        GuardSettings {
            upstream: None,
            preset: "generic".into(),
            launch: Vec::new(),
            launch_env: BTreeMap::new(),
            route_scopes: BTreeMap::new(),
        }
    }
}

impl GuardSettings {
    /// Whether Gatehouse guards another server rather than serving its own models.
    pub fn active(&self) -> bool {
        self.upstream.is_some() || !self.launch.is_empty()
    }

    /// Every problem with these settings: (field, what is wrong, how to fix it).
    pub fn problems(&self) -> Vec<(&'static str, String, String)> {
        let mut problems = Vec::new();
        if let Some(upstream) = &self.upstream
            && let Err(message) = Upstream::parse(upstream)
        {
            problems.push((
                "guard.upstream",
                message,
                format!(
                    "give the address the server listens on, on this computer only, e.g. http://127.0.0.1:{}",
                    preset(&self.preset).map_or(8000, |p| p.default_port)
                ),
            ));
        }
        if let Err(message) = RouteTable::new(self) {
            let field = if preset(&self.preset).is_none() {
                "guard.preset"
            } else {
                "guard.route_scopes"
            };
            problems.push((
                field,
                message,
                "see `gatehouse guard --help` for the presets and scopes".into(),
            ));
        }
        if self
            .launch
            .first()
            .is_some_and(|program| program.trim().is_empty())
        {
            problems.push((
                "guard.launch",
                "the command is empty".into(),
                "give the program and its arguments, e.g. [\"ollama\", \"serve\"]".into(),
            ));
        }
        problems
    }
}

/// Where the guarded server listens: plain HTTP on a loopback address. Gatehouse terminates TLS
/// for it; a server reachable beyond this computer could be called around the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    pub address: std::net::SocketAddr,
}

impl Upstream {
    pub fn parse(text: &str) -> Result<Upstream, String> {
        let rest = text.strip_prefix("http://").ok_or_else(|| {
            format!("`{text}` does not start with http://; the guarded server speaks plain HTTP on loopback and Gatehouse adds TLS in front")
        })?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') || authority.contains('@') || authority.contains('?') {
            return Err(format!(
                "`{text}` has a path or credentials; give scheme, address and port only"
            ));
        }
        let address = authority
            .replace("localhost:", "127.0.0.1:")
            .parse::<std::net::SocketAddr>()
            .map_err(|_| format!("`{text}` is not http://ADDRESS:PORT with an IP address and a port"))?;
        if !address.ip().is_loopback() {
            return Err(format!(
                "`{text}` is not on loopback: a server listening on {} can be reached without going through Gatehouse",
                address.ip()
            ));
        }
        if address.port() == 0 {
            return Err(format!("`{text}` has port 0"));
        }
        Ok(Upstream { address })
    }
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone who can connect: health routes only.
    Public,
    /// A key with this scope.
    Key(Scope),
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::Key(scope) => write!(f, "{scope}"),
        }
    }
}

impl std::str::FromStr for Access {
    type Err = String;

    fn from_str(text: &str) -> Result<Access, String> {
        if text == "public" {
            return Ok(Access::Public);
        }
        text.parse::<Scope>()
            .map(Access::Key)
            .map_err(|_| format!("`{text}` is not public, infer, workflows, metrics or admin"))
    }
}

/// One row of a route table.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Methods the rule covers; empty covers every method.
    pub methods: &'static [&'static str],
    pub pattern: &'static str,
    pub access: Access,
}

const fn rule(methods: &'static [&'static str], pattern: &'static str, access: Access) -> Rule {
    Rule {
        methods,
        pattern,
        access,
    }
}

const ANY: &[&str] = &[];
const READ: &[&str] = &["GET", "HEAD"];
const INFER: Access = Access::Key(Scope::Infer);
const ADMIN: Access = Access::Key(Scope::Admin);

/// What Gatehouse knows about one kind of inference server.
#[derive(Debug)]
pub struct Preset {
    pub name: &'static str,
    /// The servers it is for, in words.
    pub servers: &'static str,
    pub default_port: u16,
    /// The route that answers 2xx once the server can serve; none: an accepted connection.
    pub health: Option<&'static str>,
    /// Environment a launched upstream gets (`{port}` replaced), so it listens on loopback only
    /// and trusts no browser origin of its own.
    pub launch_env: &'static [(&'static str, &'static str)],
    pub rules: &'static [Rule],
    /// What a route no rule names needs.
    pub otherwise: Access,
    /// A route the checklist calls with an inference key to prove admin routes refuse it.
    pub admin_probe: Option<(&'static str, &'static str)>,
}

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
    },
];

/// The preset called `name`.
pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// The names of every preset, for messages.
pub fn preset_names() -> Vec<&'static str> {
    PRESETS.iter().map(|p| p.name).collect()
}

/// A preset with the person's own rules in front of it: what the guard consults per request.
#[derive(Debug, Clone)]
pub struct RouteTable {
    pub preset: &'static Preset,
    /// The settings' `route_scopes`, longest pattern first.
    own: Vec<(String, Access)>,
}

impl RouteTable {
    /// The table for these settings; an unknown preset or scope is an error naming it.
    pub fn new(settings: &GuardSettings) -> Result<RouteTable, String> {
        let preset = preset(&settings.preset).ok_or_else(|| {
            format!(
                "guard.preset `{}` is not a preset; use one of: {}",
                settings.preset,
                preset_names().join(", ")
            )
        })?;
        let mut own = Vec::new();
        for (pattern, access) in &settings.route_scopes {
            if !pattern.starts_with('/') {
                return Err(format!(
                    "guard.route_scopes: `{pattern}` is not a path pattern; start it with /, e.g. \"/api/tags\""
                ));
            }
            let access = access
                .parse::<Access>()
                .map_err(|e| format!("guard.route_scopes.\"{pattern}\": {e}"))?;
            own.push((pattern.clone(), access));
        }
        own.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        Ok(RouteTable { preset, own })
    }

    /// What `method path` needs.
    pub fn access(&self, method: &str, path: &str) -> Access {
        if let Some((_, access)) = self.own.iter().find(|(pattern, _)| matches(pattern, path)) {
            return *access;
        }
        self.preset
            .rules
            .iter()
            .find(|rule| {
                (rule.methods.is_empty() || rule.methods.contains(&method)) && matches(rule.pattern, path)
            })
            .map_or(self.preset.otherwise, |rule| rule.access)
    }
}

/// Whether `path` matches `pattern`: `*` is any text within one segment, `**` any text at all.
/// Paths are compared as sent; the guard refuses paths with `..` or `//` before asking.
pub fn matches(pattern: &str, path: &str) -> bool {
    fn go(pattern: &[u8], path: &[u8]) -> bool {
        match pattern {
            [] => path.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=path.len()).any(|skip| go(rest, &path[skip..])),
            [b'*', rest @ ..] => {
                let segment = path.iter().position(|&c| c == b'/').unwrap_or(path.len());
                (0..=segment).any(|skip| go(rest, &path[skip..]))
            }
            [c, rest @ ..] => path.first() == Some(c) && go(rest, &path[1..]),
        }
    }
    go(pattern.as_bytes(), path.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(name: &str) -> RouteTable {
        RouteTable::new(&GuardSettings {
            preset: name.into(),
            ..GuardSettings::default()
        })
        .unwrap()
    }

    fn needs(table: &RouteTable, method: &str, path: &str) -> String {
        table.access(method, path).to_string()
    }

    #[test]
    fn patterns_match_within_a_segment_or_across_them() {
        assert!(matches("/v1/**", "/v1/chat/completions"));
        assert!(matches("/v1/**", "/v1/"));
        assert!(!matches("/v1/**", "/v10/x"));
        assert!(matches("/v2/models/*/infer", "/v2/models/magika/infer"));
        assert!(!matches("/v2/models/*/infer", "/v2/models/a/b/infer"));
        assert!(!matches("/v2/models/*/infer", "/v2/models/magika/infer/x"));
        assert!(matches("/v1/models/*:predict", "/v1/models/half:predict"));
        assert!(!matches("/v1/models/*:predict", "/v1/models/half:regress"));
        assert!(!matches("/", "/api/pull"));
    }

    #[test]
    fn an_ollama_inference_key_reaches_generation_and_never_the_model_store() {
        let ollama = table("ollama");
        for (method, path) in [
            ("POST", "/api/generate"),
            ("POST", "/api/chat"),
            ("POST", "/api/embed"),
            ("POST", "/api/embeddings"),
            ("POST", "/api/show"),
            ("GET", "/api/tags"),
            ("GET", "/api/ps"),
            ("POST", "/v1/chat/completions"),
            ("GET", "/v1/models"),
        ] {
            assert_eq!(needs(&ollama, method, path), "infer", "{method} {path}");
        }
        for (method, path) in [
            ("POST", "/api/pull"),
            ("POST", "/api/push"),
            ("POST", "/api/create"),
            ("DELETE", "/api/delete"),
            ("POST", "/api/copy"),
            ("POST", "/api/blobs/sha256:abc"),
            ("HEAD", "/api/blobs/sha256:abc"),
            ("POST", "/api/me"),
            ("POST", "/api/signout"),
            ("POST", "/api/experimental/web_fetch"),
            // A method the table does not name for a read route falls through to admin.
            ("DELETE", "/api/tags"),
            ("POST", "/"),
            ("GET", "/api/something-new"),
        ] {
            assert_eq!(needs(&ollama, method, path), "admin", "{method} {path}");
        }
        assert_eq!(needs(&ollama, "GET", "/"), "public");
        assert_eq!(needs(&ollama, "HEAD", "/"), "public");
    }

    #[test]
    fn openai_servers_open_v1_to_inference_keys_and_nothing_else() {
        let openai = table("openai");
        assert_eq!(needs(&openai, "POST", "/v1/chat/completions"), "infer");
        assert_eq!(needs(&openai, "POST", "/v1/embeddings"), "infer");
        assert_eq!(needs(&openai, "GET", "/health"), "public");
        for path in ["/slots", "/props", "/completion", "/tokenize", "/metrics"] {
            assert_eq!(needs(&openai, "POST", path), "admin", "{path}");
        }
    }

    #[test]
    fn the_open_inference_protocol_keeps_repository_changes_for_admin() {
        let oip = table("oip");
        for (method, path) in [
            ("GET", "/v2"),
            ("GET", "/v2/models/magika"),
            ("GET", "/v2/models/magika/ready"),
            ("POST", "/v2/models/magika/infer"),
            ("POST", "/v2/models/magika/versions/1/infer"),
            ("POST", "/v2/models/llm/generate_stream"),
            ("POST", "/v2/repository/index"),
        ] {
            assert_eq!(needs(&oip, method, path), "infer", "{method} {path}");
        }
        for (method, path) in [
            ("POST", "/v2/repository/models/magika/load"),
            ("POST", "/v2/repository/models/magika/unload"),
            ("POST", "/v2/models/magika/trace/setting"),
            ("POST", "/v2/logging"),
            ("POST", "/v2/systemsharedmemory/region/r/register"),
            ("POST", "/v2/cudasharedmemory/region/r/register"),
            ("POST", "/v2/models/magika"),
        ] {
            assert_eq!(needs(&oip, method, path), "admin", "{method} {path}");
        }
        assert_eq!(needs(&oip, "GET", "/v2/health/ready"), "public");
        assert_eq!(needs(&oip, "GET", "/v2/health/live"), "public");
    }

    #[test]
    fn tf_serving_predicts_with_an_inference_key() {
        let tf = table("tfserving");
        assert_eq!(needs(&tf, "POST", "/v1/models/half:predict"), "infer");
        assert_eq!(needs(&tf, "POST", "/v1/models/half/versions/2:classify"), "infer");
        assert_eq!(needs(&tf, "GET", "/v1/models/half/metadata"), "infer");
        assert_eq!(needs(&tf, "GET", "/monitoring/prometheus/metrics"), "admin");
        assert_eq!(needs(&tf, "POST", "/v1/models/half:reload"), "admin");
    }

    #[test]
    fn generic_needs_an_inference_key_everywhere_and_own_rules_come_first() {
        let mut settings = GuardSettings::default();
        assert_eq!(needs(&RouteTable::new(&settings).unwrap(), "GET", "/x"), "infer");
        settings.route_scopes.insert("/status".into(), "public".into());
        settings.route_scopes.insert("/admin/**".into(), "admin".into());
        settings
            .route_scopes
            .insert("/admin/reports/**".into(), "metrics".into());
        let table = RouteTable::new(&settings).unwrap();
        assert_eq!(needs(&table, "GET", "/status"), "public");
        assert_eq!(needs(&table, "GET", "/admin/users"), "admin");
        assert_eq!(needs(&table, "GET", "/admin/reports/today"), "metrics");
        assert_eq!(needs(&table, "POST", "/predict"), "infer");
    }

    #[test]
    fn only_a_plain_loopback_upstream_is_accepted() {
        assert_eq!(
            Upstream::parse("http://127.0.0.1:11434")
                .unwrap()
                .address
                .to_string(),
            "127.0.0.1:11434"
        );
        assert_eq!(
            Upstream::parse("http://localhost:8080/")
                .unwrap()
                .address
                .to_string(),
            "127.0.0.1:8080"
        );
        assert!(Upstream::parse("http://[::1]:8000").is_ok());
        for (text, says) in [
            ("http://192.168.1.20:11434", "not on loopback"),
            ("http://0.0.0.0:11434", "not on loopback"),
            ("https://127.0.0.1:8000", "http://"),
            ("127.0.0.1:8000", "http://"),
            ("http://127.0.0.1:8000/v1", "path"),
            ("http://user:pw@127.0.0.1:8000", "credentials"),
            ("http://127.0.0.1", "ADDRESS:PORT"),
        ] {
            let error = Upstream::parse(text).unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_wrong_preset_or_scope_is_named() {
        let wrong = RouteTable::new(&GuardSettings {
            preset: "olama".into(),
            ..GuardSettings::default()
        })
        .unwrap_err();
        assert!(wrong.contains("olama") && wrong.contains("ollama"), "{wrong}");
        let mut settings = GuardSettings::default();
        settings.route_scopes.insert("/x".into(), "everyone".into());
        let wrong = RouteTable::new(&settings).unwrap_err();
        assert!(wrong.contains("everyone") && wrong.contains("public"), "{wrong}");
        let mut settings = GuardSettings::default();
        settings.route_scopes.insert("x".into(), "public".into());
        assert!(
            RouteTable::new(&settings)
                .unwrap_err()
                .contains("start it with /")
        );
    }
}
