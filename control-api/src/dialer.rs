//! The campaign dialer (being built).

use crate::state::AppState;

/// At startup: settle contacts that were being dialled when the process stopped.
pub async fn recover(_s: &AppState) -> crate::error::ApiResult<()> {
    Ok(())
}

/// Dial due contacts of running campaigns, forever.
pub async fn run(_s: AppState) {}
