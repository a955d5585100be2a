//! One UDP datagram: `parse_datagram`, and for anything that parses, the
//! canonical form re-parses to an equal message (and is a fixed point), the
//! UAS/UAC checks and every typed accessor return instead of panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vocelio_engine::sip::{
    check_request, check_require, check_response, parse_datagram, Contacts, Headers, SipMessage,
};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = parse_datagram(data) else {
        return;
    };
    let bytes = msg.to_bytes();
    let again = match parse_datagram(&bytes) {
        Ok(m) => m,
        Err(e) => panic!(
            "canonical form does not re-parse: {e}\n{}",
            String::from_utf8_lossy(&bytes)
        ),
    };
    assert_eq!(again, msg, "write_to + parse_datagram changed the message");
    assert_eq!(
        again.to_bytes(),
        bytes,
        "canonical form is not a fixed point"
    );

    match &msg {
        SipMessage::Request(r) => {
            let _ = check_request(r);
            let _ = check_require(r, &["timer", "100rel"]);
            let _ = r.uri.to_string();
            let _ = r.uri.as_sip().map(|u| u.to_string());
            let _ = r.make_response(vocelio_engine::sip::StatusCode::OK, "OK");
        }
        SipMessage::Response(r) => {
            let _ = check_response(r);
        }
    }
    typed_accessors(msg.headers());
});

fn typed_accessors(h: &Headers) {
    if let Ok(vias) = h.vias() {
        for v in vias {
            let _ = (v.branch(), v.received(), v.rport(), v.to_string());
        }
    }
    let _ = h.top_via();
    for na in [h.from(), h.to()].into_iter().flatten() {
        let _ = (na.tag(), na.to_string(), na.uri.to_string());
    }
    let _ = h.call_id().map(|c| c.to_string());
    let _ = h.cseq().map(|c| c.to_string());
    let _ = h.max_forwards();
    if let Ok(Some(Contacts::List(list))) = h.contacts() {
        for c in list {
            let _ = (c.q(), c.expires(), c.addr.to_string());
        }
    }
    let _ = h.content_type().map(|t| t.map(|t| t.to_string()));
    let _ = h.accept();
    let _ = h.routes();
    let _ = h.record_routes();
    let _ = h.expires();
    let _ = h.allow();
    let _ = h.supported();
    let _ = h.require();
    let _ = h.proxy_require();
    let _ = h.www_authenticate();
    let _ = h.proxy_authenticate();
    let _ = h.authorization();
    let _ = h.proxy_authorization();
    for header in h {
        let _ = header.value_str();
    }
}
