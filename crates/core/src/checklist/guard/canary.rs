//! `guard.key_stripped`: a canary request carrying a made-up Gatehouse key, followed into the
//! output of the server Gatehouse launched, to prove from that server's own log that the key
//! never reached it.

use super::*;

/// What the canary request showed: a request carrying a made-up Gatehouse key in every place a
/// key can go, with a nonce the guarded server logs (`gatehouse_canary=`).
pub(in crate::checklist) struct KeyStripped {
    pub servers: String,
    /// Whether Gatehouse launched the server, and so reads its output.
    pub launched: bool,
    /// The public route the canary went to; none when the preset has none.
    pub route: Option<String>,
    /// Status of the canary's answer.
    pub answer: Option<u16>,
    /// How the server's output showed the canary: `Some(true)` with a key beside it.
    pub logged: Option<bool>,
    /// Lines of the server's output that held a Gatehouse key, canary or not.
    pub keys_seen: u64,
    pub observed: String,
}

/// How long the server may take to log the canary.
const CANARY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) async fn key_stripped(prober: &Prober, guarding: &Guarding, settings: &Settings) -> Item {
    let preset = crate::guard::preset(&guarding.preset);
    let table = route_table(&guarding.preset, settings);
    let route = preset.and_then(|p| p.health).filter(|path| {
        table
            .as_ref()
            .is_ok_and(|t| t.access("GET", path) == Access::Public)
    });
    let mut seen = KeyStripped {
        servers: preset.map_or("the guarded server", |p| p.servers).into(),
        launched: guarding.launched,
        route: route.map(str::to_string),
        answer: None,
        logged: None,
        keys_seen: guarding.output.as_ref().map_or(0, |o| o.keys_seen),
        observed: String::new(),
    };
    let (Some(route), true) = (route, guarding.launched) else {
        return judge_key_stripped(&seen);
    };
    // A key of Gatehouse's shape that no key store holds, so it opens nothing wherever it lands.
    let Ok((nonce, canary)) = crate::keys::format::generate() else {
        return judge_key_stripped(&seen);
    };
    let nonce: String = nonce.chars().filter(char::is_ascii_alphanumeric).collect();
    let path = format!(
        "{route}?{}={nonce}&api_key={canary}",
        crate::wire::CANARY_PARAMETER
    );
    let bearer = format!("Bearer {canary}");
    let response = prober
        .request(
            "GET",
            &path,
            &[("authorization", &bearer), ("x-api-key", &canary)],
            &[],
        )
        .await;
    seen.answer = response.as_ref().ok().map(|r| r.status);
    seen.observed = observed(&response);
    let deadline = tokio::time::Instant::now() + CANARY_WAIT;
    while tokio::time::Instant::now() < deadline {
        let output = match prober.request("GET", routes::INFO, &[], &[]).await {
            Ok(response) => serde_json::from_slice::<ServerInfo>(&response.body)
                .ok()
                .and_then(|info| info.guarding?.output),
            Err(_) => None,
        };
        if let Some(output) = output {
            seen.keys_seen = output.keys_seen;
            if let Some(canary) = output.canaries.iter().find(|c| c.nonce == nonce) {
                seen.logged = Some(canary.key_seen);
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    judge_key_stripped(&seen)
}

pub(in crate::checklist) fn judge_key_stripped(seen: &KeyStripped) -> Item {
    const ID: ItemId = ItemId::GuardKeyStripped;
    let servers = &seen.servers;
    let mut found = vec![evidence(
        "lines of its output holding a Gatehouse key",
        seen.keys_seen.to_string(),
    )];
    if let Some(route) = &seen.route {
        found.push(evidence(
            format!("GET {route} with a made-up key as Bearer, X-API-Key and api_key"),
            seen.observed.clone(),
        ));
    }
    if seen.logged == Some(true) || seen.keys_seen > 0 {
        return item(
            ID,
            Status::Fail,
            format!(
                "{servers} received a Gatehouse key: its own output shows one; revoke the keys it may have seen and report this, since the guard must never forward a key"
            ),
            found,
            None,
        );
    }
    if !seen.launched {
        return item(
            ID,
            Status::Unknown,
            format!(
                "Gatehouse did not launch {servers}, so it cannot read its output to see what reached it; the guard removes its key from every request all the same (launch it with --launch for the proof)"
            ),
            found,
            None,
        );
    }
    match (&seen.route, seen.logged) {
        (Some(_), Some(false)) => item(
            ID,
            Status::Pass,
            format!(
                "a request carrying a Gatehouse key reached {servers} without it: its own log shows the request, and no key"
            ),
            found,
            None,
        ),
        (None, _) => item(
            ID,
            Status::Unknown,
            format!(
                "the preset has no public route to send a canary to; no Gatehouse key has shown in {servers}'s output"
            ),
            found,
            None,
        ),
        (Some(_), _) if seen.answer.is_none() => item(
            ID,
            Status::Unknown,
            "the canary request got no answer",
            found,
            None,
        ),
        (Some(_), _) => item(
            ID,
            Status::Unknown,
            format!(
                "{servers} does not log the requests it gets (its access log is off), so the canary could not be followed; no Gatehouse key has shown in its output"
            ),
            found,
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stripped(launched: bool, route: bool, answer: Option<u16>, logged: Option<bool>, keys: u64) -> Item {
        judge_key_stripped(&KeyStripped {
            servers: "Ollama".into(),
            launched,
            route: route.then(|| "/".to_string()),
            answer,
            logged,
            keys_seen: keys,
            observed: "200".into(),
        })
    }

    #[test]
    fn the_canary_passes_only_when_the_server_logged_it_without_a_key() {
        assert_eq!(
            stripped(true, true, Some(200), Some(false), 0).status,
            Status::Pass
        );
        let leaked = stripped(true, true, Some(200), Some(true), 1);
        assert_eq!(leaked.status, Status::Fail);
        assert!(
            leaked.summary.contains("received a Gatehouse key"),
            "{}",
            leaked.summary
        );
        // Any key in its output fails, whichever request brought it.
        assert_eq!(
            stripped(true, true, Some(200), Some(false), 3).status,
            Status::Fail
        );
        assert_eq!(stripped(false, true, None, None, 0).status, Status::Unknown);
        assert_eq!(stripped(true, false, None, None, 0).status, Status::Unknown);
        let unlogged = stripped(true, true, Some(200), None, 0);
        assert_eq!(unlogged.status, Status::Unknown);
        assert!(unlogged.summary.contains("does not log"), "{}", unlogged.summary);
        assert_eq!(stripped(true, true, None, None, 0).status, Status::Unknown);
    }
}
