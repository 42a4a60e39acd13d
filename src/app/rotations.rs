//! Scheduled rotations (`[[rotations]]`): when each last ran, how that
//! ended, when it is next due, and which are due now for `quench tick`.
//! A rotation's last run is the latest live incident of its runbook with
//! its inputs, however it was started.

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

/// One `[[rotations]]` entry, checked.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub name: String,
    pub runbook: String,
    pub inputs: BTreeMap<String, String>,
    pub every_text: String,
    pub every: Every,
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
    /// Due now: `quench tick` starts it.
    #[serde(skip)]
    pub due: bool,
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
            Status {
                name: s.name.clone(),
                runbook: s.runbook.clone(),
                every: s.every_text.clone(),
                last_incident: last.map(|l| l.id.clone()),
                last_run: last.map(|l| journal::format_ts(&l.started_at)),
                next_due: journal::format_ts(&next),
                overdue: failed || (next < now && last.is_some() && !running),
                due: next <= now && !running && !failed,
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
            })
        })
        .collect()
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
}
