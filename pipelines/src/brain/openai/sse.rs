//! A sans-IO parser for server-sent events (`text/event-stream`).
//!
//! Bytes go in, split anywhere (inside a line, between `\r` and `\n`, inside
//! a UTF-8 sequence); complete events come out. Lines end in CRLF, LF or CR;
//! `:` lines are comments; several `data:` lines join with `\n`; a blank line
//! dispatches the event. Lines are capped in length so a hostile server
//! cannot make the parser buffer without bound.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, when present (`message` is implied otherwise).
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
}

/// Why the parser gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// A line, or an event's data, grew past the cap.
    #[error("server-sent event line longer than {limit} bytes")]
    TooLong {
        /// The cap, in bytes.
        limit: usize,
    },
}

/// The parser state: a partial line and a partial event.
#[derive(Debug, Clone)]
pub struct SseParser {
    line: Vec<u8>,
    /// The previous byte was a `\r` ending a line: a following `\n` belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    limit: usize,
}

/// The default cap on one line and on one event's data: 1 MiB.
pub const DEFAULT_LIMIT: usize = 1 << 20;

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_LIMIT)
    }
}

impl SseParser {
    /// A parser refusing lines and events longer than `limit` bytes.
    pub fn new(limit: usize) -> Self {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            event: None,
            data: String::new(),
            has_data: false,
            limit,
        }
    }

    /// Feed `bytes`; complete events are appended to `out`.
    ///
    /// After an error the parser's state is unspecified: stop feeding it.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = bytes;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest[0] == b'\n' {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(i) => {
                    self.extend_line(&rest[..i])?;
                    self.after_cr = rest[i] == b'\r';
                    rest = &rest[i + 1..];
                    self.end_line(out)?;
                }
                None => {
                    self.extend_line(rest)?;
                    rest = &[];
                }
            }
        }
        Ok(())
    }

    /// The stream ended: a final event not followed by a blank line is
    /// discarded, as the SSE specification says. Returns whether any partial
    /// line or event was pending (a truncated stream).
    pub fn finish(&mut self) -> bool {
        let pending = !self.line.is_empty() || self.has_data || self.event.is_some();
        self.line.clear();
        self.reset_event();
        pending
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.line.len() + bytes.len() > self.limit {
            return Err(SseError::TooLong { limit: self.limit });
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn reset_event(&mut self) {
        self.event = None;
        self.data.clear();
        self.has_data = false;
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                out.push(SseEvent {
                    event: self.event.take(),
                    data: std::mem::take(&mut self.data),
                });
            }
            self.reset_event();
            return Ok(());
        }
        if line[0] == b':' {
            // Comment (keep-alive).
            self.line = line;
            self.line.clear();
            return Ok(());
        }
        let (name, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        match name {
            b"data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    return Err(SseError::TooLong { limit: self.limit });
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&String::from_utf8_lossy(value));
                self.has_data = true;
            }
            b"event" => self.event = Some(String::from_utf8_lossy(value).into_owned()),
            // `id`, `retry` and unknown fields do not matter to a one-shot reply.
            _ => {}
        }
        // Reuse the line's allocation.
        self.line = line;
        self.line.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out).expect("within limits");
        }
        out
    }

    fn data(d: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: d.into(),
        }
    }

    #[test]
    fn lf_crlf_and_cr_line_ends() {
        let s = b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata:d\n\n";
        assert_eq!(
            parse_all(&[s]),
            vec![data("a"), data("b"), data("c"), data("d")]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let s = "data: {\"x\":\"h\u{e9}llo\"}\r\n\r\n: keep-alive\r\ndata: one\r\ndata:two\r\n\r\ndata: [DONE]\r\n\r\n"
            .as_bytes();
        let whole = parse_all(&[s]);
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[0].data, "{\"x\":\"h\u{e9}llo\"}");
        assert_eq!(whole[1].data, "one\ntwo");
        assert_eq!(whole[2].data, "[DONE]");
        for i in 0..=s.len() {
            for j in i..=s.len() {
                assert_eq!(
                    parse_all(&[&s[..i], &s[i..j], &s[j..]]),
                    whole,
                    "split {i},{j}"
                );
            }
        }
    }

    #[test]
    fn comments_event_names_and_unknown_fields() {
        let s = b": hello\nevent: error\nid: 7\nretry: 10\nfoo\ndata: bad\n\n\n\ndata\n\n";
        assert_eq!(
            parse_all(&[s]),
            vec![
                SseEvent {
                    event: Some("error".into()),
                    data: "bad".into()
                },
                data("")
            ]
        );
    }

    #[test]
    fn blank_lines_without_data_dispatch_nothing_and_truncated_events_are_dropped() {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        p.push(b"\n\nevent: x\n\ndata: partial", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(p.finish());
        assert!(!p.finish());
    }

    #[test]
    fn overlong_lines_are_refused() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert_eq!(
            p.push(b"data: 0123456789abcdef", &mut out),
            Err(SseError::TooLong { limit: 16 })
        );
        let mut p = SseParser::new(16);
        let r = (0..10).try_for_each(|_| p.push(b"data: 0123456\n", &mut out));
        assert_eq!(r, Err(SseError::TooLong { limit: 16 }));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), cut in 0usize..512) {
            let cut = cut.min(bytes.len());
            let mut p = SseParser::new(64);
            let mut out = Vec::new();
            let _ = p.push(&bytes[..cut], &mut out).and_then(|()| p.push(&bytes[cut..], &mut out));
            p.finish();
        }

        #[test]
        fn splitting_does_not_change_events(
            lines in proptest::collection::vec(
                prop_oneof![
                    "data: [a-z{}\":, ]{0,12}", "event: [a-z]{0,5}", ":[ -~]{0,8}", "", "id: 1"
                ],
                0..20),
            ends in proptest::collection::vec(prop_oneof![Just("\n"), Just("\r\n"), Just("\r")], 20),
            cuts in proptest::collection::vec(0usize..400, 0..6),
        ) {
            let mut s = String::new();
            for (l, e) in lines.iter().zip(ends.iter()) {
                s.push_str(l);
                s.push_str(e);
            }
            let bytes = s.as_bytes();
            let whole = parse_all(&[bytes]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut at = 0;
            for c in cuts {
                pieces.push(&bytes[at..c]);
                at = c;
            }
            pieces.push(&bytes[at..]);
            prop_assert_eq!(parse_all(&pieces), whole);
        }
    }
}
