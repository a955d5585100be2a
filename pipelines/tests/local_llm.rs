//! The embedded LLM with the real model (SmolLM2-135M-Instruct, Q4_1).
//!
//! The tests share one loaded model and take turns (a lock), so the timings
//! they print are not skewed by each other. Run with `--nocapture` to see
//! them.

use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use vocelio_pipelines::brain::llm::{ChatMessage, ChatModel, ChatRequest, LlmEvent, Role};
use vocelio_pipelines::brain::local_llm::{LocalLlm, LocalLlmConfig, LocalLlmError};
use vocelio_pipelines::models::{files, test_model_dir, ModelDir};

const SYSTEM: &str = "You are a friendly phone agent for a dental clinic. \
Answer in one or two short sentences.";

fn model() -> &'static LocalLlm {
    static MODEL: OnceLock<LocalLlm> = OnceLock::new();
    MODEL.get_or_init(|| {
        let rss_before = rss_mb();
        let t = Instant::now();
        // VOCELIO_TEST_LLM (a GGUF path) and VOCELIO_TEST_LLM_THREADS compare
        // variants; the default is the engine's default model and config.
        let mut config = LocalLlmConfig::default();
        if let Some(n) = std::env::var("VOCELIO_TEST_LLM_THREADS")
            .ok()
            .and_then(|n| n.parse().ok())
        {
            config.threads = n;
        }
        let m = match std::env::var_os("VOCELIO_TEST_LLM") {
            Some(path) => LocalLlm::load(path, config),
            None => LocalLlm::load_from(&test_model_dir(), config),
        }
        .expect("load SmolLM2 (run scripts/setup.sh)");
        println!(
            "[local_llm] loaded {} in {:?}; RSS {:.0} MB (+{:.0} MB)",
            m.name(),
            t.elapsed(),
            rss_mb(),
            rss_mb() - rss_before
        );
        m
    })
}

/// One test at a time: they share the model's single worker and the CPU.
fn turn() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn chat(user: &str) -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::new(Role::System, SYSTEM),
        ChatMessage::new(Role::User, user),
    ])
}

/// A finished reply and when things happened.
struct Reply {
    pieces: Vec<String>,
    last: LlmEvent,
    first_piece: Option<Duration>,
    first_sentence: Option<Duration>,
    total: Duration,
}

impl Reply {
    fn text(&self) -> String {
        self.pieces.concat()
    }
}

fn run(request: ChatRequest) -> Reply {
    let start = Instant::now();
    let rx = model().chat(request);
    let mut pieces = Vec::new();
    let mut first_piece = None;
    let mut first_sentence = None;
    loop {
        let ev = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("an event within 60 s");
        match ev {
            LlmEvent::Text(t) => {
                first_piece.get_or_insert_with(|| start.elapsed());
                if first_sentence.is_none() && t.contains(['.', '?', '!']) {
                    first_sentence = Some(start.elapsed());
                }
                pieces.push(t);
            }
            last @ (LlmEvent::Done { .. } | LlmEvent::Failed(_)) => {
                return Reply {
                    pieces,
                    last,
                    first_piece,
                    first_sentence,
                    total: start.elapsed(),
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
}

fn done_counts(r: &Reply) -> (u32, u32) {
    match r.last {
        LlmEvent::Done {
            tokens,
            prompt_tokens: Some(p),
        } => (tokens, p),
        ref other => panic!("expected Done with prompt tokens, got {other:?}"),
    }
}

#[test]
fn streams_several_pieces_then_done() {
    let _t = turn();
    let r = run(chat("Hello! Can you tell me your opening hours?"));
    let (tokens, prompt) = done_counts(&r);
    println!(
        "[local_llm] reply ({tokens} tokens, prompt {prompt}): {:?}",
        r.text()
    );
    assert!(r.pieces.len() >= 3, "streamed in pieces: {:?}", r.pieces);
    assert!(tokens as usize >= r.pieces.len() / 2 && tokens > 0);
    assert!(prompt > 10);
}

#[test]
fn answers_a_simple_instruction_in_english() {
    let _t = turn();
    let r = run(chat(
        "Say good morning to the caller and ask how you can help.",
    ));
    done_counts(&r);
    let text = r.text();
    println!("[local_llm] instruction reply: {text:?}");
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().any(|c| c.is_ascii_alphabetic()))
        .collect();
    assert!(words.len() >= 3, "a few words: {text:?}");
    let ascii = text.chars().filter(|c| c.is_ascii()).count();
    assert!(ascii * 10 >= text.chars().count() * 9, "English: {text:?}");
    let common = [
        "the", "you", "i", "to", "a", "how", "can", "help", "good", "morning",
    ];
    assert!(
        words.iter().any(|w| common.contains(
            &w.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
                .as_str()
        )),
        "common English words: {text:?}"
    );
}

#[test]
fn long_history_is_cut_to_the_prompt_limit_and_still_answered() {
    let _t = turn();
    let limit = model().config().max_prompt_tokens;
    let mut messages = vec![ChatMessage::new(Role::System, SYSTEM)];
    for i in 0..300 {
        messages.push(ChatMessage::new(
            Role::User,
            format!("This is old message number {i} about my appointment next week."),
        ));
        messages.push(ChatMessage::new(
            Role::Assistant,
            format!("Noted, message {i}. Is there anything else?"),
        ));
    }
    messages.push(ChatMessage::new(Role::User, "What is your phone number?"));
    let t = Instant::now();
    let r = run(ChatRequest::new(messages));
    let (tokens, prompt) = done_counts(&r);
    println!(
        "[local_llm] 601-message history: prompt {prompt} tokens (limit {limit}), first piece {:?}, total {:?}, bounding+reply {:?}: {:?}",
        r.first_piece,
        r.total,
        t.elapsed(),
        r.text()
    );
    assert!(prompt <= limit, "{prompt} > {limit}");
    assert!(prompt > limit / 2, "kept as much as fits: {prompt}");
    assert!(tokens > 0 && !r.text().trim().is_empty());

    // One message far over the limit on its own: its end is kept.
    let huge = format!("{} Please just say hello.", "blah ".repeat(5000));
    let r = run(chat(&huge));
    let (_, prompt) = done_counts(&r);
    println!(
        "[local_llm] one huge message: prompt {prompt} tokens: {:?}",
        r.text()
    );
    assert!(prompt <= limit);
}

#[test]
fn dropping_the_receiver_frees_the_worker() {
    let _t = turn();
    let mut long = chat("Tell me a very long story about a dragon, with many details.");
    long.max_tokens = 1000;
    let start = Instant::now();
    let rx = model().chat(long);
    let first = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("first piece");
    assert!(matches!(first, LlmEvent::Text(_)), "{first:?}");
    drop(rx);
    let cancelled_at = start.elapsed();
    // The next request gets the worker at once (after at most one token).
    let r = run(chat("Hi!"));
    done_counts(&r);
    let waited = r.first_piece.expect("a reply");
    println!(
        "[local_llm] cancelled after {cancelled_at:?}; next request's first piece after {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "the worker kept generating for the dropped request: {waited:?}"
    );
}

#[test]
fn queued_requests_wait_their_turn() {
    let _t = turn();
    let a = model().chat(chat("Hello!"));
    let b = model().chat(chat("Good evening!"));
    for rx in [a, b] {
        let events: Vec<LlmEvent> = rx.iter().collect();
        assert!(
            matches!(events.last(), Some(LlmEvent::Done { .. })),
            "{events:?}"
        );
        assert!(events.iter().any(|e| matches!(e, LlmEvent::Text(_))));
    }
}

#[test]
fn missing_model_file_is_named() {
    let e = LocalLlm::load("/nonexistent/models/x.gguf", LocalLlmConfig::default()).unwrap_err();
    assert!(matches!(e, LocalLlmError::Missing(_)));
    let msg = e.to_string();
    assert!(
        msg.contains("/nonexistent/models/x.gguf") && msg.contains("scripts/setup.sh"),
        "{msg}"
    );
    let e = LocalLlm::load_from(
        &ModelDir::new("/nonexistent/models"),
        LocalLlmConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains(files::SMOLLM2) && e.contains("/nonexistent/models"),
        "{e}"
    );
}

/// Figures, printed not asserted: time to first token and to first sentence
/// with a ~170-token prompt, and tokens per second, over a few runs.
#[test]
fn latency_figures() {
    let _t = turn();
    let history = [
        (
            Role::User,
            "Hi, I would like to book a cleaning appointment for next week.",
        ),
        (Role::Assistant, "Of course. Which day would suit you best?"),
        (
            Role::User,
            "Tuesday or Wednesday afternoon, if you have something free then.",
        ),
        (
            Role::Assistant,
            "We have Tuesday at three or Wednesday at four. Which one do you prefer?",
        ),
    ];
    let mut ttft = Vec::new();
    let mut sentence = Vec::new();
    let mut rate = Vec::new();
    let mut prompt = 0;
    for i in 0..5 {
        let mut messages = vec![ChatMessage::new(
            Role::System,
            format!(
                "{SYSTEM} The clinic is open Monday to Friday from eight to six. \
                 Cleanings take forty minutes and cost sixty dollars. Be brief and polite. \
                 Never make up prices or times that were not given. Call {i}."
            ),
        )];
        messages.extend(history.iter().map(|(r, t)| ChatMessage::new(*r, *t)));
        messages.push(ChatMessage::new(
            Role::User,
            "Wednesday works. How much will it cost and how long does it take?",
        ));
        let r = run(ChatRequest::new(messages));
        let (tokens, p) = done_counts(&r);
        prompt = p;
        let first = r.first_piece.expect("text");
        ttft.push(first);
        if let Some(s) = r.first_sentence {
            sentence.push(s);
        }
        if tokens > 1 {
            rate.push(f64::from(tokens - 1) / (r.total - first).as_secs_f64());
        }
    }
    let p50 = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied()
    };
    rate.sort_by(f64::total_cmp);
    println!(
        "[local_llm] prompt {prompt} tokens, {} threads: TTFT p50 {:?} (all {:?}); first sentence p50 {:?}; {:.0} tokens/s p50; RSS {:.0} MB",
        model().config().threads,
        p50(&mut ttft),
        ttft,
        p50(&mut sentence),
        rate.get(rate.len() / 2).copied().unwrap_or(0.0),
        rss_mb()
    );
}

/// whisper.cpp and llama.cpp in one process on the one shared ggml (two
/// copies linked together used to abort in llama with a GGML_ASSERT).
#[test]
fn whisper_and_llama_run_in_one_process() {
    use vocelio_pipelines::stt::{SpeechToText, WhisperModel};
    let _t = turn();
    let stt = SpeechToText::load(&test_model_dir(), WhisperModel::TinyEnQ8).expect("whisper");
    let mut w = stt.worker(1).unwrap();
    let clip = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/audio/piper_booking.16k.wav");
    let pcm = vocelio_codecs::wav::read(clip).unwrap();
    let heard = w.transcribe_i16(&pcm.samples).unwrap();
    let r = run(chat(&heard));
    done_counts(&r);
    println!(
        "[local_llm] whisper heard {heard:?}; LLM said {:?}",
        r.text()
    );
    assert!(heard.to_lowercase().contains("appointment"), "{heard:?}");
    assert!(!r.text().trim().is_empty());
    // And whisper still works after llama ran.
    assert_eq!(w.transcribe_i16(&pcm.samples).unwrap(), heard);
}
