//! Telephony for Vocelio: SIP trunks, SDP offer/answer, RTP/RTCP, RFC 4733
//! DTMF and Twilio Media Streams.
//!
//! Protocol cores are sans-IO (time and bytes in; bytes, events and the next
//! deadline out) with thin tokio drivers around them; see
//! `../shared/HOUSE_STYLE.md`.
//!
//! - [`sip`]: RFC 3261 messages, stream framing, the transaction layer
//!   ([`sip::transaction`]) and digest authentication ([`sip::auth`]).
//! - [`sdp`]: RFC 4566 descriptions and RFC 3264 offer/answer for G.711, Opus
//!   and telephone-event.
//! - [`endpoint`]: the SIP trunk endpoint (dialogs, inbound routing by DID,
//!   access control, outbound calls, REFER, REGISTER) and its tokio driver.
//!
//! The RTP media plane and the Twilio stream arrive in their own issues.

pub mod endpoint;
pub mod sdp;
pub mod sip;
