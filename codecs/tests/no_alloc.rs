//! The per-frame paths allocate nothing once built: a counting global
//! allocator watches this thread while 10 000 frames go through each path.

use vocelio_codecs::g711::Law;
use vocelio_codecs::transcode::{Inbound, Outbound};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};
use vocelio_testkit::counted;

#[global_allocator]
static GLOBAL: vocelio_testkit::Counting = vocelio_testkit::Counting;

#[test]
fn frame_paths_allocate_nothing_after_warm_up() {
    // The counter itself works: a Vec allocation is seen.
    let (_, n) = counted(|| vec![0u8; 64]);
    assert!(n >= 1, "counting allocator sees nothing");

    let mut inbound = Inbound::new(Law::Mu, SampleRate::Hz16000).unwrap();
    let mut outbound = Outbound::new(SampleRate::Hz22050, Law::Mu).unwrap();
    let mut wide = AudioFrame::silent(SampleRate::Hz16000, MediaTime::ZERO);
    let mut tts = AudioFrame::silent(SampleRate::Hz22050, MediaTime::ZERO);
    for (i, s) in tts.samples_mut().iter_mut().enumerate() {
        *s = ((i * 37) % 2000) as i16 - 1000;
    }
    let mut payload = [0u8; 160];
    let wire: Vec<u8> = (0..160u32).map(|i| (i * 7) as u8).collect();
    // Warm up: first calls may size internal FFT scratch.
    for n in 0..10 {
        inbound
            .process(&wire, MediaTime::ZERO.plus_frames(n), &mut wide)
            .unwrap();
        outbound.process(&tts, &mut payload).unwrap();
    }

    let (_, allocs) = counted(|| {
        for n in 0..10_000u64 {
            inbound
                .process(&wire, MediaTime::ZERO.plus_frames(n), &mut wide)
                .unwrap();
        }
    });
    assert_eq!(
        allocs, 0,
        "mu-law in -> 16 kHz allocated {allocs} times in 10 000 frames"
    );

    let (_, allocs) = counted(|| {
        for _ in 0..10_000 {
            outbound.process(&tts, &mut payload).unwrap();
        }
    });
    assert_eq!(
        allocs, 0,
        "22.05 kHz -> mu-law allocated {allocs} times in 10 000 frames"
    );
    assert!(
        payload.iter().any(|&b| b != 0xFF),
        "outbound produced only silence"
    );
}
