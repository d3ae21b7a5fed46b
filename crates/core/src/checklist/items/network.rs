//! Where the server can be reached from: this computer's other addresses, and names it must refuse.

use super::*;

/// Whether the server answers on addresses of this computer other than the one probed: another
/// loopback address (answers only when bound to every interface) and the address of the
/// interface that holds the default route.
pub(in crate::checklist) async fn exposure(
    prober: &Prober,
    loopback_only: bool,
    tls: bool,
    auth: bool,
) -> Item {
    let mut found = Vec::new();
    let mut reachable = Vec::new();
    for (ip, accepted, seen) in connect_elsewhere(prober, prober.endpoint.port).await {
        if accepted {
            reachable.push(ip.to_string());
        }
        found.push(seen);
    }
    let fix = set("server.host", "127.0.0.1");
    if loopback_only && reachable.is_empty() {
        return item(
            ItemId::NetworkExposure,
            Status::Pass,
            "only this computer can connect",
            found,
            None,
        );
    }
    let at = if reachable.is_empty() {
        "beyond this computer".to_string()
    } else {
        format!("on {}", reachable.join(", "))
    };
    if !tls || !auth {
        let missing = match (tls, auth) {
            (false, false) => "without TLS or authentication",
            (false, true) => "without TLS",
            _ => "without authentication",
        };
        item(
            ItemId::NetworkExposure,
            Status::Fail,
            format!("reachable {at} {missing}"),
            found,
            fix,
        )
    } else {
        item(
            ItemId::NetworkExposure,
            Status::Warn,
            format!("reachable {at}; protected by TLS and keys"),
            found,
            fix,
        )
    }
}

/// Connects to `port` on this computer's other addresses (not the one probed): for each, whether
/// it accepted and the evidence line. The HTTP port's exposure and the gRPC port's are both this.
pub(in crate::checklist) async fn connect_elsewhere(
    prober: &Prober,
    port: u16,
) -> Vec<(IpAddr, bool, Evidence)> {
    let mut others = other_addresses();
    others.retain(|ip| ip.to_string() != prober.endpoint.host);
    let probes = others.iter().map(|ip| async move {
        let result = crate::probe::connect(&ip.to_string(), port, prober.timeout).await;
        let observed = match &result {
            Ok(_) => "connection accepted".to_string(),
            Err(error) => describe(error),
        };
        (
            *ip,
            result.is_ok(),
            evidence(format!("TCP connect {ip}:{port}"), observed),
        )
    });
    join_all(probes).await
}

/// An exposure with a deadline says when it ends: still a warning (it is open now), but one that
/// ends by itself, unlike an address set for good.
pub(in crate::checklist) fn with_deadline(mut item: Item, settings: &Settings) -> Item {
    let Some(until) = crate::exposure::deadline(settings) else {
        return item;
    };
    if item.status == Status::Pass {
        return item;
    }
    let left = until - OffsetDateTime::now_utc();
    let minutes = left.whole_minutes().max(0);
    item.summary = format!(
        "{}; until {until} ({} h {} min left), then back to this computer only",
        item.summary,
        minutes / 60,
        minutes % 60
    );
    item.evidence
        .push(evidence("settings.toml server.exposed_until", until.to_string()));
    item.fix = Some(Fix::SetSetting {
        key: "server.host".into(),
        value: "127.0.0.1".into(),
    });
    item
}

/// The addresses probed besides the server's own: `GATEHOUSE_PROBE_ADDRESSES` (comma-separated)
/// when set — tests keep their traffic on loopback with it —, else 127.0.0.2 and the address of
/// the interface holding the default route.
pub(in crate::checklist) fn other_addresses() -> Vec<IpAddr> {
    if let Ok(list) = std::env::var("GATEHOUSE_PROBE_ADDRESSES") {
        return list.split(',').filter_map(|a| a.trim().parse().ok()).collect();
    }
    let mut others = vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))];
    others.extend(crate::net::network_address());
    others
}

/// A name no server of this computer has; the rebinding probe addresses requests to it.
pub(in crate::checklist) const FOREIGN_HOST: &str = "rebind-probe.invalid";

/// Sends public and protected requests addressed to a foreign name, as a web page reaching the
/// server through a rebound DNS name would: each must get 421.
pub(in crate::checklist) async fn host_check(prober: &Prober) -> Item {
    let host = [("Host", FOREIGN_HOST)];
    let paths = ["/", "/info", "/v2/health/ready", "/v2"];
    let responses = join_all(
        paths
            .iter()
            .map(|path| async move { (*path, prober.request("GET", path, &host, &[]).await) }),
    )
    .await;
    let found: Vec<Evidence> = responses
        .iter()
        .map(|(path, response)| {
            evidence(
                format!("GET {path} with Host: {FOREIGN_HOST}"),
                observed(response),
            )
        })
        .collect();
    let statuses: Vec<Option<u16>> = responses
        .iter()
        .map(|(_, r)| r.as_ref().ok().map(|r| r.status))
        .collect();
    if statuses.iter().all(|s| *s == Some(421)) {
        return item(
            ItemId::NetworkHostCheck,
            Status::Pass,
            "requests to a name that is not the server's get 421",
            found,
            None,
        );
    }
    let answered: Vec<&str> = responses
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.status != 421 && r.status < 500))
        .map(|(path, _)| *path)
        .collect();
    if answered.is_empty() {
        return item(
            ItemId::NetworkHostCheck,
            Status::Unknown,
            "the probes did not get a clear answer",
            found,
            None,
        );
    }
    item(
        ItemId::NetworkHostCheck,
        Status::Fail,
        format!(
            "{} answered a request addressed to {FOREIGN_HOST}: a web page could read it through a rebound DNS name",
            answered.join(", ")
        ),
        found,
        None,
    )
}
