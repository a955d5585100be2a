//! rtpengine's ng control protocol, sans-IO: a request is a cookie, a space
//! and a bencoded dictionary with a `command`; the reply carries the same
//! cookie and a dictionary whose `result` is `ok` (`pong` for `ping`), or
//! `error` with an `error-reason`.

use super::bencode::{self, Value};

/// Why a reply is not a usable answer.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("no cookie (no space in the datagram)")]
    NoCookie,
    #[error("the reply is not bencode: {0}")]
    Bencode(#[from] bencode::Error),
    #[error("the reply is not a dictionary")]
    NotADict,
    #[error("the reply has no result")]
    NoResult,
    #[error("rtpengine refused {command}: {reason}")]
    Rejected { command: String, reason: String },
}

/// A command dictionary.
pub fn command<'a>(name: &'a str, args: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    Value::dict([("command", Value::str(name))].into_iter().chain(args))
}

/// The request datagram.
pub fn request(cookie: &str, body: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(cookie.as_bytes());
    out.push(b' ');
    body.encode(&mut out);
    out
}

/// A reply's cookie and dictionary.
pub fn parse_reply(datagram: &[u8]) -> Result<(&[u8], Value), ReplyError> {
    let space = datagram
        .iter()
        .position(|&b| b == b' ')
        .ok_or(ReplyError::NoCookie)?;
    let value = bencode::decode(&datagram[space + 1..])?;
    if !matches!(value, Value::Dict(_)) {
        return Err(ReplyError::NotADict);
    }
    Ok((&datagram[..space], value))
}

/// The reply if rtpengine did what `command` asked.
pub fn check(command: &str, reply: Value) -> Result<Value, ReplyError> {
    match reply.get("result").and_then(Value::as_str) {
        Some("ok" | "pong") => Ok(reply),
        Some(other) => Err(ReplyError::Rejected {
            command: command.into(),
            reason: reply
                .get("error-reason")
                .and_then(Value::as_str)
                .unwrap_or(other)
                .into(),
        }),
        None => Err(ReplyError::NoResult),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_request_and_pong() {
        let req = request("abc", &command("ping", []));
        assert_eq!(req, b"abc d7:command4:pinge");
        let (cookie, reply) = parse_reply(b"abc d6:result4:ponge").unwrap();
        assert_eq!(cookie, b"abc");
        assert!(check("ping", reply).is_ok());
    }

    #[test]
    fn error_reason_is_the_error() {
        let (_, reply) =
            parse_reply(b"k4 d6:result5:error12:error-reason20:Unrecognized commande").unwrap();
        assert_eq!(
            check("foo", reply),
            Err(ReplyError::Rejected {
                command: "foo".into(),
                reason: "Unrecognized command".into()
            })
        );
    }

    #[test]
    fn bad_replies_are_errors() {
        assert_eq!(parse_reply(b"nocookie").unwrap_err(), ReplyError::NoCookie);
        assert_eq!(parse_reply(b"k li1ee").unwrap_err(), ReplyError::NotADict);
        assert!(matches!(
            parse_reply(b"k d6:result"),
            Err(ReplyError::Bencode(_))
        ));
        let (_, reply) = parse_reply(b"k de").unwrap();
        assert_eq!(check("offer", reply), Err(ReplyError::NoResult));
    }
}
