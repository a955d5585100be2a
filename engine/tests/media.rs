//! The RTP media plane against real peers on 127.0.0.1: sipp playing its
//! recorded A-law speech and an RFC 4733 digit, and our own SIP endpoint +
//! media engine as the far end (round trip through an echo agent, RTP bleed,
//! DTMF out, recording, port release).

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::time::Duration;

use crossbeam_channel::select;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};
use vocelio_codecs::g711::alaw_to_linear;
use vocelio_codecs::port::{MediaPort, PortControl, PortEvent};
use vocelio_codecs::{AudioFrame, MediaTime, SampleRate};
use vocelio_engine::endpoint::driver::SipHandle;
use vocelio_engine::endpoint::{AgentId, CallEvent, CallHandle, IpNet, TrunkConfig};
use vocelio_engine::media::bridge::{self, BridgeEvent};
use vocelio_engine::media::echo::EchoPool;
use vocelio_engine::media::metrics::MediaMetrics;
use vocelio_engine::media::{MediaConfig, MediaEngine, MediaEvent};
use vocelio_engine::rtp::packet::{PayloadType, RtpHeader, Ssrc};
use vocelio_engine::sip::transaction::TransportKind;

mod common;
use common::{config, free_udp_port, owned, scenario, service, sipp, DID};

/// What a pipeline saw on its port.
#[derive(Debug, Default)]
struct Collected {
    samples: Vec<i16>,
    digits: Vec<char>,
    frames: usize,
    hangup: bool,
}

/// A pipeline that only listens, until the call ends (bounded: 60 s).
fn collect(port: MediaPort) -> std::thread::JoinHandle<Collected> {
    std::thread::spawn(move || {
        let mut c = Collected::default();
        let deadline = crossbeam_channel::after(Duration::from_secs(60));
        loop {
            select! {
                recv(port.audio) -> f => match f {
                    Ok(f) => {
                        c.frames += 1;
                        c.samples.extend_from_slice(f.samples());
                    }
                    Err(_) => break,
                },
                recv(port.events) -> e => match e {
                    Ok(PortEvent::Dtmf { digit, .. }) => c.digits.push(digit),
                    Ok(PortEvent::Hangup { .. }) => {
                        c.hangup = true;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                },
                recv(deadline) -> _ => break,
            }
        }
        c
    })
}

/// The SIP service, its media plane and the bridge between them.
struct Side {
    sip: SipHandle,
    addr: SocketAddr,
    media: MediaEngine,
    out: UnboundedReceiver<BridgeEvent>,
}

async fn side(rtp_ports: (u16, u16), mcfg: MediaConfig, trunk_to: Option<SocketAddr>) -> Side {
    let mut cfg = config(Duration::ZERO, "127.0.0.1/32");
    cfg.rtp_ports = rtp_ports;
    if let Some(to) = trunk_to {
        cfg.trunks.push(TrunkConfig {
            name: "engine".into(),
            address: to,
            transport: TransportKind::Udp,
            allow_from: vec!["127.0.0.1/32".parse::<IpNet>().unwrap()],
            outbound_auth: None,
            inbound_users: vec![],
            register: None,
            domain: None,
        });
    }
    let (sip, events, addr) = service(cfg).await;
    let (media, media_events) = MediaEngine::start(mcfg).unwrap();
    let (tx, out) = unbounded_channel();
    tokio::spawn(bridge::run(
        events,
        media_events,
        sip.clone(),
        media.clone(),
        AgentId("demo".into()),
        tx,
    ));
    Side {
        sip,
        addr,
        media,
        out,
    }
}

impl Side {
    /// The next port handed out, and the RTP port of its call.
    async fn next_port(&mut self) -> (MediaPort, Option<u16>) {
        let mut rtp_port = None;
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(20), self.out.recv())
                .await
                .expect("no call media within 20 s")
                .expect("bridge stopped");
            match ev {
                BridgeEvent::Sip(CallEvent::Answered { rtp_port: p, .. }) => rtp_port = Some(p),
                BridgeEvent::Port(port) => return (port, rtp_port),
                _ => {}
            }
        }
    }

    /// Call `server` through the `engine` trunk: the call, the server's port
    /// and RTP port, and our port.
    async fn call(&mut self, server: &mut Side) -> (CallHandle, MediaPort, u16, MediaPort) {
        let call = self
            .sip
            .originate(DID, "15550009999", "engine")
            .await
            .unwrap()
            .unwrap();
        let (server_port, server_rtp) = server.next_port().await;
        let server_rtp = server_rtp.expect("answered before the port");
        let (client_port, _) = self.next_port().await;
        (call, server_port, server_rtp, client_port)
    }

    /// Wait for a media-ended event; also returns the live quality reports seen before it.
    async fn ended_with_reports(&mut self) -> (MediaEvent, Vec<MediaEvent>) {
        let mut reports = Vec::new();
        loop {
            let ev = tokio::time::timeout(Duration::from_secs(20), self.out.recv())
                .await
                .expect("media did not end")
                .expect("bridge stopped");
            match ev {
                BridgeEvent::Media(m @ MediaEvent::Ended { .. }) => return (m, reports),
                BridgeEvent::Media(q @ MediaEvent::Quality { .. }) => reports.push(q),
                _ => {}
            }
        }
    }

    /// Wait for a media-ended event.
    async fn ended(&mut self) -> MediaEvent {
        self.ended_with_reports().await.0
    }
}

/// The RTP payloads of a pcap file (Ethernet/IPv4/UDP), with their payload types.
fn pcap_rtp(path: &str) -> Vec<(u8, Vec<u8>)> {
    let d = std::fs::read(path).expect("pcap from sip-tester");
    let le = d[..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let rd = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let mut off = 24;
    let mut out = Vec::new();
    while off + 16 <= d.len() {
        let incl = rd(&d[off + 8..]) as usize;
        let pkt = &d[off + 16..off + 16 + incl];
        off += 16 + incl;
        let ip = &pkt[14..];
        let ihl = usize::from(ip[0] & 15) * 4;
        let rtp = &ip[ihl + 8..];
        out.push((rtp[1] & 0x7f, rtp[12..].to_vec()));
    }
    out
}

fn frame_energy(samples: &[i16]) -> Vec<f64> {
    samples
        .chunks_exact(160)
        .map(|c| (c.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / 160.0).sqrt())
        .collect()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len()) as f64;
    let ma = a.iter().sum::<f64>() / n;
    let mb = b.iter().sum::<f64>() / n;
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        num += (x - ma) * (y - mb);
        da += (x - ma).powi(2);
        db += (y - mb).powi(2);
    }
    num / (da.sqrt() * db.sqrt()).max(1e-9)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_pcap_speech_arrives_decoded_and_dtmf_1_once() {
    let mut server = side((30_000, 30_999), MediaConfig::default(), None).await;
    let run = tokio::spawn(sipp(
        server.addr,
        owned(&["-sf", &scenario("uac_pcap.xml")]),
        1,
    ));
    let (port, _) = server.next_port().await;
    assert_eq!(port.info.rate, SampleRate::Hz8000);
    let got = tokio::task::spawn_blocking(move || collect(port).join().unwrap())
        .await
        .unwrap();
    let run = run.await.unwrap();
    assert!(run.success, "sipp failed:\n{}", run.output);
    assert_eq!(got.digits, vec!['1'], "the digit is reported exactly once");
    assert!(got.hangup, "the pipeline heard the hangup");

    // The pcap's speech, decoded here independently, against what the pipeline got.
    let want: Vec<i16> = pcap_rtp("/usr/share/sip-tester/g711a.pcap")
        .into_iter()
        .filter(|(pt, _)| *pt == 8)
        .flat_map(|(_, p)| p.into_iter().map(alaw_to_linear))
        .collect();
    let want_e = frame_energy(&want);
    let got_e = frame_energy(&got.samples);
    assert!(
        got_e.len() > want_e.len(),
        "the pipeline got {} frames, the pcap holds {}",
        got_e.len(),
        want_e.len()
    );
    let (lag, best) = (0..=got_e.len() - want_e.len())
        .map(|lag| (lag, correlation(&want_e, &got_e[lag..lag + want_e.len()])))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    let exact = want
        .iter()
        .zip(&got.samples[lag * 160..])
        .filter(|(a, b)| a == b)
        .count() as f64
        / want.len() as f64;
    eprintln!(
        "pcap speech: {} frames, envelope correlation {best:.4} at lag {lag} frames, {:.1}% samples bit-exact",
        want_e.len(),
        exact * 100.0
    );
    assert!(best > 0.98, "speech envelope correlation {best:.3}");
    let energy = |e: &[f64]| e.iter().sum::<f64>();
    let ratio = energy(&got_e[lag..lag + want_e.len()]) / energy(&want_e);
    assert!((0.95..1.05).contains(&ratio), "energy ratio {ratio:.3}");
    // Silence outside the speech: nothing invented before it started.
    assert!(got_e[..lag.saturating_sub(5)].iter().all(|&e| e < 50.0));
}

/// One 20 ms PCM frame: a loud 1 kHz burst (the "click") or silence.
fn tone(loud: bool, t: u64) -> AudioFrame {
    let mut f = AudioFrame::silent(SampleRate::Hz8000, MediaTime::ZERO.plus_frames(t));
    if loud {
        for (i, s) in f.samples_mut().iter_mut().enumerate() {
            *s = ((i as f64 * 2.0 * std::f64::consts::PI / 8.0).sin() * 12_000.0) as i16;
        }
    }
    f
}

/// A client pipeline that sends a click every 25 frames and measures, on the
/// media clock, when each comes back through the far end's echo agent.
fn probe(port: MediaPort, clicks: usize) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let mut sent_at = Vec::new();
        let mut rtts = Vec::new();
        let mut t = 0u64;
        let mut was_loud = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while rtts.len() < clicks && std::time::Instant::now() < deadline {
            let Ok(f) = port.audio.recv_timeout(Duration::from_secs(2)) else {
                break;
            };
            let now = f.time();
            // One outbound frame per inbound frame keeps the playout queue short.
            let loud = t % 25 == 5 && sent_at.len() < clicks;
            if loud {
                sent_at.push(now);
            }
            let _ = port.send_frame(tone(loud, t));
            t += 1;
            let e = frame_energy(f.samples())[0];
            let is_loud = e > 3000.0;
            if is_loud && !was_loud {
                if let Some(s) = sent_at.get(rtts.len()) {
                    rtts.push(now.micros_since(*s) / 1000);
                }
            }
            was_loud = is_loud;
        }
        rtts
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip_through_the_engine() {
    let mut server = side((31_000, 31_999), MediaConfig::default(), None).await;
    let mut client = side((32_000, 32_999), MediaConfig::default(), Some(server.addr)).await;
    let echo = EchoPool::start(0).unwrap();
    let (call, server_port, _, client_port) = client.call(&mut server).await;
    echo.add(server_port);
    let rtts = tokio::task::spawn_blocking(move || probe(client_port, 8).join().unwrap())
        .await
        .unwrap();
    client.sip.hangup(call).await.unwrap().unwrap();
    assert_eq!(rtts.len(), 8, "every click came back: {rtts:?}");
    let mut sorted = rtts.clone();
    sorted.sort_unstable();
    let median = sorted[sorted.len() / 2];
    eprintln!("echo round trip on the media clock (ms): {rtts:?}, median {median}");
    // Two jitter buffers (<= 60 ms each), two playout queues and the echo sweep.
    assert!(median <= 200, "median round trip {median} ms");
    let (MediaEvent::Ended { stats, .. }, reports) = server.ended_with_reports().await else {
        unreachable!()
    };
    // RTCP went out during the call (first report at ~2.5 s), each with live quality.
    assert!(!reports.is_empty(), "no quality report during a 4 s call");
    for r in &reports {
        let MediaEvent::Quality { stats, .. } = r else {
            unreachable!()
        };
        assert!(stats.mos > 4.0 && stats.rtcp_sent > 0, "{stats:?}");
    }
    assert!(stats.packets_received > 100, "{stats:?}");
    assert_eq!(stats.wrong_source, 0);
    assert!(stats.mos > 4.0, "{stats:?}");
    drop(echo);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_party_rtp_never_reaches_the_pipeline() {
    let mut server = side((33_000, 33_999), MediaConfig::default(), None).await;
    let mut client = side((34_000, 34_999), MediaConfig::default(), Some(server.addr)).await;
    let metrics = server.media.metrics();
    let (call, server_port, server_rtp, client_port) = client.call(&mut server).await;
    // The client's pipeline stays silent; a rogue source sprays loud RTP at the call's port.
    let listener = tokio::task::spawn_blocking(move || collect(server_port).join().unwrap());
    let rogue = tokio::task::spawn_blocking(move || {
        let sock = StdUdp::bind("127.0.0.1:0").unwrap();
        let mut buf = [0u8; 12 + 160];
        for seq in 0..100u16 {
            let h = RtpHeader {
                marker: seq == 0,
                payload_type: PayloadType::new(0).unwrap(),
                sequence: seq,
                timestamp: u32::from(seq) * 160,
                ssrc: Ssrc(0xbad),
            };
            let n = h.write_to(&mut buf).unwrap();
            for (i, b) in buf[n..].iter_mut().enumerate() {
                // Loud mu-law square wave.
                *b = if i % 8 < 4 { 0x80 } else { 0x00 };
            }
            sock.send_to(&buf, ("127.0.0.1", server_rtp)).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    rogue.await.unwrap();
    client.sip.hangup(call).await.unwrap().unwrap();
    drop(client_port);
    let got = listener.await.unwrap();
    let energies = frame_energy(&got.samples);
    let loud = energies.iter().filter(|&&e| e > 100.0).count();

    assert_eq!(
        loud,
        0,
        "rogue audio reached the pipeline (wrong-source drops: {})",
        MediaMetrics::get(&metrics.wrong_source)
    );
    assert!(
        got.frames > 50,
        "the call's own (silent) media kept flowing"
    );
    assert!(MediaMetrics::get(&metrics.wrong_source) >= 100);
    let MediaEvent::Ended { stats, .. } = server.ended().await else {
        unreachable!()
    };
    assert!(stats.wrong_source >= 100, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtmf_out_recording_and_port_release() {
    let dir = tempfile::tempdir().unwrap();
    let mcfg = MediaConfig {
        recordings: Some(dir.path().to_owned()),
        ..MediaConfig::default()
    };
    let mut server = side((35_000, 35_001), mcfg, None).await;
    let mut client = side((36_000, 36_999), MediaConfig::default(), Some(server.addr)).await;
    let (call, server_port, server_rtp, client_port) = client.call(&mut server).await;
    // The agent presses 4, 2 (navigating an IVR) and speaks a click; the caller listens.
    server_port
        .control(PortControl::SendDtmf {
            digits: "42".into(),
            duration_ms: 100,
        })
        .unwrap();
    for t in 0..5 {
        server_port.send_frame(tone(true, t)).unwrap();
    }
    let listener = tokio::task::spawn_blocking(move || collect(client_port).join().unwrap());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    client.sip.hangup(call).await.unwrap().unwrap();
    let got = listener.await.unwrap();
    assert_eq!(got.digits, vec!['4', '2']);
    let MediaEvent::Ended { recording, .. } = server.ended().await else {
        unreachable!()
    };
    drop(server_port);
    // Recording: two channels, the agent's click on the right.
    let rec = recording.expect("a recording was made");
    let r = hound::WavReader::open(&rec).unwrap();
    assert_eq!(r.spec().channels, 2);
    assert_eq!(r.spec().sample_rate, 8000);
    let s: Vec<i16> = r.into_samples::<i16>().map(Result::unwrap).collect();
    let right: Vec<i16> = s.iter().skip(1).step_by(2).copied().collect();
    assert!(frame_energy(&right).iter().filter(|&&e| e > 3000.0).count() >= 4);
    assert!(s.len() / 2 >= 160 * 50, "at least a second recorded");
    // The port pair (35000/35001) is free again: the only pair in the range takes a new call.
    tokio::time::sleep(Duration::from_millis(200)).await;
    StdUdp::bind(("127.0.0.1", server_rtp)).expect("RTP port released");
    StdUdp::bind(("127.0.0.1", server_rtp + 1)).expect("RTCP port released");
    let snap = server.sip.snapshot().await.unwrap();
    assert_eq!(snap.ports_in_use, 0);
    let _ = free_udp_port();
}

/// The control API places a call for an agent and later hangs it up from
/// outside the pipeline, through the port's control handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_call_for_an_agent_gets_its_port_and_hangs_up_by_control_handle() {
    let mut server = side((37_000, 37_999), MediaConfig::default(), None).await;
    let mut client = side((38_000, 38_999), MediaConfig::default(), Some(server.addr)).await;
    let call = client
        .sip
        .originate_as(DID, "15550009999", "engine", AgentId("sales".into()))
        .await
        .unwrap()
        .unwrap();
    let (server_port, _) = server.next_port().await;
    let (client_port, _) = client.next_port().await;
    // The dialling side's pipeline runs the agent the call was placed for, not
    // the bridge's default ("demo"); the answering side still routes by DID.
    assert_eq!(client_port.info.agent, "sales");
    assert_eq!(client_port.info.call_id, call.to_string());
    assert_eq!(server_port.info.agent, "demo");

    let controls = client_port.controls();
    let pipeline = tokio::task::spawn_blocking(move || collect(client_port).join().unwrap());
    controls.send(PortControl::Hangup).unwrap();
    // The hangup becomes a BYE: the far side's media ends, and so does ours.
    let MediaEvent::Ended { .. } = server.ended().await else {
        unreachable!()
    };
    let got = pipeline.await.unwrap();
    assert!(got.hangup, "the pipeline was told the call ended");
    let MediaEvent::Ended { call: ended, .. } = client.ended().await else {
        unreachable!()
    };
    assert_eq!(ended, call);
    drop(server_port);
}
