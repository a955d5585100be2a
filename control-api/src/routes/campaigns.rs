//! `/v1/campaigns`: outbound campaigns, their contacts (CSV uploads), their
//! lifecycle and A/B results; `/v1/dnc`: the do-not-call list.

use crate::campaign::ab;
use crate::campaign::contacts::{self, normalize_e164, RejectedRow};
use crate::campaign::spec::{Compiled, Conversion};
use crate::campaign::status::Command;
use crate::campaign::{CampaignSpec, CampaignStatus, ContactStatus};
use crate::db::new_id;
use crate::dialer::{contact_counts, ContactCounts};
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorBody, ErrorResponse};
use crate::events::LiveEvent;
use crate::pagination::{Page, PageQuery};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_campaigns, create_campaign))
        .routes(routes!(get_campaign, update_campaign, delete_campaign))
        .routes(routes!(upload_contacts, list_contacts))
        .routes(routes!(start_campaign))
        .routes(routes!(pause_campaign))
        .routes(routes!(resume_campaign))
        .routes(routes!(stop_campaign))
        .routes(routes!(ab_results))
        .routes(routes!(list_dnc, add_dnc))
        .routes(routes!(remove_dnc))
}

/// A campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct Campaign {
    /// Id (`cp_…`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Where it is.
    pub status: CampaignStatus,
    /// Its document.
    pub spec: CampaignSpec,
    /// Its contacts by state.
    pub counts: ContactCounts,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed.
    pub updated_ms: i64,
    /// First started.
    pub started_ms: Option<i64>,
    /// Completed.
    pub completed_ms: Option<i64>,
}

/// `?status=` for campaigns.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignFilter {
    /// Only campaigns in this state.
    #[param(inline)]
    pub status: Option<CampaignStatus>,
}

/// `?status=` for contacts.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactFilter {
    /// Only contacts in this state.
    #[param(inline)]
    pub status: Option<ContactStatus>,
}

/// A contact of a campaign.
#[derive(Debug, Serialize, ToSchema)]
pub struct Contact {
    /// Id (`ct_…`).
    pub id: String,
    /// E.164 number.
    pub phone: String,
    /// Name.
    pub name: Option<String>,
    /// IANA time zone its calling hours are read in.
    pub timezone: String,
    /// The upload's other columns.
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    /// Where it is.
    pub status: ContactStatus,
    /// Calls placed to it.
    pub attempts: i64,
    /// Not called before this (ms since the epoch) while pending.
    pub next_attempt_ms: i64,
    /// A/B variant (given on the first attempt).
    pub variant: Option<String>,
    /// What the last attempt came to (`answered`, `busy`, `interrupted`, …).
    pub last_result: Option<String>,
    /// The last call (`/v1/calls/{id}`).
    pub call_id: Option<String>,
    /// Converted by the campaign's metric.
    pub converted: bool,
    /// Last changed.
    pub updated_ms: i64,
}

/// What an upload did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportReport {
    /// Contacts added to be called.
    pub accepted: u64,
    /// Rows whose number was earlier in the file or already in the campaign.
    pub duplicates: u64,
    /// Numbers on the do-not-call list: added with status `dnc`, never called.
    pub dnc: u64,
    /// Rows not taken, with why.
    pub rejected: Vec<RejectedRow>,
}

/// One variant's results.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantResult {
    /// Variant name (`default` for a single-agent campaign).
    pub variant: String,
    /// Its agent (`None` for a variant no longer in the campaign).
    pub agent: Option<String>,
    /// Finished calls.
    pub calls: u64,
    /// Of which answered.
    pub answered: u64,
    /// Of which converted.
    pub conversions: u64,
    /// conversions / calls (0 without calls).
    pub conversion_rate: f64,
}

/// The best variant against the second best (two-proportion z-test).
#[derive(Debug, Serialize, ToSchema)]
pub struct Comparison {
    /// The variant with the highest conversion rate.
    pub best: String,
    /// The second highest.
    pub runner_up: String,
    /// z statistic (best minus runner-up).
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
    /// p < 0.05.
    pub significant: bool,
    /// `best` when significant, else none yet.
    pub winner: Option<String>,
}

/// A campaign's A/B results.
#[derive(Debug, Serialize, ToSchema)]
pub struct AbResults {
    /// The campaign.
    pub campaign_id: String,
    /// The metric.
    pub conversion: Conversion,
    /// Per variant.
    pub variants: Vec<VariantResult>,
    /// Best against second best; none with fewer than two variants with calls.
    pub comparison: Option<Comparison>,
}

/// A number to put on the do-not-call list.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDnc {
    /// E.164 number.
    pub number: String,
    /// Why (at most 500 characters).
    #[serde(default)]
    pub reason: Option<String>,
}

/// A number never to call.
#[derive(Debug, Serialize, ToSchema)]
pub struct DncEntry {
    /// E.164 number.
    pub number: String,
    /// Why.
    pub reason: Option<String>,
    /// Added, ms since the epoch.
    pub created_ms: i64,
}

type CampaignRow = (
    String,
    String,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

const CAMPAIGN_COLS: &str =
    "id, name, status, spec, created_ms, updated_ms, started_ms, completed_ms";

struct Loaded {
    status: CampaignStatus,
    spec: CampaignSpec,
    compiled: Compiled,
    row: CampaignRow,
}

async fn load(s: &AppState, id: &str) -> ApiResult<Loaded> {
    let row: Option<CampaignRow> = sqlx::query_as(&format!(
        "SELECT {CAMPAIGN_COLS} FROM campaigns WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&s.db.pool)
    .await?;
    let row = row.ok_or_else(|| ApiError::not_found(format!("campaign {id}")))?;
    let status =
        CampaignStatus::parse(&row.2).ok_or_else(|| ApiError::internal("bad campaign status"))?;
    let spec: CampaignSpec = serde_json::from_str(&row.3).map_err(ApiError::internal)?;
    let compiled = spec.compile().map_err(ApiError::internal)?;
    Ok(Loaded {
        status,
        spec,
        compiled,
        row,
    })
}

async fn view(s: &AppState, l: Loaded) -> ApiResult<Campaign> {
    let r = l.row;
    Ok(Campaign {
        counts: contact_counts(s, &r.0).await?,
        id: r.0,
        name: r.1,
        status: l.status,
        spec: l.spec,
        created_ms: r.4,
        updated_ms: r.5,
        started_ms: r.6,
        completed_ms: r.7,
    })
}

/// Validate a document and check that its agents exist.
async fn checked(s: &AppState, spec: CampaignSpec) -> ApiResult<CampaignSpec> {
    let (spec, compiled) = spec.normalized()?;
    for arm in &compiled.arms {
        let found: Option<(String,)> = sqlx::query_as("SELECT id FROM agents WHERE name = $1")
            .bind(&arm.agent)
            .fetch_optional(&s.db.pool)
            .await?;
        if found.is_none() {
            return Err(ApiError::validation(
                arm.agent_field.clone(),
                format!("no agent {:?}: create it under /v1/agents", arm.agent),
            ));
        }
    }
    Ok(spec)
}

fn publish(s: &AppState, kind: &str, campaign: &str, data: serde_json::Value) {
    s.events.publish(LiveEvent {
        kind: kind.into(),
        call_id: None,
        campaign_id: Some(campaign.into()),
        at_ms: s.now_ms(),
        data,
    });
}

/// List campaigns, newest first.
#[utoipa::path(get, path = "/v1/campaigns", tag = "campaigns",
    params(PageQuery, CampaignFilter),
    responses((status = 200, body = Page<Campaign>), (status = 422, body = ErrorResponse), (status = 401, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_campaigns(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<CampaignFilter>,
) -> ApiResult<axum::Json<Page<Campaign>>> {
    let page = page.checked()?;
    let status = filter.status.map(CampaignStatus::as_str);
    let cond = if status.is_some() {
        "WHERE status = $1"
    } else {
        ""
    };
    let (limit_at, offset_at) = if status.is_some() { (2, 3) } else { (1, 2) };
    let count_sql = format!("SELECT COUNT(*) FROM campaigns {cond}");
    let mut count = sqlx::query_as::<_, (i64,)>(&count_sql);
    let sql = format!(
        "SELECT {CAMPAIGN_COLS} FROM campaigns {cond} ORDER BY created_ms DESC, id DESC LIMIT ${limit_at} OFFSET ${offset_at}"
    );
    let mut rows = sqlx::query_as::<_, CampaignRow>(&sql);
    if let Some(st) = status {
        count = count.bind(st);
        rows = rows.bind(st);
    }
    let (total,) = count.fetch_one(&s.db.pool).await?;
    let rows = rows
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&s.db.pool)
        .await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let status =
            CampaignStatus::parse(&r.2).ok_or_else(|| ApiError::internal("bad campaign status"))?;
        let spec: CampaignSpec = serde_json::from_str(&r.3).map_err(ApiError::internal)?;
        let compiled = spec.compile().map_err(ApiError::internal)?;
        items.push(
            view(
                &s,
                Loaded {
                    status,
                    spec,
                    compiled,
                    row: r,
                },
            )
            .await?,
        );
    }
    Ok(axum::Json(Page::new(items, total, page)))
}

/// Create a campaign (as a draft): upload contacts, then start it.
#[utoipa::path(post, path = "/v1/campaigns", tag = "campaigns", request_body = CampaignSpec,
    responses((status = 201, body = Campaign), (status = 422, body = ErrorResponse), (status = 401, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_campaign(
    State(s): State<AppState>,
    ApiJson(spec): ApiJson<CampaignSpec>,
) -> ApiResult<(StatusCode, axum::Json<Campaign>)> {
    let spec = checked(&s, spec).await?;
    let id = new_id("cp");
    let now = s.now_ms();
    sqlx::query(
        "INSERT INTO campaigns (id, name, status, spec, created_ms, updated_ms) VALUES ($1, $2, 'draft', $3, $4, $4)",
    )
    .bind(&id)
    .bind(&spec.name)
    .bind(serde_json::to_string(&spec).map_err(ApiError::internal)?)
    .bind(now)
    .execute(&s.db.pool)
    .await?;
    tracing::info!(campaign = %id, "campaign created");
    let l = load(&s, &id).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&s, l).await?)))
}

/// A campaign with its contact counts.
#[utoipa::path(get, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_campaign(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Campaign>> {
    let l = load(&s, &id).await?;
    Ok(axum::Json(view(&s, l).await?))
}

/// Replace a campaign's document (draft or paused only).
#[utoipa::path(put, path = "/v1/campaigns/{id}", tag = "campaigns", request_body = CampaignSpec,
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_campaign(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<CampaignSpec>,
) -> ApiResult<axum::Json<Campaign>> {
    let l = load(&s, &id).await?;
    if !l.status.editable() {
        return Err(ApiError::conflict(format!(
            "the campaign is {}: only draft or paused campaigns can be edited (pause it first)",
            l.status.as_str()
        )));
    }
    let spec = checked(&s, spec).await?;
    let done = sqlx::query(
        "UPDATE campaigns SET name = $1, spec = $2, updated_ms = $3 WHERE id = $4 AND status = $5",
    )
    .bind(&spec.name)
    .bind(serde_json::to_string(&spec).map_err(ApiError::internal)?)
    .bind(s.now_ms())
    .bind(&id)
    .bind(l.status.as_str())
    .execute(&s.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "the campaign changed state meanwhile; try again",
        ));
    }
    let l = load(&s, &id).await?;
    Ok(axum::Json(view(&s, l).await?))
}

/// Delete a campaign and its contacts (not while running; its calls stay).
#[utoipa::path(delete, path = "/v1/campaigns/{id}", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_campaign(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let l = load(&s, &id).await?;
    if l.status == CampaignStatus::Running {
        return Err(ApiError::conflict(
            "the campaign is running: pause or stop it first",
        ));
    }
    let mut tx = s.db.pool.begin().await?;
    let done = sqlx::query("DELETE FROM campaigns WHERE id = $1 AND status <> 'running'")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::conflict("the campaign started meanwhile"));
    }
    sqlx::query("DELETE FROM contacts WHERE campaign_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    tracing::info!(campaign = %id, "campaign deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("text/csv") || m.eq_ignore_ascii_case("application/csv")
        })
        .unwrap_or(false)
}

/// Upload contacts as CSV (`Content-Type: text/csv`, up to 2 MB per upload).
/// The header row names the columns: `phone` (required, E.164), `name`,
/// `timezone` (IANA; default the campaign's); other columns become the
/// contact's variables. Rows are numbered as in a spreadsheet (the header
/// is row 1). Not for stopped or completed campaigns.
#[utoipa::path(post, path = "/v1/campaigns/{id}/contacts", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    request_body(content = String, content_type = "text/csv",
        description = "phone,name,timezone,plan\n+15550102030,Ann,America/New_York,gold"),
    responses((status = 200, body = ImportReport), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 415, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn upload_contacts(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<ImportReport>> {
    let l = load(&s, &id).await?;
    if l.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "the campaign is {}: contacts can no longer be added",
            l.status.as_str()
        )));
    }
    if !is_csv(&headers) {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            body: ErrorBody {
                code: "bad_request".into(),
                message: "expected Content-Type: text/csv".into(),
                field: None,
                details: None,
            },
        });
    }
    let up = contacts::parse_upload(&body, l.compiled.timezone)
        .map_err(|e| ApiError::validation("body", e.to_string()))?;
    let now = s.now_ms();
    let mut report = ImportReport {
        accepted: 0,
        duplicates: up.duplicates,
        dnc: 0,
        rejected: up.rejected,
    };
    let mut tx = s.db.pool.begin().await?;
    let (max_seq,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(seq) FROM contacts WHERE campaign_id = $1")
            .bind(&id)
            .fetch_one(&mut *tx)
            .await?;
    let mut seq = max_seq.unwrap_or(0);
    for c in up.contacts {
        let on_dnc: Option<(String,)> = sqlx::query_as("SELECT e164 FROM dnc WHERE e164 = $1")
            .bind(&c.e164)
            .fetch_optional(&mut *tx)
            .await?;
        let status = if on_dnc.is_some() {
            ContactStatus::Dnc
        } else {
            ContactStatus::Pending
        };
        seq += 1;
        let added = sqlx::query(
            "INSERT INTO contacts (id, campaign_id, e164, name, timezone, variables, status, attempts, \
             next_attempt_ms, last_result, converted, updated_ms, seq) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, 0, $9, $10) \
             ON CONFLICT (campaign_id, e164) DO NOTHING",
        )
        .bind(new_id("ct"))
        .bind(&id)
        .bind(&c.e164)
        .bind(c.name.as_deref())
        .bind(c.timezone.name())
        .bind(serde_json::Value::Object(c.variables).to_string())
        .bind(status.as_str())
        .bind((status == ContactStatus::Dnc).then_some("dnc"))
        .bind(now)
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        if added.rows_affected() == 0 {
            report.duplicates += 1;
        } else if status == ContactStatus::Dnc {
            report.dnc += 1;
        } else {
            report.accepted += 1;
        }
    }
    tx.commit().await?;
    tracing::info!(
        campaign = %id,
        accepted = report.accepted,
        duplicates = report.duplicates,
        dnc = report.dnc,
        rejected = report.rejected.len(),
        "contacts uploaded"
    );
    if l.status == CampaignStatus::Running {
        s.dialer_wake.notify_one();
    }
    Ok(axum::Json(report))
}

type ContactRow = (
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
    i64,
);

/// A campaign's contacts, in upload order.
#[utoipa::path(get, path = "/v1/campaigns/{id}/contacts", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id"), PageQuery, ContactFilter),
    responses((status = 200, body = Page<Contact>), (status = 404, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_contacts(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<ContactFilter>,
) -> ApiResult<axum::Json<Page<Contact>>> {
    let page = page.checked()?;
    load(&s, &id).await?;
    let status = filter.status.map(ContactStatus::as_str);
    let cond = if status.is_some() {
        "AND status = $2"
    } else {
        ""
    };
    let (limit_at, offset_at) = if status.is_some() { (3, 4) } else { (2, 3) };
    let count_sql = format!("SELECT COUNT(*) FROM contacts WHERE campaign_id = $1 {cond}");
    let mut count = sqlx::query_as::<_, (i64,)>(&count_sql).bind(&id);
    let sql = format!(
        "SELECT id, e164, name, timezone, variables, status, attempts, next_attempt_ms, variant, \
         last_result, call_id, converted, updated_ms FROM contacts WHERE campaign_id = $1 {cond} \
         ORDER BY seq, id LIMIT ${limit_at} OFFSET ${offset_at}"
    );
    let mut rows = sqlx::query_as::<_, ContactRow>(&sql).bind(&id);
    if let Some(st) = status {
        count = count.bind(st);
        rows = rows.bind(st);
    }
    let (total,) = count.fetch_one(&s.db.pool).await?;
    let rows = rows
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(&s.db.pool)
        .await?;
    let items = rows
        .into_iter()
        .map(|r| {
            Ok(Contact {
                id: r.0,
                phone: r.1,
                name: r.2,
                timezone: r.3,
                variables: serde_json::from_str(&r.4).map_err(ApiError::internal)?,
                status: ContactStatus::parse(&r.5)
                    .ok_or_else(|| ApiError::internal("bad contact status"))?,
                attempts: r.6,
                next_attempt_ms: r.7,
                variant: r.8,
                last_result: r.9,
                call_id: r.10,
                converted: r.11 != 0,
                updated_ms: r.12,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(axum::Json(Page::new(items, total, page)))
}

async fn transition(s: &AppState, id: &str, command: Command) -> ApiResult<Campaign> {
    let l = load(s, id).await?;
    let next = l
        .status
        .apply(command)
        .map_err(|e| ApiError::conflict(e.to_string()))?;
    if next == CampaignStatus::Running {
        let counts = contact_counts(s, id).await?;
        if command == Command::Start && counts.pending == 0 {
            return Err(ApiError::conflict(format!(
                "the campaign has no contacts to call: upload them to /v1/campaigns/{id}/contacts first"
            )));
        }
        for arm in &l.compiled.arms {
            let found: Option<(String,)> = sqlx::query_as("SELECT id FROM agents WHERE name = $1")
                .bind(&arm.agent)
                .fetch_optional(&s.db.pool)
                .await?;
            if found.is_none() {
                return Err(ApiError::conflict(format!(
                    "agent {:?} ({}) no longer exists: edit the campaign",
                    arm.agent, arm.agent_field
                )));
            }
        }
    }
    let now = s.now_ms();
    let done = sqlx::query(
        "UPDATE campaigns SET status = $1, updated_ms = $2, started_ms = COALESCE(started_ms, $3) \
         WHERE id = $4 AND status = $5",
    )
    .bind(next.as_str())
    .bind(now)
    .bind((next == CampaignStatus::Running).then_some(now))
    .bind(id)
    .bind(l.status.as_str())
    .execute(&s.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "the campaign changed state meanwhile; try again",
        ));
    }
    let kind = match command {
        Command::Start => "campaign.started",
        Command::Pause => "campaign.paused",
        Command::Resume => "campaign.resumed",
        Command::Stop => "campaign.stopped",
    };
    publish(s, kind, id, serde_json::json!({"status": next.as_str()}));
    tracing::info!(campaign = %id, from = l.status.as_str(), to = next.as_str(), "campaign state changed");
    if next == CampaignStatus::Running {
        s.dialer_wake.notify_one();
    }
    let l = load(s, id).await?;
    view(s, l).await
}

/// Start a draft campaign: the dialer begins calling its contacts.
#[utoipa::path(post, path = "/v1/campaigns/{id}/start", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn start_campaign(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Campaign>> {
    transition(&s, &id, Command::Start).await.map(axum::Json)
}

/// Pause a running campaign: no new calls; calls in progress finish.
#[utoipa::path(post, path = "/v1/campaigns/{id}/pause", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn pause_campaign(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Campaign>> {
    transition(&s, &id, Command::Pause).await.map(axum::Json)
}

/// Resume a paused campaign.
#[utoipa::path(post, path = "/v1/campaigns/{id}/resume", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn resume_campaign(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Campaign>> {
    transition(&s, &id, Command::Resume).await.map(axum::Json)
}

/// Stop a campaign for good (calls in progress finish).
#[utoipa::path(post, path = "/v1/campaigns/{id}/stop", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, body = Campaign), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn stop_campaign(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Campaign>> {
    transition(&s, &id, Command::Stop).await.map(axum::Json)
}

#[derive(Default)]
struct Tally {
    calls: u64,
    answered: u64,
    conversions: u64,
}

/// A/B results: per variant, finished calls, answered, conversions (by the
/// campaign's metric) and the rate; and the best variant against the
/// second best by a two-proportion z-test (significant when p < 0.05).
#[utoipa::path(get, path = "/v1/campaigns/{id}/ab", tag = "campaigns",
    params(("id" = String, Path, description = "Campaign id")),
    responses((status = 200, body = AbResults), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn ab_results(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<AbResults>> {
    let l = load(&s, &id).await?;
    let mut tallies: BTreeMap<String, Tally> = BTreeMap::new();
    {
        let mut rows = sqlx::query_as::<_, (String, Option<i64>, Option<String>, Option<String>)>(
            "SELECT variant, answered_ms, outcome, insights FROM calls \
             WHERE campaign_id = $1 AND status = 'ended' AND variant IS NOT NULL",
        )
        .bind(&id)
        .fetch(&s.db.pool);
        while let Some((variant, answered_ms, outcome, insights)) = rows.try_next().await? {
            let t = tallies.entry(variant).or_default();
            t.calls += 1;
            t.answered += u64::from(answered_ms.is_some());
            t.conversions += u64::from(l.spec.conversion.matches(
                answered_ms.is_some(),
                outcome.as_deref(),
                insights.as_deref(),
            ));
        }
    }
    let result = |variant: String, agent: Option<String>, t: Tally| VariantResult {
        conversion_rate: if t.calls == 0 {
            0.0
        } else {
            t.conversions as f64 / t.calls as f64
        },
        variant,
        agent,
        calls: t.calls,
        answered: t.answered,
        conversions: t.conversions,
    };
    let mut variants = Vec::new();
    for arm in &l.compiled.arms {
        let t = tallies.remove(&arm.name).unwrap_or_default();
        variants.push(result(arm.name.clone(), Some(arm.agent.clone()), t));
    }
    for (name, t) in tallies {
        variants.push(result(name, None, t));
    }
    let mut ranked: Vec<&VariantResult> = variants.iter().filter(|v| v.calls > 0).collect();
    ranked.sort_by(|a, b| {
        b.conversion_rate
            .total_cmp(&a.conversion_rate)
            .then(b.calls.cmp(&a.calls))
            .then(a.variant.cmp(&b.variant))
    });
    let comparison = match ranked.as_slice() {
        [best, second, ..] => ab::two_proportion(
            best.conversions,
            best.calls,
            second.conversions,
            second.calls,
        )
        .map(|t| {
            let significant = t.p_value < 0.05;
            Comparison {
                best: best.variant.clone(),
                runner_up: second.variant.clone(),
                z: t.z,
                p_value: t.p_value,
                significant,
                winner: significant.then(|| best.variant.clone()),
            }
        }),
        _ => None,
    };
    Ok(axum::Json(AbResults {
        campaign_id: id,
        conversion: l.spec.conversion,
        variants,
        comparison,
    }))
}

/// The do-not-call list, newest first.
#[utoipa::path(get, path = "/v1/dnc", tag = "campaigns",
    params(PageQuery),
    responses((status = 200, body = Page<DncEntry>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_dnc(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<Page<DncEntry>>> {
    let page = page.checked()?;
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dnc")
        .fetch_one(&s.db.pool)
        .await?;
    let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(
        "SELECT e164, reason, created_ms FROM dnc ORDER BY created_ms DESC, e164 LIMIT $1 OFFSET $2",
    )
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&s.db.pool)
    .await?;
    let items = rows
        .into_iter()
        .map(|(number, reason, created_ms)| DncEntry {
            number,
            reason,
            created_ms,
        })
        .collect();
    Ok(axum::Json(Page::new(items, total, page)))
}

/// Put a number on the do-not-call list: no campaign calls it again
/// (pending contacts with it become `dnc` at once).
#[utoipa::path(post, path = "/v1/dnc", tag = "campaigns", request_body = NewDnc,
    responses((status = 201, body = DncEntry), (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn add_dnc(
    State(s): State<AppState>,
    ApiJson(new): ApiJson<NewDnc>,
) -> ApiResult<(StatusCode, axum::Json<DncEntry>)> {
    let number =
        normalize_e164(&new.number).map_err(|e| ApiError::validation("number", e.to_string()))?;
    let reason = new
        .reason
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty());
    if reason.as_ref().is_some_and(|r| r.chars().count() > 500) {
        return Err(ApiError::validation(
            "reason",
            "must be at most 500 characters",
        ));
    }
    let now = s.now_ms();
    let added = sqlx::query(
        "INSERT INTO dnc (e164, reason, created_ms) VALUES ($1, $2, $3) ON CONFLICT (e164) DO NOTHING",
    )
    .bind(&number)
    .bind(reason.as_deref())
    .bind(now)
    .execute(&s.db.pool)
    .await?;
    if added.rows_affected() == 0 {
        return Err(ApiError::conflict(
            "the number is already on the do-not-call list",
        ));
    }
    sqlx::query(
        "UPDATE contacts SET status = 'dnc', last_result = 'dnc', updated_ms = $1 WHERE e164 = $2 AND status = 'pending'",
    )
    .bind(now)
    .bind(&number)
    .execute(&s.db.pool)
    .await?;
    tracing::info!("number added to the do-not-call list");
    Ok((
        StatusCode::CREATED,
        axum::Json(DncEntry {
            number,
            reason,
            created_ms: now,
        }),
    ))
}

/// Take a number off the do-not-call list (contacts already marked `dnc` stay so).
#[utoipa::path(delete, path = "/v1/dnc/{number}", tag = "campaigns",
    params(("number" = String, Path, description = "E.164 number (`+` may be written %2B)")),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn remove_dnc(
    State(s): State<AppState>,
    Path(number): Path<String>,
) -> ApiResult<StatusCode> {
    let number =
        normalize_e164(&number).map_err(|e| ApiError::validation("number", e.to_string()))?;
    let done = sqlx::query("DELETE FROM dnc WHERE e164 = $1")
        .bind(&number)
        .execute(&s.db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found("that number on the do-not-call list"));
    }
    tracing::info!("number removed from the do-not-call list");
    Ok(StatusCode::NO_CONTENT)
}
