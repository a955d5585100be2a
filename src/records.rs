//! Finished calls, stored with what the brain made of them.
//!
//! Until the control API's database lands, every call that ends is appended
//! as one JSON line to `storage.data_dir/calls.jsonl` and synced to disk
//! before the next: the conversation as the caller heard it, the variables
//! and actions, and the insights (outcome, summary, intents, sentiment, the
//! brain's trace). A crash loses at most the line being written, and a torn
//! last line is skipped by readers.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use vocelio_pipelines::brain::insights::Outcome;
use vocelio_pipelines::brain::{Action, CallInsights, Conversation, Speaker};

/// The append-only call log.
#[derive(Debug)]
pub struct CallLog {
    path: PathBuf,
    file: File,
}

impl CallLog {
    /// Open (or create) `dir/calls.jsonl`.
    pub fn open(dir: &Path) -> Result<CallLog> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the data folder {}", dir.display()))?;
        let path = dir.join("calls.jsonl");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening the call log {}", path.display()))?;
        Ok(CallLog { path, file })
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one record and sync it to disk.
    pub fn append(&mut self, record: &Value) -> Result<()> {
        let mut line = serde_json::to_vec(record).context("serialising a call record")?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("writing the call log {}", self.path.display()))
    }
}

/// An action as JSON.
pub fn action_json(a: &Action) -> Value {
    match a {
        Action::Transfer { target } => json!({"type": "transfer", "target": target}),
        Action::Hangup => json!({"type": "hangup"}),
        Action::SendDtmf { digits } => json!({"type": "send_dtmf", "digits": digits}),
        Action::SetVariable { name, value } => {
            json!({"type": "set_variable", "name": name, "value": value})
        }
        Action::Tool {
            name,
            arguments,
            ok,
        } => json!({"type": "tool", "name": name, "arguments": arguments, "ok": ok}),
        other => json!({"type": "other", "debug": format!("{other:?}")}),
    }
}

/// The insights as JSON.
pub fn insights_json(i: &CallInsights) -> Value {
    let outcome = match &i.outcome {
        Outcome::Completed => json!({"type": "completed"}),
        Outcome::Transferred { target } => json!({"type": "transferred", "target": target}),
        Outcome::CallerHungUp => json!({"type": "caller_hung_up"}),
        other => json!({"type": "other", "debug": format!("{other:?}")}),
    };
    json!({
        "outcome": outcome,
        "summary": i.summary,
        "intents": i.intents,
        "sentiment": i.sentiment,
        "sentiment_by_turn": i.sentiment_by_turn,
        "trace": i.trace.iter().map(|t| json!({"turn": t.turn, "node": t.node, "event": t.event})).collect::<Vec<_>>(),
    })
}

/// One finished call.
pub fn call_record(call_id: &str, conversation: &Conversation, insights: &CallInsights) -> Value {
    json!({
        "call_id": call_id,
        "agent": conversation.agent,
        "turns": conversation.turns.iter().map(|t| json!({
            "speaker": match t.speaker { Speaker::Caller => "caller", Speaker::Agent => "agent" },
            "text": t.text,
            "at_ms": t.at.as_millis(),
            "interrupted": t.interrupted,
        })).collect::<Vec<_>>(),
        "variables": conversation.variables.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
        "actions": conversation.actions.iter().map(action_json).collect::<Vec<_>>(),
        "insights": insights_json(insights),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vocelio_codecs::MediaTime;
    use vocelio_pipelines::brain::Turn;

    #[test]
    fn records_append_as_synced_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = CallLog::open(dir.path()).unwrap();
        let mut c = Conversation {
            call_id: "call-1".into(),
            agent: "support".into(),
            ..Default::default()
        };
        c.turns.push(Turn {
            speaker: Speaker::Caller,
            text: "I want to talk to a person".into(),
            at: MediaTime::ZERO,
            interrupted: false,
        });
        c.actions.push(Action::Transfer {
            target: "sip:desk@example.com".into(),
        });
        let insights = vocelio_pipelines::brain::insights::summarize(&c, &["human".into()], vec![]);
        log.append(&call_record("call-1", &c, &insights)).unwrap();
        log.append(&call_record("call-2", &c, &insights)).unwrap();
        drop(log);
        let text = std::fs::read_to_string(dir.path().join("calls.jsonl")).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["call_id"], "call-2");
        assert_eq!(lines[0]["insights"]["outcome"]["type"], "transferred");
        assert_eq!(lines[0]["insights"]["intents"][0], "human");
        assert_eq!(lines[0]["turns"][0]["speaker"], "caller");
        // Reopening appends rather than truncating.
        let mut log = CallLog::open(dir.path()).unwrap();
        log.append(&call_record("call-3", &c, &insights)).unwrap();
        let text = std::fs::read_to_string(dir.path().join("calls.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 3);
    }
}
