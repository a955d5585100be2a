//! Documents shared by the API and the engine behind it: what an agent is,
//! how calls are routed, what the engine reports.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An AI agent: who answers, how it sounds, what it thinks with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Unique name, `[a-z0-9_-]`, 1–64 characters. Numbers and campaigns route by it.
    pub name: String,
    /// BCP 47 language tag.
    #[serde(default = "default_language")]
    pub language: String,
    /// Voice id from `GET /v1/voices` (`None`: the engine's default voice).
    #[serde(default)]
    pub voice: Option<String>,
    /// What the agent says first (`None`: the brain's own greeting).
    #[serde(default)]
    pub greeting: Option<String>,
    /// What the agent thinks with.
    pub brain: BrainSpec,
    /// HTTP tools the brain may call.
    #[serde(default)]
    pub tools: Vec<ToolSpec>,
    /// When the caller's turn is over.
    #[serde(default)]
    pub endpointing: EndpointingSpec,
    /// Whether and how the caller can interrupt.
    #[serde(default)]
    pub barge_in: BargeInSpec,
}

fn default_language() -> String {
    "en-US".into()
}

/// The agent's brain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BrainSpec {
    /// A conversation flow: a flow's id or name from `/v1/flows`, or
    /// `template:NAME` for a built-in template.
    Flow {
        /// Flow id, name, or `template:NAME`.
        flow: String,
    },
    /// A language model with a system prompt.
    Llm {
        /// System prompt.
        prompt: String,
        /// `local` (the embedded model, the default) or `openai` (the
        /// OpenAI-compatible endpoint configured in `[brain]`).
        #[serde(default)]
        model: Option<String>,
        /// Answer from the built-in knowledge base (`support_faq`) as context.
        #[serde(default)]
        knowledge_base: bool,
    },
    /// An agent defined in the engine's configuration file (`demo`, `support_faq`, …).
    Builtin {
        /// Its name.
        agent: String,
    },
}

/// An HTTP tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolSpec {
    /// Name the brain calls it by.
    pub name: String,
    /// `http://` or `https://` URL it POSTs JSON to.
    pub url: String,
    /// What it does (for language models).
    #[serde(default)]
    pub description: String,
    /// Timeout, ms.
    #[serde(default = "default_tool_timeout")]
    pub timeout_ms: u32,
}

fn default_tool_timeout() -> u32 {
    3000
}

/// End-of-turn detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointingSpec {
    /// Silence that ends the caller's turn, ms (100–3000).
    pub silence_ms: u32,
    /// Shortest speech that counts as a turn, ms (20–2000).
    pub min_speech_ms: u32,
}

impl Default for EndpointingSpec {
    fn default() -> Self {
        // The voice pipeline's own defaults.
        EndpointingSpec {
            silence_ms: 1000,
            min_speech_ms: 200,
        }
    }
}

/// Barge-in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct BargeInSpec {
    /// Whether the caller can interrupt the agent.
    pub enabled: bool,
    /// Caller speech that interrupts, ms (20–2000).
    pub min_speech_ms: u32,
}

impl Default for BargeInSpec {
    fn default() -> Self {
        BargeInSpec {
            enabled: true,
            min_speech_ms: 64,
        }
    }
}

/// A SIP trunk as the engine uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrunkSpec {
    /// Unique name.
    pub name: String,
    /// Host (IP address or name) of the carrier's SIP server.
    pub host: String,
    /// Its port.
    #[serde(default = "default_sip_port")]
    pub port: u16,
    /// `udp` or `tcp`.
    #[serde(default = "default_transport")]
    pub transport: String,
    /// Digest user for outbound calls and registration.
    #[serde(default)]
    pub username: Option<String>,
    /// Digest password. Write-only in the API: responses never carry it
    /// (the trunks routes answer with a view without it).
    #[serde(default)]
    pub password: Option<String>,
    /// Networks allowed to send us calls on this trunk (`203.0.113.0/24`).
    #[serde(default)]
    pub allow_from: Vec<String>,
    /// SIP domain (`None`: the host).
    #[serde(default)]
    pub domain: Option<String>,
}

fn default_sip_port() -> u16 {
    5060
}

fn default_transport() -> String {
    "udp".into()
}

/// An agent with its flow document looked up (the engine knows nothing of
/// the flows table).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAgent {
    /// The agent.
    pub spec: AgentSpec,
    /// For `BrainSpec::Flow` naming a stored flow: its document. `None`
    /// for templates (`template:NAME`), LLM and built-in brains.
    pub flow: Option<serde_json::Value>,
}

/// Where calls go: what the engine needs after any change to agents,
/// numbers or trunks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Routing {
    /// Every agent defined through the API, flow documents resolved.
    pub agents: Vec<ResolvedAgent>,
    /// E.164 number -> agent name, SIP DIDs.
    pub sip_numbers: Vec<(String, String)>,
    /// E.164 number -> agent name, Twilio numbers (the voice webhook's `To`).
    pub twilio_numbers: Vec<(String, String)>,
    /// Trunks defined through the API (the password included).
    pub trunks: Vec<TrunkSpec>,
}

/// What the engine reports about calls; the recorder stores it and passes
/// it on to live subscribers, webhooks and the campaign dialer.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// A call began (inbound: admitted; outbound: INVITE sent).
    CallStarted {
        /// The engine's call id.
        engine_call: String,
        /// `inbound` or `outbound`.
        direction: String,
        /// `sip` or `twilio`.
        transport: String,
        /// The agent.
        agent: String,
        /// Caller number.
        from: Option<String>,
        /// Called number.
        to: Option<String>,
    },
    /// The call was answered.
    CallAnswered {
        /// The engine's call id.
        engine_call: String,
    },
    /// Words from either side.
    Transcript {
        /// The engine's call id.
        engine_call: String,
        /// `caller` or `agent`.
        speaker: String,
        /// Text.
        text: String,
        /// `false` for a caller's partial transcript.
        is_final: bool,
        /// Media time, ms.
        start_ms: i64,
        /// Media time, ms.
        end_ms: i64,
        /// The agent was cut off.
        interrupted: bool,
    },
    /// One turn's latency figures.
    Turn {
        /// The engine's call id.
        engine_call: String,
        /// Voice to voice, ms (caller stopped -> agent audio on the wire).
        voice_to_voice_ms: Option<f64>,
        /// Every figure.
        metrics: serde_json::Value,
    },
    /// What the brain made of a caller turn.
    Analysis {
        /// The engine's call id.
        engine_call: String,
        /// Intent, sentiment, suggestions.
        analysis: serde_json::Value,
    },
    /// Media quality at the end of an RTP call.
    Quality {
        /// The engine's call id.
        engine_call: String,
        /// Estimated MOS (1–4.5).
        mos: f64,
        /// Packet loss, percent.
        loss_percent: f64,
        /// Interarrival jitter, ms.
        jitter_ms: f64,
    },
    /// The conversation is over: what the brain made of it.
    Insights {
        /// The engine's call id.
        engine_call: String,
        /// `completed`, `transferred`, `caller_hung_up`, …
        outcome: String,
        /// One-paragraph summary.
        summary: String,
        /// Mean caller sentiment (-1..1).
        sentiment: f64,
        /// Everything else (intents, variables, actions, trace).
        insights: serde_json::Value,
    },
    /// The call is over.
    CallEnded {
        /// The engine's call id.
        engine_call: String,
        /// `remote_bye`, `local_hangup`, `busy`, `no_answer`, `rejected_503`, `transferred`, …
        reason: String,
        /// Whether it was ever answered.
        answered: bool,
    },
}

impl EngineEvent {
    /// The engine call id it concerns.
    pub fn engine_call(&self) -> &str {
        match self {
            EngineEvent::CallStarted { engine_call, .. }
            | EngineEvent::CallAnswered { engine_call }
            | EngineEvent::Transcript { engine_call, .. }
            | EngineEvent::Turn { engine_call, .. }
            | EngineEvent::Analysis { engine_call, .. }
            | EngineEvent::Quality { engine_call, .. }
            | EngineEvent::Insights { engine_call, .. }
            | EngineEvent::CallEnded { engine_call, .. } => engine_call,
        }
    }
}
