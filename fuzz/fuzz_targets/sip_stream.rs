//! A TCP stream: the first byte picks a split point, the rest is fed to a
//! `StreamFramer` in two pushes. What comes out must not depend on where the
//! stream was split (compared with a single push), the framer must terminate,
//! and every message it returns must survive a canonical round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vocelio_engine::sip::{parse_datagram, FramingError, SipMessage, StreamFramer};

type Out = Vec<Result<SipMessage, FramingError>>;

fn drain(f: &mut StreamFramer, out: &mut Out, budget: usize) {
    // Each poll that returns Some consumes at least one byte or fails the
    // framer, so more polls than bytes means a loop.
    for _ in 0..=budget {
        match f.poll() {
            Some(r) => out.push(r),
            None => return,
        }
    }
    panic!("StreamFramer::poll did not return None within {budget} polls");
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let at = stream.len() * usize::from(first) / 255;
    let (a, b) = stream.split_at(at);
    let budget = stream.len() + 2;

    let mut split = StreamFramer::new();
    let mut split_out = Out::new();
    split.push(a);
    drain(&mut split, &mut split_out, budget);
    split.push(b);
    drain(&mut split, &mut split_out, budget);

    let mut whole = StreamFramer::new();
    let mut whole_out = Out::new();
    whole.push(stream);
    drain(&mut whole, &mut whole_out, budget);

    assert_eq!(split_out, whole_out, "output depends on the split at {at}");
    assert_eq!(split.buffered(), whole.buffered());
    assert_eq!(split.is_failed(), whole.is_failed());

    for msg in whole_out.into_iter().flatten() {
        let bytes = msg.to_bytes();
        let again = parse_datagram(&bytes).unwrap_or_else(|e| {
            panic!(
                "framed message's canonical form does not re-parse: {e}\n{}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(again, msg);
    }
});
