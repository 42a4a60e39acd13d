//! `quench rehearse`: one runbook or all of them against simulated providers, and drills.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use super::*;

/// `quench rehearse`: one runbook, or every runbook, against `sim`.
pub(super) fn rehearse_command(cli: &Cli, store: Store, args: &RehearseArgs) -> Result<u8, Error> {
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let templates = load_templates(cli.templates.as_deref())?;
    let detected_at = args.detected_at.as_deref();
    if args.all {
        return rehearse_all(&cli.runbooks, &store, &config, detected_at, &templates);
    }
    let runbook = args.runbook.as_deref().unwrap_or_default();
    let (rb, path) = load_runbook(&cli.runbooks, runbook)?;
    let detected_at = parse_detected_at(detected_at)?;
    let leaked_at = parse_leaked_at(args.leaked_at.as_deref(), detected_at)?;
    rehearse(Rehearsal {
        store,
        config: &config,
        runbook: rb,
        path,
        args,
        detected_at,
        leaked_at,
        quiet: false,
        templates,
    })
}

pub(super) struct Rehearsal<'a> {
    store: Store,
    config: &'a Config,
    runbook: Runbook,
    path: String,
    /// The scenario, inputs, secrets, trigger and pace the command gives.
    args: &'a RehearseArgs,
    detected_at: Option<DateTime<Utc>>,
    leaked_at: Option<DateTime<Utc>>,
    /// Print nothing while it runs (`rehearse --all` prints a table).
    quiet: bool,
    templates: Arc<document::Templates>,
}

pub(super) fn rehearse(r: Rehearsal<'_>) -> Result<u8, Error> {
    let rb = r.runbook;
    let inputs = resolve_inputs(&rb, &r.args.vars, InputMode::Rehearse)?;
    let secrets = resolve_secrets(&rb, &r.args.secrets, true, r.config)?;
    let scenario_text = match &r.args.scenario {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            Error::Usage(format!("failed to read `{}`: {}", p.display(), e.kind()))
        })?),
        None => None,
    };
    let scenario = match &r.args.scenario {
        Some(p) => Scenario::load(p)?,
        None => Scenario::default(),
    };
    scenario.check_against(&rb).map_err(Error::Invalid)?;
    let scenario = Arc::new(match r.args.pace {
        Some(pace) => scenario.into_drill(pace),
        None => scenario,
    });
    let rt = runtime(scenario.clock == ClockMode::Virtual)?;
    let live_display = scenario.clock == ClockMode::Realtime && std::io::stdout().is_terminal();
    let paused = Arc::new(AtomicBool::new(false));
    let humans = drill_humans(&scenario, &paused);
    let executor = Executor::Sim(Sim::new(scenario));
    let brief = Brief {
        inputs,
        secrets,
        detected_at: r.detected_at,
        leaked_at: r.leaked_at,
        humans,
        trigger: r.args.trigger.clone(),
        ..Brief::new(Start::Fresh, (rb, r.path), executor)
    };
    rt.block_on(execute(incident::Execution {
        scenario_text,
        display: on_screen(live_display, paused).filter(|_| !r.quiet),
        ..execution(r.store, r.templates, brief)
    }))
}

/// Who answers a rehearsal's approvals and tasks: the scenario; in a
/// drill, the people at the terminal what it does not script.
pub(super) fn drill_humans(scenario: &Arc<Scenario>, paused: &Arc<AtomicBool>) -> Humans {
    match scenario.drill {
        Some(_) => Humans::Drill {
            scenario: scenario.clone(),
            people: Box::new(at_terminal(false, paused)),
        },
        None => Humans::Simulated(scenario.clone()),
    }
}

/// Every runbook in the directory (the built-in ones if it has none),
/// rehearsed with its examples, as CI would on every runbook change.
pub(super) fn rehearse_all(
    dir: &Path,
    store: &Store,
    config: &Config,
    detected_at: Option<&str>,
    templates: &Arc<document::Templates>,
) -> Result<u8, Error> {
    let detected_at = parse_detected_at(detected_at)?;
    let mut names: Vec<String> = app::runbooks::list(dir)
        .into_iter()
        .filter(|(_, _, origin)| origin != "built in")
        .map(|(name, _, _)| name)
        .collect();
    if names.is_empty() {
        names = shipped::ALL.iter().map(|(n, _)| n.to_string()).collect();
    }
    let (mut any_failed, mut any_missed) = (false, false);
    let mut rows = Vec::new();
    for name in names {
        let before: std::collections::BTreeSet<String> = store.list().into_iter().collect();
        let result = load_runbook(dir, &name).and_then(|(rb, path)| {
            rehearse(Rehearsal {
                store: store.clone(),
                config,
                runbook: rb,
                path,
                args: &RehearseArgs::default(),
                detected_at,
                leaked_at: None,
                quiet: true,
                templates: templates.clone(),
            })
        });
        let id = store.list().into_iter().find(|i| !before.contains(i));
        let report = id.as_ref().and_then(|id| app::incidents::report(store, id));
        let code = match &result {
            Ok(c) => *c,
            Err(e) => e.exit_code(),
        };
        match code {
            0 => {}
            3 => any_missed = true,
            _ => any_failed = true,
        }
        let (outcome, ttr, slo) = match (&result, &report) {
            (Err(e), _) => (
                format!(
                    "error: {}",
                    e.to_string().lines().next().unwrap_or_default()
                ),
                String::new(),
                String::new(),
            ),
            (Ok(_), Some(r)) if r.rotation.is_some() => {
                (r.status.clone(), "—".into(), "— (rotation)".into())
            }
            (Ok(_), Some(r)) => (
                r.status.clone(),
                r.time_to_revoke.clone().unwrap_or_else(|| "—".into()),
                format!(
                    "{}{}",
                    r.slo,
                    match r.slo_met {
                        Some(true) => " met",
                        Some(false) => " MISSED",
                        None => "",
                    }
                ),
            ),
            (Ok(_), None) => ("?".into(), String::new(), String::new()),
        };
        rows.push((name, outcome, ttr, slo, id.unwrap_or_default()));
    }
    println!("| runbook | result | time to revoke | SLO | incident |");
    println!("|---|---|---|---|---|");
    for (name, outcome, ttr, slo, id) in rows {
        println!("| {name} | {outcome} | {ttr} | {slo} | {id} |");
    }
    Ok(if any_failed {
        1
    } else if any_missed {
        3
    } else {
        0
    })
}
