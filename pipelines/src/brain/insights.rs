//! Per-turn analysis and the end-of-call insights.
//!
//! [`summarize`] turns a finished conversation into [`CallInsights`]: how it
//! ended, a short extractive summary, intents in order and caller sentiment
//! per turn. [`suggestions`] proposes up to three next lines for a
//! supervisor watching a live call; [`analyze_turn`] bundles them with the
//! turn's sentiment into a [`TurnAnalysis`].

use super::intents::IntentMatch;
use super::kb::{self, Retriever};
use super::sentiment::{self, Sentiment, SentimentLabel, SentimentTrack, Trend};
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

/// Insights from the conversation alone plus what the brain knows: the
/// intents it matched (in order of first appearance) and its trace.
///
/// The summary reads like "Caller asked about book appointment and opening
/// hours. Collected date=tuesday, time=10am. Called check_slots. Caller
/// sentiment negative, improving. Transferred to sales." and only states what
/// the conversation holds.
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
    let track = caller_sentiment(conversation);
    let mut seen: Vec<String> = Vec::new();
    for i in intents {
        if !seen.contains(i) {
            seen.push(i.clone());
        }
    }
    CallInsights {
        summary: summary_text(conversation, &seen, &track, &outcome),
        outcome,
        intents: seen,
        sentiment: track.mean(),
        sentiment_by_turn: track.scores().to_vec(),
        trace,
    }
}

/// Words of the summary's first caller turn when no intent was matched.
const GIST_WORDS: usize = 12;

fn summary_text(
    conversation: &Conversation,
    intents: &[String],
    track: &SentimentTrack,
    outcome: &Outcome,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !intents.is_empty() {
        let names: Vec<String> = intents.iter().map(|i| humanize(i)).collect();
        parts.push(format!("Caller asked about {}.", join_and(&names)));
    } else if let Some(first) = conversation
        .turns
        .iter()
        .find(|t| t.speaker == Speaker::Caller && !t.text.trim().is_empty())
    {
        let words: Vec<&str> = first.text.split_whitespace().collect();
        let gist = words[..words.len().min(GIST_WORDS)].join(" ");
        let more = if words.len() > GIST_WORDS { "..." } else { "" };
        parts.push(format!("Caller said: \"{gist}{more}\"."));
    } else {
        parts.push("Caller said nothing.".to_string());
    }
    // Each variable once, with its last value, in order of first setting.
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in &conversation.variables {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    if !names.is_empty() {
        let pairs: Vec<String> = names
            .iter()
            .map(|n| format!("{n}={}", conversation.variable(n).unwrap_or_default()))
            .collect();
        parts.push(format!("Collected {}.", pairs.join(", ")));
    }
    let tools: Vec<String> = conversation
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Tool { name, ok: true, .. } => Some(name.clone()),
            Action::Tool {
                name, ok: false, ..
            } => Some(format!("{name} (failed)")),
            _ => None,
        })
        .collect();
    if !tools.is_empty() {
        parts.push(format!("Called {}.", tools.join(", ")));
    }
    if !track.scores().is_empty() {
        let mood = match SentimentLabel::of(track.mean()) {
            SentimentLabel::Negative => "negative",
            SentimentLabel::Neutral => "neutral",
            SentimentLabel::Positive => "positive",
        };
        let trend = match track.trend() {
            Trend::Improving => ", improving",
            Trend::Worsening => ", worsening",
            Trend::Steady => "",
        };
        parts.push(format!("Caller sentiment {mood}{trend}."));
    }
    parts.push(match outcome {
        Outcome::Transferred { target } => format!("Transferred to {target}."),
        Outcome::Completed => "The agent ended the call.".to_string(),
        Outcome::CallerHungUp => "The caller hung up.".to_string(),
    });
    parts.join(" ")
}

/// `book_appointment` -> "book appointment".
fn humanize(name: &str) -> String {
    name.split(['_', '-'])
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// "a", "a and b", "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Lowest knowledge-base score worth showing a supervisor.
pub const SUGGEST_MIN_KB_SCORE: f32 = 0.35;
/// Most suggestions returned.
pub const MAX_SUGGESTIONS: usize = 3;

/// Up to three suggested next lines for a supervisor watching the call, most
/// useful first:
///
/// - an empathy line when `last_text` (the caller's newest turn, which
///   `conversation` need not hold yet) is negative;
/// - the first sentence of the best knowledge-base passage for `last_text`,
///   when it scores at least [`SUGGEST_MIN_KB_SCORE`];
/// - a clarifying question when the intent fell back (naming the closest
///   intent when there is one);
/// - an offer to hand over to a person when the caller's mood is worsening;
/// - an acknowledgement of a matched intent.
pub fn suggestions(
    conversation: &Conversation,
    intent: Option<&IntentMatch>,
    kb: Option<&dyn Retriever>,
    last_text: &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let now = sentiment::analyze(last_text);
    if now.label == SentimentLabel::Negative {
        out.push(
            "I'm sorry about that, I understand how frustrating it is. Let's get it sorted."
                .to_string(),
        );
    }
    if let Some(kb) = kb.filter(|_| !last_text.trim().is_empty()) {
        if let Some(best) = kb::min_score(kb.search(last_text, 1), SUGGEST_MIN_KB_SCORE).first() {
            let first = kb::first_sentence(&best.text);
            if !first.is_empty() {
                out.push(first.to_string());
            }
        }
    }
    match intent {
        Some(IntentMatch {
            intent: None,
            best: Some(best),
            ..
        }) => out.push(format!("Just to check, is this about {}?", humanize(best))),
        Some(IntentMatch { intent: None, .. }) => {
            out.push("Could you tell me a bit more about what you need?".to_string())
        }
        _ => {}
    }
    let mut track = caller_sentiment(conversation);
    track.push(now.score);
    if track.trend() == Trend::Worsening && now.score < 0.0 {
        out.push("Would you like me to put you through to a colleague?".to_string());
    }
    if let Some(IntentMatch {
        intent: Some(name), ..
    }) = intent
    {
        out.push(format!("Sure, I can help with {}.", humanize(name)));
    }
    let mut unique: Vec<String> = Vec::new();
    for s in out {
        if !unique.contains(&s) {
            unique.push(s);
        }
    }
    unique.truncate(MAX_SUGGESTIONS);
    unique
}

/// What a brain reports for a caller turn: the intent it matched, the
/// turn's sentiment and [`suggestions`].
pub fn analyze_turn(
    conversation: &Conversation,
    intent: Option<IntentMatch>,
    kb: Option<&dyn Retriever>,
    text: &str,
) -> TurnAnalysis {
    let suggestions = suggestions(conversation, intent.as_ref(), kb, text);
    TurnAnalysis {
        intent,
        sentiment: sentiment::analyze(text),
        suggestions,
    }
}

/// The caller's sentiment, turn by turn.
fn caller_sentiment(conversation: &Conversation) -> SentimentTrack {
    let mut track = SentimentTrack::new();
    for t in conversation
        .turns
        .iter()
        .filter(|t| t.speaker == Speaker::Caller)
    {
        track.push_text(&t.text);
    }
    track
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brain::kb::Passage;
    use crate::brain::Turn;
    use vocelio_codecs::MediaTime;

    fn conv(caller: &[&str]) -> Conversation {
        let mut c = Conversation::default();
        for t in caller {
            c.turns.push(Turn {
                speaker: Speaker::Agent,
                text: "How can I help?".into(),
                at: MediaTime::ZERO,
                interrupted: false,
            });
            c.turns.push(Turn {
                speaker: Speaker::Caller,
                text: (*t).into(),
                at: MediaTime::ZERO,
                interrupted: false,
            });
        }
        c
    }

    /// A retriever answering every query with fixed passages.
    #[derive(Debug)]
    struct Fixed(Vec<Passage>);

    impl Retriever for Fixed {
        fn search(&self, _query: &str, k: usize) -> Vec<Passage> {
            self.0.iter().take(k).cloned().collect()
        }
    }

    fn matched(name: &str) -> IntentMatch {
        IntentMatch {
            intent: Some(name.into()),
            best: Some(name.into()),
            confidence: 0.8,
        }
    }

    #[test]
    fn summary_of_a_transferred_call() {
        let mut c = conv(&[
            "i want to book a cleaning",
            "this is ridiculous i've been waiting for weeks",
            "ok thanks",
        ]);
        c.variables.push(("date".into(), "monday".into()));
        c.variables.push(("time".into(), "9am".into()));
        c.variables.push(("date".into(), "tuesday".into()));
        c.actions.push(Action::Tool {
            name: "check_slots".into(),
            arguments: "{}".into(),
            ok: true,
        });
        c.actions.push(Action::Tool {
            name: "crm".into(),
            arguments: "{}".into(),
            ok: false,
        });
        c.actions.push(Action::Transfer {
            target: "sales".into(),
        });
        let intents = [
            "book_appointment".to_string(),
            "complaint".to_string(),
            "book_appointment".to_string(),
        ];
        let i = summarize(&c, &intents, Vec::new());
        assert_eq!(
            i.outcome,
            Outcome::Transferred {
                target: "sales".into()
            }
        );
        assert_eq!(i.intents, ["book_appointment", "complaint"]);
        assert_eq!(i.sentiment_by_turn.len(), 3);
        assert!(i.sentiment_by_turn[1] < 0.0 && i.sentiment_by_turn[2] > 0.0);
        let mean = i.sentiment_by_turn.iter().sum::<f32>() / 3.0;
        assert!((i.sentiment - mean).abs() < 1e-6);
        assert_eq!(
            i.summary,
            "Caller asked about book appointment and complaint. \
             Collected date=tuesday, time=9am. Called check_slots, crm (failed). \
             Caller sentiment neutral, improving. Transferred to sales."
        );
    }

    #[test]
    fn summary_without_intents_quotes_the_caller() {
        let c = conv(&["hello is this the number for the dentist on harbour street please"]);
        let i = summarize(&c, &[], Vec::new());
        assert_eq!(i.outcome, Outcome::CallerHungUp);
        assert!(
            i.summary.starts_with(
                "Caller said: \"hello is this the number for the dentist on harbour street please\"."
            ),
            "{}",
            i.summary
        );
        let empty = summarize(&Conversation::default(), &[], Vec::new());
        assert_eq!(empty.summary, "Caller said nothing. The caller hung up.");
        assert_eq!(empty.sentiment, 0.0);
        let mut done = Conversation::default();
        done.actions.push(Action::Hangup);
        assert_eq!(
            summarize(&done, &[], Vec::new()).outcome,
            Outcome::Completed
        );
    }

    #[test]
    fn suggestions_for_an_upset_caller_with_a_kb_answer() {
        let kb = Fixed(vec![Passage {
            source: "faq.md".into(),
            text: "Late cancellations are charged 30 euros. Moving is free.".into(),
            score: 0.6,
        }]);
        let c = conv(&["hi i have a question", "why was i charged"]);
        let s = suggestions(
            &c,
            Some(&matched("billing_question")),
            Some(&kb),
            "this is ridiculous you charged me thirty euros",
        );
        assert_eq!(s.len(), 3, "{s:?}");
        assert!(s[0].starts_with("I'm sorry"), "{s:?}");
        assert_eq!(s[1], "Late cancellations are charged 30 euros.");
        assert!(
            s[2].contains("colleague") || s[2].contains("billing question"),
            "{s:?}"
        );
    }

    #[test]
    fn suggestions_on_fallback_and_weak_kb_hits() {
        let weak = Fixed(vec![Passage {
            source: "faq.md".into(),
            text: "Unrelated.".into(),
            score: 0.1,
        }]);
        let fallback = IntentMatch {
            intent: None,
            best: Some("opening_hours".into()),
            confidence: 0.2,
        };
        let s = suggestions(
            &conv(&[]),
            Some(&fallback),
            Some(&weak),
            "what about the thing",
        );
        assert_eq!(s, ["Just to check, is this about opening hours?"]);
        let none = IntentMatch {
            intent: None,
            best: None,
            confidence: 0.0,
        };
        let s = suggestions(&conv(&[]), Some(&none), None, "hmm");
        assert_eq!(s, ["Could you tell me a bit more about what you need?"]);
        assert!(suggestions(&conv(&[]), None, None, "").is_empty());
    }

    #[test]
    fn analyze_turn_bundles() {
        let a = analyze_turn(
            &conv(&[]),
            Some(matched("cancel_appointment")),
            None,
            "thanks so much",
        );
        assert_eq!(a.sentiment.label, SentimentLabel::Positive);
        assert_eq!(a.suggestions, ["Sure, I can help with cancel appointment."]);
        assert_eq!(a.intent, Some(matched("cancel_appointment")));
    }

    #[test]
    fn names_and_lists_read_well() {
        assert_eq!(humanize("speak_to-human"), "speak to human");
        assert_eq!(join_and(&[]), "");
        assert_eq!(join_and(&["a".into()]), "a");
        assert_eq!(
            join_and(&["a".into(), "b".into(), "c".into()]),
            "a, b and c"
        );
    }
}
