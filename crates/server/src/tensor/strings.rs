//! BYTES tensors: strings, as the Open Inference Protocol sends them — a JSON array of strings
//! (flat or nested to the shape), or in binary data as each element's byte length (4 bytes,
//! little-endian) followed by its bytes. ONNX Runtime holds them as `tensor(string)`: UTF-8 text
//! without NUL bytes, so anything else is refused with the element's index.

use serde_json::Value;

use crate::error::{ApiError, ErrorCode};

fn wrong(message: String) -> ApiError {
    ApiError::new(ErrorCode::WrongData, message)
}

/// The `expected` strings of JSON `data` laid out as `dims`.
pub fn from_json(text: &str, dims: &[usize], expected: usize) -> Result<Vec<String>, ApiError> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| wrong(format!("`data` is not valid JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(wrong("`data` must be a JSON array of strings".into()));
    };
    let mut out = Vec::with_capacity(expected.min(1 << 16));
    let flat = items.iter().all(Value::is_string);
    if flat {
        if items.len() != expected {
            return Err(wrong(format!(
                "`data` has {} strings; shape {dims:?} takes {expected}",
                items.len()
            )));
        }
        for item in &items {
            out.push(text_element(item, out.len())?);
        }
        return Ok(out);
    }
    nested(&items, dims, 0, &mut out)?;
    Ok(out)
}

fn nested(items: &[Value], dims: &[usize], depth: usize, out: &mut Vec<String>) -> Result<(), ApiError> {
    let Some(&want) = dims.get(depth) else {
        return Err(wrong(format!(
            "`data` is nested deeper than the shape's {} dimensions",
            dims.len()
        )));
    };
    if items.len() != want {
        return Err(wrong(format!(
            "an array at depth {depth} has {} entries; the shape {dims:?} says {want}",
            items.len()
        )));
    }
    for item in items {
        match item {
            Value::Array(inner) => nested(inner, dims, depth + 1, out)?,
            _ if depth + 1 == dims.len() => out.push(text_element(item, out.len())?),
            other => {
                return Err(wrong(format!(
                    "`{}` at depth {depth} should be an array of {}",
                    short(other),
                    dims[depth + 1]
                )));
            }
        }
    }
    Ok(())
}

fn text_element(item: &Value, index: usize) -> Result<String, ApiError> {
    match item {
        Value::String(text) => checked(text.clone(), index),
        other => Err(wrong(format!(
            "element {index} is `{}`, which is not a BYTES value (a string)",
            short(other)
        ))),
    }
}

fn checked(text: String, index: usize) -> Result<String, ApiError> {
    if text.contains('\0') {
        return Err(wrong(format!(
            "element {index} holds a NUL byte, which ONNX Runtime's string tensors cannot hold"
        )));
    }
    Ok(text)
}

fn short(value: &Value) -> String {
    match value {
        Value::Array(_) => "[…]".into(),
        Value::Object(_) => "{…}".into(),
        other => {
            let text = other.to_string();
            if text.len() > 40 {
                format!("{}…", &text[..text.floor_char_boundary(40)])
            } else {
                text
            }
        }
    }
}

/// The `expected` strings of binary data: each a 4-byte little-endian length, then its bytes.
pub fn from_binary(bytes: &[u8], expected: usize) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::with_capacity(expected.min(bytes.len() / 4 + 1));
    let mut rest = bytes;
    while !rest.is_empty() {
        let index = out.len();
        if index == expected {
            return Err(wrong(format!(
                "the binary data goes on for {} bytes after the {expected} elements the shape takes",
                rest.len()
            )));
        }
        let Some((prefix, tail)) = rest.split_first_chunk::<4>() else {
            return Err(wrong(format!(
                "element {index}'s length prefix is cut short: {} of its 4 bytes",
                rest.len()
            )));
        };
        let length = u32::from_le_bytes(*prefix) as usize;
        if length > tail.len() {
            return Err(wrong(format!(
                "element {index}'s length prefix says {length} bytes, {} remain",
                tail.len()
            )));
        }
        let (element, tail) = tail.split_at(length);
        let text = String::from_utf8(element.to_vec()).map_err(|_| {
            wrong(format!(
                "element {index} is not UTF-8 text, which ONNX Runtime's string tensors hold"
            ))
        })?;
        out.push(checked(text, index)?);
        rest = tail;
    }
    if out.len() != expected {
        return Err(wrong(format!(
            "the binary data holds {} elements; the shape takes {expected}",
            out.len()
        )));
    }
    Ok(out)
}

/// Strings as binary data: each one's length (4 bytes, little-endian), then its bytes.
pub fn write<T: AsRef<[u8]>>(values: &[T], out: &mut Vec<u8>) {
    for value in values {
        let value = value.as_ref();
        // An element over 4 GiB cannot be written in this form; ONNX Runtime makes none, and a
        // request's are refused before they get here.
        out.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(elements: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for element in elements {
            out.extend_from_slice(&(element.len() as u32).to_le_bytes());
            out.extend_from_slice(element);
        }
        out
    }

    #[test]
    fn json_strings_flat_or_nested_to_the_shape() {
        assert_eq!(
            from_json(r#"["a", "b", "c", "d"]"#, &[2, 2], 4).unwrap(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(
            from_json(r#"[["a", "b"], ["c", "d"]]"#, &[2, 2], 4).unwrap(),
            ["a", "b", "c", "d"]
        );
        let message =
            |text: &str, dims: &[usize]| from_json(text, dims, dims.iter().product()).unwrap_err().message;
        assert!(message(r#"["a", "b", "c"]"#, &[2, 2]).contains("has 3 strings"));
        assert!(message(r#"[["a"], ["b", "c"]]"#, &[2, 2]).contains("has 1 entries"));
        assert!(message(r#"["a", 2]"#, &[2]).contains("element 1 is `2`"));
        assert!(message(r#"["a\u0000b"]"#, &[1]).contains("NUL"));
        assert!(message(r#"{"a": 1}"#, &[1]).contains("JSON array"));
    }

    #[test]
    fn binary_elements_are_length_prefixed_and_every_length_is_checked() {
        let data = binary(&[b"", "ünï".as_bytes(), b"xyz"]);
        assert_eq!(from_binary(&data, 3).unwrap(), ["", "ünï", "xyz"]);
        let mut written = Vec::new();
        write::<String>(&["".into(), "ünï".into(), "xyz".into()], &mut written);
        assert_eq!(written, data, "written as it is read");
        let message = |bytes: &[u8], n: usize| from_binary(bytes, n).unwrap_err().message;
        assert!(message(&data, 2).contains("goes on for"));
        assert!(message(&data, 4).contains("holds 3 elements"));
        assert!(message(&data[..data.len() - 1], 3).contains("says 3 bytes, 2 remain"));
        assert!(message(&[1, 0], 1).contains("2 of its 4 bytes"));
        assert!(message(&binary(&[&[0xff, 0xfe]]), 1).contains("not UTF-8"));
        assert!(message(&binary(&[b"a\0"]), 1).contains("NUL"));
        assert_eq!(from_binary(&[], 0).unwrap(), Vec::<String>::new());
    }
}
