//! The media plane: RTP sockets, the shared 20 ms playout clock, and each
//! call's media port.
//!
//! - A handful of shard threads ([`MediaConfig::threads`], one by default)
//!   drive every call's sockets; there is no thread, task or timer per
//!   call. Each shard waits in one `epoll` (mio) over all its calls'
//!   sockets with a timeout at its next 20 ms tick, so packets are stamped
//!   when they arrive and every call's tick runs from the same clock
//!   (absolute deadlines, no drift). A shard that falls behind catches up
//!   at most [`MAX_CATCH_UP`] ticks, then skips and counts.
//! - Per tick and call: the [`RtpSession`] hands the pipeline one inbound
//!   frame and builds one outbound packet, sent with a non-blocking
//!   `send_to` (a full socket drops the packet and counts it; the clock
//!   never waits).
//! - The call's pipeline gets a [`MediaPort`]; events the application must
//!   act on (the pipeline hung up, media timed out, the call's final
//!   statistics) arrive as [`MediaEvent`]s on a tokio channel.
//! - [`bridge`] wires it to the SIP endpoint; [`echo`] is a passthrough
//!   agent for tests and the capacity harness.

pub mod bridge;
pub mod echo;
pub mod metrics;
mod shard;

use crate::endpoint::CallHandle;
use crate::rtp::packet::Ssrc;
use crate::rtp::session::{port_rate, MediaStats, RtpSession, SessionConfig, SessionError};
use crate::sdp::Negotiated;
use metrics::MediaMetrics;
use shard::{Shard, ShardCommand, ShardHandle};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;
use vocelio_codecs::port::{pair, HangupReason, MediaPort, PortConfig, PortInfo, TransportKind};
use vocelio_codecs::wav::StereoRecorder;

/// Most ticks a late shard runs back to back before skipping ahead.
pub const MAX_CATCH_UP: u64 = 5;

/// Media-plane settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Address RTP sockets bind to.
    pub bind_ip: IpAddr,
    /// Shard threads driving the calls' sockets (calls are spread over them).
    pub threads: usize,
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
            threads: 1,
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
    /// A shard thread could not be started.
    #[error("cannot start a media thread: {0}")]
    Thread(std::io::Error),
    /// The negotiated media cannot run.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The recording file could not be created.
    #[error("recording: {0}")]
    Recording(#[from] vocelio_codecs::wav::WavError),
    /// The call's media (or the media plane) has stopped.
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
    /// Quality so far (loss, jitter, RTT, MOS), every RTCP report (~5 s).
    Quality {
        /// The call.
        call: CallHandle,
        /// Statistics at this point.
        stats: MediaStats,
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

struct Shared {
    cfg: MediaConfig,
    metrics: Arc<MediaMetrics>,
    shards: Vec<ShardHandle>,
    next_shard: AtomicU64,
    ssrc_seq: AtomicU64,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for s in &self.shards {
            s.send(ShardCommand::Stop);
        }
    }
}

/// The media plane. Cheap to clone; the shard threads stop (closing every
/// call with [`HangupReason::Shutdown`]) when the last clone is dropped.
#[derive(Clone)]
pub struct MediaEngine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MediaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEngine")
            .field("bind_ip", &self.shared.cfg.bind_ip)
            .field("threads", &self.shared.shards.len())
            .finish_non_exhaustive()
    }
}

/// Control of one call's media.
#[derive(Debug, Clone)]
pub struct MediaCall {
    call: CallHandle,
    shard: ShardHandle,
}

impl MediaCall {
    /// The call.
    pub fn call(&self) -> CallHandle {
        self.call
    }

    /// New negotiated media (re-INVITE, hold, late offer).
    pub fn update(&self, media: Negotiated) -> Result<(), MediaError> {
        self.shard
            .try_send(ShardCommand::Update(self.call, Box::new(media)))
    }

    /// A DTMF digit that arrived by SIP INFO.
    pub fn dtmf(&self, digit: char, duration_ms: u32) -> Result<(), MediaError> {
        self.shard.try_send(ShardCommand::Dtmf {
            call: self.call,
            digit,
            duration_ms,
        })
    }

    /// Stop the media; the pipeline gets a hangup event with `reason`.
    pub fn close(&self, reason: HangupReason) {
        self.shard.send(ShardCommand::Close(self.call, reason));
    }
}

impl MediaEngine {
    /// Start the media plane's shard threads. Events arrive on the
    /// returned receiver.
    pub fn start(
        cfg: MediaConfig,
    ) -> Result<(MediaEngine, mpsc::UnboundedReceiver<MediaEvent>), MediaError> {
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(MediaMetrics::default());
        let origin = Instant::now();
        let shards = (0..cfg.threads.max(1))
            .map(|i| Shard::spawn(i, origin, Arc::clone(&metrics), ev_tx.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(MediaError::Thread)?;
        let engine = MediaEngine {
            shared: Arc::new(Shared {
                cfg,
                metrics,
                shards,
                next_shard: AtomicU64::new(0),
                ssrc_seq: AtomicU64::new(1),
            }),
        };
        Ok((engine, ev_rx))
    }

    /// The media plane's metrics.
    pub fn metrics(&self) -> Arc<MediaMetrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// Start a call's media on `local_port` (RTCP on the one above) with
    /// the negotiated `media`. Returns the pipeline's end of its port.
    pub fn open(
        &self,
        call: CallHandle,
        agent: &str,
        local_port: u16,
        media: Negotiated,
    ) -> Result<(MediaPort, MediaCall), MediaError> {
        let cfg = &self.shared.cfg;
        let bind = |port: u16| {
            let s = std::net::UdpSocket::bind(SocketAddr::new(cfg.bind_ip, port))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .map_err(|source| MediaError::Bind { port, source })?;
            Ok::<_, MediaError>(mio::net::UdpSocket::from_std(s))
        };
        let rtp = bind(local_port)?;
        let rtcp = bind(local_port.wrapping_add(1))?;
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
        let now = Instant::now();
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
        let n = self.shared.next_shard.fetch_add(1, Ordering::Relaxed) as usize;
        let shard = self.shared.shards[n % self.shared.shards.len()].clone();
        shard.try_send(ShardCommand::Open(Box::new(shard::NewCall {
            call,
            session,
            rtp,
            rtcp,
            recorder,
        })))?;
        Ok((port, MediaCall { call, shard }))
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
