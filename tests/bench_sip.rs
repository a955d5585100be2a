//! A short run of the SIP call-rate harness (`vocelio bench sip`), so it
//! keeps working: sipp places 100 calls at 50 calls/s against `vocelio
//! serve` and then against Kamailio, both on 127.0.0.1, and the JSON holds
//! both ramps and the ratios.

use vocelio_testkit::run_bench;

#[test]
fn bench_sip_short_run_measures_vocelio_and_kamailio() {
    let (r, stdout) = run_bench(
        env!("CARGO_BIN_EXE_vocelio"),
        &["bench", "sip", "--rates", "50", "--seconds", "2"],
    );
    assert!(
        stdout.contains("| vocelio | 50 | 100 | 100 | 0 | "),
        "{stdout}"
    );
    assert!(
        stdout.contains("| kamailio | 50 | 100 | 100 | 0 | "),
        "{stdout}"
    );

    assert_eq!(r["seconds_per_step"].as_u64(), Some(2), "{r}");
    assert!(!r["machine"].as_str().unwrap().is_empty());
    let servers = r["servers"].as_array().unwrap();
    let names: Vec<&str> = servers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vocelio", "kamailio"], "{r}");
    for s in servers {
        let steps = s["steps"].as_array().unwrap();
        assert_eq!(steps.len(), 1, "{s}");
        let st = &steps[0];
        assert_eq!(st["rate"].as_u64(), Some(50), "{s}");
        assert_eq!(st["calls"].as_u64(), Some(100), "{s}");
        assert_eq!(st["successful"].as_u64(), Some(100), "{s}");
        assert_eq!(st["failed"].as_u64(), Some(0), "{s}");
        // Each server did measurable work, and 100 calls at 50/s took about 2 s.
        assert!(st["server_cpu_seconds"].as_f64().unwrap() > 0.0, "{s}");
        assert!(
            st["server_cpu_percent_of_core"].as_f64().unwrap() > 0.0,
            "{s}"
        );
        assert!(st["sipp_cpu_seconds"].as_f64().unwrap() > 0.0, "{s}");
        let wall = st["wall_seconds"].as_f64().unwrap();
        assert!((1.5..30.0).contains(&wall), "{s}");
        assert!(st["server_cpu_us_per_call"].as_f64().unwrap() > 0.0, "{s}");
        assert!(st["drain_seconds"].as_f64().unwrap() >= 0.0, "{s}");
        assert_eq!(s["max_rate_no_failures"].as_u64(), Some(50), "{s}");
        // 50 calls/s is a small share of a core for either server.
        assert_eq!(s["max_rate_within_one_core"].as_u64(), Some(50), "{s}");
        assert_eq!(s["saturated"].as_bool(), Some(false), "{s}");
        assert!(
            s["cpu_percent_at_common_rate"].as_f64().unwrap() > 0.0,
            "{s}"
        );
    }
    assert_eq!(r["common_rate"].as_u64(), Some(50), "{r}");
    assert_eq!(
        r["ratio_max_rate_vocelio_to_kamailio"].as_f64(),
        Some(1.0),
        "{r}"
    );
    let cpu_ratio = r["cpu_ratio_at_common_rate"].as_f64().unwrap();
    assert!(cpu_ratio.is_finite() && cpu_ratio > 0.0, "{r}");
}
