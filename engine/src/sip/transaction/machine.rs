//! What the four state machines share: their timers, the context they act
//! through, and the outcome of a step.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::config::{Peer, TransactionConfig, Transmit};
use super::event::{TimeoutCause, TxEvent, TxStats};
use super::key::TransactionKey;
use super::timer::after;

/// A retransmission timer (A, E or G): next firing and current interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retransmit {
    pub(super) at: Instant,
    pub(super) interval: Duration,
}

impl Retransmit {
    pub(super) fn start(now: Instant, interval: Duration) -> Retransmit {
        Retransmit {
            at: after(now, interval),
            interval,
        }
    }

    /// Next firing after this one, with a new interval. Counted from the
    /// previous deadline, not from `now`, so a late wake-up does not shift
    /// the schedule.
    pub(super) fn next(self, interval: Duration) -> Retransmit {
        Retransmit {
            at: after(self.at, interval),
            interval,
        }
    }
}

/// Every timer a transaction can run; each machine uses a subset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Timers {
    /// A / E / G.
    pub(super) retransmit: Option<Retransmit>,
    /// B / F / H / C / the TU guard: reports a Timeout.
    pub(super) timeout: Option<(Instant, TimeoutCause)>,
    /// D / I / J / K / L / M: terminates quietly.
    pub(super) linger: Option<Instant>,
    /// The automatic 100 Trying of a server INVITE.
    pub(super) trying: Option<Instant>,
}

/// Which timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fired {
    Linger,
    Timeout(TimeoutCause),
    Trying,
    Retransmit,
}

impl Timers {
    pub(super) fn deadline(&self) -> Option<Instant> {
        [
            self.linger,
            self.timeout.map(|(t, _)| t),
            self.trying,
            self.retransmit.map(|r| r.at),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(super) fn clear(&mut self) {
        *self = Timers::default();
    }

    /// The earliest timer due at `now`, cleared (a retransmission timer is
    /// left for the machine to advance). On ties, ending the transaction
    /// wins over sending.
    pub(super) fn take_due(&mut self, now: Instant) -> Option<Fired> {
        let due = self.deadline().filter(|&d| d <= now)?;
        if self.linger == Some(due) {
            self.linger = None;
            return Some(Fired::Linger);
        }
        if let Some((t, cause)) = self.timeout {
            if t == due {
                self.timeout = None;
                return Some(Fired::Timeout(cause));
            }
        }
        if self.trying == Some(due) {
            self.trying = None;
            return Some(Fired::Trying);
        }
        Some(Fired::Retransmit)
    }
}

/// Continue, or remove the transaction (a `Terminated` event follows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(super) enum Step {
    Continue,
    Terminate,
}

/// The queues a machine writes into.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<TxEvent>,
    pub(super) stats: TxStats,
}

/// What a machine acts through during one step.
#[derive(Debug)]
pub(super) struct Ctx<'a> {
    pub(super) now: Instant,
    pub(super) cfg: &'a TransactionConfig,
    pub(super) key: &'a TransactionKey,
    pub(super) peer: Peer,
    pub(super) timers: &'a mut Timers,
    pub(super) out: &'a mut Outbox,
}

impl Ctx<'_> {
    pub(super) fn send(&mut self, bytes: Vec<u8>) {
        self.out.transmits.push_back(Transmit {
            to: self.peer,
            bytes,
        });
    }

    pub(super) fn event(&mut self, e: TxEvent) {
        self.out.events.push_back(e);
    }

    pub(super) fn reliable(&self) -> bool {
        self.peer.transport.is_reliable()
    }

    pub(super) fn at(&self, d: Duration) -> Instant {
        after(self.now, d)
    }

    pub(super) fn t1(&self) -> Duration {
        self.cfg.timers.t1
    }

    pub(super) fn t2(&self) -> Duration {
        self.cfg.timers.t2
    }

    pub(super) fn t1_x64(&self) -> Duration {
        self.cfg.timers.t1_x64()
    }

    /// Report a timeout; the caller terminates.
    pub(super) fn timeout(&mut self, cause: TimeoutCause) -> Step {
        self.event(TxEvent::Timeout {
            key: self.key.clone(),
            cause,
        });
        Step::Terminate
    }

    pub(super) fn absorbed(&mut self) {
        self.out.stats.absorbed += 1;
    }
}
