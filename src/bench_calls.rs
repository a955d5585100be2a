//! `vocelio bench calls`: simulated callers against `vocelio serve`,
//! timed on the wire.
//!
//! The engine is the product as a user runs it: `vocelio serve` in a child
//! process, with its default models and agents, on loopback ports of its
//! own and a fresh database. Each simulated caller places a real call, either
//! a SIP INVITE from our endpoint followed by raw RTP from a plain UDP
//! socket, or a Twilio Media Streams WebSocket. The caller then:
//!
//! - waits for the greeting;
//! - speaks fixture utterances in real time (one 20 ms packet per tick),
//!   with natural pauses of 0.4-1.2 s after each reply;
//! - listens to the replies;
//! - on every `--interrupt-every`-th turn, talks over the reply.
//!
//! Times are taken where the packets are:
//!
//! - **voice-to-voice**: from the moment the caller's last voiced packet left
//!   its socket to the arrival of the agent's first voiced packet;
//! - **barge-in stop**: from the caller's first voiced packet of the
//!   interruption to the end of the agent's audio. On RTP that is the last
//!   voiced packet plus its 20 ms. Over Twilio it is the `clear` message,
//!   because a real Twilio drops whatever audio it still buffers then.
//!
//! The engine's own per-turn figures (endpointing, STT, brain, TTS first
//! audio) come from its control API afterwards (`/v1/calls/{id}`). CPU and
//! memory come from `/proc`, late media ticks from `/metrics`.
//!
//! `--calls 1,2,4,...` is a ramp. Each step holds that many concurrent
//! calls. The ramp stops after the first step that loses calls or replies,
//! or whose voice-to-voice p95 passes both `--p95-limit-ms` and 1.5 times
//! the first step's (so that capacity is still found when a single call
//! already misses the limit).

use crate::bench::{cpu_time, free_tcp_port, free_udp_port, machine, quantile, rss_kb, tail};
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use vocelio_codecs::g711::Law;
use vocelio_engine::endpoint::driver::{start, ListenConfig, SipHandle};
use vocelio_engine::endpoint::{CallEvent, CallHandle, EndpointConfig, IpNet, TrunkConfig};
use vocelio_engine::rtp::packet::{self as rtp, PayloadType, RtpHeader, Ssrc};
use vocelio_engine::sdp::Codec;
use vocelio_engine::sip::transaction::TransportKind;

/// Arguments of `vocelio bench calls`.
#[derive(Debug, clap::Args)]
pub struct CallsArgs {
    /// Concurrent calls per step of the ramp (e.g. `1,4,8,16,24`).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub calls: Vec<usize>,
    /// Caller turns per call (0: every fixture once).
    #[arg(long, default_value_t = 4)]
    pub turns: usize,
    /// Talk over every k-th reply (0: never).
    #[arg(long, default_value_t = 3)]
    pub interrupt_every: usize,
    /// How the callers reach the engine.
    #[arg(long, value_enum, default_value_t = Transport::Sip)]
    pub transport: Transport,
    /// Fixture ids the callers say (default: every clip in the manifest but
    /// the interruption and the two-utterance clip).
    #[arg(long, value_delimiter = ',')]
    pub fixtures: Vec<String>,
    /// The fixtures folder.
    #[arg(long, default_value = "fixtures/audio")]
    pub dir: PathBuf,
    /// The agent the callers reach.
    #[arg(long, default_value = "bench_desk")]
    pub agent: String,
    /// Stop the ramp after a step whose voice-to-voice p95 exceeds this.
    #[arg(long, default_value_t = 700.0)]
    pub p95_limit_ms: f64,
    /// Seconds over which a step's calls are started.
    #[arg(long, default_value_t = 2.0)]
    pub spread_s: f64,
    /// The engine binary (default: this one).
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// The engine's configuration file (the harness sets addresses, ports
    /// and the data folder over it); the default defines `bench_desk`.
    #[arg(long, default_value = "benches/agents/bench.toml")]
    pub config: PathBuf,
    /// Seed of the pauses and of each caller's first fixture.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Also write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// How simulated callers reach the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// SIP over UDP with G.711 mu-law RTP.
    Sip,
    /// Twilio Media Streams over a WebSocket.
    Twilio,
}

const FRAME: usize = 160;
const SILENCE: [u8; FRAME] = [0xFF; FRAME];
/// RMS (of 16-bit PCM) above which a packet counts as voiced: about -40 dBFS.
const VOICED_RMS: f64 = 300.0;
/// Silence after the agent's last voiced packet that ends the greeting or a reply.
const REPLY_OVER: Duration = Duration::from_millis(1000);
const GREETING_TIMEOUT: Duration = Duration::from_secs(20);
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// How far into a reply the caller starts talking over it.
const INTERRUPT_AFTER: Duration = Duration::from_millis(700);
const SIP_RTP_PORTS: (u16, u16) = (52000, 53999);

/// One utterance as packets.
struct Clip {
    id: String,
    frames: Vec<[u8; FRAME]>,
    voiced: Vec<bool>,
}

fn rms(ulaw: &[u8]) -> f64 {
    let mut pcm = [0i16; FRAME];
    let n = ulaw.len().min(FRAME);
    if Law::Mu.decode(&ulaw[..n], &mut pcm[..n]).is_err() || n == 0 {
        return 0.0;
    }
    (pcm[..n].iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / n as f64).sqrt()
}

fn load_clip(dir: &Path, id: &str) -> Result<Clip> {
    let p = dir.join(format!("{id}.8k.ulaw"));
    let bytes = std::fs::read(&p).with_context(|| format!("reading fixture {}", p.display()))?;
    let mut frames = Vec::with_capacity(bytes.len() / FRAME + 1);
    for chunk in bytes.chunks(FRAME) {
        let mut f = SILENCE;
        f[..chunk.len()].copy_from_slice(chunk);
        frames.push(f);
    }
    let voiced: Vec<bool> = frames.iter().map(|f| rms(f) > VOICED_RMS).collect();
    if !voiced.iter().any(|v| *v) {
        bail!("fixture {id} has no voiced packet");
    }
    Ok(Clip {
        id: id.into(),
        frames,
        voiced,
    })
}

struct Clips {
    questions: Vec<Clip>,
    interrupt: Clip,
}

fn load_clips(args: &CallsArgs) -> Result<Clips> {
    let manifest = args.dir.join("manifest.json");
    let m: Value = serde_json::from_str(
        &std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?,
    )
    .with_context(|| format!("parsing {}", manifest.display()))?;
    let ids: Vec<String> = m["clips"]
        .as_array()
        .context("manifest has no clips")?
        .iter()
        .filter_map(|c| c["id"].as_str().map(String::from))
        .collect();
    let questions: Vec<String> = if args.fixtures.is_empty() {
        ids.iter()
            .filter(|id| !id.contains("interrupt") && *id != "two_utterances")
            .cloned()
            .collect()
    } else {
        for f in &args.fixtures {
            if !ids.contains(f) {
                bail!(
                    "unknown fixture {f:?} (the manifest has {})",
                    ids.join(", ")
                );
            }
        }
        args.fixtures.clone()
    };
    let interrupt = ids
        .iter()
        .find(|id| id.as_str() == "piper_interrupt")
        .or_else(|| ids.iter().find(|id| id.contains("interrupt")))
        .context("the manifest has no interruption clip")?;
    Ok(Clips {
        questions: questions
            .iter()
            .map(|id| load_clip(&args.dir, id))
            .collect::<Result<_>>()?,
        interrupt: load_clip(&args.dir, interrupt)?,
    })
}

// ------------------------------------------------------------------ engine

/// `vocelio serve` in a child process.
struct Server {
    child: Child,
    dir: PathBuf,
    http: SocketAddr,
    sip: SocketAddr,
    key: String,
}

impl Server {
    fn start(args: &CallsArgs) -> Result<Server> {
        let exe = match &args.bin {
            Some(b) => b.clone(),
            None => std::env::current_exe()?,
        };
        let dir = std::env::temp_dir().join(format!("vocelio-bench-calls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let http: SocketAddr = format!("127.0.0.1:{}", free_tcp_port()?).parse()?;
        let sip: SocketAddr = format!("127.0.0.1:{}", free_udp_port()?).parse()?;
        let env = |c: &mut Command| {
            c.env("VOCELIO__HTTP__LISTEN", http.to_string())
                .env("VOCELIO__SIP__LISTEN", sip.to_string())
                .env("VOCELIO__SIP__TCP", "false")
                .env("VOCELIO__STORAGE__DATA_DIR", dir.join("data"))
                .env("VOCELIO__RTP__PORT_MIN", "30000")
                .env("VOCELIO__RTP__PORT_MAX", "31999")
                .env("VOCELIO__TWILIO__ENABLED", "true")
                .env("VOCELIO__TWILIO__VALIDATE_SIGNATURES", "false")
                .env("VOCELIO__TWILIO__PUBLIC_HOST", http.to_string())
                .env_remove("RUST_LOG");
            c.env("VOCELIO__SIP__DEFAULT_AGENT", &args.agent)
                .env("VOCELIO__TWILIO__DEFAULT_AGENT", &args.agent)
                .arg("--config")
                .arg(&args.config);
        };
        let mut keys = Command::new(&exe);
        env(&mut keys);
        let out = keys
            .args(["keys", "create", "--scope", "read", "--name", "bench"])
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running {} keys create", exe.display()))?;
        if !out.status.success() {
            bail!(
                "creating an API key failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let log = std::fs::File::create(dir.join("serve.log"))?;
        let mut cmd = Command::new(&exe);
        env(&mut cmd);
        let child = cmd
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        Ok(Server {
            child,
            dir,
            http,
            sip,
            key,
        })
    }

    fn log_tail(&self) -> String {
        tail(&self.dir.join("serve.log"), 20)
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(180);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "vocelio serve exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(r) = http.get(format!("http://{}/ready", self.http)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bail!(
            "vocelio serve was not ready after 180 s:\n{}",
            self.log_tail()
        )
    }

    async fn get(&self, http: &reqwest::Client, path: &str) -> Result<Value> {
        let r = http
            .get(format!("http://{}{path}", self.http))
            .bearer_auth(&self.key)
            .send()
            .await?;
        let status = r.status();
        let body = r.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// `vocelio_media_late_frames_total` from `/metrics`.
    async fn late_frames(&self, http: &reqwest::Client) -> Result<u64> {
        let text = http
            .get(format!("http://{}/metrics", self.http))
            .bearer_auth(&self.key)
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("vocelio_media_late_frames_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(0, |v| v as u64))
    }

    /// Per-turn figures of the calls not in `seen`, which it then holds.
    async fn new_turns(
        &self,
        http: &reqwest::Client,
        seen: &mut HashSet<String>,
    ) -> Result<Vec<Value>> {
        let mut ids = Vec::new();
        let mut offset = 0;
        for _ in 0..1000 {
            let page = self
                .get(http, &format!("/v1/calls?limit=100&offset={offset}"))
                .await?;
            for c in page["items"].as_array().into_iter().flatten() {
                if let Some(id) = c["id"].as_str() {
                    if seen.insert(id.to_string()) {
                        ids.push(id.to_string());
                    }
                }
            }
            match page["next_offset"].as_i64() {
                Some(n) => offset = n,
                None => break,
            }
        }
        let mut turns = Vec::new();
        for id in ids {
            let call = self.get(http, &format!("/v1/calls/{id}")).await?;
            for t in call["turns"].as_array().into_iter().flatten() {
                turns.push(t["metrics"].clone());
            }
        }
        Ok(turns)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("VOCELIO_BENCH_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

// ------------------------------------------------------------------ links

enum Rx {
    /// A packet of agent audio: voiced or not.
    Audio(bool),
    /// Twilio `clear`: drop what is buffered.
    Clear,
    /// The engine ended the call.
    Closed,
    /// Anything else.
    Other,
}

enum LinkTx {
    Rtp {
        sock: Arc<UdpSocket>,
        remote: SocketAddr,
        header: RtpHeader,
    },
    Ws {
        sink: futures_util::stream::SplitSink<WsStream, Message>,
        stream_sid: String,
        chunk: u64,
    },
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

enum LinkRx {
    Rtp {
        sock: Arc<UdpSocket>,
        hangup: mpsc::UnboundedReceiver<()>,
        buf: Vec<u8>,
    },
    Ws {
        stream: futures_util::stream::SplitStream<WsStream>,
        marks: mpsc::UnboundedSender<String>,
    },
}

impl LinkTx {
    async fn send(&mut self, frame: &[u8; FRAME]) -> Result<()> {
        match self {
            LinkTx::Rtp {
                sock,
                remote,
                header,
            } => {
                let mut buf = [0u8; 12 + FRAME];
                let n = rtp::write_packet(header, frame, &mut buf)?;
                sock.send_to(&buf[..n], *remote).await?;
                header.marker = false;
                header.sequence = header.sequence.wrapping_add(1);
                header.timestamp = header.timestamp.wrapping_add(FRAME as u32);
            }
            LinkTx::Ws {
                sink,
                stream_sid,
                chunk,
            } => {
                *chunk += 1;
                let msg = json!({
                    "event": "media",
                    "sequenceNumber": (*chunk + 2).to_string(),
                    "media": {
                        "track": "inbound",
                        "chunk": chunk.to_string(),
                        "timestamp": (*chunk * 20).to_string(),
                        "payload": base64::engine::general_purpose::STANDARD.encode(frame),
                    },
                    "streamSid": stream_sid,
                });
                sink.send(Message::Text(msg.to_string().into())).await?;
            }
        }
        Ok(())
    }

    async fn mark(&mut self, name: String) -> Result<()> {
        if let LinkTx::Ws {
            sink, stream_sid, ..
        } = self
        {
            let msg = json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": name}});
            sink.send(Message::Text(msg.to_string().into())).await?;
        }
        Ok(())
    }

    async fn close(&mut self) {
        if let LinkTx::Ws {
            sink, stream_sid, ..
        } = self
        {
            let msg = json!({"event": "stop", "streamSid": stream_sid, "stop": {}});
            let _ = sink.send(Message::Text(msg.to_string().into())).await;
            let _ = sink.close().await;
        }
    }
}

impl LinkRx {
    /// The next thing from the engine (cancel-safe).
    async fn recv(&mut self) -> Rx {
        match self {
            LinkRx::Rtp { sock, hangup, buf } => tokio::select! {
                r = sock.recv_from(buf) => match r {
                    Ok((n, _)) => match rtp::parse(&buf[..n]) {
                        Ok(p) if p.header.payload_type == PayloadType::PCMU => {
                            Rx::Audio(rms(p.payload) > VOICED_RMS)
                        }
                        _ => Rx::Other,
                    },
                    Err(_) => Rx::Closed,
                },
                _ = hangup.recv() => Rx::Closed,
            },
            LinkRx::Ws { stream, marks } => match stream.next().await {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(&t) else {
                        return Rx::Other;
                    };
                    match v["event"].as_str() {
                        Some("media") => {
                            let payload = v["media"]["payload"].as_str().unwrap_or("");
                            match base64::engine::general_purpose::STANDARD.decode(payload) {
                                Ok(b) => Rx::Audio(rms(&b) > VOICED_RMS),
                                Err(_) => Rx::Other,
                            }
                        }
                        Some("clear") => Rx::Clear,
                        Some("mark") => {
                            if let Some(n) = v["mark"]["name"].as_str() {
                                let _ = marks.send(n.to_string());
                            }
                            Rx::Other
                        }
                        _ => Rx::Other,
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Rx::Closed,
                Some(Ok(_)) => Rx::Other,
            },
        }
    }
}

// ------------------------------------------------------------------ SIP side

/// Our endpoint as the callers' phone system, with call events routed to
/// each caller.
struct Phones {
    sip: SipHandle,
    waiting: Arc<Mutex<Waiting>>,
}

#[derive(Default)]
struct Waiting {
    answered: HashMap<CallHandle, tokio::sync::oneshot::Sender<(SocketAddr, u16, u8)>>,
    early: HashMap<CallHandle, (SocketAddr, u16, u8)>,
    hangups: HashMap<CallHandle, mpsc::UnboundedSender<()>>,
    ended: HashSet<CallHandle>,
}

impl Phones {
    async fn start(engine: SocketAddr, seed: u64) -> Result<Phones> {
        let mut cfg = EndpointConfig::new("127.0.0.1:0".parse()?, seed);
        cfg.codecs = vec![Codec::Pcmu];
        cfg.rtp_ports = SIP_RTP_PORTS;
        cfg.max_calls = 10_000;
        cfg.trunks.push(TrunkConfig {
            name: "engine".into(),
            address: engine,
            transport: TransportKind::Udp,
            allow_from: vec!["127.0.0.1/32".parse::<IpNet>()?],
            outbound_auth: None,
            inbound_users: vec![],
            register: None,
            domain: None,
        });
        let listen = ListenConfig {
            bind: "127.0.0.1:0".parse()?,
            udp: true,
            tcp: false,
        };
        let (sip, mut events, _task) = start(cfg, listen).await?;
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let w = Arc::clone(&waiting);
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                let mut w = w.lock().unwrap_or_else(|e| e.into_inner());
                match ev {
                    CallEvent::Answered {
                        call,
                        media: Some(m),
                        rtp_port,
                    } => {
                        let v = (m.remote_rtp, rtp_port, m.payload_type);
                        match w.answered.remove(&call) {
                            Some(tx) => {
                                let _ = tx.send(v);
                            }
                            None => {
                                w.early.insert(call, v);
                            }
                        }
                    }
                    CallEvent::Hangup { call, .. } => {
                        w.answered.remove(&call);
                        match w.hangups.remove(&call) {
                            Some(tx) => {
                                let _ = tx.send(());
                            }
                            None => {
                                w.ended.insert(call);
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
        Ok(Phones { sip, waiting })
    }

    /// Dials the engine and returns the call's audio link once answered.
    async fn dial(&self, n: usize) -> Result<(CallHandle, LinkTx, LinkRx)> {
        let call = self
            .sip
            .originate(&format!("1555{:07}", n), "15559990000", "engine")
            .await
            .map_err(|_| anyhow::anyhow!("the caller endpoint stopped"))?
            .map_err(|e| anyhow::anyhow!("INVITE failed: {e}"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (htx, hrx) = mpsc::unbounded_channel();
        {
            let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
            if w.ended.remove(&call) {
                bail!("call {n} ended before it was answered");
            }
            match w.early.remove(&call) {
                Some(v) => {
                    let _ = tx.send(v);
                }
                None => {
                    w.answered.insert(call, tx);
                }
            }
            w.hangups.insert(call, htx);
        }
        let (remote, port, pt) = tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .map_err(|_| anyhow::anyhow!("call {n} not answered within 20 s"))?
            .map_err(|_| anyhow::anyhow!("call {n} ended before it was answered"))?;
        let sock = Arc::new(
            UdpSocket::bind(("127.0.0.1", port))
                .await
                .with_context(|| format!("binding RTP port {port}"))?,
        );
        let header = RtpHeader {
            marker: true,
            payload_type: PayloadType::new(pt).context("payload type")?,
            sequence: (n as u16).wrapping_mul(7919),
            timestamp: (n as u32).wrapping_mul(104_729),
            ssrc: Ssrc(0x5EED_0000 | n as u32),
        };
        Ok((
            call,
            LinkTx::Rtp {
                sock: Arc::clone(&sock),
                remote,
                header,
            },
            LinkRx::Rtp {
                sock,
                hangup: hrx,
                buf: vec![0u8; 2048],
            },
        ))
    }
}

async fn twilio_dial(
    http: SocketAddr,
    n: usize,
    agent: &str,
) -> Result<(LinkTx, LinkRx, mpsc::UnboundedReceiver<String>)> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/twilio/media"))
        .await
        .context("connecting to /twilio/media")?;
    let (mut sink, stream) = ws.split();
    let stream_sid = format!("MZbench{n:06}");
    sink.send(Message::Text(
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
            .to_string()
            .into(),
    ))
    .await?;
    sink.send(Message::Text(
        json!({
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "accountSid": "ACbench",
                "streamSid": stream_sid,
                "callSid": format!("CAbench{n:06}"),
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {"agent": agent},
            },
            "streamSid": stream_sid,
        })
        .to_string()
        .into(),
    ))
    .await?;
    let (marks_tx, marks_rx) = mpsc::unbounded_channel();
    Ok((
        LinkTx::Ws {
            sink,
            stream_sid,
            chunk: 0,
        },
        LinkRx::Ws {
            stream,
            marks: marks_tx,
        },
        marks_rx,
    ))
}

// ------------------------------------------------------------------ callers

/// One caller turn as heard on the wire.
#[derive(Debug, Clone, Serialize)]
pub struct TurnRow {
    call: usize,
    turn: usize,
    fixture: String,
    /// Caller's last voiced packet sent -> agent's first voiced packet received.
    voice_to_voice_ms: Option<f64>,
    /// The reply never came (within 15 s).
    timed_out: bool,
    /// The caller talked over this reply: interruption onset -> agent audio stopped.
    barge_in_stop_ms: Option<f64>,
}

#[derive(Debug, Default)]
struct CallOutcome {
    turns: Vec<TurnRow>,
    greeted: bool,
    ended_by_engine: bool,
    error: Option<String>,
    /// Agent packets that arrived more than 40 ms after the one before, while it spoke.
    late_packets: u64,
    agent_packets: u64,
}

enum Phase {
    Greeting,
    Speaking {
        clip: usize,
        next: usize,
        interrupt: bool,
    },
    AwaitReply {
        since: Instant,
        until: Instant,
    },
    Listening {
        interrupt_at: Option<Instant>,
    },
    Pause {
        until: Instant,
    },
}

/// Deterministic pseudo-random numbers (SplitMix64) for pauses.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Script<'a> {
    clips: &'a Clips,
    call: usize,
    /// The caller's place in its step: where its fixtures start.
    place: usize,
    turns: usize,
    interrupt_every: usize,
    seed: u64,
}

impl Script<'_> {
    fn question(&self, turn: usize) -> usize {
        (self.place + turn) % self.clips.questions.len()
    }
    fn interrupts(&self, turn: usize) -> bool {
        self.interrupt_every > 0 && (turn + 1) % self.interrupt_every == 0
    }
    fn pause(&self, turn: usize) -> Duration {
        let r = mix(self.seed ^ ((self.call as u64) << 32) ^ turn as u64);
        Duration::from_millis(400 + r % 800)
    }
    fn clip(&self, idx: usize) -> &Clip {
        if idx == usize::MAX {
            &self.clips.interrupt
        } else {
            &self.clips.questions[idx]
        }
    }
}

/// Barge-in bookkeeping while the caller talks over a reply.
#[derive(Default)]
struct Interruption {
    /// The caller's first voiced packet of the interruption.
    start: Option<Instant>,
    /// The agent was audible just before it.
    agent_was_speaking: bool,
    last_agent_voiced: Option<Instant>,
    clear_at: Option<Instant>,
}

async fn run_caller(
    script: Script<'_>,
    mut tx: LinkTx,
    mut rx: LinkRx,
    mut marks: Option<mpsc::UnboundedReceiver<String>>,
) -> CallOutcome {
    let mut out = CallOutcome::default();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut phase = Phase::Greeting;
    let mut last_rx_voiced: Option<Instant> = None;
    let mut last_rx: Option<Instant> = None;
    let mut last_tx_voiced: Option<Instant> = None;
    let mut turn = 0usize;
    let mut row: Option<TurnRow> = None;
    let mut barge = Interruption::default();
    // After a failed barge-in the next reply's onset cannot be told apart
    // from the old reply: that turn's voice-to-voice is not measured.
    let mut skip_next_v2v = false;
    // Each turn's reply is talked over at most once.
    let mut interrupted = false;
    let total = script.turns;
    let new_row = |turn: usize, fixture: &str| TurnRow {
        call: script.call,
        turn: turn + 1,
        fixture: fixture.to_string(),
        voice_to_voice_ms: None,
        timed_out: false,
        barge_in_stop_ms: None,
    };
    loop {
        let marks_next = async {
            match marks.as_mut() {
                Some(m) => m.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = rx.recv() => {
                let now = Instant::now();
                match r {
                    Rx::Audio(voiced) => {
                        if voiced {
                            out.agent_packets += 1;
                            if let Some(prev) = last_rx {
                                if last_rx_voiced.is_some_and(|v| now - v < Duration::from_millis(200))
                                    && now - prev > Duration::from_millis(40)
                                {
                                    out.late_packets += 1;
                                }
                            }
                            last_rx_voiced = Some(now);
                            match &phase {
                                Phase::Greeting => out.greeted = true,
                                Phase::AwaitReply { since, .. } => {
                                    if let Some(r) = row.as_mut() {
                                        if !std::mem::take(&mut skip_next_v2v) {
                                            r.voice_to_voice_ms = Some((now - *since).as_secs_f64() * 1000.0);
                                        }
                                    }
                                    let interrupt_at = (script.interrupts(turn) && !interrupted).then(|| now + INTERRUPT_AFTER);
                                    phase = Phase::Listening { interrupt_at };
                                }
                                Phase::Speaking { interrupt: true, .. }
                                    if barge.start.is_some() && barge.clear_at.is_none() =>
                                {
                                    barge.last_agent_voiced = Some(now);
                                }
                                _ => {}
                            }
                        }
                        last_rx = Some(now);
                    }
                    Rx::Clear => {
                        if barge.start.is_some() && barge.clear_at.is_none() {
                            barge.clear_at = Some(now);
                        }
                    }
                    Rx::Closed => {
                        out.ended_by_engine = true;
                        break;
                    }
                    Rx::Other => {}
                }
            }
            Some(name) = marks_next => {
                // Twilio echoes a mark once the audio before it has played; here it plays on arrival.
                if let Err(e) = tx.mark(name).await {
                    out.error = Some(format!("sending a mark: {e}"));
                    break;
                }
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let frame = match &mut phase {
                    Phase::Speaking { clip, next, interrupt } => {
                        let c = script.clip(*clip);
                        let f = c.frames[*next];
                        if c.voiced[*next] {
                            last_tx_voiced = Some(now);
                            if *interrupt && barge.start.is_none() {
                                barge.start = Some(now);
                                barge.agent_was_speaking = last_rx_voiced.is_some_and(|t| now - t < Duration::from_millis(100));
                            }
                        }
                        *next += 1;
                        f
                    }
                    _ => SILENCE,
                };
                if let Err(e) = tx.send(&frame).await {
                    out.error = Some(format!("sending audio: {e}"));
                    break;
                }
                // Phase changes after the packet went out.
                let next_phase = match &phase {
                    Phase::Greeting => {
                        let greeting_over = out.greeted && last_rx_voiced.is_some_and(|t| now - t >= REPLY_OVER);
                        (greeting_over || now - started >= GREETING_TIMEOUT).then_some(None)
                    }
                    Phase::Speaking { clip, next, interrupt } if *next >= script.clip(*clip).frames.len() => {
                        if *interrupt {
                            if let (Some(s), true) = (barge.start, barge.agent_was_speaking) {
                                let stop = barge.clear_at.unwrap_or_else(|| {
                                    barge.last_agent_voiced.map_or(s, |t| t + Duration::from_millis(20))
                                });
                                let ms = (stop.max(s) - s).as_secs_f64() * 1000.0;
                                if let Some(prev) = out.turns.last_mut() {
                                    prev.barge_in_stop_ms = Some(ms);
                                }
                                if ms > 1000.0 {
                                    skip_next_v2v = true;
                                }
                            }
                            barge = Interruption::default();
                        }
                        let since = last_tx_voiced.unwrap_or(now);
                        Some(Some(Phase::AwaitReply { since, until: now + REPLY_TIMEOUT }))
                    }
                    Phase::AwaitReply { until, .. } if now >= *until => {
                        if let Some(r) = row.as_mut() {
                            r.timed_out = true;
                        }
                        Some(Some(Phase::Pause { until: now }))
                    }
                    // Talk over the reply only while the agent is audibly
                    // speaking (a voiced packet within the last tick), not
                    // in a pause between its sentences.
                    Phase::Listening { interrupt_at: Some(at) }
                        if now >= *at && last_rx_voiced.is_some_and(|t| now - t <= Duration::from_millis(20)) =>
                    {
                        // The reply being interrupted is this turn's; the interruption is a turn of its own.
                        out.turns.extend(row.take());
                        row = Some(new_row(out.turns.len(), &script.clips.interrupt.id));
                        interrupted = true;
                        Some(Some(Phase::Speaking { clip: usize::MAX, next: 0, interrupt: true }))
                    }
                    Phase::Listening { .. } if last_rx_voiced.is_some_and(|t| now - t >= REPLY_OVER) => {
                        Some(Some(Phase::Pause { until: now + script.pause(turn) }))
                    }
                    Phase::Pause { until } if now >= *until => Some(None),
                    _ => None,
                };
                match next_phase {
                    None => {}
                    Some(Some(p)) => phase = p,
                    Some(None) => {
                        // The next question, or hang up.
                        if matches!(phase, Phase::Pause { .. }) {
                            out.turns.extend(row.take());
                            turn += 1;
                            interrupted = false;
                        }
                        if turn >= total {
                            break;
                        }
                        let q = script.question(turn);
                        row = Some(new_row(out.turns.len(), &script.clips.questions[q].id));
                        phase = Phase::Speaking { clip: q, next: 0, interrupt: false };
                    }
                }
            }
        }
    }
    out.turns.extend(row.take());
    tx.close().await;
    out
}

// ------------------------------------------------------------------ steps

/// One step of the ramp.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    calls: usize,
    calls_completed: usize,
    calls_failed: usize,
    calls_ended_by_engine: usize,
    peak_concurrent: usize,
    greeted: usize,
    seconds: f64,
    turns: usize,
    replies_timed_out: usize,
    voice_to_voice_p50_ms: f64,
    voice_to_voice_p95_ms: f64,
    voice_to_voice_p99_ms: f64,
    voice_to_voice_max_ms: f64,
    barge_ins: usize,
    barge_in_stop_p50_ms: f64,
    barge_in_stop_p95_ms: f64,
    /// Engine-side figures, per turn, from the control API.
    engine_turns: usize,
    endpoint_delay_p50_ms: f64,
    stt_p50_ms: f64,
    stt_p95_ms: f64,
    brain_first_sentence_p50_ms: f64,
    brain_first_sentence_p95_ms: f64,
    tts_first_audio_p50_ms: f64,
    tts_first_audio_p95_ms: f64,
    engine_voice_to_voice_p50_ms: f64,
    engine_cpu_percent_of_box: f64,
    engine_cpu_ms_per_call_second: f64,
    rss_mb: f64,
    rss_per_call_mb: f64,
    /// Engine media ticks that ran more than 20 ms late.
    late_frames: u64,
    /// Agent packets arriving more than 40 ms after the previous one mid-speech.
    late_agent_packets: u64,
    agent_packets: u64,
    errors: Vec<String>,
    rows: Vec<TurnRow>,
}

/// The whole run.
#[derive(Debug, Serialize)]
pub struct Report {
    machine: String,
    transport: Transport,
    turns_per_call: usize,
    interrupt_every: usize,
    p95_limit_ms: f64,
    rss_idle_mb: f64,
    steps: Vec<Step>,
    /// The most concurrent calls whose voice-to-voice p95 stayed within the limit with nothing lost.
    max_calls_within_limit: usize,
    /// The most concurrent calls whose voice-to-voice p95 stayed within
    /// 1.5 times the first step's, with nothing lost: the capacity when
    /// even one call misses the limit.
    max_calls_within_1_5x_first: usize,
}

fn col(turns: &[Value], key: &str) -> Vec<f64> {
    turns.iter().filter_map(|t| t[key].as_f64()).collect()
}

struct Ctx<'a> {
    args: &'a CallsArgs,
    clips: &'a Clips,
    server: &'a Server,
    http: reqwest::Client,
    phones: Option<Phones>,
    seen: HashSet<String>,
    next_call: usize,
    rss_idle_kb: u64,
}

async fn run_step(ctx: &mut Ctx<'_>, n: usize, turns: usize) -> Result<Step> {
    let pid = ctx.server.child.id();
    let late0 = ctx.server.late_frames(&ctx.http).await?;
    let cpu0 = cpu_time(pid)?;
    let t0 = Instant::now();
    let active = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let gap = Duration::from_secs_f64(ctx.args.spread_s.max(0.0) / n.max(1) as f64);
    let agent = ctx.args.agent.clone();
    let mut rss_peak = 0u64;
    let first = ctx.next_call;
    ctx.next_call += n;
    let outcomes: Vec<CallOutcome> = {
        let ctx = &*ctx;
        let calls = (0..n).map(|i| {
            let (active, peak, agent) = (Arc::clone(&active), Arc::clone(&peak), agent.clone());
            async move {
                tokio::time::sleep(gap * i as u32).await;
                let script = Script {
                    clips: ctx.clips,
                    call: first + i,
                    place: i,
                    turns,
                    interrupt_every: ctx.args.interrupt_every,
                    seed: ctx.args.seed,
                };
                let dialled = match (&ctx.phones, ctx.args.transport) {
                    (Some(p), Transport::Sip) => p
                        .dial(first + i)
                        .await
                        .map(|(h, t, r)| (Some(h), t, r, None)),
                    _ => twilio_dial(ctx.server.http, first + i, &agent)
                        .await
                        .map(|(t, r, m)| (None, t, r, Some(m))),
                };
                let (handle, tx, rx, marks) = match dialled {
                    Ok(v) => v,
                    Err(e) => {
                        return CallOutcome {
                            error: Some(format!("{e:#}")),
                            ..Default::default()
                        }
                    }
                };
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                let out = run_caller(script, tx, rx, marks).await;
                active.fetch_sub(1, Ordering::SeqCst);
                if let (Some(p), Some(h)) = (&ctx.phones, handle) {
                    if !out.ended_by_engine {
                        let _ = p.sip.hangup(h).await;
                    }
                }
                out
            }
        });
        let all = futures_util::future::join_all(calls);
        tokio::pin!(all);
        let mut sample = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                o = &mut all => break o,
                _ = sample.tick() => {
                    rss_peak = rss_peak.max(rss_kb(&pid.to_string()).unwrap_or(0));
                }
            }
        }
    };
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_time(pid)?.saturating_sub(cpu0).as_secs_f64();
    // The engine stores a call's figures once it has ended.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let late = ctx
        .server
        .late_frames(&ctx.http)
        .await?
        .saturating_sub(late0);
    let engine_turns: Vec<Value> = ctx
        .server
        .new_turns(&ctx.http, &mut ctx.seen)
        .await?
        .into_iter()
        .filter(|t| t["input"] == "speech")
        .collect();
    let rows: Vec<TurnRow> = outcomes.iter().flat_map(|o| o.turns.clone()).collect();
    let v2v: Vec<f64> = rows.iter().filter_map(|r| r.voice_to_voice_ms).collect();
    let barge: Vec<f64> = rows.iter().filter_map(|r| r.barge_in_stop_ms).collect();
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as f64;
    let stt = col(&engine_turns, "stt_ms");
    let brain = col(&engine_turns, "brain_first_sentence_ms");
    let tts = col(&engine_turns, "tts_first_audio_ms");
    let call_seconds = wall * n as f64;
    Ok(Step {
        calls: n,
        calls_completed: outcomes
            .iter()
            .filter(|o| o.error.is_none() && o.turns.len() >= turns)
            .count(),
        calls_failed: failed,
        calls_ended_by_engine: outcomes.iter().filter(|o| o.ended_by_engine).count(),
        peak_concurrent: peak.load(Ordering::SeqCst),
        greeted: outcomes.iter().filter(|o| o.greeted).count(),
        seconds: wall,
        turns: rows.len(),
        replies_timed_out: rows.iter().filter(|r| r.timed_out).count(),
        voice_to_voice_p50_ms: quantile(&v2v, 0.5),
        voice_to_voice_p95_ms: quantile(&v2v, 0.95),
        voice_to_voice_p99_ms: quantile(&v2v, 0.99),
        voice_to_voice_max_ms: quantile(&v2v, 1.0),
        barge_ins: barge.len(),
        barge_in_stop_p50_ms: quantile(&barge, 0.5),
        barge_in_stop_p95_ms: quantile(&barge, 0.95),
        engine_turns: engine_turns.len(),
        endpoint_delay_p50_ms: quantile(&col(&engine_turns, "endpoint_delay_ms"), 0.5),
        stt_p50_ms: quantile(&stt, 0.5),
        stt_p95_ms: quantile(&stt, 0.95),
        brain_first_sentence_p50_ms: quantile(&brain, 0.5),
        brain_first_sentence_p95_ms: quantile(&brain, 0.95),
        tts_first_audio_p50_ms: quantile(&tts, 0.5),
        tts_first_audio_p95_ms: quantile(&tts, 0.95),
        engine_voice_to_voice_p50_ms: quantile(&col(&engine_turns, "voice_to_voice_ms"), 0.5),
        engine_cpu_percent_of_box: 100.0 * cpu / wall / cores,
        engine_cpu_ms_per_call_second: 1000.0 * cpu / call_seconds.max(1e-9),
        rss_mb: rss_peak as f64 / 1024.0,
        rss_per_call_mb: rss_peak.saturating_sub(ctx.rss_idle_kb) as f64 / 1024.0 / n.max(1) as f64,
        late_frames: late,
        late_agent_packets: outcomes.iter().map(|o| o.late_packets).sum(),
        agent_packets: outcomes.iter().map(|o| o.agent_packets).sum(),
        errors: outcomes.iter().filter_map(|o| o.error.clone()).collect(),
        rows,
    })
}

impl Step {
    /// Every call held to the end and every reply came.
    fn clean(&self) -> bool {
        self.calls_failed == 0 && self.replies_timed_out == 0 && self.calls_completed == self.calls
    }
}

/// `vocelio bench calls`.
pub fn calls(args: CallsArgs) -> Result<()> {
    if args.calls.is_empty() || args.calls.iter().any(|n| *n == 0 || *n > 500) {
        bail!("--calls takes steps of 1-500 calls");
    }
    crate::bench::raise_fd_limit();
    let clips = load_clips(&args)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = rt.block_on(run(&args, &clips))?;
    print_table(&report);
    if let Some(path) = &args.json {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).ok();
        }
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(s) = report.steps.first() {
        if !s.clean() {
            bail!(
                "the first step lost calls or replies: {} failed, {} replies timed out{}",
                s.calls_failed,
                s.replies_timed_out,
                s.errors
                    .first()
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default()
            );
        }
    }
    Ok(())
}

async fn run(args: &CallsArgs, clips: &Clips) -> Result<Report> {
    let mut server = Server::start(args)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    eprintln!("waiting for vocelio serve (loading models)...");
    server.wait_ready(&http).await?;
    let phones = match args.transport {
        Transport::Sip => Some(Phones::start(server.sip, args.seed).await?),
        Transport::Twilio => None,
    };
    let mut ctx = Ctx {
        args,
        clips,
        server: &server,
        http: http.clone(),
        phones,
        seen: HashSet::new(),
        next_call: 0,
        rss_idle_kb: 0,
    };
    // One call first, unmeasured: the engine loads its models on the first
    // call and the memory baseline is taken after it.
    eprintln!("warm-up call");
    let warm = run_step(&mut ctx, 1, 1).await?;
    if !warm.clean() {
        bail!(
            "the warm-up call failed: {}\n{}",
            warm.errors.join("; "),
            server.log_tail()
        );
    }
    ctx.rss_idle_kb = rss_kb(&server.child.id().to_string())?;
    let turns = if args.turns == 0 {
        clips.questions.len()
    } else {
        args.turns
    };
    let mut steps = Vec::new();
    let (mut max_ok, mut max_near) = (0, 0);
    let mut first_p95 = None;
    for &n in &args.calls {
        eprintln!("step: {n} concurrent calls");
        let step = run_step(&mut ctx, n, turns).await?;
        eprintln!(
            "  {} turns, voice-to-voice p50 {:.0} ms p95 {:.0} ms, {} failed, {} replies timed out",
            step.turns,
            step.voice_to_voice_p50_ms,
            step.voice_to_voice_p95_ms,
            step.calls_failed,
            step.replies_timed_out
        );
        for e in step.errors.iter().take(3) {
            eprintln!("  error: {e}");
        }
        let p95 = step.voice_to_voice_p95_ms;
        let first = *first_p95.get_or_insert(p95);
        let clean = step.clean() && p95.is_finite();
        if clean && p95 <= args.p95_limit_ms {
            max_ok = max_ok.max(n);
        }
        let near = clean && p95 <= 1.5 * first;
        if near {
            max_near = max_near.max(n);
        }
        steps.push(step);
        // Go on while within the limit, or (when even one call misses it)
        // while latency has not degraded by half.
        if !(clean && (p95 <= args.p95_limit_ms || near)) {
            break;
        }
    }
    let rss_idle_kb = ctx.rss_idle_kb;
    drop(ctx);
    if let Ok(Some(status)) = server.child.try_wait() {
        bail!(
            "vocelio serve exited during the run ({status}):\n{}",
            server.log_tail()
        );
    }
    Ok(Report {
        machine: machine(),
        transport: args.transport,
        turns_per_call: turns,
        interrupt_every: args.interrupt_every,
        p95_limit_ms: args.p95_limit_ms,
        rss_idle_mb: rss_idle_kb as f64 / 1024.0,
        steps,
        max_calls_within_limit: max_ok,
        max_calls_within_1_5x_first: max_near,
    })
}

fn f(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.0}")
    } else {
        "-".into()
    }
}

/// The report as markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "{} callers, {} turns each, interrupting every {} reply; {}\n\n",
        match r.transport {
            Transport::Sip => "SIP/RTP",
            Transport::Twilio => "Twilio Media Streams",
        },
        r.turns_per_call,
        r.interrupt_every,
        r.machine
    );
    s.push_str("| calls | turns | voice-to-voice p50 / p95 / p99 (ms) | barge-in stop p50 / p95 (ms) | STT p50 / p95 | brain p50 | TTS first audio p50 | engine CPU (% of box) | CPU ms per call-second | RSS per call | late frames | lost |\n");
    s.push_str("|---:|---:|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for st in &r.steps {
        s.push_str(&format!(
            "| {} | {} | {} / {} / {} | {} / {} ({}) | {} / {} | {} | {} | {:.0} % | {:.0} | {:.1} MB | {} | {} |\n",
            st.calls,
            st.turns,
            f(st.voice_to_voice_p50_ms),
            f(st.voice_to_voice_p95_ms),
            f(st.voice_to_voice_p99_ms),
            f(st.barge_in_stop_p50_ms),
            f(st.barge_in_stop_p95_ms),
            st.barge_ins,
            f(st.stt_p50_ms),
            f(st.stt_p95_ms),
            f(st.brain_first_sentence_p50_ms),
            f(st.tts_first_audio_p50_ms),
            st.engine_cpu_percent_of_box,
            st.engine_cpu_ms_per_call_second,
            st.rss_per_call_mb,
            st.late_frames,
            if st.clean() {
                "0".to_string()
            } else {
                format!(
                    "{} calls, {} replies",
                    st.calls - st.calls_completed,
                    st.replies_timed_out
                )
            },
        ));
    }
    s.push_str(&format!(
        "\nMost concurrent calls with voice-to-voice p95 <= {:.0} ms and nothing lost: {}; within 1.5x the first step's p95: {}\n",
        r.p95_limit_ms, r.max_calls_within_limit, r.max_calls_within_1_5x_first
    ));
    if r.steps.len() == 1 && r.steps[0].calls == 1 {
        s.push_str("\n| fixture | voice-to-voice (ms) | barge-in stop (ms) |\n|---|---:|---:|\n");
        for row in &r.steps[0].rows {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                row.fixture,
                row.voice_to_voice_ms.map_or("timed out".into(), f),
                row.barge_in_stop_ms.map_or(String::new(), f)
            ));
        }
    }
    s
}

fn print_table(r: &Report) {
    println!("{}", markdown(r));
}
