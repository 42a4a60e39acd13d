//! The validated runbook: what the engine runs. Every reference in it has
//! been checked, so the engine never meets an unknown step, action or input.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::diagnostic::SourceFile;
use crate::providers::ActionSpec;

/// A step id: `[a-z][a-z0-9_]*`, unique within its runbook.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StepId(pub String);

impl StepId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The eight phases of a compromise response, in the order they are told.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    #[default]
    Revoke,
    Replace,
    Audit,
    Notify,
    Update,
    Document,
    Review,
    Prevent,
}

impl Phase {
    pub const ALL: [Phase; 8] = [
        Phase::Revoke,
        Phase::Replace,
        Phase::Audit,
        Phase::Notify,
        Phase::Update,
        Phase::Document,
        Phase::Review,
        Phase::Prevent,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Revoke => "revoke",
            Phase::Replace => "replace",
            Phase::Audit => "audit",
            Phase::Notify => "notify",
            Phase::Update => "update",
            Phase::Document => "document",
            Phase::Review => "review",
            Phase::Prevent => "prevent",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The response to a leaked credential: an SLO on revocation.
    Compromise,
    Procedure,
    /// A scheduled, zero-downtime replacement of a healthy credential: no
    /// SLO; `[[rotations]]` schedules it and `quench tick` starts it.
    Rotation,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Compromise, Kind::Procedure, Kind::Rotation];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Compromise => "compromise",
            Kind::Procedure => "procedure",
            Kind::Rotation => "rotation",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// Start nothing new; steps in flight finish; the incident fails.
    Abort,
    /// Carry on with every step that does not depend on this one.
    Continue,
}

/// Attempts and the exponential backoff between them.
///
/// The wait before attempt `n+1` is `min(initial · 2^(n-1), max)` plus a
/// random jitter of up to 100% of it — unless a rate-limited provider said
/// when to come back (`Retry-After`): then exactly that.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    /// Three attempts, 200 ms then 400 ms apart (before jitter), capped at 5 s.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        attempts: 3,
        initial: Duration::from_millis(200),
        max: Duration::from_secs(5),
    };

    /// The delays between attempts, jittered.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.initial)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .with_jitter()
            .with_max_times(self.attempts.saturating_sub(1) as usize)
            .build()
    }
}

/// A step's time limit for one attempt when the runbook names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The revocation SLO when the runbook names none: the 5 minutes users ask for.
pub const DEFAULT_REVOKE_WITHIN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Input {
    pub name: String,
    pub description: Option<String>,
    pub pattern: Option<regex::Regex>,
    pub default: Option<String>,
    pub example: Option<String>,
}

impl Input {
    pub fn required(&self) -> bool {
        self.default.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct SecretDecl {
    pub name: String,
    pub description: Option<String>,
    /// A run may leave it out: the steps that read it are then skipped.
    pub optional: bool,
}

#[derive(Debug, Clone)]
pub struct Approval {
    pub approvers: Vec<String>,
}

/// An output a step makes available to the steps after it.
#[derive(Debug, Clone)]
pub struct OutputDecl {
    pub name: String,
    pub secret: bool,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: StepId,
    pub name: Option<String>,
    pub phase: Phase,
    pub action: &'static ActionSpec,
    /// Parameters as written; strings are templates.
    pub with: serde_json::Map<String, serde_json::Value>,
    pub needs: Vec<StepId>,
    /// Run after these have settled, whatever their result.
    pub settled: Vec<StepId>,
    pub when: Option<String>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub on_failure: OnFailure,
    pub approval: Option<Approval>,
    /// Run this long after the steps it needs settled (after the incident
    /// started, if it needs none), as a follow-up.
    pub after: Option<Duration>,
    /// `after` is set on this step or on a step it needs: it is not run in
    /// the incident itself.
    pub deferred: bool,
    pub outputs: Vec<OutputDecl>,
    /// Running it again does no harm: declared, or known of its action (an
    /// HTTP method that is idempotent by definition).
    pub idempotent: bool,
    /// The secrets its parameters read.
    pub secrets: Vec<String>,
}

impl Step {
    /// When the step starts, as `plan` says it: at once, or after the steps
    /// it needs, and after those it waits for whatever their result.
    pub fn wait_text(&self) -> String {
        let ids = |list: &[StepId]| {
            list.iter()
                .map(StepId::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (self.needs.is_empty(), self.settled.is_empty()) {
            (true, true) => "starts at once".into(),
            (false, true) => format!("after {}", ids(&self.needs)),
            (true, false) => format!("after {}, whatever their result", ids(&self.settled)),
            (false, false) => format!(
                "after {}; and after {}, whatever their result",
                ids(&self.needs),
                ids(&self.settled)
            ),
        }
    }

    /// Every step this one waits for: those it needs, then those it runs
    /// after whatever their result.
    pub fn waits_for(&self) -> impl Iterator<Item = &StepId> {
        self.needs.iter().chain(&self.settled)
    }

    pub fn title(&self) -> &str {
        self.name.as_deref().unwrap_or(self.id.as_str())
    }

    /// Counts towards time to revoke: a `revoke` step run in the incident.
    pub fn is_slo_revoke(&self) -> bool {
        self.phase == Phase::Revoke && !self.deferred
    }

    /// A verify step: its success proves the leaked credential dead (the
    /// provider refused it). Its action says so (`proves_dead`), or it is an
    /// `http.request` that waits `until_status` the API answers a refusal.
    pub fn proves_dead(&self) -> bool {
        self.action.proves_dead
            || (self.action.name == "http.request" && self.with.contains_key("until_status"))
    }
}

/// How soon a drill's people should approve and answer, from its start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrillTargets {
    pub approve_within: Option<Duration>,
    pub answer_within: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct Runbook {
    pub name: String,
    pub title: String,
    pub kind: Kind,
    pub description: Option<String>,
    pub revoke_within: Duration,
    /// What a drill's scorecard holds its people to.
    pub drill: DrillTargets,
    pub inputs: Vec<Input>,
    pub secrets: Vec<SecretDecl>,
    /// In file order, which is also a valid topological order.
    pub steps: Vec<Step>,
    pub source: SourceFile,
    /// SHA-256 of the file, so an incident records exactly which version ran.
    pub hash: String,
}

impl Runbook {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id.as_str() == id)
    }

    pub fn input(&self, name: &str) -> Option<&Input> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// For a response nobody started by hand: every step outside
    /// `unattended` waits for an approval, unless it changes nothing
    /// outside (the audit, document and review phases, manual tasks, the
    /// document itself, an action that only asks whether the leaked
    /// credential still works). A step's own `approval:` is kept as written.
    pub fn gate(&mut self, unattended: &[Phase]) {
        for step in &mut self.steps {
            let harmless = matches!(step.phase, Phase::Audit | Phase::Document | Phase::Review)
                || step.action.proves_dead
                || matches!(
                    step.action.provider,
                    crate::providers::Provider::Manual | crate::providers::Provider::Incident
                );
            if !harmless && !unattended.contains(&step.phase) && step.approval.is_none() {
                step.approval = Some(Approval {
                    approvers: Vec::new(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps_with_jitter_below_double() {
        let p = RetryPolicy {
            attempts: 6,
            initial: Duration::from_millis(100),
            max: Duration::from_millis(400),
        };
        let d: Vec<_> = p.delays().collect();
        assert_eq!(d.len(), 5);
        let floors = [100, 200, 400, 400, 400];
        for (got, floor) in d.iter().zip(floors) {
            let ms = got.as_millis() as u64;
            assert!(ms >= floor && ms <= floor * 2, "{ms} vs {floor}");
        }
    }
}
