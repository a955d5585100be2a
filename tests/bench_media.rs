//! A short run of the media capacity harness (`vocelio bench media`), so it
//! keeps working: a handful of real SIP calls with RTP against the engine
//! pinned to one core, and its table.

use vocelio_testkit::run_bench;

#[test]
fn bench_media_short_run_prints_its_table() {
    let (r, stdout) = run_bench(
        env!("CARGO_BIN_EXE_vocelio"),
        &[
            "bench",
            "media",
            "--calls",
            "20",
            "--seconds",
            "2",
            "--rate",
            "50",
        ],
    );
    assert!(stdout.contains("| calls sustained | 20 |"), "{stdout}");
    assert!(stdout.contains("| calls failed | 0 |"), "{stdout}");
    // 20 calls for 2 s at 50 frames/s: about 2000 frames went through the engine.
    let frames = r["engine"]["frames"].as_u64().unwrap();
    assert!((1800..=2200).contains(&frames), "{frames}");
    assert_eq!(r["caller_packets_lost"].as_i64(), Some(0), "{r}");
    assert!(r["rss_per_call_kb"].as_f64().unwrap() > 0.0);
}
