//! The PostgreSQL store against a real PostgreSQL: a round trip, the
//! lease's fencing, takeover by a second replica when the first dies, one
//! run of a follow-up across runners, and the refusals at start.

use std::time::{Duration, Instant};

use crate::hooks::{self, Serve};
use crate::slack::{click_body, command_body, signed};
use crate::support::Test;
use crate::support::fake_api::FakeApi;
use crate::support::fake_slack::{BOT_TOKEN, FakeSlack};
use crate::support::postgres::{PASSWORD, Postgres};

/// Three steps in a row; `second` is idempotent or not as asked.
fn runbook(idempotent: bool) -> String {
    format!(
        r#"
name: slow
inputs: {{ api: {{ example: "http://127.0.0.1:1" }} }}
secrets:
  leaked: {{ description: the leaked token }}
steps:
  - {{ id: first, phase: revoke, action: http.request, with: {{ method: POST, url: "{{{{inputs.api}}}}/a", headers: {{ Authorization: "Bearer {{{{secrets.leaked}}}}" }} }} }}
  - {{ id: second, phase: replace, needs: [first], idempotent: {idempotent}, action: http.request, with: {{ method: POST, url: "{{{{inputs.api}}}}/b" }} }}
  - {{ id: third, phase: notify, needs: [second], action: http.request, with: {{ method: POST, url: "{{{{inputs.api}}}}/c" }} }}
  - {{ id: later, phase: revoke, needs: [third], after: 7d, action: http.request, with: {{ method: POST, url: "{{{{inputs.api}}}}/d" }} }}
"#
    )
}

const LEAKED: &str = "leaked-token-value-5b2e8d41c9";

/// The start of a `quench.toml` that keeps incidents in the database,
/// their lease `lease` long; its password in the environment ([`on`]).
fn store_config(pg: &Postgres, lease: &str) -> String {
    format!(
        "store = \"{}\"\n[postgres]\npassword = \"env:QUENCH_TEST_DB_PASSWORD\"\nlease = \"{lease}\"\n",
        pg.url()
    )
}

/// `test` given the database's password, as [`store_config`] reads it.
fn on(test: Test) -> Test {
    test.env("QUENCH_TEST_DB_PASSWORD", PASSWORD)
}

/// A quench using the database, its lease `lease` long.
fn quench(pg: &Postgres, lease: &str, idempotent: bool) -> Test {
    on(Test::new())
        .env("LEAKED", LEAKED)
        .env(
            "SLACK_SIGNING_SECRET",
            "signing-secret-for-tests-0123456789",
        )
        .file("quench.toml", &store_config(pg, lease))
        .file("rb.yaml", &runbook(idempotent))
        .file(
            "slow.yaml",
            "clock: realtime\ndefaults: { latency: 700ms }\n",
        )
}

fn rehearse_slow(t: Test) -> Test {
    t.args(&[
        "rehearse",
        "rb.yaml",
        "--scenario",
        "slow.yaml",
        "--secret",
        "leaked=env:LEAKED",
    ])
}

fn count(pg: &Postgres, event: &str, step: &str) -> usize {
    // Nothing until the first quench has made the tables.
    if pg.psql("SELECT to_regclass('quench_journal') IS NULL") == "t" {
        return 0;
    }
    pg.psql(&format!(
        "SELECT count(*) FROM quench_journal WHERE record LIKE '%\"event\":\"{event}\"%' \
         AND record LIKE '%\"step\":\"{step}\"%'"
    ))
    .parse()
    .unwrap()
}

fn finished(pg: &Postgres) -> bool {
    pg.psql(
        "SELECT count(*) FROM quench_journal WHERE record LIKE '%\"event\":\"incident_finished\"%'",
    ) != "0"
}

fn wait_for(what: &str, within: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    start.elapsed()
}

#[test]
fn an_incident_round_trips_through_the_database_and_holds_no_secret() {
    let pg = Postgres::start();
    let (out, _d) = quench(&pg, "15s", true)
        .args(&["rehearse", "rb.yaml", "--secret", "leaked=env:LEAKED"])
        .run();
    out.code(0);
    let id = pg.psql("SELECT id FROM quench_incidents");
    assert!(id.starts_with("INC-"), "{id}");
    // Another machine with only the URL: list and report.
    let (listed, _d) = quench(&pg, "15s", true).args(&["list", "incidents"]).run();
    listed.code(0);
    assert!(listed.stdout.contains(&id), "{}", listed.stdout);
    let (report, _d) = Test::new()
        .env("PGPASSWORD", PASSWORD)
        .args(&["--store", &pg.url(), "report", &id, "--format", "json"])
        .run();
    report.code(0);
    assert!(
        report.stdout.contains("\"runbook\": \"slow\""),
        "{}",
        report.stdout
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM quench_documents WHERE name = 'incident.md'"),
        "1"
    );
    assert_eq!(pg.psql("SELECT finished FROM quench_incidents"), "t");
    let dump = pg.dump();
    assert!(dump.contains("first"), "the journal is there");
    assert!(!dump.contains(LEAKED), "a secret in the database");
    assert!(
        !dump.contains(PASSWORD),
        "the store's password in the database"
    );
    // The journal is append-only.
    let (ok, _) = std::panic::catch_unwind(|| pg.psql("DELETE FROM quench_journal"))
        .map(|_| (true, ()))
        .unwrap_or((false, ()));
    assert!(!ok, "a journal row was deleted");
}

#[test]
fn a_runner_whose_lease_was_taken_stops_before_its_next_step() {
    let pg = Postgres::start();
    let mut a = rehearse_slow(quench(&pg, "1s", true)).spawn();
    wait_for("`second` starts", Duration::from_secs(20), || {
        count(&pg, "step_started", "second") == 1
    });
    pg.psql(
        "UPDATE quench_leases SET owner = 'thief', epoch = epoch + 1, \
         expires_at = clock_timestamp() + interval '1 hour'",
    );
    let out = a.terminate_when_done(Duration::from_secs(20));
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("no longer holds the lease"),
        "{}",
        out.stderr
    );
    assert_eq!(
        count(&pg, "step_started", "third"),
        0,
        "a step after the fence"
    );
    assert!(!finished(&pg));
}

/// A replica dies (SIGKILL) with `second` in flight; a `serve` replica
/// takes the incident over once the lease expires.
fn killed_then_taken_over(idempotent: bool) -> (Postgres, Duration) {
    let pg = Postgres::start();
    let mut a = rehearse_slow(quench(&pg, "1s", idempotent)).spawn();
    // B is already serving, as a replica would be.
    let _b = quench(&pg, "1s", idempotent)
        .args(&["serve", "--listen", "127.0.0.1:0"])
        .spawn();
    wait_for("`second` starts", Duration::from_secs(20), || {
        count(&pg, "step_started", "second") == 1
    });
    let mut child = a.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    wait_for("B finishes it", Duration::from_secs(1 + 5 + 3), || {
        finished(&pg)
    });
    let took = killed.elapsed();
    assert_eq!(count(&pg, "step_succeeded", "first"), 1);
    assert_eq!(pg.psql("SELECT epoch FROM quench_leases"), "2");
    (pg, took)
}

#[test]
fn a_replica_killed_mid_step_is_taken_over_and_only_the_step_in_flight_repeats() {
    let (pg, took) = killed_then_taken_over(true);
    assert_eq!(count(&pg, "step_started", "second"), 2);
    assert_eq!(count(&pg, "step_succeeded", "second"), 1);
    assert_eq!(count(&pg, "step_succeeded", "third"), 1);
    assert_eq!(
        count(&pg, "incident_resumed", "second"),
        0,
        "`step` is not a field of the resumption"
    );
    let resumed = pg.psql(
        "SELECT record FROM quench_journal WHERE record LIKE '%\"event\":\"incident_resumed\"%'",
    );
    assert!(resumed.contains("\"rerun\":[\"second\"]"), "{resumed}");
    // The lease (1 s) and 5 s, plus the two steps left (0.7 s each).
    assert!(
        took < Duration::from_millis(1_000 + 5_000 + 1_400),
        "{took:?}"
    );
}

#[test]
fn a_non_idempotent_step_in_flight_at_takeover_waits_for_a_human() {
    let (pg, _) = killed_then_taken_over(false);
    assert_eq!(count(&pg, "step_started", "second"), 1, "it ran again");
    assert_eq!(count(&pg, "step_started", "third"), 0);
    let resumed = pg.psql(
        "SELECT record FROM quench_journal WHERE record LIKE '%\"event\":\"incident_resumed\"%'",
    );
    assert!(resumed.contains("\"held\":[\"second\"]"), "{resumed}");
    assert_eq!(count(&pg, "task_opened", "second"), 1);
}

#[test]
fn a_follow_up_due_runs_once_across_two_runners() {
    let pg = Postgres::start();
    let (out, _d) = quench(&pg, "15s", true)
        .args(&["rehearse", "rb.yaml", "--secret", "leaked=env:LEAKED"])
        .run();
    out.code(0);
    let tick = || {
        quench(&pg, "15s", true)
            .args(&["tick", "--now", "2099-01-01T00:00:00Z"])
            .spawn()
    };
    let (mut one, mut two) = (tick(), tick());
    let (one, two) = (
        one.terminate_when_done(Duration::from_secs(30)),
        two.terminate_when_done(Duration::from_secs(30)),
    );
    assert_eq!(
        (one.code, two.code),
        (0, 0),
        "{}\n{}",
        one.stderr,
        two.stderr
    );
    assert_eq!(count(&pg, "step_succeeded", "later"), 1);
}

#[test]
fn postgresql_restarted_mid_incident_loses_no_record() {
    let pg = Postgres::start();
    let mut a = rehearse_slow(quench(&pg, "15s", true)).spawn();
    wait_for("`second` starts", Duration::from_secs(20), || {
        count(&pg, "step_started", "second") == 1
    });
    pg.restart();
    let out = a.terminate_when_done(Duration::from_secs(30));
    out.code(0);
    let seqs = pg.psql("SELECT string_agg(seq::text, ',' ORDER BY seq) FROM quench_journal");
    let n = seqs.split(',').count();
    let expected: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
    assert_eq!(seqs, expected.join(","));
    assert!(finished(&pg));
}

#[test]
fn a_password_in_the_url_is_refused() {
    let (out, _d) = Test::new()
        .args(&[
            "--store",
            "postgres://quench:hunter2-in-argv@127.0.0.1:1/quench",
            "list",
            "incidents",
        ])
        .run();
    out.code(2);
    assert!(out.stderr.contains("holds a password"), "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
}

#[test]
fn a_wrong_password_or_a_database_down_is_a_clear_error_naming_the_host() {
    let pg = Postgres::start();
    let (out, _d) = Test::new()
        .env("PGPASSWORD", "wrong-password-value-1234")
        .args(&["--store", &pg.url(), "list", "incidents"])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{}", pg.port)),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("password authentication failed"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("wrong-password-value"),
        "{}",
        out.stderr
    );
    pg.stop();
    let (out, _d) = Test::new()
        .env("PGPASSWORD", PASSWORD)
        .args(&["--store", &pg.url(), "list", "incidents"])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("failed to connect to the store"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("127.0.0.1:{}", pg.port)),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(PASSWORD), "{}", out.stderr);
}

#[test]
fn a_database_with_a_newer_schema_is_refused() {
    let pg = Postgres::start();
    let (out, _d) = quench(&pg, "15s", true).args(&["list", "incidents"]).run();
    out.code(0);
    pg.psql("UPDATE quench_schema SET version = 99");
    let (out, _d) = quench(&pg, "15s", true).args(&["list", "incidents"]).run();
    out.code(2);
    assert!(
        out.stderr
            .contains("schema version 99; this quench knows up to version 2"),
        "{}",
        out.stderr
    );
}

/// Not a timed test: the takeover time after a replica dies, median of 10,
/// with a 1 s lease and the second replica already serving. Run with
/// `cargo test --test cli -- --ignored takeover_time --nocapture`.
#[test]
#[ignore = "a benchmark"]
#[expect(clippy::print_stderr, reason = "a benchmark's report")]
fn takeover_time() {
    let pg = Postgres::start();
    let mut b = quench(&pg, "1s", true)
        .args(&["serve", "--listen", "127.0.0.1:0"])
        .spawn();
    std::thread::sleep(Duration::from_secs(3));
    if let Ok(Some(_)) = b.child.as_mut().unwrap().try_wait() {
        panic!("{}", b.terminate_when_done(Duration::from_secs(1)).stderr);
    }
    let mut times = Vec::new();
    for round in 1..=10 {
        let mut a = rehearse_slow(quench(&pg, "1s", true)).spawn();
        // Each round before it starts `second` once and its takeover once more.
        wait_for("`second` starts", Duration::from_secs(20), || {
            count(&pg, "step_started", "second") == 2 * round - 1
        });
        let mut child = a.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let killed = Instant::now();
        let resumed = || {
            pg.psql("SELECT count(*) FROM quench_journal WHERE record LIKE '%\"event\":\"incident_resumed\"%'")
                == round.to_string()
        };
        while !resumed() {
            if killed.elapsed() > Duration::from_secs(10) {
                let out = b.terminate_when_done(Duration::from_secs(1));
                panic!(
                    "not taken over:\n{}\n{}\n{}",
                    out.stdout,
                    out.stderr,
                    pg.dump()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(killed.elapsed());
        wait_for("finished", Duration::from_secs(10), || {
            pg.psql("SELECT count(*) FROM quench_incidents WHERE finished") == round.to_string()
        });
    }
    times.sort();
    eprintln!(
        "takeover after SIGKILL, lease 1 s: median {:?}, min {:?}, max {:?}",
        times[5], times[0], times[9]
    );
}

/// A signed slash command captured and sent to a second replica is a
/// replay there too: the replicas share what they have seen.
#[test]
fn a_slash_command_replayed_to_another_replica_is_refused() {
    use crate::slack::{command_body, http, signature};
    let pg = Postgres::start();
    let mut a = quench(&pg, "15s", true)
        .args(&["serve", "--listen", "127.0.0.1:0"])
        .spawn();
    let mut b = quench(&pg, "15s", true)
        .args(&["serve", "--listen", "127.0.0.1:0"])
        .spawn();
    let (a_addr, _a_out) = crate::support::serving(&mut a);
    let (b_addr, _b_out) = crate::support::serving(&mut b);
    let body = command_body("U0SOMEONE1", "help", "cmd");
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = signature("signing-secret-for-tests-0123456789", &ts, &body);
    let headers = [
        ("X-Slack-Request-Timestamp", ts.as_str()),
        ("X-Slack-Signature", sig.as_str()),
    ];
    let (first, _) = http(&a_addr, "/slack/commands", &body, &headers);
    assert_eq!(first, 200, "the first replica takes it");
    let (again, _) = http(&b_addr, "/slack/commands", &body, &headers);
    assert_eq!(again, 401, "the other replica refuses the replay");
    let (same, _) = http(&a_addr, "/slack/commands", &body, &headers);
    assert_eq!(same, 401, "and so does the first");
    assert_eq!(
        pg.psql("SELECT count(*) FROM quench_replays WHERE key LIKE 'slack:%'"),
        "1"
    );
}

/// Audit log `log`'s entries in the database, oldest first.
fn audit(pg: &Postgres, log: &str) -> Vec<serde_json::Value> {
    if pg.psql("SELECT to_regclass('quench_audit') IS NULL") == "t" {
        return Vec::new();
    }
    pg.psql(&format!(
        "SELECT entry FROM quench_audit WHERE log = '{log}' ORDER BY id"
    ))
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect()
}

/// A `serve` replica on the database with the hooks' configuration, the
/// canary's keys revoked at `keys`.
fn hook_replica(pg: &Postgres, keys: &FakeApi) -> Serve {
    Serve::start(
        on(hooks::hooked(Test::new(), &keys.url()))
            .file("runbooks/hook-gh.yaml", hooks::HOOK_GH)
            .file(
                "quench.toml",
                &format!("{}{}", store_config(pg, "15s"), hooks::CONFIG),
            ),
    )
}

/// A detector that retries a delivery sends it to another replica, signed
/// anew: the replicas share which deliveries of which credential they
/// took, and one incident responds.
#[test]
fn the_same_hook_delivered_to_both_replicas_starts_one_incident() {
    let pg = Postgres::start();
    let keys = FakeApi::start();
    let (a, b) = (hook_replica(&pg, &keys), hook_replica(&pg, &keys));
    let body =
        serde_json::json!({"key": {"id": "key-0042", "value": "sk_live_CanaryKeyValue0042"}})
            .to_string();
    let now = chrono::Utc::now().timestamp();
    let send = |to: &Serve, ts: i64| {
        to.generic_delivery(
            "canary",
            &body,
            (hooks::GENERIC_SECRET, ts),
            Some("dlv-0042"),
        )
    };
    let (to_a, to_b) = std::thread::scope(|s| {
        let to_a = s.spawn(|| send(&a, now));
        let to_b = s.spawn(|| send(&b, now - 1));
        (to_a.join().unwrap(), to_b.join().unwrap())
    });
    assert_eq!((to_a.0, to_b.0), (202, 202), "{to_a:?} {to_b:?}");
    wait_for("the incident", Duration::from_secs(30), || finished(&pg));
    // The replica that lost says so in the shared log; nothing else starts.
    wait_for("both replicas decide", Duration::from_secs(10), || {
        audit(&pg, "hooks")
            .iter()
            .filter(|e| e["decision"] == "started" || e["decision"] == "duplicate")
            .count()
            == 2
    });
    assert_eq!(pg.psql("SELECT count(*) FROM quench_incidents"), "1");
    assert_eq!(keys.seen().len(), 1, "the key was revoked once");
    let id = pg.psql("SELECT id FROM quench_incidents");
    let duplicate: Vec<_> = audit(&pg, "hooks")
        .into_iter()
        .filter(|e| e["decision"] == "duplicate")
        .collect();
    assert_eq!(duplicate.len(), 1, "{duplicate:?}");
    assert_eq!(duplicate[0]["incident"], id.as_str());
}

const SIGNING_SECRET: &str = "signing-secret-for-tests-0123456789";
/// The one Slack user the rules let do anything.
const HUMAN: &str = "U0ALLOWED1";
const RULES: &str = r#"
[[chatops.allow]]
users = ["U0ALLOWED1"]
actions = ["run", "rehearse", "approve", "answer"]
"#;

/// Three live requests to `api`; `second` takes 3 s and may not run
/// twice.
const LIVE: &str = r#"name: live
inputs: { api: { example: "http://127.0.0.1:1" } }
steps:
  - { id: first, phase: revoke, action: http.request, with: { method: GET, url: "{{inputs.api}}/slow/10" } }
  - { id: second, phase: replace, needs: [first], idempotent: false, action: http.request, with: { method: GET, url: "{{inputs.api}}/slow/3000" } }
  - { id: third, phase: notify, needs: [second], action: http.request, with: { method: GET, url: "{{inputs.api}}/slow/10" } }
"#;

/// A task left open for a human while a request to `api` runs.
const TASKED: &str = r#"name: tasked
inputs: { api: { example: "http://127.0.0.1:1" } }
steps:
  - { id: review, phase: review, action: manual.task, with: { prompt: "Where did it leak?" } }
  - { id: slow, phase: revoke, action: http.request, with: { method: GET, url: "{{inputs.api}}/slow/4000" } }
"#;

/// A `serve` replica on the database that Slack talks to, with `slack` as
/// its Web API; its lease `lease` long.
fn slack_replica(pg: &Postgres, lease: &str, slack: &FakeSlack) -> Serve {
    Serve::start(
        on(Test::new())
            .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("SLACK_API_URL", &slack.api_url())
            .env("SLACK_BOT_TOKEN", BOT_TOKEN)
            .file(
                "quench.toml",
                &format!("{}{RULES}", store_config(pg, lease)),
            )
            .file("runbooks/live.yaml", LIVE)
            .file("runbooks/tasked.yaml", TASKED),
    )
}

/// `/quench TEXT` from [`HUMAN`], signed now; the answer.
fn command(to: &Serve, text: &str) -> serde_json::Value {
    let body = command_body(HUMAN, text, "cmd");
    let (status, answer) = signed(&to.addr, "/slack/commands", &body, SIGNING_SECRET, 0);
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str(&answer).unwrap()
}

/// The journal's records of `event`, as stored.
fn records(pg: &Postgres, event: &str) -> String {
    pg.psql(&format!(
        "SELECT string_agg(record, E'\\n' ORDER BY incident, seq) FROM quench_journal \
         WHERE record LIKE '%\"event\":\"{event}\"%'"
    ))
}

/// The replica that takes over asks in the incident's channel, with a
/// button naming the step in flight, whether to run it again; a click,
/// which Slack may deliver to another replica, runs it, and the incident
/// finishes on the replica that asked.
#[test]
fn a_step_held_at_takeover_is_confirmed_by_a_button_on_the_replica_that_took_over() {
    let pg = Postgres::start();
    let slack = FakeSlack::start(&[]);
    let api = FakeApi::start();
    let mut a = slack_replica(&pg, "1s", &slack);
    let others = [
        slack_replica(&pg, "1s", &slack),
        slack_replica(&pg, "1s", &slack),
    ];
    let ack = command(&a, &format!("run live api={}", api.url()));
    assert_eq!(ack["response_type"], "in_channel", "{ack}");
    wait_for("`second` starts", Duration::from_secs(20), || {
        count(&pg, "step_started", "second") == 1
    });
    let mut child = a.running.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let question = || {
        slack
            .messages()
            .into_iter()
            .find(|m| m.blocks.to_string().contains("quench_approve"))
    };
    wait_for("B asks", Duration::from_secs(15), || question().is_some());
    let q = question().unwrap();
    assert!(
        q.text
            .contains("approve step `second` (re-run `http.request`"),
        "{}",
        q.text
    );
    assert!(!finished(&pg), "it waits for the human");
    assert_eq!(count(&pg, "step_started", "third"), 0);
    let value = q.blocks[1]["elements"][0]["value"].as_str().unwrap();
    // The click reaches the replica that did not ask.
    let owner = pg.psql("SELECT owner FROM quench_leases");
    let asked =
        |s: &Serve| owner.contains(&format!(" pid {} ", s.running.child.as_ref().unwrap().id()));
    assert_eq!(others.iter().filter(|s| asked(s)).count(), 1, "{owner}");
    let elsewhere = others.iter().find(|s| !asked(s)).unwrap();
    let click = click_body(HUMAN, "quench_approve", value, &slack.response_url("ok"));
    let (status, _) = signed(
        &elsewhere.addr,
        "/slack/interactions",
        &click,
        SIGNING_SECRET,
        0,
    );
    assert_eq!(status, 200);
    wait_for("B finishes it", Duration::from_secs(20), || finished(&pg));
    assert_eq!(count(&pg, "step_started", "second"), 2, "run again once");
    assert_eq!(count(&pg, "step_succeeded", "second"), 1);
    assert_eq!(count(&pg, "step_succeeded", "third"), 1);
    assert!(
        records(&pg, "incident_resumed").contains("\"rerun\":[\"second\"]"),
        "{}",
        pg.dump()
    );
    assert!(records(&pg, "incident_finished").contains("\"outcome\":\"succeeded\""));
    // The question says who answered; B's status message, the result.
    wait_for("B's status message", Duration::from_secs(10), || {
        slack
            .messages()
            .iter()
            .any(|m| m.text.contains("*Result: succeeded*"))
    });
    let q = slack.messages().into_iter().find(|m| m.ts == q.ts).unwrap();
    assert!(q.text.contains("approved by <@U0ALLOWED1>"), "{}", q.text);
    // The command (on A) and the click (on B), in the one audit log.
    let audit = audit(&pg, "chatops");
    let paths: Vec<&str> = audit
        .iter()
        .filter(|e| e["decision"] == "allowed")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/slack/commands", "/slack/interactions"]);
    let forwarded = audit.iter().find(|e| e["forwarded"] == true).unwrap();
    assert_eq!(forwarded["approved"], true);
    assert_eq!(forwarded["user"], HUMAN);
}

/// `/quench done` reaches a replica that does not run the incident: the
/// answer waits in the database's inbox, and the runner journals it.
#[test]
fn done_answered_on_one_replica_reaches_an_incident_the_other_runs() {
    let pg = Postgres::start();
    let slack = FakeSlack::start(&[]);
    let api = FakeApi::start();
    let (a, b) = (
        slack_replica(&pg, "15s", &slack),
        slack_replica(&pg, "15s", &slack),
    );
    command(&a, &format!("run tasked api={}", api.url()));
    wait_for("the open task", Duration::from_secs(20), || {
        count(&pg, "task_opened", "review") == 1
    });
    let id = pg.psql("SELECT id FROM quench_incidents");
    let answer = command(&b, &format!("done {id} review a public gist"));
    let text = answer["text"].as_str().unwrap();
    assert!(
        text.contains("answered `review`") && text.contains("running"),
        "{text}"
    );
    assert_eq!(pg.psql("SELECT count(*) FROM quench_inbox"), "1");
    wait_for("the answer journaled", Duration::from_secs(20), || {
        count(&pg, "task_answered", "review") == 1
    });
    assert!(records(&pg, "task_answered").contains("\"by\":\"slack:U0ALLOWED1\""));
    assert_eq!(count(&pg, "step_succeeded", "review"), 1);
    wait_for("the inbox emptied", Duration::from_secs(10), || {
        pg.psql("SELECT count(*) FROM quench_inbox") == "0"
    });
    // The documents in the database say so too.
    wait_for("the document", Duration::from_secs(10), || {
        pg.psql("SELECT encode(body, 'escape') FROM quench_documents WHERE name = 'incident.md'")
            .contains("a public gist")
    });
    drop(a);
}

/// Fifty signed commands at once, half to each replica: fifty incidents,
/// each started and finished once.
#[test]
fn fifty_concurrent_commands_over_two_replicas_start_fifty_incidents_once_each() {
    let pg = Postgres::start();
    let slack = FakeSlack::start(&[]);
    let replicas = [
        slack_replica(&pg, "15s", &slack),
        slack_replica(&pg, "15s", &slack),
    ];
    let acks: Vec<serde_json::Value> = std::thread::scope(|s| {
        let sent: Vec<_> = (0..50)
            .map(|i| {
                let to = &replicas[i % 2];
                s.spawn(move || command(to, "rehearse live api=http://127.0.0.1:1"))
            })
            .collect();
        sent.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids: Vec<String> = acks
        .iter()
        .map(|ack| {
            let text = ack["text"].as_str().unwrap_or_default();
            assert!(text.contains("started a rehearsal"), "{ack}");
            text.split('*').nth(1).unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 50, "an id given twice");
    wait_for("fifty incidents finish", Duration::from_secs(60), || {
        pg.psql("SELECT count(*) FROM quench_incidents WHERE finished") == "50"
    });
    assert_eq!(pg.psql("SELECT count(*) FROM quench_incidents"), "50");
    let once = |event: &str| {
        pg.psql(&format!(
            "SELECT count(DISTINCT incident) || ' ' || count(*) FROM quench_journal \
             WHERE record LIKE '%\"event\":\"{event}\"%'"
        ))
    };
    assert_eq!(once("incident_started"), "50 50");
    assert_eq!(once("incident_finished"), "50 50");
    assert_eq!(count(&pg, "step_succeeded", "third"), 50);
    let stored: Vec<String> = pg
        .psql("SELECT id FROM quench_incidents ORDER BY id")
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(stored, ids, "the incidents are the ones answered");
}
