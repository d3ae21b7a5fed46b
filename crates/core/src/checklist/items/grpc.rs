//! The gRPC port: behind the same perimeter as the HTTP port, on the same address, and speaking
//! TLS whenever the HTTP port does. Probed the way a gRPC client without a key would call it.

use super::*;
use crate::probe::{GrpcAnswer, UNAUTHENTICATED};

/// A method that needs a key on Gatehouse's gRPC port.
const PROTECTED_METHOD: &str = "/inference.GRPCInferenceService/ServerMetadata";

/// What the probes saw of the gRPC port.
pub(in crate::checklist) struct GrpcSeen {
    /// `host:port` of the gRPC port, from `/info`; `None` when gRPC is off.
    pub address: Option<String>,
    /// Where the HTTP port listens.
    pub http_address: String,
    pub tls: bool,
    pub loopback_only: bool,
    /// A protected call without a key, over the transport the server speaks.
    pub anonymous: Option<Result<GrpcAnswer, ProbeError>>,
    /// The same call in plain text, when the server speaks TLS.
    pub plaintext: Option<Result<GrpcAnswer, ProbeError>>,
    /// This computer's other addresses that accepted a connection on the gRPC port.
    pub reachable_elsewhere: Vec<String>,
    pub evidence: Vec<Evidence>,
}

pub(in crate::checklist) async fn grpc(prober: &Prober, info: &ServerInfo) -> Item {
    let mut seen = GrpcSeen {
        address: info.grpc_address.clone(),
        http_address: info.address.clone(),
        tls: info.tls,
        loopback_only: info.loopback_only,
        anonymous: None,
        plaintext: None,
        reachable_elsewhere: Vec::new(),
        evidence: Vec::new(),
    };
    let Some(port) = info
        .grpc_address
        .as_deref()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.port())
    else {
        return judge_grpc(seen);
    };
    let anonymous = prober.grpc_call(port, PROTECTED_METHOD, &[], info.tls);
    let plaintext = async {
        if info.tls {
            Some(prober.grpc_call(port, PROTECTED_METHOD, &[], false).await)
        } else {
            None
        }
    };
    let (anonymous, plaintext, elsewhere) =
        tokio::join!(anonymous, plaintext, connect_elsewhere(prober, port));
    let scheme = if info.tls { "TLS" } else { "plain" };
    seen.evidence.push(evidence(
        format!("gRPC {PROTECTED_METHOD} without a key ({scheme}), port {port}"),
        grpc_observed(&anonymous),
    ));
    seen.anonymous = Some(anonymous);
    if let Some(plaintext) = plaintext {
        seen.evidence.push(evidence(
            format!("gRPC {PROTECTED_METHOD} in plain text, port {port}"),
            grpc_observed(&plaintext),
        ));
        seen.plaintext = Some(plaintext);
    }
    for (ip, accepted, found) in elsewhere {
        if accepted {
            seen.reachable_elsewhere.push(ip.to_string());
        }
        seen.evidence.push(found);
    }
    judge_grpc(seen)
}

fn grpc_observed(result: &Result<GrpcAnswer, ProbeError>) -> String {
    match result {
        Ok(answer) => match answer.status {
            Some(status) if answer.message.is_empty() => format!("grpc-status {status}"),
            Some(status) => format!("grpc-status {status}: {}", answer.message),
            None => format!("HTTP {} without a grpc-status", answer.http_status),
        },
        Err(error) => describe(error),
    }
}

/// The verdict on what was seen; pure, so each way the port can be weak is tested on its own.
pub(in crate::checklist) fn judge_grpc(seen: GrpcSeen) -> Item {
    let id = ItemId::GrpcPerimeter;
    let Some(address) = seen.address.clone() else {
        return item(
            id,
            Status::Pass,
            "gRPC is off: nothing listens beside the HTTP port",
            seen.evidence,
            None,
        );
    };
    let host = |a: &str| a.rsplit_once(':').map(|(h, _)| h.to_string()).unwrap_or_default();
    let mut evidence_list = seen.evidence;
    evidence_list.push(evidence(
        "/info address and grpc_address",
        format!("{} and {address}", seen.http_address),
    ));
    let fail = |summary: String, evidence: Vec<Evidence>, fix: Option<Fix>| {
        item(id, Status::Fail, summary, evidence, fix)
    };
    if host(&address) != host(&seen.http_address) {
        return fail(
            format!(
                "gRPC listens on {address} but HTTP on {}: the two ports must share one address",
                seen.http_address
            ),
            evidence_list,
            None,
        );
    }
    if seen.loopback_only && !seen.reachable_elsewhere.is_empty() {
        return fail(
            format!(
                "the gRPC port also answers on {}, beyond the address it was given",
                seen.reachable_elsewhere.join(", ")
            ),
            evidence_list,
            set("server.host", "127.0.0.1"),
        );
    }
    match &seen.anonymous {
        Some(Ok(answer)) if answer.status == Some(UNAUTHENTICATED) => {}
        Some(Ok(answer)) if answer.status == Some(0) => {
            return fail(
                format!("the gRPC port on {address} answers calls without a key"),
                evidence_list,
                set("auth.enabled", "true"),
            );
        }
        Some(Ok(answer)) => {
            return item(
                id,
                Status::Warn,
                format!(
                    "the gRPC port on {address} answered a call without a key with {}, not UNAUTHENTICATED",
                    grpc_observed(&Ok(answer.clone()))
                ),
                evidence_list,
                None,
            );
        }
        Some(Err(error)) => {
            return item(
                id,
                Status::Unknown,
                format!("no gRPC answer from {address}: {}", describe(error)),
                evidence_list,
                None,
            );
        }
        None => {}
    }
    if let Some(Ok(_)) = &seen.plaintext {
        return fail(
            format!("the gRPC port on {address} also answers in plain text"),
            evidence_list,
            None,
        );
    }
    if !seen.tls && !seen.loopback_only {
        return fail(
            format!("gRPC on {address} crosses the network in plain text"),
            evidence_list,
            set("tls.enabled", "true"),
        );
    }
    let transport = if seen.tls { ", speaks only TLS" } else { "" };
    item(
        id,
        Status::Pass,
        format!("the gRPC port on {address} refuses calls without a key{transport}"),
        evidence_list,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u32) -> Option<Result<GrpcAnswer, ProbeError>> {
        Some(Ok(GrpcAnswer {
            http_status: 200,
            status: Some(status),
            message: String::new(),
        }))
    }

    fn seen() -> GrpcSeen {
        GrpcSeen {
            address: Some("127.0.0.1:9002".into()),
            http_address: "127.0.0.1:9001".into(),
            tls: false,
            loopback_only: true,
            anonymous: answer(UNAUTHENTICATED),
            plaintext: None,
            reachable_elsewhere: Vec::new(),
            evidence: Vec::new(),
        }
    }

    fn verdict(seen: GrpcSeen) -> (Status, String) {
        let item = judge_grpc(seen);
        (item.status, item.summary)
    }

    #[test]
    fn a_port_that_refuses_anonymous_calls_where_http_listens_passes() {
        assert_eq!(verdict(seen()).0, Status::Pass);
        let off = GrpcSeen {
            address: None,
            ..seen()
        };
        assert!(verdict(off).1.contains("gRPC is off"));
    }

    #[test]
    fn each_weakness_fails_with_what_was_seen() {
        let open = GrpcSeen {
            anonymous: answer(0),
            ..seen()
        };
        let (status, summary) = verdict(open);
        assert_eq!(status, Status::Fail);
        assert!(summary.contains("without a key"), "{summary}");

        let plaintext = GrpcSeen {
            tls: true,
            plaintext: answer(UNAUTHENTICATED),
            ..seen()
        };
        assert!(verdict(plaintext).1.contains("plain text"));

        let beyond = GrpcSeen {
            reachable_elsewhere: vec!["192.168.1.5".into()],
            ..seen()
        };
        assert!(verdict(beyond).1.contains("192.168.1.5"));

        let elsewhere = GrpcSeen {
            address: Some("0.0.0.0:9002".into()),
            ..seen()
        };
        assert!(verdict(elsewhere).1.contains("share one address"));

        let unencrypted = GrpcSeen {
            address: Some("192.168.1.5:9002".into()),
            http_address: "192.168.1.5:9001".into(),
            loopback_only: false,
            ..seen()
        };
        let (status, summary) = verdict(unencrypted);
        assert_eq!(status, Status::Fail);
        assert!(summary.contains("plain text"), "{summary}");
    }
}
