//! `/v1/calls` and the recorder: placing calls, acting on them, history and
//! detail built from engine events, transcripts, recordings, restart recovery.

use axum::http::StatusCode;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use vocelio_control_api::model::{EngineEvent, ResolvedAgent, Routing};
use vocelio_control_api::recorder;
use vocelio_control_api::state::{
    ApiSettings, AppState, EngineControl, EngineError, LocalVoice, OutboundCall,
};
use vocelio_control_api::store::{ensure_call, NewCall};
use vocelio_control_api::testing::{TestApp, T0_MS};

async fn agent(app: &TestApp, name: &str) {
    let spec = json!({"name": name, "brain": {"type": "llm", "prompt": "Be brief."}});
    sqlx::query(
        "INSERT INTO agents (id, name, spec, created_ms, updated_ms) VALUES ($1, $2, $3, 0, 0)",
    )
    .bind(format!("ag_{name}"))
    .bind(name)
    .bind(spec.to_string())
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

/// The recorder running on `app`, fed by the returned sender.
fn recorder(app: &TestApp) -> UnboundedSender<EngineEvent> {
    let (tx, rx) = unbounded_channel();
    tokio::spawn(recorder::run(app.state.clone(), rx));
    tx
}

/// Poll `uri` until `done` holds for its body (at most ~2 s).
async fn wait_for(app: &TestApp, uri: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        let (_, body) = app.call("GET", uri, None).await;
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{uri} never got there; last: {last}");
}

fn started(engine_call: &str, agent: &str) -> EngineEvent {
    EngineEvent::CallStarted {
        engine_call: engine_call.into(),
        direction: "inbound".into(),
        transport: "sip".into(),
        agent: agent.into(),
        from: Some("+15557654321".into()),
        to: Some("+15551230001".into()),
    }
}

fn said(engine_call: &str, speaker: &str, text: &str, is_final: bool) -> EngineEvent {
    EngineEvent::Transcript {
        engine_call: engine_call.into(),
        speaker: speaker.into(),
        text: text.into(),
        is_final,
        start_ms: 100,
        end_ms: 900,
        interrupted: speaker == "agent",
    }
}

async fn only_call(app: &TestApp) -> Value {
    let list = wait_for(app, "/v1/calls", |b| b["total"] == 1).await;
    list["items"][0].clone()
}

#[tokio::test]
async fn a_call_is_recorded_from_engine_events() {
    let app = TestApp::new().await;
    let tx = recorder(&app);
    let mut live = app.state.events.subscribe();

    tx.send(started("call-1", "support")).unwrap();
    let call = only_call(&app).await;
    assert_eq!(call["status"], "ringing");
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["agent"], "support");
    assert_eq!(call["from"], "+15557654321");
    assert_eq!(call["started_ms"], T0_MS);
    let id = call["id"].as_str().unwrap().to_string();
    let uri = format!("/v1/calls/{id}");
    let ev = live.recv().await.unwrap();
    assert_eq!(ev.kind, "call.started");
    assert_eq!(ev.call_id.as_deref(), Some(id.as_str()));

    app.clock.advance(2_000);
    tx.send(EngineEvent::CallAnswered {
        engine_call: "call-1".into(),
    })
    .unwrap();
    wait_for(&app, &uri, |b| b["status"] == "live").await;

    tx.send(said("call-1", "caller", "when are you", false))
        .unwrap();
    tx.send(said("call-1", "caller", "When are you open?", true))
        .unwrap();
    tx.send(said("call-1", "agent", "Nine to five.", true))
        .unwrap();
    for v2v in [400.0, 900.0, 500.0] {
        tx.send(EngineEvent::Turn {
            engine_call: "call-1".into(),
            voice_to_voice_ms: Some(v2v),
            metrics: json!({"stt_ms": 80, "v2v": v2v}),
        })
        .unwrap();
    }
    tx.send(EngineEvent::Analysis {
        engine_call: "call-1".into(),
        analysis: json!({"intent": "hours"}),
    })
    .unwrap();
    tx.send(EngineEvent::Insights {
        engine_call: "call-1".into(),
        outcome: "completed".into(),
        summary: "Asked for opening hours.".into(),
        sentiment: 0.5,
        insights: json!({"intents": ["hours"]}),
    })
    .unwrap();
    wait_for(&app, &uri, |b| b["outcome"] == "completed").await;
    app.clock.advance(30_000);
    tx.send(EngineEvent::CallEnded {
        engine_call: "call-1".into(),
        reason: "remote_bye".into(),
        answered: true,
    })
    .unwrap();
    // Quality comes when RTP stops, after the end: it belongs to this call.
    tx.send(EngineEvent::Quality {
        engine_call: "call-1".into(),
        mos: 4.2,
        loss_percent: 0.5,
        jitter_ms: 3.0,
    })
    .unwrap();
    let d = wait_for(&app, &uri, |b| b["mos"] == 4.2).await;
    assert_eq!(d["status"], "ended");
    assert_eq!(d["end_reason"], "remote_bye");
    assert_eq!(d["answered_ms"], T0_MS + 2_000);
    assert_eq!(d["ended_ms"], T0_MS + 32_000);
    assert_eq!(d["handle_ms"], 30_000);
    assert_eq!(d["duration_ms"], 32_000);
    assert_eq!(d["loss_percent"], 0.5);
    assert_eq!(d["jitter_ms"], 3.0);
    assert_eq!(d["summary"], "Asked for opening hours.");
    assert_eq!(d["sentiment"], 0.5);
    assert_eq!(d["insights"], json!({"intents": ["hours"]}));
    let turns = d["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    assert_eq!(turns[1]["seq"], 2);
    assert_eq!(turns[1]["metrics"]["stt_ms"], 80);
    assert_eq!(d["latency"]["turns"], 3);
    assert_eq!(d["latency"]["p50_voice_to_voice_ms"], 500.0);
    assert_eq!(d["latency"]["p95_voice_to_voice_ms"], 900.0);
    let (_, list) = app.call("GET", "/v1/calls", None).await;
    assert_eq!(list["total"], 1, "late quality made no second row");

    // Finals only, in order.
    let (st, t) = app.call("GET", &format!("{uri}/transcript"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(t["status"], "ended");
    let lines = t["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 2, "{t}");
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["text"], "When are you open?");
    assert_eq!(lines[1]["speaker"], "agent");
    assert_eq!(lines[1]["interrupted"], true);

    // Live subscribers saw it all, in order.
    let mut kinds = Vec::new();
    while let Ok(ev) = live.try_recv() {
        assert_eq!(ev.call_id.as_deref(), Some(id.as_str()));
        kinds.push(ev.kind.clone());
    }
    assert_eq!(
        kinds,
        [
            "call.answered",
            "transcript.partial",
            "transcript.final",
            "transcript.final",
            "turn.metrics",
            "turn.metrics",
            "turn.metrics",
            "call.analysis",
            "call.insights",
            "call.ended",
            "call.quality"
        ]
    );
    // The dialer was woken by the end.
    tokio::time::timeout(Duration::from_secs(1), app.state.dialer_wake.notified())
        .await
        .expect("dialer woken");
}

#[tokio::test]
async fn events_before_call_started_are_kept() {
    let app = TestApp::new().await;
    let tx = recorder(&app);
    tx.send(said("call-9", "caller", "Hello?", true)).unwrap();
    let call = only_call(&app).await;
    assert_eq!(call["agent"], "unknown");
    assert_eq!(call["direction"], "unknown");
    let id = call["id"].as_str().unwrap().to_string();
    // The engine's CallStarted fills the row in rather than making another.
    tx.send(started("call-9", "sales")).unwrap();
    let d = wait_for(&app, &format!("/v1/calls/{id}"), |b| b["agent"] == "sales").await;
    assert_eq!(d["direction"], "inbound");
    assert_eq!(d["to"], "+15551230001");
    let (_, t) = app
        .call("GET", &format!("/v1/calls/{id}/transcript"), None)
        .await;
    assert_eq!(t["lines"][0]["text"], "Hello?");
    let (_, list) = app.call("GET", "/v1/calls", None).await;
    assert_eq!(list["total"], 1);
}

#[tokio::test]
async fn a_failed_event_is_logged_and_the_next_is_recorded() {
    let app = TestApp::new().await;
    let tx = recorder(&app);
    tx.send(started("call-1", "sales")).unwrap();
    let id = only_call(&app).await["id"].as_str().unwrap().to_string();
    sqlx::query("DROP TABLE turn_metrics")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    tx.send(EngineEvent::Turn {
        engine_call: "call-1".into(),
        voice_to_voice_ms: Some(1.0),
        metrics: json!({}),
    })
    .unwrap();
    for i in 0..50 {
        tx.send(said("call-1", "caller", &format!("line {i}"), true))
            .unwrap();
    }
    let t = wait_for(&app, &format!("/v1/calls/{id}/transcript"), |b| {
        b["lines"].as_array().is_some_and(|l| l.len() == 50)
    })
    .await;
    for (i, line) in t["lines"].as_array().unwrap().iter().enumerate() {
        assert_eq!(line["seq"], i as i64 + 1);
        assert_eq!(line["text"], format!("line {i}"));
    }
}

#[tokio::test]
async fn recover_closes_calls_left_live() {
    let app = TestApp::new().await;
    let s = &app.state;
    let new = NewCall {
        direction: "inbound",
        transport: "sip",
        agent: "sales",
        from: None,
        to: None,
    };
    let live = ensure_call(s, "call-1", &new).await.unwrap();
    let ringing = ensure_call(s, "call-2", &new).await.unwrap();
    sqlx::query("UPDATE calls SET status = 'live' WHERE id = $1")
        .bind(&live)
        .execute(&s.db.pool)
        .await
        .unwrap();
    let done = ensure_call(s, "call-3", &new).await.unwrap();
    sqlx::query(
        "UPDATE calls SET status = 'ended', end_reason = 'remote_bye', ended_ms = 5 WHERE id = $1",
    )
    .bind(&done)
    .execute(&s.db.pool)
    .await
    .unwrap();
    app.clock.advance(60_000);
    recorder::recover(s).await.unwrap();
    for id in [&live, &ringing] {
        let (_, c) = app.call("GET", &format!("/v1/calls/{id}"), None).await;
        assert_eq!(c["status"], "ended");
        assert_eq!(c["end_reason"], "engine_restart");
        assert_eq!(c["ended_ms"], T0_MS + 60_000);
    }
    let (_, c) = app.call("GET", &format!("/v1/calls/{done}"), None).await;
    assert_eq!(c["end_reason"], "remote_bye");
    assert_eq!(c["ended_ms"], 5);
    // The engine numbers from 1 again: its call-1 is a new call, and a
    // late event for it does not land on the restart-closed row.
    let tx = recorder(&app);
    tx.send(said("call-1", "caller", "Hi", true)).unwrap();
    let list = wait_for(&app, "/v1/calls?status=live", |b| b["total"] == 1).await;
    assert_ne!(list["items"][0]["id"], live.as_str());
}

#[tokio::test]
async fn history_lists_newest_first_and_filters() {
    let app = TestApp::new().await;
    let s = &app.state;
    let mk = |dir: &'static str, agent: &'static str| NewCall {
        direction: dir,
        transport: "sip",
        agent,
        from: None,
        to: None,
    };
    let a = ensure_call(s, "call-1", &mk("inbound", "sales"))
        .await
        .unwrap();
    app.clock.advance(1_000);
    let b = ensure_call(s, "call-2", &mk("outbound", "sales"))
        .await
        .unwrap();
    app.clock.advance(1_000);
    let c = ensure_call(s, "call-3", &mk("inbound", "support"))
        .await
        .unwrap();
    sqlx::query(
        "UPDATE calls SET status = 'ended', ended_ms = $1, campaign_id = 'cmp_1' WHERE id = $2",
    )
    .bind(T0_MS + 5_000)
    .bind(&b)
    .execute(&s.db.pool)
    .await
    .unwrap();
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (st, all) = app.call("GET", "/v1/calls", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(ids(&all), [c.as_str(), b.as_str(), a.as_str()]);
    let (_, p) = app.call("GET", "/v1/calls?limit=2&offset=1", None).await;
    assert_eq!(ids(&p), [b.as_str(), a.as_str()]);
    assert_eq!(p["total"], 3);
    let (_, p) = app.call("GET", "/v1/calls?status=live", None).await;
    assert_eq!(ids(&p), [c.as_str(), a.as_str()]);
    let (_, p) = app.call("GET", "/v1/calls?status=ended", None).await;
    assert_eq!(ids(&p), [b.as_str()]);
    let (_, p) = app.call("GET", "/v1/calls?agent=sales", None).await;
    assert_eq!(ids(&p), [b.as_str(), a.as_str()]);
    let (_, p) = app
        .call("GET", "/v1/calls?direction=inbound&agent=sales", None)
        .await;
    assert_eq!(ids(&p), [a.as_str()]);
    let (_, p) = app.call("GET", "/v1/calls?campaign_id=cmp_1", None).await;
    assert_eq!(ids(&p), [b.as_str()]);
    let (_, p) = app
        .call(
            "GET",
            &format!(
                "/v1/calls?from_ms={}&to_ms={}",
                T0_MS + 1_000,
                T0_MS + 2_000
            ),
            None,
        )
        .await;
    assert_eq!(ids(&p), [b.as_str()]);
    for (q, field) in [
        ("status=busy", "status"),
        ("direction=sideways", "direction"),
        ("from_ms=yesterday", "from_ms"),
        ("limit=501", "limit"),
        ("offset=-1", "offset"),
    ] {
        let (st, e) = app.call("GET", &format!("/v1/calls?{q}"), None).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {e}");
        assert_eq!(e["error"]["field"], field, "{q}: {e}");
    }
    for uri in ["/v1/calls/ca_nope", "/v1/calls/ca_nope/transcript"] {
        let (st, _) = app.call("GET", uri, None).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn placing_a_call_checks_and_records_it() {
    let app = TestApp::new().await;
    agent(&app, "sales").await;
    let (st, c) = app
        .call(
            "POST",
            "/v1/calls",
            Some(json!({"to": "+15557654321", "agent": "sales"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    assert_eq!(c["direction"], "outbound");
    assert_eq!(c["status"], "ringing");
    assert_eq!(c["engine_call"], "call-1");
    assert_eq!(c["from"], "+15550000000");
    assert_eq!(c["to"], "+15557654321");
    assert_eq!(
        app.engine.placed(),
        [OutboundCall {
            to: "+15557654321".into(),
            from: "+15550000000".into(),
            trunk: None,
            agent: "sales".into(),
        }]
    );
    // The engine's CallStarted for it lands on the same row.
    let tx = recorder(&app);
    tx.send(EngineEvent::CallStarted {
        engine_call: "call-1".into(),
        direction: "outbound".into(),
        transport: "sip".into(),
        agent: "sales".into(),
        from: None,
        to: Some("+15557654321".into()),
    })
    .unwrap();
    tx.send(EngineEvent::CallAnswered {
        engine_call: "call-1".into(),
    })
    .unwrap();
    let id = c["id"].as_str().unwrap();
    let d = wait_for(&app, &format!("/v1/calls/{id}"), |b| b["status"] == "live").await;
    assert_eq!(d["from"], "+15550000000");
    let (_, list) = app.call("GET", "/v1/calls", None).await;
    assert_eq!(list["total"], 1);

    let (st, c) = app
        .call(
            "POST",
            "/v1/calls",
            Some(json!({"to": "+15557654322", "agent": "sales", "from": "+15551112222", "trunk": "carrier"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    assert_eq!(app.engine.placed()[1].trunk.as_deref(), Some("carrier"));
    assert_eq!(app.engine.placed()[1].from, "+15551112222");

    for (body, field) in [
        (json!({"to": "5557654321", "agent": "sales"}), "to"),
        (
            json!({"to": "+15557654321", "agent": "sales", "from": "me"}),
            "from",
        ),
        (json!({"to": "+15557654321", "agent": "nobody"}), "agent"),
        (
            json!({"to": "+15557654321", "agent": "sales", "trunk": "My Trunk"}),
            "trunk",
        ),
        (json!({"to": 15557654321_i64, "agent": "sales"}), "to"),
    ] {
        let (st, e) = app.call("POST", "/v1/calls", Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {e}");
        assert_eq!(e["error"]["field"], field, "{body}: {e}");
    }
    let (st, _) = app
        .call(
            "POST",
            "/v1/calls",
            Some(json!({"to": "+15557654321", "agent": "sales", "ring": 3})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.engine.placed().len(), 2, "bad requests placed nothing");
}

/// An engine that refuses to place calls.
#[derive(Debug)]
struct Refusing(EngineError);

impl EngineControl for Refusing {
    fn place_call(&self, _call: OutboundCall) -> BoxFuture<'_, Result<String, EngineError>> {
        Box::pin(async move { Err(self.0.clone()) })
    }
    fn hangup(&self, c: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        let c = c.to_string();
        Box::pin(async move { Err(EngineError::NoSuchCall(c)) })
    }
    fn transfer(&self, c: &str, _t: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        self.hangup(c)
    }
    fn send_dtmf(&self, c: &str, _d: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        self.hangup(c)
    }
    fn apply(&self, _r: Routing) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async { Ok(()) })
    }
    fn brain(
        &self,
        _a: &ResolvedAgent,
    ) -> Result<Box<dyn vocelio_pipelines::brain::Brain>, EngineError> {
        Err(EngineError::Unavailable("no brains here".into()))
    }
    fn voices(&self) -> Vec<LocalVoice> {
        Vec::new()
    }
    fn preview(&self, _v: &str, _t: &str) -> BoxFuture<'_, Result<Vec<u8>, EngineError>> {
        Box::pin(async { Err(EngineError::Unavailable("no voices here".into())) })
    }
}

#[tokio::test]
async fn engine_refusals_are_409_or_503_with_its_message() {
    for (err, status) in [
        (
            EngineError::Refused("no trunk named carrier".into()),
            StatusCode::CONFLICT,
        ),
        (
            EngineError::Unavailable("models still loading".into()),
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ] {
        let base = TestApp::new().await;
        agent(&base, "sales").await;
        let msg = err.to_string();
        let mut app = base;
        app.state = AppState::new(
            app.state.db.clone(),
            Arc::new(Refusing(err)),
            ApiSettings::default(),
        )
        .with_clock(app.clock.clone());
        let (st, e) = app
            .call(
                "POST",
                "/v1/calls",
                Some(json!({"to": "+15557654321", "agent": "sales"})),
            )
            .await;
        assert_eq!(st, status, "{e}");
        assert!(
            e["error"]["message"].as_str().unwrap().contains(&msg),
            "{e}"
        );
        let (_, list) = app.call("GET", "/v1/calls", None).await;
        assert_eq!(list["total"], 0, "a refused call is not recorded");
    }
}

#[tokio::test]
async fn actions_reach_the_engine_while_the_call_is_live() {
    let app = TestApp::new().await;
    agent(&app, "sales").await;
    let (_, c) = app
        .call(
            "POST",
            "/v1/calls",
            Some(json!({"to": "+15557654321", "agent": "sales"})),
        )
        .await;
    let id = c["id"].as_str().unwrap().to_string();
    let at = |a: &str| format!("/v1/calls/{id}/{a}");

    let (st, r) = app
        .call("POST", &at("dtmf"), Some(json!({"digits": "12#*AD"})))
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{r}");
    assert_eq!(r["action"], "dtmf");
    for bad in ["", "12E", "1 2", &"1".repeat(33)] {
        let (st, e) = app
            .call("POST", &at("dtmf"), Some(json!({"digits": bad})))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(e["error"]["field"], "digits");
    }
    let (st, _) = app
        .call(
            "POST",
            &at("transfer"),
            Some(json!({"target": "sip:desk@pbx.example.com"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    let (st, _) = app
        .call(
            "POST",
            &at("transfer"),
            Some(json!({"target": "+15559990000"})),
        )
        .await;
    assert_eq!(st, StatusCode::ACCEPTED);
    for bad in ["desk", "tel:+1555", "sip:", "+0123"] {
        let (st, e) = app
            .call("POST", &at("transfer"), Some(json!({"target": bad})))
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(e["error"]["field"], "target");
    }
    let (st, e) = app.call("POST", &at("transfer"), Some(json!({}))).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (st, _) = app.call("POST", &at("hangup"), None).await;
    assert_eq!(st, StatusCode::ACCEPTED);
    {
        let log = app.engine.log.lock().unwrap();
        assert_eq!(log.dtmf, [("call-1".to_string(), "12#*AD".to_string())]);
        assert_eq!(
            log.transfers,
            [
                ("call-1".to_string(), "sip:desk@pbx.example.com".to_string()),
                ("call-1".to_string(), "+15559990000".to_string())
            ]
        );
        assert_eq!(log.hangups, ["call-1"]);
    }

    // The engine no longer knows the call: 409, not 500.
    app.engine.live.lock().unwrap().clear();
    let (st, e) = app.call("POST", &at("hangup"), None).await;
    assert_eq!(st, StatusCode::CONFLICT, "{e}");

    // Once the call has ended: 409 without asking the engine.
    let tx = recorder(&app);
    tx.send(EngineEvent::CallEnded {
        engine_call: "call-1".into(),
        reason: "local_hangup".into(),
        answered: false,
    })
    .unwrap();
    wait_for(&app, &format!("/v1/calls/{id}"), |b| b["status"] == "ended").await;
    app.engine.live.lock().unwrap().push("call-1".into());
    for (a, body) in [
        ("hangup", None),
        ("dtmf", Some(json!({"digits": "1"}))),
        ("transfer", Some(json!({"target": "+15559990000"}))),
    ] {
        let (st, e) = app.call("POST", &at(a), body).await;
        assert_eq!(st, StatusCode::CONFLICT, "{a}: {e}");
        assert!(e["error"]["message"].as_str().unwrap().contains("ended"));
    }
    assert_eq!(app.engine.log.lock().unwrap().hangups.len(), 1);
    let (st, _) = app.call("POST", "/v1/calls/ca_nope/hangup", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn recordings_are_served_once_the_call_has_ended() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = TestApp::new().await;
    let s = app.state.clone();
    let id = ensure_call(
        &s,
        "call-4",
        &NewCall {
            direction: "inbound",
            transport: "sip",
            agent: "sales",
            from: None,
            to: None,
        },
    )
    .await
    .unwrap();
    let uri = format!("/v1/calls/{id}/recording");

    // Recording off: 404 saying so.
    let (st, e) = app.call("GET", &uri, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not recorded"));

    app.state.settings = Arc::new(ApiSettings {
        recordings: Some(dir.path().to_path_buf()),
        ..ApiSettings::default()
    });
    let (st, _) = app.call("GET", &uri, None).await;
    assert_eq!(st, StatusCode::CONFLICT, "still in progress");
    sqlx::query("UPDATE calls SET status = 'ended' WHERE id = $1")
        .bind(&id)
        .execute(&s.db.pool)
        .await
        .unwrap();
    let (st, e) = app.call("GET", &uri, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "no file");
    assert!(e["error"]["message"]
        .as_str()
        .unwrap()
        .contains("was not recorded"));

    let wav = b"RIFF\x24\x00\x00\x00WAVEfmt fake".to_vec();
    std::fs::write(dir.path().join("call-4.wav"), &wav).unwrap();
    let (st, headers, body) = app
        .raw("GET", &uri, axum::body::Body::empty(), "application/json")
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(headers["content-type"], "audio/wav");
    assert_eq!(body, wav);
    let (st, _) = app.call("GET", "/v1/calls/ca_nope/recording", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn calls_are_documented() {
    let app = TestApp::new().await;
    let (_, doc) = app.call_as(None, "GET", "/v1/openapi.json", None).await;
    for (path, method) in [
        ("/v1/calls", "get"),
        ("/v1/calls", "post"),
        ("/v1/calls/{id}", "get"),
        ("/v1/calls/{id}/transcript", "get"),
        ("/v1/calls/{id}/recording", "get"),
        ("/v1/calls/{id}/hangup", "post"),
        ("/v1/calls/{id}/transfer", "post"),
        ("/v1/calls/{id}/dtmf", "post"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path}");
        assert_eq!(op["tags"][0], "calls");
    }
    let params: Vec<&str> = doc["paths"]["/v1/calls"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "limit",
        "offset",
        "status",
        "agent",
        "direction",
        "campaign_id",
        "from_ms",
        "to_ms",
    ] {
        assert!(params.contains(&p), "{p} in {params:?}");
    }
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    n
}

#[tokio::test]
async fn a_burst_of_engine_events_is_recorded_whole_and_in_order() {
    let app = TestApp::new().await;
    agent(&app, "support").await;
    let (tx, rx) = unbounded_channel();
    // Queued before the recorder starts, so it takes them in full batches,
    // each call's four events possibly split across two of them.
    for i in 0..300 {
        let c = format!("burst-{i}");
        tx.send(started(&c, "support")).unwrap();
        tx.send(EngineEvent::CallAnswered {
            engine_call: c.clone(),
        })
        .unwrap();
        tx.send(said(&c, "caller", "hello there", true)).unwrap();
        tx.send(EngineEvent::CallEnded {
            engine_call: c,
            reason: "remote_bye".into(),
            answered: true,
        })
        .unwrap();
    }
    tokio::spawn(recorder::run(app.state.clone(), rx));
    wait_for(&app, "/v1/calls?status=ended&limit=1", |b| {
        b["total"] == 300
    })
    .await;
    assert_eq!(count(&app, "SELECT COUNT(*) FROM calls").await, 300);
    // Answered before it ended, with its one transcript line: in order.
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) FROM calls WHERE answered_ms IS NOT NULL AND end_reason = 'remote_bye'"
        )
        .await,
        300
    );
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM transcripts WHERE seq = 1").await,
        300
    );
}

#[tokio::test]
async fn an_event_that_cannot_be_stored_loses_only_itself_not_its_batch() {
    let app = TestApp::new().await;
    agent(&app, "support").await;
    // Turn figures have nowhere to go: that event fails, and with it the
    // transaction of its batch.
    sqlx::query("DROP TABLE turn_metrics")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let (tx, rx) = unbounded_channel();
    tx.send(started("c1", "support")).unwrap();
    tx.send(EngineEvent::Turn {
        engine_call: "c1".into(),
        voice_to_voice_ms: Some(640.0),
        metrics: json!({"stt_ms": 210.0}),
    })
    .unwrap();
    tx.send(said("c1", "caller", "what time do you open", true))
        .unwrap();
    tx.send(EngineEvent::CallEnded {
        engine_call: "c1".into(),
        reason: "remote_bye".into(),
        answered: true,
    })
    .unwrap();
    tokio::spawn(recorder::run(app.state.clone(), rx));
    let call = wait_for(&app, "/v1/calls?status=ended", |b| b["total"] == 1).await;
    assert_eq!(call["items"][0]["end_reason"], "remote_bye", "{call}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM transcripts").await, 1);
}
