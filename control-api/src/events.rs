//! Live events for dashboards (`/v1/events`, `/v1/calls/{id}/live`).

use serde::Serialize;
use std::sync::Arc;
use tokio::sync::broadcast;
use utoipa::ToSchema;

/// One live event, as sent on the WebSocket (one JSON text message each).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveEvent {
    /// `call.started`, `call.answered`, `call.ended`, `transcript.partial`,
    /// `transcript.final`, `turn.metrics`, `call.analysis`,
    /// `campaign.started`, `campaign.paused`, `campaign.completed`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The call (API id), for call events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The campaign, for campaign events and campaign calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The event's fields.
    pub data: serde_json::Value,
}

/// Fan-out of live events. Slow subscribers miss events (and are told how
/// many) rather than slowing calls down.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<LiveEvent>>,
}

impl EventBus {
    /// A bus keeping `capacity` events per subscriber.
    pub fn new(capacity: usize) -> Self {
        EventBus {
            tx: broadcast::channel(capacity).0,
        }
    }

    /// Publish (no subscribers: dropped).
    pub fn publish(&self, event: LiveEvent) {
        let _ = self.tx.send(Arc::new(event));
    }

    /// Subscribe from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.tx.subscribe()
    }
}
