use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn defaults_are_the_secure_ones() {
    let settings = Settings::default();
    assert_eq!(settings.server.host, "127.0.0.1");
    assert_eq!(settings.server.port, 9001);
    assert!(settings.auth.enabled);
    assert!(!settings.workflows.allow_custom_python);
    settings.validate().unwrap();
}

#[test]
fn a_missing_file_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        Settings::load(&dir.path().join("settings.toml")).unwrap(),
        Settings::default()
    );
}

#[test]
fn environment_overrides_the_file_and_gatehouse_names_win() {
    let mut settings = Settings::parse("[server]\nport = 7000\nhost = \"0.0.0.0\"\n").unwrap();
    settings.apply_environment(env(&[("PORT", "8000")])).unwrap();
    assert_eq!(settings.server.port, 8000);
    assert_eq!(settings.server.host, "0.0.0.0");
    settings
        .apply_environment(env(&[("PORT", "8000"), ("GATEHOUSE_PORT", "8100")]))
        .unwrap();
    assert_eq!(settings.server.port, 8100);
}

#[test]
fn a_bad_environment_value_names_the_variable_and_the_field() {
    let mut settings = Settings::default();
    let error = settings
        .apply_environment(env(&[("PORT", "ninety")]))
        .unwrap_err();
    let text = error.to_string();
    assert!(text.contains("server.port"), "{text}");
    assert!(text.contains("environment variable PORT"), "{text}");
    assert!(text.contains("not a whole number"), "{text}");
    let error = settings
        .apply_environment(env(&[("PORT", "70000")]))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("server.port") && error.contains("70000"),
        "{error}"
    );
}

#[test]
fn a_malformed_file_is_reported_with_its_line_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    std::fs::write(&path, "[server]\nport = 9001\nbind = \"x\"\n").unwrap();
    let error = Settings::load(&path).unwrap_err().to_string();
    assert!(error.contains("bind"), "{error}");
    assert!(error.contains("line 3"), "{error}");
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "[server]\nport = 9001\nbind = \"x\"\n"
    );
}

#[test]
fn validation_reports_every_problem_at_once() {
    let mut settings = Settings::default();
    settings.server.host = "my laptop".into();
    settings.inference.intra_threads = 0;
    settings.limits.max_body_bytes = 10;
    let SettingsError::Invalid(problems) = settings.validate().unwrap_err() else {
        panic!("not Invalid")
    };
    let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        ["server.host", "inference.intra_threads", "limits.max_body_bytes"]
    );
    assert!(problems.iter().all(|p| !p.fix.is_empty()));
}

#[test]
fn open_network_without_authentication_is_refused_unless_meant() {
    let mut settings = Settings::default();
    settings.set("server.host", "0.0.0.0").unwrap();
    settings.set("auth.enabled", "false").unwrap();
    let error = settings.validate().unwrap_err().to_string();
    assert!(error.contains("auth.allow_open_network"), "{error}");
    settings.set("auth.allow_open_network", "true").unwrap();
    settings.set("tls.allow_plaintext_network", "true").unwrap();
    settings.validate().unwrap();
    settings.set("server.host", "127.0.0.1").unwrap();
    settings.set("auth.allow_open_network", "false").unwrap();
    settings.validate().unwrap();
}

#[test]
fn the_network_without_tls_is_refused_unless_meant() {
    let mut settings = Settings::default();
    settings.set("server.host", "0.0.0.0").unwrap();
    let error = settings.validate().unwrap_err().to_string();
    assert!(
        error.contains("tls.enabled")
            && error.contains("plain text")
            && error.contains("tls.allow_plaintext_network"),
        "{error}"
    );
    settings.set("tls.enabled", "true").unwrap();
    settings.validate().unwrap();
    settings.set("tls.enabled", "false").unwrap();
    settings.set("tls.allow_plaintext_network", "True").unwrap();
    settings.validate().unwrap();
}

#[test]
fn booleans_from_the_environment_take_any_case_as_roboflow_users_write_them() {
    let mut settings = Settings::default();
    settings
        .apply_environment(env(&[
            ("ENABLE_HTTPS", "True"),
            ("ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS", "FALSE"),
            ("GATEHOUSE_AUDIT", "No"),
        ]))
        .unwrap();
    assert!(settings.tls.enabled);
    assert!(!settings.workflows.allow_custom_python);
    assert!(!settings.audit.enabled);
    settings
        .apply_environment(env(&[("ALLOW_CUSTOM_PYTHON_EXECUTION_IN_WORKFLOWS", "1")]))
        .unwrap();
    assert!(settings.workflows.allow_custom_python);
    let error = settings
        .apply_environment(env(&[("ENABLE_HTTPS", "sure")]))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("ENABLE_HTTPS") && error.contains("`sure`"),
        "{error}"
    );
}

#[test]
fn cors_origins_are_lists_of_real_origins() {
    let mut settings = Settings::default();
    settings
        .set(
            "cors.allowed_origins",
            "http://localhost:5173, https://app.example",
        )
        .unwrap();
    assert_eq!(
        settings.cors.allowed_origins,
        ["http://localhost:5173", "https://app.example"]
    );
    settings.validate().unwrap();
    settings
        .set("cors.allowed_origins", "*,http://localhost:5173")
        .unwrap();
    assert!(settings.validate().is_err());
    settings.set("cors.allowed_origins", "localhost:5173").unwrap();
    assert!(
        settings
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not an origin")
    );
}

#[test]
fn unknown_keys_are_refused_with_the_list_of_keys() {
    let mut settings = Settings::default();
    let problem = settings.set("server.bind", "x").unwrap_err();
    assert!(problem.fix.contains("server.host"), "{problem}");
    assert!(settings.set("port", "1").is_err());
}

#[test]
fn save_round_trips_and_refuses_invalid_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("settings.toml");
    let mut settings = Settings::default();
    settings.set("server.port", "9100").unwrap();
    settings.set("server.models", "/srv/models").unwrap();
    settings.save(&path).unwrap();
    assert_eq!(Settings::load(&path).unwrap(), settings);
    settings.server.host = "nope".into();
    assert!(matches!(settings.save(&path), Err(SettingsError::Invalid(_))));
    assert_eq!(Settings::load(&path).unwrap().server.host, "127.0.0.1");
}

#[test]
fn an_empty_value_clears_a_setting_back_to_its_default() {
    let mut settings = Settings::default();
    settings.set("tls.client_ca", "/etc/gatehouse/ca.pem").unwrap();
    settings.set("server.host", "192.0.2.4").unwrap();
    settings.set("tls.client_ca", "").unwrap();
    settings.set("server.host", " ").unwrap();
    assert_eq!(settings.tls.client_ca, None);
    assert_eq!(settings.server.host, "127.0.0.1");
    assert!(settings.validate().is_ok());
}

#[test]
fn grpc_is_on_beside_the_http_port_and_may_not_share_it() {
    let mut settings = Settings::default();
    assert!(settings.grpc.enabled);
    assert_eq!(settings.grpc.port, 9002);
    settings
        .apply_environment(env(&[("GATEHOUSE_GRPC_PORT", "9001")]))
        .unwrap();
    let error = settings.validate().unwrap_err().to_string();
    assert!(
        error.contains("grpc.port") && error.contains("port of its own"),
        "{error}"
    );
    // Off, or both ports picked by the OS, the numbers do not collide.
    settings.set("grpc.enabled", "off").unwrap();
    settings.validate().unwrap();
    settings.set("grpc.enabled", "on").unwrap();
    settings.set("grpc.port", "0").unwrap();
    settings.set("server.port", "0").unwrap();
    settings.validate().unwrap();
}

#[test]
fn every_setting_in_the_file_has_one_row_and_every_row_sets_its_field() {
    let tree = toml::Table::try_from(Settings::default()).unwrap();
    let mut fields = Vec::new();
    for (section, table) in &tree {
        for field in table.as_table().unwrap().keys() {
            fields.push(format!("{section}.{field}"));
        }
    }
    // Tables of their own, written in the file rather than set as one text value.
    let untextual = ["guard.route_scopes", "guard.launch_env"];
    for key in Settings::keys() {
        assert_eq!(
            Settings::keys().iter().filter(|k| **k == key).count(),
            1,
            "{key} twice"
        );
    }
    let defaulted_to_none = [
        "server.models",
        "server.exposed_until",
        "tls.cert",
        "tls.key",
        "tls.client_ca",
        "inference.onnxruntime",
        "guard.upstream",
    ];
    for field in &fields {
        assert!(
            Settings::keys().contains(&field.as_str()) || untextual.contains(&field.as_str()),
            "{field} is in the settings file but not in the table"
        );
    }
    for key in Settings::keys() {
        assert!(
            fields.iter().any(|f| f == key) || defaulted_to_none.contains(&key),
            "{key} is in the table but not a field"
        );
    }
}

#[test]
fn no_environment_variable_sets_two_settings() {
    let mut seen = std::collections::HashSet::new();
    for row in table::ROWS {
        for name in row.environment {
            assert!(seen.insert(*name), "{name} sets two settings");
        }
    }
}

#[test]
fn each_range_refuses_just_outside_and_takes_its_ends() {
    // The row's own check, apart from the rules that weigh it against other settings.
    let problems = |row: &table::Row, value: i64| {
        let mut settings = Settings::default();
        settings.set(row.key, &value.to_string()).unwrap();
        let tree = toml::Table::try_from(&settings).unwrap();
        row.problems(&settings, &tree)
    };
    let mut ranges = 0;
    for row in table::ROWS {
        let table::Check::Range { low, high, .. } = row.check else {
            continue;
        };
        ranges += 1;
        assert!(problems(row, low).is_empty(), "{}: {low} refused", row.key);
        if low > 0 {
            let refused = problems(row, low - 1);
            assert!(
                refused.len() == 1 && refused[0].message.contains(&(low - 1).to_string()),
                "{}: {} taken: {refused:?}",
                row.key,
                low - 1
            );
        }
        if high < u32::MAX as i64 {
            assert!(problems(row, high).is_empty(), "{}: {high} refused", row.key);
            assert_eq!(
                problems(row, high + 1).len(),
                1,
                "{}: {} taken",
                row.key,
                high + 1
            );
        }
    }
    assert_eq!(ranges, 20, "the ranges in the table");
}
