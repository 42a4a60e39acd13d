//! The journal's event types. Every record carries the format version `v`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::runbook::Phase;

/// The journal format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub v: u32,
    pub seq: u64,
    #[serde(with = "millis")]
    pub ts: DateTime<Utc>,
    #[serde(flatten)]
    pub event: Event,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Live,
    Rehearsal,
    /// A rehearsal people play: simulated providers at a pace, with the
    /// team answering its approvals and tasks.
    Drill,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Rehearsal => "rehearsal",
            Mode::Drill => "drill",
        }
    }

    /// Whether simulated providers answer its actions (a rehearsal or a drill).
    pub fn simulated(self) -> bool {
        self != Mode::Live
    }
}

/// Who did something: an OS user on a host (or, later, a Slack user).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub user: String,
    pub host: String,
}

impl Actor {
    /// The user running this process, on this host (read once).
    pub fn current() -> Self {
        static CURRENT: std::sync::OnceLock<Actor> = std::sync::OnceLock::new();
        CURRENT
            .get_or_init(|| {
                let user = std::env::var("USER")
                    .or_else(|_| std::env::var("LOGNAME"))
                    .unwrap_or_else(|_| "unknown".into());
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .or_else(|_| std::env::var("HOSTNAME"))
                    .unwrap_or_else(|_| "unknown".into());
                Self { user, host }
            })
            .clone()
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.host)
    }
}

/// A step as the incident saw it when it started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepInfo {
    pub id: String,
    pub title: String,
    pub phase: Phase,
    pub action: String,
    pub needs: Vec<String>,
    pub deferred: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<u64>,
    /// A manual task's postmortem section (`with.section`), so the document
    /// can place it before anyone answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// A verify step: its success proves the leaked credential dead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub proves_dead: bool,
}

/// Who owes a manual task's answer, and by when: its `assignee` and `due`,
/// as rendered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMeta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step succeeded (or was skipped, scheduled or left open) and
    /// revocation met its SLO.
    Succeeded,
    /// A step failed, or the incident was aborted.
    Failed,
    /// Every step succeeded but revocation missed its SLO.
    SloMissed,
    /// Interrupted (Ctrl-C): the journal is consistent and can be resumed.
    Interrupted,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::SloMissed => "slo_missed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    IncidentStarted {
        incident: String,
        runbook: String,
        title: String,
        runbook_path: String,
        runbook_sha256: String,
        mode: Mode,
        #[serde(with = "millis")]
        detected_at: DateTime<Utc>,
        /// When the credential leaked (`--leaked-at`, or the commit a detector
        /// found it in), if known: the start of the audit window.
        #[serde(default, with = "millis_opt", skip_serializing_if = "Option::is_none")]
        leaked_at: Option<DateTime<Utc>>,
        #[serde(with = "millis")]
        started_at: DateTime<Utc>,
        slo_ms: u64,
        inputs: BTreeMap<String, String>,
        secrets: Vec<String>,
        by: Actor,
        steps: Vec<StepInfo>,
        /// What set the response off (`--trigger`): a scanner's alert, a
        /// report from a colleague. Journals before it was added lack it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<String>,
        /// The runbook's own description of the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
        /// The runbook's kind: a rotation has no SLO, and its document says
        /// so. Journals before it was added lack it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<crate::runbook::Kind>,
    },
    StepStarted {
        step: String,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<serde_json::Value>,
    },
    AttemptFailed {
        step: String,
        attempt: u32,
        class: String,
        error: String,
        retry_in_ms: u64,
    },
    /// An attempt's note of the effect it had (the deployment it started),
    /// journaled before it goes on: the step's next attempt, in this run
    /// or after a resume, carries on from it instead of repeating it.
    StepNoted {
        step: String,
        attempt: u32,
        note: serde_json::Value,
    },
    StepSucceeded {
        step: String,
        attempt: u32,
        #[serde(default)]
        outputs: serde_json::Map<String, serde_json::Value>,
    },
    StepFailed {
        step: String,
        attempt: u32,
        class: String,
        error: String,
    },
    StepSkipped {
        step: String,
        reason: String,
    },
    /// A verify step succeeded: the provider refused the leaked credential.
    CredentialProvenDead {
        step: String,
        #[serde(with = "millis")]
        at: DateTime<Utc>,
    },
    StepScheduled {
        step: String,
        #[serde(with = "millis")]
        due_at: DateTime<Utc>,
    },
    /// What the step watches for has not happened yet (the old key is
    /// still in use, or its quiet window has not passed): the step looks
    /// again at `until`.
    StepWatching {
        step: String,
        attempt: u32,
        #[serde(with = "millis")]
        until: DateTime<Utc>,
        reason: String,
    },
    ApprovalRequested {
        step: String,
        approvers: Vec<String>,
    },
    ApprovalGranted {
        step: String,
        by: String,
    },
    ApprovalDenied {
        step: String,
        by: String,
        reason: String,
    },
    TaskOpened {
        step: String,
        prompt: String,
        #[serde(default, flatten)]
        task: TaskMeta,
    },
    TaskAnswered {
        step: String,
        prompt: String,
        answer: String,
        by: String,
        #[serde(default, flatten)]
        task: TaskMeta,
    },
    /// Someone stopped the incident (Ctrl-C, SIGTERM): nothing new starts.
    IncidentInterrupted {
        by: Actor,
        signal: String,
    },
    /// `quench resume` carries on from the journal.
    IncidentResumed {
        by: Actor,
        /// Steps that were in flight and run again (idempotent, or confirmed).
        rerun: Vec<String>,
        /// Steps that were in flight and wait for a human to confirm.
        held: Vec<String>,
        /// A torn last line (a crash mid-write) that was cut off, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        repaired: Option<String>,
    },
    /// A failed incident is tried again (`quench tick`, a scheduled
    /// rotation's backoff over): its failed steps run again, and nothing
    /// that succeeded does. `retry` counts from 1.
    IncidentRetried {
        by: Actor,
        retry: u32,
        /// The steps that had failed: they run again.
        steps: Vec<String>,
        /// The steps that had been skipped: weighed again (their `when`,
        /// their needs), since what they waited for may succeed this time.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reweighed: Vec<String>,
    },
    /// A detector reported the credential: what started the incident, or
    /// another location or detector of the same credential, joining it.
    Detection(Detection),
    /// `quench tick` runs follow-ups that have come due.
    FollowUpsStarted {
        by: Actor,
        steps: Vec<String>,
    },
    FollowUpsFinished {
        outcome: Outcome,
    },
    /// The incident is a drill: its simulated clock runs `pace` times as
    /// fast as the wall clock, and people answer what the scenario does
    /// not script.
    DrillStarted {
        pace: u32,
        /// The channel the drill plays in, when it plays in Slack.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channel: Option<String>,
        /// The runbook's targets for its people (`drill.approve_within`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        approve_within_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        answer_within_ms: Option<u64>,
    },
    /// A drill's inject: an event the facilitator (or the scenario's
    /// timeline) throws at the team, and the faults it applies.
    InjectFired {
        name: String,
        message: String,
        /// `scenario` (at its time or trigger) or who fired it by hand.
        by: String,
        /// The drill a second leak started, linked to this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        linked: Option<String>,
    },
    /// The inject's faults are over: what it broke works again.
    InjectEnded {
        name: String,
    },
    IncidentFinished(Finished),
}

/// How the incident ended: its outcome, and when the credential was
/// revoked and proven dead.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    pub outcome: Outcome,
    #[serde(default, with = "millis_opt", skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_revoke_ms: Option<u64>,
    pub slo_met: bool,
    /// When the last verify step proved the credential dead; none when
    /// a verify step did not succeed, or the runbook has none.
    #[serde(default, with = "millis_opt", skip_serializing_if = "Option::is_none")]
    pub credential_dead_at: Option<DateTime<Utc>>,
    /// From detection to `credential_dead_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_to_dead_ms: Option<u64>,
}

/// How far before detection the audit window starts when nobody said when
/// the credential leaked: CloudTrail's whole history.
pub const DEFAULT_AUDIT_LOOKBACK: std::time::Duration = std::time::Duration::from_secs(90 * 86_400);

/// Where the audit window starts: the leak, else [`DEFAULT_AUDIT_LOOKBACK`]
/// before detection.
pub fn audit_since(leaked_at: Option<DateTime<Utc>>, detected_at: DateTime<Utc>) -> DateTime<Utc> {
    leaked_at.unwrap_or_else(|| {
        detected_at - chrono::Duration::from_std(DEFAULT_AUDIT_LOOKBACK).unwrap_or_default()
    })
}

/// How a detector reported a credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// `github`, `aws` or `generic:NAME`.
    pub source: String,
    /// What found it: `GitHub secret scanning (github_personal_access_token)`.
    pub detector: String,
    /// The detector's delivery or event id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<String>,
    /// Where a person reads the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the credential was found (repository, commit, path), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(with = "millis")]
    pub detected_at: DateTime<Utc>,
    #[serde(default, with = "millis_opt", skip_serializing_if = "Option::is_none")]
    pub leaked_at: Option<DateTime<Utc>>,
    /// The phases its trigger let run without a person: every other step
    /// waited for an approval. Resuming the incident keeps it so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unattended: Vec<String>,
}

impl Detection {
    /// One line: what found it, where, and how it came.
    pub fn describe(&self) -> String {
        let mut text = format!("detected by {}", self.detector);
        if let Some(l) = &self.location {
            text.push_str(&format!(" in {l}"));
        }
        if let Some(u) = &self.url {
            text.push_str(&format!(" ({u})"));
        }
        if let Some(d) = &self.delivery {
            text.push_str(&format!(", delivery {d}"));
        }
        text
    }
}

/// `t` to the whole millisecond, as a journal line holds it.
pub fn whole_ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl Event {
    /// Its times to the whole millisecond, as its journal line holds them,
    /// so the record is what the line reads back as.
    pub fn to_whole_ms(&mut self) {
        match self {
            Event::IncidentStarted {
                detected_at,
                leaked_at,
                started_at,
                ..
            } => {
                *detected_at = whole_ms(*detected_at);
                *leaked_at = leaked_at.map(whole_ms);
                *started_at = whole_ms(*started_at);
            }
            Event::Detection(d) => {
                d.detected_at = whole_ms(d.detected_at);
                d.leaked_at = d.leaked_at.map(whole_ms);
            }
            Event::StepScheduled { due_at, .. } => *due_at = whole_ms(*due_at),
            Event::StepWatching { until, .. } => *until = whole_ms(*until),
            Event::CredentialProvenDead { at, .. } => *at = whole_ms(*at),
            Event::IncidentFinished(f) => {
                f.revoked_at = f.revoked_at.map(whole_ms);
                f.credential_dead_at = f.credential_dead_at.map(whole_ms);
            }
            _ => {}
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Event::IncidentStarted { .. } => "incident_started",
            Event::StepStarted { .. } => "step_started",
            Event::AttemptFailed { .. } => "attempt_failed",
            Event::StepNoted { .. } => "step_noted",
            Event::StepSucceeded { .. } => "step_succeeded",
            Event::StepFailed { .. } => "step_failed",
            Event::StepSkipped { .. } => "step_skipped",
            Event::CredentialProvenDead { .. } => "credential_proven_dead",
            Event::StepScheduled { .. } => "step_scheduled",
            Event::StepWatching { .. } => "step_watching",
            Event::ApprovalRequested { .. } => "approval_requested",
            Event::ApprovalGranted { .. } => "approval_granted",
            Event::ApprovalDenied { .. } => "approval_denied",
            Event::TaskOpened { .. } => "task_opened",
            Event::TaskAnswered { .. } => "task_answered",
            Event::IncidentInterrupted { .. } => "incident_interrupted",
            Event::IncidentResumed { .. } => "incident_resumed",
            Event::IncidentRetried { .. } => "incident_retried",
            Event::Detection(_) => "detection",
            Event::FollowUpsStarted { .. } => "follow_ups_started",
            Event::FollowUpsFinished { .. } => "follow_ups_finished",
            Event::DrillStarted { .. } => "drill_started",
            Event::InjectFired { .. } => "inject_fired",
            Event::InjectEnded { .. } => "inject_ended",
            Event::IncidentFinished(_) => "incident_finished",
        }
    }

    pub fn step(&self) -> Option<&str> {
        match self {
            Event::StepStarted { step, .. }
            | Event::AttemptFailed { step, .. }
            | Event::StepNoted { step, .. }
            | Event::StepSucceeded { step, .. }
            | Event::StepFailed { step, .. }
            | Event::StepSkipped { step, .. }
            | Event::CredentialProvenDead { step, .. }
            | Event::StepScheduled { step, .. }
            | Event::StepWatching { step, .. }
            | Event::ApprovalRequested { step, .. }
            | Event::ApprovalGranted { step, .. }
            | Event::ApprovalDenied { step, .. }
            | Event::TaskOpened { step, .. }
            | Event::TaskAnswered { step, .. } => Some(step),
            _ => None,
        }
    }

    /// Whether this event settles its step for this incident.
    pub fn is_step_terminal(&self) -> bool {
        matches!(
            self,
            Event::StepSucceeded { .. }
                | Event::StepFailed { .. }
                | Event::StepSkipped { .. }
                | Event::StepScheduled { .. }
                | Event::StepWatching { .. }
                | Event::TaskOpened { .. }
        )
    }
}

pub use crate::time::format_ts;

impl Event {
    /// One event as a sentence: the timeline's text, the display's line
    /// and the log's.
    pub fn describe(&self) -> String {
        let human_ms = |ms: u64| crate::time::human(std::time::Duration::from_millis(ms));
        match self {
            Event::IncidentStarted {
                runbook, mode, by, ..
            } => {
                format!(
                    "incident started: runbook `{runbook}` ({}) by {by}",
                    mode.name()
                )
            }
            Event::StepStarted { step, attempt, .. } => {
                format!("`{step}` attempt {attempt} started")
            }
            Event::AttemptFailed {
                step,
                attempt,
                class,
                error,
                retry_in_ms,
            } => format!(
                "`{step}` attempt {attempt} failed ({class}): {error}; retrying in {}",
                human_ms(*retry_in_ms)
            ),
            Event::StepNoted {
                step,
                attempt,
                note,
            } => format!("`{step}` attempt {attempt} noted {note}"),
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
            Event::CredentialProvenDead { step, .. } => {
                format!("`{step}` proved the credential dead: the provider refused it")
            }
            Event::StepScheduled { step, due_at } => format!(
                "`{step}` scheduled as a follow-up, due {}",
                format_ts(due_at)
            ),
            Event::StepWatching {
                step,
                until,
                reason,
                ..
            } => format!(
                "`{step}` not done yet: {reason}; looks again at {}",
                format_ts(until)
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
            Event::Detection(d) => d.describe(),
            Event::DrillStarted { .. } | Event::InjectFired { .. } | Event::InjectEnded { .. } => {
                drill_sentence(self)
            }
            lifecycle => lifecycle_sentence(lifecycle),
        }
    }
}

/// How an incident (or its follow-ups) ended, stopped or carried on, as a
/// sentence.
fn lifecycle_sentence(event: &Event) -> String {
    match event {
        Event::IncidentFinished(f) => format!("incident finished: {}", f.outcome.name()),
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
        Event::IncidentRetried {
            by, retry, steps, ..
        } => {
            let steps: Vec<String> = steps.iter().map(|s| format!("`{s}`")).collect();
            format!(
                "retry {retry} by {by}: {} failed and runs again; nothing that succeeded does",
                steps.join(", ")
            )
        }
        Event::FollowUpsStarted { by, steps } => {
            format!("follow-ups due: {} (run by {by})", steps.join(", "))
        }
        Event::FollowUpsFinished { outcome } => {
            format!("follow-ups finished: {}", outcome.name())
        }
        other => other.name().to_string(),
    }
}

/// A drill's own events as sentences.
fn drill_sentence(event: &Event) -> String {
    match event {
        Event::DrillStarted { pace, .. } => format!("DRILL at {} pace", pace_name(*pace)),
        Event::InjectFired {
            name,
            message,
            by,
            linked,
        } => match linked {
            Some(id) => format!("inject `{name}` ({by}): {message}; {id} responds to it"),
            None => format!("inject `{name}` ({by}): {message}"),
        },
        Event::InjectEnded { name } => format!("inject `{name}` is over"),
        other => other.name().to_string(),
    }
}

/// A drill's pace as `--pace` takes it: `real`, or `20x`.
pub fn pace_name(pace: u32) -> String {
    if pace <= 1 {
        "real".into()
    } else {
        format!("{pace}x")
    }
}

pub mod millis {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_ts(ts))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        parse(&String::deserialize(d)?)
    }

    pub(super) fn parse<E: serde::de::Error>(s: &str) -> Result<DateTime<Utc>, E> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(E::custom)
    }
}

pub mod millis_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(ts: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match ts {
            Some(t) => super::millis::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::millis::parse(&s)).transpose()
    }
}
