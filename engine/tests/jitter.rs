//! The jitter buffer end to end through the public API: RTP sequence and
//! timestamp wrap via the unwrappers, and a counting global allocator proving
//! the per-packet and per-frame paths allocate nothing once built.

use std::time::{Duration, Instant};
use vocelio_testkit::counted;

use vocelio_codecs::g711::Law;
use vocelio_codecs::opus::{OpusEncoder, MAX_PACKET};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};
use vocelio_engine::rtp::decoder::{G711Decoder, OpusFrameDecoder};
use vocelio_engine::rtp::jitter::{Insert, JitterBuffer, JitterConfig, Pull};
use vocelio_engine::rtp::stats::{ReceiveStats, SeqUnwrapper, TsUnwrapper};

#[global_allocator]
static GLOBAL: vocelio_testkit::Counting = vocelio_testkit::Counting;

/// Tiny deterministic PRNG (xorshift64).
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn tone(n: usize, offset: usize) -> Vec<i16> {
    (0..n)
        .map(|i| {
            let t = (offset + i) as f64 / 8000.0;
            (7000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        })
        .collect()
}

#[test]
fn pulling_10_000_frames_allocates_nothing() {
    // The counter itself works: a Vec allocation is seen.
    let (_, n) = counted(|| vec![0u8; 64]);
    assert!(n >= 1, "counting allocator sees nothing");

    let mut jb = JitterBuffer::new(JitterConfig::default()).unwrap();
    let mut dec = G711Decoder::new(Law::Mu);
    let pcm = tone(160, 0);
    let mut wire = [0u8; 160];
    Law::Mu.encode(&pcm, &mut wire).unwrap();
    let t0 = Instant::now();
    let mut out = [0i16; 160];
    let mut rng = XorShift(7);
    let mut pending: Option<u64> = None;

    let mut step = |k: u64,
                    jb: &mut JitterBuffer,
                    dec: &mut G711Decoder,
                    out: &mut [i16],
                    pending: &mut Option<u64>| {
        let now = t0 + Duration::from_millis(k * 20);
        let r = rng.next() % 100;
        // 3 % lost, 5 % swapped with the next, 2 % duplicated.
        if r >= 3 {
            if r < 8 && pending.is_none() {
                *pending = Some(k);
            } else {
                jb.insert(now, k, k * 160, &wire);
                if let Some(p) = pending.take() {
                    jb.insert(now, p, p * 160, &wire);
                }
                if r >= 98 {
                    jb.insert(now, k, k * 160, &wire);
                }
            }
        }
        jb.pull(now, dec, out)
    };
    for k in 0..100 {
        step(k, &mut jb, &mut dec, &mut out, &mut pending);
    }
    let (_, allocs) = counted(|| {
        for k in 100..10_100 {
            step(k, &mut jb, &mut dec, &mut out, &mut pending);
        }
    });
    assert_eq!(
        allocs, 0,
        "G.711 path allocated {allocs} times in 10 000 frames"
    );
    let st = jb.stats();
    assert!(st.concealed_samples > 0 && st.duplicates > 0, "{st:?}");

    // Opus at 48 kHz, concealment included.
    let mut jb = JitterBuffer::new(JitterConfig::new(48_000)).unwrap();
    let mut dec = OpusFrameDecoder::new().unwrap();
    let mut enc = OpusEncoder::new(SampleRate::Hz48000).unwrap();
    let mut frame = AudioFrame::silent(SampleRate::Hz48000, MediaTime::ZERO);
    for (i, s) in frame.samples_mut().iter_mut().enumerate() {
        *s = ((i * 37) % 2000) as i16 - 1000;
    }
    let mut packet = [0u8; MAX_PACKET];
    let len = enc.encode(&frame, &mut packet).unwrap();
    let packet = &packet[..len];
    let mut out = [0i16; 960];
    let mut run = |from: u64, to: u64, jb: &mut JitterBuffer, dec: &mut OpusFrameDecoder| {
        for k in from..to {
            let now = t0 + Duration::from_millis(k * 20);
            if k % 17 != 5 {
                jb.insert(now, k, k * 960, packet);
            }
            jb.pull(now, dec, &mut out);
        }
    };
    run(0, 100, &mut jb, &mut dec);
    let (_, allocs) = counted(|| run(100, 10_100, &mut jb, &mut dec));
    assert_eq!(
        allocs, 0,
        "Opus path allocated {allocs} times in 10 000 frames"
    );
    assert!(jb.stats().concealed_samples > 0);
}

#[test]
fn sequence_and_timestamp_wrap_through_the_unwrappers() {
    // Both counters wrap a few packets in; one pair is reordered across the wrap.
    let seq0: u16 = 65_530;
    let ts0: u32 = u32::MAX - 160 * 4 + 1;
    let packets = 60usize;
    let pcm = tone(packets * 160, 0);
    let mut wire = vec![0u8; pcm.len()];
    Law::A.encode(&pcm, &mut wire).unwrap();
    let mut reference = vec![0i16; pcm.len()];
    Law::A.decode(&wire, &mut reference).unwrap();

    let mut order: Vec<usize> = (0..packets).collect();
    order.swap(5, 6); // seq 65535 and 0 swapped
    order.swap(3, 4); // timestamps either side of the u32 wrap swapped

    let mut seqs = SeqUnwrapper::new();
    let mut tss = TsUnwrapper::new();
    let mut rx = ReceiveStats::new(8000);
    let cfg = JitterConfig {
        min_delay_ms: 40,
        ..JitterConfig::default()
    };
    let mut jb = JitterBuffer::new(cfg).unwrap();
    let mut dec = G711Decoder::new(Law::A);
    let t0 = Instant::now();
    let mut out = [0i16; 160];
    let mut played = Vec::new();
    for (tick, &k) in order.iter().enumerate() {
        let now = t0 + Duration::from_millis(tick as u64 * 20);
        let seq = seq0.wrapping_add(k as u16);
        let ts = ts0.wrapping_add(k as u32 * 160);
        rx.on_packet(now, seq, ts);
        let payload = &wire[k * 160..(k + 1) * 160];
        let r = jb.insert(now, seqs.unwrap(seq), tss.unwrap(ts), payload);
        assert_eq!(r, Insert::Queued, "packet {k}");
        match jb.pull(now, &mut dec, &mut out) {
            Pull::Audio => played.extend_from_slice(&out),
            Pull::Buffering => assert!(played.is_empty()),
            other => panic!("tick {tick}: {other:?}"),
        }
    }
    assert!(played.len() >= (packets - 3) * 160);
    assert_eq!(played, reference[..played.len()]);
    let report = rx.report();
    assert_eq!(report.cumulative_lost, 0);
    assert_eq!(
        report.extended_highest_seq,
        (1 << 16) + u32::from(seq0.wrapping_add(59))
    );
}
