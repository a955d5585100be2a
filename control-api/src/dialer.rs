//! The campaign dialer.
//!
//! The decisions are pure functions of the campaign, its counters, its
//! contacts and the time ([`plan`], [`settle`], [`after_failure`]); [`tick`]
//! reads the database, applies them and talks to the engine; [`run`] calls
//! [`tick`] on a timer or when woken.
//!
//! A contact is marked `dialing` (and its attempt counted) and committed
//! *before* the engine is asked to call, so a crash can never call a
//! contact twice: at startup [`recover`] settles contacts left `dialing`
//! whose call died with the process as `done` / `interrupted`.

use crate::campaign::spec::{Compiled, RetrySpec};
use crate::campaign::{ab, CampaignSpec, ContactStatus};
use crate::error::{ApiError, ApiResult};
use crate::events::LiveEvent;
use crate::state::{AppState, EngineError, OutboundCall};
use crate::store::{self, NewCall};
use chrono_tz::Tz;
use serde::Serialize;
use std::collections::HashMap;
use utoipa::ToSchema;

/// End reasons after which the contact is tried again.
pub const RETRYABLE: [&str; 3] = ["busy", "no_answer", "timeout"];

/// The end reason the recorder gives calls that were live when the process
/// stopped.
pub const ENGINE_RESTART: &str = "engine_restart";

/// Most contacts looked at per campaign and tick.
const BATCH: i64 = 1000;

/// The pacing window: at most `pacing_per_minute` calls start in any minute.
const MINUTE_MS: i64 = 60_000;

/// What the dialer knows about a running campaign right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Contacts being called.
    pub in_flight: u32,
    /// Calls started in the last minute.
    pub started_last_minute: u32,
    /// Contacts given each variant so far (in arm order).
    pub assigned: Vec<u64>,
}

/// A due contact.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Its time zone (`None`: the stored one is unknown; the campaign's applies).
    pub timezone: Option<Tz>,
    /// Its number is on the do-not-call list.
    pub on_dnc: bool,
    /// The variant it was given on an earlier attempt.
    pub variant: Option<String>,
}

/// What to do with a due contact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Call candidate `contact` with arm `arm`.
    Dial {
        /// Index into the candidates.
        contact: usize,
        /// Index into the arms.
        arm: usize,
    },
    /// Never call it: it is on the do-not-call list.
    Dnc {
        /// Index into the candidates.
        contact: usize,
    },
    /// Outside its calling hours: not before `until_ms` (no attempt used).
    Defer {
        /// Index into the candidates.
        contact: usize,
        /// The next window start in its zone.
        until_ms: i64,
    },
}

/// What to do with `candidates` (due, in order) now. Calls start while
/// fewer than `max_concurrency` are in flight and fewer than
/// `pacing_per_minute` started in the last minute; a contact keeps the
/// variant it was given first, new contacts get the variant furthest below
/// its weight.
pub fn plan(
    spec: &CampaignSpec,
    compiled: &Compiled,
    counters: &Counters,
    candidates: &[Candidate],
    now_ms: i64,
) -> Vec<Action> {
    let concurrency = spec.max_concurrency.saturating_sub(counters.in_flight);
    let pacing = spec
        .pacing_per_minute
        .saturating_sub(counters.started_last_minute);
    let mut slots = concurrency.min(pacing);
    let weights: Vec<f64> = compiled.arms.iter().map(|a| a.weight).collect();
    let mut assigned = counters.assigned.clone();
    assigned.resize(weights.len(), 0);
    let mut out = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        if slots == 0 {
            break;
        }
        if c.on_dnc {
            out.push(Action::Dnc { contact: i });
            continue;
        }
        let tz = c.timezone.unwrap_or(compiled.timezone);
        if !compiled.window.contains(tz, now_ms) {
            let until_ms = compiled
                .window
                .next_start(tz, now_ms)
                .unwrap_or(now_ms + 86_400_000);
            out.push(Action::Defer {
                contact: i,
                until_ms,
            });
            continue;
        }
        let kept = c
            .variant
            .as_deref()
            .and_then(|v| compiled.arms.iter().position(|a| a.name == v));
        let Some(arm) = kept.or_else(|| ab::pick_variant(&weights, &assigned)) else {
            break;
        };
        if kept.is_none() {
            assigned[arm] += 1;
        }
        slots -= 1;
        out.push(Action::Dial { contact: i, arm });
    }
    out
}

/// A contact's state after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// New state.
    pub status: ContactStatus,
    /// When to try again (pending only).
    pub next_attempt_ms: Option<i64>,
    /// What happened (`answered`, `busy`, `interrupted`, …).
    pub last_result: String,
    /// It converted.
    pub converted: bool,
}

/// After an unanswered attempt number `attempts` that may be retried:
/// pending again after the backoff, or exhausted.
pub fn after_failure(
    retries: &RetrySpec,
    attempts: u32,
    now_ms: i64,
) -> (ContactStatus, Option<i64>) {
    if attempts < retries.max_attempts {
        (
            ContactStatus::Pending,
            Some(now_ms.saturating_add(retries.delay_ms(attempts))),
        )
    } else {
        (ContactStatus::Exhausted, None)
    }
}

/// A finished call as the recorder left it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Finished<'a> {
    /// It was answered.
    pub answered: bool,
    /// `remote_bye`, `busy`, `no_answer`, `rejected_486`, `engine_restart`, …
    pub end_reason: Option<&'a str>,
    /// The conversation's outcome.
    pub outcome: Option<&'a str>,
    /// The insights JSON.
    pub insights: Option<&'a str>,
}

/// Where a contact goes after its call (attempt number `attempts`) ended:
/// answered -> done; busy, no answer, timeout -> retried or exhausted; a
/// restart of the engine -> done (never called twice); anything else
/// (rejected) -> failed.
pub fn settle(spec: &CampaignSpec, attempts: u32, call: &Finished<'_>, now_ms: i64) -> Settlement {
    let reason = call.end_reason.unwrap_or("ended");
    let converted = spec
        .conversion
        .matches(call.answered, call.outcome, call.insights);
    if reason == ENGINE_RESTART {
        return Settlement {
            status: ContactStatus::Done,
            next_attempt_ms: None,
            last_result: "interrupted".into(),
            converted,
        };
    }
    if call.answered {
        return Settlement {
            status: ContactStatus::Done,
            next_attempt_ms: None,
            last_result: "answered".into(),
            converted,
        };
    }
    let (status, next_attempt_ms) = if RETRYABLE.contains(&reason) {
        after_failure(&spec.retries, attempts, now_ms)
    } else {
        (ContactStatus::Failed, None)
    };
    Settlement {
        status,
        next_attempt_ms,
        last_result: reason.chars().take(100).collect(),
        converted,
    }
}

/// What a tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Contacts whose call ended and were settled.
    pub settled: usize,
    /// Calls placed.
    pub placed: usize,
    /// Contacts moved to their next calling window.
    pub deferred: usize,
    /// Contacts found on the do-not-call list.
    pub dnc: usize,
    /// Calls the engine would not place.
    pub place_failed: usize,
    /// Campaigns that completed.
    pub completed: Vec<String>,
}

/// Contacts of a campaign by state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct ContactCounts {
    /// Every contact.
    pub total: i64,
    /// Waiting for an attempt.
    pub pending: i64,
    /// Being called.
    pub dialing: i64,
    /// Reached.
    pub done: i64,
    /// Not reached after every attempt.
    pub exhausted: i64,
    /// Failed for good.
    pub failed: i64,
    /// On the do-not-call list.
    pub dnc: i64,
    /// Converted (by the campaign's conversion metric).
    pub converted: i64,
}

/// Count a campaign's contacts by state.
pub async fn contact_counts(s: &AppState, campaign: &str) -> ApiResult<ContactCounts> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT status, converted, COUNT(*) FROM contacts WHERE campaign_id = $1 GROUP BY status, converted",
    )
    .bind(campaign)
    .fetch_all(&s.db.pool)
    .await?;
    let mut c = ContactCounts::default();
    for (status, converted, n) in rows {
        c.total += n;
        if converted != 0 {
            c.converted += n;
        }
        match ContactStatus::parse(&status) {
            Some(ContactStatus::Pending) => c.pending += n,
            Some(ContactStatus::Dialing) => c.dialing += n,
            Some(ContactStatus::Done) => c.done += n,
            Some(ContactStatus::Exhausted) => c.exhausted += n,
            Some(ContactStatus::Failed) => c.failed += n,
            Some(ContactStatus::Dnc) => c.dnc += n,
            None => {}
        }
    }
    Ok(c)
}

fn load_spec(json: &str) -> ApiResult<(CampaignSpec, Compiled)> {
    let spec: CampaignSpec = serde_json::from_str(json).map_err(ApiError::internal)?;
    let compiled = spec.compile().map_err(ApiError::internal)?;
    Ok((spec, compiled))
}

fn attempts_u32(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

type EndedRow = (
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// (a) Settle every contact whose call has ended, whatever its campaign's state.
async fn settle_ended(s: &AppState, now: i64, report: &mut TickReport) -> ApiResult<()> {
    let rows: Vec<EndedRow> = sqlx::query_as(
        "SELECT c.id, c.campaign_id, c.attempts, k.answered_ms, k.end_reason, k.outcome, k.insights \
         FROM contacts c JOIN calls k ON k.id = c.call_id \
         WHERE c.status = 'dialing' AND k.status = 'ended' ORDER BY c.campaign_id, c.seq",
    )
    .fetch_all(&s.db.pool)
    .await?;
    let mut specs: HashMap<String, CampaignSpec> = HashMap::new();
    for (contact, campaign, attempts, answered_ms, end_reason, outcome, insights) in rows {
        if !specs.contains_key(&campaign) {
            let row: Option<(String,)> = sqlx::query_as("SELECT spec FROM campaigns WHERE id = $1")
                .bind(&campaign)
                .fetch_optional(&s.db.pool)
                .await?;
            let Some((json,)) = row else { continue };
            specs.insert(campaign.clone(), load_spec(&json)?.0);
        }
        let Some(spec) = specs.get(&campaign) else {
            continue;
        };
        let st = settle(
            spec,
            attempts_u32(attempts),
            &Finished {
                answered: answered_ms.is_some(),
                end_reason: end_reason.as_deref(),
                outcome: outcome.as_deref(),
                insights: insights.as_deref(),
            },
            now,
        );
        sqlx::query(
            "UPDATE contacts SET status = $1, next_attempt_ms = COALESCE($2, next_attempt_ms), \
             last_result = $3, converted = $4, updated_ms = $5 WHERE id = $6 AND status = 'dialing'",
        )
        .bind(st.status.as_str())
        .bind(st.next_attempt_ms)
        .bind(&st.last_result)
        .bind(i64::from(st.converted))
        .bind(now)
        .bind(&contact)
        .execute(&s.db.pool)
        .await?;
        report.settled += 1;
    }
    Ok(())
}

type CandidateRow = (String, String, String, Option<String>, Option<String>, i64);

/// (b) Start calls for one running campaign; (c) complete it when no
/// contact is left to call.
async fn dial_campaign(
    s: &AppState,
    id: &str,
    name: &str,
    spec: &CampaignSpec,
    compiled: &Compiled,
    now: i64,
    report: &mut TickReport,
) -> ApiResult<()> {
    let (in_flight,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM contacts WHERE campaign_id = $1 AND status = 'dialing'",
    )
    .bind(id)
    .fetch_one(&s.db.pool)
    .await?;
    let (started,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM calls WHERE campaign_id = $1 AND started_ms > $2")
            .bind(id)
            .bind(now - MINUTE_MS)
            .fetch_one(&s.db.pool)
            .await?;
    let assigned_rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT variant, COUNT(*) FROM contacts WHERE campaign_id = $1 AND variant IS NOT NULL GROUP BY variant",
    )
    .bind(id)
    .fetch_all(&s.db.pool)
    .await?;
    let counters = Counters {
        in_flight: u32::try_from(in_flight).unwrap_or(u32::MAX),
        started_last_minute: u32::try_from(started).unwrap_or(u32::MAX),
        assigned: compiled
            .arms
            .iter()
            .map(|a| {
                assigned_rows
                    .iter()
                    .find(|(v, _)| *v == a.name)
                    .map_or(0, |(_, n)| u64::try_from(*n).unwrap_or(0))
            })
            .collect(),
    };
    if counters.in_flight < spec.max_concurrency
        && counters.started_last_minute < spec.pacing_per_minute
    {
        let rows: Vec<CandidateRow> = sqlx::query_as(
            "SELECT c.id, c.e164, c.timezone, c.variant, d.e164, c.attempts \
             FROM contacts c LEFT JOIN dnc d ON d.e164 = c.e164 \
             WHERE c.campaign_id = $1 AND c.status = 'pending' AND c.next_attempt_ms <= $2 \
             ORDER BY c.next_attempt_ms, c.seq, c.id LIMIT $3",
        )
        .bind(id)
        .bind(now)
        .bind(BATCH)
        .fetch_all(&s.db.pool)
        .await?;
        let candidates: Vec<Candidate> = rows
            .iter()
            .map(|r| Candidate {
                timezone: r.2.parse::<Tz>().ok(),
                on_dnc: r.4.is_some(),
                variant: r.3.clone(),
            })
            .collect();
        for action in plan(spec, compiled, &counters, &candidates, now) {
            match action {
                Action::Dnc { contact } => {
                    sqlx::query(
                        "UPDATE contacts SET status = 'dnc', last_result = 'dnc', updated_ms = $1 \
                         WHERE id = $2 AND status = 'pending'",
                    )
                    .bind(now)
                    .bind(&rows[contact].0)
                    .execute(&s.db.pool)
                    .await?;
                    report.dnc += 1;
                }
                Action::Defer { contact, until_ms } => {
                    sqlx::query(
                        "UPDATE contacts SET next_attempt_ms = $1, updated_ms = $2 \
                         WHERE id = $3 AND status = 'pending'",
                    )
                    .bind(until_ms)
                    .bind(now)
                    .bind(&rows[contact].0)
                    .execute(&s.db.pool)
                    .await?;
                    report.deferred += 1;
                }
                Action::Dial { contact, arm } => {
                    let row = &rows[contact];
                    dial(s, id, spec, compiled, row, arm, now, report).await?;
                }
            }
        }
    }
    let counts = contact_counts(s, id).await?;
    if counts.pending + counts.dialing == 0 {
        let done = sqlx::query(
            "UPDATE campaigns SET status = 'completed', completed_ms = $1, updated_ms = $1 \
             WHERE id = $2 AND status = 'running'",
        )
        .bind(now)
        .bind(id)
        .execute(&s.db.pool)
        .await?;
        if done.rows_affected() == 1 {
            let payload = serde_json::json!({
                "campaign_id": id,
                "name": name,
                "counts": counts,
            });
            crate::webhooks::enqueue(s, "campaign.completed", payload.clone()).await?;
            s.events.publish(LiveEvent {
                kind: "campaign.completed".into(),
                call_id: None,
                campaign_id: Some(id.to_string()),
                at_ms: now,
                data: payload,
            });
            tracing::info!(campaign = %id, total = counts.total, done = counts.done, "campaign completed");
            report.completed.push(id.to_string());
        }
    }
    Ok(())
}

/// Claim the contact (committed), then ask the engine to call it.
#[allow(clippy::too_many_arguments)]
async fn dial(
    s: &AppState,
    campaign: &str,
    spec: &CampaignSpec,
    compiled: &Compiled,
    row: &CandidateRow,
    arm: usize,
    now: i64,
    report: &mut TickReport,
) -> ApiResult<()> {
    let (contact, e164) = (&row.0, &row.1);
    let attempts = attempts_u32(row.5).saturating_add(1);
    let Some(arm) = compiled.arms.get(arm) else {
        return Ok(());
    };
    let claimed = sqlx::query(
        "UPDATE contacts SET status = 'dialing', attempts = attempts + 1, variant = $1, \
         call_id = NULL, updated_ms = $2 WHERE id = $3 AND status = 'pending'",
    )
    .bind(&arm.name)
    .bind(now)
    .bind(contact)
    .execute(&s.db.pool)
    .await?;
    if claimed.rows_affected() != 1 {
        return Ok(());
    }
    let placed = s
        .engine
        .place_call(OutboundCall {
            to: e164.clone(),
            from: spec.caller_id.clone(),
            trunk: spec.trunk.clone(),
            agent: arm.agent.clone(),
        })
        .await;
    let engine_call = match placed {
        Ok(c) => c,
        Err(e) => {
            let kind = match &e {
                EngineError::NoSuchCall(_) => "no_such_call",
                EngineError::Refused(_) => "refused",
                EngineError::Unavailable(_) => "unavailable",
            };
            tracing::info!(campaign = %campaign, contact = %contact, attempt = attempts, kind, "the engine did not place a campaign call");
            tracing::debug!(campaign = %campaign, contact = %contact, error = %e, "place_call failed");
            let (status, next) = match after_failure(&spec.retries, attempts, now) {
                (ContactStatus::Exhausted, n) => (ContactStatus::Failed, n),
                other => other,
            };
            sqlx::query(
                "UPDATE contacts SET status = $1, next_attempt_ms = COALESCE($2, next_attempt_ms), \
                 last_result = $3, updated_ms = $4 WHERE id = $5 AND status = 'dialing'",
            )
            .bind(status.as_str())
            .bind(next)
            .bind(format!("place_failed: {kind}"))
            .bind(now)
            .bind(contact)
            .execute(&s.db.pool)
            .await?;
            report.place_failed += 1;
            return Ok(());
        }
    };
    report.placed += 1;
    // The recorder may have seen the call start (and even end) already:
    // take its row if there is one from this placement.
    let seen: Option<(String,)> = sqlx::query_as(
        "SELECT id FROM calls WHERE engine_call = $1 AND started_ms >= $2 ORDER BY started_ms DESC, id LIMIT 1",
    )
    .bind(&engine_call)
    .bind(now)
    .fetch_optional(&s.db.pool)
    .await?;
    let call_id = match seen {
        Some((id,)) => id,
        None => {
            store::ensure_call(
                s,
                &engine_call,
                &NewCall {
                    direction: "outbound",
                    transport: "sip",
                    agent: &arm.agent,
                    from: Some(&spec.caller_id),
                    to: Some(e164),
                },
            )
            .await?
        }
    };
    sqlx::query(
        "UPDATE calls SET campaign_id = $1, contact_id = $2, variant = $3, voice = $4 WHERE id = $5",
    )
    .bind(campaign)
    .bind(contact)
    .bind(&arm.name)
    .bind(arm.voice.as_deref())
    .bind(&call_id)
    .execute(&s.db.pool)
    .await?;
    sqlx::query("UPDATE contacts SET call_id = $1 WHERE id = $2")
        .bind(&call_id)
        .bind(contact)
        .execute(&s.db.pool)
        .await?;
    tracing::debug!(campaign = %campaign, contact = %contact, call = %call_id, variant = %arm.name, "campaign call placed");
    Ok(())
}

/// One pass: settle ended calls, start calls for running campaigns,
/// complete campaigns with nothing left to do.
pub async fn tick(s: &AppState) -> ApiResult<TickReport> {
    let now = s.now_ms();
    let mut report = TickReport::default();
    settle_ended(s, now, &mut report).await?;
    let running: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT id, name, spec FROM campaigns WHERE status = 'running' ORDER BY started_ms, id",
    )
    .fetch_all(&s.db.pool)
    .await?;
    for (id, name, json) in running {
        let (spec, compiled) = match load_spec(&json) {
            Ok(x) => x,
            Err(_) => continue,
        };
        if let Err(e) = dial_campaign(s, &id, &name, &spec, &compiled, now, &mut report).await {
            tracing::warn!(campaign = %id, error = ?e.body.message, "dialing a campaign failed");
        }
    }
    Ok(report)
}

/// A contact being dialled with its call row's id, status and end reason.
type DialingRow = (String, Option<String>, Option<String>, Option<String>);

/// At startup, after the recorder has closed calls left live (end reason
/// `engine_restart`): contacts still `dialing` whose call died with the
/// process, or that never got a call row, are settled as `done` /
/// `interrupted`; they are never called again. Running campaigns go on.
pub async fn recover(s: &AppState) -> ApiResult<()> {
    let now = s.now_ms();
    let rows: Vec<DialingRow> = sqlx::query_as(
        "SELECT c.id, k.id, k.status, k.end_reason FROM contacts c \
         LEFT JOIN calls k ON k.id = c.call_id WHERE c.status = 'dialing'",
    )
    .fetch_all(&s.db.pool)
    .await?;
    let mut interrupted = 0usize;
    for (contact, call, status, reason) in rows {
        let died = call.is_none()
            || (status.as_deref() == Some("ended") && reason.as_deref() == Some(ENGINE_RESTART));
        if !died {
            continue;
        }
        sqlx::query(
            "UPDATE contacts SET status = 'done', last_result = 'interrupted', updated_ms = $1 \
             WHERE id = $2 AND status = 'dialing'",
        )
        .bind(now)
        .bind(&contact)
        .execute(&s.db.pool)
        .await?;
        interrupted += 1;
    }
    let (running,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM campaigns WHERE status = 'running'")
            .fetch_one(&s.db.pool)
            .await?;
    tracing::info!(
        running_campaigns = running,
        interrupted_contacts = interrupted,
        "campaign dialer recovered; running campaigns resume"
    );
    Ok(())
}

/// Dial due contacts of running campaigns, forever: a tick every
/// `tick_ms`, or sooner when woken (a campaign started, a call ended).
pub async fn run(s: AppState) {
    let every = std::time::Duration::from_millis(s.settings.tick_ms.max(10));
    loop {
        if let Err(e) = tick(&s).await {
            tracing::warn!(error = ?e.body.message, "dialer tick failed");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = s.dialer_wake.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::schedule::Day;
    use crate::campaign::spec::{Conversion, ScheduleSpec, VariantSpec};

    /// Monday 2026-01-05T15:00:00Z.
    const T0: i64 = 1_767_625_200_000;

    fn spec(max_concurrency: u32, pacing: u32) -> CampaignSpec {
        CampaignSpec {
            name: "t".into(),
            agent: None,
            variants: vec![
                VariantSpec {
                    name: "a".into(),
                    agent: "sales".into(),
                    voice: None,
                    greeting: None,
                    weight: 1.0,
                },
                VariantSpec {
                    name: "b".into(),
                    agent: "sales2".into(),
                    voice: None,
                    greeting: None,
                    weight: 1.0,
                },
            ],
            conversion: Conversion::Answered,
            schedule: ScheduleSpec {
                timezone: "Europe/London".into(),
                days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
                start: "09:00".into(),
                end: "17:00".into(),
            },
            max_concurrency,
            pacing_per_minute: pacing,
            retries: RetrySpec {
                max_attempts: 3,
                backoff_s: 60,
                multiplier: 2.0,
            },
            caller_id: "+442079460000".into(),
            trunk: None,
        }
    }

    fn due(n: usize) -> Vec<Candidate> {
        vec![
            Candidate {
                timezone: None,
                on_dnc: false,
                variant: None,
            };
            n
        ]
    }

    fn dials(actions: &[Action]) -> Vec<(usize, usize)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Dial { contact, arm } => Some((*contact, *arm)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn concurrency_and_pacing_bound_the_calls_started() {
        let s = spec(3, 600);
        let c = s.compile().unwrap();
        let mut k = Counters::default();
        assert_eq!(dials(&plan(&s, &c, &k, &due(10), T0)).len(), 3);
        k.in_flight = 2;
        assert_eq!(dials(&plan(&s, &c, &k, &due(10), T0)).len(), 1);
        k.in_flight = 3;
        assert!(plan(&s, &c, &k, &due(10), T0).is_empty());
        let s = spec(100, 5);
        let c = s.compile().unwrap();
        let k = Counters {
            started_last_minute: 3,
            ..Counters::default()
        };
        assert_eq!(dials(&plan(&s, &c, &k, &due(10), T0)).len(), 2);
    }

    #[test]
    fn dnc_and_out_of_hours_contacts_use_no_slot() {
        let s = spec(1, 600);
        let c = s.compile().unwrap();
        let mut cands = due(3);
        cands[0].on_dnc = true;
        cands[1].timezone = Some(chrono_tz::America::Los_Angeles);
        let actions = plan(&s, &c, &Counters::default(), &cands, T0);
        assert_eq!(
            actions,
            vec![
                Action::Dnc { contact: 0 },
                Action::Defer {
                    contact: 1,
                    until_ms: T0 + 2 * 3_600_000
                },
                Action::Dial { contact: 2, arm: 0 },
            ]
        );
    }

    #[test]
    fn variants_alternate_and_stick_to_their_contact() {
        let s = spec(10, 600);
        let c = s.compile().unwrap();
        let mut cands = due(4);
        cands[2].variant = Some("a".into());
        let k = Counters {
            assigned: vec![5, 5],
            ..Counters::default()
        };
        // New contacts: a, b, (kept a), a.
        assert_eq!(
            dials(&plan(&s, &c, &k, &cands, T0)),
            vec![(0, 0), (1, 1), (2, 0), (3, 0)]
        );
    }

    #[test]
    fn endings_settle_by_reason_and_attempts() {
        let s = spec(1, 1);
        let answered = Finished {
            answered: true,
            end_reason: Some("remote_bye"),
            ..Finished::default()
        };
        let st = settle(&s, 1, &answered, T0);
        assert_eq!(
            (st.status, st.last_result.as_str(), st.converted),
            (ContactStatus::Done, "answered", true)
        );
        let busy = Finished {
            end_reason: Some("busy"),
            ..Finished::default()
        };
        let st = settle(&s, 1, &busy, T0);
        assert_eq!(
            (st.status, st.next_attempt_ms),
            (ContactStatus::Pending, Some(T0 + 60_000))
        );
        let st = settle(&s, 2, &busy, T0);
        assert_eq!(st.next_attempt_ms, Some(T0 + 120_000));
        let st = settle(&s, 3, &busy, T0);
        assert_eq!(
            (st.status, st.next_attempt_ms),
            (ContactStatus::Exhausted, None)
        );
        for reason in ["no_answer", "timeout"] {
            let f = Finished {
                end_reason: Some(reason),
                ..Finished::default()
            };
            assert_eq!(
                settle(&s, 1, &f, T0).status,
                ContactStatus::Pending,
                "{reason}"
            );
        }
        let rejected = Finished {
            end_reason: Some("rejected_403"),
            ..Finished::default()
        };
        let st = settle(&s, 1, &rejected, T0);
        assert_eq!(
            (st.status, st.last_result.as_str()),
            (ContactStatus::Failed, "rejected_403")
        );
        let restart = Finished {
            end_reason: Some(ENGINE_RESTART),
            ..Finished::default()
        };
        let st = settle(&s, 1, &restart, T0);
        assert_eq!(
            (st.status, st.last_result.as_str()),
            (ContactStatus::Done, "interrupted")
        );
    }
}
