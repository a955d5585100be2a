//! `/v1/agents`: define the AI agents calls are routed to, and talk to one
//! in text without a phone.

use crate::chat::{self, ChatRequest, ChatResult};
use crate::db::new_id;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorResponse};
use crate::model::{AgentSpec, BrainSpec};
use crate::pagination::{Page, PageQuery};
use crate::routing;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vocelio_pipelines::brain::flow::{templates, validate::valid_url};

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_agents, create_agent))
        .routes(routes!(get_agent, replace_agent, delete_agent))
        .routes(routes!(chat_with_agent))
}

/// A stored agent: its id and times, and the spec as given.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AgentView {
    /// Id (`ag_…`).
    pub id: String,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last replaced, ms since the epoch.
    pub updated_ms: i64,
    /// The agent.
    #[serde(flatten)]
    pub spec: AgentSpec,
}

/// Filters for the agents list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgentFilter {
    /// Agents whose name contains this.
    pub name: Option<String>,
    /// Agents speaking this language (`en-US`).
    pub language: Option<String>,
}

/// Longest system prompt, in characters.
pub const MAX_PROMPT_CHARS: usize = 8000;
/// Longest greeting, in characters.
pub const MAX_GREETING_CHARS: usize = 2000;

/// Whether `s` is a resource name: `[a-z0-9_-]`, 1–64 characters.
pub fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `s` is a language tag like `en`, `en-US`, `es-419` or `zh-Hant-TW`.
pub fn valid_language(s: &str) -> bool {
    let mut parts = s.split('-');
    let lang = parts.next().unwrap_or("");
    if !(2..=3).contains(&lang.len()) || !lang.bytes().all(|b| b.is_ascii_lowercase()) {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    let (script, region) = match rest.as_slice() {
        [] => (None, None),
        [x] if x.len() == 4 => (Some(*x), None),
        [x] => (None, Some(*x)),
        [s, r] => (Some(*s), Some(*r)),
        _ => return false,
    };
    let script_ok = script.is_none_or(|s| {
        s.len() == 4
            && s.as_bytes()[0].is_ascii_uppercase()
            && s.bytes().skip(1).all(|b| b.is_ascii_lowercase())
    });
    let region_ok = region.is_none_or(|r| {
        (r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase()))
            || (r.len() == 3 && r.bytes().all(|b| b.is_ascii_digit()))
    });
    script_ok && region_ok
}

fn range(field: &str, v: u32, lo: u32, hi: u32) -> ApiResult<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            format!("must be between {lo} and {hi}"),
        ))
    }
}

/// Check what needs no database: names, ranges, URLs, the brain's shape.
pub fn check_spec_shape(spec: &AgentSpec) -> ApiResult<()> {
    if !valid_name(&spec.name) {
        return Err(ApiError::validation(
            "name",
            "must be 1 to 64 characters of a-z, 0-9, _ and -",
        ));
    }
    if !valid_language(&spec.language) {
        return Err(ApiError::validation(
            "language",
            "must be a language tag like en-US",
        ));
    }
    if let Some(g) = &spec.greeting {
        if g.trim().is_empty() || g.chars().count() > MAX_GREETING_CHARS {
            return Err(ApiError::validation(
                "greeting",
                format!("must be 1 to {MAX_GREETING_CHARS} characters, not blank (or absent)"),
            ));
        }
    }
    match &spec.brain {
        BrainSpec::Flow { flow } => {
            if let Some(t) = flow.strip_prefix("template:") {
                if !templates().iter().any(|(name, _)| *name == t) {
                    let known: Vec<&str> = templates().iter().map(|(n, _)| *n).collect();
                    return Err(ApiError::validation(
                        "brain.flow",
                        format!(
                            "no built-in template {t:?} (there are: {})",
                            known.join(", ")
                        ),
                    ));
                }
            } else if flow.trim().is_empty() {
                return Err(ApiError::validation(
                    "brain.flow",
                    "must name a flow (id or name) or template:NAME",
                ));
            }
        }
        BrainSpec::Llm { prompt, model, .. } => {
            if prompt.trim().is_empty() || prompt.chars().count() > MAX_PROMPT_CHARS {
                return Err(ApiError::validation(
                    "brain.prompt",
                    format!("must be 1 to {MAX_PROMPT_CHARS} characters, not blank"),
                ));
            }
            if let Some(m) = model {
                if m != "local" && m != "openai" {
                    return Err(ApiError::validation(
                        "brain.model",
                        "must be local or openai (or absent: local)",
                    ));
                }
            }
        }
        BrainSpec::Builtin { agent } => {
            if !valid_name(agent) {
                return Err(ApiError::validation(
                    "brain.agent",
                    "must name an agent of the engine's configuration (a-z, 0-9, _ and -)",
                ));
            }
        }
    }
    for (i, t) in spec.tools.iter().enumerate() {
        if t.name.trim().is_empty() || t.name.chars().count() > 64 {
            return Err(ApiError::validation(
                format!("tools[{i}].name"),
                "must be 1 to 64 characters",
            ));
        }
        if spec.tools[..i].iter().any(|o| o.name == t.name) {
            return Err(ApiError::validation(
                format!("tools[{i}].name"),
                format!("another tool is already called {:?}", t.name),
            ));
        }
        if !valid_url(&t.url) {
            return Err(ApiError::validation(
                format!("tools[{i}].url"),
                "must be an http:// or https:// URL",
            ));
        }
        range(&format!("tools[{i}].timeout_ms"), t.timeout_ms, 1, 30_000)?;
    }
    range(
        "endpointing.silence_ms",
        spec.endpointing.silence_ms,
        100,
        3000,
    )?;
    range(
        "endpointing.min_speech_ms",
        spec.endpointing.min_speech_ms,
        20,
        2000,
    )?;
    range(
        "barge_in.min_speech_ms",
        spec.barge_in.min_speech_ms,
        20,
        2000,
    )?;
    Ok(())
}

/// Whether `voice` is a local voice or a provider voice.
pub(crate) async fn voice_known(s: &AppState, voice: &str) -> ApiResult<bool> {
    if s.engine.voices().iter().any(|v| v.id == voice) {
        return Ok(true);
    }
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM voice_providers WHERE id = $1")
        .bind(voice)
        .fetch_optional(&s.db.pool)
        .await?;
    Ok(row.is_some())
}

/// Check everything: the shape, the voice, the flow.
async fn check_spec(s: &AppState, spec: &AgentSpec) -> ApiResult<()> {
    check_spec_shape(spec)?;
    if let Some(v) = &spec.voice {
        if !voice_known(s, v).await? {
            return Err(ApiError::validation(
                "voice",
                format!("no voice {v:?}: see GET /v1/voices"),
            ));
        }
    }
    routing::resolve(s, spec.clone()).await?;
    Ok(())
}

type AgentRow = (String, String, i64, i64);

fn view(r: AgentRow) -> ApiResult<AgentView> {
    Ok(AgentView {
        id: r.0,
        spec: serde_json::from_str(&r.1).map_err(ApiError::internal)?,
        created_ms: r.2,
        updated_ms: r.3,
    })
}

/// Every stored agent: (id, spec).
pub(crate) async fn all_agents(s: &AppState) -> ApiResult<Vec<AgentView>> {
    let rows: Vec<AgentRow> =
        sqlx::query_as("SELECT id, spec, created_ms, updated_ms FROM agents ORDER BY name, id")
            .fetch_all(&s.db.pool)
            .await?;
    rows.into_iter().map(view).collect()
}

async fn load(s: &AppState, id: &str) -> ApiResult<AgentView> {
    let row: Option<AgentRow> =
        sqlx::query_as("SELECT id, spec, created_ms, updated_ms FROM agents WHERE id = $1")
            .bind(id)
            .fetch_optional(&s.db.pool)
            .await?;
    view(row.ok_or_else(|| ApiError::not_found(format!("agent {id}")))?)
}

async fn name_taken(s: &AppState, name: &str, except: Option<&str>) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM agents WHERE name = $1")
        .bind(name)
        .fetch_optional(&s.db.pool)
        .await?;
    Ok(row.is_some_and(|(id,)| Some(id.as_str()) != except))
}

/// Whether a campaign spec names an agent: a string equal to `name` or
/// `id` under a key containing `agent` (`agent`, `agents`, `variants[].agent`).
pub fn mentions_agent(spec: &Value, name: &str, id: &str) -> bool {
    fn walk(v: &Value, under_agent: bool, name: &str, id: &str) -> bool {
        match v {
            Value::String(s) => under_agent && (s == name || s == id),
            Value::Array(a) => a.iter().any(|x| walk(x, under_agent, name, id)),
            Value::Object(o) => o
                .iter()
                .any(|(k, x)| walk(x, k.to_ascii_lowercase().contains("agent"), name, id)),
            _ => false,
        }
    }
    walk(spec, false, name, id)
}

/// Campaign names whose spec names the agent.
async fn campaigns_using(s: &AppState, name: &str, id: &str) -> ApiResult<Vec<String>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name, spec FROM campaigns ORDER BY created_ms, id")
            .fetch_all(&s.db.pool)
            .await?;
    Ok(rows
        .into_iter()
        .filter(|(_, spec)| {
            serde_json::from_str::<Value>(spec).is_ok_and(|v| mentions_agent(&v, name, id))
        })
        .map(|(n, _)| n)
        .collect())
}

/// List agents, by name.
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    params(PageQuery, AgentFilter),
    responses((status = 200, body = Page<AgentView>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_agents(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<AgentFilter>,
) -> ApiResult<axum::Json<Page<AgentView>>> {
    let page = page.checked()?;
    // The language is inside the spec: filter here (agents are few).
    let matching: Vec<AgentView> = all_agents(&s)
        .await?
        .into_iter()
        .filter(|a| {
            filter
                .name
                .as_deref()
                .is_none_or(|n| a.spec.name.contains(&n.to_lowercase()))
        })
        .filter(|a| {
            filter
                .language
                .as_deref()
                .is_none_or(|l| a.spec.language.eq_ignore_ascii_case(l))
        })
        .collect();
    let total = matching.len() as i64;
    let items = matching
        .into_iter()
        .skip(usize::try_from(page.offset).unwrap_or(usize::MAX))
        .take(page.limit as usize)
        .collect();
    Ok(axum::Json(Page::new(items, total, page)))
}

/// Create an agent. Calls can be routed to it at once.
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentSpec,
    responses((status = 201, body = AgentView), (status = 409, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_agent(
    State(s): State<AppState>,
    ApiJson(spec): ApiJson<AgentSpec>,
) -> ApiResult<(StatusCode, axum::Json<AgentView>)> {
    check_spec(&s, &spec).await?;
    if name_taken(&s, &spec.name, None).await? {
        return Err(ApiError::conflict(format!(
            "an agent is already called {:?}",
            spec.name
        )));
    }
    let (id, now) = (new_id("ag"), s.now_ms());
    sqlx::query(
        "INSERT INTO agents (id, name, spec, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&id)
    .bind(&spec.name)
    .bind(serde_json::to_string(&spec).map_err(ApiError::internal)?)
    .bind(now)
    .execute(&s.db.pool)
    .await?;
    tracing::info!(agent = %id, name = %spec.name, "agent created");
    routing::apply(&s).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AgentView {
            id,
            created_ms: now,
            updated_ms: now,
            spec,
        }),
    ))
}

/// One agent.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AgentView>> {
    Ok(axum::Json(load(&s, &id).await?))
}

/// Replace an agent's whole spec. Live calls keep the agent they started
/// with; new calls get this one.
#[utoipa::path(put, path = "/v1/agents/{id}", tag = "agents", request_body = AgentSpec,
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = AgentView), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn replace_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<AgentSpec>,
) -> ApiResult<axum::Json<AgentView>> {
    let old = load(&s, &id).await?;
    check_spec(&s, &spec).await?;
    if spec.name != old.spec.name {
        if name_taken(&s, &spec.name, Some(&id)).await? {
            return Err(ApiError::conflict(format!(
                "an agent is already called {:?}",
                spec.name
            )));
        }
        // Campaigns name their agent: renaming would strand them.
        let campaigns = campaigns_using(&s, &old.spec.name, "\u{0}").await?;
        if !campaigns.is_empty() {
            return Err(ApiError::conflict(format!(
                "campaigns {campaigns:?} use this agent by name {:?}: it cannot be renamed",
                old.spec.name
            )));
        }
    }
    let now = s.now_ms();
    sqlx::query("UPDATE agents SET name = $1, spec = $2, updated_ms = $3 WHERE id = $4")
        .bind(&spec.name)
        .bind(serde_json::to_string(&spec).map_err(ApiError::internal)?)
        .bind(now)
        .bind(&id)
        .execute(&s.db.pool)
        .await?;
    tracing::info!(agent = %id, name = %spec.name, "agent replaced");
    routing::apply(&s).await?;
    Ok(axum::Json(AgentView {
        id,
        created_ms: old.created_ms,
        updated_ms: now,
        spec,
    }))
}

/// Delete an agent no number or campaign uses.
#[utoipa::path(delete, path = "/v1/agents/{id}", tag = "agents",
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_agent(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let agent = load(&s, &id).await?;
    let (numbers,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM numbers WHERE agent_id = $1")
        .bind(&id)
        .fetch_one(&s.db.pool)
        .await?;
    if numbers > 0 {
        return Err(ApiError::conflict(format!(
            "{numbers} number(s) route to this agent: point them elsewhere first"
        )));
    }
    let campaigns = campaigns_using(&s, &agent.spec.name, &id).await?;
    if !campaigns.is_empty() {
        return Err(ApiError::conflict(format!(
            "campaigns {campaigns:?} use this agent"
        )));
    }
    sqlx::query("DELETE FROM agents WHERE id = $1")
        .bind(&id)
        .execute(&s.db.pool)
        .await?;
    tracing::info!(agent = %id, "agent deleted");
    routing::apply(&s).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Talk to an agent in text: its greeting, then a reply to each message.
/// Nothing is stored; each request is a new conversation.
#[utoipa::path(post, path = "/v1/agents/{id}/chat", tag = "agents", request_body = ChatRequest,
    params(("id" = String, Path, description = "Agent id")),
    responses((status = 200, body = ChatResult), (status = 404, body = ErrorResponse),
        (status = 422, body = ErrorResponse),
        (status = 503, description = "The brain could not start or did not answer within 30 s", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn chat_with_agent(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ChatRequest>,
) -> ApiResult<axum::Json<ChatResult>> {
    let agent = load(&s, &id).await?;
    chat::check_messages(&req.messages)?;
    let resolved = routing::resolve(&s, agent.spec).await?;
    Ok(axum::Json(chat::chat(&s, resolved, req.messages).await?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_languages() {
        assert!(valid_name("support-2_a"));
        assert!(!valid_name(""));
        assert!(!valid_name("Support"));
        assert!(!valid_name(&"a".repeat(65)));
        assert!(valid_name(&"a".repeat(64)));
        for ok in ["en", "en-US", "es-419", "zh-Hant-TW", "fil-PH"] {
            assert!(valid_language(ok), "{ok}");
        }
        for bad in [
            "",
            "EN-us",
            "english",
            "en_US",
            "en-",
            "en-USA",
            "en-US-x-y",
        ] {
            assert!(!valid_language(bad), "{bad}");
        }
    }

    #[test]
    fn campaign_mentions_are_found_under_agent_keys_only() {
        let spec = json!({"agent": "sales", "variants": [{"agent": "ag_1"}], "note": "support"});
        assert!(mentions_agent(&spec, "sales", "ag_x"));
        assert!(mentions_agent(&spec, "zzz", "ag_1"));
        assert!(!mentions_agent(&spec, "support", "ag_2"));
        assert!(mentions_agent(&json!({"agents": ["a", "b"]}), "b", "-"));
    }
}
