//! Sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) with its tokenizer.
//!
//! [`Embedder::embed`] turns a sentence into a 384-dimensional unit vector:
//! WordPiece tokens through MiniLM, the last hidden state mean-pooled over
//! the real tokens (the attention mask, never padding), then L2-normalised,
//! so the dot product of two embeddings is their cosine similarity
//! ([`cosine`]).
//!
//! The shipped `tokenizer.json` pads every input to 128 tokens; the embedder
//! turns that padding off (a short phone turn is ~10 tokens, so padding would
//! cost ~10x the compute) and pads a batch only to its longest member.
//!
//! An [`Embedder`] is `Send + Sync`: ONNX Runtime's `Session::run` needs
//! `&mut`, so it keeps a small pool of sessions behind mutexes and a caller
//! takes whichever is free.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use ort::session::{Session, SessionInputValue};
use ort::value::TensorRef;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::models::{files, init_onnxruntime, onnx_session, ModelDir, ModelError};

/// Length of a MiniLM embedding.
pub const DIM: usize = 384;

/// Errors loading the embedding model or embedding text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// A model file is missing, or ONNX Runtime could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The tokenizer file could not be read or parsed.
    #[error("cannot load tokenizer {path}: {reason}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// The tokenizers crate's reason.
        reason: String,
    },
    /// The model does not look like a BERT-style sentence encoder.
    #[error("{path} is not a MiniLM sentence encoder: {reason}")]
    NotEncoder {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tokenizer failed on an input.
    #[error("cannot tokenize input {index}: {reason}")]
    Tokenize {
        /// Which input of the batch (0 for a single text).
        index: usize,
        /// The tokenizers crate's reason.
        reason: String,
    },
    /// The model's output has an unexpected shape.
    #[error("model output has shape {actual:?}, expected [{batch}, {tokens}, {DIM}]")]
    OutputShape {
        /// The batch size sent.
        batch: usize,
        /// The padded token count sent.
        tokens: usize,
        /// The shape received.
        actual: Vec<i64>,
    },
    /// ONNX Runtime failed.
    #[error("onnx runtime: {0}")]
    Ort(#[from] ort::Error),
}

/// How an [`Embedder`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbedConfig {
    /// ONNX Runtime intra-op threads per session (default 1: inference runs
    /// on the engine's worker pools, and a phone turn is a few ms).
    pub threads: usize,
    /// Sessions in the pool: how many embeddings can run at once (default 1).
    pub sessions: usize,
    /// Longest input in tokens, `[CLS]` and `[SEP]` included; longer text is
    /// cut (default 128, what MiniLM was trained with; at most 512).
    pub max_tokens: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            threads: 1,
            sessions: 1,
            max_tokens: 128,
        }
    }
}

/// all-MiniLM-L6-v2 sentence embeddings. `Send + Sync`; share it in an `Arc`.
pub struct Embedder {
    tokenizer: Tokenizer,
    sessions: Vec<Mutex<Session>>,
    next: AtomicUsize,
    token_type_ids: bool,
    config: EmbedConfig,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("sessions", &self.sessions.len())
            .field("token_type_ids", &self.token_type_ids)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Embedder {
    /// Load MiniLM and its tokenizer from the models folder with the default
    /// [`EmbedConfig`].
    pub fn load(dir: &ModelDir) -> Result<Self, EmbedError> {
        Self::with_config(dir, EmbedConfig::default())
    }

    /// Load MiniLM and its tokenizer from the models folder.
    pub fn with_config(dir: &ModelDir, config: EmbedConfig) -> Result<Self, EmbedError> {
        let model = dir.require("MiniLM sentence embeddings", files::MINILM)?;
        let tok_path = dir.require("MiniLM tokenizer", files::MINILM_TOKENIZER)?;
        let config = EmbedConfig {
            threads: config.threads.max(1),
            sessions: config.sessions.max(1),
            max_tokens: config.max_tokens.clamp(8, 512),
        };
        let mut tokenizer = Tokenizer::from_file(&tok_path).map_err(|e| EmbedError::Tokenizer {
            path: tok_path.clone(),
            reason: e.to_string(),
        })?;
        // The file pads to a fixed 128: pad per batch ourselves instead.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: config.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Tokenizer {
                path: tok_path.clone(),
                reason: e.to_string(),
            })?;

        init_onnxruntime(dir)?;
        let mut sessions = Vec::with_capacity(config.sessions);
        let mut token_type_ids = false;
        for _ in 0..config.sessions {
            let session = onnx_session(&model, config.threads)?;
            let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            for want in ["input_ids", "attention_mask"] {
                if !inputs.contains(&want) {
                    return Err(EmbedError::NotEncoder {
                        path: model,
                        reason: format!("no input named {want:?} (has {inputs:?})"),
                    });
                }
            }
            token_type_ids = inputs.contains(&"token_type_ids");
            let outputs: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
            if !outputs.contains(&"last_hidden_state") {
                return Err(EmbedError::NotEncoder {
                    path: model,
                    reason: format!("no output named \"last_hidden_state\" (has {outputs:?})"),
                });
            }
            sessions.push(Mutex::new(session));
        }
        Ok(Embedder {
            tokenizer,
            sessions,
            next: AtomicUsize::new(0),
            token_type_ids,
            config,
        })
    }

    /// How it runs.
    pub fn config(&self) -> EmbedConfig {
        self.config
    }

    /// The embedding of `text`: [`DIM`] values, unit length.
    pub fn embed(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut out = self.embed_batch(&[text])?;
        Ok(out.pop().unwrap_or_default())
    }

    /// The embeddings of `texts`, in order, run as one batch padded to its
    /// longest member. Batch sentences of similar length for speed.
    pub fn embed_batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut encodings = Vec::with_capacity(texts.len());
        for (index, t) in texts.iter().enumerate() {
            let enc =
                self.tokenizer
                    .encode(t.as_ref(), true)
                    .map_err(|e| EmbedError::Tokenize {
                        index,
                        reason: e.to_string(),
                    })?;
            encodings.push(enc);
        }
        let batch = encodings.len();
        let tokens = encodings
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .max(1);
        let mut ids = vec![0i64; batch * tokens];
        let mut mask = vec![0i64; batch * tokens];
        let types = vec![0i64; batch * tokens];
        for (b, enc) in encodings.iter().enumerate() {
            let row = b * tokens;
            for (i, (&id, &m)) in enc
                .get_ids()
                .iter()
                .zip(enc.get_attention_mask())
                .enumerate()
            {
                ids[row + i] = i64::from(id);
                mask[row + i] = i64::from(m);
            }
        }

        let shape = [batch, tokens];
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = vec![
            (
                "input_ids".into(),
                TensorRef::from_array_view((shape, &ids[..]))?.into(),
            ),
            (
                "attention_mask".into(),
                TensorRef::from_array_view((shape, &mask[..]))?.into(),
            ),
        ];
        if self.token_type_ids {
            inputs.push((
                "token_type_ids".into(),
                TensorRef::from_array_view((shape, &types[..]))?.into(),
            ));
        }

        let mut session = self.session();
        let outputs = session.run(inputs)?;
        let (out_shape, hidden) = outputs["last_hidden_state"].try_extract_tensor::<f32>()?;
        let want = [batch as i64, tokens as i64, DIM as i64];
        if out_shape[..] != want[..] || hidden.len() != batch * tokens * DIM {
            return Err(EmbedError::OutputShape {
                batch,
                tokens,
                actual: out_shape.to_vec(),
            });
        }
        Ok((0..batch)
            .map(|b| {
                let rows = &hidden[b * tokens * DIM..(b + 1) * tokens * DIM];
                pool(rows, &mask[b * tokens..(b + 1) * tokens])
            })
            .collect())
    }

    /// A free session, or (all busy) the next one in turn.
    fn session(&self) -> MutexGuard<'_, Session> {
        let n = self.sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        for i in 0..n {
            if let Ok(s) = self.sessions[(start + i) % n].try_lock() {
                return s;
            }
        }
        // A panic mid-run leaves nothing half-written in a session: its
        // state lives in ONNX Runtime, not in Rust, so a poisoned lock is fine.
        self.sessions[start]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Mean of the token vectors whose mask is set, L2-normalised.
fn pool(rows: &[f32], mask: &[i64]) -> Vec<f32> {
    let mut sum = vec![0f32; DIM];
    let mut n = 0f32;
    for (row, &m) in rows.chunks_exact(DIM).zip(mask) {
        if m != 0 {
            n += 1.0;
            for (s, v) in sum.iter_mut().zip(row) {
                *s += v;
            }
        }
    }
    if n > 0.0 {
        sum.iter_mut().for_each(|s| *s /= n);
    }
    normalize(&mut sum);
    sum
}

/// Scale `v` to unit length (left alone when it is all zeros).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > f32::EPSILON {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two vectors (0 when either is all zeros or the
/// lengths differ). For [`Embedder`] outputs this is their dot product.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na <= f32::EPSILON || nb <= f32::EPSILON {
        0.0
    } else {
        (dot / (na * nb)).clamp(-1.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_model_is_named() {
        let e = Embedder::load(&ModelDir::new("/nonexistent/models")).unwrap_err();
        assert!(
            matches!(e, EmbedError::Model(ModelError::Missing { .. })),
            "{e:?}"
        );
        assert!(e.to_string().contains("minilm/model.onnx"), "{e}");
    }

    #[test]
    fn shareable_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Embedder>();
        send_sync::<crate::brain::intents::IntentClassifier>();
        send_sync::<crate::brain::kb::KnowledgeBase>();
    }

    #[test]
    fn pooling_ignores_padding() {
        let mut rows = vec![0f32; 3 * DIM];
        rows[0] = 1.0; // token 0: x axis
        rows[DIM + 1] = 1.0; // token 1: y axis
        rows[2 * DIM + 2] = 100.0; // padding: must not count
        let v = pool(&rows, &[1, 1, 0]);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((v[0] - h).abs() < 1e-6 && (v[1] - h).abs() < 1e-6 && v[2] == 0.0);
    }

    #[test]
    fn cosine_edges() {
        assert_eq!(cosine(&[1.0, 0.0], &[0.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-6);
    }
}
