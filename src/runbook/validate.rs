//! Raw runbook → validated model. Pure: no network, no credentials. Every
//! problem becomes a diagnostic with its file, line and column; all of them
//! are collected before giving up, so one `validate` shows every mistake.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use sha2::{Digest, Sha256};

use super::diagnostic::{
    Diagnostic, Diagnostics, Findings, Pos, SourceFile, did_you_mean, pos, ticked,
};
use super::model::*;
use super::raw::{RawRetry, RawRunbook, RawStep, RawValue, S};
use super::template::{self, INCIDENT_FIELDS, Ref};
use crate::providers::{self, ActionSpec, ParamType};
use crate::time::parse_duration;

/// A runbook that passed validation, with the warnings it earned.
#[derive(Debug)]
pub struct Loaded {
    pub runbook: Runbook,
    pub warnings: Vec<Diagnostic>,
}

/// A runbook's name: `^[a-z0-9][a-z0-9-]*$` (a character test, not a
/// regex: compiling one costs more than validating a whole runbook).
fn is_name(s: &str) -> bool {
    let lower_or_digit = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    s.starts_with(lower_or_digit) && s.chars().all(|c| lower_or_digit(c) || c == '-')
}

/// A step's, input's or secret's id: `^[a-z][a-z0-9_]*$`.
fn is_id(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

static UNKNOWN_FIELD_RE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"unknown (?:field|variant) `([^`]*)`, expected (?:one of )?(.*)").unwrap()
});
static LOCATION_PREFIX_RE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:error: )?line \d+ column \d+: ").unwrap());

/// Reads and validates the runbook at `path`.
pub fn load(path: &std::path::Path) -> Result<Loaded, LoadError> {
    parse(read(path)?).map_err(LoadError::Invalid)
}

/// Reads the runbook at `path`, as [`load`] does, without validating it.
pub fn read(path: &std::path::Path) -> Result<SourceFile, LoadError> {
    read_yaml(path, "runbook")
}

/// Reads the YAML file at `path` (`what` is a runbook or a scenario).
pub fn read_yaml(path: &std::path::Path, what: &str) -> Result<SourceFile, LoadError> {
    let bytes = std::fs::read(path).map_err(|e| LoadError::Io {
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    })?;
    decode(path.display().to_string(), bytes, what).map_err(LoadError::Invalid)
}

/// The text of a YAML file, or an error located at its first byte that is
/// not UTF-8.
fn decode(path: String, bytes: Vec<u8>, what: &str) -> Result<SourceFile, Diagnostics> {
    let err = match String::from_utf8(bytes) {
        Ok(text) => return Ok(SourceFile::new(path, text)),
        Err(e) => e,
    };
    let valid_up_to = err.utf8_error().valid_up_to();
    let bytes = err.into_bytes();
    let before = std::str::from_utf8(&bytes[..valid_up_to]).unwrap_or_default();
    let line = before.matches('\n').count() as u64 + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count() as u64
        + 1;
    let source = SourceFile::new(path, String::from_utf8_lossy(&bytes).into_owned());
    let d = Diagnostic::error(
        &source,
        Pos {
            line,
            column,
            len: 1,
        },
        format!("{what} is not UTF-8 (byte 0x{:02x})", bytes[valid_up_to]),
    )
    .label("not UTF-8")
    .help("save the file as UTF-8 (YAML runbooks are UTF-8 text)");
    Err(Diagnostics(vec![d]))
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("failed to read `{path}`: {reason}")]
    Io { path: String, reason: String },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// The source's YAML read as `T`, or an error at its location, with a
/// suggestion when a field name is misspelt.
pub fn from_yaml<T: serde::de::DeserializeOwned>(source: &SourceFile) -> Result<T, Diagnostics> {
    let err = match serde_saphyr::from_str(&source.text) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    let pos = err
        .location()
        .map(|l| Pos::from_location(&l))
        .unwrap_or(Pos::START);
    let full = err.without_snippet().to_string();
    let first = full.lines().next().unwrap_or_default();
    let message = LOCATION_PREFIX_RE.replace(first, "").to_string();
    let mut d = Diagnostic::error(source, pos, message.clone());
    if let Some(c) = UNKNOWN_FIELD_RE.captures(&message) {
        let given = c.get(1).map_or("", |m| m.as_str());
        let expected: Vec<String> = c
            .get(2)
            .map_or("", |m| m.as_str())
            .split(", ")
            .map(|s| s.trim().trim_matches('`').to_string())
            .collect();
        d.help = did_you_mean(given, expected.iter().map(String::as_str)).or_else(|| {
            Some(format!(
                "the fields allowed here are: {}",
                expected.join(", ")
            ))
        });
    }
    Err(Diagnostics(vec![d]))
}

pub fn parse(source: SourceFile) -> Result<Loaded, Diagnostics> {
    parse_with(source, providers::find_action)
}

/// [`parse`], with the actions `find` knows: tests declare their own.
pub(crate) fn parse_with(
    source: SourceFile,
    find: fn(&str) -> Option<&'static ActionSpec>,
) -> Result<Loaded, Diagnostics> {
    let raw: RawRunbook = from_yaml(&source)?;
    let mut v = Validator {
        found: Findings::new(&source),
        line_starts: std::iter::once(0)
            .chain(source.text.match_indices('\n').map(|(at, _)| at + 1))
            .collect(),
        find,
        secrets_read: BTreeSet::new(),
    };
    let runbook = v.runbook(raw);
    let (errors, warnings): (Vec<_>, Vec<_>) =
        v.found.diags.into_iter().partition(|d| d.is_error());
    match runbook {
        Some(runbook) if errors.is_empty() => Ok(Loaded { runbook, warnings }),
        _ => Err(Diagnostics(errors)),
    }
}

struct Validator<'a> {
    found: Findings<'a>,
    /// Where each line of the source starts: found once, not by walking the
    /// source from its top for each template (quadratic in the steps).
    line_starts: Vec<usize>,
    /// The action of a name, if one is declared.
    find: fn(&str) -> Option<&'static ActionSpec>,
    /// The secrets the templates checked since the last step read.
    secrets_read: BTreeSet<String>,
}

/// Everything a template check needs to know about the runbook.
struct Scope<'a> {
    inputs: Vec<&'a str>,
    secrets: Vec<&'a str>,
    steps: HashMap<&'a str, usize>,
    outputs: Vec<Vec<OutputDecl>>,
    upstream: Vec<HashSet<usize>>,
}

/// The two ways a step waits for others.
#[derive(Debug, Clone, Copy)]
enum Wait {
    /// For their success.
    Needs,
    /// For any result.
    Settled,
}

impl Wait {
    fn field(self) -> &'static str {
        match self {
            Wait::Needs => "needs",
            Wait::Settled => "settled",
        }
    }

    fn list(self, s: &RawStep) -> &[S<String>] {
        match self {
            Wait::Needs => &s.needs,
            Wait::Settled => &s.settled,
        }
    }
}

/// What each step needs, directly or through the steps it needs.
fn upstream(order: &[usize], needs: &[Vec<usize>]) -> Vec<HashSet<usize>> {
    let mut upstream: Vec<HashSet<usize>> = vec![HashSet::new(); needs.len()];
    for &i in order {
        let mut set = HashSet::new();
        for &j in &needs[i] {
            set.insert(j);
            set.extend(upstream[j].iter().copied());
        }
        upstream[i] = set;
    }
    upstream
}

impl Validator<'_> {
    fn error(&mut self, pos: Pos, message: impl Into<String>) -> &mut Diagnostic {
        self.found.error(pos, message)
    }

    fn duration(&mut self, s: &S<String>, what: &str) -> Option<Duration> {
        parse_duration(&s.value)
            .map_err(|e| {
                self.error(pos(s), format!("bad duration for `{what}`: {e}"))
                    .help = Some("durations look like `200ms`, `10s`, `5m`, `7d`".into());
            })
            .ok()
    }

    /// What a drill's scorecard holds its people to (`drill:`).
    fn drill_targets(&mut self, raw: &RawRunbook) -> DrillTargets {
        let Some(d) = &raw.drill else {
            return DrillTargets::default();
        };
        DrillTargets {
            approve_within: d
                .approve_within
                .as_ref()
                .and_then(|a| self.duration(a, "drill.approve_within")),
            answer_within: d
                .answer_within
                .as_ref()
                .and_then(|a| self.duration(a, "drill.answer_within")),
        }
    }

    /// The runbook's kind; a rotation may not have an SLO.
    fn kind(&mut self, raw: &RawRunbook) -> Kind {
        let kinds = Kind::ALL.map(|k| (k.name(), k));
        let kind = raw
            .kind
            .as_ref()
            .and_then(|k| {
                let otherwise = "kind is `compromise`, `procedure` or `rotation`";
                self.found.one_of(k, "kind", &kinds, otherwise)
            })
            .unwrap_or(Kind::Procedure);
        if kind == Kind::Rotation
            && let Some(slo) = &raw.slo
        {
            let at = slo
                .revoke_within
                .as_ref()
                .or(raw.kind.as_ref())
                .map(pos)
                .unwrap_or(Pos::START);
            self.error(at, "a rotation has no SLO".to_string()).help = Some(
                "remove `slo`: a scheduled rotation is not racing an attacker, so nothing is timed against a revocation deadline".into(),
            );
        }
        kind
    }

    fn runbook(&mut self, raw: RawRunbook) -> Option<Runbook> {
        if !is_name(&raw.name.value) {
            self.error(
                pos(&raw.name),
                format!("runbook name `{}` is not valid", raw.name.value),
            )
            .help = Some(
                "use lowercase letters, digits and `-`, like `aws-access-key-compromise`".into(),
            );
        }
        let kind = self.kind(&raw);
        let revoke_within = raw
            .slo
            .as_ref()
            .and_then(|s| s.revoke_within.as_ref())
            .and_then(|d| self.duration(d, "slo.revoke_within"))
            .unwrap_or(DEFAULT_REVOKE_WITHIN);
        let drill = self.drill_targets(&raw);

        let inputs = self.inputs(&raw);
        let mut secrets = Vec::new();
        for (name, decl) in &raw.secrets.0 {
            if !is_id(&name.value) {
                self.error(
                    pos(name),
                    format!("secret name `{}` is not valid", name.value),
                )
                .help = Some("use lowercase letters, digits and `_`".into());
            }
            if inputs.iter().any(|i: &Input| i.name == name.value) {
                self.error(
                    pos(name),
                    format!("`{}` is declared both as an input and a secret", name.value),
                )
                .help = Some(
                    "a value is either an input (shown) or a secret (never shown), not both".into(),
                );
            }
            secrets.push(SecretDecl {
                name: name.value.clone(),
                description: decl.description.as_ref().map(|d| d.value.clone()),
                optional: decl.optional.as_ref().is_some_and(|o| o.value),
            });
        }

        let steps = self.steps(&raw, &inputs, &secrets)?;

        if kind == Kind::Compromise {
            let present: BTreeSet<Phase> = steps.iter().map(|s| s.phase).collect();
            let missing: Vec<Phase> = Phase::ALL
                .into_iter()
                .filter(|p| !present.contains(p))
                .collect();
            if !missing.is_empty() {
                let at = raw.kind.as_ref().map(pos).unwrap_or(Pos::START);
                let list = ticked(missing);
                self.found.warning(
                    at,
                    format!("compromise runbook has no step in phase {list}"),
                    "a compromise response covers revoke, replace, audit, notify, update, document, review and prevent",
                );
            }
        }

        Some(Runbook {
            name: raw.name.value.clone(),
            title: raw
                .title
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_else(|| raw.name.value.clone()),
            kind,
            description: raw.description.as_ref().map(|d| d.value.clone()),
            revoke_within,
            drill,
            inputs,
            secrets,
            steps,
            hash: hex(&Sha256::digest(self.found.source.text.as_bytes())),
            source: self.found.source.clone(),
        })
    }

    fn inputs(&mut self, raw: &RawRunbook) -> Vec<Input> {
        let mut inputs = Vec::new();
        for (name, decl) in &raw.inputs.0 {
            if !is_id(&name.value) {
                self.error(
                    pos(name),
                    format!("input name `{}` is not valid", name.value),
                )
                .help = Some("use lowercase letters, digits and `_`, like `access_key_id`".into());
            }
            let pattern = decl
                .pattern
                .as_ref()
                .and_then(|p| match Regex::new(&p.value) {
                    Ok(re) => Some(re),
                    Err(e) => {
                        let first = e.to_string().lines().last().unwrap_or_default().to_string();
                        self.error(
                            pos(p),
                            format!(
                                "input `{}` has a pattern that is not a valid regex: {}",
                                name.value,
                                first.trim()
                            ),
                        );
                        None
                    }
                });
            for (what, value) in [("default", &decl.default), ("example", &decl.example)] {
                if let (Some(re), Some(v)) = (&pattern, value)
                    && !re.is_match(&v.value)
                {
                    self.error(
                        pos(v),
                        format!(
                            "the {what} of input `{}` does not match its pattern `{}`",
                            name.value,
                            re.as_str()
                        ),
                    );
                }
            }
            inputs.push(Input {
                name: name.value.clone(),
                description: decl.description.as_ref().map(|d| d.value.clone()),
                pattern,
                default: decl.default.as_ref().map(|d| d.value.clone()),
                example: decl.example.as_ref().map(|d| d.value.clone()),
            });
        }
        inputs
    }

    fn steps(
        &mut self,
        raw: &RawRunbook,
        inputs: &[Input],
        secrets: &[SecretDecl],
    ) -> Option<Vec<Step>> {
        let raw_steps = &raw.steps.value;
        if raw_steps.is_empty() {
            self.error(pos(&raw.steps), "runbook has no steps");
            return None;
        }
        // Ids first: everything else refers to them.
        let ids = self.step_ids(raw_steps);
        let actions: Vec<Option<&'static ActionSpec>> = raw_steps
            .iter()
            .map(|s| action(&mut self.found, &s.action, self.find))
            .collect();

        // The graph: `needs` and `settled` name other steps, and do not loop.
        let needs = self.dependencies(raw_steps, &ids, Wait::Needs);
        let settled = self.dependencies(raw_steps, &ids, Wait::Settled);
        self.check_needs_and_settled_apart(raw_steps);
        let waits: Vec<Vec<usize>> = needs
            .iter()
            .zip(&settled)
            .map(|(n, s)| n.iter().chain(s).copied().collect())
            .collect();
        let order = self.topological(raw_steps, &waits)?;

        let outputs: Vec<Vec<OutputDecl>> = raw_steps
            .iter()
            .zip(&actions)
            .map(|(s, a)| a.map(|a| declared_outputs(a, s)).unwrap_or_default())
            .collect();
        let scope = Scope {
            inputs: inputs.iter().map(|i| i.name.as_str()).collect(),
            secrets: secrets.iter().map(|s| s.name.as_str()).collect(),
            steps: ids,
            outputs,
            // Only what a step needs has surely made its outputs.
            upstream: upstream(&order, &needs),
        };

        let mut built: Vec<Option<Step>> = Vec::with_capacity(raw_steps.len());
        for (i, s) in raw_steps.iter().enumerate() {
            built.push(actions[i].and_then(|a| self.step(i, s, a, &scope)));
        }
        let step_ids = |deps: &[usize]| -> Vec<StepId> {
            deps.iter()
                .map(|&j| StepId(raw_steps[j].id.value.clone()))
                .collect()
        };
        // Deferred: `after` here or on anything it waits for.
        let mut deferred = vec![false; raw_steps.len()];
        for &i in &order {
            deferred[i] = raw_steps[i].after.is_some() || waits[i].iter().any(|&j| deferred[j]);
        }
        let mut steps = Vec::with_capacity(order.len());
        for &i in &order {
            let mut step = built[i].take()?;
            step.needs = step_ids(&needs[i]);
            step.settled = step_ids(&settled[i]);
            step.deferred = deferred[i];
            steps.push(step);
        }
        self.check_verify_waits(raw_steps, &order, &steps, &upstream(&order, &waits));
        Some(steps)
    }

    /// Each step's id by index; invalid and duplicate ids are reported.
    fn step_ids<'r>(&mut self, raw_steps: &'r [RawStep]) -> HashMap<&'r str, usize> {
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (i, s) in raw_steps.iter().enumerate() {
            if !is_id(&s.id.value) {
                let hint = if s.id.value.contains('-') {
                    format!("use `_` instead of `-`: `{}`", s.id.value.replace('-', "_"))
                } else {
                    "use lowercase letters, digits and `_`, starting with a letter".into()
                };
                self.error(pos(&s.id), format!("step id `{}` is not valid", s.id.value))
                    .help = Some(hint);
            }
            if let Some(&first) = ids.get(s.id.value.as_str()) {
                let first_line = pos(&raw_steps[first].id).line;
                self.error(pos(&s.id), format!("duplicate step id `{}`", s.id.value))
                    .help = Some(format!(
                    "step ids are unique; the first `{}` is on line {first_line}",
                    s.id.value
                ));
            } else {
                ids.insert(&s.id.value, i);
            }
        }
        ids
    }

    /// The steps each step waits for through one of its lists, by index;
    /// an entry that is not another step is reported where it is written.
    fn dependencies(
        &mut self,
        raw_steps: &[RawStep],
        ids: &HashMap<&str, usize>,
        wait: Wait,
    ) -> Vec<Vec<usize>> {
        let mut all = Vec::with_capacity(raw_steps.len());
        for s in raw_steps {
            let mut deps = Vec::new();
            for n in wait.list(s) {
                match ids.get(n.value.as_str()) {
                    Some(&j) if raw_steps[j].id.value == s.id.value => {
                        let message = match wait {
                            Wait::Needs => "needs itself",
                            Wait::Settled => "waits for itself to settle",
                        };
                        self.error(pos(n), format!("step `{}` {message}", s.id.value));
                    }
                    Some(&j) => deps.push(j),
                    None => {
                        let help = did_you_mean(&n.value, ids.keys().copied());
                        let (id, to) = (&s.id.value, &n.value);
                        let message = match wait {
                            Wait::Needs => format!("step `{id}` needs `{to}`, which is not a step"),
                            Wait::Settled => format!(
                                "step `{id}` waits for `{to}` to settle, which is not a step"
                            ),
                        };
                        self.error(pos(n), message).help = help.or(Some(format!(
                            "`{}` lists ids of other steps in this runbook",
                            wait.field()
                        )));
                    }
                }
            }
            all.push(deps);
        }
        all
    }

    /// A step waits for another either for its success or for any result,
    /// not both.
    fn check_needs_and_settled_apart(&mut self, raw_steps: &[RawStep]) {
        for s in raw_steps {
            for x in s
                .settled
                .iter()
                .filter(|x| s.needs.iter().any(|n| n.value == x.value))
            {
                self.error(
                    pos(x),
                    format!(
                        "step `{}` lists `{}` in both `needs` and `settled`",
                        s.id.value, x.value
                    ),
                )
                .help = Some(format!(
                    "keep `{}` in `needs` if `{}` runs only after its success, in `settled` if it runs whatever its result",
                    x.value, s.id.value
                ));
            }
        }
    }

    /// Kahn's algorithm, stable in file order; a cycle is reported at the
    /// `needs` or `settled` entry that closes it.
    fn topological(&mut self, raw_steps: &[RawStep], needs: &[Vec<usize>]) -> Option<Vec<usize>> {
        let n = raw_steps.len();
        let (order, done) = file_ordered(needs);
        if order.len() == n {
            return Some(order);
        }
        // Walk from a step on a cycle until a step repeats.
        let start = (0..n).find(|&i| !done[i]).expect("a step is left");
        let mut path = vec![start];
        let mut cur = start;
        loop {
            let next = *needs[cur]
                .iter()
                .find(|&&d| !done[d])
                .expect("cycle continues");
            if let Some(at) = path.iter().position(|&p| p == next) {
                let cycle: Vec<&str> = path[at..]
                    .iter()
                    .chain(std::iter::once(&next))
                    .map(|&i| raw_steps[i].id.value.as_str())
                    .collect();
                let closing = [Wait::Needs, Wait::Settled].into_iter().find_map(|w| {
                    w.list(&raw_steps[cur])
                        .iter()
                        .find(|x| x.value == raw_steps[next].id.value)
                        .map(|x| (w, pos(x)))
                });
                let (wait, entry) = closing.unwrap_or((Wait::Needs, pos(&raw_steps[cur].id)));
                self.error(
                    entry,
                    format!(
                        "steps depend on each other in a cycle: {}",
                        cycle.join(" → ")
                    ),
                )
                .help = Some(format!(
                    "remove `{}` from the `{}` of `{}`",
                    raw_steps[next].id.value,
                    wait.field(),
                    raw_steps[cur].id.value
                ));
                return None;
            }
            path.push(next);
            cur = next;
        }
    }

    fn step(
        &mut self,
        index: usize,
        s: &RawStep,
        action: &'static ActionSpec,
        scope: &Scope,
    ) -> Option<Step> {
        let errors_before = self.found.diags.iter().filter(|d| d.is_error()).count();
        let phase = self.found.one_of(
            &s.phase,
            "phase",
            &Phase::ALL.map(|p| (p.name(), p)),
            "phases: revoke, replace, audit, notify, update, document, review, prevent",
        );
        self.secrets_read.clear();
        let with = self.params(index, s, action, scope);
        let secrets = std::mem::take(&mut self.secrets_read).into_iter().collect();
        if let Some(w) = &s.when {
            let as_value = S {
                value: RawValue::String(w.value.clone()),
                referenced: w.referenced,
                defined: w.defined,
            };
            self.check_templates(index, &s.id.value, &as_value, false, "`when`", scope);
        }
        let timeout = s
            .timeout
            .as_ref()
            .and_then(|t| self.duration(t, "timeout"))
            .unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            self.error(
                s.timeout.as_ref().map(pos).unwrap_or(Pos::START),
                "`timeout` must be more than zero",
            );
        }
        let retry = s
            .retry
            .as_ref()
            .map_or(RetryPolicy::DEFAULT, |r| self.retry(r));
        let on_failure = s
            .on_failure
            .as_ref()
            .and_then(|o| {
                let table = [
                    ("abort", OnFailure::Abort),
                    ("continue", OnFailure::Continue),
                ];
                self.found
                    .one_of(o, "on_failure", &table, "`abort` or `continue`")
            })
            .unwrap_or(OnFailure::Continue);
        let approval = s.approval.as_ref().map(|a| Approval {
            approvers: a.approvers.iter().map(|x| x.value.clone()).collect(),
        });
        let after = s.after.as_ref().and_then(|a| self.duration(a, "after"));

        let errors_after = self.found.diags.iter().filter(|d| d.is_error()).count();
        if errors_after > errors_before {
            return None;
        }
        let step = Step {
            id: StepId(s.id.value.clone()),
            name: s.name.as_ref().map(|n| n.value.clone()),
            phase: phase?,
            action,
            with,
            // Set once the whole graph is known.
            needs: Vec::new(),
            settled: Vec::new(),
            when: s.when.as_ref().map(|w| w.value.clone()),
            timeout,
            retry,
            on_failure,
            approval,
            after,
            deferred: false,
            outputs: scope.outputs[index].clone(),
            idempotent: idempotent(s, action),
            secrets,
        };
        self.check_verify_phase(s, &step);
        Some(step)
    }

    /// A verify step proves dead a credential already revoked: it sits in
    /// `update` or later, so that it never counts as the revocation, nor
    /// moves the time to revoke.
    fn check_verify_phase(&mut self, s: &RawStep, step: &Step) {
        if !step.proves_dead() || step.phase >= Phase::Update {
            return;
        }
        let what = if step.action.proves_dead {
            format!("`{}`", step.action.name)
        } else {
            "`http.request` with `until_status`".into()
        };
        self.error(
            pos(&s.phase),
            format!("verify step `{}` is in phase `{}`", step.id, step.phase),
        )
        .help = Some(format!(
            "move it to phase `update`: {what} proves the credential dead once it is revoked, and only the steps that revoke it count towards the time to revoke"
        ));
    }

    /// A verify step that does not wait for every revoke step may check the
    /// credential before it is revoked, and find it alive.
    fn check_verify_waits(
        &mut self,
        raw_steps: &[RawStep],
        order: &[usize],
        steps: &[Step],
        waited: &[HashSet<usize>],
    ) {
        let revokes: Vec<usize> = order
            .iter()
            .zip(steps)
            .filter(|(_, s)| s.is_slo_revoke())
            .map(|(&i, _)| i)
            .collect();
        for (&i, step) in order
            .iter()
            .zip(steps)
            .filter(|(_, s)| s.proves_dead() && !s.deferred)
        {
            let missing: Vec<&str> = revokes
                .iter()
                .filter(|j| !waited[i].contains(j))
                .map(|&j| raw_steps[j].id.value.as_str())
                .collect();
            if missing.is_empty() {
                continue;
            }
            let list = ticked(missing);
            self.found.warning(
                pos(&raw_steps[i].id),
                format!(
                    "verify step `{}` does not wait for {list}: it may check the credential before it is revoked",
                    step.id
                ),
                format!("add {list} to the `needs` of `{}`", step.id),
            );
        }
    }

    /// Parameters: known, present, of the right shape, templates sound.
    fn params(
        &mut self,
        index: usize,
        s: &RawStep,
        action: &'static ActionSpec,
        scope: &Scope,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut with = serde_json::Map::new();
        for (key, value) in &s.with.0 {
            let Some(spec) = action.param(&key.value) else {
                let help = did_you_mean(&key.value, action.params.iter().map(|p| p.name))
                    .unwrap_or_else(|| {
                        let names = ticked(action.params.iter().map(|p| p.name));
                        format!("`{}` takes {names}", action.name)
                    });
                self.error(
                    pos(key),
                    format!("unknown parameter `{}` for `{}`", key.value, action.name),
                )
                .help = Some(help);
                continue;
            };
            self.check_type(action, spec.name, spec.ty, value);
            self.check_templates(
                index,
                &s.id.value,
                value,
                spec.secret,
                &format!("parameter `{}`", spec.name),
                scope,
            );
            with.insert(key.value.clone(), value.value.to_json());
        }
        for p in action.params.iter().filter(|p| p.required) {
            if s.param(p.name).is_none() {
                self.error(
                    pos(&s.action),
                    format!("`{}` needs parameter `{}` ({})", action.name, p.name, p.doc),
                )
                .help = Some(format!("add `{}: …` under `with:`", p.name));
            }
        }
        if action.name == "http.request" {
            self.check_http(s);
        }
        if action.name == "manual.task" {
            self.check_section(s);
        }
        with
    }

    fn retry(&mut self, r: &RawRetry) -> RetryPolicy {
        let mut retry = RetryPolicy::DEFAULT;
        if let Some(a) = &r.attempts {
            if a.value == 0 {
                self.error(
                    pos(a),
                    "`retry.attempts` counts the first attempt too, so it is at least 1",
                );
            }
            retry.attempts = a.value.max(1);
        }
        if let Some(d) = r
            .initial
            .as_ref()
            .and_then(|d| self.duration(d, "retry.initial"))
        {
            retry.initial = d;
        }
        if let Some(d) = r.max.as_ref().and_then(|d| self.duration(d, "retry.max")) {
            retry.max = d;
        }
        if retry.max < retry.initial
            && let Some(m) = &r.max
        {
            self.error(pos(m), "`retry.max` is shorter than `retry.initial`");
        }
        retry
    }

    fn check_type(&mut self, action: &ActionSpec, name: &str, ty: ParamType, value: &S<RawValue>) {
        let templated = |v: &RawValue| matches!(v, RawValue::String(s) if template::is_template(s));
        let scalar = |v: &RawValue| {
            matches!(
                v,
                RawValue::String(_) | RawValue::Int(_) | RawValue::Float(_) | RawValue::Bool(_)
            )
        };
        let ok = match ty {
            ParamType::Any => true,
            ParamType::String => scalar(&value.value),
            ParamType::Int => matches!(value.value, RawValue::Int(_)) || templated(&value.value),
            ParamType::Bool => matches!(value.value, RawValue::Bool(_)) || templated(&value.value),
            ParamType::StringList => match &value.value {
                RawValue::Seq(items) => items.iter().all(|i| scalar(&i.value)),
                other => templated(other),
            },
            ParamType::IntList => match &value.value {
                RawValue::Seq(items) => items
                    .iter()
                    .all(|i| matches!(i.value, RawValue::Int(_)) || templated(&i.value)),
                other => templated(other),
            },
            ParamType::StringMap => match &value.value {
                RawValue::Map(entries) => entries.iter().all(|(_, v)| scalar(&v.value)),
                _ => false,
            },
        };
        if !ok {
            self.error(
                pos(value),
                format!(
                    "parameter `{name}` of `{}` must be {}, not {}",
                    action.name,
                    ty.describe(),
                    value.value.type_name()
                ),
            );
        }
    }

    fn check_section(&mut self, s: &RawStep) {
        let sections = providers::manual::SECTIONS;
        if let Some(v) = s.param("section")
            && let RawValue::String(text) = &v.value
            && !sections.contains(&text.as_str())
        {
            let help = did_you_mean(text, sections.iter().copied())
                .unwrap_or_else(|| format!("a section is one of {}", ticked(sections)));
            self.error(pos(v), format!("`{text}` is not a postmortem section"))
                .help = Some(help);
        }
    }

    fn check_http(&mut self, s: &RawStep) {
        let get = |k: &str| s.param(k);
        if let Some(m) = get("method")
            && let RawValue::String(text) = &m.value
            && !template::is_template(text)
            && !providers::http::METHODS.contains(&text.to_uppercase().as_str())
        {
            let help = did_you_mean(
                &text.to_uppercase(),
                providers::http::METHODS.iter().copied(),
            );
            self.error(pos(m), format!("`{text}` is not an HTTP method"))
                .help = help;
        }
        if let (Some(_), Some(b)) = (get("json"), get("body")) {
            self.error(pos(b), "`http.request` takes `json` or `body`, not both");
        }
        if let (Some(_), Some(u)) = (get("expect_status"), get("until_status")) {
            self.error(
                pos(u),
                "`http.request` takes `expect_status` or `until_status`, not both",
            )
            .help = Some("`until_status` waits for its statuses; drop `expect_status`".into());
        }
        if let Some(u) = get("until_status")
            && matches!(&u.value, RawValue::Seq(items) if items.is_empty())
        {
            self.error(pos(u), "`until_status` names no status to wait for");
        }
        let mut names = Vec::new();
        if let Some(o) = get("outputs")
            && let RawValue::Map(entries) = &o.value
        {
            for (k, v) in entries {
                names.push(k.value.as_str());
                if let RawValue::String(p) = &v.value
                    && !p.is_empty()
                    && !p.starts_with('/')
                {
                    self.error(
                        pos(v),
                        format!(
                            "output `{}` has `{p}`, which is not a JSON pointer",
                            k.value
                        ),
                    )
                    .help = Some(format!(
                        "JSON pointers start with `/`: `/{}`",
                        p.replace('.', "/")
                    ));
                }
            }
        }
        if let Some(so) = get("secret_outputs")
            && let RawValue::Seq(items) = &so.value
        {
            for item in items {
                if let RawValue::String(n) = &item.value
                    && !names.contains(&n.as_str())
                {
                    let help = did_you_mean(n, names.iter().copied());
                    self.error(
                        pos(item),
                        format!("secret output `{n}` is not one of this step's `outputs`"),
                    )
                    .help = help;
                }
            }
        }
    }

    /// Checks every template inside `value`: what it reads exists, is
    /// upstream, and a secret only flows where the parameter allows one.
    fn check_templates(
        &mut self,
        index: usize,
        step_id: &str,
        value: &S<RawValue>,
        secret_ok: bool,
        what: &str,
        scope: &Scope,
    ) {
        match &value.value {
            RawValue::Seq(items) => {
                for item in items {
                    self.check_templates(index, step_id, item, secret_ok, what, scope);
                }
            }
            RawValue::Map(entries) => {
                for (_, v) in entries {
                    self.check_templates(index, step_id, v, secret_ok, what, scope);
                }
            }
            RawValue::String(text) if template::is_template(text) => {
                let start = self.content_start(pos(value));
                if text.len() > template::MAX_TEMPLATE_BYTES {
                    self.error(
                        start,
                        format!(
                            "this template is {} bytes, over the {} a runbook's string may have",
                            text.len(),
                            template::MAX_TEMPLATE_BYTES
                        ),
                    )
                    .help = Some("put long text in a file the step reads, or split it".into());
                    return;
                }
                let refs = match template::references(text) {
                    Ok(r) => r,
                    Err(e) => {
                        let first = e.lines().next().unwrap_or_default().to_string();
                        self.error(start, format!("template does not parse: {first}"));
                        return;
                    }
                };
                for r in refs {
                    let at = start.shifted(
                        text[..r.offset].chars().count() as u64,
                        r.raw.chars().count() as u64,
                    );
                    self.check_ref(
                        index, step_id, &r.raw, &r.target, at, secret_ok, what, scope,
                    );
                }
            }
            _ => {}
        }
    }

    /// A quoted scalar's content starts one column after its quote.
    fn content_start(&self, p: Pos) -> Pos {
        let line = usize::try_from(p.line)
            .ok()
            .and_then(|l| self.line_starts.get(l.checked_sub(1)?))
            .and_then(|&at| self.found.source.text[at..].lines().next())
            .unwrap_or_default();
        let quoted = matches!(
            line.chars().nth(p.column.saturating_sub(1) as usize),
            Some('"' | '\'')
        );
        if quoted { p.shifted(1, p.len) } else { p }
    }

    #[allow(clippy::too_many_arguments)]
    fn check_ref(
        &mut self,
        index: usize,
        step_id: &str,
        raw: &str,
        target: &Ref,
        at: Pos,
        secret_ok: bool,
        what: &str,
        scope: &Scope,
    ) {
        let leak = |kind: &str| {
            format!(
                "{kind} `{raw}` may not flow into {what} of step `{step_id}`, which is not secret-capable"
            )
        };
        match target {
            Ref::Input(name) => self.check_input_ref(name, at, scope),
            Ref::Secret(name) => {
                if !scope.secrets.contains(&name.as_str()) {
                    let help = did_you_mean(name, scope.secrets.iter().copied())
                        .or(Some(format!("declare `{name}` under `secrets:`")));
                    self.error(
                        at,
                        format!("template reads secret `{name}`, which is not declared"),
                    )
                    .help = help;
                } else if !secret_ok {
                    self.error(at, leak("secret")).help =
                        Some("a leaked value must never be rendered where it can be shown; use it only in a secret-capable parameter (`quench providers` marks them)".into());
                } else {
                    self.secrets_read.insert(name.clone());
                }
            }
            Ref::StepOutput { step, output } => {
                if let Some(o) = self.step_output(index, step_id, step, output, at, scope)
                    && o.secret
                    && !secret_ok
                {
                    self.error(at, leak("secret output")).help =
                        Some("secret outputs may only flow into secret-capable parameters (`quench providers` marks them)".into());
                }
            }
            Ref::StepOther { step } => {
                self.error(at, format!("template reads `{raw}`")).help =
                    Some(format!("read an output: `steps.{step}.outputs.<name>`"));
            }
            Ref::Incident(field) => {
                if !INCIDENT_FIELDS.contains(&field.as_str()) {
                    let help = did_you_mean(field, INCIDENT_FIELDS.iter().copied()).or(Some(
                        format!("incident fields: {}", INCIDENT_FIELDS.join(", ")),
                    ));
                    self.error(at, format!("`incident.{field}` is not an incident field"))
                        .help = help;
                }
            }
            Ref::Refused(why) => {
                self.error(at, format!("template reads `{raw}`: {why}")).help = Some(
                    "templates read `inputs.<name>`, `secrets.<name>`, `steps.<id>.outputs.<name>` and `incident.<field>`, by name".into(),
                );
            }
            Ref::Unknown => {
                self.error(at, format!("template reads `{raw}`, which is nothing a runbook declares")).help =
                    Some("templates read `inputs.<name>`, `secrets.<name>`, `steps.<id>.outputs.<name>` and `incident.<field>`".into());
            }
        }
    }

    fn check_input_ref(&mut self, name: &str, at: Pos, scope: &Scope) {
        if scope.inputs.contains(&name) {
            return;
        }
        let help = if scope.secrets.contains(&name) {
            Some(format!("`{name}` is a secret: read it as `secrets.{name}`"))
        } else {
            did_you_mean(name, scope.inputs.iter().copied())
                .or(Some(format!("declare `{name}` under `inputs:`")))
        };
        self.error(
            at,
            format!("template reads input `{name}`, which is not declared"),
        )
        .help = help;
    }

    /// The output `steps.<step>.outputs.<output>` that step `index` reads,
    /// if that step exists, is upstream and makes it.
    fn step_output<'s>(
        &mut self,
        index: usize,
        step_id: &str,
        step: &str,
        output: &str,
        at: Pos,
        scope: &'s Scope,
    ) -> Option<&'s OutputDecl> {
        let Some(&j) = scope.steps.get(step) else {
            let help = did_you_mean(step, scope.steps.keys().copied());
            self.error(
                at,
                format!("template reads step `{step}`, which is not a step"),
            )
            .help = help;
            return None;
        };
        if !scope.upstream[index].contains(&j) {
            self.error(
                at,
                format!("template reads `{step}`, which is not upstream of `{step_id}`"),
            )
            .help = Some(format!(
                "add `{step}` to the `needs` of `{step_id}`, so it runs first"
            ));
            return None;
        }
        let found = scope.outputs[j].iter().find(|o| o.name == output);
        if found.is_none() {
            let names = || scope.outputs[j].iter().map(|o| o.name.as_str());
            let help = did_you_mean(output, names()).or_else(|| {
                Some(match scope.outputs[j].is_empty() {
                    true => format!("`{step}` has no outputs"),
                    false => format!("`{step}` outputs {}", ticked(names())),
                })
            });
            self.error(at, format!("step `{step}` has no output `{output}`"))
                .help = help;
        }
        found
    }
}

/// Whether running the step twice does no harm: as the step declares it,
/// else as its action is known to be; an `http.request` whose method is
/// idempotent by HTTP's definition is.
fn idempotent(s: &RawStep, action: &ActionSpec) -> bool {
    if let Some(declared) = &s.idempotent {
        return declared.value;
    }
    if action.name == "http.request" {
        return match s.param("method").map(|v| &v.value) {
            None => true,
            Some(RawValue::String(m)) => {
                providers::http::IDEMPOTENT_METHODS.contains(&m.to_uppercase().as_str())
            }
            Some(_) => false,
        };
    }
    action.idempotent
}

/// The outputs a step makes: its action's, plus those `http.request` names.
fn declared_outputs(action: &ActionSpec, s: &RawStep) -> Vec<OutputDecl> {
    let mut outs: Vec<OutputDecl> = action
        .outputs
        .iter()
        .map(|o| OutputDecl {
            name: o.name.to_string(),
            secret: o.secret,
        })
        .collect();
    if action.dynamic_outputs {
        let get = |k: &str| s.param(k).map(|v| &v.value);
        let secret: Vec<String> = match get("secret_outputs") {
            Some(RawValue::Seq(items)) => items
                .iter()
                .filter_map(|i| match &i.value {
                    RawValue::String(n) => Some(n.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        if let Some(RawValue::Map(entries)) = get("outputs") {
            for (k, _) in entries {
                outs.push(OutputDecl {
                    name: k.value.clone(),
                    secret: secret.contains(&k.value),
                });
            }
        }
    }
    outs
}

/// The action `a` names, of those `find` knows; else an error.
pub(crate) fn action(
    found: &mut Findings,
    a: &S<String>,
    find: fn(&str) -> Option<&'static ActionSpec>,
) -> Option<&'static ActionSpec> {
    if let Some(spec) = find(&a.value) {
        return Some(spec);
    }
    let help = did_you_mean(&a.value, providers::all_actions().map(|a| a.name));
    found
        .error(pos(a), format!("unknown action `{}`", a.value))
        .help = help.or(Some("`quench providers` lists every action".into()));
    None
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Kahn's algorithm: the steps in an order where each comes after those it
/// needs, the first ready one in file order next; and which were ordered (a
/// step left out is on a cycle or after one). A heap of the ready steps and
/// each step's dependents, not a scan of every step per step, which is
/// quadratic.
fn file_ordered(needs: &[Vec<usize>]) -> (Vec<usize>, Vec<bool>) {
    use std::cmp::Reverse;
    let n = needs.len();
    let mut indegree: Vec<usize> = needs.iter().map(Vec::len).collect();
    let mut needed_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (k, deps) in needs.iter().enumerate() {
        for &d in deps {
            needed_by[d].push(k);
        }
    }
    let mut ready: std::collections::BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        done[i] = true;
        order.push(i);
        for &k in &needed_by[i] {
            indegree[k] -= 1;
            if indegree[k] == 0 {
                ready.push(Reverse(k));
            }
        }
    }
    (order, done)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{file_ordered, is_id, is_name, parse_with};
    use crate::providers::{self, ActionSpec};
    use crate::runbook::SourceFile;

    crate::action! {
        /// Whether the provider still accepts the leaked credential: a verify
        /// action for these tests, where the real ones are declared apart
        "vault.test_verify" in Vault => TestVerify [idempotent, proves_dead, engine] {
        } -> ()
    }

    static TEST_VERIFY: ActionSpec = TestVerify::SPEC;

    /// The declared actions, and `vault.test_verify`.
    fn with_test_verify(name: &str) -> Option<&'static ActionSpec> {
        if name == TEST_VERIFY.name {
            return Some(&TEST_VERIFY);
        }
        providers::find_action(name)
    }

    const REVOKE: &str = "name: t\nsteps:\n  - id: revoke\n    phase: revoke\n    action: vault.revoke_accessor\n    with: { accessor: a }\n";

    #[test]
    fn the_flag_says_which_actions_prove_the_credential_dead() {
        const { assert!(TestVerify::SPEC.proves_dead && TestVerify::SPEC.idempotent) };
        const { assert!(!providers::vault::RevokeAccessor::SPEC.proves_dead) };
        // A verify step only asks the provider: running it again is harmless.
        assert!(providers::all_actions().all(|a| !a.proves_dead || a.idempotent));
    }

    #[test]
    fn a_verify_step_in_phase_revoke_is_pointed_at() {
        let yaml = format!(
            "{REVOKE}  - id: check\n    phase: revoke\n    needs: [revoke]\n    action: vault.test_verify\n"
        );
        let err = parse_with(SourceFile::new("rb.yaml", yaml), with_test_verify).unwrap_err();
        assert_eq!(
            err.to_string(),
            "error: verify step `check` is in phase `revoke`
 --> rb.yaml:8:12
  |
8 |     phase: revoke
  |            ^^^^^^
  |
  = help: move it to phase `update`: `vault.test_verify` proves the credential dead once it is revoked, and only the steps that revoke it count towards the time to revoke"
        );
        // Before `update` is too early too; `update` and after are where it goes.
        for (phase, ok) in [("audit", false), ("update", true), ("document", true)] {
            let yaml = format!(
                "{REVOKE}  - id: check\n    phase: {phase}\n    needs: [revoke]\n    action: vault.test_verify\n"
            );
            let loaded = parse_with(SourceFile::new("rb.yaml", yaml), with_test_verify);
            assert_eq!(loaded.is_ok(), ok, "{phase}");
            if let Ok(loaded) = loaded {
                assert!(loaded.runbook.steps[1].proves_dead());
                assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
            }
        }
    }

    #[test]
    fn a_verify_step_that_may_run_before_the_revocation_is_warned_of() {
        let yaml =
            format!("{REVOKE}  - id: check\n    phase: update\n    action: vault.test_verify\n");
        let loaded = parse_with(SourceFile::new("rb.yaml", yaml), with_test_verify).unwrap();
        let [warning] = loaded.warnings.as_slice() else {
            panic!("{:?}", loaded.warnings);
        };
        assert_eq!(
            warning.to_string(),
            "warning: verify step `check` does not wait for `revoke`: it may check the credential before it is revoked
 --> rb.yaml:7:9
  |
7 |   - id: check
  |         ^^^^^
  |
  = help: add `revoke` to the `needs` of `check`"
        );
    }

    #[test]
    fn an_http_request_proves_the_credential_dead_when_it_waits_until_a_status() {
        let yaml = "name: t\nsteps:\n  - id: check\n    phase: update\n    action: http.request\n    with: { url: 'http://x' }\n";
        let mut step = parse_with(SourceFile::new("rb.yaml", yaml), with_test_verify)
            .unwrap()
            .runbook
            .steps
            .remove(0);
        assert!(!step.proves_dead());
        step.with
            .insert("until_status".into(), serde_json::json!([401, 403]));
        assert!(step.proves_dead());
    }

    /// What `file_ordered` does, the slow way: the first step in file order
    /// whose needs are all ordered, again and again.
    fn file_ordered_by_scanning(needs: &[Vec<usize>]) -> Vec<usize> {
        let mut order: Vec<usize> = Vec::new();
        while let Some(i) = (0..needs.len())
            .find(|i| !order.contains(i) && needs[*i].iter().all(|d| order.contains(d)))
        {
            order.push(i);
        }
        order
    }

    proptest! {
        /// Steps are ordered as the scan of every step per step
        /// ordered them, whatever the graph, cycles and repeated needs too.
        #[test]
        fn steps_are_ordered_as_a_scan_orders_them(
            needs in prop::collection::vec(prop::collection::vec(0usize..12, 0..3), 1..12)
        ) {
            let n = needs.len();
            let needs: Vec<Vec<usize>> = needs
                .into_iter()
                .enumerate()
                .map(|(i, deps)| deps.into_iter().map(|d| d % n).filter(|&d| d != i).collect())
                .collect();
            let (order, done) = file_ordered(&needs);
            prop_assert_eq!(&order, &file_ordered_by_scanning(&needs));
            prop_assert_eq!(done.iter().filter(|&&d| d).count(), order.len());
        }


        /// The character tests accept exactly what the documented patterns do.
        #[test]
        fn names_and_ids_match_their_patterns(s in "[a-z0-9_A-Z -]{0,6}") {
            let name = regex::Regex::new("^[a-z0-9][a-z0-9-]*$").unwrap();
            let id = regex::Regex::new("^[a-z][a-z0-9_]*$").unwrap();
            prop_assert_eq!(is_name(&s), name.is_match(&s));
            prop_assert_eq!(is_id(&s), id.is_match(&s));
        }
    }
}
