//! A rotation's account: where it stands, each step with its times, how the
//! new credential was verified, and the quiet window the old one was
//! watched through. A rotation's document is rendered from it.

use serde::Serialize;

use super::report::StepReport;
use crate::journal::{IncidentView, StepState};

#[derive(Debug, Clone, Default, Serialize)]
pub struct RotationReport {
    /// Where it stands, as a phrase: `done`, `waiting for the old key to go
    /// quiet`, `failed at new_key`.
    pub state: String,
    /// Whether the old credential has been retired (the watch and every
    /// step after it are done).
    pub done: bool,
    /// Every step, in the runbook's order, with its times.
    pub steps: Vec<StepReport>,
    /// The steps that verified the new credential.
    pub verification: Vec<StepReport>,
    /// The steps that watched the old credential go quiet.
    pub quiet: Vec<QuietReport>,
}

/// One watch over a quiet window.
#[derive(Debug, Clone, Serialize)]
pub struct QuietReport {
    pub step: String,
    pub title: String,
    pub status: String,
    /// When the window started: the switch.
    pub since: Option<String>,
    /// The window, as the step was given it.
    pub window: Option<String>,
    /// When it looks again, while it watches.
    pub next_look: Option<String>,
    /// Why it is still watching (who still uses the old credential).
    pub reason: Option<String>,
    /// How many times it looked.
    pub looks: u32,
    /// The old credential's last use, as last seen.
    pub last_used: Option<String>,
}

impl RotationReport {
    pub(super) fn build(view: &IncidentView, steps: &[StepReport]) -> RotationReport {
        let watches = |action: &str| {
            crate::providers::find_action(action).is_some_and(|a| a.window.is_some())
        };
        let quiet: Vec<QuietReport> = steps
            .iter()
            .filter(|s| watches(&s.action))
            .map(|s| QuietReport::build(view, s))
            .collect();
        let verification = steps
            .iter()
            .filter(|s| is_verification(s))
            .cloned()
            .collect();
        let state = state(view);
        let in_order = view
            .steps
            .iter()
            .filter_map(|v| steps.iter().find(|s| s.id == v.info.id).cloned())
            .collect();
        RotationReport {
            done: state == "done",
            state,
            steps: in_order,
            verification,
            quiet,
        }
    }
}

impl QuietReport {
    fn build(view: &IncidentView, s: &StepReport) -> QuietReport {
        let v = view.step(&s.id);
        let param = |name: &str| {
            let p = v?.params.as_ref()?.get(name)?.as_str()?;
            (!p.is_empty()).then(|| p.to_string())
        };
        QuietReport {
            step: s.id.clone(),
            title: s.title.clone(),
            status: s.status.clone(),
            // The switch is when the step first started, unless it said.
            since: param("since").or(s.started_at.clone()),
            window: param("window").or_else(|| s.output_text("window")),
            next_look: s.due_at.clone().filter(|_| s.status == "watching"),
            reason: s.reason.clone(),
            looks: v.map_or(0, |v| {
                v.watched
                    + u32::from(matches!(
                        v.state,
                        StepState::Succeeded | StepState::Failed { .. }
                    ))
            }),
            last_used: s.output_text("last_used"),
        }
    }
}

/// A step that proves the new credential works: a verify action, or a
/// step whose id says it verifies.
fn is_verification(s: &StepReport) -> bool {
    s.action == "aws.verify_credentials" || s.id.starts_with("verify")
}

/// Where the rotation stands: failed at the first step that failed,
/// waiting on a step that watches, or done once nothing is left to run
/// but follow-ups.
fn state(view: &IncidentView) -> String {
    if let Some(failed) = view
        .steps
        .iter()
        .find(|s| matches!(s.state, StepState::Failed { .. }))
    {
        return format!("failed at `{}`", failed.info.id);
    }
    if let Some(w) = view
        .steps
        .iter()
        .find(|s| matches!(s.state, StepState::Watching { .. }))
    {
        return format!("waiting: `{}` {}", w.info.id, w.info.title.to_lowercase());
    }
    let unsettled = view
        .steps
        .iter()
        .any(|s| !s.info.deferred && !s.state.is_settled());
    if unsettled {
        "in progress".into()
    } else {
        "done".into()
    }
}
