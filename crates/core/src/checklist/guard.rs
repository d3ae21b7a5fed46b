//! The checklist of a guard: the same live probes against Gatehouse's address as for its own
//! server, with its own routes under `/_gatehouse/`, and the items about the server behind it
//! (reached only through the guard, admin routes, custom Python, the key never passed on, its
//! own guide). Each gathers observations first and judges them in a pure function, tested
//! beside it without a server.

use std::net::IpAddr;

use futures_util::future::join_all;

use super::items::{
    authentication, configuration_items, cors, evidence, exposure, host_check, item, metrics_protected,
    observed, other_addresses, public_endpoints,
};
use super::{Evidence, Item, ItemId, Status};

mod canary;
use crate::Settings;
use crate::guard::{Access, RouteTable};
use crate::keys::Scope;
use crate::paths::Paths;
use crate::probe::Prober;
use crate::wire::{Guarding, ServerInfo, routes};
use canary::key_stripped;

pub(super) async fn items(
    prober: &Prober,
    info: &ServerInfo,
    guarding: &Guarding,
    paths: &Paths,
    settings: &Settings,
) -> Vec<Item> {
    let upstream = guarding
        .upstream
        .as_deref()
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
    let (exposure, host_check, auth, public, transport, cors, metrics, around, admin) = tokio::join!(
        Box::pin(exposure(
            prober,
            info.loopback_only,
            info.tls,
            info.auth.unwrap_or(settings.auth.enabled)
        )),
        Box::pin(host_check(prober)),
        Box::pin(authentication(prober)),
        public_endpoints(prober, &[routes::HEALTHZ, routes::READINESS, routes::INFO]),
        Box::pin(super::items::transport(
            prober,
            info.loopback_only,
            Some(info.mtls)
        )),
        cors(prober),
        metrics_protected(prober, info.loopback_only, &[routes::METRICS]),
        Box::pin(around_the_guard(prober, upstream)),
        Box::pin(admin_routes(prober, &guarding.preset, settings)),
    );
    let python = Box::pin(custom_python(prober, info, &guarding.preset, settings)).await;
    let stripped = Box::pin(key_stripped(prober, guarding, settings)).await;
    let mut items = vec![
        super::items::with_deadline(exposure, settings),
        host_check,
        around,
        admin,
        stripped,
    ];
    items.extend(python);
    items.extend([auth, public]);
    items.extend(transport);
    items.push(cors);
    items.push(metrics);
    items.extend(configuration_items(paths, settings));
    if let Some(guide) = crate::guard::preset(&guarding.preset).and_then(|p| p.guide.as_ref()) {
        let item = judge_guide(guide, &items);
        items.insert(0, item);
    }
    items
}

/// The guide's controls, each judged by the items that prove it: the worst of their statuses, in
/// the report's own order (a fail fails the control).
pub(super) fn judge_guide(guide: &crate::guard::Guide, items: &[Item]) -> Item {
    const ID: ItemId = ItemId::GuardGuide;
    let mut worst = Status::Pass;
    let mut failing = Vec::new();
    let mut found = Vec::new();
    for control in guide.controls {
        let statuses: Vec<(ItemId, Status)> = control
            .items
            .iter()
            .map(|id| {
                let status = items
                    .iter()
                    .find(|i| i.id == *id)
                    .map_or(Status::Unknown, |i| i.status);
                (*id, status)
            })
            .collect();
        let status = statuses.iter().map(|(_, s)| *s).max().unwrap_or(Status::Pass);
        // The controls named in the summary are those at the worst status seen.
        if status > worst {
            worst = status;
            failing = vec![control.control];
        } else if status == worst && status != Status::Pass {
            failing.push(control.control);
        }
        let proof = if statuses.is_empty() {
            "enforced by Gatehouse".to_string()
        } else {
            statuses
                .iter()
                .map(|(id, s)| format!("{id} {}", s.name()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        found.push(evidence(control.control, format!("{} — {proof}", control.how)));
    }
    let summary = match worst {
        Status::Pass => format!("{}: every control is in force", guide.title),
        Status::Fail => format!("{}: not met — {}", guide.title, failing.join("; ")),
        Status::Warn => format!(
            "{}: in force, with a warning on {}",
            guide.title,
            failing.join("; ")
        ),
        Status::Unknown => format!("{}: not yet proved — {}", guide.title, failing.join("; ")),
    };
    item(ID, worst, summary, found, None)
}

/// What was seen of the guarded server's port beyond loopback.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AroundTheGuard {
    /// The upstream's address, when the guard told it (only to clients on this computer).
    pub upstream: Option<std::net::SocketAddr>,
    /// Addresses the kernel has a socket listening on for that port (this computer's view).
    pub listening: Vec<IpAddr>,
    /// Other addresses of this computer tried on that port, and whether a connection was accepted.
    pub tried: Vec<(IpAddr, bool)>,
}

async fn around_the_guard(prober: &Prober, upstream: Option<std::net::SocketAddr>) -> Item {
    let Some(address) = upstream else {
        return judge_around(&AroundTheGuard {
            upstream: None,
            listening: Vec::new(),
            tried: Vec::new(),
        });
    };
    let port = address.port();
    let tried = join_all(other_addresses().into_iter().map(|ip| async move {
        (
            ip,
            crate::probe::connect(&ip.to_string(), port, prober.timeout)
                .await
                .is_ok(),
        )
    }))
    .await;
    judge_around(&AroundTheGuard {
        upstream: Some(address),
        listening: crate::ports::listening_addresses(port),
        tried,
    })
}

pub(super) fn judge_around(seen: &AroundTheGuard) -> Item {
    const ID: ItemId = ItemId::GuardUpstreamLoopback;
    let Some(upstream) = seen.upstream else {
        return item(
            ID,
            Status::Unknown,
            "the guard did not say where the server behind it listens (it tells clients on this computer only)",
            Vec::new(),
            None,
        );
    };
    let port = upstream.port();
    let mut found: Vec<Evidence> = seen
        .tried
        .iter()
        .map(|(ip, accepted)| {
            evidence(
                format!("TCP connect {ip}:{port}"),
                if *accepted {
                    "connection accepted"
                } else {
                    "refused"
                },
            )
        })
        .collect();
    found.push(evidence(
        format!("listening sockets for port {port}"),
        if seen.listening.is_empty() {
            "none visible".to_string()
        } else {
            seen.listening
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
    ));
    let beyond: Vec<String> = seen
        .listening
        .iter()
        .filter(|ip| !ip.is_loopback())
        .map(ToString::to_string)
        .chain(
            seen.tried
                .iter()
                .filter(|(ip, accepted)| *accepted && !ip.is_loopback())
                .map(|(ip, _)| ip.to_string()),
        )
        .collect();
    let reached_on_loopback: Vec<String> = seen
        .tried
        .iter()
        .filter(|(ip, accepted)| *accepted && ip.is_loopback())
        .map(|(ip, _)| ip.to_string())
        .collect();
    if !beyond.is_empty() {
        return item(
            ID,
            Status::Fail,
            format!(
                "the server behind the guard also answers on {} port {port}: it can be called without Gatehouse; restart it bound to 127.0.0.1, or let Gatehouse launch it",
                beyond.join(", ")
            ),
            found,
            None,
        );
    }
    if !reached_on_loopback.is_empty() {
        // 127.0.0.2 answering means every loopback address, which still is this computer only,
        // but also that the server was bound to a wildcard that a later network change exposes.
        return item(
            ID,
            Status::Warn,
            format!(
                "the server behind the guard answers on {} too: bound to more than 127.0.0.1",
                reached_on_loopback.join(", ")
            ),
            found,
            None,
        );
    }
    item(
        ID,
        Status::Pass,
        format!("the server behind the guard listens on {upstream} only"),
        found,
        None,
    )
}

/// What the route table says of the preset's admin probe, and what a request to it without a
/// key got.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AdminRoutes {
    pub preset: String,
    /// The route probed and what the table says it needs; none for a preset without admin routes.
    pub probe: Option<((String, String), Access)>,
    /// Status and error code of the probe without a key.
    pub answer: Option<(u16, Option<String>)>,
    pub observed: String,
}

/// The route table the guard runs with: `preset` (as the server reports it) and the settings'
/// own route scopes.
fn route_table(preset: &str, settings: &Settings) -> Result<RouteTable, String> {
    RouteTable::new(&crate::guard::GuardSettings {
        preset: preset.to_string(),
        ..settings.guard.clone()
    })
}

async fn admin_routes(prober: &Prober, preset: &str, settings: &Settings) -> Item {
    let Ok(table) = route_table(preset, settings) else {
        return judge_admin(&AdminRoutes {
            preset: preset.into(),
            probe: None,
            answer: None,
            observed: String::new(),
        });
    };
    let Some((method, path)) = table.preset.admin_probe else {
        return judge_admin(&AdminRoutes {
            preset: preset.into(),
            probe: None,
            answer: None,
            observed: String::new(),
        });
    };
    let response = prober.request(method, path, &[], &[]).await;
    judge_admin(&AdminRoutes {
        preset: preset.into(),
        probe: Some(((method.into(), path.into()), table.access(method, path))),
        answer: response.as_ref().ok().map(|r| (r.status, r.error_code())),
        observed: observed(&response),
    })
}

pub(super) fn judge_admin(seen: &AdminRoutes) -> Item {
    const ID: ItemId = ItemId::GuardAdminRoutes;
    let Some(((method, path), access)) = &seen.probe else {
        return item(
            ID,
            Status::Warn,
            format!(
                "the `{}` preset has no admin routes: every key that may infer can call every route; name the routes that change the server in guard.route_scopes",
                seen.preset
            ),
            Vec::new(),
            None,
        );
    };
    let found = vec![
        evidence(format!("route table: {method} {path}"), format!("needs {access}")),
        evidence(format!("{method} {path} without a key"), seen.observed.clone()),
    ];
    if *access != Access::Key(Scope::Admin) {
        return item(
            ID,
            Status::Fail,
            format!(
                "{method} {path} changes the server but needs only {access}: guard.route_scopes opens it"
            ),
            found,
            None,
        );
    }
    match &seen.answer {
        // Gatehouse's own refusal: the request never reached the server behind it.
        Some((401, Some(code))) if code == "unauthorized" => item(
            ID,
            Status::Pass,
            format!("{method} {path} needs an admin key and Gatehouse refuses it without one"),
            found,
            None,
        ),
        Some(_) => item(
            ID,
            Status::Fail,
            format!("{method} {path} was answered by something other than Gatehouse's refusal"),
            found,
            None,
        ),
        None => item(
            ID,
            Status::Unknown,
            format!("{method} {path} got no answer"),
            found,
            None,
        ),
    }
}

/// What was seen of the custom-Python gate: the switch, and what a workflow carrying a
/// harmless block got.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CustomPythonGate {
    pub servers: String,
    pub env: String,
    pub allowed: bool,
    pub answer: Option<(u16, Option<String>)>,
    pub observed: String,
}

async fn custom_python(
    prober: &Prober,
    info: &ServerInfo,
    preset: &str,
    settings: &Settings,
) -> Option<Item> {
    let preset = crate::guard::preset(preset)?;
    let python = preset.custom_python.as_ref()?;
    let (path, body) = python.probe;
    let response = prober
        .request(
            "POST",
            path,
            &[("content-type", "application/json")],
            body.as_bytes(),
        )
        .await;
    Some(judge_custom_python(&CustomPythonGate {
        servers: preset.servers.into(),
        env: python.env.into(),
        allowed: info
            .custom_python
            .unwrap_or(settings.workflows.allow_custom_python),
        answer: response.as_ref().ok().map(|r| (r.status, r.error_code())),
        observed: observed(&response),
    }))
}

pub(super) fn judge_custom_python(seen: &CustomPythonGate) -> Item {
    const ID: ItemId = ItemId::GuardCustomPython;
    let servers = &seen.servers;
    let found = vec![
        evidence("workflows.allow_custom_python", seen.allowed.to_string()),
        evidence(
            "POST a workflow with a custom Python block, without a key",
            seen.observed.clone(),
        ),
    ];
    if seen.allowed {
        return item(
            ID,
            Status::Fail,
            format!(
                "custom Python is on: workflows with code reach {servers}, started with {}=True, which runs it on this computer",
                seen.env
            ),
            found,
            super::items::set("workflows.allow_custom_python", "false"),
        );
    }
    match &seen.answer {
        Some((403, Some(code))) if code == "custom_python_disabled" => item(
            ID,
            Status::Pass,
            format!(
                "Gatehouse refuses workflows carrying custom Python before they reach {servers}, which runs with {}=False",
                seen.env
            ),
            found,
            None,
        ),
        Some(_) => item(
            ID,
            Status::Fail,
            format!(
                "a workflow carrying custom Python was not refused by Gatehouse's gate in front of {servers}"
            ),
            found,
            None,
        ),
        None => item(
            ID,
            Status::Unknown,
            "the workflow probe got no answer",
            found,
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn around(listening: &[&str], tried: &[(&str, bool)]) -> Item {
        judge_around(&AroundTheGuard {
            upstream: Some("127.0.0.1:11434".parse().unwrap()),
            listening: listening.iter().map(|a| a.parse().unwrap()).collect(),
            tried: tried.iter().map(|(a, ok)| (a.parse().unwrap(), *ok)).collect(),
        })
    }

    #[test]
    fn an_upstream_on_loopback_alone_passes() {
        let judged = around(&["127.0.0.1"], &[("127.0.0.2", false), ("192.168.1.20", false)]);
        assert_eq!(judged.status, Status::Pass, "{}", judged.summary);
    }

    #[test]
    fn an_upstream_reachable_on_the_network_fails_and_names_the_address() {
        let judged = around(&["0.0.0.0"], &[("127.0.0.2", true), ("192.168.1.20", true)]);
        assert_eq!(judged.status, Status::Fail);
        assert!(
            judged.summary.contains("0.0.0.0, 192.168.1.20 port 11434"),
            "{}",
            judged.summary
        );
        // Seen only by connecting (another user's socket the kernel table hides): still a fail.
        let judged = around(&[], &[("192.168.1.20", true)]);
        assert_eq!(judged.status, Status::Fail);
    }

    #[test]
    fn an_upstream_on_every_loopback_address_warns() {
        let judged = around(&["127.0.0.1"], &[("127.0.0.2", true)]);
        assert_eq!(judged.status, Status::Warn, "{}", judged.summary);
    }

    #[test]
    fn an_unknown_upstream_is_unknown() {
        let judged = judge_around(&AroundTheGuard {
            upstream: None,
            listening: Vec::new(),
            tried: Vec::new(),
        });
        assert_eq!(judged.status, Status::Unknown);
    }

    fn admin(access: Access, answer: Option<(u16, Option<&str>)>) -> Item {
        judge_admin(&AdminRoutes {
            preset: "ollama".into(),
            probe: Some((("POST".into(), "/api/pull".into()), access)),
            answer: answer.map(|(s, c)| (s, c.map(str::to_string))),
            observed: "401 unauthorized".into(),
        })
    }

    #[test]
    fn admin_routes_pass_only_when_the_table_and_the_refusal_agree() {
        assert_eq!(
            admin(Access::Key(Scope::Admin), Some((401, Some("unauthorized")))).status,
            Status::Pass
        );
        // The upstream answered instead of Gatehouse.
        assert_eq!(
            admin(Access::Key(Scope::Admin), Some((200, None))).status,
            Status::Fail
        );
        assert_eq!(
            admin(Access::Key(Scope::Admin), Some((401, None))).status,
            Status::Fail
        );
        // The person's own rule opened it to inference keys.
        let opened = admin(Access::Key(Scope::Infer), Some((401, Some("unauthorized"))));
        assert_eq!(opened.status, Status::Fail);
        assert!(opened.summary.contains("needs only infer"), "{}", opened.summary);
        assert_eq!(admin(Access::Public, Some((200, None))).status, Status::Fail);
        assert_eq!(admin(Access::Key(Scope::Admin), None).status, Status::Unknown);
    }

    fn python(allowed: bool, answer: Option<(u16, Option<&str>)>) -> Item {
        judge_custom_python(&CustomPythonGate {
            servers: "Roboflow Inference".into(),
            env: "ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS".into(),
            allowed,
            answer: answer.map(|(s, c)| (s, c.map(str::to_string))),
            observed: String::new(),
        })
    }

    #[test]
    fn custom_python_passes_only_when_off_and_refused_by_the_gate() {
        assert_eq!(
            python(false, Some((403, Some("custom_python_disabled")))).status,
            Status::Pass
        );
        // Roboflow's own refusal (500) or a key check in front means the gate did not see it.
        assert_eq!(python(false, Some((500, None))).status, Status::Fail);
        assert_eq!(
            python(false, Some((401, Some("unauthorized")))).status,
            Status::Fail
        );
        let on = python(true, Some((401, Some("unauthorized"))));
        assert_eq!(on.status, Status::Fail);
        assert!(on.fix.is_some(), "switching it off is the fix");
        assert_eq!(python(false, None).status, Status::Unknown);
    }

    #[test]
    fn the_guide_follows_the_items_that_prove_each_control() {
        let guide = crate::guard::preset("roboflow").unwrap().guide.as_ref().unwrap();
        let ids = [
            ItemId::NetworkExposure,
            ItemId::GuardUpstreamLoopback,
            ItemId::AuthRequired,
            ItemId::TransportTls,
            ItemId::GuardCustomPython,
        ];
        let with = |failing: Option<ItemId>| -> Vec<Item> {
            ids.iter()
                .map(|id| {
                    let status = if Some(*id) == failing {
                        Status::Fail
                    } else {
                        Status::Pass
                    };
                    item(*id, status, "", Vec::new(), None)
                })
                .collect()
        };
        let all = judge_guide(guide, &with(None));
        assert_eq!(all.status, Status::Pass, "{}", all.summary);
        assert_eq!(all.evidence.len(), 4);
        let python = judge_guide(guide, &with(Some(ItemId::GuardCustomPython)));
        assert_eq!(python.status, Status::Fail);
        assert!(
            python.summary.contains("4. Disable custom Python"),
            "{}",
            python.summary
        );
        let missing = judge_guide(guide, &with(None)[..2]);
        assert_eq!(missing.status, Status::Unknown, "{}", missing.summary);
        // A deliberate exposure with TLS and keys warns; the guide says which control.
        let mut exposed = with(None);
        exposed[0].status = Status::Warn;
        let warned = judge_guide(guide, &exposed);
        assert_eq!(warned.status, Status::Warn);
        assert!(
            warned.summary.contains("1. Restrict network access"),
            "{}",
            warned.summary
        );
    }

    #[test]
    fn a_preset_without_admin_routes_warns() {
        let judged = judge_admin(&AdminRoutes {
            preset: "generic".into(),
            probe: None,
            answer: None,
            observed: String::new(),
        });
        assert_eq!(judged.status, Status::Warn);
        assert!(judged.summary.contains("guard.route_scopes"));
    }
}
