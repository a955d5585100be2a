//! Newtypes for single-valued protocol values: Call-ID, CSeq, tags,
//! branches, Max-Forwards, media types, option tags and auth headers.

use std::borrow::Cow;
use std::fmt;

use super::grammar::{
    is_token, is_token_byte, is_word_byte, parse_digits, split_list, split_quoted, trim_lws,
    trim_lws_start, unquote,
};
use super::headers::{truncated, Defect};
use super::message::Method;
use super::name_addr::{find_param, parse_params, GenericParam};

pub(crate) fn parse_u32(s: &str, what: &'static str) -> Result<u32, Defect> {
    parse_digits(s)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| Defect::Number {
            what,
            found: truncated(s),
            max: u64::from(u32::MAX),
        })
}

macro_rules! token_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates a token.
            pub fn new(s: &str) -> Result<$name, Defect> {
                if is_token(s) {
                    Ok($name(s.to_owned()))
                } else {
                    Err(Defect::NotToken {
                        what: $what,
                        found: truncated(s),
                    })
                }
            }

            /// As written.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

token_newtype!(
    /// A From/To `tag` (a token; compare exactly).
    Tag,
    "tag"
);
token_newtype!(
    /// An option tag (Require, Supported, Proxy-Require, Unsupported).
    OptionTag,
    "option tag"
);

impl OptionTag {
    pub(crate) fn parse(s: &str) -> Result<OptionTag, Defect> {
        OptionTag::new(s)
    }
}

/// The RFC 3261 magic cookie at the start of every compliant branch.
pub const BRANCH_MAGIC_COOKIE: &str = "z9hG4bK";

token_newtype!(
    /// A Via `branch` parameter. `%` is not an escape here.
    Branch,
    "branch"
);

impl Branch {
    /// Whether the branch starts with the magic cookie *and* has something
    /// after it, so RFC 3261 (§17.2.3) transaction matching applies. A bare
    /// `z9hG4bK` is treated as an RFC 2543 branch.
    pub fn is_rfc3261(&self) -> bool {
        self.0.len() > BRANCH_MAGIC_COOKIE.len() && self.0.starts_with(BRANCH_MAGIC_COOKIE)
    }
}

/// A Call-ID: `word [ "@" word ]`, compared byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallId(String);

impl CallId {
    /// Validates a Call-ID.
    pub fn new(s: &str) -> Result<CallId, Defect> {
        let bad = |offset: usize| Defect::Unexpected {
            offset,
            found: truncated(s.get(offset..).unwrap_or("")),
        };
        let (left, right) = match s.split_once('@') {
            Some((l, r)) => (l, Some(r)),
            None => (s, None),
        };
        if left.is_empty() {
            return Err(Defect::Empty);
        }
        if let Some(i) = left.bytes().position(|b| !is_word_byte(b)) {
            return Err(bad(i));
        }
        if let Some(r) = right {
            if r.is_empty() {
                return Err(bad(left.len()));
            }
            if let Some(i) = r.bytes().position(|b| !is_word_byte(b)) {
                return Err(bad(left.len() + 1 + i));
            }
        }
        Ok(CallId(s.to_owned()))
    }

    pub(crate) fn parse(s: &str) -> Result<CallId, Defect> {
        CallId::new(trim_lws(s))
    }

    /// As written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// CSeq: a 32-bit sequence number and a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number.
    pub seq: u32,
    /// Method.
    pub method: Method,
}

impl CSeq {
    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &str) -> Result<CSeq, Defect> {
        let s = trim_lws(s);
        let digits = s.bytes().take_while(|b| b.is_ascii_digit()).count();
        let (num, rest) = s.split_at(digits);
        let seq = parse_u32(num, "CSeq number")?;
        if !rest.starts_with([' ', '\t']) {
            return Err(Defect::Unexpected {
                offset: digits,
                found: truncated(rest),
            });
        }
        let m = trim_lws_start(rest);
        let method = Method::parse(m).map_err(|_| Defect::NotToken {
            what: "CSeq method",
            found: truncated(m),
        })?;
        Ok(CSeq { seq, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Max-Forwards, 0..=255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MaxForwards(pub u8);

impl MaxForwards {
    pub(crate) fn parse(s: &str) -> Result<MaxForwards, Defect> {
        let s = trim_lws(s);
        parse_digits(s)
            .and_then(|v| u8::try_from(v).ok())
            .map(MaxForwards)
            .ok_or_else(|| Defect::Number {
                what: "Max-Forwards",
                found: truncated(s),
                max: 255,
            })
    }
}

/// A media type (`Content-Type`, one `Accept` element).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// `application` in `application/sdp` (as written).
    pub kind: String,
    /// `sdp` in `application/sdp` (as written).
    pub subtype: String,
    /// Parameters such as `boundary`.
    pub params: Vec<GenericParam>,
}

impl MediaType {
    /// Parses `type SLASH subtype *(SEMI param)`.
    pub fn parse(s: &str) -> Result<MediaType, Defect> {
        let s = trim_lws(s);
        let kind_len = s.bytes().take_while(|&b| is_token_byte(b)).count();
        let (kind, rest) = s.split_at(kind_len);
        let rest = trim_lws_start(rest);
        let rest = rest.strip_prefix('/').ok_or_else(|| Defect::NotToken {
            what: "media type",
            found: truncated(s),
        })?;
        let rest = trim_lws_start(rest);
        let sub_len = rest.bytes().take_while(|&b| is_token_byte(b)).count();
        let (subtype, params) = rest.split_at(sub_len);
        if kind.is_empty() || subtype.is_empty() {
            return Err(Defect::NotToken {
                what: "media type",
                found: truncated(s),
            });
        }
        Ok(MediaType {
            kind: kind.to_owned(),
            subtype: subtype.to_owned(),
            params: parse_params(params)?,
        })
    }

    /// Case-insensitive match on `type/subtype`.
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_ascii_case(kind) && self.subtype.eq_ignore_ascii_case(subtype)
    }

    /// A parameter value with quotes removed.
    pub fn param(&self, name: &str) -> Option<Cow<'_, str>> {
        find_param(&self.params, name).and_then(GenericParam::value_unquoted)
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.subtype)?;
        for p in &self.params {
            write!(f, ";{p}")?;
        }
        Ok(())
    }
}

/// One `name=value` of a challenge or credentials; quoted values unquoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam {
    /// Name (compare case-insensitively).
    pub name: String,
    /// Value, with quotes and quoted-pair backslashes removed.
    pub value: String,
    /// Whether it was written as a quoted string.
    pub quoted: bool,
}

/// A WWW-Authenticate / Proxy-Authenticate challenge or an Authorization /
/// Proxy-Authorization credential: scheme and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthHeader {
    /// `Digest`, or any other scheme token.
    pub scheme: String,
    /// Parameters in order.
    pub params: Vec<AuthParam>,
}

impl AuthHeader {
    /// Parses `scheme LWS auth-param *(COMMA auth-param)`.
    pub fn parse(s: &str) -> Result<AuthHeader, Defect> {
        let s = trim_lws(s);
        let scheme_len = s.bytes().take_while(|&b| is_token_byte(b)).count();
        let (scheme, rest) = s.split_at(scheme_len);
        if scheme.is_empty() {
            return Err(Defect::NotToken {
                what: "auth scheme",
                found: truncated(s),
            });
        }
        if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
            return Err(Defect::Unexpected {
                offset: scheme_len,
                found: truncated(rest),
            });
        }
        let rest = trim_lws(rest);
        let mut params = Vec::new();
        if !rest.is_empty() {
            for item in split_list(rest).map_err(|_| Defect::UnterminatedQuote)? {
                let (name, value) = item.split_once('=').ok_or(Defect::EmptyParam)?;
                let name = trim_lws(name);
                let value = trim_lws(value);
                if !is_token(name) {
                    return Err(Defect::NotToken {
                        what: "auth-param name",
                        found: truncated(name),
                    });
                }
                let (value, quoted) = if value.starts_with('"') {
                    let (inner, after) =
                        split_quoted(value).map_err(|_| Defect::UnterminatedQuote)?;
                    if !after.is_empty() {
                        return Err(Defect::Unexpected {
                            offset: 0,
                            found: truncated(after),
                        });
                    }
                    (unquote(inner).into_owned(), true)
                } else if is_token(value) {
                    (value.to_owned(), false)
                } else {
                    return Err(Defect::EmptyParam);
                };
                params.push(AuthParam {
                    name: name.to_owned(),
                    value,
                    quoted,
                });
            }
        }
        Ok(AuthHeader {
            scheme: scheme.to_owned(),
            params,
        })
    }

    /// A parameter value by name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cseq_with_folding_whitespace_and_overflow() {
        let c = CSeq::parse("0009   INVITE").unwrap();
        assert_eq!((c.seq, c.method), (9, Method::Invite));
        assert!(matches!(
            CSeq::parse("36893488147419103232 REGISTER"),
            Err(Defect::Number { .. })
        ));
        assert!(CSeq::parse("4294967296 INVITE").is_err());
        assert_eq!(CSeq::parse("4294967295 INVITE").unwrap().seq, u32::MAX);
        assert!(CSeq::parse("12INVITE").is_err());
        assert!(CSeq::parse("12").is_err());
        assert!(CSeq::parse("-1 INVITE").is_err());
    }

    #[test]
    fn max_forwards_range() {
        assert_eq!(MaxForwards::parse("0068").unwrap(), MaxForwards(68));
        assert_eq!(MaxForwards::parse("255").unwrap(), MaxForwards(255));
        assert!(MaxForwards::parse("300").is_err());
        assert!(MaxForwards::parse("").is_err());
    }

    #[test]
    fn call_ids() {
        assert!(CallId::new("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{").is_ok());
        assert!(CallId::new("a b").is_err());
        assert!(CallId::new("").is_err());
        assert!(CallId::new("a@").is_err());
        assert!(CallId::new("a@b@c").is_err());
    }

    #[test]
    fn branches() {
        assert!(Branch::new("z9hG4bK209%fzsnel234").unwrap().is_rfc3261());
        assert!(!Branch::new("z9hG4bK").unwrap().is_rfc3261());
        assert!(!Branch::new("390skdjuw").unwrap().is_rfc3261());
    }

    #[test]
    fn auth_headers() {
        let a = AuthHeader::parse(
            "Digest username=\"bob\", realm=\"a, b\", nonce=\"x\\\"y\", algorithm=MD5, qop=auth",
        )
        .unwrap();
        assert_eq!(a.scheme, "Digest");
        assert_eq!(a.param("realm"), Some("a, b"));
        assert_eq!(a.param("nonce"), Some("x\"y"));
        assert_eq!(a.param("ALGORITHM"), Some("MD5"));
        let b = AuthHeader::parse("NoOneKnowsThisScheme opaque-data=here").unwrap();
        assert_eq!(b.param("opaque-data"), Some("here"));
        assert!(AuthHeader::parse("Digest realm=\"open").is_err());
        assert!(AuthHeader::parse("Digest ,").is_err());
    }

    #[test]
    fn media_types() {
        let m = MediaType::parse("multipart/mixed;boundary=7a9cbec02ceef655").unwrap();
        assert!(m.is("Multipart", "MIXED"));
        assert_eq!(m.param("boundary").as_deref(), Some("7a9cbec02ceef655"));
        assert_eq!(MediaType::parse(&m.to_string()).unwrap(), m);
        assert!(MediaType::parse("text").is_err());
        assert!(MediaType::parse("text/").is_err());
    }
}
