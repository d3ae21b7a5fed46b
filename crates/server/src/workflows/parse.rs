//! Reading a workflow: each step from its JSON (its kind, its fields, where its inputs come from),
//! every unknown or missing field refused naming the step.

use super::*;

pub(super) fn parse_step(index: usize, json: &Value) -> Result<Step, ApiError> {
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
pub(super) fn parse_source(value: &Value) -> Result<Source, String> {
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
