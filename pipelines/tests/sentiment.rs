//! The lexicon sentiment scorer on labelled caller turns
//! (`fixtures/brain/sentiment.json`).

use std::path::PathBuf;

use vocelio_pipelines::brain::sentiment::{analyze, SentimentLabel, SentimentTrack, Trend};

#[derive(Debug, serde::Deserialize)]
struct Phrase {
    text: String,
    label: String,
}

#[derive(Debug, serde::Deserialize)]
struct Fixture {
    phrases: Vec<Phrase>,
    heldout: Vec<Phrase>,
}

fn label(name: &str) -> SentimentLabel {
    match name {
        "positive" => SentimentLabel::Positive,
        "negative" => SentimentLabel::Negative,
        "neutral" => SentimentLabel::Neutral,
        other => panic!("unknown label {other:?} in fixture"),
    }
}

fn accuracy(name: &str, phrases: &[Phrase]) -> f32 {
    let mut right = 0;
    for p in phrases {
        let s = analyze(&p.text);
        if s.label == label(&p.label) {
            right += 1;
        } else {
            println!(
                "  {name} miss {:?}: expected {}, got {:?} ({:.2})",
                p.text, p.label, s.label, s.score
            );
        }
    }
    let acc = right as f32 / phrases.len() as f32;
    println!(
        "{name} sentiment accuracy {acc:.3} ({right}/{})",
        phrases.len()
    );
    acc
}

#[test]
fn sentiment_accuracy_on_labelled_turns() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/brain/sentiment.json");
    let f: Fixture = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(f.phrases.len() + f.heldout.len() >= 50);
    let seen = accuracy("lexicon-dev", &f.phrases);
    let heldout = accuracy("held-out", &f.heldout);
    let all: Vec<Phrase> = f.phrases.into_iter().chain(f.heldout).collect();
    let total = accuracy("all", &all);
    assert!(seen >= 0.85, "sentiment accuracy {seen:.3} < 0.85");
    assert!(
        heldout >= 0.75,
        "held-out sentiment accuracy {heldout:.3} < 0.75"
    );
    assert!(total >= 0.85, "sentiment accuracy {total:.3} < 0.85");
}

#[test]
fn a_call_that_turns_around() {
    let mut t = SentimentTrack::new();
    for turn in [
        "this is ridiculous i've been on hold for an hour",
        "i'm really not happy with the service",
        "ok tuesday at ten",
        "great thank you so much",
    ] {
        t.push_text(turn);
    }
    assert_eq!(t.trend(), Trend::Improving, "{:?}", t.scores());
    let mut t = SentimentTrack::new();
    for turn in [
        "hi thanks for picking up",
        "i'd like to check my bill",
        "that's not right",
        "this is unacceptable i want a refund",
    ] {
        t.push_text(turn);
    }
    assert_eq!(t.trend(), Trend::Worsening, "{:?}", t.scores());
    assert!(t.mean() < 0.0);
}
