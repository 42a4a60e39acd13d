//! The incident clock: wall-clock timestamps derived from tokio's monotonic
//! clock, so a paused (virtual) tokio clock gives simulated times that are
//! consistent to the millisecond, and a live one gives real times that never
//! jump with NTP. A drill's clock is scaled: it reads `scale` simulated
//! milliseconds for each one that passes, so a drill at `--pace 20x` keeps
//! its scenario's timeline twenty times as fast, and the tests drive time
//! with it instead of tokio's paused clock.

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::journal::whole_ms;

#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: DateTime<Utc>,
    mono: Instant,
    /// Simulated time per unit of real time: 1 but in a paced drill.
    scale: u32,
}

impl Clock {
    pub fn start() -> Self {
        Self::at(Utc::now())
    }

    /// A clock that reads `wall` now: `quench tick --now` runs what is due
    /// as of then, and journals it then.
    pub fn at(wall: DateTime<Utc>) -> Self {
        Self {
            wall: whole_ms(wall),
            mono: Instant::now(),
            scale: 1,
        }
    }

    /// The same clock, running `scale` times as fast from its start.
    pub fn scaled(self, scale: u32) -> Self {
        Self {
            scale: scale.max(1),
            ..self
        }
    }

    pub fn scale(&self) -> u32 {
        self.scale
    }

    pub fn started_at(&self) -> DateTime<Utc> {
        self.wall
    }

    /// Now, to the millisecond (what the journal records), so spans
    /// computed from recorded times are exact.
    pub fn now(&self) -> DateTime<Utc> {
        whole_ms(self.wall + self.elapsed())
    }

    /// Simulated time since the start: real time, times the scale.
    pub fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.mono) * self.scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_scaled_clock_runs_its_scale_times_as_fast() {
        let clock = Clock::at(DateTime::from_timestamp_millis(1_000_000).unwrap()).scaled(20);
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(clock.elapsed(), Duration::from_secs(30));
        assert_eq!(clock.now().timestamp_millis(), 1_030_000);
    }
}
