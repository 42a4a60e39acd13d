//! A revocation that is proven: the document and `incident.json` tell the
//! revoke call's answer from the credential proven dead (a verify step saw
//! the provider refuse it), and say plainly why when it was not.

use serde_json::Value;

use crate::support::{Output, Test};

const ID: &str = "INC-20261124-211650-0b1d";

/// A journal where `revoke` is answered 1.2 s after detection and the verify
/// step `check` ends with `check_end` (its records, then the incident's end).
fn journal(check_end: &str) -> String {
    let started = r#"{"v":1,"seq":1,"ts":"2026-11-24T21:16:50.000Z","event":"incident_started","incident":"INC-20261124-211650-0b1d","runbook":"r","title":"A leaked key","runbook_path":"r.yaml","runbook_sha256":"00","mode":"live","detected_at":"2026-11-24T21:16:50.000Z","started_at":"2026-11-24T21:16:50.000Z","slo_ms":300000,"inputs":{},"secrets":[],"by":{"user":"ana","host":"laptop"},"steps":[{"id":"revoke","title":"Revoke the key","phase":"revoke","action":"http.request","needs":[],"deferred":false},{"id":"check","title":"Check it is refused","phase":"update","action":"aws.verify_revoked","needs":["revoke"],"deferred":false,"proves_dead":true}]}
{"v":1,"seq":2,"ts":"2026-11-24T21:16:50.100Z","event":"step_started","step":"revoke","attempt":1}
{"v":1,"seq":3,"ts":"2026-11-24T21:16:51.200Z","event":"step_succeeded","step":"revoke","attempt":1}
{"v":1,"seq":4,"ts":"2026-11-24T21:16:51.300Z","event":"step_started","step":"check","attempt":1}
"#;
    format!("{started}{check_end}")
}

/// `report ID` of `journal`, in `format`.
fn report(journal: &str, format: &str) -> Output {
    let (out, _d) = Test::new()
        .file(&format!("incidents/{ID}/journal.jsonl"), journal)
        .args(&["--store", "incidents", "report", ID, "--format", format])
        .run();
    out.code(0);
    out
}

fn json(journal: &str) -> Value {
    serde_json::from_str(&report(journal, "json").stdout).unwrap()
}

#[test]
fn a_proven_revocation_shows_the_revoke_call_the_proof_and_the_deadline() {
    let j = journal(
        r#"{"v":1,"seq":5,"ts":"2026-11-24T21:16:55.500Z","event":"step_succeeded","step":"check","attempt":1}
{"v":1,"seq":6,"ts":"2026-11-24T21:16:55.500Z","event":"credential_proven_dead","step":"check","at":"2026-11-24T21:16:55.500Z"}
{"v":1,"seq":7,"ts":"2026-11-24T21:16:55.600Z","event":"incident_finished","outcome":"succeeded","revoked_at":"2026-11-24T21:16:51.200Z","time_to_revoke_ms":1200,"slo_met":true,"credential_dead_at":"2026-11-24T21:16:55.500Z","time_to_dead_ms":5500}
"#,
    );
    let md = report(&j, "md").stdout;
    for line in [
        "| Revoke call answered | 2026-11-24T21:16:51.200Z | 1.2s |",
        "| Proven dead | 2026-11-24T21:16:55.500Z | 5.5s |",
        "| SLO deadline | 2026-11-24T21:21:50.000Z | 5m 00s |",
        "Proven dead **5.5s** after detection: `check` saw the provider refuse the credential.",
        "It was revoked **1.2s** after detection, inside the 5m 00s SLO, and proven dead **5.5s** after detection",
        "to its proven death at 2026-11-24T21:16:55.500Z: **5.5s**",
    ] {
        assert!(md.contains(line), "no `{line}` in:\n{md}");
    }
    assert!(!md.contains("unproven"), "{md}");
    let html = report(&j, "html").stdout;
    assert!(
        html.contains(r#"data-marker="proven""#) && html.contains(">proven dead 5.5s<"),
        "{html}"
    );
    let j = json(&j);
    assert_eq!(j["credential_dead_at"], "2026-11-24T21:16:55.500Z");
    assert_eq!(j["time_to_dead_ms"], 5500);
    assert_eq!(j["revoked_at"], "2026-11-24T21:16:51.200Z");
    assert_eq!(j["proof"]["status"], "proven");
    assert_eq!(j["proof"]["step"], "check");
}

/// The provider still took the key after every attempt: the incident failed,
/// and the document says the credential must be treated as alive.
#[test]
fn a_failed_verify_step_reads_as_not_contained() {
    let j = journal(
        r#"{"v":1,"seq":5,"ts":"2026-11-24T21:16:52.300Z","event":"step_failed","step":"check","attempt":3,"class":"permanent","error":"AWS still accepts the key"}
{"v":1,"seq":6,"ts":"2026-11-24T21:16:52.400Z","event":"incident_finished","outcome":"failed","revoked_at":"2026-11-24T21:16:51.200Z","time_to_revoke_ms":1200,"slo_met":true}
"#,
    );
    let md = report(&j, "md").stdout;
    for line in [
        "| Status | **failed** |",
        "| Proven dead | **unproven** | — |",
        "**Revocation is unproven.** Verify step `check` failed: the provider still accepted the credential, or could not be asked (AWS still accepts the key). Treat the credential as alive: the incident is not contained.",
        "the revoke call's answer at 2026-11-24T21:16:51.200Z: **1.2s** at least — nothing proved it dead, so it may work still.",
    ] {
        assert!(md.contains(line), "no `{line}` in:\n{md}");
    }
    let j = json(&j);
    assert_eq!(j["credential_dead_at"], Value::Null);
    assert_eq!(j["time_to_dead_ms"], Value::Null);
    assert_eq!(j["proof"]["status"], "verify_failed");
}

/// A verify step that did not run says why: here, the secret it needs was
/// not given.
#[test]
fn a_skipped_verify_step_says_why_revocation_is_unproven() {
    let j = journal(
        r#"{"v":1,"seq":5,"ts":"2026-11-24T21:16:51.300Z","event":"step_skipped","step":"check","reason":"the optional secret `leaked_secret_access_key` was not given"}
{"v":1,"seq":6,"ts":"2026-11-24T21:16:51.400Z","event":"incident_finished","outcome":"succeeded","revoked_at":"2026-11-24T21:16:51.200Z","time_to_revoke_ms":1200,"slo_met":true}
"#,
    );
    let md = report(&j, "md").stdout;
    let line = "**Revocation is unproven.** Verify step `check` was skipped (the optional secret `leaked_secret_access_key` was not given): nothing checked that the provider refuses the credential now, so the revoke call's answer is all there is.";
    assert!(md.contains(line), "no `{line}` in:\n{md}");
    assert!(
        md.contains("- Revocation is unproven. Verify step `check` was skipped"),
        "the lessons list it too:\n{md}"
    );
    assert_eq!(json(&j)["proof"]["status"], "verify_skipped");
}

/// A runbook with no verify step: its document says nothing proved the
/// revocation.
#[test]
fn a_runbook_without_a_verify_step_says_revocation_is_unproven() {
    let (out, _d) = Test::new()
        .file("rb.yaml", TELLS_THE_LEAK)
        .args(&["rehearse", "rb.yaml"])
        .run();
    out.code(0);
    assert!(
        out.stdout.contains(
            "after detection (SLO 5m 00s: met); revocation unproven: the runbook has no verify step"
        ),
        "{}",
        out.stdout
    );
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(
        md.contains("**Revocation is unproven.** The runbook has no verify step: nothing checked that the provider refuses the credential now"),
        "{md}"
    );
    let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
    assert!(!journal.contains("credential_proven_dead"));
    let j: Value = serde_json::from_str(
        &std::fs::read_to_string(out.incident().join("incident.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(j["credential_dead_at"], Value::Null);
    assert_eq!(j["proof"]["status"], "no_verify_step");
}

// ---------------------------------------------------------------- --leaked-at

const DETECTED_AT: &str = "2026-11-22T23:04:00Z";
const LEAKED_AT: &str = "2026-11-20T14:02:00Z";

/// A runbook whose notice says when the credential leaked, and how long ago
/// as an audit step's `since` would take it.
const TELLS_THE_LEAK: &str = r#"
name: leak
steps:
  - { id: revoke, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAIOSFODNN7EXAMPLE } }
  - { id: tell, phase: notify, needs: [revoke], action: slack.post_message, with: { channel: c, text: "leaked {{incident.leaked_at}}, {{incident.leaked_ago}} ago" } }
"#;

fn read_json(out: &Output, file: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.incident().join(file)).unwrap()).unwrap()
}

/// Each record of the run's journal.
fn records(out: &Output) -> Vec<Value> {
    std::fs::read_to_string(out.incident().join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The rendered parameters of `step`'s first attempt.
fn params(out: &Output, step: &str) -> Value {
    records(out)
        .into_iter()
        .find(|r| r["event"] == "step_started" && r["step"] == step)
        .unwrap()["params"]
        .clone()
}

/// That `ago` (`90d 2h 5m`), counted back from between `before` and now,
/// reaches `leak`, with no more than the few minutes it keeps to spare.
fn assert_reaches(ago: &str, leak: &str, before: chrono::DateTime<chrono::Utc>) {
    let leak = chrono::DateTime::parse_from_rfc3339(leak).unwrap();
    let ago = chrono::Duration::from_std(quench::time::parse_duration(ago).unwrap()).unwrap();
    let (earliest, latest) = (before - ago, chrono::Utc::now() - ago);
    assert!(latest <= leak, "{latest} is after the leak {leak}");
    assert!(
        earliest >= leak - chrono::Duration::minutes(7),
        "{earliest} reaches far before the leak {leak}"
    );
}

/// `--leaked-at` reaches the templates, the journal's first record, and
/// the document; the audit window starts there.
#[test]
fn leaked_at_reaches_the_templates_the_journal_and_the_document() {
    let before = chrono::Utc::now();
    let (out, _d) = Test::new()
        .file("rb.yaml", TELLS_THE_LEAK)
        .args(&[
            "rehearse",
            "rb.yaml",
            "--detected-at",
            DETECTED_AT,
            "--leaked-at",
            LEAKED_AT,
        ])
        .run();
    // Detected two weeks ago: the SLO was missed long before.
    out.code(3);
    let text = params(&out, "tell")["text"].as_str().unwrap().to_string();
    let ago = text
        .strip_prefix("leaked 2026-11-20T14:02:00.000Z, ")
        .and_then(|t| t.strip_suffix(" ago"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_reaches(ago, LEAKED_AT, before);
    assert_eq!(records(&out)[0]["leaked_at"], "2026-11-20T14:02:00.000Z");

    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    for line in [
        "| Leaked | 2026-11-20T14:02:00.000Z |",
        "It leaked at 2026-11-20T14:02:00.000Z (`--leaked-at`): the audit window starts there.",
        "From the leak at 2026-11-20T14:02:00.000Z to the revoke call's answer at",
    ] {
        assert!(md.contains(line), "no `{line}` in:\n{md}");
    }
    let j = read_json(&out, "incident.json");
    assert_eq!(j["leaked_at"], "2026-11-20T14:02:00.000Z");
    assert_eq!(j["audit_since"], "2026-11-20T14:02:00.000Z");
}

/// Without `--leaked-at`, the audit window starts 90 days before detection,
/// and the document says when it leaked was not given.
#[test]
fn without_leaked_at_the_audit_window_starts_90_days_before_detection() {
    let before = chrono::Utc::now();
    let (out, _d) = Test::new()
        .file("rb.yaml", TELLS_THE_LEAK)
        .args(&["rehearse", "rb.yaml", "--detected-at", DETECTED_AT])
        .run();
    out.code(3);
    let text = params(&out, "tell")["text"].as_str().unwrap().to_string();
    let ago = text
        .strip_prefix("leaked 2026-08-24T23:04:00.000Z, ")
        .and_then(|t| t.strip_suffix(" ago"))
        .unwrap_or_else(|| panic!("{text}"));
    assert_reaches(ago, "2026-08-24T23:04:00Z", before);
    assert!(records(&out)[0].get("leaked_at").is_none());
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    let line = "When it leaked was not given (`--leaked-at`): the audit window starts 90 days before detection, at 2026-08-24T23:04:00.000Z.";
    assert!(md.contains(line), "no `{line}` in:\n{md}");
    assert!(!md.contains("| Leaked |"), "{md}");
    let j = read_json(&out, "incident.json");
    assert_eq!(j["leaked_at"], Value::Null);
    assert_eq!(j["audit_since"], "2026-08-24T23:04:00.000Z");
}

#[test]
fn a_leak_after_its_detection_or_in_the_future_is_refused() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--detected-at", LEAKED_AT, "--leaked-at", DETECTED_AT],
            "`--leaked-at 2026-11-22T23:04:00Z` is after `--detected-at 2026-11-20T14:02:00.000Z`: a leak is detected after it happens",
        ),
        (
            &["--leaked-at", "2999-01-01T00:00:00Z"],
            "`--leaked-at 2999-01-01T00:00:00Z` is in the future",
        ),
        (
            &["--leaked-at", "last tuesday"],
            "`--leaked-at last tuesday` is not an RFC 3339 time",
        ),
    ];
    for (args, message) in cases {
        let mut all = vec!["rehearse", "aws-access-key-compromise"];
        all.extend(args);
        let (out, _d) = Test::new().args(&all).run();
        out.code(2);
        assert!(out.stderr.contains(message), "{}", out.stderr);
        assert!(!out.dir.join("incidents").exists(), "nothing started");
    }
}

/// The shipped audits search from the leak; the leaked token reaches no
/// file, no output.
#[test]
fn the_shipped_audit_searches_from_the_leak_and_no_secret_is_written() {
    let token = "ghp_LeakedTokenForTheAuditWindow000001";
    let before = chrono::Utc::now();
    let (out, _d) = Test::new()
        .env("LEAKED", token)
        .args(&[
            "rehearse",
            "github-token-compromise",
            "--secret",
            "leaked_token=env:LEAKED",
            "--detected-at",
            DETECTED_AT,
            "--leaked-at",
            LEAKED_AT,
        ])
        .run();
    out.code(3);
    let since = params(&out, "audit_log")["since"]
        .as_str()
        .unwrap()
        .to_string();
    assert_reaches(&since, LEAKED_AT, before);
    for (path, text) in out.artifacts() {
        assert!(!text.contains(token), "{} holds the token", path.display());
    }
    assert!(!out.stdout.contains(token) && !out.stderr.contains(token));
}

// ---------------------------------------------------------------- optional secrets

/// Revoke a key, then check the API refuses it, with the leaked key itself:
/// a secret the responder may not have.
const CHECKS_WITH_THE_LEAKED_KEY: &str = r#"
name: optional
inputs: { api: {} }
secrets:
  leaked_key: { description: "the leaked key itself, if you have it", optional: true }
steps:
  - { id: revoke, phase: revoke, action: http.request, with: { method: POST, url: "{{inputs.api}}/keys/key-0001/revoke" } }
  - id: check
    phase: update
    needs: [revoke]
    action: http.request
    with:
      url: "{{inputs.api}}/whoami"
      headers: { Authorization: "Bearer {{secrets.leaked_key}}" }
      expect_status: [401]
"#;

/// A run without an optional secret is not refused: the step that reads it
/// is skipped, saying so. With it, the step uses it, and writes it nowhere.
#[test]
fn a_step_that_reads_an_optional_secret_not_given_is_skipped() {
    let api = crate::support::fake_api::FakeApi::start();
    let var = format!("api={}", api.url());
    let (out, _d) = Test::new()
        .file("rb.yaml", CHECKS_WITH_THE_LEAKED_KEY)
        .args(&["run", "rb.yaml", "--var", &var])
        .run();
    out.code(0);
    let skipped = records(&out)
        .into_iter()
        .find(|r| r["event"] == "step_skipped")
        .unwrap();
    assert_eq!(skipped["step"], "check");
    assert_eq!(
        skipped["reason"],
        "the optional secret `leaked_key` was not given"
    );
    assert!(!api.seen().iter().any(|s| s.path == "/whoami"));

    let leaked = "lk_live_TheLeakedKeyItself00000001";
    let (out, _d) = Test::new()
        .file("rb.yaml", CHECKS_WITH_THE_LEAKED_KEY)
        .env("LEAKED", leaked)
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &var,
            "--secret",
            "leaked_key=env:LEAKED",
        ])
        .run();
    out.code(0);
    let asked = api
        .seen()
        .into_iter()
        .find(|s| s.path == "/whoami")
        .unwrap();
    assert_eq!(asked.headers["authorization"], format!("Bearer {leaked}"));
    for (path, text) in out.artifacts() {
        assert!(!text.contains(leaked), "{} holds the key", path.display());
    }
    assert!(!out.stdout.contains(leaked) && !out.stderr.contains(leaked));
}
