//! Test support shared by Vocelio's crates (dev-dependency only).
//!
//! [`Counting`] is a global allocator that forwards to the system allocator
//! and counts allocations made by the current thread while [`counted`] runs,
//! so a test can prove a hot path allocates nothing:
//!
//! ```ignore
//! #[global_allocator]
//! static GLOBAL: vocelio_testkit::Counting = vocelio_testkit::Counting;
//!
//! let (_, allocations) = vocelio_testkit::counted(|| frame_path(&mut buf));
//! assert_eq!(allocations, 0);
//! ```
// The allocator must implement the unsafe `GlobalAlloc` trait; it only forwards.
#![allow(unsafe_code)]

pub mod sipp;

/// Runs the `vocelio` binary under test (`bin`, from
/// `env!("CARGO_BIN_EXE_vocelio")`) with `args` and `--json FILE`, asserts
/// that it succeeded, and returns the JSON it wrote and what it printed.
pub fn run_bench(bin: &str, args: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let json = dir.path().join("results.json");
    let out = std::process::Command::new(bin)
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("running the binary");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{args:?}:\n{stdout}\n{stderr}");
    let text = std::fs::read_to_string(&json).expect("the JSON results");
    (
        serde_json::from_str(&text).expect("valid JSON results"),
        stdout,
    )
}

/// A free TCP port on 127.0.0.1 (the OS picks it; the test binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port on 127.0.0.1")
}

/// A free UDP port on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free UDP port on 127.0.0.1")
}

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts this thread's allocations while [`counted`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counting;

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

/// Run `f` and return its result with the number of allocations (alloc,
/// alloc_zeroed, realloc) this thread made meanwhile. Only meaningful when
/// [`Counting`] is the binary's `#[global_allocator]`.
pub fn counted<R>(f: impl FnOnce() -> R) -> (R, usize) {
    COUNT.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    let r = f();
    COUNTING.with(|c| c.set(false));
    (r, COUNT.with(Cell::get))
}
