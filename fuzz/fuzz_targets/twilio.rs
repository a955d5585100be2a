//! Twilio Media Streams input: `message::decode` on arbitrary (lossy UTF-8)
//! text, then a `TwilioStream` with a live media port driven by the same
//! bytes. Nothing may panic, every frame the stream sends is valid JSON
//! with an `event`, and a closed stream takes no more input.
//!
//! Input: the first byte holds flags (bit 0: open with a valid `connected`
//! + `start`; bit 1: the pipeline drops its port right after `start`). The
//! rest is split at `\n`; a line starting with 0x01 is a binary frame, 0x02
//! advances the clock by the next byte in ms and runs the timers, 0x03
//! queues a mark on the pipeline side; anything else is a text frame.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use vocelio_engine::twilio::message::{decode, Inbound, MAX_PAYLOAD};
use vocelio_engine::twilio::stream::{Outgoing, StreamConfig, StreamEvent, TwilioStream};

const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC1","streamSid":"MZ1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"agent":"fuzz"}},"streamSid":"MZ1"}"#;

fn drain(stream: &mut TwilioStream) {
    while let Some(out) = stream.poll_output() {
        if let Outgoing::Text(text) = out {
            // Outbound events (media, mark, clear) are ours to write: a JSON
            // object opening with its event name.
            assert!(
                text.starts_with(r#"{"event":""#) && text.ends_with('}'),
                "sent a malformed frame: {text}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let t0 = Instant::now();
    let mut now = t0;
    let mut stream = TwilioStream::new(StreamConfig::default());
    let mut port = None;
    let mut payload = vec![0u8; MAX_PAYLOAD];
    if flags & 1 != 0 {
        let _ = stream.handle_text(now, r#"{"event":"connected"}"#);
        let _ = stream.handle_text(now, START);
    }
    for line in rest.split(|&b| b == b'\n') {
        while let Some(ev) = stream.poll_event() {
            if let StreamEvent::Started { port: p, .. } = ev {
                if flags & 2 == 0 {
                    port = Some(p);
                }
            }
        }
        match line.split_first() {
            Some((1, bin)) => {
                let _ = stream.handle_binary(now, bin);
            }
            Some((2, ms)) => {
                now += Duration::from_millis(u64::from(ms.first().copied().unwrap_or(20)));
                stream.handle_timeout(now);
            }
            Some((3, id)) => {
                if let Some(p) = &port {
                    let _ = p.send_mark(u64::from(id.first().copied().unwrap_or(0)));
                }
            }
            _ => {
                let text = String::from_utf8_lossy(line);
                if let Ok(Inbound::Media(m)) = decode(&text) {
                    let _ = m.decode_payload(&mut payload);
                }
                let closed = stream.is_closed();
                let r = stream.handle_text(now, &text);
                if closed {
                    assert!(r.is_err(), "a closed stream took input");
                }
            }
        }
        if let Some(p) = &port {
            while p.audio.try_recv().is_ok() {}
            while p.events.try_recv().is_ok() {}
        }
        drain(&mut stream);
    }
    stream.handle_socket_closed(now);
    drain(&mut stream);
});
