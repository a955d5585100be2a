//! The axum side: the voice webhook, the stream status callback, the media
//! WebSocket and its per-stream tokio driver.
//!
//! ```text
//! POST /twilio/voice   form  -> TwiML <Connect><Stream url="wss://{public_host}/twilio/media">
//! POST /twilio/status  form  -> 204 (stream-started / stream-stopped / stream-error recorded)
//! GET  /twilio/media   WebSocket upgrade -> one TwilioStream + driver task per stream
//! ```
//!
//! Every request must carry a valid `X-Twilio-Signature` (403 otherwise)
//! unless [`TwilioConfig::validate_signatures`] is off. When a stream's
//! `start` arrives its [`MediaPort`] is sent on the application's channel
//! (see [`TwilioState::new`]).

use super::message::{CallSid, StreamSid};
use super::signature::{self, SignatureError, SIGNATURE_HEADER};
use super::stream::{Outgoing, StreamConfig, StreamEvent, StreamStats, TwilioStream};
use super::twiml;
use axum::body::Bytes;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::mpsc::UnboundedSender;
use tracing::Instrument as _;
use vocelio_codecs::port::{MediaPort, PortConfig};

/// Twilio settings (the `[twilio]` table of the binary's config).
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioConfig {
    /// Host (and port, if not 443) Twilio reaches us at, without scheme:
    /// `voice.example.com`. Signatures are checked against
    /// `https://{public_host}{path}` and `wss://{public_host}/twilio/media`.
    pub public_host: String,
    /// The Twilio account's auth token (signs every request).
    pub auth_token: String,
    /// Check `X-Twilio-Signature` (default true). Turn off only in
    /// development: anyone could then open media streams.
    #[serde(default = "yes")]
    pub validate_signatures: bool,
    /// Called number -> agent. Numbers are normalised to `+` and digits, so
    /// `"+1 (800) 555-1212"` and `"18005551212"` are the same key.
    #[serde(default)]
    pub numbers: HashMap<String, String>,
    /// Agent for numbers not in `numbers`; calls are rejected if unset.
    #[serde(default)]
    pub default_agent: Option<String>,
}

fn yes() -> bool {
    true
}

impl fmt::Debug for TwilioConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioConfig")
            .field("public_host", &self.public_host)
            .field("auth_token", &"<redacted>")
            .field("validate_signatures", &self.validate_signatures)
            .field("numbers", &self.numbers.len())
            .field("default_agent", &self.default_agent)
            .finish()
    }
}

/// A [`TwilioConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `twilio.public_host` is empty, has a scheme or a path.
    #[error("twilio.public_host must be a bare host[:port] such as \"voice.example.com\", got {value:?}")]
    PublicHost {
        /// The configured value.
        value: String,
    },
    /// `twilio.auth_token` is empty while signatures are checked.
    #[error("twilio.auth_token is empty (set it, or set twilio.validate_signatures = false for development)")]
    AuthToken,
    /// A key of `twilio.numbers` has no digits.
    #[error("twilio.numbers: key {key:?} is not a phone number")]
    Number {
        /// The key.
        key: String,
    },
}

impl TwilioConfig {
    /// Check the settings once at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let h = &self.public_host;
        if h.is_empty() || h.contains("://") || h.contains('/') || h.contains(char::is_whitespace) {
            return Err(ConfigError::PublicHost { value: h.clone() });
        }
        if self.validate_signatures && self.auth_token.is_empty() {
            return Err(ConfigError::AuthToken);
        }
        for key in self.numbers.keys() {
            if normalize_number(key).is_none() {
                return Err(ConfigError::Number { key: key.clone() });
            }
        }
        Ok(())
    }
}

/// `+` followed by the digits of `number`; `None` if it has none
/// (`"+1 (800) 555-1212"` -> `"+18005551212"`).
pub fn normalize_number(number: &str) -> Option<String> {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    (!digits.is_empty()).then(|| format!("+{digits}"))
}

/// What a stream status callback reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusKind {
    /// `stream-started`.
    Started,
    /// `stream-stopped`.
    Stopped,
    /// `stream-error`.
    Error,
    /// Anything else.
    Other,
}

/// One stream status callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRecord {
    /// The stream.
    pub stream_sid: StreamSid,
    /// The call.
    pub call_sid: CallSid,
    /// What happened.
    pub kind: StatusKind,
    /// Twilio's error text for `stream-error` (at most 200 characters).
    pub error: Option<String>,
}

/// Counts of stream status callbacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatusCounts {
    /// `stream-started`.
    pub started: u64,
    /// `stream-stopped`.
    pub stopped: u64,
    /// `stream-error`.
    pub errors: u64,
    /// Other values.
    pub other: u64,
}

const RECENT_STATUS: usize = 64;

#[derive(Debug, Default)]
struct Status {
    counts: StatusCounts,
    recent: VecDeque<StatusRecord>,
}

struct Inner {
    config: TwilioConfig,
    numbers: Mutex<HashMap<String, String>>,
    ports: UnboundedSender<MediaPort>,
    status: Mutex<Status>,
    totals: Mutex<StreamStats>,
    active: AtomicU64,
    streams: AtomicU64,
}

/// Shared state of the Twilio routes (cheap to clone).
#[derive(Clone)]
pub struct TwilioState {
    inner: Arc<Inner>,
}

impl fmt::Debug for TwilioState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TwilioState")
            .field("config", &self.inner.config)
            .field("active_streams", &self.active_streams())
            .finish()
    }
}

impl TwilioState {
    /// Validate `config` and build the state. Each stream's [`MediaPort`]
    /// is sent on `ports` when its `start` arrives; the application runs a
    /// pipeline on it. If the receiver is gone the port is dropped and the
    /// stream ends.
    pub fn new(
        config: TwilioConfig,
        ports: UnboundedSender<MediaPort>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        if !config.validate_signatures {
            tracing::warn!(
                "TWILIO SIGNATURE VALIDATION IS OFF (twilio.validate_signatures = false): \
                 anyone can call the webhooks and open media streams; never run this in production"
            );
        }
        let numbers = config
            .numbers
            .iter()
            .filter_map(|(k, v)| normalize_number(k).map(|n| (n, v.clone())))
            .collect();
        Ok(TwilioState {
            inner: Arc::new(Inner {
                config,
                numbers: Mutex::new(numbers),
                ports,
                status: Mutex::new(Status::default()),
                totals: Mutex::new(StreamStats::default()),
                active: AtomicU64::new(0),
                streams: AtomicU64::new(0),
            }),
        })
    }

    /// The settings.
    pub fn config(&self) -> &TwilioConfig {
        &self.inner.config
    }

    /// The agent serving calls to `to` (any formatting), if any.
    pub fn agent_for(&self, to: &str) -> Option<String> {
        normalize_number(to)
            .and_then(|n| lock(&self.inner.numbers).get(&n).cloned())
            .or_else(|| self.inner.config.default_agent.clone())
    }

    /// Route by these numbers (any formatting; keys without digits are
    /// skipped) from now on, in place of `twilio.numbers`. Streams already
    /// open keep their agent.
    pub fn set_numbers(&self, numbers: &HashMap<String, String>) {
        let map = numbers
            .iter()
            .filter_map(|(k, v)| normalize_number(k).map(|n| (n, v.clone())))
            .collect();
        *lock(&self.inner.numbers) = map;
    }

    /// Media WebSockets open now.
    pub fn active_streams(&self) -> u64 {
        self.inner.active.load(Ordering::Relaxed)
    }

    /// Media WebSockets accepted since startup.
    pub fn total_streams(&self) -> u64 {
        self.inner.streams.load(Ordering::Relaxed)
    }

    /// Counters of every finished stream, summed.
    pub fn stream_totals(&self) -> StreamStats {
        *lock(&self.inner.totals)
    }

    /// Status callback counts.
    pub fn status_counts(&self) -> StatusCounts {
        lock(&self.inner.status).counts
    }

    /// The last status callbacks, oldest first.
    pub fn recent_status(&self) -> Vec<StatusRecord> {
        lock(&self.inner.status).recent.iter().cloned().collect()
    }

    fn check(
        &self,
        headers: &HeaderMap,
        url: &str,
        params: &[(String, String)],
    ) -> Result<(), ApiError> {
        if !self.inner.config.validate_signatures {
            return Ok(());
        }
        let header = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok());
        signature::validate(&self.inner.config.auth_token, url, params, header).map_err(|e| {
            tracing::warn!(url, error = %e, "twilio: rejected request signature");
            ApiError::Signature(e)
        })
    }

    fn url(&self, scheme: &str, uri: &axum::http::Uri) -> String {
        let pq = uri.path_and_query().map_or(uri.path(), |pq| pq.as_str());
        format!("{scheme}://{}{pq}", self.inner.config.public_host)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// An HTTP error from the Twilio routes: a JSON body for the client, the
/// detail in the logs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Missing or wrong `X-Twilio-Signature` (403).
    #[error("request signature rejected: {0}")]
    Signature(#[from] SignatureError),
    /// The body is not `application/x-www-form-urlencoded` (400).
    #[error("body is not a form-encoded Twilio request")]
    BadForm,
    /// `/twilio/media` without a valid WebSocket upgrade (400/426).
    #[error("not a WebSocket upgrade: {0}")]
    NotWebSocket(#[from] WebSocketUpgradeRejection),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Signature(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::BadForm => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NotWebSocket(r) => (r.status(), "websocket_required"),
        };
        let message = match &self {
            // Do not tell a forger which part was wrong.
            ApiError::Signature(_) => "invalid or missing X-Twilio-Signature".to_owned(),
            other => other.to_string(),
        };
        (
            status,
            Json(serde_json::json!({ "error": code, "message": message })),
        )
            .into_response()
    }
}

/// The Twilio routes, ready to merge into the application's router:
/// `POST /twilio/voice`, `POST /twilio/status`, `GET /twilio/media`.
pub fn router(state: TwilioState) -> Router {
    Router::new()
        .route(twiml::VOICE_PATH, post(voice))
        .route(twiml::STATUS_PATH, post(status))
        .route(twiml::MEDIA_PATH, get(media))
        .with_state(state)
}

fn form(body: &[u8]) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_bytes(body).map_err(|_| ApiError::BadForm)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

async fn voice(
    State(state): State<TwilioState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let params = form(&body)?;
    state.check(&headers, &state.url("https", &uri), &params)?;
    let call_sid = param(&params, "CallSid").unwrap_or("");
    let xml = match param(&params, "To").and_then(|to| state.agent_for(to)) {
        Some(agent) => {
            tracing::info!(call_sid, agent = %agent, "twilio: call answered with a media stream");
            twiml::connect_stream(&state.inner.config.public_host, &[("agent", &agent)])
        }
        None => {
            // The number itself is personal data: not at info.
            tracing::info!(
                call_sid,
                "twilio: no agent serves the called number; rejecting"
            );
            twiml::reject()
        }
    };
    Ok(([(header::CONTENT_TYPE, twiml::CONTENT_TYPE)], xml).into_response())
}

async fn status(
    State(state): State<TwilioState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let params = form(&body)?;
    state.check(&headers, &state.url("https", &uri), &params)?;
    let kind = match param(&params, "StreamEvent") {
        Some("stream-started") => StatusKind::Started,
        Some("stream-stopped") => StatusKind::Stopped,
        Some("stream-error") => StatusKind::Error,
        _ => StatusKind::Other,
    };
    let record = StatusRecord {
        stream_sid: StreamSid::new(param(&params, "StreamSid").unwrap_or("")),
        call_sid: CallSid::new(param(&params, "CallSid").unwrap_or("")),
        kind,
        error: param(&params, "StreamError").map(|e| e.chars().take(200).collect()),
    };
    match kind {
        StatusKind::Error => tracing::warn!(
            call_sid = record.call_sid.as_str(),
            stream_sid = record.stream_sid.as_str(),
            error = record.error.as_deref().unwrap_or(""),
            "twilio: stream error reported"
        ),
        _ => tracing::debug!(
            call_sid = record.call_sid.as_str(),
            stream_sid = record.stream_sid.as_str(),
            ?kind,
            "twilio: stream status"
        ),
    }
    let mut s = lock(&state.inner.status);
    match kind {
        StatusKind::Started => s.counts.started += 1,
        StatusKind::Stopped => s.counts.stopped += 1,
        StatusKind::Error => s.counts.errors += 1,
        StatusKind::Other => s.counts.other += 1,
    }
    if s.recent.len() == RECENT_STATUS {
        s.recent.pop_front();
    }
    s.recent.push_back(record);
    Ok(StatusCode::NO_CONTENT)
}

async fn media(
    State(state): State<TwilioState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Signature first: an unsigned request learns nothing else.
    state.check(&headers, &state.url("wss", &uri), &[])?;
    let ws = ws?;
    Ok(ws.on_upgrade(move |socket| drive(socket, state)))
}

/// The per-stream driver: socket reads, the stream's 20 ms playout
/// deadline (which also polls the port's control lane), and writes.
async fn drive(socket: WebSocket, state: TwilioState) {
    let span = tracing::info_span!(
        "twilio_stream",
        call_id = tracing::field::Empty,
        stream_sid = tracing::field::Empty
    );
    state.inner.active.fetch_add(1, Ordering::Relaxed);
    state.inner.streams.fetch_add(1, Ordering::Relaxed);
    let config = StreamConfig {
        default_agent: state.inner.config.default_agent.clone().unwrap_or_default(),
        port: PortConfig::default(),
        ..StreamConfig::default()
    };
    let mut stream = TwilioStream::new(config);
    run(socket, &mut stream, &state, span.clone())
        .instrument(span)
        .await;
    lock(&state.inner.totals).add(stream.stats());
    state.inner.active.fetch_sub(1, Ordering::Relaxed);
}

async fn run(
    mut socket: WebSocket,
    stream: &mut TwilioStream,
    state: &TwilioState,
    span: tracing::Span,
) {
    loop {
        while let Some(out) = stream.poll_output() {
            let msg = match out {
                Outgoing::Text(text) => Message::Text(text.into()),
                Outgoing::Close { code, reason } => Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
            };
            if socket.send(msg).await.is_err() {
                stream.handle_socket_closed(Instant::now());
            }
        }
        while let Some(ev) = stream.poll_event() {
            // The only event today; a new one makes this a compile error here.
            let StreamEvent::Started {
                port,
                stream_sid,
                call_sid,
            } = ev;
            span.record("call_id", call_sid.as_str());
            span.record("stream_sid", stream_sid.as_str());
            tracing::info!(agent = %port.info.agent, "twilio: media stream started");
            if state.inner.ports.send(port).is_err() {
                tracing::warn!("twilio: nothing takes media ports; the stream will end");
            }
        }
        if stream.is_closed() {
            tracing::info!(stats = ?stream.stats(), "twilio: media stream ended");
            return;
        }
        let deadline = stream.poll_timeout();
        let tick = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = socket.recv() => {
                let now = Instant::now();
                // Errors are counted and logged (rate limited) by the stream.
                let _ = match msg {
                    Some(Ok(Message::Text(text))) => stream.handle_text(now, text.as_str()),
                    Some(Ok(Message::Binary(bytes))) => stream.handle_binary(now, &bytes),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                        stream.handle_socket_closed(now);
                        Ok(())
                    }
                };
            }
            () = tick => stream.handle_timeout(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> TwilioConfig {
        TwilioConfig {
            public_host: "voice.example.com".into(),
            auth_token: "tok".into(),
            validate_signatures: true,
            numbers: [("+1 (800) 555-1212".to_string(), "sales".to_string())].into(),
            default_agent: None,
        }
    }

    #[test]
    fn numbers_are_normalised() {
        assert_eq!(
            normalize_number("+1 (800) 555-1212").as_deref(),
            Some("+18005551212")
        );
        assert_eq!(
            normalize_number("18005551212").as_deref(),
            Some("+18005551212")
        );
        assert_eq!(normalize_number("client:alice"), None);
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let state = TwilioState::new(config(), tx).unwrap();
        assert_eq!(state.agent_for("+18005551212").as_deref(), Some("sales"));
        assert_eq!(state.agent_for("+18005550000"), None);
        state.set_numbers(&[("+1 800 555 0000".to_string(), "support".to_string())].into());
        assert_eq!(state.agent_for("+18005550000").as_deref(), Some("support"));
        assert_eq!(state.agent_for("+18005551212"), None);
    }

    #[test]
    fn config_is_checked() {
        let mut c = config();
        c.public_host = "https://voice.example.com".into();
        assert!(matches!(c.validate(), Err(ConfigError::PublicHost { .. })));
        let mut c = config();
        c.auth_token.clear();
        assert_eq!(c.validate(), Err(ConfigError::AuthToken));
        c.validate_signatures = false;
        assert_eq!(c.validate(), Ok(()));
        let mut c = config();
        c.numbers.insert("sales-line".into(), "x".into());
        assert!(matches!(c.validate(), Err(ConfigError::Number { .. })));
        let parsed: Result<TwilioConfig, _> =
            serde_json::from_str(r#"{"public_host":"h","auth_token":"t","typo":1}"#);
        assert!(parsed.is_err());
        let parsed: TwilioConfig =
            serde_json::from_str(r#"{"public_host":"h","auth_token":"t"}"#).unwrap();
        assert!(parsed.validate_signatures);
        assert!(!format!("{parsed:?}").contains("\"t\""));
    }
}
