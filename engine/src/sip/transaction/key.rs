//! Transaction identity (RFC 3261 §17.1.3, §17.2.3).

use std::fmt;

use crate::sip::{HeaderError, Host, Method, Request, Response, Transport, Via};

/// Which side of the exchange a transaction is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We sent the request.
    Client,
    /// We received the request.
    Server,
}

/// Identifies one transaction of a [`TransactionLayer`](super::TransactionLayer).
///
/// * Client transactions: top Via branch + CSeq method (§17.1.3).
/// * Server transactions with an RFC 3261 branch: branch + sent-by + method,
///   where an ACK matches the INVITE (§17.2.3).
/// * Server transactions from RFC 2543 peers (no `z9hG4bK` cookie):
///   Request-URI, From tag, To tag, Call-ID, CSeq number, top Via and method
///   class (INVITE/ACK vs the request's own method).
///
/// A CANCEL is its own transaction (method CANCEL) whatever it cancels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    role: Role,
    method: Method,
    id: KeyId,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyId {
    /// Client: branch only. Server: branch + normalised sent-by.
    Branch {
        branch: String,
        sent_by: Option<String>,
    },
    Legacy(Box<LegacyId>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LegacyId {
    request_uri: String,
    from_tag: Option<String>,
    to_tag: Option<String>,
    call_id: String,
    cseq: u32,
    top_via: String,
}

impl TransactionKey {
    /// Client or server.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The method the transaction is for (INVITE for an INVITE transaction,
    /// also when looked up by its ACK).
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The branch, unless this is an RFC 2543 server transaction.
    pub fn branch(&self) -> Option<&str> {
        match &self.id {
            KeyId::Branch { branch, .. } => Some(branch),
            KeyId::Legacy(_) => None,
        }
    }

    /// Whether this is an RFC 2543 (cookie-less) server transaction.
    pub fn is_rfc2543(&self) -> bool {
        matches!(self.id, KeyId::Legacy(_))
    }

    pub(super) fn client(branch: &str, method: Method) -> TransactionKey {
        TransactionKey {
            role: Role::Client,
            method,
            id: KeyId::Branch {
                branch: branch.to_owned(),
                sent_by: None,
            },
        }
    }

    /// The same transaction identity with another method: the INVITE a
    /// CANCEL targets.
    pub(super) fn with_method(&self, method: Method) -> TransactionKey {
        TransactionKey {
            role: self.role,
            method,
            id: self.id.clone(),
        }
    }

    /// The RFC 2543 To tag, if this is a legacy key.
    pub(super) fn legacy_to_tag(&self) -> Option<Option<&str>> {
        match &self.id {
            KeyId::Legacy(l) => Some(l.to_tag.as_deref()),
            KeyId::Branch { .. } => None,
        }
    }

    /// A copy with another legacy To tag (no-op for branch keys).
    pub(super) fn with_legacy_to_tag(&self, to_tag: Option<String>) -> TransactionKey {
        let mut k = self.clone();
        if let KeyId::Legacy(l) = &mut k.id {
            l.to_tag = to_tag;
        }
        k
    }
}

impl fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Client => "client",
            Role::Server => "server",
        };
        match &self.id {
            KeyId::Branch { branch, sent_by } => {
                write!(f, "{role} {} {branch}", self.method)?;
                if let Some(s) = sent_by {
                    write!(f, " from {s}")?;
                }
                Ok(())
            }
            KeyId::Legacy(l) => write!(
                f,
                "{role} {} rfc2543 {} {} {}",
                self.method, l.call_id, l.cseq, l.top_via
            ),
        }
    }
}

fn default_port(t: &Transport) -> u16 {
    match t {
        Transport::Tls | Transport::TlsSctp | Transport::Wss => 5061,
        _ => 5060,
    }
}

/// `host:port` with the host lower-cased and the default port filled in, so
/// `Example.com` and `example.com:5060` compare equal.
fn sent_by(via: &Via) -> String {
    let host = match &via.host {
        Host::Domain(d) => d.to_ascii_lowercase(),
        other => other.to_string(),
    };
    format!(
        "{host}:{}",
        via.port.unwrap_or_else(|| default_port(&via.transport))
    )
}

/// The method class of a server transaction a request belongs to.
pub(super) fn server_method(m: &Method) -> Method {
    match m {
        Method::Ack => Method::Invite,
        other => other.clone(),
    }
}

/// The server key of a request, looked up as `method` (INVITE for an ACK or
/// the INVITE a CANCEL targets). For RFC 2543 requests `to_tag` is the To
/// tag to key on; the caller decides (an ACK tries its own and none).
pub(super) fn server_key(
    req: &Request,
    top_via: &Via,
    method: Method,
    to_tag: Option<String>,
) -> Result<TransactionKey, HeaderError> {
    if let Some(b) = top_via.branch().filter(|b| b.is_rfc3261()) {
        return Ok(TransactionKey {
            role: Role::Server,
            method,
            id: KeyId::Branch {
                branch: b.as_str().to_owned(),
                sent_by: Some(sent_by(top_via)),
            },
        });
    }
    let h = &req.headers;
    Ok(TransactionKey {
        role: Role::Server,
        method,
        id: KeyId::Legacy(Box::new(LegacyId {
            request_uri: req.uri.to_string(),
            from_tag: h.from()?.tag().map(|t| t.as_str().to_owned()),
            to_tag,
            call_id: h.call_id()?.as_str().to_owned(),
            cseq: h.cseq()?.seq,
            top_via: top_via.to_string(),
        })),
    })
}

/// The To tag of a request or response, if any.
pub(super) fn to_tag_of(headers: &crate::sip::Headers) -> Option<String> {
    headers
        .to()
        .ok()
        .and_then(|t| t.tag())
        .map(|t| t.as_str().to_owned())
}

/// The client key a response matches: top Via branch + CSeq method.
pub(super) fn client_key_of_response(resp: &Response) -> Option<TransactionKey> {
    let via = resp.headers.top_via().ok()?;
    let branch = via.branch()?;
    let cseq = resp.headers.cseq().ok()?;
    Some(TransactionKey::client(branch.as_str(), cseq.method))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_by_normalises_case_and_default_port() {
        let a = Via::parse("SIP/2.0/UDP Example.COM;branch=z9hG4bK1").unwrap();
        let b = Via::parse("SIP/2.0/udp example.com:5060;branch=z9hG4bK1").unwrap();
        assert_eq!(sent_by(&a), sent_by(&b));
        let c = Via::parse("SIP/2.0/UDP example.com:5070;branch=z9hG4bK1").unwrap();
        assert_ne!(sent_by(&a), sent_by(&c));
    }
}
