//! What an endpoint needs to know: where it is, which numbers go to which
//! agent, and which trunks may send it calls or receive its calls.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::sdp::Codec;
use crate::sip::auth::Algorithm;
use crate::sip::transaction::{TransactionConfig, TransportKind};

/// An agent's identifier (the control API's agent id or name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AgentId(pub String);

impl std::fmt::Display for AgentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IPv4/IPv6 network in CIDR form, for trunk allowlists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// Network address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
}

/// A CIDR string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network {input:?}: expected an address or address/prefix")]
pub struct IpNetError {
    /// What was given.
    pub input: String,
}

impl std::str::FromStr for IpNet {
    type Err = IpNetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || IpNetError {
            input: s.to_string(),
        };
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (
                a.parse::<IpAddr>().map_err(|_| err())?,
                Some(p.parse::<u8>().map_err(|_| err())?),
            ),
            None => (s.parse::<IpAddr>().map_err(|_| err())?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(err());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl IpNet {
    /// Whether `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Credentials for digest authentication.
#[derive(Clone, PartialEq, Eq)]
pub struct DigestCredentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for DigestCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A SIP trunk: a provider or PBX we exchange calls with.
#[derive(Debug, Clone, PartialEq)]
pub struct TrunkConfig {
    /// Name used by `originate` and in logs.
    pub name: String,
    /// Where outbound requests go.
    pub address: SocketAddr,
    /// Transport for outbound requests.
    pub transport: TransportKind,
    /// Sources allowed to send us requests without authenticating.
    pub allow_from: Vec<IpNet>,
    /// Our credentials toward the provider (answers its 401/407, and REGISTER).
    pub outbound_auth: Option<DigestCredentials>,
    /// Users that may authenticate inbound requests with digest, for sources not in `allow_from`.
    pub inbound_users: Vec<DigestCredentials>,
    /// Register to the provider with `outbound_auth`, refreshing before it expires.
    pub register: Option<RegisterConfig>,
    /// The domain in our From/To URIs toward this trunk (default: its address).
    pub domain: Option<String>,
}

/// REGISTER toward a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterConfig {
    /// The address-of-record user (usually the account's user name).
    pub user: String,
    /// Requested registration lifetime.
    pub expires: u32,
}

/// Endpoint configuration.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// The address we advertise in Via, Contact and (its IP) SDP.
    pub public_addr: SocketAddr,
    /// The IP that RTP for our calls uses.
    pub media_ip: IpAddr,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    /// DID (E.164, digits with optional leading `+`) -> agent answering it.
    pub numbers: HashMap<String, AgentId>,
    /// Agent for calls to numbers not in `numbers` (none: 404).
    pub default_agent: Option<AgentId>,
    /// Trunks.
    pub trunks: Vec<TrunkConfig>,
    /// Realm for inbound digest challenges.
    pub realm: String,
    /// Secret keying stateless nonces.
    pub nonce_secret: [u8; 32],
    /// RTP port range.
    pub rtp_ports: (u16, u16),
    /// Codecs we offer and accept, in preference order.
    pub codecs: Vec<Codec>,
    /// Ring this long (180 Ringing) before answering inbound calls.
    pub answer_delay: Duration,
    /// Transaction timers and limits.
    pub transactions: TransactionConfig,
    /// Digest algorithms we challenge inbound requests with, one
    /// WWW-Authenticate each, most preferred first (RFC 8760). Some UAs read
    /// only the first challenge and only do MD5 (sipp 3.6, older phones).
    pub digest_algorithms: Vec<Algorithm>,
    /// Calls at once; more get 503.
    pub max_calls: usize,
    /// Seed for tags, branches and Call-IDs.
    pub seed: u64,
}

impl EndpointConfig {
    /// A configuration for `public_addr` with loopback allowed as a trunk source,
    /// no numbers routed, G.711 codecs and the RFC 3261 timers.
    pub fn new(public_addr: SocketAddr, seed: u64) -> Self {
        EndpointConfig {
            public_addr,
            media_ip: public_addr.ip(),
            user_agent: concat!("Vocelio/", env!("CARGO_PKG_VERSION")).to_string(),
            numbers: HashMap::new(),
            default_agent: None,
            trunks: Vec::new(),
            realm: "vocelio".into(),
            nonce_secret: seed.to_le_bytes().repeat(4).try_into().unwrap_or([0; 32]),
            rtp_ports: (10_000, 20_000),
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            answer_delay: Duration::ZERO,
            transactions: TransactionConfig::default(),
            digest_algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            max_calls: 10_000,
            seed,
        }
    }
}

/// Normalise a dialled number for routing: keep digits and a leading `+`.
pub fn normalise_number(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        if c.is_ascii_digit() || (i == 0 && c == '+') {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let n: IpNet = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains("10.1.200.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(!n.contains("::1".parse().unwrap()));
        let one: IpNet = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let any: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nonsense".parse::<IpNet>().is_err());
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8::5".parse().unwrap()));
    }

    #[test]
    fn numbers_normalise() {
        assert_eq!(normalise_number("+1 (555) 010-0001"), "+15550100001");
        assert_eq!(normalise_number("5550100001"), "5550100001");
        assert_eq!(normalise_number("1+2"), "12");
    }
}
