//! A short run of the simulated-caller harness (`vocelio bench calls`), so it
//! keeps working: one real call over SIP/RTP and one over a Twilio Media
//! Streams WebSocket against `vocelio serve` with the real models, each with
//! two spoken turns and one interruption, timed on the wire.

use std::sync::Mutex;
use vocelio_testkit::run_bench;

/// One run at a time: each starts an engine that loads every model.
static SERIAL: Mutex<()> = Mutex::new(());

fn short_run(transport: &str) -> (serde_json::Value, String) {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (r, stdout) = run_bench(
        env!("CARGO_BIN_EXE_vocelio"),
        &[
            "bench",
            "calls",
            "--calls",
            "1",
            "--turns",
            "2",
            "--interrupt-every",
            "2",
            "--fixtures",
            "piper_booking,piper_yes",
            "--transport",
            transport,
        ],
    );
    (r, stdout)
}

fn check(r: &serde_json::Value, stdout: &str) {
    let step = &r["steps"][0];
    assert_eq!(step["calls"], 1, "{r}");
    assert_eq!(step["calls_completed"], 1, "{r}");
    assert_eq!(step["greeted"], 1, "{r}");
    assert_eq!(step["replies_timed_out"], 0, "{r}");
    // Two questions and the interruption of the second reply, in order.
    let rows = step["rows"].as_array().unwrap();
    let fixtures: Vec<&str> = rows
        .iter()
        .map(|t| t["fixture"].as_str().unwrap())
        .collect();
    assert_eq!(
        fixtures,
        ["piper_booking", "piper_yes", "piper_interrupt"],
        "{r}"
    );
    // Every reply came, after the caller stopped: whisper, the flow and
    // Piper take time, and a reply never starts before the endpointing pause.
    for t in rows {
        let v2v = t["voice_to_voice_ms"].as_f64().unwrap();
        assert!((200.0..10_000.0).contains(&v2v), "{t}");
    }
    // The second reply was talked over, and the agent went quiet while the
    // caller was still speaking (the clip is 2.3 s long).
    let stop = rows[1]["barge_in_stop_ms"].as_f64().unwrap();
    assert!((0.0..2000.0).contains(&stop), "{r}");
    assert_eq!(step["barge_ins"], 1, "{r}");
    // The engine's own per-turn figures came back through its control API.
    assert!(step["engine_turns"].as_u64().unwrap() >= 3, "{r}");
    for k in [
        "stt_p50_ms",
        "brain_first_sentence_p50_ms",
        "tts_first_audio_p50_ms",
    ] {
        assert!(step[k].as_f64().unwrap() > 0.0, "{k}: {r}");
    }
    assert!(step["engine_cpu_ms_per_call_second"].as_f64().unwrap() > 0.0);
    assert!(step["rss_mb"].as_f64().unwrap() > 50.0, "{r}");
    assert!(
        stdout.contains("| calls | turns | voice-to-voice"),
        "{stdout}"
    );
    assert!(stdout.contains("| piper_interrupt |"), "{stdout}");
}

#[test]
fn sip_callers_are_timed_on_the_wire() {
    let (r, stdout) = short_run("sip");
    assert_eq!(r["transport"], "sip");
    check(&r, &stdout);
}

#[test]
fn twilio_callers_are_timed_on_the_wire() {
    let (r, stdout) = short_run("twilio");
    assert_eq!(r["transport"], "twilio");
    check(&r, &stdout);
}
