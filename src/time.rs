//! Times and durations as quench reads and writes them: durations in
//! runbooks (`200ms`, `5m`, `7d`), durations for people (`4.2s`), instants
//! to the millisecond. The shared vocabulary of the layers above.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// `200ms`, `10s`, `5m`, `7d`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() {
        return Err(format!("`{t}` has no unit: write `{t}s` or `{t}ms`"));
    }
    humantime::parse_duration(t).map_err(|e| format!("`{t}` is not a duration ({e})"))
}

/// A duration as a person reads it: `250ms`, `4.2s`, `3m 05s`.
pub fn human(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 3_600_000 {
        format!("{}m {:02}s", ms / 60_000, (ms / 1000) % 60)
    } else if ms < 86_400_000 {
        format!("{}h {:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    } else {
        format!("{}d {:02}h", ms / 86_400_000, (ms / 3_600_000) % 24)
    }
}

/// [`human`], of a count of milliseconds.
pub fn human_ms(ms: u64) -> String {
    human(Duration::from_millis(ms))
}

/// A duration as a runbook writes one, rounded up to the minute and at
/// least one: `90d 2h 5m`, `1m`. [`parse_duration`] reads it back.
pub fn runbook_duration(d: Duration) -> String {
    let minutes = (d.as_millis().div_ceil(60_000) as u64).max(1);
    let (days, hours, mins) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    [(days, "d"), (hours, "h"), (mins, "m")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// UTC to the millisecond: `2026-11-22T23:10:01.123Z`.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The whole-millisecond span between two times, zero if `to` is earlier.
pub fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> u64 {
    (to - from).num_milliseconds().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert!(parse_duration("10").unwrap_err().contains("`10s`"));
        assert!(parse_duration("fast").is_err());
    }

    #[test]
    fn runbook_durations_round_up_to_the_minute_and_read_back() {
        let min = Duration::from_secs(60);
        for (d, text) in [
            (Duration::ZERO, "1m"),
            (Duration::from_millis(1), "1m"),
            (min, "1m"),
            (min + Duration::from_millis(1), "2m"),
            (Duration::from_secs(90 * 86_400), "90d"),
            (
                Duration::from_secs(90 * 86_400 + 2 * 3600 + 4 * 60 + 1),
                "90d 2h 5m",
            ),
        ] {
            assert_eq!(runbook_duration(d), text, "{d:?}");
            assert!(parse_duration(text).unwrap() >= d, "{text}");
        }
    }
}
