//! Webhook deliveries (being built).

use crate::state::AppState;

/// Queue `event` (`call.started`, `call.ended`, `transcript.final`,
/// `campaign.completed`) with `payload` for every webhook subscribed to it.
/// The queue is in the database: committed before this returns.
pub async fn enqueue(
    _s: &AppState,
    _event: &str,
    _payload: serde_json::Value,
) -> crate::error::ApiResult<()> {
    Ok(())
}

/// Send due deliveries, retrying with exponential backoff, forever.
pub async fn run(_s: AppState) {}
