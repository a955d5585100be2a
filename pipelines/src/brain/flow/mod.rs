//! Conversation flows: JSON flow documents, validation, execution.
//!
//! - [`model`]: the document ([`Flow`], [`Node`], [`Edge`], [`Outcome`]) and
//!   [`Flow::parse`], which parses and validates into a [`ValidFlow`].
//! - [`validate`]: every problem in a flow, with a machine code.
//! - [`template`]: `{{variable}}` text templates.
//! - [`collect`]: checking answers: digits, yes/no, numbers, dates and times.
//! - [`run`]: [`FlowRun`], the sans-IO, deterministic execution of one call.
//! - [`brain`]: [`FlowBrain`], a [`crate::brain::Brain`] over a flow and its services.
//! - [`templates`]: the built-in flows.

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
