//! `/v1/webhooks`: subscribe URLs to call and campaign events, read each
//! webhook's delivery log, send a test ping. Deliveries are signed; the
//! scheme is described in [`crate::webhooks`].

use crate::db::new_id;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorResponse};
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use crate::webhooks;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The webhooks routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_webhooks, create_webhook))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(test_webhook))
}

/// An event a webhook can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum WebhookEvent {
    /// A call started ringing.
    #[serde(rename = "call.started")]
    CallStarted,
    /// A call ended.
    #[serde(rename = "call.ended")]
    CallEnded,
    /// A final transcript line.
    #[serde(rename = "transcript.final")]
    TranscriptFinal,
    /// A campaign finished.
    #[serde(rename = "campaign.completed")]
    CampaignCompleted,
    /// Every event (alone in the list).
    #[serde(rename = "*")]
    All,
}

impl WebhookEvent {
    /// As sent in `X-Vocelio-Event` and stored.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::CallStarted => "call.started",
            WebhookEvent::CallEnded => "call.ended",
            WebhookEvent::TranscriptFinal => "transcript.final",
            WebhookEvent::CampaignCompleted => "campaign.completed",
            WebhookEvent::All => "*",
        }
    }
}

/// A webhook to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST (`http` or `https`).
    pub url: String,
    /// Events to send (`["*"]`: all).
    pub events: Vec<WebhookEvent>,
    /// Signing secret, 16–256 characters (default: generated, shown once).
    #[serde(default)]
    pub secret: Option<String>,
    /// Whether events are queued for it (default `true`).
    #[serde(default)]
    pub active: Option<bool>,
}

/// A webhook's new settings. `secret` and `active` keep their values when absent.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    /// Where to POST (`http` or `https`).
    pub url: String,
    /// Events to send (`["*"]`: all).
    pub events: Vec<WebhookEvent>,
    /// A new signing secret, 16–256 characters (absent: unchanged).
    #[serde(default)]
    pub secret: Option<String>,
    /// Whether events are queued for it (absent: unchanged).
    #[serde(default)]
    pub active: Option<bool>,
}

/// A webhook (never its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Webhook {
    /// Id.
    pub id: String,
    /// Where deliveries go.
    pub url: String,
    /// Subscribed events.
    pub events: Vec<String>,
    /// Whether events are queued for it.
    pub active: bool,
    /// Created, ms since the epoch.
    pub created_ms: i64,
}

/// A created webhook: `secret` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// The signing secret (see the `X-Vocelio-Signature` scheme).
    pub secret: String,
    /// Its record.
    #[serde(flatten)]
    pub webhook: Webhook,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// A 2xx answer was received.
    Delivered,
    /// Given up (too many attempts, or the webhook was deleted).
    Failed,
}

impl DeliveryStatus {
    fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One delivery in a webhook's log.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Delivery {
    /// Id (the `X-Vocelio-Delivery` header and the body's `id`).
    pub id: String,
    /// The webhook.
    pub webhook_id: String,
    /// Event (`ping` for a test).
    pub event: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// HTTP status of the last attempt (none when no answer came).
    pub last_status: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Queued, ms since the epoch.
    pub created_ms: i64,
    /// Next attempt, ms since the epoch (pending deliveries).
    pub next_attempt_ms: Option<i64>,
    /// Delivered, ms since the epoch.
    pub delivered_ms: Option<i64>,
    /// The event's data (the body's `data`).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// Webhook list filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookFilter {
    /// Only active (`true`) or inactive (`false`) webhooks.
    pub active: Option<bool>,
}

/// Delivery log filters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// Only deliveries in this state.
    #[param(inline)]
    #[param(inline)]
    pub status: Option<DeliveryStatus>,
}

/// A queued test delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueuedPing {
    /// The delivery id (see `GET /v1/webhooks/{id}/deliveries`).
    pub delivery_id: String,
}

const MAX_URL_CHARS: usize = 2048;

fn check_url(url: &str) -> ApiResult<String> {
    let url = url.trim();
    if url.is_empty() || url.len() > MAX_URL_CHARS {
        return Err(ApiError::validation(
            "url",
            format!("must be 1 to {MAX_URL_CHARS} characters"),
        ));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| ApiError::validation("url", format!("{e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ApiError::validation("url", "must be an http or https URL"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::validation("url", "must name a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(ApiError::validation(
            "url",
            "must not carry credentials (verify the signature instead)",
        ));
    }
    Ok(parsed.to_string())
}

fn check_events(events: &[WebhookEvent]) -> ApiResult<Vec<String>> {
    if events.is_empty() {
        return Err(ApiError::validation(
            "events",
            "subscribe to at least one event",
        ));
    }
    if events.contains(&WebhookEvent::All) && events.len() > 1 {
        return Err(ApiError::validation(
            "events",
            "\"*\" means every event: give it alone",
        ));
    }
    let mut out: Vec<WebhookEvent> = events.to_vec();
    out.sort();
    out.dedup();
    Ok(out.iter().map(|e| e.as_str().to_string()).collect())
}

fn check_secret(secret: &str) -> ApiResult<()> {
    let n = secret.chars().count();
    if !(16..=256).contains(&n) {
        return Err(ApiError::validation(
            "secret",
            "must be 16 to 256 characters",
        ));
    }
    if secret.chars().any(char::is_control) {
        return Err(ApiError::validation(
            "secret",
            "must not contain control characters",
        ));
    }
    Ok(())
}

fn generate_secret() -> ApiResult<String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| ApiError::internal(format!("no entropy: {e}")))?;
    Ok(format!("whsec_{}", hex::encode(b)))
}

type WebhookRow = (String, String, String, i64, i64);

fn webhook(r: WebhookRow) -> ApiResult<Webhook> {
    Ok(Webhook {
        events: serde_json::from_str(&r.2).map_err(ApiError::internal)?,
        id: r.0,
        url: r.1,
        active: r.3 != 0,
        created_ms: r.4,
    })
}

async fn load(s: &AppState, id: &str) -> ApiResult<Webhook> {
    let row: Option<WebhookRow> =
        sqlx::query_as("SELECT id, url, events, active, created_ms FROM webhooks WHERE id = $1")
            .bind(id)
            .fetch_optional(&s.db.pool)
            .await?;
    webhook(row.ok_or_else(|| ApiError::not_found(format!("webhook {id}")))?)
}

/// List webhooks (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(PageQuery, WebhookFilter),
    responses((status = 200, body = Page<Webhook>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_webhooks(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<WebhookFilter>,
) -> ApiResult<axum::Json<Page<Webhook>>> {
    let page = page.checked()?;
    // -1 matches every row's flag.
    let active = filter.active.map_or(-1, i64::from);
    let total: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM webhooks WHERE ($1 = -1 OR active = $1)")
            .bind(active)
            .fetch_one(&s.db.pool)
            .await?;
    let rows: Vec<WebhookRow> = sqlx::query_as(
        "SELECT id, url, events, active, created_ms FROM webhooks WHERE ($1 = -1 OR active = $1) \
         ORDER BY created_ms, id LIMIT $2 OFFSET $3",
    )
    .bind(active)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&s.db.pool)
    .await?;
    let items = rows.into_iter().map(webhook).collect::<ApiResult<_>>()?;
    Ok(axum::Json(Page::new(items, total.0, page)))
}

/// Create a webhook. The secret is in this response only.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = NewWebhook,
    responses((status = 201, body = CreatedWebhook), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_webhook(
    State(s): State<AppState>,
    ApiJson(new): ApiJson<NewWebhook>,
) -> ApiResult<(StatusCode, axum::Json<CreatedWebhook>)> {
    let url = check_url(&new.url)?;
    let events = check_events(&new.events)?;
    let secret = match new.secret {
        Some(secret) => {
            check_secret(&secret)?;
            secret
        }
        None => generate_secret()?,
    };
    let hook = Webhook {
        id: new_id("wh"),
        url,
        events,
        active: new.active.unwrap_or(true),
        created_ms: s.now_ms(),
    };
    sqlx::query(
        "INSERT INTO webhooks (id, url, secret, events, active, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&hook.id)
    .bind(&hook.url)
    .bind(&secret)
    .bind(serde_json::to_string(&hook.events).map_err(ApiError::internal)?)
    .bind(i64::from(hook.active))
    .bind(hook.created_ms)
    .execute(&s.db.pool)
    .await?;
    tracing::info!(webhook = %hook.id, events = ?hook.events, "webhook created");
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedWebhook {
            secret,
            webhook: hook,
        }),
    ))
}

/// One webhook.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_webhook(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Webhook>> {
    Ok(axum::Json(load(&s, &id).await?))
}

/// Change a webhook's URL, events, secret or state. Deliveries already
/// queued go to the new URL, signed with the new secret.
#[utoipa::path(put, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = UpdateWebhook,
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_webhook(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(update): ApiJson<UpdateWebhook>,
) -> ApiResult<axum::Json<Webhook>> {
    let url = check_url(&update.url)?;
    let events = check_events(&update.events)?;
    if let Some(secret) = &update.secret {
        check_secret(secret)?;
    }
    let done = sqlx::query(
        "UPDATE webhooks SET url = $1, events = $2, secret = COALESCE($3, secret), \
         active = COALESCE($4, active) WHERE id = $5",
    )
    .bind(&url)
    .bind(serde_json::to_string(&events).map_err(ApiError::internal)?)
    .bind(update.secret.as_deref())
    .bind(update.active.map(i64::from))
    .bind(&id)
    .execute(&s.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("webhook {id}")));
    }
    tracing::info!(webhook = %id, events = ?events, "webhook updated");
    Ok(axum::Json(load(&s, &id).await?))
}

/// Delete a webhook. Its pending deliveries are marked failed.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 204), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_webhook(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let mut tx = s.db.pool.begin().await?;
    let done = sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("webhook {id}")));
    }
    sqlx::query(
        "UPDATE webhook_deliveries SET status = 'failed', last_error = 'webhook deleted' \
         WHERE webhook_id = $1 AND status = 'pending'",
    )
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(webhook = %id, "webhook deleted");
    Ok(StatusCode::NO_CONTENT)
}

type DeliveryRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    i64,
    Option<i64>,
);

fn delivery(r: DeliveryRow) -> ApiResult<Delivery> {
    let status = DeliveryStatus::parse(&r.4)
        .ok_or_else(|| ApiError::internal(format!("bad delivery status stored: {}", r.4)))?;
    Ok(Delivery {
        data: serde_json::from_str(&r.3).unwrap_or(serde_json::Value::String(r.3)),
        id: r.0,
        webhook_id: r.1,
        event: r.2,
        status,
        attempts: r.5,
        last_status: r.6,
        last_error: r.7,
        created_ms: r.8,
        next_attempt_ms: (status == DeliveryStatus::Pending).then_some(r.9),
        delivered_ms: r.10,
    })
}

/// A webhook's delivery log, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id"), PageQuery, DeliveryFilter),
    responses((status = 200, body = Page<Delivery>), (status = 404, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_deliveries(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<DeliveryFilter>,
) -> ApiResult<axum::Json<Page<Delivery>>> {
    let page = page.checked()?;
    load(&s, &id).await?;
    // '' matches every status.
    let status = filter.status.map_or("", DeliveryStatus::as_str);
    let total: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1 AND ($2 = '' OR status = $2)",
    )
    .bind(&id)
    .bind(status)
    .fetch_one(&s.db.pool)
    .await?;
    let rows: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT id, webhook_id, event, payload, status, attempts, last_status, last_error, \
         created_ms, next_attempt_ms, delivered_ms FROM webhook_deliveries \
         WHERE webhook_id = $1 AND ($2 = '' OR status = $2) \
         ORDER BY created_ms DESC, id DESC LIMIT $3 OFFSET $4",
    )
    .bind(&id)
    .bind(status)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&s.db.pool)
    .await?;
    let items = rows.into_iter().map(delivery).collect::<ApiResult<_>>()?;
    Ok(axum::Json(Page::new(items, total.0, page)))
}

/// Queue a `ping` delivery to this webhook (whatever it subscribes to).
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "Webhook id")),
    responses((status = 202, body = QueuedPing), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn test_webhook(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<QueuedPing>)> {
    load(&s, &id).await?;
    let delivery_id = webhooks::enqueue_ping(&s, &id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(QueuedPing { delivery_id })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_no_credentials() {
        assert_eq!(
            check_url(" https://hooks.example.com/v ").unwrap(),
            "https://hooks.example.com/v"
        );
        assert!(check_url("http://127.0.0.1:8080/x").is_ok());
        for bad in [
            "",
            "ftp://x.example/",
            "file:///etc/passwd",
            "hooks.example.com",
            "https://u:p@x.example/",
        ] {
            let e = check_url(bad).unwrap_err();
            assert_eq!(e.body.field.as_deref(), Some("url"), "{bad}");
        }
        assert!(check_url(&format!("https://x.example/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn events_are_deduplicated_and_star_stands_alone() {
        use WebhookEvent::*;
        assert_eq!(
            check_events(&[CallEnded, CallStarted, CallEnded]).unwrap(),
            ["call.started", "call.ended"]
        );
        assert_eq!(check_events(&[All]).unwrap(), ["*"]);
        assert!(check_events(&[]).is_err());
        assert!(check_events(&[All, CallEnded]).is_err());
        // Every subscribable event is one the sender knows.
        for e in [CallStarted, CallEnded, TranscriptFinal, CampaignCompleted] {
            assert!(webhooks::EVENTS.contains(&e.as_str()));
        }
    }

    #[test]
    fn secrets_are_long_enough_and_generated_ones_differ() {
        assert!(check_secret("0123456789abcdef").is_ok());
        assert!(check_secret("0123456789abcde").is_err());
        assert!(check_secret("0123456789abcdef\n").is_err());
        let (a, b) = (generate_secret().unwrap(), generate_secret().unwrap());
        assert_ne!(a, b);
        assert!(check_secret(&a).is_ok());
    }
}
