//! The incident clock: wall-clock timestamps derived from tokio's monotonic
//! clock, so a paused (virtual) tokio clock gives simulated times that are
//! consistent to the millisecond, and a live one gives real times that never
//! jump with NTP.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: DateTime<Utc>,
    mono: Instant,
}

impl Clock {
    pub fn start() -> Self {
        Self {
            wall: whole_ms(Utc::now()),
            mono: Instant::now(),
        }
    }

    /// A clock that reads `wall` now: `quench tick --now` runs what is due
    /// as of then, and journals it then.
    pub fn at(wall: DateTime<Utc>) -> Self {
        Self {
            wall: whole_ms(wall),
            mono: Instant::now(),
        }
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.wall
    }

    /// Now, to the millisecond (what the journal records), so spans
    /// computed from recorded times are exact.
    pub fn now(&self) -> DateTime<Utc> {
        whole_ms(self.wall + self.elapsed())
    }

    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.mono)
    }
}

fn whole_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}
