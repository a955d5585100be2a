//! Conversation flows: JSON flow documents, validation, execution.
