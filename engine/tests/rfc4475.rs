//! RFC 4475 torture tests: every archived message, over UDP (one datagram)
//! and TCP (the stream framer fed in chunks), handled as
//! `shared/testdata/rfc4475/INDEX.md` says, with no panic anywhere.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use vocelio_engine::sip::{
    check_request, check_require, check_response, parse_datagram, Contacts, DisplayName,
    FramingError, HeaderError, HeaderName, Host, Method, ParseError, ParseErrorKind, RejectCause,
    Request, Response, ResponseDefect, SipMessage, StreamFramer, Transport, Uri,
};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/rfc4475");

/// What an element does with a message at the message layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Parsed and passed `check_request` / `check_response`.
    Accepted,
    /// A UAS answers with this status.
    Reject(u16),
    /// A response (or unidentifiable bytes) to discard silently.
    Dropped,
}

/// Over TCP, additionally: still waiting for bytes, or close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tcp {
    Msg(Outcome),
    Incomplete,
    Fatal,
}

use Outcome::{Accepted, Dropped, Reject};

/// (file, UDP outcome, TCP outcome) for all 49 messages.
const EXPECTED: &[(&str, Outcome, Tcp)] = &[
    // §3.1.1 valid messages
    ("wsinv", Accepted, Tcp::Msg(Accepted)),
    ("intmeth", Reject(501), Tcp::Msg(Reject(501))),
    ("esc01", Accepted, Tcp::Msg(Accepted)),
    ("escnull", Accepted, Tcp::Msg(Accepted)),
    ("esc02", Reject(501), Tcp::Msg(Reject(501))),
    ("lwsdisp", Accepted, Tcp::Msg(Accepted)),
    ("longreq", Accepted, Tcp::Msg(Accepted)),
    ("dblreq", Accepted, Tcp::Msg(Accepted)),
    ("semiuri", Accepted, Tcp::Msg(Accepted)),
    ("transports", Accepted, Tcp::Msg(Accepted)),
    ("mpart01", Accepted, Tcp::Msg(Accepted)),
    ("unreason", Accepted, Tcp::Msg(Accepted)),
    ("noreason", Accepted, Tcp::Msg(Accepted)),
    // §3.1.2 invalid messages
    ("badinv01", Reject(400), Tcp::Msg(Reject(400))),
    ("clerr", Reject(400), Tcp::Incomplete),
    ("ncl", Reject(400), Tcp::Fatal),
    ("scalar02", Reject(400), Tcp::Msg(Reject(400))),
    ("scalarlg", Dropped, Tcp::Msg(Dropped)),
    ("quotbal", Reject(400), Tcp::Msg(Reject(400))),
    ("ltgtruri", Reject(400), Tcp::Msg(Reject(400))),
    ("lwsruri", Reject(400), Tcp::Msg(Reject(400))),
    // "may reject": tolerated, never re-emitted (see `liberal_but_canonical`)
    ("lwsstart", Accepted, Tcp::Msg(Accepted)),
    ("trws", Accepted, Tcp::Msg(Accepted)),
    ("escruri", Reject(400), Tcp::Msg(Reject(400))),
    // Date is not used by this element, so it is ignored.
    ("baddate", Accepted, Tcp::Msg(Accepted)),
    ("regbadct", Reject(400), Tcp::Msg(Reject(400))),
    ("badaspec", Reject(400), Tcp::Msg(Reject(400))),
    // No empty line after the headers: a datagram is malformed, a stream waits.
    ("baddn", Reject(400), Tcp::Incomplete),
    ("badvers", Reject(505), Tcp::Msg(Reject(505))),
    ("mismatch01", Reject(400), Tcp::Msg(Reject(400))),
    ("mismatch02", Reject(501), Tcp::Msg(Reject(501))),
    ("bigcode", Dropped, Tcp::Msg(Dropped)),
    // §3.2: tolerated, RFC 2543 matching applies (Branch::is_rfc3261 is false)
    ("badbranch", Accepted, Tcp::Msg(Accepted)),
    // §3.3 application layer: parse OK; message-layer verdicts below, the
    // application-level ones are asserted in `application_layer`.
    ("insuf", Reject(400), Tcp::Msg(Reject(400))),
    ("unkscm", Reject(416), Tcp::Msg(Reject(416))),
    ("novelsc", Reject(416), Tcp::Msg(Reject(416))),
    ("unksm2", Accepted, Tcp::Msg(Accepted)),
    ("bext01", Accepted, Tcp::Msg(Accepted)),
    ("invut", Accepted, Tcp::Msg(Accepted)),
    ("regaut01", Accepted, Tcp::Msg(Accepted)),
    ("multi01", Reject(400), Tcp::Msg(Reject(400))),
    ("mcl01", Reject(400), Tcp::Fatal),
    ("bcast", Accepted, Tcp::Msg(Accepted)),
    ("zeromf", Accepted, Tcp::Msg(Accepted)),
    ("cparam01", Accepted, Tcp::Msg(Accepted)),
    ("cparam02", Accepted, Tcp::Msg(Accepted)),
    ("regescrt", Accepted, Tcp::Msg(Accepted)),
    ("sdp01", Accepted, Tcp::Msg(Accepted)),
    // §3.4: no Content-Length. UDP: body to the end of the datagram. TCP:
    // Content-Length absent means an empty body (the SDP that follows never
    // completes a header section, so the stream then waits).
    ("inv2543", Accepted, Tcp::Msg(Accepted)),
];

fn load(name: &str) -> Vec<u8> {
    let path = Path::new(DIR).join(format!("{name}.dat"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn classify(msg: &SipMessage) -> Outcome {
    match msg {
        SipMessage::Request(r) => match check_request(r) {
            Ok(()) => Accepted,
            Err(rej) => Reject(rej.status.as_u16()),
        },
        SipMessage::Response(r) => match check_response(r) {
            Ok(()) => Accepted,
            Err(_) => Dropped,
        },
    }
}

fn classify_err(e: &ParseError) -> Outcome {
    e.rejection()
        .map_or(Dropped, |rej| Reject(rej.status.as_u16()))
}

fn udp(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    catch_unwind(|| parse_datagram(bytes)).expect("datagram parser panicked")
}

fn udp_outcome(bytes: &[u8]) -> Outcome {
    match udp(bytes) {
        Ok(m) => classify(&m),
        Err(e) => classify_err(&e),
    }
}

/// Feeds `bytes` in `chunk`-sized pieces, polling after each, and returns
/// every result until the first fatal error.
fn tcp(bytes: &[u8], chunk: usize) -> Vec<Result<SipMessage, FramingError>> {
    catch_unwind(AssertUnwindSafe(|| {
        let mut framer = StreamFramer::new();
        let mut out = Vec::new();
        for piece in bytes.chunks(chunk) {
            framer.push(piece);
            while let Some(r) = framer.poll() {
                let fatal = matches!(&r, Err(e) if e.is_fatal());
                out.push(r);
                if fatal {
                    return out;
                }
            }
        }
        out
    }))
    .expect("stream framer panicked")
}

fn tcp_outcome(results: &[Result<SipMessage, FramingError>]) -> Tcp {
    match results.first() {
        None => Tcp::Incomplete,
        Some(Ok(m)) => Tcp::Msg(classify(m)),
        Some(Err(FramingError::Fatal(_))) => Tcp::Fatal,
        Some(Err(e)) => Tcp::Msg(classify_err(e.parse_error())),
    }
}

#[test]
fn corpus_is_complete_and_the_path_resolves() {
    let dir = Path::new(DIR);
    assert!(dir.is_dir(), "{DIR} does not resolve");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".dat").map(str::to_owned)
        })
        .collect();
    files.sort();
    let mut expected: Vec<String> = EXPECTED.iter().map(|(n, ..)| (*n).to_owned()).collect();
    expected.sort();
    assert_eq!(files.len(), 49);
    assert_eq!(files, expected);
}

#[test]
fn every_file_over_udp_and_tcp() {
    let mut table = BTreeMap::new();
    for &(name, want_udp, want_tcp) in EXPECTED {
        let bytes = load(name);
        let got_udp = udp_outcome(&bytes);
        assert_eq!(got_udp, want_udp, "{name} over UDP");

        let whole = tcp(&bytes, bytes.len());
        let got_tcp = tcp_outcome(&whole);
        assert_eq!(got_tcp, want_tcp, "{name} over TCP");
        for chunk in [1, 7, 64] {
            let results = tcp(&bytes, chunk);
            assert_eq!(
                results.len(),
                whole.len(),
                "{name}: chunk {chunk} changes the message count"
            );
            for (a, b) in results.iter().zip(&whole) {
                assert_eq!(a, b, "{name}: chunk {chunk} changes a result");
            }
        }
        // Where both transports produce the message, it is the same one
        // (inv2543 differs by design: no Content-Length on a stream = no body).
        if let (Ok(u), Some(Ok(t))) = (udp(&bytes), whole.first()) {
            if name == "inv2543" {
                assert_eq!(u.headers(), t.headers());
                assert!(t.body().is_empty());
            } else {
                assert_eq!(&u, t, "{name}: UDP and TCP disagree");
            }
        }
        table.insert(name, (got_udp, got_tcp));
    }
    for (name, (u, t)) in &table {
        println!("{name:<12} UDP {u:?}  TCP {t:?}");
    }
}

#[test]
fn round_trip_of_every_parsed_message() {
    let mut parsed = 0;
    for &(name, ..) in EXPECTED {
        let Ok(first) = udp(&load(name)) else {
            continue;
        };
        parsed += 1;
        let bytes = first.to_bytes();
        let again = udp(&bytes);
        assert_eq!(again.as_ref(), Ok(&first), "{name} does not round-trip");
        assert_eq!(classify(&again.unwrap()), classify(&first), "{name}");
    }
    // 30 "parse OK" messages plus the parseable invalid ones.
    assert!(parsed >= 30, "only {parsed} parsed");
}

fn request(name: &str) -> Request {
    match udp(&load(name)) {
        Ok(SipMessage::Request(r)) => r,
        other => panic!("{name}: expected a request, got {other:?}"),
    }
}

fn response(name: &str) -> Response {
    match udp(&load(name)) {
        Ok(SipMessage::Response(r)) => r,
        other => panic!("{name}: expected a response, got {other:?}"),
    }
}

fn sip_user(uri: &Uri) -> &str {
    uri.as_sip().unwrap().user.as_deref().unwrap()
}

fn sip_host(uri: &Uri) -> &Host {
    &uri.as_sip().unwrap().host
}

fn domain(s: &str) -> Host {
    Host::Domain(s.into())
}

fn contacts(r: &Request) -> Vec<vocelio_engine::sip::Contact> {
    match r.headers.contacts().unwrap().unwrap() {
        Contacts::List(l) => l,
        Contacts::Star => panic!("star"),
    }
}

fn other_header<'a>(r: &'a Request, name: &str) -> &'a [u8] {
    r.headers
        .get(&HeaderName::Other(name.into()))
        .unwrap_or_else(|| panic!("no {name}"))
        .value()
}

#[test]
fn wsinv() {
    let r = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(uri.user.as_deref(), Some("vivekg"));
    assert_eq!(uri.host, domain("chair-dnrc.example.com"));
    assert!(uri.has_param("unknownparam"));
    let h = &r.headers;
    assert_eq!(h.max_forwards().unwrap().unwrap().0, 68);
    let cseq = h.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (9, Method::Invite));
    assert_eq!(h.to().unwrap().tag().unwrap().as_str(), "1918181833n");
    let from = h.from().unwrap();
    assert_eq!(from.tag().unwrap().as_str(), "98asjd8");
    let dn = from.display_name.unwrap();
    assert_eq!(dn.raw(), r#"J Rosenberg \\\""#);
    assert_eq!(dn.text(), r#"J Rosenberg \""#);
    assert_eq!(sip_user(&from.uri), "jdrosen");

    let vias = h.vias().unwrap();
    let got: Vec<(Transport, Host, String)> = vias
        .iter()
        .map(|v| {
            (
                v.transport.clone(),
                v.host.clone(),
                v.branch().unwrap().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                Transport::Udp,
                Host::V4("192.0.2.2".parse().unwrap()),
                "390skdjuw".into()
            ),
            (
                Transport::Tcp,
                domain("spindle.example.com"),
                "z9hG4bK9ikj8".into()
            ),
            (
                Transport::Udp,
                Host::V4("192.168.255.111".parse().unwrap()),
                "z9hG4bK30239".into()
            ),
        ]
    );

    let c = contacts(&r);
    assert_eq!(c.len(), 1);
    let c = &c[0];
    assert_eq!(c.addr.uri.to_string(), "sip:jdrosen@example.com");
    assert_eq!(
        c.addr.display_name.as_ref().unwrap().text(),
        r#"Quoted string """#
    );
    assert_eq!(
        c.addr.param("newparam").unwrap().value.as_deref(),
        Some("newvalue")
    );
    assert!(c.addr.param("secondparam").unwrap().value.is_none());
    assert_eq!(c.q().unwrap().unwrap().thousandths(), 330);

    assert_eq!(r.body.len(), 150);
    assert_eq!(h.call_id().unwrap().as_str(), "wsinv.ndaksdj@192.0.2.1");
    assert_eq!(
        other_header(&r, "UnknownHeaderWithUnusualValue"),
        b";;,,;;,;"
    );
    assert_eq!(
        other_header(&r, "NewFangledHeader"),
        b"newfangled value  continued newfangled value"
    );
    assert_eq!(h.get(&HeaderName::Subject).unwrap().value(), b"");
    assert!(h.content_type().unwrap().unwrap().is("application", "sdp"));
    let routes = h.routes().unwrap();
    assert_eq!(routes.len(), 1);
    assert!(routes[0].uri.as_sip().unwrap().has_param("lr"));
}

#[test]
fn intmeth() {
    let r = request("intmeth");
    let method = "!interesting-Method0123456789_*+`.%indeed'~";
    assert_eq!(r.method, Method::Extension(method.into()));
    let cseq = r.headers.cseq().unwrap();
    assert_eq!(cseq.seq, 139122385);
    assert_eq!(cseq.method, Method::Extension(method.into()));
    assert_eq!(r.headers.max_forwards().unwrap().unwrap().0, 255);
    assert_eq!(
        r.headers.top_via().unwrap().branch().unwrap().as_str(),
        "z9hG4bK-.!%66*_+`'~"
    );
    let from = r.headers.from().unwrap();
    assert_eq!(from.tag().unwrap().as_str(), "_token~1'+`*%!-.");
    assert_eq!(
        from.display_name.as_ref().unwrap(),
        &DisplayName::Tokens("token1~` token2'+_ token3*%!.-".into())
    );
    assert_eq!(
        from.param("fromParam''~+*_!.-%")
            .unwrap()
            .value_unquoted()
            .unwrap(),
        "\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}"
    );
    let to = r.headers.to().unwrap();
    assert_eq!(
        to.display_name.unwrap().text(),
        "BEL:\u{7} NUL:\u{0} DEL:\u{7f}"
    );
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(
        uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        uri.password.as_deref(),
        Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)")
    );
    assert_eq!(uri.host, domain("example.com"));
    assert_eq!(
        r.headers.call_id().unwrap().as_str(),
        "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    );
    assert_eq!(
        other_header(&r, "extensionHeader-!.%*+_`'~"),
        "\u{feff}\u{5927}\u{505c}\u{96fb}".as_bytes()
    );
    assert!(r.body.is_empty());
    let rej = check_request(&r).unwrap_err();
    assert_eq!(rej.status.as_u16(), 501);
    assert!(matches!(rej.cause, RejectCause::UnknownMethod { .. }));
}

#[test]
fn esc01() {
    let r = request("esc01");
    assert_eq!(sip_user(&r.uri), "sips:user@example.com");
    assert_eq!(sip_host(&r.uri), &domain("example.net"));
    assert_eq!(sip_user(&r.headers.to().unwrap().uri), "user");
    assert_eq!(sip_user(&r.headers.from().unwrap().uri), "I have spaces");
    let c = contacts(&r);
    let uri = c[0].addr.uri.as_sip().unwrap();
    assert_eq!(uri.user.as_deref(), Some("caller"));
    assert!(uri.has_param("lr"));
    assert_eq!(
        uri.param("name").unwrap().value.as_deref(),
        Some("value%41")
    );
    assert!(r
        .headers
        .content_type()
        .unwrap()
        .unwrap()
        .is("application", "sdp"));
    assert_eq!(
        r.headers.call_id().unwrap().as_str(),
        "esc01.239409asdfakjkn23onasd0-3234"
    );
    assert_eq!(r.body.len(), 150);
}

#[test]
fn escnull() {
    let r = request("escnull");
    assert_eq!(r.method, Method::Register);
    assert_eq!(sip_user(&r.headers.to().unwrap().uri), "null-\0-null");
    assert_eq!(sip_user(&r.headers.from().unwrap().uri), "null-\0-null");
    let users: Vec<String> = contacts(&r)
        .iter()
        .map(|c| sip_user(&c.addr.uri).to_owned())
        .collect();
    assert_eq!(users, ["\0", "\0\0"]);
    assert!(r.body.is_empty());
}

#[test]
fn esc02() {
    let r = request("esc02");
    assert_eq!(r.method, Method::Extension("RE%47IST%45R".into()));
    for na in [r.headers.to().unwrap(), r.headers.from().unwrap()] {
        assert_eq!(na.display_name.unwrap().text(), "%Z%45");
    }
    let c = contacts(&r);
    assert_eq!(c.len(), 2);
    assert_eq!(
        other_header(&r, "C%6Fntact"),
        b"<sip:alias2@host2.example.com>"
    );
    assert_eq!(
        r.headers.top_via().unwrap().branch().unwrap().as_str(),
        "z9hG4bK209%fzsnel234"
    );
    assert_eq!(check_request(&r).unwrap_err().status.as_u16(), 501);
}

#[test]
fn lwsdisp() {
    let from = request("lwsdisp").headers.from().unwrap();
    assert_eq!(from.display_name.as_ref().unwrap().text(), "caller");
    assert_eq!(from.uri.to_string(), "sip:caller@example.com");
    assert_eq!(from.tag().unwrap().as_str(), "323");
}

#[test]
fn longreq() {
    let bytes = load("longreq");
    assert_eq!(bytes.len(), 3515);
    let r = request("longreq");
    let vias = r.headers.vias().unwrap();
    assert_eq!(vias.len(), 34);
    assert_eq!(vias[0].host, domain("sip33.example.com"));
    let last = vias.last().unwrap();
    let branch = last.branch().unwrap();
    assert!(branch.as_str().starts_with("verylong"));
    assert!(branch.as_str().ends_with("branchvalue"));
    assert_eq!(last.received(), Some("192.0.2.5"));
    assert_eq!(r.body.len(), 150);
    let from = r.headers.from().unwrap();
    let tag = from.tag().unwrap();
    assert!(tag.as_str().starts_with("12982982982982"));
    assert!(tag.as_str().ends_with("982424"));
    assert!(from.param("unknownValuelessparamnameparamnameparamnameparamnameparamnameparamnameparamnameparamnameparamnameparamname").is_some());
    let to = r.headers.to().unwrap();
    assert!(to
        .display_name
        .unwrap()
        .text()
        .starts_with("I have a user name of extremeextreme"));
    assert_eq!(to.uri.as_sip().unwrap().port, Some(6000));
}

#[test]
fn dblreq() {
    let r = request("dblreq");
    assert_eq!(r.method, Method::Register);
    assert!(r.body.is_empty());
    assert_eq!(
        contacts(&r)[0].addr.uri.to_string(),
        "sip:j.user@host.example.com"
    );
    assert_eq!(
        r.headers.call_id().unwrap().as_str(),
        "dblreq.0ha0isndaksdj99sdfafnl3lk233412"
    );
    // Over a stream the trailing bytes are the next message, never part of
    // the REGISTER.
    let results = tcp(&load("dblreq"), 7);
    assert_eq!(results[0].as_ref().unwrap(), &SipMessage::Request(r));
    assert_eq!(
        results[1].as_ref().unwrap().as_request().unwrap().method,
        Method::Invite
    );
}

#[test]
fn semiuri() {
    let r = request("semiuri");
    let uri = r.uri.as_sip().unwrap();
    assert_eq!(uri.user.as_deref(), Some("user;par=u@example.net"));
    assert_eq!(uri.host, domain("example.com"));
    assert!(uri.params.is_empty());
    assert_eq!(r.headers.accept().unwrap().len(), 6);
}

#[test]
fn transports() {
    let r = request("transports");
    let t: Vec<Transport> = r
        .headers
        .vias()
        .unwrap()
        .into_iter()
        .map(|v| v.transport)
        .collect();
    assert_eq!(
        t,
        [
            Transport::Udp,
            Transport::Sctp,
            Transport::Tls,
            Transport::Other("UNKNOWN".into()),
            Transport::Tcp
        ]
    );
}

#[test]
fn mpart01() {
    let r = request("mpart01");
    assert_eq!(r.method, Method::Message);
    assert_eq!(r.body.len(), 553);
    assert!(r.body.contains(&0));
    let ct = r.headers.content_type().unwrap().unwrap();
    assert!(ct.is("multipart", "mixed"));
    let boundary = ct.param("boundary").unwrap().into_owned();
    assert_eq!(boundary, "7a9cbec02ceef655");
    // Split the body on the boundary delimiter (test-side multipart reading).
    let delim = format!("--{boundary}");
    let body = &r.body;
    let mut starts = Vec::new();
    let mut i = 0;
    while let Some(pos) = body[i..]
        .windows(delim.len())
        .position(|w| w == delim.as_bytes())
    {
        starts.push(i + pos);
        i += pos + delim.len();
    }
    assert_eq!(starts.len(), 3, "two parts and the close delimiter");
    let parts: Vec<&[u8]> = starts
        .windows(2)
        .map(|w| &body[w[0] + delim.len() + 2..w[1] - 2])
        .collect();
    assert!(parts[0].starts_with(b"Content-Type: text/plain\r\n"));
    assert!(parts[0].ends_with(b"\r\n\r\nHello"));
    assert!(parts[1].starts_with(b"Content-Type: application/octet-stream\r\n"));
    assert!(body[starts[2]..].starts_with(format!("{delim}--").as_bytes()));
}

#[test]
fn unreason() {
    let bytes = load("unreason");
    let r = response("unreason");
    assert_eq!(r.status.as_u16(), 200);
    let line_end = bytes.windows(2).position(|w| w == b"\r\n").unwrap();
    assert_eq!(r.reason, &bytes["SIP/2.0 200 ".len()..line_end]);
    let reason = std::str::from_utf8(&r.reason).unwrap();
    assert!(reason.starts_with("= 2**3 * 5**2 "));
    assert!(reason.contains('\u{43d}'));
    assert_eq!(r.body.len(), 154);
    let cseq = r.headers.cseq().unwrap();
    assert_eq!((cseq.seq, cseq.method), (35, Method::Invite));
}

#[test]
fn noreason() {
    let r = response("noreason");
    assert_eq!(r.status.as_u16(), 100);
    assert!(r.reason.is_empty());
    assert_eq!(check_response(&r), Ok(()));
}

fn parse_err(name: &str) -> ParseError {
    udp(&load(name)).expect_err(name)
}

fn rejection_header(name: &str) -> HeaderError {
    match check_request(&request(name)).unwrap_err().cause {
        RejectCause::Header(h) => h,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn invalid_messages_fail_for_the_right_reason() {
    let invalid = |name: &str, header: HeaderName| {
        let e = rejection_header(name);
        assert!(
            matches!(&e, HeaderError::Invalid { name: n, .. } if *n == header),
            "{name}: {e:?}"
        );
    };
    invalid("badinv01", HeaderName::Via);
    invalid("scalar02", HeaderName::CSeq);
    invalid("quotbal", HeaderName::To);
    invalid("regbadct", HeaderName::Contact);
    invalid("badaspec", HeaderName::To);
    let scalar02 = check_request(&request("scalar02")).unwrap_err();
    assert_eq!(scalar02.reason, "Bad Request (invalid CSeq)");
    // The other scalar02 defects: Max-Forwards 300, Expires 10^100,
    // expires=280297596632815 are errors too, none of them panics.
    let r = request("scalar02");
    assert!(r.headers.max_forwards().is_err());
    assert!(r.headers.expires().is_err());
    assert!(contacts(&r)[0].expires().is_err());

    assert!(matches!(
        parse_err("clerr").kind(),
        ParseErrorKind::BodyTruncated {
            declared: 9999,
            available: 154
        }
    ));
    assert!(matches!(
        parse_err("ncl").kind(),
        ParseErrorKind::BadContentLength { .. }
    ));
    assert!(matches!(
        parse_err("mcl01").kind(),
        ParseErrorKind::DuplicateContentLength { count: 2 }
    ));
    assert!(matches!(
        parse_err("ltgtruri").kind(),
        ParseErrorKind::BadRequestUri(_)
    ));
    assert!(matches!(
        parse_err("lwsruri").kind(),
        ParseErrorKind::RequestLineShape { parts: 4 }
    ));
    assert!(matches!(
        parse_err("baddn").kind(),
        ParseErrorKind::UnterminatedHead
    ));
    let big = parse_err("bigcode");
    assert!(matches!(big.kind(), ParseErrorKind::BadStatusCode { .. }));
    assert!(big.rejection().is_none());

    let r = request("escruri");
    assert_eq!(
        check_request(&r).unwrap_err().cause,
        RejectCause::RequestUriHeaders
    );
    assert!(r.headers.routes().unwrap().is_empty());

    let r = request("badvers");
    assert_eq!(r.version.major, 7);
    assert!(matches!(
        check_request(&r).unwrap_err().cause,
        RejectCause::Version { .. }
    ));
    assert!(matches!(
        check_request(&request("mismatch01")).unwrap_err().cause,
        RejectCause::CSeqMethodMismatch { .. }
    ));
    assert!(matches!(
        check_request(&request("mismatch02")).unwrap_err().cause,
        RejectCause::UnknownMethod { .. }
    ));
    let scalarlg = response("scalarlg");
    assert!(matches!(
        check_response(&scalarlg),
        Err(ResponseDefect::Header(HeaderError::Invalid {
            name: HeaderName::CSeq,
            ..
        }))
    ));

    let r = request("badbranch");
    assert!(!r.headers.top_via().unwrap().branch().unwrap().is_rfc3261());

    // baddate: Date is kept as an opaque header.
    let r = request("baddate");
    assert_eq!(
        r.headers.get(&HeaderName::Date).unwrap().value(),
        b"Fri, 01 Jan 2010 16:00:00 EST"
    );
}

#[test]
fn liberal_but_canonical() {
    // lwsstart and trws are tolerated, and the extra SP is never re-emitted.
    for (name, line) in [
        ("lwsstart", "INVITE sip:user@example.com SIP/2.0\r\n"),
        ("trws", "OPTIONS sip:remote-target@example.com SIP/2.0\r\n"),
    ] {
        let out = SipMessage::Request(request(name)).to_bytes();
        assert!(out.starts_with(line.as_bytes()), "{name}");
    }
}

#[test]
fn application_layer() {
    assert!(matches!(
        rejection_header("insuf"),
        HeaderError::Missing { .. }
    ));
    assert!(matches!(
        rejection_header("multi01"),
        HeaderError::Duplicate { count: 2, .. }
    ));
    for (name, scheme) in [
        ("unkscm", "nobodyKnowsThisScheme"),
        ("novelsc", "soap.beep"),
    ] {
        let r = request(name);
        assert_eq!(r.uri.scheme(), scheme);
        assert_eq!(
            check_request(&r).unwrap_err().cause,
            RejectCause::UriScheme {
                scheme: scheme.into()
            }
        );
    }
    // unksm2: a registrar refuses (AOR not sip/sips); the URIs are opaque.
    let r = request("unksm2");
    assert_eq!(r.headers.to().unwrap().uri.scheme(), "isbn");
    assert_eq!(r.headers.from().unwrap().uri.scheme(), "http");
    assert_eq!(contacts(&r)[0].addr.uri.scheme(), "name");
    // bext01: 420 with both unsupported tags.
    let r = request("bext01");
    let rej = check_require(&r, &["100rel"]).unwrap_err();
    assert_eq!(rej.status.as_u16(), 420);
    match rej.cause {
        RejectCause::BadExtension { unsupported } => {
            let tags: Vec<&str> = unsupported.iter().map(|t| t.as_str()).collect();
            assert_eq!(tags, ["nothingSupportsThis", "nothingSupportsThisEither"]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(r.headers.proxy_require().unwrap().len(), 2);
    // invut: the UAS sees an unknown content type (415 is its call).
    let ct = request("invut").headers.content_type().unwrap().unwrap();
    assert!(ct.is("application", "unknownformat"));
    // regaut01: unknown auth scheme parses.
    let auth = request("regaut01").headers.authorization().unwrap();
    assert_eq!(auth[0].scheme, "NoOneKnowsThisScheme");
    assert_eq!(auth[0].param("opaque-data"), Some("here"));
    // bcast: the second Via is the broadcast address.
    let vias = response("bcast").headers.vias().unwrap();
    assert_eq!(vias[1].host, Host::V4(std::net::Ipv4Addr::BROADCAST));
    // zeromf: Max-Forwards 0 is fine for an endpoint.
    assert_eq!(
        request("zeromf").headers.max_forwards().unwrap().unwrap().0,
        0
    );
    // cparam01: header param; cparam02: URI param.
    let c = &contacts(&request("cparam01"))[0];
    assert!(c.addr.param("unknownparam").is_some());
    assert!(c.addr.uri.as_sip().unwrap().params.is_empty());
    let c = &contacts(&request("cparam02"))[0];
    assert!(c.addr.params.is_empty());
    assert!(c.addr.uri.as_sip().unwrap().has_param("unknownparam"));
    // regescrt: the escaped Route stays inside the binding's URI.
    let c = &contacts(&request("regescrt"))[0];
    let h = &c.addr.uri.as_sip().unwrap().headers;
    assert_eq!(h[0].name, "Route");
    assert_eq!(h[0].value, "<sip:sip.example.com>");
    // sdp01: Accept without SDP (406 is the UAS's call).
    let accept = request("sdp01").headers.accept().unwrap();
    assert!(accept[0].is("text", "nobodyKnowsThis"));
    // inv2543: no branch, no tag, no Max-Forwards, body to the end.
    let r = request("inv2543");
    assert!(r.headers.top_via().unwrap().branch().is_none());
    assert!(r.headers.from().unwrap().tag().is_none());
    assert!(r.headers.max_forwards().unwrap().is_none());
    assert_eq!(r.body.len(), 105);
    assert_eq!(r.headers.record_routes().unwrap().len(), 1);
}

#[test]
fn extra_header_without_colon() {
    // The archive's unreferenced extra/test.dat case: a header line with no colon.
    let msg = b"INVITE sip:alan@jasomi.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFoobar roobar\r\nl: 0\r\n\r\n";
    let e = udp(msg).unwrap_err();
    assert_eq!(e.kind(), &ParseErrorKind::MissingColon { line: 3 });
    assert_eq!(classify_err(&e), Reject(400));
    let results = tcp(msg, 3);
    assert!(matches!(
        results.as_slice(),
        [Err(FramingError::Malformed(_))]
    ));
}

#[test]
fn truncations_and_concatenations_never_panic() {
    let mut all = Vec::new();
    for &(name, ..) in EXPECTED {
        let bytes = load(name);
        for cut in 0..bytes.len() {
            let _ = udp(&bytes[..cut]);
        }
        all.extend_from_slice(&bytes);
    }
    // The whole corpus as one stream: bounded, no panic, terminates.
    for chunk in [1, 13, 4096] {
        let _ = tcp(&all, chunk);
    }
}
