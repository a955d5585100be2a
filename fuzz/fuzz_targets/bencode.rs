//! rtpengine's ng replies: `bench rtpengine`'s bencode decoder on arbitrary
//! bytes. Nothing may panic; whatever decodes re-encodes to bytes that
//! decode to the same value (dictionaries come out sorted, so the bytes
//! themselves may differ).

#![no_main]

use libfuzzer_sys::fuzz_target;

// The decoder lives in the binary crate; it is self-contained, so the
// target compiles the same file.
#[path = "../../src/bench_rtpengine/bencode.rs"]
#[allow(dead_code)]
mod bencode;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = bencode::decode(data) {
        let mut out = Vec::new();
        v.encode(&mut out);
        assert_eq!(bencode::decode(&out).as_ref(), Ok(&v), "re-encoded: {out:?}");
    }
});
