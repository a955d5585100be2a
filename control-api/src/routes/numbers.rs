//! `/v1/numbers` (phone numbers routed to agents) and `/v1/trunks` (SIP
//! trunks). Every change is pushed to the engine with [`routing::apply`].

use crate::db::new_id;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorResponse};
use crate::model::TrunkSpec;
use crate::pagination::{Page, PageQuery};
use crate::routing;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The numbers and trunks routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_numbers, create_number))
        .routes(routes!(get_number, update_number, delete_number))
        .routes(routes!(list_trunks, create_trunk))
        .routes(routes!(get_trunk, update_trunk, delete_trunk))
}

/// Whether `s` is an E.164 number: `+`, then 2–15 digits, the first not 0.
pub fn is_e164(s: &str) -> bool {
    let Some(digits) = s.strip_prefix('+') else {
        return false;
    };
    (2..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// 422 on `field` unless `value` is E.164.
pub fn check_e164(field: &str, value: &str) -> ApiResult<()> {
    if is_e164(value) {
        Ok(())
    } else {
        Err(ApiError::validation(
            field,
            "must be an E.164 number: + then 2 to 15 digits, the first not 0 (+15551234567)",
        ))
    }
}

// ---------------------------------------------------------------- numbers

/// Which way calls reach a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// A DID on a SIP trunk.
    #[default]
    Sip,
    /// A Twilio number (its voice webhook points at this server).
    Twilio,
}

impl Provider {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Sip => "sip",
            Provider::Twilio => "twilio",
        }
    }

    fn parse(s: &str) -> ApiResult<Provider> {
        match s {
            "sip" => Ok(Provider::Sip),
            "twilio" => Ok(Provider::Twilio),
            other => Err(ApiError::internal(format!("bad provider stored: {other}"))),
        }
    }
}

/// A number to create or replace.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NumberSpec {
    /// E.164 number (`+15551234567`).
    pub number: String,
    /// The agent (id from `/v1/agents`) that answers it.
    pub agent_id: String,
    /// `sip` (default) or `twilio`.
    #[serde(default)]
    pub provider: Provider,
    /// For SIP numbers: the trunk (id from `/v1/trunks`) it arrives on.
    #[serde(default)]
    pub trunk_id: Option<String>,
}

/// A stored number.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Number {
    /// Id.
    pub id: String,
    /// E.164 number.
    pub number: String,
    /// The agent that answers it.
    pub agent_id: String,
    /// `sip` or `twilio`.
    pub provider: Provider,
    /// The trunk it arrives on.
    pub trunk_id: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
}

/// Filters for the numbers list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NumberFilter {
    /// Only numbers answered by this agent (id).
    pub agent_id: Option<String>,
    /// Only numbers of this provider.
    pub provider: Option<Provider>,
}

type NumberRow = (String, String, String, String, Option<String>, i64, i64);

const NUMBER_COLUMNS: &str = "id, e164, agent_id, provider, trunk_id, created_ms, updated_ms";

fn number(r: NumberRow) -> ApiResult<Number> {
    Ok(Number {
        id: r.0,
        number: r.1,
        agent_id: r.2,
        provider: Provider::parse(&r.3)?,
        trunk_id: r.4,
        created_ms: r.5,
        updated_ms: r.6,
    })
}

async fn load_number(s: &AppState, id: &str) -> ApiResult<Number> {
    let row: Option<NumberRow> = sqlx::query_as(&format!(
        "SELECT {NUMBER_COLUMNS} FROM numbers WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&s.db.pool)
    .await?;
    number(row.ok_or_else(|| ApiError::not_found(format!("number {id}")))?)
}

/// Check a number's fields against the database. `except`: the number's
/// own id when replacing it.
async fn check_number(s: &AppState, spec: &NumberSpec, except: Option<&str>) -> ApiResult<()> {
    check_e164("number", &spec.number)?;
    let agent: Option<(String,)> = sqlx::query_as("SELECT id FROM agents WHERE id = $1")
        .bind(&spec.agent_id)
        .fetch_optional(&s.db.pool)
        .await?;
    if agent.is_none() {
        return Err(ApiError::validation(
            "agent_id",
            format!("no agent {:?}: create it under /v1/agents", spec.agent_id),
        ));
    }
    if let Some(trunk) = &spec.trunk_id {
        if spec.provider == Provider::Twilio {
            return Err(ApiError::validation(
                "trunk_id",
                "Twilio numbers use no trunk: leave it out",
            ));
        }
        let row: Option<(String,)> = sqlx::query_as("SELECT id FROM trunks WHERE id = $1")
            .bind(trunk)
            .fetch_optional(&s.db.pool)
            .await?;
        if row.is_none() {
            return Err(ApiError::validation(
                "trunk_id",
                format!("no trunk {trunk:?}: create it under /v1/trunks"),
            ));
        }
    }
    let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM numbers WHERE e164 = $1")
        .bind(&spec.number)
        .fetch_optional(&s.db.pool)
        .await?;
    match taken {
        Some((id,)) if Some(id.as_str()) != except => Err(ApiError::conflict(format!(
            "this number is already routed (number {id})"
        ))),
        _ => Ok(()),
    }
}

/// List numbers, by number.
#[utoipa::path(get, path = "/v1/numbers", tag = "numbers",
    params(PageQuery, NumberFilter),
    responses((status = 200, body = Page<Number>), (status = 401, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_numbers(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<NumberFilter>,
) -> ApiResult<axum::Json<Page<Number>>> {
    let page = page.checked()?;
    let mut filters = Filters::default();
    if let Some(a) = filter.agent_id {
        filters.text("agent_id =", a);
    }
    if let Some(p) = filter.provider {
        filters.text("provider =", p.as_str().into());
    }
    let total: (i64,) = filters
        .bind_as(sqlx::query_as(&format!(
            "SELECT COUNT(*) FROM numbers{}",
            filters.sql()
        )))
        .fetch_one(&s.db.pool)
        .await?;
    let sql = format!(
        "SELECT {NUMBER_COLUMNS} FROM numbers{} ORDER BY e164 LIMIT {} OFFSET {}",
        filters.sql(),
        page.limit,
        page.offset
    );
    let rows: Vec<NumberRow> = filters
        .bind_as(sqlx::query_as(&sql))
        .fetch_all(&s.db.pool)
        .await?;
    let items = rows.into_iter().map(number).collect::<ApiResult<_>>()?;
    Ok(axum::Json(Page::new(items, total.0, page)))
}

/// Route a number to an agent.
#[utoipa::path(post, path = "/v1/numbers", tag = "numbers", request_body = NumberSpec,
    responses((status = 201, body = Number), (status = 409, body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_number(
    State(s): State<AppState>,
    ApiJson(spec): ApiJson<NumberSpec>,
) -> ApiResult<(StatusCode, axum::Json<Number>)> {
    check_number(&s, &spec, None).await?;
    let id = new_id("num");
    let now = s.now_ms();
    sqlx::query(
        "INSERT INTO numbers (id, e164, agent_id, provider, trunk_id, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&id)
    .bind(&spec.number)
    .bind(&spec.agent_id)
    .bind(spec.provider.as_str())
    .bind(&spec.trunk_id)
    .bind(now)
    .execute(&s.db.pool)
    .await?;
    tracing::info!(number = %id, agent = %spec.agent_id, "number added");
    routing::apply(&s).await?;
    Ok((StatusCode::CREATED, axum::Json(load_number(&s, &id).await?)))
}

/// One number.
#[utoipa::path(get, path = "/v1/numbers/{id}", tag = "numbers",
    params(("id" = String, Path, description = "Number id")),
    responses((status = 200, body = Number), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_number(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Number>> {
    Ok(axum::Json(load_number(&s, &id).await?))
}

/// Replace a number's routing.
#[utoipa::path(put, path = "/v1/numbers/{id}", tag = "numbers", request_body = NumberSpec,
    params(("id" = String, Path, description = "Number id")),
    responses((status = 200, body = Number), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_number(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(spec): ApiJson<NumberSpec>,
) -> ApiResult<axum::Json<Number>> {
    load_number(&s, &id).await?;
    check_number(&s, &spec, Some(&id)).await?;
    sqlx::query(
        "UPDATE numbers SET e164 = $1, agent_id = $2, provider = $3, trunk_id = $4, updated_ms = $5 \
         WHERE id = $6",
    )
    .bind(&spec.number)
    .bind(&spec.agent_id)
    .bind(spec.provider.as_str())
    .bind(&spec.trunk_id)
    .bind(s.now_ms())
    .bind(&id)
    .execute(&s.db.pool)
    .await?;
    tracing::info!(number = %id, agent = %spec.agent_id, "number changed");
    routing::apply(&s).await?;
    Ok(axum::Json(load_number(&s, &id).await?))
}

/// Stop routing a number.
#[utoipa::path(delete, path = "/v1/numbers/{id}", tag = "numbers",
    params(("id" = String, Path, description = "Number id")),
    responses((status = 204), (status = 404, body = ErrorResponse),
        (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_number(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let done = sqlx::query("DELETE FROM numbers WHERE id = $1")
        .bind(&id)
        .execute(&s.db.pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::not_found(format!("number {id}")));
    }
    tracing::info!(number = %id, "number removed");
    routing::apply(&s).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- trunks

/// A stored trunk as the API shows it: everything but the password.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TrunkView {
    /// Id.
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Host of the carrier's SIP server.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// `udp` or `tcp`.
    pub transport: String,
    /// Digest user.
    pub username: Option<String>,
    /// Whether a digest password is set (it is never shown).
    pub has_password: bool,
    /// Networks allowed to send calls on this trunk.
    pub allow_from: Vec<String>,
    /// SIP domain.
    pub domain: Option<String>,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last changed, ms since the epoch.
    pub updated_ms: i64,
}

impl TrunkView {
    fn new(id: String, spec: TrunkSpec, created_ms: i64, updated_ms: i64) -> Self {
        TrunkView {
            id,
            name: spec.name,
            host: spec.host,
            port: spec.port,
            transport: spec.transport,
            username: spec.username,
            has_password: spec.password.is_some(),
            allow_from: spec.allow_from,
            domain: spec.domain,
            created_ms,
            updated_ms,
        }
    }
}

/// Whether `name` is `[a-z0-9_-]{1,64}`.
pub fn is_resource_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `s` is an IPv4/IPv6 address or CIDR network (`203.0.113.0/24`).
pub fn is_ip_or_cidr(s: &str) -> bool {
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let Ok(ip) = addr.parse::<IpAddr>() else {
        return false;
    };
    let Some(prefix) = prefix else {
        return true;
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

fn is_host(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Check a trunk's own fields (not uniqueness).
pub fn check_trunk(spec: &TrunkSpec) -> ApiResult<()> {
    if !is_resource_name(&spec.name) {
        return Err(ApiError::validation(
            "name",
            "must be 1 to 64 characters of a-z, 0-9, _ and -",
        ));
    }
    if !is_host(&spec.host) {
        return Err(ApiError::validation(
            "host",
            "must be a host name or IP address, without spaces",
        ));
    }
    if spec.port == 0 {
        return Err(ApiError::validation("port", "must be between 1 and 65535"));
    }
    if spec.transport != "udp" && spec.transport != "tcp" {
        return Err(ApiError::validation("transport", "must be udp or tcp"));
    }
    match (&spec.username, &spec.password) {
        (Some(u), Some(p)) => {
            if u.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ApiError::validation(
                    "username",
                    "must not be empty or contain spaces",
                ));
            }
            if p.is_empty() {
                return Err(ApiError::validation("password", "must not be empty"));
            }
        }
        (None, None) => {}
        (Some(_), None) => {
            return Err(ApiError::validation(
                "password",
                "a username needs a password (give both or neither)",
            ))
        }
        (None, Some(_)) => {
            return Err(ApiError::validation(
                "username",
                "a password needs a username (give both or neither)",
            ))
        }
    }
    for (i, net) in spec.allow_from.iter().enumerate() {
        if !is_ip_or_cidr(net) {
            return Err(ApiError::validation(
                format!("allow_from[{i}]"),
                "must be an IPv4 or IPv6 address or network (203.0.113.0/24)",
            ));
        }
    }
    if let Some(d) = &spec.domain {
        if !is_host(d) {
            return Err(ApiError::validation(
                "domain",
                "must be a domain name, without spaces",
            ));
        }
    }
    Ok(())
}

type TrunkRow = (String, String, i64, i64);

fn trunk_view(r: TrunkRow) -> ApiResult<TrunkView> {
    let spec = serde_json::from_str::<TrunkSpec>(&r.1).map_err(ApiError::internal)?;
    Ok(TrunkView::new(r.0, spec, r.2, r.3))
}

async fn load_trunk(s: &AppState, id: &str) -> ApiResult<(TrunkSpec, TrunkRow)> {
    let row: Option<TrunkRow> =
        sqlx::query_as("SELECT id, spec, created_ms, updated_ms FROM trunks WHERE id = $1")
            .bind(id)
            .fetch_optional(&s.db.pool)
            .await?;
    let row = row.ok_or_else(|| ApiError::not_found(format!("trunk {id}")))?;
    let spec = serde_json::from_str::<TrunkSpec>(&row.1).map_err(ApiError::internal)?;
    Ok((spec, row))
}

async fn check_trunk_name(s: &AppState, name: &str, except: Option<&str>) -> ApiResult<()> {
    let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM trunks WHERE name = $1")
        .bind(name)
        .fetch_optional(&s.db.pool)
        .await?;
    match taken {
        Some((id,)) if Some(id.as_str()) != except => Err(ApiError::conflict(format!(
            "a trunk named {name:?} exists (trunk {id})"
        ))),
        _ => Ok(()),
    }
}

/// List trunks, by name (passwords are never shown).
#[utoipa::path(get, path = "/v1/trunks", tag = "trunks",
    params(PageQuery),
    responses((status = 200, body = Page<TrunkView>), (status = 401, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_trunks(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<Page<TrunkView>>> {
    let page = page.checked()?;
    let total: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM trunks")
        .fetch_one(&s.db.pool)
        .await?;
    let rows: Vec<TrunkRow> = sqlx::query_as(&format!(
        "SELECT id, spec, created_ms, updated_ms FROM trunks ORDER BY name LIMIT {} OFFSET {}",
        page.limit, page.offset
    ))
    .fetch_all(&s.db.pool)
    .await?;
    let items = rows.into_iter().map(trunk_view).collect::<ApiResult<_>>()?;
    Ok(axum::Json(Page::new(items, total.0, page)))
}

/// Add a SIP trunk. The password is stored for the engine and never shown again.
#[utoipa::path(post, path = "/v1/trunks", tag = "trunks", request_body = TrunkSpec,
    responses((status = 201, body = TrunkView), (status = 409, body = ErrorResponse),
        (status = 422, body = ErrorResponse), (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_trunk(
    State(s): State<AppState>,
    ApiJson(spec): ApiJson<TrunkSpec>,
) -> ApiResult<(StatusCode, axum::Json<TrunkView>)> {
    check_trunk(&spec)?;
    check_trunk_name(&s, &spec.name, None).await?;
    let id = new_id("tr");
    let now = s.now_ms();
    let json = serde_json::to_string(&spec).map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO trunks (id, name, spec, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&id)
    .bind(&spec.name)
    .bind(&json)
    .bind(now)
    .execute(&s.db.pool)
    .await?;
    tracing::info!(trunk = %id, name = %spec.name, "trunk added");
    routing::apply(&s).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TrunkView::new(id, spec, now, now)),
    ))
}

/// One trunk (without its password).
#[utoipa::path(get, path = "/v1/trunks/{id}", tag = "trunks",
    params(("id" = String, Path, description = "Trunk id")),
    responses((status = 200, body = TrunkView), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_trunk(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TrunkView>> {
    let (_, row) = load_trunk(&s, &id).await?;
    Ok(axum::Json(trunk_view(row)?))
}

/// Replace a trunk. Leaving `password` out while keeping the same
/// `username` keeps the stored password (responses never carry it).
#[utoipa::path(put, path = "/v1/trunks/{id}", tag = "trunks", request_body = TrunkSpec,
    params(("id" = String, Path, description = "Trunk id")),
    responses((status = 200, body = TrunkView), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse),
        (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn update_trunk(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(mut spec): ApiJson<TrunkSpec>,
) -> ApiResult<axum::Json<TrunkView>> {
    let (old, row) = load_trunk(&s, &id).await?;
    if spec.password.is_none() && spec.username.is_some() && spec.username == old.username {
        spec.password = old.password;
    }
    check_trunk(&spec)?;
    check_trunk_name(&s, &spec.name, Some(&id)).await?;
    let now = s.now_ms();
    let json = serde_json::to_string(&spec).map_err(ApiError::internal)?;
    sqlx::query("UPDATE trunks SET name = $1, spec = $2, updated_ms = $3 WHERE id = $4")
        .bind(&spec.name)
        .bind(&json)
        .bind(now)
        .bind(&id)
        .execute(&s.db.pool)
        .await?;
    tracing::info!(trunk = %id, name = %spec.name, "trunk changed");
    routing::apply(&s).await?;
    Ok(axum::Json(TrunkView::new(id, spec, row.2, now)))
}

/// Remove a trunk (409 while a number arrives on it).
#[utoipa::path(delete, path = "/v1/trunks/{id}", tag = "trunks",
    params(("id" = String, Path, description = "Trunk id")),
    responses((status = 204), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 503, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_trunk(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    load_trunk(&s, &id).await?;
    let used: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM numbers WHERE trunk_id = $1")
        .bind(&id)
        .fetch_one(&s.db.pool)
        .await?;
    if used.0 > 0 {
        return Err(ApiError::conflict(format!(
            "{} number(s) arrive on this trunk: move or delete them first",
            used.0
        )));
    }
    sqlx::query("DELETE FROM trunks WHERE id = $1")
        .bind(&id)
        .execute(&s.db.pool)
        .await?;
    tracing::info!(trunk = %id, "trunk removed");
    routing::apply(&s).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- filters

/// A value bound into a filter.
#[derive(Debug, Clone)]
enum Bind {
    Text(String),
    Int(i64),
}

/// `WHERE` clauses with `$N` parameters, built from optional filters.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filters {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Filters {
    /// `column_op` is `"agent_id ="`, `"started_ms >="`, …
    pub(crate) fn text(&mut self, column_op: &str, v: String) {
        self.binds.push(Bind::Text(v));
        self.clauses
            .push(format!("{column_op} ${}", self.binds.len()));
    }

    /// The same for an integer.
    pub(crate) fn int(&mut self, column_op: &str, v: i64) {
        self.binds.push(Bind::Int(v));
        self.clauses
            .push(format!("{column_op} ${}", self.binds.len()));
    }

    /// A clause with no parameter.
    pub(crate) fn raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_string());
    }

    /// ` WHERE …` or nothing.
    pub(crate) fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// Bind the values in order.
    pub(crate) fn bind_as<'q, O>(
        &self,
        mut q: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments<'q>> {
        for b in &self.binds {
            q = match b {
                Bind::Text(t) => q.bind(t.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers() {
        for ok in ["+15551234567", "+44", "+123456789012345"] {
            assert!(is_e164(ok), "{ok}");
        }
        for bad in [
            "",
            "+",
            "+1",
            "15551234567",
            "+05551234567",
            "+1234567890123456",
            "+1555 123",
            "+1555-1234",
            "++15551234567",
            "+١٢٣",
        ] {
            assert!(!is_e164(bad), "{bad}");
        }
    }

    #[test]
    fn addresses_and_networks() {
        for ok in [
            "203.0.113.7",
            "203.0.113.0/24",
            "0.0.0.0/0",
            "10.0.0.0/32",
            "2001:db8::1",
            "2001:db8::/32",
            "::/0",
            "::1/128",
        ] {
            assert!(is_ip_or_cidr(ok), "{ok}");
        }
        for bad in [
            "",
            "example.com",
            "203.0.113.0/33",
            "203.0.113.0/",
            "203.0.113.0/+8",
            "2001:db8::/129",
            "203.0.113",
            "203.0.113.0/24/1",
            "/24",
            "10.0.0.0/0008",
        ] {
            assert!(!is_ip_or_cidr(bad), "{bad}");
        }
    }

    fn trunk() -> TrunkSpec {
        serde_json::from_value(serde_json::json!({"name": "carrier", "host": "sip.example.com"}))
            .unwrap()
    }

    #[test]
    fn trunk_checks_name_the_field() {
        assert!(check_trunk(&trunk()).is_ok());
        let field = |t: TrunkSpec| check_trunk(&t).unwrap_err().body.field.unwrap();
        assert_eq!(
            field(TrunkSpec {
                name: "Carrier".into(),
                ..trunk()
            }),
            "name"
        );
        assert_eq!(
            field(TrunkSpec {
                name: "x".repeat(65),
                ..trunk()
            }),
            "name"
        );
        assert_eq!(
            field(TrunkSpec {
                host: "sip example".into(),
                ..trunk()
            }),
            "host"
        );
        assert_eq!(field(TrunkSpec { port: 0, ..trunk() }), "port");
        assert_eq!(
            field(TrunkSpec {
                transport: "tls".into(),
                ..trunk()
            }),
            "transport"
        );
        assert_eq!(
            field(TrunkSpec {
                username: Some("u".into()),
                ..trunk()
            }),
            "password"
        );
        assert_eq!(
            field(TrunkSpec {
                password: Some("p".into()),
                ..trunk()
            }),
            "username"
        );
        assert_eq!(
            field(TrunkSpec {
                allow_from: vec!["10.0.0.0/8".into(), "::1".into(), "nope".into()],
                ..trunk()
            }),
            "allow_from[2]"
        );
    }

    #[test]
    fn filters_number_their_parameters() {
        let mut f = Filters::default();
        assert_eq!(f.sql(), "");
        f.text("agent =", "a".into());
        f.raw("status <> 'ended'");
        f.int("started_ms >=", 5);
        assert_eq!(
            f.sql(),
            " WHERE agent = $1 AND status <> 'ended' AND started_ms >= $2"
        );
    }
}
