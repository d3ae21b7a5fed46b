//! The workflow body as the OpenAPI document describes it. The handlers read bodies through
//! `plan`, which gives each mistake its own message naming the step; these types exist so a
//! client (or an API fuzzer) learns from the document what `plan` accepts: every step kind with
//! exactly its fields, names and references by their patterns, the step count's bounds.
#![allow(dead_code)]

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::tensor::InputTensor;

/// The body of `POST /v1/workflows/run` and `POST /v1/workflows/validate`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkflowRequest {
    workflow: Workflow,
    /// Input tensors by name, as steps refer to them (`$inputs.NAME`); `validate` needs none.
    #[serde(default)]
    inputs: Option<HashMap<String, InputTensor>>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Workflow {
    /// Run in the order their references imply, not the order written.
    #[schema(min_items = 1, max_items = 64)]
    steps: Vec<Step>,
    /// The answer's names, each a reference to a step's output.
    #[schema(value_type = HashMap<String, Reference>)]
    outputs: HashMap<String, String>,
}

/// `$inputs.NAME`, `$steps.STEP` or `$steps.STEP.FIELD`.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(
    pattern = r"^\$(inputs\.[^.]+|steps\.[^.]+(\.[^.]+)?)$",
    example = "$steps.classify.target_label"
)]
struct Reference(String);

/// Letters, digits, `_` or `-`; unique within the workflow.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", example = "classify")]
struct StepName(String);

/// A step's inputs: references, or literal JSON values.
type StepInputs = Option<HashMap<String, Value>>;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Step {
    /// Runs a model of the repository on its inputs, which are named as the model names them.
    Model {
        name: StepName,
        model: String,
        #[serde(default)]
        version: Option<String>,
        #[serde(default)]
        #[schema(value_type = Option<HashMap<String, Object>>)]
        inputs: StepInputs,
    },
    /// Softmax over the last axis of `x`.
    Softmax {
        name: StepName,
        #[serde(default)]
        #[schema(value_type = Option<HashMap<String, Object>>)]
        inputs: StepInputs,
    },
    /// The index of the largest element of `x`.
    Argmax {
        name: StepName,
        #[serde(default)]
        #[schema(value_type = Option<HashMap<String, Object>>)]
        inputs: StepInputs,
    },
    /// The `k` largest elements of `x` and their indices.
    TopK {
        name: StepName,
        #[schema(minimum = 1, maximum = 10000)]
        k: u32,
        #[serde(default)]
        #[schema(value_type = Option<HashMap<String, Object>>)]
        inputs: StepInputs,
    },
    /// The indices of `x`'s elements at or above `threshold`.
    Threshold {
        name: StepName,
        threshold: f64,
        #[serde(default)]
        #[schema(value_type = Option<HashMap<String, Object>>)]
        inputs: StepInputs,
    },
    /// The elements of `x` at `indices`.
    Select {
        name: StepName,
        #[serde(default)]
        #[schema(value_type = Option<HashMap<String, Object>>)]
        inputs: StepInputs,
    },
    /// A model's class names for `indices`.
    Labels {
        name: StepName,
        model: String,
        #[serde(default)]
        #[schema(value_type = Option<HashMap<String, Object>>)]
        inputs: StepInputs,
    },
    /// Python in the sandbox; refused with 403 `custom_python_disabled` unless allowed.
    Python {
        name: StepName,
        #[schema(max_length = 65536)]
        code: String,
        #[serde(default)]
        #[schema(value_type = Option<HashMap<String, Object>>)]
        inputs: StepInputs,
    },
}
