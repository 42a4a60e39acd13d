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
    assert_eq!(checked, 8);
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
