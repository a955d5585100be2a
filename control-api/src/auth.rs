//! API keys: `Authorization: Bearer vk_…`, scoped read < write < admin,
//! stored as SHA-256 hashes (the key itself is shown once, at creation).
//!
//! GET and HEAD need `read`, other methods `write`, `/v1/keys` needs
//! `admin`. Browsers cannot set headers on WebSockets, so the event
//! streams also take `?access_token=KEY`.

use crate::db::{new_id, Db};
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// What a key may do. Each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read anything.
    Read,
    /// Read and change resources, act on calls, run campaigns.
    Write,
    /// Everything, including API keys.
    Admin,
}

impl Scope {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    /// From storage or the command line.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// A key as listed (never the secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KeyInfo {
    /// Id.
    pub id: String,
    /// Label.
    pub name: String,
    /// Scope.
    pub scope: Scope,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Revoked, ms since the epoch.
    pub revoked_ms: Option<i64>,
    /// Last used (to the minute), ms since the epoch.
    pub last_used_ms: Option<i64>,
}

/// The authenticated caller, in request extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Key id.
    pub key_id: String,
    /// Its scope.
    pub scope: Scope,
}

/// SHA-256 of a key, hex.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A new random key: `vk_` and 40 hex digits (160 bits).
pub fn generate_key() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 20];
    getrandom::fill(&mut b)?;
    Ok(format!("vk_{}", hex::encode(b)))
}

/// Create a key; returns it (the only time it is seen) and its record.
pub async fn create_key(
    db: &Db,
    name: &str,
    scope: Scope,
    now_ms: i64,
) -> Result<(String, KeyInfo), ApiError> {
    let key = generate_key().map_err(ApiError::internal)?;
    let info = KeyInfo {
        id: new_id("key"),
        name: name.to_string(),
        scope,
        prefix: key[..9].to_string(),
        created_ms: now_ms,
        revoked_ms: None,
        last_used_ms: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (id, name, scope, prefix, hash, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&info.id)
    .bind(&info.name)
    .bind(scope.as_str())
    .bind(&info.prefix)
    .bind(hash_key(&key))
    .bind(now_ms)
    .execute(&db.pool)
    .await?;
    Ok((key, info))
}

/// Revoke a key; `false` when there is no active key with that id.
pub async fn revoke_key(db: &Db, id: &str, now_ms: i64) -> Result<bool, ApiError> {
    let done =
        sqlx::query("UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL")
            .bind(now_ms)
            .bind(id)
            .execute(&db.pool)
            .await?;
    Ok(done.rows_affected() > 0)
}

/// Every key: id, name, scope, prefix, revoked time (for the command line).
pub async fn list_keys(
    db: &Db,
) -> Result<Vec<(String, String, String, String, Option<i64>)>, ApiError> {
    Ok(sqlx::query_as(
        "SELECT id, name, scope, prefix, revoked_ms FROM api_keys ORDER BY created_ms, id",
    )
    .fetch_all(&db.pool)
    .await?)
}

/// The scope a request needs.
pub fn required_scope(method: &Method, path: &str) -> Scope {
    if path == "/v1/keys" || path.starts_with("/v1/keys/") {
        Scope::Admin
    } else if method == Method::GET || method == Method::HEAD {
        Scope::Read
    } else {
        Scope::Write
    }
}

fn bearer(req: &Request) -> Option<String> {
    if let Some(v) = req.headers().get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, key) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| key.trim().to_string());
    }
    // WebSocket clients in browsers cannot set headers.
    let is_upgrade = req.headers().contains_key(axum::http::header::UPGRADE);
    if is_upgrade {
        return form_urlencoded::parse(req.uri().query()?.as_bytes())
            .find(|(k, _)| k == "access_token")
            .map(|(_, v)| v.into_owned());
    }
    None
}

/// Middleware: 401 without a valid key, 403 with too small a scope.
pub async fn require_key(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(key) = bearer(&req) else {
        return Err(ApiError::unauthorized(
            "missing API key: send `Authorization: Bearer KEY` (create one with `vocelio keys create --scope admin`)",
        ));
    };
    let row: Option<(String, String, Option<i64>, Option<i64>)> =
        sqlx::query_as("SELECT id, scope, revoked_ms, last_used_ms FROM api_keys WHERE hash = $1")
            .bind(hash_key(&key))
            .fetch_optional(&state.db.pool)
            .await?;
    let Some((id, scope, revoked, last_used)) = row else {
        return Err(ApiError::unauthorized("unknown API key"));
    };
    if revoked.is_some() {
        return Err(ApiError::unauthorized("this API key has been revoked"));
    }
    let scope = Scope::parse(&scope).ok_or_else(|| ApiError::internal("bad scope stored"))?;
    let needed = required_scope(req.method(), req.uri().path());
    if scope < needed {
        return Err(ApiError::forbidden(format!(
            "this key's scope is {}; this request needs {}",
            scope.as_str(),
            needed.as_str()
        )));
    }
    // Last use, to the minute: not a write per request.
    let now = state.now_ms();
    if last_used.is_none_or(|t| now - t > 60_000) {
        sqlx::query("UPDATE api_keys SET last_used_ms = $1 WHERE id = $2")
            .bind(now)
            .bind(&id)
            .execute(&state.db.pool)
            .await?;
    }
    req.extensions_mut().insert(Caller { key_id: id, scope });
    Ok(next.run(req).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_order_and_requirements() {
        assert!(Scope::Admin > Scope::Write && Scope::Write > Scope::Read);
        assert_eq!(required_scope(&Method::GET, "/v1/agents"), Scope::Read);
        assert_eq!(required_scope(&Method::POST, "/v1/agents"), Scope::Write);
        assert_eq!(required_scope(&Method::GET, "/v1/keys"), Scope::Admin);
        assert_eq!(
            required_scope(&Method::DELETE, "/v1/keys/key_1"),
            Scope::Admin
        );
        assert_eq!(required_scope(&Method::GET, "/v1/keysmith"), Scope::Read);
    }

    #[test]
    fn keys_are_random_and_hashed() {
        let a = generate_key().unwrap();
        assert!(a.starts_with("vk_") && a.len() == 43);
        assert_ne!(a, generate_key().unwrap());
        assert_eq!(hash_key(&a).len(), 64);
        assert_ne!(hash_key(&a), a);
    }
}
