//! The shared vocabulary of a submission: its id, the day it arrived, and how it was sealed.
//!
//! These are the only facts Resguardo keeps about a submission besides its ciphertext, and each
//! is chosen to say as little as possible: a random id (no counter that orders reports), the UTC
//! day (no time of day), and whether the sender's software or the gateway did the encryption.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

/// Defines a random 128-bit identifier shown as 32 lowercase hex digits. Each kind of id is its
/// own type, so a batch id can never be taken for a submission id (or reported as one).
macro_rules! random_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; 16]);

        impl $name {
            /// A fresh id from the operating system's CSPRNG.
            pub fn random() -> Self {
                let mut bytes = [0u8; 16];
                // SystemRandom only fails if the OS has no entropy source, which we cannot run
                // without.
                SystemRandom::new()
                    .fill(&mut bytes)
                    .expect("the operating system's random number generator failed");
                $name(bytes)
            }

            /// The id with these bytes (as stored).
            pub fn from_bytes(bytes: [u8; 16]) -> Self {
                $name(bytes)
            }

            /// The id's bytes (as stored).
            pub fn as_bytes(&self) -> &[u8; 16] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = BadId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let bad = || BadId {
                    what: $what,
                    given: s.chars().take(40).collect(),
                };
                if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                    return Err(bad());
                }
                let mut bytes = [0u8; 16];
                hex::decode_to_slice(s, &mut bytes).map_err(|_| bad())?;
                Ok($name(bytes))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

random_id!(
    /// A submission's id: random, so ids say nothing about order or time of arrival.
    SubmissionId,
    "submission id"
);

random_id!(
    /// An export batch's id (one bundle, its receipt, the records it marked exported).
    BatchId,
    "batch id"
);

/// Why a string is not an id of the kind wanted.
#[derive(Debug, thiserror::Error)]
#[error("not a {what} (expected 32 lowercase hex digits): {given:?}")]
pub struct BadId {
    what: &'static str,
    given: String,
}

/// A UTC calendar day, the finest time resolution Resguardo records.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UtcDay(i32);

impl UtcDay {
    /// The current UTC day, by the system clock.
    pub fn today() -> Self {
        Self::of(SystemTime::now())
    }

    /// The UTC day containing `t` (days before 1970 are negative).
    pub fn of(t: SystemTime) -> Self {
        let secs = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        UtcDay(secs.div_euclid(86_400) as i32)
    }

    /// The day this many days after 1970-01-01 (negative: before).
    pub fn from_days_since_epoch(days: i32) -> Self {
        UtcDay(days)
    }

    /// Days since 1970-01-01 (0 for that day; negative before it).
    pub fn days_since_epoch(self) -> i32 {
        self.0
    }

    /// Midnight UTC at the start of the day: the only timestamp we put on files.
    pub fn start(self) -> SystemTime {
        let secs = i64::from(self.0) * 86_400;
        if secs >= 0 {
            UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
        }
    }

    fn date(self) -> Option<time::Date> {
        time::Date::from_julian_day(self.0 + UNIX_EPOCH_JULIAN_DAY).ok()
    }
}

/// Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

impl fmt::Display for UtcDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.date() {
            Some(d) => write!(
                f,
                "{:04}-{:02}-{:02}",
                d.year(),
                u8::from(d.month()),
                d.day()
            ),
            None => write!(f, "day {}", self.0),
        }
    }
}

impl fmt::Debug for UtcDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UtcDay({self})")
    }
}

/// Why a string is not a day.
#[derive(Debug, thiserror::Error)]
#[error("not a day (expected YYYY-MM-DD): {0:?}")]
pub struct BadDay(String);

impl FromStr for UtcDay {
    type Err = BadDay;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadDay(s.chars().take(20).collect());
        let format = time::macros::format_description!("[year]-[month]-[day]");
        if s.len() != 10 {
            return Err(bad());
        }
        let date = time::Date::parse(s, format).map_err(|_| bad())?;
        Ok(UtcDay(date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY))
    }
}

impl Serialize for UtcDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UtcDay {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Who encrypted a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sealing {
    /// The sender's own software (the browser page, `resguardo-submit`, gpg, sq) encrypted it
    /// before upload: the gateway never saw the plaintext.
    BySender,
    /// The gateway sealed a plain form post on arrival, in memory: the plaintext passed through
    /// the gateway's memory.
    OnArrival,
}

impl Sealing {
    /// The `snake_case` name, as serialised: `by_sender` or `on_arrival`.
    pub fn as_str(self) -> &'static str {
        match self {
            Sealing::BySender => "by_sender",
            Sealing::OnArrival => "on_arrival",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_bad_text() {
        let id = SubmissionId::random();
        let text = id.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(text.parse::<SubmissionId>().expect("parse"), id);
        for bad in [
            "",
            "xyz",
            &text[..31],
            &text.to_uppercase(),
            "../../etc/passwd",
        ] {
            if bad == text {
                continue;
            }
            assert!(bad.parse::<SubmissionId>().is_err(), "{bad:?}");
        }
        assert_ne!(SubmissionId::random(), SubmissionId::random());
    }

    #[test]
    fn days_format_and_parse() {
        let day = UtcDay::from_days_since_epoch(0);
        assert_eq!(day.to_string(), "1970-01-01");
        let day: UtcDay = "2026-11-29".parse().expect("parse");
        assert_eq!(day.to_string(), "2026-11-29");
        assert_eq!(UtcDay::of(day.start()), day);
        assert!("2026-13-01".parse::<UtcDay>().is_err());
        assert!("2026-11-29T10:00".parse::<UtcDay>().is_err());
        let t = UNIX_EPOCH + std::time::Duration::from_secs(86_400 * 3 + 5000);
        assert_eq!(UtcDay::of(t).days_since_epoch(), 3);
    }
}
