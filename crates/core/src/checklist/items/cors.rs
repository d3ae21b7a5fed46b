//! Browsers on other sites: what a page from a foreign origin is allowed to read.

use super::*;

/// A page on another site would send this origin.
pub(in crate::checklist) const FOREIGN_ORIGIN: &str = "https://gatehouse-check.invalid";

pub(in crate::checklist) async fn cors(prober: &Prober) -> Item {
    let response = prober
        .request(
            "OPTIONS",
            "/v2",
            &[
                ("Origin", FOREIGN_ORIGIN),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
            &[],
        )
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => {
            return item(
                ItemId::CorsPolicy,
                Status::Unknown,
                "the preflight got no answer",
                vec![evidence("CORS preflight", describe(&error))],
                None,
            );
        }
    };
    let allow_origin = response.header("access-control-allow-origin").unwrap_or("");
    let credentials = response
        .header("access-control-allow-credentials")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let found = vec![evidence(
        format!("OPTIONS /v2 preflight from {FOREIGN_ORIGIN}"),
        format!(
            "{}; Access-Control-Allow-Origin: {}{}",
            response.status,
            if allow_origin.is_empty() {
                "(none)"
            } else {
                allow_origin
            },
            if credentials {
                "; Access-Control-Allow-Credentials: true"
            } else {
                ""
            }
        ),
    )];
    let fix = set("cors.allowed_origins", "");
    if allow_origin == "*" {
        item(
            ItemId::CorsPolicy,
            Status::Fail,
            "any website may call the server (wildcard origin)",
            found,
            fix,
        )
    } else if allow_origin == FOREIGN_ORIGIN {
        item(
            ItemId::CorsPolicy,
            Status::Fail,
            "the server allows whatever origin asks",
            found,
            fix,
        )
    } else {
        item(
            ItemId::CorsPolicy,
            Status::Pass,
            "a foreign origin is not allowed",
            found,
            None,
        )
    }
}
