//! The per-frame paths allocate nothing once built: a counting global
//! allocator watches this thread while 10 000 frames go through each path.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use vocelio_codecs::g711::Law;
use vocelio_codecs::transcode::{Inbound, Outbound};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn bump() {
    // try_with: the thread-locals may be gone while a thread shuts down.
    let _ = COUNTING.try_with(|c| {
        if c.get() {
            let _ = COUNT.try_with(|n| n.set(n.get() + 1));
        }
    });
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<R>(f: impl FnOnce() -> R) -> (R, usize) {
    COUNT.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, COUNT.with(Cell::get))
}

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
