//! Webhooks: CRUD, the delivery queue, and real deliveries to a receiver
//! that checks the signature.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use vocelio_control_api::state::{Clock, FakeClock};
use vocelio_control_api::testing::{TestApp, T0_MS};
use vocelio_control_api::webhooks::{self, retry_delay_ms, send_due, MAX_ATTEMPTS};

const SECRET: &str = "whsec_test_0123456789";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    event: String,
    delivery: String,
    signed: bool,
    body: Value,
}

/// An HTTP receiver on 127.0.0.1 that checks signatures (on the app's
/// clock) and answers with the queued statuses, then 200.
#[derive(Clone)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    arrived: Arc<tokio::sync::Notify>,
    url: String,
}

impl Receiver {
    async fn start(clock: Arc<FakeClock>, answers: &[u16]) -> Receiver {
        let got = Arc::new(Mutex::new(Vec::new()));
        let queue = Arc::new(Mutex::new(answers.iter().copied().collect::<VecDeque<_>>()));
        let arrived = Arc::new(tokio::sync::Notify::new());
        let (g, q, a) = (got.clone(), queue.clone(), arrived.clone());
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let (g, q, a, clock) = (g.clone(), q.clone(), a.clone(), clock.clone());
                async move {
                    let h = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    let signed = webhooks::verify(
                        SECRET,
                        &h("x-vocelio-signature"),
                        &body,
                        clock.now_ms() / 1000,
                        300,
                    );
                    assert_eq!(h("content-type"), "application/json");
                    g.lock().unwrap().push(Received {
                        event: h("x-vocelio-event"),
                        delivery: h("x-vocelio-delivery"),
                        signed,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    });
                    a.notify_one();
                    let status = q.lock().unwrap().pop_front().unwrap_or(200);
                    StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver {
            got,
            answers: queue,
            arrived,
            url,
        }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn create(app: &TestApp, body: Value) -> Value {
    let (st, created) = app.call("POST", "/v1/webhooks", Some(body)).await;
    assert_eq!(st, StatusCode::CREATED, "{created}");
    created
}

async fn deliveries(app: &TestApp, hook: &str, query: &str) -> Value {
    let (st, page) = app
        .call(
            "GET",
            &format!("/v1/webhooks/{hook}/deliveries{query}"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{page}");
    page
}

#[tokio::test]
async fn signed_deliveries_reach_a_real_receiver() {
    let app = TestApp::new().await;
    let rx = Receiver::start(app.clock.clone(), &[]).await;
    let created = create(
        &app,
        json!({"url": rx.url, "events": ["call.ended", "transcript.final"], "secret": SECRET}),
    )
    .await;
    assert_eq!(created["secret"], SECRET);
    assert_eq!(created["active"], true);
    assert_eq!(created["events"], json!(["call.ended", "transcript.final"]));
    let id = created["id"].as_str().unwrap().to_string();

    // The secret is never shown again.
    let (st, one) = app.call("GET", &format!("/v1/webhooks/{id}"), None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["url"], rx.url.as_str());
    assert!(one.get("secret").is_none(), "{one}");
    let (st, list) = app.call("GET", "/v1/webhooks", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert!(!list.to_string().contains(SECRET));

    // Subscribed events are queued; the others are not.
    webhooks::enqueue(&app.state, "call.ended", json!({"call_id": "ca_1"}))
        .await
        .unwrap();
    webhooks::enqueue(&app.state, "call.started", json!({"call_id": "ca_1"}))
        .await
        .unwrap();
    let page = deliveries(&app, &id, "").await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["status"], "pending");
    assert_eq!(page["items"][0]["next_attempt_ms"], T0_MS);

    assert_eq!(send_due(&app.state).await.unwrap(), 1);
    let got = rx.got();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.signed, "signature did not verify");
    assert_eq!(r.event, "call.ended");
    assert_eq!(r.body["event"], "call.ended");
    assert_eq!(r.body["id"], r.delivery.as_str());
    assert_eq!(r.body["created_ms"], T0_MS);
    assert_eq!(r.body["data"], json!({"call_id": "ca_1"}));

    let page = deliveries(&app, &id, "").await;
    let d = &page["items"][0];
    assert_eq!(d["id"], r.delivery.as_str());
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status"], 200);
    assert_eq!(d["delivered_ms"], T0_MS);
    assert_eq!(d["next_attempt_ms"], Value::Null);
    assert_eq!(d["data"], json!({"call_id": "ca_1"}));

    // Nothing left to send.
    assert_eq!(send_due(&app.state).await.unwrap(), 0);
    assert_eq!(rx.got().len(), 1);
}

#[tokio::test]
async fn a_failed_delivery_is_retried_after_the_backoff_with_the_same_id() {
    let app = TestApp::new().await;
    let rx = Receiver::start(app.clock.clone(), &[500]).await;
    let id = create(
        &app,
        json!({"url": rx.url, "events": ["*"], "secret": SECRET}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    webhooks::enqueue(
        &app.state,
        "campaign.completed",
        json!({"campaign_id": "cp_1"}),
    )
    .await
    .unwrap();

    // The first attempt gets a 500.
    assert_eq!(send_due(&app.state).await.unwrap(), 1);
    let page = deliveries(&app, &id, "").await;
    let d = &page["items"][0];
    assert_eq!(d["status"], "pending", "{d}");
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["last_status"], 500);
    assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
    assert_eq!(d["next_attempt_ms"], T0_MS + 5_000);

    // Not before the backoff.
    assert_eq!(send_due(&app.state).await.unwrap(), 0);
    app.clock.advance(4_999);
    assert_eq!(send_due(&app.state).await.unwrap(), 0);
    assert_eq!(rx.got().len(), 1);

    // Then it goes through.
    app.clock.advance(1);
    assert_eq!(send_due(&app.state).await.unwrap(), 1);
    let got = rx.got();
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|r| r.signed));
    assert_eq!(
        got[0].delivery, got[1].delivery,
        "retries keep the delivery id"
    );
    assert_eq!(got[0].body, got[1].body, "retries send the same body");

    let page = deliveries(&app, &id, "?status=delivered").await;
    assert_eq!(page["total"], 1);
    let d = &page["items"][0];
    assert_eq!(d["attempts"], 2);
    assert_eq!(d["last_status"], 200);
    assert_eq!(d["last_error"], Value::Null);
    assert_eq!(d["delivered_ms"], T0_MS + 5_000);
    assert_eq!(deliveries(&app, &id, "?status=pending").await["total"], 0);
    assert!(rx.answers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_unreachable_receiver_fails_for_good_after_ten_attempts() {
    let app = TestApp::new().await;
    // A port nobody listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let id = create(
        &app,
        json!({"url": format!("http://{closed}/hook"), "events": ["call.started"]}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    webhooks::enqueue(&app.state, "call.started", json!({}))
        .await
        .unwrap();
    for attempt in 1..=MAX_ATTEMPTS {
        assert_eq!(send_due(&app.state).await.unwrap(), 1, "attempt {attempt}");
        app.clock.advance(retry_delay_ms(attempt));
    }
    assert_eq!(send_due(&app.state).await.unwrap(), 0);
    let page = deliveries(&app, &id, "?status=failed").await;
    assert_eq!(page["total"], 1, "{page}");
    let d = &page["items"][0];
    assert_eq!(d["attempts"], MAX_ATTEMPTS);
    assert_eq!(d["last_status"], Value::Null);
    assert!(d["last_error"].as_str().unwrap().contains("connect"), "{d}");
}

#[tokio::test]
async fn inactive_and_deleted_webhooks_get_nothing_and_test_pings_queue() {
    let app = TestApp::new().await;
    let rx = Receiver::start(app.clock.clone(), &[]).await;
    let on = create(
        &app,
        json!({"url": rx.url, "events": ["call.ended"], "secret": SECRET}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.clock.advance(1);
    let off = create(
        &app,
        json!({"url": rx.url, "events": ["*"], "secret": SECRET, "active": false}),
    )
    .await;
    app.clock.advance(1);
    assert_eq!(off["active"], false);
    let off = off["id"].as_str().unwrap().to_string();
    // A generated secret is long and random.
    let generated = create(&app, json!({"url": rx.url, "events": ["call.ended"]})).await;
    assert!(
        generated["secret"].as_str().unwrap().len() >= 32,
        "{generated}"
    );
    let generated = generated["id"].as_str().unwrap().to_string();
    let (st, _) = app
        .call("DELETE", &format!("/v1/webhooks/{generated}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    webhooks::enqueue(&app.state, "call.ended", json!({"n": 1}))
        .await
        .unwrap();
    assert_eq!(deliveries(&app, &on, "").await["total"], 1);
    assert_eq!(deliveries(&app, &off, "").await["total"], 0);

    // Filters on the list.
    let (_, active) = app.call("GET", "/v1/webhooks?active=true", None).await;
    assert_eq!(active["total"], 1);
    assert_eq!(active["items"][0]["id"], on.as_str());
    let (_, page) = app.call("GET", "/v1/webhooks?limit=1&offset=1", None).await;
    assert_eq!(page["items"][0]["id"], off.as_str());

    // A test ping, newest first in the log.
    app.clock.advance(1_000);
    let (st, ping) = app
        .call("POST", &format!("/v1/webhooks/{on}/test"), None)
        .await;
    assert_eq!(st, StatusCode::ACCEPTED, "{ping}");
    let page = deliveries(&app, &on, "").await;
    assert_eq!(page["total"], 2);
    assert_eq!(page["items"][0]["id"], ping["delivery_id"]);
    assert_eq!(page["items"][0]["event"], "ping");
    assert_eq!(send_due(&app.state).await.unwrap(), 2);
    let events: Vec<String> = rx.got().into_iter().map(|r| r.event).collect();
    assert_eq!(events.len(), 2);
    assert!(events.contains(&"ping".to_string()));

    // PUT changes what it gets; the secret stays unless given.
    let (st, updated) = app
        .call(
            "PUT",
            &format!("/v1/webhooks/{on}"),
            Some(json!({"url": rx.url, "events": ["transcript.final"], "active": true})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{updated}");
    assert_eq!(updated["events"], json!(["transcript.final"]));
    assert!(updated.get("secret").is_none());
    webhooks::enqueue(&app.state, "call.ended", json!({}))
        .await
        .unwrap();
    webhooks::enqueue(&app.state, "transcript.final", json!({"text": "hi"}))
        .await
        .unwrap();
    assert_eq!(deliveries(&app, &on, "?status=pending").await["total"], 1);

    // Deleting marks pending deliveries failed.
    let (st, _) = app
        .call("DELETE", &format!("/v1/webhooks/{on}"), None)
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (status, error): (String, Option<String>) = sqlx::query_as(
        "SELECT status, last_error FROM webhook_deliveries WHERE webhook_id = $1 AND event = 'transcript.final'",
    )
    .bind(&on)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(
        (status.as_str(), error.as_deref()),
        ("failed", Some("webhook deleted"))
    );
    assert_eq!(send_due(&app.state).await.unwrap(), 0);
    let (st, _) = app.call("GET", &format!("/v1/webhooks/{on}"), None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .call("DELETE", &format!("/v1/webhooks/{on}"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = app
        .call("POST", &format!("/v1/webhooks/{on}/test"), None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_put_with_a_new_secret_signs_with_it() {
    let app = TestApp::new().await;
    let rx = Receiver::start(app.clock.clone(), &[]).await;
    let id = create(
        &app,
        json!({"url": rx.url, "events": ["call.ended"], "secret": "an-old-secret-0000"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    webhooks::enqueue(&app.state, "call.ended", json!({}))
        .await
        .unwrap();
    let (st, body) = app
        .call(
            "PUT",
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": rx.url, "events": ["call.ended"], "secret": SECRET})),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    assert_eq!(send_due(&app.state).await.unwrap(), 1);
    assert!(rx.got()[0].signed);
}

#[tokio::test]
async fn bad_webhook_requests_name_the_field() {
    let app = TestApp::new().await;
    let ok = json!({"url": "https://hooks.example.com/v", "events": ["call.ended"]});
    let cases = [
        (
            json!({"url": "ftp://hooks.example.com/", "events": ["call.ended"]}),
            "url",
        ),
        (json!({"url": "not a url", "events": ["call.ended"]}), "url"),
        (
            json!({"url": "https://hooks.example.com/", "events": ["call.exploded"]}),
            "events[0]",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["call.ended", "nope"]}),
            "events[1]",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": []}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["*", "call.ended"]}),
            "events",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["call.ended"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"url": "https://hooks.example.com/", "events": ["call.ended"], "active": "yes"}),
            "active",
        ),
        (json!({"url": "https://hooks.example.com/"}), "events"),
    ];
    for (body, field) in cases {
        let (st, err) = app.call("POST", "/v1/webhooks", Some(body.clone())).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    let (st, _) = app
        .call(
            "POST",
            "/v1/webhooks",
            Some(json!({"url": "https://h.example/", "events": ["call.ended"], "extra": 1})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);

    let id = create(&app, ok).await["id"].as_str().unwrap().to_string();
    let (st, err) = app
        .call(
            "PUT",
            &format!("/v1/webhooks/{id}"),
            Some(json!({"url": "gopher://x/", "events": ["call.ended"]})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], "url");
    let (st, _) = app
        .call(
            "PUT",
            "/v1/webhooks/wh_nope",
            Some(json!({"url": "https://h.example/", "events": ["call.ended"]})),
        )
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    for (query, field) in [
        ("?status=lost", "status"),
        ("?limit=0", "limit"),
        ("?offset=-1", "offset"),
    ] {
        let (st, err) = app
            .call("GET", &format!("/v1/webhooks/{id}/deliveries{query}"), None)
            .await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {err}");
        assert_eq!(err["error"]["field"], field, "{query}");
    }
    let (st, err) = app.call("GET", "/v1/webhooks?active=maybe", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(err["error"]["field"], "active");
    let (st, _) = app
        .call("GET", "/v1/webhooks/wh_nope/deliveries", None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_openapi_document_describes_the_webhook_and_analytics_routes() {
    let app = TestApp::new().await;
    let (_, doc) = app.call_as(None, "GET", "/v1/openapi.json", None).await;
    for (path, method) in [
        ("/v1/webhooks", "post"),
        ("/v1/webhooks", "get"),
        ("/v1/webhooks/{id}", "put"),
        ("/v1/webhooks/{id}", "delete"),
        ("/v1/webhooks/{id}/deliveries", "get"),
        ("/v1/webhooks/{id}/test", "post"),
        ("/v1/analytics/kpis", "get"),
        ("/v1/analytics/timeseries", "get"),
        ("/v1/analytics/latency", "get"),
        ("/v1/analytics/forecast", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
}

#[tokio::test]
async fn the_sender_loop_delivers_when_woken() {
    let app = TestApp::new().await;
    let rx = Receiver::start(app.clock.clone(), &[]).await;
    create(
        &app,
        json!({"url": rx.url, "events": ["call.ended"], "secret": SECRET}),
    )
    .await;
    let sender = tokio::spawn(webhooks::run(app.state.clone()));
    webhooks::enqueue(&app.state, "call.ended", json!({"loop": true}))
        .await
        .unwrap();
    // The receiver is real: wait (bounded) for the request to land.
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.arrived.notified())
        .await
        .expect("the sender delivered");
    sender.abort();
    let got = rx.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["data"], json!({"loop": true}));
}
