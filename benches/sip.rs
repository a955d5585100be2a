//! SIP message-layer costs per message (criterion, throughput in messages/s),
//! then a p50/p99 table over individually timed messages.
//! `cargo bench --bench sip`.
//!
//! Under `cargo test --benches` each benchmark runs once and the table uses a
//! few hundred messages, so the bench keeps compiling and running in CI.

mod common;

use criterion::{Criterion, Throughput};
use std::hint::black_box;
use vocelio_engine::sip::auth::{
    Algorithm, Credentials, DigestChallenge, DigestServer, NonceCount,
};
use vocelio_engine::sip::{parse_datagram, AuthHeader, Method, SipMessage, Uri};

/// An INVITE as a carrier's SBC sends it toward a trunk: two Vias, a display
/// name, session timers and a G.711 + telephone-event SDP offer.
const INVITE: &[u8] = b"INVITE sip:+15550100@trunk.vocelio.example:5060;transport=udp SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.17:5060;branch=z9hG4bK-524287-1---7f1c0e2a9b3d4c11;rport\r\n\
Via: SIP/2.0/UDP 198.51.100.4:5060;received=198.51.100.4;branch=z9hG4bK3f8a.0c21d5e7\r\n\
Max-Forwards: 69\r\n\
From: \"ACME Support\" <sip:+14155550123@sbc.carrier.example;user=phone>;tag=as5f1e2d3c\r\n\
To: <sip:+15550100@trunk.vocelio.example;user=phone>\r\n\
Call-ID: 6f3d8a1e2b7c4f90a1d2@203.0.113.17\r\n\
CSeq: 102 INVITE\r\n\
Contact: <sip:+14155550123@203.0.113.17:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, NOTIFY, UPDATE\r\n\
Supported: replaces, timer, 100rel\r\n\
Session-Expires: 1800;refresher=uac\r\n\
Content-Type: application/sdp\r\n\
Content-Length:   238\r\n\
\r\n\
v=0\r\n\
o=- 1700000000 1700000001 IN IP4 203.0.113.17\r\n\
s=-\r\n\
c=IN IP4 203.0.113.17\r\n\
t=0 0\r\n\
m=audio 31458 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
";

/// Parses and reads the headers a UAS needs to act on an INVITE.
fn parse_typed(bytes: &[u8]) -> usize {
    let SipMessage::Request(req) = parse_datagram(bytes).expect("INVITE parses") else {
        unreachable!("a request")
    };
    let h = &req.headers;
    let vias = h.vias().expect("Via");
    let from = h.from().expect("From");
    let to = h.to().expect("To");
    let call_id = h.call_id().expect("Call-ID");
    let cseq = h.cseq().expect("CSeq");
    let contacts = h.contacts().expect("Contact");
    let max_forwards = h.max_forwards().expect("Max-Forwards");
    let content_type = h.content_type().expect("Content-Type");
    black_box((
        &from,
        &to,
        &call_id,
        &cseq,
        &contacts,
        &max_forwards,
        &content_type,
    ));
    vias.len() + req.body.len()
}

use common::Op;

fn ops() -> Vec<(String, Op)> {
    let mut v: Vec<(String, Op)> = Vec::new();
    v.push((
        "parse_datagram (INVITE + SDP)".into(),
        Box::new(|| {
            black_box(parse_datagram(black_box(INVITE)).expect("parses"));
        }),
    ));
    v.push((
        "parse + typed headers".into(),
        Box::new(|| {
            black_box(parse_typed(black_box(INVITE)));
        }),
    ));
    let msg = parse_datagram(INVITE).expect("parses");
    let mut out = Vec::with_capacity(2048);
    v.push((
        "write_to (canonical form)".into(),
        Box::new(move || {
            out.clear();
            black_box(&msg).write_to(&mut out);
            black_box(&out);
        }),
    ));
    let msg = parse_datagram(INVITE).expect("parses");
    let mut out = Vec::with_capacity(2048);
    v.push((
        "parse + typed headers + write_to".into(),
        Box::new(move || {
            black_box(parse_typed(black_box(INVITE)));
            out.clear();
            msg.write_to(&mut out);
            black_box(&out);
        }),
    ));
    // Trunk access control: one digest check per challenged request.
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let server = DigestServer::new("trunk.vocelio.example", [9; 32]);
        let uri = Uri::parse("sip:+15550100@trunk.vocelio.example:5060;transport=udp")
            .expect("URI parses");
        let challenge = AuthHeader::parse(&server.challenge(1_700_000_000, alg)).expect("parses");
        let value = DigestChallenge::select([&challenge])
            .expect("usable")
            .authorize(
                &Credentials::new("acme", "s3cret"),
                &Method::Invite,
                &uri.to_string(),
                NonceCount::FIRST,
                "0a4f113b",
            )
            .expect("authorizes");
        v.push((
            format!("digest verify {alg} (parse value + verify)"),
            Box::new(move || {
                let h = AuthHeader::parse(black_box(&value)).expect("parses");
                let user = server
                    .verify(1_700_000_001, &Method::Invite, &uri, &h, |name| {
                        (name == "acme").then(|| Credentials::new("acme", "s3cret"))
                    })
                    .expect("verifies");
                black_box(user);
            }),
        ));
    }
    v
}

fn percentile_table(samples: usize) {
    println!(
        "\nPer message ({} byte INVITE with SDP), {samples} messages timed one by one \
         (after 1000 warm-up):\n",
        INVITE.len()
    );
    println!("| operation | p50 (ns) | p99 (ns) | msgs/s at p50 | msgs/s at p99 |");
    println!("|---|---:|---:|---:|---:|");
    for (name, mut op) in ops() {
        let (p50, p99) = common::percentiles(&mut op, samples);
        println!(
            "| {name} | {p50} | {p99} | {:.0} | {:.0} |",
            1e9 / p50 as f64,
            1e9 / p99 as f64
        );
    }
}

fn main() {
    let msg = parse_datagram(INVITE).expect("INVITE parses");
    let head_end = INVITE
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("blank line");
    assert_eq!(
        msg.body(),
        &INVITE[head_end + 4..],
        "Content-Length is the SDP"
    );
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("sip");
        group.throughput(Throughput::Elements(1));
        for (name, mut op) in ops() {
            group.bench_function(name, |b| b.iter(&mut op));
        }
        group.finish();
    }
    c.final_summary();
    percentile_table(if bench_mode { 20_000 } else { 200 });
}
