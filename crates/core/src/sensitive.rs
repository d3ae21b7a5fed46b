//! [`Sensitive`]: a secret that cannot be printed by accident. Its `Debug` and `Display` say
//! `[redacted]`, so a tracing field, an error message or a panic cannot leak it; the value is
//! reached only through [`Sensitive::expose`], which is easy to find in review.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    pub fn new(value: T) -> Sensitive<T> {
        Sensitive(value)
    }

    /// The secret itself. Every call site is a place where the secret leaves its wrapper.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Sensitive::new("gth_topsecret".to_string());
        assert_eq!(
            format!("{secret} {secret:?} {:?}", Some(&secret)),
            "[redacted] [redacted] Some([redacted])"
        );
        assert_eq!(secret.expose(), "gth_topsecret");
    }
}
