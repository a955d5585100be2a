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
use vocelio_control_api::model::{AgentSpec, BrainSpec, ResolvedAgent};
use vocelio_pipelines::endpointing::EndpointConfig;
use vocelio_pipelines::runner::AgentConfig;

/// The built-in free-form agent's instructions.
const ASSISTANT_PROMPT: &str = "You are Ava, a friendly phone agent for Acme Home Internet. \
Answer in one or two short sentences, using only the facts in the knowledge base below. \
If you do not know, say you will pass the caller to a colleague.";

/// Which model an LLM agent talks to.
#[derive(Clone)]
enum Provider {
    /// The shared local model.
    Local,
    /// Its own OpenAI-compatible server.
    OpenAi(Arc<OpenAiChat>),
    /// None configured: every request fails at once (the fallback line).
    Missing,
}

/// How one agent thinks.
#[derive(Clone)]
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
#[derive(Clone)]
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
    /// Agents defined through the control API (they win over configured
    /// ones of the same name), with their call settings.
    api: BTreeMap<String, (AgentBrain, CallSettings)>,
    /// Their definitions, kept to rebuild them once the models are in.
    api_specs: Vec<ResolvedAgent>,
    llm: Option<Arc<dyn ChatModel>>,
    tools: Option<Arc<dyn ToolRunner>>,
    embedder: Option<Arc<Embedder>>,
    /// `[brain.openai]`: the endpoint API agents with `model = "openai"` use.
    openai: Option<Arc<OpenAiChat>>,
}

/// How an API-defined agent behaves on a call, beyond its brain.
#[derive(Debug, Clone)]
struct CallSettings {
    greeting: Option<String>,
    endpointing: EndpointConfig,
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
        let openai = match &config.brain.openai {
            Some(t) => {
                let c: OpenAiConfig = serde_path_to_error::deserialize(toml::Value::Table(
                    t.clone(),
                ))
                .map_err(|e| anyhow!("brain.openai.{}: {}", e.path(), e.inner().message()))?;
                Some(Arc::new(
                    OpenAiChat::new(c).map_err(|e| anyhow!("brain.openai: {e}"))?,
                ))
            }
            None => None,
        };
        Ok(Brains {
            agents,
            api: BTreeMap::new(),
            api_specs: Vec::new(),
            llm: None,
            tools: None,
            embedder: None,
            openai,
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
        self.llm = models.llm;
        self.tools = models.tools;
        self.embedder = models.embedder;
        for (name, agent) in &mut self.agents {
            equip(name, agent, self.embedder.as_ref(), self.llm.is_some())?;
        }
        let specs = std::mem::take(&mut self.api_specs);
        if let Err(e) = self.set_api_agents(specs) {
            warn!(
                error = format!("{e:#}"),
                "agents defined through the API could not be rebuilt"
            );
        }
        Ok(())
    }

    /// Replace the agents defined through the control API. Each is built
    /// (flow parsed and checked, intents and knowledge base prepared) before
    /// any is swapped in: on error nothing changes.
    pub fn set_api_agents(&mut self, specs: Vec<ResolvedAgent>) -> Result<()> {
        let mut api = BTreeMap::new();
        for r in &specs {
            let mut agent = self.recipe(r)?;
            equip(
                &r.spec.name,
                &mut agent,
                self.embedder.as_ref(),
                self.llm.is_some(),
            )?;
            api.insert(r.spec.name.clone(), (agent, call_settings(&r.spec)));
        }
        info!(agents = ?api.keys().collect::<Vec<_>>(), "API agents in service");
        self.api = api;
        self.api_specs = specs;
        Ok(())
    }

    /// A brain for `spec` alone (text chat and flow simulation), built the
    /// way a call's would be.
    pub fn brain_for_spec(&self, spec: &ResolvedAgent) -> Result<Box<dyn Brain>> {
        let mut agent = self.recipe(spec)?;
        equip(
            &spec.spec.name,
            &mut agent,
            self.embedder.as_ref(),
            self.llm.is_some(),
        )?;
        let brain = self
            .build(&agent)
            .ok_or_else(|| anyhow!("agent {}: the LLM settings are invalid", spec.spec.name))?;
        Ok(with_greeting(brain, &call_settings(&spec.spec)))
    }

    fn recipe(&self, r: &ResolvedAgent) -> Result<AgentBrain> {
        let name = &r.spec.name;
        Ok(match &r.spec.brain {
            BrainSpec::Flow { flow: f } => {
                let (origin, json, kb_source) = match (f.strip_prefix("template:"), &r.flow) {
                    (Some(t), _) => {
                        let (_, json) = flow::templates()
                            .into_iter()
                            .find(|(n, _)| *n == t)
                            .ok_or_else(|| anyhow!("agent {name}: no flow template {t:?}"))?;
                        let kb = if t == "support_faq" {
                            KbSource::Builtin(flow::templates::SUPPORT_FAQ_KB)
                        } else {
                            KbSource::None
                        };
                        (format!("template {t}"), json.to_string(), kb)
                    }
                    (None, Some(doc)) => (format!("flow {f}"), doc.to_string(), KbSource::None),
                    (None, None) => bail!("agent {name}: flow {f:?} was not resolved"),
                };
                let flow = load_flow(&json, &origin).with_context(|| format!("agent {name}"))?;
                AgentBrain {
                    kind: Kind::Flow {
                        flow,
                        intents: None,
                    },
                    kb_source,
                    kb: None,
                }
            }
            BrainSpec::Llm {
                prompt,
                model,
                knowledge_base,
            } => {
                let mut config = LlmBrainConfig::new(prompt.as_str());
                config.greeting = r.spec.greeting.clone();
                config
                    .validate()
                    .map_err(|e| anyhow!("agent {name}: llm: {e}"))?;
                let provider = match model.as_deref() {
                    None | Some("local") => Provider::Local,
                    Some("openai") => match &self.openai {
                        Some(m) => Provider::OpenAi(Arc::clone(m)),
                        None => {
                            warn!(agent = %name, "model \"openai\" but no [brain.openai] endpoint is configured: the agent says its fallback line");
                            Provider::Missing
                        }
                    },
                    Some(other) => bail!("agent {name}: model {other:?} must be local or openai"),
                };
                AgentBrain {
                    kind: Kind::Llm { config, provider },
                    kb_source: if *knowledge_base {
                        KbSource::Builtin(flow::templates::SUPPORT_FAQ_KB)
                    } else {
                        KbSource::None
                    },
                    kb: None,
                }
            }
            BrainSpec::Builtin { agent } => self
                .agents
                .get(agent)
                .cloned()
                .ok_or_else(|| anyhow!("agent {name}: no built-in agent {agent:?}"))?,
        })
    }

    /// Every agent's name.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .agents
            .keys()
            .chain(self.api.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Whether `agent` exists.
    pub fn has(&self, agent: &str) -> bool {
        self.agents.contains_key(agent) || self.api.contains_key(agent)
    }

    /// A fresh brain for one call to `agent` (`None`: no such agent).
    pub fn brain_for(&self, agent: &str) -> Option<Box<dyn Brain>> {
        Some(self.agent_config(agent)?.brain)
    }

    /// A fresh brain and the call settings for one call to `agent`.
    pub fn agent_config(&self, agent: &str) -> Option<AgentConfig> {
        if let Some((a, settings)) = self.api.get(agent) {
            let brain = with_greeting(self.build(a)?, settings);
            let mut c = AgentConfig::new(agent, brain);
            c.endpointing = settings.endpointing;
            return Some(c);
        }
        let a = self.agents.get(agent)?;
        Some(AgentConfig::new(agent, self.build(a)?))
    }

    fn build(&self, a: &AgentBrain) -> Option<Box<dyn Brain>> {
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
                    Provider::Missing => Arc::new(Unavailable),
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

/// Give one agent what it needs from the shared models: its flow's intent
/// classifier and its knowledge base.
fn equip(
    name: &str,
    agent: &mut AgentBrain,
    embedder: Option<&Arc<Embedder>>,
    llm_loaded: bool,
) -> Result<()> {
    if matches!(
        agent.kind,
        Kind::Llm {
            provider: Provider::Local,
            ..
        }
    ) && !llm_loaded
    {
        warn!(agent = %name, "this agent needs the local LLM, which is not loaded: its calls get the fallback line");
    }
    let Some(embedder) = embedder else {
        if !matches!(agent.kb_source, KbSource::None) {
            warn!(agent = %name, "no embedding model: knowledge-base answers will find nothing");
        }
        return Ok(());
    };
    if let Kind::Flow { flow, intents } = &mut agent.kind {
        let defs = &flow.flow().intents;
        if !defs.is_empty() && intents.is_none() {
            let c = IntentClassifier::new(Arc::clone(embedder), defs)
                .with_context(|| format!("agent {name}: intents"))?;
            *intents = Some(Arc::new(c));
        }
    }
    if agent.kb.is_some() {
        return Ok(());
    }
    let docs = match &agent.kb_source {
        KbSource::None => return Ok(()),
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
    Ok(())
}

/// An API agent's turn-taking, from its endpointing and barge-in settings.
fn call_settings(spec: &AgentSpec) -> CallSettings {
    let mut e = EndpointConfig::default();
    e.end_silence_ms = spec.endpointing.silence_ms;
    // A pause can be no longer than the silence that ends the turn.
    e.pause_ms = e.pause_ms.min(e.end_silence_ms);
    e.min_speech_ms = spec.endpointing.min_speech_ms;
    e.barge_in_ms = if spec.barge_in.enabled {
        spec.barge_in.min_speech_ms
    } else {
        // Longer than any turn: the caller never interrupts.
        u32::MAX
    };
    CallSettings {
        greeting: spec.greeting.clone(),
        endpointing: e,
    }
}

/// A brain whose greeting the agent's settings replace.
struct Greeted {
    inner: Box<dyn Brain>,
    greeting: String,
}

impl Brain for Greeted {
    fn greeting(&self) -> Option<String> {
        Some(self.greeting.clone())
    }
    fn respond(
        &mut self,
        conversation: &vocelio_pipelines::brain::Conversation,
        input: &vocelio_pipelines::brain::TurnInput,
        out: vocelio_pipelines::brain::BrainSink,
    ) {
        self.inner.respond(conversation, input, out)
    }
    fn insights(
        &self,
        conversation: &vocelio_pipelines::brain::Conversation,
    ) -> vocelio_pipelines::brain::CallInsights {
        self.inner.insights(conversation)
    }
}

fn with_greeting(brain: Box<dyn Brain>, settings: &CallSettings) -> Box<dyn Brain> {
    match &settings.greeting {
        Some(g) => Box::new(Greeted {
            inner: brain,
            greeting: g.clone(),
        }),
        None => brain,
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

#[cfg(test)]
mod tests {
    use super::*;
    use vocelio_control_api::model::{BargeInSpec, EndpointingSpec};

    fn spec(silence_ms: u32, barge_in: bool) -> AgentSpec {
        serde_json::from_value(serde_json::json!({
            "name": "a",
            "brain": {"type": "builtin", "agent": "demo"},
            "endpointing": EndpointingSpec { silence_ms, min_speech_ms: 150 },
            "barge_in": BargeInSpec { enabled: barge_in, min_speech_ms: 80 },
        }))
        .unwrap()
    }

    #[test]
    fn api_endpointing_settings_make_a_valid_pipeline_config() {
        for silence in [100, 200, 350, 1000, 3000] {
            let s = call_settings(&spec(silence, true));
            s.endpointing.validate().unwrap();
            assert_eq!(s.endpointing.end_silence_ms, silence);
            assert_eq!(s.endpointing.min_speech_ms, 150);
            assert_eq!(s.endpointing.barge_in_ms, 80);
        }
        let off = call_settings(&spec(1000, false));
        off.endpointing.validate().unwrap();
        assert_eq!(off.endpointing.barge_in_ms, u32::MAX);
    }
}
