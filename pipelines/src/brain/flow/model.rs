//! The flow document: the JSON a flow builder saves and the engine runs.
//!
//! A [`Flow`] is a graph: `nodes` (each with an `id` and a `type`) and an
//! explicit list of `edges` between them, each edge labelled with the
//! [`Outcome`] of its source node that selects it. Parsing is strict
//! (`deny_unknown_fields`) and names the JSON path of the first mistake;
//! [`Flow::parse`] also runs [`super::validate`] and only hands back a
//! [`ValidFlow`] when there are no errors.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::validate::{self, FlowProblem, Severity};
use crate::brain::intents::IntentDef;
use crate::brain::sentiment::SentimentLabel;

/// The document format version this engine reads.
pub const FLOW_VERSION: u32 = 1;

fn default_version() -> u32 {
    FLOW_VERSION
}

/// A conversation flow document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Format version; only [`FLOW_VERSION`] is accepted. Defaults to it.
    #[serde(default = "default_version")]
    pub version: u32,
    /// Stable identifier (`appointment_booking`).
    pub id: String,
    /// Human name.
    pub name: String,
    /// Free description for the builder UI.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The node the call starts at.
    pub start: String,
    /// Intents `branch` nodes may test (`intent:NAME`), with examples for
    /// the classifier.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<IntentDef>,
    /// Variables and their values at the start of the call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The nodes.
    pub nodes: Vec<Node>,
    /// The edges between them.
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// Opaque data for the builder UI (canvas position, zoom); ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

/// One node. The JSON `type` field selects the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Node {
    /// Say a line, then follow the unlabelled edge.
    Say(SayNode),
    /// Ask a question and collect the answer into a variable.
    Ask(AskNode),
    /// Choose an edge by intent, variable or sentiment.
    Branch(BranchNode),
    /// Answer from the knowledge base.
    KbAnswer(KbAnswerNode),
    /// Let the language model reply.
    Llm(LlmNode),
    /// Call a tool or webhook.
    Tool(ToolNode),
    /// Hand the call to a person or number (ends the flow).
    Transfer(TransferNode),
    /// End the call (ends the flow).
    Hangup(HangupNode),
}

/// The kind of a node, without its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NodeType {
    /// [`Node::Say`].
    Say,
    /// [`Node::Ask`].
    Ask,
    /// [`Node::Branch`].
    Branch,
    /// [`Node::KbAnswer`].
    KbAnswer,
    /// [`Node::Llm`].
    Llm,
    /// [`Node::Tool`].
    Tool,
    /// [`Node::Transfer`].
    Transfer,
    /// [`Node::Hangup`].
    Hangup,
}

impl NodeType {
    /// The JSON `type` name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeType::Say => "say",
            NodeType::Ask => "ask",
            NodeType::Branch => "branch",
            NodeType::KbAnswer => "kb_answer",
            NodeType::Llm => "llm",
            NodeType::Tool => "tool",
            NodeType::Transfer => "transfer",
            NodeType::Hangup => "hangup",
        }
    }

    /// Ends the flow (no outgoing edges).
    pub fn is_terminal(self) -> bool {
        matches!(self, NodeType::Transfer | NodeType::Hangup)
    }

    /// Waits for the caller before going on.
    pub fn waits_for_input(self) -> bool {
        matches!(self, NodeType::Ask)
    }
}

impl Node {
    /// The node's id.
    pub fn id(&self) -> &str {
        match self {
            Node::Say(n) => &n.id,
            Node::Ask(n) => &n.id,
            Node::Branch(n) => &n.id,
            Node::KbAnswer(n) => &n.id,
            Node::Llm(n) => &n.id,
            Node::Tool(n) => &n.id,
            Node::Transfer(n) => &n.id,
            Node::Hangup(n) => &n.id,
        }
    }

    /// The node's type.
    pub fn node_type(&self) -> NodeType {
        match self {
            Node::Say(_) => NodeType::Say,
            Node::Ask(_) => NodeType::Ask,
            Node::Branch(_) => NodeType::Branch,
            Node::KbAnswer(_) => NodeType::KbAnswer,
            Node::Llm(_) => NodeType::Llm,
            Node::Tool(_) => NodeType::Tool,
            Node::Transfer(_) => NodeType::Transfer,
            Node::Hangup(_) => NodeType::Hangup,
        }
    }

    /// Every text template in the node, with its field name.
    pub fn templates(&self) -> Vec<(&'static str, &str)> {
        let mut t: Vec<(&'static str, &str)> = Vec::new();
        match self {
            Node::Say(n) => t.push(("text", &n.text)),
            Node::Ask(n) => {
                t.push(("prompt", &n.prompt));
                if let Some(r) = &n.reprompt {
                    t.push(("reprompt", r));
                }
                if let Some(g) = &n.give_up {
                    t.push(("give_up", g));
                }
            }
            Node::Branch(_) => {}
            Node::KbAnswer(n) => {
                t.push(("query", &n.query));
                t.push(("answer", &n.answer));
            }
            Node::Llm(n) => t.push(("instructions", &n.instructions)),
            Node::Tool(n) => {
                t.push(("url", &n.url));
                if let Some(w) = &n.wait_text {
                    t.push(("wait_text", w));
                }
                collect_json_strings(&n.arguments, &mut t);
            }
            Node::Transfer(n) => {
                if let Some(x) = &n.text {
                    t.push(("text", x));
                }
            }
            Node::Hangup(n) => {
                if let Some(x) = &n.text {
                    t.push(("text", x));
                }
            }
        }
        t
    }

    /// The variables the node sets when it runs.
    pub fn sets_variables(&self) -> Vec<&str> {
        match self {
            Node::Ask(n) => vec![n.variable.as_str()],
            Node::Llm(n) => n.save_as.iter().map(String::as_str).collect(),
            Node::Tool(n) => n.save.keys().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }
}

fn collect_json_strings<'a>(v: &'a serde_json::Value, out: &mut Vec<(&'static str, &'a str)>) {
    match v {
        serde_json::Value::String(s) => out.push(("arguments", s)),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_json_strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_json_strings(x, out)),
        _ => {}
    }
}

/// `say`: speak `text`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SayNode {
    /// Node id.
    pub id: String,
    /// The line, a template (`{{name}}`).
    pub text: String,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

/// Which kinds of caller input an `ask` accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputMode {
    /// Speech or keypad.
    #[default]
    Any,
    /// Speech only.
    Speech,
    /// Keypad only.
    Dtmf,
}

fn default_validate() -> String {
    "text".into()
}
fn default_attempts() -> u32 {
    3
}

/// `ask`: speak `prompt`, wait for the caller, check the answer against
/// `validate`, store it in `variable`. Outcomes `ok` and `gave_up`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AskNode {
    /// Node id.
    pub id: String,
    /// The question, a template.
    pub prompt: String,
    /// Where the answer goes.
    pub variable: String,
    /// What answers are accepted: `text`, `digits`, `yes_no`, `number`,
    /// `date_time` (see [`ValidationKind`]).
    #[serde(default = "default_validate")]
    pub validate: String,
    /// Speech, DTMF or both.
    #[serde(default)]
    pub input: InputMode,
    /// `digits`/`text`: fewest characters accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u32>,
    /// `digits`/`text`: most characters accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
    /// `number`: smallest accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// `number`: largest accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// `date_time`: read `5/3` as 5 March rather than May 3.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub day_first: bool,
    /// Said after an answer that did not validate (default: the prompt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reprompt: Option<String>,
    /// Answers tried before giving up (`gave_up`), at least 1.
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    /// Said when giving up, before following `gave_up`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up: Option<String>,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

/// How an `ask` node checks answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValidationKind {
    /// Anything non-empty (length limits optional).
    Text,
    /// Digits, keyed or spoken ("one two three").
    Digits,
    /// Yes or no in many phrasings; keypad 1 = yes, 2 = no.
    YesNo,
    /// A whole number, numerals or words up to the millions.
    Number,
    /// A date and/or time ("next Tuesday at 3 pm", "March 5th", "5/3").
    DateTime,
}

impl ValidationKind {
    /// Every kind's JSON name.
    pub const NAMES: [&'static str; 5] = ["text", "digits", "yes_no", "number", "date_time"];

    /// From its JSON name.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "text" => ValidationKind::Text,
            "digits" => ValidationKind::Digits,
            "yes_no" => ValidationKind::YesNo,
            "number" => ValidationKind::Number,
            "date_time" => ValidationKind::DateTime,
            _ => return None,
        })
    }
}

/// `branch`: no fields; its outgoing edges' labels are the conditions,
/// tried in document order, `default` last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BranchNode {
    /// Node id.
    pub id: String,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

fn default_query() -> String {
    "{{last_input}}".into()
}
fn default_answer() -> String {
    "{{kb_answer}}".into()
}
fn default_top_k() -> u32 {
    3
}
fn default_min_score() -> f32 {
    0.35
}

/// `kb_answer`: search the knowledge base; when the best passage scores at
/// least `min_score`, store it in `kb_answer`, say `answer` and follow
/// `found`, else follow `not_found`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KbAnswerNode {
    /// Node id.
    pub id: String,
    /// The search, a template (default: the caller's last turn).
    #[serde(default = "default_query")]
    pub query: String,
    /// What to say when found, a template (default `{{kb_answer}}`).
    #[serde(default = "default_answer")]
    pub answer: String,
    /// Lowest similarity that counts as found, -1..=1.
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

fn default_llm_tokens() -> u32 {
    128
}
fn default_llm_timeout() -> u32 {
    10_000
}
fn default_tool_timeout() -> u32 {
    5_000
}

/// `llm`: the language model replies to the conversation (streamed to the
/// caller as it is generated). Outcomes `ok` and optional `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmNode {
    /// Node id.
    pub id: String,
    /// The system prompt, a template.
    pub instructions: String,
    /// Add the best knowledge-base passages for the caller's last turn to
    /// the system prompt.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub use_kb: bool,
    /// Passages to add when `use_kb`.
    #[serde(default = "default_top_k")]
    pub kb_top_k: u32,
    /// Also store the reply in this variable (it is always in `llm_reply`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub save_as: Option<String>,
    /// Reply length cap in tokens.
    #[serde(default = "default_llm_tokens")]
    pub max_tokens: u32,
    /// Give up after this many milliseconds (1..=30000).
    #[serde(default = "default_llm_timeout")]
    pub timeout_ms: u32,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

/// `tool`: POST `arguments` (string leaves are templates) to `url`, store
/// parts of the JSON answer in variables. Outcomes `ok` and optional `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolNode {
    /// Node id.
    pub id: String,
    /// The tool's name (logs, the call record).
    pub tool: String,
    /// Where to POST (`http`/`https`), a template.
    pub url: String,
    /// The JSON body; string values are templates.
    #[serde(default = "empty_object")]
    pub arguments: serde_json::Value,
    /// Give up after this many milliseconds (1..=30000).
    #[serde(default = "default_tool_timeout")]
    pub timeout_ms: u32,
    /// Variable name -> JSON pointer into the answer (`"/slot/time"`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub save: BTreeMap<String, String>,
    /// Said while the call runs ("One moment while I check.").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_text: Option<String>,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// `transfer`: say `text`, then hand the call to `target`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferNode {
    /// Node id.
    pub id: String,
    /// SIP URI, number or queue name.
    pub target: String,
    /// Said first, a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

/// `hangup`: say `text`, then end the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HangupNode {
    /// Node id.
    pub id: String,
    /// Said first, a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

/// An edge: when node `from` finishes with outcome `on`, go to `to`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    /// Optional id (for the builder UI and problem reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Source node.
    pub from: String,
    /// Target node.
    pub to: String,
    /// The outcome label; absent for `say` edges. See [`Outcome`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<String>,
    /// Opaque builder data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ui: Option<serde_json::Value>,
}

impl Edge {
    /// How problem reports and traces name it: its id, or `from->to`.
    pub fn name(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => format!("{}->{}", self.from, self.to),
        }
    }
}

/// A parsed edge label.
///
/// - `say`: none (unlabelled).
/// - `ask`: `ok`, `gave_up`.
/// - `branch`: `intent:NAME`, `var:NAME=VALUE` (several values separated by
///   `|`), `var:NAME>=N` (also `>`, `<`, `<=`),
///   `sentiment:negative`/`neutral`/`positive`, and `default`; tried in
///   document order, `default` last.
/// - `kb_answer`: `found`, `not_found`.
/// - `llm`, `tool`: `ok`, and optionally `error` (without it a failure says
///   a retry line and waits for the caller).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// No label.
    Next,
    /// `ok`.
    Ok,
    /// `gave_up`.
    GaveUp,
    /// `error`.
    Error,
    /// `found`.
    Found,
    /// `not_found`.
    NotFound,
    /// `default`.
    Default,
    /// `intent:NAME`.
    Intent(String),
    /// `var:NAME=V1|V2` (any value, case-insensitively) or
    /// `var:NAME>=N` (also `>`, `<`, `<=`: the variable read as a number).
    Var {
        /// The variable.
        name: String,
        /// The test.
        test: VarTest,
    },
    /// `sentiment:LABEL`.
    Sentiment(SentimentLabel),
}

impl Outcome {
    /// Parse an edge's `on`. `None` when the label is not understood.
    pub fn parse(on: Option<&str>) -> Option<Outcome> {
        let Some(on) = on else {
            return Some(Outcome::Next);
        };
        Some(match on {
            "ok" => Outcome::Ok,
            "gave_up" => Outcome::GaveUp,
            "error" => Outcome::Error,
            "found" => Outcome::Found,
            "not_found" => Outcome::NotFound,
            "default" => Outcome::Default,
            _ => {
                if let Some(name) = on.strip_prefix("intent:") {
                    let name = name.trim();
                    if name.is_empty() {
                        return None;
                    }
                    Outcome::Intent(name.to_string())
                } else if let Some(rest) = on.strip_prefix("var:") {
                    let at = rest.find(['=', '<', '>'])?;
                    let name = rest[..at].trim();
                    if name.is_empty() {
                        return None;
                    }
                    let ops = rest[at..].trim_start();
                    let (op, value) = [">=", "<=", ">", "<", "="]
                        .iter()
                        .find_map(|op| ops.strip_prefix(op).map(|v| (*op, v.trim())))?;
                    let test = match op {
                        "=" => {
                            VarTest::OneOf(value.split('|').map(|v| v.trim().to_string()).collect())
                        }
                        _ => {
                            let n: i64 = value.parse().ok()?;
                            VarTest::Compare(
                                match op {
                                    ">=" => Compare::AtLeast,
                                    "<=" => Compare::AtMost,
                                    ">" => Compare::Above,
                                    _ => Compare::Below,
                                },
                                n,
                            )
                        }
                    };
                    Outcome::Var {
                        name: name.to_string(),
                        test,
                    }
                } else if let Some(label) = on.strip_prefix("sentiment:") {
                    Outcome::Sentiment(match label.trim() {
                        "negative" => SentimentLabel::Negative,
                        "neutral" => SentimentLabel::Neutral,
                        "positive" => SentimentLabel::Positive,
                        _ => return None,
                    })
                } else {
                    return None;
                }
            }
        })
    }

    /// Whether a node of type `t` can finish with this outcome.
    pub fn allowed_for(&self, t: NodeType) -> bool {
        match t {
            NodeType::Say => matches!(self, Outcome::Next),
            NodeType::Ask => matches!(self, Outcome::Ok | Outcome::GaveUp),
            NodeType::Branch => matches!(
                self,
                Outcome::Default | Outcome::Intent(_) | Outcome::Var { .. } | Outcome::Sentiment(_)
            ),
            NodeType::KbAnswer => matches!(self, Outcome::Found | Outcome::NotFound),
            NodeType::Llm | NodeType::Tool => matches!(self, Outcome::Ok | Outcome::Error),
            NodeType::Transfer | NodeType::Hangup => false,
        }
    }

    /// The labels a node of type `t` must have edges for.
    pub fn required_for(t: NodeType) -> &'static [&'static str] {
        match t {
            NodeType::Say => &[""],
            NodeType::Ask => &["ok", "gave_up"],
            NodeType::Branch => &["default"],
            NodeType::KbAnswer => &["found", "not_found"],
            NodeType::Llm | NodeType::Tool => &["ok"],
            NodeType::Transfer | NodeType::Hangup => &[],
        }
    }
}

/// The test of a `var:` branch label.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VarTest {
    /// `=A|B`: equals one of these (case-insensitive; empty matches unset).
    OneOf(Vec<String>),
    /// `>=N`, `>N`, `<=N`, `<N`: the value read as a whole number (an unset
    /// or non-numeric variable never matches).
    Compare(Compare, i64),
}

impl VarTest {
    /// Whether `value` passes.
    pub fn matches(&self, value: &str) -> bool {
        let value = value.trim();
        match self {
            VarTest::OneOf(vs) => vs.iter().any(|v| v.eq_ignore_ascii_case(value)),
            VarTest::Compare(op, n) => match value.parse::<i64>() {
                Ok(v) => match op {
                    Compare::AtLeast => v >= *n,
                    Compare::AtMost => v <= *n,
                    Compare::Above => v > *n,
                    Compare::Below => v < *n,
                },
                Err(_) => false,
            },
        }
    }
}

/// A numeric comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compare {
    /// `>=`.
    AtLeast,
    /// `<=`.
    AtMost,
    /// `>`.
    Above,
    /// `<`.
    Below,
}

/// Why a flow could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// Not JSON, or not the flow format.
    #[error("flow document does not parse at `{path}` (line {line}, column {column}): {message}")]
    Parse {
        /// The JSON path of the mistake (`nodes[2].max_attempts`), `.` for the root.
        path: String,
        /// Line (1-based), 0 when unknown.
        line: usize,
        /// Column (1-based), 0 when unknown.
        column: usize,
        /// What serde said.
        message: String,
    },
    /// It parses but validation found errors.
    #[error("flow is invalid ({} problem(s)): {}", problems.len(), first_message(problems))]
    Invalid {
        /// Every problem found, errors and warnings.
        problems: Vec<FlowProblem>,
    },
}

fn first_message(problems: &[FlowProblem]) -> String {
    problems
        .iter()
        .find(|p| p.severity == Severity::Error)
        .or(problems.first())
        .map(|p| p.message.clone())
        .unwrap_or_default()
}

impl Flow {
    /// Parse and validate a flow document.
    pub fn parse(json: &str) -> Result<ValidFlow, FlowError> {
        let flow = Flow::from_json(json)?;
        ValidFlow::new(flow)
    }

    /// Parse a flow document without validating it.
    pub fn from_json(json: &str) -> Result<Flow, FlowError> {
        let mut de = serde_json::Deserializer::from_str(json);
        match serde_path_to_error::deserialize::<_, Flow>(&mut de) {
            Ok(flow) => Ok(flow),
            Err(e) => {
                let path = e.path().to_string();
                let inner = e.into_inner();
                let (line, column) = (inner.line(), inner.column());
                // Nodes are internally tagged, which hides the path inside a
                // node: parse that node again on its own to find it.
                let deeper = deeper_node_error(json, &path);
                match deeper {
                    Some((p, m)) => Err(FlowError::Parse {
                        path: p,
                        line,
                        column,
                        message: m,
                    }),
                    None => Err(FlowError::Parse {
                        path,
                        line,
                        column,
                        message: strip_position(&inner.to_string()),
                    }),
                }
            }
        }
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

fn deeper_node_error(json: &str, path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("nodes[")?;
    let (idx, tail) = rest.split_once(']')?;
    if !tail.is_empty() {
        return None;
    }
    let idx: usize = idx.parse().ok()?;
    let doc: serde_json::Value = serde_json::from_str(json).ok()?;
    let node = doc.get("nodes")?.get(idx)?;
    let ty = node.get("type").and_then(|t| t.as_str());
    let mut body = node.clone();
    if let Some(o) = body.as_object_mut() {
        o.remove("type");
    }
    fn inner<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> Option<(String, String)> {
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(_) => None,
            Err(e) => Some((e.path().to_string(), e.into_inner().to_string())),
        }
    }
    let (p, m) = match ty {
        Some("say") => inner::<SayNode>(body),
        Some("ask") => inner::<AskNode>(body),
        Some("branch") => inner::<BranchNode>(body),
        Some("kb_answer") => inner::<KbAnswerNode>(body),
        Some("llm") => inner::<LlmNode>(body),
        Some("tool") => inner::<ToolNode>(body),
        Some("transfer") => inner::<TransferNode>(body),
        Some("hangup") => inner::<HangupNode>(body),
        Some(other) => Some((
            "type".to_string(),
            format!(
                "unknown node type `{other}`, expected one of say, ask, branch, kb_answer, llm, tool, transfer, hangup"
            ),
        )),
        None => Some(("type".to_string(), "missing field `type`".to_string())),
    }?;
    let p = if p == "." {
        format!("nodes[{idx}]")
    } else {
        format!("nodes[{idx}].{p}")
    };
    Some((p, m))
}

/// A flow with no validation errors, indexed for running. Cheap to share
/// behind an `Arc`.
#[derive(Debug, Clone)]
pub struct ValidFlow {
    flow: Flow,
    index: HashMap<String, usize>,
    /// Per node: (edge index, parsed outcome, target node index), in order.
    out: Vec<Vec<(usize, Outcome, usize)>>,
    start: usize,
    warnings: Vec<FlowProblem>,
}

impl ValidFlow {
    /// Validate `flow`; errors give [`FlowError::Invalid`] with every problem.
    pub fn new(flow: Flow) -> Result<ValidFlow, FlowError> {
        let problems = validate::validate(&flow);
        if problems.iter().any(|p| p.severity == Severity::Error) {
            return Err(FlowError::Invalid { problems });
        }
        let index: HashMap<String, usize> = flow
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id().to_string(), i))
            .collect();
        let mut out = vec![Vec::new(); flow.nodes.len()];
        for (ei, e) in flow.edges.iter().enumerate() {
            if let (Some(&f), Some(&t), Some(o)) = (
                index.get(&e.from),
                index.get(&e.to),
                Outcome::parse(e.on.as_deref()),
            ) {
                out[f].push((ei, o, t));
            }
        }
        let start = index
            .get(&flow.start)
            .copied()
            .ok_or_else(|| FlowError::Invalid {
                problems: problems.clone(),
            })?;
        Ok(ValidFlow {
            flow,
            index,
            out,
            start,
            warnings: problems,
        })
    }

    /// The document.
    pub fn flow(&self) -> &Flow {
        &self.flow
    }

    /// Warnings validation found (no errors, by construction).
    pub fn warnings(&self) -> &[FlowProblem] {
        &self.warnings
    }

    pub(crate) fn start(&self) -> usize {
        self.start
    }

    pub(crate) fn node(&self, i: usize) -> &Node {
        &self.flow.nodes[i]
    }

    pub(crate) fn node_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub(crate) fn edges_from(&self, i: usize) -> &[(usize, Outcome, usize)] {
        &self.out[i]
    }

    pub(crate) fn edge(&self, i: usize) -> &Edge {
        &self.flow.edges[i]
    }
}
