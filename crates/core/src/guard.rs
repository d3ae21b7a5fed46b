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

mod presets;
pub use presets::PRESETS;

/// `[guard]` in `settings.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(default, deny_unknown_fields)]
pub struct GuardSettings {
    /// The server Gatehouse guards, e.g. `http://127.0.0.1:11434`; it must listen on loopback
    /// only. Unset: Gatehouse serves its own ONNX models instead.
    pub upstream: Option<String>,
    /// Which route table applies: ollama, openai, oip, tfserving, roboflow, prefect or generic.
    pub preset: String,
    /// The command that starts the upstream, when Gatehouse launches it; `{port}` becomes the
    /// loopback port Gatehouse picked for it. `["{preset}"]`: the preset's own command (for
    /// Roboflow Inference, its HTTP app under the Python its `inference` command runs with).
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
        if self.launch == [PRESET_LAUNCH] && preset(&self.preset).is_some_and(|p| p.launch.is_empty()) {
            problems.push((
                "guard.launch",
                format!(
                    "{PRESET_LAUNCH} runs a preset's own command, and the `{}` preset has none",
                    self.preset
                ),
                "give the program and its arguments instead, e.g. [\"my-server\", \"--port\", \"{port}\"]"
                    .into(),
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
    /// What Gatehouse's own `/metrics` needs: `server.metrics_access` decides (by default open
    /// while Gatehouse listens on loopback only, a `metrics` key beyond it). For the status and
    /// documentation pages some servers leave open whatever else they protect.
    Observe,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Access::Public => f.write_str("public"),
            Access::Key(scope) => write!(f, "{scope}"),
            Access::Observe => f.write_str("observe"),
        }
    }
}

impl std::str::FromStr for Access {
    type Err = String;

    fn from_str(text: &str) -> Result<Access, String> {
        match text {
            "public" => return Ok(Access::Public),
            "observe" => return Ok(Access::Observe),
            _ => {}
        }
        text.parse::<Scope>()
            .map(Access::Key)
            .map_err(|_| format!("`{text}` is not public, observe, infer, workflows, metrics or admin"))
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
    /// Whether people open it in a browser (a web UI): its 401 then also offers Basic, so the
    /// browser asks for the key (any user name, the key as password) and sends it from then on.
    pub browser_login: bool,
    /// What the panel says of it, in one line.
    pub description: &'static str,
    /// The program whose presence on PATH says the server is installed.
    pub program: Option<&'static str>,
    /// The one command that installs it, for the person to run (Gatehouse installs nothing).
    pub install: Option<&'static str>,
    /// The command Gatehouse launches it with when none is given: `{port}` is its port,
    /// `{python}` the interpreter [`Preset::program`] runs under (for a Python server).
    pub launch: &'static [&'static str],
    /// Custom Python the server can run, switched by `workflows.allow_custom_python`.
    pub custom_python: Option<CustomPython>,
    /// The server's own security guide, control by control, and how Gatehouse applies it.
    pub guide: Option<Guide>,
}

/// A server's security guide as the checklist reports it: each control, the checklist items
/// that prove it live, and what Gatehouse does for it.
#[derive(Debug, Clone, Copy)]
pub struct Guide {
    pub title: &'static str,
    pub controls: &'static [Control],
}

#[derive(Debug, Clone, Copy)]
pub struct Control {
    /// The control in the guide's words (its setting, when it names one).
    pub control: &'static str,
    /// Items whose status is this control's; none: enforced by Gatehouse's code, nothing to probe.
    pub items: &'static [crate::checklist::ItemId],
    pub how: &'static str,
}

/// How a server runs code a request brings, and how Gatehouse keeps it from doing so while the
/// switch is off: the server's own flag, and a refusal at the gate in front of it.
#[derive(Debug, Clone, Copy)]
pub struct CustomPython {
    /// The server's environment variable, set to `True` or `False` from the switch.
    pub env: &'static str,
    /// Routes whose JSON bodies can carry code; refused while the switch is off when they do.
    pub routes: &'static [&'static str],
    /// A request carrying a harmless piece of code, for the checklist to prove the refusal.
    pub probe: (&'static str, &'static str),
}

/// Whether a JSON body carries code for the server to run: a dynamic block definition or a
/// `PythonCode` object anywhere in it. A body that is not JSON is an error, since the server may
/// read it another way than Gatehouse could check it.
pub fn carries_custom_python(body: &[u8]) -> Result<bool, String> {
    fn look(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(map) => map.iter().any(|(key, value)| {
                let definitions = key == "dynamic_blocks_definitions"
                    && !matches!(value, serde_json::Value::Null)
                    && value.as_array().is_none_or(|list| !list.is_empty());
                let code = key == "type" && value.as_str() == Some("PythonCode");
                definitions || code || look(value)
            }),
            serde_json::Value::Array(items) => items.iter().any(look),
            _ => false,
        }
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(false);
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON Gatehouse can read ({e})"))?;
    Ok(look(&value))
}

/// `guard.launch` as this one word: the preset's own launch command.
pub const PRESET_LAUNCH: &str = "{preset}";

/// The command to launch: `launch` as given, or for [`PRESET_LAUNCH`] the preset's own, with
/// `{python}` the interpreter of the preset's program on PATH. A server that is not installed
/// is an error saying how to install it.
pub fn resolve_launch(preset: &Preset, launch: &[String]) -> Result<Vec<String>, String> {
    if launch.len() != 1 || launch[0] != PRESET_LAUNCH {
        return Ok(launch.to_vec());
    }
    if preset.launch.is_empty() {
        return Err(format!(
            "the `{}` preset has no command of its own; give guard.launch the command that starts the server",
            preset.name
        ));
    }
    let program = preset.program.unwrap_or(preset.launch[0]);
    let found = crate::detect::find_program(program).ok_or_else(|| {
        format!(
            "{} is not installed: `{program}` is not on PATH{}",
            preset.servers,
            preset
                .install
                .map(|install| format!("; install it with `{install}`"))
                .unwrap_or_default()
        )
    })?;
    let python = crate::detect::interpreter_of(&found).unwrap_or_else(|| "python3".into());
    Ok(preset
        .launch
        .iter()
        .map(|word| word.replace("{python}", &python))
        .collect())
}

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
    fn roboflow_keeps_workflows_models_and_status_pages_apart() {
        let roboflow = table("roboflow");
        for (method, path, access) in [
            ("GET", "/healthz", "public"),
            ("GET", "/readiness", "public"),
            ("GET", "/info", "observe"),
            ("GET", "/metrics", "observe"),
            ("GET", "/openapi.json", "observe"),
            ("GET", "/docs", "observe"),
            ("POST", "/workflows/run", "workflows"),
            ("POST", "/workflows/validate", "workflows"),
            ("GET", "/workflows/blocks/describe", "workflows"),
            ("POST", "/infer/workflows/ws/flow", "workflows"),
            ("POST", "/ws/workflows/flow", "workflows"),
            ("POST", "/initialise_webrtc_worker", "workflows"),
            ("POST", "/infer/object_detection", "infer"),
            ("POST", "/infer/lmm/florence-2", "infer"),
            ("POST", "/clip/embed_text", "infer"),
            ("GET", "/model/registry", "infer"),
            ("POST", "/model/add", "admin"),
            ("POST", "/model/remove", "admin"),
            ("POST", "/model/clear", "admin"),
            ("GET", "/notebook/start", "admin"),
            ("GET", "/clear_cache", "admin"),
            ("GET", "/logs", "admin"),
            ("POST", "/my-dataset/3", "admin"),
            ("POST", "/info", "admin"),
        ] {
            assert_eq!(needs(&roboflow, method, path), access, "{method} {path}");
        }
    }

    #[test]
    fn prefect_needs_a_workflows_key_for_its_ui_and_api_and_admin_for_its_database() {
        let prefect = table("prefect");
        for (method, path, access) in [
            ("GET", "/api/health", "public"),
            ("POST", "/api/flow_runs/", "workflows"),
            ("GET", "/api/events/in", "workflows"),
            ("GET", "/", "workflows"),
            ("GET", "/runs/flow-run/abc", "workflows"),
            ("POST", "/api/admin/database/clear", "admin"),
            ("GET", "/api/admin/settings", "admin"),
            ("POST", "/somewhere", "admin"),
        ] {
            assert_eq!(needs(&prefect, method, path), access, "{method} {path}");
        }
    }

    #[test]
    fn custom_python_is_found_anywhere_in_a_workflow_and_unreadable_bodies_are_errors() {
        let probe: serde_json::Value = serde_json::from_str(presets::ROBOFLOW_PYTHON_PROBE).unwrap();
        assert!(carries_custom_python(presets::ROBOFLOW_PYTHON_PROBE.as_bytes()).unwrap());
        // Only the code, without the definitions list around it.
        let code = probe["specification"]["dynamic_blocks_definitions"][0]["code"].to_string();
        assert!(carries_custom_python(format!(r#"{{"x":[{code}]}}"#).as_bytes()).unwrap());
        assert!(
            carries_custom_python(br#"{"specification":{"dynamic_blocks_definitions":{"a":1}}}"#).unwrap()
        );
        for harmless in [
            r#"{"specification":{"version":"1.0","steps":[],"dynamic_blocks_definitions":[]}}"#,
            r#"{"specification":{"dynamic_blocks_definitions":null},"inputs":{"type":"text"}}"#,
            r#"{"inputs":{"note":"PythonCode"}}"#,
            "",
        ] {
            assert!(!carries_custom_python(harmless.as_bytes()).unwrap(), "{harmless}");
        }
        for unreadable in ["{\"a\": NaN}", "specification=x", "\u{feff}{}"] {
            assert!(
                carries_custom_python(unreadable.as_bytes()).is_err(),
                "{unreadable}"
            );
        }
        let utf16: Vec<u8> = "{}".encode_utf16().flat_map(u16::to_le_bytes).collect();
        assert!(carries_custom_python(&utf16).is_err());
    }

    #[test]
    fn a_preset_launch_names_what_to_install_when_the_server_is_missing() {
        let given = vec!["ollama".to_string(), "serve".to_string()];
        assert_eq!(resolve_launch(preset("ollama").unwrap(), &given).unwrap(), given);
        let own = vec![PRESET_LAUNCH.to_string()];
        let roboflow = Preset {
            program: Some("gatehouse-no-such-program"),
            ..*preset("roboflow").unwrap()
        };
        let missing = resolve_launch(&roboflow, &own).unwrap_err();
        assert!(
            missing.contains("not on PATH") && missing.contains("pip install"),
            "{missing}"
        );
        assert!(
            resolve_launch(preset("generic").unwrap(), &own)
                .unwrap_err()
                .contains("no command")
        );
        let settings = GuardSettings {
            launch: own.clone(),
            ..GuardSettings::default()
        };
        assert!(
            settings
                .problems()
                .iter()
                .any(|(field, ..)| *field == "guard.launch"),
            "{:?}",
            settings.problems()
        );
        let settings = GuardSettings {
            preset: "roboflow".into(),
            launch: own,
            ..GuardSettings::default()
        };
        assert!(settings.problems().is_empty(), "{:?}", settings.problems());
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
