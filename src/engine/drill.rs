//! A drill's injects: each fires at its time, once its step has settled,
//! or when the facilitator fires it by hand (`/quench inject`); it is
//! journaled, told to the drill's channel, and breaks the actions it names
//! for as long as it lasts.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::sim::Sim;
use super::{Executor, Shared};
use crate::journal::Event;
use crate::scenario::{FaultKind, InjectWhen};

/// An inject fired by hand, and by whom.
#[derive(Debug, Clone)]
pub struct Fired {
    pub name: String,
    pub by: String,
}

/// The drills running in this process, by incident: where a hand-fired
/// inject goes, and the names their scenarios know.
static RUNNING: LazyLock<Mutex<HashMap<String, Running>>> = LazyLock::new(Mutex::default);

/// Where a running drill takes hand-fired injects, and their names.
type Running = (UnboundedSender<Fired>, Vec<String>);

/// Journals that the incident is a drill, and at what pace, if it is.
pub(crate) fn record_start(sh: &Shared) -> Result<(), super::EngineError> {
    if let Executor::Sim(sim) = &sh.executor
        && let Some(pace) = sim.scenario().drill
    {
        let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
        sh.record_unsynced(Event::DrillStarted {
            pace,
            channel: sim.channel().map(str::to_string),
            approve_within_ms: ms(sh.runbook.drill.approve_within),
            answer_within_ms: ms(sh.runbook.drill.answer_within),
        })?;
    }
    Ok(())
}

/// Why an inject could not be fired by hand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotFired {
    #[error("`{0}` is not a drill running here")]
    NoDrill(String),
    #[error("the drill's scenario has no inject `{name}` (it has: {known})")]
    Unknown { name: String, known: String },
}

/// Fires inject `name` of the drill `incident` runs, in `by`'s name.
pub fn fire(incident: &str, name: &str, by: &str) -> Result<(), NotFired> {
    let running = RUNNING.lock().expect("drills lock");
    let Some((tx, names)) = running.get(incident) else {
        return Err(NotFired::NoDrill(incident.to_string()));
    };
    if !names.iter().any(|n| n == name) {
        let known: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
        return Err(NotFired::Unknown {
            name: name.to_string(),
            known: if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            },
        });
    }
    tx.send(Fired {
        name: name.to_string(),
        by: by.to_string(),
    })
    .map_err(|_| NotFired::NoDrill(incident.to_string()))
}

/// The faults the injects in force apply: inject, action, fault.
#[derive(Debug, Default)]
pub struct Faults(Mutex<Vec<(String, String, FaultKind)>>);

impl Faults {
    /// The fault an inject in force answers `action` with.
    pub fn for_action(&self, action: &str) -> Option<FaultKind> {
        let active = self.0.lock().expect("faults lock");
        active
            .iter()
            .find(|(_, a, _)| a == action)
            .map(|(_, _, k)| *k)
    }

    fn apply(&self, inject: &str, faults: &[(String, FaultKind)]) {
        let mut active = self.0.lock().expect("faults lock");
        active.extend(
            faults
                .iter()
                .map(|(a, k)| (inject.to_string(), a.clone(), *k)),
        );
    }

    fn lift(&self, inject: &str) {
        self.0
            .lock()
            .expect("faults lock")
            .retain(|(i, _, _)| i != inject);
    }
}

/// A running drill's injector: what tells it a step settled, and the task.
pub(crate) struct Injector {
    pub settled: UnboundedSender<String>,
    task: tokio::task::JoinHandle<()>,
    incident: String,
}

impl Injector {
    /// Starts the injector of incident `incident`, if it is a drill; steps
    /// that settle are told to it from then on.
    pub(crate) fn for_drill(sh: &Arc<Shared>, incident: &str) -> Option<Injector> {
        let Executor::Sim(sim) = &sh.executor else {
            return None;
        };
        sim.scenario().drill?;
        let injector = Self::start(sh.clone(), sim.clone(), incident);
        *sh.settled_tx.lock().expect("settled lock") = Some(injector.settled.clone());
        Some(injector)
    }

    /// Starts the injector of drill `incident`, played by `sim`.
    fn start(sh: Arc<Shared>, sim: Sim, incident: &str) -> Injector {
        let (settled, settled_rx) = unbounded_channel();
        let (hand, hand_rx) = unbounded_channel();
        let names = sim
            .scenario()
            .injects
            .iter()
            .map(|i| i.name.clone())
            .collect();
        RUNNING
            .lock()
            .expect("drills lock")
            .insert(incident.to_string(), (hand, names));
        let task = tokio::spawn(run(sh, sim, settled_rx, hand_rx));
        Injector {
            settled,
            task,
            incident: incident.to_string(),
        }
    }

    /// The drill is over: nothing more fires.
    pub(crate) fn stop(self) {
        self.task.abort();
        RUNNING.lock().expect("drills lock").remove(&self.incident);
    }
}

/// Fires each inject when its time, its step or the facilitator says,
/// and ends each after it lasted, until stopped.
async fn run(
    sh: Arc<Shared>,
    sim: Sim,
    mut settled: UnboundedReceiver<String>,
    mut hand: UnboundedReceiver<Fired>,
) {
    let scenario = sim.scenario().clone();
    let mut fired = BTreeSet::new();
    // (when, inject, whether it is its end), on the drill's clock.
    let mut due: Vec<(Duration, String, bool)> = scenario
        .injects
        .iter()
        .filter_map(|i| match i.when {
            InjectWhen::At(at) => Some((at, i.name.clone(), false)),
            _ => None,
        })
        .collect();
    loop {
        due.sort();
        let next = due
            .first()
            .map(|(at, _, _)| at.saturating_sub(sh.clock.elapsed()));
        let wanted: Vec<(String, String)> = tokio::select! {
            // The next inject (or end of one) is due.
            () = async { scenario.wait(next.unwrap_or_default()).await }, if next.is_some() => {
                let (_, name, end) = due.remove(0);
                if end {
                    end_inject(&sh, &sim, &name);
                    continue;
                }
                vec![(name, "scenario".into())]
            }
            // A step settled: the injects that wait for it fire.
            Some(step) = settled.recv() => scenario
                .injects
                .iter()
                .filter(|i| i.when == InjectWhen::After(step.clone()))
                .map(|i| (i.name.clone(), "scenario".into()))
                .collect(),
            // The facilitator fired one.
            Some(f) = hand.recv() => vec![(f.name, f.by)],
            else => return,
        };
        for (name, by) in wanted {
            if !fired.insert(name.clone()) {
                continue;
            }
            if let Some(lasts) = fire_inject(&sh, &sim, &name, &by).await {
                due.push((sh.clock.elapsed() + lasts, name, true));
            }
        }
    }
}

/// Journals an inject, applies its faults and tells the channel; returns
/// how long it lasts, if it ends before the drill.
async fn fire_inject(sh: &Shared, sim: &Sim, name: &str, by: &str) -> Option<Duration> {
    let inject = sim.scenario().inject(name)?.clone();
    sim.faults().apply(name, &inject.faults);
    // A second leak starts a second drill, as a detector's second
    // credential would start a second incident.
    let linked = inject.leak.as_ref().and_then(|inputs| sim.link(inputs));
    let event = Event::InjectFired {
        name: name.to_string(),
        message: inject.message.clone(),
        by: by.to_string(),
        linked,
    };
    if let Err(e) = sh.record(event) {
        tracing::warn!("{e}");
    }
    sim.tell(&format!("*Inject `{name}`*: {}", inject.message))
        .await;
    inject.lasts
}

fn end_inject(sh: &Shared, sim: &Sim, name: &str) {
    sim.faults().lift(name);
    if let Err(e) = sh.record(Event::InjectEnded {
        name: name.to_string(),
    }) {
        tracing::warn!("{e}");
    }
}
