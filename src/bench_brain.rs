//! `vocelio bench brain`: how fast the brain starts answering, on this box.
//!
//! For every caller turn it measures, from the moment the brain is asked,
//! the time until the first complete clause exists (what the pipeline sends
//! to speech synthesis first) and until the reply is complete. Flow turns
//! run each built-in template over a scripted conversation; the local LLM
//! is timed on a customer-service prompt (time to first token, to the first
//! clause, tokens per second). Memory is the process's resident size after
//! each model is loaded.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vocelio_codecs::MediaTime;
use vocelio_pipelines::brain::llm::{ChatModel, ChatRequest, LlmEvent};
use vocelio_pipelines::brain::{
    Brain, BrainChunk, BrainSink, Conversation, Speaker, Turn, TurnInput,
};
use vocelio_pipelines::sentences::ClauseSplitter;

/// How long one reply may take before the bench gives up on it.
const REPLY_DEADLINE: Duration = Duration::from_secs(60);

/// Timing of one brain turn.
#[derive(Debug, Clone, Serialize)]
pub struct TurnTiming {
    /// First complete clause, ms after the brain was asked (NaN when it said nothing).
    pub first_clause_ms: f64,
    /// Reply complete (Done).
    pub done_ms: f64,
    /// The reply text.
    pub reply: String,
}

/// Ask `brain` one turn, time it, and add the turn and reply to `conversation`.
pub fn time_turn(
    brain: &mut dyn Brain,
    conversation: &mut Conversation,
    input: TurnInput,
) -> Result<TurnTiming> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let started = Instant::now();
    brain.respond(conversation, &input, BrainSink::new(1, tx));
    let mut splitter = ClauseSplitter::new();
    let mut first = None;
    let mut reply = String::new();
    loop {
        let left = REPLY_DEADLINE.saturating_sub(started.elapsed());
        let (_, chunk) = rx
            .recv_timeout(left)
            .context("the brain did not finish its reply within 60 s")?;
        match chunk {
            BrainChunk::Text(t) => {
                reply.push_str(&t);
                if first.is_none() && !splitter.push(&t).is_empty() {
                    first = Some(started.elapsed());
                }
            }
            BrainChunk::Done => {
                if first.is_none() && splitter.finish().is_some() {
                    first = Some(started.elapsed());
                }
                break;
            }
            _ => {}
        }
    }
    let done = started.elapsed();
    conversation.turns.push(Turn {
        speaker: Speaker::Caller,
        text: input.text(),
        at: input.at(),
        interrupted: false,
    });
    if !reply.is_empty() {
        conversation.turns.push(Turn {
            speaker: Speaker::Agent,
            text: reply.clone(),
            at: input.at(),
            interrupted: false,
        });
    }
    Ok(TurnTiming {
        first_clause_ms: first.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        done_ms: done.as_secs_f64() * 1000.0,
        reply,
    })
}

/// Timing of one LLM completion.
#[derive(Debug, Clone, Serialize)]
pub struct LlmTiming {
    /// First text, ms after the request.
    pub first_token_ms: f64,
    /// First complete clause.
    pub first_clause_ms: f64,
    /// Complete.
    pub done_ms: f64,
    /// Tokens generated.
    pub tokens: u32,
    /// Prompt tokens, when the model says.
    pub prompt_tokens: Option<u32>,
    /// Generation speed after the first token.
    pub tokens_per_s: f64,
    /// The reply.
    pub reply: String,
}

/// Run one completion on `model` and time it.
pub fn time_llm(model: &dyn ChatModel, request: ChatRequest) -> Result<LlmTiming> {
    let started = Instant::now();
    let rx = model.chat(request);
    let mut splitter = ClauseSplitter::new();
    let (mut first_token, mut first_clause) = (None, None);
    let mut reply = String::new();
    loop {
        let left = REPLY_DEADLINE.saturating_sub(started.elapsed());
        match rx
            .recv_timeout(left)
            .context("the model did not finish within 60 s")?
        {
            LlmEvent::Text(t) => {
                first_token.get_or_insert_with(|| started.elapsed());
                reply.push_str(&t);
                if first_clause.is_none() && !splitter.push(&t).is_empty() {
                    first_clause = Some(started.elapsed());
                }
            }
            LlmEvent::Done {
                tokens,
                prompt_tokens,
            } => {
                let done = started.elapsed();
                if first_clause.is_none() && splitter.finish().is_some() {
                    first_clause = Some(done);
                }
                let ft = first_token.unwrap_or(done);
                let gen = (done - ft).as_secs_f64();
                let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
                return Ok(LlmTiming {
                    first_token_ms: ms(first_token),
                    first_clause_ms: ms(first_clause),
                    done_ms: ms(Some(done)),
                    tokens,
                    prompt_tokens,
                    tokens_per_s: if gen > 0.0 && tokens > 1 {
                        f64::from(tokens - 1) / gen
                    } else {
                        f64::NAN
                    },
                    reply,
                });
            }
            LlmEvent::Failed(e) => bail!("the model failed: {e}"),
            _ => {}
        }
    }
}

/// The process's resident memory, in MiB.
pub fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// A speech turn at `ms` on the media clock.
pub fn speech(text: &str, ms: u64) -> TurnInput {
    TurnInput::Speech {
        text: text.into(),
        at: MediaTime::from_micros(ms * 1000),
    }
}

/// Quantile of the finite values (nearest rank).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
}

/// Arguments of `vocelio bench brain`.
#[derive(Debug, clap::Args)]
pub struct BrainArgs {
    /// Times each scripted conversation (and each LLM prompt) is run.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Skip the local LLM.
    #[arg(long)]
    pub no_llm: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}
