//! Digest authentication against a fixed server (realm, secret, clock).
//!
//! - The input as a header value: `AuthHeader::parse`, then `verify` and the
//!   client side (`DigestChallenge::parse` + `authorize`). `$NONCE` in the
//!   input is replaced by a nonce the server issued, so the fuzzer gets past
//!   the MAC check to the qop/uri/response checks.
//! - The input as a SIP request: `verify_request` for both header kinds.
//! - The input as credentials (`username \x01 password \x01 cnonce`): a
//!   client answer to the server's own challenge must verify, whatever
//!   quoting the values need.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vocelio_engine::sip::auth::{
    Algorithm, ChallengeKind, Credentials, DigestChallenge, DigestServer, NonceCount,
};
use vocelio_engine::sip::{parse_datagram, AuthHeader, Method, SipMessage, Uri};

const NOW: u64 = 1_700_000_000;
const USER: &str = "alice";
const PASSWORD: &str = "correct horse";

fn server() -> DigestServer {
    DigestServer::new("trunk.vocelio.test", [0x42; 32]).allow_legacy_md5(true)
}

fn lookup(name: &str) -> Option<Credentials> {
    (name == USER).then(|| Credentials::new(USER, PASSWORD))
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    let uri = Uri::parse("sip:+15550100@trunk.vocelio.test;user=phone").expect("fixed URI");

    if let Ok(SipMessage::Request(req)) = parse_datagram(data) {
        let _ = server.verify_request(NOW, &req, ChallengeKind::Www, lookup);
        let _ = server.verify_request(NOW, &req, ChallengeKind::Proxy, lookup);
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = text.replace("$NONCE", &server.nonce(NOW - 10));
    if let Ok(h) = AuthHeader::parse(&text) {
        for now in [NOW, NOW + 3600] {
            let _ = server.verify(now, &Method::Invite, &uri, &h, lookup);
        }
        if let Ok(ch) = DigestChallenge::parse(&h) {
            let creds = Credentials::new(USER, PASSWORD);
            if let Ok(v) = ch.authorize(
                &creds,
                &Method::Invite,
                &uri.to_string(),
                NonceCount(1),
                "c0ffee",
            ) {
                let back = AuthHeader::parse(&v)
                    .unwrap_or_else(|e| panic!("authorize wrote an unparsable value {v:?}: {e}"));
                assert_eq!(back.param("realm"), Some(ch.realm.as_str()));
                assert_eq!(back.param("nonce"), Some(ch.nonce.as_str()));
            }
        }
        let _ = DigestChallenge::select([&h, &h]);
    }

    // Round trip with arbitrary credentials.
    let mut parts = text.splitn(3, '\u{1}');
    let (Some(user), Some(password)) = (parts.next(), parts.next()) else {
        return;
    };
    let cnonce = parts.next().unwrap_or("0a4f113b");
    for alg in [Algorithm::Sha256, Algorithm::Md5] {
        let challenge =
            AuthHeader::parse(&server.challenge(NOW, alg)).expect("own challenge parses");
        let ch = DigestChallenge::select([&challenge]).expect("own challenge is usable");
        let creds = Credentials::new(user, password);
        let Ok(value) = ch.authorize(
            &creds,
            &Method::Register,
            &uri.to_string(),
            NonceCount(7),
            cnonce,
        ) else {
            continue;
        };
        let h = AuthHeader::parse(&value)
            .unwrap_or_else(|e| panic!("authorize wrote an unparsable value {value:?}: {e}"));
        let verified = server.verify(NOW + 1, &Method::Register, &uri, &h, |name| {
            (name == user).then(|| Credentials::new(user, password))
        });
        match verified {
            Ok(u) => assert_eq!(u.username, user),
            // An empty username is refused as missing; anything else must verify.
            Err(e) => assert!(
                user.is_empty(),
                "round trip failed for {user:?}: {e} ({value})"
            ),
        }
    }
});
