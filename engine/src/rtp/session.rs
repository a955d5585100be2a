//! One call's RTP session, sans-IO.
//!
//! The session owns everything a call's media needs between the socket and
//! the [`TransportPort`]: source latching (symmetric RTP, RTP-bleed
//! protection), SSRC tracking and sequence/timestamp unwrapping, receive
//! statistics, the jitter buffer and decoder, RFC 4733 DTMF in and out, the
//! encoder, and RTCP reports. The driver (`crate::media`) feeds it
//! datagrams with [`RtpSession::handle_rtp`] / [`RtpSession::handle_rtcp`],
//! calls [`RtpSession::tick`] on every 20 ms tick of the shared media clock,
//! and sends what [`RtpSession::poll_transmit`] hands back.
//!
//! Nothing here reads a clock, touches a socket or allocates per packet:
//! `now` is an argument, datagrams are written into buffers owned by the
//! session, and frames move through the port's preallocated queues.

use super::decoder::{FrameDecoder, G711Decoder, OpusFrameDecoder};
use super::jitter::{JitterBuffer, JitterConfig, Pull};
use super::packet::{PayloadType, RtpHeader, RtpPacket, Ssrc};
use super::rtcp::{self, ReportBlock, RtcpPacket, SenderInfo};
use super::stats::{mos, MosCodec, ReceiveStats, SeqUnwrapper, TsUnwrapper};
use super::telephone_event::{DtmfDetector, DtmfSender, TelephoneEvent};
use crate::sdp::{Codec, Direction, Negotiated};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use vocelio_codecs::g711::{linear_to_alaw, linear_to_ulaw, Law};
use vocelio_codecs::opus::OpusEncoder;
use vocelio_codecs::port::{HangupReason, PortControl, PortEvent, TransportPort};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};

/// Largest datagram we build or accept.
pub const MAX_DATAGRAM: usize = 1500;

/// How long a telephone-event may go without packets before it is reported
/// without its end packet.
const DTMF_TIMEOUT: Duration = Duration::from_millis(200);

/// Within this long of the media start, a source other than the negotiated
/// address (the peer behind a NAT) may be learned.
const LATCH_WINDOW: Duration = Duration::from_secs(2);

/// Packets in sequence a source other than the negotiated one must send
/// before it is learned (as Asterisk's `strictrtp` learning mode).
const LEARN_PACKETS: u8 = 4;

/// Session settings.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our SSRC.
    pub local_ssrc: Ssrc,
    /// Our RTCP CNAME.
    pub cname: String,
    /// Jitter buffer delay bounds.
    pub jitter_min_ms: u32,
    /// Upper bound.
    pub jitter_max_ms: u32,
    /// Mean interval between RTCP reports (randomised 0.5-1.5x, RFC 3550 6.2).
    pub rtcp_interval: Duration,
    /// No RTP for this long (while the peer should be sending): the call's
    /// media is declared dead.
    pub media_timeout: Duration,
    /// Seed for the first sequence number, timestamp and RTCP jitter.
    pub seed: u64,
    /// Wall-clock time that `epoch` corresponds to (for RTCP NTP timestamps).
    pub wallclock: SystemTime,
    /// The `Instant` at which `wallclock` was read.
    pub epoch: Instant,
}

impl SessionConfig {
    /// Defaults: 20-60 ms jitter buffer, RTCP every ~5 s, 60 s media timeout.
    pub fn new(local_ssrc: Ssrc, seed: u64, epoch: Instant, wallclock: SystemTime) -> Self {
        SessionConfig {
            local_ssrc,
            cname: format!("vocelio-{:08x}", local_ssrc.0),
            jitter_min_ms: 20,
            jitter_max_ms: 60,
            rtcp_interval: Duration::from_secs(5),
            media_timeout: Duration::from_secs(60),
            seed,
            wallclock,
            epoch,
        }
    }
}

/// What happened to an incoming datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Received {
    /// Audio queued for playout.
    Audio,
    /// A telephone-event packet.
    Dtmf,
    /// From a source other than the call's peer (RTP bleed): dropped.
    WrongSource,
    /// Not a valid RTP packet.
    Malformed,
    /// A payload type that was not negotiated.
    UnknownPayloadType,
    /// The jitter buffer refused it (duplicate, late, too large, full).
    Discarded,
    /// An RTCP packet.
    Rtcp,
}

/// Something the driver should act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// The pipeline asked to end the call (send BYE).
    HangupRequested,
    /// No RTP from the peer for [`SessionConfig::media_timeout`].
    MediaTimeout,
    /// Media latched to this source.
    Latched(SocketAddr),
    /// An RTCP report went out: fresh quality figures are in [`RtpSession::stats`].
    Reported,
    /// The peer's SSRC changed (stream restarted).
    SsrcChanged {
        /// The old SSRC.
        old: Ssrc,
        /// The new one.
        new: Ssrc,
    },
}

/// Kind of an outgoing datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransmitKind {
    /// To the RTP port.
    Rtp,
    /// To the RTCP port.
    Rtcp,
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit<'a> {
    /// RTP or RTCP socket.
    pub kind: TransmitKind,
    /// Destination.
    pub to: SocketAddr,
    /// The bytes.
    pub data: &'a [u8],
}

/// A call's media statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaStats {
    /// RTP packets accepted from the peer.
    pub packets_received: u64,
    /// Packets the peer sent that never arrived (RFC 3550 cumulative loss).
    pub packets_lost: i64,
    /// Loss over the call so far, in percent.
    pub loss_percent: f64,
    /// Interarrival jitter in ms.
    pub jitter_ms: f64,
    /// Round-trip time from RTCP, if the peer sent an RR for our SR.
    pub rtt_ms: Option<f64>,
    /// E-model MOS estimate (1.0-4.5).
    pub mos: f64,
    /// Datagrams dropped because they came from another source.
    pub wrong_source: u64,
    /// Malformed datagrams.
    pub malformed: u64,
    /// Packets discarded by the jitter buffer (duplicate, late, overflow).
    pub discarded: u64,
    /// Samples of loss concealment played to the pipeline.
    pub concealed_samples: u64,
    /// Current jitter-buffer target delay in ms.
    pub jitter_target_ms: u32,
    /// RTP packets we sent.
    pub packets_sent: u64,
    /// RTCP reports we sent.
    pub rtcp_sent: u64,
    /// RTCP packets received.
    pub rtcp_received: u64,
    /// DTMF digits received over RTP.
    pub dtmf_received: u64,
    /// SSRC changes seen.
    pub ssrc_changes: u64,
}

enum Encoder {
    G711(Law),
    Opus(Box<OpusEncoder>),
}

/// Why a session could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The negotiated codec is not one we can run.
    #[error("cannot run codec {codec:?} at {clock_rate} Hz")]
    Codec {
        /// Codec.
        codec: Codec,
        /// Its RTP clock rate.
        clock_rate: u32,
    },
    /// A payload type outside 0-127.
    #[error("invalid RTP payload type {pt}")]
    PayloadType {
        /// The value negotiated.
        pt: u8,
    },
    /// The Opus codec could not be created.
    #[error("opus: {0}")]
    Opus(#[from] vocelio_codecs::opus::OpusError),
    /// The decoder could not be created.
    #[error("decoder: {0}")]
    Decoder(#[from] super::decoder::DecodeError),
    /// The jitter buffer settings are invalid.
    #[error("jitter buffer: {0}")]
    Jitter(#[from] super::jitter::JitterError),
}

/// The sample rate frames have on a port for this codec.
pub fn port_rate(codec: Codec) -> SampleRate {
    match codec {
        Codec::Opus => SampleRate::Hz48000,
        _ => SampleRate::Hz8000,
    }
}

/// One call's RTP session.
pub struct RtpSession {
    cfg: SessionConfig,
    media: Negotiated,
    pt: PayloadType,
    te_pt: Option<PayloadType>,
    port: TransportPort,
    rate: SampleRate,
    spf: usize,
    // Receive side.
    latched: Option<SocketAddr>,
    latched_rtcp: Option<SocketAddr>,
    latch_deadline: Instant,
    candidate: Option<(SocketAddr, u16, u8)>,
    remote_ssrc: Option<Ssrc>,
    seq: SeqUnwrapper,
    ts: TsUnwrapper,
    rx: ReceiveStats,
    jitter: JitterBuffer,
    decoder: Box<dyn FrameDecoder + Send>,
    dtmf_in: DtmfDetector,
    dtmf_last: Option<Instant>,
    last_rtp: Option<Instant>,
    started: Option<Instant>,
    timed_out: bool,
    // Send side.
    encoder: Encoder,
    seq_out: u16,
    ts_out: u32,
    marker_next: bool,
    dtmf_out: DtmfSender,
    packets_sent: u32,
    octets_sent: u32,
    // RTCP.
    next_rtcp: Instant,
    rng: u64,
    last_sr_ntp: Option<(u32, Instant)>,
    rtt: Option<Duration>,
    last_sr_from_peer: Option<(u32, Instant)>,
    // Per-tick media.
    ticks: u64,
    inbound: AudioFrame,
    outbound: AudioFrame,
    played_agent: bool,
    // Output.
    rtp_out: [u8; MAX_DATAGRAM],
    rtp_len: usize,
    rtcp_out: [u8; MAX_DATAGRAM],
    rtcp_len: usize,
    events: [Option<SessionEvent>; 4],
    stats: MediaStats,
    hangup_requested: bool,
}

impl std::fmt::Debug for RtpSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtpSession")
            .field("codec", &self.media.codec)
            .field("remote", &self.media.remote_rtp)
            .field("latched", &self.latched)
            .field("remote_ssrc", &self.remote_ssrc)
            .field("ticks", &self.ticks)
            .finish_non_exhaustive()
    }
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

impl RtpSession {
    /// A session for `media`, feeding `port`, started at `now`.
    pub fn new(
        cfg: SessionConfig,
        media: Negotiated,
        port: TransportPort,
        now: Instant,
    ) -> Result<Self, SessionError> {
        let rate = port_rate(media.codec);
        let (encoder, decoder): (Encoder, Box<dyn FrameDecoder + Send>) = match media.codec {
            Codec::Pcmu => (Encoder::G711(Law::Mu), Box::new(G711Decoder::new(Law::Mu))),
            Codec::Pcma => (Encoder::G711(Law::A), Box::new(G711Decoder::new(Law::A))),
            Codec::Opus => (
                Encoder::Opus(Box::new(OpusEncoder::new(SampleRate::Hz48000)?)),
                Box::new(OpusFrameDecoder::new()?),
            ),
            #[allow(unreachable_patterns)]
            other => {
                return Err(SessionError::Codec {
                    codec: other,
                    clock_rate: media.clock_rate,
                })
            }
        };
        if media.clock_rate != rate.hz() {
            return Err(SessionError::Codec {
                codec: media.codec,
                clock_rate: media.clock_rate,
            });
        }
        let (pt, te_pt) = Self::payload_types(&media)?;
        let mut rng = cfg.seed | 1;
        let seq_out = xorshift(&mut rng) as u16;
        let ts_out = xorshift(&mut rng) as u32;
        let first_rtcp = now + cfg.rtcp_interval / 2;
        let jitter = JitterBuffer::new(JitterConfig {
            clock_rate: media.clock_rate,
            min_delay_ms: cfg.jitter_min_ms,
            max_delay_ms: cfg.jitter_max_ms,
            ..JitterConfig::new(media.clock_rate)
        })?;
        let te_clock = media.telephone_event_clock_rate.unwrap_or(media.clock_rate);
        Ok(RtpSession {
            rate,
            spf: rate.samples_per_frame(),
            latched: None,
            latched_rtcp: None,
            latch_deadline: now + LATCH_WINDOW,
            candidate: None,
            remote_ssrc: None,
            seq: SeqUnwrapper::default(),
            ts: TsUnwrapper::default(),
            rx: ReceiveStats::new(media.clock_rate),
            jitter,
            decoder,
            dtmf_in: DtmfDetector::default(),
            dtmf_last: None,
            last_rtp: None,
            started: None,
            timed_out: false,
            encoder,
            seq_out,
            ts_out,
            marker_next: true,
            dtmf_out: DtmfSender::new(te_clock, 20),
            packets_sent: 0,
            octets_sent: 0,
            next_rtcp: first_rtcp,
            rng,
            last_sr_ntp: None,
            rtt: None,
            last_sr_from_peer: None,
            ticks: 0,
            inbound: AudioFrame::silent(rate, MediaTime::ZERO),
            outbound: AudioFrame::silent(rate, MediaTime::ZERO),
            played_agent: false,
            rtp_out: [0; MAX_DATAGRAM],
            rtp_len: 0,
            rtcp_out: [0; MAX_DATAGRAM],
            rtcp_len: 0,
            events: [None; 4],
            stats: MediaStats::default(),
            hangup_requested: false,
            cfg,
            media,
            pt,
            te_pt,
            port,
        })
    }

    fn payload_types(
        media: &Negotiated,
    ) -> Result<(PayloadType, Option<PayloadType>), SessionError> {
        let bad = || SessionError::PayloadType {
            pt: media.payload_type,
        };
        let pt = PayloadType::new(media.payload_type).ok_or_else(bad)?;
        let te = match media.telephone_event_pt {
            Some(t) => Some(PayloadType::new(t).ok_or(SessionError::PayloadType { pt: t })?),
            None => None,
        };
        Ok((pt, te))
    }

    /// The frame rate on the port.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// The negotiated media in use.
    pub fn media(&self) -> &Negotiated {
        &self.media
    }

    /// Where RTP goes: the latched source, else the negotiated address.
    pub fn remote_rtp(&self) -> SocketAddr {
        self.latched.unwrap_or(self.media.remote_rtp)
    }

    fn remote_rtcp(&self) -> SocketAddr {
        self.latched_rtcp.unwrap_or_else(|| {
            let r = self.remote_rtp();
            SocketAddr::new(r.ip(), r.port().wrapping_add(1))
        })
    }

    /// The media clock: ticks played so far.
    pub fn media_time(&self) -> MediaTime {
        MediaTime::ZERO.plus_frames(self.ticks)
    }

    /// The peer re-negotiated (re-INVITE): new address, codec direction.
    /// A codec change rebuilds the decoder state; the port keeps its rate
    /// only if the new codec has the same one (G.711 <-> G.711).
    pub fn update_media(&mut self, media: Negotiated) -> Result<(), SessionError> {
        let (pt, te_pt) = Self::payload_types(&media)?;
        self.pt = pt;
        self.te_pt = te_pt;
        if media.remote_rtp != self.media.remote_rtp {
            self.latched = None;
            self.latched_rtcp = None;
            self.candidate = None;
        }
        if media.codec != self.media.codec && port_rate(media.codec) == self.rate {
            let law = if media.codec == Codec::Pcma {
                Law::A
            } else {
                Law::Mu
            };
            self.encoder = Encoder::G711(law);
            self.decoder = Box::new(G711Decoder::new(law));
            self.jitter.reset();
        }
        self.media = media;
        Ok(())
    }

    /// Queue an event for the driver. The queue is a fixed array drained
    /// every tick; a repeated `Reported` is coalesced, and when full the
    /// oldest informational event makes room, so a hangup or timeout is
    /// never lost.
    fn push_event(&mut self, ev: SessionEvent) {
        if ev == SessionEvent::Reported && self.events.contains(&Some(ev)) {
            return;
        }
        if let Some(slot) = self.events.iter_mut().find(|e| e.is_none()) {
            *slot = Some(ev);
            return;
        }
        let informational = |e: &Option<SessionEvent>| {
            matches!(
                e,
                Some(
                    SessionEvent::Reported
                        | SessionEvent::Latched(_)
                        | SessionEvent::SsrcChanged { .. }
                )
            )
        };
        if let Some(i) = self.events.iter().position(informational) {
            self.events[i..].rotate_left(1);
            if let Some(last) = self.events.last_mut() {
                *last = Some(ev);
            }
        }
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        let ev = self.events[0].take();
        self.events.rotate_left(1);
        ev
    }

    /// Whether a datagram from `from` belongs to this call (RTP-bleed
    /// protection, symmetric RTP).
    ///
    /// - The negotiated address is always accepted, and latched: once it has
    ///   been heard, nothing else is.
    /// - Until then, and only within [`LATCH_WINDOW`] of the media start,
    ///   another source (a NAT that rewrote the peer's address) is learned
    ///   after [`LEARN_PACKETS`] packets in sequence from it; its packets
    ///   are dropped while it is on probation. A later packet from the
    ///   negotiated address takes the latch back.
    fn accept_source(&mut self, now: Instant, from: SocketAddr, seq: u16) -> bool {
        let want = self.media.remote_rtp;
        if from == want {
            if self.latched != Some(from) {
                self.latched = Some(from);
                self.latched_rtcp = None;
                self.push_event(SessionEvent::Latched(from));
            }
            return true;
        }
        if let Some(l) = self.latched {
            return l == from;
        }
        if now > self.latch_deadline {
            return false;
        }
        let count = match self.candidate {
            Some((addr, last, n)) if addr == from && seq == last.wrapping_add(1) => n + 1,
            _ => 1,
        };
        self.candidate = Some((from, seq, count));
        if count >= LEARN_PACKETS {
            self.latched = Some(from);
            self.candidate = None;
            self.push_event(SessionEvent::Latched(from));
            true
        } else {
            false
        }
    }

    /// An RTP datagram arrived from `from` at `now`.
    pub fn handle_rtp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Received {
        if data.len() >= 2 && (200..=204).contains(&data[1]) {
            return self.handle_rtcp(now, from, data);
        }
        let pkt = match RtpPacket::parse(data) {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed += 1;
                return Received::Malformed;
            }
        };
        if !self.accept_source(now, from, pkt.header.sequence) {
            self.stats.wrong_source += 1;
            return Received::WrongSource;
        }
        let pt = pkt.header.payload_type.get();
        self.last_rtp = Some(now);
        self.timed_out = false;
        if Some(pt) == self.media.telephone_event_pt {
            self.on_telephone_event(now, &pkt);
            return Received::Dtmf;
        }
        if pt != self.media.payload_type {
            self.stats.malformed += 1;
            return Received::UnknownPayloadType;
        }
        let ssrc = pkt.header.ssrc;
        match self.remote_ssrc {
            Some(old) if old != ssrc => {
                self.stats.ssrc_changes += 1;
                self.seq = SeqUnwrapper::default();
                self.ts = TsUnwrapper::default();
                self.rx = ReceiveStats::new(self.media.clock_rate);
                self.jitter.reset();
                self.remote_ssrc = Some(ssrc);
                self.push_event(SessionEvent::SsrcChanged { old, new: ssrc });
            }
            None => self.remote_ssrc = Some(ssrc),
            _ => {}
        }
        let seq = self.seq.unwrap(pkt.header.sequence);
        let ts = self.ts.unwrap(pkt.header.timestamp);
        self.rx
            .on_packet(now, pkt.header.sequence, pkt.header.timestamp);
        self.stats.packets_received += 1;
        match self.jitter.insert(now, seq, ts, pkt.payload) {
            super::jitter::Insert::Queued => Received::Audio,
            _ => {
                self.stats.discarded += 1;
                Received::Discarded
            }
        }
    }

    fn on_telephone_event(&mut self, now: Instant, pkt: &RtpPacket<'_>) {
        let Ok(ev) = TelephoneEvent::parse(pkt.payload) else {
            self.stats.malformed += 1;
            return;
        };
        self.dtmf_last = Some(now);
        let clock = self
            .media
            .telephone_event_clock_rate
            .unwrap_or(self.media.clock_rate);
        if let Some(d) = self
            .dtmf_in
            .on_packet(pkt.header.timestamp, pkt.header.marker, &ev, clock)
        {
            self.report_dtmf(d.digit, d.duration_ms);
        }
    }

    fn report_dtmf(&mut self, digit: char, duration_ms: u32) {
        self.stats.dtmf_received += 1;
        let at = self.media_time();
        self.port.event(PortEvent::Dtmf {
            digit,
            duration_ms,
            at,
        });
    }

    /// A digit signalled out of band (SIP INFO): report it to the pipeline.
    pub fn dtmf_info(&mut self, digit: char, duration_ms: u32) {
        self.report_dtmf(digit, duration_ms);
    }

    /// An RTCP datagram arrived.
    pub fn handle_rtcp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) -> Received {
        let ok_source = match (self.latched, self.latched_rtcp) {
            (_, Some(r)) => r == from,
            (Some(l), None) => l.ip() == from.ip(),
            (None, None) => from.ip() == self.media.remote_rtp.ip(),
        };
        if !ok_source {
            self.stats.wrong_source += 1;
            return Received::WrongSource;
        }
        if self.latched_rtcp.is_none() {
            self.latched_rtcp = Some(from);
        }
        self.stats.rtcp_received += 1;
        for pkt in rtcp::parse_compound(data) {
            let Ok(pkt) = pkt else {
                self.stats.malformed += 1;
                break;
            };
            match pkt {
                RtcpPacket::SenderReport { info, reports, .. } => {
                    self.last_sr_from_peer = Some((rtcp::ntp_middle_32(info.ntp), now));
                    for b in reports {
                        self.on_report_block(now, &b);
                    }
                }
                RtcpPacket::ReceiverReport { reports, .. } => {
                    for b in reports {
                        self.on_report_block(now, &b);
                    }
                }
                _ => {}
            }
        }
        Received::Rtcp
    }

    fn on_report_block(&mut self, now: Instant, b: &ReportBlock) {
        if b.ssrc != self.cfg.local_ssrc || b.last_sr == 0 {
            return;
        }
        if let Some((lsr, _)) = self.last_sr_ntp {
            if lsr == b.last_sr {
                let arrival = rtcp::ntp_middle_32(self.ntp(now));
                let rtt = arrival
                    .wrapping_sub(b.last_sr)
                    .wrapping_sub(b.delay_since_last_sr);
                if rtt < (10 << 16) {
                    self.rtt = Some(Duration::from_micros(u64::from(rtt) * 1_000_000 / 65_536));
                }
            }
        }
    }

    fn ntp(&self, now: Instant) -> u64 {
        let wall = self.cfg.wallclock + now.saturating_duration_since(self.cfg.epoch);
        let since = wall.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() + 2_208_988_800;
        let frac = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
        (secs << 32) | frac
    }

    fn receiving(&self) -> bool {
        matches!(
            self.media.direction,
            Direction::SendRecv | Direction::RecvOnly
        )
    }

    fn sending(&self) -> bool {
        matches!(
            self.media.direction,
            Direction::SendRecv | Direction::SendOnly
        ) && !self.remote_rtp().ip().is_unspecified()
    }

    /// One 20 ms tick of the media clock at `now`: hand the pipeline its
    /// inbound frame, apply its control messages, build the outbound packet
    /// and, when due, an RTCP report. Then drain [`RtpSession::poll_transmit`].
    pub fn tick(&mut self, now: Instant) {
        let at = self.media_time();
        if self.ticks == 0 {
            self.port.event(PortEvent::Started);
        }
        // Inbound: exactly one frame per tick, silence when there is nothing.
        self.inbound.set_rate(self.rate);
        self.inbound.set_time(at);
        let spf = self.spf;
        let pulled = self.jitter.pull(
            now,
            self.decoder.as_mut(),
            &mut self.inbound.samples_mut()[..spf],
        );
        if let Pull::Concealed { samples } = pulled {
            self.stats.concealed_samples += samples as u64;
        }
        self.port.deliver(self.inbound.clone());
        // A telephone-event whose end packets were all lost.
        if let Some(last) = self.dtmf_last {
            if now.saturating_duration_since(last) > DTMF_TIMEOUT {
                self.dtmf_last = None;
                if let Some(d) = self.dtmf_in.on_timeout() {
                    self.report_dtmf(d.digit, d.duration_ms);
                }
            }
        }
        // Control overtakes queued audio.
        while let Some(c) = self.port.poll_control() {
            match c {
                PortControl::Flush => {
                    self.port.flush(at);
                }
                PortControl::SendDtmf {
                    digits,
                    duration_ms,
                } => {
                    self.dtmf_out.queue(&digits, duration_ms);
                }
                PortControl::Hangup if !self.hangup_requested => {
                    self.hangup_requested = true;
                    self.push_event(SessionEvent::HangupRequested);
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
        self.send_tick(at);
        self.ticks += 1;
        // Media timeout.
        let started = *self.started.get_or_insert(now);
        if self.receiving() && !self.timed_out {
            let since = self.last_rtp.unwrap_or(started);
            if now.saturating_duration_since(since) > self.cfg.media_timeout {
                self.timed_out = true;
                self.push_event(SessionEvent::MediaTimeout);
            }
        }
        if now >= self.next_rtcp {
            self.build_rtcp(now);
            let r = xorshift(&mut self.rng) % 1000;
            let interval = self.cfg.rtcp_interval.mul_f64(0.5 + r as f64 / 1000.0);
            self.next_rtcp = now + interval;
        }
    }

    fn send_tick(&mut self, at: MediaTime) {
        let audio_ts = self.ts_out;
        self.ts_out = self.ts_out.wrapping_add(self.spf as u32);
        // The pipeline's next frame (always taken, so the queue keeps time
        // even while a DTMF tone goes out instead or media is on hold).
        self.outbound.set_rate(self.rate);
        let have = self.port.next_playout_into(at, &mut self.outbound);
        if !have {
            self.outbound.samples_mut().fill(0);
        }
        self.played_agent = have;
        if !self.sending() {
            self.rtp_len = 0;
            return;
        }
        if let (Some(te_pt), true) = (self.te_pt, self.dtmf_out.is_active()) {
            if let Some(out) = self.dtmf_out.next(audio_ts) {
                let header = RtpHeader {
                    marker: out.marker,
                    payload_type: te_pt,
                    sequence: self.next_seq(),
                    timestamp: out.timestamp,
                    ssrc: self.cfg.local_ssrc,
                };
                let n = header.write_to(&mut self.rtp_out).unwrap_or(0);
                let m = out
                    .event
                    .write_to(&mut self.rtp_out[n..])
                    .unwrap_or_default();
                self.finish_rtp(n + m, m);
                self.marker_next = true;
                return;
            }
        }
        let header = RtpHeader {
            marker: std::mem::take(&mut self.marker_next),
            payload_type: self.pt,
            sequence: self.next_seq(),
            timestamp: audio_ts,
            ssrc: self.cfg.local_ssrc,
        };
        let Ok(n) = header.write_to(&mut self.rtp_out) else {
            self.rtp_len = 0;
            return;
        };
        let pcm = &self.outbound.samples()[..self.spf];
        let payload = &mut self.rtp_out[n..];
        let m = match &mut self.encoder {
            Encoder::G711(Law::Mu) => {
                for (o, &s) in payload.iter_mut().zip(pcm) {
                    *o = linear_to_ulaw(s);
                }
                pcm.len()
            }
            Encoder::G711(_) => {
                for (o, &s) in payload.iter_mut().zip(pcm) {
                    *o = linear_to_alaw(s);
                }
                pcm.len()
            }
            Encoder::Opus(enc) => enc.encode(&self.outbound, payload).unwrap_or(0),
        };
        if m == 0 {
            self.rtp_len = 0;
            return;
        }
        self.finish_rtp(n + m, m);
    }

    fn next_seq(&mut self) -> u16 {
        let s = self.seq_out;
        self.seq_out = self.seq_out.wrapping_add(1);
        s
    }

    fn finish_rtp(&mut self, len: usize, payload: usize) {
        self.rtp_len = len;
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self.octets_sent.wrapping_add(payload as u32);
        self.stats.packets_sent += 1;
    }

    fn build_rtcp(&mut self, now: Instant) {
        let ntp = self.ntp(now);
        let mut blocks = [ReportBlock::default(); 1];
        let n_blocks = match self.remote_ssrc {
            Some(ssrc) if self.stats.packets_received > 0 => {
                let r = self.rx.report();
                let (lsr, dlsr) = match self.last_sr_from_peer {
                    Some((lsr, at)) => {
                        let d = now.saturating_duration_since(at);
                        (lsr, (d.as_micros() as u64 * 65_536 / 1_000_000) as u32)
                    }
                    None => (0, 0),
                };
                blocks[0] = ReportBlock {
                    ssrc,
                    fraction_lost: r.fraction_lost,
                    cumulative_lost: r.cumulative_lost,
                    highest_seq: r.extended_highest_seq,
                    jitter: r.jitter,
                    last_sr: lsr,
                    delay_since_last_sr: dlsr,
                };
                1
            }
            _ => 0,
        };
        let sender = (self.packets_sent > 0).then_some(SenderInfo {
            ntp,
            rtp_timestamp: self.ts_out,
            packet_count: self.packets_sent,
            octet_count: self.octets_sent,
        });
        if sender.is_some() {
            self.last_sr_ntp = Some((rtcp::ntp_middle_32(ntp), now));
        }
        match rtcp::write_report(
            &mut self.rtcp_out,
            self.cfg.local_ssrc,
            sender.as_ref(),
            &blocks[..n_blocks],
            &self.cfg.cname,
        ) {
            Ok(n) => {
                self.rtcp_len = n;
                self.stats.rtcp_sent += 1;
                self.push_event(SessionEvent::Reported);
            }
            Err(_) => self.rtcp_len = 0,
        }
    }

    /// The next datagram to send, if any (call until `None` after each
    /// [`RtpSession::tick`]).
    pub fn poll_transmit(&mut self) -> Option<Transmit<'_>> {
        if self.rtp_len > 0 {
            let len = std::mem::take(&mut self.rtp_len);
            let to = self.remote_rtp();
            return Some(Transmit {
                kind: TransmitKind::Rtp,
                to,
                data: &self.rtp_out[..len],
            });
        }
        if self.rtcp_len > 0 {
            let len = std::mem::take(&mut self.rtcp_len);
            let to = self.remote_rtcp();
            return Some(Transmit {
                kind: TransmitKind::Rtcp,
                to,
                data: &self.rtcp_out[..len],
            });
        }
        None
    }

    /// The caller's frame delivered on the last tick.
    pub fn last_inbound(&self) -> &AudioFrame {
        &self.inbound
    }

    /// The agent's frame played on the last tick (silence if none).
    pub fn last_outbound(&self) -> &AudioFrame {
        &self.outbound
    }

    /// Whether the last tick played agent audio.
    pub fn played_agent_audio(&self) -> bool {
        self.played_agent
    }

    /// The call is over: tell the pipeline.
    pub fn hang_up(&mut self, reason: HangupReason) {
        let at = self.media_time();
        self.port.hang_up(reason, at);
    }

    /// Statistics so far, with a fresh MOS estimate.
    pub fn stats(&self) -> MediaStats {
        let mut s = self.stats;
        let expected = s.packets_received as i64 + self.rx.packets_lost().max(0);
        s.packets_lost = self.rx.packets_lost();
        s.loss_percent = if expected > 0 {
            100.0 * s.packets_lost.max(0) as f64 / expected as f64
        } else {
            0.0
        };
        s.jitter_ms = self.rx.jitter_ms();
        s.rtt_ms = self.rtt.map(|d| d.as_secs_f64() * 1000.0);
        let js = self.jitter.stats();
        s.discarded = s.discarded.max(js.duplicates + js.late + js.overflow);
        s.jitter_target_ms = self.jitter.target_delay_ms();
        let one_way =
            s.rtt_ms.unwrap_or(0.0) / 2.0 + f64::from(self.jitter.target_delay_ms()) + 20.0;
        let codec = match self.media.codec {
            Codec::Opus => MosCodec::Opus,
            _ => MosCodec::G711,
        };
        s.mos = mos(codec, s.loss_percent, one_way);
        s
    }

    /// Counters of the port.
    pub fn port(&self) -> &TransportPort {
        &self.port
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::telephone_event::DtmfDetector;
    use vocelio_codecs::g711::ulaw_to_linear;
    use vocelio_codecs::port::{local_pair, MediaPort, PortEvent};

    const PEER: &str = "192.0.2.10:40000";
    const TICK: Duration = Duration::from_millis(20);

    fn media(ptime: u8) -> Negotiated {
        Negotiated {
            remote_rtp: PEER.parse().unwrap(),
            codec: Codec::Pcmu,
            payload_type: 0,
            clock_rate: 8000,
            telephone_event_pt: Some(101),
            telephone_event_clock_rate: Some(8000),
            ptime,
            direction: Direction::SendRecv,
        }
    }

    struct Rig {
        s: RtpSession,
        port: MediaPort,
        now: Instant,
        seq: u16,
        ts: u32,
    }

    fn rig(ptime: u8) -> Rig {
        let now = Instant::now();
        let (port, tp) = local_pair("c", SampleRate::Hz8000);
        let cfg = SessionConfig::new(Ssrc(0x1234), 9, now, SystemTime::UNIX_EPOCH);
        Rig {
            s: RtpSession::new(cfg, media(ptime), tp, now).unwrap(),
            port,
            now,
            seq: 65_530,
            ts: u32::MAX - 1000,
        }
    }

    /// A PCMU packet whose samples all decode to `level` (one of mu-law's values).
    fn packet(seq: u16, ts: u32, ssrc: u32, samples: usize, code: u8) -> Vec<u8> {
        let mut buf = vec![0u8; 12 + samples];
        let h = RtpHeader {
            marker: false,
            payload_type: PayloadType::new(0).unwrap(),
            sequence: seq,
            timestamp: ts,
            ssrc: Ssrc(ssrc),
        };
        let n = h.write_to(&mut buf).unwrap();
        buf[n..].fill(code);
        buf
    }

    impl Rig {
        /// Send the next `ptime` packet from the peer with mu-law `code`.
        fn send(&mut self, from: &str, code: u8, samples: usize) -> Received {
            let p = packet(self.seq, self.ts, 0xabc, samples, code);
            self.seq = self.seq.wrapping_add(1);
            self.ts = self.ts.wrapping_add(samples as u32);
            self.s.handle_rtp(self.now, from.parse().unwrap(), &p)
        }

        /// One tick; returns the frame the pipeline got.
        fn tick(&mut self) -> Vec<i16> {
            self.s.tick(self.now);
            self.now += TICK;
            while self.s.poll_transmit().is_some() {}
            let f = self.port.audio.try_recv().expect("a frame every tick");
            f.samples().to_vec()
        }
    }

    #[test]
    fn every_tick_delivers_one_frame_and_sends_one_packet() {
        let mut r = rig(20);
        let mut sent = 0;
        for _ in 0..50 {
            r.s.tick(r.now);
            r.now += TICK;
            while let Some(t) = r.s.poll_transmit() {
                if t.kind == TransmitKind::Rtp {
                    sent += 1;
                    assert_eq!(t.to, PEER.parse().unwrap());
                    let p = RtpPacket::parse(t.data).unwrap();
                    assert_eq!(p.payload.len(), 160);
                }
            }
            assert!(r.port.audio.try_recv().is_ok());
        }
        assert_eq!(sent, 50);
        assert_eq!(r.port.events.try_recv(), Ok(PortEvent::Started));
    }

    #[test]
    fn speech_flows_through_sequence_and_timestamp_wrap() {
        // Sequence numbers start at 65530 and timestamps just below u32::MAX: both wrap.
        let mut r = rig(20);
        let code = 0x20; // a loud mu-law value
        let level = ulaw_to_linear(code);
        let mut got = Vec::new();
        for _ in 0..100 {
            assert_eq!(r.send(PEER, code, 160), Received::Audio);
            got.extend(r.tick());
        }
        let loud = got.iter().filter(|&&s| s == level).count();
        // All but the jitter buffer's start-up delay (<= 60 ms) arrives bit-exact.
        assert!(loud >= 160 * 97, "{loud}");
        assert_eq!(r.s.stats().packets_received, 100);
        assert_eq!(r.s.stats().packets_lost, 0);
    }

    #[test]
    fn ptime_30_arrives_as_gapless_20_ms_frames() {
        let mut r = rig(30);
        let code = 0x20;
        let level = ulaw_to_linear(code);
        let mut got = Vec::new();
        // Two 30 ms packets per three 20 ms ticks.
        for i in 0..150 {
            if i % 3 != 2 {
                r.send(PEER, code, 240);
            }
            got.extend(r.tick());
        }
        let first = got.iter().position(|&s| s == level).unwrap();
        assert!(first <= 160 * 4, "start-up delay {first} samples");
        let last = got.iter().rposition(|&s| s == level).unwrap();
        assert!(
            got[first..=last].iter().all(|&s| s == level),
            "a gap inside the stream"
        );
    }

    #[test]
    fn rtp_bleed_from_a_third_party_never_reaches_the_pipeline() {
        let mut r = rig(20);
        let rogue = "192.0.2.66:5004";
        let loud = 0x00; // the loudest negative mu-law code
        let mut got = Vec::new();
        for i in 0..100 {
            // The rogue sends first and in perfect sequence, even before the peer starts.
            let p = packet(i, u32::from(i) * 160, 0xbad, 160, loud);
            assert_eq!(
                r.s.handle_rtp(r.now, rogue.parse().unwrap(), &p),
                Received::WrongSource
            );
            if i >= 2 {
                r.send(PEER, 0xff, 160);
            }
            got.extend(r.tick());
        }
        assert!(
            got.iter().all(|&s| s == 0),
            "rogue audio reached the pipeline"
        );
        assert_eq!(r.s.stats().wrong_source, 100);
        assert_eq!(r.s.remote_rtp(), PEER.parse().unwrap());
    }

    #[test]
    fn a_nat_rewritten_source_is_learned_only_on_probation() {
        let mut r = rig(20);
        let nat = "198.51.100.7:61000";
        let code = 0x20;
        for _ in 0..3 {
            assert_eq!(r.send(nat, code, 160), Received::WrongSource);
            r.tick();
        }
        assert_eq!(r.send(nat, code, 160), Received::Audio);
        assert_eq!(r.s.remote_rtp(), nat.parse().unwrap(), "symmetric RTP");
        assert!(matches!(
            r.s.poll_event(),
            Some(SessionEvent::Latched(a)) if a == nat.parse().unwrap()
        ));
        // After the learning window nobody else is learned.
        let mut late = rig(20);
        late.now += LATCH_WINDOW + TICK;
        for _ in 0..10 {
            assert_eq!(late.send(nat, code, 160), Received::WrongSource);
        }
    }

    #[test]
    fn ssrc_change_restarts_the_stream() {
        let mut r = rig(20);
        for _ in 0..20 {
            r.send(PEER, 0x20, 160);
            r.tick();
        }
        // A new SSRC with unrelated sequence numbers and timestamps.
        r.seq = 7;
        r.ts = 123_456;
        let level = ulaw_to_linear(0x30);
        let mut got = Vec::new();
        for _ in 0..20 {
            let p = packet(r.seq, r.ts, 0xdef, 160, 0x30);
            r.seq += 1;
            r.ts += 160;
            assert_eq!(
                r.s.handle_rtp(r.now, PEER.parse().unwrap(), &p),
                Received::Audio
            );
            got.extend(r.tick());
        }
        assert!(got.iter().filter(|&&s| s == level).count() >= 160 * 16);
        assert_eq!(r.s.stats().ssrc_changes, 1);
        let mut saw = false;
        while let Some(ev) = r.s.poll_event() {
            saw |= matches!(
                ev,
                SessionEvent::SsrcChanged {
                    new: Ssrc(0xdef),
                    ..
                }
            );
        }
        assert!(saw);
    }

    fn te_packet(seq: u16, ts: u32, marker: bool, event: u8, end: bool, duration: u16) -> Vec<u8> {
        let mut buf = vec![0u8; 16];
        let h = RtpHeader {
            marker,
            payload_type: PayloadType::new(101).unwrap(),
            sequence: seq,
            timestamp: ts,
            ssrc: Ssrc(0xabc),
        };
        let n = h.write_to(&mut buf).unwrap();
        TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        }
        .write_to(&mut buf[n..])
        .unwrap();
        buf
    }

    #[test]
    fn an_end_packet_sent_three_times_is_one_digit() {
        let mut r = rig(20);
        let peer = PEER.parse().unwrap();
        for (i, (end, dur)) in [
            (false, 160),
            (false, 320),
            (false, 480),
            (true, 640),
            (true, 640),
            (true, 640),
        ]
        .into_iter()
        .enumerate()
        {
            let p = te_packet(100 + i as u16, 8000, i == 0, 1, end, dur);
            assert_eq!(r.s.handle_rtp(r.now, peer, &p), Received::Dtmf);
            r.tick();
        }
        // Let the detector's timeout pass too: still one digit.
        for _ in 0..20 {
            r.tick();
        }
        let digits: Vec<_> = r
            .port
            .events
            .try_iter()
            .filter_map(|e| match e {
                PortEvent::Dtmf {
                    digit, duration_ms, ..
                } => Some((digit, duration_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(digits, vec![('1', 80)]);
    }

    #[test]
    fn dtmf_out_goes_as_rfc4733_events_between_audio() {
        let mut r = rig(20);
        r.port
            .control(PortControl::SendDtmf {
                digits: "9#".into(),
                duration_ms: 100,
            })
            .unwrap();
        let mut det = DtmfDetector::new();
        let mut digits = Vec::new();
        let mut audio_packets = 0;
        for _ in 0..60 {
            r.s.tick(r.now);
            r.now += TICK;
            while let Some(t) = r.s.poll_transmit() {
                if t.kind != TransmitKind::Rtp {
                    continue;
                }
                let p = RtpPacket::parse(t.data).unwrap();
                if p.header.payload_type.get() == 101 {
                    let ev = TelephoneEvent::parse(p.payload).unwrap();
                    if let Some(d) = det.on_packet(p.header.timestamp, p.header.marker, &ev, 8000) {
                        digits.push(d.digit);
                    }
                } else {
                    audio_packets += 1;
                }
            }
        }
        assert_eq!(digits, vec!['9', '#']);
        assert!(audio_packets > 0, "audio resumes between and after digits");
    }

    #[test]
    fn flush_empties_the_playout_queue_within_one_frame() {
        let mut r = rig(20);
        let loud =
            AudioFrame::from_samples(SampleRate::Hz8000, MediaTime::ZERO, &[8000; 160]).unwrap();
        for _ in 0..7 {
            r.port.send_frame(loud.clone()).unwrap();
        }
        r.port.send_mark(1).unwrap();
        let mut loud_out = 0;
        for i in 0..6 {
            if i == 2 {
                r.port.control(PortControl::Flush).unwrap();
            }
            r.s.tick(r.now);
            r.now += TICK;
            while let Some(t) = r.s.poll_transmit() {
                if t.kind == TransmitKind::Rtp {
                    let p = RtpPacket::parse(t.data).unwrap();
                    if ulaw_to_linear(p.payload[0]).abs() > 1000 {
                        loud_out += 1;
                    }
                }
            }
        }
        assert_eq!(loud_out, 2, "nothing played after the flush's tick");
        let flushed = r
            .port
            .events
            .try_iter()
            .find(|e| matches!(e, PortEvent::Flushed { .. }));
        assert_eq!(
            flushed,
            Some(PortEvent::Flushed {
                dropped_frames: 5,
                dropped_marks: 1,
                at: MediaTime::ZERO.plus_frames(2)
            })
        );
    }

    #[test]
    fn rtcp_reports_about_every_five_seconds_with_quality() {
        let mut r = rig(20);
        let mut reports = Vec::new();
        for i in 0..1500u32 {
            // 2 % loss.
            if i % 50 != 7 {
                r.send(PEER, 0x20, 160);
            } else {
                r.seq = r.seq.wrapping_add(1);
                r.ts = r.ts.wrapping_add(160);
            }
            let at = r.now;
            r.s.tick(r.now);
            r.now += TICK;
            while let Some(t) = r.s.poll_transmit() {
                if t.kind == TransmitKind::Rtcp {
                    assert_eq!(t.to, "192.0.2.10:40001".parse().unwrap());
                    let mut saw_sr = false;
                    for p in rtcp::parse_compound(t.data) {
                        if let RtcpPacket::SenderReport { reports: b, .. } = p.unwrap() {
                            saw_sr = true;
                            assert_eq!(b.len(), 1);
                        }
                    }
                    assert!(saw_sr);
                    reports.push(at);
                }
            }
        }
        // 30 s of call: RTCP every 2.5-7.5 s (first at 2.5 s).
        assert!((4..=12).contains(&reports.len()), "{}", reports.len());
        for w in reports.windows(2) {
            let gap = w[1] - w[0];
            assert!(
                gap >= Duration::from_millis(2500) && gap <= Duration::from_millis(7520),
                "{gap:?}"
            );
        }
        let st = r.s.stats();
        assert!((1.5..2.5).contains(&st.loss_percent), "{st:?}");
        assert!(st.mos < 4.4 && st.mos > 3.5, "{st:?}");
    }

    #[test]
    fn pipeline_hangup_becomes_an_event() {
        let mut r = rig(20);
        r.port.control(PortControl::Hangup).unwrap();
        r.tick();
        let evs: Vec<_> = std::iter::from_fn(|| r.s.poll_event()).collect();
        assert!(evs.contains(&SessionEvent::HangupRequested));
    }

    #[test]
    fn media_timeout_when_the_peer_goes_silent() {
        let mut r = rig(20);
        r.send(PEER, 0x20, 160);
        for _ in 0..(60 * 50 + 5) {
            r.tick();
        }
        let evs: Vec<_> = std::iter::from_fn(|| r.s.poll_event()).collect();
        assert!(evs.contains(&SessionEvent::MediaTimeout), "{evs:?}");
    }
}
