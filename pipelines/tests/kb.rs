//! Retrieval over the knowledge-base fixtures (`fixtures/brain/kb/`) with the
//! real MiniLM model: questions phrased as callers ask them, not as the
//! documents word them.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use vocelio_pipelines::brain::embed::Embedder;
use vocelio_pipelines::brain::kb::{min_score, KnowledgeBase, Retriever};
use vocelio_pipelines::models::test_model_dir;

fn kb() -> &'static KnowledgeBase {
    static KB: OnceLock<KnowledgeBase> = OnceLock::new();
    KB.get_or_init(|| {
        let e = Arc::new(
            Embedder::load(&test_model_dir()).expect("MiniLM model (run scripts/setup.sh)"),
        );
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/brain/kb");
        KnowledgeBase::from_dir(e, &dir).expect("kb fixtures")
    })
}

/// (question, file the answer is in, words only the right passage has).
const QUESTIONS: &[(&str, &str, &str)] = &[
    (
        "are you guys open on sunday",
        "clinic_faq.md",
        "closed on Sundays",
    ),
    (
        "how late can i come in on a thursday evening",
        "clinic_faq.md",
        "until 8 pm",
    ),
    (
        "where can i leave my car",
        "clinic_faq.md",
        "public car park",
    ),
    (
        "what do i need to bring the first time i come",
        "clinic_faq.md",
        "medical history form",
    ),
    (
        "i knocked my tooth out playing football what do i do",
        "clinic_faq.md",
        "emergency slots",
    ),
    (
        "will you charge me if i don't show up",
        "clinic_faq.md",
        "Late cancellations",
    ),
    (
        "how much is a cleaning",
        "clinic_faq.md",
        "check-up with a cleaning costs",
    ),
    (
        "can i pay for my implant in instalments",
        "clinic_faq.md",
        "twelve monthly instalments",
    ),
    (
        "can my twelve year old come in on their own",
        "clinic_faq.md",
        "Children under 16",
    ),
    (
        "how long do i have to send something back",
        "returns_policy.md",
        "within 30 days",
    ),
    (
        "can i return a swimsuit i tried on",
        "returns_policy.md",
        "hygiene reasons",
    ),
    (
        "when will i get my money back",
        "returns_policy.md",
        "three working days",
    ),
    (
        "the vase came broken what now",
        "returns_policy.md",
        "arrived damaged",
    ),
    (
        "can i swap these shoes for a bigger size",
        "returns_policy.md",
        "direct exchanges",
    ),
    (
        "how do i get a return label",
        "returns_policy.md",
        "prepaid return label",
    ),
    ("how much is postage", "shipping.txt", "Standard delivery"),
    ("can i get it tomorrow", "shipping.txt", "next working day"),
    (
        "do you deliver to switzerland",
        "shipping.txt",
        "import duties",
    ),
    ("where is my parcel", "shipping.txt", "tracking number"),
    (
        "i wasn't home when the courier came",
        "shipping.txt",
        "nobody is home",
    ),
    (
        "i typed the wrong address on my order",
        "shipping.txt",
        "change the delivery address",
    ),
];

#[test]
fn the_right_passage_ranks_first() {
    let kb = kb();
    println!("{} passages", kb.len());
    let (mut top1, mut top3) = (0, 0);
    let mut misses = Vec::new();
    for (q, source, needle) in QUESTIONS {
        let hits = kb.search(q, 3);
        assert_eq!(hits.len(), 3);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        let right = |p: &vocelio_pipelines::brain::kb::Passage| {
            p.source == *source && p.text.contains(needle)
        };
        if right(&hits[0]) {
            top1 += 1;
        } else {
            misses.push(format!(
                "{q:?}: want {needle:?}, got {:?} ({:.2})",
                hits[0].text, hits[0].score
            ));
        }
        if hits.iter().any(right) {
            top3 += 1;
        }
    }
    let n = QUESTIONS.len();
    println!(
        "kb top-1 {top1}/{n} ({:.3}), top-3 {top3}/{n} ({:.3})",
        top1 as f32 / n as f32,
        top3 as f32 / n as f32
    );
    for m in &misses {
        println!("  miss {m}");
    }
    assert!(n >= 15);
    assert_eq!(top3, n, "every answer in the top 3");
    // Measured 18/21 with the default chunking (90-word section passages);
    // the misses are in the top 3. A floor against regressions, not a goal.
    assert!(top1 as f32 >= 0.8 * n as f32, "top-1 {top1}/{n}");
}

#[test]
fn off_topic_questions_score_low() {
    let kb = kb();
    let on = kb.search("what time do you open on saturday", 1)[0].score;
    let off = kb.search("who won the world cup in 1998", 1)[0].score;
    println!("on-topic {on:.2}, off-topic {off:.2}");
    assert!(on > off + 0.2, "on {on} off {off}");
    assert!(min_score(kb.search("who won the world cup in 1998", 3), 0.4).is_empty());
    assert!(kb.search("anything", 0).is_empty());
}
