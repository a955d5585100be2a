//! Contact lists: E.164 numbers, and CSV uploads read into contacts plus a
//! report of the rows that were not taken.
//!
//! A CSV upload has a header row. `phone` is required; `name` and
//! `timezone` (an IANA zone such as `Europe/London`) are optional; every
//! other column becomes a variable of the contact. Rows are numbered as a
//! spreadsheet shows them: the header is row 1.

use chrono_tz::Tz;
use serde::Serialize;
use std::collections::HashSet;
use utoipa::ToSchema;

/// Why a phone number is not E.164.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PhoneError {
    /// Nothing there.
    #[error("empty phone number")]
    Empty,
    /// No `+` (or `00`) and country code in front.
    #[error("must start with + and the country code (E.164)")]
    NoCountryCode,
    /// Something other than digits and separators (space, `-`, `.`, `(`, `)`).
    #[error("must contain only digits after the +")]
    BadCharacter,
    /// Country codes never start with 0.
    #[error("the country code cannot start with 0")]
    LeadingZero,
    /// E.164 numbers have 7 to 15 digits.
    #[error("must have 7 to 15 digits, not {digits}")]
    Length {
        /// Digits found.
        digits: usize,
    },
}

/// `raw` as E.164 (`+` and 7–15 digits). Spaces, dashes, dots and
/// parentheses are dropped and a leading `00` becomes `+`:
/// `+1 (555) 010-2030` -> `+15550102030`.
pub fn normalize_e164(raw: &str) -> Result<String, PhoneError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(PhoneError::Empty);
    }
    let mut kept = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
            c => kept.push(c),
        }
    }
    let digits = if let Some(rest) = kept.strip_prefix('+') {
        rest
    } else if let Some(rest) = kept.strip_prefix("00") {
        rest
    } else if kept.chars().all(|c| c.is_ascii_digit()) && !kept.is_empty() {
        return Err(PhoneError::NoCountryCode);
    } else if kept.is_empty() {
        return Err(PhoneError::Empty);
    } else {
        return Err(PhoneError::BadCharacter);
    };
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(PhoneError::BadCharacter);
    }
    if !(7..=15).contains(&digits.len()) {
        return Err(PhoneError::Length {
            digits: digits.len(),
        });
    }
    if digits.starts_with('0') {
        return Err(PhoneError::LeadingZero);
    }
    Ok(format!("+{digits}"))
}

/// An IANA time zone by name (`America/Los_Angeles`).
pub fn parse_timezone(name: &str) -> Option<Tz> {
    name.trim().parse::<Tz>().ok()
}

/// A contact read from an upload.
#[derive(Debug, Clone, PartialEq)]
pub struct NewContact {
    /// Its row in the file (the header is row 1).
    pub row: u64,
    /// E.164.
    pub e164: String,
    /// Name, if given.
    pub name: Option<String>,
    /// Time zone (the campaign's when the row gives none).
    pub timezone: Tz,
    /// The other columns, as a JSON object of strings (empty cells left out).
    pub variables: serde_json::Map<String, serde_json::Value>,
}

/// A row that was not taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RejectedRow {
    /// Row in the file (the header is row 1).
    pub row: u64,
    /// The offending value.
    pub value: String,
    /// Why.
    pub reason: String,
}

/// What an upload holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedUpload {
    /// Valid, distinct contacts in file order.
    pub contacts: Vec<NewContact>,
    /// Rows repeating a number seen earlier in the file.
    pub duplicates: u64,
    /// Rows that were not taken.
    pub rejected: Vec<RejectedRow>,
}

/// Why an upload could not be read at all (every row problem is a
/// [`RejectedRow`] instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// No header row.
    #[error(
        "the file is empty: a header row naming the columns (phone, name, timezone, …) is required"
    )]
    Empty,
    /// The header names no `phone` column.
    #[error("the header row has no phone column")]
    NoPhoneColumn,
    /// A header cell is empty.
    #[error("column {column} of the header row has no name")]
    UnnamedColumn {
        /// 1-based.
        column: usize,
    },
    /// Two columns have the same name.
    #[error("column {name:?} appears twice in the header row")]
    DuplicateColumn {
        /// The name.
        name: String,
    },
    /// The header row is not CSV text.
    #[error("the header row is not valid UTF-8 CSV")]
    BadHeader,
}

/// Longest contact name kept.
pub const MAX_NAME_CHARS: usize = 200;

/// Read a CSV upload. Numbers are normalised to E.164; rows with a bad
/// number, an unknown time zone or an over-long name are rejected; a number
/// seen earlier in the file counts as a duplicate.
pub fn parse_upload(csv_bytes: &[u8], default_tz: Tz) -> Result<ParsedUpload, UploadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(csv_bytes);
    let mut records = reader.byte_records();
    let header = match records.next() {
        None => return Err(UploadError::Empty),
        Some(Err(_)) => return Err(UploadError::BadHeader),
        Some(Ok(h)) => h,
    };
    let mut columns = Vec::with_capacity(header.len());
    for (i, cell) in header.iter().enumerate() {
        let name = std::str::from_utf8(cell).map_err(|_| UploadError::BadHeader)?;
        let name = name.trim_start_matches('\u{feff}').trim();
        if name.is_empty() {
            return Err(UploadError::UnnamedColumn { column: i + 1 });
        }
        if columns
            .iter()
            .any(|c: &String| c.eq_ignore_ascii_case(name))
        {
            return Err(UploadError::DuplicateColumn { name: name.into() });
        }
        columns.push(name.to_string());
    }
    let find = |n: &str| columns.iter().position(|c| c.eq_ignore_ascii_case(n));
    let phone_col = find("phone").ok_or(UploadError::NoPhoneColumn)?;
    let name_col = find("name");
    let tz_col = find("timezone");

    let mut out = ParsedUpload::default();
    let mut seen = HashSet::new();
    let mut lines = LineCounter::default();
    let mut fallback_row = 1u64;
    for rec in records {
        fallback_row += 1;
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let row = e
                    .position()
                    .map(|p| lines.line_at(csv_bytes, p.byte()))
                    .unwrap_or(fallback_row);
                out.rejected.push(RejectedRow {
                    row,
                    value: String::new(),
                    reason: "not a readable CSV row".into(),
                });
                continue;
            }
        };
        let row = rec
            .position()
            .map(|p| lines.line_at(csv_bytes, p.byte()))
            .unwrap_or(fallback_row);
        // Blank lines are skipped by the reader; a row of empty cells too.
        if rec.iter().all(|c| c.iter().all(u8::is_ascii_whitespace)) {
            continue;
        }
        let mut cells = Vec::with_capacity(rec.len());
        let mut utf8 = true;
        for c in rec.iter() {
            match std::str::from_utf8(c) {
                Ok(s) => cells.push(s.trim()),
                Err(_) => {
                    utf8 = false;
                    break;
                }
            }
        }
        if !utf8 {
            out.rejected.push(RejectedRow {
                row,
                value: String::new(),
                reason: "not valid UTF-8".into(),
            });
            continue;
        }
        let cell = |i: usize| cells.get(i).copied().unwrap_or("");
        let phone = cell(phone_col);
        let e164 = match normalize_e164(phone) {
            Ok(n) => n,
            Err(e) => {
                out.rejected.push(RejectedRow {
                    row,
                    value: phone.into(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        let timezone = match tz_col.map(cell).filter(|t| !t.is_empty()) {
            None => default_tz,
            Some(t) => match parse_timezone(t) {
                Some(tz) => tz,
                None => {
                    out.rejected.push(RejectedRow {
                        row,
                        value: t.into(),
                        reason: "unknown time zone (use an IANA name such as Europe/London)".into(),
                    });
                    continue;
                }
            },
        };
        let name = name_col.map(cell).filter(|n| !n.is_empty());
        if let Some(n) = name {
            if n.chars().count() > MAX_NAME_CHARS {
                out.rejected.push(RejectedRow {
                    row,
                    value: n.chars().take(40).collect(),
                    reason: format!("name longer than {MAX_NAME_CHARS} characters"),
                });
                continue;
            }
        }
        if !seen.insert(e164.clone()) {
            out.duplicates += 1;
            continue;
        }
        let mut variables = serde_json::Map::new();
        for (i, col) in columns.iter().enumerate() {
            if Some(i) == name_col || Some(i) == tz_col || i == phone_col {
                continue;
            }
            let v = cell(i);
            if !v.is_empty() {
                variables.insert(col.clone(), serde_json::Value::String(v.into()));
            }
        }
        out.contacts.push(NewContact {
            row,
            e164,
            name: name.map(str::to_string),
            timezone,
            variables,
        });
    }
    Ok(out)
}

/// Line numbers of records from their byte offsets (the reader's own line
/// count lags by one after `\r\n`). Offsets only grow, so the file is
/// scanned once.
#[derive(Debug, Default)]
struct LineCounter {
    offset: usize,
    newlines: u64,
}

impl LineCounter {
    /// The 1-based line a record starting at `byte` begins on (line
    /// terminators in front of it skipped).
    fn line_at(&mut self, bytes: &[u8], byte: u64) -> u64 {
        let mut at = usize::try_from(byte).unwrap_or(usize::MAX).min(bytes.len());
        while at < bytes.len() && (bytes[at] == b'\r' || bytes[at] == b'\n') {
            at += 1;
        }
        if at > self.offset {
            self.newlines += bytes[self.offset..at]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            self.offset = at;
        }
        self.newlines + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_to_e164() {
        assert_eq!(normalize_e164("+1 (555) 010-2030").unwrap(), "+15550102030");
        assert_eq!(
            normalize_e164(" 0044 20 7946 0958 ").unwrap(),
            "+442079460958"
        );
        assert_eq!(normalize_e164("+44.20.7946.0958").unwrap(), "+442079460958");
        assert_eq!(normalize_e164("5550102030"), Err(PhoneError::NoCountryCode));
        assert_eq!(
            normalize_e164("+1555abc2030"),
            Err(PhoneError::BadCharacter)
        );
        assert_eq!(normalize_e164("call me"), Err(PhoneError::BadCharacter));
        assert_eq!(normalize_e164("+0123456789"), Err(PhoneError::LeadingZero));
        assert_eq!(
            normalize_e164("+123"),
            Err(PhoneError::Length { digits: 3 })
        );
        assert_eq!(
            normalize_e164("+1234567890123456"),
            Err(PhoneError::Length { digits: 16 })
        );
        assert_eq!(normalize_e164("  "), Err(PhoneError::Empty));
        assert_eq!(normalize_e164("+"), Err(PhoneError::Length { digits: 0 }));
        assert_eq!(
            normalize_e164("+１２３４５６７"),
            Err(PhoneError::BadCharacter)
        );
    }

    #[test]
    fn an_upload_becomes_contacts_and_a_report() {
        let csv = "\u{feff}Phone,name,timezone,plan\r\n\
                   +1 555 010 2030,Ann,America/Los_Angeles,gold\r\n\
                   5550102031,Bob,,\r\n\
                   +15550102030,Ann again,,\r\n\
                   +442079460958,,Mars/Olympus,silver\r\n\
                   \r\n\
                   +442079460959\r\n\
                   \"+33 1 23 45 67 89\",\"Dupont, Jean\",Europe/Paris,\"multi\nline\"\r\n\
                   +33123456780,Zoé,Europe/Paris,x,extra\r\n";
        let up = parse_upload(csv.as_bytes(), chrono_tz::Europe::London).unwrap();
        let phones: Vec<_> = up.contacts.iter().map(|c| c.e164.as_str()).collect();
        assert_eq!(
            phones,
            [
                "+15550102030",
                "+442079460959",
                "+33123456789",
                "+33123456780"
            ]
        );
        assert_eq!(up.duplicates, 1);
        assert_eq!(
            up.rejected,
            vec![
                RejectedRow {
                    row: 3,
                    value: "5550102031".into(),
                    reason: PhoneError::NoCountryCode.to_string()
                },
                RejectedRow {
                    row: 5,
                    value: "Mars/Olympus".into(),
                    reason: "unknown time zone (use an IANA name such as Europe/London)".into()
                },
            ]
        );
        let ann = &up.contacts[0];
        assert_eq!(ann.row, 2);
        assert_eq!(ann.name.as_deref(), Some("Ann"));
        assert_eq!(ann.timezone, chrono_tz::America::Los_Angeles);
        assert_eq!(ann.variables["plan"], "gold");
        let short = &up.contacts[1];
        assert_eq!(short.row, 7);
        assert_eq!(short.timezone, chrono_tz::Europe::London);
        assert!(short.variables.is_empty());
        assert_eq!(up.contacts[2].name.as_deref(), Some("Dupont, Jean"));
        assert_eq!(up.contacts[2].variables["plan"], "multi\nline");
        // The row after a quoted line break is numbered by where it starts.
        assert_eq!(up.contacts[3].row, 10);
    }

    #[test]
    fn bad_headers_are_errors_and_bad_bytes_reject_only_their_row() {
        let tz = chrono_tz::UTC;
        assert_eq!(parse_upload(b"", tz), Err(UploadError::Empty));
        assert_eq!(
            parse_upload(b"name,number\nAnn,+15550102030\n", tz),
            Err(UploadError::NoPhoneColumn)
        );
        assert_eq!(
            parse_upload(b"phone,,x\n", tz),
            Err(UploadError::UnnamedColumn { column: 2 })
        );
        assert_eq!(
            parse_upload(b"phone,Phone\n", tz),
            Err(UploadError::DuplicateColumn {
                name: "Phone".into()
            })
        );
        let up = parse_upload(b"phone,name\n+15550102030,\xff\xfe\n+15550102031,ok\n", tz).unwrap();
        assert_eq!(up.contacts.len(), 1);
        assert_eq!(up.rejected.len(), 1);
        assert_eq!(up.rejected[0].row, 2);
        // A header alone is an empty list, not an error.
        assert_eq!(
            parse_upload(b"phone\n", tz).unwrap(),
            ParsedUpload::default()
        );
    }
}
