//! "Where it leaked": what each `git.scan_history` step found in a
//! repository's history, for the document's section of that name.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::report::{StepReport, item};
use crate::journal::IncidentView;

/// The action whose steps this section shows.
pub const ACTION: &str = "git.scan_history";

/// One history scan.
#[derive(Debug, Clone, Serialize)]
pub struct Leak {
    pub step: String,
    pub title: String,
    pub status: String,
    /// The repository searched, as the journal shows it.
    pub repository: Option<String>,
    /// Why it was skipped, or how it failed.
    pub reason: Option<String>,
    pub error: Option<String>,
    /// Every hit, though `hits` lists at most the action's limit.
    pub count: u64,
    pub leaked_at: Option<String>,
    pub hits: Vec<LeakHit>,
}

/// A commit that added the leaked value to a file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct LeakHit {
    pub commit: String,
    /// Its first 12 hex digits, as the document shows it.
    #[serde(skip_deserializing)]
    pub short: String,
    pub author: String,
    /// The committer date.
    pub date: String,
    pub path: String,
    pub line: u64,
    pub refs: Vec<String>,
    /// The value's redaction marker.
    pub secret: String,
    pub encoding: String,
}

/// The history scans among `steps`, with what each found.
pub(super) fn leaks(steps: &[StepReport], view: &IncidentView) -> Vec<Leak> {
    steps
        .iter()
        .filter(|s| s.action == ACTION)
        .map(|s| {
            let hits: Vec<LeakHit> = s.output_list("hits").iter().map(hit).collect();
            // The `repository` its first attempt was given.
            let repository = view
                .step(&s.id)
                .and_then(|v| v.params.as_ref()?.get("repository")?.as_str());
            Leak {
                step: s.id.clone(),
                title: s.title.clone(),
                status: s.status.clone(),
                repository: repository.map(str::to_string),
                reason: s.reason.clone(),
                error: s.error.clone(),
                count: s.output_u64("count").unwrap_or(hits.len() as u64),
                leaked_at: s
                    .outputs
                    .get("leaked_at")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                hits,
            }
        })
        .collect()
}

fn hit(v: &Value) -> LeakHit {
    let hit: LeakHit = item(v);
    LeakHit {
        short: hit.commit.chars().take(12).collect(),
        ..hit
    }
}
