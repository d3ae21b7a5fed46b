//! Durations as people type them on the command line and in the panel: `30m`, `1h`, `90d`.

/// `30m` → `(30, 'm')`: a whole number and the one unit letter after it. Anything else, a unit
/// that is not a single ASCII letter included, is `None` rather than a guess.
pub fn count_and_unit(text: &str) -> Option<(i64, char)> {
    let unit = text.chars().last().filter(char::is_ascii_alphabetic)?;
    let count = text[..text.len() - unit.len_utf8()].parse().ok()?;
    Some((count, unit))
}

/// `count` of `unit` (`s`, `m`, `h` or `d`); `None` for another unit or a span too long to hold.
pub fn span(count: i64, unit: char) -> Option<time::Duration> {
    let seconds = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    count.checked_mul(seconds).map(time::Duration::seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_and_a_unit_letter_and_nothing_else() {
        assert_eq!(count_and_unit("30m"), Some((30, 'm')));
        assert_eq!(count_and_unit("90d"), Some((90, 'd')));
        assert_eq!(count_and_unit("m"), None);
        assert_eq!(count_and_unit(""), None);
        assert_eq!(count_and_unit("30"), None);
        assert_eq!(count_and_unit("3 0m"), None);
        // Found by the api_key fuzz target: a byte-order mark alone made the old split panic
        // in the middle of the character.
        assert_eq!(count_and_unit("\u{feff}"), None);
        assert_eq!(count_and_unit("5\u{00e9}"), None);
        assert_eq!(count_and_unit("\u{00e9}m"), None);
    }

    #[test]
    fn spans_that_do_not_fit_are_refused() {
        assert_eq!(span(2, 'h'), Some(time::Duration::hours(2)));
        assert_eq!(span(1, 'w'), None);
        assert_eq!(span(i64::MAX, 'd'), None);
    }
}
