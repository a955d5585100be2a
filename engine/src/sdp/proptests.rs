//! Property tests: no input panics the parser or the negotiation built on
//! it, whatever parses survives write -> parse unchanged, and generated
//! valid descriptions round-trip.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

/// Bytes biased towards SDP syntax so fuzzing gets past `v=` into the line
/// parsers.
fn sdpish() -> impl Strategy<Value = Vec<u8>> {
    let rare = prop_oneof![
        Just(&b"v=0"[..]),
        Just(&b"o=- 1 2 IN IP4 192.0.2.1"[..]),
        Just(&b"o=user 18446744073709551615 0 IN IP6 host"[..]),
        Just(&b"s=-"[..]),
        Just(&b"s= "[..]),
        Just(&b"i=info"[..]),
        Just(&b"c=IN IP4 192.0.2.1"[..]),
        Just(&b"c=IN IP4 0.0.0.0"[..]),
        Just(&b"c=IN IP6 ff15::1/3"[..]),
        Just(&b"c=IN IP4 224.2.1.1/127/3"[..]),
        Just(&b"c=IN IP4 media.example.com"[..]),
        Just(&b"t=0 0"[..]),
        Just(&b"r=604800 3600 0 90000"[..]),
        Just(&b"z=2882844526 -1h"[..]),
        Just(&b"k=prompt"[..]),
    ];
    let common = prop_oneof![
        Just(&b"b=AS:64"[..]),
        Just(&b"m=audio 4000 RTP/AVP 0 8 101"[..]),
        Just(&b"m=audio 4002/2 RTP/AVP 96 0"[..]),
        Just(&b"m=audio 4000 RTP/SAVP 0"[..]),
        Just(&b"m=video 0 RTP/AVP 31"[..]),
        Just(&b"m=image 5000 udptl t38"[..]),
        Just(&b"a=rtpmap:0 PCMU/8000"[..]),
        Just(&b"a=rtpmap:8 PCMA/8000/1"[..]),
        Just(&b"a=rtpmap:96 opus/48000/2"[..]),
        Just(&b"a=rtpmap:101 telephone-event/8000"[..]),
        Just(&b"a=rtpmap:101 telephone-event/48000"[..]),
        Just(&b"a=fmtp:101 0-16"[..]),
        Just(&b"a=fmtp:96 useinbandfec=1; stereo=0"[..]),
        Just(&b"a=ptime:20"[..]),
        Just(&b"a=ptime:30"[..]),
        Just(&b"a=maxptime:60"[..]),
        Just(&b"a=sendrecv"[..]),
        Just(&b"a=sendonly"[..]),
        Just(&b"a=recvonly"[..]),
        Just(&b"a=inactive"[..]),
        Just(&b"a=rtcp:4001 IN IP4 192.0.2.1"[..]),
        Just(&b"a=rtcp-mux"[..]),
        Just(&b"a=x-nothing:"[..]),
        Just(&b""[..]),
    ];
    let fragment = prop_oneof![
        Just(&b" "[..]),
        Just(&b"  "[..]),
        Just(&b":"[..]),
        Just(&b"/"[..]),
        Just(&b"="[..]),
        Just(&b"127"[..]),
        Just(&b"128"[..]),
        Just(&b"65535"[..]),
        Just(&b"65536"[..]),
        Just(&b"99999999999999999999999"[..]),
        Just(&b"-1"[..]),
        Just(&b"\0"[..]),
        Just(&b"\r"[..]),
        Just(&b"\t"[..]),
        Just(&b"\xd0\xb0"[..]),
        Just(&b"\xff"[..]),
        Just(&b"IN IP4 "[..]),
        Just(&b"::"[..]),
    ];
    let line = prop_oneof![
        12 => common.prop_map(<[u8]>::to_vec),
        1 => rare.prop_map(<[u8]>::to_vec),
    ];
    let row = prop_oneof![
        12 => line.clone(),
        2 => (line, proptest::collection::vec(fragment, 1..3))
            .prop_map(|(l, f)| [l, f.concat()].concat()),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    let header = prop_oneof![
        1 => Just(&b""[..]),
        4 => Just(&b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"[..]),
        2 => Just(&b"v=0\no=- 1 1 IN IP4 h\ns=-\n"[..]),
    ];
    (header, proptest::collection::vec(row, 0..16), any::<bool>()).prop_map(|(header, rows, lf)| {
        let mut out = header.to_vec();
        for r in rows {
            out.extend_from_slice(&r);
            out.extend_from_slice(if lf { b"\n" } else { b"\r\n" });
        }
        out
    })
}

fn local() -> LocalMedia {
    LocalMedia {
        addr: IpAddr::from([203, 0, 113, 9]),
        rtp_port: 31000,
        codecs: vec![Codec::Opus, Codec::Pcmu, Codec::Pcma],
        telephone_event: true,
        ptime: 20,
        session_id: 1,
        session_version: 2,
        username: "-".into(),
    }
}

/// Parse; if that worked, check the round trip and run the negotiation on
/// the result (which must not panic either).
fn exercise(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(sd) = SessionDescription::parse(bytes) else {
        return Ok(());
    };
    let again = SessionDescription::parse(&sd.to_bytes());
    prop_assert_eq!(again.as_ref(), Ok(&sd));
    if let Ok((answer, n)) = create_answer(&sd, &local()) {
        prop_assert!(answer.validate().is_ok());
        prop_assert_eq!(answer.media.len(), sd.media.len());
        prop_assert!(n.ptime == 20 || n.ptime == 30);
        let _ = accept_answer(&sd, &answer);
    }
    let _ = accept_answer(&sd, &sd);
    Ok(())
}

fn text() -> impl Strategy<Value = String> {
    "[ -~\u{e9}\u{65e5}]{0,16}"
}

fn non_ws() -> impl Strategy<Value = String> {
    "[!-~]{1,12}"
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9!#$%&'*+.^_`{|}~-]{1,10}"
}

fn payload_type() -> impl Strategy<Value = PayloadType> {
    (0u8..=127).prop_map(PayloadType::masked)
}

fn connection() -> impl Strategy<Value = Connection> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|a| Connection::unicast(IpAddr::V4(Ipv4Addr::from(a)))),
        any::<[u16; 8]>().prop_map(|a| Connection::unicast(IpAddr::V6(Ipv6Addr::from(a)))),
        (
            "[a-z]{1,8}(\\.[a-z][a-z0-9-]{0,6}[a-z0-9]){0,2}",
            any::<bool>()
        )
            .prop_map(|(h, v6)| {
                Connection {
                    addr_type: if v6 { AddrType::Ip6 } else { AddrType::Ip4 },
                    address: ConnectionAddress::Fqdn(h),
                    ttl: None,
                    count: None,
                }
            }),
        (
            any::<[u8; 4]>(),
            any::<u8>(),
            proptest::option::of(any::<u32>())
        )
            .prop_map(|(a, ttl, count)| Connection {
                ttl: Some(ttl),
                count,
                ..Connection::unicast(IpAddr::V4(Ipv4Addr::from(a)))
            }),
        (any::<[u16; 8]>(), any::<u32>()).prop_map(|(a, count)| Connection {
            count: Some(count),
            ..Connection::unicast(IpAddr::V6(Ipv6Addr::from(a)))
        }),
    ]
}

fn bandwidth() -> impl Strategy<Value = Bandwidth> {
    (token(), any::<u64>()).prop_map(|(bwtype, bandwidth)| Bandwidth { bwtype, bandwidth })
}

const TYPED_NAMES: &[&str] = &[
    "rtpmap", "fmtp", "ptime", "maxptime", "rtcp", "sendrecv", "sendonly", "recvonly", "inactive",
];

fn attribute() -> impl Strategy<Value = Attribute> {
    let direction = prop_oneof![
        Just(Direction::SendRecv),
        Just(Direction::SendOnly),
        Just(Direction::RecvOnly),
        Just(Direction::Inactive),
    ];
    prop_oneof![
        (
            payload_type(),
            "[A-Za-z0-9-]{1,12}",
            1u32..,
            proptest::option::of(any::<u16>())
        )
            .prop_map(|(payload_type, encoding, clock_rate, channels)| {
                Attribute::RtpMap(RtpMap {
                    payload_type,
                    encoding,
                    clock_rate,
                    channels,
                })
            }),
        (payload_type(), text()).prop_map(|(payload_type, params)| Attribute::Fmtp(Fmtp {
            payload_type,
            params
        })),
        any::<u32>().prop_map(Attribute::Ptime),
        any::<u32>().prop_map(Attribute::MaxPtime),
        direction.prop_map(Attribute::Direction),
        (any::<u16>(), proptest::option::of(connection()))
            .prop_map(|(port, connection)| Attribute::Rtcp(Rtcp { port, connection })),
        (
            token().prop_filter("typed attribute", |n| !TYPED_NAMES.contains(&n.as_str())),
            proptest::option::of(text())
        )
            .prop_map(|(name, value)| Attribute::Other { name, value }),
    ]
}

fn media() -> impl Strategy<Value = MediaDescription> {
    let kind = prop_oneof![
        Just(MediaKind::Audio),
        Just(MediaKind::Video),
        Just(MediaKind::Image),
        Just(MediaKind::Application),
        Just(MediaKind::from_token("x-other")),
    ];
    let protocol = prop_oneof![
        Just("RTP/AVP"),
        Just("RTP/SAVP"),
        Just("RTP/AVPF"),
        Just("RTP/SAVPF"),
        Just("UDP/TLS/RTP/SAVPF"),
        Just("udptl"),
        Just("TCP/MSRP"),
    ]
    .prop_map(Protocol::from_token);
    (
        (
            kind,
            any::<u16>(),
            proptest::option::of(any::<u16>()),
            protocol,
        ),
        proptest::collection::vec(payload_type(), 1..6),
        proptest::collection::vec(token(), 1..4),
        proptest::option::of(text()),
        proptest::option::of(connection()),
        proptest::collection::vec(bandwidth(), 0..3),
        proptest::option::of(text()),
        proptest::collection::vec(attribute(), 0..8),
    )
        .prop_map(
            |((kind, port, port_count, protocol), pts, tokens, title, conn, bws, key, attrs)| {
                let formats = if protocol.is_rtp() {
                    Formats::Rtp(pts)
                } else {
                    Formats::Other(tokens)
                };
                let mut m = MediaDescription::new(kind, port, protocol, formats);
                m.port_count = port_count;
                m.title = title;
                m.connection = conn;
                m.bandwidths = bws;
                m.encryption_key = key;
                m.attributes = attrs;
                m
            },
        )
}

fn description() -> impl Strategy<Value = SessionDescription> {
    let origin = (
        non_ws(),
        any::<u64>(),
        any::<u64>(),
        any::<bool>(),
        non_ws(),
    )
        .prop_map(
            |(username, session_id, session_version, v6, address)| Origin {
                username,
                session_id,
                session_version,
                addr_type: if v6 { AddrType::Ip6 } else { AddrType::Ip4 },
                address,
            },
        );
    let timing = (
        any::<u64>(),
        any::<u64>(),
        proptest::collection::vec(text(), 0..2),
    )
        .prop_map(|(start, stop, repeats)| Timing {
            start,
            stop,
            repeats,
        });
    (
        (
            origin,
            text(),
            proptest::option::of(text()),
            proptest::option::of(text()),
            proptest::collection::vec(text(), 0..2),
            proptest::collection::vec(text(), 0..2),
        ),
        (
            proptest::option::of(connection()),
            proptest::collection::vec(bandwidth(), 0..2),
            proptest::collection::vec(timing, 0..3),
            proptest::option::of(text()),
            proptest::option::of(text()),
        ),
        proptest::collection::vec(attribute(), 0..6),
        proptest::collection::vec(media(), 0..5),
    )
        .prop_map(
            |(
                (origin, session_name, information, uri, emails, phones),
                (connection, bandwidths, timing, time_zones, encryption_key),
                attributes,
                mut media,
            )| {
                // The parser insists on a c= for active audio.
                if connection.is_none() {
                    for m in &mut media {
                        if m.kind == MediaKind::Audio && m.connection.is_none() {
                            m.connection = Some(Connection::unicast(IpAddr::from([192, 0, 2, 1])));
                        }
                    }
                }
                SessionDescription {
                    origin,
                    session_name,
                    information,
                    uri,
                    emails,
                    phones,
                    connection,
                    bandwidths,
                    timing,
                    time_zones,
                    encryption_key,
                    attributes,
                    media,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        exercise(&bytes)?;
    }

    #[test]
    fn sdp_line_soup_never_panics(bytes in sdpish()) {
        exercise(&bytes)?;
    }

    #[test]
    fn generated_descriptions_round_trip(sd in description()) {
        let bytes = sd.to_bytes();
        prop_assert_eq!(SessionDescription::parse(&bytes), Ok(sd.clone()));
        prop_assert!(sd.validate().is_ok());
        // LF-only is the same description.
        let lf = String::from_utf8_lossy(&bytes).replace("\r\n", "\n");
        prop_assert_eq!(SessionDescription::parse(lf.as_bytes()), Ok(sd));
    }

    #[test]
    fn offers_are_valid_and_answerable(
        codecs in proptest::collection::vec(
            prop_oneof![Just(Codec::Pcmu), Just(Codec::Pcma), Just(Codec::Opus)], 0..4),
        telephone_event in any::<bool>(),
        ptime in any::<u8>(),
        port in 1u16..,
        ids in any::<(u64, u64)>(),
    ) {
        let ours = LocalMedia {
            codecs,
            telephone_event,
            ptime,
            rtp_port: port,
            session_id: ids.0,
            session_version: ids.1,
            ..local()
        };
        let offer = create_offer(&ours);
        prop_assert!(offer.validate().is_ok());
        let (answer, theirs) = create_answer(&offer, &local())
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(answer.validate().is_ok());
        let mine = accept_answer(&offer, &answer)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(mine.codec, theirs.codec);
        prop_assert_eq!(mine.payload_type, theirs.payload_type);
        prop_assert_eq!(mine.telephone_event_pt, theirs.telephone_event_pt);
        prop_assert_eq!(mine.ptime, theirs.ptime);
        prop_assert_eq!(mine.remote_rtp.port(), local().rtp_port);
        prop_assert_eq!(theirs.remote_rtp.port(), port);
    }
}
