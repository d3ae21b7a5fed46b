//! Workflows: a small DAG of steps — served models, built-in tensor operations and, only when the
//! operator turned it on, custom Python in a sandbox — run in one request.
//!
//! A workflow is checked whole before anything runs: unknown kinds, dangling references, cycles,
//! unknown fields and type mismatches each get a 400 naming the step. A workflow with a `python`
//! step is refused with 403 `custom_python_disabled` while the switch is off, before validation
//! and before any step runs.

mod builtins;
mod parse;
mod plan;
mod results;
pub mod sandbox;
pub mod schema;

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use axum::extract::State;
use axum::{Extension, Json};
use gatehouse_core::keys::Scope;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::error::{ApiError, ErrorCode};
use crate::json::JsonBody;
use crate::models::Repository;
use crate::perimeter::Caller;
use crate::tensor::InputTensor;
use builtins::*;
use parse::*;
use plan::*;
use results::*;

/// What a reference can hold, as far as validation can tell before running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tensor,
    Numbers,
    Integers,
    Booleans,
    Strings,
    /// A step's whole output object.
    Object,
    /// Plain JSON from the request, or whatever a python step returned.
    Any,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tensor => "a tensor",
            Kind::Numbers => "a list of numbers",
            Kind::Integers => "a list of integers",
            Kind::Booleans => "a list of booleans",
            Kind::Strings => "a list of strings",
            Kind::Object => "a step's whole output object",
            Kind::Any => "any JSON",
        }
    }

    fn numeric(self) -> bool {
        matches!(self, Kind::Tensor | Kind::Numbers | Kind::Integers | Kind::Any)
    }
}

/// One step, parsed.
#[derive(Debug, Clone)]
struct Step {
    name: String,
    op: Op,
    /// Input name → reference or literal.
    inputs: BTreeMap<String, Source>,
}

#[derive(Debug, Clone)]
enum Op {
    Model { model: String, version: Option<String> },
    Softmax,
    Argmax,
    TopK { k: usize },
    Threshold { threshold: f64 },
    Select,
    Labels { model: String },
    Python { code: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Input(String),
    Step(String, Option<String>),
    Literal(Value),
}

/// A workflow that passed validation, steps in an order that respects their dependencies.
#[derive(Debug)]
struct Plan {
    steps: Vec<Step>,
    outputs: BTreeMap<String, Source>,
}

#[derive(Serialize)]
pub struct WorkflowResponse {
    pub outputs: BTreeMap<String, Value>,
    pub timings_ms: BTreeMap<String, f64>,
}

/// Runs a workflow: model steps, built-ins and (when allowed) sandboxed python steps, in
/// dependency order. The example classifies a file's content type and returns the top 3 labels.
#[utoipa::path(post, path = "/v1/workflows/run", tag = "workflows",
    request_body(content = schema::WorkflowRequest, description = "`workflow` (steps and outputs) and `inputs`"),
    responses((status = 200, description = "`outputs` by name and `timings_ms` by step"),
        (status = 400, body = crate::error::ErrorBody, description = "invalid_workflow: names the step"),
        (status = 403, body = crate::error::ErrorBody, description = "custom_python_disabled"),
        (status = 422, body = crate::error::ErrorBody, description = "a step failed: python_error, python_timeout, python_limit, step_failed")))]
pub async fn run(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    JsonBody(request): JsonBody<Value>,
) -> Result<Json<WorkflowResponse>, ApiError> {
    let repository = loaded(&state)?;
    let plan = plan(&request, repository, state.allow_custom_python, caller.as_deref())?;
    let empty = Map::new();
    let request_inputs = request.get("inputs").and_then(Value::as_object).unwrap_or(&empty);
    let mut results = Results::new(&plan, request_inputs, state.workflow_memory_bytes);
    results.over_budget("inputs")?;
    let mut timings = BTreeMap::new();
    for step in &plan.steps {
        let started = Instant::now();
        let inputs: Map<String, Value> = step
            .inputs
            .iter()
            .map(|(name, source)| (name.clone(), results.resolve(source, request_inputs)))
            .collect();
        let at = |why: String| ApiError::new(ErrorCode::StepFailed, format!("step `{}`: {why}", step.name));
        let output = match &step.op {
            Op::Model { model, version } => {
                let loaded = repository.get(model, version.as_deref())?;
                let tensors = loaded
                    .inputs
                    .iter()
                    .map(|spec| model_input(&spec.name, &inputs[&spec.name], spec.datatype.name()))
                    .collect::<Result<Vec<_>, String>>()
                    .map_err(at)?;
                let (outputs, elapsed) = loaded
                    .infer(&tensors, &[])
                    .await
                    .map_err(|e| ApiError::new(e.code, format!("step `{}`: {}", step.name, e.message)))?;
                state.metrics.observe_inference(&loaded, elapsed);
                let mut object = Map::new();
                for output in outputs {
                    object.insert(
                        output.name.clone(),
                        serde_json::to_value(&output).map_err(|e| ApiError::internal(e.to_string()))?,
                    );
                }
                Value::Object(object)
            }
            Op::Python { code } => {
                let config = state.sandbox.clone();
                sandbox::run(&config, code, &Value::Object(inputs))
                    .await
                    .map_err(|e| e.into_api_error(&step.name))?
            }
            op => {
                let labels = match op {
                    Op::Labels { model } => repository
                        .models
                        .get(model)
                        .map(|m| m.config.labels.clone())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                };
                builtin(op, &inputs, &labels).map_err(at)?
            }
        };
        timings.insert(step.name.clone(), started.elapsed().as_secs_f64() * 1000.0);
        results.keep(&step.name, output)?;
    }
    let outputs = plan
        .outputs
        .iter()
        .map(|(name, source)| (name.clone(), results.resolve(source, request_inputs)))
        .collect();
    Ok(Json(WorkflowResponse {
        outputs,
        timings_ms: timings,
    }))
}

/// The checks `run` makes, without running anything; answers the order the steps would run in.
#[utoipa::path(post, path = "/v1/workflows/validate", tag = "workflows", request_body(content = schema::WorkflowRequest),
    responses((status = 200, description = "`valid` and the step order"),
        (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn validate(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    JsonBody(request): JsonBody<Value>,
) -> Result<Json<Value>, ApiError> {
    let repository = loaded(&state)?;
    let order = order_of(&request, repository, state.allow_custom_python, caller.as_deref())?;
    Ok(Json(json!({ "valid": true, "order": order })))
}

/// The order `request`'s steps would run in against `repository`, or why it cannot run: every
/// check `run` makes before it runs anything.
pub fn order_of(
    request: &Value,
    repository: &Repository,
    allow_python: bool,
    caller: Option<&Caller>,
) -> Result<Vec<String>, ApiError> {
    let plan = plan(request, repository, allow_python, caller)?;
    Ok(plan.steps.into_iter().map(|s| s.name).collect())
}

fn loaded(state: &AppState) -> Result<&Repository, ApiError> {
    state
        .repository
        .get()
        .ok_or_else(|| ApiError::new(ErrorCode::NotReady, "models are still loading; retry in a moment"))
}
