//! Checking a workflow whole before anything runs: the python switch, the order of the steps, and
//! that every reference names something that exists and has the kind the step needs.

use super::*;

pub(super) fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidWorkflow, message)
}

/// Parses the request, refusing python steps when they are off, then validates the DAG against the
/// served models.
pub(super) fn plan(
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

/// Orders the steps so each comes after the steps it reads (Kahn's algorithm); a reference to a
/// step that does not exist, or a cycle, is refused naming the step.
pub(super) fn order(steps: Vec<Step>) -> Result<Vec<Step>, ApiError> {
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
pub(super) fn outputs_of(step: &Step, repository: &Repository) -> (Vec<(String, Kind)>, bool) {
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

pub(super) type Produced = HashMap<String, (Vec<(String, Kind)>, bool)>;

pub(super) fn kind_of(
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

pub(super) fn check_step(
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
