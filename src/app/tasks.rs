//! Answering a manual task left open, or adding a later detection of the
//! incident's credential, from any door, without ever writing to a journal
//! another process holds. The line goes into the incident's inbox
//! (`inbox.jsonl` beside its journal, or the database's `quench_inbox`,
//! which every replica reads); whoever holds the incident's lock journals
//! what the inbox holds: the writing process itself when nobody runs the
//! incident, else the runner when it is done with it. (An approval given
//! elsewhere waits there too, for the runner: [`super::approvals`].)

use super::Error;
use crate::document::Templates;
use crate::incident::inbox::DETECTION;
pub use crate::incident::inbox::TaskAnswer;
use crate::journal::{self, IncidentView, StepState};
use crate::secret::Redactor;
use crate::store::{LockError, Store};

/// What became of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Journaled, and the documents written again.
    Recorded,
    /// Another process runs the incident: it is in the inbox, and is
    /// journaled when the incident's lock is free.
    Queued,
}

/// Whether answers wait in incident `id`'s inbox.
pub fn has_inbox(store: &Store, id: &str) -> bool {
    store.inbox(id).is_ok_and(|lines| !lines.is_empty())
}

/// The answer to `step` waiting in incident `id`'s inbox, if any: a
/// drill's runner takes it from there while the task is open.
pub fn answer_waiting(store: &Store, id: &str, step: &str) -> Option<TaskAnswer> {
    store
        .inbox(id)
        .ok()?
        .iter()
        .filter_map(|(_, l)| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l.get("kind").is_none())
        .filter_map(|l| serde_json::from_value::<TaskAnswer>(l).ok())
        .find(|a| a.step == step)
}

/// Whether `step` is a task left open in incident `id`'s journal.
pub fn is_open(store: &Store, id: &str, step: &str) -> Result<bool, Error> {
    let dir = super::incidents::find(store, id)?;
    let records =
        journal::read(&dir.join("journal.jsonl")).map_err(|e| Error::Runtime(e.to_string()))?;
    let view = IncidentView::fold(&records);
    Ok(view.step(step).is_some_and(|s| s.state == StepState::Open))
}

/// Answers a task of incident `id`: journaled at once if no process holds
/// the incident, queued in its inbox otherwise.
pub fn answer(
    store: &Store,
    id: &str,
    answer: &TaskAnswer,
    redactor: &Redactor,
    templates: &Templates,
) -> Result<Answered, Error> {
    let line = serde_json::to_value(answer).map_err(|e| Error::Runtime(e.to_string()))?;
    deliver(store, id, line, redactor, templates)
}

/// Adds a later detection of incident `id`'s credential (another location,
/// another detector) to its journal: at once if no process holds the
/// incident, queued in its inbox otherwise.
pub fn detected(
    store: &Store,
    id: &str,
    detection: &journal::Detection,
    redactor: &Redactor,
    templates: &Templates,
) -> Result<Answered, Error> {
    let mut line = serde_json::to_value(detection).map_err(|e| Error::Runtime(e.to_string()))?;
    line["kind"] = serde_json::json!(DETECTION);
    deliver(store, id, line, redactor, templates)
}

fn deliver(
    store: &Store,
    id: &str,
    line: serde_json::Value,
    redactor: &Redactor,
    templates: &Templates,
) -> Result<Answered, Error> {
    super::incidents::find(store, id)?;
    push(store, id, line, redactor)?;
    match store.lock(id) {
        Ok(_lock) => {
            record_inbox(store, id, redactor, templates)?;
            Ok(Answered::Recorded)
        }
        Err(LockError::Held { .. }) => Ok(Answered::Queued),
        Err(e) => Err(Error::Runtime(e.to_string())),
    }
}

/// Journals what incident `id`'s inbox holds, and empties it; the caller
/// holds the incident's lock. Returns how many lines were journaled.
pub fn record_inbox(
    store: &Store,
    id: &str,
    redactor: &Redactor,
    templates: &Templates,
) -> Result<usize, Error> {
    crate::incident::inbox::record(store, id, redactor, templates).map_err(|e| {
        Error::Runtime(format!(
            "failed to answer in `{}`: {e}",
            store.dir(id).display()
        ))
    })
}

/// Appends a line to incident `id`'s inbox, redacted like the journal,
/// and durable before it returns.
pub(super) fn push(
    store: &Store,
    id: &str,
    mut value: serde_json::Value,
    redactor: &Redactor,
) -> Result<(), Error> {
    redactor.redact_value(&mut value);
    store
        .push_inbox(id, value.to_string())
        .map_err(|e| Error::Runtime(format!("failed to write the incident's inbox: {e}")))
}
