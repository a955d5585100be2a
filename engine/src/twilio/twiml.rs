//! TwiML answers for the voice webhook.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Content type of a TwiML response.
pub const CONTENT_TYPE: &str = "text/xml; charset=utf-8";

/// Path of the media WebSocket (relative to the public host).
pub const MEDIA_PATH: &str = "/twilio/media";
/// Path of the stream status callback.
pub const STATUS_PATH: &str = "/twilio/status";
/// Path of the voice webhook.
pub const VOICE_PATH: &str = "/twilio/voice";

/// Escape `s` for use in XML text and double-quoted attribute values.
/// Characters XML 1.0 cannot carry at all (most C0 controls) are dropped.
pub fn escape_xml(s: &str) -> Cow<'_, str> {
    let needs = |c: char| matches!(c, '&' | '<' | '>' | '"' | '\'') || is_forbidden(c);
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_forbidden(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn is_forbidden(c: char) -> bool {
    (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || matches!(c, '\u{FFFE}' | '\u{FFFF}')
}

/// `<Connect><Stream>` to our media WebSocket on `public_host` (a host name,
/// optionally with a port, no scheme), with the stream status callback and
/// one `<Parameter>` per `(name, value)`; Twilio hands them back in the
/// `start` message's `customParameters`.
pub fn connect_stream(public_host: &str, params: &[(&str, &str)]) -> String {
    let host = escape_xml(public_host);
    let mut xml = String::with_capacity(256);
    xml.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    let _ = write!(
        xml,
        r#"<Response><Connect><Stream url="wss://{host}{MEDIA_PATH}" statusCallback="https://{host}{STATUS_PATH}" statusCallbackMethod="POST">"#
    );
    for (name, value) in params {
        let _ = write!(
            xml,
            r#"<Parameter name="{}" value="{}"/>"#,
            escape_xml(name),
            escape_xml(value)
        );
    }
    xml.push_str("</Stream></Connect></Response>");
    xml
}

/// Reject the call (no agent serves the number): the caller hears a busy
/// signal and the call is not billed as answered.
pub fn reject() -> String {
    r#"<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="rejected"/></Response>"#
        .to_owned()
}

/// Say `text`, then hang up.
pub fn say_and_hang_up(text: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Say>{}</Say><Hangup/></Response>"#,
        escape_xml(text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_matters() {
        assert!(matches!(escape_xml("plain"), Cow::Borrowed("plain")));
        assert_eq!(
            escape_xml(r#"a&b<c>"d"'e'"#),
            "a&amp;b&lt;c&gt;&quot;d&quot;&apos;e&apos;"
        );
        assert_eq!(escape_xml("x\u{0}y\u{1b}z\tw"), "xyz\tw");
    }

    #[test]
    fn connect_stream_carries_the_agent() {
        let xml = connect_stream("voice.example.com", &[("agent", r#"sales "EU" & <more>"#)]);
        assert_eq!(
            xml,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<Response><Connect><Stream url="wss://voice.example.com/twilio/media" "#,
                r#"statusCallback="https://voice.example.com/twilio/status" statusCallbackMethod="POST">"#,
                r#"<Parameter name="agent" value="sales &quot;EU&quot; &amp; &lt;more&gt;"/>"#,
                r#"</Stream></Connect></Response>"#
            )
        );
    }

    #[test]
    fn reject_and_say() {
        assert!(reject().contains("<Reject"));
        assert!(say_and_hang_up("a < b").contains("<Say>a &lt; b</Say><Hangup/>"));
    }
}
