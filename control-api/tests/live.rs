//! Live WebSockets against a real server and a real WebSocket client.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};
use vocelio_control_api::events::LiveEvent;
use vocelio_control_api::model::EngineEvent;
use vocelio_control_api::recorder;
use vocelio_control_api::testing::TestApp;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn serve(app: &TestApp) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn recorder(app: &TestApp) -> UnboundedSender<EngineEvent> {
    let (tx, rx) = unbounded_channel();
    tokio::spawn(recorder::run(app.state.clone(), rx));
    tx
}

/// The next JSON text message (at most 2 s), `None` when the socket closes.
async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .expect("a message within 2 s");
        match msg {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(_)) => continue,
        }
    }
}

/// A call row, through the recorder.
async fn call(app: &TestApp, tx: &UnboundedSender<EngineEvent>, engine_call: &str) -> String {
    tx.send(EngineEvent::CallStarted {
        engine_call: engine_call.into(),
        direction: "inbound".into(),
        transport: "sip".into(),
        agent: "support".into(),
        from: None,
        to: None,
    })
    .unwrap();
    for _ in 0..200 {
        let (_, list) = app.call("GET", "/v1/calls?status=live", None).await;
        if let Some(item) = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["engine_call"] == engine_call)
        {
            return item["id"].as_str().unwrap().to_string();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("call {engine_call} was never recorded");
}

fn final_line(engine_call: &str, text: &str) -> EngineEvent {
    EngineEvent::Transcript {
        engine_call: engine_call.into(),
        speaker: "caller".into(),
        text: text.into(),
        is_final: true,
        start_ms: 0,
        end_ms: 500,
        interrupted: false,
    }
}

#[tokio::test]
async fn a_call_stream_starts_with_a_snapshot_then_follows_the_call() {
    let app = TestApp::new().await;
    let addr = serve(&app).await;
    let tx = recorder(&app);
    let id = call(&app, &tx, "call-1").await;
    tx.send(final_line("call-1", "First line.")).unwrap();
    // Another call's events never reach this stream.
    let other = call(&app, &tx, "call-2").await;
    let (_, t) = app
        .call("GET", &format!("/v1/calls/{id}/transcript"), None)
        .await;
    assert_eq!(t["lines"].as_array().unwrap().len(), 1, "{t}");

    let url = format!(
        "ws://{addr}/v1/calls/{id}/live?access_token={}",
        app.admin_key
    );
    let (mut ws, resp) = connect_async(url).await.unwrap();
    assert_eq!(resp.status(), 101);
    let snap = next(&mut ws).await.unwrap();
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["call_id"], id.as_str());
    assert_eq!(snap["data"]["status"], "ringing");
    assert_eq!(snap["data"]["agent"], "support");
    assert_eq!(snap["data"]["transcript"][0]["text"], "First line.");

    tx.send(final_line("call-2", "Not yours.")).unwrap();
    tx.send(final_line("call-1", "Second line.")).unwrap();
    let ev = next(&mut ws).await.unwrap();
    assert_eq!(ev["type"], "transcript.final", "{ev}");
    assert_eq!(ev["call_id"], id.as_str());
    assert_eq!(ev["data"]["text"], "Second line.");
    assert_eq!(ev["data"]["seq"], 2);
    assert!(ev["at_ms"].is_i64());

    // The stream ends with the call.
    tx.send(EngineEvent::CallEnded {
        engine_call: "call-1".into(),
        reason: "remote_bye".into(),
        answered: true,
    })
    .unwrap();
    let ev = next(&mut ws).await.unwrap();
    assert_eq!(ev["type"], "call.ended");
    assert_eq!(ev["data"]["end_reason"], "remote_bye");
    assert_eq!(next(&mut ws).await, None);

    // An ended call: the snapshot, then the socket closes.
    let url = format!(
        "ws://{addr}/v1/calls/{id}/live?access_token={}",
        app.admin_key
    );
    let (mut ws, _) = connect_async(url).await.unwrap();
    let snap = next(&mut ws).await.unwrap();
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["data"]["status"], "ended");
    assert_eq!(snap["data"]["transcript"].as_array().unwrap().len(), 2);
    assert_eq!(next(&mut ws).await, None);
    let _ = other;
}

#[tokio::test]
async fn the_event_stream_carries_everything_or_one_call() {
    let app = TestApp::new().await;
    let addr = serve(&app).await;
    let tx = recorder(&app);
    let key = &app.admin_key;
    let (mut all, _) = connect_async(format!("ws://{addr}/v1/events?access_token={key}"))
        .await
        .unwrap();
    let id = call(&app, &tx, "call-1").await;
    let ev = next(&mut all).await.unwrap();
    assert_eq!(ev["type"], "call.started");
    assert_eq!(ev["call_id"], id.as_str());

    let (mut one, _) = connect_async(format!(
        "ws://{addr}/v1/events?call_id={id}&access_token={key}"
    ))
    .await
    .unwrap();
    let other = call(&app, &tx, "call-2").await;
    tx.send(final_line("call-1", "Mine.")).unwrap();
    let ev = next(&mut all).await.unwrap();
    assert_eq!(ev["type"], "call.started");
    assert_eq!(ev["call_id"], other.as_str());
    let ev = next(&mut all).await.unwrap();
    assert_eq!(ev["type"], "transcript.final");
    let ev = next(&mut one).await.unwrap();
    assert_eq!(ev["type"], "transcript.final", "call-2 was filtered out");
    assert_eq!(ev["data"]["text"], "Mine.");
    // Clients may close whenever they like.
    one.send(Message::Close(None)).await.unwrap();
}

#[tokio::test]
async fn a_slow_subscriber_is_told_what_it_missed() {
    let app = TestApp::new().await;
    let addr = serve(&app).await;
    let url = format!("ws://{addr}/v1/events?access_token={}", app.admin_key);
    let (mut ws, _) = connect_async(url).await.unwrap();
    // The server subscribed before answering the upgrade. Flood the bus
    // (capacity 1024): on this single-threaded runtime the server cannot
    // read in between.
    for i in 0..3000 {
        app.state.events.publish(LiveEvent {
            kind: "test.flood".into(),
            call_id: None,
            campaign_id: None,
            at_ms: i,
            data: json!({ "i": i }),
        });
    }
    let mut lagged = 0;
    let mut got = 0;
    while let Some(m) = next(&mut ws).await {
        if m["type"] == "lagged" {
            assert!(m["missed"].as_u64().unwrap() > 0, "{m}");
            lagged += m["missed"].as_u64().unwrap();
        } else {
            got += 1;
        }
        if got + lagged == 3000 {
            break;
        }
    }
    assert!(lagged > 0, "the flood overran the subscriber");
    assert_eq!(got + lagged, 3000);
    // It continues after lagging.
    app.state.events.publish(LiveEvent {
        kind: "test.after".into(),
        call_id: None,
        campaign_id: None,
        at_ms: 0,
        data: json!({}),
    });
    assert_eq!(next(&mut ws).await.unwrap()["type"], "test.after");
}

#[tokio::test]
async fn streams_need_a_key_and_an_existing_call() {
    let app = TestApp::new().await;
    let addr = serve(&app).await;
    for url in [
        format!("ws://{addr}/v1/events"),
        format!("ws://{addr}/v1/events?access_token=vk_nope"),
        format!("ws://{addr}/v1/calls/ca_x/live"),
    ] {
        match connect_async(url.as_str()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401, "{url}")
            }
            other => panic!("{url}: expected a 401, got {other:?}"),
        }
    }
    let url = format!(
        "ws://{addr}/v1/calls/ca_x/live?access_token={}",
        app.admin_key
    );
    match connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 404),
        other => panic!("expected a 404, got {other:?}"),
    }
    // A plain GET (no upgrade) is a client error, not a 500.
    let (st, e) = app.call("GET", "/v1/events", None).await;
    assert!(st.is_client_error(), "{st} {e}");
    let (_, doc) = app.call_as(None, "GET", "/v1/openapi.json", None).await;
    for path in ["/v1/events", "/v1/calls/{id}/live"] {
        let op = &doc["paths"][path]["get"];
        assert_eq!(op["tags"][0], "live", "{path}");
        assert!(op["responses"]["101"].is_object(), "{path}");
    }
}
