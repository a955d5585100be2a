//! The routing the engine runs with, read from the database and pushed to
//! the engine after every change to agents, numbers or trunks.

use crate::error::{ApiError, ApiResult};
use crate::model::{AgentSpec, BrainSpec, ResolvedAgent, Routing, TrunkSpec};
use crate::state::AppState;

/// Everything the engine needs, from the database.
pub async fn load(s: &AppState) -> ApiResult<Routing> {
    let agents: Vec<(String,)> = sqlx::query_as("SELECT spec FROM agents ORDER BY name")
        .fetch_all(&s.db.pool)
        .await?;
    let mut resolved = Vec::with_capacity(agents.len());
    for (j,) in agents {
        let spec = serde_json::from_str::<AgentSpec>(&j).map_err(ApiError::internal)?;
        resolved.push(resolve(s, spec).await?);
    }
    let agents = resolved;
    let numbers: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT n.e164, a.name, n.provider FROM numbers n JOIN agents a ON a.id = n.agent_id ORDER BY n.e164",
    )
    .fetch_all(&s.db.pool)
    .await?;
    let trunks: Vec<(String,)> = sqlx::query_as("SELECT spec FROM trunks ORDER BY name")
        .fetch_all(&s.db.pool)
        .await?;
    let trunks = trunks
        .into_iter()
        .map(|(j,)| serde_json::from_str::<TrunkSpec>(&j).map_err(ApiError::internal))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut r = Routing {
        agents,
        trunks,
        ..Routing::default()
    };
    for (number, agent, provider) in numbers {
        if provider == "twilio" {
            r.twilio_numbers.push((number, agent));
        } else {
            r.sip_numbers.push((number, agent));
        }
    }
    Ok(r)
}

/// Push the current routing to the engine (503 if it refuses).
pub async fn apply(s: &AppState) -> ApiResult<()> {
    let r = load(s).await?;
    s.engine
        .apply(r)
        .await
        .map_err(|e| ApiError::unavailable(format!("the engine did not take the new routing: {e}")))
}

/// Look up the stored flow an agent names (by id or name). Templates
/// (`template:NAME`), LLM and built-in brains need nothing. A flow that is
/// not there is a 422 on `brain.flow`.
pub async fn resolve(s: &AppState, spec: AgentSpec) -> ApiResult<ResolvedAgent> {
    let flow = match &spec.brain {
        BrainSpec::Flow { flow } if !flow.starts_with("template:") => {
            let row: Option<(String,)> =
                sqlx::query_as("SELECT document FROM flows WHERE id = $1 OR name = $1")
                    .bind(flow)
                    .fetch_optional(&s.db.pool)
                    .await?;
            let Some((doc,)) = row else {
                return Err(ApiError::validation(
                    "brain.flow",
                    format!("no flow {flow:?}: create it under /v1/flows, or use template:NAME"),
                ));
            };
            Some(serde_json::from_str(&doc).map_err(ApiError::internal)?)
        }
        _ => None,
    };
    Ok(ResolvedAgent { spec, flow })
}
