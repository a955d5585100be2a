//! The tokio media plane: RTP sockets, the shared 20 ms playout clock, and
//! each call's media port.
//!
//! - One clock task ticks every 20 ms for every call ([`MediaEngine`]); there
//!   is no timer per call. Calls that wake late catch up (at most
//!   [`MAX_CATCH_UP`] ticks, then skip and count).
//! - Each call is one small tokio task (not an OS thread) that owns its RTP
//!   and RTCP sockets and its sans-IO [`RtpSession`]; the runtime's few
//!   worker threads multiplex them all. Per tick it hands the pipeline one
//!   inbound frame and sends one outbound packet, with `try_send_to` (a
//!   send never waits: if the socket would block the packet is dropped and
//!   counted).
//! - The call's pipeline gets a [`MediaPort`]; events the application must
//!   act on (the pipeline hung up, media timed out, the call's final
//!   statistics) arrive as [`MediaEvent`]s.
//! - [`bridge`] wires it to the SIP endpoint; [`echo`] is a passthrough
//!   agent for tests and the capacity harness.

pub mod bridge;
pub mod echo;
pub mod metrics;

use crate::endpoint::CallHandle;
use crate::rtp::packet::Ssrc;
use crate::rtp::session::{
    port_rate, MediaStats, Received, RtpSession, SessionConfig, SessionError, SessionEvent,
    TransmitKind, MAX_DATAGRAM,
};
use crate::sdp::Negotiated;
use metrics::MediaMetrics;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn, Instrument};
use vocelio_codecs::port::{pair, HangupReason, MediaPort, PortConfig, PortInfo, TransportKind};
use vocelio_codecs::wav::StereoRecorder;
use vocelio_codecs::FRAME_MS;

/// Most ticks a late call task runs back to back before skipping ahead.
pub const MAX_CATCH_UP: u64 = 5;

/// Media-plane settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// Write a dual-channel WAV per call here (caller left, agent right).
    pub recordings: Option<PathBuf>,
    /// Jitter buffer lower bound in ms.
    pub jitter_min_ms: u32,
    /// Jitter buffer upper bound in ms.
    pub jitter_max_ms: u32,
    /// Mean RTCP report interval.
    pub rtcp_interval: Duration,
    /// No RTP for this long: the media is declared dead.
    pub media_timeout: Duration,
    /// Queue sizes of each call's media port.
    pub port: PortConfig,
    /// Seed for SSRCs and initial sequence numbers (from the OS in production).
    pub seed: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            bind_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            recordings: None,
            jitter_min_ms: 20,
            jitter_max_ms: 60,
            rtcp_interval: Duration::from_secs(5),
            media_timeout: Duration::from_secs(60),
            port: PortConfig::default(),
            seed: 0x5eed_cafe,
        }
    }
}

/// Why a call's media could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The RTP or RTCP port could not be bound.
    #[error("cannot bind RTP/RTCP port {port}: {source}")]
    Bind {
        /// The port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// The negotiated media cannot run.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The recording file could not be created.
    #[error("recording: {0}")]
    Recording(#[from] vocelio_codecs::wav::WavError),
    /// The call's media task has ended.
    #[error("the call's media has ended")]
    Gone,
}

/// Something the application must act on.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum MediaEvent {
    /// The call's pipeline asked to hang up: send BYE.
    HangupRequested {
        /// The call.
        call: CallHandle,
    },
    /// No RTP from the peer for the configured timeout.
    MediaTimeout {
        /// The call.
        call: CallHandle,
    },
    /// The call's media stopped; its ports are closed.
    Ended {
        /// The call.
        call: CallHandle,
        /// Final statistics (loss, jitter, MOS...).
        stats: MediaStats,
        /// The recording, if one was made.
        recording: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Tick {
    n: u64,
}

struct Shared {
    cfg: MediaConfig,
    metrics: Arc<MediaMetrics>,
    clock: watch::Receiver<Tick>,
    origin: Instant,
    events: mpsc::UnboundedSender<MediaEvent>,
    ssrc_seq: AtomicU64,
}

/// The media plane. Cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("bind_ip", &self.shared.cfg.bind_ip)
            .finish_non_exhaustive()
    }
}

enum CallCommand {
    Update(Box<Negotiated>),
    Dtmf { digit: char, duration_ms: u32 },
    Close(HangupReason),
}

/// Control of one call's media task.
#[derive(Debug, Clone)]
pub struct MediaCall {
    call: CallHandle,
    commands: mpsc::UnboundedSender<CallCommand>,
}

impl std::fmt::Debug for CallCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallCommand::Update(_) => f.write_str("Update"),
            CallCommand::Dtmf { .. } => f.write_str("Dtmf"),
            CallCommand::Close(r) => write!(f, "Close({r:?})"),
        }
    }
}

impl MediaCall {
    /// The call.
    pub fn call(&self) -> CallHandle {
        self.call
    }

    /// New negotiated media (re-INVITE, hold, late offer).
    pub fn update(&self, media: Negotiated) -> Result<(), MediaError> {
        self.commands
            .send(CallCommand::Update(Box::new(media)))
            .map_err(|_| MediaError::Gone)
    }

    /// A DTMF digit that arrived by SIP INFO.
    pub fn dtmf(&self, digit: char, duration_ms: u32) -> Result<(), MediaError> {
        self.commands
            .send(CallCommand::Dtmf { digit, duration_ms })
            .map_err(|_| MediaError::Gone)
    }

    /// Stop the media; the pipeline gets a hangup event with `reason`.
    pub fn close(&self, reason: HangupReason) {
        let _ = self.commands.send(CallCommand::Close(reason));
    }
}

impl MediaEngine {
    /// Start the media plane (its clock task) on the current tokio runtime.
    /// Events arrive on the returned receiver.
    pub fn start(cfg: MediaConfig) -> (MediaEngine, mpsc::UnboundedReceiver<MediaEvent>) {
        let origin = Instant::now();
        let (tick_tx, tick_rx) = watch::channel(Tick { n: 0 });
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let period = Duration::from_millis(u64::from(FRAME_MS));
            let mut n = 0u64;
            loop {
                n += 1;
                tokio::time::sleep_until(origin + period * n as u32).await;
                // Stop when every engine handle and call task is gone.
                if tick_tx.send(Tick { n }).is_err() {
                    break;
                }
            }
        });
        let engine = MediaEngine {
            shared: Arc::new(Shared {
                cfg,
                metrics: Arc::new(MediaMetrics::default()),
                clock: tick_rx,
                origin,
                events: ev_tx,
                ssrc_seq: AtomicU64::new(1),
            }),
        };
        (engine, ev_rx)
    }

    /// The media plane's metrics.
    pub fn metrics(&self) -> Arc<MediaMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Start a call's media on `local_port` (RTCP on the one above) with
    /// the negotiated `media`. Returns the pipeline's end of its port.
    pub async fn open(
        &self,
        call: CallHandle,
        agent: &str,
        local_port: u16,
        media: Negotiated,
    ) -> Result<(MediaPort, MediaCall), MediaError> {
        let cfg = &self.shared.cfg;
        let bind = |port: u16| async move {
            UdpSocket::bind(SocketAddr::new(cfg.bind_ip, port))
                .await
                .map_err(|source| MediaError::Bind { port, source })
        };
        let rtp = bind(local_port).await?;
        let rtcp = bind(local_port.wrapping_add(1)).await?;
        let rate = port_rate(media.codec);
        let (port, transport) = pair(
            PortInfo {
                call_id: call.to_string(),
                agent: agent.to_owned(),
                transport: TransportKind::Sip,
                rate,
            },
            cfg.port,
        );
        let k = self.shared.ssrc_seq.fetch_add(1, Ordering::Relaxed);
        let seed = splitmix(cfg.seed ^ k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let now = Instant::now().into_std();
        let mut scfg = SessionConfig::new(Ssrc(seed as u32), seed >> 32, now, SystemTime::now());
        scfg.jitter_min_ms = cfg.jitter_min_ms;
        scfg.jitter_max_ms = cfg.jitter_max_ms;
        scfg.rtcp_interval = cfg.rtcp_interval;
        scfg.media_timeout = cfg.media_timeout;
        let session = RtpSession::new(scfg, media, transport, now)?;
        let recorder = match &cfg.recordings {
            Some(dir) => Some(StereoRecorder::create(
                dir.join(format!("{call}.wav")),
                rate,
            )?),
            None => None,
        };
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let task = CallTask {
            call,
            session,
            rtp,
            rtcp,
            clock: self.shared.clock.clone(),
            commands: cmd_rx,
            shared: Arc::clone(&self.shared),
            recorder,
            last_tick: None,
        };
        let span = tracing::info_span!("media", %call);
        tokio::spawn(task.run().instrument(span));
        Ok((
            port,
            MediaCall {
                call,
                commands: cmd_tx,
            },
        ))
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct CallTask {
    call: CallHandle,
    session: RtpSession,
    rtp: UdpSocket,
    rtcp: UdpSocket,
    clock: watch::Receiver<Tick>,
    commands: mpsc::UnboundedReceiver<CallCommand>,
    shared: Arc<Shared>,
    recorder: Option<StereoRecorder>,
    last_tick: Option<u64>,
}

impl CallTask {
    async fn run(mut self) {
        let m = Arc::clone(&self.shared.metrics);
        m.calls_active.fetch_add(1, Ordering::Relaxed);
        MediaMetrics::add(&m.calls_total, 1);
        let mut rtp_buf = [0u8; MAX_DATAGRAM];
        let mut rtcp_buf = [0u8; MAX_DATAGRAM];
        let reason = loop {
            tokio::select! {
                biased;
                cmd = self.commands.recv() => match cmd {
                    Some(CallCommand::Update(media)) => {
                        if let Err(e) = self.session.update_media(*media) {
                            warn!(error = %e, "re-negotiated media refused");
                        }
                    }
                    Some(CallCommand::Dtmf { digit, duration_ms }) => {
                        MediaMetrics::add(&m.dtmf_in, 1);
                        self.session.dtmf_info(digit, duration_ms);
                    }
                    Some(CallCommand::Close(reason)) => break reason,
                    None => break HangupReason::Local,
                },
                changed = self.clock.changed() => {
                    if changed.is_err() {
                        break HangupReason::Shutdown;
                    }
                    let tick = *self.clock.borrow_and_update();
                    self.on_clock(tick.n);
                }
                r = self.rtp.recv_from(&mut rtp_buf) => {
                    if let Ok((n, from)) = r {
                        self.on_datagram(from, &rtp_buf[..n], false);
                    }
                }
                r = self.rtcp.recv_from(&mut rtcp_buf) => {
                    if let Ok((n, from)) = r {
                        self.on_datagram(from, &rtcp_buf[..n], true);
                    }
                }
            }
        };
        self.session.hang_up(reason);
        let stats = self.session.stats();
        let recording = self.recorder.take().and_then(|r| match r.finish() {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(error = %e, "recording could not be finished");
                None
            }
        });
        m.calls_active.fetch_sub(1, Ordering::Relaxed);
        info!(
            ?reason,
            packets_in = stats.packets_received,
            packets_out = stats.packets_sent,
            loss_percent = format_args!("{:.2}", stats.loss_percent),
            jitter_ms = format_args!("{:.1}", stats.jitter_ms),
            mos = format_args!("{:.2}", stats.mos),
            "media ended"
        );
        let _ = self.shared.events.send(MediaEvent::Ended {
            call: self.call,
            stats,
            recording,
        });
    }

    fn on_datagram(&mut self, from: SocketAddr, data: &[u8], rtcp: bool) {
        let now = Instant::now().into_std();
        let m = &self.shared.metrics;
        let r = if rtcp {
            self.session.handle_rtcp(now, from, data)
        } else {
            self.session.handle_rtp(now, from, data)
        };
        match r {
            Received::Audio | Received::Dtmf => MediaMetrics::add(&m.packets_in, 1),
            Received::WrongSource => MediaMetrics::add(&m.wrong_source, 1),
            Received::Malformed | Received::UnknownPayloadType => {
                MediaMetrics::add(&m.malformed, 1)
            }
            _ => {}
        }
        self.drain_events();
    }

    fn on_clock(&mut self, n: u64) {
        let m = Arc::clone(&self.shared.metrics);
        let period = Duration::from_millis(u64::from(FRAME_MS));
        let first = match self.last_tick {
            Some(last) if n <= last => return,
            Some(last) => last + 1,
            None => n,
        };
        let first = if n - first >= MAX_CATCH_UP {
            MediaMetrics::add(&m.skipped_ticks, n - first + 1 - MAX_CATCH_UP);
            n + 1 - MAX_CATCH_UP
        } else {
            first
        };
        for k in first..=n {
            let start = Instant::now();
            let deadline = self.shared.origin + period * k as u32;
            let late = start.saturating_duration_since(deadline);
            m.tick_lateness.record(late);
            if late > period {
                MediaMetrics::add(&m.late_frames, 1);
            }
            self.session.tick(start.into_std());
            while let Some(t) = self.session.poll_transmit() {
                let sock = match t.kind {
                    TransmitKind::Rtp => &self.rtp,
                    TransmitKind::Rtcp => &self.rtcp,
                };
                match sock.try_send_to(t.data, t.to) {
                    Ok(_) if t.kind == TransmitKind::Rtp => MediaMetrics::add(&m.packets_out, 1),
                    Ok(_) => {}
                    Err(e) => {
                        MediaMetrics::add(&m.send_errors, 1);
                        debug!(error = %e, to = %t.to, "send failed");
                    }
                }
            }
            m.frame_time.record(start.elapsed());
            if let Some(rec) = &mut self.recorder {
                let spf = self.session.rate().samples_per_frame();
                let caller = &self.session.last_inbound().samples()[..spf];
                let agent = &self.session.last_outbound().samples()[..spf];
                if let Err(e) = rec.write(caller, agent) {
                    warn!(error = %e, "recording stopped");
                    self.recorder = None;
                }
            }
        }
        self.last_tick = Some(n);
        self.drain_events();
    }

    fn drain_events(&mut self) {
        while let Some(ev) = self.session.poll_event() {
            let call = self.call;
            match ev {
                SessionEvent::HangupRequested => {
                    let _ = self
                        .shared
                        .events
                        .send(MediaEvent::HangupRequested { call });
                }
                SessionEvent::MediaTimeout => {
                    warn!("no RTP from the peer: media timeout");
                    let _ = self.shared.events.send(MediaEvent::MediaTimeout { call });
                }
                SessionEvent::Latched(addr) => debug!(%addr, "media latched"),
                SessionEvent::SsrcChanged { old, new } => {
                    debug!(old = old.0, new = new.0, "peer SSRC changed")
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
}
