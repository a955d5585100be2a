//! The Vocelio control API: agents, flows, numbers, voices, calls,
//! campaigns, analytics and webhooks over axum, persisted in SQLite.
//!
//! Built in its own issue; this crate is empty until then.
