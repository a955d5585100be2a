//! `vocelio bench sip`: SIP call rate, side by side with Kamailio.
//!
//! Each server under test runs pinned to one core, one after the other:
//! first `vocelio serve` (the product as users run it, on free loopback
//! ports, with a throwaway data folder), then Kamailio answering calls as a
//! stateful UAS from `benches/peers/kamailio.cfg`. sipp, pinned to the other
//! cores, places calls with its built-in `uac` scenario (INVITE, 100, 200,
//! ACK, BYE, 200) at rising rates, a fixed number of seconds per step. Each
//! step starts on an idle server and records sipp's successful and failed
//! calls (its `-trace_stat` CSV), sipp's CPU time, and the server's (its
//! process and every child) until it is idle again: work a step leaves queued,
//! such as vocelio's call records, is charged to that step. A server's ramp
//! stops at its first step with a failure.

use crate::bench::{cpu_time, free_tcp_port, free_udp_port, machine, tail};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The peer's configuration, from the repository, written next to its pid
/// file at run time so the binary needs no checkout.
const KAMAILIO_CFG: &str = include_str!("../benches/peers/kamailio.cfg");

/// The called number sipp dials (the default agent answers it).
const CALLED: &str = "15550100001";

/// How long a server gets to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server counts as idle once it uses at most this share of a core over
/// [`IDLE_WINDOW`] (vocelio idles at about 1 %).
const IDLE_SHARE: f64 = 0.05;
const IDLE_WINDOW: Duration = Duration::from_millis(500);
/// How long the harness waits for a server to finish the work a step left
/// behind (queued writes, timers) before it stops counting.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Arguments of `vocelio bench sip`.
#[derive(Debug, clap::Args)]
pub struct SipArgs {
    /// Call rates to ramp through (calls per second), in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "500,1000,2000,3000,4000,5000,6000,8000"
    )]
    pub rates: Vec<u32>,
    /// Seconds per step: each step places rate x seconds calls.
    #[arg(long, default_value_t = 10)]
    pub seconds: u32,
    /// CPU core the server under test is pinned to (sipp runs on the others).
    #[arg(long, default_value_t = 0)]
    pub core: usize,
    /// The peer measured after us on the same load: kamailio or none.
    #[arg(long, value_enum, default_value_t = Peer::Kamailio)]
    pub peer: Peer,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The vocelio binary to measure (default: this one).
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

/// The peer server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Peer {
    /// Kamailio (Debian package `kamailio`) with benches/peers/kamailio.cfg.
    Kamailio,
    /// Only vocelio.
    None,
}

/// One rate step against one server.
#[derive(Debug, Serialize, Clone)]
struct Step {
    rate: u32,
    calls: u64,
    successful: u64,
    /// Calls that did not complete: sipp's failed calls plus any it gave up on.
    failed: u64,
    /// Requests sipp had to send again (a slow or lossy server).
    retransmissions: u64,
    /// From sipp's start to its exit.
    wall_seconds: f64,
    achieved_calls_per_second: f64,
    /// After sipp exited, until the server was idle again: work the calls
    /// left queued (vocelio's call records, Kamailio's transaction timers).
    drain_seconds: f64,
    /// The server was still busy when the harness stopped waiting (60 s).
    drain_capped: bool,
    /// Server CPU while sipp ran plus while it drained.
    server_cpu_seconds: f64,
    server_cpu_seconds_draining: f64,
    /// `server_cpu_seconds` over `wall_seconds`: the share of a core this
    /// rate needs when sustained (above 100 % it falls behind).
    server_cpu_percent_of_core: f64,
    server_cpu_us_per_call: f64,
    sipp_cpu_seconds: f64,
}

/// One server's ramp.
#[derive(Debug, Serialize)]
struct ServerResult {
    name: String,
    /// How it was started (program and arguments).
    command: String,
    steps: Vec<Step>,
    /// The highest rate with no failures (null if the first step failed).
    max_rate_no_failures: Option<u32>,
    /// The highest rate with no failures whose CPU, drain included, fits in
    /// one core: what the server sustains, not just what it absorbs for a
    /// step while work queues up.
    max_rate_within_one_core: Option<u32>,
    /// Whether the ramp ended on a failing step; if not, the maximum is only
    /// a lower bound (the ramp's top).
    saturated: bool,
    cpu_percent_at_common_rate: Option<f64>,
}

/// The harness's results.
#[derive(Debug, Serialize)]
struct Results {
    machine: String,
    /// The binary measured, and whether it is a debug build.
    binary: String,
    debug_build: bool,
    seconds_per_step: u32,
    server_core: usize,
    sipp_cores: String,
    servers: Vec<ServerResult>,
    /// The highest rate every server passed with no failures.
    common_rate: Option<u32>,
    ratio_max_rate_vocelio_to_kamailio: Option<f64>,
    /// vocelio's CPU over Kamailio's at `common_rate`.
    cpu_ratio_at_common_rate: Option<f64>,
}

/// Runs the ramp against vocelio and the peer and prints the table.
pub fn sip(args: SipArgs) -> Result<()> {
    if args.rates.is_empty() || args.rates.contains(&0) {
        bail!("--rates needs one or more rates above 0, e.g. --rates 500,1000,2000");
    }
    if args.seconds == 0 {
        bail!("--seconds must be at least 1");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.core >= cores {
        bail!(
            "--core {} does not exist: this machine has cores 0-{}",
            args.core,
            cores - 1
        );
    }
    let sipp = find_program("sipp").context(
        "sipp not found (Debian package sip-tester): run scripts/setup.sh to install it",
    )?;
    let kamailio = match args.peer {
        Peer::Kamailio => Some(find_program("kamailio").context(
            "kamailio not found (Debian package kamailio): run scripts/setup.sh to install it, \
             or pass --peer none",
        )?),
        Peer::None => None,
    };
    let bin = match &args.bin {
        Some(b) => b.clone(),
        None => std::env::current_exe().context("locating this binary")?,
    };
    if !bin.is_file() {
        bail!("--bin {}: no such file", bin.display());
    }
    let debug_build = bin.components().any(|c| c.as_os_str() == "debug");
    if debug_build {
        eprintln!(
            "note: {} is a debug build; release figures come from target/release/vocelio",
            bin.display()
        );
    }
    let sipp_cores: Vec<usize> = (0..cores).filter(|&c| c != args.core).collect();
    let sipp_cores = sipp_cores
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",");
    if sipp_cores.is_empty() {
        eprintln!("one core only: sipp shares it with the server under test");
    }
    let load = Load {
        sipp,
        cores: sipp_cores.clone(),
        seconds: args.seconds,
    };
    let dir = tempfile::Builder::new()
        .prefix("vocelio-bench-sip-")
        .tempdir()
        .context("creating a temporary folder")?;

    let mut servers = Vec::new();
    {
        let server = Server::vocelio(&bin, args.core, &dir.path().join("vocelio"))?;
        servers.push(ramp(
            server,
            &args.rates,
            &load,
            &dir.path().join("sipp-vocelio"),
        )?);
    }
    if let Some(kamailio) = kamailio {
        let server = Server::kamailio(&kamailio, args.core, &dir.path().join("kamailio"))?;
        servers.push(ramp(
            server,
            &args.rates,
            &load,
            &dir.path().join("sipp-kamailio"),
        )?);
    }

    let common_rate = args
        .rates
        .iter()
        .copied()
        .filter(|&r| servers.iter().all(|s| passed(s, r).is_some()))
        .max();
    for s in &mut servers {
        s.cpu_percent_at_common_rate = common_rate
            .and_then(|r| passed(s, r))
            .map(|st| st.server_cpu_percent_of_core);
    }
    let ours = servers.iter().find(|s| s.name == "vocelio");
    let peer = servers.iter().find(|s| s.name == "kamailio");
    let (rate_ratio, cpu_ratio) = match (ours, peer) {
        (Some(o), Some(p)) => (
            ratio(
                o.max_rate_no_failures.map(f64::from),
                p.max_rate_no_failures.map(f64::from),
            ),
            ratio(o.cpu_percent_at_common_rate, p.cpu_percent_at_common_rate),
        ),
        _ => (None, None),
    };
    let results = Results {
        machine: machine(),
        binary: bin.display().to_string(),
        debug_build,
        seconds_per_step: args.seconds,
        server_core: args.core,
        sipp_cores,
        servers,
        common_rate,
        ratio_max_rate_vocelio_to_kamailio: rate_ratio,
        cpu_ratio_at_common_rate: cpu_ratio,
    };
    print_table(&results);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)? + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The step at `rate`, if the server passed it with no failures.
fn passed(s: &ServerResult, rate: u32) -> Option<&Step> {
    s.steps.iter().find(|st| st.rate == rate && st.failed == 0)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && (a / b).is_finite() => Some(a / b),
        _ => None,
    }
}

/// Runs every rate against `server` until a step fails, then stops it.
fn ramp(mut server: Server, rates: &[u32], load: &Load, work: &Path) -> Result<ServerResult> {
    std::fs::create_dir_all(work)?;
    let mut steps = Vec::new();
    let mut saturated = false;
    for &rate in rates {
        eprintln!("{}: {rate} calls/s for {} s ...", server.name, load.seconds);
        let step = load
            .step(&mut server, rate, work)
            .with_context(|| format!("{} at {rate} calls/s", server.name))?;
        eprintln!(
            "{}: {rate} calls/s: {} of {} calls successful in {:.1} s (then {:.1} s draining), {:.0} % of a core",
            server.name,
            step.successful,
            step.calls,
            step.wall_seconds,
            step.drain_seconds,
            step.server_cpu_percent_of_core
        );
        let failed = step.failed > 0;
        steps.push(step);
        if failed {
            saturated = true;
            break;
        }
    }
    server.stop()?;
    let max_rate_no_failures = steps.iter().filter(|s| s.failed == 0).map(|s| s.rate).max();
    let max_rate_within_one_core = steps
        .iter()
        .filter(|s| s.failed == 0 && s.server_cpu_percent_of_core <= 100.0)
        .map(|s| s.rate)
        .max();
    Ok(ServerResult {
        name: server.name.clone(),
        command: server.command.clone(),
        steps,
        max_rate_no_failures,
        max_rate_within_one_core,
        saturated,
        cpu_percent_at_common_rate: None,
    })
}

/// A server under test, pinned to one core (with its child processes).
struct Server {
    name: String,
    command: String,
    child: Child,
    sip: SocketAddr,
    log: PathBuf,
    stopped: bool,
}

impl Server {
    /// `vocelio serve` with loopback addresses, a throwaway data folder and
    /// no brain models (calls go to the default agent all the same).
    fn vocelio(bin: &Path, core: usize, dir: &Path) -> Result<Server> {
        std::fs::create_dir_all(dir)?;
        let sip: SocketAddr = ([127, 0, 0, 1], free_port_udp_and_tcp()?).into();
        let http: SocketAddr = ([127, 0, 0, 1], free_tcp_port()?).into();
        let log = dir.join("vocelio.log");
        let mut cmd = crate::bench::pinned(core, bin);
        cmd.arg("serve")
            // Its own log filter, and an error's message (not a backtrace)
            // at the end of its log.
            .env_remove("RUST_LOG")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env("VOCELIO__SIP__LISTEN", sip.to_string())
            .env("VOCELIO__HTTP__LISTEN", http.to_string())
            .env("VOCELIO__STORAGE__DATA_DIR", dir.join("data"))
            .env("VOCELIO__LOG__FILTER", "warn")
            // Brain models load at startup and play no part in signalling.
            .env("VOCELIO__BRAIN__EMBEDDINGS", "false")
            .env("VOCELIO__BRAIN__LOCAL_LLM", "false");
        // Room for the ramp: finished transactions linger 32 s (see the
        // README's sip.max_transactions). The caller's environment wins.
        for (key, value) in [
            ("VOCELIO__SIP__MAX_CALLS", "20000"),
            ("VOCELIO__SIP__MAX_TRANSACTIONS", "400000"),
        ] {
            if std::env::var_os(key).is_none() {
                cmd.env(key, value);
            }
        }
        let command = format!("{} serve", bin.display());
        let mut server = Server::spawn("vocelio", command, cmd, sip, log)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !http_ok(http, "/health") {
            server.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "vocelio did not answer /health on {http} within {} s; its log ends:\n{}",
                    START_TIMEOUT.as_secs(),
                    server.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// Kamailio in the foreground with benches/peers/kamailio.cfg, one UDP
    /// worker, its pid file and runtime folder in `dir`.
    fn kamailio(program: &Path, core: usize, dir: &Path) -> Result<Server> {
        std::fs::create_dir_all(dir)?;
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, KAMAILIO_CFG)?;
        let sip: SocketAddr = ([127, 0, 0, 1], free_udp_port()?).into();
        let log = dir.join("kamailio.log");
        let mut cmd = crate::bench::pinned(core, program);
        let args: Vec<String> = vec![
            "-f".into(),
            cfg.display().to_string(),
            "-l".into(),
            format!("udp:{sip}"),
            // Foreground: the creator stays, its children are the workers.
            "-DD".into(),
            "-E".into(),
            "-P".into(),
            dir.join("kamailio.pid").display().to_string(),
            "-Y".into(),
            dir.display().to_string(),
            "-w".into(),
            dir.display().to_string(),
            // Shared memory for ~80 000 transactions in their 5 s wait.
            "-m".into(),
            "1024".into(),
            "-M".into(),
            "32".into(),
        ];
        cmd.args(&args);
        let command = format!("{} {}", program.display(), args.join(" "));
        let mut server = Server::spawn("kamailio", command, cmd, sip, log)?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !sip_options_ok(sip) {
            server.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "kamailio did not answer OPTIONS on {sip} within {} s; its log ends:\n{}",
                    START_TIMEOUT.as_secs(),
                    server.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    fn spawn(
        name: &str,
        command: String,
        mut cmd: Command,
        sip: SocketAddr,
        log: PathBuf,
    ) -> Result<Server> {
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {command}"))?;
        Ok(Server {
            name: name.into(),
            command,
            child,
            sip,
            log,
            stopped: false,
        })
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); its log ends:\n{}",
                self.name,
                self.log_tail()
            );
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        tail(&self.log, 20)
    }

    /// CPU time of the server's processes (Kamailio forks workers and
    /// timers; vocelio is one process with threads).
    fn cpu(&self) -> Duration {
        self.pids()
            .into_iter()
            .filter_map(|pid| cpu_time(pid).ok())
            .sum()
    }

    /// The server's process and every process under it.
    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.child.id()];
        pids.extend(descendants(self.child.id()));
        pids
    }

    /// Waits until the server has been idle for one window, at most `limit`;
    /// returns how long that took and whether the limit ended the wait.
    fn settle(&mut self, limit: Duration) -> Result<(Duration, bool)> {
        let start = Instant::now();
        let mut last = self.cpu();
        loop {
            std::thread::sleep(IDLE_WINDOW);
            self.check_alive()?;
            let now = self.cpu();
            let busy = now.saturating_sub(last);
            last = now;
            if busy.as_secs_f64() <= IDLE_SHARE * IDLE_WINDOW.as_secs_f64() {
                // The idle window itself is not part of the drain.
                return Ok((start.elapsed().saturating_sub(IDLE_WINDOW), false));
            }
            if start.elapsed() >= limit {
                return Ok((start.elapsed(), true));
            }
        }
    }

    /// SIGTERM, then SIGKILL to whatever is left of it after 10 s.
    fn stop(&mut self) -> Result<()> {
        let pids = self.pids();
        signal(&pids[..1], "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = still_running(&pids);
            if left.is_empty() {
                self.child.wait()?;
                break;
            }
            if Instant::now() > deadline {
                signal(&left, "KILL");
                self.child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.stopped = true;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if !self.stopped {
            let pids = self.pids();
            signal(&pids, "KILL");
            let _ = self.child.wait();
        }
    }
}

/// sipp as the load.
struct Load {
    sipp: PathBuf,
    /// Cores sipp is pinned to (empty: not pinned).
    cores: String,
    seconds: u32,
}

impl Load {
    /// One step: rate x seconds calls from sipp's uac scenario.
    fn step(&self, server: &mut Server, rate: u32, work: &Path) -> Result<Step> {
        server.check_alive()?;
        let calls = u64::from(rate) * u64::from(self.seconds);
        let stat = work.join(format!("stat-{rate}.csv"));
        let out = work.join(format!("sipp-{rate}.log"));
        // sipp gives up (and fails the run) well after the calls should be done.
        let timeout = self.seconds * 4 + 30;
        let mut cmd = if self.cores.is_empty() {
            Command::new(&self.sipp)
        } else {
            let mut c = Command::new("/usr/bin/taskset");
            c.arg("-c").arg(&self.cores).arg(&self.sipp);
            c
        };
        cmd.arg(server.sip.to_string())
            .args(["-sn", "uac", "-s", CALLED, "-i", "127.0.0.1"])
            .arg("-p")
            .arg(free_udp_port()?.to_string())
            .arg("-mp")
            .arg(free_udp_port()?.to_string())
            .arg("-r")
            .arg(rate.to_string())
            .arg("-m")
            .arg(calls.to_string())
            .arg("-l")
            .arg((u64::from(rate) * 4).to_string())
            .args(["-nostdin", "-timeout"])
            .arg(format!("{timeout}s"))
            .args(["-timeout_error", "-trace_stat", "-fd", "1", "-stf"])
            .arg(&stat);
        let log = std::fs::File::create(&out)?;
        // Start from an idle server (after startup, or a previous step).
        if server.settle(DRAIN_LIMIT)?.1 {
            eprintln!(
                "{} is still busy after {} s; starting the step anyway",
                server.name,
                DRAIN_LIMIT.as_secs()
            );
        }
        let before = server.cpu();
        let start = Instant::now();
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.sipp.display()))?;
        let sipp_cpu = wait_measured(&mut child, Duration::from_secs(u64::from(timeout) + 30))
            .with_context(|| format!("sipp; its output ends:\n{}", tail(&out, 20)))?;
        let wall = start.elapsed();
        let loaded = server.cpu();
        let (drain, drain_capped) = server.settle(DRAIN_LIMIT)?;
        let after = server.cpu();
        let used = after.saturating_sub(before);
        let counts = read_stat(&stat).with_context(|| {
            format!(
                "reading sipp's statistics {}; its output ends:\n{}",
                stat.display(),
                tail(&out, 20)
            )
        })?;
        let wall_s = wall.as_secs_f64().max(1e-3);
        Ok(Step {
            rate,
            calls,
            successful: counts.successful,
            failed: calls.saturating_sub(counts.successful).max(counts.failed),
            retransmissions: counts.retransmissions,
            wall_seconds: wall_s,
            achieved_calls_per_second: counts.successful as f64 / wall_s,
            drain_seconds: drain.as_secs_f64(),
            drain_capped,
            server_cpu_seconds: used.as_secs_f64(),
            server_cpu_seconds_draining: after.saturating_sub(loaded).as_secs_f64(),
            server_cpu_percent_of_core: 100.0 * used.as_secs_f64() / wall_s,
            server_cpu_us_per_call: 1e6 * used.as_secs_f64() / (counts.successful.max(1) as f64),
            sipp_cpu_seconds: sipp_cpu.as_secs_f64(),
        })
    }
}

/// Waits (at most `limit`) for `child` to exit and returns the CPU time it
/// used: read from /proc while it is a zombie, before it is reaped.
fn wait_measured(child: &mut Child, limit: Duration) -> Result<Duration> {
    let pid = child.id();
    let deadline = Instant::now() + limit;
    let mut last = Duration::ZERO;
    loop {
        match proc_state(pid) {
            Some('Z') | None => {
                let cpu = cpu_time(pid).unwrap_or(last);
                child.wait()?;
                return Ok(cpu);
            }
            Some(_) => last = cpu_time(pid).unwrap_or(last),
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {} s: killed", limit.as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Totals from the last line of sipp's `-trace_stat` CSV.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    successful: u64,
    failed: u64,
    retransmissions: u64,
}

fn read_stat(path: &Path) -> Result<Counts> {
    parse_stat(&std::fs::read_to_string(path)?)
}

fn parse_stat(text: &str) -> Result<Counts> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().context("empty file")?.split(';').collect();
    let last: Vec<&str> = lines
        .next_back()
        .context("no data line")?
        .split(';')
        .collect();
    let column = |name: &str| -> Result<u64> {
        let i = header
            .iter()
            .position(|h| h.trim() == name)
            .with_context(|| format!("no column {name}"))?;
        let v = last.get(i).map(|v| v.trim()).unwrap_or("");
        v.parse()
            .with_context(|| format!("column {name}: {v:?} is not a count"))
    };
    Ok(Counts {
        successful: column("SuccessfulCall(C)")?,
        failed: column("FailedCall(C)")?,
        retransmissions: column("Retransmissions(C)")?,
    })
}

fn print_table(r: &Results) {
    println!(
        "\nSIP call rate ({}; each server pinned to core {}, sipp on {}; {} s per step{})\n",
        r.machine,
        r.server_core,
        if r.sipp_cores.is_empty() {
            "the same core".to_string()
        } else {
            format!("core(s) {}", r.sipp_cores)
        },
        r.seconds_per_step,
        if r.debug_build { "; debug build" } else { "" }
    );
    println!(
        "| server | calls/s | calls | successful | failed | achieved calls/s | retransmissions | drain s | server CPU s (draining) | server CPU % of one core | µs per call | sipp CPU s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in &r.servers {
        for st in &s.steps {
            println!(
                "| {} | {} | {} | {} | {} | {:.0} | {} | {:.1}{} | {:.2} ({:.2}) | {:.0} % | {:.0} | {:.2} |",
                s.name,
                st.rate,
                st.calls,
                st.successful,
                st.failed,
                st.achieved_calls_per_second,
                st.retransmissions,
                st.drain_seconds,
                if st.drain_capped { "+" } else { "" },
                st.server_cpu_seconds,
                st.server_cpu_seconds_draining,
                st.server_cpu_percent_of_core,
                st.server_cpu_us_per_call,
                st.sipp_cpu_seconds
            );
        }
    }
    println!(
        "\ndrain: seconds from sipp's exit until the server was idle again (+: still busy after {} s). \
         Server CPU counts that time too, so the % of one core is what the rate costs when sustained.\n",
        DRAIN_LIMIT.as_secs()
    );
    for s in &r.servers {
        let achieved = |m: u32| {
            passed(s, m).map_or(String::new(), |st| {
                format!(", {:.0} calls/s achieved", st.achieved_calls_per_second)
            })
        };
        let max = match (s.max_rate_no_failures, s.saturated) {
            (Some(m), true) => format!("{m} calls/s{}", achieved(m)),
            (Some(m), false) => format!(
                "at least {m} calls/s{} (the ramp's top; no step failed)",
                achieved(m)
            ),
            (None, _) => "none (the first step failed)".into(),
        };
        println!(
            "{}: highest rate with 0 failures: {max}; within one core: {}",
            s.name,
            s.max_rate_within_one_core
                .map_or("none".to_string(), |m| format!("{m} calls/s"))
        );
    }
    if r.servers.len() > 1 {
        let f = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
        let cpu = |name: &str| {
            r.servers
                .iter()
                .find(|s| s.name == name)
                .and_then(|s| s.cpu_percent_at_common_rate)
                .map_or("n/a".to_string(), |v| format!("{v:.0} %"))
        };
        println!(
            "\nvocelio / kamailio: max rate ratio {}; at {} calls/s (the highest both passed) CPU {} vs {}, ratio {}",
            f(r.ratio_max_rate_vocelio_to_kamailio),
            r.common_rate.map_or("n/a".to_string(), |c| c.to_string()),
            cpu("vocelio"),
            cpu("kamailio"),
            f(r.cpu_ratio_at_common_rate)
        );
    }
}

/// `name` on PATH, or in the sbin folders a non-root PATH may lack.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Every process under `root` (Kamailio's workers and timers are its
/// children), from the parent pids in /proc.
fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat_field(pid, 1)?.parse().ok()?)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    // Bounded: each round adds only new pids, and there are finitely many.
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid) in &parents {
            if ppid == parent && pid != root && !found.contains(&pid) {
                found.push(pid);
                frontier.push(pid);
            }
        }
    }
    found
}

/// Those of `pids` that have not exited (zombies count as exited).
fn still_running(pids: &[u32]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|&pid| !matches!(proc_state(pid), None | Some('Z')))
        .collect()
}

/// The process's state letter (`Z` for a zombie).
fn proc_state(pid: u32) -> Option<char> {
    stat_field(pid, 0)?.chars().next()
}

/// Field `i` of /proc/PID/stat counted from the state (after the command name).
fn stat_field(pid: u32, i: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(i).map(str::to_owned)
}

/// Sends SIGname to `pids` (processes this harness started, or theirs).
fn signal(pids: &[u32], name: &str) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The last `n` lines of a log file.
/// A port free for both UDP and TCP (vocelio serves SIP on both).
fn free_port_udp_and_tcp() -> Result<u16> {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port on 127.0.0.1 free for both UDP and TCP after 100 tries")
}

/// Whether GET `path` answers 200.
fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

/// Whether an OPTIONS to `addr` gets a 200 within 200 ms.
fn sip_options_ok(addr: SocketAddr) -> bool {
    let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let Ok(local) = sock.local_addr() else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
    let msg = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-bench-{port}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:bench@{local}>;tag=bench\r\n\
         To: <sip:{addr}>\r\n\
         Call-ID: bench-options-{port}@127.0.0.1\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        port = local.port()
    );
    if sock.send_to(msg.as_bytes(), addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 2048];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if buf[..n].starts_with(b"SIP/2.0 200"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_line_of_sipps_statistics() {
        let csv = "StartTime;LastResetTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);Retransmissions(P);Retransmissions(C);\n\
                   a;b;10;10;0;0;0;0;\n\
                   a;b;5;100;1;2;3;7;\n";
        assert_eq!(
            parse_stat(csv).unwrap(),
            Counts {
                successful: 100,
                failed: 2,
                retransmissions: 7
            }
        );
    }

    #[test]
    fn statistics_without_data_or_columns_are_errors() {
        assert!(parse_stat("").is_err());
        assert!(parse_stat("SuccessfulCall(C);FailedCall(C)\n").is_err());
        assert!(parse_stat("SuccessfulCall(C);FailedCall(C)\n1;x\n").is_err());
    }

    #[test]
    fn the_embedded_peer_config_answers_calls_statefully() {
        assert!(KAMAILIO_CFG.starts_with("#!KAMAILIO"));
        assert!(KAMAILIO_CFG.contains("t_newtran()"));
        assert!(KAMAILIO_CFG.contains("children=1"));
    }

    #[test]
    fn ratios_need_both_sides() {
        assert_eq!(ratio(Some(2.0), Some(1.0)), Some(2.0));
        assert_eq!(ratio(Some(2.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }
}
