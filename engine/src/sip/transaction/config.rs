//! Peers, transmits and the timer configuration.

use std::net::SocketAddr;
use std::time::Duration;

use super::error::TxError;

/// The transport a peer is reached over. Reliability changes the timers
/// (RFC 3261 §17: over a reliable transport timers A, E and G are not used
/// and D, I, J and K are zero).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportKind {
    /// Unreliable: the transaction layer retransmits.
    Udp,
    /// Reliable: the transport retransmits.
    Tcp,
}

impl TransportKind {
    /// Whether the transport delivers reliably (no retransmissions needed).
    pub fn is_reliable(self) -> bool {
        match self {
            TransportKind::Udp => false,
            TransportKind::Tcp => true,
        }
    }
}

/// The other end of a transaction: where its messages came from or go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Peer {
    /// Socket address.
    pub addr: SocketAddr,
    /// Transport.
    pub transport: TransportKind,
}

/// Bytes for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: Peer,
    /// One complete SIP message in canonical wire form.
    pub bytes: Vec<u8>,
}

/// The RFC 3261 base timer values (§17.1.1.1, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate; first retransmission interval (500 ms).
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE
    /// responses (4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: timers B, F, H, J (over UDP), L, M and the 2xx give-up time.
    pub fn t1_x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// Everything a [`TransactionLayer`](super::TransactionLayer) can be tuned with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionConfig {
    /// T1, T2, T4.
    pub timers: TimerConfig,
    /// Delay after which a server INVITE transaction sends `100 Trying` on
    /// its own if the TU has not responded yet (RFC 3261 §17.2.1: 200 ms).
    /// `None` disables the automatic 100.
    pub auto_trying: Option<Duration>,
    /// Timer D: how long a client INVITE transaction absorbs retransmitted
    /// non-2xx finals over UDP (at least 32 s).
    pub timer_d: Duration,
    /// Guard for INVITE transactions that never see a final response: a
    /// client INVITE in Proceeding, or a server INVITE whose TU has not
    /// sent a final, times out this long after the last provisional
    /// (like the proxy timer C of RFC 3261 §16.6; default 180 s). RFC 3261
    /// has no such timer for a UA, which would let a silent peer or TU keep a
    /// transaction alive forever.
    pub timer_c: Duration,
    /// Most live transactions (client + server). Beyond it new requests from
    /// the network are dropped (counted in [`TxStats`](super::TxStats)) and
    /// `send_request` fails with [`TxError::Capacity`]. Also caps the 2xx
    /// retransmitter.
    pub max_transactions: usize,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            timers: TimerConfig::default(),
            auto_trying: Some(Duration::from_millis(200)),
            timer_d: Duration::from_secs(32),
            timer_c: Duration::from_secs(180),
            max_transactions: 100_000,
        }
    }
}

const MAX_TIMER: Duration = Duration::from_secs(3600);

impl TransactionConfig {
    /// Checks that the timers make sense (non-zero T1 so retransmissions
    /// advance, T2 >= T1, nothing above an hour) and the limit is non-zero.
    pub fn validate(&self) -> Result<(), TxError> {
        let t = &self.timers;
        let check = |field: &'static str, value: Duration, min: Duration| {
            if value < min || value > MAX_TIMER {
                Err(TxError::InvalidConfig {
                    field,
                    value,
                    min,
                    max: MAX_TIMER,
                })
            } else {
                Ok(())
            }
        };
        let ms = Duration::from_millis(1);
        check("t1", t.t1, ms)?;
        check("t2", t.t2, t.t1)?;
        check("t4", t.t4, ms)?;
        check("timer_d", self.timer_d, Duration::ZERO)?;
        check("timer_c", self.timer_c, ms)?;
        if let Some(d) = self.auto_trying {
            check("auto_trying", d, Duration::ZERO)?;
        }
        if self.max_transactions == 0 {
            return Err(TxError::ZeroCapacity);
        }
        Ok(())
    }
}
