//! Live events on WebSockets: `/v1/events` (everything) and
//! `/v1/calls/{id}/live` (one call, starting with a snapshot).
//!
//! Each message is one [`LiveEvent`] as JSON text. A subscriber too slow to
//! keep up misses events rather than slowing calls down, and is told:
//! `{"type":"lagged","missed":N}`. Browsers cannot set headers on
//! WebSockets: they pass the key as `?access_token=KEY`.

use crate::error::{ApiError, ApiQuery, ApiResult, ErrorBody, ErrorResponse};
use crate::events::LiveEvent;
use crate::routes::calls;
use crate::state::AppState;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::broadcast::Receiver;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The live routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(events))
        .routes(routes!(call_live))
}

/// `/v1/events` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only this call's events.
    pub call_id: Option<String>,
    /// The API key, for clients that cannot send `Authorization` (browsers).
    pub access_token: Option<String>,
}

/// `/v1/calls/{id}/live` parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LiveQuery {
    /// The API key, for clients that cannot send `Authorization` (browsers).
    pub access_token: Option<String>,
}

fn upgrade_error(r: WebSocketUpgradeRejection) -> ApiError {
    ApiError {
        status: r.status(),
        body: ErrorBody {
            code: "bad_request".into(),
            message: format!("this endpoint is a WebSocket: {}", r.body_text()),
            field: None,
            details: None,
        },
    }
}

/// Every live event (calls, transcripts, turn metrics, campaigns), or one
/// call's with `?call_id=`.
#[utoipa::path(get, path = "/v1/events", tag = "live",
    params(EventsQuery),
    responses(
        (status = 101, description = "Switching to a WebSocket: one LiveEvent as JSON text per message; \
`{\"type\":\"lagged\",\"missed\":N}` when this subscriber fell behind", body = LiveEvent),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn events(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<EventsQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = ws.map_err(upgrade_error)?;
    // Subscribed before the upgrade is answered: nothing after it is missed.
    let rx = s.events.subscribe();
    Ok(ws.on_upgrade(move |socket| forward(socket, rx, q.call_id, false)))
}

/// One call's live events. The first message is
/// `{"type":"snapshot","call_id":…,"data":{…call detail…,"transcript":[…]}}`;
/// then the call's events as they happen. The socket closes after
/// `call.ended` (or after the snapshot, for a call that has ended).
#[utoipa::path(get, path = "/v1/calls/{id}/live", tag = "live",
    params(("id" = String, Path, description = "Call id"), LiveQuery),
    responses(
        (status = 101, description = "Switching to a WebSocket: a snapshot, then one LiveEvent as JSON \
text per message; `{\"type\":\"lagged\",\"missed\":N}` when this subscriber fell behind", body = LiveEvent),
        (status = 400, description = "Not a WebSocket upgrade", body = ErrorResponse),
        (status = 401, body = ErrorResponse),
        (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn call_live(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    calls::load_call(&s, &id).await?;
    let ws = ws.map_err(upgrade_error)?;
    // Subscribe before reading the snapshot: an event between the two may
    // be in both (transcript lines carry `seq`), none is lost.
    let rx = s.events.subscribe();
    Ok(ws.on_upgrade(move |mut socket| async move {
        let (snapshot, ended) = match snapshot(&s, &id).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(call = %id, error = %e.body.message, "live snapshot failed");
                close(&mut socket, close_code::ERROR, "snapshot failed").await;
                return;
            }
        };
        if !send(&mut socket, &snapshot).await {
            return;
        }
        if ended {
            close(&mut socket, close_code::NORMAL, "call ended").await;
            return;
        }
        forward(socket, rx, Some(id), true).await;
    }))
}

/// The snapshot event, and whether the call has ended.
async fn snapshot(s: &AppState, id: &str) -> ApiResult<(LiveEvent, bool)> {
    let detail = calls::load_detail(s, id).await?;
    let lines = calls::load_lines(s, id).await?;
    let ended = detail.call.status == "ended";
    let campaign_id = detail.call.campaign_id.clone();
    let mut data = serde_json::to_value(&detail).map_err(ApiError::internal)?;
    data["transcript"] = serde_json::to_value(&lines).map_err(ApiError::internal)?;
    Ok((
        LiveEvent {
            kind: "snapshot".into(),
            call_id: Some(id.to_string()),
            campaign_id,
            at_ms: s.now_ms(),
            data,
        },
        ended,
    ))
}

async fn send<T: serde::Serialize>(socket: &mut WebSocket, v: &T) -> bool {
    match serde_json::to_string(v) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "live event not serialisable");
            true
        }
    }
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Pass events on until the client leaves (or, with `close_on_end`, the
/// call ends).
async fn forward(
    mut socket: WebSocket,
    mut rx: Receiver<Arc<LiveEvent>>,
    call_id: Option<String>,
    close_on_end: bool,
) {
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if call_id.as_ref().is_some_and(|c| ev.call_id.as_ref() != Some(c)) {
                        continue;
                    }
                    if !send(&mut socket, &*ev).await {
                        return;
                    }
                    if close_on_end && ev.kind == "call.ended" {
                        close(&mut socket, close_code::NORMAL, "call ended").await;
                        return;
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    let lagged = serde_json::json!({"type": "lagged", "missed": missed});
                    if !send(&mut socket, &lagged).await {
                        return;
                    }
                }
                Err(RecvError::Closed) => {
                    close(&mut socket, close_code::AWAY, "shutting down").await;
                    return;
                }
            },
            msg = socket.recv() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                // Pings are answered by axum; anything else is ignored.
                Some(Ok(_)) => {}
            },
        }
    }
}
