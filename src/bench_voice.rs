//! `vocelio bench voice`: single-call latency of the voice pipeline over the
//! fixture utterances, on the media clock, with the real local models.
//!
//! Each fixture is one call on a local media port driven by a transport
//! that behaves like the RTP session: one inbound frame per real 20 ms tick,
//! control (flush) applied before the tick's playout, marks reported when
//! the frame after them goes out. The caller says the fixture, waits for
//! the answer, then talks over it (the `interrupt` fixture) to measure
//! barge-in. No network: this isolates the pipeline from jitter buffers.

use crate::bench::quantile;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vocelio_codecs::g711::Law;
use vocelio_codecs::port::{local_pair, PortControl};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};
use vocelio_pipelines::brain::ScriptedBrain;
use vocelio_pipelines::call::CallEvent;
use vocelio_pipelines::models::ModelDir;
use vocelio_pipelines::runner::{AgentConfig, RuntimeConfig, VoiceRuntime};
use vocelio_pipelines::stt::WhisperModel;

/// Arguments of `vocelio bench voice`.
#[derive(Debug, clap::Args)]
pub struct VoiceArgs {
    /// Fixture ids (default: every clip in fixtures/audio/manifest.json but the interruption).
    #[arg(long, value_delimiter = ',')]
    pub fixtures: Vec<String>,
    /// Silence (ms) after which an utterance is transcribed.
    #[arg(long)]
    pub pause_ms: Option<u32>,
    /// Use whisper's q8_0 weights.
    #[arg(long)]
    pub q8: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The fixtures folder.
    #[arg(long, default_value = "fixtures/audio")]
    pub dir: PathBuf,
}

const REPLY: &str = "Sure. I have booked the appointment for Friday morning at nine thirty, and you will get a text message with all the details in a moment.";

#[derive(Debug, Serialize, Default, Clone)]
struct Row {
    fixture: String,
    transcript: String,
    endpoint_delay_ms: f64,
    stt_ms: f64,
    brain_first_sentence_ms: f64,
    tts_first_audio_ms: f64,
    voice_to_voice_ms: f64,
    barge_in_stop_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Summary {
    machine: String,
    whisper: String,
    pause_ms: u32,
    rows: Vec<Row>,
    voice_to_voice_p50_ms: f64,
    voice_to_voice_p95_ms: f64,
    endpoint_delay_p50_ms: f64,
    stt_p50_ms: f64,
    tts_first_audio_p50_ms: f64,
    barge_in_stop_p50_ms: f64,
    barge_in_stop_p95_ms: f64,
}

fn ulaw_pcm(dir: &std::path::Path, id: &str) -> Result<Vec<i16>> {
    let p = dir.join(format!("{id}.8k.ulaw"));
    let b = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
    let mut pcm = vec![0i16; b.len()];
    Law::Mu.decode(&b, &mut pcm)?;
    Ok(pcm)
}

/// Run one call: the question, then an interruption once the answer plays.
fn one_call(
    rt: &mut VoiceRuntime,
    fixture: &str,
    question: &[i16],
    interrupt: &[i16],
    endpointing: vocelio_pipelines::endpointing::EndpointConfig,
) -> Result<Row> {
    let (port, tp) = local_pair(fixture, SampleRate::Hz8000);
    let brain = ScriptedBrain::new(REPLY).on_dtmf("You pressed {digits}.");
    let mut agent = AgentConfig::new("bench", Box::new(brain));
    agent.endpointing = endpointing;
    rt.add_call(port, agent)?;
    // The caller's side: 0.5 s silence, the question, silence; the interruption
    // 600 ms after the agent's answer starts.
    let lead = 25usize;
    let mut script: Vec<i16> = vec![0; lead * 160];
    script.extend_from_slice(question);
    let question_frames = script.len().div_ceil(160);
    let start = Instant::now();
    let mut answer_at: Option<usize> = None;
    let mut interrupt_from: Option<usize> = None;
    let limit = question_frames + 500;
    let mut frame = AudioFrame::silent(SampleRate::Hz8000, MediaTime::ZERO);
    for t in 0..limit {
        let due = start + Duration::from_millis(20 * t as u64);
        let wait = due.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let at = MediaTime::ZERO.plus_frames(t as u64);
        while let Some(c) = tp.poll_control() {
            if c == PortControl::Flush {
                tp.flush(at);
            }
        }
        frame.set_time(at);
        let s = frame.samples_mut();
        s.fill(0);
        let src: Option<&[i16]> = if t < question_frames {
            script.get(t * 160..((t + 1) * 160).min(script.len()))
        } else {
            interrupt_from.and_then(|f| {
                interrupt.get((t - f) * 160..((t - f + 1) * 160).min(interrupt.len()))
            })
        };
        if let Some(src) = src {
            s[..src.len()].copy_from_slice(src);
        }
        tp.deliver(frame.clone());
        let played = tp.next_playout_into(at, &mut frame);
        if played && answer_at.is_none() && t >= question_frames {
            answer_at = Some(t);
            interrupt_from = Some(t + 30);
        }
        if let Some(f) = interrupt_from {
            if t > f + interrupt.len() / 160 + 50 {
                break;
            }
        }
    }
    drop(tp);
    // Collect this call's events until it ends.
    let mut row = Row {
        fixture: fixture.into(),
        ..Row::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got_turn = false;
    while let Ok(ev) = rt
        .events()
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        match ev {
            CallEvent::Transcript {
                call_id,
                speaker: vocelio_pipelines::brain::Speaker::Caller,
                text,
                is_final: true,
                ..
            } if call_id == fixture && row.transcript.is_empty() => row.transcript = text,
            CallEvent::Turn { call_id, metrics } if call_id == fixture && !got_turn => {
                if let Some(v) = metrics.voice_to_voice_ms {
                    got_turn = true;
                    row.voice_to_voice_ms = v;
                    row.endpoint_delay_ms = metrics.endpoint_delay_ms;
                    row.stt_ms = metrics.stt_ms.unwrap_or(f64::NAN);
                    row.brain_first_sentence_ms =
                        metrics.brain_first_sentence_ms.unwrap_or(f64::NAN);
                    row.tts_first_audio_ms = metrics.tts_first_audio_ms.unwrap_or(f64::NAN);
                }
            }
            CallEvent::BargeIn {
                call_id, stop_ms, ..
            } if call_id == fixture => {
                row.barge_in_stop_ms.get_or_insert(stop_ms);
            }
            CallEvent::Ended { call_id, .. } if call_id == fixture => break,
            _ => {}
        }
    }
    if !got_turn {
        bail!(
            "{fixture}: no answered turn (transcript {:?})",
            row.transcript
        );
    }
    Ok(row)
}

/// Run the benchmark and print its table.
pub fn voice(args: VoiceArgs, models: &ModelDir) -> Result<()> {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(args.dir.join("manifest.json"))
            .with_context(|| format!("reading {}/manifest.json", args.dir.display()))?,
    )?;
    let mut ids: Vec<String> = manifest["clips"]
        .as_array()
        .context("manifest.json has no clips")?
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .filter(|id| !id.contains("interrupt") && !id.contains("two_utterances"))
        .collect();
    if !args.fixtures.is_empty() {
        ids.retain(|id| args.fixtures.contains(id));
    }
    let mut cfg = RuntimeConfig::default();
    if args.q8 {
        cfg.whisper = WhisperModel::TinyEnQ8;
    }
    let mut rt = VoiceRuntime::start(models, cfg)?;
    let mut endpointing = vocelio_pipelines::endpointing::EndpointConfig::default();
    if let Some(p) = args.pause_ms {
        endpointing.pause_ms = p;
    }
    let interrupt = ulaw_pcm(&args.dir, "piper_interrupt")?;
    let mut rows = Vec::new();
    for id in &ids {
        let q = ulaw_pcm(&args.dir, id)?;
        match one_call(&mut rt, id, &q, &interrupt, endpointing) {
            Ok(r) => {
                eprintln!("{id}: voice-to-voice {:.0} ms", r.voice_to_voice_ms);
                rows.push(r);
            }
            Err(e) => eprintln!("{e:#}"),
        }
    }
    let col = |f: fn(&Row) -> f64| {
        rows.iter()
            .map(f)
            .filter(|v| v.is_finite())
            .collect::<Vec<_>>()
    };
    let v2v = col(|r| r.voice_to_voice_ms);
    let barge = col(|r| r.barge_in_stop_ms.unwrap_or(f64::NAN));
    let s = Summary {
        machine: crate::bench::machine(),
        whisper: if args.q8 {
            "tiny.en q8_0"
        } else {
            "tiny.en f16"
        }
        .into(),
        pause_ms: endpointing.pause_ms,
        voice_to_voice_p50_ms: quantile(&v2v, 0.5),
        voice_to_voice_p95_ms: quantile(&v2v, 0.95),
        endpoint_delay_p50_ms: quantile(&col(|r| r.endpoint_delay_ms), 0.5),
        stt_p50_ms: quantile(&col(|r| r.stt_ms), 0.5),
        tts_first_audio_p50_ms: quantile(&col(|r| r.tts_first_audio_ms), 0.5),
        barge_in_stop_p50_ms: quantile(&barge, 0.5),
        barge_in_stop_p95_ms: quantile(&barge, 0.95),
        rows,
    };
    println!(
        "\nVoice pipeline, one call at a time ({}; {}, pause {} ms)\n",
        s.machine, s.whisper, s.pause_ms
    );
    println!("| fixture | transcript | endpoint delay | STT | brain 1st sentence | TTS 1st audio | voice-to-voice | barge-in stop |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in &s.rows {
        println!(
            "| {} | {} | {:.0} ms | {:.0} ms | {:.1} ms | {:.0} ms | {:.0} ms | {} |",
            r.fixture,
            r.transcript,
            r.endpoint_delay_ms,
            r.stt_ms,
            r.brain_first_sentence_ms,
            r.tts_first_audio_ms,
            r.voice_to_voice_ms,
            r.barge_in_stop_ms
                .map_or("-".into(), |v| format!("{v:.0} ms"))
        );
    }
    println!(
        "\nvoice-to-voice p50 {:.0} ms, p95 {:.0} ms; endpoint delay p50 {:.0} ms; STT p50 {:.0} ms; TTS first audio p50 {:.0} ms; barge-in stop p50 {:.0} ms, p95 {:.0} ms",
        s.voice_to_voice_p50_ms,
        s.voice_to_voice_p95_ms,
        s.endpoint_delay_p50_ms,
        s.stt_p50_ms,
        s.tts_first_audio_p50_ms,
        s.barge_in_stop_p50_ms,
        s.barge_in_stop_p95_ms
    );
    if let Some(p) = &args.json {
        std::fs::write(p, serde_json::to_string_pretty(&s)?)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if s.rows.len() < ids.len() {
        bail!(
            "{} of {} fixtures got no answer",
            ids.len() - s.rows.len(),
            ids.len()
        );
    }
    Ok(())
}
