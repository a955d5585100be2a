//! RFC 3261 §25 character classes and the small lexical helpers every other
//! SIP module shares (quoted strings, comma lists, `%` escapes).
//!
//! Everything here works on `&str`/`&[u8]` by byte index and only slices at
//! ASCII delimiters, so it can never split a UTF-8 sequence or panic.

use std::borrow::Cow;

/// `token` characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~".
pub(crate) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
        )
}

/// True for a non-empty string made only of `token` characters.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_byte)
}

/// `unreserved`: alphanum / mark, mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")".
pub(crate) fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Characters allowed unescaped in a SIP URI user part.
pub(crate) fn is_user_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/')
}

/// Characters allowed unescaped in a SIP URI password.
pub(crate) fn is_password_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'&' | b'=' | b'+' | b'$' | b',')
}

/// `paramchar` without `escaped`: param-unreserved / unreserved.
pub(crate) fn is_param_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$')
}

/// `hname`/`hvalue` characters without `escaped`: hnv-unreserved / unreserved.
pub(crate) fn is_hnv_byte(b: u8) -> bool {
    is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// `uric` (reserved / unreserved, `escaped` is checked separately) plus the
/// IPv6 brackets, for opaque absolute URIs.
pub(crate) fn is_uric_byte(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b';' | b'/' | b'?' | b':' | b'@' | b'&' | b'=' | b'+' | b'$' | b',' | b'[' | b']'
        )
}

/// `word` characters (Call-ID).
pub(crate) fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'!'
                | b'%'
                | b'*'
                | b'_'
                | b'+'
                | b'`'
                | b'\''
                | b'~'
                | b'('
                | b')'
                | b'<'
                | b'>'
                | b':'
                | b'\\'
                | b'"'
                | b'/'
                | b'['
                | b']'
                | b'?'
                | b'{'
                | b'}'
        )
}

pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims SP and HTAB (not the wider Unicode whitespace `str::trim` knows).
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

pub(crate) fn trim_lws_start(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

pub(crate) fn trim_lws_bytes(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if is_wsp(*first) {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if is_wsp(*last) {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// Failure of [`split_quoted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unterminated;

/// `s` starts with `"`: returns the raw text between the quotes (quoted-pairs
/// still escaped) and what follows the closing quote.
pub(crate) fn split_quoted(s: &str) -> Result<(&str, &str), Unterminated> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'"') {
        return Err(Unterminated);
    }
    let mut i = 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => {
                // quoted-pair: the escaped character must exist and be ASCII
                // other than CR/LF.
                match bytes.get(i + 1) {
                    Some(&n) if n < 0x80 && n != b'\r' && n != b'\n' => i += 2,
                    _ => return Err(Unterminated),
                }
            }
            b'"' => {
                let inner = s.get(1..i).ok_or(Unterminated)?;
                let rest = s.get(i + 1..).ok_or(Unterminated)?;
                return Ok((inner, rest));
            }
            _ => i += 1,
        }
    }
    Err(Unterminated)
}

/// Removes the backslashes of quoted-pairs from the inside of a quoted string.
pub(crate) fn unquote(inner: &str) -> Cow<'_, str> {
    if !inner.contains('\\') {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Splits a header value on commas that are outside quoted strings and
/// outside `<...>`. Elements are LWS-trimmed; empty elements are kept so the
/// caller can decide whether they are an error.
pub(crate) fn split_list(s: &str) -> Result<Vec<&str>, Unterminated> {
    let mut out = Vec::new();
    split_list_into(s, &mut out)?;
    Ok(out)
}

/// [`split_list`] appending to `out`. On error `out` may hold some elements.
pub(crate) fn split_list_into<'a>(s: &'a str, out: &mut Vec<&'a str>) -> Result<(), Unterminated> {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if in_quotes {
            match b {
                b'\\' => i += 1,
                b'"' => in_quotes = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_quotes = true,
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => {
                    out.push(trim_lws(s.get(start..i).unwrap_or("")));
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if in_quotes {
        return Err(Unterminated);
    }
    out.push(trim_lws(s.get(start..).unwrap_or("")));
    Ok(())
}

/// A `%` escape that is not followed by two hex digits, or a character the
/// component does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EscapeError {
    BadEscape { offset: usize },
    BadChar { offset: usize, byte: u8 },
    NotUtf8,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks every byte of `s` is `allowed` or a valid `%HEXHEX` escape and
/// decodes the escapes exactly once. The result must be UTF-8.
pub(crate) fn unescape(s: &str, allowed: fn(u8) -> bool) -> Result<String, EscapeError> {
    let bytes = s.as_bytes();
    if !bytes.contains(&b'%') {
        // Nothing to decode: only the characters need checking.
        return match bytes.iter().position(|&b| !allowed(b)) {
            Some(offset) => Err(EscapeError::BadChar {
                offset,
                byte: bytes.get(offset).copied().unwrap_or(0),
            }),
            None => Ok(s.to_owned()),
        };
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_val);
            let lo = bytes.get(i + 2).copied().and_then(hex_val);
            match (hi, lo) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => return Err(EscapeError::BadEscape { offset: i }),
            }
        } else if allowed(b) {
            out.push(b);
            i += 1;
        } else {
            return Err(EscapeError::BadChar { offset: i, byte: b });
        }
    }
    String::from_utf8(out).map_err(|_| EscapeError::NotUtf8)
}

/// Checks `%` escapes are well formed and every other byte is `allowed`,
/// without decoding (for opaque URIs).
pub(crate) fn validate_escaped(s: &str, allowed: fn(u8) -> bool) -> Result<(), EscapeError> {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let ok = bytes.get(i + 1).copied().and_then(hex_val).is_some()
                && bytes.get(i + 2).copied().and_then(hex_val).is_some();
            if !ok {
                return Err(EscapeError::BadEscape { offset: i });
            }
            i += 3;
        } else if allowed(b) {
            i += 1;
        } else {
            return Err(EscapeError::BadChar { offset: i, byte: b });
        }
    }
    Ok(())
}

/// Appends `s`, `%`-escaping every byte that `allowed` rejects.
pub(crate) fn escape_into(out: &mut String, s: &str, allowed: fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        if allowed(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
}

/// Parses `1*DIGIT` into a `u64`, `None` on anything else or on overflow.
pub(crate) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_string_with_pairs() {
        let (inner, rest) = split_quoted(r#""J Rosenberg \\\""  <sip:x>"#).unwrap();
        assert_eq!(inner, r#"J Rosenberg \\\""#);
        assert_eq!(rest, "  <sip:x>");
        assert_eq!(unquote(inner), r#"J Rosenberg \""#);
        assert!(split_quoted("\"open").is_err());
        assert!(split_quoted("\"ends in backslash\\").is_err());
    }

    #[test]
    fn list_split_respects_quotes_and_angles() {
        let parts = split_list(r#""a, b" <sip:x;p=1,2>, <sip:y> ,sip:z"#).unwrap();
        assert_eq!(parts, vec![r#""a, b" <sip:x;p=1,2>"#, "<sip:y>", "sip:z"]);
        assert_eq!(split_list(",,").unwrap(), vec!["", "", ""]);
        assert!(split_list("\"x, y").is_err());
    }

    #[test]
    fn unescape_once() {
        assert_eq!(
            unescape("v%61lue%25%34%31", is_param_byte).unwrap(),
            "value%41"
        );
        assert_eq!(
            unescape("null-%00-null", is_user_byte).unwrap(),
            "null-\0-null"
        );
        assert!(unescape("%4", is_user_byte).is_err());
        assert!(unescape("%zz", is_user_byte).is_err());
        assert!(unescape("a b", is_user_byte).is_err());
        assert!(unescape("%FF", is_user_byte).is_err());
        let mut s = String::new();
        escape_into(&mut s, "sips:user@example.com", is_user_byte);
        assert_eq!(s, "sips%3Auser%40example.com");
    }

    #[test]
    fn digits_never_overflow() {
        assert_eq!(parse_digits("0068"), Some(68));
        assert_eq!(parse_digits("36893488147419103232"), None);
        assert_eq!(parse_digits("-1"), None);
        assert_eq!(parse_digits(""), None);
    }
}
