//! The request body of a streamed chat completion.

use serde_json::{json, Map, Value};

use crate::brain::llm::{ChatMessage, ChatRequest, Role};

/// One message as the OpenAI API spells it.
fn message(m: &ChatMessage) -> Value {
    let mut o = Map::new();
    o.insert("role".into(), Value::from(m.role.as_str()));
    match m.role {
        Role::Assistant if !m.tool_calls.is_empty() => {
            o.insert(
                "content".into(),
                if m.content.is_empty() {
                    Value::Null
                } else {
                    Value::from(m.content.as_str())
                },
            );
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": { "name": c.name, "arguments": c.arguments },
                    })
                })
                .collect();
            o.insert("tool_calls".into(), Value::Array(calls));
        }
        _ => {
            o.insert("content".into(), Value::from(m.content.as_str()));
        }
    }
    if let Some(id) = &m.tool_call_id {
        o.insert("tool_call_id".into(), Value::from(id.as_str()));
    }
    Value::Object(o)
}

/// The JSON body for `request` to `model`: streamed, `max_tokens` as given,
/// tools as OpenAI "function" tools, usage in the last chunk when asked.
pub fn request_body(model: &str, request: &ChatRequest, max_tokens: u32, usage: bool) -> Value {
    let mut body = json!({
        "model": model,
        "messages": request.messages.iter().map(message).collect::<Vec<_>>(),
        "stream": true,
        "max_tokens": max_tokens,
        "temperature": request.temperature,
    });
    if let Some(o) = body.as_object_mut() {
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|t| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": t.name,
                            "description": t.description,
                            "parameters": t.parameters,
                        },
                    })
                })
                .collect();
            o.insert("tools".into(), Value::Array(tools));
        }
        if usage {
            o.insert("stream_options".into(), json!({ "include_usage": true }));
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::brain::llm::{ToolCall, ToolSpec};

    #[test]
    fn messages_tools_and_options() {
        let mut asst = ChatMessage::new(Role::Assistant, "");
        asst.tool_calls.push(ToolCall {
            id: "c1".into(),
            name: "weather".into(),
            arguments: "{\"city\":\"Oslo\"}".into(),
        });
        let mut tool = ChatMessage::new(Role::Tool, "{\"temp\":3}");
        tool.tool_call_id = Some("c1".into());
        let mut req = ChatRequest::new(vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Weather?"),
            asst,
            tool,
        ]);
        req.tools.push(ToolSpec {
            name: "weather".into(),
            description: "Weather now".into(),
            parameters: json!({"type":"object"}),
        });
        let body = request_body("m", &req, 64, true);
        assert_eq!(body["model"], "m");
        assert_eq!(body["stream"], true);
        assert_eq!(body["max_tokens"], 64);
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["messages"][2]["content"], Value::Null);
        assert_eq!(
            body["messages"][2]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Oslo\"}"
        );
        assert_eq!(body["messages"][3]["tool_call_id"], "c1");
        assert_eq!(body["tools"][0]["function"]["name"], "weather");
        let plain = request_body("m", &ChatRequest::new(vec![]), 8, false);
        assert!(plain.get("tools").is_none() && plain.get("stream_options").is_none());
    }
}
