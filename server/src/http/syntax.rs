//! The character classes of RFC 9110 section 5.6 that several parsers
//! check against: tokens, quoted strings, field values. Pure functions on
//! bytes.

/// A `tchar`: the characters a token (a method, a field name, a chunk
/// extension's name) is made of.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// `token = 1*tchar`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// A character allowed in a field value: visible ASCII, space, tab and
/// obs-text (0x80 and above); never another control character, so never
/// a bare CR, LF or NUL.
pub(crate) fn is_field_char(b: u8) -> bool {
    b == b' ' || b == b'\t' || (b >= 0x21 && b != 0x7f)
}

/// A field value: only field characters, and (the surrounding optional
/// whitespace being the caller's to trim) nothing else.
pub(crate) fn is_field_value(s: &[u8]) -> bool {
    s.iter().all(|&b| is_field_char(b))
}

/// The length of the `quoted-string` at the start of `s` (both quotes
/// included), or `None` when `s` does not start with a well-formed one.
/// Inside: tab, space, visible ASCII but `"` and `\`, obs-text, and
/// `\` followed by any of those (a quoted-pair).
pub(crate) fn quoted_string_len(s: &[u8]) -> Option<usize> {
    if s.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Some(i + 1),
            b'\\' => {
                let escaped = *s.get(i + 1)?;
                if !is_field_char(escaped) {
                    return None;
                }
                i += 2;
            }
            _ if is_field_char(b) => i += 1,
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token(b"chunked"));
        assert!(is_token(b"x-a.b~c"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a\"b"));
        assert!(!is_token(b"a;b"));
    }

    #[test]
    fn field_values() {
        assert!(is_field_value(b"text/html; q=0.5"));
        assert!(is_field_value(b"caf\xc3\xa9"));
        assert!(!is_field_value(b"a\rb"));
        assert!(!is_field_value(b"a\nb"));
        assert!(!is_field_value(b"a\0b"));
        assert!(!is_field_value(b"a\x7fb"));
    }

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted_string_len(b"\"abc\" rest"), Some(5));
        assert_eq!(quoted_string_len(b"\"a\\\"b\""), Some(6));
        assert_eq!(quoted_string_len(b"\"\""), Some(2));
        assert_eq!(quoted_string_len(b"\"open"), None);
        assert_eq!(quoted_string_len(b"\"a\rb\""), None);
        assert_eq!(quoted_string_len(b"\"a\\"), None);
        assert_eq!(quoted_string_len(b"abc"), None);
    }
}
