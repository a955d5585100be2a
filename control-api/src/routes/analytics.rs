//! `/v1/analytics`: KPIs, time series, latency percentiles and a call-volume
//! forecast. Read-only: the routes fetch rows, [`crate::analytics`]
//! computes. Times are ms since the epoch; ranges are `from_ms..to_ms`
//! (from inclusive, to exclusive) over when calls started, the last 7 days
//! by default.

use crate::analytics::{
    self, Bucket, CallRow, ForecastMethod, GroupBy, GroupKpis, Kpis, LatencyStats, TimeBucket,
    VoicePrice, DAY_MS, MAX_BUCKETS,
};
use crate::error::{ApiError, ApiQuery, ApiResult, ErrorResponse};
use crate::state::AppState;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The analytics routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(kpis))
        .routes(routes!(timeseries))
        .routes(routes!(latency))
        .routes(routes!(forecast))
}

/// The latest time accepted: 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;

/// The default range: the last 7 days.
const DEFAULT_RANGE_MS: i64 = 7 * DAY_MS;

/// A time range.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// From (inclusive), ms since the epoch (default: 7 days before `to_ms`).
    pub from_ms: Option<i64>,
    /// To (exclusive), ms since the epoch (default: now).
    pub to_ms: Option<i64>,
}

impl RangeQuery {
    /// The range, checked.
    fn checked(&self, now: i64) -> ApiResult<(i64, i64)> {
        let in_range = |field: &str, v: i64| {
            if (0..=MAX_MS).contains(&v) {
                Ok(v)
            } else {
                Err(ApiError::validation(
                    field,
                    format!("must be between 0 and {MAX_MS}"),
                ))
            }
        };
        let to = in_range("to_ms", self.to_ms.unwrap_or(now))?;
        let from = in_range(
            "from_ms",
            self.from_ms
                .unwrap_or_else(|| to.saturating_sub(DEFAULT_RANGE_MS).max(0)),
        )?;
        if from > to {
            return Err(ApiError::validation("from_ms", "must not be after to_ms"));
        }
        Ok((from, to))
    }
}

type CallTuple = (
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    i64,
);

/// Calls started in `from..to`, with whether their campaign contact converted.
async fn calls_in(s: &AppState, from: i64, to: i64) -> ApiResult<Vec<CallRow>> {
    let rows: Vec<CallTuple> = sqlx::query_as(
        "SELECT c.agent, c.started_ms, c.answered_ms, c.ended_ms, c.campaign_id, c.variant, c.voice, c.outcome, \
         (SELECT COUNT(*) FROM contacts k WHERE k.call_id = c.id AND k.converted = 1) \
         FROM calls c WHERE c.started_ms >= $1 AND c.started_ms < $2",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&s.db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| CallRow {
            agent: r.0,
            started_ms: r.1,
            answered_ms: r.2,
            ended_ms: r.3,
            campaign_id: r.4,
            variant: r.5,
            voice: r.6,
            outcome: r.7,
            converted: r.8 > 0,
        })
        .collect())
}

/// KPI parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct KpiQuery {
    /// Also report each agent, campaign or variant.
    #[param(inline)]
    pub group_by: Option<GroupBy>,
}

/// KPIs over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct KpiReport {
    /// From (inclusive), ms.
    pub from_ms: i64,
    /// To (exclusive), ms.
    pub to_ms: i64,
    /// As asked.
    pub group_by: Option<GroupBy>,
    /// All calls in the range.
    pub overall: Kpis,
    /// Per group (empty without `group_by`), sorted by key, calls without one first.
    pub groups: Vec<GroupKpis>,
}

/// Call-centre KPIs: calls, answer rate, handle time, containment,
/// conversions, and voice minutes and cost per voice.
#[utoipa::path(get, path = "/v1/analytics/kpis", tag = "analytics",
    params(RangeQuery, KpiQuery),
    responses((status = 200, body = KpiReport), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn kpis(
    State(s): State<AppState>,
    ApiQuery(range): ApiQuery<RangeQuery>,
    ApiQuery(q): ApiQuery<KpiQuery>,
) -> ApiResult<axum::Json<KpiReport>> {
    let (from, to) = range.checked(s.now_ms())?;
    let calls = calls_in(&s, from, to).await?;
    let prices: Vec<(String, String, f64)> =
        sqlx::query_as("SELECT id, provider, price_per_min FROM voice_providers")
            .fetch_all(&s.db.pool)
            .await?;
    let prices: HashMap<String, VoicePrice> = prices
        .into_iter()
        .map(|(id, provider, price_per_min)| {
            (
                id,
                VoicePrice {
                    provider,
                    price_per_min,
                },
            )
        })
        .collect();
    let (overall, groups) = analytics::kpi_groups(&calls, &prices, q.group_by);
    Ok(axum::Json(KpiReport {
        from_ms: from,
        to_ms: to,
        group_by: q.group_by,
        overall,
        groups,
    }))
}

/// Time series parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BucketQuery {
    /// Bucket size (default `hour`), UTC-aligned.
    #[param(inline)]
    pub bucket: Option<Bucket>,
}

/// Calls per bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimeseriesReport {
    /// From (inclusive), ms.
    pub from_ms: i64,
    /// To (exclusive), ms.
    pub to_ms: i64,
    /// Bucket size.
    pub bucket: Bucket,
    /// Every bucket from the one holding `from_ms`, empty ones included.
    pub buckets: Vec<TimeBucket>,
}

/// Calls, answered calls and handle time per hour or day (at most 2000 buckets).
#[utoipa::path(get, path = "/v1/analytics/timeseries", tag = "analytics",
    params(RangeQuery, BucketQuery),
    responses((status = 200, body = TimeseriesReport), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn timeseries(
    State(s): State<AppState>,
    ApiQuery(range): ApiQuery<RangeQuery>,
    ApiQuery(q): ApiQuery<BucketQuery>,
) -> ApiResult<axum::Json<TimeseriesReport>> {
    let (from, to) = range.checked(s.now_ms())?;
    let bucket = q.bucket.unwrap_or(Bucket::Hour);
    let n = analytics::bucket_count(from, to, bucket);
    if n > MAX_BUCKETS {
        return Err(ApiError::validation(
            "to_ms",
            format!("the range holds {n} buckets; at most {MAX_BUCKETS} (use a larger bucket or a shorter range)"),
        ));
    }
    let calls = calls_in(&s, from, to).await?;
    Ok(axum::Json(TimeseriesReport {
        from_ms: from,
        to_ms: to,
        bucket,
        buckets: analytics::timeseries(&calls, from, to, bucket),
    }))
}

/// Latency parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LatencyQuery {
    /// Only this agent's calls.
    pub agent: Option<String>,
}

/// Voice-to-voice latency over a range.
#[derive(Debug, Serialize, ToSchema)]
pub struct LatencyReport {
    /// From (inclusive), ms.
    pub from_ms: i64,
    /// To (exclusive), ms.
    pub to_ms: i64,
    /// As asked.
    pub agent: Option<String>,
    /// Figures in ms (nearest-rank percentiles), over turns recorded in the range.
    #[serde(flatten)]
    pub stats: LatencyStats,
}

/// Voice-to-voice latency percentiles (caller stops speaking → agent audio
/// on the wire) of the turns recorded in the range.
#[utoipa::path(get, path = "/v1/analytics/latency", tag = "analytics",
    params(RangeQuery, LatencyQuery),
    responses((status = 200, body = LatencyReport), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn latency(
    State(s): State<AppState>,
    ApiQuery(range): ApiQuery<RangeQuery>,
    ApiQuery(q): ApiQuery<LatencyQuery>,
) -> ApiResult<axum::Json<LatencyReport>> {
    let (from, to) = range.checked(s.now_ms())?;
    let agent = q.agent.filter(|a| !a.is_empty());
    let rows: Vec<(f64,)> = sqlx::query_as(
        "SELECT t.voice_to_voice_ms FROM turn_metrics t JOIN calls c ON c.id = t.call_id \
         WHERE t.created_ms >= $1 AND t.created_ms < $2 AND t.voice_to_voice_ms IS NOT NULL \
         AND ($3 = '' OR c.agent = $3)",
    )
    .bind(from)
    .bind(to)
    .bind(agent.as_deref().unwrap_or(""))
    .fetch_all(&s.db.pool)
    .await?;
    Ok(axum::Json(LatencyReport {
        from_ms: from,
        to_ms: to,
        agent,
        stats: analytics::latency(rows.into_iter().map(|r| r.0).collect()),
    }))
}

/// Forecast parameters.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// Bucket size (default `day`).
    #[param(inline)]
    pub bucket: Option<Bucket>,
    /// Buckets to forecast: 1–168 hours or 1–90 days (default 24 or 7).
    pub horizon: Option<i64>,
}

/// Calls in one bucket of history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryPoint {
    /// Bucket start, ms (UTC).
    pub start_ms: i64,
    /// Calls started in it.
    pub calls: i64,
}

/// Expected calls in one future bucket.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastPoint {
    /// Bucket start, ms (UTC).
    pub start_ms: i64,
    /// Expected calls (never negative).
    pub calls: f64,
}

/// A call-volume forecast.
#[derive(Debug, Serialize, ToSchema)]
pub struct ForecastReport {
    /// Bucket size.
    pub bucket: Bucket,
    /// How it was made: `day_of_week_average` with at least 14 days of
    /// daily history, `holt_linear` otherwise.
    pub method: ForecastMethod,
    /// The complete buckets it learnt from (from the first call, at most 8
    /// weeks of days or 14 days of hours, up to the current bucket).
    pub history: Vec<HistoryPoint>,
    /// The buckets ahead, from the current one.
    pub forecast: Vec<ForecastPoint>,
}

/// Forecast call volume per hour or day from past calls.
#[utoipa::path(get, path = "/v1/analytics/forecast", tag = "analytics",
    params(ForecastQuery),
    responses((status = 200, body = ForecastReport), (status = 422, body = ErrorResponse)),
    security(("bearer" = [])))]
async fn forecast(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<ForecastQuery>,
) -> ApiResult<axum::Json<ForecastReport>> {
    let bucket = q.bucket.unwrap_or(Bucket::Day);
    let (max_horizon, default_horizon, window) = match bucket {
        Bucket::Hour => (168, 24, 14 * 24),
        Bucket::Day => (90, 7, 8 * 7),
    };
    let horizon = q.horizon.unwrap_or(default_horizon);
    if !(1..=max_horizon).contains(&horizon) {
        return Err(ApiError::validation(
            "horizon",
            format!("must be between 1 and {max_horizon} for {bucket:?} buckets").to_lowercase(),
        ));
    }
    let now = s.now_ms().clamp(0, MAX_MS);
    let end = bucket.floor(now);
    let window_start = (end - window * bucket.ms()).max(0);
    let first: (Option<i64>,) = sqlx::query_as(
        "SELECT MIN(started_ms) FROM calls WHERE started_ms >= $1 AND started_ms < $2",
    )
    .bind(window_start)
    .bind(end)
    .fetch_one(&s.db.pool)
    .await?;
    let start = first.0.map_or(end, |t| bucket.floor(t));
    let calls = calls_in(&s, start, end).await?;
    let history: Vec<HistoryPoint> = analytics::timeseries(&calls, start, end, bucket)
        .into_iter()
        .map(|b| HistoryPoint {
            start_ms: b.start_ms,
            calls: b.calls,
        })
        .collect();
    let series: Vec<f64> = history.iter().map(|h| h.calls as f64).collect();
    let (method, values) = analytics::forecast(&series, start, bucket, horizon as usize);
    Ok(axum::Json(ForecastReport {
        bucket,
        method,
        history,
        forecast: values
            .into_iter()
            .enumerate()
            .map(|(i, calls)| ForecastPoint {
                start_ms: end + i as i64 * bucket.ms(),
                calls,
            })
            .collect(),
    }))
}
