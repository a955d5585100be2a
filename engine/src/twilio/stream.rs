//! One Media Stream as a sans-IO state machine.
//!
//! [`TwilioStream`] takes text frames and `now` in, and hands back frames to
//! send ([`TwilioStream::poll_output`]), events for the driver
//! ([`TwilioStream::poll_event`]: the call's [`MediaPort`] once `start`
//! arrives) and its next 20 ms playout deadline
//! ([`TwilioStream::poll_timeout`]). It never reads the clock, never touches
//! a socket and never spawns; the tokio driver in [`super::http`] does.
//!
//! Inbound: `media` chunks are put back in `chunk` order (a small reorder
//! window; duplicates dropped), decoded from mu-law and re-cut into 160-sample
//! 8 kHz frames, and delivered to the port stamped on the media clock (sample
//! count since `start`). `dtmf` becomes [`PortEvent::Dtmf`], `stop`
//! [`PortEvent::Hangup`]. Twilio's `sequenceNumber` counts *every* message
//! (start, media, dtmf, mark, stop), so it has gaps by design; `chunk`
//! counts only media and is the order key.
//!
//! Outbound: on every 20 ms tick (driven by [`TwilioStream::handle_timeout`];
//! at most [`StreamConfig::max_burst`] frames after a late wake-up, the rest
//! of the missed ticks are skipped so playout stays real time) one frame is
//! taken from the port, mu-law encoded and sent as one `media` message.
//! Control (flush, hangup) is read first and overtakes queued audio:
//! [`PortControl::Flush`] becomes a Twilio `clear`.
//!
//! Marks: [`TransportPort::next_playout`] reports [`PortEvent::MarkPlayed`]
//! when a mark is dequeued, but for Twilio the truthful moment is when Twilio
//! echoes the mark back (the caller has heard everything before it). The
//! stream therefore keeps the port's original event receiver and gives the
//! pipeline a relayed one: a dequeued `MarkPlayed { id }` is turned into a
//! Twilio `mark` named `id`, and only Twilio's echo of it is passed on as
//! `MarkPlayed`. Marks still pending at Twilio when we send `clear` are added
//! to the [`PortEvent::Flushed`] `dropped_marks` count and their echoes
//! (Twilio echoes pending marks on `clear`) are swallowed.

use super::message::{self, CallSid, Inbound, Media, MessageError, StreamSid, Track, MAX_PAYLOAD};
use crossbeam_channel::{Receiver, Sender};
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vocelio_codecs::g711::Law;
use vocelio_codecs::port::{
    pair, HangupReason, MediaPort, Playout, PortConfig, PortControl, PortEvent, PortInfo,
    TransportKind, TransportPort,
};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate, FRAME_MS, MAX_FRAME_SAMPLES};

const RATE: SampleRate = SampleRate::Hz8000;
const FRAME: usize = RATE.samples_per_frame();
const TICK: Duration = Duration::from_millis(FRAME_MS as u64);
/// Largest chunk the reorder window holds (200 ms of 8 kHz mu-law).
const SLOT_BYTES: usize = 1600;
/// Longest gap (in samples) filled with silence when chunks are lost.
const MAX_GAP_FILL: u64 = 10 * FRAME as u64;
/// Marks remembered after a `clear` while waiting for Twilio's echo.
const MAX_CLEARED_MARKS: usize = 64;

/// WebSocket close code for a normal end.
pub const CLOSE_NORMAL: u16 = 1000;
/// WebSocket close code for data we cannot take (a wrong media format).
pub const CLOSE_UNSUPPORTED: u16 = 1003;

/// Settings of one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Agent when `start` carries no `agent` custom parameter.
    pub default_agent: String,
    /// Queue sizes of the media port made at `start`.
    pub port: PortConfig,
    /// Out-of-order chunks held while waiting for a missing one (default 4,
    /// 80 ms); 0 turns reordering off.
    pub reorder_window: usize,
    /// Frames sent at once when the driver wakes up late (default 3).
    pub max_burst: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            default_agent: String::new(),
            port: PortConfig::default(),
            reorder_window: 4,
            max_burst: 3,
        }
    }
}

/// A frame for the driver to send on the WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    /// A JSON text frame (`media`, `mark` or `clear`).
    Text(String),
    /// Close the WebSocket with this code and reason, then stop reading.
    Close {
        /// WebSocket close code ([`CLOSE_NORMAL`], [`CLOSE_UNSUPPORTED`]).
        code: u16,
        /// Human-readable reason.
        reason: &'static str,
    },
}

/// Something the driver must act on.
#[derive(Debug)]
#[non_exhaustive]
pub enum StreamEvent {
    /// `start` arrived: hand `port` to the application's pipeline.
    Started {
        /// The pipeline's end of the call's media port.
        port: MediaPort,
        /// The stream.
        stream_sid: StreamSid,
        /// The call.
        call_sid: CallSid,
    },
}

/// Why an input was not taken. Only [`StreamError::is_fatal`] errors end
/// the stream; the rest are counted and the stream carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The text frame did not decode (or its payload did not).
    #[error(transparent)]
    Message(#[from] MessageError),
    /// A binary WebSocket frame (Twilio only sends text).
    #[error("binary WebSocket frame ({len} bytes); Twilio sends text only")]
    BinaryFrame {
        /// Its length.
        len: usize,
    },
    /// `media`, `dtmf` or `mark` before `start`.
    #[error("{event} before start")]
    BeforeStart {
        /// The event.
        event: &'static str,
    },
    /// A second `start` on the same stream (ignored).
    #[error("second start on the same stream (ignored)")]
    SecondStart,
    /// Input after the stream was closed.
    #[error("stream is closed")]
    Closed,
}

impl StreamError {
    /// Whether the stream closed because of it (a wrong media format).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            StreamError::Message(MessageError::WrongMediaFormat { .. })
        )
    }
}

/// Counters of one stream (or, summed, of many).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Text frames that were not JSON or had the wrong shape.
    pub malformed_json: u64,
    /// `media` payloads that were not base64 (or too large).
    pub bad_base64: u64,
    /// Binary WebSocket frames.
    pub binary_frames: u64,
    /// Unknown `event` names.
    pub unknown_events: u64,
    /// Known events missing a field or with an unusable value.
    pub invalid_messages: u64,
    /// `media`/`dtmf`/`mark` before `start`.
    pub before_start: u64,
    /// Extra `start` messages.
    pub second_start: u64,
    /// `media` messages taken.
    pub media_in: u64,
    /// Chunks dropped as duplicates or arriving after their turn.
    pub late_or_duplicate: u64,
    /// Chunks never seen (given up on after the reorder window).
    pub lost_chunks: u64,
    /// `media` for a track other than inbound (ignored).
    pub other_track: u64,
    /// 20 ms frames delivered to the port (including gap fill).
    pub frames_in: u64,
    /// Silent frames inserted for lost chunks.
    pub gap_fill_frames: u64,
    /// `dtmf` messages passed on.
    pub dtmf_in: u64,
    /// `media` messages sent.
    pub media_out: u64,
    /// `mark` messages sent.
    pub marks_out: u64,
    /// Marks echoed by Twilio and reported played.
    pub marks_played: u64,
    /// Marks pending at Twilio when a `clear` went out.
    pub marks_cleared: u64,
    /// Echoed marks we never sent.
    pub unknown_marks: u64,
    /// `clear` messages sent.
    pub clears_out: u64,
    /// Playout ticks skipped because the driver woke up too late.
    pub ticks_skipped: u64,
    /// Outbound frames not at 8 kHz (dropped).
    pub wrong_rate_frames: u64,
    /// DTMF the pipeline asked to send (Twilio cannot; ignored).
    pub dtmf_out_ignored: u64,
}

impl StreamStats {
    /// All bad input: malformed JSON, bad base64, binary frames, unknown
    /// events, invalid messages, events before `start`, second `start`s.
    pub fn bad_input(&self) -> u64 {
        self.malformed_json
            + self.bad_base64
            + self.binary_frames
            + self.unknown_events
            + self.invalid_messages
            + self.before_start
            + self.second_start
    }

    /// Add `other` into `self`.
    pub fn add(&mut self, other: &StreamStats) {
        macro_rules! add {
            ($($f:ident),*) => { $( self.$f += other.$f; )* };
        }
        add!(
            malformed_json,
            bad_base64,
            binary_frames,
            unknown_events,
            invalid_messages,
            before_start,
            second_start,
            media_in,
            late_or_duplicate,
            lost_chunks,
            other_track,
            frames_in,
            gap_fill_frames,
            dtmf_in,
            media_out,
            marks_out,
            marks_played,
            marks_cleared,
            unknown_marks,
            clears_out,
            ticks_skipped,
            wrong_rate_frames,
            dtmf_out_ignored
        );
    }
}

/// Rate limit for warnings: the first few, then every 100th.
fn should_log(count: u64) -> bool {
    count <= 5 || count % 100 == 0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    AwaitingStart,
    Streaming,
    Closed,
}

#[derive(Debug)]
struct Slot {
    chunk: u64,
    timestamp_ms: u64,
    len: usize,
    data: Box<[u8; SLOT_BYTES]>,
}

#[derive(Debug)]
struct Active {
    port: TransportPort,
    /// The port's own event lane (see the module docs on marks).
    raw_events: Receiver<PortEvent>,
    /// The lane the pipeline reads.
    events_out: Sender<PortEvent>,
    stream_sid: StreamSid,
    started_at: Instant,
    /// Outbound media clock: ticks since `start`.
    out_tick: u64,
    /// Marks sent to Twilio, not echoed yet.
    pending_marks: VecDeque<u64>,
    /// Marks that were pending when we sent `clear`.
    cleared_marks: VecDeque<u64>,
    /// Marks to add to the next `Flushed` event.
    flush_extra_marks: u32,
    /// Next chunk number expected (None before the first).
    next_chunk: Option<u64>,
    /// Reorder window; `len == 0` marks a free slot.
    slots: Vec<Slot>,
    /// Timestamp of the first chunk (ms), the inbound clock's zero.
    ts_base: Option<u64>,
    /// Partial inbound frame.
    acc: [i16; FRAME],
    acc_len: usize,
    /// Samples delivered in whole frames.
    in_samples: u64,
    hung_up: bool,
}

/// One Twilio Media Stream (see the module docs).
#[derive(Debug)]
pub struct TwilioStream {
    config: StreamConfig,
    phase: Phase,
    active: Option<Box<Active>>,
    out: VecDeque<Outgoing>,
    events: VecDeque<StreamEvent>,
    stats: StreamStats,
    payload: Box<[u8; MAX_PAYLOAD]>,
}

impl TwilioStream {
    /// A stream waiting for `connected` and `start`.
    pub fn new(config: StreamConfig) -> Self {
        TwilioStream {
            config,
            phase: Phase::AwaitingStart,
            active: None,
            out: VecDeque::with_capacity(8),
            events: VecDeque::with_capacity(1),
            stats: StreamStats::default(),
            payload: Box::new([0; MAX_PAYLOAD]),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// The stream's id, once `start` has arrived.
    pub fn stream_sid(&self) -> Option<&StreamSid> {
        self.active.as_ref().map(|a| &a.stream_sid)
    }

    /// Whether `start` has been taken and the stream is not closed.
    pub fn is_streaming(&self) -> bool {
        self.phase == Phase::Streaming
    }

    /// Whether the stream is over (after `stop`, a hangup, a wrong format or
    /// the socket closing). Send what [`TwilioStream::poll_output`] still
    /// holds, then drop the stream.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Next frame to send.
    pub fn poll_output(&mut self) -> Option<Outgoing> {
        self.out.pop_front()
    }

    /// Next event for the driver.
    pub fn poll_event(&mut self) -> Option<StreamEvent> {
        self.events.pop_front()
    }

    /// When to call [`TwilioStream::handle_timeout`] next: the next 20 ms
    /// playout tick, while streaming.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (&self.active, self.phase) {
            (Some(a), Phase::Streaming) => Some(tick_deadline(a.started_at, a.out_tick)),
            _ => None,
        }
    }

    /// Take one text frame from Twilio, received at `now`.
    pub fn handle_text(&mut self, now: Instant, text: &str) -> Result<(), StreamError> {
        if self.phase == Phase::Closed {
            return Err(StreamError::Closed);
        }
        let msg = match message::decode(text) {
            Ok(m) => m,
            Err(e) => return Err(self.bad_message(e)),
        };
        match msg {
            Inbound::Connected { .. } => Ok(()),
            Inbound::Start(start) => self.on_start(now, start),
            Inbound::Media(m) => self.on_media(m),
            Inbound::Dtmf(d) => {
                if !self.check_streaming("dtmf")? {
                    return Ok(());
                }
                let Some(a) = self.active.as_deref_mut() else {
                    return Ok(());
                };
                if d.track == Track::Inbound {
                    let at = media_time(a.started_at, now);
                    a.port.event(PortEvent::Dtmf {
                        digit: d.digit,
                        duration_ms: 0,
                        at,
                    });
                    pump(a, &mut self.out, &mut self.stats);
                    self.stats.dtmf_in += 1;
                }
                Ok(())
            }
            Inbound::Mark(m) => {
                if !self.check_streaming("mark")? {
                    return Ok(());
                }
                let Some(a) = self.active.as_deref_mut() else {
                    return Ok(());
                };
                on_mark_echo(a, now, &m.name, &mut self.stats);
                Ok(())
            }
            Inbound::Stop(_) => {
                self.end(now, HangupReason::Remote, "stream stopped");
                Ok(())
            }
            // `Inbound` is non-exhaustive for other crates only.
            #[allow(unreachable_patterns)]
            _ => Ok(()),
        }
    }

    /// A binary WebSocket frame arrived (Twilio never sends one): counted,
    /// logged, ignored.
    pub fn handle_binary(&mut self, _now: Instant, bytes: &[u8]) -> Result<(), StreamError> {
        if self.phase == Phase::Closed {
            return Err(StreamError::Closed);
        }
        self.stats.binary_frames += 1;
        let e = StreamError::BinaryFrame { len: bytes.len() };
        if should_log(self.stats.binary_frames) {
            tracing::warn!(count = self.stats.binary_frames, error = %e, "twilio stream: bad input");
        }
        Err(e)
    }

    /// The WebSocket ended (close frame, error or EOF) at `now`. If Twilio
    /// did not send `stop` first, the pipeline is told the transport failed.
    pub fn handle_socket_closed(&mut self, now: Instant) {
        if self.phase != Phase::Closed {
            self.end(now, HangupReason::Error, "socket closed");
            // The socket is gone: nothing can be sent any more.
            self.out.clear();
        }
    }

    /// Run the control lane and every playout tick due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase != Phase::Streaming {
            return;
        }
        self.apply_controls(now);
        if self.phase != Phase::Streaming {
            return;
        }
        let Some(a) = self.active.as_deref_mut() else {
            return;
        };
        let due_at = tick_deadline(a.started_at, a.out_tick);
        if now < due_at {
            return;
        }
        let due = (now.duration_since(due_at).as_micros() / TICK.as_micros()) as u64 + 1;
        let play = due.min(u64::from(self.config.max_burst.max(1)));
        let skip = due - play;
        if skip > 0 {
            a.out_tick += skip;
            self.stats.ticks_skipped += skip;
        }
        for _ in 0..play {
            let at = MediaTime::ZERO.plus_frames(a.out_tick);
            a.out_tick += 1;
            match a.port.next_playout(at) {
                Playout::Frame(frame) => {
                    // Marks dequeued ahead of this frame go out before it.
                    pump(a, &mut self.out, &mut self.stats);
                    if frame.rate() != RATE {
                        self.stats.wrong_rate_frames += 1;
                        continue;
                    }
                    let mut mulaw = [0u8; MAX_FRAME_SAMPLES];
                    let pcm = frame.samples();
                    let bytes = &mut mulaw[..pcm.len()];
                    if Law::Mu.encode(pcm, bytes).is_ok() {
                        let mut text = String::with_capacity(96 + 4 * FRAME / 3);
                        message::encode_media(&a.stream_sid, bytes, &mut text);
                        self.out.push_back(Outgoing::Text(text));
                        self.stats.media_out += 1;
                    }
                }
                Playout::Idle => pump(a, &mut self.out, &mut self.stats),
                Playout::Closed => {
                    pump(a, &mut self.out, &mut self.stats);
                    tracing::info!("twilio stream: pipeline ended, closing the stream");
                    self.end(now, HangupReason::Local, "pipeline ended");
                    return;
                }
            }
        }
    }

    fn apply_controls(&mut self, now: Instant) {
        loop {
            let Some(a) = self.active.as_deref_mut() else {
                return;
            };
            let Some(control) = a.port.poll_control() else {
                return;
            };
            match control {
                PortControl::Flush => {
                    // Marks already dequeued go to Twilio first (then get cleared).
                    pump(a, &mut self.out, &mut self.stats);
                    let mut text = String::with_capacity(64);
                    message::encode_clear(&a.stream_sid, &mut text);
                    self.out.push_back(Outgoing::Text(text));
                    self.stats.clears_out += 1;
                    let cleared = a.pending_marks.len();
                    self.stats.marks_cleared += cleared as u64;
                    a.flush_extra_marks = u32::try_from(cleared).unwrap_or(u32::MAX);
                    a.cleared_marks.extend(a.pending_marks.drain(..));
                    while a.cleared_marks.len() > MAX_CLEARED_MARKS {
                        a.cleared_marks.pop_front();
                    }
                    a.port.flush(media_time(a.started_at, now));
                    pump(a, &mut self.out, &mut self.stats);
                }
                PortControl::SendDtmf { .. } => {
                    self.stats.dtmf_out_ignored += 1;
                    if should_log(self.stats.dtmf_out_ignored) {
                        tracing::warn!("twilio stream: Media Streams cannot send DTMF; ignored");
                    }
                }
                PortControl::Hangup => {
                    self.end(now, HangupReason::Local, "call ended");
                    return;
                }
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    fn bad_message(&mut self, e: MessageError) -> StreamError {
        let count = match e {
            MessageError::MalformedJson { .. } => &mut self.stats.malformed_json,
            MessageError::UnknownEvent { .. } => &mut self.stats.unknown_events,
            MessageError::BadBase64 | MessageError::PayloadTooLarge { .. } => {
                &mut self.stats.bad_base64
            }
            _ => &mut self.stats.invalid_messages,
        };
        *count += 1;
        if should_log(*count) {
            tracing::warn!(count = *count, error = %e, "twilio stream: bad input");
        }
        StreamError::Message(e)
    }

    /// `Ok(true)` while streaming, `Ok(false)` once closed, or the
    /// before-start error (counted and logged).
    fn check_streaming(&mut self, event: &'static str) -> Result<bool, StreamError> {
        match self.phase {
            Phase::Streaming => Ok(true),
            Phase::Closed => Ok(false),
            Phase::AwaitingStart => {
                self.stats.before_start += 1;
                let e = StreamError::BeforeStart { event };
                if should_log(self.stats.before_start) {
                    tracing::warn!(count = self.stats.before_start, error = %e, "twilio stream: bad input");
                }
                Err(e)
            }
        }
    }

    fn on_start(&mut self, now: Instant, start: message::Start) -> Result<(), StreamError> {
        if self.phase != Phase::AwaitingStart {
            self.stats.second_start += 1;
            if should_log(self.stats.second_start) {
                tracing::warn!(
                    count = self.stats.second_start,
                    "twilio stream: second start ignored"
                );
            }
            return Err(StreamError::SecondStart);
        }
        if let Err(e) = start.media_format.require_mulaw_8k_mono() {
            tracing::warn!(error = %e, "twilio stream: closing");
            self.phase = Phase::Closed;
            self.out.push_back(Outgoing::Close {
                code: CLOSE_UNSUPPORTED,
                reason: "unsupported media format: only audio/x-mulaw 8000 Hz mono",
            });
            return Err(StreamError::Message(e));
        }
        let agent = start
            .custom_parameters
            .get("agent")
            .cloned()
            .unwrap_or_else(|| self.config.default_agent.clone());
        let (mut media, port) = pair(
            PortInfo {
                call_id: start.call_sid.as_str().to_owned(),
                agent,
                transport: TransportKind::Twilio,
                rate: RATE,
            },
            self.config.port,
        );
        let (events_out, events_in) = crossbeam_channel::bounded(self.config.port.events.max(1));
        let raw_events = std::mem::replace(&mut media.events, events_in);
        let window = self.config.reorder_window;
        let mut a = Box::new(Active {
            port,
            raw_events,
            events_out,
            stream_sid: start.stream_sid.clone(),
            started_at: now,
            out_tick: 0,
            pending_marks: VecDeque::with_capacity(8),
            cleared_marks: VecDeque::new(),
            flush_extra_marks: 0,
            next_chunk: None,
            slots: (0..window)
                .map(|_| Slot {
                    chunk: 0,
                    timestamp_ms: 0,
                    len: 0,
                    data: Box::new([0; SLOT_BYTES]),
                })
                .collect(),
            ts_base: None,
            acc: [0; FRAME],
            acc_len: 0,
            in_samples: 0,
            hung_up: false,
        });
        a.port.event(PortEvent::Started);
        pump(&mut a, &mut self.out, &mut self.stats);
        self.active = Some(a);
        self.phase = Phase::Streaming;
        self.events.push_back(StreamEvent::Started {
            port: media,
            stream_sid: start.stream_sid,
            call_sid: start.call_sid,
        });
        Ok(())
    }

    fn on_media(&mut self, m: Media<'_>) -> Result<(), StreamError> {
        if !self.check_streaming("media")? {
            return Ok(());
        }
        if m.track != Track::Inbound {
            self.stats.other_track += 1;
            return Ok(());
        }
        let n = match m.decode_payload(&mut self.payload[..]) {
            Ok(b) => b.len(),
            Err(e) => return Err(self.bad_message(e)),
        };
        self.stats.media_in += 1;
        let Some(a) = self.active.as_deref_mut() else {
            return Ok(());
        };
        let bytes = &self.payload[..n];
        let st = &mut self.stats;
        let expected = *a.next_chunk.get_or_insert(m.chunk);
        if m.chunk < expected || a.slots.iter().any(|s| s.len > 0 && s.chunk == m.chunk) {
            st.late_or_duplicate += 1;
            return Ok(());
        }
        if m.chunk == expected {
            feed(a, st, m.timestamp_ms, bytes);
            a.next_chunk = Some(expected + 1);
            drain_ready(a, st);
            return Ok(());
        }
        // Ahead of a missing chunk: hold it if there is room and it is close.
        let ahead = m.chunk - expected;
        if (ahead as usize) <= a.slots.len() && n <= SLOT_BYTES && n > 0 {
            if let Some(slot) = a.slots.iter_mut().find(|s| s.len == 0) {
                slot.chunk = m.chunk;
                slot.timestamp_ms = m.timestamp_ms;
                slot.len = n;
                slot.data[..n].copy_from_slice(bytes);
                return Ok(());
            }
        }
        // Give up on what is missing: play what is held, then this chunk.
        while let Some(i) = lowest_slot(a) {
            let chunk = a.slots[i].chunk;
            if chunk > m.chunk {
                break;
            }
            st.lost_chunks += chunk - a.next_chunk.unwrap_or(chunk);
            play_slot(a, st, i);
            a.next_chunk = Some(chunk + 1);
        }
        let expected = a.next_chunk.unwrap_or(m.chunk);
        st.lost_chunks += m.chunk.saturating_sub(expected);
        feed(a, st, m.timestamp_ms, bytes);
        a.next_chunk = Some(m.chunk + 1);
        drain_ready(a, st);
        Ok(())
    }

    fn end(&mut self, now: Instant, reason: HangupReason, why: &'static str) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        if let Some(a) = self.active.as_deref_mut() {
            // Held chunks are played out in order before the end.
            while let Some(i) = lowest_slot(a) {
                play_slot(a, &mut self.stats, i);
            }
            if !a.hung_up {
                a.hung_up = true;
                a.port.hang_up(reason, media_time(a.started_at, now));
            }
            pump(a, &mut self.out, &mut self.stats);
        }
        self.out.push_back(Outgoing::Close {
            code: CLOSE_NORMAL,
            reason: why,
        });
    }
}

fn tick_deadline(started_at: Instant, tick: u64) -> Instant {
    started_at + Duration::from_micros(tick.saturating_mul(TICK.as_micros() as u64))
}

fn media_time(started_at: Instant, now: Instant) -> MediaTime {
    MediaTime::from_micros(now.saturating_duration_since(started_at).as_micros() as u64)
}

fn lowest_slot(a: &Active) -> Option<usize> {
    a.slots
        .iter()
        .enumerate()
        .filter(|(_, s)| s.len > 0)
        .min_by_key(|(_, s)| s.chunk)
        .map(|(i, _)| i)
}

fn play_slot(a: &mut Active, st: &mut StreamStats, i: usize) {
    let len = a.slots[i].len;
    a.slots[i].len = 0;
    let ts = a.slots[i].timestamp_ms;
    let mut data = [0u8; SLOT_BYTES];
    data[..len].copy_from_slice(&a.slots[i].data[..len]);
    feed(a, st, ts, &data[..len]);
}

/// Play held chunks that are now next in line.
fn drain_ready(a: &mut Active, st: &mut StreamStats) {
    while let Some(next) = a.next_chunk {
        let Some(i) = a.slots.iter().position(|s| s.len > 0 && s.chunk == next) else {
            return;
        };
        play_slot(a, st, i);
        a.next_chunk = Some(next + 1);
    }
}

/// Decode `mulaw` (a chunk starting at `timestamp_ms`) into 20 ms frames.
fn feed(a: &mut Active, st: &mut StreamStats, timestamp_ms: u64, mulaw: &[u8]) {
    let base = *a.ts_base.get_or_insert(timestamp_ms);
    let target = timestamp_ms.saturating_sub(base).saturating_mul(8);
    let have = a.in_samples + a.acc_len as u64;
    if target >= have + FRAME as u64 {
        // Chunks went missing: keep the clock with (at most 200 ms of) silence.
        let mut gap = (target - have).min(MAX_GAP_FILL);
        while gap > 0 {
            let take = (FRAME - a.acc_len).min(gap as usize);
            a.acc[a.acc_len..a.acc_len + take].fill(0);
            a.acc_len += take;
            gap -= take as u64;
            if a.acc_len == FRAME {
                st.gap_fill_frames += 1;
                emit_frame(a, st);
            }
        }
    }
    let mut rest = mulaw;
    while !rest.is_empty() {
        let take = (FRAME - a.acc_len).min(rest.len());
        let (now, later) = rest.split_at(take);
        if Law::Mu
            .decode(now, &mut a.acc[a.acc_len..a.acc_len + take])
            .is_err()
        {
            return;
        }
        a.acc_len += take;
        rest = later;
        if a.acc_len == FRAME {
            emit_frame(a, st);
        }
    }
}

fn emit_frame(a: &mut Active, st: &mut StreamStats) {
    let time = MediaTime::from_samples(a.in_samples, RATE);
    let mut frame = AudioFrame::silent(RATE, time);
    if frame.copy_from(&a.acc).is_ok() {
        a.port.deliver(frame);
        st.frames_in += 1;
    }
    a.in_samples += FRAME as u64;
    a.acc_len = 0;
}

/// Relay the port's events to the pipeline, turning dequeued marks into
/// Twilio `mark` messages (see the module docs).
fn pump(a: &mut Active, out: &mut VecDeque<Outgoing>, st: &mut StreamStats) {
    while let Ok(ev) = a.raw_events.try_recv() {
        let ev = match ev {
            PortEvent::MarkPlayed { id, .. } => {
                let mut text = String::with_capacity(80);
                message::encode_mark(&a.stream_sid, &id.to_string(), &mut text);
                out.push_back(Outgoing::Text(text));
                a.pending_marks.push_back(id);
                st.marks_out += 1;
                continue;
            }
            PortEvent::Flushed {
                dropped_frames,
                dropped_marks,
                at,
            } => PortEvent::Flushed {
                dropped_frames,
                dropped_marks: dropped_marks
                    .saturating_add(std::mem::take(&mut a.flush_extra_marks)),
                at,
            },
            other => other,
        };
        forward(a, ev);
    }
}

fn forward(a: &Active, ev: PortEvent) {
    if a.events_out.try_send(ev).is_err() {
        a.port
            .counters()
            .events_dropped
            .fetch_add(1, Ordering::Relaxed);
    }
}

fn on_mark_echo(a: &mut Active, now: Instant, name: &str, st: &mut StreamStats) {
    let id = name.parse::<u64>().ok();
    if let Some(pos) = id.and_then(|id| a.pending_marks.iter().position(|&m| m == id)) {
        // Twilio plays in order: everything up to this mark has been heard.
        let at = media_time(a.started_at, now);
        for _ in 0..=pos {
            if let Some(id) = a.pending_marks.pop_front() {
                st.marks_played += 1;
                forward(a, PortEvent::MarkPlayed { id, at });
            }
        }
        return;
    }
    if let Some(pos) = id.and_then(|id| a.cleared_marks.iter().position(|&m| m == id)) {
        // Echoed because of our `clear`: it was never heard.
        a.cleared_marks.remove(pos);
        return;
    }
    st.unknown_marks += 1;
    if should_log(st.unknown_marks) {
        tracing::warn!(
            count = st.unknown_marks,
            "twilio stream: echo of a mark we did not send"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"agent":"sales"}},"streamSid":"MZ1"}"#;

    fn media(chunk: u64, ts: u64, bytes: &[u8]) -> String {
        format!(
            r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{ts}","payload":"{}"}},"streamSid":"MZ1"}}"#,
            chunk + 1,
            STANDARD.encode(bytes)
        )
    }

    fn started(t0: Instant) -> (TwilioStream, MediaPort) {
        let mut s = TwilioStream::new(StreamConfig {
            default_agent: "fallback".into(),
            port: PortConfig {
                inbound_frames: 16,
                outbound_frames: 16,
                events: 32,
            },
            ..StreamConfig::default()
        });
        s.handle_text(
            t0,
            r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
        )
        .unwrap();
        s.handle_text(t0, START).unwrap();
        let Some(StreamEvent::Started {
            port,
            stream_sid,
            call_sid,
        }) = s.poll_event()
        else {
            panic!("no port")
        };
        assert_eq!((stream_sid.as_str(), call_sid.as_str()), ("MZ1", "CA1"));
        assert_eq!(port.info.agent, "sales");
        assert_eq!(port.info.call_id, "CA1");
        assert_eq!(port.events.try_recv(), Ok(PortEvent::Started));
        (s, port)
    }

    fn texts(s: &mut TwilioStream) -> Vec<serde_json::Value> {
        let mut v = Vec::new();
        while let Some(o) = s.poll_output() {
            if let Outgoing::Text(t) = o {
                v.push(serde_json::from_str(&t).unwrap());
            }
        }
        v
    }

    fn events(s: &[serde_json::Value]) -> Vec<&str> {
        s.iter().map(|v| v["event"].as_str().unwrap()).collect()
    }

    fn tone(v: i16, t: u64) -> AudioFrame {
        AudioFrame::from_samples(RATE, MediaTime::ZERO.plus_frames(t), &[v; FRAME]).unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn media_before_start_is_counted_and_survived() {
        let t0 = Instant::now();
        let mut s = TwilioStream::new(StreamConfig::default());
        assert_eq!(
            s.handle_text(t0, &media(1, 0, &[0xFF; 160])),
            Err(StreamError::BeforeStart { event: "media" })
        );
        assert!(s
            .handle_text(t0, r#"{"event":"dtmf","dtmf":{"digit":"1"}}"#)
            .is_err());
        assert_eq!(s.stats().before_start, 2);
        assert_eq!(s.poll_timeout(), None);
        s.handle_text(t0, START).unwrap();
        assert!(s.is_streaming());
        assert_eq!(s.poll_timeout(), Some(t0));
    }

    #[test]
    fn second_start_is_ignored() {
        let t0 = Instant::now();
        let (mut s, _port) = started(t0);
        assert_eq!(s.handle_text(t0, START), Err(StreamError::SecondStart));
        assert_eq!(s.stats().second_start, 1);
        assert!(s.poll_event().is_none());
        assert!(s.is_streaming());
    }

    #[test]
    fn wrong_format_closes_with_a_clear_error() {
        let t0 = Instant::now();
        let mut s = TwilioStream::new(StreamConfig::default());
        let bad = START.replace("\"channels\":1", "\"channels\":2");
        let err = s.handle_text(t0, &bad).unwrap_err();
        assert!(err.is_fatal());
        assert!(
            err.to_string().contains("only audio/x-mulaw 8000 Hz mono"),
            "{err}"
        );
        assert!(s.is_closed());
        assert!(matches!(
            s.poll_output(),
            Some(Outgoing::Close {
                code: CLOSE_UNSUPPORTED,
                ..
            })
        ));
        assert!(s.poll_event().is_none());
        assert_eq!(s.handle_text(t0, START), Err(StreamError::Closed));
    }

    #[test]
    fn bad_input_is_counted() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        assert!(s.handle_text(t0, "{oops").is_err());
        assert!(s.handle_text(t0, r#"{"event":"bogus"}"#).is_err());
        assert!(s.handle_binary(t0, &[1, 2, 3]).is_err());
        let bad = r#"{"event":"media","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"@@@@"}}"#;
        assert!(s.handle_text(t0, bad).is_err());
        assert!(s
            .handle_text(t0, r#"{"event":"media","media":{"chunk":"1"}}"#)
            .is_err());
        let st = s.stats();
        assert_eq!(
            (
                st.malformed_json,
                st.unknown_events,
                st.binary_frames,
                st.bad_base64,
                st.invalid_messages
            ),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(st.bad_input(), 5);
        s.handle_text(t0, &media(1, 0, &[0xFF; 160])).unwrap();
        assert!(port.audio.try_recv().is_ok(), "still streaming");
    }

    #[test]
    fn media_is_ordered_by_chunk_and_rechunked() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        // 80-byte chunks (10 ms) arriving 1, 3, 2, 2 (duplicate), 4.
        let code = |i: u8| vocelio_codecs::g711::linear_to_ulaw(i16::from(i) * 1000);
        for (chunk, dup) in [(1u64, false), (3, false), (2, false), (2, true), (4, false)] {
            let r = s.handle_text(
                t0,
                &media(chunk, (chunk - 1) * 10, &[code(chunk as u8); 80]),
            );
            assert!(r.is_ok(), "{dup}");
        }
        assert_eq!(s.stats().late_or_duplicate, 1);
        let f0 = port.audio.try_recv().unwrap();
        let f1 = port.audio.try_recv().unwrap();
        assert!(port.audio.try_recv().is_err());
        assert_eq!(
            (f0.time(), f1.time()),
            (MediaTime::ZERO, MediaTime::from_micros(20_000))
        );
        let decoded = |i: u8| vocelio_codecs::g711::ulaw_to_linear(code(i));
        assert_eq!(f0.samples()[0], decoded(1));
        assert_eq!(f0.samples()[80], decoded(2));
        assert_eq!(f1.samples()[0], decoded(3));
        assert_eq!(f1.samples()[159], decoded(4));
        // A 240-byte chunk is one and a half frames.
        s.handle_text(t0, &media(5, 40, &[code(5); 240])).unwrap();
        s.handle_text(t0, &media(6, 70, &[code(6); 80])).unwrap();
        assert_eq!(
            port.audio.try_recv().unwrap().time(),
            MediaTime::from_micros(40_000)
        );
        assert_eq!(
            port.audio.try_recv().unwrap().time(),
            MediaTime::from_micros(60_000)
        );
        assert_eq!(s.stats().frames_in, 4);
    }

    #[test]
    fn a_lost_chunk_is_given_up_on_and_filled() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        s.handle_text(t0, &media(1, 0, &[0x00; 160])).unwrap();
        for chunk in 3..=7 {
            s.handle_text(t0, &media(chunk, (chunk - 1) * 20, &[0x00; 160]))
                .unwrap();
        }
        // Window 4: chunks 3-6 wait, 7 makes us give up on 2.
        assert_eq!(s.stats().lost_chunks, 1);
        assert_eq!(s.stats().gap_fill_frames, 1);
        let frames: Vec<AudioFrame> = port.audio.try_iter().collect();
        let times: Vec<u64> = frames.iter().map(|f| f.time().as_millis()).collect();
        assert_eq!(times, vec![0, 20, 40, 60, 80, 100, 120]);
        // 0x00 is full-scale negative mu-law; the filled frame is silent.
        let silent: Vec<bool> = frames.iter().map(|f| f.rms() == 0.0).collect();
        assert_eq!(silent, vec![false, true, false, false, false, false, false]);
    }

    #[test]
    fn outbound_is_paced_one_frame_per_tick() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        for i in 0..10 {
            port.send_frame(tone(1000, i)).unwrap();
        }
        let mut sent = 0;
        for tick in 0..10u64 {
            let now = t0 + ms(20 * tick);
            assert_eq!(s.poll_timeout(), Some(now));
            s.handle_timeout(now);
            let out = texts(&mut s);
            assert_eq!(events(&out), vec!["media"], "tick {tick}");
            assert_eq!(out[0]["streamSid"], "MZ1");
            let payload = STANDARD
                .decode(out[0]["media"]["payload"].as_str().unwrap())
                .unwrap();
            assert_eq!(
                payload,
                vec![vocelio_codecs::g711::linear_to_ulaw(1000); 160]
            );
            sent += 1;
            // Nothing more before the next tick.
            s.handle_timeout(now + ms(19));
            assert!(s.poll_output().is_none());
        }
        assert_eq!(sent, 10);
        s.handle_timeout(t0 + ms(200));
        assert!(s.poll_output().is_none(), "idle ticks send nothing");
    }

    #[test]
    fn a_late_wakeup_sends_at_most_three_frames() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        for i in 0..10 {
            port.send_frame(tone(1000, i)).unwrap();
        }
        s.handle_timeout(t0 + ms(200)); // 11 ticks due
        assert_eq!(events(&texts(&mut s)), vec!["media"; 3]);
        assert_eq!(s.stats().ticks_skipped, 8);
        assert_eq!(s.poll_timeout(), Some(t0 + ms(220)));
        s.handle_timeout(t0 + ms(220));
        assert_eq!(texts(&mut s).len(), 1);
        assert_eq!(port.outbound_room(), 16 - 6);
    }

    #[test]
    fn marks_are_reported_when_twilio_echoes_them() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        port.send_frame(tone(500, 0)).unwrap();
        port.send_frame(tone(500, 1)).unwrap();
        port.send_mark(7).unwrap();
        port.send_frame(tone(500, 2)).unwrap();
        s.handle_timeout(t0);
        s.handle_timeout(t0 + ms(20));
        assert_eq!(events(&texts(&mut s)), vec!["media", "media"]);
        s.handle_timeout(t0 + ms(40));
        let out = texts(&mut s);
        assert_eq!(events(&out), vec!["mark", "media"]);
        assert_eq!(out[0]["mark"]["name"], "7");
        assert!(port.events.try_recv().is_err(), "not heard yet");
        s.handle_text(
            t0 + ms(75),
            r#"{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{"name":"7"}}"#,
        )
        .unwrap();
        assert_eq!(
            port.events.try_recv(),
            Ok(PortEvent::MarkPlayed {
                id: 7,
                at: MediaTime::from_micros(75_000)
            })
        );
        // An echo of something we never sent is counted, not reported.
        s.handle_text(t0, r#"{"event":"mark","mark":{"name":"x"}}"#)
            .unwrap();
        assert_eq!(s.stats().unknown_marks, 1);
        assert!(port.events.try_recv().is_err());
        // A mark with nothing after it goes out on the next tick.
        port.send_mark(8).unwrap();
        s.handle_timeout(t0 + ms(60));
        assert_eq!(events(&texts(&mut s)), vec!["mark"]);
    }

    #[test]
    fn flush_sends_clear_and_drops_pending_marks() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        port.send_frame(tone(500, 0)).unwrap();
        port.send_mark(1).unwrap();
        s.handle_timeout(t0);
        s.handle_timeout(t0 + ms(20));
        assert_eq!(events(&texts(&mut s)), vec!["media", "mark"]);
        for i in 0..5 {
            port.send_frame(tone(500, i)).unwrap();
        }
        port.send_mark(2).unwrap();
        port.control(PortControl::Flush).unwrap();
        s.handle_timeout(t0 + ms(40));
        assert_eq!(events(&texts(&mut s)), vec!["clear"]);
        assert_eq!(
            port.events.try_recv(),
            Ok(PortEvent::Flushed {
                dropped_frames: 5,
                dropped_marks: 2,
                at: MediaTime::from_micros(40_000)
            })
        );
        // Twilio echoes the cleared mark: it was never heard.
        s.handle_text(t0 + ms(45), r#"{"event":"mark","mark":{"name":"1"}}"#)
            .unwrap();
        assert!(port.events.try_recv().is_err());
        assert_eq!(s.stats().unknown_marks, 0);
        assert_eq!(s.stats().clears_out, 1);
    }

    #[test]
    fn dtmf_stop_and_controls() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        s.handle_text(
            t0 + ms(500),
            r#"{"event":"dtmf","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"5"}}"#,
        )
        .unwrap();
        assert_eq!(
            port.events.try_recv(),
            Ok(PortEvent::Dtmf {
                digit: '5',
                duration_ms: 0,
                at: MediaTime::from_micros(500_000)
            })
        );
        port.control(PortControl::SendDtmf {
            digits: "1".into(),
            duration_ms: 100,
        })
        .unwrap();
        s.handle_timeout(t0 + ms(520));
        assert_eq!(s.stats().dtmf_out_ignored, 1);
        assert!(s.is_streaming());
        s.handle_text(t0 + ms(600), r#"{"event":"stop","stop":{"callSid":"CA1"}}"#)
            .unwrap();
        assert!(s.is_closed());
        assert_eq!(
            port.events.try_recv(),
            Ok(PortEvent::Hangup {
                reason: HangupReason::Remote,
                at: MediaTime::from_micros(600_000)
            })
        );
        assert!(matches!(
            s.poll_output(),
            Some(Outgoing::Close {
                code: CLOSE_NORMAL,
                ..
            })
        ));
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn pipeline_hangup_and_departure_close_the_stream() {
        let t0 = Instant::now();
        let (mut s, port) = started(t0);
        port.control(PortControl::Hangup).unwrap();
        s.handle_timeout(t0);
        assert!(s.is_closed());
        assert!(matches!(
            port.events.try_recv(),
            Ok(PortEvent::Hangup {
                reason: HangupReason::Local,
                ..
            })
        ));
        let (mut s, port) = started(t0);
        drop(port);
        s.handle_timeout(t0);
        assert!(s.is_closed());
        let (mut s, port) = started(t0);
        s.handle_socket_closed(t0 + ms(10));
        assert!(s.poll_output().is_none());
        assert!(matches!(
            port.events.try_recv(),
            Ok(PortEvent::Hangup {
                reason: HangupReason::Error,
                ..
            })
        ));
    }
}
