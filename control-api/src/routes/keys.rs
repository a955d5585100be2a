//! `/v1/keys`: create, list and revoke API keys (admin scope).

use crate::auth::{self, KeyInfo, Scope};
use crate::error::{ApiError, ApiJson, ApiResult, ErrorResponse};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The keys routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
}

/// A key to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Label (1–100 characters).
    pub name: String,
    /// Scope.
    pub scope: Scope,
}

/// A created key: `key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// The key: send it as `Authorization: Bearer KEY`.
    pub key: String,
    /// Its record.
    #[serde(flatten)]
    pub info: KeyInfo,
}

type KeyRow = (
    String,
    String,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

fn info(r: KeyRow) -> ApiResult<KeyInfo> {
    Ok(KeyInfo {
        id: r.0,
        name: r.1,
        scope: Scope::parse(&r.2).ok_or_else(|| ApiError::internal("bad scope stored"))?,
        prefix: r.3,
        created_ms: r.4,
        revoked_ms: r.5,
        last_used_ms: r.6,
    })
}

/// List API keys (never their secrets).
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    responses((status = 200, body = [KeyInfo]), (status = 401, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_keys(State(s): State<AppState>) -> ApiResult<axum::Json<Vec<KeyInfo>>> {
    let rows: Vec<KeyRow> = sqlx::query_as(
        "SELECT id, name, scope, prefix, created_ms, revoked_ms, last_used_ms FROM api_keys ORDER BY created_ms, id",
    )
    .fetch_all(&s.db.pool)
    .await?;
    Ok(axum::Json(
        rows.into_iter().map(info).collect::<ApiResult<_>>()?,
    ))
}

/// Create an API key. The key is in this response only; it is stored hashed.
#[utoipa::path(post, path = "/v1/keys", tag = "keys", request_body = NewKey,
    responses((status = 201, body = CreatedKey), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_key(
    State(s): State<AppState>,
    ApiJson(new): ApiJson<NewKey>,
) -> ApiResult<(StatusCode, axum::Json<CreatedKey>)> {
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation("name", "must be 1 to 100 characters"));
    }
    let (key, info) = auth::create_key(&s.db, name, new.scope, s.now_ms()).await?;
    tracing::info!(key = %info.id, scope = new.scope.as_str(), "API key created");
    Ok((StatusCode::CREATED, axum::Json(CreatedKey { key, info })))
}

/// Revoke an API key: it stops working at once.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 204), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn revoke_key(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL")
            .bind(s.now_ms())
            .bind(&id)
            .execute(&s.db.pool)
            .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("key {id}")));
    }
    tracing::info!(key = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}
