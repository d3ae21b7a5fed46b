//! Who gets in: a key is required and checked, a key in a URL is seen, and nothing answers that
//! should need one.

use super::*;

/// A key that is well-formed (checksum included) but was never issued. Its id, `probe000`, is
/// how the security events tell the checklist's own attempt from a guess.
pub(in crate::checklist) fn wrong_key() -> String {
    crate::keys::format::with_checksum(&format!(
        "gth_{}wrongwrongwrongwrongwrongwrongwr",
        crate::events::CHECKLIST_PROBE_KEY_ID
    ))
}

pub(in crate::checklist) async fn authentication(prober: &Prober) -> Item {
    let bearer = format!("Bearer {}", wrong_key());
    let wrong_key = [("Authorization", bearer.as_str())];
    let (anonymous, wrong) = tokio::join!(
        prober.request("GET", "/v2", &[], &[]),
        prober.request("GET", "/v2", &wrong_key, &[]),
    );
    let found = vec![
        evidence("GET /v2 without a key", observed(&anonymous)),
        evidence("GET /v2 with a key that was never issued", observed(&wrong)),
    ];
    let statuses = [&anonymous, &wrong].map(|r| r.as_ref().ok().map(|r| r.status));
    let fix = set("auth.enabled", "true");
    // While someone floods the server with bad keys, the guessing guard answers the wrong key
    // with 429 without checking it: still a refusal, so the item stays judgeable.
    let guarded = wrong
        .as_ref()
        .is_ok_and(|r| r.status == 429 && r.error_code().as_deref() == Some("too_many_auth_failures"));
    match statuses {
        [Some(401), Some(401)] => item(
            ItemId::AuthRequired,
            Status::Pass,
            "requests without a valid key get 401",
            found,
            None,
        ),
        [Some(401), Some(429)] if guarded => item(
            ItemId::AuthRequired,
            Status::Pass,
            "requests without a valid key are refused (401; wrong keys get 429 from the guessing guard, which someone is setting off now)",
            found,
            None,
        ),
        [a, b] if [a, b].iter().any(|s| s.is_some_and(|s| (200..300).contains(&s))) => item(
            ItemId::AuthRequired,
            Status::Fail,
            "protected endpoints answer without a valid key",
            found,
            fix,
        ),
        _ => item(
            ItemId::AuthRequired,
            Status::Unknown,
            "the probes did not get a clear answer",
            found,
            None,
        ),
    }
}

/// Keys sent in a URL in the last 24 hours, as the server counted them.
pub(in crate::checklist) fn key_in_url(reported: Option<&[KeyInUrl]>) -> Item {
    let Some(keys) = reported else {
        return item(
            ItemId::AuthKeyInUrl,
            Status::Unknown,
            "the server tells which keys came in a URL only to clients on its own computer",
            vec![evidence("GET /info keys_in_url", "absent")],
            None,
        );
    };
    if keys.is_empty() {
        return item(
            ItemId::AuthKeyInUrl,
            Status::Pass,
            "no key came in a URL in the last 24 hours",
            vec![evidence("GET /info keys_in_url", "none")],
            None,
        );
    }
    let ids: Vec<&str> = keys.iter().map(|key| key.key_id.as_str()).collect();
    let found = keys
        .iter()
        .map(|key| {
            let last = key
                .last_seen
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let observed = format!(
                "key {} from {}, {} time(s), last at {last}",
                key.key_id, key.address, key.count
            );
            evidence("GET /info keys_in_url", observed)
        })
        .collect();
    item(
        ItemId::AuthKeyInUrl,
        Status::Warn,
        format!(
            "{} sent in a URL in the last 24 hours: send it in an `Authorization: Bearer` or \
             `X-API-Key` header, and rotate it if that URL was logged or shared",
            if ids.len() == 1 {
                format!("key {} was", ids[0])
            } else {
                format!("keys {} were", ids.join(", "))
            }
        ),
        found,
        None,
    )
}

/// Endpoints of common inference servers (Gatehouse/Triton/KServe, TF Serving, Ollama, Roboflow
/// Inference, OpenAI-compatible servers) and plain web servers.
pub(in crate::checklist) const KNOWN_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/v2"),
    ("GET", "/v2/models"),
    ("POST", "/v2/repository/index"),
    ("GET", "/v1/models"),
    ("GET", "/api/tags"),
    ("GET", "/model/registry"),
    ("GET", "/workflows/definition/schema"),
];

pub(in crate::checklist) async fn open_endpoints(prober: &Prober) -> Item {
    let responses =
        join_all(KNOWN_ENDPOINTS.iter().map(|(method, path)| async move {
            (*method, *path, prober.request(method, path, &[], &[]).await)
        }))
        .await;
    let mut found = Vec::new();
    let mut open = Vec::new();
    let mut refused = 0;
    for (method, path, response) in &responses {
        match response {
            Ok(r) if (200..300).contains(&r.status) => open.push(format!("{method} {path}")),
            Ok(r) if r.status == 401 || r.status == 403 => refused += 1,
            _ => {}
        }
        found.push(evidence(
            format!("{method} {path} without credentials"),
            observed(response),
        ));
    }
    if !open.is_empty() {
        item(
            ItemId::AuthRequired,
            Status::Fail,
            format!("answers without credentials: {}", open.join(", ")),
            found,
            None,
        )
    } else if refused > 0 {
        item(
            ItemId::AuthRequired,
            Status::Pass,
            "every known endpoint it serves demands credentials",
            found,
            None,
        )
    } else {
        item(
            ItemId::AuthRequired,
            Status::Unknown,
            "none of the known endpoints answered; cannot tell",
            found,
            None,
        )
    }
}
