//! `name-addr` / `addr-spec` values (From, To, Contact, Route, Record-Route)
//! and the `;name=value` header parameters they and Via carry.

use std::borrow::Cow;
use std::fmt;

use super::grammar::{is_token, is_token_byte, split_quoted, trim_lws, trim_lws_start, unquote};
use super::headers::{truncated, Defect};
use super::uri::Uri;
use super::values::{parse_u32, Tag};

/// A header parameter (`;tag=abc`, `;lr`, `;q=0.5`, `;x="quoted"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericParam {
    /// The name (a token). Compare case-insensitively.
    pub name: String,
    /// The value as written: a token, a host, or a quoted string with its
    /// quotes. `None` for a flag.
    pub value: Option<String>,
}

impl GenericParam {
    /// The value with the quotes and quoted-pair backslashes removed.
    pub fn value_unquoted(&self) -> Option<Cow<'_, str>> {
        let v = self.value.as_deref()?;
        match v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) => Some(unquote(inner)),
            None => Some(Cow::Borrowed(v)),
        }
    }
}

impl fmt::Display for GenericParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(v) = &self.value {
            write!(f, "={v}")?;
        }
        Ok(())
    }
}

/// Finds a parameter by name (case-insensitive).
pub(crate) fn find_param<'a>(params: &'a [GenericParam], name: &str) -> Option<&'a GenericParam> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

fn is_gen_value_byte(b: u8) -> bool {
    // token / host (IPv6 references need the brackets and colons)
    is_token_byte(b) || matches!(b, b'[' | b']' | b':')
}

/// Parses `*( SEMI generic-param )` with LWS allowed around `;` and `=`.
pub(crate) fn parse_params(s: &str) -> Result<Vec<GenericParam>, Defect> {
    let total = s.len();
    let unexpected = |rest: &str| Defect::Unexpected {
        offset: total - rest.len(),
        found: truncated(rest),
    };
    let mut out = Vec::new();
    let mut s = s;
    loop {
        s = trim_lws_start(s);
        if s.is_empty() {
            return Ok(out);
        }
        let Some(rest) = s.strip_prefix(';') else {
            return Err(unexpected(s));
        };
        s = trim_lws_start(rest);
        let name_len = s.bytes().take_while(|&b| is_token_byte(b)).count();
        if name_len == 0 {
            return Err(Defect::EmptyParam);
        }
        let (name, rest) = s.split_at(name_len);
        s = trim_lws_start(rest);
        let value = match s.strip_prefix('=') {
            None => None,
            Some(rest) => {
                s = trim_lws_start(rest);
                if s.starts_with('"') {
                    let (inner, rest) = split_quoted(s).map_err(|_| Defect::UnterminatedQuote)?;
                    s = rest;
                    let mut quoted = String::with_capacity(inner.len() + 2);
                    quoted.push('"');
                    quoted.push_str(inner);
                    quoted.push('"');
                    Some(quoted)
                } else {
                    let len = s.bytes().take_while(|&b| is_gen_value_byte(b)).count();
                    if len == 0 {
                        return Err(Defect::EmptyParam);
                    }
                    let (v, rest) = s.split_at(len);
                    s = rest;
                    Some(v.to_owned())
                }
            }
        };
        out.push(GenericParam {
            name: name.to_owned(),
            value,
        });
    }
}

/// A display name, as a quoted string or as LWS-separated tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisplayName {
    /// `"..."`: the text between the quotes, quoted-pairs still escaped.
    Quoted(String),
    /// Unquoted tokens, as written (LWS between them kept).
    Tokens(String),
}

impl DisplayName {
    /// The display text with quoted-pairs resolved (`\"` becomes `"`).
    /// `%` is never an escape in a display name.
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            DisplayName::Quoted(raw) => unquote(raw),
            DisplayName::Tokens(t) => Cow::Borrowed(t),
        }
    }

    /// As written (without the surrounding quotes for a quoted name).
    pub fn raw(&self) -> &str {
        match self {
            DisplayName::Quoted(s) | DisplayName::Tokens(s) => s,
        }
    }
}

/// A From/To/Contact/Route value: optional display name, URI, header params.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, if any.
    pub display_name: Option<DisplayName>,
    /// The URI.
    pub uri: Uri,
    /// Header parameters (after `>`, or after the URI in addr-spec form).
    pub params: Vec<GenericParam>,
}

impl NameAddr {
    /// Parses a `name-addr` or an `addr-spec` followed by parameters. In
    /// addr-spec form everything after the first `;` is a header parameter,
    /// never a URI parameter.
    pub fn parse(s: &str) -> Result<NameAddr, Defect> {
        let s = trim_lws(s);
        if s.is_empty() {
            return Err(Defect::Empty);
        }
        // Quoted display name.
        if s.starts_with('"') {
            let (inner, rest) = split_quoted(s).map_err(|_| Defect::UnterminatedQuote)?;
            let rest = trim_lws_start(rest);
            if !rest.starts_with('<') {
                return Err(Defect::AngleBrackets);
            }
            let (uri, params) = Self::angle(rest)?;
            return Ok(NameAddr {
                display_name: Some(DisplayName::Quoted(inner.to_owned())),
                uri,
                params,
            });
        }
        // Which comes first decides the form.
        let first = s.bytes().position(|b| matches!(b, b'<' | b';' | b'"'));
        match first.and_then(|i| s.as_bytes().get(i).map(|&b| (i, b))) {
            Some((i, b'<')) => {
                let (before, rest) = s.split_at(i);
                let display = trim_lws(before);
                let display_name = if display.is_empty() {
                    None
                } else if display
                    .split([' ', '\t'])
                    .filter(|w| !w.is_empty())
                    .all(is_token)
                {
                    Some(DisplayName::Tokens(display.to_owned()))
                } else {
                    return Err(Defect::BadDisplayName);
                };
                let (uri, params) = Self::angle(rest)?;
                Ok(NameAddr {
                    display_name,
                    uri,
                    params,
                })
            }
            Some((_, b'"')) => Err(Defect::BadDisplayName),
            other => {
                let end = other.map_or(s.len(), |(i, _)| i);
                let (uri_text, rest) = s.split_at(end);
                let uri_text = trim_lws(uri_text);
                if uri_text.contains([',', '?']) {
                    return Err(Defect::NeedsAngleBrackets);
                }
                if uri_text.contains([' ', '\t']) {
                    return Err(Defect::BadDisplayName);
                }
                Ok(NameAddr {
                    display_name: None,
                    uri: Uri::parse(uri_text)?,
                    params: parse_params(rest)?,
                })
            }
        }
    }

    /// `rest` starts with `<`.
    fn angle(rest: &str) -> Result<(Uri, Vec<GenericParam>), Defect> {
        let inner = rest.get(1..).unwrap_or("");
        let close = inner.find('>').ok_or(Defect::AngleBrackets)?;
        let (uri_text, after) = inner.split_at(close);
        let after = after.get(1..).unwrap_or("");
        if uri_text.contains('<') {
            return Err(Defect::AngleBrackets);
        }
        Ok((Uri::parse(uri_text)?, parse_params(after)?))
    }

    /// A header parameter by name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&GenericParam> {
        find_param(&self.params, name)
    }

    /// The `tag` parameter, if present and a token.
    pub fn tag(&self) -> Option<Tag> {
        self.param("tag")
            .and_then(|p| p.value.as_deref())
            .and_then(|v| Tag::new(v).ok())
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.display_name {
            Some(DisplayName::Quoted(raw)) => write!(f, "\"{raw}\" ")?,
            Some(DisplayName::Tokens(t)) => write!(f, "{t} ")?,
            None => {}
        }
        write!(f, "<{}>", self.uri)?;
        for p in &self.params {
            write!(f, ";{p}")?;
        }
        Ok(())
    }
}

/// A q-value in thousandths (`q=0.33` is 330), 0..=1000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QValue(u16);

impl QValue {
    /// Parses `0[.ddd]` or `1[.000]`.
    pub fn parse(s: &str) -> Result<QValue, Defect> {
        let bad = || Defect::Number {
            what: "q-value",
            found: truncated(s),
            max: 1,
        };
        let (int, frac) = s.split_once('.').unwrap_or((s, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let mut thousandths: u16 = 0;
        let mut scale = 100;
        for b in frac.bytes() {
            thousandths += u16::from(b - b'0') * scale;
            scale /= 10;
        }
        match int {
            "0" => Ok(QValue(thousandths)),
            "1" if thousandths == 0 => Ok(QValue(1000)),
            _ => Err(bad()),
        }
    }

    /// The value in thousandths.
    pub fn thousandths(self) -> u16 {
        self.0
    }
}

/// One Contact value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    /// The address and its contact parameters.
    pub addr: NameAddr,
}

impl Contact {
    /// Parses one Contact list element (not `*`).
    pub fn parse(s: &str) -> Result<Contact, Defect> {
        NameAddr::parse(s).map(|addr| Contact { addr })
    }

    /// The `q` parameter, if present.
    pub fn q(&self) -> Result<Option<QValue>, Defect> {
        self.addr
            .param("q")
            .map(|p| QValue::parse(p.value.as_deref().unwrap_or("")))
            .transpose()
    }

    /// The `expires` parameter, if present (delta-seconds, 32 bits).
    pub fn expires(&self) -> Result<Option<u32>, Defect> {
        self.addr
            .param("expires")
            .map(|p| parse_u32(p.value.as_deref().unwrap_or(""), "expires"))
            .transpose()
    }
}

/// The value of the Contact headers of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *` (REGISTER: remove all bindings).
    Star,
    /// One or more contacts, in order.
    List(Vec<Contact>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::uri::Host;

    #[test]
    fn tag_after_addr_spec_is_a_header_param() {
        let na =
            NameAddr::parse("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        let sip = na.uri.as_sip().unwrap();
        assert!(sip.params.is_empty());
        assert_eq!(na.tag().unwrap().as_str(), "1918181833n");

        let c = NameAddr::parse("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert!(c.uri.as_sip().unwrap().params.is_empty());
        assert!(c.param("unknownparam").is_some());

        let c = NameAddr::parse("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert!(c.uri.as_sip().unwrap().has_param("unknownparam"));
        assert!(c.params.is_empty());
    }

    #[test]
    fn display_names() {
        let na = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com>  ;  tag = 98asjd8"#,
        )
        .unwrap();
        let dn = na.display_name.as_ref().unwrap();
        assert_eq!(dn.raw(), r#"J Rosenberg \\\""#);
        assert_eq!(dn.text(), r#"J Rosenberg \""#);
        assert_eq!(na.tag().unwrap().as_str(), "98asjd8");

        let na = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(na.display_name.unwrap().text(), "caller");

        let na = NameAddr::parse("\"%Z%45\" <sip:resource@example.com>").unwrap();
        assert_eq!(na.display_name.unwrap().text(), "%Z%45");

        assert_eq!(
            NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>"),
            Err(Defect::BadDisplayName)
        );
        assert_eq!(
            NameAddr::parse("\"Mr. J. User <sip:j.user@example.com>"),
            Err(Defect::UnterminatedQuote)
        );
        assert!(NameAddr::parse("\"Watson, Thomas\" < sip:t.watson@example.org >").is_err());
    }

    #[test]
    fn addr_spec_with_headers_needs_brackets() {
        assert_eq!(
            NameAddr::parse("sip:user@example.com?Route=%3Csip:sip.example.com%3E"),
            Err(Defect::NeedsAngleBrackets)
        );
        let ok = NameAddr::parse("<sip:user@example.com?Route=%3Csip:sip.example.com%3E>").unwrap();
        assert_eq!(
            ok.uri.as_sip().unwrap().headers[0].value,
            "<sip:sip.example.com>"
        );
    }

    #[test]
    fn params_syntax() {
        assert_eq!(
            NameAddr::parse("\"Joe\" <sip:joe@example.org>;;;;"),
            Err(Defect::EmptyParam)
        );
        let na = NameAddr::parse(
            "<sip:a@b>;fromParam''~+*_!.-%=\"\u{440}\u{430}\";tag=_token~1'+`*%!-.;maddr=[::1]",
        )
        .unwrap();
        assert_eq!(na.params[0].value_unquoted().unwrap(), "\u{440}\u{430}");
        assert_eq!(na.tag().unwrap().as_str(), "_token~1'+`*%!-.");
        assert_eq!(NameAddr::parse(&na.to_string()).unwrap(), na);
        assert!(NameAddr::parse("<sip:a@b>;x=").is_err());
        assert!(NameAddr::parse("<sip:a@b> junk").is_err());
    }

    #[test]
    fn contact_q_and_expires() {
        let c = Contact::parse("\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\n newvalue ;  secondparam ; q = 0.33".replace('\n', " ").as_str()).unwrap();
        assert_eq!(c.q().unwrap(), Some(QValue(330)));
        assert_eq!(
            c.addr.param("newparam").unwrap().value.as_deref(),
            Some("newvalue")
        );
        assert!(c.addr.param("secondparam").unwrap().value.is_none());
        let c = Contact::parse("<sip:u@h>;expires=280297596632815").unwrap();
        assert!(c.expires().is_err());
        assert_eq!(QValue::parse("1").unwrap().thousandths(), 1000);
        assert!(QValue::parse("1.5").is_err());
        assert!(QValue::parse("0.1234").is_err());
        assert_eq!(
            NameAddr::parse("<sip:[2001:db8::2]:5070>")
                .unwrap()
                .uri
                .as_sip()
                .unwrap()
                .host,
            Host::V6("2001:db8::2".parse().unwrap())
        );
    }
}
