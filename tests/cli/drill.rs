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
    with: { channel: "#general", text: "the key is revoked" }
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

/// `quench rehearse rb.yaml --scenario s.yaml --pace PACE` with these files.
fn drill(runbook: &str, scenario: &str, pace: &str) -> Test {
    Test::new()
        .file("rb.yaml", runbook)
        .file("s.yaml", scenario)
        .args(&[
            "rehearse",
            "rb.yaml",
            "--scenario",
            "s.yaml",
            "--pace",
            pace,
        ])
}

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
    let (out, _d) = drill(DRILL_RUNBOOK, DRILL_SCENARIO, "100x")
        .env("SLACK_API_URL", &slack.api_url())
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .args(&["--var", &format!("api={}", api.url())])
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

// ------------------------------------------------------------ in Slack

const DRILL_RULES: &str = r#"
[[chatops.allow]]
users = ["U0ALLOWED1", "U0OTHER001"]
actions = ["drill"]

[[chatops.allow]]
users = ["U0APPROVE1"]
actions = ["approve"]

[[chatops.allow]]
users = ["U0APPROVE1"]
runbooks = ["drill-*"]
actions = ["facilitate"]
"#;

/// The people approve the revocation and answer the exposure; the
/// scenario scripts the lessons, and throws one inject at a time, one
/// after the revocation, and has one for the facilitator's hand.
const SLACK_SCENARIO: &str = r#"defaults: { latency: 1s }
actions:
  http.request: { latency: 20s }
manual:
  lessons: { after: 10s, answer: "alerts on gists", by: carol }
injects:
  - name: pager-down
    at: 3s
    message: "the pager is down: call people by phone"
  - name: second-key
    after: revoke
    message: "a second key of the same user is on the gist too"
    leak: { api: "http://127.0.0.1:9/second-key" }
  - name: cloudtrail-down
    message: "CloudTrail is unavailable"
    faults: { aws.lookup_events: server_error }
"#;

#[test]
fn a_drill_in_slack_is_played_by_people_with_injects_and_a_facilitator() {
    use crate::slack::{Serve, eventually, finished};
    use crate::support::fake_slack::CHANNEL;
    use std::time::Duration;
    let api = FakeApi::start();
    let slack = FakeSlack::start(&[]);
    let serve = Serve::start_with(
        &slack,
        DRILL_RULES,
        &[
            ("runbooks/drill-me.yaml", DRILL_RUNBOOK),
            ("runbooks/scenarios/drill-me.yaml", SLACK_SCENARIO),
        ],
    );
    let (status, ack) = serve.command(
        "U0ALLOWED1",
        &format!("drill drill-me --pace 50x api={}", api.url()),
    );
    assert_eq!(status, 200);
    let text = ack["text"].as_str().unwrap().to_string();
    assert!(text.contains("a DRILL of `drill-me`"), "{text}");
    let id = text.split('*').nth(1).unwrap().to_string();
    let dir = serve.store().join(&id);
    let posted = |what: &str| slack.messages().into_iter().find(|m| m.text.contains(what));

    // The approval goes to the people, with buttons, marked DRILL.
    eventually(Duration::from_secs(20), "the approval", || {
        posted("quench_approve").is_some() || posted("approve step `revoke`").is_some()
    });
    let q = posted("approve step `revoke`").unwrap();
    assert!(q.text.contains("DRILL"), "{}", q.text);
    let value = q.blocks[1]["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    // The inject at 3 s came while the approval waited.
    eventually(Duration::from_secs(10), "the timed inject", || {
        posted("the pager is down").is_some()
    });
    assert_eq!(
        serve.click(
            "U0APPROVE1",
            "quench_approve",
            &value,
            &slack.response_url("ok")
        ),
        200
    );
    // The inject after the revocation, and the notification, in the
    // drill's channel, marked DRILL.
    eventually(Duration::from_secs(20), "the inject after `revoke`", || {
        posted("a second key of the same user").is_some()
    });
    eventually(Duration::from_secs(20), "the drill's notification", || {
        posted("the key is revoked").is_some()
    });
    let announce = posted("the key is revoked").unwrap();
    assert_eq!(announce.channel, CHANNEL);
    assert!(announce.text.contains("*DRILL*"), "{}", announce.text);

    // The task waits for its answer from the channel.
    eventually(Duration::from_secs(20), "the task", || {
        posted("how was it exposed?").is_some()
    });
    // Only a facilitator fires an inject by hand.
    let (_, denied) = serve.command("U0OTHER001", &format!("inject {id} cloudtrail-down"));
    assert!(
        denied["text"]
            .as_str()
            .unwrap()
            .contains("may not fire injects"),
        "{denied}"
    );
    let (_, fired) = serve.command("U0APPROVE1", &format!("inject {id} cloudtrail-down"));
    assert!(
        fired["text"]
            .as_str()
            .unwrap()
            .contains("fired `cloudtrail-down`"),
        "{fired}"
    );
    eventually(Duration::from_secs(10), "the hand-fired inject", || {
        posted("CloudTrail is unavailable").is_some()
    });
    let (_, done) = serve.command("U0ALLOWED1", &format!("done {id} exposure a public gist"));
    assert!(
        done["text"].as_str().unwrap().contains("`exposure`"),
        "{done}"
    );
    eventually(Duration::from_secs(30), "the drill's end", || {
        finished(&dir)
    });

    let records = journal(&dir);
    assert_eq!(records[0]["mode"], "drill");
    let has = |event: &str, key: &str, value: &str| {
        records
            .iter()
            .any(|r| r["event"] == event && r[key] == value)
    };
    assert!(has("approval_granted", "by", "slack:U0APPROVE1"));
    assert!(has("task_answered", "by", "slack:U0ALLOWED1"));
    assert!(has("task_answered", "by", "carol"));
    assert!(has("inject_fired", "name", "pager-down"));
    // The second leak started a second drill, linked to this one.
    let second = records
        .iter()
        .find(|r| r["event"] == "inject_fired" && r["name"] == "second-key")
        .unwrap()["linked"]
        .as_str()
        .expect("a linked drill")
        .to_string();
    eventually(Duration::from_secs(20), "the linked drill", || {
        serve.store().join(&second).join("journal.jsonl").exists()
    });
    let linked = &journal(&serve.store().join(&second))[0];
    assert_eq!(linked["mode"], "drill");
    assert_eq!(linked["inputs"]["api"], "http://127.0.0.1:9/second-key");
    assert!(
        linked["trigger"].as_str().unwrap().contains(&id),
        "{linked}"
    );
    assert!(has("inject_fired", "by", "slack:U0APPROVE1"));
    // The inject after `revoke` came once it had settled.
    assert!(
        at(&records, "inject_fired", None) < at(&records, "step_succeeded", Some("revoke")),
        "the timed inject first"
    );
    let after = records
        .iter()
        .position(|r| r["event"] == "inject_fired" && r["name"] == "second-key")
        .unwrap();
    let revoked = records
        .iter()
        .position(|r| r["event"] == "step_succeeded" && r["step"] == "revoke")
        .unwrap();
    assert!(after > revoked);
    // Nothing real was touched: no request, no revocation in Slack.
    assert!(api.seen().is_empty(), "{:?}", api.seen());
    assert!(slack.calls_to("auth.revoke").is_empty());
    let status_msg = slack
        .messages()
        .into_iter()
        .find(|m| m.thread_ts.is_none() && m.text.contains(&id) && m.text.contains("started by"))
        .expect("the status message");
    assert!(status_msg.text.contains("— DRILL"), "{}", status_msg.text);
    let audit = serve.audit();
    let injects: Vec<&str> = audit
        .iter()
        .filter(|a| a["action"] == "facilitate")
        .map(|a| a["decision"].as_str().unwrap())
        .collect();
    assert_eq!(injects, ["denied", "allowed"]);
}

#[test]
fn an_injects_faults_break_an_action_until_it_ends() {
    // The API is down from 1 s to 16 s of the drill: the revocation, once
    // approved at 5 s, fails until then and succeeds on a later attempt.
    let runbook = DRILL_RUNBOOK.replace(
        "    approval: {}\n",
        "    approval: {}\n    retry: { attempts: 8, initial: 2s, max: 5s }\n",
    );
    let scenario = r#"defaults: { latency: 1s }
manual:
  revoke: { after: 5s }
  exposure: { after: 1s, answer: "a gist" }
injects:
  - name: api-down
    at: 1s
    lasts: 15s
    message: "the API answers 503"
    faults: { http.request: server_error }
"#;
    let (out, _d) = drill(&runbook, scenario, "50x").run();
    out.code(0);
    let records = journal(&out.incident());
    let failed: Vec<&Value> = records
        .iter()
        .filter(|r| r["event"] == "attempt_failed" && r["step"] == "revoke")
        .collect();
    assert!(!failed.is_empty(), "{records:?}");
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("503 (simulated)"),
        "{}",
        failed[0]
    );
    let ended = at(&records, "inject_ended", None);
    assert!((16_000..21_000).contains(&ended), "ended at {ended} ms");
    let revoked = at(&records, "step_succeeded", Some("revoke"));
    assert!(
        revoked > ended,
        "revoked at {revoked} ms, before the inject ended"
    );
    assert!(
        out.stdout
            .contains("inject `api-down` (scenario): the API answers 503")
    );
}

#[test]
fn a_bad_inject_is_an_error_where_it_is_written() {
    let scenario = "injects:\n  - name: api-down\n    at: 1s\n    after: nowhere\n    message: m\n  - name: late\n    after: revok\n    message: m\n";
    let (out, _d) = drill(DRILL_RUNBOOK, scenario, "real").run();
    out.code(2);
    assert!(
        out.stderr
            .contains("inject `api-down` has both `at` and `after`"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("s.yaml:4:12"), "{}", out.stderr);
    // What it names of the runbook is checked against it.
    let scenario =
        "injects:\n  - name: late\n    after: revok\n    message: m\n    leak: { ap: x }\n";
    let (out, _d) = drill(DRILL_RUNBOOK, scenario, "real").run();
    out.code(2);
    for want in [
        "`revok` is not a step of `drill-me`",
        "s.yaml:3:12",
        "did you mean `revoke`",
        "`ap` is not an input of `drill-me`",
        "s.yaml:5:13",
    ] {
        assert!(out.stderr.contains(want), "{want}: {}", out.stderr);
    }
}

#[test]
fn a_drill_scores_its_people_and_compares_itself_with_the_earlier_drills() {
    let play = |store: Option<&str>| {
        let mut args = vec![
            "rehearse",
            "rb.yaml",
            "--scenario",
            "s.yaml",
            "--pace",
            "100x",
        ];
        if let Some(store) = store {
            args = [&["--store", store][..], &args].concat();
        }
        let (out, d) = Test::new()
            .file("rb.yaml", DRILL_RUNBOOK)
            .file("s.yaml", DRILL_SCENARIO)
            .args(&args)
            .run();
        out.code(0);
        (out, d)
    };
    let (first, _d) = play(None);
    let one = first.incident();
    let store = one.parent().unwrap().to_path_buf();
    let one = one.file_name().unwrap().to_str().unwrap().to_string();
    let (_second, _d2) = play(Some(store.to_str().unwrap()));
    let two = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with("INC-") && *n != one)
        .unwrap();
    let store = store.to_str().unwrap();
    let second = std::path::Path::new(store).join(&two);
    let md = std::fs::read_to_string(second.join("incident.md")).unwrap();
    let card = &md[md.find("## Drill scorecard").expect("a scorecard")..];
    // The scripted approval (30 s) and answer (1m 30s) inside the
    // runbook's targets (2m, 10m). At 100x, a scheduling delay of 10 ms on a
    // loaded machine is a second of the drill's time: late, never early.
    let took = |row: &str| -> f64 {
        let cells: Vec<&str> = card
            .lines()
            .find(|l| l.starts_with(row))
            .unwrap_or_else(|| panic!("no row `{row}`: {card}"))
            .split('|')
            .map(str::trim)
            .collect();
        let (m, s) = cells[3].split_once("m ").unwrap_or(("0", cells[3]));
        m.parse::<f64>().unwrap() * 60.0 + s.trim_end_matches('s').parse::<f64>().unwrap()
    };
    let approval = took("| approval of `revoke` | alice |");
    assert!((30.0..36.0).contains(&approval), "{approval} s: {card}");
    assert!(card.contains("| 2m 00s | met |"), "{card}");
    let answer = took("| answer to `exposure` | bob |");
    assert!((90.0..96.0).contains(&answer), "{answer} s: {card}");
    assert!(card.contains(&format!("| {one} |")), "{card}");
    assert!(
        card.contains(&format!("| **{two}** (this drill) |")),
        "{card}"
    );
    let html = std::fs::read_to_string(second.join("incident.html")).unwrap();
    assert!(html.contains("<svg class=\"sparkline\""), "a sparkline");

    let (list, _d3) = Test::new()
        .args(&["--store", store, "drills", "drill-me", "--format", "json"])
        .run();
    list.code(0);
    let drills: Value = serde_json::from_str(&list.stdout).unwrap();
    let ids: Vec<&str> = drills
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [one.as_str(), two.as_str()]);
    let actions = &drills[1]["scorecard"]["actions"];
    assert_eq!(actions[0]["met"], true);
    assert_eq!(actions[1]["met"], true);
    let ttr = drills[1]["scorecard"]["time_to_revoke_ms"]
        .as_u64()
        .unwrap();
    assert!((50_000..60_000).contains(&ttr), "revoked in {ttr} ms");
    let (table, _d4) = Test::new().args(&["--store", store, "drills"]).run();
    assert!(table.stdout.contains("2/2 met"), "{}", table.stdout);
}

#[test]
fn an_interrupted_drill_resumes_as_a_drill_at_its_pace() {
    let mut running = drill(DRILL_RUNBOOK, DRILL_SCENARIO, "20x").spawn();
    let store = running.dir.path().join("incidents");
    let approved = || {
        std::fs::read_dir(&store)
            .ok()
            .and_then(|mut d| d.next())
            .is_some_and(|e| {
                std::fs::read_to_string(e.unwrap().path().join("journal.jsonl"))
                    .is_ok_and(|j| j.contains("approval_granted"))
            })
    };
    crate::slack::eventually(std::time::Duration::from_secs(20), "the approval", approved);
    // The revocation in flight finishes; nothing new starts.
    running.terminate().code(130);
    let dir = std::fs::read_dir(&store)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let (resumed, _d) = Test::new()
        .args(&["--store", store.to_str().unwrap(), "resume", &id])
        .run();
    resumed.code(0);
    let records = journal(&dir);
    let ts: Vec<&str> = records.iter().map(|r| r["ts"].as_str().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "time runs on: {ts:?}");
    assert_eq!(
        records
            .iter()
            .filter(|r| r["event"] == "incident_started")
            .count(),
        1
    );
    // The scripted answer comes 40 s of the drill's time after it resumed.
    let answered = at(&records, "task_answered", Some("exposure"));
    let resumed_at = at(&records, "incident_resumed", None);
    assert!(
        (40_000..46_000).contains(&(answered - resumed_at)),
        "answered {} ms after resuming",
        answered - resumed_at
    );
}

#[test]
fn a_bad_drill_target_is_an_error_where_it_is_written() {
    let runbook = DRILL_RUNBOOK.replace("approve_within: 2m", "approve_within: soon");
    let (out, _d) = Test::new()
        .file("rb.yaml", &runbook)
        .args(&["validate", "rb.yaml"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("bad duration for `drill.approve_within`")
            && out.stderr.contains("rb.yaml:3:26"),
        "{}",
        out.stderr
    );
}
