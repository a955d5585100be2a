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

pub mod models;
pub mod stt;
pub mod tts;
pub mod vad;
