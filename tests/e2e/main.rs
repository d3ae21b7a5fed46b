//! End-to-end tests: the real `gatehouse` binary, real sockets, real ONNX Runtime and real models.
//! One integration binary; the harness is in `util.rs`.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod audit;
mod auth;
mod checklist;
mod errors;
mod export;
mod exposure;
mod grpc;
mod guard;
mod hardening;
mod inference;
mod keychain;
mod panel;
mod perimeter;
mod public;
mod reliability;
mod seeds;
mod serve;
mod supervisor;
mod tls;
mod util;
mod workflows;
