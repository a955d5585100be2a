//! Health, readiness and Prometheus metrics (no API key needed).

use crate::state::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// `/health`, `/ready`, `/metrics`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// Ready when not shutting down and the database answers.
async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    if !s.ready.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down");
    }
    match sqlx::query("SELECT 1").execute(&s.db.pool).await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: database unavailable");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
        }
    }
}

async fn count(s: &AppState, sql: &str) -> i64 {
    sqlx::query_as::<_, (i64,)>(sql)
        .fetch_one(&s.db.pool)
        .await
        .map(|r| r.0)
        .unwrap_or(-1)
}

/// The engine's metrics plus the control plane's gauges.
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut text = s.engine.prometheus();
    let gauges = [
        (
            "vocelio_api_calls_live",
            "Calls in progress (ringing or answered).",
            "SELECT COUNT(*) FROM calls WHERE status <> 'ended'",
        ),
        (
            "vocelio_api_calls_total",
            "Calls recorded.",
            "SELECT COUNT(*) FROM calls",
        ),
        (
            "vocelio_api_campaigns_running",
            "Campaigns dialling.",
            "SELECT COUNT(*) FROM campaigns WHERE status = 'running'",
        ),
        (
            "vocelio_api_webhook_deliveries_pending",
            "Webhook deliveries waiting to be sent or retried.",
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'",
        ),
        (
            "vocelio_api_webhook_deliveries_failed",
            "Webhook deliveries that gave up.",
            "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'failed'",
        ),
    ];
    for (name, help, sql) in gauges {
        let v = count(&s, sql).await;
        let _ = write!(
            text,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n"
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
