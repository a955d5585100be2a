//! The SIP trunk endpoint: calls on top of the transaction layer, sans-IO.
//!
//! [`Endpoint`] takes messages and `now` in, and hands back datagrams to send
//! ([`Endpoint::poll_transmit`]), call events ([`Endpoint::poll_event`]) and
//! its next deadline ([`Endpoint::poll_timeout`]). It never reads the clock,
//! never touches a socket and never spawns; [`driver`] runs it on tokio.
//!
//! Inbound: an INVITE is admitted if its source is in a trunk's allowlist (or
//! it authenticates with digest), routed by the Request-URI user (the DID) to
//! an agent, answered `100 Trying`, `180 Ringing` (if an answer delay is
//! configured), then `200 OK` with our SDP answer (or our offer, for a late
//! offer). BYE, CANCEL, re-INVITE (hold/unhold), INFO (DTMF), OPTIONS are
//! handled in and out of dialogs; unknown methods get 501, unsupported
//! `Require` 420. Outbound: [`Endpoint::originate`] places a call through a
//! trunk, answering digest challenges with the trunk's credentials;
//! [`Endpoint::transfer`] sends a blind REFER and hangs up when the NOTIFY
//! reports success.

pub mod config;
pub mod dialog;
pub mod driver;
pub mod ids;
pub mod ports;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::sdp::{self, LocalMedia, Negotiated, SessionDescription};
use crate::sip::auth::{self, ChallengeKind, Credentials, DigestServer, NonceCount};
use crate::sip::transaction::{
    CancelTarget, Peer, TransactionKey, TransactionLayer, Transmit, TxEvent,
};
use crate::sip::{
    check_request, check_require, HeaderName, Headers, Method, NameAddr, RejectCause, Request,
    Response, SipMessage, SipVersion, StatusCode, Uri,
};
pub use config::{
    normalise_number, AgentId, DigestCredentials, EndpointConfig, IpNet, TrunkConfig,
};
use dialog::{push, Dialog};
use ids::IdGen;
use ports::PortAllocator;

/// Methods we answer (sent in `Allow`).
pub const ALLOW: &str = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REFER, NOTIFY";

/// A call's handle, stable for the call's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

impl std::fmt::Display for CallHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "call-{}", self.0)
    }
}

/// Why a call ended.
///
/// For an outbound call that never got answered (a dialer deciding whether
/// to retry), [`HangupCause::is_busy`] and [`HangupCause::is_no_answer`]
/// sort the causes: busy is `Rejected(486 | 600)`; no answer is
/// `Rejected(480 | 408 | 487)` (unavailable, the far side timed out, the
/// request was cancelled by someone else) or [`HangupCause::Timeout`] (the
/// trunk never answered our INVITE). Any other `Rejected` status is a
/// failure (bad number, forbidden, server error). A call we cancelled with
/// [`Endpoint::hangup`] ends with `LocalHangup`, not `Rejected(487)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HangupCause {
    /// The peer sent BYE.
    RemoteBye,
    /// We hung up (command).
    LocalHangup,
    /// The caller cancelled before we answered.
    Cancelled,
    /// Our outbound call was refused with this status.
    Rejected(u16),
    /// The peer never acknowledged our 200 OK.
    AckTimeout,
    /// The peer stopped answering (transaction timeout).
    Timeout,
    /// Blind transfer completed: the caller is now talking to the transfer target.
    Transferred,
}

impl HangupCause {
    /// The callee was busy: `Rejected(486 Busy Here)` or `Rejected(600 Busy Everywhere)`.
    pub fn is_busy(&self) -> bool {
        matches!(self, HangupCause::Rejected(486 | 600))
    }

    /// Nobody answered: `Rejected(480 Temporarily Unavailable | 408 Request
    /// Timeout | 487 Request Terminated)`, or our INVITE timed out
    /// ([`HangupCause::Timeout`]).
    pub fn is_no_answer(&self) -> bool {
        matches!(
            self,
            HangupCause::Rejected(480 | 408 | 487) | HangupCause::Timeout
        )
    }
}

/// What happened on a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallEvent {
    /// An inbound call was admitted and routed; it is being answered.
    Incoming {
        /// The call.
        call: CallHandle,
        /// The agent answering it.
        agent: AgentId,
        /// The dialled number (personal data: do not log at info).
        did: String,
        /// Local RTP port reserved for it.
        rtp_port: u16,
    },
    /// We sent the INVITE of an outbound call ([`Endpoint::originate`],
    /// [`Endpoint::originate_as`]). Comes before any of the call's other
    /// events; a call that is refused or never answered then ends with
    /// [`CallEvent::Hangup`] (see [`HangupCause`] for busy and no answer).
    Outgoing {
        /// The call.
        call: CallHandle,
        /// The agent that talks on the call once answered: the one given to
        /// `originate_as`, or for `originate` the endpoint's default agent at
        /// that moment (`None`: none configured, the media bridge uses its own default).
        agent: Option<AgentId>,
        /// The dialled target as given to `originate` (personal data: do not log at info).
        to: String,
    },
    /// Our outbound call is ringing (180/183).
    Ringing {
        /// The call.
        call: CallHandle,
    },
    /// The call is up; media as negotiated (`None` until a late offer's ACK).
    Answered {
        /// The call.
        call: CallHandle,
        /// Negotiated media.
        media: Option<Negotiated>,
        /// Our RTP port for it (RTCP is the one above).
        rtp_port: u16,
    },
    /// The peer changed the media (re-INVITE: hold, unhold, new address), or a late offer completed.
    MediaUpdated {
        /// The call.
        call: CallHandle,
        /// Negotiated media.
        media: Negotiated,
    },
    /// A DTMF digit by SIP INFO.
    Dtmf {
        /// The call.
        call: CallHandle,
        /// `0-9`, `*`, `#`, `A-D`.
        digit: char,
        /// Duration in ms, when given.
        duration_ms: Option<u32>,
    },
    /// The peer accepted our REFER (202).
    TransferAccepted {
        /// The call.
        call: CallHandle,
    },
    /// Our transfer failed (REFER refused, or the NOTIFY reported a failure).
    TransferFailed {
        /// The call.
        call: CallHandle,
        /// Status code reported.
        status: u16,
    },
    /// The call is over; its state and RTP port are released.
    Hangup {
        /// The call.
        call: CallHandle,
        /// Why.
        cause: HangupCause,
    },
    /// A trunk registration succeeded (refreshed before `expires` seconds).
    Registered {
        /// Trunk name.
        trunk: String,
        /// Granted lifetime.
        expires: u32,
    },
    /// A trunk registration failed.
    RegistrationFailed {
        /// Trunk name.
        trunk: String,
        /// Status, or 408 for a timeout.
        status: u16,
    },
}

/// Errors from endpoint commands.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// No trunk with that name.
    #[error("no trunk named {0:?}")]
    UnknownTrunk(String),
    /// No live call with that handle.
    #[error("no call {0}")]
    UnknownCall(CallHandle),
    /// The call is not in a state that allows this.
    #[error("{call} is {state}: cannot {action}")]
    WrongState {
        /// The call.
        call: CallHandle,
        /// Its state.
        state: &'static str,
        /// What was asked.
        action: &'static str,
    },
    /// A URI that does not parse.
    #[error("invalid URI {0:?}")]
    BadUri(String),
    /// Every RTP port is in use, or the call limit is reached.
    #[error("no capacity: {0}")]
    Capacity(&'static str),
    /// The transaction layer refused the request.
    #[error("transaction layer: {0}")]
    Transaction(String),
}

/// Counters for operators (also exported as metrics by the binary).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Calls now alive.
    pub active_calls: usize,
    /// Inbound calls answered.
    pub calls_answered: u64,
    /// Calls ended.
    pub calls_ended: u64,
    /// Requests refused (4xx/5xx/6xx we sent to new requests).
    pub requests_rejected: u64,
    /// Requests refused for access control (403/401 without success).
    pub unauthorised: u64,
    /// Datagrams that did not parse.
    pub malformed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inbound, 180 sent, answering at a deadline.
    Ringing,
    /// Inbound, 200 sent, waiting for the ACK.
    AwaitingAck,
    /// Outbound, INVITE sent.
    Calling,
    /// Established.
    Confirmed,
    /// BYE sent.
    Terminating,
}

impl State {
    fn name(self) -> &'static str {
        match self {
            State::Ringing => "ringing",
            State::AwaitingAck => "awaiting ACK",
            State::Calling => "calling",
            State::Confirmed => "confirmed",
            State::Terminating => "terminating",
        }
    }
}

#[derive(Debug)]
struct Call {
    state: State,
    peer: Peer,
    dialog: Option<Dialog>,
    /// Inbound: the INVITE server transaction and request, until the final response.
    invite: Option<(TransactionKey, Request)>,
    /// Our tag (inbound: chosen at the INVITE).
    local_tag: String,
    rtp_port: u16,
    local_media: LocalMedia,
    /// Our SDP (offer or answer) last sent.
    local_sdp: Option<SessionDescription>,
    media: Option<Negotiated>,
    /// Inbound late offer: we offered in the 200, the answer comes in the ACK.
    late_offer: bool,
    /// Key of this call in `by_call_id`.
    call_id: String,
    /// Outbound: the INVITE we sent (for ACK, CANCEL, auth retries).
    out_invite: Option<Request>,
    auth_attempts: u8,
    /// Outbound: the trunk's credentials when the call was placed (a later
    /// [`Endpoint::set_trunks`] does not disturb calls in progress).
    outbound_auth: Option<DigestCredentials>,
    pending_transfer: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKind {
    Answer,
    /// Send (or refresh) the REGISTER of the trunk whose [`TrunkReg::id`] this is.
    Register(u64),
}

/// One trunk's registration state, kept beside `cfg.trunks` (same index).
///
/// Timers and REGISTER transactions name a trunk by `id`, never by index,
/// so [`Endpoint::set_trunks`] can reorder, replace or remove trunks: late
/// timers and responses for an id no longer listed are dropped.
#[derive(Debug, Clone)]
struct TrunkReg {
    id: u64,
    cseq: u32,
    /// The last REGISTER sent (to answer its challenge).
    last: Option<Request>,
    /// Whether that REGISTER carried credentials.
    authed: bool,
}

impl TrunkReg {
    fn new(id: u64) -> Self {
        TrunkReg {
            id,
            cseq: 0,
            last: None,
            authed: false,
        }
    }
}

/// Whether two trunk configs register the same way (so a running
/// registration survives a change to the other fields).
fn same_registration(a: &TrunkConfig, b: &TrunkConfig) -> bool {
    a.name == b.name
        && a.address == b.address
        && a.transport == b.transport
        && a.outbound_auth == b.outbound_auth
        && a.register == b.register
        && a.domain == b.domain
}

/// The SIP endpoint core.
#[derive(Debug)]
pub struct Endpoint {
    cfg: EndpointConfig,
    tx: TransactionLayer,
    ids: IdGen,
    ports: PortAllocator,
    digest: DigestServer,
    calls: HashMap<CallHandle, Call>,
    by_call_id: HashMap<String, CallHandle>,
    /// Client transactions we started: what they were for.
    client_tx: HashMap<TransactionKey, (CallHandle, Method)>,
    /// REGISTER transactions in flight: the [`TrunkReg::id`] they are for.
    register_tx: HashMap<TransactionKey, u64>,
    /// Per trunk (same index as `cfg.trunks`): registration state.
    regs: Vec<TrunkReg>,
    next_reg_id: u64,
    timers: BinaryHeap<Reverse<(Instant, TimerKind, u64)>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<CallEvent>,
    next_handle: u64,
    stats: EndpointStats,
    /// Unix time of `epoch` for nonces: `now` is monotonic, nonces need wall-clock seconds.
    epoch: (Instant, u64),
}

/// A status code we chose (always in range; a bad one degrades to 500).
fn status(code: u16) -> StatusCode {
    StatusCode::new(code).unwrap_or(StatusCode::NOT_IMPLEMENTED)
}

impl Endpoint {
    /// An endpoint with `cfg`; `now` and `unix_secs` anchor its clock for nonces.
    pub fn new(cfg: EndpointConfig, now: Instant, unix_secs: u64) -> Result<Self, EndpointError> {
        let ports = PortAllocator::new(cfg.rtp_ports.0, cfg.rtp_ports.1)
            .map_err(|_| EndpointError::Capacity("RTP port range is empty"))?;
        let digest =
            DigestServer::new(&cfg.realm, cfg.nonce_secret).with_algorithms(&cfg.digest_algorithms);
        let tx = TransactionLayer::new(cfg.transactions.clone())
            .map_err(|e| EndpointError::Transaction(e.to_string()))?;
        let mut ep = Endpoint {
            tx,
            ids: IdGen::new(cfg.seed),
            ports,
            digest,
            calls: HashMap::new(),
            by_call_id: HashMap::new(),
            client_tx: HashMap::new(),
            register_tx: HashMap::new(),
            regs: (0..cfg.trunks.len() as u64).map(TrunkReg::new).collect(),
            next_reg_id: cfg.trunks.len() as u64,
            timers: BinaryHeap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_handle: 1,
            stats: EndpointStats::default(),
            epoch: (now, unix_secs),
            cfg,
        };
        for i in 0..ep.cfg.trunks.len() {
            if ep.cfg.trunks[i].register.is_some() {
                let id = ep.regs[i].id;
                ep.timers.push(Reverse((now, TimerKind::Register(id), 0)));
            }
        }
        Ok(ep)
    }

    /// Counters.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            active_calls: self.calls.len(),
            ..self.stats.clone()
        }
    }

    /// Live transactions (they outlive calls by the RFC 3261 timers).
    pub fn transactions(&self) -> usize {
        self.tx.len()
    }

    /// RTP ports in use.
    pub fn ports_in_use(&self) -> usize {
        self.ports.in_use()
    }

    fn unix(&self, now: Instant) -> u64 {
        self.epoch.1 + now.saturating_duration_since(self.epoch.0).as_secs()
    }

    fn via(&mut self, transport: crate::sip::transaction::TransportKind) -> String {
        let t = match transport {
            crate::sip::transaction::TransportKind::Udp => "UDP",
            crate::sip::transaction::TransportKind::Tcp => "TCP",
        };
        format!(
            "SIP/2.0/{t} {};branch={};rport",
            self.cfg.public_addr,
            self.ids.branch()
        )
    }

    fn contact(&self) -> String {
        format!("<sip:vocelio@{}>", self.cfg.public_addr)
    }

    fn local_media(&mut self, port: u16) -> LocalMedia {
        LocalMedia {
            addr: self.cfg.media_ip,
            rtp_port: port,
            codecs: self.cfg.codecs.clone(),
            telephone_event: true,
            ptime: 20,
            session_id: self.ids.next_u64() >> 1,
            session_version: 1,
            username: "vocelio".into(),
        }
    }

    // ------------------------------------------------------------------ input

    /// A datagram (UDP) from `from`.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8], from: Peer) {
        match crate::sip::parse_datagram(bytes) {
            Ok(msg) => self.handle_message(now, msg, from),
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(peer = %from.addr, error = %e, "malformed SIP datagram dropped");
            }
        }
    }

    /// A parsed message (UDP, or framed from TCP) from `from`.
    pub fn handle_message(&mut self, now: Instant, msg: SipMessage, from: Peer) {
        self.tx.handle_message(now, msg, from);
        self.drain_tx(now);
    }

    /// Run timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.drain_tx(now);
        while let Some(Reverse((at, kind, id))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            match kind {
                TimerKind::Answer => self.answer_due(now, CallHandle(id)),
                TimerKind::Register(i) => self.send_register(now, i, None),
            }
        }
        self.drain_tx(now);
    }

    /// The next instant [`Endpoint::handle_timeout`] wants to run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.timers.peek().map(|Reverse((at, _, _))| *at);
        match (own, self.tx.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Next datagram/segment to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits
            .pop_front()
            .or_else(|| self.tx.poll_transmit())
    }

    /// Next call event.
    pub fn poll_event(&mut self) -> Option<CallEvent> {
        self.events.pop_front()
    }

    fn drain_tx(&mut self, now: Instant) {
        while let Some(ev) = self.tx.poll_event() {
            match ev {
                TxEvent::Request { key, request, from } => self.on_request(now, key, request, from),
                TxEvent::Ack { request, from } => self.on_ack(now, request, from),
                TxEvent::Response { key, response } => self.on_response(now, key, response),
                TxEvent::Timeout { key, .. } => self.on_tx_timeout(now, key),
                TxEvent::Cancel {
                    key,
                    target,
                    request,
                    ..
                } => self.on_cancel(now, key, target, request),
                TxEvent::AckTimeout { call } => {
                    // RFC 3261 §13.3.1.4: our 2xx was never acknowledged: end the call with a BYE.
                    if let Some(&handle) = self.by_call_id.get(call.call_id.as_str()) {
                        tracing::info!(call = %handle, "no ACK for 200 OK: hanging up");
                        self.send_bye(now, handle);
                        self.finish(handle, HangupCause::AckTimeout);
                    }
                }
                TxEvent::StrayInvite2xx { response, .. } => {
                    tracing::debug!(status = %response.status, "2xx for an INVITE we no longer track: dropped");
                }
                _ => {}
            }
        }
    }

    // ------------------------------------------------------------------ responses we send

    // One private helper builds every response shape (tag, extra headers, body).
    #[allow(clippy::too_many_arguments)]
    fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        req: &Request,
        code: u16,
        to_tag: Option<&str>,
        extra: &[(HeaderName, String)],
        body: Option<(&str, Vec<u8>)>,
    ) {
        let mut resp = req.make_response(status(code), status(code).canonical_reason());
        if let Some(tag) = to_tag {
            add_to_tag(&mut resp, tag);
        }
        push(&mut resp.headers, HeaderName::Server, &self.cfg.user_agent);
        for (name, value) in extra {
            push(&mut resp.headers, name.clone(), value);
        }
        if let Some((ctype, bytes)) = body {
            push(&mut resp.headers, HeaderName::ContentType, ctype);
            resp.body = bytes;
        }
        if code >= 300 {
            self.stats.requests_rejected += 1;
        }
        if let Err(e) = self.tx.send_response(now, key, resp) {
            tracing::debug!(error = %e, code, "response not sent");
        }
    }

    // ------------------------------------------------------------------ requests

    fn admitted(&mut self, now: Instant, key: &TransactionKey, req: &Request, from: Peer) -> bool {
        let ip = from.addr.ip();
        if self
            .cfg
            .trunks
            .iter()
            .any(|t| t.allow_from.iter().any(|n| n.contains(ip)))
        {
            return true;
        }
        let has_users = self.cfg.trunks.iter().any(|t| !t.inbound_users.is_empty());
        if has_users {
            let trunks = &self.cfg.trunks;
            let lookup = |name: &str| {
                trunks
                    .iter()
                    .flat_map(|t| t.inbound_users.iter())
                    .find(|u| u.username == name)
                    .map(|u| Credentials::new(u.username.clone(), u.password.clone()))
            };
            let unix = self.unix(now);
            match self
                .digest
                .verify_request(unix, req, ChallengeKind::Www, lookup)
            {
                Ok(user) => {
                    tracing::debug!(user = %user.username, "digest authentication accepted");
                    return true;
                }
                Err(e) => {
                    tracing::debug!(peer = %from.addr, error = %e, "digest authentication failed")
                }
            }
            let stale = req
                .headers
                .authorization()
                .map(|a| !a.is_empty())
                .unwrap_or(false);
            let mut challenges = Vec::new();
            for (n, alg) in self.cfg.digest_algorithms.iter().enumerate() {
                let value = if stale && n == 0 {
                    self.digest.stale_challenge(unix, *alg)
                } else {
                    self.digest.challenge(unix, *alg)
                };
                challenges.push((HeaderName::WwwAuthenticate, value));
            }
            self.stats.unauthorised += 1;
            let tag = self.ids.tag();
            self.respond(now, key, req, 401, Some(&tag), &challenges, None);
            return false;
        }
        self.stats.unauthorised += 1;
        tracing::info!(peer = %from.addr, method = %req.method, "request from a source no trunk allows: 403");
        self.respond(now, key, req, 403, None, &[], None);
        false
    }

    fn on_request(&mut self, now: Instant, key: TransactionKey, req: Request, from: Peer) {
        if let Err(rej) = check_request(&req) {
            let code = rej.status.as_u16();
            let extra = if code == 405 || code == 501 {
                vec![(HeaderName::Allow, ALLOW.to_string())]
            } else {
                vec![]
            };
            self.respond(now, &key, &req, code, None, &extra, None);
            return;
        }
        if req.method != Method::Ack && req.method != Method::Cancel {
            if let Err(rej) = check_require(&req, &["replaces", "norefersub"]) {
                let extra = match &rej.cause {
                    RejectCause::BadExtension { unsupported } => {
                        vec![(
                            HeaderName::Unsupported,
                            unsupported
                                .iter()
                                .map(|t| t.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        )]
                    }
                    _ => vec![],
                };
                self.respond(now, &key, &req, rej.status.as_u16(), None, &extra, None);
                return;
            }
        }
        let in_dialog = req.headers.to().ok().and_then(|t| t.tag()).is_some();
        match req.method {
            Method::Options => {
                self.respond(
                    now,
                    &key,
                    &req,
                    200,
                    None,
                    &[
                        (HeaderName::Allow, ALLOW.into()),
                        (HeaderName::Accept, "application/sdp".into()),
                        (HeaderName::Supported, "replaces, norefersub".into()),
                    ],
                    None,
                );
            }
            Method::Invite if !in_dialog => {
                if self.admitted(now, &key, &req, from) {
                    self.new_inbound_call(now, key, req, from);
                }
            }
            Method::Invite => self.on_reinvite(now, key, req),
            Method::Bye => self.on_bye(now, key, req),
            Method::Info => self.on_info(now, key, req),
            Method::Notify => self.on_notify(now, key, req),
            Method::Refer => {
                // We do not let peers redirect our calls elsewhere.
                self.respond(now, &key, &req, 403, None, &[], None);
            }
            _ => {
                self.respond(
                    now,
                    &key,
                    &req,
                    405,
                    None,
                    &[(HeaderName::Allow, ALLOW.into())],
                    None,
                );
            }
        }
    }

    fn find_call(&self, req_headers: &Headers) -> Option<CallHandle> {
        let call_id = req_headers.call_id().ok()?;
        self.by_call_id.get(call_id.as_str()).copied()
    }

    fn new_inbound_call(&mut self, now: Instant, key: TransactionKey, req: Request, from: Peer) {
        let Ok(call_id) = req.headers.call_id() else {
            return;
        };
        if self.by_call_id.contains_key(call_id.as_str()) {
            // A new INVITE (new branch) for a Call-ID we already have: a loop or a fork.
            self.respond(now, &key, &req, 482, None, &[], None);
            return;
        }
        let did = match &req.uri {
            Uri::Sip(u) => u.user.clone().unwrap_or_default(),
            Uri::Tel(t) => t.number.clone(),
            _ => String::new(),
        };
        let did = normalise_number(&did);
        // Carriers send E.164 DIDs with or without the `+`: match either.
        let alt = match did.strip_prefix('+') {
            Some(bare) => bare.to_string(),
            None => format!("+{did}"),
        };
        let agent = self
            .cfg
            .numbers
            .get(&did)
            .or_else(|| self.cfg.numbers.get(&alt))
            .cloned()
            .or_else(|| self.cfg.default_agent.clone());
        let Some(agent) = agent else {
            tracing::info!("INVITE for a number with no agent: 404");
            self.respond(now, &key, &req, 404, None, &[], None);
            return;
        };
        // At the call limit, or out of RTP ports: busy, try again shortly.
        let port = if self.calls.len() < self.cfg.max_calls {
            self.ports.allocate()
        } else {
            None
        };
        let Some(port) = port else {
            self.respond(
                now,
                &key,
                &req,
                503,
                None,
                &[(HeaderName::RetryAfter, "5".into())],
                None,
            );
            return;
        };
        let local_tag = self.ids.tag();
        let mut local_media = self.local_media(port);
        // Offer in the INVITE (the usual case) or a late offer (we offer in the 200).
        let (local_sdp, media, late_offer) = if req.body.is_empty() {
            (sdp::create_offer(&local_media), None, true)
        } else {
            let offer = match SessionDescription::parse(&req.body) {
                Ok(o) => o,
                Err(e) => {
                    tracing::debug!(error = %e, "unparsable SDP offer");
                    self.ports.release(port);
                    self.respond(now, &key, &req, 400, None, &[], None);
                    return;
                }
            };
            match sdp::create_answer(&offer, &local_media) {
                Ok((answer, negotiated)) => (answer, Some(negotiated), false),
                Err(e) => {
                    tracing::info!(error = %e, "no common media: 488");
                    self.ports.release(port);
                    self.respond(
                        now,
                        &key,
                        &req,
                        488,
                        None,
                        &[(HeaderName::Accept, "application/sdp".into())],
                        None,
                    );
                    return;
                }
            }
        };
        local_media.session_version += 1;
        let handle = CallHandle(self.next_handle);
        self.next_handle += 1;
        self.respond(now, &key, &req, 100, None, &[], None);
        let call = Call {
            state: State::Ringing,
            peer: from,
            dialog: None,
            invite: Some((key.clone(), req.clone())),
            local_tag: local_tag.clone(),
            rtp_port: port,
            local_media,
            local_sdp: Some(local_sdp),
            media,
            late_offer,
            call_id: call_id.as_str().to_string(),
            out_invite: None,
            auth_attempts: 0,
            outbound_auth: None,
            pending_transfer: false,
        };
        self.by_call_id.insert(call_id.as_str().to_string(), handle);
        self.calls.insert(handle, call);
        self.events.push_back(CallEvent::Incoming {
            call: handle,
            agent,
            did,
            rtp_port: port,
        });
        if self.cfg.answer_delay.is_zero() {
            self.answer_due(now, handle);
        } else {
            let contact = self.contact();
            self.respond(
                now,
                &key,
                &req,
                180,
                Some(&local_tag),
                &[(HeaderName::Contact, contact)],
                None,
            );
            let at = now + self.cfg.answer_delay;
            self.timers.push(Reverse((at, TimerKind::Answer, handle.0)));
        }
    }

    fn answer_due(&mut self, now: Instant, handle: CallHandle) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.state != State::Ringing {
            return;
        }
        let Some((key, req)) = call.invite.take() else {
            return;
        };
        let sdp_bytes = call
            .local_sdp
            .as_ref()
            .map(|s| s.to_bytes())
            .unwrap_or_default();
        let local_tag = call.local_tag.clone();
        let mut resp = req.make_response(status(200), "OK");
        add_to_tag(&mut resp, &local_tag);
        push(&mut resp.headers, HeaderName::Contact, &self.contact());
        push(&mut resp.headers, HeaderName::Allow, ALLOW);
        push(
            &mut resp.headers,
            HeaderName::Supported,
            "replaces, norefersub",
        );
        push(&mut resp.headers, HeaderName::Server, &self.cfg.user_agent);
        push(
            &mut resp.headers,
            HeaderName::ContentType,
            "application/sdp",
        );
        resp.body = sdp_bytes;
        let dialog = Dialog::uas(&req, &local_tag, self.ids.next_u64() as u32 >> 1);
        if let Err(e) = self.tx.send_response(now, &key, resp) {
            tracing::debug!(error = %e, "200 OK not sent");
        }
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        match dialog {
            Ok(d) => call.dialog = Some(d),
            Err(e) => tracing::debug!(error = %e, "dialog not created"),
        }
        // The transaction layer retransmits the 2xx until the ACK (or reports AckTimeout).
        call.state = State::AwaitingAck;
        self.stats.calls_answered += 1;
        let media = call.media.clone();
        let rtp_port = call.rtp_port;
        self.events.push_back(CallEvent::Answered {
            call: handle,
            media,
            rtp_port,
        });
    }

    fn on_ack(&mut self, now: Instant, ack: Request, _from: Peer) {
        let Some(handle) = self.find_call(&ack.headers) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.state == State::AwaitingAck {
            call.state = State::Confirmed;
        }
        if call.late_offer {
            call.late_offer = false;
            let answer = SessionDescription::parse(&ack.body).ok();
            let offer = call.local_sdp.clone();
            match (offer, answer) {
                (Some(offer), Some(answer)) => match sdp::accept_answer(&offer, &answer) {
                    Ok(m) => {
                        call.media = Some(m.clone());
                        self.events.push_back(CallEvent::MediaUpdated {
                            call: handle,
                            media: m,
                        });
                    }
                    Err(e) => {
                        tracing::info!(call = %handle, error = %e, "late-offer answer in ACK unusable: hanging up");
                        self.send_bye(now, handle);
                        self.finish(handle, HangupCause::LocalHangup);
                    }
                },
                _ => {
                    tracing::info!(call = %handle, "late offer: ACK without an SDP answer: hanging up");
                    self.send_bye(now, handle);
                    self.finish(handle, HangupCause::LocalHangup);
                }
            }
        }
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        cancel_key: TransactionKey,
        target: CancelTarget,
        cancel: Request,
    ) {
        let invite_key = match target {
            CancelTarget::Pending(k) => k,
            CancelTarget::Answered(_) => {
                // Already answered: the CANCEL has no effect; the caller will BYE.
                self.respond(now, &cancel_key, &cancel, 200, None, &[], None);
                return;
            }
            CancelTarget::NotFound => {
                self.respond(now, &cancel_key, &cancel, 481, None, &[], None);
                return;
            }
        };
        self.respond(now, &cancel_key, &cancel, 200, None, &[], None);
        let Some(handle) = self.find_call(&cancel.headers) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if call.state != State::Ringing {
            return;
        }
        if let Some((_, req)) = call.invite.take() {
            let tag = call.local_tag.clone();
            self.respond(now, &invite_key, &req, 487, Some(&tag), &[], None);
        }
        self.finish(handle, HangupCause::Cancelled);
    }

    fn dialog_request_checked(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        req: &Request,
    ) -> Option<CallHandle> {
        let handle = self.find_call(&req.headers);
        let Some(handle) = handle else {
            self.respond(now, key, req, 481, None, &[], None);
            return None;
        };
        let seq = req.headers.cseq().map(|c| c.seq).unwrap_or(0);
        let fresh = self
            .calls
            .get_mut(&handle)
            .and_then(|c| c.dialog.as_mut())
            .map(|d| d.accept_remote_cseq(seq));
        if fresh == Some(false) {
            self.respond(
                now,
                key,
                req,
                500,
                None,
                &[(HeaderName::RetryAfter, "1".into())],
                None,
            );
            return None;
        }
        Some(handle)
    }

    fn on_bye(&mut self, now: Instant, key: TransactionKey, req: Request) {
        let Some(handle) = self.dialog_request_checked(now, &key, &req) else {
            return;
        };
        self.respond(now, &key, &req, 200, None, &[], None);
        self.finish(handle, HangupCause::RemoteBye);
    }

    /// 200 OK to an in-dialog INVITE, carrying our SDP offer or answer.
    fn respond_sdp(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        req: &Request,
        sdp: &SessionDescription,
    ) {
        let contact = self.contact();
        let body = sdp.to_bytes();
        self.respond(
            now,
            key,
            req,
            200,
            None,
            &[(HeaderName::Contact, contact)],
            Some(("application/sdp", body)),
        );
    }

    fn on_reinvite(&mut self, now: Instant, key: TransactionKey, req: Request) {
        let Some(handle) = self.dialog_request_checked(now, &key, &req) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        if req.body.is_empty() {
            // Offerless re-INVITE: offer our current media again.
            call.local_media.session_version += 1;
            let offer = sdp::create_offer(&call.local_media);
            call.local_sdp = Some(offer.clone());
            call.late_offer = true;
            self.respond_sdp(now, &key, &req, &offer);
            return;
        }
        let offer = match SessionDescription::parse(&req.body) {
            Ok(o) => o,
            Err(_) => {
                self.respond(now, &key, &req, 400, None, &[], None);
                return;
            }
        };
        call.local_media.session_version += 1;
        let answer = match call.media.as_ref().map(|m| m.codec) {
            Some(current) => sdp::create_reanswer(&offer, &call.local_media, current),
            None => sdp::create_answer(&offer, &call.local_media),
        };
        match answer {
            Ok((answer, media)) => {
                call.local_sdp = Some(answer.clone());
                call.media = Some(media.clone());
                self.events.push_back(CallEvent::MediaUpdated {
                    call: handle,
                    media,
                });
                self.respond_sdp(now, &key, &req, &answer);
            }
            Err(_) => {
                // RFC 3261 §14.2: a re-INVITE we cannot accept leaves the session as it was.
                self.respond(now, &key, &req, 488, None, &[], None);
            }
        }
    }

    fn on_info(&mut self, now: Instant, key: TransactionKey, req: Request) {
        let Some(handle) = self.dialog_request_checked(now, &key, &req) else {
            return;
        };
        let ctype = req.headers.content_type().ok().flatten();
        let body = String::from_utf8_lossy(&req.body);
        let parsed = match ctype {
            Some(t) if t.is("application", "dtmf-relay") => parse_dtmf_relay(&body),
            Some(t) if t.is("application", "dtmf") => body
                .trim()
                .chars()
                .next()
                .filter(|c| is_dtmf(*c))
                .map(|d| (d, None)),
            _ => None,
        };
        match parsed {
            Some((digit, duration_ms)) => {
                self.respond(now, &key, &req, 200, None, &[], None);
                self.events.push_back(CallEvent::Dtmf {
                    call: handle,
                    digit,
                    duration_ms,
                });
            }
            None if req.body.is_empty() => self.respond(now, &key, &req, 200, None, &[], None),
            None => self.respond(
                now,
                &key,
                &req,
                415,
                None,
                &[(
                    HeaderName::Accept,
                    "application/dtmf-relay, application/dtmf".into(),
                )],
                None,
            ),
        }
    }

    fn on_notify(&mut self, now: Instant, key: TransactionKey, req: Request) {
        let Some(handle) = self.dialog_request_checked(now, &key, &req) else {
            return;
        };
        self.respond(now, &key, &req, 200, None, &[], None);
        let pending = self.calls.get(&handle).is_some_and(|c| c.pending_transfer);
        if !pending {
            return;
        }
        // message/sipfrag: "SIP/2.0 200 OK"
        let frag = String::from_utf8_lossy(&req.body);
        let code = frag
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok());
        match code {
            Some(c) if (200..300).contains(&c) => {
                self.send_bye(now, handle);
                self.finish(handle, HangupCause::Transferred);
            }
            Some(c) if c >= 300 => {
                if let Some(call) = self.calls.get_mut(&handle) {
                    call.pending_transfer = false;
                }
                self.events.push_back(CallEvent::TransferFailed {
                    call: handle,
                    status: c,
                });
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ responses to our requests

    fn on_response(&mut self, now: Instant, key: TransactionKey, resp: Response) {
        if let Some(trunk) = self.register_tx.remove(&key) {
            self.on_register_response(now, trunk, resp);
            return;
        }
        let Some((handle, method)) = self.client_tx.get(&key).cloned() else {
            return;
        };
        let code = resp.status.as_u16();
        if code >= 200 {
            self.client_tx.remove(&key);
        }
        match method {
            Method::Invite => self.on_invite_response(now, handle, resp),
            Method::Refer => {
                if (200..300).contains(&code) {
                    self.events
                        .push_back(CallEvent::TransferAccepted { call: handle });
                } else if code >= 300 {
                    if let Some(c) = self.calls.get_mut(&handle) {
                        c.pending_transfer = false;
                    }
                    self.events.push_back(CallEvent::TransferFailed {
                        call: handle,
                        status: code,
                    });
                }
            }
            _ => {} // BYE answers need no action: the call is already gone.
        }
    }

    fn on_invite_response(&mut self, now: Instant, handle: CallHandle, resp: Response) {
        let code = resp.status.as_u16();
        let Some(call) = self.calls.get_mut(&handle) else {
            // A 2xx for a call we already gave up: ACK it and BYE it (RFC 3261 §13.2.2.4).
            return;
        };
        match code {
            100 => {}
            101..=199 => self.events.push_back(CallEvent::Ringing { call: handle }),
            200..=299 => {
                let Some(invite) = call.out_invite.clone() else {
                    return;
                };
                let first = call.state == State::Calling;
                if first {
                    match Dialog::uac(&invite, &resp) {
                        Ok(d) => call.dialog = Some(d),
                        Err(e) => tracing::debug!(error = %e, "2xx without dialog"),
                    }
                    if let (Some(offer), Ok(answer)) = (
                        call.local_sdp.clone(),
                        SessionDescription::parse(&resp.body),
                    ) {
                        call.media = sdp::accept_answer(&offer, &answer).ok();
                    }
                    call.state = State::Confirmed;
                }
                let cseq = invite.headers.cseq().map(|c| c.seq).ok();
                let transport = call.peer.transport;
                let peer = call.peer;
                let via = self.via(transport);
                let contact = self.contact();
                let Some(call) = self.calls.get_mut(&handle) else {
                    return;
                };
                if let Some(d) = call.dialog.as_mut() {
                    let ack = d.request(Method::Ack, &via, &contact, cseq);
                    self.tx.send_stateless(&SipMessage::Request(ack), peer);
                }
                if first {
                    let media = call.media.clone();
                    let rtp_port = call.rtp_port;
                    self.events.push_back(CallEvent::Answered {
                        call: handle,
                        media,
                        rtp_port,
                    });
                }
            }
            401 | 407 if call.auth_attempts == 0 => {
                call.auth_attempts += 1;
                self.retry_with_auth(now, handle, &resp);
            }
            _ => {
                self.finish(handle, HangupCause::Rejected(code));
            }
        }
    }

    fn retry_with_auth(&mut self, now: Instant, handle: CallHandle, resp: &Response) {
        let Some(call) = self.calls.get(&handle) else {
            return;
        };
        let creds = call.outbound_auth.clone();
        let (Some(creds), Some(mut invite)) = (creds, call.out_invite.clone()) else {
            self.finish(handle, HangupCause::Rejected(resp.status.as_u16()));
            return;
        };
        let peer = call.peer;
        let cnonce = self.ids.token(16);
        let creds = Credentials::new(creds.username, creds.password);
        let Ok(auth_header) =
            auth::authorize_request(resp, &invite, &creds, NonceCount(1), &cnonce)
        else {
            self.finish(handle, HangupCause::Rejected(resp.status.as_u16()));
            return;
        };
        // Same Call-ID and tags, next CSeq, new branch (RFC 3261 §22.2).
        let seq = invite.headers.cseq().map(|c| c.seq + 1).unwrap_or(2);
        let via = self.via(peer.transport);
        let mut h = Headers::new();
        push(&mut h, HeaderName::Via, &via);
        for hd in &invite.headers {
            match hd.name() {
                HeaderName::Via
                | HeaderName::CSeq
                | HeaderName::Authorization
                | HeaderName::ProxyAuthorization => {}
                _ => h.push(hd.clone()),
            }
        }
        push(&mut h, HeaderName::CSeq, &format!("{seq} INVITE"));
        h.push(auth_header);
        invite.headers = h;
        self.send_invite(now, handle, invite);
    }

    fn on_tx_timeout(&mut self, _now: Instant, key: TransactionKey) {
        if let Some(id) = self.register_tx.remove(&key) {
            if let Some(ti) = self.reg_index(id) {
                self.events.push_back(CallEvent::RegistrationFailed {
                    trunk: self.cfg.trunks[ti].name.clone(),
                    status: 408,
                });
            }
            return;
        }
        if let Some((handle, method)) = self.client_tx.remove(&key) {
            if matches!(method, Method::Invite | Method::Bye) && self.calls.contains_key(&handle) {
                self.finish(handle, HangupCause::Timeout);
            }
        }
    }

    // ------------------------------------------------------------------ commands

    /// Replace the inbound routing: DID -> agent (keys are normalised with
    /// [`normalise_number`]) and the agent for numbers not listed (`None`:
    /// those get 404). Applies to INVITEs from now on; calls in progress
    /// keep the agent they were routed to.
    pub fn set_routes(
        &mut self,
        numbers: HashMap<String, AgentId>,
        default_agent: Option<AgentId>,
    ) {
        self.cfg.numbers = numbers
            .into_iter()
            .map(|(number, agent)| (normalise_number(&number), agent))
            .collect();
        self.cfg.default_agent = default_agent;
    }

    /// Replace the trunk list: inbound allowlists and digest users, and the
    /// trunks [`Endpoint::originate`] can use, from now on. Calls in
    /// progress are not disturbed (they keep their peer and the credentials
    /// they were placed with).
    ///
    /// Registrations: a trunk whose name and registration settings
    /// (address, transport, `outbound_auth`, `register`, `domain`) are
    /// unchanged keeps its registration as it is (no new REGISTER). A new
    /// trunk, or one whose registration settings changed, with `register`
    /// set starts registering at `now` (a fresh Call-ID, so the registrar
    /// sees a new binding replacing any old one). A removed trunk, or the
    /// old settings of a changed one, is simply no longer refreshed: it is
    /// not unregistered (no `Expires: 0`), so the provider keeps the old
    /// binding until it expires; late responses and timers for it are dropped.
    pub fn set_trunks(&mut self, now: Instant, trunks: Vec<TrunkConfig>) {
        let mut old: Vec<Option<(TrunkConfig, TrunkReg)>> = std::mem::take(&mut self.cfg.trunks)
            .into_iter()
            .zip(std::mem::take(&mut self.regs))
            .map(Some)
            .collect();
        let mut regs = Vec::with_capacity(trunks.len());
        for t in &trunks {
            let kept = old
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|(c, _)| same_registration(c, t)))
                .and_then(Option::take);
            let reg = match kept {
                Some((_, reg)) => reg,
                None => {
                    let id = self.next_reg_id;
                    self.next_reg_id += 1;
                    if t.register.is_some() {
                        self.timers.push(Reverse((now, TimerKind::Register(id), 0)));
                    }
                    TrunkReg::new(id)
                }
            };
            regs.push(reg);
        }
        self.cfg.trunks = trunks;
        self.regs = regs;
    }

    /// Place a call to `to` (a number or a SIP URI) from `from` through
    /// `trunk`. Its [`CallEvent::Outgoing`] names the endpoint's default
    /// agent (see [`Endpoint::originate_as`] to choose one).
    pub fn originate(
        &mut self,
        now: Instant,
        to: &str,
        from: &str,
        trunk: &str,
    ) -> Result<CallHandle, EndpointError> {
        let agent = self.cfg.default_agent.clone();
        self.place_call(now, to, from, trunk, agent)
    }

    /// Like [`Endpoint::originate`], for `agent`: [`CallEvent::Outgoing`]
    /// carries it, so the media bridge gives the answered call's port to that agent.
    pub fn originate_as(
        &mut self,
        now: Instant,
        to: &str,
        from: &str,
        trunk: &str,
        agent: AgentId,
    ) -> Result<CallHandle, EndpointError> {
        self.place_call(now, to, from, trunk, Some(agent))
    }

    fn place_call(
        &mut self,
        now: Instant,
        to: &str,
        from: &str,
        trunk: &str,
        agent: Option<AgentId>,
    ) -> Result<CallHandle, EndpointError> {
        let ti = self
            .cfg
            .trunks
            .iter()
            .position(|t| t.name == trunk)
            .ok_or_else(|| EndpointError::UnknownTrunk(trunk.into()))?;
        if self.calls.len() >= self.cfg.max_calls {
            return Err(EndpointError::Capacity("call limit reached"));
        }
        let t = self.cfg.trunks[ti].clone();
        let domain = t.domain.clone().unwrap_or_else(|| t.address.to_string());
        let target = if to.starts_with("sip:") || to.starts_with("sips:") || to.starts_with("tel:")
        {
            to.to_string()
        } else {
            format!("sip:{}@{}", normalise_number(to), domain)
        };
        let uri = Uri::parse(&target).map_err(|_| EndpointError::BadUri(target.clone()))?;
        let from_uri = format!("sip:{}@{}", normalise_number(from), domain);
        NameAddr::parse(&format!("<{from_uri}>"))
            .map_err(|_| EndpointError::BadUri(from_uri.clone()))?;
        let port = self
            .ports
            .allocate()
            .ok_or(EndpointError::Capacity("no free RTP port"))?;
        let mut local_media = self.local_media(port);
        let offer = sdp::create_offer(&local_media);
        local_media.session_version += 1;
        let handle = CallHandle(self.next_handle);
        self.next_handle += 1;
        let call_id = self.ids.call_id(&self.cfg.public_addr.ip().to_string());
        let tag = self.ids.tag();
        let via = self.via(t.transport);
        let mut h = Headers::new();
        push(&mut h, HeaderName::Via, &via);
        push(&mut h, HeaderName::MaxForwards, "70");
        push(&mut h, HeaderName::From, &format!("<{from_uri}>;tag={tag}"));
        push(&mut h, HeaderName::To, &format!("<{target}>"));
        push(&mut h, HeaderName::CallId, &call_id);
        push(&mut h, HeaderName::CSeq, "1 INVITE");
        push(&mut h, HeaderName::Contact, &self.contact());
        push(&mut h, HeaderName::Allow, ALLOW);
        push(&mut h, HeaderName::UserAgent, &self.cfg.user_agent);
        push(&mut h, HeaderName::ContentType, "application/sdp");
        let invite = Request {
            method: Method::Invite,
            uri,
            version: SipVersion::V2_0,
            headers: h,
            body: offer.to_bytes(),
        };
        let peer = Peer {
            addr: t.address,
            transport: t.transport,
        };
        let call = Call {
            state: State::Calling,
            peer,
            dialog: None,
            invite: None,
            local_tag: tag,
            rtp_port: port,
            local_media,
            local_sdp: Some(offer),
            media: None,
            late_offer: false,
            call_id: call_id.clone(),
            out_invite: None,
            auth_attempts: 0,
            outbound_auth: t.outbound_auth.clone(),
            pending_transfer: false,
        };
        self.by_call_id.insert(call_id, handle);
        self.calls.insert(handle, call);
        // Before the INVITE goes out, so it precedes the call's every other event
        // (even the Hangup of an INVITE the transaction layer refuses).
        self.events.push_back(CallEvent::Outgoing {
            call: handle,
            agent,
            to: to.to_string(),
        });
        self.send_invite(now, handle, invite);
        Ok(handle)
    }

    fn send_invite(&mut self, now: Instant, handle: CallHandle, invite: Request) {
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        call.out_invite = Some(invite.clone());
        let peer = call.peer;
        match self.tx.send_request(now, invite, peer) {
            Ok(key) => {
                self.client_tx.insert(key, (handle, Method::Invite));
            }
            Err(e) => {
                tracing::info!(call = %handle, error = %e, "INVITE not sent");
                self.finish(handle, HangupCause::Timeout);
            }
        }
    }

    /// Hang up a call (BYE when established, CANCEL-less teardown otherwise).
    pub fn hangup(&mut self, now: Instant, handle: CallHandle) -> Result<(), EndpointError> {
        let call = self
            .calls
            .get_mut(&handle)
            .ok_or(EndpointError::UnknownCall(handle))?;
        match call.state {
            State::Ringing => {
                if let Some((key, req)) = call.invite.take() {
                    let tag = call.local_tag.clone();
                    self.respond(now, &key, &req, 480, Some(&tag), &[], None);
                }
            }
            State::Calling => {
                if let Some(invite) = call.out_invite.clone() {
                    let peer = call.peer;
                    let mut cancel = invite.clone();
                    cancel.method = Method::Cancel;
                    cancel.body.clear();
                    let seq = invite.headers.cseq().map(|c| c.seq).unwrap_or(1);
                    let mut h = Headers::new();
                    for hd in &invite.headers {
                        match hd.name() {
                            HeaderName::Via
                            | HeaderName::From
                            | HeaderName::To
                            | HeaderName::CallId
                            | HeaderName::MaxForwards
                            | HeaderName::Route => h.push(hd.clone()),
                            _ => {}
                        }
                    }
                    push(&mut h, HeaderName::CSeq, &format!("{seq} CANCEL"));
                    cancel.headers = h;
                    if let Ok(key) = self.tx.send_request(now, cancel, peer) {
                        self.client_tx.insert(key, (handle, Method::Cancel));
                    }
                }
            }
            _ => self.send_bye(now, handle),
        }
        self.finish(handle, HangupCause::LocalHangup);
        Ok(())
    }

    /// Blind transfer: ask the peer (REFER) to call `target`; the call ends when the peer reports success.
    pub fn transfer(
        &mut self,
        now: Instant,
        handle: CallHandle,
        target: &str,
    ) -> Result<(), EndpointError> {
        let uri = Uri::parse(target).map_err(|_| EndpointError::BadUri(target.into()))?;
        let via_transport = self
            .calls
            .get(&handle)
            .ok_or(EndpointError::UnknownCall(handle))?
            .peer
            .transport;
        let via = self.via(via_transport);
        let contact = self.contact();
        let local = self.cfg.public_addr;
        let call = self
            .calls
            .get_mut(&handle)
            .ok_or(EndpointError::UnknownCall(handle))?;
        if call.state != State::Confirmed {
            return Err(EndpointError::WrongState {
                call: handle,
                state: call.state.name(),
                action: "transfer",
            });
        }
        let peer = call.peer;
        let Some(d) = call.dialog.as_mut() else {
            return Err(EndpointError::WrongState {
                call: handle,
                state: "without dialog",
                action: "transfer",
            });
        };
        let mut refer = d.request(Method::Refer, &via, &contact, None);
        push(&mut refer.headers, HeaderName::ReferTo, &format!("<{uri}>"));
        push(
            &mut refer.headers,
            HeaderName::ReferredBy,
            &format!("<sip:vocelio@{local}>"),
        );
        call.pending_transfer = true;
        let key = self
            .tx
            .send_request(now, refer, peer)
            .map_err(|e| EndpointError::Transaction(e.to_string()))?;
        self.client_tx.insert(key, (handle, Method::Refer));
        Ok(())
    }

    fn send_bye(&mut self, now: Instant, handle: CallHandle) {
        let Some(transport) = self.calls.get(&handle).map(|c| c.peer.transport) else {
            return;
        };
        let via = self.via(transport);
        let contact = self.contact();
        let Some(call) = self.calls.get_mut(&handle) else {
            return;
        };
        let peer = call.peer;
        let Some(d) = call.dialog.as_mut() else {
            return;
        };
        let bye = d.request(Method::Bye, &via, &contact, None);
        call.state = State::Terminating;
        if let Ok(key) = self.tx.send_request(now, bye, peer) {
            self.client_tx.insert(key, (handle, Method::Bye));
        }
    }

    /// Release everything the call holds and report it.
    fn finish(&mut self, handle: CallHandle, cause: HangupCause) {
        if let Some(call) = self.calls.remove(&handle) {
            self.ports.release(call.rtp_port);
            self.by_call_id.remove(&call.call_id);
            self.stats.calls_ended += 1;
            self.events.push_back(CallEvent::Hangup {
                call: handle,
                cause,
            });
        }
    }

    // ------------------------------------------------------------------ registration

    /// Index in `cfg.trunks` of the trunk whose registration is `id`, if still listed.
    fn reg_index(&self, id: u64) -> Option<usize> {
        self.regs.iter().position(|r| r.id == id)
    }

    fn send_register(&mut self, now: Instant, id: u64, auth: Option<(HeaderName, String)>) {
        let Some(ti) = self.reg_index(id) else {
            // The trunk was removed or replaced (set_trunks): its timer is stale.
            return;
        };
        let t = self.cfg.trunks[ti].clone();
        let Some(reg) = t.register.clone() else {
            return;
        };
        let domain = t.domain.clone().unwrap_or_else(|| t.address.to_string());
        self.regs[ti].cseq += 1;
        let seq = self.regs[ti].cseq;
        let via = self.via(t.transport);
        // Named by the registration's id (the trunk's index for trunks given at
        // startup), so a restarted registration is a new Call-ID with a fresh CSeq.
        let call_id = format!("reg-{}-{}@{}", id, self.cfg.seed, self.cfg.public_addr.ip());
        let aor = format!("sip:{}@{}", reg.user, domain);
        let mut h = Headers::new();
        push(&mut h, HeaderName::Via, &via);
        push(&mut h, HeaderName::MaxForwards, "70");
        push(&mut h, HeaderName::From, &format!("<{aor}>;tag=reg{id}"));
        push(&mut h, HeaderName::To, &format!("<{aor}>"));
        push(&mut h, HeaderName::CallId, &call_id);
        push(&mut h, HeaderName::CSeq, &format!("{seq} REGISTER"));
        push(&mut h, HeaderName::Contact, &self.contact());
        push(&mut h, HeaderName::Expires, &reg.expires.to_string());
        push(&mut h, HeaderName::UserAgent, &self.cfg.user_agent);
        if let Some((name, value)) = auth {
            push(&mut h, name, &value);
        }
        let Ok(uri) = Uri::parse(&format!("sip:{domain}")) else {
            return;
        };
        let req = Request {
            method: Method::Register,
            uri,
            version: SipVersion::V2_0,
            headers: h,
            body: Vec::new(),
        };
        let peer = Peer {
            addr: t.address,
            transport: t.transport,
        };
        self.regs[ti].last = Some(req.clone());
        match self.tx.send_request(now, req, peer) {
            Ok(key) => {
                self.register_tx.insert(key, id);
            }
            Err(e) => tracing::info!(trunk = %t.name, error = %e, "REGISTER not sent"),
        }
    }

    fn on_register_response(&mut self, now: Instant, id: u64, resp: Response) {
        let Some(ti) = self.reg_index(id) else {
            tracing::debug!("REGISTER response for a trunk no longer configured: dropped");
            return;
        };
        let code = resp.status.as_u16();
        let name = self.cfg.trunks[ti].name.clone();
        match code {
            100..=199 => {}
            200..=299 => {
                let requested = self.cfg.trunks[ti]
                    .register
                    .as_ref()
                    .map(|r| r.expires)
                    .unwrap_or(3600);
                let granted = resp
                    .headers
                    .contacts()
                    .ok()
                    .flatten()
                    .and_then(|c| match c {
                        crate::sip::Contacts::List(l) => {
                            l.first().and_then(|c| c.expires().ok().flatten())
                        }
                        crate::sip::Contacts::Star => None,
                    })
                    .or_else(|| resp.headers.expires().ok().flatten())
                    .unwrap_or(requested)
                    .max(10);
                self.regs[ti].authed = false;
                self.events.push_back(CallEvent::Registered {
                    trunk: name,
                    expires: granted,
                });
                let refresh = Duration::from_secs(u64::from(granted) / 2);
                self.timers
                    .push(Reverse((now + refresh, TimerKind::Register(id), 0)));
            }
            401 | 407 => {
                let creds = self.cfg.trunks[ti].outbound_auth.clone();
                // One authenticated attempt per challenge: a second 401 means the credentials are wrong.
                let already = self.regs[ti].authed;
                match (creds, self.regs[ti].last.clone()) {
                    (Some(c), Some(req)) if !already => {
                        let cnonce = self.ids.token(16);
                        let creds = Credentials::new(c.username, c.password);
                        match auth::authorize_request(&resp, &req, &creds, NonceCount(1), &cnonce) {
                            Ok(h) => {
                                self.regs[ti].authed = true;
                                self.send_register(
                                    now,
                                    id,
                                    Some((
                                        h.name().clone(),
                                        String::from_utf8_lossy(h.value()).into_owned(),
                                    )),
                                );
                            }
                            Err(_) => self.events.push_back(CallEvent::RegistrationFailed {
                                trunk: name,
                                status: code,
                            }),
                        }
                    }
                    _ => {
                        self.regs[ti].authed = false;
                        self.events.push_back(CallEvent::RegistrationFailed {
                            trunk: name,
                            status: code,
                        });
                        self.timers.push(Reverse((
                            now + Duration::from_secs(60),
                            TimerKind::Register(id),
                            0,
                        )));
                    }
                }
            }
            _ => {
                self.events.push_back(CallEvent::RegistrationFailed {
                    trunk: name,
                    status: code,
                });
                // Try again later rather than hammering the provider.
                self.timers.push(Reverse((
                    now + Duration::from_secs(60),
                    TimerKind::Register(id),
                    0,
                )));
            }
        }
    }
}

fn add_to_tag(resp: &mut Response, tag: &str) {
    let mut headers = Headers::new();
    for h in &resp.headers {
        if *h.name() == HeaderName::To {
            let value = String::from_utf8_lossy(h.value()).into_owned();
            let has_tag = NameAddr::parse(&value)
                .ok()
                .and_then(|na| na.tag())
                .is_some();
            let v = if has_tag {
                value
            } else {
                format!("{value};tag={tag}")
            };
            push(&mut headers, HeaderName::To, &v);
        } else {
            headers.push(h.clone());
        }
    }
    resp.headers = headers;
}

fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d')
}

/// `Signal=5\r\nDuration=160` (application/dtmf-relay).
fn parse_dtmf_relay(body: &str) -> Option<(char, Option<u32>)> {
    let mut digit = None;
    let mut duration = None;
    for line in body.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                digit = v
                    .trim()
                    .chars()
                    .next()
                    .filter(|c| is_dtmf(*c))
                    .map(|c| c.to_ascii_uppercase())
            }
            "duration" => duration = v.trim().parse().ok(),
            _ => {}
        }
    }
    digit.map(|d| (d, duration))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::transaction::TransportKind;
    use std::net::SocketAddr;

    // ---------------------------------------------------------------- sans-IO harness

    const CARRIER: &str = "192.0.2.10:5060";
    const OTHER: &str = "198.51.100.20:5060";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn peer(s: &str) -> Peer {
        Peer {
            addr: addr(s),
            transport: TransportKind::Udp,
        }
    }

    fn trunk(name: &str, at: &str, allow: &str) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            address: addr(at),
            transport: TransportKind::Udp,
            allow_from: vec![allow.parse().unwrap()],
            outbound_auth: None,
            inbound_users: vec![],
            register: None,
            domain: None,
        }
    }

    fn registering(mut t: TrunkConfig, user: &str) -> TrunkConfig {
        t.outbound_auth = Some(DigestCredentials {
            username: user.into(),
            password: "secret".into(),
        });
        t.register = Some(config::RegisterConfig {
            user: user.into(),
            expires: 600,
        });
        t
    }

    fn agent(name: &str) -> AgentId {
        AgentId(name.into())
    }

    /// An endpoint on 10.0.0.1 with one trunk, `carrier`, and a fake clock.
    struct Harness {
        ep: Endpoint,
        now: Instant,
    }

    impl Harness {
        fn new(configure: impl FnOnce(&mut EndpointConfig)) -> Harness {
            let mut cfg = EndpointConfig::new(addr("10.0.0.1:5060"), 7);
            cfg.trunks.push(trunk("carrier", CARRIER, "192.0.2.0/24"));
            configure(&mut cfg);
            let now = Instant::now();
            Harness {
                ep: Endpoint::new(cfg, now, 1_700_000_000).unwrap(),
                now,
            }
        }

        fn recv(&mut self, msg: SipMessage, from: &str) {
            self.ep.handle_message(self.now, msg, peer(from));
        }

        /// An INVITE for `did` (late offer: no SDP) from the carrier.
        fn invite(&mut self, did: &str, n: u32) {
            let text = format!(
                "INVITE sip:{did}@10.0.0.1:5060 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP {CARRIER};branch=z9hG4bKin{n}\r\n\
                 Max-Forwards: 70\r\n\
                 From: <sip:15550001111@192.0.2.10>;tag=caller{n}\r\n\
                 To: <sip:{did}@10.0.0.1>\r\n\
                 Call-ID: inbound-{n}@192.0.2.10\r\n\
                 CSeq: 1 INVITE\r\n\
                 Contact: <sip:15550001111@{CARRIER}>\r\n\
                 Content-Length: 0\r\n\r\n"
            );
            self.ep
                .handle_datagram(self.now, text.as_bytes(), peer(CARRIER));
        }

        /// Advance the clock by `d`, running every timer due on the way.
        fn advance(&mut self, d: Duration) {
            let until = self.now + d;
            while let Some(at) = self.ep.poll_timeout() {
                if at > until {
                    break;
                }
                self.now = self.now.max(at);
                self.ep.handle_timeout(self.now);
            }
            self.now = until;
        }

        fn sent(&mut self) -> Vec<(Peer, SipMessage)> {
            std::iter::from_fn(|| self.ep.poll_transmit())
                .map(|t| (t.to, crate::sip::parse_datagram(&t.bytes).unwrap()))
                .collect()
        }

        fn events(&mut self) -> Vec<CallEvent> {
            std::iter::from_fn(|| self.ep.poll_event()).collect()
        }

        /// Final status codes of the responses sent since the last call.
        fn statuses(&mut self) -> Vec<u16> {
            self.sent()
                .into_iter()
                .filter_map(|(_, m)| match m {
                    SipMessage::Response(r) => Some(r.status.as_u16()),
                    SipMessage::Request(_) => None,
                })
                .collect()
        }

        /// The requests sent since the last call, with where they went.
        fn requests(&mut self) -> Vec<(Peer, Request)> {
            self.sent()
                .into_iter()
                .filter_map(|(p, m)| match m {
                    SipMessage::Request(r) => Some((p, r)),
                    SipMessage::Response(_) => None,
                })
                .collect()
        }
    }

    /// `req` answered with `code` (and a To tag, as a UAS would).
    fn answer(req: &Request, code: u16, extra: &[(HeaderName, &str)]) -> SipMessage {
        let mut resp = req.make_response(status(code), status(code).canonical_reason());
        add_to_tag(&mut resp, "far");
        for (name, value) in extra {
            push(&mut resp.headers, name.clone(), value);
        }
        SipMessage::Response(resp)
    }

    fn incoming_agent(events: &[CallEvent]) -> Option<AgentId> {
        events.iter().find_map(|e| match e {
            CallEvent::Incoming { agent, .. } => Some(agent.clone()),
            _ => None,
        })
    }

    fn hangup_cause(events: &[CallEvent]) -> Option<HangupCause> {
        events.iter().find_map(|e| match e {
            CallEvent::Hangup { cause, .. } => Some(cause.clone()),
            _ => None,
        })
    }

    // ---------------------------------------------------------------- routing

    #[test]
    fn set_routes_sends_a_new_number_to_its_agent() {
        let mut h = Harness::new(|c| {
            c.numbers.insert("15550100001".into(), agent("support"));
        });
        h.invite("15550100002", 1);
        assert_eq!(h.statuses(), vec![404], "not routed yet");
        assert!(h.events().is_empty());

        let mut numbers = HashMap::new();
        numbers.insert("15550100001".to_string(), agent("support"));
        // Keys are normalised like dialled numbers.
        numbers.insert("+1 (555) 010-0002".to_string(), agent("sales"));
        h.ep.set_routes(numbers, None);
        h.invite("+15550100002", 2);
        assert_eq!(incoming_agent(&h.events()), Some(agent("sales")));
        assert_eq!(h.statuses(), vec![100, 200]);
        h.invite("15550100001", 3);
        assert_eq!(incoming_agent(&h.events()), Some(agent("support")));
    }

    #[test]
    fn dids_match_with_or_without_the_plus() {
        let mut h = Harness::new(|c| {
            c.numbers.insert("+15550100001".into(), agent("support"));
            c.numbers.insert("15550100002".into(), agent("sales"));
        });
        h.invite("15550100001", 1);
        assert_eq!(incoming_agent(&h.events()), Some(agent("support")));
        h.invite("+15550100002", 2);
        assert_eq!(incoming_agent(&h.events()), Some(agent("sales")));
        h.invite("15550100003", 3);
        assert!(h.events().is_empty(), "unrouted numbers still get 404");
    }

    #[test]
    fn set_routes_removing_a_number_gives_404_and_spares_calls_in_progress() {
        let mut h = Harness::new(|c| {
            c.numbers.insert("15550100001".into(), agent("support"));
            c.answer_delay = Duration::from_secs(2);
        });
        h.invite("15550100001", 1);
        assert_eq!(incoming_agent(&h.events()), Some(agent("support")));
        assert_eq!(h.statuses(), vec![100, 180]);

        h.ep.set_routes(HashMap::new(), None);
        h.invite("15550100001", 2);
        assert_eq!(h.statuses(), vec![404]);
        assert!(h.events().is_empty());
        // The call routed before the change is still answered.
        h.advance(Duration::from_secs(2));
        assert!(matches!(
            h.events().as_slice(),
            [CallEvent::Answered {
                call: CallHandle(1),
                ..
            }]
        ));
        // (The 404 is retransmitted meanwhile: nobody ACKs it in this test.)
        assert_eq!(h.statuses().last(), Some(&200));

        // A default agent catches every number not listed.
        h.ep.set_routes(HashMap::new(), Some(agent("fallback")));
        h.invite("15550100009", 3);
        assert_eq!(incoming_agent(&h.events()), Some(agent("fallback")));
    }

    // ---------------------------------------------------------------- trunks

    #[test]
    fn set_trunks_replaces_the_trunks_originate_and_admission_use() {
        let mut h = Harness::new(|c| c.default_agent = Some(agent("support")));
        h.ep.set_trunks(h.now, vec![trunk("backup", OTHER, "198.51.100.0/24")]);

        let call =
            h.ep.originate(h.now, "15550100077", "15550000000", "backup");
        assert!(call.is_ok(), "{call:?}");
        let reqs = h.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].0, peer(OTHER));
        assert_eq!(reqs[0].1.method, Method::Invite);
        assert!(matches!(
            h.ep.originate(h.now, "15550100077", "15550000000", "carrier"),
            Err(EndpointError::UnknownTrunk(name)) if name == "carrier"
        ));

        // The old trunk's sources are no longer admitted; the new one's are.
        h.invite("15550100001", 1);
        assert_eq!(h.statuses(), vec![403]);
        let text = "INVITE sip:15550100001@10.0.0.1 SIP/2.0\r\n\
                    Via: SIP/2.0/UDP 198.51.100.20:5060;branch=z9hG4bKnew1\r\n\
                    Max-Forwards: 70\r\n\
                    From: <sip:a@198.51.100.20>;tag=x\r\n\
                    To: <sip:15550100001@10.0.0.1>\r\n\
                    Call-ID: other-1@198.51.100.20\r\n\
                    CSeq: 1 INVITE\r\n\
                    Contact: <sip:a@198.51.100.20:5060>\r\n\
                    Content-Length: 0\r\n\r\n";
        h.ep.handle_datagram(h.now, text.as_bytes(), peer(OTHER));
        assert_eq!(incoming_agent(&h.events()), Some(agent("support")));
    }

    #[test]
    fn set_trunks_leaves_a_call_in_progress_its_credentials() {
        let mut h = Harness::new(|c| {
            c.trunks[0].outbound_auth = Some(DigestCredentials {
                username: "acct".into(),
                password: "secret".into(),
            });
        });
        let call =
            h.ep.originate(h.now, "15550100077", "15550000000", "carrier")
                .unwrap();
        let (_, invite) = h.requests().pop().unwrap();
        h.ep.set_trunks(h.now, vec![]);
        // The carrier challenges the call placed before the change: it still answers.
        let challenge = answer(
            &invite,
            401,
            &[(
                HeaderName::WwwAuthenticate,
                "Digest realm=\"carrier\", nonce=\"n0nce\", algorithm=MD5, qop=\"auth\"",
            )],
        );
        h.recv(challenge, CARRIER);
        let reqs = h.requests();
        let retry = reqs
            .iter()
            .find(|(_, r)| r.method == Method::Invite)
            .expect("INVITE retried with credentials");
        assert_eq!(retry.0, peer(CARRIER));
        assert!(!retry.1.headers.authorization().unwrap().is_empty());
        h.recv(answer(&retry.1, 486, &[]), CARRIER);
        assert_eq!(
            h.events().last(),
            Some(&CallEvent::Hangup {
                call,
                cause: HangupCause::Rejected(486)
            })
        );
    }

    fn registers(reqs: &[(Peer, Request)]) -> Vec<(Peer, Request)> {
        reqs.iter()
            .filter(|(_, r)| r.method == Method::Register)
            .cloned()
            .collect()
    }

    #[test]
    fn set_trunks_keeps_unchanged_registrations_and_starts_new_ones() {
        let mut h = Harness::new(|c| {
            c.trunks = vec![
                registering(trunk("a", CARRIER, "192.0.2.0/24"), "alice"),
                registering(trunk("b", OTHER, "198.51.100.0/24"), "bob"),
            ];
        });
        h.advance(Duration::ZERO);
        let regs = registers(&h.requests());
        assert_eq!(regs.len(), 2);
        let (_, reg_a) = regs.iter().find(|(p, _)| *p == peer(CARRIER)).unwrap();
        let (_, reg_b) = regs.iter().find(|(p, _)| *p == peer(OTHER)).unwrap();

        // Drop `a`, keep `b` (now first, with a wider allowlist: not a registration change),
        // add `c`.
        let mut b = registering(trunk("b", OTHER, "198.51.100.0/24"), "bob");
        b.allow_from.push("203.0.113.0/24".parse().unwrap());
        let c = registering(trunk("c", "203.0.113.5:5060", "203.0.113.0/24"), "carol");
        h.ep.set_trunks(h.now, vec![b, c]);
        h.advance(Duration::ZERO);
        let regs = registers(&h.requests());
        assert_eq!(regs.len(), 1, "only the new trunk registers now");
        assert_eq!(regs[0].0, peer("203.0.113.5:5060"));
        let reg_c = regs[0].1.clone();
        assert_ne!(
            reg_c.headers.call_id().unwrap().as_str(),
            reg_b.headers.call_id().unwrap().as_str()
        );

        // The removed trunk's answer is dropped; the kept and new ones register.
        h.recv(answer(reg_a, 200, &[]), CARRIER);
        h.recv(answer(reg_b, 200, &[]), OTHER);
        h.recv(answer(&reg_c, 200, &[]), "203.0.113.5:5060");
        let names: Vec<String> = h
            .events()
            .into_iter()
            .filter_map(|e| match e {
                CallEvent::Registered { trunk, .. } => Some(trunk),
                _ => None,
            })
            .collect();
        assert_eq!(names, vec!["b".to_string(), "c".to_string()]);

        // Refreshes (at half the 600 s) go to the live trunks only.
        // (Stop before timer E would retransmit them, 500 ms later.)
        h.advance(Duration::from_millis(300_100));
        let mut to: Vec<SocketAddr> = registers(&h.requests())
            .iter()
            .map(|(p, _)| p.addr)
            .collect();
        to.sort();
        assert_eq!(to, vec![addr(OTHER), addr("203.0.113.5:5060")]);
    }

    #[test]
    fn a_changed_trunk_registers_again() {
        let mut h = Harness::new(|c| {
            c.trunks = vec![registering(trunk("a", CARRIER, "192.0.2.0/24"), "alice")];
        });
        h.advance(Duration::ZERO);
        let first = registers(&h.requests());
        assert_eq!(first.len(), 1);
        h.ep.set_trunks(
            h.now,
            vec![registering(trunk("a", CARRIER, "192.0.2.0/24"), "alice2")],
        );
        h.advance(Duration::ZERO);
        let again = registers(&h.requests());
        assert_eq!(again.len(), 1);
        // The old REGISTER's late answer does not count for the new registration.
        h.recv(answer(&first[0].1, 200, &[]), CARRIER);
        assert!(h.events().is_empty());
        h.recv(answer(&again[0].1, 200, &[]), CARRIER);
        assert!(matches!(
            h.events().as_slice(),
            [CallEvent::Registered { trunk, .. }] if trunk == "a"
        ));
    }

    // ---------------------------------------------------------------- outbound

    #[test]
    fn originate_as_reports_the_agent_before_any_response() {
        let mut h = Harness::new(|c| c.default_agent = Some(agent("support")));
        let call =
            h.ep.originate_as(
                h.now,
                "+1 555 010 0077",
                "15550000000",
                "carrier",
                agent("sales"),
            )
            .unwrap();
        assert_eq!(
            h.events(),
            vec![CallEvent::Outgoing {
                call,
                agent: Some(agent("sales")),
                to: "+1 555 010 0077".into()
            }]
        );
        let (to, invite) = h.requests().pop().unwrap();
        assert_eq!(to, peer(CARRIER));
        assert_eq!(invite.method, Method::Invite);

        // Plain originate names the endpoint's default agent.
        let other =
            h.ep.originate(h.now, "15550100078", "15550000000", "carrier")
                .unwrap();
        assert_eq!(
            h.events(),
            vec![CallEvent::Outgoing {
                call: other,
                agent: Some(agent("support")),
                to: "15550100078".into()
            }]
        );
    }

    #[test]
    fn a_busy_outbound_call_ends_rejected_486() {
        let mut h = Harness::new(|_| {});
        let call =
            h.ep.originate_as(
                h.now,
                "15550100077",
                "15550000000",
                "carrier",
                agent("sales"),
            )
            .unwrap();
        let (_, invite) = h.requests().pop().unwrap();
        h.recv(answer(&invite, 180, &[]), CARRIER);
        h.recv(answer(&invite, 486, &[]), CARRIER);
        let events = h.events();
        assert!(matches!(&events[0], CallEvent::Outgoing { agent: Some(a), .. } if a.0 == "sales"));
        assert_eq!(events[1], CallEvent::Ringing { call });
        let cause = hangup_cause(&events).unwrap();
        assert_eq!(cause, HangupCause::Rejected(486));
        assert!(cause.is_busy() && !cause.is_no_answer());
        assert_eq!(h.ep.stats().active_calls, 0);
        assert_eq!(h.ep.ports_in_use(), 0);
    }

    #[test]
    fn an_unanswered_outbound_call_ends_with_timeout() {
        let mut h = Harness::new(|_| {});
        let call =
            h.ep.originate_as(
                h.now,
                "15550100077",
                "15550000000",
                "carrier",
                agent("sales"),
            )
            .unwrap();
        h.events();
        // Nothing comes back: timer B (64 * T1) ends the call.
        h.advance(Duration::from_secs(31));
        assert!(h.events().is_empty());
        h.advance(Duration::from_secs(2));
        let ev = h.events();
        assert_eq!(
            ev,
            vec![CallEvent::Hangup {
                call,
                cause: HangupCause::Timeout
            }]
        );
        assert!(HangupCause::Timeout.is_no_answer());
    }

    #[test]
    fn hangup_causes_sort_busy_from_no_answer() {
        for code in [486, 600] {
            assert!(HangupCause::Rejected(code).is_busy());
            assert!(!HangupCause::Rejected(code).is_no_answer());
        }
        for code in [480, 408, 487] {
            assert!(HangupCause::Rejected(code).is_no_answer());
            assert!(!HangupCause::Rejected(code).is_busy());
        }
        for cause in [
            HangupCause::Rejected(404),
            HangupCause::Rejected(503),
            HangupCause::LocalHangup,
            HangupCause::RemoteBye,
        ] {
            assert!(!cause.is_busy() && !cause.is_no_answer(), "{cause:?}");
        }
    }

    #[test]
    fn dtmf_relay_bodies() {
        assert_eq!(
            parse_dtmf_relay("Signal=5\r\nDuration=160\r\n"),
            Some(('5', Some(160)))
        );
        assert_eq!(parse_dtmf_relay("signal= #\nduration=x"), Some(('#', None)));
        assert_eq!(parse_dtmf_relay("Signal=Z"), None);
        assert_eq!(parse_dtmf_relay(""), None);
    }
}
