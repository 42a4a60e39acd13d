//! The document's AWS sections, read from the outputs of the AWS steps:
//! what the attacker may have left (`aws.lookup_events`), what containment
//! did (`aws.contain_persistence`), the sessions ended
//! (`aws.revoke_older_sessions`), and what the key could do
//! (`aws.describe_permissions`). A runbook without these steps has none.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::report::{StepReport, item};

/// Outputs shown by sections of their own (these, and where it leaked)
/// rather than as a line of the audit-log findings: lists of records,
/// unreadable as one line, and what the sections say in sentences.
pub(super) const SHOWN_APART: &[(&str, &str)] = &[
    (super::leaks::ACTION, "hits"),
    ("aws.lookup_events", "findings"),
    ("aws.lookup_events", "findings_left_out"),
    ("aws.lookup_events", "summary"),
    ("aws.lookup_events", "regions"),
    ("aws.lookup_events", "regions_not_searched"),
    ("aws.describe_permissions", "statements"),
    ("aws.describe_permissions", "flags"),
];

#[derive(Debug, Clone, Default, Serialize)]
pub struct AwsReport {
    /// Whether the runbook has any of these steps: only then are they shown.
    pub present: bool,
    /// Each CloudTrail search (`aws.lookup_events`).
    pub searched: Vec<Searched>,
    /// Each session cut-off (`aws.revoke_older_sessions`).
    pub sessions: Vec<Sessions>,
    /// Each containment (`aws.contain_persistence`).
    pub containment: Vec<Containment>,
    /// Each reading of the key's permissions (`aws.describe_permissions`).
    pub exposure: Vec<Exposure>,
}

/// The state of the step a section reads, as the document words it.
#[derive(Debug, Clone, Serialize)]
pub struct Of {
    pub step: String,
    pub title: String,
    pub status: String,
    /// Why it failed or was skipped.
    pub why: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Searched {
    pub of: Of,
    /// `5 calls from 2 source IPs (…); first used …, last used …`.
    pub summary: Option<String>,
    pub regions: Vec<String>,
    pub regions_not_searched: Vec<String>,
    /// `3 recon, 2 writes, 4 persistence`.
    pub counts: Option<String>,
    /// Calls that may leave a way back in.
    pub left: Vec<Call>,
    /// Calls that changed something else.
    pub writes: Vec<Call>,
    pub writes_left_out: u64,
}

/// One call the leaked key made, as the document shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Call {
    pub time: String,
    pub region: String,
    pub event: String,
    pub source_ip: String,
    pub user_agent: String,
    pub resource: String,
    /// AWS refused it (`AccessDenied`): it changed nothing.
    #[serde(alias = "error")]
    pub refused: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sessions {
    pub of: Of,
    pub before: Option<String>,
    /// `user `ci-bot``, `role `deploy``.
    pub on: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Containment {
    pub of: Of,
    pub approved_by: Option<String>,
    pub actions: Vec<Undone>,
    /// What it cannot undo, for a human.
    pub left: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Undone {
    pub target: String,
    pub did: String,
    pub result: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exposure {
    pub of: Of,
    pub flags: Vec<String>,
    pub policies: Vec<String>,
    pub admin: bool,
}

impl AwsReport {
    /// The sections, from the steps in the order the document tells them.
    pub fn build(steps: &[StepReport]) -> AwsReport {
        let mut r = AwsReport::default();
        for s in steps {
            match s.action.as_str() {
                "aws.lookup_events" => r.searched.push(searched(s)),
                "aws.revoke_older_sessions" => r.sessions.push(sessions(s)),
                "aws.contain_persistence" => r.containment.push(containment(s)),
                "aws.describe_permissions" => r.exposure.push(exposure(s)),
                _ => continue,
            }
            r.present = true;
        }
        r
    }
}

fn of(s: &StepReport) -> Of {
    Of {
        step: s.id.clone(),
        title: s.title.clone(),
        status: s.status.clone(),
        why: s.error.clone().or(s.reason.clone()),
    }
}

fn searched(s: &StepReport) -> Searched {
    let of_class = |class: &str| -> Vec<Call> {
        s.output_list("findings")
            .iter()
            .filter(|f| f.get("class").and_then(Value::as_str) == Some(class))
            .map(item)
            .collect()
    };
    let count = |name| s.output_u64(name);
    let counts = match (count("recon"), count("writes"), count("persistence")) {
        (Some(r), Some(w), Some(p)) => {
            let writes = if w == 1 { "write" } else { "writes" };
            Some(format!("{r} recon, {w} {writes}, {p} persistence"))
        }
        _ => None,
    };
    Searched {
        of: of(s),
        summary: s.output_text("summary"),
        regions: s.output_texts("regions"),
        regions_not_searched: s.output_texts("regions_not_searched"),
        counts,
        left: of_class("persistence"),
        writes: of_class("write"),
        writes_left_out: s.output_u64("findings_left_out").unwrap_or_default(),
    }
}

fn sessions(s: &StepReport) -> Sessions {
    let mut on: Vec<String> = s
        .output_texts("users")
        .into_iter()
        .map(|u| format!("user `{u}`"))
        .collect();
    on.extend(
        s.output_texts("roles")
            .into_iter()
            .map(|r| format!("role `{r}`")),
    );
    Sessions {
        of: of(s),
        before: s.output_text("revoked_before"),
        on,
    }
}

fn containment(s: &StepReport) -> Containment {
    Containment {
        of: of(s),
        approved_by: s.approved_by.clone(),
        actions: s.output_list("actions").iter().map(item).collect(),
        left: s.output_texts("left"),
    }
}

fn exposure(s: &StepReport) -> Exposure {
    Exposure {
        of: of(s),
        flags: s.output_texts("flags"),
        policies: s.output_texts("policies"),
        admin: s.outputs.get("admin").and_then(Value::as_bool) == Some(true),
    }
}
