//! Open Inference Protocol tensors as JSON, and their checked conversion to and from ONNX Runtime.
//!
//! A request tensor is checked against the model's declared input before anything runs: datatype,
//! rank, fixed dimensions, element count, nesting and every element's type and range. Each problem
//! is a 400 that names the input and says what was expected.

use ort::value::{DynValue, Tensor, TensorElementType};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;

/// The tensor datatypes Gatehouse serves, with their OIP names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp32,
    Fp64,
}

const ALL: [DataType; 11] = [
    DataType::Bool,
    DataType::Uint8,
    DataType::Uint16,
    DataType::Uint32,
    DataType::Uint64,
    DataType::Int8,
    DataType::Int16,
    DataType::Int32,
    DataType::Int64,
    DataType::Fp32,
    DataType::Fp64,
];

impl DataType {
    pub fn name(self) -> &'static str {
        match self {
            DataType::Bool => "BOOL",
            DataType::Uint8 => "UINT8",
            DataType::Uint16 => "UINT16",
            DataType::Uint32 => "UINT32",
            DataType::Uint64 => "UINT64",
            DataType::Int8 => "INT8",
            DataType::Int16 => "INT16",
            DataType::Int32 => "INT32",
            DataType::Int64 => "INT64",
            DataType::Fp32 => "FP32",
            DataType::Fp64 => "FP64",
        }
    }

    pub fn parse(name: &str) -> Option<DataType> {
        ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn from_ort(element: TensorElementType) -> Option<DataType> {
        Some(match element {
            TensorElementType::Bool => DataType::Bool,
            TensorElementType::Uint8 => DataType::Uint8,
            TensorElementType::Uint16 => DataType::Uint16,
            TensorElementType::Uint32 => DataType::Uint32,
            TensorElementType::Uint64 => DataType::Uint64,
            TensorElementType::Int8 => DataType::Int8,
            TensorElementType::Int16 => DataType::Int16,
            TensorElementType::Int32 => DataType::Int32,
            TensorElementType::Int64 => DataType::Int64,
            TensorElementType::Float32 => DataType::Fp32,
            TensorElementType::Float64 => DataType::Fp64,
            _ => return None,
        })
    }

    fn all_names() -> String {
        ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
    }
}

impl Serialize for DataType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// What a model declares for one input or output.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TensorSpec {
    pub name: String,
    #[schema(value_type = String, example = "FP32")]
    pub datatype: DataType,
    /// Dimensions; -1 marks a dynamic one.
    pub shape: Vec<i64>,
}

/// One input tensor of an inference request.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InputTensor {
    pub name: String,
    pub shape: Vec<i64>,
    #[schema(example = "FP32")]
    pub datatype: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// Row-major elements, flat or nested to the tensor's shape.
    #[schema(value_type = Vec<Object>)]
    pub data: Value,
}

/// Typed tensor elements; serialised as a flat JSON array.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
}

/// One output tensor of an inference response.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OutputTensor {
    pub name: String,
    #[schema(value_type = String, example = "FP32")]
    pub datatype: DataType,
    pub shape: Vec<i64>,
    #[schema(value_type = Vec<Object>)]
    pub data: TensorData,
}

/// Checks `input` against `spec` and turns it into an ONNX Runtime value.
pub fn to_ort_value(spec: &TensorSpec, input: &InputTensor) -> Result<DynValue, ApiError> {
    let name = &spec.name;
    let bad = |code: &'static str, message: String| {
        ApiError::bad_request(code, format!("input `{name}`: {message}"))
    };
    let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
        bad(
            "unknown_datatype",
            format!(
                "datatype `{}` is not one of {}",
                input.datatype,
                DataType::all_names()
            ),
        )
    })?;
    if datatype != spec.datatype {
        return Err(bad(
            "wrong_datatype",
            format!(
                "the model expects {}, the request has {}",
                spec.datatype.name(),
                datatype.name()
            ),
        ));
    }
    if input.shape.len() != spec.shape.len() {
        return Err(bad(
            "wrong_shape",
            format!(
                "the model expects {} dimensions {}, the request has {} {:?}",
                spec.shape.len(),
                shape_text(&spec.shape),
                input.shape.len(),
                input.shape
            ),
        ));
    }
    for (axis, (&want, &got)) in spec.shape.iter().zip(&input.shape).enumerate() {
        if got < 0 {
            return Err(bad(
                "wrong_shape",
                format!("dimension {axis} is {got}; dimensions must be 0 or more"),
            ));
        }
        if want >= 0 && want != got {
            return Err(bad(
                "wrong_shape",
                format!(
                    "dimension {axis} must be {want} (model shape {}), the request has {got}",
                    shape_text(&spec.shape)
                ),
            ));
        }
    }
    let dims: Vec<usize> = input.shape.iter().map(|&d| d as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            bad(
                "wrong_shape",
                format!("shape {:?} has more elements than fit in memory", input.shape),
            )
        })?;
    let leaves = flatten(&input.data, &dims).map_err(|message| bad("wrong_data", message))?;
    if leaves.len() != expected {
        return Err(bad(
            "wrong_element_count",
            format!(
                "shape {:?} needs {expected} elements, `data` has {}",
                input.shape,
                leaves.len()
            ),
        ));
    }
    let shape = input.shape.clone();
    let tensor = |result: ort::Result<DynValue>| {
        result.map_err(|error| {
            bad(
                "invalid_tensor",
                format!("ONNX Runtime refused the tensor: {error}"),
            )
        })
    };
    let convert_error = |index: usize, value: &Value| {
        bad(
            "wrong_data",
            format!(
                "element {index} is `{value}`, which is not a {} value",
                datatype.name()
            ),
        )
    };
    macro_rules! build {
        ($convert:expr) => {{
            let mut out = Vec::with_capacity(leaves.len());
            for (index, value) in leaves.iter().enumerate() {
                out.push($convert(*value).ok_or_else(|| convert_error(index, value))?);
            }
            tensor(Tensor::from_array((shape, out)).map(|t| t.into_dyn()))
        }};
    }
    match datatype {
        DataType::Bool => build!(|v: &Value| v.as_bool()),
        DataType::Uint8 => build!(|v: &Value| v.as_u64().and_then(|n| u8::try_from(n).ok())),
        DataType::Uint16 => build!(|v: &Value| v.as_u64().and_then(|n| u16::try_from(n).ok())),
        DataType::Uint32 => build!(|v: &Value| v.as_u64().and_then(|n| u32::try_from(n).ok())),
        DataType::Uint64 => build!(|v: &Value| v.as_u64()),
        DataType::Int8 => build!(|v: &Value| v.as_i64().and_then(|n| i8::try_from(n).ok())),
        DataType::Int16 => build!(|v: &Value| v.as_i64().and_then(|n| i16::try_from(n).ok())),
        DataType::Int32 => build!(|v: &Value| v.as_i64().and_then(|n| i32::try_from(n).ok())),
        DataType::Int64 => build!(|v: &Value| v.as_i64()),
        DataType::Fp32 => build!(|v: &Value| v
            .as_f64()
            .map(|n| n as f32)
            .filter(|n| n.is_finite() || n.is_nan())),
        DataType::Fp64 => build!(|v: &Value| v.as_f64()),
    }
}

/// Reads an ONNX Runtime output back into an OIP tensor.
pub fn from_ort_value(name: &str, value: &DynValue) -> Result<OutputTensor, ApiError> {
    let element = value.dtype().tensor_type();
    let datatype = element.and_then(DataType::from_ort).ok_or_else(|| {
        ApiError::internal(format!(
            "output `{name}` has type {}, which Gatehouse cannot return",
            value.dtype()
        ))
    })?;
    let failed =
        |error: ort::Error| ApiError::internal(format!("output `{name}` could not be read: {error}"));
    macro_rules! read {
        ($variant:ident, $type:ty) => {{
            let (shape, data) = value.try_extract_tensor::<$type>().map_err(failed)?;
            (shape.to_vec(), TensorData::$variant(data.to_vec()))
        }};
    }
    let (shape, data) = match datatype {
        DataType::Bool => read!(Bool, bool),
        DataType::Uint8 => read!(Uint8, u8),
        DataType::Uint16 => read!(Uint16, u16),
        DataType::Uint32 => read!(Uint32, u32),
        DataType::Uint64 => read!(Uint64, u64),
        DataType::Int8 => read!(Int8, i8),
        DataType::Int16 => read!(Int16, i16),
        DataType::Int32 => read!(Int32, i32),
        DataType::Int64 => read!(Int64, i64),
        DataType::Fp32 => read!(Fp32, f32),
        DataType::Fp64 => read!(Fp64, f64),
    };
    Ok(OutputTensor {
        name: name.to_string(),
        datatype,
        shape,
        data,
    })
}

/// Collects the leaves of flat or nested `data`; nested data must follow `dims` exactly.
fn flatten<'a>(data: &'a Value, dims: &[usize]) -> Result<Vec<&'a Value>, String> {
    let Value::Array(items) = data else {
        return Err("`data` must be a JSON array".into());
    };
    let nested = items.first().is_some_and(Value::is_array);
    let mut leaves = Vec::with_capacity(items.len());
    if !nested {
        for (index, item) in items.iter().enumerate() {
            if item.is_array() {
                return Err(format!(
                    "element {index} is an array inside flat data; nest every row or none"
                ));
            }
            leaves.push(item);
        }
        return Ok(leaves);
    }
    collect_nested(items, dims, 0, &mut leaves)?;
    Ok(leaves)
}

fn collect_nested<'a>(
    items: &'a [Value],
    dims: &[usize],
    depth: usize,
    leaves: &mut Vec<&'a Value>,
) -> Result<(), String> {
    let Some(&want) = dims.get(depth) else {
        return Err(format!(
            "`data` is nested deeper than the shape's {} dimensions",
            dims.len()
        ));
    };
    if items.len() != want {
        return Err(format!(
            "nested `data` has {} entries at depth {depth}, the shape says {want}",
            items.len()
        ));
    }
    let last = depth + 1 == dims.len();
    for item in items {
        match (item, last) {
            (Value::Array(inner), false) => collect_nested(inner, dims, depth + 1, leaves)?,
            (Value::Array(_), true) => {
                return Err(format!(
                    "`data` is nested deeper than the shape's {} dimensions",
                    dims.len()
                ));
            }
            (leaf, false) => {
                return Err(format!(
                    "`{leaf}` at depth {depth} should be an array of {}",
                    dims[depth + 1]
                ));
            }
            (leaf, true) => leaves.push(leaf),
        }
    }
    Ok(())
}

fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|d| if *d < 0 { "-1".into() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn datatype_names_round_trip() {
        for datatype in ALL {
            assert_eq!(DataType::parse(datatype.name()), Some(datatype));
        }
        assert_eq!(DataType::parse("fp32"), None);
    }

    #[test]
    fn flat_and_nested_data_give_the_same_leaves() {
        let flat = json!([1, 2, 3, 4, 5, 6]);
        let nested = json!([[1, 2, 3], [4, 5, 6]]);
        let a = flatten(&flat, &[2, 3]).unwrap();
        let b = flatten(&nested, &[2, 3]).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn ragged_or_too_deep_nesting_is_refused() {
        assert!(
            flatten(&json!([[1, 2], [3]]), &[2, 2])
                .unwrap_err()
                .contains("depth 1")
        );
        assert!(
            flatten(&json!([[[1]], [[2]]]), &[2, 1])
                .unwrap_err()
                .contains("deeper")
        );
        assert!(flatten(&json!([1, [2]]), &[2]).unwrap_err().contains("element 1"));
        assert!(
            flatten(&json!({"a": 1}), &[1])
                .unwrap_err()
                .contains("JSON array")
        );
    }

    #[test]
    fn output_data_serialises_as_a_flat_array_without_widening_floats() {
        let text = serde_json::to_string(&TensorData::Fp32(vec![0.1, 2.0])).unwrap();
        assert_eq!(text, "[0.1,2.0]");
    }
}
