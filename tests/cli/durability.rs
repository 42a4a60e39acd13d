//! Durable incidents: killed at every journal boundary and resumed, one
//! runner per incident, torn journals.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::Test;
use crate::support::fake_api::{FakeApi, NEW_SECRET};

fn runbook() -> String {
    format!(
        r#"
name: crashy
inputs: {{ api: {{ example: "http://127.0.0.1:1" }} }}
steps:
  - {{ id: revoke, phase: revoke, action: http.request, with: {{ method: POST, url: "{{{{inputs.api}}}}/keys/key-0001/revoke" }} }}
  - {{ id: new_key, phase: replace, needs: [revoke], action: http.request, with: {{ method: POST, url: "{{{{inputs.api}}}}/keys", outputs: {{ key_id: /id }} }} }}
  - {{ id: events, phase: audit, action: http.request, with: {{ url: "{{{{inputs.api}}}}/keys/key-0001/events", outputs: {{ count: /count }} }} }}
  - {{ id: update, phase: update, needs: [new_key], action: http.request, with: {{ method: PUT, url: "{{{{inputs.api}}}}/config/credential", json: {{ key_id: "{{{{steps.new_key.outputs.key_id}}}}", secret: "{NEW_SECRET}" }} }} }}
  - {{ id: verify, phase: update, needs: [update], action: http.request, with: {{ url: "{{{{inputs.api}}}}/whoami", headers: {{ Authorization: "Bearer {NEW_SECRET}" }} }} }}
  - {{ id: review, phase: review, action: manual.task, with: {{ prompt: "How?" }} }}
"#
    )
}

fn journal(dir: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn requests_by_path(api: &FakeApi) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in api.seen() {
        *out.entry(format!("{} {}", s.method, s.path)).or_default() += 1;
    }
    out
}

#[test]
fn killed_at_every_journal_boundary_an_incident_resumes_and_repeats_nothing_but_the_step_in_flight()
{
    // A clean run says how many records there are.
    let api = FakeApi::start();
    let (clean, _d) = Test::new()
        .file("rb.yaml", &runbook())
        .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .run();
    clean.code(0);
    let total = journal(&clean.incident()).len();
    assert!(total >= 12, "{total}");
    let paths = requests_by_path(&api);

    for kill_after in 1..total as u64 {
        let api = FakeApi::start();
        let (crashed, dir) = Test::new()
            .file("rb.yaml", &runbook())
            .env("QUENCH_FAULT_ABORT_AFTER_SEQ", &kill_after.to_string())
            .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
            .run();
        assert_ne!(crashed.code, 0, "kill point {kill_after} was not reached");
        let inc = crashed.incident();
        let before = journal(&inc);
        assert_eq!(
            before.len() as u64,
            kill_after,
            "every record up to the kill is on disk"
        );
        // What was in flight: started, never settled.
        let mut in_flight = Vec::new();
        for r in &before {
            let step = r["step"].as_str().unwrap_or_default().to_string();
            match r["event"].as_str().unwrap() {
                "step_started" => in_flight.push(step),
                "step_succeeded" | "step_failed" | "step_skipped" | "task_opened" => {
                    in_flight.retain(|s| *s != step)
                }
                _ => {}
            }
        }

        let id = inc.file_name().unwrap().to_str().unwrap().to_string();
        let store = crashed.dir.join("incidents");
        let (resumed, _d2) = Test::new()
            .args(&["--store", store.to_str().unwrap(), "resume", &id, "--yes"])
            .run();
        resumed.code(0);

        let after = journal(&inc);
        assert_eq!(
            &after[..before.len()],
            &before[..],
            "kill at {kill_after}: no event lost or changed"
        );
        let seqs: Vec<u64> = after.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
        assert_eq!(
            seqs,
            (1..=after.len() as u64).collect::<Vec<_>>(),
            "kill at {kill_after}"
        );
        assert_eq!(after.last().unwrap()["event"], "incident_finished");
        assert_eq!(
            after.last().unwrap()["outcome"],
            "succeeded",
            "kill at {kill_after}"
        );
        for step in ["revoke", "new_key", "events", "update", "verify"] {
            let wins = after
                .iter()
                .filter(|r| r["event"] == "step_succeeded" && r["step"] == step)
                .count();
            assert_eq!(
                wins, 1,
                "kill at {kill_after}: `{step}` succeeded {wins} times"
            );
        }
        // Side effects: each request once, except the one in flight, which
        // may have gone out before the crash and goes out again.
        let got = requests_by_path(&api);
        for (path, n) in &got {
            assert!(*n <= 2, "kill at {kill_after}: {path} sent {n} times");
        }
        // Steps run concurrently, so several may be in flight at once.
        let path_of = |step: &str| match step {
            "revoke" => "POST /keys/key-0001/revoke",
            "new_key" => "POST /keys",
            "events" => "GET /keys/key-0001/events",
            "update" => "PUT /config/credential",
            "verify" => "GET /whoami",
            _ => "",
        };
        let allowed: Vec<&str> = in_flight.iter().map(|s| path_of(s)).collect();
        for (path, n) in &got {
            assert!(
                *n == 1 || allowed.contains(&path.as_str()),
                "kill at {kill_after}: {path} repeated, but only {in_flight:?} were in flight"
            );
        }
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            paths.keys().collect::<Vec<_>>(),
            "kill at {kill_after}"
        );
        drop(dir);
    }
}

#[test]
fn a_step_in_flight_that_is_not_idempotent_waits_for_a_human() {
    let api = FakeApi::start();
    // Record 2 is `revoke` starting: an http.request, which is not
    // idempotent. Only `revoke` is ready at first (with `events` and `review`
    // also ready, which of the three journals its start first is a race).
    let rb = runbook()
        .replace(
            "phase: audit, action",
            "phase: audit, needs: [revoke], action",
        )
        .replace(
            "phase: review, action",
            "phase: review, needs: [revoke], action",
        );
    let (crashed, _d) = Test::new()
        .file("rb.yaml", &rb)
        .env("QUENCH_FAULT_ABORT_AFTER_SEQ", "2")
        .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .run();
    let inc = crashed.incident();
    let first = journal(&inc);
    let in_flight = first[1]["step"].as_str().unwrap().to_string();
    let id = inc.file_name().unwrap().to_str().unwrap().to_string();
    let store = crashed.dir.join("incidents");
    let (resumed, _d2) = Test::new()
        .args(&["--store", store.to_str().unwrap(), "resume", &id])
        .run();
    resumed.code(1);
    let after = journal(&inc);
    let resumed_event = after
        .iter()
        .find(|r| r["event"] == "incident_resumed")
        .unwrap();
    assert_eq!(resumed_event["held"], serde_json::json!([in_flight]));
    let md = std::fs::read_to_string(inc.join("incident.md")).unwrap();
    assert!(
        md.contains(&format!("`{in_flight}` was in flight when quench stopped")),
        "{md}"
    );
}

/// Crashes `rb` just after its one step started (record 2), resumes it
/// with nobody to ask, and returns the resume's exit code and journal.
fn crash_in_the_one_step_and_resume(rb: &str, api: &FakeApi) -> (i32, Vec<Value>) {
    let (crashed, _d) = Test::new()
        .file("rb.yaml", rb)
        .env("QUENCH_FAULT_ABORT_AFTER_SEQ", "2")
        .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .run();
    let inc = crashed.incident();
    assert_eq!(journal(&inc)[1]["event"], "step_started");
    let id = inc.file_name().unwrap().to_str().unwrap().to_string();
    let store = crashed.dir.join("incidents");
    let (resumed, _d2) = Test::new()
        .args(&["--store", store.to_str().unwrap(), "resume", &id])
        .run();
    (resumed.code, journal(&inc))
}

/// GET, HEAD, PUT and DELETE are idempotent by HTTP's definition: one in
/// flight at a crash runs again on resume without asking anyone.
#[test]
fn an_idempotent_http_method_in_flight_runs_again_on_resume() {
    for method in ["GET", "HEAD", "PUT", "DELETE"] {
        let api = FakeApi::start();
        let rb = format!(
            r#"
name: crashy
inputs: {{ api: {{ example: "http://127.0.0.1:1" }} }}
steps:
  - {{ id: check, phase: audit, action: http.request, with: {{ method: {method}, url: "{{{{inputs.api}}}}/whoami", expect_status: [200, 401, 404, 405] }} }}
"#
        );
        let (code, after) = crash_in_the_one_step_and_resume(&rb, &api);
        assert_eq!(code, 0, "{method}: {after:?}");
        let resumed = after
            .iter()
            .find(|r| r["event"] == "incident_resumed")
            .unwrap();
        assert_eq!(resumed["rerun"], serde_json::json!(["check"]), "{method}");
        assert_eq!(resumed["held"], serde_json::json!([]), "{method}");
    }
}

/// A step may say that running it twice does no harm, whatever its action.
#[test]
fn a_step_declared_idempotent_runs_again_on_resume_and_a_post_is_held() {
    let api = FakeApi::start();
    let post = r#"
name: crashy
inputs: { api: { example: "http://127.0.0.1:1" } }
steps:
  - { id: revoke, phase: revoke, action: http.request, IDEMPOTENT with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke" } }
"#;
    let (code, after) =
        crash_in_the_one_step_and_resume(&post.replace("IDEMPOTENT", "idempotent: true,"), &api);
    assert_eq!(code, 0, "{after:?}");
    let resumed = after
        .iter()
        .find(|r| r["event"] == "incident_resumed")
        .unwrap();
    assert_eq!(resumed["rerun"], serde_json::json!(["revoke"]));

    let api = FakeApi::start();
    let (code, after) = crash_in_the_one_step_and_resume(&post.replace("IDEMPOTENT", ""), &api);
    assert_eq!(code, 1, "{after:?}");
    let resumed = after
        .iter()
        .find(|r| r["event"] == "incident_resumed")
        .unwrap();
    assert_eq!(resumed["held"], serde_json::json!(["revoke"]));
}

#[test]
fn two_runners_of_one_incident_one_wins_the_other_says_why() {
    let api = FakeApi::start();
    let slow = r#"
name: slow
inputs: { api: { example: "http://127.0.0.1:1" } }
steps:
  - { id: first, phase: revoke, action: http.request, with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke" } }
  - { id: wait, phase: audit, needs: [first], action: http.request, with: { url: "{{inputs.api}}/slow/6000" } }
"#;
    // Interrupted right after `first` succeeds (record 4), so `wait` is left.
    let (crashed, _d) = Test::new()
        .file("rb.yaml", slow)
        .env("QUENCH_FAULT_ABORT_AFTER_SEQ", "3")
        .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .run();
    let inc = crashed.incident();
    let id = inc.file_name().unwrap().to_str().unwrap().to_string();
    let store = crashed.dir.join("incidents");
    let bin = env!("CARGO_BIN_EXE_quench");
    let mut winner = Command::new(bin)
        .args(["--store", store.to_str().unwrap(), "resume", &id, "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the winner holds the incident (its resume is journaled).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !std::fs::read_to_string(inc.join("journal.jsonl"))
        .unwrap()
        .contains("incident_resumed")
    {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let loser = Command::new(bin)
        .args(["--store", store.to_str().unwrap(), "resume", &id, "--yes"])
        .output()
        .unwrap();
    assert_eq!(loser.status.code(), Some(4));
    let stderr = String::from_utf8_lossy(&loser.stderr);
    assert!(
        stderr.contains(&format!(
            "incident `{id}` is being run by another quench (pid {}",
            winner.id()
        )),
        "{stderr}"
    );
    assert_eq!(winner.wait().unwrap().code(), Some(0));
    // Once it is done, the lock is free again (and the incident finished).
    let (again, _d3) = Test::new()
        .args(&["--store", store.to_str().unwrap(), "resume", &id])
        .run();
    again.code(2);
    assert!(
        again.stderr.contains("already finished (succeeded)"),
        "{}",
        again.stderr
    );
}

#[test]
fn a_torn_last_line_is_cut_and_said_and_other_damage_is_refused() {
    let api = FakeApi::start();
    let (crashed, _d) = Test::new()
        .file("rb.yaml", &runbook())
        .env("QUENCH_FAULT_ABORT_AFTER_SEQ", "4")
        .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .run();
    let inc = crashed.incident();
    let id = inc.file_name().unwrap().to_str().unwrap().to_string();
    let store = crashed.dir.join("incidents");
    let path = inc.join("journal.jsonl");
    let good = std::fs::read_to_string(&path).unwrap();

    // Damage in the middle: refused, with the line, and nothing is changed.
    let mut lines: Vec<&str> = good.lines().collect();
    lines[1] = "{\"v\":1,\"seq\":2,\"ts\":";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let (out, _d2) = Test::new()
        .args(&["--store", store.to_str().unwrap(), "resume", &id, "--yes"])
        .run();
    out.code(1);
    assert!(
        out.stderr
            .contains("journal.jsonl` line 2 is not a journal record"),
        "{}",
        out.stderr
    );

    // A torn tail, as a crash mid-write leaves: cut, said, and resumed.
    std::fs::write(&path, format!("{good}{{\"v\":1,\"seq\":5,\"ts\":\"2026-")).unwrap();
    let (out, _d3) = Test::new()
        .args(&["--store", store.to_str().unwrap(), "resume", &id, "--yes"])
        .run();
    out.code(0);
    assert!(
        out.stderr
            .contains("cut 26 bytes of a record torn by a crash mid-write (line 5)"),
        "{}",
        out.stderr
    );
    let after = journal(&inc);
    assert_eq!(after[4]["event"], "incident_resumed");
    assert!(after[4]["repaired"].as_str().unwrap().contains("torn"));
}

/// Issue 7: a new incident's directory is made while its runbook is still
/// being validated. A run refused before it begins (a broken runbook, a
/// missing input) leaves no incident behind.
#[test]
fn a_run_refused_before_it_begins_leaves_no_incident() {
    let broken = "name: broken\nsteps:\n  - { id: a, phase: revoke, action: http.nonesuch }\n";
    for (runbook, args) in [
        (broken.to_string(), vec!["run", "rb.yaml"]),
        (runbook(), vec!["run", "rb.yaml"]),
    ] {
        let (out, dir) = Test::new().file("rb.yaml", &runbook).args(&args).run();
        out.code(2);
        let store = dir.path().join("incidents");
        assert!(!store.exists(), "{}", out.stderr);
    }
}

/// A step that needs a secret output of a step that succeeded before a
/// crash cannot run on resume: quench never stored the secret. It fails
/// and says so, rather than sending the secret's marker (issue 7 changed
/// how the marker is found in its parameters).
#[test]
fn a_step_needing_a_secret_output_from_before_a_crash_fails_on_resume() {
    let runbook = r#"
name: secret-chain
inputs: { api: { example: "http://127.0.0.1:1" } }
steps:
  - { id: new_key, phase: replace, action: http.request, with: { method: POST, url: "{{inputs.api}}/keys", outputs: { key_id: /id, secret: /secret }, secret_outputs: [secret] } }
  - { id: update, phase: update, needs: [new_key], action: http.request, with: { method: PUT, url: "{{inputs.api}}/config/credential", json: { key_id: "{{steps.new_key.outputs.key_id}}", meta: { copies: ["{{steps.new_key.outputs.secret}}"] }, secret: "{{steps.new_key.outputs.secret}}" } } }
"#;
    let api = FakeApi::start();
    let (clean, _d) = Test::new()
        .file("rb.yaml", runbook)
        .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .run();
    clean.code(0);
    let succeeded = journal(&clean.incident())
        .iter()
        .find(|r| r["event"] == "step_succeeded" && r["step"] == "new_key")
        .map(|r| r["seq"].as_u64().unwrap())
        .unwrap();

    let api = FakeApi::start();
    let (crashed, _d1) = Test::new()
        .file("rb.yaml", runbook)
        .env("QUENCH_FAULT_ABORT_AFTER_SEQ", &succeeded.to_string())
        .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .run();
    assert_ne!(crashed.code, 0);
    let inc = crashed.incident();
    let id = inc.file_name().unwrap().to_str().unwrap().to_string();
    let store = crashed.dir.join("incidents");
    let (resumed, _d2) = Test::new()
        .args(&["--store", store.to_str().unwrap(), "resume", &id, "--yes"])
        .run();
    resumed.code(1);
    let failed = journal(&inc)
        .into_iter()
        .find(|r| r["event"] == "step_failed" && r["step"] == "update")
        .unwrap();
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("needs a secret output of an earlier step"),
        "{failed}"
    );
    assert!(
        !api.seen().iter().any(|s| s.path == "/config/credential"),
        "the marker was sent"
    );
}
