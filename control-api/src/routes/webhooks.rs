//! `/v1/webhooks` (being built).

use crate::state::AppState;
use utoipa_axum::router::OpenApiRouter;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
}
