//! Call analytics as pure computations over rows the routes fetch: KPIs,
//! time series, latency percentiles and a call-volume forecast. Nothing
//! here reads the clock or the database, so each figure is unit-tested.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use utoipa::ToSchema;

/// An hour, ms.
pub const HOUR_MS: i64 = 3_600_000;
/// A day, ms.
pub const DAY_MS: i64 = 86_400_000;
/// Most buckets a time series may have.
pub const MAX_BUCKETS: i64 = 2000;

/// A time bucket (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    /// One hour.
    Hour,
    /// One UTC day.
    Day,
}

impl Bucket {
    /// Its length, ms.
    pub fn ms(self) -> i64 {
        match self {
            Bucket::Hour => HOUR_MS,
            Bucket::Day => DAY_MS,
        }
    }
    /// The start of the bucket holding `t`.
    pub fn floor(self, t: i64) -> i64 {
        t - t.rem_euclid(self.ms())
    }
}

/// What KPIs are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    /// The agent that talked.
    Agent,
    /// The campaign that dialled (none for other calls).
    Campaign,
    /// The campaign's A/B variant (none for other calls).
    Variant,
}

/// One call, as analytics needs it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallRow {
    /// Agent name.
    pub agent: String,
    /// Started, ms.
    pub started_ms: i64,
    /// Answered, ms.
    pub answered_ms: Option<i64>,
    /// Ended, ms.
    pub ended_ms: Option<i64>,
    /// Campaign that placed it.
    pub campaign_id: Option<String>,
    /// Campaign variant.
    pub variant: Option<String>,
    /// Voice id it spoke with.
    pub voice: Option<String>,
    /// `completed`, `transferred`, …
    pub outcome: Option<String>,
    /// Its campaign contact converted.
    pub converted: bool,
}

impl CallRow {
    fn answered(&self) -> bool {
        self.answered_ms.is_some()
    }
    /// Answered → ended, ms (none while live or unanswered).
    fn handle_ms(&self) -> Option<i64> {
        match (self.answered_ms, self.ended_ms) {
            (Some(a), Some(e)) if e >= a => Some(e - a),
            _ => None,
        }
    }
    fn key(&self, by: GroupBy) -> Option<String> {
        match by {
            GroupBy::Agent => Some(self.agent.clone()),
            GroupBy::Campaign => self.campaign_id.clone(),
            GroupBy::Variant => self.variant.clone(),
        }
    }
}

/// A voice's provider and price.
#[derive(Debug, Clone, PartialEq)]
pub struct VoicePrice {
    /// Provider (`elevenlabs`, …).
    pub provider: String,
    /// Price per minute spoken.
    pub price_per_min: f64,
}

/// Minutes and cost of one voice.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct VoiceUsage {
    /// Voice id.
    pub voice: String,
    /// Its provider (`local` for voices the engine speaks itself).
    pub provider: String,
    /// Connected minutes (answered → ended) of calls with this voice.
    pub minutes: f64,
    /// Price per minute (0 for local voices).
    pub price_per_min: f64,
    /// minutes × price_per_min.
    pub cost: f64,
}

/// Call-centre KPIs over a set of calls.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Kpis {
    /// Calls started in the range.
    pub calls: i64,
    /// Of which answered.
    pub answered: i64,
    /// answered / calls (none without calls).
    pub answer_rate: Option<f64>,
    /// Mean answered → ended, seconds, over ended answered calls.
    pub avg_handle_time_s: Option<f64>,
    /// Answered calls not transferred to a person / answered.
    pub containment_rate: Option<f64>,
    /// Answered campaign calls.
    pub campaign_answered: i64,
    /// Campaign calls whose contact converted.
    pub conversions: i64,
    /// conversions / campaign_answered.
    pub conversion_rate: Option<f64>,
    /// Minutes and cost per voice.
    pub voices: Vec<VoiceUsage>,
}

/// KPIs of one group.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct GroupKpis {
    /// The agent, campaign id or variant (none: calls without one).
    pub key: Option<String>,
    /// Its KPIs.
    #[serde(flatten)]
    pub kpis: Kpis,
}

fn ratio(n: i64, d: i64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

/// `x` rounded to 6 decimals (money and minutes).
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// KPIs of `calls`, voices priced by `prices` (voice id → price; voices
/// not there are local and cost nothing).
pub fn kpis(calls: &[&CallRow], prices: &HashMap<String, VoicePrice>) -> Kpis {
    let n = calls.len() as i64;
    let answered: Vec<&&CallRow> = calls.iter().filter(|c| c.answered()).collect();
    let handles: Vec<i64> = answered.iter().filter_map(|c| c.handle_ms()).collect();
    let contained = answered
        .iter()
        .filter(|c| c.outcome.as_deref() != Some("transferred"))
        .count() as i64;
    let campaign_answered = answered.iter().filter(|c| c.campaign_id.is_some()).count() as i64;
    let conversions = calls
        .iter()
        .filter(|c| c.campaign_id.is_some() && c.converted)
        .count() as i64;
    let mut ms_by_voice: BTreeMap<&str, i64> = BTreeMap::new();
    for c in &answered {
        if let Some(v) = c.voice.as_deref() {
            *ms_by_voice.entry(v).or_default() += c.handle_ms().unwrap_or(0);
        }
    }
    let voices = ms_by_voice
        .into_iter()
        .map(|(voice, ms)| {
            let minutes = ms as f64 / 60_000.0;
            let (provider, price) = prices
                .get(voice)
                .map_or(("local", 0.0), |p| (p.provider.as_str(), p.price_per_min));
            VoiceUsage {
                voice: voice.to_string(),
                provider: provider.to_string(),
                minutes: round6(minutes),
                price_per_min: price,
                cost: round6(minutes * price),
            }
        })
        .collect();
    Kpis {
        calls: n,
        answered: answered.len() as i64,
        answer_rate: ratio(answered.len() as i64, n),
        avg_handle_time_s: (!handles.is_empty())
            .then(|| handles.iter().sum::<i64>() as f64 / handles.len() as f64 / 1000.0),
        containment_rate: ratio(contained, answered.len() as i64),
        campaign_answered,
        conversions,
        conversion_rate: ratio(conversions, campaign_answered),
        voices,
    }
}

/// KPIs of all `calls` and, with `group_by`, of each group (sorted by key,
/// calls without one first).
pub fn kpi_groups(
    calls: &[CallRow],
    prices: &HashMap<String, VoicePrice>,
    group_by: Option<GroupBy>,
) -> (Kpis, Vec<GroupKpis>) {
    let all: Vec<&CallRow> = calls.iter().collect();
    let overall = kpis(&all, prices);
    let Some(by) = group_by else {
        return (overall, Vec::new());
    };
    let mut groups: BTreeMap<Option<String>, Vec<&CallRow>> = BTreeMap::new();
    for c in calls {
        groups.entry(c.key(by)).or_default().push(c);
    }
    let groups = groups
        .into_iter()
        .map(|(key, calls)| GroupKpis {
            key,
            kpis: kpis(&calls, prices),
        })
        .collect();
    (overall, groups)
}

/// How many `bucket`s cover `from_ms..to_ms` (the first starting at or
/// before `from_ms`).
pub fn bucket_count(from_ms: i64, to_ms: i64, bucket: Bucket) -> i64 {
    let start = bucket.floor(from_ms);
    let span = to_ms.saturating_sub(start).max(0);
    span / bucket.ms() + i64::from(span % bucket.ms() != 0)
}

/// One bucket of a time series.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TimeBucket {
    /// Bucket start, ms (UTC).
    pub start_ms: i64,
    /// Calls started in it.
    pub calls: i64,
    /// Of which answered.
    pub answered: i64,
    /// Mean answered → ended, seconds.
    pub avg_handle_time_s: Option<f64>,
}

/// Calls per bucket over `from_ms..to_ms`, empty buckets included. Calls
/// outside the range are ignored.
pub fn timeseries(calls: &[CallRow], from_ms: i64, to_ms: i64, bucket: Bucket) -> Vec<TimeBucket> {
    let start = bucket.floor(from_ms);
    let n = bucket_count(from_ms, to_ms, bucket).clamp(0, MAX_BUCKETS) as usize;
    let mut sums = vec![(0_i64, 0_i64, 0_i64, 0_i64); n];
    for c in calls {
        if c.started_ms < from_ms || c.started_ms >= to_ms {
            continue;
        }
        let i = ((c.started_ms - start) / bucket.ms()) as usize;
        let Some(s) = sums.get_mut(i) else { continue };
        s.0 += 1;
        if c.answered() {
            s.1 += 1;
        }
        if let Some(h) = c.handle_ms() {
            s.2 += h;
            s.3 += 1;
        }
    }
    sums.into_iter()
        .enumerate()
        .map(|(i, (calls, answered, handle_ms, handled))| TimeBucket {
            start_ms: start + i as i64 * bucket.ms(),
            calls,
            answered,
            avg_handle_time_s: (handled > 0).then(|| handle_ms as f64 / handled as f64 / 1000.0),
        })
        .collect()
}

/// Latency figures, ms.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct LatencyStats {
    /// Turns measured.
    pub count: i64,
    /// Median.
    pub p50: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Slowest.
    pub max: Option<f64>,
}

/// The nearest-rank `p`th percentile (0 < p ≤ 100) of ascending `sorted`:
/// the value at rank ⌈p/100 × n⌉.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

/// Percentiles of `values` (non-finite values are dropped).
pub fn latency(mut values: Vec<f64>) -> LatencyStats {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    LatencyStats {
        count: values.len() as i64,
        p50: percentile(&values, 50.0),
        p90: percentile(&values, 90.0),
        p95: percentile(&values, 95.0),
        p99: percentile(&values, 99.0),
        max: values.last().copied(),
    }
}

/// How a forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ForecastMethod {
    /// Holt's linear exponential smoothing (level and trend).
    HoltLinear,
    /// The mean of past days falling on the same weekday.
    DayOfWeekAverage,
}

/// Daily history needed for the day-of-week method.
pub const SEASONAL_MIN_DAYS: usize = 14;

/// Smoothing factors tried by [`holt`].
const GRID: [f64; 9] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];

/// Holt's linear method run over `y` with factors `alpha`, `beta`: the
/// final level and trend, and the sum of squared one-step errors.
fn holt_fit(y: &[f64], alpha: f64, beta: f64) -> (f64, f64, f64) {
    let (mut level, mut trend) = match y {
        [] => return (0.0, 0.0, 0.0),
        [a] => return (*a, 0.0, 0.0),
        [a, b, ..] => (*a, b - a),
    };
    let mut sse = 0.0;
    for &v in &y[1..] {
        let predicted = level + trend;
        sse += (v - predicted).powi(2);
        let previous = level;
        level = alpha * v + (1.0 - alpha) * predicted;
        trend = beta * (level - previous) + (1.0 - beta) * trend;
    }
    (level, trend, sse)
}

/// Holt's linear forecast of the `horizon` values after `y`, with the
/// smoothing factors (from a 0.1-step grid) that predict `y` best one step
/// ahead. Not clamped.
pub fn holt(y: &[f64], horizon: usize) -> Vec<f64> {
    let mut best = (f64::INFINITY, 0.0, 0.0);
    for &alpha in &GRID {
        for &beta in &GRID {
            let (level, trend, sse) = holt_fit(y, alpha, beta);
            if sse < best.0 {
                best = (sse, level, trend);
            }
        }
    }
    let (_, level, trend) = best;
    (1..=horizon).map(|h| level + h as f64 * trend).collect()
}

/// For each of the `horizon` days after a daily history starting on
/// `first_day_ms`, the mean of the history's days on the same weekday.
pub fn day_of_week_average(y: &[f64], first_day_ms: i64, horizon: usize) -> Vec<f64> {
    let weekday = |day_ms: i64| day_ms.div_euclid(DAY_MS).rem_euclid(7);
    let mut sums = [(0.0, 0_u32); 7];
    for (i, v) in y.iter().enumerate() {
        let s = &mut sums[weekday(first_day_ms + i as i64 * DAY_MS) as usize];
        s.0 += v;
        s.1 += 1;
    }
    (0..horizon)
        .map(|h| {
            let (sum, n) = sums[weekday(first_day_ms + (y.len() + h) as i64 * DAY_MS) as usize];
            if n == 0 {
                0.0
            } else {
                sum / f64::from(n)
            }
        })
        .collect()
}

/// Forecast `horizon` buckets after `history` (buckets from `first_ms`):
/// day-of-week averages with at least two weeks of days, Holt's linear
/// method otherwise. Never negative; rounded to 3 decimals.
pub fn forecast(
    history: &[f64],
    first_ms: i64,
    bucket: Bucket,
    horizon: usize,
) -> (ForecastMethod, Vec<f64>) {
    let (method, values) = if bucket == Bucket::Day && history.len() >= SEASONAL_MIN_DAYS {
        (
            ForecastMethod::DayOfWeekAverage,
            day_of_week_average(history, first_ms, horizon),
        )
    } else {
        (ForecastMethod::HoltLinear, holt(history, horizon))
    };
    let values = values
        .into_iter()
        .map(|v| ((v.max(0.0)) * 1000.0).round() / 1000.0)
        .collect();
    (method, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(agent: &str, started: i64) -> CallRow {
        CallRow {
            agent: agent.into(),
            started_ms: started,
            ..CallRow::default()
        }
    }

    fn answered(agent: &str, started: i64, talk_ms: i64) -> CallRow {
        CallRow {
            answered_ms: Some(started + 1_000),
            ended_ms: Some(started + 1_000 + talk_ms),
            ..call(agent, started)
        }
    }

    #[test]
    fn kpis_count_rates_handle_time_containment_and_conversions() {
        let mut transferred = answered("b", 0, 30_000);
        transferred.outcome = Some("transferred".into());
        let mut converted = answered("a", 0, 90_000);
        converted.campaign_id = Some("cp_1".into());
        converted.converted = true;
        let mut campaign_lost = answered("a", 0, 30_000);
        campaign_lost.campaign_id = Some("cp_1".into());
        let mut live = call("a", 0);
        live.answered_ms = Some(500);
        let calls = [
            transferred,
            converted,
            campaign_lost,
            live,
            call("a", 0),
            call("b", 0),
            answered("a", 0, 30_000),
            call("a", 0),
        ];
        let (all, groups) = kpi_groups(&calls, &HashMap::new(), Some(GroupBy::Agent));
        assert_eq!(all.calls, 8);
        assert_eq!(all.answered, 5);
        assert_eq!(all.answer_rate, Some(5.0 / 8.0));
        // 30 + 90 + 30 + 30 s over the 4 ended answered calls.
        assert_eq!(all.avg_handle_time_s, Some(45.0));
        assert_eq!(all.containment_rate, Some(4.0 / 5.0));
        assert_eq!(all.campaign_answered, 2);
        assert_eq!(all.conversions, 1);
        assert_eq!(all.conversion_rate, Some(0.5));
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].key.as_deref(), Some("a"));
        assert_eq!((groups[0].kpis.calls, groups[0].kpis.answered), (6, 4));
        assert_eq!(groups[1].kpis.containment_rate, Some(0.0));
        assert_eq!(groups[1].kpis.conversion_rate, None);

        let (_, by_campaign) = kpi_groups(&calls, &HashMap::new(), Some(GroupBy::Campaign));
        assert_eq!(by_campaign[0].key, None);
        assert_eq!(by_campaign[0].kpis.calls, 6);
        assert_eq!(by_campaign[1].key.as_deref(), Some("cp_1"));
    }

    #[test]
    fn nothing_to_divide_by_is_none_not_nan() {
        let k = kpis(&[], &HashMap::new());
        assert_eq!(k.calls, 0);
        assert_eq!(k.answer_rate, None);
        assert_eq!(k.avg_handle_time_s, None);
        assert_eq!(k.containment_rate, None);
        assert_eq!(k.conversion_rate, None);
    }

    #[test]
    fn voices_are_priced_by_their_provider_and_local_ones_are_free() {
        let mut a = answered("a", 0, 90_000);
        a.voice = Some("eleven-rachel".into());
        let mut b = answered("a", 0, 30_000);
        b.voice = Some("eleven-rachel".into());
        let mut c = answered("a", 0, 60_000);
        c.voice = Some("en_US-lessac-medium".into());
        let mut unanswered = call("a", 0);
        unanswered.voice = Some("eleven-rachel".into());
        let prices = HashMap::from([(
            "eleven-rachel".to_string(),
            VoicePrice {
                provider: "elevenlabs".into(),
                price_per_min: 0.3,
            },
        )]);
        let calls = [a, b, c, unanswered];
        let refs: Vec<&CallRow> = calls.iter().collect();
        let k = kpis(&refs, &prices);
        assert_eq!(
            k.voices,
            [
                VoiceUsage {
                    voice: "eleven-rachel".into(),
                    provider: "elevenlabs".into(),
                    minutes: 2.0,
                    price_per_min: 0.3,
                    cost: 0.6,
                },
                VoiceUsage {
                    voice: "en_US-lessac-medium".into(),
                    provider: "local".into(),
                    minutes: 1.0,
                    price_per_min: 0.0,
                    cost: 0.0,
                }
            ]
        );
    }

    #[test]
    fn buckets_are_utc_aligned_and_counted() {
        // 15:00 UTC on a Monday.
        let t0 = 1_767_625_200_000;
        assert_eq!(Bucket::Day.floor(t0), t0 - 15 * HOUR_MS);
        assert_eq!(bucket_count(t0, t0 + 3 * HOUR_MS, Bucket::Hour), 3);
        assert_eq!(bucket_count(t0 + 1, t0 + 3 * HOUR_MS, Bucket::Hour), 3);
        assert_eq!(bucket_count(t0, t0 + 3 * HOUR_MS + 1, Bucket::Hour), 4);
        assert_eq!(bucket_count(t0, t0, Bucket::Hour), 0);
        assert_eq!(bucket_count(t0, t0 + DAY_MS, Bucket::Day), 2);
        assert_eq!(
            bucket_count(0, i64::MAX, Bucket::Hour),
            i64::MAX / HOUR_MS + 1
        );
    }

    #[test]
    fn timeseries_fills_empty_buckets() {
        let t0 = 1_767_625_200_000;
        let calls = [
            answered("a", t0 + 10, 20_000),
            call("a", t0 + 20),
            answered("a", t0 + 2 * HOUR_MS, 40_000),
            answered("a", t0 + 2 * HOUR_MS + 5, 60_000),
            call("a", t0 + 3 * HOUR_MS),
        ];
        let ts = timeseries(&calls, t0, t0 + 3 * HOUR_MS, Bucket::Hour);
        assert_eq!(
            ts,
            [
                TimeBucket {
                    start_ms: t0,
                    calls: 2,
                    answered: 1,
                    avg_handle_time_s: Some(20.0)
                },
                TimeBucket {
                    start_ms: t0 + HOUR_MS,
                    calls: 0,
                    answered: 0,
                    avg_handle_time_s: None
                },
                TimeBucket {
                    start_ms: t0 + 2 * HOUR_MS,
                    calls: 2,
                    answered: 2,
                    avg_handle_time_s: Some(50.0)
                },
            ]
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        // ceil(0.5 * 20) = 10, ceil(0.9 * 20) = 18, ceil(0.95 * 20) = 19, ceil(0.99 * 20) = 20.
        assert_eq!(
            latency(v.clone()),
            LatencyStats {
                count: 20,
                p50: Some(10.0),
                p90: Some(18.0),
                p95: Some(19.0),
                p99: Some(20.0),
                max: Some(20.0)
            }
        );
        // Order does not matter; NaN is dropped.
        let mut shuffled: Vec<f64> = v.iter().rev().copied().collect();
        shuffled.push(f64::NAN);
        assert_eq!(latency(shuffled).p90, Some(18.0));
        assert_eq!(percentile(&[15., 20., 35., 40., 50.], 30.0), Some(20.0));
        assert_eq!(percentile(&[15., 20., 35., 40., 50.], 40.0), Some(20.0));
        assert_eq!(percentile(&[15., 20., 35., 40., 50.], 50.0), Some(35.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        let empty = latency(Vec::new());
        assert_eq!((empty.count, empty.p50, empty.max), (0, None, None));
    }

    #[test]
    fn holt_continues_a_linear_trend() {
        let y: Vec<f64> = (0..30).map(|i| 10.0 + 3.0 * f64::from(i)).collect();
        let f = holt(&y, 5);
        for (h, v) in f.iter().enumerate() {
            let want = 10.0 + 3.0 * (30 + h) as f64;
            assert!((v - want).abs() < 1e-9, "step {h}: {v} vs {want}");
        }
        // A noisy upward series still forecasts upward.
        let noisy: Vec<f64> = (0..40)
            .map(|i| 20.0 + 2.0 * f64::from(i) + if i % 2 == 0 { 3.0 } else { -3.0 })
            .collect();
        let f = holt(&noisy, 3);
        assert!(f[0] > 90.0 && f[0] < 110.0 && f[2] > f[0], "{f:?}");
    }

    #[test]
    fn forecasts_never_go_negative() {
        let falling: Vec<f64> = (0..10).map(|i| 50.0 - 10.0 * f64::from(i)).collect();
        let (method, f) = forecast(&falling, 0, Bucket::Hour, 4);
        assert_eq!(method, ForecastMethod::HoltLinear);
        assert_eq!(f, [0.0; 4]);
        assert_eq!(forecast(&[], 0, Bucket::Day, 2).1, [0.0, 0.0]);
        assert_eq!(forecast(&[4.0], 0, Bucket::Day, 2).1, [4.0, 4.0]);
    }

    #[test]
    fn two_weeks_of_days_forecast_by_weekday() {
        // Busy weekdays, quiet weekends: 2026-01-05 is a Monday.
        let monday = 1_767_571_200_000;
        let week = [10.0, 12.0, 14.0, 16.0, 18.0, 2.0, 1.0];
        let mut y: Vec<f64> = week.iter().chain(week.iter()).copied().collect();
        y[0] = 20.0; // first Monday 20, second 10: mean 15
        let (method, f) = forecast(&y, monday, Bucket::Day, 8);
        assert_eq!(method, ForecastMethod::DayOfWeekAverage);
        assert_eq!(f, [15.0, 12.0, 14.0, 16.0, 18.0, 2.0, 1.0, 15.0]);
        // Thirteen days are not enough: Holt.
        assert_eq!(
            forecast(&y[..13], monday, Bucket::Day, 1).0,
            ForecastMethod::HoltLinear
        );
        // Hours never use the weekday method.
        assert_eq!(
            forecast(&y, monday, Bucket::Hour, 1).0,
            ForecastMethod::HoltLinear
        );
    }
}
