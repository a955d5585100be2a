//! Adaptive reorder/jitter buffer, sans-IO.
//!
//! Packets go in with [`JitterBuffer::insert`] as they arrive, keyed by their
//! extended (unwrapped, 64-bit) RTP timestamp; the playout clock takes one
//! frame out at a time with [`JitterBuffer::pull`], which decodes, conceals
//! and adapts. Time is always an argument: nothing here reads the clock.
//!
//! # Timeline
//!
//! The buffer keeps a *playout position*: the RTP timestamp of the next
//! sample to hand out. Each pull fills exactly `out.len()` samples from that
//! position on. Packet lengths are not known until decoded (ptime 20, 30 and
//! 60 all work), so every decision is made in timestamps: a decoded packet
//! lands in a staging buffer and is handed out in frame-sized pieces; a hole
//! between the playout position and the next queued packet is concealed
//! exactly up to that packet's timestamp.
//!
//! # Adaptation
//!
//! - The jitter estimate is RFC 3550's interarrival jitter (A.8), computed
//!   from arrival instants against timestamps.
//! - Target delay = the packet cover + 3 x jitter + an underrun boost,
//!   clamped to `[min_delay_ms, max_delay_ms]`. The packet cover is what
//!   must be buffered right after an arrival for 20 ms pulls to last until
//!   the next packet: `ptime + 20 ms - gcd(ptime, 20 ms)`, so 20 ms for
//!   ptime 20, 40 ms for ptime 30, 60 ms for ptime 60.
//! - **Underrun** (nothing buffered at all when audio is due): the decoder
//!   conceals but the playout position *holds*, so the delay grows by the
//!   concealed amount and packets that are merely late still play. Each
//!   underrun adds 20 ms of boost (a late packet adds 10 ms); the boost
//!   decays by 5 ms per 5 s without underruns or late packets. Growing is
//!   fast, shrinking slow.
//! - **Loss** (a hole with later packets already queued): concealed and the
//!   playout position moves on; the missing packet, if it arrives after
//!   all, is [`Insert::Late`].
//! - **Shrink**: when over a whole second without underruns or late
//!   packets the buffered delay never fell below target + 20 ms, the excess
//!   is dropped from decoded audio (never from concealment), at a quiet
//!   moment if one comes within 3 s, else regardless. Random loss alone does
//!   not block shrinking: it says nothing about the delay being too short.
//! - **Jump**: after a hole or an underrun, if more than `max_delay + 20 ms`
//!   is buffered (a stream that paused, or a burst after an outage), the
//!   playout position jumps forward to the target delay at once.
//! - **Resync**: a packet more than 2 s ahead of the playout position, or
//!   two in a row more than 1 s + `max_delay` behind it, restart the stream
//!   at the new timestamps instead of concealing for seconds.
//! - **Idle**: once the buffer is drained and nothing has arrived for
//!   `max_delay + 200 ms`, pulls return [`Pull::Idle`] (silence, no more
//!   concealment) until packets come back, which start a new buffering.
//!
//! Nothing on the per-packet or per-frame path allocates: the packet slots
//! and the PCM staging buffer are sized in [`JitterBuffer::new`].

use std::time::{Duration, Instant};

use super::decoder::FrameDecoder;

/// The playout clock's frame: 20 ms.
const FRAME_MS: u64 = 20;
/// Longest packet the staging buffer is sized for: 120 ms (Opus' maximum).
const MAX_PACKET_MS: u64 = 120;
/// A timestamp this far ahead of the playout position restarts the stream.
const RESYNC_FORWARD_MS: u64 = 2_000;
/// Packets this far (plus `max_delay`) behind restart it when two agree.
const RESYNC_BACKWARD_MS: u64 = 1_000;
/// The stream is idle after `max_delay` plus this without packets.
const IDLE_AFTER_MS: u64 = 200;
/// Pulls per shrink window (1 s of 20 ms frames).
const WINDOW_PULLS: u32 = 50;
/// Clean pulls between two boost decay steps (5 s).
const BOOST_DECAY_PULLS: u32 = 250;
/// A scheduled shrink waits at most this many pulls for a quiet moment (3 s).
const SKIP_PATIENCE_PULLS: u32 = 150;
/// Mean absolute amplitude below which audio counts as quiet (about -36 dBFS).
const QUIET_LEVEL: u64 = 500;
/// Sequence numbers remembered for duplicate detection.
const SEEN_WINDOW: u64 = 128;

/// Errors in a [`JitterConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JitterError {
    /// A clock rate outside 1 kHz ..= 384 kHz.
    #[error("jitter buffer clock rate {clock_rate} Hz is out of range (1000..=384000)")]
    ClockRate {
        /// The rate given.
        clock_rate: u32,
    },
    /// Minimum delay above maximum delay, or a maximum of zero.
    #[error("jitter buffer delay range {min_ms}..={max_ms} ms is empty")]
    DelayRange {
        /// `min_delay_ms`.
        min_ms: u32,
        /// `max_delay_ms`.
        max_ms: u32,
    },
    /// No packet slots, or slots of zero bytes.
    #[error("jitter buffer needs at least one slot of at least one byte (got {capacity} x {max_payload})")]
    Capacity {
        /// `capacity`.
        capacity: usize,
        /// `max_payload`.
        max_payload: usize,
    },
}

/// Settings of a [`JitterBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Lowest target delay (default 20 ms).
    pub min_delay_ms: u32,
    /// Highest target delay (default 60 ms). For ptime 60 streams give it at
    /// least 80 ms so a packet can arrive a little late without an underrun.
    pub max_delay_ms: u32,
    /// Packet slots (default 16).
    pub capacity: usize,
    /// Largest payload a slot holds, in bytes (default 512).
    pub max_payload: usize,
}

impl JitterConfig {
    /// The defaults at `clock_rate`.
    pub const fn new(clock_rate: u32) -> Self {
        JitterConfig {
            clock_rate,
            min_delay_ms: 20,
            max_delay_ms: 60,
            capacity: 16,
            max_payload: 512,
        }
    }
}

impl Default for JitterConfig {
    /// The defaults at 8 kHz.
    fn default() -> Self {
        JitterConfig::new(8_000)
    }
}

/// What became of an inserted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// Queued for playout.
    Queued,
    /// Already seen (same sequence number, or same timestamp queued); dropped.
    Duplicate,
    /// Its audio is already behind the playout position; dropped.
    Late,
    /// Payload longer than a slot; dropped.
    TooLarge,
    /// The buffer was full: the oldest of the queued packets and this one
    /// was dropped (normally the oldest queued, and this one is queued in
    /// its place; if this one is older than everything queued, it is the one
    /// dropped). Fresh audio wins because a full buffer is far over the
    /// delay target anyway.
    Overflow,
}

/// What a pull produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// All samples decoded from real packets.
    Audio,
    /// `samples` of the frame were concealment (missing, late or undecodable
    /// packets); the rest is real audio.
    Concealed {
        /// Concealed samples in this frame.
        samples: usize,
    },
    /// Still filling to the target delay; the frame is silence.
    Buffering,
    /// The stream has stopped; the frame is silence.
    Idle,
}

/// Counters since the buffer was built (kept across [`JitterBuffer::reset`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JitterStats {
    /// Packets queued (including those queued by evicting another).
    pub queued: u64,
    /// Duplicates dropped.
    pub duplicates: u64,
    /// Packets dropped because their audio was behind the playout position.
    pub late: u64,
    /// Payloads dropped for being longer than a slot.
    pub too_large: u64,
    /// Packets dropped because the buffer was full.
    pub overflow: u64,
    /// Packets that failed to decode (concealed instead).
    pub decode_errors: u64,
    /// Samples handed out from real packets.
    pub played_samples: u64,
    /// Samples of loss concealment handed out.
    pub concealed_samples: u64,
    /// Samples of silence handed out while buffering or idle.
    pub silence_samples: u64,
    /// Samples of the stream skipped to shrink the delay or jump forward.
    pub skipped_samples: u64,
    /// Times the buffer ran dry while playing.
    pub underruns: u64,
    /// Restarts on timestamp jumps and after idle periods.
    pub resyncs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing received since construction or reset.
    Empty,
    /// Packets queued, filling to the target delay.
    Buffering,
    /// Handing out audio.
    Playing,
    /// Drained and no packets for a while.
    Idle,
}

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    used: bool,
    ts: u64,
    len: usize,
}

/// Adaptive reorder/jitter buffer for one RTP stream; see the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// Samples in 20 ms, the shortest delay step.
    frame: u64,
    min_delay: u64,
    max_delay: u64,
    idle_after: Duration,

    slots: Vec<Slot>,
    /// `capacity * max_payload` bytes; slot `i` owns `[i * max_payload ..]`.
    payloads: Vec<u8>,

    /// Decoded PCM not yet handed out: `staging[staged_off..staged_off + staged_len]`,
    /// starting at `playout`.
    staging: Vec<i16>,
    staged_off: usize,
    staged_len: usize,

    state: State,
    playout: u64,
    /// Concealment before this timestamp advances the playout position
    /// (the length of a packet that failed to decode).
    known_gap_end: u64,
    /// Concealing an underrun (playout position held).
    holding: bool,
    buffering_since: Option<Instant>,
    last_arrival: Option<Instant>,

    /// Samples per packet, learned from timestamps and decoding.
    ptime: u64,
    ptime_known: bool,
    last_seq_ts: Option<(u64, u64)>,

    epoch: Option<Instant>,
    prev_transit: Option<i64>,
    /// RFC 3550 interarrival jitter, in samples.
    jitter: f64,
    boost: u64,
    target: u64,
    clean_pulls: u32,
    /// An underrun or a late packet since the last pull ended.
    troubled: bool,

    window_pulls: u32,
    window_min: u64,
    window_clean: bool,
    pending_skip: u64,
    pending_age: u32,

    seen_any: bool,
    seen_hi: u64,
    seen_mask: u128,
    far_back: Option<u64>,

    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer with every slot and the staging buffer allocated up front.
    pub fn new(cfg: JitterConfig) -> Result<Self, JitterError> {
        if !(1_000..=384_000).contains(&cfg.clock_rate) {
            return Err(JitterError::ClockRate {
                clock_rate: cfg.clock_rate,
            });
        }
        if cfg.max_delay_ms == 0 || cfg.min_delay_ms > cfg.max_delay_ms {
            return Err(JitterError::DelayRange {
                min_ms: cfg.min_delay_ms,
                max_ms: cfg.max_delay_ms,
            });
        }
        if cfg.capacity == 0 || cfg.max_payload == 0 {
            return Err(JitterError::Capacity {
                capacity: cfg.capacity,
                max_payload: cfg.max_payload,
            });
        }
        let rate = u64::from(cfg.clock_rate);
        let ms = |m: u64| m * rate / 1000;
        let frame = ms(FRAME_MS).max(1);
        // G.711 decodes one sample per byte, so a full slot can be longer than 120 ms.
        let staging_len = (ms(MAX_PACKET_MS) as usize).max(cfg.max_payload);
        let min_delay = ms(u64::from(cfg.min_delay_ms));
        let mut jb = JitterBuffer {
            cfg,
            frame,
            min_delay,
            max_delay: ms(u64::from(cfg.max_delay_ms)),
            idle_after: Duration::from_millis(u64::from(cfg.max_delay_ms) + IDLE_AFTER_MS),
            slots: vec![Slot::default(); cfg.capacity],
            payloads: vec![0; cfg.capacity * cfg.max_payload],
            staging: vec![0; staging_len],
            staged_off: 0,
            staged_len: 0,
            state: State::Empty,
            playout: 0,
            known_gap_end: 0,
            holding: false,
            buffering_since: None,
            last_arrival: None,
            ptime: frame,
            ptime_known: false,
            last_seq_ts: None,
            epoch: None,
            prev_transit: None,
            jitter: 0.0,
            boost: 0,
            target: min_delay,
            clean_pulls: 0,
            troubled: false,
            window_pulls: 0,
            window_min: u64::MAX,
            window_clean: true,
            pending_skip: 0,
            pending_age: 0,
            seen_any: false,
            seen_hi: 0,
            seen_mask: 0,
            far_back: None,
            stats: JitterStats::default(),
        };
        jb.recompute_target();
        Ok(jb)
    }

    /// The configuration.
    pub fn config(&self) -> &JitterConfig {
        &self.cfg
    }

    /// The current target delay.
    pub fn target_delay_ms(&self) -> u32 {
        self.samples_to_ms(self.target)
    }

    /// Audio buffered ahead of the playout position (decoded or queued).
    pub fn buffered_ms(&self) -> u32 {
        match self.state {
            State::Playing => self.samples_to_ms(self.level()),
            State::Buffering => match self.min_queued() {
                Some((_, ts)) => self.samples_to_ms(self.level_from(ts)),
                None => 0,
            },
            State::Empty | State::Idle => 0,
        }
    }

    /// The RFC 3550 interarrival jitter estimate, in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter * 1000.0 / f64::from(self.cfg.clock_rate)
    }

    /// Counters.
    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// Forget the stream (call on an SSRC change): queued packets, decoded
    /// audio, the playout position, duplicate history and the arrival
    /// baseline. The learned jitter, target delay and the counters are kept:
    /// the network path is the same. Reset the decoder too
    /// ([`FrameDecoder::reset`]).
    pub fn reset(&mut self) {
        self.clear_stream();
        self.state = State::Empty;
        self.seen_any = false;
        self.seen_hi = 0;
        self.seen_mask = 0;
        self.last_seq_ts = None;
        self.last_arrival = None;
        self.ptime_known = false;
    }

    /// Offer a packet that arrived at `now`.
    ///
    /// `seq` and `timestamp` are extended (unwrapped to 64 bits) by the
    /// caller; see [`super::stats::SeqUnwrapper`] and
    /// [`super::stats::TsUnwrapper`].
    pub fn insert(&mut self, now: Instant, seq: u64, timestamp: u64, payload: &[u8]) -> Insert {
        if payload.len() > self.cfg.max_payload {
            self.stats.too_large += 1;
            return Insert::TooLarge;
        }
        if self.seen(seq) {
            self.stats.duplicates += 1;
            return Insert::Duplicate;
        }
        self.mark_seen(seq);

        // A stream that went quiet starts over.
        let idle = match (self.state, self.last_arrival) {
            (State::Idle, _) => true,
            (State::Playing | State::Buffering, Some(last)) => {
                now.saturating_duration_since(last) > self.idle_after
                    && self.staged_len == 0
                    && self.min_queued().is_none()
            }
            _ => false,
        };
        if idle {
            self.resync();
        }

        // Timestamp jumps: restart rather than conceal for seconds.
        let forward = self.ms(RESYNC_FORWARD_MS);
        let backward = self.ms(RESYNC_BACKWARD_MS) + self.max_delay;
        let reference = match self.state {
            State::Playing => Some(self.playout),
            State::Buffering => self.min_queued().map(|(_, ts)| ts),
            State::Empty | State::Idle => None,
        };
        if let Some(reference) = reference {
            if timestamp > reference + forward {
                self.resync();
            } else if timestamp + backward < reference {
                let confirmed = self
                    .far_back
                    .is_some_and(|c| timestamp > c && timestamp - c <= self.ms(1_000));
                if confirmed {
                    self.resync();
                } else {
                    self.far_back = Some(timestamp);
                    self.last_arrival = Some(now);
                    self.stats.late += 1;
                    return Insert::Late;
                }
            } else {
                self.far_back = None;
            }
        }

        self.on_arrival(now, seq, timestamp);

        if self.state == State::Playing && timestamp < self.playout {
            self.stats.late += 1;
            self.troubled = true;
            self.bump_boost(self.frame / 2);
            return Insert::Late;
        }
        if self.slots.iter().any(|s| s.used && s.ts == timestamp) {
            self.stats.duplicates += 1;
            return Insert::Duplicate;
        }
        if self.state == State::Empty {
            self.state = State::Buffering;
            self.buffering_since = Some(now);
        }

        let mut result = Insert::Queued;
        let idx = match self.slots.iter().position(|s| !s.used) {
            Some(free) => free,
            None => {
                self.stats.overflow += 1;
                result = Insert::Overflow;
                match self.min_queued() {
                    Some((oldest, ts)) if ts < timestamp => oldest,
                    _ => return Insert::Overflow,
                }
            }
        };
        let start = idx * self.cfg.max_payload;
        self.payloads[start..start + payload.len()].copy_from_slice(payload);
        self.slots[idx] = Slot {
            used: true,
            ts: timestamp,
            len: payload.len(),
        };
        self.stats.queued += 1;
        result
    }

    /// Fill all of `out` with the audio at the playout position and advance it.
    ///
    /// `out` is normally one 20 ms frame at the clock rate (160 samples at
    /// 8 kHz, 960 at 48 kHz); any length works.
    pub fn pull(&mut self, now: Instant, decoder: &mut dyn FrameDecoder, out: &mut [i16]) -> Pull {
        match self.state {
            State::Empty => return self.silence(out, Pull::Buffering),
            State::Idle => return self.silence(out, Pull::Idle),
            State::Buffering => {
                let Some((_, first)) = self.min_queued() else {
                    return self.silence(out, Pull::Buffering);
                };
                let waited = self
                    .buffering_since
                    .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
                // Packet length is known from two consecutive packets (or a
                // decode); a lone packet starts after the maximum delay.
                let ready = self.ptime_known && self.level_from(first) >= self.target;
                let patience = Duration::from_millis(u64::from(self.cfg.max_delay_ms));
                if !ready && waited < patience {
                    return self.silence(out, Pull::Buffering);
                }
                self.state = State::Playing;
                self.playout = first;
                self.known_gap_end = first;
                self.holding = false;
                self.reset_window();
            }
            State::Playing => {
                let drained = self.staged_len == 0 && self.min_queued().is_none();
                let quiet = self
                    .last_arrival
                    .is_some_and(|t| now.saturating_duration_since(t) > self.idle_after);
                if drained && quiet {
                    self.clear_stream();
                    self.state = State::Idle;
                    return self.silence(out, Pull::Idle);
                }
            }
        }

        let level_at_start = self.level();
        let mut filled = 0;
        let mut concealed = 0;
        while filled < out.len() {
            let want = out.len() - filled;
            let earliest = self.min_queued();

            if self.staged_len > 0 {
                // A queued packet's timestamp wins over an overlong previous packet.
                if let Some((_, ts)) = earliest {
                    let end = self.playout + self.staged_len as u64;
                    if ts < end {
                        self.staged_len = ts.saturating_sub(self.playout) as usize;
                        continue;
                    }
                }
                if self.pending_skip > 0 && self.try_skip() {
                    continue;
                }
                let k = self.staged_len.min(want);
                let src = &self.staging[self.staged_off..self.staged_off + k];
                out[filled..filled + k].copy_from_slice(src);
                self.consume(k);
                self.stats.played_samples += k as u64;
                self.holding = false;
                filled += k;
                continue;
            }

            match earliest {
                Some((idx, ts)) if ts <= self.playout => {
                    if self.holding && self.jump_if_far_behind() {
                        continue;
                    }
                    if ts < self.playout {
                        // Behind the playout position (cannot normally happen): drop.
                        self.slots[idx].used = false;
                        self.stats.late += 1;
                        continue;
                    }
                    self.decode_slot(idx, decoder);
                }
                Some((_, ts)) => {
                    if self.jump_if_far_behind() {
                        continue;
                    }
                    let k = ((ts - self.playout) as usize).min(want);
                    decoder.conceal(&mut out[filled..filled + k]);
                    self.playout += k as u64;
                    concealed += k;
                    filled += k;
                }
                None if self.playout < self.known_gap_end => {
                    let k = ((self.known_gap_end - self.playout) as usize).min(want);
                    decoder.conceal(&mut out[filled..filled + k]);
                    self.playout += k as u64;
                    concealed += k;
                    filled += k;
                }
                None => {
                    // Underrun: conceal, hold the playout position.
                    if !self.holding {
                        self.holding = true;
                        self.troubled = true;
                        self.stats.underruns += 1;
                        self.bump_boost(self.frame);
                    }
                    decoder.conceal(&mut out[filled..]);
                    concealed += want;
                    filled += want;
                }
            }
        }

        self.stats.concealed_samples += concealed as u64;
        self.end_of_pull(level_at_start);
        if concealed > 0 {
            Pull::Concealed { samples: concealed }
        } else {
            Pull::Audio
        }
    }

    fn ms(&self, ms: u64) -> u64 {
        ms * u64::from(self.cfg.clock_rate) / 1000
    }

    fn samples_to_ms(&self, samples: u64) -> u32 {
        (samples * 1000 / u64::from(self.cfg.clock_rate)).min(u64::from(u32::MAX)) as u32
    }

    fn silence(&mut self, out: &mut [i16], what: Pull) -> Pull {
        out.fill(0);
        self.stats.silence_samples += out.len() as u64;
        what
    }

    fn min_queued(&self) -> Option<(usize, u64)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.used)
            .min_by_key(|(_, s)| s.ts)
            .map(|(i, s)| (i, s.ts))
    }

    fn max_queued_ts(&self) -> Option<u64> {
        self.slots.iter().filter(|s| s.used).map(|s| s.ts).max()
    }

    /// Samples buffered from `start` on: to the end of the newest queued
    /// packet (assumed `ptime` long), or of the staged audio.
    fn level_from(&self, start: u64) -> u64 {
        let staged_end = start + self.staged_len as u64;
        let end = match self.max_queued_ts() {
            Some(ts) => (ts + self.ptime).max(staged_end),
            None => staged_end,
        };
        end.saturating_sub(start)
    }

    fn level(&self) -> u64 {
        self.level_from(self.playout)
    }

    fn consume(&mut self, k: usize) {
        self.staged_off += k;
        self.staged_len -= k;
        self.playout += k as u64;
    }

    fn decode_slot(&mut self, idx: usize, decoder: &mut dyn FrameDecoder) {
        let slot = self.slots[idx];
        self.slots[idx].used = false;
        let start = idx * self.cfg.max_payload;
        let payload = &self.payloads[start..start + slot.len];
        match decoder.decode(payload, &mut self.staging) {
            Ok(n) if n > 0 => {
                self.staged_off = 0;
                self.staged_len = n;
                self.ptime = n as u64;
                self.ptime_known = true;
                self.known_gap_end = self.playout;
            }
            _ => {
                self.stats.decode_errors += 1;
                self.known_gap_end = self.playout + self.ptime;
            }
        }
    }

    /// After a hole or an underrun, jump forward if far more than the
    /// maximum delay is queued. Returns whether it jumped.
    fn jump_if_far_behind(&mut self) -> bool {
        let level = self.level();
        if level <= self.max_delay + self.frame {
            return false;
        }
        let desired = self.playout + level - self.target;
        let new_playout = match self
            .slots
            .iter()
            .filter(|s| s.used && s.ts <= desired)
            .map(|s| s.ts)
            .max()
        {
            Some(ts) => ts,
            None => desired,
        };
        if new_playout <= self.playout {
            return false;
        }
        for s in self.slots.iter_mut() {
            if s.used && s.ts < new_playout {
                s.used = false;
            }
        }
        self.stats.skipped_samples += new_playout - self.playout;
        self.playout = new_playout;
        self.known_gap_end = new_playout;
        true
    }

    /// Drop scheduled excess from the staged audio if it is quiet (or the
    /// wait for quiet has run out). Returns whether anything was dropped.
    fn try_skip(&mut self) -> bool {
        let k = (self.pending_skip as usize).min(self.staged_len);
        let chunk = &self.staging[self.staged_off..self.staged_off + k];
        let mean = chunk
            .iter()
            .map(|&s| u64::from(s.unsigned_abs()))
            .sum::<u64>()
            / k as u64;
        if mean >= QUIET_LEVEL && self.pending_age < SKIP_PATIENCE_PULLS {
            return false;
        }
        self.consume(k);
        self.pending_skip -= k as u64;
        self.stats.skipped_samples += k as u64;
        true
    }

    fn end_of_pull(&mut self, level: u64) {
        let troubled = std::mem::take(&mut self.troubled) || self.holding;
        if troubled {
            self.clean_pulls = 0;
            self.window_clean = false;
        } else {
            self.clean_pulls += 1;
            if self.clean_pulls % BOOST_DECAY_PULLS == 0 && self.boost > 0 {
                self.boost = self.boost.saturating_sub(self.frame / 4);
                self.recompute_target();
            }
        }
        if self.pending_skip > 0 {
            self.pending_age += 1;
        }
        self.window_min = self.window_min.min(level);
        self.window_pulls += 1;
        if self.window_pulls >= WINDOW_PULLS {
            let excess = self.window_min > self.target + self.frame;
            if self.window_clean && excess && self.pending_skip == 0 {
                self.pending_skip = self.window_min - self.target;
                self.pending_age = 0;
            }
            self.reset_window();
        }
    }

    fn reset_window(&mut self) {
        self.window_pulls = 0;
        self.window_min = u64::MAX;
        self.window_clean = true;
    }

    fn bump_boost(&mut self, by: u64) {
        self.boost = (self.boost + by).min(self.max_delay);
        self.clean_pulls = 0;
        self.recompute_target();
    }

    fn recompute_target(&mut self) {
        // Packets of `ptime` drained in frames need ptime + frame - gcd
        // buffered right after an arrival to last until the next one.
        let (p, f) = (self.ptime, self.frame);
        let base = p.max(f).max(p + f - gcd(p, f)) as f64 + 3.0 * self.jitter;
        let target = base as u64 + self.boost;
        self.target = target.clamp(self.min_delay, self.max_delay);
    }

    /// Bookkeeping for a packet that is not a duplicate: arrival time,
    /// RFC 3550 jitter and the packet duration.
    fn on_arrival(&mut self, now: Instant, seq: u64, ts: u64) {
        self.last_arrival = Some(now);
        let epoch = *self.epoch.get_or_insert(now);
        let nanos = now.saturating_duration_since(epoch).as_nanos();
        let arrival = (nanos * u128::from(self.cfg.clock_rate) / 1_000_000_000) as i64;
        let transit = arrival.wrapping_sub(ts as i64);
        if let Some(prev) = self.prev_transit {
            let d = transit.wrapping_sub(prev).unsigned_abs();
            // A jump of seconds is a restart, not jitter.
            if d < self.ms(RESYNC_FORWARD_MS) {
                self.jitter += (d as f64 - self.jitter) / 16.0;
            }
        }
        self.prev_transit = Some(transit);

        if let Some((last_seq, last_ts)) = self.last_seq_ts {
            if seq == last_seq + 1 && ts > last_ts && ts - last_ts <= self.ms(MAX_PACKET_MS) {
                self.ptime = ts - last_ts;
                self.ptime_known = true;
            }
            if seq > last_seq {
                self.last_seq_ts = Some((seq, ts));
            }
        } else {
            self.last_seq_ts = Some((seq, ts));
        }
        self.recompute_target();
    }

    fn seen(&self, seq: u64) -> bool {
        if !self.seen_any || seq > self.seen_hi {
            return false;
        }
        let d = self.seen_hi - seq;
        d < SEEN_WINDOW && self.seen_mask & (1u128 << d) != 0
    }

    fn mark_seen(&mut self, seq: u64) {
        if !self.seen_any {
            self.seen_any = true;
            self.seen_hi = seq;
            self.seen_mask = 1;
        } else if seq > self.seen_hi {
            let shift = seq - self.seen_hi;
            self.seen_mask = if shift >= SEEN_WINDOW {
                0
            } else {
                self.seen_mask << shift
            };
            self.seen_mask |= 1;
            self.seen_hi = seq;
        } else {
            let d = self.seen_hi - seq;
            if d < SEEN_WINDOW {
                self.seen_mask |= 1u128 << d;
            }
        }
    }

    /// Drop queued and staged audio and the arrival baseline.
    fn clear_stream(&mut self) {
        for s in self.slots.iter_mut() {
            s.used = false;
        }
        self.staged_off = 0;
        self.staged_len = 0;
        self.holding = false;
        self.prev_transit = None;
        self.far_back = None;
        self.pending_skip = 0;
        self.reset_window();
    }

    /// Start over at the next packet's timestamps.
    fn resync(&mut self) {
        self.clear_stream();
        self.state = State::Empty;
        self.last_seq_ts = None;
        self.stats.resyncs += 1;
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::decoder::G711Decoder;
    use vocelio_codecs::g711::Law;

    /// 8 kHz G.711 test rig with fake time.
    struct Rig {
        jb: JitterBuffer,
        dec: G711Decoder,
        t0: Instant,
        /// Decoded reference of the whole stream (what a perfect network plays).
        reference: Vec<i16>,
        wire: Vec<u8>,
    }

    impl Rig {
        fn new(cfg: JitterConfig, seconds: usize) -> Self {
            let n = seconds * 8000;
            let pcm: Vec<i16> = (0..n)
                .map(|i| {
                    let t = i as f64 / 8000.0;
                    (6000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()
                        + 2000.0 * (2.0 * std::f64::consts::PI * 1170.0 * t).sin())
                        as i16
                })
                .collect();
            let mut wire = vec![0u8; n];
            Law::Mu.encode(&pcm, &mut wire).unwrap();
            let mut reference = vec![0i16; n];
            Law::Mu.decode(&wire, &mut reference).unwrap();
            Rig {
                jb: JitterBuffer::new(cfg).unwrap(),
                dec: G711Decoder::new(Law::Mu),
                t0: Instant::now(),
                reference,
                wire,
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        /// Packet `k` of `ptime` samples.
        fn send(&mut self, at_ms: u64, k: u64, ptime: u64) -> Insert {
            let ts = k * ptime;
            let payload = &self.wire[ts as usize..(ts + ptime) as usize];
            let now = self.at(at_ms);
            self.jb.insert(now, 1000 + k, 5000 + ts, payload)
        }

        fn pull(&mut self, at_ms: u64, out: &mut [i16]) -> Pull {
            let now = self.at(at_ms);
            self.jb.pull(now, &mut self.dec, out)
        }
    }

    #[test]
    fn config_is_validated() {
        assert!(JitterBuffer::new(JitterConfig::new(0)).is_err());
        let mut cfg = JitterConfig::new(8000);
        cfg.min_delay_ms = 80;
        assert!(matches!(
            JitterBuffer::new(cfg),
            Err(JitterError::DelayRange { .. })
        ));
        cfg = JitterConfig::new(8000);
        cfg.capacity = 0;
        assert!(JitterBuffer::new(cfg).is_err());
    }

    #[test]
    fn in_order_stream_comes_out_intact() {
        let mut rig = Rig::new(JitterConfig::default(), 2);
        let mut out = [0i16; 160];
        let mut played = Vec::new();
        for k in 0..100u64 {
            assert_eq!(rig.send(k * 20, k, 160), Insert::Queued);
            match rig.pull(k * 20, &mut out) {
                Pull::Audio => played.extend_from_slice(&out),
                // The packet length is known once a second packet is in.
                Pull::Buffering if k == 0 => {}
                other => panic!("frame {k}: {other:?}"),
            }
        }
        assert_eq!(played, rig.reference[..played.len()]);
        assert_eq!(played.len(), 99 * 160);
        assert_eq!(rig.jb.stats().concealed_samples, 0);
    }

    #[test]
    fn reordered_packets_come_out_in_order() {
        let cfg = JitterConfig {
            min_delay_ms: 60,
            ..JitterConfig::default()
        };
        let mut rig = Rig::new(cfg, 2);
        let mut out = [0i16; 160];
        let mut played = Vec::new();
        // Pairs swapped: 1 0 3 2 5 4 ...
        for k in 0..100u64 {
            let send = k ^ 1;
            assert_eq!(rig.send(k * 20, send, 160), Insert::Queued);
            match rig.pull(k * 20, &mut out) {
                Pull::Audio => played.extend_from_slice(&out),
                Pull::Buffering => {}
                other => panic!("frame {k}: {other:?}"),
            }
        }
        assert!(played.len() >= 95 * 160);
        assert_eq!(played, rig.reference[..played.len()]);
    }

    #[test]
    fn duplicates_are_counted_and_played_once() {
        let mut rig = Rig::new(JitterConfig::default(), 1);
        let mut out = [0i16; 160];
        let mut played = Vec::new();
        for k in 0..20u64 {
            rig.send(k * 20, k, 160);
            assert_eq!(rig.send(k * 20, k, 160), Insert::Duplicate);
            if k > 2 {
                // An old one again, long after it played.
                assert_eq!(rig.send(k * 20, k - 3, 160), Insert::Duplicate);
            }
            if rig.pull(k * 20, &mut out) == Pull::Audio {
                played.extend_from_slice(&out);
            }
        }
        assert_eq!(played, rig.reference[..19 * 160]);
        assert_eq!(rig.jb.stats().duplicates, 20 + 17);
        // Same timestamp under another sequence number is a duplicate too.
        let payload = [0xFFu8; 160];
        let ts = 5000 + 20 * 160;
        assert_eq!(
            rig.jb.insert(rig.at(400), 1020, ts, &payload),
            Insert::Queued
        );
        assert_eq!(
            rig.jb.insert(rig.at(400), 1021, ts, &payload),
            Insert::Duplicate
        );
    }

    #[test]
    fn lost_packet_is_concealed_and_the_next_ones_play() {
        let cfg = JitterConfig {
            min_delay_ms: 40,
            ..JitterConfig::default()
        };
        let mut rig = Rig::new(cfg, 1);
        let mut out = [0i16; 160];
        let mut results = Vec::new();
        let mut played = Vec::new();
        for k in 0..30u64 {
            if k != 10 {
                rig.send(k * 20, k, 160);
            }
            let r = rig.pull(k * 20, &mut out);
            if r != Pull::Buffering {
                played.extend_from_slice(&out);
            }
            results.push(r);
        }
        // Playout starts at the second pull (40 ms buffered), so packet 10 is due at pull 11.
        assert_eq!(results[0], Pull::Buffering);
        assert_eq!(results[11], Pull::Concealed { samples: 160 });
        assert!(
            results[12..].iter().all(|r| *r == Pull::Audio),
            "{results:?}"
        );
        assert_eq!(rig.jb.stats().underruns, 0);
        // Everything but the lost frame is bit exact, at the right place.
        assert_eq!(played[..1600], rig.reference[..1600]);
        // (The first 4 ms after the loss are cross-faded from the concealment.)
        assert_eq!(played[1792..], rig.reference[1792..played.len()]);
        // The concealment continues the signal rather than going silent.
        let energy: f64 = played[1600..1760].iter().map(|&s| f64::from(s).abs()).sum();
        assert!(energy / 160.0 > 1000.0);
    }

    #[test]
    fn late_packet_is_dropped() {
        let cfg = JitterConfig {
            min_delay_ms: 40,
            ..JitterConfig::default()
        };
        let mut rig = Rig::new(cfg, 1);
        let mut out = [0i16; 160];
        for k in 0..30u64 {
            if k != 10 {
                rig.send(k * 20, k, 160);
            }
            if k == 14 {
                assert_eq!(rig.send(k * 20, 10, 160), Insert::Late);
            }
            rig.pull(k * 20, &mut out);
        }
        assert_eq!(rig.jb.stats().late, 1);
        assert_eq!(rig.jb.stats().concealed_samples, 160);
        // A late packet raises the target a little.
        assert!(rig.jb.target_delay_ms() >= 40);
    }

    #[test]
    fn underrun_holds_and_late_audio_still_plays() {
        let mut rig = Rig::new(JitterConfig::default(), 1);
        let mut out = [0i16; 160];
        let mut played = Vec::new();
        // Packet 10 and 11 are 30 ms late, everything else on time.
        for k in 0..40u64 {
            let now = k * 20;
            if k != 10 && k != 11 {
                rig.send(now, k, 160);
            }
            if k == 12 {
                rig.send(now, 10, 160);
                rig.send(now, 11, 160);
            }
            if let Pull::Audio = rig.pull(now, &mut out) {
                played.extend_from_slice(&out);
            }
        }
        let st = rig.jb.stats();
        assert_eq!(st.underruns, 1);
        assert_eq!(st.late, 0);
        assert_eq!(st.played_samples, 38 * 160);
        assert_eq!(st.concealed_samples, 160);
        // Every real sample played, in order, nothing lost (the first 4 ms
        // after the concealment are cross-faded).
        assert_eq!(played.len(), 38 * 160);
        assert_eq!(played[..1600], rig.reference[..1600]);
        assert_eq!(played[1632..], rig.reference[1632..played.len()]);
        assert!(rig.jb.target_delay_ms() > 20);
    }

    #[test]
    fn ptime_30_and_60_become_gapless_20_ms_frames() {
        for ptime_ms in [30u64, 60] {
            let ptime = ptime_ms * 8;
            let cfg = JitterConfig {
                max_delay_ms: 100,
                ..JitterConfig::default()
            };
            let mut rig = Rig::new(cfg, 3);
            let mut out = [0i16; 160];
            let mut played = Vec::new();
            let mut next = 0u64;
            for tick in 0..120u64 {
                let now = tick * 20;
                while next * ptime_ms <= now {
                    assert_eq!(rig.send(now, next, ptime), Insert::Queued);
                    next += 1;
                }
                match rig.pull(now, &mut out) {
                    Pull::Audio => played.extend_from_slice(&out),
                    Pull::Buffering => assert!(played.is_empty()),
                    other => panic!("ptime {ptime_ms} tick {tick}: {other:?}"),
                }
            }
            assert!(played.len() >= 115 * 160, "ptime {ptime_ms}");
            assert_eq!(played, rig.reference[..played.len()], "ptime {ptime_ms}");
            assert_eq!(rig.jb.stats().concealed_samples, 0);
        }
    }

    #[test]
    fn jitter_burst_raises_target_within_max() {
        let mut rig = Rig::new(JitterConfig::default(), 4);
        let mut out = [0i16; 160];
        let mut rng = 0x1234_5678u64;
        let mut arrivals: Vec<(u64, u64)> = Vec::new();
        for k in 0..200u64 {
            let extra = if (50..120).contains(&k) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % 80
            } else {
                0
            };
            arrivals.push((k * 20 + extra, k));
        }
        arrivals.sort();
        let mut i = 0;
        let mut max_target = 0;
        let mut before = 0;
        for tick in 0..210u64 {
            let now = tick * 20;
            while i < arrivals.len() && arrivals[i].0 <= now {
                rig.send(now, arrivals[i].1, 160);
                i += 1;
            }
            rig.pull(now, &mut out);
            if tick == 49 {
                before = rig.jb.target_delay_ms();
            }
            max_target = max_target.max(rig.jb.target_delay_ms());
            assert!(rig.jb.target_delay_ms() <= 60);
        }
        assert_eq!(before, 20);
        assert!(max_target > before, "target stayed at {max_target}");
        assert!(rig.jb.jitter_ms() > 0.0);
    }

    #[test]
    fn burst_after_an_outage_jumps_to_the_target_delay() {
        let mut rig = Rig::new(JitterConfig::default(), 3);
        let mut out = [0i16; 160];
        for k in 0..10u64 {
            rig.send(k * 20, k, 160);
            rig.pull(k * 20, &mut out);
        }
        // A 200 ms outage (packet 9 still plays at tick 10), then everything
        // held up arrives at once.
        assert_eq!(rig.pull(200, &mut out), Pull::Audio);
        for tick in 11..20u64 {
            assert!(matches!(
                rig.pull(tick * 20, &mut out),
                Pull::Concealed { .. }
            ));
        }
        for k in 10..=20u64 {
            rig.send(20 * 20, k, 160);
        }
        assert!(rig.jb.buffered_ms() > 200);
        assert_eq!(rig.pull(20 * 20, &mut out), Pull::Audio);
        assert!(rig.jb.buffered_ms() <= 60, "{}", rig.jb.buffered_ms());
        assert!(rig.jb.stats().skipped_samples > 0);
        assert_eq!(rig.jb.stats().underruns, 1);
    }

    #[test]
    fn forward_timestamp_jump_resyncs() {
        let mut rig = Rig::new(JitterConfig::default(), 1);
        let mut out = [0i16; 160];
        for k in 0..10u64 {
            rig.send(k * 20, k, 160);
            rig.pull(k * 20, &mut out);
        }
        // Sender restarts its timestamps 10 s on.
        let jump = 80_000u64;
        let payload = [0x80u8; 160];
        for k in 10..20u64 {
            let ts = 5000 + jump + k * 160;
            assert_eq!(
                rig.jb.insert(rig.at(k * 20), 1000 + k, ts, &payload),
                Insert::Queued
            );
            let r = rig.pull(k * 20, &mut out);
            assert!(matches!(r, Pull::Audio | Pull::Buffering), "{r:?}");
        }
        assert_eq!(rig.jb.stats().resyncs, 1);
        assert_eq!(rig.jb.stats().concealed_samples, 0);
    }

    #[test]
    fn backward_timestamp_jump_resyncs_after_two_packets() {
        let mut rig = Rig::new(JitterConfig::default(), 3);
        let mut out = [0i16; 160];
        for k in 0..100u64 {
            rig.send(k * 20, k, 160);
            rig.pull(k * 20, &mut out);
        }
        let payload = [0x80u8; 160];
        assert_eq!(
            rig.jb.insert(rig.at(2000), 2000, 100, &payload),
            Insert::Late
        );
        assert_eq!(
            rig.jb.insert(rig.at(2020), 2001, 260, &payload),
            Insert::Queued
        );
        assert_eq!(rig.jb.stats().resyncs, 1);
    }

    #[test]
    fn stopped_stream_goes_idle_then_restarts() {
        let mut rig = Rig::new(JitterConfig::default(), 4);
        let mut out = [0i16; 160];
        for k in 0..10u64 {
            rig.send(k * 20, k, 160);
            rig.pull(k * 20, &mut out);
        }
        let mut idle_at = None;
        for tick in 10..40u64 {
            let r = rig.pull(tick * 20, &mut out);
            if r == Pull::Idle && idle_at.is_none() {
                idle_at = Some(tick);
            }
            if idle_at.is_some() {
                assert_eq!(r, Pull::Idle);
                assert!(out.iter().all(|&s| s == 0));
            }
        }
        // Last packet at 180 ms; idle after 60 + 200 ms without packets.
        let idle_at = idle_at.expect("never went idle");
        assert!((22..=24).contains(&idle_at), "idle at tick {idle_at}");
        // The talker comes back 3 s later (DTX-style timestamps).
        for k in 150..160u64 {
            rig.send(k * 20, k, 160);
            let r = rig.pull(k * 20, &mut out);
            assert!(matches!(r, Pull::Audio | Pull::Buffering), "{r:?}");
        }
        assert!(
            (150..160).any(|k| out[..] == rig.reference[k * 160..(k + 1) * 160]),
            "last frame is not a packet of the new talkspurt"
        );
    }

    #[test]
    fn steady_excess_delay_shrinks() {
        let mut rig = Rig::new(JitterConfig::default(), 12);
        let mut out = [0i16; 160];
        // Two packets arrive late once; later the network is perfect.
        let mut max_level = 0;
        for k in 0..595u64 {
            let now = k * 20;
            if k == 20 || k == 21 || k == 22 {
                if k == 22 {
                    rig.send(now, 20, 160);
                    rig.send(now, 21, 160);
                    rig.send(now, 22, 160);
                }
            } else {
                rig.send(now, k, 160);
            }
            rig.pull(now, &mut out);
            if k == 30 {
                max_level = rig.jb.buffered_ms();
            }
        }
        let st = rig.jb.stats();
        assert!(max_level >= 40, "level after the spike {max_level}");
        assert!(st.skipped_samples > 0);
        assert!(rig.jb.buffered_ms() <= 40, "{}", rig.jb.buffered_ms());
    }

    #[test]
    fn ten_minute_call_with_loss_and_reordering_has_no_drift() {
        let mut rig = Rig::new(JitterConfig::default(), 1);
        let payload = [0x55u8; 160];
        let mut out = [0i16; 160];
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let frames = 10 * 60 * 50u64;
        // (arrival ms, seq) with 5 % loss and 0..30 ms jitter (reorders).
        let mut arrivals: Vec<(u64, u64)> = (0..frames)
            .filter_map(|k| {
                let r = next();
                (r % 100 >= 5).then_some((k * 20 + (r >> 8) % 30, k))
            })
            .collect();
        arrivals.sort();
        let started = std::time::Instant::now();
        let mut i = 0;
        let mut pulls = 0u64;
        for tick in 0..frames {
            let now = tick * 20;
            while i < arrivals.len() && arrivals[i].0 <= now {
                let k = arrivals[i].1;
                let t = rig.at(now);
                rig.jb.insert(t, 1000 + k, 5000 + k * 160, &payload);
                i += 1;
            }
            rig.pull(now, &mut out);
            pulls += 1;
            assert!(rig.jb.buffered_ms() <= 120, "{}", rig.jb.buffered_ms());
        }
        let st = rig.jb.stats();
        assert_eq!(
            st.played_samples + st.concealed_samples + st.silence_samples,
            pulls * 160
        );
        assert!(st.played_samples > pulls * 160 * 85 / 100, "{st:?}");
        assert!(st.concealed_samples > 0);
        assert!(started.elapsed() < Duration::from_secs(1));
        assert!(rig.jb.target_delay_ms() <= 60);
    }
}
