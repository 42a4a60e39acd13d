//! `[[triggers]]`: which detection starts which runbook, with which inputs.
//! Deny by default: a detection no trigger matches starts nothing. Input
//! values are templates over the detection (`{{repository}}`,
//! `{{alert.number}}`, `{{access_key_id}}`…); a generic hook's inputs and
//! secrets are JSON pointers into its body.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::app::authz::glob;
use crate::config::Trigger;
use crate::runbook::Phase;

/// The first trigger of `source` whose filters all match, and its index.
pub fn matching<'a>(
    triggers: &'a [Trigger],
    source: &str,
    secret_type: Option<&str>,
    repository: Option<&str>,
) -> Option<(usize, &'a Trigger)> {
    triggers.iter().enumerate().find(|(_, t)| {
        let types_ok = match (&t.secret_types, secret_type) {
            (None, _) => true,
            (Some(types), Some(kind)) => types.iter().any(|k| k == kind),
            (Some(_), None) => false,
        };
        let repos_ok = match (&t.repos, repository) {
            (None, _) => true,
            (Some(globs), Some(repo)) => globs.iter().any(|g| glob(g, repo)),
            (Some(_), None) => false,
        };
        t.source == source && types_ok && repos_ok
    })
}

/// `template` with each `{{name}}` replaced by its value in `vars`.
pub fn render(template: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("`{template}` opens `{{{{` and never closes it"))?;
        let name = after[..close].trim();
        let value = vars.get(name).ok_or_else(|| {
            let known: Vec<&str> = vars.keys().map(String::as_str).collect();
            format!(
                "`{{{{{name}}}}}` is not a value of this detection (it has {})",
                known.join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The trigger's inputs as `K=V`, rendered over `vars`.
pub fn inputs(trigger: &Trigger, vars: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    trigger
        .inputs
        .iter()
        .map(|(k, t)| render(t, vars).map(|v| format!("{k}={v}")))
        .collect()
}

/// The value at a JSON pointer, as text: a string as it is, anything else
/// (number, boolean) as JSON.
pub fn pointer(body: &Value, pointer: &str) -> Option<String> {
    match body.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
        other => Some(other.to_string()),
    }
}

/// A generic hook's inputs and secrets: each a JSON pointer into the body
/// (`/key/id`), or a literal value when it does not start with `/`.
pub fn from_body(
    map: &BTreeMap<String, String>,
    body: &Value,
) -> Result<Vec<(String, String)>, String> {
    map.iter()
        .map(|(k, p)| {
            if !p.starts_with('/') {
                return Ok((k.clone(), p.clone()));
            }
            pointer(body, p)
                .map(|v| (k.clone(), v))
                .ok_or_else(|| format!("the body has no text at `{p}` (for `{k}`)"))
        })
        .collect()
}

/// The phases of `unattended`, or the first name that is not one.
pub fn phases(unattended: &[String]) -> Result<Vec<Phase>, String> {
    unattended
        .iter()
        .map(|name| {
            Phase::ALL
                .iter()
                .find(|p| p.name() == name)
                .copied()
                .ok_or_else(|| format!("`{name}` in `unattended` is not a phase"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trigger(source: &str, types: Option<&[&str]>, repos: Option<&[&str]>) -> Trigger {
        let list = |v: Option<&[&str]>| v.map(|v| v.iter().map(|s| s.to_string()).collect());
        Trigger {
            source: source.into(),
            secret_types: list(types),
            repos: list(repos),
            runbook: "rb".into(),
            inputs: BTreeMap::from([("repo".into(), "{{repository}}".into())]),
            secrets: BTreeMap::new(),
            unattended: Vec::new(),
            channel: None,
        }
    }

    #[test]
    fn the_first_trigger_whose_filters_match_wins() {
        let ts = [
            trigger("github", Some(&["slack_api_token"]), None),
            trigger("github", None, Some(&["acme/*"])),
            trigger("aws", None, None),
        ];
        let m = |kind, repo| matching(&ts, "github", Some(kind), Some(repo)).map(|(i, _)| i);
        assert_eq!(m("slack_api_token", "other/x"), Some(0));
        assert_eq!(m("github_personal_access_token", "acme/deploy"), Some(1));
        assert_eq!(m("github_personal_access_token", "other/x"), None);
        assert_eq!(matching(&ts, "aws", None, None).map(|(i, _)| i), Some(2));
        assert_eq!(matching(&ts, "generic:x", None, None).map(|(i, _)| i), None);
    }

    #[test]
    fn templates_read_the_detection_and_nothing_else() {
        let vars = BTreeMap::from([
            ("repository".to_string(), "acme/deploy".to_string()),
            ("alert.number".to_string(), "7".to_string()),
        ]);
        assert_eq!(
            render("{{repository}}#{{ alert.number }}", &vars).unwrap(),
            "acme/deploy#7"
        );
        let err = render("{{alert.secret}}", &vars).unwrap_err();
        assert!(err.contains("`{{alert.secret}}` is not a value"), "{err}");
        assert!(render("{{repository", &vars).is_err());
    }

    #[test]
    fn a_generic_body_is_read_by_pointer() {
        let body = serde_json::json!({"key": {"id": "key-1", "value": "s3cr3t-value", "n": 3}});
        let map = BTreeMap::from([
            ("id".to_string(), "/key/id".to_string()),
            ("n".to_string(), "/key/n".to_string()),
            ("api".to_string(), "https://keys.internal".to_string()),
        ]);
        let got = from_body(&map, &body).unwrap();
        assert!(got.contains(&("id".into(), "key-1".into())));
        assert!(got.contains(&("n".into(), "3".into())));
        assert!(got.contains(&("api".into(), "https://keys.internal".into())));
        let missing = BTreeMap::from([("id".to_string(), "/nope".to_string())]);
        assert!(from_body(&missing, &body).is_err());
    }
}
