//! Per-frame costs of the codecs (criterion), then a p50/p99 table over
//! individually timed frames. `cargo bench --bench codecs`.
//!
//! Under `cargo test --benches` each benchmark runs once and the table uses a
//! few hundred frames, so the bench keeps compiling and running in CI.

mod common;

use criterion::Criterion;
use std::hint::black_box;
use vocelio_codecs::g711::Law;
use vocelio_codecs::opus::{OpusDecoder, OpusEncoder, MAX_PACKET};
use vocelio_codecs::resample::{FrameResampler, ENGINE_PAIRS};
use vocelio_codecs::transcode::{Inbound, Outbound};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};

/// A speech-like frame: two tones and a little noise.
fn frame(rate: SampleRate, n: u64) -> AudioFrame {
    let mut f = AudioFrame::silent(rate, MediaTime::ZERO.plus_frames(n));
    let sr = f64::from(rate.hz());
    let len = f.len() as u64;
    let mut x = 0x1234_5678u32 ^ n as u32;
    for (i, s) in f.samples_mut().iter_mut().enumerate() {
        let t = (n * len + i as u64) as f64 / sr;
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let v = 6000.0 * (2.0 * std::f64::consts::PI * 220.0 * t).sin()
            + 3000.0 * (2.0 * std::f64::consts::PI * 1250.0 * t).sin()
            + f64::from((x >> 16) as i16) / 64.0;
        *s = v as i16;
    }
    f
}

use common::Op;

fn ops() -> Vec<(String, Op)> {
    let mut v: Vec<(String, Op)> = Vec::new();
    for law in [Law::Mu, Law::A] {
        let f = frame(SampleRate::Hz8000, 3);
        let mut out = [0u8; 160];
        v.push((
            format!("g711 {law:?}-law encode"),
            Box::new(move || law.encode(black_box(f.samples()), &mut out).unwrap()),
        ));
        let mut payload = [0u8; 160];
        law.encode(frame(SampleRate::Hz8000, 3).samples(), &mut payload)
            .unwrap();
        let mut pcm = [0i16; 160];
        v.push((
            format!("g711 {law:?}-law decode"),
            Box::new(move || law.decode(black_box(&payload), &mut pcm).unwrap()),
        ));
    }
    for rate in [SampleRate::Hz16000, SampleRate::Hz48000] {
        let mut enc = OpusEncoder::new(rate).unwrap();
        let frames: Vec<AudioFrame> = (0..50).map(|n| frame(rate, n)).collect();
        let mut packet = [0u8; MAX_PACKET];
        let mut i = 0;
        v.push((
            format!("opus encode {rate}"),
            Box::new(move || {
                enc.encode(&frames[i % 50], &mut packet).unwrap();
                i += 1;
            }),
        ));
        let mut enc = OpusEncoder::new(rate).unwrap();
        let packets: Vec<Vec<u8>> = (0..50)
            .map(|n| {
                let mut p = [0u8; MAX_PACKET];
                let len = enc.encode(&frame(rate, n), &mut p).unwrap();
                p[..len].to_vec()
            })
            .collect();
        let mut dec = OpusDecoder::new(rate).unwrap();
        let mut out = AudioFrame::silent(rate, MediaTime::ZERO);
        let mut i = 0;
        v.push((
            format!("opus decode {rate}"),
            Box::new(move || {
                dec.decode(Some(&packets[i % 50]), &mut out).unwrap();
                i += 1;
            }),
        ));
    }
    for (from, to) in ENGINE_PAIRS {
        let mut r = FrameResampler::new(from, to).unwrap();
        let input = frame(from, 1);
        let mut out = AudioFrame::silent(to, MediaTime::ZERO);
        v.push((
            format!(
                "resample {}k -> {}k",
                from.hz() as f64 / 1000.0,
                to.hz() as f64 / 1000.0
            ),
            Box::new(move || r.process(black_box(&input), &mut out).unwrap()),
        ));
    }
    let mut inbound = Inbound::new(Law::Mu, SampleRate::Hz16000).unwrap();
    let mut wire = [0u8; 160];
    Law::Mu
        .encode(frame(SampleRate::Hz8000, 5).samples(), &mut wire)
        .unwrap();
    let mut wide = AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO);
    v.push((
        "path: mu-law in -> 16 kHz PCM".into(),
        Box::new(move || {
            inbound
                .process(black_box(&wire), MediaTime::ZERO, &mut wide)
                .unwrap()
        }),
    ));
    let mut outbound = Outbound::new(SampleRate::Hz22050, Law::Mu).unwrap();
    let tts = frame(SampleRate::Hz22050, 5);
    let mut payload = [0u8; 160];
    v.push((
        "path: 22.05 kHz TTS -> mu-law".into(),
        Box::new(move || outbound.process(black_box(&tts), &mut payload).unwrap()),
    ));
    // Baseline in the same run: copying one 16 kHz frame (what any path costs at least).
    let src = frame(SampleRate::Hz16000, 1);
    let mut dst = AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO);
    v.push((
        "baseline: copy a 16 kHz frame".into(),
        Box::new(move || dst.copy_from(black_box(src.samples())).unwrap()),
    ));
    v
}

fn percentile_table(samples: usize) {
    println!("\nPer 20 ms frame, {samples} frames timed one by one (after 1000 warm-up):\n");
    println!("| operation | p50 (ns) | p99 (ns) | p50 share of a 20 ms frame |");
    println!("|---|---:|---:|---:|");
    for (name, mut op) in ops() {
        let (p50, p99) = common::percentiles(&mut op, samples);
        println!(
            "| {name} | {p50} | {p99} | {:.4}% |",
            p50 as f64 / 20e6 * 100.0
        );
    }
}

fn main() {
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("per_frame");
        for (name, mut op) in ops() {
            group.bench_function(name, |b| b.iter(&mut op));
        }
        group.finish();
    }
    c.final_summary();
    percentile_table(if bench_mode { 20_000 } else { 200 });
}
