//! Rehearsal scenarios: how long each simulated action takes, which attempts
//! fail and how, how long the humans take, and a drill's injects: events
//! thrown at the team at a time, after a step, or by hand.

use std::collections::HashMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::providers;
use crate::runbook::diagnostic::{Diagnostics, Findings, Pos, SourceFile, did_you_mean, pos};
use crate::runbook::raw::{RawValue, S, SpannedMap};
use crate::runbook::validate::{self, from_yaml};
use crate::runbook::{Runbook, Step};
use crate::time::parse_duration;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    clock: Option<S<String>>,
    defaults: Option<RawDefaults>,
    #[serde(default)]
    actions: SpannedMap<RawActionSim>,
    #[serde(default)]
    manual: SpannedMap<RawManual>,
    #[serde(default)]
    injects: Vec<RawInject>,
}

/// One inject: when it fires, what the channel is told, what it breaks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawInject {
    /// How the facilitator names it: `/quench inject INCIDENT NAME`.
    name: S<String>,
    /// Fires this long after the drill starts (`45s`).
    at: Option<S<String>>,
    /// Fires once this step has settled. Neither `at` nor `after`: only by hand.
    after: Option<S<String>>,
    /// Posted to the drill's channel when it fires.
    message: S<String>,
    /// How long its faults last; omitted: to the end of the drill.
    lasts: Option<S<String>>,
    /// Action to the fault it answers while the inject lasts
    /// (`aws.cloudtrail_lookup: server_error`).
    #[serde(default)]
    faults: SpannedMap<S<String>>,
    /// A second credential has leaked: a Slack drill starts a second drill
    /// of the runbook, linked to the first, with these inputs in place of
    /// the first's (`access_key_id: AKIA…`).
    leak: Option<SpannedMap<S<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    latency: Option<S<String>>,
    approval: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawActionSim {
    latency: Option<S<String>>,
    #[serde(default)]
    faults: Vec<RawFault>,
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, serde_json::Value>")]
    outputs: SpannedMap<S<RawValue>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFault {
    attempts: Option<S<u32>>,
    error: S<String>,
    retry_after: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManual {
    after: Option<S<String>>,
    answer: Option<S<String>>,
    approve: Option<S<bool>>,
    by: Option<S<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockMode {
    /// Simulated time: finishes at once, reports simulated times.
    Virtual,
    /// Waits out every simulated latency for real.
    Realtime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    Throttled,
    ServerError,
    Timeout,
    Permanent,
}

/// The fault `s` names; else an error.
fn fault(found: &mut Findings, s: &S<String>) -> Option<FaultKind> {
    let faults = [
        ("throttled", FaultKind::Throttled),
        ("server_error", FaultKind::ServerError),
        ("timeout", FaultKind::Timeout),
        ("permanent", FaultKind::Permanent),
    ];
    let otherwise = "faults: throttled, server_error, timeout, permanent";
    found.one_of(s, "fault", &faults, otherwise)
}

#[derive(Debug, Clone)]
pub struct Fault {
    pub attempts: u32,
    pub kind: FaultKind,
    pub retry_after: Option<Duration>,
}

#[derive(Debug, Clone, Default)]
pub struct ActionSim {
    pub latency: Option<Duration>,
    pub faults: Vec<Fault>,
    pub outputs: serde_json::Map<String, serde_json::Value>,
}

impl ActionSim {
    /// The fault that answers attempt `attempt` (1-based): faults cover
    /// consecutive attempts in the order listed.
    pub fn fault_for(&self, attempt: u32) -> Option<&Fault> {
        let mut covered = 0;
        for f in &self.faults {
            covered += f.attempts;
            if attempt <= covered {
                return Some(f);
            }
        }
        None
    }
}

/// When an inject fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InjectWhen {
    /// This long after the drill starts.
    At(Duration),
    /// Once this step has settled.
    After(String),
    /// Only when the facilitator fires it.
    ByHand,
}

/// A drill's inject.
#[derive(Debug, Clone)]
pub struct Inject {
    pub name: String,
    pub when: InjectWhen,
    pub message: String,
    pub lasts: Option<Duration>,
    /// Each action it breaks, and how.
    pub faults: Vec<(String, FaultKind)>,
    /// The inputs of the second drill a second leak starts, if it is one.
    pub leak: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone)]
pub struct ManualSim {
    pub after: Duration,
    pub answer: Option<String>,
    pub approve: bool,
    pub by: String,
}

#[derive(Debug, Clone)]
pub struct Scenario {
    pub clock: ClockMode,
    /// A drill's pace: its simulated clock runs this many times as fast
    /// as the wall clock (1: real time). `None` for a rehearsal.
    pub drill: Option<u32>,
    pub default_latency: Duration,
    pub default_approval: Duration,
    pub actions: HashMap<String, ActionSim>,
    pub manual: HashMap<String, ManualSim>,
    pub injects: Vec<Inject>,
    /// The steps and inputs of the runbook it names, for `check_against`.
    named: Vec<Named>,
    source: Option<SourceFile>,
}

/// A step (or, given by `leak`, an input) a scenario names, where, and what
/// names it: `manual`, an inject's `after`, or `leak`.
#[derive(Debug, Clone)]
struct Named {
    name: String,
    at: Pos,
    by: &'static str,
}

const LEAK: &str = "`leak`";

impl Default for Scenario {
    /// No file: every action answers after 150 ms, approvals come after 30 s,
    /// manual tasks stay open.
    fn default() -> Self {
        Self {
            clock: ClockMode::Virtual,
            drill: None,
            default_latency: Duration::from_millis(150),
            default_approval: Duration::from_secs(30),
            actions: HashMap::new(),
            manual: HashMap::new(),
            injects: Vec::new(),
            named: Vec::new(),
            source: None,
        }
    }
}

impl Scenario {
    pub fn load(path: &std::path::Path) -> Result<Scenario, crate::runbook::LoadError> {
        let source = validate::read_yaml(path, "scenario")?;
        Self::parse(source).map_err(crate::runbook::LoadError::Invalid)
    }

    pub fn parse(source: SourceFile) -> Result<Scenario, Diagnostics> {
        let raw: RawScenario = from_yaml(&source)?;
        let mut found = Findings::new(&source);
        let mut sc = Scenario {
            source: Some(source.clone()),
            ..Scenario::default()
        };
        if let Some(c) = &raw.clock {
            sc.clock = clock(&mut found, c);
        }
        if let Some(d) = &raw.defaults {
            if let Some(l) = duration(&mut found, &d.latency, "defaults.latency") {
                sc.default_latency = l;
            }
            if let Some(a) = duration(&mut found, &d.approval, "defaults.approval") {
                sc.default_approval = a;
            }
        }
        for (name, a) in raw.actions.0 {
            if let Some(sim) = action_sim(&mut found, &name, a) {
                sc.actions.insert(name.value, sim);
            }
        }
        for (step, m) in raw.manual.0 {
            sc.named.push(Named {
                name: step.value.clone(),
                at: pos(&step),
                by: "manual",
            });
            let after = duration(&mut found, &m.after, "after");
            sc.manual.insert(
                step.value,
                ManualSim {
                    after: after.unwrap_or(Duration::from_secs(60)),
                    answer: m.answer.map(|a| a.value),
                    approve: m.approve.map(|a| a.value).unwrap_or(true),
                    by: m.by.map(|b| b.value).unwrap_or_else(|| "rehearsal".into()),
                },
            );
        }
        for raw in raw.injects {
            if let Some(inject) = inject(&mut found, raw, &sc.injects, &mut sc.named) {
                sc.injects.push(inject);
            }
        }
        found.finish()?;
        Ok(sc)
    }

    /// The inject named `name`.
    pub fn inject(&self, name: &str) -> Option<&Inject> {
        self.injects.iter().find(|i| i.name == name)
    }

    /// Checks the scenario against the runbook it drives: the steps and
    /// inputs it names are the runbook's.
    pub fn check_against(&self, runbook: &Runbook) -> Result<(), Diagnostics> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let mut found = Findings::new(source);
        let rb = &runbook.name;
        let steps: Vec<&str> = runbook.steps.iter().map(|s| s.id.as_str()).collect();
        let inputs: Vec<&str> = runbook.inputs.iter().map(|i| i.name.as_str()).collect();
        for Named { name, at, by } in &self.named {
            let (known, noun, verb) = match *by {
                LEAK => (&inputs, "an input", "gives inputs"),
                _ => (&steps, "a step", "names steps"),
            };
            if !known.contains(&name.as_str()) {
                let help = did_you_mean(name, known.iter().copied())
                    .unwrap_or_else(|| format!("{by} {verb} of `{rb}`"));
                found
                    .error(*at, format!("`{name}` is not {noun} of `{rb}`"))
                    .help = Some(help);
            }
        }
        found.finish()
    }

    /// The scenario of a drill a second leak started: the same, but for the
    /// injects that are second leaks, so one leak does not start another.
    pub fn without_leaks(&self) -> Scenario {
        let mut sc = self.clone();
        sc.injects.retain(|i| i.leak.is_none());
        sc
    }

    /// The scenario as a drill at `pace`: its latencies kept on the wall
    /// clock, scaled.
    pub fn into_drill(mut self, pace: u32) -> Self {
        self.clock = ClockMode::Realtime;
        self.drill = Some(pace.max(1));
        self
    }

    /// How many times as fast as the wall clock its time runs: 1 but in a
    /// paced drill.
    pub fn pace(&self) -> u32 {
        self.drill.unwrap_or(1)
    }

    /// Waits `d` of the scenario's time: `d` on a rehearsal's clock, `d`
    /// divided by the pace on a drill's.
    pub async fn wait(&self, d: Duration) {
        tokio::time::sleep(d / self.pace()).await;
    }

    pub fn action(&self, name: &str) -> Option<&ActionSim> {
        self.actions.get(name)
    }

    pub fn latency(&self, step: &Step) -> Duration {
        self.action(step.action.name)
            .and_then(|a| a.latency)
            .unwrap_or(self.default_latency)
    }
}

/// A scenario's duration, or an error where it is written.
fn duration(found: &mut Findings, s: &Option<S<String>>, what: &str) -> Option<Duration> {
    let s = s.as_ref()?;
    parse_duration(&s.value)
        .map_err(|e| {
            found.error(pos(s), format!("bad duration for `{what}`: {e}"));
        })
        .ok()
}

fn clock(found: &mut Findings, c: &S<String>) -> ClockMode {
    match c.value.as_str() {
        "virtual" => ClockMode::Virtual,
        "realtime" => ClockMode::Realtime,
        other => {
            found.error(pos(c), format!("unknown clock `{other}`")).help =
                Some("`virtual` (finishes at once) or `realtime`".into());
            ClockMode::Virtual
        }
    }
}

/// How the scenario simulates one action: its latency, faults and outputs;
/// `None` when it names no action.
fn action_sim(found: &mut Findings, name: &S<String>, a: RawActionSim) -> Option<ActionSim> {
    validate::action(found, name, providers::find_action)?;
    let mut sim = ActionSim {
        latency: duration(found, &a.latency, "latency"),
        ..ActionSim::default()
    };
    for f in a.faults {
        let Some(kind) = fault(found, &f.error) else {
            continue;
        };
        sim.faults.push(Fault {
            attempts: f.attempts.map(|a| a.value).unwrap_or(1),
            kind,
            retry_after: duration(found, &f.retry_after, "retry_after"),
        });
    }
    for (k, v) in a.outputs.0 {
        sim.outputs.insert(k.value, v.value.to_json());
    }
    Some(sim)
}

/// `--pace real|Nx`: how many times as fast as the wall clock a drill runs.
pub fn parse_pace(s: &str) -> Result<u32, String> {
    let bad = || format!("`{s}` is not a pace: `real`, or a speed-up such as `20x`");
    match s.trim() {
        "real" | "1x" => Ok(1),
        other => match other.strip_suffix('x').map(str::parse::<u32>) {
            Some(Ok(n)) if (1..=10_000).contains(&n) => Ok(n),
            _ => Err(bad()),
        },
    }
}

/// One inject, checked: a one-word name not taken, `at` or `after` (not
/// both), known actions and faults. What it names of the runbook is added
/// to `named`.
fn inject(
    found: &mut Findings,
    raw: RawInject,
    taken: &[Inject],
    named: &mut Vec<Named>,
) -> Option<Inject> {
    let name = &raw.name.value;
    let well_formed = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !well_formed || taken.iter().any(|i| i.name == *name) {
        let why = match well_formed {
            true => format!("inject `{name}` is named twice"),
            false => format!("inject name `{name}` is not one word"),
        };
        found.error(pos(&raw.name), why).help = Some(
            "name each inject once, in letters, digits, `-` and `_`, like `cloudtrail-down`".into(),
        );
    }
    let when = match (&raw.at, &raw.after) {
        (Some(_), Some(after)) => {
            found.error(pos(after), format!("inject `{name}` has both `at` and `after`")).help =
                Some("an inject fires at a time (`at: 45s`) or after a step (`after: deactivate`), not both".into());
            InjectWhen::ByHand
        }
        (Some(_), None) => InjectWhen::At(duration(found, &raw.at, "at")?),
        (None, Some(after)) => InjectWhen::After(after.value.clone()),
        (None, None) => InjectWhen::ByHand,
    };
    let mut faults = Vec::new();
    for (action, kind) in &raw.faults.0 {
        if validate::action(found, action, providers::find_action).is_some()
            && let Some(k) = fault(found, kind)
        {
            faults.push((action.value.clone(), k));
        }
    }
    let after = raw.after.iter().map(|a| (a, "an inject's `after`"));
    let leak = raw.leak.iter().flat_map(|l| &l.0).map(|(k, _)| (k, LEAK));
    named.extend(after.chain(leak).map(|(s, by)| Named {
        name: s.value.clone(),
        at: pos(s),
        by,
    }));
    Some(Inject {
        name: name.clone(),
        when,
        message: raw.message.value,
        lasts: duration(found, &raw.lasts, "lasts"),
        faults,
        leak: raw
            .leak
            .map(|l| l.0.into_iter().map(|(k, v)| (k.value, v.value)).collect()),
    })
}
