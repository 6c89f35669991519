//! Conversions between `google.protobuf.Timestamp` and the instants services use:
//! chrono's `DateTime<Utc>` and HubSpot's epoch milliseconds.
//!
//! Pure functions only; nothing here reads the clock.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

const NANOS_PER_MILLI: i64 = 1_000_000;
const MILLIS_PER_SEC: i64 = 1_000;

/// A `Timestamp` that `DateTime<Utc>` cannot represent (beyond about ±262,000 years).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timestamp of {seconds} s since the epoch is outside the representable range")]
pub struct TimestampOutOfRange {
    /// Seconds since the Unix epoch of the rejected timestamp (after normalising).
    pub seconds: i64,
}

/// The protobuf form of a chrono instant, exact to the nanosecond.
#[must_use]
pub fn to_timestamp(at: DateTime<Utc>) -> Timestamp {
    // chrono reports a leap second as nanos >= 1e9; normalising carries it into
    // the seconds, which is what protobuf readers expect.
    let mut ts = Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    };
    ts.normalize();
    ts
}

/// The chrono instant of a protobuf timestamp (normalising out-of-range nanos first).
///
/// # Errors
/// [`TimestampOutOfRange`] when chrono cannot represent the instant.
pub fn to_datetime(ts: &Timestamp) -> Result<DateTime<Utc>, TimestampOutOfRange> {
    let mut ts = *ts;
    ts.normalize();
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or(TimestampOutOfRange {
            seconds: ts.seconds,
        })
}

/// The timestamp of HubSpot epoch milliseconds (webhook `occurredAt`), exact.
#[must_use]
pub fn from_epoch_ms(ms: i64) -> Timestamp {
    // rem_euclid keeps nanos non-negative for instants before 1970.
    let nanos = ms.rem_euclid(MILLIS_PER_SEC) * NANOS_PER_MILLI;
    Timestamp {
        seconds: ms.div_euclid(MILLIS_PER_SEC),
        // Below 1e9 by construction, so the conversion cannot fail.
        nanos: i32::try_from(nanos).unwrap_or(0),
    }
}

/// Epoch milliseconds of a timestamp, truncating sub-millisecond precision
/// towards the past; saturates at the ends of the `i64` range.
#[must_use]
pub fn to_epoch_ms(ts: &Timestamp) -> i64 {
    let mut ts = *ts;
    ts.normalize();
    ts.seconds
        .saturating_mul(MILLIS_PER_SEC)
        .saturating_add(i64::from(ts.nanos).div_euclid(NANOS_PER_MILLI))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_survives_the_trip_through_a_timestamp() {
        let at = DateTime::from_timestamp(1_767_225_600, 123_456_789).unwrap();
        assert_eq!(to_datetime(&to_timestamp(at)).unwrap(), at);
    }

    #[test]
    fn hubspot_millis_survive_the_trip_including_before_1970() {
        for ms in [
            1_767_225_600_500,
            0,
            -1,
            -1_500,
            i64::from(i32::MAX) * 1000 + 999,
        ] {
            let ts = from_epoch_ms(ms);
            assert!((0..1_000_000_000).contains(&ts.nanos), "{ts:?}");
            assert_eq!(to_epoch_ms(&ts), ms);
        }
    }

    #[test]
    fn millis_and_datetime_agree_on_the_same_instant() {
        let at = to_datetime(&from_epoch_ms(1_767_225_600_500)).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-01-01T00:00:00.500+00:00");
    }

    #[test]
    fn timestamp_beyond_chrono_range_is_an_error_not_a_panic() {
        let ts = Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        };
        assert_eq!(
            to_datetime(&ts),
            Err(TimestampOutOfRange { seconds: i64::MAX })
        );
    }
}
