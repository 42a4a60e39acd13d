//! `Report`: the document's facts, replayed from the journal. It is
//! `incident.json`, and the object every document template receives.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::aws::{AwsReport, SHOWN_APART};
use super::leaks::{Leak, leaks};
use super::rotation::RotationReport;
use super::scorecard::Scorecard;
use super::timeline::Chart;
use crate::journal::{
    Approval, Detection, Event, IncidentView, Mode, Proof, Record, StepInfo, StepState, StepView,
    audit_since, format_ts,
};
use crate::runbook::{Kind, Phase, parse_duration};
use crate::time::{human_ms, ms_between};

/// The document format this build writes. Fields are only ever added.
pub const DOCUMENT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub format: u32,
    pub id: String,
    pub runbook: String,
    pub title: String,
    /// What the runbook says it does.
    pub description: Option<String>,
    pub mode: Mode,
    /// Simulated providers: a rehearsal, or a drill.
    pub rehearsal: bool,
    /// A drill people played: simulated providers, real people.
    pub drill: bool,
    pub runbook_path: String,
    pub runbook_sha256: String,
    pub started_by: String,
    pub status: String,
    pub outcome: Option<String>,
    /// The day of detection (UTC), `2026-11-22`.
    pub date: String,
    pub detected_at: String,
    /// What set the response off (`--trigger`), if anyone said.
    pub trigger: Option<String>,
    /// Whether `--detected-at` named a time before quench started.
    pub detected_before_start: Option<String>,
    /// What each detector reported, the one that started the incident first.
    pub detections: Vec<DetectionReport>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub revoked_at: Option<String>,
    pub time_to_revoke_ms: Option<u64>,
    pub time_to_revoke: Option<String>,
    pub slo_ms: u64,
    pub slo: String,
    pub slo_deadline: String,
    pub slo_met: Option<bool>,
    /// How far inside (or past) the SLO revocation landed: `4m 56s`.
    pub slo_margin: Option<String>,
    /// When the credential leaked (`--leaked-at`, or the earliest a
    /// detector said), if anyone said.
    pub leaked_at: Option<String>,
    /// Where the audit window starts: the leak, else 90 days before
    /// detection.
    pub audit_since: String,
    /// When the last verify step saw the provider refuse the credential;
    /// none while it is unproven.
    pub credential_dead_at: Option<String>,
    pub time_to_dead_ms: Option<u64>,
    pub time_to_dead: Option<String>,
    /// Whether the credential was proven dead, and if not, why not.
    pub proof: ProofReport,
    /// How long the credential was exposed: from the leak (else detection)
    /// to its proven death (else the revocation, unproven).
    pub exposed_for_ms: Option<u64>,
    pub exposed_for: Option<String>,
    /// The lines `incident.document` steps added (`with.note`).
    pub notes: Vec<String>,
    pub inputs: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    pub steps: Vec<StepReport>,
    pub phases: Vec<PhaseReport>,
    /// The revoke, replace and update steps: how the credential was stopped.
    pub resolution: Vec<StepReport>,
    pub timeline: Vec<TimelineEntry>,
    pub findings: Vec<Finding>,
    /// Where the credential was committed: each history scan and its hits.
    pub leaks: Vec<Leak>,
    /// Every review task, answered or not.
    pub review: Vec<TaskReport>,
    pub prevention: Vec<StepReport>,
    pub pending: Vec<Pending>,
    /// Who started, approved, declined and answered what.
    pub people: Vec<Person>,
    /// The postmortem sections only humans can fill.
    pub postmortem: Postmortem,
    /// What the journal itself says went well and badly.
    pub observations: Observations,
    /// The timeline picture's geometry, for the HTML document's SVG.
    pub chart: Chart,
    /// What the AWS steps found, contained and exposed.
    pub aws: AwsReport,
    /// The runbook's kind: `compromise`, `procedure` or `rotation`.
    pub kind: String,
    /// A rotation's own account: each step's time, the verification and
    /// the quiet window. The document of a rotation is this.
    pub rotation: Option<RotationReport>,
    /// A drill's scorecard: how soon its people acted, its injects, and
    /// how it compares with the earlier drills of its runbook.
    pub scorecard: Option<Scorecard>,
}

/// Whether the credential was proven dead.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProofReport {
    /// `proven`, `no_verify_step`, `verify_failed`, `verify_skipped` or
    /// `verify_unsettled`.
    pub status: String,
    /// The verify step it turns on, if any.
    pub step: Option<String>,
    /// What happened, as a sentence or two.
    pub text: String,
}

impl ProofReport {
    fn new(proof: &Proof, finished: bool) -> ProofReport {
        let unproven = "nothing checked that the provider refuses the credential now, so the revoke call's answer is all there is";
        let (step, text) = match proof {
            Proof::Proven { step, .. } => (
                Some(step),
                format!("`{step}` saw the provider refuse the credential."),
            ),
            Proof::NoVerifyStep => (None, format!("The runbook has no verify step: {unproven}.")),
            Proof::Skipped { step, reason } => (
                Some(step),
                format!("Verify step `{step}` was skipped ({reason}): {unproven}."),
            ),
            Proof::Failed { step, error } => (
                Some(step),
                format!(
                    "Verify step `{step}` failed: the provider still accepted the credential, or could not be asked ({error}). Treat the credential as alive: the incident is not contained."
                ),
            ),
            Proof::Unsettled { step } if finished => (
                Some(step),
                format!("Verify step `{step}` did not finish: {unproven}."),
            ),
            Proof::Unsettled { step } => (
                Some(step),
                format!("Verify step `{step}` has not finished yet."),
            ),
        };
        ProofReport {
            status: proof.name().into(),
            step: step.cloned(),
            text,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub title: String,
    pub phase: Phase,
    pub action: String,
    pub status: String,
    pub attempts: u32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub duration: Option<String>,
    pub error: Option<String>,
    pub reason: Option<String>,
    pub approved_by: Option<String>,
    pub due_at: Option<String>,
    pub outputs: serde_json::Map<String, Value>,
}

/// One detector's report of the credential.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionReport {
    pub detected_at: String,
    pub source: String,
    pub detector: String,
    pub url: Option<String>,
    pub location: Option<String>,
    pub delivery: Option<String>,
    pub leaked_at: Option<String>,
}

impl DetectionReport {
    fn from(d: &Detection) -> Self {
        DetectionReport {
            detected_at: format_ts(&d.detected_at),
            source: d.source.clone(),
            detector: d.detector.clone(),
            url: d.url.clone(),
            location: d.location.clone(),
            delivery: d.delivery.clone(),
            leaked_at: d.leaked_at.as_ref().map(format_ts),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub phase: Phase,
    pub steps: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineEntry {
    pub ts: String,
    pub offset: String,
    pub event: String,
    pub step: Option<String>,
    pub attempt: Option<u32>,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub step: String,
    pub title: String,
    pub status: String,
    pub outputs: Vec<(String, String)>,
}

/// A manual task as the postmortem sees it.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub step: String,
    pub title: String,
    pub section: String,
    pub prompt: Option<String>,
    pub answer: Option<String>,
    pub by: Option<String>,
    pub answered_at: Option<String>,
    pub assignee: Option<String>,
    pub due: Option<String>,
    pub status: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub step: String,
    pub title: String,
    pub kind: String,
    pub due_at: Option<String>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Person {
    pub who: String,
    pub did: String,
    pub at: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Postmortem {
    pub root_cause: Vec<TaskReport>,
    pub went_well: Vec<TaskReport>,
    pub went_wrong: Vec<TaskReport>,
    pub lucky: Vec<TaskReport>,
    pub action_items: Vec<ActionItem>,
    /// Questions the runbook asks that nobody has answered yet.
    pub unanswered: usize,
    /// Answers given so far.
    pub answered: usize,
}

/// Whether a link may be followed from a document: `http`, `https` or
/// `mailto`, never `javascript:` or `data:`, which a reader's click would run.
fn is_safe_link(url: &str) -> bool {
    let scheme = url
        .split_once(':')
        .map(|(s, _)| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    matches!(scheme.as_str(), "http" | "https" | "mailto")
}

/// A preventive measure: a task someone owes, or an issue a step filed.
#[derive(Debug, Clone, Serialize)]
pub struct ActionItem {
    pub step: String,
    pub title: String,
    pub what: String,
    pub status: String,
    pub owner: Option<String>,
    pub due: Option<String>,
    pub url: Option<String>,
    pub done: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Observations {
    pub went_well: Vec<String>,
    pub went_wrong: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("the journal has no `incident_started` record")]
    NotStarted,
}

/// `T+1.234s`, `T+2m05.123s`, `T+1h02m05.123s` after the detection time.
pub fn offset(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let ms = (to - from).num_milliseconds();
    let sign = if ms < 0 { "-" } else { "+" };
    let ms = ms.unsigned_abs();
    let (h, m, s, milli) = (
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000,
    );
    if h > 0 {
        format!("T{sign}{h}h{m:02}m{s:02}.{milli:03}s")
    } else if m > 0 {
        format!("T{sign}{m}m{s:02}.{milli:03}s")
    } else {
        format!("T{sign}{s}.{milli:03}s")
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

/// A manual task's postmortem section: the one it names, else its phase's.
fn section_of(info: &StepInfo) -> Option<&str> {
    if info.action != "manual.task" {
        return None;
    }
    match (info.section.as_deref(), info.phase) {
        (Some(s), _) => Some(s),
        (None, Phase::Review) => Some("root_cause"),
        (None, Phase::Prevent) => Some("action_item"),
        (None, _) => None,
    }
}

/// `14d` after detection is a date; anything else is shown as written.
fn due_date(due: &str, detected_at: DateTime<Utc>) -> String {
    match parse_duration(due)
        .ok()
        .and_then(|d| chrono::Duration::from_std(d).ok())
    {
        Some(d) => (detected_at + d).format("%Y-%m-%d").to_string(),
        None => due.to_string(),
    }
}

impl Report {
    /// Replays journal records into the document's facts.
    pub fn from_records(records: &[Record]) -> Result<Report, ReportError> {
        let Some(
            started @ Event::IncidentStarted {
                detected_at,
                slo_ms,
                steps,
                ..
            },
        ) = records.first().map(|r| &r.event)
        else {
            return Err(ReportError::NotStarted);
        };
        let detected_at = *detected_at;
        let deadline = detected_at + chrono::Duration::milliseconds(*slo_ms as i64);
        let mut report = Report::started(started).ok_or(ReportError::NotStarted)?;
        let view = IncidentView::fold(records);
        report.steps = view.steps.iter().map(StepReport::from_view).collect();
        let mut revoked = None;
        let mut retry_waits = RetryWaits::new();
        for r in records {
            report.timeline.push(timeline_entry(r, detected_at));
            let at = format_ts(&r.ts);
            if let Some(person) = person(&r.event, &at) {
                report.people.push(person);
            }
            if let Event::IncidentFinished(crate::journal::Finished {
                outcome,
                revoked_at,
                time_to_revoke_ms,
                slo_met,
                ..
            }) = &r.event
            {
                report.outcome = Some(outcome.name().into());
                report.status = outcome.name().replace('_', " ");
                report.finished_at = Some(at);
                report.revoked_at = revoked_at.as_ref().map(format_ts);
                revoked = *revoked_at;
                report.time_to_revoke_ms = *time_to_revoke_ms;
                report.time_to_revoke = time_to_revoke_ms.map(human_ms);
                report.slo_met = Some(*slo_met);
                report.slo_margin = time_to_revoke_ms.map(|ms| human_ms(ms.abs_diff(*slo_ms)));
            }
            add_note(&mut report.notes, &view, &r.event);
            add_retry_wait(&mut retry_waits, &r.event);
        }

        report.detections = view.detections.iter().map(DetectionReport::from).collect();
        // A later detector may know of an earlier leak than the first did.
        report.leaked_at = view.leaked_at.as_ref().map(format_ts);
        let proven = report.prove(&view, detected_at);
        // Steps by phase, in run order within each phase.
        report.steps.sort_by_key(|s| s.phase);
        report.phases = phases(&report.steps);
        report.file_steps(&view, detected_at);
        report.leaks = leaks(&report.steps, &view);
        report.aws = AwsReport::build(&report.steps);
        report.observations = observe(&report, &retry_waits);
        report.chart = Chart::build(records, steps, detected_at, revoked, proven, deadline);
        if report.kind == Kind::Rotation.name() {
            report.rotation = Some(RotationReport::build(&view, &report.steps));
        }
        report.scorecard = Scorecard::from_records(records);
        if let Some(card) = &mut report.scorecard {
            card.compare(&report.id, &[]);
        }
        Ok(report)
    }

    /// The report as `incident_started` sets it out, without its steps: the
    /// person who started it the only one named.
    fn started(event: &Event) -> Option<Report> {
        let Event::IncidentStarted {
            incident,
            runbook,
            title,
            runbook_path,
            runbook_sha256,
            mode,
            detected_at,
            leaked_at,
            started_at,
            slo_ms,
            inputs,
            secrets,
            by,
            trigger,
            description,
            kind,
            ..
        } = event
        else {
            return None;
        };
        let deadline = *detected_at + chrono::Duration::milliseconds(*slo_ms as i64);
        let before_start = ms_between(*detected_at, *started_at);
        Some(Report {
            format: DOCUMENT_VERSION,
            id: incident.clone(),
            runbook: runbook.clone(),
            title: title.clone(),
            description: description.clone(),
            mode: *mode,
            rehearsal: mode.simulated(),
            drill: *mode == Mode::Drill,
            runbook_path: runbook_path.clone(),
            runbook_sha256: runbook_sha256.clone(),
            started_by: by.to_string(),
            status: "in progress".into(),
            date: detected_at.format("%Y-%m-%d").to_string(),
            detected_at: format_ts(detected_at),
            trigger: trigger.clone(),
            detected_before_start: (before_start > 0).then(|| human_ms(before_start)),
            started_at: format_ts(started_at),
            slo_ms: *slo_ms,
            slo: human_ms(*slo_ms),
            slo_deadline: format_ts(&deadline),
            leaked_at: leaked_at.as_ref().map(format_ts),
            audit_since: format_ts(&audit_since(*leaked_at, *detected_at)),
            inputs: inputs.clone(),
            secrets: secrets.clone(),
            people: vec![Person {
                who: by.to_string(),
                did: "started the incident".into(),
                at: format_ts(started_at),
            }],
            kind: kind.unwrap_or(Kind::Procedure).name().into(),
            ..Report::default()
        })
    }

    /// Whether the credential was proven dead, when, and how long it was
    /// exposed: from the leak (else detection) to its proven death (else
    /// the revocation). Returns when it was proven dead.
    fn prove(&mut self, view: &IncidentView, detected_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let proof = view.proof();
        self.proof = ProofReport::new(&proof, self.finished_at.is_some());
        let proven_at = match proof {
            Proof::Proven { at, .. } => Some(at),
            _ => None,
        };
        if let Some(at) = proven_at {
            let ms = ms_between(detected_at, at);
            self.credential_dead_at = Some(format_ts(&at));
            self.time_to_dead_ms = Some(ms);
            self.time_to_dead = Some(human_ms(ms));
        }
        let from = view.leaked_at.unwrap_or(detected_at);
        let until = proven_at.or(view.finished.and_then(|f| f.revoked_at));
        self.exposed_for_ms = until.map(|t| ms_between(from, t));
        self.exposed_for = self.exposed_for_ms.map(human_ms);
        proven_at
    }

    /// Files each step, in phase order, into the sections that show it: the
    /// postmortem, the resolution, findings, review, prevention and pending.
    fn file_steps(&mut self, view: &IncidentView, detected_at: DateTime<Utc>) {
        for s in &self.steps {
            let Some(v) = view.step(&s.id) else { continue };
            let section = section_of(&v.info);
            if let Some(section) = section {
                let t = task_report(s, v, section, detected_at);
                add_task_to_postmortem(&mut self.postmortem, t, section);
            } else if s.phase == Phase::Prevent {
                self.postmortem.action_items.push(filed_action_item(s));
            }
            match s.phase {
                Phase::Revoke | Phase::Replace | Phase::Update => self.resolution.push(s.clone()),
                Phase::Audit => self.findings.push(Finding {
                    step: s.id.clone(),
                    title: s.title.clone(),
                    status: s.status.clone(),
                    outputs: s
                        .outputs
                        .iter()
                        .filter(|(k, _)| !SHOWN_APART.contains(&(s.action.as_str(), k.as_str())))
                        .map(|(k, v)| (k.clone(), show(v)))
                        .collect(),
                }),
                Phase::Review if s.action == "manual.task" => {
                    let section = section.unwrap_or("root_cause");
                    self.review.push(task_report(s, v, section, detected_at))
                }
                Phase::Prevent => self.prevention.push(s.clone()),
                _ => {}
            }
            if let Some(p) = pending(s, v) {
                self.pending.push(p);
            }
        }
    }
}

impl StepReport {
    /// A step as its records leave it, timed from its first start.
    fn from_view(v: &StepView) -> StepReport {
        let duration_ms = v
            .started_at
            .zip(v.settled_at)
            .map(|(a, b)| ms_between(a, b));
        StepReport {
            id: v.info.id.clone(),
            title: v.info.title.clone(),
            phase: v.info.phase,
            action: v.info.action.clone(),
            status: status(&v.state).into(),
            attempts: v.attempts,
            started_at: v.started_at.as_ref().map(format_ts),
            finished_at: v.settled_at.as_ref().map(format_ts),
            duration_ms,
            duration: duration_ms.map(human_ms),
            error: v.last_error.clone(),
            reason: match &v.state {
                StepState::Skipped { reason } | StepState::Watching { reason, .. } => {
                    Some(reason.clone())
                }
                _ => None,
            },
            approved_by: match &v.approval {
                Some(Approval::Granted { by }) => Some(by.clone()),
                _ => None,
            },
            due_at: match &v.state {
                StepState::Watching { until, .. } => Some(format_ts(until)),
                _ => v.due_at.as_ref().map(format_ts),
            },
            outputs: v.outputs.clone(),
        }
    }

    /// An output that is a non-empty string, or a number, as text.
    pub(super) fn output_text(&self, name: &str) -> Option<String> {
        match self.outputs.get(name)? {
            Value::String(t) if !t.is_empty() => Some(t.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A list output; anything else (a rehearsal's placeholder) is no list.
    pub(super) fn output_list(&self, name: &str) -> &[Value] {
        self.outputs
            .get(name)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// The strings in a list output.
    pub(super) fn output_texts(&self, name: &str) -> Vec<String> {
        let texts = self.output_list(name).iter().filter_map(Value::as_str);
        texts.map(str::to_string).collect()
    }

    pub(super) fn output_u64(&self, name: &str) -> Option<u64> {
        self.outputs.get(name).and_then(Value::as_u64)
    }
}

/// An item of a list output, as the section shows it: empty if it is not
/// one (a rehearsal's placeholder).
pub(super) fn item<'a, T: Deserialize<'a> + Default>(v: &'a Value) -> T {
    T::deserialize(v).unwrap_or_default()
}

/// The document's word for a step's state: one not yet running is pending,
/// and one between attempts is still running.
fn status(state: &StepState) -> &'static str {
    match state {
        StepState::Waiting | StepState::AwaitingApproval => "pending",
        StepState::Retrying { .. } => "running",
        other => other.name(),
    }
}

/// step → (backoff waited in ms, the classes of its failed attempts, in
/// order, a class repeated in a row once)
type RetryWaits = BTreeMap<String, (u64, Vec<String>)>;

fn add_retry_wait(waits: &mut RetryWaits, event: &Event) {
    if let Event::AttemptFailed {
        step,
        class,
        retry_in_ms,
        ..
    } = event
    {
        let (waited, classes) = waits.entry(step.clone()).or_default();
        *waited += retry_in_ms;
        if classes.last() != Some(class) {
            classes.push(class.clone());
        }
    }
}

/// Collects an `incident.document` step's line (`with.note`), once each.
fn add_note(notes: &mut Vec<String>, view: &IncidentView, event: &Event) {
    if let Event::StepStarted { step, params, .. } = event
        && view
            .step(step)
            .is_some_and(|s| s.info.action == "incident.document")
        && let Some(note) = params
            .as_ref()
            .and_then(|p| p.get("note"))
            .and_then(Value::as_str)
            .filter(|n| !n.trim().is_empty())
        && !notes.iter().any(|n| n == note)
    {
        notes.push(note.to_string());
    }
}

/// A manual task as the postmortem shows it, filed under `section`.
fn task_report(
    s: &StepReport,
    v: &StepView,
    section: &str,
    detected_at: DateTime<Utc>,
) -> TaskReport {
    let task = v.task.clone().unwrap_or_default();
    let answered = task.answer.is_some();
    TaskReport {
        step: s.id.clone(),
        title: s.title.clone(),
        section: section.to_string(),
        prompt: v.task.as_ref().map(|t| t.prompt.clone()),
        answer: task.answer,
        by: task.by,
        answered_at: task.answered_at.as_ref().map(format_ts),
        assignee: task.meta.assignee,
        due: task.meta.due.map(|d| due_date(&d, detected_at)),
        status: match (answered, s.status.as_str()) {
            (true, _) => "answered".into(),
            (false, "open") => "not answered yet".into(),
            (false, "pending") => "not asked yet".into(),
            (false, other) => other.to_string(),
        },
    }
}

/// The line the timeline shows for one record.
fn timeline_entry(r: &Record, detected_at: DateTime<Utc>) -> TimelineEntry {
    TimelineEntry {
        ts: format_ts(&r.ts),
        offset: offset(detected_at, r.ts),
        event: r.event.name().into(),
        step: r.event.step().map(str::to_string),
        attempt: match &r.event {
            Event::StepStarted { attempt, .. }
            | Event::AttemptFailed { attempt, .. }
            | Event::StepSucceeded { attempt, .. } => Some(*attempt),
            Event::StepFailed { attempt, .. } if *attempt > 0 => Some(*attempt),
            _ => None,
        },
        text: r.event.describe(),
    }
}

/// Who did what, if the record is a person's act: approving, declining,
/// answering, interrupting, resuming, retrying, or running the follow-ups.
fn person(event: &Event, at: &str) -> Option<Person> {
    let (who, did) = match event {
        Event::ApprovalGranted { step, by } => (by.clone(), format!("approved `{step}`")),
        Event::ApprovalDenied { step, by, reason } => {
            (by.clone(), format!("did not approve `{step}` ({reason})"))
        }
        Event::TaskAnswered { step, by, .. } => (by.clone(), format!("answered `{step}`")),
        Event::IncidentInterrupted { by, signal } => {
            (by.to_string(), format!("interrupted it ({signal})"))
        }
        Event::IncidentResumed { by, .. } => (by.to_string(), "resumed it".into()),
        Event::IncidentRetried { by, retry, .. } => {
            (by.to_string(), format!("retried it (retry {retry})"))
        }
        Event::FollowUpsStarted { by, steps } => (
            by.to_string(),
            format!("ran the follow-ups {}", steps.join(", ")),
        ),
        _ => return None,
    };
    Some(Person {
        who,
        did,
        at: at.to_string(),
    })
}

/// The phases that have steps, each with its steps' ids in order.
fn phases(steps: &[StepReport]) -> Vec<PhaseReport> {
    Phase::ALL
        .into_iter()
        .filter_map(|phase| {
            let ids: Vec<String> = steps
                .iter()
                .filter(|s| s.phase == phase)
                .map(|s| s.id.clone())
                .collect();
            (!ids.is_empty()).then_some(PhaseReport { phase, steps: ids })
        })
        .collect()
}

/// Counts a manual task as answered or not, and files it in its section.
/// An unanswered action item is not a question left open, so it is not counted.
fn add_task_to_postmortem(pm: &mut Postmortem, t: TaskReport, section: &str) {
    if t.answer.is_some() {
        pm.answered += 1;
    } else if section != "action_item" {
        pm.unanswered += 1;
    }
    match section {
        "went_well" => pm.went_well.push(t),
        "went_wrong" => pm.went_wrong.push(t),
        "lucky" => pm.lucky.push(t),
        "action_item" => pm.action_items.push(ActionItem {
            what: (t.answer.clone().or(t.prompt)).unwrap_or_else(|| t.title.clone()),
            done: t.answer.is_some(),
            step: t.step,
            title: t.title,
            status: t.status,
            owner: t.assignee.or(t.by),
            due: t.due,
            url: None,
        }),
        _ => pm.root_cause.push(t),
    }
}

/// A prevent step that is not a task (an issue filed, say) as an action item;
/// its link is kept only if a reader may safely follow it.
fn filed_action_item(s: &StepReport) -> ActionItem {
    let url = s.outputs.get("url").map(show);
    let what = match &url {
        Some(u) if !is_safe_link(u) => format!(
            "{} (its link was not kept: only http, https and mailto links are)",
            s.title
        ),
        _ => s.title.clone(),
    };
    ActionItem {
        step: s.id.clone(),
        title: s.title.clone(),
        what,
        status: s.status.clone(),
        owner: None,
        due: s.due_at.clone(),
        url: url.filter(|u| is_safe_link(u)),
        done: s.status == "succeeded",
    }
}

/// What still waits on someone: a follow-up not yet due, or an open task.
fn pending(s: &StepReport, v: &StepView) -> Option<Pending> {
    let (kind, due_at, detail) = match s.status.as_str() {
        "scheduled" => (
            "follow-up",
            s.due_at.clone(),
            format!("`{}` runs when due", s.action),
        ),
        "watching" => (
            "watching",
            s.due_at.clone(),
            s.reason.clone().unwrap_or_default(),
        ),
        "open" => (
            "task",
            None,
            v.task
                .as_ref()
                .map(|t| t.prompt.clone())
                .unwrap_or_default(),
        ),
        _ => return None,
    };
    Some(Pending {
        step: s.id.clone(),
        title: s.title.clone(),
        kind: kind.into(),
        due_at,
        detail,
    })
}

/// What the journal alone shows about how the response went: the facts a
/// postmortem starts from, before anyone has said a word.
fn observe(r: &Report, retry_waits: &RetryWaits) -> Observations {
    let mut o = Observations::default();
    match (&r.time_to_revoke, r.slo_met, &r.slo_margin) {
        (Some(ttr), Some(true), Some(margin)) => o.went_well.push(format!(
            "Revoked {ttr} after detection: {margin} inside the {} SLO.",
            r.slo
        )),
        (Some(ttr), Some(false), Some(margin)) => o.went_wrong.push(format!(
            "Revocation took {ttr}: {margin} past the {} SLO.",
            r.slo
        )),
        (None, Some(_), _) => o
            .went_wrong
            .push("The credential was not revoked.".to_string()),
        _ => {}
    }
    match r.proof.status.as_str() {
        "proven" => o.went_well.push(format!(
            "Proven dead {} after detection: {}",
            r.time_to_dead.as_deref().unwrap_or("—"),
            r.proof.text
        )),
        "verify_unsettled" if r.finished_at.is_none() => {}
        // A response that revokes nothing has nothing to prove.
        _ if r.resolution.iter().all(|s| s.phase != Phase::Revoke) => {}
        _ => o
            .went_wrong
            .push(format!("Revocation is unproven. {}", r.proof.text)),
    }
    if let Some(before) = &r.detected_before_start {
        o.went_wrong.push(format!(
            "The response started {before} after detection; that time counts against the SLO."
        ));
    }
    // Provider calls only: a human's task has no attempts to count.
    let settled: Vec<&StepReport> = r
        .steps
        .iter()
        .filter(|s| s.action != "manual.task")
        .filter(|s| !matches!(s.status.as_str(), "pending" | "scheduled" | "skipped"))
        .collect();
    let first_try = settled
        .iter()
        .filter(|s| s.status == "succeeded" && s.attempts <= 1)
        .count();
    if !settled.is_empty() && first_try == settled.len() {
        o.went_well
            .push("Every action that ran succeeded at its first attempt.".to_string());
    } else if first_try > 0 {
        o.went_well.push(format!(
            "{first_try} of the {} actions that ran succeeded at their first attempt.",
            settled.len()
        ));
    }
    for s in &r.steps {
        if let Some((waited, classes)) = retry_waits.get(&s.id) {
            let end = match s.status.as_str() {
                "succeeded" => "before it succeeded",
                "failed" => "and still failed",
                _ => "so far",
            };
            o.went_wrong.push(format!(
                "`{}` needed {} attempts ({}) and waited {} in backoff {end}.",
                s.id,
                s.attempts,
                classes.join(", "),
                human_ms(*waited)
            ));
        } else if s.status == "failed" {
            o.went_wrong.push(format!(
                "`{}` failed: {}",
                s.id,
                s.error.as_deref().unwrap_or("no error recorded")
            ));
        }
        if s.status == "skipped"
            && let Some(reason) = &s.reason
            && !reason.starts_with("`when`")
        {
            o.went_wrong
                .push(format!("`{}` was skipped: {reason}.", s.id));
        }
    }
    o
}
