//! The Kubernetes objects of the export, one builder each: the ServingRuntime and InferenceServices,
//! the Services, NetworkPolicies, the certificate and the ConfigMaps, as JSON values for `yaml`.

use super::*;

pub(super) fn labels() -> Value {
    json!({"app.kubernetes.io/name": "gatehouse", "app.kubernetes.io/managed-by": "gatehouse-export"})
}

pub(super) fn meta(name: &str, namespace: &str) -> Value {
    json!({"name": name, "namespace": namespace, "labels": labels()})
}

/// The names clients in the cluster reach a model by: Gatehouse's own Service and KServe's.
pub(super) fn service_names(model: &str, namespace: &str) -> Vec<String> {
    ["gatehouse", "predictor"]
        .iter()
        .flat_map(|suffix| {
            let service = format!("{model}-{suffix}");
            [
                service.clone(),
                format!("{service}.{namespace}"),
                format!("{service}.{namespace}.svc"),
                format!("{service}.{namespace}.svc.cluster.local"),
            ]
        })
        .collect()
}

/// `keys.toml` for the cluster: the keys that still work, by hash only.
pub(super) fn cluster_keys(posture: &Posture) -> KeyFile {
    let mut keys: Vec<_> = posture
        .keys
        .keys
        .iter()
        .filter(|k| k.state(posture.now) == KeyState::Active)
        .cloned()
        .map(|mut k| {
            k.storage = Storage::HashOnly;
            k.last_used = None;
            k
        })
        .collect();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    KeyFile { keys }
}

/// Memory for one pod: ONNX Runtime holds about the model's size again beside the file's
/// bytes; 128 MiB covers the server itself. Rounded up to 64 MiB.
pub(super) fn memory_request(model: &Model) -> u64 {
    let bytes = 2 * model.bytes + 128 * MIB;
    bytes.div_ceil(64 * MIB) * 64
}

/// Which pods may open a connection to the models: "this computer only" becomes pods of the
/// same namespace that carry the client label; "my network" adds the named namespaces (or
/// every namespace when none is named); named labels add those pods anywhere.
pub(super) fn ingress_sources(posture: &Posture, options: &KubernetesOptions) -> Vec<Value> {
    let mut sources = vec![json!({"podSelector": {"matchLabels": {CLIENT_LABEL: "true"}}})];
    let host = &posture.settings.server.host;
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        if options.allow_namespaces.is_empty() {
            sources.push(json!({"namespaceSelector": {}}));
        }
        for namespace in &options.allow_namespaces {
            sources.push(
                json!({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}),
            );
        }
    }
    for (key, value) in &options.allow_labels {
        sources.push(json!({"namespaceSelector": {}, "podSelector": {"matchLabels": {key: value}}}));
    }
    sources
}

pub(super) fn serving_runtime(options: &KubernetesOptions, mutual_tls: bool) -> Value {
    let probe =
        json!({"httpGet": {"path": "/healthz", "port": POD_PORT, "scheme": "HTTPS"}, "periodSeconds": 10});
    let mut mounts = vec![
        json!({"name": "gatehouse-home", "mountPath": HOME}),
        json!({"name": "gatehouse-settings", "mountPath": format!("{HOME}/settings.toml"), "subPath": "settings.toml", "readOnly": true}),
        json!({"name": "gatehouse-keys", "mountPath": format!("{HOME}/keys.toml"), "subPath": "keys.toml", "readOnly": true}),
        json!({"name": "gatehouse-tls", "mountPath": TLS_DIR, "readOnly": true}),
    ];
    // 0440 with the pod's fsGroup: the server's user reads the keys and the TLS key, nobody else.
    let mut volumes = vec![
        json!({"name": "gatehouse-home", "emptyDir": {"sizeLimit": "256Mi"}}),
        json!({"name": "gatehouse-settings", "configMap": {"name": "gatehouse-settings"}}),
        json!({"name": "gatehouse-keys", "secret": {"secretName": "gatehouse-keys", "defaultMode": 0o440}}),
        json!({"name": "gatehouse-tls", "secret": {"secretName": "gatehouse-tls", "defaultMode": 0o440}}),
    ];
    if mutual_tls {
        mounts.push(json!({"name": "gatehouse-client-ca", "mountPath": CLIENT_CA_DIR, "readOnly": true}));
        volumes.push(json!({"name": "gatehouse-client-ca", "configMap": {"name": "gatehouse-client-ca"}}));
    }
    json!({
        "apiVersion": "serving.kserve.io/v1alpha1",
        "kind": "ServingRuntime",
        "metadata": meta(RUNTIME, &options.namespace),
        "spec": {
            "supportedModelFormats": [{"name": "onnx", "version": "1", "autoSelect": false}],
            "protocolVersions": ["v2"],
            "multiModel": false,
            "containers": [{
                "name": "kserve-container",
                "image": options.image,
                "args": ["serve"],
                "env": [
                    {"name": "GATEHOUSE_HOME", "value": HOME},
                    {"name": "GATEHOUSE_DATA", "value": "/opt/gatehouse"},
                ],
                "ports": [{"containerPort": POD_PORT, "name": "https", "protocol": "TCP"}],
                "readinessProbe": probe,
                "livenessProbe": probe,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true,
                    "runAsNonRoot": true,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": mounts,
            }],
            "volumes": volumes,
        }
    })
}

pub(super) fn inference_service(model: &Model, options: &KubernetesOptions) -> Value {
    let memory = memory_request(model);
    json!({
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": model.name,
            "namespace": options.namespace,
            "labels": labels(),
            // A plain Deployment and Service: no Knative activator in the path that the
            // NetworkPolicy would have to admit.
            "annotations": {"serving.kserve.io/deploymentMode": "RawDeployment"},
        },
        "spec": {"predictor": {
            "minReplicas": 1,
            "serviceAccountName": SERVICE_ACCOUNT,
            "automountServiceAccountToken": false,
            "securityContext": {
                "runAsNonRoot": true,
                "runAsUser": 65532,
                "runAsGroup": 65532,
                "fsGroup": 65532,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "model": {
                "modelFormat": {"name": "onnx"},
                "runtime": RUNTIME,
                "protocolVersion": "v2",
                "storageUri": format!("{}/{}", options.storage_uri_prefix.trim_end_matches('/'), model.name),
                "resources": {
                    "requests": {"cpu": "500m", "memory": format!("{memory}Mi")},
                    "limits": {"memory": format!("{}Mi", 2 * memory)},
                },
            },
        }},
    })
}

/// Gatehouse's own Service for a model: HTTPS on 443, where clients expect it.
pub(super) fn model_service(model: &Model, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(&format!("{}-gatehouse", model.name), namespace),
        "spec": {
            "selector": {"serving.kserve.io/inferenceservice": model.name, "component": "predictor"},
            "ports": [{"name": "https", "port": 443, "targetPort": POD_PORT, "protocol": "TCP"}],
        },
    })
}

pub(super) fn network_policies(posture: &Posture, options: &KubernetesOptions) -> Vec<Value> {
    let namespace = &options.namespace;
    let names: Vec<&str> = posture.models.iter().map(|m| m.name.as_str()).collect();
    vec![
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("gatehouse-default-deny", namespace),
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }),
        // No egress rule: a model pod can open no connection at all (its model comes from the
        // volume), so code that got in cannot send data out.
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("gatehouse-models", namespace),
            "spec": {
                "podSelector": {"matchExpressions": [
                    {"key": "serving.kserve.io/inferenceservice", "operator": "In", "values": names},
                ]},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{
                    "from": ingress_sources(posture, options),
                    "ports": [{"protocol": "TCP", "port": POD_PORT}],
                }],
            },
        }),
        // The clients themselves may reach the models and look their names up, nothing else.
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": meta("gatehouse-clients", namespace),
            "spec": {
                "podSelector": {"matchLabels": {CLIENT_LABEL: "true"}},
                "policyTypes": ["Egress"],
                "egress": [
                    {"to": [{"podSelector": {"matchExpressions": [
                        {"key": "serving.kserve.io/inferenceservice", "operator": "In", "values": names},
                    ]}}], "ports": [{"protocol": "TCP", "port": POD_PORT}]},
                    {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                             "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                     "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                ],
            },
        }),
    ]
}

pub(super) fn certificate(posture: &Posture, options: &KubernetesOptions, issuer: &str) -> Value {
    let names: Vec<String> = posture
        .models
        .iter()
        .flat_map(|m| service_names(&m.name, &options.namespace))
        .collect();
    json!({
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": meta("gatehouse-tls", &options.namespace),
        "spec": {
            "secretName": "gatehouse-tls",
            "dnsNames": names,
            "duration": "2160h",
            "renewBefore": "720h",
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "usages": ["server auth", "digital signature"],
            "issuerRef": {"name": issuer, "kind": "ClusterIssuer", "group": "cert-manager.io"},
        },
    })
}

pub(super) fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub(super) fn tls_secret_script(posture: &Posture, namespace: &str) -> String {
    format!(
        "#!/bin/sh\n{HEADER}.\n\
         # Creates the Secret gatehouse-tls from this computer's server certificate and key. The key is\n\
         # read from its private file and sent to the cluster: it is never written into this directory.\n\
         # The certificate names this computer; for the cluster's own names, export again with\n\
         # --cert-manager-issuer and skip this script.\n\
         set -eu\n\
         kubectl --namespace {ns} create secret tls gatehouse-tls --cert {cert} --key {key} \\\n    \
         --dry-run=client --output yaml | kubectl apply --filename -\n",
        ns = shell_quote(namespace),
        cert = shell_quote(&posture.server_cert.display().to_string()),
        key = shell_quote(&posture.server_key.display().to_string()),
    )
}

pub(super) fn yaml_file(name: &str, what: &str, objects: &[Value]) -> ExportFile {
    ExportFile {
        name: name.into(),
        text: format!("{HEADER}: {what}\n{}", yaml::documents(objects)),
    }
}

pub(super) fn config_map(name: &str, namespace: &str, file: &str, text: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, namespace), "data": {file: text}})
}
