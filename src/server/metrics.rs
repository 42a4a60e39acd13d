//! `/metrics` in Prometheus' text format, on prometheus-client: the build,
//! incidents started and finished, step durations and attempts by action and
//! mode (a rehearsal never mixes with a live incident), time to revoke and
//! to proven dead, and Slack requests by outcome. Fed by the same journal records as everything
//! else, plus the answers of the Slack endpoint.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Metric, Registry};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::journal::{Event, Record};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunbookMode {
    runbook: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunbookOutcome {
    runbook: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionResult {
    action: String,
    result: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Action {
    action: String,
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Version {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Runbook {
    runbook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Hook {
    source: String,
    decision: String,
}

/// Step durations from 10 ms to about 5 minutes.
fn step_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 15))
}

/// Times to revoke (and to proven dead) from 100 ms to about 14 minutes.
fn revoke_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.1, 2.0, 14))
}

pub struct Metrics {
    registry: Registry,
    incidents_started: Family<RunbookMode, Counter>,
    incidents_finished: Family<RunbookOutcome, Counter>,
    step_seconds: Family<ActionResult, Histogram, fn() -> Histogram>,
    attempts: Family<Action, Counter>,
    time_to_revoke: Family<Runbook, Histogram, fn() -> Histogram>,
    time_to_dead: Family<Runbook, Histogram, fn() -> Histogram>,
    slack_requests: Family<Outcome, Counter>,
    hook_requests: Family<Hook, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("quench");
        // Always there, so that a scrape of a fresh server is never empty.
        registry.register(
            "build",
            "The running quench",
            Info::new(Version {
                version: env!("CARGO_PKG_VERSION").into(),
            }),
        );
        let r = &mut registry;
        Self {
            hook_requests: registered(
                r,
                "hook_requests",
                "Requests to the detectors' hooks, by source and decision (accepted, forged, refused, ignored, duplicate, pong)",
                Family::default(),
            ),
            incidents_started: registered(
                r,
                "incidents_started",
                "Incidents started, by runbook and mode",
                Family::default(),
            ),
            incidents_finished: registered(
                r,
                "incidents_finished",
                "Incidents finished, by runbook and outcome",
                Family::default(),
            ),
            step_seconds: registered(
                r,
                "step_duration_seconds",
                "Step durations, first attempt to result, by action, result and mode",
                Family::new_with_constructor(step_buckets),
            ),
            attempts: registered(
                r,
                "step_attempts",
                "Attempts made, by action and mode",
                Family::default(),
            ),
            time_to_revoke: registered(
                r,
                "time_to_revoke_seconds",
                "Detection to revocation, by runbook",
                Family::new_with_constructor(revoke_buckets),
            ),
            time_to_dead: registered(
                r,
                "time_to_dead_seconds",
                "Detection to the credential proven dead (a verify step saw the provider refuse it), by runbook",
                Family::new_with_constructor(revoke_buckets),
            ),
            slack_requests: registered(
                r,
                "slack_requests",
                "Requests to the Slack endpoint, by outcome (accepted, forged, denied, refused; help, list and unknown for commands answered at once)",
                Family::default(),
            ),
            registry,
        }
    }
}

/// `metric`, registered as `name` with `help`.
fn registered<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// One Slack request: `accepted`, `forged` (bad or stale signature),
    /// `denied` (no rule allows it) or `refused` (allowed, but not done);
    /// `help`, `list` or `unknown` for a command answered at once.
    pub fn slack_request(&self, outcome: &str) {
        self.slack_requests
            .get_or_create(&Outcome {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// One request to a detector's hook, and what was decided.
    pub fn hook_request(&self, source: &str, decision: &str) {
        self.hook_requests
            .get_or_create(&Hook {
                source: source.to_string(),
                decision: decision.to_string(),
            })
            .inc();
    }

    /// Follows one incident's journal until it closes.
    pub async fn follow(&self, mut rx: UnboundedReceiver<Record>) {
        let mut runbook = String::new();
        let mut mode_name = String::new();
        let mut actions: HashMap<String, String> = HashMap::new();
        let mut first_start: HashMap<String, DateTime<Utc>> = HashMap::new();
        while let Some(r) = rx.recv().await {
            match &r.event {
                Event::IncidentStarted {
                    runbook: rb,
                    mode,
                    steps,
                    ..
                } => {
                    runbook = rb.clone();
                    mode_name = mode.name().into();
                    actions = steps
                        .iter()
                        .map(|s| (s.id.clone(), s.action.clone()))
                        .collect();
                    self.incidents_started
                        .get_or_create(&RunbookMode {
                            runbook: rb.clone(),
                            mode: mode.name().into(),
                        })
                        .inc();
                }
                Event::StepStarted { step, .. } => {
                    first_start.entry(step.clone()).or_insert(r.ts);
                    let action = actions.get(step).cloned().unwrap_or_default();
                    self.attempts
                        .get_or_create(&Action {
                            action,
                            mode: mode_name.clone(),
                        })
                        .inc();
                }
                Event::StepSucceeded { step, .. } | Event::StepFailed { step, .. } => {
                    let result = if matches!(r.event, Event::StepSucceeded { .. }) {
                        "succeeded"
                    } else {
                        "failed"
                    };
                    if let Some(t0) = first_start.get(step) {
                        let secs = (r.ts - *t0).num_milliseconds().max(0) as f64 / 1000.0;
                        let action = actions.get(step).cloned().unwrap_or_default();
                        self.step_seconds
                            .get_or_create(&ActionResult {
                                action,
                                result: result.into(),
                                mode: mode_name.clone(),
                            })
                            .observe(secs);
                    }
                }
                Event::IncidentFinished(crate::journal::Finished {
                    outcome,
                    time_to_revoke_ms,
                    time_to_dead_ms,
                    ..
                }) => {
                    self.incidents_finished
                        .get_or_create(&RunbookOutcome {
                            runbook: runbook.clone(),
                            outcome: outcome.name().into(),
                        })
                        .inc();
                    for (family, ms) in [
                        (&self.time_to_revoke, time_to_revoke_ms),
                        (&self.time_to_dead, time_to_dead_ms),
                    ] {
                        if let Some(ms) = ms {
                            let runbook = runbook.clone();
                            let seconds = *ms as f64 / 1000.0;
                            family.get_or_create(&Runbook { runbook }).observe(seconds);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STARTED: &str = r#"{"v":1,"seq":1,"ts":"2026-11-24T21:16:54.129Z","event":"incident_started","incident":"INC-1","runbook":"r","title":"t","runbook_path":"r.yaml","runbook_sha256":"00","mode":"live","detected_at":"2026-11-24T21:16:54.129Z","started_at":"2026-11-24T21:16:54.129Z","slo_ms":300000,"inputs":{},"secrets":[],"by":{"user":"u","host":"h"},"steps":[]}"#;

    async fn follow(metrics: &Metrics, finished: &str) {
        let journal = format!("{STARTED}\n{finished}\n");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for r in crate::journal::parse("journal.jsonl", &journal).unwrap() {
            tx.send(r).unwrap();
        }
        drop(tx);
        metrics.follow(rx).await;
    }

    /// Time to proven dead is observed beside time to revoke, by runbook,
    /// and only for an incident whose credential was proven dead.
    #[tokio::test]
    async fn time_to_dead_is_observed_when_the_credential_was_proven_dead() {
        let metrics = Metrics::default();
        follow(
            &metrics,
            r#"{"v":1,"seq":2,"ts":"2026-11-24T21:17:00.000Z","event":"incident_finished","outcome":"succeeded","revoked_at":"2026-11-24T21:16:55.000Z","time_to_revoke_ms":900,"slo_met":true,"credential_dead_at":"2026-11-24T21:16:59.000Z","time_to_dead_ms":5500}"#,
        )
        .await;
        follow(
            &metrics,
            r#"{"v":1,"seq":2,"ts":"2026-11-24T21:17:00.000Z","event":"incident_finished","outcome":"succeeded","revoked_at":"2026-11-24T21:16:55.000Z","time_to_revoke_ms":1100,"slo_met":true}"#,
        )
        .await;
        let text = metrics.render();
        for line in [
            "quench_time_to_revoke_seconds_count{runbook=\"r\"} 2",
            "quench_time_to_dead_seconds_count{runbook=\"r\"} 1",
            "quench_time_to_dead_seconds_sum{runbook=\"r\"} 5.5",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
    }
}
