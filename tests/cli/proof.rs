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

/// The shipped runbooks have no verify step yet: their documents say so.
#[test]
fn a_runbook_without_a_verify_step_says_revocation_is_unproven() {
    let (out, _d) = Test::new()
        .args(&["rehearse", "aws-access-key-compromise"])
        .run();
    out.code(0);
    assert!(
        out.stdout
            .contains("revoked 150ms after detection (SLO 5m 00s: met); revocation unproven: the runbook has no verify step"),
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
