//! The per-call media port: where a transport meets a pipeline.
//!
//! A call's transport (SIP/RTP in `engine::media`, a Twilio Media Stream in
//! `engine::twilio`) holds the [`TransportPort`] end; the call's pipeline
//! holds the [`MediaPort`] end. Neither can tell what is on the other side:
//! a pipeline serves a SIP call and a Twilio stream the same way.
//!
//! ```text
//!             inbound audio (20 ms frames, bounded)        events (bounded)
//! transport  ---------------------------------------->  +  ---------------->  pipeline
//!            <----------------------------------------  +  <----------------
//!             outbound audio + marks, in order (bounded)   control (bounded, overtakes audio)
//! ```
//!
//! - Frames travel at [`PortInfo::rate`] in both directions: the wire codec's
//!   own rate (8 kHz for G.711 and Twilio, 48 kHz for Opus). The pipeline
//!   resamples to what its models want.
//! - Every frame is stamped on the call's media clock: one 20 ms tick per
//!   frame since the media started. Inbound frames carry the tick at which
//!   they left the jitter buffer; [`PortEvent`]s carry the tick at which they
//!   happened on the wire; so latency measured in [`MediaTime`] is what the
//!   caller hears.
//! - Control (flush for barge-in, hangup, DTMF out) rides its own lane and
//!   is read by the transport before any queued audio, so it overtakes it.
//! - Channels are `crossbeam-channel` bounded arrays: lock-free, allocated
//!   once when the port is made. The transport never blocks: when the
//!   pipeline falls behind, inbound frames are dropped and counted
//!   ([`PortCounters::inbound_dropped`]), never queued without bound.
//! - The pipeline may block (`crossbeam_channel::select!` over
//!   [`MediaPort::audio`] and [`MediaPort::events`]) or poll each tick; the
//!   transport polls its end every 20 ms tick and never waits.

use crate::frame::{AudioFrame, MediaTime, SampleRate};
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Which kind of transport is behind a port (for logs and metrics only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TransportKind {
    /// SIP signalling with RTP media.
    Sip,
    /// A Twilio Media Stream over WebSocket.
    Twilio,
    /// In-process (tests, text simulation, benchmarks).
    Local,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Sip => "sip",
            TransportKind::Twilio => "twilio",
            TransportKind::Local => "local",
        })
    }
}

/// What a pipeline knows about the call behind its port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// The call's identifier (the engine's call id or Twilio's `callSid`).
    pub call_id: String,
    /// The agent the call was routed to.
    pub agent: String,
    /// What kind of transport carries it.
    pub transport: TransportKind,
    /// Sample rate of frames in both directions.
    pub rate: SampleRate,
}

/// Queue sizes of a port, in frames or messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConfig {
    /// Inbound frames waiting for the pipeline (default 8: 160 ms).
    pub inbound_frames: usize,
    /// Outbound frames and marks waiting for playout (default 8: 160 ms).
    /// Keep this short: it is what a barge-in has to throw away, and what
    /// sits in a call's memory. A pipeline holds longer replies itself and
    /// feeds them as room appears.
    pub outbound_frames: usize,
    /// Events and control messages each way (default 16).
    ///
    /// Frames are ~2 KB each (inline buffers sized for 48 kHz), so the
    /// defaults keep a port near 32 KB: most of a call's memory.
    pub events: usize,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            inbound_frames: 8,
            outbound_frames: 8,
            events: 16,
        }
    }
}

/// Why a call's media ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HangupReason {
    /// The caller hung up (BYE, Twilio `stop`).
    Remote,
    /// We hung up (pipeline, API or operator).
    Local,
    /// No media arrived for too long.
    MediaTimeout,
    /// The engine is shutting down.
    Shutdown,
    /// The transport failed (socket error, protocol violation).
    Error,
}

/// A transport-to-pipeline event. Events overtake queued inbound audio;
/// `at` places them on the media clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortEvent {
    /// Media started flowing (first tick of the call's media clock).
    Started,
    /// The caller pressed a key (RFC 4733, SIP INFO or Twilio `dtmf`).
    Dtmf {
        /// `0-9`, `*`, `#`, `A-D`.
        digit: char,
        /// How long it was held, when known.
        duration_ms: u32,
        /// When it ended on the media clock.
        at: MediaTime,
    },
    /// Every outbound frame queued before [`Outbound::Mark`] `id` has gone out
    /// on the wire (Twilio: the caller's side has played it).
    MarkPlayed {
        /// The mark's id, as queued.
        id: u64,
        /// When the frame just before it went out.
        at: MediaTime,
    },
    /// A [`PortControl::Flush`] took effect.
    Flushed {
        /// Queued outbound frames thrown away unplayed.
        dropped_frames: u32,
        /// Marks thrown away with them (never reported as played).
        dropped_marks: u32,
        /// When the flush took effect.
        at: MediaTime,
    },
    /// The call's media is over; no more frames will come.
    Hangup {
        /// Why.
        reason: HangupReason,
        /// When.
        at: MediaTime,
    },
}

/// Something the pipeline queues for playout, in order.
// Frames travel inline on purpose: boxing them would allocate per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
#[non_exhaustive]
pub enum Outbound {
    /// 20 ms of agent audio at the port's rate.
    Frame(AudioFrame),
    /// Report [`PortEvent::MarkPlayed`] once everything before this is out.
    Mark(u64),
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outbound::Frame(fr) => write!(f, "Frame({:?})", fr.time()),
            Outbound::Mark(id) => write!(f, "Mark({id})"),
        }
    }
}

/// Pipeline-to-transport control. Read before queued outbound audio.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PortControl {
    /// Barge-in: drop every queued outbound frame and mark now; answered by
    /// [`PortEvent::Flushed`].
    Flush,
    /// Send DTMF digits to the far end (RFC 4733 events on SIP; ignored
    /// with a warning on Twilio, which cannot send them).
    SendDtmf {
        /// `0-9`, `*`, `#`, `A-D`; anything else is skipped.
        digits: String,
        /// Tone length per digit in ms (each digit is followed by the same gap).
        duration_ms: u32,
    },
    /// End the call.
    Hangup,
}

/// Lock-free counters shared by both ends, for metrics and tests.
#[derive(Debug, Default)]
pub struct PortCounters {
    /// Frames handed to the pipeline.
    pub inbound_frames: AtomicU64,
    /// Frames dropped because the pipeline's queue was full.
    pub inbound_dropped: AtomicU64,
    /// Events dropped because the pipeline's event queue was full.
    pub events_dropped: AtomicU64,
    /// Agent frames that went out on the wire.
    pub outbound_played: AtomicU64,
    /// Ticks with nothing queued (silence or comfort noise went out).
    pub outbound_idle: AtomicU64,
    /// Agent frames thrown away by flushes.
    pub outbound_flushed: AtomicU64,
}

impl PortCounters {
    /// Read one counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    fn bump(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The pipeline's end of a call's media port.
#[derive(Debug)]
pub struct MediaPort {
    /// About the call.
    pub info: PortInfo,
    /// Inbound caller audio, one 20 ms frame per tick.
    pub audio: Receiver<AudioFrame>,
    /// Inbound events (DTMF, marks played, flushes, hangup).
    pub events: Receiver<PortEvent>,
    outbound: Sender<Outbound>,
    control: Sender<PortControl>,
    counters: Arc<PortCounters>,
}

/// Why a send into a port failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    /// The queue is full; try again after the next tick.
    #[error("media port queue is full")]
    Full,
    /// The other end is gone (the call ended).
    #[error("media port closed: the call has ended")]
    Closed,
}

impl<T> From<TrySendError<T>> for PortError {
    fn from(e: TrySendError<T>) -> Self {
        match e {
            TrySendError::Full(_) => PortError::Full,
            TrySendError::Disconnected(_) => PortError::Closed,
        }
    }
}

impl MediaPort {
    /// Queue an agent frame for playout. `Full` means the playout queue
    /// holds [`PortConfig::outbound_frames`] already: keep it and retry next tick.
    // The frame comes back in the error so the caller keeps it without a copy.
    #[allow(clippy::result_large_err)]
    pub fn send_frame(&self, frame: AudioFrame) -> Result<(), (PortError, AudioFrame)> {
        match self.outbound.try_send(Outbound::Frame(frame)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Outbound::Frame(f))) => Err((PortError::Full, f)),
            Err(TrySendError::Disconnected(Outbound::Frame(f))) => Err((PortError::Closed, f)),
            Err(_) => unreachable_frame(),
        }
    }

    /// Queue a mark after the frames queued so far.
    pub fn send_mark(&self, id: u64) -> Result<(), PortError> {
        Ok(self.outbound.try_send(Outbound::Mark(id))?)
    }

    /// Room left in the outbound queue, in frames or marks.
    pub fn outbound_room(&self) -> usize {
        self.outbound
            .capacity()
            .unwrap_or(usize::MAX)
            .saturating_sub(self.outbound.len())
    }

    /// Send a control message; it overtakes queued audio.
    pub fn control(&self, msg: PortControl) -> Result<(), PortError> {
        Ok(self.control.try_send(msg)?)
    }

    /// A cheap-to-clone handle on this port's control lane, for code
    /// outside the pipeline (the control API hanging up or sending DTMF on a
    /// live call) after the port itself has been handed to the pipeline.
    pub fn controls(&self) -> PortControls {
        PortControls {
            call_id: self.info.call_id.clone(),
            control: self.control.clone(),
        }
    }

    /// Shared counters.
    pub fn counters(&self) -> &PortCounters {
        &self.counters
    }
}

/// Sends [`PortControl`] messages into a call's port from outside its
/// pipeline. Cheap to clone; holding one does not keep the call alive: once
/// the transport has dropped its end, [`PortControls::send`] returns
/// [`PortError::Closed`].
#[derive(Debug, Clone)]
pub struct PortControls {
    call_id: String,
    control: Sender<PortControl>,
}

impl PortControls {
    /// The call this handle controls ([`PortInfo::call_id`]).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Send a control message; it overtakes queued audio, as
    /// [`MediaPort::control`] does. `Full` means the control lane holds
    /// [`PortConfig::events`] messages the transport has not read yet.
    pub fn send(&self, msg: PortControl) -> Result<(), PortError> {
        Ok(self.control.try_send(msg)?)
    }
}

// `send_frame` only ever sends `Outbound::Frame`, so the error hands the same variant back.
#[cold]
fn unreachable_frame() -> ! {
    unreachable!("try_send returned a different message than it was given")
}

/// The transport's end of a call's media port.
#[derive(Debug)]
pub struct TransportPort {
    /// About the call.
    pub info: PortInfo,
    audio: Sender<AudioFrame>,
    events: Sender<PortEvent>,
    outbound: Receiver<Outbound>,
    control: Receiver<PortControl>,
    counters: Arc<PortCounters>,
    closed: bool,
}

/// What a transport takes from the pipeline on one playout tick.
// Inline like `Outbound`: boxing would allocate per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Playout {
    /// An agent frame to send now.
    Frame(AudioFrame),
    /// Nothing queued: send silence (or comfort noise) to keep the clock.
    Idle,
    /// The pipeline dropped its end: nothing more will be queued. Keep
    /// sending silence or end the call, as the transport sees fit.
    Closed,
}

impl TransportPort {
    /// Hand an inbound frame to the pipeline. Never blocks: if the pipeline's
    /// queue is full the frame is dropped and counted. Returns whether it was delivered.
    pub fn deliver(&self, frame: AudioFrame) -> bool {
        match self.audio.try_send(frame) {
            Ok(()) => {
                PortCounters::bump(&self.counters.inbound_frames, 1);
                true
            }
            Err(_) => {
                PortCounters::bump(&self.counters.inbound_dropped, 1);
                false
            }
        }
    }

    /// Report an event to the pipeline. Never blocks; dropped and counted when full.
    pub fn event(&self, ev: PortEvent) -> bool {
        if self.events.try_send(ev).is_ok() {
            true
        } else {
            PortCounters::bump(&self.counters.events_dropped, 1);
            false
        }
    }

    /// Next control message, if any. Read these before [`TransportPort::next_playout`].
    pub fn poll_control(&self) -> Option<PortControl> {
        self.control.try_recv().ok()
    }

    /// Apply a flush: empty the outbound queue now and tell the pipeline
    /// (at media time `at`). Returns the number of frames dropped.
    pub fn flush(&self, at: MediaTime) -> u32 {
        let (mut frames, mut marks) = (0u32, 0u32);
        while let Ok(item) = self.outbound.try_recv() {
            match item {
                Outbound::Frame(_) => frames += 1,
                Outbound::Mark(_) => marks += 1,
            }
        }
        PortCounters::bump(&self.counters.outbound_flushed, u64::from(frames));
        self.event(PortEvent::Flushed {
            dropped_frames: frames,
            dropped_marks: marks,
            at,
        });
        frames
    }

    /// Take what to play on this tick at media time `at`: marks queued ahead
    /// of the next frame are reported played (everything before them is out),
    /// then the frame itself, or [`Playout::Idle`].
    pub fn next_playout(&self, at: MediaTime) -> Playout {
        loop {
            match self.outbound.try_recv() {
                Ok(Outbound::Mark(id)) => {
                    self.event(PortEvent::MarkPlayed { id, at });
                }
                Ok(Outbound::Frame(f)) => {
                    PortCounters::bump(&self.counters.outbound_played, 1);
                    return Playout::Frame(f);
                }
                Err(TryRecvError::Empty) => {
                    PortCounters::bump(&self.counters.outbound_idle, 1);
                    return Playout::Idle;
                }
                Err(TryRecvError::Disconnected) => {
                    PortCounters::bump(&self.counters.outbound_idle, 1);
                    return Playout::Closed;
                }
            }
        }
    }

    /// Like [`TransportPort::next_playout`] but writes the frame into `out`
    /// (no 2 KB move through the return value). Returns `true` if a frame was written.
    pub fn next_playout_into(&self, at: MediaTime, out: &mut AudioFrame) -> bool {
        match self.next_playout(at) {
            Playout::Frame(f) => {
                *out = f;
                true
            }
            Playout::Idle | Playout::Closed => false,
        }
    }

    /// End the media: tell the pipeline why (once). Dropping the port then
    /// closes the channels.
    pub fn hang_up(&mut self, reason: HangupReason, at: MediaTime) {
        if !self.closed {
            self.closed = true;
            self.event(PortEvent::Hangup { reason, at });
        }
    }

    /// Shared counters.
    pub fn counters(&self) -> &PortCounters {
        &self.counters
    }
}

/// Make a port: the pipeline's end and the transport's end.
pub fn pair(info: PortInfo, config: PortConfig) -> (MediaPort, TransportPort) {
    let (audio_tx, audio_rx) = bounded(config.inbound_frames.max(1));
    let (events_tx, events_rx) = bounded(config.events.max(1));
    let (out_tx, out_rx) = bounded(config.outbound_frames.max(1));
    let (ctl_tx, ctl_rx) = bounded(config.events.max(1));
    let counters = Arc::new(PortCounters::default());
    (
        MediaPort {
            info: info.clone(),
            audio: audio_rx,
            events: events_rx,
            outbound: out_tx,
            control: ctl_tx,
            counters: Arc::clone(&counters),
        },
        TransportPort {
            info,
            audio: audio_tx,
            events: events_tx,
            outbound: out_rx,
            control: ctl_rx,
            counters,
            closed: false,
        },
    )
}

/// A port whose frames run at `rate`, for tests and local tools.
pub fn local_pair(call_id: &str, rate: SampleRate) -> (MediaPort, TransportPort) {
    pair(
        PortInfo {
            call_id: call_id.to_owned(),
            agent: String::new(),
            transport: TransportKind::Local,
            rate,
        },
        PortConfig::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> AudioFrame {
        AudioFrame::silent(SampleRate::Hz8000, MediaTime::ZERO.plus_frames(n))
    }

    #[test]
    fn marks_report_after_preceding_frames() {
        let (port, tp) = local_pair("c", SampleRate::Hz8000);
        port.send_mark(1).unwrap();
        port.send_frame(frame(0)).unwrap();
        port.send_frame(frame(1)).unwrap();
        port.send_mark(2).unwrap();
        let t0 = MediaTime::ZERO;
        assert!(matches!(tp.next_playout(t0), Playout::Frame(_)));
        assert_eq!(
            port.events.try_recv().unwrap(),
            PortEvent::MarkPlayed { id: 1, at: t0 }
        );
        let t1 = t0.plus_frames(1);
        assert!(matches!(tp.next_playout(t1), Playout::Frame(_)));
        assert!(
            port.events.try_recv().is_err(),
            "mark 2 waits for the next tick"
        );
        let t2 = t0.plus_frames(2);
        assert!(matches!(tp.next_playout(t2), Playout::Idle));
        assert_eq!(
            port.events.try_recv().unwrap(),
            PortEvent::MarkPlayed { id: 2, at: t2 }
        );
        assert_eq!(PortCounters::get(&tp.counters().outbound_played), 2);
        assert_eq!(PortCounters::get(&tp.counters().outbound_idle), 1);
    }

    #[test]
    fn flush_drops_queued_audio_and_marks() {
        let (port, tp) = local_pair("c", SampleRate::Hz8000);
        for i in 0..5 {
            port.send_frame(frame(i)).unwrap();
        }
        port.send_mark(9).unwrap();
        port.control(PortControl::Flush).unwrap();
        assert_eq!(tp.poll_control(), Some(PortControl::Flush));
        assert_eq!(tp.flush(MediaTime::from_micros(40_000)), 5);
        assert_eq!(
            port.events.try_recv().unwrap(),
            PortEvent::Flushed {
                dropped_frames: 5,
                dropped_marks: 1,
                at: MediaTime::from_micros(40_000)
            }
        );
        assert!(matches!(tp.next_playout(MediaTime::ZERO), Playout::Idle));
    }

    #[test]
    fn full_queues_never_block_the_transport() {
        let (port, tp) = pair(
            PortInfo {
                call_id: "c".into(),
                agent: "a".into(),
                transport: TransportKind::Local,
                rate: SampleRate::Hz8000,
            },
            PortConfig {
                inbound_frames: 2,
                outbound_frames: 2,
                events: 1,
            },
        );
        assert!(tp.deliver(frame(0)));
        assert!(tp.deliver(frame(1)));
        assert!(!tp.deliver(frame(2)));
        assert_eq!(PortCounters::get(&port.counters().inbound_dropped), 1);
        port.send_frame(frame(0)).unwrap();
        port.send_frame(frame(1)).unwrap();
        assert_eq!(port.outbound_room(), 0);
        let (err, back) = port.send_frame(frame(2)).unwrap_err();
        assert_eq!(err, PortError::Full);
        assert_eq!(back.time(), MediaTime::ZERO.plus_frames(2));
        assert!(tp.event(PortEvent::Started));
        assert!(!tp.event(PortEvent::Started));
        assert_eq!(PortCounters::get(&port.counters().events_dropped), 1);
    }

    #[test]
    fn hangup_is_reported_once_and_closes() {
        let (port, mut tp) = local_pair("c", SampleRate::Hz8000);
        tp.hang_up(HangupReason::Remote, MediaTime::ZERO);
        tp.hang_up(HangupReason::Local, MediaTime::ZERO);
        drop(tp);
        assert_eq!(
            port.events.recv().unwrap(),
            PortEvent::Hangup {
                reason: HangupReason::Remote,
                at: MediaTime::ZERO
            }
        );
        assert!(port.events.recv().is_err());
        assert_eq!(port.send_mark(1), Err(PortError::Closed));
    }

    #[test]
    fn controls_reach_the_transport_after_the_port_is_handed_on() {
        let (port, tp) = local_pair("call-7", SampleRate::Hz8000);
        let controls = port.controls();
        assert_eq!(controls.call_id(), "call-7");
        // The pipeline owns the port now; the control API keeps a clone of the handle.
        let pipeline = std::thread::spawn(move || port.events.recv().ok());
        let api = controls.clone();
        api.send(PortControl::SendDtmf {
            digits: "12".into(),
            duration_ms: 100,
        })
        .unwrap();
        api.send(PortControl::Hangup).unwrap();
        assert_eq!(
            tp.poll_control(),
            Some(PortControl::SendDtmf {
                digits: "12".into(),
                duration_ms: 100
            })
        );
        assert_eq!(tp.poll_control(), Some(PortControl::Hangup));
        assert_eq!(tp.poll_control(), None);
        // The handle does not keep the call alive: once the transport is gone, sends fail.
        drop(tp);
        assert_eq!(pipeline.join().unwrap(), None);
        assert_eq!(controls.send(PortControl::Hangup), Err(PortError::Closed));
    }

    #[test]
    fn transport_sees_the_pipeline_leave() {
        let (port, tp) = local_pair("c", SampleRate::Hz8000);
        port.send_frame(frame(0)).unwrap();
        drop(port);
        assert!(matches!(
            tp.next_playout(MediaTime::ZERO),
            Playout::Frame(_)
        ));
        assert!(matches!(tp.next_playout(MediaTime::ZERO), Playout::Closed));
        assert!(!tp.deliver(frame(1)));
    }
}
