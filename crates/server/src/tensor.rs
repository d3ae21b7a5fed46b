//! Open Inference Protocol tensors as JSON, and their checked conversion to and from ONNX Runtime.
//!
//! A request tensor is checked against the model's declared input before anything runs: datatype,
//! rank, fixed dimensions, element count, nesting and every element's type and range. Each problem
//! is a 400 that names the input and says what was expected.

use ort::value::{DynValue, Tensor, TensorElementType};
use serde::de;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::error::{ApiError, ErrorCode};
use elements::read_elements;
pub(crate) use elements::{Element, Number};

pub mod binary;
mod diagnose;
mod elements;
pub(crate) mod strings;

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
    /// Strings (ONNX `tensor(string)`).
    Bytes,
}

const ALL: [DataType; 12] = [
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
    DataType::Bytes,
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
            DataType::Bytes => "BYTES",
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
            TensorElementType::String => DataType::Bytes,
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
    #[schema(schema_with = datatype_schema)]
    pub datatype: DataType,
    /// Dimensions; -1 marks a dynamic one.
    pub shape: Vec<i64>,
}

/// One input tensor of an inference request.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct InputTensor {
    pub name: String,
    /// Whole numbers; `3.0` is read as 3, as JSON Schema's `integer` allows.
    #[serde(deserialize_with = "whole_numbers")]
    #[schema(value_type = Vec<u64>)]
    pub shape: Vec<i64>,
    #[schema(schema_with = datatype_schema)]
    pub datatype: String,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Map<String, Value>>,
    /// Row-major elements, flat or nested to the tensor's shape. Kept as text until the model's
    /// datatype is known, then read straight into that type (see `read_elements`). Absent when
    /// the elements come as binary data after the JSON (`parameters.binary_data_size`).
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<Box<RawValue>>,
    /// The elements as raw little-endian bytes (Triton's binary tensor extension), cut from the
    /// request body after the JSON header.
    #[serde(skip)]
    #[schema(ignore)]
    pub binary: Option<bytes::Bytes>,
}

/// A shape's dimensions: integers, or floats with no fraction (some clients write `224.0`).
fn whole_numbers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<i64>, D::Error> {
    let numbers = Vec::<serde_json::Number>::deserialize(deserializer)?;
    numbers
        .iter()
        .map(|n| {
            n.as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= i64::MIN as f64 && *f < i64::MAX as f64)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| de::Error::custom(format!("shape dimension {n} is not a whole number")))
        })
        .collect()
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
    Bytes(Vec<String>),
}

/// One output tensor of an inference response.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct OutputTensor {
    pub name: String,
    #[schema(schema_with = datatype_schema)]
    pub datatype: DataType,
    #[schema(value_type = Vec<u64>)]
    pub shape: Vec<i64>,
    #[schema(value_type = Vec<Object>)]
    pub data: TensorData,
}

/// The datatypes Gatehouse reads and writes, by their protocol names.
fn datatype_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(ALL.iter().map(|datatype| datatype.name())))
        .examples([serde_json::json!("FP32")])
        .build()
}

/// Checks `input` against `spec` and turns it into an ONNX Runtime value.
pub fn to_ort_value(spec: &TensorSpec, input: &InputTensor) -> Result<DynValue, ApiError> {
    // Every refusal names the input once, here.
    checked_value(spec, input).map_err(|mut error| {
        error.message = format!("input `{}`: {}", spec.name, error.message);
        error
    })
}

fn checked_value(spec: &TensorSpec, input: &InputTensor) -> Result<DynValue, ApiError> {
    let bad = ApiError::new;
    let datatype = DataType::parse(&input.datatype).ok_or_else(|| {
        bad(
            ErrorCode::UnknownDatatype,
            format!(
                "datatype `{}` is not one of {}",
                input.datatype,
                DataType::all_names()
            ),
        )
    })?;
    if datatype != spec.datatype {
        return Err(bad(
            ErrorCode::WrongDatatype,
            format!(
                "the model expects {}, the request has {}",
                spec.datatype.name(),
                datatype.name()
            ),
        ));
    }
    if input.shape.len() != spec.shape.len() {
        return Err(bad(
            ErrorCode::WrongShape,
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
                ErrorCode::WrongShape,
                format!("dimension {axis} is {got}; dimensions must be 0 or more"),
            ));
        }
        if want >= 0 && want != got {
            return Err(bad(
                ErrorCode::WrongShape,
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
                ErrorCode::WrongShape,
                format!("shape {:?} has more elements than fit in memory", input.shape),
            )
        })?;
    let shape = input.shape.clone();
    macro_rules! typed {
        ($t:ty) => {
            typed_tensor::<$t>(shape, &dims, expected, input, datatype)
        };
    }
    match datatype {
        DataType::Bool => typed!(bool),
        DataType::Uint8 => typed!(u8),
        DataType::Uint16 => typed!(u16),
        DataType::Uint32 => typed!(u32),
        DataType::Uint64 => typed!(u64),
        DataType::Int8 => typed!(i8),
        DataType::Int16 => typed!(i16),
        DataType::Int32 => typed!(i32),
        DataType::Int64 => typed!(i64),
        DataType::Fp32 => typed!(f32),
        DataType::Fp64 => typed!(f64),
        DataType::Bytes => strings(shape, &dims, expected, input),
    }
}

/// A BYTES input as a string tensor.
fn strings(
    shape: Vec<i64>,
    dims: &[usize],
    expected: usize,
    input: &InputTensor,
) -> Result<DynValue, ApiError> {
    let elements = match (&input.binary, &input.data) {
        (Some(binary), _) => strings::from_binary(binary, expected)?,
        (None, Some(data)) => strings::from_json(data.get(), dims, expected)?,
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::MissingData,
                "the input has neither `data` nor `parameters.binary_data_size` with binary data after the JSON",
            ));
        }
    };
    Tensor::from_string_array((shape, &*elements))
        .map(|t| t.into_dyn())
        .map_err(|error| {
            ApiError::new(
                ErrorCode::InvalidTensor,
                format!("ONNX Runtime refused the tensor: {error}"),
            )
        })
}

/// The elements of `input` as a tensor of `T`. Well-formed data is read straight from the request
/// text; anything else is read again through `Value` to say exactly what is wrong with it.
fn typed_tensor<T: Element>(
    shape: Vec<i64>,
    dims: &[usize],
    expected: usize,
    input: &InputTensor,
    datatype: DataType,
) -> Result<DynValue, ApiError> {
    let elements = match (&input.binary, &input.data) {
        (Some(bytes), _) => binary::elements::<T>(bytes, expected).map_err(|got| {
            ApiError::new(
                ErrorCode::WrongData,
                format!(
                    "the binary data holds {got} bytes; shape {:?} as {} takes {} ({} per element)",
                    input.shape,
                    datatype.name(),
                    expected.saturating_mul(T::SIZE),
                    T::SIZE
                ),
            )
        })?,
        (None, Some(data)) => match read_elements::<T>(data.get(), dims, expected) {
            Some(elements) => elements,
            None => return Err(refusal::<T>(input, dims, expected, datatype)),
        },
        (None, None) => {
            return Err(ApiError::new(
                ErrorCode::MissingData,
                "the input has neither `data` nor `parameters.binary_data_size` with binary data after the JSON",
            ));
        }
    };
    Tensor::from_array((shape, elements))
        .map(|t| t.into_dyn())
        .map_err(|error| {
            ApiError::new(
                ErrorCode::InvalidTensor,
                format!("ONNX Runtime refused the tensor: {error}"),
            )
        })
}

/// Why the fast reader refused `input`: the first problem, named precisely, found by reading
/// the request text again without building anything of it.
fn refusal<T: Element>(input: &InputTensor, dims: &[usize], expected: usize, datatype: DataType) -> ApiError {
    let text = input.data.as_ref().map_or("", |d| d.get());
    let (code, message) =
        diagnose::problem::<T>(text, dims, expected, datatype.name()).unwrap_or_else(|| {
            let message = format!(
                "`data` does not fit shape {:?} as {}",
                input.shape,
                datatype.name()
            );
            (ErrorCode::WrongData, message)
        });
    ApiError::new(code, message)
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
        DataType::Bytes => {
            let (shape, data) = value.try_extract_strings().map_err(failed)?;
            (shape.to_vec(), TensorData::Bytes(data))
        }
    };
    Ok(OutputTensor {
        name: name.to_string(),
        datatype,
        shape,
        data,
    })
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

    #[test]
    fn shape_dimensions_may_be_written_as_whole_floats_only() {
        let input: InputTensor =
            serde_json::from_str(r#"{"name":"x","shape":[3.0,4],"datatype":"FP32","data":[]}"#).unwrap();
        assert_eq!(input.shape, [3, 4]);
        let error =
            serde_json::from_str::<InputTensor>(r#"{"name":"x","shape":[3.5],"datatype":"FP32","data":[]}"#)
                .unwrap_err();
        assert!(error.to_string().contains("3.5 is not a whole number"), "{error}");
    }

    #[test]
    fn datatype_names_round_trip() {
        for datatype in ALL {
            assert_eq!(DataType::parse(datatype.name()), Some(datatype));
        }
        assert_eq!(DataType::parse("fp32"), None);
    }

    /// The slow path's message for `data` under `dims`, read as FP64.
    fn problem(data: &str, dims: &[usize]) -> Option<String> {
        let expected = dims.iter().product();
        diagnose::problem::<f64>(data, dims, expected, "FP64").map(|(_, message)| message)
    }

    #[test]
    fn flat_and_nested_data_both_fit_their_shape() {
        assert_eq!(problem("[1, 2, 3, 4, 5, 6]", &[2, 3]), None);
        assert_eq!(problem("[[1, 2, 3], [4, 5, 6]]", &[2, 3]), None);
    }

    #[test]
    fn ragged_or_too_deep_nesting_is_refused() {
        assert!(problem("[[1, 2], [3]]", &[2, 2]).unwrap().contains("depth 1"));
        assert!(problem("[[[1]], [[2]]]", &[2, 1]).unwrap().contains("deeper"));
        assert!(problem("[1, [2]]", &[2]).unwrap().contains("element 1"));
        assert!(problem("{\"a\": 1}", &[1]).unwrap().contains("JSON array"));
        assert!(
            problem("[[1, 2], 3]", &[2, 2])
                .unwrap()
                .contains("`3` at depth 0 should be an array of 2")
        );
        assert_eq!(
            problem("[1, \"two\", 3]", &[3]).unwrap(),
            "element 1 is `\"two\"`, which is not a FP64 value"
        );
        assert!(
            problem("[1, {\"a\": [1, 2]}]", &[2])
                .unwrap()
                .contains("element 1 is `{…}`")
        );
    }

    /// The fast reader's answer and the slow path's for the same data, under `shape`.
    fn both<T: Element>(data: &str, shape: &[i64]) -> (Option<Vec<T>>, Option<String>) {
        let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
        let expected = dims.iter().product();
        let fast = read_elements::<T>(data, &dims, expected);
        let slow = diagnose::problem::<T>(data, &dims, expected, "FP32").map(|(_, message)| message);
        (fast, slow)
    }

    /// The fast reader takes `data` exactly when the slow path finds nothing wrong with it.
    fn agree<T: Element + PartialEq>(data: &str, shape: &[i64]) {
        let (fast, slow) = both::<T>(data, shape);
        assert_eq!(
            fast.is_some(),
            slow.is_none(),
            "{data} as {shape:?}: fast {fast:?}, slow {slow:?}"
        );
    }

    #[test]
    fn the_fast_reader_accepts_exactly_what_the_checked_path_accepts() {
        let cases: &[(&str, &[i64])] = &[
            ("[1, 2, 3, 4]", &[4]),
            ("[[1, 2], [3, 4]]", &[2, 2]),
            ("[[1, 2], [3, 4]]", &[4]),
            ("[[1, 2], [3, 4]]", &[2, 2, 1]),
            ("[[1, 2], [3]]", &[2, 2]),
            ("[[1, 2], 3]", &[2, 2]),
            ("[1, [2]]", &[2]),
            ("[[[1]], [[2]]]", &[2, 1]),
            ("[[[1]], [[2]]]", &[2, 1, 1]),
            ("[1, 2, 3]", &[2, 2]),
            ("[1, 2, 3, 4, 5]", &[2, 2]),
            ("[]", &[0]),
            ("[]", &[2, 0]),
            ("[[]]", &[1, 0]),
            ("[5]", &[]),
            ("5", &[]),
            ("{\"a\": 1}", &[1]),
            ("[null]", &[1]),
            ("[\"1\"]", &[1]),
            ("[true, false]", &[2]),
            ("[1.5, 2]", &[2]),
            ("[1.0, -0.0, -0]", &[3]),
            ("[-1, 255, 256]", &[3]),
            ("[-128, 127, -129]", &[3]),
            ("[1e40, -1e40]", &[2]),
            ("[3.4e38, 1e-50]", &[2]),
            ("[18446744073709551615, 9223372036854775807]", &[2]),
            ("[-9223372036854775808, 9223372036854775808]", &[2]),
            ("[0.1, 2.5e3, -7]", &[3]),
        ];
        for (data, shape) in cases {
            agree::<bool>(data, shape);
            agree::<u8>(data, shape);
            agree::<u16>(data, shape);
            agree::<u32>(data, shape);
            agree::<u64>(data, shape);
            agree::<i8>(data, shape);
            agree::<i16>(data, shape);
            agree::<i32>(data, shape);
            agree::<i64>(data, shape);
            agree::<f32>(data, shape);
            agree::<f64>(data, shape);
        }
    }

    #[test]
    fn the_fast_reader_reads_flat_and_nested_data_and_the_slow_path_names_the_problem() {
        assert_eq!(both::<i32>("[[1, 2], [3, 4]]", &[2, 2]).0, Some(vec![1, 2, 3, 4]));
        assert_eq!(both::<f32>("[0.5, -2]", &[2]).0, Some(vec![0.5, -2.0]));
        let (fast, slow) = both::<u8>("[1, 256]", &[2]);
        assert_eq!(fast, None);
        assert_eq!(slow.unwrap(), "element 1 is `256`, which is not a FP32 value");
        let (fast, slow) = both::<f32>("[1, 2, 3]", &[2, 2]);
        assert_eq!(fast, None);
        assert!(slow.unwrap().contains("needs 4 elements, `data` has 3"));
    }

    #[test]
    fn a_huge_shape_over_a_small_body_reserves_nothing_huge() {
        let dims = [1usize << 40];
        assert_eq!(read_elements::<f32>("[1, 2]", &dims, 1 << 40), None);
    }

    #[test]
    fn output_data_serialises_as_a_flat_array_without_widening_floats() {
        let text = serde_json::to_string(&TensorData::Fp32(vec![0.1, 2.0])).unwrap();
        assert_eq!(text, "[0.1,2.0]");
    }
}
