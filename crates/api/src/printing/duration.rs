//! Ages as kubectl shows them: apimachinery's `duration.HumanDuration` and
//! the printers' `translateTimestampSince`.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

/// What a cell shows for a timestamp that is not set.
pub const UNKNOWN: &str = "<unknown>";

/// `duration.HumanDuration`: a succinct age with 2–3 significant figures
/// (`45s`, `5m30s`, `93m`, `5h10m`, `30h`, `3d4h`, `200d`, `3y17d`, `9y`).
pub fn human_duration(d: std::time::Duration) -> String {
    human_duration_signed(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
}

/// [`human_duration`] for a duration that may be negative (a timestamp in the
/// future): up to one second early reads `0s`, more reads `<invalid>`.
pub fn human_duration_signed(d: SignedDuration) -> String {
    // Go: `int(d.Seconds())` truncates toward zero, as `as_secs` does.
    let seconds = d.as_secs();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 { format!("{minutes}m") } else { format!("{minutes}m{s}s") };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 { format!("{hours}h") } else { format!("{hours}h{m}m") };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 { format!("{}d", hours / 24) } else { format!("{}d{h}h", hours / 24) };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        return if dy == 0 { format!("{}y", hours / 24 / 365) } else { format!("{}y{dy}d", hours / 24 / 365) };
    }
    format!("{}y", hours / 24 / 365)
}

/// Parses an RFC 3339 `metav1.Time`/`MicroTime` value; `None` when unset (the zero time).
pub fn parse_timestamp(v: Option<&Value>) -> Option<Timestamp> {
    v.and_then(Value::as_str).filter(|s| !s.is_empty()).and_then(|s| s.parse::<Timestamp>().ok())
}

/// `translateTimestampSince`: the age of `ts` at `now`, or `<unknown>` if unset.
pub fn since(ts: Option<Timestamp>, now: Timestamp) -> String {
    match ts {
        Some(ts) => human_duration_signed(now.duration_since(ts)),
        None => UNKNOWN.to_owned(),
    }
}

/// [`since`] of a timestamp field of an object.
pub fn since_value(v: Option<&Value>, now: Timestamp) -> String {
    since(parse_timestamp(v), now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn secs(s: u64) -> String {
        human_duration(Duration::from_secs(s))
    }

    #[test]
    fn thresholds_match_apimachinery() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (121, "2m1s"),
            (599, "9m59s"),
            (600, "10m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 60, "3h1m"),
            (8 * 3600 - 1, "7h59m"),
            (8 * 3600, "8h"),
            (48 * 3600 - 1, "47h"),
            (48 * 3600, "2d"),
            (48 * 3600 + 3600, "2d1h"),
            (8 * 86400 - 1, "7d23h"),
            (8 * 86400, "8d"),
            (2 * 365 * 86400 - 1, "729d"),
            (2 * 365 * 86400, "2y"),
            (2 * 365 * 86400 + 86400, "2y1d"),
            (8 * 365 * 86400 - 1, "7y364d"),
            (8 * 365 * 86400, "8y"),
        ];
        for (s, want) in cases {
            assert_eq!(secs(*s), *want, "{s}s");
        }
    }

    #[test]
    fn sub_second_precision_truncates() {
        assert_eq!(human_duration(Duration::from_millis(119_999)), "119s");
        assert_eq!(human_duration(Duration::from_millis(1_500)), "1s");
    }

    #[test]
    fn future_timestamps_tolerate_one_second() {
        assert_eq!(human_duration_signed(SignedDuration::from_millis(-1_999)), "0s");
        assert_eq!(human_duration_signed(SignedDuration::from_secs(-2)), "<invalid>");
    }

    #[test]
    fn unset_timestamp_is_unknown() {
        let now: Timestamp = "2024-05-01T12:00:00Z".parse().expect("valid");
        assert_eq!(since_value(None, now), "<unknown>");
        assert_eq!(since_value(Some(&Value::Null), now), "<unknown>");
        assert_eq!(since_value(Some(&Value::from("2024-05-01T11:55:00Z")), now), "5m");
    }
}
