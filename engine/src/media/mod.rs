//! The tokio media plane: RTP sockets, the shared 20 ms playout clock, and
//! each call's media port.
