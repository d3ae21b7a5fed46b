//! `gatehouse export kubernetes`: the posture this computer has (keys, TLS, mutual TLS, who may
//! connect, the models) written as Kubernetes and KServe manifests, for when a model moves to a
//! cluster.
//!
//! Each model becomes a KServe `InferenceService` served by Gatehouse itself, through a
//! `ServingRuntime` whose container is `gatehouse serve`: the same perimeter (keys by hash, TLS,
//! limits, audit) runs in the cluster, with no proxy to get around. NetworkPolicies deny by default
//! and admit to the model pods only the clients that the person's "this computer only" / "my
//! network" choice maps to. The output holds no private key and no API key, only key hashes, so the
//! directory can be committed; the server's TLS key goes from its 0600 file into the cluster by a
//! `kubectl` command the export writes, or cert-manager makes one in the cluster.

mod objects;
pub mod yaml;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::keys::{KeyFile, KeyState, Storage};
use crate::settings::Settings;
use objects::*;

/// The first line of every file the export writes; a later export recognises its own files by it.
pub const HEADER: &str = "# Written by `gatehouse export kubernetes`";
/// The port `gatehouse serve` listens on in the pod (KServe's HTTP data port).
const POD_PORT: u16 = 8080;
const RUNTIME: &str = "gatehouse-onnx";
const SERVICE_ACCOUNT: &str = "gatehouse-model";
const CLIENT_LABEL: &str = "gatehouse.dev/client";
const HOME: &str = "/var/lib/gatehouse";
const TLS_DIR: &str = "/etc/gatehouse/tls";
const CLIENT_CA_DIR: &str = "/etc/gatehouse/client-ca";
const MIB: u64 = 1024 * 1024;

/// What the person chose on the command line.
#[derive(Debug, Clone)]
pub struct KubernetesOptions {
    pub namespace: String,
    pub image: String,
    /// Namespaces whose pods may call the models, when the settings say "my network".
    pub allow_namespaces: Vec<String>,
    /// Pod labels (`key=value`, any namespace) whose pods may call the models.
    pub allow_labels: Vec<(String, String)>,
    /// A cert-manager `ClusterIssuer` to make the server certificate in the cluster.
    pub cert_manager_issuer: Option<String>,
    /// Where each model's files will be: `<prefix>/<model>` holds `<model>/<version>/model.onnx`.
    pub storage_uri_prefix: String,
}

/// What this computer has, read by the caller.
#[derive(Debug, Clone)]
pub struct Posture {
    pub settings: Settings,
    pub keys: KeyFile,
    pub models: Vec<Model>,
    /// The local CA's certificate (public), for clients to trust.
    pub ca_pem: Option<String>,
    /// The certificates client certificates must chain to, when mutual TLS is on.
    pub client_ca_pem: Option<String>,
    /// The server certificate and key files the TLS Secret is made from (without cert-manager).
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub now: OffsetDateTime,
}

/// One model of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub name: String,
    pub versions: Vec<u64>,
    /// Bytes of all its `model.onnx` files together.
    pub bytes: u64,
}

/// One file of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportFile {
    pub name: String,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("`{given}` cannot name a Kubernetes {what}: {why}; fix: {fix}")]
    InvalidName {
        what: &'static str,
        given: String,
        why: &'static str,
        fix: &'static str,
    },
    #[error(
        "{dir} holds no model (`<name>/<version>/model.onnx`); fix: give --models the repository, or add a model first"
    )]
    NoModels { dir: String },
    #[error("no model named `{name}` in {dir}; fix: pick one of: {known}")]
    UnknownModel {
        name: String,
        dir: String,
        known: String,
    },
    #[error("could not {action} {path}: {source}; fix: check that the path exists and is readable")]
    Io {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the settings the cluster would get are not valid: {0}")]
    Settings(#[from] crate::settings::SettingsError),
    #[error(
        "{path} exists and was not written by an earlier export; fix: give --out a new or empty directory, or remove that file"
    )]
    Foreign { path: String },
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ExportError {
    let path = crate::paths::display(path);
    move |source| ExportError::Io { action, path, source }
}

/// Reads the model repository: every `<name>/<version>/model.onnx`, names sorted.
pub fn scan_models(dir: &Path) -> Result<Vec<Model>, ExportError> {
    let mut models = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error("read", dir))? {
        let entry = entry.map_err(io_error("read", dir))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') || !entry.path().is_dir() {
            continue;
        }
        let mut versions = Vec::new();
        let mut bytes = 0;
        for version in std::fs::read_dir(entry.path()).map_err(io_error("read", &entry.path()))? {
            let version = version.map_err(io_error("read", &entry.path()))?;
            let Some(number) = version.file_name().to_str().and_then(|v| v.parse::<u64>().ok()) else {
                continue;
            };
            let file = version.path().join("model.onnx");
            if let Ok(meta) = std::fs::metadata(&file) {
                versions.push(number);
                bytes += meta.len();
            }
        }
        if !versions.is_empty() {
            versions.sort_unstable();
            models.push(Model {
                name,
                versions,
                bytes,
            });
        }
    }
    models.sort_by(|a, b| a.name.cmp(&b.name));
    if models.is_empty() {
        return Err(ExportError::NoModels {
            dir: crate::paths::display(dir),
        });
    }
    Ok(models)
}

/// Keeps only the models named in `only` (all of them when it is empty).
pub fn select_models(models: Vec<Model>, only: &[String], dir: &Path) -> Result<Vec<Model>, ExportError> {
    if let Some(missing) = only.iter().find(|name| !models.iter().any(|m| &m.name == *name)) {
        return Err(ExportError::UnknownModel {
            name: missing.clone(),
            dir: crate::paths::display(dir),
            known: models
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(models
        .into_iter()
        .filter(|m| only.is_empty() || only.contains(&m.name))
        .collect())
}

/// An RFC 1035 label, as KServe requires of an `InferenceService` name; 45 characters leave
/// room for the `-predictor` and `-gatehouse` suffixes of the objects made from it.
fn check_label(what: &'static str, given: &str, max: usize) -> Result<(), ExportError> {
    let why = if given.is_empty() || given.len() > max {
        Some("it must be 1 to 45 characters (63 for a namespace)")
    } else if !given.starts_with(|c: char| c.is_ascii_lowercase()) || given.ends_with('-') {
        Some("it must start with a lowercase letter and not end with `-`")
    } else if !given
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("only lowercase letters, digits and `-` are allowed")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(ExportError::InvalidName {
            what,
            given: given.to_string(),
            why,
            fix: if what == "namespace" {
                "give --namespace a name such as `gatehouse`"
            } else {
                "rename the model's directory (e.g. `my-model`), or leave it out with --model"
            },
        }),
    }
}

fn check_label_pair((key, value): &(String, String)) -> Result<(), ExportError> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    let key_ok = match key.split_once('/') {
        Some((prefix, name)) => !prefix.is_empty() && prefix.len() <= 253 && name_ok(prefix) && name_ok(name),
        None => name_ok(key),
    };
    if key_ok && (value.is_empty() || name_ok(value)) {
        Ok(())
    } else {
        Err(ExportError::InvalidName {
            what: "label",
            given: format!("{key}={value}"),
            why: "a label is `[prefix/]name=value`, each part letters, digits, `-`, `_` or `.`",
            fix: "give --allow-label a label such as `app=frontend`",
        })
    }
}

/// The settings `gatehouse serve` gets in the pod: the person's limits, CORS, audit and workflow
/// choices, with what the cluster fixes: every address, TLS and keys on, files where the pod has
/// them, only the cluster's names accepted in `Host`.
pub fn cluster_settings(posture: &Posture, namespace: &str) -> Result<Settings, ExportError> {
    let mut settings = posture.settings.clone();
    settings.server.host = "0.0.0.0".into();
    settings.server.port = POD_PORT;
    settings.server.models = Some("/mnt/models".into());
    settings.server.exposed_until = None;
    settings.server.allowed_hosts = posture
        .models
        .iter()
        .flat_map(|m| service_names(&m.name, namespace))
        .collect();
    settings.tls.enabled = true;
    settings.tls.allow_plaintext_network = false;
    settings.tls.cert = Some(format!("{TLS_DIR}/tls.crt").into());
    settings.tls.key = Some(format!("{TLS_DIR}/tls.key").into());
    settings.tls.client_ca = posture
        .client_ca_pem
        .as_ref()
        .map(|_| format!("{CLIENT_CA_DIR}/ca.crt").into());
    settings.auth.enabled = true;
    settings.auth.allow_open_network = false;
    settings.inference.onnxruntime = None;
    settings.guard = Default::default();
    settings.validate()?;
    Ok(settings)
}

/// Every file of the export, in the order `kubectl apply -f` takes them.
pub fn kubernetes(options: &KubernetesOptions, posture: &Posture) -> Result<Vec<ExportFile>, ExportError> {
    let namespace = &options.namespace;
    check_label("namespace", namespace, 63)?;
    for model in &posture.models {
        check_label("InferenceService", &model.name, 45)?;
    }
    for pair in &options.allow_labels {
        check_label_pair(pair)?;
    }
    for allowed in &options.allow_namespaces {
        check_label("namespace", allowed, 63)?;
    }
    let settings = cluster_settings(posture, namespace)?;
    let keys = toml::to_string(&cluster_keys(posture)).unwrap_or_default();
    let mut files = vec![
        yaml_file(
            "00-namespace.yaml",
            "the namespace, held to the baseline Pod Security Standard (warning on restricted)",
            &[json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {
                    "app.kubernetes.io/name": "gatehouse",
                    "pod-security.kubernetes.io/enforce": "baseline",
                    "pod-security.kubernetes.io/warn": "restricted",
                }},
            })],
        ),
        yaml_file(
            "10-service-account.yaml",
            "the model pods' identity, which holds no token for the Kubernetes API",
            &[json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": meta(SERVICE_ACCOUNT, namespace),
                "automountServiceAccountToken": false,
            })],
        ),
        yaml_file(
            "20-settings.yaml",
            "the settings `gatehouse serve` runs with in the pod",
            &[config_map(
                "gatehouse-settings",
                namespace,
                "settings.toml",
                &settings.to_toml(),
            )],
        ),
        yaml_file(
            "21-keys.yaml",
            "the API keys that still work, as hashes only (no key can be read back from them)",
            &[json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": meta("gatehouse-keys", namespace),
                "type": "Opaque",
                "stringData": {"keys.toml": keys},
            })],
        ),
    ];
    let mut trust = Vec::new();
    if options.cert_manager_issuer.is_none()
        && let Some(ca) = &posture.ca_pem
    {
        trust.push(config_map("gatehouse-ca", namespace, "ca.crt", ca));
    }
    if let Some(client_ca) = &posture.client_ca_pem {
        trust.push(config_map("gatehouse-client-ca", namespace, "ca.crt", client_ca));
    }
    if !trust.is_empty() {
        files.push(yaml_file(
            "22-certificate-authorities.yaml",
            "CA certificates: the one clients trust, the one client certificates chain to (no private key)",
            &trust,
        ));
    }
    match &options.cert_manager_issuer {
        Some(issuer) => files.push(yaml_file(
            "30-tls-certificate.yaml",
            "the server certificate, made and renewed in the cluster by cert-manager",
            &[certificate(posture, options, issuer)],
        )),
        None => files.push(ExportFile {
            name: "create-tls-secret.sh".into(),
            text: tls_secret_script(posture, namespace),
        }),
    }
    files.push(yaml_file(
        "40-serving-runtime.yaml",
        "Gatehouse as a KServe runtime for ONNX models over the Open Inference Protocol",
        &[serving_runtime(options, posture.client_ca_pem.is_some())],
    ));
    for model in &posture.models {
        files.push(yaml_file(
            &format!("50-model-{}.yaml", model.name),
            &format!(
                "the model `{}` ({} version(s), {} bytes) and its HTTPS Service",
                model.name,
                model.versions.len(),
                model.bytes
            ),
            &[inference_service(model, options), model_service(model, namespace)],
        ));
    }
    files.push(yaml_file(
        "60-network-policies.yaml",
        "deny by default; the models admit only their clients and open no connection",
        &network_policies(posture, options),
    ));
    Ok(files)
}

/// Writes the export into `dir`: each file atomically; files an earlier export wrote and this
/// one does not (a model since removed) are removed, any other file there is left alone.
pub fn write(dir: &Path, files: &[ExportFile]) -> Result<(), ExportError> {
    let ours = |path: &Path| {
        std::fs::read_to_string(path).is_ok_and(|text| {
            text.starts_with(HEADER) || text.lines().nth(1).is_some_and(|l| l.starts_with(HEADER))
        })
    };
    for file in files {
        let path = dir.join(&file.name);
        if path.exists() && !ours(&path) {
            return Err(ExportError::Foreign {
                path: crate::paths::display(&path),
            });
        }
    }
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).map_err(io_error("read", dir))? {
            let path = entry.map_err(io_error("read", dir))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let stale = !files.iter().any(|f| f.name == name)
                && (name.ends_with(".yaml") || name.ends_with(".sh"))
                && ours(&path);
            if stale {
                std::fs::remove_file(&path).map_err(io_error("remove", &path))?;
            }
        }
    }
    for file in files {
        let path = dir.join(&file.name);
        crate::fsutil::write_atomic(&path, file.text.as_bytes()).map_err(io_error("write", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posture() -> Posture {
        Posture {
            settings: Settings::default(),
            keys: KeyFile::default(),
            models: vec![Model {
                name: "magika".into(),
                versions: vec![1],
                bytes: 3 * MIB,
            }],
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into()),
            client_ca_pem: None,
            server_cert: "/home/me/.config/gatehouse/certs/server.pem".into(),
            server_key: "/home/me/.config/gatehouse/certs/server-key.pem".into(),
            now: OffsetDateTime::now_utc(),
        }
    }

    fn options() -> KubernetesOptions {
        KubernetesOptions {
            namespace: "gatehouse".into(),
            image: "gatehouse:0.1.0".into(),
            allow_namespaces: Vec::new(),
            allow_labels: Vec::new(),
            cert_manager_issuer: None,
            storage_uri_prefix: "pvc://gatehouse-models".into(),
        }
    }

    #[test]
    fn names_kubernetes_would_refuse_are_refused_with_the_fix() {
        for bad in ["Magika", "my_model", "-x", "x-", "1model", ""] {
            let mut p = posture();
            p.models[0].name = bad.into();
            let error = kubernetes(&options(), &p).unwrap_err().to_string();
            assert!(
                error.contains("cannot name a Kubernetes InferenceService"),
                "{bad}: {error}"
            );
            assert!(error.contains("fix: rename the model's directory"), "{error}");
        }
        let mut o = options();
        o.allow_labels = vec![("app".into(), "front end".into())];
        assert!(
            kubernetes(&o, &posture())
                .unwrap_err()
                .to_string()
                .contains("--allow-label")
        );
    }

    #[test]
    fn the_pod_settings_keep_the_perimeter_and_name_the_cluster_services() {
        let mut p = posture();
        p.settings.auth.enabled = false;
        p.settings.limits.max_body_bytes = 1234;
        p.client_ca_pem = Some("pem".into());
        let settings = cluster_settings(&p, "ml").unwrap();
        assert!(settings.auth.enabled && settings.tls.enabled);
        assert_eq!(settings.limits.max_body_bytes, 1234);
        assert_eq!(
            settings.tls.client_ca.as_deref(),
            Some(Path::new("/etc/gatehouse/client-ca/ca.crt"))
        );
        assert!(
            settings
                .server
                .allowed_hosts
                .contains(&"magika-gatehouse.ml.svc".to_string())
        );
    }

    #[test]
    fn loopback_admits_only_labelled_pods_of_the_namespace_and_the_network_any_namespace() {
        let p = posture();
        let sources = ingress_sources(&p, &options());
        assert_eq!(
            sources,
            vec![json!({"podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}})]
        );
        let mut lan = posture();
        lan.settings.server.host = "192.168.1.20".into();
        assert!(ingress_sources(&lan, &options()).contains(&json!({"namespaceSelector": {}})));
        let mut o = options();
        o.allow_namespaces = vec!["web".into()];
        let named = ingress_sources(&lan, &o);
        assert!(!named.contains(&json!({"namespaceSelector": {}})));
        assert_eq!(named.len(), 2);
    }

    #[test]
    fn memory_is_sized_from_the_model_file() {
        let model = |bytes| Model {
            name: "m".into(),
            versions: vec![1],
            bytes,
        };
        assert_eq!(memory_request(&model(0)), 128);
        assert_eq!(memory_request(&model(3 * MIB)), 192);
        assert_eq!(memory_request(&model(500 * MIB)), 1152);
    }
}
