//! The AWS and Vault runbooks, live: quench against moto's server, a
//! CloudTrail that speaks LookupEvents, and a dev OpenBao.

use aws_sdk_iam::config::{BehaviorVersion, Credentials, Region};
use serde_json::Value;

use crate::support::Test;
use crate::support::fake_cloudtrail::{FakeCloudTrail, Trail, event};
use crate::support::lossy_iam::{Loss, LossyIam};
use crate::support::peers::{self, BAO_ROOT_TOKEN, Peer};

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn iam(moto: &Peer) -> aws_sdk_iam::Client {
    let conf = aws_sdk_iam::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    aws_sdk_iam::Client::from_conf(conf)
}

/// Creates `user` with one access key; returns the key id.
pub(crate) fn leaked_key(moto: &Peer, user: &str) -> String {
    let iam = iam(moto);
    rt().block_on(async {
        iam.create_user().user_name(user).send().await.unwrap();
        let out = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        out.access_key().unwrap().access_key_id().to_string()
    })
}

/// (key id, status) of the user's keys.
/// The AWS key a response or rotation stored in Vault at
/// `quench/aws/ci-bot`, as a consumer reads it: (id, secret).
pub(crate) fn stored_key(vault: &Peer) -> (String, String) {
    rt().block_on(async {
        let body: Value = reqwest::Client::new()
            .get(format!("{}/v1/secret/data/quench/aws/ci-bot", vault.url))
            .header("X-Vault-Token", BAO_ROOT_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = &body["data"]["data"];
        (
            data["access_key_id"].as_str().unwrap().to_string(),
            data["secret_access_key"].as_str().unwrap().to_string(),
        )
    })
}

pub(crate) fn keys(moto: &Peer, user: &str) -> Vec<(String, String)> {
    let iam = iam(moto);
    rt().block_on(async {
        let out = iam.list_access_keys().user_name(user).send().await.unwrap();
        out.access_key_metadata()
            .iter()
            .map(|k| {
                (
                    k.access_key_id().unwrap_or_default().to_string(),
                    k.status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                )
            })
            .collect()
    })
}

fn bao(bao: &Peer, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    rt().block_on(async {
        let client = reqwest::Client::new();
        let mut rb = client
            .request(method.parse().unwrap(), format!("{}/v1/{path}", bao.url))
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    })
}

/// `quench run aws-access-key-compromise` for ci-bot's leaked key `old`.
trait RunAwsRunbook {
    fn run_aws_runbook(self, old: &str) -> Self;
}

impl RunAwsRunbook for Test {
    fn run_aws_runbook(self, old: &str) -> Self {
        self.args(&[
            "run",
            "aws-access-key-compromise",
            "--var",
            &format!("access_key_id={old}"),
            "--var",
            "iam_user=ci-bot",
        ])
    }
}

fn aws_test(moto: &Peer, vault: &Peer, trail: &FakeCloudTrail) -> Test {
    Test::new()
        // The fake trail's one region: the default would search seventeen.
        .file(
            "quench.toml",
            "[providers.aws]\nregions = [\"us-east-1\"]\n",
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ENDPOINT_URL_CLOUDTRAIL", &trail.url())
        .env("VAULT_ADDR", &vault.url)
        .env("VAULT_TOKEN", BAO_ROOT_TOKEN)
}

/// `--leaked-at` opens CloudTrail's window at the leak: the key's owner
/// using it half an hour before is not in the findings; the use half an hour
/// after is.
#[test]
fn cloudtrail_is_searched_from_the_leak() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let old = leaked_key(&moto, "ci-bot");
    let leak = chrono::Utc::now() - chrono::Duration::hours(2);
    let at = |minutes: i64| (leak + chrono::Duration::minutes(minutes)).timestamp();
    let events = vec![
        event("ListBuckets", at(-30), "192.0.2.1", "the-owner", &old),
        event("GetObject", at(30), "203.0.113.7", "aws-cli/2.15", &old),
    ];
    let trail = FakeCloudTrail::start(Trail::Events(events));
    let leaked_at = leak.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (out, _d) = aws_test(&moto, &vault, &trail)
        .run_aws_runbook(&old)
        .args(&["--leaked-at", &leaked_at])
        .run();
    out.code(0);
    let start = trail.requests()[0]["StartTime"].as_f64().unwrap();
    let leak_secs = leak.timestamp() as f64;
    assert!(
        (leak_secs - 7.0 * 60.0..=leak_secs).contains(&start),
        "the window starts at {start}, the leak at {leak_secs}"
    );
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(md.contains("- events: 1"), "{md}");
    assert!(md.contains("- source_ips: 203.0.113.7"), "{md}");
    assert!(
        md.contains(&format!("| Leaked | {}", &leaked_at[..19])),
        "{md}"
    );
}

#[test]
fn the_aws_runbook_revokes_replaces_stores_verifies_and_audits_live() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let old = leaked_key(&moto, "ci-bot");
    let now = chrono::Utc::now().timestamp();
    let events = vec![
        event(
            "ListBuckets",
            now - 3600,
            "203.0.113.7",
            "aws-cli/2.15",
            &old,
        ),
        event("GetObject", now - 3000, "203.0.113.7", "aws-cli/2.15", &old),
        event(
            "GetObject",
            now - 2000,
            "198.51.100.23",
            "python-requests/2.31",
            &old,
        ),
        event(
            "PutObject",
            now - 1000,
            "198.51.100.23",
            "python-requests/2.31",
            &old,
        ),
        event(
            "GetCallerIdentity",
            now - 500,
            "203.0.113.7",
            "aws-cli/2.15",
            &old,
        ),
        event(
            "ListBuckets",
            now - 400,
            "192.0.2.1",
            "other",
            "AKIAOTHERKEY00000000",
        ),
    ];
    let trail = FakeCloudTrail::start(Trail::Events(events));

    let (out, _d) = aws_test(&moto, &vault, &trail).run_aws_runbook(&old).run();
    out.code(0);

    // The leaked key is off, and exactly one new key is on.
    let after = keys(&moto, "ci-bot");
    assert!(
        after.contains(&(old.clone(), "Inactive".into())),
        "{after:?}"
    );
    let active: Vec<_> = after.iter().filter(|(_, s)| s == "Active").collect();
    assert_eq!(active.len(), 1, "{after:?}");
    let new = active[0].0.clone();

    // Consumers read the new key from Vault.
    let (status, body) = bao(
        &vault,
        "GET",
        "secret/data/quench/aws/ci-bot",
        BAO_ROOT_TOKEN,
        None,
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"]["access_key_id"], new.as_str());
    let secret = body["data"]["data"]["secret_access_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(secret.len() >= 20, "{secret}");

    // CloudTrail: all pages of the leaked key's events, summarised.
    assert_eq!(trail.requests().len(), 3, "5 events in pages of 2");
    let inc = out.incident();
    let md = std::fs::read_to_string(inc.join("incident.md")).unwrap();
    assert!(md.contains("- events: 5"), "{md}");
    assert!(
        md.contains("- source_ips: 198.51.100.23, 203.0.113.7"),
        "{md}"
    );
    assert!(
        md.contains("- event_names: GetCallerIdentity, GetObject, ListBuckets, PutObject"),
        "{md}"
    );
    assert!(
        md.contains("no Slack bot token: set SLACK_BOT_TOKEN or [providers.slack] bot_token, so this notification was not sent"),
        "{md}"
    );
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(inc.join("incident.json")).unwrap()).unwrap();
    assert_eq!(json["slo_met"], true);

    // Neither the new secret nor the engine's Vault token is anywhere.
    for (path, text) in out.artifacts() {
        assert!(
            !text.contains(&secret),
            "{} holds the new secret",
            path.display()
        );
        assert!(
            !text.contains(BAO_ROOT_TOKEN),
            "{} holds the vault token",
            path.display()
        );
    }
    assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret));

    // The old key is deleted a week later, once, by `tick`.
    let store = out.dir.join("incidents");
    let week = (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339();
    for _ in 0..2 {
        let (tick, _d) = aws_test(&moto, &vault, &trail)
            .args(&["--store", store.to_str().unwrap(), "tick", "--now", &week])
            .run();
        tick.code(0);
    }
    let after = keys(&moto, "ci-bot");
    assert_eq!(after, vec![(new, "Active".to_string())]);
    let journal = std::fs::read_to_string(inc.join("journal.jsonl")).unwrap();
    assert_eq!(
        journal.matches("\"event\":\"follow_ups_started\"").count(),
        1,
        "ran once"
    );
    let md = std::fs::read_to_string(inc.join("incident.md")).unwrap();
    assert!(md.contains("| revoke | `delete_old` Delete the old key for good | `aws.delete_access_key` | succeeded |"), "{md}");
}

#[test]
fn nothing_is_due_before_its_time() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let old = leaked_key(&moto, "ci-bot");
    let trail = FakeCloudTrail::start(Trail::Events(Vec::new()));
    let (out, _d) = aws_test(&moto, &vault, &trail).run_aws_runbook(&old).run();
    out.code(0);
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(
        md.contains("- events: 0"),
        "an empty history is a finding too:\n{md}"
    );
    assert!(
        md.contains("`verify_dead` Prove the leaked key dead | `aws.verify_revoked` | skipped: the optional secret `leaked_secret_access_key` was not given"),
        "without the leaked secret nothing is proven, and the document says why:\n{md}"
    );
    let store = out.dir.join("incidents");
    let (tick, _d) = aws_test(&moto, &vault, &trail)
        .args(&["--store", store.to_str().unwrap(), "tick"])
        .run();
    tick.code(0);
    assert_eq!(
        keys(&moto, "ci-bot").len(),
        2,
        "the old key stays until its week is up"
    );
}

#[test]
fn a_broken_cloudtrail_is_reported_and_the_response_goes_on() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let old = leaked_key(&moto, "ci-bot");
    let trail = FakeCloudTrail::start(Trail::Broken);
    let (out, _d) = aws_test(&moto, &vault, &trail).run_aws_runbook(&old).run();
    out.code(1);
    assert!(keys(&moto, "ci-bot").contains(&(old, "Inactive".into())));
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(
        md.contains("### `cloudtrail` What did the leaked key do? (failed)"),
        "{md}"
    );
    assert!(
        md.contains(
            "failed: CloudTrail LookupEvents in us-east-1: HTTP 500 InternalFailure: the service is unavailable"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| document | `document` Write the incident document | `incident.document` | succeeded"
        ),
        "the document runs whatever the audit did:\n{md}"
    );
    assert_eq!(
        trail.requests().len(),
        3,
        "a 500 is retried by the engine alone"
    );
}

/// CloudTrail behind a proxy that answers 500 with an HTML page: every
/// attempt is the engine's own and journaled (the SDK retries nothing), and
/// the error says which service, which call and what status.
#[test]
fn an_html_500_from_cloudtrail_is_transient_and_named() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let old = leaked_key(&moto, "ci-bot");
    let trail = FakeCloudTrail::start(Trail::BrokenHtml);
    let (out, _d) = aws_test(&moto, &vault, &trail).run_aws_runbook(&old).run();
    out.code(1);
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    let cloudtrail: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["step"] == "cloudtrail")
        .collect();
    let started = cloudtrail
        .iter()
        .filter(|r| r["event"] == "step_started")
        .count();
    assert_eq!(started, 3, "the runbook's three attempts");
    assert_eq!(
        trail.requests().len(),
        started,
        "one request per journaled attempt"
    );
    let retried: Vec<&Value> = cloudtrail
        .iter()
        .filter(|r| r["event"] == "attempt_failed")
        .collect();
    assert_eq!(retried.len(), 2);
    assert!(
        retried.iter().all(|r| r["class"] == "transient"),
        "{retried:?}"
    );
    let failed = cloudtrail
        .iter()
        .find(|r| r["event"] == "step_failed")
        .expect("the step failed");
    assert_eq!(failed["class"], "transient");
    assert_eq!(
        failed["error"],
        "CloudTrail LookupEvents in us-east-1: HTTP 500: an answer that could not be read: 500 Internal Server Error Internal Server Error upstream connect error"
    );
}

/// The records of one step in an incident's journal.
fn journal_of(out: &crate::support::Output, step: &str) -> Vec<Value> {
    std::fs::read_to_string(out.incident().join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["step"] == step)
        .collect()
}

/// `CreateAccessKey` is not idempotent: when its answer is lost after IAM
/// made the key, the step fails naming that key, and no second key is made.
#[test]
fn a_lost_create_access_key_answer_never_mints_a_second_key() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let old = leaked_key(&moto, "ci-bot");
    let trail = FakeCloudTrail::start(Trail::Events(Vec::new()));
    let iam_proxy = LossyIam::start(&moto.url, Loss::AfterIam);
    let (out, _d) = aws_test(&moto, &vault, &trail)
        .env("AWS_ENDPOINT_URL_IAM", &iam_proxy.url())
        .run_aws_runbook(&old)
        .run();
    out.code(1);
    let now = keys(&moto, "ci-bot");
    assert_eq!(now.len(), 2, "the old key and one new one: {now:?}");
    let (made, _) = now.iter().find(|(id, _)| *id != old).unwrap();
    let creates = iam_proxy
        .actions()
        .iter()
        .filter(|a| *a == "CreateAccessKey")
        .count();
    assert_eq!(creates, 1, "{:?}", iam_proxy.actions());
    let new_key = journal_of(&out, "new_key");
    let failed = new_key
        .iter()
        .find(|r| r["event"] == "step_failed")
        .expect("new_key failed");
    assert_eq!(failed["class"], "permanent");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("it created key `{made}`, whose secret was lost")),
        "{error}"
    );
    assert!(!error.contains("secret_access_key"), "{error}");
}

/// When the lost request never reached IAM, nothing was made, and the
/// engine's next attempt creates the key.
#[test]
fn a_create_access_key_that_never_reached_iam_is_retried() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let old = leaked_key(&moto, "ci-bot");
    let trail = FakeCloudTrail::start(Trail::Events(Vec::new()));
    let iam_proxy = LossyIam::start(&moto.url, Loss::BeforeIam);
    let (out, _d) = aws_test(&moto, &vault, &trail)
        .env("AWS_ENDPOINT_URL_IAM", &iam_proxy.url())
        .run_aws_runbook(&old)
        .run();
    out.code(0);
    assert_eq!(keys(&moto, "ci-bot").len(), 2);
    let new_key = journal_of(&out, "new_key");
    let retried = new_key
        .iter()
        .find(|r| r["event"] == "attempt_failed")
        .expect("the first attempt failed");
    assert_eq!(retried["class"], "transient");
    assert!(
        retried["error"]
            .as_str()
            .unwrap()
            .starts_with("IAM CreateAccessKey: HTTP 502"),
        "{retried}"
    );
    assert!(
        new_key
            .iter()
            .any(|r| r["event"] == "step_succeeded" && r["attempt"] == 2)
    );
}

#[test]
fn a_missing_vault_is_refused_before_anything_happens() {
    let moto = peers::moto();
    let old = leaked_key(&moto, "ci-bot");
    let (out, _d) = Test::new()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .run_aws_runbook(&old)
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("no Vault address: set VAULT_ADDR"),
        "{}",
        out.stderr
    );
    assert_eq!(keys(&moto, "ci-bot"), vec![(old, "Active".to_string())]);
}

#[test]
fn the_vault_runbook_revokes_a_real_token_by_its_accessor() {
    let vault = peers::openbao();
    let (status, created) = bao(
        &vault,
        "POST",
        "auth/token/create",
        BAO_ROOT_TOKEN,
        Some(serde_json::json!({"policies": ["default"], "ttl": "1h"})),
    );
    assert_eq!(status, 200, "{created}");
    let token = created["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_string();
    assert_eq!(
        bao(&vault, "GET", "auth/token/lookup-self", &token, None).0,
        200,
        "the token works before"
    );

    let (out, _d) = Test::new()
        .env("BAO_ADDR", &vault.url)
        .env("BAO_TOKEN", BAO_ROOT_TOKEN)
        .args(&[
            "run",
            "vault-token-compromise",
            "--var",
            &format!("accessor={accessor}"),
        ])
        .run();
    out.code(0);
    assert_eq!(
        bao(&vault, "GET", "auth/token/lookup-self", &token, None).0,
        403,
        "the token stopped working"
    );
    for (path, text) in out.artifacts() {
        assert!(!text.contains(BAO_ROOT_TOKEN), "{}", path.display());
    }
    // Revoking a revoked accessor again is harmless: the action is
    // idempotent, so a resumed incident may repeat it.
    let (again, _d) = Test::new()
        .env("BAO_ADDR", &vault.url)
        .env("BAO_TOKEN", BAO_ROOT_TOKEN)
        .args(&[
            "run",
            "vault-token-compromise",
            "--var",
            &format!("accessor={accessor}"),
        ])
        .run();
    again.code(0);
}

#[test]
fn a_secret_can_come_from_vault() {
    let vault = peers::openbao();
    let token = "vault-held-token-6c1d";
    let (status, body) = bao(
        &vault,
        "POST",
        "secret/data/quench/api",
        BAO_ROOT_TOKEN,
        Some(serde_json::json!({"data": {"token": token}})),
    );
    assert_eq!(status, 200, "{body}");
    let api = crate::support::fake_api::FakeApi::start();
    let runbook = r#"
name: from-vault
secrets: { token: {} }
inputs: { api: { example: "http://127.0.0.1:1" } }
steps:
  - id: revoke
    phase: revoke
    action: http.request
    with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke", headers: { Authorization: "Bearer {{secrets.token}}" } }
"#;
    let (out, _d) = Test::new()
        .file("rb.yaml", runbook)
        .env("VAULT_ADDR", &vault.url)
        .env("VAULT_TOKEN", BAO_ROOT_TOKEN)
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("api={}", api.url()),
            "--secret",
            "token=vault:secret/quench/api#token",
        ])
        .run();
    out.code(0);
    assert_eq!(
        api.seen()[0].headers["authorization"],
        format!("Bearer {token}")
    );
    assert!(!out.artifacts().iter().any(|(_, t)| t.contains(token)));

    let (out, _d) = Test::new()
        .file("rb.yaml", runbook)
        .env("VAULT_ADDR", &vault.url)
        .env("VAULT_TOKEN", BAO_ROOT_TOKEN)
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("api={}", api.url()),
            "--secret",
            "token=vault:secret/quench/api#nope",
        ])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("`secret/quench/api` has no field `nope`"),
        "{}",
        out.stderr
    );
}
