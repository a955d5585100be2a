//! Conversation flows: JSON flow documents, validation, execution.
//!
//! A flow is a graph of nodes joined by an explicit list of edges, each edge
//! labelled with the outcome of its source node that selects it:
//!
//! ```json
//! {
//!   "version": 1, "id": "callback", "name": "Callback request",
//!   "start": "hello",
//!   "intents": [{ "name": "human", "examples": ["talk to a person"] }],
//!   "nodes": [
//!     { "id": "hello", "type": "say", "text": "Hi, this is Acme." },
//!     { "id": "ask_phone", "type": "ask", "prompt": "What number should we call?",
//!       "variable": "phone", "validate": "digits", "min_length": 7, "max_attempts": 3 },
//!     { "id": "save", "type": "tool", "tool": "crm", "url": "https://crm.example.com/callback",
//!       "arguments": { "phone": "{{phone}}" }, "timeout_ms": 3000, "save": { "ticket": "/id" } },
//!     { "id": "bye", "type": "hangup", "text": "Thanks, we'll call {{phone_spoken}} soon. Ticket {{ticket}}." },
//!     { "id": "human", "type": "transfer", "target": "queue:support" }
//!   ],
//!   "edges": [
//!     { "from": "hello", "to": "ask_phone" },
//!     { "from": "ask_phone", "to": "save", "on": "ok" },
//!     { "from": "ask_phone", "to": "human", "on": "gave_up" },
//!     { "from": "save", "to": "bye", "on": "ok" },
//!     { "from": "save", "to": "human", "on": "error" }
//!   ]
//! }
//! ```
//!
//! Node types and their outcome labels: `say` (unlabelled), `ask` (`ok`,
//! `gave_up`), `branch` (`intent:NAME`, `var:NAME=A|B`, `var:NAME>=N`,
//! `sentiment:negative|neutral|positive`, `default`), `kb_answer` (`found`,
//! `not_found`), `llm` and `tool` (`ok`, optional `error`), `transfer` and
//! `hangup` (end the flow). Text fields are `{{variable}}` templates; every
//! answer collected into `NAME` also sets `NAME_spoken`, and a run sets
//! `last_input`, `intent`, `sentiment`, `kb_answer`, `llm_reply`, `today`.
//!
//! - [`model`]: the document ([`Flow`], [`Node`], [`Edge`], [`Outcome`]) and
//!   [`Flow::parse`], which parses and validates into a [`ValidFlow`].
//! - [`mod@validate`]: every problem in a flow, with a machine code.
//! - [`template`]: `{{variable}}` text templates.
//! - [`collect`]: checking answers: digits, yes/no, numbers, dates and times.
//! - [`run`]: [`FlowRun`], the sans-IO, deterministic execution of one call.
//! - [`brain`]: [`FlowBrain`], a [`crate::brain::Brain`] over a flow and its services.
//! - [`mod@templates`]: the built-in flows.

pub mod brain;
pub mod collect;
pub mod model;
pub mod run;
pub mod template;
pub mod templates;
pub mod validate;

pub use brain::{FlowBrain, FlowServices};
pub use collect::CalendarDate;
pub use model::{Edge, Flow, FlowError, Node, NodeType, Outcome, ValidFlow, ValidationKind};
pub use run::{
    Effect, EffectId, EffectRequest, EffectResult, FlowContext, FlowOutput, FlowRun, RunStatus,
};
pub use templates::templates;
pub use validate::{validate, FlowProblem, ProblemCode, Severity};
