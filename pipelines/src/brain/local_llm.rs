//! The embedded local LLM (llama.cpp, GGUF).
//!
//! [`LocalLlm`] runs a small instruct model (SmolLM2-135M-Instruct by
//! default) in-process through `llama-cpp-2`. The model is loaded once and
//! shared; each of a few worker threads owns one llama.cpp context (its KV
//! cache cleared and reused for every request). [`ChatModel::chat`] queues
//! the request and returns at once; a free worker takes it, renders the
//! conversation with the chat template stored in the GGUF, decodes the
//! prompt, and streams the reply as [`LlmEvent::Text`] pieces while tokens
//! decode. Requests wait in the queue while every worker is busy.
//!
//! Time to first token grows with the prompt, so the prompt is bounded
//! ([`LocalLlmConfig::max_prompt_tokens`]): the oldest messages after the
//! system prompt are dropped first.
//!
//! llama.cpp's own log goes to `tracing` (targets under `llama-cpp-2`).

use std::fmt;
use std::num::NonZeroU32;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crossbeam_channel::{Receiver, Sender};
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::llm::{ChatMessage, ChatModel, ChatRequest, LlmError, LlmEvent, Role};
use crate::models::{files, ModelDir, ModelError};

/// How the local model runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLlmConfig {
    /// CPU threads per worker (prompt and generation). ggml's threads spin
    /// at every barrier, so when the cores are busy with other work (STT,
    /// TTS, other calls) 2 threads can be far slower than 1: measured on a
    /// loaded 2-core box, 7 tokens/s with 2 against 60-90 with 1.
    pub threads: usize,
    /// Context window per worker, in tokens (prompt plus reply).
    pub context_tokens: u32,
    /// Prompt cap, in tokens: older messages are dropped to stay under it.
    pub max_prompt_tokens: u32,
    /// Requests generated at once (one context each); more wait in a queue.
    pub workers: usize,
    /// Seed for sampling when a request's temperature is above 0.
    pub seed: u32,
}

impl Default for LocalLlmConfig {
    /// One worker with 2 threads, a 2048-token context, prompts cut to 512
    /// tokens (SmolLM2-135M: about 0.45-0.9 s to the first token for a
    /// 170-token prompt on 2 cores).
    fn default() -> Self {
        LocalLlmConfig {
            threads: 2,
            context_tokens: 2048,
            max_prompt_tokens: 512,
            workers: 1,
            seed: 0x5eed,
        }
    }
}

/// Why the local model could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalLlmError {
    /// The GGUF file is not there.
    #[error(transparent)]
    Missing(#[from] ModelError),
    /// llama.cpp could not be initialised.
    #[error("cannot initialise llama.cpp: {0}")]
    Backend(String),
    /// llama.cpp could not read the model.
    #[error("cannot load the local LLM from {path}: {reason}")]
    Load {
        /// The GGUF file.
        path: PathBuf,
        /// llama.cpp's reason.
        reason: String,
    },
    /// The GGUF has no usable chat template.
    #[error("the local LLM {path} has no usable chat template: {reason}")]
    Template {
        /// The GGUF file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A worker could not create its context.
    #[error("cannot create a llama.cpp context: {0}")]
    Context(String),
    /// The configuration is unusable.
    #[error("bad local LLM configuration: {0}")]
    Config(String),
}

/// llama.cpp's process-wide state: initialised once, never freed.
static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

fn backend() -> Result<&'static LlamaBackend, LocalLlmError> {
    BACKEND
        .get_or_init(|| {
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| LocalLlmError::Backend(e.clone()))
}

/// What every worker shares.
struct Shared {
    model: LlamaModel,
    template: LlamaChatTemplate,
    config: LocalLlmConfig,
}

/// A request in the queue.
struct Job {
    request: ChatRequest,
    events: Sender<LlmEvent>,
}

/// The embedded llama.cpp model as a [`ChatModel`].
pub struct LocalLlm {
    name: String,
    path: PathBuf,
    config: LocalLlmConfig,
    jobs: Sender<Job>,
}

impl fmt::Debug for LocalLlm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalLlm")
            .field("name", &self.name)
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl LocalLlm {
    /// Load the default model, SmolLM2-135M-Instruct, from `dir`.
    pub fn load_from(dir: &ModelDir, config: LocalLlmConfig) -> Result<Self, LocalLlmError> {
        let path = dir.require("local LLM (SmolLM2-135M-Instruct GGUF)", files::SMOLLM2)?;
        Self::load(path, config)
    }

    /// Load the GGUF at `path` and start the workers.
    pub fn load(path: impl AsRef<Path>, config: LocalLlmConfig) -> Result<Self, LocalLlmError> {
        let path = path.as_ref().to_path_buf();
        if !path.is_file() {
            return Err(ModelError::Missing {
                what: "local LLM (GGUF)",
                path,
            }
            .into());
        }
        if config.workers == 0 || config.threads == 0 {
            return Err(LocalLlmError::Config(
                "workers and threads must be at least 1".into(),
            ));
        }
        if config.max_prompt_tokens < 16 || config.max_prompt_tokens >= config.context_tokens {
            return Err(LocalLlmError::Config(format!(
                "max_prompt_tokens ({}) must be at least 16 and below context_tokens ({})",
                config.max_prompt_tokens, config.context_tokens
            )));
        }
        let backend = backend()?;
        let model = LlamaModel::load_from_file(backend, &path, &LlamaModelParams::default())
            .map_err(|e| LocalLlmError::Load {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let template = model
            .chat_template(None)
            .map_err(|e| LocalLlmError::Template {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // Check the template renders (llama.cpp knows only common formats).
        let probe = [
            LlamaChatMessage::new("user".into(), "hi".into()).map_err(|e| {
                LocalLlmError::Template {
                    path: path.clone(),
                    reason: e.to_string(),
                }
            })?,
        ];
        model
            .apply_chat_template(&template, &probe, true)
            .map_err(|e| LocalLlmError::Template {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        let name = format!(
            "local:{}",
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let shared = Arc::new(Shared {
            model,
            template,
            config: config.clone(),
        });
        let (jobs, queue) = crossbeam_channel::unbounded::<Job>();
        // Contexts are created one after the other: llama.cpp may touch the
        // model while creating one.
        for i in 0..config.workers {
            let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
            let shared = Arc::clone(&shared);
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("llm-{i}"))
                .spawn(move || worker(backend, &shared, &queue, &ready_tx))
                .map_err(|e| LocalLlmError::Context(format!("cannot start a worker: {e}")))?;
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => return Err(LocalLlmError::Context(reason)),
                Err(_) => return Err(LocalLlmError::Context("worker exited".into())),
            }
        }
        tracing::info!(
            model = %name,
            workers = config.workers,
            threads = config.threads,
            "local LLM loaded"
        );
        Ok(LocalLlm {
            name,
            path,
            config,
            jobs,
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &LocalLlmConfig {
        &self.config
    }
}

impl ChatModel for LocalLlm {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: ChatRequest) -> Receiver<LlmEvent> {
        let (events, rx) = crossbeam_channel::unbounded();
        if let Err(e) = self.jobs.send(Job { request, events }) {
            // Every worker has gone (only after a panic in llama.cpp).
            let _ = e.0.events.send(LlmEvent::Failed(LlmError::Model {
                reason: "local LLM workers are not running".into(),
            }));
        }
        rx
    }
}

/// One worker: its own context, then requests from the queue until the
/// [`LocalLlm`] is dropped.
fn worker(
    backend: &'static LlamaBackend,
    shared: &Shared,
    queue: &Receiver<Job>,
    ready: &Sender<Result<(), String>>,
) {
    let config = &shared.config;
    let threads = i32::try_from(config.threads).unwrap_or(i32::MAX);
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.context_tokens))
        .with_n_batch(config.context_tokens)
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = match shared.model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = ready.send(Err(e.to_string()));
            return;
        }
    };
    let mut batch = LlamaBatch::new(config.context_tokens as usize, 1);
    let _ = ready.send(Ok(()));
    for job in queue.iter() {
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
            generate(shared, &mut ctx, &mut batch, &job.request, &job.events)
        }));
        let event = match outcome {
            Ok(Ok(Some(done))) => done,
            // The caller went away: nobody to tell.
            Ok(Ok(None)) => continue,
            Ok(Err(reason)) => LlmEvent::Failed(LlmError::Model { reason }),
            Err(_) => LlmEvent::Failed(LlmError::Model {
                reason: "llama.cpp worker panicked".into(),
            }),
        };
        let _ = job.events.send(event);
    }
}

/// Generate one reply. `Ok(Some(Done))` when complete, `Ok(None)` when the
/// receiver was dropped (cancelled), `Err` on a llama.cpp error.
fn generate(
    shared: &Shared,
    ctx: &mut LlamaContext<'_>,
    batch: &mut LlamaBatch<'_>,
    request: &ChatRequest,
    events: &Sender<LlmEvent>,
) -> Result<Option<LlmEvent>, String> {
    let config = &shared.config;
    let prompt = bounded_prompt(shared, &request.messages)?;
    let n_prompt = prompt.len() as u32;
    let room = config.context_tokens.saturating_sub(n_prompt);
    let max_tokens = request.max_tokens.min(room);

    ctx.clear_kv_cache();
    // Prompt, in chunks of the batch size; logits for its last token only.
    let chunk = ctx.n_batch().max(1) as usize;
    let mut pos = 0i32;
    for (c, tokens) in prompt.chunks(chunk).enumerate() {
        batch.clear();
        let last_chunk = (c + 1) * chunk >= prompt.len();
        for (i, &t) in tokens.iter().enumerate() {
            let logits = last_chunk && i + 1 == tokens.len();
            batch.add(t, pos, &[0], logits).map_err(|e| e.to_string())?;
            pos += 1;
        }
        ctx.decode(batch)
            .map_err(|e| format!("prompt decode: {e}"))?;
    }

    // Small models fall into loops ("I'm sorry for any other issues you
    // might have." over and over) when decoding greedily: penalise tokens
    // repeated within the last 64 generated.
    let penalties = LlamaSampler::penalties(shared.model.n_vocab(), 64, 1.3, 0.0, 0.0);
    let mut sampler = if request.temperature <= 0.0 {
        LlamaSampler::chain_simple([penalties, LlamaSampler::greedy()])
    } else {
        LlamaSampler::chain_simple([
            penalties,
            LlamaSampler::temp(request.temperature),
            LlamaSampler::dist(config.seed),
        ])
    };
    let vocab = shared.model.vocab();
    let mut text = Utf8Stream::default();
    let mut generated = 0u32;
    let mut piece = Vec::with_capacity(32);
    while generated < max_tokens {
        let token = sampler.sample(ctx, batch.n_tokens() - 1);
        if vocab.is_eog(token) {
            break;
        }
        generated += 1;
        piece.clear();
        vocab.token_to_piece_into(token, &mut piece, false, None);
        if let Some(s) = text.push(&piece) {
            if events.send(LlmEvent::Text(s)).is_err() {
                return Ok(None);
            }
        }
        if generated == max_tokens {
            break;
        }
        batch.clear();
        batch
            .add(token, pos, &[0], true)
            .map_err(|e| e.to_string())?;
        pos += 1;
        ctx.decode(batch).map_err(|e| format!("decode: {e}"))?;
    }
    if let Some(rest) = text.finish() {
        if events.send(LlmEvent::Text(rest)).is_err() {
            return Ok(None);
        }
    }
    Ok(Some(LlmEvent::Done {
        tokens: generated,
        prompt_tokens: Some(n_prompt),
    }))
}

/// The prompt tokens for `messages`, at most `max_prompt_tokens` of them:
/// system messages stay, the oldest others go first; the newest message is
/// cut (keeping its end) only when it alone does not fit.
fn bounded_prompt(shared: &Shared, messages: &[ChatMessage]) -> Result<Vec<LlamaToken>, String> {
    let limit = shared.config.max_prompt_tokens as usize;
    let mut kept: Vec<ChatMessage> = messages.to_vec();
    // Cost of each message alone, to drop many at once without re-rendering.
    let cost = |m: &ChatMessage| -> Result<usize, String> {
        Ok(render_tokens(shared, std::slice::from_ref(m), false)?.len())
    };
    loop {
        let tokens = render_tokens(shared, &kept, true)?;
        if tokens.len() <= limit {
            return Ok(tokens);
        }
        let over = tokens.len() - limit;
        let droppable: Vec<usize> = kept
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role != Role::System)
            .map(|(i, _)| i)
            .collect();
        if droppable.len() > 1 {
            // Drop oldest non-system messages until the estimate fits (at
            // least one), always keeping the newest.
            let mut freed = 0;
            let mut drop = Vec::new();
            for &i in &droppable[..droppable.len() - 1] {
                let c = cost(&kept[i])?;
                freed += c;
                drop.push(i);
                if freed >= over {
                    break;
                }
            }
            for i in drop.into_iter().rev() {
                kept.remove(i);
            }
            continue;
        }
        // One message besides the system prompt and still too long: keep the
        // end of the newest (or, with none, the start of the system prompt).
        let (i, keep_end) = match droppable.first() {
            Some(&i) => (i, true),
            None => match kept.iter().rposition(|m| !m.content.is_empty()) {
                Some(i) => (i, false),
                None => return Err("empty prompt does not fit max_prompt_tokens".into()),
            },
        };
        let content = &kept[i].content;
        let chars = content.chars().count();
        if chars == 0 {
            return Err(format!(
                "system prompt alone is over {limit} tokens (max_prompt_tokens)"
            ));
        }
        // Keep the share of characters that fits (as if the whole prompt were
        // this message), less 5% so the next render converges.
        let keep = (chars * limit / tokens.len()) * 19 / 20;
        let cut: String = if keep_end {
            content.chars().skip(chars - keep).collect()
        } else {
            content.chars().take(keep).collect()
        };
        kept[i].content = cut;
    }
}

/// `messages` through the model's chat template, tokenized.
fn render_tokens(
    shared: &Shared,
    messages: &[ChatMessage],
    add_assistant: bool,
) -> Result<Vec<LlamaToken>, String> {
    let chat = messages
        .iter()
        .map(|m| {
            LlamaChatMessage::new(m.role.as_str().into(), m.content.replace('\0', ""))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let text = shared
        .model
        .apply_chat_template(&shared.template, &chat, add_assistant)
        .map_err(|e| format!("chat template: {e}"))?;
    // The template writes the special tokens as text: parse them.
    Ok(shared.model.vocab().tokenize(text.as_bytes(), true, true))
}

/// Joins token bytes into text without splitting a UTF-8 character that
/// spans tokens.
#[derive(Debug, Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// Add a token's bytes; the complete text so far, if any.
    fn push(&mut self, bytes: &[u8]) -> Option<String> {
        self.pending.extend_from_slice(bytes);
        let valid = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            // Incomplete character at the end: wait for the next token.
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            // Invalid bytes: pass them on as replacement characters.
            Err(_) => self.pending.len(),
        };
        if valid == 0 {
            return None;
        }
        let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
        self.pending.drain(..valid);
        Some(out)
    }

    /// The rest at the end of the reply.
    fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            None
        } else {
            let out = String::from_utf8_lossy(&self.pending).into_owned();
            self.pending.clear();
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_characters_split_across_tokens_come_out_whole() {
        let mut s = Utf8Stream::default();
        let euro = "€".as_bytes();
        assert_eq!(s.push(b"5 "), Some("5 ".into()));
        assert_eq!(s.push(&euro[..1]), None);
        assert_eq!(s.push(&euro[1..2]), None);
        assert_eq!(s.push(&[euro[2], b'!']), Some("€!".into()));
        // A character cut at the end of the reply is replaced, not lost.
        assert_eq!(s.push(&euro[..2]), None);
        assert_eq!(s.finish(), Some("\u{fffd}".into()));
        // Invalid bytes do not stall the stream.
        assert_eq!(s.push(&[0xff, b'a']), Some("\u{fffd}a".into()));
    }
}
