//! The campaign document (`campaigns.spec`): who is called by which agent,
//! when, how fast, how often, and what counts as a success.

use super::contacts::{normalize_e164, parse_timezone};
use super::schedule::{parse_hhmm, CallingWindow, Day};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An outbound campaign. Give either `agent` (every contact gets it) or
/// `variants` (an A/B test: contacts are split by weight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CampaignSpec {
    /// Name (1–200 characters).
    pub name: String,
    /// The agent that calls (by name), unless `variants` are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// A/B variants (2–10, names unique), instead of `agent`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<VariantSpec>,
    /// What counts as a conversion (the A/B metric). Default: the call was answered.
    #[serde(default)]
    pub conversion: Conversion,
    /// Calling hours.
    pub schedule: ScheduleSpec,
    /// Calls in progress at once, 1–500 (default 5).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: u32,
    /// Calls started per minute, 1–600 (default 30).
    #[serde(default = "default_pacing")]
    pub pacing_per_minute: u32,
    /// Retries after busy or no answer.
    #[serde(default)]
    pub retries: RetrySpec,
    /// Caller id (E.164).
    pub caller_id: String,
    /// Trunk to call out on (default: the engine's first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
}

fn default_concurrency() -> u32 {
    5
}

fn default_pacing() -> u32 {
    30
}

/// One arm of an A/B test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantSpec {
    /// Name, unique in the campaign (`[A-Za-z0-9_-]`, 1–64).
    pub name: String,
    /// The agent that calls.
    pub agent: String,
    /// Voice to record against these calls (the agent's own voice speaks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Greeting for this variant (kept with the campaign).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
    /// Relative share of contacts (> 0).
    pub weight: f64,
}

/// What counts as a conversion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Conversion {
    /// The call was answered.
    #[default]
    Answered,
    /// The call's outcome (`completed`, `transferred`, …) equals `value`.
    Outcome {
        /// The outcome.
        value: String,
    },
    /// The conversation set variable `name` to `value`.
    Variable {
        /// Variable name.
        name: String,
        /// Value.
        value: String,
    },
}

impl Conversion {
    /// Whether a finished call converted. `insights` is the call's insights
    /// JSON, whose `variables` are `[{"name", "value"}]` (as the engine's
    /// call records write them) or an object of name -> value.
    pub fn matches(&self, answered: bool, outcome: Option<&str>, insights: Option<&str>) -> bool {
        match self {
            Conversion::Answered => answered,
            Conversion::Outcome { value } => outcome == Some(value.as_str()),
            Conversion::Variable { name, value } => {
                let Some(doc) =
                    insights.and_then(|i| serde_json::from_str::<serde_json::Value>(i).ok())
                else {
                    return false;
                };
                let same = |v: &serde_json::Value| match v {
                    serde_json::Value::String(s) => s == value,
                    serde_json::Value::Null => false,
                    other => {
                        serde_json::from_str::<serde_json::Value>(value)
                            .ok()
                            .as_ref()
                            == Some(other)
                    }
                };
                match doc.get("variables") {
                    Some(serde_json::Value::Array(vars)) => vars.iter().any(|v| {
                        v.get("name").and_then(|n| n.as_str()) == Some(name.as_str())
                            && v.get("value").is_some_and(same)
                    }),
                    Some(serde_json::Value::Object(vars)) => vars.get(name).is_some_and(same),
                    _ => false,
                }
            }
        }
    }
}

/// Calling hours, in each contact's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// IANA time zone for contacts that have none (`Europe/London`).
    pub timezone: String,
    /// Days calls may be placed (default Monday to Friday).
    #[serde(default = "weekdays")]
    pub days: Vec<Day>,
    /// First call time, local `HH:MM` (default `09:00`).
    #[serde(default = "nine")]
    pub start: String,
    /// No calls from this local time on, `HH:MM` after `start` (default `17:00`).
    #[serde(default = "five")]
    pub end: String,
}

fn weekdays() -> Vec<Day> {
    vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri]
}

fn nine() -> String {
    "09:00".into()
}

fn five() -> String {
    "17:00".into()
}

/// Retries after busy, no answer or timeout: attempt `n + 1` comes
/// `backoff_s * multiplier^(n-1)` seconds after attempt `n` failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetrySpec {
    /// Attempts in all, 1–10 (default 3).
    pub max_attempts: u32,
    /// First wait, seconds, 10–604800 (default 300).
    pub backoff_s: u64,
    /// Growth of the wait per attempt, 1–10 (default 2).
    pub multiplier: f64,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            max_attempts: 3,
            backoff_s: 300,
            multiplier: 2.0,
        }
    }
}

impl RetrySpec {
    /// The wait after failed attempt number `attempts` (1-based), ms.
    pub fn delay_ms(&self, attempts: u32) -> i64 {
        let exp = attempts.saturating_sub(1).min(60) as i32;
        let ms = self.backoff_s as f64 * 1000.0 * self.multiplier.powi(exp);
        // At most 30 days: beyond that a retry means nothing.
        ms.clamp(0.0, 30.0 * 86_400_000.0) as i64
    }
}

/// A variant as the dialer uses it (a single-agent campaign is one arm
/// named `default`).
#[derive(Debug, Clone, PartialEq)]
pub struct Arm {
    /// Variant name.
    pub name: String,
    /// Agent name.
    pub agent: String,
    /// Voice recorded against its calls.
    pub voice: Option<String>,
    /// Weight.
    pub weight: f64,
    /// Where the agent is named in the document (`agent`, `variants[1].agent`).
    pub agent_field: String,
}

/// A checked campaign document, ready for the dialer.
#[derive(Debug, Clone, PartialEq)]
pub struct Compiled {
    /// Zone for contacts without one.
    pub timezone: Tz,
    /// Calling hours.
    pub window: CallingWindow,
    /// The variants.
    pub arms: Vec<Arm>,
}

/// What is wrong with a campaign document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct SpecError {
    /// JSON path of the field (`variants[1].weight`).
    pub field: String,
    /// Why.
    pub reason: String,
}

impl From<SpecError> for crate::error::ApiError {
    fn from(e: SpecError) -> Self {
        crate::error::ApiError::validation(e.field, e.reason)
    }
}

fn err(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        reason: reason.into(),
    }
}

fn simple_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn optional_text(field: String, v: &Option<String>, max: usize) -> Result<(), SpecError> {
    match v {
        Some(s) if s.trim().is_empty() || s.chars().count() > max => Err(err(
            field,
            format!("must be 1 to {max} characters when given"),
        )),
        _ => Ok(()),
    }
}

impl CampaignSpec {
    /// The document with its numbers in E.164 and its name trimmed, checked
    /// (except that the agents exist: that needs the database).
    pub fn normalized(mut self) -> Result<(CampaignSpec, Compiled), SpecError> {
        self.name = self.name.trim().to_string();
        self.caller_id =
            normalize_e164(&self.caller_id).map_err(|e| err("caller_id", e.to_string()))?;
        let compiled = self.compile()?;
        Ok((self, compiled))
    }

    /// Check the document and prepare it for the dialer.
    pub fn compile(&self) -> Result<Compiled, SpecError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(err("name", "must be 1 to 200 characters"));
        }
        let arms = match (&self.agent, self.variants.is_empty()) {
            (Some(_), false) => {
                return Err(err("variants", "give either agent or variants, not both"))
            }
            (None, true) => {
                return Err(err(
                    "agent",
                    "give the agent that calls, or variants for an A/B test",
                ))
            }
            (Some(agent), true) => {
                if !simple_name(agent) {
                    return Err(err("agent", "must be an agent name ([A-Za-z0-9_-], 1–64)"));
                }
                vec![Arm {
                    name: "default".into(),
                    agent: agent.clone(),
                    voice: None,
                    weight: 1.0,
                    agent_field: "agent".into(),
                }]
            }
            (None, false) => {
                if !(2..=10).contains(&self.variants.len()) {
                    return Err(err("variants", "an A/B test has 2 to 10 variants"));
                }
                let mut arms: Vec<Arm> = Vec::with_capacity(self.variants.len());
                for (i, v) in self.variants.iter().enumerate() {
                    let at = |f: &str| format!("variants[{i}].{f}");
                    if !simple_name(&v.name) {
                        return Err(err(at("name"), "must be [A-Za-z0-9_-], 1–64 characters"));
                    }
                    if arms.iter().any(|a| a.name == v.name) {
                        return Err(err(
                            at("name"),
                            format!("variant {:?} appears twice", v.name),
                        ));
                    }
                    if !simple_name(&v.agent) {
                        return Err(err(
                            at("agent"),
                            "must be an agent name ([A-Za-z0-9_-], 1–64)",
                        ));
                    }
                    if !(v.weight > 0.0 && v.weight <= 1_000_000.0) {
                        return Err(err(at("weight"), "must be above 0 (at most 1000000)"));
                    }
                    optional_text(at("voice"), &v.voice, 200)?;
                    optional_text(at("greeting"), &v.greeting, 2000)?;
                    arms.push(Arm {
                        name: v.name.clone(),
                        agent: v.agent.clone(),
                        voice: v.voice.clone(),
                        weight: v.weight,
                        agent_field: at("agent"),
                    });
                }
                arms
            }
        };
        match &self.conversion {
            Conversion::Answered => {}
            Conversion::Outcome { value } => {
                if value.trim().is_empty() || value.len() > 200 {
                    return Err(err("conversion.value", "must be 1 to 200 characters"));
                }
            }
            Conversion::Variable { name, value } => {
                if name.trim().is_empty() || name.len() > 200 {
                    return Err(err("conversion.name", "must be 1 to 200 characters"));
                }
                if value.len() > 1000 {
                    return Err(err("conversion.value", "must be at most 1000 characters"));
                }
            }
        }
        let timezone = parse_timezone(&self.schedule.timezone).ok_or_else(|| {
            err(
                "schedule.timezone",
                "unknown time zone (use an IANA name such as Europe/London)",
            )
        })?;
        if self.schedule.days.is_empty() {
            return Err(err("schedule.days", "give at least one day"));
        }
        let start =
            parse_hhmm(&self.schedule.start).map_err(|e| err("schedule.start", e.to_string()))?;
        let end = parse_hhmm(&self.schedule.end).map_err(|e| err("schedule.end", e.to_string()))?;
        if start >= 24 * 60 {
            return Err(err("schedule.start", "must be before 24:00"));
        }
        let window = CallingWindow::new(&self.schedule.days, start, end)
            .ok_or_else(|| err("schedule.end", "must be after schedule.start"))?;
        if !(1..=500).contains(&self.max_concurrency) {
            return Err(err("max_concurrency", "must be between 1 and 500"));
        }
        if !(1..=600).contains(&self.pacing_per_minute) {
            return Err(err("pacing_per_minute", "must be between 1 and 600"));
        }
        if !(1..=10).contains(&self.retries.max_attempts) {
            return Err(err("retries.max_attempts", "must be between 1 and 10"));
        }
        if !(10..=604_800).contains(&self.retries.backoff_s) {
            return Err(err(
                "retries.backoff_s",
                "must be between 10 and 604800 seconds",
            ));
        }
        if !(1.0..=10.0).contains(&self.retries.multiplier) {
            return Err(err("retries.multiplier", "must be between 1 and 10"));
        }
        normalize_e164(&self.caller_id).map_err(|e| err("caller_id", e.to_string()))?;
        if let Some(t) = &self.trunk {
            if t.trim().is_empty() || t.len() > 64 {
                return Err(err("trunk", "must be a trunk name, 1–64 characters"));
            }
        }
        Ok(Compiled {
            timezone,
            window,
            arms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> serde_json::Value {
        json!({
            "name": "Renewals",
            "variants": [
                {"name": "a", "agent": "sales", "weight": 1},
                {"name": "b", "agent": "sales2", "voice": "en_US-x", "weight": 2.5}
            ],
            "conversion": {"type": "variable", "name": "booked", "value": "yes"},
            "schedule": {"timezone": "Europe/London", "days": ["mon", "sat"], "start": "09:30", "end": "18:00"},
            "max_concurrency": 10,
            "pacing_per_minute": 60,
            "retries": {"max_attempts": 4, "backoff_s": 60, "multiplier": 3},
            "caller_id": "+44 20 7946 0000"
        })
    }

    fn check(v: serde_json::Value) -> Result<(CampaignSpec, Compiled), SpecError> {
        serde_json::from_value::<CampaignSpec>(v)
            .expect("parses")
            .normalized()
    }

    fn field_of(v: serde_json::Value) -> String {
        check(v).unwrap_err().field
    }

    #[test]
    fn a_good_document_compiles() {
        let (spec, c) = check(base()).unwrap();
        assert_eq!(spec.caller_id, "+442079460000");
        assert_eq!(c.timezone, chrono_tz::Europe::London);
        assert_eq!(c.arms.len(), 2);
        assert_eq!(c.arms[1].agent_field, "variants[1].agent");
        assert_eq!(c.arms[1].weight, 2.5);
        let mut single = base();
        single["agent"] = json!("sales");
        single.as_object_mut().unwrap().remove("variants");
        single.as_object_mut().unwrap().remove("conversion");
        let (spec, c) = check(single).unwrap();
        assert_eq!(spec.conversion, Conversion::Answered);
        assert_eq!(c.arms[0].name, "default");
        // Round trip through the stored JSON.
        let again: CampaignSpec =
            serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
        assert_eq!(again, spec);
    }

    #[test]
    fn each_mistake_names_its_field() {
        type Change = Box<dyn Fn(&mut serde_json::Value)>;
        let cases: Vec<(&str, Change)> = vec![
            ("name", Box::new(|v| v["name"] = json!("  "))),
            ("variants", Box::new(|v| v["agent"] = json!("sales"))),
            (
                "variants",
                Box::new(|v| v["variants"].as_array_mut().unwrap().truncate(1)),
            ),
            (
                "agent",
                Box::new(|v| {
                    v.as_object_mut().unwrap().remove("variants");
                }),
            ),
            (
                "variants[1].weight",
                Box::new(|v| v["variants"][1]["weight"] = json!(0)),
            ),
            (
                "variants[0].weight",
                Box::new(|v| v["variants"][0]["weight"] = json!(-1)),
            ),
            (
                "variants[1].name",
                Box::new(|v| v["variants"][1]["name"] = json!("a")),
            ),
            (
                "variants[0].name",
                Box::new(|v| v["variants"][0]["name"] = json!("a b")),
            ),
            (
                "variants[0].agent",
                Box::new(|v| v["variants"][0]["agent"] = json!("")),
            ),
            (
                "variants[1].voice",
                Box::new(|v| v["variants"][1]["voice"] = json!(" ")),
            ),
            (
                "schedule.start",
                Box::new(|v| v["schedule"]["start"] = json!("9am")),
            ),
            (
                "schedule.end",
                Box::new(|v| v["schedule"]["end"] = json!("08:00")),
            ),
            (
                "schedule.timezone",
                Box::new(|v| v["schedule"]["timezone"] = json!("Mars/Base")),
            ),
            (
                "schedule.days",
                Box::new(|v| v["schedule"]["days"] = json!([])),
            ),
            (
                "max_concurrency",
                Box::new(|v| v["max_concurrency"] = json!(501)),
            ),
            (
                "pacing_per_minute",
                Box::new(|v| v["pacing_per_minute"] = json!(0)),
            ),
            (
                "retries.max_attempts",
                Box::new(|v| v["retries"]["max_attempts"] = json!(11)),
            ),
            (
                "retries.backoff_s",
                Box::new(|v| v["retries"]["backoff_s"] = json!(5)),
            ),
            (
                "retries.multiplier",
                Box::new(|v| v["retries"]["multiplier"] = json!(0.5)),
            ),
            (
                "caller_id",
                Box::new(|v| v["caller_id"] = json!("555-1234")),
            ),
            (
                "conversion.value",
                Box::new(|v| v["conversion"] = json!({"type": "outcome", "value": ""})),
            ),
        ];
        for (field, change) in cases {
            let mut v = base();
            change(&mut v);
            assert_eq!(field_of(v), field);
        }
    }

    #[test]
    fn retry_waits_grow_by_the_multiplier() {
        let r = RetrySpec {
            max_attempts: 5,
            backoff_s: 60,
            multiplier: 2.0,
        };
        assert_eq!(r.delay_ms(1), 60_000);
        assert_eq!(r.delay_ms(2), 120_000);
        assert_eq!(r.delay_ms(4), 480_000);
        let huge = RetrySpec {
            max_attempts: 10,
            backoff_s: 604_800,
            multiplier: 10.0,
        };
        assert_eq!(huge.delay_ms(10), 30 * 86_400_000);
    }

    #[test]
    fn conversions_read_outcomes_and_variables() {
        let booked = Conversion::Variable {
            name: "booked".into(),
            value: "yes".into(),
        };
        let list =
            r#"{"variables":[{"name":"plan","value":"gold"},{"name":"booked","value":"yes"}]}"#;
        let map = r#"{"variables":{"booked":"yes"}}"#;
        let no = r#"{"variables":[{"name":"booked","value":"no"}]}"#;
        assert!(booked.matches(true, None, Some(list)));
        assert!(booked.matches(true, None, Some(map)));
        assert!(!booked.matches(true, None, Some(no)));
        assert!(!booked.matches(true, None, Some("not json")));
        assert!(!booked.matches(true, None, None));
        let flag = Conversion::Variable {
            name: "n".into(),
            value: "3".into(),
        };
        assert!(flag.matches(true, None, Some(r#"{"variables":{"n":3}}"#)));
        let done = Conversion::Outcome {
            value: "completed".into(),
        };
        assert!(done.matches(true, Some("completed"), None));
        assert!(!done.matches(true, Some("transferred"), None));
        assert!(Conversion::Answered.matches(true, None, None));
        assert!(!Conversion::Answered.matches(false, Some("completed"), None));
    }
}
