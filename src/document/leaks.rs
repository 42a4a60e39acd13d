//! "Where it leaked": what each `git.scan_history` step found in a
//! repository's history, for the document's section of that name.

use serde::Serialize;
use serde_json::Value;

use super::report::StepReport;
use crate::journal::{Event, Record};

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
#[derive(Debug, Clone, Default, Serialize)]
pub struct LeakHit {
    pub commit: String,
    /// Its first 12 hex digits, as the document shows it.
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
pub(super) fn leaks(steps: &[StepReport], records: &[Record]) -> Vec<Leak> {
    steps
        .iter()
        .filter(|s| s.action == ACTION)
        .map(|s| {
            let hits: Vec<LeakHit> = match s.outputs.get("hits") {
                Some(Value::Array(hits)) => hits.iter().map(hit).collect(),
                _ => Vec::new(),
            };
            Leak {
                step: s.id.clone(),
                title: s.title.clone(),
                status: s.status.clone(),
                repository: repository(&s.id, records),
                reason: s.reason.clone(),
                error: s.error.clone(),
                count: s
                    .outputs
                    .get("count")
                    .and_then(Value::as_u64)
                    .unwrap_or(hits.len() as u64),
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
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let commit = text("commit");
    LeakHit {
        short: commit.chars().take(12).collect(),
        commit,
        author: text("author"),
        date: text("date"),
        path: text("path"),
        line: v.get("line").and_then(Value::as_u64).unwrap_or(0),
        refs: v
            .get("refs")
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        secret: text("secret"),
        encoding: text("encoding"),
    }
}

/// The `repository` parameter of `step`'s first attempt.
fn repository(step: &str, records: &[Record]) -> Option<String> {
    records.iter().find_map(|r| match &r.event {
        Event::StepStarted {
            step: s, params, ..
        } if s == step => params
            .as_ref()
            .and_then(|p| p.get("repository"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    })
}
