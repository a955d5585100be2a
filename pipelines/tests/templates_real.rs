//! The built-in flows with the real models behind them: MiniLM intents and
//! knowledge base, the lexicon sentiment. Realistic caller turns must route
//! where a person would route them: an ordinary answer is not an intent,
//! and a question the knowledge base covers gets that passage.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use vocelio_codecs::MediaTime;
use vocelio_pipelines::brain::embed::Embedder;
use vocelio_pipelines::brain::flow::templates::{
    APPOINTMENT_BOOKING, LEAD_QUALIFICATION, SUPPORT_FAQ, SUPPORT_FAQ_KB,
};
use vocelio_pipelines::brain::flow::{CalendarDate, Flow, FlowBrain, FlowServices};
use vocelio_pipelines::brain::intents::{IntentClassifier, IntentClassify};
use vocelio_pipelines::brain::kb::{Document, KnowledgeBase};
use vocelio_pipelines::brain::{
    Action, Brain, BrainChunk, BrainSink, Conversation, Speaker, Turn, TurnInput,
};
use vocelio_pipelines::models::test_model_dir;

fn embedder() -> Arc<Embedder> {
    static E: OnceLock<Arc<Embedder>> = OnceLock::new();
    Arc::clone(E.get_or_init(|| {
        Arc::new(Embedder::load(&test_model_dir()).expect("MiniLM (run scripts/setup.sh)"))
    }))
}

fn classifier(flow_json: &str) -> IntentClassifier {
    let flow = Flow::parse(flow_json).expect("template");
    IntentClassifier::new(embedder(), &flow.flow().intents).expect("intents")
}

#[test]
fn template_intents_route_like_a_person_would() {
    // (template, caller turn, expected intent; None = an ordinary answer)
    let cases: &[(&str, &str, &str, Option<&str>)] = &[
        (
            "support_faq",
            SUPPORT_FAQ,
            "what time are you open on saturday",
            None,
        ),
        (
            "support_faq",
            SUPPORT_FAQ,
            "hi how do i reset my password",
            None,
        ),
        (
            "support_faq",
            SUPPORT_FAQ,
            "my internet keeps dropping out every evening",
            None,
        ),
        (
            "support_faq",
            SUPPORT_FAQ,
            "i was charged twice this month",
            None,
        ),
        (
            "support_faq",
            SUPPORT_FAQ,
            "can i talk to a real person please",
            Some("talk_to_human"),
        ),
        (
            "support_faq",
            SUPPORT_FAQ,
            "i want to speak to somebody",
            Some("talk_to_human"),
        ),
        (
            "support_faq",
            SUPPORT_FAQ,
            "no that's all thanks bye",
            Some("goodbye"),
        ),
        (
            "support_faq",
            SUPPORT_FAQ,
            "nope that's everything goodbye",
            Some("goodbye"),
        ),
        (
            "lead_qualification",
            LEAD_QUALIFICATION,
            "we want to automate our support line",
            None,
        ),
        (
            "lead_qualification",
            LEAD_QUALIFICATION,
            "our call volume doubled and we can't hire fast enough",
            None,
        ),
        (
            "lead_qualification",
            LEAD_QUALIFICATION,
            "i'm not interested please stop calling me",
            Some("not_interested"),
        ),
        (
            "lead_qualification",
            LEAD_QUALIFICATION,
            "can you put me through to a sales rep",
            Some("talk_to_human"),
        ),
        (
            "appointment_booking",
            APPOINTMENT_BOOKING,
            "i need a cleaning my gums have been bleeding",
            None,
        ),
        (
            "appointment_booking",
            APPOINTMENT_BOOKING,
            "a check up for my daughter",
            None,
        ),
        (
            "appointment_booking",
            APPOINTMENT_BOOKING,
            "is there an actual human i could talk to",
            Some("talk_to_human"),
        ),
    ];
    let mut wrong = Vec::new();
    for (name, json, text, want) in cases {
        let m = classifier(json).classify(text);
        println!(
            "{name:<20} {text:<55} -> {:?} (best {:?}, {:.2})",
            m.intent, m.best, m.confidence
        );
        if m.intent.as_deref() != *want {
            wrong.push(format!("{name}: {text:?} -> {:?}, want {want:?}", m.intent));
        }
    }
    assert!(wrong.is_empty(), "misrouted:\n{}", wrong.join("\n"));
}

/// Ask one turn; the reply text and whether the agent ended the call.
fn ask(brain: &mut FlowBrain, conv: &mut Conversation, text: &str) -> (String, bool) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let input = TurnInput::Speech {
        text: text.into(),
        at: MediaTime::ZERO,
    };
    brain.respond(conv, &input, BrainSink::new(1, tx));
    let (mut reply, mut ended) = (String::new(), false);
    loop {
        match rx.recv_timeout(Duration::from_secs(10)).expect("reply") {
            (_, BrainChunk::Text(t)) => reply.push_str(&t),
            (_, BrainChunk::Action(Action::Hangup | Action::Transfer { .. })) => ended = true,
            (_, BrainChunk::Done) => break,
            _ => {}
        }
    }
    conv.turns.push(Turn {
        speaker: Speaker::Caller,
        text: text.into(),
        at: MediaTime::ZERO,
        interrupted: false,
    });
    conv.turns.push(Turn {
        speaker: Speaker::Agent,
        text: reply.clone(),
        at: MediaTime::ZERO,
        interrupted: false,
    });
    (reply, ended)
}

#[test]
fn support_faq_answers_from_its_knowledge_base() {
    let kb = KnowledgeBase::new(
        embedder(),
        &[Document {
            source: "support_faq_kb.md".into(),
            text: SUPPORT_FAQ_KB.into(),
        }],
    )
    .expect("kb");
    let services = FlowServices {
        intents: Some(Arc::new(classifier(SUPPORT_FAQ))),
        kb: Some(Arc::new(kb)),
        ..FlowServices::default()
    }
    .with_today(CalendarDate::new(2026, 11, 24).expect("date"));
    let mut brain = FlowBrain::new(Arc::new(Flow::parse(SUPPORT_FAQ).expect("flow")), services);
    let mut conv = Conversation::default();
    let script: &[(&str, &str, bool)] = &[
        ("hi how do i reset my password", "forgot password", false),
        (
            "ok and what time are you open on saturday",
            "Saturdays from 9 am to 5 pm",
            false,
        ),
        (
            "my internet keeps dropping out every evening",
            "restart your router",
            false,
        ),
        ("how do i pay my bill", "payment is due", false),
        ("no that's all thanks bye", "Goodbye", true),
    ];
    for (turn, want, ends) in script {
        let (reply, ended) = ask(&mut brain, &mut conv, turn);
        println!("{turn:?} -> {reply:?}");
        assert!(reply.contains(want), "{turn:?} -> {reply:?}, want {want:?}");
        assert_eq!(ended, *ends, "{turn:?} -> {reply:?}");
    }
}
