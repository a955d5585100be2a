//! Twilio Media Streams: the TwiML voice webhook, request signatures and the
//! media WebSocket, feeding the same media port as a SIP call.
//!
//! - [`signature`]: `X-Twilio-Signature` (HMAC-SHA1) computation and checks.
//! - [`twiml`]: the `<Connect><Stream>` answer and XML escaping.
//! - [`message`]: the Media Streams JSON protocol, sans-IO.
//! - [`stream`]: one stream's state machine ([`TwilioStream`]): ordering,
//!   mu-law <-> 20 ms frames, real-time paced playout, marks and `clear`.
//! - [`http`]: the axum [`router`] (`/twilio/voice`, `/twilio/status`,
//!   `/twilio/media`) and the per-stream tokio driver.

pub mod http;
pub mod message;
pub mod signature;
pub mod stream;
pub mod twiml;

pub use http::{router, TwilioConfig, TwilioState};
pub use stream::{StreamConfig, StreamStats, TwilioStream};
