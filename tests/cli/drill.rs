//! Drills: a runbook played by people at a pace, on simulated providers.
//! Time is driven by the drill's scaled clock (`--pace`), never by tokio's
//! paused clock, so round trips to the Slack peer take the time they take.

use serde_json::Value;

use crate::support::Test;
use crate::support::fake_api::FakeApi;
use crate::support::fake_slack::{BOT_TOKEN, FakeSlack};

/// A revocation through a request, an approval and a task the scenario
/// scripts, a notification, and a task nobody scripts.
pub(crate) const DRILL_RUNBOOK: &str = r##"name: drill-me
title: A runbook to drill
drill: { approve_within: 2m, answer_within: 10m }
inputs:
  api: { example: "http://127.0.0.1:9" }
steps:
  - id: revoke
    phase: revoke
    action: http.request
    approval: {}
    with: { method: POST, url: "{{inputs.api}}/revoke" }
  - id: announce
    phase: notify
    action: slack.post_message
    needs: [revoke]
    with: { channel: "#sec-incidents", text: "the key is revoked" }
  - id: exposure
    phase: review
    action: manual.task
    needs: [revoke]
    with: { prompt: "how was it exposed?" }
  - id: lessons
    phase: review
    action: manual.task
    needs: [exposure]
    with: { prompt: "what would have caught it sooner?" }
"##;

/// The scenario's timeline: the approval after 30 s, the revocation 20 s
/// later, the exposure answered 40 s after that.
pub(crate) const DRILL_SCENARIO: &str = r#"defaults: { latency: 1s }
actions:
  http.request: { latency: 20s }
manual:
  revoke: { after: 30s, by: alice }
  exposure: { after: 40s, answer: "a public gist", by: bob }
"#;

pub(crate) fn journal(dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Milliseconds from the incident's start to the first record of `event`
/// (for `step`, if given).
pub(crate) fn at(records: &[Value], event: &str, step: Option<&str>) -> i64 {
    let ts = |r: &Value| {
        chrono::DateTime::parse_from_rfc3339(r["ts"].as_str().unwrap())
            .unwrap()
            .timestamp_millis()
    };
    let start = ts(&records[0]);
    let r = records
        .iter()
        .find(|r| r["event"] == event && step.is_none_or(|s| r["step"] == s))
        .unwrap_or_else(|| panic!("no `{event}` {step:?} in {records:?}"));
    ts(r) - start
}

#[test]
fn a_paced_drill_keeps_the_scenarios_timeline_and_touches_nothing_real() {
    // Every provider it could reach, listening: none may be called.
    let api = FakeApi::start();
    let slack = FakeSlack::start(&[]);
    let (out, _d) = Test::new()
        .file("rb.yaml", DRILL_RUNBOOK)
        .file("s.yaml", DRILL_SCENARIO)
        .env("SLACK_API_URL", &slack.api_url())
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .args(&[
            "rehearse",
            "rb.yaml",
            "--scenario",
            "s.yaml",
            "--pace",
            "100x",
            "--var",
            &format!("api={}", api.url()),
        ])
        .run();
    out.code(0);
    assert!(api.seen().is_empty(), "a drill called {:?}", api.seen());
    assert!(slack.calls().is_empty(), "a drill called Slack");
    let dir = out.incident();
    let records = journal(&dir);
    assert_eq!(records[0]["mode"], "drill");
    assert_eq!(records[1]["event"], "drill_started");
    assert_eq!(records[1]["pace"], 100);
    // The scenario's times, kept on the drill's clock: a hundredth of a
    // second of the wall clock is a second of the drill's, so each is
    // within a few seconds of its script.
    let near = |ms: i64, want: i64| (want..want + 5_000).contains(&ms);
    let granted = at(&records, "approval_granted", Some("revoke"));
    assert!(near(granted, 30_000), "approved at {granted} ms");
    let revoked = at(&records, "step_succeeded", Some("revoke"));
    assert!(near(revoked - granted, 20_000), "revoked at {revoked} ms");
    let answered = at(&records, "task_answered", Some("exposure"));
    assert!(
        near(answered - revoked, 40_000),
        "answered at {answered} ms"
    );
    // Nobody at a terminal answers the unscripted task: it stays open.
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "task_opened" && r["step"] == "lessons")
    );
    let md = std::fs::read_to_string(dir.join("incident.md")).unwrap();
    assert!(md.starts_with("> **DRILL**"), "{md}");
    assert!(out.stdout.contains("DRILL"), "{}", out.stdout);
}
