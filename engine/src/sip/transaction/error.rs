//! Errors of the transaction layer.

use std::time::Duration;

use crate::sip::{HeaderError, Method, StatusCode};

use super::key::TransactionKey;
use super::TxState;

/// Why the transaction layer refused a call from the TU.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// A configuration value is out of range.
    #[error("{field} = {value:?} is outside {min:?}..={max:?}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// The value given.
        value: Duration,
        /// Smallest accepted value.
        min: Duration,
        /// Largest accepted value.
        max: Duration,
    },
    /// `max_transactions` is zero.
    #[error("max_transactions must be at least 1")]
    ZeroCapacity,
    /// The transaction (or 2xx retransmission) limit is reached.
    #[error("limit of {limit} live transactions reached")]
    Capacity {
        /// The configured limit.
        limit: usize,
    },
    /// A header the layer needs is missing or malformed.
    #[error("unusable header: {source}")]
    Header {
        /// What is wrong with it.
        #[from]
        source: HeaderError,
    },
    /// The top Via of a request to send has no branch, or one without the
    /// `z9hG4bK` cookie (RFC 3261 §8.1.1.7).
    #[error("top Via branch {branch:?} is not an RFC 3261 branch")]
    BranchNotRfc3261 {
        /// The branch found, if any.
        branch: Option<String>,
    },
    /// CSeq method differs from the request method.
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMethodMismatch {
        /// Request-line method.
        method: Method,
        /// CSeq method.
        cseq: Method,
    },
    /// An ACK was passed to `send_request`. The ACK for a non-2xx is sent by
    /// the client transaction itself; the ACK for a 2xx belongs to the
    /// dialog and goes out through `send_stateless`.
    #[error("ACK is not sent through a client transaction")]
    AckIsNotATransaction,
    /// A client transaction with this key exists already (branch reused).
    #[error("transaction {key} already exists")]
    Duplicate {
        /// The key.
        key: TransactionKey,
    },
    /// No live transaction has this key (it may have terminated).
    #[error("no transaction {key}")]
    UnknownTransaction {
        /// The key.
        key: TransactionKey,
    },
    /// `send_response` on a client transaction.
    #[error("{key} is not a server transaction")]
    NotAServerTransaction {
        /// The key.
        key: TransactionKey,
    },
    /// The transaction cannot send this response any more (RFC 3261
    /// §17.2: e.g. a second final response).
    #[error("cannot send {status} in state {state:?} of {key}")]
    InvalidState {
        /// The key.
        key: TransactionKey,
        /// Where the transaction is.
        state: TxState,
        /// The refused status.
        status: StatusCode,
    },
    /// The response passed to the 2xx retransmitter is not a 2xx to an INVITE.
    #[error("{status} to {method} is not a 2xx to INVITE")]
    Not2xxToInvite {
        /// Its status.
        status: StatusCode,
        /// Its CSeq method.
        method: Method,
    },
}
