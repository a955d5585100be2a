//! URIs as SIP carries them (RFC 3261 §19.1, §25.1; RFC 3966 for `tel:`).
//!
//! `sip:`/`sips:` and `tel:` are parsed into typed values with every `%HEX`
//! escape decoded exactly once (user, password, parameter names and values,
//! header names and values). Any other absolute URI is kept opaque.
//! [`fmt::Display`] writes a canonical form that parses back to an equal value.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::grammar::{
    escape_into, is_hnv_byte, is_param_byte, is_password_byte, is_uric_byte, is_user_byte,
    parse_digits, unescape, validate_escaped, EscapeError,
};

/// Why a URI did not parse.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// No `scheme:` prefix, or the scheme has characters a scheme can't have.
    #[error("missing or invalid URI scheme")]
    BadScheme,
    /// Nothing after the scheme.
    #[error("empty URI after the {scheme:?} scheme")]
    Empty {
        /// The scheme as written.
        scheme: String,
    },
    /// A `%` not followed by two hex digits.
    #[error("bad %-escape in the URI {component} at byte {offset}")]
    BadEscape {
        /// Which part of the URI.
        component: UriComponent,
        /// Offset inside that component.
        offset: usize,
    },
    /// A character the grammar does not allow in that component.
    #[error("character {byte:#04x} not allowed in the URI {component} at byte {offset}")]
    BadChar {
        /// Which part of the URI.
        component: UriComponent,
        /// Offset inside that component.
        offset: usize,
        /// The offending byte.
        byte: u8,
    },
    /// `%`-escapes that decode to something other than UTF-8.
    #[error("the URI {component} does not decode to UTF-8")]
    NotUtf8 {
        /// Which part of the URI.
        component: UriComponent,
    },
    /// An empty user, parameter or header where one is required.
    #[error("empty URI {component}")]
    EmptyComponent {
        /// Which part of the URI.
        component: UriComponent,
    },
    /// Host is neither a hostname, an IPv4 address nor a bracketed IPv6 address.
    #[error("invalid host {host:?}")]
    BadHost {
        /// The host as written.
        host: String,
    },
    /// Port is not 1 to 5 digits fitting in 16 bits.
    #[error("invalid port {port:?}")]
    BadPort {
        /// The port as written.
        port: String,
    },
}

/// The part of a URI an error is about.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriComponent {
    /// SIP user part.
    User,
    /// SIP password.
    Password,
    /// A `;name=value` parameter.
    Param,
    /// A `?name=value` header.
    Header,
    /// A `tel:` number.
    Number,
    /// The body of an opaque URI.
    Opaque,
}

impl fmt::Display for UriComponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::User => "user",
            Self::Password => "password",
            Self::Param => "parameter",
            Self::Header => "header",
            Self::Number => "number",
            Self::Opaque => "body",
        })
    }
}

fn esc_err(component: UriComponent) -> impl Fn(EscapeError) -> UriError {
    move |e| match e {
        EscapeError::BadEscape { offset } => UriError::BadEscape { component, offset },
        EscapeError::BadChar { offset, byte } => UriError::BadChar {
            component,
            offset,
            byte,
        },
        EscapeError::NotUtf8 => UriError::NotUtf8 { component },
    }
}

/// A URI: typed for `sip:`, `sips:` and `tel:`, opaque otherwise.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// `tel:` (RFC 3966).
    Tel(TelUri),
    /// Any other absolute URI, kept as written.
    Other {
        /// The scheme as written (compare case-insensitively).
        scheme: String,
        /// Everything after the first `:`.
        rest: String,
    },
}

/// A `sip:` or `sips:` URI with escapes decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `true` for `sips:`.
    pub secure: bool,
    /// The user part, unescaped.
    pub user: Option<String>,
    /// The password, unescaped.
    pub password: Option<String>,
    /// The host.
    pub host: Host,
    /// The port, if given.
    pub port: Option<u16>,
    /// `;name[=value]` URI parameters, unescaped, in order.
    pub params: Vec<UriParam>,
    /// `?name=value&...` headers, unescaped, in order.
    pub headers: Vec<UriHeader>,
}

/// A URI parameter (`;lr`, `;transport=tcp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriParam {
    /// Name, unescaped. Compare case-insensitively.
    pub name: String,
    /// Value, unescaped; `None` for a flag such as `lr`.
    pub value: Option<String>,
}

/// A URI header (`?Route=%3Csip:x%3E`), unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriHeader {
    /// Header name, unescaped.
    pub name: String,
    /// Header value, unescaped.
    pub value: String,
}

/// A `tel:` URI: the number as written (visual separators kept) and its
/// parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelUri {
    /// `+1-201-555-0123` or a local number such as `7042`.
    pub number: String,
    /// Parameters such as `phone-context`, unescaped.
    pub params: Vec<UriParam>,
}

/// The host of a SIP URI or a Via sent-by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A hostname, as written.
    Domain(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (written in brackets).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a hostname, IPv4 address or `[IPv6]` reference.
    pub fn parse(s: &str) -> Result<Host, UriError> {
        let bad = || UriError::BadHost { host: s.to_owned() };
        if let Some(inner) = s.strip_prefix('[') {
            let inner = inner.strip_suffix(']').ok_or_else(bad)?;
            return inner.parse::<Ipv6Addr>().map(Host::V6).map_err(|_| bad());
        }
        if s.is_empty() {
            return Err(bad());
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            if let Ok(v4) = s.parse::<Ipv4Addr>() {
                return Ok(Host::V4(v4));
            }
        }
        let valid = s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid || s.starts_with('.') || s.starts_with('-') {
            return Err(bad());
        }
        Ok(Host::Domain(s.to_owned()))
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// Splits `host[:port]` (host may be a bracketed IPv6 reference).
pub(crate) fn parse_hostport(s: &str) -> Result<(Host, Option<u16>), UriError> {
    let (host, port) = if s.starts_with('[') {
        match s.find(']') {
            Some(end) => {
                let host = s.get(..=end).unwrap_or(s);
                let after = s.get(end + 1..).unwrap_or("");
                match after.strip_prefix(':') {
                    Some(p) => (host, Some(p)),
                    None if after.is_empty() => (host, None),
                    None => {
                        return Err(UriError::BadHost { host: s.to_owned() });
                    }
                }
            }
            None => return Err(UriError::BadHost { host: s.to_owned() }),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let host = Host::parse(host)?;
    let port = match port {
        None => None,
        Some(p) => {
            let bad = || UriError::BadPort { port: p.to_owned() };
            if p.len() > 5 {
                return Err(bad());
            }
            let v = parse_digits(p).ok_or_else(bad)?;
            Some(u16::try_from(v).map_err(|_| bad())?)
        }
    };
    Ok((host, port))
}

fn is_scheme(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
}

fn parse_params(s: &str) -> Result<Vec<UriParam>, UriError> {
    let mut params = Vec::new();
    for p in s.split(';') {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (p, None),
        };
        if name.is_empty() || value == Some("") {
            return Err(UriError::EmptyComponent {
                component: UriComponent::Param,
            });
        }
        let err = esc_err(UriComponent::Param);
        params.push(UriParam {
            name: unescape(name, is_param_byte).map_err(&err)?,
            value: value
                .map(|v| unescape(v, is_param_byte))
                .transpose()
                .map_err(&err)?,
        });
    }
    Ok(params)
}

fn parse_headers(s: &str) -> Result<Vec<UriHeader>, UriError> {
    let mut headers = Vec::new();
    for h in s.split('&') {
        let (name, value) = h.split_once('=').unwrap_or((h, ""));
        if name.is_empty() {
            return Err(UriError::EmptyComponent {
                component: UriComponent::Header,
            });
        }
        let err = esc_err(UriComponent::Header);
        headers.push(UriHeader {
            name: unescape(name, is_hnv_byte).map_err(&err)?,
            value: unescape(value, is_hnv_byte).map_err(&err)?,
        });
    }
    Ok(headers)
}

impl SipUri {
    fn parse_after_scheme(secure: bool, s: &str) -> Result<SipUri, UriError> {
        // userinfo runs up to an '@' reached through userinfo characters only.
        let userinfo_end = s
            .bytes()
            .position(|b| !(is_user_byte(b) || b == b'%' || b == b':'))
            .filter(|&i| s.as_bytes().get(i) == Some(&b'@'));
        let (user, password, rest) = match userinfo_end {
            Some(at) => {
                let userinfo = s.get(..at).unwrap_or("");
                let rest = s.get(at + 1..).unwrap_or("");
                let (user, password) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(UriError::EmptyComponent {
                        component: UriComponent::User,
                    });
                }
                let user = unescape(user, is_user_byte).map_err(esc_err(UriComponent::User))?;
                let password = password
                    .map(|p| unescape(p, is_password_byte))
                    .transpose()
                    .map_err(esc_err(UriComponent::Password))?;
                (Some(user), password, rest)
            }
            None => (None, None, s),
        };
        let (before_headers, headers) = match rest.split_once('?') {
            Some((a, h)) => (a, Some(h)),
            None => (rest, None),
        };
        let (hostport, params) = match before_headers.split_once(';') {
            Some((hp, p)) => (hp, Some(p)),
            None => (before_headers, None),
        };
        let (host, port) = parse_hostport(hostport)?;
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params: params.map(parse_params).transpose()?.unwrap_or_default(),
            headers: headers.map(parse_headers).transpose()?.unwrap_or_default(),
        })
    }

    /// The first parameter with this name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&UriParam> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Whether a parameter with this name is present (case-insensitive).
    pub fn has_param(&self, name: &str) -> bool {
        self.param(name).is_some()
    }
}

fn write_params(out: &mut String, params: &[UriParam]) {
    for p in params {
        out.push(';');
        escape_into(out, &p.name, is_param_byte);
        if let Some(v) = &p.value {
            out.push('=');
            escape_into(out, v, is_param_byte);
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from(if self.secure { "sips:" } else { "sip:" });
        if let Some(user) = &self.user {
            escape_into(&mut out, user, is_user_byte);
            if let Some(pw) = &self.password {
                out.push(':');
                escape_into(&mut out, pw, is_password_byte);
            }
            out.push('@');
        }
        out.push_str(&self.host.to_string());
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(&port.to_string());
        }
        write_params(&mut out, &self.params);
        for (i, h) in self.headers.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            escape_into(&mut out, &h.name, is_hnv_byte);
            out.push('=');
            escape_into(&mut out, &h.value, is_hnv_byte);
        }
        f.write_str(&out)
    }
}

fn is_tel_number_byte(b: u8) -> bool {
    b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')')
}

impl TelUri {
    fn parse_after_scheme(s: &str) -> Result<TelUri, UriError> {
        let (number, params) = match s.split_once(';') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        let digits = number.strip_prefix('+').unwrap_or(number);
        if digits.is_empty() {
            return Err(UriError::EmptyComponent {
                component: UriComponent::Number,
            });
        }
        if let Some(offset) = digits.bytes().position(|b| !is_tel_number_byte(b)) {
            return Err(UriError::BadChar {
                component: UriComponent::Number,
                offset,
                byte: digits.as_bytes().get(offset).copied().unwrap_or(0),
            });
        }
        Ok(TelUri {
            number: number.to_owned(),
            params: params.map(parse_params).transpose()?.unwrap_or_default(),
        })
    }

    /// Whether the number is global (`+` prefixed).
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }
}

impl fmt::Display for TelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::from("tel:");
        out.push_str(&self.number);
        write_params(&mut out, &self.params);
        f.write_str(&out)
    }
}

impl Uri {
    /// Parses an absolute URI. No whitespace is allowed anywhere.
    pub fn parse(s: &str) -> Result<Uri, UriError> {
        let (scheme, rest) = s.split_once(':').ok_or(UriError::BadScheme)?;
        if !is_scheme(scheme) {
            return Err(UriError::BadScheme);
        }
        if rest.is_empty() {
            return Err(UriError::Empty {
                scheme: scheme.to_owned(),
            });
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_after_scheme(false, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_after_scheme(true, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse_after_scheme(rest).map(Uri::Tel)
        } else {
            validate_escaped(rest, is_uric_byte).map_err(esc_err(UriComponent::Opaque))?;
            Ok(Uri::Other {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            })
        }
    }

    /// The scheme in lower case for typed URIs, as written for others.
    pub fn scheme(&self) -> &str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Other { scheme, .. } => scheme,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// The tel URI, if this is one.
    pub fn as_tel(&self) -> Option<&TelUri> {
        match self {
            Uri::Tel(u) => Some(u),
            _ => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Tel(u) => u.fmt(f),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

impl std::str::FromStr for Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uri::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri {
        match Uri::parse(s).unwrap() {
            Uri::Sip(u) => u,
            other => panic!("not sip: {other:?}"),
        }
    }

    #[test]
    fn escaped_user_and_params_decode_once() {
        let u = sip("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31");
        assert_eq!(u.user.as_deref(), Some("caller"));
        assert!(u.has_param("lr"));
        assert_eq!(u.param("name").unwrap().value.as_deref(), Some("value%41"));
        let again = sip(&u.to_string());
        assert_eq!(again, u);
    }

    #[test]
    fn semicolon_in_user_part() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u@example.net"));
        assert_eq!(u.host, Host::Domain("example.com".into()));
        assert!(u.params.is_empty());
        assert_eq!(sip(&u.to_string()), u);
    }

    #[test]
    fn password_and_odd_user() {
        let u = sip("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com");
        assert_eq!(
            u.user.as_deref(),
            Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
        );
        assert_eq!(
            u.password.as_deref(),
            Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
        );
        assert_eq!(sip(&u.to_string()), u);
    }

    #[test]
    fn hosts_ports_headers() {
        let u = sip("sips:[2001:db8::1]:5061;transport=tls?Route=%3Csip:x%3E&Subject=");
        assert!(u.secure);
        assert_eq!(u.host, Host::V6("2001:db8::1".parse().unwrap()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.headers[0].value, "<sip:x>");
        assert_eq!(u.headers[1].value, "");
        assert_eq!(sip(&u.to_string()), u);
        assert_eq!(
            sip("SIP:192.0.2.1:0").host,
            Host::V4("192.0.2.1".parse().unwrap())
        );
        assert!(Uri::parse("sip:host:65536").is_err());
        assert!(Uri::parse("sip:host:99999999999999999999").is_err());
        assert!(Uri::parse("sip:user@example.com; lr").is_err());
        assert!(Uri::parse("<sip:user@example.com>").is_err());
        assert!(Uri::parse("sip:").is_err());
        assert!(Uri::parse("sip:@host").is_err());
        assert!(Uri::parse("sip:host;=x").is_err());
    }

    #[test]
    fn tel_uris() {
        let u = Uri::parse("tel:+1-201-555-0123;phone-context=example.com").unwrap();
        let t = u.as_tel().unwrap();
        assert!(t.is_global());
        assert_eq!(t.number, "+1-201-555-0123");
        assert_eq!(t.params[0].name, "phone-context");
        assert_eq!(Uri::parse(&u.to_string()).unwrap(), u);
        let local = Uri::parse("TEL:7042;phone-context=%2B33").unwrap();
        assert_eq!(
            local.as_tel().unwrap().params[0].value.as_deref(),
            Some("+33")
        );
        assert!(Uri::parse("tel:+").is_err());
        assert!(Uri::parse("tel:12 34").is_err());
    }

    #[test]
    fn other_schemes_are_opaque() {
        let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(
            u,
            Uri::Other {
                scheme: "soap.beep".into(),
                rest: "//192.0.2.103:3002".into()
            }
        );
        assert_eq!(u.to_string(), "soap.beep://192.0.2.103:3002");
        assert!(Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent").is_ok());
        assert!(Uri::parse("1abc:x").is_err());
        assert!(Uri::parse("http://x y").is_err());
    }
}
