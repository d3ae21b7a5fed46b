//! The built-in steps: tensor arithmetic on JSON numbers (softmax, argmax, top-k, thresholds)
//! and label lookups, pure functions of their inputs.

use super::*;

/// Numbers with the shape they came in: a tensor object, nested lists or one number.
pub(super) struct Numbers {
    pub(super) data: Vec<f64>,
    pub(super) shape: Vec<usize>,
}

impl Numbers {
    pub(super) fn read(value: &Value) -> Result<Numbers, String> {
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
    pub(super) fn rows(&self) -> Vec<&[f64]> {
        let width = self.shape.last().copied().unwrap_or(self.data.len()).max(1);
        self.data.chunks(width).collect()
    }
}

pub(super) fn flatten(value: &Value, out: &mut Vec<f64>) -> Result<Vec<usize>, String> {
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

pub(super) fn type_name(value: &Value) -> &'static str {
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
pub(super) fn per_row(rows: Vec<Value>) -> Value {
    if rows.len() == 1 {
        rows.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(rows)
    }
}

pub(super) fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

pub(super) fn builtin(op: &Op, inputs: &Map<String, Value>, labels: &[String]) -> Result<Value, String> {
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

pub(super) fn indices(inputs: &Map<String, Value>) -> Result<Vec<usize>, String> {
    let numbers = Numbers::read(inputs.get("indices").unwrap_or(&Value::Null))
        .map_err(|e| format!("input `indices`: {e}"))?;
    numbers
        .data
        .iter()
        .map(|v| (v.fract() == 0.0 && *v >= 0.0).then_some(*v as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| "input `indices` must hold whole numbers ≥ 0".to_string())
}
