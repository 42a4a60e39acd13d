//! One incident from start to end: its directory and journal, the journal's
//! consumers (the display, the document writer, whatever else subscribes,
//! such as the Slack status message), then the engine. The command line and
//! `quench serve` both start incidents here.

pub mod inbox;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::document::{self, Pages};
use crate::engine::{self, Brief, Executor, Finished, Incident};
use crate::journal::{self, Journal, Outcome, Record};
use crate::providers::Live;
use crate::runbook::{self, Runbook};
use crate::secret::Redactor;
use crate::store::{IncidentLock, Store};

/// Everything an incident needs, prepared by the caller.
pub struct Execution {
    pub store: Store,
    /// The new incident's id, when the caller has already told someone.
    pub id: Option<String>,
    /// The existing incident, for follow-ups and resumptions; the caller
    /// holds its lock.
    pub existing: Option<String>,
    /// What the engine runs.
    pub brief: Brief,
    /// A rehearsal's scenario, kept with the incident so `resume` can use it.
    pub scenario_text: Option<String>,
    /// What the documents are rendered with.
    pub templates: Arc<document::Templates>,
    /// What the terminal shows, if anything.
    pub display: Option<DisplaySettings>,
    /// More consumers of the journal: each gets every record as written.
    pub subscribers: Vec<UnboundedSender<Record>>,
    /// Names a reason to stop (a signal): nothing new starts.
    pub shutdown: watch::Receiver<Option<String>>,
}

/// A new incident's directory, lock and empty journal. Dropped before it
/// is kept, however far it got, it removes its directory.
struct Prepared {
    id: String,
    dir: PathBuf,
    made: Option<(IncidentLock, std::fs::File)>,
    /// Whether the store itself was made for it.
    new_store: bool,
    kept: bool,
}

impl Prepared {
    fn keep(mut self) -> (String, PathBuf, IncidentLock, std::fs::File) {
        self.kept = true;
        let (lock, file) = self.made.take().expect("a kept incident was made whole");
        (
            std::mem::take(&mut self.id),
            std::mem::take(&mut self.dir),
            lock,
            file,
        )
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        if !self.kept {
            drop(self.made.take());
            let _ = std::fs::remove_dir_all(&self.dir);
            if self.new_store
                && let Some(store) = self.dir.parent()
            {
                // Only if nothing else has come into it meanwhile.
                let _ = std::fs::remove_dir(store);
            }
        }
    }
}

/// Makes a new incident's directory (under `id`, or a fresh one), takes
/// its lock, and writes the copies of its runbook and scenario and an empty
/// journal.
fn prepare(
    store: &Store,
    id: Option<&str>,
    runbook_text: &str,
    scenario_text: Option<&str>,
) -> Result<Prepared, IncidentError> {
    let setup = |e: std::io::Error| {
        IncidentError::Setup(format!(
            "failed to create the incident in `{}`: {e}",
            store.shown()
        ))
    };
    let new_store = !store.root().exists();
    let (id, dir) = match id {
        Some(id) => (id.to_string(), store.create(id).map_err(setup)?),
        None => store.create_new(Utc::now()).map_err(setup)?,
    };
    // From here on, a failure removes the directory.
    let mut prepared = Prepared {
        id,
        dir,
        made: None,
        new_store,
        kept: false,
    };
    let lock = store
        .lock(&prepared.id)
        .map_err(|e| IncidentError::Runtime(e.to_string()))?;
    let dir = &prepared.dir;
    if let Some(text) = scenario_text {
        crate::private::write(&dir.join("scenario.yaml"), text.as_bytes())
            .map_err(|e| runtime("write the scenario copy", dir, e))?;
    }
    crate::private::write(&dir.join("runbook.yaml"), runbook_text.as_bytes())
        .map_err(|e| runtime("write the runbook copy", dir, e))?;
    crate::logging::startup("incident directory written");
    let file = Journal::create_file(&dir.join("journal.jsonl"))
        .map_err(|e| runtime("create the journal", dir, e))?;
    prepared.made = Some((lock, file));
    Ok(prepared)
}

/// A failure to `what` in incident directory `dir`.
fn runtime(what: &str, dir: &std::path::Path, e: std::io::Error) -> IncidentError {
    IncidentError::Runtime(format!("failed to {what} in `{}`: {e}", dir.display()))
}

/// How the terminal is to show the incident, if at all: the thread that
/// shows it is [`crate::display::Display`].
pub struct DisplaySettings {
    pub live: bool,
    /// The live display stands still while a question is on screen.
    pub paused: Arc<AtomicBool>,
}

/// How an incident ended, and where it is kept.
#[derive(Debug)]
pub struct Executed {
    pub id: String,
    pub dir: PathBuf,
    pub finished: Finished,
}

#[derive(Debug, thiserror::Error)]
pub enum IncidentError {
    /// Nothing happened: the store could not take the incident.
    #[error("{0}")]
    Setup(String),
    #[error("{0}")]
    Runtime(String),
}

/// How long after a step settles the document waits for what follows it
/// (the next step's start, more steps settling) before it is rewritten: a
/// crash leaves a document about this far behind its journal.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// The documented exit code of an outcome.
pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Succeeded => 0,
        Outcome::Failed => 1,
        Outcome::SloMissed => 3,
        Outcome::Interrupted => 130,
    }
}

pub async fn execute(x: Execution) -> Result<Executed, IncidentError> {
    // The engine teaches it the secrets given; the live providers' own
    // credentials are taught here.
    let redactor = Redactor::new();
    if let Executor::Live(live) = &x.brief.executor {
        for s in live.credentials() {
            redactor.add(&s);
        }
    }
    // A new incident takes its lock here; for an existing one the caller
    // holds it already.
    let (id, dir, mut journal, prior, _lock) = open_journal(&x, &redactor)?;
    let detected = prior.first().and_then(|r| match &r.event {
        journal::Event::IncidentStarted { detected_at, .. } => Some(*detected_at),
        _ => None,
    });
    // Consumers of the journal: the document rewriter, the caller's, and
    // the display.
    let documenter = start_documenter(&x, (&id, &dir), prior, &mut journal)?;
    for tx in x.subscribers {
        journal.subscribe(tx);
    }
    let display = match x.display {
        Some(d) => Some(start_display(d, &mut journal, detected)?),
        None => None,
    };

    let result = engine::run(
        Incident {
            id: id.clone(),
            dir: dir.clone(),
            brief: x.brief,
            document: write_document(&dir, x.templates.clone()),
            redactor: redactor.clone(),
            journal,
        },
        x.shutdown,
    )
    .await;
    // The engine has dropped the journal: the consumers drain and stop.
    crate::logging::startup("the engine finished");
    if let Some(display) = display {
        display.finished().await;
    }
    crate::logging::startup("the display finished");
    let doc = documenter.await;
    crate::logging::startup("the document is written");
    let finished = result.map_err(|e| IncidentError::Runtime(redactor.redact(&e.to_string())))?;
    if let Ok(Err(e)) = doc {
        return Err(IncidentError::Runtime(format!(
            "failed to write the incident document: {e}"
        )));
    }
    // Answers to its tasks that came while it ran wait in its inbox: they
    // are journaled now, while the incident is still this process's.
    inbox::record(&x.store, &id, &redactor, &x.templates).map_err(|e| {
        IncidentError::Runtime(format!("failed to answer in `{}`: {e}", dir.display()))
    })?;
    Ok(Executed { id, dir, finished })
}

/// What `incident.document` calls: the documents in `dir` rewritten, as
/// the incident stands.
pub(crate) fn write_document(
    dir: &std::path::Path,
    templates: Arc<document::Templates>,
) -> engine::WriteDocument {
    let dir = dir.to_path_buf();
    Arc::new(move |records| document::write(&dir, records, &templates, Pages::Progress))
}

/// An incident's journal, opened to append to an existing incident, or
/// made with a new incident's directory (whose lock it returns).
#[expect(clippy::type_complexity, reason = "one caller, which takes it apart")]
fn open_journal(
    x: &Execution,
    redactor: &Redactor,
) -> Result<(String, PathBuf, Journal, Vec<Record>, Option<IncidentLock>), IncidentError> {
    if let Some(id) = &x.existing {
        let prior = x.brief.start.prior().to_vec();
        let dir = x.store.dir(id);
        let mut journal =
            Journal::append_to(&dir.join("journal.jsonl"), redactor.clone(), prior.clone())
                .map_err(|e| runtime("open the journal", &dir, e))?;
        if let Some(c) = x
            .store
            .committer(id)
            .map_err(|e| runtime("open the journal", &dir, e))?
        {
            journal.commit_to(c);
        }
        return Ok((id.clone(), dir, journal, prior, None));
    }
    let prepared = prepare(
        &x.store,
        x.id.as_deref(),
        &x.brief.runbook.source.text,
        x.scenario_text.as_deref(),
    )?;
    x.store
        .seal_new(&prepared.id, &prepared.dir)
        .map_err(|e| runtime("keep the incident's copies", &prepared.dir, e))?;
    let committer = x
        .store
        .committer(&prepared.id)
        .map_err(|e| runtime("open the journal", &prepared.dir, e))?;
    let (id, dir, lock, file) = prepared.keep();
    let mut journal = Journal::with_file(&dir.join("journal.jsonl"), file, redactor.clone());
    if let Some(c) = committer {
        journal.commit_to(c);
    }
    crate::logging::startup("journal created, the engine starts");
    Ok((id, dir, journal, Vec::new(), Some(lock)))
}

/// Starts the thread that shows the incident on the terminal.
fn start_display(
    d: DisplaySettings,
    journal: &mut Journal,
    detected: Option<DateTime<Utc>>,
) -> Result<crate::display::Display, IncidentError> {
    let (display_tx, display_rx) = std::sync::mpsc::channel();
    journal.subscribe(display_tx);
    let style = if d.live {
        crate::display::Style::Live
    } else {
        crate::display::Style::Plain
    };
    crate::display::Display::start(style, display_rx, d.paused, detected)
        .map_err(|e| IncidentError::Runtime(format!("failed to start the display's thread: {e}")))
}

/// Starts the thread that rewrites the incident's documents
/// ([`rewrite_documents`]) and publishes the final ones to the store; what
/// it returns is sent once the journal closes.
///
/// A plain thread, so rendering never holds one of the runtime's workers
/// while a step waits to be scheduled (not `spawn_blocking`: that would
/// stop a rehearsal's paused clock from advancing).
fn start_documenter(
    x: &Execution,
    (id, dir): (&str, &std::path::Path),
    prior: Vec<Record>,
    journal: &mut Journal,
) -> Result<tokio::sync::oneshot::Receiver<std::io::Result<String>>, IncidentError> {
    let (doc_tx, doc_rx) = std::sync::mpsc::channel();
    journal.subscribe(doc_tx);
    let (done, documenter) = tokio::sync::oneshot::channel();
    let (store, id, dir) = (x.store.clone(), id.to_string(), dir.to_path_buf());
    let templates = x.templates.clone();
    std::thread::Builder::new()
        .name("quench-document".into())
        .spawn(move || {
            let written = rewrite_documents(&dir, &templates, prior, &doc_rx);
            let written = written.and_then(|md| {
                store.publish_documents(&id, &dir)?;
                Ok(md)
            });
            let _ = done.send(written);
        })
        .map_err(|e| {
            IncidentError::Runtime(format!("failed to start the document's thread: {e}"))
        })?;
    Ok(documenter)
}

/// Rewrites the incident's documents as its journal's records come: a
/// while after each settled step ([`DEBOUNCE`]), and whole when the
/// incident ends and when the journal closes, unless nothing came after
/// that last rewrite. Returns the final Markdown.
fn rewrite_documents(
    dir: &std::path::Path,
    templates: &document::Templates,
    mut records: Vec<Record>,
    rx: &Receiver<Record>,
) -> std::io::Result<String> {
    // The last whole rewrite, and how many records it was made from.
    let mut last: Option<(usize, std::io::Result<String>)> = None;
    let mut prepared = false;
    while let Ok(r) = rx.recv() {
        // The templates are compiled once the first step has settled: not
        // while the first request is on its way, which they would slow on a
        // machine with few cores, and not on the way to the exit.
        if !prepared && r.event.is_step_terminal() {
            templates.prepare();
            prepared = true;
        }
        let settled = r.event.is_step_terminal();
        let mut ended = matches!(r.event, journal::Event::IncidentFinished(_));
        records.push(r);
        if !settled && !ended {
            continue;
        }
        let due = Instant::now() + DEBOUNCE;
        while !ended {
            match rx.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(r) => {
                    ended = matches!(r.event, journal::Event::IncidentFinished(_));
                    records.push(r);
                }
                Err(RecvTimeoutError::Timeout) => break,
                // The journal closed: the final rewrite follows.
                Err(RecvTimeoutError::Disconnected) => ended = true,
            }
        }
        if ended {
            crate::logging::startup("the final document begins");
            let written = document::write(dir, &records, templates, Pages::All);
            last = Some((records.len(), written));
        } else {
            // A rewrite that fails is tried again by the next one; the
            // final rewrite's failure is the incident's to report.
            let _ = document::write(dir, &records, templates, Pages::Progress);
        }
    }
    match last {
        Some((n, written)) if n == records.len() => written,
        _ => document::write(dir, &records, templates, Pages::All),
    }
}

/// Refuses, before anything happens, a live run that needs a provider that
/// cannot act (not built, not configured). Notifications are exempt: they
/// are skipped with the reason instead. So are steps with a `when`, which
/// may not run (an optional consumer nobody named): one that does fails
/// with the reason, and the response goes on.
pub fn preflight_live(rb: &Runbook, live: &Live) -> Result<(), String> {
    let blocked: Vec<String> = rb
        .steps
        .iter()
        .filter(|s| s.phase != runbook::Phase::Notify && !s.deferred && s.when.is_none())
        .filter_map(|s| {
            live.unavailable(s.action)
                .map(|why| format!("  `{}` ({}): {why}", s.id, s.action.name))
        })
        .collect();
    if blocked.is_empty() {
        return Ok(());
    }
    Err(format!(
        "`{}` cannot run live: nothing was done.\n{}\n`quench rehearse {}` runs it against simulated providers.",
        rb.name,
        blocked.join("\n"),
        rb.name
    ))
}
