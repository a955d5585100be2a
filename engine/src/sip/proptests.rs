//! Property tests: hostile bytes never panic the datagram parser or the
//! stream framer, chunking never changes what the framer returns, and every
//! message that parses (generated or fuzzed) survives write -> parse.

use proptest::prelude::*;

use super::*;

/// Bytes biased towards SIP syntax so the fuzzing reaches the header and
/// URI parsers, not just the start line.
fn sipish() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(&b"Via: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"[..]),
        Just(
            &b"v: SIP / 2.0 / TCP [::1]:5060 ; rport ; received=1.2.3.4,\r\n SIP/2.0/UDP x\r\n"[..]
        ),
        Just(&b"From: \"a\\\"b\" <sips:u:p@h;lr>;tag=x\r\n"[..]),
        Just(&b"t: sip:x@y;tag=1\r\n"[..]),
        Just(&b"Contact: *\r\n"[..]),
        Just(&b"m: <tel:+1-2;phone-context=%2B1>;q=0.5;expires=9, Bob <sip:b@c>\r\n"[..]),
        Just(&b"CSeq: 1 INVITE\r\n"[..]),
        Just(&b"i: a@b\r\n"[..]),
        Just(&b"Max-Forwards: 70\r\n"[..]),
        Just(&b"Content-Length: 3\r\n"[..]),
        Just(&b"l: 0\r\n"[..]),
        Just(&b"Authorization: Digest a=\"b,c\", d=e\r\n"[..]),
        Just(&b"c: multipart/mixed;boundary=x\r\n"[..]),
        Just(&b"X-Y: \xd0\xb0\xff\r\n"[..]),
        Just(&b"Route: <sip:p1;lr>, <sip:p2;lr>\r\n"[..]),
        Just(&b"\r\n"[..]),
    ];
    let fragment = prop_oneof![
        Just(&b"\r\n\r\n"[..]),
        Just(&b" \t"[..]),
        Just(&b"%"[..]),
        Just(&b"%4"[..]),
        Just(&b"\""[..]),
        Just(&b"\\"[..]),
        Just(&b"<"[..]),
        Just(&b">"[..]),
        Just(&b";"[..]),
        Just(&b","[..]),
        Just(&b":"[..]),
        Just(&b"="[..]),
        Just(&b"@"[..]),
        Just(&b"?"[..]),
        Just(&b"["[..]),
        Just(&b"99999999999999999999999"[..]),
        Just(&b"-1"[..]),
        Just(&b"\xd0\xb0"[..]),
        Just(&b"\xff"[..]),
    ];
    let piece = prop_oneof![
        8 => line.prop_map(<[u8]>::to_vec),
        2 => fragment.prop_map(<[u8]>::to_vec),
        1 => proptest::collection::vec(any::<u8>(), 0..8),
    ];
    let start = prop_oneof![
        Just(&b""[..]),
        Just(&b"INVITE sip:a@b SIP/2.0\r\n"[..]),
        Just(&b"OPTIONS sips:%61@[::1]:5061;lr?h=v SIP/2.0\r\n"[..]),
        Just(&b"SIP/2.0 180 Ringing\r\n"[..]),
    ];
    let pieces = proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat());
    (start, pieces.clone(), any::<bool>(), pieces).prop_map(|(start, head, end, tail)| {
        let mut out = start.to_vec();
        out.extend_from_slice(&head);
        if end {
            out.extend_from_slice(b"\r\n\r\n");
        }
        out.extend_from_slice(&tail);
        out
    })
}

/// Exercises every typed accessor; none may panic.
fn touch_everything(msg: &SipMessage) {
    let h = msg.headers();
    let _ = (
        h.vias(),
        h.top_via(),
        h.from(),
        h.to(),
        h.call_id(),
        h.cseq(),
    );
    let _ = (
        h.max_forwards(),
        h.content_type(),
        h.routes(),
        h.record_routes(),
    );
    let _ = (
        h.expires(),
        h.allow(),
        h.supported(),
        h.require(),
        h.accept(),
    );
    let _ = (h.www_authenticate(), h.authorization(), h.proxy_require());
    if let Ok(Some(Contacts::List(list))) = h.contacts() {
        for c in list {
            let _ = (c.q(), c.expires(), c.addr.tag(), c.addr.to_string());
        }
    }
    match msg {
        SipMessage::Request(r) => {
            let _ = check_request(r);
            let _ = check_require(r, &[]);
        }
        SipMessage::Response(r) => {
            let _ = check_response(r);
        }
    }
}

fn frame_all(
    bytes: &[u8],
    chunk: usize,
    limits: FramerLimits,
) -> Vec<Result<SipMessage, FramingError>> {
    let mut f = StreamFramer::with_limits(limits);
    let mut out = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        f.push(piece);
        while let Some(r) = f.poll() {
            let fatal = matches!(&r, Err(e) if e.is_fatal());
            out.push(r);
            if fatal {
                return out;
            }
        }
    }
    out
}

fn check_round_trip(msg: &SipMessage) -> Result<(), TestCaseError> {
    let again = parse_datagram(&msg.to_bytes());
    prop_assert_eq!(again.as_ref(), Ok(msg));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        if let Ok(m) = parse_datagram(&bytes) {
            touch_everything(&m);
        }
        let _ = frame_all(&bytes, 1, FramerLimits::default());
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn sipish_bytes_parse_consistently(bytes in sipish(), chunk in 1usize..64) {
        if let Ok(m) = parse_datagram(&bytes) {
            touch_everything(&m);
            check_round_trip(&m)?;
        }
        for limits in [FramerLimits::default(), FramerLimits { max_head: 48, max_body: 8 }] {
            let whole = frame_all(&bytes, bytes.len(), limits);
            let chunked = frame_all(&bytes, chunk, limits);
            prop_assert_eq!(&whole, &chunked);
            for m in whole.iter().flatten() {
                touch_everything(m);
                check_round_trip(m)?;
            }
        }
    }

}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn generated_requests_round_trip(req in request()) {
        let msg = SipMessage::Request(req);
        let bytes = msg.to_bytes();
        prop_assert_eq!(parse_datagram(&bytes), Ok(msg.clone()));
        // The same bytes over a stream, cut anywhere, give the same message.
        let mut f = StreamFramer::new();
        let cut = bytes.len() / 3;
        f.push(&bytes[..cut]);
        let first = f.poll();
        f.push(&bytes[cut..]);
        let got = match first { Some(r) => Some(r), None => f.poll() };
        prop_assert_eq!(got, Some(Ok(msg)));
    }

    #[test]
    fn generated_responses_round_trip(
        code in 100u16..=699,
        reason in proptest::collection::vec(any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'), 0..40),
        headers in extra_headers(),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let resp = Response {
            version: SipVersion::V2_0,
            status: StatusCode::new(code).unwrap(),
            reason,
            headers,
            body,
        };
        check_round_trip(&SipMessage::Response(resp))?;
    }
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Ack),
        Just(Method::Bye),
        Just(Method::Cancel),
        Just(Method::Options),
        Just(Method::Register),
        Just(Method::Prack),
        Just(Method::Message),
        "[A-Za-z!%*_+`'~.-]{1,12}".prop_map(|s| Method::parse(&s).unwrap()),
    ]
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}".prop_map(Host::Domain),
        any::<[u8; 4]>().prop_map(|b| Host::V4(b.into())),
        any::<[u16; 8]>().prop_map(|s| Host::V6(s.into())),
    ]
}

fn nonempty() -> impl Strategy<Value = String> {
    any::<String>().prop_filter("non-empty", |s| !s.is_empty())
}

fn sip_uri() -> impl Strategy<Value = SipUri> {
    (
        any::<bool>(),
        proptest::option::of((nonempty(), proptest::option::of(any::<String>()))),
        host(),
        proptest::option::of(any::<u16>()),
        proptest::collection::vec((nonempty(), proptest::option::of(nonempty())), 0..3),
        proptest::collection::vec((nonempty(), any::<String>()), 0..2),
    )
        .prop_map(|(secure, userinfo, host, port, params, headers)| {
            let (user, password) = match userinfo {
                Some((u, p)) => (Some(u), p),
                None => (None, None),
            };
            SipUri {
                secure,
                user,
                password,
                host,
                port,
                params: params
                    .into_iter()
                    .map(|(name, value)| UriParam { name, value })
                    .collect(),
                headers: headers
                    .into_iter()
                    .map(|(name, value)| UriHeader { name, value })
                    .collect(),
            }
        })
}

fn uri() -> impl Strategy<Value = Uri> {
    prop_oneof![
        4 => sip_uri().prop_map(Uri::Sip),
        1 => ("\\+?[0-9][0-9.()-]{0,12}", proptest::collection::vec((nonempty(), proptest::option::of(nonempty())), 0..2))
            .prop_map(|(number, params)| Uri::Tel(TelUri {
                number,
                params: params.into_iter().map(|(name, value)| UriParam { name, value }).collect(),
            })),
        1 => ("[a-z][a-z0-9+.-]{0,6}", "[a-zA-Z0-9/?:@&=+$,;_.!~*'()-]{1,20}")
            .prop_filter("typed schemes", |(s, _)| !matches!(s.as_str(), "sip" | "sips" | "tel"))
            .prop_map(|(scheme, rest)| Uri::Other { scheme, rest }),
    ]
}

fn extra_headers() -> impl Strategy<Value = Headers> {
    proptest::collection::vec(
        (
            "X-[A-Za-z0-9!%*_+`'~.-]{1,10}",
            proptest::collection::vec(
                any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
                0..30,
            ),
        ),
        0..5,
    )
    .prop_map(|list| {
        let mut h = Headers::new();
        for (name, value) in list {
            let name = HeaderName::parse(&name).unwrap();
            h.push(Header::new(name, value).unwrap());
        }
        h
    })
}

fn request() -> impl Strategy<Value = Request> {
    (
        method(),
        uri(),
        sip_uri(),
        "[A-Za-z0-9.!%*_+`'~-]{1,12}",
        "[A-Za-z0-9.!%*_+`'~()<>:/?{}-]{1,16}(@[a-z0-9.]{1,10})?",
        any::<u32>(),
        proptest::option::of(any::<u8>()),
        extra_headers(),
        proptest::collection::vec(any::<u8>(), 0..128),
    )
        .prop_map(
            |(method, uri, from, tag, call_id, seq, max_forwards, extra, body)| {
                let mut h = Headers::new();
                let mut add = |name: HeaderName, value: String| {
                    h.push(Header::new(name, value).unwrap());
                };
                add(
                    HeaderName::Via,
                    format!("SIP/2.0/UDP host.example.com;branch=z9hG4bK{tag}"),
                );
                add(HeaderName::To, format!("<{uri}>"));
                add(HeaderName::From, format!("\"A \\\" b\" <{from}>;tag={tag}"));
                add(HeaderName::CallId, call_id);
                add(HeaderName::CSeq, format!("{seq} {method}"));
                if let Some(mf) = max_forwards {
                    add(HeaderName::MaxForwards, mf.to_string());
                }
                for header in extra.iter() {
                    h.push(header.clone());
                }
                Request {
                    method,
                    uri,
                    version: SipVersion::V2_0,
                    headers: h,
                    body,
                }
            },
        )
}

#[test]
fn generated_requests_pass_typed_access() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for _ in 0..200 {
        let req = request().new_tree(&mut runner).unwrap().current();
        let h = &req.headers;
        assert_eq!(h.vias().unwrap().len(), 1);
        assert!(h.from().unwrap().tag().is_some());
        assert_eq!(h.to().unwrap().uri, req.uri);
        assert_eq!(h.cseq().unwrap().method, req.method);
        h.call_id().unwrap();
        h.max_forwards().unwrap();
    }
}
