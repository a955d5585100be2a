//! Header names, the ordered header list, and typed access to it.
//!
//! Headers are stored one entry per header line, in order, with folding
//! undone and surrounding LWS trimmed; unknown headers keep their name as
//! written. Typed accessors parse on demand and return [`HeaderError`]; they
//! never panic.

use std::fmt;

use super::grammar::{is_token, split_list_into, trim_lws};
use super::message::Method;
use super::name_addr::{Contact, Contacts, NameAddr};
use super::uri::UriError;
use super::values::{AuthHeader, CSeq, CallId, MaxForwards, MediaType, OptionTag};
use super::via::Via;

macro_rules! header_names {
    (@compact) => { None };
    (@compact $c:literal) => { Some($c) };
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ; )*) => {
        /// A header field name. Known names (long or compact form, any case)
        /// map to a variant; anything else is kept as written in
        /// [`HeaderName::Other`], which compares case-insensitively.
        #[non_exhaustive]
        #[derive(Debug, Clone, Eq)]
        pub enum HeaderName {
            $(
                #[doc = concat!("`", $canonical, "`")]
                $variant,
            )*
            /// Any other header; the name is a token, kept as written.
            Other(String),
        }

        impl HeaderName {
            /// The canonical (long) spelling; `Other` names as written.
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canonical, )*
                    HeaderName::Other(s) => s,
                }
            }

            fn known(s: &str) -> Option<HeaderName> {
                // Length and first letter rule out almost every candidate
                // before the case-insensitive comparison.
                let len = s.len();
                let first = s.as_bytes().first()?.to_ascii_lowercase();
                if len == 1 {
                    $($(
                        if first == $compact.as_bytes()[0] {
                            return Some(HeaderName::$variant);
                        }
                    )?)*
                    return None;
                }
                $(
                    if len == $canonical.len()
                        && first == $canonical.as_bytes()[0].to_ascii_lowercase()
                        && s.eq_ignore_ascii_case($canonical)
                    {
                        return Some(HeaderName::$variant);
                    }
                )*
                None
            }

            #[cfg(test)]
            const ALL: &'static [(&'static str, Option<&'static str>, HeaderName)] = &[
                $( ($canonical, header_names!(@compact $($compact)?), HeaderName::$variant), )*
            ];
        }
    };
}

header_names! {
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    AlertInfo => "Alert-Info";
    Allow => "Allow";
    AllowEvents => "Allow-Events", "u";
    AuthenticationInfo => "Authentication-Info";
    Authorization => "Authorization";
    CallId => "Call-ID", "i";
    CallInfo => "Call-Info";
    Contact => "Contact", "m";
    ContentDisposition => "Content-Disposition";
    ContentEncoding => "Content-Encoding", "e";
    ContentLanguage => "Content-Language";
    ContentLength => "Content-Length", "l";
    ContentType => "Content-Type", "c";
    CSeq => "CSeq";
    Date => "Date";
    ErrorInfo => "Error-Info";
    Event => "Event", "o";
    Expires => "Expires";
    From => "From", "f";
    Identity => "Identity", "y";
    InReplyTo => "In-Reply-To";
    MaxForwards => "Max-Forwards";
    MimeVersion => "MIME-Version";
    MinExpires => "Min-Expires";
    Organization => "Organization";
    Priority => "Priority";
    ProxyAuthenticate => "Proxy-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyRequire => "Proxy-Require";
    RAck => "RAck";
    RecordRoute => "Record-Route";
    ReferTo => "Refer-To", "r";
    ReferredBy => "Referred-By", "b";
    ReplyTo => "Reply-To";
    Require => "Require";
    RetryAfter => "Retry-After";
    Route => "Route";
    RSeq => "RSeq";
    Server => "Server";
    SessionExpires => "Session-Expires", "x";
    Subject => "Subject", "s";
    Supported => "Supported", "k";
    Timestamp => "Timestamp";
    To => "To", "t";
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Via => "Via", "v";
    Warning => "Warning";
    WwwAuthenticate => "WWW-Authenticate";
}

impl HeaderName {
    /// Parses a header name (a token). Compact forms map to their long form.
    pub fn parse(s: &str) -> Result<HeaderName, HeaderError> {
        if !is_token(s) {
            return Err(HeaderError::BadName { name: s.to_owned() });
        }
        Ok(HeaderName::known(s).unwrap_or_else(|| HeaderName::Other(s.to_owned())))
    }
}

impl HeaderName {
    /// Which known header this is, also for a hand-built `Other("via")`.
    fn kind(&self) -> Option<std::mem::Discriminant<HeaderName>> {
        match self {
            HeaderName::Other(s) => HeaderName::known(s).map(|k| std::mem::discriminant(&k)),
            known => Some(std::mem::discriminant(known)),
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        if !matches!(self, HeaderName::Other(_)) && !matches!(other, HeaderName::Other(_)) {
            return std::mem::discriminant(self) == std::mem::discriminant(other);
        }
        match (self.kind(), other.kind()) {
            (Some(a), Some(b)) => a == b,
            (None, None) => self.as_str().eq_ignore_ascii_case(other.as_str()),
            _ => false,
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong inside one header value.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Defect {
    /// The value is not UTF-8.
    #[error("not UTF-8")]
    NotUtf8,
    /// The value (or one list element) is empty where a value is required.
    #[error("empty value")]
    Empty,
    /// A quoted string is never closed.
    #[error("unterminated quoted string")]
    UnterminatedQuote,
    /// `<` without `>`, or text that is not allowed around `<...>`.
    #[error("unbalanced or misplaced angle brackets")]
    AngleBrackets,
    /// A display name that is neither a quoted string nor tokens.
    #[error("invalid display name")]
    BadDisplayName,
    /// An addr-spec (URI without `<>`) that contains `,`, `?` or `;` in the URI.
    #[error("a URI with ',', '?' or ';' must be enclosed in <>")]
    NeedsAngleBrackets,
    /// A `;` with no parameter after it, or a parameter with `=` but no value.
    #[error("empty parameter")]
    EmptyParam,
    /// A character the grammar does not allow here.
    #[error("unexpected {found:?} at byte {offset}")]
    Unexpected {
        /// Byte offset in the (list element of the) value.
        offset: usize,
        /// The text from that offset (truncated).
        found: String,
    },
    /// Something that must be a token is not.
    #[error("{what} is not a token: {found:?}")]
    NotToken {
        /// What was expected.
        what: &'static str,
        /// What was found (truncated).
        found: String,
    },
    /// A number that is not digits or does not fit.
    #[error("{what} {found:?} is not a number in 0..={max}")]
    Number {
        /// What the number is.
        what: &'static str,
        /// As written (truncated).
        found: String,
        /// Largest accepted value.
        max: u64,
    },
    /// The URI inside the header.
    #[error("bad URI: {0}")]
    Uri(#[from] UriError),
    /// Via sent-protocol is not `name/version/transport`.
    #[error("invalid Via sent-protocol")]
    SentProtocol,
}

pub(crate) fn truncated(s: &str) -> String {
    s.chars().take(32).collect()
}

/// A header that is missing, repeated, or does not parse.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A mandatory header is absent.
    #[error("missing {name} header")]
    Missing {
        /// Which header.
        name: HeaderName,
    },
    /// A header allowed once appears more than once.
    #[error("{name} header appears {count} times")]
    Duplicate {
        /// Which header.
        name: HeaderName,
        /// How many times.
        count: usize,
    },
    /// The value does not parse.
    #[error("invalid {name} header: {defect}")]
    Invalid {
        /// Which header.
        name: HeaderName,
        /// What is wrong.
        defect: Defect,
    },
    /// A header name that is not a token.
    #[error("invalid header name {name:?}")]
    BadName {
        /// The name as given (truncated).
        name: String,
    },
    /// A value containing CR or LF (header injection).
    #[error("header value contains CR or LF")]
    LineBreakInValue,
}

impl HeaderError {
    /// The header the error is about, if it is about one.
    pub fn header(&self) -> Option<&HeaderName> {
        match self {
            HeaderError::Missing { name }
            | HeaderError::Duplicate { name, .. }
            | HeaderError::Invalid { name, .. } => Some(name),
            _ => None,
        }
    }
}

/// One header line: a name and its raw value (unfolded, LWS-trimmed, bytes
/// as received: values may carry UTF-8 or, in unknown headers, anything but
/// CR and LF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: HeaderName,
    value: Vec<u8>,
}

impl Header {
    /// Builds a header. The value must not contain CR or LF and is LWS-trimmed.
    pub fn new(name: HeaderName, value: impl Into<Vec<u8>>) -> Result<Header, HeaderError> {
        let value = value.into();
        if value.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(HeaderError::LineBreakInValue);
        }
        let trimmed = super::grammar::trim_lws_bytes(&value);
        let value = if trimmed.len() == value.len() {
            value
        } else {
            trimmed.to_vec()
        };
        // Re-parse hand-built `Other` names: validates the token and maps
        // `Other("content-length")` to the known name, so it can never be
        // written next to the computed Content-Length.
        let name = match name {
            HeaderName::Other(n) => HeaderName::parse(&n).map_err(|_| HeaderError::BadName {
                name: truncated(&n),
            })?,
            known => known,
        };
        Ok(Header { name, value })
    }

    /// For the parser: the name is already a token and the value already
    /// trimmed and free of line breaks.
    pub(crate) fn from_parts(name: HeaderName, value: Vec<u8>) -> Header {
        Header { name, value }
    }

    /// The name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The raw value bytes.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as UTF-8.
    pub fn value_str(&self) -> Result<&str, HeaderError> {
        std::str::from_utf8(&self.value).map_err(|_| HeaderError::Invalid {
            name: self.name.clone(),
            defect: Defect::NotUtf8,
        })
    }
}

/// The headers of a message, in order. `Content-Length` is never stored: it
/// is framing, consumed by the parser and written from the body length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<Header>,
}

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Appends a header. `Content-Length` is ignored (see the type docs).
    pub fn push(&mut self, header: Header) {
        if header.name != HeaderName::ContentLength {
            self.list.push(header);
        }
    }

    /// Appends `name: value`, validating both.
    pub fn append(&mut self, name: HeaderName, value: &str) -> Result<(), HeaderError> {
        self.push(Header::new(name, value)?);
        Ok(())
    }

    /// Removes every header with this name.
    pub fn remove(&mut self, name: &HeaderName) {
        self.list.retain(|h| &h.name != name);
    }

    /// All headers, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Header> {
        self.list.iter()
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Every header line with this name, in order.
    pub fn get_all(&self, name: &HeaderName) -> impl Iterator<Item = &Header> + '_ {
        let name = name.clone();
        self.list.iter().filter(move |h| h.name == name)
    }

    /// The first header line with this name.
    pub fn get(&self, name: &HeaderName) -> Option<&Header> {
        self.list.iter().find(|h| &h.name == name)
    }

    /// The value of a header that may appear at most once.
    fn single(&self, name: HeaderName) -> Result<Option<&str>, HeaderError> {
        let mut it = self.get_all(&name);
        let Some(first) = it.next() else {
            return Ok(None);
        };
        let extra = it.count();
        if extra > 0 {
            return Err(HeaderError::Duplicate {
                name,
                count: extra + 1,
            });
        }
        first.value_str().map(Some)
    }

    fn required(&self, name: HeaderName) -> Result<&str, HeaderError> {
        self.single(name.clone())?
            .ok_or(HeaderError::Missing { name })
    }

    /// All comma-separated elements of every line with this name.
    fn elements(&self, name: HeaderName) -> Result<Vec<&str>, HeaderError> {
        let mut out = Vec::new();
        for h in self.list.iter().filter(|h| h.name == name) {
            split_list_into(h.value_str()?, &mut out).map_err(|_| HeaderError::Invalid {
                name: name.clone(),
                defect: Defect::UnterminatedQuote,
            })?;
        }
        Ok(out)
    }

    fn parse_each<T>(
        &self,
        name: HeaderName,
        allow_empty_list: bool,
        parse: impl Fn(&str) -> Result<T, Defect>,
    ) -> Result<Vec<T>, HeaderError> {
        let elems = self.elements(name.clone())?;
        if allow_empty_list && elems.len() == 1 && elems.first() == Some(&"") {
            return Ok(Vec::new());
        }
        elems
            .into_iter()
            .map(|e| {
                parse(e).map_err(|defect| HeaderError::Invalid {
                    name: name.clone(),
                    defect,
                })
            })
            .collect()
    }

    fn parse_single<T>(
        &self,
        name: HeaderName,
        parse: impl Fn(&str) -> Result<T, Defect>,
    ) -> Result<Option<T>, HeaderError> {
        self.single(name.clone())?
            .map(|v| parse(v).map_err(|defect| HeaderError::Invalid { name, defect }))
            .transpose()
    }

    fn parse_required<T>(
        &self,
        name: HeaderName,
        parse: impl Fn(&str) -> Result<T, Defect>,
    ) -> Result<T, HeaderError> {
        let v = self.required(name.clone())?;
        parse(v).map_err(|defect| HeaderError::Invalid { name, defect })
    }

    /// Every Via value, top first (all Via lines, comma lists split).
    pub fn vias(&self) -> Result<Vec<Via>, HeaderError> {
        self.parse_each(HeaderName::Via, false, Via::parse)
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Via, HeaderError> {
        let first =
            self.elements(HeaderName::Via)?
                .into_iter()
                .next()
                .ok_or(HeaderError::Missing {
                    name: HeaderName::Via,
                })?;
        Via::parse(first).map_err(|defect| HeaderError::Invalid {
            name: HeaderName::Via,
            defect,
        })
    }

    /// The From header (exactly one).
    pub fn from(&self) -> Result<NameAddr, HeaderError> {
        self.parse_required(HeaderName::From, NameAddr::parse)
    }

    /// The To header (exactly one).
    pub fn to(&self) -> Result<NameAddr, HeaderError> {
        self.parse_required(HeaderName::To, NameAddr::parse)
    }

    /// The Call-ID (exactly one).
    pub fn call_id(&self) -> Result<CallId, HeaderError> {
        self.parse_required(HeaderName::CallId, CallId::parse)
    }

    /// The CSeq (exactly one; the number must fit in 32 bits).
    pub fn cseq(&self) -> Result<CSeq, HeaderError> {
        self.parse_required(HeaderName::CSeq, CSeq::parse)
    }

    /// Max-Forwards, if present (0..=255).
    pub fn max_forwards(&self) -> Result<Option<MaxForwards>, HeaderError> {
        self.parse_single(HeaderName::MaxForwards, MaxForwards::parse)
    }

    /// Contact values (`*` or a list), if any Contact header is present.
    pub fn contacts(&self) -> Result<Option<Contacts>, HeaderError> {
        let elems = self.elements(HeaderName::Contact)?;
        if elems.is_empty() {
            return Ok(None);
        }
        if elems.len() == 1 && elems.first() == Some(&"*") {
            return Ok(Some(Contacts::Star));
        }
        elems
            .into_iter()
            .map(|e| {
                Contact::parse(e).map_err(|defect| HeaderError::Invalid {
                    name: HeaderName::Contact,
                    defect,
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(Contacts::List(v)))
    }

    /// Content-Type, if present.
    pub fn content_type(&self) -> Result<Option<MediaType>, HeaderError> {
        self.parse_single(HeaderName::ContentType, MediaType::parse)
    }

    /// Accept media ranges, in order (possibly none).
    pub fn accept(&self) -> Result<Vec<MediaType>, HeaderError> {
        self.parse_each(HeaderName::Accept, true, MediaType::parse)
    }

    /// Route values, in order.
    pub fn routes(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.parse_each(HeaderName::Route, false, NameAddr::parse)
    }

    /// Record-Route values, in order.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>, HeaderError> {
        self.parse_each(HeaderName::RecordRoute, false, NameAddr::parse)
    }

    /// Expires (delta-seconds, must fit in 32 bits), if present.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.parse_single(HeaderName::Expires, |v| {
            super::values::parse_u32(trim_lws(v), "Expires")
        })
    }

    /// Allow: the methods listed (possibly none).
    pub fn allow(&self) -> Result<Vec<Method>, HeaderError> {
        self.parse_each(HeaderName::Allow, true, |v| {
            Method::parse(v).map_err(|_| Defect::NotToken {
                what: "method",
                found: truncated(v),
            })
        })
    }

    /// Supported option tags (possibly none).
    pub fn supported(&self) -> Result<Vec<OptionTag>, HeaderError> {
        self.parse_each(HeaderName::Supported, true, OptionTag::parse)
    }

    /// Require option tags.
    pub fn require(&self) -> Result<Vec<OptionTag>, HeaderError> {
        self.parse_each(HeaderName::Require, false, OptionTag::parse)
    }

    /// Proxy-Require option tags.
    pub fn proxy_require(&self) -> Result<Vec<OptionTag>, HeaderError> {
        self.parse_each(HeaderName::ProxyRequire, false, OptionTag::parse)
    }

    fn auth(&self, name: HeaderName) -> Result<Vec<AuthHeader>, HeaderError> {
        self.get_all(&name)
            .map(|h| {
                AuthHeader::parse(h.value_str()?).map_err(|defect| HeaderError::Invalid {
                    name: name.clone(),
                    defect,
                })
            })
            .collect()
    }

    /// WWW-Authenticate challenges, one per header line.
    pub fn www_authenticate(&self) -> Result<Vec<AuthHeader>, HeaderError> {
        self.auth(HeaderName::WwwAuthenticate)
    }

    /// Proxy-Authenticate challenges, one per header line.
    pub fn proxy_authenticate(&self) -> Result<Vec<AuthHeader>, HeaderError> {
        self.auth(HeaderName::ProxyAuthenticate)
    }

    /// Authorization credentials, one per header line.
    pub fn authorization(&self) -> Result<Vec<AuthHeader>, HeaderError> {
        self.auth(HeaderName::Authorization)
    }

    /// Proxy-Authorization credentials, one per header line.
    pub fn proxy_authorization(&self) -> Result<Vec<AuthHeader>, HeaderError> {
        self.auth(HeaderName::ProxyAuthorization)
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        for (raw, want) in [
            ("i", HeaderName::CallId),
            ("I", HeaderName::CallId),
            ("l", HeaderName::ContentLength),
            ("v", HeaderName::Via),
            ("m", HeaderName::Contact),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("c", HeaderName::ContentType),
            ("s", HeaderName::Subject),
            ("k", HeaderName::Supported),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("r", HeaderName::ReferTo),
            ("u", HeaderName::AllowEvents),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
            ("b", HeaderName::ReferredBy),
            ("MaX-fOrWaRdS", HeaderName::MaxForwards),
            ("cseq", HeaderName::CSeq),
        ] {
            assert_eq!(HeaderName::parse(raw).unwrap(), want, "{raw}");
        }
        let other = HeaderName::parse("C%6Fntact").unwrap();
        assert_eq!(other, HeaderName::Other("c%6fNTACT".into()));
        assert_ne!(other, HeaderName::Contact);
        assert_eq!(other.as_str(), "C%6Fntact");
        assert!(HeaderName::parse("Foobar roobar").is_err());
        assert_eq!(HeaderName::Other("VIA".into()), HeaderName::Via);
        assert_eq!(HeaderName::Via, HeaderName::Other("v".into()));
        assert_ne!(HeaderName::Other("X-Via".into()), HeaderName::Via);
        assert_eq!(
            HeaderName::Other("via".into()),
            HeaderName::Other("V".into())
        );
        assert!(HeaderName::parse("").is_err());
    }

    #[test]
    fn every_known_name_and_compact_form_is_recognised() {
        for (canonical, compact, want) in HeaderName::ALL {
            for raw in [
                canonical.to_string(),
                canonical.to_ascii_lowercase(),
                canonical.to_ascii_uppercase(),
            ] {
                assert_eq!(HeaderName::known(&raw).as_ref(), Some(want), "{raw}");
            }
            if let Some(c) = compact {
                assert_eq!(HeaderName::known(c).as_ref(), Some(want), "{c}");
                let upper = c.to_ascii_uppercase();
                assert_eq!(HeaderName::known(&upper).as_ref(), Some(want), "{upper}");
            }
        }
        for other in ["", "a", "z", "X-Via", "Vias", "Fro", "Tox", "Call-IDs"] {
            assert_eq!(HeaderName::known(other), None, "{other}");
        }
    }

    #[test]
    fn header_values_reject_line_breaks() {
        assert_eq!(
            Header::new(HeaderName::Subject, "a\r\nVia: x"),
            Err(HeaderError::LineBreakInValue)
        );
        let h = Header::new(HeaderName::Subject, "  hi \t").unwrap();
        assert_eq!(h.value(), b"hi");
        let cl = Header::new(HeaderName::Other("content-LENGTH".into()), "99").unwrap();
        assert_eq!(cl.name(), &HeaderName::ContentLength);
        assert!(Header::new(HeaderName::Other("bad name".into()), "x").is_err());
    }

    #[test]
    fn singleton_accessors_report_duplicates_and_absence() {
        let mut h = Headers::new();
        h.append(HeaderName::CSeq, "5 INVITE").unwrap();
        h.append(HeaderName::CSeq, "59 INVITE").unwrap();
        assert!(matches!(
            h.cseq(),
            Err(HeaderError::Duplicate { count: 2, .. })
        ));
        assert!(matches!(h.call_id(), Err(HeaderError::Missing { .. })));
        h.append(HeaderName::ContentLength, "5").unwrap();
        assert_eq!(h.len(), 2, "Content-Length is never stored");
    }

    #[test]
    fn token_lists() {
        let mut h = Headers::new();
        h.append(HeaderName::Supported, "").unwrap();
        h.append(HeaderName::Allow, "INVITE, ACK ,BYE").unwrap();
        h.append(HeaderName::Require, "100rel, timer").unwrap();
        assert!(h.supported().unwrap().is_empty());
        assert_eq!(
            h.allow().unwrap(),
            vec![Method::Invite, Method::Ack, Method::Bye]
        );
        assert_eq!(h.require().unwrap()[1].as_str(), "timer");
        h.append(HeaderName::Require, "").unwrap();
        assert!(h.require().is_err());
    }
}
