//! [`FlowRun`]: one call's walk through a flow, as a sans-IO state machine.
//!
//! The machine never reads the clock, never blocks and never spawns. It is
//! driven by three calls: [`FlowRun::start`] (the greeting),
//! [`FlowRun::input`] (a caller turn) and [`FlowRun::effect_done`] (the
//! result of an effect it asked for). Each returns what to do now, as
//! [`FlowOutput`]s: lines to say, [`Action`]s, and at most one
//! [`EffectRequest`] (a language-model turn or a tool call) whose result the
//! driver feeds back. Knowledge-base search and intent classification are
//! quick synchronous calls through the [`FlowContext`]. Given the same
//! inputs, context and effect results, a run does the same thing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::collect::{self, CalendarDate};
use super::model::{Node, Outcome, ValidFlow};
use super::template::{render, render_json};
use crate::brain::insights::TraceStep;
use crate::brain::intents::{IntentClassify, IntentMatch};
use crate::brain::kb::Retriever;
use crate::brain::llm::{ChatMessage, ChatRequest, LlmError, Role};
use crate::brain::sentiment::{self, Sentiment, SentimentLabel};
use crate::brain::tools::{ToolError, ToolRequest};
use crate::brain::{normalise, Action, Conversation, Speaker, TurnInput};

/// Said when a model or tool fails and its node has no `error` edge; the
/// run then waits at that node and tries again on the caller's next turn.
pub const RETRY_LINE: &str =
    "Sorry, I'm having trouble with that right now. Could you say that again?";

/// Most nodes one call of the machine walks through before it stops (a
/// guard; validation already rejects loops that never wait).
const MAX_STEPS: usize = 256;

/// What the machine may consult while it runs.
#[derive(Debug, Clone, Copy)]
pub struct FlowContext<'a> {
    /// Today's date, for relative dates ("tomorrow").
    pub today: CalendarDate,
    /// The conversation so far (for language-model turns).
    pub conversation: Option<&'a Conversation>,
    /// The intent classifier; without one, an intent matches when one of
    /// its examples occurs in the caller's words.
    pub intents: Option<&'a dyn IntentClassify>,
    /// The knowledge base; without one, `kb_answer` finds nothing.
    pub kb: Option<&'a dyn Retriever>,
    /// Scores a caller turn ([`sentiment::analyze`] unless replaced).
    pub sentiment: fn(&str) -> Sentiment,
}

impl<'a> FlowContext<'a> {
    /// A context with only a date.
    pub fn new(today: CalendarDate) -> Self {
        FlowContext {
            today,
            conversation: None,
            intents: None,
            kb: None,
            sentiment: sentiment::analyze,
        }
    }
}

/// Identifies one requested effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EffectId(pub u64);

/// Work that takes time, done by the driver.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Effect {
    /// Ask the language model; stream its text to the caller.
    Llm {
        /// The request.
        request: ChatRequest,
        /// Give up after this long.
        timeout: Duration,
    },
    /// Call a tool.
    Tool(ToolRequest),
}

/// An effect the machine waits for.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectRequest {
    /// Pass it back with the result.
    pub id: EffectId,
    /// The node that asked.
    pub node: String,
    /// What to do.
    pub effect: Effect,
}

/// What an effect came to.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EffectResult {
    /// The model's whole reply (already streamed to the caller), or why it
    /// failed.
    Llm(Result<String, LlmError>),
    /// The tool's JSON answer, or why it failed.
    Tool(Result<serde_json::Value, ToolError>),
}

/// Something to do now.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FlowOutput {
    /// Say this line.
    Say(String),
    /// Report this action.
    Action(Action),
    /// Do this and call [`FlowRun::effect_done`] with the result.
    Effect(EffectRequest),
}

/// Where the run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunStatus {
    /// [`FlowRun::start`] has not been called.
    NotStarted,
    /// Waiting for the caller.
    WaitingForInput,
    /// Waiting for an effect's result.
    WaitingForEffect(EffectId),
    /// At a transfer or hang-up: nothing more will happen.
    Ended,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    NotStarted,
    Waiting {
        node: usize,
        attempts: u32,
    },
    Awaiting {
        node: usize,
        id: EffectId,
        arguments: String,
    },
    Ended,
}

/// One call's run through a flow.
#[derive(Debug, Clone)]
pub struct FlowRun {
    flow: Arc<ValidFlow>,
    state: State,
    vars: BTreeMap<String, String>,
    turn: u32,
    trace: Vec<TraceStep>,
    next_effect: u64,
    last_input: String,
    last_intent: Option<IntentMatch>,
    last_sentiment: Sentiment,
    intents_seen: Vec<String>,
}

impl FlowRun {
    /// A run of `flow`, not started yet.
    pub fn new(flow: Arc<ValidFlow>) -> Self {
        let vars = flow.flow().variables.clone();
        FlowRun {
            flow,
            state: State::NotStarted,
            vars,
            turn: 0,
            trace: Vec::new(),
            next_effect: 1,
            last_input: String::new(),
            last_intent: None,
            last_sentiment: sentiment::analyze(""),
            intents_seen: Vec::new(),
        }
    }

    /// The flow.
    pub fn flow(&self) -> &Arc<ValidFlow> {
        &self.flow
    }

    /// Where the run stands.
    pub fn status(&self) -> RunStatus {
        match &self.state {
            State::NotStarted => RunStatus::NotStarted,
            State::Waiting { .. } => RunStatus::WaitingForInput,
            State::Awaiting { id, .. } => RunStatus::WaitingForEffect(*id),
            State::Ended => RunStatus::Ended,
        }
    }

    /// The node the run is at (waiting or awaiting), by id.
    pub fn current_node(&self) -> Option<&str> {
        match &self.state {
            State::Waiting { node, .. } | State::Awaiting { node, .. } => {
                Some(self.flow.node(*node).id())
            }
            _ => None,
        }
    }

    /// The variables now.
    pub fn variables(&self) -> &BTreeMap<String, String> {
        &self.vars
    }

    /// The execution trace so far.
    pub fn trace(&self) -> &[TraceStep] {
        &self.trace
    }

    /// Intents matched, in order of first appearance.
    pub fn intents_seen(&self) -> &[String] {
        &self.intents_seen
    }

    /// The classification of the caller's last turn.
    pub fn last_intent(&self) -> Option<&IntentMatch> {
        self.last_intent.as_ref()
    }

    /// The sentiment of the caller's last turn.
    pub fn last_sentiment(&self) -> Sentiment {
        self.last_sentiment
    }

    /// Caller turns seen.
    pub fn turn(&self) -> u32 {
        self.turn
    }

    fn step(&mut self, node: usize, event: impl Into<String>) {
        self.trace.push(TraceStep {
            turn: self.turn,
            node: self.flow.node(node).id().to_string(),
            event: event.into(),
        });
    }

    fn set_var(&mut self, name: &str, value: String, out: &mut Vec<FlowOutput>, report: bool) {
        if report {
            out.push(FlowOutput::Action(Action::SetVariable {
                name: name.to_string(),
                value: value.clone(),
            }));
        }
        self.vars.insert(name.to_string(), value);
    }

    /// Run from the start node until the flow waits for the caller. The
    /// lines returned are the greeting.
    pub fn start(&mut self, ctx: &FlowContext<'_>) -> Vec<FlowOutput> {
        let mut out = Vec::new();
        if self.state != State::NotStarted {
            return out;
        }
        self.vars.insert("today".into(), ctx.today.iso());
        let start = self.flow.start();
        self.advance(start, ctx, &mut out);
        out
    }

    /// The caller said or keyed something.
    pub fn input(&mut self, input: &TurnInput, ctx: &FlowContext<'_>) -> Vec<FlowOutput> {
        let mut out = Vec::new();
        if self.state == State::NotStarted {
            out = self.start(ctx);
        }
        self.turn += 1;
        self.vars.insert("today".into(), ctx.today.iso());
        let text = match input {
            TurnInput::Speech { text, .. } => text.clone(),
            other => other.text(),
        };
        let speech = matches!(input, TurnInput::Speech { .. });
        self.last_input = match input {
            TurnInput::Dtmf { digits, .. } => digits.clone(),
            _ => text.clone(),
        };
        self.vars
            .insert("last_input".into(), self.last_input.clone());
        self.last_sentiment = (ctx.sentiment)(if speech { &text } else { "" });
        let label = match self.last_sentiment.label {
            SentimentLabel::Negative => "negative",
            SentimentLabel::Neutral => "neutral",
            SentimentLabel::Positive => "positive",
        };
        self.vars.insert("sentiment".into(), label.into());
        self.last_intent = if speech {
            Some(self.classify(&text, ctx))
        } else {
            None
        };
        let intent = self
            .last_intent
            .as_ref()
            .and_then(|m| m.intent.clone())
            .unwrap_or_default();
        if !intent.is_empty() && !self.intents_seen.contains(&intent) {
            self.intents_seen.push(intent.clone());
        }
        self.vars.insert("intent".into(), intent);

        match std::mem::replace(&mut self.state, State::Ended) {
            State::NotStarted | State::Ended => {
                self.state = State::Ended;
                self.trace.push(TraceStep {
                    turn: self.turn,
                    node: String::new(),
                    event: "input after the flow ended".into(),
                });
            }
            State::Awaiting { node, id, .. } => {
                self.step(node, format!("effect {} abandoned: the caller spoke", id.0));
                self.advance(node, ctx, &mut out);
            }
            State::Waiting { node, attempts } => match self.flow.node(node).clone() {
                Node::Ask(ask) => match collect::collect(&ask, input, ctx.today) {
                    Ok(c) => {
                        self.step(
                            node,
                            format!("input accepted: {}={}", ask.variable, c.value),
                        );
                        self.vars
                            .insert(format!("{}_spoken", ask.variable), c.spoken.clone());
                        self.set_var(&ask.variable, c.value, &mut out, true);
                        self.follow_and_advance(node, &Outcome::Ok, ctx, &mut out);
                    }
                    Err(e) => {
                        let attempts = attempts + 1;
                        self.step(
                            node,
                            format!(
                                "input rejected ({attempts}/{}): {e}",
                                ask.max_attempts.max(1)
                            ),
                        );
                        if attempts >= ask.max_attempts.max(1) {
                            self.step(node, format!("gave up after {attempts} attempts"));
                            if let Some(g) = &ask.give_up {
                                out.push(FlowOutput::Say(render(g, &self.vars)));
                            }
                            self.follow_and_advance(node, &Outcome::GaveUp, ctx, &mut out);
                        } else {
                            let line = ask.reprompt.as_deref().unwrap_or(&ask.prompt);
                            out.push(FlowOutput::Say(render(line, &self.vars)));
                            self.state = State::Waiting { node, attempts };
                        }
                    }
                },
                // Waiting after a failed model or tool call: try again.
                _ => {
                    self.step(node, "retry after failure");
                    self.advance(node, ctx, &mut out);
                }
            },
        }
        out
    }

    /// The result of effect `id`. Results of effects the run no longer
    /// waits for (the caller spoke meanwhile) are ignored: nothing returned.
    pub fn effect_done(
        &mut self,
        id: EffectId,
        result: EffectResult,
        ctx: &FlowContext<'_>,
    ) -> Vec<FlowOutput> {
        let mut out = Vec::new();
        let (node, arguments) = match &self.state {
            State::Awaiting {
                node,
                id: want,
                arguments,
            } if *want == id => (*node, arguments.clone()),
            _ => return out,
        };
        let n = self.flow.node(node).clone();
        let failed = match (&n, result) {
            (Node::Llm(l), EffectResult::Llm(Ok(text))) => {
                self.step(node, format!("llm ok ({} chars)", text.chars().count()));
                if let Some(v) = &l.save_as {
                    self.set_var(v, text.clone(), &mut out, true);
                }
                self.vars.insert("llm_reply".into(), text);
                None
            }
            (Node::Llm(_), EffectResult::Llm(Err(e))) => Some(format!("llm failed: {e}")),
            (Node::Tool(t), EffectResult::Tool(Ok(value))) => {
                self.step(node, format!("tool {} ok", t.tool));
                out.push(FlowOutput::Action(Action::Tool {
                    name: t.tool.clone(),
                    arguments,
                    ok: true,
                }));
                for (var, ptr) in &t.save {
                    match value.pointer(ptr) {
                        Some(serde_json::Value::String(s)) => {
                            self.set_var(var, s.clone(), &mut out, true)
                        }
                        Some(serde_json::Value::Null) | None => {
                            self.step(node, format!("tool result has no `{ptr}` for {var}"));
                        }
                        Some(other) => self.set_var(var, other.to_string(), &mut out, true),
                    }
                }
                None
            }
            (Node::Tool(t), EffectResult::Tool(Err(e))) => {
                out.push(FlowOutput::Action(Action::Tool {
                    name: t.tool.clone(),
                    arguments,
                    ok: false,
                }));
                Some(format!("tool failed: {e}"))
            }
            _ => Some("effect result of the wrong kind".to_string()),
        };
        match failed {
            None => self.follow_and_advance(node, &Outcome::Ok, ctx, &mut out),
            Some(why) => {
                self.step(node, why);
                if self.edge_for(node, &Outcome::Error).is_some() {
                    self.follow_and_advance(node, &Outcome::Error, ctx, &mut out);
                } else {
                    self.step(node, "said the retry line; waiting for the caller");
                    out.push(FlowOutput::Say(RETRY_LINE.into()));
                    self.state = State::Waiting { node, attempts: 0 };
                }
            }
        }
        out
    }

    fn classify(&self, text: &str, ctx: &FlowContext<'_>) -> IntentMatch {
        if let Some(c) = ctx.intents {
            return c.classify(text);
        }
        let heard = format!(" {} ", normalise(text));
        for def in &self.flow.flow().intents {
            for ex in &def.examples {
                let ex = normalise(ex);
                if !ex.is_empty() && heard.contains(&format!(" {ex} ")) {
                    return IntentMatch {
                        intent: Some(def.name.clone()),
                        best: Some(def.name.clone()),
                        confidence: 1.0,
                    };
                }
            }
        }
        IntentMatch {
            intent: None,
            best: None,
            confidence: 0.0,
        }
    }

    fn edge_for(&self, node: usize, outcome: &Outcome) -> Option<(usize, usize)> {
        self.flow
            .edges_from(node)
            .iter()
            .find(|(_, o, _)| o == outcome)
            .map(|(e, _, t)| (*e, *t))
    }

    fn follow_and_advance(
        &mut self,
        node: usize,
        outcome: &Outcome,
        ctx: &FlowContext<'_>,
        out: &mut Vec<FlowOutput>,
    ) {
        match self.edge_for(node, outcome) {
            Some((e, to)) => {
                self.take(node, e, to);
                self.advance(to, ctx, out);
            }
            None => {
                self.step(node, format!("dead end: no edge for {outcome:?}"));
                self.state = State::Ended;
            }
        }
    }

    fn take(&mut self, from: usize, edge: usize, to: usize) {
        let e = self.flow.edge(edge);
        let label = e.on.clone().unwrap_or_else(|| "next".into());
        let event = format!(
            "edge {} on {label} -> {}",
            e.name(),
            self.flow.node(to).id()
        );
        self.step(from, event);
    }

    fn new_effect(&mut self) -> EffectId {
        let id = EffectId(self.next_effect);
        self.next_effect += 1;
        id
    }

    /// Enter `node` and keep going until the flow waits or ends.
    fn advance(&mut self, mut node: usize, ctx: &FlowContext<'_>, out: &mut Vec<FlowOutput>) {
        for _ in 0..MAX_STEPS {
            let n = self.flow.node(node).clone();
            self.step(node, format!("enter {}", n.node_type().as_str()));
            let outcome = match &n {
                Node::Say(s) => {
                    out.push(FlowOutput::Say(render(&s.text, &self.vars)));
                    Outcome::Next
                }
                Node::Ask(a) => {
                    out.push(FlowOutput::Say(render(&a.prompt, &self.vars)));
                    self.state = State::Waiting { node, attempts: 0 };
                    return;
                }
                Node::Branch(_) => {
                    let chosen = self.choose(node);
                    match chosen {
                        Some((e, to)) => {
                            self.take(node, e, to);
                            node = to;
                            continue;
                        }
                        None => {
                            self.step(node, "dead end: no branch matched");
                            self.state = State::Ended;
                            return;
                        }
                    }
                }
                Node::KbAnswer(k) => {
                    let query = render(&k.query, &self.vars);
                    let best = ctx
                        .kb
                        .and_then(|kb| kb.search(&query, 1).into_iter().next());
                    match best {
                        Some(p) if p.score >= k.min_score => {
                            self.step(
                                node,
                                format!("kb found in {} (score {:.2})", p.source, p.score),
                            );
                            self.vars.insert("kb_answer".into(), p.text);
                            out.push(FlowOutput::Say(render(&k.answer, &self.vars)));
                            Outcome::Found
                        }
                        Some(p) => {
                            self.step(node, format!("kb not found (best score {:.2})", p.score));
                            Outcome::NotFound
                        }
                        None => {
                            self.step(node, "kb not found (no passages)");
                            Outcome::NotFound
                        }
                    }
                }
                Node::Llm(l) => {
                    let request = self.chat_request(l, ctx);
                    let id = self.new_effect();
                    self.step(node, format!("effect {} requested: llm", id.0));
                    out.push(FlowOutput::Effect(EffectRequest {
                        id,
                        node: l.id.clone(),
                        effect: Effect::Llm {
                            request,
                            timeout: Duration::from_millis(u64::from(l.timeout_ms)),
                        },
                    }));
                    self.state = State::Awaiting {
                        node,
                        id,
                        arguments: String::new(),
                    };
                    return;
                }
                Node::Tool(t) => {
                    if let Some(w) = &t.wait_text {
                        out.push(FlowOutput::Say(render(w, &self.vars)));
                    }
                    let arguments = render_json(&t.arguments, &self.vars);
                    let id = self.new_effect();
                    self.step(node, format!("effect {} requested: tool {}", id.0, t.tool));
                    let args_text = arguments.to_string();
                    out.push(FlowOutput::Effect(EffectRequest {
                        id,
                        node: t.id.clone(),
                        effect: Effect::Tool(ToolRequest {
                            name: t.tool.clone(),
                            url: render(&t.url, &self.vars),
                            arguments,
                            timeout: Duration::from_millis(u64::from(t.timeout_ms)),
                        }),
                    }));
                    self.state = State::Awaiting {
                        node,
                        id,
                        arguments: args_text,
                    };
                    return;
                }
                Node::Transfer(t) => {
                    if let Some(x) = &t.text {
                        out.push(FlowOutput::Say(render(x, &self.vars)));
                    }
                    out.push(FlowOutput::Action(Action::Transfer {
                        target: t.target.clone(),
                    }));
                    self.step(node, format!("end: transfer to {}", t.target));
                    self.state = State::Ended;
                    return;
                }
                Node::Hangup(h) => {
                    if let Some(x) = &h.text {
                        out.push(FlowOutput::Say(render(x, &self.vars)));
                    }
                    out.push(FlowOutput::Action(Action::Hangup));
                    self.step(node, "end: hang up");
                    self.state = State::Ended;
                    return;
                }
            };
            match self.edge_for(node, &outcome) {
                Some((e, to)) => {
                    self.take(node, e, to);
                    node = to;
                }
                None => {
                    self.step(node, format!("dead end: no edge for {outcome:?}"));
                    self.state = State::Ended;
                    return;
                }
            }
        }
        self.step(
            node,
            "stopped: too many steps without waiting for the caller",
        );
        self.state = State::Ended;
    }

    fn choose(&self, node: usize) -> Option<(usize, usize)> {
        let mut default = None;
        for (e, o, to) in self.flow.edges_from(node) {
            let hit = match o {
                Outcome::Default => {
                    default = default.or(Some((*e, *to)));
                    false
                }
                Outcome::Intent(name) => {
                    self.last_intent.as_ref().and_then(|m| m.intent.as_deref())
                        == Some(name.as_str())
                }
                Outcome::Var { name, test } => {
                    test.matches(self.vars.get(name).map(String::as_str).unwrap_or(""))
                }
                Outcome::Sentiment(l) => self.turn > 0 && self.last_sentiment.label == *l,
                _ => false,
            };
            if hit {
                return Some((*e, *to));
            }
        }
        default
    }

    fn chat_request(&mut self, l: &super::model::LlmNode, ctx: &FlowContext<'_>) -> ChatRequest {
        let mut system = render(&l.instructions, &self.vars);
        if l.use_kb {
            let passages = ctx
                .kb
                .map(|kb| kb.search(&self.last_input, l.kb_top_k as usize))
                .unwrap_or_default();
            if !passages.is_empty() {
                system.push_str("\n\nFacts from the knowledge base (use them when they help):");
                for p in &passages {
                    system.push_str("\n- ");
                    system.push_str(p.text.trim());
                }
            }
            let id = self.flow.node_index(&l.id).unwrap_or(0);
            self.step(id, format!("kb context: {} passages", passages.len()));
        }
        let mut messages = vec![ChatMessage::new(Role::System, system)];
        if let Some(c) = ctx.conversation {
            for t in &c.turns {
                if t.text.trim().is_empty() {
                    continue;
                }
                let role = match t.speaker {
                    Speaker::Caller => Role::User,
                    Speaker::Agent => Role::Assistant,
                };
                messages.push(ChatMessage::new(role, t.text.clone()));
            }
        }
        if !self.last_input.is_empty() {
            messages.push(ChatMessage::new(Role::User, self.last_input.clone()));
        }
        let mut req = ChatRequest::new(messages);
        req.max_tokens = l.max_tokens;
        req
    }

    /// Lines the flow would say next on the branches open from here (for a
    /// supervisor's smart replies), at most three.
    pub fn suggestions(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let State::Waiting { node, .. } = self.state {
            for (_, _, to) in self.flow.edges_from(node) {
                self.preview(*to, 3, &mut out);
            }
        }
        out.truncate(3);
        out
    }

    fn preview(&self, node: usize, depth: u32, out: &mut Vec<String>) {
        let line = match self.flow.node(node) {
            Node::Say(s) => Some(s.text.as_str()),
            Node::Ask(a) => Some(a.prompt.as_str()),
            Node::Transfer(t) => t.text.as_deref(),
            Node::Hangup(h) => h.text.as_deref(),
            Node::Tool(t) => t.wait_text.as_deref(),
            Node::Branch(_) => {
                if depth > 0 {
                    for (_, _, to) in self.flow.edges_from(node) {
                        self.preview(*to, depth - 1, out);
                    }
                }
                None
            }
            Node::KbAnswer(_) | Node::Llm(_) => None,
        };
        if let Some(l) = line {
            let l = render(l, &self.vars);
            if !l.trim().is_empty() && !out.contains(&l) {
                out.push(l);
            }
        }
    }
}
