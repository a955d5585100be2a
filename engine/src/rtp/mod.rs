//! RTP and RTCP (RFC 3550), telephone-events (RFC 4733), the jitter buffer
//! and the per-call RTP session. Everything here is sans-IO: bytes and `now`
//! in, bytes, frames, events and the next deadline out.

pub mod packet;
pub mod rtcp;
pub mod telephone_event;

pub mod decoder;
pub mod jitter;
pub mod session;
pub mod stats;

pub use packet::{
    looks_like_rtcp, write_packet, PayloadType, RtpError, RtpHeader, RtpPacket, Ssrc,
};
