//! `/v1/voices`: the local voices found in the models folder, plus voices
//! of outside providers registered with their price, and previews.

use crate::db::new_id;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorResponse};
use crate::pagination::{Page, PageQuery};
use crate::routes::agents::{all_agents, valid_language};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_voices, add_voice))
        .routes(routes!(delete_voice))
        .routes(routes!(preview_voice))
}

/// The provider of the engine's own voices.
pub const LOCAL: &str = "local";
/// Longest preview text, in characters.
pub const MAX_PREVIEW_CHARS: usize = 500;

/// A voice an agent can speak with.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Voice {
    /// Id: use it as an agent's `voice`. Local voices are named by their
    /// model file (`en_US-lessac-medium`), provider voices `vo_…`.
    pub id: String,
    /// `local`, or the outside provider (`elevenlabs`, …).
    pub provider: String,
    /// Display name.
    pub name: String,
    /// Language tag.
    pub language: String,
    /// Price per minute of speech, in the account's currency (0 for local voices).
    pub price_per_min: f64,
    /// Sample rate, local voices.
    pub sample_rate: Option<u32>,
}

/// A provider voice to register.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVoice {
    /// The provider (not `local`), 1–64 characters.
    pub provider: String,
    /// Display name, 1–100 characters.
    pub name: String,
    /// Language tag (`en-US`).
    pub language: String,
    /// Price per minute, 0 or more.
    pub price_per_min: f64,
}

/// Text to speak.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    /// 1–500 characters.
    pub text: String,
}

/// A WAV file.
#[derive(Debug, ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct WavFile(pub Vec<u8>);

/// Filters for the voices list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct VoiceFilter {
    /// Only this provider (`local` for the engine's own voices).
    pub provider: Option<String>,
    /// Only this language (`en-US`; `en` matches every `en-…`).
    pub language: Option<String>,
}

fn matches_language(voice: &str, wanted: &str) -> bool {
    voice.eq_ignore_ascii_case(wanted)
        || voice
            .get(..wanted.len() + 1)
            .is_some_and(|p| p.eq_ignore_ascii_case(&format!("{wanted}-")))
}

type ProviderRow = (String, String, String, String, f64);

async fn provider_voices(s: &AppState) -> ApiResult<Vec<Voice>> {
    let rows: Vec<ProviderRow> = sqlx::query_as(
        "SELECT id, provider, name, language, price_per_min FROM voice_providers ORDER BY provider, name, id",
    )
    .fetch_all(&s.db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Voice {
            id: r.0,
            provider: r.1,
            name: r.2,
            language: r.3,
            price_per_min: r.4,
            sample_rate: None,
        })
        .collect())
}

fn local_voices(s: &AppState) -> Vec<Voice> {
    let mut v: Vec<Voice> = s
        .engine
        .voices()
        .into_iter()
        .map(|v| Voice {
            name: v.id.clone(),
            id: v.id,
            provider: LOCAL.into(),
            language: v.language,
            price_per_min: 0.0,
            sample_rate: Some(v.sample_rate),
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// List voices: local ones first, then provider voices.
#[utoipa::path(get, path = "/v1/voices", tag = "voices",
    params(PageQuery, VoiceFilter),
    responses((status = 200, body = Page<Voice>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_voices(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<VoiceFilter>,
) -> ApiResult<axum::Json<Page<Voice>>> {
    let page = page.checked()?;
    let mut all = local_voices(&s);
    all.extend(provider_voices(&s).await?);
    let matching: Vec<Voice> = all
        .into_iter()
        .filter(|v| filter.provider.as_deref().is_none_or(|p| v.provider == p))
        .filter(|v| {
            filter
                .language
                .as_deref()
                .is_none_or(|l| matches_language(&v.language, l))
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

/// Register an outside provider's voice (with its price, for cost reports).
#[utoipa::path(post, path = "/v1/voices", tag = "voices", request_body = NewVoice,
    responses((status = 201, body = Voice), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn add_voice(
    State(s): State<AppState>,
    ApiJson(new): ApiJson<NewVoice>,
) -> ApiResult<(StatusCode, axum::Json<Voice>)> {
    let provider = new.provider.trim();
    if provider.is_empty() || provider.chars().count() > 64 {
        return Err(ApiError::validation(
            "provider",
            "must be 1 to 64 characters",
        ));
    }
    if provider.eq_ignore_ascii_case(LOCAL) {
        return Err(ApiError::validation(
            "provider",
            "local voices are found in the models folder, not added",
        ));
    }
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(ApiError::validation("name", "must be 1 to 100 characters"));
    }
    if !valid_language(&new.language) {
        return Err(ApiError::validation(
            "language",
            "must be a language tag like en-US",
        ));
    }
    if !new.price_per_min.is_finite() || new.price_per_min < 0.0 {
        return Err(ApiError::validation(
            "price_per_min",
            "must be a number, 0 or more",
        ));
    }
    let id = new_id("vo");
    sqlx::query(
        "INSERT INTO voice_providers (id, provider, name, language, price_per_min, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&id)
    .bind(provider)
    .bind(name)
    .bind(&new.language)
    .bind(new.price_per_min)
    .bind(s.now_ms())
    .execute(&s.db.pool)
    .await?;
    tracing::info!(voice = %id, provider, "provider voice added");
    Ok((
        StatusCode::CREATED,
        axum::Json(Voice {
            id,
            provider: provider.into(),
            name: name.into(),
            language: new.language,
            price_per_min: new.price_per_min,
            sample_rate: None,
        }),
    ))
}

/// Remove a provider voice no agent uses. Local voices cannot be removed
/// here (take the model file out of the models folder).
#[utoipa::path(delete, path = "/v1/voices/{id}", tag = "voices",
    params(("id" = String, Path, description = "Voice id")),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_voice(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    if s.engine.voices().iter().any(|v| v.id == id) {
        return Err(ApiError::conflict(
            "local voices come from the models folder and cannot be deleted here",
        ));
    }
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM voice_providers WHERE id = $1")
        .bind(&id)
        .fetch_optional(&s.db.pool)
        .await?;
    if row.is_none() {
        return Err(ApiError::not_found(format!("voice {id}")));
    }
    let users: Vec<String> = all_agents(&s)
        .await?
        .into_iter()
        .filter(|a| a.spec.voice.as_deref() == Some(id.as_str()))
        .map(|a| a.spec.name)
        .collect();
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "agents {users:?} speak with this voice"
        )));
    }
    sqlx::query("DELETE FROM voice_providers WHERE id = $1")
        .bind(&id)
        .execute(&s.db.pool)
        .await?;
    tracing::info!(voice = %id, "provider voice deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Hear a local voice: `text` spoken, as a WAV file.
#[utoipa::path(post, path = "/v1/voices/{id}/preview", tag = "voices", request_body = PreviewBody,
    params(("id" = String, Path, description = "Voice id")),
    responses(
        (status = 200, description = "The text spoken, as a WAV file", content_type = "audio/wav", body = WavFile),
        (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn preview_voice(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<PreviewBody>,
) -> ApiResult<Response> {
    let local = s.engine.voices().iter().any(|v| v.id == id);
    if !local {
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM voice_providers WHERE id = $1")
            .bind(&id)
            .fetch_optional(&s.db.pool)
            .await?;
        return Err(match row {
            Some(_) => ApiError::validation("id", "preview is only available for local voices"),
            None => ApiError::not_found(format!("voice {id}")),
        });
    }
    let text = body.text.trim();
    if text.is_empty() || text.chars().count() > MAX_PREVIEW_CHARS {
        return Err(ApiError::validation(
            "text",
            format!("must be 1 to {MAX_PREVIEW_CHARS} characters, not blank"),
        ));
    }
    let wav = s
        .engine
        .preview(&id, text)
        .await
        .map_err(|e| ApiError::unavailable(format!("the voice could not speak: {e}")))?;
    Ok(([(header::CONTENT_TYPE, "audio/wav")], wav).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_filters_match_tags_and_prefixes() {
        assert!(matches_language("en-US", "en-us"));
        assert!(matches_language("en-US", "en"));
        assert!(!matches_language("eng-US", "en"));
        assert!(!matches_language("es-ES", "en"));
        assert!(!matches_language("e", "en"));
    }
}
