//! A short run of `vocelio bench rtpengine`, so the harness keeps working:
//! rtpengine (Debian's rtpengine-daemon, which scripts/setup.sh installs)
//! relays 20 calls of RTP for 2 s on 127.0.0.1, then `bench media` runs
//! ours at the same size, and the JSON holds both sides and their ratio.

use vocelio_testkit::run_bench;

#[test]
fn bench_rtpengine_short_run_compares_both_sides() {
    let (r, stdout) = run_bench(
        env!("CARGO_BIN_EXE_vocelio"),
        &["bench", "rtpengine", "--calls", "20", "--seconds", "2"],
    );
    assert!(stdout.contains("| calls held | 20 | 20 |"), "{stdout}");
    let peer = &r["rtpengine"];

    // 20 calls for 2 s at 50 packets/s, one way: 2000 packets in the window
    // (our sender skips a packet only when it is 60 ms behind, on a box
    // starved of CPU), and (nearly) all of them relayed to leg B.
    let sent = peer["packets_sent"].as_u64().unwrap();
    let skipped = peer["send_skipped"].as_u64().unwrap();
    assert_eq!(sent + skipped, 2000, "{r}");
    assert!(sent >= 1900, "{r}");
    let received = peer["packets_received"].as_u64().unwrap();
    assert!(received <= sent && received * 100 >= sent * 99, "{r}");
    assert!(peer["loss_percent"].as_f64().unwrap() <= 1.0, "{r}");
    assert_eq!(peer["stray_packets"].as_u64(), Some(0), "{r}");
    assert!(peer["cpu_percent_of_core"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        peer["cpu_us_per_call_second"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    assert!(
        peer["version"]
            .as_str()
            .unwrap()
            .starts_with(char::is_numeric),
        "{r}"
    );

    // Ours ran in the same invocation, at the same size.
    assert_eq!(r["vocelio"]["calls_sustained"].as_i64(), Some(20), "{r}");
    let ratio = r["cpu_ratio_vocelio_to_rtpengine"].as_f64().unwrap();
    assert!(ratio.is_finite() && ratio > 0.0, "{r}");
    assert_eq!(r["bidirectional"].as_bool(), Some(false));
}
