//! Sentence embeddings and intent classification on the real MiniLM model,
//! scored against the labelled caller turns in `fixtures/brain/intents.json`.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use vocelio_pipelines::brain::embed::{cosine, Embedder, DIM};
use vocelio_pipelines::brain::intents::{
    IntentClassifier, IntentClassify, IntentConfig, IntentDef, Scoring,
};
use vocelio_pipelines::models::test_model_dir;

fn embedder() -> Arc<Embedder> {
    static E: OnceLock<Arc<Embedder>> = OnceLock::new();
    E.get_or_init(|| {
        Arc::new(Embedder::load(&test_model_dir()).expect("MiniLM model (run scripts/setup.sh)"))
    })
    .clone()
}

#[derive(Debug, serde::Deserialize)]
struct Labelled {
    text: String,
    intent: Option<String>,
}

#[derive(Debug, serde::Deserialize)]
struct Fixture {
    intents: Vec<IntentDef>,
    dev: Vec<Labelled>,
    test: Vec<Labelled>,
}

#[derive(Debug, serde::Deserialize)]
struct Holdout {
    holdout: Vec<Labelled>,
}

/// Caller turns written before any tuning and only ever scored.
fn holdout() -> Vec<Labelled> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/brain/intents_holdout.json");
    let text = std::fs::read_to_string(&path).expect("intents holdout fixture");
    let h: Holdout = serde_json::from_str(&text).expect("intents holdout fixture parses");
    h.holdout
}

fn fixture() -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/brain/intents.json");
    let text = std::fs::read_to_string(&path).expect("intents fixture");
    serde_json::from_str(&text).expect("intents fixture parses")
}

/// (accuracy, fallback precision, fallback recall, wrong cases).
fn score<'a>(
    c: &IntentClassifier,
    set: impl IntoIterator<Item = &'a Labelled>,
) -> (f32, f32, f32, Vec<String>) {
    let set: Vec<&Labelled> = set.into_iter().collect();
    score_all(c, &set)
}

fn score_all(c: &IntentClassifier, set: &[&Labelled]) -> (f32, f32, f32, Vec<String>) {
    let mut right = 0;
    let (mut fb_said, mut fb_right, mut fb_expected) = (0, 0, 0);
    let mut wrong = Vec::new();
    for u in set {
        let m = c.classify(&u.text);
        if m.intent == u.intent {
            right += 1;
        } else {
            wrong.push(format!(
                "{:?}: expected {:?}, got {:?} (best {:?} {:.2})",
                u.text, u.intent, m.intent, m.best, m.confidence
            ));
        }
        if m.intent.is_none() {
            fb_said += 1;
        }
        if u.intent.is_none() {
            fb_expected += 1;
            if m.intent.is_none() {
                fb_right += 1;
            }
        }
    }
    let ratio = |a: i32, b: i32| if b == 0 { 1.0 } else { a as f32 / b as f32 };
    (
        ratio(right, set.len() as i32),
        ratio(fb_right, fb_said),
        ratio(fb_right, fb_expected),
        wrong,
    )
}

/// Misses per (expected -> got) pair, most frequent first.
fn print_confusion(name: &str, c: &IntentClassifier, set: &[Labelled]) {
    let mut pairs: std::collections::BTreeMap<(String, String), usize> = Default::default();
    for u in set {
        let got = c.classify(&u.text).intent;
        if got != u.intent {
            let label = |i: &Option<String>| i.clone().unwrap_or_else(|| "(fallback)".into());
            *pairs.entry((label(&u.intent), label(&got))).or_default() += 1;
        }
    }
    let mut pairs: Vec<_> = pairs.into_iter().collect();
    pairs.sort_by_key(|p| std::cmp::Reverse(p.1));
    for ((want, got), n) in pairs {
        println!("  {name} confusion {want} -> {got}: {n}");
    }
}

#[test]
fn embeddings_are_unit_length_and_similar_sentences_are_closer() {
    let e = embedder();
    let a = e.embed("I'd like to book an appointment").unwrap();
    let b = e.embed("can I schedule a visit with the dentist").unwrap();
    let c = e.embed("the weather is lovely at the beach today").unwrap();
    assert_eq!(a.len(), DIM);
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    let (near, far) = (cosine(&a, &b), cosine(&a, &c));
    println!("similar {near:.3}, unrelated {far:.3}");
    assert!(near > far + 0.3, "similar {near} vs unrelated {far}");

    // Batching pads to the longest member; padding must not change results.
    let batch = e
        .embed_batch(&[
            "I'd like to book an appointment",
            "the weather is lovely at the beach today and I am going swimming",
        ])
        .unwrap();
    assert!(cosine(&batch[0], &a) > 0.999, "{}", cosine(&batch[0], &a));
    assert!(e.embed_batch::<&str>(&[]).unwrap().is_empty());
    // Empty and very long input do not fail.
    assert_eq!(e.embed("").unwrap().len(), DIM);
    assert_eq!(e.embed(&"word ".repeat(2000)).unwrap().len(), DIM);
}

#[test]
fn embedder_is_shared_across_threads() {
    let e = embedder();
    let want = e.embed("what time do you open").unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| e.embed("what time do you open").unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        for v in h.join().unwrap() {
            assert!(cosine(&v, &want) > 0.9999);
        }
    }
}

/// Latency per sentence, one at a time as the brain embeds a caller turn.
/// Printed, not asserted (the box is shared).
#[test]
fn embedding_latency() {
    let e = embedder();
    let f = fixture();
    let sentences: Vec<&str> = f
        .dev
        .iter()
        .chain(&f.test)
        .map(|u| u.text.as_str())
        .chain(
            f.intents
                .iter()
                .flat_map(|i| i.examples.iter().map(|s| s.as_str())),
        )
        .collect();
    for s in sentences.iter().take(10) {
        e.embed(s).unwrap(); // warm up
    }
    let mut ms: Vec<f64> = Vec::new();
    while ms.len() < 400 {
        for s in &sentences {
            let t = Instant::now();
            e.embed(s).unwrap();
            ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    ms.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    println!(
        "embedding latency over {} sentences: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms.len(),
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    // How much of that is the tokenizer (the rest is ONNX Runtime).
    let tok =
        tokenizers::Tokenizer::from_file(test_model_dir().root().join("minilm/tokenizer.json"))
            .unwrap();
    let t = Instant::now();
    for s in &sentences {
        tok.encode(*s, true).unwrap();
    }
    println!(
        "tokenizer alone: {:.3} ms per sentence",
        t.elapsed().as_secs_f64() * 1e3 / sentences.len() as f64
    );
}

/// Prints the sweep the defaults were chosen from (not asserted): accuracy
/// on `dev` and `test` together, which are both development data now. The
/// holdout is never part of it.
#[test]
fn intent_tuning_sweep_on_dev() {
    let f = fixture();
    let tune: Vec<&Labelled> = f.dev.iter().chain(&f.test).collect();
    let scorings = [
        Scoring::Nearest { top_k: 1 },
        Scoring::Nearest { top_k: 2 },
        Scoring::Discriminant { shrinkage: 0.3 },
        Scoring::Discriminant { shrinkage: 0.5 },
        Scoring::Discriminant { shrinkage: 0.7 },
        Scoring::Discriminant { shrinkage: 0.9 },
    ];
    for off_topic in [false, true] {
        let mut c = IntentClassifier::with_config(
            embedder(),
            &f.intents,
            IntentConfig {
                off_topic,
                ..IntentConfig::default()
            },
        )
        .unwrap();
        for scoring in scorings {
            let thresholds: &[f32] = match scoring {
                Scoring::Nearest { .. } => &[0.25, 0.30, 0.35, 0.40],
                _ => &[0.0, 0.20, 0.25, 0.30, 0.35],
            };
            for &threshold in thresholds {
                let line: Vec<String> = [0.0, 0.02, 0.05, 0.1]
                    .iter()
                    .map(|&margin| {
                        c.set_config(IntentConfig {
                            scoring,
                            threshold,
                            margin,
                            ..IntentConfig::default()
                        })
                        .unwrap();
                        let (acc, fb_precision, fb_recall, _) = score(&c, tune.iter().copied());
                        format!(
                            "margin {margin:.2}: {acc:.3} (fallback p {fb_precision:.2} r {fb_recall:.2})"
                        )
                    })
                    .collect();
                println!(
                    "dev+test off_topic {off_topic} {scoring:?} threshold {threshold:.2}: {}",
                    line.join(", ")
                );
            }
        }
    }
}

/// The goal: intent accuracy on held-out caller turns.
const GOAL: f32 = 0.90;

#[test]
fn intent_accuracy_on_held_out_turns() {
    let f = fixture();
    assert!(f.test.len() >= 50);
    let c = IntentClassifier::new(embedder(), &f.intents).unwrap();
    println!("config {:?}", c.config());
    let (acc, fb_precision, fb_recall, wrong) = score(&c, &f.test);
    let fallbacks = f.test.iter().filter(|u| u.intent.is_none()).count();
    println!(
        "intent accuracy {acc:.3} on {} turns ({} should fall back): fallback precision {fb_precision:.2}, recall {fb_recall:.2}",
        f.test.len(),
        fallbacks
    );
    for w in &wrong {
        println!("  miss {w}");
    }
    let held = holdout();
    assert!(held.len() >= 60);
    let (h_acc, h_fbp, h_fbr, h_wrong) = score(&c, &held);
    println!(
        "holdout accuracy {h_acc:.3} on {} turns: fallback precision {h_fbp:.2}, recall {h_fbr:.2}",
        held.len()
    );
    for w in &h_wrong {
        println!("  holdout miss {w}");
    }
    print_confusion("holdout", &c, &held);
    let (dev_acc, _, _, dev_wrong) = score(&c, &f.dev);
    println!("dev accuracy {dev_acc:.3} on {} turns", f.dev.len());
    for w in &dev_wrong {
        println!("  dev miss {w}");
    }
    // The goal is 0.90 on caller turns the classifier was not tuned
    // on. `dev` and `test` were used to choose the examples and defaults, so
    // the goal is asserted on the holdout, written before any tuning and
    // only ever scored here; `test` keeps its old floor against regressions.
    assert!(
        h_acc >= GOAL,
        "holdout intent accuracy {h_acc:.3} < goal {GOAL:.2}"
    );
    assert!(h_fbr >= 0.7, "holdout fallback recall {h_fbr:.2}");
    assert!(acc >= 0.85, "intent accuracy {acc:.3} < 0.85");
    assert!(fb_recall >= 0.7, "fallback recall {fb_recall:.2}");
}

#[test]
fn confidence_and_fallback_shape() {
    let f = fixture();
    let c = IntentClassifier::new(embedder(), &f.intents).unwrap();
    let m = c.classify("I'd like to book an appointment");
    assert_eq!(m.intent.as_deref(), Some("book_appointment"));
    assert!(m.confidence > 0.5 && m.confidence <= 1.0, "{m:?}");
    // A threshold of 1 accepts nothing, but still names the closest intent.
    let strict = IntentClassifier::with_config(
        embedder(),
        &f.intents,
        IntentConfig {
            threshold: 1.0,
            ..IntentConfig::default()
        },
    )
    .unwrap();
    let m = strict.classify("can I make an appointment for friday");
    assert_eq!(m.intent, None);
    assert_eq!(m.best.as_deref(), Some("book_appointment"));
    // Off-topic talk falls back but still names the closest real intent;
    // the built-in off-topic class is never listed or scored as an intent.
    let m = c.classify("tell me a joke");
    assert_eq!(m.intent, None, "{m:?}");
    let best = m.best.expect("closest real intent");
    assert!(f.intents.iter().any(|i| i.name == best), "{best}");
    assert_eq!(c.intents().count(), f.intents.len());
    let scores = c.scores("can I make an appointment for friday").unwrap();
    assert_eq!(scores.len(), f.intents.len());
    assert!(scores.windows(2).all(|w| w[0].1 >= w[1].1));
}

#[test]
fn bad_definitions_are_errors() {
    use vocelio_pipelines::brain::intents::IntentError;
    let e = embedder();
    assert!(matches!(
        IntentClassifier::new(e.clone(), &[]),
        Err(IntentError::NoIntents)
    ));
    let blank = IntentDef {
        name: "x".into(),
        examples: vec!["  ".into()],
    };
    assert!(matches!(
        IntentClassifier::new(e.clone(), &[blank]),
        Err(IntentError::NoExamples { .. })
    ));
    let one = IntentDef {
        name: "x".into(),
        examples: vec!["hello".into()],
    };
    assert!(matches!(
        IntentClassifier::new(e.clone(), &[one.clone(), one.clone()]),
        Err(IntentError::Duplicate { .. })
    ));
    assert!(matches!(
        IntentClassifier::with_config(
            e,
            &[one],
            IntentConfig {
                threshold: 1.5,
                ..IntentConfig::default()
            }
        ),
        Err(IntentError::Config {
            name: "threshold",
            ..
        })
    ));
}
