//! Watching a rotated-out access key go quiet: IAM's last-used record must
//! show no use after the switch to the new key for a whole window before
//! the old key is turned off. IAM updates that record with a delay it does
//! not document, hence a window of hours, not minutes.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Aws;
use super::inventory::to_chrono;
use crate::action;
use crate::providers::ActionError;
use crate::providers::action::{Call, Perform, Watches};
use crate::time::{format_ts, parse_duration, runbook_duration};

/// How long the old key must go unused when the step names no window.
pub const DEFAULT_QUIET_WINDOW: Duration = Duration::from_secs(24 * 3600);

action! {
    /// Watch an access key go quiet: no use since the switch for a whole
    /// window (IAM's GetAccessKeyLastUsed); the step waits, and `quench
    /// tick` looks again
    "aws.watch_key_quiet" in Aws => WatchKeyQuiet [idempotent, watches] {
        /// the old key id
        access_key_id: String,
        /// how long it must go unused (default 24h: IAM updates last-used late)
        window: Option<String>,
        /// while the key is still used: `wait` (default) or `fail`
        while_used: Option<String>,
        /// the switch, RFC 3339 (default: when the step first started)
        since: Option<String>,
    } -> WatchKeyQuietOutputs {
        /// RFC 3339 time of its last use, or empty
        last_used: String,
        /// service it was last used with
        service: String,
        /// region it was last used in
        region: String,
        /// the switch the window counts from
        quiet_since: String,
        /// the window it stayed unused for
        window: String,
    }
}

impl Watches for WatchKeyQuiet {
    fn window(&self) -> Duration {
        self.window
            .as_deref()
            .and_then(|w| parse_duration(w).ok())
            .unwrap_or(DEFAULT_QUIET_WINDOW)
    }
}

impl Perform for WatchKeyQuiet {
    async fn perform(self, aws: &Aws, call: Call<'_>) -> Result<WatchKeyQuietOutputs, ActionError> {
        let watch = Watch::new(&self, call)?;
        let used = aws.last_used(&self.access_key_id).await?.and_then(|u| {
            Some(LastUse {
                at: to_chrono(u.last_used_date()?)?,
                service: u.service_name().to_string(),
                region: u.region().to_string(),
            })
        });
        watch.judge(&self.access_key_id, used)
    }
}

/// A key's last recorded use.
#[derive(Debug, Clone)]
pub(crate) struct LastUse {
    pub at: DateTime<Utc>,
    pub service: String,
    pub region: String,
}

/// What one look weighs the last use against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    window: Duration,
    fail_while_used: bool,
}

impl Watch {
    fn new(params: &WatchKeyQuiet, call: Call<'_>) -> Result<Watch, ActionError> {
        if let Some(w) = params.window.as_deref() {
            parse_duration(w)
                .map_err(|e| ActionError::permanent(format!("`window` is not a duration: {e}")))?;
        }
        let fail_while_used = match params.while_used.as_deref().unwrap_or("wait") {
            "wait" => false,
            "fail" => true,
            other => {
                return Err(ActionError::permanent(format!(
                    "`while_used` is `wait` or `fail`, not `{other}`"
                )));
            }
        };
        let since = match params.since.as_deref().filter(|s| !s.is_empty()) {
            None => call.since,
            Some(s) => DateTime::parse_from_rfc3339(s)
                .map_err(|e| {
                    ActionError::permanent(format!("`since` is not an RFC 3339 time ({e})"))
                })?
                .with_timezone(&Utc),
        };
        Ok(Watch {
            since,
            now: call.now,
            window: params.window(),
            fail_while_used,
        })
    }

    /// Quiet once the window has passed with no use after the switch; else
    /// not yet (or a failure, when the runbook says so), saying who still
    /// uses the key.
    pub(crate) fn judge(
        &self,
        key: &str,
        used: Option<LastUse>,
    ) -> Result<WatchKeyQuietOutputs, ActionError> {
        let window = chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX);
        // Used after the switch: a consumer was missed. Waiting, the window
        // starts over from that use.
        let after_switch = used.as_ref().filter(|u| u.at > self.since);
        let quiet_from = after_switch.map_or(self.since, |u| u.at);
        if let Some(u) = after_switch.filter(|u| self.fail_while_used || self.now < u.at + window) {
            let who = format!(
                "`{key}` is still in use: last by `{}` in `{}` at {}, after the switch at {}",
                or_unknown(&u.service),
                or_unknown(&u.region),
                format_ts(&u.at),
                format_ts(&self.since)
            );
            if self.fail_while_used {
                return Err(ActionError::permanent(format!(
                    "{who}: a consumer still has the old key; redeploy it, then rotate again"
                )));
            }
            return Err(ActionError::not_yet(
                u.at + window,
                format!(
                    "{who}; it must then go unused for {}",
                    runbook_duration(self.window)
                ),
            ));
        }
        let until = quiet_from + window;
        if self.now < until {
            return Err(ActionError::not_yet(
                until,
                format!(
                    "`{key}` unused since {}; the {} quiet window ends at {}",
                    format_ts(&quiet_from),
                    runbook_duration(self.window),
                    format_ts(&until)
                ),
            ));
        }
        Ok(WatchKeyQuietOutputs {
            last_used: used.as_ref().map(|u| format_ts(&u.at)).unwrap_or_default(),
            service: used.as_ref().map(|u| u.service.clone()).unwrap_or_default(),
            region: used.map(|u| u.region).unwrap_or_default(),
            quiet_since: format_ts(&quiet_from),
            window: runbook_duration(self.window),
        })
    }
}

/// IAM answers `N/A` for a key never used; an empty field says nothing.
fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "N/A" } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::ErrorClass;

    fn at(h: i64) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::hours(h)
    }

    fn watch(now: i64, fail: bool) -> Watch {
        Watch {
            since: at(0),
            now: at(now),
            window: DEFAULT_QUIET_WINDOW,
            fail_while_used: fail,
        }
    }

    fn use_at(h: i64) -> Option<LastUse> {
        Some(LastUse {
            at: at(h),
            service: "s3".into(),
            region: "eu-west-1".into(),
        })
    }

    #[test]
    fn a_key_unused_since_the_switch_is_quiet_once_the_window_has_passed() {
        let early = watch(3, false).judge("AKIAOLD", use_at(-2)).unwrap_err();
        assert_eq!(early.class, ErrorClass::NotYet { until: at(24) });
        let quiet = watch(25, false).judge("AKIAOLD", use_at(-2)).unwrap();
        assert_eq!(quiet.service, "s3");
        assert_eq!(quiet.window, "1d");
        assert!(watch(25, false).judge("AKIAOLD", None).is_ok());
    }

    #[test]
    fn a_key_used_after_the_switch_names_who_and_waits_or_fails() {
        let waiting = watch(28, false).judge("AKIAOLD", use_at(5)).unwrap_err();
        assert_eq!(waiting.class, ErrorClass::NotYet { until: at(29) });
        assert!(
            waiting
                .message
                .contains("last by `s3` in `eu-west-1` at 2026-12-01T05:00:00.000Z"),
            "{}",
            waiting.message
        );
        let failed = watch(6, true).judge("AKIAOLD", use_at(5)).unwrap_err();
        assert_eq!(failed.class, ErrorClass::Permanent);
        assert!(failed.message.contains("`s3` in `eu-west-1`"));
        // A whole window after that use, it has gone quiet after all.
        let quiet = watch(30, false).judge("AKIAOLD", use_at(5)).unwrap();
        assert_eq!(quiet.quiet_since, "2026-12-01T05:00:00.000Z");
    }
}
