//! The slash command's text, and what in it looks like a secret.
//!
//! `run|rehearse RUNBOOK key=value ...`, `drill RUNBOOK [--pace Nx]
//! key=value ...`, `help`, `list`, `done INCIDENT STEP answer...` for a
//! manual task left open, and `inject INCIDENT NAME` for a drill's
//! facilitator.

use std::sync::LazyLock;

use regex::Regex;

use super::authz::Action;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Help,
    List,
    Start {
        action: Action,
        runbook: String,
        pairs: Vec<(String, String)>,
        /// A drill's pace (`--pace Nx`; real time without it).
        pace: Option<u32>,
    },
    /// A drill's facilitator fires one of its scenario's injects.
    Inject {
        incident: String,
        name: String,
    },
    Done {
        incident: String,
        step: String,
        answer: String,
    },
    /// Not a command quench knows; the reply says how to use it.
    Unknown(String),
}

pub fn parse(text: &str) -> Parsed {
    let words: Vec<&str> = text.split_whitespace().collect();
    match words.as_slice() {
        [] | ["help", ..] => Parsed::Help,
        ["list", ..] => Parsed::List,
        [verb @ ("run" | "rehearse" | "drill"), runbook, rest @ ..] => start(verb, runbook, rest),
        ["run" | "rehearse" | "drill"] => {
            Parsed::Unknown("name a runbook: `run RUNBOOK key=value ...`".into())
        }
        ["inject", incident, name] => Parsed::Inject {
            incident: incident.to_string(),
            name: name.to_string(),
        },
        ["inject", ..] => Parsed::Unknown("`inject INCIDENT NAME`".into()),
        ["done", incident, step, answer @ ..] if !answer.is_empty() => Parsed::Done {
            incident: incident.to_string(),
            step: step.to_string(),
            answer: answer.join(" "),
        },
        ["done", ..] => Parsed::Unknown("`done INCIDENT STEP answer...`".into()),
        [other, ..] => Parsed::Unknown(format!("`{}` is not a command", shown(other))),
    }
}

/// A word as a reply may echo it: not at all if it looks like a secret.
fn shown(word: &str) -> &str {
    if looks_secret(word) {
        "[REDACTED]"
    } else {
        word
    }
}

/// `run|rehearse|drill RUNBOOK [--pace Nx] key=value ...`.
fn start(verb: &str, runbook: &str, rest: &[&str]) -> Parsed {
    let mut pairs = Vec::new();
    let mut pace = None;
    let mut words = rest.iter();
    while let Some(w) = words.next() {
        if *w == "--pace" && verb == "drill" {
            match words.next().map(|p| crate::scenario::parse_pace(p)) {
                Some(Ok(p)) => pace = Some(p),
                Some(Err(why)) => return Parsed::Unknown(why),
                None => return Parsed::Unknown("`--pace` takes `real` or `Nx`".into()),
            }
            continue;
        }
        match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => pairs.push((k.to_string(), v.to_string())),
            _ => {
                return Parsed::Unknown(format!("`{}` is not `key=value`", shown(w)));
            }
        }
    }
    let action = match verb {
        "run" => Action::Run,
        "drill" => Action::Drill,
        _ => Action::Rehearse,
    };
    Parsed::Start {
        action,
        runbook: runbook.to_string(),
        pairs,
        pace,
    }
}

pub fn help(command: &str) -> String {
    format!(
        "*quench* responds to leaked credentials.\n\
         • `{command} run RUNBOOK key=value ...` — respond to a live incident\n\
         • `{command} rehearse RUNBOOK [key=value ...]` — a tabletop run against simulated providers\n\
         • `{command} drill RUNBOOK [--pace Nx] [key=value ...]` — a drill the channel plays: simulated providers, real people\n\
         • `{command} inject INCIDENT NAME` — a drill's facilitator fires one of its injects\n\
         • `{command} list` — the runbooks\n\
         • `{command} done INCIDENT STEP answer...` — complete a manual task left open\n\
         • `{command} help` — this\n\
         Never paste a secret here: it would be leaked to Slack too. Only a runbook's \
         declared secret (the leaked token itself) is taken, and it is redacted everywhere."
    )
}

/// Token formats that are secrets wherever they appear: what a command
/// carrying one has leaked to Slack.
static FORMATS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    [
        ("Slack token", r"xox[abposre]-[0-9A-Za-z-]{10,}"),
        ("Slack app token", r"xapp-[0-9]-[0-9A-Za-z-]{10,}"),
        (
            "Slack webhook URL",
            r"hooks\.slack\.com/(?:services|workflows)/[0-9A-Za-z/_-]{20,}",
        ),
        ("GitHub token", r"gh[pousr]_[0-9A-Za-z]{30,}"),
        ("GitHub token", r"github_pat_[0-9A-Za-z_]{22,}"),
        ("GitLab token", r"glpat-[0-9A-Za-z_-]{20,}"),
        ("Stripe key", r"[sr]k_live_[0-9A-Za-z]{20,}"),
        ("Google API key", r"AIza[0-9A-Za-z_-]{35}"),
        ("OpenAI key", r"sk-(?:proj-)?[0-9A-Za-z_-]{32,}"),
        ("Vault token", r"hv[sb]\.[0-9A-Za-z_-]{20,}"),
        ("npm token", r"npm_[0-9A-Za-z]{36}"),
        (
            "JSON web token",
            r"eyJ[0-9A-Za-z_-]{10,}\.eyJ[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]{10,}",
        ),
        (
            "AWS secret access key",
            r"(?i)aws_?secret_?(?:access_?)?key\W{0,3}[0-9A-Za-z/+]{40}",
        ),
        ("private key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    ]
    .into_iter()
    .map(|(kind, re)| (kind, Regex::new(re).expect("token formats compile")))
    .collect()
});

/// A value in the text that looks like a secret, and what kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: &'static str,
    pub value: String,
}

/// Every value in `text` that looks like a known kind of secret.
pub fn secrets_in(text: &str) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for (kind, re) in FORMATS.iter() {
        for m in re.find_iter(text) {
            if !found.iter().any(|f| f.value == m.as_str()) {
                found.push(Found {
                    kind,
                    value: m.as_str().to_string(),
                });
            }
        }
    }
    found
}

pub fn looks_secret(text: &str) -> bool {
    !secrets_in(text).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse(""), Parsed::Help);
        assert_eq!(parse("  list "), Parsed::List);
        assert_eq!(
            parse(
                "rehearse aws-access-key-compromise access_key_id=AKIAIOSFODNN7EXAMPLE iam_user=ci-bot"
            ),
            Parsed::Start {
                action: Action::Rehearse,
                runbook: "aws-access-key-compromise".into(),
                pairs: vec![
                    ("access_key_id".into(), "AKIAIOSFODNN7EXAMPLE".into()),
                    ("iam_user".into(), "ci-bot".into())
                ],
                pace: None,
            }
        );
        assert_eq!(
            parse("drill aws-access-key-compromise --pace 20x iam_user=ci-bot"),
            Parsed::Start {
                action: Action::Drill,
                runbook: "aws-access-key-compromise".into(),
                pairs: vec![("iam_user".into(), "ci-bot".into())],
                pace: Some(20),
            }
        );
        assert!(matches!(parse("drill rb --pace fast"), Parsed::Unknown(_)));
        assert!(matches!(parse("run rb --pace 2x"), Parsed::Unknown(_)));
        assert_eq!(
            parse("inject INC-1 cloudtrail-down"),
            Parsed::Inject {
                incident: "INC-1".into(),
                name: "cloudtrail-down".into()
            }
        );
        assert!(matches!(parse("run"), Parsed::Unknown(_)));
        assert!(matches!(parse("run rb oops"), Parsed::Unknown(_)));
        assert_eq!(
            parse("done INC-1 review it was a gist"),
            Parsed::Done {
                incident: "INC-1".into(),
                step: "review".into(),
                answer: "it was a gist".into()
            }
        );
    }

    #[test]
    fn known_token_formats_are_found_and_ids_are_not() {
        let text = "run slack-token-compromise leaked_token=xoxb-1234567890-abcdefghijkl \
                    access_key_id=AKIAIOSFODNN7EXAMPLE ghp_0123456789abcdefghijklmnopqrstuvwxyz";
        let found = secrets_in(text);
        let kinds: Vec<_> = found.iter().map(|f| f.kind).collect();
        assert_eq!(kinds, ["Slack token", "GitHub token"]);
        assert_eq!(found[0].value, "xoxb-1234567890-abcdefghijkl");
        assert!(secrets_in("rehearse aws-access-key-compromise iam_user=ci-bot").is_empty());
    }

    #[test]
    fn an_unknown_word_that_is_a_secret_is_not_echoed() {
        let Parsed::Unknown(why) = parse("xoxp-1234567890-abcdefghijkl") else {
            panic!()
        };
        assert!(!why.contains("xoxp"), "{why}");
    }
}
