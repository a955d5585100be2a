//! A spoken question gets a spoken answer, end to end on real models:
//! over SIP (sipp plays a pcap made from a fixture) and over a Twilio Media
//! Stream (a real WebSocket client). The engine, the media plane and the voice
//! pipeline run in-process, wired as `vocelio serve` wires them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use vocelio_testkit::free_udp_port;

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc::unbounded_channel;
use tokio_tungstenite::tungstenite::Message;
use vocelio_codecs::g711::{linear_to_ulaw, ulaw_to_linear};
use vocelio_codecs::port::MediaPort;
use vocelio_engine::endpoint::driver::{start, ListenConfig};
use vocelio_engine::endpoint::{AgentId, EndpointConfig, IpNet, TrunkConfig};
use vocelio_engine::media::bridge::{self, BridgeEvent};
use vocelio_engine::media::{MediaConfig, MediaEngine, MediaEvent};
use vocelio_engine::sip::transaction::TransportKind;
use vocelio_engine::twilio::{TwilioConfig, TwilioState};
use vocelio_pipelines::brain::{ScriptedBrain, Speaker};
use vocelio_pipelines::call::CallEvent;
use vocelio_pipelines::models::test_model_dir;
use vocelio_pipelines::runner::{AgentConfig, RuntimeConfig, VoiceRuntime};

/// One test at a time: each loads the models and keeps both cores busy.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const REPLY: &str = "Sure. The appointment is confirmed for Friday morning.";

fn brain() -> ScriptedBrain {
    ScriptedBrain::new("Sorry, I did not get that.")
        .with_greeting("Hello.")
        .on("book|appointment", REPLY)
}

fn fixture_ulaw(id: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("fixtures/audio/{id}.8k.ulaw"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn rms_ulaw(b: &[u8]) -> f64 {
    (b.iter()
        .map(|&c| f64::from(ulaw_to_linear(c)).powi(2))
        .sum::<f64>()
        / b.len().max(1) as f64)
        .sqrt()
}

/// A voice runtime serving every port that arrives on the returned sender,
/// and its events collected until `until` says stop (bounded by `limit`).
fn voice() -> (VoiceRuntime, crossbeam_channel::Receiver<CallEvent>) {
    let rt = VoiceRuntime::start(&test_model_dir(), RuntimeConfig::default())
        .expect("models (run scripts/setup.sh)");
    let events = rt.events().clone();
    (rt, events)
}

fn serve(rt: &mut VoiceRuntime, port: MediaPort) {
    let agent = port.info.agent.clone();
    rt.add_call(port, AgentConfig::new(agent, Box::new(brain())))
        .unwrap();
}

/// Collect events until the call's `Ended` (or the deadline).
fn collect(events: &crossbeam_channel::Receiver<CallEvent>, limit: Duration) -> Vec<CallEvent> {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    while let Ok(ev) = events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let end = matches!(ev, CallEvent::Ended { .. });
        out.push(ev);
        if end {
            break;
        }
    }
    out
}

fn check_conversation(evs: &[CallEvent]) {
    // While the caller talked (3 s), partial transcripts came, each a prefix-ish of the question.
    let partials: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            CallEvent::Transcript {
                speaker: Speaker::Caller,
                text,
                is_final: false,
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(!partials.is_empty(), "no partial transcript: {evs:?}");
    let caller: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            CallEvent::Transcript {
                speaker: Speaker::Caller,
                text,
                is_final: true,
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        caller
            .iter()
            .any(|t| t.to_lowercase().contains("appointment")),
        "caller transcript: {caller:?}"
    );
    let agent: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            CallEvent::Transcript {
                speaker: Speaker::Agent,
                text,
                ..
            } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        agent.iter().any(|t| t.contains("confirmed for Friday")),
        "agent said: {agent:?}"
    );
    let v2v: Vec<f64> = evs
        .iter()
        .filter_map(|e| match e {
            CallEvent::Turn { metrics, .. } if metrics.stt_ms.is_some() => {
                metrics.voice_to_voice_ms
            }
            _ => None,
        })
        .collect();
    assert!(!v2v.is_empty(), "no measured turn: {evs:?}");
    eprintln!("voice-to-voice on the wire: {v2v:?} ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoken_question_gets_a_spoken_answer_over_sip() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // The question with silence around it: 0.5 s before, 4 s after to hear the answer.
    let mut audio = vec![0xffu8; 4000];
    audio.extend(fixture_ulaw("piper_booking"));
    let pcap = dir.path().join("question.pcap");
    vocelio_testkit::sipp::write_pcap(&pcap, &audio);
    let xml = dir.path().join("question.xml");
    std::fs::write(
        &xml,
        vocelio_testkit::sipp::speech_scenario(&pcap, audio.len() as u64 / 8 + 4000),
    )
    .unwrap();

    let (mut rt, voice_events) = voice();
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap(), 5);
    cfg.default_agent = Some(AgentId("demo".into()));
    cfg.trunks.push(TrunkConfig {
        name: "local".into(),
        address: "127.0.0.1:9".parse().unwrap(),
        transport: TransportKind::Udp,
        allow_from: vec!["127.0.0.1/32".parse::<IpNet>().unwrap()],
        outbound_auth: None,
        inbound_users: vec![],
        register: None,
        domain: None,
    });
    cfg.rtp_ports = (42_000, 42_999);
    let (sip, events, _task) = start(
        cfg,
        ListenConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            udp: true,
            tcp: false,
        },
    )
    .await
    .unwrap();
    let sip_addr: SocketAddr = sip.udp_addr.unwrap();
    let (media, media_events) = MediaEngine::start(MediaConfig {
        recordings: Some(dir.path().to_owned()),
        ..MediaConfig::default()
    })
    .unwrap();
    let (tx, mut out) = unbounded_channel();
    tokio::spawn(bridge::run(
        events,
        media_events,
        sip.clone(),
        media,
        AgentId("demo".into()),
        tx,
    ));
    let run = tokio::task::spawn_blocking(move || {
        std::process::Command::new("sipp")
            .arg(sip_addr.to_string())
            .args([
                "-sf",
                xml.to_str().unwrap(),
                "-s",
                "15550100001",
                "-i",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &free_udp_port().to_string(),
                "-mp",
                &free_udp_port().to_string(),
            ])
            .args(["-m", "1", "-nostdin", "-timeout", "60s", "-timeout_error"])
            .output()
            .expect("sipp (scripts/setup.sh installs sip-tester)")
    });
    // The call's port goes to the voice pipeline; wait for the media to end.
    let mut recording = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while recording.is_none() {
        match tokio::time::timeout_at(deadline, out.recv())
            .await
            .expect("call never ended")
        {
            Some(BridgeEvent::Port(p)) => serve(&mut rt, p),
            Some(BridgeEvent::Media(MediaEvent::Ended { recording: r, .. })) => {
                recording = Some(r.expect("recorded"))
            }
            Some(_) => {}
            None => panic!("bridge stopped"),
        }
    }
    let sipp = run.await.unwrap();
    assert!(
        sipp.status.success(),
        "sipp: {}{}",
        String::from_utf8_lossy(&sipp.stdout),
        String::from_utf8_lossy(&sipp.stderr)
    );
    let evs = tokio::task::spawn_blocking(move || collect(&voice_events, Duration::from_secs(10)))
        .await
        .unwrap();
    check_conversation(&evs);
    // On the wire: the agent's channel of the recording is loud after the question ended.
    let r = hound::WavReader::open(recording.unwrap()).unwrap();
    let s: Vec<i16> = r.into_samples::<i16>().map(Result::unwrap).collect();
    let agent: Vec<i16> = s.iter().skip(1).step_by(2).copied().collect();
    let question_end = audio.len();
    let after = &agent[question_end.min(agent.len())..];
    let loud = after
        .chunks(160)
        .filter(|c| (c.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / 160.0).sqrt() > 300.0)
        .count();
    assert!(
        loud >= 50,
        "only {loud} loud agent frames after the question"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoken_question_gets_a_spoken_answer_over_twilio() {
    let _serial = SERIAL.lock().await;
    let (rt, voice_events) = voice();
    let (tx, mut ports) = unbounded_channel::<MediaPort>();
    let state = TwilioState::new(
        TwilioConfig {
            public_host: "voice.example.test".into(),
            auth_token: String::new(),
            validate_signatures: false,
            numbers: Default::default(),
            default_agent: Some("demo".into()),
        },
        tx,
    )
    .unwrap();
    let app = vocelio_engine::twilio::router(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = std::thread::spawn(move || {
        let mut rt = rt;
        let rt_ports = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        if let Some(p) = rt_ports.block_on(ports.recv()) {
            serve(&mut rt, p);
        }
        rt
    });

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/twilio/media"))
        .await
        .unwrap();
    let sid = "MZe2e";
    ws.send(Message::text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    ))
    .await
    .unwrap();
    ws.send(Message::text(format!(
        r#"{{"event":"start","sequenceNumber":"1","streamSid":"{sid}","start":{{"accountSid":"AC1","streamSid":"{sid}","callSid":"CAe2e","tracks":["inbound"],"customParameters":{{"agent":"demo"}},"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#
    )))
    .await
    .unwrap();
    let mut audio = vec![linear_to_ulaw(0); 4000];
    audio.extend(fixture_ulaw("piper_booking"));
    audio.extend(vec![linear_to_ulaw(0); 8 * 5000]);
    let question_end_ms = (4000 + fixture_ulaw("piper_booking").len()) as u64 / 8;
    let (mut sink, mut stream) = ws.split();
    let (mark_tx, mut mark_rx) = unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        // (media time of each agent chunk's arrival in ms since start, loud?)
        let t0 = Instant::now();
        let mut got = Vec::new();
        let mut marks = 0;
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(t) = msg else { continue };
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            match v["event"].as_str() {
                Some("media") => {
                    let b = base64::engine::general_purpose::STANDARD
                        .decode(v["media"]["payload"].as_str().unwrap())
                        .unwrap();
                    got.push((t0.elapsed().as_millis() as u64, rms_ulaw(&b) > 300.0));
                }
                Some("mark") => {
                    marks += 1;
                    let _ = mark_tx.send(v["mark"]["name"].as_str().unwrap_or("").to_owned());
                }
                _ => {}
            }
        }
        (got, marks)
    });
    // Paced like Twilio: one 20 ms chunk every 20 ms; echo marks back as Twilio would.
    let start = tokio::time::Instant::now();
    for (i, chunk) in audio.chunks(160).enumerate() {
        tokio::time::sleep_until(start + Duration::from_millis(20 * i as u64)).await;
        // Twilio echoes a mark once the audio before it has played.
        while let Ok(name) = mark_rx.try_recv() {
            sink.send(Message::text(format!(
                r#"{{"event":"mark","sequenceNumber":"0","streamSid":"{sid}","mark":{{"name":"{name}"}}}}"#
            )))
            .await
            .unwrap();
        }
        let payload = base64::engine::general_purpose::STANDARD.encode(chunk);
        sink.send(Message::text(format!(
            r#"{{"event":"media","sequenceNumber":"{}","streamSid":"{sid}","media":{{"track":"inbound","chunk":"{}","timestamp":"{}","payload":"{payload}"}}}}"#,
            i + 2,
            i + 1,
            i * 20
        )))
        .await
        .unwrap();
    }
    sink.send(Message::text(format!(
        r#"{{"event":"stop","sequenceNumber":"9999","streamSid":"{sid}","stop":{{"accountSid":"AC1","callSid":"CAe2e"}}}}"#
    )))
    .await
    .unwrap();
    let (got, marks) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("stream did not close after stop")
        .unwrap();
    let _rt = server.join().unwrap();
    let evs = tokio::task::spawn_blocking(move || collect(&voice_events, Duration::from_secs(10)))
        .await
        .unwrap();
    check_conversation(&evs);
    // Agent audio came back as paced media after the question: several seconds of loud chunks.
    let loud_after = got
        .iter()
        .filter(|(at, loud)| *loud && *at > question_end_ms)
        .count();
    assert!(
        loud_after >= 50,
        "only {loud_after} loud chunks after the question"
    );
    assert!(marks >= 1, "no marks sent");
}
