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
