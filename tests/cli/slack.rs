//! Slack: the provider live against a local server that answers like
//! Slack's Web API (tests/support/fake_slack.rs), and `quench serve`
//! receiving slash commands and clicks signed exactly as Slack signs them.

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::fake_slack::{BOT_TOKEN, CHANNEL, FakeSlack};
use crate::support::{Output, Running, Test};

const LEAKED: &str = "xoxp-9999999999-8888888888-LeakedUserToken00000";
const SIGNING_SECRET: &str = "e3b0c44298fc1c149afbf4c8996fb924";
const ALLOWED: &str = "U0ALLOWED1";
const APPROVER: &str = "U0APPROVE1";
const OTHER: &str = "U0OTHER001";

fn slack(test: Test, api: &FakeSlack) -> Test {
    test.env("SLACK_API_URL", &api.api_url())
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("LEAKED", LEAKED)
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

fn incident_json(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("incident.json")).unwrap()).unwrap()
}

#[test]
fn the_slack_runbook_revokes_the_leaked_token_live() {
    let api = FakeSlack::start(&[LEAKED]);
    let (out, _d) = slack(Test::new(), &api)
        .args(&[
            "run",
            "slack-token-compromise",
            "--secret",
            "leaked_token=env:LEAKED",
        ])
        .run();
    out.code(0);
    // Revoked as itself: the bot token is not what revokes it.
    let revokes = api.calls_to("auth.revoke");
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].token.as_deref(), Some(LEAKED));
    assert_eq!(api.revoked(), [LEAKED]);
    // The team is told, by the bot, with JSON.
    let posts = api.calls_to("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert_eq!(posts[0].token.as_deref(), Some(BOT_TOKEN));
    assert!(posts[0].content_type.starts_with("application/json"));
    assert_eq!(posts[0].args["channel"], "#sec-incidents");
    assert_eq!(api.messages()[0].channel, CHANNEL);
    let json = incident_json(&out.incident());
    assert_eq!(json["slo_met"], true);
    assert_nowhere(&out, &[LEAKED, BOT_TOKEN]);
}

#[test]
fn revocation_needs_no_bot_token_and_the_notice_is_skipped_without_one() {
    let api = FakeSlack::start(&[LEAKED]);
    let (out, _d) = Test::new()
        .env("SLACK_API_URL", &api.api_url())
        .env("LEAKED", LEAKED)
        .args(&[
            "run",
            "slack-token-compromise",
            "--secret",
            "leaked_token=env:LEAKED",
        ])
        .run();
    out.code(0);
    assert_eq!(api.revoked(), [LEAKED]);
    assert!(api.calls_to("chat.postMessage").is_empty());
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(
        md.contains("no Slack bot token: set SLACK_BOT_TOKEN or [providers.slack] bot_token, so this notification was not sent"),
        "{md}"
    );
}

#[test]
fn rate_limits_and_slack_errors_are_classified_for_the_engine() {
    let api = FakeSlack::start(&[LEAKED]);
    api.answer(
        "auth.revoke",
        429,
        &[("retry-after", "1")],
        r#"{"ok":false,"error":"ratelimited"}"#,
    );
    api.answer(
        "auth.revoke",
        200,
        &[],
        r#"{"ok":false,"error":"internal_error"}"#,
    );
    let started = Instant::now();
    let (out, _d) = slack(Test::new(), &api)
        .args(&[
            "run",
            "slack-token-compromise",
            "--secret",
            "leaked_token=env:LEAKED",
        ])
        .run();
    out.code(0);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    assert!(journal.contains(r#""class":"rate_limited""#), "{journal}");
    assert!(
        journal.contains("`auth.revoke` answered `internal_error`"),
        "{journal}"
    );
    assert_eq!(api.calls_to("auth.revoke").len(), 3);
    assert_eq!(api.revoked(), [LEAKED]);

    // A token Slack does not know fails at once: retrying cannot help.
    let api = FakeSlack::start(&[]);
    let (out, _d) = slack(Test::new(), &api)
        .args(&[
            "run",
            "slack-token-compromise",
            "--secret",
            "leaked_token=env:LEAKED",
        ])
        .run();
    out.code(1);
    assert_eq!(api.calls_to("auth.revoke").len(), 1);
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("`auth.revoke` answered `invalid_auth`"),
        "{journal}"
    );
}

// ------------------------------------------------------------------ serve

const RULES: &str = r#"
[[chatops.allow]]
users = ["U0ALLOWED1", "U0APPROVE1", "U0OTHER001"]
actions = ["rehearse"]

[[chatops.allow]]
users = ["U0ALLOWED1"]
runbooks = ["slack-*", "needs-approval"]
actions = ["run"]

[[chatops.allow]]
users = ["U0APPROVE1", "U0OTHER001"]
actions = ["approve"]

[[chatops.allow]]
users = ["U0APPROVE1"]
actions = ["answer"]
"#;

const NEEDS_APPROVAL: &str = r##"name: needs-approval
title: A step that needs approval
steps:
  - id: announce
    phase: notify
    action: slack.post_message
    approval: { approvers: [U0APPROVE1] }
    timeout: 60s
    with: { channel: "#sec-incidents", text: "approved and announced" }
"##;

pub(crate) struct Serve {
    running: Running,
    addr: String,
    /// Kept open: quench writes to its stdout until it stops.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Serve {
    fn start(api: &FakeSlack) -> Serve {
        Serve::start_with(
            api,
            RULES,
            &[("runbooks/needs-approval.yaml", NEEDS_APPROVAL)],
        )
    }

    /// `quench serve` with these rules and these files beside it.
    pub(crate) fn start_with(api: &FakeSlack, rules: &str, files: &[(&str, &str)]) -> Serve {
        let mut test = slack(Test::new(), api)
            .env("SLACK_SIGNING_SECRET", SIGNING_SECRET)
            .file("quench.toml", rules);
        for (name, text) in files {
            test = test.file(name, text);
        }
        let mut running = test.args(&["serve", "--listen", "127.0.0.1:0"]).spawn();
        let (addr, stdout) = crate::support::serving(&mut running);
        Serve {
            running,
            addr,
            _stdout: stdout,
        }
    }

    pub(crate) fn store(&self) -> PathBuf {
        self.running.dir.path().join("incidents")
    }

    pub(crate) fn incidents(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.store())
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn audit(&self) -> Vec<Value> {
        std::fs::read_to_string(self.store().join("chatops.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Posts `body` signed as Slack signs it, `age` seconds ago.
    fn post(&self, path: &str, body: &str, secret: &str, age: i64) -> (u16, String) {
        signed(&self.addr, path, body, secret, age)
    }

    pub(crate) fn command(&self, user: &str, text: &str) -> (u16, Value) {
        let (status, body) = self.post(
            "/slack/commands",
            &command_body(user, text, "cmd"),
            SIGNING_SECRET,
            0,
        );
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub(crate) fn click(&self, user: &str, action_id: &str, value: &str, response: &str) -> u16 {
        let body = click_body(user, action_id, value, response);
        self.post("/slack/interactions", &body, SIGNING_SECRET, 0).0
    }
}

/// Posts `body` to `addr` signed as Slack signs it with `secret`, `age`
/// seconds ago.
pub(crate) fn signed(addr: &str, path: &str, body: &str, secret: &str, age: i64) -> (u16, String) {
    let ts = (chrono::Utc::now().timestamp() - age).to_string();
    let sig = signature(secret, &ts, body);
    http(
        addr,
        path,
        body,
        &[
            ("X-Slack-Request-Timestamp", ts.as_str()),
            ("X-Slack-Signature", sig.as_str()),
        ],
    )
}

/// The form body of a click on button `action_id` (of value `value`) by
/// `user`, as Slack posts it to the interactivity URL.
pub(crate) fn click_body(user: &str, action_id: &str, value: &str, response: &str) -> String {
    let payload = json!({
            "type": "block_actions",
            "user": {"id": user, "username": "someone", "team_id": "T0ACME"},
            "team": {"id": "T0ACME", "domain": "acme"},
            "channel": {"id": CHANNEL, "name": "sec-incidents"},
            "message": {"ts": "1795000001.000100", "text": "approve?"},
            "response_url": response,
            "trigger_id": trigger_id(),
            "actions": [{"type": "button", "action_id": action_id, "block_id": "quench_approval",
                         "value": value, "action_ts": "1795000002.000200"}]
    });
    form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &payload.to_string())
        .finish()
}

/// Slack's signature: `v0=` and the hex HMAC-SHA256 of `v0:ts:body`.
pub(crate) fn signature(secret: &str, ts: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{ts}:{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v0={hex}")
}

/// A slash command's form body, with the fields Slack sends.
pub(crate) fn command_body(user: &str, text: &str, response_id: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("token", "gIkuvaNzQIHg97ATvDxqgjtO")
        .append_pair("team_id", "T0ACME")
        .append_pair("team_domain", "acme")
        .append_pair("channel_id", CHANNEL)
        .append_pair("channel_name", "sec-incidents")
        .append_pair("user_id", user)
        .append_pair("user_name", "someone")
        .append_pair("command", "/quench")
        .append_pair("text", text)
        .append_pair("api_app_id", "A0QUENCH")
        .append_pair(
            "response_url",
            &format!("http://unused.invalid/{response_id}"),
        )
        .append_pair("trigger_id", &trigger_id())
        .finish()
}

/// A new trigger id, as Slack gives each command one: no two commands'
/// bodies are the same.
fn trigger_id() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("13345224609.738474920.{n:031x}")
}

/// One signed-looking Slack POST, form-encoded, as Slack's servers send it.
pub(crate) fn http(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut all = vec![
        ("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)"),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    all.extend_from_slice(headers);
    crate::support::post(addr, path, body, &all)
}

/// Waits for `cond`, for at most `limit`.
pub(crate) fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub(crate) fn finished(dir: &std::path::Path) -> bool {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .is_ok_and(|j| j.contains("\"event\":\"incident_finished\""))
}

#[test]
fn forged_stale_and_unsigned_requests_are_refused_and_start_nothing() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let body = command_body(ALLOWED, "rehearse slack-token-compromise", "r1");
    let forged = serve.post("/slack/commands", &body, "not-the-signing-secret", 0);
    assert_eq!(forged, (401, String::new()));
    let stale = serve.post("/slack/commands", &body, SIGNING_SECRET, 5 * 60 + 30);
    assert_eq!(stale.0, 401);
    let unsigned = http(&serve.addr, "/slack/commands", &body, &[]);
    assert_eq!(unsigned.0, 401);
    // A signature over another body does not carry over.
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = signature(SIGNING_SECRET, &ts, &body);
    let tampered = body.replace("rehearse", "run");
    let swapped = http(
        &serve.addr,
        "/slack/commands",
        &tampered,
        &[
            ("X-Slack-Request-Timestamp", &ts),
            ("X-Slack-Signature", &sig),
        ],
    );
    assert_eq!(swapped.0, 401);
    let click = serve.post(
        "/slack/interactions",
        "payload=%7B%7D",
        "not-the-signing-secret",
        0,
    );
    assert_eq!(click.0, 401);
    std::thread::sleep(Duration::from_millis(300));
    assert!(serve.incidents().is_empty(), "nothing was started");
    assert!(api.calls().is_empty(), "nothing was said in Slack");
    let audit = serve.audit();
    assert_eq!(audit.len(), 5, "{audit:?}");
    assert!(audit.iter().all(|a| a["decision"] == "refused"));
    assert!(
        audit
            .iter()
            .any(|a| a["reason"] == "the request is more than five minutes old (or in the future)")
    );
}

#[test]
fn help_and_list_answer_at_once_and_the_unauthorized_are_denied() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let (status, help) = serve.command(OTHER, "help");
    assert_eq!(status, 200);
    assert_eq!(help["response_type"], "ephemeral");
    assert!(
        help["text"]
            .as_str()
            .unwrap()
            .contains("/quench run RUNBOOK")
    );
    let (_, list) = serve.command(OTHER, "list");
    let text = list["text"].as_str().unwrap();
    assert!(
        text.contains("`slack-token-compromise`") && text.contains("`needs-approval`"),
        "{text}"
    );
    // A user no rule names sees no runbooks; help is for everyone.
    let (_, list) = serve.command("U0STRANGER", "list");
    let text = list["text"].as_str().unwrap();
    assert!(
        text.contains("may not list runbooks") && !text.contains("slack-token-compromise"),
        "{text}"
    );
    let (_, help) = serve.command("U0STRANGER", "help");
    assert!(
        help["text"]
            .as_str()
            .unwrap()
            .contains("/quench run RUNBOOK")
    );

    // Allowed to rehearse, not to run: a 200 with an ephemeral denial.
    let (status, denied) = serve.command(OTHER, "run slack-token-compromise");
    assert_eq!(status, 200);
    assert_eq!(denied["response_type"], "ephemeral");
    assert!(
        denied["text"]
            .as_str()
            .unwrap()
            .contains("may not `run` `slack-token-compromise`"),
        "{denied}"
    );
    let (_, denied) = serve.command("U0STRANGER", "rehearse aws-access-key-compromise");
    assert!(
        denied["text"]
            .as_str()
            .unwrap()
            .contains("no `[[chatops.allow]]` rule allows it")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(serve.incidents().is_empty());
    // Every answer is audited, help and list too.
    let audit = serve.audit();
    let actions: Vec<(&str, &str)> = audit
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["decision"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("help", "allowed"),
            ("list", "allowed"),
            ("list", "denied"),
            ("help", "allowed"),
            ("run", "denied"),
            ("rehearse", "denied"),
        ]
    );
    assert_eq!(audit[4]["user"], OTHER);
}

#[test]
fn a_rehearsal_from_slack_keeps_one_status_message_and_posts_the_document() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let (status, ack) = serve.command(
        ALLOWED,
        "rehearse aws-access-key-compromise iam_user=ci-bot",
    );
    assert_eq!(status, 200);
    assert_eq!(ack["response_type"], "in_channel");
    let text = ack["text"].as_str().unwrap().to_string();
    let id = text
        .split('*')
        .nth(1)
        .unwrap_or_else(|| panic!("no incident id in {text}"))
        .to_string();
    assert!(id.starts_with("INC-"), "{text}");
    let dir = serve.store().join(&id);
    eventually(Duration::from_secs(20), "the incident", || finished(&dir));
    // The document arrives in the status message's thread, last.
    eventually(Duration::from_secs(10), "the document", || {
        api.messages().iter().any(|m| m.thread_ts.is_some())
    });
    let messages = api.messages();
    let top: Vec<_> = messages.iter().filter(|m| m.thread_ts.is_none()).collect();
    assert_eq!(top.len(), 1, "one status message: {messages:?}");
    let status_msg = top[0];
    assert!(status_msg.text.contains(&id), "{}", status_msg.text);
    assert!(status_msg.text.contains("REHEARSAL"), "{}", status_msg.text);
    assert!(
        status_msg.text.contains("*Result: succeeded* — revoked"),
        "{}",
        status_msg.text
    );
    assert!(
        status_msg.text.contains("✅ `deactivate`"),
        "{}",
        status_msg.text
    );
    // Coalesced: far fewer edits than journal records.
    let records = std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        status_msg.updates >= 1 && status_msg.updates * 3 < records,
        "{} updates for {records} records",
        status_msg.updates
    );
    let doc = messages.iter().find(|m| m.thread_ts.is_some()).unwrap();
    assert_eq!(doc.thread_ts.as_deref(), Some(status_msg.ts.as_str()));
    assert!(doc.text.contains("REHEARSAL") && doc.text.contains(&id));
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains(r#""user":"slack:U0ALLOWED1""#),
        "{journal}"
    );
    let audit = serve.audit();
    assert_eq!(audit[0]["decision"], "allowed");
    assert_eq!(audit[0]["incident"], id.as_str());
}

#[test]
fn a_command_carrying_a_secret_is_treated_as_a_leak() {
    let api = FakeSlack::start(&[LEAKED]);
    let serve = Serve::start(&api);
    // The leaked token itself, as the runbook's declared secret: revoked,
    // never echoed, redacted everywhere.
    let (status, ack) = serve.command(
        ALLOWED,
        &format!("run slack-token-compromise leaked_token={LEAKED}"),
    );
    assert_eq!(status, 200);
    assert_eq!(
        ack["response_type"], "ephemeral",
        "never shown to the channel"
    );
    let text = ack["text"].as_str().unwrap();
    assert!(!text.contains(LEAKED), "{text}");
    assert!(text.contains("treat it as leaked"), "{text}");
    assert!(text.contains("Slack token"), "{text}");
    eventually(Duration::from_secs(20), "the revocation", || {
        api.revoked() == [LEAKED]
    });
    let dir = serve.incidents().pop().expect("an incident");
    eventually(Duration::from_secs(20), "the incident", || finished(&dir));
    // A token anywhere else: refused, and said to be leaked.
    let (_, refused) = serve.command(
        OTHER,
        "rehearse aws-access-key-compromise iam_user=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB",
    );
    let text = refused["text"].as_str().unwrap();
    assert!(
        text.contains("treat it as leaked") && text.contains("GitHub token"),
        "{text}"
    );
    assert!(!text.contains("ghp_0123456789"), "{text}");
    assert_eq!(serve.incidents().len(), 1, "the second started nothing");
    eventually(Duration::from_secs(10), "the document", || {
        api.messages().iter().any(|m| m.thread_ts.is_some())
    });
    for m in api.messages() {
        assert!(!m.text.contains(LEAKED), "{m:?}");
    }
    for c in api.calls() {
        if c.method != "auth.revoke" {
            assert!(!c.args.to_string().contains(LEAKED), "{c:?}");
        }
    }
    let audit = std::fs::read_to_string(serve.store().join("chatops.jsonl")).unwrap();
    assert!(
        !audit.contains(LEAKED) && !audit.contains("ghp_0123456789"),
        "{audit}"
    );
    let left = Output {
        code: 0,
        stdout: String::new(),
        stderr: String::new(),
        dir: serve.running.dir.path().to_path_buf(),
    };
    for (path, text) in left.artifacts() {
        assert!(!text.contains(LEAKED), "{} holds the token", path.display());
    }
}

#[test]
fn approvals_by_button_only_from_allowed_approvers() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let (_, ack) = serve.command(ALLOWED, "run needs-approval");
    assert_eq!(ack["response_type"], "in_channel", "{ack}");
    let question = || {
        api.messages()
            .into_iter()
            .find(|m| m.blocks.to_string().contains("quench_approve"))
    };
    eventually(Duration::from_secs(20), "the approval request", || {
        question().is_some()
    });
    let q = question().unwrap();
    let value = q.blocks[1]["elements"][0]["value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(q.text.contains("<@U0APPROVE1>"), "{}", q.text);

    // Allowed to approve by the rules, but not the step's approver. The
    // click is answered while the note to its clicker is still on its way
    // (held by the fake until it is told to answer): Slack wants the
    // answer within 3 seconds, and the note is a request to Slack.
    api.hold_responses();
    assert_eq!(
        serve.click(OTHER, "quench_approve", &value, &api.response_url("other")),
        200
    );
    // Not allowed to approve at all.
    assert_eq!(
        serve.click(
            ALLOWED,
            "quench_approve",
            &value,
            &api.response_url("allowed")
        ),
        200
    );
    eventually(Duration::from_secs(20), "both notes", || {
        api.responses().len() == 2
    });
    api.answer_responses();
    let note = |id: &str| {
        let responses = api.responses();
        let (_, note) = responses.iter().find(|(to, _)| to == id).unwrap();
        assert_eq!(note["response_type"], "ephemeral");
        note["text"].as_str().unwrap().to_string()
    };
    assert!(note("other").contains("not one of this step's approvers"));
    assert!(note("allowed").contains("may not approve"));
    let dir = serve.incidents().pop().unwrap();
    assert!(!finished(&dir), "still waiting");

    assert_eq!(
        serve.click(APPROVER, "quench_approve", &value, &api.response_url("ok")),
        200
    );
    eventually(Duration::from_secs(20), "the incident", || finished(&dir));
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(
        journal.contains(r#""event":"approval_granted","step":"announce","by":"slack:U0APPROVE1""#),
        "{journal}"
    );
    assert!(journal.contains(r#""event":"step_succeeded","step":"announce""#));
    assert!(
        api.messages()
            .iter()
            .any(|m| m.text == "approved and announced"),
        "the approved step ran"
    );
    // The question no longer has buttons, and says who approved.
    let q = api.messages().into_iter().find(|m| m.ts == q.ts).unwrap();
    assert_eq!(q.blocks, json!([]));
    assert!(q.text.contains("approved by <@U0APPROVE1>"), "{}", q.text);
    let audit = serve.audit();
    let clicks: Vec<&Value> = audit
        .iter()
        .filter(|a| a["path"] == "/slack/interactions")
        .collect();
    let decisions: Vec<&str> = clicks
        .iter()
        .map(|a| a["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["denied", "denied", "allowed"]);
}

#[test]
fn fifty_concurrent_commands_are_all_acknowledged_within_three_seconds() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let addr = serve.addr.clone();
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let body =
                    command_body(ALLOWED, "rehearse slack-token-compromise", &format!("c{i}"));
                let ts = chrono::Utc::now().timestamp().to_string();
                let sig = signature(SIGNING_SECRET, &ts, &body);
                let start = Instant::now();
                let (status, text) = http(
                    &addr,
                    "/slack/commands",
                    &body,
                    &[
                        ("X-Slack-Request-Timestamp", &ts),
                        ("X-Slack-Signature", &sig),
                    ],
                );
                (status, text, start.elapsed())
            })
        })
        .collect();
    for t in threads {
        let (status, text, took) = t.join().unwrap();
        assert_eq!(status, 200, "{text}");
        assert!(text.contains("started a rehearsal"), "{text}");
        assert!(took < Duration::from_secs(3), "acknowledged after {took:?}");
    }
    eventually(Duration::from_secs(60), "50 incidents", || {
        let dirs = serve.incidents();
        dirs.len() == 50 && dirs.iter().all(|d| finished(d))
    });
}

const PROBE: &str = r##"name: probe
title: A probe
steps:
  - id: announce
    phase: notify
    action: slack.post_message
    with: { channel: "#sec-incidents", text: "probing" }
"##;

/// The incident id in a "started" answer.
fn started_id(ack: &Value) -> String {
    let text = ack["text"].as_str().unwrap_or_default();
    assert!(text.contains("started a rehearsal"), "{ack}");
    text.split('*')
        .nth(1)
        .unwrap_or_else(|| panic!("no incident id in {text}"))
        .to_string()
}

#[test]
fn the_answer_refuses_or_starts_and_the_incident_follows_it() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let runbook = serve.running.dir.path().join("runbooks/probe.yaml");
    std::fs::write(&runbook, PROBE).unwrap();

    // Accepted: the decision is in the audit log by the time the answer
    // arrives, and the incident is created and run after it.
    let (status, ack) = serve.command(ALLOWED, "rehearse probe");
    assert_eq!(status, 200);
    let id = started_id(&ack);
    let audit = serve.audit();
    let decision = audit.iter().find(|a| a["incident"] == id.as_str());
    assert_eq!(
        decision.map(|a| &a["decision"]),
        Some(&json!("allowed")),
        "{audit:?}"
    );
    let dir = serve.store().join(&id);
    eventually(Duration::from_secs(20), "the incident", || finished(&dir));

    // Refused in the answer itself, starting nothing: an unknown runbook,
    // and a runbook that no longer validates (the change is seen at once).
    let (status, unknown) = serve.command(ALLOWED, "rehearse prob");
    assert_eq!(status, 200);
    assert_eq!(unknown["response_type"], "ephemeral");
    let text = unknown["text"].as_str().unwrap();
    assert!(
        text.contains("no runbook `prob`") && text.contains("did you mean `probe`?"),
        "{text}"
    );
    std::fs::write(&runbook, PROBE.replace("steps:", "stepz:")).unwrap();
    let (status, invalid) = serve.command(ALLOWED, "rehearse probe");
    assert_eq!(status, 200);
    assert_eq!(invalid["response_type"], "ephemeral");
    let text = invalid["text"].as_str().unwrap();
    assert!(
        text.contains("stepz") && !text.contains("started"),
        "{text}"
    );
    let (_, listed) = serve.command(ALLOWED, "list");
    assert!(
        listed["text"]
            .as_str()
            .unwrap()
            .contains("`probe` — (does not validate"),
        "{listed}"
    );

    // Fixed again: started again, with the new version.
    std::fs::write(&runbook, PROBE.replace("A probe", "A probe, fixed")).unwrap();
    let (_, ack) = serve.command(ALLOWED, "rehearse probe");
    let again = started_id(&ack);
    let dir = serve.store().join(&again);
    eventually(Duration::from_secs(20), "the second incident", || {
        finished(&dir)
    });
    let copy = std::fs::read_to_string(dir.join("runbook.yaml")).unwrap();
    assert!(copy.contains("A probe, fixed"), "{copy}");
    assert_eq!(serve.incidents().len(), 2, "the refused started nothing");
    let audit = serve.audit();
    let decisions: Vec<&str> = audit
        .iter()
        .filter(|a| a["action"] == "rehearse")
        .map(|a| a["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["allowed", "refused", "refused", "allowed"]);
}

#[test]
fn shutdown_leaves_a_waiting_incident_interrupted_and_consistent() {
    let api = FakeSlack::start(&[]);
    let mut serve = Serve::start(&api);
    serve.command(ALLOWED, "run needs-approval");
    eventually(Duration::from_secs(20), "the approval request", || {
        api.messages()
            .iter()
            .any(|m| m.blocks.to_string().contains("quench_approve"))
    });
    let out = serve.running.terminate();
    out.code(0);
    let dir = serve.incidents().pop().unwrap();
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    let last: Value = serde_json::from_str(journal.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "incident_finished", "{journal}");
    assert_eq!(last["outcome"], "interrupted");
    assert!(
        !journal.contains("\"step_started\",\"step\":\"announce\""),
        "the unapproved step never ran"
    );
}

#[test]
fn a_manual_task_left_open_is_completed_from_slack() {
    let api = FakeSlack::start(&[LEAKED]);
    let serve = Serve::start(&api);
    serve.command(
        ALLOWED,
        &format!("run slack-token-compromise leaked_token={LEAKED}"),
    );
    eventually(Duration::from_secs(20), "an incident", || {
        !serve.incidents().is_empty()
    });
    let dir = serve.incidents().pop().unwrap();
    eventually(Duration::from_secs(20), "the incident", || finished(&dir));
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    // Only someone who may run the runbook may answer for it.
    let (_, denied) = serve.command(OTHER, &format!("done {id} review a public gist"));
    assert!(
        denied["text"]
            .as_str()
            .unwrap()
            .contains("may not complete"),
        "{denied}"
    );
    // Completed at once, or, while the runner still holds the incident (its
    // last documents are written a moment after its last record), as soon
    // as it lets go.
    let (_, ok) = serve.command(
        ALLOWED,
        &format!("done {id} review committed to a public gist"),
    );
    let text = ok["text"].as_str().unwrap();
    assert!(
        text.contains("completed `review`") || text.contains("answered `review`"),
        "{ok}"
    );
    eventually(Duration::from_secs(10), "the answer", || {
        std::fs::read_to_string(dir.join("journal.jsonl"))
            .unwrap()
            .contains("committed to a public gist")
            && std::fs::read_to_string(dir.join("incident.md"))
                .unwrap()
                .contains("committed to a public gist")
    });
    let (_, again) = serve.command(ALLOWED, &format!("done {id} review twice"));
    assert!(
        again["text"]
            .as_str()
            .unwrap()
            .contains("has no open task `review`"),
        "{again}"
    );
    let md = std::fs::read_to_string(dir.join("incident.md")).unwrap();
    assert!(md.contains("committed to a public gist"), "{md}");
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(journal.contains(r#""by":"slack:U0ALLOWED1""#));
}

#[test]
fn serve_refuses_to_start_without_a_signing_secret() {
    let (out, _d) = Test::new()
        .args(&["serve", "--listen", "127.0.0.1:0"])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains(
            "no Slack signing secret: set SLACK_SIGNING_SECRET or [providers.slack] signing_secret"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_declared_secret_in_no_known_format_is_still_never_echoed_or_logged() {
    const ODD: &str = "legacy-token-without-a-known-prefix-0042";
    let api = FakeSlack::start(&[ODD]);
    let serve = Serve::start(&api);
    let (_, ack) = serve.command(
        ALLOWED,
        &format!("run slack-token-compromise leaked_token={ODD}"),
    );
    assert_eq!(ack["response_type"], "ephemeral", "{ack}");
    assert!(!ack.to_string().contains(ODD));
    eventually(Duration::from_secs(20), "the revocation", || {
        api.revoked() == [ODD]
    });
    let dir = serve.incidents().pop().unwrap();
    eventually(Duration::from_secs(20), "the incident", || finished(&dir));
    let audit = std::fs::read_to_string(serve.store().join("chatops.jsonl")).unwrap();
    assert!(!audit.contains(ODD), "{audit}");
    assert!(
        audit.contains("run slack-token-compromise leaked_token=…"),
        "{audit}"
    );
    let journal = std::fs::read_to_string(dir.join("journal.jsonl")).unwrap();
    assert!(!journal.contains(ODD));
}

fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (
        status,
        raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string(),
    )
}

#[test]
fn healthz_and_metrics_are_scraped() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    assert_eq!(get(&serve.addr, "/healthz"), (200, "ok".to_string()));
    // A fresh server's scrape is never empty: it names the build.
    let fresh = get(&serve.addr, "/metrics").1;
    let build = format!(
        "quench_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(fresh.contains(&build), "no `{build}` in:\n{fresh}");
    serve.command(ALLOWED, "help");
    serve.command(ALLOWED, "list");
    let body = command_body(ALLOWED, "rehearse aws-access-key-compromise", "m1");
    assert_eq!(
        serve
            .post("/slack/commands", &body, "not-the-signing-secret", 0)
            .0,
        401
    );
    let (_, denied) = serve.command(OTHER, "run aws-access-key-compromise");
    assert_eq!(denied["response_type"], "ephemeral");
    let (_, ack) = serve.command(
        ALLOWED,
        "rehearse aws-access-key-compromise iam_user=ci-bot",
    );
    let text = ack["text"].as_str().unwrap().to_string();
    let id = text.split('*').nth(1).unwrap().to_string();
    eventually(Duration::from_secs(20), "the incident", || {
        finished(&serve.store().join(&id))
    });
    let mut metrics = String::new();
    eventually(Duration::from_secs(10), "the metrics", || {
        metrics = get(&serve.addr, "/metrics").1;
        metrics.contains("quench_incidents_finished_total{")
    });
    for line in [
        "quench_slack_requests_total{outcome=\"forged\"} 1",
        "quench_slack_requests_total{outcome=\"denied\"} 1",
        "quench_slack_requests_total{outcome=\"accepted\"} 1",
        "quench_slack_requests_total{outcome=\"help\"} 1",
        "quench_slack_requests_total{outcome=\"list\"} 1",
        "quench_incidents_started_total{runbook=\"aws-access-key-compromise\",mode=\"rehearsal\"} 1",
        "quench_incidents_finished_total{runbook=\"aws-access-key-compromise\",outcome=\"succeeded\"} 1",
        "quench_step_duration_seconds_count{action=\"aws.deactivate_access_key\",result=\"succeeded\",mode=\"rehearsal\"} 1",
        "quench_step_attempts_total{action=\"aws.deactivate_access_key\",mode=\"rehearsal\"} 1",
        "quench_time_to_revoke_seconds_count{runbook=\"aws-access-key-compromise\"} 1",
    ] {
        assert!(metrics.contains(line), "no `{line}` in:\n{metrics}");
    }
}

/// A value too short to be swept from what quench writes is refused, and
/// nothing starts: a response that could not journal would revoke nothing.
#[test]
fn a_secret_too_short_to_sweep_is_refused_from_slack() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let (status, ack) = serve.command(ALLOWED, "run slack-token-compromise leaked_token=ts");
    assert_eq!(status, 200);
    assert_eq!(ack["response_type"], "ephemeral", "{ack}");
    assert!(
        ack["text"]
            .as_str()
            .unwrap_or_default()
            .contains("secret `leaked_token` is shorter than 8 characters"),
        "{ack}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(serve.incidents().is_empty());
    assert!(api.calls_to("auth.revoke").is_empty());
}

/// A value from outside cannot mention the channel, hide a link, or close
/// the document's code block in the thread.
#[test]
fn the_document_in_the_thread_cannot_be_broken_out_of() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let (status, ack) = serve.command(
        ALLOWED,
        "rehearse aws-access-key-compromise iam_user=```<!channel><https://evil.example|click>",
    );
    assert_eq!(status, 200, "{ack}");
    let text = ack["text"].as_str().unwrap().to_string();
    let id = text.split('*').nth(1).unwrap().to_string();
    let dir = serve.store().join(&id);
    eventually(Duration::from_secs(20), "the incident", || finished(&dir));
    eventually(Duration::from_secs(10), "the document", || {
        api.messages().iter().any(|m| m.thread_ts.is_some())
    });
    for m in api.messages() {
        assert!(!m.text.contains("<!channel>"), "{}", m.text);
        assert!(!m.text.contains("<https://evil"), "{}", m.text);
    }
    let doc = api
        .messages()
        .into_iter()
        .find(|m| m.thread_ts.is_some())
        .unwrap();
    assert!(doc.text.starts_with("```\n") && doc.text.ends_with("\n```"));
    assert_eq!(doc.text.matches("```").count(), 2, "{}", doc.text);
    assert!(doc.text.contains("&lt;!channel&gt;"), "{}", doc.text);
}

/// A signed command sent again byte for byte, headers and all, is a replay:
/// refused like a forgery, and it starts nothing.
#[test]
fn a_replayed_command_is_refused_and_starts_nothing_twice() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let body = command_body(ALLOWED, "rehearse slack-token-compromise", "r1");
    let ts = chrono::Utc::now().timestamp().to_string();
    let sig = signature(SIGNING_SECRET, &ts, &body);
    let headers = [
        ("X-Slack-Request-Timestamp", ts.as_str()),
        ("X-Slack-Signature", sig.as_str()),
    ];
    let first = http(&serve.addr, "/slack/commands", &body, &headers);
    assert_eq!(first.0, 200, "{first:?}");
    std::thread::sleep(Duration::from_secs(2));
    let again = http(&serve.addr, "/slack/commands", &body, &headers);
    assert_eq!(again, (401, String::new()));
    eventually(Duration::from_secs(20), "the incident", || {
        serve.incidents().first().is_some_and(|d| finished(d))
    });
    assert_eq!(serve.incidents().len(), 1);
    let audit = serve.audit();
    assert!(
        audit.iter().any(|a| a["reason"]
            == "the same signed request was received before: a replay"
            && a["forged"] == true),
        "{audit:?}"
    );
}

/// Reads from `stream` until the server closes it or `limit` passes;
/// returns what it said and how long it took.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut said = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => said.extend_from_slice(&buf[..n]),
        }
    }
    (
        String::from_utf8_lossy(&said).into_owned(),
        started.elapsed(),
    )
}

/// A client that sends a request slowly, or never finishes one, is cut
/// off within seconds; a body larger than Slack's payloads is refused; and
/// connections past the limit are closed at once.
#[test]
fn slow_partial_and_oversized_requests_cannot_hold_the_server() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let open = || TcpStream::connect(&serve.addr).unwrap();

    // Headers that never end.
    let mut partial = open();
    partial
        .write_all(b"POST /slack/commands HTTP/1.1\r\nHost: quench\r\nContent-Type: app")
        .unwrap();
    // A body that never comes: 3 bytes of a declared 1,000.
    let mut slow = open();
    slow.write_all(
        b"POST /slack/commands HTTP/1.1\r\nHost: quench\r\nContent-Length: 1000\r\n\r\nabc",
    )
    .unwrap();
    let (_, took) = read_until_closed(&mut partial, Duration::from_secs(20));
    assert!(took < Duration::from_secs(9), "headers held for {took:?}");
    let (said, took) = read_until_closed(&mut slow, Duration::from_secs(20));
    assert!(took < Duration::from_secs(9), "body held for {took:?}");
    assert!(said.starts_with("HTTP/1.1 408"), "{said}");

    // Larger than any Slack payload: refused before its signature is read.
    let big = "x".repeat(100 * 1024);
    let (status, _) = http(&serve.addr, "/slack/commands", &big, &[]);
    assert_eq!(status, 413);

    // The limit on connections: idle ones fill it, one more is closed.
    let idle: Vec<TcpStream> = (0..256).map(|_| open()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut one_more = open();
    let (said, took) = read_until_closed(&mut one_more, Duration::from_secs(20));
    assert!(
        said.is_empty() && took < Duration::from_secs(2),
        "{took:?} {said}"
    );
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let (status, _) = serve.command(ALLOWED, "help");
    assert_eq!(status, 200, "served again once they are gone");
    assert!(serve.incidents().is_empty());
}

/// `done` for an incident another process is running: the answer waits in
/// the incident's inbox and is journaled once the runner lets go of the
/// incident, never written into a journal another process holds.
#[test]
fn an_answer_to_an_incident_another_process_runs_waits_for_it() {
    let api = FakeSlack::start(&[]);
    let serve = Serve::start(&api);
    let slow = crate::support::fake_api::FakeApi::start();
    slow.set_latency(Duration::from_secs(3));
    let dir = serve.running.dir.path().to_path_buf();
    let runbook = format!(
        "name: held\nsteps:\n  - {{ id: review, phase: review, action: manual.task, with: {{ prompt: How? }} }}\n  - {{ id: slow, phase: revoke, action: http.request, with: {{ url: \"{}/slow\" }} }}\n",
        slow.url()
    );
    std::fs::write(dir.join("runbooks/held.yaml"), runbook).unwrap();
    let mut cli = std::process::Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["run", "held"])
        .current_dir(&dir)
        .env_remove("QUENCH_STORE")
        .env_remove("QUENCH_RUNBOOKS")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let journal = || {
        serve
            .incidents()
            .first()
            .and_then(|d| std::fs::read_to_string(d.join("journal.jsonl")).ok())
            .unwrap_or_default()
    };
    eventually(Duration::from_secs(20), "the open task", || {
        journal().contains("task_opened")
    });
    let id = serve.incidents()[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    // Not the channel's, and not a rule that lets them answer.
    let (_, denied) = serve.command(ALLOWED, &format!("done {id} review it was a gist"));
    assert!(
        denied["text"]
            .as_str()
            .unwrap()
            .contains("may not complete"),
        "{denied}"
    );
    let (_, queued) = serve.command(APPROVER, &format!("done {id} review it was a gist"));
    let text = queued["text"].as_str().unwrap();
    assert!(
        text.contains("answered `review`") && text.contains("running"),
        "{text}"
    );
    assert!(
        !journal().contains("task_answered"),
        "written under the runner"
    );
    assert!(cli.wait().unwrap().success());
    eventually(Duration::from_secs(10), "the answer in the journal", || {
        journal().contains("task_answered")
    });
    let records: Vec<Value> = journal()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["seq"], i as u64 + 1, "{records:?}");
    }
    let report = std::process::Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["report", &id])
        .current_dir(&dir)
        .env_remove("QUENCH_STORE")
        .output()
        .unwrap();
    assert!(report.status.success());
    assert!(String::from_utf8_lossy(&report.stdout).contains("it was a gist"));
    eventually(Duration::from_secs(10), "the inbox emptied", || {
        !dir.join("incidents").join(&id).join("inbox.jsonl").exists()
    });
}
