//! Sentiment of a caller turn, and its trend over the call.
//!
//! [`analyze`] is a pure function over a small hand-made lexicon tuned for
//! phone transcripts: lower case, no punctuation, call-center vocabulary
//! ("on hold", "fed up", "sorted", "no problem"). Each sentiment word or
//! phrase has a valence; a negator shortly before it ("not", "never",
//! "don't") flips and damps it; an intensifier ("really", "so") scales it
//! up and a softener ("a bit") down; after a contrast ("but", "however")
//! the words weigh more and those before it less. The sum is squashed to
//! -1..=1.
//!
//! [`SentimentTrack`] follows the per-turn scores of a call: their mean and
//! whether the caller is getting happier or angrier (the least-squares slope
//! over the last few turns).

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

/// Scores at or above this are [`SentimentLabel::Positive`].
pub const POSITIVE_AT: f32 = 0.25;
/// Scores at or below this are [`SentimentLabel::Negative`].
pub const NEGATIVE_AT: f32 = -0.25;

impl SentimentLabel {
    /// The label of `score` (see [`POSITIVE_AT`] and [`NEGATIVE_AT`]).
    pub fn of(score: f32) -> Self {
        if score >= POSITIVE_AT {
            SentimentLabel::Positive
        } else if score <= NEGATIVE_AT {
            SentimentLabel::Negative
        } else {
            SentimentLabel::Neutral
        }
    }
}

/// Multi-word entries first: they are matched before single words.
const PHRASES: &[(&[&str], f32)] = &[
    (&["thank", "you"], 2.0),
    (&["fed", "up"], -2.5),
    (&["on", "hold"], -1.5),
    (&["hung", "up"], -2.0),
    (&["killing", "me"], -2.0),
    (&["waste", "of", "time"], -2.5),
    (&["sick", "of"], -2.0),
    (&["tired", "of"], -1.5),
    (&["get", "anything", "right"], 1.5),
    (&["get", "it", "right"], 1.5),
    (&["well", "done"], 2.0),
    (&["no", "problem"], 1.5),
    (&["no", "worries"], 1.5),
    (&["all", "good"], 1.5),
    (&["sorted", "out"], 1.5),
    (&["makes", "sense"], 1.0),
    (&["let", "down"], -2.0),
    // "like" alone is mostly "i'd like to": only its negation counts.
    (&["don't", "like"], -2.0),
    (&["didn't", "like"], -2.0),
];

/// Single words and their valence, -3..=3.
const WORDS: &[(&str, f32)] = &[
    // Positive.
    ("thanks", 2.0),
    ("thank", 1.5),
    ("great", 2.5),
    ("good", 1.5),
    ("perfect", 2.5),
    ("perfectly", 2.0),
    ("excellent", 3.0),
    ("wonderful", 3.0),
    ("awesome", 3.0),
    ("amazing", 3.0),
    ("fantastic", 3.0),
    ("brilliant", 2.5),
    ("lovely", 2.5),
    ("nice", 1.5),
    ("happy", 2.0),
    ("glad", 2.0),
    ("pleased", 2.0),
    ("appreciate", 2.0),
    ("appreciated", 2.0),
    ("helpful", 2.0),
    ("kind", 1.5),
    ("love", 2.5),
    ("sorted", 1.5),
    ("resolved", 1.5),
    ("fixed", 1.0),
    ("quick", 1.0),
    ("quickly", 1.0),
    ("easy", 1.0),
    ("friendly", 2.0),
    ("cheers", 1.5),
    ("fine", 0.5),
    // Negative.
    ("bad", -2.0),
    ("terrible", -3.0),
    ("awful", -3.0),
    ("horrible", -3.0),
    ("worst", -3.0),
    ("ridiculous", -2.5),
    ("unacceptable", -3.0),
    ("useless", -2.5),
    ("rude", -2.5),
    ("angry", -3.0),
    ("furious", -3.0),
    ("annoyed", -2.0),
    ("annoying", -2.0),
    ("frustrated", -2.5),
    ("frustrating", -2.5),
    ("upset", -2.0),
    ("disappointed", -2.5),
    ("disappointing", -2.5),
    ("unhappy", -2.5),
    ("hate", -3.0),
    ("complaint", -1.5),
    ("complain", -1.5),
    ("problem", -1.5),
    ("problems", -1.5),
    ("wrong", -1.5),
    ("mistake", -1.5),
    ("broken", -1.5),
    ("pain", -1.5),
    ("hurts", -1.5),
    ("worse", -2.0),
    ("waiting", -1.0),
    ("waited", -1.0),
    ("ignored", -2.0),
    ("nobody", -1.0),
    ("never", -1.0),
    ("lost", -1.0),
    ("mess", -2.0),
    ("joke", -1.0),
    ("sorry", -0.5),
    ("unfortunately", -1.0),
    ("confusing", -1.5),
    ("confused", -1.0),
    ("stupid", -2.5),
    ("nightmare", -3.0),
    ("shocking", -2.5),
    ("poor", -2.0),
    ("slow", -1.0),
];

/// Words that flip the sentiment of what follows them.
const NEGATORS: &[&str] = &[
    "not", "no", "never", "don't", "dont", "doesn't", "doesnt", "didn't", "didnt", "isn't", "isnt",
    "wasn't", "wasnt", "aren't", "arent", "weren't", "werent", "can't", "cant", "cannot", "won't",
    "wont", "wouldn't", "wouldnt", "hardly", "nothing", "neither", "nor", "without",
];

/// Words that scale up the next sentiment word.
const INTENSIFIERS: &[(&str, f32)] = &[
    ("really", 1.5),
    ("so", 1.5),
    ("very", 1.5),
    ("extremely", 1.8),
    ("incredibly", 1.8),
    ("absolutely", 1.6),
    ("totally", 1.5),
    ("completely", 1.5),
    ("super", 1.5),
    ("too", 1.3),
    ("most", 1.3),
    ("such", 1.4),
    ("truly", 1.5),
    ("bit", 0.6),
    ("slightly", 0.6),
    ("somewhat", 0.6),
    ("fairly", 0.8),
    ("little", 0.7),
];

/// Words after which the sentence turns.
const CONTRASTS: &[&str] = &["but", "however", "although", "though", "yet"];

/// How far back (in words) a negator reaches.
const NEGATION_WINDOW: usize = 3;
/// A negated valence keeps this much of its size ("not great" is milder
/// than "terrible").
const NEGATION_DAMPING: f32 = 0.75;
/// Weight of what comes after a contrast word, and before it.
const AFTER_CONTRAST: f32 = 1.5;
const BEFORE_CONTRAST: f32 = 0.5;
/// The sum of valences that maps to a score of tanh(1) (about 0.76).
const SCALE: f32 = 3.0;

/// Score `text`: see the module docs. Pure, allocation-light, never fails.
pub fn analyze(text: &str) -> Sentiment {
    let normalised = super::normalise(text);
    let words: Vec<&str> = normalised.split(' ').filter(|w| !w.is_empty()).collect();
    // (position, valence) of each sentiment word or phrase found.
    let mut hits: Vec<(usize, f32)> = Vec::new();
    let mut contrast_at: Option<usize> = None;
    let mut i = 0;
    while i < words.len() {
        if CONTRASTS.contains(&words[i]) {
            contrast_at = Some(i);
            i += 1;
            continue;
        }
        let phrase = PHRASES
            .iter()
            .find(|(p, _)| words[i..].starts_with(p))
            .map(|(p, v)| (p.len(), *v));
        let (len, valence) = match phrase {
            Some(hit) => hit,
            None => match WORDS.iter().find(|(w, _)| *w == words[i]) {
                Some((_, v)) => (1, *v),
                None => {
                    i += 1;
                    continue;
                }
            },
        };
        hits.push((i, modified(&words, i, valence)));
        i += len;
    }
    let sum: f32 = hits
        .iter()
        .map(|&(pos, v)| match contrast_at {
            Some(c) if pos > c => v * AFTER_CONTRAST,
            Some(_) => v * BEFORE_CONTRAST,
            None => v,
        })
        .sum();
    let score = (sum / SCALE).tanh();
    Sentiment {
        score,
        label: SentimentLabel::of(score),
    }
}

/// The valence of the word at `at`, after the negators and intensifiers
/// just before it (stopping at a contrast or another sentiment word).
fn modified(words: &[&str], at: usize, valence: f32) -> f32 {
    let mut v = valence;
    let start = at.saturating_sub(NEGATION_WINDOW);
    let mut negated = false;
    for j in (start..at).rev() {
        let w = words[j];
        if CONTRASTS.contains(&w) {
            break;
        }
        if NEGATORS.contains(&w) {
            // "no" right before a noun phrase like "no problem" is handled
            // by the phrase table. Further away it is usually an answer
            // ("no that's all thanks"), not a negation: only the word right
            // after it is negated ("no good").
            if w == "no" && j + 1 != at {
                continue;
            }
            negated = !negated;
        } else if let Some((_, k)) = INTENSIFIERS.iter().find(|(i, _)| *i == w) {
            // Only the intensifier right before the word (or before "not").
            if j + 1 == at || (j + 2 == at && NEGATORS.contains(&words[at - 1])) {
                v *= k;
            }
        } else if WORDS.iter().any(|(s, _)| *s == w) {
            break;
        }
    }
    if negated {
        -v * NEGATION_DAMPING
    } else {
        v
    }
}

/// Whether a call's sentiment is getting better or worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trend {
    /// Scores are rising.
    Improving,
    /// No clear direction (or too few turns).
    Steady,
    /// Scores are falling.
    Worsening,
}

/// Per-turn sentiment of one call, with its mean and trend.
#[derive(Debug, Clone, PartialEq)]
pub struct SentimentTrack {
    scores: Vec<f32>,
    window: usize,
    min_slope: f32,
}

impl Default for SentimentTrack {
    fn default() -> Self {
        Self::new()
    }
}

impl SentimentTrack {
    /// A track whose trend looks at the last 4 turns and calls a slope of
    /// 0.1 per turn a direction.
    pub fn new() -> Self {
        Self::with_window(4, 0.1)
    }

    /// A track whose trend looks at the last `window` turns (at least 2) and
    /// needs a slope of at least `min_slope` per turn to call a direction.
    pub fn with_window(window: usize, min_slope: f32) -> Self {
        SentimentTrack {
            scores: Vec::new(),
            window: window.max(2),
            min_slope: min_slope.abs(),
        }
    }

    /// Add a turn's score (clamped to -1..=1; NaN counts as 0).
    pub fn push(&mut self, score: f32) {
        let s = if score.is_nan() {
            0.0
        } else {
            score.clamp(-1.0, 1.0)
        };
        self.scores.push(s);
    }

    /// Score `text` with [`analyze`] and add it.
    pub fn push_text(&mut self, text: &str) -> Sentiment {
        let s = analyze(text);
        self.push(s.score);
        s
    }

    /// The scores so far, in order.
    pub fn scores(&self) -> &[f32] {
        &self.scores
    }

    /// The last score.
    pub fn last(&self) -> Option<f32> {
        self.scores.last().copied()
    }

    /// Mean of all scores (0 with none).
    pub fn mean(&self) -> f32 {
        if self.scores.is_empty() {
            0.0
        } else {
            self.scores.iter().sum::<f32>() / self.scores.len() as f32
        }
    }

    /// Least-squares slope of the last `window` scores, per turn (0 with
    /// fewer than two).
    pub fn slope(&self) -> f32 {
        let recent = &self.scores[self.scores.len().saturating_sub(self.window)..];
        let n = recent.len();
        if n < 2 {
            return 0.0;
        }
        let mean_x = (n - 1) as f32 / 2.0;
        let mean_y = recent.iter().sum::<f32>() / n as f32;
        let (mut num, mut den) = (0.0, 0.0);
        for (x, y) in recent.iter().enumerate() {
            let dx = x as f32 - mean_x;
            num += dx * (y - mean_y);
            den += dx * dx;
        }
        num / den
    }

    /// The direction of the recent scores.
    pub fn trend(&self) -> Trend {
        let s = self.slope();
        if s >= self.min_slope && s > 0.0 {
            Trend::Improving
        } else if s <= -self.min_slope && s < 0.0 {
            Trend::Worsening
        } else {
            Trend::Steady
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(t: &str) -> f32 {
        analyze(t).score
    }

    #[test]
    fn plain_words() {
        assert_eq!(analyze("thank you").label, SentimentLabel::Positive);
        assert_eq!(analyze("this is terrible").label, SentimentLabel::Negative);
        assert_eq!(analyze("tuesday at ten").label, SentimentLabel::Neutral);
        assert_eq!(score(""), 0.0);
        assert!((-1.0..=1.0).contains(&score(&"awful ".repeat(500))));
    }

    #[test]
    fn negation_flips_and_damps() {
        assert!(score("i am happy") > 0.3);
        assert!(score("i am not happy") < -0.3);
        assert!(score("i'm not happy") < -0.3);
        assert!(score("not bad") > 0.25);
        assert!(score("not great") > score("terrible"), "damped");
        assert!(score("no problem") > 0.25);
        // A negator too far back does not reach.
        assert!(score("not that i would say i am happy") > 0.3);
        // "no" answering a question is not a negation of what follows
        // (a support flow took this for an upset caller).
        assert_ne!(
            analyze("no that's all thanks bye").label,
            SentimentLabel::Negative
        );
        assert_ne!(
            analyze("no i'm good thanks").label,
            SentimentLabel::Negative
        );
        assert_eq!(analyze("no good at all").label, SentimentLabel::Negative);
    }

    #[test]
    fn intensifiers_scale() {
        assert!(score("really good") > score("good"));
        assert!(score("so rude") < score("rude"));
        assert!(score("a bit annoyed") > score("annoyed"));
        assert!(score("really not happy") < score("not happy"));
    }

    #[test]
    fn contrast_weighs_what_follows() {
        assert!(score("thanks but this is useless") < -0.25);
        assert!(score("it was slow but you were helpful") > 0.25);
    }

    #[test]
    fn punctuation_and_case_do_not_matter() {
        assert_eq!(score("I'm NOT happy!"), score("i'm not happy"));
    }

    #[test]
    fn track_mean_and_trend() {
        let mut t = SentimentTrack::new();
        assert_eq!(t.trend(), Trend::Steady);
        assert_eq!(t.mean(), 0.0);
        for s in [-0.8, -0.5, -0.1, 0.4] {
            t.push(s);
        }
        assert_eq!(t.trend(), Trend::Improving);
        assert!((t.mean() - (-0.25)).abs() < 1e-6);
        for s in [0.2, -0.3, -0.6, -0.9] {
            t.push(s);
        }
        assert_eq!(t.trend(), Trend::Worsening, "only the last 4 count");
        let mut flat = SentimentTrack::new();
        for s in [0.1, 0.0, 0.1, 0.0] {
            flat.push(s);
        }
        assert_eq!(flat.trend(), Trend::Steady);
        flat.push(f32::NAN);
        flat.push(5.0);
        assert_eq!(flat.scores()[4..], [0.0, 1.0]);
        let s = flat.push_text("this is ridiculous");
        assert_eq!(s.label, SentimentLabel::Negative);
        assert_eq!(flat.last(), Some(s.score));
    }
}
