//! `vocelio bench all`: every scenario of the benchmark in one run, with the
//! peers, written to `benches/results/` as markdown and JSON.
//!
//! The scenarios run one after another, each as a child process of this
//! binary (`vocelio bench ...`), so that one's pinning and sockets cannot
//! disturb the next:
//!
//! - (a) media-only capacity on one core, with rtpengine relaying the same
//!   RTP load on the same core (`bench rtpengine`, which also runs
//!   `bench media`);
//! - (b) full-AI calls on the whole box, raising N until voice-to-voice p95
//!   passes 700 ms (`bench calls --calls 1,4,...`);
//! - (c) SIP call rate, ours and Kamailio's under the same sipp load
//!   (`bench sip`);
//! - (d) single-call latency over every fixture, over SIP/RTP and over
//!   Twilio Media Streams (`bench calls --calls 1 --turns 0`).
//!
//! `--quick` shrinks every scenario to seconds; the test suite runs it.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Arguments of `vocelio bench all`.
#[derive(Debug, clap::Args)]
pub struct AllArgs {
    /// Tiny sizes (a few calls, a few seconds each): checks the harness, measures nothing.
    #[arg(long)]
    pub quick: bool,
    /// Where the results go.
    #[arg(long, default_value = "benches/results")]
    pub out: PathBuf,
    /// Media-only calls for scenario (a).
    #[arg(long, default_value_t = 1000)]
    pub media_calls: usize,
    /// Seconds each media and SIP measurement lasts.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// The ramp of concurrent AI calls for scenario (b).
    #[arg(long, default_value = "1,4,8,12,16,20,24,28")]
    pub ai_calls: String,
    /// Caller turns per AI call in scenario (b).
    #[arg(long, default_value_t = 4)]
    pub ai_turns: usize,
    /// SIP call rates for scenario (c).
    #[arg(long, default_value = "500,1000,2000,3000,4000,6000,8000")]
    pub sip_rates: String,
    /// Scenarios to run (default all): media, ai, sip, latency.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

struct Run {
    name: &'static str,
    args: Vec<String>,
    json: PathBuf,
}

/// What one scenario printed and wrote.
struct Outcome {
    name: &'static str,
    command: String,
    markdown: String,
    json: Value,
    seconds: f64,
    error: Option<String>,
}

fn run_one(r: &Run) -> Result<Outcome> {
    let exe = std::env::current_exe()?;
    let command = format!("vocelio {}", r.args.join(" "));
    eprintln!("== {}: {command}", r.name);
    let t0 = Instant::now();
    let out = Command::new(&exe)
        .args(&r.args)
        .arg("--json")
        .arg(&r.json)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {command}"))?;
    let markdown = String::from_utf8_lossy(&out.stdout).trim().to_string();
    println!("{markdown}\n");
    let json = std::fs::read_to_string(&r.json)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(Value::Null);
    Ok(Outcome {
        name: r.name,
        command,
        markdown,
        json,
        seconds: t0.elapsed().as_secs_f64(),
        error: (!out.status.success()).then(|| format!("exited with {}", out.status)),
    })
}

fn s(v: impl Into<String>) -> String {
    v.into()
}

fn plan(args: &AllArgs, out: &Path) -> Vec<Run> {
    let (media_calls, seconds, ai_calls, ai_turns, sip_rates) = if args.quick {
        (20, 2, s("1,2"), 1, s("50"))
    } else {
        (
            args.media_calls,
            args.seconds,
            args.ai_calls.clone(),
            args.ai_turns,
            args.sip_rates.clone(),
        )
    };
    let secs = seconds.to_string();
    let wanted = |n: &str| args.only.is_empty() || args.only.iter().any(|o| o == n);
    let mut runs = Vec::new();
    if wanted("media") {
        runs.push(Run {
            name: "media",
            args: vec![
                s("bench"),
                s("rtpengine"),
                s("--calls"),
                media_calls.to_string(),
                s("--seconds"),
                secs.clone(),
            ],
            json: out.join("media.json"),
        });
    }
    if wanted("sip") {
        runs.push(Run {
            name: "sip",
            args: vec![
                s("bench"),
                s("sip"),
                s("--rates"),
                sip_rates,
                s("--seconds"),
                secs,
            ],
            json: out.join("sip.json"),
        });
    }
    if wanted("latency") {
        let mut sip = vec![s("bench"), s("calls"), s("--calls"), s("1")];
        if args.quick {
            sip.extend([s("--turns"), s("2"), s("--interrupt-every"), s("2")]);
        } else {
            sip.extend([s("--turns"), s("0")]);
        }
        let mut twilio = sip.clone();
        twilio.extend([s("--transport"), s("twilio")]);
        runs.push(Run {
            name: "latency",
            args: sip,
            json: out.join("latency.json"),
        });
        runs.push(Run {
            name: "latency-twilio",
            args: twilio,
            json: out.join("latency-twilio.json"),
        });
    }
    if wanted("ai") {
        runs.push(Run {
            name: "ai",
            args: vec![
                s("bench"),
                s("calls"),
                s("--calls"),
                ai_calls,
                s("--turns"),
                ai_turns.to_string(),
            ],
            json: out.join("ai.json"),
        });
    }
    runs
}

fn num(v: &Value) -> Option<f64> {
    v.as_f64().filter(|x| x.is_finite())
}

fn fmt(v: Option<f64>, unit: &str) -> String {
    v.map_or("not measured".into(), |x| format!("{x:.0}{unit}"))
}

/// One line of the goals table: what was measured against what we aim for.
struct Goal {
    what: &'static str,
    goal: &'static str,
    measured: String,
    met: Option<bool>,
}

fn goals(outcomes: &[Outcome]) -> Vec<Goal> {
    let by = |n: &str| {
        outcomes
            .iter()
            .find(|o| o.name == n)
            .map_or(&Value::Null, |o| &o.json)
    };
    let mut g = Vec::new();
    let lat = &by("latency")["steps"][0];
    let p50 = num(&lat["voice_to_voice_p50_ms"]);
    let p95 = num(&lat["voice_to_voice_p95_ms"]);
    g.push(Goal {
        what: "voice-to-voice p50 / p95, one call, every fixture (SIP)",
        goal: "<= 350 / 500 ms",
        measured: format!("{} / {}", fmt(p50, " ms"), fmt(p95, " ms")),
        met: p50.zip(p95).map(|(a, b)| a <= 350.0 && b <= 500.0),
    });
    let ai = by("ai");
    let max_ai = ai["max_calls_within_limit"].as_u64();
    g.push(Goal {
        what: "full-AI calls on the whole box at voice-to-voice p95 <= 700 ms",
        goal: ">= 20",
        measured: match (max_ai, ai["max_calls_within_1_5x_first"].as_u64()) {
            (Some(n), Some(m)) => format!("{n} (within 1.5x one call's p95: {m})"),
            _ => "not measured".into(),
        },
        met: max_ai.map(|n| n >= 20),
    });
    let media = &by("media")["vocelio"];
    let calls = media["calls_sustained"].as_i64();
    let late = media["engine"]["late_frames"].as_u64();
    g.push(Goal {
        what: "media-only calls on one core, 0 late frames",
        goal: ">= 1000",
        measured: match (calls, late) {
            (Some(c), Some(l)) => format!("{c} calls, {l} late frames"),
            _ => "not measured".into(),
        },
        met: calls.zip(late).map(|(c, l)| c >= 1000 && l == 0),
    });
    let sip = by("sip");
    let rate = sip["servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "vocelio"))
        .and_then(|s| num(&s["max_rate_no_failures"]));
    g.push(Goal {
        what: "SIP calls/s with 0 failures",
        goal: ">= 1000",
        measured: fmt(rate, " calls/s"),
        met: rate.map(|r| r >= 1000.0),
    });
    let barge = num(&lat["barge_in_stop_p95_ms"]);
    g.push(Goal {
        what: "barge-in stop p95 (one call, SIP)",
        goal: "<= 150 ms",
        measured: fmt(barge, " ms"),
        met: barge.map(|b| b <= 150.0),
    });
    g
}

fn git_revision() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// `vocelio bench all`.
pub fn all(args: AllArgs) -> Result<()> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let runs = plan(&args, &args.out);
    if runs.is_empty() {
        bail!("--only names none of media, ai, sip, latency");
    }
    let mut outcomes = Vec::new();
    for r in &runs {
        outcomes.push(run_one(r)?);
    }
    let build = if cfg!(debug_assertions) {
        "debug build"
    } else {
        "release build"
    };
    let machine = crate::bench::machine();
    let when = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let rev = git_revision();
    let goals = goals(&outcomes);
    let mut md = format!(
        "# Vocelio benchmark{}\n\n{machine}; {build}; revision {rev}; {when}.\n\n",
        if args.quick {
            " (quick run: sizes too small to mean anything)"
        } else {
            ""
        }
    );
    md.push_str("| goal | target | measured | met |\n|---|---|---|---|\n");
    for g in &goals {
        md.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            g.what,
            g.goal,
            g.measured,
            match g.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }
        ));
    }
    for o in &outcomes {
        md.push_str(&format!(
            "\n## {}\n\n`{}` ({:.0} s{})\n\n{}\n",
            o.name,
            o.command,
            o.seconds,
            o.error
                .as_ref()
                .map(|e| format!(", {e}"))
                .unwrap_or_default(),
            o.markdown
        ));
    }
    let summary = json!({
        "machine": machine,
        "build": build,
        "revision": rev,
        "date": when,
        "quick": args.quick,
        "goals": goals.iter().map(|g| json!({
            "what": g.what, "goal": g.goal, "measured": g.measured, "met": g.met,
        })).collect::<Vec<_>>(),
        "scenarios": outcomes.iter().map(|o| json!({
            "name": o.name,
            "command": o.command,
            "seconds": o.seconds,
            "error": o.error,
            "results": o.json,
        })).collect::<Vec<_>>(),
    });
    if let Some(table) = md.split("\n## ").next() {
        println!("{table}");
    }
    let md_path = args.out.join("latest.md");
    let json_path = args.out.join("latest.json");
    std::fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&summary)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    eprintln!("wrote {} and {}", md_path.display(), json_path.display());
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|o| o.error.as_ref().map(|e| format!("{} ({e})", o.name)))
        .collect();
    if !failed.is_empty() {
        bail!("scenarios failed: {}", failed.join(", "));
    }
    Ok(())
}
