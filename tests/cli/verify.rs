//! Proof that a leaked credential is dead: each verify step asks the
//! provider with the leaked credential itself, succeeds only once the
//! provider refuses it, and polls while it is still accepted. Against the
//! local GitHub and Slack peers, a dev OpenBao with a real token, and the
//! internal-API peer.

use serde_json::{Value, json};

use crate::support::fake_api::{FakeApi, LEAKED_KEY};
use crate::support::fake_github::{ENGINE_TOKEN, FakeGithub, INSTALLATION_TOKEN, ORG, REPO};
use crate::support::fake_slack::{BOT_TOKEN, FakeSlack};
use crate::support::peers::{self, BAO_ROOT_TOKEN, Peer};
use crate::support::{Output, Test};

const GH_LEAKED: &str = "ghp_LeakedToken0123456789abcdefghijklmnop";
const SLACK_LEAKED: &str = "xoxp-9999999999-8888888888-LeakedUserToken00000";

/// A runbook of one verify step with `with`, polling three times, quickly.
fn verify_only(action: &str, with: &str) -> String {
    format!(
        "name: t\nsecrets:\n  leaked: {{}}\nsteps:\n  - id: verify_dead\n    phase: update\n    action: {action}\n    with: {with}\n    retry: {{ attempts: 3, initial: 10ms, max: 20ms }}\n"
    )
}

fn journal(out: &Output) -> Vec<Value> {
    std::fs::read_to_string(out.incident().join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The journal's events of `kind` for `step`.
pub(crate) fn events<'a>(journal: &'a [Value], kind: &str, step: &str) -> Vec<&'a Value> {
    journal
        .iter()
        .filter(|e| e["event"] == kind && e["step"] == step)
        .collect()
}

fn step(out: &Output, id: &str) -> Value {
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(out.incident().join("incident.json")).unwrap(),
    )
    .unwrap();
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no step `{id}` in {json}"))
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

// ---------------------------------------------------------------- GitHub

#[test]
fn github_proves_the_revoked_token_dead_once_get_user_answers_401() {
    let api = FakeGithub::start(GH_LEAKED);
    // The first answer after revocation still accepts the token.
    api.revocation_lag(1);
    let (out, _d) = Test::new()
        .env("GITHUB_API_URL", &api.url())
        .env("GITHUB_TOKEN", ENGINE_TOKEN)
        .env("LEAKED", GH_LEAKED)
        .args(&[
            "run",
            "github-token-compromise",
            "--var",
            &format!("org={ORG}"),
            "--var",
            &format!("repo={REPO}"),
            "--secret",
            "leaked_token=env:LEAKED",
        ])
        .run();
    out.code(0);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["status"], "succeeded", "{verify}");
    assert_eq!(verify["attempts"], 2, "{verify}");
    assert_eq!(verify["outputs"]["checked"], 1);

    // Asked as the leaked token itself, never as the engine, and only
    // after GitHub took the revocation.
    let seen = api.seen();
    let revoked_at = seen
        .iter()
        .position(|s| s.path == "/credentials/revoke")
        .unwrap();
    let asks: Vec<_> = seen
        .iter()
        .enumerate()
        .filter(|(_, s)| s.method == "GET" && s.path == "/user")
        .collect();
    assert_eq!(asks.len(), 2, "{asks:?}");
    for (i, ask) in asks {
        assert!(i > revoked_at);
        assert_eq!(ask.headers["authorization"], format!("Bearer {GH_LEAKED}"));
    }
    let journal = journal(&out);
    let failed = events(&journal, "attempt_failed", "verify_dead");
    assert_eq!(failed[0]["class"], "transient");
    assert_eq!(
        failed[0]["error"],
        "GitHub still accepts the leaked token (as `ci-bot`): `GET /user` answered 200; its revocation has not taken effect yet"
    );
    assert_nowhere(&out, &[GH_LEAKED, ENGINE_TOKEN]);
}

#[test]
fn github_fails_loudly_while_the_token_still_works() {
    let api = FakeGithub::start(GH_LEAKED);
    // Rate limited first: it waits as long as GitHub says, then asks again.
    api.answer(
        "GET /user",
        403,
        &[("retry-after", "1"), ("x-ratelimit-remaining", "0")],
        r#"{"message":"API rate limit exceeded for 127.0.0.1."}"#,
    );
    let (out, _d) = Test::new()
        .env("GITHUB_API_URL", &api.url())
        .env("LEAKED", GH_LEAKED)
        .file(
            "rb.yaml",
            &verify_only("github.verify_revoked", "{ token: \"{{secrets.leaked}}\" }"),
        )
        .args(&["run", "rb.yaml", "--secret", "leaked=env:LEAKED"])
        .run();
    out.code(1);
    let verify = step(&out, "verify_dead");
    assert_eq!(
        (verify["status"].as_str(), verify["attempts"].as_u64()),
        (Some("failed"), Some(3)),
        "{verify}"
    );
    assert!(
        verify["error"]
            .as_str()
            .unwrap()
            .starts_with("GitHub still accepts the leaked token (as `ci-bot`)"),
        "{verify}"
    );
    let journal = journal(&out);
    let classes: Vec<&Value> = events(&journal, "attempt_failed", "verify_dead")
        .iter()
        .map(|e| &e["class"])
        .collect();
    assert_eq!(classes, [&json!("rate_limited"), &json!("transient")]);
    assert_eq!(api.seen_at("GET", "/user").len(), 3);
    assert_nowhere(&out, &[GH_LEAKED]);
}

/// An installation token is authenticated, then forbidden `/user` (403): alive
/// until it revokes itself, then refused (401).
#[test]
fn github_takes_a_403_for_a_live_installation_token_and_a_401_as_proof() {
    let api = FakeGithub::start(GH_LEAKED);
    let verify = verify_only("github.verify_revoked", "{ token: \"{{secrets.leaked}}\" }");
    let run = |runbook: &str| {
        Test::new()
            .env("GITHUB_API_URL", &api.url())
            .env("LEAKED", INSTALLATION_TOKEN)
            .file("rb.yaml", runbook)
            .args(&["run", "rb.yaml", "--secret", "leaked=env:LEAKED"])
            .run()
    };
    let (out, _d) = run(&verify);
    out.code(1);
    assert!(
        step(&out, "verify_dead")["error"]
            .as_str()
            .unwrap()
            .starts_with("GitHub still accepts the leaked token: `GET /user` answered 403"),
        "{}",
        step(&out, "verify_dead")
    );
    let revoke_first = format!(
        "{}  - id: revoke\n    phase: revoke\n    action: github.revoke_installation_token\n    with: {{ token: \"{{{{secrets.leaked}}}}\" }}\n",
        verify.replace(
            "    phase: update\n",
            "    phase: update\n    needs: [revoke]\n"
        )
    );
    let (out, _d) = run(&revoke_first);
    out.code(0);
    assert_eq!(step(&out, "verify_dead")["status"], "succeeded");
    assert_nowhere(&out, &[INSTALLATION_TOKEN]);
}

/// Of a leaked `.env`, only GitHub tokens are asked about, the first 25, each
/// as itself; one proven dead is not asked about again when the step retries.
#[test]
fn github_checks_the_first_25_tokens_of_a_leaked_env_file_once_each() {
    let api = FakeGithub::start(GH_LEAKED);
    api.revocation_lag(1);
    let mut tokens: Vec<String> = (0..29).map(|i| format!("ghp_bulk{i:032}")).collect();
    tokens.insert(1, GH_LEAKED.to_string());
    let mut env = String::from("DATABASE_URL=postgres://app:hunter2-db-pass@db/app\n");
    for t in &tokens {
        env.push_str(&format!("export TOKEN=\"{t}\"\n"));
    }
    let runbook = format!(
        "{}  - id: revoke\n    phase: revoke\n    action: github.revoke_credentials\n    with: {{ credentials: [\"{{{{secrets.leaked}}}}\"] }}\n",
        verify_only("github.verify_revoked", "{ token: \"{{secrets.leaked}}\" }").replace(
            "    phase: update\n",
            "    phase: update\n    needs: [revoke]\n"
        )
    );
    let (out, _d) = Test::new()
        .env("GITHUB_API_URL", &api.url())
        .file("leaked.env", &env)
        .file("rb.yaml", &runbook)
        .args(&["run", "rb.yaml", "--secret", "leaked=file:leaked.env"])
        .run();
    out.code(0);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["attempts"], 2, "{verify}");
    assert_eq!(verify["outputs"]["checked"], 25, "{verify}");
    assert_eq!(verify["outputs"]["unchecked"], 5, "{verify}");
    let asked: Vec<String> = api
        .seen_at("GET", "/user")
        .iter()
        .map(|s| {
            s.headers["authorization"]
                .trim_start_matches("Bearer ")
                .to_string()
        })
        .collect();
    // The first attempt stops at the token still accepted; the second
    // starts from it.
    let mut expected = vec![tokens[0].clone(), GH_LEAKED.to_string()];
    expected.extend(tokens[1..25].iter().cloned());
    assert_eq!(asked, expected);
    assert!(
        api.seen()
            .iter()
            .all(|s| !s.headers.values().any(|v| v.contains("hunter2"))),
        "a value that is not a GitHub token never leaves quench"
    );
}

// ---------------------------------------------------------------- Slack

#[test]
fn slack_proves_the_revoked_token_dead_once_auth_test_refuses_it() {
    let api = FakeSlack::start(&[SLACK_LEAKED]);
    api.revocation_lag(1);
    let (out, _d) = Test::new()
        .env("SLACK_API_URL", &api.api_url())
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("LEAKED", SLACK_LEAKED)
        .args(&[
            "run",
            "slack-token-compromise",
            "--secret",
            "leaked_token=env:LEAKED",
        ])
        .run();
    out.code(0);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["status"], "succeeded", "{verify}");
    assert_eq!(verify["attempts"], 2, "{verify}");
    assert_eq!(verify["outputs"]["refused_with"], "token_revoked");
    let tests = api.calls_to("auth.test");
    assert_eq!(tests.len(), 2);
    for t in &tests {
        assert_eq!(
            t.token.as_deref(),
            Some(SLACK_LEAKED),
            "as the leaked token"
        );
    }
    let journal = journal(&out);
    assert_eq!(
        events(&journal, "attempt_failed", "verify_dead")[0]["error"],
        "Slack still accepts the leaked token (as user `U0CIBOT001` of team `T0ACME0001`): `auth.test` answered `ok: true`; its revocation has not taken effect yet"
    );
    assert_nowhere(&out, &[SLACK_LEAKED, BOT_TOKEN]);
}

#[test]
fn slack_fails_loudly_while_the_token_still_works_and_takes_a_deactivated_user_as_dead() {
    let api = FakeSlack::start(&[SLACK_LEAKED]);
    api.answer(
        "auth.test",
        429,
        &[("retry-after", "1")],
        r#"{"ok":false,"error":"ratelimited"}"#,
    );
    let runbook = verify_only("slack.verify_revoked", "{ token: \"{{secrets.leaked}}\" }");
    // No bot token: the proof needs none.
    let (out, _d) = Test::new()
        .env("SLACK_API_URL", &api.api_url())
        .env("LEAKED", SLACK_LEAKED)
        .file("rb.yaml", &runbook)
        .args(&["run", "rb.yaml", "--secret", "leaked=env:LEAKED"])
        .run();
    out.code(1);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["attempts"], 3, "{verify}");
    assert!(
        verify["error"]
            .as_str()
            .unwrap()
            .starts_with("Slack still accepts the leaked token"),
        "{verify}"
    );
    let journal = journal(&out);
    let failed = events(&journal, "attempt_failed", "verify_dead");
    assert_eq!(failed[0]["class"], "rate_limited");
    assert!(failed[0]["retry_in_ms"].as_u64().unwrap() >= 1000);
    assert_eq!(api.calls_to("auth.test").len(), 3);
    assert_nowhere(&out, &[SLACK_LEAKED]);

    // A token whose user was deactivated is dead too.
    api.answer(
        "auth.test",
        200,
        &[],
        r#"{"ok":false,"error":"account_inactive"}"#,
    );
    let (out, _d) = Test::new()
        .env("SLACK_API_URL", &api.api_url())
        .env("LEAKED", SLACK_LEAKED)
        .file("rb.yaml", &runbook)
        .args(&["run", "rb.yaml", "--secret", "leaked=env:LEAKED"])
        .run();
    out.code(0);
    assert_eq!(
        step(&out, "verify_dead")["outputs"]["refused_with"],
        "account_inactive"
    );
}

// ---------------------------------------------------------------- OpenBao

fn bao(bao: &Peer, method: &str, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rb = reqwest::Client::new()
            .request(method.parse().unwrap(), format!("{}/v1/{path}", bao.url))
            .header("X-Vault-Token", token);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let resp = rb.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    })
}

/// A real token of the dev OpenBao: (token, accessor).
fn bao_token(vault: &Peer) -> (String, String) {
    bao_token_with(vault, json!({"policies": ["default"], "ttl": "1h"}))
}

fn bao_token_with(vault: &Peer, body: Value) -> (String, String) {
    let (status, created) = bao(
        vault,
        "POST",
        "auth/token/create",
        BAO_ROOT_TOKEN,
        Some(body),
    );
    assert_eq!(status, 200, "{created}");
    let auth = &created["auth"];
    (
        auth["client_token"].as_str().unwrap().into(),
        auth["accessor"].as_str().unwrap().into(),
    )
}

fn vault_test(vault: &Peer, leaked: &str) -> Test {
    Test::new()
        .env("BAO_ADDR", &vault.url)
        .env("BAO_TOKEN", BAO_ROOT_TOKEN)
        .env("LEAKED", leaked)
}

/// Runs a runbook of one `vault.verify_revoked` step against `leaked`.
fn verify_vault_token(vault: &Peer, leaked: &str) -> (Output, tempfile::TempDir) {
    vault_test(vault, leaked)
        .file(
            "rb.yaml",
            &verify_only("vault.verify_revoked", "{ token: \"{{secrets.leaked}}\" }"),
        )
        .args(&["run", "rb.yaml", "--secret", "leaked=env:LEAKED"])
        .run()
}

#[test]
fn vault_proves_a_real_revoked_token_dead_and_skips_the_proof_without_it() {
    let vault = peers::openbao();
    let (token, accessor) = bao_token(&vault);
    let (out, _d) = vault_test(&vault, &token)
        .args(&[
            "run",
            "vault-token-compromise",
            "--var",
            &format!("accessor={accessor}"),
            "--secret",
            "leaked_token=env:LEAKED",
        ])
        .run();
    out.code(0);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["status"], "succeeded", "{verify}");
    assert_eq!(
        bao(&vault, "GET", "auth/token/lookup-self", &token, None).0,
        403
    );
    assert_nowhere(&out, &[&token, BAO_ROOT_TOKEN]);

    // Without the token, revocation by accessor goes on; the proof is
    // skipped, saying how to give it.
    let (_, accessor) = bao_token(&vault);
    let (out, _d) = vault_test(&vault, "unused")
        .args(&[
            "run",
            "vault-token-compromise",
            "--var",
            &format!("accessor={accessor}"),
        ])
        .run();
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["status"], "skipped", "{verify}");
    assert!(
        verify["reason"]
            .as_str()
            .unwrap()
            .contains("the optional secret `leaked_token` was not given"),
        "{verify}"
    );
    assert_eq!(step(&out, "revoke")["status"], "succeeded");
}

#[test]
fn vault_fails_loudly_while_the_token_still_works() {
    let vault = peers::openbao();
    let (token, _) = bao_token(&vault);
    let (out, _d) = verify_vault_token(&vault, &token);
    out.code(1);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["attempts"], 3, "{verify}");
    assert_eq!(
        verify["error"],
        "Vault still accepts the leaked token: `GET /v1/auth/token/lookup-self` answered 200 OK; its revocation has not taken effect yet"
    );
    assert_eq!(
        bao(&vault, "GET", "auth/token/lookup-self", &token, None).0,
        200,
        "looking itself up did not harm it"
    );
    assert_nowhere(&out, &[&token, BAO_ROOT_TOKEN]);

    // A live token its policy forbids to look itself up is answered 403 too,
    // in other words: that proves nothing, and is not retried.
    let (token, _) = bao_token_with(
        &vault,
        json!({"policies": ["nothing"], "no_default_policy": true}),
    );
    let (out, _d) = verify_vault_token(&vault, &token);
    out.code(1);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["attempts"], 1, "{verify}");
    assert!(
        verify["error"]
            .as_str()
            .unwrap()
            .ends_with("it may still work, so it is not proven dead"),
        "{verify}"
    );
}

// ---------------------------------------------------------------- http.request

#[test]
fn an_internal_api_key_is_proven_dead_by_until_status() {
    let api = FakeApi::start();
    let (out, _d) = Test::new()
        .env("LEAKED", LEAKED_KEY)
        .args(&[
            "run",
            "api-key-compromise",
            "--var",
            &format!("api={}", api.url()),
            "--var",
            "key_id=key-0001",
            "--secret",
            "leaked_key=env:LEAKED",
        ])
        .run();
    out.code(0);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["status"], "succeeded", "{verify}");
    assert_eq!(verify["outputs"]["status"], 401);
    let seen = api.seen();
    let revoked_at = seen
        .iter()
        .position(|s| s.path == "/keys/key-0001/revoke")
        .unwrap();
    let asked_at = seen
        .iter()
        .position(|s| s.headers.get("authorization") == Some(&format!("Bearer {LEAKED_KEY}")))
        .unwrap();
    assert!(asked_at > revoked_at, "asked after revocation");
    assert_nowhere(&out, &[LEAKED_KEY]);
}

#[test]
fn until_status_polls_and_fails_loudly_while_the_key_still_works() {
    let api = FakeApi::start();
    // The API says it revoked the key, but the key goes on working.
    api.answer("/keys/key-0001/revoke", 200, &[], "{}");
    let runbook = r#"
name: t
inputs: { api: {} }
secrets: { leaked: {} }
steps:
  - id: revoke
    phase: revoke
    action: http.request
    with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke" }
  - id: verify_dead
    phase: update
    needs: [revoke]
    action: http.request
    with:
      url: "{{inputs.api}}/whoami"
      headers: { Authorization: "Bearer {{secrets.leaked}}" }
      until_status: [401, 403]
    retry: { attempts: 3, initial: 10ms, max: 20ms }
"#;
    let (out, _d) = Test::new()
        .env("LEAKED", LEAKED_KEY)
        .file("rb.yaml", runbook)
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("api={}", api.url()),
            "--secret",
            "leaked=env:LEAKED",
        ])
        .run();
    out.code(1);
    let verify = step(&out, "verify_dead");
    assert_eq!(verify["attempts"], 3, "{verify}");
    assert_eq!(
        verify["error"],
        format!(
            "GET {}/whoami answered 200 OK, not yet 401 or 403",
            api.url()
        )
    );
    assert_eq!(api.seen().iter().filter(|s| s.path == "/whoami").count(), 3);
    assert_nowhere(&out, &[LEAKED_KEY]);
}

#[test]
fn until_status_replaces_expect_status_and_names_a_status() {
    let step = "name: t\nsteps:\n  - id: v\n    phase: update\n    action: http.request\n    with: { url: \"http://127.0.0.1:1/whoami\", expect_status: [200], until_status: [401] }\n";
    let (out, _d) = Test::new()
        .file("rb.yaml", step)
        .args(&["validate", "rb.yaml"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("`http.request` takes `expect_status` or `until_status`, not both")
            && out.stderr.contains("--> rb.yaml:6:83"),
        "{}",
        out.stderr
    );
    let (out, _d) = Test::new()
        .file(
            "rb.yaml",
            &step.replace(
                "expect_status: [200], until_status: [401]",
                "until_status: []",
            ),
        )
        .args(&["validate", "rb.yaml"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("`until_status` names no status to wait for"),
        "{}",
        out.stderr
    );
}
