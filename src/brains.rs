//! The agents' brains: which brain serves a call, built from the
//! configuration and the shared models.
//!
//! Built-in agents:
//! - `demo`: a keyword script;
//! - one per flow template: `appointment_booking`, `lead_qualification`,
//!   `support_faq` (the default, answering from its knowledge base);
//! - `assistant`: a free-form conversation with the local LLM, given the
//!   support knowledge base as context.
//!
//! Configured agents (`[[agents]]`) add to them or replace one of the same
//! name. Flows and LLM settings are checked once at startup: a flow with
//! problems stops startup with every problem listed.

use anyhow::{anyhow, bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};
use vocelio_pipelines::brain::embed::Embedder;
use vocelio_pipelines::brain::flow::{
    self, Flow, FlowBrain, FlowError, FlowServices, Severity, ValidFlow,
};
use vocelio_pipelines::brain::intents::{IntentClassifier, IntentClassify};
use vocelio_pipelines::brain::kb::{Document, KnowledgeBase, Retriever};
use vocelio_pipelines::brain::llm::ChatModel;
use vocelio_pipelines::brain::llm_brain::{LlmBrain, LlmBrainConfig};
use vocelio_pipelines::brain::local_llm::{LocalLlm, LocalLlmConfig};
use vocelio_pipelines::brain::openai::{OpenAiChat, OpenAiConfig};
use vocelio_pipelines::brain::tools::{HttpToolRunner, ToolRunner};
use vocelio_pipelines::brain::Brain;
use vocelio_pipelines::models::ModelDir;

use crate::config::{self, Config};

/// The built-in free-form agent's instructions.
const ASSISTANT_PROMPT: &str = "You are Ava, a friendly phone agent for Acme Home Internet. \
Answer in one or two short sentences, using only the facts in the knowledge base below. \
If you do not know, say you will pass the caller to a colleague.";

/// Which model an LLM agent talks to.
enum Provider {
    /// The shared local model.
    Local,
    /// Its own OpenAI-compatible server.
    OpenAi(Arc<OpenAiChat>),
}

/// How one agent thinks.
enum Kind {
    Demo,
    Flow {
        flow: Arc<ValidFlow>,
        intents: Option<Arc<dyn IntentClassify>>,
    },
    Llm {
        config: LlmBrainConfig,
        provider: Provider,
    },
}

/// One agent: how it thinks and what it knows.
struct AgentBrain {
    kind: Kind,
    kb_source: KbSource,
    kb: Option<Arc<dyn Retriever>>,
}

/// Documents behind an agent's knowledge base.
#[derive(Debug, Clone)]
enum KbSource {
    None,
    /// A built-in document.
    Builtin(&'static str),
    /// A folder of `.md`/`.txt` files.
    Folder(PathBuf),
}

/// The models every agent shares, loaded once (they take a while: the
/// agents thread loads them after SIP and HTTP are up).
#[derive(Default, Clone)]
pub struct SharedModels {
    /// Sentence embeddings (intents, knowledge bases).
    pub embedder: Option<Arc<Embedder>>,
    /// The local LLM.
    pub llm: Option<Arc<dyn ChatModel>>,
    /// Webhook tools.
    pub tools: Option<Arc<dyn ToolRunner>>,
}

impl std::fmt::Debug for SharedModels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedModels")
            .field("embedder", &self.embedder.is_some())
            .field("llm", &self.llm.as_ref().map(|l| l.name().to_string()))
            .finish()
    }
}

/// The local LLM as configured (`brain.local_llm_model`, relative to the
/// models folder unless absolute).
pub fn load_local_llm(config: &Config, models: &ModelDir) -> Result<Arc<dyn ChatModel>> {
    let path = if config.brain.local_llm_model.is_absolute() {
        config.brain.local_llm_model.clone()
    } else {
        models.root().join(&config.brain.local_llm_model)
    };
    let started = std::time::Instant::now();
    let llm = LocalLlm::load(
        &path,
        LocalLlmConfig {
            threads: config.brain.llm_threads,
            workers: config.brain.llm_workers,
            ..LocalLlmConfig::default()
        },
    )
    .with_context(|| format!("loading the local LLM {}", path.display()))?;
    info!(model = %path.display(), ms = started.elapsed().as_millis() as u64, "local LLM ready");
    Ok(Arc::new(llm))
}

/// Load what `brain` asks for. A model that is asked for but fails to load
/// is logged and left out (the agents that need it say so), unless
/// `required`.
pub fn load_shared(config: &Config, models: &ModelDir, required: bool) -> Result<SharedModels> {
    let mut shared = SharedModels::default();
    if config.brain.embeddings {
        match Embedder::load(models) {
            Ok(e) => shared.embedder = Some(Arc::new(e)),
            Err(e) if required => return Err(anyhow!(e).context("loading the embedding model")),
            Err(e) => {
                warn!(error = %e, "no embedding model: intents match their examples as words, knowledge bases are off")
            }
        }
    }
    if config.brain.local_llm {
        match load_local_llm(config, models) {
            Ok(l) => shared.llm = Some(l),
            Err(e) if required => return Err(e),
            Err(e) => warn!(
                error = format!("{e:#}"),
                "no local LLM: llm nodes and local LLM agents will fail politely"
            ),
        }
    }
    match HttpToolRunner::new(std::time::Duration::from_secs(2)) {
        Ok(t) => shared.tools = Some(Arc::new(t)),
        Err(e) => warn!(error = %e, "no HTTP client for tools: tool nodes will fail"),
    }
    Ok(shared)
}

/// Every agent's brain recipe, and the models they share.
pub struct Brains {
    agents: BTreeMap<String, AgentBrain>,
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

/// `[agents.llm]`: `provider`, an optional `[openai]` table, and the brain's settings.
fn llm_kind(name: &str, table: &toml::Table) -> Result<Kind> {
    let mut table = table.clone();
    let provider = match table.remove("provider") {
        None => "local".to_string(),
        Some(toml::Value::String(s)) => s,
        Some(other) => bail!("agents `{name}`: llm.provider must be a string, not {other}"),
    };
    let openai = table.remove("openai");
    let config: LlmBrainConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
        .map_err(|e| anyhow!("agents `{name}`: llm.{}: {}", e.path(), e.inner().message()))?;
    config
        .validate()
        .map_err(|e| anyhow!("agents `{name}`: llm: {e}"))?;
    let provider = match (provider.as_str(), openai) {
        ("local", None) => Provider::Local,
        ("local", Some(_)) => bail!("agents `{name}`: llm.openai is only for provider = \"openai\""),
        ("openai", Some(t)) => {
            let c: OpenAiConfig = serde_path_to_error::deserialize(t).map_err(|e| {
                anyhow!(
                    "agents `{name}`: llm.openai.{}: {}",
                    e.path(),
                    e.inner().message()
                )
            })?;
            Provider::OpenAi(Arc::new(
                OpenAiChat::new(c).map_err(|e| anyhow!("agents `{name}`: llm.openai: {e}"))?,
            ))
        }
        ("openai", None) => bail!(
            "agents `{name}`: llm.provider = \"openai\" needs an [agents.llm.openai] table (base_url, model)"
        ),
        (other, _) => {
            bail!("agents `{name}`: llm.provider {other:?} must be \"local\" or \"openai\"")
        }
    };
    Ok(Kind::Llm { config, provider })
}

impl Brains {
    /// Build every agent's recipe. Bad flows or agent settings stop startup.
    pub fn load(config: &Config) -> Result<Brains> {
        let mut agents = BTreeMap::new();
        agents.insert(
            "demo".to_string(),
            AgentBrain {
                kind: Kind::Demo,
                kb_source: KbSource::None,
                kb: None,
            },
        );
        for (name, json) in flow::templates() {
            let flow = load_flow(json, &format!("template {name}"))?;
            let kb_source = if name == "support_faq" {
                KbSource::Builtin(flow::templates::SUPPORT_FAQ_KB)
            } else {
                KbSource::None
            };
            agents.insert(
                name.to_string(),
                AgentBrain {
                    kind: Kind::Flow {
                        flow,
                        intents: None,
                    },
                    kb_source,
                    kb: None,
                },
            );
        }
        let mut assistant = LlmBrainConfig::new(ASSISTANT_PROMPT);
        assistant.greeting = Some("Hi, this is Ava at Acme Home Internet. How can I help?".into());
        agents.insert(
            "assistant".to_string(),
            AgentBrain {
                kind: Kind::Llm {
                    config: assistant,
                    provider: Provider::Local,
                },
                kb_source: KbSource::Builtin(flow::templates::SUPPORT_FAQ_KB),
                kb: None,
            },
        );
        for def in &config.agents {
            agents.insert(def.name.clone(), Self::configured(def)?);
        }
        info!(agents = ?agents.keys().collect::<Vec<_>>(), "agents loaded");
        Ok(Brains {
            agents,
            llm: None,
            tools: None,
        })
    }

    fn configured(def: &config::Agent) -> Result<AgentBrain> {
        let name = &def.name;
        let kind = match (&def.flow, &def.llm) {
            (Some(f), None) => {
                let (origin, json) = flow_source(f)?;
                let flow = load_flow(&json, &origin).with_context(|| format!("agent {name}"))?;
                Kind::Flow {
                    flow,
                    intents: None,
                }
            }
            (None, Some(t)) => llm_kind(name, t)?,
            _ => bail!("agents `{name}`: needs exactly one of flow or llm"),
        };
        let kb_source = match (&def.kb, def.flow.as_deref()) {
            (Some(dir), _) => KbSource::Folder(dir.clone()),
            (None, Some("support_faq")) => KbSource::Builtin(flow::templates::SUPPORT_FAQ_KB),
            _ => KbSource::None,
        };
        Ok(AgentBrain {
            kind,
            kb_source,
            kb: None,
        })
    }

    /// Give the agents the shared models: build each flow's intent
    /// classifier and each knowledge base. A knowledge base that cannot be
    /// read is an error; without embeddings, intents fall back to matching
    /// their example phrases and knowledge-base answers find nothing (logged).
    pub fn attach(&mut self, models: SharedModels) -> Result<()> {
        for (name, agent) in &mut self.agents {
            if matches!(
                agent.kind,
                Kind::Llm {
                    provider: Provider::Local,
                    ..
                }
            ) && models.llm.is_none()
            {
                warn!(agent = %name, "this agent needs the local LLM, which is not loaded: its calls get the fallback line");
            }
            let Some(embedder) = &models.embedder else {
                if !matches!(agent.kb_source, KbSource::None) {
                    warn!(agent = %name, "no embedding model: knowledge-base answers will find nothing");
                }
                continue;
            };
            if let Kind::Flow { flow, intents } = &mut agent.kind {
                let defs = &flow.flow().intents;
                if !defs.is_empty() {
                    let c = IntentClassifier::new(Arc::clone(embedder), defs)
                        .with_context(|| format!("agent {name}: intents"))?;
                    *intents = Some(Arc::new(c));
                }
            }
            let docs = match &agent.kb_source {
                KbSource::None => continue,
                KbSource::Builtin(text) => vec![Document {
                    source: format!("{name}.md"),
                    text: text.to_string(),
                }],
                KbSource::Folder(dir) => vocelio_pipelines::brain::kb::load_documents(dir)
                    .with_context(|| format!("agent {name}: knowledge base {}", dir.display()))?,
            };
            let started = std::time::Instant::now();
            let base = KnowledgeBase::new(Arc::clone(embedder), &docs)
                .with_context(|| format!("agent {name}: knowledge base"))?;
            info!(agent = %name, documents = docs.len(), passages = base.len(), ms = started.elapsed().as_millis() as u64, "knowledge base ready");
            agent.kb = Some(Arc::new(base));
        }
        self.llm = models.llm;
        self.tools = models.tools;
        Ok(())
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
        let a = self.agents.get(agent)?;
        Some(match &a.kind {
            Kind::Demo => Box::new(crate::agents::demo_brain()),
            Kind::Flow { flow, intents } => {
                let services = FlowServices {
                    intents: intents.clone(),
                    kb: a.kb.clone(),
                    llm: self.llm.clone(),
                    tools: self.tools.clone(),
                    ..FlowServices::default()
                };
                Box::new(FlowBrain::new(Arc::clone(flow), services))
            }
            Kind::Llm { config, provider } => {
                let model: Arc<dyn ChatModel> = match provider {
                    Provider::OpenAi(m) => Arc::clone(m) as Arc<dyn ChatModel>,
                    Provider::Local => match &self.llm {
                        Some(m) => Arc::clone(m),
                        None => Arc::new(Unavailable),
                    },
                };
                // The config was validated at load.
                let mut brain = LlmBrain::new(config.clone(), model).ok()?;
                if let Some(kb) = &a.kb {
                    brain = brain.with_retriever(Arc::clone(kb));
                }
                if let Some(t) = &self.tools {
                    brain = brain.with_tool_runner(Arc::clone(t));
                }
                Box::new(brain)
            }
        })
    }
}

/// Stands in for the local LLM when it failed to load: every request fails
/// at once, so the brain says its fallback line.
#[derive(Debug)]
struct Unavailable;

impl ChatModel for Unavailable {
    fn name(&self) -> &str {
        "unavailable"
    }

    fn chat(
        &self,
        _request: vocelio_pipelines::brain::llm::ChatRequest,
    ) -> crossbeam_channel::Receiver<vocelio_pipelines::brain::llm::LlmEvent> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = tx.send(vocelio_pipelines::brain::llm::LlmEvent::Failed(
            vocelio_pipelines::brain::llm::LlmError::Model {
                reason: "the local LLM is not loaded (see the startup log)".into(),
            },
        ));
        rx
    }
}
