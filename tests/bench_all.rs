//! `vocelio bench all --quick`: every scenario with its peer at tiny sizes,
//! so the whole benchmark keeps working: media capacity with rtpengine on
//! the same load, SIP rate with Kamailio under the same sipp load, and a
//! ramp of AI calls against `vocelio serve` with the real models. (The
//! single-call latency scenario is `tests/bench_calls.rs`.)

use serde_json::Value;
use std::process::Command;

#[test]
fn bench_all_quick_writes_the_goals_and_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vocelio"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["bench", "all", "--quick", "--only", "media,sip,ai", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let md = std::fs::read_to_string(dir.path().join("latest.md")).unwrap();
    assert!(md.contains("| goal | target | measured | met |"), "{md}");
    for section in ["## media", "## sip", "## ai"] {
        assert!(md.contains(section), "{section} missing:\n{md}");
    }
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("latest.json")).unwrap())
            .unwrap();
    assert_eq!(r["quick"], true);
    assert!(r["machine"].as_str().unwrap().contains("cores"), "{r}");
    assert_eq!(r["goals"].as_array().unwrap().len(), 5, "{r}");

    let scenario = |name: &str| -> &Value {
        let s = r["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no {name} scenario: {r}"));
        assert!(s["error"].is_null(), "{name}: {s}");
        &s["results"]
    };

    // (a) Both media servers carried the 20 calls, nothing lost.
    let media = scenario("media");
    assert_eq!(media["vocelio"]["calls_sustained"], 20, "{media}");
    assert_eq!(media["vocelio"]["caller_packets_lost"], 0, "{media}");
    assert!(
        media["rtpengine"]["packets_received"].as_u64().unwrap() > 0,
        "{media}"
    );
    assert!(
        media["cpu_ratio_vocelio_to_rtpengine"]
            .as_f64()
            .unwrap()
            .is_finite(),
        "{media}"
    );

    // (c) Both SIP servers answered every call of the step.
    let sip = scenario("sip");
    let servers = sip["servers"].as_array().unwrap();
    let names: Vec<&str> = servers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["vocelio", "kamailio"], "{sip}");
    for s in servers {
        assert_eq!(s["max_rate_no_failures"].as_f64(), Some(50.0), "{s}");
    }

    // (b) The ramp ran each step with every call and reply accounted for.
    let ai = scenario("ai");
    let steps = ai["steps"].as_array().unwrap();
    assert!(!steps.is_empty(), "{ai}");
    assert_eq!(steps[0]["calls"], 1, "{ai}");
    assert_eq!(steps[0]["calls_completed"], 1, "{ai}");
    assert!(
        steps[0]["voice_to_voice_p50_ms"].as_f64().unwrap() > 0.0,
        "{ai}"
    );
}
