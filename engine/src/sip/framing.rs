//! Sans-IO framing of SIP over a byte stream (TCP, TLS; RFC 3261 §18.3).
//!
//! The driver pushes whatever the socket gave it and polls for messages.
//! CRLF keep-alives between messages are skipped. A message whose framing is
//! known but whose content is malformed is skipped with a non-fatal error; a
//! bad, duplicated or oversized Content-Length, or an oversized header
//! section, loses the framing for good: the framer returns that fatal error
//! once, then only `None`, and the driver must close the connection.

use super::message::SipMessage;
use super::parse::{
    build, content_length, find_head_end, leading_crlf_len, origin_of, split_head, ParseError,
    ParseErrorKind, MAX_HEAD_LEN,
};

/// Default cap on a message body on a stream.
pub const MAX_STREAM_BODY_LEN: usize = 1024 * 1024;

/// Size limits that keep memory bounded whatever the peer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerLimits {
    /// Longest header section (start line and headers).
    pub max_head: usize,
    /// Largest Content-Length accepted.
    pub max_body: usize,
}

impl Default for FramerLimits {
    fn default() -> Self {
        FramerLimits {
            max_head: MAX_HEAD_LEN,
            max_body: MAX_STREAM_BODY_LEN,
        }
    }
}

/// A framing outcome that is not a message.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A complete but malformed message was consumed; later messages on the
    /// stream are still framed.
    #[error("malformed message skipped: {0}")]
    Malformed(ParseError),
    /// The message boundary is lost: close the connection. Later polls
    /// return `None` and [`StreamFramer::is_failed`] stays true.
    #[error("stream framing lost, close the connection: {0}")]
    Fatal(ParseError),
}

impl FramingError {
    /// Whether the connection must be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, FramingError::Fatal(_))
    }

    /// The underlying parse error.
    pub fn parse_error(&self) -> &ParseError {
        match self {
            FramingError::Malformed(e) | FramingError::Fatal(e) => e,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    head_end: usize,
    total: usize,
}

/// Splits a byte stream into SIP messages. Feed with [`push`](Self::push),
/// drain with [`poll`](Self::poll) until it returns `None`.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// How far the search for the end of the header section got.
    scanned: usize,
    pending: Option<Pending>,
    limits: FramerLimits,
    failed: bool,
}

impl StreamFramer {
    /// A framer with the default limits.
    pub fn new() -> StreamFramer {
        StreamFramer::default()
    }

    /// A framer with the given limits.
    pub fn with_limits(limits: FramerLimits) -> StreamFramer {
        StreamFramer {
            limits,
            ..StreamFramer::default()
        }
    }

    /// Appends received bytes. Ignored once framing failed.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes held that are not yet part of a returned message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a fatal error happened (the connection should be closed).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    fn fail(&mut self, err: ParseError) -> Option<Result<SipMessage, FramingError>> {
        self.buf = Vec::new();
        self.pending = None;
        self.failed = true;
        Some(Err(FramingError::Fatal(err)))
    }

    /// The next message, a skipped malformed message, a fatal error, or
    /// `None` when more bytes are needed (or after a fatal error).
    pub fn poll(&mut self) -> Option<Result<SipMessage, FramingError>> {
        if self.failed {
            return None;
        }
        let pending = match self.pending {
            Some(p) => p,
            None => {
                let skip = leading_crlf_len(&self.buf);
                if skip > 0 {
                    self.buf.drain(..skip);
                    self.scanned = 0;
                }
                if self.buf.is_empty() {
                    return None;
                }
                let origin = origin_of(&self.buf);
                let too_large = ParseError::new(
                    ParseErrorKind::HeadTooLarge {
                        limit: self.limits.max_head,
                    },
                    origin,
                );
                let Some(head_end) = find_head_end(&self.buf, self.scanned.saturating_sub(3))
                else {
                    if self.buf.len() > self.limits.max_head.saturating_add(3) {
                        return self.fail(too_large);
                    }
                    self.scanned = self.buf.len();
                    return None;
                };
                if head_end > self.limits.max_head {
                    return self.fail(too_large);
                }
                let head = split_head(self.buf.get(..head_end).unwrap_or_default());
                let body_len = match content_length(&head, origin) {
                    Ok(cl) => cl.unwrap_or(0),
                    Err(e) => return self.fail(e),
                };
                if body_len > self.limits.max_body {
                    return self.fail(ParseError::new(
                        ParseErrorKind::BodyTooLarge {
                            declared: body_len,
                            limit: self.limits.max_body,
                        },
                        origin,
                    ));
                }
                let p = Pending {
                    head_end,
                    total: head_end + 4 + body_len,
                };
                self.pending = Some(p);
                p
            }
        };
        if self.buf.len() < pending.total {
            return None;
        }
        let origin = origin_of(&self.buf);
        let result = {
            let head = split_head(self.buf.get(..pending.head_end).unwrap_or_default());
            let body = self
                .buf
                .get(pending.head_end + 4..pending.total)
                .unwrap_or_default()
                .to_vec();
            build(&head, body, origin)
        };
        self.buf.drain(..pending.total);
        self.pending = None;
        self.scanned = 0;
        Some(result.map_err(FramingError::Malformed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";

    fn drain(f: &mut StreamFramer) -> Vec<Result<SipMessage, FramingError>> {
        let mut out = Vec::new();
        while let Some(r) = f.poll() {
            let fatal = matches!(&r, Err(e) if e.is_fatal());
            out.push(r);
            if fatal {
                break;
            }
        }
        out
    }

    #[test]
    fn byte_at_a_time_with_keepalives() {
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(OPTIONS);
        let mut f = StreamFramer::new();
        let mut got = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            got.extend(drain(&mut f));
        }
        assert_eq!(got.len(), 2);
        for m in got {
            assert_eq!(m.unwrap().body(), b"hello");
        }
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn malformed_message_is_skipped() {
        let mut stream = b"OPTIONS <sip:a@b> SIP/2.0\r\nl: 2\r\n\r\nxx".to_vec();
        stream.extend_from_slice(OPTIONS);
        let mut f = StreamFramer::new();
        f.push(&stream);
        let got = drain(&mut f);
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Err(FramingError::Malformed(_))));
        assert!(got[1].is_ok());
    }

    #[test]
    fn bad_content_length_is_fatal_once_then_silent() {
        let mut f = StreamFramer::new();
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n");
        assert!(matches!(f.poll(), Some(Err(FramingError::Fatal(_)))));
        assert!(f.poll().is_none());
        f.push(OPTIONS);
        assert!(f.poll().is_none());
        assert!(f.is_failed());
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn limits() {
        let mut f = StreamFramer::with_limits(FramerLimits {
            max_head: 64,
            max_body: 4,
        });
        f.push(OPTIONS);
        assert!(matches!(f.poll(), Some(Err(FramingError::Fatal(_)))));

        let mut f = StreamFramer::with_limits(FramerLimits {
            max_head: 100,
            max_body: 1000,
        });
        f.push(&[b'a'; 103]);
        assert!(f.poll().is_none());
        f.push(b"a");
        let e = f.poll().unwrap().unwrap_err();
        assert!(matches!(
            e.parse_error().kind(),
            ParseErrorKind::HeadTooLarge { limit: 100 }
        ));
    }

    #[test]
    fn waits_for_the_body() {
        let mut f = StreamFramer::new();
        f.push(OPTIONS.get(..OPTIONS.len() - 1).unwrap());
        assert!(f.poll().is_none());
        f.push(b"o");
        assert!(f.poll().unwrap().is_ok());
        assert!(f.poll().is_none());
    }
}
