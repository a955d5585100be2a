//! The voice pipeline end to end on real models and fixture speech, through
//! a local media port. The test plays the transport: each 20 ms tick it
//! applies control (flush), takes a playout frame, and delivers one inbound
//! frame, as the RTP session does. The media clock jumps ahead as soon as
//! the pipeline has processed a frame, except while inference for the call
//! is in flight: then it runs at real pace (20 ms per tick), so media-clock
//! latencies include the real compute time. No sleeps.

use crossbeam_channel::Receiver;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use vocelio_codecs::g711::Law;
use vocelio_codecs::port::{
    local_pair, HangupReason, Playout, PortControl, PortEvent, TransportPort,
};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};
use vocelio_pipelines::brain::normalise;
use vocelio_pipelines::brain::{ScriptedBrain, Speaker};
use vocelio_pipelines::call::{CallEvent, TurnMetrics};
use vocelio_pipelines::models::test_model_dir;
use vocelio_pipelines::runner::{AgentConfig, CallHandle, RuntimeConfig, VoiceRuntime};

const SPF: usize = 160;

fn runtime() -> &'static Mutex<VoiceRuntime> {
    static RT: OnceLock<Mutex<VoiceRuntime>> = OnceLock::new();
    RT.get_or_init(|| {
        Mutex::new(
            VoiceRuntime::start(&test_model_dir(), RuntimeConfig::default())
                .expect("models (run scripts/setup.sh)"),
        )
    })
}

fn fixture_8k(id: &str) -> Vec<i16> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../fixtures/audio/{id}.8k.ulaw"));
    let ulaw = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let mut pcm = vec![0i16; ulaw.len()];
    Law::Mu.decode(&ulaw, &mut pcm).unwrap();
    pcm
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

/// Media time of the first loud 20 ms frame in a clip.
fn energy_onset_ms(pcm: &[i16]) -> u64 {
    pcm.chunks(SPF).position(|c| rms(c) > 300.0).unwrap_or(0) as u64 * 20
}

/// The transport side of one call, on a fake clock.
struct Wire<'a> {
    tp: TransportPort,
    call: CallHandle,
    events_rx: &'a Receiver<CallEvent>,
    /// The next tick's media time.
    t: MediaTime,
    delivered: u64,
    last_tick: Instant,
    /// Agent frames that went out: (time, rms).
    out: Vec<(MediaTime, f64)>,
    flushes: Vec<MediaTime>,
    events: Vec<CallEvent>,
}

impl<'a> Wire<'a> {
    fn new(
        rt: &'a mut VoiceRuntime,
        events_rx: &'a Receiver<CallEvent>,
        brain: ScriptedBrain,
        id: &str,
    ) -> Self {
        let (port, tp) = local_pair(id, SampleRate::Hz8000);
        let call = rt
            .add_call(port, AgentConfig::new("test", Box::new(brain)))
            .unwrap();
        assert!(tp.event(PortEvent::Started));
        Wire {
            tp,
            call,
            events_rx,
            t: MediaTime::ZERO.plus_frames(1),
            delivered: 0,
            last_tick: Instant::now(),
            out: Vec::new(),
            flushes: Vec::new(),
            events: Vec::new(),
        }
    }

    fn pull_events(&mut self, wait: Duration) {
        if let Ok(ev) = self.events_rx.recv_timeout(wait) {
            self.keep(ev);
        }
        while let Ok(ev) = self.events_rx.try_recv() {
            self.keep(ev);
        }
    }

    fn keep(&mut self, ev: CallEvent) {
        self.events.push(ev);
    }

    /// One 20 ms tick carrying `pcm` (160 samples) from the caller.
    fn tick(&mut self, pcm: &[i16]) {
        while let Some(c) = self.tp.poll_control() {
            match c {
                PortControl::Flush => {
                    self.tp.flush(self.t);
                    self.flushes.push(self.t);
                }
                PortControl::Hangup => self.tp.hang_up(HangupReason::Local, self.t),
                _ => {}
            }
        }
        if let Playout::Frame(f) = self.tp.next_playout(self.t) {
            self.out.push((self.t, f64::from(f.rms())));
        }
        let mut frame = AudioFrame::silent(
            SampleRate::Hz8000,
            MediaTime::from_micros(self.t.as_micros() - 20_000),
        );
        frame.samples_mut()[..pcm.len()].copy_from_slice(pcm);
        assert!(self.tp.deliver(frame), "pipeline fell behind");
        self.delivered += 1;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.call.progress.frames.load(Ordering::Acquire) < self.delivered {
            assert!(Instant::now() < deadline, "pipeline stalled");
            self.pull_events(Duration::from_millis(1));
        }
        // Inference in flight for this call: the clock runs at real pace.
        if self.call.progress.busy.load(Ordering::Acquire) > 0 {
            let due = self.last_tick + Duration::from_millis(20);
            while let Some(left) = due.checked_duration_since(Instant::now()) {
                self.pull_events(left);
            }
        }
        self.last_tick = Instant::now();
        self.t = self.t.plus_frames(1);
    }

    fn play(&mut self, pcm: &[i16]) {
        for c in pcm.chunks(SPF) {
            let mut f = [0i16; SPF];
            f[..c.len()].copy_from_slice(c);
            self.tick(&f);
        }
    }

    fn silence_ms(&mut self, ms: u64) {
        for _ in 0..ms / 20 {
            self.tick(&[0; SPF]);
        }
    }

    /// Silence until `done` holds (or `max_ms` passes).
    fn silence_until(&mut self, max_ms: u64, mut done: impl FnMut(&Self) -> bool) -> bool {
        for _ in 0..max_ms / 20 {
            if done(self) {
                return true;
            }
            self.tick(&[0; SPF]);
        }
        done(self)
    }

    fn agent_turns(&self) -> usize {
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    CallEvent::Transcript {
                        speaker: Speaker::Agent,
                        ..
                    }
                )
            })
            .count()
    }

    fn finals(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Transcript {
                    speaker: Speaker::Caller,
                    text,
                    is_final: true,
                    ..
                } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    fn turns(&self) -> Vec<TurnMetrics> {
        self.events
            .iter()
            .filter_map(|e| match e {
                CallEvent::Turn { metrics, .. } => Some(metrics.clone()),
                _ => None,
            })
            .collect()
    }

    fn loud_frames_between(&self, from: MediaTime, to: MediaTime) -> usize {
        self.out
            .iter()
            .filter(|(t, r)| *t >= from && *t < to && *r > 500.0)
            .count()
    }

    fn hang_up(&mut self) -> vocelio_pipelines::brain::Conversation {
        self.tp.hang_up(HangupReason::Remote, self.t);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.events.iter().find_map(|e| match e {
                CallEvent::Ended { conversation, .. } => Some(conversation.clone()),
                _ => None,
            }) {
                return c;
            }
            assert!(Instant::now() < deadline, "no Ended event");
            self.pull_events(Duration::from_millis(5));
        }
    }
}

fn brain() -> ScriptedBrain {
    ScriptedBrain::new("Okay, thank you.")
        .with_greeting("Hello, thanks for calling.")
        .on("appointment|tuesday", "Sure, I can book that. Which time suits you?")
        .on("number|phone|account", "Thanks, I have noted your number.")
        .on("sorry|wait|ask", "Of course, go ahead.")
        .on("yes|works", "Great, see you then.")
        .on_dtmf("You pressed {digits}. Let me tell you about our opening hours. We are open from nine in the morning until six in the evening on weekdays. On Saturdays we open at ten and close at four. We are closed on Sundays and public holidays.")
}

#[test]
fn spoken_questions_get_spoken_answers() {
    let mut rt = runtime().lock().unwrap_or_else(|e| e.into_inner());
    let events = rt.events().clone();
    let mut w = Wire::new(&mut rt, &events, brain(), "answers");
    // The greeting plays on answer.
    assert!(
        w.silence_until(6000, |w| w.agent_turns() >= 1),
        "greeting never finished"
    );
    let greeting_audible = w.loud_frames_between(MediaTime::ZERO, w.t);
    assert!(
        greeting_audible > 20,
        "greeting: {greeting_audible} loud frames"
    );
    w.silence_ms(300);

    let clips: [(&str, &[&str]); 4] = [
        ("piper_booking", &["appointment", "tuesday"]),
        ("piper_numbers", &["phone number", "555"]),
        ("piper_yes", &["yes", "works for me"]),
        ("espeak_no", &["no", "think so"]),
    ];
    let mut report = Vec::new();
    for (i, (clip, words)) in clips.iter().enumerate() {
        let pcm = fixture_8k(clip);
        let start = w.t;
        w.play(&pcm);
        let agent_before = w.agent_turns();
        assert!(
            w.silence_until(12_000, |w| w.agent_turns() > agent_before),
            "{clip}: no reply (finals {:?})",
            w.finals()
        );
        let finals = w.finals();
        let heard = normalise(finals.get(i).map(String::as_str).unwrap_or(""));
        let heard_digits = heard.replace(' ', "");
        for word in words.iter() {
            let ok = heard.contains(word) || heard_digits.contains(&word.replace(' ', ""));
            assert!(ok, "{clip}: {word:?} not in {heard:?}");
        }
        let audible = w.loud_frames_between(start.plus_frames((pcm.len() / SPF) as u64), w.t);
        assert!(audible > 15, "{clip}: reply had {audible} loud frames");
        let m = w.turns().last().cloned().expect("turn metrics");
        let v2v = m.voice_to_voice_ms.expect("voice to voice");
        assert!(v2v > m.endpoint_delay_ms, "{clip}: {m:?}");
        assert!(
            m.endpoint_delay_ms >= 300.0 && m.endpoint_delay_ms < 1500.0,
            "{m:?}"
        );
        assert!(
            m.stt_ms.is_some_and(|s| s > 1.0) && m.tts_first_audio_ms.is_some_and(|s| s > 1.0),
            "{m:?}"
        );
        assert!(
            m.speech_start < m.last_speech && m.last_speech <= m.end_of_turn,
            "{m:?}"
        );
        report.push(format!(
            "{clip:16} heard={heard:?} endpoint={:.0}ms stt={:.0}ms (whisper {:.0}) brain={:.1}ms tts_first={:.0}ms v2v={v2v:.0}ms",
            m.endpoint_delay_ms,
            m.stt_ms.unwrap_or(0.0),
            m.stt_compute_ms.unwrap_or(0.0),
            m.brain_first_sentence_ms.unwrap_or(0.0),
            m.tts_first_audio_ms.unwrap_or(0.0),
        ));
        w.silence_ms(300);
    }
    for line in &report {
        eprintln!("{line}");
    }
    let conv = w.hang_up();
    let speakers: Vec<Speaker> = conv.turns.iter().map(|t| t.speaker).collect();
    assert_eq!(speakers.len(), 1 + 2 * clips.len(), "{conv:?}");
    assert_eq!(speakers[0], Speaker::Agent);
    assert!(conv.turns.iter().all(|t| !t.interrupted), "{conv:?}");
    let prom = rt.metrics().prometheus();
    assert!(
        prom.contains("vocelio_voice_voice_to_voice_seconds_count"),
        "{prom}"
    );
}

#[test]
fn dtmf_is_a_turn_and_barge_in_stops_the_agent() {
    let mut rt = runtime().lock().unwrap_or_else(|e| e.into_inner());
    let events = rt.events().clone();
    let mut w = Wire::new(&mut rt, &events, brain(), "barge");
    assert!(w.silence_until(6000, |w| w.agent_turns() >= 1));
    // Keys 4, 2, # : one DTMF turn.
    for d in ['4', '2', '#'] {
        w.tp.event(PortEvent::Dtmf {
            digit: d,
            duration_ms: 100,
            at: w.t,
        });
        w.silence_ms(100);
    }
    assert!(
        w.finals().iter().any(|f| f == "DTMF 42"),
        "{:?}",
        w.finals()
    );
    // Let the long reply play for ~1.5 s, then talk over it.
    assert!(w.silence_until(6000, |w| !w.turns().is_empty()), "no reply");
    let first_out = w.turns()[0].first_audio_out.expect("reply on the wire");
    w.silence_until(5000, |w| w.t.micros_since(first_out) > 1_500_000);
    let pcm = fixture_8k("piper_interrupt");
    let talk_start = w.t;
    let true_onset =
        MediaTime::from_micros(talk_start.as_micros() - 20_000 + energy_onset_ms(&pcm) * 1000);
    w.play(&pcm);
    assert!(
        w.silence_until(8000, |w| w.agent_turns() >= 3),
        "no answer after the barge-in: {:?}",
        w.events
            .iter()
            .filter(|e| !matches!(e, CallEvent::Turn { .. }))
            .collect::<Vec<_>>()
    );

    let (onset, flushed_at, stop_ms, heard, said) = w
        .events
        .iter()
        .find_map(|e| match e {
            CallEvent::BargeIn {
                onset,
                flushed_at,
                stop_ms,
                heard,
                said,
                ..
            } => Some((*onset, *flushed_at, *stop_ms, heard.clone(), said.clone())),
            _ => None,
        })
        .expect("a barge-in");
    let since_true = flushed_at.micros_since(true_onset) / 1000;
    eprintln!(
        "barge-in: vad onset {onset}, true onset {true_onset}, flushed {flushed_at}: stop {stop_ms:.0} ms after VAD onset, {since_true} ms after the speech energy"
    );
    eprintln!("heard {heard:?}\nof    {said:?}");
    assert!(stop_ms <= 150.0, "stop {stop_ms} ms");
    assert!(since_true <= 150, "{since_true} ms after true onset");
    assert_eq!(w.flushes, vec![flushed_at]);
    // Nothing of that reply went out after the flush.
    let next_reply = w
        .turns()
        .get(1)
        .and_then(|m| m.first_audio_out)
        .expect("second reply");
    assert_eq!(w.loud_frames_between(flushed_at, next_reply), 0);
    // The context keeps only what was heard: a strict prefix of the reply.
    let (h, s) = (normalise(&heard), normalise(&said));
    assert!(
        !h.is_empty() && s.starts_with(&h) && h.len() < s.len(),
        "{h:?} / {s:?}"
    );
    let conv = w.hang_up();
    let agent: Vec<_> = conv
        .turns
        .iter()
        .filter(|t| t.speaker == Speaker::Agent)
        .collect();
    assert_eq!(agent[1].text, heard);
    assert!(agent[1].interrupted);
    assert_eq!(conv.turns[1].text, "DTMF 42");
    assert!(
        normalise(&conv.turns[3].text).contains("can i ask"),
        "{conv:?}"
    );
}
