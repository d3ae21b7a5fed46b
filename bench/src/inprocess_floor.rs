//! The floor the server is measured against: ONNX Runtime called in-process on the same input,
//! with the same session options the server uses (one intra-op thread, full graph optimisation).
//!
//!     inprocess-floor LIBONNXRUNTIME MODEL BODY_JSON ITERATIONS
//!
//! BODY_JSON is the OIP request the load generator sends; its first input is fed to the model.
//! Prints one JSON object with the p50 and mean time of one call (tensor creation + run), in µs.

use std::time::Instant;

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, library, model, body, iterations] = args.as_slice() else {
        return Err("usage: inprocess-floor LIBONNXRUNTIME MODEL BODY_JSON ITERATIONS".into());
    };
    let iterations: usize = iterations.parse()?;
    let environment = ort::init_from(library)?.with_name("floor").build()?;
    let mut session = Session::builder(&environment)?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(|e| e.to_string())?
        .with_intra_threads(1)
        .map_err(|e| e.to_string())?
        .with_inter_threads(1)
        .map_err(|e| e.to_string())?
        .commit_from_file(model)?;
    let request: serde_json::Value = serde_json::from_slice(&std::fs::read(body)?)?;
    let input = &request["inputs"][0];
    let name = input["name"].as_str().ok_or("input has no name")?.to_string();
    let shape: Vec<i64> = input["shape"]
        .as_array()
        .ok_or("no shape")?
        .iter()
        .filter_map(|d| d.as_i64())
        .collect();
    let values = input["data"].as_array().ok_or("no data")?;
    let datatype = input["datatype"].as_str().ok_or("no datatype")?;
    let ints: Vec<i32> = values
        .iter()
        .filter_map(|v| v.as_i64())
        .map(|v| v as i32)
        .collect();
    let floats: Vec<f32> = values
        .iter()
        .filter_map(|v| v.as_f64())
        .map(|v| v as f32)
        .collect();

    let mut call = || -> Result<(), ort::Error> {
        let value = match datatype {
            "INT32" => Tensor::from_array((shape.clone(), ints.clone()))?.into_dyn(),
            _ => Tensor::from_array((shape.clone(), floats.clone()))?.into_dyn(),
        };
        let outputs = session.run(vec![(name.clone(), value)])?;
        std::hint::black_box(outputs.len());
        Ok(())
    };
    for _ in 0..iterations / 10 {
        call()?;
    }
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        call()?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    println!(
        "{{\"p50_us\": {:.1}, \"mean_us\": {:.1}, \"iterations\": {iterations}}}",
        times[times.len() / 2],
        mean
    );
    Ok(())
}
