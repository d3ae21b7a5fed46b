//! What the Host check (the DNS-rebinding defence, the server's outermost layer) costs a request:
//! the same small router driven in-process with and without `perimeter::hosts::enforce`, in
//! alternating turns, with the `Connection` extension the serve loop attaches. Prints JSON with
//! nanoseconds per request each way and their difference; `bench/run.py` sets that against the
//! server's CPU per tiny-model request measured in the same run.
//!
//! Usage: host-check [ITERATIONS]

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use gatehouse_server::connections::Connection;
use gatehouse_server::metrics::Metrics;
use gatehouse_server::perimeter::hosts::{AllowedHosts, enforce};
use tower::{Service, ServiceExt};

const TURNS: usize = 8;

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a runtime");
    let address = "127.0.0.1:9001".parse().expect("an address");
    let hosts = Arc::new(AllowedHosts::new(
        ["localhost".to_string(), "my-laptop".to_string()],
        &[address],
        Arc::new(Metrics::new("bench")),
    ));
    let plain = Router::new().route("/v2/health/live", get(|| async { "ok" }));
    let checked = plain
        .clone()
        .layer(axum::middleware::from_fn_with_state(hosts, enforce));
    let connection = Connection {
        peer: "127.0.0.1:50000".parse().expect("an address"),
        local: address,
        server_name: None,
    };
    let run = |router: &Router, host: &str| -> f64 {
        runtime.block_on(async {
            let mut service = router.clone().into_service::<Body>();
            let started = Instant::now();
            for _ in 0..iterations {
                let mut request = Request::get("/v2/health/live")
                    .header("host", host)
                    .body(Body::empty())
                    .expect("a request");
                request.extensions_mut().insert(connection.clone());
                let response = service
                    .ready()
                    .await
                    .expect("ready")
                    .call(request)
                    .await
                    .expect("an answer");
                assert_eq!(response.status(), 200);
            }
            started.elapsed().as_nanos() as f64 / iterations as f64
        })
    };
    let (mut without, mut with_name, mut with_address) = (Vec::new(), Vec::new(), Vec::new());
    for turn in 0..TURNS {
        // Alternate the order so drift in the machine's speed lands on both sides.
        if turn % 2 == 0 {
            without.push(run(&plain, "127.0.0.1:9001"));
            with_address.push(run(&checked, "127.0.0.1:9001"));
            with_name.push(run(&checked, "localhost:9001"));
        } else {
            with_name.push(run(&checked, "localhost:9001"));
            with_address.push(run(&checked, "127.0.0.1:9001"));
            without.push(run(&plain, "127.0.0.1:9001"));
        }
    }
    let mean = |values: &[f64]| values.iter().sum::<f64>() / values.len() as f64;
    let (without, with_name, with_address) = (mean(&without), mean(&with_name), mean(&with_address));
    println!(
        "{{\"iterations\": {iterations}, \"turns\": {TURNS}, \"without_ns\": {without:.1}, \
         \"with_address_ns\": {with_address:.1}, \"with_name_ns\": {with_name:.1}, \
         \"cost_ns\": {:.1}}}",
        with_name.max(with_address) - without
    );
}
