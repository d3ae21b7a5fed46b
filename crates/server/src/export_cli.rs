//! `gatehouse export kubernetes`: reads this computer's settings, keys, certificates and model
//! repository and writes the manifests `gatehouse_core::export` makes from them.

use std::path::PathBuf;

use gatehouse_core::Settings;
use gatehouse_core::certs::CertFiles;
use gatehouse_core::export::{self, KubernetesOptions, Posture};
use gatehouse_core::keys::KeyStore;
use gatehouse_core::paths::{self, Paths};

#[derive(clap::Subcommand)]
pub enum ExportCommand {
    /// KServe InferenceServices served by Gatehouse, NetworkPolicies, the key hashes, TLS and the
    /// CA, as manifests for `kubectl apply -f` (no private key and no API key in them).
    Kubernetes(KubernetesArgs),
}

#[derive(clap::Args)]
pub struct KubernetesArgs {
    /// The namespace everything goes in.
    #[arg(long, default_value = "gatehouse")]
    namespace: String,
    /// Where to write the manifests (made if missing; an earlier export there is replaced).
    #[arg(long, default_value = "gatehouse-kubernetes")]
    out: PathBuf,
    /// Export only this model (repeatable); all of the repository's by default.
    #[arg(long = "model", value_name = "NAME")]
    models: Vec<String>,
    /// With "my network" settings: the namespaces whose pods may call the models (repeatable;
    /// every namespace when none is given). Pods labelled gatehouse.dev/client=true in the
    /// namespace itself may always.
    #[arg(long = "allow-namespace", value_name = "NAMESPACE")]
    allow_namespaces: Vec<String>,
    /// Pods with this label, in any namespace, may call the models (repeatable), e.g. app=frontend.
    #[arg(long = "allow-label", value_name = "KEY=VALUE")]
    allow_labels: Vec<String>,
    /// Have cert-manager's ClusterIssuer NAME make the server certificate for the cluster's
    /// names, instead of sending this computer's certificate.
    #[arg(long, value_name = "NAME")]
    cert_manager_issuer: Option<String>,
    /// The image with `gatehouse` and ONNX Runtime (see docs/KUBERNETES.md).
    #[arg(long, default_value = concat!("gatehouse:", env!("CARGO_PKG_VERSION")))]
    image: String,
    /// Where the models' files will be in the cluster: `<prefix>/<model>`.
    #[arg(long, default_value = "pvc://gatehouse-models")]
    storage_uri_prefix: String,
}

pub fn run(command: ExportCommand, paths: &Paths) -> Result<(), String> {
    let ExportCommand::Kubernetes(args) = command;
    let settings = Settings::effective(&paths.settings_file()).map_err(|e| e.to_string())?;
    let models_dir = settings
        .server
        .models
        .clone()
        .unwrap_or_else(|| paths.default_models_dir());
    let models = export::scan_models(&models_dir).map_err(|e| e.to_string())?;
    let models = export::select_models(models, &args.models, &models_dir).map_err(|e| e.to_string())?;
    let keys = KeyStore::new(paths.keys_file())
        .load()
        .map_err(|e| e.to_string())?;
    let files = CertFiles::new(paths.certs_dir());
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| {
            format!(
                "could not read {}: {e}; fix: check the file, or run `gatehouse certs init`",
                paths::display(path)
            )
        })
    };
    let ca_pem = files.ca().exists().then(|| read(&files.ca())).transpose()?;
    let client_ca_pem = settings.tls.client_ca.as_ref().map(read).transpose()?;
    let server_cert = settings.tls.cert.clone().unwrap_or_else(|| files.server_cert());
    let server_key = settings.tls.key.clone().unwrap_or_else(|| files.server_key());
    let allow_labels = args
        .allow_labels
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => Ok((key.to_string(), value.to_string())),
            None => Err(format!(
                "`{pair}` is not KEY=VALUE; fix: write --allow-label app=frontend"
            )),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options = KubernetesOptions {
        namespace: args.namespace,
        image: args.image,
        allow_namespaces: args.allow_namespaces,
        allow_labels,
        cert_manager_issuer: args.cert_manager_issuer,
        storage_uri_prefix: args.storage_uri_prefix,
    };
    let posture = Posture {
        settings,
        keys,
        models,
        ca_pem,
        client_ca_pem,
        server_cert,
        server_key,
        now: time::OffsetDateTime::now_utc(),
    };
    let output = export::kubernetes(&options, &posture).map_err(|e| e.to_string())?;
    export::write(&args.out, &output).map_err(|e| e.to_string())?;
    let out = paths::display(&args.out);
    for file in &output {
        println!("{out}/{}", file.name);
    }
    let active = posture
        .keys
        .keys
        .iter()
        .filter(|k| k.state(posture.now) == gatehouse_core::keys::KeyState::Active)
        .count();
    if active == 0 {
        eprintln!(
            "warning: no key works yet, so the cluster's server refuses every call; fix: `gatehouse keys create`, then export again"
        );
    }
    if options.cert_manager_issuer.is_none() && !posture.server_cert.exists() {
        eprintln!(
            "warning: there is no server certificate at {} for create-tls-secret.sh to send; fix: `gatehouse certs init`, or export with --cert-manager-issuer",
            paths::display(&posture.server_cert)
        );
    }
    eprintln!("next:");
    eprintln!(
        "  1. put each model's repository directory (<model>/<version>/model.onnx) where {}/<model> points",
        options.storage_uri_prefix.trim_end_matches('/')
    );
    if options.cert_manager_issuer.is_none() {
        eprintln!(
            "  2. sh {out}/create-tls-secret.sh   (sends the server's key to the cluster, not to this directory)"
        );
    } else {
        eprintln!("  2. cert-manager makes the server certificate in the cluster");
    }
    eprintln!("  3. kubectl apply -f {out}");
    Ok(())
}
