//! Checking a caller's answer: digits, yes/no, numbers, dates and times,
//! free text. Pure functions of the answer (and, for dates, of a reference
//! date passed in: nothing here reads the clock).

use super::model::{AskNode, InputMode, ValidationKind};
use crate::brain::TurnInput;

/// A day in the proleptic Gregorian calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CalendarDate {
    /// Year (2026).
    pub year: i32,
    /// Month, 1..=12.
    pub month: u8,
    /// Day of the month, 1..=31.
    pub day: u8,
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

impl CalendarDate {
    /// A valid date, or `None`.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Self> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(CalendarDate { year, month, day })
    }

    /// Days since 1970-01-01 (negative before).
    pub fn to_days(self) -> i64 {
        // Shift the year to start in March so the leap day comes last.
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// The date `days` days after 1970-01-01.
    pub fn from_days(days: i64) -> Self {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        CalendarDate { year, month, day }
    }

    /// The date `n` days later (earlier when negative).
    pub fn add_days(self, n: i64) -> Self {
        Self::from_days(self.to_days() + n)
    }

    /// Day of the week, 0 = Sunday.
    pub fn weekday(self) -> u8 {
        // 1970-01-01 was a Thursday.
        (self.to_days() + 4).rem_euclid(7) as u8
    }

    /// `2026-03-05`.
    pub fn iso(self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `Thursday, March 5`.
    pub fn spoken(self) -> String {
        let wd = WEEKDAYS[usize::from(self.weekday())];
        let m = MONTHS[usize::from(self.month - 1)];
        format!("{}, {} {}", capitalise(wd), capitalise(m), self.day)
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// An accepted answer: what goes in the variable, and a form to speak back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collected {
    /// The normalised value (`12345`, `yes`, `42`, `2026-03-05 15:00`).
    pub value: String,
    /// How to say it back (`Thursday, March 5 at 3 PM`).
    pub spoken: String,
}

/// Why an answer was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CollectError {
    /// Speech where only keys are accepted, or the reverse.
    #[error("{got} input is not accepted here")]
    WrongInput {
        /// `speech` or `dtmf`.
        got: &'static str,
    },
    /// Nothing usable in the answer.
    #[error("no {expected} heard")]
    NotUnderstood {
        /// What was expected.
        expected: &'static str,
    },
    /// Too short or too long.
    #[error("{len} characters, expected {min}..={max}")]
    Length {
        /// What was given.
        len: usize,
        /// Fewest allowed.
        min: usize,
        /// Most allowed.
        max: usize,
    },
    /// A number outside its range.
    #[error("{value} is outside {min}..={max}")]
    OutOfRange {
        /// What was given.
        value: i64,
        /// Smallest allowed.
        min: i64,
        /// Largest allowed.
        max: i64,
    },
}

/// Check `input` against `ask`'s rules. `today` anchors relative dates.
pub fn collect(
    ask: &AskNode,
    input: &TurnInput,
    today: CalendarDate,
) -> Result<Collected, CollectError> {
    let (is_dtmf, text) = match input {
        TurnInput::Speech { text, .. } => (false, text.as_str()),
        TurnInput::Dtmf { digits, .. } => (true, digits.as_str()),
        #[allow(unreachable_patterns)]
        _ => (false, ""),
    };
    match (ask.input, is_dtmf) {
        (InputMode::Speech, true) => return Err(CollectError::WrongInput { got: "dtmf" }),
        (InputMode::Dtmf, false) => return Err(CollectError::WrongInput { got: "speech" }),
        _ => {}
    }
    let kind = ValidationKind::parse(&ask.validate).unwrap_or(ValidationKind::Text);
    let length = |s: &str| -> Result<(), CollectError> {
        let len = s.chars().count();
        let min = ask.min_length.map_or(0, |v| v as usize);
        let max = ask.max_length.map_or(usize::MAX, |v| v as usize);
        if len < min.max(1) || len > max {
            return Err(CollectError::Length {
                len,
                min: min.max(1),
                max,
            });
        }
        Ok(())
    };
    match kind {
        ValidationKind::Text => {
            let t = text.trim();
            length(t)?;
            Ok(Collected {
                value: t.to_string(),
                spoken: t.to_string(),
            })
        }
        ValidationKind::Digits => {
            let d = if is_dtmf {
                text.chars().filter(char::is_ascii_digit).collect()
            } else {
                parse_digits(text).ok_or(CollectError::NotUnderstood { expected: "digits" })?
            };
            if d.is_empty() {
                return Err(CollectError::NotUnderstood { expected: "digits" });
            }
            length(&d)?;
            let spoken = d.chars().map(String::from).collect::<Vec<_>>().join(" ");
            Ok(Collected { value: d, spoken })
        }
        ValidationKind::YesNo => {
            let yes = if is_dtmf {
                match text.trim() {
                    "1" => Some(true),
                    "2" => Some(false),
                    _ => None,
                }
            } else {
                parse_yes_no(text)
            };
            let v = if yes.ok_or(CollectError::NotUnderstood {
                expected: "yes or no",
            })? {
                "yes"
            } else {
                "no"
            };
            Ok(Collected {
                value: v.into(),
                spoken: v.into(),
            })
        }
        ValidationKind::Number => {
            let n = if is_dtmf {
                text.trim().parse::<i64>().ok()
            } else {
                parse_number(text)
            }
            .ok_or(CollectError::NotUnderstood { expected: "number" })?;
            let (min, max) = (ask.min.unwrap_or(i64::MIN), ask.max.unwrap_or(i64::MAX));
            if n < min || n > max {
                return Err(CollectError::OutOfRange { value: n, min, max });
            }
            Ok(Collected {
                value: n.to_string(),
                spoken: n.to_string(),
            })
        }
        ValidationKind::DateTime => {
            if is_dtmf {
                return Err(CollectError::WrongInput { got: "dtmf" });
            }
            let dt =
                parse_date_time(text, today, ask.day_first).ok_or(CollectError::NotUnderstood {
                    expected: "date or time",
                })?;
            Ok(Collected {
                value: dt.value(),
                spoken: dt.spoken(),
            })
        }
    }
}

fn words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | '.' | '!' | '?' | ';' | '-'))
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != ':' && c != '/')
        })
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn digit_word(w: &str) -> Option<char> {
    Some(match w {
        "zero" | "oh" | "o" => '0',
        "one" => '1',
        "two" | "to" | "too" => '2',
        "three" => '3',
        "four" | "for" => '4',
        "five" => '5',
        "six" => '6',
        "seven" => '7',
        "eight" => '8',
        "nine" => '9',
        _ => return None,
    })
}

/// Digits spoken or written: "one two three", "1 2 3", "4 oh 5",
/// "double seven". Other words are ignored; `None` when no digit is heard.
pub fn parse_digits(text: &str) -> Option<String> {
    let ws = words(text);
    let mut out = String::new();
    let mut repeat = 1;
    let mut any_numeral = false;
    for w in &ws {
        if w.chars().all(|c| c.is_ascii_digit()) {
            any_numeral = true;
        }
    }
    for w in &ws {
        match w.as_str() {
            "double" => {
                repeat = 2;
                continue;
            }
            "triple" => {
                repeat = 3;
                continue;
            }
            _ => {}
        }
        if w.chars().all(|c| c.is_ascii_digit()) {
            for _ in 0..repeat {
                out.push_str(w);
            }
        } else if let Some(d) = digit_word(w) {
            // "to"/"for"/"o" are only digits among other digits.
            let homophone = matches!(w.as_str(), "to" | "too" | "for" | "o");
            if !homophone || !out.is_empty() || any_numeral {
                for _ in 0..repeat {
                    out.push(d);
                }
            }
        }
        repeat = 1;
    }
    (!out.is_empty()).then_some(out)
}

/// Yes or no in many phrasings; `None` when unclear ("maybe", "not sure").
pub fn parse_yes_no(text: &str) -> Option<bool> {
    let norm = format!(" {} ", words(text).join(" "));
    let has = |p: &str| norm.contains(&format!(" {p} "));
    const UNSURE: [&str; 7] = [
        "not sure",
        "maybe",
        "don't know",
        "dont know",
        "no idea",
        "perhaps",
        "i guess not sure",
    ];
    if UNSURE.iter().any(|p| has(p)) {
        return None;
    }
    const YES_PHRASES: [&str; 19] = [
        "i'd love",
        "love to",
        "let's do it",
        "go for it",
        "i'd like that",
        "uh huh",
        "mm hmm",
        "no problem",
        "not a problem",
        "why not",
        "of course",
        "go ahead",
        "sounds good",
        "that works",
        "that's right",
        "that is right",
        "you bet",
        "i do",
        "i would",
    ];
    const NO: [&str; 14] = [
        "no",
        "nope",
        "nah",
        "negative",
        "never",
        "incorrect",
        "wrong",
        "not",
        "don't",
        "dont",
        "isn't",
        "wasn't",
        "cancel",
        "no thanks",
    ];
    const YES: [&str; 22] = [
        "yes",
        "yeah",
        "yea",
        "yep",
        "yup",
        "ya",
        "sure",
        "correct",
        "right",
        "ok",
        "okay",
        "absolutely",
        "definitely",
        "certainly",
        "affirmative",
        "indeed",
        "exactly",
        "please",
        "perfect",
        "great",
        "fine",
        "alright",
    ];
    if NO.iter().any(|p| has(p)) && !YES_PHRASES.iter().any(|p| has(p)) {
        return Some(false);
    }
    if YES_PHRASES.iter().any(|p| has(p)) || YES.iter().any(|p| has(p)) {
        return Some(true);
    }
    None
}

/// The value of a number word from "zero" to "nineteen" and the tens to
/// "ninety".
pub(crate) fn small_number(w: &str) -> Option<i64> {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = [
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = UNITS.iter().position(|u| *u == w) {
        return Some(i as i64);
    }
    if let Some(i) = TENS.iter().position(|u| *u == w) {
        return Some(20 + 10 * i as i64);
    }
    if w == "a" {
        return None;
    }
    None
}

fn numeral(w: &str) -> Option<i64> {
    let cleaned: String = w.chars().filter(|c| *c != ',').collect();
    if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    cleaned.parse().ok()
}

/// A whole number in numerals ("1,200") or words ("two thousand three
/// hundred and five", "twenty-one", "a hundred"). The first number in the
/// answer counts; `None` when there is none.
pub fn parse_number(text: &str) -> Option<i64> {
    // Keep commas inside numerals: split on whitespace only here.
    let lower = text.to_lowercase();
    let ws: Vec<String> = lower
        .split(|c: char| c.is_whitespace() || c == '-')
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let mut total: i64 = 0;
    let mut current: i64 = 0;
    let mut started = false;
    let mut i = 0;
    while i < ws.len() {
        let w = ws[i].as_str();
        let next_is_scale = ws
            .get(i + 1)
            .is_some_and(|n| matches!(n.as_str(), "hundred" | "thousand" | "million"));
        if let Some(n) = numeral(w) {
            if started && current != 0 {
                break;
            }
            current = current.checked_add(n)?;
            started = true;
        } else if let Some(n) = small_number(w) {
            // "twenty five": tens then units add up; "five five" stops.
            if started && current % 10 != 0 && current % 100 < 20 && current != 0 {
                break;
            }
            if started && current % 100 >= 10 && n >= 10 && current % 100 != 0 {
                break;
            }
            current = current.checked_add(n)?;
            started = true;
        } else if w == "a" && next_is_scale {
            current = current.max(1);
            started = true;
        } else if w == "hundred" && started {
            current = current.max(1).checked_mul(100)?;
        } else if (w == "thousand" || w == "million") && started {
            let scale = if w == "thousand" { 1_000 } else { 1_000_000 };
            total = total.checked_add(current.max(1).checked_mul(scale)?)?;
            current = 0;
        } else if w == "and" && started {
            // "one hundred and five"
        } else if started {
            break;
        }
        i += 1;
    }
    if !started {
        return None;
    }
    total.checked_add(current)
}

/// A date, a time of day, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// The day.
    pub date: CalendarDate,
    /// Hour and minute, when a time was given.
    pub time: Option<(u8, u8)>,
}

impl DateTime {
    /// `2026-03-05 15:00` or `2026-03-05`.
    pub fn value(&self) -> String {
        match self.time {
            Some((h, m)) => format!("{} {h:02}:{m:02}", self.date.iso()),
            None => self.date.iso(),
        }
    }

    /// `Thursday, March 5 at 3 PM`.
    pub fn spoken(&self) -> String {
        match self.time {
            Some((h, m)) => {
                let (h12, ampm) = match h {
                    0 => (12, "AM"),
                    1..=11 => (h, "AM"),
                    12 => (12, "PM"),
                    _ => (h - 12, "PM"),
                };
                let t = if m == 0 {
                    format!("{h12} {ampm}")
                } else {
                    format!("{h12}:{m:02} {ampm}")
                };
                format!("{} at {t}", self.date.spoken())
            }
            None => self.date.spoken(),
        }
    }
}

fn ordinal_day(w: &str) -> Option<u8> {
    const ORD: [&str; 31] = [
        "first",
        "second",
        "third",
        "fourth",
        "fifth",
        "sixth",
        "seventh",
        "eighth",
        "ninth",
        "tenth",
        "eleventh",
        "twelfth",
        "thirteenth",
        "fourteenth",
        "fifteenth",
        "sixteenth",
        "seventeenth",
        "eighteenth",
        "nineteenth",
        "twentieth",
        "twenty first",
        "twenty second",
        "twenty third",
        "twenty fourth",
        "twenty fifth",
        "twenty sixth",
        "twenty seventh",
        "twenty eighth",
        "twenty ninth",
        "thirtieth",
        "thirty first",
    ];
    if let Some(i) = ORD.iter().position(|o| *o == w) {
        return Some(i as u8 + 1);
    }
    let digits = w
        .strip_suffix("st")
        .or_else(|| w.strip_suffix("nd"))
        .or_else(|| w.strip_suffix("rd"))
        .or_else(|| w.strip_suffix("th"))
        .unwrap_or(w);
    let d: u8 = digits.parse().ok()?;
    (1..=31).contains(&d).then_some(d)
}

fn month_of(w: &str) -> Option<u8> {
    const SHORT: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let w = if w == "sept" { "sep" } else { w };
    MONTHS
        .iter()
        .position(|m| *m == w)
        .or_else(|| SHORT.iter().position(|m| *m == w))
        .map(|i| i as u8 + 1)
}

fn weekday_of(w: &str) -> Option<u8> {
    WEEKDAYS
        .iter()
        .position(|d| *d == w || w.strip_suffix('s') == Some(d))
        .map(|i| i as u8)
}

fn hour_word(w: &str) -> Option<u8> {
    if let Ok(h) = w.parse::<u8>() {
        return (h <= 23).then_some(h);
    }
    small_number(w)
        .and_then(|n| u8::try_from(n).ok())
        .filter(|h| (1..=12).contains(h))
}

/// The first `month`/`day` on or after `from`.
fn next_month_day(from: CalendarDate, month: u8, day: u8) -> Option<CalendarDate> {
    let this = CalendarDate::new(from.year, month, day);
    match this {
        Some(d) if d >= from => Some(d),
        _ => CalendarDate::new(from.year + 1, month, day),
    }
}

/// Parse a date and/or time relative to `today` ("next Tuesday at 3 pm",
/// "tomorrow morning", "March 5th", "5/3", "2026-03-05 15:30", "noon").
/// `day_first` reads `5/3` as 5 March. A bare hour without am/pm is read
/// as business hours (1-7 afternoon, 8-11 morning). `None` when neither a
/// date nor a time is heard.
pub fn parse_date_time(text: &str, today: CalendarDate, day_first: bool) -> Option<DateTime> {
    let mut ws = words(text);
    // Split "3pm" / "3:30pm" into number and suffix.
    let mut split = Vec::with_capacity(ws.len());
    for w in ws.drain(..) {
        let cut = ["am", "pm", "a.m", "p.m"].iter().find_map(|s| {
            w.strip_suffix(s)
                .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_digit() || c == ':'))
                .map(|h| (h.to_string(), s.replace('.', "")))
        });
        match cut {
            Some((h, s)) => {
                split.push(h);
                split.push(s);
            }
            None => split.push(w.replace('.', "")),
        }
    }
    let ws = split;
    let mut date: Option<CalendarDate> = None;
    let mut time: Option<(u8, u8)> = None;
    let mut i = 0;
    while i < ws.len() {
        let w = ws[i].as_str();
        let next = ws.get(i + 1).map(String::as_str);
        let next2 = ws.get(i + 2).map(String::as_str);
        // Relative days.
        match w {
            "today" | "tonight" => {
                date = Some(today);
                if w == "tonight" && time.is_none() {
                    time = Some((19, 0));
                }
                i += 1;
                continue;
            }
            "tomorrow" => {
                date = Some(today.add_days(1));
                i += 1;
                continue;
            }
            "day" if next == Some("after") && next2 == Some("tomorrow") => {
                date = Some(today.add_days(2));
                i += 3;
                continue;
            }
            "in" => {
                if let (Some(n), Some(unit)) = (
                    next.and_then(|n| parse_number(n).or((n == "a").then_some(1))),
                    next2,
                ) {
                    let days = match unit {
                        "day" | "days" => Some(n),
                        "week" | "weeks" => n.checked_mul(7),
                        _ => None,
                    };
                    // Beyond ten years is not an appointment.
                    if let Some(d) = days.filter(|d| (0..=3660).contains(d)) {
                        date = Some(today.add_days(d));
                        i += 3;
                        continue;
                    }
                }
            }
            "noon" | "midday" => {
                time = Some((12, 0));
                i += 1;
                continue;
            }
            "midnight" => {
                time = Some((0, 0));
                i += 1;
                continue;
            }
            "morning" => {
                time.get_or_insert((9, 0));
                i += 1;
                continue;
            }
            "afternoon" => {
                time.get_or_insert((14, 0));
                i += 1;
                continue;
            }
            "evening" => {
                time.get_or_insert((18, 0));
                i += 1;
                continue;
            }
            _ => {}
        }
        // Weekdays: "tuesday", "next tuesday", "this tuesday".
        if let Some(wd) = weekday_of(w) {
            let prev = if i > 0 { ws[i - 1].as_str() } else { "" };
            let mut ahead = (i64::from(wd) - i64::from(today.weekday())).rem_euclid(7);
            if ahead == 0 && prev != "this" {
                ahead = 7;
            }
            date = Some(today.add_days(ahead));
            i += 1;
            continue;
        }
        // "march 5th", "march the fifth", "5th of march", "the fifth".
        if let Some(m) = month_of(w) {
            let mut j = i + 1;
            if ws.get(j).map(String::as_str) == Some("the") {
                j += 1;
            }
            let day = ws.get(j).and_then(|d| {
                let two = ws.get(j + 1).map(|n| format!("{d} {n}"));
                two.as_deref()
                    .and_then(ordinal_day)
                    .map(|x| (x, 2))
                    .or_else(|| ordinal_day(d).map(|x| (x, 1)))
            });
            if let Some((d, used)) = day {
                if let Some(found) = next_month_day(today, m, d) {
                    date = Some(found);
                    i = j + used;
                    continue;
                }
            }
            i += 1;
            continue;
        }
        if let Some(d) = ordinal_day(w).filter(|_| !w.chars().all(|c| c.is_ascii_digit())) {
            let (m, used) = match (next, next2.and_then(month_of)) {
                (Some("of"), Some(m)) => (Some(m), 3),
                _ => (next.and_then(month_of), 2),
            };
            if let Some(m) = m {
                date = next_month_day(today, m, d).or(date);
                i += used;
                continue;
            }
            if i > 0 && ws[i - 1] == "the" {
                // "the fifth": this month, or next month once past.
                let this = CalendarDate::new(today.year, today.month, d).filter(|x| *x >= today);
                date = this.or_else(|| {
                    let nm = today.add_days(i64::from(days_in_month(today.year, today.month)));
                    CalendarDate::new(nm.year, nm.month, d)
                });
                i += 1;
                continue;
            }
        }
        // ISO 2026-03-05 (words() split on '-': rebuilt from three numerals).
        if w.len() == 4 && w.chars().all(|c| c.is_ascii_digit()) {
            if let (Some(m), Some(d)) = (
                next.and_then(|m| m.parse::<u8>().ok()),
                next2.and_then(|d| d.parse::<u8>().ok()),
            ) {
                if let (Ok(y), true) = (w.parse::<i32>(), next.is_some_and(|m| m.len() == 2)) {
                    if let Some(found) = CalendarDate::new(y, m, d) {
                        date = Some(found);
                        i += 3;
                        continue;
                    }
                }
            }
        }
        // 5/3 or 5/3/2026.
        if w.contains('/') {
            let parts: Vec<&str> = w.split('/').collect();
            let nums: Vec<u32> = parts.iter().filter_map(|p| p.parse().ok()).collect();
            if nums.len() == parts.len() && (2..=3).contains(&nums.len()) {
                let (a, b) = (nums[0], nums[1]);
                let (m, d) = if day_first { (b, a) } else { (a, b) };
                if let (Ok(m), Ok(d)) = (u8::try_from(m), u8::try_from(d)) {
                    let found = if nums.len() == 3 {
                        let y = nums[2] as i32;
                        let y = if y < 100 { 2000 + y } else { y };
                        CalendarDate::new(y, m, d)
                    } else {
                        next_month_day(today, m, d)
                    };
                    if let Some(found) = found {
                        date = Some(found);
                        i += 1;
                        continue;
                    }
                }
            }
        }
        // "half past three", "quarter past 10", "quarter to four".
        if matches!(w, "half" | "quarter") && matches!(next, Some("past") | Some("to")) {
            if let Some(h) = next2.and_then(hour_word).filter(|h| (1..=12).contains(h)) {
                let (mut h, m) = match (w, next) {
                    ("half", Some("past")) => (h, 30),
                    ("quarter", Some("past")) => (h, 15),
                    ("quarter", _) => ((h + 10) % 12 + 1, 45),
                    _ => (h, 0),
                };
                let mut j = i + 3;
                match ws.get(j).map(String::as_str) {
                    Some("pm") => {
                        if h < 12 {
                            h += 12;
                        }
                        j += 1;
                    }
                    Some("am") => {
                        if h == 12 {
                            h = 0;
                        }
                        j += 1;
                    }
                    Some("in") if ws.get(j + 2).map(String::as_str) == Some("morning") => {
                        j += 3;
                    }
                    _ if (1..=7).contains(&h) => h += 12,
                    _ => {}
                }
                if w == "half" && next == Some("to") {
                    i += 1;
                    continue;
                }
                time = Some((h, m));
                i = j;
                continue;
            }
        }
        // Times: "3 pm", "3:30", "15:00", "at 3", "three thirty pm", "3 o'clock".
        let colon = w.split_once(':').and_then(|(h, m)| {
            let h: u8 = h.parse().ok()?;
            let m: u8 = m.parse().ok()?;
            (h <= 23 && m <= 59).then_some((h, m))
        });
        let hour = colon.or_else(|| hour_word(w).map(|h| (h, 0)));
        if let Some((mut h, mut m)) = hour {
            let mut j = i + 1;
            // "three thirty", "three fifteen"
            if colon.is_none() {
                if let Some(mins) = ws
                    .get(j)
                    .and_then(|x| {
                        small_number(x).or_else(|| x.parse::<i64>().ok().filter(|_| x.len() == 2))
                    })
                    .filter(|v| (10..=59).contains(v))
                {
                    let mut mins = mins;
                    if let Some(unit) = ws
                        .get(j + 1)
                        .and_then(|x| small_number(x))
                        .filter(|u| (1..=9).contains(u) && mins % 10 == 0)
                    {
                        mins += unit;
                        j += 1;
                    }
                    m = mins as u8;
                    j += 1;
                }
            }
            let suffix = ws.get(j).map(String::as_str);
            let prev = if i > 0 { ws[i - 1].as_str() } else { "" };
            let explicit = match suffix {
                Some("pm") | Some("p") => {
                    if h < 12 {
                        h += 12;
                    }
                    j += if ws.get(j + 1).map(String::as_str) == Some("m") {
                        2
                    } else {
                        1
                    };
                    true
                }
                Some("am") | Some("a")
                    if suffix == Some("am") || ws.get(j + 1).map(String::as_str) == Some("m") =>
                {
                    if h == 12 {
                        h = 0;
                    }
                    j += if suffix == Some("a") { 2 } else { 1 };
                    true
                }
                Some("o'clock") | Some("oclock") => {
                    j += 1;
                    false
                }
                _ => false,
            };
            let timeish = explicit
                || colon.is_some()
                || prev == "at"
                || prev == "around"
                || matches!(
                    ws.get(i + 1).map(String::as_str),
                    Some("o'clock") | Some("oclock")
                )
                || m != 0;
            if timeish {
                if !explicit && colon.is_none() && (1..=7).contains(&h) {
                    // Bare "at 3": business hours.
                    h += 12;
                } else if !explicit && colon.is_some() && (1..=7).contains(&h) && prev == "at" {
                    h += 12;
                }
                // A time-of-day word after the hour settles am/pm.
                match ws.get(j).map(String::as_str) {
                    Some("morning") => {
                        if h >= 12 && !explicit {
                            h -= 12;
                        }
                        j += 1;
                    }
                    Some("in") if matches!(ws.get(j + 2).map(String::as_str), Some("morning")) => {
                        if h >= 12 && !explicit {
                            h -= 12;
                        }
                        j += 3;
                    }
                    _ => {}
                }
                time = Some((h, m));
                i = j;
                continue;
            }
        }
        i += 1;
    }
    if date.is_none() && time.is_none() {
        return None;
    }
    Some(DateTime {
        date: date.unwrap_or(today),
        time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u8, day: u8) -> CalendarDate {
        CalendarDate::new(y, m, day).unwrap()
    }

    // Tuesday 24 November 2026.
    fn today() -> CalendarDate {
        d(2026, 11, 24)
    }

    fn dt(text: &str) -> Option<String> {
        parse_date_time(text, today(), false).map(|x| x.value())
    }

    #[test]
    fn calendar_round_trips() {
        assert_eq!(d(1970, 1, 1).to_days(), 0);
        assert_eq!(d(2000, 3, 1).to_days(), 11_017);
        assert_eq!(today().weekday(), 2);
        for days in -800_000..800_000i64 {
            if days % 997 == 0 {
                assert_eq!(CalendarDate::from_days(days).to_days(), days);
            }
        }
        assert_eq!(d(2028, 2, 28).add_days(1), d(2028, 2, 29));
        assert_eq!(d(2026, 12, 31).add_days(1), d(2027, 1, 1));
        assert!(CalendarDate::new(2026, 2, 29).is_none());
        assert_eq!(today().spoken(), "Tuesday, November 24");
    }

    #[test]
    fn digits_spoken_and_written() {
        assert_eq!(parse_digits("one two three").as_deref(), Some("123"));
        assert_eq!(parse_digits("it's 4 oh 5").as_deref(), Some("405"));
        assert_eq!(parse_digits("double seven nine").as_deref(), Some("779"));
        assert_eq!(
            parse_digits("nine two one oh for").as_deref(),
            Some("92104")
        );
        assert_eq!(parse_digits("I don't know"), None);
        assert_eq!(parse_digits("12345").as_deref(), Some("12345"));
    }

    #[test]
    fn yes_no_phrasings() {
        for y in [
            "yes",
            "Yeah.",
            "yep",
            "sure",
            "that's right",
            "Of course!",
            "okay",
            "no problem",
            "absolutely",
            "yes please",
            "correct",
            "sounds good",
        ] {
            assert_eq!(parse_yes_no(y), Some(true), "{y}");
        }
        for n in [
            "no",
            "Nope.",
            "nah",
            "not really",
            "no thanks",
            "that's not right",
            "wrong",
            "I don't",
        ] {
            assert_eq!(parse_yes_no(n), Some(false), "{n}");
        }
        for u in ["maybe", "I'm not sure", "purple", ""] {
            assert_eq!(parse_yes_no(u), None, "{u}");
        }
    }

    #[test]
    fn numbers_in_words_and_numerals() {
        assert_eq!(parse_number("42"), Some(42));
        assert_eq!(parse_number("about 1,200 dollars"), Some(1200));
        assert_eq!(parse_number("twenty-one"), Some(21));
        assert_eq!(
            parse_number("two thousand three hundred and forty five"),
            Some(2345)
        );
        assert_eq!(parse_number("a hundred"), Some(100));
        assert_eq!(parse_number("five hundred employees"), Some(500));
        assert_eq!(parse_number("fifteen"), Some(15));
        assert_eq!(parse_number("twelve thousand"), Some(12_000));
        assert_eq!(parse_number("2 thousand"), Some(2000));
        assert_eq!(parse_number("three million"), Some(3_000_000));
        assert_eq!(parse_number("none"), None);
        assert_eq!(parse_number("zero"), Some(0));
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(
            dt("next Tuesday at 3 pm").as_deref(),
            Some("2026-12-01 15:00")
        );
        assert_eq!(dt("tomorrow morning").as_deref(), Some("2026-11-25 09:00"));
        assert_eq!(dt("March 5th").as_deref(), Some("2027-03-05"));
        assert_eq!(dt("the 5th of December").as_deref(), Some("2026-12-05"));
        assert_eq!(dt("5/3").as_deref(), Some("2027-05-03"));
        assert_eq!(
            parse_date_time("5/3", today(), true)
                .map(|x| x.value())
                .as_deref(),
            Some("2027-03-05")
        );
        assert_eq!(dt("12/24 at 10:30 am").as_deref(), Some("2026-12-24 10:30"));
        assert_eq!(dt("friday at 3").as_deref(), Some("2026-11-27 15:00"));
        assert_eq!(dt("thursday 9am").as_deref(), Some("2026-11-26 09:00"));
        assert_eq!(dt("tomorrow at noon").as_deref(), Some("2026-11-25 12:00"));
        assert_eq!(
            dt("at three thirty pm").as_deref(),
            Some("2026-11-24 15:30")
        );
        assert_eq!(
            dt("2026-12-10 at 14:15").as_deref(),
            Some("2026-12-10 14:15")
        );
        assert_eq!(dt("in two days").as_deref(), Some("2026-11-26"));
        assert_eq!(
            dt("December the twenty first").as_deref(),
            Some("2026-12-21")
        );
        assert_eq!(dt("Tuesday").as_deref(), Some("2026-12-01"));
        assert_eq!(
            dt("this Tuesday afternoon").as_deref(),
            Some("2026-11-24 14:00")
        );
        assert_eq!(dt("half past three").as_deref(), Some("2026-11-24 15:30"));
        assert_eq!(
            dt("friday at quarter to nine").as_deref(),
            Some("2026-11-27 08:45")
        );
        assert_eq!(
            dt("quarter past 10 pm").as_deref(),
            Some("2026-11-24 22:15")
        );
        assert_eq!(dt("whenever"), None);
        assert_eq!(dt("I have 3 kids"), None);
        let x = parse_date_time("next Tuesday at 3 pm", today(), false).unwrap();
        assert_eq!(x.spoken(), "Tuesday, December 1 at 3 PM");
    }

    fn ask(validate: &str) -> AskNode {
        serde_json::from_value(serde_json::json!({
            "id": "a", "prompt": "?", "variable": "v", "validate": validate
        }))
        .unwrap()
    }

    fn say(t: &str) -> TurnInput {
        TurnInput::Speech {
            text: t.into(),
            at: vocelio_codecs::MediaTime::ZERO,
        }
    }

    fn keys(t: &str) -> TurnInput {
        TurnInput::Dtmf {
            digits: t.into(),
            at: vocelio_codecs::MediaTime::ZERO,
        }
    }

    #[test]
    fn collect_applies_the_ask_rules() {
        let mut a = ask("digits");
        a.min_length = Some(4);
        a.max_length = Some(6);
        assert_eq!(
            collect(&a, &say("one two three four"), today())
                .unwrap()
                .value,
            "1234"
        );
        assert_eq!(
            collect(&a, &keys("98765"), today()).unwrap().spoken,
            "9 8 7 6 5"
        );
        assert_eq!(
            collect(&a, &keys("12"), today()),
            Err(CollectError::Length {
                len: 2,
                min: 4,
                max: 6
            })
        );
        a.input = InputMode::Dtmf;
        assert_eq!(
            collect(&a, &say("one two three four"), today()),
            Err(CollectError::WrongInput { got: "speech" })
        );
        let mut n = ask("number");
        n.min = Some(1);
        n.max = Some(10);
        assert_eq!(
            collect(&n, &say("twelve"), today()),
            Err(CollectError::OutOfRange {
                value: 12,
                min: 1,
                max: 10
            })
        );
        assert_eq!(collect(&n, &keys("7"), today()).unwrap().value, "7");
        let y = ask("yes_no");
        assert_eq!(collect(&y, &keys("2"), today()).unwrap().value, "no");
        assert!(collect(&y, &keys("5"), today()).is_err());
        let t = ask("text");
        assert!(collect(&t, &say("  "), today()).is_err());
        assert_eq!(collect(&t, &say(" hi "), today()).unwrap().value, "hi");
        let d = ask("date_time");
        let c = collect(&d, &say("tomorrow at noon"), today()).unwrap();
        assert_eq!(c.value, "2026-11-25 12:00");
        assert_eq!(c.spoken, "Wednesday, November 25 at 12 PM");
        assert!(collect(&d, &keys("0305"), today()).is_err());
    }

    /// Hostile or odd answers never panic (a cheap deterministic fuzz).
    #[test]
    fn parsers_never_panic() {
        const PIECES: [&str; 24] = [
            "9223372036854775807",
            "ninety",
            "hundred",
            "thousand",
            "million",
            "in",
            "days",
            "weeks",
            "99999999999",
            "/",
            "5/3/4000000000",
            "12:99",
            "at",
            "pm",
            "am",
            "the",
            "31st",
            "february",
            "30th",
            "next",
            "tuesday",
            "a",
            "double",
            "\u{1F600}",
        ];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let n = (seed % 7) as usize;
            for k in 0..n {
                let i = ((seed >> (k * 5)) % PIECES.len() as u64) as usize;
                s.push_str(PIECES[i]);
                s.push(if (seed >> k) & 1 == 0 { ' ' } else { '-' });
            }
            let _ = parse_digits(&s);
            let _ = parse_yes_no(&s);
            let _ = parse_number(&s);
            let _ = parse_date_time(&s, today(), (seed & 1) == 0);
        }
        assert_eq!(parse_number("9223372036854775800 ninety"), None);
        assert_eq!(dt("in 99999999999 weeks"), None);
    }
}
