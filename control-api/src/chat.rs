//! Text conversations with an agent's brain: try an agent without a phone
//! (`POST /v1/agents/{id}/chat`) or simulate a flow (`POST /v1/flows/simulate`).
//!
//! [`run_text`] is the voice runner's turn loop without audio: the greeting,
//! then each caller message through [`Brain::respond`], the reply collected
//! from the [`BrainSink`] until [`BrainChunk::Done`], the [`Conversation`]
//! kept as the runner keeps it (caller turn, the agent's words, variables,
//! actions). It stops early when the brain ends the call (hang-up or
//! transfer), as a call would. [`chat`] runs it on a blocking thread for a
//! handler. The JSON forms of actions, analyses and insights here are the
//! ones the API stores and reports everywhere.

use crate::error::{ApiError, ApiResult};
use crate::model::ResolvedAgent;
use crate::state::{AppState, EngineError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use utoipa::ToSchema;
use vocelio_codecs::MediaTime;
use vocelio_pipelines::brain::insights::{Outcome, TraceStep};
use vocelio_pipelines::brain::sentiment::SentimentLabel;
use vocelio_pipelines::brain::{
    Action, Brain, BrainChunk, BrainSink, CallInsights, Conversation, Speaker, Turn, TurnAnalysis,
    TurnInput,
};

/// How long one reply may take.
pub const TURN_TIMEOUT: Duration = Duration::from_secs(30);
/// Most caller messages in one request.
pub const MAX_MESSAGES: usize = 50;
/// Longest caller message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 2000;
/// Media time between caller turns in the conversation (the brain sees a
/// plausible clock; nothing waits).
const TURN_SPACING_US: u64 = 5_000_000;

/// Caller messages.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatRequest {
    /// What the caller says, turn by turn (1–50 messages of 1–2000
    /// characters). `DTMF 123` is the caller pressing keys 1, 2, 3.
    pub messages: Vec<String>,
}

/// One line of the transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ChatLine {
    /// `agent` or `caller`.
    pub speaker: String,
    /// What was said (`DTMF 1 2 3` for keys).
    pub text: String,
}

/// What a text conversation came to.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChatResult {
    /// The conversation: the greeting, then each caller message and reply.
    pub transcript: Vec<ChatLine>,
    /// Every action the brain asked for, in order
    /// (`{"type": "transfer", "target": …}`, `hangup`, `send_dtmf`,
    /// `set_variable`, `tool`).
    #[schema(value_type = Vec<Object>)]
    pub actions: Vec<Value>,
    /// What the brain made of each caller turn (`turn`, `intent`,
    /// `sentiment`, `suggestions`).
    #[schema(value_type = Vec<Object>)]
    pub analysis: Vec<Value>,
    /// What the conversation came to: outcome, summary, intents, sentiment,
    /// and the flow's trace for flow brains.
    #[schema(value_type = Object)]
    pub insights: Value,
    /// The brain ended the call (hang-up or transfer); later messages were
    /// not sent.
    pub ended: bool,
    /// How many caller messages the brain answered.
    pub turns: usize,
}

/// Why a text conversation stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// A reply did not complete in time.
    #[error("the agent did not finish its reply to message {turn} within {timeout_ms} ms")]
    Timeout {
        /// The caller message (0-based).
        turn: usize,
        /// The limit.
        timeout_ms: u64,
    },
    /// The brain dropped its reply without finishing it.
    #[error("the agent stopped without finishing its reply to message {turn}")]
    NoReply {
        /// The caller message (0-based).
        turn: usize,
    },
}

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        ApiError::unavailable(e.to_string())
    }
}

/// Check caller messages: 1–50 of 1–2000 characters each (422 naming the
/// message).
pub fn check_messages(messages: &[String]) -> ApiResult<()> {
    if messages.is_empty() || messages.len() > MAX_MESSAGES {
        return Err(ApiError::validation(
            "messages",
            format!("must hold 1 to {MAX_MESSAGES} messages"),
        ));
    }
    for (i, m) in messages.iter().enumerate() {
        if m.trim().is_empty() || m.chars().count() > MAX_MESSAGE_CHARS {
            return Err(ApiError::validation(
                format!("messages[{i}]"),
                format!("must be 1 to {MAX_MESSAGE_CHARS} characters, not blank"),
            ));
        }
    }
    Ok(())
}

/// A caller message as a turn: `DTMF 1 2 3` (keys `0-9*#A-D`, spaces
/// ignored) is key presses, anything else speech.
pub fn turn_input(message: &str, at: MediaTime) -> TurnInput {
    let trimmed = message.trim();
    if let Some(rest) = trimmed
        .strip_prefix("DTMF ")
        .or_else(|| trimmed.strip_prefix("dtmf "))
    {
        let digits: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
        if !digits.is_empty()
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D'))
        {
            return TurnInput::Dtmf { digits, at };
        }
    }
    TurnInput::Speech {
        text: trimmed.to_string(),
        at,
    }
}

fn speaker(s: Speaker) -> &'static str {
    match s {
        Speaker::Caller => "caller",
        Speaker::Agent => "agent",
    }
}

/// Talk to `brain` as agent `agent`: its greeting, then each of `messages`,
/// each reply allowed `turn_timeout`.
pub fn run_text(
    brain: &mut dyn Brain,
    agent: &str,
    messages: &[String],
    turn_timeout: Duration,
) -> Result<ChatResult, ChatError> {
    let mut conversation = Conversation {
        call_id: "chat".into(),
        agent: agent.into(),
        ..Conversation::default()
    };
    let mut analysis = Vec::new();
    let mut ended = false;
    let mut answered = 0;
    if let Some(greeting) = brain.greeting().filter(|g| !g.trim().is_empty()) {
        conversation.turns.push(Turn {
            speaker: Speaker::Agent,
            text: greeting,
            at: MediaTime::ZERO,
            interrupted: false,
        });
    }
    for (i, message) in messages.iter().enumerate() {
        let at = MediaTime::from_micros((i as u64 + 1) * TURN_SPACING_US);
        let input = turn_input(message, at);
        let reply_no = i as u32 + 1;
        let (tx, rx) = crossbeam_channel::unbounded();
        brain.respond(&conversation, &input, BrainSink::new(reply_no, tx));
        conversation.turns.push(Turn {
            speaker: Speaker::Caller,
            text: input.text(),
            at,
            interrupted: false,
        });
        let started = Instant::now();
        let mut said = String::new();
        loop {
            let left = turn_timeout.saturating_sub(started.elapsed());
            let chunk = match rx.recv_timeout(left) {
                Ok((reply, chunk)) if reply == reply_no => chunk,
                Ok(_) => continue,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    return Err(ChatError::Timeout {
                        turn: i,
                        timeout_ms: turn_timeout.as_millis() as u64,
                    })
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(ChatError::NoReply { turn: i })
                }
            };
            match chunk {
                BrainChunk::Text(t) => said.push_str(&t),
                BrainChunk::Action(a) => {
                    match &a {
                        Action::SetVariable { name, value } => {
                            conversation.variables.push((name.clone(), value.clone()));
                        }
                        Action::Hangup | Action::Transfer { .. } => ended = true,
                        _ => {}
                    }
                    conversation.actions.push(a);
                }
                BrainChunk::Analysis(a) => analysis.push(analysis_json(i, &a)),
                BrainChunk::Done => break,
                _ => {}
            }
        }
        answered += 1;
        let said = said.trim().to_string();
        if !said.is_empty() {
            conversation.turns.push(Turn {
                speaker: Speaker::Agent,
                text: said,
                at,
                interrupted: false,
            });
        }
        if ended {
            break;
        }
    }
    let insights = brain.insights(&conversation);
    Ok(ChatResult {
        transcript: conversation
            .turns
            .iter()
            .map(|t| ChatLine {
                speaker: speaker(t.speaker).into(),
                text: t.text.clone(),
            })
            .collect(),
        actions: conversation.actions.iter().map(action_json).collect(),
        analysis,
        insights: insights_json(&insights),
        ended,
        turns: answered,
    })
}

/// Build `agent`'s brain and talk to it, on a blocking thread (brains may
/// load models and think for a while).
pub async fn chat(
    state: &AppState,
    agent: ResolvedAgent,
    messages: Vec<String>,
) -> ApiResult<ChatResult> {
    check_messages(&messages)?;
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut brain = engine.brain(&agent).map_err(engine_error)?;
        run_text(brain.as_mut(), &agent.spec.name, &messages, TURN_TIMEOUT).map_err(ApiError::from)
    })
    .await
    .map_err(ApiError::internal)?
}

fn engine_error(e: EngineError) -> ApiError {
    ApiError::unavailable(format!("the agent's brain could not be started: {e}"))
}

/// An action as JSON.
pub fn action_json(a: &Action) -> Value {
    match a {
        Action::Transfer { target } => json!({"type": "transfer", "target": target}),
        Action::Hangup => json!({"type": "hangup"}),
        Action::SendDtmf { digits } => json!({"type": "send_dtmf", "digits": digits}),
        Action::SetVariable { name, value } => {
            json!({"type": "set_variable", "name": name, "value": value})
        }
        Action::Tool {
            name,
            arguments,
            ok,
        } => json!({"type": "tool", "name": name, "arguments": arguments, "ok": ok}),
        other => json!({"type": "other", "debug": format!("{other:?}")}),
    }
}

fn label(l: SentimentLabel) -> &'static str {
    match l {
        SentimentLabel::Negative => "negative",
        SentimentLabel::Neutral => "neutral",
        SentimentLabel::Positive => "positive",
    }
}

/// What the brain made of caller turn `turn` (0-based), as JSON.
pub fn analysis_json(turn: usize, a: &TurnAnalysis) -> Value {
    json!({
        "turn": turn,
        "intent": a.intent.as_ref().map(|m| json!({
            "intent": m.intent,
            "best": m.best,
            "confidence": m.confidence,
        })),
        "sentiment": {"score": a.sentiment.score, "label": label(a.sentiment.label)},
        "suggestions": a.suggestions,
    })
}

fn trace_json(t: &TraceStep) -> Value {
    json!({"turn": t.turn, "node": t.node, "event": t.event})
}

/// The insights as JSON.
pub fn insights_json(i: &CallInsights) -> Value {
    let outcome = match &i.outcome {
        Outcome::Completed => json!({"type": "completed"}),
        Outcome::Transferred { target } => json!({"type": "transferred", "target": target}),
        Outcome::CallerHungUp => json!({"type": "caller_hung_up"}),
        other => json!({"type": "other", "debug": format!("{other:?}")}),
    };
    json!({
        "outcome": outcome,
        "summary": i.summary,
        "intents": i.intents,
        "sentiment": i.sentiment,
        "sentiment_by_turn": i.sentiment_by_turn,
        "trace": i.trace.iter().map(trace_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use vocelio_pipelines::brain::flow::{templates, Flow, FlowBrain, FlowServices};
    use vocelio_pipelines::brain::ScriptedBrain;

    fn msgs(m: &[&str]) -> Vec<String> {
        m.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn collects_the_greeting_replies_and_actions_in_order() {
        let mut brain = ScriptedBrain::new("Sorry?")
            .with_greeting("Hello, Acme here.")
            .on("hours|open", "We are open nine to five.")
            .on_with(
                "name",
                "Noted.",
                vec![Action::SetVariable {
                    name: "name".into(),
                    value: "Ada".into(),
                }],
            )
            .on_with(
                "person",
                "Transferring you.",
                vec![Action::Transfer {
                    target: "queue:support".into(),
                }],
            );
        let r = run_text(
            &mut brain,
            "support",
            &msgs(&[
                "what are your hours",
                "my name is Ada",
                "DTMF 4 2",
                "a person please",
                "never sent",
            ]),
            TURN_TIMEOUT,
        )
        .unwrap();
        let lines: Vec<(&str, &str)> = r
            .transcript
            .iter()
            .map(|l| (l.speaker.as_str(), l.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            vec![
                ("agent", "Hello, Acme here."),
                ("caller", "what are your hours"),
                ("agent", "We are open nine to five."),
                ("caller", "my name is Ada"),
                ("agent", "Noted."),
                ("caller", "DTMF 42"),
                ("agent", "You pressed 42."),
                ("caller", "a person please"),
                ("agent", "Transferring you."),
            ]
        );
        assert_eq!(
            r.actions,
            vec![
                json!({"type": "set_variable", "name": "name", "value": "Ada"}),
                json!({"type": "transfer", "target": "queue:support"}),
            ]
        );
        assert!(r.ended);
        assert_eq!(r.turns, 4, "the message after the transfer is not sent");
        assert_eq!(brain.calls, 4);
        assert_eq!(
            brain.inputs[2],
            TurnInput::Dtmf {
                digits: "42".into(),
                at: MediaTime::from_micros(3 * TURN_SPACING_US)
            }
        );
        assert_eq!(r.insights["outcome"]["type"], "transferred");
        assert_eq!(r.insights["outcome"]["target"], "queue:support");
    }

    /// Answers the first turn, then keeps its sink and never finishes.
    struct Stalls(Vec<BrainSink>);
    impl Brain for Stalls {
        fn respond(&mut self, _c: &Conversation, _i: &TurnInput, out: BrainSink) {
            if self.0.is_empty() {
                out.text("first");
                out.done();
                self.0
                    .push(BrainSink::new(0, crossbeam_channel::unbounded().0));
            } else {
                out.text("half a");
                self.0.push(out);
            }
        }
    }

    /// Drops its sink without finishing.
    struct Drops;
    impl Brain for Drops {
        fn respond(&mut self, _c: &Conversation, _i: &TurnInput, out: BrainSink) {
            out.text("bye");
        }
    }

    #[test]
    fn a_reply_that_never_finishes_times_out_and_a_dropped_one_fails() {
        let e = run_text(
            &mut Stalls(Vec::new()),
            "a",
            &msgs(&["one", "two"]),
            Duration::from_millis(5),
        )
        .unwrap_err();
        assert_eq!(
            e,
            ChatError::Timeout {
                turn: 1,
                timeout_ms: 5
            }
        );
        let e = run_text(&mut Drops, "a", &msgs(&["one"]), TURN_TIMEOUT).unwrap_err();
        assert_eq!(e, ChatError::NoReply { turn: 0 });
        let api: ApiError = e.into();
        assert_eq!(api.status, axum::http::StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_flow_brain_reports_analysis_and_its_trace() {
        let json = templates()
            .into_iter()
            .find(|(n, _)| *n == "appointment_booking")
            .unwrap()
            .1;
        let flow = Arc::new(Flow::parse(json).unwrap());
        let mut brain = FlowBrain::new(flow, FlowServices::new());
        let greeting = brain.greeting().unwrap();
        let r = run_text(
            &mut brain,
            "booking",
            &msgs(&["I'd like to book a checkup"]),
            TURN_TIMEOUT,
        )
        .unwrap();
        assert_eq!(r.transcript[0].text, greeting);
        assert_eq!(r.transcript[1].speaker, "caller");
        assert_eq!(r.transcript[2].speaker, "agent");
        assert_eq!(r.analysis.len(), 1);
        assert_eq!(r.analysis[0]["turn"], 0);
        assert!(r.analysis[0]["sentiment"]["label"].is_string());
        let trace = r.insights["trace"].as_array().unwrap();
        assert!(!trace.is_empty(), "{}", r.insights);
        assert!(trace.iter().any(|s| s["turn"] == 1), "{}", r.insights);
    }

    #[test]
    fn dtmf_messages_become_keys_and_messages_are_checked() {
        assert_eq!(
            turn_input("DTMF 1 2 #", MediaTime::ZERO),
            TurnInput::Dtmf {
                digits: "12#".into(),
                at: MediaTime::ZERO
            }
        );
        assert!(matches!(
            turn_input("DTMF hello", MediaTime::ZERO),
            TurnInput::Speech { .. }
        ));
        assert!(check_messages(&msgs(&["hi"])).is_ok());
        let e = check_messages(&[]).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("messages"));
        let e = check_messages(&msgs(&["hi", "  "])).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("messages[1]"));
        let e = check_messages(&["x".repeat(MAX_MESSAGE_CHARS + 1)]).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("messages[0]"));
        assert!(check_messages(&vec!["a".to_string(); MAX_MESSAGES + 1]).is_err());
    }
}
