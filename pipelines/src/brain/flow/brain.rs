//! [`FlowBrain`]: a [`Brain`] that runs a flow.
//!
//! Synchronous steps (say, ask, branch, knowledge base, transfer, hang-up)
//! stream straight into the sink on the caller's thread. When the flow asks
//! for a model turn or a tool call, `respond` hands the sink and the run
//! (behind an `Arc<Mutex<_>>`) to a short-lived worker thread and returns;
//! the worker streams model text as it arrives, feeds the result back into
//! the [`FlowRun`], and carries on until the flow waits again.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::RecvTimeoutError;

use super::collect::CalendarDate;
use super::model::ValidFlow;
use super::run::{
    Effect, EffectRequest, EffectResult, FlowContext, FlowOutput, FlowRun, RunStatus,
};
use crate::brain::insights::{self, CallInsights, TurnAnalysis};
use crate::brain::intents::IntentClassify;
use crate::brain::kb::Retriever;
use crate::brain::llm::{ChatModel, LlmError, LlmEvent};
use crate::brain::sentiment::{self, Sentiment};
use crate::brain::tools::{ToolError, ToolRunner};
use crate::brain::{Action, Brain, BrainSink, Conversation, TurnInput};

/// Supplies today's date (injected so tests and replays are deterministic).
pub type Today = Arc<dyn Fn() -> CalendarDate + Send + Sync>;

/// Today in UTC, from the system clock.
pub fn system_today() -> CalendarDate {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    CalendarDate::from_days((secs / 86_400) as i64)
}

/// What a flow may call on.
#[derive(Clone)]
pub struct FlowServices {
    /// Intent classifier (else: example phrases matched as words).
    pub intents: Option<Arc<dyn IntentClassify>>,
    /// Knowledge base (else `kb_answer` finds nothing).
    pub kb: Option<Arc<dyn Retriever>>,
    /// Language model (else `llm` nodes fail).
    pub llm: Option<Arc<dyn ChatModel>>,
    /// Tool runner (else `tool` nodes fail).
    pub tools: Option<Arc<dyn ToolRunner>>,
    /// Today's date.
    pub today: Today,
    /// Scores caller turns ([`sentiment::analyze`] by default).
    pub sentiment: fn(&str) -> Sentiment,
}

impl fmt::Debug for FlowServices {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowServices")
            .field("intents", &self.intents)
            .field("kb", &self.kb)
            .field("llm", &self.llm)
            .field("tools", &self.tools)
            .field("today", &(self.today)())
            .finish()
    }
}

impl Default for FlowServices {
    fn default() -> Self {
        FlowServices {
            intents: None,
            kb: None,
            llm: None,
            tools: None,
            today: Arc::new(system_today),
            sentiment: sentiment::analyze,
        }
    }
}

impl FlowServices {
    /// No services; today from the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Use a fixed date as today.
    pub fn with_today(mut self, today: CalendarDate) -> Self {
        self.today = Arc::new(move || today);
        self
    }

    fn context<'a>(&'a self, conversation: Option<&'a Conversation>) -> FlowContext<'a> {
        FlowContext {
            today: (self.today)(),
            conversation,
            intents: self.intents.as_deref(),
            kb: self.kb.as_deref(),
            sentiment: self.sentiment,
        }
    }
}

/// Joins the lines of one reply with spaces.
#[derive(Debug)]
struct Emitter {
    sink: BrainSink,
    any: bool,
}

impl Emitter {
    fn say(&mut self, line: &str) -> bool {
        if line.trim().is_empty() {
            return true;
        }
        let piece = if self.any {
            format!(" {line}")
        } else {
            line.to_string()
        };
        self.any = true;
        self.sink.text(piece)
    }

    fn stream(&mut self, token: String) -> bool {
        if !token.is_empty() {
            self.any = true;
        }
        self.sink.text(token)
    }
}

#[derive(Debug)]
struct Shared {
    run: FlowRun,
    /// Actions the start produced (none for a valid flow); sent with the
    /// first reply.
    held: Vec<Action>,
}

/// A [`Brain`] running one call through a flow.
#[derive(Debug)]
pub struct FlowBrain {
    shared: Arc<Mutex<Shared>>,
    services: FlowServices,
    greeting: Option<String>,
}

fn lock(m: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl FlowBrain {
    /// Start a run of `flow` (the greeting is computed now).
    pub fn new(flow: Arc<ValidFlow>, services: FlowServices) -> Self {
        let mut run = FlowRun::new(flow);
        let outputs = run.start(&services.context(None));
        let mut lines = Vec::new();
        let mut held = Vec::new();
        for o in outputs {
            match o {
                FlowOutput::Say(s) if !s.trim().is_empty() => lines.push(s),
                FlowOutput::Action(a) => held.push(a),
                _ => {}
            }
        }
        let greeting = (!lines.is_empty()).then(|| lines.join(" "));
        FlowBrain {
            shared: Arc::new(Mutex::new(Shared { run, held })),
            services,
            greeting,
        }
    }

    /// A snapshot of the run (trace, variables, status).
    pub fn run(&self) -> FlowRun {
        lock(&self.shared).run.clone()
    }

    /// Where the run stands.
    pub fn status(&self) -> RunStatus {
        lock(&self.shared).run.status()
    }
}

impl Brain for FlowBrain {
    fn greeting(&self) -> Option<String> {
        self.greeting.clone()
    }

    fn respond(&mut self, conversation: &Conversation, input: &TurnInput, out: BrainSink) {
        let (outputs, held, analysis) = {
            let mut g = lock(&self.shared);
            let held = std::mem::take(&mut g.held);
            let ctx = self.services.context(Some(conversation));
            let outputs = g.run.input(input, &ctx);
            let analysis = TurnAnalysis {
                intent: g.run.last_intent().cloned(),
                sentiment: g.run.last_sentiment(),
                suggestions: g.run.suggestions(),
            };
            (outputs, held, analysis)
        };
        out.analysis(analysis);
        for a in held {
            out.action(a);
        }
        let mut emitter = Emitter {
            sink: out,
            any: false,
        };
        if let Some(effect) = emit(&mut emitter, outputs) {
            let shared = Arc::clone(&self.shared);
            let services = self.services.clone();
            let conversation = conversation.clone();
            let spawned = std::thread::Builder::new()
                .name("flow-effect".into())
                .spawn(move || work(shared, services, conversation, effect, emitter));
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "flow: could not start an effect worker");
            }
        }
    }

    fn insights(&self, conversation: &Conversation) -> CallInsights {
        let g = lock(&self.shared);
        insights::summarize(conversation, g.run.intents_seen(), g.run.trace().to_vec())
    }
}

/// Send lines and actions; return the effect to run, or send `done`.
fn emit(em: &mut Emitter, outputs: Vec<FlowOutput>) -> Option<EffectRequest> {
    let mut effect = None;
    for o in outputs {
        match o {
            FlowOutput::Say(s) => {
                em.say(&s);
            }
            FlowOutput::Action(a) => {
                em.sink.action(a);
            }
            FlowOutput::Effect(e) => effect = Some(e),
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
    if effect.is_none() {
        em.sink.done();
    }
    effect
}

fn still_waiting(shared: &Mutex<Shared>, req: &EffectRequest) -> bool {
    lock(shared).run.status() == RunStatus::WaitingForEffect(req.id)
}

/// Run effects until the flow waits for the caller again.
fn work(
    shared: Arc<Mutex<Shared>>,
    services: FlowServices,
    conversation: Conversation,
    mut req: EffectRequest,
    mut em: Emitter,
) {
    loop {
        let result = match &req.effect {
            Effect::Llm { request, timeout } => {
                run_llm(&shared, &services, &req, request.clone(), *timeout, &mut em)
            }
            Effect::Tool(request) => match &services.tools {
                None => Some(EffectResult::Tool(Err(ToolError::Failed {
                    name: request.name.clone(),
                    reason: "no tool runner configured".into(),
                }))),
                Some(tools) => {
                    let rx = tools.call(request.clone());
                    // A little grace beyond the tool's own timeout.
                    let wait = request.timeout + Duration::from_millis(250);
                    Some(EffectResult::Tool(match rx.recv_timeout(wait) {
                        Ok(r) => r,
                        Err(_) => Err(ToolError::Timeout {
                            name: request.name.clone(),
                            after: request.timeout,
                        }),
                    }))
                }
            },
            #[allow(unreachable_patterns)]
            _ => return,
        };
        let Some(result) = result else {
            // Abandoned: the caller spoke and a newer reply took over.
            return;
        };
        let outputs = {
            let mut g = lock(&shared);
            let ctx = services.context(Some(&conversation));
            if g.run.status() != RunStatus::WaitingForEffect(req.id) {
                return;
            }
            g.run.effect_done(req.id, result, &ctx)
        };
        match emit(&mut em, outputs) {
            Some(next) => req = next,
            None => return,
        }
    }
}

fn run_llm(
    shared: &Mutex<Shared>,
    services: &FlowServices,
    req: &EffectRequest,
    request: crate::brain::llm::ChatRequest,
    timeout: Duration,
    em: &mut Emitter,
) -> Option<EffectResult> {
    let Some(model) = &services.llm else {
        return Some(EffectResult::Llm(Err(LlmError::Model {
            reason: "no language model configured".into(),
        })));
    };
    let rx = model.chat(request);
    let deadline = Instant::now() + timeout;
    let mut text = String::new();
    let mut first = true;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(LlmEvent::Text(t)) => {
                if !still_waiting(shared, req) {
                    return None;
                }
                if first && em.any && !t.starts_with(' ') {
                    em.stream(" ".into());
                }
                first = false;
                text.push_str(&t);
                if !em.stream(t) {
                    return None;
                }
            }
            Ok(LlmEvent::Done { .. }) => return Some(EffectResult::Llm(Ok(text))),
            Ok(LlmEvent::Failed(e)) => return Some(EffectResult::Llm(Err(e))),
            Ok(_) => {}
            Err(RecvTimeoutError::Timeout) => {
                return Some(EffectResult::Llm(Err(LlmError::Timeout {
                    after: timeout,
                    stage: if text.is_empty() {
                        "first token"
                    } else {
                        "stream"
                    },
                })))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Some(EffectResult::Llm(Err(LlmError::Connection {
                    reason: "the model's stream ended without a result".into(),
                })))
            }
        }
    }
}
