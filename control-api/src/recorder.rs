//! Records what the engine reports: every [`EngineEvent`] is stored in the
//! calls tables, published to live subscribers, queued for webhooks, and a
//! call's end wakes the campaign dialer.
//!
//! Events are handled in order. Those already queued when the recorder
//! wakes (up to [`MAX_BATCH`]) are written in one transaction, so a busy
//! engine pays one commit (one fsync) per batch instead of one per
//! statement: at a few hundred calls a second the per-statement commits were
//! what bounded the call rate. Live events, webhook wake-ups and the
//! dialer's wake-up happen only once their batch has committed. If a batch
//! fails, its events are retried one per transaction, so one bad event loses
//! only itself; that failure is logged with the engine call id and the loop
//! goes on.

use crate::error::{ApiError, ApiResult};
use crate::events::LiveEvent;
use crate::model::EngineEvent;
use crate::routes::calls;
use crate::state::AppState;
use crate::store::{self, NewCall};
use crate::webhooks;
use serde_json::json;
use sqlx::AnyConnection;
use tokio::sync::mpsc::UnboundedReceiver;

/// Most events written in one transaction.
pub const MAX_BATCH: usize = 256;

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
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while events.recv_many(&mut batch, MAX_BATCH).await > 0 {
        record_batch(&s, &mut batch).await;
    }
    tracing::debug!("engine event stream closed");
}

/// What an event does outside the database once its transaction committed.
#[derive(Debug)]
enum Effect {
    Publish(&'static str, Target, serde_json::Value),
    WakeWebhooks,
    WakeDialer,
}

/// Record `batch` (emptying it): in one transaction, or one event per
/// transaction if that fails.
async fn record_batch(s: &AppState, batch: &mut Vec<EngineEvent>) {
    if batch.len() > 1 {
        match in_one_transaction(s, batch).await {
            Ok(effects) => {
                apply(s, effects);
                batch.clear();
                return;
            }
            Err(e) => tracing::warn!(
                events = batch.len(),
                error = %e.body.message,
                "a batch of engine events failed; recording them one at a time"
            ),
        }
    }
    for event in batch.drain(..) {
        match in_one_transaction(s, std::slice::from_ref(&event)).await {
            Ok(effects) => apply(s, effects),
            Err(e) => tracing::error!(
                engine_call = %event.engine_call(),
                error = %e.body.message,
                "could not record an engine event"
            ),
        }
    }
}

async fn in_one_transaction(s: &AppState, events: &[EngineEvent]) -> ApiResult<Vec<Effect>> {
    let mut tx = s.db.begin_write().await?;
    let mut effects = Vec::new();
    for event in events {
        record(s, &mut tx, event.clone(), &mut effects).await?;
    }
    tx.commit().await?;
    Ok(effects)
}

fn apply(s: &AppState, effects: Vec<Effect>) {
    let (mut webhooks, mut dialer) = (false, false);
    for e in effects {
        match e {
            Effect::Publish(kind, t, data) => publish(s, kind, &t, data),
            Effect::WakeWebhooks => webhooks = true,
            Effect::WakeDialer => dialer = true,
        }
    }
    if webhooks {
        s.webhook_wake.notify_one();
    }
    if dialer {
        s.dialer_wake.notify_one();
    }
}

/// The call row an event belongs to.
#[derive(Debug, Clone)]
struct Target {
    id: String,
    campaign_id: Option<String>,
    ended: bool,
}

/// The row for `engine_call`: the live one; else one that ended moments
/// ago (events trailing the end); else a new row with unknown fields (an
/// event before `CallStarted` is kept, not dropped).
async fn target(s: &AppState, db: &mut AnyConnection, engine_call: &str) -> ApiResult<Target> {
    let live: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT id, campaign_id FROM calls WHERE engine_call = $1 AND status <> 'ended'",
    )
    .bind(engine_call)
    .fetch_optional(&mut *db)
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
    .fetch_optional(&mut *db)
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
    let id = store::ensure_call_on(
        db,
        s.now_ms(),
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
    let call = calls::load_call_on(db, s.now_ms(), &id).await?;
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

/// Store one event; what it does outside the database goes to `fx`.
async fn record(
    s: &AppState,
    db: &mut AnyConnection,
    event: EngineEvent,
    fx: &mut Vec<Effect>,
) -> ApiResult<()> {
    match event {
        EngineEvent::CallStarted {
            engine_call,
            direction,
            transport,
            agent,
            from,
            to,
        } => {
            let id = store::ensure_call_on(
                db,
                s.now_ms(),
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
            .execute(&mut *db)
            .await?;
            let call = calls::load_call_on(db, s.now_ms(), &id).await?;
            let t = Target {
                id,
                campaign_id: call.campaign_id.clone(),
                ended: false,
            };
            let payload = to_json(&call)?;
            tracing::info!(call = %t.id, engine_call = %engine_call, agent = %agent, "call started");
            fx.push(Effect::Publish("call.started", t.clone(), payload.clone()));
            if webhooks::enqueue_on(db, s.now_ms(), "call.started", &payload).await? > 0 {
                fx.push(Effect::WakeWebhooks);
            }
        }
        EngineEvent::CallAnswered { engine_call } => {
            let t = target(s, db, &engine_call).await?;
            let now = s.now_ms();
            sqlx::query(
                "UPDATE calls SET status = 'live', answered_ms = COALESCE(answered_ms, $1) \
                 WHERE id = $2 AND status <> 'ended'",
            )
            .bind(now)
            .bind(&t.id)
            .execute(&mut *db)
            .await?;
            fx.push(Effect::Publish(
                "call.answered",
                t.clone(),
                json!({ "answered_ms": now }),
            ));
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
            let t = target(s, db, &engine_call).await?;
            let mut data = json!({
                "speaker": speaker,
                "text": text,
                "is_final": is_final,
                "start_ms": start_ms,
                "end_ms": end_ms,
                "interrupted": interrupted,
            });
            if !is_final {
                fx.push(Effect::Publish("transcript.partial", t.clone(), data));
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
            .fetch_one(&mut *db)
            .await?;
            data["seq"] = json!(seq);
            fx.push(Effect::Publish("transcript.final", t.clone(), data.clone()));
            data["call_id"] = json!(t.id);
            if webhooks::enqueue_on(db, s.now_ms(), "transcript.final", &data).await? > 0 {
                fx.push(Effect::WakeWebhooks);
            }
        }
        EngineEvent::Turn {
            engine_call,
            voice_to_voice_ms,
            metrics,
        } => {
            let t = target(s, db, &engine_call).await?;
            let (seq,): (i64,) = sqlx::query_as(
                "INSERT INTO turn_metrics (call_id, seq, voice_to_voice_ms, metrics, created_ms) \
                 SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM turn_metrics WHERE call_id = $1 \
                 RETURNING seq",
            )
            .bind(&t.id)
            .bind(voice_to_voice_ms.filter(|v| v.is_finite()))
            .bind(metrics.to_string())
            .bind(s.now_ms())
            .fetch_one(&mut *db)
            .await?;
            fx.push(Effect::Publish(
                "turn.metrics",
                t.clone(),
                json!({ "seq": seq, "voice_to_voice_ms": voice_to_voice_ms, "metrics": metrics }),
            ));
        }
        EngineEvent::Analysis {
            engine_call,
            analysis,
        } => {
            let t = target(s, db, &engine_call).await?;
            fx.push(Effect::Publish("call.analysis", t.clone(), analysis));
        }
        EngineEvent::Quality {
            engine_call,
            mos,
            loss_percent,
            jitter_ms,
        } => {
            let t = target(s, db, &engine_call).await?;
            sqlx::query(
                "UPDATE calls SET mos = $1, loss_percent = $2, jitter_ms = $3 WHERE id = $4",
            )
            .bind(mos)
            .bind(loss_percent)
            .bind(jitter_ms)
            .bind(&t.id)
            .execute(&mut *db)
            .await?;
            fx.push(Effect::Publish(
                "call.quality",
                t.clone(),
                json!({ "mos": mos, "loss_percent": loss_percent, "jitter_ms": jitter_ms }),
            ));
        }
        EngineEvent::Insights {
            engine_call,
            outcome,
            summary,
            sentiment,
            insights,
        } => {
            let t = target(s, db, &engine_call).await?;
            sqlx::query(
                "UPDATE calls SET outcome = $1, summary = $2, sentiment = $3, insights = $4 WHERE id = $5",
            )
            .bind(&outcome)
            .bind(&summary)
            .bind(sentiment)
            .bind(insights.to_string())
            .bind(&t.id)
            .execute(&mut *db)
            .await?;
            fx.push(Effect::Publish(
                "call.insights",
                t.clone(),
                json!({ "outcome": outcome, "summary": summary, "sentiment": sentiment, "insights": insights }),
            ));
        }
        EngineEvent::CallEnded {
            engine_call,
            reason,
            answered,
        } => {
            let t = target(s, db, &engine_call).await?;
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
            .execute(&mut *db)
            .await?;
            let call = calls::load_call_on(db, s.now_ms(), &t.id).await?;
            tracing::info!(call = %t.id, reason = %reason, answered, "call ended");
            let payload = to_json(&call)?;
            fx.push(Effect::Publish("call.ended", t.clone(), payload.clone()));
            fx.push(Effect::WakeDialer);
            if webhooks::enqueue_on(db, s.now_ms(), "call.ended", &payload).await? > 0 {
                fx.push(Effect::WakeWebhooks);
            }
        }
    }
    Ok(())
}
