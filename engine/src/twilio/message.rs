//! The Media Streams WebSocket protocol: a sans-IO codec.
//!
//! Twilio sends JSON text frames (`connected`, `start`, `media`, `dtmf`,
//! `mark`, `stop`; see
//! <https://www.twilio.com/docs/voice/media-streams/websocket-messages>) and
//! takes `media`, `mark` and `clear` back. Numbers such as `sequenceNumber`,
//! `chunk` and `timestamp` arrive as JSON *strings*; this codec accepts them
//! as strings or numbers.
//!
//! [`decode`] borrows from the text frame: a `media` message's base64 payload
//! is not copied, and [`Media::decode_payload`] writes the mu-law bytes into
//! the caller's buffer. The `encode_*` functions append to a caller-owned
//! `String`.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::{DecodePaddingMode, Engine as _};
use base64::DecodeSliceError;
use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Twilio's id of one media stream (`MZ...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct StreamSid(String);

/// Twilio's id of a call (`CA...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CallSid(String);

macro_rules! sid {
    ($t:ident) => {
        impl $t {
            /// Wrap an id.
            pub fn new(s: impl Into<String>) -> Self {
                $t(s.into())
            }

            /// The id as sent by Twilio.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
sid!(StreamSid);
sid!(CallSid);

/// Which side of the call a `media` or `dtmf` message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Track {
    /// The caller's audio (`inbound` / `inbound_track`).
    Inbound,
    /// Audio played to the caller (`outbound` / `outbound_track`).
    Outbound,
}

impl Track {
    fn parse(s: &str) -> Option<Track> {
        match s {
            "inbound" | "inbound_track" => Some(Track::Inbound),
            "outbound" | "outbound_track" => Some(Track::Outbound),
            _ => None,
        }
    }
}

/// The audio format announced in `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat {
    /// MIME type, `audio/x-mulaw` for every Twilio stream today.
    pub encoding: String,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
}

impl MediaFormat {
    /// The only format we carry: `audio/x-mulaw`, 8000 Hz, mono.
    pub fn require_mulaw_8k_mono(&self) -> Result<(), MessageError> {
        if self.encoding.eq_ignore_ascii_case("audio/x-mulaw")
            && self.sample_rate == 8000
            && self.channels == 1
        {
            Ok(())
        } else {
            Err(MessageError::WrongMediaFormat {
                encoding: clip(&self.encoding),
                rate: self.sample_rate,
                channels: self.channels,
            })
        }
    }
}

/// The `start` message: the stream's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// Position in Twilio's message sequence.
    pub sequence_number: Option<u64>,
    /// The stream.
    pub stream_sid: StreamSid,
    /// The Twilio account.
    pub account_sid: String,
    /// The call.
    pub call_sid: CallSid,
    /// Tracks Twilio will send (`inbound`, `outbound`).
    pub tracks: Vec<String>,
    /// `<Parameter>`s from the TwiML, in name order.
    pub custom_parameters: BTreeMap<String, String>,
    /// The audio format.
    pub media_format: MediaFormat,
}

/// A `media` message: one chunk of base64 mu-law, borrowed from the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media<'a> {
    /// Position in Twilio's message sequence (shared by every event type).
    pub sequence_number: Option<u64>,
    /// Which side the audio is from.
    pub track: Track,
    /// Media chunk number: 1 for the first, +1 per chunk of this track.
    pub chunk: u64,
    /// Milliseconds from the start of the stream.
    pub timestamp_ms: u64,
    /// Base64 of the mu-law bytes.
    pub payload: Cow<'a, str>,
}

/// The largest `media` payload [`Media::decode_payload`] is expected to
/// handle in one go: 1 s of 8 kHz mu-law (Twilio sends 160 bytes).
pub const MAX_PAYLOAD: usize = 8000;

fn lenient_base64() -> GeneralPurpose {
    GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    )
}

impl Media<'_> {
    /// Decode the payload into `buf`, returning the mu-law bytes.
    pub fn decode_payload<'b>(&self, buf: &'b mut [u8]) -> Result<&'b [u8], MessageError> {
        match lenient_base64().decode_slice(self.payload.as_bytes(), buf) {
            Ok(n) => Ok(&buf[..n]),
            Err(DecodeSliceError::OutputSliceTooSmall) => Err(MessageError::PayloadTooLarge {
                max: buf.len(),
                encoded: self.payload.len(),
            }),
            Err(DecodeSliceError::DecodeError(_)) => Err(MessageError::BadBase64),
        }
    }
}

/// A `dtmf` message: the caller pressed a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dtmf {
    /// Position in Twilio's message sequence.
    pub sequence_number: Option<u64>,
    /// Which side pressed it.
    pub track: Track,
    /// `0-9`, `*`, `#`, `A-D`.
    pub digit: char,
}

/// A `mark` message: Twilio played everything we sent before our mark.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark<'a> {
    /// Position in Twilio's message sequence.
    pub sequence_number: Option<u64>,
    /// The name we gave the mark.
    pub name: Cow<'a, str>,
}

/// A `stop` message: the stream (usually the call) ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// Position in Twilio's message sequence.
    pub sequence_number: Option<u64>,
    /// The call, when given.
    pub call_sid: Option<CallSid>,
}

/// One decoded text frame from Twilio.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Inbound<'a> {
    /// The WebSocket is up (first message).
    Connected {
        /// `Call`.
        protocol: Option<String>,
        /// Protocol version, e.g. `1.0.0`.
        version: Option<String>,
    },
    /// The stream's metadata (second message).
    Start(Start),
    /// Caller audio.
    Media(Media<'a>),
    /// A key press.
    Dtmf(Dtmf),
    /// One of our marks was played.
    Mark(Mark<'a>),
    /// The stream ended.
    Stop(Stop),
}

/// Why a text frame could not be decoded (or a stream's format is unusable).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Not JSON, or JSON of the wrong shape. Content is not echoed (it may
    /// hold personal data); only where it broke.
    #[error("malformed JSON ({kind}) at line {line} column {column}")]
    MalformedJson {
        /// `syntax`, `data` (wrong type) or `eof` (truncated).
        kind: &'static str,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// An `event` this codec does not know.
    #[error("unknown event {event:?}")]
    UnknownEvent {
        /// The event name (at most 32 characters of it).
        event: String,
    },
    /// A `media` payload that is not base64.
    #[error("media payload is not valid base64")]
    BadBase64,
    /// A `media` payload larger than the caller's buffer.
    #[error("media payload of {encoded} base64 characters does not fit {max} bytes")]
    PayloadTooLarge {
        /// Room in the buffer.
        max: usize,
        /// Length of the base64 text.
        encoded: usize,
    },
    /// A field the event needs is absent.
    #[error("missing field {field}")]
    MissingField {
        /// Dotted path, e.g. `media.chunk`.
        field: &'static str,
    },
    /// A field is present but its value is unusable (a non-numeric
    /// `sequenceNumber`, an unknown track, a DTMF "digit" like `7x`).
    #[error("invalid value for {field}")]
    InvalidField {
        /// Dotted path, e.g. `dtmf.digit`.
        field: &'static str,
    },
    /// The stream's audio is not `audio/x-mulaw` at 8000 Hz mono.
    #[error("unsupported media format {encoding:?} {rate} Hz {channels} channel(s); only audio/x-mulaw 8000 Hz mono is supported")]
    WrongMediaFormat {
        /// Announced encoding (at most 32 characters of it).
        encoding: String,
        /// Announced rate.
        rate: u32,
        /// Announced channels.
        channels: u32,
    },
}

fn clip(s: &str) -> String {
    s.chars().take(32).collect()
}

impl From<serde_json::Error> for MessageError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        MessageError::MalformedJson {
            kind: match e.classify() {
                Category::Io | Category::Syntax => "syntax",
                Category::Data => "data",
                Category::Eof => "eof",
            },
            line: e.line(),
            column: e.column(),
        }
    }
}

// ---- wire shapes -----------------------------------------------------------

/// A JSON string that borrows from the frame when it has no escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        d.deserialize_str(V).map(Text)
    }
}

/// A number sent as a JSON string (as Twilio does) or as a number.
/// `None` inside when it is present but not a non-negative integer.
struct Num(Option<u64>);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Option<u64>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string of digits")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Some(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(u64::try_from(v).ok())
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(v.trim().parse().ok())
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(None)
            }
        }
        d.deserialize_any(V).map(Num)
    }
}

fn num(v: Option<Num>, field: &'static str) -> Result<u64, MessageError> {
    match v {
        None => Err(MessageError::MissingField { field }),
        Some(Num(None)) => Err(MessageError::InvalidField { field }),
        Some(Num(Some(n))) => Ok(n),
    }
}

fn opt_num(v: Option<Num>, field: &'static str) -> Result<Option<u64>, MessageError> {
    match v {
        None => Ok(None),
        Some(n) => num(Some(n), field).map(Some),
    }
}

fn text<'a>(v: Option<Text<'a>>, field: &'static str) -> Result<Cow<'a, str>, MessageError> {
    v.map(|t| t.0).ok_or(MessageError::MissingField { field })
}

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(borrow)]
    event: Option<Text<'a>>,
    #[serde(rename = "sequenceNumber")]
    sequence_number: Option<Num>,
    #[serde(rename = "streamSid", borrow)]
    stream_sid: Option<Text<'a>>,
    #[serde(borrow)]
    protocol: Option<Text<'a>>,
    #[serde(borrow)]
    version: Option<Text<'a>>,
    #[serde(borrow)]
    start: Option<RawStart<'a>>,
    #[serde(borrow)]
    media: Option<RawMedia<'a>>,
    #[serde(borrow)]
    dtmf: Option<RawDtmf<'a>>,
    #[serde(borrow)]
    mark: Option<RawMark<'a>>,
    #[serde(borrow)]
    stop: Option<RawStop<'a>>,
}

#[derive(Deserialize)]
struct RawStart<'a> {
    #[serde(rename = "streamSid", borrow)]
    stream_sid: Option<Text<'a>>,
    #[serde(rename = "accountSid", borrow)]
    account_sid: Option<Text<'a>>,
    #[serde(rename = "callSid", borrow)]
    call_sid: Option<Text<'a>>,
    #[serde(default)]
    tracks: Vec<String>,
    #[serde(rename = "customParameters", default)]
    custom_parameters: BTreeMap<String, String>,
    #[serde(rename = "mediaFormat", borrow)]
    media_format: Option<RawFormat<'a>>,
}

#[derive(Deserialize)]
struct RawFormat<'a> {
    #[serde(borrow)]
    encoding: Option<Text<'a>>,
    #[serde(rename = "sampleRate")]
    sample_rate: Option<Num>,
    channels: Option<Num>,
}

#[derive(Deserialize)]
struct RawMedia<'a> {
    #[serde(borrow)]
    track: Option<Text<'a>>,
    chunk: Option<Num>,
    timestamp: Option<Num>,
    #[serde(borrow)]
    payload: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawDtmf<'a> {
    #[serde(borrow)]
    track: Option<Text<'a>>,
    #[serde(borrow)]
    digit: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawMark<'a> {
    #[serde(borrow)]
    name: Option<Text<'a>>,
}

#[derive(Deserialize)]
struct RawStop<'a> {
    #[serde(rename = "callSid", borrow)]
    call_sid: Option<Text<'a>>,
}

fn track(v: Option<Text<'_>>, field: &'static str) -> Result<Track, MessageError> {
    match v {
        // Twilio always names the track; a bidirectional stream only has inbound.
        None => Ok(Track::Inbound),
        Some(t) => Track::parse(&t.0).ok_or(MessageError::InvalidField { field }),
    }
}

fn u32_of(n: u64, field: &'static str) -> Result<u32, MessageError> {
    u32::try_from(n).map_err(|_| MessageError::InvalidField { field })
}

/// Decode one text frame from Twilio. Never panics.
pub fn decode(frame: &str) -> Result<Inbound<'_>, MessageError> {
    let raw: RawMessage<'_> = serde_json::from_str(frame)?;
    let event = text(raw.event, "event")?;
    let seq = opt_num(raw.sequence_number, "sequenceNumber")?;
    match &*event {
        "connected" => Ok(Inbound::Connected {
            protocol: raw.protocol.map(|t| t.0.into_owned()),
            version: raw.version.map(|t| t.0.into_owned()),
        }),
        "start" => {
            let s = raw
                .start
                .ok_or(MessageError::MissingField { field: "start" })?;
            let stream_sid = match (s.stream_sid, raw.stream_sid) {
                (Some(t), _) | (None, Some(t)) => t.0.into_owned(),
                (None, None) => {
                    return Err(MessageError::MissingField {
                        field: "start.streamSid",
                    })
                }
            };
            let f = s.media_format.ok_or(MessageError::MissingField {
                field: "start.mediaFormat",
            })?;
            Ok(Inbound::Start(Start {
                sequence_number: seq,
                stream_sid: StreamSid(stream_sid),
                account_sid: s.account_sid.map(|t| t.0.into_owned()).unwrap_or_default(),
                call_sid: CallSid(text(s.call_sid, "start.callSid")?.into_owned()),
                tracks: s.tracks,
                custom_parameters: s.custom_parameters,
                media_format: MediaFormat {
                    encoding: text(f.encoding, "start.mediaFormat.encoding")?.into_owned(),
                    sample_rate: u32_of(
                        num(f.sample_rate, "start.mediaFormat.sampleRate")?,
                        "start.mediaFormat.sampleRate",
                    )?,
                    channels: u32_of(
                        num(f.channels, "start.mediaFormat.channels")?,
                        "start.mediaFormat.channels",
                    )?,
                },
            }))
        }
        "media" => {
            let m = raw
                .media
                .ok_or(MessageError::MissingField { field: "media" })?;
            Ok(Inbound::Media(Media {
                sequence_number: seq,
                track: track(m.track, "media.track")?,
                chunk: num(m.chunk, "media.chunk")?,
                timestamp_ms: num(m.timestamp, "media.timestamp")?,
                payload: text(m.payload, "media.payload")?,
            }))
        }
        "dtmf" => {
            let d = raw
                .dtmf
                .ok_or(MessageError::MissingField { field: "dtmf" })?;
            let digit = text(d.digit, "dtmf.digit")?;
            let mut chars = digit.chars();
            let digit = match (chars.next(), chars.next()) {
                (Some(c), None) if is_dtmf(c) => c.to_ascii_uppercase(),
                _ => {
                    return Err(MessageError::InvalidField {
                        field: "dtmf.digit",
                    })
                }
            };
            Ok(Inbound::Dtmf(Dtmf {
                sequence_number: seq,
                track: track(d.track, "dtmf.track")?,
                digit,
            }))
        }
        "mark" => {
            let m = raw
                .mark
                .ok_or(MessageError::MissingField { field: "mark" })?;
            Ok(Inbound::Mark(Mark {
                sequence_number: seq,
                name: text(m.name, "mark.name")?,
            }))
        }
        "stop" => Ok(Inbound::Stop(Stop {
            sequence_number: seq,
            call_sid: raw
                .stop
                .and_then(|s| s.call_sid)
                .map(|t| CallSid(t.0.into_owned())),
        })),
        other => Err(MessageError::UnknownEvent { event: clip(other) }),
    }
}

fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d')
}

// ---- outbound --------------------------------------------------------------

fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn head(out: &mut String, event: &str, stream_sid: &StreamSid) {
    out.push_str(r#"{"event":""#);
    out.push_str(event);
    out.push_str(r#"","streamSid":"#);
    push_json_str(out, stream_sid.as_str());
}

/// Append a `media` message carrying `mulaw` (base64-encoded) to `out`.
pub fn encode_media(stream_sid: &StreamSid, mulaw: &[u8], out: &mut String) {
    head(out, "media", stream_sid);
    out.push_str(r#","media":{"payload":""#);
    STANDARD.encode_string(mulaw, out);
    out.push_str(r#""}}"#);
}

/// Append a `mark` message named `name` to `out`.
pub fn encode_mark(stream_sid: &StreamSid, name: &str, out: &mut String) {
    head(out, "mark", stream_sid);
    out.push_str(r#","mark":{"name":"#);
    push_json_str(out, name);
    out.push_str("}}");
}

/// Append a `clear` message (drop audio Twilio has buffered) to `out`.
pub fn encode_clear(stream_sid: &StreamSid, out: &mut String) {
    head(out, "clear", stream_sid);
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: &str = r#"{"event":"start","sequenceNumber":"1","start":{"accountSid":"AC123","streamSid":"MZ123","callSid":"CA123","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"agent":"sales"}},"streamSid":"MZ123"}"#;

    #[test]
    fn decodes_connected_and_start() {
        assert_eq!(
            decode(r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#).unwrap(),
            Inbound::Connected {
                protocol: Some("Call".into()),
                version: Some("1.0.0".into())
            }
        );
        let Inbound::Start(s) = decode(START).unwrap() else {
            panic!("not a start")
        };
        assert_eq!(s.sequence_number, Some(1));
        assert_eq!(s.stream_sid.as_str(), "MZ123");
        assert_eq!(s.call_sid.as_str(), "CA123");
        assert_eq!(s.account_sid, "AC123");
        assert_eq!(s.tracks, vec!["inbound".to_string()]);
        assert_eq!(
            s.custom_parameters.get("agent").map(String::as_str),
            Some("sales")
        );
        assert_eq!(s.media_format.require_mulaw_8k_mono(), Ok(()));
    }

    #[test]
    fn strings_as_numbers_and_borrowed_payload() {
        let t = r#"{"event":"media","sequenceNumber":"3","media":{"track":"inbound","chunk":"2","timestamp":"20","payload":"/wB/gA=="},"streamSid":"MZ1"}"#;
        let Inbound::Media(m) = decode(t).unwrap() else {
            panic!("not media")
        };
        assert_eq!(
            (m.sequence_number, m.chunk, m.timestamp_ms, m.track),
            (Some(3), 2, 20, Track::Inbound)
        );
        assert!(matches!(m.payload, Cow::Borrowed(_)));
        let mut buf = [0u8; 16];
        assert_eq!(
            m.decode_payload(&mut buf).unwrap(),
            &[0xFF, 0x00, 0x7F, 0x80]
        );
        // Numbers as numbers work too; bad numbers are named.
        let t = r#"{"event":"media","sequenceNumber":3,"media":{"chunk":2,"timestamp":20,"payload":""}}"#;
        assert!(matches!(decode(t), Ok(Inbound::Media(_))));
        let t = r#"{"event":"media","sequenceNumber":"x","media":{"chunk":"2","timestamp":"0","payload":""}}"#;
        assert_eq!(
            decode(t),
            Err(MessageError::InvalidField {
                field: "sequenceNumber"
            })
        );
        let t = r#"{"event":"media","media":{"chunk":"-1","timestamp":"0","payload":""}}"#;
        assert_eq!(
            decode(t),
            Err(MessageError::InvalidField {
                field: "media.chunk"
            })
        );
        let t = r#"{"event":"media","media":{"timestamp":"0","payload":""}}"#;
        assert_eq!(
            decode(t),
            Err(MessageError::MissingField {
                field: "media.chunk"
            })
        );
    }

    #[test]
    fn escaped_payload_still_decodes() {
        let t = r#"{"event":"media","media":{"chunk":"1","timestamp":"0","payload":"\/wB\/gA=="}}"#;
        let Inbound::Media(m) = decode(t).unwrap() else {
            panic!()
        };
        assert!(matches!(m.payload, Cow::Owned(_)));
        let mut buf = [0u8; 4];
        assert_eq!(
            m.decode_payload(&mut buf).unwrap(),
            &[0xFF, 0x00, 0x7F, 0x80]
        );
        let mut small = [0u8; 2];
        assert!(matches!(
            m.decode_payload(&mut small),
            Err(MessageError::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn dtmf_mark_stop() {
        let t = r##"{"event":"dtmf","streamSid":"MZ1","sequenceNumber":"5","dtmf":{"track":"inbound_track","digit":"#"}}"##;
        assert_eq!(
            decode(t).unwrap(),
            Inbound::Dtmf(Dtmf {
                sequence_number: Some(5),
                track: Track::Inbound,
                digit: '#'
            })
        );
        let t = r#"{"event":"dtmf","dtmf":{"digit":"12"}}"#;
        assert_eq!(
            decode(t),
            Err(MessageError::InvalidField {
                field: "dtmf.digit"
            })
        );
        let t = r#"{"event":"mark","sequenceNumber":"4","streamSid":"MZ1","mark":{"name":"7"}}"#;
        assert_eq!(
            decode(t).unwrap(),
            Inbound::Mark(Mark {
                sequence_number: Some(4),
                name: "7".into()
            })
        );
        let t = r#"{"event":"stop","sequenceNumber":"9","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#;
        assert_eq!(
            decode(t).unwrap(),
            Inbound::Stop(Stop {
                sequence_number: Some(9),
                call_sid: Some(CallSid::new("CA1"))
            })
        );
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            decode("{not json"),
            Err(MessageError::MalformedJson { .. })
        ));
        assert!(matches!(
            decode(r#"{"event":"media","media":{"chunk":"1","timestamp":"0","payload":"abc"}"#),
            Err(MessageError::MalformedJson { kind: "eof", .. })
        ));
        assert_eq!(
            decode(r#"{"event":"hello"}"#),
            Err(MessageError::UnknownEvent {
                event: "hello".into()
            })
        );
        assert_eq!(
            decode(r#"{"sequenceNumber":"1"}"#),
            Err(MessageError::MissingField { field: "event" })
        );
        assert_eq!(
            decode(r#"{"event":"start"}"#),
            Err(MessageError::MissingField { field: "start" })
        );
        let t = r#"{"event":"media","media":{"chunk":"1","timestamp":"0","payload":"!!!!"}}"#;
        let Inbound::Media(m) = decode(t).unwrap() else {
            panic!()
        };
        assert_eq!(
            m.decode_payload(&mut [0u8; 8]),
            Err(MessageError::BadBase64)
        );
        let bad = START
            .replace("audio/x-mulaw", "audio/l16")
            .replace("8000", "16000");
        let Inbound::Start(s) = decode(&bad).unwrap() else {
            panic!()
        };
        assert_eq!(
            s.media_format.require_mulaw_8k_mono(),
            Err(MessageError::WrongMediaFormat {
                encoding: "audio/l16".into(),
                rate: 16000,
                channels: 1
            })
        );
    }

    #[test]
    fn encodes_outbound() {
        let sid = StreamSid::new("MZ\"1");
        let mut out = String::new();
        encode_media(&sid, &[0xFF, 0x00, 0x7F, 0x80], &mut out);
        assert_eq!(
            out,
            r#"{"event":"media","streamSid":"MZ\"1","media":{"payload":"/wB/gA=="}}"#
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["streamSid"], "MZ\"1");
        out.clear();
        encode_mark(&sid, "12", &mut out);
        assert_eq!(
            out,
            r#"{"event":"mark","streamSid":"MZ\"1","mark":{"name":"12"}}"#
        );
        out.clear();
        encode_clear(&StreamSid::new("MZ1"), &mut out);
        assert_eq!(out, r#"{"event":"clear","streamSid":"MZ1"}"#);
    }
}
