//! Fitting the ecosystem: the editor schema, completions, the man page.

use serde_json::Value;

use crate::support::Test;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn yaml_as_json(text: &str) -> Value {
    serde_saphyr::from_str::<Value>(text).unwrap()
}

fn committed(name: &str) -> String {
    std::fs::read_to_string(format!("{ROOT}/schemas/{name}")).unwrap()
}

#[test]
fn the_committed_schemas_are_what_quench_generates() {
    for (what, file) in [
        ("runbook", "runbook.schema.json"),
        ("scenario", "scenario.schema.json"),
    ] {
        let (out, _d) = Test::new().args(&["schema", what]).run();
        out.code(0);
        assert!(
            out.stdout == committed(file),
            "schemas/{file} is stale: run `cargo run -- schema {what} > schemas/{file}`"
        );
    }
}

#[test]
fn every_shipped_runbook_and_scenario_satisfies_its_schema() {
    let runbook: Value = serde_json::from_str(&committed("runbook.schema.json")).unwrap();
    let scenario: Value = serde_json::from_str(&committed("scenario.schema.json")).unwrap();
    let runbook = jsonschema::validator_for(&runbook).unwrap();
    let scenario = jsonschema::validator_for(&scenario).unwrap();
    let mut checked = 0;
    for (dir, validator) in [("runbooks", &runbook), ("runbooks/scenarios", &scenario)] {
        for e in std::fs::read_dir(format!("{ROOT}/{dir}")).unwrap() {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "yaml") {
                let doc = yaml_as_json(&std::fs::read_to_string(&path).unwrap());
                let errors: Vec<String> =
                    validator.iter_errors(&doc).map(|e| e.to_string()).collect();
                assert!(errors.is_empty(), "{}: {errors:?}", path.display());
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 12);
    // And the schema catches what the loader refuses.
    let bad = yaml_as_json(
        "name: x\nsteps:\n  - { id: a, phase: revoke, action: aws.deactivate_acess_key, acton: x }\n",
    );
    let errors: Vec<String> = runbook.iter_errors(&bad).map(|e| e.to_string()).collect();
    assert!(errors.iter().any(|e| e.contains("acton")), "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("aws.deactivate_acess_key")),
        "{errors:?}"
    );
    // Each action's `with:`: its parameters, and only those.
    let bad = yaml_as_json(
        "name: x\nsteps:\n  - { id: a, phase: revoke, action: aws.deactivate_access_key, with: { usr: u, access_key_id: AKIA } }\n",
    );
    let errors: Vec<String> = runbook.iter_errors(&bad).map(|e| e.to_string()).collect();
    assert!(errors.iter().any(|e| e.contains("usr")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("user")), "{errors:?}");
    let good = yaml_as_json(
        "name: x\nsteps:\n  - { id: a, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIA } }\n",
    );
    assert!(runbook.is_valid(&good));
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let (out, _d) = Test::new().args(&["completions", shell]).run();
        out.code(0);
        for sub in ["rehearse", "resume", "tick", "validate"] {
            assert!(out.stdout.contains(sub), "{shell} completion lacks `{sub}`");
        }
    }
    let (out, _d) = Test::new().args(&["man"]).run();
    out.code(0);
    assert!(out.stdout.contains(".TH quench 1"), "{}", out.stdout);
    assert!(out.stdout.contains("rehearse"), "{}", out.stdout);
}

#[test]
fn json_logs_for_shippers_carry_every_event_and_no_secret() {
    use crate::support::fake_api::FakeApi;
    let leaked = "sk_live_Logged0Secret9Value";
    let api = FakeApi::start();
    // The API echoes the request, secret and all, in its error.
    api.answer("/keys/key-0001/revoke", 500, &[], "echo: {authorization}");
    let runbook = r#"
name: logged
secrets: { token: {} }
inputs: { api: { example: "http://127.0.0.1:1" } }
steps:
  - id: revoke
    phase: revoke
    action: http.request
    retry: { attempts: 2, initial: 10ms }
    with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke", headers: { Authorization: "Bearer {{secrets.token}}" } }
"#;
    let (out, _d) = Test::new()
        .file("rb.yaml", runbook)
        .env("LEAKED", leaked)
        .env("QUENCH_LOG", "debug")
        .args(&[
            "--log-format",
            "json",
            "run",
            "rb.yaml",
            "--var",
            &format!("api={}", api.url()),
            "--secret",
            "token=env:LEAKED",
        ])
        .run();
    out.code(0);
    let lines: Vec<Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let events: Vec<&str> = lines.iter().filter_map(|l| l["event"].as_str()).collect();
    for e in [
        "incident_started",
        "step_started",
        "attempt_failed",
        "step_succeeded",
        "incident_finished",
    ] {
        assert!(events.contains(&e), "no `{e}` in {events:?}");
    }
    // The provider's raw error reached the debug log, and was swept.
    assert!(
        out.stderr.contains("attempt failed: POST"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains(leaked), "{}", out.stderr);
    assert!(
        out.stderr.contains("[REDACTED token sha256:"),
        "{}",
        out.stderr
    );
}

#[test]
fn rehearse_all_prints_a_table_and_fails_on_a_missed_slo() {
    let vault = include_str!("../../runbooks/vault-token-compromise.yaml");
    let tight = vault
        .replace("revoke_within: 5m", "revoke_within: 100ms")
        .replace("name: vault-token-compromise", "name: tight");
    let (out, _d) = Test::new()
        .file("runbooks/vault-token-compromise.yaml", vault)
        .file("runbooks/tight.yaml", &tight)
        .args(&["rehearse", "--all"])
        .run();
    out.code(3);
    assert!(
        out.stdout
            .contains("| tight | slo missed | 150ms | 100ms MISSED |"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("| vault-token-compromise | succeeded | 150ms | 5m 00s met |"),
        "{}",
        out.stdout
    );
    let (out, _d) = Test::new()
        .file("runbooks/v.yaml", vault)
        .args(&["rehearse", "--all"])
        .run();
    out.code(0);
}

#[test]
fn the_example_config_parses() {
    let text = std::fs::read_to_string(format!("{ROOT}/examples/quench.toml")).unwrap();
    quench::config::Config::parse("examples/quench.toml", &text).unwrap();
}
