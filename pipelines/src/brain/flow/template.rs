//! `{{variable}}` text templates.

use std::collections::BTreeMap;

/// Variables every run sets itself: the caller's last turn, its intent and
/// sentiment, the last knowledge-base answer, the last model reply, today.
pub const BUILTIN_VARIABLES: [&str; 6] = [
    "last_input",
    "intent",
    "sentiment",
    "kb_answer",
    "llm_reply",
    "today",
];

/// The variable names `template` refers to, in order (`{{ name }}`; spaces
/// inside the braces are ignored; an unclosed `{{` is literal text).
pub fn variables(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            break;
        };
        let name = after[..close].trim();
        if !name.is_empty() {
            out.push(name);
        }
        rest = &after[close + 2..];
    }
    out
}

/// Replace every `{{name}}` with its value (empty when unset).
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            break;
        };
        out.push_str(&rest[..open]);
        let name = after[..close].trim();
        if let Some(v) = vars.get(name) {
            out.push_str(v);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// Render every string leaf of a JSON value.
pub fn render_json(v: &serde_json::Value, vars: &BTreeMap<String, String>) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => serde_json::Value::String(render(s, vars)),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.iter().map(|x| render_json(x, vars)).collect())
        }
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), render_json(x, vars)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_lists_variables() {
        let mut vars = BTreeMap::new();
        vars.insert("name".to_string(), "Ada".to_string());
        assert_eq!(
            render("Hi {{ name }}, {{missing}}ok {{", &vars),
            "Hi Ada, ok {{"
        );
        assert_eq!(variables("{{a}} and {{ b }} {{}} {{c"), vec!["a", "b"]);
        let j = serde_json::json!({"who": "{{name}}", "n": 3, "l": ["{{name}}"]});
        assert_eq!(
            render_json(&j, &vars),
            serde_json::json!({"who": "Ada", "n": 3, "l": ["Ada"]})
        );
    }
}
