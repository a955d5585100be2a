//! Audio building blocks for the Vocelio media path.
//!
//! Everything here is synchronous and allocation-free on the per-frame path:
//! buffers are sized when a codec or resampler is built, and each call writes
//! into a caller-provided [`AudioFrame`] or byte slice.
//!
//! - [`frame`]: 20 ms PCM frames in fixed buffers, stamped with [`MediaTime`].
//! - [`g711`]: ITU-T G.711 mu-law and A-law, table driven and bit-exact.
//! - [`opus`]: Opus encode/decode (libopus) with packet-loss concealment.
//! - [`resample`]: streaming 20 ms resampling between the engine's rates.
//! - [`transcode`]: the two per-frame paths, wire G.711 <-> pipeline PCM.
//! - [`port`]: the per-call media port where a transport meets a pipeline.
//! - [`wav`]: WAV read/write for fixtures and recordings.

pub mod frame;
pub mod g711;
pub mod opus;
pub mod port;
pub mod resample;
pub mod transcode;
pub mod wav;

pub use frame::{AudioFrame, FrameError, MediaTime, SampleRate, FRAME_MS, MAX_FRAME_SAMPLES};
