//! The Via header value (RFC 3261 §20.42, §25.1 `via-parm`).

use std::fmt;

use super::grammar::{is_token_byte, trim_lws, trim_lws_start};
use super::headers::{truncated, Defect};
use super::name_addr::{find_param, parse_params, GenericParam};
use super::uri::{parse_hostport, Host};
use super::values::Branch;

/// A Via transport. Unknown tokens (`UNKNOWN`) are kept, not rejected.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// UDP
    Udp,
    /// TCP
    Tcp,
    /// TLS
    Tls,
    /// SCTP
    Sctp,
    /// TLS-SCTP
    TlsSctp,
    /// WS (RFC 7118)
    Ws,
    /// WSS (RFC 7118)
    Wss,
    /// Any other token, as written.
    Other(String),
}

impl Transport {
    /// Maps a transport token (case-insensitive).
    pub fn from_token(s: &str) -> Transport {
        const KNOWN: [(&str, Transport); 7] = [
            ("UDP", Transport::Udp),
            ("TCP", Transport::Tcp),
            ("TLS", Transport::Tls),
            ("SCTP", Transport::Sctp),
            ("TLS-SCTP", Transport::TlsSctp),
            ("WS", Transport::Ws),
            ("WSS", Transport::Wss),
        ];
        KNOWN
            .into_iter()
            .find(|(name, _)| s.eq_ignore_ascii_case(name))
            .map_or_else(|| Transport::Other(s.to_owned()), |(_, t)| t)
    }

    /// Canonical upper-case spelling; `Other` as written.
    pub fn as_str(&self) -> &str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::TlsSctp => "TLS-SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Via value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `SIP` (as written).
    pub protocol_name: String,
    /// `2.0` (as written; a UAS answers 505 to other request versions, not
    /// to odd Via versions).
    pub protocol_version: String,
    /// Transport.
    pub transport: Transport,
    /// Sent-by host.
    pub host: Host,
    /// Sent-by port.
    pub port: Option<u16>,
    /// Parameters (branch, received, rport, maddr, ttl, extensions) in order.
    pub params: Vec<GenericParam>,
}

fn take_token(s: &str) -> (&str, &str) {
    let n = s.bytes().take_while(|&b| is_token_byte(b)).count();
    s.split_at(n)
}

impl Via {
    /// Parses one Via value (one element of a comma list).
    pub fn parse(s: &str) -> Result<Via, Defect> {
        let s = trim_lws(s);
        if s.is_empty() {
            return Err(Defect::Empty);
        }
        let (name, rest) = take_token(s);
        let rest = trim_lws_start(rest)
            .strip_prefix('/')
            .ok_or(Defect::SentProtocol)?;
        let (version, rest) = take_token(trim_lws_start(rest));
        let rest = trim_lws_start(rest)
            .strip_prefix('/')
            .ok_or(Defect::SentProtocol)?;
        let (transport, rest) = take_token(trim_lws_start(rest));
        if name.is_empty() || version.is_empty() || transport.is_empty() {
            return Err(Defect::SentProtocol);
        }
        if !rest.starts_with([' ', '\t']) {
            return Err(Defect::SentProtocol);
        }
        let rest = trim_lws_start(rest);
        let end = rest.find(';').unwrap_or(rest.len());
        let (sent_by, params) = rest.split_at(end);
        let sent_by = trim_lws(sent_by);
        if sent_by.is_empty() {
            return Err(Defect::Empty);
        }
        if sent_by.contains([' ', '\t']) {
            return Err(Defect::Unexpected {
                offset: s.len() - rest.len(),
                found: truncated(sent_by),
            });
        }
        let (host, port) = parse_hostport(sent_by)?;
        let params = parse_params(params)?;
        Ok(Via {
            protocol_name: name.to_owned(),
            protocol_version: version.to_owned(),
            transport: Transport::from_token(transport),
            host,
            port,
            params,
        })
    }

    /// A parameter by name (case-insensitive).
    pub fn param(&self, name: &str) -> Option<&GenericParam> {
        find_param(&self.params, name)
    }

    /// The `branch` parameter, if present and a token.
    pub fn branch(&self) -> Option<Branch> {
        self.param("branch")
            .and_then(|p| p.value.as_deref())
            .and_then(|v| Branch::new(v).ok())
    }

    /// The `received` parameter, as written.
    pub fn received(&self) -> Option<&str> {
        self.param("received").and_then(|p| p.value.as_deref())
    }

    /// `None` without `rport`, `Some(None)` for a bare `;rport`,
    /// `Some(Some(port))` when filled in. A non-numeric value reads as `Some(None)`.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.param("rport")
            .map(|p| p.value.as_deref().and_then(|v| v.parse::<u16>().ok()))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{} {}",
            self.protocol_name, self.protocol_version, self.transport, self.host
        )?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        for p in &self.params {
            write!(f, ";{p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lws_everywhere() {
        let v = Via::parse("SIP  /   2.0  /UDP     192.0.2.2;branch=390skdjuw").unwrap();
        assert_eq!(v.transport, Transport::Udp);
        assert_eq!(v.host, Host::V4("192.0.2.2".parse().unwrap()));
        assert_eq!(v.branch().unwrap().as_str(), "390skdjuw");
        let v =
            Via::parse("SIP  /    2.0   / UDP  192.168.255.111   ; branch=  z9hG4bK30239").unwrap();
        assert_eq!(v.branch().unwrap().as_str(), "z9hG4bK30239");
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn params_and_transports() {
        let v = Via::parse("SIP/2.0/UNKNOWN t4.example.com:5070;rport;received=192.0.2.5").unwrap();
        assert_eq!(v.transport, Transport::Other("UNKNOWN".into()));
        assert_eq!(v.port, Some(5070));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some("192.0.2.5"));
        assert!(v.branch().is_none());
        let v = Via::parse("SIP/2.0/tls [2001:db8::9]:5061;rport=1234").unwrap();
        assert_eq!(v.transport, Transport::Tls);
        assert_eq!(v.rport(), Some(Some(1234)));
        assert_eq!(Via::parse(&v.to_string()).unwrap(), v);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            Via::parse("SIP/2.0/UDP 192.0.2.15;;"),
            Err(Defect::EmptyParam)
        );
        assert!(Via::parse(";").is_err());
        assert!(Via::parse("").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0 host").is_err());
        assert!(Via::parse("SIP/2.0/UDPhost").is_err());
        assert!(Via::parse("SIP/2.0/UDP host:99999").is_err());
    }
}
