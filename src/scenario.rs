//! Rehearsal scenarios: how long each simulated action takes, which attempts
//! fail and how, how long the humans take, and a drill's injects: events
//! thrown at the team at a time, after a step, or by hand.

use std::collections::HashMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::providers;
use crate::runbook::diagnostic::{Diagnostic, Diagnostics, Pos, SourceFile, did_you_mean};
use crate::runbook::raw::{RawValue, S, SpannedMap};
use crate::runbook::validate::yaml_error;
use crate::runbook::{Runbook, Step};
use crate::time::parse_duration;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    #[schemars(with = "Option<String>")]
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
    #[schemars(with = "String")]
    name: S<String>,
    /// Fires this long after the drill starts (`45s`).
    #[schemars(with = "Option<String>")]
    at: Option<S<String>>,
    /// Fires once this step has settled. Neither `at` nor `after`: only by hand.
    #[schemars(with = "Option<String>")]
    after: Option<S<String>>,
    /// Posted to the drill's channel when it fires.
    #[schemars(with = "String")]
    message: S<String>,
    /// How long its faults last; omitted: to the end of the drill.
    #[schemars(with = "Option<String>")]
    lasts: Option<S<String>>,
    /// Action to the fault it answers while the inject lasts
    /// (`aws.cloudtrail_lookup: server_error`).
    #[serde(default)]
    #[schemars(with = "std::collections::BTreeMap<String, String>")]
    faults: SpannedMap<S<String>>,
    /// A second credential has leaked: a Slack drill starts a second drill
    /// of the runbook, linked to the first, with these inputs in place of
    /// the first's (`access_key_id: AKIA…`).
    #[schemars(with = "Option<std::collections::BTreeMap<String, String>>")]
    leak: Option<SpannedMap<S<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    #[schemars(with = "Option<String>")]
    latency: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    approval: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawActionSim {
    #[schemars(with = "Option<String>")]
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
    #[schemars(with = "Option<u32>")]
    attempts: Option<S<u32>>,
    #[schemars(with = "String")]
    error: S<String>,
    #[schemars(with = "Option<String>")]
    retry_after: Option<S<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManual {
    #[schemars(with = "Option<String>")]
    after: Option<S<String>>,
    #[schemars(with = "Option<String>")]
    answer: Option<S<String>>,
    #[schemars(with = "Option<bool>")]
    approve: Option<S<bool>>,
    #[schemars(with = "Option<String>")]
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

impl FaultKind {
    const NAMES: [&'static str; 4] = ["throttled", "server_error", "timeout", "permanent"];

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "throttled" => Self::Throttled,
            "server_error" => Self::ServerError,
            "timeout" => Self::Timeout,
            "permanent" => Self::Permanent,
            _ => return None,
        })
    }
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
    manual_pos: HashMap<String, Pos>,
    /// Where each inject's `after` names its step.
    after_pos: Vec<(String, Pos)>,
    /// Where each inject's `leak` names an input.
    leak_pos: Vec<(String, Pos)>,
    source: Option<SourceFile>,
}

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
            manual_pos: HashMap::new(),
            after_pos: Vec::new(),
            leak_pos: Vec::new(),
            source: None,
        }
    }
}

impl Scenario {
    pub fn load(path: &std::path::Path) -> Result<Scenario, crate::runbook::LoadError> {
        let bytes = std::fs::read(path).map_err(|e| crate::runbook::LoadError::Io {
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        })?;
        crate::runbook::decode(path.display().to_string(), bytes, "scenario")
            .and_then(Self::parse)
            .map_err(crate::runbook::LoadError::Invalid)
    }

    pub fn parse(source: SourceFile) -> Result<Scenario, Diagnostics> {
        let raw: RawScenario = serde_saphyr::from_str(&source.text)
            .map_err(|e| Diagnostics(vec![yaml_error(&source, &e)]))?;
        let mut diags = Vec::new();
        let dur = |s: &Option<S<String>>, what: &str, diags: &mut Vec<Diagnostic>| {
            duration(&source, s, what, diags)
        };
        let mut sc = Scenario {
            source: Some(source.clone()),
            ..Scenario::default()
        };
        if let Some(c) = &raw.clock {
            sc.clock = clock(&source, c, &mut diags);
        }
        if let Some(d) = &raw.defaults {
            if let Some(l) = dur(&d.latency, "defaults.latency", &mut diags) {
                sc.default_latency = l;
            }
            if let Some(a) = dur(&d.approval, "defaults.approval", &mut diags) {
                sc.default_approval = a;
            }
        }
        for (name, a) in raw.actions.0 {
            if let Some(sim) = action_sim(&source, &name, a, &mut diags) {
                sc.actions.insert(name.value, sim);
            }
        }
        for (step, m) in raw.manual.0 {
            sc.manual_pos
                .insert(step.value.clone(), Pos::from_location(&step.referenced));
            sc.manual.insert(
                step.value,
                ManualSim {
                    after: dur(&m.after, "after", &mut diags).unwrap_or(Duration::from_secs(60)),
                    answer: m.answer.map(|a| a.value),
                    approve: m.approve.map(|a| a.value).unwrap_or(true),
                    by: m.by.map(|b| b.value).unwrap_or_else(|| "rehearsal".into()),
                },
            );
        }
        for raw in raw.injects {
            if let Some((inject, named)) = inject(&source, raw, &sc.injects, &mut diags) {
                sc.after_pos.extend(named.after);
                sc.leak_pos.extend(named.inputs);
                sc.injects.push(inject);
            }
        }
        if diags.is_empty() {
            Ok(sc)
        } else {
            Err(Diagnostics(diags))
        }
    }

    /// The inject named `name`.
    pub fn inject(&self, name: &str) -> Option<&Inject> {
        self.injects.iter().find(|i| i.name == name)
    }

    /// Checks the scenario against the runbook it drives: `manual` names steps.
    pub fn check_against(&self, runbook: &Runbook) -> Result<(), Diagnostics> {
        let Some(source) = &self.source else {
            return Ok(());
        };
        let mut diags = Vec::new();
        let named = self
            .manual_pos
            .iter()
            .map(|(s, at)| (s, at, "manual"))
            .chain(
                self.after_pos
                    .iter()
                    .map(|(s, at)| (s, at, "an inject's `after`")),
            );
        for (step, at, what) in named {
            if runbook.step(step).is_none() {
                let help = did_you_mean(step, runbook.steps.iter().map(|s| s.id.as_str()))
                    .unwrap_or_else(|| format!("{what} names steps of `{}`", runbook.name));
                diags.push(
                    Diagnostic::error(
                        source,
                        *at,
                        format!("`{step}` is not a step of `{}`", runbook.name),
                    )
                    .help(help),
                );
            }
        }
        for (input, at) in &self.leak_pos {
            if runbook.input(input).is_none() {
                let help = did_you_mean(input, runbook.inputs.iter().map(|i| i.name.as_str()))
                    .unwrap_or_else(|| format!("`leak` gives inputs of `{}`", runbook.name));
                diags.push(
                    Diagnostic::error(
                        source,
                        *at,
                        format!("`{input}` is not an input of `{}`", runbook.name),
                    )
                    .help(help),
                );
            }
        }
        if diags.is_empty() {
            Ok(())
        } else {
            Err(Diagnostics(diags))
        }
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
fn duration(
    source: &SourceFile,
    s: &Option<S<String>>,
    what: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<Duration> {
    let s = s.as_ref()?;
    match parse_duration(&s.value) {
        Ok(d) => Some(d),
        Err(e) => {
            diags.push(Diagnostic::error(
                source,
                Pos::from_location(&s.referenced),
                format!("bad duration for `{what}`: {e}"),
            ));
            None
        }
    }
}

fn clock(source: &SourceFile, c: &S<String>, diags: &mut Vec<Diagnostic>) -> ClockMode {
    match c.value.as_str() {
        "virtual" => ClockMode::Virtual,
        "realtime" => ClockMode::Realtime,
        other => {
            diags.push(
                Diagnostic::error(
                    source,
                    Pos::from_location(&c.referenced),
                    format!("unknown clock `{other}`"),
                )
                .help("`virtual` (finishes at once) or `realtime`"),
            );
            ClockMode::Virtual
        }
    }
}

/// How the scenario simulates one action: its latency, faults and outputs;
/// `None` when it names no action.
fn action_sim(
    source: &SourceFile,
    name: &S<String>,
    a: RawActionSim,
    diags: &mut Vec<Diagnostic>,
) -> Option<ActionSim> {
    if providers::find_action(&name.value).is_none() {
        let help = did_you_mean(&name.value, providers::all_actions().map(|a| a.name))
            .unwrap_or_else(|| "`quench providers` lists every action".into());
        diags.push(
            Diagnostic::error(
                source,
                Pos::from_location(&name.referenced),
                format!("unknown action `{}`", name.value),
            )
            .help(help),
        );
        return None;
    }
    let mut sim = ActionSim {
        latency: duration(source, &a.latency, "latency", diags),
        ..ActionSim::default()
    };
    for f in a.faults {
        let Some(kind) = FaultKind::parse(&f.error.value) else {
            let help = did_you_mean(&f.error.value, FaultKind::NAMES)
                .unwrap_or_else(|| format!("faults: {}", FaultKind::NAMES.join(", ")));
            diags.push(
                Diagnostic::error(
                    source,
                    Pos::from_location(&f.error.referenced),
                    format!("unknown fault `{}`", f.error.value),
                )
                .help(help),
            );
            continue;
        };
        sim.faults.push(Fault {
            attempts: f.attempts.map(|a| a.value).unwrap_or(1),
            kind,
            retry_after: duration(source, &f.retry_after, "retry_after", diags),
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

/// What an inject names of the runbook, and where, for
/// [`Scenario::check_against`]: the step of its `after`, the inputs of its
/// `leak`.
struct Named {
    after: Option<(String, Pos)>,
    inputs: Vec<(String, Pos)>,
}

/// One inject, checked: a one-word name not taken, `at` or `after` (not
/// both), known actions and faults. Returns it, and what it names.
fn inject(
    source: &SourceFile,
    raw: RawInject,
    taken: &[Inject],
    diags: &mut Vec<Diagnostic>,
) -> Option<(Inject, Named)> {
    let at = |s: &S<String>| Pos::from_location(&s.referenced);
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
        diags.push(Diagnostic::error(source, at(&raw.name), why).help(
            "name each inject once, in letters, digits, `-` and `_`, like `cloudtrail-down`",
        ));
    }
    let when = match (&raw.at, &raw.after) {
        (Some(_), Some(after)) => {
            diags.push(
                Diagnostic::error(source, at(after), format!("inject `{name}` has both `at` and `after`"))
                    .help("an inject fires at a time (`at: 45s`) or after a step (`after: deactivate`), not both"),
            );
            InjectWhen::ByHand
        }
        (Some(_), None) => InjectWhen::At(duration(source, &raw.at, "at", diags)?),
        (None, Some(after)) => InjectWhen::After(after.value.clone()),
        (None, None) => InjectWhen::ByHand,
    };
    let mut faults = Vec::new();
    for (action, kind) in &raw.faults.0 {
        if providers::find_action(&action.value).is_none() {
            let help = did_you_mean(&action.value, providers::all_actions().map(|a| a.name))
                .unwrap_or_else(|| "`quench providers` lists every action".into());
            diags.push(
                Diagnostic::error(
                    source,
                    at(action),
                    format!("unknown action `{}`", action.value),
                )
                .help(help),
            );
            continue;
        }
        match FaultKind::parse(&kind.value) {
            Some(k) => faults.push((action.value.clone(), k)),
            None => diags.push(
                Diagnostic::error(source, at(kind), format!("unknown fault `{}`", kind.value))
                    .help(
                        did_you_mean(&kind.value, FaultKind::NAMES)
                            .unwrap_or_else(|| format!("faults: {}", FaultKind::NAMES.join(", "))),
                    ),
            ),
        }
    }
    let named = Named {
        after: raw.after.as_ref().map(|a| (a.value.clone(), at(a))),
        inputs: raw
            .leak
            .iter()
            .flat_map(|l| &l.0)
            .map(|(k, _)| (k.value.clone(), at(k)))
            .collect(),
    };
    let inject = Inject {
        name: name.clone(),
        when,
        message: raw.message.value,
        lasts: duration(source, &raw.lasts, "lasts", diags),
        faults,
        leak: raw
            .leak
            .map(|l| l.0.into_iter().map(|(k, v)| (k.value, v.value)).collect()),
    };
    Some((inject, named))
}
