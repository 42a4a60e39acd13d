//! Scheduled rotations (`[[rotations]]`): when each last ran, how that
//! ended, when it is next due, and which are due now for `quench tick`.
//! A rotation's last run is the latest live incident of its runbook with
//! its inputs, however it was started. A run that failed is retried, the
//! same incident, after a backoff read from its journal ([`retry_delay`]),
//! and given up on after [`RETRIES`] retries; [`report`] says each failure,
//! retry and give-up in words for the rotation's Slack channel.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Error;
use crate::config::RotationConfig;
use crate::document::Report;
use crate::journal::{self, Event, Mode};
use crate::store::Store;

/// How often a rotation runs: a fixed interval after its last run, or at
/// the times a cron expression names (UTC).
#[derive(Debug, Clone)]
pub enum Every {
    Interval(Duration),
    Cron(Box<croner::Cron>),
}

impl Every {
    pub fn parse(text: &str) -> Result<Every, String> {
        if let Ok(d) = crate::time::parse_duration(text) {
            return Ok(Every::Interval(d));
        }
        text.parse::<croner::Cron>()
            .map(|c| Every::Cron(Box::new(c)))
            .map_err(|e| {
                format!(
                    "`every = \"{text}\"` is neither a duration (`90d`) nor a cron expression ({e})"
                )
            })
    }

    /// When a rotation last run at `last` is next due.
    pub fn next_after(&self, last: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Every::Interval(d) => {
                last + chrono::Duration::from_std(*d).unwrap_or(chrono::Duration::MAX)
            }
            Every::Cron(c) => c
                .find_next_occurrence(&last, false)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        }
    }
}

/// How many times a failed rotation is retried before it is given up on:
/// four runs in all. It then stays failed and overdue until a person runs
/// it again.
pub const RETRIES: u32 = 3;

/// The wait before the first retry, counted from the failure.
const FIRST_RETRY: Duration = Duration::from_secs(3600);

/// Each retry waits this many times longer than the one before: 1 h, 4 h,
/// then 16 h after each failure, so a rotation failing for a reason that
/// lasts gives up within a day.
const RETRY_FACTOR: u32 = 4;

/// How long after its last failure a rotation that has been retried
/// `retries` times is retried again; `None` once it has been given up on.
pub fn retry_delay(retries: u32) -> Option<Duration> {
    (retries < RETRIES).then(|| FIRST_RETRY * RETRY_FACTOR.pow(retries))
}

/// One `[[rotations]]` entry, checked.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub runbook: String,
    pub inputs: BTreeMap<String, String>,
    pub every_text: String,
    pub every: Every,
    /// The Slack channel told of its failures, retries and give-up.
    pub channel: Option<String>,
}

/// The configured rotations, or the first that does not parse.
pub fn schedules(config: &[RotationConfig]) -> Result<Vec<Schedule>, Error> {
    config
        .iter()
        .map(|r| {
            let every = Every::parse(&r.every)
                .map_err(|e| Error::Usage(format!("`[[rotations]]` of `{}`: {e}", r.runbook)))?;
            Ok(Schedule {
                name: r.name.clone().unwrap_or_else(|| r.runbook.clone()),
                runbook: r.runbook.clone(),
                inputs: r.inputs.clone(),
                every_text: r.every.clone(),
                every,
                channel: r.channel.clone().filter(|c| !c.is_empty()),
            })
        })
        .collect()
}

/// Where a scheduled rotation stands, as `quench rotations` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub name: String,
    pub runbook: String,
    pub every: String,
    /// The last run's incident, and when it started.
    pub last_incident: Option<String>,
    pub last_run: Option<String>,
    /// How it stands: `done`, `waiting: …`, `failed at …`; `never run`.
    pub outcome: String,
    pub next_due: String,
    /// Due and not running, or its last run failed.
    pub overdue: bool,
    /// How many times the last run's incident has run: its start and each
    /// retry (0: never run).
    pub attempts: u32,
    /// When `quench tick` retries its failed last run.
    pub next_retry: Option<String>,
    /// Its last run failed and every retry with it: it is not retried again.
    pub gave_up: bool,
    /// Due now: `quench tick` starts it.
    #[serde(skip)]
    pub due: bool,
    /// Its failed last run's backoff is over: `quench tick` retries it.
    #[serde(skip)]
    pub retry_due: bool,
    /// Why its last run failed: the failed step and its error, as
    /// journaled (redacted).
    #[serde(skip)]
    pub failure: Option<String>,
}

/// Every schedule's status as of `now`.
pub fn status(store: &Store, schedules: &[Schedule], now: DateTime<Utc>) -> Vec<Status> {
    let runs = live_runs(store);
    schedules
        .iter()
        .map(|s| {
            let last = runs
                .iter()
                .filter(|r| {
                    r.runbook == s.runbook
                        && s.inputs.iter().all(|(k, v)| r.inputs.get(k) == Some(v))
                })
                .max_by_key(|r| r.started_at);
            let next = last.map_or(now, |l| s.every.next_after(l.started_at));
            let outcome = last.map_or_else(|| "never run".to_string(), |l| l.state.clone());
            let running = last.is_some_and(|l| !l.ended);
            let failed = outcome.starts_with("failed");
            let retries = last.map_or(0, |l| l.retries);
            let next_retry = last
                .and_then(|l| l.failed_at.filter(|_| failed))
                .and_then(|at| Some(at + chrono::Duration::from_std(retry_delay(retries)?).ok()?));
            Status {
                name: s.name.clone(),
                runbook: s.runbook.clone(),
                every: s.every_text.clone(),
                last_incident: last.map(|l| l.id.clone()),
                last_run: last.map(|l| journal::format_ts(&l.started_at)),
                next_due: journal::format_ts(&next),
                overdue: failed || (next < now && last.is_some() && !running),
                due: next <= now && !running && !failed,
                attempts: last.map_or(0, |l| 1 + l.retries),
                next_retry: next_retry.as_ref().map(journal::format_ts),
                gave_up: failed && next_retry.is_none(),
                retry_due: next_retry.is_some_and(|at| at <= now),
                failure: last.and_then(|l| l.failure.clone()).filter(|_| failed),
                outcome,
            }
        })
        .collect()
}

/// The inputs of every live rotation still running: `quench audit` lets
/// a user named in one have two active keys.
pub fn running_inputs(store: &Store) -> Vec<BTreeMap<String, String>> {
    live_runs(store)
        .into_iter()
        .filter(|r| r.rotation && !r.ended)
        .map(|r| r.inputs)
        .collect()
}

/// A live incident, as a rotation's last run.
struct Run {
    id: String,
    runbook: String,
    inputs: BTreeMap<String, String>,
    started_at: DateTime<Utc>,
    /// How it stands (a rotation's state, else the incident's status).
    state: String,
    /// Nothing is left to run but follow-ups, or it failed.
    ended: bool,
    /// Its runbook is a rotation.
    rotation: bool,
    /// How many times it was retried.
    retries: u32,
    /// When a step of it last failed.
    failed_at: Option<DateTime<Utc>>,
    /// The step that failed, and its error.
    failure: Option<String>,
}

fn live_runs(store: &Store) -> Vec<Run> {
    store
        .list()
        .into_iter()
        .filter_map(|id| {
            let records = store.journal(&id).ok()?;
            let Some(Event::IncidentStarted {
                runbook,
                inputs,
                started_at,
                mode: Mode::Live,
                ..
            }) = records.first().map(|r| &r.event)
            else {
                return None;
            };
            let report = Report::from_records(&records).ok()?;
            let retries = records
                .iter()
                .filter(|r| matches!(r.event, Event::IncidentRetried { .. }))
                .count() as u32;
            let (failed_at, failure) = records
                .iter()
                .rev()
                .find_map(|r| match &r.event {
                    Event::StepFailed { step, error, .. } => {
                        Some((Some(r.ts), Some(format!("`{step}` failed: {error}"))))
                    }
                    _ => None,
                })
                .unwrap_or_default();
            let (state, ended) = match &report.rotation {
                Some(r) => (r.state.clone(), r.done || r.state.starts_with("failed")),
                None => (report.status.clone(), report.finished_at.is_some()),
            };
            Some(Run {
                id,
                runbook: runbook.clone(),
                inputs: inputs.clone(),
                started_at: *started_at,
                state,
                ended,
                rotation: report.rotation.is_some(),
                retries,
                failed_at,
                failure,
            })
        })
        .collect()
}

/// What a rotation's Slack channel is told after a `tick` moved it from
/// `before` to `after`: that it failed (and when it is retried), that a
/// retry ran and how it ended, or that it was given up on. `None` when
/// nothing of that happened.
pub fn report(before: Option<&Status>, after: &Status) -> Option<String> {
    let same_run = before.is_some_and(|b| b.last_incident == after.last_incident);
    let retried = same_run && before.is_some_and(|b| b.attempts < after.attempts);
    let failed_now = after.outcome.starts_with("failed")
        && !(same_run && !retried && before.is_some_and(|b| b.outcome == after.outcome));
    if !retried && !failed_now {
        return None;
    }
    let incident = after.last_incident.as_deref().unwrap_or("—");
    let mut text = format!(
        "Rotation *{}* (`{}`, {}): ",
        crate::mrkdwn::escape(&after.name),
        crate::mrkdwn::escape(&after.runbook),
        crate::mrkdwn::escape(incident)
    );
    let retry = after.attempts.saturating_sub(1);
    if retried {
        text.push_str(&format!("retry {retry} of {RETRIES} "));
    }
    if !failed_now {
        text.push_str(&format!(
            "succeeded; it is {}.",
            crate::mrkdwn::escape(&after.outcome)
        ));
        return Some(text);
    }
    text.push_str(&format!(
        "failed: {}.",
        crate::mrkdwn::escape(after.failure.as_deref().unwrap_or(&after.outcome))
    ));
    match &after.next_retry {
        Some(at) => text.push_str(&format!(" `quench tick` retries it at {at}.")),
        None => text.push_str(&format!(
            " Given up after {} attempts: it stays failed and overdue until it is run by hand.",
            after.attempts
        )),
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn every_is_an_interval_or_a_cron_expression() {
        let last = at("2026-12-01T10:00:00Z");
        let every = Every::parse("90d").unwrap();
        assert_eq!(every.next_after(last), at("2027-03-01T10:00:00Z"));
        let quarterly = Every::parse("0 3 1 */3 *").unwrap();
        assert_eq!(quarterly.next_after(last), at("2027-01-01T03:00:00Z"));
        assert!(Every::parse("every tuesday").is_err());
    }

    #[test]
    fn a_failed_rotation_is_retried_after_1h_4h_and_16h_then_given_up_on() {
        let hours = |h: u64| Some(Duration::from_secs(h * 3600));
        assert_eq!(retry_delay(0), hours(1));
        assert_eq!(retry_delay(1), hours(4));
        assert_eq!(retry_delay(2), hours(16));
        assert_eq!(retry_delay(3), None);
    }

    fn status(incident: &str, outcome: &str, attempts: u32, next_retry: Option<&str>) -> Status {
        Status {
            name: "ci-bot".into(),
            runbook: "aws-access-key-rotation".into(),
            every: "90d".into(),
            last_incident: Some(incident.into()),
            last_run: None,
            outcome: outcome.into(),
            next_due: String::new(),
            overdue: false,
            attempts,
            next_retry: next_retry.map(str::to_string),
            gave_up: outcome.starts_with("failed") && next_retry.is_none(),
            due: false,
            retry_due: false,
            failure: outcome
                .starts_with("failed")
                .then(|| "`watch_old` failed: used by `lambda`".into()),
        }
    }

    #[test]
    fn a_report_says_each_failure_retry_and_give_up_and_nothing_else() {
        let waiting = status("INC-1", "waiting: `watch_old`", 1, None);
        let failed = status("INC-1", "failed at `watch_old`", 1, Some("T1"));
        // A follow-up failed in this tick.
        let text = report(Some(&waiting), &failed).unwrap();
        assert_eq!(
            text,
            "Rotation *ci-bot* (`aws-access-key-rotation`, INC-1): failed: `watch_old` failed: used by `lambda`. `quench tick` retries it at T1."
        );
        // Nothing changed: nothing to say, failed or not.
        assert_eq!(report(Some(&failed), &failed), None);
        assert_eq!(report(Some(&waiting), &waiting), None);
        // A new run that did not fail is not news; one that failed is.
        assert_eq!(report(None, &waiting), None);
        let other = status("INC-0", "done", 1, None);
        assert!(report(Some(&other), &failed).is_some());
        // Retries, failed and succeeded, and the give-up.
        let again = status("INC-1", "failed at `watch_old`", 2, Some("T2"));
        assert!(
            report(Some(&failed), &again)
                .unwrap()
                .contains("retry 1 of 3 failed")
        );
        let done = status("INC-1", "done", 2, None);
        assert!(
            report(Some(&failed), &done)
                .unwrap()
                .ends_with("retry 1 of 3 succeeded; it is done.")
        );
        let last = status("INC-1", "failed at `watch_old`", 4, None);
        let given_up = report(Some(&again), &last).unwrap();
        assert!(given_up.contains("retry 3 of 3 failed"), "{given_up}");
        assert!(given_up.ends_with(
            "Given up after 4 attempts: it stays failed and overdue until it is run by hand."
        ));
    }
}
