//! One call's state and turn-taking logic, driven by the runner's scheduler.
//!
//! A [`Call`] owns its media port, its brain and small fixed buffers; it
//! never blocks and never runs inference: it hands STT and TTS jobs to the
//! runner's pools and takes their results back as messages. Its work per
//! sweep is: port events first (control lane: DTMF, marks, flushes,
//! hangup), then inbound audio (resample to 16 kHz, VAD, endpointing), brain
//! chunks, and finally outbound audio as the port's playout queue has room.

use crate::brain::{
    Action, Brain, BrainChunk, BrainSink, CallInsights, Conversation, Speaker, Turn, TurnAnalysis,
    TurnInput,
};
use crate::endpointing::{
    looks_unfinished, EndpointConfig, Endpointer, VadEvent, VadModel, VadState,
};
use crate::metrics::VoiceMetrics;
use crate::sentences::{first_words, ClauseSplitter};
use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use vocelio_codecs::port::{MediaPort, PortControl, PortEvent};
use vocelio_codecs::resample::FrameResampler;
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};

/// The runner's key for a call (unique within a runtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallKey(pub u64);

/// Speech-to-text job kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SttKind {
    /// The end-of-turn transcript (possibly speculative, at a pause).
    Final,
    /// A partial transcript while the caller talks.
    Partial,
}

/// A transcription job for the STT pool.
#[derive(Debug)]
pub(crate) struct SttJob {
    pub call: CallKey,
    pub kind: SttKind,
    /// Candidate generation (finals) or utterance number (partials).
    pub gen: u32,
    pub pcm: Vec<i16>,
    pub submitted: Instant,
}

/// A finished transcription.
#[derive(Debug)]
pub(crate) struct SttDone {
    pub call: CallKey,
    pub kind: SttKind,
    pub gen: u32,
    pub text: Result<String, String>,
    pub submitted: Instant,
    pub compute_ms: f64,
}

/// A synthesis job for the TTS pool.
#[derive(Debug)]
pub(crate) struct TtsJob {
    pub call: CallKey,
    pub reply: u32,
    pub clause: usize,
    pub text: String,
    pub rate: SampleRate,
    /// The call's current reply; the job is skipped when it no longer matches.
    pub current: Arc<AtomicU32>,
}

/// Finished synthesis: PCM at the port's rate.
#[derive(Debug)]
pub(crate) struct TtsDone {
    pub call: CallKey,
    pub reply: u32,
    pub clause: usize,
    pub pcm: Result<Vec<i16>, String>,
    pub compute_ms: f64,
}

/// How a call reaches the pools and the outside world.
pub(crate) struct Ctx<'a> {
    pub vad: &'a mut VadModel,
    pub stt_final: &'a Sender<SttJob>,
    pub stt_partial: &'a Sender<SttJob>,
    pub stt_idle: &'a AtomicU32,
    pub tts: &'a Sender<TtsJob>,
    pub events: &'a Sender<CallEvent>,
    pub metrics: &'a VoiceMetrics,
}

impl Ctx<'_> {
    fn emit(&self, ev: CallEvent) {
        if self.events.try_send(ev).is_err() {
            self.metrics.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What kind of caller input a turn was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputKind {
    /// Speech.
    Speech,
    /// Keypad digits.
    Dtmf,
}

/// Latency of one caller turn and the reply to it.
///
/// Media-clock figures are what the caller experiences on the wire; compute
/// figures are wall-clock durations of the work (queueing included).
#[derive(Debug, Clone, PartialEq)]
pub struct TurnMetrics {
    /// The reply's number within the call (the greeting is 1 when there is one).
    pub reply: u32,
    /// Speech or DTMF.
    pub input: InputKind,
    /// Caller's speech onset (media clock).
    pub speech_start: MediaTime,
    /// End of the caller's last speech (or the last key) (media clock).
    pub last_speech: MediaTime,
    /// When the turn was declared over (media clock).
    pub end_of_turn: MediaTime,
    /// `end_of_turn - last_speech`, ms.
    pub endpoint_delay_ms: f64,
    /// Final transcript: submitted -> text back (wall, queue included), ms.
    pub stt_ms: Option<f64>,
    /// whisper's own time for it, ms.
    pub stt_compute_ms: Option<f64>,
    /// Brain called -> first complete clause, ms (wall).
    pub brain_first_sentence_ms: Option<f64>,
    /// First clause submitted -> its audio ready, ms (wall, queue included).
    pub tts_first_audio_ms: Option<f64>,
    /// Piper's own time for the first clause (with resampling), ms.
    pub tts_first_compute_ms: Option<f64>,
    /// When the reply's first frame went out on the wire (media clock).
    pub first_audio_out: Option<MediaTime>,
    /// `first_audio_out - last_speech`, ms: voice-to-voice on the wire.
    pub voice_to_voice_ms: Option<f64>,
}

/// Why a call's work failed (the call goes on).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// whisper failed on an utterance.
    #[error("transcription failed: {reason}")]
    Transcription {
        /// whisper's error.
        reason: String,
    },
    /// Piper failed on a clause (it is skipped).
    #[error("synthesis of {clause:?} failed: {reason}")]
    Synthesis {
        /// The clause.
        clause: String,
        /// Piper's error.
        reason: String,
    },
    /// Silero failed; the window is treated as silence.
    #[error("voice activity detection failed: {reason}")]
    Vad {
        /// ONNX Runtime's error.
        reason: String,
    },
    /// A worker pool's queue is full: the engine is overloaded.
    #[error("{queue} queue is full")]
    Overloaded {
        /// Which queue.
        queue: &'static str,
    },
}

/// What the runtime reports about its calls.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CallEvent {
    /// The runtime took the call.
    Started {
        /// The call.
        call_id: String,
    },
    /// Words from either side, with media times.
    Transcript {
        /// The call.
        call_id: String,
        /// Who spoke.
        speaker: Speaker,
        /// Caller: transcript; agent: the words the caller heard.
        text: String,
        /// `false` for a caller's partial transcript.
        is_final: bool,
        /// Start on the media clock.
        start: MediaTime,
        /// End on the media clock.
        end: MediaTime,
        /// Agent: the caller cut the reply off.
        interrupted: bool,
    },
    /// Latency of a turn, once its reply started playing (or ended silent).
    Turn {
        /// The call.
        call_id: String,
        /// The figures.
        metrics: TurnMetrics,
    },
    /// The caller talked over the agent and the agent stopped.
    BargeIn {
        /// The call.
        call_id: String,
        /// Caller's speech onset (media clock).
        onset: MediaTime,
        /// When the transport dropped the queued agent audio (media clock).
        flushed_at: MediaTime,
        /// `flushed_at - onset`, ms.
        stop_ms: f64,
        /// The reply's words the caller heard.
        heard: String,
        /// The reply so far as the brain wrote it.
        said: String,
    },
    /// The brain asked for something the runtime cannot do itself (transfer),
    /// or did something worth recording (variables, DTMF out, hangup).
    Action {
        /// The call.
        call_id: String,
        /// What.
        action: Action,
    },
    /// Something failed; the call continues.
    Error {
        /// The call.
        call_id: String,
        /// What.
        error: CallError,
    },
    /// What the brain made of a caller turn: intent, sentiment, suggested
    /// replies for a supervisor.
    Analysis {
        /// The call.
        call_id: String,
        /// The analysis.
        analysis: TurnAnalysis,
    },
    /// The call is over; the conversation as the caller heard it.
    Ended {
        /// The call.
        call_id: String,
        /// Turns, agent turns holding only heard words.
        conversation: Conversation,
        /// What the call came to (outcome, summary, intents, sentiment,
        /// the brain's trace).
        insights: Box<CallInsights>,
    },
}

/// Progress counters a transport (or test) may watch.
#[derive(Debug, Default)]
pub struct CallProgress {
    /// Inbound frames the call has processed.
    pub frames: AtomicU64,
    /// Inference jobs in flight or brain replies unfinished for the call.
    pub busy: AtomicU32,
    /// Set when the runtime has let go of the call.
    pub ended: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkKind {
    ReplyStart { reply: u32 },
    ClauseEnd { reply: u32, clause: usize },
}

#[derive(Debug, PartialEq, Eq)]
enum ClauseState {
    Waiting,
    Synth,
    Ready,
    Sent,
    Failed,
}

#[derive(Debug)]
struct Clause {
    text: String,
    state: ClauseState,
    pcm: Vec<i16>,
    pos: usize,
    frames_total: u32,
    frames_sent: u32,
    played: bool,
}

#[derive(Debug)]
struct Reply {
    id: u32,
    splitter: ClauseSplitter,
    said: String,
    clauses: Vec<Clause>,
    brain_done: bool,
    next_send: usize,
    start_mark_sent: bool,
    synth_inflight: bool,
    first_out: Option<MediaTime>,
    after: Vec<Action>,
    metrics: Option<TurnMetrics>,
    brain_started: Instant,
    tts_first_submit: Option<Instant>,
    /// Barge-in: waiting for the transport's `Flushed` (onset of the caller's speech).
    flushing: Option<MediaTime>,
    at: MediaTime,
}

impl Reply {
    fn new(id: u32, at: MediaTime) -> Self {
        Reply {
            id,
            splitter: ClauseSplitter::new(),
            said: String::new(),
            clauses: Vec::new(),
            brain_done: false,
            next_send: 0,
            start_mark_sent: false,
            synth_inflight: false,
            first_out: None,
            after: Vec::new(),
            metrics: None,
            brain_started: Instant::now(),
            tts_first_submit: None,
            flushing: None,
            at,
        }
    }

    fn add_clause(&mut self, text: String) {
        self.clauses.push(Clause {
            text,
            state: ClauseState::Waiting,
            pcm: Vec::new(),
            pos: 0,
            frames_total: 0,
            frames_sent: 0,
            played: false,
        });
    }

    fn finished(&self) -> bool {
        self.brain_done
            && self.flushing.is_none()
            && self
                .clauses
                .iter()
                .all(|c| c.played || c.state == ClauseState::Failed)
    }

    /// Words heard, given `dropped` frames of the sent ones were flushed unplayed.
    fn heard(&self, mut dropped: u32) -> String {
        let mut played_frames = vec![0u32; self.clauses.len()];
        for (i, c) in self.clauses.iter().enumerate() {
            played_frames[i] = if c.played {
                c.frames_total
            } else {
                c.frames_sent
            };
        }
        for (i, c) in self.clauses.iter().enumerate().rev() {
            if c.played || dropped == 0 {
                continue;
            }
            let d = dropped.min(played_frames[i]);
            played_frames[i] -= d;
            dropped -= d;
        }
        let mut words: Vec<String> = Vec::new();
        for (i, c) in self.clauses.iter().enumerate() {
            if c.played || (c.frames_total > 0 && played_frames[i] >= c.frames_total) {
                words.push(c.text.clone());
            } else if c.frames_total > 0 && played_frames[i] > 0 {
                let n = c.text.split_whitespace().count();
                let k =
                    (n as u64 * u64::from(played_frames[i]) / u64::from(c.frames_total)) as usize;
                if k > 0 {
                    words.push(first_words(&c.text, k));
                }
                break;
            } else {
                break;
            }
        }
        words.join(" ")
    }
}

/// A speculative or final transcription of the current utterance.
#[derive(Debug)]
struct Candidate {
    gen: u32,
    onset: MediaTime,
    last_speech: MediaTime,
    /// The turn is over whatever the words (end silence or max length).
    must_end: bool,
    text: Option<(String, f64, f64)>,
}

/// One call served by the runtime.
pub(crate) struct Call {
    pub key: CallKey,
    pub call_id: String,
    port: MediaPort,
    brain: Box<dyn Brain>,
    cfg: EndpointConfig,
    conversation: Conversation,
    rate: SampleRate,
    up: FrameResampler,
    up_delay_us: u64,
    frame16: AudioFrame,
    vad: VadState,
    ep: Endpointer,
    preroll: VecDeque<i16>,
    preroll_cap: usize,
    utter: Vec<i16>,
    utter_start: MediaTime,
    utter_seq: u32,
    last_partial_len: usize,
    partial_inflight: bool,
    gen: u32,
    candidate: Option<Candidate>,
    dtmf: String,
    dtmf_last: MediaTime,
    now: MediaTime,
    brain_tx: Sender<(u32, BrainChunk)>,
    brain_rx: Receiver<(u32, BrainChunk)>,
    reply_seq: u32,
    reply: Option<Reply>,
    current_reply: Arc<AtomicU32>,
    next_mark: u64,
    marks: VecDeque<(u64, MarkKind)>,
    jobs: u32,
    greeted: bool,
    hangup_sent: bool,
    pub ended: bool,
    pub progress: Arc<CallProgress>,
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("call_id", &self.call_id)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Call {
    /// A call on `port` answered by `brain`.
    pub fn new(
        key: CallKey,
        port: MediaPort,
        brain: Box<dyn Brain>,
        cfg: EndpointConfig,
    ) -> Result<Self, vocelio_codecs::resample::ResampleError> {
        let rate = port.info.rate;
        let up = FrameResampler::new(rate, SampleRate::Hz16000)?;
        let up_delay_us = up.delay() as u64 * 1_000_000 / 16_000;
        let (brain_tx, brain_rx) = crossbeam_channel::unbounded();
        let preroll_cap = (cfg.pre_roll_ms as usize * 16).max(320);
        let conversation = Conversation {
            call_id: port.info.call_id.clone(),
            agent: port.info.agent.clone(),
            ..Conversation::default()
        };
        Ok(Call {
            key,
            call_id: port.info.call_id.clone(),
            port,
            brain,
            cfg,
            conversation,
            rate,
            up,
            up_delay_us,
            frame16: AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO),
            vad: VadState::default(),
            ep: Endpointer::new(cfg),
            preroll: VecDeque::with_capacity(preroll_cap),
            preroll_cap,
            utter: Vec::new(),
            utter_start: MediaTime::ZERO,
            utter_seq: 0,
            last_partial_len: 0,
            partial_inflight: false,
            gen: 0,
            candidate: None,
            dtmf: String::new(),
            dtmf_last: MediaTime::ZERO,
            now: MediaTime::ZERO,
            brain_tx,
            brain_rx,
            reply_seq: 0,
            reply: None,
            current_reply: Arc::new(AtomicU32::new(0)),
            next_mark: 1,
            marks: VecDeque::with_capacity(16),
            jobs: 0,
            greeted: false,
            hangup_sent: false,
            ended: false,
            progress: Arc::new(CallProgress::default()),
        })
    }

    /// One sweep: events, audio, brain output, outbound audio.
    pub fn service(&mut self, ctx: &mut Ctx<'_>) {
        loop {
            match self.port.events.try_recv() {
                Ok(ev) => self.on_port_event(ev, ctx),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.end(ctx);
                    break;
                }
            }
        }
        if self.ended {
            return;
        }
        loop {
            match self.port.audio.try_recv() {
                Ok(frame) => {
                    if !self.greeted {
                        self.greet(ctx);
                    }
                    self.on_frame(&frame, ctx);
                    self.progress.frames.fetch_add(1, Ordering::Release);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.end(ctx);
                    return;
                }
            }
        }
        if !self.dtmf.is_empty()
            && self.now.micros_since(self.dtmf_last) >= u64::from(self.cfg.dtmf_timeout_ms) * 1000
        {
            self.commit_dtmf(ctx);
        }
        while let Ok((reply, chunk)) = self.brain_rx.try_recv() {
            self.on_brain(reply, chunk, ctx);
        }
        self.pump_tts(ctx);
        self.pump_out();
        self.check_reply_done(ctx);
        let busy = self.jobs
            + u32::from(self.reply.as_ref().is_some_and(|r| !r.brain_done))
            + u32::from(self.candidate.is_some());
        self.progress.busy.store(busy, Ordering::Release);
    }

    fn on_port_event(&mut self, ev: PortEvent, ctx: &mut Ctx<'_>) {
        match ev {
            PortEvent::Started => self.greet(ctx),
            PortEvent::Dtmf { digit, at, .. } => {
                self.now = self.now.max(at);
                if self.reply.as_ref().is_some_and(|r| r.flushing.is_none()) {
                    self.barge_in(at, ctx);
                }
                if digit == '#' {
                    self.dtmf_last = at;
                    self.commit_dtmf(ctx);
                } else {
                    self.dtmf.push(digit);
                    self.dtmf_last = at;
                }
            }
            PortEvent::MarkPlayed { id, at } => self.on_mark(id, at, ctx),
            PortEvent::Flushed {
                dropped_frames, at, ..
            } => self.on_flushed(dropped_frames, at, ctx),
            PortEvent::Hangup { at, .. } => {
                self.now = self.now.max(at);
                self.end(ctx);
            }
            _ => {}
        }
    }

    fn greet(&mut self, ctx: &mut Ctx<'_>) {
        if self.greeted {
            return;
        }
        self.greeted = true;
        ctx.emit(CallEvent::Started {
            call_id: self.call_id.clone(),
        });
        if let Some(text) = self.brain.greeting() {
            let reply = self.start_reply();
            let mut r = Reply::new(reply, self.now);
            r.said = text.clone();
            for c in r.splitter.push(&text) {
                r.add_clause(c);
            }
            if let Some(c) = r.splitter.finish() {
                r.add_clause(c);
            }
            r.brain_done = true;
            self.reply = Some(r);
        }
    }

    fn start_reply(&mut self) -> u32 {
        self.reply_seq += 1;
        self.current_reply.store(self.reply_seq, Ordering::Release);
        self.reply_seq
    }

    fn on_frame(&mut self, frame: &AudioFrame, ctx: &mut Ctx<'_>) {
        if self.up.process(frame, &mut self.frame16).is_err() {
            return;
        }
        // Media time of the 16 kHz audio, allowing for the resampler's delay.
        let t0 = MediaTime::from_micros(frame.time().as_micros().saturating_sub(self.up_delay_us));
        self.now = self.now.max(frame.time().plus_frames(1));
        let mut window = None;
        let pcm = self.frame16.samples();
        if let Err(e) = ctx
            .vad
            .push(&mut self.vad, pcm, |end, p| window = Some((end, p)))
        {
            ctx.emit(CallEvent::Error {
                call_id: self.call_id.clone(),
                error: CallError::Vad {
                    reason: e.to_string(),
                },
            });
        }
        for &s in pcm {
            if self.preroll.len() == self.preroll_cap {
                self.preroll.pop_front();
            }
            self.preroll.push_back(s);
        }
        if self.ep.in_utterance() {
            self.utter.extend_from_slice(pcm);
        }
        if let Some((end, p)) = window {
            let end_t = MediaTime::from_micros(t0.as_micros() + end as u64 * 1_000_000 / 16_000);
            if let Some(ev) = self.ep.push(p, end_t) {
                self.on_vad(ev, ctx);
            }
        }
        self.maybe_partial(ctx);
    }

    fn on_vad(&mut self, ev: VadEvent, ctx: &mut Ctx<'_>) {
        match ev {
            VadEvent::SpeechStart { .. } => {
                self.utter.clear();
                self.utter.extend(self.preroll.iter().copied());
                let held = self.preroll.len() as u64 * 1_000_000 / 16_000;
                self.utter_start = MediaTime::from_micros(
                    self.now.as_micros().saturating_sub(held + self.up_delay_us),
                );
                self.utter_seq += 1;
                self.last_partial_len = 0;
            }
            VadEvent::Sustained { onset } => {
                if self.reply.as_ref().is_some_and(|r| r.flushing.is_none()) {
                    self.barge_in(onset, ctx);
                }
            }
            VadEvent::Pause { last_speech } => {
                let onset = self.onset();
                self.submit_candidate(onset, last_speech, false, ctx);
            }
            VadEvent::Resumed => self.candidate = None,
            VadEvent::End {
                last_speech,
                forced,
            } => {
                let onset = self.onset();
                match &mut self.candidate {
                    Some(c) if !forced => {
                        c.must_end = true;
                        if c.text.is_some() {
                            self.commit(ctx);
                        }
                    }
                    _ => self.submit_candidate(onset, last_speech, true, ctx),
                }
                self.utter.clear();
                self.utter.shrink_to(16_000);
            }
            VadEvent::Discarded => {
                self.utter.clear();
            }
        }
    }

    fn onset(&self) -> MediaTime {
        self.utter_start
    }

    /// The utterance cut to the last speech plus the configured tail.
    fn utterance_audio(&self, last_speech: MediaTime) -> Vec<i16> {
        let speech_us = last_speech.micros_since(self.utter_start) + self.up_delay_us;
        let n = (speech_us * 16 / 1000) as usize + self.cfg.tail_ms as usize * 16;
        self.utter[..n.min(self.utter.len())].to_vec()
    }

    fn submit_candidate(
        &mut self,
        onset: MediaTime,
        last_speech: MediaTime,
        must_end: bool,
        ctx: &mut Ctx<'_>,
    ) {
        self.gen += 1;
        let pcm = self.utterance_audio(last_speech);
        let job = SttJob {
            call: self.key,
            kind: SttKind::Final,
            gen: self.gen,
            pcm,
            submitted: Instant::now(),
        };
        if ctx.stt_final.try_send(job).is_err() {
            self.overloaded("speech-to-text", ctx);
            return;
        }
        self.jobs += 1;
        self.candidate = Some(Candidate {
            gen: self.gen,
            onset,
            last_speech,
            must_end,
            text: None,
        });
    }

    fn maybe_partial(&mut self, ctx: &mut Ctx<'_>) {
        let every = self.cfg.partial_every_ms as usize * 16;
        if every == 0
            || !self.ep.speaking()
            || self.partial_inflight
            || self.candidate.is_some()
            || self.utter.len() < self.last_partial_len + every
            || ctx.stt_idle.load(Ordering::Acquire) == 0
        {
            return;
        }
        let job = SttJob {
            call: self.key,
            kind: SttKind::Partial,
            gen: self.utter_seq,
            pcm: self.utter.clone(),
            submitted: Instant::now(),
        };
        if ctx.stt_partial.try_send(job).is_ok() {
            self.last_partial_len = self.utter.len();
            self.partial_inflight = true;
            self.jobs += 1;
        }
    }

    fn overloaded(&mut self, queue: &'static str, ctx: &mut Ctx<'_>) {
        ctx.metrics.inference_errors.fetch_add(1, Ordering::Relaxed);
        ctx.emit(CallEvent::Error {
            call_id: self.call_id.clone(),
            error: CallError::Overloaded { queue },
        });
    }

    /// A transcription came back.
    pub fn on_stt(&mut self, done: SttDone, ctx: &mut Ctx<'_>) {
        self.jobs = self.jobs.saturating_sub(1);
        let text = match done.text {
            Ok(t) => t,
            Err(reason) => {
                ctx.metrics.inference_errors.fetch_add(1, Ordering::Relaxed);
                ctx.emit(CallEvent::Error {
                    call_id: self.call_id.clone(),
                    error: CallError::Transcription { reason },
                });
                String::new()
            }
        };
        match done.kind {
            SttKind::Partial => {
                self.partial_inflight = false;
                if done.gen == self.utter_seq && self.ep.in_utterance() && !text.is_empty() {
                    ctx.emit(CallEvent::Transcript {
                        call_id: self.call_id.clone(),
                        speaker: Speaker::Caller,
                        text,
                        is_final: false,
                        start: self.utter_start,
                        end: self.now,
                        interrupted: false,
                    });
                }
            }
            SttKind::Final => {
                let Some(c) = &mut self.candidate else { return };
                if c.gen != done.gen {
                    return;
                }
                let wall = done.submitted.elapsed().as_secs_f64() * 1000.0;
                let finished = !looks_unfinished(&text);
                c.text = Some((text, wall, done.compute_ms));
                if c.must_end || finished {
                    self.commit(ctx);
                }
            }
        }
    }

    /// End the caller's turn with the candidate transcript.
    fn commit(&mut self, ctx: &mut Ctx<'_>) {
        let Some(c) = self.candidate.take() else {
            return;
        };
        let Some((text, stt_ms, compute_ms)) = c.text else {
            return;
        };
        if !c.must_end {
            // Ended early on the words: the silence still running is not a new turn.
            self.ep = Endpointer::new(self.cfg);
            self.utter.clear();
        }
        if text.trim().is_empty() {
            return;
        }
        ctx.metrics.stt.record_ms(stt_ms);
        ctx.emit(CallEvent::Transcript {
            call_id: self.call_id.clone(),
            speaker: Speaker::Caller,
            text: text.clone(),
            is_final: true,
            start: c.onset,
            end: c.last_speech,
            interrupted: false,
        });
        let input = TurnInput::Speech { text, at: c.onset };
        let metrics = TurnMetrics {
            reply: 0,
            input: InputKind::Speech,
            speech_start: c.onset,
            last_speech: c.last_speech,
            end_of_turn: self.now,
            endpoint_delay_ms: self.now.micros_since(c.last_speech) as f64 / 1000.0,
            stt_ms: Some(stt_ms),
            stt_compute_ms: Some(compute_ms),
            brain_first_sentence_ms: None,
            tts_first_audio_ms: None,
            tts_first_compute_ms: None,
            first_audio_out: None,
            voice_to_voice_ms: None,
        };
        self.take_turn(input, metrics, ctx);
    }

    fn commit_dtmf(&mut self, ctx: &mut Ctx<'_>) {
        let digits = std::mem::take(&mut self.dtmf);
        if digits.is_empty() {
            return;
        }
        let at = self.dtmf_last;
        ctx.emit(CallEvent::Transcript {
            call_id: self.call_id.clone(),
            speaker: Speaker::Caller,
            text: format!("DTMF {digits}"),
            is_final: true,
            start: at,
            end: at,
            interrupted: false,
        });
        let metrics = TurnMetrics {
            reply: 0,
            input: InputKind::Dtmf,
            speech_start: at,
            last_speech: at,
            end_of_turn: self.now,
            endpoint_delay_ms: self.now.micros_since(at) as f64 / 1000.0,
            stt_ms: None,
            stt_compute_ms: None,
            brain_first_sentence_ms: None,
            tts_first_audio_ms: None,
            tts_first_compute_ms: None,
            first_audio_out: None,
            voice_to_voice_ms: None,
        };
        self.take_turn(TurnInput::Dtmf { digits, at }, metrics, ctx);
    }

    /// A caller turn is complete: record it and ask the brain.
    fn take_turn(&mut self, input: TurnInput, mut metrics: TurnMetrics, ctx: &mut Ctx<'_>) {
        ctx.metrics.turns.fetch_add(1, Ordering::Relaxed);
        ctx.metrics
            .endpoint_delay
            .record_ms(metrics.endpoint_delay_ms);
        if self.reply.is_some() {
            // Still talking (or flushing): whatever was heard is kept.
            self.finish_reply(0, true, ctx);
        }
        let reply = self.start_reply();
        metrics.reply = reply;
        let mut r = Reply::new(reply, self.now);
        r.metrics = Some(metrics);
        self.reply = Some(r);
        let sink = BrainSink::new(reply, self.brain_tx.clone());
        self.brain.respond(&self.conversation, &input, sink);
        self.conversation.turns.push(Turn {
            speaker: Speaker::Caller,
            text: input.text(),
            at: input.at(),
            interrupted: false,
        });
    }

    fn on_brain(&mut self, reply: u32, chunk: BrainChunk, ctx: &mut Ctx<'_>) {
        let Some(r) = self
            .reply
            .as_mut()
            .filter(|r| r.id == reply && r.flushing.is_none())
        else {
            return;
        };
        match chunk {
            BrainChunk::Text(t) => {
                r.said.push_str(&t);
                let was_empty = r.clauses.is_empty();
                for c in r.splitter.push(&t) {
                    r.add_clause(c);
                }
                if was_empty && !r.clauses.is_empty() {
                    let ms = r.brain_started.elapsed().as_secs_f64() * 1000.0;
                    if let Some(m) = &mut r.metrics {
                        m.brain_first_sentence_ms = Some(ms);
                    }
                    ctx.metrics.brain_first_sentence.record_ms(ms);
                }
            }
            BrainChunk::Action(a) => {
                match &a {
                    Action::SendDtmf { digits } => {
                        let _ = self.port.control(PortControl::SendDtmf {
                            digits: digits.clone(),
                            duration_ms: 100,
                        });
                    }
                    Action::SetVariable { name, value } => {
                        self.conversation
                            .variables
                            .push((name.clone(), value.clone()));
                    }
                    Action::Tool { .. } => {}
                    _ => r.after.push(a.clone()),
                }
                self.conversation.actions.push(a.clone());
                ctx.emit(CallEvent::Action {
                    call_id: self.call_id.clone(),
                    action: a,
                });
            }
            BrainChunk::Analysis(analysis) => ctx.emit(CallEvent::Analysis {
                call_id: self.call_id.clone(),
                analysis,
            }),
            BrainChunk::Done => {
                let was_empty = r.clauses.is_empty();
                if let Some(c) = r.splitter.finish() {
                    r.add_clause(c);
                }
                if was_empty && !r.clauses.is_empty() {
                    let ms = r.brain_started.elapsed().as_secs_f64() * 1000.0;
                    if let Some(m) = &mut r.metrics {
                        m.brain_first_sentence_ms = Some(ms);
                    }
                    ctx.metrics.brain_first_sentence.record_ms(ms);
                }
                r.brain_done = true;
            }
        }
    }

    /// Synthesise the next clause: one job in flight per call, at most one
    /// clause of audio waiting beyond the one playing.
    fn pump_tts(&mut self, ctx: &mut Ctx<'_>) {
        let Some(r) = self.reply.as_mut() else { return };
        if r.synth_inflight || r.flushing.is_some() {
            return;
        }
        let ready = r
            .clauses
            .iter()
            .filter(|c| c.state == ClauseState::Ready)
            .count();
        if ready > 1 {
            return;
        }
        let Some(idx) = r
            .clauses
            .iter()
            .position(|c| c.state == ClauseState::Waiting)
        else {
            return;
        };
        let job = TtsJob {
            call: self.key,
            reply: r.id,
            clause: idx,
            text: r.clauses[idx].text.clone(),
            rate: self.rate,
            current: Arc::clone(&self.current_reply),
        };
        match ctx.tts.try_send(job) {
            Ok(()) => {
                r.clauses[idx].state = ClauseState::Synth;
                r.synth_inflight = true;
                if r.tts_first_submit.is_none() {
                    r.tts_first_submit = Some(Instant::now());
                }
                self.jobs += 1;
            }
            Err(TrySendError::Full(_)) => self.overloaded("text-to-speech", ctx),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// A clause's audio came back.
    pub fn on_tts(&mut self, done: TtsDone, ctx: &mut Ctx<'_>) {
        self.jobs = self.jobs.saturating_sub(1);
        let Some(r) = self.reply.as_mut().filter(|r| r.id == done.reply) else {
            return;
        };
        r.synth_inflight = false;
        let Some(c) = r.clauses.get_mut(done.clause) else {
            return;
        };
        if r.flushing.is_some() {
            c.state = ClauseState::Failed;
            return;
        }
        match done.pcm {
            Ok(pcm) if !pcm.is_empty() => {
                let spf = self.rate.samples_per_frame();
                c.frames_total = pcm.len().div_ceil(spf) as u32;
                c.pcm = pcm;
                c.state = ClauseState::Ready;
                if done.clause == 0 {
                    if let Some(t) = r.tts_first_submit {
                        let ms = t.elapsed().as_secs_f64() * 1000.0;
                        ctx.metrics.tts_first_audio.record_ms(ms);
                        if let Some(m) = &mut r.metrics {
                            m.tts_first_audio_ms = Some(ms);
                            m.tts_first_compute_ms = Some(done.compute_ms);
                        }
                    }
                }
            }
            Ok(_) => c.state = ClauseState::Failed,
            Err(reason) => {
                c.state = ClauseState::Failed;
                let clause = c.text.clone();
                ctx.metrics.inference_errors.fetch_add(1, Ordering::Relaxed);
                ctx.emit(CallEvent::Error {
                    call_id: self.call_id.clone(),
                    error: CallError::Synthesis { clause, reason },
                });
            }
        }
    }

    /// Move agent audio into the port's playout queue as it has room.
    fn pump_out(&mut self) {
        let Some(r) = self.reply.as_mut() else { return };
        if r.flushing.is_some() {
            return;
        }
        let spf = self.rate.samples_per_frame();
        while self.port.outbound_room() > 0 {
            // Skip clauses that failed.
            while r
                .clauses
                .get(r.next_send)
                .is_some_and(|c| c.state == ClauseState::Failed)
            {
                r.next_send += 1;
            }
            let Some(c) = r.clauses.get_mut(r.next_send) else {
                return;
            };
            if c.state != ClauseState::Ready {
                return;
            }
            if !r.start_mark_sent {
                let id = self.next_mark;
                if self.port.send_mark(id).is_err() {
                    return;
                }
                self.next_mark += 1;
                self.marks
                    .push_back((id, MarkKind::ReplyStart { reply: r.id }));
                r.start_mark_sent = true;
                continue;
            }
            let last = c.pos + spf >= c.pcm.len();
            if last && self.port.outbound_room() < 2 {
                return;
            }
            let end = (c.pos + spf).min(c.pcm.len());
            let mut frame = AudioFrame::silent(self.rate, self.now);
            frame.samples_mut()[..end - c.pos].copy_from_slice(&c.pcm[c.pos..end]);
            if self.port.send_frame(frame).is_err() {
                return;
            }
            c.pos = end;
            c.frames_sent += 1;
            if last {
                let id = self.next_mark;
                if self.port.send_mark(id).is_ok() {
                    self.next_mark += 1;
                    self.marks.push_back((
                        id,
                        MarkKind::ClauseEnd {
                            reply: r.id,
                            clause: r.next_send,
                        },
                    ));
                }
                c.pcm = Vec::new();
                c.state = ClauseState::Sent;
                r.next_send += 1;
            }
        }
    }

    fn on_mark(&mut self, id: u64, at: MediaTime, ctx: &mut Ctx<'_>) {
        let kind = loop {
            match self.marks.pop_front() {
                Some((mid, kind)) if mid == id => break kind,
                Some(_) => continue,
                None => return,
            }
        };
        let Some(r) = self.reply.as_mut() else { return };
        match kind {
            MarkKind::ReplyStart { reply } if reply == r.id => {
                r.first_out = Some(at);
                if let Some(mut m) = r.metrics.take() {
                    m.first_audio_out = Some(at);
                    let v2v = at.micros_since(m.last_speech) as f64 / 1000.0;
                    m.voice_to_voice_ms = Some(v2v);
                    ctx.metrics.voice_to_voice.record_ms(v2v);
                    ctx.emit(CallEvent::Turn {
                        call_id: self.call_id.clone(),
                        metrics: m,
                    });
                }
            }
            MarkKind::ClauseEnd { reply, clause } if reply == r.id => {
                if let Some(c) = r.clauses.get_mut(clause) {
                    c.played = true;
                }
            }
            _ => {}
        }
    }

    /// The caller interrupted: stop the agent now.
    fn barge_in(&mut self, onset: MediaTime, ctx: &mut Ctx<'_>) {
        let Some(r) = self.reply.as_mut() else { return };
        // No more synthesis for this reply; queued jobs are skipped.
        self.current_reply.store(0, Ordering::Release);
        for c in &mut r.clauses {
            if c.state == ClauseState::Ready || c.state == ClauseState::Synth {
                c.pcm = Vec::new();
                if c.frames_sent == 0 {
                    c.state = ClauseState::Failed;
                }
            }
        }
        let unplayed = r.clauses.iter().any(|c| c.frames_sent > 0 && !c.played);
        if unplayed && self.port.control(PortControl::Flush).is_ok() {
            r.flushing = Some(onset);
        } else {
            self.finish_reply(0, true, ctx);
        }
    }

    fn on_flushed(&mut self, dropped: u32, at: MediaTime, ctx: &mut Ctx<'_>) {
        let Some(r) = self.reply.as_mut() else { return };
        let Some(onset) = r.flushing.take() else {
            return;
        };
        // Marks still queued were dropped with the audio.
        self.marks.clear();
        let stop_ms = at.micros_since(onset) as f64 / 1000.0;
        ctx.metrics.barge_ins.fetch_add(1, Ordering::Relaxed);
        ctx.metrics.barge_in_stop.record_ms(stop_ms);
        ctx.emit(CallEvent::BargeIn {
            call_id: self.call_id.clone(),
            onset,
            flushed_at: at,
            stop_ms,
            heard: r.heard(dropped),
            said: r.said.clone(),
        });
        self.finish_reply(dropped, true, ctx);
    }

    fn check_reply_done(&mut self, ctx: &mut Ctx<'_>) {
        if self.reply.as_ref().is_some_and(Reply::finished) {
            self.finish_reply(0, false, ctx);
        }
    }

    /// Close the current reply: keep what was heard, run deferred actions.
    fn finish_reply(&mut self, dropped: u32, interrupted: bool, ctx: &mut Ctx<'_>) {
        let Some(r) = self.reply.take() else { return };
        if self.current_reply.load(Ordering::Acquire) == r.id {
            self.current_reply.store(0, Ordering::Release);
        }
        let heard = r.heard(dropped);
        if let Some(m) = r.metrics.clone() {
            // The reply never reached the wire.
            ctx.emit(CallEvent::Turn {
                call_id: self.call_id.clone(),
                metrics: m,
            });
        }
        let start = r.first_out.unwrap_or(r.at);
        if !heard.is_empty() || !r.said.is_empty() {
            ctx.emit(CallEvent::Transcript {
                call_id: self.call_id.clone(),
                speaker: Speaker::Agent,
                text: heard.clone(),
                is_final: true,
                start,
                end: self.now,
                interrupted,
            });
            self.conversation.turns.push(Turn {
                speaker: Speaker::Agent,
                text: heard,
                at: start,
                interrupted,
            });
        }
        if interrupted {
            return;
        }
        for a in r.after {
            if matches!(a, Action::Hangup) && !self.hangup_sent {
                self.hangup_sent = true;
                let _ = self.port.control(PortControl::Hangup);
            }
        }
    }

    fn end(&mut self, ctx: &mut Ctx<'_>) {
        if self.ended {
            return;
        }
        if self.reply.is_some() {
            self.finish_reply(0, true, ctx);
        }
        self.ended = true;
        self.progress.ended.store(true, Ordering::Release);
        let insights = Box::new(self.brain.insights(&self.conversation));
        ctx.emit(CallEvent::Ended {
            call_id: self.call_id.clone(),
            conversation: self.conversation.clone(),
            insights,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clause(text: &str, total: u32, sent: u32, played: bool) -> Clause {
        Clause {
            text: text.into(),
            state: ClauseState::Sent,
            pcm: Vec::new(),
            pos: 0,
            frames_total: total,
            frames_sent: sent,
            played,
        }
    }

    #[test]
    fn a_call_is_small() {
        // Inline: Silero state 3.3 KB, the 16 kHz scratch frame 2 KB, the rest
        // is handles. On the heap: the pre-roll ring (300 ms at 16 kHz =
        // 9.6 KB), the 8 -> 16 kHz resampler, and while the caller talks the
        // utterance (32 KB per second of speech, released after the turn).
        let inline = std::mem::size_of::<Call>();
        let preroll = EndpointConfig::default().pre_roll_ms as usize * 16 * 2;
        eprintln!("Call: {inline} bytes inline + {preroll} bytes pre-roll");
        assert!(inline + preroll < 24 * 1024, "{inline} + {preroll}");
    }

    #[test]
    fn heard_words_follow_playout() {
        let mut r = Reply::new(1, MediaTime::ZERO);
        r.clauses.push(clause("Sure,", 20, 20, true));
        r.clauses.push(clause("one two three four", 40, 40, false));
        r.clauses.push(clause("five six", 30, 4, false));
        // 4 + 20 frames of the 44 sent unplayed were dropped: half of clause 2 was heard.
        assert_eq!(r.heard(24), "Sure, one two");
        assert_eq!(r.heard(0), "Sure, one two three four");
        assert_eq!(r.heard(1000), "Sure,");
        r.clauses[1].played = true;
        assert_eq!(r.heard(4), "Sure, one two three four");
    }
}
