//! Analytics over call rows inserted directly, at times relative to the
//! fake clock, with every figure checked exactly.

use axum::http::StatusCode;
use serde_json::{json, Value};
use vocelio_control_api::testing::{TestApp, T0_MS};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 86_400_000;

/// A call row; `talk_s` is answered → ended (none: not answered).
#[derive(Default)]
struct Call<'a> {
    id: &'a str,
    agent: &'a str,
    started: i64,
    talk_s: Option<i64>,
    campaign: Option<&'a str>,
    variant: Option<&'a str>,
    voice: Option<&'a str>,
    outcome: Option<&'a str>,
}

async fn insert(app: &TestApp, c: Call<'_>) {
    let answered = c.talk_s.map(|_| c.started + 2_000);
    let ended = Some(c.started + 2_000 + c.talk_s.unwrap_or(0) * 1000);
    sqlx::query(
        "INSERT INTO calls (id, engine_call, direction, transport, agent, status, end_reason, started_ms, \
         answered_ms, ended_ms, campaign_id, variant, voice, outcome) \
         VALUES ($1, $2, 'outbound', 'sip', $3, 'ended', 'remote_bye', $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(c.id)
    .bind(format!("call-{}", c.id))
    .bind(c.agent)
    .bind(c.started)
    .bind(answered)
    .bind(ended)
    .bind(c.campaign)
    .bind(c.variant)
    .bind(c.voice)
    .bind(c.outcome)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

async fn contact(app: &TestApp, id: &str, campaign: &str, call: &str, converted: bool) {
    sqlx::query(
        "INSERT INTO contacts (id, campaign_id, e164, timezone, variables, status, attempts, next_attempt_ms, \
         call_id, converted, updated_ms) VALUES ($1, $2, $3, 'UTC', '{}', 'done', 1, 0, $4, $5, $6)",
    )
    .bind(id)
    .bind(campaign)
    .bind(format!("+1555000{:04}", id.len()))
    .bind(call)
    .bind(i64::from(converted))
    .bind(T0_MS)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

async fn turn(app: &TestApp, call: &str, seq: i64, v2v: Option<f64>, at: i64) {
    sqlx::query(
        "INSERT INTO turn_metrics (call_id, seq, voice_to_voice_ms, metrics, created_ms) VALUES ($1, $2, $3, '{}', $4)",
    )
    .bind(call)
    .bind(seq)
    .bind(v2v)
    .bind(at)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

/// Four calls in the last 7 days, one before and one after.
async fn seed(app: &TestApp) {
    let t0 = T0_MS;
    insert(
        app,
        Call {
            id: "c1",
            agent: "sales",
            started: t0 - 3 * HOUR,
            talk_s: Some(60),
            campaign: Some("cp_1"),
            variant: Some("A"),
            voice: Some("eleven-rachel"),
            outcome: Some("completed"),
        },
    )
    .await;
    insert(
        app,
        Call {
            id: "c2",
            agent: "sales",
            started: t0 - 2 * HOUR,
            talk_s: Some(120),
            campaign: Some("cp_1"),
            variant: Some("B"),
            voice: Some("eleven-rachel"),
            outcome: Some("transferred"),
        },
    )
    .await;
    insert(
        app,
        Call {
            id: "c3",
            agent: "support",
            started: t0 - HOUR + 10 * MIN,
            ..Call::default()
        },
    )
    .await;
    insert(
        app,
        Call {
            id: "c4",
            agent: "support",
            started: t0 - 30 * MIN,
            talk_s: Some(30),
            voice: Some("en_US-test-medium"),
            outcome: Some("completed"),
            ..Call::default()
        },
    )
    .await;
    insert(
        app,
        Call {
            id: "c5",
            agent: "support",
            started: t0 - 8 * DAY,
            talk_s: Some(600),
            ..Call::default()
        },
    )
    .await;
    insert(
        app,
        Call {
            id: "c6",
            agent: "support",
            started: t0,
            talk_s: Some(600),
            ..Call::default()
        },
    )
    .await;
    contact(app, "k1", "cp_1", "c1", true).await;
    contact(app, "k22", "cp_1", "c2", false).await;
    sqlx::query(
        "INSERT INTO voice_providers (id, provider, name, language, price_per_min, created_ms) \
         VALUES ('eleven-rachel', 'elevenlabs', 'Rachel', 'en-US', 0.25, $1)",
    )
    .bind(T0_MS)
    .execute(&app.state.db.pool)
    .await
    .unwrap();
}

async fn get(app: &TestApp, uri: &str) -> Value {
    let (st, body) = app.call("GET", uri, None).await;
    assert_eq!(st, StatusCode::OK, "{uri}: {body}");
    body
}

async fn rejects(app: &TestApp, uri: &str, field: &str) {
    let (st, body) = app.call("GET", uri, None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {body}");
    assert_eq!(body["error"]["field"], field, "{uri}: {body}");
}

#[tokio::test]
async fn kpis_over_the_last_week_overall_and_per_group() {
    let app = TestApp::new().await;
    seed(&app).await;
    let k = get(&app, "/v1/analytics/kpis").await;
    assert_eq!(k["from_ms"], T0_MS - 7 * DAY);
    assert_eq!(k["to_ms"], T0_MS);
    assert_eq!(k["groups"], json!([]));
    let o = &k["overall"];
    assert_eq!(o["calls"], 4);
    assert_eq!(o["answered"], 3);
    assert_eq!(o["answer_rate"], 0.75);
    // (60 + 120 + 30) / 3 s.
    assert_eq!(o["avg_handle_time_s"], 70.0);
    // c2 was transferred.
    assert_eq!(o["containment_rate"], 2.0 / 3.0);
    assert_eq!(o["campaign_answered"], 2);
    assert_eq!(o["conversions"], 1);
    assert_eq!(o["conversion_rate"], 0.5);
    assert_eq!(
        o["voices"],
        json!([
            {"voice": "eleven-rachel", "provider": "elevenlabs", "minutes": 3.0, "price_per_min": 0.25, "cost": 0.75},
            {"voice": "en_US-test-medium", "provider": "local", "minutes": 0.5, "price_per_min": 0.0, "cost": 0.0}
        ])
    );

    let k = get(&app, "/v1/analytics/kpis?group_by=agent").await;
    assert_eq!(k["group_by"], "agent");
    let g = k["groups"].as_array().unwrap();
    assert_eq!(g.len(), 2);
    assert_eq!(g[0]["key"], "sales");
    assert_eq!(
        (&g[0]["calls"], &g[0]["answered"], &g[0]["containment_rate"]),
        (&json!(2), &json!(2), &json!(0.5))
    );
    assert_eq!(g[0]["avg_handle_time_s"], 90.0);
    assert_eq!(g[0]["conversion_rate"], 0.5);
    assert_eq!(g[1]["key"], "support");
    assert_eq!(
        (&g[1]["calls"], &g[1]["answer_rate"]),
        (&json!(2), &json!(0.5))
    );
    assert_eq!(g[1]["conversion_rate"], Value::Null);

    let k = get(&app, "/v1/analytics/kpis?group_by=variant").await;
    let keys: Vec<&Value> = k["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| &g["key"])
        .collect();
    assert_eq!(keys, [&Value::Null, &json!("A"), &json!("B")]);
    assert_eq!(k["groups"][1]["conversions"], 1);
    assert_eq!(k["groups"][2]["conversions"], 0);
    let k = get(&app, "/v1/analytics/kpis?group_by=campaign").await;
    assert_eq!(k["groups"][1]["key"], "cp_1");
    assert_eq!(k["groups"][1]["calls"], 2);

    // An explicit range takes in c5 and c6 (to is exclusive: +1).
    let k = get(
        &app,
        &format!(
            "/v1/analytics/kpis?from_ms={}&to_ms={}",
            T0_MS - 9 * DAY,
            T0_MS + 1
        ),
    )
    .await;
    assert_eq!(k["overall"]["calls"], 6);
    // An empty range has no rates.
    let k = get(
        &app,
        &format!("/v1/analytics/kpis?from_ms={T0_MS}&to_ms={T0_MS}"),
    )
    .await;
    assert_eq!(k["overall"]["calls"], 0);
    assert_eq!(k["overall"]["answer_rate"], Value::Null);
}

#[tokio::test]
async fn bad_analytics_parameters_name_the_parameter() {
    let app = TestApp::new().await;
    rejects(&app, "/v1/analytics/kpis?group_by=team", "group_by").await;
    rejects(&app, "/v1/analytics/kpis?from_ms=abc", "from_ms").await;
    rejects(&app, "/v1/analytics/kpis?to_ms=-1", "to_ms").await;
    rejects(
        &app,
        "/v1/analytics/kpis?from_ms=9223372036854775807",
        "from_ms",
    )
    .await;
    rejects(
        &app,
        &format!("/v1/analytics/kpis?from_ms={}&to_ms={}", T0_MS, T0_MS - 1),
        "from_ms",
    )
    .await;
    rejects(&app, "/v1/analytics/timeseries?bucket=week", "bucket").await;
    rejects(&app, "/v1/analytics/latency?from_ms=1.5", "from_ms").await;
    rejects(&app, "/v1/analytics/forecast?bucket=minute", "bucket").await;
    rejects(&app, "/v1/analytics/forecast?horizon=0", "horizon").await;
    rejects(
        &app,
        "/v1/analytics/forecast?bucket=day&horizon=91",
        "horizon",
    )
    .await;
    rejects(
        &app,
        "/v1/analytics/forecast?bucket=hour&horizon=169",
        "horizon",
    )
    .await;
    rejects(&app, "/v1/analytics/forecast?horizon=x", "horizon").await;
    get(&app, "/v1/analytics/forecast?bucket=hour&horizon=168").await;
    get(&app, "/v1/analytics/forecast?bucket=day&horizon=90").await;
}

#[tokio::test]
async fn timeseries_in_utc_hours_and_days_with_empty_buckets() {
    let app = TestApp::new().await;
    seed(&app).await;
    let ts = get(
        &app,
        &format!(
            "/v1/analytics/timeseries?bucket=hour&from_ms={}&to_ms={T0_MS}",
            T0_MS - 3 * HOUR
        ),
    )
    .await;
    assert_eq!(ts["bucket"], "hour");
    assert_eq!(
        ts["buckets"],
        json!([
            {"start_ms": T0_MS - 3 * HOUR, "calls": 1, "answered": 1, "avg_handle_time_s": 60.0},
            {"start_ms": T0_MS - 2 * HOUR, "calls": 1, "answered": 1, "avg_handle_time_s": 120.0},
            {"start_ms": T0_MS - HOUR, "calls": 2, "answered": 1, "avg_handle_time_s": 30.0},
        ])
    );

    // Days are UTC midnights: T0 is 15:00, so 10 days back is 11 buckets.
    let ts = get(
        &app,
        &format!(
            "/v1/analytics/timeseries?bucket=day&from_ms={}&to_ms={}",
            T0_MS - 10 * DAY,
            T0_MS + 1
        ),
    )
    .await;
    let b = ts["buckets"].as_array().unwrap();
    assert_eq!(b.len(), 11);
    let midnight = T0_MS - 15 * HOUR;
    assert_eq!(b[0]["start_ms"], midnight - 10 * DAY);
    assert_eq!(b[2]["start_ms"], midnight - 8 * DAY);
    assert_eq!(
        (&b[2]["calls"], &b[2]["avg_handle_time_s"]),
        (&json!(1), &json!(600.0))
    );
    assert_eq!(
        (&b[1]["calls"], &b[1]["avg_handle_time_s"]),
        (&json!(0), &Value::Null)
    );
    assert_eq!(b[10]["start_ms"], midnight);
    assert_eq!(
        (&b[10]["calls"], &b[10]["answered"]),
        (&json!(5), &json!(4))
    );

    // 2000 buckets at most.
    let from = T0_MS - 15 * HOUR - 2000 * HOUR;
    let ts = get(
        &app,
        &format!(
            "/v1/analytics/timeseries?bucket=hour&from_ms={from}&to_ms={}",
            T0_MS - 15 * HOUR
        ),
    )
    .await;
    assert_eq!(ts["buckets"].as_array().unwrap().len(), 2000);
    rejects(
        &app,
        &format!(
            "/v1/analytics/timeseries?bucket=hour&from_ms={}&to_ms={}",
            from - 1,
            T0_MS - 15 * HOUR
        ),
        "to_ms",
    )
    .await;
    rejects(
        &app,
        "/v1/analytics/timeseries?bucket=hour&from_ms=0",
        "to_ms",
    )
    .await;
}

#[tokio::test]
async fn latency_percentiles_by_nearest_rank() {
    let app = TestApp::new().await;
    seed(&app).await;
    // Ten sales turns of 100..1000 ms, one support turn of 2000 ms, one
    // unmeasured turn, and one turn before the range.
    for i in 1..=10 {
        turn(&app, "c1", i, Some(100.0 * i as f64), T0_MS - 3 * HOUR + i).await;
    }
    turn(&app, "c4", 1, Some(2000.0), T0_MS - 30 * MIN).await;
    turn(&app, "c4", 2, None, T0_MS - 29 * MIN).await;
    turn(&app, "c5", 1, Some(9000.0), T0_MS - 8 * DAY).await;

    let l = get(&app, "/v1/analytics/latency").await;
    // n = 11: ranks ⌈5.5⌉ = 6, ⌈9.9⌉ = 10, ⌈10.45⌉ = 11, ⌈10.89⌉ = 11.
    assert_eq!(
        (
            &l["count"],
            &l["p50"],
            &l["p90"],
            &l["p95"],
            &l["p99"],
            &l["max"]
        ),
        (
            &json!(11),
            &json!(600.0),
            &json!(1000.0),
            &json!(2000.0),
            &json!(2000.0),
            &json!(2000.0)
        )
    );
    let l = get(&app, "/v1/analytics/latency?agent=sales").await;
    assert_eq!(l["agent"], "sales");
    // n = 10: ranks 5, 9, 10, 10.
    assert_eq!(
        (
            &l["count"],
            &l["p50"],
            &l["p90"],
            &l["p95"],
            &l["p99"],
            &l["max"]
        ),
        (
            &json!(10),
            &json!(500.0),
            &json!(900.0),
            &json!(1000.0),
            &json!(1000.0),
            &json!(1000.0)
        )
    );
    let l = get(&app, "/v1/analytics/latency?agent=nobody").await;
    assert_eq!((&l["count"], &l["p50"]), (&json!(0), &Value::Null));
}

async fn calls_on_day(app: &TestApp, day_start: i64, n: i64, tag: &str) {
    for i in 0..n {
        let id = format!("{tag}-{i}");
        insert(
            app,
            Call {
                id: &id,
                agent: "sales",
                started: day_start + HOUR + i * MIN,
                ..Call::default()
            },
        )
        .await;
    }
}

#[tokio::test]
async fn forecast_continues_a_linear_daily_trend() {
    let app = TestApp::new().await;
    let today = T0_MS - 15 * HOUR;
    // Ten days of 1, 3, 5, … 19 calls, then 4 today (not yet history).
    for d in 0..10 {
        calls_on_day(&app, today - (10 - d) * DAY, 2 * d + 1, &format!("d{d}")).await;
    }
    calls_on_day(&app, today, 4, "today").await;
    let f = get(&app, "/v1/analytics/forecast?bucket=day&horizon=3").await;
    assert_eq!(f["method"], "holt_linear");
    let history = f["history"].as_array().unwrap();
    assert_eq!(history.len(), 10);
    assert_eq!(
        history[0],
        json!({"start_ms": today - 10 * DAY, "calls": 1})
    );
    assert_eq!(history[9], json!({"start_ms": today - DAY, "calls": 19}));
    assert_eq!(
        f["forecast"],
        json!([
            {"start_ms": today, "calls": 21.0},
            {"start_ms": today + DAY, "calls": 23.0},
            {"start_ms": today + 2 * DAY, "calls": 25.0},
        ])
    );
}

#[tokio::test]
async fn two_weeks_of_days_forecast_by_weekday() {
    let app = TestApp::new().await;
    // T0 is a Monday: Mondays get 6 calls, other days 1, for two weeks.
    let today = T0_MS - 15 * HOUR;
    for d in 1..=14 {
        let n = if d % 7 == 0 { 6 } else { 1 };
        calls_on_day(&app, today - d * DAY, n, &format!("d{d}")).await;
    }
    let f = get(&app, "/v1/analytics/forecast?bucket=day&horizon=8").await;
    assert_eq!(f["method"], "day_of_week_average");
    assert_eq!(f["history"].as_array().unwrap().len(), 14);
    let calls: Vec<f64> = f["forecast"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["calls"].as_f64().unwrap())
        .collect();
    assert_eq!(calls, [6.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 6.0]);

    // Hourly, there is no seasonal method; with no calls in the last 14
    // days of hours the forecast is flat zero.
    let app = TestApp::new().await;
    let f = get(&app, "/v1/analytics/forecast?bucket=hour&horizon=2").await;
    assert_eq!(f["method"], "holt_linear");
    assert_eq!(f["history"], json!([]));
    assert_eq!(
        f["forecast"],
        json!([
            {"start_ms": T0_MS, "calls": 0.0},
            {"start_ms": T0_MS + HOUR, "calls": 0.0},
        ])
    );
}
