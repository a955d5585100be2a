//! Calling hours: the days and times of day a contact may be called, in the
//! contact's own time zone. Time is an argument (ms since the epoch).

use chrono::{DateTime, Datelike, NaiveDateTime, NaiveTime, TimeZone, Timelike, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A day of the week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Mon,
            Day::Tue => Weekday::Tue,
            Day::Wed => Weekday::Wed,
            Day::Thu => Weekday::Thu,
            Day::Fri => Weekday::Fri,
            Day::Sat => Weekday::Sat,
            Day::Sun => Weekday::Sun,
        }
    }
}

/// Why a time of day is not `HH:MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeOfDayError {
    /// Not `HH:MM`.
    #[error("must be HH:MM (24-hour), 00:00 to 24:00")]
    Format,
}

/// Minutes since midnight for `HH:MM` (`24:00` is the end of the day).
pub fn parse_hhmm(s: &str) -> Result<u32, TimeOfDayError> {
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' {
        return Err(TimeOfDayError::Format);
    }
    let num = |x: &[u8]| -> Result<u32, TimeOfDayError> {
        if x.iter().all(u8::is_ascii_digit) {
            Ok(u32::from(x[0] - b'0') * 10 + u32::from(x[1] - b'0'))
        } else {
            Err(TimeOfDayError::Format)
        }
    };
    let (h, m) = (num(&b[0..2])?, num(&b[3..5])?);
    if m > 59 || h > 24 || (h == 24 && m != 0) {
        return Err(TimeOfDayError::Format);
    }
    Ok(h * 60 + m)
}

/// When calls may be placed: on `days`, from `start` until `end` (minutes
/// since local midnight, `start < end`), in whichever zone is asked about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallingWindow {
    days: [bool; 7],
    start_min: u32,
    end_min: u32,
}

impl CallingWindow {
    /// A window; `None` unless there is a day and `start < end <= 24:00`.
    pub fn new(days: &[Day], start_min: u32, end_min: u32) -> Option<CallingWindow> {
        if days.is_empty() || start_min >= end_min || end_min > 24 * 60 {
            return None;
        }
        let mut d = [false; 7];
        for day in days {
            d[day.weekday().num_days_from_monday() as usize] = true;
        }
        Some(CallingWindow {
            days: d,
            start_min,
            end_min,
        })
    }

    fn open_on(&self, w: Weekday) -> bool {
        self.days[w.num_days_from_monday() as usize]
    }

    /// Whether `now_ms` is inside the window in `tz`.
    pub fn contains(&self, tz: Tz, now_ms: i64) -> bool {
        let Some(local) = local(tz, now_ms) else {
            return false;
        };
        let minute = local.hour() * 60 + local.minute();
        self.open_on(local.weekday()) && self.start_min <= minute && minute < self.end_min
    }

    /// The first moment at or after `now_ms` inside the window in `tz`:
    /// `now_ms` itself when inside. A start time that a daylight-saving
    /// change skips moves an hour later.
    pub fn next_start(&self, tz: Tz, now_ms: i64) -> Option<i64> {
        if self.contains(tz, now_ms) {
            return Some(now_ms);
        }
        let today = local(tz, now_ms)?.date_naive();
        let start = NaiveTime::from_hms_opt(self.start_min / 60, self.start_min % 60, 0)?;
        (0..=8u64)
            .filter_map(|d| today.checked_add_days(chrono::Days::new(d)))
            .filter(|date| self.open_on(date.weekday()))
            .filter_map(|date| resolve(tz, date.and_time(start)))
            .find(|&t| t > now_ms)
    }
}

fn local(tz: Tz, ms: i64) -> Option<DateTime<Tz>> {
    DateTime::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz))
}

fn resolve(tz: Tz, local: NaiveDateTime) -> Option<i64> {
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + chrono::Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Europe};

    /// 2026-01-05T15:00:00Z, a Monday.
    const T0: i64 = 1_767_625_200_000;
    const HOUR: i64 = 3_600_000;

    fn weekdays_9_to_5() -> CallingWindow {
        use Day::*;
        CallingWindow::new(&[Mon, Tue, Wed, Thu, Fri], 9 * 60, 17 * 60).unwrap()
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(parse_hhmm("09:00"), Ok(540));
        assert_eq!(parse_hhmm("23:59"), Ok(1439));
        assert_eq!(parse_hhmm("24:00"), Ok(1440));
        for bad in [
            "9:00", "09:60", "24:01", "25:00", "0900", "ab:cd", "09:00 ", "+9:00", "",
        ] {
            assert_eq!(parse_hhmm(bad), Err(TimeOfDayError::Format), "{bad}");
        }
    }

    #[test]
    fn windows_need_a_day_and_an_order() {
        assert!(CallingWindow::new(&[], 0, 60).is_none());
        assert!(CallingWindow::new(&[Day::Mon], 600, 600).is_none());
        assert!(CallingWindow::new(&[Day::Mon], 600, 500).is_none());
        assert!(CallingWindow::new(&[Day::Mon], 0, 1440).is_some());
    }

    #[test]
    fn the_window_is_read_in_the_contacts_zone() {
        let w = weekdays_9_to_5();
        // 15:00 in London, 07:00 in Los Angeles.
        assert!(w.contains(Europe::London, T0));
        assert!(!w.contains(America::Los_Angeles, T0));
        assert_eq!(w.next_start(Europe::London, T0), Some(T0));
        // Los Angeles opens at 09:00 PST = 17:00 UTC.
        assert_eq!(w.next_start(America::Los_Angeles, T0), Some(T0 + 2 * HOUR));
        assert!(w.contains(America::Los_Angeles, T0 + 2 * HOUR));
        assert!(!w.contains(America::Los_Angeles, T0 + 2 * HOUR - 1));
        // London closes at 17:00 and reopens Tuesday 09:00 (16 hours later).
        assert!(!w.contains(Europe::London, T0 + 2 * HOUR));
        assert_eq!(
            w.next_start(Europe::London, T0 + 2 * HOUR),
            Some(T0 + 18 * HOUR)
        );
    }

    #[test]
    fn weekends_are_skipped() {
        let w = weekdays_9_to_5();
        // Friday 2026-01-09 18:00 London -> Monday 2026-01-12 09:00.
        let fri_18 = T0 + 4 * 24 * HOUR + 3 * HOUR;
        let mon_9 = T0 + 7 * 24 * HOUR - 6 * HOUR;
        assert_eq!(w.next_start(Europe::London, fri_18), Some(mon_9));
        // A Sunday-only window seen from Monday is six days away.
        let sun = CallingWindow::new(&[Day::Sun], 10 * 60, 11 * 60).unwrap();
        assert_eq!(
            sun.next_start(Europe::London, T0),
            Some(T0 + 6 * 24 * HOUR - 5 * HOUR)
        );
    }

    #[test]
    fn a_start_skipped_by_daylight_saving_moves_an_hour_later() {
        // Sunday 2026-03-08: Los Angeles goes from 02:00 PST to 03:00 PDT.
        let w = CallingWindow::new(&[Day::Sun], 2 * 60 + 30, 4 * 60).unwrap();
        let sat_noon_utc = 1_772_884_800_000; // 2026-03-07T12:00:00Z
        let t = w.next_start(America::Los_Angeles, sat_noon_utc).unwrap();
        // 03:30 PDT = 10:30 UTC on 2026-03-08.
        assert_eq!(t, 1_772_965_800_000);
        assert!(w.contains(America::Los_Angeles, t));
    }
}
