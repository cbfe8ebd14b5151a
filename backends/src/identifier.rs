//! The check the SQL stores make on their table names before any reaches SQL text.

/// Whether `name` is a plain SQL identifier of at most `max_len` bytes: an ASCII letter or
/// `_`, then ASCII letters, digits or `_`. Nothing else (no quote, space or `;`) passes, so
/// a checked name can be written into a statement (quoted as well) without injection.
pub(crate) fn is_plain(name: &str, max_len: usize) -> bool {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && name.len() <= max_len
}

#[cfg(test)]
mod tests {
    use super::is_plain;

    #[test]
    fn only_plain_identifiers_within_the_length_pass() {
        for good in ["sessions", "_s", "web_sessions_2", "A"] {
            assert!(is_plain(good, 48), "{good}");
        }
        for bad in ["", "1abc", "a-b", "a b", "a\"b", "a;DROP TABLE x", "é"] {
            assert!(!is_plain(bad, 48), "{bad:?}");
        }
        assert!(is_plain("abcde", 5));
        assert!(!is_plain("abcdef", 5));
    }
}
