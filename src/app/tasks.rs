//! Answering a manual task left open, or adding a later detection of the
//! incident's credential, from any door, without ever writing to a journal
//! another process holds. The line goes into the incident's inbox
//! (`inbox.jsonl` beside its journal, or the database's `quench_inbox`,
//! which every replica reads); whoever holds the incident's lock journals
//! what the inbox holds: the writing process itself when nobody runs the
//! incident, else the runner when it is done with it. (An approval given
//! elsewhere waits there too, for the runner: [`super::approvals`].)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Error;
use crate::document::{self, Templates};
use crate::journal::{self, Event, IncidentView, Journal, StepState};
use crate::secret::Redactor;
use crate::store::{LockError, Store};

/// One answer to a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskAnswer {
    pub step: String,
    pub answer: String,
    pub by: String,
    pub ts: DateTime<Utc>,
}

/// What became of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Journaled, and the documents written again.
    Recorded,
    /// Another process runs the incident: it is in the inbox, and is
    /// journaled when the incident's lock is free.
    Queued,
}

/// What marks a detection's line in the inbox.
const DETECTION: &str = "detection";

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

/// Journals what incident `id`'s inbox holds, and empties it. The caller
/// holds the incident's lock (a database's journal commits through it). An
/// answer to a task that is not open (answered twice, or never asked) is
/// dropped. Returns how many lines were journaled.
pub fn record_inbox(
    store: &Store,
    id: &str,
    redactor: &Redactor,
    templates: &Templates,
) -> Result<usize, Error> {
    let dir = store.dir(id);
    let runtime =
        |e: std::io::Error| Error::Runtime(format!("failed to answer in `{}`: {e}", dir.display()));
    let inbox = store.inbox(id).map_err(runtime)?;
    let Some(upto) = inbox.last().map(|(n, _)| *n) else {
        return Ok(0);
    };
    let path = dir.join("journal.jsonl");
    let (records, _) =
        journal::read_for_append(&path).map_err(|e| Error::Runtime(e.to_string()))?;
    let mut view = IncidentView::fold(&records);
    let mut journal = Journal::append_to(&path, redactor.clone(), records).map_err(runtime)?;
    if let Some(c) = store.committer(id).map_err(runtime)? {
        journal.commit_to(c);
    }
    let mut recorded = 0;
    for (_, line) in inbox {
        let Ok(line) = serde_json::from_str(&line) else {
            continue;
        };
        let events = inbox_events(line, &view);
        recorded += usize::from(!events.is_empty());
        for event in events {
            let record = journal.append(Utc::now(), event).map_err(runtime)?;
            view.apply(&record);
        }
    }
    journal.sync().map_err(runtime)?;
    // Emptied once journaled: an answer read again (after a crash here)
    // finds its task answered, and is dropped.
    store.clear_inbox(id, upto).map_err(runtime)?;
    if recorded > 0 {
        document::write(&dir, journal.records(), templates, document::Pages::All)
            .map_err(runtime)?;
        store.publish_documents(id, &dir).map_err(runtime)?;
    }
    Ok(recorded)
}

/// What one inbox line adds to the journal: a detection's record, or a
/// task's answer and its step's success. An answer to a task that is not
/// open adds nothing; an approval was for the runner that asked for it.
fn inbox_events(line: serde_json::Value, view: &IncidentView) -> Vec<Event> {
    match line["kind"].as_str() {
        Some(DETECTION) => serde_json::from_value(line)
            .map(|d| vec![Event::Detection(d)])
            .unwrap_or_default(),
        Some(_) => Vec::new(),
        None => {
            let Ok(a) = serde_json::from_value::<TaskAnswer>(line) else {
                return Vec::new();
            };
            let prompt = view
                .step(&a.step)
                .filter(|s| s.state == StepState::Open)
                .and_then(|s| s.task.as_ref())
                .map(|t| t.prompt.clone());
            prompt.map(|p| answered(&a, p).to_vec()).unwrap_or_default()
        }
    }
}

/// The records of a task's answer: the answer, and the step's success.
fn answered(a: &TaskAnswer, prompt: String) -> [Event; 2] {
    let mut outputs = serde_json::Map::new();
    outputs.insert("answer".into(), serde_json::json!(a.answer));
    [
        Event::TaskAnswered {
            task: Default::default(),
            step: a.step.clone(),
            prompt,
            answer: a.answer.clone(),
            by: a.by.clone(),
        },
        Event::StepSucceeded {
            step: a.step.clone(),
            attempt: 1,
            outputs,
        },
    ]
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
