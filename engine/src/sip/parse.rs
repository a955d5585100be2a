//! Message parsing (RFC 3261 §7, §18.3 framing) shared by the datagram
//! parser and the [`StreamFramer`](super::StreamFramer).
//!
//! The header section is split into logical lines (folding undone), the
//! `Content-Length` is read to frame the body, and only then are the start
//! line and header names checked, so a stream can skip a malformed message
//! whose framing is still known.

use std::borrow::Cow;
use std::fmt;

use super::grammar::{is_wsp, parse_digits, trim_lws_bytes};
use super::headers::{truncated, Header, HeaderName, Headers};
use super::message::{Method, Request, Response, SipMessage, SipVersion, StatusCode};
use super::uri::{Uri, UriError};

/// Default cap on the header section (start line + headers).
pub const MAX_HEAD_LEN: usize = 64 * 1024;

/// Whether a failed message was a request or a response (from its first
/// bytes), which decides between answering 400 and dropping silently.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The start line does not begin with `SIP/`.
    Request,
    /// The start line begins with `SIP/`.
    Response,
    /// Nothing to tell from.
    Unknown,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Request => "request",
            Origin::Response => "response",
            Origin::Unknown => "message",
        })
    }
}

/// What is wrong with the bytes.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// Empty input, or only CRLF keep-alives.
    #[error("no message")]
    Empty,
    /// No empty line ends the header section.
    #[error("header section is not terminated by an empty line")]
    UnterminatedHead,
    /// The header section is over the limit.
    #[error("header section longer than {limit} bytes")]
    HeadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A CR or LF that is not part of a CRLF line end, in the header section.
    #[error("bare CR or LF in line {line}")]
    BareLineBreak {
        /// 1-based physical line.
        line: usize,
    },
    /// The request line is not UTF-8.
    #[error("start line is not UTF-8")]
    StartLineNotUtf8,
    /// The request line is not `Method SP Request-URI SP SIP-Version`.
    #[error("request line has {parts} parts, expected 3")]
    RequestLineShape {
        /// Number of SP-separated parts found.
        parts: usize,
    },
    /// The method is not a token.
    #[error("method is not a token")]
    BadMethod,
    /// The Request-URI does not parse.
    #[error("invalid Request-URI: {0}")]
    BadRequestUri(UriError),
    /// The version is not `SIP/digits.digits`.
    #[error("invalid SIP version {found:?}")]
    BadVersion {
        /// As written (truncated).
        found: String,
    },
    /// The status code is not three digits in 100..=699.
    #[error("invalid status code {found:?}")]
    BadStatusCode {
        /// As written (truncated).
        found: String,
    },
    /// A header line without `:`.
    #[error("header line {line} has no colon")]
    MissingColon {
        /// 1-based logical line (the start line is line 1).
        line: usize,
    },
    /// A header name that is not a token (or a folded line right after the
    /// start line).
    #[error("header line {line} has an invalid name")]
    BadHeaderName {
        /// 1-based logical line.
        line: usize,
    },
    /// Content-Length is not `1*DIGIT` (negative, non-numeric, huge).
    #[error("invalid Content-Length {value:?}")]
    BadContentLength {
        /// As written (truncated).
        value: String,
    },
    /// More than one Content-Length header.
    #[error("{count} Content-Length headers")]
    DuplicateContentLength {
        /// How many.
        count: usize,
    },
    /// A datagram shorter than its Content-Length says.
    #[error("Content-Length {declared} but only {available} body bytes")]
    BodyTruncated {
        /// Content-Length.
        declared: usize,
        /// Bytes after the header section.
        available: usize,
    },
    /// Content-Length over the stream framer's body limit.
    #[error("Content-Length {declared} over the {limit}-byte limit")]
    BodyTooLarge {
        /// Content-Length.
        declared: usize,
        /// The limit.
        limit: usize,
    },
}

/// A message that could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed SIP {origin}: {kind}")]
pub struct ParseError {
    kind: ParseErrorKind,
    origin: Origin,
}

impl ParseError {
    pub(crate) fn new(kind: ParseErrorKind, origin: Origin) -> ParseError {
        ParseError { kind, origin }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// Whether it looked like a request or a response.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Errors after which a stream cannot find the next message boundary.
    pub fn is_framing_error(&self) -> bool {
        matches!(
            self.kind,
            ParseErrorKind::HeadTooLarge { .. }
                | ParseErrorKind::BadContentLength { .. }
                | ParseErrorKind::DuplicateContentLength { .. }
                | ParseErrorKind::BodyTruncated { .. }
                | ParseErrorKind::BodyTooLarge { .. }
        )
    }
}

pub(crate) fn origin_of(buf: &[u8]) -> Origin {
    match buf.get(..4) {
        Some(p) if p.eq_ignore_ascii_case(b"SIP/") => Origin::Response,
        _ if buf.is_empty() => Origin::Unknown,
        _ => Origin::Request,
    }
}

/// Length of the run of CRLF pairs at the start of `buf`.
pub(crate) fn leading_crlf_len(buf: &[u8]) -> usize {
    let mut n = 0;
    while buf.get(n..n + 2) == Some(b"\r\n") {
        n += 2;
    }
    n
}

/// Offset of the `\r\n\r\n` that ends the header section, searching from `from`.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let hay = buf.get(from..)?;
    memchr::memmem::find(hay, b"\r\n\r\n").map(|i| i + from)
}

/// The header section split into the start line and logical header lines.
pub(crate) struct Head<'a> {
    start: &'a [u8],
    /// Unfolded header lines with their 1-based logical line number.
    lines: Vec<Cow<'a, [u8]>>,
    bare_break: Option<usize>,
}

/// `head` is everything before the `\r\n\r\n`.
pub(crate) fn split_head(head: &[u8]) -> Head<'_> {
    let mut physical = SplitCrlf { rest: Some(head) };
    let mut bare_break = None;
    let mut note_bare = |bare: bool, no: usize| {
        if bare && bare_break.is_none() {
            bare_break = Some(no);
        }
    };
    let (start, bare) = physical.next().unwrap_or_default();
    note_bare(bare, 1);
    let mut lines: Vec<Cow<'_, [u8]>> = Vec::with_capacity(16);
    for (i, (line, bare)) in physical.enumerate() {
        note_bare(bare, i + 2);
        let folded = line.first().is_some_and(|&b| is_wsp(b));
        match lines.last_mut() {
            Some(prev) if folded => {
                let prev = prev.to_mut();
                prev.push(b' ');
                prev.extend_from_slice(line);
            }
            _ => lines.push(Cow::Borrowed(line)),
        }
    }
    Head {
        start,
        lines,
        bare_break,
    }
}

/// Physical lines split on CRLF, each with whether it holds a bare CR or LF.
struct SplitCrlf<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for SplitCrlf<'a> {
    type Item = (&'a [u8], bool);
    fn next(&mut self) -> Option<(&'a [u8], bool)> {
        let rest = self.rest?;
        let mut from = 0;
        let mut bare = false;
        loop {
            let found = rest
                .get(from..)
                .and_then(|r| memchr::memchr2(b'\r', b'\n', r))
                .map(|i| i + from);
            match found {
                Some(i) if rest.get(i..i + 2) == Some(b"\r\n") => {
                    self.rest = rest.get(i + 2..);
                    return rest.get(..i).map(|line| (line, bare));
                }
                Some(i) => {
                    bare = true;
                    from = i + 1;
                }
                None => {
                    self.rest = None;
                    return Some((rest, bare));
                }
            }
        }
    }
}

fn split_colon(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = line.iter().position(|&b| b == b':')?;
    Some((line.get(..i)?, line.get(i + 1..)?))
}

fn is_content_length_name(name: &[u8]) -> bool {
    let name = trim_lws_bytes(name);
    name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")
}

/// The Content-Length of the head, if any. Any defect here is a framing error.
pub(crate) fn content_length(head: &Head<'_>, origin: Origin) -> Result<Option<usize>, ParseError> {
    let mut values = head
        .lines
        .iter()
        .filter_map(|l| split_colon(l))
        .filter(|(name, _)| is_content_length_name(name))
        .map(|(_, value)| trim_lws_bytes(value));
    let Some(first) = values.next() else {
        return Ok(None);
    };
    let extra = values.count();
    if extra > 0 {
        return Err(ParseError::new(
            ParseErrorKind::DuplicateContentLength { count: extra + 1 },
            origin,
        ));
    }
    let text = std::str::from_utf8(first).unwrap_or("");
    parse_digits(text)
        .and_then(|v| usize::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            ParseError::new(
                ParseErrorKind::BadContentLength {
                    value: truncated(&String::from_utf8_lossy(first)),
                },
                origin,
            )
        })
}

/// Builds the message once the body is framed.
pub(crate) fn build(
    head: &Head<'_>,
    body: Vec<u8>,
    origin: Origin,
) -> Result<SipMessage, ParseError> {
    let err = |kind| ParseError::new(kind, origin);
    if let Some(line) = head.bare_break {
        return Err(err(ParseErrorKind::BareLineBreak { line }));
    }
    let mut headers = Headers::new();
    for (i, line) in head.lines.iter().enumerate() {
        let line_no = i + 2;
        let (name, value) =
            split_colon(line).ok_or_else(|| err(ParseErrorKind::MissingColon { line: line_no }))?;
        let name = std::str::from_utf8(name)
            .ok()
            .map(|n| n.trim_end_matches([' ', '\t']))
            .and_then(|n| HeaderName::parse(n).ok())
            .ok_or_else(|| err(ParseErrorKind::BadHeaderName { line: line_no }))?;
        if name == HeaderName::ContentLength {
            continue;
        }
        headers.push(Header::from_parts(name, trim_lws_bytes(value).to_vec()));
    }
    match origin {
        Origin::Response => {
            let (version, status, reason) = parse_status_line(head.start).map_err(err)?;
            Ok(SipMessage::Response(Response {
                version,
                status,
                reason,
                headers,
                body,
            }))
        }
        Origin::Request | Origin::Unknown => {
            let (method, uri, version) = parse_request_line(head.start).map_err(err)?;
            Ok(SipMessage::Request(Request {
                method,
                uri,
                version,
                headers,
                body,
            }))
        }
    }
}

/// `Method SP Request-URI SP SIP-Version`. Runs of SP (and trailing SP) are
/// tolerated, as RFC 4475 §3.1.2.9/§3.1.2.10 allow; LWS inside the URI is not.
fn parse_request_line(line: &[u8]) -> Result<(Method, Uri, SipVersion), ParseErrorKind> {
    let line = std::str::from_utf8(line).map_err(|_| ParseErrorKind::StartLineNotUtf8)?;
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        let count = line.split(' ').filter(|p| !p.is_empty()).count();
        return Err(ParseErrorKind::RequestLineShape { parts: count });
    };
    let method = Method::parse(method).map_err(|_| ParseErrorKind::BadMethod)?;
    let uri = Uri::parse(uri).map_err(ParseErrorKind::BadRequestUri)?;
    let version = SipVersion::parse(version).ok_or_else(|| ParseErrorKind::BadVersion {
        found: truncated(version),
    })?;
    Ok((method, uri, version))
}

/// `SIP-Version SP Status-Code SP Reason-Phrase`; the reason may be empty
/// and is kept as raw bytes.
fn parse_status_line(line: &[u8]) -> Result<(SipVersion, StatusCode, Vec<u8>), ParseErrorKind> {
    let sp = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let (version, rest) = line.split_at(sp);
    let version_str = std::str::from_utf8(version).unwrap_or("");
    let version = SipVersion::parse(version_str).ok_or_else(|| ParseErrorKind::BadVersion {
        found: truncated(&String::from_utf8_lossy(version)),
    })?;
    let rest = rest.get(1..).unwrap_or_default();
    let sp = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let (code, reason) = rest.split_at(sp);
    let bad = || ParseErrorKind::BadStatusCode {
        found: truncated(&String::from_utf8_lossy(code)),
    };
    if code.len() != 3 {
        return Err(bad());
    }
    let code = std::str::from_utf8(code)
        .ok()
        .and_then(parse_digits)
        .and_then(|v| u16::try_from(v).ok())
        .ok_or_else(bad)?;
    let status = StatusCode::new(code).map_err(|_| bad())?;
    let reason = reason.get(1..).unwrap_or_default().to_vec();
    Ok((version, status, reason))
}

/// Parses one UDP datagram (RFC 3261 §18.3): bytes beyond Content-Length are
/// ignored; without Content-Length the body is the rest of the datagram; a
/// Content-Length larger than what arrived is an error.
pub fn parse_datagram(datagram: &[u8]) -> Result<SipMessage, ParseError> {
    let buf = datagram
        .get(leading_crlf_len(datagram)..)
        .unwrap_or_default();
    let origin = origin_of(buf);
    let err = |kind| ParseError::new(kind, origin);
    if buf.is_empty() {
        return Err(err(ParseErrorKind::Empty));
    }
    let head_end = find_head_end(buf, 0).ok_or_else(|| {
        if buf.len() > MAX_HEAD_LEN {
            err(ParseErrorKind::HeadTooLarge {
                limit: MAX_HEAD_LEN,
            })
        } else {
            err(ParseErrorKind::UnterminatedHead)
        }
    })?;
    if head_end > MAX_HEAD_LEN {
        return Err(err(ParseErrorKind::HeadTooLarge {
            limit: MAX_HEAD_LEN,
        }));
    }
    let head = split_head(buf.get(..head_end).unwrap_or_default());
    let available = buf.get(head_end + 4..).unwrap_or_default();
    let body = match content_length(&head, origin)? {
        None => available,
        Some(declared) => available.get(..declared).ok_or_else(|| {
            err(ParseErrorKind::BodyTruncated {
                declared,
                available: available.len(),
            })
        })?,
    };
    build(&head, body.to_vec(), origin)
}

impl std::str::FromStr for SipMessage {
    type Err = ParseError;
    /// Parses one complete message as a datagram.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_datagram(s.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Contacts, HeaderName};

    const BASIC: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        To: Bob <sip:bob@example.com>\r\n\
        From: Alice <sip:alice@example.com>;tag=1928301774\r\n\
        Call-ID: a84b4c76e66710@pc33.example.com\r\n\
        CSeq: 314159 INVITE\r\n\
        Contact: <sip:alice@pc33.example.com>\r\n\
        Content-Type: application/sdp\r\n\
        Content-Length: 4\r\n\
        \r\n\
        v=0\n";

    fn req(bytes: &[u8]) -> Request {
        match parse_datagram(bytes).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("response"),
        }
    }

    #[test]
    fn basic_invite() {
        let r = req(BASIC.as_bytes());
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.body, b"v=0\n");
        assert_eq!(r.headers.cseq().unwrap().seq, 314159);
        assert_eq!(
            r.headers.from().unwrap().tag().unwrap().as_str(),
            "1928301774"
        );
        assert_eq!(r.headers.len(), 8);
    }

    #[test]
    fn folding_is_undone() {
        let msg = "OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\tthree\r\nVia: SIP/2.0/UDP h\r\n ;branch=z9hG4bKx\r\nl: 0\r\n\r\n";
        let r = req(msg.as_bytes());
        let subject = r.headers.get(&HeaderName::Subject).unwrap();
        assert_eq!(subject.value(), b"one  two \tthree");
        assert_eq!(
            r.headers.top_via().unwrap().branch().unwrap().as_str(),
            "z9hG4bKx"
        );
        // A folded line right after the start line has no header to join.
        let bad = "OPTIONS sip:a@b SIP/2.0\r\n folded: x\r\n\r\n";
        assert_eq!(
            parse_datagram(bad.as_bytes()).unwrap_err().kind(),
            &ParseErrorKind::BadHeaderName { line: 2 }
        );
    }

    #[test]
    fn compact_forms_parse_to_long_names() {
        let msg = "REGISTER sip:example.com SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKa\r\nf: <sip:a@b>;tag=1\r\nt: sip:a@b\r\ni: cid\r\nCSeq: 1 REGISTER\r\nm: <sip:a@h>, <sip:b@h>;q=0.5\r\nk: path, gruu\r\nc: text/plain\r\nL:3\r\n\r\nabc";
        let r = req(msg.as_bytes());
        assert_eq!(r.headers.call_id().unwrap().as_str(), "cid");
        assert_eq!(r.headers.supported().unwrap().len(), 2);
        assert!(r
            .headers
            .content_type()
            .unwrap()
            .unwrap()
            .is("text", "plain"));
        match r.headers.contacts().unwrap().unwrap() {
            Contacts::List(l) => assert_eq!(l.len(), 2),
            Contacts::Star => panic!("star"),
        }
        assert_eq!(r.body, b"abc");
        let mut out = Vec::new();
        r.write_to(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\n"));
        assert!(text.contains("\r\nContact: <sip:a@h>, <sip:b@h>;q=0.5\r\n"));
        assert!(text.ends_with("\r\nContent-Length: 3\r\n\r\nabc"));
    }

    #[test]
    fn udp_body_framing() {
        // Trailing bytes beyond Content-Length are ignored.
        let mut bytes = BASIC.as_bytes().to_vec();
        bytes.extend_from_slice(b"garbage");
        assert_eq!(req(&bytes).body, b"v=0\n");
        // No Content-Length: the body is the rest of the datagram.
        let no_cl = BASIC.replace("Content-Length: 4\r\n", "");
        assert_eq!(req(no_cl.as_bytes()).body, b"v=0\n");
        // Too short.
        let short = BASIC.replace("Content-Length: 4", "Content-Length: 5");
        assert_eq!(
            parse_datagram(short.as_bytes()).unwrap_err().kind(),
            &ParseErrorKind::BodyTruncated {
                declared: 5,
                available: 4
            }
        );
        for bad in ["-1", "five", "", "+4", "99999999999999999999999"] {
            let m = BASIC.replace("Content-Length: 4", &format!("Content-Length: {bad}"));
            let e = parse_datagram(m.as_bytes()).unwrap_err();
            assert!(
                matches!(e.kind(), ParseErrorKind::BadContentLength { .. }),
                "{bad}"
            );
            assert!(e.is_framing_error());
            assert_eq!(e.origin(), Origin::Request);
        }
    }

    #[test]
    fn status_lines() {
        let ok = |line: &str| {
            let m = format!("{line}\r\nContent-Length: 0\r\n\r\n");
            match parse_datagram(m.as_bytes()).unwrap() {
                SipMessage::Response(r) => (r.status.as_u16(), r.reason),
                SipMessage::Request(_) => panic!("request"),
            }
        };
        assert_eq!(ok("SIP/2.0 200 OK"), (200, b"OK".to_vec()));
        assert_eq!(ok("SIP/2.0 100 "), (100, Vec::new()));
        assert_eq!(ok("SIP/2.0 180"), (180, Vec::new()));
        assert_eq!(
            ok("SIP/2.0 486 Busy  Here "),
            (486, b"Busy  Here ".to_vec())
        );
        for bad in [
            "SIP/2.0 4294967301 x",
            "SIP/2.0 099 x",
            "SIP/2.0 700 x",
            "SIP/2.0 20 x",
            "SIP/2.0 abc x",
            "SIP/x 200 OK",
        ] {
            let m = format!("{bad}\r\n\r\n");
            let e = parse_datagram(m.as_bytes()).unwrap_err();
            assert_eq!(e.origin(), Origin::Response, "{bad}");
        }
    }

    #[test]
    fn request_line_shapes() {
        let line = |l: &str| parse_datagram(format!("{l}\r\nl: 0\r\n\r\n").as_bytes());
        assert!(line("INVITE  sip:a@b  SIP/2.0").is_ok());
        assert!(line("INVITE sip:a@b SIP/2.0  ").is_ok());
        assert!(line("INVITE sip:a@b; lr SIP/2.0").is_err());
        assert!(line("INVITE <sip:a@b> SIP/2.0").is_err());
        assert!(line("INVITE sip:a@b").is_err());
        assert!(line("INV ITE sip:a@b SIP/2.0").is_err());
        assert!(line("INVITE sip:a@b HTTP/1.1").is_err());
        assert!(parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nBad\nLine: x\r\n\r\n").is_err());
        assert!(parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nNoColon\r\n\r\n").is_err());
        assert!(parse_datagram(b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n").is_err());
        assert_eq!(
            parse_datagram(b"\r\n\r\n").unwrap_err().kind(),
            &ParseErrorKind::Empty
        );
    }

    #[test]
    fn unknown_headers_kept_in_order() {
        let msg = "OPTIONS sip:a@b SIP/2.0\r\nX-B: 2\r\nC%6Fntact: <sip:x@y>\r\nX-A:1\r\nWeird: ;;,,;;,;\r\nl: 0\r\n\r\n";
        let r = req(msg.as_bytes());
        let names: Vec<&str> = r.headers.iter().map(|h| h.name().as_str()).collect();
        assert_eq!(names, ["X-B", "C%6Fntact", "X-A", "Weird"]);
        assert_eq!(r.headers.iter().nth(3).unwrap().value(), b";;,,;;,;");
        assert!(r.headers.contacts().unwrap().is_none());
    }

    #[test]
    fn round_trip() {
        let msgs = [
            BASIC.to_owned(),
            "SIP/2.0 200 = 2**3 \u{43d}\u{43e}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nX: y\r\nl: 0\r\n\r\n".to_owned(),
            "MESSAGE sip:%61%20b@[::1]:5060;transport=tcp?Subject=hi%20there SIP/2.0\r\ni: x\r\ns:\r\n\r\nbody-without-cl".to_owned(),
        ];
        for m in msgs {
            let first = parse_datagram(m.as_bytes()).unwrap();
            let again = parse_datagram(&first.to_bytes()).unwrap();
            assert_eq!(first, again);
        }
    }
}
