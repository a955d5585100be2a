//! The agents answering calls: every media port (SIP or Twilio) is served by
//! the voice pipeline with its agent's brain (see [`crate::brains`]).

use anyhow::{Context, Result};
use crossbeam_channel::{Receiver, Sender};
use std::sync::{Arc, OnceLock, RwLock};

use crate::api::ApiLinks;

use crate::brains::Brains;
use crate::config::Config;
use tracing::{debug, info, warn};
use vocelio_codecs::port::MediaPort;
use vocelio_codecs::port::PortControl;
use vocelio_engine::endpoint::driver::SipHandle;
use vocelio_engine::endpoint::CallHandle;
use vocelio_engine::media::echo::EchoPool;
use vocelio_pipelines::brain::{Action, ScriptedBrain};
use vocelio_pipelines::call::CallEvent;
use vocelio_pipelines::metrics::VoiceMetrics;
use vocelio_pipelines::models::ModelDir;
use vocelio_pipelines::runner::{RuntimeConfig, VoiceRuntime};

/// The demo agent's script.
pub fn demo_brain() -> ScriptedBrain {
    ScriptedBrain::new(
        "I can book an appointment or check your account. What would you like to do?",
    )
    .with_greeting("Hello, thanks for calling. How can I help you today?")
    .on(
        "book|booking|appointment|schedule",
        "Sure. The appointment is confirmed for Friday morning. Is there anything else?",
    )
    .on(
        "account|balance|number",
        "Thank you. Your account is in good standing.",
    )
    .on("yes|yeah", "Great, you are all set.")
    .on("no|nope", "All right. Thank you for calling, goodbye.")
    .on_dtmf("You pressed {digits}.")
}

/// Where calls' media ports go, and what serves them.
pub struct Agents {
    ports: Sender<MediaPort>,
    metrics: Arc<OnceLock<Arc<VoiceMetrics>>>,
}

impl std::fmt::Debug for Agents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agents")
            .field("voice", &self.metrics.get().is_some())
            .finish()
    }
}

impl Agents {
    /// Start the agents. The voice models load on a background thread, so
    /// SIP and HTTP come up at once; calls arriving meanwhile wait in the
    /// queue. Without models the agents fall back to an echo (logged), so
    /// SIP and media keep working.
    pub fn start(
        config: &Config,
        models: &ModelDir,
        brains: Arc<RwLock<Brains>>,
        sip: SipHandle,
        links: ApiLinks,
    ) -> Result<Agents> {
        let (tx, rx) = crossbeam_channel::unbounded::<MediaPort>();
        let metrics = Arc::new(OnceLock::new());
        let rt = tokio::runtime::Handle::current();
        let models = models.clone();
        let slot = Arc::clone(&metrics);
        let config = config.clone();
        std::thread::Builder::new()
            .name("agents".into())
            .spawn(move || {
                let started = std::time::Instant::now();
                match VoiceRuntime::start(&models, RuntimeConfig::default()) {
                    Ok(runtime) => {
                        let shared = crate::brains::load_shared(&config, &models, false)
                            .unwrap_or_default();
                        if let Err(e) = write(&brains).attach(shared) {
                            warn!(error = format!("{e:#}"), "agents cannot use the brain models");
                        }
                        let _ = slot.set(runtime.metrics());
                        let events = runtime.events().clone();
                        let forward = links.clone();
                        if let Err(e) = std::thread::Builder::new()
                            .name("agent-events".into())
                            .spawn(move || log_events(events, sip, rt, forward))
                        {
                            warn!(error = %e, "cannot start the agent event thread");
                        }
                        info!(
                            load_ms = started.elapsed().as_millis() as u64,
                            "voice agents ready"
                        );
                        serve_ports(runtime, &brains, rx, &links);
                    }
                    Err(e) => {
                        warn!(error = %e, "voice pipeline unavailable: agents echo the caller until scripts/setup.sh has fetched the models");
                        match EchoPool::start(0) {
                            Ok(echo) => {
                                while let Ok(port) = rx.recv() {
                                    links.port_started(&port);
                                    echo.add(port);
                                }
                            }
                            Err(e) => warn!(error = %e, "cannot start the echo agents"),
                        }
                    }
                }
            })
            .context("starting the agent thread")?;
        Ok(Agents { ports: tx, metrics })
    }

    /// Where to send each call's media port.
    pub fn sender(&self) -> Sender<MediaPort> {
        self.ports.clone()
    }

    /// The pipeline's Prometheus text (empty until the models are loaded, or when agents echo).
    pub fn prometheus(&self) -> String {
        self.metrics
            .get()
            .map(|m| m.prometheus())
            .unwrap_or_default()
    }
}

fn serve_ports(
    mut runtime: VoiceRuntime,
    brains: &RwLock<Brains>,
    ports: Receiver<MediaPort>,
    links: &ApiLinks,
) {
    while let Ok(port) = ports.recv() {
        let agent = port.info.agent.clone();
        let call = port.info.call_id.clone();
        let Some(config) = read(brains).agent_config(&agent) else {
            warn!(%call, %agent, "no such agent: hanging up");
            let _ = port.control(PortControl::Hangup);
            continue;
        };
        links.port_started(&port);
        if let Err(e) = runtime.add_call(port, config) {
            warn!(%call, error = %e, "the agent could not take the call");
        }
    }
}

/// The brains, for reading (a poisoned lock still holds valid brains:
/// writers swap whole maps).
pub fn read(b: &RwLock<Brains>) -> std::sync::RwLockReadGuard<'_, Brains> {
    b.read().unwrap_or_else(|p| p.into_inner())
}

/// The brains, for writing.
pub fn write(b: &RwLock<Brains>) -> std::sync::RwLockWriteGuard<'_, Brains> {
    b.write().unwrap_or_else(|p| p.into_inner())
}

/// `call-7` -> the SIP call handle 7 (ports of SIP calls are named so).
fn sip_call(call_id: &str) -> Option<CallHandle> {
    call_id.strip_prefix("call-")?.parse().ok().map(CallHandle)
}

fn log_events(
    events: Receiver<CallEvent>,
    sip: SipHandle,
    rt: tokio::runtime::Handle,
    links: ApiLinks,
) {
    while let Ok(ev) = events.recv() {
        links.pipeline_event(&ev);
        match ev {
            CallEvent::Turn { call_id, metrics } => {
                info!(call = %call_id, voice_to_voice_ms = ?metrics.voice_to_voice_ms, "turn");
                debug!(call = %call_id, ?metrics, "turn metrics");
            }
            // Transcripts are personal data: debug only.
            CallEvent::Transcript {
                call_id,
                speaker,
                text,
                is_final: true,
                ..
            } => debug!(call = %call_id, ?speaker, text, "transcript"),
            CallEvent::BargeIn {
                call_id, stop_ms, ..
            } => info!(call = %call_id, stop_ms, "barge-in"),
            CallEvent::Action {
                call_id,
                action: Action::Transfer { target },
            } => match sip_call(&call_id) {
                Some(call) => {
                    let sip = sip.clone();
                    rt.spawn(async move {
                        if let Ok(Err(e)) = sip.transfer(call, &target).await {
                            warn!(%call, error = %e, "transfer failed");
                        }
                    });
                }
                None => warn!(call = %call_id, "transfer asked on a call that is not SIP"),
            },
            CallEvent::Error { call_id, error } => warn!(call = %call_id, %error, "agent error"),
            CallEvent::Analysis { call_id, analysis } => debug!(
                call = %call_id,
                intent = ?analysis.intent.as_ref().and_then(|m| m.intent.as_deref()),
                sentiment = analysis.sentiment.score,
                "turn analysis"
            ),
            CallEvent::Ended {
                call_id,
                conversation,
                insights,
            } => {
                info!(call = %call_id, outcome = ?insights.outcome, intents = ?insights.intents, sentiment = insights.sentiment, turns = conversation.turns.len(), "call ended");
            }
            _ => {}
        }
    }
}
