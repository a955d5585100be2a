//! A real WebSocket client (tokio-tungstenite) plays a whole Twilio Media
//! Streams session against the running router: signed upgrade, `connected`,
//! `start`, bad input, fixture speech as paced `media`, a second burst that
//! barges in, `dtmf`, `stop`. An echo agent on the server side sends the
//! caller's audio back through the media port with a mark every 25 frames.
//! Plus the webhooks over plain HTTP: TwiML for a known number, 403 for bad
//! or missing signatures, and the status callback.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use vocelio_codecs::g711::ulaw_to_linear;
use vocelio_codecs::port::{HangupReason, MediaPort, PortControl, PortEvent};
use vocelio_engine::twilio::signature::expected_signature;
use vocelio_engine::twilio::{router, TwilioConfig, TwilioState};

const TOKEN: &str = "test-auth-token";
const HOST: &str = "voice.test";

async fn serve() -> (SocketAddr, TwilioState, mpsc::UnboundedReceiver<MediaPort>) {
    let config = TwilioConfig {
        public_host: HOST.into(),
        auth_token: TOKEN.into(),
        validate_signatures: true,
        numbers: HashMap::from([("+1 (415) 555-0100".to_string(), "echo".to_string())]),
        default_agent: None,
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let state = TwilioState::new(config, tx).expect("valid config");
    let app = router(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, state, rx)
}

fn rms(mulaw: &[u8]) -> f64 {
    let sum: f64 = mulaw
        .iter()
        .map(|&c| f64::from(ulaw_to_linear(c)).powi(2))
        .sum();
    (sum / mulaw.len().max(1) as f64).sqrt()
}

/// Mu-law has two codes for zero; a decode/encode round trip keeps only one.
fn canonical(c: u8) -> u8 {
    if c == 0x7F {
        0xFF
    } else {
        c
    }
}

/// What the echo agent saw, for the test to check.
#[derive(Debug)]
enum Seen {
    Event(PortEvent),
    BargeIn,
}

/// The server-side "pipeline": echoes inbound frames (held back 3 frames),
/// queues a mark after every 25 frames, and flushes when the caller starts
/// speaking again after a pause (barge-in).
fn echo_agent(port: MediaPort, seen: std::sync::mpsc::Sender<Seen>) {
    let mut pending = VecDeque::new();
    let (mut sent, mut next_mark, mut mark_due) = (0u64, 1u64, false);
    let (mut silent_run, mut barged) = (0u32, false);
    loop {
        let received = port.audio.recv_timeout(Duration::from_millis(5));
        let mut hung_up = false;
        while let Ok(ev) = port.events.try_recv() {
            hung_up |= matches!(ev, PortEvent::Hangup { .. });
            let _ = seen.send(Seen::Event(ev));
        }
        match received {
            Ok(frame) => {
                let level = frame.rms();
                if level < 50.0 {
                    silent_run += 1;
                } else {
                    if level > 300.0 && silent_run >= 15 && !barged {
                        barged = true;
                        pending.clear();
                        port.control(PortControl::Flush).unwrap();
                        let _ = seen.send(Seen::BargeIn);
                    }
                    silent_run = 0;
                }
                pending.push_back(frame);
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => hung_up = true,
        }
        if hung_up {
            return;
        }
        while port.outbound_room() > 0 {
            if mark_due {
                port.send_mark(next_mark).unwrap();
                next_mark += 1;
                mark_due = false;
                continue;
            }
            if pending.len() <= 3 {
                break;
            }
            let frame = pending.pop_front().unwrap();
            if port.send_frame(frame).is_err() {
                break;
            }
            sent += 1;
            mark_due = sent % 25 == 0;
        }
    }
}

fn media_msg(seq: &mut u64, chunk: u64, payload: &[u8]) -> Message {
    *seq += 1;
    Message::text(format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{}","payload":"{}"}},"streamSid":"MZtest"}}"#,
        (chunk - 1) * 20,
        STANDARD.encode(payload)
    ))
}

#[derive(Debug, Default)]
struct Received {
    media: Vec<Vec<u8>>,
    marks: Vec<String>,
    /// Number of media messages received before each `clear`.
    clears: Vec<usize>,
    close_code: Option<u16>,
    other: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_twilio_session() {
    tokio::time::timeout(Duration::from_secs(15), session())
        .await
        .expect("session finished in time");
}

async fn session() {
    let (addr, state, mut ports) = serve().await;
    let speech = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fixtures/audio/espeak_booking.8k.ulaw"
    ))
    .expect("fixture");
    let frames: Vec<&[u8]> = speech.chunks_exact(160).collect();
    // Speech 200 ms .. 1.4 s, half a second of silence, then speech again.
    let burst1 = &frames[10..70];
    let burst2 = &frames[75..100];

    // The agent takes the port as soon as `start` arrives.
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let agent = tokio::spawn(async move {
        let port = ports.recv().await.expect("a media port");
        assert_eq!(port.info.agent, "echo");
        assert_eq!(port.info.call_id, "CAtest");
        tokio::task::spawn_blocking(move || echo_agent(port, seen_tx))
            .await
            .unwrap();
    });

    let mut req = format!("ws://{addr}/twilio/media")
        .into_client_request()
        .unwrap();
    let sig = expected_signature(TOKEN, &format!("wss://{HOST}/twilio/media"), &[]);
    req.headers_mut()
        .insert("X-Twilio-Signature", sig.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("signed upgrade accepted");
    let (mut tx, mut rx) = ws.split();

    // Reader: collect what the server sends; hand marks to the writer to echo.
    let (mark_tx, mut mark_rx) = mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        let mut got = Received::default();
        while let Some(msg) = rx.next().await {
            match msg {
                Ok(Message::Text(t)) => {
                    let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                    assert_eq!(v["streamSid"], "MZtest");
                    match v["event"].as_str().unwrap() {
                        "media" => got.media.push(
                            STANDARD
                                .decode(v["media"]["payload"].as_str().unwrap())
                                .unwrap(),
                        ),
                        "mark" => {
                            let name = v["mark"]["name"].as_str().unwrap().to_owned();
                            let _ = mark_tx.send(name.clone());
                            got.marks.push(name);
                        }
                        "clear" => got.clears.push(got.media.len()),
                        other => got.other.push(other.to_owned()),
                    }
                }
                Ok(Message::Close(frame)) => {
                    got.close_code = frame.map(|f| u16::from(f.code));
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        got
    });

    // Writer: Twilio's side of the session, paced in real time.
    let mut seq = 0u64;
    tx.send(Message::text(
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#,
    ))
    .await
    .unwrap();
    tx.send(Message::text(
        r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"ACtest","streamSid":"MZtest","callSid":"CAtest","tracks":["inbound"],"customParameters":{"agent":"echo"},"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"streamSid":"MZtest"}"#,
    ))
    .await
    .unwrap();
    seq += 1;
    // Bad input on the live socket: none of it may end the stream.
    tx.send(Message::text("{this is not json")).await.unwrap();
    tx.send(Message::binary(vec![0u8, 1, 2, 3])).await.unwrap();
    tx.send(Message::text(
        r#"{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"%%%not-base64%%%"},"streamSid":"MZtest"}"#,
    ))
    .await
    .unwrap();
    tx.send(Message::text(
        r#"{"event":"surprise","streamSid":"MZtest"}"#,
    ))
    .await
    .unwrap();

    let silence = [0xFFu8; 160];
    let script: Vec<&[u8]> = burst1
        .iter()
        .copied()
        .chain(std::iter::repeat_n(&silence[..], 25))
        .chain(burst2.iter().copied())
        .chain(std::iter::repeat_n(&silence[..], 15))
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for (i, chunk) in script.iter().enumerate() {
        tick.tick().await;
        while let Ok(name) = mark_rx.try_recv() {
            seq += 1;
            tx.send(Message::text(format!(
                r#"{{"event":"mark","sequenceNumber":"{seq}","streamSid":"MZtest","mark":{{"name":"{name}"}}}}"#
            )))
            .await
            .unwrap();
        }
        tx.send(media_msg(&mut seq, i as u64 + 1, chunk))
            .await
            .unwrap();
        if i == burst1.len() + 10 {
            seq += 1;
            tx.send(Message::text(format!(
                r#"{{"event":"dtmf","streamSid":"MZtest","sequenceNumber":"{seq}","dtmf":{{"track":"inbound_track","digit":"5"}}}}"#
            )))
            .await
            .unwrap();
        }
    }
    seq += 1;
    tx.send(Message::text(format!(
        r#"{{"event":"stop","sequenceNumber":"{seq}","streamSid":"MZtest","stop":{{"accountSid":"ACtest","callSid":"CAtest"}}}}"#
    )))
    .await
    .unwrap();

    let got = reader.await.unwrap();
    agent.await.unwrap();
    let seen: Vec<Seen> = seen_rx.try_iter().collect();

    // The server closed normally after `stop`.
    assert_eq!(got.close_code, Some(1000), "{got:?}");
    assert!(got.other.is_empty(), "unexpected events {:?}", got.other);

    // Agent audio came back as 20 ms mu-law media: the caller's own speech,
    // byte for byte, with the same energy.
    assert!(
        got.media.len() >= 60,
        "only {} media messages",
        got.media.len()
    );
    assert!(got.media.iter().all(|m| m.len() == 160));
    for (i, (back, sent)) in got.media.iter().zip(burst1).enumerate().take(50) {
        let sent: Vec<u8> = sent.iter().map(|&c| canonical(c)).collect();
        assert_eq!(back, &sent, "echoed frame {i} differs");
    }
    let sent_rms = rms(&burst1[..50].concat());
    let back_rms = rms(&got.media[..50].concat());
    assert!(back_rms > 500.0, "echo is silent ({back_rms})");
    assert!(
        (back_rms / sent_rms - 1.0).abs() < 0.01,
        "echo energy {back_rms} vs sent {sent_rms}"
    );

    // A mark after each 25 agent frames, and the agent heard about the
    // ones we echoed, only after we echoed them.
    assert!(
        got.marks.len() >= 2 && got.marks[..2] == ["1", "2"],
        "marks {:?}",
        got.marks
    );
    let played: Vec<u64> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Event(PortEvent::MarkPlayed { id, .. }) => Some(*id),
            _ => None,
        })
        .collect();
    assert!(played.starts_with(&[1, 2]), "marks played {played:?}");

    // Barge-in: the agent flushed, the client got exactly one `clear`.
    assert!(
        seen.iter().any(|s| matches!(s, Seen::BargeIn)),
        "no barge-in"
    );
    assert_eq!(got.clears.len(), 1, "clears {:?}", got.clears);
    assert!(
        got.clears[0] >= 50,
        "clear came too early: {:?}",
        got.clears
    );
    assert!(seen
        .iter()
        .any(|s| matches!(s, Seen::Event(PortEvent::Flushed { .. }))));

    // DTMF and the end of the call reached the pipeline.
    assert!(seen
        .iter()
        .any(|s| matches!(s, Seen::Event(PortEvent::Dtmf { digit: '5', .. }))));
    assert!(matches!(
        seen.last(),
        Some(Seen::Event(PortEvent::Hangup {
            reason: HangupReason::Remote,
            ..
        }))
    ));
    assert!(matches!(
        seen.first(),
        Some(Seen::Event(PortEvent::Started))
    ));

    // The bad input was counted, and the stream carried on regardless.
    let mut totals = state.stream_totals();
    for _ in 0..100 {
        if state.active_streams() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        totals = state.stream_totals();
    }
    assert_eq!(state.active_streams(), 0);
    assert_eq!(
        (
            totals.malformed_json,
            totals.binary_frames,
            totals.bad_base64,
            totals.unknown_events
        ),
        (1, 1, 1, 1),
        "{totals:?}"
    );
    assert_eq!(totals.media_in as usize, script.len());
    assert_eq!(totals.clears_out, 1);
}

#[tokio::test]
async fn upgrades_without_a_valid_signature_get_403() {
    let (addr, state, _ports) = serve().await;
    let url = format!("ws://{addr}/twilio/media");
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("unsigned upgrade: {:?}", other.map(|_| ())),
    }
    let mut req = url.as_str().into_client_request().unwrap();
    // Signed for another host.
    let sig = expected_signature(TOKEN, "wss://evil.test/twilio/media", &[]);
    req.headers_mut()
        .insert("X-Twilio-Signature", sig.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("wrongly signed upgrade: {:?}", other.map(|_| ())),
    }
    assert_eq!(state.total_streams(), 0);
}

/// A form POST over a plain TCP socket; returns (status, content type, body).
async fn post_form(
    addr: SocketAddr,
    path: &str,
    params: &[(&str, &str)],
    signature: Option<String>,
) -> (u16, String, String) {
    let body = serde_urlencoded::to_string(params).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(sig) = signature {
        req.push_str(&format!("X-Twilio-Signature: {sig}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(req.as_bytes()).await.unwrap();
    let mut resp = String::new();
    sock.read_to_string(&mut resp).await.unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    (status, ctype, body.to_owned())
}

fn sign(path: &str, params: &[(&str, &str)]) -> String {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    expected_signature(TOKEN, &format!("https://{HOST}{path}"), &owned)
}

#[tokio::test]
async fn voice_webhook_answers_with_twiml() {
    let (addr, _state, _ports) = serve().await;
    let params = [
        ("CallSid", "CA123"),
        ("AccountSid", "AC123"),
        ("From", "+14155550199"),
        ("To", "+14155550100"),
        ("CallStatus", "ringing"),
    ];
    let (status, ctype, body) = post_form(
        addr,
        "/twilio/voice",
        &params,
        Some(sign("/twilio/voice", &params)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("text/xml"), "{ctype}");
    assert!(
        body.contains(r#"<Stream url="wss://voice.test/twilio/media""#),
        "{body}"
    );
    assert!(body.contains(r#"statusCallback="https://voice.test/twilio/status""#));
    assert!(
        body.contains(r#"<Parameter name="agent" value="echo"/>"#),
        "{body}"
    );

    // A number nobody serves is rejected in TwiML.
    let other = [("CallSid", "CA124"), ("To", "+14155550111")];
    let (status, _, body) = post_form(
        addr,
        "/twilio/voice",
        &other,
        Some(sign("/twilio/voice", &other)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("<Reject"), "{body}");

    // Tampered parameter, tampered URL, missing header: 403 with a JSON error.
    let mut tampered = params;
    tampered[3].1 = "+14155550111";
    let (status, ctype, body) = post_form(
        addr,
        "/twilio/voice",
        &tampered,
        Some(sign("/twilio/voice", &params)),
    )
    .await;
    assert_eq!(status, 403);
    assert!(ctype.starts_with("application/json"), "{ctype}");
    assert!(body.contains("forbidden"), "{body}");
    let (status, _, _) = post_form(
        addr,
        "/twilio/voice?x=1",
        &params,
        Some(sign("/twilio/voice", &params)),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _, _) = post_form(addr, "/twilio/voice", &params, None).await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn status_callbacks_are_recorded() {
    let (addr, state, _ports) = serve().await;
    for (event, error) in [
        ("stream-started", None),
        (
            "stream-error",
            Some("Stream - WebSocket - Connection Refused"),
        ),
        ("stream-stopped", None),
    ] {
        let mut params = vec![
            ("AccountSid", "AC1"),
            ("CallSid", "CA1"),
            ("StreamSid", "MZ1"),
            ("StreamEvent", event),
            ("Timestamp", "2025-01-01T00:00:00Z"),
        ];
        if let Some(e) = error {
            params.push(("StreamError", e));
        }
        let (status, _, body) = post_form(
            addr,
            "/twilio/status",
            &params,
            Some(sign("/twilio/status", &params)),
        )
        .await;
        assert_eq!(status, 204, "{body}");
    }
    let counts = state.status_counts();
    assert_eq!((counts.started, counts.errors, counts.stopped), (1, 1, 1));
    let recent = state.recent_status();
    assert_eq!(recent.len(), 3);
    assert_eq!(
        recent[1].error.as_deref(),
        Some("Stream - WebSocket - Connection Refused")
    );
    let (status, _, _) = post_form(addr, "/twilio/status", &[("StreamEvent", "x")], None).await;
    assert_eq!(status, 403);
    assert_eq!(state.status_counts().other, 0);
}
