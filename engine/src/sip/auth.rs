//! SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760):
//! MD5 and SHA-256, `qop=auth`, and the legacy no-qop form for MD5.
//!
//! Two halves, both sans-IO:
//!
//! - **Client (UAC)**: a 401/407 carries one or more challenges;
//!   [`DigestChallenge::select`] picks the strongest usable one (SHA-256
//!   over MD5) and [`DigestChallenge::authorize`] computes the
//!   Authorization / Proxy-Authorization value. The caller supplies the
//!   nonce-count and the cnonce (from its seeded source): nothing here draws
//!   random numbers. [`authorize_request`] does both from the response and the
//!   request that was challenged.
//! - **Server (UAS, trunk access control)**: [`DigestServer`] is stateless.
//!   Its nonce is `hex(timestamp || HMAC-SHA256(secret, timestamp || realm))`,
//!   so it checks the nonce's integrity and age without storing anything.
//!   Time is an argument (`now_unix_secs`), never read here.
//!
//! Being stateless, the server does not track nonce-counts: a captured
//! request can be replayed *unchanged* (same method, same Request-URI) while
//! its nonce is fresh (5 minutes by default). The transaction layer absorbs
//! retransmissions; a replay cannot be turned into another method or URI.
//!
//! ```
//! use vocelio_engine::sip::auth::{Algorithm, Credentials, DigestChallenge, DigestServer, NonceCount};
//! use vocelio_engine::sip::{AuthHeader, Method, Uri};
//!
//! let server = DigestServer::new("trunk.example.com", [7; 32]);
//! let challenge = server.challenge(1_700_000_000, Algorithm::Sha256);
//!
//! // The UAC side: parse the WWW-Authenticate value and answer it.
//! let chosen = DigestChallenge::select([&AuthHeader::parse(&challenge)?])?;
//! let creds = Credentials::new("alice", "s3cret");
//! let uri = Uri::parse("sip:+15551234567@trunk.example.com")?;
//! let value = chosen.authorize(&creds, &Method::Invite, &uri.to_string(), NonceCount::FIRST, "8f2a01c4")?;
//!
//! // The UAS side: verify the Authorization value.
//! let user = server.verify(
//!     1_700_000_010,
//!     &Method::Invite,
//!     &uri,
//!     &AuthHeader::parse(&value)?,
//!     |name| (name == "alice").then(|| Credentials::new("alice", "s3cret")),
//! )?;
//! assert_eq!(user.username, "alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};

use super::headers::{Header, HeaderName};
use super::message::{Method, Request, Response};
use super::uri::Uri;
use super::values::AuthHeader;

/// How long a server nonce stays fresh by default.
pub const DEFAULT_NONCE_MAX_AGE_SECS: u64 = 300;

/// Bytes of a server nonce before hex encoding: 8 of timestamp, 32 of MAC.
const NONCE_BYTES: usize = 8 + 32;

/// Longest text copied into an error value.
const ERR_TEXT_MAX: usize = 64;

fn clip(s: &str) -> String {
    s.chars().take(ERR_TEXT_MAX).collect()
}

/// A digest algorithm, ordered weakest first (a client picks the greatest).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `MD5` (RFC 2617; the default when `algorithm` is absent).
    Md5,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
}

impl Algorithm {
    /// Parses the `algorithm` parameter (case-insensitive). The `-sess`
    /// variants are not supported.
    pub fn parse(s: &str) -> Option<Algorithm> {
        if s.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if s.eq_ignore_ascii_case("SHA-256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    /// The token as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    /// `H(p0 ":" p1 ":" ...)` as raw bytes.
    fn hash(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
        }
    }

    /// `H(...)` as lower-case hex, the form that goes into the next hash.
    fn hash_hex(self, parts: &[&[u8]]) -> String {
        hex::encode(self.hash(parts))
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which pair of headers carries the exchange.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// 401 with WWW-Authenticate, answered with Authorization (a UAS).
    Www,
    /// 407 with Proxy-Authenticate, answered with Proxy-Authorization.
    Proxy,
}

impl ChallengeKind {
    /// The header that carries the challenge.
    pub fn challenge_header(self) -> HeaderName {
        match self {
            ChallengeKind::Www => HeaderName::WwwAuthenticate,
            ChallengeKind::Proxy => HeaderName::ProxyAuthenticate,
        }
    }

    /// The header that carries the credentials.
    pub fn credentials_header(self) -> HeaderName {
        match self {
            ChallengeKind::Www => HeaderName::Authorization,
            ChallengeKind::Proxy => HeaderName::ProxyAuthorization,
        }
    }
}

/// The `nc` parameter: how many requests the client has sent with this
/// nonce, written as 8 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonceCount(pub u32);

impl NonceCount {
    /// The count for the first request with a nonce.
    pub const FIRST: NonceCount = NonceCount(1);

    /// The count for the next request with the same nonce (wrapping).
    pub fn next(self) -> NonceCount {
        NonceCount(self.0.wrapping_add(1))
    }

    /// Parses exactly 8 hex digits.
    pub fn parse(s: &str) -> Option<NonceCount> {
        if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(s, 16).ok().map(NonceCount)
    }
}

impl fmt::Display for NonceCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A username and password. `Debug` does not print the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The username (as configured; sent in the `username` parameter).
    pub username: String,
    password: String,
}

impl Credentials {
    /// Builds credentials.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Credentials {
        Credentials {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why a challenge could not be answered or credentials were refused.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The scheme is not `Digest`.
    #[error("auth scheme {found:?} is not Digest")]
    NotDigest {
        /// The scheme as written (clipped).
        found: String,
    },
    /// A required parameter is absent or empty.
    #[error("missing {name} parameter")]
    MissingParam {
        /// The parameter name.
        name: &'static str,
    },
    /// An algorithm other than MD5 and SHA-256.
    #[error("unsupported digest algorithm {found:?}")]
    UnsupportedAlgorithm {
        /// As written (clipped).
        found: String,
    },
    /// A qop other than `auth` (e.g. only `auth-int`).
    #[error("unsupported qop {found:?}")]
    UnsupportedQop {
        /// As written (clipped).
        found: String,
    },
    /// No qop where this algorithm (or this server) requires `qop=auth`.
    #[error("qop=auth is required with {algorithm}")]
    QopRequired {
        /// The algorithm in use.
        algorithm: Algorithm,
    },
    /// The response carried no Digest challenge this client can answer.
    #[error("none of the {offered} challenges is a usable Digest challenge")]
    NoUsableChallenge {
        /// How many challenges were offered.
        offered: usize,
        /// Why the first Digest challenge was unusable, if there was one.
        first_problem: Option<Box<AuthError>>,
    },
    /// [`authorize_request`] was given a response that is not 401 or 407.
    #[error("status {status} is not an authentication challenge")]
    NotAChallenge {
        /// The status code.
        status: u16,
    },
    /// A challenge or credentials header that does not parse.
    #[error("{header} does not parse")]
    BadHeader {
        /// Which header.
        header: &'static str,
    },
    /// A value that cannot be put in a header (control characters, quotes
    /// or backslashes in a cnonce, ...).
    #[error("{what} contains a character that cannot be sent")]
    InvalidValue {
        /// Which value.
        what: &'static str,
    },
    /// No credentials for this server's realm in the request.
    #[error("no Digest credentials for realm {realm:?}")]
    NoCredentials {
        /// The server's realm.
        realm: String,
    },
    /// Credentials for another realm.
    #[error("realm {actual:?} is not {expected:?}")]
    RealmMismatch {
        /// The server's realm.
        expected: String,
        /// The realm in the credentials (clipped).
        actual: String,
    },
    /// The nonce is not one this server issued (or was altered).
    #[error("nonce was not issued by this server")]
    InvalidNonce,
    /// The nonce is authentic but too old: re-challenge with `stale=true`.
    #[error("nonce is {age_secs} s old, the limit is {max_age_secs} s")]
    StaleNonce {
        /// Seconds since the nonce was issued.
        age_secs: u64,
        /// The server's limit.
        max_age_secs: u64,
    },
    /// The nonce is authentic but dated after `now` (the clock stepped
    /// back): re-challenge with `stale=true`.
    #[error("nonce issued at {issued_at}, after now ({now})")]
    NonceFromFuture {
        /// When the nonce says it was issued (Unix seconds).
        issued_at: u64,
        /// The `now` given to the check.
        now: u64,
    },
    /// `nc` is not 8 hex digits.
    #[error("nonce-count {found:?} is not 8 hex digits")]
    BadNonceCount {
        /// As written (clipped).
        found: String,
    },
    /// The `uri` parameter is not the Request-URI.
    #[error("digest uri {actual:?} is not the Request-URI {expected:?}")]
    UriMismatch {
        /// The Request-URI (clipped).
        expected: String,
        /// The `uri` parameter (clipped).
        actual: String,
    },
    /// The lookup knows no such user.
    #[error("unknown user {username:?}")]
    UnknownUser {
        /// The `username` parameter (clipped).
        username: String,
    },
    /// The `response` is wrong: bad password, or the request was altered.
    #[error("wrong digest response for user {username:?}")]
    WrongResponse {
        /// The `username` parameter (clipped).
        username: String,
    },
}

impl AuthError {
    /// Whether the credentials were right but the nonce expired: answer with
    /// a fresh challenge carrying `stale=true` ([`DigestServer::stale_challenge`])
    /// so the client retries without asking for the password again.
    pub fn is_stale(&self) -> bool {
        matches!(
            self,
            AuthError::StaleNonce { .. } | AuthError::NonceFromFuture { .. }
        )
    }
}

/// Escapes `"` and `\` for a quoted-string; refuses control characters.
fn quote_into(out: &mut String, what: &'static str, value: &str) -> Result<(), AuthError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(AuthError::InvalidValue { what });
    }
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    Ok(())
}

fn require<'a>(h: &'a AuthHeader, name: &'static str) -> Result<&'a str, AuthError> {
    match h.param(name) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(AuthError::MissingParam { name }),
    }
}

fn check_scheme(h: &AuthHeader) -> Result<(), AuthError> {
    if h.scheme.eq_ignore_ascii_case("Digest") {
        Ok(())
    } else {
        Err(AuthError::NotDigest {
            found: clip(&h.scheme),
        })
    }
}

fn parse_algorithm(h: &AuthHeader) -> Result<Algorithm, AuthError> {
    match h.param("algorithm") {
        None => Ok(Algorithm::Md5),
        Some(a) => {
            Algorithm::parse(a).ok_or_else(|| AuthError::UnsupportedAlgorithm { found: clip(a) })
        }
    }
}

/// The qop this client uses with a challenge.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `qop=auth`.
    Auth,
}

/// A parsed, answerable Digest challenge (WWW-Authenticate or
/// Proxy-Authenticate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChallenge {
    /// The realm.
    pub realm: String,
    /// The server nonce.
    pub nonce: String,
    /// `opaque`, echoed back unchanged.
    pub opaque: Option<String>,
    /// The algorithm.
    pub algorithm: Algorithm,
    /// `Some(Auth)` when the server offers `auth`; `None` for the legacy
    /// RFC 2069 form (MD5 only).
    pub qop: Option<Qop>,
    /// `stale=true`: the previous credentials were right, only the nonce
    /// expired; retry without prompting.
    pub stale: bool,
}

impl DigestChallenge {
    /// Parses one challenge. Fails for other schemes, other algorithms, a
    /// qop list without `auth`, and SHA-256 without qop.
    pub fn parse(h: &AuthHeader) -> Result<DigestChallenge, AuthError> {
        check_scheme(h)?;
        let realm = h
            .param("realm")
            .ok_or(AuthError::MissingParam { name: "realm" })?;
        let nonce = require(h, "nonce")?;
        let algorithm = parse_algorithm(h)?;
        let qop = match h.param("qop") {
            None => None,
            Some(list) => {
                if list
                    .split(',')
                    .any(|q| q.trim_matches([' ', '\t']).eq_ignore_ascii_case("auth"))
                {
                    Some(Qop::Auth)
                } else {
                    return Err(AuthError::UnsupportedQop { found: clip(list) });
                }
            }
        };
        if qop.is_none() && algorithm != Algorithm::Md5 {
            return Err(AuthError::QopRequired { algorithm });
        }
        Ok(DigestChallenge {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            opaque: h.param("opaque").map(str::to_owned),
            algorithm,
            qop,
            stale: h
                .param("stale")
                .is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The strongest usable challenge: SHA-256 over MD5, then `qop=auth`
    /// over legacy, then the first in order. Other schemes are skipped.
    pub fn select<'a>(
        challenges: impl IntoIterator<Item = &'a AuthHeader>,
    ) -> Result<DigestChallenge, AuthError> {
        let mut best: Option<DigestChallenge> = None;
        let mut offered = 0;
        let mut first_problem = None;
        for h in challenges {
            offered += 1;
            match DigestChallenge::parse(h) {
                Ok(c) => {
                    let rank = |c: &DigestChallenge| (c.algorithm, c.qop.is_some());
                    if best.as_ref().is_none_or(|b| rank(&c) > rank(b)) {
                        best = Some(c);
                    }
                }
                Err(AuthError::NotDigest { .. }) => {}
                Err(e) => {
                    first_problem.get_or_insert(Box::new(e));
                }
            }
        }
        best.ok_or(AuthError::NoUsableChallenge {
            offered,
            first_problem,
        })
    }

    /// The `response` digest as lower-case hex.
    pub fn response(
        &self,
        creds: &Credentials,
        method: &Method,
        uri: &str,
        nc: NonceCount,
        cnonce: &str,
    ) -> String {
        let qop = self.qop.map(|Qop::Auth| (nc, cnonce));
        hex::encode(digest_response(
            self.algorithm,
            &creds.username,
            &self.realm,
            &creds.password,
            method.as_str(),
            uri,
            &self.nonce,
            qop,
        ))
    }

    /// The Authorization / Proxy-Authorization value answering this
    /// challenge for a request with this method and Request-URI (`uri` as
    /// written on the request line, e.g. `request.uri.to_string()`).
    ///
    /// `nc` must grow with each request that reuses the nonce; `cnonce` is
    /// an opaque string from the caller's seeded source (visible ASCII
    /// without `"` or `\`). Both are ignored for a legacy (no-qop) challenge.
    pub fn authorize(
        &self,
        creds: &Credentials,
        method: &Method,
        uri: &str,
        nc: NonceCount,
        cnonce: &str,
    ) -> Result<String, AuthError> {
        if self.qop.is_some()
            && (cnonce.is_empty()
                || !cnonce
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
        {
            return Err(AuthError::InvalidValue { what: "cnonce" });
        }
        let mut out = String::with_capacity(256);
        out.push_str("Digest username=");
        quote_into(&mut out, "username", &creds.username)?;
        out.push_str(", realm=");
        quote_into(&mut out, "realm", &self.realm)?;
        out.push_str(", nonce=");
        quote_into(&mut out, "nonce", &self.nonce)?;
        out.push_str(", uri=");
        quote_into(&mut out, "uri", uri)?;
        out.push_str(", response=\"");
        out.push_str(&self.response(creds, method, uri, nc, cnonce));
        out.push_str("\", algorithm=");
        out.push_str(self.algorithm.as_str());
        if self.qop.is_some() {
            out.push_str(", cnonce=\"");
            out.push_str(cnonce);
            out.push_str("\", qop=auth, nc=");
            out.push_str(&nc.to_string());
        }
        if let Some(opaque) = &self.opaque {
            out.push_str(", opaque=");
            quote_into(&mut out, "opaque", opaque)?;
        }
        Ok(out)
    }
}

/// Answers a 401 or 407 to `request`: picks the strongest challenge and
/// returns the Authorization (401) or Proxy-Authorization (407) header to
/// add to the retried request (whose CSeq the caller increments).
pub fn authorize_request(
    response: &Response,
    request: &Request,
    creds: &Credentials,
    nc: NonceCount,
    cnonce: &str,
) -> Result<Header, AuthError> {
    let (kind, challenges) = match response.status.as_u16() {
        401 => (ChallengeKind::Www, response.headers.www_authenticate()),
        407 => (ChallengeKind::Proxy, response.headers.proxy_authenticate()),
        status => return Err(AuthError::NotAChallenge { status }),
    };
    let challenges = challenges.map_err(|_| AuthError::BadHeader {
        header: kind.challenge_header_str(),
    })?;
    let challenge = DigestChallenge::select(&challenges)?;
    let value =
        challenge.authorize(creds, &request.method, &request.uri.to_string(), nc, cnonce)?;
    Header::new(kind.credentials_header(), value).map_err(|_| AuthError::InvalidValue {
        what: "credentials",
    })
}

impl ChallengeKind {
    fn challenge_header_str(self) -> &'static str {
        match self {
            ChallengeKind::Www => "WWW-Authenticate",
            ChallengeKind::Proxy => "Proxy-Authenticate",
        }
    }

    fn credentials_header_str(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// The raw `response` digest (RFC 2617 §3.2.2.1, RFC 7616 §3.4.1).
/// `qop` is `Some((nc, cnonce))` for `qop=auth`, `None` for RFC 2069.
#[allow(clippy::too_many_arguments)]
fn digest_response(
    alg: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(NonceCount, &str)>,
) -> Vec<u8> {
    let ha1 = alg.hash_hex(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()]);
    let ha2 = alg.hash_hex(&[method.as_bytes(), uri.as_bytes()]);
    match qop {
        Some((nc, cnonce)) => {
            let nc = nc.to_string();
            alg.hash(&[
                ha1.as_bytes(),
                nonce.as_bytes(),
                nc.as_bytes(),
                cnonce.as_bytes(),
                b"auth",
                ha2.as_bytes(),
            ])
        }
        None => alg.hash(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}

/// Equal-length comparison whose time does not depend on where the inputs
/// differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A user whose credentials checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedUser {
    /// The `username` from the credentials.
    pub username: String,
    /// The algorithm the client used.
    pub algorithm: Algorithm,
    /// When the nonce was issued (Unix seconds).
    pub nonce_issued_at: u64,
}

/// A stateless digest challenger and verifier for one realm.
///
/// Nonces are `hex(timestamp_be64 || HMAC-SHA256(secret, timestamp_be64 ||
/// realm))`: authentic and dated without a table. Use a secret from the
/// configured seeded source, shared by every instance serving the realm.
#[derive(Clone)]
pub struct DigestServer {
    realm: String,
    secret: [u8; 32],
    max_age_secs: u64,
    algorithms: Vec<Algorithm>,
    allow_legacy_md5: bool,
}

impl fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestServer")
            .field("realm", &self.realm)
            .field("secret", &"<redacted>")
            .field("max_age_secs", &self.max_age_secs)
            .field("algorithms", &self.algorithms)
            .field("allow_legacy_md5", &self.allow_legacy_md5)
            .finish()
    }
}

impl DigestServer {
    /// A server for `realm` accepting SHA-256 and MD5 with `qop=auth`, and
    /// nonces up to [`DEFAULT_NONCE_MAX_AGE_SECS`] old.
    pub fn new(realm: impl Into<String>, secret: [u8; 32]) -> DigestServer {
        DigestServer {
            realm: realm.into(),
            secret,
            max_age_secs: DEFAULT_NONCE_MAX_AGE_SECS,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            allow_legacy_md5: false,
        }
    }

    /// Sets how long a nonce stays fresh.
    pub fn with_max_age(mut self, secs: u64) -> DigestServer {
        self.max_age_secs = secs;
        self
    }

    /// Restricts the algorithms accepted in credentials.
    pub fn with_algorithms(mut self, algorithms: &[Algorithm]) -> DigestServer {
        self.algorithms = algorithms.to_vec();
        self
    }

    /// Also accepts MD5 credentials without qop (RFC 2069 clients).
    pub fn allow_legacy_md5(mut self, allow: bool) -> DigestServer {
        self.allow_legacy_md5 = allow;
        self
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    fn mac(&self, issued_at: u64) -> Hmac<Sha256> {
        // HMAC takes keys of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(&issued_at.to_be_bytes());
        mac.update(self.realm.as_bytes());
        mac
    }

    /// A nonce dated `now_unix_secs`.
    pub fn nonce(&self, now_unix_secs: u64) -> String {
        let mut raw = Vec::with_capacity(NONCE_BYTES);
        raw.extend_from_slice(&now_unix_secs.to_be_bytes());
        raw.extend_from_slice(&self.mac(now_unix_secs).finalize().into_bytes());
        hex::encode(raw)
    }

    /// Checks a nonce's MAC; returns when it was issued.
    fn nonce_issued_at(&self, nonce: &str) -> Result<u64, AuthError> {
        if nonce.len() != NONCE_BYTES * 2 {
            return Err(AuthError::InvalidNonce);
        }
        let raw = hex::decode(nonce).map_err(|_| AuthError::InvalidNonce)?;
        let (ts, tag) = raw.split_at(8);
        let issued_at = u64::from_be_bytes(ts.try_into().map_err(|_| AuthError::InvalidNonce)?);
        self.mac(issued_at)
            .verify_slice(tag)
            .map_err(|_| AuthError::InvalidNonce)?;
        Ok(issued_at)
    }

    fn render_challenge(&self, now_unix_secs: u64, algorithm: Algorithm, stale: bool) -> String {
        let mut out = String::with_capacity(160);
        out.push_str("Digest realm=");
        // A realm with control characters makes a value that Header::new
        // refuses; quoting cannot fail otherwise.
        if quote_into(&mut out, "realm", &self.realm).is_err() {
            out.push_str("\"\"");
        }
        out.push_str(", nonce=\"");
        out.push_str(&self.nonce(now_unix_secs));
        out.push_str("\", algorithm=");
        out.push_str(algorithm.as_str());
        out.push_str(", qop=\"auth\"");
        if stale {
            out.push_str(", stale=true");
        }
        out
    }

    /// A WWW-Authenticate / Proxy-Authenticate value with a fresh nonce.
    /// A 401 usually carries one per accepted algorithm, SHA-256 first.
    pub fn challenge(&self, now_unix_secs: u64, algorithm: Algorithm) -> String {
        self.render_challenge(now_unix_secs, algorithm, false)
    }

    /// [`challenge`](Self::challenge) with `stale=true`, after an error for
    /// which [`AuthError::is_stale`] holds.
    pub fn stale_challenge(&self, now_unix_secs: u64, algorithm: Algorithm) -> String {
        self.render_challenge(now_unix_secs, algorithm, true)
    }

    /// Verifies Digest credentials sent with a request (`method`,
    /// `request_uri`). Checks scheme, realm, algorithm, nonce integrity, qop,
    /// nc and cnonce, that `uri` is the Request-URI, then the response
    /// (constant-time), and only then the nonce's age, so that
    /// [`AuthError::StaleNonce`] means the password was right (RFC 2617
    /// `stale`).
    pub fn verify(
        &self,
        now_unix_secs: u64,
        method: &Method,
        request_uri: &Uri,
        auth: &AuthHeader,
        lookup: impl Fn(&str) -> Option<Credentials>,
    ) -> Result<VerifiedUser, AuthError> {
        check_scheme(auth)?;
        let realm = auth
            .param("realm")
            .ok_or(AuthError::MissingParam { name: "realm" })?;
        if realm != self.realm {
            return Err(AuthError::RealmMismatch {
                expected: self.realm.clone(),
                actual: clip(realm),
            });
        }
        let username = require(auth, "username")?;
        let nonce = require(auth, "nonce")?;
        let uri = require(auth, "uri")?;
        let response = require(auth, "response")?;
        let algorithm = parse_algorithm(auth)?;
        if !self.algorithms.contains(&algorithm) {
            return Err(AuthError::UnsupportedAlgorithm {
                found: algorithm.as_str().to_owned(),
            });
        }
        let issued_at = self.nonce_issued_at(nonce)?;
        let qop = match auth.param("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc_raw = require(auth, "nc")?;
                let nc = NonceCount::parse(nc_raw).ok_or_else(|| AuthError::BadNonceCount {
                    found: clip(nc_raw),
                })?;
                Some((nc, require(auth, "cnonce")?))
            }
            Some(q) => return Err(AuthError::UnsupportedQop { found: clip(q) }),
            None if algorithm == Algorithm::Md5 && self.allow_legacy_md5 => None,
            None => return Err(AuthError::QopRequired { algorithm }),
        };
        if !uri_matches(uri, request_uri) {
            return Err(AuthError::UriMismatch {
                expected: clip(&request_uri.to_string()),
                actual: clip(uri),
            });
        }
        let creds = lookup(username).ok_or_else(|| AuthError::UnknownUser {
            username: clip(username),
        })?;
        let expected = digest_response(
            algorithm,
            username,
            realm,
            &creds.password,
            method.as_str(),
            uri,
            nonce,
            qop,
        );
        // hex::decode accepts either case; a wrong length fails ct_eq.
        let given = hex::decode(response).unwrap_or_default();
        if !ct_eq(&expected, &given) {
            return Err(AuthError::WrongResponse {
                username: clip(username),
            });
        }
        if issued_at > now_unix_secs {
            return Err(AuthError::NonceFromFuture {
                issued_at,
                now: now_unix_secs,
            });
        }
        let age_secs = now_unix_secs - issued_at;
        if age_secs > self.max_age_secs {
            return Err(AuthError::StaleNonce {
                age_secs,
                max_age_secs: self.max_age_secs,
            });
        }
        Ok(VerifiedUser {
            username: username.to_owned(),
            algorithm,
            nonce_issued_at: issued_at,
        })
    }

    /// Verifies a request's Authorization (`Www`) or Proxy-Authorization
    /// (`Proxy`) credentials for this realm (other realms' lines are
    /// skipped, as RFC 3261 §22.3 has proxies do).
    pub fn verify_request(
        &self,
        now_unix_secs: u64,
        request: &Request,
        kind: ChallengeKind,
        lookup: impl Fn(&str) -> Option<Credentials>,
    ) -> Result<VerifiedUser, AuthError> {
        let all = match kind {
            ChallengeKind::Www => request.headers.authorization(),
            ChallengeKind::Proxy => request.headers.proxy_authorization(),
        }
        .map_err(|_| AuthError::BadHeader {
            header: kind.credentials_header_str(),
        })?;
        let mine = all
            .iter()
            .find(|h| {
                h.scheme.eq_ignore_ascii_case("Digest") && h.param("realm") == Some(&self.realm)
            })
            .ok_or_else(|| AuthError::NoCredentials {
                realm: self.realm.clone(),
            })?;
        self.verify(now_unix_secs, &request.method, &request.uri, mine, lookup)
    }
}

/// Whether the digest `uri` names the Request-URI: equal as written
/// (canonically), or equal once parsed.
fn uri_matches(digest_uri: &str, request_uri: &Uri) -> bool {
    digest_uri == request_uri.to_string() || Uri::parse(digest_uri).is_ok_and(|u| u == *request_uri)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{parse_datagram, SipMessage, StatusCode};

    const SECRET: [u8; 32] = [0x5a; 32];
    const NOW: u64 = 1_700_000_000;

    fn mufasa() -> Credentials {
        Credentials::new("Mufasa", "Circle Of Life")
    }

    fn hdr(s: &str) -> AuthHeader {
        AuthHeader::parse(s).unwrap()
    }

    #[test]
    fn rfc2617_section_3_5_example() {
        let challenge = hdr(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        );
        let c = DigestChallenge::select([&challenge]).unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.qop, Some(Qop::Auth));
        let value = c
            .authorize(
                &mufasa(),
                &Method::Extension("GET".into()),
                "/dir/index.html",
                NonceCount::FIRST,
                "0a4f113b",
            )
            .unwrap();
        let a = hdr(&value);
        assert_eq!(
            a.param("response"),
            Some("6629fae49393a05397450978507c4ef1")
        );
        assert_eq!(a.param("username"), Some("Mufasa"));
        assert_eq!(a.param("realm"), Some("testrealm@host.com"));
        assert_eq!(a.param("uri"), Some("/dir/index.html"));
        assert_eq!(a.param("nc"), Some("00000001"));
        assert_eq!(a.param("cnonce"), Some("0a4f113b"));
        assert_eq!(a.param("qop"), Some("auth"));
        assert_eq!(a.param("opaque"), Some("5ccc069c403ebaf9f0171e9517f40e41"));
        // qop and nc go unquoted (RFC 2617 §3.2.2).
        assert!(value.contains("qop=auth, nc=00000001"), "{value}");
    }

    /// RFC 7616 §3.9.1: both challenges in one 401; the client picks SHA-256.
    #[test]
    fn rfc7616_section_3_9_1_example() {
        let sha = hdr(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        );
        let md5 = hdr(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm=MD5, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
        );
        let creds = Credentials::new("Mufasa", "Circle of Life");
        let get = Method::Extension("GET".into());
        let cnonce = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
        for order in [[&md5, &sha], [&sha, &md5]] {
            let c = DigestChallenge::select(order).unwrap();
            assert_eq!(c.algorithm, Algorithm::Sha256);
            let a = hdr(&c
                .authorize(&creds, &get, "/dir/index.html", NonceCount(1), cnonce)
                .unwrap());
            assert_eq!(
                a.param("response"),
                Some("753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1")
            );
            assert_eq!(a.param("algorithm"), Some("SHA-256"));
            assert_eq!(a.param("cnonce"), Some(cnonce));
        }
        // The MD5 answer from the same section.
        let c = DigestChallenge::parse(&md5).unwrap();
        assert_eq!(
            c.response(&creds, &get, "/dir/index.html", NonceCount(1), cnonce),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn legacy_md5_without_qop() {
        // RFC 2069: response = MD5(HA1:nonce:HA2).
        let c = DigestChallenge::parse(&hdr(
            "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
        ))
        .unwrap();
        assert_eq!(c.qop, None);
        let v = c
            .authorize(
                &mufasa(),
                &Method::Extension("GET".into()),
                "/dir/index.html",
                NonceCount::FIRST,
                "",
            )
            .unwrap();
        let a = hdr(&v);
        assert_eq!(a.param("qop"), None);
        assert_eq!(a.param("nc"), None);
        let ha1 = hex::encode(Md5::digest("Mufasa:testrealm@host.com:Circle Of Life"));
        let ha2 = hex::encode(Md5::digest("GET:/dir/index.html"));
        let want = hex::encode(Md5::digest(format!(
            "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{ha2}"
        )));
        assert_eq!(a.param("response"), Some(want.as_str()));
        // SHA-256 requires qop.
        assert!(matches!(
            DigestChallenge::parse(&hdr("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256")),
            Err(AuthError::QopRequired { .. })
        ));
    }

    #[test]
    fn selection_skips_what_it_cannot_answer() {
        let basic = hdr("Basic realm=\"x\"");
        let int_only = hdr("Digest realm=\"x\", nonce=\"n\", qop=\"auth-int\"");
        let sess = hdr("Digest realm=\"x\", nonce=\"n\", qop=auth, algorithm=SHA-512-256");
        let md5 = hdr("Digest realm=\"x\", nonce=\"n1\", qop=auth");
        let legacy = hdr("Digest realm=\"x\", nonce=\"n0\"");
        let c = DigestChallenge::select([&basic, &int_only, &legacy, &sess, &md5]).unwrap();
        assert_eq!((c.algorithm, c.nonce.as_str()), (Algorithm::Md5, "n1"));
        match DigestChallenge::select([&basic, &int_only, &sess]) {
            Err(AuthError::NoUsableChallenge {
                offered: 3,
                first_problem: Some(p),
            }) => assert!(matches!(*p, AuthError::UnsupportedQop { .. })),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            DigestChallenge::select([]),
            Err(AuthError::NoUsableChallenge { offered: 0, .. })
        ));
        assert!(matches!(
            DigestChallenge::parse(&hdr("Digest realm=\"x\"")),
            Err(AuthError::MissingParam { name: "nonce" })
        ));
    }

    #[test]
    fn values_that_cannot_be_sent_are_refused() {
        let c = DigestChallenge::parse(&hdr("Digest realm=\"x\", nonce=\"n\", qop=auth")).unwrap();
        let m = Method::Register;
        for bad in ["", "a b", "a\"b", "a\\b", "é"] {
            assert_eq!(
                c.authorize(&mufasa(), &m, "sip:x", NonceCount(1), bad),
                Err(AuthError::InvalidValue { what: "cnonce" })
            );
        }
        let evil = Credentials::new("bob\r\nVia: x", "p");
        assert_eq!(
            c.authorize(&evil, &m, "sip:x", NonceCount(1), "c"),
            Err(AuthError::InvalidValue { what: "username" })
        );
        // Quotes and backslashes in a username are escaped and survive.
        let odd = Credentials::new("a\"b\\c", "p");
        let v = c.authorize(&odd, &m, "sip:x", NonceCount(1), "c").unwrap();
        assert_eq!(hdr(&v).param("username"), Some("a\"b\\c"));
        assert_eq!(
            format!("{:?}", odd),
            "Credentials { username: \"a\\\"b\\\\c\", password: \"<redacted>\" }"
        );
    }

    #[test]
    fn nonce_count_format() {
        assert_eq!(NonceCount(1).to_string(), "00000001");
        assert_eq!(NonceCount(0xabc).to_string(), "00000abc");
        assert_eq!(NonceCount::parse("0000000A"), Some(NonceCount(10)));
        assert_eq!(NonceCount::parse("1"), None);
        assert_eq!(NonceCount::parse("+0000001"), None);
        assert_eq!(NonceCount(u32::MAX).next(), NonceCount(0));
    }

    fn server() -> DigestServer {
        DigestServer::new("trunk.vocelio.test", SECRET)
    }

    fn lookup(name: &str) -> Option<Credentials> {
        (name == "alice").then(|| Credentials::new("alice", "correct horse"))
    }

    fn ruri() -> Uri {
        Uri::parse("sip:+15550100@trunk.vocelio.test;user=phone").unwrap()
    }

    /// Client answers `server`'s challenge issued at `issued`.
    fn answer(
        server: &DigestServer,
        issued: u64,
        alg: Algorithm,
        password: &str,
        method: &Method,
        uri: &str,
    ) -> AuthHeader {
        let ch = DigestChallenge::select([&hdr(&server.challenge(issued, alg))]).unwrap();
        assert_eq!(ch.algorithm, alg);
        let v = ch
            .authorize(
                &Credentials::new("alice", password),
                method,
                uri,
                NonceCount(1),
                "c0ffee42",
            )
            .unwrap();
        hdr(&v)
    }

    #[test]
    fn round_trip_both_algorithms() {
        let s = server();
        for alg in [Algorithm::Md5, Algorithm::Sha256] {
            let a = answer(
                &s,
                NOW,
                alg,
                "correct horse",
                &Method::Invite,
                &ruri().to_string(),
            );
            let user = s
                .verify(NOW + 299, &Method::Invite, &ruri(), &a, lookup)
                .unwrap();
            assert_eq!(
                user,
                VerifiedUser {
                    username: "alice".into(),
                    algorithm: alg,
                    nonce_issued_at: NOW,
                }
            );
        }
    }

    #[test]
    fn challenge_shape() {
        let s = server();
        let c = hdr(&s.challenge(NOW, Algorithm::Sha256));
        assert_eq!(c.scheme, "Digest");
        assert_eq!(c.param("realm"), Some("trunk.vocelio.test"));
        assert_eq!(c.param("algorithm"), Some("SHA-256"));
        assert_eq!(c.param("qop"), Some("auth"));
        assert_eq!(c.param("stale"), None);
        assert_eq!(c.param("nonce").unwrap().len(), 80);
        assert_eq!(c.param("nonce"), Some(s.nonce(NOW).as_str()));
        assert_ne!(s.nonce(NOW), s.nonce(NOW + 1));
        let st = DigestChallenge::parse(&hdr(&s.stale_challenge(NOW, Algorithm::Md5))).unwrap();
        assert!(st.stale);
        // Another realm with the same secret makes different nonces.
        let other = DigestServer::new("other.test", SECRET);
        assert_ne!(other.nonce(NOW), s.nonce(NOW));
        let debug = format!("{s:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("90, 90"),
            "{debug}"
        );
    }

    #[test]
    fn wrong_password() {
        let s = server();
        let a = answer(
            &s,
            NOW,
            Algorithm::Sha256,
            "battery staple",
            &Method::Invite,
            &ruri().to_string(),
        );
        assert_eq!(
            s.verify(NOW, &Method::Invite, &ruri(), &a, lookup),
            Err(AuthError::WrongResponse {
                username: "alice".into()
            })
        );
        // Wrong password and an old nonce: not stale (RFC 2617 §3.2.1).
        assert!(matches!(
            s.verify(NOW + 3600, &Method::Invite, &ruri(), &a, lookup),
            Err(AuthError::WrongResponse { .. })
        ));
    }

    #[test]
    fn unknown_user() {
        let s = server();
        let a = answer(
            &s,
            NOW,
            Algorithm::Sha256,
            "x",
            &Method::Invite,
            &ruri().to_string(),
        );
        assert!(matches!(
            s.verify(NOW, &Method::Invite, &ruri(), &a, |_| None),
            Err(AuthError::UnknownUser { .. })
        ));
    }

    #[test]
    fn wrong_realm() {
        let other = DigestServer::new("elsewhere.test", SECRET);
        let a = answer(
            &other,
            NOW,
            Algorithm::Md5,
            "correct horse",
            &Method::Invite,
            &ruri().to_string(),
        );
        assert_eq!(
            server().verify(NOW, &Method::Invite, &ruri(), &a, lookup),
            Err(AuthError::RealmMismatch {
                expected: "trunk.vocelio.test".into(),
                actual: "elsewhere.test".into()
            })
        );
    }

    fn with_param(a: &AuthHeader, name: &str, value: &str) -> AuthHeader {
        let mut a = a.clone();
        for p in &mut a.params {
            if p.name.eq_ignore_ascii_case(name) {
                p.value = value.to_owned();
            }
        }
        a
    }

    #[test]
    fn tampered_nonce() {
        let s = server();
        let a = answer(
            &s,
            NOW,
            Algorithm::Sha256,
            "correct horse",
            &Method::Invite,
            &ruri().to_string(),
        );
        let nonce = a.param("nonce").unwrap().to_owned();
        // Re-dating the nonce (to dodge expiry) breaks the MAC.
        let mut redated = hex::decode(&nonce).unwrap();
        redated[7] ^= 1;
        // Flip one MAC bit; truncate; garbage; another server's secret.
        let mut flipped = hex::decode(&nonce).unwrap();
        flipped[39] ^= 0x80;
        let foreign = DigestServer::new("trunk.vocelio.test", [1; 32]).nonce(NOW);
        for bad in [
            hex::encode(redated),
            hex::encode(flipped),
            nonce[..78].to_owned(),
            "zz".repeat(40),
            "dcd98b7102dd2f0e8b11d0f600bfb0c093".to_owned(),
            foreign,
        ] {
            assert_eq!(
                s.verify(
                    NOW,
                    &Method::Invite,
                    &ruri(),
                    &with_param(&a, "nonce", &bad),
                    lookup
                ),
                Err(AuthError::InvalidNonce),
                "{bad}"
            );
        }
        // A client that recomputes its response over a forged nonce still fails.
        let mut forged = hex::decode(&nonce).unwrap();
        forged[..8].copy_from_slice(&(NOW + 10_000).to_be_bytes());
        let forged = hex::encode(forged);
        let ch = DigestChallenge {
            realm: s.realm().to_owned(),
            nonce: forged,
            opaque: None,
            algorithm: Algorithm::Sha256,
            qop: Some(Qop::Auth),
            stale: false,
        };
        let v = ch
            .authorize(
                &Credentials::new("alice", "correct horse"),
                &Method::Invite,
                &ruri().to_string(),
                NonceCount(1),
                "c",
            )
            .unwrap();
        assert_eq!(
            s.verify(NOW + 10_000, &Method::Invite, &ruri(), &hdr(&v), lookup),
            Err(AuthError::InvalidNonce)
        );
    }

    #[test]
    fn expired_nonce_is_stale() {
        let s = server();
        let a = answer(
            &s,
            NOW,
            Algorithm::Sha256,
            "correct horse",
            &Method::Register,
            &ruri().to_string(),
        );
        assert!(s
            .verify(NOW + 300, &Method::Register, &ruri(), &a, lookup)
            .is_ok());
        let err = s
            .verify(NOW + 301, &Method::Register, &ruri(), &a, lookup)
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::StaleNonce {
                age_secs: 301,
                max_age_secs: 300
            }
        );
        assert!(err.is_stale());
        // Clock stepped back.
        let err = s
            .verify(NOW - 1, &Method::Register, &ruri(), &a, lookup)
            .unwrap_err();
        assert!(err.is_stale(), "{err}");
        // A shorter limit.
        let quick = server().with_max_age(10);
        assert!(quick
            .verify(NOW + 11, &Method::Register, &ruri(), &a, lookup)
            .unwrap_err()
            .is_stale());
    }

    #[test]
    fn replay_against_another_method_or_uri() {
        let s = server();
        let a = answer(
            &s,
            NOW,
            Algorithm::Sha256,
            "correct horse",
            &Method::Register,
            &ruri().to_string(),
        );
        assert!(s
            .verify(NOW, &Method::Register, &ruri(), &a, lookup)
            .is_ok());
        // Same credentials on an INVITE.
        assert!(matches!(
            s.verify(NOW, &Method::Invite, &ruri(), &a, lookup),
            Err(AuthError::WrongResponse { .. })
        ));
        // Same credentials sent to another Request-URI.
        let elsewhere = Uri::parse("sip:+15550199@trunk.vocelio.test;user=phone").unwrap();
        assert!(matches!(
            s.verify(NOW, &Method::Register, &elsewhere, &a, lookup),
            Err(AuthError::UriMismatch { .. })
        ));
        // ... with the uri parameter edited to match: the response breaks.
        let edited = with_param(&a, "uri", &elsewhere.to_string());
        assert!(matches!(
            s.verify(NOW, &Method::Register, &elsewhere, &edited, lookup),
            Err(AuthError::WrongResponse { .. })
        ));
        // Other nc or cnonce: the response breaks too.
        for (p, v) in [("nc", "00000002"), ("cnonce", "deadbeef")] {
            assert!(matches!(
                s.verify(
                    NOW,
                    &Method::Register,
                    &ruri(),
                    &with_param(&a, p, v),
                    lookup
                ),
                Err(AuthError::WrongResponse { .. })
            ));
        }
    }

    #[test]
    fn uri_compared_as_a_uri() {
        let s = server();
        // The client wrote the Request-URI non-canonically; the digest uri
        // repeats it as written.
        let written = "sip:%2B15550100@TRUNK.vocelio.test;user=phone";
        let parsed = Uri::parse(written).unwrap();
        let a = answer(
            &s,
            NOW,
            Algorithm::Md5,
            "correct horse",
            &Method::Invite,
            written,
        );
        assert!(s.verify(NOW, &Method::Invite, &parsed, &a, lookup).is_ok());
    }

    #[test]
    fn malformed_credentials() {
        let s = server();
        let a = answer(
            &s,
            NOW,
            Algorithm::Sha256,
            "correct horse",
            &Method::Invite,
            &ruri().to_string(),
        );
        let check = |h: &AuthHeader| s.verify(NOW, &Method::Invite, &ruri(), h, lookup);
        let mut basic = a.clone();
        basic.scheme = "Basic".into();
        assert!(matches!(check(&basic), Err(AuthError::NotDigest { .. })));
        for name in ["username", "nonce", "uri", "response", "cnonce", "nc"] {
            let mut h = a.clone();
            h.params.retain(|p| p.name != name);
            assert_eq!(check(&h), Err(AuthError::MissingParam { name }), "{name}");
        }
        assert!(matches!(
            check(&with_param(&a, "nc", "1")),
            Err(AuthError::BadNonceCount { .. })
        ));
        assert!(matches!(
            check(&with_param(&a, "qop", "auth-int")),
            Err(AuthError::UnsupportedQop { .. })
        ));
        assert!(matches!(
            check(&with_param(&a, "algorithm", "SHA-512-256")),
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            check(&with_param(&a, "response", "not hex")),
            Err(AuthError::WrongResponse { .. })
        ));
        // Upper-case hex in the response is the same digest.
        let upper = a.param("response").unwrap().to_ascii_uppercase();
        assert!(check(&with_param(&a, "response", &upper)).is_ok());
        // No qop: refused unless legacy MD5 is allowed, and never for SHA-256.
        let mut h = a.clone();
        h.params.retain(|p| p.name != "qop");
        assert_eq!(
            check(&h),
            Err(AuthError::QopRequired {
                algorithm: Algorithm::Sha256
            })
        );
        let sha_only = server().with_algorithms(&[Algorithm::Sha256]);
        let md5 = answer(
            &s,
            NOW,
            Algorithm::Md5,
            "correct horse",
            &Method::Invite,
            &ruri().to_string(),
        );
        assert!(matches!(
            sha_only.verify(NOW, &Method::Invite, &ruri(), &md5, lookup),
            Err(AuthError::UnsupportedAlgorithm { .. })
        ));
    }

    #[test]
    fn legacy_md5_server_side() {
        let s = server().allow_legacy_md5(true);
        let nonce = s.nonce(NOW);
        let ch = DigestChallenge {
            realm: s.realm().to_owned(),
            nonce,
            opaque: None,
            algorithm: Algorithm::Md5,
            qop: None,
            stale: false,
        };
        let v = ch
            .authorize(
                &Credentials::new("alice", "correct horse"),
                &Method::Invite,
                &ruri().to_string(),
                NonceCount(1),
                "",
            )
            .unwrap();
        assert!(s
            .verify(NOW, &Method::Invite, &ruri(), &hdr(&v), lookup)
            .is_ok());
        assert_eq!(
            server().verify(NOW, &Method::Invite, &ruri(), &hdr(&v), lookup),
            Err(AuthError::QopRequired {
                algorithm: Algorithm::Md5
            })
        );
    }

    const REGISTER: &str = "REGISTER sip:trunk.vocelio.test SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK776asdhds\r\n\
        Max-Forwards: 70\r\n\
        From: <sip:alice@trunk.vocelio.test>;tag=1928301774\r\n\
        To: <sip:alice@trunk.vocelio.test>\r\n\
        Call-ID: a84b4c76e66710@192.0.2.10\r\n\
        CSeq: 1 REGISTER\r\n\
        Contact: <sip:alice@192.0.2.10:5060>\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn full_exchange_over_messages() {
        let s = server();
        let SipMessage::Request(mut req) = parse_datagram(REGISTER.as_bytes()).unwrap() else {
            panic!("request");
        };
        // No credentials yet.
        assert!(matches!(
            s.verify_request(NOW, &req, ChallengeKind::Www, lookup),
            Err(AuthError::NoCredentials { .. })
        ));
        // 401 with both algorithms.
        let mut resp = req.make_response(StatusCode::new(401).unwrap(), "Unauthorized");
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            resp.headers
                .append(HeaderName::WwwAuthenticate, &s.challenge(NOW, alg))
                .unwrap();
        }
        let resp = match parse_datagram(&SipMessage::Response(resp).to_bytes()).unwrap() {
            SipMessage::Response(r) => r,
            SipMessage::Request(_) => panic!("response"),
        };
        let h = authorize_request(
            &resp,
            &req,
            &Credentials::new("alice", "correct horse"),
            NonceCount::FIRST,
            "4a3b2c1d",
        )
        .unwrap();
        assert_eq!(h.name(), &HeaderName::Authorization);
        // A credentials line for another realm first: skipped.
        req.headers
            .append(
                HeaderName::Authorization,
                "Digest username=\"x\", realm=\"proxy.example\", nonce=\"n\", uri=\"sip:x\", response=\"00\"",
            )
            .unwrap();
        req.headers.push(h);
        let req = match parse_datagram(&SipMessage::Request(req).to_bytes()).unwrap() {
            SipMessage::Request(r) => r,
            SipMessage::Response(_) => panic!("request"),
        };
        let user = s
            .verify_request(NOW + 1, &req, ChallengeKind::Www, lookup)
            .unwrap();
        assert_eq!(
            (user.username.as_str(), user.algorithm),
            ("alice", Algorithm::Sha256)
        );
        // Proxy-Authorization is not looked at for a Www check, and vice versa.
        assert!(matches!(
            s.verify_request(NOW + 1, &req, ChallengeKind::Proxy, lookup),
            Err(AuthError::NoCredentials { .. })
        ));
        // 407 gives Proxy-Authorization; 200 is not a challenge.
        let mut p = req.make_response(StatusCode::new(407).unwrap(), "");
        p.headers
            .append(
                HeaderName::ProxyAuthenticate,
                &s.challenge(NOW, Algorithm::Md5),
            )
            .unwrap();
        let h = authorize_request(&p, &req, &mufasa(), NonceCount(2), "ab").unwrap();
        assert_eq!(h.name(), &HeaderName::ProxyAuthorization);
        let ok = req.make_response(StatusCode::OK, "OK");
        assert_eq!(
            authorize_request(&ok, &req, &mufasa(), NonceCount(2), "ab"),
            Err(AuthError::NotAChallenge { status: 200 })
        );
    }

    #[test]
    fn ct_eq_basics() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(ct_eq(b"", b""));
    }
}
