//! Knowledge base: documents chunked and embedded, top-k retrieval.

use std::fmt::Debug;

/// A source document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Document {
    /// Where it came from (file name, URL, title).
    pub source: String,
    /// Its text.
    pub text: String,
}

/// A retrieved passage.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    /// The document it came from.
    pub source: String,
    /// The passage.
    pub text: String,
    /// Similarity to the query, -1..=1.
    pub score: f32,
}

/// Finds passages relevant to a question.
pub trait Retriever: Send + Sync + Debug {
    /// The best `k` passages for `query`, best first.
    fn search(&self, query: &str, k: usize) -> Vec<Passage>;
}
