//! RTP parse and write of one 20 ms G.711 packet (172 bytes): ours
//! (zero-copy, into the caller's buffer) against webrtc-rs' `rtp` 0.17
//! (`Packet::unmarshal` / `marshal_to` / `marshal`).
//! `cargo bench -p vocelio-engine --bench rtp`.
//!
//! Before criterion runs, a counting global allocator measures allocations
//! per packet for each operation over 10 000 packets and prints them: the
//! issue takes the `rtp` crate only if it allocates nothing per packet.

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use std::hint::black_box;
use vocelio_engine::rtp::{write_packet, PayloadType, RtpHeader, RtpPacket, Ssrc};
use webrtc_util::marshal::{Marshal, Unmarshal};

#[global_allocator]
static GLOBAL: vocelio_testkit::Counting = vocelio_testkit::Counting;

/// Allocations per call of `op`, over `n` calls.
fn allocs_per_call(n: usize, op: &mut dyn FnMut()) -> f64 {
    op(); // warm-up (lazy init, first Bytes promotion)
    let ((), count) = vocelio_testkit::counted(|| {
        for _ in 0..n {
            op();
        }
    });
    count as f64 / n as f64
}

const HEADER: RtpHeader = RtpHeader {
    marker: false,
    payload_type: PayloadType::PCMU,
    sequence: 4242,
    timestamp: 679_360,
    ssrc: Ssrc(0x5EED_CAFE),
};

/// One PCMU packet: 12-byte header + 160 bytes of mu-law.
fn g711_packet() -> [u8; 172] {
    let mut payload = [0u8; 160];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = (i * 37) as u8;
    }
    let mut pkt = [0u8; 172];
    let n = write_packet(&HEADER, &payload, &mut pkt).expect("fits");
    assert_eq!(n, 172);
    pkt
}

type Op = Box<dyn FnMut()>;

fn ops(pkt: [u8; 172]) -> Vec<(&'static str, Op)> {
    let shared = Bytes::copy_from_slice(&pkt);
    let theirs = rtp::packet::Packet::unmarshal(&mut &pkt[..]).expect("webrtc-rs parses it");
    assert_eq!(theirs.payload.len(), 160);
    let theirs2 = theirs.clone();
    let payload = pkt[12..].to_vec();
    let mut out = [0u8; 1500];
    let mut out2 = [0u8; 1500];
    vec![
        (
            "ours/parse",
            Box::new(move || {
                let p = RtpPacket::parse(black_box(&pkt[..])).expect("parses");
                black_box(p.payload.len());
            }) as Op,
        ),
        (
            "ours/write",
            Box::new(move || {
                let n =
                    write_packet(black_box(&HEADER), black_box(&payload), &mut out).expect("fits");
                black_box(&out[..n]);
            }),
        ),
        (
            // From the socket's receive buffer: `&[u8]` is a `bytes::Buf`.
            "webrtc-rs/unmarshal(&[u8])",
            Box::new(move || {
                let p = rtp::packet::Packet::unmarshal(&mut black_box(&pkt[..])).expect("parses");
                black_box(p.payload.len());
            }),
        ),
        (
            // From an already shared `Bytes` (the copy paid elsewhere).
            "webrtc-rs/unmarshal(Bytes)",
            Box::new(move || {
                let mut b = black_box(&shared).clone();
                let p = rtp::packet::Packet::unmarshal(&mut b).expect("parses");
                black_box(p.payload.len());
            }),
        ),
        (
            "webrtc-rs/marshal_to",
            Box::new(move || {
                let n = black_box(&theirs).marshal_to(&mut out2).expect("fits");
                black_box(&out2[..n]);
            }),
        ),
        (
            "webrtc-rs/marshal",
            Box::new(move || {
                let b = black_box(&theirs2).marshal().expect("marshals");
                black_box(b.len());
            }),
        ),
    ]
}

fn main() {
    let pkt = g711_packet();
    println!("allocations per 172-byte G.711 packet (10 000 packets):");
    for (name, mut op) in ops(pkt) {
        println!("  {name:<28} {:>5.2}", allocs_per_call(10_000, &mut op));
    }
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("rtp");
        group.throughput(Throughput::Elements(1));
        for (name, mut op) in ops(pkt) {
            group.bench_function(name, |b| b.iter(&mut op));
        }
        group.finish();
    }
    c.final_summary();
}
