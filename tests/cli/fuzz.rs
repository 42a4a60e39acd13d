//! Hostile input: the runbook loader, the scenario loader and the journal
//! reader take anything and answer with a result or a located error — never
//! a panic. The suite runs a bounded number of cases; `scripts/fuzz` runs
//! many more (`PROPTEST_CASES`).

use proptest::prelude::*;
use quench::journal;
use quench::runbook::{self, SourceFile};
use quench::scenario::Scenario;
use quench::secret::{Redactor, Secret};

const SEEDS: &[&str] = &[
    include_str!("../../runbooks/aws-access-key-compromise.yaml"),
    include_str!("../../runbooks/github-token-compromise.yaml"),
    include_str!("../../runbooks/api-key-compromise.yaml"),
];
const SCENARIOS: &[&str] = &[
    include_str!("../../runbooks/scenarios/aws-throttled.yaml"),
    include_str!("../../runbooks/scenarios/github-outage.yaml"),
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1000)
}

/// A seed with a few bytes replaced, inserted or removed: mostly-valid YAML
/// reaches far deeper into validation than random bytes.
fn mutated(seeds: &'static [&'static str]) -> impl Strategy<Value = String> {
    (
        0..seeds.len(),
        proptest::collection::vec((any::<usize>(), 0u8..3, any::<char>()), 1..6),
    )
        .prop_map(move |(i, edits)| {
            let mut chars: Vec<char> = seeds[i].chars().collect();
            for (at, op, c) in edits {
                if chars.is_empty() {
                    break;
                }
                let at = at % chars.len();
                match op {
                    0 => chars[at] = c,
                    1 => chars.insert(at, c),
                    _ => {
                        chars.remove(at);
                    }
                }
            }
            chars.into_iter().collect()
        })
}

fn check_runbook(text: &str) {
    let lines = text.lines().count() as u64 + 1;
    match runbook::parse(SourceFile::new("fuzz.yaml", text)) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                let _ = w.render();
            }
        }
        Err(diags) => {
            assert!(!diags.0.is_empty());
            for d in &diags.0 {
                assert!(d.pos.line >= 1 && d.pos.line <= lines + 1, "{d:?}");
                let _ = d.render();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn runbook_loader_survives_mutations(text in mutated(SEEDS)) {
        check_runbook(&text);
    }

    #[test]
    fn runbook_loader_survives_noise(text in "[a-z:{}\\[\\],#&*!|>'\"\\- \n\t0-9.]{0,400}") {
        check_runbook(&text);
    }

    #[test]
    fn scenario_loader_survives_mutations(text in mutated(SCENARIOS)) {
        if let Err(d) = Scenario::parse(SourceFile::new("s.yaml", text.as_str())) {
            for d in &d.0 {
                let _ = d.render();
            }
        }
    }

    #[test]
    fn journal_reader_survives_damage(text in mutated(JOURNAL)) {
        // Damage is reported (with its line) or the text still parses.
        match journal::parse("journal.jsonl", &text) {
            Ok(records) => {
                for pair in records.windows(2) {
                    prop_assert_eq!(pair[1].seq, pair[0].seq + 1);
                }
            }
            Err(e) => prop_assert!(e.to_string().contains("journal.jsonl")),
        }
    }

    #[test]
    fn slack_requests_never_crash_the_parser_or_the_verifier(
        text in ".{0,200}",
        body in proptest::collection::vec(any::<u8>(), 0..300),
        timestamp in proptest::option::of("[0-9 -]{0,14}"),
        signature in proptest::option::of("(v0=)?[0-9a-f]{0,70}"),
    ) {
        use quench::server::{commands, verify};
        let _ = commands::parse(&text);
        let _ = commands::secrets_in(&text);
        let secret = Secret::new("signing", "8f742231b10e8888abcd99yyyzzz85a5");
        let now = chrono::Utc::now().timestamp();
        // Random signatures never verify; the real one over the same bytes does.
        prop_assert!(verify::verify(&secret, timestamp.as_deref(), signature.as_deref(), &body, now).is_err());
        let ts = now.to_string();
        let good = verify::sign("8f742231b10e8888abcd99yyyzzz85a5", &ts, &body);
        prop_assert!(verify::verify(&secret, Some(&ts), Some(&good), &body, now).is_ok());
    }

    /// A secret, in any encoding, at any position, cut anywhere: no piece
    /// of it long enough to mean something survives.
    #[test]
    fn no_form_of_a_secret_survives_redaction(
        secret in "[ -~]{8,40}",
        before in "[äöü ]{0,40}",
        after in "[äöü ]{0,40}",
        form in any::<prop::sample::Index>(),
        cut in 0usize..400,
    ) {
        let forms = crate::attack::encodings(&secret);
        let shown = form.get(&forms);
        let r = Redactor::new();
        r.add(&Secret::new("s", secret.as_str()));
        let text = format!("{before}{shown}{after}");
        let whole = r.redact(&text);
        let excerpt = r.excerpt(&text, cut);
        for out in [whole, excerpt] {
            let chars: Vec<char> = shown.chars().collect();
            for w in chars.windows(10) {
                let piece: String = w.iter().collect();
                prop_assert!(!out.contains(&piece), "{piece:?} in {out:?}");
            }
        }
    }
}

const JOURNAL: &[&str] = &[
    r#"{"v":1,"seq":1,"ts":"2026-11-24T21:16:54.129Z","event":"incident_started","incident":"INC-20261124-211654-0020","runbook":"r","title":"t","runbook_path":"r.yaml","runbook_sha256":"00","mode":"live","detected_at":"2026-11-24T21:16:54.129Z","started_at":"2026-11-24T21:16:54.129Z","slo_ms":300000,"inputs":{},"secrets":[],"by":{"user":"u","host":"h"},"steps":[{"id":"a","title":"a","phase":"revoke","action":"http.request","needs":[],"deferred":false}]}
{"v":1,"seq":2,"ts":"2026-11-24T21:16:54.130Z","event":"step_started","step":"a","attempt":1}
{"v":1,"seq":3,"ts":"2026-11-24T21:16:54.279Z","event":"attempt_failed","step":"a","attempt":1,"class":"transient","error":"503","retry_in_ms":200}
{"v":1,"seq":4,"ts":"2026-11-24T21:16:54.479Z","event":"step_succeeded","step":"a","attempt":2,"outputs":{"status":200}}
{"v":1,"seq":5,"ts":"2026-11-24T21:16:54.480Z","event":"incident_finished","outcome":"succeeded","revoked_at":"2026-11-24T21:16:54.479Z","time_to_revoke_ms":350,"slo_met":true}
"#,
];
