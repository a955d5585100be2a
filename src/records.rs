//! Finished calls as JSON: the conversation as the caller heard it, the
//! variables and actions, and the insights (outcome, summary, intents,
//! sentiment, the brain's trace). The control API stores this document with
//! the call (`calls.insights`).

use serde_json::{json, Value};
use vocelio_pipelines::brain::insights::Outcome;
use vocelio_pipelines::brain::{Action, CallInsights, Conversation, Speaker};

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
    fn a_finished_call_as_json() {
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
        let r = call_record("call-1", &c, &insights);
        assert_eq!(r["call_id"], "call-1");
        assert_eq!(r["insights"]["outcome"]["type"], "transferred");
        assert_eq!(r["insights"]["intents"][0], "human");
        assert_eq!(r["turns"][0]["speaker"], "caller");
        assert_eq!(r["actions"][0]["target"], "sip:desk@example.com");
    }
}
