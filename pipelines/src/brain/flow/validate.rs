//! Flow validation: every problem at once, each with a machine code, the
//! node or edge it concerns and a message for people.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::Serialize;

use super::model::{Flow, Node, NodeType, Outcome, ValidationKind, FLOW_VERSION};
use super::template::{self, BUILTIN_VARIABLES};

/// Longest timeout a node may ask for.
pub const MAX_TIMEOUT_MS: u32 = 30_000;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The flow cannot run.
    Error,
    /// It runs, but probably not as meant.
    Warning,
}

/// What kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProblemCode {
    /// `version` is not one this engine reads.
    UnsupportedVersion,
    /// Two nodes, edges or intents share an id.
    DuplicateId,
    /// `start` or an edge names a node that does not exist.
    UnknownNode,
    /// No path from `start` reaches the node.
    UnreachableNode,
    /// A node lacks an outgoing edge it needs (only `transfer` and `hangup`
    /// may end a flow).
    DeadEnd,
    /// An edge leaves a `transfer` or `hangup` node.
    EdgeFromTerminal,
    /// An edge label that is not an outcome of its source node's type.
    BadOutcome,
    /// Two edges leave the same node on the same outcome.
    AmbiguousEdge,
    /// A cycle of nodes none of which waits for the caller.
    LoopWithoutInput,
    /// A required field is missing or empty.
    MissingField,
    /// A field's value is out of range or malformed.
    BadValue,
    /// A timeout of 0 or above 30 s.
    BadTimeout,
    /// A tool URL that is not `http(s)://host...`.
    InvalidUrl,
    /// A minimum above its maximum.
    BadRange,
    /// An `ask` with a `validate` kind this engine does not know.
    UnknownValidation,
    /// A branch on an intent not declared in `intents`.
    UnknownIntent,
    /// A template or branch uses a variable nothing sets (warning).
    UndefinedVariable,
    /// A node that acts (model, tool, knowledge base, transfer, hang-up)
    /// can run before the caller has said anything: the greeting must be
    /// plain `say` nodes ending at an `ask`.
    ActsBeforeInput,
}

/// One problem found in a flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowProblem {
    /// What kind.
    pub code: ProblemCode,
    /// Error or warning.
    pub severity: Severity,
    /// The node concerned, by id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The edge concerned, by position in `edges`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub edge: Option<usize>,
    /// The field concerned (`max_attempts`, `start`, `on`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, for people.
    pub message: String,
}

struct Problems(Vec<FlowProblem>);

impl Problems {
    fn node(&mut self, code: ProblemCode, node: &str, field: Option<&str>, message: String) {
        self.push(code, Severity::Error, Some(node), None, field, message);
    }
    fn edge(&mut self, code: ProblemCode, edge: usize, field: Option<&str>, message: String) {
        self.push(code, Severity::Error, None, Some(edge), field, message);
    }
    fn push(
        &mut self,
        code: ProblemCode,
        severity: Severity,
        node: Option<&str>,
        edge: Option<usize>,
        field: Option<&str>,
        message: String,
    ) {
        self.0.push(FlowProblem {
            code,
            severity,
            node: node.map(str::to_string),
            edge,
            field: field.map(str::to_string),
            message,
        });
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// Whether `url` looks like `http(s)://host[...]` (templates allowed after
/// the host).
pub fn valid_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let Some(rest) = rest else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    let (name, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (host, None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().is_err() {
            return false;
        }
    }
    !name.is_empty()
        && !url.chars().any(char::is_whitespace)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'))
}

/// Check `flow`, returning every problem found (empty when it is fine).
pub fn validate(flow: &Flow) -> Vec<FlowProblem> {
    let mut p = Problems(Vec::new());
    if flow.version != FLOW_VERSION {
        p.push(
            ProblemCode::UnsupportedVersion,
            Severity::Error,
            None,
            None,
            Some("version"),
            format!(
                "flow format version {} is not supported (this engine reads version {FLOW_VERSION})",
                flow.version
            ),
        );
    }
    for (field, v) in [("id", &flow.id), ("name", &flow.name)] {
        if v.trim().is_empty() {
            p.push(
                ProblemCode::MissingField,
                Severity::Error,
                None,
                None,
                Some(field),
                format!("the flow's `{field}` is empty"),
            );
        }
    }

    // Node ids.
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, n) in flow.nodes.iter().enumerate() {
        let id = n.id();
        if id.trim().is_empty() {
            p.push(
                ProblemCode::MissingField,
                Severity::Error,
                None,
                None,
                Some("id"),
                format!("node #{i} ({}) has an empty `id`", n.node_type().as_str()),
            );
            continue;
        }
        if index.insert(id, i).is_some() {
            p.node(
                ProblemCode::DuplicateId,
                id,
                Some("id"),
                format!("two nodes have the id `{id}`"),
            );
        }
    }
    let mut edge_ids = HashSet::new();
    for (ei, e) in flow.edges.iter().enumerate() {
        if let Some(id) = &e.id {
            if !edge_ids.insert(id.as_str()) {
                p.edge(
                    ProblemCode::DuplicateId,
                    ei,
                    Some("id"),
                    format!("two edges have the id `{id}`"),
                );
            }
        }
    }
    let mut intents = HashSet::new();
    for (ii, intent) in flow.intents.iter().enumerate() {
        if intent.name.trim().is_empty() {
            p.push(
                ProblemCode::MissingField,
                Severity::Error,
                None,
                None,
                Some("intents.name"),
                format!("intent #{ii} has an empty name"),
            );
        } else if !intents.insert(intent.name.as_str()) {
            p.push(
                ProblemCode::DuplicateId,
                Severity::Error,
                None,
                None,
                Some("intents.name"),
                format!("two intents are named `{}`", intent.name),
            );
        }
    }

    let start = index.get(flow.start.as_str()).copied();
    if start.is_none() {
        p.push(
            ProblemCode::UnknownNode,
            Severity::Error,
            None,
            None,
            Some("start"),
            format!("`start` names node `{}`, which does not exist", flow.start),
        );
    }

    // Edges: endpoints, labels, ambiguity.
    let mut adj: Vec<Vec<usize>> = vec![Vec::new(); flow.nodes.len()];
    let mut labels: Vec<Vec<(Outcome, usize)>> = vec![Vec::new(); flow.nodes.len()];
    for (ei, e) in flow.edges.iter().enumerate() {
        let from = index.get(e.from.as_str()).copied();
        let to = index.get(e.to.as_str()).copied();
        if from.is_none() {
            p.edge(
                ProblemCode::UnknownNode,
                ei,
                Some("from"),
                format!(
                    "edge `{}` leaves node `{}`, which does not exist",
                    e.name(),
                    e.from
                ),
            );
        }
        if to.is_none() {
            p.edge(
                ProblemCode::UnknownNode,
                ei,
                Some("to"),
                format!(
                    "edge `{}` goes to node `{}`, which does not exist",
                    e.name(),
                    e.to
                ),
            );
        }
        let Some(f) = from else { continue };
        let ty = flow.nodes[f].node_type();
        if ty.is_terminal() {
            p.edge(
                ProblemCode::EdgeFromTerminal,
                ei,
                None,
                format!(
                    "edge `{}` leaves `{}`, a {} node, which ends the flow",
                    e.name(),
                    e.from,
                    ty.as_str()
                ),
            );
            continue;
        }
        let outcome = Outcome::parse(e.on.as_deref());
        let outcome = match outcome {
            Some(o) if o.allowed_for(ty) => o,
            _ => {
                let label = e.on.as_deref().unwrap_or("(none)");
                let expected = match ty {
                    NodeType::Say => "no label".to_string(),
                    NodeType::Branch => "intent:NAME, var:NAME=VALUE, var:NAME>=N, sentiment:negative|neutral|positive or default".to_string(),
                    NodeType::Llm | NodeType::Tool => "ok or error".to_string(),
                    _ => Outcome::required_for(ty).join(" or "),
                };
                p.edge(
                    ProblemCode::BadOutcome,
                    ei,
                    Some("on"),
                    format!(
                        "edge `{}` from {} node `{}` has label `{label}`; expected {expected}",
                        e.name(),
                        ty.as_str(),
                        e.from
                    ),
                );
                continue;
            }
        };
        if let Outcome::Intent(name) = &outcome {
            if !intents.contains(name.as_str()) {
                p.edge(
                    ProblemCode::UnknownIntent,
                    ei,
                    Some("on"),
                    format!(
                        "edge `{}` branches on intent `{name}`, which is not declared in `intents`",
                        e.name()
                    ),
                );
            }
        }
        if let Some((_, first)) = labels[f].iter().find(|(o, _)| *o == outcome) {
            p.edge(
                ProblemCode::AmbiguousEdge,
                ei,
                Some("on"),
                format!(
                    "edges `{}` and `{}` both leave `{}` on `{}`",
                    flow.edges[*first].name(),
                    e.name(),
                    e.from,
                    e.on.as_deref().unwrap_or("(none)")
                ),
            );
        }
        labels[f].push((outcome, ei));
        if let Some(t) = to {
            adj[f].push(t);
        }
    }

    // Dead ends: required outcomes without an edge.
    for (i, n) in flow.nodes.iter().enumerate() {
        let ty = n.node_type();
        for req in Outcome::required_for(ty) {
            let want = Outcome::parse(if req.is_empty() { None } else { Some(req) });
            if !labels[i].iter().any(|(o, _)| Some(o) == want.as_ref()) {
                let what = if req.is_empty() {
                    "an outgoing edge".to_string()
                } else {
                    format!("an `{req}` edge")
                };
                p.node(
                    ProblemCode::DeadEnd,
                    n.id(),
                    None,
                    format!(
                        "{} node `{}` has no {what}; only transfer and hangup nodes may end a flow",
                        ty.as_str(),
                        n.id()
                    ),
                );
            }
        }
    }

    // Reachability.
    if let Some(s) = start {
        let mut seen = vec![false; flow.nodes.len()];
        let mut stack = vec![s];
        seen[s] = true;
        while let Some(i) = stack.pop() {
            for &t in &adj[i] {
                if !seen[t] {
                    seen[t] = true;
                    stack.push(t);
                }
            }
        }
        for (i, n) in flow.nodes.iter().enumerate() {
            if !seen[i] && index.get(n.id()) == Some(&i) {
                p.node(
                    ProblemCode::UnreachableNode,
                    n.id(),
                    None,
                    format!("node `{}` cannot be reached from `start`", n.id()),
                );
            }
        }
        // Acting before the caller has said anything.
        let mut seen = vec![false; flow.nodes.len()];
        let mut stack = vec![s];
        seen[s] = true;
        while let Some(i) = stack.pop() {
            let ty = flow.nodes[i].node_type();
            if ty.waits_for_input() {
                continue;
            }
            if !matches!(ty, NodeType::Say | NodeType::Branch) {
                p.node(
                    ProblemCode::ActsBeforeInput,
                    flow.nodes[i].id(),
                    None,
                    format!(
                        "{} node `{}` can run before the caller has said anything; the greeting must be say nodes ending at an ask",
                        ty.as_str(),
                        flow.nodes[i].id()
                    ),
                );
                continue;
            }
            for &t in &adj[i] {
                if !seen[t] {
                    seen[t] = true;
                    stack.push(t);
                }
            }
        }
    }

    // Loops that never wait: cycles among nodes that do not wait for input.
    for scc in cycles_without_input(flow, &adj) {
        let ids: Vec<&str> = scc.iter().map(|&i| flow.nodes[i].id()).collect();
        p.node(
            ProblemCode::LoopWithoutInput,
            ids[0],
            None,
            format!(
                "nodes {} form a loop that never waits for the caller",
                ids.iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
        );
    }

    // Fields.
    for n in &flow.nodes {
        check_fields(n, &mut p);
    }

    // Variables nothing sets.
    let mut known: BTreeSet<&str> = BUILTIN_VARIABLES.iter().copied().collect();
    known.extend(flow.variables.keys().map(String::as_str));
    for n in &flow.nodes {
        known.extend(n.sets_variables());
    }
    // Every collected answer also gets a spoken form, `NAME_spoken`.
    let spoken: Vec<String> = flow
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::Ask(a) => Some(format!("{}_spoken", a.variable)),
            _ => None,
        })
        .collect();
    known.extend(spoken.iter().map(String::as_str));
    for n in &flow.nodes {
        for (field, t) in n.templates() {
            for v in template::variables(t) {
                if !known.contains(v) {
                    p.push(
                        ProblemCode::UndefinedVariable,
                        Severity::Warning,
                        Some(n.id()),
                        None,
                        Some(field),
                        format!(
                            "`{field}` of node `{}` uses {{{{{v}}}}}, which no node sets",
                            n.id()
                        ),
                    );
                }
            }
        }
    }
    for (ei, e) in flow.edges.iter().enumerate() {
        if let Some(Outcome::Var { name, .. }) = Outcome::parse(e.on.as_deref()) {
            if !known.contains(name.as_str()) {
                p.push(
                    ProblemCode::UndefinedVariable,
                    Severity::Warning,
                    None,
                    Some(ei),
                    Some("on"),
                    format!(
                        "edge `{}` branches on variable `{name}`, which no node sets",
                        e.name()
                    ),
                );
            }
        }
    }
    p.0
}

fn check_fields(n: &Node, p: &mut Problems) {
    let id = n.id();
    let required = |field: &str, v: &str, p: &mut Problems| {
        if v.trim().is_empty() {
            p.node(
                ProblemCode::MissingField,
                id,
                Some(field),
                format!(
                    "{} node `{id}` needs a non-empty `{field}`",
                    n.node_type().as_str()
                ),
            );
        }
    };
    let timeout = |ms: u32, p: &mut Problems| {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            p.node(
                ProblemCode::BadTimeout,
                id,
                Some("timeout_ms"),
                format!("node `{id}` has timeout_ms {ms}; it must be 1..={MAX_TIMEOUT_MS}"),
            );
        }
    };
    match n {
        Node::Say(s) => required("text", &s.text, p),
        Node::Ask(a) => {
            required("prompt", &a.prompt, p);
            required("variable", &a.variable, p);
            if !a.variable.is_empty() && !valid_name(&a.variable) {
                p.node(
                    ProblemCode::BadValue,
                    id,
                    Some("variable"),
                    format!(
                        "variable name `{}` of node `{id}` may only use letters, digits, `_`, `.` and `-`",
                        a.variable
                    ),
                );
            }
            if ValidationKind::parse(&a.validate).is_none() {
                p.node(
                    ProblemCode::UnknownValidation,
                    id,
                    Some("validate"),
                    format!(
                        "node `{id}` validates `{}`; expected one of {}",
                        a.validate,
                        ValidationKind::NAMES.join(", ")
                    ),
                );
            }
            if a.max_attempts == 0 {
                p.node(
                    ProblemCode::BadValue,
                    id,
                    Some("max_attempts"),
                    format!("node `{id}` has max_attempts 0; it must be at least 1"),
                );
            }
            if let (Some(lo), Some(hi)) = (a.min_length, a.max_length) {
                if lo > hi {
                    p.node(
                        ProblemCode::BadRange,
                        id,
                        Some("min_length"),
                        format!("node `{id}` has min_length {lo} above max_length {hi}"),
                    );
                }
            }
            if a.max_length == Some(0) {
                p.node(
                    ProblemCode::BadValue,
                    id,
                    Some("max_length"),
                    format!("node `{id}` has max_length 0; nothing could be accepted"),
                );
            }
            if let (Some(lo), Some(hi)) = (a.min, a.max) {
                if lo > hi {
                    p.node(
                        ProblemCode::BadRange,
                        id,
                        Some("min"),
                        format!("node `{id}` has min {lo} above max {hi}"),
                    );
                }
            }
        }
        Node::Branch(_) => {}
        Node::KbAnswer(k) => {
            required("query", &k.query, p);
            required("answer", &k.answer, p);
            if !(-1.0..=1.0).contains(&k.min_score) {
                p.node(
                    ProblemCode::BadValue,
                    id,
                    Some("min_score"),
                    format!(
                        "node `{id}` has min_score {}; it must be -1..=1",
                        k.min_score
                    ),
                );
            }
        }
        Node::Llm(l) => {
            required("instructions", &l.instructions, p);
            timeout(l.timeout_ms, p);
            if l.max_tokens == 0 {
                p.node(
                    ProblemCode::BadValue,
                    id,
                    Some("max_tokens"),
                    format!("node `{id}` has max_tokens 0"),
                );
            }
            if l.use_kb && l.kb_top_k == 0 {
                p.node(
                    ProblemCode::BadValue,
                    id,
                    Some("kb_top_k"),
                    format!("node `{id}` uses the knowledge base with kb_top_k 0"),
                );
            }
            if let Some(v) = &l.save_as {
                if !valid_name(v) {
                    p.node(
                        ProblemCode::BadValue,
                        id,
                        Some("save_as"),
                        format!("node `{id}` saves to `{v}`, not a valid variable name"),
                    );
                }
            }
        }
        Node::Tool(t) => {
            required("tool", &t.tool, p);
            required("url", &t.url, p);
            timeout(t.timeout_ms, p);
            if !t.url.trim().is_empty() && !valid_url(&t.url) {
                p.node(
                    ProblemCode::InvalidUrl,
                    id,
                    Some("url"),
                    format!(
                        "node `{id}` has url `{}`; expected http(s)://host/...",
                        t.url
                    ),
                );
            }
            if !t.arguments.is_object() {
                p.node(
                    ProblemCode::BadValue,
                    id,
                    Some("arguments"),
                    format!("node `{id}`: `arguments` must be a JSON object"),
                );
            }
            for (var, ptr) in &t.save {
                if !valid_name(var) {
                    p.node(
                        ProblemCode::BadValue,
                        id,
                        Some("save"),
                        format!("node `{id}` saves to `{var}`, not a valid variable name"),
                    );
                }
                if !ptr.is_empty() && !ptr.starts_with('/') {
                    p.node(
                        ProblemCode::BadValue,
                        id,
                        Some("save"),
                        format!(
                            "node `{id}` saves `{var}` from `{ptr}`; a JSON pointer starts with `/`"
                        ),
                    );
                }
            }
        }
        Node::Transfer(t) => required("target", &t.target, p),
        Node::Hangup(_) => {}
    }
}

/// Strongly connected components of the graph restricted to nodes that do
/// not wait for input, keeping those that contain a cycle.
fn cycles_without_input(flow: &Flow, adj: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = flow.nodes.len();
    let active: Vec<bool> = flow
        .nodes
        .iter()
        .map(|x| !x.node_type().waits_for_input())
        .collect();
    // Iterative Tarjan.
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0usize; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut next = 0usize;
    let mut out = Vec::new();
    for root in 0..n {
        if !active[root] || index[root] != usize::MAX {
            continue;
        }
        let mut call: Vec<(usize, usize)> = vec![(root, 0)];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        while let Some(&mut (v, ref mut pos)) = call.last_mut() {
            if let Some(&w) = adj[v].get(*pos) {
                *pos += 1;
                if !active[w] {
                    continue;
                }
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    call.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                call.pop();
                if let Some(&(parent, _)) = call.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    let cyclic = comp.len() > 1 || adj[v].contains(&v);
                    if cyclic {
                        comp.sort_unstable();
                        out.push(comp);
                    }
                }
            }
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::brain::flow::model::FlowError;

    fn base() -> Value {
        json!({
            "id": "t", "name": "T", "start": "hello",
            "intents": [{"name": "billing", "examples": ["my bill"]}],
            "nodes": [
                {"id": "hello", "type": "say", "text": "Hi"},
                {"id": "q", "type": "ask", "prompt": "Name?", "variable": "name"},
                {"id": "b", "type": "branch"},
                {"id": "bye", "type": "hangup", "text": "Bye {{name}}"}
            ],
            "edges": [
                {"from": "hello", "to": "q"},
                {"from": "q", "to": "b", "on": "ok"},
                {"from": "q", "to": "bye", "on": "gave_up"},
                {"from": "b", "to": "bye", "on": "default"}
            ]
        })
    }

    fn check(edit: impl FnOnce(&mut Value)) -> Vec<FlowProblem> {
        let mut v = base();
        edit(&mut v);
        let flow: Flow = serde_json::from_value(v).expect("parses");
        validate(&flow)
    }

    fn node<'a>(v: &'a mut Value, id: &str) -> &'a mut Value {
        v["nodes"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .find(|n| n["id"] == id)
            .unwrap()
    }

    fn push_node(v: &mut Value, n: Value) {
        v["nodes"].as_array_mut().unwrap().push(n);
    }

    fn push_edge(v: &mut Value, e: Value) {
        v["edges"].as_array_mut().unwrap().push(e);
    }

    /// Insert a node between `b` (on `default`) and `bye`.
    fn between(v: &mut Value, n: Value, out: &[&str]) {
        let id = n["id"].as_str().unwrap().to_string();
        push_node(v, n);
        v["edges"][3]["to"] = json!(id);
        for on in out {
            if on.is_empty() {
                push_edge(v, json!({"from": id, "to": "bye"}));
            } else {
                push_edge(v, json!({"from": id, "to": "bye", "on": on}));
            }
        }
    }

    fn has(ps: &[FlowProblem], code: ProblemCode) -> &FlowProblem {
        ps.iter()
            .find(|p| p.code == code)
            .unwrap_or_else(|| panic!("no {code:?} in {ps:#?}"))
    }

    #[test]
    fn base_flow_is_clean() {
        assert_eq!(check(|_| {}), vec![]);
    }

    #[test]
    fn unsupported_version() {
        let ps = check(|v| v["version"] = json!(2));
        assert_eq!(
            has(&ps, ProblemCode::UnsupportedVersion).field.as_deref(),
            Some("version")
        );
    }

    #[test]
    fn duplicate_node_edge_and_intent_ids() {
        let ps = check(|v| push_node(v, json!({"id": "q", "type": "say", "text": "again"})));
        let p = has(&ps, ProblemCode::DuplicateId);
        assert_eq!(p.node.as_deref(), Some("q"));
        let ps = check(|v| {
            v["edges"][0]["id"] = json!("e");
            v["edges"][1]["id"] = json!("e");
        });
        assert_eq!(has(&ps, ProblemCode::DuplicateId).edge, Some(1));
        let ps = check(|v| {
            v["intents"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "billing", "examples": []}))
        });
        assert!(has(&ps, ProblemCode::DuplicateId)
            .message
            .contains("billing"));
    }

    #[test]
    fn unknown_start_and_edge_endpoints() {
        let ps = check(|v| v["start"] = json!("nope"));
        let p = has(&ps, ProblemCode::UnknownNode);
        assert_eq!(p.field.as_deref(), Some("start"));
        assert!(p.message.contains("nope"));
        let ps = check(|v| v["edges"][3]["to"] = json!("ghost"));
        let p = has(&ps, ProblemCode::UnknownNode);
        assert_eq!((p.edge, p.field.as_deref()), (Some(3), Some("to")));
        let ps = check(|v| push_edge(v, json!({"from": "phantom", "to": "bye"})));
        let p = has(&ps, ProblemCode::UnknownNode);
        assert_eq!((p.edge, p.field.as_deref()), (Some(4), Some("from")));
    }

    #[test]
    fn unreachable_node() {
        let ps = check(|v| push_node(v, json!({"id": "island", "type": "hangup"})));
        assert_eq!(
            has(&ps, ProblemCode::UnreachableNode).node.as_deref(),
            Some("island")
        );
    }

    #[test]
    fn dead_ends_for_each_node_type() {
        // say without an edge
        let ps = check(|v| {
            between(v, json!({"id": "s", "type": "say", "text": "x"}), &[]);
        });
        assert_eq!(has(&ps, ProblemCode::DeadEnd).node.as_deref(), Some("s"));
        // ask without gave_up
        let ps = check(|v| {
            v["edges"].as_array_mut().unwrap().remove(2);
        });
        let p = has(&ps, ProblemCode::DeadEnd);
        assert!(p.message.contains("gave_up"), "{}", p.message);
        // branch without default
        let ps = check(|v| v["edges"][3]["on"] = json!("intent:billing"));
        assert!(has(&ps, ProblemCode::DeadEnd).message.contains("default"));
        // kb_answer without not_found, tool/llm without ok
        let ps = check(|v| between(v, json!({"id": "k", "type": "kb_answer"}), &["found"]));
        assert!(has(&ps, ProblemCode::DeadEnd).message.contains("not_found"));
        let ps = check(|v| {
            between(
                v,
                json!({"id": "t", "type": "tool", "tool": "x", "url": "https://x.example"}),
                &["error"],
            )
        });
        assert_eq!(has(&ps, ProblemCode::DeadEnd).node.as_deref(), Some("t"));
        let ps = check(|v| {
            between(
                v,
                json!({"id": "l", "type": "llm", "instructions": "Be nice."}),
                &[],
            )
        });
        assert_eq!(has(&ps, ProblemCode::DeadEnd).node.as_deref(), Some("l"));
    }

    #[test]
    fn edge_from_terminal() {
        let ps = check(|v| push_edge(v, json!({"from": "bye", "to": "q"})));
        assert_eq!(has(&ps, ProblemCode::EdgeFromTerminal).edge, Some(4));
    }

    #[test]
    fn bad_outcome_labels() {
        for (i, label) in [
            (1, json!("yes")),
            (0, json!("ok")),
            (3, json!("sentiment:angry")),
            (3, json!("var:=x")),
            (3, json!("var:n>ten")),
        ] {
            let ps = check(|v| v["edges"][i]["on"] = label.clone());
            let p = has(&ps, ProblemCode::BadOutcome);
            assert_eq!(p.edge, Some(i), "{label}");
            assert_eq!(p.field.as_deref(), Some("on"));
        }
    }

    #[test]
    fn ambiguous_edges() {
        let ps = check(|v| push_edge(v, json!({"from": "q", "to": "hello", "on": "ok"})));
        let p = has(&ps, ProblemCode::AmbiguousEdge);
        assert_eq!(p.edge, Some(4));
        assert!(p.message.contains("q"));
    }

    #[test]
    fn loop_without_input() {
        let ps = check(|v| {
            push_node(v, json!({"id": "s1", "type": "say", "text": "one"}));
            push_node(v, json!({"id": "s2", "type": "say", "text": "two"}));
            v["edges"][3]["to"] = json!("s1");
            push_edge(v, json!({"from": "s1", "to": "s2"}));
            push_edge(v, json!({"from": "s2", "to": "b"}));
            push_edge(v, json!({"from": "b", "to": "bye", "on": "var:name=x"}));
        });
        let p = has(&ps, ProblemCode::LoopWithoutInput);
        assert!(p.message.contains("s1") && p.message.contains("s2") && p.message.contains("`b`"));
        // A loop through an ask is fine.
        let ps = check(|v| {
            v["edges"][3]["to"] = json!("q");
        });
        assert!(
            ps.iter().all(|p| p.code != ProblemCode::LoopWithoutInput),
            "{ps:#?}"
        );
    }

    #[test]
    fn missing_fields() {
        let ps = check(|v| node(v, "q")["prompt"] = json!("  "));
        let p = has(&ps, ProblemCode::MissingField);
        assert_eq!(
            (p.node.as_deref(), p.field.as_deref()),
            (Some("q"), Some("prompt"))
        );
        let ps = check(|v| node(v, "q")["variable"] = json!(""));
        assert_eq!(
            has(&ps, ProblemCode::MissingField).field.as_deref(),
            Some("variable")
        );
        let ps = check(|v| node(v, "hello")["text"] = json!(""));
        assert_eq!(
            has(&ps, ProblemCode::MissingField).node.as_deref(),
            Some("hello")
        );
        let ps = check(|v| v["name"] = json!(""));
        assert_eq!(
            has(&ps, ProblemCode::MissingField).field.as_deref(),
            Some("name")
        );
        let ps = check(|v| {
            between(v, json!({"id": "x", "type": "transfer", "target": ""}), &[]);
            v["edges"].as_array_mut().unwrap().pop();
        });
        assert_eq!(
            has(&ps, ProblemCode::MissingField).field.as_deref(),
            Some("target")
        );
        let ps = check(|v| {
            between(
                v,
                json!({"id": "t", "type": "tool", "tool": "", "url": "https://a.example"}),
                &["ok"],
            )
        });
        assert_eq!(
            has(&ps, ProblemCode::MissingField).field.as_deref(),
            Some("tool")
        );
    }

    #[test]
    fn bad_values() {
        let ps = check(|v| node(v, "q")["max_attempts"] = json!(0));
        assert_eq!(
            has(&ps, ProblemCode::BadValue).field.as_deref(),
            Some("max_attempts")
        );
        let ps = check(|v| node(v, "q")["variable"] = json!("my var"));
        assert_eq!(
            has(&ps, ProblemCode::BadValue).field.as_deref(),
            Some("variable")
        );
        let ps = check(|v| {
            between(
                v,
                json!({"id": "k", "type": "kb_answer", "min_score": 2.0}),
                &["found", "not_found"],
            )
        });
        assert_eq!(
            has(&ps, ProblemCode::BadValue).field.as_deref(),
            Some("min_score")
        );
        let ps = check(|v| {
            between(
                v,
                json!({"id": "t", "type": "tool", "tool": "x", "url": "https://a.example",
                       "arguments": [1], "save": {"slot": "slot"}}),
                &["ok"],
            )
        });
        let fields: Vec<_> = ps
            .iter()
            .filter(|p| p.code == ProblemCode::BadValue)
            .filter_map(|p| p.field.as_deref())
            .collect();
        assert_eq!(fields, vec!["arguments", "save"]);
        let ps = check(|v| {
            between(
                v,
                json!({"id": "l", "type": "llm", "instructions": "x", "max_tokens": 0}),
                &["ok"],
            )
        });
        assert_eq!(
            has(&ps, ProblemCode::BadValue).field.as_deref(),
            Some("max_tokens")
        );
    }

    #[test]
    fn bad_timeouts() {
        for ms in [0, 30_001] {
            let ps = check(|v| {
                between(
                    v,
                    json!({"id": "t", "type": "tool", "tool": "x", "url": "https://a.example", "timeout_ms": ms}),
                    &["ok"],
                )
            });
            assert_eq!(
                has(&ps, ProblemCode::BadTimeout).field.as_deref(),
                Some("timeout_ms")
            );
            let ps = check(|v| {
                between(
                    v,
                    json!({"id": "l", "type": "llm", "instructions": "x", "timeout_ms": ms}),
                    &["ok"],
                )
            });
            assert_eq!(has(&ps, ProblemCode::BadTimeout).node.as_deref(), Some("l"));
        }
    }

    #[test]
    fn invalid_urls() {
        for url in [
            "ftp://x.example",
            "https://",
            "not a url",
            "http://exa mple.com/x",
            "https://host:99999/",
        ] {
            let ps = check(|v| {
                between(
                    v,
                    json!({"id": "t", "type": "tool", "tool": "x", "url": url}),
                    &["ok"],
                )
            });
            assert_eq!(
                has(&ps, ProblemCode::InvalidUrl).node.as_deref(),
                Some("t"),
                "{url}"
            );
        }
        for url in [
            "https://api.example.com/v1/{{id}}",
            "http://10.0.0.1:8080/hook",
            "https://[::1]:443/x",
        ] {
            assert!(valid_url(url), "{url}");
        }
    }

    #[test]
    fn bad_ranges() {
        let ps = check(|v| {
            let q = node(v, "q");
            q["validate"] = json!("digits");
            q["min_length"] = json!(6);
            q["max_length"] = json!(4);
        });
        assert_eq!(
            has(&ps, ProblemCode::BadRange).field.as_deref(),
            Some("min_length")
        );
        let ps = check(|v| {
            let q = node(v, "q");
            q["validate"] = json!("number");
            q["min"] = json!(10);
            q["max"] = json!(1);
        });
        assert_eq!(
            has(&ps, ProblemCode::BadRange).field.as_deref(),
            Some("min")
        );
    }

    #[test]
    fn unknown_validation_kind() {
        let ps = check(|v| node(v, "q")["validate"] = json!("email"));
        let p = has(&ps, ProblemCode::UnknownValidation);
        assert!(p.message.contains("email") && p.message.contains("date_time"));
    }

    #[test]
    fn branch_on_undeclared_intent() {
        let ps = check(|v| push_edge(v, json!({"from": "b", "to": "bye", "on": "intent:refund"})));
        let p = has(&ps, ProblemCode::UnknownIntent);
        assert_eq!(p.edge, Some(4));
        assert!(p.message.contains("refund"));
        let ps = check(|v| push_edge(v, json!({"from": "b", "to": "bye", "on": "intent:billing"})));
        assert!(ps.is_empty(), "{ps:#?}");
    }

    #[test]
    fn undefined_variables_are_warnings() {
        let ps = check(|v| {
            node(v, "hello")["text"] = json!("Hi {{first_name}}, {{name_spoken}} {{today}}")
        });
        assert_eq!(ps.len(), 1, "{ps:#?}");
        let p = &ps[0];
        assert_eq!(p.code, ProblemCode::UndefinedVariable);
        assert_eq!(p.severity, Severity::Warning);
        assert!(p.message.contains("first_name"));
        let ps = check(|v| push_edge(v, json!({"from": "b", "to": "bye", "on": "var:colour=red"})));
        assert_eq!(has(&ps, ProblemCode::UndefinedVariable).edge, Some(4));
        // Warnings alone do not stop a flow from loading.
        let mut v = base();
        node(&mut v, "hello")["text"] = json!("Hi {{first_name}}");
        let valid = Flow::parse(&v.to_string()).expect("warnings only");
        assert_eq!(valid.warnings().len(), 1);
    }

    #[test]
    fn acting_before_first_input() {
        let ps = check(|v| {
            push_node(
                v,
                json!({"id": "t", "type": "tool", "tool": "x", "url": "https://a.example"}),
            );
            v["start"] = json!("t");
            push_edge(v, json!({"from": "t", "to": "hello", "on": "ok"}));
        });
        assert_eq!(
            has(&ps, ProblemCode::ActsBeforeInput).node.as_deref(),
            Some("t")
        );
        let ps = check(|v| v["edges"][0]["to"] = json!("bye"));
        assert_eq!(
            has(&ps, ProblemCode::ActsBeforeInput).node.as_deref(),
            Some("bye")
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let ps = check(|v| {
            v["start"] = json!("nowhere");
            node(v, "q")["max_attempts"] = json!(0);
            push_edge(v, json!({"from": "bye", "to": "q"}));
        });
        let codes: BTreeSet<_> = ps.iter().map(|p| format!("{:?}", p.code)).collect();
        assert_eq!(codes.len(), 3, "{codes:?}");
        let e = Flow::parse(&{
            let mut v = base();
            v["start"] = json!("nowhere");
            v.to_string()
        })
        .unwrap_err();
        match e {
            FlowError::Invalid { problems } => assert!(!problems.is_empty()),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn parse_errors_name_the_path() {
        let path = |edit: &dyn Fn(&mut Value)| {
            let mut v = base();
            edit(&mut v);
            match Flow::parse(&v.to_string()) {
                Err(FlowError::Parse { path, message, .. }) => (path, message),
                other => panic!("{other:?}"),
            }
        };
        let (p, m) = path(&|v| node(v, "q")["max_attempts"] = json!("three"));
        assert_eq!(p, "nodes[1].max_attempts", "{m}");
        let (p, m) = path(&|v| node(v, "q")["colour"] = json!(1));
        assert_eq!(p, "nodes[1].colour", "{m}");
        assert!(m.contains("unknown field"), "{m}");
        let (p, m) = path(&|v| node(v, "b")["type"] = json!("jump"));
        assert_eq!(p, "nodes[2].type");
        assert!(m.contains("jump"));
        let (p, _) = path(&|v| v["edges"][2]["label"] = json!("x"));
        assert_eq!(p, "edges[2].label");
        let (p, _) = path(&|v| {
            v.as_object_mut().unwrap().remove("start");
        });
        assert_eq!(p, ".");
        assert!(matches!(
            Flow::parse("{ not json"),
            Err(FlowError::Parse { .. })
        ));
        let (p, _) = path(&|v| v["intents"][0]["examples"] = json!("one"));
        assert_eq!(p, "intents[0].examples");
    }
}
