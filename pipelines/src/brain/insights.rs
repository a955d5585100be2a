//! Per-turn analysis and the end-of-call insights.

use super::intents::IntentMatch;
use super::sentiment::{self, Sentiment};
use super::{Action, Conversation, Speaker};

/// What a brain made of one caller turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnAnalysis {
    /// The intent matched, if the brain classifies intents.
    pub intent: Option<IntentMatch>,
    /// The turn's sentiment.
    pub sentiment: Sentiment,
    /// Suggested next lines for a supervisor watching the call.
    pub suggestions: Vec<String>,
}

/// One step of a brain's execution trace (flows: node entered, branch taken).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceStep {
    /// The caller turn it happened in (0 = before the first).
    pub turn: u32,
    /// The node.
    pub node: String,
    /// What happened there.
    pub event: String,
}

/// How the call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The agent ended it.
    Completed,
    /// Handed to a person or another number.
    Transferred {
        /// Where.
        target: String,
    },
    /// The caller hung up.
    CallerHungUp,
}

/// What the call came to.
#[derive(Debug, Clone, PartialEq)]
pub struct CallInsights {
    /// How it ended.
    pub outcome: Outcome,
    /// A short summary.
    pub summary: String,
    /// Intents seen, in order of first appearance.
    pub intents: Vec<String>,
    /// Mean sentiment of the caller's turns.
    pub sentiment: f32,
    /// Caller sentiment per turn, in order.
    pub sentiment_by_turn: Vec<f32>,
    /// The execution trace, when the brain keeps one.
    pub trace: Vec<TraceStep>,
}

/// Insights from the conversation alone plus what the brain knows.
/// (Stub until the insights module lands.)
pub fn summarize(
    conversation: &Conversation,
    intents: &[String],
    trace: Vec<TraceStep>,
) -> CallInsights {
    let outcome = conversation
        .actions
        .iter()
        .find_map(|a| match a {
            Action::Transfer { target } => Some(Outcome::Transferred {
                target: target.clone(),
            }),
            Action::Hangup => Some(Outcome::Completed),
            _ => None,
        })
        .unwrap_or(Outcome::CallerHungUp);
    let by_turn: Vec<f32> = conversation
        .turns
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
        .map(|t| sentiment::analyze(&t.text).score)
        .collect();
    let mean = if by_turn.is_empty() {
        0.0
    } else {
        by_turn.iter().sum::<f32>() / by_turn.len() as f32
    };
    CallInsights {
        outcome,
        summary: String::new(),
        intents: intents.to_vec(),
        sentiment: mean,
        sentiment_by_turn: by_turn,
        trace,
    }
}
