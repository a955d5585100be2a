//! A sans-IO decoder for a streamed chat completion: the bytes of an
//! OpenAI-style `text/event-stream` reply in, [`LlmEvent`]s out.
//!
//! Text deltas become [`LlmEvent::Text`] at once. Tool-call fragments are
//! gathered by their `index` (id and name in the first fragment, the
//! arguments in pieces) and come out as one [`LlmEvent::ToolCall`] when
//! complete: when a fragment for a later call starts, or the reply finishes.
//! `usage` (sent when `stream_options.include_usage` is asked for) fills in
//! the token counts of the final [`LlmEvent::Done`].

use serde::Deserialize;

use super::sse::{SseError, SseEvent, SseParser};
use crate::brain::llm::{LlmError, LlmEvent, ToolCall};

/// How much of a bad chunk an error message quotes.
const QUOTE: usize = 120;

#[derive(Debug, Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Debug, Deserialize)]
struct ToolCallDelta {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionDelta>,
}

#[derive(Debug, Deserialize)]
struct FunctionDelta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    completion_tokens: Option<u32>,
}

/// A tool call being streamed.
#[derive(Debug, Clone, Default)]
struct PartialCall {
    index: u32,
    id: String,
    name: String,
    arguments: String,
}

/// What the decoder knows when the stream is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// Completion tokens: from `usage`, else the number of deltas seen.
    pub tokens: u32,
    /// Prompt tokens, when the server said.
    pub prompt_tokens: Option<u32>,
}

/// The decoder state for one streamed completion.
#[derive(Debug, Clone, Default)]
pub struct CompletionDecoder {
    sse: SseParser,
    events: Vec<SseEvent>,
    calls: Vec<PartialCall>,
    deltas: u32,
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    finish_reason: Option<String>,
    data_events: u32,
    done: bool,
}

fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

impl CompletionDecoder {
    /// A fresh decoder.
    pub fn new() -> Self {
        CompletionDecoder::default()
    }

    /// `[DONE]` was seen: the reply is complete; ignore anything after it.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether any text or tool-call fragment has been decoded yet (the
    /// first-token deadline is met).
    pub fn started(&self) -> bool {
        self.deltas > 0
    }

    /// The `finish_reason` the server gave (`stop`, `length`, `tool_calls`).
    pub fn finish_reason(&self) -> Option<&str> {
        self.finish_reason.as_deref()
    }

    /// Feed bytes of the HTTP body; decoded events are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<LlmEvent>) -> Result<(), LlmError> {
        if self.done {
            return Ok(());
        }
        let mut events = std::mem::take(&mut self.events);
        let parsed = self.sse.push(bytes, &mut events);
        let mut result = parsed.map_err(|e: SseError| LlmError::Protocol {
            reason: e.to_string(),
        });
        if result.is_ok() {
            for ev in events.drain(..) {
                if self.done {
                    break;
                }
                if let Err(e) = self.event(ev, out) {
                    result = Err(e);
                    break;
                }
            }
        }
        events.clear();
        self.events = events;
        result
    }

    /// The body ended (cleanly). Flushes pending tool calls into `out`.
    /// A reply without `[DONE]` or a `finish_reason` was cut short.
    pub fn finish(&mut self, out: &mut Vec<LlmEvent>) -> Result<Finished, LlmError> {
        let truncated = self.sse.finish();
        if !self.done && self.finish_reason.is_none() {
            return Err(if self.data_events == 0 && !truncated {
                LlmError::Protocol {
                    reason: "reply held no server-sent events".into(),
                }
            } else if self.data_events == 0 {
                LlmError::Protocol {
                    reason: "reply is not a complete server-sent event stream".into(),
                }
            } else {
                LlmError::Connection {
                    reason: "stream ended before the reply was complete".into(),
                }
            });
        }
        self.flush_calls(u32::MAX, out)?;
        Ok(Finished {
            tokens: self.completion_tokens.unwrap_or(self.deltas),
            prompt_tokens: self.prompt_tokens,
        })
    }

    fn event(&mut self, ev: SseEvent, out: &mut Vec<LlmEvent>) -> Result<(), LlmError> {
        self.data_events += 1;
        let data = ev.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        if ev.event.as_deref() == Some("error") {
            return Err(LlmError::Protocol {
                reason: format!("server reported an error: {}", quote(data)),
            });
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| LlmError::Protocol {
            reason: format!("malformed chunk ({e}): {}", quote(data)),
        })?;
        if let Some(err) = chunk.error {
            return Err(server_error(&err));
        }
        if let Some(u) = chunk.usage {
            self.prompt_tokens = u.prompt_tokens.or(self.prompt_tokens);
            self.completion_tokens = u.completion_tokens.or(self.completion_tokens);
        }
        // We never ask for n > 1: only the first choice matters.
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                if let Some(text) = delta.content.filter(|t| !t.is_empty()) {
                    self.deltas = self.deltas.saturating_add(1);
                    out.push(LlmEvent::Text(text));
                }
                for (pos, tc) in delta.tool_calls.unwrap_or_default().into_iter().enumerate() {
                    self.deltas = self.deltas.saturating_add(1);
                    self.tool_fragment(pos, tc, out)?;
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.finish_reason = Some(reason);
                self.flush_calls(u32::MAX, out)?;
            }
        }
        Ok(())
    }

    fn tool_fragment(
        &mut self,
        pos: usize,
        tc: ToolCallDelta,
        out: &mut Vec<LlmEvent>,
    ) -> Result<(), LlmError> {
        let index = match tc.index {
            Some(i) => i,
            // No index (some servers send whole calls): a new id, or the
            // first call in this delta with nothing open, starts a new call.
            None => {
                let last = self.calls.last();
                let new = match (&tc.id, last) {
                    (_, None) => true,
                    (Some(id), Some(l)) => !id.is_empty() && *id != l.id,
                    (None, Some(_)) => false,
                };
                match last {
                    Some(l) if !new => l.index,
                    Some(l) => l.index.saturating_add(1),
                    None => u32::try_from(pos).unwrap_or(u32::MAX),
                }
            }
        };
        // A fragment of a later call completes the earlier ones.
        self.flush_calls(index, out)?;
        let slot = match self.calls.iter().position(|c| c.index == index) {
            Some(i) => i,
            None => {
                self.calls.push(PartialCall {
                    index,
                    ..PartialCall::default()
                });
                self.calls.len() - 1
            }
        };
        let call = &mut self.calls[slot];
        if let Some(id) = tc.id.filter(|s| !s.is_empty()) {
            if call.id.is_empty() {
                call.id = id;
            }
        }
        if let Some(f) = tc.function {
            if let Some(name) = f.name.filter(|s| !s.is_empty()) {
                // Some servers repeat the name in every fragment.
                if call.name != name {
                    call.name.push_str(&name);
                }
            }
            if let Some(args) = f.arguments {
                call.arguments.push_str(&args);
            }
        }
        Ok(())
    }

    /// Emit every pending call with an index below `below`, in index order.
    fn flush_calls(&mut self, below: u32, out: &mut Vec<LlmEvent>) -> Result<(), LlmError> {
        self.calls.sort_by_key(|c| c.index);
        let n = self.calls.iter().take_while(|c| c.index < below).count();
        for c in self.calls.drain(..n) {
            if c.name.is_empty() {
                return Err(LlmError::Protocol {
                    reason: format!("tool call {} has no function name", c.index),
                });
            }
            out.push(LlmEvent::ToolCall(ToolCall {
                id: if c.id.is_empty() {
                    format!("call_{}", c.index)
                } else {
                    c.id
                },
                name: c.name,
                arguments: if c.arguments.trim().is_empty() {
                    "{}".into()
                } else {
                    c.arguments
                },
            }));
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct Complete {
    #[serde(default)]
    choices: Vec<CompleteChoice>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct CompleteChoice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    message: Option<CompleteMessage>,
}

#[derive(Debug, Deserialize)]
struct CompleteMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<CompleteToolCall>>,
}

#[derive(Debug, Deserialize)]
struct CompleteToolCall {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<CompleteFunction>,
}

#[derive(Debug, Deserialize)]
struct CompleteFunction {
    #[serde(default)]
    name: Option<String>,
    /// A JSON string per the API; some servers send the object itself.
    #[serde(default)]
    arguments: Option<serde_json::Value>,
}

/// Decode a whole non-streamed completion (`application/json`), for servers
/// that ignore `stream: true`: the text as one piece, then the tool calls.
pub fn decode_complete(body: &[u8]) -> Result<(Vec<LlmEvent>, Finished), LlmError> {
    let reply: Complete = serde_json::from_slice(body).map_err(|e| LlmError::Protocol {
        reason: format!(
            "malformed completion ({e}): {}",
            quote(&String::from_utf8_lossy(body))
        ),
    })?;
    if let Some(err) = reply.error {
        return Err(server_error(&err));
    }
    let message = reply
        .choices
        .into_iter()
        .find(|c| c.index == 0)
        .and_then(|c| c.message)
        .ok_or_else(|| LlmError::Protocol {
            reason: "completion has no message".into(),
        })?;
    let mut out = Vec::new();
    if let Some(text) = message.content.filter(|t| !t.is_empty()) {
        out.push(LlmEvent::Text(text));
    }
    for (i, call) in message
        .tool_calls
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let f = call.function.ok_or_else(|| LlmError::Protocol {
            reason: format!("tool call {i} has no function"),
        })?;
        let name = f
            .name
            .filter(|n| !n.is_empty())
            .ok_or_else(|| LlmError::Protocol {
                reason: format!("tool call {i} has no function name"),
            })?;
        let arguments = match f.arguments {
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s,
            None | Some(serde_json::Value::Null) | Some(serde_json::Value::String(_)) => {
                "{}".into()
            }
            Some(v) => v.to_string(),
        };
        out.push(LlmEvent::ToolCall(ToolCall {
            id: call
                .id
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("call_{i}")),
            name,
            arguments,
        }));
    }
    let usage = reply.usage;
    let fin = Finished {
        tokens: usage
            .as_ref()
            .and_then(|u| u.completion_tokens)
            .unwrap_or(u32::try_from(out.len()).unwrap_or(u32::MAX)),
        prompt_tokens: usage.and_then(|u| u.prompt_tokens),
    };
    Ok((out, fin))
}

/// An `error` object the server sent instead of a completion.
fn server_error(err: &serde_json::Value) -> LlmError {
    let msg = err
        .get("message")
        .and_then(|m| m.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| err.to_string());
    LlmError::Protocol {
        reason: format!("server reported an error: {}", quote(&msg)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(body: &str) -> (Vec<LlmEvent>, Result<Finished, LlmError>) {
        let mut d = CompletionDecoder::new();
        let mut out = Vec::new();
        if let Err(e) = d.push(body.as_bytes(), &mut out) {
            return (out, Err(e));
        }
        let fin = d.finish(&mut out);
        (out, fin)
    }

    #[test]
    fn text_usage_and_done() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo.\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n",
            "data: [DONE]\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"after done\"}}]}\n\n",
        );
        let (ev, fin) = decode(body);
        assert_eq!(
            ev,
            vec![LlmEvent::Text("Hel".into()), LlmEvent::Text("lo.".into())]
        );
        assert_eq!(
            fin,
            Ok(Finished {
                tokens: 3,
                prompt_tokens: Some(12)
            })
        );
    }

    #[test]
    fn tool_calls_gathered_by_index() {
        let body = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"weather\",\"arguments\":\"\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Oslo\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"c2\",\"function\":{\"name\":\"time\"}}]}}]}\n\n",
        );
        let mut d = CompletionDecoder::new();
        let mut out = Vec::new();
        d.push(body.as_bytes(), &mut out).unwrap();
        // The first call is complete once the second starts.
        assert_eq!(
            out,
            vec![LlmEvent::ToolCall(ToolCall {
                id: "c1".into(),
                name: "weather".into(),
                arguments: "{\"city\":\"Oslo\"}".into()
            })]
        );
        d.push(
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\ndata: [DONE]\n\n",
            &mut out,
        )
        .unwrap();
        let fin = d.finish(&mut out).unwrap();
        assert_eq!(d.finish_reason(), Some("tool_calls"));
        assert_eq!(
            out[1],
            LlmEvent::ToolCall(ToolCall {
                id: "c2".into(),
                name: "time".into(),
                arguments: "{}".into()
            })
        );
        assert_eq!(fin.tokens, 4);
    }

    #[test]
    fn calls_without_index_or_id() {
        let body = concat!(
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"a\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},{\"id\":\"b\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"name\":\"h\"}}]}}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (ev, fin) = decode(body);
        assert!(fin.is_ok());
        let names: Vec<_> = ev
            .iter()
            .map(|e| match e {
                LlmEvent::ToolCall(c) => (c.id.as_str(), c.name.as_str()),
                _ => ("", ""),
            })
            .collect();
        // "h" has neither index nor id: it continues the open call "g".
        assert_eq!(names, vec![("a", "f"), ("b", "gh")]);
    }

    #[test]
    fn errors() {
        let (_, fin) = decode("data: {not json\n\n");
        assert!(matches!(fin, Err(LlmError::Protocol { .. })), "{fin:?}");
        let (_, fin) = decode("data: {\"error\":{\"message\":\"model not loaded\"}}\n\n");
        assert!(
            matches!(&fin, Err(LlmError::Protocol { reason }) if reason.contains("model not loaded")),
            "{fin:?}"
        );
        let (_, fin) = decode("<html>502 Bad Gateway</html>");
        assert!(matches!(fin, Err(LlmError::Protocol { .. })), "{fin:?}");
        let (ev, fin) = decode("data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n");
        assert_eq!(ev, vec![LlmEvent::Text("Hi".into())]);
        assert!(matches!(fin, Err(LlmError::Connection { .. })), "{fin:?}");
        let (_, fin) = decode("data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}\n\n");
        assert!(matches!(fin, Err(LlmError::Protocol { .. })), "{fin:?}");
        // A finish_reason without [DONE] is a complete reply.
        let (_, fin) =
            decode("data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        assert!(fin.is_ok());
    }

    #[test]
    fn whole_completion() {
        let body =
            br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi.","tool_calls":[
            {"id":"a","type":"function","function":{"name":"f","arguments":"{\"x\":1}"}},
            {"function":{"name":"g","arguments":{"y":2}}}]},"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":5,"completion_tokens":7}}"#;
        let (ev, fin) = decode_complete(body).unwrap();
        assert_eq!(
            ev,
            vec![
                LlmEvent::Text("Hi.".into()),
                LlmEvent::ToolCall(ToolCall {
                    id: "a".into(),
                    name: "f".into(),
                    arguments: "{\"x\":1}".into()
                }),
                LlmEvent::ToolCall(ToolCall {
                    id: "call_1".into(),
                    name: "g".into(),
                    arguments: "{\"y\":2}".into()
                }),
            ]
        );
        assert_eq!(
            fin,
            Finished {
                tokens: 7,
                prompt_tokens: Some(5)
            }
        );
        assert!(decode_complete(b"{\"choices\":[]}").is_err());
        assert!(decode_complete(b"\xff garbage").is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut d = CompletionDecoder::new();
            let mut out = Vec::new();
            let mut body = b"data: ".to_vec();
            body.extend_from_slice(&bytes);
            body.extend_from_slice(b"\n\n");
            let _ = d.push(&body, &mut out);
            let _ = d.finish(&mut out);
        }

        #[test]
        fn fuzzed_json_chunks_never_panic(s in "\\{\"choices\":\\[\\{\"delta\":\\{\"(content|tool_calls)\":[\\[\\]{}\",:a-z0-9 ]{0,40}") {
            let mut d = CompletionDecoder::new();
            let mut out = Vec::new();
            let _ = d.push(format!("data: {s}\n\n").as_bytes(), &mut out);
            let _ = d.finish(&mut out);
        }
    }
}
