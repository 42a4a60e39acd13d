//! The monthly key review: `quench audit` against moto's IAM (behind a
//! peer that sets last-used dates), OpenBao's tokens and a GitHub peer
//! listing an organization's fine-grained tokens. Moto's keys are new, so
//! ages are judged with `--now`.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;

use crate::aws::{iam, rt};
use crate::support::Test;
use crate::support::last_used::LastUsedIam;
use crate::support::peers::{self, Peer};

/// The engine's AWS secret: distinctive, so a leak would be found.
const ENGINE_SECRET: &str = "engine-secret-aVeryDistinctive0123456789";

/// Creates `user` with `n` keys; returns (id, secret) of each.
fn user_with_keys(moto: &Peer, user: &str, n: usize) -> Vec<(String, String)> {
    let iam = iam(moto);
    rt().block_on(async {
        iam.create_user().user_name(user).send().await.unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            let k = iam
                .create_access_key()
                .user_name(user)
                .send()
                .await
                .unwrap();
            let k = k.access_key().unwrap();
            out.push((
                k.access_key_id().to_string(),
                k.secret_access_key().to_string(),
            ));
        }
        out
    })
}

fn admin_policy(moto: &Peer, user: &str) {
    let doc =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
    rt().block_on(async {
        iam(moto)
            .put_user_policy()
            .user_name(user)
            .policy_name("everything")
            .policy_document(doc)
            .send()
            .await
            .unwrap();
    });
}

fn aws_env(t: Test, moto: &Peer, iam_url: &str) -> Test {
    t.env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", ENGINE_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ENDPOINT_URL_IAM", iam_url)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn flags_of(json: &Value, id: &str) -> Vec<String> {
    json["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("{id} is listed: {json}"))["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn aws_keys_that_are_old_unused_doubled_or_admin_are_flagged_and_exit_1() {
    let moto = peers::moto();
    let iam_peer = LastUsedIam::start(&moto.url);
    let doubled = user_with_keys(&moto, "ci-bot", 2);
    let idle = user_with_keys(&moto, "idle-bot", 1);
    let busy = user_with_keys(&moto, "busy-bot", 1);
    let admin = user_with_keys(&moto, "admin-bot", 1);
    admin_policy(&moto, "admin-bot");
    let now = Utc::now() + Duration::days(40) + Duration::hours(1);
    iam_peer.used(&busy[0].0, now - Duration::days(1), "s3", "eu-west-1");
    iam_peer.used(&admin[0].0, now - Duration::days(1), "iam", "us-east-1");
    iam_peer.used(&doubled[0].0, now - Duration::days(1), "s3", "us-east-1");
    iam_peer.used(&doubled[1].0, now - Duration::days(1), "s3", "us-east-1");
    let at = rfc3339(now);

    let (out, _d) = aws_env(Test::new(), &moto, &iam_peer.url())
        .args(&["audit", "--format", "json", "--now", &at])
        .run();
    out.code(1);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(flags_of(&json, &busy[0].0), Vec::<String>::new());
    assert_eq!(flags_of(&json, &idle[0].0), ["never used in 40d"]);
    assert_eq!(
        flags_of(&json, &doubled[0].0),
        ["two active keys, no rotation running"]
    );
    let admin_flags = flags_of(&json, &admin[0].0);
    assert!(
        admin_flags
            .iter()
            .any(|f| f.starts_with("admin: `*` on `*`")),
        "{admin_flags:?}"
    );
    let states: Vec<(&str, &str)> = json["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["source"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("aws", "checked"),
            ("github", "not checked"),
            ("vault", "not checked")
        ]
    );
    let busy_row = json["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == busy[0].0.as_str())
        .unwrap();
    assert_eq!(busy_row["last_used_by"], "s3 in eu-west-1");
    assert_eq!(busy_row["age_days"], 40);

    // Past the default 90 days every key is old; the table says so.
    let later = rfc3339(Utc::now() + Duration::days(91) + Duration::hours(1));
    let (table, _d) = aws_env(Test::new(), &moto, &iam_peer.url())
        .args(&["audit", "--now", &later])
        .run();
    table.code(1);
    assert!(
        table.stdout.contains("older than 90d (91d)"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("github: not checked"),
        "{}",
        table.stdout
    );
    let (md, _d) = aws_env(Test::new(), &moto, &iam_peer.url())
        .args(&["audit", "--format", "md", "--now", &later])
        .run();
    md.code(1);
    assert!(md.stdout.contains("| aws | `"), "{}", md.stdout);

    for text in [&out.stdout, &out.stderr, &table.stdout, &md.stdout] {
        assert!(!text.contains(ENGINE_SECRET));
        for (_, secret) in doubled.iter().chain(&idle).chain(&busy).chain(&admin) {
            assert!(!text.contains(secret.as_str()));
        }
    }
}

#[test]
fn a_review_with_nothing_to_flag_exits_0_and_overrides_tighten_the_age() {
    let moto = peers::moto();
    let iam_peer = LastUsedIam::start(&moto.url);
    let key = user_with_keys(&moto, "billing-bot", 1).remove(0);
    let now = Utc::now() + Duration::days(40) + Duration::hours(1);
    iam_peer.used(&key.0, now - Duration::days(2), "sts", "us-east-1");
    let at = rfc3339(now);
    let (out, _d) = aws_env(Test::new(), &moto, &iam_peer.url())
        .args(&["audit", "--now", &at])
        .run();
    out.code(0);
    assert!(
        out.stdout.contains("0 of 1 credentials flagged"),
        "{}",
        out.stdout
    );

    let config = "[audit]\nsources = [\"aws\"]\n[audit.max_age_for]\nbilling-bot = \"30d\"\n";
    let (out, _d) = aws_env(
        Test::new().file("quench.toml", config),
        &moto,
        &iam_peer.url(),
    )
    .args(&["audit", "--now", &at])
    .run();
    out.code(1);
    assert!(
        out.stdout.contains("older than 30d (40d)"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_configured_source_that_cannot_be_read_exits_2_naming_it() {
    let closed = format!("http://127.0.0.1:{}", peers::free_port());
    let (out, _d) = Test::new()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", ENGINE_SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &closed)
        .args(&["audit"])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("failed to read `aws`"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.contains("aws: failed"), "{}", out.stdout);
    assert!(!out.stdout.contains(ENGINE_SECRET) && !out.stderr.contains(ENGINE_SECRET));
}

#[test]
fn bad_audit_settings_are_bad_input() {
    let (out, _d) = Test::new()
        .file("quench.toml", "[audit]\nsources = [\"gcp\"]\n")
        .args(&["audit"])
        .run();
    out.code(2);
    assert!(out.stderr.contains("`gcp`"), "{}", out.stderr);
    let (out, _d) = Test::new()
        .file("quench.toml", "[audit]\nmax_age = \"soon\"\n")
        .args(&["audit", "--now", "yesterday"])
        .run();
    out.code(2);
}

/// A token made by the root token: (id, accessor).
fn vault_token(vault: &Peer, body: Value) -> (String, String) {
    rt().block_on(async {
        let out: Value = reqwest::Client::new()
            .post(format!("{}/v1/auth/token/create", vault.url))
            .header("X-Vault-Token", peers::BAO_ROOT_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            out["auth"]["client_token"].as_str().unwrap().to_string(),
            out["auth"]["accessor"].as_str().unwrap().to_string(),
        )
    })
}

#[test]
fn vault_tokens_without_expiry_or_with_root_are_flagged() {
    let vault = peers::openbao();
    let (short_id, short) = vault_token(
        &vault,
        serde_json::json!({"policies": ["default"], "ttl": "720h", "display_name": "ci"}),
    );
    let at = rfc3339(Utc::now() + Duration::days(1));
    let (out, _d) = Test::new()
        .env("VAULT_ADDR", &vault.url)
        .env("VAULT_TOKEN", peers::BAO_ROOT_TOKEN)
        .args(&["audit", "--format", "json", "--now", &at])
        .run();
    out.code(1);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(flags_of(&json, &short), Vec::<String>::new());
    let root = json["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["scope"] == serde_json::json!(["policy: root"]))
        .unwrap_or_else(|| panic!("the root token is listed: {json}"));
    assert_eq!(
        root["flags"],
        serde_json::json!(["no expiry", "admin: the `root` policy"])
    );
    assert_eq!(json["sources"][2]["state"], "checked");
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(peers::BAO_ROOT_TOKEN) && !text.contains(&short_id));
    }

    // A token that may not list accessors: Vault is configured, not read.
    let (weak, _) = vault_token(&vault, serde_json::json!({"policies": ["default"]}));
    let (out, _d) = Test::new()
        .env("VAULT_ADDR", &vault.url)
        .env("VAULT_TOKEN", &weak)
        .args(&["audit"])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("failed to read `vault`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("auth/token/accessors"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains(&weak) && !out.stderr.contains(&weak));
}

#[test]
fn github_tokens_of_the_organization_are_read_page_by_page_and_flagged() {
    use crate::support::fake_github::{ENGINE_TOKEN, FakeGithub, ORG};
    let gh = FakeGithub::start("ghp_LeakedButNotHere000000000000000000");
    let now = Utc::now();
    let day = |d: i64| rfc3339(now - Duration::days(d));
    let read = serde_json::json!({"repository": {"contents": "read", "metadata": "read"}});
    let tidy = gh.add_pat(
        "alice",
        "deploy",
        &["acme/deploy"],
        read.clone(),
        Some(&rfc3339(now + Duration::days(30))),
        Some(&day(1)),
        &day(10),
    );
    let forever = gh.add_pat(
        "bob",
        "laptop",
        &["acme/deploy", "acme/site"],
        read.clone(),
        None,
        Some(&day(2)),
        &day(20),
    );
    let admin = gh.add_pat(
        "carol",
        "ops",
        &[],
        serde_json::json!({"repository": {"administration": "write"}, "organization": {"members": "read"}}),
        Some(&rfc3339(now + Duration::days(5))),
        Some(&day(45)),
        &day(120),
    );
    // More than a page of the listing's largest size.
    for i in 0..100 {
        gh.add_pat(
            &format!("dev{i}"),
            "ci",
            &["acme/deploy"],
            read.clone(),
            Some(&rfc3339(now + Duration::days(9))),
            Some(&day(1)),
            &day(3),
        );
    }
    let config = format!("[audit]\ngithub_org = \"{ORG}\"\n");
    let run = || {
        Test::new()
            .file("quench.toml", &config)
            .env("GITHUB_API_URL", &gh.url())
            .env("GITHUB_TOKEN", ENGINE_TOKEN)
            .args(&["audit", "--format", "json"])
            .run()
    };
    let (out, _d) = run();
    out.code(1);
    let json: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(json["sources"][1]["credentials"], 103, "{}", out.stdout);
    assert_eq!(
        flags_of(&json, &format!("{tidy} (deploy)")),
        Vec::<String>::new()
    );
    assert_eq!(
        flags_of(&json, &format!("{forever} (laptop)")),
        ["no expiry"]
    );
    assert_eq!(
        flags_of(&json, &format!("{admin} (ops)")),
        [
            "older than 90d (120d)",
            "unused for 45d",
            "wildcard: every repository of the organization",
            "admin: repository/administration: write"
        ]
    );
    let bob = json["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["owner"] == "bob")
        .unwrap();
    assert!(
        bob["scope"]
            .as_array()
            .unwrap()
            .contains(&Value::from("repositories: acme/deploy, acme/site")),
        "{bob}"
    );
    let pages = gh.seen_at("GET", &format!("/orgs/{ORG}/personal-access-tokens"));
    assert_eq!(pages.len(), 2, "the listing is followed by its `Link`");
    assert!(!out.stdout.contains(ENGINE_TOKEN) && !out.stderr.contains(ENGINE_TOKEN));

    // The engine may not list the tokens: GitHub's 403, named, exit 2.
    gh.answer(
        &format!("GET /orgs/{ORG}/personal-access-tokens"),
        403,
        &[],
        r#"{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest/orgs/personal-access-tokens","status":"403"}"#,
    );
    let (out, _d) = run();
    out.code(2);
    assert!(
        out.stderr.contains("failed to read `github`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Resource not accessible by integration"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(ENGINE_TOKEN));
}

/// `--rotate` starts the schedule that rotates an overdue key's user, once
/// approved; with nobody at a terminal and no `--yes`, nothing starts.
#[test]
fn audit_rotate_starts_the_overdue_keys_scheduled_rotation_once_approved() {
    let moto = peers::moto();
    let iam_peer = LastUsedIam::start(&moto.url);
    let (old, secret) = user_with_keys(&moto, "ci-bot", 1).remove(0);
    let now = Utc::now() + Duration::days(100);
    iam_peer.used(&old, now - Duration::days(1), "s3", "eu-west-1");
    let at = rfc3339(now);
    let config = r#"
[[rotations]]
name = "ci-bot"
runbook = "aws-access-key-rotation"
every = "90d"
inputs = { iam_user = "ci-bot", store = "secrets_manager" }
"#;

    let (out, _d) = aws_env(
        Test::new().file("quench.toml", config),
        &moto,
        &iam_peer.url(),
    )
    .args(&["audit", "--rotate", "--now", &at])
    .run();
    out.code(1);
    assert!(
        out.stderr
            .contains("not without a terminal: pass `--yes` to approve"),
        "{}",
        out.stderr
    );
    assert!(!out.dir.join("incidents").exists(), "nothing started");

    let (out, _d) = aws_env(
        Test::new().file("quench.toml", config),
        &moto,
        &iam_peer.url(),
    )
    .args(&["audit", "--rotate", "--yes", "--now", &at])
    .run();
    out.code(1);
    assert!(
        out.stderr
            .contains(&format!("rotation `ci-bot` started for `{old}`")),
        "{}",
        out.stderr
    );
    // The incident, beside the schedule's lock.
    let incident = std::fs::read_dir(out.dir.join("incidents"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("journal.jsonl").is_file())
        .unwrap();
    let journal = std::fs::read_to_string(incident.join("journal.jsonl")).unwrap();
    let started: Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(started["runbook"], "aws-access-key-rotation");
    assert!(
        started["trigger"]
            .as_str()
            .unwrap()
            .starts_with(&format!("quench audit: `{old}` is older than 90d")),
        "{started}"
    );
    // The new key was made and the old one is watched, not yet retired.
    assert!(journal.contains("\"step_watching\""), "{journal}");
    for text in [&out.stdout, &out.stderr, &journal] {
        assert!(!text.contains(&secret) && !text.contains(ENGINE_SECRET));
    }
}
