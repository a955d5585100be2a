//! Call rows shared by the recorder, the calls routes and the dialer.

use crate::db::new_id;
use crate::error::ApiResult;
use crate::state::AppState;
use sqlx::AnyConnection;

/// How a call row starts.
#[derive(Debug, Clone, Default)]
pub struct NewCall<'a> {
    /// `inbound` or `outbound`.
    pub direction: &'a str,
    /// `sip` or `twilio`.
    pub transport: &'a str,
    /// Agent name.
    pub agent: &'a str,
    /// Caller number.
    pub from: Option<&'a str>,
    /// Called number.
    pub to: Option<&'a str>,
}

/// The id of the live call row for `engine_call`, creating it if there is
/// none. Idempotent and race-free (a unique index on live engine call ids):
/// the recorder (on the engine's event) and the dialer (after placing the
/// call) may both call it, in either order.
pub async fn ensure_call(s: &AppState, engine_call: &str, new: &NewCall<'_>) -> ApiResult<String> {
    let mut db = s.db.pool.acquire().await?;
    ensure_call_on(&mut db, s.now_ms(), engine_call, new).await
}

/// [`ensure_call`] on a connection or inside a transaction.
pub async fn ensure_call_on(
    db: &mut AnyConnection,
    now_ms: i64,
    engine_call: &str,
    new: &NewCall<'_>,
) -> ApiResult<String> {
    if let Some(id) = live_call_on(db, engine_call).await? {
        return Ok(id);
    }
    sqlx::query(
        "INSERT INTO calls (id, engine_call, direction, transport, agent, from_number, to_number, status, started_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'ringing', $8) ON CONFLICT DO NOTHING",
    )
    .bind(new_id("ca"))
    .bind(engine_call)
    .bind(new.direction)
    .bind(new.transport)
    .bind(new.agent)
    .bind(new.from)
    .bind(new.to)
    .bind(now_ms)
    .execute(&mut *db)
    .await?;
    live_call_on(db, engine_call)
        .await?
        .ok_or_else(|| crate::error::ApiError::internal("call row vanished"))
}

/// The live (not ended) call row for an engine call id.
pub async fn live_call(s: &AppState, engine_call: &str) -> ApiResult<Option<String>> {
    let mut db = s.db.pool.acquire().await?;
    live_call_on(&mut db, engine_call).await
}

async fn live_call_on(db: &mut AnyConnection, engine_call: &str) -> ApiResult<Option<String>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT id FROM calls WHERE engine_call = $1 AND status <> 'ended'")
            .bind(engine_call)
            .fetch_optional(&mut *db)
            .await?;
    Ok(row.map(|r| r.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestApp;

    #[tokio::test]
    async fn ensure_call_is_idempotent_and_ended_rows_free_the_engine_id() {
        let app = TestApp::new().await;
        let s = &app.state;
        let new = NewCall {
            direction: "outbound",
            transport: "sip",
            agent: "sales",
            from: Some("+15550000000"),
            to: Some("+15551234567"),
        };
        let a = ensure_call(s, "call-1", &new).await.unwrap();
        let b = ensure_call(s, "call-1", &new).await.unwrap();
        assert_eq!(a, b);
        sqlx::query("UPDATE calls SET status = 'ended' WHERE id = $1")
            .bind(&a)
            .execute(&s.db.pool)
            .await
            .unwrap();
        // After a restart the engine reuses call-1: a new row.
        let c = ensure_call(s, "call-1", &new).await.unwrap();
        assert_ne!(a, c);
    }
}
