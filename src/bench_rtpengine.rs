//! `vocelio bench rtpengine`: the same RTP load through rtpengine, the
//! media relay most SIP platforms put in front of their media servers, in
//! the same run as our own `vocelio bench media`.
//!
//! rtpengine (Debian's `rtpengine-daemon`) runs as a child process pinned
//! to one core, userspace forwarding only, configured from
//! `benches/peers/rtpengine.conf`. This process drives it like a SIP proxy
//! would, over its ng control protocol (bencoded dictionaries over UDP):
//! for each of N calls an `offer` with leg A's SDP and an `answer` with leg
//! B's, both legs being UDP sockets of ours on 127.0.0.1. Then, pinned to
//! the other cores, one thread paces every call's RTP: G.711 mu-law, 160
//! bytes every 20 ms, with correct sequence numbers, timestamps and SSRC,
//! the calls spread evenly across each 20 ms tick. Over a window after
//! every call is up it measures rtpengine's CPU (all its threads) and
//! resident memory, and at the receiving legs every packet's loss and
//! lateness.
//!
//! # Like for like
//!
//! In `bench media` the engine, per call, receives 50 packets/s from the
//! caller and sends 50 packets/s back (the echo agent). Here, by default,
//! leg A sends 50 packets/s and rtpengine relays them to leg B: per call it
//! also receives 50 and sends 50 packets/s, the same packet load, the same
//! system calls. `--bidirectional` makes leg B send 50/s back as well, as
//! in a real conversation through a relay: twice the packets of ours.
//!
//! The work is not the same: ours decodes and re-encodes G.711, runs a
//! jitter buffer and an agent per call, while rtpengine only relays bytes.
//! The ratio says what that costs, not which program is better at relaying.
//!
//! A packet is *late* when it reaches its leg more than 20 ms after it was
//! sent, a whole packet time behind where it should follow the previous one
//! (ours counts ticks that ran more than 20 ms late). Each payload carries
//! its send time, so our own sender's lateness is not in that figure; it is
//! reported beside it (`send_lag_p99_us`), and a sender more than 60 ms
//! behind skips packets rather than sending a burst (`send_skipped`).

use crate::bench::{cpu_time, machine, pin_self_off, pinned, raise_fd_limit, rss_kb};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vocelio_engine::media::metrics::Histogram;
use vocelio_engine::sdp::{accept_answer, create_answer, create_offer, Codec, LocalMedia};
use vocelio_engine::sdp::{Negotiated, SessionDescription};

mod bencode;
mod load;
mod ng;

use bencode::Value;
use load::{Grid, Stream, Tally};

/// rtpengine's configuration, in the repository.
const DEFAULT_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/rtpengine.conf");

/// Seconds of media before the measured window (every call is up by then).
const WARMUP_SLOTS: u64 = 50;
/// Slots (20 ms each) sent after the window so its last packets can land.
const GRACE_SLOTS: u64 = 10;
/// How long an ng command may take before it is sent again (rtpengine
/// answers a repeated cookie from its cache, so a retry is safe).
const NG_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per ng command.
const NG_ATTEMPTS: u32 = 3;
/// How long the daemon may take to answer its first `ping`.
const STARTUP_DEADLINE: Duration = Duration::from_secs(15);

/// Arguments of `vocelio bench rtpengine`.
#[derive(Debug, clap::Args)]
pub struct RtpengineArgs {
    /// Concurrent calls (at most 2000, as `bench media`).
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,
    /// Seconds to measure once every call is up.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// CPU core rtpengine (and then our engine) is pinned to; the load runs on the others.
    #[arg(long, default_value_t = 0)]
    pub core: usize,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Leg B also sends 50 packets/s back: twice the packets of `bench media` per call.
    #[arg(long)]
    pub bidirectional: bool,
    /// Skip the same-run `vocelio bench media` at the same calls and seconds.
    #[arg(long)]
    pub no_compare: bool,
    /// rtpengine's config file.
    #[arg(long, default_value = DEFAULT_CONF)]
    pub peer_config: PathBuf,
}

/// rtpengine's side of the results.
#[derive(Debug, Serialize)]
struct PeerReport {
    version: String,
    calls: usize,
    setup_seconds: f64,
    window_seconds: f64,
    cpu_percent_of_core: f64,
    cpu_us_per_call_second: f64,
    rss_baseline_kb: u64,
    rss_loaded_kb: u64,
    rss_per_call_kb: f64,
    packets_sent: u64,
    packets_received: u64,
    loss_percent: f64,
    late_packets: u64,
    transit_p50_us: f64,
    transit_p99_us: f64,
    transit_max_us: f64,
    /// How late our own sender ran (99th percentile), to tell its lateness from the relay's.
    send_lag_p99_us: f64,
    /// Packets our sender skipped, being more than 60 ms behind (a busy box).
    send_skipped: u64,
    send_errors: u64,
    stray_packets: u64,
}

/// The whole run.
#[derive(Debug, Serialize)]
struct Results {
    machine: String,
    calls: usize,
    seconds: u64,
    core: usize,
    bidirectional: bool,
    rtpengine: PeerReport,
    /// `vocelio bench media`'s JSON at the same calls and seconds.
    vocelio: Option<serde_json::Value>,
    cpu_ratio_vocelio_to_rtpengine: Option<f64>,
    rss_ratio_vocelio_to_rtpengine: Option<f64>,
    note: &'static str,
}

const NOTE: &str = "vocelio decodes and re-encodes G.711, runs a jitter buffer and an \
                    agent per call; rtpengine only relays the packets";

/// Run rtpengine under the load, then ours, and print the comparison.
pub fn rtpengine(args: RtpengineArgs) -> Result<()> {
    if args.calls == 0 || args.calls > 2000 {
        bail!("--calls must be 1-2000 (got {})", args.calls);
    }
    if args.seconds == 0 || args.seconds > 3600 {
        bail!("--seconds must be 1-3600 (got {})", args.seconds);
    }
    raise_fd_limit();
    // Before pinning: afterwards this process sees one core fewer.
    let machine = machine();
    pin_self_off(args.core);
    let program = find_rtpengine()?;
    let peer = run_peer(&args, &program)?;
    let (vocelio, ours_failed) = if args.no_compare {
        (None, None)
    } else {
        run_ours(&args)?
    };
    let ours = |key: &str| {
        vocelio
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(serde_json::Value::as_f64)
    };
    let ratio = |a: Option<f64>, b: f64| a.map(|a| a / b).filter(|r| r.is_finite());
    let results = Results {
        machine,
        calls: args.calls,
        seconds: args.seconds,
        core: args.core,
        bidirectional: args.bidirectional,
        cpu_ratio_vocelio_to_rtpengine: ratio(
            ours("cpu_us_per_call_second"),
            peer.cpu_us_per_call_second,
        ),
        rss_ratio_vocelio_to_rtpengine: ratio(ours("rss_per_call_kb"), peer.rss_per_call_kb),
        rtpengine: peer,
        vocelio,
        note: NOTE,
    };
    print_table(&results);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(why) = ours_failed {
        bail!("vocelio bench media failed: {why}");
    }
    Ok(())
}

/// `rtpengine` on the PATH (Debian installs it as /usr/bin/rtpengine).
fn find_rtpengine() -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("rtpengine"))
        .find(|p| p.is_file())
        .context(
            "rtpengine not found: run scripts/setup.sh (it installs Debian's rtpengine-daemon)",
        )
}

/// Start rtpengine, set up the calls, run the load, tear it all down.
fn run_peer(args: &RtpengineArgs, program: &Path) -> Result<PeerReport> {
    let version = Command::new(program)
        .arg("--version")
        .output()
        .map(|o| {
            let text = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            text.trim()
                .trim_start_matches("Version:")
                .trim()
                .to_string()
        })
        .unwrap_or_default();
    let mut daemon = Daemon::start(program, args.core, &args.peer_config)?;
    let pid = daemon.child.id().to_string();
    let rss_baseline = rss_kb(&pid)?;
    let setup_start = Instant::now();
    let calls = match setup_calls(&mut daemon, args.calls) {
        Ok(c) => c,
        Err(e) => bail!(
            "setting up calls through rtpengine: {e:#}\n{}",
            daemon.tail()
        ),
    };
    let setup_seconds = setup_start.elapsed().as_secs_f64();
    eprintln!(
        "rtpengine {version}: {} calls up in {setup_seconds:.1} s; measuring for {} s",
        calls.len(),
        args.seconds
    );
    let measured = run_load(&calls, args, daemon.child.id())?;
    let mut refused = 0usize;
    for c in &calls {
        let body = ng::command(
            "delete",
            [
                ("call-id", Value::str(&c.id)),
                ("from-tag", Value::str("a")),
            ],
        );
        if daemon.ng(&body).is_err() {
            refused += 1;
        }
    }
    if refused > 0 {
        eprintln!(
            "rtpengine did not delete {refused} of {} calls",
            calls.len()
        );
    }
    daemon.stop();
    let n = calls.len() as f64;
    let wall = measured.wall.as_secs_f64();
    let t = &measured.tally;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    Ok(PeerReport {
        version,
        calls: calls.len(),
        setup_seconds,
        window_seconds: wall,
        cpu_percent_of_core: 100.0 * measured.cpu.as_secs_f64() / wall,
        cpu_us_per_call_second: us(measured.cpu) / wall / n,
        rss_baseline_kb: rss_baseline,
        rss_loaded_kb: measured.rss_kb,
        rss_per_call_kb: measured.rss_kb.saturating_sub(rss_baseline) as f64 / n,
        packets_sent: t.sent,
        packets_received: t.received,
        loss_percent: t.loss_percent(),
        late_packets: t.late,
        transit_p50_us: us(t.transit.quantile(0.5)),
        transit_p99_us: us(t.transit.quantile(0.99)),
        transit_max_us: us(t.transit.max()),
        send_lag_p99_us: us(measured.send_lag.quantile(0.99)),
        send_skipped: t.skipped,
        send_errors: measured.send_errors,
        stray_packets: t.stray,
    })
}

/// rtpengine running in the foreground, pinned to one core.
struct Daemon {
    child: Child,
    /// The last lines it wrote to stderr, for error messages.
    tail: Arc<Mutex<VecDeque<String>>>,
    ng: NgClient,
}

impl Daemon {
    /// Start it with `conf` and an ng port picked now; wait until it answers `ping`.
    fn start(program: &Path, core: usize, conf: &Path) -> Result<Daemon> {
        if !conf.is_file() {
            bail!("rtpengine config {} not found", conf.display());
        }
        let port = crate::bench::free_udp_port()?;
        let ng_addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let mut child = pinned(core, program)
            .arg(format!("--config-file={}", conf.display()))
            .arg(format!("--listen-ng={ng_addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&tail);
            std::thread::Builder::new()
                .name("rtpengine-stderr".into())
                .spawn(move || keep_tail(stderr, &tail))?;
        }
        let mut daemon = Daemon {
            child,
            tail,
            ng: NgClient::new(ng_addr)?,
        };
        let started = Instant::now();
        loop {
            if let Some(status) = daemon.child.try_wait()? {
                // Let the stderr thread read the last lines.
                std::thread::sleep(Duration::from_millis(100));
                bail!("rtpengine exited at startup ({status}):\n{}", daemon.tail());
            }
            match daemon
                .ng
                .call(&ng::command("ping", []), Duration::from_millis(200), 1)
            {
                Ok(_) => return Ok(daemon),
                Err(e) if started.elapsed() > STARTUP_DEADLINE => {
                    bail!(
                        "rtpengine did not answer ping on {ng_addr} within {} s ({e}):\n{}",
                        STARTUP_DEADLINE.as_secs(),
                        daemon.tail()
                    );
                }
                Err(_) => {}
            }
        }
    }

    /// Send one ng command; the reply, or why not (with rtpengine's `error-reason`).
    fn ng(&mut self, body: &Value) -> Result<Value> {
        self.ng.call(body, NG_TIMEOUT, NG_ATTEMPTS)
    }

    fn tail(&self) -> String {
        let tail = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        let lines: Vec<String> = tail.into_iter().collect();
        format!("rtpengine's stderr (last lines):\n{}", lines.join("\n"))
    }

    /// SIGTERM, then SIGKILL if it has not exited within 3 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn keep_tail(stderr: std::process::ChildStderr, tail: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { return };
        if let Ok(mut t) = tail.lock() {
            if t.len() == 40 {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

/// A blocking ng client: one request at a time, matched by cookie.
struct NgClient {
    socket: UdpSocket,
    prefix: String,
    next: u64,
    buf: Vec<u8>,
}

impl NgClient {
    fn new(addr: SocketAddr) -> Result<NgClient> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.connect(addr)?;
        Ok(NgClient {
            socket,
            prefix: format!("v{}", std::process::id()),
            next: 0,
            buf: vec![0; 65_536],
        })
    }

    fn call(&mut self, body: &Value, timeout: Duration, attempts: u32) -> Result<Value> {
        self.next += 1;
        let cookie = format!("{}_{}", self.prefix, self.next);
        let request = ng::request(&cookie, body);
        let command = body
            .get("command")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        for _ in 0..attempts {
            self.socket.send(&request)?;
            let deadline = Instant::now() + timeout;
            // Bounded: every iteration either returns, or waits for a datagram
            // until the deadline.
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                self.socket.set_read_timeout(Some(left))?;
                let n = match self.socket.recv(&mut self.buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    // ICMP port unreachable: nothing listens (yet).
                    Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                        std::thread::sleep(left.min(Duration::from_millis(50)));
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                let (got, reply) = ng::parse_reply(&self.buf[..n])
                    .with_context(|| format!("rtpengine's reply to {command}"))?;
                if got == cookie.as_bytes() {
                    return ng::check(&command, reply).map_err(Into::into);
                }
                // A late reply to an earlier attempt: keep waiting for ours.
            }
        }
        bail!(
            "rtpengine did not reply to {command} within {} ms ({attempts} attempts)",
            timeout.as_millis()
        )
    }
}

/// One call through rtpengine: our two legs and where each sends.
struct CallSetup {
    id: String,
    /// Leg A's socket (the caller's).
    a: UdpSocket,
    /// Leg B's socket (the callee's).
    b: UdpSocket,
    /// rtpengine's port facing A: where A sends.
    a_to: SocketAddr,
    /// rtpengine's port facing B: where B sends.
    b_to: SocketAddr,
}

fn leg(port: u16, session_id: u64) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
        rtp_port: port,
        codecs: vec![Codec::Pcmu],
        telephone_event: false,
        ptime: 20,
        session_id,
        session_version: 1,
        username: "-".into(),
    }
}

/// `offer` with leg A's SDP and `answer` with leg B's, for every call; our
/// own offer/answer code reads rtpengine's SDP for the ports to send to.
fn setup_calls(daemon: &mut Daemon, n: usize) -> Result<Vec<CallSetup>> {
    let mut calls = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("vocelio-bench-{}-{i}", std::process::id());
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let b = UdpSocket::bind("127.0.0.1:0")?;
        let offer = create_offer(&leg(a.local_addr()?.port(), 2 * i as u64 + 1));
        let reply = daemon
            .ng(&ng::command(
                "offer",
                [
                    ("call-id", Value::str(&id)),
                    ("from-tag", Value::str("a")),
                    ("sdp", Value::Bytes(offer.to_bytes())),
                    ("ICE", Value::str("remove")),
                    ("replace", Value::list(["origin", "session-connection"])),
                ],
            ))
            .with_context(|| format!("call {i} of {n}"))?;
        let offer_to_b = reply_sdp(&reply, "offer")?;
        let (answer, at_b) =
            create_answer(&offer_to_b, &leg(b.local_addr()?.port(), 2 * i as u64 + 2))
                .context("answering rtpengine's offer to leg B")?;
        let reply = daemon
            .ng(&ng::command(
                "answer",
                [
                    ("call-id", Value::str(&id)),
                    ("from-tag", Value::str("a")),
                    ("to-tag", Value::str("b")),
                    ("sdp", Value::Bytes(answer.to_bytes())),
                    ("ICE", Value::str("remove")),
                    ("replace", Value::list(["origin", "session-connection"])),
                ],
            ))
            .with_context(|| format!("call {i} of {n}"))?;
        let answer_to_a = reply_sdp(&reply, "answer")?;
        let at_a =
            accept_answer(&offer, &answer_to_a).context("reading rtpengine's answer to leg A")?;
        check_pcmu(&at_a)?;
        check_pcmu(&at_b)?;
        calls.push(CallSetup {
            id,
            a,
            b,
            a_to: at_a.remote_rtp,
            b_to: at_b.remote_rtp,
        });
    }
    Ok(calls)
}

fn reply_sdp(reply: &Value, command: &str) -> Result<SessionDescription> {
    let sdp = reply
        .get("sdp")
        .and_then(Value::as_bytes)
        .with_context(|| format!("rtpengine's reply to {command} has no sdp"))?;
    SessionDescription::parse(sdp).with_context(|| {
        format!(
            "rtpengine's SDP in its reply to {command}: {}",
            String::from_utf8_lossy(sdp)
        )
    })
}

fn check_pcmu(n: &Negotiated) -> Result<()> {
    if n.codec != Codec::Pcmu || n.ptime != 20 || !n.remote_rtp.ip().is_loopback() {
        bail!("rtpengine negotiated {n:?}, expected PCMU, 20 ms, on 127.0.0.1");
    }
    Ok(())
}

/// What the load saw over the window.
struct Measured {
    wall: Duration,
    cpu: Duration,
    rss_kb: u64,
    tally: Tally,
    send_lag: Histogram,
    send_errors: u64,
}

/// Pace every stream on its 20 ms grid from one thread, receive on every
/// leg through epoll, and sample rtpengine's CPU and memory at the edges of
/// the window. Bounded in time: it ends GRACE_SLOTS after the window.
fn run_load(calls: &[CallSetup], args: &RtpengineArgs, pid: u32) -> Result<Measured> {
    use mio::net::UdpSocket as MioSocket;
    use mio::{Events, Interest, Poll, Token};

    // Sockets: call i's leg A is 2i, leg B 2i + 1.
    let mut sockets = Vec::with_capacity(2 * calls.len());
    for c in calls {
        for s in [&c.a, &c.b] {
            let s = s.try_clone()?;
            s.set_nonblocking(true)?;
            sockets.push(MioSocket::from_std(s));
        }
    }
    // Streams in the order of their phase on the grid.
    let mut streams = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        streams.push((2 * i, 2 * i + 1, c.a_to));
        if args.bidirectional {
            streams.push((2 * i + 1, 2 * i, c.b_to));
        }
    }
    let streams: Vec<(Stream, usize, usize, SocketAddr)> = streams
        .into_iter()
        .enumerate()
        .map(|(j, (tx, rx, to))| (Stream::new(j), tx, rx, to))
        .collect();
    let mut stream_at = vec![None; sockets.len()];
    let mut poll = Poll::new()?;
    for (j, (_, _, rx, _)) in streams.iter().enumerate() {
        stream_at[*rx] = Some(j);
        poll.registry()
            .register(&mut sockets[*rx], Token(*rx), Interest::READABLE)?;
    }
    let mut events = Events::with_capacity(1024);

    let payload = tone();
    let mut packet = [0u8; 512];
    let mut incoming = [0u8; 2048];
    let window = WARMUP_SLOTS..WARMUP_SLOTS + 50 * args.seconds;
    let mut tally = Tally::new(window.clone());
    let send_lag = Histogram::default();
    let mut send_errors = 0u64;

    let grid = Grid::new(Instant::now() + Duration::from_millis(20), streams.len());
    let (t0, t1) = (grid.due(0, window.start), grid.due(0, window.end));
    let stop = grid.due(0, window.end + GRACE_SLOTS);
    let mut start: Option<(Instant, Duration)> = None;
    let mut end: Option<(Instant, Duration, u64)> = None;
    let (mut slot, mut next) = (0u64, 0usize);
    loop {
        let now = Instant::now();
        if start.is_none() && now >= t0 {
            start = Some((now, cpu_time(pid)?));
        }
        if end.is_none() && now >= t1 {
            end = Some((now, cpu_time(pid)?, rss_kb(&pid.to_string())?));
        }
        if now >= stop {
            break;
        }
        // Send everything that is due, in grid order; skip what is hopelessly late.
        while grid.due(next, slot) <= now {
            let (stream, tx, _, to) = &streams[next];
            let lag = now.saturating_duration_since(grid.due(next, slot));
            if lag > load::MAX_BEHIND {
                tally.on_skipped(slot);
            } else {
                let sent = grid.since_origin(Instant::now());
                let len = stream.write(slot, sent, &payload, &mut packet)?;
                match sockets[*tx].send_to(&packet[..len], *to) {
                    Ok(_) => tally.on_sent(slot),
                    Err(_) => send_errors += 1,
                }
                send_lag.record(lag);
            }
            next += 1;
            if next == streams.len() {
                next = 0;
                slot += 1;
            }
        }
        let wake = [grid.due(next, slot), t0, t1, stop]
            .into_iter()
            .filter(|t| *t > now)
            .min()
            .unwrap_or(now);
        poll.poll(
            &mut events,
            Some(wake.saturating_duration_since(Instant::now())),
        )?;
        for ev in &events {
            let s = ev.token().0;
            let Some(j) = stream_at.get(s).copied().flatten() else {
                continue;
            };
            // Drain the socket (edge-triggered); bounded by what has arrived.
            loop {
                match sockets[s].recv_from(&mut incoming) {
                    Ok((n, _)) => {
                        let arrived = grid.since_origin(Instant::now());
                        match streams[j].0.read(&incoming[..n]) {
                            Some((k, sent)) => tally.on_received(k, arrived.saturating_sub(sent)),
                            None => tally.stray += 1,
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // ICMP errors queued on the socket: count and go on.
                    Err(_) => tally.stray += 1,
                }
            }
        }
    }
    let (Some((s0, cpu0)), Some((s1, cpu1, rss))) = (start, end) else {
        bail!("the load ended before its window");
    };
    Ok(Measured {
        wall: s1 - s0,
        cpu: cpu1.saturating_sub(cpu0),
        rss_kb: rss,
        tally,
        send_lag,
        send_errors,
    })
}

/// 20 ms of a 440 Hz tone in mu-law (rtpengine does not look at it; the
/// bytes are what a caller would send).
fn tone() -> [u8; load::PAYLOAD] {
    let mut pcm = [0i16; load::PAYLOAD];
    for (i, s) in pcm.iter_mut().enumerate() {
        *s = ((i as f64 * std::f64::consts::TAU * 440.0 / 8000.0).sin() * 8000.0) as i16;
    }
    let mut out = [0xFFu8; load::PAYLOAD];
    // Same lengths: encoding cannot fail.
    let _ = vocelio_codecs::g711::Law::Mu.encode(&pcm, &mut out);
    out
}

/// Ours at the same calls and seconds: `vocelio bench media` as a child,
/// its JSON read back. The error is its failure, reported after the table.
fn run_ours(args: &RtpengineArgs) -> Result<(Option<serde_json::Value>, Option<String>)> {
    let json =
        std::env::temp_dir().join(format!("vocelio-bench-media-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&json);
    eprintln!(
        "vocelio bench media --calls {} --seconds {} --core {}",
        args.calls, args.seconds, args.core
    );
    let out = Command::new(std::env::current_exe()?)
        .args(["bench", "media", "--calls", &args.calls.to_string()])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--core", &args.core.to_string()])
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("starting vocelio bench media")?;
    // It writes its JSON before it fails on dropped calls: keep what it measured.
    let value = std::fs::read_to_string(&json)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let _ = std::fs::remove_file(&json);
    let failed = (!out.status.success()).then(|| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        format!("{} (its output is above)\n{stdout}", out.status)
    });
    Ok((value, failed))
}

fn print_table(r: &Results) {
    let p = &r.rtpengine;
    let v = r.vocelio.as_ref();
    let num = |key: &str| {
        v.and_then(|v| v.get(key))
            .and_then(serde_json::Value::as_f64)
    };
    let engine = |key: &str| {
        v.and_then(|v| v.get("engine"))
            .and_then(|e| e.get(key))
            .and_then(serde_json::Value::as_f64)
    };
    let show = |x: Option<f64>, unit: &str, digits: usize| match x {
        Some(x) => format!("{x:.digits$}{unit}"),
        None => "-".into(),
    };
    let per_call = if r.bidirectional {
        "100 / 100 (both legs talk)"
    } else {
        "50 / 50"
    };
    println!(
        "\nMedia relay: rtpengine {} and vocelio at {} calls ({}; each in turn pinned to core {})\n",
        p.version, r.calls, r.machine, r.core
    );
    println!("| metric | rtpengine (relay only) | vocelio (G.711 + echo agent) |");
    println!("|---|---:|---:|");
    println!(
        "| calls held | {} | {} |",
        p.calls,
        show(num("calls_sustained"), "", 0)
    );
    println!(
        "| packets in / out per call-second at the box | {per_call} | {} |",
        if v.is_some() { "50 / 50" } else { "-" }
    );
    println!(
        "| CPU | {:.1} % of one core | {} |",
        p.cpu_percent_of_core,
        show(num("engine_cpu_percent_of_core"), " % of one core", 1)
    );
    println!(
        "| CPU per call-second | {:.1} µs | {} |",
        p.cpu_us_per_call_second,
        show(num("cpu_us_per_call_second"), " µs", 1)
    );
    println!(
        "| RSS per call | {:.1} kB | {} |",
        p.rss_per_call_kb,
        show(num("rss_per_call_kb"), " kB", 1)
    );
    println!(
        "| loss at the receiving leg | {:.3} % ({} of {}) | {} |",
        p.loss_percent,
        p.packets_sent.saturating_sub(p.packets_received),
        p.packets_sent,
        show(num("caller_loss_percent"), " %", 3)
    );
    println!(
        "| late (> 20 ms) | {} packets (sent to received) | {} |",
        p.late_packets,
        show(engine("late_frames"), " frames (tick lateness)", 0)
    );
    println!(
        "| transit p50 / p99 / max | {:.0} / {:.0} / {:.0} µs | - |",
        p.transit_p50_us, p.transit_p99_us, p.transit_max_us
    );
    println!(
        "| load's own send lag p99 / packets skipped | {:.0} µs / {} | - |",
        p.send_lag_p99_us, p.send_skipped
    );
    match r.cpu_ratio_vocelio_to_rtpengine {
        Some(x) => println!("\nCPU per call, vocelio / rtpengine: {x:.2}"),
        None => println!("\nCPU per call, vocelio / rtpengine: - (not compared)"),
    }
    if let Some(x) = r.rss_ratio_vocelio_to_rtpengine {
        println!("RSS per call, vocelio / rtpengine: {x:.1}");
    }
    println!("Note: {}.", r.note);
    if p.send_skipped > 0 || p.send_lag_p99_us > 10_000.0 {
        println!(
            "Warning: our load generator itself ran late (a busy box): rtpengine's loss and \
             lateness here are not its own alone."
        );
    }
    if r.bidirectional {
        println!("Note: --bidirectional gives rtpengine twice vocelio's packets per call.");
    }
}
