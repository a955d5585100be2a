//! SDP offer/answer against descriptions shaped like the ones real peers
//! send (sipp, linphone/baresip, Twilio and carriers, Asterisk re-INVITEs),
//! plus every hostile-input case the parser must refuse.

use std::net::{IpAddr, SocketAddr};

use vocelio_engine::sdp::{
    accept_answer, create_answer, create_offer, create_reanswer, Codec, Direction, LocalMedia,
    MediaKind, Negotiated, NegotiationError, SdpError, SessionDescription, MAX_ATTRIBUTES,
    MAX_LINE_LEN, MAX_MEDIA, MAX_SDP_LEN,
};

// ---------------------------------------------------------------- fixtures

/// `sipp -sn uac`: the bare minimum.
const SIPP: &str = "v=0\r\n\
o=user1 53655765 2353687637 IN IP4 127.0.1.1\r\n\
s=-\r\n\
c=IN IP4 127.0.1.1\r\n\
t=0 0\r\n\
m=audio 6000 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

/// linphone / baresip: Opus first, rtcp-mux, session-level extras, LF only.
const LINPHONE: &str = "v=0\n\
o=alice 3041 1234 IN IP4 192.168.1.20\n\
s=Talk\n\
c=IN IP4 192.168.1.20\n\
t=0 0\n\
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics\n\
m=audio 7078 RTP/AVP 96 0 8 101\n\
a=rtpmap:96 opus/48000/2\n\
a=fmtp:96 useinbandfec=1\n\
a=rtpmap:0 PCMU/8000\n\
a=rtpmap:8 PCMA/8000\n\
a=rtpmap:101 telephone-event/8000\n\
a=fmtp:101 0-15\n\
a=rtcp-mux\n\
a=ptime:20\n";

/// Twilio Elastic SIP trunk / carrier gateway.
const TWILIO: &str = "v=0\r\n\
o=root 1466392005 1466392005 IN IP4 54.172.60.1\r\n\
s=Twilio Media Gateway\r\n\
c=IN IP4 54.172.60.1\r\n\
t=0 0\r\n\
m=audio 12716 RTP/AVP 0 8 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

/// A softphone with video first, media-level c= lines and b= lines.
const VIDEO_AND_AUDIO: &str = "v=0\r\n\
o=bob 2890844526 2890842807 IN IP4 10.47.16.5\r\n\
s= \r\n\
t=0 0\r\n\
m=video 9078 RTP/AVP 103 99\r\n\
c=IN IP4 10.47.16.5\r\n\
b=AS:512\r\n\
a=rtpmap:103 VP8/90000\r\n\
a=rtpmap:99 H264/90000\r\n\
a=fmtp:99 profile-level-id=42801F\r\n\
m=audio 7078 RTP/AVP 8 0 101\r\n\
c=IN IP4 10.47.16.5\r\n\
b=AS:64\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=rtcp:7079\r\n";

/// A G.729-only gateway.
const G729_ONLY: &str = "v=0\r\n\
o=CiscoSystemsSIP-GW-UserAgent 4158 5404 IN IP4 172.16.0.10\r\n\
s=SIP Call\r\n\
c=IN IP4 172.16.0.10\r\n\
t=0 0\r\n\
m=audio 17334 RTP/AVP 18 101\r\n\
c=IN IP4 172.16.0.10\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-15\r\n\
a=ptime:20\r\n";

/// An Asterisk re-INVITE putting us on hold (RFC 3264 style).
const HOLD_SENDONLY: &str = "v=0\r\n\
o=- 1714380001 1714380002 IN IP4 198.51.100.20\r\n\
s=Asterisk\r\n\
c=IN IP4 198.51.100.20\r\n\
t=0 0\r\n\
m=audio 14500 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendonly\r\n";

/// RFC 2543-style hold: c=0.0.0.0, no direction attribute.
const HOLD_ZERO_ADDR: &str = "v=0\r\n\
o=- 1714380001 1714380003 IN IP4 198.51.100.20\r\n\
s=-\r\n\
c=IN IP4 0.0.0.0\r\n\
t=0 0\r\n\
m=audio 14500 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

fn with_direction(base: &str, attr: &str) -> String {
    base.replace("a=sendonly", attr)
}

// ---------------------------------------------------------------- helpers

fn local(codecs: &[Codec]) -> LocalMedia {
    LocalMedia {
        addr: IpAddr::from([203, 0, 113, 5]),
        rtp_port: 40000,
        codecs: codecs.to_vec(),
        telephone_event: true,
        ptime: 20,
        session_id: 900,
        session_version: 1,
        username: "vocelio".into(),
    }
}

fn parse(s: &str) -> SessionDescription {
    match SessionDescription::parse(s.as_bytes()) {
        Ok(sd) => sd,
        Err(e) => panic!("fixture does not parse: {e}\n{s}"),
    }
}

fn answer(offer: &str, codecs: &[Codec]) -> (SessionDescription, Negotiated) {
    match create_answer(&parse(offer), &local(codecs)) {
        Ok(a) => a,
        Err(e) => panic!("no answer: {e}"),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// The lines of the `index`-th media section of the written description.
fn media_lines(sd: &SessionDescription, index: usize) -> Vec<String> {
    let text = String::from_utf8(sd.to_bytes()).expect("we write UTF-8");
    assert!(text.ends_with("\r\n") && !text.contains("\r\n\r\n"));
    let mut sections: Vec<Vec<String>> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(s) = sections.last_mut() {
            s.push(line.to_owned());
        }
    }
    sections.swap_remove(index)
}

fn assert_round_trip(s: &str) {
    let sd = parse(s);
    assert_eq!(SessionDescription::parse(&sd.to_bytes()), Ok(sd.clone()));
    let mut out = Vec::new();
    sd.write_to(&mut out);
    assert_eq!(out, sd.to_bytes());
}

fn negotiated(
    remote: &str,
    codec: Codec,
    payload_type: u8,
    te: Option<(u8, u32)>,
    ptime: u8,
    direction: Direction,
) -> Negotiated {
    Negotiated {
        remote_rtp: addr(remote),
        codec,
        payload_type,
        clock_rate: codec.clock_rate(),
        telephone_event_pt: te.map(|t| t.0),
        telephone_event_clock_rate: te.map(|t| t.1),
        ptime,
        direction,
    }
}

const G711: &[Codec] = &[Codec::Pcmu, Codec::Pcma];

// ---------------------------------------------------------------- answers

#[test]
fn sipp_offer() {
    let (ans, n) = answer(SIPP, G711);
    assert_eq!(
        n,
        negotiated(
            "127.0.1.1:6000",
            Codec::Pcmu,
            0,
            None,
            20,
            Direction::SendRecv
        )
    );
    assert_eq!(
        String::from_utf8(ans.to_bytes()).unwrap(),
        "v=0\r\n\
         o=vocelio 900 1 IN IP4 203.0.113.5\r\n\
         s=-\r\n\
         c=IN IP4 203.0.113.5\r\n\
         t=0 0\r\n\
         m=audio 40000 RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n"
    );
}

#[test]
fn linphone_offer_with_g711_only_locally() {
    let (ans, n) = answer(LINPHONE, G711);
    assert_eq!(
        n,
        negotiated(
            "192.168.1.20:7078",
            Codec::Pcmu,
            0,
            Some((101, 8000)),
            20,
            Direction::SendRecv
        )
    );
    assert_eq!(
        media_lines(&ans, 0),
        [
            "m=audio 40000 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
    // We do not do rtcp-mux, so the answer does not echo it.
    assert!(!String::from_utf8(ans.to_bytes())
        .unwrap()
        .contains("rtcp-mux"));
}

#[test]
fn linphone_offer_with_opus_locally() {
    let (ans, n) = answer(LINPHONE, &[Codec::Pcma, Codec::Opus]);
    // The offerer's order wins over ours; its telephone-event is 8 kHz only.
    assert_eq!(
        n,
        negotiated(
            "192.168.1.20:7078",
            Codec::Opus,
            96,
            Some((101, 8000)),
            20,
            Direction::SendRecv
        )
    );
    assert_eq!(n.clock_rate, 48000);
    assert_eq!(
        media_lines(&ans, 0),
        [
            "m=audio 40000 RTP/AVP 96 101",
            "a=rtpmap:96 opus/48000/2",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
}

#[test]
fn opus_offer_with_48k_telephone_event() {
    let offer = LINPHONE
        .replace("96 0 8 101", "111 0 101 110")
        .replace("a=rtpmap:96 opus", "a=rtpmap:111 opus")
        .replace("a=fmtp:96", "a=fmtp:111")
        .replace(
            "a=rtcp-mux\n",
            "a=rtpmap:110 telephone-event/48000\na=rtcp-mux\n",
        );
    let (ans, n) = answer(&offer, &[Codec::Opus]);
    assert_eq!((n.payload_type, n.telephone_event_pt), (111, Some(110)));
    assert_eq!(n.telephone_event_clock_rate, Some(48000));
    assert_eq!(media_lines(&ans, 0)[0], "m=audio 40000 RTP/AVP 111 110");
    // G.711 never pairs with 48 kHz events.
    let (_, n) = answer(&offer, G711);
    assert_eq!((n.codec, n.telephone_event_pt), (Codec::Pcmu, Some(101)));
}

#[test]
fn twilio_offer() {
    // We prefer PCMA, but the offerer's order (PCMU first) decides.
    let (ans, n) = answer(TWILIO, &[Codec::Pcma, Codec::Pcmu]);
    assert_eq!(
        n,
        negotiated(
            "54.172.60.1:12716",
            Codec::Pcmu,
            0,
            Some((101, 8000)),
            20,
            Direction::SendRecv
        )
    );
    assert_eq!(
        media_lines(&ans, 0),
        [
            "m=audio 40000 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
    // Without telephone-event locally, only the codec.
    let mut l = local(G711);
    l.telephone_event = false;
    let (ans, n) = create_answer(&parse(TWILIO), &l).unwrap();
    assert_eq!(n.telephone_event_pt, None);
    assert_eq!(media_lines(&ans, 0)[0], "m=audio 40000 RTP/AVP 0");
}

#[test]
fn video_and_audio_offer_rejects_video() {
    let (ans, n) = answer(VIDEO_AND_AUDIO, G711);
    assert_eq!(
        n,
        negotiated(
            "10.47.16.5:7078",
            Codec::Pcma,
            8,
            Some((101, 8000)),
            20,
            Direction::SendRecv
        )
    );
    assert_eq!(ans.media.len(), 2);
    assert_eq!(ans.media[0].kind, MediaKind::Video);
    assert_eq!(media_lines(&ans, 0), ["m=video 0 RTP/AVP 103 99"]);
    assert_eq!(
        media_lines(&ans, 1),
        [
            "m=audio 40000 RTP/AVP 8 101",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
}

#[test]
fn g729_only_is_no_common_codec() {
    assert_eq!(
        create_answer(&parse(G729_ONLY), &local(G711)).map(|_| ()),
        Err(NegotiationError::NoCommonCodec)
    );
    // telephone-event alone is not a codec.
    assert_eq!(
        create_answer(&parse(G729_ONLY), &local(&[Codec::Opus])).map(|_| ()),
        Err(NegotiationError::NoCommonCodec)
    );
}

#[test]
fn srtp_only_is_rejected_and_best_effort_srtp_uses_the_avp_line() {
    let savp = TWILIO.replace("RTP/AVP", "RTP/SAVP");
    assert_eq!(
        create_answer(&parse(&savp), &local(G711)).map(|_| ()),
        Err(NegotiationError::NoUsableAudio)
    );
    let both = format!(
        "{}m=audio 12718 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n",
        savp.replace(
            "a=sendrecv\r\n",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
        )
    );
    let (ans, n) = answer(&both, G711);
    assert_eq!(
        (n.codec, n.remote_rtp),
        (Codec::Pcma, addr("54.172.60.1:12718"))
    );
    assert_eq!(media_lines(&ans, 0), ["m=audio 0 RTP/SAVP 0 8 101"]);
    assert_eq!(media_lines(&ans, 1)[0], "m=audio 40000 RTP/AVP 8");
}

#[test]
fn hold_with_sendonly() {
    let mut l = local(G711);
    l.session_version = 2;
    let (ans, n) = create_answer(&parse(HOLD_SENDONLY), &l).unwrap();
    assert_eq!(
        n,
        negotiated(
            "198.51.100.20:14500",
            Codec::Pcmu,
            0,
            Some((101, 8000)),
            20,
            Direction::RecvOnly
        )
    );
    assert!(!n.direction.sends() && n.direction.receives());
    assert_eq!(ans.origin.session_version, 2);
    assert_eq!(ans.origin.session_id, 900);
    assert_eq!(
        media_lines(&ans, 0),
        [
            "m=audio 40000 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=recvonly",
        ]
    );
}

#[test]
fn hold_with_zero_address() {
    let (ans, n) = answer(HOLD_ZERO_ADDR, G711);
    assert_eq!(
        n,
        negotiated(
            "0.0.0.0:14500",
            Codec::Pcmu,
            0,
            Some((101, 8000)),
            20,
            Direction::RecvOnly
        )
    );
    assert_eq!(media_lines(&ans, 0).last().unwrap(), "a=recvonly");
    // Our answer carries our real address, not the hold address.
    assert!(String::from_utf8(ans.to_bytes())
        .unwrap()
        .contains("c=IN IP4 203.0.113.5\r\n"));
    // 0.0.0.0 plus recvonly or inactive: nothing flows at all.
    for attr in ["a=recvonly", "a=inactive"] {
        let offer = format!("{HOLD_ZERO_ADDR}{attr}\r\n");
        let (ans, n) = answer(&offer, G711);
        assert_eq!(n.direction, Direction::Inactive, "{attr}");
        assert_eq!(media_lines(&ans, 0).last().unwrap(), "a=inactive");
    }
}

#[test]
fn recvonly_offer() {
    let (ans, n) = answer(&with_direction(HOLD_SENDONLY, "a=recvonly"), G711);
    assert_eq!(n.direction, Direction::SendOnly);
    assert!(n.direction.sends() && !n.direction.receives());
    assert_eq!(media_lines(&ans, 0).last().unwrap(), "a=sendonly");
}

#[test]
fn inactive_offer() {
    let (ans, n) = answer(&with_direction(HOLD_SENDONLY, "a=inactive"), G711);
    assert_eq!(n.direction, Direction::Inactive);
    assert_eq!(media_lines(&ans, 0).last().unwrap(), "a=inactive");
}

#[test]
fn session_level_direction_applies_to_media() {
    let offer = SIPP.replace("t=0 0\r\n", "t=0 0\r\na=sendonly\r\n");
    assert_eq!(answer(&offer, G711).1.direction, Direction::RecvOnly);
}

#[test]
fn ptime_30_is_kept_and_odd_ptimes_become_20() {
    let (ans, n) = answer(&TWILIO.replace("a=ptime:20", "a=ptime:30"), G711);
    assert_eq!(n.ptime, 30);
    assert!(media_lines(&ans, 0).contains(&"a=ptime:30".to_owned()));
    for odd in ["a=ptime:10", "a=ptime:40", "a=ptime:0"] {
        let (ans, n) = answer(&TWILIO.replace("a=ptime:20", odd), G711);
        assert_eq!(n.ptime, 20, "{odd}");
        assert!(media_lines(&ans, 0).contains(&"a=ptime:20".to_owned()));
    }
    let (_, n) = answer(SIPP, G711);
    assert_eq!(n.ptime, 20);
}

#[test]
fn unhold_reinvite_keeps_the_codec() {
    // Initial call: the offerer's order picks PCMA.
    let (_, first) = answer(VIDEO_AND_AUDIO, G711);
    assert_eq!(first.codec, Codec::Pcma);
    // Hold then unhold re-offers reorder the list; the call keeps PCMA.
    let reoffer = VIDEO_AND_AUDIO
        .replace("RTP/AVP 8 0 101", "RTP/AVP 0 8 101")
        .replace("a=rtcp:7079\r\n", "a=rtcp:7079\r\na=sendonly\r\n");
    let mut l = local(G711);
    l.session_version = 2;
    let (ans, held) = create_reanswer(&parse(&reoffer), &l, first.codec).unwrap();
    assert_eq!((held.codec, held.payload_type), (Codec::Pcma, 8));
    assert_eq!(held.direction, Direction::RecvOnly);
    assert_eq!(ans.origin.session_version, 2);
    l.session_version = 3;
    let unhold = reoffer.replace("a=sendonly", "a=sendrecv");
    let (ans, resumed) = create_reanswer(&parse(&unhold), &l, held.codec).unwrap();
    assert_eq!(resumed.codec, Codec::Pcma);
    assert_eq!(resumed.direction, Direction::SendRecv);
    assert_eq!(ans.origin.session_version, 3);
    // A plain create_answer would have followed the new order.
    assert_eq!(answer(&unhold, G711).1.codec, Codec::Pcmu);
}

// ---------------------------------------------------------------- our offers

#[test]
fn our_offer_and_a_carrier_answer() {
    let offer = create_offer(&local(G711));
    assert_eq!(
        media_lines(&offer, 0),
        [
            "m=audio 40000 RTP/AVP 0 8 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-16",
            "a=ptime:20",
            "a=sendrecv",
        ]
    );
    let carrier = "v=0\r\n\
        o=- 8800 8801 IN IP4 54.172.60.1\r\n\
        s=-\r\n\
        c=IN IP4 54.172.60.2\r\n\
        t=0 0\r\n\
        m=audio 18000 RTP/AVP 8 101\r\n\
        a=rtpmap:8 PCMA/8000\r\n\
        a=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n\
        a=ptime:30\r\n";
    let n = accept_answer(&offer, &parse(carrier)).unwrap();
    assert_eq!(
        n,
        negotiated(
            "54.172.60.2:18000",
            Codec::Pcma,
            8,
            Some((101, 8000)),
            30,
            Direction::SendRecv
        )
    );
    // The answerer puts us on hold / only receives.
    for (attr, ours) in [
        ("a=sendonly", Direction::RecvOnly),
        ("a=recvonly", Direction::SendOnly),
        ("a=inactive", Direction::Inactive),
    ] {
        let a = format!("{carrier}{attr}\r\n");
        assert_eq!(accept_answer(&offer, &parse(&a)).unwrap().direction, ours);
    }
    // Answer without telephone-event.
    let plain = carrier.replace("8 101", "8");
    assert_eq!(
        accept_answer(&offer, &parse(&plain))
            .unwrap()
            .telephone_event_pt,
        None
    );
    // A codec we never offered.
    let g729 = carrier
        .replace("8 101", "18")
        .replace("a=rtpmap:8 PCMA/8000", "a=rtpmap:18 G729/8000");
    assert_eq!(
        accept_answer(&offer, &parse(&g729)),
        Err(NegotiationError::NoCommonCodec)
    );
    // Rejected.
    let rejected = carrier.replace("m=audio 18000", "m=audio 0");
    assert_eq!(
        accept_answer(&offer, &parse(&rejected)),
        Err(NegotiationError::AudioRejected)
    );
}

#[test]
fn late_offer_answer_in_ack_from_linphone() {
    // We offer Opus first in our 200; linphone answers in the ACK.
    let mut l = local(&[Codec::Opus, Codec::Pcmu]);
    l.ptime = 30;
    let offer = create_offer(&l);
    assert_eq!(
        media_lines(&offer, 0)[0],
        "m=audio 40000 RTP/AVP 96 0 101 102"
    );
    let ack_body = "v=0\n\
        o=alice 3041 1235 IN IP4 192.168.1.20\n\
        s=Talk\n\
        c=IN IP4 192.168.1.20\n\
        t=0 0\n\
        m=audio 7078 RTP/AVP 96 102\n\
        a=rtpmap:96 opus/48000/2\n\
        a=rtpmap:102 telephone-event/48000\n";
    let n = accept_answer(&offer, &parse(ack_body)).unwrap();
    assert_eq!(
        n,
        negotiated(
            "192.168.1.20:7078",
            Codec::Opus,
            96,
            Some((102, 48000)),
            30,
            Direction::SendRecv
        )
    );
}

#[test]
fn our_offer_answered_by_ourselves() {
    let offer = create_offer(&local(&[Codec::Pcma]));
    let mut them = local(G711);
    them.addr = IpAddr::from([198, 51, 100, 1]);
    them.rtp_port = 50000;
    let (ans, theirs) =
        create_answer(&parse(&String::from_utf8(offer.to_bytes()).unwrap()), &them).unwrap();
    let ours = accept_answer(&offer, &ans).unwrap();
    assert_eq!(ours.remote_rtp, addr("198.51.100.1:50000"));
    assert_eq!(theirs.remote_rtp, addr("203.0.113.5:40000"));
    assert_eq!((ours.codec, theirs.codec), (Codec::Pcma, Codec::Pcma));
}

// ---------------------------------------------------------------- round trips

#[test]
fn every_fixture_round_trips() {
    for s in [
        SIPP,
        LINPHONE,
        TWILIO,
        VIDEO_AND_AUDIO,
        G729_ONLY,
        HOLD_SENDONLY,
        HOLD_ZERO_ADDR,
    ] {
        assert_round_trip(s);
    }
}

#[test]
fn answers_and_offers_round_trip() {
    for s in [
        SIPP,
        LINPHONE,
        TWILIO,
        VIDEO_AND_AUDIO,
        HOLD_SENDONLY,
        HOLD_ZERO_ADDR,
    ] {
        let (ans, _) = answer(s, &[Codec::Opus, Codec::Pcmu, Codec::Pcma]);
        assert_eq!(ans.validate(), Ok(()));
        assert_eq!(SessionDescription::parse(&ans.to_bytes()), Ok(ans));
    }
    let offer = create_offer(&local(&[Codec::Opus, Codec::Pcma]));
    assert_eq!(offer.validate(), Ok(()));
}

#[test]
fn full_rfc4566_example_round_trips() {
    // RFC 4566 §5 example, plus the rarer lines.
    assert_round_trip(
        "v=0\r\n\
         o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n\
         s=SDP Seminar\r\n\
         i=A Seminar on the session description protocol\r\n\
         u=http://www.example.com/seminars/sdp.pdf\r\n\
         e=j.doe@example.com (Jane Doe)\r\n\
         p=+1 617 555-6011\r\n\
         c=IN IP4 224.2.17.12/127\r\n\
         b=CT:128\r\n\
         t=2873397496 2873404696\r\n\
         r=7d 1h 0 25h\r\n\
         z=2882844526 -1h 2898848070 0\r\n\
         k=prompt\r\n\
         a=recvonly\r\n\
         m=audio 49170 RTP/AVP 0\r\n\
         i=audio title\r\n\
         m=video 51372/2 RTP/AVP 99\r\n\
         k=clear:abc\r\n\
         a=rtpmap:99 h263-1998/90000\r\n\
         m=image 0 udptl t38\r\n",
    );
}

// ---------------------------------------------------------------- hostile input

fn err(s: impl AsRef<[u8]>) -> SdpError {
    match SessionDescription::parse(s.as_ref()) {
        Ok(sd) => panic!("accepted: {sd:?}"),
        Err(e) => e,
    }
}

const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";

#[test]
fn hostile_payload_type_over_127() {
    assert_eq!(
        err(format!("{HEAD}m=audio 6000 RTP/AVP 0 128\r\n")),
        SdpError::InvalidPayloadType {
            line: 6,
            found: "128".into()
        }
    );
    assert!(matches!(
        err(format!(
            "{HEAD}m=audio 6000 RTP/AVP 99999999999999999999999\r\n"
        )),
        SdpError::InvalidPayloadType { line: 6, .. }
    ));
    assert!(matches!(
        err(format!(
            "{HEAD}m=audio 6000 RTP/AVP 0\r\na=rtpmap:255 PCMU/8000\r\n"
        )),
        SdpError::InvalidPayloadType { line: 7, .. }
    ));
    assert!(matches!(
        err(format!(
            "{HEAD}m=audio 6000 RTP/AVP 0\r\na=fmtp:300 x=1\r\n"
        )),
        SdpError::InvalidPayloadType { line: 7, .. }
    ));
    assert!(matches!(
        err(format!("{HEAD}m=audio 6000 RTP/AVP -1\r\n")),
        SdpError::InvalidPayloadType { .. }
    ));
}

#[test]
fn hostile_port_over_65535() {
    assert_eq!(
        err(format!("{HEAD}m=audio 65536 RTP/AVP 0\r\n")),
        SdpError::InvalidPort {
            line: 6,
            found: "65536".into()
        }
    );
    assert!(matches!(
        err(format!("{HEAD}m=audio 4294967296 RTP/AVP 0\r\n")),
        SdpError::InvalidPort { .. }
    ));
    assert!(matches!(
        err(format!("{HEAD}m=audio 6000 RTP/AVP 0\r\na=rtcp:70000\r\n")),
        SdpError::InvalidPort { line: 7, .. }
    ));
    assert!(matches!(
        err(format!("{HEAD}m=audio +6000 RTP/AVP 0\r\n")),
        SdpError::InvalidPort { .. }
    ));
    assert!(
        SessionDescription::parse(format!("{HEAD}m=audio 65535 RTP/AVP 0\r\n").as_bytes()).is_ok()
    );
}

#[test]
fn hostile_nul_and_control_characters() {
    assert_eq!(
        err(format!("{HEAD}m=audio 6000 RTP/AVP 0\r\na=x\0y\r\n")),
        SdpError::ControlChar {
            line: 7,
            column: 4,
            byte: 0
        }
    );
    assert!(matches!(
        err("v=0\0\r\n"),
        SdpError::ControlChar {
            line: 1,
            byte: 0,
            ..
        }
    ));
    for ctl in [b'\x01', b'\x1b', b'\t', b'\r', b'\x7f', b'\x0b', b'\x0c'] {
        let mut bytes = HEAD.as_bytes().to_vec();
        bytes.extend_from_slice(b"s=a");
        bytes.push(ctl);
        bytes.extend_from_slice(b"b\r\n");
        assert!(
            matches!(err(&bytes), SdpError::ControlChar { line: 6, byte, .. } if byte == ctl),
            "{ctl:#x}"
        );
    }
}

#[test]
fn hostile_too_many_media_lines() {
    let mut s = HEAD.to_owned();
    for i in 0..MAX_MEDIA {
        s.push_str(&format!("m=audio {} RTP/AVP 0\r\n", 2000 + 2 * i));
    }
    assert_eq!(
        SessionDescription::parse(s.as_bytes()).map(|sd| sd.media.len()),
        Ok(MAX_MEDIA)
    );
    s.push_str("m=video 0 RTP/AVP 31\r\n");
    assert_eq!(
        err(&s),
        SdpError::TooManyMedia {
            line: 6 + MAX_MEDIA,
            max: MAX_MEDIA
        }
    );
}

#[test]
fn hostile_line_over_4k() {
    let long = format!("{HEAD}a=x:{}\r\n", "y".repeat(MAX_LINE_LEN));
    assert_eq!(
        err(&long),
        SdpError::LineTooLong {
            line: 6,
            len: MAX_LINE_LEN + 4,
            max: MAX_LINE_LEN
        }
    );
    // Also with no line end at all, and with LF only.
    assert!(matches!(
        err("v=".to_owned() + &"0".repeat(5000)),
        SdpError::LineTooLong { line: 1, .. }
    ));
    assert!(matches!(
        err(long.replace("\r\n", "\n")),
        SdpError::LineTooLong { line: 6, .. }
    ));
    // Exactly at the limit is fine.
    let at_limit = format!("{HEAD}a=x:{}\r\n", "y".repeat(MAX_LINE_LEN - 4));
    assert!(SessionDescription::parse(at_limit.as_bytes()).is_ok());
}

#[test]
fn hostile_too_many_attributes() {
    let mut s = format!("{HEAD}m=audio 6000 RTP/AVP 0\r\n");
    for i in 0..MAX_ATTRIBUTES {
        s.push_str(&format!("a=x-{i}\r\n"));
    }
    assert!(SessionDescription::parse(s.as_bytes()).is_ok());
    s.push_str("a=one-too-many\r\n");
    assert_eq!(
        err(&s),
        SdpError::TooManyAttributes {
            line: 7 + MAX_ATTRIBUTES,
            max: MAX_ATTRIBUTES
        }
    );
    // Session level too.
    let mut s = HEAD.to_owned();
    for i in 0..=MAX_ATTRIBUTES {
        s.push_str(&format!("a=x-{i}\r\n"));
    }
    assert!(matches!(err(&s), SdpError::TooManyAttributes { .. }));
}

#[test]
fn hostile_non_utf8() {
    let mut bytes = HEAD.as_bytes().to_vec();
    bytes.extend_from_slice(b"m=audio 6000 RTP/AVP 0\r\na=x:\xff\xfe\r\n");
    assert_eq!(err(&bytes), SdpError::NotUtf8 { line: 7 });
    assert_eq!(
        err(b"v=0\r\no=\xc3\x28 1 1 IN IP4 h\r\n"),
        SdpError::NotUtf8 { line: 2 }
    );
    // Valid UTF-8 is fine in text fields.
    assert!(SessionDescription::parse(format!("{HEAD}i=Café 日本\r\n").as_bytes()).is_ok());
}

#[test]
fn hostile_missing_connection_for_active_audio() {
    let no_c = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\n";
    assert_eq!(
        err(format!(
            "{no_c}m=video 0 RTP/AVP 31\r\nm=audio 6000 RTP/AVP 0\r\n"
        )),
        SdpError::MissingConnection { media: 1 }
    );
    // Rejected audio needs none; media-level c= is enough.
    assert!(SessionDescription::parse(format!("{no_c}m=audio 0 RTP/AVP 0\r\n").as_bytes()).is_ok());
    assert!(SessionDescription::parse(
        format!("{no_c}m=audio 6000 RTP/AVP 0\r\nc=IN IP4 192.0.2.9\r\n").as_bytes()
    )
    .is_ok());
}

#[test]
fn hostile_oversized_description() {
    let mut s = HEAD.to_owned();
    while s.len() <= MAX_SDP_LEN {
        s.push_str("a=filler\r\n");
    }
    assert!(matches!(
        err(&s),
        SdpError::TooLarge {
            max: MAX_SDP_LEN,
            ..
        }
    ));
}

#[test]
fn hostile_malformed_fields() {
    for (case, bad) in [
        ("empty", ""),
        ("blank lines only", "\r\n\n\r\n"),
        ("no v=", "o=- 1 1 IN IP4 h\r\ns=-\r\n"),
        ("v=1", "v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\n"),
        (
            "unknown letter",
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nq=1\r\n",
        ),
        ("no equals", "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nhello\r\n"),
        ("o= short", "v=0\r\no=- 1 IN IP4 h\r\ns=-\r\n"),
        (
            "o= id overflow",
            "v=0\r\no=- 18446744073709551616 1 IN IP4 h\r\ns=-\r\n",
        ),
        ("o= nettype", "v=0\r\no=- 1 1 ATM IP4 h\r\ns=-\r\n"),
        (
            "c= v6 in IP4",
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 ::1\r\n",
        ),
        (
            "c= garbage",
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 1.2.3.4.5\r\n",
        ),
        ("two c=", &format!("{HEAD}c=IN IP4 192.0.2.2\r\n")),
        (
            "t= text",
            "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=now later\r\n",
        ),
        ("m= short", &format!("{HEAD}m=audio 6000\r\n")),
        (
            "rtpmap no clock",
            &format!("{HEAD}m=audio 1 RTP/AVP 0\r\na=rtpmap:0 PCMU\r\n"),
        ),
        (
            "ptime text",
            &format!("{HEAD}m=audio 1 RTP/AVP 0\r\na=ptime:fast\r\n"),
        ),
        (
            "o= after m=",
            &format!("{HEAD}m=audio 1 RTP/AVP 0\r\no=- 1 1 IN IP4 h\r\n"),
        ),
    ] {
        assert!(SessionDescription::parse(bad.as_bytes()).is_err(), "{case}");
    }
}

#[test]
fn leniencies_real_peers_need() {
    // LF-only, trailing blank lines, extra spaces, b= before c=, no t=.
    let sd = parse(
        "v=0\n\no=-  1 1 IN IP4 h\ns=-\nb=AS:80\nc=IN IP4 192.0.2.1\n\
         m=audio  6000  RTP/AVP  0  8\na=rtpmap:8  PCMA/8000\n\n\n",
    );
    assert_eq!(sd.media[0].port, 6000);
    assert!(sd.timing.is_empty());
    let (_, n) = create_answer(&sd, &local(&[Codec::Pcma])).unwrap();
    assert_eq!((n.codec, n.payload_type), (Codec::Pcma, 8));
}
