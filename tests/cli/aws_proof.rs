//! A revocation that is proven, live: the AWS runbook against moto's IAM,
//! a CloudTrail with the attacker's events in two regions, and an STS that
//! refuses a key only once moto holds it inactive.

use std::time::{Duration, Instant};

use aws_sdk_iam::error::ProvideErrorMetadata;
use serde_json::{Value, json};

use crate::attack::{assert_no_piece, run_places};
use crate::aws::{iam, keys, rt};
use crate::support::fake_cloudtrail::{FakeCloudTrail, Trail, record};
use crate::support::peers::{self, BAO_ROOT_TOKEN, Peer};
use crate::support::strict_sts::StrictSts;
use crate::support::{Output, Test};

/// The session token CloudTrail recorded in the answer to the attacker's
/// `AssumeRole`: it must reach no artifact.
const SESSION_TOKEN: &str = "FwoGZXIvYXdzEJr7k2Q9vXh0Lm3pT8sNa4Wc6Yb1Zd";

const ADMIN: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;
const TRUST: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#;

/// A user with a key; (key id, secret).
fn user_with_key(moto: &Peer, user: &str) -> (String, String) {
    let iam = iam(moto);
    rt().block_on(async {
        iam.create_user().user_name(user).send().await.unwrap();
        let out = iam
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .unwrap();
        let key = out.access_key().unwrap();
        (
            key.access_key_id().to_string(),
            key.secret_access_key().to_string(),
        )
    })
}

/// What the attacker made in moto with ci-bot's key, and what ci-bot may
/// do. Returns (backdoor's key id, the admin policy's ARN).
fn attackers_work(moto: &Peer) -> (String, String) {
    let iam = iam(moto);
    let (backdoor_key, _) = user_with_key(moto, "backdoor");
    rt().block_on(async {
        let data = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","secretsmanager:GetSecretValue"],"Resource":"*"}]}"#;
        let put = iam.put_user_policy().user_name("ci-bot").policy_name("ci-data");
        put.policy_document(data).send().await.unwrap();
        iam.create_group().group_name("deployers").send().await.unwrap();
        let iam_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:*","Resource":"*"}]}"#;
        let put = iam.put_group_policy().group_name("deployers").policy_name("iam-admin");
        put.policy_document(iam_all).send().await.unwrap();
        let add = iam.add_user_to_group().group_name("deployers").user_name("ci-bot");
        add.send().await.unwrap();
        let policy = iam.create_policy().policy_name("attacker-admin").policy_document(ADMIN);
        let arn = policy.send().await.unwrap().policy().unwrap().arn().unwrap().to_string();
        let login = iam.create_login_profile().user_name("backdoor").password("Hunter2-quench!");
        login.send().await.unwrap();
        let attach = iam.attach_user_policy().user_name("backdoor").policy_arn(&arn);
        attach.send().await.unwrap();
        for role in ["attacker-role", "ci-role"] {
            let create = iam.create_role().role_name(role).assume_role_policy_document(TRUST);
            create.send().await.unwrap();
        }
        (backdoor_key, arn)
    })
}

/// The leaked key's calls: (name, seconds ago, region, read-only, the
/// record's own fields).
fn calls(backdoor_key: &str, arn: &str) -> Vec<(&'static str, i64, &'static str, bool, Value)> {
    vec![
        (
            "ListBuckets",
            3600,
            "us-east-1",
            true,
            json!({"eventSource": "s3.amazonaws.com"}),
        ),
        (
            "CreateUser",
            3000,
            "us-east-1",
            false,
            json!({"requestParameters": {"userName": "backdoor"}}),
        ),
        (
            "CreateAccessKey",
            2990,
            "us-east-1",
            false,
            json!({
                "requestParameters": {"userName": "backdoor"},
                "responseElements": {"accessKey": {"userName": "backdoor", "accessKeyId": backdoor_key, "status": "Active"}},
            }),
        ),
        (
            "CreateLoginProfile",
            2980,
            "us-east-1",
            false,
            json!({"requestParameters": {"userName": "backdoor"}}),
        ),
        (
            "AttachUserPolicy",
            2970,
            "us-east-1",
            false,
            json!({"requestParameters": {"userName": "backdoor", "policyArn": arn}}),
        ),
        (
            "CreateRole",
            2960,
            "us-east-1",
            false,
            json!({"requestParameters": {"roleName": "attacker-role"}}),
        ),
        (
            "CreateUser",
            2500,
            "us-east-1",
            false,
            json!({"requestParameters": {"userName": "second-backdoor"}, "errorCode": "AccessDenied"}),
        ),
        (
            "PutObject",
            2000,
            "us-east-1",
            false,
            json!({"eventSource": "s3.amazonaws.com", "requestParameters": {"bucketName": "payroll", "key": "x.csv"}}),
        ),
        (
            "AssumeRole",
            1000,
            "eu-west-1",
            false,
            json!({
                "eventSource": "sts.amazonaws.com",
                "requestParameters": {"roleArn": "arn:aws:iam::123456789012:role/ci-role", "roleSessionName": "x"},
                "responseElements": {"credentials": {"accessKeyId": "ASIAATTACKERSESSION1", "sessionToken": SESSION_TOKEN, "expiration": "soon"}},
            }),
        ),
        (
            "RunInstances",
            900,
            "eu-west-1",
            false,
            json!({
                "eventSource": "ec2.amazonaws.com",
                "responseElements": {"instancesSet": {"items": [{"instanceId": "i-0abc123"}]}},
            }),
        ),
    ]
}

/// The leaked key's history, as CloudTrail recorded it.
fn history(key: &str, backdoor_key: &str, arn: &str) -> Vec<Value> {
    let now = chrono::Utc::now().timestamp();
    calls(backdoor_key, arn)
        .into_iter()
        .map(|(name, ago, region, read_only, fields)| {
            let ip = if region == "us-east-1" {
                "203.0.113.7"
            } else {
                "198.51.100.23"
            };
            let mut detail = json!({
                "userIdentity": {"type": "IAMUser", "userName": "ci-bot", "accessKeyId": key},
                "sourceIPAddress": ip,
                "userAgent": "aws-cli/2.15",
                "awsRegion": region,
            });
            let own = detail.as_object_mut().unwrap();
            own.extend(fields.as_object().unwrap().clone());
            record(name, now - ago, key, read_only, detail)
        })
        .collect()
}

/// quench with AWS at moto, CloudTrail at the fake trail (two regions),
/// STS at the strict peer, Vault at OpenBao.
fn proof_test(moto: &Peer, vault: &Peer, trail: &FakeCloudTrail, sts: &StrictSts) -> Test {
    Test::new()
        .file(
            "quench.toml",
            "[providers.aws]\nregions = [\"us-east-1\", \"eu-west-1\"]\n",
        )
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ENDPOINT_URL_CLOUDTRAIL", &trail.url())
        .env("AWS_ENDPOINT_URL_STS", &sts.url())
        .env("VAULT_ADDR", &vault.url)
        .env("VAULT_TOKEN", BAO_ROOT_TOKEN)
}

/// The cut-off of `quench-revoke-older-sessions` on a user or a role, after
/// checking that it denies everything to older sessions.
fn cut_off(doc: &str) -> chrono::DateTime<chrono::Utc> {
    let decoded = percent_encoding::percent_decode_str(doc).decode_utf8_lossy();
    let doc: Value = serde_json::from_str(&decoded).unwrap();
    let s = &doc["Statement"][0];
    assert_eq!(
        (&s["Effect"], &s["Action"], &s["Resource"]),
        (&json!("Deny"), &json!(["*"]), &json!(["*"])),
        "{doc}"
    );
    let at = s["Condition"]["DateLessThan"]["aws:TokenIssueTime"]
        .as_str()
        .unwrap();
    chrono::DateTime::parse_from_rfc3339(at).unwrap().into()
}

fn role_cut_off(moto: &Peer, role: &str) -> chrono::DateTime<chrono::Utc> {
    let iam = iam(moto);
    rt().block_on(async {
        let got = iam
            .get_role_policy()
            .role_name(role)
            .policy_name("quench-revoke-older-sessions");
        cut_off(got.send().await.unwrap().policy_document())
    })
}

fn step_records(out: &Output, step: &str) -> Vec<Value> {
    std::fs::read_to_string(out.incident().join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["step"] == step)
        .collect()
}

#[test]
fn the_aws_runbook_proves_the_key_dead_and_contains_what_it_left() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let (key, secret) = user_with_key(&moto, "ci-bot");
    let (backdoor_key, arn) = attackers_work(&moto);
    let trail = FakeCloudTrail::start(Trail::Events(history(&key, &backdoor_key, &arn)));
    let sts = StrictSts::start(&moto.url, Duration::from_secs(2));
    let before = chrono::Utc::now();
    let (out, _d) = proof_test(&moto, &vault, &trail, &sts)
        .env("LEAKED_SECRET", &secret)
        .args(&[
            "run",
            "aws-access-key-compromise",
            "--var",
            &format!("access_key_id={key}"),
            "--var",
            "iam_user=ci-bot",
            "--secret",
            "leaked_secret_access_key=env:LEAKED_SECRET",
            "--yes",
        ])
        .run();
    out.code(0);
    let run =
        before - chrono::Duration::seconds(1)..=chrono::Utc::now() + chrono::Duration::seconds(2);

    // Sessions of ci-bot and of the role its key took end at the cut-off.
    let user_cut = rt().block_on(async {
        let got = iam(&moto).get_user_policy().user_name("ci-bot");
        let got = got.policy_name("quench-revoke-older-sessions").send().await;
        cut_off(got.unwrap().policy_document())
    });
    assert!(run.contains(&user_cut), "{user_cut} outside the run");
    assert!(run.contains(&role_cut_off(&moto, "ci-role")));

    proven_dead_after_the_lag(&out, &sts, &moto, &key);
    contained(&moto, &backdoor_key);
    let regions: std::collections::BTreeSet<String> = trail
        .requests()
        .iter()
        .map(|r| r["_region"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        regions,
        ["eu-west-1".to_string(), "us-east-1".to_string()].into()
    );
    the_document_tells_it(&out, &backdoor_key, &arn);

    // The leaked secret, the session token CloudTrail recorded and the new
    // key's secret are in nothing quench wrote or printed.
    let (_, stored) = vault_secret(&vault);
    for secret in [secret.as_str(), SESSION_TOKEN, stored.as_str()] {
        assert_no_piece(secret, &run_places(&out));
    }
}

/// Refused only once moto held the key inactive and the lag was over;
/// accepted before, and each of those attempts journaled.
fn proven_dead_after_the_lag(out: &Output, sts: &StrictSts, moto: &Peer, key: &str) {
    let answers: Vec<_> = sts
        .answered()
        .into_iter()
        .filter(|a| a.key == key)
        .collect();
    assert_eq!(
        answers.last().unwrap().answer,
        "InvalidClientTokenId",
        "{answers:?}"
    );
    let accepted = answers.iter().filter(|a| a.answer == "accepted").count();
    assert!(accepted > 0, "{answers:?}");
    assert!(keys(moto, "ci-bot").contains(&(key.to_string(), "Inactive".into())));
    let verify = step_records(out, "verify_dead");
    let still = verify
        .iter()
        .filter(|r| r["event"] == "attempt_failed")
        .count();
    assert_eq!(still, accepted);
    assert!(
        verify.iter().any(|r| r["event"] == "step_succeeded"
            && r["outputs"]["refused_with"] == "InvalidClientTokenId"),
        "{verify:?}"
    );
}

/// What the key left is undone.
fn contained(moto: &Peer, backdoor_key: &str) {
    assert!(keys(moto, "backdoor").contains(&(backdoor_key.to_string(), "Inactive".into())));
    rt().block_on(async {
        let iam = iam(moto);
        let login = iam.get_login_profile().user_name("backdoor").send().await;
        assert_eq!(login.unwrap_err().code(), Some("NoSuchEntity"));
        let attached = iam.list_attached_user_policies().user_name("backdoor");
        assert!(
            attached
                .send()
                .await
                .unwrap()
                .attached_policies()
                .is_empty()
        );
        let got = iam.get_user_policy().user_name("backdoor");
        got.policy_name("quench-revoke-older-sessions")
            .send()
            .await
            .unwrap();
    });
    role_cut_off(moto, "attacker-role");
}

fn the_document_tells_it(out: &Output, backdoor_key: &str, arn: &str) {
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    for line in [
        "## What the attacker may have left",
        "10 calls from 2 source IPs (198.51.100.23, 203.0.113.7); first used ",
        "Regions searched: eu-west-1, us-east-1. Calls: 1 recon, 1 write, 8 persistence.",
        &format!(
            "us-east-1 `CreateAccessKey` from 203.0.113.7 (aws-cli/2.15): access key `{backdoor_key}` of user `backdoor`"
        ),
        "us-east-1 `CreateUser` from 203.0.113.7 (aws-cli/2.15): user `second-backdoor` (refused: AccessDenied; it changed nothing)",
        "eu-west-1 `AssumeRole` from 198.51.100.23 (aws-cli/2.15): sessions of role `ci-role` (session key `ASIAATTACKERSESSION1`)",
        "us-east-1 `PutObject` from 203.0.113.7 (aws-cli/2.15): bucketName `payroll`, key `x.csv`",
        "## Containment",
        "- `revoke_sessions`: sessions issued before ",
        "are refused for user `ci-bot`",
        "are refused for role `ci-role`",
        &format!("  - access key `{backdoor_key}` of user `backdoor`: deactivated it"),
        "  - console password of user `backdoor`: deleted it",
        &format!("  - policy `{arn}` attached to user `backdoor`: detached it"),
        "  - role `attacker-role`: ended its sessions",
        "  - left for a human: RunInstances in eu-west-1 at ",
        ": instance `i-0abc123`",
        "## Exposure",
        "- IAM writes: `iam:*` on `*` (inline policy `iam-admin` of group `deployers` (user `ci-bot` is in it))",
        "- data reads (s3:GetObject, secretsmanager:GetSecretValue): `s3:GetObject`, `secretsmanager:GetSecretValue` on `*` (inline policy `ci-data` of user `ci-bot`)",
    ] {
        assert!(md.contains(line), "`{line}` is not in:\n{md}");
    }
    assert!(
        !md.contains("- findings:"),
        "findings are shown apart:\n{md}"
    );
}

/// The new key's secret, as consumers read it from Vault: (key id, secret).
pub(crate) fn vault_secret(vault: &Peer) -> (String, String) {
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
        let field = |k: &str| body["data"]["data"][k].as_str().unwrap().to_string();
        (field("access_key_id"), field("secret_access_key"))
    })
}

/// Only the verify step, retried quickly.
const VERIFY: &str = r#"
name: prove
inputs: { key: {} }
secrets: { leaked: {} }
steps:
  - id: verify_dead
    phase: update
    action: aws.verify_revoked
    with: { access_key_id: "{{inputs.key}}", secret_access_key: "{{secrets.leaked}}" }
    retry: { attempts: 3, initial: 100ms, max: 200ms }
"#;

fn verify(moto: &Peer, sts: &StrictSts, key: &str, secret: &str) -> (Output, tempfile::TempDir) {
    Test::new()
        .file("rb.yaml", VERIFY)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ENDPOINT_URL_STS", &sts.url())
        .env("LEAKED", secret)
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("key={key}"),
            "--secret",
            "leaked=env:LEAKED",
        ])
        .run()
}

/// A key AWS still accepts is not dead: every attempt fails, and so does
/// the step, saying so. Once deactivated, the same step proves it.
#[test]
fn a_key_still_accepted_fails_verification_loudly() {
    let moto = peers::moto();
    let (key, secret) = user_with_key(&moto, "ci-bot");
    let sts = StrictSts::start(&moto.url, Duration::ZERO);
    let (out, _d) = verify(&moto, &sts, &key, &secret);
    out.code(1);
    let failed = step_records(&out, "verify_dead");
    let failed = failed.iter().find(|r| r["event"] == "step_failed").unwrap();
    assert_eq!(
        failed["error"],
        format!(
            "AWS still accepts the leaked key `{key}` (GetCallerIdentity answered as `arn:aws:iam::123456789012:user/ci-bot`): it is not proven dead"
        )
    );
    assert_eq!(failed["attempt"], 3);
    assert_eq!(
        sts.answered()
            .iter()
            .filter(|a| a.answer == "accepted")
            .count(),
        3
    );
    assert_no_piece(&secret, &run_places(&out));

    rt().block_on(async {
        let off = iam(&moto)
            .update_access_key()
            .user_name("ci-bot")
            .access_key_id(&key);
        off.status(aws_sdk_iam::types::StatusType::Inactive)
            .send()
            .await
            .unwrap();
    });
    let started = Instant::now();
    let (out, _d) = verify(&moto, &sts, &key, &secret);
    out.code(0);
    assert!(started.elapsed() < Duration::from_secs(10));
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.incident().join("incident.json")).unwrap(),
    )
    .unwrap();
    let step = json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "verify_dead")
        .unwrap();
    assert_eq!(step["outputs"]["refused_with"], "InvalidClientTokenId");
}

/// A secret that is not the key's proves nothing: AWS says the signature
/// does not match, and the step fails at once with that reason.
#[test]
fn a_wrong_secret_leaves_the_key_unproven() {
    let moto = peers::moto();
    let (key, _) = user_with_key(&moto, "ci-bot");
    let sts = StrictSts::start(&moto.url, Duration::ZERO);
    let wrong = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWRONGSECRET";
    let (out, _d) = verify(&moto, &sts, &key, wrong);
    out.code(1);
    let records = step_records(&out, "verify_dead");
    let failed = records
        .iter()
        .find(|r| r["event"] == "step_failed")
        .unwrap();
    assert_eq!(failed["class"], "permanent");
    assert_eq!(
        failed["error"],
        format!(
            "the secret access key given is not the one of `{key}` (AWS answered SignatureDoesNotMatch), so the key's death is unproven"
        )
    );
    assert_eq!(
        sts.answered().len(),
        1,
        "a permanent refusal is not retried"
    );
    assert_no_piece(wrong, &run_places(&out));
}

/// A temporary key cannot be deactivated: the runbook skips that, and ends
/// the sessions of the role the key's own events show it belongs to.
#[test]
fn a_temporary_key_ends_its_roles_sessions() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    user_with_key(&moto, "ci-bot");
    rt().block_on(async {
        let create = iam(&moto)
            .create_role()
            .role_name("deploy")
            .assume_role_policy_document(TRUST);
        create.send().await.unwrap();
    });
    let key = "ASIAQUENCHTEST000001";
    let now = chrono::Utc::now().timestamp();
    let detail = json!({
        "userIdentity": {"type": "AssumedRole", "accessKeyId": key,
            "sessionContext": {"sessionIssuer": {"type": "Role", "userName": "deploy", "arn": "arn:aws:iam::123456789012:role/deploy"}}},
        "sourceIPAddress": "203.0.113.7", "userAgent": "aws-cli/2.15", "eventSource": "s3.amazonaws.com",
    });
    let trail = FakeCloudTrail::start(Trail::Events(vec![record(
        "ListBuckets",
        now - 60,
        key,
        true,
        detail,
    )]));
    let sts = StrictSts::start(&moto.url, Duration::ZERO);
    let (out, _d) = proof_test(&moto, &vault, &trail, &sts)
        .args(&[
            "run",
            "aws-access-key-compromise",
            "--var",
            &format!("access_key_id={key}"),
            "--var",
            "iam_user=ci-bot",
            "--yes",
        ])
        .run();
    out.code(0);
    role_cut_off(&moto, "deploy");
    let deactivate = step_records(&out, "deactivate");
    assert!(
        deactivate
            .iter()
            .any(|r| r["event"] == "step_skipped" && r["reason"] == "`when` rendered `false`"),
        "{deactivate:?}"
    );
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.incident().join("incident.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        json["slo_met"], true,
        "revoked when the role's sessions ended"
    );
}
