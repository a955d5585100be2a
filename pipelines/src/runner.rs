//! The voice runtime: one scheduler thread drives every call; speech-to-text
//! and text-to-speech run on bounded worker pools sized to the cores.
//!
//! ```text
//!  MediaPort (per call) --try_recv--> scheduler thread (VAD inline, all calls)
//!                                      |  SttJob (finals first, partials when idle)
//!                                      +--------------> STT pool (whisper workers)
//!                                      |  TtsJob
//!                                      +--------------> TTS pool (Piper workers, resample to port rate)
//!                                      <-- results ----+
//!  events() <-- CallEvent (transcripts, turn metrics, barge-ins, actions, end)
//! ```
//!
//! Models load once: whisper's weights are shared by every STT worker (each
//! has its own decoding state); each TTS worker owns a Piper voice; the
//! scheduler owns one Silero session and lends it each call's 3.3 KB state.
//! No thread is started per call.

use crate::brain::Brain;
use crate::call::{
    Call, CallEvent, CallKey, CallProgress, Ctx, SttDone, SttJob, SttKind, TtsDone, TtsJob,
};
use crate::endpointing::{EndpointConfig, EndpointConfigError, VadModel};
use crate::metrics::VoiceMetrics;
use crate::models::ModelDir;
use crate::stt::{SpeechToText, SttError, WhisperModel};
use crate::tts::{TtsError, Voice};
use crate::vad::VadError;
use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use vocelio_codecs::port::MediaPort;
use vocelio_codecs::resample::{FrameResampler, ResampleError};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};

/// Errors starting the runtime or adding calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VoiceError {
    /// whisper could not be loaded.
    #[error(transparent)]
    Stt(#[from] SttError),
    /// Piper could not be loaded.
    #[error(transparent)]
    Tts(#[from] TtsError),
    /// Silero could not be loaded.
    #[error(transparent)]
    Vad(#[from] VadError),
    /// The port's rate cannot be resampled to 16 kHz.
    #[error(transparent)]
    Resample(#[from] ResampleError),
    /// The agent's endpointing settings are inconsistent.
    #[error("agent {agent:?}: {source}")]
    Endpointing {
        /// The agent.
        agent: String,
        /// What is wrong.
        source: EndpointConfigError,
    },
    /// A thread could not be started.
    #[error("cannot start thread {name}: {source}")]
    Spawn {
        /// Its name.
        name: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A worker died while loading its model.
    #[error("worker {name} exited while loading")]
    WorkerLost {
        /// Its name.
        name: String,
    },
    /// The runtime has stopped.
    #[error("the voice runtime has stopped")]
    Stopped,
}

/// Runtime-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    /// whisper workers (default: half the cores, at least 1).
    pub stt_workers: usize,
    /// CPU threads per whisper job (default 1: whisper.cpp's threads spin
    /// while they wait for each other, and on a loaded 2-core box two threads
    /// took 2-3 s for what one thread does in 0.3 s; more workers scale better).
    pub stt_threads: usize,
    /// Piper workers (default: half the cores, at least 1).
    pub tts_workers: usize,
    /// ONNX Runtime threads per Piper job (default 1, for the same reason).
    pub tts_threads: usize,
    /// Which whisper weights.
    pub whisper: WhisperModel,
    /// How often the scheduler sweeps the ports when nothing else wakes it.
    pub sweep: Duration,
    /// Capacity of the event queue (events beyond it are dropped and counted).
    pub events: usize,
    /// Capacity of each job queue.
    pub jobs: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let workers = (cores / 2).max(1);
        RuntimeConfig {
            stt_workers: workers,
            stt_threads: 1,
            tts_workers: workers,
            tts_threads: 1,
            whisper: WhisperModel::TinyEn,
            sweep: Duration::from_millis(2),
            events: 4096,
            jobs: 1024,
        }
    }
}

/// How an agent behaves on a call.
pub struct AgentConfig {
    /// The agent's name (for logs).
    pub name: String,
    /// What it says.
    pub brain: Box<dyn Brain>,
    /// Turn-taking.
    pub endpointing: EndpointConfig,
}

impl std::fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentConfig")
            .field("name", &self.name)
            .field("endpointing", &self.endpointing)
            .finish_non_exhaustive()
    }
}

impl AgentConfig {
    /// An agent with default endpointing.
    pub fn new(name: impl Into<String>, brain: Box<dyn Brain>) -> Self {
        AgentConfig {
            name: name.into(),
            brain,
            endpointing: EndpointConfig::default(),
        }
    }
}

/// A call the runtime is serving.
#[derive(Debug, Clone)]
pub struct CallHandle {
    /// The runtime's key for it.
    pub key: CallKey,
    /// The call's id (from the port).
    pub call_id: String,
    /// Progress counters (tests use them to drive a fake clock).
    pub progress: Arc<CallProgress>,
}

enum Command {
    Add(Box<Call>),
}

enum WorkResult {
    Stt(SttDone),
    Tts(TtsDone),
}

/// The voice pipeline for every call in the process.
#[derive(Debug)]
pub struct VoiceRuntime {
    commands: Option<Sender<Command>>,
    events: Receiver<CallEvent>,
    metrics: Arc<VoiceMetrics>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    next_key: u64,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>, VoiceError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(f)
        .map_err(|source| VoiceError::Spawn { name, source })
}

impl VoiceRuntime {
    /// Load the models from `models` and start the scheduler and pools.
    pub fn start(models: &ModelDir, cfg: RuntimeConfig) -> Result<VoiceRuntime, VoiceError> {
        let stt = Arc::new(SpeechToText::load(models, cfg.whisper)?);
        let stop = Arc::new(AtomicBool::new(false));
        let metrics = Arc::new(VoiceMetrics::default());
        let (final_tx, final_rx) = bounded::<SttJob>(cfg.jobs.max(1));
        let (partial_tx, partial_rx) = bounded::<SttJob>(4);
        let (tts_tx, tts_rx) = bounded::<TtsJob>(cfg.jobs.max(1));
        let (results_tx, results_rx) = unbounded::<WorkResult>();
        let (events_tx, events_rx) = bounded::<CallEvent>(cfg.events.max(16));
        let (cmd_tx, cmd_rx) = unbounded::<Command>();
        let stt_idle = Arc::new(AtomicU32::new(0));
        let mut threads = Vec::new();
        let (ready_tx, ready_rx) = unbounded::<Result<(), VoiceError>>();

        for i in 0..cfg.stt_workers.max(1) {
            let (stt, final_rx, partial_rx, results, idle, ready) = (
                Arc::clone(&stt),
                final_rx.clone(),
                partial_rx.clone(),
                results_tx.clone(),
                Arc::clone(&stt_idle),
                ready_tx.clone(),
            );
            let threads_per = cfg.stt_threads;
            threads.push(spawn(format!("voice-stt-{i}"), move || {
                let mut worker = match stt.worker(threads_per) {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = ready.send(Err(e.into()));
                        return;
                    }
                };
                // whisper's first decode allocates its buffers (~1.5 s here):
                // do it now, not on a caller's first turn.
                let _ = worker.transcribe_i16(&[0; 16_000]);
                let _ = ready.send(Ok(()));
                drop(ready);
                stt_loop(&mut worker, &final_rx, &partial_rx, &results, &idle);
            })?);
        }
        for i in 0..cfg.tts_workers.max(1) {
            let (tts_rx, results, ready, models) = (
                tts_rx.clone(),
                results_tx.clone(),
                ready_tx.clone(),
                models.clone(),
            );
            let threads_per = cfg.tts_threads;
            threads.push(spawn(format!("voice-tts-{i}"), move || {
                let mut voice = match Voice::load(&models, threads_per) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready.send(Err(e.into()));
                        return;
                    }
                };
                // Warm ONNX Runtime and espeak up before the first caller.
                let _ = voice.synthesize("Hello.");
                let _ = ready.send(Ok(()));
                drop(ready);
                tts_loop(&mut voice, &tts_rx, &results);
            })?);
        }
        {
            let (ready, models, stop, metrics, stt_idle) = (
                ready_tx.clone(),
                models.clone(),
                Arc::clone(&stop),
                Arc::clone(&metrics),
                Arc::clone(&stt_idle),
            );
            let sweep = cfg.sweep;
            threads.push(spawn("voice-scheduler".into(), move || {
                let mut vad = match VadModel::load(&models) {
                    Ok(v) => v,
                    Err(e) => {
                        let _ = ready.send(Err(e.into()));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                drop(ready);
                let lanes = Lanes {
                    stt_final: final_tx,
                    stt_partial: partial_tx,
                    stt_idle,
                    tts: tts_tx,
                    events: events_tx,
                    metrics,
                };
                schedule(&mut vad, &lanes, &cmd_rx, &results_rx, &stop, sweep);
            })?);
        }
        drop(ready_tx);
        let mut runtime = VoiceRuntime {
            commands: Some(cmd_tx),
            events: events_rx,
            metrics,
            stop,
            threads,
            next_key: 1,
        };
        let expected = cfg.stt_workers.max(1) + cfg.tts_workers.max(1) + 1;
        for _ in 0..expected {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    runtime.shutdown();
                    return Err(e);
                }
                Err(_) => {
                    runtime.shutdown();
                    return Err(VoiceError::WorkerLost {
                        name: "voice worker".into(),
                    });
                }
            }
        }
        Ok(runtime)
    }

    /// Serve a call: `agent` answers whoever is on `port`.
    pub fn add_call(
        &mut self,
        port: MediaPort,
        agent: AgentConfig,
    ) -> Result<CallHandle, VoiceError> {
        agent
            .endpointing
            .validate()
            .map_err(|source| VoiceError::Endpointing {
                agent: agent.name.clone(),
                source,
            })?;
        let key = CallKey(self.next_key);
        self.next_key += 1;
        let call = Call::new(key, port, agent.brain, agent.endpointing)?;
        let handle = CallHandle {
            key,
            call_id: call.call_id.clone(),
            progress: Arc::clone(&call.progress),
        };
        self.commands
            .as_ref()
            .ok_or(VoiceError::Stopped)?
            .send(Command::Add(Box::new(call)))
            .map_err(|_| VoiceError::Stopped)?;
        Ok(handle)
    }

    /// Transcripts, turn metrics, barge-ins, actions and call ends of every call.
    pub fn events(&self) -> &Receiver<CallEvent> {
        &self.events
    }

    /// The runtime's metrics (render with [`VoiceMetrics::prometheus`]).
    pub fn metrics(&self) -> Arc<VoiceMetrics> {
        Arc::clone(&self.metrics)
    }

    fn shutdown(&mut self) {
        self.commands = None;
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for VoiceRuntime {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The scheduler's ends of the queues.
struct Lanes {
    stt_final: Sender<SttJob>,
    stt_partial: Sender<SttJob>,
    stt_idle: Arc<AtomicU32>,
    tts: Sender<TtsJob>,
    events: Sender<CallEvent>,
    metrics: Arc<VoiceMetrics>,
}

fn schedule(
    vad: &mut VadModel,
    lanes: &Lanes,
    commands: &Receiver<Command>,
    results: &Receiver<WorkResult>,
    stop: &AtomicBool,
    sweep: Duration,
) {
    let mut calls: Vec<Box<Call>> = Vec::new();
    let mut index: HashMap<CallKey, usize> = HashMap::new();
    let mut open = true;
    while !stop.load(Ordering::Acquire) {
        let mut ctx = Ctx {
            vad,
            stt_final: &lanes.stt_final,
            stt_partial: &lanes.stt_partial,
            stt_idle: &lanes.stt_idle,
            tts: &lanes.tts,
            events: &lanes.events,
            metrics: &lanes.metrics,
        };
        while open {
            match commands.try_recv() {
                Ok(Command::Add(call)) => {
                    lanes.metrics.calls_active.fetch_add(1, Ordering::Relaxed);
                    calls.push(call);
                }
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && calls.is_empty() {
            return;
        }
        index.clear();
        index.extend(calls.iter().enumerate().map(|(i, c)| (c.key, i)));
        while let Ok(r) = results.try_recv() {
            dispatch(r, &mut calls, &index, &mut ctx);
        }
        for c in calls.iter_mut() {
            c.service(&mut ctx);
        }
        let before = calls.len();
        calls.retain(|c| !c.ended);
        let gone = (before - calls.len()) as u64;
        lanes
            .metrics
            .calls_active
            .fetch_sub(gone, Ordering::Relaxed);
        // Sleep until a result arrives, a call is added, or the next sweep.
        select! {
            recv(results) -> r => {
                if let Ok(r) = r {
                    index.clear();
                    index.extend(calls.iter().enumerate().map(|(i, c)| (c.key, i)));
                    dispatch(r, &mut calls, &index, &mut ctx);
                }
            }
            default(sweep) => {}
        }
    }
}

fn dispatch(
    r: WorkResult,
    calls: &mut [Box<Call>],
    index: &HashMap<CallKey, usize>,
    ctx: &mut Ctx<'_>,
) {
    let key = match &r {
        WorkResult::Stt(d) => d.call,
        WorkResult::Tts(d) => d.call,
    };
    let Some(call) = index.get(&key).and_then(|&i| calls.get_mut(i)) else {
        return;
    };
    match r {
        WorkResult::Stt(d) => call.on_stt(d, ctx),
        WorkResult::Tts(d) => call.on_tts(d, ctx),
    }
}

fn stt_loop(
    worker: &mut crate::stt::SttWorker,
    finals: &Receiver<SttJob>,
    partials: &Receiver<SttJob>,
    results: &Sender<WorkResult>,
    idle: &AtomicU32,
) {
    loop {
        // Finals first: a partial never delays an end of turn already queued.
        let job = match finals.try_recv() {
            Ok(j) => j,
            Err(_) => {
                idle.fetch_add(1, Ordering::AcqRel);
                let job = select! {
                    recv(finals) -> j => j,
                    recv(partials) -> j => j,
                };
                idle.fetch_sub(1, Ordering::AcqRel);
                match job {
                    Ok(j) => j,
                    Err(_) => return,
                }
            }
        };
        let started = Instant::now();
        let text = if job.pcm.is_empty() {
            Ok(String::new())
        } else {
            worker.transcribe_i16(&job.pcm).map_err(|e| e.to_string())
        };
        let done = SttDone {
            call: job.call,
            kind: job.kind,
            gen: job.gen,
            text,
            submitted: job.submitted,
            compute_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        if results.send(WorkResult::Stt(done)).is_err() {
            return;
        }
        if matches!(job.kind, SttKind::Partial) && finals.is_empty() && partials.is_empty() {
            continue;
        }
    }
}

/// Audio of clauses a worker has spoken, by text and output rate. Greetings
/// and a flow's fixed lines come back on every call; speaking them again
/// costs Piper tens of milliseconds of CPU each time, and the caller waits
/// for it. Bounded by the samples held; the oldest entries go first.
#[derive(Debug, Default)]
struct ClauseCache {
    audio: HashMap<(SampleRate, String), Vec<i16>>,
    order: VecDeque<(SampleRate, String)>,
    samples: usize,
}

impl ClauseCache {
    /// At most this many samples in all (8 MB of 16-bit audio).
    const MAX_SAMPLES: usize = 4_000_000;
    /// Clauses longer than this (in samples) are not kept.
    const MAX_CLAUSE: usize = 200_000;

    fn get(&self, rate: SampleRate, text: &str) -> Option<&Vec<i16>> {
        self.audio.get(&(rate, text.to_string()))
    }

    fn put(&mut self, rate: SampleRate, text: &str, pcm: &[i16]) {
        if pcm.len() > Self::MAX_CLAUSE || self.get(rate, text).is_some() {
            return;
        }
        while self.samples + pcm.len() > Self::MAX_SAMPLES {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(a) = self.audio.remove(&old) {
                self.samples -= a.len();
            }
        }
        let key = (rate, text.to_string());
        self.order.push_back(key.clone());
        self.samples += pcm.len();
        self.audio.insert(key, pcm.to_vec());
    }
}

fn tts_loop(voice: &mut Voice, jobs: &Receiver<TtsJob>, results: &Sender<WorkResult>) {
    let mut resamplers: HashMap<SampleRate, FrameResampler> = HashMap::new();
    let mut cache = ClauseCache::default();
    while let Ok(job) = jobs.recv() {
        let started = Instant::now();
        let pcm = if job.current.load(Ordering::Acquire) != job.reply {
            // Cancelled by a barge-in while queued.
            Ok(Vec::new())
        } else if let Some(pcm) = cache.get(job.rate, &job.text) {
            Ok(pcm.clone())
        } else {
            let pcm = synthesize(voice, &mut resamplers, &job.text, job.rate);
            if let Ok(p) = &pcm {
                cache.put(job.rate, &job.text, p);
            }
            pcm
        };
        let done = TtsDone {
            call: job.call,
            reply: job.reply,
            clause: job.clause,
            pcm,
            compute_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        if results.send(WorkResult::Tts(done)).is_err() {
            return;
        }
    }
}

/// Speak `text` and resample it to `rate`, frame by frame.
fn synthesize(
    voice: &mut Voice,
    resamplers: &mut HashMap<SampleRate, FrameResampler>,
    text: &str,
    rate: SampleRate,
) -> Result<Vec<i16>, String> {
    let pcm = voice.synthesize(text).map_err(|e| e.to_string())?;
    let from = voice.rate();
    let r = match resamplers.entry(rate) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(FrameResampler::new(from, rate).map_err(|e| e.to_string())?)
        }
    };
    r.reset();
    let n_in = from.samples_per_frame();
    let n_out = rate.samples_per_frame();
    let delay = r.delay();
    let frames = pcm.len().div_ceil(n_in) + delay.div_ceil(n_out) + 1;
    let mut out = Vec::with_capacity(frames * n_out);
    let mut fin = AudioFrame::silent(from, MediaTime::ZERO);
    let mut fout = AudioFrame::silent(rate, MediaTime::ZERO);
    for i in 0..frames {
        let start = (i * n_in).min(pcm.len());
        let end = (start + n_in).min(pcm.len());
        fin.clear();
        fin.samples_mut()[..end - start].copy_from_slice(&pcm[start..end]);
        r.process(&fin, &mut fout).map_err(|e| e.to_string())?;
        out.extend_from_slice(fout.samples());
    }
    let want = pcm.len() * rate.hz() as usize / from.hz() as usize;
    out.drain(..delay.min(out.len()));
    out.truncate(want);
    Ok(out)
}

#[cfg(test)]
mod clause_cache_tests {
    use super::ClauseCache;
    use vocelio_codecs::SampleRate;

    #[test]
    fn a_clause_is_kept_by_text_and_rate() {
        let mut c = ClauseCache::default();
        c.put(SampleRate::Hz8000, "Hello.", &[1, 2, 3]);
        assert_eq!(c.get(SampleRate::Hz8000, "Hello."), Some(&vec![1, 2, 3]));
        assert_eq!(c.get(SampleRate::Hz16000, "Hello."), None);
        assert_eq!(c.get(SampleRate::Hz8000, "Hello"), None);
    }

    #[test]
    fn the_oldest_clauses_go_when_the_budget_is_full() {
        let mut c = ClauseCache::default();
        let clause = vec![0i16; ClauseCache::MAX_CLAUSE];
        let fit = ClauseCache::MAX_SAMPLES / ClauseCache::MAX_CLAUSE;
        for i in 0..fit + 2 {
            c.put(SampleRate::Hz8000, &format!("line {i}"), &clause);
        }
        assert!(c.samples <= ClauseCache::MAX_SAMPLES);
        assert_eq!(c.get(SampleRate::Hz8000, "line 0"), None);
        assert_eq!(c.get(SampleRate::Hz8000, "line 1"), None);
        assert!(c.get(SampleRate::Hz8000, "line 2").is_some());
        assert!(c
            .get(SampleRate::Hz8000, &format!("line {}", fit + 1))
            .is_some());
        // Too long to keep at all.
        c.put(
            SampleRate::Hz8000,
            "long",
            &vec![0i16; ClauseCache::MAX_CLAUSE + 1],
        );
        assert_eq!(c.get(SampleRate::Hz8000, "long"), None);
    }
}
