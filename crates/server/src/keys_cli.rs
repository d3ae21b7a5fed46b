//! `gatehouse keys …`: create, list, reveal, revoke and rotate API keys. A key's text is printed
//! only by `create`, `rotate` and `reveal`, on stdout; everything else a person reads goes to
//! stderr. Every change is written to the audit log.

use clap::Subcommand;
use gatehouse_core::audit::Actor;
use gatehouse_core::keys::store::{DEFAULT_LIFETIME, ROTATION_GRACE};
use gatehouse_core::keys::{KeyError, KeyRecord, KeyStore, NewKey, Scope, Storage, parse_duration};
use gatehouse_core::ops;

use crate::audited;
use gatehouse_core::paths::Paths;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; its text is printed once (and kept in the keychain).
    Create {
        /// A label for people, e.g. `laptop` or `ci`.
        #[arg(long, default_value = "api key")]
        name: String,
        /// infer, workflows, metrics or admin; repeat for several (default: infer).
        #[arg(long = "scope")]
        scopes: Vec<Scope>,
        /// Only this model may be run with the key (inference and workflow model steps); repeat
        /// for several (default: every model).
        #[arg(long = "model")]
        models: Vec<String>,
        /// Lifetime such as 90d, 12h or 30m, or `never` (default: 90d).
        #[arg(long)]
        expires: Option<String>,
        /// Keep only the key's hash and print the key once (headless machines, CI).
        #[arg(long)]
        no_keychain: bool,
        /// Also print the card to hand the key over with: the endpoint, the CA to trust, the
        /// key, its deadline and models, and a QR code of it all (for a demo key).
        #[arg(long, conflicts_with = "json")]
        share: bool,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never their text).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Print a key's text, from the keychain.
    Reveal {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: running servers refuse it within a second.
    Revoke {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Replace a key with a new one; the old one keeps working for the grace period (default 24h).
    Rotate {
        id: String,
        /// How long the old key keeps working, e.g. 24h or 7d.
        #[arg(long)]
        grace: Option<String>,
        /// Lifetime of the new key (default: 90d).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long)]
        no_keychain: bool,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: KeysCommand, paths: &Paths) -> Result<(), String> {
    let store = KeyStore::new(paths.keys_file());
    let ctx = ops::Context::new(paths, Actor::Cli);
    let storage = |no_keychain: bool| {
        if no_keychain {
            Storage::HashOnly
        } else {
            Storage::Keychain
        }
    };
    match command {
        KeysCommand::Create {
            name,
            scopes,
            models,
            expires,
            no_keychain,
            share,
            json,
        } => {
            let lifetime = lifetime(expires.as_deref())?;
            let spec = gatehouse_core::keys::KeySpec {
                name: &name,
                scopes: &scopes,
                models: &models,
                lifetime,
            };
            let new = audited(ops::create_key(&ctx, &spec, storage(no_keychain)))?;
            print_new(&new, json, "Created");
            if share {
                print_share(&new, paths);
            }
        }
        KeysCommand::List { json } => {
            let file = store.load().map_err(text)?;
            if json {
                let rows: Vec<Value> = file.keys.iter().map(describe).collect();
                println!("{}", serde_json::to_string_pretty(&rows).map_err(text)?);
            } else {
                print_table(&file.keys);
            }
        }
        KeysCommand::Reveal { id, json } => {
            let key = audited(ops::reveal_key(&ctx, &id))?;
            if json {
                println!("{}", json!({"id": id, "key": key.expose()}));
            } else {
                println!("{}", key.expose());
            }
        }
        KeysCommand::Revoke { id, json } => {
            let ops::Revoked {
                record: revoked,
                left_in_keychain,
            } = audited(ops::revoke_key(&ctx, &id))?;
            if let Some(problem) = left_in_keychain {
                eprintln!(
                    "gatehouse: key {id} is revoked, but its text could not be removed from the keychain: {problem}"
                );
            }
            if json {
                println!("{}", describe(&revoked));
            } else {
                eprintln!(
                    "Revoked key {id} ({}); running servers refuse it within a second.",
                    revoked.name
                );
            }
        }
        KeysCommand::Rotate {
            id,
            grace,
            expires,
            no_keychain,
            json,
        } => {
            let grace = match grace.as_deref() {
                None => ROTATION_GRACE,
                Some(text) => parse_duration(text)
                    .map_err(text_of)?
                    .unwrap_or(time::Duration::ZERO),
            };
            let lifetime = lifetime(expires.as_deref())?;
            let ops::Rotated { new, old } =
                audited(ops::rotate_key(&ctx, &id, grace, lifetime, storage(no_keychain)))?;
            if json {
                let mut value = new_json(&new);
                value["replaces"] = describe(&old);
                println!("{value}");
            } else {
                print_new(&new, false, "Rotated");
                eprintln!("The old key {id} keeps working until {}.", stamp(old.expires));
            }
        }
    }
    Ok(())
}

fn lifetime(text: Option<&str>) -> Result<Option<time::Duration>, String> {
    match text {
        None => Ok(Some(DEFAULT_LIFETIME)),
        Some(text) => parse_duration(text).map_err(text_of),
    }
}

fn text(error: impl std::fmt::Display) -> String {
    error.to_string()
}

fn text_of(error: KeyError) -> String {
    error.to_string()
}

fn stamp(at: Option<OffsetDateTime>) -> String {
    at.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "never".into())
}

fn describe(record: &KeyRecord) -> Value {
    json!({
        "id": record.id,
        "name": record.name,
        "scopes": record.scopes,
        "models": record.models,
        "state": record.state(OffsetDateTime::now_utc()),
        "created": stamp(Some(record.created)),
        "expires": record.expires.map(|_| stamp(record.expires)),
        "revoked": record.revoked.map(|_| stamp(record.revoked)),
        "last_used": record.last_used.map(|_| stamp(record.last_used)),
        "rotated_to": record.rotated_to,
        "storage": record.storage,
    })
}

fn new_json(new: &NewKey) -> Value {
    let mut value = describe(&new.record);
    value["key"] = Value::String(new.key.expose().clone());
    value
}

fn print_new(new: &NewKey, json: bool, verb: &str) {
    if json {
        println!("{}", new_json(new));
        return;
    }
    let record = &new.record;
    let scopes: Vec<&str> = record.scopes.iter().map(|s| s.name()).collect();
    eprintln!(
        "{verb} key {} ({}; scopes: {}; expires: {}):",
        record.id,
        record.name,
        scopes.join(", "),
        stamp(record.expires)
    );
    println!("{}", new.key.expose());
    match record.storage {
        gatehouse_core::keys::Storage::Keychain => {
            eprintln!(
                "It is in your keychain; `gatehouse keys reveal {}` shows it again.",
                record.id
            )
        }
        gatehouse_core::keys::Storage::HashOnly => {
            eprintln!("Only its hash was kept: copy it now, it cannot be shown again.")
        }
    }
    eprintln!("Try it: curl -H \"Authorization: Bearer $KEY\" http://127.0.0.1:9001/v2/models/magika");
}

/// The share card on stderr (the key alone stays on stdout, for scripts).
fn print_share(new: &NewKey, paths: &Paths) {
    let card = gatehouse_core::keys::share::ShareCard::for_key(paths, &new.record, new.key.expose());
    eprintln!("\n{}{}", card.text(), card.qr_terminal());
    if new.record.expires.is_none() {
        eprintln!("warning: this key never expires; a key to hand out should, e.g. --expires 30m");
    }
}

fn print_table(records: &[KeyRecord]) {
    if records.is_empty() {
        eprintln!("No keys yet; create one with `gatehouse keys create --name laptop`.");
        return;
    }
    let now = OffsetDateTime::now_utc();
    println!(
        "{:<10} {:<16} {:<24} {:<8} {:<21} {:<21} {:<9}",
        "ID", "NAME", "SCOPES", "STATE", "EXPIRES", "LAST USED", "STORED"
    );
    for record in records {
        let scopes: Vec<&str> = record.scopes.iter().map(|s| s.name()).collect();
        let state = format!("{:?}", record.state(now)).to_lowercase();
        let storage = match record.storage {
            gatehouse_core::keys::Storage::Keychain => "keychain",
            gatehouse_core::keys::Storage::HashOnly => "hash",
        };
        let name: String = record.name.chars().take(16).collect();
        println!(
            "{:<10} {:<16} {:<24} {:<8} {:<21} {:<21} {:<9}",
            record.id,
            name,
            scopes.join(","),
            state,
            stamp(record.expires),
            record.last_used.map_or_else(|| "-".into(), |t| stamp(Some(t))),
            storage
        );
    }
}
