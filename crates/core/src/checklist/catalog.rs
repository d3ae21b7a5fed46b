//! Every item the checklist knows: its id and its text, in the order the checklist shows them.
//!
//! The id is an enum so that an item without a title, a reason or its standards cannot be written:
//! the text is a match on the id, checked by the compiler, not a lookup that can miss.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! catalog {
    ($($variant:ident = $id:literal {
        title: $title:literal,
        why: $why:literal,
        standards: [$($standard:literal),* $(,)?] $(,)?
    })*) => {
        /// Which control an item is. Stable across releases: the app, `--fix` and scripts refer to
        /// items by its text (`auth.required`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
        pub enum ItemId {
            $(#[serde(rename = $id)] $variant,)*
        }

        impl ItemId {
            /// Every item, in the order the checklist shows them.
            pub const ALL: &'static [ItemId] = &[$(ItemId::$variant),*];

            pub fn as_str(self) -> &'static str {
                match self { $(ItemId::$variant => $id,)* }
            }

            /// What the item promises, in a few words.
            pub fn title(self) -> &'static str {
                match self { $(ItemId::$variant => $title,)* }
            }

            /// Why it matters, in plain words.
            pub fn why(self) -> &'static str {
                match self { $(ItemId::$variant => $why,)* }
            }

            /// The standards it maps to (OWASP API Security Top 10 2023, NIST SP 800-207, NIST CSF).
            pub fn standards(self) -> &'static [&'static str] {
                match self { $(ItemId::$variant => &[$($standard),*],)* }
            }
        }
    };
}

catalog! {
    ServerReachable = "server.reachable" {
        title: "The server answers",
        why: "Every other check probes the running server; without an answer they cannot prove anything.",
        standards: ["NIST CSF DE.CM-1"],
    }
    NetworkExposure = "network.exposure" {
        title: "Reachable only where intended",
        why: "A server bound to every interface can be reached by any device on the same network, café Wi-Fi included. Loopback-only binding is the first perimeter.",
        standards: ["OWASP API8:2023", "NIST SP 800-207 (tenet 2)", "NIST CSF PR.AC-5"],
    }
    NetworkHostCheck = "network.host_check" {
        title: "Only requests addressed to this server are answered",
        why: "A web page you open can point its own domain name at 127.0.0.1 (DNS rebinding) and then read whatever the server answers; refusing every Host that is not the server's own name stops it, key or no key.",
        standards: ["OWASP API8:2023", "NIST CSF PR.AC-5"],
    }
    GuardUpstreamLoopback = "guard.upstream_loopback" {
        title: "The guarded server is reached only through Gatehouse",
        why: "A guarded server that also listens beyond loopback can be called around Gatehouse, without a key, TLS or the audit log: the proxy then protects nothing.",
        standards: ["OWASP API8:2023", "NIST SP 800-207 (tenet 2)", "NIST CSF PR.AC-5"],
    }
    GuardAdminRoutes = "guard.admin_routes" {
        title: "Routes that change the guarded server need an admin key",
        why: "Pulling, pushing, creating or unloading models changes the server and can reach the internet; an inference key that leaks must not reach them.",
        standards: ["OWASP API5:2023", "NIST CSF PR.AC-4"],
    }
    GuardCustomPython = "guard.custom_python" {
        title: "Workflows cannot bring code to the guarded server",
        why: "A workflow with a custom Python block runs that code inside the server's own process: anyone who can submit one runs code on this computer. Roboflow's guide says to turn it off; Gatehouse turns it off and refuses such workflows at the gate as well.",
        standards: ["OWASP API8:2023", "OWASP NHI Top 10 (NHI5)", "NIST CSF PR.PS-1"],
    }
    GuardKeyStripped = "guard.key_stripped" {
        title: "Gatehouse's key never reaches the guarded server",
        why: "A key the guarded server receives lands in its logs, its crash reports and whatever it calls in turn, where the audit log cannot follow it. Gatehouse removes its key from every request it passes on; a canary request carrying a made-up key proves it in the server's own output.",
        standards: ["OWASP API2:2023", "NIST CSF PR.DS-5"],
    }
    GuardGuide = "guard.guide" {
        title: "The guarded server's own security guide is applied",
        why: "The guarded server's makers publish the controls a self-hosted server needs and leave applying them to each reader; Gatehouse applies them in front of it and proves each one with the items it names.",
        standards: ["NIST CSF GV.PO-1", "NIST CSF PR.PS-1"],
    }
    AuthRequired = "auth.required" {
        title: "Protected endpoints demand a valid key",
        why: "Without authentication anyone who can reach the port can run models, read metadata and exhaust the machine.",
        standards: ["OWASP API2:2023", "NIST SP 800-207 (tenet 6)", "NIST CSF PR.AC-1"],
    }
    GrpcPerimeter = "grpc.perimeter" {
        title: "The gRPC port is behind the same perimeter",
        why: "A second port is a second way in: if it answered without a key, in plain text or on more addresses than the HTTP port, every control on the HTTP port could be walked around.",
        standards: ["OWASP API8:2023", "OWASP API2:2023", "NIST CSF PR.AC-5"],
    }
    PublicNoSecrets = "public.no_secrets" {
        title: "Public endpoints leak nothing secret",
        why: "Health and info endpoints answer anyone; they must not carry keys, private keys or tokens.",
        standards: ["OWASP API3:2023", "NIST CSF PR.DS-5"],
    }
    TransportTls = "transport.tls" {
        title: "Traffic is encrypted when it leaves this computer",
        why: "Without TLS, keys and data cross the network in plain text for anyone on it to read.",
        standards: ["OWASP API8:2023", "NIST SP 800-207 (tenet 2)", "NIST CSF PR.DS-2"],
    }
    TransportCertificate = "transport.certificate" {
        title: "The certificate is trusted and current",
        why: "Clients must be able to verify the server; an expired or untrusted certificate teaches people to click through warnings.",
        standards: ["OWASP API8:2023", "NIST CSF PR.DS-2"],
    }
    TransportVersions = "transport.versions" {
        title: "Only TLS 1.2 and 1.3 are accepted",
        why: "TLS 1.0 and 1.1 have known weaknesses and were deprecated by RFC 8996.",
        standards: ["OWASP API8:2023", "NIST SP 800-52r2"],
    }
    TransportPlaintext = "transport.plaintext" {
        title: "Plain HTTP is refused on the TLS port",
        why: "A port that also answers plain HTTP invites clients to send keys unencrypted.",
        standards: ["OWASP API8:2023", "NIST CSF PR.DS-2"],
    }
    TransportMtls = "transport.mtls" {
        title: "Client certificates where the network is shared",
        why: "Mutual TLS turns away devices without a certificate before they can even try a key.",
        standards: ["NIST SP 800-207 (tenet 6)", "NIST CSF PR.AC-7"],
    }
    WorkflowsCustomPython = "workflows.custom_python" {
        title: "Custom Python in workflows is off",
        why: "Anyone who can submit a workflow with a python step could run code on this computer. Roboflow Inference's guide for self-hosted servers advises turning its switch off too, although its default is on.",
        standards: ["OWASP API8:2023", "OWASP API5:2023", "NIST CSF PR.PT-3"],
    }
    WorkflowsSandbox = "workflows.sandbox" {
        title: "Python steps run in the whole sandbox",
        why: "With a layer of the sandbox missing, a python step can reach more of this computer: without namespaces UDP, local sockets and the session bus (and through it the keychain), without Landlock the files, without seccomp sockets and signals.",
        standards: ["OWASP API8:2023", "NIST CSF PR.PT-3"],
    }
    AuthKeyInUrl = "auth.key_in_url" {
        title: "No key was sent in a URL",
        why: "A key in a URL (`?api_key=`) lands in shell history, proxy and server logs and browser history, where anyone who reads them finds it.",
        standards: ["OWASP ASVS 5.0 V14.2.1", "OWASP API2:2023"],
    }
    CorsPolicy = "cors.policy" {
        title: "Browsers on other sites cannot call the server",
        why: "A wildcard or reflected CORS policy lets any web page you open talk to your local server.",
        standards: ["OWASP API8:2023"],
    }
    MetricsProtected = "metrics.protected" {
        title: "Metrics and docs are not open to the network",
        why: "Metrics and API docs map the attack surface; beyond this computer they need a key.",
        standards: ["OWASP API9:2023", "OWASP API8:2023"],
    }
    KeysExist = "keys.exist" {
        title: "There is a key to use",
        why: "With authentication on and no active key, every request is refused; people then turn authentication off.",
        standards: ["OWASP API2:2023", "NIST CSF PR.AC-1"],
    }
    KeysExpiry = "keys.expiry" {
        title: "Every key expires",
        why: "A key that never expires stays valid long after the laptop, script or colleague that had it is gone.",
        standards: ["OWASP API2:2023", "NIST CSF PR.AC-1"],
    }
    KeysAge = "keys.age" {
        title: "No key is older than the rotation age",
        why: "Old keys have had the most chances to leak; rotate them every 90 days.",
        standards: ["OWASP API2:2023", "NIST CSF PR.AC-1"],
    }
    KeysSeparation = "keys.separation" {
        title: "Admin and inference keys are separate",
        why: "A key that can both run models and administer the server turns any leaked client key into full control.",
        standards: ["OWASP API5:2023", "NIST CSF PR.AC-4"],
    }
    KeysStorage = "keys.storage" {
        title: "Key secrets live only in the keychain",
        why: "keys.toml must hold hashes, never key text; the text lives in the OS keychain or nowhere.",
        standards: ["OWASP API2:2023", "NIST CSF PR.DS-1"],
    }
    FilesPermissions = "files.permissions" {
        title: "Private files are readable by you alone",
        why: "Settings, keys and certificate keys readable by other users let them take over the server.",
        standards: ["NIST CSF PR.AC-4", "NIST CSF PR.DS-1"],
    }
    AuditEnabled = "audit.enabled" {
        title: "Requests and key changes are audited",
        why: "Without an audit log nobody can tell afterwards who used which key, from where.",
        standards: ["NIST SP 800-207 (tenet 7)", "NIST CSF PR.PT-1"],
    }
}

impl fmt::Display for ItemId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ItemId {
    type Err = String;

    fn from_str(text: &str) -> Result<ItemId, String> {
        ItemId::ALL
            .iter()
            .copied()
            .find(|id| id.as_str() == text)
            .ok_or_else(|| format!("no checklist item `{text}`; `gatehouse check` lists the ids"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_reads_back_as_itself_and_has_its_text() {
        for id in ItemId::ALL {
            assert_eq!(id.as_str().parse::<ItemId>(), Ok(*id));
            assert_eq!(serde_json::to_value(id).unwrap(), serde_json::json!(id.as_str()));
            assert!(
                !id.title().is_empty() && !id.why().is_empty() && !id.standards().is_empty(),
                "{id}"
            );
        }
        let unique: std::collections::HashSet<_> = ItemId::ALL.iter().map(|id| id.as_str()).collect();
        assert_eq!(unique.len(), ItemId::ALL.len());
    }

    #[test]
    fn an_unknown_id_says_where_the_ids_are() {
        let error = "auth.requierd".parse::<ItemId>().unwrap_err();
        assert!(
            error.contains("`auth.requierd`") && error.contains("gatehouse check"),
            "{error}"
        );
    }
}
