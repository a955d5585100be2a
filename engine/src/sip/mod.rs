//! The SIP message layer (RFC 3261 §7, §20, §25): parsing, stream framing,
//! typed header access, canonical serialisation and the message-level checks
//! a UAS runs before acting on a request.
//!
//! Everything here is sans-IO and clock-free. Bytes go in through
//! [`parse_datagram`] (UDP: one message per datagram) or a [`StreamFramer`]
//! (TCP/TLS: push bytes, poll messages); a [`SipMessage`] comes out, or an
//! error value. No input makes the parser panic.
//!
//! ```
//! use vocelio_engine::sip::{parse_datagram, check_request, SipMessage};
//!
//! let bytes = b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP host.example.com;branch=z9hG4bK74bf9\r\n\
//!     Max-Forwards: 70\r\n\
//!     To: <sip:bob@example.com>\r\n\
//!     From: Alice <sip:alice@example.com>;tag=9fxced76sl\r\n\
//!     Call-ID: 3848276298220188511@example.com\r\n\
//!     CSeq: 63104 OPTIONS\r\n\
//!     l: 0\r\n\r\n";
//! let SipMessage::Request(req) = parse_datagram(bytes)? else { unreachable!() };
//! assert_eq!(req.headers.cseq()?.seq, 63104);
//! assert_eq!(req.headers.from()?.tag().unwrap().as_str(), "9fxced76sl");
//! assert!(check_request(&req).is_ok());
//!
//! let mut out = Vec::new();
//! req.write_to(&mut out); // canonical form, Content-Length from the body
//! assert_eq!(parse_datagram(&out)?, SipMessage::Request(req));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod auth;
mod framing;
mod grammar;
mod headers;
mod message;
mod name_addr;
mod parse;
#[cfg(test)]
mod proptests;
pub mod transaction;
mod uri;
mod validate;
mod values;
mod via;

pub use framing::{FramerLimits, FramingError, StreamFramer, MAX_STREAM_BODY_LEN};
pub use headers::{Defect, Header, HeaderError, HeaderName, Headers};
pub use message::{
    InvalidMethod, InvalidStatusCode, Method, Request, Response, SipMessage, SipVersion, StatusCode,
};
pub use name_addr::{Contact, Contacts, DisplayName, GenericParam, NameAddr, QValue};
pub use parse::{parse_datagram, Origin, ParseError, ParseErrorKind, MAX_HEAD_LEN};
pub use uri::{Host, SipUri, TelUri, Uri, UriComponent, UriError, UriHeader, UriParam};
pub use validate::{
    check_request, check_require, check_response, RejectCause, Rejection, ResponseDefect,
};
pub use values::{
    AuthHeader, AuthParam, Branch, CSeq, CallId, MaxForwards, MediaType, OptionTag, Tag,
    BRANCH_MAGIC_COOKIE,
};
pub use via::{Transport, Via};
