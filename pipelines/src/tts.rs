//! Text-to-speech with Piper voices (`piper-rs`, ONNX Runtime).

use crate::models::{files, init_onnxruntime, onnx_session, ModelDir, ModelError};
use piper_rs::{ModelConfig, Piper};
use std::path::Path;
use std::sync::Once;
use vocelio_codecs::{FrameError, SampleRate};

/// Where Debian's espeak-ng package keeps `espeak-ng-data` (Piper's phonemiser reads it).
pub const DEFAULT_ESPEAK_DATA_PARENT: &str = "/usr/lib/x86_64-linux-gnu";
const ESPEAK_ENV: &str = "PIPER_ESPEAKNG_DATA_DIRECTORY";

/// Errors from text-to-speech.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TtsError {
    /// A model file or ONNX Runtime is missing.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The voice's config file could not be read or parsed.
    #[error("voice config {path}: {reason}")]
    Config {
        /// The `.onnx.json` file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The voice's sample rate is not one the engine carries.
    #[error("voice sample rate: {0}")]
    Rate(#[from] FrameError),
    /// espeak-ng's data folder is not where it was said to be.
    #[error("espeak-ng data not found at {path}/espeak-ng-data (Debian package espeak-ng-data; set {ESPEAK_ENV})")]
    EspeakData {
        /// The parent folder looked in.
        path: String,
    },
    /// ONNX Runtime failed to build the session.
    #[error("onnx runtime: {0}")]
    Ort(#[from] ort::Error),
    /// Nothing to say.
    #[error("empty text")]
    EmptyText,
    /// Piper failed (phonemes or inference).
    #[error("piper: {0}")]
    Piper(#[from] piper_rs::PiperError),
}

/// A loaded Piper voice. Synthesis needs `&mut`: give each TTS worker its own.
pub struct Voice {
    piper: Piper,
    rate: SampleRate,
}

impl std::fmt::Debug for Voice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Voice")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

static ESPEAK_ENV_SET: Once = Once::new();

fn ensure_espeak_data() -> Result<(), TtsError> {
    let parent =
        std::env::var(ESPEAK_ENV).unwrap_or_else(|_| DEFAULT_ESPEAK_DATA_PARENT.to_string());
    if !Path::new(&parent).join("espeak-ng-data").is_dir() {
        return Err(TtsError::EspeakData { path: parent });
    }
    // espeak-rs reads the location from this variable only; set it once, at
    // model load, before any synthesis thread exists.
    ESPEAK_ENV_SET.call_once(|| {
        if std::env::var_os(ESPEAK_ENV).is_none() {
            std::env::set_var(ESPEAK_ENV, &parent);
        }
    });
    Ok(())
}

impl Voice {
    /// Load the default voice from the models folder, running inference on `threads` threads.
    pub fn load(dir: &ModelDir, threads: usize) -> Result<Self, TtsError> {
        let model = dir.require("Piper voice", files::PIPER_VOICE)?;
        let config = dir.require("Piper voice config", files::PIPER_VOICE_CONFIG)?;
        init_onnxruntime(dir)?;
        Self::load_files(&model, &config, threads)
    }

    /// Load a voice from its `.onnx` and `.onnx.json` (ONNX Runtime must be initialised).
    pub fn load_files(model: &Path, config: &Path, threads: usize) -> Result<Self, TtsError> {
        ensure_espeak_data()?;
        let cfg_err = |reason: String| TtsError::Config {
            path: config.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(config).map_err(|e| cfg_err(e.to_string()))?;
        let cfg: ModelConfig = serde_json::from_str(&text).map_err(|e| cfg_err(e.to_string()))?;
        let rate = SampleRate::from_hz(cfg.audio.sample_rate)?;
        let session = onnx_session(model, threads)?;
        Ok(Voice {
            piper: Piper::from_session(session, cfg),
            rate,
        })
    }

    /// The voice's native sample rate (22050 Hz for Piper "medium" voices).
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// Speak `text`; returns 16-bit PCM at [`Voice::rate`].
    pub fn synthesize(&mut self, text: &str) -> Result<Vec<i16>, TtsError> {
        let text = text.trim();
        if text.is_empty() || !text.chars().any(char::is_alphanumeric) {
            return Err(TtsError::EmptyText);
        }
        let (samples, _) = self.piper.create(text, false, None, None, None, None)?;
        Ok(samples
            .iter()
            .map(|&s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
            .collect())
    }
}
