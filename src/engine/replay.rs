//! What a journal says about its steps: how each settled, which follow-ups
//! are scheduled for when, and the outputs later steps may read.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::Settled;
use crate::journal::{Event, Record};

#[derive(Debug, Default)]
pub(crate) struct StepStates {
    /// Each step's last settled state.
    pub(crate) settled: BTreeMap<String, Settled>,
    /// Follow-ups scheduled and not run since, with when they are due.
    pub(crate) scheduled: BTreeMap<String, DateTime<Utc>>,
    /// Outputs as journaled (secret outputs are markers).
    pub(crate) outputs: BTreeMap<String, Map<String, Value>>,
    /// Steps that started (or asked for approval) and never settled: in
    /// flight when the process stopped.
    pub(crate) in_flight: BTreeSet<String>,
    /// Whether the incident has ended (and how).
    pub(crate) finished: Option<crate::journal::Outcome>,
}

pub(crate) fn settled(records: &[Record]) -> StepStates {
    let mut st = StepStates::default();
    for r in records {
        match &r.event {
            Event::IncidentFinished { outcome, .. } => st.finished = Some(*outcome),
            Event::IncidentResumed { .. } => st.finished = None,
            _ => {}
        }
        let Some(step) = r.event.step().map(str::to_string) else {
            continue;
        };
        if matches!(
            r.event,
            Event::StepStarted { .. } | Event::ApprovalRequested { .. }
        ) {
            st.in_flight.insert(step.clone());
        }
        let state = match &r.event {
            Event::StepSucceeded { outputs, .. } => {
                st.outputs.insert(step.clone(), outputs.clone());
                Settled::Succeeded
            }
            Event::StepFailed { .. } => Settled::Failed,
            Event::StepSkipped { .. } => Settled::Skipped,
            Event::TaskOpened { .. } => Settled::Open,
            Event::StepScheduled { due_at, .. } => {
                st.scheduled.insert(step.clone(), *due_at);
                continue;
            }
            Event::StepStarted { .. } => {
                // Whatever happens next replaces the schedule.
                st.scheduled.remove(&step);
                continue;
            }
            _ => continue,
        };
        st.scheduled.remove(&step);
        st.in_flight.remove(&step);
        st.settled.insert(step, state);
    }
    st
}
