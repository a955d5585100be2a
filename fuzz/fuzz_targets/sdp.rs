//! An SDP body: `SessionDescription::parse`, and for anything that parses,
//! the written form re-parses to an equal description, and answering it as
//! an offer (or accepting it as an answer to our offer) returns instead of
//! panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vocelio_engine::sdp::{
    accept_answer, create_answer, create_offer, Codec, LocalMedia, SessionDescription,
};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = SessionDescription::parse(data) else {
        return;
    };
    let bytes = sdp.to_bytes();
    let again = SessionDescription::parse(&bytes).expect("written SDP must re-parse");
    assert_eq!(again, sdp, "write + parse changed the description");
    let local = LocalMedia {
        addr: "192.0.2.1".parse().expect("constant"),
        rtp_port: 10_000,
        codecs: vec![Codec::Opus, Codec::Pcmu, Codec::Pcma],
        telephone_event: true,
        ptime: 20,
        session_id: 1,
        session_version: 1,
        username: "fuzz".into(),
    };
    if let Ok((answer, _)) = create_answer(&sdp, &local) {
        let written = answer.to_bytes();
        SessionDescription::parse(&written).expect("our answer must parse");
    }
    let _ = accept_answer(&create_offer(&local), &sdp);
});
