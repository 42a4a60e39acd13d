//! IAM policy documents: the one quench puts to end older sessions, and
//! reading a leaked identity's policies for what they expose.

use serde::Serialize;
use serde_json::{Value, json};

use crate::providers::ticked;

/// The inline policy that ends older sessions. One name, so putting it
/// again replaces it: a later time only moves the cut-off forward.
pub const REVOKE_POLICY_NAME: &str = "quench-revoke-older-sessions";

/// Denies everything to sessions issued before `before` (RFC 3339).
/// Requests signed with a long-term key carry no `aws:TokenIssueTime`, so
/// the user's own keys (its replacement) are untouched.
pub fn revoke_older_sessions(before: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "QuenchRevokeOlderSessions",
            "Effect": "Deny",
            "Action": ["*"],
            "Resource": ["*"],
            "Condition": {"DateLessThan": {"aws:TokenIssueTime": before}}
        }]
    })
    .to_string()
}

/// One statement of a policy, with where it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// `inline policy `p` of user `u``, `policy `arn` attached to group `g``.
    pub source: String,
    pub effect: String,
    /// `Action`, or with `not_action` set, `NotAction`.
    pub actions: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub not_action: bool,
    /// `Resource`, or `NotResource` as `not <resource>`.
    pub resources: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub conditional: bool,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

/// The statements of a policy document. IAM hands documents back
/// percent-encoded; `document` may be either form.
pub fn statements(source: &str, document: &str) -> Vec<Statement> {
    let decoded = percent_encoding::percent_decode_str(document).decode_utf8_lossy();
    let parsed: Value = serde_json::from_str(&decoded)
        .or_else(|_| serde_json::from_str(document))
        .unwrap_or(Value::Null);
    let list = match parsed.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    list.iter()
        .map(|s| {
            let not_action = s.get("NotAction").is_some();
            let actions = strings(s.get(if not_action { "NotAction" } else { "Action" }));
            let mut resources = strings(s.get("Resource"));
            resources.extend(
                strings(s.get("NotResource"))
                    .into_iter()
                    .map(|r| format!("not {r}")),
            );
            Statement {
                source: source.to_string(),
                effect: s
                    .get("Effect")
                    .and_then(Value::as_str)
                    .unwrap_or("Allow")
                    .to_string(),
                actions,
                not_action,
                resources,
                conditional: s.get("Condition").is_some(),
            }
        })
        .collect()
}

/// IAM's wildcard match, case-insensitive: `*` any run, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (
        pattern.to_ascii_lowercase().chars().collect(),
        text.to_ascii_lowercase().chars().collect(),
    );
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// IAM calls that change who may do what: a sample any IAM-write pattern
/// (`iam:*`, `iam:Put*`, `iam:Create*`, …) matches.
const IAM_WRITES: &[&str] = &[
    "iam:CreateUser",
    "iam:CreateAccessKey",
    "iam:CreateLoginProfile",
    "iam:UpdateLoginProfile",
    "iam:AttachUserPolicy",
    "iam:PutUserPolicy",
    "iam:AttachRolePolicy",
    "iam:PutRolePolicy",
    "iam:AddUserToGroup",
    "iam:CreateRole",
    "iam:UpdateAssumeRolePolicy",
    "iam:CreatePolicyVersion",
    "iam:PassRole",
];

/// Reads of data an attacker takes away, and what each is read from.
const DATA_READS: &[(&str, &str)] = &[
    ("s3:GetObject", "arn:aws:s3:::any-bucket/any-key"),
    ("secretsmanager:GetSecretValue", ""),
    ("ssm:GetParameter", ""),
    ("kms:Decrypt", ""),
];

impl Statement {
    fn allows(&self, action: &str) -> bool {
        let hit = self.actions.iter().any(|a| glob(a, action));
        self.effect == "Allow" && (hit != self.not_action)
    }

    /// Every resource (`*`), or `resource` when given.
    fn covers(&self, resource: &str) -> bool {
        self.resources.iter().any(|r| {
            r == "*" || (!resource.is_empty() && !r.starts_with("not ") && glob(r, resource))
        }) || (resource.is_empty() && !self.resources.is_empty())
    }

    fn on_everything(&self) -> bool {
        self.resources.iter().any(|r| r == "*")
    }

    fn shown(&self) -> String {
        let actions = ticked(&self.actions);
        let actions = if self.not_action {
            format!("every action but {actions}")
        } else {
            actions
        };
        let resources = ticked(&self.resources);
        let when = if self.conditional {
            ", with a condition"
        } else {
            ""
        };
        format!("{actions} on {resources}{when} ({})", self.source)
    }
}

/// What the statements expose, a line each: `admin` (every action on
/// every resource), `IAM writes` (a way to make more credentials),
/// `every resource` (an allow on `*`), `data reads` (objects, secrets,
/// parameters, decryption). A `Deny` is not subtracted: a flag says what
/// an allow gives, for a human to weigh.
pub fn flags(statements: &[Statement]) -> Vec<String> {
    let mut out = Vec::new();
    for s in statements.iter().filter(|s| s.effect == "Allow") {
        if s.allows("any:Action") && s.on_everything() {
            out.push(format!("admin: {}", s.shown()));
            continue;
        }
        if IAM_WRITES.iter().any(|a| s.allows(a)) {
            out.push(format!("IAM writes: {}", s.shown()));
        }
        let reads: Vec<&str> = DATA_READS
            .iter()
            .filter(|(a, r)| s.allows(a) && s.covers(r))
            .map(|(a, _)| *a)
            .collect();
        if !reads.is_empty() {
            out.push(format!("data reads ({}): {}", reads.join(", "), s.shown()));
        }
        if s.on_everything() {
            out.push(format!("every resource: {}", s.shown()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_iam_matches_them() {
        assert!(glob("*", "s3:GetObject"));
        assert!(glob("s3:Get*", "s3:getobject"));
        assert!(glob("iam:*", "iam:PassRole"));
        assert!(glob("s3:?etObject", "s3:GetObject"));
        assert!(!glob("s3:Put*", "s3:GetObject"));
        assert!(glob("arn:aws:s3:::*", "arn:aws:s3:::any-bucket/any-key"));
    }

    #[test]
    fn admin_iam_writes_data_reads_and_wildcards_are_flagged() {
        let doc = r#"{"Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Allow", "Action": ["iam:Create*"], "Resource": "arn:aws:iam::1:user/*"},
            {"Effect": "Allow", "Action": ["s3:GetObject", "secretsmanager:GetSecretValue"], "Resource": "*"},
            {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::one-bucket/*"},
            {"Effect": "Deny", "Action": "*", "Resource": "*"}
        ]}"#;
        let flags = flags(&statements("policy `p`", doc));
        assert_eq!(
            flags,
            [
                "admin: `*` on `*` (policy `p`)",
                "IAM writes: `iam:Create*` on `arn:aws:iam::1:user/*` (policy `p`)",
                "data reads (s3:GetObject, secretsmanager:GetSecretValue): `s3:GetObject`, `secretsmanager:GetSecretValue` on `*` (policy `p`)",
                "every resource: `s3:GetObject`, `secretsmanager:GetSecretValue` on `*` (policy `p`)",
            ]
        );
    }

    #[test]
    fn documents_are_read_percent_encoded_too() {
        let encoded = "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22iam%3A%2A%22%2C%22Resource%22%3A%22%2A%22%7D%7D";
        let s = statements("x", encoded);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].actions, ["iam:*"]);
    }

    #[test]
    fn the_revoke_policy_denies_older_sessions_only() {
        let doc: Value =
            serde_json::from_str(&revoke_older_sessions("2026-01-01T00:00:00Z")).unwrap();
        assert_eq!(doc["Statement"][0]["Effect"], "Deny");
        assert_eq!(
            doc["Statement"][0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"],
            "2026-01-01T00:00:00Z"
        );
    }
}
