//! One typed view of an incident, folded from its records: each step's
//! state, attempts, outputs, approval and task, and how the incident ended.
//! Resume, the terminal display, the Slack status message and the document
//! read the incident through it, so they agree on what each record means.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Actor, Detection, Event, Finished, Mode, Record, StepInfo, TaskMeta};

/// Where a step stands.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StepState {
    /// Not started yet.
    #[default]
    Waiting,
    /// Asked for an approval, and waiting for it.
    AwaitingApproval,
    /// An attempt is in flight.
    Running {
        attempt: u32,
    },
    /// An attempt failed; the next starts after `retry_in_ms`.
    Retrying {
        attempt: u32,
        class: String,
        error: String,
        retry_in_ms: u64,
    },
    Succeeded,
    Failed {
        class: String,
        error: String,
    },
    Skipped {
        reason: String,
    },
    /// A follow-up, due later.
    Scheduled {
        due_at: DateTime<Utc>,
    },
    /// A manual task waiting for a human's answer.
    Open,
    /// Watching for a condition that has not come yet: looked at again at
    /// `until` (by `quench tick`).
    Watching {
        until: DateTime<Utc>,
        reason: String,
    },
}

impl StepState {
    /// Whether the step is done with for now: it will not go on by itself.
    pub fn is_settled(&self) -> bool {
        matches!(
            self,
            StepState::Succeeded
                | StepState::Failed { .. }
                | StepState::Skipped { .. }
                | StepState::Scheduled { .. }
                | StepState::Open
                | StepState::Watching { .. }
        )
    }

    /// Whether it started (or asked for approval) and has not settled:
    /// in flight, if the process that ran it stopped.
    pub fn is_in_flight(&self) -> bool {
        matches!(
            self,
            StepState::AwaitingApproval | StepState::Running { .. } | StepState::Retrying { .. }
        )
    }

    /// One word for it, as `incident.json` and the displays name it.
    pub fn name(&self) -> &'static str {
        match self {
            StepState::Waiting => "waiting",
            StepState::AwaitingApproval => "awaiting_approval",
            StepState::Running { .. } => "running",
            StepState::Retrying { .. } => "retrying",
            StepState::Succeeded => "succeeded",
            StepState::Failed { .. } => "failed",
            StepState::Skipped { .. } => "skipped",
            StepState::Scheduled { .. } => "scheduled",
            StepState::Open => "open",
            StepState::Watching { .. } => "watching",
        }
    }
}

/// What was decided about a step's approval.
#[derive(Debug, Clone, PartialEq)]
pub enum Approval {
    Requested { approvers: Vec<String> },
    Granted { by: String },
    Denied { by: String, reason: String },
}

/// A manual task: its question, and its answer once given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Task {
    pub prompt: String,
    pub answer: Option<String>,
    pub by: Option<String>,
    pub answered_at: Option<DateTime<Utc>>,
    /// Who owes its answer, and by when.
    pub meta: TaskMeta,
}

/// One step, as the journal tells it.
#[derive(Debug, Clone, Default)]
pub struct StepView {
    pub info: StepInfo,
    pub state: StepState,
    /// The last attempt started (0: none).
    pub attempts: u32,
    /// The first attempt's start.
    pub started_at: Option<DateTime<Utc>>,
    pub settled_at: Option<DateTime<Utc>>,
    /// The last attempt's error, until an attempt succeeds.
    pub last_error: Option<String>,
    /// When it was last scheduled for, kept once it has run.
    pub due_at: Option<DateTime<Utc>>,
    /// Its outputs as journaled (a secret output is its marker).
    pub outputs: Map<String, Value>,
    pub approval: Option<Approval>,
    pub task: Option<Task>,
    /// When it proved the credential dead (a verify step that succeeded).
    pub proven_dead_at: Option<DateTime<Utc>>,
    /// What its last attempt noted of the effect it had, if anything.
    pub noted: Option<Value>,
    /// Its parameters as the first attempt journaled them (redacted).
    pub params: Option<Value>,
    /// How many times it found what it watches for not there yet.
    pub watched: u32,
}

/// Whether the leaked credential was proven dead (a verify step saw the
/// provider refuse it), and if not, why not. The verify steps counted are
/// those run in the incident, not follow-ups.
#[derive(Debug, Clone, PartialEq)]
pub enum Proof {
    /// Every verify step succeeded; the last of them, `step`, at `at`.
    Proven { step: String, at: DateTime<Utc> },
    /// The runbook has no verify step.
    NoVerifyStep,
    /// A verify step failed: the provider still accepted the credential.
    Failed { step: String, error: String },
    /// A verify step was skipped, and did not check.
    Skipped { step: String, reason: String },
    /// A verify step has not settled yet (or was left open).
    Unsettled { step: String },
}

impl Proof {
    /// One word for it, as `incident.json` names it.
    pub fn name(&self) -> &'static str {
        match self {
            Proof::Proven { .. } => "proven",
            Proof::NoVerifyStep => "no_verify_step",
            Proof::Failed { .. } => "verify_failed",
            Proof::Skipped { .. } => "verify_skipped",
            Proof::Unsettled { .. } => "verify_unsettled",
        }
    }

    /// One line, for the end of a run and the Slack status: how long after
    /// `detected_at` the credential was proven dead, or why it was not.
    pub fn summary(&self, detected_at: DateTime<Utc>) -> String {
        match self {
            Proof::Proven { at, .. } => format!(
                "proven dead {} after detection",
                crate::time::human(std::time::Duration::from_millis(crate::time::ms_between(
                    detected_at,
                    *at
                )))
            ),
            Proof::NoVerifyStep => "revocation unproven: the runbook has no verify step".into(),
            Proof::Failed { step, error } => {
                format!(
                    "NOT contained: verify step `{step}` failed, the credential may still work: {error}"
                )
            }
            Proof::Skipped { step, reason } => {
                format!("revocation unproven: verify step `{step}` was skipped: {reason}")
            }
            Proof::Unsettled { step } => {
                format!("revocation unproven: verify step `{step}` did not finish")
            }
        }
    }
}

/// The incident, folded from its records.
#[derive(Debug, Clone, Default)]
pub struct IncidentView {
    pub id: String,
    pub runbook: String,
    pub title: String,
    pub mode: Option<Mode>,
    pub by: Option<Actor>,
    pub detected_at: Option<DateTime<Utc>>,
    /// When the credential leaked, if anyone said (`--leaked-at`, or a
    /// detector): the earliest of them.
    pub leaked_at: Option<DateTime<Utc>>,
    /// What each detector reported, the one that started the incident first.
    pub detections: Vec<Detection>,
    pub started_at: Option<DateTime<Utc>>,
    pub slo_ms: u64,
    /// In the runbook's order.
    pub steps: Vec<StepView>,
    /// How it ended, the last time it did; cleared when the incident is
    /// resumed or retried.
    pub finished: Option<Finished>,
    /// A drill's pace: its clock runs this many times as fast as the wall's.
    pub drill_pace: Option<u32>,
}

impl IncidentView {
    pub fn fold(records: &[Record]) -> Self {
        let mut view = Self::default();
        for r in records {
            view.apply(r);
        }
        view
    }

    /// The incident's time at wall time `wall`: a paced drill's clock ran
    /// its pace times as fast from its start.
    pub fn clock_at(&self, wall: DateTime<Utc>) -> DateTime<Utc> {
        match (self.drill_pace, self.started_at) {
            (Some(pace), Some(start)) if pace > 1 && wall > start => {
                start + (wall - start) * pace as i32
            }
            _ => wall,
        }
    }

    pub fn step(&self, id: &str) -> Option<&StepView> {
        self.steps.iter().find(|s| s.info.id == id)
    }

    /// Whether the credential was proven dead, and if not, why not: a
    /// failed verify step first, then a skipped one, then one not settled.
    pub fn proof(&self) -> Proof {
        let verify: Vec<&StepView> = self
            .steps
            .iter()
            .filter(|s| s.info.proves_dead && !s.info.deferred)
            .collect();
        if verify.is_empty() {
            return Proof::NoVerifyStep;
        }
        for s in &verify {
            if let StepState::Failed { error, .. } = &s.state {
                return Proof::Failed {
                    step: s.info.id.clone(),
                    error: error.clone(),
                };
            }
        }
        for s in &verify {
            if let StepState::Skipped { reason } = &s.state {
                return Proof::Skipped {
                    step: s.info.id.clone(),
                    reason: reason.clone(),
                };
            }
        }
        let mut last: Option<(DateTime<Utc>, &str)> = None;
        for s in &verify {
            // Its success is the proof: a crash between the two records
            // leaves the success alone.
            let at = s.proven_dead_at.or(s.settled_at);
            let (StepState::Succeeded, Some(at)) = (&s.state, at) else {
                return Proof::Unsettled {
                    step: s.info.id.clone(),
                };
            };
            if last.is_none_or(|(t, _)| at >= t) {
                last = Some((at, &s.info.id));
            }
        }
        last.map_or(Proof::NoVerifyStep, |(at, step)| Proof::Proven {
            step: step.to_string(),
            at,
        })
    }

    /// Follow-ups scheduled and not run since, with when they are due:
    /// their `after` from when the steps they need settled (from the start
    /// when they need none), and `None` while one of those has not (it
    /// waits behind a step that watches).
    pub fn scheduled(&self) -> BTreeMap<String, Option<DateTime<Utc>>> {
        self.steps
            .iter()
            .filter_map(|s| match s.state {
                StepState::Scheduled { due_at } => Some((s.info.id.clone(), self.due(s, due_at))),
                _ => None,
            })
            .collect()
    }

    /// When follow-up `s`, scheduled for `due_at`, is due; `None` while a
    /// step it needs that is run in the incident has not settled.
    fn due(&self, s: &StepView, due_at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let after = chrono::Duration::milliseconds(s.info.after_ms.unwrap_or(0) as i64);
        let mut due = due_at;
        for need in &s.info.needs {
            let Some(n) = self.step(need) else { continue };
            if n.info.deferred {
                if let StepState::Scheduled { due_at } = n.state {
                    due = due.max(self.due(n, due_at)?);
                }
                continue;
            }
            match (&n.state, n.settled_at) {
                (StepState::Watching { .. }, _) | (_, None) => return None,
                (_, Some(at)) => due = due.max(at + after),
            }
        }
        Some(due)
    }

    /// Takes one more record into the view.
    pub fn apply(&mut self, r: &Record) {
        match &r.event {
            Event::IncidentStarted {
                incident,
                runbook,
                title,
                mode,
                detected_at,
                leaked_at,
                started_at,
                slo_ms,
                by,
                steps,
                ..
            } => {
                self.id = incident.clone();
                self.runbook = runbook.clone();
                self.title = title.clone();
                self.mode = Some(*mode);
                self.by = Some(by.clone());
                self.detected_at = Some(*detected_at);
                self.leaked_at = *leaked_at;
                self.started_at = Some(*started_at);
                self.slo_ms = *slo_ms;
                self.steps = (steps.iter())
                    .map(|info| StepView {
                        info: info.clone(),
                        ..StepView::default()
                    })
                    .collect();
            }
            Event::Detection(d) => {
                self.leaked_at = match (self.leaked_at, d.leaked_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                self.detections.push(d.clone());
            }
            Event::IncidentResumed { .. } => self.finished = None,
            Event::IncidentRetried {
                steps, reweighed, ..
            } => {
                self.finished = None;
                for s in self.steps.iter_mut() {
                    if steps.contains(&s.info.id) || reweighed.contains(&s.info.id) {
                        s.state = StepState::Waiting;
                        s.settled_at = None;
                    }
                }
            }
            Event::DrillStarted { pace, .. } => self.drill_pace = Some(*pace),
            Event::IncidentFinished(f) => self.finished = Some(*f),
            event => {
                if let Some(step) = event.step()
                    && let Some(view) = self.steps.iter_mut().find(|s| s.info.id == step)
                {
                    view.apply(r.ts, event);
                }
            }
        }
    }
}

impl StepView {
    fn apply(&mut self, ts: DateTime<Utc>, event: &Event) {
        match event {
            Event::StepStarted {
                attempt, params, ..
            } => self.start(ts, *attempt, params),
            Event::AttemptFailed {
                attempt,
                class,
                error,
                retry_in_ms,
                ..
            } => {
                self.last_error = Some(error.clone());
                self.state = StepState::Retrying {
                    attempt: *attempt,
                    class: class.clone(),
                    error: error.clone(),
                    retry_in_ms: *retry_in_ms,
                };
            }
            Event::StepNoted { note, .. } => self.noted = Some(note.clone()),
            Event::StepSucceeded { outputs, .. } => {
                self.outputs = outputs.clone();
                self.last_error = None;
                self.settle(ts, StepState::Succeeded);
            }
            Event::StepFailed { class, error, .. } => {
                self.last_error = Some(error.clone());
                let state = StepState::Failed {
                    class: class.clone(),
                    error: error.clone(),
                };
                self.settle(ts, state);
            }
            Event::CredentialProvenDead { at, .. } => self.proven_dead_at = Some(*at),
            Event::StepSkipped { reason, .. } => {
                self.settle(
                    ts,
                    StepState::Skipped {
                        reason: reason.clone(),
                    },
                );
            }
            Event::StepScheduled { due_at, .. } => {
                self.due_at = Some(*due_at);
                self.state = StepState::Scheduled { due_at: *due_at };
            }
            Event::StepWatching { until, reason, .. } => {
                self.watched += 1;
                self.settle(
                    ts,
                    StepState::Watching {
                        until: *until,
                        reason: reason.clone(),
                    },
                );
            }
            Event::ApprovalRequested { approvers, .. } => {
                self.approval = Some(Approval::Requested {
                    approvers: approvers.clone(),
                });
                self.state = StepState::AwaitingApproval;
            }
            Event::ApprovalGranted { by, .. } => {
                self.approval = Some(Approval::Granted { by: by.clone() });
            }
            Event::ApprovalDenied { by, reason, .. } => {
                self.approval = Some(Approval::Denied {
                    by: by.clone(),
                    reason: reason.clone(),
                });
            }
            Event::TaskOpened { prompt, task, .. } => {
                self.task = Some(Task {
                    prompt: prompt.clone(),
                    meta: task.clone(),
                    ..Task::default()
                });
                self.settle(ts, StepState::Open);
            }
            Event::TaskAnswered {
                prompt,
                answer,
                by,
                task,
                ..
            } => {
                self.task = Some(Task {
                    prompt: prompt.clone(),
                    answer: Some(answer.clone()),
                    by: Some(by.clone()),
                    answered_at: Some(ts),
                    meta: task.clone(),
                });
            }
            _ => {}
        }
    }

    fn start(&mut self, ts: DateTime<Utc>, attempt: u32, params: &Option<Value>) {
        if self.params.is_none() {
            self.params.clone_from(params);
        }
        self.attempts = attempt;
        self.started_at.get_or_insert(ts);
        self.state = StepState::Running { attempt };
    }

    fn settle(&mut self, ts: DateTime<Utc>, state: StepState) {
        self.settled_at = Some(ts);
        self.state = state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Outcome, parse};

    const JOURNAL: &str = r#"{"v":1,"seq":1,"ts":"2026-11-24T21:16:54.129Z","event":"incident_started","incident":"INC-1","runbook":"r","title":"t","runbook_path":"r.yaml","runbook_sha256":"00","mode":"live","detected_at":"2026-11-24T21:16:54.129Z","started_at":"2026-11-24T21:16:54.129Z","slo_ms":300000,"inputs":{},"secrets":[],"by":{"user":"u","host":"h"},"steps":[{"id":"a","title":"a","phase":"revoke","action":"http.request","needs":[],"deferred":false},{"id":"b","title":"b","phase":"review","action":"manual.task","needs":[],"deferred":false},{"id":"c","title":"c","phase":"revoke","action":"http.request","needs":["a"],"deferred":true,"after_ms":1000}]}
{"v":1,"seq":2,"ts":"2026-11-24T21:16:54.130Z","event":"step_started","step":"a","attempt":1}
{"v":1,"seq":3,"ts":"2026-11-24T21:16:54.279Z","event":"attempt_failed","step":"a","attempt":1,"class":"transient","error":"503","retry_in_ms":200}
{"v":1,"seq":4,"ts":"2026-11-24T21:16:54.479Z","event":"step_started","step":"a","attempt":2}
{"v":1,"seq":5,"ts":"2026-11-24T21:16:54.480Z","event":"task_opened","step":"b","prompt":"How?"}
{"v":1,"seq":6,"ts":"2026-11-24T21:16:54.579Z","event":"step_succeeded","step":"a","attempt":2,"outputs":{"status":200}}
{"v":1,"seq":7,"ts":"2026-11-24T21:16:54.580Z","event":"step_scheduled","step":"c","due_at":"2026-11-24T21:16:55.129Z"}
{"v":1,"seq":8,"ts":"2026-11-24T21:16:54.581Z","event":"incident_finished","outcome":"succeeded","revoked_at":"2026-11-24T21:16:54.579Z","time_to_revoke_ms":450,"slo_met":true}
"#;

    #[test]
    fn each_step_is_folded_from_its_records() {
        let records = parse("journal.jsonl", JOURNAL).unwrap();
        let view = IncidentView::fold(&records);
        assert_eq!(view.id, "INC-1");
        let a = view.step("a").unwrap();
        assert_eq!(a.state, StepState::Succeeded);
        assert_eq!(a.attempts, 2);
        assert_eq!(a.outputs["status"], 200);
        assert_eq!(a.started_at, Some(records[1].ts));
        assert_eq!(a.last_error, None);
        let c = view.step("c").unwrap();
        assert_eq!(
            c.due_at,
            Some(records[6].ts + chrono::Duration::milliseconds(549))
        );
        let b = view.step("b").unwrap();
        assert_eq!(b.state, StepState::Open);
        assert_eq!(b.task.as_ref().unwrap().prompt, "How?");
        assert_eq!(view.scheduled().len(), 1);
        assert_eq!(view.finished.unwrap().time_to_revoke_ms, Some(450));

        // Cut after the retry: `a` is in flight, nothing has finished.
        let view = IncidentView::fold(&records[..3]);
        let a = view.step("a").unwrap();
        assert!(a.state.is_in_flight() && !a.state.is_settled());
        assert_eq!(a.last_error.as_deref(), Some("503"));
        // The next attempt keeps the error until one succeeds.
        let view = IncidentView::fold(&records[..4]);
        assert_eq!(view.step("a").unwrap().last_error.as_deref(), Some("503"));
        assert!(view.finished.is_none());
        // A journal from before verify steps has none.
        assert_eq!(IncidentView::fold(&records).proof(), Proof::NoVerifyStep);
    }

    /// `r` revokes, `v` checks the provider refuses the credential.
    const VERIFIED: &str = r#"{"v":1,"seq":1,"ts":"2026-11-24T21:16:54.129Z","event":"incident_started","incident":"INC-2","runbook":"r","title":"t","runbook_path":"r.yaml","runbook_sha256":"00","mode":"live","detected_at":"2026-11-24T21:16:50.000Z","started_at":"2026-11-24T21:16:54.129Z","slo_ms":300000,"inputs":{},"secrets":[],"by":{"user":"u","host":"h"},"steps":[{"id":"r","title":"r","phase":"revoke","action":"http.request","needs":[],"deferred":false},{"id":"v","title":"v","phase":"update","action":"aws.verify_revoked","needs":["r"],"deferred":false,"proves_dead":true}]}
{"v":1,"seq":2,"ts":"2026-11-24T21:16:54.130Z","event":"step_started","step":"r","attempt":1}
{"v":1,"seq":3,"ts":"2026-11-24T21:16:54.300Z","event":"step_succeeded","step":"r","attempt":1}
{"v":1,"seq":4,"ts":"2026-11-24T21:16:54.301Z","event":"step_started","step":"v","attempt":1}
{"v":1,"seq":5,"ts":"2026-11-24T21:16:54.400Z","event":"attempt_failed","step":"v","attempt":1,"class":"transient","error":"still accepted","retry_in_ms":1000}
{"v":1,"seq":6,"ts":"2026-11-24T21:16:55.400Z","event":"step_started","step":"v","attempt":2}
{"v":1,"seq":7,"ts":"2026-11-24T21:16:55.500Z","event":"step_succeeded","step":"v","attempt":2}
{"v":1,"seq":8,"ts":"2026-11-24T21:16:55.500Z","event":"credential_proven_dead","step":"v","at":"2026-11-24T21:16:55.500Z"}
{"v":1,"seq":9,"ts":"2026-11-24T21:16:55.501Z","event":"incident_finished","outcome":"succeeded","revoked_at":"2026-11-24T21:16:54.300Z","time_to_revoke_ms":4300,"slo_met":true,"credential_dead_at":"2026-11-24T21:16:55.500Z","time_to_dead_ms":5500}
"#;

    #[test]
    fn a_verify_steps_success_proves_the_credential_dead() {
        let records = parse("journal.jsonl", VERIFIED).unwrap();
        let at = records[6].ts;
        let proven = Proof::Proven {
            step: "v".into(),
            at,
        };
        let view = IncidentView::fold(&records);
        assert_eq!(view.step("v").unwrap().proven_dead_at, Some(at));
        assert_eq!(view.proof(), proven);
        let f = view.finished.unwrap();
        assert_eq!(
            (f.credential_dead_at, f.time_to_dead_ms),
            (Some(at), Some(5500))
        );
        assert_eq!(
            proven.summary(view.detected_at.unwrap()),
            "proven dead 5.5s after detection"
        );

        // While it retries, it is not settled; a success without its
        // proof record (a crash between the two) is proof still.
        let retrying = IncidentView::fold(&records[..5]);
        assert_eq!(retrying.proof(), Proof::Unsettled { step: "v".into() });
        assert_eq!(IncidentView::fold(&records[..7]).proof(), proven);
    }

    #[test]
    fn a_failed_or_skipped_verify_step_says_why_the_credential_is_unproven() {
        let mut records = parse("journal.jsonl", VERIFIED).unwrap();
        records.truncate(5);
        let failed = Event::StepFailed {
            step: "v".into(),
            attempt: 1,
            class: "permanent".into(),
            error: "AWS still accepts the key".into(),
        };
        let mut view = IncidentView::fold(&records);
        view.apply(&Record {
            event: failed,
            ..records[4].clone()
        });
        assert_eq!(
            view.proof(),
            Proof::Failed {
                step: "v".into(),
                error: "AWS still accepts the key".into()
            }
        );
        assert!(
            view.proof()
                .summary(Utc::now())
                .starts_with("NOT contained")
        );

        let mut view = IncidentView::fold(&records[..3]);
        view.apply(&Record {
            event: Event::StepSkipped {
                step: "v".into(),
                reason: "the secret `leaked_secret_key` was not given".into(),
            },
            ..records[2].clone()
        });
        assert_eq!(
            view.proof().summary(Utc::now()),
            "revocation unproven: verify step `v` was skipped: the secret `leaked_secret_key` was not given"
        );
    }

    #[test]
    fn a_retry_sets_the_failed_and_skipped_steps_waiting_again() {
        let journal = r#"{"v":1,"seq":1,"ts":"2026-11-24T21:16:54.129Z","event":"incident_started","incident":"INC-3","runbook":"r","title":"t","runbook_path":"r.yaml","runbook_sha256":"00","mode":"live","detected_at":"2026-11-24T21:16:54.129Z","started_at":"2026-11-24T21:16:54.129Z","slo_ms":0,"inputs":{},"secrets":[],"by":{"user":"u","host":"h"},"steps":[{"id":"k","title":"k","phase":"replace","action":"http.request","needs":[],"deferred":false},{"id":"a","title":"a","phase":"update","action":"http.request","needs":["k"],"deferred":false},{"id":"b","title":"b","phase":"revoke","action":"http.request","needs":["a"],"deferred":false}]}
{"v":1,"seq":2,"ts":"2026-11-24T21:16:54.130Z","event":"step_started","step":"k","attempt":1}
{"v":1,"seq":3,"ts":"2026-11-24T21:16:54.140Z","event":"step_succeeded","step":"k","attempt":1}
{"v":1,"seq":4,"ts":"2026-11-24T21:16:54.150Z","event":"step_started","step":"a","attempt":1}
{"v":1,"seq":5,"ts":"2026-11-24T21:16:54.160Z","event":"step_failed","step":"a","attempt":1,"class":"transient","error":"503"}
{"v":1,"seq":6,"ts":"2026-11-24T21:16:54.170Z","event":"step_skipped","step":"b","reason":"`a` did not succeed"}
{"v":1,"seq":7,"ts":"2026-11-24T21:16:54.180Z","event":"incident_finished","outcome":"failed","slo_met":true}
{"v":1,"seq":8,"ts":"2026-11-24T22:16:54.180Z","event":"incident_retried","by":{"user":"u","host":"h"},"retry":1,"steps":["a"],"reweighed":["b"]}
"#;
        let records = parse("journal.jsonl", journal).unwrap();
        let failed = IncidentView::fold(&records[..7]);
        assert!(matches!(
            failed.step("a").unwrap().state,
            StepState::Failed { .. }
        ));
        assert_eq!(failed.finished.unwrap().outcome, Outcome::Failed);
        let retried = IncidentView::fold(&records);
        assert!(retried.finished.is_none());
        assert_eq!(retried.step("k").unwrap().state, StepState::Succeeded);
        for id in ["a", "b"] {
            let s = retried.step(id).unwrap();
            assert_eq!(
                (&s.state, s.settled_at),
                (&StepState::Waiting, None),
                "{id}"
            );
        }
        // The failed step's attempts go on from its earlier ones.
        assert_eq!(retried.step("a").unwrap().attempts, 1);
        assert_eq!(
            records[7].event.describe(),
            "retry 1 by u@h: `a` failed and runs again; nothing that succeeded does"
        );
    }
}
