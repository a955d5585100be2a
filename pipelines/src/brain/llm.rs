//! The language-model interface shared by the local model
//! ([`super::local_llm`]) and OpenAI-compatible servers ([`super::openai`]).
//!
//! A [`ChatModel`] takes a [`ChatRequest`] and streams [`LlmEvent`]s back on a
//! channel. `chat` never blocks: the model works on its own worker (a thread
//! pool for the local model, an async runtime for HTTP). Dropping the
//! receiver cancels the request; the worker notices at its next token.

use std::fmt::Debug;
use std::time::Duration;

use crossbeam_channel::Receiver;

/// Who wrote a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Instructions.
    System,
    /// The caller.
    User,
    /// The agent.
    Assistant,
    /// A tool's result.
    Tool,
}

impl Role {
    /// The OpenAI wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

/// A tool the model may call (OpenAI "function" tool).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    /// Function name.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The provider's id for it (echoed in the tool result message).
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments, JSON text as the model wrote it.
    pub arguments: String,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Who.
    pub role: Role,
    /// The text (empty for an assistant message that only calls tools).
    pub content: String,
    /// Assistant messages: the tools it called.
    pub tool_calls: Vec<ToolCall>,
    /// Tool messages: which call this answers.
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A plain message.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// System prompt first, then the conversation.
    pub messages: Vec<ChatMessage>,
    /// Tools offered.
    pub tools: Vec<ToolSpec>,
    /// Reply length cap, in tokens.
    pub max_tokens: u32,
    /// Sampling temperature (0 = greedy).
    pub temperature: f32,
}

impl ChatRequest {
    /// A request with no tools, 128 tokens at most, temperature 0.
    pub fn new(messages: Vec<ChatMessage>) -> Self {
        ChatRequest {
            messages,
            tools: Vec::new(),
            max_tokens: 128,
            temperature: 0.0,
        }
    }
}

/// What comes back from a model, in order: text and tool calls, then exactly
/// one `Done` or `Failed`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LlmEvent {
    /// More reply text.
    Text(String),
    /// The model called a tool (complete: arguments fully streamed).
    ToolCall(ToolCall),
    /// The reply is complete.
    Done {
        /// Tokens generated.
        tokens: u32,
        /// Prompt tokens, when known.
        prompt_tokens: Option<u32>,
    },
    /// The request failed; any text already sent stands.
    Failed(LlmError),
}

/// Why a model request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// No first token (or no progress) within the deadline.
    #[error("model timed out after {after:?} ({stage})")]
    Timeout {
        /// How long it waited.
        after: Duration,
        /// `connect`, `first token` or `stream`.
        stage: &'static str,
    },
    /// The server answered with an error status.
    #[error("model server returned HTTP {status}: {body}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("model server unreachable or connection lost: {reason}")]
    Connection {
        /// What the client said.
        reason: String,
    },
    /// The server's stream did not follow the protocol.
    #[error("bad reply from model server: {reason}")]
    Protocol {
        /// What was wrong.
        reason: String,
    },
    /// The local model failed (load, context, decode).
    #[error("local model failed: {reason}")]
    Model {
        /// What failed.
        reason: String,
    },
}

/// A language model.
pub trait ChatModel: Send + Sync + Debug {
    /// A short name for logs and metrics (`local:SmolLM2-135M`, `openai:gpt-4o-mini`).
    fn name(&self) -> &str;

    /// Start `request`; events arrive on the returned channel. Never blocks.
    fn chat(&self, request: ChatRequest) -> Receiver<LlmEvent>;
}
