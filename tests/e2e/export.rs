//! `gatehouse export kubernetes` on a real configuration (a CA and server certificate from
//! `certs init`, keys from `keys create`, the installed models), its manifests checked against the
//! Kubernetes API schemas and KServe's and cert-manager's CRD schemas, offline.

use std::path::Path;
use std::process::Command;

use gatehouse_core::Settings;
use gatehouse_core::keys::KeyFile;
use serde_json::Value;

use crate::util::{self, ModelDir};

/// Runs validate.py on `dir`: its report, and whether it passed.
fn validate(dir: &Path) -> (Value, bool) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/kubernetes/validate.py");
    let output = Command::new(util::kubernetes_python())
        .arg(script)
        .arg(dir)
        .output()
        .expect("the kubernetes-validate environment runs (scripts/test.sh installs it)");
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "validate.py printed no report: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (report, output.status.success())
}

fn export(home: &Path, out: &Path, args: &[&str]) -> std::process::Output {
    let out = out.display().to_string();
    let all = [&["export", "kubernetes", "--out", out.as_str()], args].concat();
    util::gatehouse(home, &all)
}

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_kubernetes_export_passes_the_real_schemas_holds_no_secret_and_is_stable() {
    let home = tempfile::tempdir().unwrap();
    let models = ModelDir::new();
    models.copy_installed("magika").copy_installed("sigmoid");
    util::certs(home.path(), &["init"]);
    let everything = util::create_key(home.path(), &["--name", "ci", "--scope", "infer"]);
    let demo = util::create_key(
        home.path(),
        &["--name", "demo", "--model", "magika", "--expires", "2h"],
    );
    let revoked = util::create_key(home.path(), &["--name", "old"]);
    let revoke = util::keys_command(home.path(), &["revoke", revoked["id"].as_str().unwrap()]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    let key_texts: Vec<String> = [&everything, &demo, &revoked]
        .iter()
        .map(|k| k["key"].as_str().unwrap().to_string())
        .collect();
    let certs = home.path().join("certs");
    let server_key = std::fs::read_to_string(certs.join("server-key.pem")).unwrap();
    let key_body: String = server_key.lines().nth(1).unwrap().to_string();

    let settings = |extra: &str| {
        std::fs::write(
            home.path().join("settings.toml"),
            format!(
                "[server]\nmodels = \"{}\"\n{extra}\n[limits]\nmax_body_bytes = 1000000\n",
                models.path().display()
            ),
        )
        .unwrap();
    };
    let ca = certs.join("ca.pem").display().to_string();
    let cases: [(&str, String, Vec<&str>); 4] = [
        ("loopback", String::new(), vec![]),
        (
            "network",
            "host = \"192.168.1.20\"\n[tls]\nenabled = true".into(),
            vec!["--allow-namespace", "web"],
        ),
        (
            "mutual-tls",
            format!("host = \"192.168.1.20\"\n[tls]\nenabled = true\nclient_ca = \"{ca}\""),
            vec!["--allow-label", "app=frontend", "--namespace", "ml-prod"],
        ),
        (
            "cert-manager",
            String::new(),
            vec!["--cert-manager-issuer", "internal-ca", "--model", "magika"],
        ),
    ];
    let work = tempfile::tempdir().unwrap();
    for (name, extra, args) in &cases {
        settings(extra);
        let out = work.path().join(name);
        let output = export(home.path(), &out, args);
        assert!(
            output.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let (report, passed) = validate(&out);
        assert!(passed, "{name}: {report:#}");
        let kinds = &report["kinds"];
        let models_exported = if *name == "cert-manager" { 1 } else { 2 };
        assert_eq!(kinds["InferenceService"], models_exported, "{name}: {report:#}");
        assert_eq!(kinds["ServingRuntime"], 1, "{name}: {report:#}");
        assert_eq!(kinds["NetworkPolicy"], 3, "{name}: {report:#}");
        assert_eq!(
            kinds["Certificate"].as_u64().is_some(),
            *name == "cert-manager",
            "{name}: {report:#}"
        );

        let written = files(&out);
        for (file, text) in &written {
            assert!(
                !text.contains("PRIVATE KEY") && !text.contains(&key_body),
                "{name}/{file} holds a private key"
            );
            for key in &key_texts {
                assert!(!text.contains(key.as_str()), "{name}/{file} holds an API key");
            }
        }
        let text = |file: &str| {
            &written
                .iter()
                .find(|(n, _)| n == file)
                .unwrap_or_else(|| panic!("{name}: no {file}"))
                .1
        };

        // What the pod runs with is settings Gatehouse itself accepts: every address, TLS and
        // keys on, the person's limits kept, the cluster's service names allowed in `Host`.
        let pod_settings = Settings::parse(
            report["embedded"]["ConfigMap/gatehouse-settings"]["settings.toml"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        pod_settings.validate().unwrap();
        assert_eq!(pod_settings.server.host, "0.0.0.0");
        assert!(pod_settings.tls.enabled && pod_settings.auth.enabled, "{name}");
        assert_eq!(pod_settings.limits.max_body_bytes, 1_000_000);
        assert_eq!(pod_settings.tls.client_ca.is_some(), *name == "mutual-tls");
        let namespace = if *name == "mutual-tls" {
            "ml-prod"
        } else {
            "gatehouse"
        };
        assert!(
            pod_settings
                .server
                .allowed_hosts
                .contains(&format!("magika-gatehouse.{namespace}.svc")),
            "{:?}",
            pod_settings.server.allowed_hosts
        );

        // The keys that still work, by hash, with the demo key still held to its model.
        let keys = KeyFile::parse(
            report["embedded"]["Secret/gatehouse-keys"]["keys.toml"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let ids: Vec<&str> = keys.keys.iter().map(|k| k.id.as_str()).collect();
        assert!(
            ids.contains(&everything["id"].as_str().unwrap()) && ids.contains(&demo["id"].as_str().unwrap())
        );
        assert!(
            !ids.contains(&revoked["id"].as_str().unwrap()),
            "a revoked key went to the cluster"
        );
        let demo_record = keys
            .keys
            .iter()
            .find(|k| k.id == demo["id"].as_str().unwrap())
            .unwrap();
        assert_eq!(demo_record.models, ["magika"]);

        let policies = text("60-network-policies.yaml");
        match *name {
            "loopback" | "cert-manager" => assert!(!policies.contains("namespaceSelector: {}")),
            "network" => assert!(policies.contains("kubernetes.io/metadata.name: web")),
            _ => assert!(policies.contains("app: frontend")),
        }
        if *name == "cert-manager" {
            assert!(!written.iter().any(|(n, _)| n == "create-tls-secret.sh"));
            assert!(text("30-tls-certificate.yaml").contains("magika-gatehouse.gatehouse.svc.cluster.local"));
        } else {
            let script = text("create-tls-secret.sh");
            assert!(
                script.contains(&certs.join("server-key.pem").display().to_string()),
                "{script}"
            );
        }

        if *name == "loopback" {
            // The check itself catches a misspelt field in a custom and in a core object.
            let broken = work.path().join("broken");
            std::fs::create_dir(&broken).unwrap();
            for (file, text) in &written {
                let text = text
                    .replace("storageUri:", "storageURI:")
                    .replace("policyTypes:", "policyType:");
                std::fs::write(broken.join(file), text).unwrap();
            }
            let (report, passed) = validate(&broken);
            assert!(!passed, "{report:#}");
            let errors = report["errors"].to_string();
            assert!(
                errors.contains("storageURI") && errors.contains("policyType"),
                "{errors}"
            );
        }

        // The same input gives the same bytes.
        let again = work.path().join(format!("{name}-again"));
        let output = export(home.path(), &again, args);
        assert!(output.status.success());
        assert_eq!(files(&again), written, "{name}: a second export differs");
    }
}

#[test]
fn an_export_refuses_what_kubernetes_would_and_leaves_other_files_alone() {
    let home = tempfile::tempdir().unwrap();
    let models = ModelDir::new();
    models.copy_installed("sigmoid");
    std::fs::rename(models.path().join("sigmoid"), models.path().join("Sigmoid_V2")).unwrap();
    std::fs::write(
        home.path().join("settings.toml"),
        format!("[server]\nmodels = \"{}\"\n", models.path().display()),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = export(home.path(), out.path(), &[]);
    util::assert_refused(
        &output,
        &[
            "`Sigmoid_V2` cannot name a Kubernetes InferenceService",
            "fix: rename the model's directory",
        ],
    );
    let output = export(home.path(), out.path(), &["--model", "magika"]);
    util::assert_refused(&output, &["no model named `magika`", "pick one of: Sigmoid_V2"]);

    // A file of the person's own where the export would write is kept, and the export refused.
    std::fs::rename(models.path().join("Sigmoid_V2"), models.path().join("sigmoid")).unwrap();
    std::fs::write(out.path().join("20-settings.yaml"), "mine\n").unwrap();
    let output = export(home.path(), out.path(), &[]);
    util::assert_refused(
        &output,
        &["20-settings.yaml exists and was not written by an earlier export"],
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("20-settings.yaml")).unwrap(),
        "mine\n"
    );
    std::fs::remove_file(out.path().join("20-settings.yaml")).unwrap();
    std::fs::write(out.path().join("notes.yaml"), "kept\n").unwrap();
    let output = export(home.path(), out.path(), &[]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no key works yet"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(out.path().join("notes.yaml")).unwrap(),
        "kept\n"
    );

    // A model taken out of the repository leaves the next export's directory too.
    models.copy_installed("magika");
    assert!(export(home.path(), out.path(), &[]).status.success());
    assert!(out.path().join("50-model-magika.yaml").exists());
    std::fs::remove_dir_all(models.path().join("magika")).unwrap();
    assert!(export(home.path(), out.path(), &[]).status.success());
    assert!(!out.path().join("50-model-magika.yaml").exists());
    assert!(out.path().join("50-model-sigmoid.yaml").exists());
}
