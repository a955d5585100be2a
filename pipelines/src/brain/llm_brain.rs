//! [`LlmBrain`]: a free-form conversation through any [`ChatModel`].
//!
//! Per caller turn it builds a bounded message list (system prompt, optional
//! knowledge-base passages, the newest turns that fit the limits, the new
//! turn), streams the model's text into the [`BrainSink`] as it arrives, runs
//! the model's tool calls through a [`ToolRunner`] and continues the
//! completion with their results, for a bounded number of rounds.
//!
//! `respond` returns at once: the turn runs on one short-lived worker thread
//! that mostly waits on the model's channel (the model does its own work on
//! its runtime or pool). A newer turn supersedes an older one: the old
//! worker stops at its next event and drops the model's receiver, which
//! cancels the request. On failure the caller hears the fallback line if
//! nothing was said yet; otherwise the reply just ends. Every turn ends with
//! [`BrainSink::done`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use serde::Deserialize;

use super::insights;
use super::kb::{Passage, Retriever};
use super::llm::{ChatMessage, ChatModel, ChatRequest, LlmEvent, Role, ToolCall, ToolSpec};
use super::tools::{ToolRequest, ToolRunner};
use super::{Action, Brain, BrainSink, Conversation, Speaker, TurnInput};

/// How often a waiting turn checks whether a newer one replaced it.
const SUPERSEDE_POLL: Duration = Duration::from_millis(100);

fn default_turns() -> usize {
    16
}
fn default_chars() -> usize {
    6_000
}
fn default_max_tokens() -> u32 {
    160
}
fn default_temperature() -> f32 {
    0.3
}
fn default_fallback() -> String {
    "Sorry, I didn't catch that, could you say it again?".into()
}
fn default_rounds() -> u32 {
    3
}
fn default_top_k() -> usize {
    3
}
fn default_tool_timeout_ms() -> u64 {
    3_000
}
fn default_turn_timeout_ms() -> u64 {
    45_000
}

/// A webhook tool the model may call.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmTool {
    /// Function name the model sees.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    #[serde(default = "empty_object_schema")]
    pub parameters: serde_json::Value,
    /// Where the arguments are POSTed.
    pub url: String,
    /// Give up after this long, ms.
    #[serde(default = "default_tool_timeout_ms")]
    pub timeout_ms: u64,
}

fn empty_object_schema() -> serde_json::Value {
    serde_json::json!({ "type": "object", "properties": {} })
}

impl LlmTool {
    /// The spec offered to the model.
    pub fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: self.parameters.clone(),
        }
    }
}

/// How an [`LlmBrain`] talks (per agent config).
///
/// ```toml
/// system_prompt = "You are Ana, the receptionist of Clinica Sol. Be brief."
/// greeting = "Clinica Sol, this is Ana. How can I help?"
/// max_history_turns = 12
/// temperature = 0.3
///
/// [[tools]]
/// name = "find_slot"
/// description = "Find the next free appointment slot"
/// url = "http://127.0.0.1:9000/hooks/find_slot"
/// timeout_ms = 2000
/// parameters = { type = "object", properties = { day = { type = "string" } } }
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmBrainConfig {
    /// Instructions, always the first message.
    pub system_prompt: String,
    /// Said when the call is answered.
    #[serde(default)]
    pub greeting: Option<String>,
    /// Most conversation turns sent (the new caller turn not counted).
    #[serde(default = "default_turns")]
    pub max_history_turns: usize,
    /// Most characters of conversation turns sent; the oldest go first.
    #[serde(default = "default_chars")]
    pub max_history_chars: usize,
    /// Reply length cap, tokens.
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Sampling temperature.
    #[serde(default = "default_temperature")]
    pub temperature: f32,
    /// Said when the model fails before saying anything.
    #[serde(default = "default_fallback")]
    pub fallback_line: String,
    /// Webhook tools the model may call (offered only with a tool runner).
    #[serde(default)]
    pub tools: Vec<LlmTool>,
    /// Most completions per turn that may end in tool calls.
    #[serde(default = "default_rounds")]
    pub max_tool_rounds: u32,
    /// Knowledge-base passages put in the system message (with a retriever).
    #[serde(default = "default_top_k")]
    pub kb_top_k: usize,
    /// Safety net for a model that never finishes, ms.
    #[serde(default = "default_turn_timeout_ms")]
    pub turn_timeout_ms: u64,
}

impl LlmBrainConfig {
    /// A config with `system_prompt` and defaults for the rest.
    pub fn new(system_prompt: impl Into<String>) -> Self {
        LlmBrainConfig {
            system_prompt: system_prompt.into(),
            greeting: None,
            max_history_turns: default_turns(),
            max_history_chars: default_chars(),
            max_tokens: default_max_tokens(),
            temperature: default_temperature(),
            fallback_line: default_fallback(),
            tools: Vec::new(),
            max_tool_rounds: default_rounds(),
            kb_top_k: default_top_k(),
            turn_timeout_ms: default_turn_timeout_ms(),
        }
    }

    /// Check the values (once, at startup).
    pub fn validate(&self) -> Result<(), LlmBrainConfigError> {
        if self.fallback_line.trim().is_empty() {
            return Err(LlmBrainConfigError::Empty {
                field: "fallback_line",
            });
        }
        if self.max_tokens == 0 {
            return Err(LlmBrainConfigError::Empty {
                field: "max_tokens",
            });
        }
        if self.turn_timeout_ms == 0 {
            return Err(LlmBrainConfigError::Empty {
                field: "turn_timeout_ms",
            });
        }
        if !(0.0..=2.0).contains(&self.temperature) {
            return Err(LlmBrainConfigError::Temperature {
                value: self.temperature,
            });
        }
        for (i, t) in self.tools.iter().enumerate() {
            if t.name.is_empty()
                || !t
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return Err(LlmBrainConfigError::ToolName {
                    name: t.name.clone(),
                });
            }
            if self.tools[..i].iter().any(|o| o.name == t.name) {
                return Err(LlmBrainConfigError::DuplicateTool {
                    name: t.name.clone(),
                });
            }
            if !(t.url.starts_with("http://") || t.url.starts_with("https://")) {
                return Err(LlmBrainConfigError::ToolUrl {
                    name: t.name.clone(),
                    url: t.url.clone(),
                });
            }
        }
        Ok(())
    }
}

/// A bad [`LlmBrainConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmBrainConfigError {
    /// A value that must be set is empty or zero.
    #[error("{field} must not be empty or zero")]
    Empty {
        /// The key.
        field: &'static str,
    },
    /// Temperature outside 0..=2.
    #[error("temperature {value} is outside 0..=2")]
    Temperature {
        /// The value given.
        value: f32,
    },
    /// A tool name the OpenAI API refuses.
    #[error("tool name {name:?} must be non-empty ASCII letters, digits, '_' or '-'")]
    ToolName {
        /// The name.
        name: String,
    },
    /// Two tools share a name.
    #[error("tool {name:?} is defined twice")]
    DuplicateTool {
        /// The name.
        name: String,
    },
    /// A tool URL that is not http(s).
    #[error("tool {name:?}: url {url:?} is not http(s)")]
    ToolUrl {
        /// The tool.
        name: String,
        /// The URL.
        url: String,
    },
}

/// A brain holding a free-form conversation through a [`ChatModel`].
#[derive(Debug)]
pub struct LlmBrain {
    config: Arc<LlmBrainConfig>,
    model: Arc<dyn ChatModel>,
    retriever: Option<Arc<dyn Retriever>>,
    tools: Option<Arc<dyn ToolRunner>>,
    /// The current turn's number; a worker whose turn is older stops.
    current: Arc<AtomicU64>,
}

impl LlmBrain {
    /// A brain over `model`, once `config` is valid.
    pub fn new(
        config: LlmBrainConfig,
        model: Arc<dyn ChatModel>,
    ) -> Result<Self, LlmBrainConfigError> {
        config.validate()?;
        Ok(LlmBrain {
            config: Arc::new(config),
            model,
            retriever: None,
            tools: None,
            current: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Put knowledge-base passages for each caller turn in the prompt.
    pub fn with_retriever(mut self, retriever: Arc<dyn Retriever>) -> Self {
        self.retriever = Some(retriever);
        self
    }

    /// Offer the configured tools to the model and run them with `runner`.
    pub fn with_tool_runner(mut self, runner: Arc<dyn ToolRunner>) -> Self {
        self.tools = Some(runner);
        self
    }
}

/// The conversation as chat messages: the newest turns within both limits
/// (oldest dropped first), empty turns skipped, consecutive turns of one
/// speaker merged (chat templates want alternating roles), then `input`.
pub fn history_messages(
    conversation: &Conversation,
    input: &str,
    max_turns: usize,
    max_chars: usize,
) -> Vec<ChatMessage> {
    let mut kept = Vec::new();
    let mut chars = 0usize;
    for turn in conversation.turns.iter().rev() {
        let text = turn.text.trim();
        if text.is_empty() {
            continue;
        }
        let n = text.chars().count();
        if kept.len() >= max_turns || chars + n > max_chars {
            break;
        }
        chars += n;
        kept.push(turn);
    }
    let mut out: Vec<ChatMessage> = Vec::with_capacity(kept.len() + 1);
    let turns = kept.into_iter().rev().map(|t| {
        let role = match t.speaker {
            Speaker::Caller => Role::User,
            Speaker::Agent => Role::Assistant,
        };
        (role, t.text.trim())
    });
    for (role, text) in turns.chain(std::iter::once((Role::User, input.trim()))) {
        match out.last_mut() {
            Some(last) if last.role == role => {
                last.content.push(' ');
                last.content.push_str(text);
            }
            _ => out.push(ChatMessage::new(role, text)),
        }
    }
    out
}

/// Everything a turn's worker needs.
#[derive(Debug)]
struct Turn {
    config: Arc<LlmBrainConfig>,
    model: Arc<dyn ChatModel>,
    retriever: Option<Arc<dyn Retriever>>,
    tools: Option<Arc<dyn ToolRunner>>,
    current: Arc<AtomicU64>,
    me: u64,
    call_id: String,
    history: Vec<ChatMessage>,
    input: String,
    out: BrainSink,
}

/// How a model round ended.
enum Round {
    /// Reply complete; these tools were called.
    Complete(Vec<ToolCall>, String),
    /// The model failed or went silent.
    Failed,
    /// The call ended or a newer turn started: stop quietly.
    Stopped,
}

impl Turn {
    fn live(&self) -> bool {
        self.current.load(Ordering::Acquire) == self.me
    }

    /// The system prompt with the knowledge-base passages for this turn,
    /// and those passages.
    fn system_message(&self) -> (ChatMessage, Vec<Passage>) {
        let mut system = self.config.system_prompt.clone();
        let mut found = Vec::new();
        if let Some(r) = &self.retriever {
            if self.config.kb_top_k > 0 && !self.input.trim().is_empty() {
                let passages = r.search(&self.input, self.config.kb_top_k);
                if !passages.is_empty() {
                    system.push_str(
                        "\n\nKnowledge base passages that may help answer the caller \
                         (use them if relevant; do not read sources aloud):",
                    );
                    for (i, p) in passages.iter().enumerate() {
                        system.push_str(&format!(
                            "\n[{}] (source: {}) {}",
                            i + 1,
                            p.source,
                            p.text.trim()
                        ));
                    }
                }
                found = passages;
            }
        }
        (ChatMessage::new(Role::System, system), found)
    }

    /// One completion: stream its text out, collect its tool calls.
    fn round(
        &self,
        rx: crossbeam_channel::Receiver<LlmEvent>,
        deadline: Instant,
        spoke: &mut bool,
    ) -> Round {
        let mut calls = Vec::new();
        let mut text = String::new();
        loop {
            // Wake now and then while the model thinks, so a superseded
            // turn lets go of its request without waiting for a token.
            let slice = (Instant::now() + SUPERSEDE_POLL).min(deadline);
            let ev = match rx.recv_deadline(slice) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if !self.live() {
                        return Round::Stopped;
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(model = self.model.name(), error = %e, "model stopped without finishing");
                    return Round::Failed;
                }
            };
            if !self.live() {
                return Round::Stopped;
            }
            match ev {
                LlmEvent::Text(t) => {
                    if t.is_empty() {
                        continue;
                    }
                    // Nothing audible yet: don't count leading whitespace as speech.
                    if !t.trim().is_empty() {
                        *spoke = true;
                    }
                    text.push_str(&t);
                    if !self.out.text(t) {
                        return Round::Stopped;
                    }
                }
                LlmEvent::ToolCall(c) => calls.push(c),
                LlmEvent::Done { .. } => return Round::Complete(calls, text),
                LlmEvent::Failed(e) => {
                    tracing::warn!(model = self.model.name(), error = %e, "model request failed");
                    return Round::Failed;
                }
                // Future event kinds: nothing to do.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    /// Run `calls` (concurrently) and return the tool result messages.
    fn run_tools(&self, runner: &Arc<dyn ToolRunner>, calls: &[ToolCall]) -> Vec<ChatMessage> {
        enum Pending {
            Waiting(
                crossbeam_channel::Receiver<Result<serde_json::Value, super::tools::ToolError>>,
                Instant,
            ),
            Error(String),
        }
        let started: Vec<Pending> = calls
            .iter()
            .map(|c| {
                let Some(tool) = self.config.tools.iter().find(|t| t.name == c.name) else {
                    return Pending::Error(format!("there is no tool named {:?}", c.name));
                };
                let arguments = match serde_json::from_str::<serde_json::Value>(&c.arguments) {
                    Ok(v) => v,
                    Err(e) => return Pending::Error(format!("arguments are not valid JSON: {e}")),
                };
                let timeout = Duration::from_millis(tool.timeout_ms);
                let rx = runner.call(ToolRequest {
                    name: tool.name.clone(),
                    url: tool.url.clone(),
                    arguments,
                    timeout,
                });
                // The runner enforces the timeout; this only guards a runner
                // that never answers.
                Pending::Waiting(rx, Instant::now() + timeout + Duration::from_millis(500))
            })
            .collect();
        let mut messages = Vec::with_capacity(calls.len());
        for (call, pending) in calls.iter().zip(started) {
            let result = match pending {
                Pending::Error(e) => Err(e),
                Pending::Waiting(rx, deadline) => match rx.recv_deadline(deadline) {
                    Ok(Ok(v)) => Ok(v),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(_) => Err("the tool did not answer".to_string()),
                },
            };
            let ok = result.is_ok();
            if !ok {
                tracing::warn!(tool = %call.name, "tool call failed");
            }
            self.out.action(Action::Tool {
                name: call.name.clone(),
                arguments: call.arguments.clone(),
                ok,
            });
            let content = match result {
                Ok(v) => v.to_string(),
                Err(e) => serde_json::json!({ "error": e }).to_string(),
            };
            let mut m = ChatMessage::new(Role::Tool, content);
            m.tool_call_id = Some(call.id.clone());
            messages.push(m);
        }
        messages
    }

    fn run(self) {
        let span = tracing::debug_span!("llm_turn", call_id = %self.call_id, turn = self.me);
        let _entered = span.enter();
        let deadline = Instant::now() + Duration::from_millis(self.config.turn_timeout_ms);
        let mut messages = Vec::with_capacity(self.history.len() + 1);
        let (system, passages) = self.system_message();
        messages.push(system);
        messages.extend(self.history.iter().cloned());
        let specs: Vec<ToolSpec> = match &self.tools {
            Some(_) => self.config.tools.iter().map(LlmTool::spec).collect(),
            None => Vec::new(),
        };
        let mut analysed = false;
        let mut spoke = false;
        let mut rounds = 0u32;
        loop {
            let request = ChatRequest {
                messages: messages.clone(),
                tools: specs.clone(),
                max_tokens: self.config.max_tokens,
                temperature: self.config.temperature,
            };
            // Start the model first; analyse the caller's turn while it thinks.
            let rx = self.model.chat(request);
            if !analysed {
                analysed = true;
                // The caller's earlier turns, for the sentiment trend behind
                // the supervisor's suggestions.
                let mut past = Conversation::default();
                let earlier = self.history.len().saturating_sub(1);
                for m in self.history[..earlier]
                    .iter()
                    .filter(|m| m.role == Role::User)
                {
                    past.turns.push(super::Turn {
                        speaker: Speaker::Caller,
                        text: m.content.clone(),
                        at: vocelio_codecs::MediaTime::ZERO,
                        interrupted: false,
                    });
                }
                // Suggestions read the passages already found, not the
                // knowledge base again.
                let found = Found(passages.clone());
                let kb = (!passages.is_empty()).then_some(&found as &dyn Retriever);
                let analysis = insights::analyze_turn(&past, None, kb, &self.input);
                if !self.out.analysis(analysis) {
                    return;
                }
            }
            let outcome = self.round(rx, deadline, &mut spoke);
            match outcome {
                // Superseded or call over: no fallback; `done` so the
                // reply is never left open (ignored if nobody listens).
                Round::Stopped => {
                    self.out.done();
                    return;
                }
                Round::Failed => break,
                Round::Complete(calls, text) => {
                    let Some(runner) = self.tools.as_ref().filter(|_| !calls.is_empty()) else {
                        break;
                    };
                    rounds += 1;
                    if rounds > self.config.max_tool_rounds {
                        tracing::warn!("tool-call rounds exhausted; ending the turn");
                        break;
                    }
                    let mut asst = ChatMessage::new(Role::Assistant, text);
                    asst.tool_calls = calls.clone();
                    messages.push(asst);
                    let results = self.run_tools(runner, &calls);
                    if !self.live() {
                        self.out.done();
                        return;
                    }
                    messages.extend(results);
                }
            }
        }
        if !spoke && self.live() && !self.out.text(self.config.fallback_line.clone()) {
            return;
        }
        self.out.done();
    }
}

impl Brain for LlmBrain {
    fn greeting(&self) -> Option<String> {
        self.config.greeting.clone()
    }

    fn respond(&mut self, conversation: &Conversation, input: &TurnInput, out: BrainSink) {
        let me = self.current.fetch_add(1, Ordering::AcqRel) + 1;
        let input = input.text();
        let history = history_messages(
            conversation,
            &input,
            self.config.max_history_turns,
            self.config.max_history_chars,
        );
        let turn = Turn {
            config: Arc::clone(&self.config),
            model: Arc::clone(&self.model),
            retriever: self.retriever.clone(),
            tools: self.tools.clone(),
            current: Arc::clone(&self.current),
            me,
            call_id: conversation.call_id.clone(),
            history,
            input,
            out: out.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("llm-turn".into())
            .spawn(move || turn.run());
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the LLM turn worker");
            if out.text(self.config.fallback_line.clone()) {
                out.done();
            }
        }
    }
}

/// Passages already retrieved for a turn, served again without a search.
#[derive(Debug)]
struct Found(Vec<Passage>);

impl Retriever for Found {
    fn search(&self, _query: &str, k: usize) -> Vec<Passage> {
        self.0.iter().take(k).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brain::Turn as ConvTurn;
    use vocelio_codecs::MediaTime;

    fn conv(turns: &[(Speaker, &str)]) -> Conversation {
        Conversation {
            turns: turns
                .iter()
                .map(|(speaker, text)| ConvTurn {
                    speaker: *speaker,
                    text: text.to_string(),
                    at: MediaTime::ZERO,
                    interrupted: false,
                })
                .collect(),
            ..Conversation::default()
        }
    }

    fn roles(m: &[ChatMessage]) -> Vec<(Role, &str)> {
        m.iter().map(|m| (m.role, m.content.as_str())).collect()
    }

    #[test]
    fn history_keeps_newest_turns_within_limits() {
        use Speaker::{Agent, Caller};
        let c = conv(&[
            (Agent, "Hello, how can I help?"),
            (Caller, "one"),
            (Agent, "two"),
            (Caller, "three"),
            (Agent, ""),
            (Agent, "four"),
        ]);
        assert_eq!(
            roles(&history_messages(&c, "five", 3, 1000)),
            vec![
                (Role::Assistant, "two"),
                (Role::User, "three"),
                (Role::Assistant, "four"),
                (Role::User, "five")
            ]
        );
        // 9 characters: "four" and "three" fit, "two" does not.
        assert_eq!(
            roles(&history_messages(&c, "five", 100, 9)),
            vec![
                (Role::User, "three"),
                (Role::Assistant, "four"),
                (Role::User, "five")
            ]
        );
        assert_eq!(
            roles(&history_messages(&c, "five", 0, 0)),
            vec![(Role::User, "five")]
        );
        // Two caller turns in a row merge.
        let c = conv(&[(Caller, "hello?"), (Caller, "anyone")]);
        assert_eq!(
            roles(&history_messages(&c, "there", 10, 100)),
            vec![(Role::User, "hello? anyone there")]
        );
    }

    #[test]
    fn config_defaults_and_validation() {
        let c: LlmBrainConfig = serde_json::from_str(
            r#"{"system_prompt":"Be brief.","tools":[{"name":"weather","description":"d","url":"http://x/w"}]}"#,
        )
        .unwrap();
        assert_eq!(c.tools[0].timeout_ms, 3_000);
        assert!(c.fallback_line.contains("Sorry"));
        assert_eq!(c.validate(), Ok(()));
        let mut bad = c.clone();
        bad.tools.push(bad.tools[0].clone());
        assert!(matches!(
            bad.validate(),
            Err(LlmBrainConfigError::DuplicateTool { .. })
        ));
        let mut bad = c.clone();
        bad.tools[0].url = "file:///etc/passwd".into();
        assert!(matches!(
            bad.validate(),
            Err(LlmBrainConfigError::ToolUrl { .. })
        ));
        let mut bad = c;
        bad.temperature = 3.0;
        assert!(matches!(
            bad.validate(),
            Err(LlmBrainConfigError::Temperature { .. })
        ));
        assert!(
            serde_json::from_str::<LlmBrainConfig>(r#"{"system_prompt":"x","fallback":"y"}"#)
                .is_err()
        );
    }
}
