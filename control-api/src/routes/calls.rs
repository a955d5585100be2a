//! `/v1/calls`: call history and detail, transcripts, recordings, placing
//! outbound calls, and acting on live ones (hang up, transfer, DTMF).

use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorBody, ErrorResponse};
use crate::pagination::{Page, PageQuery};
use crate::routes::numbers::{check_e164, is_e164, is_resource_name, Filters};
use crate::state::{AppState, EngineError, OutboundCall};
use crate::store::{self, NewCall};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The calls routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_calls, place_call))
        .routes(routes!(get_call))
        .routes(routes!(get_transcript))
        .routes(routes!(get_recording))
        .routes(routes!(hangup))
        .routes(routes!(transfer))
        .routes(routes!(dtmf))
}

/// A call as listed, and as sent with `call.started` / `call.ended`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Call {
    /// Id.
    pub id: String,
    /// The engine's call id (`call-7`).
    pub engine_call: String,
    /// `inbound` or `outbound` (`unknown` if the engine never said).
    pub direction: String,
    /// `sip` or `twilio` (`unknown` if the engine never said).
    pub transport: String,
    /// The agent's name.
    pub agent: String,
    /// Caller number.
    pub from: Option<String>,
    /// Called number.
    pub to: Option<String>,
    /// `ringing`, `live` (answered) or `ended`.
    pub status: String,
    /// Why it ended (`remote_bye`, `local_hangup`, `busy`, `engine_restart`, …).
    pub end_reason: Option<String>,
    /// Started, ms since the epoch.
    pub started_ms: i64,
    /// Answered, ms since the epoch.
    pub answered_ms: Option<i64>,
    /// Ended, ms since the epoch.
    pub ended_ms: Option<i64>,
    /// From start to end (or to now while in progress), ms.
    pub duration_ms: i64,
    /// Handle time: from answer to end (or to now while live), ms; none if never answered.
    pub handle_ms: Option<i64>,
    /// The campaign that placed it.
    pub campaign_id: Option<String>,
    /// The campaign contact.
    pub contact_id: Option<String>,
    /// The campaign's A/B variant.
    pub variant: Option<String>,
    /// The voice used.
    pub voice: Option<String>,
    /// `completed`, `transferred`, `caller_hung_up`, …
    pub outcome: Option<String>,
    /// One-paragraph summary.
    pub summary: Option<String>,
    /// Mean caller sentiment (-1..1).
    pub sentiment: Option<f64>,
    /// Estimated MOS (1–4.5), RTP calls.
    pub mos: Option<f64>,
    /// Packet loss, percent.
    pub loss_percent: Option<f64>,
    /// Interarrival jitter, ms.
    pub jitter_ms: Option<f64>,
}

/// One turn's latency figures.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TurnMetric {
    /// 1, 2, … in the call.
    pub seq: i64,
    /// Caller stopped speaking -> agent audio on the wire, ms.
    pub voice_to_voice_ms: Option<f64>,
    /// Every figure the pipeline measured.
    #[schema(value_type = Object)]
    pub metrics: serde_json::Value,
    /// Recorded, ms since the epoch.
    pub created_ms: i64,
}

/// Voice-to-voice latency over a call's turns.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Latency {
    /// Turns with a voice-to-voice figure.
    pub turns: i64,
    /// Median, ms.
    pub p50_voice_to_voice_ms: Option<f64>,
    /// 95th percentile, ms.
    pub p95_voice_to_voice_ms: Option<f64>,
}

/// Everything about a call.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CallDetail {
    /// The call.
    #[serde(flatten)]
    pub call: Call,
    /// What the brain made of the conversation (intents, variables, actions, trace).
    #[schema(value_type = Option<Object>)]
    pub insights: Option<serde_json::Value>,
    /// Per-turn latency.
    pub turns: Vec<TurnMetric>,
    /// Their percentiles.
    pub latency: Latency,
}

/// One transcript line.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TranscriptLine {
    /// 1, 2, … in the call.
    pub seq: i64,
    /// `caller` or `agent`.
    pub speaker: String,
    /// The words.
    pub text: String,
    /// Media time, ms.
    pub start_ms: i64,
    /// Media time, ms.
    pub end_ms: i64,
    /// The agent was cut off.
    pub interrupted: bool,
}

/// A call's transcript (final lines only).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Transcript {
    /// The call.
    pub call_id: String,
    /// Its status: the transcript grows while it is not `ended`.
    pub status: String,
    /// The lines, in order.
    pub lines: Vec<TranscriptLine>,
}

#[derive(Debug, sqlx::FromRow)]
struct CallRow {
    id: String,
    engine_call: String,
    direction: String,
    transport: String,
    agent: String,
    from_number: Option<String>,
    to_number: Option<String>,
    status: String,
    end_reason: Option<String>,
    started_ms: i64,
    answered_ms: Option<i64>,
    ended_ms: Option<i64>,
    campaign_id: Option<String>,
    contact_id: Option<String>,
    variant: Option<String>,
    voice: Option<String>,
    outcome: Option<String>,
    summary: Option<String>,
    sentiment: Option<f64>,
    mos: Option<f64>,
    loss_percent: Option<f64>,
    jitter_ms: Option<f64>,
    insights: Option<String>,
}

const CALL_COLUMNS: &str = "id, engine_call, direction, transport, agent, from_number, to_number, \
    status, end_reason, started_ms, answered_ms, ended_ms, campaign_id, contact_id, variant, voice, \
    outcome, summary, sentiment, mos, loss_percent, jitter_ms, insights";

impl CallRow {
    fn into_call(self, now_ms: i64) -> (Call, Option<String>) {
        let end = self.ended_ms.unwrap_or(now_ms);
        let call = Call {
            duration_ms: (end - self.started_ms).max(0),
            handle_ms: self.answered_ms.map(|a| (end - a).max(0)),
            id: self.id,
            engine_call: self.engine_call,
            direction: self.direction,
            transport: self.transport,
            agent: self.agent,
            from: self.from_number,
            to: self.to_number,
            status: self.status,
            end_reason: self.end_reason,
            started_ms: self.started_ms,
            answered_ms: self.answered_ms,
            ended_ms: self.ended_ms,
            campaign_id: self.campaign_id,
            contact_id: self.contact_id,
            variant: self.variant,
            voice: self.voice,
            outcome: self.outcome,
            summary: self.summary,
            sentiment: self.sentiment,
            mos: self.mos,
            loss_percent: self.loss_percent,
            jitter_ms: self.jitter_ms,
        };
        (call, self.insights)
    }
}

async fn call_row(s: &AppState, id: &str) -> ApiResult<CallRow> {
    let mut db = s.db.pool.acquire().await?;
    call_row_on(&mut db, id).await
}

async fn call_row_on(db: &mut sqlx::AnyConnection, id: &str) -> ApiResult<CallRow> {
    let row: Option<CallRow> =
        sqlx::query_as(&format!("SELECT {CALL_COLUMNS} FROM calls WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *db)
            .await?;
    row.ok_or_else(|| ApiError::not_found(format!("call {id}")))
}

/// A call by id (404 if there is none).
pub async fn load_call(s: &AppState, id: &str) -> ApiResult<Call> {
    Ok(call_row(s, id).await?.into_call(s.now_ms()).0)
}

/// [`load_call`] on a connection or inside a transaction.
pub async fn load_call_on(db: &mut sqlx::AnyConnection, now_ms: i64, id: &str) -> ApiResult<Call> {
    Ok(call_row_on(db, id).await?.into_call(now_ms).0)
}

/// A call with its insights and per-turn latency.
pub async fn load_detail(s: &AppState, id: &str) -> ApiResult<CallDetail> {
    let (call, insights) = call_row(s, id).await?.into_call(s.now_ms());
    let insights = insights
        .map(|j| serde_json::from_str(&j))
        .transpose()
        .map_err(ApiError::internal)?;
    let rows: Vec<(i64, Option<f64>, String, i64)> = sqlx::query_as(
        "SELECT seq, voice_to_voice_ms, metrics, created_ms FROM turn_metrics WHERE call_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&s.db.pool)
    .await?;
    let turns = rows
        .into_iter()
        .map(|(seq, v2v, metrics, created_ms)| {
            Ok(TurnMetric {
                seq,
                voice_to_voice_ms: v2v,
                metrics: serde_json::from_str(&metrics).map_err(ApiError::internal)?,
                created_ms,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let mut v2v: Vec<f64> = turns
        .iter()
        .filter_map(|t| t.voice_to_voice_ms)
        .filter(|v| v.is_finite())
        .collect();
    v2v.sort_by(f64::total_cmp);
    let latency = Latency {
        turns: v2v.len() as i64,
        p50_voice_to_voice_ms: percentile(&v2v, 50.0),
        p95_voice_to_voice_ms: percentile(&v2v, 95.0),
    };
    Ok(CallDetail {
        call,
        insights,
        turns,
        latency,
    })
}

/// A call's final transcript lines, in order.
pub async fn load_lines(s: &AppState, id: &str) -> ApiResult<Vec<TranscriptLine>> {
    let rows: Vec<(i64, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT seq, speaker, text, start_ms, end_ms, interrupted FROM transcripts WHERE call_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(&s.db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(seq, speaker, text, start_ms, end_ms, interrupted)| TranscriptLine {
                seq,
                speaker,
                text,
                start_ms,
                end_ms,
                interrupted: interrupted != 0,
            },
        )
        .collect())
}

/// Nearest-rank percentile of sorted values (`None` when empty).
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Which calls to list by status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusFilter {
    /// In progress (ringing or answered).
    Live,
    /// Over.
    Ended,
}

/// A call's direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Someone called an agent.
    Inbound,
    /// An agent called someone.
    Outbound,
}

/// Filters for the call list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallFilter {
    /// `live` (in progress) or `ended`.
    #[param(inline)]
    pub status: Option<StatusFilter>,
    /// Agent name.
    pub agent: Option<String>,
    /// `inbound` or `outbound`.
    #[param(inline)]
    pub direction: Option<Direction>,
    /// Calls placed by this campaign.
    pub campaign_id: Option<String>,
    /// Started at or after, ms since the epoch.
    pub from_ms: Option<i64>,
    /// Started before, ms since the epoch.
    pub to_ms: Option<i64>,
}

/// Call history, newest first.
#[utoipa::path(get, path = "/v1/calls", tag = "calls",
    params(PageQuery, CallFilter),
    responses((status = 200, body = Page<Call>), (status = 401, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_calls(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<CallFilter>,
) -> ApiResult<axum::Json<Page<Call>>> {
    let page = page.checked()?;
    let mut f = Filters::default();
    match filter.status {
        Some(StatusFilter::Live) => f.raw("status <> 'ended'"),
        Some(StatusFilter::Ended) => f.raw("status = 'ended'"),
        None => {}
    }
    if let Some(a) = filter.agent {
        f.text("agent =", a);
    }
    match filter.direction {
        Some(Direction::Inbound) => f.raw("direction = 'inbound'"),
        Some(Direction::Outbound) => f.raw("direction = 'outbound'"),
        None => {}
    }
    if let Some(c) = filter.campaign_id {
        f.text("campaign_id =", c);
    }
    if let Some(t) = filter.from_ms {
        f.int("started_ms >=", t);
    }
    if let Some(t) = filter.to_ms {
        f.int("started_ms <", t);
    }
    let total: (i64,) = f
        .bind_as(sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM calls{}",
            f.sql()
        )))
        .fetch_one(&s.db.pool)
        .await?;
    let sql = format!(
        "SELECT {CALL_COLUMNS} FROM calls{} ORDER BY started_ms DESC, id DESC LIMIT {} OFFSET {}",
        f.sql(),
        page.limit,
        page.offset
    );
    let rows: Vec<CallRow> = f
        .bind_as(sqlx::query_as(&sql))
        .fetch_all(&s.db.pool)
        .await?;
    let now = s.now_ms();
    let items = rows.into_iter().map(|r| r.into_call(now).0).collect();
    Ok(axum::Json(Page::new(items, total.0, page)))
}

/// A call: timings, quality, outcome, insights and per-turn latency.
#[utoipa::path(get, path = "/v1/calls/{id}", tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = CallDetail), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_call(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<CallDetail>> {
    Ok(axum::Json(load_detail(&s, &id).await?))
}

/// A call's transcript (final lines; partials are only on the live streams).
#[utoipa::path(get, path = "/v1/calls/{id}/transcript", tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, body = Transcript), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_transcript(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Transcript>> {
    let call = load_call(&s, &id).await?;
    Ok(axum::Json(Transcript {
        lines: load_lines(&s, &id).await?,
        call_id: call.id,
        status: call.status,
    }))
}

fn not_found(message: String) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        body: ErrorBody {
            code: "not_found".into(),
            message,
            field: None,
            details: None,
        },
    }
}

/// A call's recording, a WAV file (once the call has ended).
#[utoipa::path(get, path = "/v1/calls/{id}/recording", tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 200, description = "The recording", content_type = "audio/wav", body = Vec<u8>),
        (status = 404, description = "No such call, or it was not recorded", body = ErrorResponse),
        (status = 409, description = "The call is still in progress", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_recording(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let call = load_call(&s, &id).await?;
    let Some(dir) = &s.settings.recordings else {
        return Err(not_found(format!(
            "call {id} was not recorded: recording is off (no recordings folder is configured)"
        )));
    };
    if call.status != "ended" {
        return Err(ApiError::conflict(format!(
            "call {id} is still in progress: its recording is ready when it ends"
        )));
    }
    // Engine call ids are `call-7`; anything else never names a file here.
    let safe = !call.engine_call.is_empty()
        && !call.engine_call.starts_with('.')
        && call
            .engine_call
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    let missing = || not_found(format!("call {id} was not recorded"));
    if !safe {
        return Err(missing());
    }
    let path = dir.join(format!("{}.wav", call.engine_call));
    match tokio::fs::read(&path).await {
        Ok(wav) => Ok((
            [
                (header::CONTENT_TYPE, "audio/wav".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{id}.wav\""),
                ),
            ],
            wav,
        )
            .into_response()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(ApiError::internal(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

/// An outbound call to place.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceCall {
    /// E.164 number to call.
    pub to: String,
    /// The agent (name) that talks.
    pub agent: String,
    /// Caller id, E.164 (default: the configured caller id).
    #[serde(default)]
    pub from: Option<String>,
    /// Trunk name (default: the first configured).
    #[serde(default)]
    pub trunk: Option<String>,
}

/// The engine's refusal as an HTTP error.
pub fn engine_error(e: EngineError) -> ApiError {
    match e {
        EngineError::NoSuchCall(_) => {
            ApiError::conflict("the call is no longer live in the engine")
        }
        EngineError::Refused(m) => ApiError::conflict(format!("the engine refused: {m}")),
        e @ EngineError::Unavailable(_) => ApiError::unavailable(e.to_string()),
    }
}

/// Place an outbound call now.
#[utoipa::path(post, path = "/v1/calls", tag = "calls", request_body = PlaceCall,
    responses((status = 201, body = CallDetail), (status = 409, body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn place_call(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<PlaceCall>,
) -> ApiResult<(StatusCode, axum::Json<CallDetail>)> {
    check_e164("to", &req.to)?;
    let from = req.from.unwrap_or_else(|| s.settings.caller_id.clone());
    check_e164("from", &from)?;
    if let Some(t) = &req.trunk {
        if !is_resource_name(t) {
            return Err(ApiError::validation(
                "trunk",
                "must be a trunk name (a-z, 0-9, _ and -)",
            ));
        }
    }
    let agent: Option<(String,)> = sqlx::query_as("SELECT id FROM agents WHERE name = $1")
        .bind(&req.agent)
        .fetch_optional(&s.db.pool)
        .await?;
    if agent.is_none() {
        return Err(ApiError::validation(
            "agent",
            format!("no agent named {:?}: create it under /v1/agents", req.agent),
        ));
    }
    let engine_call = s
        .engine
        .place_call(OutboundCall {
            to: req.to.clone(),
            from: from.clone(),
            trunk: req.trunk.clone(),
            agent: req.agent.clone(),
        })
        .await
        .map_err(engine_error)?;
    let id = store::ensure_call(
        &s,
        &engine_call,
        &NewCall {
            direction: "outbound",
            transport: "sip",
            agent: &req.agent,
            from: Some(&from),
            to: Some(&req.to),
        },
    )
    .await?;
    tracing::info!(call = %id, engine_call = %engine_call, agent = %req.agent, "outbound call placed");
    Ok((StatusCode::CREATED, axum::Json(load_detail(&s, &id).await?)))
}

/// An action was handed to the engine.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    /// The call.
    pub call_id: String,
    /// `hangup`, `transfer` or `dtmf`.
    pub action: String,
}

/// The engine id of a call that has not ended (404 unknown, 409 ended).
async fn live_engine_call(s: &AppState, id: &str) -> ApiResult<String> {
    let row: Option<(String, String)> =
        sqlx::query_as("SELECT engine_call, status FROM calls WHERE id = $1")
            .bind(id)
            .fetch_optional(&s.db.pool)
            .await?;
    match row {
        None => Err(ApiError::not_found(format!("call {id}"))),
        Some((_, status)) if status == "ended" => {
            Err(ApiError::conflict(format!("call {id} has ended")))
        }
        Some((engine_call, _)) => Ok(engine_call),
    }
}

fn accepted(id: String, action: &str) -> (StatusCode, axum::Json<Accepted>) {
    (
        StatusCode::ACCEPTED,
        axum::Json(Accepted {
            call_id: id,
            action: action.into(),
        }),
    )
}

/// Hang up a live call.
#[utoipa::path(post, path = "/v1/calls/{id}/hangup", tag = "calls",
    params(("id" = String, Path, description = "Call id")),
    responses((status = 202, body = Accepted), (status = 404, body = ErrorResponse),
        (status = 409, description = "The call has ended", body = ErrorResponse),
        (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn hangup(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    let engine_call = live_engine_call(&s, &id).await?;
    s.engine.hangup(&engine_call).await.map_err(engine_error)?;
    tracing::info!(call = %id, "hangup requested");
    Ok(accepted(id, "hangup"))
}

/// Where to transfer a call.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferTo {
    /// A SIP URI (`sip:desk@pbx.example.com`) or an E.164 number.
    pub target: String,
}

/// Whether `t` is a SIP(S) URI or an E.164 number.
pub fn is_transfer_target(t: &str) -> bool {
    if is_e164(t) {
        return true;
    }
    let rest = t
        .strip_prefix("sip:")
        .or_else(|| t.strip_prefix("sips:"))
        .unwrap_or_default();
    !rest.is_empty()
        && t.len() <= 256
        && !rest.starts_with('@')
        && !rest.ends_with('@')
        && !rest
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
}

/// Blind-transfer a live call.
#[utoipa::path(post, path = "/v1/calls/{id}/transfer", tag = "calls", request_body = TransferTo,
    params(("id" = String, Path, description = "Call id")),
    responses((status = 202, body = Accepted), (status = 404, body = ErrorResponse),
        (status = 409, description = "The call has ended", body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn transfer(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TransferTo>,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    if !is_transfer_target(&req.target) {
        return Err(ApiError::validation(
            "target",
            "must be a SIP URI (sip:desk@pbx.example.com) or an E.164 number",
        ));
    }
    let engine_call = live_engine_call(&s, &id).await?;
    s.engine
        .transfer(&engine_call, &req.target)
        .await
        .map_err(engine_error)?;
    tracing::info!(call = %id, "transfer requested");
    Ok(accepted(id, "transfer"))
}

/// DTMF digits to send.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendDigits {
    /// 1–32 of `0-9`, `*`, `#`, `A-D`.
    pub digits: String,
}

/// Whether `d` is 1–32 DTMF digits.
pub fn is_dtmf(d: &str) -> bool {
    (1..=32).contains(&d.len())
        && d.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'*' | b'#' | b'A'..=b'D'))
}

/// Send DTMF digits on a live call.
#[utoipa::path(post, path = "/v1/calls/{id}/dtmf", tag = "calls", request_body = SendDigits,
    params(("id" = String, Path, description = "Call id")),
    responses((status = 202, body = Accepted), (status = 404, body = ErrorResponse),
        (status = 409, description = "The call has ended", body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn dtmf(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<SendDigits>,
) -> ApiResult<(StatusCode, axum::Json<Accepted>)> {
    if !is_dtmf(&req.digits) {
        return Err(ApiError::validation(
            "digits",
            "must be 1 to 32 of 0-9, *, #, A-D",
        ));
    }
    let engine_call = live_engine_call(&s, &id).await?;
    s.engine
        .send_dtmf(&engine_call, &req.digits)
        .await
        .map_err(engine_error)?;
    tracing::info!(call = %id, digits = req.digits.len(), "DTMF requested");
    Ok(accepted(id, "dtmf"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0));
        assert_eq!(percentile(&v, 95.0), Some(19.0));
        assert_eq!(percentile(&v, 100.0), Some(20.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[100.0, 200.0, 900.0], 50.0), Some(200.0));
    }

    #[test]
    fn dtmf_digits() {
        for ok in ["1", "0123456789*#ABCD", &"9".repeat(32)] {
            assert!(is_dtmf(ok), "{ok}");
        }
        for bad in ["", "E", "a", "1 2", &"9".repeat(33), "١"] {
            assert!(!is_dtmf(bad), "{bad}");
        }
    }

    #[test]
    fn transfer_targets() {
        for ok in [
            "+15551234567",
            "sip:desk@pbx.example.com",
            "sips:+15551234567@carrier.example.com;transport=tls",
            "sip:pbx.example.com",
        ] {
            assert!(is_transfer_target(ok), "{ok}");
        }
        for bad in [
            "",
            "sip:",
            "sip:@host",
            "sip:desk@",
            "tel:+15551234567",
            "15551234567",
            "sip:desk @pbx",
            "sip:<desk@pbx>",
            "http://x",
        ] {
            assert!(!is_transfer_target(bad), "{bad}");
        }
    }

    #[test]
    fn engine_refusals_map_to_statuses() {
        assert_eq!(
            engine_error(EngineError::NoSuchCall("call-1".into())).status,
            StatusCode::CONFLICT
        );
        let e = engine_error(EngineError::Refused("no trunk configured".into()));
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert!(e.body.message.contains("no trunk configured"));
        let e = engine_error(EngineError::Unavailable("models loading".into()));
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.body.message.contains("models loading"));
    }
}
