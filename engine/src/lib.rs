//! Telephony for Vocelio: SIP trunks, SDP offer/answer, RTP/RTCP, RFC 4733
//! DTMF and Twilio Media Streams.
//!
//! Protocol cores are sans-IO (time and bytes in; bytes, events and the next
//! deadline out) with thin tokio drivers around them; see
//! `../shared/HOUSE_STYLE.md`. The SIP stack, the RTP media plane and the
//! Twilio stream arrive in their own issues; this crate is empty until then.

pub mod sip;
