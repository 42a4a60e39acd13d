//! The GitHub provider live, against a local server that follows GitHub's
//! REST API description (tests/support/fake_github.rs).

use serde_json::Value;

use crate::support::fake_github::{
    ENGINE_TOKEN, FakeGithub, INSTALLATION_TOKEN, LEAKED_EVENTS, ORG, REPO, hashed,
};
use crate::support::{Output, Test};

const LEAKED: &str = "ghp_LeakedToken0123456789abcdefghijklmnop";

fn github(test: Test, api: &FakeGithub) -> Test {
    test.env("GITHUB_API_URL", &api.url())
        .env("GITHUB_TOKEN", ENGINE_TOKEN)
        .env("LEAKED", LEAKED)
}

fn incident_json(out: &Output) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.incident().join("incident.json")).unwrap())
        .unwrap()
}

fn step<'a>(json: &'a Value, id: &str) -> &'a Value {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {json}"))
}

/// No file the run left, and nothing it printed, holds any of `secrets`.
fn assert_nowhere(out: &Output, secrets: &[&str]) {
    for secret in secrets {
        assert!(!out.stdout.contains(secret), "stdout: {}", out.stdout);
        assert!(!out.stderr.contains(secret), "stderr: {}", out.stderr);
        for (path, text) in out.artifacts() {
            if path.file_name().is_some_and(|n| n == "leaked.env") {
                continue;
            }
            assert!(!text.contains(secret), "{} holds a secret", path.display());
        }
    }
}

#[test]
fn the_shipped_runbook_runs_live() {
    let api = FakeGithub::start(LEAKED);
    let (out, _d) = github(Test::new(), &api)
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

    // Revoked by value, without our token, in one request.
    let revokes = api.seen_at("POST", "/credentials/revoke");
    assert_eq!(revokes.len(), 1);
    assert!(!revokes[0].headers.contains_key("authorization"));
    assert_eq!(api.revoked(), [LEAKED]);

    // Every page of the audit log, searched by the token's hash.
    let pages = api.seen_at("GET", &format!("/orgs/{ORG}/audit-log"));
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(
        pages[0].query.contains("per_page=100"),
        "{}",
        pages[0].query
    );
    let phrase = format!("hashed_token:\"{}\"", hashed(LEAKED));
    assert!(
        crate::support::fake_github::decode_query(&pages[0].query)
            .get("phrase")
            .is_some_and(|p| p.contains(&phrase) && p.contains("created:>=")),
        "{}",
        pages[0].query
    );
    assert!(pages[1].query.contains("after=100"), "{}", pages[1].query);

    // Only the open alert for the leaked token is resolved, as revoked.
    let patches: Vec<_> = api
        .seen()
        .into_iter()
        .filter(|s| s.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].path,
        format!("/repos/{REPO}/secret-scanning/alerts/1")
    );
    let alerts = api.alerts();
    assert_eq!(alerts[0]["resolution"], "revoked");
    assert_eq!(
        alerts[2]["state"], "open",
        "another secret's alert is left alone"
    );

    let issues = api.issues();
    assert_eq!(issues.len(), 1);
    assert_eq!(issues[0]["labels"], serde_json::json!(["security"]));

    let json = incident_json(&out);
    assert_eq!(json["mode"], "live");
    assert_eq!(json["slo_met"], true);
    assert!(json["time_to_revoke_ms"].as_u64().unwrap() < 5_000);
    let audit = &step(&json, "audit_log")["outputs"];
    assert_eq!(audit["events"], LEAKED_EVENTS as u64);
    assert_eq!(audit["actors"], serde_json::json!(["ci-bot"]));
    let alerts = &step(&json, "alerts")["outputs"];
    assert_eq!(
        (alerts["alerts"].as_u64(), alerts["resolved"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(step(&json, "update")["status"], "skipped");
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(md.contains("git.clone ×65"), "{md}");

    assert_nowhere(&out, &[LEAKED, ENGINE_TOKEN]);
    for s in api.seen() {
        if s.path != "/credentials/revoke" {
            assert!(
                !s.body.contains(LEAKED) && !s.query.contains(LEAKED),
                "{s:?}"
            );
        }
    }
}

#[test]
fn a_leaked_env_file_is_revoked_1000_tokens_a_request() {
    let api = FakeGithub::start(LEAKED);
    let mut env = String::from(
        "# leaked from a CI cache\nDATABASE_URL=postgres://app:hunter2-db-pass@db/app\n",
    );
    let tokens: Vec<String> = (0..2500).map(|i| format!("ghp_bulk{i:032}")).collect();
    for (i, t) in tokens.iter().enumerate() {
        if i % 2 == 0 {
            env.push_str(&format!("export TOKEN_{i}=\"{t}\"\n"));
        } else {
            env.push_str(&format!("{t}\n"));
        }
    }
    let (out, _d) = github(Test::new(), &api)
        .file("leaked.env", &env)
        .args(&[
            "run",
            "github-token-compromise",
            "--var",
            &format!("org={ORG}"),
            "--var",
            &format!("repo={REPO}"),
            "--secret",
            "leaked_token=file:leaked.env",
        ])
        .run();
    out.code(0);
    let sizes: Vec<usize> = api
        .seen_at("POST", "/credentials/revoke")
        .iter()
        .map(|s| {
            let v: Value = serde_json::from_str(&s.body).unwrap();
            v["credentials"].as_array().unwrap().len()
        })
        .collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    assert_eq!(api.revoked(), tokens);
    let json = incident_json(&out);
    let revoke = &step(&json, "revoke")["outputs"];
    assert_eq!(revoke["submitted"], 2500);
    assert_eq!(revoke["requests"], 3);
    assert_eq!(
        revoke["skipped"], 1,
        "the database URL is not a GitHub token"
    );
    assert_eq!(step(&json, "audit_log")["outputs"]["not_searched"], 2475);
    assert!(
        api.seen().iter().all(|s| !s.body.contains("hunter2")),
        "a value that is not a GitHub token never leaves quench"
    );
    let sample: Vec<&str> = tokens.iter().step_by(250).map(String::as_str).collect();
    assert_nowhere(&out, &sample);
    assert_nowhere(&out, &["hunter2-db-pass"]);
}

const ONE_STEP: &str = "name: t\nsecrets:\n  leaked_token: {}\nsteps:\n  - id: revoke\n    phase: revoke\n    action: github.revoke_credentials\n    with: { credentials: [\"{{secrets.leaked_token}}\"] }\n";

#[test]
fn revocation_needs_no_token_and_the_rest_says_which_it_needs() {
    let api = FakeGithub::start(LEAKED);
    let (out, _d) = Test::new()
        .env("GITHUB_API_URL", &api.url())
        .env("LEAKED", LEAKED)
        .file("rb.yaml", ONE_STEP)
        .args(&["run", "rb.yaml", "--secret", "leaked_token=env:LEAKED"])
        .run();
    out.code(0);
    assert_eq!(api.revoked(), [LEAKED]);

    let (out, _d) = Test::new()
        .env("GITHUB_API_URL", &api.url())
        .env("LEAKED", LEAKED)
        .args(&[
            "run",
            "github-token-compromise",
            "--var",
            "org=acme",
            "--var",
            "repo=acme/deploy",
            "--secret",
            "leaked_token=env:LEAKED",
        ])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("`audit_log` (github.audit_log): no GitHub token: set GITHUB_TOKEN or [providers.github] token"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("`revoke`"), "{}", out.stderr);
}

#[test]
fn a_secondary_rate_limit_is_retried_after_retry_after() {
    let api = FakeGithub::start(LEAKED);
    api.answer(
        "POST /credentials/revoke",
        403,
        &[("retry-after", "1")],
        r#"{"message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again.","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#,
    );
    let (out, _d) = github(Test::new(), &api)
        .file("rb.yaml", ONE_STEP)
        .args(&["run", "rb.yaml", "--secret", "leaked_token=env:LEAKED"])
        .run();
    out.code(0);
    let revokes = api.seen_at("POST", "/credentials/revoke");
    assert_eq!(revokes.len(), 2);
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    let failed: Value = journal
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["event"] == "attempt_failed")
        .expect("the first attempt failed");
    assert_eq!(failed["class"], "rate_limited");
    assert!(failed["retry_in_ms"].as_u64().unwrap() >= 1000, "{failed}");
    assert!(
        failed["error"].as_str().unwrap().contains(
            "`POST /credentials/revoke` answered 403: You have exceeded a secondary rate limit"
        ),
        "{failed}"
    );
    let json = incident_json(&out);
    assert_eq!(step(&json, "revoke")["attempts"], 2);
}

#[test]
fn github_errors_are_permanent_and_carry_its_message() {
    let api = FakeGithub::start(LEAKED);
    let rb = "name: t\nsteps:\n  - id: prevent\n    phase: prevent\n    action: github.create_issue\n    with: { repo: acme/missing, title: follow up }\n    retry: { attempts: 3 }\n";
    let (out, _d) = github(Test::new(), &api)
        .file("rb.yaml", rb)
        .args(&["run", "rb.yaml"])
        .run();
    out.code(1);
    let json = incident_json(&out);
    let s = step(&json, "prevent");
    assert_eq!(s["attempts"], 1, "a 404 is not retried");
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(
        md.contains("`POST /repos/acme/missing/issues` answered 404: Not Found"),
        "{md}"
    );
}

#[test]
fn an_actions_secret_is_sealed_to_the_repository_key() {
    let api = FakeGithub::start(LEAKED);
    let new_token = "github_pat_11NEWTOKEN_replacement0123456789";
    let rb = format!(
        "name: t\nsecrets:\n  new_token: {{}}\nsteps:\n  - id: set\n    phase: update\n    action: github.set_actions_secret\n    with: {{ repo: {REPO}, name: GH_TOKEN, value: \"{{{{secrets.new_token}}}}\" }}\n  - id: again\n    phase: update\n    needs: [set]\n    action: github.set_actions_secret\n    with: {{ repo: {REPO}, name: GH_TOKEN, value_from: \"file:replacement-token\" }}\n"
    );
    let (out, _d) = github(Test::new(), &api)
        .env("NEW_TOKEN", new_token)
        .file("rb.yaml", &rb)
        .file("replacement-token", "github_pat_11SECOND_from_a_file\n")
        .args(&["run", "rb.yaml", "--secret", "new_token=env:NEW_TOKEN"])
        .run();
    out.code(0);
    let json = incident_json(&out);
    assert_eq!(step(&json, "set")["outputs"]["outcome"], "created");
    assert_eq!(step(&json, "again")["outputs"]["outcome"], "updated");
    assert_eq!(
        api.open_secret("GH_TOKEN").as_deref(),
        Some("github_pat_11SECOND_from_a_file")
    );
    let puts = api.seen_at("PUT", &format!("/repos/{REPO}/actions/secrets/GH_TOKEN"));
    assert_eq!(puts.len(), 2);
    assert!(puts.iter().all(|p| !p.body.contains("github_pat_")));
    assert_nowhere(&out, &[new_token]);
}

#[test]
fn installation_and_fine_grained_tokens_are_revoked() {
    let api = FakeGithub::start(LEAKED);
    let ids: Vec<String> = (1..=150).map(|i| i.to_string()).collect();
    let rb = format!(
        "name: t\nsecrets:\n  installation: {{}}\nsteps:\n  - id: app\n    phase: revoke\n    action: github.revoke_installation_token\n    with: {{ token: \"{{{{secrets.installation}}}}\" }}\n  - id: pats\n    phase: revoke\n    action: github.revoke_fine_grained_pat\n    with: {{ org: {ORG}, pat_ids: [{}] }}\n",
        ids.join(", ")
    );
    let (out, _d) = github(Test::new(), &api)
        .env("INSTALLATION", INSTALLATION_TOKEN)
        .file("rb.yaml", &rb)
        .args(&[
            "run",
            "rb.yaml",
            "--secret",
            "installation=env:INSTALLATION",
        ])
        .run();
    out.code(0);
    assert!(api.installation_revoked());
    let delete = &api.seen_at("DELETE", "/installation/token")[0];
    assert_eq!(
        delete.headers["authorization"],
        format!("Bearer {INSTALLATION_TOKEN}"),
        "the installation token authenticates as itself, not as the engine"
    );
    assert_eq!(
        api.seen_at("POST", &format!("/orgs/{ORG}/personal-access-tokens"))
            .len(),
        2
    );
    assert_eq!(api.revoked_pats(), (1..=150).collect::<Vec<u64>>());
    assert_nowhere(&out, &[INSTALLATION_TOKEN, ENGINE_TOKEN]);
}

#[test]
fn the_fake_refuses_what_github_refuses() {
    // The fake is only worth its tests if it refuses what GitHub refuses.
    let api = FakeGithub::start(LEAKED);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = |auth: Option<&str>, accept: &str, body: Value| {
        let url = format!("{}/credentials/revoke", api.url());
        rt.block_on(async {
            let mut rb = reqwest::Client::new()
                .post(url)
                .header("user-agent", "t")
                .header("accept", accept)
                .json(&body);
            if let Some(a) = auth {
                rb = rb.header("authorization", a);
            }
            let r = rb.send().await.unwrap();
            assert!(r.headers().contains_key("x-ratelimit-remaining"));
            r.status().as_u16()
        })
    };
    let gh = "application/vnd.github+json";
    let one = serde_json::json!({"credentials": [LEAKED]});
    assert_eq!(status(None, gh, one.clone()), 202);
    assert_eq!(status(Some("Bearer x"), gh, one.clone()), 403);
    assert_eq!(status(None, "text/html", one), 400);
    let many: Vec<String> = (0..1001).map(|i| format!("ghp_{i}")).collect();
    assert_eq!(
        status(None, gh, serde_json::json!({ "credentials": many })),
        422
    );
    assert_eq!(
        status(None, gh, serde_json::json!({ "tokens": [LEAKED] })),
        422
    );
}
