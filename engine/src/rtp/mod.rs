//! RTP and RTCP (RFC 3550), telephone-events (RFC 4733), the jitter buffer
//! and the per-call RTP session. Everything here is sans-IO: bytes and `now`
//! in, bytes, frames, events and the next deadline out.
