//! A bencode (BitTorrent's encoding, rtpengine's ng wire format) encoder
//! and decoder. Decoding never panics: bad input is an [`Error`].

use std::collections::BTreeMap;

/// Deepest nesting the decoder follows (rtpengine's replies nest ~8 deep).
pub const MAX_DEPTH: usize = 32;

/// A bencoded value. Dictionaries keep their keys sorted, as the
/// encoding requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why bytes are not one bencoded value.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("input ends inside a value (byte {at})")]
    UnexpectedEnd { at: usize },
    #[error("unexpected byte {byte:#04x} at {at}")]
    UnexpectedByte { at: usize, byte: u8 },
    #[error("bad integer at byte {at}")]
    BadInteger { at: usize },
    #[error("string at byte {at} claims {len} bytes, {available} left")]
    StringPastEnd {
        at: usize,
        len: usize,
        available: usize,
    },
    #[error("dictionary key at byte {at} is not a string")]
    KeyNotString { at: usize },
    #[error("dictionary key at byte {at} repeats")]
    DuplicateKey { at: usize },
    #[error("nesting deeper than {max} at byte {at}")]
    TooDeep { at: usize, max: usize },
    #[error("{extra} bytes after the value")]
    Trailing { extra: usize },
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    pub fn list<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
        Value::List(items.into_iter().map(Value::str).collect())
    }

    pub fn dict<'a>(entries: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// A dictionary's entry.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Append the encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => bytes(b, out),
            Value::List(items) => {
                out.push(b'l');
                for v in items {
                    v.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    bytes(k, out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }
}

fn bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

/// Decode exactly one value filling `input`.
pub fn decode(input: &[u8]) -> Result<Value, Error> {
    let mut pos = 0;
    let v = value(input, &mut pos, 0)?;
    if pos != input.len() {
        return Err(Error::Trailing {
            extra: input.len() - pos,
        });
    }
    Ok(v)
}

fn value(input: &[u8], pos: &mut usize, depth: usize) -> Result<Value, Error> {
    let at = *pos;
    let Some(&first) = input.get(at) else {
        return Err(Error::UnexpectedEnd { at });
    };
    match first {
        b'i' => {
            *pos += 1;
            let end = find(input, *pos, b'e')?;
            let v = integer(&input[*pos..end]).ok_or(Error::BadInteger { at })?;
            *pos = end + 1;
            Ok(Value::Int(v))
        }
        b'0'..=b'9' => string(input, pos).map(|b| Value::Bytes(b.to_vec())),
        b'l' | b'd' => {
            if depth >= MAX_DEPTH {
                return Err(Error::TooDeep { at, max: MAX_DEPTH });
            }
            *pos += 1;
            let mut list = Vec::new();
            let mut dict = std::collections::BTreeMap::new();
            loop {
                match input.get(*pos) {
                    None => return Err(Error::UnexpectedEnd { at: *pos }),
                    Some(b'e') => {
                        *pos += 1;
                        break;
                    }
                    Some(_) if first == b'l' => list.push(value(input, pos, depth + 1)?),
                    Some(b'0'..=b'9') => {
                        let key_at = *pos;
                        let key = string(input, pos)?.to_vec();
                        let v = value(input, pos, depth + 1)?;
                        if dict.insert(key, v).is_some() {
                            return Err(Error::DuplicateKey { at: key_at });
                        }
                    }
                    Some(_) => return Err(Error::KeyNotString { at: *pos }),
                }
            }
            Ok(if first == b'l' {
                Value::List(list)
            } else {
                Value::Dict(dict)
            })
        }
        byte => Err(Error::UnexpectedByte { at, byte }),
    }
}

/// `<len>:<bytes>`; `pos` is at the first digit.
fn string<'a>(input: &'a [u8], pos: &mut usize) -> Result<&'a [u8], Error> {
    let at = *pos;
    let colon = find(input, at, b':')?;
    let digits = &input[at..colon];
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return Err(Error::BadInteger { at });
    }
    let mut len = 0usize;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(Error::BadInteger { at });
        }
        len = len
            .checked_mul(10)
            .and_then(|l| l.checked_add(usize::from(d - b'0')))
            .ok_or(Error::BadInteger { at })?;
    }
    let start = colon + 1;
    let available = input.len() - start;
    if len > available {
        return Err(Error::StringPastEnd { at, len, available });
    }
    *pos = start + len;
    Ok(&input[start..start + len])
}

fn find(input: &[u8], from: usize, byte: u8) -> Result<usize, Error> {
    input
        .get(from..)
        .and_then(|rest| rest.iter().position(|&b| b == byte))
        .map(|i| from + i)
        .ok_or(Error::UnexpectedEnd { at: input.len() })
}

/// `-?[1-9][0-9]*|0`, in range.
fn integer(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    let canonical = match digits {
        [] => false,
        [b'0'] => s.len() == 1,
        [first, ..] => *first != b'0',
    };
    if !canonical || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ping_and_pong() {
        let mut out = Vec::new();
        Value::dict([("command", Value::str("ping"))]).encode(&mut out);
        assert_eq!(out, b"d7:command4:pinge");
        let pong = decode(b"d6:result4:ponge").unwrap();
        assert_eq!(pong.get("result").and_then(Value::as_str), Some("pong"));
    }

    #[test]
    fn dictionaries_encode_sorted_and_nest() {
        let v = Value::dict([
            ("sdp", Value::str("v=0")),
            ("call-id", Value::str("c1")),
            ("replace", Value::list(["origin", "session-connection"])),
            ("n", Value::Int(-42)),
        ]);
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(
            out,
            b"d7:call-id2:c11:ni-42e7:replacel6:origin18:session-connectione3:sdp3:v=0e"
        );
        assert_eq!(decode(&out).unwrap(), v);
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: &[(&[u8], Error)] = &[
            (b"", Error::UnexpectedEnd { at: 0 }),
            (b"d", Error::UnexpectedEnd { at: 1 }),
            (b"l4:spam", Error::UnexpectedEnd { at: 7 }),
            (b"i42", Error::UnexpectedEnd { at: 3 }),
            (b"ie", Error::BadInteger { at: 0 }),
            (b"i-e", Error::BadInteger { at: 0 }),
            (b"i-0e", Error::BadInteger { at: 0 }),
            (b"i03e", Error::BadInteger { at: 0 }),
            (b"i1x2e", Error::BadInteger { at: 0 }),
            (b"i99999999999999999999e", Error::BadInteger { at: 0 }),
            (
                b"5:abc",
                Error::StringPastEnd {
                    at: 0,
                    len: 5,
                    available: 3,
                },
            ),
            (b"05:abcde", Error::BadInteger { at: 0 }),
            (b"99999999999999999999999:x", Error::BadInteger { at: 0 }),
            (b"3x:abc", Error::BadInteger { at: 0 }),
            (b"4", Error::UnexpectedEnd { at: 1 }),
            (b"di1ei2ee", Error::KeyNotString { at: 1 }),
            (b"d1:ai1e1:ai2ee", Error::DuplicateKey { at: 7 }),
            (b"x", Error::UnexpectedByte { at: 0, byte: b'x' }),
            (b"i1ei2e", Error::Trailing { extra: 3 }),
            (b"d1:a", Error::UnexpectedEnd { at: 4 }),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode(input).as_ref(),
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = vec![b'l'; 100_000];
        assert_eq!(
            decode(&deep),
            Err(Error::TooDeep {
                at: MAX_DEPTH,
                max: MAX_DEPTH
            })
        );
        let mut ok = vec![b'l'; MAX_DEPTH];
        ok.extend(vec![b'e'; MAX_DEPTH]);
        assert!(decode(&ok).is_ok());
    }

    fn values() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8),
                    inner,
                    0..6
                )
                .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trips(v in values()) {
            let mut out = Vec::new();
            v.encode(&mut out);
            prop_assert_eq!(decode(&out), Ok(v));
        }

        #[test]
        fn never_panics_on_bytes(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&input);
        }

        #[test]
        fn never_panics_on_mangled_encodings(v in values(), cut in any::<usize>(), flip in any::<(usize, u8)>()) {
            let mut out = Vec::new();
            v.encode(&mut out);
            let mut mangled = out.clone();
            if !mangled.is_empty() {
                let i = flip.0 % mangled.len();
                mangled[i] = flip.1;
            }
            let _ = decode(&mangled);
            let _ = decode(&out[..cut % (out.len() + 1)]);
        }
    }
}
