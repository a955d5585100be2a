//! SIP messages (RFC 3261 §7) and their canonical serialisation.

use std::fmt;

use super::grammar::is_token;
use super::headers::{HeaderName, Headers};
use super::uri::Uri;

/// A request method. Methods are case-sensitive: `invite` is an extension.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// REGISTER
    Register,
    /// INFO (RFC 6086)
    Info,
    /// REFER (RFC 3515)
    Refer,
    /// NOTIFY (RFC 6665)
    Notify,
    /// SUBSCRIBE (RFC 6665)
    Subscribe,
    /// UPDATE (RFC 3311)
    Update,
    /// PRACK (RFC 3262)
    Prack,
    /// MESSAGE (RFC 3428)
    Message,
    /// Any other token, as written (`%` is not an escape in a method).
    Extension(String),
}

/// A method that is not a token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("method is not a token")]
pub struct InvalidMethod;

impl Method {
    const KNOWN: [(&'static str, Method); 13] = [
        ("INVITE", Method::Invite),
        ("ACK", Method::Ack),
        ("BYE", Method::Bye),
        ("CANCEL", Method::Cancel),
        ("OPTIONS", Method::Options),
        ("REGISTER", Method::Register),
        ("INFO", Method::Info),
        ("REFER", Method::Refer),
        ("NOTIFY", Method::Notify),
        ("SUBSCRIBE", Method::Subscribe),
        ("UPDATE", Method::Update),
        ("PRACK", Method::Prack),
        ("MESSAGE", Method::Message),
    ];

    /// Parses a method token.
    pub fn parse(s: &str) -> Result<Method, InvalidMethod> {
        if !is_token(s) {
            return Err(InvalidMethod);
        }
        Ok(Method::KNOWN
            .into_iter()
            .find(|(name, _)| *name == s)
            .map_or_else(|| Method::Extension(s.to_owned()), |(_, m)| m))
    }

    /// The method as it goes on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Refer => "REFER",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Message => "MESSAGE",
            Method::Extension(s) => s,
        }
    }

    /// Whether this is one of the methods this stack knows.
    pub fn is_known(&self) -> bool {
        !matches!(self, Method::Extension(_))
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `SIP/major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SipVersion {
    /// Major version.
    pub major: u16,
    /// Minor version.
    pub minor: u16,
}

impl SipVersion {
    /// SIP/2.0, the only version this stack speaks.
    pub const V2_0: SipVersion = SipVersion { major: 2, minor: 0 };

    /// Parses `SIP/d+.d+` (`SIP` case-insensitive).
    pub fn parse(s: &str) -> Option<SipVersion> {
        let prefix = s.get(..4)?;
        if !prefix.eq_ignore_ascii_case("SIP/") {
            return None;
        }
        let (major, minor) = s.get(4..)?.split_once('.')?;
        let num = |d: &str| super::grammar::parse_digits(d).and_then(|v| u16::try_from(v).ok());
        Some(SipVersion {
            major: num(major)?,
            minor: num(minor)?,
        })
    }
}

impl fmt::Display for SipVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/{}.{}", self.major, self.minor)
    }
}

/// A response status code, 100..=699.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusCode(u16);

/// A status code outside 100..=699.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("status code {code} is outside 100..=699")]
pub struct InvalidStatusCode {
    /// The rejected value.
    pub code: u16,
}

impl StatusCode {
    /// 100 Trying
    pub const TRYING: StatusCode = StatusCode(100);
    /// 200 OK
    pub const OK: StatusCode = StatusCode(200);
    /// 400 Bad Request
    pub const BAD_REQUEST: StatusCode = StatusCode(400);
    /// 415 Unsupported Media Type
    pub const UNSUPPORTED_MEDIA_TYPE: StatusCode = StatusCode(415);
    /// 416 Unsupported URI Scheme
    pub const UNSUPPORTED_URI_SCHEME: StatusCode = StatusCode(416);
    /// 420 Bad Extension
    pub const BAD_EXTENSION: StatusCode = StatusCode(420);
    /// 501 Not Implemented
    pub const NOT_IMPLEMENTED: StatusCode = StatusCode(501);
    /// 505 Version Not Supported
    pub const VERSION_NOT_SUPPORTED: StatusCode = StatusCode(505);

    /// Checks the range.
    pub fn new(code: u16) -> Result<StatusCode, InvalidStatusCode> {
        if (100..=699).contains(&code) {
            Ok(StatusCode(code))
        } else {
            Err(InvalidStatusCode { code })
        }
    }

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// The RFC 3261 reason phrase for common codes, "" otherwise.
    pub fn canonical_reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            183 => "Session Progress",
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            481 => "Call/Transaction Does Not Exist",
            483 => "Too Many Hops",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "Version Not Supported",
            603 => "Decline",
            _ => "",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Request-URI.
    pub uri: Uri,
    /// Version from the request line.
    pub version: SipVersion,
    /// Headers in order (Content-Length excluded: it is `body.len()`).
    pub headers: Headers,
    /// Body bytes, exactly Content-Length of them.
    pub body: Vec<u8>,
}

/// A response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Version from the status line.
    pub version: SipVersion,
    /// Status code.
    pub status: StatusCode,
    /// Reason phrase as raw bytes (UTF-8 in practice, may be empty).
    pub reason: Vec<u8>,
    /// Headers in order (Content-Length excluded: it is `body.len()`).
    pub headers: Headers,
    /// Body bytes, exactly Content-Length of them.
    pub body: Vec<u8>,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipMessage {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

fn write_headers_and_body(headers: &Headers, body: &[u8], out: &mut Vec<u8>) {
    for h in headers {
        if *h.name() == HeaderName::ContentLength {
            continue;
        }
        out.extend_from_slice(h.name().as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"Content-Length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
}

impl Request {
    /// A response to this request per RFC 3261 §8.2.6.2: Via (all, in
    /// order), From, To, Call-ID and CSeq copied, no body. The caller adds the
    /// To tag (from its seeded source) and any other headers.
    pub fn make_response(&self, status: StatusCode, reason: &str) -> Response {
        let mut headers = Headers::new();
        for h in &self.headers {
            if matches!(
                h.name(),
                HeaderName::Via
                    | HeaderName::From
                    | HeaderName::To
                    | HeaderName::CallId
                    | HeaderName::CSeq
            ) {
                headers.push(h.clone());
            }
        }
        Response {
            version: SipVersion::V2_0,
            status,
            reason: reason
                .bytes()
                .filter(|&b| b != b'\r' && b != b'\n')
                .collect(),
            headers,
            body: Vec::new(),
        }
    }

    /// Appends the canonical wire form: CRLF line ends, long header names,
    /// one header per line, and a Content-Length computed from the body.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.uri.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        write_headers_and_body(&self.headers, &self.body, out);
    }
}

impl Response {
    /// Appends the canonical wire form (see [`Request::write_to`]).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.version.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.status.to_string().as_bytes());
        out.push(b' ');
        out.extend(self.reason.iter().filter(|&&b| b != b'\r' && b != b'\n'));
        out.extend_from_slice(b"\r\n");
        write_headers_and_body(&self.headers, &self.body, out);
    }
}

impl SipMessage {
    /// Appends the canonical wire form.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            SipMessage::Request(r) => r.write_to(out),
            SipMessage::Response(r) => r.write_to(out),
        }
    }

    /// The canonical wire form as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out);
        out
    }

    /// The headers.
    pub fn headers(&self) -> &Headers {
        match self {
            SipMessage::Request(r) => &r.headers,
            SipMessage::Response(r) => &r.headers,
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        match self {
            SipMessage::Request(r) => &r.body,
            SipMessage::Response(r) => &r.body,
        }
    }

    /// The request, if this is one.
    pub fn as_request(&self) -> Option<&Request> {
        match self {
            SipMessage::Request(r) => Some(r),
            SipMessage::Response(_) => None,
        }
    }

    /// The response, if this is one.
    pub fn as_response(&self) -> Option<&Response> {
        match self {
            SipMessage::Response(r) => Some(r),
            SipMessage::Request(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_case_sensitive_tokens() {
        assert_eq!(Method::parse("INVITE").unwrap(), Method::Invite);
        assert_eq!(
            Method::parse("invite").unwrap(),
            Method::Extension("invite".into())
        );
        assert_eq!(
            Method::parse("RE%47IST%45R").unwrap(),
            Method::Extension("RE%47IST%45R".into())
        );
        assert!(Method::parse("BAD METHOD").is_err());
        assert!(Method::parse("").is_err());
    }

    #[test]
    fn response_copies_the_mandatory_headers() {
        let raw = "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\nv: SIP/2.0/UDP h2;branch=z9hG4bK2\r\nMax-Forwards: 70\r\nf: <sip:x@y>;tag=1\r\nt: <sip:a@b>;tag=2\r\ni: c\r\nCSeq: 2 BYE\r\nl: 2\r\n\r\nhi";
        let SipMessage::Request(req) = super::super::parse_datagram(raw.as_bytes()).unwrap() else {
            panic!("request");
        };
        let resp = req.make_response(StatusCode::OK, "OK\r\nX: injected");
        assert_eq!(resp.reason, b"OKX: injected");
        let names: Vec<&str> = resp.headers.iter().map(|h| h.name().as_str()).collect();
        assert_eq!(names, ["Via", "Via", "From", "To", "Call-ID", "CSeq"]);
        let text = String::from_utf8(SipMessage::Response(resp).to_bytes()).unwrap();
        assert!(text
            .starts_with("SIP/2.0 200 OKX: injected\r\nVia: SIP/2.0/UDP h1;branch=z9hG4bK1\r\n"));
        assert!(text.ends_with("CSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"));
    }

    #[test]
    fn versions_and_codes() {
        assert_eq!(SipVersion::parse("SIP/2.0"), Some(SipVersion::V2_0));
        assert_eq!(
            SipVersion::parse("sip/7.0"),
            Some(SipVersion { major: 7, minor: 0 })
        );
        assert_eq!(SipVersion::parse("SIP/2"), None);
        assert_eq!(SipVersion::parse("SIP/99999999.0"), None);
        assert_eq!(SipVersion::parse("HTTP/1.1"), None);
        assert!(StatusCode::new(99).is_err());
        assert!(StatusCode::new(700).is_err());
        assert_eq!(StatusCode::new(699).unwrap().as_u16(), 699);
    }
}
