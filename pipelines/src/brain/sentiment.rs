//! Sentiment of a caller turn, and its trend over the call.

/// Negative, neutral or positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SentimentLabel {
    /// Unhappy, angry, frustrated.
    Negative,
    /// Neither.
    Neutral,
    /// Happy, grateful.
    Positive,
}

/// The sentiment of one piece of text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sentiment {
    /// -1 (very negative) ..= 1 (very positive).
    pub score: f32,
    /// The score's label.
    pub label: SentimentLabel,
}

/// Score `text`. (Stub until the sentiment module lands: always neutral.)
pub fn analyze(text: &str) -> Sentiment {
    let _ = text;
    Sentiment {
        score: 0.0,
        label: SentimentLabel::Neutral,
    }
}
