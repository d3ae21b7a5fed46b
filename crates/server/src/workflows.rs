//! Workflows: a small DAG of steps — served models, built-in tensor operations and, only when the
//! operator turned it on, custom Python in a sandbox — run in one request.
//!
//! A workflow is checked whole before anything runs: unknown kinds, dangling references, cycles,
//! unknown fields and type mismatches each get a 400 naming the step. A workflow with a `python`
//! step is refused with 403 `custom_python_disabled` while the switch is off, before validation
//! and before any step runs.

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

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidWorkflow, message)
}

/// Parses the request, refusing python steps when they are off, then validates the DAG against the
/// served models.
fn plan(
    request: &Value,
    repository: &Repository,
    allow_python: bool,
    caller: Option<&Caller>,
) -> Result<Plan, ApiError> {
    let workflow = request
        .get("workflow")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("the body needs a `workflow` object with `steps` and `outputs`"))?;
    let steps_json = workflow
        .get("steps")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("`workflow.steps` must be a list of steps"))?;
    if steps_json.is_empty() {
        return Err(invalid("`workflow.steps` is empty; add at least one step"));
    }
    if steps_json.len() > 64 {
        return Err(invalid("a workflow may have at most 64 steps"));
    }
    let has_python = steps_json.iter().any(|s| s.get("kind") == Some(&json!("python")));
    if has_python && !allow_python {
        return Err(ApiError::new(
            ErrorCode::CustomPythonDisabled,
            "this workflow has a python step and custom Python is off on this server; an administrator can turn it on with `gatehouse settings set workflows.allow_custom_python true` (it lets anyone with a workflows key run code on this computer)",
        ));
    }
    let mut steps = Vec::new();
    for (index, json) in steps_json.iter().enumerate() {
        steps.push(parse_step(index, json)?);
    }
    // A model step is inference: a key that may not call `/v2/models/*/infer` may not call a
    // model through a workflow either, nor learn from validation which models exist.
    if let Some(Caller(identity)) = caller
        && !identity.scopes.contains(&Scope::Infer)
        && let Some(step) = steps
            .iter()
            .find(|s| matches!(s.op, Op::Model { .. } | Op::Labels { .. }))
    {
        return Err(ApiError::new(
            ErrorCode::InsufficientScope,
            format!(
                "step `{}` calls a model, which needs the `infer` scope; key {} has only {}; create a key with --scope workflows --scope infer",
                step.name,
                identity.key_id,
                identity
                    .scopes
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    // A key that names its models runs only those, through a workflow as through `/infer`.
    for step in &steps {
        if let Op::Model { model, .. } | Op::Labels { model } = &step.op {
            crate::api::may_run(caller, model)
                .map_err(|e| ApiError::new(e.code, format!("step `{}`: {}", step.name, e.message)))?;
        }
    }
    let mut seen = std::collections::HashSet::new();
    for step in &steps {
        if !seen.insert(step.name.as_str()) {
            return Err(invalid(format!(
                "two steps are named `{}`; names must be unique",
                step.name
            )));
        }
    }
    let outputs_json = workflow
        .get("outputs")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            invalid("`workflow.outputs` must map output names to references such as \"$steps.s1\"")
        })?;
    let mut outputs = BTreeMap::new();
    for (name, reference) in outputs_json {
        let source =
            parse_source(reference).map_err(|why| invalid(format!("workflow output `{name}`: {why}")))?;
        outputs.insert(name.clone(), source);
    }
    let request_inputs = request.get("inputs").and_then(Value::as_object);
    let ordered = order(steps)?;
    let mut produced: HashMap<String, (Vec<(String, Kind)>, bool)> = HashMap::new();
    for step in &ordered {
        check_step(step, &produced, request_inputs, repository)?;
        produced.insert(step.name.clone(), outputs_of(step, repository));
    }
    for (name, source) in &outputs {
        kind_of(source, &produced, request_inputs)
            .map_err(|why| invalid(format!("workflow output `{name}`: {why}")))?;
    }
    Ok(Plan {
        steps: ordered,
        outputs,
    })
}

fn parse_step(index: usize, json: &Value) -> Result<Step, ApiError> {
    let object = json
        .as_object()
        .ok_or_else(|| invalid(format!("step #{} is not an object", index + 1)))?;
    let name = object
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| {
            !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .ok_or_else(|| {
            invalid(format!(
                "step #{} needs a `name` of letters, digits, `_` or `-`",
                index + 1
            ))
        })?
        .to_string();
    let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
    let at = |why: String| invalid(format!("step `{name}`: {why}"));
    let text = |field: &str| -> Result<String, ApiError> {
        object
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| at(format!("a `{kind}` step needs a `{field}` string")))
    };
    let (op, allowed): (Op, &[&str]) = match kind {
        "model" => (
            Op::Model {
                model: text("model")?,
                version: object.get("version").and_then(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                }),
            },
            &["model", "version"],
        ),
        "softmax" => (Op::Softmax, &[]),
        "argmax" => (Op::Argmax, &[]),
        "top_k" => {
            let k = object
                .get("k")
                .and_then(Value::as_u64)
                .filter(|k| (1..=10_000).contains(k))
                .ok_or_else(|| at("`k` must be a whole number from 1 to 10000".into()))?;
            (Op::TopK { k: k as usize }, &["k"])
        }
        "threshold" => {
            let threshold = object
                .get("threshold")
                .and_then(Value::as_f64)
                .ok_or_else(|| at("`threshold` must be a number".into()))?;
            (Op::Threshold { threshold }, &["threshold"])
        }
        "select" => (Op::Select, &[]),
        "labels" => (
            Op::Labels {
                model: text("model")?,
            },
            &["model"],
        ),
        "python" => {
            let code = text("code")?;
            if code.len() > 64 * 1024 {
                return Err(at("`code` is longer than 64 KiB".into()));
            }
            (Op::Python { code }, &["code"])
        }
        other => {
            return Err(at(format!(
                "unknown step kind `{other}`; use model, softmax, argmax, top_k, threshold, select, labels or python"
            )));
        }
    };
    for field in object.keys() {
        if !["name", "kind", "inputs"].contains(&field.as_str()) && !allowed.contains(&field.as_str()) {
            return Err(at(format!("unknown field `{field}` for a `{kind}` step")));
        }
    }
    let mut inputs = BTreeMap::new();
    if let Some(map) = object.get("inputs") {
        let map = map
            .as_object()
            .ok_or_else(|| at("`inputs` must map input names to references".into()))?;
        for (input, reference) in map {
            let source = parse_source(reference).map_err(|why| at(format!("input `{input}`: {why}")))?;
            inputs.insert(input.clone(), source);
        }
    }
    Ok(Step { name, op, inputs })
}

/// `$inputs.NAME`, `$steps.STEP` or `$steps.STEP.FIELD`; anything else is a literal value.
fn parse_source(value: &Value) -> Result<Source, String> {
    let Some(text) = value.as_str().filter(|t| t.starts_with('$')) else {
        return Ok(Source::Literal(value.clone()));
    };
    if let Some(name) = text.strip_prefix("$inputs.") {
        if name.is_empty() || name.contains('.') {
            return Err(format!("`{text}` should be $inputs.NAME"));
        }
        return Ok(Source::Input(name.to_string()));
    }
    if let Some(rest) = text.strip_prefix("$steps.") {
        let mut parts = rest.splitn(2, '.');
        let step = parts.next().unwrap_or_default().to_string();
        let field = parts.next().map(str::to_string);
        if step.is_empty() || field.as_deref().is_some_and(|f| f.is_empty() || f.contains('.')) {
            return Err(format!("`{text}` should be $steps.STEP or $steps.STEP.FIELD"));
        }
        return Ok(Source::Step(step, field));
    }
    Err(format!(
        "`{text}` is not a reference; use $inputs.NAME, $steps.STEP or $steps.STEP.FIELD"
    ))
}

/// Orders the steps so each comes after the steps it reads (Kahn's algorithm); a reference to a
/// step that does not exist, or a cycle, is refused naming the step.
fn order(steps: Vec<Step>) -> Result<Vec<Step>, ApiError> {
    let names: std::collections::HashSet<String> = steps.iter().map(|s| s.name.clone()).collect();
    let mut dependencies: HashMap<String, Vec<String>> = HashMap::new();
    for step in &steps {
        let mut needs = Vec::new();
        for (input, source) in &step.inputs {
            if let Source::Step(other, _) = source {
                if !names.contains(other) {
                    return Err(invalid(format!(
                        "step `{}`: input `{input}` refers to step `{other}`, which does not exist",
                        step.name
                    )));
                }
                if other == &step.name {
                    return Err(invalid(format!(
                        "step `{}`: input `{input}` refers to the step itself",
                        step.name
                    )));
                }
                needs.push(other.clone());
            }
        }
        dependencies.insert(step.name.clone(), needs);
    }
    let mut remaining = steps;
    let mut ordered: Vec<Step> = Vec::new();
    while !remaining.is_empty() {
        let done: std::collections::HashSet<&str> = ordered.iter().map(|s| s.name.as_str()).collect();
        let ready = remaining
            .iter()
            .position(|s| dependencies[&s.name].iter().all(|d| done.contains(d.as_str())));
        match ready {
            Some(index) => ordered.push(remaining.remove(index)),
            None => {
                let stuck: Vec<&str> = remaining.iter().map(|s| s.name.as_str()).collect();
                return Err(invalid(format!(
                    "steps {} depend on each other in a cycle; a workflow must be a DAG",
                    stuck
                        .iter()
                        .map(|s| format!("`{s}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        }
    }
    Ok(ordered)
}

/// The fields a step produces and their kinds; `true` when it may produce any other field too.
fn outputs_of(step: &Step, repository: &Repository) -> (Vec<(String, Kind)>, bool) {
    let fields = |list: &[(&str, Kind)]| list.iter().map(|(n, k)| (n.to_string(), *k)).collect();
    match &step.op {
        Op::Model { model, version } => (
            repository
                .get(model, version.as_deref())
                .map(|m| m.outputs.iter().map(|o| (o.name.clone(), Kind::Tensor)).collect())
                .unwrap_or_default(),
            false,
        ),
        Op::Softmax => (fields(&[("y", Kind::Tensor)]), false),
        Op::Argmax => (
            fields(&[("index", Kind::Integers), ("value", Kind::Numbers)]),
            false,
        ),
        Op::TopK { .. } => (
            fields(&[("indices", Kind::Integers), ("values", Kind::Numbers)]),
            false,
        ),
        Op::Threshold { .. } => (
            fields(&[("indices", Kind::Integers), ("mask", Kind::Booleans)]),
            false,
        ),
        Op::Select => (fields(&[("values", Kind::Numbers)]), false),
        Op::Labels { .. } => (fields(&[("labels", Kind::Strings)]), false),
        Op::Python { .. } => (Vec::new(), true),
    }
}

type Produced = HashMap<String, (Vec<(String, Kind)>, bool)>;

fn kind_of(
    source: &Source,
    produced: &Produced,
    inputs: Option<&Map<String, Value>>,
) -> Result<Kind, String> {
    match source {
        Source::Literal(_) => Ok(Kind::Any),
        Source::Input(name) => {
            if inputs.is_some_and(|i| i.contains_key(name)) {
                Ok(Kind::Any)
            } else {
                Err(format!("`$inputs.{name}` is not in the request's `inputs`"))
            }
        }
        Source::Step(step, None) => {
            if produced.contains_key(step) {
                Ok(Kind::Object)
            } else {
                Err(format!("step `{step}` does not exist"))
            }
        }
        Source::Step(step, Some(field)) => {
            let (fields, open) = produced
                .get(step)
                .ok_or_else(|| format!("step `{step}` does not exist"))?;
            if let Some((_, kind)) = fields.iter().find(|(name, _)| name == field) {
                Ok(*kind)
            } else if *open {
                Ok(Kind::Any)
            } else {
                Err(format!(
                    "step `{step}` has no output `{field}`; it has {}",
                    fields
                        .iter()
                        .map(|(n, _)| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
        }
    }
}

fn check_step(
    step: &Step,
    produced: &Produced,
    request_inputs: Option<&Map<String, Value>>,
    repository: &Repository,
) -> Result<(), ApiError> {
    let at = |why: String| invalid(format!("step `{}`: {why}", step.name));
    let mut kinds = BTreeMap::new();
    for (input, source) in &step.inputs {
        let kind =
            kind_of(source, produced, request_inputs).map_err(|why| at(format!("input `{input}`: {why}")))?;
        kinds.insert(input.as_str(), kind);
    }
    let expect =
        |names: &[&str], check: &dyn Fn(&str, Kind) -> Option<&'static str>| -> Result<(), ApiError> {
            for name in names {
                let Some(kind) = kinds.get(name) else {
                    return Err(at(format!("needs an input `{name}`")));
                };
                if let Some(wanted) = check(name, *kind) {
                    return Err(at(format!(
                        "type mismatch: input `{name}` needs {wanted} but gets {}",
                        kind.name()
                    )));
                }
            }
            for name in kinds.keys() {
                if !names.contains(name) {
                    return Err(at(format!(
                        "unknown input `{name}`; it takes {}",
                        names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            Ok(())
        };
    let numeric = |_: &str, kind: Kind| (!kind.numeric()).then_some("numbers or a tensor");
    match &step.op {
        Op::Model { model, version } => {
            let loaded = repository
                .get(model, version.as_deref())
                .map_err(|e| at(format!("model `{model}`: {}", e.message)))?;
            let names: Vec<&str> = loaded.inputs.iter().map(|i| i.name.as_str()).collect();
            expect(&names, &numeric)
        }
        Op::Softmax | Op::Argmax | Op::TopK { .. } | Op::Threshold { .. } => expect(&["x"], &numeric),
        Op::Select => expect(&["x", "indices"], &|name, kind| match name {
            "indices" => (!matches!(kind, Kind::Integers | Kind::Any)).then_some("a list of integers"),
            _ => numeric(name, kind),
        }),
        Op::Labels { model } => {
            // A model that is not there is said to be missing, as a model step says it.
            if !repository.models.contains_key(model) {
                repository
                    .get(model, None)
                    .map_err(|e| at(format!("model `{model}`: {}", e.message)))?;
            }
            let has_labels = repository
                .models
                .get(model)
                .is_some_and(|m| !m.config.labels.is_empty());
            if !has_labels {
                return Err(at(format!(
                    "model `{model}` has no labels (they come from its config.toml)"
                )));
            }
            expect(&["indices"], &|_, kind| {
                (!matches!(kind, Kind::Integers | Kind::Any)).then_some("a list of integers")
            })
        }
        Op::Python { .. } => {
            if kinds.is_empty() {
                return Err(at("a python step needs at least one input".into()));
            }
            Ok(())
        }
    }
}

/// Numbers with the shape they came in: a tensor object, nested lists or one number.
struct Numbers {
    data: Vec<f64>,
    shape: Vec<usize>,
}

impl Numbers {
    fn read(value: &Value) -> Result<Numbers, String> {
        if let Some(object) = value.as_object()
            && let Some(data) = object.get("data")
        {
            let mut numbers = Numbers::read(data)?;
            if let Some(shape) = object.get("shape").and_then(Value::as_array) {
                let shape: Vec<usize> = shape
                    .iter()
                    .filter_map(Value::as_u64)
                    .map(|d| d as usize)
                    .collect();
                if shape.iter().product::<usize>() == numbers.data.len() {
                    numbers.shape = shape;
                }
            }
            return Ok(numbers);
        }
        let mut data = Vec::new();
        let shape = flatten(value, &mut data)?;
        Ok(Numbers { data, shape })
    }

    /// The rows along the last axis.
    fn rows(&self) -> Vec<&[f64]> {
        let width = self.shape.last().copied().unwrap_or(self.data.len()).max(1);
        self.data.chunks(width).collect()
    }
}

fn flatten(value: &Value, out: &mut Vec<f64>) -> Result<Vec<usize>, String> {
    match value {
        Value::Number(n) => {
            out.push(n.as_f64().unwrap_or(f64::NAN));
            Ok(Vec::new())
        }
        Value::Bool(b) => {
            out.push(f64::from(u8::from(*b)));
            Ok(Vec::new())
        }
        Value::Array(items) => {
            let mut inner: Option<Vec<usize>> = None;
            for item in items {
                let shape = flatten(item, out)?;
                if inner.as_ref().is_some_and(|s| s != &shape) {
                    return Err("the nested lists are ragged".into());
                }
                inner = Some(shape);
            }
            let mut shape = vec![items.len()];
            shape.extend(inner.unwrap_or_default());
            Ok(shape)
        }
        other => Err(format!("expected numbers, got {}", type_name(other))),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// One value per row: a bare value for a single row, a list of them otherwise.
fn per_row(rows: Vec<Value>) -> Value {
    if rows.len() == 1 {
        rows.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(rows)
    }
}

fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn builtin(op: &Op, inputs: &Map<String, Value>, labels: &[String]) -> Result<Value, String> {
    let x = || Numbers::read(inputs.get("x").unwrap_or(&Value::Null)).map_err(|e| format!("input `x`: {e}"));
    Ok(match op {
        Op::Softmax => {
            let x = x()?;
            let mut data = Vec::with_capacity(x.data.len());
            for row in x.rows() {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let exps: Vec<f64> = row.iter().map(|v| (v - max).exp()).collect();
                let sum: f64 = exps.iter().sum();
                data.extend(exps.iter().map(|e| e / sum));
            }
            json!({"y": {"shape": x.shape, "datatype": "FP64", "data": data.into_iter().map(number).collect::<Vec<_>>()}})
        }
        Op::Argmax => {
            let x = x()?;
            let (mut index, mut value) = (Vec::new(), Vec::new());
            for row in x.rows() {
                let (i, v) = row
                    .iter()
                    .enumerate()
                    .fold(
                        (0, f64::NEG_INFINITY),
                        |best, (i, v)| if *v > best.1 { (i, *v) } else { best },
                    );
                index.push(json!(i));
                value.push(number(v));
            }
            json!({"index": per_row(index), "value": per_row(value)})
        }
        Op::TopK { k } => {
            let x = x()?;
            let (mut indices, mut values) = (Vec::new(), Vec::new());
            for row in x.rows() {
                let mut order: Vec<usize> = (0..row.len()).collect();
                order.sort_by(|a, b| row[*b].total_cmp(&row[*a]).then(a.cmp(b)));
                order.truncate(*k);
                values.push(Value::Array(order.iter().map(|i| number(row[*i])).collect()));
                indices.push(json!(order));
            }
            json!({"indices": per_row(indices), "values": per_row(values)})
        }
        Op::Threshold { threshold } => {
            let x = x()?;
            let (mut indices, mut mask) = (Vec::new(), Vec::new());
            for row in x.rows() {
                let above: Vec<bool> = row.iter().map(|v| v >= threshold).collect();
                indices.push(json!(
                    above
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| **a)
                        .map(|(i, _)| i)
                        .collect::<Vec<_>>()
                ));
                mask.push(json!(above));
            }
            json!({"indices": per_row(indices), "mask": per_row(mask)})
        }
        Op::Select => {
            let x = x()?;
            let indices = indices(inputs)?;
            let values = indices
                .iter()
                .map(|i| x.data.get(*i).copied().map(number).ok_or(*i))
                .collect::<Result<Vec<_>, usize>>()
                .map_err(|i| format!("index {i} is outside `x`, which has {} elements", x.data.len()))?;
            json!({"values": values})
        }
        Op::Labels { .. } => {
            let names = indices(inputs)?
                .iter()
                .map(|i| labels.get(*i).cloned().ok_or(*i))
                .collect::<Result<Vec<_>, usize>>()
                .map_err(|i| format!("index {i} has no label; the model has {}", labels.len()))?;
            json!({"labels": names})
        }
        Op::Model { .. } | Op::Python { .. } => return Err("not a built-in".into()),
    })
}

fn indices(inputs: &Map<String, Value>) -> Result<Vec<usize>, String> {
    let numbers = Numbers::read(inputs.get("indices").unwrap_or(&Value::Null))
        .map_err(|e| format!("input `indices`: {e}"))?;
    numbers
        .data
        .iter()
        .map(|v| (v.fract() == 0.0 && *v >= 0.0).then_some(*v as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "input `indices` must hold whole numbers ≥ 0".to_string())
}

/// Step results still needed, each with the references left to it and what it weighs, so a
/// result is moved out at its last use instead of copied, and freed then.
struct Results {
    live: HashMap<String, Held>,
    /// Approximate bytes held by the request's inputs and the live results.
    bytes: usize,
    budget: usize,
}

struct Held {
    value: Value,
    uses: usize,
    bytes: usize,
}

impl Results {
    fn new(plan: &Plan, request_inputs: &Map<String, Value>, budget: usize) -> Results {
        Results {
            live: HashMap::new(),
            bytes: request_inputs.values().map(footprint).sum(),
            budget,
        }
        .with_uses(plan)
    }

    /// Sets aside a slot per step with its number of readers; a result nobody reads is dropped
    /// as soon as it is made.
    fn with_uses(mut self, plan: &Plan) -> Results {
        let sources = plan
            .steps
            .iter()
            .flat_map(|step| step.inputs.values())
            .chain(plan.outputs.values());
        for source in sources {
            if let Source::Step(step, _) = source {
                self.live
                    .entry(step.clone())
                    .or_insert(Held {
                        value: Value::Null,
                        uses: 0,
                        bytes: 0,
                    })
                    .uses += 1;
            }
        }
        self
    }

    fn over_budget(&self, step: &str) -> Result<(), ApiError> {
        if self.bytes <= self.budget {
            return Ok(());
        }
        Err(ApiError::new(
            ErrorCode::WorkflowTooLarge,
            format!(
                "after step `{step}` this workflow holds about {} MB of step results, more than the {} MB one \
                 workflow may hold (limits.workflow_memory_mb); send smaller inputs or split the workflow",
                self.bytes.div_ceil(1 << 20),
                self.budget >> 20
            ),
        ))
    }

    fn keep(&mut self, step: &str, value: Value) -> Result<(), ApiError> {
        match self.live.get_mut(step) {
            Some(held) => {
                held.bytes = footprint(&value);
                held.value = value;
                self.bytes += held.bytes;
                self.over_budget(step)
            }
            // Nothing reads it: dropped here, after its own size was checked.
            None => {
                let bytes = footprint(&value);
                self.bytes += bytes;
                let checked = self.over_budget(step);
                self.bytes -= bytes;
                checked
            }
        }
    }

    fn resolve(&mut self, source: &Source, request_inputs: &Map<String, Value>) -> Value {
        let (step, field) = match source {
            Source::Literal(value) => return value.clone(),
            Source::Input(name) => return request_inputs.get(name).cloned().unwrap_or(Value::Null),
            Source::Step(step, field) => (step, field),
        };
        let Some(held) = self.live.get_mut(step) else {
            return Value::Null;
        };
        held.uses = held.uses.saturating_sub(1);
        let last = held.uses == 0;
        let value = match (field, last) {
            (None, true) => std::mem::take(&mut held.value),
            (None, false) => held.value.clone(),
            (Some(field), true) => held.value.get_mut(field).map(Value::take).unwrap_or(Value::Null),
            (Some(field), false) => held.value.get(field).cloned().unwrap_or(Value::Null),
        };
        if last && let Some(held) = self.live.remove(step) {
            self.bytes -= held.bytes;
        }
        value
    }
}

/// About how many bytes a JSON value takes in memory: enough to tell a workflow that grows
/// beyond its budget from one that does not.
fn footprint(value: &Value) -> usize {
    const NODE: usize = std::mem::size_of::<Value>();
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => NODE,
        Value::String(text) => NODE + text.len(),
        Value::Array(items) => NODE + items.iter().map(footprint).sum::<usize>(),
        Value::Object(map) => {
            NODE + map
                .iter()
                .map(|(key, value)| NODE + key.len() + footprint(value))
                .sum::<usize>()
        }
    }
}

/// The model input built from a step input: a tensor object keeps its shape and datatype; plain
/// lists take the model's datatype and their nesting as the shape.
fn model_input(name: &str, value: &Value, datatype: &str) -> Result<InputTensor, String> {
    if let Some(object) = value.as_object()
        && object.contains_key("data")
    {
        let shape = object
            .get("shape")
            .and_then(Value::as_array)
            .map(|s| s.iter().filter_map(Value::as_i64).collect())
            .ok_or("the tensor has no `shape`")?;
        return Ok(InputTensor {
            name: name.to_string(),
            shape,
            datatype: object
                .get("datatype")
                .and_then(Value::as_str)
                .unwrap_or(datatype)
                .to_string(),
            parameters: None,
            data: Some(raw(&object["data"])?),
            binary: None,
        });
    }
    let mut scratch = Vec::new();
    let shape = flatten(value, &mut scratch)?;
    Ok(InputTensor {
        name: name.to_string(),
        shape: shape.iter().map(|d| *d as i64).collect(),
        datatype: datatype.to_string(),
        parameters: None,
        data: Some(raw(value)?),
        binary: None,
    })
}

fn raw(value: &Value) -> Result<Box<serde_json::value::RawValue>, String> {
    serde_json::value::to_raw_value(value).map_err(|error| format!("the tensor's data: {error}"))
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
