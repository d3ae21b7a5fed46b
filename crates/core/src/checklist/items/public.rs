//! What anyone may read: the public endpoints, and that they carry no secret.

use super::*;

pub(in crate::checklist) const GATEHOUSE_PUBLIC_PATHS: &[&str] = &[
    "/",
    "/healthz",
    "/readiness",
    "/info",
    "/v2/health/live",
    "/v2/health/ready",
];
pub(in crate::checklist) const EXTERNAL_PUBLIC_PATHS: &[&str] = &[
    "/",
    "/info",
    "/health",
    "/healthz",
    "/v2/health/ready",
    "/api/version",
];

pub(in crate::checklist) async fn public_endpoints(prober: &Prober, paths: &[&str]) -> Item {
    let responses = join_all(
        paths
            .iter()
            .map(|path| async move { (*path, prober.request("GET", path, &[], &[]).await) }),
    )
    .await;
    let mut found = Vec::new();
    let mut leaks = Vec::new();
    for (path, response) in &responses {
        let note = match response {
            Ok(r) if (200..300).contains(&r.status) => match secret_in(&r.text()) {
                Some(kind) => {
                    leaks.push(format!("{path} ({kind})"));
                    format!("{} with {kind} in the body", r.status)
                }
                None => format!("{}; {} bytes, nothing secret", r.status, r.body.len()),
            },
            other => observed(other),
        };
        found.push(evidence(format!("GET {path} without a key"), note));
    }
    if leaks.is_empty() {
        item(
            ItemId::PublicNoSecrets,
            Status::Pass,
            "no key, private key or token in public answers",
            found,
            None,
        )
    } else {
        item(
            ItemId::PublicNoSecrets,
            Status::Fail,
            format!("secrets in {}", leaks.join(", ")),
            found,
            None,
        )
    }
}

/// What kind of secret `text` holds, if any.
pub(in crate::checklist) fn secret_in(text: &str) -> Option<&'static str> {
    if text.contains("PRIVATE KEY-----") {
        return Some("a private key");
    }
    let bytes = text.as_bytes();
    let key_like = text.match_indices("gth_").any(|(at, _)| {
        bytes[at + 4..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count()
            >= 40
    });
    if key_like {
        return Some("an API key");
    }
    let lower = text.to_ascii_lowercase();
    [
        "\"password\":\"",
        "\"api_key\":\"",
        "\"secret\":\"",
        "aws_secret_access_key",
    ]
    .iter()
    .any(|needle| lower.replace(": \"", ":\"").contains(needle))
    .then_some("a credential field")
}
