//! Who may do what from Slack or a terminal: `[[chatops.allow]]` rules in
//! `quench.toml`.
//! Deny by default; a request is allowed when any rule allows it, and a
//! rule allows it when every field it lists matches (an omitted field
//! matches anything).

use crate::config::AllowRule;

/// What a Slack user asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Run,
    Rehearse,
    /// Start a drill (`drill`).
    Drill,
    /// Fire a drill's inject by hand (`inject`).
    Facilitate,
    Approve,
    /// Complete a manual task left open (`done`).
    Answer,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Rehearse => "rehearse",
            Action::Drill => "drill",
            Action::Facilitate => "facilitate",
            Action::Approve => "approve",
            Action::Answer => "answer",
        }
    }
}

/// One request to authorize. `runbook: None` is an approval that belongs
/// to no runbook (`slack.request_approval`): only rules that name no
/// runbooks can allow it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub action: Action,
    pub user: &'a str,
    pub channel: &'a str,
    pub runbook: Option<&'a str>,
}

/// The decision and why, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the rule at this index (0-based, in file order).
    Allowed {
        rule: usize,
    },
    Denied,
}

pub fn decide(rules: &[AllowRule], req: Request<'_>) -> Decision {
    rules
        .iter()
        .position(|r| allows(r, req))
        .map_or(Decision::Denied, |rule| Decision::Allowed { rule })
}

/// The first rule that names this user in this channel, whatever it
/// allows: who may see which runbooks there are (`list`).
pub fn any_rule(rules: &[AllowRule], user: &str, channel: &str) -> Option<usize> {
    rules
        .iter()
        .position(|r| listed(&r.users, user) && listed(&r.channels, channel))
}

/// A rule's field lists `value`, or is omitted.
fn listed(field: &Option<Vec<String>>, value: &str) -> bool {
    field
        .as_ref()
        .is_none_or(|items| items.iter().any(|i| i == value))
}

fn allows(rule: &AllowRule, req: Request<'_>) -> bool {
    let runbook_ok = match (&rule.runbooks, req.runbook) {
        (None, _) => true,
        (Some(globs), Some(name)) => globs.iter().any(|g| glob(g, name)),
        (Some(_), None) => false,
    };
    runbook_ok
        && listed(&rule.users, req.user)
        && listed(&rule.channels, req.channel)
        && listed(&rule.actions, req.action.name())
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    if !name.ends_with(last) {
        return false;
    }
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(runbooks: &[&str], users: &[&str], channels: &[&str], actions: &[&str]) -> AllowRule {
        let list = |v: &[&str]| (!v.is_empty()).then(|| v.iter().map(|s| s.to_string()).collect());
        AllowRule {
            runbooks: list(runbooks),
            users: list(users),
            channels: list(channels),
            actions: list(actions),
        }
    }

    fn req<'a>(action: Action, user: &'a str, channel: &'a str, runbook: &'a str) -> Request<'a> {
        Request {
            action,
            user,
            channel,
            runbook: Some(runbook),
        }
    }

    #[test]
    fn nothing_is_allowed_without_rules() {
        assert_eq!(
            decide(
                &[],
                req(Action::Rehearse, "U1", "C1", "aws-access-key-compromise")
            ),
            Decision::Denied
        );
    }

    #[test]
    fn every_listed_field_must_match_and_omitted_fields_match_anything() {
        let rules = [
            rule(&["aws-*"], &["U1"], &[], &["run", "rehearse"]),
            rule(&[], &[], &["C9"], &["rehearse"]),
        ];
        let (aws, github) = ("aws-access-key-compromise", "github-token-compromise");
        let allowed = |rule| Decision::Allowed { rule };
        for (action, user, channel, runbook, decision) in [
            (Action::Run, "U1", "C1", aws, allowed(0)),
            (Action::Run, "U1", "C1", github, Decision::Denied),
            (Action::Run, "U2", "C1", aws, Decision::Denied),
            (Action::Approve, "U1", "C1", aws, Decision::Denied),
            (Action::Rehearse, "U2", "C9", github, allowed(1)),
            (Action::Run, "U2", "C9", github, Decision::Denied),
        ] {
            let req = req(action, user, channel, runbook);
            assert_eq!(decide(&rules, req), decision, "{req:?}");
        }
    }

    #[test]
    fn an_approval_of_no_runbook_needs_a_rule_naming_none() {
        let rules = [rule(&["aws-*"], &["U1"], &[], &["approve"])];
        let r = Request {
            action: Action::Approve,
            user: "U1",
            channel: "C1",
            runbook: None,
        };
        assert_eq!(decide(&rules, r), Decision::Denied);
        let rules = [rule(&[], &["U1"], &[], &["approve"])];
        assert_eq!(decide(&rules, r), Decision::Allowed { rule: 0 });
    }

    #[test]
    fn globs() {
        assert!(glob("aws-*", "aws-access-key-compromise"));
        assert!(glob("*", "anything"));
        assert!(glob("*-compromise", "slack-token-compromise"));
        assert!(glob("a*k*e", "access-key-compromise"));
        assert!(!glob("aws-*", "github-token-compromise"));
        assert!(!glob("aws", "aws-access-key-compromise"));
        assert!(!glob("a*a", "a"));
    }
}
