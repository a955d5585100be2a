//! Records what the engine reports: every [`EngineEvent`] is stored in the
//! calls tables, published to live subscribers, queued for webhooks, and a
//! call's end wakes the campaign dialer.
//!
//! Events are handled one at a time, each committed before the next is
//! taken, so nothing the engine reported is lost to a reordering. A failure
//! is logged with the engine call id and the loop goes on.

use crate::error::{ApiError, ApiResult};
use crate::events::LiveEvent;
use crate::model::EngineEvent;
use crate::routes::calls;
use crate::state::AppState;
use crate::store::{self, NewCall};
use crate::webhooks;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

/// An event that trails its call's end (quality, insights, the last
/// transcript line) still belongs to that call for this long.
const LATE_EVENT_MS: i64 = 60_000;

/// At startup: close calls that were live when the process stopped.
pub async fn recover(s: &AppState) -> ApiResult<()> {
    let done = sqlx::query(
        "UPDATE calls SET status = 'ended', end_reason = 'engine_restart', ended_ms = $1 \
         WHERE status <> 'ended'",
    )
    .bind(s.now_ms())
    .execute(&s.db.pool)
    .await?;
    tracing::info!(
        calls = done.rows_affected(),
        "closed calls left in progress by the last run"
    );
    Ok(())
}

/// Store every engine event, publish it live, queue webhooks, wake the dialer.
pub async fn run(s: AppState, mut events: UnboundedReceiver<EngineEvent>) {
    while let Some(event) = events.recv().await {
        let engine_call = event.engine_call().to_string();
        if let Err(e) = record(&s, event).await {
            tracing::error!(
                engine_call = %engine_call,
                error = %e.body.message,
                "could not record an engine event"
            );
        }
    }
    tracing::debug!("engine event stream closed");
}

/// The call row an event belongs to.
#[derive(Debug)]
struct Target {
    id: String,
    campaign_id: Option<String>,
    ended: bool,
}

/// The row for `engine_call`: the live one; else one that ended moments
/// ago (events trailing the end); else a new row with unknown fields (an
/// event before `CallStarted` is kept, not dropped).
async fn target(s: &AppState, engine_call: &str) -> ApiResult<Target> {
    let live: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT id, campaign_id FROM calls WHERE engine_call = $1 AND status <> 'ended'",
    )
    .bind(engine_call)
    .fetch_optional(&s.db.pool)
    .await?;
    if let Some((id, campaign_id)) = live {
        return Ok(Target {
            id,
            campaign_id,
            ended: false,
        });
    }
    let recent: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT id, campaign_id FROM calls WHERE engine_call = $1 AND status = 'ended' \
         AND ended_ms >= $2 AND COALESCE(end_reason, '') <> 'engine_restart' ORDER BY ended_ms DESC, id DESC LIMIT 1",
    )
    .bind(engine_call)
    .bind(s.now_ms() - LATE_EVENT_MS)
    .fetch_optional(&s.db.pool)
    .await?;
    if let Some((id, campaign_id)) = recent {
        return Ok(Target {
            id,
            campaign_id,
            ended: true,
        });
    }
    tracing::warn!(
        engine_call,
        "event for a call the engine has not reported starting"
    );
    let id = store::ensure_call(
        s,
        engine_call,
        &NewCall {
            direction: "unknown",
            transport: "unknown",
            agent: "unknown",
            from: None,
            to: None,
        },
    )
    .await?;
    let call = calls::load_call(s, &id).await?;
    Ok(Target {
        id,
        campaign_id: call.campaign_id,
        ended: false,
    })
}

fn publish(s: &AppState, kind: &str, t: &Target, data: serde_json::Value) {
    s.events.publish(LiveEvent {
        kind: kind.into(),
        call_id: Some(t.id.clone()),
        campaign_id: t.campaign_id.clone(),
        at_ms: s.now_ms(),
        data,
    });
}

fn to_json<T: serde::Serialize>(v: &T) -> ApiResult<serde_json::Value> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// Store and pass on one event.
async fn record(s: &AppState, event: EngineEvent) -> ApiResult<()> {
    match event {
        EngineEvent::CallStarted {
            engine_call,
            direction,
            transport,
            agent,
            from,
            to,
        } => {
            let id = store::ensure_call(
                s,
                &engine_call,
                &NewCall {
                    direction: &direction,
                    transport: &transport,
                    agent: &agent,
                    from: from.as_deref(),
                    to: to.as_deref(),
                },
            )
            .await?;
            // The row may be older (placed through the API or the dialer, or
            // made by an earlier event): the engine's word wins.
            sqlx::query(
                "UPDATE calls SET direction = $1, transport = $2, agent = $3, \
                 from_number = COALESCE($4, from_number), to_number = COALESCE($5, to_number) \
                 WHERE id = $6",
            )
            .bind(&direction)
            .bind(&transport)
            .bind(&agent)
            .bind(&from)
            .bind(&to)
            .bind(&id)
            .execute(&s.db.pool)
            .await?;
            let call = calls::load_call(s, &id).await?;
            let t = Target {
                id,
                campaign_id: call.campaign_id.clone(),
                ended: false,
            };
            let payload = to_json(&call)?;
            tracing::info!(call = %t.id, engine_call = %engine_call, agent = %agent, "call started");
            publish(s, "call.started", &t, payload.clone());
            webhooks::enqueue(s, "call.started", payload).await?;
        }
        EngineEvent::CallAnswered { engine_call } => {
            let t = target(s, &engine_call).await?;
            let now = s.now_ms();
            sqlx::query(
                "UPDATE calls SET status = 'live', answered_ms = COALESCE(answered_ms, $1) \
                 WHERE id = $2 AND status <> 'ended'",
            )
            .bind(now)
            .bind(&t.id)
            .execute(&s.db.pool)
            .await?;
            publish(s, "call.answered", &t, json!({ "answered_ms": now }));
        }
        EngineEvent::Transcript {
            engine_call,
            speaker,
            text,
            is_final,
            start_ms,
            end_ms,
            interrupted,
        } => {
            let t = target(s, &engine_call).await?;
            let mut data = json!({
                "speaker": speaker,
                "text": text,
                "is_final": is_final,
                "start_ms": start_ms,
                "end_ms": end_ms,
                "interrupted": interrupted,
            });
            if !is_final {
                publish(s, "transcript.partial", &t, data);
                return Ok(());
            }
            let (seq,): (i64,) = sqlx::query_as(
                "INSERT INTO transcripts (call_id, seq, speaker, text, start_ms, end_ms, interrupted) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6 FROM transcripts WHERE call_id = $1 \
                 RETURNING seq",
            )
            .bind(&t.id)
            .bind(&speaker)
            .bind(&text)
            .bind(start_ms)
            .bind(end_ms)
            .bind(i64::from(interrupted))
            .fetch_one(&s.db.pool)
            .await?;
            data["seq"] = json!(seq);
            publish(s, "transcript.final", &t, data.clone());
            data["call_id"] = json!(t.id);
            webhooks::enqueue(s, "transcript.final", data).await?;
        }
        EngineEvent::Turn {
            engine_call,
            voice_to_voice_ms,
            metrics,
        } => {
            let t = target(s, &engine_call).await?;
            let (seq,): (i64,) = sqlx::query_as(
                "INSERT INTO turn_metrics (call_id, seq, voice_to_voice_ms, metrics, created_ms) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM turn_metrics WHERE call_id = $1 \
                 RETURNING seq",
            )
            .bind(&t.id)
            .bind(voice_to_voice_ms.filter(|v| v.is_finite()))
            .bind(metrics.to_string())
            .bind(s.now_ms())
            .fetch_one(&s.db.pool)
            .await?;
            publish(
                s,
                "turn.metrics",
                &t,
                json!({ "seq": seq, "voice_to_voice_ms": voice_to_voice_ms, "metrics": metrics }),
            );
        }
        EngineEvent::Analysis {
            engine_call,
            analysis,
        } => {
            let t = target(s, &engine_call).await?;
            publish(s, "call.analysis", &t, analysis);
        }
        EngineEvent::Quality {
            engine_call,
            mos,
            loss_percent,
            jitter_ms,
        } => {
            let t = target(s, &engine_call).await?;
            sqlx::query(
                "UPDATE calls SET mos = $1, loss_percent = $2, jitter_ms = $3 WHERE id = $4",
            )
            .bind(mos)
            .bind(loss_percent)
            .bind(jitter_ms)
            .bind(&t.id)
            .execute(&s.db.pool)
            .await?;
            publish(
                s,
                "call.quality",
                &t,
                json!({ "mos": mos, "loss_percent": loss_percent, "jitter_ms": jitter_ms }),
            );
        }
        EngineEvent::Insights {
            engine_call,
            outcome,
            summary,
            sentiment,
            insights,
        } => {
            let t = target(s, &engine_call).await?;
            sqlx::query(
                "UPDATE calls SET outcome = $1, summary = $2, sentiment = $3, insights = $4 WHERE id = $5",
            )
            .bind(&outcome)
            .bind(&summary)
            .bind(sentiment)
            .bind(insights.to_string())
            .bind(&t.id)
            .execute(&s.db.pool)
            .await?;
            publish(
                s,
                "call.insights",
                &t,
                json!({ "outcome": outcome, "summary": summary, "sentiment": sentiment, "insights": insights }),
            );
        }
        EngineEvent::CallEnded {
            engine_call,
            reason,
            answered,
        } => {
            let t = target(s, &engine_call).await?;
            if t.ended {
                tracing::debug!(call = %t.id, "call already ended");
                return Ok(());
            }
            sqlx::query(
                "UPDATE calls SET status = 'ended', end_reason = $1, ended_ms = $2 \
                 WHERE id = $3 AND status <> 'ended'",
            )
            .bind(&reason)
            .bind(s.now_ms())
            .bind(&t.id)
            .execute(&s.db.pool)
            .await?;
            let call = calls::load_call(s, &t.id).await?;
            tracing::info!(call = %t.id, reason = %reason, answered, "call ended");
            let payload = to_json(&call)?;
            publish(s, "call.ended", &t, payload.clone());
            s.dialer_wake.notify_one();
            webhooks::enqueue(s, "call.ended", payload).await?;
        }
    }
    Ok(())
}
