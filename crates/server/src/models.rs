//! The model repository: Triton's layout, `<root>/<name>/<version>/model.onnx`, with an optional
//! `<root>/<name>/config.toml` (description, labels), served through ONNX Runtime.
//!
//! Loading never fails as a whole: a model that cannot be served (unreadable file, a non-tensor or
//! unsupported output, a broken `config.toml`) is kept in the index with its reason, logged, and the
//! others serve. Each loaded version holds a small pool of sessions, because ONNX Runtime runs
//! concurrent requests on separate sessions without a shared lock; a request borrows one session
//! for the length of one run, on a blocking thread unless the model's runs are measured to be
//! shorter than [`INLINE_RUN_BUDGET`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, ValueType};
use prometheus_client::metrics::histogram::Histogram;
use serde::Deserialize;
use tokio::sync::Semaphore;

use crate::error::{ApiError, ErrorCode};
use crate::tensor::{self, DataType, InputTensor, OutputTensor, TensorSpec};

mod pool;
use pool::*;

/// How the repository builds sessions.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub intra_threads: usize,
    pub sessions_per_model: usize,
    /// Follow a `model.onnx` (or a model directory) that is a symbolic link, even out of the
    /// repository. Off: only regular files inside the repository are opened.
    pub allow_symlinks: bool,
}

/// ONNX Runtime, loaded from its shared library.
#[derive(Clone)]
pub struct Runtime {
    environment: ort::environment::Environment,
    version: String,
}

impl Runtime {
    /// Loads `libonnxruntime.so` from `library`. The error says where it looked and how to fix it.
    pub fn load(library: &Path) -> Result<Runtime, String> {
        if !library.exists() {
            return Err(format!(
                "the ONNX Runtime library is not at {}; run ./scripts/run.sh once (it installs it), or point \
                 ORT_DYLIB_PATH (or inference.onnxruntime) at libonnxruntime.so",
                library.display()
            ));
        }
        let builder = ort::init_from(library)
            .map_err(|error| format!("cannot load ONNX Runtime from {}: {error}", library.display()))?;
        let environment = builder
            .with_name("gatehouse")
            .with_telemetry(false)
            .build()
            .map_err(|error| format!("ONNX Runtime did not start: {error}"))?;
        let canonical = library.canonicalize().unwrap_or_else(|_| library.to_path_buf());
        let version = runtime_version(ort::info(), &canonical);
        Ok(Runtime { environment, version })
    }

    /// The runtime's version string, e.g. `1.31.1`.
    pub fn version(&self) -> String {
        self.version.clone()
    }
}

/// The version a release build names in its build info (`git-branch=rel-1.31.1`); builds from
/// another branch, like the PyPI wheel's (`git-branch=HEAD`), are named by their library file
/// (`libonnxruntime.so.1.31.1`).
fn runtime_version(build_info: &str, library: &Path) -> String {
    let from_branch = build_info
        .split([',', ' '])
        .find_map(|part| part.strip_prefix("git-branch=rel-"));
    let from_file = || {
        library
            .file_name()?
            .to_str()?
            .strip_prefix("libonnxruntime.so.")
            .filter(|v| {
                v.split('.')
                    .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            })
    };
    from_branch.or_else(from_file).unwrap_or("unknown").to_string()
}

/// Optional per-model notes from `config.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    pub description: Option<String>,
    /// Names of the classes, in the order of the model's output scores.
    pub labels: Vec<String>,
    /// Free-form notes per input or output name.
    pub notes: BTreeMap<String, String>,
}

/// Whether a version can be served.
#[derive(Clone)]
pub enum VersionState {
    Ready(Arc<LoadedModel>),
    Unavailable(String),
}

/// One model with all its versions.
pub struct ModelEntry {
    pub name: String,
    pub config: ModelConfig,
    /// Versions by number; the highest ready one is the default.
    pub versions: BTreeMap<u64, VersionState>,
    /// Set when the model as a whole cannot be served (e.g. no version directory).
    pub problem: Option<String>,
}

/// A version that loaded and can run.
pub struct LoadedModel {
    pub name: String,
    pub version: u64,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pool: SessionPool,
    /// Moving average of one run's time inside ONNX Runtime, in nanoseconds; 0 until measured.
    typical_run_nanos: AtomicU64,
    /// This version's series of the inference-time metric, once it has one.
    pub(crate) inference_histogram: OnceLock<Histogram>,
}

/// Runs measured to take less than this stay on the async worker that received the request: a
/// hand-off to the blocking pool costs two thread wake-ups, far more than such a run itself, and a
/// run this short delays other tasks less than parsing the request's JSON did. Anything slower, or
/// not measured yet, runs on the blocking pool.
pub const INLINE_RUN_BUDGET: Duration = Duration::from_micros(100);

pub use gatehouse_core::wire::{IndexEntry, ModelState};

/// All models found under the repository root.
#[derive(Default)]
pub struct Repository {
    pub root: PathBuf,
    pub models: BTreeMap<String, ModelEntry>,
}

impl Repository {
    /// Scans `root` and loads every model version found. Takes seconds for big models: call it on a
    /// blocking thread.
    pub fn load(runtime: &Runtime, root: &Path, options: &LoadOptions) -> Repository {
        let mut models = BTreeMap::new();
        let entries = match std::fs::read_dir(root) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::error!(event = "repository_unreadable", path = %root.display(), %error,
                    "the model repository cannot be read; no models will be served");
                return Repository {
                    root: root.to_path_buf(),
                    models,
                };
            }
        };
        let mut directories: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        directories.sort();
        for directory in directories {
            let Some(name) = directory.file_name().and_then(|n| n.to_str()).map(str::to_string) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let entry = load_model(runtime, root, &name, &directory, options);
            for (version, state) in &entry.versions {
                match state {
                    VersionState::Ready(model) => {
                        tracing::info!(event = "model_loaded", model = %name, version,
                        inputs = model.inputs.len(), outputs = model.outputs.len(), "model ready")
                    }
                    VersionState::Unavailable(reason) => tracing::warn!(event = "model_unavailable",
                        model = %name, version, %reason, "model cannot be served"),
                }
            }
            if let Some(reason) = &entry.problem {
                tracing::warn!(event = "model_unavailable", model = %name, %reason, "model cannot be served");
            }
            models.insert(name, entry);
        }
        Repository {
            root: root.to_path_buf(),
            models,
        }
    }

    /// The ready model for `name` and an optional version (default: the highest ready version).
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, ApiError> {
        let entry = self.models.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
            ApiError::new(
                ErrorCode::ModelNotFound,
                format!(
                    "there is no model `{name}`; models here: {}",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?;
        let unavailable = |reason: &str| {
            ApiError::new(
                ErrorCode::ModelUnavailable,
                format!("model `{name}` cannot be served: {reason}"),
            )
        };
        match version {
            Some(text) => {
                let number: u64 = text.parse().map_err(|_| {
                    ApiError::new(
                        ErrorCode::VersionNotFound,
                        format!("`{text}` is not a version number of model `{name}`"),
                    )
                })?;
                match entry.versions.get(&number) {
                    Some(VersionState::Ready(model)) => Ok(model.clone()),
                    Some(VersionState::Unavailable(reason)) => Err(unavailable(reason)),
                    None => Err(ApiError::new(
                        ErrorCode::VersionNotFound,
                        format!(
                            "model `{name}` has no version {number}; versions: {}",
                            entry.version_list()
                        ),
                    )),
                }
            }
            None => entry.default_version().ok_or_else(|| {
                unavailable(
                    entry
                        .problem
                        .as_deref()
                        .unwrap_or("no version of it loaded; see the repository index"),
                )
            }),
        }
    }

    /// Triton's repository index: one row per version, or per model when it has none.
    pub fn index(&self) -> Vec<IndexEntry> {
        let mut rows = Vec::new();
        for entry in self.models.values() {
            if let Some(reason) = &entry.problem {
                rows.push(IndexEntry {
                    name: entry.name.clone(),
                    version: String::new(),
                    state: ModelState::Unavailable,
                    reason: reason.clone(),
                });
            }
            for (version, state) in &entry.versions {
                let (state, reason) = match state {
                    VersionState::Ready(_) => (ModelState::Ready, String::new()),
                    VersionState::Unavailable(reason) => (ModelState::Unavailable, reason.clone()),
                };
                rows.push(IndexEntry {
                    name: entry.name.clone(),
                    version: version.to_string(),
                    state,
                    reason,
                });
            }
        }
        rows
    }

    pub fn ready_count(&self) -> usize {
        self.models
            .values()
            .flat_map(|m| m.versions.values())
            .filter(|s| matches!(s, VersionState::Ready(_)))
            .count()
    }
}

impl ModelEntry {
    pub fn default_version(&self) -> Option<Arc<LoadedModel>> {
        self.versions.values().rev().find_map(|state| match state {
            VersionState::Ready(model) => Some(model.clone()),
            VersionState::Unavailable(_) => None,
        })
    }

    pub fn version_list(&self) -> String {
        let list: Vec<String> = self.versions.keys().map(u64::to_string).collect();
        if list.is_empty() {
            "none".into()
        } else {
            list.join(", ")
        }
    }
}

fn load_model(
    runtime: &Runtime,
    root: &Path,
    name: &str,
    directory: &Path,
    options: &LoadOptions,
) -> ModelEntry {
    let mut entry = ModelEntry {
        name: name.to_string(),
        config: ModelConfig::default(),
        versions: BTreeMap::new(),
        problem: None,
    };
    let config_path = directory.join("config.toml");
    if config_path.exists() {
        match std::fs::read_to_string(&config_path)
            .map_err(|e| e.to_string())
            .and_then(|text| toml::from_str::<ModelConfig>(&text).map_err(|e| e.message().to_string()))
        {
            Ok(config) => entry.config = config,
            Err(message) => {
                entry.problem = Some(format!("its config.toml is invalid: {message}"));
                return entry;
            }
        }
    }
    let Ok(children) = std::fs::read_dir(directory) else {
        entry.problem = Some("its directory cannot be read".into());
        return entry;
    };
    for child in children.filter_map(Result::ok) {
        let path = child.path();
        let Some(version) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if !path.is_dir() {
            continue;
        }
        let file = path.join("model.onnx");
        let state = match servable(root, &file, version, options.allow_symlinks) {
            Ok(()) => match LoadedModel::load(runtime, name, version, &file, options) {
                Ok(model) => VersionState::Ready(Arc::new(model)),
                // The reason reaches `/v2/repository/index`: no path on disk goes with it.
                Err(reason) => VersionState::Unavailable(without_paths(
                    &reason,
                    &file,
                    &format!("{name}/{version}/model.onnx"),
                )),
            },
            Err(reason) => VersionState::Unavailable(reason),
        };
        entry.versions.insert(version, state);
    }
    if entry.versions.is_empty() {
        entry.problem = Some("no version directory (e.g. `1/model.onnx`) was found".into());
    }
    entry
}

/// Whether `file` may be opened: a regular file, inside the repository, unless links are allowed.
fn servable(root: &Path, file: &Path, version: u64, allow_symlinks: bool) -> Result<(), String> {
    let metadata =
        std::fs::symlink_metadata(file).map_err(|_| format!("version {version} has no model.onnx"))?;
    if allow_symlinks {
        return if file.is_file() {
            Ok(())
        } else {
            Err(format!("version {version}'s model.onnx is not a regular file"))
        };
    }
    if metadata.file_type().is_symlink() {
        return Err(format!(
            "version {version}'s model.onnx is a symbolic link; only regular files inside the model repository are served (copy the file in, or set inference.allow_model_symlinks = true)"
        ));
    }
    if !metadata.is_file() {
        return Err(format!("version {version}'s model.onnx is not a regular file"));
    }
    let inside = match (std::fs::canonicalize(root), std::fs::canonicalize(file)) {
        (Ok(root), Ok(file)) => file.starts_with(root),
        _ => false,
    };
    if !inside {
        return Err(format!(
            "version {version}'s directory leads out of the model repository through a symbolic link; only files inside it are served (set inference.allow_model_symlinks = true to allow it)"
        ));
    }
    Ok(())
}

/// `text` with `file`'s path on disk (as given and resolved) replaced by `shown`.
fn without_paths(text: &str, file: &Path, shown: &str) -> String {
    let mut text = text.to_string();
    let mut paths = vec![file.to_path_buf()];
    paths.extend(std::fs::canonicalize(file));
    for path in paths {
        if let Some(path) = path.to_str().filter(|p| !p.is_empty()) {
            text = text.replace(path, shown);
        }
    }
    text
}

impl LoadedModel {
    fn load(
        runtime: &Runtime,
        name: &str,
        version: u64,
        file: &Path,
        options: &LoadOptions,
    ) -> Result<LoadedModel, String> {
        let count = if options.sessions_per_model == 0 {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
        } else {
            options.sessions_per_model
        };
        let build = {
            let (environment, file, intra_threads) = (
                runtime.environment.clone(),
                file.to_path_buf(),
                options.intra_threads,
            );
            // Later sessions are read from the same file; one that changed since is refused
            // rather than served beside the old one under the old metadata.
            let loaded = file_signature(&file);
            move || -> Result<Session, String> {
                if file_signature(&file) != loaded {
                    return Err(
                        "model.onnx changed on disk since the server loaded it; restart Gatehouse to serve the new file".to_string(),
                    );
                }
                let refused = |error: String| format!("session options were refused: {error}");
                Session::builder(&environment)
                    .map_err(|e| refused(e.to_string()))?
                    .with_optimization_level(GraphOptimizationLevel::All)
                    .map_err(|e| refused(e.to_string()))?
                    .with_intra_threads(intra_threads)
                    .map_err(|e| refused(e.to_string()))?
                    .with_inter_threads(1)
                    .map_err(|e| refused(e.to_string()))?
                    .commit_from_file(&file)
                    .map_err(|error| format!("ONNX Runtime cannot load model.onnx: {error}"))
            }
        };
        let first = build()?;
        let inputs = first
            .inputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype(), "input"))
            .collect::<Result<_, _>>()?;
        let outputs = first
            .outputs()
            .iter()
            .map(|o| spec(o.name(), o.dtype(), "output"))
            .collect::<Result<_, _>>()?;
        Ok(LoadedModel {
            name: name.to_string(),
            version,
            inputs,
            outputs,
            pool: SessionPool::new(first, count, Box::new(build)),
            typical_run_nanos: AtomicU64::new(0),
            inference_histogram: OnceLock::new(),
        })
    }

    /// Checks the request's inputs, runs the model on a blocking thread and returns the requested
    /// outputs (all of them when `requested` is empty), plus the time spent inside ONNX Runtime.
    pub async fn infer(
        self: &Arc<Self>,
        inputs: &[InputTensor],
        requested: &[String],
    ) -> Result<(Vec<OutputTensor>, Duration), ApiError> {
        let values = self.prepare(inputs)?;
        let selected = self.select_outputs(requested)?;
        let permit = Arc::clone(&self.pool.available)
            .acquire_owned()
            .await
            .map_err(|_| ApiError::new(ErrorCode::ShuttingDown, "the server is shutting down"))?;
        let typical = self.typical_run_nanos.load(Ordering::Relaxed);
        if typical != 0 && typical < INLINE_RUN_BUDGET.as_nanos() as u64 {
            let _permit = permit;
            return self.run_blocking(values, &selected);
        }
        let model = Arc::clone(self);
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            model.run_blocking(values, &selected)
        })
        .await;
        match result {
            Ok(outcome) => outcome,
            Err(join_error) if join_error.is_panic() => std::panic::resume_unwind(join_error.into_panic()),
            Err(_) => Err(ApiError::new(
                ErrorCode::ShuttingDown,
                "the server is shutting down",
            )),
        }
    }

    fn prepare(&self, inputs: &[InputTensor]) -> Result<Vec<(String, DynValue)>, ApiError> {
        for input in inputs {
            if !self.inputs.iter().any(|spec| spec.name == input.name) {
                return Err(ApiError::new(
                    ErrorCode::UnknownInput,
                    format!(
                        "model `{}` has no input `{}`; its inputs: {}",
                        self.name,
                        input.name,
                        names(&self.inputs)
                    ),
                ));
            }
        }
        let mut values = Vec::with_capacity(self.inputs.len());
        for spec in &self.inputs {
            let mut matching = inputs.iter().filter(|i| i.name == spec.name);
            let input = matching.next().ok_or_else(|| {
                ApiError::new(
                    ErrorCode::MissingInput,
                    format!(
                        "input `{}` ({} {:?}) is missing; model `{}` needs: {}",
                        spec.name,
                        spec.datatype.name(),
                        spec.shape,
                        self.name,
                        names(&self.inputs)
                    ),
                )
            })?;
            if matching.next().is_some() {
                return Err(ApiError::new(
                    ErrorCode::DuplicateInput,
                    format!("input `{}` is given more than once", spec.name),
                ));
            }
            values.push((spec.name.clone(), tensor::to_ort_value(spec, input)?));
        }
        Ok(values)
    }

    fn select_outputs(&self, requested: &[String]) -> Result<Vec<String>, ApiError> {
        if requested.is_empty() {
            return Ok(self.outputs.iter().map(|o| o.name.clone()).collect());
        }
        for name in requested {
            if !self.outputs.iter().any(|o| &o.name == name) {
                return Err(ApiError::new(
                    ErrorCode::UnknownOutput,
                    format!(
                        "model `{}` has no output `{name}`; its outputs: {}",
                        self.name,
                        names(&self.outputs)
                    ),
                ));
            }
        }
        Ok(requested.to_vec())
    }

    fn record_run_time(&self, elapsed: Duration) {
        let sample = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1);
        let previous = self.typical_run_nanos.load(Ordering::Relaxed);
        // An exponential moving average over about eight runs; a lost update under contention only
        // drops one sample.
        let next = if previous == 0 {
            sample
        } else {
            previous - previous / 8 + sample / 8
        };
        self.typical_run_nanos.store(next.max(1), Ordering::Relaxed);
    }

    fn run_blocking(
        &self,
        values: Vec<(String, DynValue)>,
        selected: &[String],
    ) -> Result<(Vec<OutputTensor>, Duration), ApiError> {
        let mut lease = self.pool.lease().map_err(|error| {
            ApiError::new(ErrorCode::SessionUnavailable,
                format!("model `{}` could not start another ONNX Runtime session for this request: {error}; retry, or lower inference.sessions_per_model", self.name),
            )
        })?;
        let started = Instant::now();
        let outputs = lease.session().run(values).map_err(|error| {
            ApiError::new(
                ErrorCode::InferenceFailed,
                format!("ONNX Runtime could not run model `{}`: {error}", self.name),
            )
        })?;
        let elapsed = started.elapsed();
        self.record_run_time(elapsed);
        let tensors = selected
            .iter()
            .map(|name| {
                let value = outputs
                    .get(name.as_str())
                    .ok_or_else(|| ApiError::internal(format!("ONNX Runtime returned no output `{name}`")))?;
                tensor::from_ort_value(name, value)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok((tensors, elapsed))
    }
}

fn file_signature(file: &Path) -> Option<(std::time::SystemTime, u64)> {
    let metadata = std::fs::metadata(file).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

fn spec(name: &str, dtype: &ValueType, role: &str) -> Result<TensorSpec, String> {
    match dtype {
        ValueType::Tensor { ty, shape, .. } => {
            let datatype = DataType::from_ort(*ty).ok_or_else(|| {
                format!("{role} `{name}` has element type {ty}, which Gatehouse does not serve")
            })?;
            Ok(TensorSpec {
                name: name.to_string(),
                datatype,
                shape: shape.to_vec(),
            })
        }
        other => Err(format!(
            "{role} `{name}` is a {other}, not a tensor; only tensor inputs and outputs are served"
        )),
    }
}

fn names(specs: &[TensorSpec]) -> String {
    specs
        .iter()
        .map(|s| format!("`{}`", s.name))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_version_comes_from_the_release_branch_or_else_the_library_file() {
        let lib = Path::new("/x/libonnxruntime.so.1.31.1");
        assert_eq!(
            runtime_version(
                "ORT Build Info: git-branch=rel-1.19.0, git-commit-id=26250ae",
                lib
            ),
            "1.19.0"
        );
        assert_eq!(
            runtime_version("ORT Build Info: git-branch=HEAD, git-commit-id=6af1a93", lib),
            "1.31.1"
        );
        assert_eq!(
            runtime_version("git-branch=HEAD", Path::new("/x/libonnxruntime.so")),
            "unknown"
        );
    }
}
