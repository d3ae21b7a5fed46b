//! Who may read the metrics and the API documents.

use super::*;

pub(in crate::checklist) async fn metrics_protected(
    prober: &Prober,
    loopback_only: bool,
    paths: &[&str],
) -> Item {
    let responses = join_all(
        paths
            .iter()
            .map(|path| async move { (*path, prober.request("GET", path, &[], &[]).await) }),
    )
    .await;
    let found = responses
        .iter()
        .map(|(path, response)| evidence(format!("GET {path} without a key"), observed(response)))
        .collect();
    let open: Vec<&str> = responses
        .iter()
        .filter(|(_, r)| r.as_ref().is_ok_and(|r| r.status == 200))
        .map(|(path, _)| *path)
        .collect();
    if open.is_empty() {
        item(
            ItemId::MetricsProtected,
            Status::Pass,
            "metrics and docs need a key",
            found,
            None,
        )
    } else if loopback_only {
        item(
            ItemId::MetricsProtected,
            Status::Pass,
            format!("{} open, to this computer only", open.join(" and ")),
            found,
            None,
        )
    } else {
        item(
            ItemId::MetricsProtected,
            Status::Warn,
            format!("{} readable by anyone who can connect", open.join(" and ")),
            found,
            set("server.metrics_access", "key"),
        )
    }
}
