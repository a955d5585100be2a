//! The SIP trunk endpoint against a real peer: sipp (Debian `sip-tester`)
//! on 127.0.0.1. Each test starts the service on free ports, runs a bounded
//! sipp scenario, and checks sipp's verdict, the call events, and that no
//! call state is left behind.

use std::net::{SocketAddr, UdpSocket as StdUdp};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;
use vocelio_engine::endpoint::driver::SipHandle;
use vocelio_engine::endpoint::{CallEvent, HangupCause, TrunkConfig};
use vocelio_engine::sip::transaction::TransportKind;

mod common;
use common::{config, free_udp_port, owned, scenario, service, sipp, SippRun, DID};

fn drain(events: &mut UnboundedReceiver<CallEvent>) -> Vec<CallEvent> {
    let mut v = Vec::new();
    while let Ok(e) = events.try_recv() {
        v.push(e);
    }
    v
}

/// After the calls: no call, no RTP port, and (once the RFC 3261 timers ran) no transaction is left.
async fn assert_no_state_left(handle: &SipHandle) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = handle.snapshot().await.unwrap();
        if s.stats.active_calls == 0 && s.ports_in_use == 0 && s.transactions == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "state left behind: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_1000_calls_over_udp() {
    let (handle, mut events, addr) = service(config(Duration::ZERO, "127.0.0.1/32")).await;
    let run = sipp(addr, owned(&["-sn", "uac", "-r", "200", "-l", "200"]), 1000).await;
    assert!(
        run.success && run.failed_calls == 0 && run.successful_calls == 1000,
        "sipp: {} ok, {} failed\n{}",
        run.successful_calls,
        run.failed_calls,
        run.output
    );
    assert_no_state_left(&handle).await;
    let evs = drain(&mut events);
    let answered = evs
        .iter()
        .filter(|e| matches!(e, CallEvent::Answered { .. }))
        .count();
    let byes = evs
        .iter()
        .filter(|e| {
            matches!(
                e,
                CallEvent::Hangup {
                    cause: HangupCause::RemoteBye,
                    ..
                }
            )
        })
        .count();
    assert_eq!((answered, byes), (1000, 1000));
    let s = handle.snapshot().await.unwrap();
    assert_eq!(s.stats.calls_answered, 1000);
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_1000_calls_over_tcp() {
    let (handle, mut events, addr) = service(config(Duration::ZERO, "127.0.0.1/32")).await;
    let run = sipp(
        addr,
        owned(&["-sn", "uac", "-t", "t1", "-r", "200", "-l", "200"]),
        1000,
    )
    .await;
    assert!(
        run.success && run.failed_calls == 0 && run.successful_calls == 1000,
        "sipp: {} ok, {} failed\n{}",
        run.successful_calls,
        run.failed_calls,
        run.output
    );
    assert_no_state_left(&handle).await;
    let byes = drain(&mut events)
        .iter()
        .filter(|e| {
            matches!(
                e,
                CallEvent::Hangup {
                    cause: HangupCause::RemoteBye,
                    ..
                }
            )
        })
        .count();
    assert_eq!(byes, 1000);
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_cancel_while_ringing_gets_487() {
    // Ring for 10 s so the caller's CANCEL arrives before we answer.
    let (handle, mut events, addr) = service(config(Duration::from_secs(10), "127.0.0.1/32")).await;
    let run = sipp(
        addr,
        owned(&["-sf", &scenario("cancel.xml"), "-r", "10"]),
        20,
    )
    .await;
    assert!(run.success && run.successful_calls == 20, "{}", run.output);
    assert_no_state_left(&handle).await;
    let evs = drain(&mut events);
    assert_eq!(
        evs.iter()
            .filter(|e| matches!(
                e,
                CallEvent::Hangup {
                    cause: HangupCause::Cancelled,
                    ..
                }
            ))
            .count(),
        20
    );
    assert!(
        !evs.iter().any(|e| matches!(e, CallEvent::Answered { .. })),
        "a cancelled call was answered"
    );
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_late_offer_answer_in_ack() {
    let (handle, mut events, addr) = service(config(Duration::ZERO, "127.0.0.1/32")).await;
    let run = sipp(
        addr,
        owned(&["-sf", &scenario("late_offer.xml"), "-r", "20"]),
        20,
    )
    .await;
    assert!(run.success && run.successful_calls == 20, "{}", run.output);
    assert_no_state_left(&handle).await;
    let evs = drain(&mut events);
    let media: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let CallEvent::MediaUpdated { media, .. } = e {
                Some(media)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        media.len(),
        20,
        "each ACK's SDP answer completes the negotiation"
    );
    assert!(media
        .iter()
        .all(|m| m.payload_type == 0 && m.remote_rtp.ip().is_loopback()));
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_info_dtmf_and_reinvite_hold_unhold() {
    let (handle, mut events, addr) = service(config(Duration::ZERO, "127.0.0.1/32")).await;
    let run = sipp(addr, owned(&["-sf", &scenario("hold.xml"), "-r", "5"]), 5).await;
    assert!(run.success && run.successful_calls == 5, "{}", run.output);
    assert_no_state_left(&handle).await;
    let evs = drain(&mut events);
    let digits: Vec<char> = evs
        .iter()
        .filter_map(|e| {
            if let CallEvent::Dtmf { digit, .. } = e {
                Some(*digit)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(digits, vec!['5'; 5]);
    let updates: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let CallEvent::MediaUpdated { media, .. } = e {
                Some(media.direction)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        updates.len(),
        10,
        "hold and unhold for each call: {updates:?}"
    );
    assert_eq!(
        updates
            .iter()
            .filter(|d| !d.receives() || !d.sends())
            .count(),
        5,
        "{updates:?}"
    );
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_blind_transfer_by_refer() {
    let (handle, mut events, addr) = service(config(Duration::ZERO, "127.0.0.1/32")).await;
    let sipp_task = tokio::spawn(sipp(
        addr,
        owned(&["-sf", &scenario("refer.xml"), "-r", "2"]),
        2,
    ));
    let mut transferred = 0;
    let mut accepted = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while transferred < 2 {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("transfer did not complete")
            .unwrap();
        match ev {
            CallEvent::Answered { call, .. } => {
                // Give the caller's ACK a moment, then transfer.
                tokio::time::sleep(Duration::from_millis(100)).await;
                handle
                    .transfer(call, "sip:+15550100099@127.0.0.1")
                    .await
                    .unwrap()
                    .unwrap();
            }
            CallEvent::TransferAccepted { .. } => accepted += 1,
            CallEvent::Hangup {
                cause: HangupCause::Transferred,
                ..
            } => transferred += 1,
            CallEvent::Hangup { cause, .. } => panic!("unexpected hangup {cause:?}"),
            _ => {}
        }
    }
    let run = sipp_task.await.unwrap();
    assert!(run.success && run.successful_calls == 2, "{}", run.output);
    assert_eq!(accepted, 2);
    assert_no_state_left(&handle).await;
    handle.shutdown();
}

fn raw_request(
    method: &str,
    target: SocketAddr,
    local: SocketAddr,
    extra: &str,
    branch: &str,
) -> String {
    format!(
        "{method} sip:{DID}@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\nFrom: <sip:tester@{local}>;tag=t{branch}\r\nTo: <sip:{DID}@{target}>\r\nCall-ID: {branch}@test\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn exchange(sock: &StdUdp, target: SocketAddr, msg: &str) -> String {
    sock.send_to(msg.as_bytes(), target).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = sock.recv_from(&mut buf).expect("no answer within 5 s");
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.starts_with("SIP/2.0 100") {
            return text;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_unknown_methods_require_and_access_control() {
    let (handle, _events, addr) = service(config(Duration::ZERO, "127.0.0.1/32")).await;
    let answers = tokio::task::spawn_blocking(move || {
        let sock = StdUdp::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = sock.local_addr().unwrap();
        vec![
            exchange(
                &sock,
                addr,
                &raw_request("OPTIONS", addr, local, "", "opt1"),
            ),
            exchange(
                &sock,
                addr,
                &raw_request("FROBNICATE", addr, local, "", "frob1"),
            ),
            exchange(
                &sock,
                addr,
                &raw_request("INVITE", addr, local, "Require: 100rel-xyz\r\n", "req1"),
            ),
            exchange(
                &sock,
                addr,
                // An in-dialog BYE (To has a tag) for a dialog that does not exist.
                &raw_request("BYE", addr, local, "", "bye1").replace(
                    &format!("{}>\r\n", addr),
                    &format!("{}>;tag=nope\r\n", addr),
                ),
            ),
        ]
    })
    .await
    .unwrap();
    assert!(
        answers[0].starts_with("SIP/2.0 200") && answers[0].contains("Allow: INVITE"),
        "{}",
        answers[0]
    );
    assert!(answers[1].starts_with("SIP/2.0 501"), "{}", answers[1]);
    assert!(
        answers[2].starts_with("SIP/2.0 420") && answers[2].contains("Unsupported: 100rel-xyz"),
        "{}",
        answers[2]
    );
    assert!(answers[3].starts_with("SIP/2.0 481"), "{}", answers[3]);
    // An offer with only G.729 has nothing in common with us: 488, and no call is set up.
    let g729 = tokio::task::spawn_blocking(move || {
        let sock = StdUdp::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = sock.local_addr().unwrap();
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n";
        let invite = raw_request("INVITE", addr, local, "Content-Type: application/sdp\r\n", "g729")
            .replace("Content-Length: 0\r\n\r\n", &format!("Content-Length: {}\r\n\r\n{sdp}", sdp.len()));
        exchange(&sock, addr, &invite)
    })
    .await
    .unwrap();
    assert!(g729.starts_with("SIP/2.0 488"), "{g729}");
    assert_eq!(handle.snapshot().await.unwrap().stats.active_calls, 0);
    handle.shutdown();

    // A source no trunk allows cannot make a call: 403, and nothing is set up.
    let (handle, mut events, addr) = service(config(Duration::ZERO, "10.0.0.0/8")).await;
    let answer = tokio::task::spawn_blocking(move || {
        let sock = StdUdp::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let local = sock.local_addr().unwrap();
        exchange(
            &sock,
            addr,
            &raw_request("INVITE", addr, local, "", "deny1"),
        )
    })
    .await
    .unwrap();
    assert!(answer.starts_with("SIP/2.0 403"), "{answer}");
    let s = handle.snapshot().await.unwrap();
    assert_eq!((s.stats.active_calls, s.stats.unauthorised), (0, 1));
    assert!(drain(&mut events).is_empty());
    handle.shutdown();
}

/// sipp as the far end (provider/registrar): listens on `port`, runs one call of `scenario`.
fn sipp_uas(scenario_file: &str, port: u16) -> tokio::task::JoinHandle<SippRun> {
    let args: Vec<String> = owned(&[
        "-sf",
        &scenario(scenario_file),
        "-i",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-mp",
        &free_udp_port().to_string(),
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "30s",
        "-timeout_error",
    ]);
    tokio::task::spawn_blocking(move || {
        let out = Command::new("sipp").args(&args).output().expect("sipp");
        SippRun {
            success: out.status.success(),
            successful_calls: 0,
            failed_calls: 0,
            output: format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    })
}

fn provider_trunk(port: u16, register: bool) -> TrunkConfig {
    TrunkConfig {
        name: "provider".into(),
        address: SocketAddr::from(([127, 0, 0, 1], port)),
        transport: TransportKind::Udp,
        allow_from: vec!["127.0.0.1/32".parse().unwrap()],
        outbound_auth: Some(vocelio_engine::endpoint::DigestCredentials {
            username: "alice".into(),
            password: "s3cret".into(),
        }),
        inbound_users: vec![],
        register: register.then(|| vocelio_engine::endpoint::config::RegisterConfig {
            user: "alice".into(),
            expires: 300,
        }),
        domain: Some("provider.test".into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn originate_answers_the_providers_digest_challenge() {
    let provider_port = free_udp_port();
    let provider = sipp_uas("uas_auth.xml", provider_port);
    let mut cfg = config(Duration::ZERO, "127.0.0.1/32");
    cfg.trunks.push(provider_trunk(provider_port, false));
    cfg.codecs = vec![
        vocelio_engine::sdp::Codec::Pcmu,
        vocelio_engine::sdp::Codec::Pcma,
    ];
    let (handle, mut events, _addr) = service(cfg).await;
    // Our INVITE is retransmitted (T1 = 50 ms) until sipp is listening.
    let call = handle
        .originate("+1 555 010 0077", "+15550100001", "provider")
        .await
        .unwrap()
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no answer from the provider")
            .unwrap()
        {
            CallEvent::Answered { call: c, media, .. } => {
                assert_eq!(c, call);
                let m = media.expect("SDP answer in the 200");
                assert_eq!(
                    (m.codec, m.payload_type),
                    (vocelio_engine::sdp::Codec::Pcma, 8)
                );
                break;
            }
            CallEvent::Hangup { cause, .. } => panic!("call ended before answer: {cause:?}"),
            _ => {}
        }
    }
    handle.hangup(call).await.unwrap().unwrap();
    let run = provider.await.unwrap();
    assert!(
        run.success,
        "provider scenario failed (bad credentials get 403):\n{}",
        run.output
    );
    assert_no_state_left(&handle).await;
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_answers_the_registrars_digest_challenge() {
    let registrar_port = free_udp_port();
    let registrar = sipp_uas("uas_register.xml", registrar_port);
    let mut cfg = config(Duration::ZERO, "127.0.0.1/32");
    cfg.trunks.push(provider_trunk(registrar_port, true));
    let (handle, mut events, _addr) = service(cfg).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("no registration outcome")
            .unwrap()
        {
            CallEvent::Registered { trunk, expires } => {
                assert_eq!((trunk.as_str(), expires), ("provider", 120));
                break;
            }
            CallEvent::RegistrationFailed { status, .. } => {
                panic!("registration failed with {status}")
            }
            _ => {}
        }
    }
    let run = registrar.await.unwrap();
    assert!(run.success, "{}", run.output);
    handle.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_digest_for_sources_no_trunk_allows() {
    // Loopback is not allowlisted: callers must authenticate.
    let mut cfg = config(Duration::ZERO, "10.0.0.0/8");
    // sipp 3.6 answers only the first challenge and only with MD5.
    cfg.digest_algorithms = vec![vocelio_engine::sip::auth::Algorithm::Md5];
    cfg.trunks[0].inbound_users = vec![vocelio_engine::endpoint::DigestCredentials {
        username: "alice".into(),
        password: "s3cret".into(),
    }];
    let (handle, mut events, addr) = service(cfg).await;
    // sipp's digest uri defaults to sip:host:port; ours must be the Request-URI (RFC 3261 §22.4).
    let auth_uri = format!("{DID}@{addr}");
    let run = sipp(
        addr,
        owned(&[
            "-sf",
            &scenario("uac_auth.xml"),
            "-auth_uri",
            &auth_uri,
            "-au",
            "alice",
            "-ap",
            "s3cret",
            "-r",
            "3",
        ]),
        3,
    )
    .await;
    assert!(run.success && run.successful_calls == 3, "{}", run.output);
    let answered = drain(&mut events)
        .iter()
        .filter(|e| matches!(e, CallEvent::Answered { .. }))
        .count();
    assert_eq!(answered, 3);
    // A wrong password is challenged again and never gets a call up.
    let run = sipp(
        addr,
        owned(&[
            "-sf",
            &scenario("uac_auth.xml"),
            "-auth_uri",
            &auth_uri,
            "-au",
            "alice",
            "-ap",
            "wrong",
            "-r",
            "1",
            "-timeout",
            "5s",
        ]),
        1,
    )
    .await;
    assert!(!run.success, "{}", run.output);
    assert!(!drain(&mut events)
        .iter()
        .any(|e| matches!(e, CallEvent::Answered { .. })));
    assert_no_state_left(&handle).await;
    handle.shutdown();
}
