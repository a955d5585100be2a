//! `OpenAiChat`, `HttpToolRunner` and `LlmBrain` against a local server
//! speaking the OpenAI streaming protocol (axum on 127.0.0.1:0), scripted
//! per request: chunks, holds until the test releases them, error statuses,
//! dropped connections, garbage.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use crossbeam_channel::{Receiver, Sender};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use vocelio_codecs::MediaTime;
use vocelio_pipelines::brain::kb::{Passage, Retriever};
use vocelio_pipelines::brain::llm::{
    ChatMessage, ChatModel, ChatRequest, LlmError, LlmEvent, Role, ToolCall, ToolSpec,
};
use vocelio_pipelines::brain::llm_brain::{LlmBrain, LlmBrainConfig, LlmTool};
use vocelio_pipelines::brain::openai::{OpenAiChat, OpenAiConfig};
use vocelio_pipelines::brain::tools::{HttpToolRunner, ToolError, ToolRequest, ToolRunner};
use vocelio_pipelines::brain::{
    Action, Brain, BrainChunk, BrainSink, Conversation, Speaker, Turn, TurnInput,
};

const WAIT: Duration = Duration::from_secs(5);
const FALLBACK: &str = "Sorry, I didn't catch that, could you say it again?";

// ---- the scripted server ------------------------------------------------

/// One step of a streamed reply.
enum Step {
    /// Send these bytes as one body chunk.
    Send(String),
    /// Hold until the test fires (or drops) the sender.
    Wait(oneshot::Receiver<()>),
    /// Break the connection (body error: no terminating chunk).
    Abort,
    /// Keep sending text chunks every 5 ms until the client goes away.
    Flood,
}

/// What the server does with one chat request.
enum Reply {
    /// 200, `text/event-stream`, these steps.
    Stream(Vec<Step>),
    /// Hold the response headers until released.
    StallHeaders(oneshot::Receiver<()>),
    /// An error status with this body.
    Status(u16, String),
    /// 200 with one `application/json` completion (stream ignored).
    Whole(Value),
}

/// What a tool webhook does.
enum ToolReply {
    Json(Value),
    Status(u16),
    Text(String),
    Hang(oneshot::Receiver<()>),
}

/// A request the server saw.
#[derive(Debug)]
struct Seen {
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct Srv {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    tool_replies: Arc<Mutex<VecDeque<ToolReply>>>,
    seen: Sender<Seen>,
    seen_tools: Sender<(String, Seen)>,
    gone: Sender<()>,
}

struct TestServer {
    _rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    srv: Srv,
    seen: Receiver<Seen>,
    seen_tools: Receiver<(String, Seen)>,
    gone: Receiver<()>,
}

fn text_chunk(s: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":s},"finish_reason":null}]})
    )
}

fn finish_chunk(reason: &str) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices":[{"index":0,"delta":{},"finish_reason":reason}]})
    )
}

fn usage_chunk(prompt: u32, completion: u32) -> String {
    format!(
        "data: {}\n\n",
        json!({"choices":[],"usage":{"prompt_tokens":prompt,"completion_tokens":completion,"total_tokens":prompt+completion}})
    )
}

fn tool_chunk(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> String {
    let mut call = json!({"index": index, "function": {"arguments": args}});
    if let Some(id) = id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    if let Some(name) = name {
        call["function"]["name"] = json!(name);
    }
    format!(
        "data: {}\n\n",
        json!({"choices":[{"index":0,"delta":{"tool_calls":[call]}}]})
    )
}

const DONE: &str = "data: [DONE]\n\n";

/// A complete streamed reply of these text pieces.
fn reply_of(pieces: &[&str]) -> Reply {
    let mut steps: Vec<Step> = pieces.iter().map(|p| Step::Send(text_chunk(p))).collect();
    steps.push(Step::Send(finish_chunk("stop")));
    steps.push(Step::Send(DONE.into()));
    Reply::Stream(steps)
}

async fn chat(State(st): State<Srv>, headers: HeaderMap, body: Bytes) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = st.seen.send(Seen { headers, body });
    let reply = st.replies.lock().unwrap().pop_front();
    let steps = match reply {
        None => return (StatusCode::SERVICE_UNAVAILABLE, "no reply scripted").into_response(),
        Some(Reply::Status(code, text)) => {
            return (StatusCode::from_u16(code).unwrap(), text).into_response()
        }
        Some(Reply::StallHeaders(release)) => {
            let _ = release.await;
            return (StatusCode::SERVICE_UNAVAILABLE, "released").into_response();
        }
        Some(Reply::Whole(v)) => return axum::Json(v).into_response(),
        Some(Reply::Stream(steps)) => steps,
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let gone = st.gone.clone();
    tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Send(s) => {
                    if tx.send(Ok(Bytes::from(s))).await.is_err() {
                        let _ = gone.send(());
                        return;
                    }
                }
                Step::Wait(release) => {
                    let _ = release.await;
                }
                Step::Abort => {
                    let _ = tx.send(Err(std::io::Error::other("dropped"))).await;
                    return;
                }
                Step::Flood => {
                    for _ in 0..1000 {
                        if tx.send(Ok(Bytes::from(text_chunk("x")))).await.is_err() {
                            let _ = gone.send(());
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn tool(
    State(st): State<Srv>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let _ = st.seen_tools.send((name, Seen { headers, body }));
    let reply = st.tool_replies.lock().unwrap().pop_front();
    match reply {
        Some(ToolReply::Json(v)) => axum::Json(v).into_response(),
        Some(ToolReply::Status(code)) => StatusCode::from_u16(code).unwrap().into_response(),
        Some(ToolReply::Text(t)) => t.into_response(),
        Some(ToolReply::Hang(release)) => {
            let _ = release.await;
            StatusCode::GONE.into_response()
        }
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl TestServer {
    fn start() -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (seen_tx, seen) = crossbeam_channel::unbounded();
        let (tools_tx, seen_tools) = crossbeam_channel::unbounded();
        let (gone_tx, gone) = crossbeam_channel::unbounded();
        let srv = Srv {
            replies: Arc::default(),
            tool_replies: Arc::default(),
            seen: seen_tx,
            seen_tools: tools_tx,
            gone: gone_tx,
        };
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/tool/{name}", post(tool))
            .with_state(srv.clone());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(async move { axum::serve(listener, app).await });
        TestServer {
            _rt: rt,
            addr,
            srv,
            seen,
            seen_tools,
            gone,
        }
    }

    fn reply(&self, r: Reply) {
        self.srv.replies.lock().unwrap().push_back(r);
    }

    fn tool_reply(&self, r: ToolReply) {
        self.srv.tool_replies.lock().unwrap().push_back(r);
    }

    fn config(&self) -> OpenAiConfig {
        let mut c = OpenAiConfig::new(format!("http://{}/v1", self.addr), "test-model");
        c.api_key = Some("sk-test".into());
        c.connect_timeout_ms = 500;
        c.first_token_timeout_ms = 2_000;
        c.idle_timeout_ms = 2_000;
        c.total_timeout_ms = 10_000;
        c
    }

    fn chat(&self) -> Arc<OpenAiChat> {
        Arc::new(OpenAiChat::new(self.config()).unwrap())
    }

    fn seen(&self) -> Seen {
        self.seen
            .recv_timeout(WAIT)
            .expect("a request reached the server")
    }
}

// ---- helpers ----------------------------------------------------------------

/// Events until Done or Failed.
fn events(rx: &Receiver<LlmEvent>) -> Vec<LlmEvent> {
    let mut out = Vec::new();
    loop {
        let ev = rx.recv_timeout(WAIT).expect("model finishes in time");
        let end = matches!(ev, LlmEvent::Done { .. } | LlmEvent::Failed(_));
        out.push(ev);
        if end {
            return out;
        }
    }
}

fn text_of(evs: &[LlmEvent]) -> String {
    evs.iter()
        .filter_map(|e| match e {
            LlmEvent::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn user(text: &str) -> ChatRequest {
    ChatRequest::new(vec![
        ChatMessage::new(Role::System, "Be brief."),
        ChatMessage::new(Role::User, text),
    ])
}

fn speech(text: &str) -> TurnInput {
    TurnInput::Speech {
        text: text.into(),
        at: MediaTime::ZERO,
    }
}

/// Run one turn; chunks up to and including Done.
fn turn(brain: &mut LlmBrain, conv: &Conversation, input: &str) -> Vec<BrainChunk> {
    let (tx, rx) = crossbeam_channel::unbounded();
    brain.respond(conv, &speech(input), BrainSink::new(3, tx));
    let mut out = Vec::new();
    loop {
        let (reply, chunk) = rx.recv_timeout(WAIT).expect("brain finishes the turn");
        assert_eq!(reply, 3);
        let done = chunk == BrainChunk::Done;
        out.push(chunk);
        if done {
            // Nothing after Done.
            assert!(rx.recv_timeout(Duration::from_millis(50)).is_err());
            return out;
        }
    }
}

fn spoken(chunks: &[BrainChunk]) -> String {
    chunks
        .iter()
        .filter_map(|c| match c {
            BrainChunk::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn brain(server: &TestServer, config: LlmBrainConfig) -> LlmBrain {
    LlmBrain::new(config, server.chat()).unwrap()
}

#[derive(Debug)]
struct FixedKb(Vec<Passage>, Mutex<Vec<String>>);

impl Retriever for FixedKb {
    fn search(&self, query: &str, k: usize) -> Vec<Passage> {
        self.1.lock().unwrap().push(query.to_string());
        self.0.iter().take(k).cloned().collect()
    }
}

// ---- OpenAiChat ---------------------------------------------------------------

#[test]
fn streamed_reply_arrives_in_pieces_before_the_server_finishes() {
    let server = TestServer::start();
    let (release, hold) = oneshot::channel();
    server.reply(Reply::Stream(vec![
        Step::Send(": keep-alive\n\n".into()),
        Step::Send(text_chunk("Hello")),
        Step::Wait(hold),
        Step::Send(text_chunk(" there")),
        Step::Send(text_chunk(", friend.")),
        Step::Send(finish_chunk("stop")),
        Step::Send(usage_chunk(12, 3)),
        Step::Send(DONE.into()),
    ]));
    let rx = server.chat().chat(user("hi"));
    // The server holds the rest until we have the first piece.
    assert_eq!(
        rx.recv_timeout(WAIT).expect("first piece before the rest"),
        LlmEvent::Text("Hello".into())
    );
    release.send(()).unwrap();
    let rest = events(&rx);
    assert_eq!(
        rest,
        vec![
            LlmEvent::Text(" there".into()),
            LlmEvent::Text(", friend.".into()),
            LlmEvent::Done {
                tokens: 3,
                prompt_tokens: Some(12)
            }
        ]
    );
}

#[test]
fn request_body_and_auth_header() {
    let server = TestServer::start();
    server.reply(reply_of(&["ok"]));
    server.reply(reply_of(&["ok"]));
    let chat = server.chat();
    let mut asst = ChatMessage::new(Role::Assistant, "");
    asst.tool_calls.push(ToolCall {
        id: "call_9".into(),
        name: "lookup".into(),
        arguments: "{\"order\":42}".into(),
    });
    let mut result = ChatMessage::new(Role::Tool, "{\"status\":\"shipped\"}");
    result.tool_call_id = Some("call_9".into());
    let mut req = user("Where is my order?");
    req.messages.push(asst);
    req.messages.push(result);
    req.tools.push(ToolSpec {
        name: "lookup".into(),
        description: "Find an order".into(),
        parameters: json!({"type":"object","properties":{"order":{"type":"integer"}}}),
    });
    req.max_tokens = 64;
    req.temperature = 0.5;
    assert_eq!(text_of(&events(&chat.chat(req))), "ok");
    let seen = server.seen();
    assert_eq!(seen.headers["authorization"], "Bearer sk-test");
    assert_eq!(seen.headers["content-type"], "application/json");
    let b = &seen.body;
    assert_eq!(b["model"], "test-model");
    assert_eq!(b["stream"], true);
    assert_eq!(b["max_tokens"], 64);
    assert_eq!(b["temperature"], 0.5);
    assert_eq!(b["stream_options"]["include_usage"], true);
    assert_eq!(
        b["messages"],
        json!([
            {"role":"system","content":"Be brief."},
            {"role":"user","content":"Where is my order?"},
            {"role":"assistant","content":null,"tool_calls":[
                {"id":"call_9","type":"function","function":{"name":"lookup","arguments":"{\"order\":42}"}}]},
            {"role":"tool","content":"{\"status\":\"shipped\"}","tool_call_id":"call_9"},
        ])
    );
    assert_eq!(b["tools"][0]["type"], "function");
    assert_eq!(b["tools"][0]["function"]["name"], "lookup");
    assert_eq!(
        b["tools"][0]["function"]["parameters"]["properties"]["order"]["type"],
        "integer"
    );
    // The config caps max_tokens.
    let mut big = user("hi");
    big.max_tokens = 100_000;
    events(&chat.chat(big));
    assert_eq!(server.seen().body["max_tokens"], 256);
}

#[test]
fn slow_first_token_times_out() {
    let server = TestServer::start();
    let (_release_headers, stall) = oneshot::channel();
    let (_release_body, hold) = oneshot::channel();
    server.reply(Reply::StallHeaders(stall));
    server.reply(Reply::Stream(vec![
        Step::Send(": thinking\n\n".into()),
        Step::Wait(hold),
    ]));
    let mut config = server.config();
    config.first_token_timeout_ms = 150;
    let chat = Arc::new(OpenAiChat::new(config).unwrap());
    // No headers in time.
    let t0 = Instant::now();
    let evs = events(&chat.chat(user("hi")));
    assert_eq!(
        evs,
        vec![LlmEvent::Failed(LlmError::Timeout {
            after: Duration::from_millis(150),
            stage: "first token"
        })]
    );
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // Headers and a keep-alive, but no token: the brain says its fallback.
    let mut b = LlmBrain::new(LlmBrainConfig::new("Be brief."), chat).unwrap();
    let chunks = turn(&mut b, &Conversation::default(), "hello?");
    assert_eq!(spoken(&chunks), FALLBACK);
    assert!(matches!(chunks[0], BrainChunk::Analysis(_)), "{chunks:?}");
}

#[test]
fn silence_after_the_first_token_times_out_as_stream() {
    let server = TestServer::start();
    let (_release, hold) = oneshot::channel();
    server.reply(Reply::Stream(vec![
        Step::Send(text_chunk("Hi")),
        Step::Wait(hold),
    ]));
    let mut config = server.config();
    config.idle_timeout_ms = 120;
    let evs = events(&OpenAiChat::new(config).unwrap().chat(user("hi")));
    assert_eq!(
        evs,
        vec![
            LlmEvent::Text("Hi".into()),
            LlmEvent::Failed(LlmError::Timeout {
                after: Duration::from_millis(120),
                stage: "stream"
            })
        ]
    );
}

#[test]
fn error_status_gives_status_and_the_fallback_line() {
    let server = TestServer::start();
    server.reply(Reply::Status(500, "{\"error\":\"model exploded\"}".into()));
    server.reply(Reply::Status(503, "overloaded".into()));
    let evs = events(&server.chat().chat(user("hi")));
    assert_eq!(
        evs,
        vec![LlmEvent::Failed(LlmError::Status {
            status: 500,
            body: "{\"error\":\"model exploded\"}".into()
        })]
    );
    let mut b = brain(&server, LlmBrainConfig::new("Be brief."));
    let chunks = turn(&mut b, &Conversation::default(), "hello?");
    assert_eq!(spoken(&chunks), FALLBACK);
}

#[test]
fn connection_dropped_mid_stream_keeps_what_was_said() {
    let server = TestServer::start();
    for _ in 0..2 {
        server.reply(Reply::Stream(vec![
            Step::Send(text_chunk("Let me check")),
            Step::Send(text_chunk(" that.")),
            Step::Abort,
        ]));
    }
    let evs = events(&server.chat().chat(user("hi")));
    assert_eq!(text_of(&evs), "Let me check that.");
    assert!(
        matches!(
            evs.last(),
            Some(LlmEvent::Failed(LlmError::Connection { .. }))
        ),
        "{evs:?}"
    );
    // The brain ends the turn cleanly: no fallback after real words.
    let mut b = brain(&server, LlmBrainConfig::new("Be brief."));
    let chunks = turn(&mut b, &Conversation::default(), "hi");
    assert_eq!(spoken(&chunks), "Let me check that.");
}

#[test]
fn garbage_and_malformed_streams_are_protocol_errors() {
    let server = TestServer::start();
    server.reply(Reply::Stream(vec![Step::Send(
        "<html><body>502 Bad Gateway</body></html>\n".into(),
    )]));
    server.reply(Reply::Stream(vec![
        Step::Send(text_chunk("ok")),
        Step::Send("data: {\"choices\":[{\"delta\":\n\n".into()),
        Step::Send(DONE.into()),
    ]));
    server.reply(Reply::Stream(vec![Step::Send(
        "\u{0}\u{1}\r\r\n:\ndata\u{ff}: \u{7f}\n\n".into(),
    )]));
    let chat = server.chat();
    for expect_text in ["", "ok", ""] {
        let evs = events(&chat.chat(user("hi")));
        assert_eq!(text_of(&evs), expect_text);
        assert!(
            matches!(
                evs.last(),
                Some(LlmEvent::Failed(LlmError::Protocol { .. }))
            ),
            "{evs:?}"
        );
    }
}

#[test]
fn unreachable_server_is_a_connection_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let chat = OpenAiChat::new(OpenAiConfig::new(
        format!("http://127.0.0.1:{port}/v1"),
        "m",
    ))
    .unwrap();
    let evs = events(&chat.chat(user("hi")));
    assert!(
        matches!(
            evs.as_slice(),
            [LlmEvent::Failed(LlmError::Connection { .. })]
        ),
        "{evs:?}"
    );
}

#[test]
fn dropping_the_receiver_cancels_the_request() {
    let server = TestServer::start();
    server.reply(Reply::Stream(vec![
        Step::Send(text_chunk("a")),
        Step::Flood,
    ]));
    let rx = server.chat().chat(user("hi"));
    assert_eq!(rx.recv_timeout(WAIT), Ok(LlmEvent::Text("a".into())));
    drop(rx);
    // The client closes the connection; the flooding server notices.
    server
        .gone
        .recv_timeout(WAIT)
        .expect("server saw the client go away");
}

#[test]
fn a_reply_that_never_ends_hits_the_total_deadline() {
    let server = TestServer::start();
    server.reply(Reply::Stream(vec![Step::Flood]));
    let mut config = server.config();
    config.total_timeout_ms = 200;
    let evs = events(&OpenAiChat::new(config).unwrap().chat(user("hi")));
    assert!(evs.len() > 2, "text streamed until the deadline: {evs:?}");
    assert_eq!(
        evs.last(),
        Some(&LlmEvent::Failed(LlmError::Timeout {
            after: Duration::from_millis(200),
            stage: "total"
        }))
    );
}

#[test]
fn a_server_ignoring_stream_still_works() {
    let server = TestServer::start();
    server.reply(Reply::Whole(json!({
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Whole reply."},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 4, "completion_tokens": 2}
    })));
    let evs = events(&server.chat().chat(user("hi")));
    assert_eq!(
        evs,
        vec![
            LlmEvent::Text("Whole reply.".into()),
            LlmEvent::Done {
                tokens: 2,
                prompt_tokens: Some(4)
            }
        ]
    );
}

// ---- LlmBrain -----------------------------------------------------------------

#[test]
fn brain_streams_bounded_history_with_knowledge() {
    let server = TestServer::start();
    server.reply(reply_of(&["We open", " at nine."]));
    let mut conv = Conversation::default();
    for i in 0..10 {
        let speaker = if i % 2 == 0 {
            Speaker::Agent
        } else {
            Speaker::Caller
        };
        conv.turns.push(Turn {
            speaker,
            text: format!("turn {i}"),
            at: MediaTime::ZERO,
            interrupted: false,
        });
    }
    let mut config = LlmBrainConfig::new("You are the clinic's receptionist.");
    config.greeting = Some("Clinic, hello!".into());
    config.max_history_turns = 4;
    config.max_tokens = 99;
    let kb = Arc::new(FixedKb(
        vec![Passage {
            source: "hours.md".into(),
            text: "Open 9 to 5 on weekdays.".into(),
            score: 0.8,
        }],
        Mutex::default(),
    ));
    let mut b = brain(&server, config).with_retriever(kb.clone());
    assert_eq!(b.greeting().as_deref(), Some("Clinic, hello!"));
    let chunks = turn(&mut b, &conv, "When do you open?");
    assert!(matches!(chunks[0], BrainChunk::Analysis(_)), "{chunks:?}");
    // The supervisor is offered the passage the model was given.
    match &chunks[0] {
        BrainChunk::Analysis(a) => assert!(
            a.suggestions
                .iter()
                .any(|s| s == "Open 9 to 5 on weekdays."),
            "{:?}",
            a.suggestions
        ),
        other => panic!("{other:?}"),
    }
    let texts: Vec<_> = chunks
        .iter()
        .filter(|c| matches!(c, BrainChunk::Text(_)))
        .collect();
    assert_eq!(texts.len(), 2, "streamed as it arrived");
    assert_eq!(spoken(&chunks), "We open at nine.");
    assert_eq!(*kb.1.lock().unwrap(), vec!["When do you open?".to_string()]);

    let seen = server.seen();
    assert_eq!(seen.headers["authorization"], "Bearer sk-test");
    assert_eq!(seen.body["max_tokens"], 99);
    let msgs = seen.body["messages"].as_array().unwrap();
    let system = msgs[0]["content"].as_str().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    assert!(system.starts_with("You are the clinic's receptionist."));
    assert!(
        system.contains("hours.md") && system.contains("Open 9 to 5"),
        "{system}"
    );
    let rest: Vec<(&str, &str)> = msgs[1..]
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rest,
        vec![
            ("assistant", "turn 6"),
            ("user", "turn 7"),
            ("assistant", "turn 8"),
            ("user", "turn 9 When do you open?"),
        ]
    );
    assert!(seen.body.get("tools").is_none());
}

#[test]
fn tool_call_round_trip() {
    let server = TestServer::start();
    server.reply(Reply::Stream(vec![
        Step::Send(tool_chunk(0, Some("call_1"), Some("get_weather"), "")),
        Step::Send(tool_chunk(0, None, None, "{\"ci")),
        Step::Send(tool_chunk(0, None, None, "ty\":\"Oslo\"}")),
        Step::Send(finish_chunk("tool_calls")),
        Step::Send(DONE.into()),
    ]));
    server.reply(reply_of(&["It is 3 degrees", " in Oslo."]));
    server.tool_reply(ToolReply::Json(json!({"temp_c": 3})));
    let mut config = LlmBrainConfig::new("You report the weather.");
    config.tools.push(LlmTool {
        name: "get_weather".into(),
        description: "Weather now in a city".into(),
        parameters: json!({"type":"object","properties":{"city":{"type":"string"}}}),
        url: format!("http://{}/tool/get_weather", server.addr),
        timeout_ms: 1_000,
    });
    let runner = HttpToolRunner::new(Duration::from_millis(500))
        .unwrap()
        .with_secret("X-Webhook-Secret", "s3cret")
        .unwrap();
    let mut b = brain(&server, config).with_tool_runner(Arc::new(runner));
    let chunks = turn(&mut b, &Conversation::default(), "Weather in Oslo?");
    assert!(
        chunks.contains(&BrainChunk::Action(Action::Tool {
            name: "get_weather".into(),
            arguments: "{\"city\":\"Oslo\"}".into(),
            ok: true
        })),
        "{chunks:?}"
    );
    assert_eq!(spoken(&chunks), "It is 3 degrees in Oslo.");

    let (name, call) = server.seen_tools.recv_timeout(WAIT).unwrap();
    assert_eq!(name, "get_weather");
    assert_eq!(call.body, json!({"city":"Oslo"}));
    assert_eq!(call.headers["x-webhook-secret"], "s3cret");
    assert_eq!(call.headers["x-vocelio-tool"], "get_weather");

    let first = server.seen();
    assert_eq!(first.body["tools"][0]["function"]["name"], "get_weather");
    let second = server.seen();
    let msgs = second.body["messages"].as_array().unwrap();
    let n = msgs.len();
    assert_eq!(msgs[n - 2]["role"], "assistant");
    assert_eq!(msgs[n - 2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        msgs[n - 2]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    assert_eq!(msgs[n - 1]["role"], "tool");
    assert_eq!(msgs[n - 1]["tool_call_id"], "call_1");
    let result: Value = serde_json::from_str(msgs[n - 1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({"temp_c": 3}));
}

#[test]
fn failing_tool_is_reported_and_the_model_hears_the_error() {
    let server = TestServer::start();
    server.reply(Reply::Stream(vec![
        Step::Send(tool_chunk(0, Some("c1"), Some("book"), "{}")),
        Step::Send(tool_chunk(1, Some("c2"), Some("no_such_tool"), "{}")),
        Step::Send(finish_chunk("tool_calls")),
        Step::Send(DONE.into()),
    ]));
    server.reply(reply_of(&["Sorry, booking is down."]));
    server.tool_reply(ToolReply::Status(502));
    let mut config = LlmBrainConfig::new("x");
    config.tools.push(LlmTool {
        name: "book".into(),
        description: "Book".into(),
        parameters: json!({"type":"object"}),
        url: format!("http://{}/tool/book", server.addr),
        timeout_ms: 1_000,
    });
    let runner = Arc::new(HttpToolRunner::new(Duration::from_millis(500)).unwrap());
    let mut b = brain(&server, config).with_tool_runner(runner);
    let chunks = turn(&mut b, &Conversation::default(), "Book me in");
    let tools: Vec<_> = chunks
        .iter()
        .filter_map(|c| match c {
            BrainChunk::Action(Action::Tool { name, ok, .. }) => Some((name.as_str(), *ok)),
            _ => None,
        })
        .collect();
    assert_eq!(tools, vec![("book", false), ("no_such_tool", false)]);
    assert_eq!(spoken(&chunks), "Sorry, booking is down.");
    server.seen();
    let second = server.seen();
    let msgs = second.body["messages"].as_array().unwrap();
    let n = msgs.len();
    assert!(msgs[n - 2]["content"].as_str().unwrap().contains("502"));
    assert!(msgs[n - 1]["content"]
        .as_str()
        .unwrap()
        .contains("no tool named"));
}

// ---- HttpToolRunner -------------------------------------------------------------

#[test]
fn http_tool_runner_results_and_errors() {
    let server = TestServer::start();
    let runner = HttpToolRunner::new(Duration::from_millis(500)).unwrap();
    let call = |timeout_ms: u64| {
        runner
            .call(ToolRequest {
                name: "t".into(),
                url: format!("http://{}/tool/t", server.addr),
                arguments: json!({"a": 1}),
                timeout: Duration::from_millis(timeout_ms),
            })
            .recv_timeout(WAIT)
            .expect("runner answers")
    };
    server.tool_reply(ToolReply::Json(json!({"ok": true})));
    assert_eq!(call(1_000), Ok(json!({"ok": true})));
    server.tool_reply(ToolReply::Status(500));
    assert_eq!(
        call(1_000),
        Err(ToolError::Status {
            name: "t".into(),
            status: 500
        })
    );
    server.tool_reply(ToolReply::Text("<html>nope</html>".into()));
    assert!(matches!(call(1_000), Err(ToolError::Failed { .. })));
    let (_release, hang) = oneshot::channel();
    server.tool_reply(ToolReply::Hang(hang));
    assert_eq!(
        call(100),
        Err(ToolError::Timeout {
            name: "t".into(),
            after: Duration::from_millis(100)
        })
    );
    assert!(format!("{runner:?}").contains("HttpToolRunner"));
}

#[test]
fn a_newer_turn_supersedes_and_cancels_the_older_one() {
    let server = TestServer::start();
    let (release, hold) = oneshot::channel();
    server.reply(Reply::Stream(vec![
        Step::Send(text_chunk("One")),
        Step::Wait(hold),
        Step::Send(text_chunk(" more")),
        Step::Flood,
    ]));
    server.reply(reply_of(&["Two."]));
    let mut b = brain(&server, LlmBrainConfig::new("x"));
    let conv = Conversation::default();
    let (tx1, rx1) = crossbeam_channel::unbounded();
    b.respond(&conv, &speech("first"), BrainSink::new(1, tx1));
    let first: Vec<_> = (0..2)
        .map(|_| rx1.recv_timeout(WAIT).expect("first turn starts").1)
        .collect();
    assert!(matches!(first[0], BrainChunk::Analysis(_)));
    assert_eq!(first[1], BrainChunk::Text("One".into()));
    // The caller barges in: a new turn starts while the first is mid-reply.
    let second = turn(&mut b, &conv, "second");
    assert_eq!(spoken(&second), "Two.");
    release.send(()).unwrap();
    // The old turn says nothing more, ends, and its request is cancelled.
    assert_eq!(rx1.recv_timeout(WAIT).map(|c| c.1), Ok(BrainChunk::Done));
    server
        .gone
        .recv_timeout(WAIT)
        .expect("the superseded request was cancelled");
}

#[test]
fn agent_config_in_toml() {
    let openai: OpenAiConfig = toml::from_str(
        r#"
        base_url = "http://127.0.0.1:8080/v1"
        model = "qwen2.5-3b-instruct"
        api_key = "sk-local"
        first_token_timeout_ms = 1500
        idle_timeout_ms = 1000
        "#,
    )
    .unwrap();
    assert_eq!(openai.first_token_timeout_ms, 1500);
    assert_eq!(openai.total_timeout_ms, 30_000);
    OpenAiChat::new(openai).unwrap();
    let brain: LlmBrainConfig = toml::from_str(
        r#"
        system_prompt = "You are Ana, the receptionist of Clinica Sol. Be brief."
        greeting = "Clinica Sol, this is Ana. How can I help?"
        max_history_turns = 12
        temperature = 0.3

        [[tools]]
        name = "find_slot"
        description = "Find the next free appointment slot"
        url = "http://127.0.0.1:9000/hooks/find_slot"
        timeout_ms = 2000
        parameters = { type = "object", properties = { day = { type = "string" } } }
        "#,
    )
    .unwrap();
    assert_eq!(
        brain.tools[0].spec().parameters["properties"]["day"]["type"],
        "string"
    );
    brain.validate().unwrap();
    let typo = toml::from_str::<LlmBrainConfig>("system_prompt = \"x\"\nmax_history = 3\n");
    assert!(typo.unwrap_err().to_string().contains("max_history"));
}

#[test]
fn a_turn_superseded_while_the_model_thinks_ends_promptly() {
    let server = TestServer::start();
    let (_release, stall) = oneshot::channel();
    server.reply(Reply::StallHeaders(stall));
    server.reply(reply_of(&["Two."]));
    let mut b = brain(&server, LlmBrainConfig::new("x"));
    let conv = Conversation::default();
    let (tx1, rx1) = crossbeam_channel::unbounded();
    b.respond(&conv, &speech("first"), BrainSink::new(1, tx1));
    assert!(matches!(
        rx1.recv_timeout(WAIT).map(|c| c.1),
        Ok(BrainChunk::Analysis(_))
    ));
    // The first request is at the server (stalled) before the second starts.
    server.seen();
    let t0 = Instant::now();
    assert_eq!(spoken(&turn(&mut b, &conv, "second")), "Two.");
    // Well before the 2 s first-token deadline, and without the fallback.
    assert_eq!(
        rx1.recv_timeout(Duration::from_secs(1)).map(|c| c.1),
        Ok(BrainChunk::Done)
    );
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
}
