//! OpenAI-compatible chat completions (vLLM, Ollama, llama.cpp server, OpenAI).
//!
//! [`OpenAiChat`] is a [`ChatModel`] that POSTs `{base_url}/chat/completions`
//! with `stream: true` and turns the server-sent events into [`LlmEvent`]s as
//! they arrive. The protocol work is sans-IO ([`sse`] splits the byte stream
//! into events, [`stream`] turns events into text and tool calls); the thin
//! driver here owns the HTTP request and the deadlines, on one small tokio
//! runtime shared by every model and tool runner in the process
//! ([`runtime`]), never on the caller's thread.
//!
//! Deadlines, each reported as [`LlmError::Timeout`] with its `stage`:
//! `connect` (TCP/TLS), `first token` (from sending the request to the first
//! text or tool-call fragment), `stream` (silence between two chunks after
//! that) and `total` (the whole request).

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use tokio::runtime::Runtime;
use tokio::time::{timeout_at, Instant};

use super::llm::{ChatModel, ChatRequest, LlmError, LlmEvent};

pub mod sse;
pub mod stream;
pub mod wire;

use stream::{CompletionDecoder, Finished};

/// How much of an error body [`LlmError::Status`] quotes, in bytes.
const ERROR_BODY_LIMIT: usize = 512;

/// The longest non-streamed completion read, in bytes.
const WHOLE_REPLY_LIMIT: usize = 4 << 20;

/// The process-wide HTTP runtime: one worker thread (plus up to four
/// blocking threads for DNS), created on first use. Model requests and tool webhooks
/// are tasks on it.
pub fn runtime() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                // DNS lookups (getaddrinfo) run here; a handful is plenty.
                .max_blocking_threads(4)
                .thread_name("vocelio-http")
                .enable_io()
                .enable_time()
                .build()
                .map_err(|e| format!("cannot start the HTTP runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// An error and its causes, for messages (`reqwest` hides the useful part
/// in the source chain).
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let c = cause.to_string();
        if !s.contains(&c) {
            s.push_str(": ");
            s.push_str(&c);
        }
        src = cause.source();
    }
    s
}

fn default_connect_ms() -> u64 {
    2_000
}
fn default_first_token_ms() -> u64 {
    5_000
}
fn default_idle_ms() -> u64 {
    3_000
}
fn default_total_ms() -> u64 {
    30_000
}
fn default_max_tokens() -> u32 {
    256
}
fn default_true() -> bool {
    true
}

/// Where and how to reach an OpenAI-compatible server (per agent config).
///
/// ```toml
/// base_url = "http://127.0.0.1:8080/v1"
/// model = "qwen2.5-3b-instruct"
/// api_key_env = "VOCELIO_LLM_KEY"
/// first_token_timeout_ms = 1500
/// ```
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The API root, with the version: `http://127.0.0.1:8080/v1`,
    /// `http://localhost:11434/v1`, `https://api.openai.com/v1`.
    pub base_url: String,
    /// The model name sent with each request.
    pub model: String,
    /// Bearer token, if the server wants one. Prefer `api_key_env`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Name of an environment variable holding the bearer token, read once
    /// when the client is built (overrides `api_key`).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// TCP and TLS connection deadline, ms.
    #[serde(default = "default_connect_ms")]
    pub connect_timeout_ms: u64,
    /// From sending the request to the first text or tool-call fragment, ms.
    #[serde(default = "default_first_token_ms")]
    pub first_token_timeout_ms: u64,
    /// Longest silence between two chunks once the reply has started, ms.
    #[serde(default = "default_idle_ms")]
    pub idle_timeout_ms: u64,
    /// The whole request, ms.
    #[serde(default = "default_total_ms")]
    pub total_timeout_ms: u64,
    /// Upper bound on any request's `max_tokens` (a request asking 0 gets this).
    #[serde(default = "default_max_tokens")]
    pub max_tokens: u32,
    /// Ask for token usage in the last chunk (`stream_options.include_usage`).
    /// Turn off for servers that reject unknown request fields.
    #[serde(default = "default_true")]
    pub include_usage: bool,
}

impl fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("api_key_env", &self.api_key_env)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("first_token_timeout_ms", &self.first_token_timeout_ms)
            .field("idle_timeout_ms", &self.idle_timeout_ms)
            .field("total_timeout_ms", &self.total_timeout_ms)
            .field("max_tokens", &self.max_tokens)
            .field("include_usage", &self.include_usage)
            .finish()
    }
}

impl OpenAiConfig {
    /// A config for `model` at `base_url` with default deadlines and no key.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            api_key_env: None,
            connect_timeout_ms: default_connect_ms(),
            first_token_timeout_ms: default_first_token_ms(),
            idle_timeout_ms: default_idle_ms(),
            total_timeout_ms: default_total_ms(),
            max_tokens: default_max_tokens(),
            include_usage: true,
        }
    }
}

/// Why an [`OpenAiChat`] could not be built from its config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenAiConfigError {
    /// `base_url` is not an http(s) URL.
    #[error("base_url {url:?} is not an http(s) URL: {reason}")]
    BaseUrl {
        /// The value given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// `model` is empty.
    #[error("model must not be empty")]
    EmptyModel,
    /// A timeout or `max_tokens` is zero.
    #[error("{field} must be greater than zero")]
    Zero {
        /// The key.
        field: &'static str,
    },
    /// `api_key_env` names a variable that is not set (or not Unicode).
    #[error("environment variable {var} (api_key_env) is not set")]
    MissingKeyEnv {
        /// The variable.
        var: String,
    },
    /// The key cannot go in an HTTP header.
    #[error("api key contains characters not allowed in an HTTP header")]
    BadKey,
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {reason}")]
    Client {
        /// What failed.
        reason: String,
    },
}

/// The deadlines of one request.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    connect: Duration,
    first_token: Duration,
    idle: Duration,
    total: Duration,
}

/// A chat model behind an OpenAI-compatible HTTP API. Cheap to share.
#[derive(Clone)]
pub struct OpenAiChat {
    name: String,
    model: String,
    url: String,
    auth: Option<HeaderValue>,
    deadlines: Deadlines,
    max_tokens: u32,
    include_usage: bool,
    client: reqwest::Client,
}

impl fmt::Debug for OpenAiChat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiChat")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("auth", &self.auth.as_ref().map(|_| "<redacted>"))
            .field("deadlines", &self.deadlines)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

impl OpenAiChat {
    /// Check `config` and build the client (no request is made).
    pub fn new(config: OpenAiConfig) -> Result<Self, OpenAiConfigError> {
        let base = config.base_url.trim_end_matches('/');
        let parsed = reqwest::Url::parse(base).map_err(|e| OpenAiConfigError::BaseUrl {
            url: config.base_url.clone(),
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OpenAiConfigError::BaseUrl {
                url: config.base_url.clone(),
                reason: format!("scheme {} is not http or https", parsed.scheme()),
            });
        }
        if config.model.trim().is_empty() {
            return Err(OpenAiConfigError::EmptyModel);
        }
        for (field, v) in [
            ("connect_timeout_ms", config.connect_timeout_ms),
            ("first_token_timeout_ms", config.first_token_timeout_ms),
            ("idle_timeout_ms", config.idle_timeout_ms),
            ("total_timeout_ms", config.total_timeout_ms),
            ("max_tokens", u64::from(config.max_tokens)),
        ] {
            if v == 0 {
                return Err(OpenAiConfigError::Zero { field });
            }
        }
        let key = match &config.api_key_env {
            Some(var) => Some(
                std::env::var(var)
                    .map_err(|_| OpenAiConfigError::MissingKeyEnv { var: var.clone() })?,
            ),
            None => config.api_key.clone(),
        };
        let auth = match key.filter(|k| !k.is_empty()) {
            Some(k) => {
                let mut v = HeaderValue::from_str(&format!("Bearer {k}"))
                    .map_err(|_| OpenAiConfigError::BadKey)?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let deadlines = Deadlines {
            connect: Duration::from_millis(config.connect_timeout_ms),
            first_token: Duration::from_millis(config.first_token_timeout_ms),
            idle: Duration::from_millis(config.idle_timeout_ms),
            total: Duration::from_millis(config.total_timeout_ms),
        };
        let client = reqwest::Client::builder()
            .connect_timeout(deadlines.connect)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| OpenAiConfigError::Client {
                reason: error_chain(&e),
            })?;
        Ok(OpenAiChat {
            name: format!("openai:{}", config.model),
            model: config.model,
            url: format!("{base}/chat/completions"),
            auth,
            deadlines,
            max_tokens: config.max_tokens,
            include_usage: config.include_usage,
            client,
        })
    }

    /// The URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl ChatModel for OpenAiChat {
    fn name(&self) -> &str {
        &self.name
    }

    fn chat(&self, request: ChatRequest) -> Receiver<LlmEvent> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let max_tokens = match request.max_tokens {
            0 => self.max_tokens,
            n => n.min(self.max_tokens),
        };
        let body = wire::request_body(&self.model, &request, max_tokens, self.include_usage);
        let body = match serde_json::to_vec(&body) {
            Ok(b) => b,
            Err(e) => {
                let _ = tx.send(LlmEvent::Failed(LlmError::Protocol {
                    reason: format!("cannot encode the request: {e}"),
                }));
                return rx;
            }
        };
        let rt = match runtime() {
            Ok(rt) => rt,
            Err(reason) => {
                let _ = tx.send(LlmEvent::Failed(LlmError::Connection { reason }));
                return rx;
            }
        };
        let mut req = self
            .client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "text/event-stream")
            .body(body);
        if let Some(auth) = &self.auth {
            req = req.header(AUTHORIZATION, auth.clone());
        }
        let deadlines = self.deadlines;
        rt.spawn(async move {
            match drive(req, deadlines, &tx).await {
                Ok(fin) => {
                    let _ = tx.send(LlmEvent::Done {
                        tokens: fin.tokens,
                        prompt_tokens: fin.prompt_tokens,
                    });
                }
                Err(Stop::Failed(e)) => {
                    tracing::debug!(error = %e, "model request failed");
                    let _ = tx.send(LlmEvent::Failed(e));
                }
                Err(Stop::Cancelled) => {
                    tracing::trace!("model request cancelled: receiver dropped");
                }
            }
        });
        rx
    }
}

/// Why the driver stopped early.
#[derive(Debug)]
enum Stop {
    /// The receiver was dropped: nobody wants the reply.
    Cancelled,
    /// The request failed.
    Failed(LlmError),
}

impl From<LlmError> for Stop {
    fn from(e: LlmError) -> Self {
        Stop::Failed(e)
    }
}

/// The earlier of a stage's deadline and the total one, with the timeout
/// to report if it passes.
fn next_deadline(
    stage_at: Instant,
    stage: &'static str,
    stage_after: Duration,
    total_at: Instant,
    total: Duration,
) -> (Instant, LlmError) {
    if stage_at <= total_at {
        (
            stage_at,
            LlmError::Timeout {
                after: stage_after,
                stage,
            },
        )
    } else {
        (
            total_at,
            LlmError::Timeout {
                after: total,
                stage: "total",
            },
        )
    }
}

fn send_error(e: &reqwest::Error, d: &Deadlines) -> LlmError {
    if e.is_connect() && e.is_timeout() {
        LlmError::Timeout {
            after: d.connect,
            stage: "connect",
        }
    } else {
        LlmError::Connection {
            reason: error_chain(e),
        }
    }
}

/// Send the request and stream the reply into `tx`.
async fn drive(
    req: reqwest::RequestBuilder,
    d: Deadlines,
    tx: &Sender<LlmEvent>,
) -> Result<Finished, Stop> {
    let start = Instant::now();
    let total_at = start + d.total;
    let first_at = start + d.first_token;

    let (at, late) = next_deadline(first_at, "first token", d.first_token, total_at, d.total);
    let mut resp = match timeout_at(at, req.send()).await {
        Err(_) => return Err(late.into()),
        Ok(Err(e)) => return Err(send_error(&e, &d).into()),
        Ok(Ok(r)) => r,
    };

    let status = resp.status();
    if !status.is_success() {
        // Quote the start of the body, but don't wait long for it.
        let (at, _) = next_deadline(Instant::now() + d.idle, "stream", d.idle, total_at, d.total);
        let mut body = Vec::new();
        while body.len() < ERROR_BODY_LIMIT {
            match timeout_at(at, resp.chunk()).await {
                Ok(Ok(Some(b))) => body.extend_from_slice(&b),
                _ => break,
            }
        }
        body.truncate(ERROR_BODY_LIMIT);
        return Err(LlmError::Status {
            status: status.as_u16(),
            body: String::from_utf8_lossy(&body).trim().to_string(),
        }
        .into());
    }

    let json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.trim_start().starts_with("application/json"));
    if json {
        return whole_reply(resp, total_at, d.total, tx).await;
    }

    let mut decoder = CompletionDecoder::new();
    let mut out = Vec::new();
    loop {
        let (at, late) = if decoder.started() {
            next_deadline(Instant::now() + d.idle, "stream", d.idle, total_at, d.total)
        } else {
            next_deadline(first_at, "first token", d.first_token, total_at, d.total)
        };
        let bytes = match timeout_at(at, resp.chunk()).await {
            Err(_) => return Err(late.into()),
            Ok(Err(e)) => {
                return Err(LlmError::Connection {
                    reason: error_chain(&e),
                }
                .into())
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(b))) => b,
        };
        let pushed = decoder.push(&bytes, &mut out);
        for ev in out.drain(..) {
            if tx.send(ev).is_err() {
                return Err(Stop::Cancelled);
            }
        }
        pushed?;
        if decoder.is_done() {
            break;
        }
    }
    // Dropping `resp` here closes the body (the connection goes back to the
    // pool only when fully read).
    let fin = decoder.finish(&mut out);
    for ev in out.drain(..) {
        if tx.send(ev).is_err() {
            return Err(Stop::Cancelled);
        }
    }
    Ok(fin?)
}

/// A server that ignored `stream: true` answered with one JSON completion:
/// read it whole (bounded, before the total deadline) and pass it on.
async fn whole_reply(
    mut resp: reqwest::Response,
    total_at: Instant,
    total: Duration,
    tx: &Sender<LlmEvent>,
) -> Result<Finished, Stop> {
    let mut body = Vec::new();
    loop {
        match timeout_at(total_at, resp.chunk()).await {
            Err(_) => {
                return Err(LlmError::Timeout {
                    after: total,
                    stage: "total",
                }
                .into())
            }
            Ok(Err(e)) => {
                return Err(LlmError::Connection {
                    reason: error_chain(&e),
                }
                .into())
            }
            Ok(Ok(None)) => break,
            Ok(Ok(Some(b))) => {
                if body.len() + b.len() > WHOLE_REPLY_LIMIT {
                    return Err(LlmError::Protocol {
                        reason: format!("completion longer than {WHOLE_REPLY_LIMIT} bytes"),
                    }
                    .into());
                }
                body.extend_from_slice(&b);
            }
        }
    }
    let (events, fin) = stream::decode_complete(&body)?;
    for ev in events {
        if tx.send(ev).is_err() {
            return Err(Stop::Cancelled);
        }
    }
    Ok(fin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_parses_with_defaults_and_refuses_unknown_keys() {
        let c: OpenAiConfig = serde_json::from_str(
            r#"{"base_url":"http://h:1/v1/","model":"m","api_key":"sk-secret"}"#,
        )
        .unwrap();
        assert_eq!(c.first_token_timeout_ms, 5_000);
        assert!(!format!("{c:?}").contains("sk-secret"));
        let chat = OpenAiChat::new(c).unwrap();
        assert_eq!(chat.url(), "http://h:1/v1/chat/completions");
        assert_eq!(chat.name(), "openai:m");
        assert!(!format!("{chat:?}").contains("sk-secret"));
        let e = serde_json::from_str::<OpenAiConfig>(r#"{"base_url":"x","model":"m","modle":"n"}"#)
            .unwrap_err();
        assert!(e.to_string().contains("modle"), "{e}");
    }

    #[test]
    fn config_validation() {
        let bad = |f: fn(&mut OpenAiConfig)| {
            let mut c = OpenAiConfig::new("http://127.0.0.1:1/v1", "m");
            f(&mut c);
            OpenAiChat::new(c).unwrap_err()
        };
        assert!(matches!(
            bad(|c| c.base_url = "ftp://x".into()),
            OpenAiConfigError::BaseUrl { .. }
        ));
        assert!(matches!(
            bad(|c| c.base_url = "not a url".into()),
            OpenAiConfigError::BaseUrl { .. }
        ));
        assert_eq!(bad(|c| c.model = " ".into()), OpenAiConfigError::EmptyModel);
        assert_eq!(
            bad(|c| c.idle_timeout_ms = 0),
            OpenAiConfigError::Zero {
                field: "idle_timeout_ms"
            }
        );
        assert_eq!(
            bad(|c| c.api_key_env = Some("VOCELIO_SURELY_UNSET_VAR_1234".into())),
            OpenAiConfigError::MissingKeyEnv {
                var: "VOCELIO_SURELY_UNSET_VAR_1234".into()
            }
        );
        assert_eq!(
            bad(|c| c.api_key = Some("a\nb".into())),
            OpenAiConfigError::BadKey
        );
    }
}
