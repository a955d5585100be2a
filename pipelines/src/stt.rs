//! Speech-to-text with whisper.cpp (`whisper-rs`), tuned for short
//! telephone utterances.
//!
//! The model loads once per process ([`SpeechToText`], cheap to share); each
//! inference worker owns a [`SttWorker`] with its own decoding state. Three
//! settings matter for latency on short turns (measured on this project's
//! fixtures): the encoder's audio context is cut to the utterance instead of
//! whisper's fixed 30 s window, no text is carried over between utterances,
//! and there is no temperature fallback (one greedy pass).

use crate::models::{files, ModelDir, ModelError};
use std::path::Path;
use std::sync::Once;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

/// Whisper's encoder produces 50 positions per second of audio (1500 for 30 s).
const CTX_PER_SECOND: f32 = 50.0;
/// Extra positions beyond the utterance; too tight a window makes whisper drop words.
const CTX_MARGIN: i32 = 64;
/// The full window.
const CTX_MAX: i32 = 1500;

/// Errors from speech-to-text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SttError {
    /// The model file is missing.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// whisper.cpp refused the model or failed while decoding.
    #[error("whisper: {0}")]
    Whisper(#[from] whisper_rs::WhisperError),
    /// Audio longer than whisper's 30 s window; split it upstream.
    #[error("utterance of {seconds:.1} s is longer than whisper's 30 s window")]
    TooLong {
        /// Its length.
        seconds: f32,
    },
}

/// Which whisper weights to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhisperModel {
    /// tiny.en, f16.
    #[default]
    TinyEn,
    /// tiny.en, q8_0 quantised.
    TinyEnQ8,
}

/// A loaded whisper model, shared by every worker.
pub struct SpeechToText {
    ctx: WhisperContext,
}

impl std::fmt::Debug for SpeechToText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechToText").finish_non_exhaustive()
    }
}

static LOG_HOOKS: Once = Once::new();

impl SpeechToText {
    /// Load `model` from the models folder.
    pub fn load(dir: &ModelDir, model: WhisperModel) -> Result<Self, SttError> {
        let file = match model {
            WhisperModel::TinyEn => files::WHISPER_TINY_EN,
            WhisperModel::TinyEnQ8 => files::WHISPER_TINY_EN_Q8,
        };
        let path = dir.require("whisper model (ggml)", file)?;
        Self::load_file(&path)
    }

    /// Load a ggml whisper model from any path.
    pub fn load_file(path: &Path) -> Result<Self, SttError> {
        // Route whisper.cpp's own logging into `tracing` instead of stderr.
        LOG_HOOKS.call_once(whisper_rs::install_logging_hooks);
        let ctx = WhisperContext::new_with_params(path, WhisperContextParameters::default())?;
        Ok(SpeechToText { ctx })
    }

    /// A worker with its own decoding state, using `threads` CPU threads per utterance.
    pub fn worker(&self, threads: usize) -> Result<SttWorker, SttError> {
        Ok(SttWorker {
            state: self.ctx.create_state()?,
            threads: threads.max(1) as i32,
        })
    }
}

/// One inference worker's whisper state. Not shared: one utterance at a time.
pub struct SttWorker {
    state: WhisperState,
    threads: i32,
}

impl std::fmt::Debug for SttWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SttWorker")
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// The encoder context (positions) for `samples` of 16 kHz audio.
pub fn audio_ctx_for(samples: usize) -> i32 {
    let secs = samples as f32 / 16_000.0;
    ((secs * CTX_PER_SECOND).ceil() as i32 + CTX_MARGIN).min(CTX_MAX)
}

/// Token budget for `samples` of 16 kHz audio.
pub fn max_tokens_for(samples: usize) -> i32 {
    let secs = samples as f32 / 16_000.0;
    (secs * 8.0).ceil() as i32 + 8
}

/// Cut a transcript where it starts repeating itself: "yes that works for me
/// yes that works for me ..." -> "yes that works for me". Only phrases of three
/// or more words count, so "five five five" is kept.
pub fn collapse_repeats(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let key = |w: &str| {
        w.trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase()
    };
    let keys: Vec<String> = words.iter().map(|w| key(w)).collect();
    for start in 0..keys.len() {
        for len in 3..=(keys.len() - start) / 2 {
            if keys[start..start + len] == keys[start + len..start + 2 * len] {
                return words[..start + len].join(" ");
            }
        }
    }
    words.join(" ")
}

impl SttWorker {
    /// Transcribe one utterance of 16 kHz mono PCM (-1.0..1.0). Returns the text, trimmed.
    pub fn transcribe(&mut self, pcm_16k: &[f32]) -> Result<String, SttError> {
        self.transcribe_with_ctx(pcm_16k, audio_ctx_for(pcm_16k.len()))
    }

    /// As [`SttWorker::transcribe`], with an explicit encoder context (1500 = whisper's full 30 s window).
    pub fn transcribe_with_ctx(
        &mut self,
        pcm_16k: &[f32],
        audio_ctx: i32,
    ) -> Result<String, SttError> {
        let seconds = pcm_16k.len() as f32 / 16_000.0;
        if seconds > 30.0 {
            return Err(SttError::TooLong { seconds });
        }
        let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
        params.set_n_threads(self.threads);
        params.set_language(Some("en"));
        params.set_no_context(true);
        params.set_temperature_inc(0.0);
        params.set_audio_ctx(audio_ctx.clamp(1, CTX_MAX));
        params.set_single_segment(true);
        // A cut audio context can make whisper loop on its own output; bound
        // the tokens by what a person can say in the time (speech is ~4 tokens/s).
        params.set_max_tokens(max_tokens_for(pcm_16k.len()));
        params.set_no_timestamps(true);
        params.set_suppress_blank(true);
        params.set_print_progress(false);
        params.set_print_realtime(false);
        params.set_print_special(false);
        params.set_print_timestamps(false);
        self.state.full(params, pcm_16k)?;
        let mut text = String::new();
        for segment in self.state.as_iter() {
            text.push_str(&segment.to_str_lossy()?);
        }
        Ok(collapse_repeats(text.trim()))
    }

    /// Transcribe 16-bit PCM at 16 kHz.
    pub fn transcribe_i16(&mut self, pcm_16k: &[i16]) -> Result<String, SttError> {
        let f: Vec<f32> = pcm_16k.iter().map(|&s| f32::from(s) / 32768.0).collect();
        self.transcribe(&f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_ctx_follows_the_utterance() {
        assert_eq!(audio_ctx_for(16_000), 50 + CTX_MARGIN);
        assert_eq!(audio_ctx_for(8_000), 25 + CTX_MARGIN);
        assert_eq!(audio_ctx_for(16_000 * 30), CTX_MAX);
    }

    #[test]
    fn repeated_phrases_collapse() {
        assert_eq!(
            collapse_repeats("Yes, that works for me. Yes, that works for me. Yes, that"),
            "Yes, that works for me."
        );
        assert_eq!(
            collapse_repeats("No I don't think so... No I don't think so... No I"),
            "No I don't think so..."
        );
        assert_eq!(
            collapse_repeats("My number is 5 5 5 5 1 2 3"),
            "My number is 5 5 5 5 1 2 3"
        );
        assert_eq!(collapse_repeats("  "), "");
    }

    #[test]
    fn missing_model_is_a_clear_error() {
        let e =
            SpeechToText::load(&ModelDir::new("/nonexistent"), WhisperModel::TinyEn).unwrap_err();
        assert!(e.to_string().contains("ggml-tiny.en.bin"), "{e}");
    }
}
