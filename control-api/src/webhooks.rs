//! Webhook deliveries: a queue in the database, a sender that retries with
//! exponential backoff, and the signature receivers check.
//!
//! # What a receiver gets
//!
//! Each delivery is a `POST` of JSON to the webhook's URL:
//!
//! ```json
//! {"id": "wd_3f9c…", "event": "call.ended", "created_ms": 1767625200000, "data": {…}}
//! ```
//!
//! with these headers:
//!
//! - `Content-Type: application/json`
//! - `X-Vocelio-Event: call.ended`
//! - `X-Vocelio-Delivery: wd_3f9c…`: the same on every retry of a delivery,
//!   so a receiver can drop duplicates (delivery is at least once).
//! - `X-Vocelio-Signature: t=1767625200,v1=5257a869…`
//!
//! # The signature
//!
//! `t` is the Unix time in seconds when this attempt was signed, `v1` the
//! lowercase hex HMAC-SHA256, keyed with the webhook's secret (its UTF-8
//! bytes), of the string `"<t>.<body>"`: `t` in decimal, a full stop, and
//! the raw request body exactly as received. To check a request:
//!
//! 1. split the header on `,` and each part on the first `=`; take `t` and
//!    every `v1` (more than one may come while a secret is rotated);
//! 2. compute the HMAC over `"<t>.<raw body>"` and compare it with each
//!    `v1` in constant time;
//! 3. reject a `t` further than your tolerance (5 minutes, say) from your
//!    clock, so a captured request cannot be replayed later.
//!
//! [`verify`] does exactly this; [`sign`] makes the header.
//!
//! # Retries
//!
//! A 2xx answer within 10 seconds delivers. Anything else (another status,
//! a timeout, a refused connection, a redirect) is retried after
//! [`retry_delay_ms`]: 5 s, 10 s, 20 s, … doubling up to one hour, and the
//! delivery gives up as `failed` after [`MAX_ATTEMPTS`] attempts. The queue
//! is the `webhook_deliveries` table, so deliveries survive restarts.

use crate::db::new_id;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use futures_util::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::sync::OnceLock;
use std::time::Duration;

/// The events a webhook can subscribe to (`*` subscribes to all).
pub const EVENTS: [&str; 4] = [
    "call.started",
    "call.ended",
    "transcript.final",
    "campaign.completed",
];

/// The event `POST /v1/webhooks/{id}/test` sends.
pub const PING: &str = "ping";

/// Attempts before a delivery is given up as `failed`.
pub const MAX_ATTEMPTS: i64 = 10;

/// First retry delay, ms; each further retry doubles it.
pub const FIRST_RETRY_MS: i64 = 5_000;

/// Longest retry delay, ms.
pub const MAX_RETRY_MS: i64 = 3_600_000;

/// How long one attempt may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Deliveries taken per round of [`send_due`].
const BATCH: i64 = 64;

/// Deliveries in flight at once.
const CONCURRENCY: usize = 4;

/// While an attempt is in flight its delivery is leased this long (its
/// `next_attempt_ms` moved ahead), so a second sender does not take it; a
/// sender that dies mid-attempt leaves it to be retried after the lease.
const LEASE_MS: i64 = 60_000;

/// Longest `last_error` kept.
const MAX_ERROR_CHARS: usize = 300;

/// The delay before the next attempt, after `attempts` failed ones (≥ 1):
/// 5 s × 2^(attempts − 1), at most one hour.
pub fn retry_delay_ms(attempts: i64) -> i64 {
    let doublings = (attempts.max(1) - 1).min(20) as u32;
    FIRST_RETRY_MS
        .saturating_mul(1_i64 << doublings)
        .min(MAX_RETRY_MS)
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Vocelio-Signature` header for `body` signed at `t` (Unix
/// seconds) with `secret`: `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

/// Whether `header` (an `X-Vocelio-Signature` value) signs `body` with
/// `secret`, at a time within `tolerance_s` seconds of `now_s`. Any `v1`
/// may match; the comparison is constant-time. Malformed headers are `false`.
pub fn verify(secret: &str, header: &str, body: &[u8], now_s: i64, tolerance_s: i64) -> bool {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return false;
        };
        match key {
            "t" => match value.parse::<i64>() {
                Ok(v) if t.is_none() => t = Some(v),
                _ => return false,
            },
            "v1" => match hex::decode(value) {
                Ok(sig) => signatures.push(sig),
                Err(_) => return false,
            },
            // Later schemes: ignored, as Stripe does.
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if now_s.abs_diff(t) > tolerance_s.max(0) as u64 {
        return false;
    }
    signatures
        .iter()
        .any(|sig| mac(secret, t, body).verify_slice(sig).is_ok())
}

/// Queue `event` (`call.started`, `call.ended`, `transcript.final`,
/// `campaign.completed`) with `payload` for every active webhook subscribed
/// to it (or to `*`). The queue is in the database: committed before this
/// returns.
pub async fn enqueue(s: &AppState, event: &str, payload: serde_json::Value) -> ApiResult<()> {
    let mut tx = s.db.begin_write().await?;
    let queued = enqueue_on(&mut tx, s.now_ms(), event, &payload).await?;
    tx.commit().await?;
    if queued > 0 {
        s.webhook_wake.notify_one();
    }
    Ok(())
}

/// Queue `event` for every active webhook subscribed to it, on a connection
/// or inside the caller's transaction; returns how many were queued (the
/// caller wakes the delivery worker once that has committed).
pub async fn enqueue_on(
    db: &mut sqlx::AnyConnection,
    now_ms: i64,
    event: &str,
    payload: &serde_json::Value,
) -> ApiResult<usize> {
    let hooks: Vec<(String, String)> =
        sqlx::query_as("SELECT id, events FROM webhooks WHERE active = 1 ORDER BY id")
            .fetch_all(&mut *db)
            .await?;
    let subscribed: Vec<String> = hooks
        .into_iter()
        .filter(|(_, events)| subscribes(events, event))
        .map(|(id, _)| id)
        .collect();
    if subscribed.is_empty() {
        return Ok(0);
    }
    let payload = payload.to_string();
    for hook in &subscribed {
        insert_delivery(&mut *db, hook, event, &payload, now_ms).await?;
    }
    tracing::debug!(
        event,
        webhooks = subscribed.len(),
        "webhook deliveries queued"
    );
    Ok(subscribed.len())
}

/// Queue a `ping` to one webhook (whatever it subscribes to); returns the
/// delivery id.
pub async fn enqueue_ping(s: &AppState, webhook_id: &str) -> ApiResult<String> {
    let payload = serde_json::json!({ "webhook_id": webhook_id }).to_string();
    let id = insert_delivery(&s.db.pool, webhook_id, PING, &payload, s.now_ms()).await?;
    s.webhook_wake.notify_one();
    Ok(id)
}

/// Whether a stored events list (a JSON array) takes `event`.
fn subscribes(events_json: &str, event: &str) -> bool {
    serde_json::from_str::<Vec<String>>(events_json)
        .map(|events| events.iter().any(|e| e == "*" || e == event))
        .unwrap_or(false)
}

async fn insert_delivery<'e, E>(
    db: E,
    webhook_id: &str,
    event: &str,
    payload: &str,
    now: i64,
) -> ApiResult<String>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let id = new_id("wd");
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, attempts, next_attempt_ms, created_ms) \
         VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)",
    )
    .bind(&id)
    .bind(webhook_id)
    .bind(event)
    .bind(payload)
    .bind(now)
    .execute(db)
    .await?;
    Ok(id)
}

/// The body of a delivery: the same bytes on every attempt.
pub fn body(id: &str, event: &str, created_ms: i64, payload: &str) -> String {
    let data = serde_json::from_str::<serde_json::Value>(payload)
        .unwrap_or_else(|_| serde_json::Value::String(payload.to_string()));
    serde_json::json!({ "id": id, "event": event, "created_ms": created_ms, "data": data })
        .to_string()
}

fn client() -> ApiResult<&'static reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = CLIENT.get() {
        return Ok(c);
    }
    let c = reqwest::Client::builder()
        .timeout(TIMEOUT)
        // A redirect is an answer the receiver must fix, not one to follow
        // with a signed body.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vocelio-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(ApiError::internal)?;
    Ok(CLIENT.get_or_init(|| c))
}

/// A delivery due to be sent.
#[derive(Debug)]
struct Due {
    id: String,
    event: String,
    payload: String,
    created_ms: i64,
    attempts: i64,
    next_attempt_ms: i64,
    url: String,
    secret: String,
}

type DueRow = (String, String, String, i64, i64, i64, String, String);

/// Send every pending delivery whose time has come (up to a batch, a few
/// at once) and record the results. Returns how many were attempted.
pub async fn send_due(s: &AppState) -> ApiResult<usize> {
    let now = s.now_ms();
    let rows: Vec<DueRow> = sqlx::query_as(
        "SELECT d.id, d.event, d.payload, d.created_ms, d.attempts, d.next_attempt_ms, w.url, w.secret \
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         WHERE d.status = 'pending' AND d.next_attempt_ms <= $1 \
         ORDER BY d.next_attempt_ms, d.id LIMIT $2",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(&s.db.pool)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let client = client()?;
    let results: Vec<ApiResult<bool>> = futures_util::stream::iter(rows.into_iter().map(|r| Due {
        id: r.0,
        event: r.1,
        payload: r.2,
        created_ms: r.3,
        attempts: r.4,
        next_attempt_ms: r.5,
        url: r.6,
        secret: r.7,
    }))
    .map(|due| attempt(s, client, due))
    .buffer_unordered(CONCURRENCY)
    .collect()
    .await;
    let mut sent = 0;
    for r in results {
        if r? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// One attempt at one delivery; `false` when another sender had it.
async fn attempt(s: &AppState, client: &reqwest::Client, due: Due) -> ApiResult<bool> {
    // Lease it: only the sender that moves its time ahead sends it.
    let leased = sqlx::query(
        "UPDATE webhook_deliveries SET next_attempt_ms = $1 \
         WHERE id = $2 AND status = 'pending' AND next_attempt_ms = $3",
    )
    .bind(s.now_ms() + LEASE_MS)
    .bind(&due.id)
    .bind(due.next_attempt_ms)
    .execute(&s.db.pool)
    .await?;
    if leased.rows_affected() == 0 {
        return Ok(false);
    }
    let body = body(&due.id, &due.event, due.created_ms, &due.payload);
    let t = s.now_ms().div_euclid(1000);
    let result = client
        .post(&due.url)
        .header("Content-Type", "application/json")
        .header("X-Vocelio-Event", &due.event)
        .header("X-Vocelio-Delivery", &due.id)
        .header("X-Vocelio-Signature", sign(&due.secret, t, body.as_bytes()))
        .body(body)
        .send()
        .await;
    let (status, error) = match result {
        Ok(resp) if resp.status().is_success() => (Some(resp.status().as_u16()), None),
        Ok(resp) => (
            Some(resp.status().as_u16()),
            Some(format!("HTTP {}", resp.status())),
        ),
        Err(e) => (e.status().map(|s| s.as_u16()), Some(describe(&e))),
    };
    let attempts = due.attempts + 1;
    let now = s.now_ms();
    let status = status.map(i64::from);
    match error {
        None => {
            sqlx::query(
                "UPDATE webhook_deliveries SET status = 'delivered', attempts = $1, last_status = $2, \
                 last_error = NULL, delivered_ms = $3 WHERE id = $4 AND status = 'pending'",
            )
            .bind(attempts)
            .bind(status)
            .bind(now)
            .bind(&due.id)
            .execute(&s.db.pool)
            .await?;
            tracing::debug!(delivery = %due.id, event = %due.event, attempts, "webhook delivered");
        }
        Some(error) => {
            let gave_up = attempts >= MAX_ATTEMPTS;
            sqlx::query(
                "UPDATE webhook_deliveries SET status = $1, attempts = $2, last_status = $3, \
                 last_error = $4, next_attempt_ms = $5 WHERE id = $6 AND status = 'pending'",
            )
            .bind(if gave_up { "failed" } else { "pending" })
            .bind(attempts)
            .bind(status)
            .bind(&error)
            .bind(now + retry_delay_ms(attempts))
            .bind(&due.id)
            .execute(&s.db.pool)
            .await?;
            if gave_up {
                tracing::warn!(delivery = %due.id, event = %due.event, attempts, %error, "webhook delivery failed for good");
            } else {
                tracing::debug!(delivery = %due.id, attempts, %error, "webhook attempt failed");
            }
        }
    }
    Ok(true)
}

/// A transport error in a few words (with its causes), bounded.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {e}");
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    truncate(text)
}

fn truncate(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(MAX_ERROR_CHARS) {
        s.truncate(i);
        s.push('…');
    }
    s
}

/// Send due deliveries, retrying with exponential backoff, forever: every
/// `tick_ms`, or at once when a delivery is queued.
pub async fn run(s: AppState) {
    let tick = Duration::from_millis(s.settings.tick_ms.max(1));
    loop {
        match send_due(&s).await {
            // A full batch: there may be more due now.
            Ok(n) if n as i64 >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e.body.message, "webhook sender"),
        }
        tokio::select! {
            _ = tokio::time::sleep(tick) => {}
            _ = s.webhook_wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_from_five_seconds_up_to_an_hour() {
        let delays: Vec<i64> = (1..=11).map(retry_delay_ms).collect();
        assert_eq!(
            delays,
            [
                5_000, 10_000, 20_000, 40_000, 80_000, 160_000, 320_000, 640_000, 1_280_000,
                2_560_000, 3_600_000
            ]
        );
        assert_eq!(retry_delay_ms(0), 5_000);
        assert_eq!(retry_delay_ms(i64::MAX), 3_600_000);
    }

    #[test]
    fn a_signature_verifies_and_nothing_else_does() {
        let body = br#"{"id":"wd_1","event":"ping"}"#;
        let header = sign("whsec_0123456789abcdef", 1_767_625_200, body);
        assert!(header.starts_with("t=1767625200,v1="), "{header}");
        let ok = |h: &str, b: &[u8], now: i64| verify("whsec_0123456789abcdef", h, b, now, 300);
        assert!(ok(&header, body, 1_767_625_200));
        assert!(ok(&header, body, 1_767_625_500));
        // Too old or from the future.
        assert!(!ok(&header, body, 1_767_625_501));
        assert!(!ok(&header, body, 1_767_624_899));
        // Another body, another secret, a forged time.
        assert!(!ok(&header, b"{}", 1_767_625_200));
        assert!(!verify(
            "whsec_other_secret_xx",
            &header,
            body,
            1_767_625_200,
            300
        ));
        let forged = header.replace("t=1767625200", "t=1767625201");
        assert!(!ok(&forged, body, 1_767_625_200));
        // A second v1 (rotation) may be the good one; extra schemes are ignored.
        let v1 = header.split_once(",v1=").unwrap().1;
        let rotated = format!("t=1767625200,v1={},v0=zz,v1={v1}", "00".repeat(32));
        assert!(ok(&rotated, body, 1_767_625_200));
        // Malformed headers.
        for bad in [
            "",
            "t=1767625200",
            "v1=abcd",
            "t=x,v1=00",
            "t=1767625200,v1=zz",
            "garbage",
        ] {
            assert!(!ok(bad, body, 1_767_625_200), "{bad}");
        }
    }

    #[test]
    fn the_signed_string_is_time_dot_body() {
        // Independent of `mac`: HMAC over the documented string.
        let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(b"key-key-key-key-key").unwrap();
        m.update(b"42.hello");
        let want = format!("t=42,v1={}", hex::encode(m.finalize().into_bytes()));
        assert_eq!(sign("key-key-key-key-key", 42, b"hello"), want);
    }

    #[test]
    fn subscriptions_match_the_event_or_star() {
        assert!(subscribes(r#"["call.ended"]"#, "call.ended"));
        assert!(!subscribes(r#"["call.ended"]"#, "call.started"));
        assert!(subscribes(r#"["*"]"#, "campaign.completed"));
        assert!(!subscribes("not json", "call.ended"));
    }

    #[test]
    fn errors_are_truncated_on_a_char_boundary() {
        let long = "é".repeat(1000);
        let t = truncate(long);
        assert_eq!(t.chars().count(), MAX_ERROR_CHARS + 1);
        assert!(t.ends_with('…'));
    }
}
