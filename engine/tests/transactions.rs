//! RFC 3261 §17 transaction layer, driven with fake time: every test builds
//! its `Instant`s as `base + Duration` and calls `handle_timeout` at
//! `poll_timeout()`. Nothing sleeps.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use vocelio_engine::sip::transaction::{
    CancelTarget, Peer, TimeoutCause, TimerConfig, TransactionConfig, TransactionKey,
    TransactionLayer, Transmit, TransportKind, TxError, TxEvent, TxState, Uas2xxEvent,
    Uas2xxRetransmitter,
};
use vocelio_engine::sip::{
    parse_datagram, HeaderName, Method, Request, Response, SipMessage, StatusCode,
};

const T1: Duration = Duration::from_millis(500);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn peer(last_octet: u8, transport: TransportKind) -> Peer {
    Peer {
        addr: std::net::SocketAddr::from(([10, 0, 0, last_octet], 5060)),
        transport,
    }
}

fn udp() -> Peer {
    peer(2, TransportKind::Udp)
}

fn tcp() -> Peer {
    peer(2, TransportKind::Tcp)
}

/// A request as a peer at 10.0.0.1 would send it.
fn request(method: &str, branch: &str, cseq: u32, call_id: &str) -> Request {
    request_with(method, branch, cseq, call_id, "")
}

fn request_with(method: &str, branch: &str, cseq: u32, call_id: &str, to_tag: &str) -> Request {
    let cseq_method = method;
    let to_tag = if to_tag.is_empty() {
        String::new()
    } else {
        format!(";tag={to_tag}")
    };
    let text = format!(
        "{method} sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         Route: <sip:proxy.example.com;lr>\r\n\
         To: <sip:bob@example.com>{to_tag}\r\n\
         From: <sip:alice@example.com>;tag=alice1\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} {cseq_method}\r\n\
         Timestamp: 54\r\n\r\n"
    );
    match parse_datagram(text.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("bad test request: {other:?}"),
    }
}

fn response(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let status = StatusCode::new(code).expect("status");
    let mut r = req.make_response(status, status.canonical_reason());
    if let Some(tag) = to_tag {
        let to = r
            .headers
            .get(&HeaderName::To)
            .and_then(|h| h.value_str().ok())
            .expect("To")
            .to_owned();
        r.headers.remove(&HeaderName::To);
        r.headers
            .append(HeaderName::To, &format!("{to};tag={tag}"))
            .expect("To");
    }
    r
}

fn parse(t: &Transmit) -> SipMessage {
    parse_datagram(&t.bytes).expect("layer output parses")
}

fn status_of(t: &Transmit) -> Option<u16> {
    parse(t).as_response().map(|r| r.status.as_u16())
}

fn method_of(t: &Transmit) -> Option<Method> {
    parse(t).as_request().map(|r| r.method.clone())
}

/// A layer with a fake clock, recording everything it emits with the
/// offset from `base` at which it came out.
struct Harness {
    layer: TransactionLayer,
    base: Instant,
    now: Instant,
    sent: Vec<(Duration, Transmit)>,
    events: Vec<(Duration, TxEvent)>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with(TransactionConfig::default())
    }

    fn with(cfg: TransactionConfig) -> Harness {
        let base = Instant::now();
        Harness {
            layer: TransactionLayer::new(cfg).expect("valid config"),
            base,
            now: base,
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn drain(&mut self) {
        let at = self.now - self.base;
        while let Some(t) = self.layer.poll_transmit() {
            self.sent.push((at, t));
        }
        while let Some(e) = self.layer.poll_event() {
            self.events.push((at, e));
        }
    }

    /// Runs every timer up to `base + offset`, then sets the clock there.
    fn run_until(&mut self, offset: Duration) {
        let end = self.base + offset;
        while let Some(d) = self.layer.poll_timeout() {
            if d > end {
                break;
            }
            assert!(d >= self.now, "deadline in the past");
            self.now = d;
            self.layer.handle_timeout(d);
            self.drain();
            if let Some(next) = self.layer.poll_timeout() {
                assert!(next > d, "handle_timeout left a due timer");
            }
        }
        self.now = end;
    }

    fn run_all(&mut self) {
        self.run_until(Duration::from_secs(3600));
    }

    fn send_request(&mut self, req: Request, to: Peer) -> TransactionKey {
        let k = self.layer.send_request(self.now, req, to).expect("send");
        self.drain();
        k
    }

    fn send_response(&mut self, key: &TransactionKey, resp: Response) {
        self.layer
            .send_response(self.now, key, resp)
            .expect("send_response");
        self.drain();
    }

    fn recv(&mut self, msg: SipMessage, from: Peer) {
        self.layer.handle_message(self.now, msg, from);
        self.drain();
    }

    fn take_sent(&mut self) -> Vec<(Duration, Transmit)> {
        std::mem::take(&mut self.sent)
    }

    fn take_events(&mut self) -> Vec<(Duration, TxEvent)> {
        std::mem::take(&mut self.events)
    }

    fn times(sent: &[(Duration, Transmit)]) -> Vec<Duration> {
        sent.iter().map(|(t, _)| *t).collect()
    }

    /// The server key of the only `Request` event so far.
    fn request_key(&self) -> TransactionKey {
        let keys: Vec<_> = self
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                TxEvent::Request { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(keys.len(), 1, "{:?}", self.events);
        keys[0].clone()
    }
}

fn count<F: Fn(&TxEvent) -> bool>(events: &[(Duration, TxEvent)], f: F) -> usize {
    events.iter().filter(|(_, e)| f(e)).count()
}

fn timeouts(events: &[(Duration, TxEvent)]) -> Vec<(Duration, TimeoutCause)> {
    events
        .iter()
        .filter_map(|(t, e)| match e {
            TxEvent::Timeout { cause, .. } => Some((*t, *cause)),
            _ => None,
        })
        .collect()
}

// ---- client transactions --------------------------------------------------

#[test]
fn invite_client_over_udp_retransmits_with_timer_a_and_times_out_with_b() {
    let mut h = Harness::new();
    let req = request("INVITE", "z9hG4bKinv1", 1, "c1");
    let key = h.send_request(req, udp());
    assert_eq!(h.layer.state(&key), Some(TxState::Calling));
    h.run_all();
    let sent = h.take_sent();
    assert_eq!(
        Harness::times(&sent),
        [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5].map(secs),
        "intervals 0.5, 1, 2, 4, 8, 16 s"
    );
    assert_eq!(sent.len(), 7, "the request and 6 retransmissions");
    assert!(
        sent.windows(2).all(|w| w[0].1 == w[1].1),
        "identical copies"
    );
    assert!(sent.iter().all(|(_, t)| t.to == udp()));
    let events = h.take_events();
    assert_eq!(timeouts(&events), [(T1 * 64, TimeoutCause::TimerB)]);
    assert!(
        matches!(events.last(), Some((t, TxEvent::Terminated { key: k })) if *t == T1 * 64 && *k == key)
    );
    assert!(h.layer.is_empty());
}

#[test]
fn non_invite_client_caps_timer_e_at_t2_and_times_out_with_f() {
    let mut h = Harness::new();
    h.send_request(request("OPTIONS", "z9hG4bKopt1", 1, "c1"), udp());
    h.run_all();
    let sent = h.take_sent();
    assert_eq!(
        Harness::times(&sent),
        [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5].map(secs),
        "intervals 0.5, 1, 2, 4, 4, 4 ..."
    );
    assert_eq!(
        timeouts(&h.take_events()),
        [(secs(32.0), TimeoutCause::TimerF)]
    );
    assert_eq!(h.layer.len(), 0);
}

#[test]
fn non_invite_client_retransmits_every_t2_after_a_provisional() {
    let mut h = Harness::new();
    let req = request("REGISTER", "z9hG4bKreg1", 1, "c1");
    let key = h.send_request(req.clone(), udp());
    h.run_until(secs(0.6));
    h.recv(SipMessage::Response(response(&req, 100, None)), udp());
    assert_eq!(h.layer.state(&key), Some(TxState::Proceeding));
    h.run_until(secs(20.0));
    let times = Harness::times(&h.take_sent());
    assert_eq!(times[..2], [0.0, 0.5].map(secs));
    // Timer E was armed for 1.5 s (interval 1 s) before the 100; every
    // firing in Proceeding re-arms it with T2.
    assert_eq!(times[2..], [1.5, 5.5, 9.5, 13.5, 17.5].map(secs));
    // The final ends the retransmissions; K = T4 ends the transaction.
    h.recv(SipMessage::Response(response(&req, 200, Some("b"))), udp());
    h.recv(SipMessage::Response(response(&req, 200, Some("b"))), udp());
    h.run_all();
    assert!(h.take_sent().is_empty());
    let events = h.take_events();
    assert_eq!(
        count(&events, |e| matches!(e, TxEvent::Response { .. })),
        2,
        "100 and the first 200 only"
    );
    assert!(matches!(events.last(), Some((t, TxEvent::Terminated { .. })) if *t == secs(25.0)));
    assert_eq!(h.layer.stats().absorbed, 1);
}

#[test]
fn reliable_transport_has_no_retransmissions_but_keeps_b_and_f() {
    for method in ["INVITE", "BYE"] {
        let mut h = Harness::new();
        h.send_request(request(method, "z9hG4bKtcp1", 1, "c1"), tcp());
        h.run_all();
        assert_eq!(Harness::times(&h.take_sent()), [Duration::ZERO], "{method}");
        let cause = if method == "INVITE" {
            TimeoutCause::TimerB
        } else {
            TimeoutCause::TimerF
        };
        assert_eq!(timeouts(&h.take_events()), [(T1 * 64, cause)]);
        assert!(h.layer.is_empty());
    }
}

#[test]
fn invite_client_acks_a_486_itself_and_absorbs_retransmissions() {
    let mut h = Harness::new();
    let req = request("INVITE", "z9hG4bKbusy", 7, "call-486");
    let key = h.send_request(req.clone(), udp());
    h.run_until(ms(100));
    h.recv(
        SipMessage::Response(response(&req, 180, Some("bob9"))),
        udp(),
    );
    h.run_until(ms(2000));
    let busy = response(&req, 486, Some("bob9"));
    h.recv(SipMessage::Response(busy.clone()), udp());
    assert_eq!(h.layer.state(&key), Some(TxState::Completed));

    let sent = h.take_sent();
    assert_eq!(
        sent.len(),
        2,
        "INVITE, then the ACK (no retransmission after the 180)"
    );
    let SipMessage::Request(ack) = parse(&sent[1].1) else {
        panic!("ACK expected");
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, req.uri);
    let vias = ack.headers.vias().unwrap();
    assert_eq!(vias.len(), 1);
    assert_eq!(
        vias[0].branch().unwrap().as_str(),
        "z9hG4bKbusy",
        "same branch"
    );
    assert_eq!(ack.headers.to().unwrap().tag().unwrap().as_str(), "bob9");
    let cseq = ack.headers.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (7, Method::Ack));
    assert_eq!(
        ack.headers.call_id().unwrap(),
        req.headers.call_id().unwrap()
    );
    assert_eq!(ack.headers.from().unwrap(), req.headers.from().unwrap());
    assert_eq!(ack.headers.routes().unwrap(), req.headers.routes().unwrap());

    // The 486 again: the ACK again, nothing for the TU.
    h.run_until(ms(2500));
    h.recv(SipMessage::Response(busy.clone()), udp());
    h.recv(SipMessage::Response(busy), udp());
    let again = h.take_sent();
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|(_, t)| t.bytes == sent[1].1.bytes));

    h.run_all();
    let events = h.take_events();
    let statuses: Vec<u16> = events
        .iter()
        .filter_map(|(_, e)| match e {
            TxEvent::Response { response, .. } => Some(response.status.as_u16()),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [180, 486], "each reaches the TU once");
    // Timer D = 32 s after the 486.
    assert!(matches!(events.last(), Some((t, TxEvent::Terminated { .. })) if *t == secs(34.0)));
    assert!(timeouts(&events).is_empty());
}

#[test]
fn invite_client_over_tcp_terminates_right_after_acking() {
    let mut h = Harness::new();
    let req = request("INVITE", "z9hG4bKbusytcp", 1, "c1");
    h.send_request(req.clone(), tcp());
    h.recv(SipMessage::Response(response(&req, 603, Some("x"))), tcp());
    assert_eq!(method_of(&h.sent[1].1), Some(Method::Ack));
    assert!(h.layer.is_empty(), "timer D is 0 over TCP");
    assert!(matches!(
        h.events.last(),
        Some((_, TxEvent::Terminated { .. }))
    ));
}

#[test]
fn invite_client_accepted_state_passes_every_2xx_for_64_t1() {
    let mut h = Harness::new();
    let req = request("INVITE", "z9hG4bKok", 1, "c1");
    let key = h.send_request(req.clone(), udp());
    h.run_until(ms(300));
    let ok = response(&req, 200, Some("fork1"));
    h.recv(SipMessage::Response(ok.clone()), udp());
    assert_eq!(h.layer.state(&key), Some(TxState::Accepted));
    h.run_until(secs(2.0));
    h.recv(SipMessage::Response(ok.clone()), udp());
    h.recv(
        SipMessage::Response(response(&req, 200, Some("fork2"))),
        udp(),
    );
    h.recv(
        SipMessage::Response(response(&req, 486, Some("fork3"))),
        udp(),
    );
    assert_eq!(h.take_sent().len(), 1, "no ACK for a 2xx: that is the TU's");
    h.run_until(secs(40.0));
    let events = h.take_events();
    assert_eq!(count(&events, |e| matches!(e, TxEvent::Response { .. })), 3);
    assert!(
        matches!(events.last(), Some((t, TxEvent::Terminated { .. })) if *t == ms(300) + T1 * 64)
    );
    // After timer M a 2xx is stray, and handed to the core.
    h.recv(SipMessage::Response(ok), udp());
    let events = h.take_events();
    assert!(matches!(&events[..], [(_, TxEvent::StrayInvite2xx { .. })]));
    assert_eq!(h.layer.stats().stray_responses, 1);
}

#[test]
fn stray_non_2xx_responses_are_counted_not_reported() {
    let mut h = Harness::new();
    let req = request("OPTIONS", "z9hG4bKnobody", 1, "c1");
    h.recv(SipMessage::Response(response(&req, 200, None)), udp());
    h.recv(SipMessage::Response(response(&req, 180, None)), udp());
    assert!(h.events.is_empty());
    assert_eq!(h.layer.stats().stray_responses, 2);
}

#[test]
fn send_request_rejects_what_cannot_be_a_client_transaction() {
    let mut h = Harness::new();
    let now = h.now;
    let l = &mut h.layer;
    assert_eq!(
        l.send_request(now, request("ACK", "z9hG4bKa", 1, "c"), udp()),
        Err(TxError::AckIsNotATransaction)
    );
    assert!(matches!(
        l.send_request(now, request("INVITE", "oldstyle", 1, "c"), udp()),
        Err(TxError::BranchNotRfc3261 { .. })
    ));
    let k = l
        .send_request(now, request("INVITE", "z9hG4bKdup", 1, "c"), udp())
        .unwrap();
    assert_eq!(
        l.send_request(now, request("INVITE", "z9hG4bKdup", 1, "c"), udp()),
        Err(TxError::Duplicate { key: k.clone() })
    );
    // CANCEL reuses the INVITE's branch but is its own transaction.
    assert!(l
        .send_request(now, request("CANCEL", "z9hG4bKdup", 1, "c"), udp())
        .is_ok());
    assert!(matches!(
        l.send_response(
            now,
            &k,
            response(&request("INVITE", "z9hG4bKdup", 1, "c"), 200, None)
        ),
        Err(TxError::NotAServerTransaction { .. })
    ));
}

// ---- server transactions --------------------------------------------------

#[test]
fn invite_server_absorbs_retransmissions_and_sends_100_after_200_ms() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKsrv1", 1, "c1");
    h.recv(SipMessage::Request(inv.clone()), udp());
    let key = h.request_key();
    assert_eq!(h.layer.state(&key), Some(TxState::Proceeding));
    assert!(h.sent.is_empty());

    // Retransmission before any response: absorbed, nothing to resend.
    h.run_until(ms(150));
    h.recv(SipMessage::Request(inv.clone()), udp());
    assert!(h.sent.is_empty());

    h.run_until(ms(400));
    let sent = h.take_sent();
    assert_eq!(Harness::times(&sent), [ms(200)]);
    let SipMessage::Response(trying) = parse(&sent[0].1) else {
        panic!("100 expected")
    };
    assert_eq!(trying.status, StatusCode::TRYING);
    assert!(trying.headers.to().unwrap().tag().is_none());
    assert!(trying.headers.get(&HeaderName::Timestamp).is_some());

    // The TU rings; a retransmitted INVITE gets the 180 again.
    h.send_response(&key, response(&inv, 180, Some("b1")));
    h.run_until(ms(900));
    h.recv(SipMessage::Request(inv.clone()), udp());
    let sent = h.take_sent();
    assert_eq!(
        sent.iter().map(|(_, t)| status_of(t)).collect::<Vec<_>>(),
        [Some(180), Some(180)]
    );
    assert_eq!(
        count(&h.events, |e| matches!(e, TxEvent::Request { .. })),
        1
    );
    assert_eq!(h.layer.stats().absorbed, 2);
}

#[test]
fn auto_trying_is_skipped_when_the_tu_is_quick_and_can_be_disabled() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKquick", 1, "c1");
    h.recv(SipMessage::Request(inv.clone()), udp());
    let key = h.request_key();
    h.run_until(ms(150));
    h.send_response(&key, response(&inv, 180, Some("t")));
    h.run_until(ms(1000));
    assert_eq!(Harness::times(&h.take_sent()), [ms(150)]);

    let mut h = Harness::with(TransactionConfig {
        auto_trying: None,
        ..TransactionConfig::default()
    });
    h.recv(SipMessage::Request(inv), udp());
    h.run_until(secs(5.0));
    assert!(h.sent.is_empty());
}

#[test]
fn invite_server_retransmits_a_non_2xx_with_timer_g_until_the_ack() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKsrvbusy", 1, "c1");
    h.recv(SipMessage::Request(inv.clone()), udp());
    let key = h.request_key();
    h.run_until(ms(100));
    let busy = response(&inv, 486, Some("b"));
    h.send_response(&key, busy.clone());
    assert_eq!(h.layer.state(&key), Some(TxState::Completed));
    h.run_until(secs(10.0));
    let sent = h.take_sent();
    let at = |s: f64| ms(100) + secs(s);
    assert_eq!(
        Harness::times(&sent),
        [0.0, 0.5, 1.5, 3.5, 7.5].map(at),
        "timer G: 0.5, 1, 2, 4 (T2)"
    );
    assert!(sent.iter().all(|(_, t)| status_of(t) == Some(486)));

    // A retransmitted INVITE gets the 486 too.
    h.recv(SipMessage::Request(inv.clone()), udp());
    assert_eq!(status_of(&h.take_sent()[0].1), Some(486));

    // The ACK (same branch) is absorbed and stops G.
    let ack = request_with("ACK", "z9hG4bKsrvbusy", 1, "c1", "b");
    h.recv(SipMessage::Request(ack.clone()), udp());
    assert_eq!(h.layer.state(&key), Some(TxState::Confirmed));
    h.recv(SipMessage::Request(ack), udp());
    h.recv(SipMessage::Request(inv), udp());
    h.run_all();
    assert!(h.take_sent().is_empty(), "nothing after the ACK");
    let events = h.take_events();
    assert_eq!(
        count(&events, |e| matches!(e, TxEvent::Ack { .. })),
        0,
        "never reaches the TU"
    );
    assert!(timeouts(&events).is_empty());
    // Timer I = T4 after the ACK at 10 s.
    assert!(matches!(events.last(), Some((t, TxEvent::Terminated { .. })) if *t == secs(15.0)));
    assert!(h.layer.is_empty());
}

#[test]
fn invite_server_times_out_with_timer_h_without_an_ack() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKnoack", 1, "c1");
    h.recv(SipMessage::Request(inv.clone()), udp());
    let key = h.request_key();
    h.send_response(&key, response(&inv, 503, Some("x")));
    h.run_all();
    let sent = h.take_sent();
    assert_eq!(
        Harness::times(&sent),
        [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5].map(secs)
    );
    assert_eq!(
        timeouts(&h.take_events()),
        [(T1 * 64, TimeoutCause::TimerH)]
    );
    assert!(h.layer.is_empty());
}

#[test]
fn invite_server_over_tcp_ends_on_the_ack() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKtcpbusy", 1, "c1");
    h.recv(SipMessage::Request(inv.clone()), tcp());
    let key = h.request_key();
    h.send_response(&key, response(&inv, 486, Some("b")));
    h.run_until(secs(5.0));
    assert_eq!(h.take_sent().len(), 1, "no timer G over TCP");
    h.recv(
        SipMessage::Request(request_with("ACK", "z9hG4bKtcpbusy", 1, "c1", "b")),
        tcp(),
    );
    assert!(h.layer.is_empty(), "timer I is 0 over TCP");
}

#[test]
fn uas_2xx_is_retransmitted_until_the_ack() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKanswer", 3, "call-2xx");
    h.recv(SipMessage::Request(inv.clone()), udp());
    let key = h.request_key();
    h.send_response(&key, response(&inv, 200, Some("b")));
    assert_eq!(h.layer.state(&key), Some(TxState::Accepted));
    assert_eq!(h.layer.pending_2xx(), 1);
    h.run_until(secs(9.0));
    // A retransmitted INVITE in Accepted is absorbed silently (RFC 6026).
    h.recv(SipMessage::Request(inv), udp());
    assert_eq!(
        Harness::times(&h.take_sent()),
        [0.0, 0.5, 1.5, 3.5, 7.5].map(secs)
    );
    // The ACK for a 2xx has its own branch, reaches the TU and stops the 2xx.
    let ack = request_with("ACK", "z9hG4bKack2xx", 3, "call-2xx", "b");
    h.recv(SipMessage::Request(ack.clone()), udp());
    h.recv(SipMessage::Request(ack), udp());
    assert_eq!(h.layer.pending_2xx(), 0);
    h.run_all();
    assert!(h.take_sent().is_empty());
    let events = h.take_events();
    assert_eq!(count(&events, |e| matches!(e, TxEvent::Ack { .. })), 2);
    assert_eq!(
        count(&events, |e| matches!(e, TxEvent::AckTimeout { .. })),
        0
    );
    // Timer L = 64*T1 after the 2xx.
    assert!(matches!(events.last(), Some((t, TxEvent::Terminated { .. })) if *t == T1 * 64));
    assert!(h.layer.is_empty());
}

#[test]
fn uas_2xx_without_ack_gives_up_after_64_t1() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKlost", 9, "call-lost");
    h.recv(SipMessage::Request(inv.clone()), tcp());
    let key = h.request_key();
    h.send_response(&key, response(&inv, 200, Some("b")));
    h.run_all();
    assert_eq!(
        Harness::times(&h.take_sent()),
        [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5].map(secs),
        "T1 doubling to T2, over TCP too (end to end)"
    );
    let events = h.take_events();
    let gave_up: Vec<_> = events
        .iter()
        .filter_map(|(t, e)| match e {
            TxEvent::AckTimeout { call } => Some((*t, call.call_id.as_str().to_owned(), call.cseq)),
            _ => None,
        })
        .collect();
    assert_eq!(gave_up, [(T1 * 64, "call-lost".to_owned(), 9)]);
    assert!(h.layer.is_empty());
    assert_eq!(h.layer.pending_2xx(), 0);
}

#[test]
fn uas_2xx_retransmitter_works_on_its_own() {
    let base = Instant::now();
    let mut r = Uas2xxRetransmitter::new(TimerConfig::default(), 10);
    let inv = request("INVITE", "z9hG4bKalone", 1, "alone");
    let ok = response(&inv, 200, Some("t"));
    let key = r.start(base, &ok, udp()).unwrap();
    assert!(r.start(base, &response(&inv, 486, None), udp()).is_err());
    let mut times = Vec::new();
    while let Some(d) = r.poll_timeout() {
        if d > base + secs(5.0) {
            break;
        }
        r.handle_timeout(d);
        while r.poll_transmit().is_some() {
            times.push(d - base);
        }
    }
    assert_eq!(times, [0.5, 1.5, 3.5].map(secs));
    assert!(r.on_ack(&request_with("ACK", "z9hG4bKx", 1, "alone", "t")));
    assert!(r.is_empty() && r.poll_timeout().is_none());
    r.start(base, &ok, udp()).unwrap();
    r.handle_timeout(base + secs(40.0));
    assert_eq!(r.poll_event(), Some(Uas2xxEvent::AckTimeout { key }));
}

#[test]
fn non_invite_server_resends_its_cached_final() {
    let mut h = Harness::new();
    let bye = request("BYE", "z9hG4bKbye", 2, "c1");
    h.recv(SipMessage::Request(bye.clone()), udp());
    let key = h.request_key();
    h.recv(SipMessage::Request(bye.clone()), udp());
    assert!(h.sent.is_empty(), "Trying: absorbed, nothing to resend");
    h.run_until(ms(300));
    h.send_response(&key, response(&bye, 200, Some("b")));
    assert!(matches!(
        h.layer
            .send_response(h.now, &key, response(&bye, 500, Some("b"))),
        Err(TxError::InvalidState {
            state: TxState::Completed,
            ..
        })
    ));
    h.run_until(secs(3.0));
    h.recv(SipMessage::Request(bye.clone()), udp());
    h.recv(SipMessage::Request(bye), udp());
    let sent = h.take_sent();
    assert_eq!(Harness::times(&sent), [ms(300), secs(3.0), secs(3.0)]);
    assert!(sent.windows(2).all(|w| w[0].1 == w[1].1));
    h.run_all();
    let events = h.take_events();
    assert_eq!(count(&events, |e| matches!(e, TxEvent::Request { .. })), 1);
    // Timer J = 64*T1 after the final.
    assert!(
        matches!(events.last(), Some((t, TxEvent::Terminated { .. })) if *t == ms(300) + T1 * 64)
    );
}

#[test]
fn server_transaction_whose_tu_never_answers_times_out() {
    let mut h = Harness::new();
    h.recv(
        SipMessage::Request(request("OPTIONS", "z9hG4bKmute", 1, "c1")),
        udp(),
    );
    h.recv(
        SipMessage::Request(request("INVITE", "z9hG4bKmute", 1, "c1")),
        udp(),
    );
    h.run_all();
    assert_eq!(
        timeouts(&h.take_events()),
        [
            (T1 * 64, TimeoutCause::NoFinalResponse),
            (secs(180.0), TimeoutCause::NoFinalResponse)
        ]
    );
    assert!(h.layer.is_empty());
}

#[test]
fn cancel_names_the_pending_invite_transaction() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKtocancel", 1, "c1");
    h.recv(SipMessage::Request(inv.clone()), udp());
    let invite_key = h.request_key();
    h.send_response(&invite_key, response(&inv, 180, Some("b")));
    h.take_events();
    h.take_sent();
    h.run_until(secs(1.0));
    let cancel = request("CANCEL", "z9hG4bKtocancel", 1, "c1");
    h.recv(SipMessage::Request(cancel.clone()), udp());
    let events = h.take_events();
    let [(
        _,
        TxEvent::Cancel {
            key: cancel_key,
            target,
            request: got,
            ..
        },
    )] = &events[..]
    else {
        panic!("one Cancel event: {events:?}");
    };
    assert_eq!(*target, CancelTarget::Pending(invite_key.clone()));
    assert_eq!(got.method, Method::Cancel);
    assert_ne!(*cancel_key, invite_key);
    assert_eq!(cancel_key.method(), &Method::Cancel);
    let cancel_key = cancel_key.clone();

    // The TU: 200 for the CANCEL, 487 for the INVITE.
    h.send_response(&cancel_key, response(&cancel, 200, Some("b")));
    h.send_response(&invite_key, response(&inv, 487, Some("b")));
    let sent = h.take_sent();
    assert_eq!(
        sent.iter().map(|(_, t)| status_of(t)).collect::<Vec<_>>(),
        [Some(200), Some(487)]
    );
    let SipMessage::Response(ok) = parse(&sent[0].1) else {
        panic!()
    };
    assert_eq!(ok.headers.cseq().unwrap().method, Method::Cancel);

    // A retransmitted CANCEL gets its 200 again; a late one targets an
    // answered INVITE.
    h.recv(SipMessage::Request(cancel), udp());
    assert_eq!(status_of(&h.take_sent()[0].1), Some(200));
    h.recv(
        SipMessage::Request(request("CANCEL", "z9hG4bKnoinvite", 1, "c1")),
        udp(),
    );
    let events = h.take_events();
    assert!(matches!(
        &events[..],
        [(
            _,
            TxEvent::Cancel {
                target: CancelTarget::NotFound,
                ..
            }
        )]
    ));

    h.recv(
        SipMessage::Request(request_with("ACK", "z9hG4bKtocancel", 1, "c1", "b")),
        udp(),
    );
    h.run_all();
    assert!(h.layer.is_empty());
    assert_eq!(count(&h.events, |e| matches!(e, TxEvent::Ack { .. })), 0);
}

#[test]
fn cancel_after_the_final_response_targets_an_answered_invite() {
    let mut h = Harness::new();
    let inv = request("INVITE", "z9hG4bKanswered", 1, "c1");
    h.recv(SipMessage::Request(inv.clone()), udp());
    let invite_key = h.request_key();
    h.send_response(&invite_key, response(&inv, 200, Some("b")));
    h.take_events();
    h.recv(
        SipMessage::Request(request("CANCEL", "z9hG4bKanswered", 1, "c1")),
        udp(),
    );
    let events = h.take_events();
    assert!(
        matches!(&events[..], [(_, TxEvent::Cancel { target: CancelTarget::Answered(k), .. })] if *k == invite_key)
    );
}

#[test]
fn rfc2543_requests_are_matched_without_a_branch_cookie() {
    let mut h = Harness::new();
    // No cookie: matched on Request-URI, tags, Call-ID, CSeq and top Via.
    let inv = request("INVITE", "oldbranch1", 4, "legacy");
    h.recv(SipMessage::Request(inv.clone()), udp());
    let key = h.request_key();
    assert!(key.is_rfc2543());
    h.recv(SipMessage::Request(inv.clone()), udp());
    // Same branch, other Call-ID: another transaction.
    h.recv(
        SipMessage::Request(request("INVITE", "oldbranch1", 4, "legacy-2")),
        udp(),
    );
    assert_eq!(h.layer.len(), 2);
    assert_eq!(
        count(&h.events, |e| matches!(e, TxEvent::Request { .. })),
        2
    );

    h.send_response(&key, response(&inv, 486, Some("lt")));
    // The ACK carries the To tag of our 486, which the INVITE did not.
    h.recv(
        SipMessage::Request(request_with("ACK", "oldbranch1", 4, "legacy", "lt")),
        udp(),
    );
    assert_eq!(h.layer.state(&key), Some(TxState::Confirmed));
    // An ACK with another To tag is not ours: it goes to the TU.
    h.recv(
        SipMessage::Request(request_with("ACK", "oldbranch1", 4, "legacy", "zz")),
        udp(),
    );
    assert_eq!(count(&h.events, |e| matches!(e, TxEvent::Ack { .. })), 1);
    // A CANCEL finds its INVITE the same way.
    h.recv(
        SipMessage::Request(request("CANCEL", "oldbranch1", 4, "legacy-2")),
        udp(),
    );
    assert!(h.events.iter().any(|(_, e)| matches!(
        e,
        TxEvent::Cancel {
            target: CancelTarget::Pending(_),
            ..
        }
    )));
}

#[test]
fn malformed_requests_are_counted_and_dropped() {
    let mut h = Harness::new();
    let mut r = request("OPTIONS", "z9hG4bKbad", 1, "c1");
    r.method = Method::Info; // CSeq says OPTIONS
    h.recv(SipMessage::Request(r), udp());
    let mut r = request("OPTIONS", "z9hG4bKbad", 1, "c1");
    r.headers.remove(&HeaderName::Via);
    h.recv(SipMessage::Request(r), udp());
    assert!(h.events.is_empty() && h.layer.is_empty());
    assert_eq!(h.layer.stats().malformed, 2);
}

#[test]
fn the_transaction_cap_bounds_memory() {
    let mut h = Harness::with(TransactionConfig {
        max_transactions: 3,
        ..TransactionConfig::default()
    });
    for i in 0..10 {
        h.recv(
            SipMessage::Request(request("OPTIONS", &format!("z9hG4bKflood{i}"), 1, "c1")),
            udp(),
        );
    }
    assert_eq!(h.layer.len(), 3);
    assert_eq!(h.layer.stats().dropped_over_capacity, 7);
    assert_eq!(
        h.layer
            .send_request(h.now, request("OPTIONS", "z9hG4bKmine", 1, "c1"), udp()),
        Err(TxError::Capacity { limit: 3 })
    );
    h.run_all();
    assert!(h.layer.is_empty());
    assert!(h
        .layer
        .send_request(h.now, request("OPTIONS", "z9hG4bKmine", 1, "c1"), udp())
        .is_ok());
}

#[test]
fn bad_configs_are_refused() {
    let zero_t1 = TransactionConfig {
        timers: TimerConfig {
            t1: Duration::ZERO,
            ..TimerConfig::default()
        },
        ..TransactionConfig::default()
    };
    assert!(matches!(
        TransactionLayer::new(zero_t1),
        Err(TxError::InvalidConfig { field: "t1", .. })
    ));
    let t2_below_t1 = TransactionConfig {
        timers: TimerConfig {
            t1: secs(5.0),
            t2: secs(4.0),
            t4: secs(5.0),
        },
        ..TransactionConfig::default()
    };
    assert!(TransactionLayer::new(t2_below_t1).is_err());
    assert!(TransactionLayer::new(TransactionConfig {
        max_transactions: 0,
        ..TransactionConfig::default()
    })
    .is_err());
}

// ---- two layers, ten simulated minutes ------------------------------------

/// Delivery time, sequence (FIFO on ties), destination layer, bytes.
type InFlight = (Instant, u64, usize, Vec<u8>);

/// A deterministic lossy network between two layers (index 0: UAC at
/// 10.0.0.1, 1: UAS at 10.0.0.2) with 20 ms latency.
struct Net {
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: u64,
    loss_per_mille: u64,
    lost: u64,
}

impl Net {
    fn send(&mut self, now: Instant, t: Transmit) {
        // xorshift: deterministic loss
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        if self.rng % 1000 < self.loss_per_mille {
            self.lost += 1;
            return;
        }
        let dest = usize::from(t.to.addr.ip() == std::net::IpAddr::from([10, 0, 0, 2]));
        self.seq += 1;
        self.queue
            .push(Reverse((now + ms(20), self.seq, dest, t.bytes)));
    }
}

#[derive(Default)]
struct LoadStats {
    finals: HashMap<TransactionKey, u16>,
    uas_requests: HashMap<(String, Method), usize>,
    timeouts: usize,
    ack_timeouts: usize,
    strays: usize,
}

#[test]
fn ten_minutes_of_load_leaves_nothing_behind() {
    const N: usize = 10_000;
    let base = Instant::now();
    let uac_peer = peer(1, TransportKind::Udp);
    let uas_peer = peer(2, TransportKind::Udp);
    let mut layers = [
        TransactionLayer::new(TransactionConfig::default()).unwrap(),
        TransactionLayer::new(TransactionConfig::default()).unwrap(),
    ];
    let mut net = Net {
        queue: BinaryHeap::new(),
        seq: 0,
        rng: 0x9E37_79B9_7F4A_7C15,
        loss_per_mille: 30,
        lost: 0,
    };
    let mut stats = LoadStats::default();
    let mut invites: HashMap<String, Request> = HashMap::new();
    let mut started = 0;
    let mut max_live = 0;
    let spacing = ms(60); // 10_000 * 60 ms = 600 s
    let mut now = base;

    loop {
        let next_start = (started < N).then(|| base + spacing * started as u32);
        let next = [
            layers[0].poll_timeout(),
            layers[1].poll_timeout(),
            net.queue.peek().map(|Reverse((t, ..))| *t),
            next_start,
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(t) = next else { break };
        assert!(t >= now);
        now = t;

        if next_start == Some(now) {
            // Kinds: 0 INVITE -> 200, 1 INVITE -> 486, 2 BYE -> 200,
            // 3 INVITE cancelled after the 180.
            let kind = started % 4;
            let call = format!("load-{started}-{kind}");
            let method = if kind == 2 { "BYE" } else { "INVITE" };
            let mut req = request(method, &format!("z9hG4bKload{started}"), 1, &call);
            req.headers.remove(&HeaderName::Route);
            if method == "INVITE" {
                invites.insert(call, req.clone());
            }
            layers[0].send_request(now, req, uas_peer).unwrap();
            started += 1;
        }
        while let Some(Reverse((t, ..))) = net.queue.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((_, _, dest, bytes))) = net.queue.pop() else {
                break;
            };
            let from = if dest == 0 { uas_peer } else { uac_peer };
            layers[dest].handle_message(now, parse_datagram(&bytes).unwrap(), from);
        }
        for l in &mut layers {
            if l.poll_timeout().is_some_and(|d| d <= now) {
                l.handle_timeout(now);
            }
        }
        // Pump both TUs until quiet.
        loop {
            let mut busy = false;
            for (i, other) in [(0, uas_peer), (1, uac_peer)] {
                while let Some(t) = layers[i].poll_transmit() {
                    assert_eq!(t.to, other);
                    net.send(now, t);
                    busy = true;
                }
                while let Some(e) = layers[i].poll_event() {
                    busy = true;
                    if i == 0 {
                        uac_tu(&mut layers[0], now, e, &invites, &mut stats, uas_peer);
                    } else {
                        uas_tu(&mut layers[1], now, e, &mut stats);
                    }
                }
            }
            if !busy {
                break;
            }
        }
        max_live = max_live.max(layers[0].len() + layers[1].len());
    }

    assert!(now - base >= secs(600.0));
    assert!(
        net.lost > 100,
        "the network did lose packets ({})",
        net.lost
    );
    let initial: Vec<_> = stats
        .finals
        .iter()
        .filter(|(k, _)| k.method() != &Method::Cancel)
        .collect();
    assert_eq!(initial.len(), N, "every transaction got its final response");
    let by_code = |c: u16| initial.iter().filter(|(_, &s)| s == c).count();
    assert_eq!(by_code(200), N / 2, "INVITE 200 + BYE 200");
    assert_eq!(by_code(486), N / 4);
    assert_eq!(by_code(487), N / 4);
    assert_eq!(stats.timeouts, 0);
    assert_eq!(stats.ack_timeouts, 0);
    assert_eq!(stats.strays, 0);
    assert!(
        stats.uas_requests.values().all(|&n| n == 1),
        "each request reaches the UAS TU once"
    );
    assert_eq!(stats.uas_requests.len(), N + N / 4, "requests plus CANCELs");
    assert!(
        max_live < 2_000,
        "transactions are reaped as they end ({max_live})"
    );
    for l in &layers {
        assert_eq!(l.len(), 0, "no transaction leaks");
        assert_eq!(l.pending_2xx(), 0);
        assert_eq!(l.poll_timeout(), None);
    }
}

fn uac_tu(
    layer: &mut TransactionLayer,
    now: Instant,
    e: TxEvent,
    invites: &HashMap<String, Request>,
    stats: &mut LoadStats,
    uas: Peer,
) {
    match e {
        TxEvent::Response { key, response } => {
            let code = response.status.as_u16();
            let call = response.headers.call_id().unwrap().as_str().to_owned();
            if code == 180 && call.ends_with("-3") && key.method() == &Method::Invite {
                let branch = key.branch().unwrap();
                let cancel = request("CANCEL", branch, 1, &call);
                // Only the first 180 triggers a CANCEL (others: Duplicate).
                let _ = layer.send_request(now, cancel, uas);
            }
            if code >= 200 {
                stats.finals.entry(key.clone()).or_insert(code);
            }
            if (200..300).contains(&code) && key.method() == &Method::Invite {
                // ACK for the 2xx: new branch, outside any transaction.
                let inv = &invites[&call];
                let tag = response.headers.to().unwrap().tag().unwrap();
                let mut ack =
                    request_with("ACK", &format!("z9hG4bKack-{call}"), 1, &call, tag.as_str());
                ack.uri = inv.uri.clone();
                layer.send_stateless(&SipMessage::Request(ack), uas);
            }
        }
        TxEvent::Timeout { .. } => stats.timeouts += 1,
        TxEvent::StrayInvite2xx { .. } => stats.strays += 1,
        TxEvent::Terminated { .. } => {}
        other => panic!("unexpected UAC event {other:?}"),
    }
}

fn uas_tu(layer: &mut TransactionLayer, now: Instant, e: TxEvent, stats: &mut LoadStats) {
    match e {
        TxEvent::Request { key, request, .. } => {
            let call = request.headers.call_id().unwrap().as_str().to_owned();
            *stats
                .uas_requests
                .entry((call.clone(), request.method.clone()))
                .or_default() += 1;
            if request.method == Method::Invite {
                let tag = format!("uas-{call}");
                layer
                    .send_response(now, &key, response(&request, 180, Some(&tag)))
                    .unwrap();
                let code = match call.rsplit('-').next() {
                    Some("0") => Some(200),
                    Some("1") => Some(486),
                    _ => None, // wait for the CANCEL
                };
                if let Some(code) = code {
                    layer
                        .send_response(now, &key, response(&request, code, Some(&tag)))
                        .unwrap();
                }
            } else {
                layer
                    .send_response(now, &key, response(&request, 200, Some("b")))
                    .unwrap();
            }
        }
        TxEvent::Cancel {
            key,
            target,
            request,
            ..
        } => {
            let call = request.headers.call_id().unwrap().as_str().to_owned();
            *stats
                .uas_requests
                .entry((call.clone(), Method::Cancel))
                .or_default() += 1;
            layer
                .send_response(
                    now,
                    &key,
                    response(&request, 200, Some(&format!("uas-{call}"))),
                )
                .unwrap();
            let CancelTarget::Pending(invite) = target else {
                panic!("CANCEL for a pending INVITE: {target:?}");
            };
            let mut inv = request.clone();
            inv.method = Method::Invite;
            inv.headers.remove(&HeaderName::CSeq);
            inv.headers.append(HeaderName::CSeq, "1 INVITE").unwrap();
            layer
                .send_response(
                    now,
                    &invite,
                    response(&inv, 487, Some(&format!("uas-{call}"))),
                )
                .unwrap();
        }
        TxEvent::Ack { .. } | TxEvent::Terminated { .. } => {}
        TxEvent::Timeout { .. } => stats.timeouts += 1,
        TxEvent::AckTimeout { .. } => stats.ack_timeouts += 1,
        other => panic!("unexpected UAS event {other:?}"),
    }
}

// ---- property: any interleaving ends clean --------------------------------

#[derive(Debug, Clone)]
enum Op {
    SendRequest {
        branch: u8,
        invite: bool,
        tcp: bool,
    },
    Response {
        branch: u8,
        invite: bool,
        code: u16,
        tag: u8,
    },
    Request {
        branch: u8,
        method: u8,
        legacy: bool,
        tag: u8,
        tcp: bool,
    },
    Respond {
        pick: u8,
        code: u16,
        tag: u8,
    },
    Advance {
        ms: u32,
    },
    Timeout,
}

fn op() -> impl Strategy<Value = Op> {
    let code = prop::sample::select(vec![
        100u16, 180, 183, 200, 202, 302, 404, 486, 487, 503, 603,
    ]);
    prop_oneof![
        (0u8..4, any::<bool>(), any::<bool>()).prop_map(|(branch, invite, tcp)| Op::SendRequest {
            branch,
            invite,
            tcp
        }),
        (0u8..4, any::<bool>(), code.clone(), 0u8..2).prop_map(|(branch, invite, code, tag)| {
            Op::Response {
                branch,
                invite,
                code,
                tag,
            }
        }),
        (0u8..4, 0u8..5, any::<bool>(), 0u8..3, any::<bool>()).prop_map(
            |(branch, method, legacy, tag, tcp)| Op::Request {
                branch,
                method,
                legacy,
                tag,
                tcp
            }
        ),
        (any::<u8>(), code, 0u8..2).prop_map(|(pick, code, tag)| Op::Respond { pick, code, tag }),
        (0u32..40_000).prop_map(|ms| Op::Advance { ms }),
        Just(Op::Timeout),
    ]
}

fn branch_of(n: u8, legacy: bool) -> String {
    if legacy {
        format!("old{n}")
    } else {
        format!("z9hG4bKp{n}")
    }
}

fn tag_of(n: u8) -> Option<String> {
    (n > 0).then(|| format!("t{n}"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_ends_with_no_transaction(ops in prop::collection::vec(op(), 1..60)) {
        let base = Instant::now();
        let mut now = base;
        let mut layer = TransactionLayer::new(TransactionConfig::default()).unwrap();
        let mut server: Vec<(TransactionKey, Request)> = Vec::new();
        let drain = |layer: &mut TransactionLayer, server: &mut Vec<(TransactionKey, Request)>| {
            while let Some(t) = layer.poll_transmit() {
                prop_assert!(parse_datagram(&t.bytes).is_ok());
            }
            while let Some(e) = layer.poll_event() {
                match e {
                    TxEvent::Request { key, request, .. } | TxEvent::Cancel { key, request, .. } => {
                        server.push((key, request));
                    }
                    _ => {}
                }
            }
            Ok(())
        };
        for op in ops {
            match op {
                Op::SendRequest { branch, invite, tcp: reliable } => {
                    let m = if invite { "INVITE" } else { "OPTIONS" };
                    let to = if reliable { tcp() } else { udp() };
                    let _ = layer.send_request(now, request(m, &branch_of(branch, false), 1, "p"), to);
                }
                Op::Response { branch, invite, code, tag } => {
                    let m = if invite { "INVITE" } else { "OPTIONS" };
                    let req = request(m, &branch_of(branch, false), 1, "p");
                    let resp = response(&req, code, tag_of(tag).as_deref());
                    layer.handle_message(now, SipMessage::Response(resp), udp());
                }
                Op::Request { branch, method, legacy, tag, tcp: reliable } => {
                    let m = ["INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"][usize::from(method)];
                    let tag = tag_of(tag).unwrap_or_default();
                    let req = request_with(m, &branch_of(branch, legacy), 1, "p", &tag);
                    let from = if reliable { tcp() } else { udp() };
                    layer.handle_message(now, SipMessage::Request(req), from);
                }
                Op::Respond { pick, code, tag } => {
                    if !server.is_empty() {
                        let (key, req) = &server[usize::from(pick) % server.len()];
                        let resp = response(req, code, tag_of(tag).as_deref());
                        let _ = layer.send_response(now, key, resp);
                    }
                }
                Op::Advance { ms: n } => now += ms(u64::from(n)),
                Op::Timeout => {
                    if let Some(d) = layer.poll_timeout() {
                        now = now.max(d);
                        layer.handle_timeout(now);
                    }
                }
            }
            drain(&mut layer, &mut server)?;
            if let Some(d) = layer.poll_timeout() {
                // Whatever is due can be handled; nothing is left due after.
                if d <= now {
                    layer.handle_timeout(now);
                    drain(&mut layer, &mut server)?;
                    prop_assert!(layer.poll_timeout().is_none_or(|d| d > now));
                }
            }
        }
        let mut steps = 0;
        while let Some(d) = layer.poll_timeout() {
            now = now.max(d);
            layer.handle_timeout(now);
            drain(&mut layer, &mut server)?;
            steps += 1;
            prop_assert!(steps < 100_000, "timers never run out");
        }
        prop_assert_eq!(layer.len(), 0);
        prop_assert_eq!(layer.pending_2xx(), 0);
        prop_assert!(now - base < Duration::from_secs(3600));
    }
}
