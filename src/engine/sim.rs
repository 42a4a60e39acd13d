//! `sim`: answers any declared action during a rehearsal, as the scenario
//! says: after its latency, with its faults, with plausible outputs. It
//! touches nothing real. In a drill, the one exception is its notify
//! steps' messages, which go to the drill's own channel, marked DRILL.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::drill::Faults;
use crate::providers::action::Call;
use crate::providers::slack::Slack;
use crate::providers::{ActionError, OutputValue, Outputs};
use crate::runbook::Step;
use crate::scenario::{ClockMode, Fault, FaultKind, Scenario};
use crate::secret::Secret;

#[derive(Debug, Clone)]
pub struct Sim {
    scenario: Arc<Scenario>,
    /// Where a drill's messages go, when it plays in Slack.
    drill_channel: Option<Arc<DrillChannel>>,
    /// What the drill's injects in force break.
    faults: Arc<Faults>,
}

/// A drill's channel: its `slack.post_message` steps post there, marked
/// DRILL, whatever channel the runbook names.
#[derive(Debug, Clone)]
pub struct DrillChannel {
    pub slack: Slack,
    pub channel: String,
    /// Starts the drill a second leak sets off; none where none can start.
    pub linked: Option<Linker>,
}

/// What starts a second drill, linked to this one, with these inputs in
/// place of its own; returns its id.
pub type Link = dyn Fn(&std::collections::BTreeMap<String, String>) -> Option<String> + Send + Sync;

#[derive(Clone)]
pub struct Linker(pub Arc<Link>);

impl std::fmt::Debug for Linker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Linker")
    }
}

/// What starts each message a drill posts.
pub const DRILL_MARK: &str = ":rotating_light: *DRILL* — ";

impl Sim {
    pub fn new(scenario: Arc<Scenario>) -> Self {
        Self {
            scenario,
            drill_channel: None,
            faults: Arc::default(),
        }
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Tells the drill's channel, marked DRILL; nowhere outside Slack.
    pub async fn tell(&self, text: &str) {
        if let Some(c) = &self.drill_channel
            && let Err(e) = c
                .slack
                .post(&c.channel, &format!("{DRILL_MARK}{text}"), None, None)
                .await
        {
            tracing::warn!("failed to tell the drill's channel: {e}");
        }
    }

    /// The drill's messages go to `channel`.
    pub fn with_channel(mut self, channel: DrillChannel) -> Self {
        self.drill_channel = Some(Arc::new(channel));
        self
    }

    /// Starts the drill a second leak sets off, where one can start.
    pub fn link(&self, inputs: &std::collections::BTreeMap<String, String>) -> Option<String> {
        let linker = self.drill_channel.as_ref()?.linked.as_ref()?;
        (linker.0)(inputs)
    }

    pub fn channel(&self) -> Option<&str> {
        self.drill_channel.as_ref().map(|c| c.channel.as_str())
    }

    /// A drill's message, posted to its channel for real.
    async fn post_to_drill(
        &self,
        channel: &DrillChannel,
        params: &Map<String, Value>,
    ) -> Result<Outputs, ActionError> {
        let text = params.get("text").and_then(Value::as_str).unwrap_or("");
        let (id, ts) = channel
            .slack
            .post(&channel.channel, &format!("{DRILL_MARK}{text}"), None, None)
            .await?;
        Ok(vec![
            ("ts".into(), OutputValue::Plain(ts.into())),
            ("channel".into(), OutputValue::Plain(id.into())),
        ])
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
        if let Some(channel) = &self.drill_channel
            && step.action.name == "slack.post_message"
        {
            return self.post_to_drill(channel, params).await;
        }
        let sim = self.scenario.action(step.action.name);
        let latency = self.scenario.latency(step);
        // An action that watches over a window is met once the virtual
        // clock has waited it out (a realtime drill does not wait hours).
        if let Some(window) = step.action.window.and_then(|w| w(step.action, params))
            && self.scenario.clock == ClockMode::Virtual
            && call.now < call.since + window
        {
            self.scenario.wait(latency).await;
            return Err(ActionError::not_yet(
                call.since + window,
                format!(
                    "the rehearsal waits out the {} window on its virtual clock",
                    crate::time::human(window)
                ),
            ));
        }
        let fault = sim.and_then(|s| s.fault_for(attempt)).cloned().or_else(|| {
            // An inject in force breaks the action for every attempt.
            self.faults.for_action(step.action.name).map(|kind| Fault {
                attempts: 1,
                kind,
                retry_after: None,
            })
        });
        if let Some(fault) = fault {
            if fault.kind == FaultKind::Timeout {
                self.scenario.wait(step.timeout + latency).await;
            } else {
                self.scenario.wait(latency).await;
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
        self.scenario.wait(latency).await;
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
