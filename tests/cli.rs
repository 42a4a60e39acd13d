//! quench as a user drives it: the real binary, real files, a real local API.

mod support;

#[path = "cli/attack.rs"]
mod attack;
#[path = "cli/audit.rs"]
mod audit;
#[path = "cli/aws.rs"]
mod aws;
#[path = "cli/aws_proof.rs"]
mod aws_proof;
#[path = "cli/consumers.rs"]
mod consumers;
#[path = "cli/document.rs"]
mod document;
#[path = "cli/drill.rs"]
mod drill;
#[path = "cli/durability.rs"]
mod durability;
#[path = "cli/ecosystem.rs"]
mod ecosystem;
#[path = "cli/fuzz.rs"]
mod fuzz;
#[path = "cli/git.rs"]
mod git;
#[path = "cli/github.rs"]
mod github;
#[path = "cli/hooks.rs"]
mod hooks;
#[path = "cli/postgres.rs"]
mod postgres;
#[path = "cli/proof.rs"]
mod proof;
#[path = "cli/rotation.rs"]
mod rotation;
#[path = "cli/slack.rs"]
mod slack;
#[path = "cli/verify.rs"]
mod verify;

use support::Test;
use support::fake_api::{FakeApi, NEW_SECRET};

// ---------------------------------------------------------------- validation

/// Validates `yaml` and returns (exit code, stderr).
fn validate(yaml: &str) -> (i32, String) {
    let (out, _dir) = Test::new()
        .file("rb.yaml", yaml)
        .args(&["validate", "rb.yaml"])
        .run();
    (out.code, out.stderr)
}

fn assert_invalid(yaml: &str, location: &str, message: &str, help: &str) {
    let (code, stderr) = validate(yaml);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!("--> {location}")),
        "expected `{location}` in:\n{stderr}"
    );
    assert!(
        stderr.contains(message),
        "expected `{message}` in:\n{stderr}"
    );
    assert!(stderr.contains(help), "expected `{help}` in:\n{stderr}");
}

const STEP: &str = "  - id: deactivate\n    phase: revoke\n    action: aws.deactivate_access_key\n    with: { user: ci-bot, access_key_id: AKIAIOSFODNN7EXAMPLE }\n";

#[test]
fn a_misspelt_action_is_pointed_at_with_a_suggestion() {
    let yaml =
        "name: t\nsteps:\n  - id: a\n    phase: revoke\n    action: aws.deactivate_acess_key\n";
    let (code, stderr) = validate(yaml);
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim_end(),
        "error: unknown action `aws.deactivate_acess_key`
 --> rb.yaml:5:13
  |
5 |     action: aws.deactivate_acess_key
  |             ^^^^^^^^^^^^^^^^^^^^^^^^
  |
  = help: did you mean `aws.deactivate_access_key`?"
    );
}

#[test]
fn a_runbook_that_is_not_utf8_is_pointed_at_its_first_bad_byte() {
    // "café" in Latin-1: the é is the single byte 0xe9.
    let yaml = b"name: t\nsteps:\n  - id: caf\xe9\n    phase: revoke\n";
    for command in ["validate", "plan", "run", "rehearse"] {
        let (out, _dir) = Test::new()
            .file_bytes("rb.yaml", yaml)
            .args(&[command, "rb.yaml"])
            .run();
        assert_eq!(out.code, 2, "{command}: {}", out.stderr);
        assert!(
            out.stderr
                .contains("error: runbook is not UTF-8 (byte 0xe9)"),
            "{command}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("--> rb.yaml:3:12"),
            "{command}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("help: save the file as UTF-8"),
            "{command}: {}",
            out.stderr
        );
        assert!(
            !out.stderr.contains("invalid data"),
            "{command}: {}",
            out.stderr
        );
    }
}

#[test]
fn an_unknown_field_names_its_place_and_the_likely_one() {
    assert_invalid(
        "name: t\nsteps:\n  - id: a\n    phase: revoke\n    acton: aws.deactivate_access_key\n",
        "rb.yaml:5:5",
        "unknown field `acton`",
        "did you mean `action`?",
    );
}

#[test]
fn unknown_and_missing_parameters() {
    assert_invalid(
        "name: t\nsteps:\n  - id: a\n    phase: revoke\n    action: aws.deactivate_access_key\n    with: { user: u, acces_key_id: AKIAIOSFODNN7EXAMPLE }\n",
        "rb.yaml:6:22",
        "unknown parameter `acces_key_id` for `aws.deactivate_access_key`",
        "did you mean `access_key_id`?",
    );
    assert_invalid(
        "name: t\nsteps:\n  - id: a\n    phase: revoke\n    action: aws.deactivate_access_key\n    with: { user: u }\n",
        "rb.yaml:5:13",
        "`aws.deactivate_access_key` needs parameter `access_key_id`",
        "add `access_key_id: …` under `with:`",
    );
}

#[test]
fn a_parameter_of_the_wrong_shape() {
    assert_invalid(
        "name: t\nsteps:\n  - id: a\n    phase: notify\n    action: slack.post_message\n    with: { channel: [a, b], text: hi }\n",
        "rb.yaml:6:22",
        "parameter `channel` of `slack.post_message` must be a string, not a list",
        "",
    );
}

#[test]
fn cycles_are_shown_whole() {
    let yaml = "name: t\nsteps:\n  - { id: a, phase: revoke, needs: [b], action: manual.task, with: { prompt: x } }\n  - { id: b, phase: review, needs: [a], action: manual.task, with: { prompt: y } }\n";
    assert_invalid(
        yaml,
        "rb.yaml:4:37",
        "steps depend on each other in a cycle: a → b → a",
        "remove `a` from the `needs` of `b`",
    );
}

#[test]
fn a_cycle_through_settled_names_the_field_to_change() {
    let yaml = "name: t\nsteps:\n  - { id: a, phase: revoke, needs: [b], action: manual.task, with: { prompt: x } }\n  - { id: b, phase: review, settled: [a], action: manual.task, with: { prompt: y } }\n";
    assert_invalid(
        yaml,
        "rb.yaml:4:39",
        "steps depend on each other in a cycle: a → b → a",
        "remove `a` from the `settled` of `b`",
    );
}

#[test]
fn settled_names_steps_of_the_runbook() {
    let yaml = "name: t\nsteps:\n  - { id: audit, phase: audit, action: manual.task, with: { prompt: x } }\n  - { id: doc, phase: document, settled: [audti], action: incident.document }\n";
    assert_invalid(
        yaml,
        "rb.yaml:4:43",
        "step `doc` waits for `audti` to settle, which is not a step",
        "did you mean `audit`?",
    );
}

#[test]
fn a_step_is_in_needs_or_in_settled_not_both() {
    let yaml = "name: t\nsteps:\n  - { id: audit, phase: audit, action: manual.task, with: { prompt: x } }\n  - { id: doc, phase: document, needs: [audit], settled: [audit], action: incident.document }\n";
    assert_invalid(
        yaml,
        "rb.yaml:4:59",
        "step `doc` lists `audit` in both `needs` and `settled`",
        "in `settled` if it runs whatever its result",
    );
}

#[test]
fn duplicate_ids_and_unknown_needs() {
    let yaml = format!("name: t\nsteps:\n{STEP}{STEP}");
    assert_invalid(
        &yaml,
        "rb.yaml:7:9",
        "duplicate step id `deactivate`",
        "the first `deactivate` is on line 3",
    );
    let yaml = format!(
        "name: t\nsteps:\n{STEP}  - {{ id: b, phase: replace, needs: [deactvate], action: aws.create_access_key, with: {{ user: u }} }}\n"
    );
    assert_invalid(
        &yaml,
        "rb.yaml:7:38",
        "step `b` needs `deactvate`, which is not a step",
        "did you mean `deactivate`?",
    );
}

#[test]
fn bad_durations_say_how_to_write_one() {
    let yaml = format!("name: t\nsteps:\n{STEP}    timeout: 10\n");
    assert_invalid(
        &yaml,
        "rb.yaml:7:14",
        "bad duration for `timeout`: `10` has no unit",
        "durations look like `200ms`",
    );
    let yaml = format!("name: t\nsteps:\n{STEP}    retry: {{ attempts: 3, initial: soon }}\n");
    assert_invalid(
        &yaml,
        "rb.yaml:7:36",
        "bad duration for `retry.initial`",
        "",
    );
}

#[test]
fn a_template_may_only_read_upstream_steps() {
    let yaml = format!(
        "name: t\nsteps:\n{STEP}  - id: tell\n    phase: notify\n    action: slack.post_message\n    with: {{ channel: c, text: \"new key {{{{steps.new_key.outputs.access_key_id}}}}\" }}\n  - {{ id: new_key, phase: replace, needs: [deactivate], action: aws.create_access_key, with: {{ user: u }} }}\n"
    );
    assert_invalid(
        &yaml,
        "rb.yaml:10:42",
        "template reads `new_key`, which is not upstream of `tell`",
        "add `new_key` to the `needs` of `tell`",
    );
}

#[test]
fn a_secret_never_flows_into_a_message() {
    let yaml = "name: t\nsecrets: { leaked_token: {} }\nsteps:\n  - id: tell\n    phase: notify\n    action: slack.post_message\n    with: { channel: c, text: \"leaked: {{secrets.leaked_token}}\" }\n";
    assert_invalid(
        yaml,
        "rb.yaml:7:42",
        "secret `secrets.leaked_token` may not flow into parameter `text` of step `tell`, which is not secret-capable",
        "secret-capable parameter",
    );
    // A secret output is a secret too.
    let yaml = format!(
        "name: t\nsteps:\n{STEP}  - {{ id: new_key, phase: replace, needs: [deactivate], action: aws.create_access_key, with: {{ user: u }} }}\n  - id: tell\n    phase: notify\n    needs: [new_key]\n    action: slack.post_message\n    with: {{ channel: c, text: \"{{{{steps.new_key.outputs.secret_access_key}}}}\" }}\n"
    );
    assert_invalid(
        &yaml,
        "rb.yaml:12:34",
        "secret output `steps.new_key.outputs.secret_access_key` may not flow into parameter `text`",
        "",
    );
}

#[test]
fn templates_read_only_what_is_declared() {
    let yaml = format!(
        "name: t\ninputs: {{ iam_user: {{}} }}\nsteps:\n{STEP}  - {{ id: b, phase: notify, action: slack.post_message, with: {{ channel: c, text: \"{{{{inputs.iam_usr}}}}\" }} }}\n"
    );
    assert_invalid(
        &yaml,
        "rb.yaml:8:86",
        "template reads input `iam_usr`, which is not declared",
        "did you mean `iam_user`?",
    );
    let yaml = format!(
        "name: t\nsteps:\n{STEP}  - {{ id: b, phase: notify, action: slack.post_message, with: {{ channel: c, text: \"{{{{incident.started}}}}\" }} }}\n"
    );
    assert_invalid(
        &yaml,
        "rb.yaml:7:86",
        "`incident.started` is not an incident field",
        "did you mean `started_at`?",
    );
}

#[test]
fn unknown_phase_and_on_failure() {
    let yaml = "name: t\nsteps:\n  - { id: a, phase: revok, action: manual.task, with: { prompt: x }, on_failure: stop }\n";
    let (code, stderr) = validate(yaml);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("rb.yaml:3:21")
            && stderr.contains("unknown phase `revok`")
            && stderr.contains("did you mean `revoke`?"),
        "{stderr}"
    );
    assert!(
        stderr.contains("unknown on_failure `stop`") && stderr.contains("`abort` or `continue`"),
        "{stderr}"
    );
}

#[test]
fn broken_yaml_is_located() {
    assert_invalid("name: t\nsteps: [\n", "rb.yaml:2:8", "unclosed bracket", "");
}

#[test]
fn bad_input_patterns_and_defaults() {
    let yaml =
        format!("name: t\ninputs:\n  key: {{ pattern: \"^(AKIA\", default: x }}\nsteps:\n{STEP}");
    assert_invalid(
        &yaml,
        "rb.yaml:3:19",
        "input `key` has a pattern that is not a valid regex",
        "",
    );
    let yaml = format!(
        "name: t\ninputs:\n  key: {{ pattern: \"^AKIA\", example: ASIA1 }}\nsteps:\n{STEP}"
    );
    assert_invalid(
        &yaml,
        "rb.yaml:3:37",
        "the example of input `key` does not match its pattern `^AKIA`",
        "",
    );
}

#[test]
fn a_compromise_runbook_missing_phases_is_warned_about() {
    let yaml = format!("name: t\nkind: compromise\nsteps:\n{STEP}");
    let (code, stderr) = validate(&yaml);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("warning: compromise runbook has no step in phase `replace`, `audit`, `notify`, `update`, `document`, `review`, `prevent`"), "{stderr}");
    assert!(stderr.contains("--> rb.yaml:2:7"), "{stderr}");
}

#[test]
fn every_shipped_runbook_and_scenario_validates_and_covers_all_phases() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (out, _d) = Test::new()
        .args(&["validate", &format!("{root}/runbooks")])
        .run();
    out.code(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
    assert_eq!(out.stdout.matches("ok ").count(), 12, "{}", out.stdout);
}

#[test]
fn scenarios_are_validated_too() {
    let (out, _d) = Test::new()
        .file(
            "scenarios/s.yaml",
            "actions:\n  aws.deactivate_acces_key: { latency: 1s }\n",
        )
        .args(&["validate", "scenarios/s.yaml"])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("scenarios/s.yaml:2:3")
            && out
                .stderr
                .contains("did you mean `aws.deactivate_access_key`?"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- commands

#[test]
fn plan_renders_in_order_and_never_shows_a_secret() {
    let (out, _d) = Test::new()
        .args(&[
            "plan",
            "github-token-compromise",
            "--var",
            "org=acme",
            "--var",
            "repo=acme/api",
        ])
        .run();
    out.code(0);
    assert!(
        out.stdout
            .contains(" 1. revoke [revoke] github.revoke_credentials"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("credentials: [\"[REDACTED leaked_token]\"]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("repo: acme/api"), "{}", out.stdout);
}

#[test]
fn providers_lists_every_action_and_marks_secret_capable_parameters() {
    let (out, _d) = Test::new().args(&["providers"]).run();
    out.code(0);
    assert!(out.stdout.contains("aws.deactivate_access_key"));
    assert!(
        out.stdout
            .contains("secret_access_key : a string, secret-capable"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("→ secret_access_key (secret)"),
        "{}",
        out.stdout
    );
}

#[test]
fn a_secret_is_never_accepted_in_argv() {
    let (out, _d) = Test::new()
        .args(&[
            "run",
            "github-token-compromise",
            "--var",
            "org=a",
            "--var",
            "repo=a/b",
            "--var",
            "leaked_token=ghp_abc",
        ])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("`leaked_token` is a secret"),
        "{}",
        out.stderr
    );
    let (out, _d) = Test::new()
        .args(&[
            "rehearse",
            "github-token-compromise",
            "--secret",
            "leaked_token=ghp_literal_value",
        ])
        .run();
    out.code(2);
    assert!(!out.stderr.contains("ghp_literal_value"), "{}", out.stderr);
    assert!(
        out.stderr.contains("use `env:VAR`, `file:PATH` or `stdin`"),
        "{}",
        out.stderr
    );
}

#[test]
fn missing_inputs_are_listed_with_examples() {
    let (out, _d) = Test::new()
        .args(&["run", "aws-access-key-compromise"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("--var access_key_id=…   Leaked key id (e.g. AKIAIOSFODNN7EXAMPLE)"),
        "{}",
        out.stderr
    );
    let (out, _d) = Test::new()
        .args(&[
            "run",
            "aws-access-key-compromise",
            "--var",
            "access_key_id=nope",
            "--var",
            "iam_user=x",
        ])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains("does not match its pattern"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_provider_that_cannot_act_is_refused_before_anything_happens() {
    let (out, _d) = Test::new()
        .args(&[
            "run",
            "vault-token-compromise",
            "--var",
            "accessor=hmac-example-accessor-0001",
        ])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains(
            "`revoke` (vault.revoke_accessor): no Vault address: set VAULT_ADDR (or BAO_ADDR) or [providers.vault] address"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.dir.join("incidents").exists(), "nothing was started");
}

// ---------------------------------------------------------------- rehearsal

#[test]
fn a_bare_rehearsal_of_a_shipped_runbook_needs_no_flags() {
    let (out, _d) = Test::new()
        .args(&["rehearse", "aws-access-key-compromise"])
        .run();
    out.code(0);
    let dir = out.incident();
    let md = std::fs::read_to_string(dir.join("incident.md")).unwrap();
    assert!(md.starts_with("> **REHEARSAL**"), "{md}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("incident.json")).unwrap()).unwrap();
    for key in [
        "id",
        "runbook",
        "mode",
        "detected_at",
        "started_at",
        "revoked_at",
        "time_to_revoke_ms",
        "slo_ms",
        "slo_met",
    ] {
        assert!(!json[key].is_null(), "incident.json lacks `{key}`: {json}");
    }
    assert_eq!(json["mode"], "rehearsal");
    for s in json["steps"].as_array().unwrap() {
        for key in ["id", "phase", "status", "attempts"] {
            assert!(!s[key].is_null(), "step lacks `{key}`: {s}");
        }
    }
    // `report` replays the journal into the same document.
    let id = dir.file_name().unwrap().to_str().unwrap().to_string();
    let (report, _d2) = Test::new()
        .args(&[
            "--store",
            out.dir.join("incidents").to_str().unwrap(),
            "report",
            &id,
        ])
        .run();
    report.code(0);
    assert_eq!(report.stdout, md);
}

#[test]
fn every_shipped_runbook_rehearses_with_its_examples() {
    for name in [
        "aws-access-key-compromise",
        "github-token-compromise",
        "slack-token-compromise",
        "vault-token-compromise",
        "api-key-compromise",
    ] {
        let (out, _d) = Test::new().args(&["rehearse", name]).run();
        out.code(0);
    }
}

#[test]
fn a_rehearsal_that_misses_the_slo_exits_3() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (out, _d) = Test::new()
        .args(&[
            "rehearse",
            "aws-access-key-compromise",
            "--scenario",
            &format!("{root}/runbooks/scenarios/aws-slo-miss.yaml"),
        ])
        .run();
    out.code(3);
    assert!(out.stdout.contains("slo missed"), "{}", out.stdout);
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.incident().join("incident.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["slo_met"], false);
    assert!(json["time_to_revoke_ms"].as_u64().unwrap() > 300_000);
}

#[test]
fn a_failed_step_exits_1_and_still_writes_the_document() {
    let (out, _d) = Test::new()
        .file("s.yaml", "actions:\n  aws.deactivate_access_key: { faults: [ { attempts: 9, error: permanent } ] }\n")
        .args(&["rehearse", "aws-access-key-compromise", "--scenario", "s.yaml"])
        .run();
    out.code(1);
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(md.contains("| revoke | `deactivate` Deactivate the leaked key | `aws.deactivate_access_key` | failed: aws.deactivate_access_key refused the request"), "{md}");
    assert!(
        md.contains("the incident was aborted after `deactivate` failed"),
        "{md}"
    );
}

#[test]
fn a_failed_audit_still_gets_its_document_and_review_in_a_rehearsal() {
    let root = env!("CARGO_MANIFEST_DIR");
    let (out, _d) = Test::new()
        .args(&[
            "rehearse",
            "aws-access-key-compromise",
            "--scenario",
            &format!("{root}/runbooks/scenarios/aws-audit-fails.yaml"),
        ])
        .run();
    out.code(1);
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    for line in [
        "| audit | `cloudtrail` What did the leaked key do? | `aws.lookup_events` | failed",
        "| document | `document` Write the incident document | `incident.document` | succeeded",
        "| review | `went_well` What went well? | `manual.task` | succeeded",
        "- **Revoked inside a minute** (rehearsal)",
    ] {
        assert!(md.contains(line), "no `{line}` in:\n{md}");
    }
}

#[test]
fn detected_at_starts_the_slo_clock() {
    let detected = (chrono::Utc::now() - chrono::Duration::minutes(10)).to_rfc3339();
    let (out, _d) = Test::new()
        .args(&[
            "rehearse",
            "vault-token-compromise",
            "--detected-at",
            &detected,
        ])
        .run();
    out.code(3);
    let (out, _d) = Test::new()
        .args(&[
            "rehearse",
            "vault-token-compromise",
            "--detected-at",
            "yesterday",
        ])
        .run();
    out.code(2);
}

/// Snapshot of the document a rehearsal writes, with the parts that change
/// from run to run (times, ids, hashes) masked.
#[test]
fn the_rehearsal_document() {
    let scenario = r#"
clock: virtual
defaults: { latency: 150ms }
actions:
  aws.deactivate_access_key:
    latency: 400ms
    faults: [ { attempts: 2, error: throttled, retry_after: 1s } ]
  slack.post_message:
    faults: [ { attempts: 1, error: throttled, retry_after: 2s } ]
  aws.lookup_events:
    outputs: { events: 42, event_names: [ListBuckets, GetObject], source_ips: [203.0.113.7] }
manual:
  review: { after: 90s, answer: "Key was committed to a public gist", by: alice }
"#;
    let (out, _d) = Test::new()
        .file("s.yaml", scenario)
        .args(&[
            "rehearse",
            "aws-access-key-compromise",
            "--scenario",
            "s.yaml",
        ])
        .run();
    out.code(0);
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    insta::assert_snapshot!("rehearsal_document", mask(&md));
}

fn mask(text: &str) -> String {
    let rules = [
        (r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "[TS]"),
        (r"\b\d{4}-\d\d-\d\d\b", "[DATE]"),
        (r"INC-\d{8}-\d{6}-[0-9a-f]{4}", "[INCIDENT]"),
        (r"sha256 `[0-9a-f]{64}`", "sha256 `[HASH]`"),
        (r"sha256:[0-9a-f]{8}", "sha256:[HASH]"),
        (r"tester@[^ |)]+", "tester@[HOST]"),
    ];
    let mut out = text.to_string();
    for (re, with) in rules {
        out = regex::Regex::new(re)
            .unwrap()
            .replace_all(&out, with)
            .into_owned();
    }
    out
}

// ---------------------------------------------------------------- live http

#[test]
fn the_api_key_runbook_runs_live_and_chains_outputs_between_requests() {
    let api = FakeApi::start();
    let (out, _d) = Test::new()
        .args(&[
            "run",
            "api-key-compromise",
            "--var",
            &format!("api={}", api.url()),
            "--var",
            "key_id=key-0001",
        ])
        .run();
    out.code(0);
    let seen = api.seen();
    let paths: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    let at = |p: &str| {
        paths
            .iter()
            .position(|x| x == p)
            .unwrap_or_else(|| panic!("no `{p}` in {paths:?}"))
    };
    assert!(
        at("POST /keys/key-0001/revoke") < at("POST /keys"),
        "{paths:?}"
    );
    assert!(at("POST /keys") < at("PUT /config/credential"), "{paths:?}");
    assert!(
        at("PUT /config/credential") < at("GET /whoami"),
        "{paths:?}"
    );
    // The new key's id and secret flowed from the response into later requests.
    let put = seen
        .iter()
        .find(|s| s.path == "/config/credential")
        .expect("consumers updated");
    assert!(put.body.contains("\"key_id\":\"key-0002\""), "{}", put.body);
    let whoami = seen.iter().find(|s| s.path == "/whoami").expect("verified");
    assert_eq!(
        whoami.headers["authorization"],
        format!("Bearer {NEW_SECRET}")
    );

    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(
        md.contains("- events: 3"),
        "audit findings in the document:\n{md}"
    );
    assert!(
        md.contains("no Slack bot token: set SLACK_BOT_TOKEN or [providers.slack] bot_token, so this notification was not sent"),
        "{md}"
    );
    assert!(!md.contains(NEW_SECRET));
}

#[test]
fn retry_after_from_a_live_api_is_honoured() {
    let api = FakeApi::start();
    api.answer(
        "/keys/key-0001/revoke",
        429,
        &[("retry-after", "1")],
        "{\"error\":\"slow down\"}",
    );
    api.answer("/keys/key-0001/revoke", 503, &[], "unavailable");
    let started = std::time::Instant::now();
    let (out, _d) = Test::new()
        .args(&[
            "run",
            "api-key-compromise",
            "--var",
            &format!("api={}", api.url()),
            "--var",
            "key_id=key-0001",
        ])
        .run();
    out.code(0);
    let revokes = api
        .seen()
        .iter()
        .filter(|s| s.path == "/keys/key-0001/revoke")
        .count();
    assert_eq!(revokes, 3);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    assert!(journal.contains("\"class\":\"rate_limited\""), "{journal}");
    assert!(journal.contains("\"retry_in_ms\":1000"), "{journal}");
    assert!(journal.contains("\"class\":\"transient\""), "{journal}");
}

/// Issue 7: a request queued at its host's gate (here held until the host's
/// quota refills) has not been sent, so its step's timeout has not started.
#[test]
fn a_request_held_at_its_hosts_pace_is_not_timed_out_while_it_waits() {
    let api = FakeApi::start();
    api.answer(
        "/keys/a/revoke",
        200,
        &[("ratelimit-remaining", "0"), ("ratelimit-reset", "2")],
        "{}",
    );
    let runbook = r#"
name: held
inputs:
  api: { example: "http://127.0.0.1:1" }
steps:
  - id: first
    phase: revoke
    action: http.request
    with: { method: POST, url: "{{inputs.api}}/keys/a/revoke" }
  - id: second
    phase: revoke
    needs: [first]
    action: http.request
    with: { method: POST, url: "{{inputs.api}}/keys/b/revoke" }
    timeout: 1s
    retry: { attempts: 1 }
"#;
    let started = std::time::Instant::now();
    let (out, _d) = Test::new()
        .file("held.yaml", runbook)
        .args(&["run", "held.yaml", "--var", &format!("api={}", api.url())])
        .run();
    out.code(0);
    // It waited at the gate for the quota's reset, longer than its timeout.
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    assert!(!journal.contains("\"class\":\"timeout\""), "{journal}");
    assert_eq!(api.seen().len(), 2);
}

#[test]
fn a_permanent_refusal_aborts_and_exits_1() {
    let api = FakeApi::start();
    api.answer(
        "/keys/key-0001/revoke",
        403,
        &[],
        "{\"error\":\"forbidden\"}",
    );
    let (out, _d) = Test::new()
        .args(&[
            "run",
            "api-key-compromise",
            "--var",
            &format!("api={}", api.url()),
            "--var",
            "key_id=key-0001",
        ])
        .run();
    out.code(1);
    assert_eq!(
        api.seen()
            .iter()
            .filter(|s| s.path == "/keys/key-0001/revoke")
            .count(),
        1
    );
    assert!(
        !api.seen().iter().any(|s| s.path == "/keys"),
        "nothing after the abort"
    );
    assert!(
        out.stdout.contains("answered 403 Forbidden"),
        "{}",
        out.stdout
    );
}

// ---------------------------------------------------------------- secrets

const SECRET_RUNBOOK: &str = r#"
name: token-check
title: A runbook that handles a secret
secrets:
  token: { description: the leaked token }
inputs:
  api: { example: "http://127.0.0.1:1" }
steps:
  - id: revoke
    phase: revoke
    action: http.request
    with:
      method: POST
      url: "{{inputs.api}}/keys/key-0001/revoke"
      headers: { Authorization: "Bearer {{secrets.token}}" }
      json: { token: "{{secrets.token}}" }
    retry: { attempts: 2, initial: 10ms }
  - id: new_key
    phase: replace
    needs: [revoke]
    action: http.request
    with:
      method: POST
      url: "{{inputs.api}}/keys"
      outputs: { key_id: /id, key_secret: /secret }
      secret_outputs: [key_secret]
  - id: echo
    phase: update
    needs: [new_key]
    action: http.request
    with:
      method: PUT
      url: "{{inputs.api}}/config/credential"
      json: { secret: "{{steps.new_key.outputs.key_secret}}" }
      expect_status: [201]
"#;

#[test]
fn secrets_appear_in_no_artifact_and_no_output() {
    let leaked = "ghp_Zx9LeakedTokenValue0123456789abcd";
    let api = FakeApi::start();
    // The API echoes the request (and its Authorization header) in an error
    // body, as some do.
    api.answer(
        "/keys/key-0001/revoke",
        500,
        &[],
        "echo: {request_body} auth={authorization}",
    );
    // Its answer to the PUT (expected 201) echoes the new secret back.
    api.answer("/config/credential", 200, &[], "stored {request_body}");
    let (out, _d) = Test::new()
        .file("rb.yaml", SECRET_RUNBOOK)
        .env("LEAKED", leaked)
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("api={}", api.url()),
            "--secret",
            "token=env:LEAKED",
        ])
        .run();
    out.code(1);
    // The secret really was sent, and really was echoed back.
    assert!(api.seen()[0].headers["authorization"].contains(leaked));
    let b64 = base64_of(leaked);
    let mut searched = 0;
    for (path, text) in out.artifacts() {
        for needle in [leaked, NEW_SECRET, b64.as_str()] {
            assert!(
                !text.contains(needle),
                "{} contains a secret:\n{text}",
                path.display()
            );
        }
        searched += 1;
    }
    assert!(
        searched >= 5,
        "journal, document, json and runbook copy were searched"
    );
    for stream in [&out.stdout, &out.stderr] {
        assert!(
            !stream.contains(leaked) && !stream.contains(NEW_SECRET),
            "{stream}"
        );
    }
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    assert!(journal.contains("[REDACTED token sha256:"), "{journal}");
    assert!(
        journal.contains("[REDACTED new_key.key_secret sha256:"),
        "{journal}"
    );
}

#[test]
fn secrets_are_read_from_files_and_stdin() {
    let api = FakeApi::start();
    let (out, _d) = Test::new()
        .file("rb.yaml", SECRET_RUNBOOK)
        .file("token.txt", "from-a-file-9f8e7d\n")
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("api={}", api.url()),
            "--secret",
            "token=file:token.txt",
        ])
        .run();
    out.code(1); // the last step expects 201 and gets 200
    assert_eq!(
        api.seen()[0].headers["authorization"],
        "Bearer from-a-file-9f8e7d"
    );

    let api = FakeApi::start();
    let (out, _d) = Test::new()
        .file("rb.yaml", SECRET_RUNBOOK)
        .stdin("from-stdin-1a2b3c\n")
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("api={}", api.url()),
            "--secret",
            "token=stdin",
        ])
        .run();
    out.code(1);
    assert_eq!(
        api.seen()[0].headers["authorization"],
        "Bearer from-stdin-1a2b3c"
    );
    assert!(
        !out.artifacts()
            .iter()
            .any(|(_, t)| t.contains("from-stdin-1a2b3c"))
    );
}

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

// ---------------------------------------------------------------- humans and signals

const APPROVAL_RUNBOOK: &str = r#"
name: gated
inputs:
  api: { example: "http://127.0.0.1:1" }
steps:
  - id: revoke
    phase: revoke
    action: http.request
    approval: { approvers: [sec-lead] }
    with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke" }
"#;

#[test]
fn yes_approves_in_the_invokers_name() {
    let api = FakeApi::start();
    let (out, _d) = Test::new()
        .file("rb.yaml", APPROVAL_RUNBOOK)
        .args(&[
            "run",
            "rb.yaml",
            "--yes",
            "--var",
            &format!("api={}", api.url()),
        ])
        .run();
    out.code(0);
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("\"event\":\"approval_granted\""),
        "{journal}"
    );
    assert!(journal.contains("(--yes)"), "{journal}");
    assert_eq!(api.seen().len(), 1);
}

#[test]
fn without_a_terminal_or_yes_an_approval_is_not_assumed() {
    let api = FakeApi::start();
    let (out, _d) = Test::new()
        .file("rb.yaml", APPROVAL_RUNBOOK)
        .args(&["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .run();
    out.code(1);
    assert!(api.seen().is_empty(), "nothing ran unapproved");
    assert!(
        out.stdout
            .contains("needs approval, and there was nobody to give it"),
        "{}",
        out.stdout
    );
}

#[test]
fn an_interrupt_lets_the_step_in_flight_finish_and_leaves_a_consistent_journal() {
    for (flag, signal) in [("-INT", "SIGINT"), ("-TERM", "SIGTERM")] {
        interrupted_by(flag, signal);
    }
}

fn interrupted_by(flag: &str, signal: &str) {
    use std::process::{Command, Stdio};
    let api = FakeApi::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("rb.yaml"),
        r#"
name: slow
inputs:
  api: { example: "http://127.0.0.1:1" }
steps:
  - { id: revoke, phase: revoke, action: http.request, with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke" } }
  - { id: wait, phase: audit, needs: [revoke], action: http.request, with: { url: "{{inputs.api}}/slow" } }
  - { id: after_wait, phase: replace, needs: [wait], action: http.request, with: { method: POST, url: "{{inputs.api}}/keys" } }
"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args(["run", "rb.yaml", "--var", &format!("api={}", api.url())])
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the slow step is in flight, then interrupt.
    let store = dir.path().join("incidents");
    let journal_of = || {
        std::fs::read_dir(&store)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(|e| std::fs::read_to_string(e.unwrap().path().join("journal.jsonl")).ok())
            .unwrap_or_default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !journal_of().contains("\"step\":\"wait\"") {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow step never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = Command::new("kill")
        .args([flag, &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let text = journal_of();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let interrupted = events
        .iter()
        .find(|e| e["event"] == "incident_interrupted")
        .expect("recorded");
    assert_eq!(interrupted["signal"], signal);
    assert_eq!(
        interrupted["by"]["user"],
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let wait_done = events
        .iter()
        .position(|e| e["event"] == "step_succeeded" && e["step"] == "wait");
    assert!(wait_done.is_some(), "the step in flight finished: {text}");
    assert_eq!(events.last().unwrap()["event"], "incident_finished");
    assert_eq!(events.last().unwrap()["outcome"], "interrupted");
    assert!(
        !text.contains("\"step\":\"after_wait\""),
        "nothing new started after the interrupt"
    );

    // And it resumes: what was left runs.
    let id = std::fs::read_dir(&store)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name();
    let out = Command::new(env!("CARGO_BIN_EXE_quench"))
        .args([
            "--store",
            store.to_str().unwrap(),
            "resume",
            id.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(journal_of().contains("\"step\":\"after_wait\""));
}

// ---------------------------------------------------------------- regressions

/// Issue 7: with no root certificate to load, building the HTTPS client
/// used to fall back to `Client::default()`, which panics. Now the step fails
/// with the reason, and a plain-`http://` step in the same incident still acts.
#[test]
fn issue_7_no_root_certificates_fails_the_https_step_with_a_reason_not_a_panic() {
    let api = FakeApi::start();
    let empty = tempfile::tempdir().unwrap();
    let no_certs = empty.path().join("none.pem");
    std::fs::write(&no_certs, "").unwrap();
    let (out, _d) = Test::new()
        .file(
            "rb.yaml",
            r#"
name: no-roots
inputs:
  api: { example: "http://127.0.0.1:1" }
steps:
  - { id: revoke, phase: revoke, action: http.request, with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke" } }
  - { id: notify, phase: notify, needs: [revoke], action: http.request, with: { method: POST, url: "https://127.0.0.1:9/notify" } }
"#,
        )
        .env("SSL_CERT_FILE", no_certs.to_str().unwrap())
        .env("SSL_CERT_DIR", empty.path().to_str().unwrap())
        .args(&["run", "rb.yaml", "--yes", "--var", &format!("api={}", api.url())])
        .run();
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    assert_ne!(out.code, 101, "{}", out.stderr);
    assert_eq!(api.seen().len(), 1, "the http:// step acted");
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    assert!(
        journal.contains("the http provider cannot act: failed to build the HTTPS client"),
        "{journal}"
    );
}

/// `docs/runbooks.md` lists every action as its declaration says. Run with
/// `QUENCH_UPDATE_DOCS=1` to write the list again after changing one.
#[test]
fn the_runbook_reference_lists_every_action_as_declared() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/runbooks.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let begin = text
        .find("<!-- actions:begin")
        .expect("an actions:begin marker");
    let begin = begin + text[begin..].find('\n').unwrap() + 1;
    let end = text
        .find("<!-- actions:end -->")
        .expect("an actions:end marker");
    let generated = format!("\n{}", quench::providers::reference::markdown());
    if std::env::var_os("QUENCH_UPDATE_DOCS").is_some() {
        let updated = format!("{}{generated}{}", &text[..begin], &text[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        text[begin..end] == generated,
        "docs/runbooks.md lists the actions as they were: run `QUENCH_UPDATE_DOCS=1 cargo test the_runbook_reference`"
    );
}
