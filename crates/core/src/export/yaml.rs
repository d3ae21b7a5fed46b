//! A YAML writer for the manifests Gatehouse exports: block style, keys in sorted order (the
//! JSON values are `BTreeMap`s), so the same input always gives the same bytes and a diff of two
//! exports shows only what changed. Strings that YAML could read as something else (`on`, `8080`,
//! `1e3`, `null`, a leading `*`) are quoted; PEM text is written as a literal block.

use serde_json::Value;

/// One YAML document, ending in a newline.
pub fn document(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar, 0));
            out.push('\n');
        }
    }
    out
}

/// Several documents in one file, each introduced by `---`.
pub fn documents(values: &[Value]) -> String {
    values.iter().map(|v| format!("---\n{}", document(v))).collect()
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&plain_or_quoted(key));
        out.push(':');
        write_value_after_key(out, value, indent);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        out.push_str(&" ".repeat(indent));
        out.push('-');
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first key goes on the dash's line, the rest line up under it.
                let mut first = true;
                for (key, value) in map {
                    if first {
                        out.push(' ');
                        first = false;
                    } else {
                        out.push_str(&" ".repeat(indent + 2));
                    }
                    out.push_str(&plain_or_quoted(key));
                    out.push(':');
                    write_value_after_key(out, value, indent + 2);
                }
            }
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_list(out, inner, indent + 2);
            }
            scalar => {
                out.push(' ');
                out.push_str(&scalar_text(scalar, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn write_value_after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            write_list(out, items, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar, indent + 2));
            out.push('\n');
        }
    }
}

fn scalar_text(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) if is_literal_block(s) => {
            let pad = " ".repeat(indent);
            let body: String = s
                .lines()
                .map(|line| {
                    if line.is_empty() {
                        "\n".to_string()
                    } else {
                        format!("\n{pad}{line}")
                    }
                })
                .collect();
            format!("|{body}")
        }
        Value::String(s) => plain_or_quoted(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// Multi-line text that a `|` block keeps byte for byte: one final newline, a first line that
/// is not indented (it sets the block's indentation), no trailing spaces, no control characters.
fn is_literal_block(s: &str) -> bool {
    s.ends_with('\n')
        && !s.ends_with("\n\n")
        && s.trim_end_matches('\n').contains('\n')
        && !s.starts_with([' ', '\n'])
        && s.lines().all(|line| !line.ends_with(' '))
        && !s.chars().any(|c| c.is_control() && c != '\n')
}

fn plain_or_quoted(s: &str) -> String {
    if is_plain_safe(s) {
        s.to_string()
    } else {
        // A JSON string is a valid YAML double-quoted scalar.
        serde_json::to_string(s).unwrap_or_default()
    }
}

/// Plain scalars are limited to text YAML 1.1 and 1.2 readers both read back as the same string.
fn is_plain_safe(s: &str) -> bool {
    const WORDS: [&str; 22] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "Y", "N", "Yes", "No", "On", "Off",
        "True", "False", "Null", "YES", "NO", "NULL",
    ];
    let Some(first) = s.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
        && !WORDS.contains(&s)
        && !s.eq_ignore_ascii_case("true")
        && !s.eq_ignore_ascii_case("false")
        && !s.eq_ignore_ascii_case("null")
        // `e5`-like text is not a number, but `1e5` is excluded by the first character already.
        && !s.starts_with(".inf")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_lists_and_scalars_are_written_in_block_style() {
        let value = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "gatehouse-ca", "labels": {"app.kubernetes.io/name": "gatehouse"}},
            "ports": [{"port": 443, "targetPort": 8080}, {"port": 80}],
            "args": ["serve", "8080", "on", ""],
            "empty": {},
            "none": [],
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
        });
        assert_eq!(
            document(&value),
            "apiVersion: v1\n\
             args:\n- serve\n- \"8080\"\n- \"on\"\n- \"\"\n\
             data:\n  ca.crt: |\n    -----BEGIN CERTIFICATE-----\n    MIIB\n    -----END CERTIFICATE-----\n\
             empty: {}\n\
             kind: ConfigMap\n\
             metadata:\n  labels:\n    app.kubernetes.io/name: gatehouse\n  name: gatehouse-ca\n\
             none: []\n\
             ports:\n- port: 443\n  targetPort: 8080\n- port: 80\n"
        );
    }

    #[test]
    fn text_that_yaml_would_reinterpret_is_quoted() {
        for text in [
            "true", "No", "null", "8080", "1e3", "*x", "a: b", "-x", " lead", "é", "x#y",
        ] {
            assert!(!is_plain_safe(text), "{text}");
        }
        for text in [
            "magika",
            "serving.kserve.io/v1beta1",
            "pvc-models",
            "RawDeployment",
        ] {
            assert!(is_plain_safe(text), "{text}");
        }
        // Text that is not a clean block keeps its exact bytes in quotes.
        assert_eq!(scalar_text(&json!("a\n\nb\n\n"), 2), "\"a\\n\\nb\\n\\n\"");
        assert_eq!(scalar_text(&json!("one line\n"), 2), "\"one line\\n\"");
    }
}
