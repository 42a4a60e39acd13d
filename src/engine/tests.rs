//! The engine in-process, on tokio's paused clock: every duration below is
//! exact simulated time, with no sleeps in the tests.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::sim::Sim;
use super::*;
use crate::journal::{Event, Journal, Outcome, Record};
use crate::runbook::{self, SourceFile};
use crate::scenario::Scenario;
use crate::secret::Redactor;

struct Rehearsal {
    finished: Finished,
    /// How many times the journal was flushed to disk.
    flushes: u64,
    _dir: tempfile::TempDir,
}

impl Rehearsal {
    fn records(&self) -> &[Record] {
        &self.finished.records
    }

    /// Milliseconds after the start at which the first event matching `f` happened.
    fn at(&self, f: impl Fn(&Event) -> bool) -> u64 {
        let start = self.records()[0].ts;
        let r = self
            .records()
            .iter()
            .find(|r| f(&r.event))
            .expect("event happened");
        (r.ts - start).num_milliseconds() as u64
    }

    fn finished_at(&self) -> u64 {
        self.at(|e| matches!(e, Event::IncidentFinished(_)))
    }

    fn settled(&self, step: &str) -> &'static str {
        let view = IncidentView::fold(self.records());
        view.step(step).map_or("no such step", |s| s.state.name())
    }

    /// What `f` picks out of the events, in order.
    fn events<T>(&self, f: impl Fn(&Event) -> Option<T>) -> Vec<T> {
        self.records().iter().filter_map(|r| f(&r.event)).collect()
    }

    /// The waits journaled before each retry.
    fn retry_waits(&self) -> Vec<u64> {
        self.events(|e| match e {
            Event::AttemptFailed { retry_in_ms, .. } => Some(*retry_in_ms),
            _ => None,
        })
    }

    fn attempts(&self, step: &str) -> u32 {
        self.records()
            .iter()
            .filter(|r| matches!(&r.event, Event::StepStarted { step: s, .. } if s == step))
            .count() as u32
    }
}

fn parse(runbook_yaml: &str) -> Runbook {
    runbook::parse(SourceFile::new("test.yaml", runbook_yaml))
        .unwrap_or_else(|d| panic!("{d}"))
        .runbook
}

async fn rehearse(runbook_yaml: &str, scenario_yaml: &str) -> Rehearsal {
    rehearse_runbook(parse(runbook_yaml), scenario_yaml).await
}

async fn rehearse_runbook(rb: Runbook, scenario_yaml: &str) -> Rehearsal {
    let scenario = Arc::new(
        Scenario::parse(SourceFile::new("scenario.yaml", scenario_yaml))
            .unwrap_or_else(|d| panic!("{d}")),
    );
    let dir = tempfile::tempdir().unwrap();
    let redactor = Redactor::new();
    let journal = Journal::create(&dir.path().join("journal.jsonl"), redactor.clone()).unwrap();
    let flushes = journal.flush_counter();
    let inputs = rb
        .inputs
        .iter()
        .filter_map(|i| Some((i.name.clone(), i.default.clone().or(i.example.clone())?)))
        .collect();
    let (_tx, rx) = watch::channel(None);
    let finished = run(
        Incident {
            id: "INC-test".into(),
            dir: dir.path().to_path_buf(),
            brief: Brief {
                inputs,
                humans: Humans::Simulated(scenario.clone()),
                ..Brief::new(
                    Start::Fresh,
                    (rb, "test.yaml".into()),
                    Executor::Sim(Sim::new(scenario)),
                )
            },
            redactor,
            journal,
            document: crate::incident::write_document(
                dir.path(),
                Arc::new(crate::document::Templates::builtin()),
            ),
        },
        rx,
    )
    .await
    .expect("engine ran");
    Rehearsal {
        finished,
        flushes: flushes.load(std::sync::atomic::Ordering::Relaxed),
        _dir: dir,
    }
}

const TWO_INDEPENDENT: &str = r#"
name: two
steps:
  - { id: a, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - { id: b, phase: notify, action: slack.post_message, with: { channel: c, text: t } }
"#;

#[tokio::test(start_paused = true)]
async fn independent_steps_run_concurrently() {
    let r = rehearse(
        TWO_INDEPENDENT,
        "actions: { aws.deactivate_access_key: { latency: 200ms }, slack.post_message: { latency: 200ms } }",
    )
    .await;
    assert_eq!(r.finished.outcome, Outcome::Succeeded);
    assert_eq!(
        r.finished_at(),
        200,
        "two 200 ms steps side by side take 200 ms, not 400"
    );
    assert_eq!(r.finished.time_to_revoke, Some(Duration::from_millis(200)));
}

#[tokio::test(start_paused = true)]
async fn needs_orders_steps() {
    let rb = r#"
name: chain
steps:
  - { id: a, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - { id: b, phase: replace, needs: [a], action: aws.create_access_key, with: { user: u } }
"#;
    let r = rehearse(rb, "defaults: { latency: 200ms }").await;
    assert_eq!(
        r.at(|e| matches!(e, Event::StepStarted { step, .. } if step == "b")),
        200
    );
    assert_eq!(r.finished_at(), 400);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_past_its_timeout_is_cut_off_and_retried() {
    let rb = r#"
name: slow
steps:
  - id: a
    phase: revoke
    action: aws.deactivate_access_key
    with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA }
    timeout: 1s
    retry: { attempts: 2, initial: 100ms, max: 100ms }
"#;
    let r = rehearse(
        rb,
        "actions: { aws.deactivate_access_key: { latency: 5s } }",
    )
    .await;
    assert_eq!(r.settled("a"), "failed");
    assert_eq!(r.attempts("a"), 2);
    let failed = r.events(|e| match e {
        Event::StepFailed { class, .. } => Some(class.clone()),
        _ => None,
    });
    assert_eq!(failed, ["timeout"]);
    // 1 s, a jittered 100–200 ms wait (float rounding can reach 200), 1 s.
    let end = r.at(|e| matches!(e, Event::StepFailed { .. }));
    assert!((2100..=2200).contains(&end), "{end}");
    assert_eq!(r.finished.outcome, Outcome::Failed);
}

#[tokio::test(start_paused = true)]
async fn rate_limits_wait_at_least_retry_after() {
    let rb = r#"
name: throttled
steps:
  - id: a
    phase: revoke
    action: aws.deactivate_access_key
    with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA }
    retry: { attempts: 3, initial: 100ms, max: 1s }
"#;
    let sc = r#"
actions:
  aws.deactivate_access_key:
    latency: 50ms
    faults: [ { attempts: 2, error: throttled, retry_after: 3s } ]
"#;
    let r = rehearse(rb, sc).await;
    assert_eq!(r.settled("a"), "succeeded");
    assert_eq!(r.attempts("a"), 3);
    let classes = r.events(|e| match e {
        Event::AttemptFailed { class, .. } => Some(class.clone()),
        _ => None,
    });
    assert_eq!(classes, ["rate_limited", "rate_limited"]);
    let waits = r.retry_waits();
    assert_eq!(waits, [3000, 3000], "Retry-After beats a shorter backoff");
    assert_eq!(r.finished_at(), 50 + 3000 + 50 + 3000 + 50);
}

/// A 429 with Retry-After is retried after exactly that, however
/// long the backoff has grown (a bulk revocation's last keys must not sleep
/// past the moment the rate limit has room for them).
#[tokio::test(start_paused = true)]
async fn retry_after_is_taken_at_its_word_even_below_the_backoff() {
    let rb = r#"
name: throttled
steps:
  - id: a
    phase: revoke
    action: aws.deactivate_access_key
    with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA }
    retry: { attempts: 3, initial: 5s, max: 10s }
"#;
    let sc = r#"
actions:
  aws.deactivate_access_key:
    latency: 50ms
    faults: [ { attempts: 2, error: throttled, retry_after: 1s } ]
"#;
    let r = rehearse(rb, sc).await;
    assert_eq!(r.settled("a"), "succeeded");
    assert_eq!(r.finished_at(), 50 + 1000 + 50 + 1000 + 50);
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_when_the_server_gives_no_retry_after() {
    let rb = r#"
name: flaky
steps:
  - id: a
    phase: revoke
    action: aws.deactivate_access_key
    with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA }
    retry: { attempts: 4, initial: 1s, max: 2s }
"#;
    let sc = "actions: { aws.deactivate_access_key: { latency: 0ms, faults: [ { attempts: 3, error: server_error } ] } }";
    let r = rehearse(rb, sc).await;
    let waits = r.retry_waits();
    assert_eq!(waits.len(), 3);
    for (w, floor) in waits.iter().zip([1000, 2000, 2000]) {
        assert!(*w >= floor && *w <= floor * 2, "{waits:?}");
    }
    assert_eq!(r.settled("a"), "succeeded");
}

#[tokio::test(start_paused = true)]
async fn permanent_errors_are_not_retried() {
    let rb = r#"
name: denied
steps:
  - { id: a, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA }, retry: { attempts: 5 } }
"#;
    let sc =
        "actions: { aws.deactivate_access_key: { faults: [ { attempts: 5, error: permanent } ] } }";
    let r = rehearse(rb, sc).await;
    assert_eq!(r.attempts("a"), 1);
    assert_eq!(r.settled("a"), "failed");
    assert_eq!(r.finished.time_to_revoke, None);
    assert!(!r.finished.slo_met);
}

const AFTER_AN_AUDIT: &str = r#"
name: settled
steps:
  - { id: audit, phase: audit, action: aws.lookup_events, with: { access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - { id: document, phase: document, settled: [audit], action: incident.document }
  - { id: lessons, phase: review, settled: [document], action: manual.task, with: { prompt: p } }
  - { id: needs_it, phase: notify, needs: [audit], action: slack.post_message, with: { channel: c, text: t } }
"#;

#[tokio::test(start_paused = true)]
async fn settled_runs_after_a_failed_step_where_needs_skips() {
    let r = rehearse(
        AFTER_AN_AUDIT,
        r#"
actions: { aws.lookup_events: { latency: 300ms, faults: [ { attempts: 9, error: permanent } ] } }
manual: { lessons: { after: 1s, answer: "more alerts" } }
"#,
    )
    .await;
    assert_eq!(r.settled("audit"), "failed");
    assert_eq!(
        r.settled("document"),
        "succeeded",
        "it runs whatever the audit did"
    );
    assert_eq!(r.settled("lessons"), "succeeded");
    assert_eq!(
        r.settled("needs_it"),
        "skipped",
        "`needs` still means success"
    );
    assert!(
        r.at(|e| matches!(e, Event::StepStarted { step, .. } if step == "document")) >= 300,
        "it waits for the audit to settle"
    );
    assert_eq!(r.finished.outcome, Outcome::Failed);
}

#[tokio::test(start_paused = true)]
async fn settled_waits_for_a_success_too() {
    let r = rehearse(
        AFTER_AN_AUDIT,
        "actions: { aws.lookup_events: { latency: 300ms } }\nmanual: { lessons: { after: 1s, answer: a } }",
    )
    .await;
    assert_eq!(r.settled("audit"), "succeeded");
    assert_eq!(r.settled("document"), "succeeded");
    assert_eq!(r.settled("needs_it"), "succeeded");
    assert!(r.at(|e| matches!(e, Event::StepStarted { step, .. } if step == "document")) >= 300);
}

/// The shipped AWS runbook: a failed audit still gets its document and the
/// review questions.
#[tokio::test(start_paused = true)]
async fn a_failed_audit_still_gets_the_document_and_the_review() {
    let r = rehearse(
        include_str!("../../runbooks/aws-access-key-compromise.yaml"),
        include_str!("../../runbooks/scenarios/aws-audit-fails.yaml"),
    )
    .await;
    assert_eq!(r.settled("cloudtrail"), "failed");
    assert_eq!(r.settled("deactivate"), "succeeded");
    assert_eq!(r.settled("document"), "succeeded");
    assert_eq!(r.settled("all_clear"), "succeeded");
    assert_eq!(r.settled("review"), "succeeded");
    assert_eq!(r.settled("went_well"), "succeeded");
    for question in ["went_wrong", "lucky"] {
        assert_eq!(r.settled(question), "open", "asked, and left for a human");
    }
    assert_eq!(r.finished.outcome, Outcome::Failed);
}

const ABORT_OR_CONTINUE: &str = r#"
name: policy
steps:
  - { id: fails, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA }, on_failure: ON_FAILURE }
  - { id: slow, phase: notify, action: slack.post_message, with: { channel: c, text: t } }
  - { id: later, phase: audit, needs: [slow], action: aws.lookup_events, with: { access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - { id: dependent, phase: replace, needs: [fails], action: aws.create_access_key, with: { user: u } }
"#;

const ABORT_SCENARIO: &str = r#"
actions:
  aws.deactivate_access_key: { latency: 100ms, faults: [ { attempts: 9, error: permanent } ] }
  slack.post_message: { latency: 500ms }
"#;

#[tokio::test(start_paused = true)]
async fn abort_lets_steps_in_flight_finish_and_starts_nothing_new() {
    let r = rehearse(
        &ABORT_OR_CONTINUE.replace("ON_FAILURE", "abort"),
        ABORT_SCENARIO,
    )
    .await;
    assert_eq!(r.settled("fails"), "failed");
    assert_eq!(r.settled("slow"), "succeeded", "a step in flight finishes");
    assert_eq!(r.settled("later"), "skipped", "nothing new starts");
    assert_eq!(r.attempts("later"), 0);
    assert_eq!(r.settled("dependent"), "skipped");
    assert_eq!(r.finished.outcome, Outcome::Failed);
}

#[tokio::test(start_paused = true)]
async fn continue_runs_everything_that_does_not_depend_on_the_failure() {
    let r = rehearse(
        &ABORT_OR_CONTINUE.replace("ON_FAILURE", "continue"),
        ABORT_SCENARIO,
    )
    .await;
    assert_eq!(r.settled("fails"), "failed");
    assert_eq!(r.settled("later"), "succeeded");
    assert_eq!(r.settled("dependent"), "skipped", "its upstream failed");
    assert_eq!(r.finished.outcome, Outcome::Failed);
}

#[tokio::test(start_paused = true)]
async fn a_slow_revocation_misses_the_slo() {
    let rb = r#"
name: slo
slo: { revoke_within: 1s }
steps:
  - { id: a, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
"#;
    let r = rehearse(
        rb,
        "actions: { aws.deactivate_access_key: { latency: 1500ms } }",
    )
    .await;
    assert_eq!(r.finished.outcome, Outcome::SloMissed);
    assert_eq!(r.finished.time_to_revoke, Some(Duration::from_millis(1500)));
}

#[tokio::test(start_paused = true)]
async fn when_false_skips_and_follow_ups_are_scheduled_not_run() {
    let rb = r#"
name: when
inputs: { page: { default: "no" } }
steps:
  - { id: a, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - { id: b, phase: notify, action: slack.post_message, when: "{{#if (eq inputs.page \"yes\")}}true{{/if}}", with: { channel: c, text: t } }
  - { id: c, phase: revoke, needs: [a], after: 7d, action: aws.delete_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
"#;
    let r = rehearse(rb, "").await;
    assert_eq!(r.settled("b"), "skipped");
    assert_eq!(r.settled("c"), "scheduled");
    assert_eq!(r.attempts("c"), 0);
    assert_eq!(r.finished.outcome, Outcome::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn approvals_and_manual_answers_take_their_simulated_time() {
    let rb = r#"
name: humans
steps:
  - { id: a, phase: revoke, action: aws.deactivate_access_key, approval: { approvers: [sec-lead] }, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - { id: review, phase: review, action: manual.task, with: { prompt: "How?" } }
"#;
    let sc = r#"
defaults: { latency: 100ms }
manual:
  a: { after: 45s, by: alice }
  review: { after: 2m, answer: "a public gist" }
"#;
    let r = rehearse(rb, sc).await;
    assert_eq!(
        r.at(|e| matches!(e, Event::ApprovalGranted { by, .. } if by == "alice")),
        45_000
    );
    assert_eq!(
        r.finished.time_to_revoke,
        Some(Duration::from_millis(45_100))
    );
    assert_eq!(
        r.at(|e| matches!(e, Event::TaskAnswered { answer, .. } if answer == "a public gist")),
        120_000
    );
    assert_eq!(r.settled("review"), "succeeded");
}

#[tokio::test(start_paused = true)]
async fn every_attempt_is_journaled_with_its_number_in_sequence() {
    let rb = r#"
name: seq
steps:
  - { id: a, phase: revoke, action: aws.deactivate_access_key, retry: { attempts: 3, initial: 10ms }, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
"#;
    let r = rehearse(rb, "actions: { aws.deactivate_access_key: { faults: [ { attempts: 2, error: server_error } ] } }").await;
    let attempts = r.events(|e| match e {
        Event::StepStarted { attempt, .. } => Some(("started", *attempt)),
        Event::AttemptFailed { attempt, .. } => Some(("failed", *attempt)),
        Event::StepSucceeded { attempt, .. } => Some(("succeeded", *attempt)),
        _ => None,
    });
    let expected = [
        ("started", 1),
        ("failed", 1),
        ("started", 2),
        ("failed", 2),
        ("started", 3),
        ("succeeded", 3),
    ];
    assert_eq!(attempts, expected);
    let seqs: Vec<u64> = r.records().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}

/// A step's result is flushed to disk together with the start of
/// the step after it, and the incident's start with the first step's, so a chain of N steps
/// costs N + 1 flushes, not 2N + 2.
/// Every record is still on disk before the next effect and before the
/// incident ends.
#[tokio::test(start_paused = true)]
async fn a_result_is_flushed_with_the_next_start() {
    let rb = r#"
name: chain
steps:
  - { id: a, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - { id: b, phase: revoke, needs: [a], action: aws.delete_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - { id: c, phase: notify, needs: [b], action: slack.post_message, with: { channel: c, text: t } }
"#;
    let r = rehearse(rb, "").await;
    assert_eq!(r.finished.outcome, Outcome::Succeeded);
    // a started (with incident_started), b and c started (each with the
    // result before it), incident_finished (with c's result).
    assert_eq!(r.flushes, 4, "{:#?}", r.records());
}

/// Steps that start at the same moment share one flush, so a bulk
/// revocation does not wait for 1,000 `fdatasync`s in a row before its
/// first request.
#[tokio::test(start_paused = true)]
async fn steps_starting_together_share_a_flush() {
    let mut rb = String::from("name: bulk\nsteps:\n");
    for i in 0..20 {
        rb.push_str(&format!(
            "  - {{ id: k{i}, phase: revoke, action: aws.deactivate_access_key, with: {{ user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA }} }}\n"
        ));
    }
    let r = rehearse(
        &rb,
        "actions: { aws.deactivate_access_key: { latency: 200ms } }",
    )
    .await;
    assert_eq!(r.finished.outcome, Outcome::Succeeded);
    assert_eq!(r.attempts("k19"), 1);
    // The 20 starts (with incident_started) in one flush, the 20 results
    // in another, incident_finished: not 42.
    assert!(r.flushes <= 4, "{} flushes", r.flushes);
}

/// `rb` with step `id`'s action declared to prove the credential dead, as
/// the providers' verify actions are.
fn proving(mut rb: Runbook, id: &str) -> Runbook {
    let step = rb.steps.iter_mut().find(|s| s.id.as_str() == id).unwrap();
    step.action = Box::leak(Box::new(crate::providers::ActionSpec {
        proves_dead: true,
        ..*step.action
    }));
    rb
}

/// Deactivate a key, then check that AWS refuses it (`check`, which the
/// tests declare a verify step).
const VERIFIED: &str = r#"
name: verified
steps:
  - { id: deactivate, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - id: check
    phase: update
    needs: [deactivate]
    action: aws.get_access_key_last_used
    with: { access_key_id: AKIAAAAAAAAAAAAAAAAA }
    retry: { attempts: 3, initial: 1s, max: 1s }
"#;

fn finished_record(r: &Rehearsal) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<u64>) {
    r.records()
        .iter()
        .find_map(|rec| match &rec.event {
            Event::IncidentFinished(f) => {
                Some((f.revoked_at, f.credential_dead_at, f.time_to_dead_ms))
            }
            _ => None,
        })
        .expect("the incident finished")
}

/// The incident's Markdown document, which holds each of `texts`.
fn document_says(r: &Rehearsal, texts: &[&str]) -> String {
    let report = crate::document::Report::from_records(r.records()).unwrap();
    let md = crate::document::Templates::builtin().markdown(&report);
    for text in texts {
        assert!(md.contains(text), "{text}\n{md}");
    }
    md
}

#[tokio::test(start_paused = true)]
async fn a_verify_step_that_succeeds_proves_the_credential_dead_without_moving_revocation() {
    let sc = "actions: { aws.deactivate_access_key: { latency: 200ms }, aws.get_access_key_last_used: { latency: 300ms } }";
    let r = rehearse_runbook(proving(parse(VERIFIED), "check"), sc).await;
    assert_eq!(r.finished.outcome, Outcome::Succeeded);
    assert_eq!(r.finished.time_to_revoke, Some(Duration::from_millis(200)));
    assert_eq!(r.finished.time_to_dead, Some(Duration::from_millis(500)));
    let start = r.records()[0].ts;
    let proven: Vec<(&str, DateTime<Utc>, DateTime<Utc>)> = r
        .records()
        .iter()
        .filter_map(|rec| match &rec.event {
            Event::CredentialProvenDead { step, at } => Some((step.as_str(), *at, rec.ts)),
            _ => None,
        })
        .collect();
    let at = start + chrono::Duration::milliseconds(500);
    assert_eq!(proven, [("check", at, at)]);
    // Journaled right after the step's success, at its time.
    let i = r
        .records()
        .iter()
        .position(|rec| matches!(rec.event, Event::CredentialProvenDead { .. }))
        .unwrap();
    assert!(
        matches!(&r.records()[i - 1].event, Event::StepSucceeded { step, .. } if step == "check")
    );
    let (revoked_at, dead_at, ttd) = finished_record(&r);
    assert_eq!(
        revoked_at,
        Some(start + chrono::Duration::milliseconds(200))
    );
    assert_eq!((dead_at, ttd), (Some(at), Some(500)));
    assert_eq!(
        r.finished.proof,
        Proof::Proven {
            step: "check".into(),
            at
        }
    );
    let md = document_says(
        &r,
        &[
            "| Proven dead | 20",
            "Proven dead **500ms** after detection: `check` saw the provider refuse the credential.",
        ],
    );
    assert!(!md.contains("unproven"), "{md}");
}

/// The same step, not declared a verify step: it proves nothing.
#[tokio::test(start_paused = true)]
async fn without_a_verify_step_revocation_is_unproven() {
    let r = rehearse(VERIFIED, "defaults: { latency: 100ms }").await;
    assert_eq!(r.finished.outcome, Outcome::Succeeded);
    assert_eq!(r.finished.proof, Proof::NoVerifyStep);
    assert!(
        !r.records()
            .iter()
            .any(|rec| matches!(rec.event, Event::CredentialProvenDead { .. }))
    );
    assert_eq!(finished_record(&r).1, None);
    document_says(
        &r,
        &[
            "**Revocation is unproven.** The runbook has no verify step: nothing checked that the provider refuses the credential now",
        ],
    );
}

/// The provider still accepts the key after every attempt: the incident
/// fails, whatever the SLO says, and the document says it is not contained.
#[tokio::test(start_paused = true)]
async fn a_verify_step_that_fails_after_its_retries_fails_the_incident() {
    let sc = r#"
defaults: { latency: 100ms }
actions:
  aws.get_access_key_last_used:
    faults: [ { attempts: 99, error: server_error } ]
"#;
    let r = rehearse_runbook(proving(parse(VERIFIED), "check"), sc).await;
    assert_eq!(r.attempts("check"), 3);
    assert_eq!(r.settled("check"), "failed");
    assert!(r.finished.slo_met);
    assert_eq!(r.finished.outcome, Outcome::Failed);
    assert_eq!(crate::incident::exit_code(r.finished.outcome), 1);
    assert!(matches!(&r.finished.proof, Proof::Failed { step, .. } if step == "check"));
    assert_eq!(r.finished.time_to_dead, None);
    let (revoked_at, dead_at, ttd) = finished_record(&r);
    assert!(revoked_at.is_some());
    assert_eq!((dead_at, ttd), (None, None));
    document_says(
        &r,
        &[
            "the incident ended **failed**",
            "**Revocation is unproven.** Verify step `check` failed: the provider still accepted the credential, or could not be asked",
            "the incident is not contained",
        ],
    );
}

/// A verify step that reads an optional secret nobody gave is skipped,
/// saying so: the credential is unproven, and the incident goes on.
#[tokio::test(start_paused = true)]
async fn a_verify_step_without_its_optional_secret_is_skipped_and_says_so() {
    let yaml = r#"
name: optional
secrets:
  leaked_secret: { optional: true }
steps:
  - { id: deactivate, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAAAAAAAAAAAAAAAAA } }
  - id: check
    phase: update
    needs: [deactivate]
    action: aws.verify_credentials
    with: { access_key_id: AKIAAAAAAAAAAAAAAAAA, secret_access_key: "{{secrets.leaked_secret}}" }
"#;
    let rb = proving(parse(yaml), "check");
    assert_eq!(rb.steps[1].secrets, ["leaked_secret"]);
    let r = rehearse_runbook(rb, "defaults: { latency: 100ms }").await;
    assert_eq!(r.settled("check"), "skipped");
    assert_eq!(r.attempts("check"), 0);
    assert_eq!(r.finished.outcome, Outcome::Succeeded);
    assert_eq!(
        r.finished.proof,
        Proof::Skipped {
            step: "check".into(),
            reason: "the optional secret `leaked_secret` was not given".into()
        }
    );
    document_says(
        &r,
        &[
            "**Revocation is unproven.** Verify step `check` was skipped (the optional secret `leaked_secret` was not given): nothing checked",
        ],
    );
}

/// A verify step that does not run (its `when` says no) proves nothing,
/// and the document says why.
#[tokio::test(start_paused = true)]
async fn a_skipped_verify_step_leaves_revocation_unproven_and_says_why() {
    let yaml = VERIFIED.replace(
        "    needs: [deactivate]\n",
        "    needs: [deactivate]\n    when: \"{{inputs.secret_given}}\"\n",
    ) + "inputs: { secret_given: { default: \"\" } }\n";
    let r = rehearse_runbook(
        proving(parse(&yaml), "check"),
        "defaults: { latency: 100ms }",
    )
    .await;
    assert_eq!(r.settled("check"), "skipped");
    assert_eq!(r.finished.outcome, Outcome::Succeeded);
    assert!(matches!(&r.finished.proof, Proof::Skipped { step, .. } if step == "check"));
    document_says(
        &r,
        &[
            "**Revocation is unproven.** Verify step `check` was skipped (`when` rendered ``): nothing checked",
        ],
    );
}
