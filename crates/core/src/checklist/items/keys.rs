//! The keys: that there are some, their expiry and age, their scopes kept apart, where their
//! text is kept.

use super::*;

pub(in crate::checklist) fn keys(paths: &Paths, settings: &Settings) -> Vec<Item> {
    let file = paths.keys_file();
    let source = format!("read {}", file.display());
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return vec![item(
                ItemId::KeysExist,
                Status::Unknown,
                "keys.toml cannot be read",
                vec![evidence(source, error.to_string())],
                None,
            )];
        }
    };
    let parsed = match KeyFile::parse(&text) {
        Ok(parsed) => parsed,
        Err(error) => {
            return vec![item(
                ItemId::KeysExist,
                Status::Fail,
                "keys.toml is broken; the server keeps the last good set",
                vec![evidence(source, error)],
                None,
            )];
        }
    };
    let now = OffsetDateTime::now_utc();
    let active: Vec<_> = parsed
        .keys
        .iter()
        .filter(|k| k.state(now) == KeyState::Active)
        .collect();
    let ids = |keys: &[&&crate::keys::KeyRecord]| {
        keys.iter()
            .map(|k| format!("{} ({})", k.id, k.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut items = Vec::new();
    let count = evidence(
        &source,
        format!("{} active of {} keys", active.len(), parsed.keys.len()),
    );
    items.push(if !active.is_empty() {
        item(
            ItemId::KeysExist,
            Status::Pass,
            format!("{} active key(s)", active.len()),
            vec![count],
            None,
        )
    } else if settings.auth.enabled {
        item(
            ItemId::KeysExist,
            Status::Warn,
            "no active key: every protected request is refused",
            vec![count],
            Some(Fix::CreateKey {
                name: "first key".into(),
                scopes: vec![Scope::Infer],
                expires: "90d".into(),
            }),
        )
    } else {
        item(
            ItemId::KeysExist,
            Status::Warn,
            "no active key",
            vec![count],
            None,
        )
    });
    let forever: Vec<_> = active.iter().filter(|k| k.expires.is_none()).collect();
    items.push(if forever.is_empty() {
        item(
            ItemId::KeysExpiry,
            Status::Pass,
            "every active key has an expiry",
            vec![evidence(&source, "all active keys have `expires`")],
            None,
        )
    } else {
        item(
            ItemId::KeysExpiry,
            Status::Warn,
            format!("{} key(s) never expire", forever.len()),
            vec![evidence(&source, format!("no expiry: {}", ids(&forever)))],
            None,
        )
    });
    let old: Vec<_> = active
        .iter()
        .filter(|k| (now - k.created).whole_days() > ROTATION_DAYS)
        .collect();
    items.push(if old.is_empty() {
        item(
            ItemId::KeysAge,
            Status::Pass,
            format!("no active key is older than {ROTATION_DAYS} days"),
            vec![evidence(&source, "creation dates checked")],
            None,
        )
    } else {
        item(
            ItemId::KeysAge,
            Status::Warn,
            format!(
                "{} key(s) older than {ROTATION_DAYS} days; rotate them",
                old.len()
            ),
            vec![evidence(
                &source,
                format!("older than {ROTATION_DAYS} days: {}", ids(&old)),
            )],
            None,
        )
    });
    let mixed: Vec<_> = active
        .iter()
        .filter(|k| {
            k.scopes.contains(&Scope::Admin)
                && (k.scopes.contains(&Scope::Infer) || k.scopes.contains(&Scope::Workflows))
        })
        .collect();
    items.push(if mixed.is_empty() {
        item(
            ItemId::KeysSeparation,
            Status::Pass,
            "no key both administers and runs models",
            vec![evidence(&source, "scopes checked")],
            None,
        )
    } else {
        item(
            ItemId::KeysSeparation,
            Status::Warn,
            format!("{} key(s) combine admin with inference", mixed.len()),
            vec![evidence(
                &source,
                format!("admin and infer/workflows: {}", ids(&mixed)),
            )],
            None,
        )
    });
    let in_keychain = parsed
        .keys
        .iter()
        .filter(|k| k.storage == Storage::Keychain)
        .count();
    let leaked = secret_in(&text) == Some("an API key");
    items.push(if leaked {
        item(
            ItemId::KeysStorage,
            Status::Fail,
            "keys.toml contains key text",
            vec![evidence(&source, "a full API key appears in the file")],
            None,
        )
    } else {
        item(
            ItemId::KeysStorage,
            Status::Pass,
            "keys.toml holds hashes only",
            vec![evidence(
                &source,
                format!(
                    "no key text in the file; {in_keychain} key(s) in the keychain, {} hash-only",
                    parsed.keys.len() - in_keychain
                ),
            )],
            None,
        )
    });
    items
}
