//! What a UAS answers to a request it cannot process (RFC 3261 §8.2, §16.3
//! syntax checks) and which responses are dropped.
//!
//! These are pure functions over parsed messages; building and sending the
//! actual response is the transaction layer's job.

use super::headers::{HeaderError, HeaderName, Headers};
use super::message::{Method, Request, Response, SipVersion, StatusCode};
use super::parse::{Origin, ParseError};
use super::uri::Uri;
use super::values::OptionTag;

/// Why a request is refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectCause {
    /// The bytes did not parse as a message.
    #[error(transparent)]
    Unparsable(ParseError),
    /// Request line version other than SIP/2.0.
    #[error("version {version} not supported")]
    Version {
        /// The version received.
        version: SipVersion,
    },
    /// A mandatory header is missing, repeated or malformed.
    #[error(transparent)]
    Header(HeaderError),
    /// A method this stack does not implement.
    #[error("method {method} not implemented")]
    UnknownMethod {
        /// The method.
        method: Method,
    },
    /// CSeq method differs from the request method.
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch {
        /// Request-line method.
        method: Method,
        /// CSeq method.
        cseq: Method,
    },
    /// The Request-URI carries `?headers` (RFC 4475 §3.1.2.11).
    #[error("Request-URI must not carry headers")]
    RequestUriHeaders,
    /// A Request-URI scheme other than sip, sips or tel.
    #[error("unsupported Request-URI scheme {scheme:?}")]
    UriScheme {
        /// The scheme.
        scheme: String,
    },
    /// Require lists extensions the UAS does not support.
    #[error("unsupported extensions required")]
    BadExtension {
        /// The option tags to list in the 420's Unsupported header.
        unsupported: Vec<OptionTag>,
    },
}

/// The response a UAS should send instead of processing a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {reason}")]
pub struct Rejection {
    /// Status code to answer with.
    pub status: StatusCode,
    /// Reason phrase (never carries bytes from the request other than a
    /// header name, so it is safe to send).
    pub reason: String,
    /// The detail, for logs and for headers such as Unsupported.
    pub cause: RejectCause,
}

fn header_reason(e: &HeaderError) -> String {
    match e {
        HeaderError::Missing { name } => format!("Bad Request (missing {name})"),
        HeaderError::Duplicate { name, .. } => format!("Bad Request (duplicate {name})"),
        HeaderError::Invalid { name, .. } => format!("Bad Request (invalid {name})"),
        _ => "Bad Request (invalid header)".to_owned(),
    }
}

impl Rejection {
    fn bad_header(e: HeaderError) -> Rejection {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            reason: header_reason(&e),
            cause: RejectCause::Header(e),
        }
    }

    fn with(status: StatusCode, reason: &str, cause: RejectCause) -> Rejection {
        Rejection {
            status,
            reason: reason.to_owned(),
            cause,
        }
    }
}

impl ParseError {
    /// For unparsable input: `Some(400)` if it looked like a request, `None`
    /// (drop silently) for a response or unidentifiable bytes. A transport
    /// can only send the 400 if it can still find Via, From, To, Call-ID and
    /// CSeq; otherwise it drops too.
    pub fn rejection(&self) -> Option<Rejection> {
        match self.origin() {
            Origin::Request => Some(Rejection::with(
                StatusCode::BAD_REQUEST,
                "Bad Request (malformed message)",
                RejectCause::Unparsable(self.clone()),
            )),
            _ => None,
        }
    }
}

/// Headers every request and response must carry in a parseable form.
fn check_common(h: &Headers) -> Result<(), HeaderError> {
    let vias = h.vias()?;
    if vias.is_empty() {
        return Err(HeaderError::Missing {
            name: HeaderName::Via,
        });
    }
    h.cseq()?;
    h.call_id()?;
    h.from()?;
    h.to()?;
    Ok(())
}

/// Message-layer checks a UAS applies before acting on a request, in the
/// order of RFC 3261 §8.2: 505 for a version other than 2.0; 400 for a
/// missing, repeated or malformed Via, CSeq, Call-ID, From, To, Max-Forwards,
/// Contact, Route, Record-Route, Content-Type or Require; 501 for an
/// extension method; 400 for a CSeq method that differs from the request
/// method; 400 for a Request-URI with headers; 416 for a Request-URI that is
/// not sip, sips or tel.
///
/// Max-Forwards may be absent (RFC 2543 peers); Expires is not checked (a
/// bad value falls back to the default, RFC 4475 §3.1.2.4). Application
/// decisions (405, 415, 420, 483, 401) are not taken here; see
/// [`check_require`].
pub fn check_request(req: &Request) -> Result<(), Rejection> {
    if req.version != SipVersion::V2_0 {
        return Err(Rejection::with(
            StatusCode::VERSION_NOT_SUPPORTED,
            "Version Not Supported",
            RejectCause::Version {
                version: req.version,
            },
        ));
    }
    let h = &req.headers;
    check_common(h).map_err(Rejection::bad_header)?;
    let optional = || -> Result<(), HeaderError> {
        h.max_forwards()?;
        h.contacts()?;
        h.routes()?;
        h.record_routes()?;
        h.content_type()?;
        h.require()?;
        Ok(())
    };
    optional().map_err(Rejection::bad_header)?;
    if !req.method.is_known() {
        return Err(Rejection::with(
            StatusCode::NOT_IMPLEMENTED,
            "Not Implemented",
            RejectCause::UnknownMethod {
                method: req.method.clone(),
            },
        ));
    }
    let cseq = h.cseq().map_err(Rejection::bad_header)?;
    if cseq.method != req.method {
        return Err(Rejection::with(
            StatusCode::BAD_REQUEST,
            "Bad Request (CSeq method mismatch)",
            RejectCause::CSeqMethodMismatch {
                method: req.method.clone(),
                cseq: cseq.method,
            },
        ));
    }
    match &req.uri {
        Uri::Sip(u) if !u.headers.is_empty() => Err(Rejection::with(
            StatusCode::BAD_REQUEST,
            "Bad Request (headers in Request-URI)",
            RejectCause::RequestUriHeaders,
        )),
        Uri::Sip(_) | Uri::Tel(_) => Ok(()),
        other => Err(Rejection::with(
            StatusCode::UNSUPPORTED_URI_SCHEME,
            "Unsupported URI Scheme",
            RejectCause::UriScheme {
                scheme: other.scheme().to_owned(),
            },
        )),
    }
}

/// RFC 3261 §8.2.2.3: 420 listing the Require option tags not in
/// `supported` (compared case-insensitively). ACK and CANCEL are exempt.
pub fn check_require(req: &Request, supported: &[&str]) -> Result<(), Rejection> {
    if matches!(req.method, Method::Ack | Method::Cancel) {
        return Ok(());
    }
    let required = req.headers.require().map_err(Rejection::bad_header)?;
    let unsupported: Vec<OptionTag> = required
        .into_iter()
        .filter(|t| !supported.iter().any(|s| s.eq_ignore_ascii_case(t.as_str())))
        .collect();
    if unsupported.is_empty() {
        Ok(())
    } else {
        Err(Rejection::with(
            StatusCode::BAD_EXTENSION,
            "Bad Extension",
            RejectCause::BadExtension { unsupported },
        ))
    }
}

/// Why a received response must be dropped.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseDefect {
    /// Status line version other than SIP/2.0.
    #[error("version {version} not supported")]
    Version {
        /// The version received.
        version: SipVersion,
    },
    /// Via, CSeq, Call-ID, From or To missing, repeated or malformed
    /// (e.g. a CSeq number over 32 bits).
    #[error(transparent)]
    Header(#[from] HeaderError),
}

/// Checks a response is usable for transaction matching; on error the
/// response is discarded silently (RFC 3261 §18.1.2, RFC 4475 §3.1.2.5).
pub fn check_response(resp: &Response) -> Result<(), ResponseDefect> {
    if resp.version != SipVersion::V2_0 {
        return Err(ResponseDefect::Version {
            version: resp.version,
        });
    }
    check_common(&resp.headers)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{parse_datagram, SipMessage};

    fn req(s: &str) -> Request {
        match parse_datagram(s.as_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("response"),
        }
    }

    const BASE: &str = "OPTIONS sip:u@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:u@example.com>\r\nFrom: <sip:c@example.com>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nl: 0\r\n\r\n";

    #[test]
    fn ok_and_each_failure() {
        assert_eq!(check_request(&req(BASE)), Ok(()));
        let status = |s: String| check_request(&req(&s)).unwrap_err().status.as_u16();
        assert_eq!(
            status(BASE.replace("SIP/2.0\r\nVia", "SIP/3.0\r\nVia")),
            505
        );
        assert_eq!(status(BASE.replace("Call-ID: x\r\n", "")), 400);
        assert_eq!(
            status(BASE.replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE")),
            400
        );
        assert_eq!(
            status(
                BASE.replace("OPTIONS sip", "FOO sip")
                    .replace("1 OPTIONS", "1 FOO")
            ),
            501
        );
        assert_eq!(
            status(BASE.replace("sip:u@example.com SIP", "sip:u@example.com?X=y SIP")),
            400
        );
        assert_eq!(
            status(BASE.replace("sip:u@example.com SIP", "urn:x SIP")),
            416
        );
        assert_eq!(
            status(BASE.replace("Max-Forwards: 70", "Max-Forwards: 256")),
            400
        );
        let r = check_request(&req(&BASE.replace("Call-ID: x", "Call-ID: x\r\nCall-ID: y")))
            .unwrap_err();
        assert_eq!(r.reason, "Bad Request (duplicate Call-ID)");
    }

    #[test]
    fn require() {
        let r = req(&BASE.replace("l: 0", "Require: 100rel, foo\r\nl: 0"));
        assert_eq!(check_request(&r), Ok(()));
        let e = check_require(&r, &["100REL"]).unwrap_err();
        assert_eq!(e.status.as_u16(), 420);
        assert_eq!(
            e.cause,
            RejectCause::BadExtension {
                unsupported: vec![OptionTag::new("foo").unwrap()]
            }
        );
        assert!(check_require(&r, &["100rel", "foo"]).is_ok());
    }
}
