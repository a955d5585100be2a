//! Conversation flows end to end: the built-in templates and small flows run
//! on scripted caller turns through `FlowBrain` (with fake classifier,
//! knowledge base, model and tools) and through the sans-IO `FlowRun`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use serde_json::{json, Value};
use vocelio_codecs::MediaTime;
use vocelio_pipelines::brain::flow::templates::{
    APPOINTMENT_BOOKING, LEAD_QUALIFICATION, SUPPORT_FAQ, SUPPORT_FAQ_KB,
};
use vocelio_pipelines::brain::flow::{
    CalendarDate, Effect, EffectResult, Flow, FlowBrain, FlowContext, FlowOutput, FlowRun,
    FlowServices, RunStatus, ValidFlow,
};
use vocelio_pipelines::brain::insights::Outcome;
use vocelio_pipelines::brain::intents::{IntentClassify, IntentMatch};
use vocelio_pipelines::brain::kb::{Passage, Retriever};
use vocelio_pipelines::brain::llm::{ChatModel, ChatRequest, LlmError, LlmEvent, Role};
use vocelio_pipelines::brain::sentiment::{Sentiment, SentimentLabel};
use vocelio_pipelines::brain::tools::{ToolError, ToolRequest, ToolRunner};
use vocelio_pipelines::brain::{
    Action, Brain, BrainChunk, BrainSink, Conversation, Speaker, Turn, TurnAnalysis, TurnInput,
};

// ---------------------------------------------------------------- fakes --

/// Intents by keyword: the first intent with a keyword in the text wins.
#[derive(Debug)]
struct KeywordIntents(Vec<(&'static str, Vec<&'static str>)>);

impl IntentClassify for KeywordIntents {
    fn classify(&self, text: &str) -> IntentMatch {
        let t = text.to_lowercase();
        for (name, kws) in &self.0 {
            if kws.iter().any(|k| t.contains(k)) {
                return IntentMatch {
                    intent: Some(name.to_string()),
                    best: Some(name.to_string()),
                    confidence: 0.9,
                };
            }
        }
        IntentMatch {
            intent: None,
            best: None,
            confidence: 0.1,
        }
    }
}

/// Passages are the `## ` sections of a Markdown document; the score is the
/// share of the query's content words found in the section.
#[derive(Debug)]
struct MemoryKb(Vec<(String, String)>);

impl MemoryKb {
    fn from_markdown(md: &str) -> Self {
        MemoryKb(
            md.split("\n## ")
                .skip(1)
                .filter_map(|s| s.split_once('\n'))
                .map(|(title, body)| (title.trim().to_string(), body.trim().to_string()))
                .collect(),
        )
    }
}

fn content_words(s: &str) -> Vec<String> {
    const STOP: [&str; 12] = [
        "what", "your", "with", "have", "how", "the", "are", "can", "you", "and", "for", "does",
    ];
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2 && !STOP.contains(w))
        .map(|w| w.trim_end_matches('s').to_string())
        .collect()
}

impl Retriever for MemoryKb {
    fn search(&self, query: &str, k: usize) -> Vec<Passage> {
        let q = content_words(query);
        let mut out: Vec<Passage> = self
            .0
            .iter()
            .map(|(title, body)| {
                let words = content_words(&format!("{title} {body}"));
                let hits = q.iter().filter(|w| words.contains(w)).count();
                Passage {
                    source: title.clone(),
                    text: body.clone(),
                    score: if q.is_empty() {
                        0.0
                    } else {
                        hits as f32 / q.len() as f32
                    },
                }
            })
            .collect();
        out.sort_by(|a, b| b.score.total_cmp(&a.score));
        out.truncate(k);
        out
    }
}

/// A model that streams scripted pieces. Pieces after `gate_after` wait
/// until the test opens the gate; `fail` ends with an error instead of
/// `Done`; `hang` never answers.
#[derive(Debug, Default)]
struct ScriptedLlm {
    pieces: Vec<&'static str>,
    gate_after: Option<usize>,
    gate: Mutex<Option<Receiver<()>>>,
    fail: bool,
    hang: bool,
    requests: Mutex<Vec<ChatRequest>>,
    keep: Mutex<Vec<Sender<LlmEvent>>>,
}

impl ChatModel for ScriptedLlm {
    fn name(&self) -> &str {
        "scripted"
    }

    fn chat(&self, request: ChatRequest) -> Receiver<LlmEvent> {
        self.requests.lock().unwrap().push(request);
        let (tx, rx) = crossbeam_channel::unbounded();
        if self.hang {
            self.keep.lock().unwrap().push(tx);
            return rx;
        }
        let pieces: Vec<String> = self.pieces.iter().map(|s| s.to_string()).collect();
        let gate_after = self.gate_after;
        let gate = self.gate.lock().unwrap().take();
        let fail = self.fail;
        std::thread::spawn(move || {
            for (i, p) in pieces.into_iter().enumerate() {
                if Some(i) == gate_after {
                    if let Some(g) = &gate {
                        let _ = g.recv();
                    }
                }
                if tx.send(LlmEvent::Text(p)).is_err() {
                    return;
                }
            }
            let last = if fail {
                LlmEvent::Failed(LlmError::Connection {
                    reason: "reset by peer".into(),
                })
            } else {
                LlmEvent::Done {
                    tokens: 7,
                    prompt_tokens: None,
                }
            };
            let _ = tx.send(last);
        });
        rx
    }
}

/// Tools answering canned JSON; unknown tools time out.
#[derive(Debug, Default)]
struct CannedTools {
    answers: HashMap<&'static str, Result<Value, ToolError>>,
    calls: Mutex<Vec<ToolRequest>>,
}

impl CannedTools {
    fn with(mut self, name: &'static str, answer: Result<Value, ToolError>) -> Self {
        self.answers.insert(name, answer);
        self
    }
}

impl ToolRunner for CannedTools {
    fn call(&self, request: ToolRequest) -> Receiver<Result<Value, ToolError>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let answer = self
            .answers
            .get(request.name.as_str())
            .cloned()
            .unwrap_or(Err(ToolError::Timeout {
                name: request.name.clone(),
                after: request.timeout,
            }));
        self.calls.lock().unwrap().push(request);
        let _ = tx.send(answer);
        rx
    }
}

/// Negative when the caller sounds upset (the real scorer lands later).
fn test_sentiment(text: &str) -> Sentiment {
    let t = text.to_lowercase();
    if ["ridiculous", "angry", "terrible", "useless"]
        .iter()
        .any(|w| t.contains(w))
    {
        Sentiment {
            score: -0.8,
            label: SentimentLabel::Negative,
        }
    } else if t.contains("thank") {
        Sentiment {
            score: 0.7,
            label: SentimentLabel::Positive,
        }
    } else {
        Sentiment {
            score: 0.0,
            label: SentimentLabel::Neutral,
        }
    }
}

// ------------------------------------------------------------- harness --

/// Tuesday 24 November 2026.
fn today() -> CalendarDate {
    CalendarDate::new(2026, 11, 24).unwrap()
}

fn services() -> FlowServices {
    let mut s = FlowServices::new().with_today(today());
    s.sentiment = test_sentiment;
    s
}

fn speech(t: &str) -> TurnInput {
    TurnInput::Speech {
        text: t.into(),
        at: MediaTime::ZERO,
    }
}

fn dtmf(d: &str) -> TurnInput {
    TurnInput::Dtmf {
        digits: d.into(),
        at: MediaTime::ZERO,
    }
}

#[derive(Debug, Default)]
struct Reply {
    text: String,
    pieces: usize,
    actions: Vec<Action>,
    analysis: Option<TurnAnalysis>,
}

/// A call: the brain, the conversation as the runner would keep it.
struct Call {
    brain: FlowBrain,
    conv: Conversation,
    reply_no: u32,
}

impl Call {
    fn new(flow: &str, services: FlowServices) -> Self {
        let flow = Arc::new(Flow::parse(flow).expect("valid flow"));
        let brain = FlowBrain::new(flow, services);
        let mut conv = Conversation::default();
        if let Some(g) = brain.greeting() {
            conv.turns.push(agent(&g));
        }
        Call {
            brain,
            conv,
            reply_no: 0,
        }
    }

    fn say(&mut self, input: TurnInput) -> Reply {
        self.reply_no += 1;
        let (tx, rx) = crossbeam_channel::unbounded();
        self.brain
            .respond(&self.conv, &input, BrainSink::new(self.reply_no, tx));
        let r = drain(&rx, self.reply_no);
        self.conv.turns.push(Turn {
            speaker: Speaker::Caller,
            text: input.text(),
            at: MediaTime::ZERO,
            interrupted: false,
        });
        self.conv.turns.push(agent(&r.text));
        for a in &r.actions {
            if let Action::SetVariable { name, value } = a {
                self.conv.variables.push((name.clone(), value.clone()));
            }
            self.conv.actions.push(a.clone());
        }
        r
    }
}

fn agent(text: &str) -> Turn {
    Turn {
        speaker: Speaker::Agent,
        text: text.into(),
        at: MediaTime::ZERO,
        interrupted: false,
    }
}

fn drain(rx: &Receiver<(u32, BrainChunk)>, reply: u32) -> Reply {
    let mut r = Reply::default();
    loop {
        let (n, chunk) = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the reply finishes");
        assert_eq!(n, reply);
        match chunk {
            BrainChunk::Text(t) => {
                r.text.push_str(&t);
                r.pieces += 1;
            }
            BrainChunk::Action(a) => r.actions.push(a),
            BrainChunk::Analysis(a) => {
                assert!(r.analysis.is_none(), "one analysis per reply");
                r.analysis = Some(a);
            }
            BrainChunk::Done => return r,
            _ => {}
        }
    }
}

fn var<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.actions.iter().find_map(|a| match a {
        Action::SetVariable { name: n, value } if n == name => Some(value.as_str()),
        _ => None,
    })
}

fn appointment_services(tools: CannedTools) -> FlowServices {
    let mut s = services();
    s.tools = Some(Arc::new(tools));
    s
}

// ------------------------------------------------- appointment booking --

#[test]
fn appointment_booking_happy_path_with_dtmf_phone() {
    let tools = Arc::new(
        CannedTools::default()
            .with(
                "check_availability",
                Ok(json!({"available": true, "slot": "2026-12-01T15:00"})),
            )
            .with("book_appointment", Ok(json!({"confirmation": "RD-4821"}))),
    );
    let mut s = services();
    s.tools = Some(tools.clone());
    let mut call = Call::new(APPOINTMENT_BOOKING, s);
    assert_eq!(
        call.brain.greeting().as_deref(),
        Some("Hi, thanks for calling Riverside Dental. I can book an appointment for you. What is the appointment for?")
    );

    let r = call.say(speech("I need a cleaning"));
    assert_eq!(r.text, "What day and time would suit you?");
    assert_eq!(var(&r, "reason"), Some("I need a cleaning"));
    let a = r.analysis.as_ref().expect("analysis");
    // The lines that follow an answer: the next question, or giving up.
    assert_eq!(
        a.suggestions,
        vec![
            "And what name should I put the booking under?".to_string(),
            "Let me put you through to our front desk.".to_string()
        ]
    );

    let r = call.say(speech("next Tuesday at 3 pm"));
    assert_eq!(var(&r, "when"), Some("2026-12-01 15:00"));
    assert_eq!(r.text, "And what name should I put the booking under?");

    let r = call.say(speech("Ada Lovelace"));
    assert!(r.text.contains("best number"));

    let r = call.say(dtmf("5551234567"));
    assert_eq!(var(&r, "phone"), Some("5551234567"));
    assert_eq!(
        r.text,
        "One moment while I check the calendar. I have Ada Lovelace for Tuesday, December 1 at 3 PM, for I need a cleaning. Shall I book it?"
    );
    assert!(r.actions.contains(&Action::Tool {
        name: "check_availability".into(),
        arguments: json!({"when": "2026-12-01 15:00", "reason": "I need a cleaning"}).to_string(),
        ok: true,
    }));
    assert_eq!(var(&r, "available"), Some("true"));

    // Keypad 1 is yes.
    let r = call.say(dtmf("1"));
    assert_eq!(
        r.text,
        "You're all set for Tuesday, December 1 at 3 PM. Your confirmation number is RD-4821. Goodbye!"
    );
    assert_eq!(r.actions.last(), Some(&Action::Hangup));
    let calls = tools.calls.lock().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].url, "https://scheduling.example.com/book");
    assert_eq!(calls[1].arguments["phone"], "5551234567");
    assert_eq!(calls[1].timeout, Duration::from_millis(5000));
    drop(calls);

    let insights = call.brain.insights(&call.conv);
    assert_eq!(insights.outcome, Outcome::Completed);
    assert!(insights
        .trace
        .iter()
        .any(|t| t.node == "book" && t.event == "tool book_appointment ok"));
    assert_eq!(call.brain.status(), RunStatus::Ended);
}

#[test]
fn appointment_reprompts_then_gives_up_to_the_front_desk() {
    let mut call = Call::new(
        APPOINTMENT_BOOKING,
        appointment_services(CannedTools::default()),
    );
    call.say(speech("a checkup"));
    let r = call.say(speech("whenever really"));
    assert_eq!(
        r.text,
        "Sorry, I didn't get a day. You can say something like next Tuesday at 3 pm."
    );
    assert!(r.actions.is_empty());
    call.say(speech("purple"));
    let r = call.say(speech("I don't know"));
    assert_eq!(
        r.text,
        "I'm having trouble understanding the date. Let me put you through to our front desk."
    );
    assert_eq!(
        r.actions,
        vec![Action::Transfer {
            target: "sip:frontdesk@clinic.example.com".into()
        }]
    );
    let trace = call.brain.run().trace().to_vec();
    let rejected: Vec<_> = trace
        .iter()
        .filter(|t| t.node == "ask_when" && t.event.starts_with("input rejected"))
        .collect();
    assert_eq!(rejected.len(), 3);
    assert_eq!(
        rejected[0].event,
        "input rejected (1/3): no date or time heard"
    );
    assert!(trace
        .iter()
        .any(|t| t.event == "gave up after 3 attempts" && t.turn == 4));
    let insights = call.brain.insights(&call.conv);
    assert_eq!(
        insights.outcome,
        Outcome::Transferred {
            target: "sip:frontdesk@clinic.example.com".into()
        }
    );
}

#[test]
fn appointment_tool_timeout_follows_the_error_edge() {
    // No answer configured: the runner reports a timeout.
    let mut call = Call::new(
        APPOINTMENT_BOOKING,
        appointment_services(CannedTools::default()),
    );
    call.say(speech("a filling"));
    call.say(speech("tomorrow morning"));
    call.say(speech("Grace Hopper"));
    let r = call.say(speech("five five five one two three four"));
    assert_eq!(var(&r, "phone"), Some("5551234"));
    assert_eq!(
        r.text,
        "One moment while I check the calendar. I can't reach our calendar right now. Let me put you through to our front desk."
    );
    assert!(
        matches!(&r.actions[1], Action::Tool { name, ok: false, .. } if name == "check_availability")
    );
    assert!(matches!(r.actions.last(), Some(Action::Transfer { .. })));
    let trace = call.brain.run().trace().to_vec();
    assert!(trace.iter().any(|t| t.node == "check_slot"
        && t.event
            .starts_with("tool failed: tool check_availability timed out")));
}

#[test]
fn appointment_taken_slot_and_a_no_go_back_to_the_date() {
    let tools = CannedTools::default().with("check_availability", Ok(json!({"available": false})));
    let mut call = Call::new(APPOINTMENT_BOOKING, appointment_services(tools));
    call.say(speech("whitening"));
    call.say(speech("March 5th at 10 am"));
    call.say(speech("Alan"));
    let r = call.say(dtmf("4155550100"));
    assert_eq!(
        r.text,
        "One moment while I check the calendar. I'm sorry, that time is already taken. What day and time would suit you?"
    );
    assert_eq!(call.brain.run().current_node(), Some("ask_when"));
}

// -------------------------------------------------- lead qualification --

fn lead_services() -> (FlowServices, Arc<CannedTools>) {
    let tools = Arc::new(CannedTools::default().with("crm_create_lead", Ok(json!({"id": 981}))));
    let mut s = services();
    s.tools = Some(tools.clone());
    (s, tools)
}

#[test]
fn lead_qualification_hot_lead_goes_to_sales() {
    let (s, tools) = lead_services();
    let mut call = Call::new(LEAD_QUALIFICATION, s);
    let r = call.say(speech("Our support queue is exploding"));
    assert_eq!(r.text, "Roughly how many agents are on your team?");
    let r = call.say(speech("about two hundred and fifty"));
    assert_eq!(var(&r, "team_size"), Some("250"));
    let r = call.say(speech("maybe 5,000 a month"));
    assert_eq!(var(&r, "budget"), Some("5000"));
    let r = call.say(speech("yeah definitely"));
    assert_eq!(var(&r, "soon"), Some("yes"));
    assert_eq!(var(&r, "lead_id"), Some("981"));
    assert_eq!(
        r.text,
        "Great, let me connect you with one of our specialists right now."
    );
    assert_eq!(
        r.actions.last(),
        Some(&Action::Transfer {
            target: "queue:sales".into()
        })
    );
    assert_eq!(
        tools.calls.lock().unwrap()[0].arguments,
        json!({"interest": "Our support queue is exploding", "team_size": "250", "budget": "5000", "start_soon": "yes"})
    );
    let trace = call.brain.run().trace().to_vec();
    assert!(trace
        .iter()
        .any(|t| t.node == "qualify" && t.event == "edge hot on var:team_size>=50 -> to_sales"));
}

#[test]
fn lead_qualification_low_budget_is_nurtured_even_when_the_crm_is_down() {
    let mut s = services();
    s.tools = Some(Arc::new(CannedTools::default())); // CRM times out
    let mut call = Call::new(LEAD_QUALIFICATION, s);
    call.say(speech("just curious"));
    let r = call.say(speech("lots"));
    assert_eq!(
        r.text,
        "Just a rough number is fine. How many agents do you have?"
    );
    call.say(speech("twelve"));
    call.say(speech("five hundred dollars"));
    let r = call.say(dtmf("1"));
    assert!(
        r.text.starts_with("Thanks, that's really helpful."),
        "{}",
        r.text
    );
    assert!(r.text.ends_with("Have a great day!"));
    assert!(matches!(&r.actions[1], Action::Tool { ok: false, .. }));
    assert_eq!(r.actions.last(), Some(&Action::Hangup));
}

#[test]
fn lead_qualification_demo_branch_and_intents() {
    // Mid-size team, good budget, soon: offered a demo.
    let (s, _) = lead_services();
    let mut call = Call::new(LEAD_QUALIFICATION, s);
    call.say(speech("we want to automate calls"));
    call.say(speech("20"));
    call.say(speech("three thousand"));
    let r = call.say(speech("that's right"));
    assert_eq!(
        r.text,
        "Would you like me to set up a demo with one of our specialists?"
    );
    let r = call.say(speech("sure"));
    assert!(
        matches!(r.actions.last(), Some(Action::Transfer { target }) if target == "queue:sales")
    );

    // Without a classifier, intents match their example phrases.
    let (s, _) = lead_services();
    let mut call = Call::new(LEAD_QUALIFICATION, s);
    let r = call.say(speech("Sorry, I'm not interested."));
    assert_eq!(r.text, "No problem at all, sorry to bother you. Goodbye!");
    assert_eq!(
        r.analysis.unwrap().intent.unwrap().intent.as_deref(),
        Some("not_interested")
    );
    let insights = call.brain.insights(&call.conv);
    assert_eq!(insights.intents, vec!["not_interested".to_string()]);

    // With one, its answer counts.
    let (mut s, _) = lead_services();
    s.intents = Some(Arc::new(KeywordIntents(vec![(
        "talk_to_human",
        vec!["human"],
    )])));
    let mut call = Call::new(LEAD_QUALIFICATION, s);
    let r = call.say(speech("can I get a human"));
    assert!(matches!(r.actions.last(), Some(Action::Transfer { .. })));
}

// ---------------------------------------------------------- support FAQ --

fn faq_services() -> FlowServices {
    let mut s = services();
    s.kb = Some(Arc::new(MemoryKb::from_markdown(SUPPORT_FAQ_KB)));
    s
}

#[test]
fn support_faq_answers_from_the_knowledge_base_then_says_goodbye() {
    let mut call = Call::new(SUPPORT_FAQ, faq_services());
    assert_eq!(
        call.brain.greeting().as_deref(),
        Some("Thanks for calling Acme Home Internet support. What can I help you with today?")
    );
    let r = call.say(speech("How do I reset my password?"));
    assert!(r.text.starts_with("To reset your password"), "{}", r.text);
    assert!(r.text.ends_with("Is there anything else I can help with?"));
    let r = call.say(speech("What are your opening hours on Saturday?"));
    assert!(r.text.contains("Saturdays from 9 am"), "{}", r.text);
    let r = call.say(speech("No thanks, that's all"));
    assert_eq!(r.text, "Thanks for calling Acme Home Internet. Goodbye!");
    assert_eq!(r.actions.last(), Some(&Action::Hangup));
    let trace = call.brain.run().trace().to_vec();
    assert_eq!(
        trace
            .iter()
            .filter(|t| t.node == "answer" && t.event.starts_with("kb found in"))
            .count(),
        2
    );
}

#[test]
fn support_faq_transfers_when_not_found_or_upset() {
    let mut call = Call::new(SUPPORT_FAQ, faq_services());
    let r = call.say(speech("Can you explain quantum chromodynamics?"));
    assert_eq!(
        r.text,
        "I'm sorry, I don't have an answer for that one. Let me get you to a member of our team who can help."
    );
    assert_eq!(
        r.actions,
        vec![
            Action::SetVariable {
                name: "question".into(),
                value: "Can you explain quantum chromodynamics?".into()
            },
            Action::Transfer {
                target: "queue:support".into()
            }
        ]
    );

    let mut call = Call::new(SUPPORT_FAQ, faq_services());
    let r = call.say(speech("This is ridiculous, my internet is down again!"));
    assert!(
        r.text.starts_with("I'm sorry about the trouble"),
        "{}",
        r.text
    );
    let a = r.analysis.unwrap();
    assert_eq!(a.sentiment.label, SentimentLabel::Negative);
    assert!(matches!(r.actions.last(), Some(Action::Transfer { .. })));
    let trace = call.brain.run().trace().to_vec();
    assert!(trace
        .iter()
        .any(|t| t.event == "edge caller_upset on sentiment:negative -> upset"));
}

#[test]
fn support_faq_reprompts_on_silence_and_gives_up() {
    let mut call = Call::new(SUPPORT_FAQ, faq_services());
    let r = call.say(speech("   "));
    assert_eq!(r.text, "Sorry, I didn't catch that. What's your question?");
    let r = call.say(speech(""));
    assert_eq!(
        r.text,
        "Let me get you to a member of our team who can help."
    );
}

// ------------------------------------------------------------ LLM turns --

const CHAT_FLOW: &str = r#"{
  "id": "chat", "name": "Chat",
  "start": "hello",
  "nodes": [
    {"id": "hello", "type": "say", "text": "Hello."},
    {"id": "q", "type": "ask", "prompt": "What's your question?", "variable": "question"},
    {"id": "think", "type": "llm", "instructions": "You are a helpful phone agent for {{company}}.",
     "use_kb": true, "kb_top_k": 2, "save_as": "answer", "timeout_ms": 2000},
    {"id": "more", "type": "ask", "prompt": "Anything else?", "variable": "question"},
    {"id": "bye", "type": "hangup", "text": "Bye."}
  ],
  "variables": {"company": "Acme"},
  "edges": [
    {"from": "hello", "to": "q"},
    {"from": "q", "to": "think", "on": "ok"},
    {"from": "q", "to": "bye", "on": "gave_up"},
    {"from": "think", "to": "more", "on": "ok"},
    {"from": "more", "to": "think", "on": "ok"},
    {"from": "more", "to": "bye", "on": "gave_up"}
  ]
}"#;

fn chat_with(llm: ScriptedLlm) -> (Call, Arc<ScriptedLlm>) {
    let llm = Arc::new(llm);
    let mut s = faq_services();
    s.llm = Some(llm.clone());
    (Call::new(CHAT_FLOW, s), llm)
}

#[test]
fn llm_turn_streams_the_first_sentence_before_the_rest_exists() {
    let (open, gate) = crossbeam_channel::bounded::<()>(1);
    let (mut call, llm) = chat_with(ScriptedLlm {
        pieces: vec!["Restart", " your router.", " Then", " wait two minutes."],
        gate_after: Some(2),
        gate: Mutex::new(Some(gate)),
        ..Default::default()
    });
    let (tx, rx) = crossbeam_channel::unbounded();
    call.brain.respond(
        &call.conv,
        &speech("my internet is slow"),
        BrainSink::new(1, tx),
    );
    // respond returned while the model is still generating.
    let mut text = String::new();
    while !text.contains("router.") {
        match rx
            .recv_timeout(Duration::from_secs(5))
            .expect("first sentence")
            .1
        {
            BrainChunk::Text(t) => text.push_str(&t),
            BrainChunk::Done => panic!("done before the rest was generated"),
            _ => {}
        }
    }
    assert_eq!(text, "Restart your router.");
    assert!(rx.try_recv().is_err(), "nothing more before the gate opens");
    open.send(()).unwrap();
    let rest = drain(&rx, 1);
    assert_eq!(rest.text, " Then wait two minutes. Anything else?");
    assert_eq!(
        var(&rest, "answer"),
        Some("Restart your router. Then wait two minutes.")
    );

    let req = llm.requests.lock().unwrap()[0].clone();
    assert_eq!(req.messages[0].role, Role::System);
    let system = &req.messages[0].content;
    assert!(system.starts_with("You are a helpful phone agent for Acme."));
    assert!(
        system.contains("restart your router") || system.contains("First restart"),
        "{system}"
    );
    assert_eq!(req.messages.last().unwrap().content, "my internet is slow");
    assert_eq!(req.messages.last().unwrap().role, Role::User);
    let trace = call.brain.run().trace().to_vec();
    assert!(trace
        .iter()
        .any(|t| t.node == "think" && t.event == "kb context: 2 passages"));
    assert!(trace
        .iter()
        .any(|t| t.node == "think" && t.event.starts_with("llm ok (")));
}

#[test]
fn llm_failure_without_error_edge_says_retry_and_tries_again() {
    let (mut call, llm) = chat_with(ScriptedLlm {
        pieces: vec!["Let me"],
        fail: true,
        ..Default::default()
    });
    let r = call.say(speech("what's my balance"));
    assert_eq!(
        r.text,
        "Let me Sorry, I'm having trouble with that right now. Could you say that again?"
    );
    assert_eq!(call.brain.run().current_node(), Some("think"));
    // The next turn asks the model again.
    call.say(speech("my balance please"));
    assert_eq!(llm.requests.lock().unwrap().len(), 2);
    let trace = call.brain.run().trace().to_vec();
    assert!(trace.iter().any(
        |t| t.event == "llm failed: model server unreachable or connection lost: reset by peer"
    ));
    assert!(trace.iter().any(|t| t.event == "retry after failure"));
}

#[test]
fn llm_timeout_follows_the_error_edge_when_there_is_one() {
    let flow = CHAT_FLOW
        .replace("\"timeout_ms\": 2000", "\"timeout_ms\": 20")
        .replace(
            "{\"from\": \"think\", \"to\": \"more\", \"on\": \"ok\"},",
            "{\"from\": \"think\", \"to\": \"more\", \"on\": \"ok\"}, {\"from\": \"think\", \"to\": \"bye\", \"on\": \"error\"},",
        );
    let llm = Arc::new(ScriptedLlm {
        hang: true,
        ..Default::default()
    });
    let mut s = services();
    s.llm = Some(llm);
    let mut call = Call::new(&flow, s);
    let r = call.say(speech("hello?"));
    assert_eq!(r.text, "Bye.");
    assert_eq!(
        r.actions,
        vec![
            Action::SetVariable {
                name: "question".into(),
                value: "hello?".into()
            },
            Action::Hangup
        ]
    );
    let trace = call.brain.run().trace().to_vec();
    assert!(trace
        .iter()
        .any(|t| t.event == "llm failed: model timed out after 20ms (first token)"));
}

#[test]
fn no_model_configured_is_a_failure_not_a_hang() {
    let mut call = Call::new(CHAT_FLOW, services());
    let r = call.say(speech("hi"));
    assert!(r.text.ends_with("Could you say that again?"));
}

// ------------------------------------------------------ FlowRun (pure) --

const BRANCHY: &str = r#"{
  "id": "branchy", "name": "Branches",
  "start": "q",
  "intents": [{"name": "billing", "examples": ["my bill"]}],
  "variables": {"tier": "gold"},
  "nodes": [
    {"id": "q", "type": "ask", "prompt": "Yes or no?", "variable": "answer", "validate": "yes_no", "max_attempts": 2},
    {"id": "b", "type": "branch"},
    {"id": "upset", "type": "transfer", "target": "queue:care", "text": "Sorry."},
    {"id": "bill", "type": "say", "text": "Billing it is."},
    {"id": "gold", "type": "say", "text": "Hello gold member."},
    {"id": "lookup", "type": "tool", "tool": "lookup", "url": "https://api.example.com/x/{{answer}}",
     "arguments": {"a": "{{answer}}"}, "save": {"plan": "/plan/name", "count": "/count"}, "timeout_ms": 1000},
    {"id": "done", "type": "hangup", "text": "Your plan is {{plan}}."},
    {"id": "fail", "type": "hangup", "text": "Lookup failed."}
  ],
  "edges": [
    {"from": "q", "to": "b", "on": "ok"},
    {"from": "q", "to": "fail", "on": "gave_up"},
    {"from": "b", "to": "upset", "on": "sentiment:negative"},
    {"from": "b", "to": "bill", "on": "intent:billing"},
    {"from": "b", "to": "gold", "on": "var:tier=GOLD|platinum"},
    {"from": "b", "to": "lookup", "on": "default"},
    {"from": "bill", "to": "lookup"},
    {"from": "gold", "to": "lookup"},
    {"from": "lookup", "to": "done", "on": "ok"},
    {"from": "lookup", "to": "fail", "on": "error"}
  ]
}"#;

fn ctx() -> FlowContext<'static> {
    let mut c = FlowContext::new(today());
    c.sentiment = test_sentiment;
    c
}

fn says(out: &[FlowOutput]) -> Vec<&str> {
    out.iter()
        .filter_map(|o| match o {
            FlowOutput::Say(s) => Some(s.as_str()),
            _ => None,
        })
        .collect()
}

fn branchy() -> FlowRun {
    let flow: Arc<ValidFlow> = Arc::new(Flow::parse(BRANCHY).unwrap());
    FlowRun::new(flow)
}

#[test]
fn branches_on_sentiment_then_intent_then_variable() {
    // Sentiment first (document order).
    let mut run = branchy();
    assert_eq!(says(&run.start(&ctx())), vec!["Yes or no?"]);
    let out = run.input(&speech("yes, and this is terrible"), &ctx());
    assert_eq!(says(&out), vec!["Sorry."]);
    assert_eq!(run.status(), RunStatus::Ended);

    // Intent next.
    let mut run = branchy();
    run.start(&ctx());
    let out = run.input(&speech("yes it's about my bill"), &ctx());
    assert_eq!(says(&out), vec!["Billing it is."]);
    assert!(matches!(out.last(), Some(FlowOutput::Effect(_))));

    // Then the variable (case-insensitive, any of a list).
    let mut run = branchy();
    run.start(&ctx());
    let out = run.input(&dtmf("2"), &ctx());
    assert_eq!(says(&out), vec!["Hello gold member."]);
    assert_eq!(run.variables()["answer"], "no");
}

#[test]
fn tool_results_go_into_variables_and_stale_results_are_ignored() {
    let mut run = branchy();
    run.start(&ctx());
    let out = run.input(&speech("yep"), &ctx());
    let Some(FlowOutput::Effect(req)) = out.last().cloned() else {
        panic!("{out:?}")
    };
    let Effect::Tool(tool) = &req.effect else {
        panic!()
    };
    assert_eq!(tool.url, "https://api.example.com/x/yes");
    assert_eq!(tool.arguments, json!({"a": "yes"}));
    assert_eq!(tool.timeout, Duration::from_secs(1));
    assert_eq!(run.status(), RunStatus::WaitingForEffect(req.id));

    let out = run.effect_done(
        req.id,
        EffectResult::Tool(Ok(json!({"plan": {"name": "Family"}, "count": 3}))),
        &ctx(),
    );
    assert_eq!(says(&out), vec!["Your plan is Family."]);
    assert!(out.contains(&FlowOutput::Action(Action::SetVariable {
        name: "count".into(),
        value: "3".into()
    })));
    assert_eq!(run.variables()["plan"], "Family");
    // A second result for the same effect changes nothing.
    let again = run.effect_done(req.id, EffectResult::Tool(Ok(json!({}))), &ctx());
    assert!(again.is_empty());

    // Timeout: the error edge.
    let mut run = branchy();
    run.start(&ctx());
    let out = run.input(&speech("yes"), &ctx());
    let Some(FlowOutput::Effect(req)) = out.last().cloned() else {
        panic!()
    };
    let out = run.effect_done(
        req.id,
        EffectResult::Tool(Err(ToolError::Timeout {
            name: "lookup".into(),
            after: Duration::from_secs(1),
        })),
        &ctx(),
    );
    assert_eq!(says(&out), vec!["Lookup failed."]);

    // The caller speaks while a tool runs: the effect is abandoned, the node
    // runs again, and the old result is ignored.
    let mut run = branchy();
    run.start(&ctx());
    let first = match run.input(&speech("yes"), &ctx()).pop() {
        Some(FlowOutput::Effect(r)) => r,
        other => panic!("{other:?}"),
    };
    let second = match run.input(&speech("hello?"), &ctx()).pop() {
        Some(FlowOutput::Effect(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_ne!(first.id, second.id);
    assert!(run
        .effect_done(first.id, EffectResult::Tool(Ok(json!({}))), &ctx())
        .is_empty());
    assert!(run
        .trace()
        .iter()
        .any(|t| t.event == format!("effect {} abandoned: the caller spoke", first.id.0)));
}

#[test]
fn execution_trace_records_nodes_edges_failures_and_effects() {
    let mut run = branchy();
    run.start(&ctx());
    run.input(&speech("purple"), &ctx());
    let out = run.input(&dtmf("1"), &ctx());
    let Some(FlowOutput::Effect(req)) = out.last().cloned() else {
        panic!()
    };
    run.effect_done(
        req.id,
        EffectResult::Tool(Ok(json!({"plan": {"name": "Basic"}}))),
        &ctx(),
    );
    let trace: Vec<(u32, &str, &str)> = run
        .trace()
        .iter()
        .map(|t| (t.turn, t.node.as_str(), t.event.as_str()))
        .collect();
    assert_eq!(
        trace,
        vec![
            (0, "q", "enter ask"),
            (1, "q", "input rejected (1/2): no yes or no heard"),
            (2, "q", "input accepted: answer=yes"),
            (2, "q", "edge q->b on ok -> b"),
            (2, "b", "enter branch"),
            (2, "b", "edge b->gold on var:tier=GOLD|platinum -> gold"),
            (2, "gold", "enter say"),
            (2, "gold", "edge gold->lookup on next -> lookup"),
            (2, "lookup", "enter tool"),
            (2, "lookup", "effect 1 requested: tool lookup"),
            (2, "lookup", "tool lookup ok"),
            (2, "lookup", "tool result has no `/count` for count"),
            (2, "lookup", "edge lookup->done on ok -> done"),
            (2, "done", "enter hangup"),
            (2, "done", "end: hang up"),
        ]
    );
}

#[test]
fn runs_are_deterministic() {
    let script = [speech("hmm"), speech("sure, my bill"), dtmf("9")];
    let go = || {
        let mut run = branchy();
        let mut outs = vec![run.start(&ctx())];
        for s in &script {
            outs.push(run.input(s, &ctx()));
        }
        (outs, run.trace().to_vec(), run.variables().clone())
    };
    assert_eq!(go(), go());
}

#[test]
fn analysis_suggests_the_lines_on_the_open_branches() {
    let mut call = Call::new(
        APPOINTMENT_BOOKING,
        appointment_services(CannedTools::default()),
    );
    call.say(speech("a cleaning"));
    let r = call.say(speech("tomorrow at 4"));
    assert_eq!(var(&r, "when"), Some("2026-11-25 16:00"));
    let a = r.analysis.unwrap();
    assert_eq!(
        a.suggestions,
        vec![
            "What's the best number to reach you? You can say it or key it in.".to_string(),
            "Let me put you through to our front desk.".to_string()
        ]
    );
    assert_eq!(a.sentiment.label, SentimentLabel::Neutral);
    // DTMF turns have no intent.
    let r = call.say(dtmf("12"));
    assert!(r.analysis.unwrap().intent.is_none());
}

#[test]
fn barge_in_during_a_model_turn_abandons_it() {
    let (open, gate) = crossbeam_channel::bounded::<()>(1);
    let (mut call, llm) = chat_with(ScriptedLlm {
        pieces: vec!["First answer.", " More of the first."],
        gate_after: Some(1),
        gate: Mutex::new(Some(gate)),
        ..Default::default()
    });
    let (tx1, rx1) = crossbeam_channel::unbounded();
    call.brain
        .respond(&call.conv, &speech("question one"), BrainSink::new(1, tx1));
    loop {
        match rx1
            .recv_timeout(Duration::from_secs(5))
            .expect("first piece")
            .1
        {
            BrainChunk::Text(t) => {
                assert_eq!(t, "First answer.");
                break;
            }
            BrainChunk::Analysis(_) | BrainChunk::Action(_) => {}
            other => panic!("{other:?}"),
        }
    }
    // The caller interrupts: a new reply asks the model again (no gate now).
    let r = call.say(speech("actually, question two"));
    assert_eq!(
        r.text, "First answer. More of the first. Anything else?",
        "the second model turn streams in full"
    );
    assert_eq!(llm.requests.lock().unwrap().len(), 2);
    // The first turn's worker stops at its next token and drops its sink:
    // nothing more arrives on the first reply.
    open.send(()).unwrap();
    match rx1.recv_timeout(Duration::from_secs(5)) {
        Ok((_, chunk)) => panic!("stale reply kept going: {chunk:?}"),
        Err(e) => assert_eq!(e, crossbeam_channel::RecvTimeoutError::Disconnected),
    }
    let trace = call.brain.run().trace().to_vec();
    assert!(trace
        .iter()
        .any(|t| t.event == "effect 1 abandoned: the caller spoke"));
}
