//! Intent classification by sentence embeddings.

use std::fmt::Debug;

/// An intent an agent or flow recognises.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IntentDef {
    /// Its name (`book_appointment`).
    pub name: String,
    /// A few example phrases.
    pub examples: Vec<String>,
}

/// The classification of one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentMatch {
    /// The intent, or `None` when nothing is confident enough (fallback).
    pub intent: Option<String>,
    /// The closest intent even when below the threshold.
    pub best: Option<String>,
    /// Confidence of `best`, 0..=1.
    pub confidence: f32,
}

/// Classifies caller turns against a fixed set of intents.
pub trait IntentClassify: Send + Sync + Debug {
    /// Classify `text`.
    fn classify(&self, text: &str) -> IntentMatch;
}
