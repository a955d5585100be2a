//! Helpers shared by the engine's real-peer tests: free ports, the SIP
//! service on loopback, and running sipp to completion.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::path::PathBuf;
use std::process::Command;

use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use vocelio_engine::endpoint::driver::{start, ListenConfig, SipHandle};
use vocelio_engine::endpoint::{AgentId, CallEvent, EndpointConfig, IpNet, TrunkConfig};
use vocelio_engine::sip::transaction::TransportKind;

/// The number sipp dials.
pub const DID: &str = "15550100001";

pub fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

pub fn free_udp_port() -> u16 {
    StdUdp::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct SippRun {
    pub success: bool,
    pub successful_calls: u64,
    pub failed_calls: u64,
    pub output: String,
}

/// Run sipp to completion (bounded by its own -timeout) on a blocking thread.
pub async fn sipp(target: SocketAddr, extra: Vec<String>, calls: u32) -> SippRun {
    let dir = tempfile::tempdir().unwrap();
    let stat = dir.path().join("stat.csv");
    let mut args: Vec<String> = vec![
        target.to_string(),
        "-s".into(),
        DID.into(),
        "-i".into(),
        "127.0.0.1".into(),
        "-p".into(),
        free_udp_port().to_string(),
        "-mp".into(),
        free_udp_port().to_string(),
        "-m".into(),
        calls.to_string(),
        "-nostdin".into(),
        "-timeout".into(),
        "90s".into(),
        "-timeout_error".into(),
        "-trace_stat".into(),
        "-stf".into(),
        stat.to_string_lossy().into_owned(),
    ];
    args.extend(extra);
    let out = tokio::task::spawn_blocking(move || Command::new("sipp").args(&args).output())
        .await
        .unwrap()
        .expect("sipp is not installed: run scripts/setup.sh (Debian package sip-tester)");
    let csv = std::fs::read_to_string(&stat).unwrap_or_default();
    let (successful_calls, failed_calls) = parse_stat(&csv);
    SippRun {
        success: out.status.success(),
        successful_calls,
        failed_calls,
        output: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

pub fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// SuccessfulCall(C) and FailedCall(C) from the last row of sipp's statistics file.
pub fn parse_stat(csv: &str) -> (u64, u64) {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (0, 0);
    };
    let Some(last) = lines.next_back() else {
        return (0, 0);
    };
    let cols: Vec<&str> = header.split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let get = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("SuccessfulCall(C)"), get("FailedCall(C)"))
}

pub async fn service(cfg: EndpointConfig) -> (SipHandle, UnboundedReceiver<CallEvent>, SocketAddr) {
    let (handle, events, _join) = start(
        cfg,
        ListenConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            udp: true,
            tcp: true,
        },
    )
    .await
    .expect("bind SIP service on loopback");
    let addr = handle.udp_addr.unwrap();
    (handle, events, addr)
}

/// A loopback endpoint config: DID -> agent `demo`, one trunk allowing `allow`, short timers.
pub fn config(answer_delay: Duration, allow: &str) -> EndpointConfig {
    let mut c = EndpointConfig::new("127.0.0.1:0".parse().unwrap(), 42);
    c.numbers.insert(DID.into(), AgentId("demo".into()));
    c.trunks.push(TrunkConfig {
        name: "local".into(),
        address: "127.0.0.1:5999".parse().unwrap(),
        transport: TransportKind::Udp,
        allow_from: vec![allow.parse::<IpNet>().unwrap()],
        outbound_auth: None,
        inbound_users: vec![],
        register: None,
        domain: None,
    });
    c.answer_delay = answer_delay;
    // Short T1 so finished transactions drain in seconds (64*T1 = 3.2 s).
    c.transactions.timers.t1 = Duration::from_millis(50);
    c.transactions.timers.t2 = Duration::from_millis(400);
    c.transactions.timers.t4 = Duration::from_millis(500);
    // Timer D absorbs retransmitted error responses; shorten it like the others.
    c.transactions.timer_d = Duration::from_secs(3);
    c.rtp_ports = (30_000, 39_999);
    c
}
