//! Unit tests of the transaction internals; the behaviour is tested from
//! the outside in `engine/tests/transactions.rs`.

use std::time::{Duration, Instant};

use super::client::build_ack;
use super::machine::{Fired, Retransmit, Timers};
use super::timer::TimerQueue;
use super::*;
use crate::sip::{parse_datagram, HeaderName, StatusCode};

fn invite() -> Request {
    let raw = "INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKunit, SIP/2.0/UDP 10.0.0.9\r\n\
        Max-Forwards: 69\r\n\
        Route: <sip:p1.example.com;lr>\r\n\
        Route: <sip:p2.example.com;lr>\r\n\
        To: <sip:bob@example.com>\r\n\
        From: <sip:alice@example.com>;tag=a\r\n\
        Call-ID: unit\r\n\
        CSeq: 42 INVITE\r\n\
        Contact: <sip:alice@10.0.0.1>\r\n\
        Content-Type: application/sdp\r\n\
        \r\n\
        v=0\r\n";
    match parse_datagram(raw.as_bytes()) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn peer() -> Peer {
    Peer {
        addr: "10.0.0.2:5060".parse().unwrap(),
        transport: TransportKind::Udp,
    }
}

#[test]
fn ack_for_non_2xx_follows_17_1_1_3() {
    let req = invite();
    let mut resp = req.make_response(StatusCode::new(486).unwrap(), "Busy Here");
    resp.headers.remove(&HeaderName::To);
    resp.headers
        .append(HeaderName::To, "<sip:bob@example.com>;tag=xyz")
        .unwrap();
    let ack = build_ack(&req, &resp).unwrap();
    let text = String::from_utf8(SipMessage::Request(ack).to_bytes()).unwrap();
    assert_eq!(
        text,
        "ACK sip:bob@example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKunit\r\n\
         Max-Forwards: 69\r\n\
         Route: <sip:p1.example.com;lr>\r\n\
         Route: <sip:p2.example.com;lr>\r\n\
         From: <sip:alice@example.com>;tag=a\r\n\
         To: <sip:bob@example.com>;tag=xyz\r\n\
         Call-ID: unit\r\n\
         CSeq: 42 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    );
}

#[test]
fn due_timers_end_before_they_send() {
    let t0 = Instant::now();
    let at = t0 + Duration::from_secs(1);
    let mut timers = Timers {
        retransmit: Some(Retransmit {
            at,
            interval: Duration::from_secs(1),
        }),
        timeout: Some((at, TimeoutCause::TimerH)),
        linger: None,
        trying: Some(t0),
    };
    assert_eq!(timers.take_due(t0), Some(Fired::Trying));
    assert_eq!(timers.take_due(t0), None);
    assert_eq!(
        timers.take_due(at),
        Some(Fired::Timeout(TimeoutCause::TimerH))
    );
    assert_eq!(timers.take_due(at), Some(Fired::Retransmit));
}

#[test]
fn timer_queue_orders_ties_by_push_and_prunes_stale_entries() {
    let t0 = Instant::now();
    let mut q = TimerQueue::default();
    q.push(t0 + Duration::from_secs(2), 'b');
    q.push(t0 + Duration::from_secs(1), 'a');
    q.push(t0 + Duration::from_secs(1), 'c');
    assert_eq!(q.pop().map(|(_, k)| k), Some('a'));
    assert_eq!(q.pop().map(|(_, k)| k), Some('c'));
    for i in 0..1000 {
        q.push(t0 + Duration::from_millis(i), 'x');
    }
    q.prune(1, |_, k| *k == 'b');
    assert_eq!(q.len(), 1, "stale entries compacted away");
    assert_eq!(q.peek().map(|(_, k)| *k), Some('b'));
}

#[test]
fn deadline_churn_does_not_grow_the_heap() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TransactionConfig::default()).unwrap();
    let req = invite();
    layer.handle_message(t0, SipMessage::Request(req.clone()), peer());
    let Some(TxEvent::Request { key, .. }) = layer.poll_event() else {
        panic!("request");
    };
    // Every provisional re-arms the TU guard: one new heap entry each.
    for i in 0..10_000u64 {
        let now = t0 + Duration::from_millis(i);
        let ringing = req.make_response(StatusCode::new(180).unwrap(), "Ringing");
        layer.send_response(now, &key, ringing).unwrap();
        while layer.poll_transmit().is_some() {}
    }
    assert!(
        layer.timers.len() <= 2 * layer.len() + 65,
        "{}",
        layer.timers.len()
    );
    assert_eq!(
        layer.poll_timeout(),
        Some(t0 + Duration::from_millis(9_999) + layer.config().timer_c)
    );
}

#[test]
fn slots_are_reused_and_stale_keys_miss() {
    let t0 = Instant::now();
    let mut layer = TransactionLayer::new(TransactionConfig::default()).unwrap();
    let tcp = Peer {
        transport: TransportKind::Tcp,
        ..peer()
    };
    let mut req = invite();
    req.method = Method::Options;
    req.headers.remove(&HeaderName::CSeq);
    req.headers.append(HeaderName::CSeq, "1 OPTIONS").unwrap();
    for _ in 0..3 {
        layer.handle_message(t0, SipMessage::Request(req.clone()), tcp);
        let Some(TxEvent::Request { key, request, .. }) = layer.poll_event() else {
            panic!("request");
        };
        let ok = request.make_response(StatusCode::OK, "OK");
        layer.send_response(t0, &key, ok.clone()).unwrap();
        assert!(layer.is_empty(), "timer J is 0 over TCP");
        assert_eq!(
            layer.send_response(t0, &key, ok),
            Err(TxError::UnknownTransaction { key })
        );
        while layer.poll_event().is_some() {}
    }
    assert_eq!(layer.slots.len(), 1);
    assert_eq!(layer.poll_timeout(), None);
}
