//! Wires the SIP endpoint to the media plane: a call's media starts when it
//! is answered, follows re-INVITEs, gets SIP INFO digits, and stops on
//! hangup; a pipeline's hangup (or a media timeout) becomes a BYE.
//!
//! A call's port names the agent its pipeline runs: the routed agent of an
//! inbound call (`CallEvent::Incoming`), the agent an outbound call was
//! placed for (`CallEvent::Outgoing`), else the bridge's `default_agent`.

use super::{MediaCall, MediaEngine, MediaEvent};
use crate::endpoint::driver::SipHandle;
use crate::endpoint::{AgentId, CallEvent, CallHandle};
use crate::sdp::Negotiated;
use std::collections::HashMap;
use tokio::sync::mpsc;
use tracing::{info, warn};
use vocelio_codecs::port::{HangupReason, MediaPort};

/// What the bridge passes on to the application.
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeEvent {
    /// A SIP call event (sent before the bridge acts on it).
    Sip(CallEvent),
    /// A media event, after the bridge acted on it.
    Media(MediaEvent),
    /// A call's media is up: run its pipeline on this port.
    Port(MediaPort),
}

struct CallMedia {
    agent: AgentId,
    media: Option<MediaCall>,
    /// Answered with a late offer: the port waits for the ACK's SDP.
    late_port: Option<u16>,
}

/// Run until the SIP event stream ends. Ports for new calls and every event
/// go to `out`.
pub async fn run(
    mut sip_events: mpsc::UnboundedReceiver<CallEvent>,
    mut media_events: mpsc::UnboundedReceiver<MediaEvent>,
    sip: SipHandle,
    media: MediaEngine,
    default_agent: AgentId,
    out: mpsc::UnboundedSender<BridgeEvent>,
) {
    let mut calls: HashMap<CallHandle, CallMedia> = HashMap::new();
    loop {
        tokio::select! {
            ev = sip_events.recv() => {
                let Some(ev) = ev else { break };
                // Passed on first, so the application sees `Answered` before the call's port.
                let _ = out.send(BridgeEvent::Sip(ev.clone()));
                on_sip(&ev, &mut calls, &media, &default_agent, &out);
            }
            Some(ev) = media_events.recv() => {
                match &ev {
                    MediaEvent::HangupRequested { call } | MediaEvent::MediaTimeout { call } => {
                        let (sip, call) = (sip.clone(), *call);
                        tokio::spawn(async move {
                            if let Ok(Err(e)) = sip.hangup(call).await {
                                warn!(%call, error = %e, "hangup failed");
                            }
                        });
                    }
                    MediaEvent::Ended { call, .. } => {
                        if let Some(c) = calls.get_mut(call) {
                            c.media = None;
                        }
                    }
                    _ => {}
                }
                let _ = out.send(BridgeEvent::Media(ev));
            }
        }
    }
    for (_, c) in calls.drain() {
        if let Some(m) = c.media {
            m.close(HangupReason::Shutdown);
        }
    }
}

fn start_media(
    call: CallHandle,
    c: &mut CallMedia,
    rtp_port: u16,
    negotiated: Negotiated,
    media: &MediaEngine,
    out: &mpsc::UnboundedSender<BridgeEvent>,
) {
    match media.open(call, &c.agent.0, rtp_port, negotiated) {
        Ok((port, handle)) => {
            c.media = Some(handle);
            let _ = out.send(BridgeEvent::Port(port));
        }
        Err(e) => warn!(%call, error = %e, "call media could not start"),
    }
}

fn on_sip(
    ev: &CallEvent,
    calls: &mut HashMap<CallHandle, CallMedia>,
    media: &MediaEngine,
    default_agent: &AgentId,
    out: &mpsc::UnboundedSender<BridgeEvent>,
) {
    match ev {
        CallEvent::Incoming { call, agent, .. } => {
            calls.insert(
                *call,
                CallMedia {
                    agent: agent.clone(),
                    media: None,
                    late_port: None,
                },
            );
        }
        CallEvent::Outgoing { call, agent, .. } => {
            calls.insert(
                *call,
                CallMedia {
                    agent: agent.clone().unwrap_or_else(|| default_agent.clone()),
                    media: None,
                    late_port: None,
                },
            );
        }
        CallEvent::Answered {
            call,
            media: negotiated,
            rtp_port,
        } => {
            let c = calls.entry(*call).or_insert_with(|| CallMedia {
                agent: default_agent.clone(),
                media: None,
                late_port: None,
            });
            if let Some(n) = negotiated {
                start_media(*call, c, *rtp_port, n.clone(), media, out);
            } else {
                // A late offer completes with MediaUpdated when the ACK brings the answer.
                info!(%call, "answered with a late offer: media starts at the ACK");
                c.late_port = Some(*rtp_port);
            }
        }
        CallEvent::MediaUpdated {
            call,
            media: negotiated,
        } => {
            let Some(c) = calls.get_mut(call) else { return };
            match &c.media {
                Some(m) => {
                    if m.update(negotiated.clone()).is_err() {
                        c.media = None;
                    }
                }
                None => {
                    if let Some(port) = c.late_port.take() {
                        start_media(*call, c, port, negotiated.clone(), media, out);
                    }
                }
            }
        }
        CallEvent::Dtmf {
            call,
            digit,
            duration_ms,
        } => {
            if let Some(Some(m)) = calls.get(call).map(|c| c.media.as_ref()) {
                let _ = m.dtmf(*digit, duration_ms.unwrap_or(100));
            }
        }
        CallEvent::Hangup { call, .. } => {
            if let Some(c) = calls.remove(call) {
                if let Some(m) = c.media {
                    m.close(HangupReason::Remote);
                }
            }
        }
        _ => {}
    }
}
