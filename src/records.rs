//! Finished calls as JSON: the conversation as the caller heard it, the
//! variables and actions, and the insights (outcome, summary, intents,
//! sentiment, the brain's trace). The control API stores this document with
//! the call (`calls.insights`).

use serde_json::{json, Value};
use vocelio_control_api::chat::{action_json, insights_json};
use vocelio_pipelines::brain::{CallInsights, Conversation, Speaker};

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
    use vocelio_pipelines::brain::Action;
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
