//! The incident document, built by replaying the journal: `incident.json`
//! (the facts, and the object every template receives) and `incident.md`
//! (rendered from `templates/incident.md.hbs`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use handlebars::Handlebars;
use serde::Serialize;
use serde_json::Value;

use crate::engine::clock::ms_between;
use crate::journal::{Event, Mode, Record, format_ts};
use crate::runbook::{Phase, human};

/// The document format this build writes.
pub const DOCUMENT_VERSION: u32 = 1;

pub const MARKDOWN_TEMPLATE: &str = include_str!("../../templates/incident.md.hbs");

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub format: u32,
    pub id: String,
    pub runbook: String,
    pub title: String,
    pub mode: Mode,
    pub rehearsal: bool,
    pub runbook_path: String,
    pub runbook_sha256: String,
    pub started_by: String,
    pub status: String,
    pub outcome: Option<String>,
    pub detected_at: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub revoked_at: Option<String>,
    pub time_to_revoke_ms: Option<u64>,
    pub time_to_revoke: Option<String>,
    pub slo_ms: u64,
    pub slo: String,
    pub slo_deadline: String,
    pub slo_met: Option<bool>,
    pub inputs: BTreeMap<String, String>,
    pub secrets: Vec<String>,
    pub steps: Vec<StepReport>,
    pub phases: Vec<PhaseReport>,
    pub timeline: Vec<TimelineEntry>,
    pub findings: Vec<Finding>,
    pub review: Vec<TaskReport>,
    pub prevention: Vec<StepReport>,
    pub pending: Vec<Pending>,
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

#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub step: String,
    pub prompt: Option<String>,
    pub answer: Option<String>,
    pub by: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub step: String,
    pub title: String,
    pub kind: String,
    pub due_at: Option<String>,
    pub detail: String,
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

/// One event as a sentence: the timeline's text and the display's line.
pub fn describe(event: &Event) -> String {
    match event {
        Event::IncidentStarted {
            runbook, mode, by, ..
        } => {
            format!(
                "incident started: runbook `{runbook}` ({}) by {by}",
                mode.name()
            )
        }
        Event::StepStarted { step, attempt, .. } => format!("`{step}` attempt {attempt} started"),
        Event::AttemptFailed {
            step,
            attempt,
            class,
            error,
            retry_in_ms,
        } => format!(
            "`{step}` attempt {attempt} failed ({class}): {error}; retrying in {}",
            human(std::time::Duration::from_millis(*retry_in_ms))
        ),
        Event::StepSucceeded { step, attempt, .. } => {
            format!("`{step}` succeeded on attempt {attempt}")
        }
        Event::StepFailed {
            step,
            attempt,
            class,
            error,
        } => {
            if *attempt == 0 {
                format!("`{step}` failed: {error}")
            } else {
                format!("`{step}` failed on attempt {attempt} ({class}): {error}")
            }
        }
        Event::StepSkipped { step, reason } => format!("`{step}` skipped: {reason}"),
        Event::StepScheduled { step, due_at } => format!(
            "`{step}` scheduled as a follow-up, due {}",
            format_ts(due_at)
        ),
        Event::ApprovalRequested { step, approvers } => {
            if approvers.is_empty() {
                format!("`{step}` waits for approval")
            } else {
                format!("`{step}` waits for approval from {}", approvers.join(", "))
            }
        }
        Event::ApprovalGranted { step, by } => format!("`{step}` approved by {by}"),
        Event::ApprovalDenied { step, by, reason } => {
            format!("`{step}` not approved ({reason}, {by})")
        }
        Event::TaskOpened { step, .. } => format!("`{step}` left open for a human"),
        Event::TaskAnswered { step, by, .. } => format!("`{step}` answered by {by}"),
        Event::IncidentFinished { outcome, .. } => format!("incident finished: {}", outcome.name()),
        Event::IncidentInterrupted { by, signal } => {
            format!("interrupted by {signal} ({by}): steps in flight finish, nothing new starts")
        }
        Event::IncidentResumed {
            by,
            rerun,
            held,
            repaired,
        } => {
            let mut text = format!("resumed by {by}");
            if !rerun.is_empty() {
                text.push_str(&format!(
                    "; re-running {}, in flight when it stopped",
                    rerun.join(", ")
                ));
            }
            if !held.is_empty() {
                text.push_str(&format!(
                    "; {} in flight when it stopped, not idempotent: held for a human to confirm",
                    held.join(", ")
                ));
            }
            if let Some(r) = repaired {
                text.push_str(&format!("; {r}"));
            }
            text
        }
        Event::FollowUpsStarted { by, steps } => {
            format!("follow-ups due: {} (run by {by})", steps.join(", "))
        }
        Event::FollowUpsFinished { outcome } => format!("follow-ups finished: {}", outcome.name()),
    }
}

impl Report {
    /// Replays journal records into the document's facts.
    pub fn from_records(records: &[Record]) -> Result<Report, ReportError> {
        let Some(Event::IncidentStarted {
            incident,
            runbook,
            title,
            runbook_path,
            runbook_sha256,
            mode,
            detected_at,
            started_at,
            slo_ms,
            inputs,
            secrets,
            by,
            steps,
        }) = records.first().map(|r| &r.event)
        else {
            return Err(ReportError::NotStarted);
        };
        let detected_at = *detected_at;
        let mut report = Report {
            format: DOCUMENT_VERSION,
            id: incident.clone(),
            runbook: runbook.clone(),
            title: title.clone(),
            mode: *mode,
            rehearsal: *mode == Mode::Rehearsal,
            runbook_path: runbook_path.clone(),
            runbook_sha256: runbook_sha256.clone(),
            started_by: by.to_string(),
            status: "in progress".into(),
            outcome: None,
            detected_at: format_ts(&detected_at),
            started_at: format_ts(started_at),
            finished_at: None,
            revoked_at: None,
            time_to_revoke_ms: None,
            time_to_revoke: None,
            slo_ms: *slo_ms,
            slo: human(std::time::Duration::from_millis(*slo_ms)),
            slo_deadline: format_ts(
                &(detected_at + chrono::Duration::milliseconds(*slo_ms as i64)),
            ),
            slo_met: None,
            inputs: inputs.clone(),
            secrets: secrets.clone(),
            steps: steps
                .iter()
                .map(|s| StepReport {
                    id: s.id.clone(),
                    title: s.title.clone(),
                    phase: s.phase,
                    action: s.action.clone(),
                    status: "pending".into(),
                    attempts: 0,
                    started_at: None,
                    finished_at: None,
                    duration_ms: None,
                    duration: None,
                    error: None,
                    reason: None,
                    approved_by: None,
                    due_at: None,
                    outputs: serde_json::Map::new(),
                })
                .collect(),
            phases: Vec::new(),
            timeline: Vec::new(),
            findings: Vec::new(),
            review: Vec::new(),
            prevention: Vec::new(),
            pending: Vec::new(),
        };
        let mut first_start: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
        let mut prompts: BTreeMap<String, String> = BTreeMap::new();
        let mut answers: BTreeMap<String, (String, String)> = BTreeMap::new();

        for r in records {
            let text = describe(&r.event);
            report.timeline.push(TimelineEntry {
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
                text,
            });

            let step_id = r.event.step().map(str::to_string);
            let Some(s) = step_id
                .as_deref()
                .and_then(|id| report.steps.iter_mut().find(|s| s.id == id))
            else {
                if let Event::IncidentFinished {
                    outcome,
                    revoked_at,
                    time_to_revoke_ms,
                    slo_met,
                } = &r.event
                {
                    report.outcome = Some(outcome.name().into());
                    report.status = outcome.name().replace('_', " ");
                    report.finished_at = Some(format_ts(&r.ts));
                    report.revoked_at = revoked_at.as_ref().map(format_ts);
                    report.time_to_revoke_ms = *time_to_revoke_ms;
                    report.time_to_revoke =
                        time_to_revoke_ms.map(|ms| human(std::time::Duration::from_millis(ms)));
                    report.slo_met = Some(*slo_met);
                }
                continue;
            };
            let finish = |s: &mut StepReport, status: &str| {
                s.status = status.into();
                s.finished_at = Some(format_ts(&r.ts));
                if let Some(t0) = first_start.get(&s.id) {
                    let ms = ms_between(*t0, r.ts);
                    s.duration_ms = Some(ms);
                    s.duration = Some(human(std::time::Duration::from_millis(ms)));
                }
            };
            match &r.event {
                Event::StepStarted { attempt, .. } => {
                    first_start.entry(s.id.clone()).or_insert(r.ts);
                    s.started_at.get_or_insert_with(|| format_ts(&r.ts));
                    s.attempts = (*attempt).max(s.attempts);
                    s.status = "running".into();
                }
                Event::AttemptFailed { error, .. } => s.error = Some(error.clone()),
                Event::StepSucceeded { outputs, .. } => {
                    s.outputs = outputs.clone();
                    s.error = None;
                    finish(s, "succeeded");
                }
                Event::StepFailed { error, .. } => {
                    s.error = Some(error.clone());
                    finish(s, "failed");
                }
                Event::StepSkipped { reason, .. } => {
                    s.reason = Some(reason.clone());
                    finish(s, "skipped");
                }
                Event::StepScheduled { due_at, .. } => {
                    s.status = "scheduled".into();
                    s.due_at = Some(format_ts(due_at));
                }
                Event::ApprovalGranted { by, .. } => s.approved_by = Some(by.clone()),
                Event::TaskOpened { prompt, .. } => {
                    prompts.insert(s.id.clone(), prompt.clone());
                    finish(s, "open");
                }
                Event::TaskAnswered {
                    prompt, answer, by, ..
                } => {
                    prompts.insert(s.id.clone(), prompt.clone());
                    answers.insert(s.id.clone(), (answer.clone(), by.clone()));
                }
                _ => {}
            }
        }

        // Steps by phase, in run order within each phase.
        report.steps.sort_by_key(|s| s.phase);
        for phase in Phase::ALL {
            let ids: Vec<String> = report
                .steps
                .iter()
                .filter(|s| s.phase == phase)
                .map(|s| s.id.clone())
                .collect();
            if !ids.is_empty() {
                report.phases.push(PhaseReport { phase, steps: ids });
            }
        }
        for s in &report.steps {
            match s.phase {
                Phase::Audit => report.findings.push(Finding {
                    step: s.id.clone(),
                    title: s.title.clone(),
                    status: s.status.clone(),
                    outputs: s
                        .outputs
                        .iter()
                        .map(|(k, v)| (k.clone(), show(v)))
                        .collect(),
                }),
                Phase::Review if s.action == "manual.task" => {
                    let answer = answers.get(&s.id);
                    report.review.push(TaskReport {
                        step: s.id.clone(),
                        prompt: prompts.get(&s.id).cloned(),
                        answer: answer.map(|a| a.0.clone()),
                        by: answer.map(|a| a.1.clone()),
                    });
                }
                Phase::Prevent => report.prevention.push(s.clone()),
                _ => {}
            }
            match s.status.as_str() {
                "scheduled" => report.pending.push(Pending {
                    step: s.id.clone(),
                    title: s.title.clone(),
                    kind: "follow-up".into(),
                    due_at: s.due_at.clone(),
                    detail: format!("`{}` runs when due", s.action),
                }),
                "open" => report.pending.push(Pending {
                    step: s.id.clone(),
                    title: s.title.clone(),
                    kind: "task".into(),
                    due_at: None,
                    detail: prompts.get(&s.id).cloned().unwrap_or_default(),
                }),
                _ => {}
            }
        }
        Ok(report)
    }
}

static TEMPLATES: LazyLock<Handlebars<'static>> = LazyLock::new(|| {
    let mut hb = Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_template_string("incident.md", MARKDOWN_TEMPLATE)
        .expect("the embedded incident.md.hbs is valid");
    hb
});

pub fn render_markdown(report: &Report) -> String {
    TEMPLATES.render("incident.md", report).unwrap_or_else(|e| {
        format!(
            "# {}\n\nThe document template failed to render: {e}\n",
            report.id
        )
    })
}

/// Rewrites `incident.json` and `incident.md` from the records, each
/// atomically (a crash leaves the previous version, never half a file).
pub fn write(dir: &Path, records: &[Record]) -> std::io::Result<()> {
    let report = Report::from_records(records).map_err(std::io::Error::other)?;
    let json = serde_json::to_string_pretty(&report).map_err(std::io::Error::other)?;
    write_atomic(&dir.join("incident.json"), json.as_bytes())?;
    write_atomic(
        &dir.join("incident.md"),
        render_markdown(&report).as_bytes(),
    )
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    // A name of its own per write: two writers never share a temporary file.
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("document");
    let tmp = path.with_file_name(format!(".{name}.{:08x}.tmp", rand::random::<u32>()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_read_like_a_stopwatch() {
        let t0 = DateTime::parse_from_rfc3339("2026-11-22T23:10:01.000Z")
            .unwrap()
            .with_timezone(&Utc);
        let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
        assert_eq!(offset(t0, at(1234)), "T+1.234s");
        assert_eq!(offset(t0, at(125_123)), "T+2m05.123s");
        assert_eq!(offset(t0, at(3_725_000)), "T+1h02m05.000s");
        assert_eq!(offset(t0, at(-500)), "T-0.500s");
    }
}
