//! Wiring the SIP trunk endpoint from configuration.

use crate::config::Config;
use anyhow::{Context, Result};
use std::io::Read;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tracing::{debug, info};
use vocelio_codecs::port::MediaPort;
use vocelio_engine::endpoint::config::RegisterConfig;
use vocelio_engine::endpoint::driver::ListenConfig;
use vocelio_engine::endpoint::{
    normalise_number, AgentId, CallEvent, DigestCredentials, EndpointConfig, IpNet, TrunkConfig,
};
use vocelio_engine::media::bridge::BridgeEvent;
use vocelio_engine::media::MediaEvent;
use vocelio_engine::sip::transaction::TransportKind;

/// 32 bytes from the OS for IDs and the nonce key (seeded once, here).
fn os_random() -> [u8; 32] {
    let mut b = [0u8; 32];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        // No /dev/urandom: fall back to the clock and the process id (still unique per run).
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        b[..16].copy_from_slice(&t.to_le_bytes());
        b[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    }
    b
}

/// The endpoint configuration `serve` runs with.
pub fn endpoint_config(cfg: &Config) -> Result<(EndpointConfig, ListenConfig)> {
    let random = os_random();
    let seed = u64::from_le_bytes(random[..8].try_into().context("seed bytes")?);
    let public = cfg.sip.public_addr.unwrap_or(cfg.sip.listen);
    let mut ec = EndpointConfig::new(public, seed);
    ec.nonce_secret = random;
    ec.rtp_ports = (cfg.rtp.port_min, cfg.rtp.port_max);
    ec.answer_delay = Duration::from_millis(cfg.sip.answer_delay_ms);
    ec.max_calls = cfg.sip.max_calls;
    ec.transactions.max_transactions = cfg.sip.max_transactions;
    ec.default_agent =
        (!cfg.sip.default_agent.is_empty()).then(|| AgentId(cfg.sip.default_agent.clone()));
    ec.numbers = cfg
        .sip
        .numbers
        .iter()
        .map(|(n, a)| (normalise_number(n), AgentId(a.clone())))
        .collect();
    for t in &cfg.sip.trunks {
        ec.trunks.push(trunk_config(t)?);
    }
    let listen = ListenConfig {
        bind: cfg.sip.listen,
        udp: cfg.sip.udp,
        tcp: cfg.sip.tcp,
    };
    Ok((ec, listen))
}

/// A configured trunk as the endpoint takes it.
pub fn trunk_config(t: &crate::config::Trunk) -> Result<TrunkConfig> {
    let credentials = match (&t.username, &t.password) {
        (Some(u), Some(p)) => Some(DigestCredentials {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => None,
    };
    Ok(TrunkConfig {
        name: t.name.clone(),
        address: t.address,
        transport: if t.transport == "tcp" {
            TransportKind::Tcp
        } else {
            TransportKind::Udp
        },
        allow_from: t
            .allow_from
            .iter()
            .map(|n| {
                n.parse::<IpNet>()
                    .with_context(|| format!("sip.trunks `{}` allow_from {n:?}", t.name))
            })
            .collect::<Result<_>>()?,
        register: match (t.register_expires, &t.username) {
            (Some(expires), Some(user)) => Some(RegisterConfig {
                user: user.clone(),
                expires,
            }),
            _ => None,
        },
        outbound_auth: credentials,
        inbound_users: t
            .inbound_users
            .iter()
            .map(|u| DigestCredentials {
                username: u.username.clone(),
                password: u.password.clone(),
            })
            .collect(),
        domain: t.domain.clone(),
    })
}

/// Log call events for operators and hand each call's media port to its
/// agent. Phone numbers are personal data: never at info.
pub async fn run_events(
    mut events: UnboundedReceiver<BridgeEvent>,
    agents: crossbeam_channel::Sender<MediaPort>,
    links: crate::api::ApiLinks,
) {
    let mut answered = std::collections::HashSet::new();
    while let Some(ev) = events.recv().await {
        let ev = match ev {
            BridgeEvent::Sip(ev) => {
                links.sip_event(&ev, &mut answered);
                ev
            }
            BridgeEvent::Port(port) => {
                debug!(call = %port.info.call_id, agent = %port.info.agent, "call media up");
                let _ = agents.send(port);
                continue;
            }
            BridgeEvent::Media(MediaEvent::Ended { call, stats, .. }) => {
                links.media_ended(call, stats.mos, stats.loss_percent, stats.jitter_ms);
                info!(
                    %call,
                    mos = format_args!("{:.2}", stats.mos),
                    loss_percent = format_args!("{:.2}", stats.loss_percent),
                    jitter_ms = format_args!("{:.1}", stats.jitter_ms),
                    "call media quality"
                );
                continue;
            }
            BridgeEvent::Media(other) => {
                debug!(event = ?other, "media event");
                continue;
            }
            _ => continue,
        };
        match ev {
            CallEvent::Incoming {
                call,
                agent,
                did,
                rtp_port,
            } => {
                info!(%call, %agent, rtp_port, "inbound call");
                debug!(%call, did, "inbound call number");
            }
            CallEvent::Answered { call, media, .. } => {
                info!(%call, codec = ?media.as_ref().map(|m| m.codec), "call answered")
            }
            CallEvent::Hangup { call, cause } => info!(%call, ?cause, "call ended"),
            CallEvent::Dtmf { call, .. } => debug!(%call, "DTMF"),
            CallEvent::Registered { trunk, expires } => info!(trunk, expires, "registered"),
            CallEvent::RegistrationFailed { trunk, status } => {
                tracing::warn!(trunk, status, "registration failed")
            }
            other => debug!(event = ?other, "call event"),
        }
    }
}
