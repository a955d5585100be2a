//! Records what the engine reports (being built).

use crate::model::EngineEvent;
use crate::state::AppState;
use tokio::sync::mpsc::UnboundedReceiver;

/// At startup: close calls that were live when the process stopped.
pub async fn recover(_s: &AppState) -> crate::error::ApiResult<()> {
    Ok(())
}

/// Store every engine event, publish it live, queue webhooks, wake the dialer.
pub async fn run(_s: AppState, mut events: UnboundedReceiver<EngineEvent>) {
    while events.recv().await.is_some() {}
}
