//! Tensor elements read straight from a request's JSON text into typed values, without building
//! a JSON tree: the fast path every JSON input takes. What it refuses, `diagnose` explains.

use std::fmt::{self, Debug};

use ort::value::PrimitiveTensorElementType;
use serde::Deserializer;
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

/// A JSON number as the parser reports it. The conversions below follow `serde_json::Value`'s
/// `as_u64`, `as_i64` and `as_f64`; the fast reader and the slow path share them, so both accept
/// the same elements.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Number {
    Positive(u64),
    Negative(i64),
    Float(f64),
}

impl Number {
    pub(crate) fn from_i64(n: i64) -> Number {
        u64::try_from(n).map_or(Number::Negative(n), Number::Positive)
    }

    pub(crate) fn as_u64(self) -> Option<u64> {
        match self {
            Number::Positive(n) => Some(n),
            _ => None,
        }
    }

    pub(crate) fn as_i64(self) -> Option<i64> {
        match self {
            Number::Positive(n) => i64::try_from(n).ok(),
            Number::Negative(n) => Some(n),
            Number::Float(_) => None,
        }
    }

    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Number::Positive(n) => n as f64,
            Number::Negative(n) => n as f64,
            Number::Float(f) => f,
        }
    }
}

/// A tensor element type, and which JSON values are one of it.
pub(crate) trait Element: PrimitiveTensorElementType + Debug + Clone + 'static {
    /// Bytes per element in the binary extension (little-endian; BOOL is one byte).
    const SIZE: usize;
    /// One element from exactly `SIZE` little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
    fn from_number(n: Number) -> Option<Self>;
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
}

impl Element for bool {
    const SIZE: usize = 1;
    fn from_le(bytes: &[u8]) -> bool {
        bytes[0] != 0
    }
    fn from_number(_: Number) -> Option<bool> {
        None
    }
    fn from_bool(b: bool) -> Option<bool> {
        Some(b)
    }
}

/// Integer types take the numbers `widest` gives that fit them.
macro_rules! integers {
    ($widest:ident: $($t:ty),*) => {$(
        impl Element for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(bytes: &[u8]) -> $t {
                let mut word = [0u8; std::mem::size_of::<$t>()];
                word.copy_from_slice(bytes);
                <$t>::from_le_bytes(word)
            }
            fn from_number(n: Number) -> Option<$t> {
                n.$widest().and_then(|n| <$t>::try_from(n).ok())
            }
        }
    )*};
}
integers!(as_u64: u8, u16, u32, u64);
integers!(as_i64: i8, i16, i32, i64);

impl Element for f32 {
    const SIZE: usize = 4;
    fn from_le(bytes: &[u8]) -> f32 {
        f32::from_bits(<u32 as Element>::from_le(bytes))
    }
    fn from_number(n: Number) -> Option<f32> {
        // A value beyond f32's range is refused rather than served as infinity.
        Some(n.as_f64() as f32).filter(|n| n.is_finite() || n.is_nan())
    }
}

impl Element for f64 {
    const SIZE: usize = 8;
    fn from_le(bytes: &[u8]) -> f64 {
        f64::from_bits(<u64 as Element>::from_le(bytes))
    }
    fn from_number(n: Number) -> Option<f64> {
        Some(n.as_f64())
    }
}

/// Reads `data` straight into `T`s, without building a JSON tree: flat, or nested exactly to
/// `dims`, with `expected` elements of the right type. `None` for anything else; the caller then
/// finds out what is wrong the slow way.
pub(super) fn read_elements<T: Element>(raw: &str, dims: &[usize], expected: usize) -> Option<Vec<T>> {
    // The shape is the client's word; the text bounds the count (an element and its comma take
    // at least two bytes), so a huge shape over a small body reserves nothing huge.
    let mut out = Vec::with_capacity(expected.min(raw.len() / 2 + 1));
    let mut reader = serde_json::Deserializer::from_str(raw);
    reader.deserialize_seq(Top { dims, out: &mut out }).ok()?;
    (out.len() == expected).then_some(out)
}

/// Any refusal in the fast reader: the slow path writes the message.
fn refused<E: de::Error>() -> E {
    E::custom("")
}

/// The outer array: its first entry says whether the data is flat (elements) or nested (rows).
struct Top<'a, T> {
    dims: &'a [usize],
    out: &'a mut Vec<T>,
}

impl<'de, T: Element> Visitor<'de> for Top<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (dims, out) = (self.dims, self.out);
        let first = Entry {
            row_depth: Some(1),
            dims,
            out: &mut *out,
        };
        let Some(nested) = seq.next_element_seed(first)? else {
            return Ok(());
        };
        if !nested {
            return elements(&mut seq, out).map(drop);
        }
        let rows = 1 + rows(&mut seq, dims, 1, out)?;
        if dims.first() == Some(&rows) {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

/// A nested row at `depth`: exactly `dims[depth]` entries, elements at the last depth, rows above.
struct Row<'a, T> {
    dims: &'a [usize],
    depth: usize,
    out: &'a mut Vec<T>,
}

impl<'de, T: Element> DeserializeSeed<'de> for Row<'_, T> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de, T: Element> Visitor<'de> for Row<'_, T> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a row")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (dims, depth, out) = (self.dims, self.depth, self.out);
        let want = *dims.get(depth).ok_or_else(refused)?;
        let entries = if depth + 1 == dims.len() {
            elements(&mut seq, out)?
        } else {
            rows(&mut seq, dims, depth + 1, out)?
        };
        if entries == want { Ok(()) } else { Err(refused()) }
    }
}

/// Reads the rest of `seq` as rows at `depth`; how many there were.
fn rows<'de, A: SeqAccess<'de>, T: Element>(
    seq: &mut A,
    dims: &[usize],
    depth: usize,
    out: &mut Vec<T>,
) -> Result<usize, A::Error> {
    let mut count = 0;
    while seq
        .next_element_seed(Row {
            dims,
            depth,
            out: &mut *out,
        })?
        .is_some()
    {
        count += 1;
    }
    Ok(count)
}

/// Reads the rest of `seq` as elements; how many there were.
fn elements<'de, A: SeqAccess<'de>, T: Element>(seq: &mut A, out: &mut Vec<T>) -> Result<usize, A::Error> {
    let mut count = 0;
    while seq
        .next_element_seed(Entry {
            row_depth: None,
            dims: &[],
            out: &mut *out,
        })?
        .is_some()
    {
        count += 1;
    }
    Ok(count)
}

/// One entry of an array: an element of type `T`, or, where `row_depth` allows one, a row at that
/// depth. Says whether it was a row; anything else is refused.
struct Entry<'a, T> {
    row_depth: Option<usize>,
    dims: &'a [usize],
    out: &'a mut Vec<T>,
}

impl<T: Element> Entry<'_, T> {
    fn push<E: de::Error>(self, element: Option<T>) -> Result<bool, E> {
        self.out.push(element.ok_or_else(refused)?);
        Ok(false)
    }
}

impl<'de, T: Element> DeserializeSeed<'de> for Entry<'_, T> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T: Element> Visitor<'de> for Entry<'_, T> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tensor element")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
        self.push(T::from_bool(b))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<bool, E> {
        self.push(T::from_number(Number::Positive(n)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<bool, E> {
        self.push(T::from_number(Number::from_i64(n)))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<bool, E> {
        self.push(T::from_number(Number::Float(n)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<bool, A::Error> {
        let depth = self.row_depth.ok_or_else(refused)?;
        Row {
            dims: self.dims,
            depth,
            out: self.out,
        }
        .visit_seq(seq)
        .map(|()| true)
    }
}
