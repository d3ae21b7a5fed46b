//! Generates the Open Inference Protocol's gRPC messages and service from `proto/inference.proto`
//! with protox, a protobuf compiler in Rust, so no `protoc` has to be installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/inference.proto");
    let descriptors = protox::compile(["proto/inference.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_transport(false)
        // Tensor bytes stay slices of the received message: no copy between socket and runtime.
        .bytes(".inference")
        .compile_fds(descriptors)?;
    Ok(())
}
