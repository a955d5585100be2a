//! The control API's view of this engine: [`ApiEngine`] carries out what
//! the API asks (calls, routing, brains, voices) and [`ApiLinks`] reports
//! what happens on calls to the API's recorder.

use crate::agents::{read, write};
use crate::brains::Brains;
use crate::config::{self, Config};
use futures_util::future::BoxFuture;
use serde_json::json;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{info, warn};
use vocelio_codecs::port::{MediaPort, PortControl, PortControls, TransportKind};
use vocelio_control_api::model::{EngineEvent, ResolvedAgent, Routing, TrunkSpec};
use vocelio_control_api::state::{EngineControl, EngineError, LocalVoice, OutboundCall};
use vocelio_engine::endpoint::driver::SipHandle;
use vocelio_engine::endpoint::{AgentId, CallHandle, HangupCause};
use vocelio_pipelines::brain::insights::Outcome;
use vocelio_pipelines::brain::Brain;
use vocelio_pipelines::call::CallEvent as PipelineEvent;

/// Live calls' control handles, by engine call id.
type Controls = Arc<Mutex<HashMap<String, PortControls>>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the engine tells the API, and the handles it keeps for it.
#[derive(Debug, Clone, Default)]
pub struct ApiLinks {
    events: Option<UnboundedSender<EngineEvent>>,
    controls: Controls,
}

impl ApiLinks {
    /// Links sending to the API's recorder.
    pub fn new(events: UnboundedSender<EngineEvent>) -> Self {
        ApiLinks {
            events: Some(events),
            controls: Controls::default(),
        }
    }

    fn send(&self, ev: EngineEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(ev);
        }
    }

    /// A call's media port is about to be served: keep its controls. A
    /// Twilio stream has no SIP events, so it starts (answered) here.
    pub fn port_started(&self, port: &MediaPort) {
        lock(&self.controls).insert(port.info.call_id.clone(), port.controls());
        if port.info.transport == TransportKind::Twilio {
            self.send(EngineEvent::CallStarted {
                engine_call: port.info.call_id.clone(),
                direction: "inbound".into(),
                transport: "twilio".into(),
                agent: port.info.agent.clone(),
                from: None,
                to: None,
            });
            self.send(EngineEvent::CallAnswered {
                engine_call: port.info.call_id.clone(),
            });
        }
    }

    fn controls(&self, call: &str) -> Option<PortControls> {
        lock(&self.controls).get(call).cloned()
    }

    /// Translate a voice-pipeline event.
    pub fn pipeline_event(&self, ev: &PipelineEvent) {
        match ev {
            PipelineEvent::Transcript {
                call_id,
                speaker,
                text,
                is_final,
                start,
                end,
                interrupted,
            } => self.send(EngineEvent::Transcript {
                engine_call: call_id.clone(),
                speaker: match speaker {
                    vocelio_pipelines::brain::Speaker::Caller => "caller",
                    vocelio_pipelines::brain::Speaker::Agent => "agent",
                }
                .into(),
                text: text.clone(),
                is_final: *is_final,
                start_ms: start.as_millis() as i64,
                end_ms: end.as_millis() as i64,
                interrupted: *interrupted,
            }),
            PipelineEvent::Turn {
                call_id,
                metrics: m,
            } => self.send(EngineEvent::Turn {
                engine_call: call_id.clone(),
                voice_to_voice_ms: m.voice_to_voice_ms,
                metrics: json!({
                    "reply": m.reply,
                    "input": format!("{:?}", m.input).to_lowercase(),
                    "speech_start_ms": m.speech_start.as_millis(),
                    "end_of_turn_ms": m.end_of_turn.as_millis(),
                    "endpoint_delay_ms": m.endpoint_delay_ms,
                    "stt_ms": m.stt_ms,
                    "stt_compute_ms": m.stt_compute_ms,
                    "brain_first_sentence_ms": m.brain_first_sentence_ms,
                    "tts_first_audio_ms": m.tts_first_audio_ms,
                    "tts_first_compute_ms": m.tts_first_compute_ms,
                    "voice_to_voice_ms": m.voice_to_voice_ms,
                }),
            }),
            PipelineEvent::Analysis { call_id, analysis } => self.send(EngineEvent::Analysis {
                engine_call: call_id.clone(),
                analysis: {
                    let mut a = vocelio_control_api::chat::analysis_json(0, analysis);
                    if let Some(m) = a.as_object_mut() {
                        // The live event carries no turn number.
                        m.remove("turn");
                    }
                    a
                },
            }),
            PipelineEvent::Ended {
                call_id,
                conversation,
                insights,
            } => {
                lock(&self.controls).remove(call_id);
                let outcome = match &insights.outcome {
                    Outcome::Completed => "completed".to_string(),
                    Outcome::Transferred { .. } => "transferred".to_string(),
                    Outcome::CallerHungUp => "caller_hung_up".to_string(),
                    other => format!("{other:?}").to_lowercase(),
                };
                self.send(EngineEvent::Insights {
                    engine_call: call_id.clone(),
                    outcome,
                    summary: insights.summary.clone(),
                    sentiment: f64::from(insights.sentiment),
                    insights: crate::records::call_record(call_id, conversation, insights),
                });
                // SIP calls end by their SIP events; a stream ends here.
                if sip_call(call_id).is_none() {
                    self.send(EngineEvent::CallEnded {
                        engine_call: call_id.clone(),
                        reason: "stream_ended".into(),
                        answered: true,
                    });
                }
            }
            _ => {}
        }
    }

    /// Translate a SIP event. `answered` tracks which calls were answered.
    pub fn sip_event(
        &self,
        ev: &vocelio_engine::endpoint::CallEvent,
        answered: &mut std::collections::HashSet<CallHandle>,
    ) {
        use vocelio_engine::endpoint::CallEvent as E;
        match ev {
            E::Incoming {
                call, agent, did, ..
            } => self.send(EngineEvent::CallStarted {
                engine_call: call.to_string(),
                direction: "inbound".into(),
                transport: "sip".into(),
                agent: agent.0.clone(),
                from: None,
                to: Some(did.clone()),
            }),
            E::Outgoing { call, agent, to } => self.send(EngineEvent::CallStarted {
                engine_call: call.to_string(),
                direction: "outbound".into(),
                transport: "sip".into(),
                agent: agent.as_ref().map(|a| a.0.clone()).unwrap_or_default(),
                from: None,
                to: Some(to.clone()),
            }),
            E::Answered { call, .. } => {
                answered.insert(*call);
                self.send(EngineEvent::CallAnswered {
                    engine_call: call.to_string(),
                })
            }
            E::Hangup { call, cause } => {
                let was = answered.remove(call);
                self.send(EngineEvent::CallEnded {
                    engine_call: call.to_string(),
                    reason: hangup_reason(cause),
                    answered: was,
                })
            }
            _ => {}
        }
    }

    /// Media quality at the end of an RTP call.
    pub fn media_ended(&self, call: CallHandle, mos: f64, loss_percent: f64, jitter_ms: f64) {
        self.send(EngineEvent::Quality {
            engine_call: call.to_string(),
            mos,
            loss_percent,
            jitter_ms,
        });
    }
}

/// The reason stored for a SIP hangup. Busy and no answer are what the
/// campaign dialer retries.
pub fn hangup_reason(cause: &HangupCause) -> String {
    if cause.is_busy() {
        return "busy".into();
    }
    if cause.is_no_answer() {
        return "no_answer".into();
    }
    match cause {
        HangupCause::RemoteBye => "remote_bye".into(),
        HangupCause::LocalHangup => "local_hangup".into(),
        HangupCause::Cancelled => "cancelled".into(),
        HangupCause::Rejected(code) => format!("rejected_{code}"),
        HangupCause::AckTimeout => "ack_timeout".into(),
        HangupCause::Timeout => "timeout".into(),
        HangupCause::Transferred => "transferred".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// `call-7` -> the SIP call handle 7.
fn sip_call(call_id: &str) -> Option<CallHandle> {
    call_id.strip_prefix("call-")?.parse().ok().map(CallHandle)
}

/// The engine, as the control API drives it.
pub struct ApiEngine {
    sip: SipHandle,
    brains: Arc<RwLock<Brains>>,
    links: ApiLinks,
    config: Config,
    twilio: Option<vocelio_engine::twilio::TwilioState>,
    /// Trunk names as last applied (config ones first).
    trunks: Mutex<Vec<String>>,
    metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// The preview voice, loaded on first use.
    voice: Arc<Mutex<Option<(String, vocelio_pipelines::tts::Voice)>>>,
}

impl std::fmt::Debug for ApiEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiEngine").finish_non_exhaustive()
    }
}

impl ApiEngine {
    /// Over the running engine's parts.
    pub fn new(
        sip: SipHandle,
        brains: Arc<RwLock<Brains>>,
        links: ApiLinks,
        config: Config,
        twilio: Option<vocelio_engine::twilio::TwilioState>,
        metrics: Arc<dyn Fn() -> String + Send + Sync>,
    ) -> Self {
        let trunks = config.sip.trunks.iter().map(|t| t.name.clone()).collect();
        ApiEngine {
            sip,
            brains,
            links,
            config,
            twilio,
            trunks: Mutex::new(trunks),
            metrics,
            voice: Arc::new(Mutex::new(None)),
        }
    }

    fn models(&self) -> PathBuf {
        self.config.models.dir.clone()
    }
}

fn stopped(e: impl std::fmt::Display) -> EngineError {
    EngineError::Unavailable(e.to_string())
}

/// An API trunk as a configured one.
async fn trunk_config(t: &TrunkSpec) -> Result<config::Trunk, EngineError> {
    let address = tokio::net::lookup_host((t.host.as_str(), t.port))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| {
            EngineError::Refused(format!("trunk {}: cannot resolve {}", t.name, t.host))
        })?;
    Ok(config::Trunk {
        name: t.name.clone(),
        address,
        transport: t.transport.clone(),
        allow_from: t.allow_from.clone(),
        username: t.username.clone(),
        password: t.password.clone(),
        register_expires: None,
        inbound_users: vec![],
        domain: t.domain.clone(),
    })
}

impl EngineControl for ApiEngine {
    fn place_call(&self, call: OutboundCall) -> BoxFuture<'_, Result<String, EngineError>> {
        Box::pin(async move {
            let trunk = match call.trunk {
                Some(t) => t,
                None => lock(&self.trunks)
                    .first()
                    .cloned()
                    .ok_or_else(|| EngineError::Refused("no SIP trunk is configured".into()))?,
            };
            let handle = self
                .sip
                .originate_as(&call.to, &call.from, &trunk, AgentId(call.agent.clone()))
                .await
                .map_err(stopped)?
                .map_err(|e| EngineError::Refused(e.to_string()))?;
            Ok(handle.to_string())
        })
    }

    fn hangup(&self, engine_call: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        let call = engine_call.to_string();
        Box::pin(async move {
            if let Some(h) = sip_call(&call) {
                return self
                    .sip
                    .hangup(h)
                    .await
                    .map_err(stopped)?
                    .map_err(|_| EngineError::NoSuchCall(call));
            }
            let c = self
                .links
                .controls(&call)
                .ok_or_else(|| EngineError::NoSuchCall(call.clone()))?;
            c.send(PortControl::Hangup)
                .map_err(|_| EngineError::NoSuchCall(call))
        })
    }

    fn transfer(&self, engine_call: &str, target: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        let (call, target) = (engine_call.to_string(), target.to_string());
        Box::pin(async move {
            let h = sip_call(&call).ok_or_else(|| {
                EngineError::Refused("transfer is only available on SIP calls".into())
            })?;
            self.sip
                .transfer(h, &target)
                .await
                .map_err(stopped)?
                .map_err(|e| EngineError::Refused(e.to_string()))
        })
    }

    fn send_dtmf(&self, engine_call: &str, digits: &str) -> BoxFuture<'_, Result<(), EngineError>> {
        let (call, digits) = (engine_call.to_string(), digits.to_string());
        Box::pin(async move {
            let c = self
                .links
                .controls(&call)
                .ok_or_else(|| EngineError::NoSuchCall(call.clone()))?;
            c.send(PortControl::SendDtmf {
                digits,
                duration_ms: 100,
            })
            .map_err(|_| EngineError::NoSuchCall(call))
        })
    }

    fn apply(&self, routing: Routing) -> BoxFuture<'_, Result<(), EngineError>> {
        Box::pin(async move {
            // Agents first, so numbers never point at an agent not built yet.
            let brains = Arc::clone(&self.brains);
            let agents = routing.agents.clone();
            tokio::task::spawn_blocking(move || write(&brains).set_api_agents(agents))
                .await
                .map_err(stopped)?
                .map_err(|e| EngineError::Refused(format!("{e:#}")))?;
            // SIP numbers: the config's, then the API's (which win).
            let mut numbers: HashMap<String, AgentId> = self
                .config
                .sip
                .numbers
                .iter()
                .map(|(n, a)| (n.clone(), AgentId(a.clone())))
                .collect();
            for (n, a) in &routing.sip_numbers {
                numbers.insert(n.clone(), AgentId(a.clone()));
            }
            let default_agent = (!self.config.sip.default_agent.is_empty())
                .then(|| AgentId(self.config.sip.default_agent.clone()));
            self.sip
                .set_routes(numbers, default_agent)
                .await
                .map_err(stopped)?;
            // Trunks: the config's, then the API's.
            let mut trunks = self.config.sip.trunks.clone();
            for t in &routing.trunks {
                // A host that does not resolve (now) leaves that trunk out
                // rather than refusing every other change; it is retried at
                // the next change or restart.
                match trunk_config(t).await {
                    Ok(c) => {
                        trunks.retain(|x| x.name != c.name);
                        trunks.push(c);
                    }
                    Err(e) => warn!(trunk = %t.name, error = %e, "trunk left out of service"),
                }
            }
            let names: Vec<String> = trunks.iter().map(|t| t.name.clone()).collect();
            let configs = trunks
                .iter()
                .map(crate::sip::trunk_config)
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(|e| EngineError::Refused(format!("{e:#}")))?;
            self.sip.set_trunks(configs).await.map_err(stopped)?;
            *lock(&self.trunks) = names;
            if let Some(tw) = &self.twilio {
                let mut map: HashMap<String, String> =
                    self.config.twilio.numbers.clone().into_iter().collect();
                for (n, a) in &routing.twilio_numbers {
                    map.insert(n.clone(), a.clone());
                }
                tw.set_numbers(&map);
            }
            info!(
                agents = routing.agents.len(),
                sip_numbers = routing.sip_numbers.len(),
                twilio_numbers = routing.twilio_numbers.len(),
                trunks = routing.trunks.len(),
                "routing from the control API applied"
            );
            Ok(())
        })
    }

    fn brain(&self, agent: &ResolvedAgent) -> Result<Box<dyn Brain>, EngineError> {
        read(&self.brains)
            .brain_for_spec(agent)
            .map_err(|e| EngineError::Refused(format!("{e:#}")))
    }

    fn voices(&self) -> Vec<LocalVoice> {
        local_voices(&self.models())
    }

    fn preview(&self, voice: &str, text: &str) -> BoxFuture<'_, Result<Vec<u8>, EngineError>> {
        let (voice, text) = (voice.to_string(), text.to_string());
        let dir = self.models();
        let slot = Arc::clone(&self.voice);
        Box::pin(async move {
            let known = local_voices(&dir).into_iter().any(|v| v.id == voice);
            if !known {
                return Err(EngineError::Refused(format!("no local voice {voice}")));
            }
            tokio::task::spawn_blocking(move || -> Result<Vec<u8>, EngineError> {
                let piper = dir.join("piper");
                let mut guard = lock(&slot);
                // One preview voice at a time: reload when another is asked for.
                if guard.as_ref().is_none_or(|(id, _)| *id != voice) {
                    let v = vocelio_pipelines::tts::Voice::load_files(
                        &piper.join(format!("{voice}.onnx")),
                        &piper.join(format!("{voice}.onnx.json")),
                        1,
                    )
                    .map_err(|e| EngineError::Unavailable(e.to_string()))?;
                    *guard = Some((voice, v));
                }
                let Some((_, v)) = guard.as_mut() else {
                    return Err(EngineError::Unavailable("voice not loaded".into()));
                };
                let pcm = v
                    .synthesize(&text)
                    .map_err(|e| EngineError::Unavailable(e.to_string()))?;
                Ok(wav_bytes(v.rate().hz(), &pcm))
            })
            .await
            .map_err(stopped)?
        })
    }

    fn prometheus(&self) -> String {
        (self.metrics)()
    }
}

/// Piper voices in `models/piper`: every `X.onnx` with its `X.onnx.json`.
pub fn local_voices(models: &Path) -> Vec<LocalVoice> {
    let dir = models.join("piper");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(id) = name.strip_suffix(".onnx") else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(dir.join(format!("{name}.json"))) else {
            continue;
        };
        let Ok(cfg) = serde_json::from_str::<serde_json::Value>(&text) else {
            warn!(voice = id, "unreadable Piper voice config");
            continue;
        };
        out.push(LocalVoice {
            id: id.to_string(),
            language: cfg["language"]["code"]
                .as_str()
                .unwrap_or("en_US")
                .replace('_', "-"),
            sample_rate: cfg["audio"]["sample_rate"].as_u64().unwrap_or(22050) as u32,
        });
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

/// 16-bit mono PCM as a WAV file.
pub fn wav_bytes(rate: u32, pcm: &[i16]) -> Vec<u8> {
    let data_len = (pcm.len() * 2) as u32;
    let mut w = Vec::with_capacity(44 + pcm.len() * 2);
    w.extend_from_slice(b"RIFF");
    w.extend_from_slice(&(36 + data_len).to_le_bytes());
    w.extend_from_slice(b"WAVEfmt ");
    w.extend_from_slice(&16u32.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&1u16.to_le_bytes());
    w.extend_from_slice(&rate.to_le_bytes());
    w.extend_from_slice(&(rate * 2).to_le_bytes());
    w.extend_from_slice(&2u16.to_le_bytes());
    w.extend_from_slice(&16u16.to_le_bytes());
    w.extend_from_slice(b"data");
    w.extend_from_slice(&data_len.to_le_bytes());
    for s in pcm {
        w.extend_from_slice(&s.to_le_bytes());
    }
    w
}
