//! The engine: runs a validated runbook as a DAG on tokio. Independent steps
//! run concurrently; each attempt is timed out and journaled; failures are
//! retried with jittered exponential backoff that honours Retry-After; the
//! SLO clock measures time to revoke from detection.

pub mod clock;
pub mod drill;
pub mod humans;
pub(crate) mod replay;
pub mod sim;
mod step;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use clock::Clock;
pub use humans::Humans;

use crate::journal::{
    Actor, Event, IncidentView, Journal, Mode, Outcome, Proof, Record, StepInfo, StepState,
    format_ts,
};
use crate::providers::{Live, OutputValue, Outputs};
use crate::runbook::{Kind, OnFailure, Runbook, Step};
use crate::secret::{Redactor, Secret};
use sim::Sim;

/// Who performs the actions: the real providers, or `sim`.
#[derive(Debug, Clone)]
pub enum Executor {
    Live(Box<Live>),
    Sim(Sim),
}

impl Executor {
    pub fn mode(&self) -> Mode {
        match self {
            Executor::Live(_) => Mode::Live,
            Executor::Sim(sim) if sim.scenario().drill.is_some() => Mode::Drill,
            Executor::Sim(_) => Mode::Rehearsal,
        }
    }

    /// Waits `d` of the incident's time (a drill's runs at its pace).
    pub async fn wait(&self, d: Duration) {
        match self {
            Executor::Sim(sim) => sim.scenario().wait(d).await,
            Executor::Live(_) => tokio::time::sleep(d).await,
        }
    }
}

/// What an incident is run with, as whoever starts it gives it.
pub struct Brief {
    /// A new incident, its follow-ups, or a resumption.
    pub start: Start,
    pub runbook: Arc<Runbook>,
    pub runbook_path: String,
    pub inputs: BTreeMap<String, String>,
    pub secrets: Vec<Secret>,
    pub detected_at: Option<DateTime<Utc>>,
    /// When the credential leaked (`--leaked-at`, or the detector's first
    /// location): where the audit window starts.
    pub leaked_at: Option<DateTime<Utc>>,
    /// What set the response off (`--trigger`), for the document.
    pub trigger: Option<String>,
    /// The detector's report that started it, journaled after the start.
    pub detection: Option<crate::journal::Detection>,
    /// Performs some actions for many incidents together (`quench serve`),
    /// in place of the live provider.
    pub pool: Option<Arc<dyn Pool>>,
    pub executor: Executor,
    pub humans: Humans,
    /// `--yes`: approvals are given in the invoker's name.
    pub assume_yes: bool,
    /// Who started it (an OS user, or a Slack user through `quench serve`).
    pub by: Actor,
    /// When the responder invoked quench; the SLO clock's default start.
    /// `None`: now.
    pub invoked: Option<Clock>,
}

impl Brief {
    /// A run of `runbook` by `executor`, started by the OS user, that
    /// nobody answers; the caller sets what else it knows.
    pub fn new(
        start: Start,
        (runbook, runbook_path): (Runbook, String),
        executor: Executor,
    ) -> Self {
        Brief {
            start,
            runbook: Arc::new(runbook),
            runbook_path,
            inputs: BTreeMap::new(),
            secrets: Vec::new(),
            detected_at: None,
            leaked_at: None,
            trigger: None,
            detection: None,
            pool: None,
            executor,
            humans: Humans::Nobody,
            assume_yes: false,
            by: Actor::current(),
            invoked: None,
        }
    }
}

/// Everything one incident needs, prepared by the caller.
pub struct Incident {
    pub id: String,
    pub dir: PathBuf,
    pub brief: Brief,
    pub redactor: Redactor,
    pub journal: Journal,
    /// What `incident.document` calls to write the documents.
    pub document: WriteDocument,
}

/// Performs an action for many incidents at once: `quench serve` revokes
/// the GitHub tokens of a burst of alerts in shared requests. `None` leaves
/// the action to the live provider. The engine times, journals and retries
/// each attempt as it does any other.
pub trait Pool: Send + Sync {
    fn perform<'a>(
        &'a self,
        action: &'a crate::providers::ActionSpec,
        params: &'a serde_json::Map<String, Value>,
    ) -> Option<Pooled<'a>>;
}

pub type Pooled<'a> = std::pin::Pin<
    Box<dyn Future<Output = Result<Outputs, crate::providers::ActionError>> + Send + 'a>,
>;

/// Writes the incident's documents from its records, and returns the
/// Markdown: given by the caller, so that the engine depends on no view.
pub type WriteDocument = Arc<dyn Fn(&[Record]) -> std::io::Result<String> + Send + Sync>;

/// What this run of the engine is for.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new incident.
    Fresh,
    /// The follow-ups of an incident that are due at `now`; `prior` is its
    /// journal so far.
    FollowUps {
        prior: Vec<Record>,
        now: DateTime<Utc>,
    },
    /// An interrupted incident, carried on from its journal. `repaired`
    /// says what was cut from a torn last line, if anything.
    Resume {
        prior: Vec<Record>,
        repaired: Option<String>,
    },
    /// A failed incident, tried again from its journal: its failed steps
    /// run again, the steps skipped behind them are weighed again, and
    /// nothing that succeeded runs twice.
    Retry { prior: Vec<Record> },
}

impl Start {
    /// The journal so far, for a run that continues an incident.
    pub fn prior(&self) -> &[Record] {
        match self {
            Start::Fresh => &[],
            Start::FollowUps { prior, .. }
            | Start::Resume { prior, .. }
            | Start::Retry { prior } => prior,
        }
    }
}

/// How an incident ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub outcome: Outcome,
    pub time_to_revoke: Option<Duration>,
    pub slo: Duration,
    pub slo_met: bool,
    /// When the credential was detected: the clock's start.
    pub detected_at: DateTime<Utc>,
    /// Whether its verify steps proved the credential dead, or why not.
    pub proof: Proof,
    /// From detection to the proof.
    pub time_to_dead: Option<Duration>,
    pub records: Vec<Record>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("failed to write the journal `{path}`: {source}")]
    Journal {
        path: String,
        source: std::io::Error,
    },
}

/// How a step settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    Succeeded,
    Failed,
    Skipped,
    /// Left for later: a manual task nobody answered, a follow-up.
    Open,
    /// Watching for a condition that has not come: it looks again in a
    /// later run, and the steps that wait for it wait with it.
    Watching,
}

/// The template contexts: `real` holds secret values, for the parameters
/// that may carry them; `public` holds their markers, for the parameters
/// that may not; `shown` is `public` as the journal keeps it (without the
/// document a step published, which the journal holds already).
pub(crate) struct Contexts {
    pub real: handlebars::Context,
    pub public: handlebars::Context,
    pub shown: handlebars::Context,
}

fn journal_error(j: &Journal, source: std::io::Error) -> EngineError {
    EngineError::Journal {
        path: j.path().display().to_string(),
        source,
    }
}

/// Group commit: the starts of many steps leaving at once (a bulk
/// revocation starts 1,000) are flushed to disk by one `fdatasync`, done by
/// whichever of them gets there first, instead of one each in a row.
#[derive(Default)]
pub(crate) struct Flush {
    /// The last record known to be on disk.
    synced: std::sync::atomic::AtomicU64,
    /// A step is flushing for everyone.
    busy: std::sync::atomic::AtomicBool,
    done: tokio::sync::Notify,
}

/// State shared by the scheduler and the step tasks.
pub(crate) struct Shared {
    pub flush: Flush,
    pub runbook: Arc<Runbook>,
    pub clock: Clock,
    pub executor: Executor,
    pub humans: Humans,
    pub assume_yes: bool,
    pub redactor: Redactor,
    pub journal: Mutex<Journal>,
    pub contexts: Mutex<Contexts>,
    pub dir: PathBuf,
    pub document: WriteDocument,
    /// Where the audit window starts: the leak, else a default before
    /// detection (`incident.leaked_at`).
    pub audit_since: DateTime<Utc>,
    /// The names of the secrets given (an optional one may not be).
    pub secrets_given: std::collections::BTreeSet<String>,
    pub pool: Option<Arc<dyn Pool>>,
    /// Per step, what its last attempt noted of its effect.
    pub notes: Mutex<HashMap<String, Value>>,
    /// When each step that started in an earlier run first did, and its
    /// last attempt: a watching step looks again from there.
    pub begun: BTreeMap<String, (DateTime<Utc>, u32)>,
    /// A drill's injects are told of each step that settles.
    pub settled_tx: Mutex<Option<tokio::sync::mpsc::UnboundedSender<String>>>,
}

impl Shared {
    /// Journals an event at the current clock time, durably, before the
    /// caller does anything else.
    pub fn record(&self, event: Event) -> Result<Record, EngineError> {
        let mut j = self.journal();
        let ts = self.clock.now();
        j.append(ts, event).map_err(|e| journal_error(&j, e))
    }

    /// Journals an event at the current clock time that no effect waits on
    /// (a step's result, the incident's start): it is flushed to disk with
    /// the next record, or by [`Shared::sync`], before any other effect and
    /// before anything waits.
    pub fn record_unsynced(&self, event: Event) -> Result<Record, EngineError> {
        let mut j = self.journal();
        let ts = self.clock.now();
        j.append_unsynced(ts, event)
            .map_err(|e| journal_error(&j, e))
    }

    /// Journals an event that an effect is about to follow, and returns
    /// once it is on disk, flushed together with the records of the other
    /// steps that are starting at the same moment.
    pub async fn record_before_effect(&self, event: Event) -> Result<Record, EngineError> {
        use std::sync::atomic::Ordering;
        let record = self.record_unsynced(event)?;
        loop {
            if self.flush.synced.load(Ordering::Acquire) >= record.seq {
                return Ok(record);
            }
            let notified = self.flush.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self
                .flush
                .busy
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // Someone else is flushing: their flush may cover this one.
                notified.await;
                continue;
            }
            // Let the other steps that are ready write their records first,
            // so one flush covers them all.
            tokio::task::yield_now().await;
            let flushed = {
                let mut j = self.journal();
                let upto = j.seq();
                j.sync().map(|()| upto).map_err(|e| journal_error(&j, e))
            };
            if let Ok(upto) = &flushed {
                self.flush.synced.fetch_max(*upto, Ordering::AcqRel);
            }
            self.flush.busy.store(false, Ordering::Release);
            self.flush.done.notify_waiters();
            flushed?;
        }
    }

    /// Flushes to disk what [`Shared::record_unsynced`] wrote, if anything.
    pub fn sync(&self) -> Result<(), EngineError> {
        let mut j = self.journal();
        j.sync().map_err(|e| journal_error(&j, e))
    }

    pub fn records(&self) -> Vec<Record> {
        self.journal().records().to_vec()
    }

    fn journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        self.journal.lock().expect("journal lock poisoned")
    }

    /// Makes a step's outputs readable by later steps; secret outputs are
    /// learned by the redactor before anything can print them.
    pub fn publish_outputs(
        &self,
        step: &Step,
        outputs: &Outputs,
    ) -> serde_json::Map<String, Value> {
        let mut real = serde_json::Map::new();
        let mut shown = serde_json::Map::new();
        for (name, value) in outputs {
            match value {
                OutputValue::Plain(v) => {
                    real.insert(name.clone(), v.clone());
                    shown.insert(name.clone(), v.clone());
                }
                OutputValue::Secret(s) => {
                    self.redactor.add(s);
                    real.insert(name.clone(), Value::String(s.expose().to_string()));
                    shown.insert(name.clone(), Value::String(s.marker()));
                }
            }
        }
        let mut c = self.contexts.lock().expect("context lock poisoned");
        c.set_outputs(step.id.as_str(), real.into(), shown.clone().into());
        shown
    }
}

/// What the earlier steps produced, as the journal kept it: secret outputs
/// only as their markers (quench never stores a secret).
fn restore_outputs(shared: &Shared, state: &replay::StepStates) {
    let mut c = shared.contexts.lock().expect("context lock poisoned");
    for (id, outputs) in &state.outputs {
        let outputs = Value::Object(outputs.clone());
        c.set_outputs(id, outputs.clone(), outputs);
    }
}

/// What a resumed or retried incident goes on from: the earlier steps'
/// outputs, and what steps in flight noted of their effect.
fn carry_on(shared: &Shared, state: &replay::StepStates) {
    restore_outputs(shared, state);
    shared
        .notes
        .lock()
        .expect("notes lock poisoned")
        .extend(state.noted.clone());
}

/// The incident's clock: a drill's runs at its pace from the moment it
/// starts, or from where its journal stopped when it carries on.
fn incident_clock(brief: &Brief) -> Clock {
    match &brief.executor {
        Executor::Sim(sim) if sim.scenario().drill.is_some() => {
            let clock = match brief.start.prior().last() {
                Some(last) => Clock::at(last.ts.max(chrono::Utc::now())),
                None => Clock::start(),
            };
            clock.scaled(sim.scenario().pace())
        }
        _ => brief.invoked.unwrap_or_else(Clock::start),
    }
}

/// Runs the incident to the end, or until `shutdown` names a reason to stop
/// (a signal): then nothing new starts, steps in flight finish or time out,
/// and the journal can be resumed.
pub async fn run(
    incident: Incident,
    shutdown: watch::Receiver<Option<String>>,
) -> Result<Finished, EngineError> {
    let Incident {
        id,
        dir,
        brief,
        redactor,
        journal,
        document,
    } = incident;
    let clock = incident_clock(&brief);
    let at = instants(&brief, &clock);
    let (started_at, detected_at) = (at.started_at, at.detected_at);
    let mode = brief.executor.mode();
    for s in &brief.secrets {
        redactor.add(s);
    }
    let contexts = contexts(&id, &brief, mode, &at, clock.now());
    let started = started_event(&id, &brief, mode, &at);
    // What the journal so far says of the steps, for a run that continues.
    let mut state = replay::settled(brief.start.prior());
    let shared = Arc::new(Shared {
        runbook: brief.runbook.clone(),
        clock,
        executor: brief.executor,
        humans: brief.humans,
        assume_yes: brief.assume_yes,
        redactor,
        journal: Mutex::new(journal),
        flush: Flush::default(),
        contexts: Mutex::new(contexts),
        dir,
        document,
        audit_since: at.audit_since(),
        secrets_given: brief.secrets.iter().map(|s| s.name().into()).collect(),
        pool: brief.pool,
        notes: Mutex::default(),
        begun: std::mem::take(&mut state.begun),
        settled_tx: Mutex::default(),
    });

    let mut settled: HashMap<&str, Settled> = HashMap::new();
    // Steps held after a crash: the response is not complete until a human
    // confirms them, so the incident does not succeed.
    let mut held_steps = 0usize;
    let start = brief.start;
    match &start {
        Start::Fresh => {
            // Flushed with the first step's start (or by the scheduler):
            // one `fdatasync` before the first request, not two.
            shared.record_unsynced(started)?;
            drill::record_start(&shared)?;
            if let Some(d) = brief.detection {
                shared.record_unsynced(Event::Detection(d))?;
            }
            schedule_follow_ups(&shared, started_at, &mut settled)?;
        }
        Start::FollowUps { now, .. } => {
            start_follow_ups(&shared, &state, *now, brief.by, &mut settled)?;
        }
        Start::Resume { repaired, .. } => {
            held_steps = resume(&shared, &state, repaired, &mut settled).await?;
        }
        Start::Retry { prior } => retry(&shared, prior, &state, brief.by, &mut settled)?,
    }

    let injector = drill::Injector::for_drill(&shared, &id);
    let ended = schedule(&shared, &mut settled, shutdown).await;
    if let Some(injector) = injector {
        injector.stop();
    }
    let ended = ended?;
    reschedule(&shared)?;
    if matches!(start, Start::FollowUps { .. }) {
        return finish_follow_ups(&shared, &settled, &ended, detected_at);
    }
    finish(&shared, &settled, &ended, held_steps, detected_at)
}

/// Journals the end of a run of follow-ups: its outcome; the incident's
/// time to revoke was settled when it ended.
fn finish_follow_ups(
    shared: &Shared,
    settled: &HashMap<&str, Settled>,
    ended: &Ended,
    detected_at: DateTime<Utc>,
) -> Result<Finished, EngineError> {
    let outcome = ended.outcome(settled, 0, true);
    shared.record(Event::FollowUpsFinished { outcome })?;
    let records = shared.records();
    Ok(Finished {
        outcome,
        time_to_revoke: None,
        slo: shared.runbook.revoke_within,
        slo_met: true,
        detected_at,
        proof: IncidentView::fold(&records).proof(),
        time_to_dead: None,
        records,
    })
}

/// A new incident's first record.
fn started_event(id: &str, brief: &Brief, mode: Mode, at: &Instants) -> Event {
    let runbook = &brief.runbook;
    Event::IncidentStarted {
        incident: id.to_string(),
        runbook: runbook.name.clone(),
        title: runbook.title.clone(),
        runbook_path: brief.runbook_path.clone(),
        runbook_sha256: runbook.hash.clone(),
        mode,
        detected_at: at.detected_at,
        leaked_at: at.leaked_at,
        started_at: at.started_at,
        // A rotation has no compromise SLO.
        slo_ms: if runbook.kind == Kind::Rotation {
            0
        } else {
            runbook.revoke_within.as_millis() as u64
        },
        inputs: brief.inputs.clone(),
        secrets: brief.secrets.iter().map(|s| s.name().to_string()).collect(),
        by: brief.by.clone(),
        steps: runbook.steps.iter().map(step_info).collect(),
        trigger: brief.trigger.clone(),
        description: runbook.description.clone(),
        kind: Some(runbook.kind),
    }
}

/// Journals the follow-ups that the steps settled in this run have moved:
/// each is due its `after` from when the steps it needs settled.
fn reschedule(shared: &Shared) -> Result<(), EngineError> {
    let view = IncidentView::fold(&shared.records());
    for (id, due) in view.scheduled() {
        let recorded = view.step(&id).and_then(|s| s.due_at);
        if let Some(due) = due.filter(|d| Some(*d) != recorded) {
            shared.record(Event::StepScheduled {
                step: id,
                due_at: due,
            })?;
        }
    }
    Ok(())
}

/// When the incident started, when its credential was detected and when it
/// leaked, if anyone said.
struct Instants {
    started_at: DateTime<Utc>,
    detected_at: DateTime<Utc>,
    leaked_at: Option<DateTime<Utc>>,
}

impl Instants {
    fn audit_since(&self) -> DateTime<Utc> {
        crate::journal::audit_since(self.leaked_at, self.detected_at)
    }
}

/// The incident's instants: now and as given, or as its journal recorded
/// them.
fn instants(brief: &Brief, clock: &Clock) -> Instants {
    match &brief.start {
        Start::Fresh => Instants {
            started_at: clock.started_at(),
            detected_at: brief.detected_at.unwrap_or(clock.started_at()),
            leaked_at: brief.leaked_at,
        },
        other => match other.prior().first().map(|r| &r.event) {
            Some(Event::IncidentStarted {
                started_at,
                detected_at,
                leaked_at,
                ..
            }) => Instants {
                started_at: *started_at,
                detected_at: *detected_at,
                leaked_at: *leaked_at,
            },
            _ => Instants {
                started_at: clock.started_at(),
                detected_at: clock.started_at(),
                leaked_at: None,
            },
        },
    }
}

/// The template contexts at the start: inputs, secrets (real or as their
/// markers) and the incident's own fields.
fn contexts(id: &str, brief: &Brief, mode: Mode, at: &Instants, now: DateTime<Utc>) -> Contexts {
    let audit_since = at.audit_since();
    let incident_ctx = json!({
        "id": id,
        "mode": mode.name(),
        "runbook": brief.runbook.name,
        "started_at": format_ts(&at.started_at),
        "detected_at": format_ts(&at.detected_at),
        "leaked_at": format_ts(&audit_since),
        "leaked_ago": leaked_ago(audit_since, now),
    });
    // The context with each secret as `value` gives it.
    let context = |value: fn(&Secret) -> String| {
        let secrets: serde_json::Map<String, Value> = (brief.secrets.iter())
            .map(|s| (s.name().to_string(), Value::String(value(s))))
            .collect();
        json!({"inputs": brief.inputs, "secrets": secrets, "steps": {}, "incident": incident_ctx})
    };
    let public = context(Secret::marker);
    Contexts {
        real: context(|s| s.expose().to_string()).into(),
        public: public.clone().into(),
        shown: public.into(),
    }
}

/// What `incident.leaked_ago` adds to the time since the leak: an audit
/// step's request leaves after its parameters render (a retry after a
/// timeout, minutes later), and the window it opens from then must still
/// reach back to the leak. A few minutes before it cost nothing.
const LEAK_MARGIN: Duration = Duration::from_secs(5 * 60);

/// How long before `now` the credential leaked, as an audit step's `since`
/// takes it (`90d 2h 5m`), with [`LEAK_MARGIN`] to spare.
fn leaked_ago(leaked_at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let ms = crate::time::ms_between(leaked_at, now);
    crate::time::runbook_duration(Duration::from_millis(ms) + LEAK_MARGIN)
}

impl Contexts {
    /// Step `id`'s outputs, with their secret values where they may be
    /// read and their markers elsewhere.
    fn set_outputs(&mut self, id: &str, real: Value, shown: Value) {
        self.real.data_mut()["steps"][id] = json!({ "outputs": real });
        self.public.data_mut()["steps"][id] = json!({ "outputs": shown.clone() });
        self.shown.data_mut()["steps"][id] = json!({ "outputs": shown });
    }

    /// `incident.leaked_ago` as of `now`, for the step about to render.
    pub(crate) fn age_leak(&mut self, leaked_at: DateTime<Utc>, now: DateTime<Utc>) {
        let ago = Value::String(leaked_ago(leaked_at, now));
        for c in [&mut self.real, &mut self.public, &mut self.shown] {
            c.data_mut()["incident"]["leaked_ago"] = ago.clone();
        }
    }
}

/// A step as the incident's first record describes it.
fn step_info(s: &Step) -> StepInfo {
    StepInfo {
        id: s.id.to_string(),
        title: s.title().to_string(),
        phase: s.phase,
        action: s.action.name.to_string(),
        needs: s.needs.iter().map(|n| n.to_string()).collect(),
        deferred: s.deferred,
        after_ms: s.after.map(|a| a.as_millis() as u64),
        section: s
            .with
            .get("section")
            .and_then(Value::as_str)
            .map(str::to_string),
        proves_dead: s.proves_dead(),
    }
}

/// Follow-ups are not run in the incident: they are recorded with when they
/// come due, for `quench tick`.
fn schedule_follow_ups<'r>(
    shared: &'r Shared,
    started_at: DateTime<Utc>,
    settled: &mut HashMap<&'r str, Settled>,
) -> Result<(), EngineError> {
    let mut due: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for s in shared.runbook.steps.iter().filter(|s| s.deferred) {
        let own = s.after.map(|a| started_at + a).unwrap_or(started_at);
        let at = s
            .waits_for()
            .filter_map(|n| due.get(n.as_str()).copied())
            .fold(own, DateTime::max);
        due.insert(s.id.as_str(), at);
        shared.record_unsynced(Event::StepScheduled {
            step: s.id.to_string(),
            due_at: at,
        })?;
        settled.insert(s.id.as_str(), Settled::Open);
    }
    Ok(())
}

/// What the journal says has settled, and which follow-ups are due `now`:
/// those are left to run.
fn start_follow_ups<'r>(
    shared: &'r Shared,
    state: &replay::StepStates,
    now: DateTime<Utc>,
    by: Actor,
    settled: &mut HashMap<&'r str, Settled>,
) -> Result<(), EngineError> {
    let runbook = &shared.runbook;
    for (id, st) in &state.settled {
        set(settled, runbook, id, *st);
    }
    let mut due_now = Vec::new();
    let scheduled = state
        .scheduled
        .iter()
        .map(|(id, at)| (id, *at, Settled::Open));
    let watching = (state.watching.iter()).map(|(id, at)| (id, Some(*at), Settled::Watching));
    for (id, at, waiting) in scheduled.chain(watching) {
        if runbook.step(id).is_none() {
            continue;
        }
        if at.is_some_and(|at| at <= now) {
            settled.remove(id.as_str());
            due_now.push(id.clone());
        } else {
            set(settled, runbook, id, waiting);
        }
    }
    restore_outputs(shared, state);
    shared.record(Event::FollowUpsStarted { by, steps: due_now })?;
    Ok(())
}

/// Settles step `id` as `st`, if the runbook has it.
fn set<'r>(settled: &mut HashMap<&'r str, Settled>, runbook: &'r Runbook, id: &str, st: Settled) {
    if let Some(step) = runbook.step(id) {
        settled.insert(step.id.as_str(), st);
    }
}

/// Carries on from the journal. A step in flight when the process died may
/// or may not have had its effect: it runs again only if that is harmless
/// (it is idempotent, or it noted its effect and carries on from the note),
/// or a human says so; otherwise it is held as an open task. Returns how
/// many were held.
async fn resume<'r>(
    shared: &'r Shared,
    state: &replay::StepStates,
    repaired: &Option<String>,
    settled: &mut HashMap<&'r str, Settled>,
) -> Result<usize, EngineError> {
    let runbook = &shared.runbook;
    for (id, st) in &state.settled {
        set(settled, runbook, id, *st);
    }
    for id in state.scheduled.keys() {
        set(settled, runbook, id, Settled::Open);
    }
    carry_on(shared, state);
    let (mut rerun, mut held) = (Vec::new(), Vec::new());
    for id in &state.in_flight {
        let Some(step) = runbook.step(id) else {
            continue;
        };
        let confirmed = step.idempotent
            || state.noted.contains_key(id)
            || shared.assume_yes
            || matches!(
                shared
                    .humans
                    .approve(
                        id,
                        &format!("re-run `{}`, which may repeat its effect", step.action.name)
                    )
                    .await,
                humans::Answer::Given { .. }
            );
        if confirmed {
            rerun.push(id.clone());
        } else {
            held.push(id.clone());
        }
    }
    shared.record(Event::IncidentResumed {
        by: Actor::current(),
        rerun,
        held: held.clone(),
        repaired: repaired.clone(),
    })?;
    for id in &held {
        let Some(step) = runbook.step(id) else {
            continue;
        };
        shared.record(Event::TaskOpened {
            task: Default::default(),
            step: id.clone(),
            prompt: format!(
                "`{id}` was in flight when quench stopped and is not idempotent (`{}`): check whether it took effect, then `quench resume` with --yes to run it again",
                step.action.name
            ),
        })?;
        settled.insert(step.id.as_str(), Settled::Open);
    }
    Ok(held.len())
}

/// Goes on with a failed incident. Its failed steps run again (a follow-up
/// that failed was due, so it runs now); a step skipped in the incident is
/// weighed again, its `when` and its needs, since what it waited for may
/// succeed this time; a follow-up skipped behind a failure is scheduled
/// again. Steps that succeeded, watch, or wait for a human stay as they are.
fn retry<'r>(
    shared: &'r Shared,
    prior: &[Record],
    state: &replay::StepStates,
    by: Actor,
    settled: &mut HashMap<&'r str, Settled>,
) -> Result<(), EngineError> {
    let runbook = &shared.runbook;
    let view = IncidentView::fold(prior);
    let (mut failed, mut reweighed, mut rescheduled) = (Vec::new(), Vec::new(), Vec::new());
    for (id, st) in &state.settled {
        let Some(step) = runbook.step(id) else {
            continue;
        };
        match st {
            Settled::Failed => failed.push(id.clone()),
            Settled::Skipped if step.deferred => {
                rescheduled.push(step);
                settled.insert(step.id.as_str(), Settled::Open);
            }
            Settled::Skipped => reweighed.push(id.clone()),
            _ => {
                settled.insert(step.id.as_str(), *st);
            }
        }
    }
    // Scheduled follow-ups wait for `tick`; a step in flight when a run
    // stopped is not repeated here (that is `resume`'s to weigh).
    for id in state.scheduled.keys().chain(&state.in_flight) {
        set(settled, runbook, id, Settled::Open);
    }
    carry_on(shared, state);
    let retry = 1 + prior
        .iter()
        .filter(|r| matches!(r.event, Event::IncidentRetried { .. }))
        .count() as u32;
    shared.record(Event::IncidentRetried {
        by,
        retry,
        steps: failed,
        reweighed,
    })?;
    for step in rescheduled {
        let due_at = view
            .step(step.id.as_str())
            .and_then(|s| s.due_at)
            .unwrap_or_else(|| shared.clock.now());
        shared.record(Event::StepScheduled {
            step: step.id.to_string(),
            due_at,
        })?;
    }
    Ok(())
}

/// Why the scheduler stopped starting steps, if it did.
struct Ended {
    /// The step whose failure aborted the incident.
    aborted_by: Option<String>,
    /// A signal asked to stop.
    interrupted: bool,
}

impl Ended {
    /// How the run ended, with `held` steps waiting for a human to confirm
    /// them and the SLO met or not.
    fn outcome(&self, settled: &HashMap<&str, Settled>, held: usize, slo_met: bool) -> Outcome {
        let failed = settled.values().any(|s| *s == Settled::Failed);
        if self.interrupted {
            Outcome::Interrupted
        } else if failed || self.aborted_by.is_some() || held > 0 {
            Outcome::Failed
        } else if !slo_met {
            Outcome::SloMissed
        } else {
            Outcome::Succeeded
        }
    }
}

/// Runs every step whose wait is over, until none is left to start and
/// none is running.
async fn schedule<'r>(
    shared: &'r Arc<Shared>,
    settled: &mut HashMap<&'r str, Settled>,
    mut shutdown: watch::Receiver<Option<String>>,
) -> Result<Ended, EngineError> {
    let runbook = &shared.runbook;
    let mut running: JoinSet<(usize, Result<Settled, EngineError>)> = JoinSet::new();
    let mut started = vec![false; runbook.steps.len()];
    let mut aborted_by: Option<String> = None;
    let mut interrupted = false;
    let mut signals_closed = false;
    let mut first_error: Option<EngineError> = None;

    loop {
        let starting = aborted_by.is_none() && !interrupted && first_error.is_none();
        // Whether a step was started this round: its first record flushes
        // the results written before it.
        let started_any = starting && start_ready(shared, settled, &mut started, &mut running)?;
        // Steps skipped above may unblock (or skip) others: go round again
        // before waiting.
        let pending_ready = starting
            && runbook.steps.iter().enumerate().any(|(i, s)| {
                !started[i]
                    && !settled.contains_key(s.id.as_str())
                    && s.waits_for().all(|n| settled.contains_key(n.as_str()))
            });
        if pending_ready {
            continue;
        }
        if running.is_empty() {
            // The record that ends the incident flushes what came before.
            break;
        }
        // Nothing was started to flush the results written since the last
        // flush: flush them now, before anything waits.
        if !started_any {
            shared.sync()?;
        }
        tokio::select! {
            // A step finished: settle it, and stop starting work if it
            // failed with `on_failure: abort`.
            Some(joined) = running.join_next() => {
                let Ok((i, result)) = joined else { continue };
                let s = &runbook.steps[i];
                match result {
                    Ok(st) => {
                        settled.insert(s.id.as_str(), st);
                        if st == Settled::Failed && s.on_failure == OnFailure::Abort && aborted_by.is_none() {
                            aborted_by = Some(s.id.to_string());
                        }
                    }
                    Err(e) => {
                        settled.insert(s.id.as_str(), Settled::Failed);
                        first_error.get_or_insert(e);
                    }
                }
            }
            // Ctrl-C / SIGTERM: start nothing new; steps in flight finish or
            // time out, so the journal stays consistent and resumable.
            changed = shutdown.changed(), if !interrupted && !signals_closed => {
                match changed {
                    Ok(()) => {
                        let reason = shutdown.borrow().clone();
                        if let Some(signal) = reason {
                            interrupted = true;
                            shared.record(Event::IncidentInterrupted { by: Actor::current(), signal })?;
                        }
                    }
                    // Nobody can signal any more: carry on.
                    Err(_) => signals_closed = true,
                }
            }
        }
    }
    if let Some(e) = first_error {
        let _ = shared.sync();
        return Err(e);
    }
    if let Some(by) = &aborted_by {
        for s in &runbook.steps {
            if !settled.contains_key(s.id.as_str()) {
                shared.record(Event::StepSkipped {
                    step: s.id.to_string(),
                    reason: format!("the incident was aborted after `{by}` failed"),
                })?;
                settled.insert(s.id.as_str(), Settled::Skipped);
            }
        }
    }
    Ok(Ended {
        aborted_by,
        interrupted,
    })
}

/// Starts each step whose wait is over: every step it waits for has
/// settled. One that needs a step which did not succeed is skipped instead;
/// the steps it waits for through `settled` may have ended any way.
/// Returns whether any step started.
fn start_ready<'r>(
    shared: &'r Arc<Shared>,
    settled: &mut HashMap<&'r str, Settled>,
    started: &mut [bool],
    running: &mut JoinSet<(usize, Result<Settled, EngineError>)>,
) -> Result<bool, EngineError> {
    let runbook = &shared.runbook;
    let mut started_any = false;
    for (i, s) in runbook.steps.iter().enumerate() {
        if started[i] || settled.contains_key(s.id.as_str()) {
            continue;
        }
        if s.waits_for().any(|n| !settled.contains_key(n.as_str())) {
            continue;
        }
        // Behind a step that watches: it waits for a later run, unjournaled.
        if s.waits_for()
            .any(|n| settled.get(n.as_str()) == Some(&Settled::Watching))
        {
            settled.insert(s.id.as_str(), Settled::Watching);
            continue;
        }
        let blocker = s
            .needs
            .iter()
            .map(|n| (n.as_str(), settled.get(n.as_str()).copied()))
            .find(|(_, st)| *st != Some(Settled::Succeeded));
        if let Some((blocker, st)) = blocker {
            let why = match st {
                Some(Settled::Open) => format!("`{blocker}` is still open"),
                _ => format!("`{blocker}` did not succeed"),
            };
            shared.record(Event::StepSkipped {
                step: s.id.to_string(),
                reason: why,
            })?;
            settled.insert(s.id.as_str(), Settled::Skipped);
            continue;
        }
        started[i] = true;
        started_any = true;
        let sh = shared.clone();
        running.spawn(async move {
            let step = &sh.runbook.steps[i];
            let settled = step::run(&sh, step).await;
            if let Some(tx) = &*sh.settled_tx.lock().expect("settled lock") {
                let _ = tx.send(step.id.to_string());
            }
            (i, settled)
        });
    }
    Ok(started_any)
}

/// Journals the end of the incident: its outcome and time to revoke.
fn finish(
    shared: &Shared,
    settled: &HashMap<&str, Settled>,
    ended: &Ended,
    held_steps: usize,
    detected_at: DateTime<Utc>,
) -> Result<Finished, EngineError> {
    let runbook = &shared.runbook;
    // Time to revoke: when the last revoke step run in the incident succeeded.
    let slo = runbook.revoke_within;
    // A rotation races no attacker: nothing is timed against an SLO.
    let revoke_steps: Vec<&Step> = runbook
        .steps
        .iter()
        .filter(|s| s.is_slo_revoke() && runbook.kind != Kind::Rotation)
        .collect();
    let revoke_failed = revoke_steps.iter().any(|s| {
        !matches!(
            settled.get(s.id.as_str()),
            Some(Settled::Succeeded | Settled::Skipped)
        )
    });
    let view = IncidentView::fold(shared.journal().records());
    let revoked_at = if revoke_failed || ended.interrupted {
        None
    } else {
        (view.steps.iter())
            .filter(|v| v.state == StepState::Succeeded)
            .filter(|v| revoke_steps.iter().any(|s| s.id.as_str() == v.info.id))
            .filter_map(|v| v.settled_at)
            .max()
    };
    let time_to_revoke =
        revoked_at.map(|t| Duration::from_millis(crate::time::ms_between(detected_at, t)));
    let slo_met = if revoke_steps.is_empty() {
        true
    } else {
        time_to_revoke.is_some_and(|t| t <= slo)
    };
    // Proven dead: when the last verify step run in the incident succeeded,
    // all of them having succeeded. A failed one fails the incident below:
    // the provider still accepted the credential.
    let proof = view.proof();
    let credential_dead_at = match &proof {
        Proof::Proven { at, .. } => Some(*at),
        _ => None,
    };
    let time_to_dead =
        credential_dead_at.map(|t| Duration::from_millis(crate::time::ms_between(detected_at, t)));
    let outcome = ended.outcome(settled, held_steps, slo_met);
    shared.record(Event::IncidentFinished(crate::journal::Finished {
        outcome,
        revoked_at,
        time_to_revoke_ms: time_to_revoke.map(|t| t.as_millis() as u64),
        slo_met,
        credential_dead_at,
        time_to_dead_ms: time_to_dead.map(|t| t.as_millis() as u64),
    }))?;
    crate::logging::startup("the incident's end is journaled");
    // The journal is done with: its records are taken, not copied, on the
    // way to the exit.
    let records = shared.journal().take_records();
    Ok(Finished {
        outcome,
        time_to_revoke,
        slo,
        slo_met,
        detected_at,
        proof,
        time_to_dead,
        records,
    })
}

#[cfg(test)]
mod tests;
