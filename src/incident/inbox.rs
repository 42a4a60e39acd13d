//! An incident's inbox: answers to its tasks, approvals and later
//! detections that came from another door (`quench done`, Slack, a
//! detector's hook) while the incident was someone else's. Whoever holds
//! the incident's lock journals them here, so the incident stays the only
//! writer of its journal.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::document::{self, Templates};
use crate::journal::{self, Event, IncidentView, Journal, StepState};
use crate::secret::Redactor;
use crate::store::Store;

/// One answer to a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskAnswer {
    pub step: String,
    pub answer: String,
    pub by: String,
    pub ts: DateTime<Utc>,
}

/// What marks a detection's line in the inbox.
pub const DETECTION: &str = "detection";

/// Journals what incident `id`'s inbox holds, and empties it. The caller
/// holds the incident's lock (a database's journal commits through it). An
/// answer to a task that is not open (answered twice, or never asked) is
/// dropped. Returns how many lines were journaled.
pub fn record(
    store: &Store,
    id: &str,
    redactor: &Redactor,
    templates: &Templates,
) -> std::io::Result<usize> {
    let dir = store.dir(id);
    let inbox = store.inbox(id)?;
    let Some(upto) = inbox.last().map(|(n, _)| *n) else {
        return Ok(0);
    };
    let path = dir.join("journal.jsonl");
    let (records, _) = journal::read_for_append(&path).map_err(std::io::Error::other)?;
    let mut view = IncidentView::fold(&records);
    let mut journal = Journal::append_to(&path, redactor.clone(), records)?;
    if let Some(c) = store.committer(id)? {
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
            let record = journal.append(Utc::now(), event)?;
            view.apply(&record);
        }
    }
    journal.sync()?;
    // Emptied once journaled: an answer read again (after a crash here)
    // finds its task answered, and is dropped.
    store.clear_inbox(id, upto)?;
    if recorded > 0 {
        document::write(&dir, journal.records(), templates, document::Pages::All)?;
        store.publish_documents(id, &dir)?;
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
