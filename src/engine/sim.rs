//! `sim`: answers any declared action during a rehearsal, as the scenario
//! says: after its latency, with its faults, with plausible outputs. It
//! touches nothing real.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::providers::action::Call;
use crate::providers::{ActionError, OutputValue, Outputs};
use crate::runbook::Step;
use crate::scenario::{ClockMode, FaultKind, Scenario};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Sim {
    scenario: Arc<Scenario>,
}

impl Sim {
    pub fn new(scenario: Arc<Scenario>) -> Self {
        Self { scenario }
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// One simulated attempt. A `timeout` fault outlasts the step's timeout,
    /// so the engine times it out exactly as it would live.
    pub async fn execute(
        &self,
        step: &Step,
        attempt: u32,
        call: Call<'_>,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        let sim = self.scenario.action(step.action.name);
        let latency = self.scenario.latency(step);
        // An action that watches over a window is met once the virtual
        // clock has waited it out (a realtime drill does not wait hours).
        if let Some(window) = step.action.window.and_then(|w| w(step.action, params))
            && self.scenario.clock == ClockMode::Virtual
            && call.now < call.since + window
        {
            tokio::time::sleep(latency).await;
            return Err(ActionError::not_yet(
                call.since + window,
                format!(
                    "the rehearsal waits out the {} window on its virtual clock",
                    crate::time::human(window)
                ),
            ));
        }
        if let Some(fault) = sim.and_then(|s| s.fault_for(attempt)) {
            if fault.kind == FaultKind::Timeout {
                tokio::time::sleep(step.timeout + latency).await;
            } else {
                tokio::time::sleep(latency).await;
            }
            return Err(match fault.kind {
                FaultKind::Throttled => ActionError::rate_limited(
                    fault.retry_after,
                    format!("{} was throttled (simulated 429)", step.action.name),
                ),
                FaultKind::ServerError => {
                    ActionError::transient(format!("{} answered 503 (simulated)", step.action.name))
                }
                FaultKind::Permanent => ActionError::permanent(format!(
                    "{} refused the request (simulated permanent error)",
                    step.action.name
                )),
                FaultKind::Timeout => ActionError::transient("simulated timeout"),
            });
        }
        tokio::time::sleep(latency).await;
        let mut outputs = Outputs::new();
        if step.action.dynamic_outputs {
            // A request polled `until_status` ends on the first status it waits for.
            let status = step
                .with
                .get("until_status")
                .and_then(|v| v.get(0))
                .and_then(Value::as_u64)
                .unwrap_or(200);
            outputs.push(("status".into(), OutputValue::Plain(status.into())));
        }
        for o in &step.outputs {
            if outputs.iter().any(|(n, _)| *n == o.name) {
                continue;
            }
            let given = sim.and_then(|s| s.outputs.get(&o.name)).cloned();
            let value = if o.secret {
                let text = match given {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => format!("sim-{}-{:016x}", o.name, rand::random::<u64>()),
                };
                OutputValue::Secret(Secret::new(format!("{}.{}", step.id, o.name), text))
            } else {
                OutputValue::Plain(
                    given.unwrap_or_else(|| Value::String(format!("sim-{}", o.name))),
                )
            };
            outputs.push((o.name.clone(), value));
        }
        Ok(outputs)
    }
}
