//! The RFC 3261 §17 transaction layer, sans-IO.
//!
//! A [`TransactionLayer`] holds every client and server transaction of one
//! endpoint. It never reads the clock, touches a socket or spawns: the
//! driver feeds it
//!
//! * [`handle_message`](TransactionLayer::handle_message): a parsed message
//!   and the [`Peer`] it came from,
//! * [`send_request`](TransactionLayer::send_request) /
//!   [`send_response`](TransactionLayer::send_response) from the TU,
//! * [`handle_timeout`](TransactionLayer::handle_timeout) when
//!   [`poll_timeout`](TransactionLayer::poll_timeout) is reached,
//!
//! each with `now`, and drains [`poll_transmit`](TransactionLayer::poll_transmit)
//! (bytes for the socket) and [`poll_event`](TransactionLayer::poll_event)
//! (what the TU must know) after every call.
//!
//! # Matching
//!
//! Keys follow §17.1.3 and §17.2.3 (see [`TransactionKey`]): a client
//! transaction is its branch and CSeq method; a server transaction is branch,
//! sent-by and method, an ACK matching its INVITE, a CANCEL having its own
//! transaction. Requests whose branch lacks the `z9hG4bK` cookie are matched
//! the RFC 2543 way (Request-URI, tags, Call-ID, CSeq, top Via).
//!
//! # INVITE, 2xx, ACK and CANCEL
//!
//! * Client INVITE: timer A retransmits over UDP (T1, doubling), timer B
//!   times out at 64*T1 in Calling; after a provisional the request is no
//!   longer resent and a configurable timer C (default 180 s, reset by each
//!   provisional) stands in for a final that never comes. A 300-699 final is
//!   ACKed by the transaction itself (same branch, To from the response,
//!   Route from the request) and retransmitted finals re-send that ACK
//!   without reaching the TU again; timer D (32 s, 0 over TCP) ends it.
//!   A 2xx moves it to RFC 6026's **Accepted** state for timer M = 64*T1,
//!   during which every further 2xx (retransmissions, other forks) is
//!   passed to the TU, which sends the ACK for each itself with
//!   [`send_stateless`](TransactionLayer::send_stateless) (that ACK is a
//!   new transaction-less request with its own branch, §13.2.2.4). A 2xx after
//!   that matches nothing and comes out as [`TxEvent::StrayInvite2xx`].
//! * Server INVITE: `100 Trying` goes out on its own after
//!   [`TransactionConfig::auto_trying`] (200 ms) unless the TU answered;
//!   retransmitted INVITEs get the last response again and never reach the
//!   TU twice. A 300-699 final is retransmitted by timer G until the ACK,
//!   which is absorbed (never reported), then timer I (T4, 0 over TCP) ends
//!   it; without an ACK timer H reports [`TxEvent::Timeout`]. A 2xx moves it
//!   to **Accepted** (RFC 6026) for timer L = 64*T1: request
//!   retransmissions are absorbed, ACKs go to the TU.
//! * The 2xx itself is made reliable by the UAS core (§13.3.1.4): the layer
//!   embeds a [`Uas2xxRetransmitter`] that starts when a 2xx goes out through
//!   an INVITE server transaction, resends it at T1 doubling to T2, stops on
//!   the first ACK with the same Call-ID and CSeq number, and after 64*T1
//!   reports [`TxEvent::AckTimeout`] so the call can be ended with a BYE.
//!   Every ACK for a 2xx is reported as [`TxEvent::Ack`].
//! * CANCEL (§9.2) gets its own non-INVITE server transaction and is
//!   reported as [`TxEvent::Cancel`] with the INVITE transaction it targets
//!   ([`CancelTarget`]); the TU answers 487 on the INVITE's key and 200 (or
//!   481) on the CANCEL's.
//!
//! # Bounds
//!
//! Every transaction always has a running timer (server transactions whose
//! TU never answers time out too: non-INVITE after 64*T1, INVITE after timer
//! C), so nothing outlives its timers. At most
//! [`TransactionConfig::max_transactions`] live at once: new requests beyond
//! that are dropped and counted, `send_request` fails with
//! [`TxError::Capacity`]. Deadlines live in a binary heap with lazy
//! deletion, so `poll_timeout` is a peek.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use vocelio_engine::sip::{parse_datagram, SipMessage};
//! use vocelio_engine::sip::transaction::{
//!     Peer, TransactionConfig, TransactionLayer, TransportKind, TxEvent,
//! };
//!
//! let mut layer = TransactionLayer::new(TransactionConfig::default())?;
//! let peer = Peer { addr: "192.0.2.1:5060".parse()?, transport: TransportKind::Udp };
//! let SipMessage::Request(req) = parse_datagram(b"OPTIONS sip:bob@example.com SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKopt1\r\nMax-Forwards: 70\r\n\
//!     To: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=a\r\n\
//!     Call-ID: c1\r\nCSeq: 1 OPTIONS\r\n\r\n")? else { unreachable!() };
//!
//! let t0 = Instant::now();
//! let key = layer.send_request(t0, req, peer)?;
//! assert!(layer.poll_transmit().is_some());                 // the request
//! assert_eq!(layer.poll_timeout(), Some(t0 + Duration::from_millis(500))); // timer E
//! layer.handle_timeout(t0 + Duration::from_millis(500));
//! assert!(layer.poll_transmit().is_some());                 // first retransmission
//! # let _ = key;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod config;
mod error;
mod event;
mod key;
mod machine;
mod server;
#[cfg(test)]
mod tests;
mod timer;
mod uas2xx;

use std::collections::HashMap;
use std::time::Instant;

use crate::sip::{Method, Request, Response, SipMessage};

pub use config::{Peer, TimerConfig, TransactionConfig, Transmit, TransportKind};
pub use error::TxError;
pub use event::{CancelTarget, TimeoutCause, TxEvent, TxState, TxStats};
pub use key::{Role, TransactionKey};
pub use uas2xx::{Uas2xxEvent, Uas2xxKey, Uas2xxRetransmitter};

use client::{ClientInvite, ClientNonInvite};
use key::{client_key_of_response, server_key, server_method, to_tag_of};
use machine::{Ctx, Fired, Outbox, Step, Timers};
use server::{AckOutcome, ServerInvite, ServerNonInvite};
use timer::TimerQueue;

#[derive(Debug)]
enum Machine {
    InviteClient(ClientInvite),
    NonInviteClient(ClientNonInvite),
    InviteServer(ServerInvite),
    NonInviteServer(ServerNonInvite),
}

impl Machine {
    fn state(&self) -> TxState {
        match self {
            Machine::InviteClient(m) => m.state(),
            Machine::NonInviteClient(m) => m.state(),
            Machine::InviteServer(m) => m.state(),
            Machine::NonInviteServer(m) => m.state(),
        }
    }

    fn on_timer(&mut self, fired: Fired, ctx: &mut Ctx<'_>) -> Step {
        match self {
            Machine::InviteClient(m) => m.on_timer(fired, ctx),
            Machine::NonInviteClient(m) => m.on_timer(fired, ctx),
            Machine::InviteServer(m) => m.on_timer(fired, ctx),
            Machine::NonInviteServer(m) => m.on_timer(fired, ctx),
        }
    }

    /// Fires every timer due at `ctx.now`, in deadline order.
    fn run_timers(&mut self, ctx: &mut Ctx<'_>) -> Step {
        while let Some(fired) = ctx.timers.take_due(ctx.now) {
            if self.on_timer(fired, ctx) == Step::Terminate {
                return Step::Terminate;
            }
        }
        Step::Continue
    }
}

#[derive(Debug)]
struct Transaction {
    key: TransactionKey,
    peer: Peer,
    timers: Timers,
    /// The deadline last pushed to the heap (heap entries with another
    /// deadline are stale).
    scheduled: Option<Instant>,
    machine: Machine,
}

#[derive(Debug, Default)]
struct Slot {
    generation: u32,
    tx: Option<Transaction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SlotRef {
    index: u32,
    generation: u32,
}

/// All transactions of one SIP endpoint (see the [module docs](self)).
#[derive(Debug)]
pub struct TransactionLayer {
    cfg: TransactionConfig,
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<TransactionKey, SlotRef>,
    timers: TimerQueue<SlotRef>,
    uas2xx: Uas2xxRetransmitter,
    out: Outbox,
}

impl TransactionLayer {
    /// An empty layer; the configuration is validated here.
    pub fn new(cfg: TransactionConfig) -> Result<TransactionLayer, TxError> {
        cfg.validate()?;
        Ok(TransactionLayer {
            uas2xx: Uas2xxRetransmitter::new(cfg.timers, cfg.max_transactions),
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            timers: TimerQueue::default(),
            out: Outbox::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TransactionConfig {
        &self.cfg
    }

    /// Live transactions (client and server).
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no transaction is alive.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// 2xx responses still being retransmitted while waiting for their ACK.
    pub fn pending_2xx(&self) -> usize {
        self.uas2xx.len()
    }

    /// Where a transaction is, if it is alive.
    pub fn state(&self, key: &TransactionKey) -> Option<TxState> {
        let slot = self.index.get(key)?;
        self.tx(*slot).map(|t| t.machine.state())
    }

    /// Drop and absorb counters.
    pub fn stats(&self) -> TxStats {
        self.out.stats
    }

    /// A message from the network.
    pub fn handle_message(&mut self, now: Instant, msg: SipMessage, from: Peer) {
        match msg {
            SipMessage::Request(r) => self.on_request(now, r, from),
            SipMessage::Response(r) => self.on_response(now, r, from),
        }
        self.prune();
    }

    /// Starts a client transaction and sends `req` (the caller has put a Via
    /// with a fresh `z9hG4bK` branch on top). Not for ACK: see
    /// [`TxError::AckIsNotATransaction`].
    pub fn send_request(
        &mut self,
        now: Instant,
        req: Request,
        to: Peer,
    ) -> Result<TransactionKey, TxError> {
        if req.method == Method::Ack {
            return Err(TxError::AckIsNotATransaction);
        }
        let via = req.headers.top_via()?;
        let branch =
            via.branch()
                .filter(|b| b.is_rfc3261())
                .ok_or_else(|| TxError::BranchNotRfc3261 {
                    branch: via.branch().map(|b| b.as_str().to_owned()),
                })?;
        let cseq = req.headers.cseq()?;
        if cseq.method != req.method {
            return Err(TxError::CSeqMethodMismatch {
                method: req.method,
                cseq: cseq.method,
            });
        }
        req.headers.call_id()?;
        let key = TransactionKey::client(branch.as_str(), req.method.clone());
        if self.index.contains_key(&key) {
            return Err(TxError::Duplicate { key });
        }
        if self.len() >= self.cfg.max_transactions {
            return Err(TxError::Capacity {
                limit: self.cfg.max_transactions,
            });
        }
        let invite = req.method == Method::Invite;
        self.insert(now, key.clone(), to, |ctx| {
            if invite {
                Machine::InviteClient(ClientInvite::start(req, ctx))
            } else {
                Machine::NonInviteClient(ClientNonInvite::start(&req, ctx))
            }
        });
        self.prune();
        Ok(key)
    }

    /// Sends a response through a server transaction. A 2xx to an INVITE
    /// also starts its retransmission until the ACK (§13.3.1.4).
    pub fn send_response(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        resp: Response,
    ) -> Result<(), TxError> {
        let slot = *self
            .index
            .get(key)
            .ok_or_else(|| TxError::UnknownTransaction { key: key.clone() })?;
        if key.role() != Role::Server {
            return Err(TxError::NotAServerTransaction { key: key.clone() });
        }
        let is_2xx = (200..=299).contains(&resp.status.as_u16());
        let starts_2xx = is_2xx && *key.method() == Method::Invite;
        if starts_2xx {
            // Validate before anything goes out.
            Uas2xxKey::of_response(&resp)?;
        }
        let peer = self
            .tx(slot)
            .map(|t| t.peer)
            .ok_or_else(|| TxError::UnknownTransaction { key: key.clone() })?;
        let step = self
            .step(slot, now, |m, ctx| match m {
                Machine::InviteServer(s) => s.send_response(&resp, ctx),
                Machine::NonInviteServer(s) => s.send_response(&resp, ctx),
                _ => Err(TxError::NotAServerTransaction {
                    key: ctx.key.clone(),
                }),
            })
            .ok_or_else(|| TxError::UnknownTransaction { key: key.clone() })??;
        self.settle(slot, step);
        if starts_2xx {
            // Cannot fail on capacity: it holds at most one entry per
            // Accepted INVITE server transaction, which are capped alike.
            if self.uas2xx.start(now, &resp, peer).is_err() {
                self.out.stats.dropped_over_capacity += 1;
            }
        }
        self.prune();
        Ok(())
    }

    /// Queues a message outside any transaction: the ACK for a 2xx, or a
    /// stateless response.
    pub fn send_stateless(&mut self, msg: &SipMessage, to: Peer) {
        self.out.transmits.push_back(Transmit {
            to,
            bytes: msg.to_bytes(),
        });
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, &slot)) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if !self.is_live(at, slot) {
                continue;
            }
            if let Some(step) = self.step(slot, now, |m, ctx| m.run_timers(ctx)) {
                self.settle(slot, step);
            }
        }
        self.uas2xx.handle_timeout(now);
        while let Some(t) = self.uas2xx.poll_transmit() {
            self.out.transmits.push_back(t);
        }
        while let Some(e) = self.uas2xx.poll_event() {
            match e {
                Uas2xxEvent::AckTimeout { key } => {
                    self.out.events.push_back(TxEvent::AckTimeout { call: key });
                }
            }
        }
        self.prune();
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TxEvent> {
        self.out.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let tx = self.timers.peek().map(|(at, _)| at);
        match (tx, self.uas2xx.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- incoming ------------------------------------------------------

    fn on_request(&mut self, now: Instant, req: Request, from: Peer) {
        let (Ok(via), Ok(cseq)) = (req.headers.top_via(), req.headers.cseq()) else {
            self.out.stats.malformed += 1;
            return;
        };
        if cseq.method != req.method {
            self.out.stats.malformed += 1;
            return;
        }
        if req.method == Method::Ack {
            self.on_ack(now, req, from, &via);
            return;
        }
        let method = server_method(&req.method);
        let Ok(key) = server_key(&req, &via, method, to_tag_of(&req.headers)) else {
            self.out.stats.malformed += 1;
            return;
        };
        if let Some(&slot) = self.index.get(&key) {
            let step = self.step(slot, now, |m, ctx| {
                match m {
                    Machine::InviteServer(s) => s.on_retransmission(ctx),
                    Machine::NonInviteServer(s) => s.on_retransmission(ctx),
                    _ => ctx.absorbed(),
                }
                Step::Continue
            });
            if let Some(step) = step {
                self.settle(slot, step);
            }
            return;
        }
        if self.len() >= self.cfg.max_transactions {
            self.out.stats.dropped_over_capacity += 1;
            return;
        }
        let machine_req = (req.method == Method::Invite).then(|| req.clone());
        let event = if req.method == Method::Cancel {
            let invite = key.with_method(Method::Invite);
            let target = match self.index.get(&invite).and_then(|s| self.tx(*s)) {
                Some(t) if t.machine.state() == TxState::Proceeding => {
                    CancelTarget::Pending(invite)
                }
                Some(_) => CancelTarget::Answered(invite),
                None => CancelTarget::NotFound,
            };
            TxEvent::Cancel {
                key: key.clone(),
                target,
                request: req,
                from,
            }
        } else {
            TxEvent::Request {
                key: key.clone(),
                request: req,
                from,
            }
        };
        // The request reaches the TU before anything its transaction does.
        self.out.events.push_back(event);
        self.insert(now, key, from, |ctx| match machine_req {
            Some(r) => Machine::InviteServer(ServerInvite::start(r, ctx)),
            None => Machine::NonInviteServer(ServerNonInvite::start(ctx)),
        });
    }

    fn on_ack(&mut self, now: Instant, req: Request, from: Peer, via: &crate::sip::Via) {
        let ack_tag = to_tag_of(&req.headers);
        let slot = match server_key(&req, via, Method::Invite, ack_tag.clone()) {
            Ok(k) => match self.index.get(&k) {
                Some(&slot) => Some(slot),
                None if matches!(k.legacy_to_tag(), Some(Some(_))) => {
                    self.legacy_ack_target(&k, ack_tag.as_deref())
                }
                None => None,
            },
            Err(_) => None,
        };
        if let Some(slot) = slot {
            let outcome = self.step(slot, now, |m, ctx| match m {
                Machine::InviteServer(s) => s.on_ack(ctx),
                _ => AckOutcome::ToTu,
            });
            match outcome {
                Some(AckOutcome::Absorbed) => {
                    self.settle(slot, Step::Continue);
                    return;
                }
                Some(AckOutcome::Terminate) => {
                    self.settle(slot, Step::Terminate);
                    return;
                }
                Some(AckOutcome::ToTu) | None => {}
            }
        }
        self.uas2xx.on_ack(&req);
        self.out
            .events
            .push_back(TxEvent::Ack { request: req, from });
    }

    /// RFC 2543 ACK matching when the INVITE had no To tag: the ACK's To
    /// tag must be the one of our final response.
    fn legacy_ack_target(
        &self,
        ack_key: &TransactionKey,
        ack_tag: Option<&str>,
    ) -> Option<SlotRef> {
        let slot = *self.index.get(&ack_key.with_legacy_to_tag(None))?;
        match &self.tx(slot)?.machine {
            Machine::InviteServer(s) if s.final_to_tag() == ack_tag => Some(slot),
            _ => None,
        }
    }

    fn on_response(&mut self, now: Instant, resp: Response, from: Peer) {
        let slot = client_key_of_response(&resp).and_then(|k| self.index.get(&k).copied());
        let Some(slot) = slot else {
            self.out.stats.stray_responses += 1;
            let invite_2xx = (200..=299).contains(&resp.status.as_u16())
                && resp
                    .headers
                    .cseq()
                    .is_ok_and(|c| c.method == Method::Invite);
            if invite_2xx {
                self.out.events.push_back(TxEvent::StrayInvite2xx {
                    response: resp,
                    from,
                });
            }
            return;
        };
        let step = self.step(slot, now, |m, ctx| match m {
            Machine::InviteClient(c) => c.on_response(resp, ctx),
            Machine::NonInviteClient(c) => c.on_response(resp, ctx),
            _ => Step::Continue,
        });
        if let Some(step) = step {
            self.settle(slot, step);
        }
    }

    // ---- bookkeeping ---------------------------------------------------

    fn tx(&self, slot: SlotRef) -> Option<&Transaction> {
        let s = self.slots.get(slot.index as usize)?;
        if s.generation != slot.generation {
            return None;
        }
        s.tx.as_ref()
    }

    fn is_live(&self, at: Instant, slot: SlotRef) -> bool {
        self.tx(slot).is_some_and(|t| t.scheduled == Some(at))
    }

    /// Runs `f` on a transaction's machine with a context.
    fn step<R>(
        &mut self,
        slot: SlotRef,
        now: Instant,
        f: impl FnOnce(&mut Machine, &mut Ctx<'_>) -> R,
    ) -> Option<R> {
        let s = self.slots.get_mut(slot.index as usize)?;
        if s.generation != slot.generation {
            return None;
        }
        let tx = s.tx.as_mut()?;
        let mut ctx = Ctx {
            now,
            cfg: &self.cfg,
            key: &tx.key,
            peer: tx.peer,
            timers: &mut tx.timers,
            out: &mut self.out,
        };
        Some(f(&mut tx.machine, &mut ctx))
    }

    fn insert(
        &mut self,
        now: Instant,
        key: TransactionKey,
        peer: Peer,
        make: impl FnOnce(&mut Ctx<'_>) -> Machine,
    ) {
        let mut timers = Timers::default();
        let machine = make(&mut Ctx {
            now,
            cfg: &self.cfg,
            key: &key,
            peer,
            timers: &mut timers,
            out: &mut self.out,
        });
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot::default());
                // Capacity is far below u32::MAX slots.
                u32::try_from(self.slots.len() - 1).unwrap_or(u32::MAX)
            }
        };
        let Some(s) = self.slots.get_mut(index as usize) else {
            return;
        };
        let slot = SlotRef {
            index,
            generation: s.generation,
        };
        s.tx = Some(Transaction {
            key: key.clone(),
            peer,
            timers,
            scheduled: None,
            machine,
        });
        self.index.insert(key, slot);
        self.settle(slot, Step::Continue);
    }

    /// After a step: remove the transaction, or push its new deadline.
    fn settle(&mut self, slot: SlotRef, step: Step) {
        let Some(s) = self.slots.get_mut(slot.index as usize) else {
            return;
        };
        if s.generation != slot.generation {
            return;
        }
        match step {
            Step::Terminate => {
                if let Some(tx) = s.tx.take() {
                    s.generation = s.generation.wrapping_add(1);
                    self.free.push(slot.index);
                    self.index.remove(&tx.key);
                    self.out
                        .events
                        .push_back(TxEvent::Terminated { key: tx.key });
                }
            }
            Step::Continue => {
                if let Some(tx) = s.tx.as_mut() {
                    let d = tx.timers.deadline();
                    if d != tx.scheduled {
                        tx.scheduled = d;
                        if let Some(d) = d {
                            self.timers.push(d, slot);
                        }
                    }
                }
            }
        }
    }

    /// Drops stale heap entries from the top (so `poll_timeout` is exact)
    /// and compacts the heap when stale entries pile up.
    fn prune(&mut self) {
        let slots = &self.slots;
        let live = self.index.len();
        self.timers.prune(live, |at, slot| {
            slots
                .get(slot.index as usize)
                .filter(|s| s.generation == slot.generation)
                .and_then(|s| s.tx.as_ref())
                .is_some_and(|t| t.scheduled == Some(at))
        });
    }
}
