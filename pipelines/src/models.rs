//! The models folder and what is in it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// File names inside the models folder, as `scripts/setup.sh` lays them out.
pub mod files {
    /// Whisper tiny.en, ggml f16, converted from CTranslate2 by `scripts/ct2_to_ggml.py`.
    pub const WHISPER_TINY_EN: &str = "ggml-tiny.en.bin";
    /// The same, q8_0 quantised.
    pub const WHISPER_TINY_EN_Q8: &str = "ggml-tiny.en-q8_0.bin";
    /// Piper voice (22050 Hz).
    pub const PIPER_VOICE: &str = "piper/en_US-joe-medium.onnx";
    /// Its config.
    pub const PIPER_VOICE_CONFIG: &str = "piper/en_US-joe-medium.onnx.json";
    /// Silero VAD v6.
    pub const SILERO_VAD: &str = "silero_vad.onnx";
    /// ONNX Runtime, loaded at run time by `ort` (`load-dynamic`).
    pub const ONNXRUNTIME: &str = "onnxruntime/libonnxruntime.so.1.32.0";
    /// Sentence embeddings: all-MiniLM-L6-v2, int8 weights (ONNX).
    pub const MINILM: &str = "minilm/model.onnx";
    /// Its tokenizer (pads to 128 tokens: turn padding off or mask it when pooling).
    pub const MINILM_TOKENIZER: &str = "minilm/tokenizer.json";
    /// Local LLM for the brain, as shipped (Q4_1).
    pub const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
    /// The same, requantised to Q8_0 by `scripts/requantize_gguf.py`: faster
    /// on CPU (llama.cpp's Q8_0 dot products), the default.
    pub const SMOLLM2_Q8: &str = "SmolLM2-135M-Instruct.Q8_0.gguf";
}

/// Errors locating or loading models.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A model file is not where it should be.
    #[error("model file {path} is missing ({what}); run scripts/setup.sh or point models.dir at the folder that has it")]
    Missing {
        /// What the file is.
        what: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// ONNX Runtime could not be loaded from the file.
    #[error("cannot load ONNX Runtime from {path}: {reason}")]
    OnnxRuntime {
        /// The library file.
        path: PathBuf,
        /// ort's reason.
        reason: String,
    },
}

/// The models folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir {
    root: PathBuf,
}

impl ModelDir {
    /// The folder at `root` (not checked yet).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        ModelDir { root: root.into() }
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of `file` (one of [`files`]) inside the folder, if it exists.
    pub fn require(&self, what: &'static str, file: &str) -> Result<PathBuf, ModelError> {
        let path = self.root.join(file);
        if path.is_file() {
            Ok(path)
        } else {
            Err(ModelError::Missing { what, path })
        }
    }

    /// Every file the engine can use, with whether it is present: `(name, path, present)`.
    pub fn check(&self) -> Vec<(&'static str, PathBuf, bool)> {
        [
            ("whisper tiny.en", files::WHISPER_TINY_EN),
            ("whisper q8_0", files::WHISPER_TINY_EN_Q8),
            ("piper voice", files::PIPER_VOICE),
            ("piper config", files::PIPER_VOICE_CONFIG),
            ("silero vad", files::SILERO_VAD),
            ("onnxruntime", files::ONNXRUNTIME),
            ("smollm2", files::SMOLLM2),
            ("smollm2 q8_0", files::SMOLLM2_Q8),
            ("minilm embeddings", files::MINILM),
            ("minilm tokenizer", files::MINILM_TOKENIZER),
        ]
        .into_iter()
        .map(|(name, file)| {
            let p = self.root.join(file);
            let ok = p.is_file();
            (name, p, ok)
        })
        .collect()
    }
}

static ORT: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// Load ONNX Runtime from the models folder, once per process.
///
/// The file is checked before `ort` sees it: `ort` 2.0.0-rc.12 deadlocks
/// instead of failing when asked to load a library path that does not exist.
/// Later calls return the first call's outcome (a process has one runtime).
pub fn init_onnxruntime(dir: &ModelDir) -> Result<(), ModelError> {
    let path = dir.require("ONNX Runtime shared library", files::ONNXRUNTIME)?;
    let outcome = ORT.get_or_init(|| {
        let builder = ort::init_from(&path).map_err(|e| e.to_string())?;
        builder.with_name("vocelio").commit();
        Ok(path.clone())
    });
    match outcome {
        Ok(_) => Ok(()),
        Err(reason) => Err(ModelError::OnnxRuntime {
            path,
            reason: reason.clone(),
        }),
    }
}

/// An ONNX Runtime session for `model` using `threads` intra-op threads.
///
/// Inference runs on the engine's bounded worker pools, so each session
/// gets few threads instead of ONNX Runtime's default of one per core.
pub fn onnx_session(model: &Path, threads: usize) -> Result<ort::session::Session, ort::Error> {
    let session = ort::session::Session::builder()?
        .with_intra_threads(threads.max(1))
        .map_err(ort::Error::<()>::from)?
        .with_inter_threads(1)
        .map_err(ort::Error::<()>::from)?
        .commit_from_file(model)?;
    Ok(session)
}

/// The models folder tests use: `VOCELIO_MODELS_DIR`, else `models/` at the workspace root.
pub fn test_model_dir() -> ModelDir {
    match std::env::var_os("VOCELIO_MODELS_DIR") {
        Some(d) => ModelDir::new(d),
        None => ModelDir::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("../models")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_files_are_named() {
        let d = ModelDir::new("/nonexistent/models");
        let e = d
            .require("whisper", files::WHISPER_TINY_EN)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/models/ggml-tiny.en.bin") && e.contains("scripts/setup.sh"),
            "{e}"
        );
        assert!(d.check().iter().all(|(_, _, ok)| !ok));
        // And ONNX Runtime fails cleanly rather than hanging on a missing library.
        assert!(matches!(
            init_onnxruntime(&d),
            Err(ModelError::Missing { .. })
        ));
    }
}
