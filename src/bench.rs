//! `vocelio bench media`: the media plane's capacity harness.
//!
//! The engine side runs in a child process pinned to one core (`taskset`),
//! on a single-threaded runtime, answering SIP calls with a passthrough
//! (echo) agent. This process is the load: our own SIP endpoint and media
//! engine on the other core place N calls and talk to each with real RTP at
//! 50 packets/s. Once every call is up the harness measures, over a window,
//! the engine's per-frame processing time, ticks that ran more than 20 ms
//! late, CPU and RSS per call, and packet loss seen by the callers.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use vocelio_codecs::port::{MediaPort, PortEvent};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};
use vocelio_engine::endpoint::driver::{start, ListenConfig, SipHandle};
use vocelio_engine::endpoint::{AgentId, CallEvent, EndpointConfig, IpNet, TrunkConfig};
use vocelio_engine::media::bridge::{self, BridgeEvent};
use vocelio_engine::media::echo::EchoPool;
use vocelio_engine::media::metrics::MediaMetrics;
use vocelio_engine::media::{MediaConfig, MediaEngine, MediaEvent};
use vocelio_engine::sip::transaction::TransportKind;

/// Arguments of `vocelio bench media`.
#[derive(Debug, clap::Args)]
pub struct MediaArgs {
    /// Concurrent calls to hold (at most 2000: two RTP port ranges of 2000 pairs).
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,
    /// Seconds to measure once every call is up.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Call setup rate (calls per second).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
    /// CPU core the engine is pinned to (the load runs on the others).
    #[arg(long, default_value_t = 0)]
    pub core: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Arguments of the hidden engine side.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// First RTP port.
    #[arg(long)]
    pub rtp_min: u16,
    /// Last RTP port.
    #[arg(long)]
    pub rtp_max: u16,
}

/// What the engine side reports.
#[derive(Debug, Serialize, serde::Deserialize, Default, Clone)]
struct ServerReport {
    calls_active: i64,
    frames: u64,
    frame_p50_us: f64,
    frame_p99_us: f64,
    frame_max_us: f64,
    send_p50_us: f64,
    send_p99_us: f64,
    lateness_p50_us: f64,
    lateness_p99_us: f64,
    late_frames: u64,
    skipped_ticks: u64,
    packets_in: u64,
    packets_out: u64,
    send_errors: u64,
}

/// The harness's result table.
#[derive(Debug, Serialize)]
struct Results {
    machine: String,
    calls_requested: usize,
    calls_sustained: i64,
    calls_failed: usize,
    seconds: f64,
    engine: ServerReport,
    engine_cpu_percent_of_core: f64,
    cpu_us_per_call_second: f64,
    rss_baseline_kb: u64,
    rss_loaded_kb: u64,
    rss_per_call_kb: f64,
    caller_packets_received: u64,
    caller_packets_lost: i64,
    caller_loss_percent: f64,
}

/// The engine side: SIP + media + echo agents on one thread (plus the echo thread).
pub fn server(args: ServerArgs) -> Result<()> {
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let side = Side::start(
            7,
            "echo",
            loopback_trunk("load", "127.0.0.1:9".parse()?),
            (args.rtp_min, args.rtp_max),
        )
        .await?;
        let (sip, metrics, mut out) = (side.sip, side.metrics, side.out);
        let echo = EchoPool::start(0)?;
        tokio::spawn(async move {
            while let Some(ev) = out.recv().await {
                if let BridgeEvent::Port(p) = ev {
                    echo.add(p);
                }
            }
        });
        let addr = sip.udp_addr.context("no UDP")?;
        println!("READY {addr}");
        std::io::stdout().flush()?;
        let mut lines =
            tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(tokio::io::stdin()));
        while let Some(line) = lines.next_line().await? {
            match line.trim() {
                "reset" => metrics.reset(),
                "report" => {
                    let r = report(&metrics);
                    println!("{}", serde_json::to_string(&r)?);
                    std::io::stdout().flush()?;
                }
                _ => {}
            }
        }
        Ok(())
    })
}

fn report(m: &MediaMetrics) -> ServerReport {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    ServerReport {
        calls_active: m.calls_active.load(Ordering::Relaxed),
        frames: m.frame_time.count(),
        frame_p50_us: us(m.frame_time.quantile(0.5)),
        frame_p99_us: us(m.frame_time.quantile(0.99)),
        frame_max_us: us(m.frame_time.max()),
        send_p50_us: us(m.send_time.quantile(0.5)),
        send_p99_us: us(m.send_time.quantile(0.99)),
        lateness_p50_us: us(m.tick_lateness.quantile(0.5)),
        lateness_p99_us: us(m.tick_lateness.quantile(0.99)),
        late_frames: MediaMetrics::get(&m.late_frames),
        skipped_ticks: MediaMetrics::get(&m.skipped_ticks),
        packets_in: MediaMetrics::get(&m.packets_in),
        packets_out: MediaMetrics::get(&m.packets_out),
        send_errors: MediaMetrics::get(&m.send_errors),
    }
}

/// One side of the harness: a SIP endpoint on loopback with its media
/// plane and the bridge between them; call events and ports come on `out`.
struct Side {
    sip: SipHandle,
    metrics: Arc<MediaMetrics>,
    out: mpsc::UnboundedReceiver<BridgeEvent>,
}

impl Side {
    async fn start(
        seed: u64,
        agent: &str,
        trunk: TrunkConfig,
        rtp_ports: (u16, u16),
    ) -> Result<Side> {
        let mut cfg = EndpointConfig::new("127.0.0.1:0".parse()?, seed);
        cfg.default_agent = Some(AgentId(agent.into()));
        cfg.trunks.push(trunk);
        cfg.rtp_ports = rtp_ports;
        cfg.max_calls = 100_000;
        let (sip, events, _task) = start(cfg, listen()).await?;
        let (media, media_events) = MediaEngine::start(MediaConfig::default())?;
        let metrics = media.metrics();
        let (tx, out) = mpsc::unbounded_channel();
        tokio::spawn(bridge::run(
            events,
            media_events,
            sip.clone(),
            media,
            AgentId(agent.into()),
            tx,
        ));
        Ok(Side { sip, metrics, out })
    }
}

fn listen() -> ListenConfig {
    ListenConfig {
        bind: "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!()),
        udp: true,
        tcp: false,
    }
}

fn loopback_trunk(name: &str, address: SocketAddr) -> TrunkConfig {
    TrunkConfig {
        name: name.into(),
        address,
        transport: TransportKind::Udp,
        allow_from: vec!["127.0.0.1/32"
            .parse::<IpNet>()
            .unwrap_or_else(|_| unreachable!())],
        outbound_auth: None,
        inbound_users: vec![],
        register: None,
        domain: None,
    }
}

/// A command that runs `program` pinned to one CPU core with `taskset`
/// (unpinned, with a warning, where taskset is missing).
pub fn pinned(core: usize, program: &std::path::Path) -> Command {
    if std::path::Path::new("/usr/bin/taskset").exists() {
        let mut c = Command::new("/usr/bin/taskset");
        c.arg("-c").arg(core.to_string()).arg(program);
        c
    } else {
        eprintln!(
            "taskset not found: {} is not pinned to one core",
            program.display()
        );
        Command::new(program)
    }
}

/// Move every thread of this process off `core` (where the measured child
/// runs) onto the other cores; nothing on a one-core machine or without taskset.
pub fn pin_self_off(core: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores > 1 && std::path::Path::new("/usr/bin/taskset").exists() {
        let others: Vec<String> = (0..cores)
            .filter(|c| *c != core)
            .map(|c| c.to_string())
            .collect();
        let _ = Command::new("/usr/bin/taskset")
            .args([
                "-a",
                "-cp",
                &others.join(","),
                &std::process::id().to_string(),
            ])
            .stdout(Stdio::null())
            .status();
    }
}

/// User + system CPU time a process has used (all its threads).
pub fn cpu_time(pid: u32) -> std::io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Ok(Duration::from_millis(ticks * 10))
}

/// Raise the soft open-files limit to the hard one: each call holds two sockets.
pub fn raise_fd_limit() {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "could not raise the open-files limit");
    }
}

struct Engine {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl Engine {
    fn spawn(core: usize) -> Result<Engine> {
        let mut cmd = pinned(core, &std::env::current_exe()?);
        let mut child = cmd
            .args([
                "bench",
                "media-server",
                "--rtp-min",
                "40000",
                "--rtp-max",
                "43999",
            ])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting the engine side")?;
        let stdin = child.stdin.take().context("stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("READY ")
            .with_context(|| format!("engine side did not start: {line:?}"))?
            .parse()?;
        Ok(Engine {
            child,
            stdin,
            stdout,
            addr,
        })
    }

    fn command(&mut self, cmd: &str) -> Result<()> {
        writeln!(self.stdin, "{cmd}")?;
        self.stdin.flush()?;
        Ok(())
    }

    fn report(&mut self) -> Result<ServerReport> {
        self.command("report")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(serde_json::from_str(&line)?)
    }

    /// User + system CPU time of the engine process.
    fn cpu(&self) -> Result<Duration> {
        Ok(cpu_time(self.child.id())?)
    }

    fn rss_kb(&self) -> Result<u64> {
        Ok(rss_kb(&self.child.id().to_string())?)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Callers: one thread keeps every call's outbound queue topped up with a
/// tone and drains what comes back.
fn talkers(ports: crossbeam_channel::Receiver<MediaPort>, heard: Arc<AtomicU64>) {
    let mut tone = AudioFrame::silent(SampleRate::Hz8000, MediaTime::ZERO);
    for (i, s) in tone.samples_mut().iter_mut().enumerate() {
        *s = ((i as f64 * std::f64::consts::TAU * 440.0 / 8000.0).sin() * 8000.0) as i16;
    }
    let mut calls: Vec<MediaPort> = Vec::new();
    loop {
        loop {
            match ports.try_recv() {
                Ok(p) => calls.push(p),
                Err(crossbeam_channel::TryRecvError::Empty) => break,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
            }
        }
        calls.retain(|p| {
            let mut alive = true;
            while let Ok(ev) = p.events.try_recv() {
                if matches!(ev, PortEvent::Hangup { .. }) {
                    alive = false;
                }
            }
            while let Ok(f) = p.audio.try_recv() {
                if f.samples().iter().any(|&s| s.unsigned_abs() > 1000) {
                    heard.fetch_add(1, Ordering::Relaxed);
                }
            }
            // Keep about 3 frames queued: a steady 50 packets/s without a growing backlog.
            let cap = 8usize;
            while p.outbound_room() > cap - 3 {
                if p.send_frame(tone.clone()).is_err() {
                    alive = false;
                    break;
                }
            }
            alive
        });
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Run the harness and print its table.
pub fn media(args: MediaArgs) -> Result<()> {
    if args.calls == 0 || args.calls > 2000 {
        bail!("--calls must be 1-2000 (got {})", args.calls);
    }
    raise_fd_limit();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    pin_self_off(args.core);
    let mut engine = Engine::spawn(args.core)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.saturating_sub(1).max(1))
        .enable_all()
        .build()?;
    let rss_baseline = engine.rss_kb()?;
    let mut results = rt.block_on(run_load(&args, &mut engine, rss_baseline))?;
    results.machine = machine_with(cores);
    print_table(&results);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if results.calls_failed > 0 || results.calls_sustained < args.calls as i64 {
        bail!(
            "{} of {} calls failed or dropped",
            args.calls as i64 - results.calls_sustained,
            args.calls
        );
    }
    Ok(())
}

async fn run_load(args: &MediaArgs, engine: &mut Engine, rss_baseline: u64) -> Result<Results> {
    let side = Side::start(
        11,
        "caller",
        loopback_trunk("engine", engine.addr),
        (44000, 47999),
    )
    .await?;
    let (sip, mut out) = (side.sip, side.out);
    let heard = Arc::new(AtomicU64::new(0));
    let (port_tx, port_rx) = crossbeam_channel::unbounded();
    let talker = {
        let heard = Arc::clone(&heard);
        std::thread::Builder::new()
            .name("talkers".into())
            .spawn(move || talkers(port_rx, heard))?
    };
    // Place the calls at the configured rate.
    let mut handles = Vec::with_capacity(args.calls);
    let mut failed = 0usize;
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    let setup_start = Instant::now();
    for i in 0..args.calls {
        let due = setup_start + gap * i as u32;
        tokio::time::sleep_until(due.into()).await;
        match sip
            .originate(&format!("1555{i:07}"), "15550000000", "engine")
            .await?
        {
            Ok(h) => handles.push(h),
            Err(e) => {
                failed += 1;
                eprintln!("originate failed: {e}");
            }
        }
    }
    // Wait until every placed call has media (bounded).
    let mut up = 0usize;
    let mut ended = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while up < handles.len() {
        match tokio::time::timeout_at(deadline, out.recv()).await {
            Ok(Some(BridgeEvent::Port(p))) => {
                up += 1;
                let _ = port_tx.send(p);
            }
            Ok(Some(BridgeEvent::Sip(CallEvent::Hangup { cause, .. }))) => {
                failed += 1;
                eprintln!("call ended during setup: {cause:?}");
            }
            Ok(Some(BridgeEvent::Media(m @ MediaEvent::Ended { .. }))) => ended.push(m),
            Ok(Some(_)) => {}
            Ok(None) => bail!("bridge stopped"),
            Err(_) => break,
        }
        if up + failed >= args.calls {
            break;
        }
    }
    eprintln!(
        "{up} calls up in {:.1} s; measuring for {} s",
        setup_start.elapsed().as_secs_f64(),
        args.seconds
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    engine.command("reset")?;
    let cpu0 = engine.cpu()?;
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    let report = engine.report()?;
    let cpu = engine.cpu()?.saturating_sub(cpu0);
    let wall = t0.elapsed();
    let rss_loaded = engine.rss_kb()?;
    // Hang up and collect the callers' view of each call.
    for h in &handles {
        let _ = sip.hangup(*h).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ended.len() < up {
        match tokio::time::timeout_at(deadline, out.recv()).await {
            Ok(Some(BridgeEvent::Media(m @ MediaEvent::Ended { .. }))) => ended.push(m),
            Ok(Some(_)) => {}
            _ => break,
        }
    }
    drop(port_tx);
    let _ = talker.join();
    let (mut received, mut lost) = (0u64, 0i64);
    for m in &ended {
        if let MediaEvent::Ended { stats, .. } = m {
            received += stats.packets_received;
            lost += stats.packets_lost.max(0);
        }
    }
    let sustained = report.calls_active;
    let n = sustained.max(1) as f64;
    Ok(Results {
        machine: machine(),
        calls_requested: args.calls,
        calls_sustained: sustained,
        calls_failed: failed,
        seconds: wall.as_secs_f64(),
        engine_cpu_percent_of_core: 100.0 * cpu.as_secs_f64() / wall.as_secs_f64(),
        cpu_us_per_call_second: cpu.as_secs_f64() * 1e6 / wall.as_secs_f64() / n,
        rss_baseline_kb: rss_baseline,
        rss_loaded_kb: rss_loaded,
        rss_per_call_kb: rss_loaded.saturating_sub(rss_baseline) as f64 / n,
        caller_packets_received: received,
        caller_packets_lost: lost,
        caller_loss_percent: if received > 0 {
            100.0 * lost as f64 / (received as f64 + lost as f64)
        } else {
            0.0
        },
        engine: report,
    })
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> std::io::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_tcp_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The last `n` lines of a log file (empty if it cannot be read).
pub fn tail(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Resident memory of process `pid` (`self` for this one), in KiB.
pub fn rss_kb(pid: &str) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0))
}

/// Nearest-rank quantile of the finite values (NaN when there are none).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    s[((q * (s.len() - 1) as f64).round() as usize).min(s.len() - 1)]
}

/// CPU model and core count, for the results.
pub fn machine() -> String {
    machine_with(std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn machine_with(cores: usize) -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{model}, {cores} cores")
}

fn print_table(r: &Results) {
    let e = &r.engine;
    println!(
        "\nMedia capacity ({}; engine pinned to one core)\n",
        r.machine
    );
    println!("| metric | value |");
    println!("|---|---|");
    println!("| calls requested | {} |", r.calls_requested);
    println!("| calls sustained | {} |", r.calls_sustained);
    println!("| calls failed | {} |", r.calls_failed);
    println!("| window | {:.1} s |", r.seconds);
    println!("| frames processed | {} |", e.frames);
    println!(
        "| frame processing p50 / p99 / max | {:.1} / {:.1} / {:.1} µs |",
        e.frame_p50_us, e.frame_p99_us, e.frame_max_us
    );
    println!(
        "| tick lateness p50 / p99 | {:.0} / {:.0} µs |",
        e.lateness_p50_us, e.lateness_p99_us
    );
    println!(
        "| packet send (sendto) p50 / p99 | {:.1} / {:.1} µs |",
        e.send_p50_us, e.send_p99_us
    );
    println!("| frames later than 20 ms | {} |", e.late_frames);
    println!("| ticks skipped | {} |", e.skipped_ticks);
    println!(
        "| engine CPU | {:.1} % of one core ({:.1} µs per call-second) |",
        r.engine_cpu_percent_of_core, r.cpu_us_per_call_second
    );
    println!(
        "| engine RSS | {} kB idle, {} kB loaded, {:.1} kB per call |",
        r.rss_baseline_kb, r.rss_loaded_kb, r.rss_per_call_kb
    );
    println!(
        "| RTP in / out at the engine | {} / {} (send errors {}) |",
        e.packets_in, e.packets_out, e.send_errors
    );
    println!(
        "| callers' packets received / lost | {} / {} ({:.3} %) |",
        r.caller_packets_received, r.caller_packets_lost, r.caller_loss_percent
    );
}
