//! Starting and stopping: settings precedence, refusals with a clear message, graceful shutdown.

use std::net::TcpListener;

use crate::util::{TestServer, default_models};

fn listening_ip(server: &TestServer) -> String {
    server.addr.rsplit_once(':').unwrap().0.to_string()
}

#[test]
fn flags_beat_environment_beat_the_settings_file() {
    let file = "[server]\nhost = \"127.0.0.2\"\n";
    let from_file = TestServer::builder()
        .models(&default_models())
        .settings(file)
        .start();
    assert_eq!(listening_ip(&from_file), "127.0.0.2");
    let from_env = TestServer::builder()
        .models(&default_models())
        .settings(file)
        .env("HOST", "127.0.0.3")
        .start();
    assert_eq!(listening_ip(&from_env), "127.0.0.3");
    let gatehouse_env = TestServer::builder()
        .models(&default_models())
        .settings(file)
        .env("HOST", "127.0.0.3")
        .env("GATEHOUSE_HOST", "127.0.0.4")
        .start();
    assert_eq!(listening_ip(&gatehouse_env), "127.0.0.4");
    let from_flag = TestServer::builder()
        .models(&default_models())
        .settings(file)
        .env("HOST", "127.0.0.3")
        .arg("--host")
        .arg("127.0.0.5")
        .start();
    assert_eq!(listening_ip(&from_flag), "127.0.0.5");
    assert_eq!(from_flag.listening["tls"], false);
    assert_eq!(from_flag.listening["url"], format!("http://{}", from_flag.addr));
}

#[test]
fn the_default_bind_is_loopback_on_9001_and_port_zero_picks_a_free_port() {
    let server = TestServer::builder().models(&default_models()).start();
    assert!(server.addr.starts_with("127.0.0.1:"), "{}", server.addr);
    assert_ne!(server.addr, "127.0.0.1:0");
    // "This computer only" is both loopback addresses, on the same port.
    let port = server.addr.rsplit_once(':').unwrap().1;
    assert_eq!(server.listening["also"], format!("[::1]:{port}"));
    let v6 = std::net::TcpStream::connect_timeout(
        &format!("[::1]:{port}").parse().unwrap(),
        std::time::Duration::from_secs(2),
    );
    assert!(v6.is_ok(), "[::1]:{port} does not answer");
    let home = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(crate::util::gatehouse_bin())
        .args(["settings", "show", "--json"])
        .env("GATEHOUSE_HOME", home.path())
        .env_remove("HOST")
        .env_remove("PORT")
        .output()
        .unwrap();
    let settings: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(settings["server"]["host"], "127.0.0.1");
    assert_eq!(settings["server"]["port"], 9001);
}

#[test]
fn a_broken_settings_file_stops_the_start_and_is_left_untouched() {
    let broken = "[server]\nport = 9001\nhots = \"0.0.0.0\"\n";
    let (output, home) = TestServer::builder()
        .models(&default_models())
        .settings(broken)
        .run_to_exit();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("hots") && stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("settings.toml"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(home.path().join("settings.toml")).unwrap(),
        broken
    );
    assert!(
        !home.path().join("settings.toml.bak").exists(),
        "nothing was rewritten"
    );
}

#[test]
fn bad_values_name_their_source_and_the_fix() {
    let output = TestServer::builder()
        .models(&default_models())
        .env("PORT", "nine thousand")
        .run_to_exit()
        .0;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.port") && stderr.contains("environment variable PORT"),
        "{stderr}"
    );
    assert!(stderr.contains("fix:"), "{stderr}");

    let output = TestServer::builder()
        .models(&default_models())
        .arg("--host")
        .arg("my-laptop")
        .run_to_exit()
        .0;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("server.host") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
}

#[test]
fn a_port_in_use_is_reported_with_the_port() {
    let holder = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = holder.local_addr().unwrap().port();
    let output = TestServer::builder()
        .models(&default_models())
        .arg("--port")
        .arg(&port.to_string())
        .run_to_exit()
        .0;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("port {port}"))
            && stderr.contains("already in use")
            && stderr.contains("--port"),
        "{stderr}"
    );
}

#[test]
fn a_missing_onnx_runtime_is_explained() {
    let output = TestServer::builder()
        .models(&default_models())
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .run_to_exit()
        .0;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/libonnxruntime.so") && stderr.contains("scripts/run.sh"),
        "{stderr}"
    );
}

#[test]
fn sigterm_finishes_gracefully_with_exit_code_zero() {
    let mut server = TestServer::start_default();
    assert_eq!(server.get("/healthz").0, 200);
    let (code, log) = server.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("\"event\":\"shutting_down\"") && log.contains("\"event\":\"stopped\""),
        "{log}"
    );
}

#[test]
fn settings_set_writes_a_private_file_and_refuses_bad_values() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(crate::util::gatehouse_bin())
            .args(args)
            .env("GATEHOUSE_HOME", home.path())
            .output()
            .unwrap()
    };
    assert!(run(&["settings", "set", "server.port", "9100"]).status.success());
    let file = home.path().join("settings.toml");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read_to_string(&file).unwrap();
    assert!(before.contains("port = 9100"), "{before}");
    let refused = run(&["settings", "set", "server.host", "everywhere"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("server.host"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        before,
        "a refused change leaves the file as it was"
    );
}
