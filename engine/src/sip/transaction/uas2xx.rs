//! The UAS core's 2xx retransmission for INVITE (RFC 3261 §13.3.1.4).
//!
//! The INVITE server transaction sends a 2xx once and leaves it to the UAS
//! core to make it reliable end to end: resend at T1, 2*T1, ... capped at
//! T2 until the ACK arrives, and give up after 64*T1 (the session should then
//! be ended with a BYE). This is the sans-IO piece doing that, keyed by
//! Call-ID + CSeq number. The [`TransactionLayer`](super::TransactionLayer)
//! embeds one and drives it (start on a 2xx sent through an INVITE server
//! transaction, stop on the ACK); it can also be used on its own.
//!
//! Retransmission happens over every transport, reliable ones included:
//! the 2xx is end to end and a proxy behind a TCP hop may forward it over
//! UDP (§13.3.1.4 makes no exception). The first transmission is the
//! caller's; only the retransmissions come out of here.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::sip::{CallId, HeaderError, Method, Request, Response};

use super::client::ToBytesVec;
use super::config::{Peer, TimerConfig, Transmit};
use super::error::TxError;
use super::machine::Retransmit;
use super::timer::{after, TimerQueue};

/// Identifies an unacknowledged 2xx: the Call-ID and CSeq number the ACK
/// will carry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Uas2xxKey {
    /// Call-ID of the INVITE.
    pub call_id: CallId,
    /// CSeq number of the INVITE (and of its ACK).
    pub cseq: u32,
}

impl Uas2xxKey {
    /// The key of a 2xx to an INVITE.
    pub fn of_response(response: &Response) -> Result<Uas2xxKey, TxError> {
        let cseq = response.headers.cseq()?;
        let code = response.status.as_u16();
        if cseq.method != Method::Invite || !(200..=299).contains(&code) {
            return Err(TxError::Not2xxToInvite {
                status: response.status,
                method: cseq.method,
            });
        }
        Ok(Uas2xxKey {
            call_id: response.headers.call_id()?,
            cseq: cseq.seq,
        })
    }

    /// The key an ACK acknowledges.
    pub fn of_ack(ack: &Request) -> Result<Uas2xxKey, HeaderError> {
        Ok(Uas2xxKey {
            call_id: ack.headers.call_id()?,
            cseq: ack.headers.cseq()?.seq,
        })
    }
}

/// What the retransmitter reports.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uas2xxEvent {
    /// No ACK within 64*T1: tear the session down with a BYE.
    AckTimeout {
        /// The 2xx given up on.
        key: Uas2xxKey,
    },
}

#[derive(Debug)]
struct Entry {
    bytes: Vec<u8>,
    to: Peer,
    retransmit: Retransmit,
    give_up: Instant,
    scheduled: Instant,
}

impl Entry {
    fn deadline(&self) -> Instant {
        self.retransmit.at.min(self.give_up)
    }
}

/// Retransmits 2xx responses to INVITE until their ACK arrives.
#[derive(Debug)]
pub struct Uas2xxRetransmitter {
    timers_cfg: TimerConfig,
    max_entries: usize,
    entries: HashMap<Uas2xxKey, Entry>,
    timers: TimerQueue<Uas2xxKey>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Uas2xxEvent>,
}

impl Uas2xxRetransmitter {
    /// A retransmitter holding at most `max_entries` unacknowledged 2xx.
    pub fn new(timers: TimerConfig, max_entries: usize) -> Uas2xxRetransmitter {
        Uas2xxRetransmitter {
            timers_cfg: timers,
            max_entries,
            entries: HashMap::new(),
            timers: TimerQueue::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Starts retransmitting `response` (already sent once at `now`) to
    /// `to`. Calling it again for the same Call-ID and CSeq replaces the
    /// bytes and destination and keeps the schedule.
    pub fn start(
        &mut self,
        now: Instant,
        response: &Response,
        to: Peer,
    ) -> Result<Uas2xxKey, TxError> {
        let key = Uas2xxKey::of_response(response)?;
        let bytes = response.to_bytes_vec();
        if let Some(e) = self.entries.get_mut(&key) {
            e.bytes = bytes;
            e.to = to;
            return Ok(key);
        }
        if self.entries.len() >= self.max_entries {
            return Err(TxError::Capacity {
                limit: self.max_entries,
            });
        }
        let t = &self.timers_cfg;
        let retransmit = Retransmit::start(now, t.t1);
        let give_up = after(now, t.t1_x64());
        let scheduled = retransmit.at.min(give_up);
        self.timers.push(scheduled, key.clone());
        self.entries.insert(
            key.clone(),
            Entry {
                bytes,
                to,
                retransmit,
                give_up,
                scheduled,
            },
        );
        Ok(key)
    }

    /// An ACK arrived: stops the 2xx it acknowledges. Returns whether one
    /// was pending.
    pub fn on_ack(&mut self, ack: &Request) -> bool {
        Uas2xxKey::of_ack(ack).is_ok_and(|k| self.stop(&k))
    }

    /// Stops retransmitting without an ACK (e.g. the dialog ended).
    pub fn stop(&mut self, key: &Uas2xxKey) -> bool {
        let found = self.entries.remove(key).is_some();
        self.prune();
        found
    }

    /// Runs every retransmission and give-up due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((at, _)) = self.timers.peek() {
            if at > now {
                break;
            }
            let Some((at, key)) = self.timers.pop() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&key) else {
                continue;
            };
            if e.scheduled != at {
                continue;
            }
            let mut gave_up = false;
            loop {
                if e.give_up <= now && e.give_up <= e.retransmit.at {
                    gave_up = true;
                    break;
                }
                if e.retransmit.at > now {
                    break;
                }
                self.transmits.push_back(Transmit {
                    to: e.to,
                    bytes: e.bytes.clone(),
                });
                let r = e.retransmit;
                e.retransmit = r.next(r.interval.saturating_mul(2).min(self.timers_cfg.t2));
            }
            if gave_up {
                self.entries.remove(&key);
                self.events.push_back(Uas2xxEvent::AckTimeout { key });
            } else {
                e.scheduled = e.deadline();
                self.timers.push(e.scheduled, key);
            }
        }
        self.prune();
    }

    /// The next deadline, if any 2xx is pending.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|(at, _)| at)
    }

    /// The next retransmission to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Uas2xxEvent> {
        self.events.pop_front()
    }

    /// How many 2xx await their ACK.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no 2xx awaits its ACK.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn prune(&mut self) {
        let entries = &self.entries;
        self.timers.prune(entries.len(), |at, k| {
            entries.get(k).is_some_and(|e| e.scheduled == at)
        });
    }
}
