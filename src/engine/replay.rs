//! What a journal says about its steps: how each settled, which follow-ups
//! are scheduled for when, and the outputs later steps may read.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::Settled;
use crate::journal::{IncidentView, Record, StepState};

#[derive(Debug, Default)]
pub(crate) struct StepStates {
    /// Each step's last settled state.
    pub(crate) settled: BTreeMap<String, Settled>,
    /// Follow-ups scheduled and not run since, with when they are due
    /// (`None`: not until a step they need has settled).
    pub(crate) scheduled: BTreeMap<String, Option<DateTime<Utc>>>,
    /// Steps watching for a condition, with when they look again.
    pub(crate) watching: BTreeMap<String, DateTime<Utc>>,
    /// When each step that started first did, and its last attempt: a step
    /// that looks again goes on from there.
    pub(crate) begun: BTreeMap<String, (DateTime<Utc>, u32)>,
    /// Outputs as journaled (secret outputs are markers).
    pub(crate) outputs: BTreeMap<String, Map<String, Value>>,
    /// Steps that started (or asked for approval) and never settled: in
    /// flight when the process stopped.
    pub(crate) in_flight: BTreeSet<String>,
    /// What in-flight steps noted of the effect they had: they carry on
    /// from it.
    pub(crate) noted: BTreeMap<String, Value>,
    /// Whether the incident has ended (and how).
    pub(crate) finished: Option<crate::journal::Outcome>,
}

pub(crate) fn settled(records: &[Record]) -> StepStates {
    let view = IncidentView::fold(records);
    let mut st = StepStates {
        scheduled: view.scheduled(),
        finished: view.finished.map(|f| f.outcome),
        ..StepStates::default()
    };
    for step in &view.steps {
        let id = step.info.id.clone();
        if step.state.is_in_flight() {
            st.in_flight.insert(id.clone());
            if let Some(note) = &step.noted {
                st.noted.insert(id.clone(), note.clone());
            }
        }
        if let Some(at) = step.started_at {
            st.begun.insert(id.clone(), (at, step.attempts));
        }
        let settled = match step.state {
            StepState::Succeeded => {
                st.outputs.insert(id.clone(), step.outputs.clone());
                Settled::Succeeded
            }
            StepState::Failed { .. } => Settled::Failed,
            StepState::Skipped { .. } => Settled::Skipped,
            StepState::Open => Settled::Open,
            StepState::Watching { until, .. } => {
                st.watching.insert(id.clone(), until);
                Settled::Watching
            }
            _ => continue,
        };
        st.settled.insert(id, settled);
    }
    st
}
