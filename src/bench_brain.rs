//! `vocelio bench brain`: how fast the brain starts answering, on this box.
//!
//! For every caller turn it measures, from the moment the brain is asked,
//! the time until the first complete clause exists (what the pipeline sends
//! to speech synthesis first) and until the reply is complete. Flow turns
//! run each built-in template over a scripted conversation; the local LLM
//! is timed on a customer-service prompt (time to first token, to the first
//! clause, tokens per second). Memory is the process's resident size after
//! each model is loaded.

use crate::bench::quantile;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vocelio_codecs::MediaTime;
use vocelio_pipelines::brain::llm::{ChatModel, ChatRequest, LlmEvent};
use vocelio_pipelines::brain::{
    Action, Brain, BrainChunk, BrainSink, Conversation, Speaker, Turn, TurnInput,
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
    /// The brain ended the call (hang-up or transfer) with this reply.
    pub ended: bool,
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
    let mut ended = false;
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
            BrainChunk::Action(Action::Hangup | Action::Transfer { .. }) => ended = true,
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
        ended,
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

/// This process's resident memory, in MiB.
pub fn rss_mib() -> f64 {
    crate::bench::rss_kb("self").map_or(f64::NAN, |kb| kb as f64 / 1024.0)
}

/// A speech turn at `ms` on the media clock.
pub fn speech(text: &str, ms: u64) -> TurnInput {
    TurnInput::Speech {
        text: text.into(),
        at: MediaTime::from_micros(ms * 1000),
    }
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

/// A tool runner answering at once, as a fast scheduling/CRM service would,
/// so flow timings measure the brain and not a remote server.
#[derive(Debug)]
struct InstantTools;

impl vocelio_pipelines::brain::tools::ToolRunner for InstantTools {
    fn call(
        &self,
        request: vocelio_pipelines::brain::tools::ToolRequest,
    ) -> crossbeam_channel::Receiver<
        Result<serde_json::Value, vocelio_pipelines::brain::tools::ToolError>,
    > {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let answer = match request.name.as_str() {
            "check_availability" => serde_json::json!({"available": true, "slot": "09:30"}),
            "book_appointment" => serde_json::json!({"confirmation": "A7Q2"}),
            _ => serde_json::json!({"lead_id": "L-1001"}),
        };
        let _ = tx.send(Ok(answer));
        rx
    }
}

/// Scripted callers, one conversation per built-in flow.
const CONVERSATIONS: &[(&str, &[&str])] = &[
    (
        "support_faq",
        &[
            "hi how do i reset my password",
            "ok and what time are you open on saturday",
            "my internet keeps dropping out every evening",
            "no that's all thanks bye",
        ],
    ),
    (
        "appointment_booking",
        &[
            "i need a cleaning my gums have been bleeding",
            "next tuesday at three pm",
            "jane smith",
            "five five five one two three four five six seven",
            "yes please",
        ],
    ),
    (
        "lead_qualification",
        &[
            "we want to automate our support line",
            "about two hundred agents",
            "around five thousand dollars a month",
            "yes within the next month",
        ],
    ),
];

#[derive(Debug, Serialize)]
struct FlowRow {
    agent: String,
    turn: String,
    first_clause_ms: f64,
    done_ms: f64,
    reply: String,
}

#[derive(Debug, Serialize)]
struct BrainSummary {
    machine: String,
    runs: usize,
    flow_turns: Vec<FlowRow>,
    flow_first_clause_p50_ms: f64,
    flow_first_clause_p99_ms: f64,
    rss_after_embeddings_mib: f64,
    llm_model: Option<String>,
    llm: Vec<LlmTiming>,
    llm_first_token_p50_ms: f64,
    llm_first_clause_p50_ms: f64,
    llm_tokens_per_s_p50: f64,
    rss_after_llm_mib: f64,
}

/// A customer-service exchange of about 170 prompt tokens, as a voice
/// agent would send after a couple of turns.
fn llm_request() -> ChatRequest {
    use vocelio_pipelines::brain::llm::{ChatMessage, Role};
    ChatRequest::new(vec![
        ChatMessage::new(
            Role::System,
            "You are Ava, a friendly phone agent for Acme Home Internet. Answer in one or two short sentences. \
             Facts: support is open 8 am to 8 pm on weekdays and 9 am to 5 pm on Saturdays. \
             A technician visit costs nothing when the fault is ours. Passwords are reset from the Acme app under Account.",
        ),
        ChatMessage::new(Role::User, "Hi, my internet has been slow all week."),
        ChatMessage::new(
            Role::Assistant,
            "I'm sorry to hear that. Have you tried restarting your router?",
        ),
        ChatMessage::new(Role::User, "Yes, twice. Can someone come and look at it?"),
    ])
}

/// Run the benchmark and print its tables.
pub fn brain(args: BrainArgs, config: &crate::config::Config) -> Result<()> {
    use crate::brains::{Brains, SharedModels};
    let models = vocelio_pipelines::models::ModelDir::new(&config.models.dir);
    let rss_start = rss_mib();
    let mut shared = crate::brains::load_shared(config, &models, false)?;
    let rss_embed = rss_mib();
    shared.tools = Some(std::sync::Arc::new(InstantTools));
    let mut brains = Brains::load(config)?;
    brains.attach(SharedModels {
        llm: None,
        ..shared.clone()
    })?;
    let mut rows = Vec::new();
    for run in 0..args.runs.max(1) {
        for (agent, turns) in CONVERSATIONS {
            let mut brain = brains
                .brain_for(agent)
                .with_context(|| format!("no agent {agent}"))?;
            let mut conversation = Conversation {
                call_id: format!("bench-{run}"),
                agent: agent.to_string(),
                ..Conversation::default()
            };
            for (i, t) in turns.iter().enumerate() {
                let timing = time_turn(
                    brain.as_mut(),
                    &mut conversation,
                    speech(t, i as u64 * 5000),
                )?;
                let ended = timing.ended;
                rows.push(FlowRow {
                    agent: agent.to_string(),
                    turn: t.to_string(),
                    first_clause_ms: timing.first_clause_ms,
                    done_ms: timing.done_ms,
                    reply: timing.reply,
                });
                if ended {
                    if i + 1 < turns.len() {
                        bail!("{agent} ended the call after {t:?}, before the script was over");
                    }
                    break;
                }
            }
        }
    }
    let flow_first: Vec<f64> = rows.iter().map(|r| r.first_clause_ms).collect();
    let mut llm = Vec::new();
    let mut llm_name = None;
    if !args.no_llm {
        let model = crate::brains::load_local_llm(config, &models)?;
        llm_name = Some(model.name().to_string());
        // One warm-up (page cache, first allocation), not reported.
        time_llm(model.as_ref(), llm_request())?;
        for _ in 0..args.runs.max(1) {
            llm.push(time_llm(model.as_ref(), llm_request())?);
        }
    }
    let col = |f: fn(&LlmTiming) -> f64| llm.iter().map(f).collect::<Vec<_>>();
    let s = BrainSummary {
        machine: crate::bench::machine(),
        runs: args.runs,
        flow_first_clause_p50_ms: quantile(&flow_first, 0.5),
        flow_first_clause_p99_ms: quantile(&flow_first, 0.99),
        rss_after_embeddings_mib: rss_embed,
        llm_model: llm_name,
        llm_first_token_p50_ms: quantile(&col(|l| l.first_token_ms), 0.5),
        llm_first_clause_p50_ms: quantile(&col(|l| l.first_clause_ms), 0.5),
        llm_tokens_per_s_p50: quantile(&col(|l| l.tokens_per_s), 0.5),
        rss_after_llm_mib: rss_mib(),
        flow_turns: rows,
        llm,
    };
    println!(
        "\nBrain time to first clause ({}; {} runs)\n",
        s.machine, s.runs
    );
    println!("| agent | caller turn | first clause | complete | reply |");
    println!("|---|---|---:|---:|---|");
    for r in s.flow_turns.iter().take(s.flow_turns.len() / s.runs.max(1)) {
        println!(
            "| {} | {} | {:.2} ms | {:.2} ms | {} |",
            r.agent, r.turn, r.first_clause_ms, r.done_ms, r.reply
        );
    }
    println!(
        "\nflow turns: first clause p50 {:.2} ms, p99 {:.2} ms over {} turns; RSS {:.0} MiB at start, {:.0} MiB with embeddings",
        s.flow_first_clause_p50_ms,
        s.flow_first_clause_p99_ms,
        s.flow_turns.len(),
        rss_start,
        s.rss_after_embeddings_mib
    );
    if let Some(name) = &s.llm_model {
        println!("\n| {name} run | first token | first clause | complete | tokens | tokens/s |");
        println!("|---:|---:|---:|---:|---:|---:|");
        for (i, l) in s.llm.iter().enumerate() {
            println!(
                "| {} | {:.0} ms | {:.0} ms | {:.0} ms | {} | {:.0} |",
                i + 1,
                l.first_token_ms,
                l.first_clause_ms,
                l.done_ms,
                l.tokens,
                l.tokens_per_s
            );
        }
        println!(
            "\nlocal LLM: first token p50 {:.0} ms, first clause p50 {:.0} ms, {:.0} tokens/s p50; RSS {:.0} MiB with the model; reply: {}",
            s.llm_first_token_p50_ms,
            s.llm_first_clause_p50_ms,
            s.llm_tokens_per_s_p50,
            s.rss_after_llm_mib,
            s.llm.last().map_or("", |l| l.reply.as_str())
        );
    }
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&s)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if s.flow_turns.iter().any(|r| r.reply.is_empty()) {
        bail!("a flow turn got no reply");
    }
    Ok(())
}
