//! Names of backup groups and snapshots, and the calendar arithmetic behind them.
//!
//! A snapshot lives at `<base>/<type>/<id>/<time>/`: a [`BackupType`] (`vm`, `ct`, `host`), a
//! [`BackupId`] and a [`BackupTime`] written as RFC 3339 UTC (`2024-01-02T03:04:05Z`). These
//! names become path components, so every constructor validates its input strictly and reports
//! a typed [`NameError`]: no id may contain `/` or NUL, start with `.` (which excludes `.`, `..`
//! and hidden names) or be longer than [`BACKUP_ID_LEN_MAX`]; a time string must be exactly the
//! canonical form, so that one instant has exactly one directory name.
//!
//! # Design
//!
//! * The calendar conversion (days since 1970-01-01 to proleptic Gregorian year, month, day and
//!   back) is done here with plain integer arithmetic, in 400-year eras of 146,097 days; no
//!   date library and no clock is involved, so the functions are pure and total.
//! * Backup times are limited to the years 0000 to 9999 ([`BACKUP_TIME_MIN`],
//!   [`BACKUP_TIME_MAX`]): exactly the instants whose RFC 3339 form has a four-digit year.
//! * [`CivilTime`] breaks an instant into calendar fields (with ISO 8601 week numbering) at a
//!   fixed offset from UTC. Prune uses its [`CivilTime::period_key`] for the keep-hourly, daily,
//!   weekly, monthly and yearly selections. PBS uses the host's local time zone there; this
//!   store takes the zone as a fixed offset in seconds (no daylight-saving rules), which keeps
//!   prune deterministic and independent of the machine it runs on.
//!
//! # Invariants
//!
//! * `BackupTime::parse(&t.to_string()) == Ok(t)` for every valid `t`, and every string that
//!   parses is the canonical form of its instant.
//! * No function of this module panics, whatever its input.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Longest accepted backup id, in bytes.
pub const BACKUP_ID_LEN_MAX: usize = 128;

/// Earliest backup time: 0000-01-01T00:00:00Z, in seconds since the Unix epoch.
pub const BACKUP_TIME_MIN: i64 = -62_167_219_200;

/// Latest backup time: 9999-12-31T23:59:59Z, in seconds since the Unix epoch.
pub const BACKUP_TIME_MAX: i64 = 253_402_300_799;

/// Largest accepted magnitude of a UTC offset, in seconds (exclusive: offsets are less than a
/// day).
pub const UTC_OFFSET_SECONDS_LIMIT: i32 = 86_400;

const SECONDS_PER_DAY: i64 = 86_400;

/// Days from 0000-03-01 to 1970-01-01 in the proleptic Gregorian calendar.
const DAYS_FROM_YEAR0_MARCH_TO_EPOCH: i64 = 719_468;

/// Days in one 400-year Gregorian cycle.
const DAYS_PER_ERA: i64 = 146_097;

/// Why a name, a time or a path is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NameError {
    /// The backup type is not `vm`, `ct` or `host`.
    #[error("unknown backup type {name:?} (expected vm, ct or host)")]
    UnknownBackupType {
        /// The text found.
        name: String,
    },
    /// The backup id is empty.
    #[error("empty backup id")]
    EmptyBackupId,
    /// The backup id is longer than [`BACKUP_ID_LEN_MAX`] bytes.
    #[error("backup id of {len} bytes is longer than 128")]
    BackupIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The backup id contains a character it may not have at that position.
    #[error("backup id {id:?} has a forbidden character at byte {position}")]
    BackupIdBadChar {
        /// The id found.
        id: String,
        /// Byte offset of the first forbidden character.
        position: usize,
    },
    /// The text is not of the form `YYYY-MM-DDTHH:MM:SSZ`.
    #[error("{text:?} is not a time of the form YYYY-MM-DDTHH:MM:SSZ")]
    BackupTimeSyntax {
        /// The text found.
        text: String,
    },
    /// A field of the time is out of its range (month 13, February 30, hour 24, ...).
    #[error("{text:?} has an invalid {field}")]
    BackupTimeField {
        /// The text found.
        text: String,
        /// The offending field: `"month"`, `"day"`, `"hour"`, `"minute"` or `"second"`.
        field: &'static str,
    },
    /// The epoch is outside the years 0000 to 9999.
    #[error("epoch {epoch} is outside the years 0000 to 9999")]
    EpochOutOfRange {
        /// The epoch given, in seconds.
        epoch: i64,
    },
    /// The UTC offset is a day or more.
    #[error("UTC offset of {offset_seconds} seconds is not less than a day in magnitude")]
    UtcOffsetOutOfRange {
        /// The offset given.
        offset_seconds: i32,
    },
    /// A relative path does not have the components of a group or snapshot.
    #[error("{path:?} is not a {expected} path")]
    BadPath {
        /// The path given.
        path: String,
        /// What it should have been: `"group"` or `"snapshot"`.
        expected: &'static str,
    },
}

/// The kind of machine a backup group belongs to; the first path component of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BackupType {
    /// A virtual machine (`vm`).
    Vm,
    /// A container (`ct`).
    Ct,
    /// A host (`host`).
    Host,
}

impl BackupType {
    /// Every backup type, in the order listings use.
    pub const ALL: [BackupType; 3] = [BackupType::Vm, BackupType::Ct, BackupType::Host];

    /// The directory name: `"vm"`, `"ct"` or `"host"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackupType::Vm => "vm",
            BackupType::Ct => "ct",
            BackupType::Host => "host",
        }
    }

    /// Parses exactly `"vm"`, `"ct"` or `"host"`.
    pub fn parse(text: &str) -> Result<BackupType, NameError> {
        match text {
            "vm" => Ok(BackupType::Vm),
            "ct" => Ok(BackupType::Ct),
            "host" => Ok(BackupType::Host),
            _ => Err(NameError::UnknownBackupType {
                name: text.to_owned(),
            }),
        }
    }
}

impl fmt::Display for BackupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackupType {
    type Err = NameError;

    fn from_str(text: &str) -> Result<BackupType, NameError> {
        BackupType::parse(text)
    }
}

/// The id of a backup group (`100`, `web-01.example`): 1 to 128 bytes of `[A-Za-z0-9_.-]`,
/// not starting with `.` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupId(String);

impl BackupId {
    /// Validates `text` as a backup id.
    pub fn parse(text: &str) -> Result<BackupId, NameError> {
        if text.is_empty() {
            return Err(NameError::EmptyBackupId);
        }
        if text.len() > BACKUP_ID_LEN_MAX {
            return Err(NameError::BackupIdTooLong { len: text.len() });
        }
        let bad = text.bytes().enumerate().find(|&(position, byte)| {
            let always = byte.is_ascii_alphanumeric() || byte == b'_';
            let after_first = byte == b'.' || byte == b'-';
            !(always || (after_first && position > 0))
        });
        if let Some((position, _)) = bad {
            return Err(NameError::BackupIdBadChar {
                id: text.to_owned(),
                position,
            });
        }
        Ok(BackupId(text.to_owned()))
    }

    /// The id as text (also its directory name).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BackupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for BackupId {
    type Err = NameError;

    fn from_str(text: &str) -> Result<BackupId, NameError> {
        BackupId::parse(text)
    }
}

/// The start time of a snapshot, in seconds since the Unix epoch, within the years 0000–9999.
/// Displayed (and named on disk) as `YYYY-MM-DDTHH:MM:SSZ`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupTime(i64);

impl BackupTime {
    /// A backup time from epoch seconds; [`NameError::EpochOutOfRange`] outside
    /// [`BACKUP_TIME_MIN`]..=[`BACKUP_TIME_MAX`].
    pub fn from_epoch(epoch: i64) -> Result<BackupTime, NameError> {
        if (BACKUP_TIME_MIN..=BACKUP_TIME_MAX).contains(&epoch) {
            Ok(BackupTime(epoch))
        } else {
            Err(NameError::EpochOutOfRange { epoch })
        }
    }

    /// Seconds since the Unix epoch.
    pub fn epoch(&self) -> i64 {
        self.0
    }

    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` (UTC, no fraction, no offset, no lowercase `t`
    /// or `z`, no leap second).
    pub fn parse(text: &str) -> Result<BackupTime, NameError> {
        let syntax = || NameError::BackupTimeSyntax {
            text: text.to_owned(),
        };
        let bytes = text.as_bytes();
        if bytes.len() != 20 {
            return Err(syntax());
        }
        for (position, &byte) in bytes.iter().enumerate() {
            let expected_separator = match position {
                4 | 7 => Some(b'-'),
                10 => Some(b'T'),
                13 | 16 => Some(b':'),
                19 => Some(b'Z'),
                _ => None,
            };
            let fits = match expected_separator {
                Some(separator) => byte == separator,
                None => byte.is_ascii_digit(),
            };
            if !fits {
                return Err(syntax());
            }
        }
        let number = |start: usize, end: usize| -> i64 {
            bytes[start..end]
                .iter()
                .fold(0, |value, digit| value * 10 + i64::from(digit - b'0'))
        };
        let field = |field| NameError::BackupTimeField {
            text: text.to_owned(),
            field,
        };
        let (year, month, day) = (number(0, 4), number(5, 7), number(8, 10));
        let (hour, minute, second) = (number(11, 13), number(14, 16), number(17, 19));
        if !(1..=12).contains(&month) {
            return Err(field("month"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(field("day"));
        }
        if hour > 23 {
            return Err(field("hour"));
        }
        if minute > 59 {
            return Err(field("minute"));
        }
        if second > 59 {
            return Err(field("second"));
        }
        let days = days_from_civil(year, month, day);
        // Four digits keep the year within 0..=9999, so the epoch is within range.
        BackupTime::from_epoch(days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second)
    }

    /// The calendar fields of this time at `utc_offset_seconds` east of UTC.
    pub fn civil(&self, utc_offset_seconds: i32) -> Result<CivilTime, NameError> {
        CivilTime::from_epoch(self.0, utc_offset_seconds)
    }
}

impl fmt::Display for BackupTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = CivilTime::from_local_seconds(self.0);
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            time.year, time.month, time.day, time.hour, time.minute, time.second
        )
    }
}

impl FromStr for BackupTime {
    type Err = NameError;

    fn from_str(text: &str) -> Result<BackupTime, NameError> {
        BackupTime::parse(text)
    }
}

/// A backup group: all snapshots of one machine, at `<type>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupGroup {
    /// The backup type.
    pub ty: BackupType,
    /// The backup id.
    pub id: BackupId,
}

impl BackupGroup {
    /// A group from its parts.
    pub fn new(ty: BackupType, id: BackupId) -> BackupGroup {
        BackupGroup { ty, id }
    }

    /// Validates both directory names of a group.
    pub fn parse(ty: &str, id: &str) -> Result<BackupGroup, NameError> {
        Ok(BackupGroup {
            ty: BackupType::parse(ty)?,
            id: BackupId::parse(id)?,
        })
    }

    /// Parses `"<type>/<id>"` (exactly two components, no leading or trailing `/`).
    pub fn from_relative_path(path: &str) -> Result<BackupGroup, NameError> {
        let bad = || NameError::BadPath {
            path: path.to_owned(),
            expected: "group",
        };
        let mut parts = path.split('/');
        let (Some(ty), Some(id), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        BackupGroup::parse(ty, id)
    }

    /// The group directory relative to the datastore base: `vm/100`.
    pub fn relative_path(&self) -> PathBuf {
        PathBuf::from(self.ty.as_str()).join(self.id.as_str())
    }
}

impl fmt::Display for BackupGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ty, self.id)
    }
}

/// A snapshot: one backup of a group, at `<type>/<id>/<time>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BackupDir {
    /// The group the snapshot belongs to.
    pub group: BackupGroup,
    /// The snapshot's start time.
    pub time: BackupTime,
}

impl BackupDir {
    /// A snapshot from its parts.
    pub fn new(group: BackupGroup, time: BackupTime) -> BackupDir {
        BackupDir { group, time }
    }

    /// Parses `"<type>/<id>/<time>"` (exactly three components).
    pub fn from_relative_path(path: &str) -> Result<BackupDir, NameError> {
        let bad = || NameError::BadPath {
            path: path.to_owned(),
            expected: "snapshot",
        };
        let mut parts = path.split('/');
        let (Some(ty), Some(id), Some(time), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        Ok(BackupDir {
            group: BackupGroup::parse(ty, id)?,
            time: BackupTime::parse(time)?,
        })
    }

    /// The snapshot directory relative to the datastore base: `vm/100/2024-01-02T03:04:05Z`.
    pub fn relative_path(&self) -> PathBuf {
        self.group.relative_path().join(self.time.to_string())
    }
}

impl fmt::Display for BackupDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.group, self.time)
    }
}

/// Length of a prune period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CalendarPeriod {
    /// One clock hour.
    Hour,
    /// One calendar day.
    Day,
    /// One ISO 8601 week (Monday to Sunday; the week belongs to the year of its Thursday).
    IsoWeek,
    /// One calendar month.
    Month,
    /// One calendar year.
    Year,
}

/// An instant broken into calendar fields at a fixed offset from UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CivilTime {
    /// Year (proleptic Gregorian; may be -1 or 10000 at the edges of the backup-time range
    /// once an offset is applied).
    pub year: i32,
    /// Month, 1 to 12.
    pub month: u8,
    /// Day of the month, 1 to 31.
    pub day: u8,
    /// Hour, 0 to 23.
    pub hour: u8,
    /// Minute, 0 to 59.
    pub minute: u8,
    /// Second, 0 to 59.
    pub second: u8,
    /// Day of the week, 1 (Monday) to 7 (Sunday).
    pub weekday: u8,
    /// Day of the year, 1 to 366.
    pub ordinal: u16,
    /// The ISO 8601 week-numbering year (that of the Thursday of this week).
    pub iso_week_year: i32,
    /// The ISO 8601 week, 1 to 53.
    pub iso_week: u8,
}

impl CivilTime {
    /// The calendar fields of `epoch` (seconds since the Unix epoch, within
    /// [`BACKUP_TIME_MIN`]..=[`BACKUP_TIME_MAX`]) at `utc_offset_seconds` east of UTC (an
    /// offset of less than a day in magnitude; `3600` is UTC+01:00).
    pub fn from_epoch(epoch: i64, utc_offset_seconds: i32) -> Result<CivilTime, NameError> {
        if utc_offset_seconds.unsigned_abs() >= UTC_OFFSET_SECONDS_LIMIT.unsigned_abs() {
            return Err(NameError::UtcOffsetOutOfRange {
                offset_seconds: utc_offset_seconds,
            });
        }
        let time = BackupTime::from_epoch(epoch)?;
        Ok(CivilTime::from_local_seconds(
            time.0 + i64::from(utc_offset_seconds),
        ))
    }

    /// Fields of `seconds` since 1970-01-01T00:00:00 local time; the caller keeps `seconds`
    /// within a day of the backup-time range, so every narrowing below is lossless.
    fn from_local_seconds(seconds: i64) -> CivilTime {
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        // 1970-01-01 was a Thursday (ISO weekday 4).
        let weekday = (days + 3).rem_euclid(7) + 1;
        let ordinal = days - days_from_civil(year, 1, 1) + 1;
        let thursday = days - (weekday - 1) + 3;
        let (iso_week_year, _, _) = civil_from_days(thursday);
        let iso_week = (thursday - days_from_civil(iso_week_year, 1, 1)) / 7 + 1;
        CivilTime {
            year: narrow(year),
            month: narrow(month),
            day: narrow(day),
            hour: narrow(second_of_day / 3600),
            minute: narrow(second_of_day / 60 % 60),
            second: narrow(second_of_day % 60),
            weekday: narrow(weekday),
            ordinal: narrow(ordinal),
            iso_week_year: narrow(iso_week_year),
            iso_week: narrow(iso_week),
        }
    }

    /// A key equal for two instants exactly when they fall into the same `period`: hour
    /// `(year, month, day, hour)`, day `(year, month, day, 0)`, ISO week
    /// `(iso_week_year, iso_week, 0, 0)`, month `(year, month, 0, 0)`, year `(year, 0, 0, 0)`.
    /// Keys of one period kind order like the periods do.
    pub fn period_key(&self, period: CalendarPeriod) -> (i32, u8, u8, u8) {
        match period {
            CalendarPeriod::Hour => (self.year, self.month, self.day, self.hour),
            CalendarPeriod::Day => (self.year, self.month, self.day, 0),
            CalendarPeriod::IsoWeek => (self.iso_week_year, self.iso_week, 0, 0),
            CalendarPeriod::Month => (self.year, self.month, 0, 0),
            CalendarPeriod::Year => (self.year, 0, 0, 0),
        }
    }
}

/// Narrows a calendar field that is in range by construction (see the callers); yields 0
/// instead of panicking should that reasoning ever be wrong.
fn narrow<T: TryFrom<i64> + Default>(value: i64) -> T {
    T::try_from(value).unwrap_or_default()
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1 to 12) of `year`.
fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian).
///
/// The year is counted from March so that the leap day is the last day of its year; the day of
/// such a shifted year is `(153 * shifted_month + 2) / 5 + day - 1`, a linear fit of the month
/// lengths 31, 30, 31, 30, 31, 31, 30, 31, 30, 31, 31, 28/29.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let march_year = if month <= 2 { year - 1 } else { year };
    let era = march_year.div_euclid(400);
    let year_of_era = march_year.rem_euclid(400);
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * DAYS_PER_ERA + day_of_era - DAYS_FROM_YEAR0_MARCH_TO_EPOCH
}

/// `(year, month, day)` of the day `days` after 1970-01-01: the inverse of
/// [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + DAYS_FROM_YEAR0_MARCH_TO_EPOCH;
    let era = shifted.div_euclid(DAYS_PER_ERA);
    let day_of_era = shifted.rem_euclid(DAYS_PER_ERA);
    // Remove the leap days before this day of the era: every 4th year, except every 100th,
    // except the last day of the era.
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = era * 400 + year_of_era + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(text: &str) -> BackupTime {
        BackupTime::parse(text).expect("a valid test time")
    }

    #[test]
    fn backup_types() {
        for ty in BackupType::ALL {
            assert_eq!(BackupType::parse(ty.as_str()), Ok(ty));
            assert_eq!(ty.to_string().parse::<BackupType>(), Ok(ty));
        }
        for bad in ["", "VM", "vm ", "hosts", "v", "ct/"] {
            assert_eq!(
                BackupType::parse(bad),
                Err(NameError::UnknownBackupType {
                    name: bad.to_owned()
                })
            );
        }
    }

    #[test]
    fn backup_ids() {
        for good in [
            "100",
            "a",
            "_",
            "web-01.example.com",
            "A_b.c-d",
            "0.",
            &"x".repeat(128),
        ] {
            assert_eq!(
                BackupId::parse(good).map(|id| id.to_string()),
                Ok(good.to_owned())
            );
        }
        assert_eq!(BackupId::parse(""), Err(NameError::EmptyBackupId));
        assert_eq!(
            BackupId::parse(&"x".repeat(129)),
            Err(NameError::BackupIdTooLong { len: 129 })
        );
        let bad_at = |id: &str, position| {
            assert_eq!(
                BackupId::parse(id),
                Err(NameError::BackupIdBadChar {
                    id: id.to_owned(),
                    position
                }),
                "{id:?}"
            );
        };
        bad_at("../x", 0);
        bad_at("..", 0);
        bad_at(".", 0);
        bad_at(".hidden", 0);
        bad_at("-rf", 0);
        bad_at("a/b", 1);
        bad_at("/", 0);
        bad_at("a\0b", 1);
        bad_at("a b", 1);
        bad_at("é", 0);
        bad_at("x\n", 1);
        // Multi-byte text longer than the limit in bytes is too long, not a bad character.
        assert_eq!(
            BackupId::parse(&"é".repeat(65)),
            Err(NameError::BackupIdTooLong { len: 130 })
        );
    }

    #[test]
    fn known_epochs() {
        assert_eq!(time("1970-01-01T00:00:00Z").epoch(), 0);
        assert_eq!(time("2000-03-01T00:00:00Z").epoch(), 951_868_800);
        assert_eq!(time("2024-01-02T03:04:05Z").epoch(), 1_704_164_645);
        assert_eq!(time("2038-01-19T03:14:08Z").epoch(), 1 << 31);
        assert_eq!(time("1969-12-31T23:59:59Z").epoch(), -1);
        assert_eq!(time("0000-01-01T00:00:00Z").epoch(), BACKUP_TIME_MIN);
        assert_eq!(time("9999-12-31T23:59:59Z").epoch(), BACKUP_TIME_MAX);
        assert_eq!(
            BackupTime::from_epoch(0).map(|t| t.to_string()).as_deref(),
            Ok("1970-01-01T00:00:00Z")
        );
    }

    #[test]
    fn rfc3339_round_trips() {
        let samples = [
            "1970-01-01T00:00:00Z",
            "1972-02-29T12:00:00Z",
            "1999-12-31T23:59:59Z",
            "2000-02-29T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "2038-01-19T03:14:07Z",
            "2100-03-01T00:00:00Z",
            "2400-02-29T01:02:03Z",
            "0004-02-29T00:00:00Z",
            "1600-01-01T00:00:00Z",
        ];
        for text in samples {
            assert_eq!(time(text).to_string(), text);
        }
        // Every day over several leap cycles, at a varying time of day, both directions.
        let mut epoch = time("1895-01-01T00:00:00Z").epoch();
        let end = time("2105-01-01T00:00:00Z").epoch();
        let mut previous_day: Option<(i32, u8, u8)> = None;
        while epoch < end {
            let parsed = BackupTime::from_epoch(epoch).expect("in range");
            let text = parsed.to_string();
            assert_eq!(BackupTime::parse(&text), Ok(parsed), "{text}");
            let civil = parsed.civil(0).expect("offset 0");
            let day = (civil.year, civil.month, civil.day);
            if let Some(previous) = previous_day {
                assert!(day > previous, "{text} does not follow {previous:?}");
            }
            previous_day = Some(day);
            epoch += SECONDS_PER_DAY + 3_599;
        }
        // Day-by-day consistency of the two conversions over whole eras.
        for days in -800_000..800_000 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
            assert!((1..=days_in_month(year, month)).contains(&day));
        }
    }

    #[test]
    fn rejects_malformed_times() {
        let syntax = |text: &str| {
            assert_eq!(
                BackupTime::parse(text),
                Err(NameError::BackupTimeSyntax {
                    text: text.to_owned()
                }),
                "{text:?}"
            );
        };
        for text in [
            "",
            "2024-01-01 00:00:00Z",
            "2024-01-01t00:00:00Z",
            "2024-01-01T00:00:00z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00+00:00",
            "2024-01-01T00:00:00.5Z",
            "24-01-01T00:00:00Z",
            "+2024-01-01T00:00:0Z",
            "2024-1-01T00:00:00Z",
            "2024-01-01T00:00:0xZ",
            "2024-01-01T00:00:00ZZ",
            "2024/01/01T00:00:00Z",
            "２０２4-01-01T00:00Z",
            "-001-01-01T00:00:00Z",
        ] {
            syntax(text);
        }
        let field = |text: &str, field| {
            assert_eq!(
                BackupTime::parse(text),
                Err(NameError::BackupTimeField {
                    text: text.to_owned(),
                    field
                }),
                "{text:?}"
            );
        };
        field("2024-02-30T00:00:00Z", "day");
        field("2023-02-29T00:00:00Z", "day");
        field("1900-02-29T00:00:00Z", "day");
        field("2024-04-31T00:00:00Z", "day");
        field("2024-01-00T00:00:00Z", "day");
        field("2024-00-01T00:00:00Z", "month");
        field("2024-13-01T00:00:00Z", "month");
        field("2024-01-01T24:00:00Z", "hour");
        field("2024-01-01T00:60:00Z", "minute");
        field("2016-12-31T23:59:60Z", "second");
        assert!(BackupTime::parse("2000-02-29T00:00:00Z").is_ok());
    }

    #[test]
    fn epoch_range() {
        for epoch in [BACKUP_TIME_MIN - 1, BACKUP_TIME_MAX + 1, i64::MIN, i64::MAX] {
            assert_eq!(
                BackupTime::from_epoch(epoch),
                Err(NameError::EpochOutOfRange { epoch })
            );
            assert_eq!(
                CivilTime::from_epoch(epoch, 0),
                Err(NameError::EpochOutOfRange { epoch })
            );
        }
    }

    #[test]
    fn groups_and_dirs() {
        let group = BackupGroup::parse("vm", "100").expect("valid group");
        assert_eq!(group.relative_path(), PathBuf::from("vm/100"));
        assert_eq!(group.to_string(), "vm/100");
        assert_eq!(BackupGroup::from_relative_path("vm/100"), Ok(group.clone()));
        let dir = BackupDir::new(group, time("2024-01-02T03:04:05Z"));
        assert_eq!(
            dir.relative_path(),
            PathBuf::from("vm/100/2024-01-02T03:04:05Z")
        );
        assert_eq!(
            BackupDir::from_relative_path("vm/100/2024-01-02T03:04:05Z"),
            Ok(dir)
        );
        for bad in ["vm", "vm/100/", "/vm/100", "vm//100", ""] {
            assert!(BackupGroup::from_relative_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            BackupGroup::from_relative_path("vm/100/x"),
            Err(NameError::BadPath {
                path: "vm/100/x".to_owned(),
                expected: "group"
            })
        );
        assert!(matches!(
            BackupGroup::from_relative_path("vm/.."),
            Err(NameError::BackupIdBadChar { .. })
        ));
        assert!(matches!(
            BackupDir::from_relative_path("vm/100"),
            Err(NameError::BadPath {
                expected: "snapshot",
                ..
            })
        ));
        assert!(matches!(
            BackupDir::from_relative_path("qemu/100/2024-01-02T03:04:05Z"),
            Err(NameError::UnknownBackupType { .. })
        ));
        assert!(matches!(
            BackupDir::from_relative_path("vm/100/2024-01-02T03:04:05Z/x"),
            Err(NameError::BadPath { .. })
        ));
    }

    #[test]
    fn civil_fields_and_iso_weeks() {
        let civil = |text: &str, offset| time(text).civil(offset).expect("valid offset");
        let c = civil("2024-01-02T03:04:05Z", 0);
        assert_eq!(
            (c.year, c.month, c.day, c.hour, c.minute, c.second),
            (2024, 1, 2, 3, 4, 5)
        );
        assert_eq!((c.weekday, c.ordinal), (2, 2));
        // ISO week edge cases.
        let week = |text: &str| {
            let c = civil(text, 0);
            (c.iso_week_year, c.iso_week)
        };
        assert_eq!(week("2021-01-03T12:00:00Z"), (2020, 53));
        assert_eq!(week("2021-01-04T12:00:00Z"), (2021, 1));
        assert_eq!(week("2024-12-30T00:00:00Z"), (2025, 1));
        assert_eq!(week("2008-12-29T00:00:00Z"), (2009, 1));
        assert_eq!(week("2010-01-03T23:59:59Z"), (2009, 53));
        assert_eq!(week("2015-12-31T00:00:00Z"), (2015, 53));
        assert_eq!(week("1970-01-01T00:00:00Z"), (1970, 1));
        assert_eq!(civil("1970-01-01T00:00:00Z", 0).weekday, 4);
        assert_eq!(civil("2024-12-31T00:00:00Z", 0).ordinal, 366);
        // Offsets move the calendar fields, not the instant.
        let east = civil("2024-12-31T23:30:00Z", 3600);
        assert_eq!(
            (east.year, east.month, east.day, east.hour),
            (2025, 1, 1, 0)
        );
        let west = civil("2024-01-01T00:30:00Z", -3600);
        assert_eq!(
            (west.year, west.month, west.day, west.hour),
            (2023, 12, 31, 23)
        );
        assert_eq!(west.period_key(CalendarPeriod::Year), (2023, 0, 0, 0));
        assert_eq!(west.period_key(CalendarPeriod::Month), (2023, 12, 0, 0));
        assert_eq!(west.period_key(CalendarPeriod::Day), (2023, 12, 31, 0));
        assert_eq!(west.period_key(CalendarPeriod::Hour), (2023, 12, 31, 23));
        assert_eq!(west.period_key(CalendarPeriod::IsoWeek), (2023, 52, 0, 0));
        assert_eq!(west.weekday, 7);
        // The edges of the range with an offset leave the four-digit years without panicking.
        assert_eq!(civil("0000-01-01T00:00:00Z", -1).year, -1);
        assert_eq!(civil("9999-12-31T23:59:59Z", 1).year, 10_000);
        let limit = UTC_OFFSET_SECONDS_LIMIT;
        for offset_seconds in [limit, -limit, i32::MIN, i32::MAX] {
            assert_eq!(
                CivilTime::from_epoch(0, offset_seconds),
                Err(NameError::UtcOffsetOutOfRange { offset_seconds })
            );
        }
        assert!(CivilTime::from_epoch(0, limit - 1).is_ok());
    }

    #[test]
    fn iso_weeks_agree_with_weekday_walk() {
        // Walk day by day: the ISO week advances exactly on Mondays.
        let start = time("1999-12-27T00:00:00Z").civil(0).expect("offset 0");
        assert_eq!(
            (start.weekday, start.iso_week_year, start.iso_week),
            (1, 1999, 52)
        );
        let mut previous = start;
        for day in 1..(366 * 30) {
            let epoch = time("1999-12-27T00:00:00Z").epoch() + day * SECONDS_PER_DAY;
            let current = CivilTime::from_epoch(epoch, 0).expect("in range");
            let previous_key = previous.period_key(CalendarPeriod::IsoWeek);
            let current_key = current.period_key(CalendarPeriod::IsoWeek);
            if current.weekday == 1 {
                assert!(current_key > previous_key);
                assert!(current.iso_week == 1 || current.iso_week == previous.iso_week + 1);
            } else {
                assert_eq!(current_key, previous_key);
            }
            previous = current;
        }
    }
}
