//! The agents' brains: which brain serves a call, built from the
//! configuration and the shared models.
//!
//! Built-in agents: `demo` (a keyword script) and one per flow template
//! (`appointment_booking`, `lead_qualification`, `support_faq`, the last
//! with its knowledge base). Configured agents (`[[agents]]`) add to them or
//! replace one of the same name. Flows are parsed and validated once at
//! startup: a flow with problems stops startup with every problem listed.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use tracing::{info, warn};
use vocelio_pipelines::brain::flow::{
    self, Flow, FlowBrain, FlowError, FlowServices, Severity, ValidFlow,
};
use vocelio_pipelines::brain::intents::IntentClassify;
use vocelio_pipelines::brain::kb::Retriever;
use vocelio_pipelines::brain::llm::ChatModel;
use vocelio_pipelines::brain::tools::ToolRunner;
use vocelio_pipelines::brain::Brain;

use crate::config::{self, Config};

/// How one agent thinks.
enum Kind {
    Demo,
    Flow {
        flow: Arc<ValidFlow>,
        intents: Option<Arc<dyn IntentClassify>>,
        kb: Option<Arc<dyn Retriever>>,
    },
}

/// Every agent's brain recipe, and the models they share.
pub struct Brains {
    agents: BTreeMap<String, Kind>,
    llm: Option<Arc<dyn ChatModel>>,
    tools: Option<Arc<dyn ToolRunner>>,
}

impl std::fmt::Debug for Brains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brains")
            .field("agents", &self.agents.keys().collect::<Vec<_>>())
            .field("llm", &self.llm)
            .finish()
    }
}

/// One problem, for a log line: `[code] node `x`: message`.
fn describe(p: &flow::FlowProblem) -> String {
    let at = match (&p.node, p.edge) {
        (Some(n), _) => format!(" node `{n}`"),
        (None, Some(e)) => format!(" edge #{e}"),
        _ => String::new(),
    };
    format!("[{:?}]{at}: {}", p.code, p.message)
}

/// Parse and validate a flow document; the error lists every problem.
pub fn load_flow(json: &str, origin: &str) -> Result<Arc<ValidFlow>> {
    match Flow::parse(json) {
        Ok(flow) => {
            for p in flow.warnings() {
                warn!(flow = origin, problem = %describe(p), "flow warning");
            }
            Ok(Arc::new(flow))
        }
        Err(FlowError::Invalid { problems }) => {
            let list: Vec<String> = problems
                .iter()
                .filter(|p| p.severity == Severity::Error)
                .map(|p| format!("  - {}", describe(p)))
                .collect();
            bail!(
                "flow {origin} has {} problem(s):\n{}",
                list.len(),
                list.join("\n")
            )
        }
        Err(e) => bail!("flow {origin}: {e}"),
    }
}

fn flow_source(name_or_path: &str) -> Result<(String, String)> {
    if let Some((_, json)) = flow::templates()
        .into_iter()
        .find(|(n, _)| *n == name_or_path)
    {
        return Ok((format!("template {name_or_path}"), json.to_string()));
    }
    let p = Path::new(name_or_path);
    let json = std::fs::read_to_string(p).with_context(|| {
        let names: Vec<_> = flow::templates().into_iter().map(|(n, _)| n).collect();
        format!(
            "flow {name_or_path:?} is neither a built-in template ({}) nor a readable file",
            names.join(", ")
        )
    })?;
    Ok((p.display().to_string(), json))
}

impl Brains {
    /// Build every agent's recipe. Bad flows or agent settings stop startup.
    pub fn load(config: &Config) -> Result<Brains> {
        let mut defs: BTreeMap<String, config::Agent> = BTreeMap::new();
        for (name, _) in flow::templates() {
            defs.insert(
                name.to_string(),
                config::Agent {
                    name: name.to_string(),
                    flow: Some(name.to_string()),
                    kb: None,
                    llm: None,
                },
            );
        }
        for a in &config.agents {
            defs.insert(a.name.clone(), a.clone());
        }
        let mut agents = BTreeMap::new();
        agents.insert("demo".to_string(), Kind::Demo);
        for (name, def) in defs {
            let kind = if let Some(f) = &def.flow {
                let (origin, json) = flow_source(f)?;
                let flow = load_flow(&json, &origin).with_context(|| format!("agent {name}"))?;
                Kind::Flow {
                    flow,
                    intents: None,
                    kb: None,
                }
            } else {
                bail!("agent {name}: LLM agents are not available in this build");
            };
            agents.insert(name, kind);
        }
        info!(agents = ?agents.keys().collect::<Vec<_>>(), "agents loaded");
        Ok(Brains {
            agents,
            llm: None,
            tools: None,
        })
    }

    /// Every agent's name.
    pub fn names(&self) -> Vec<&str> {
        self.agents.keys().map(String::as_str).collect()
    }

    /// Whether `agent` exists.
    pub fn has(&self, agent: &str) -> bool {
        self.agents.contains_key(agent)
    }

    /// A fresh brain for one call to `agent` (`None`: no such agent).
    pub fn brain_for(&self, agent: &str) -> Option<Box<dyn Brain>> {
        Some(match self.agents.get(agent)? {
            Kind::Demo => Box::new(crate::agents::demo_brain()),
            Kind::Flow { flow, intents, kb } => {
                let services = FlowServices {
                    intents: intents.clone(),
                    kb: kb.clone(),
                    llm: self.llm.clone(),
                    tools: self.tools.clone(),
                    ..FlowServices::default()
                };
                Box::new(FlowBrain::new(Arc::clone(flow), services))
            }
        })
    }
}
