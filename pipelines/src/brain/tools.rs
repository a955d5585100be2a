//! Tools and webhooks the brain calls (flow tool nodes, LLM tool calls).

use std::fmt::Debug;
use std::time::Duration;

use crossbeam_channel::Receiver;

/// One call of a tool: an HTTP POST of `arguments` to `url`.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    /// The tool's name (for logs).
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// The JSON body.
    pub arguments: serde_json::Value,
    /// Give up after this long.
    pub timeout: Duration,
}

/// Why a tool call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// No answer in time.
    #[error("tool {name} timed out after {after:?}")]
    Timeout {
        /// The tool.
        name: String,
        /// The timeout.
        after: Duration,
    },
    /// An error status.
    #[error("tool {name} returned HTTP {status}")]
    Status {
        /// The tool.
        name: String,
        /// HTTP status.
        status: u16,
    },
    /// Unreachable, or the answer was not JSON.
    #[error("tool {name} failed: {reason}")]
    Failed {
        /// The tool.
        name: String,
        /// What happened.
        reason: String,
    },
}

/// Runs tool calls. Never blocks: the result arrives on the channel.
pub trait ToolRunner: Send + Sync + Debug {
    /// Start `request`.
    fn call(&self, request: ToolRequest) -> Receiver<Result<serde_json::Value, ToolError>>;
}

/// The longest tool answer read, in bytes: a webhook answer goes into the
/// model's context, so anything bigger is refused.
pub const MAX_TOOL_RESPONSE: usize = 64 * 1024;

/// Calls tools as HTTP webhooks: POSTs the arguments as JSON, expects a JSON
/// answer (an empty body reads as `null`). Requests run on the shared HTTP
/// runtime ([`super::openai::runtime`]), never on the caller's thread.
///
/// Each request carries `X-Vocelio-Tool: <name>`, and the shared secret in a
/// header of your choice when one is set (the webhook checks it).
#[derive(Clone)]
pub struct HttpToolRunner {
    client: reqwest::Client,
    secret: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
}

impl Debug for HttpToolRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpToolRunner")
            .field(
                "secret_header",
                &self.secret.as_ref().map(|(h, _)| h.as_str()),
            )
            .finish()
    }
}

/// Why an [`HttpToolRunner`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpToolSetupError {
    /// The secret header name or value is not valid in HTTP.
    #[error("invalid shared-secret header {header:?}")]
    BadSecretHeader {
        /// The header name given.
        header: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {reason}")]
    Client {
        /// What failed.
        reason: String,
    },
}

impl HttpToolRunner {
    /// A runner connecting within `connect_timeout` (each call's own
    /// `timeout` bounds the whole request).
    pub fn new(connect_timeout: Duration) -> Result<Self, HttpToolSetupError> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| HttpToolSetupError::Client {
                reason: super::openai::error_chain(&e),
            })?;
        Ok(HttpToolRunner {
            client,
            secret: None,
        })
    }

    /// Send `value` in header `header` with every call.
    pub fn with_secret(mut self, header: &str, value: &str) -> Result<Self, HttpToolSetupError> {
        let bad = || HttpToolSetupError::BadSecretHeader {
            header: header.to_string(),
        };
        let name = reqwest::header::HeaderName::from_bytes(header.as_bytes()).map_err(|_| bad())?;
        let mut value = reqwest::header::HeaderValue::from_str(value).map_err(|_| bad())?;
        value.set_sensitive(true);
        self.secret = Some((name, value));
        Ok(self)
    }

    async fn run(
        client: reqwest::Client,
        secret: Option<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
        request: ToolRequest,
    ) -> Result<serde_json::Value, ToolError> {
        let name = request.name.clone();
        let failed = |reason: String| ToolError::Failed {
            name: name.clone(),
            reason,
        };
        let body = serde_json::to_vec(&request.arguments).map_err(|e| failed(e.to_string()))?;
        let mut req = client
            .post(&request.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .header("X-Vocelio-Tool", request.name.as_str())
            .body(body);
        if let Some((h, v)) = secret {
            req = req.header(h, v);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| failed(super::openai::error_chain(&e)))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(ToolError::Status {
                name: name.clone(),
                status: status.as_u16(),
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| failed(super::openai::error_chain(&e)))?
        {
            if bytes.len() + chunk.len() > MAX_TOOL_RESPONSE {
                return Err(failed(format!(
                    "answer longer than {MAX_TOOL_RESPONSE} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| failed(format!("answer is not JSON: {e}")))
    }
}

impl ToolRunner for HttpToolRunner {
    fn call(&self, request: ToolRequest) -> Receiver<Result<serde_json::Value, ToolError>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let rt = match super::openai::runtime() {
            Ok(rt) => rt,
            Err(reason) => {
                let _ = tx.send(Err(ToolError::Failed {
                    name: request.name,
                    reason,
                }));
                return rx;
            }
        };
        let client = self.client.clone();
        let secret = self.secret.clone();
        rt.spawn(async move {
            let (name, after) = (request.name.clone(), request.timeout);
            let result = tokio::time::timeout(after, Self::run(client, secret, request))
                .await
                .unwrap_or(Err(ToolError::Timeout { name, after }));
            let _ = tx.send(result);
        });
        rx
    }
}
