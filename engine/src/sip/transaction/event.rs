//! What the transaction layer reports to the TU.

use crate::sip::{Request, Response};

use super::config::Peer;
use super::key::TransactionKey;
use super::uas2xx::Uas2xxKey;

/// Where a transaction is (RFC 3261 figures 5 to 8, RFC 6026 figures 5 and 7).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxState {
    /// Client INVITE, request sent, nothing heard.
    Calling,
    /// Non-INVITE (client or server) before any response.
    Trying,
    /// A provisional response was received (client) or is being sent, or
    /// the server INVITE transaction waits for the TU's final.
    Proceeding,
    /// A non-2xx final (INVITE) or any final (non-INVITE) was received/sent;
    /// retransmissions are absorbed.
    Completed,
    /// Server INVITE: the ACK for the non-2xx final arrived.
    Confirmed,
    /// RFC 6026: a 2xx to an INVITE was received/sent; further 2xx and
    /// ACKs pass to the TU, request retransmissions are absorbed.
    Accepted,
}

/// Which timer ended a transaction with [`TxEvent::Timeout`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutCause {
    /// Client INVITE: no response within 64*T1.
    TimerB,
    /// Client non-INVITE: no final response within 64*T1.
    TimerF,
    /// Server INVITE: no ACK for a non-2xx final within 64*T1.
    TimerH,
    /// Client INVITE: no final within `timer_c` of the last provisional.
    TimerC,
    /// Server transaction: the TU sent no final response in time
    /// (non-INVITE: 64*T1, the client's timer F; INVITE: `timer_c` after
    /// the last provisional).
    NoFinalResponse,
}

/// How an incoming CANCEL relates to the INVITE it names (RFC 3261 §9.2).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelTarget {
    /// The INVITE server transaction exists and has sent no final response:
    /// answer the INVITE with 487 and the CANCEL with 200.
    Pending(TransactionKey),
    /// The INVITE already has a final response: the CANCEL has no effect,
    /// answer it with 200.
    Answered(TransactionKey),
    /// No matching INVITE transaction: answer the CANCEL with 481.
    NotFound,
}

/// An output of the transaction layer, for the TU.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxEvent {
    /// A new request (not a retransmission); answer it with
    /// `send_response(key, ..)`. Never an ACK or a CANCEL.
    Request {
        /// The new server transaction.
        key: TransactionKey,
        /// The request.
        request: Request,
        /// Where it came from.
        from: Peer,
    },
    /// A new CANCEL, with its own server transaction `key` (answer 200 or
    /// 481 through it) and the INVITE it targets.
    Cancel {
        /// The CANCEL's server transaction.
        key: TransactionKey,
        /// The INVITE server transaction it matches.
        target: CancelTarget,
        /// The CANCEL.
        request: Request,
        /// Where it came from.
        from: Peer,
    },
    /// An ACK that is not absorbed by an INVITE server transaction: the ACK
    /// for a 2xx, which belongs to the dialog. Every copy is reported; it has
    /// already stopped the matching 2xx retransmissions.
    Ack {
        /// The ACK.
        request: Request,
        /// Where it came from.
        from: Peer,
    },
    /// A response for a client transaction: each provisional, the final,
    /// and for an INVITE every further 2xx while Accepted (retransmissions
    /// or other forks; the TU ACKs each). Non-2xx retransmissions are absorbed.
    Response {
        /// The client transaction.
        key: TransactionKey,
        /// The response.
        response: Response,
    },
    /// A 2xx to an INVITE that matches no client transaction (it arrived
    /// after timer M): RFC 3261 §18.1.2 passes it to the core, which should
    /// ACK and, if it has no dialog for it, BYE it. Other stray responses are
    /// only counted ([`TxStats::stray_responses`]).
    StrayInvite2xx {
        /// The response.
        response: Response,
        /// Where it came from.
        from: Peer,
    },
    /// The transaction timed out; a `Terminated` for it follows.
    Timeout {
        /// The transaction.
        key: TransactionKey,
        /// Which timer.
        cause: TimeoutCause,
    },
    /// A 2xx to an INVITE was retransmitted for 64*T1 without an ACK (RFC
    /// 3261 §13.3.1.4): the dialog should be torn down with a BYE.
    AckTimeout {
        /// Call-ID and CSeq number of the unacknowledged 2xx.
        call: Uas2xxKey,
    },
    /// The transaction is gone; its key is free.
    Terminated {
        /// The transaction.
        key: TransactionKey,
    },
}

/// Counters of messages the layer dropped or absorbed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Responses that matched no client transaction.
    pub stray_responses: u64,
    /// Requests and responses without a usable Via, CSeq, Call-ID or From,
    /// or whose CSeq method differs from the request method.
    pub malformed: u64,
    /// Retransmissions absorbed by a transaction (requests, responses, ACKs).
    pub absorbed: u64,
    /// New requests dropped because `max_transactions` was reached.
    pub dropped_over_capacity: u64,
}
