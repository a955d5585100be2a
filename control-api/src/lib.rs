//! The Vocelio control API: agents, flows, numbers, voices, calls,
//! campaigns, analytics, webhooks and API keys over axum, persisted in
//! SQLite (or Postgres), with live events on WebSockets.
//!
//! The API stays thin over the engine: it stores what operators define,
//! pushes routing to the engine ([`state::EngineControl`]), and records what
//! the engine reports ([`model::EngineEvent`]).

pub mod analytics;
pub mod auth;
pub mod campaign;
pub mod chat;
pub mod db;
pub mod dialer;
pub mod error;
pub mod events;
pub mod model;
pub mod pagination;
pub mod recorder;
pub mod routes;
pub mod routing;
pub mod state;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod webhooks;

use axum::Router;
use state::AppState;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

/// The OpenAPI document's frame; paths come from the handlers.
#[derive(OpenApi, Debug)]
#[openapi(
    info(
        title = "Vocelio control API",
        description = "Agents, flows, numbers, voices, calls, campaigns, analytics, webhooks and API keys. \
Every `/v1` endpoint needs `Authorization: Bearer KEY` (create the first with `vocelio keys create --scope admin`).",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "agents"), (name = "flows"), (name = "voices"), (name = "numbers"),
        (name = "trunks"), (name = "calls"), (name = "campaigns"), (name = "analytics"),
        (name = "webhooks"), (name = "keys"), (name = "live")
    )
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The `/v1` routes and their OpenAPI document.
pub fn v1() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::agents::router())
        .merge(routes::flows::router())
        .merge(routes::voices::router())
        .merge(routes::numbers::router())
        .merge(routes::calls::router())
        .merge(routes::campaigns::router())
        .merge(routes::analytics::router())
        .merge(routes::webhooks::router())
        .merge(routes::keys::router())
        .merge(routes::live::router())
        .split_for_parts();
    document_common_errors(&mut api);
    (router, api)
}

/// Every `/v1` operation can answer 401 (no or bad key) and 403 (scope too
/// small), and 422 for bad query or path parameters; operations with a
/// body also 400 (not JSON) and 415 (wrong content type). Documented once
/// here rather than on every handler.
fn document_common_errors(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorResponse")))
                    .build(),
            )
            .build()
    };
    for item in api.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for op in ops.into_iter().flatten() {
            let mut add = |code: &str, description: &str| {
                op.responses
                    .responses
                    .entry(code.to_string())
                    .or_insert_with(|| error(description).into());
            };
            add("401", "Missing, unknown or revoked API key.");
            add("403", "The key's scope does not allow this.");
            add("422", "Invalid parameters: the field and the reason.");
            if op.request_body.is_some() {
                add("400", "The body is not valid JSON.");
                add("415", "The body has the wrong content type.");
            }
        }
    }
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    v1().1
}

/// The whole HTTP API: `/v1` behind API keys, `/health`, `/ready`,
/// `/metrics`, the OpenAPI document at `/v1/openapi.json` and Swagger UI at
/// `/docs`. Merge the Twilio webhooks next to it (they are signed by Twilio
/// and take no key).
pub fn router(state: AppState) -> Router {
    let (v1, api) = v1();
    let v1 = v1.layer(axum::middleware::from_fn_with_state(
        state.clone(),
        auth::require_key,
    ));
    Router::new()
        .merge(v1)
        .merge(routes::system::router())
        .with_state(state)
        .merge(SwaggerUi::new("/docs").url("/v1/openapi.json", api))
}

/// Start the background work: close calls left live by a crash, settle
/// campaign contacts, then record engine events, dial campaigns and send
/// webhooks until the process ends.
pub async fn start_workers(
    state: AppState,
    engine_events: tokio::sync::mpsc::UnboundedReceiver<model::EngineEvent>,
) -> error::ApiResult<()> {
    recorder::recover(&state).await?;
    dialer::recover(&state).await?;
    tokio::spawn(recorder::run(state.clone(), engine_events));
    tokio::spawn(dialer::run(state.clone()));
    tokio::spawn(webhooks::run(state));
    Ok(())
}
