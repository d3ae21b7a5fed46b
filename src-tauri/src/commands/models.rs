//! The Models page: the server's model repository and "try it", which runs the content-type
//! model on a file the way a client would — over HTTP, with one of the user's own keys — and
//! leaves the exact request behind for `curl`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use gatehouse_core::checklist::local_identity;
use gatehouse_core::keys::{KeyStore, Keychain};
use gatehouse_core::probe::{Endpoint, HttpResponse, Prober};
use gatehouse_core::{certs::CertFiles, fsutil};
use serde::Serialize;
use serde_json::json;

use super::Shared;
use crate::error::{Code, CommandError, CommandResult, internal};

/// Long enough for a cold model on a busy laptop, short enough that a hung server is reported.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The one model "try it" runs: the content-type classifier setup installs.
const TRY_MODEL: &str = "magika";

/// Sends one request to the supervised server, with key `key_id`'s text from the keychain.
pub async fn request(
    state: &Shared<'_>,
    method: &str,
    path: &str,
    key_id: Option<&str>,
    body: &[u8],
) -> CommandResult<HttpResponse> {
    let url = state.supervisor.status().url.ok_or_else(|| {
        CommandError::new(
            Code::ServerNotRunning,
            "the server is not running",
            "start it on the Dashboard",
        )
    })?;
    let prober = Prober::new(Endpoint::parse(&url)?, local_identity(&state.paths), TIMEOUT);
    let key = match key_id {
        Some(id) => Some(KeyStore::new(state.paths.keys_file()).reveal(id, Keychain::connect)?),
        None => None,
    };
    let bearer = key.as_ref().map(|k| format!("Bearer {}", k.expose()));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(bearer) = &bearer {
        headers.push(("Authorization", bearer.as_str()));
    }
    // The key goes only to a server whose certificate verifies against a CA Gatehouse trusts.
    let response = prober
        .request_verified(method, path, &headers, body)
        .await
        .map_err(|error| match error {
            gatehouse_core::probe::ProbeError::Handshake { .. } => CommandError::new(
                Code::ServerNotVerified,
                format!(
                    "{error}; the panel sends your key only to a server whose certificate verifies against the local CA, or against the CA a certificate was imported with"
                ),
                "if you imported the server's certificate, import it again with its CA on the Certificates page",
            ),
            other => other.into(),
        })?;
    if response.status >= 400 {
        // The server's own code travels on, so the page can tell a wrong key from a wrong shape.
        let answer = serde_json::from_slice::<serde_json::Value>(&response.body).ok();
        let field = |name: &str| {
            answer
                .as_ref()
                .and_then(|v| v.get(name)?.as_str().map(str::to_string))
        };
        let (message, fix) =
            gatehouse_core::explain::split(&field("error").unwrap_or_else(|| response.text()));
        return Err(CommandError {
            code: field("code").unwrap_or_else(|| Code::ServerRefused.as_str().into()),
            message: format!(
                "the server answered {} to {method} {path}: {message}",
                response.status
            ),
            fix,
        });
    }
    Ok(response)
}

#[tauri::command]
pub async fn models_index(
    state: Shared<'_>,
    key_id: String,
) -> CommandResult<Vec<gatehouse_core::wire::IndexEntry>> {
    let response = request(&state, "POST", "/v2/repository/index", Some(&key_id), b"{}").await?;
    serde_json::from_slice(&response.body).map_err(|e| internal("reading the server's answer", e))
}

#[derive(Serialize, ts_rs::TS)]
pub struct Guess {
    pub label: String,
    /// Softmax probability, 0 to 1.
    pub score: f64,
}

/// What "try it" found, and how to send the same request yourself.
#[derive(Serialize, ts_rs::TS)]
pub struct TryResult {
    pub guesses: Vec<Guess>,
    pub elapsed_ms: f64,
    /// The request body, saved so the `curl` line can send it again.
    pub request_file: PathBuf,
    pub curl: String,
}

/// Classifies a file from its first and last 4 KiB (all the model reads).
#[tauri::command]
pub async fn model_try(
    state: Shared<'_>,
    key_id: String,
    head: Vec<u8>,
    tail: Vec<u8>,
) -> CommandResult<TryResult> {
    let body = json!({
        "id": "panel-try-it",
        "inputs": [{"name": "bytes", "shape": [1, 2 * FEATURE_BYTES], "datatype": "INT32",
                    "data": magika_features(&head, &tail)}],
    });
    let body = serde_json::to_vec(&body).map_err(|e| internal("writing the request", e))?;
    let path = format!("/v2/models/{TRY_MODEL}/infer");
    let started = Instant::now();
    let response = request(&state, "POST", &path, Some(&key_id), &body).await?;
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    let answer: serde_json::Value =
        serde_json::from_slice(&response.body).map_err(|e| internal("reading the server's answer", e))?;
    let scores: Vec<f64> = answer["outputs"][0]["data"]
        .as_array()
        .map(|data| data.iter().filter_map(serde_json::Value::as_f64).collect())
        .unwrap_or_default();
    let metadata = request(
        &state,
        "GET",
        &format!("/v2/models/{TRY_MODEL}"),
        Some(&key_id),
        &[],
    )
    .await?;
    let labels: Vec<String> = serde_json::from_slice::<serde_json::Value>(&metadata.body)
        .map_err(|e| internal("reading the model's metadata", e))?["labels"]
        .as_array()
        .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();

    // The file's bytes are in the request: kept private to the user like everything else here.
    let request_file = state
        .paths
        .data_dir
        .join("try-it")
        .join(format!("{TRY_MODEL}-request.json"));
    if let Some(dir) = request_file.parent() {
        fsutil::ensure_private_dir(dir).map_err(|e| {
            CommandError::new(
                Code::WriteFailed,
                format!("cannot create {}: {e}", dir.display()),
                "check that your data directory is writable",
            )
        })?;
    }
    fsutil::write_atomic(&request_file, &body).map_err(|e| {
        CommandError::new(
            Code::WriteFailed,
            format!("cannot save the request to {}: {e}", request_file.display()),
            "check free disk space",
        )
    })?;
    let url = state.supervisor.status().url.unwrap_or_default();
    let ca = CertFiles::new(state.paths.certs_dir()).ca();
    let cacert = if url.starts_with("https:") {
        format!(" --cacert {}", ca.display())
    } else {
        String::new()
    };
    Ok(TryResult {
        guesses: top(&scores, &labels, 3),
        elapsed_ms,
        curl: format!(
            "curl -s{cacert} -H \"Authorization: Bearer $GATEHOUSE_KEY\" -H 'Content-Type: application/json' -d @{} {url}{path}",
            request_file.display()
        ),
        request_file,
    })
}

/// Bytes taken from each end of a file.
const FEATURE_BYTES: usize = 1024;
/// The value that fills the features of a file shorter than that.
const PADDING: i32 = 256;

/// Magika's input: the first 1024 bytes of the file (leading whitespace stripped) padded at the
/// end, then the last 1024 (trailing whitespace stripped) padded at the front. `head` and `tail`
/// are the file's first and last 4 KiB (the same bytes for a small file).
fn magika_features(head: &[u8], tail: &[u8]) -> Vec<i32> {
    let start = head
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(head.len());
    let end = tail
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    let (head, tail) = (&head[start..], &tail[..end]);
    let mut features: Vec<i32> = head.iter().take(FEATURE_BYTES).map(|&b| i32::from(b)).collect();
    features.resize(FEATURE_BYTES, PADDING);
    let last = &tail[tail.len().saturating_sub(FEATURE_BYTES)..];
    features.extend(std::iter::repeat_n(PADDING, FEATURE_BYTES - last.len()));
    features.extend(last.iter().map(|&b| i32::from(b)));
    features
}

/// The `n` most likely labels with their probabilities. Magika's output already is a probability
/// distribution; raw scores (logits) from another model would go through softmax first.
fn top(scores: &[f64], labels: &[String], n: usize) -> Vec<Guess> {
    let total: f64 = scores.iter().sum();
    let probabilities: Vec<f64> =
        if scores.iter().all(|s| (0.0..=1.0).contains(s)) && (total - 1.0).abs() < 1e-3 {
            scores.to_vec()
        } else {
            let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let exp: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
            let sum: f64 = exp.iter().sum();
            exp.iter().map(|e| e / sum).collect()
        };
    let mut ranked: Vec<(usize, f64)> = probabilities.into_iter().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
    ranked
        .into_iter()
        .take(n)
        .map(|(i, score)| Guess {
            label: labels.get(i).cloned().unwrap_or_else(|| format!("class {i}")),
            score,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_strip_whitespace_and_pad_both_halves() {
        let features = magika_features(b"  fn main() {}\n\n", b"  fn main() {}\n\n");
        assert_eq!(features.len(), 2 * FEATURE_BYTES);
        assert_eq!(features[0], i32::from(b'f'));
        assert_eq!(features[11], i32::from(b'}'));
        // Only leading whitespace goes from the head, only trailing from the tail.
        assert_eq!(features[12], i32::from(b'\n'));
        assert_eq!(features[14], PADDING);
        assert_eq!(features[FEATURE_BYTES], PADDING);
        assert_eq!(features[2 * FEATURE_BYTES - 14], i32::from(b' '));
        assert_eq!(*features.last().unwrap(), i32::from(b'}'));
        assert_eq!(features[2 * FEATURE_BYTES - 12], i32::from(b'f'));
    }

    #[test]
    fn a_long_file_fills_both_halves_from_its_ends() {
        let head = vec![b'a'; 4096];
        let tail = vec![b'z'; 4096];
        let features = magika_features(&head, &tail);
        assert!(features[..FEATURE_BYTES].iter().all(|&f| f == i32::from(b'a')));
        assert!(features[FEATURE_BYTES..].iter().all(|&f| f == i32::from(b'z')));
    }

    #[test]
    fn top_ranks_by_probability_and_names_each_class() {
        let labels = vec!["txt".to_string(), "rust".to_string(), "json".to_string()];
        let guesses = top(&[0.0, 3.0, 1.0], &labels, 2);
        assert_eq!(guesses.len(), 2);
        assert_eq!(guesses[0].label, "rust");
        assert_eq!(guesses[1].label, "json");
        assert!(guesses[0].score > 0.8 && guesses[0].score < 1.0);
        // Probabilities are kept as they are.
        let guesses = top(&[0.1, 0.7, 0.2], &labels, 1);
        assert_eq!(guesses[0].label, "rust");
        assert!((guesses[0].score - 0.7).abs() < 1e-9);
    }
}
