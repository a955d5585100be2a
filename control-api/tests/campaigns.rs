//! Campaigns end to end on the fake engine and the fake clock (Monday
//! 2026-01-05 15:00 UTC): contact uploads, the lifecycle, the dialer
//! (concurrency, calling hours, do-not-call, retries, A/B split, recovery)
//! and A/B statistics.

use axum::http::StatusCode;
use futures_util::future::BoxFuture;
use serde_json::{json, Value};
use vocelio_control_api::dialer;
use vocelio_control_api::model::{ResolvedAgent, Routing};
use vocelio_control_api::state::{EngineControl, EngineError, LocalVoice, OutboundCall};
use vocelio_control_api::testing::{TestApp, T0_MS};
use vocelio_pipelines::brain::Brain;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

async fn agent(app: &TestApp, name: &str) {
    let spec = json!({"name": name, "brain": {"type": "llm", "prompt": "Sell."}});
    sqlx::query(
        "INSERT INTO agents (id, name, spec, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(format!("ag_{name}"))
    .bind(name)
    .bind(spec.to_string())
    .bind(T0_MS)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

fn spec(max_concurrency: u32) -> Value {
    json!({
        "name": "Renewals",
        "agent": "sales",
        "schedule": {"timezone": "Europe/London", "days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00"},
        "max_concurrency": max_concurrency,
        "pacing_per_minute": 600,
        "retries": {"max_attempts": 2, "backoff_s": 60, "multiplier": 2},
        "caller_id": "+442079460000"
    })
}

async fn app_with_agents() -> TestApp {
    let app = TestApp::new().await;
    agent(&app, "sales").await;
    agent(&app, "sales2").await;
    app
}

async fn create(app: &TestApp, spec: Value) -> String {
    let (st, body) = app.call("POST", "/v1/campaigns", Some(spec)).await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["status"], "draft");
    body["id"].as_str().unwrap().to_string()
}

async fn upload(app: &TestApp, id: &str, csv: &str) -> (StatusCode, Value) {
    let (st, _, bytes) = app
        .raw(
            "POST",
            &format!("/v1/campaigns/{id}/contacts"),
            axum::body::Body::from(csv.to_string()),
            "text/csv",
        )
        .await;
    (st, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

async fn start(app: &TestApp, id: &str) {
    let (st, body) = app
        .call("POST", &format!("/v1/campaigns/{id}/start"), None)
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
}

async fn contacts(app: &TestApp, id: &str) -> Vec<Value> {
    let (st, body) = app
        .call(
            "GET",
            &format!("/v1/campaigns/{id}/contacts?limit=500"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn contact<'a>(list: &'a [Value], phone: &str) -> &'a Value {
    list.iter().find(|c| c["phone"] == phone).unwrap()
}

/// The calls still live end, answered.
async fn answer_and_end_all(app: &TestApp) -> u64 {
    sqlx::query(
        "UPDATE calls SET status = 'ended', answered_ms = $1, ended_ms = $1, end_reason = 'remote_bye' WHERE status <> 'ended'",
    )
    .bind(app.clock_now())
    .execute(&app.state.db.pool)
    .await
    .unwrap()
    .rows_affected()
}

async fn end_unanswered(app: &TestApp, reason: &str) {
    sqlx::query(
        "UPDATE calls SET status = 'ended', ended_ms = $1, end_reason = $2 WHERE status <> 'ended'",
    )
    .bind(app.clock_now())
    .bind(reason)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

trait Now {
    fn clock_now(&self) -> i64;
}

impl Now for TestApp {
    fn clock_now(&self) -> i64 {
        self.state.now_ms()
    }
}

async fn tick(app: &TestApp) -> dialer::TickReport {
    dialer::tick(&app.state).await.unwrap()
}

fn placed_to(app: &TestApp) -> Vec<String> {
    app.engine.placed().into_iter().map(|c| c.to).collect()
}

#[tokio::test]
async fn csv_uploads_report_bad_numbers_duplicates_dnc_and_bad_zones() {
    let app = app_with_agents().await;
    let id = create(&app, spec(5)).await;
    let (st, body) = app
        .call(
            "POST",
            "/v1/dnc",
            Some(json!({"number": "+44 20 7946 0999", "reason": "asked"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{body}");
    assert_eq!(body["number"], "+442079460999");

    let csv = "phone,name,timezone,plan\n\
               +44 20 7946 0001,Ann,,gold\n\
               07946 0002,Bob,,\n\
               +442079460001,Ann twice,,\n\
               +442079460999,Dee,,\n\
               +12135550100,Eve,Pacific/Atlantis,\n\
               +12135550101,Fay,America/Los_Angeles,silver\n\
               not a number,Gus,,\n";
    let (st, report) = upload(&app, &id, csv).await;
    assert_eq!(st, StatusCode::OK, "{report}");
    assert_eq!(report["accepted"], 2, "{report}");
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["dnc"], 1);
    let rejected = report["rejected"].as_array().unwrap();
    let rows: Vec<_> = rejected
        .iter()
        .map(|r| (r["row"].as_u64().unwrap(), r["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rows,
        [
            (3, "07946 0002"),
            (6, "Pacific/Atlantis"),
            (8, "not a number")
        ]
    );
    assert!(rejected[1]["reason"]
        .as_str()
        .unwrap()
        .contains("time zone"));

    let list = contacts(&app, &id).await;
    assert_eq!(list.len(), 3);
    let ann = contact(&list, "+442079460001");
    assert_eq!(ann["name"], "Ann");
    assert_eq!(ann["timezone"], "Europe/London");
    assert_eq!(ann["variables"], json!({"plan": "gold"}));
    assert_eq!(ann["status"], "pending");
    assert_eq!(
        contact(&list, "+12135550101")["timezone"],
        "America/Los_Angeles"
    );
    assert_eq!(contact(&list, "+442079460999")["status"], "dnc");
    let (_, only_dnc) = app
        .call(
            "GET",
            &format!("/v1/campaigns/{id}/contacts?status=dnc"),
            None,
        )
        .await;
    assert_eq!(only_dnc["total"], 1);

    // A second upload: numbers already in the campaign are duplicates.
    let (_, again) = upload(&app, &id, "phone\n+442079460001\n+442079460003\n").await;
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, c) = app.call("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(c["counts"]["total"], 4);
    assert_eq!(c["counts"]["pending"], 3);

    // Bad uploads.
    let (st, body) = upload(&app, &id, "name,number\nAnn,+442079460001\n").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "body");
    assert!(body["error"]["message"].as_str().unwrap().contains("phone"));
    let (st, _) = upload(&app, &id, "").await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _, _) = app
        .raw(
            "POST",
            &format!("/v1/campaigns/{id}/contacts"),
            axum::body::Body::from("phone\n+442079460001\n"),
            "application/json",
        )
        .await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (st, _) = upload(&app, "cp_nope", "phone\n+442079460001\n").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = app
        .call(
            "GET",
            &format!("/v1/campaigns/{id}/contacts?status=lost"),
            None,
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "status");
}

#[tokio::test]
async fn the_dnc_list_is_managed_and_checked() {
    let app = app_with_agents().await;
    let (st, body) = app
        .call("POST", "/v1/dnc", Some(json!({"number": "12345"})))
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "number");
    let (st, _) = app
        .call(
            "POST",
            "/v1/dnc",
            Some(json!({"number": "+442079460999", "x": 1})),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _) = app
        .call("POST", "/v1/dnc", Some(json!({"number": "+442079460999"})))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let (st, _) = app
        .call(
            "POST",
            "/v1/dnc",
            Some(json!({"number": "0044 20 7946 0999"})),
        )
        .await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, list) = app.call("GET", "/v1/dnc", None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["number"], "+442079460999");
    let (st, _) = app.call("DELETE", "/v1/dnc/%2B442079460999", None).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = app.call("DELETE", "/v1/dnc/+442079460999", None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, body) = app.call("DELETE", "/v1/dnc/abc", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "number");
    let (st, _) = app.call("GET", "/v1/dnc?limit=0", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn campaign_documents_are_validated_field_by_field() {
    let app = app_with_agents().await;
    let ab = |f: &dyn Fn(&mut Value)| {
        let mut s = spec(5);
        s.as_object_mut().unwrap().remove("agent");
        s["variants"] = json!([
            {"name": "a", "agent": "sales", "weight": 1},
            {"name": "b", "agent": "sales2", "weight": 1}
        ]);
        f(&mut s);
        s
    };
    let cases = [
        (
            ab(&|s| s["variants"][1]["weight"] = json!(0)),
            "variants[1].weight",
        ),
        (
            ab(&|s| s["variants"][1]["agent"] = json!("ghost")),
            "variants[1].agent",
        ),
        (
            ab(&|s| s["variants"][0]["weight"] = json!("heavy")),
            "variants[0].weight",
        ),
        (
            ab(&|s| s["schedule"]["start"] = json!("9:00")),
            "schedule.start",
        ),
        (
            ab(&|s| s["schedule"]["days"] = json!(["monday"])),
            "schedule.days[0]",
        ),
        (ab(&|s| s["max_concurrency"] = json!(0)), "max_concurrency"),
        (
            ab(&|s| s["pacing_per_minute"] = json!(601)),
            "pacing_per_minute",
        ),
        (
            ab(&|s| s["retries"]["backoff_s"] = json!(9)),
            "retries.backoff_s",
        ),
        (ab(&|s| s["caller_id"] = json!("hello")), "caller_id"),
        (ab(&|s| s["agent"] = json!("sales")), "variants"),
        (
            ab(&|s| s["conversion"] = json!({"type": "revenue"})),
            "conversion.type",
        ),
        (
            json!({"name": "x", "agent": "ghost", "schedule": {"timezone": "UTC"}, "caller_id": "+15550000000"}),
            "agent",
        ),
    ];
    for (body, field) in cases {
        let (st, err) = app.call("POST", "/v1/campaigns", Some(body)).await;
        assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
    }
    let (st, _) = app
        .call(
            "POST",
            "/v1/campaigns",
            Some(ab(&|s| s["surprise"] = json!(1))),
        )
        .await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // Defaults fill in; the caller id is normalised.
    let (st, c) = app
        .call(
            "POST",
            "/v1/campaigns",
            Some(json!({"name": "Min", "agent": "sales", "schedule": {"timezone": "UTC"}, "caller_id": "+1 555 000 0000"})),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    assert_eq!(c["spec"]["caller_id"], "+15550000000");
    assert_eq!(c["spec"]["schedule"]["start"], "09:00");
    assert_eq!(c["spec"]["conversion"]["type"], "answered");
    let (st, body) = app.call("GET", "/v1/campaigns?status=sideways", None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "status");
}

#[tokio::test]
async fn the_lifecycle_allows_only_legal_transitions() {
    let app = app_with_agents().await;
    let id = create(&app, spec(5)).await;
    let go = |cmd: &'static str| {
        let uri = format!("/v1/campaigns/{id}/{cmd}");
        let app = &app;
        async move { app.call("POST", &uri, None).await }
    };
    // Nothing to call yet.
    let (st, body) = go("start").await;
    assert_eq!(st, StatusCode::CONFLICT, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("contacts"));
    for cmd in ["pause", "resume"] {
        assert_eq!(go(cmd).await.0, StatusCode::CONFLICT, "{cmd} from draft");
    }
    upload(&app, &id, "phone\n+442079460001\n").await;
    let (st, c) = go("start").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (c["status"].as_str(), c["started_ms"].as_i64()),
        (Some("running"), Some(T0_MS))
    );
    for cmd in ["start", "resume"] {
        let (st, body) = go(cmd).await;
        assert_eq!(st, StatusCode::CONFLICT, "{cmd} while running");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("running"),
            "{body}"
        );
    }
    let uri = format!("/v1/campaigns/{id}");
    assert_eq!(
        app.call("PUT", &uri, Some(spec(3))).await.0,
        StatusCode::CONFLICT
    );
    assert_eq!(app.call("DELETE", &uri, None).await.0, StatusCode::CONFLICT);
    assert_eq!(go("pause").await.1["status"], "paused");
    let (st, body) = go("start").await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("resume"));
    // Paused campaigns can be edited (and are validated).
    let (st, c) = app.call("PUT", &uri, Some(spec(3))).await;
    assert_eq!(st, StatusCode::OK, "{c}");
    assert_eq!(c["spec"]["max_concurrency"], 3);
    let mut bad = spec(3);
    bad["schedule"]["end"] = json!("08:00");
    let (st, body) = app.call("PUT", &uri, Some(bad)).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["field"], "schedule.end");
    assert_eq!(go("resume").await.1["status"], "running");
    assert_eq!(go("stop").await.1["status"], "stopped");
    for cmd in ["start", "pause", "resume", "stop"] {
        assert_eq!(go(cmd).await.0, StatusCode::CONFLICT, "{cmd} when stopped");
    }
    assert_eq!(
        app.call("PUT", &uri, Some(spec(3))).await.0,
        StatusCode::CONFLICT
    );
    let (st, _) = upload(&app, &id, "phone\n+442079460002\n").await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (_, list) = app.call("GET", "/v1/campaigns?status=stopped", None).await;
    assert_eq!(list["total"], 1);
    let (_, list) = app.call("GET", "/v1/campaigns?status=running", None).await;
    assert_eq!(list["total"], 0);
    assert_eq!(
        app.call("DELETE", &uri, None).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.call("GET", &uri, None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(go("start").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn dialing_honours_max_concurrency_and_completes() {
    let app = app_with_agents().await;
    let id = create(&app, spec(2)).await;
    let csv: String = std::iter::once("phone".to_string())
        .chain((1..=5).map(|i| format!("+44207946000{i}")))
        .collect::<Vec<_>>()
        .join("\n");
    upload(&app, &id, &csv).await;
    // Paused and draft campaigns do not dial.
    assert_eq!(tick(&app).await.placed, 0);
    start(&app, &id).await;
    let mut events = app.state.events.subscribe();
    assert_eq!(tick(&app).await.placed, 2);
    assert_eq!(tick(&app).await.placed, 0, "two calls are still in flight");
    let placed = app.engine.placed();
    assert_eq!(placed[0].from, "+442079460000");
    assert_eq!(placed[0].agent, "sales");
    let (_, calls): (_, Vec<(String, String, String)>) = (
        (),
        sqlx::query_as(
            "SELECT campaign_id, contact_id, variant FROM calls ORDER BY started_ms, id",
        )
        .fetch_all(&app.state.db.pool)
        .await
        .unwrap(),
    );
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.0 == id && c.2 == "default"));

    assert_eq!(answer_and_end_all(&app).await, 2);
    let r = tick(&app).await;
    assert_eq!((r.settled, r.placed), (2, 2));
    answer_and_end_all(&app).await;
    let r = tick(&app).await;
    assert_eq!((r.settled, r.placed), (2, 1));
    assert!(r.completed.is_empty());
    answer_and_end_all(&app).await;
    let r = tick(&app).await;
    assert_eq!(r.completed, vec![id.clone()]);
    assert_eq!(app.engine.placed().len(), 5);
    let (_, c) = app.call("GET", &format!("/v1/campaigns/{id}"), None).await;
    assert_eq!(c["status"], "completed");
    assert_eq!(c["completed_ms"], T0_MS);
    assert_eq!(c["counts"]["done"], 5);
    assert_eq!(
        c["counts"]["converted"], 5,
        "answered is the default conversion"
    );
    let list = contacts(&app, &id).await;
    assert!(list
        .iter()
        .all(|c| c["status"] == "done" && c["attempts"] == 1 && c["last_result"] == "answered"));
    assert!(list.iter().all(|c| c["call_id"].is_string()));
    // The completion went out live.
    let mut kinds = Vec::new();
    while let Ok(e) = events.try_recv() {
        kinds.push(e.kind.clone());
    }
    assert!(
        kinds.contains(&"campaign.completed".to_string()),
        "{kinds:?}"
    );
    assert_eq!(tick(&app).await, dialer::TickReport::default());
}

#[tokio::test]
async fn contacts_are_called_only_in_their_own_calling_hours() {
    let app = app_with_agents().await;
    let id = create(&app, spec(10)).await;
    upload(
        &app,
        &id,
        "phone,timezone\n+12135550100,America/Los_Angeles\n+442079460001,Europe/London\n",
    )
    .await;
    start(&app, &id).await;
    // 15:00 in London, 07:00 in Los Angeles.
    let r = tick(&app).await;
    assert_eq!((r.placed, r.deferred), (1, 1));
    assert_eq!(placed_to(&app), ["+442079460001"]);
    let la = contacts(&app, &id).await;
    let la = contact(&la, "+12135550100");
    assert_eq!(la["status"], "pending");
    assert_eq!(la["attempts"], 0, "a deferral uses no attempt");
    assert_eq!(la["next_attempt_ms"], T0_MS + 2 * HOUR);
    app.clock.advance(2 * HOUR - 1);
    assert_eq!(tick(&app).await.placed, 0, "08:59:59.999 in Los Angeles");
    app.clock.advance(1);
    assert_eq!(tick(&app).await.placed, 1, "09:00 in Los Angeles");
    assert_eq!(placed_to(&app), ["+442079460001", "+12135550100"]);
}

#[tokio::test]
async fn numbers_on_the_dnc_list_are_never_dialled() {
    let app = app_with_agents().await;
    let id = create(&app, spec(10)).await;
    app.call("POST", "/v1/dnc", Some(json!({"number": "+442079460001"})))
        .await;
    upload(
        &app,
        &id,
        "phone\n+442079460001\n+442079460002\n+442079460003\n+442079460004\n",
    )
    .await;
    // Listed after the upload through the API: the pending contact is marked at once.
    app.call("POST", "/v1/dnc", Some(json!({"number": "+442079460002"})))
        .await;
    // Listed behind the API's back: the dialer checks before every call.
    sqlx::query("INSERT INTO dnc (e164, reason, created_ms) VALUES ('+442079460003', 'import', 0)")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    start(&app, &id).await;
    let r = tick(&app).await;
    assert_eq!((r.placed, r.dnc), (1, 1));
    assert_eq!(placed_to(&app), ["+442079460004"]);
    answer_and_end_all(&app).await;
    let r = tick(&app).await;
    assert_eq!(r.completed.len(), 1);
    assert_eq!(placed_to(&app), ["+442079460004"]);
    let list = contacts(&app, &id).await;
    for n in ["+442079460001", "+442079460002", "+442079460003"] {
        assert_eq!(contact(&list, n)["status"], "dnc", "{n}");
        assert_eq!(contact(&list, n)["attempts"], 0, "{n}");
    }
}

#[tokio::test]
async fn busy_contacts_are_retried_after_the_backoff_and_only_then() {
    let app = app_with_agents().await;
    let id = create(&app, spec(10)).await;
    upload(&app, &id, "phone\n+442079460001\n").await;
    start(&app, &id).await;
    assert_eq!(tick(&app).await.placed, 1);
    end_unanswered(&app, "busy").await;
    let r = tick(&app).await;
    assert_eq!((r.settled, r.placed), (1, 0));
    let c = contacts(&app, &id).await;
    assert_eq!(c[0]["status"], "pending");
    assert_eq!(c[0]["last_result"], "busy");
    assert_eq!(c[0]["next_attempt_ms"], T0_MS + MINUTE);
    app.clock.advance(MINUTE - 1);
    assert_eq!(tick(&app).await.placed, 0, "before the backoff");
    app.clock.advance(1);
    assert_eq!(tick(&app).await.placed, 1, "at the backoff");
    // Second (last) attempt: no answer -> exhausted, and the campaign completes.
    end_unanswered(&app, "no_answer").await;
    let r = tick(&app).await;
    assert_eq!((r.placed, r.completed.len()), (0, 1));
    let c = contacts(&app, &id).await;
    assert_eq!(
        (c[0]["status"].as_str(), c[0]["attempts"].as_i64()),
        (Some("exhausted"), Some(2))
    );
    app.clock.advance(HOUR);
    tick(&app).await;
    assert_eq!(app.engine.placed().len(), 2);
}

#[tokio::test]
async fn rejected_calls_fail_without_retry() {
    let app = app_with_agents().await;
    let id = create(&app, spec(10)).await;
    upload(&app, &id, "phone\n+442079460001\n").await;
    start(&app, &id).await;
    tick(&app).await;
    end_unanswered(&app, "rejected_403").await;
    app.clock.advance(HOUR);
    let r = tick(&app).await;
    assert_eq!((r.placed, r.completed.len()), (0, 1));
    assert_eq!(contacts(&app, &id).await[0]["status"], "failed");
}

fn ab_spec() -> Value {
    let mut s = spec(500);
    s.as_object_mut().unwrap().remove("agent");
    s["variants"] = json!([
        {"name": "a", "agent": "sales", "weight": 1},
        {"name": "b", "agent": "sales2", "voice": "en_US-test-medium", "weight": 1}
    ]);
    s["conversion"] = json!({"type": "outcome", "value": "completed"});
    s
}

#[tokio::test]
async fn ab_variants_split_by_weight() {
    let app = app_with_agents().await;
    let id = create(&app, ab_spec()).await;
    let csv: String = std::iter::once("phone".to_string())
        .chain((0..200).map(|i| format!("+4420794{i:05}")))
        .collect::<Vec<_>>()
        .join("\n");
    let (_, report) = upload(&app, &id, &csv).await;
    assert_eq!(report["accepted"], 200);
    start(&app, &id).await;
    assert_eq!(tick(&app).await.placed, 200);
    let placed = app.engine.placed();
    let a = placed.iter().filter(|c| c.agent == "sales").count();
    let b = placed.iter().filter(|c| c.agent == "sales2").count();
    assert_eq!(a + b, 200);
    assert!((90..=110).contains(&a), "a={a} b={b}");
    // The call rows carry the variant and its voice.
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT variant, voice FROM calls WHERE campaign_id = $1")
            .bind(&id)
            .fetch_all(&app.state.db.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 200);
    assert!(rows.iter().all(|(v, voice)| (v == "a" && voice.is_none())
        || (v == "b" && voice.as_deref() == Some("en_US-test-medium"))));
}

async fn finished_call(
    app: &TestApp,
    campaign: &str,
    variant: &str,
    answered: bool,
    outcome: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO calls (id, engine_call, direction, transport, agent, status, end_reason, started_ms, answered_ms, ended_ms, campaign_id, variant, outcome) \
         VALUES ($1, $2, 'outbound', 'sip', 'sales', 'ended', 'remote_bye', $3, $4, $3, $5, $6, $7)",
    )
    .bind(vocelio_control_api::db::new_id("ca"))
    .bind(vocelio_control_api::db::new_id("call"))
    .bind(T0_MS)
    .bind(answered.then_some(T0_MS))
    .bind(campaign)
    .bind(variant)
    .bind(outcome)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn ab_results_compare_the_best_two_variants() {
    let app = app_with_agents().await;
    let id = create(&app, ab_spec()).await;
    let uri = format!("/v1/campaigns/{id}/ab");
    let (st, empty) = app.call("GET", &uri, None).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(empty["comparison"], Value::Null, "no data");
    assert_eq!(empty["variants"][0]["calls"], 0);
    // a: 60 of 100 completed; b: 40 of 100 (90 answered).
    for i in 0..100 {
        finished_call(&app, &id, "a", true, (i < 60).then_some("completed")).await;
        let outcome = if i < 40 {
            Some("completed")
        } else {
            Some("caller_hung_up")
        };
        finished_call(&app, &id, "b", i < 90, outcome).await;
    }
    let (st, ab) = app.call("GET", &uri, None).await;
    assert_eq!(st, StatusCode::OK, "{ab}");
    let v = ab["variants"].as_array().unwrap();
    assert_eq!(v[0]["variant"], "a");
    assert_eq!(
        (
            v[0]["calls"].as_u64(),
            v[0]["answered"].as_u64(),
            v[0]["conversions"].as_u64()
        ),
        (Some(100), Some(100), Some(60))
    );
    assert_eq!(v[0]["conversion_rate"], 0.6);
    assert_eq!(
        (v[1]["answered"].as_u64(), v[1]["conversions"].as_u64()),
        (Some(90), Some(40))
    );
    let cmp = &ab["comparison"];
    assert_eq!(cmp["best"], "a");
    assert_eq!(cmp["runner_up"], "b");
    let z = cmp["z"].as_f64().unwrap();
    let p = cmp["p_value"].as_f64().unwrap();
    assert!((z - 2.828_427).abs() < 1e-5, "{cmp}");
    assert!((p - 0.004_678).abs() < 1e-5, "{cmp}");
    assert_eq!(cmp["significant"], true);
    assert_eq!(cmp["winner"], "a");

    // A small difference is not significant: no winner yet.
    let id2 = create(&app, ab_spec()).await;
    for i in 0..50 {
        finished_call(&app, &id2, "a", true, (i < 26).then_some("completed")).await;
        finished_call(&app, &id2, "b", true, (i < 24).then_some("completed")).await;
    }
    let (_, ab2) = app
        .call("GET", &format!("/v1/campaigns/{id2}/ab"), None)
        .await;
    assert_eq!(ab2["comparison"]["significant"], false, "{ab2}");
    assert_eq!(ab2["comparison"]["winner"], Value::Null);

    // One variant only: nothing to compare.
    let single = create(&app, spec(5)).await;
    finished_call(&app, &single, "default", true, None).await;
    let (_, ab3) = app
        .call("GET", &format!("/v1/campaigns/{single}/ab"), None)
        .await;
    assert_eq!(ab3["variants"].as_array().unwrap().len(), 1);
    assert_eq!(ab3["variants"][0]["conversions"], 1);
    assert_eq!(ab3["comparison"], Value::Null);
    assert_eq!(
        app.call("GET", "/v1/campaigns/cp_nope/ab", None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn after_a_crash_no_contact_is_dialled_twice() {
    let app = app_with_agents().await;
    let id = create(&app, spec(10)).await;
    upload(
        &app,
        &id,
        "phone\n+442079460001\n+442079460002\n+442079460003\n+442079460004\n",
    )
    .await;
    start(&app, &id).await;
    // Three calls go out; the fourth contact was claimed but the process
    // died before its call row was written.
    let mut s = spec(3);
    s["name"] = json!("Renewals");
    app.call("POST", &format!("/v1/campaigns/{id}/pause"), None)
        .await;
    app.call("PUT", &format!("/v1/campaigns/{id}"), Some(s))
        .await;
    app.call("POST", &format!("/v1/campaigns/{id}/resume"), None)
        .await;
    assert_eq!(tick(&app).await.placed, 3);
    sqlx::query(
        "UPDATE contacts SET status = 'dialing', attempts = 1 WHERE e164 = '+442079460004'",
    )
    .execute(&app.state.db.pool)
    .await
    .unwrap();
    // The recorder's recovery closed the live calls, one had been answered.
    sqlx::query("UPDATE calls SET answered_ms = $1 WHERE to_number = '+442079460001'")
        .bind(T0_MS)
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    end_unanswered(&app, "engine_restart").await;
    app.clock.advance(MINUTE);

    dialer::recover(&app.state).await.unwrap();
    let r = tick(&app).await;
    assert_eq!(r.placed, 0);
    assert_eq!(r.completed, vec![id.clone()]);
    app.clock.advance(HOUR);
    tick(&app).await;
    assert_eq!(app.engine.placed().len(), 3);
    let list = contacts(&app, &id).await;
    for c in &list {
        assert_eq!(c["status"], "done", "{c}");
        assert_eq!(c["last_result"], "interrupted", "{c}");
    }
}

/// An engine that refuses every outbound call.
#[derive(Debug, Default)]
struct Refusing(vocelio_control_api::testing::FakeEngine);

impl EngineControl for Refusing {
    fn place_call(&self, _call: OutboundCall) -> BoxFuture<'_, Result<String, EngineError>> {
        Box::pin(async { Err(EngineError::Refused("no trunk".into())) })
    }
    fn hangup(&self, c: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        self.0.hangup(c)
    }
    fn transfer(&self, c: &str, t: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        self.0.transfer(c, t)
    }
    fn send_dtmf(&self, c: &str, d: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        self.0.send_dtmf(c, d)
    }
    fn apply(&self, r: Routing) -> BoxFuture<'_, Result<(), EngineError>> {
        self.0.apply(r)
    }
    fn brain(&self, a: &ResolvedAgent) -> Result<Box<dyn Brain>, EngineError> {
        self.0.brain(a)
    }
    fn voices(&self) -> Vec<LocalVoice> {
        self.0.voices()
    }
    fn preview(&self, v: &str, t: &str) -> BoxFuture<'_, Result<Vec<u8>, EngineError>> {
        self.0.preview(v, t)
    }
}

#[tokio::test]
async fn calls_the_engine_refuses_back_off_then_fail() {
    let app = app_with_agents().await;
    let id = create(&app, spec(10)).await;
    upload(&app, &id, "phone\n+442079460001\n").await;
    start(&app, &id).await;
    let mut refusing = app.state.clone();
    refusing.engine = std::sync::Arc::new(Refusing::default());
    let r = dialer::tick(&refusing).await.unwrap();
    assert_eq!((r.placed, r.place_failed), (0, 1));
    let c = contacts(&app, &id).await;
    assert_eq!(c[0]["status"], "pending");
    assert_eq!(c[0]["attempts"], 1);
    assert_eq!(c[0]["last_result"], "place_failed: refused");
    assert_eq!(c[0]["next_attempt_ms"], T0_MS + MINUTE);
    assert_eq!(
        dialer::tick(&refusing).await.unwrap().place_failed,
        0,
        "backing off"
    );
    app.clock.advance(MINUTE);
    let r = dialer::tick(&refusing).await.unwrap();
    assert_eq!((r.place_failed, r.completed.len()), (1, 1));
    assert_eq!(contacts(&app, &id).await[0]["status"], "failed");
}

#[tokio::test]
async fn the_openapi_document_lists_the_campaign_routes() {
    let app = TestApp::new().await;
    let (_, doc) = app.call_as(None, "GET", "/v1/openapi.json", None).await;
    for (path, method) in [
        ("/v1/campaigns", "post"),
        ("/v1/campaigns/{id}", "put"),
        ("/v1/campaigns/{id}/contacts", "post"),
        ("/v1/campaigns/{id}/start", "post"),
        ("/v1/campaigns/{id}/ab", "get"),
        ("/v1/dnc", "post"),
        ("/v1/dnc/{number}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    assert!(
        doc["paths"]["/v1/campaigns/{id}/contacts"]["post"]["requestBody"]["content"]["text/csv"]
            .is_object()
    );
}
