//! One incident from start to end: its directory and journal, the journal's
//! consumers (the display, the document writer, whatever else subscribes,
//! such as the Slack status message), then the engine. The command line and
//! `quench serve` both start incidents here.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use chrono::{DateTime, Utc};
use std::sync::mpsc::{RecvTimeoutError, TryRecvError};
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch;

use crate::document::{self, Pages};
use crate::engine::{self, Executor, Finished, Humans, Incident, Start};
use crate::journal::{self, Actor, Journal, Outcome, Record};
use crate::providers::Live;
use crate::runbook::{self, Runbook};
use crate::secret::{Redactor, Secret};
use crate::store::Store;

/// Everything an incident needs, prepared by the caller.
pub struct Execution {
    pub store: Store,
    /// The new incident's id, when the caller has already told someone.
    pub id: Option<String>,
    /// A new incident, its follow-ups, or a resumption.
    pub start: Start,
    /// The existing incident, for follow-ups and resumptions; the caller
    /// holds its lock.
    pub existing: Option<String>,
    pub runbook: Runbook,
    pub runbook_path: String,
    pub inputs: BTreeMap<String, String>,
    pub secrets: Vec<Secret>,
    pub detected_at: Option<DateTime<Utc>>,
    pub executor: Executor,
    pub humans: Humans,
    pub assume_yes: bool,
    /// Who started it: the OS user, or a Slack user.
    pub by: Actor,
    /// When the responder invoked quench: the SLO clock's default start.
    pub invoked: Option<engine::Clock>,
    /// A rehearsal's scenario, kept with the incident so `resume` can use it.
    pub scenario_text: Option<String>,
    /// What set the response off (`--trigger`), for the document.
    pub trigger: Option<String>,
    /// What the documents are rendered with.
    pub templates: Arc<document::Templates>,
    /// What the terminal shows, if anything.
    pub display: Option<DisplaySettings>,
    /// More consumers of the journal: each gets every record as written.
    pub subscribers: Vec<UnboundedSender<Record>>,
    /// Names a reason to stop (a signal): nothing new starts.
    pub shutdown: watch::Receiver<Option<String>>,
    /// A new incident's place in the store, made already (see [`Preparing`]).
    pub prepared: Option<Preparing>,
}

/// A new incident's place in the store, made on a thread of its own while
/// the caller is still validating the runbook (issue 7): its directory, its
/// lock, the runbook's copy and the empty journal. Creating files costs
/// about as much as validating a runbook, and neither needs the other.
///
/// The thread hands the journal over as soon as it exists, then syncs the
/// runbook's copy and the directory that names it and the journal to disk
/// ([`sync_new_incident`]), while the engine writes the first
/// records and flushes them: the first flush waits for these syncs too, so
/// the first effect still follows a journal that is on disk under its name,
/// and the syncs overlap instead of following each other.
///
/// Dropped unused (the runbook was refused, or anything else stopped the
/// incident before it began), it removes what it made. A process killed
/// meanwhile leaves a directory with an empty journal, which the store does
/// not list as an incident.
pub struct Preparing(Option<Result<Helper, (Store, Arc<str>)>>);

struct Helper {
    made: std::sync::mpsc::Receiver<Result<Prepared, IncidentError>>,
    /// Syncs the new directory once the journal is handed over.
    thread: DirectorySync,
}

/// The thread syncing a new incident's copies and directory to disk
/// ([`sync_new_incident`]).
pub type DirectorySync = std::thread::JoinHandle<std::io::Result<()>>;

/// Syncs to disk what a new incident's directory holds besides its journal
/// (the copies of its runbook and scenario, which `quench resume` reads),
/// then the directory, which names them and the journal.
fn sync_new_incident(dir: &std::path::Path) -> std::io::Result<()> {
    for copy in ["runbook.yaml", "scenario.yaml"] {
        match std::fs::File::open(dir.join(copy)) {
            Ok(file) => file.sync_data()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

/// [`sync_new_incident`] on a thread of its own, for the first flush to
/// wait for; on the calling thread when no thread can be started.
fn sync_new_incident_meanwhile(dir: &std::path::Path) -> std::io::Result<Option<DirectorySync>> {
    let owned = dir.to_path_buf();
    match std::thread::Builder::new()
        .name("quench-prepare".into())
        .spawn(move || sync_new_incident(&owned))
    {
        Ok(thread) => Ok(Some(thread)),
        Err(_) => sync_new_incident(dir).map(|()| None),
    }
}

impl Preparing {
    /// Starts preparing a new incident that will run `runbook_text`.
    pub fn start(store: Store, runbook_text: Arc<str>) -> Preparing {
        let (tx, made) = std::sync::mpsc::channel();
        let work = {
            let (store, text) = (store.clone(), runbook_text.clone());
            move || {
                let prepared = prepare(&store, None, &text, None);
                let dir = prepared.as_ref().ok().map(|p| p.dir.clone());
                let _ = tx.send(prepared);
                match dir {
                    Some(dir) => sync_new_incident(&dir),
                    None => Ok(()),
                }
            }
        };
        let thread = std::thread::Builder::new()
            .name("quench-prepare".into())
            .spawn(work)
            .map(|thread| Helper { made, thread })
            // Out of threads: it is prepared when it is needed instead.
            .map_err(|_| (store, runbook_text));
        Preparing(Some(thread))
    }

    /// The incident's place, and the sync of its directory still under way.
    fn finish(mut self) -> Result<(Prepared, Option<DirectorySync>), IncidentError> {
        match self.0.take() {
            Some(Ok(Helper { made, thread })) => match made.recv() {
                Ok(prepared) => Ok((prepared?, Some(thread))),
                // The thread ended without a word: it panicked.
                Err(_) => match thread.join() {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(_) => unreachable!("the preparing thread says what it made"),
                },
            },
            Some(Err((store, text))) => Ok((prepare(&store, None, &text, None)?, None)),
            None => unreachable!("an incident is prepared once"),
        }
    }
}

impl Drop for Preparing {
    fn drop(&mut self) {
        // Unused: removes what the thread made, once it has.
        if let Some(Ok(Helper { made, thread })) = self.0.take() {
            drop(made.recv());
            let _ = thread.join();
        }
    }
}

/// A new incident's directory, lock and empty journal. Dropped before it
/// is kept, however far it got, it removes its directory.
struct Prepared {
    id: String,
    dir: PathBuf,
    made: Option<(crate::store::IncidentLock, std::fs::File)>,
    /// Whether the store itself was made for it.
    new_store: bool,
    kept: bool,
}

impl Prepared {
    fn keep(mut self) -> (String, PathBuf, crate::store::IncidentLock, std::fs::File) {
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
            store.root().display()
        ))
    };
    let runtime = |what: &str, dir: &std::path::Path, e: std::io::Error| {
        IncidentError::Runtime(format!("failed to {what} in `{}`: {e}", dir.display()))
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

/// A document rewrite this slow makes the writer rest before the next one.
const SLOW_DOCUMENT: Duration = Duration::from_millis(10);

/// How long after a step settles the document waits for what follows it
/// before rendering, and the least time between two rewrites, and from the
/// incident's start to its first (each costs ~0.5 ms of CPU for a short
/// incident; a crash leaves a document at most this far behind the
/// journal, or none for an incident younger than this, which `quench
/// report` renders whole).
const COALESCE_DOCUMENT: Duration = Duration::from_millis(2);
const REWRITE_INTERVAL: Duration = Duration::from_millis(25);

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
    let redactor = Redactor::new();
    for s in &x.secrets {
        redactor.add(s);
    }
    if let Executor::Live(live) = &x.executor {
        for s in live.credentials() {
            redactor.add(&s);
        }
    }
    let runtime = |what: &str, dir: &std::path::Path, e: std::io::Error| {
        IncidentError::Runtime(format!("failed to {what} in `{}`: {e}", dir.display()))
    };
    // A new incident takes its lock here; for an existing one the caller
    // holds it already.
    let mut _lock = None;
    let (id, dir, mut journal, prior) = match &x.existing {
        Some(id) => {
            let prior = x.start.prior().to_vec();
            let dir = x.store.dir(id);
            let journal =
                Journal::append_to(&dir.join("journal.jsonl"), redactor.clone(), prior.clone())
                    .map_err(|e| runtime("open the journal", &dir, e))?;
            (id.clone(), dir, journal, prior)
        }
        None => {
            let (prepared, directory_sync) = match x.prepared {
                Some(preparing) => preparing.finish()?,
                None => {
                    let prepared = prepare(
                        &x.store,
                        x.id.as_deref(),
                        &x.runbook.source.text,
                        x.scenario_text.as_deref(),
                    )?;
                    // Issue 7's fifth round: this path (`quench serve`,
                    // rehearsals) synced nothing but the journal, so a
                    // power cut could lose the directory that names it.
                    let sync = sync_new_incident_meanwhile(&prepared.dir)
                        .map_err(|e| runtime("sync the incident's directory", &prepared.dir, e))?;
                    (prepared, sync)
                }
            };
            let (id, dir, lock, file) = prepared.keep();
            _lock = Some(lock);
            let mut journal =
                Journal::with_file(&dir.join("journal.jsonl"), file, redactor.clone());
            if let Some(directory_sync) = directory_sync {
                journal.first_flush_waits_for(directory_sync);
            }
            crate::logging::startup("journal created, the engine starts");
            (id, dir, journal, Vec::new())
        }
    };

    // Consumers of the journal: the display, the document rewriter, and the
    // caller's.
    let (doc_tx, doc_rx) = std::sync::mpsc::channel();
    journal.subscribe(doc_tx);
    for tx in x.subscribers {
        journal.subscribe(tx);
    }
    let detected = prior.first().and_then(|r| match &r.event {
        journal::Event::IncidentStarted { detected_at, .. } => Some(*detected_at),
        _ => None,
    });
    let display = match x.display {
        Some(d) => {
            let (display_tx, display_rx) = std::sync::mpsc::channel();
            journal.subscribe(display_tx);
            let style = if d.live {
                crate::display::Style::Live
            } else {
                crate::display::Style::Plain
            };
            let started = crate::display::Display::start(style, display_rx, d.paused, detected);
            Some(started.map_err(|e| {
                IncidentError::Runtime(format!("failed to start the display's thread: {e}"))
            })?)
        }
        None => None,
    };
    let doc_dir = dir.clone();
    let doc_templates = x.templates.clone();
    // The document is rewritten after each settled step on a thread of its
    // own, so rendering it never holds one of the runtime's workers while a
    // step waits to be scheduled (a plain thread, not `spawn_blocking`: that
    // would stop a rehearsal's paused clock from advancing). When steps
    // settle faster than it renders, it catches up in one write. Its cost
    // grows with the journal, so after a slow rewrite (1,000 settled steps
    // take ~0.4 s) it rests ten times as long, up to 5 s, taking at most a
    // tenth of a CPU: the less often it is rewriting when the incident
    // ends, the less often the final rewrite waits for it (issue 7's bulk
    // revocation). The rest ends when the engine does.
    let (doc_done, documenter) = tokio::sync::oneshot::channel();
    let engine_done = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let doc_engine_done = engine_done.clone();
    let documenter_thread = std::thread::Builder::new().name("quench-document".into());
    documenter_thread
        .spawn(move || {
            background_priority();
            document::reserve_heap();
            let mut records = prior;
            // The last rewrite: how many records it was made from, and
            // whether it wrote every page. The final one is skipped when
            // nothing came after it.
            let mut last: Option<(usize, Pages, std::io::Result<String>)> = None;
            // The thread's start counts as a rewrite: an incident over
            // sooner than REWRITE_INTERVAL is written once, at its end.
            // (Rewritten while its last steps ran, it had the final
            // rewrite wait for that one, 0.5–0.8 ms on the way to the
            // exit: issue 7.)
            let mut last_write = Some(std::time::Instant::now());
            let mut files_ready = false;
            while let Ok(r) = doc_rx.recv() {
                let mut settled = r.event.is_step_terminal();
                let mut ended = matches!(r.event, journal::Event::IncidentFinished { .. });
                records.push(r);
                if settled && !ended && !files_ready {
                    // A rewrite makes the files the next one writes
                    // (`document::write`) and registers the templates it
                    // renders with; until the first, both are done when
                    // the first step settles, after the first request.
                    document::make_ready(&doc_dir);
                    doc_templates.warm();
                    files_ready = true;
                }
                // What follows a settled step closely (the next step's start)
                // goes into the same rewrite, and rewrites are spaced out:
                // the thread sleeps until then, or until the next record.
                // The incident's end is rendered at once, while the engine
                // flushes it to disk.
                let first = std::time::Instant::now();
                let closed = loop {
                    if ended {
                        break false;
                    }
                    let next = if settled {
                        let due = (first + COALESCE_DOCUMENT)
                            .max(last_write.map_or(first, |t| t + REWRITE_INTERVAL));
                        match due.checked_duration_since(std::time::Instant::now()) {
                            Some(wait) if !wait.is_zero() => doc_rx.recv_timeout(wait),
                            _ => break false,
                        }
                    } else {
                        doc_rx.try_recv().map_err(|e| match e {
                            TryRecvError::Empty => RecvTimeoutError::Timeout,
                            TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                        })
                    };
                    match next {
                        Ok(r) => {
                            settled |= r.event.is_step_terminal();
                            ended |= matches!(r.event, journal::Event::IncidentFinished { .. });
                            records.push(r);
                        }
                        Err(RecvTimeoutError::Timeout) => break false,
                        Err(RecvTimeoutError::Disconnected) => break true,
                    }
                };
                if settled || ended || closed {
                    if ended || closed {
                        crate::logging::startup("the final document begins");
                    }
                    let began = std::time::Instant::now();
                    let pages = if ended || closed {
                        Pages::All
                    } else {
                        Pages::Progress
                    };
                    let written = document::write(&doc_dir, &records, &doc_templates, pages);
                    if last.is_none() {
                        // The HTML page is first rendered at the end, when
                        // the exit waits for it: its templates are
                        // registered now.
                        doc_templates.warm();
                    }
                    last = Some((records.len(), pages, written));
                    last_write = Some(std::time::Instant::now());
                    let took = began.elapsed();
                    if took >= SLOW_DOCUMENT {
                        let (done, wake) = &*doc_engine_done;
                        let done = done.lock().unwrap_or_else(|e| e.into_inner());
                        let rest = (took * 10).min(Duration::from_secs(5));
                        let _ = wake.wait_timeout_while(done, rest, |done| !*done);
                    }
                }
            }
            let done = match last {
                Some((n, Pages::All, Ok(markdown))) if n == records.len() => Ok(markdown),
                _ => document::write(&doc_dir, &records, &doc_templates, Pages::All),
            };
            let _ = doc_done.send(done);
        })
        .map_err(|e| {
            IncidentError::Runtime(format!("failed to start the document's thread: {e}"))
        })?;

    let runbook = Arc::new(x.runbook);
    let result = engine::run(
        Incident {
            id: id.clone(),
            dir: dir.clone(),
            runbook: runbook.clone(),
            runbook_path: x.runbook_path,
            inputs: x.inputs,
            secrets: x.secrets,
            detected_at: x.detected_at,
            trigger: x.trigger,
            templates: x.templates,
            executor: x.executor,
            humans: x.humans,
            assume_yes: x.assume_yes,
            by: x.by,
            redactor: redactor.clone(),
            journal,
            start: x.start,
            invoked: x.invoked,
        },
        x.shutdown,
    )
    .await;
    // The engine has dropped the journal: the consumers drain and stop.
    crate::logging::startup("the engine finished");
    {
        let (done, wake) = &*engine_done;
        *done.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
    }
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
    Ok(Executed { id, dir, finished })
}

/// How far the document's and the display's threads step back (a nice
/// value; 0 is normal, 19 the least). On a small machine they compete for
/// the same cores as the steps and as the local peers they talk to; they
/// are the work that can wait a few milliseconds. (At normal priority the
/// display, woken on the incident's core by each record, took it from the
/// incident for every line it wrote.)
const BACKGROUND_NICENESS: i32 = 10;

/// Lowers the calling thread's priority to [`BACKGROUND_NICENESS`]: on Linux
/// a thread id is a process id to `setpriority`. Failing that, it runs at
/// the normal priority, as before.
pub(crate) fn background_priority() {
    let _ =
        rustix::process::setpriority_process(Some(rustix::thread::gettid()), BACKGROUND_NICENESS);
}

/// Refuses, before anything happens, a live run that needs a provider that
/// cannot act (not built, not configured). Notifications are exempt: they
/// are skipped with the reason instead.
pub fn preflight_live(rb: &Runbook, live: &Live) -> Result<(), String> {
    let blocked: Vec<String> = rb
        .steps
        .iter()
        .filter(|s| s.phase != runbook::Phase::Notify && !s.deferred)
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
