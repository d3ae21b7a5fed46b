//! Why the fast reader refused a tensor's `data`, found in one streaming pass over the request
//! text. Nothing of the data is kept but a count and the first bad element, so a malformed
//! 8 MB request costs no more memory than a well-formed one (a JSON tree of it would take
//! dozens of times its size).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Element, Number};
use crate::error::ErrorCode;

/// The first problem with `raw` as the data of a tensor of `T` with `dims` (and `expected`
/// elements), in the order a reader meets them: structure first, then the element count, then
/// the first element that is not a `T`: the error code and the message. `None` when nothing is
/// wrong.
pub(super) fn problem<T: Element>(
    raw: &str,
    dims: &[usize],
    expected: usize,
    type_name: &str,
) -> Option<(ErrorCode, String)> {
    let mut walk = Walk::<T> {
        dims,
        leaves: 0,
        bad: None,
        problem: None,
        element: PhantomData,
    };
    let mut reader = serde_json::Deserializer::from_str(raw);
    if (&mut reader).deserialize_any(Top { walk: &mut walk }).is_err() || reader.end().is_err() {
        let problem = walk.problem.take();
        return Some((
            ErrorCode::WrongData,
            problem.unwrap_or_else(|| "`data` must be a JSON array".to_string()),
        ));
    }
    if let Some(problem) = walk.problem {
        return Some((ErrorCode::WrongData, problem));
    }
    if walk.leaves != expected {
        return Some((
            ErrorCode::WrongElementCount,
            format!(
                "shape {dims:?} needs {expected} elements, `data` has {}",
                walk.leaves
            ),
        ));
    }
    walk.bad.map(|(index, leaf)| {
        (
            ErrorCode::WrongData,
            format!("element {index} is `{leaf}`, which is not a {type_name} value"),
        )
    })
}

struct Walk<'a, T> {
    dims: &'a [usize],
    leaves: usize,
    /// The first element that is not a `T`: its index and how it reads.
    bad: Option<(usize, String)>,
    problem: Option<String>,
    element: PhantomData<T>,
}

impl<T: Element> Walk<'_, T> {
    /// Stops the pass: `message` is the answer.
    fn stop<E: de::Error>(&mut self, message: String) -> E {
        self.problem.get_or_insert(message);
        E::custom("")
    }

    fn leaf(&mut self, element: Option<T>, shown: impl FnOnce() -> String) {
        if element.is_none() && self.bad.is_none() {
            self.bad = Some((self.leaves, shown()));
        }
        self.leaves += 1;
    }
}

/// The outer array; its first entry says whether the data is flat or nested.
struct Top<'w, 'a, T> {
    walk: &'w mut Walk<'a, T>,
}

impl<'de, T: Element> Visitor<'de> for Top<'_, '_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let walk = self.walk;
        let Some(nested) = seq.next_element_seed(Entry {
            walk: &mut *walk,
            place: Place::First,
        })?
        else {
            return Ok(());
        };
        let mut count = 1;
        let place = if nested { Place::In(0) } else { Place::Flat(1) };
        loop {
            let place = match place {
                Place::Flat(_) => Place::Flat(count),
                other => other,
            };
            if seq
                .next_element_seed(Entry {
                    walk: &mut *walk,
                    place,
                })?
                .is_none()
            {
                break;
            }
            count += 1;
        }
        if nested {
            check_count(walk, 0, count)?;
        }
        Ok(())
    }
}

fn check_count<T: Element, E: de::Error>(
    walk: &mut Walk<'_, T>,
    depth: usize,
    count: usize,
) -> Result<(), E> {
    match walk.dims.get(depth) {
        Some(&want) if want == count => Ok(()),
        Some(&want) => Err(walk.stop(format!(
            "nested `data` has {count} entries at depth {depth}, the shape says {want}"
        ))),
        None => Err(walk.stop(deeper(walk.dims))),
    }
}

fn deeper(dims: &[usize]) -> String {
    format!(
        "`data` is nested deeper than the shape's {} dimensions",
        dims.len()
    )
}

/// Where an entry stands.
#[derive(Clone, Copy)]
enum Place {
    /// The outer array's first entry: decides flat or nested.
    First,
    /// An entry of flat data, at this index.
    Flat(usize),
    /// An entry of a nested row at this depth.
    In(usize),
}

/// One entry; says whether it was an array.
struct Entry<'w, 'a, T> {
    walk: &'w mut Walk<'a, T>,
    place: Place,
}

impl<T: Element> Entry<'_, '_, T> {
    fn scalar<E: de::Error>(self, element: Option<T>, shown: impl FnOnce() -> String) -> Result<bool, E> {
        match self.place {
            Place::In(depth) if depth + 1 < self.walk.dims.len() => {
                let message = format!(
                    "`{}` at depth {depth} should be an array of {}",
                    shown(),
                    self.walk.dims[depth + 1]
                );
                Err(self.walk.stop(message))
            }
            _ => {
                self.walk.leaf(element, shown);
                Ok(false)
            }
        }
    }

    fn number<E: de::Error>(self, n: Number, shown: impl FnOnce() -> String) -> Result<bool, E> {
        self.scalar(T::from_number(n), shown)
    }
}

impl<'de, T: Element> DeserializeSeed<'de> for Entry<'_, '_, T> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Element> Visitor<'de> for Entry<'_, '_, T> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tensor element or row")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
        self.scalar(T::from_bool(b), || b.to_string())
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<bool, E> {
        self.number(Number::Positive(n), || n.to_string())
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<bool, E> {
        self.number(Number::from_i64(n), || n.to_string())
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<bool, E> {
        self.number(Number::Float(n), || {
            serde_json::Number::from_f64(n).map_or_else(|| n.to_string(), |n| n.to_string())
        })
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<bool, E> {
        self.scalar(None, || {
            let short: String = text.chars().take(40).collect();
            let more = if short.len() < text.len() { "…" } else { "" };
            format!("{}{more}", serde_json::Value::String(short))
        })
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.scalar(None, || "null".to_string())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        self.scalar(None, || "{…}".to_string())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let walk = self.walk;
        let depth = match self.place {
            Place::Flat(index) => {
                return Err(walk.stop(format!(
                    "element {index} is an array inside flat data; nest every row or none"
                )));
            }
            // The first entry of the outer array opens the rows of depth 1.
            Place::First => 1,
            Place::In(depth) => depth + 1,
        };
        if walk.dims.is_empty() || depth >= walk.dims.len() {
            return Err(walk.stop(deeper(walk.dims)));
        }
        let mut count = 0;
        while seq
            .next_element_seed(Entry {
                walk: &mut *walk,
                place: Place::In(depth),
            })?
            .is_some()
        {
            count += 1;
        }
        check_count(walk, depth, count)?;
        Ok(true)
    }
}
