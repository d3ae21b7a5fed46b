//! Step results while a workflow runs: each kept until its last reader, within the memory budget,
//! and the model inputs built from them.

use super::*;

/// Step results still needed, each with the references left to it and what it weighs, so a
/// result is moved out at its last use instead of copied, and freed then.
pub(super) struct Results {
    pub(super) live: HashMap<String, Held>,
    /// Approximate bytes held by the request's inputs and the live results.
    pub(super) bytes: usize,
    pub(super) budget: usize,
}

pub(super) struct Held {
    pub(super) value: Value,
    pub(super) uses: usize,
    pub(super) bytes: usize,
}

impl Results {
    pub(super) fn new(plan: &Plan, request_inputs: &Map<String, Value>, budget: usize) -> Results {
        Results {
            live: HashMap::new(),
            bytes: request_inputs.values().map(footprint).sum(),
            budget,
        }
        .with_uses(plan)
    }

    /// Sets aside a slot per step with its number of readers; a result nobody reads is dropped
    /// as soon as it is made.
    pub(super) fn with_uses(mut self, plan: &Plan) -> Results {
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

    pub(super) fn over_budget(&self, step: &str) -> Result<(), ApiError> {
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

    pub(super) fn keep(&mut self, step: &str, value: Value) -> Result<(), ApiError> {
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

    pub(super) fn resolve(&mut self, source: &Source, request_inputs: &Map<String, Value>) -> Value {
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
pub(super) fn footprint(value: &Value) -> usize {
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
pub(super) fn model_input(name: &str, value: &Value, datatype: &str) -> Result<InputTensor, String> {
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

pub(super) fn raw(value: &Value) -> Result<Box<serde_json::value::RawValue>, String> {
    serde_json::value::to_raw_value(value).map_err(|error| format!("the tensor's data: {error}"))
}
