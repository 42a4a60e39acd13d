//! Incidents already in the store: finding one, and what a `resume` or a
//! `tick` needs from its journal and its copy of the runbook.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::Error;
use crate::config::Config;
use crate::document::{Report, Templates};
use crate::engine::{self, Executor, Humans, sim::Sim};
use crate::journal::{self, Event, Mode, Outcome, Record};
use crate::providers::Live;
use crate::runbook::diagnostic::did_you_mean;
use crate::runbook::{self, Runbook, SourceFile};
use crate::scenario::Scenario;
use crate::secret::Redactor;
use crate::store::{IncidentLock, LockError, Store};

/// The directory of incident `id`, or an error that suggests a near id.
pub fn find(store: &Store, id: &str) -> Result<PathBuf, Error> {
    let fetched = store.fetch(id).map_err(|e| {
        Error::Runtime(format!(
            "failed to read `{id}` from `{}`: {e}",
            store.shown()
        ))
    })?;
    if let Some(dir) = fetched {
        return Ok(dir);
    }
    let known = store.list();
    let help = did_you_mean(id, known.iter().map(String::as_str))
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    Err(Error::Usage(format!(
        "no incident `{id}` in `{}`{help}",
        store.shown()
    )))
}

/// The document's facts of incident `id`, if its journal reads.
pub fn report(store: &Store, id: &str) -> Option<Report> {
    Report::from_records(&store.journal(id).ok()?).ok()
}

/// What an incident was started with, from its first record.
pub struct Started {
    pub runbook: String,
    pub mode: Mode,
    pub inputs: std::collections::BTreeMap<String, String>,
    pub runbook_sha256: String,
    pub detected_at: DateTime<Utc>,
}

/// The first record's facts, or an error naming the incident.
pub fn started(id: &str, records: &[Record]) -> Result<Started, Error> {
    match records.first().map(|r| &r.event) {
        Some(Event::IncidentStarted {
            runbook,
            mode,
            inputs,
            runbook_sha256,
            detected_at,
            ..
        }) => Ok(Started {
            runbook: runbook.clone(),
            mode: *mode,
            inputs: inputs.clone(),
            runbook_sha256: runbook_sha256.clone(),
            detected_at: *detected_at,
        }),
        _ => Err(Error::Runtime(format!(
            "the journal of `{id}` does not start with `incident_started`"
        ))),
    }
}

/// The copy of the runbook the incident keeps (`runbook.yaml`), validated,
/// and the name it is shown by.
pub fn stored_runbook(dir: &std::path::Path) -> Result<(Runbook, String), Error> {
    let path = dir.join("runbook.yaml");
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Runtime(format!("failed to read `{shown}`: {e}")))?;
    let rb = runbook::parse(SourceFile::new(shown.clone(), text))
        .map_err(Error::Invalid)?
        .runbook;
    Ok((rb, shown))
}

/// The incident's runbook copy, gated as it was when it started, or an
/// error if the copy was edited since.
pub fn unedited_runbook(
    dir: &std::path::Path,
    started: &Started,
    records: &[Record],
) -> Result<(Runbook, String), Error> {
    let (mut runbook, shown) = stored_runbook(dir)?;
    gate(&mut runbook, records);
    if runbook.hash != started.runbook_sha256 {
        return Err(Error::Runtime(format!(
            "`{shown}` is not the runbook the incident started with (sha256 differs): it was edited"
        )));
    }
    Ok((runbook, shown))
}

/// A hook-started incident keeps its gate when it is resumed or its
/// follow-ups run: the steps its trigger did not leave unattended wait for
/// an approval, as they did when it started.
pub fn gate(runbook: &mut Runbook, records: &[Record]) {
    let view = journal::IncidentView::fold(records);
    if let Some(d) = view.detections.first() {
        let unattended: Vec<runbook::Phase> = runbook::Phase::ALL
            .into_iter()
            .filter(|p| d.unattended.iter().any(|u| u == p.name()))
            .collect();
        runbook.gate(&unattended);
    }
}

/// The follow-ups of `records` that are due at `now`, and the steps
/// watching for a condition that look again by then.
pub fn due(records: &[Record], now: DateTime<Utc>) -> Vec<String> {
    let state = engine::replay::settled(records);
    let follow_ups = state
        .scheduled
        .into_iter()
        .filter_map(|(step, at)| at.filter(|at| *at <= now).map(|_| step));
    let watching = state
        .watching
        .into_iter()
        .filter(|(_, at)| *at <= now)
        .map(|(step, _)| step);
    follow_ups.chain(watching).collect()
}

/// A rehearsal with no scenario of its own: simulated providers, and the
/// default scenario answering its approvals and tasks.
pub fn simulated() -> (Executor, Humans) {
    let scenario = Arc::new(Scenario::default());
    (
        Executor::Sim(Sim::new(scenario.clone())),
        Humans::Simulated(scenario),
    )
}

/// The live providers `rb`'s steps use, checked before anything runs.
pub async fn live(config: &Config, rb: &Runbook) -> Result<Executor, Error> {
    let used = rb.steps.iter().map(|s| s.action.provider).collect();
    let live = Live::build(config, &used).await;
    crate::incident::preflight_live(rb, &live).map_err(Error::Usage)?;
    Ok(Executor::Live(Box::new(live)))
}

/// An interrupted incident, locked for this process, ready to go on.
pub struct Resumable {
    pub dir: PathBuf,
    pub lock: IncidentLock,
    pub records: Vec<Record>,
    /// A torn last line that was cut off, if any.
    pub repaired: Option<String>,
    pub started: Started,
    pub runbook: Runbook,
    pub runbook_path: String,
}

impl Resumable {
    /// The scenario a rehearsal keeps with its incident (`scenario.yaml`),
    /// or the default one.
    pub fn scenario(&self) -> Result<Scenario, Error> {
        let path = self.dir.join("scenario.yaml");
        match std::fs::read_to_string(&path) {
            Ok(text) => Scenario::parse(SourceFile::new(path.display().to_string(), text))
                .map_err(Error::Invalid),
            Err(_) => Ok(Scenario::default()),
        }
    }
}

/// Locks incident `id`, journals the answers its inbox holds, and reads
/// what resuming it needs. Refuses one that finished, or whose runbook copy
/// was edited since it started.
pub fn resumable(store: &Store, id: &str, templates: &Templates) -> Result<Resumable, Error> {
    find(store, id)?;
    // Taking the lock fetches the incident afresh for a database.
    let lock = store.lock(id).map_err(|e| match e {
        LockError::Held { .. } => Error::Conflict(e.to_string()),
        other => Error::Runtime(other.to_string()),
    })?;
    let dir = store.dir(id);
    super::tasks::record_inbox(store, id, &Redactor::new(), templates)?;
    let (records, repaired) = journal::read_for_append(&dir.join("journal.jsonl"))
        .map_err(|e| Error::Runtime(e.to_string()))?;
    if let Some(outcome) = engine::replay::settled(&records).finished
        && outcome != Outcome::Interrupted
    {
        return Err(Error::Usage(format!(
            "incident `{id}` already finished ({}): nothing to resume",
            outcome.name().replace('_', " ")
        )));
    }
    let started = started(id, &records)?;
    let (runbook, runbook_path) = unedited_runbook(&dir, &started, &records)?;
    Ok(Resumable {
        dir,
        lock,
        records,
        repaired,
        started,
        runbook,
        runbook_path,
    })
}
