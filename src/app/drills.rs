//! `quench drills [RUNBOOK]`: the drills in the store, oldest first, with
//! their scorecards' figures.

use serde::Serialize;

use crate::document::Scorecard;
use crate::journal::{Event, Mode};
use crate::store::Store;

/// One drill, as the listing shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Drill {
    pub id: String,
    pub runbook: String,
    pub started_at: String,
    /// `succeeded`, `failed`…; `running` until it ends.
    pub status: String,
    pub scorecard: Scorecard,
}

/// The drills of `runbook` (of every runbook without one), oldest first.
pub fn list(store: &Store, runbook: Option<&str>) -> Vec<Drill> {
    let mut drills = Vec::new();
    for id in store.list() {
        let Ok(records) = store.journal(&id) else {
            continue;
        };
        let Some(Event::IncidentStarted {
            runbook: rb,
            mode: Mode::Drill,
            started_at,
            ..
        }) = records.first().map(|r| &r.event)
        else {
            continue;
        };
        if runbook.is_some_and(|want| want != rb) {
            continue;
        }
        let status = records
            .iter()
            .rev()
            .find_map(|r| match &r.event {
                Event::IncidentFinished(f) => Some(f.outcome.name().to_string()),
                _ => None,
            })
            .unwrap_or_else(|| "running".into());
        if let Some(scorecard) = Scorecard::from_records(&records) {
            drills.push(Drill {
                id,
                runbook: rb.clone(),
                started_at: crate::journal::format_ts(started_at),
                status,
                scorecard,
            });
        }
    }
    drills.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    drills
}

/// The listing as a table: one drill a line.
pub fn table(drills: &[Drill]) -> String {
    let mut out = format!(
        "{:<26} {:<28} {:<6} {:<11} {:>14} {:>10} {:>9} {:>8}\n",
        "ID", "RUNBOOK", "PACE", "STATUS", "TIME TO REVOKE", "FIRST ACK", "TARGETS", "INJECTS"
    );
    for d in drills {
        let c = &d.scorecard;
        let targets: Vec<bool> = c.actions.iter().filter_map(|a| a.met).collect();
        let met = targets.iter().filter(|m| **m).count();
        out.push_str(&format!(
            "{:<26} {:<28} {:<6} {:<11} {:>14} {:>10} {:>9} {:>8}\n",
            d.id,
            d.runbook,
            c.pace,
            d.status.replace('_', " "),
            c.time_to_revoke.as_deref().unwrap_or("—"),
            c.first_action.as_ref().map_or("—", |a| a.at.as_str()),
            format!("{met}/{} met", targets.len()),
            c.injects.len(),
        ));
    }
    out
}
