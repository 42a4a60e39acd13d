//! Detectors starting the response with nobody typing: `quench serve`
//! receiving GitHub secret-scanning deliveries signed as GitHub signs them,
//! AWS Health events as an EventBridge API destination sends them (IAM in
//! moto), and a generic hook's signed JSON; the alert, its location and
//! commit read from a local GitHub that answers as GitHub's REST API
//! documents, and tokens revoked through its `credentials/revoke`.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::fake_github::{ENGINE_TOKEN, FakeGithub, REPO};
use crate::support::fake_slack::{BOT_TOKEN, CHANNEL, FakeSlack};
use crate::support::{Output, Running, Test};

const WEBHOOK_SECRET: &str = "whsec-github-9f8e7d6c5b4a39281706";
pub(crate) const GENERIC_SECRET: &str = "whsec-canary-0a1b2c3d4e5f60718293";
const AWS_KEY: &str = "aws-destination-key-5e6f7a8b9c0d1e2f";
const SIGNING_SECRET: &str = "e3b0c44298fc1c149afbf4c8996fb924";
const PAT_TYPE: &str = "github_personal_access_token";
const COMMITTED: &str = "2026-12-06T08:30:00Z";

/// A GitHub token nobody else has: `ghp_` and 36 characters.
fn token(n: usize) -> String {
    format!("ghp_HookLeakedToken{n:017}AbCdEfGhIj")
}

pub(crate) const CONFIG: &str = r#"
[hooks]
channel = "C0SECINC01"

[hooks.github]
secret = "env:GITHUB_WEBHOOK_SECRET"

[hooks.generic.canary]
secret = "env:CANARY_SECRET"

[hooks.aws]
header = "x-quench-key"
value = "env:AWS_HOOK_KEY"

[[triggers]]
source = "github"
secret_types = ["github_personal_access_token"]
repos = ["acme/*"]
runbook = "hook-gh"
inputs = { repo = "{{repository}}", alert = "{{alert.number}}" }
unattended = ["revoke", "notify"]

[[triggers]]
source = "generic:canary"
runbook = "hook-api"
inputs = { key_id = "/key/id" }
secrets = { api_key = "/key/value" }
unattended = ["revoke"]

[[triggers]]
source = "aws"
runbook = "hook-aws"
inputs = { access_key_id = "{{access_key_id}}", iam_user = "{{iam_user}}" }
unattended = ["revoke"]

[[chatops.allow]]
users = ["tester"]
actions = ["approve"]
"#;

/// Revokes and proves the token dead (a verify step changes nothing, so it
/// runs unattended in `update`), then files an issue: the issue (`prevent`)
/// is not unattended.
pub(crate) const HOOK_GH: &str = r##"name: hook-gh
title: GitHub token from a hook
inputs:
  repo: { description: repository }
  alert: { description: alert number }
secrets:
  leaked_token: { description: the token }
steps:
  - id: revoke
    phase: revoke
    action: github.revoke_credentials
    with: { credentials: ["{{secrets.leaked_token}}"] }
    on_failure: abort
  - id: verify_dead
    phase: update
    needs: [revoke]
    action: github.verify_revoked
    with: { token: "{{secrets.leaked_token}}" }
  - id: document
    phase: document
    settled: [revoke, verify_dead]
    action: incident.document
"##;

const HOOK_GH_GATED: &str = r##"  - id: prevent
    phase: prevent
    needs: [revoke]
    action: github.create_issue
    timeout: 60s
    with: { repo: "{{inputs.repo}}", title: "Prevent leaks (alert {{inputs.alert}})", body: "- [ ] push protection" }
"##;

const HOOK_API: &str = r##"name: hook-api
title: An internal API key from a canary
inputs:
  key_id: { description: the key }
secrets:
  api_key: { description: its value }
steps:
  - id: revoke
    phase: revoke
    action: http.request
    with:
      method: POST
      url: "KEYS_URL/keys/{{inputs.key_id}}/revoke"
      headers: { authorization: "Bearer {{secrets.api_key}}" }
"##;

const HOOK_AWS: &str = r##"name: hook-aws
title: An AWS key AWS Health reported
inputs:
  access_key_id: { description: the key }
  iam_user: { description: its user }
steps:
  - id: deactivate
    phase: revoke
    action: aws.deactivate_access_key
    with: { user: "{{inputs.iam_user}}", access_key_id: "{{inputs.access_key_id}}" }
"##;

/// The hooks' configuration and runbooks, every secret in the environment.
pub(crate) fn hooked(test: Test, keys_url: &str) -> Test {
    test.env("GITHUB_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("CANARY_SECRET", GENERIC_SECRET)
        .env("AWS_HOOK_KEY", AWS_KEY)
        .file("quench.toml", CONFIG)
        .file("runbooks/hook-aws.yaml", HOOK_AWS)
        .file(
            "runbooks/hook-api.yaml",
            &HOOK_API.replace("KEYS_URL", keys_url),
        )
}

pub(crate) struct Serve {
    pub(crate) running: Running,
    pub(crate) addr: String,
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Serve {
    pub(crate) fn start(test: Test) -> Serve {
        let mut running = test.args(&["serve", "--listen", "127.0.0.1:0"]).spawn();
        let (addr, stdout) = crate::support::serving(&mut running);
        Serve {
            running,
            addr,
            _stdout: stdout,
        }
    }

    fn dir(&self) -> &Path {
        self.running.dir.path()
    }

    fn store(&self) -> PathBuf {
        self.dir().join("incidents")
    }

    fn incidents(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(self.store())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }

    fn log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.store().join("hooks.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Posts a GitHub delivery, signed with `secret` (unsigned: `None`).
    fn github(&self, delivery: &str, payload: &Value, secret: Option<&str>) -> (u16, String) {
        let body = payload.to_string();
        let sig = secret.map(|s| format!("sha256={}", hmac_hex(s, &[body.as_bytes()])));
        let mut headers = vec![
            ("X-GitHub-Event", "secret_scanning_alert".to_string()),
            ("X-GitHub-Delivery", delivery.to_string()),
            ("X-GitHub-Hook-ID", "429123".to_string()),
            ("User-Agent", "GitHub-Hookshot/044aadd".to_string()),
        ];
        if let Some(sig) = sig {
            headers.push(("X-Hub-Signature-256", sig));
        }
        http(&self.addr, "/hooks/github", &body, &headers)
    }

    /// Posts to a generic hook, signed `age` seconds ago.
    fn generic(&self, name: &str, body: &str, secret: &str, age: i64) -> (u16, String) {
        self.generic_at(name, body, secret, chrono::Utc::now().timestamp() - age)
    }

    /// Posts to a generic hook, signed with timestamp `ts`.
    fn generic_at(&self, name: &str, body: &str, secret: &str, ts: i64) -> (u16, String) {
        self.generic_delivery(name, body, (secret, ts), None)
    }

    /// Posts to a generic hook, signed with `secret` and timestamp `ts`,
    /// with a delivery id if given.
    pub(crate) fn generic_delivery(
        &self,
        name: &str,
        body: &str,
        (secret, ts): (&str, i64),
        delivery: Option<&str>,
    ) -> (u16, String) {
        let ts = ts.to_string();
        let sig = format!(
            "sha256={}",
            hmac_hex(secret, &[ts.as_bytes(), b".", body.as_bytes()])
        );
        let mut headers = vec![("X-Quench-Timestamp", ts), ("X-Quench-Signature", sig)];
        headers.extend(delivery.map(|d| ("X-Quench-Delivery", d.to_string())));
        http(
            &self.addr,
            &format!("/hooks/generic/{name}"),
            body,
            &headers,
        )
    }

    /// Waits until every incident's journal has ended (or `what` fails).
    fn wait_for(&self, what: &str, mut done: impl FnMut(&Serve) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) -> Output {
        self.running.terminate()
    }
}

fn hmac_hex(secret: &str, parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        mac.update(p);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One HTTP/1.1 POST of JSON on its own connection; (status, body).
fn http(addr: &str, path: &str, body: &str, headers: &[(&str, String)]) -> (u16, String) {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
    crate::support::post(addr, path, body, &all)
}

/// `GET path`; the body.
fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    resp.split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// A `secret_scanning_alert` delivery's payload, as GitHub sends it.
fn alert_payload(action: &str, number: u64, secret_type: &str, repo: &str) -> Value {
    let (owner, name) = repo.split_once('/').unwrap();
    json!({
        "action": action,
        "alert": {
            "number": number,
            "created_at": "2026-12-07T10:00:00Z",
            "updated_at": "2026-12-07T10:00:00Z",
            "url": format!("https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}"),
            "html_url": format!("https://github.com/{repo}/security/secret-scanning/{number}"),
            "locations_url": format!("https://api.github.com/repos/{repo}/secret-scanning/alerts/{number}/locations"),
            "state": "open", "resolution": null, "resolved_at": null, "resolved_by": null,
            "secret_type": secret_type,
            "secret_type_display_name": "GitHub Personal Access Token",
            "validity": "active", "push_protection_bypassed": false,
        },
        "repository": {"id": 186853002, "name": name, "full_name": repo,
                       "owner": {"login": owner, "type": "Organization"}, "private": true},
        "organization": {"login": owner},
        "sender": {"login": "github", "type": "Bot"},
    })
}

/// A quench serve with the hooks configured, GitHub at `api`.
fn serve(api: &FakeGithub, slack: &FakeSlack, gated: bool) -> Serve {
    let runbook = if gated {
        format!("{HOOK_GH}{HOOK_GH_GATED}")
    } else {
        HOOK_GH.to_string()
    };
    Serve::start(
        hooked(Test::new(), "http://127.0.0.1:9")
            .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("GITHUB_API_URL", &api.url())
            .env("GITHUB_TOKEN", ENGINE_TOKEN)
            .env("SLACK_API_URL", &slack.api_url())
            .env("SLACK_BOT_TOKEN", BOT_TOKEN)
            .file("runbooks/hook-gh.yaml", &runbook),
    )
}

fn journal(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The incident ended and its final documents are written (the HTML page
/// is written last, only then).
fn finished(dir: &Path) -> bool {
    dir.join("incident.html").is_file()
        && journal(dir)
            .iter()
            .any(|r| r["event"] == "incident_finished")
}

/// Waits until Slack was told something `what` recognises: it is posted
/// after the line that records it.
fn said(serve: &Serve, slack: &FakeSlack, what: impl Fn(&str) -> bool) {
    serve.wait_for("the message in Slack", |_| {
        slack.messages().iter().any(|m| what(&m.text))
    });
}

/// No file the run left, and nothing it printed, holds any of `secrets`.
fn assert_nowhere(out: &Output, secrets: &[&str]) {
    for secret in secrets {
        assert!(!out.stdout.contains(secret), "stdout: {}", out.stdout);
        assert!(!out.stderr.contains(secret), "stderr: {}", out.stderr);
        for (path, text) in out.artifacts() {
            assert!(!text.contains(secret), "{} holds a secret", path.display());
        }
    }
}

#[test]
fn a_signed_alert_starts_the_response_at_once_and_the_secret_is_nowhere() {
    let leaked = token(1);
    let api = FakeGithub::start("ghp_unrelated");
    let slack = FakeSlack::start(&[]);
    let number = api.add_alert(&leaked, PAT_TYPE, COMMITTED);
    let mut serve = serve(&api, &slack, false);
    let sent = Instant::now();
    let (status, body) = serve.github(
        "d-1",
        &alert_payload("created", number, PAT_TYPE, REPO),
        Some(WEBHOOK_SECRET),
    );
    let took = sent.elapsed();
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "accepted"
    );
    assert!(took < Duration::from_secs(2), "answered in {took:?}");
    serve.wait_for("the incident to finish", |s| {
        s.incidents().first().is_some_and(|d| finished(d))
    });
    assert_eq!(api.revoked(), [leaked.as_str()]);
    // The alert is read with the engine's token; the token revoked without.
    let read = api.seen_at(
        "GET",
        &format!("/repos/{REPO}/secret-scanning/alerts/{number}"),
    );
    assert_eq!(
        read[0].headers["authorization"],
        format!("Bearer {ENGINE_TOKEN}")
    );
    let revoke = api.seen_at("POST", "/credentials/revoke");
    assert!(!revoke[0].headers.contains_key("authorization"));

    let dir = serve.incidents().pop().unwrap();
    let records = journal(&dir);
    let started = &records[0];
    assert_eq!(started["detected_at"], "2026-12-07T10:00:00.000Z");
    assert_eq!(started["leaked_at"], "2026-12-06T08:30:00.000Z");
    assert_eq!(started["by"]["user"], "hook:github");
    let detection = &records[1];
    assert_eq!(detection["event"], "detection");
    assert_eq!(detection["delivery"], "d-1");
    assert_eq!(
        detection["url"],
        format!("https://github.com/{REPO}/security/secret-scanning/{number}")
    );
    assert_eq!(
        detection["detector"],
        format!("GitHub secret scanning ({PAT_TYPE})")
    );
    assert!(
        detection["location"]
            .as_str()
            .unwrap()
            .ends_with(":config/.env:3")
    );
    let md = std::fs::read_to_string(dir.join("incident.md")).unwrap();
    assert!(
        md.contains(
            "It leaked at 2026-12-06T08:30:00.000Z (the earliest commit or report that held it): the audit window starts there."
        ),
        "{md}"
    );
    // Proven dead with nobody asked: the impact window runs from the leak
    // to the proof.
    assert!(
        records
            .iter()
            .any(|r| r["event"] == "credential_proven_dead")
    );
    assert!(!records.iter().any(|r| r["event"] == "approval_requested"));
    assert!(
        md.contains("From the leak at 2026-12-06T08:30:00.000Z to its proven death at"),
        "{md}"
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("incident.json")).unwrap()).unwrap();
    assert_eq!(doc["proof"]["status"], "proven");
    assert!(doc["exposed_for_ms"].as_u64().unwrap() > 86_400_000);
    // Time to revoke counts from the alert's creation, not the start.
    assert!(doc["time_to_revoke_ms"].as_u64().unwrap() > 0);

    let log = serve.log();
    let decisions: Vec<&str> = log
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["accepted", "started"]);
    assert_eq!(
        log[1]["incident"],
        dir.file_name().unwrap().to_str().unwrap()
    );
    let out = serve.stop();
    assert_nowhere(&out, &[&leaked, WEBHOOK_SECRET, ENGINE_TOKEN, BOT_TOKEN]);
}

#[test]
fn forged_unsigned_stale_and_replayed_requests_get_401_and_nothing_else() {
    let leaked = token(2);
    let api = FakeGithub::start("ghp_unrelated");
    let slack = FakeSlack::start(&[]);
    let number = api.add_alert(&leaked, PAT_TYPE, COMMITTED);
    let mut serve = serve(&api, &slack, false);
    let payload = alert_payload("created", number, PAT_TYPE, REPO);
    for secret in [None, Some("not-the-webhook-secret")] {
        let (status, body) = serve.github("d-forged", &payload, secret);
        assert_eq!((status, body.as_str()), (401, ""));
    }
    let canary =
        json!({"key": {"id": "key-0001", "value": "sk_live_CanaryKeyValue0001"}}).to_string();
    let (status, _) = serve.generic("canary", &canary, "wrong-secret", 0);
    assert_eq!(status, 401);
    let (status, _) = serve.generic("canary", &canary, GENERIC_SECRET, 301);
    assert_eq!(status, 401, "stale");
    let (status, _) = serve.generic("nosuch", &canary, GENERIC_SECRET, 0);
    assert_eq!(status, 404);
    // Nothing was read from GitHub, nothing started.
    assert!(api.seen().is_empty(), "{:?}", api.seen());
    assert!(serve.incidents().is_empty());
    let log = serve.log();
    let decisions: Vec<&str> = log
        .iter()
        .map(|e| e["decision"].as_str().unwrap())
        .collect();
    assert_eq!(
        decisions,
        ["forged", "forged", "forged", "forged", "refused"]
    );
    assert_eq!(
        log[3]["reason"],
        "the request is more than five minutes old (or in the future)"
    );
    let metrics = get(&serve.addr, "/metrics");
    for line in [
        r#"quench_hook_requests_total{source="github",decision="forged"} 2"#,
        r#"quench_hook_requests_total{source="generic:canary",decision="forged"} 2"#,
        r#"quench_hook_requests_total{source="unknown",decision="refused"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let out = serve.stop();
    assert_nowhere(&out, &[&leaked, WEBHOOK_SECRET, GENERIC_SECRET]);
}

#[test]
fn an_unmatched_alert_is_recorded_and_answered_202_and_nothing_runs() {
    let api = FakeGithub::start("ghp_unrelated");
    let slack = FakeSlack::start(&[]);
    let serve = serve(&api, &slack, false);
    let (status, body) = serve.github(
        "d-slack",
        &alert_payload("created", 9, "slack_api_token", REPO),
        Some(WEBHOOK_SECRET),
    );
    assert_eq!(status, 202);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["status"],
        "ignored"
    );
    let (status, _) = serve.github(
        "d-other",
        &alert_payload("created", 9, PAT_TYPE, "other/repo"),
        Some(WEBHOOK_SECRET),
    );
    assert_eq!(status, 202);
    let (status, _) = serve.github(
        "d-resolved",
        &alert_payload("resolved", 9, PAT_TYPE, REPO),
        Some(WEBHOOK_SECRET),
    );
    assert_eq!(status, 202);
    assert!(api.seen().is_empty());
    assert!(serve.incidents().is_empty());
    let log = serve.log();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|e| e["decision"] == "ignored"), "{log:?}");
    assert_eq!(log[0]["reason"], "no trigger matches");
    assert_eq!(log[0]["secret_type"], "slack_api_token");
}

#[test]
fn a_redelivery_is_a_duplicate_unless_its_processing_failed_and_fetches_are_retried() {
    let leaked = token(3);
    let api = FakeGithub::start("ghp_unrelated");
    let slack = FakeSlack::start(&[]);
    let number = api.add_alert(&leaked, PAT_TYPE, COMMITTED);
    let path = format!("GET /repos/{REPO}/secret-scanning/alerts/{number}");
    // The first delivery meets a GitHub that cannot find the alert (a
    // permanent failure); the redelivery meets one that fails once.
    let not_found = r#"{"message":"Not Found","documentation_url":"https://docs.github.com/rest"}"#;
    api.answer(&path, 404, &[], not_found);
    api.answer(&path, 502, &[], r#"{"message":"Server Error"}"#);
    let mut serve = serve(&api, &slack, false);
    let payload = alert_payload("created", number, PAT_TYPE, REPO);
    let (status, _) = serve.github("d-3", &payload, Some(WEBHOOK_SECRET));
    assert_eq!(status, 202);
    serve.wait_for("the failure", |s| {
        s.log().iter().any(|e| e["decision"] == "failed")
    });
    assert!(serve.incidents().is_empty());
    said(&serve, &slack, |t| {
        t.contains("could not respond to alert") && t.contains("HTTP 404")
    });

    let (status, body) = serve.github("d-3", &payload, Some(WEBHOOK_SECRET));
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap()["status"].clone()
        ),
        (202, json!("accepted"))
    );
    serve.wait_for("the incident", |s| {
        s.incidents().first().is_some_and(|d| finished(d))
    });
    let said: Vec<String> = slack.messages().iter().map(|m| m.text.clone()).collect();
    assert!(
        said.iter().any(|t| t.contains("trying again in 500ms (attempt 2 of 5)") && t.contains("HTTP 502")),
        "{said:?}"
    );
    assert_eq!(
        slack
            .messages()
            .iter()
            .filter(|m| m.channel == CHANNEL)
            .count(),
        said.len()
    );

    let (status, body) = serve.github("d-3", &payload, Some(WEBHOOK_SECRET));
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!(answer["status"], "duplicate");
    let id = serve.incidents()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(answer["incident"], id);
    assert_eq!(serve.incidents().len(), 1);
    assert_eq!(api.revoked(), [leaked.as_str()]);
    let decisions: Vec<String> = serve
        .log()
        .iter()
        .map(|e| e["decision"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        decisions,
        ["accepted", "failed", "accepted", "started", "duplicate"]
    );
    let out = serve.stop();
    assert_nowhere(&out, &[&leaked]);
}

#[test]
fn a_second_location_of_the_same_secret_joins_its_incident() {
    let leaked = token(4);
    let api = FakeGithub::start("ghp_unrelated");
    let slack = FakeSlack::start(&[]);
    let first = api.add_alert(&leaked, PAT_TYPE, COMMITTED);
    let second = api.add_alert(&leaked, PAT_TYPE, "2026-12-05T07:00:00Z");
    let mut serve = serve(&api, &slack, false);
    for (delivery, number) in [("d-4a", first), ("d-4b", second)] {
        let payload = alert_payload("created", number, PAT_TYPE, REPO);
        let (status, _) = serve.github(delivery, &payload, Some(WEBHOOK_SECRET));
        assert_eq!(status, 202);
    }
    serve.wait_for("the join", |s| {
        s.log().iter().any(|e| e["decision"] == "joined")
    });
    serve.wait_for("both detections in the journal", |s| {
        s.incidents().first().is_some_and(|d| {
            finished(d)
                && journal(d)
                    .iter()
                    .filter(|r| r["event"] == "detection")
                    .count()
                    == 2
        })
    });
    assert_eq!(serve.incidents().len(), 1, "one incident per credential");
    assert_eq!(api.revoked(), [leaked.as_str()], "one revocation");
    let dir = serve.incidents().pop().unwrap();
    // Whichever alert was fetched first started the incident; the other joined.
    let mut deliveries: Vec<String> = journal(&dir)
        .iter()
        .filter(|r| r["event"] == "detection")
        .map(|r| r["delivery"].as_str().unwrap().to_string())
        .collect();
    deliveries.sort();
    assert_eq!(deliveries, ["d-4a", "d-4b"]);
    serve.wait_for("the document to show the second detection", |_| {
        std::fs::read_to_string(dir.join("incident.md")).is_ok_and(|md| md.contains("`d-4b`"))
    });
    // The earliest leak of the two is the exposure's start.
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("incident.json")).unwrap()).unwrap();
    assert_eq!(doc["leaked_at"], "2026-12-05T07:00:00.000Z");
    let out = serve.stop();
    assert_nowhere(&out, &[&leaked]);
}

#[test]
fn a_burst_of_a_hundred_alerts_is_a_hundred_incidents_revoked_in_shared_requests() {
    const N: usize = 100;
    let api = FakeGithub::start("ghp_unrelated");
    let slack = FakeSlack::start(&[]);
    let tokens: Vec<String> = (0..N).map(|i| token(100 + i)).collect();
    let numbers: Vec<u64> = tokens
        .iter()
        .map(|t| api.add_alert(t, PAT_TYPE, COMMITTED))
        .collect();
    let mut serve = serve(&api, &slack, false);
    std::thread::scope(|scope| {
        for chunk in numbers.chunks(10) {
            let serve = &serve;
            scope.spawn(move || {
                for n in chunk {
                    let payload = alert_payload("created", *n, PAT_TYPE, REPO);
                    let (status, _) =
                        serve.github(&format!("d-burst-{n}"), &payload, Some(WEBHOOK_SECRET));
                    assert_eq!(status, 202);
                }
            });
        }
    });
    serve.wait_for("a hundred finished incidents", |s| {
        let dirs = s.incidents();
        dirs.len() == N && dirs.iter().all(|d| finished(d))
    });
    let mut revoked = api.revoked();
    revoked.sort();
    let mut expected = tokens.clone();
    expected.sort();
    assert_eq!(revoked, expected, "every token revoked, each once");
    let requests = api.seen_at("POST", "/credentials/revoke").len();
    assert!(requests < N, "{requests} requests for {N} tokens");
    for dir in serve.incidents() {
        let records = journal(&dir);
        let ok = records
            .iter()
            .any(|r| r["event"] == "step_succeeded" && r["step"] == "revoke");
        assert!(ok, "{}", dir.display());
    }
    let out = serve.stop();
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    assert_nowhere(&out, &refs);
}

#[test]
fn a_step_outside_unattended_waits_for_an_approval_given_at_a_terminal() {
    let leaked = token(5);
    let api = FakeGithub::start("ghp_unrelated");
    let slack = FakeSlack::start(&[]);
    let number = api.add_alert(&leaked, PAT_TYPE, COMMITTED);
    let mut serve = serve(&api, &slack, true);
    let payload = alert_payload("created", number, PAT_TYPE, REPO);
    let (status, _) = serve.github("d-5", &payload, Some(WEBHOOK_SECRET));
    assert_eq!(status, 202);
    serve.wait_for("the approval to be asked", |s| {
        s.incidents().first().is_some_and(|d| {
            journal(d)
                .iter()
                .any(|r| r["event"] == "approval_requested" && r["step"] == "prevent")
        })
    });
    // Revoked at once; the issue waits.
    assert_eq!(api.revoked(), [leaked.as_str()]);
    assert!(api.issues().is_empty());
    said(&serve, &slack, |t| t.contains("approve step `prevent`"));
    let dir = serve.incidents().pop().unwrap();
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();

    let approve = |user: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_quench"))
            .args(["approve", &id, "prevent"])
            .current_dir(serve.dir())
            .env("USER", user)
            .output()
            .unwrap()
    };
    let denied = approve("mallory");
    assert_eq!(denied.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&denied.stderr)
            .contains("no `[[chatops.allow]]` rule lets them approve")
    );
    let given = approve("tester");
    assert_eq!(
        given.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&given.stderr)
    );
    serve.wait_for("the incident to finish", |_| finished(&dir));
    assert_eq!(api.issues().len(), 1);
    let asked: Vec<Value> = journal(&dir)
        .into_iter()
        .filter(|r| r["event"] == "approval_requested")
        .map(|r| r["step"].clone())
        .collect();
    assert_eq!(asked, [json!("prevent")], "the verify step needs nobody");
    let granted = journal(&dir)
        .into_iter()
        .find(|r| r["event"] == "approval_granted")
        .unwrap();
    assert!(
        granted["by"]
            .as_str()
            .unwrap()
            .starts_with("terminal:tester@"),
        "{granted}"
    );
    let out = serve.stop();
    assert_nowhere(&out, &[&leaked]);
}

#[test]
fn a_generic_hook_maps_its_body_to_inputs_and_secrets() {
    let api = FakeGithub::start("ghp_unrelated");
    let slack = FakeSlack::start(&[]);
    let keys = crate::support::fake_api::FakeApi::start();
    let mut serve = Serve::start(
        hooked(Test::new(), &keys.url())
            .env("SLACK_API_URL", &slack.api_url())
            .file("runbooks/hook-gh.yaml", HOOK_GH),
    );
    let value = "sk_live_CanaryKeyValue0001";
    let body = json!({"key": {"id": "key-0001", "value": value}, "seen": "2026-12-07T09:00:00Z"})
        .to_string();
    let ts = chrono::Utc::now().timestamp();
    let (status, _) = serve.generic_at("canary", &body, GENERIC_SECRET, ts);
    assert_eq!(status, 202);
    // The same signed request again is a replay: refused.
    let (status, _) = serve.generic_at("canary", &body, GENERIC_SECRET, ts);
    assert_eq!(status, 401);
    let log = serve.log();
    let replay = log.iter().find(|e| e["decision"] == "forged").unwrap();
    assert_eq!(
        replay["reason"],
        "the same signed request was received before: a replay"
    );
    serve.wait_for("the incident", |s| {
        s.incidents().first().is_some_and(|d| finished(d))
    });
    let dir = serve.incidents().pop().unwrap();
    let revoked = keys.seen();
    assert_eq!(revoked[0].path, "/keys/key-0001/revoke");
    assert_eq!(
        revoked[0].headers["authorization"],
        format!("Bearer {value}")
    );
    let started = &journal(&dir)[0];
    assert_eq!(started["inputs"]["key_id"], "key-0001");
    assert_eq!(started["secrets"], json!(["api_key"]));
    assert_eq!(started["by"]["user"], "hook:generic:canary");
    // Without a Slack signing secret the hooks are served, and Slack's
    // endpoints refuse everything.
    let (status, _) = http(&serve.addr, "/slack/commands", "text=list", &[]);
    assert_eq!(status, 401);
    let out = serve.stop();
    assert!(
        out.stderr.contains(
            "no Slack signing secret: /slack/commands and /slack/interactions refuse every request"
        ),
        "{}",
        out.stderr
    );
    drop(api);
    assert_nowhere(&out, &[value, GENERIC_SECRET]);
}

/// An AWS Health event as EventBridge delivers it to an API destination.
fn health_event(id: &str, account: &str, key: &str) -> String {
    json!({
        "version": "0", "id": id, "detail-type": "AWS Health Event", "source": "aws.health",
        "account": account, "time": "2026-12-07T11:00:00Z", "region": "us-east-1",
        "resources": [],
        "detail": {
            "eventArn": format!("arn:aws:health:global::event/RISK/AWS_RISK_CREDENTIALS_EXPOSED/{id}"),
            "service": "RISK", "eventTypeCode": "AWS_RISK_CREDENTIALS_EXPOSED",
            "eventTypeCategory": "issue", "startTime": "Mon, 7 Dec 2026 11:00:00 GMT",
            "eventDescription": [{"language": "en_US", "latestDescription": "Your AWS Access Key is exposed."}],
            "affectedEntities": [{"entityValue": key}]
        }
    })
    .to_string()
}

#[test]
fn an_aws_health_exposure_deactivates_the_key_its_iam_user_owns() {
    let moto = crate::support::peers::moto();
    let slack = FakeSlack::start(&[]);
    let key = crate::aws::leaked_key(&moto, "ci-bot");
    let mut serve = Serve::start(
        hooked(Test::new(), "http://127.0.0.1:9")
            .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("SLACK_API_URL", &slack.api_url())
            .env("SLACK_BOT_TOKEN", BOT_TOKEN)
            .file("runbooks/hook-gh.yaml", HOOK_GH),
    );
    let post = |body: &str, key: &str| {
        http(
            &serve.addr,
            "/hooks/aws",
            body,
            &[("x-quench-key", key.to_string())],
        )
    };
    let (status, body) = post(&health_event("ev-1", "123456789012", &key), "wrong-key");
    assert_eq!((status, body.as_str()), (401, ""));
    let (status, _) = post(&health_event("ev-1", "123456789012", &key), AWS_KEY);
    assert_eq!(status, 202);
    serve.wait_for("the incident", |s| {
        s.incidents().first().is_some_and(|d| finished(d))
    });
    let dir = serve.incidents().pop().unwrap();
    let records = journal(&dir);
    assert_eq!(records[0]["inputs"]["iam_user"], "ci-bot");
    assert_eq!(records[0]["inputs"]["access_key_id"], key);
    assert_eq!(records[0]["detected_at"], "2026-12-07T11:00:00.000Z");
    assert_eq!(records[1]["event"], "detection");
    assert_eq!(records[1]["delivery"], "ev-1");
    let done = records
        .iter()
        .find(|r| r["event"] == "incident_finished")
        .unwrap();
    assert_eq!(done["outcome"], "slo_missed", "{done}");
    let deactivated = records
        .iter()
        .any(|r| r["event"] == "step_succeeded" && r["step"] == "deactivate");
    assert!(deactivated, "{records:?}");

    // A key of an account quench cannot manage: recorded and announced.
    let (status, _) = post(
        &health_event("ev-2", "210987654321", "AKIAOTHERACCOUNT0001"),
        AWS_KEY,
    );
    assert_eq!(status, 202);
    serve.wait_for("the unmanaged key", |s| {
        s.log().iter().any(|e| e["decision"] == "unmanaged")
    });
    assert_eq!(serve.incidents().len(), 1);
    said(&serve, &slack, |t| {
        t.contains("AKIAOTHERACCOUNT0001") && t.contains("cannot manage it")
    });
    let out = serve.stop();
    assert_nowhere(&out, &[AWS_KEY]);
}
