//! `/v1/flows`: conversation flow documents: store them, check them, try
//! them in text, and start from the built-in templates.

use crate::chat::{self, ChatResult};
use crate::db::new_id;
use crate::error::{ApiError, ApiJson, ApiQuery, ApiResult, ErrorResponse};
use crate::model::{AgentSpec, BargeInSpec, BrainSpec, EndpointingSpec, ResolvedAgent};
use crate::pagination::{Page, PageQuery};
use crate::routes::agents::{all_agents, valid_name};
use crate::routing;
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use vocelio_pipelines::brain::flow::{self, Flow, FlowError, FlowProblem, Severity};

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_flows, create_flow))
        .routes(routes!(list_templates))
        .routes(routes!(validate_flow))
        .routes(routes!(simulate_flow))
        .routes(routes!(get_flow, replace_flow, delete_flow))
}

/// One problem found in a flow document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// Machine code: `duplicate_id`, `unknown_node`, `unreachable_node`,
    /// `dead_end`, `bad_outcome`, `missing_field`, … (`parse_error` when the
    /// document is not a flow at all).
    pub code: String,
    /// `error` (the flow cannot run) or `warning`.
    pub severity: String,
    /// The node concerned, by id.
    pub node: Option<String>,
    /// The edge concerned, by position in `edges`.
    pub edge: Option<usize>,
    /// The field concerned (`start`, `to`, `max_attempts`; for parse errors
    /// the JSON path in the document).
    pub field: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

impl From<&FlowProblem> for Problem {
    fn from(p: &FlowProblem) -> Self {
        let name = |v: serde_json::Result<Value>| {
            v.ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        };
        Problem {
            code: name(serde_json::to_value(p.code)),
            severity: name(serde_json::to_value(p.severity)),
            node: p.node.clone(),
            edge: p.edge,
            field: p.field.clone(),
            message: p.message.clone(),
        }
    }
}

/// A flow to store.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowBody {
    /// Unique name, `[a-z0-9_-]`, 1–64 characters. Agents name the flow by
    /// it (or by id) in `brain.flow`.
    pub name: String,
    /// The flow document (the format of `GET /v1/flows/templates`).
    #[schema(value_type = Object)]
    pub document: Value,
}

/// A stored flow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FlowView {
    /// Id (`fl_…`).
    pub id: String,
    /// Unique name.
    pub name: String,
    /// The document, as stored.
    #[schema(value_type = Object)]
    pub document: Value,
    /// Created, ms since the epoch.
    pub created_ms: i64,
    /// Last replaced, ms since the epoch.
    pub updated_ms: i64,
    /// Warnings validation found (a stored flow has no errors).
    pub problems: Vec<Problem>,
}

/// A document to check.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateBody {
    /// The flow document.
    #[schema(value_type = Object)]
    pub document: Value,
}

/// What validation found.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Validation {
    /// No problem of `error` severity.
    pub valid: bool,
    /// Every problem, errors and warnings.
    pub problems: Vec<Problem>,
}

/// A built-in flow.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Template {
    /// Name: use it as `template:NAME` in an agent's `brain.flow`.
    pub name: String,
    /// What it does.
    pub description: Option<String>,
    /// The document (a starting point for your own flows).
    #[schema(value_type = Object)]
    pub document: Value,
}

/// A flow to try in text.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimulateBody {
    /// A stored flow's id or name, or `template:NAME`.
    #[serde(default)]
    pub flow: Option<String>,
    /// Or a flow document, not stored.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub document: Option<Value>,
    /// What the caller says, turn by turn (1–50 messages of 1–2000 characters).
    pub messages: Vec<String>,
}

/// Filters for the flows list.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlowFilter {
    /// Flows whose name contains this.
    pub name: Option<String>,
}

/// Every problem in `document` (a parse error is one `parse_error` problem).
pub fn problems_of(document: &Value) -> Vec<Problem> {
    match Flow::from_json(&document.to_string()) {
        Ok(f) => flow::validate(&f).iter().map(Problem::from).collect(),
        Err(e) => vec![parse_problem(&e)],
    }
}

fn parse_problem(e: &FlowError) -> Problem {
    let (field, message) = match e {
        FlowError::Parse { path, message, .. } => (path.clone(), message.clone()),
        other => (".".to_string(), other.to_string()),
    };
    Problem {
        code: "parse_error".into(),
        severity: "error".into(),
        node: None,
        edge: None,
        field: Some(field),
        message,
    }
}

/// Check a document to store: parse errors are 422 on `document.PATH`,
/// validation errors a 422 on `document` with every problem in
/// `details.problems`. Returns the warnings.
pub fn check_document(document: &Value) -> ApiResult<Vec<Problem>> {
    let flow = Flow::from_json(&document.to_string()).map_err(|e| {
        let p = parse_problem(&e);
        let field = match p.field.as_deref() {
            None | Some(".") | Some("") => "document".to_string(),
            Some(path) => format!("document.{path}"),
        };
        ApiError::validation(field, p.message)
    })?;
    let problems = flow::validate(&flow);
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    let views: Vec<Problem> = problems.iter().map(Problem::from).collect();
    if errors > 0 {
        let first = problems
            .iter()
            .find(|p| p.severity == Severity::Error)
            .map(|p| p.message.clone())
            .unwrap_or_default();
        return Err(ApiError::validation(
            "document",
            format!("the flow has {errors} error(s); the first: {first}"),
        )
        .with_details(json!({ "problems": views })));
    }
    Ok(views)
}

fn check_name(name: &str) -> ApiResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::validation(
            "name",
            "must be 1 to 64 characters of a-z, 0-9, _ and -",
        ))
    }
}

type FlowRow = (String, String, String, i64, i64);

fn view(r: FlowRow) -> ApiResult<FlowView> {
    let document: Value = serde_json::from_str(&r.2).map_err(ApiError::internal)?;
    let problems = problems_of(&document);
    Ok(FlowView {
        id: r.0,
        name: r.1,
        document,
        created_ms: r.3,
        updated_ms: r.4,
        problems,
    })
}

async fn load(s: &AppState, id: &str) -> ApiResult<FlowView> {
    let row: Option<FlowRow> = sqlx::query_as(
        "SELECT id, name, document, created_ms, updated_ms FROM flows WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&s.db.pool)
    .await?;
    view(row.ok_or_else(|| ApiError::not_found(format!("flow {id}")))?)
}

async fn name_taken(s: &AppState, name: &str, except: Option<&str>) -> ApiResult<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM flows WHERE name = $1")
        .bind(name)
        .fetch_optional(&s.db.pool)
        .await?;
    Ok(row.is_some_and(|(id,)| Some(id.as_str()) != except))
}

/// Names of the agents whose brain names this flow (by id or by `name`).
async fn agents_using(s: &AppState, id: &str, name: &str) -> ApiResult<Vec<String>> {
    Ok(all_agents(s)
        .await?
        .into_iter()
        .filter(|a| matches!(&a.spec.brain, BrainSpec::Flow { flow } if flow == id || flow == name))
        .map(|a| a.spec.name)
        .collect())
}

fn like_pattern(needle: &str) -> String {
    let mut p = String::from("%");
    for c in needle.chars() {
        if matches!(c, '\\' | '%' | '_') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// List flows, by name.
#[utoipa::path(get, path = "/v1/flows", tag = "flows",
    params(PageQuery, FlowFilter),
    responses((status = 200, body = Page<FlowView>), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn list_flows(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(filter): ApiQuery<FlowFilter>,
) -> ApiResult<axum::Json<Page<FlowView>>> {
    let page = page.checked()?;
    let pattern = like_pattern(filter.name.as_deref().unwrap_or(""));
    let (total,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM flows WHERE name LIKE $1 ESCAPE '\\'")
            .bind(&pattern)
            .fetch_one(&s.db.pool)
            .await?;
    let rows: Vec<FlowRow> = sqlx::query_as(
        "SELECT id, name, document, created_ms, updated_ms FROM flows WHERE name LIKE $1 ESCAPE '\\' \
         ORDER BY name, id LIMIT $2 OFFSET $3",
    )
    .bind(&pattern)
    .bind(page.limit)
    .bind(page.offset)
    .fetch_all(&s.db.pool)
    .await?;
    let items = rows.into_iter().map(view).collect::<ApiResult<_>>()?;
    Ok(axum::Json(Page::new(items, total, page)))
}

/// Store a flow. Errors in the document are a 422 listing every problem
/// (`details.problems`); warnings come back in `problems`.
#[utoipa::path(post, path = "/v1/flows", tag = "flows", request_body = FlowBody,
    responses((status = 201, body = FlowView), (status = 409, body = ErrorResponse),
        (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn create_flow(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<FlowBody>,
) -> ApiResult<(StatusCode, axum::Json<FlowView>)> {
    check_name(&body.name)?;
    let problems = check_document(&body.document)?;
    if name_taken(&s, &body.name, None).await? {
        return Err(ApiError::conflict(format!(
            "a flow is already called {:?}",
            body.name
        )));
    }
    let (id, now) = (new_id("fl"), s.now_ms());
    sqlx::query(
        "INSERT INTO flows (id, name, document, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(&id)
    .bind(&body.name)
    .bind(body.document.to_string())
    .bind(now)
    .execute(&s.db.pool)
    .await?;
    tracing::info!(flow = %id, name = %body.name, "flow created");
    Ok((
        StatusCode::CREATED,
        axum::Json(FlowView {
            id,
            name: body.name,
            document: body.document,
            created_ms: now,
            updated_ms: now,
            problems,
        }),
    ))
}

/// The built-in flows.
#[utoipa::path(get, path = "/v1/flows/templates", tag = "flows",
    responses((status = 200, body = [Template])),
    security(("bearer" = [])))]
async fn list_templates() -> ApiResult<axum::Json<Vec<Template>>> {
    flow::templates()
        .into_iter()
        .map(|(name, json)| {
            let document: Value = serde_json::from_str(json).map_err(ApiError::internal)?;
            let description = Flow::from_json(json)
                .map_err(ApiError::internal)?
                .description;
            Ok(Template {
                name: name.into(),
                description: (!description.is_empty()).then_some(description),
                document,
            })
        })
        .collect::<ApiResult<Vec<_>>>()
        .map(axum::Json)
}

/// Check a flow document without storing it: every problem, each naming
/// its node or edge.
#[utoipa::path(post, path = "/v1/flows/validate", tag = "flows", request_body = ValidateBody,
    responses((status = 200, body = Validation), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn validate_flow(ApiJson(body): ApiJson<ValidateBody>) -> axum::Json<Validation> {
    let problems = problems_of(&body.document);
    axum::Json(Validation {
        valid: !problems.iter().any(|p| p.severity == "error"),
        problems,
    })
}

fn simulator(flow: String) -> AgentSpec {
    AgentSpec {
        name: "flow-simulator".into(),
        language: "en-US".into(),
        voice: None,
        greeting: None,
        brain: BrainSpec::Flow { flow },
        tools: Vec::new(),
        endpointing: EndpointingSpec::default(),
        barge_in: BargeInSpec::default(),
    }
}

/// Try a flow in text: a stored flow, a template or a document, through
/// the engine's flow brain. The transcript is as for agent chat; the
/// flow's trace is `insights.trace`.
#[utoipa::path(post, path = "/v1/flows/simulate", tag = "flows", request_body = SimulateBody,
    responses((status = 200, body = ChatResult), (status = 422, body = ErrorResponse),
        (status = 503, description = "The brain could not start or did not answer within 30 s", body = ErrorResponse)),
    security(("bearer" = [])))]
async fn simulate_flow(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<SimulateBody>,
) -> ApiResult<axum::Json<ChatResult>> {
    let agent = match (body.flow, body.document) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(ApiError::validation(
                "flow",
                "give either flow (id, name or template:NAME) or document",
            ))
        }
        (None, Some(document)) => {
            check_document(&document)?;
            let id = document
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("document")
                .to_string();
            ResolvedAgent {
                spec: simulator(id),
                flow: Some(document),
            }
        }
        (Some(flow), None) => {
            let spec = simulator(flow.clone());
            if let Some(t) = flow.strip_prefix("template:") {
                if !flow::templates().iter().any(|(n, _)| *n == t) {
                    return Err(ApiError::validation(
                        "flow",
                        format!("no built-in template {t:?}: see GET /v1/flows/templates"),
                    ));
                }
                ResolvedAgent { spec, flow: None }
            } else {
                routing::resolve(&s, spec).await.map_err(|e| {
                    if e.body.field.as_deref() == Some("brain.flow") {
                        ApiError::validation("flow", e.body.message)
                    } else {
                        e
                    }
                })?
            }
        }
    };
    chat::check_messages(&body.messages)?;
    Ok(axum::Json(chat::chat(&s, agent, body.messages).await?))
}

/// One flow.
#[utoipa::path(get, path = "/v1/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "Flow id")),
    responses((status = 200, body = FlowView), (status = 404, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn get_flow(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<FlowView>> {
    Ok(axum::Json(load(&s, &id).await?))
}

/// Replace a flow. Agents using it take the new document for new calls.
#[utoipa::path(put, path = "/v1/flows/{id}", tag = "flows", request_body = FlowBody,
    params(("id" = String, Path, description = "Flow id")),
    responses((status = 200, body = FlowView), (status = 404, body = ErrorResponse),
        (status = 409, body = ErrorResponse), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn replace_flow(
    State(s): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<FlowBody>,
) -> ApiResult<axum::Json<FlowView>> {
    let old = load(&s, &id).await?;
    check_name(&body.name)?;
    let problems = check_document(&body.document)?;
    if body.name != old.name {
        if name_taken(&s, &body.name, Some(&id)).await? {
            return Err(ApiError::conflict(format!(
                "a flow is already called {:?}",
                body.name
            )));
        }
        let users: Vec<String> = all_agents(&s)
            .await?
            .into_iter()
            .filter(|a| matches!(&a.spec.brain, BrainSpec::Flow { flow } if *flow == old.name))
            .map(|a| a.spec.name)
            .collect();
        if !users.is_empty() {
            return Err(ApiError::conflict(format!(
                "agents {users:?} use this flow by name {:?}: it cannot be renamed",
                old.name
            )));
        }
    }
    let now = s.now_ms();
    sqlx::query("UPDATE flows SET name = $1, document = $2, updated_ms = $3 WHERE id = $4")
        .bind(&body.name)
        .bind(body.document.to_string())
        .bind(now)
        .bind(&id)
        .execute(&s.db.pool)
        .await?;
    tracing::info!(flow = %id, name = %body.name, "flow replaced");
    routing::apply(&s).await?;
    Ok(axum::Json(FlowView {
        id,
        name: body.name,
        document: body.document,
        created_ms: old.created_ms,
        updated_ms: now,
        problems,
    }))
}

/// Delete a flow no agent uses.
#[utoipa::path(delete, path = "/v1/flows/{id}", tag = "flows",
    params(("id" = String, Path, description = "Flow id")),
    responses((status = 204), (status = 404, body = ErrorResponse), (status = 409, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn delete_flow(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let flow = load(&s, &id).await?;
    let users = agents_using(&s, &id, &flow.name).await?;
    if !users.is_empty() {
        return Err(ApiError::conflict(format!(
            "agents {users:?} use this flow"
        )));
    }
    sqlx::query("DELETE FROM flows WHERE id = $1")
        .bind(&id)
        .execute(&s.db.pool)
        .await?;
    tracing::info!(flow = %id, "flow deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern(""), "%%");
        assert_eq!(like_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }

    #[test]
    fn parse_errors_name_the_document_path() {
        let e = check_document(&json!({"id": "x", "name": "X", "start": "a",
            "nodes": [{"id": "a", "type": "ask", "prompt": "p", "variable": "v", "validate": "text", "max_attempts": "three"}]}))
        .unwrap_err();
        assert_eq!(
            e.body.field.as_deref(),
            Some("document.nodes[0].max_attempts"),
            "{:?}",
            e.body
        );
        let e = check_document(&json!("not a flow")).unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("document"));
        let p = problems_of(&json!([]));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].code, "parse_error");
    }
}
