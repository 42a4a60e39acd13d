//! The command line: what each command does, over the use cases in `app`.
//! Its shape is in `args`; `schedule` holds what cron runs (`tick`,
//! `rotations`, `audit`) and `rehearse` the rehearsals and drills. The only
//! module that prints (besides the display).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod args;
mod rehearse;
mod schedule;

pub use args::*;
use rehearse::*;
use schedule::*;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::inputs::{
    InputMode, parse_detected_at, parse_leaked_at, resolve_inputs, resolve_secrets,
};
use crate::app::plan::plan;
use crate::app::{self, Error};
use crate::config::Config;
use crate::document::{self, Report};
use crate::engine::sim::Sim;
use crate::engine::{self, Brief, Executor, Humans, Start};
use crate::incident;
use crate::journal;
use crate::providers::{self, Live};
use crate::runbook::{self, LoadError, Runbook, human};
use crate::scenario::{ClockMode, Scenario};
use crate::secret::Secret;
use crate::shipped;
use crate::store::Store;

pub fn main() -> ExitCode {
    // The SLO clock starts when the responder typed the command, before
    // any provider is set up.
    let invoked = engine::Clock::start();
    crate::logging::mark_start();
    let cli = Cli::parse();
    crate::logging::init(cli.log_format);
    crate::logging::startup("command line parsed");
    match run(cli, Some(invoked)) {
        Ok(code) => {
            crate::logging::startup("exiting");
            ExitCode::from(code)
        }
        Err(e) => {
            match &e {
                Error::Invalid(d) => eprintln!("{d}"),
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// The store `--store`, `QUENCH_STORE` or quench.toml names, opened (a
/// database is connected to and migrated).
fn open_store(flag: Option<&str>, config: Option<&Path>) -> Result<Store, Error> {
    let config = Config::load(config).map_err(|e| Error::Usage(e.to_string()))?;
    let spec = flag
        .map(str::to_string)
        .or(config.store.clone())
        .unwrap_or_else(|| "incidents".into());
    Store::open(
        &spec,
        &crate::store::postgres::Settings::from_config(&config.postgres),
    )
    .map_err(|e| Error::Usage(e.to_string()))
}

pub fn run(cli: Cli, invoked: Option<engine::Clock>) -> Result<u8, Error> {
    let store = || open_store(cli.store.as_deref(), cli.config.as_deref());
    match &cli.command {
        Command::Validate { paths } => validate(&cli.runbooks, paths, cli.templates.as_deref()),
        Command::Plan { runbook, vars } => {
            let (rb, path) = load_runbook(&cli.runbooks, runbook)?;
            let inputs = resolve_inputs(&rb, vars, InputMode::Plan)?;
            print!("{}", plan(&rb, &path, &inputs));
            Ok(0)
        }
        Command::Run(args) => run_live(&cli, store()?, invoked, args),
        Command::Rehearse(args) => rehearse_command(&cli, store()?, args),
        Command::Resume {
            incident,
            secrets,
            yes,
        } => resume(&cli, store()?, incident, secrets, *yes, invoked),
        Command::Tick { now, yes } => tick(&cli, store()?, now.as_deref(), *yes),
        Command::Rotations { format, now } => {
            rotations(cli.config.as_deref(), &store()?, *format, now.as_deref())
        }
        Command::Audit {
            format,
            now,
            rotate,
            yes,
        } => audit_command(
            &cli,
            &store()?,
            *format,
            now.as_deref(),
            rotate.then_some(*yes),
        ),
        Command::Report {
            incident,
            format,
            template,
        } => report(&cli, &store()?, incident, *format, template.as_deref()),
        Command::Drills { runbook, format } => {
            let drills = app::drills::list(&store()?, runbook.as_deref());
            match format {
                ListFormat::Table => print!("{}", app::drills::table(&drills)),
                ListFormat::Json => print_json(&drills)?,
            }
            Ok(0)
        }
        Command::List { what } => {
            let store = match what {
                ListWhat::Runbooks => Store::new("incidents"),
                _ => store()?,
            };
            list(&cli.runbooks, &store, *what);
            Ok(0)
        }
        Command::Serve { listen } => serve(&cli, listen),
        Command::Approve {
            incident,
            step,
            deny,
        } => approve(cli.config.as_deref(), &store()?, incident, step, !deny),
        generated @ (Command::Completions { .. }
        | Command::Man
        | Command::Schema { .. }
        | Command::Providers) => print_generated(generated),
    }
}

/// `quench run`: a live incident at the terminal.
fn run_live(
    cli: &Cli,
    store: Store,
    invoked: Option<engine::Clock>,
    args: &RunArgs,
) -> Result<u8, Error> {
    let templates = load_templates(cli.templates.as_deref())?;
    let (rb, path) = load_runbook(&cli.runbooks, &args.runbook)?;
    let inputs = resolve_inputs(&rb, &args.vars, InputMode::Run)?;
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let secrets = resolve_secrets(&rb, &args.secrets, false, &config)?;
    let detected_at = parse_detected_at(args.detected_at.as_deref())?;
    let leaked_at = parse_leaked_at(args.leaked_at.as_deref(), detected_at)?;
    let paused = Arc::new(AtomicBool::new(false));
    let humans = at_terminal(args.yes, &paused);
    crate::logging::startup("runbook loaded");
    let rt = runtime(false)?;
    let live = rt.block_on(app::incidents::live(&config, &rb))?;
    crate::logging::startup("providers built");
    let brief = Brief {
        trigger: args.trigger.clone(),
        invoked,
        inputs,
        secrets,
        detected_at,
        leaked_at,
        humans,
        assume_yes: args.yes,
        ..Brief::new(Start::Fresh, (rb, path), live)
    };
    rt.block_on(execute(incident::Execution {
        display: on_screen(std::io::stdout().is_terminal(), paused),
        ..execution(store, templates, brief)
    }))
}

/// `quench report`: the document again, from the journal.
fn report(
    cli: &Cli,
    store: &Store,
    incident: &str,
    format: Format,
    template: Option<&Path>,
) -> Result<u8, Error> {
    let kind = match format {
        Format::Md => Some(document::Kind::Markdown),
        Format::Html => Some(document::Kind::Html),
        Format::Json => None,
    };
    let mut templates = (*load_templates(cli.templates.as_deref())?).clone();
    if let Some(file) = template {
        let Some(kind) = kind else {
            return Err(Error::Usage(
                "`--format json` has no template: `--template` goes with `md` or `html`".into(),
            ));
        };
        templates = templates
            .with_file(kind, file)
            .map_err(|e| Error::Usage(e.to_string()))?;
    }
    app::incidents::find(store, incident)?;
    let records = store
        .journal(incident)
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let mut report = Report::from_records(&records).map_err(|e| Error::Runtime(e.to_string()))?;
    document::history_from(&mut report, store.root(), &records);
    match kind {
        Some(kind) => print!(
            "{}",
            templates
                .render(kind, &report)
                .map_err(|e| Error::Usage(e.to_string()))?
        ),
        None => print_json(&report)?,
    }
    Ok(0)
}

/// `value` as pretty JSON, on a line of its own.
fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::Runtime(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// `quench list`: the runbooks, or the incidents with their outcome.
fn list(runbooks: &Path, store: &Store, what: ListWhat) {
    match what {
        ListWhat::Runbooks => {
            for (name, title, origin) in app::runbooks::list(runbooks) {
                println!("{name:<32} {title}  [{origin}]");
            }
        }
        ListWhat::Incidents => {
            for id in store.list() {
                let summary = app::incidents::report(store, &id)
                    .map(|r| {
                        let ttr = r
                            .time_to_revoke
                            .map(|t| format!("revoked in {t}"))
                            .unwrap_or_default();
                        format!(
                            "{:<28} {:<10} {:<12} {ttr}",
                            r.runbook,
                            r.mode.name(),
                            r.status
                        )
                    })
                    .unwrap_or_else(|| "(journal unreadable)".into());
                println!("{id:<26} {summary}");
            }
        }
    }
}

/// What quench prints about itself: shell completions, the man page, the
/// JSON Schemas, the providers' actions.
fn print_generated(command: &Command) -> Result<u8, Error> {
    use clap::CommandFactory;
    match command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "quench", &mut std::io::stdout());
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| Error::Runtime(format!("failed to render the man page: {e}")))?;
            print!("{}", String::from_utf8_lossy(&page));
        }
        Command::Schema { what } => {
            let schema = match what {
                SchemaWhat::Runbook => crate::schema::runbook(),
                SchemaWhat::Scenario => crate::schema::scenario(),
            };
            print!("{}", crate::schema::to_text(&schema));
        }
        _ => print!("{}", providers_text()),
    }
    Ok(0)
}

/// What every incident the command line runs starts from: each command
/// sets what else it knows. Shown at the terminal, not live.
fn execution(
    store: Store,
    templates: Arc<document::Templates>,
    brief: Brief,
) -> incident::Execution {
    incident::Execution {
        store,
        id: None,
        existing: None,
        brief,
        scenario_text: None,
        templates,
        display: on_screen(false, Arc::default()),
        subscribers: Vec::new(),
        // [`execute`] puts Ctrl-C and SIGTERM in its place.
        shutdown: tokio::sync::watch::channel(None).1,
    }
}

/// What the terminal shows while an incident runs: `live` redraws in place.
fn on_screen(live: bool, paused: Arc<AtomicBool>) -> Option<incident::DisplaySettings> {
    Some(incident::DisplaySettings { live, paused })
}

/// Who answers at the terminal: the people there, unless there is no
/// terminal or `--yes` answers for them.
fn at_terminal(yes: bool, paused: &Arc<AtomicBool>) -> Humans {
    if std::io::stdin().is_terminal() && !yes {
        Humans::terminal(paused.clone())
    } else {
        Humans::Nobody
    }
}

/// Runs an incident at the terminal: Ctrl-C or SIGTERM stops it cleanly,
/// and the outcome is printed (unless nothing is shown) and mapped to the
/// exit code.
async fn execute(mut x: incident::Execution) -> Result<u8, Error> {
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        let _ = shutdown_tx.send(Some(signal.to_string()));
    });
    x.shutdown = shutdown_rx;
    let follow_ups = matches!(x.brief.start, Start::FollowUps { .. });
    let quiet = x.display.is_none();
    let done = incident::execute(x).await.map_err(|e| match e {
        incident::IncidentError::Setup(m) => Error::Usage(m),
        incident::IncidentError::Runtime(m) => Error::Runtime(m),
    })?;
    let (id, finished) = (&done.id, &done.finished);
    let code = incident::exit_code(finished.outcome);
    if quiet {
        return Ok(code);
    }
    let ttr = finished
        .time_to_revoke
        .map(|t| {
            format!(
                "revoked {} after detection (SLO {}: {})",
                human(t),
                human(finished.slo),
                if finished.slo_met { "met" } else { "missed" }
            )
        })
        .unwrap_or_else(|| "not revoked".into());
    let rotation = Report::from_records(&finished.records)
        .ok()
        .and_then(|r| r.rotation);
    let outcome = finished.outcome.name().replace('_', " ");
    if follow_ups {
        println!("{id} follow-ups {outcome}");
    } else if let Some(rotation) = rotation {
        println!("{id} rotation {outcome}: {}", rotation.state);
    } else {
        let proof = finished.proof.summary(finished.detected_at);
        println!("{id} {outcome}: {ttr}; {proof}");
    }
    println!("document: {}", done.dir.join("incident.md").display());
    Ok(code)
}

/// `quench approve`: an approval for an incident another process runs.
fn approve(
    config: Option<&Path>,
    store: &Store,
    id: &str,
    step: &str,
    approved: bool,
) -> Result<u8, Error> {
    let config = Config::load(config).map_err(|e| Error::Usage(e.to_string()))?;
    let me = journal::Actor::current();
    let by = format!("terminal:{me}");
    app::approvals::give(
        store,
        &config.chatops.allow,
        id,
        step,
        (&me.user, &by),
        approved,
    )?;
    let verdict = if approved { "approved" } else { "declined" };
    println!("{verdict} `{step}` of {id}: the process running it goes on");
    Ok(0)
}

/// The Slack app's signing secret. A server that only takes detections
/// needs none: its Slack endpoints then check against a random secret
/// nobody has, so they refuse every request.
fn slack_signing_secret(config: &Config) -> Result<Secret, Error> {
    let configured = crate::config::credential(
        "slack_signing_secret",
        config.providers.slack.signing_secret.as_deref(),
        &["SLACK_SIGNING_SECRET"],
    )
    .map_err(|e| Error::Usage(e.to_string()))?;
    let h = &config.hooks;
    let hooks = h.github.is_some() || h.aws.is_some() || !h.generic.is_empty();
    match configured {
        Some(secret) => Ok(secret),
        None if hooks => {
            eprintln!(
                "warning: no Slack signing secret: /slack/commands and /slack/interactions refuse every request; the hooks are served"
            );
            let random: String = rand::random::<[u8; 32]>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            Ok(Secret::new("slack_signing_secret", random))
        }
        None => Err(Error::Usage(
            "no Slack signing secret: set SLACK_SIGNING_SECRET or [providers.slack] signing_secret (the app's Basic Information page shows it)".into(),
        )),
    }
}

fn serve(cli: &Cli, listen: &str) -> Result<u8, Error> {
    let templates = load_templates(cli.templates.as_deref())?;
    let store = open_store(cli.store.as_deref(), cli.config.as_deref())?;
    let runbooks = cli.runbooks.clone();
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let signing_secret = slack_signing_secret(&config)?;
    let slack =
        crate::providers::slack::Slack::build(&config.providers.slack).map_err(Error::Usage)?;
    if let Some(why) = slack.no_token() {
        eprintln!(
            "warning: {why}: commands are answered, but no status message is kept and nobody can approve"
        );
    }
    if config.chatops.allow.is_empty() {
        eprintln!("warning: no `[[chatops.allow]]` rules: every command will be denied");
    }
    let hooks = crate::server::hooks::HookSettings::load(
        &config,
        &crate::server::runbooks::Runbooks::new(runbooks.clone()),
    )
    .map_err(|e| Error::Usage(format!("`[hooks]`/`[[triggers]]`: {e}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::Runtime(format!("failed to start the runtime: {e}")))?;
    let incidents = crate::server::incident_runtime()
        .map_err(|e| Error::Runtime(format!("failed to start the runtime: {e}")))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| Error::Usage(format!("failed to listen on `{listen}`: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::Runtime(e.to_string()))?;
        println!("quench serve: listening on http://{addr} (POST /slack/commands, /slack/interactions, /hooks/…)");
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(None);
        tokio::spawn(async move {
            let signal = wait_for_signal().await;
            let _ = shutdown_tx.send(Some(signal.to_string()));
        });
        let settings = crate::server::Settings {
            templates,
            config,
            store,
            runbooks,
            signing_secret,
            slack,
            now: crate::server::unix_now,
            incidents: incidents.handle().clone(),
            hooks,
        };
        crate::server::run(listener, settings, shutdown_rx)
            .await
            .map_err(|e| Error::Runtime(format!("the server failed: {e}")))?;
        // Whoever started us may have stopped reading.
        let _ = writeln!(
            std::io::stdout(),
            "quench serve: stopped; running incidents were interrupted and can be resumed from their journals"
        );
        Ok(0)
    })
}

/// Waits for Ctrl-C or SIGTERM and says which.
pub(crate) async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

/// Loads a runbook ([`app::runbooks::load`]) and prints its warnings.
fn load_runbook(dir: &Path, arg: &str) -> Result<(Runbook, String), Error> {
    let (loaded, shown) = app::runbooks::load(dir, arg)?;
    print_warnings(&loaded.warnings);
    Ok((loaded.runbook, shown))
}

fn print_warnings(w: &[runbook::Diagnostic]) {
    for d in w {
        eprintln!("{d}\n");
    }
}

fn providers_text() -> String {
    let mut out = String::new();
    for p in providers::Provider::ALL {
        out.push_str(&format!("{p} (live)\n"));
        for a in p.actions() {
            out.push_str(&format!(
                "  {}  — {}{}{}\n",
                a.name,
                a.doc,
                if a.idempotent { " [idempotent]" } else { "" },
                if a.proves_dead { " [proves dead]" } else { "" }
            ));
            for param in a.params {
                out.push_str(&format!(
                    "      {}{} : {}{}  — {}\n",
                    param.name,
                    if param.required { "" } else { "?" },
                    param.ty.describe(),
                    if param.secret { ", secret-capable" } else { "" },
                    param.doc
                ));
            }
            for o in a.outputs {
                out.push_str(&format!(
                    "      → {}{}  — {}\n",
                    o.name,
                    if o.secret { " (secret)" } else { "" },
                    o.doc
                ));
            }
            if a.dynamic_outputs {
                out.push_str("      → the outputs the step names\n");
            }
        }
    }
    out
}

fn validate(runbooks_dir: &Path, paths: &[PathBuf], templates: Option<&Path>) -> Result<u8, Error> {
    let paths = if paths.is_empty() {
        vec![runbooks_dir.to_path_buf()]
    } else {
        paths.to_vec()
    };
    let mut files: Vec<(PathBuf, bool)> = Vec::new();
    for p in paths {
        if p.is_dir() {
            for (dir, scenario) in [(p.clone(), false), (p.join("scenarios"), true)] {
                let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|f| {
                        f.is_file() && f.extension().is_some_and(|x| x == "yaml" || x == "yml")
                    })
                    .collect();
                found.sort();
                files.extend(found.into_iter().map(|f| (f, scenario)));
            }
        } else if p.is_file() {
            let scenario = p
                .parent()
                .and_then(|d| d.file_name())
                .is_some_and(|n| n == "scenarios");
            files.push((p, scenario));
        } else {
            return Err(Error::Usage(format!("`{}` does not exist", p.display())));
        }
    }
    if files.is_empty() {
        return Err(Error::Usage(
            "no runbooks found (files ending in .yaml)".into(),
        ));
    }
    let mut bad = 0;
    for (f, scenario) in &files {
        let result = if *scenario {
            Scenario::load(f).map(|_| Vec::new())
        } else {
            runbook::load(f).map(|l| l.warnings)
        };
        match result {
            Ok(warnings) => {
                print_warnings(&warnings);
                println!(
                    "ok    {}{}",
                    f.display(),
                    if warnings.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " ({} warning{})",
                            warnings.len(),
                            if warnings.len() == 1 { "" } else { "s" }
                        )
                    }
                );
            }
            Err(e) => {
                bad += 1;
                match e {
                    LoadError::Invalid(d) => eprintln!("{d}\n"),
                    e => eprintln!("error: {e}"),
                }
                println!("error {}", f.display());
            }
        }
    }
    // A team's templates: `run` refuses a broken one before anything
    // happens, so a check before the incident is what finds it in time.
    if let Some(dir) = templates_dir(templates) {
        match load_templates(Some(&dir)) {
            Ok(_) => println!("ok    {}", dir.display()),
            Err(e) => {
                bad += 1;
                eprintln!("error: {e}\n");
                println!("error {}", dir.display());
            }
        }
    }
    Ok(if bad > 0 { 2 } else { 0 })
}

/// `--now RFC3339`, or now.
fn parse_now(now: Option<&str>) -> Result<DateTime<Utc>, Error> {
    match now {
        Some(n) => Ok(DateTime::parse_from_rfc3339(n)
            .map_err(|e| Error::Usage(format!("`--now {n}` is not an RFC 3339 time ({e})")))?
            .with_timezone(&Utc)),
        None => Ok(Utc::now()),
    }
}

/// Asks `question` at the terminal; only `y` or `yes` approves.
fn approved(question: &str) -> Result<bool, Error> {
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Runtime(format!("failed to read the answer: {e}")))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

fn resume(
    cli: &Cli,
    store: Store,
    id: &str,
    secrets: &[String],
    yes: bool,
    invoked: Option<engine::Clock>,
) -> Result<u8, Error> {
    let templates = load_templates(cli.templates.as_deref())?;
    let r = app::incidents::resumable(&store, id, &templates)?;
    if let Some(repaired) = &r.repaired {
        eprintln!("{id}: {repaired}");
    }
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let rehearsal = r.started.mode.simulated();
    let secrets = resolve_secrets(&r.runbook, secrets, rehearsal, &config)?;
    let scenario = r.scenario()?;
    // A drill carries on as a drill, at its pace.
    let scenario = match journal::IncidentView::fold(&r.records).drill_pace {
        Some(pace) => scenario.into_drill(pace),
        None => scenario,
    };
    let rt = runtime(rehearsal && scenario.clock == ClockMode::Virtual)?;
    let paused = Arc::new(AtomicBool::new(false));
    let (executor, humans) = if rehearsal {
        let scenario = Arc::new(scenario);
        let humans = drill_humans(&scenario, &paused);
        (Executor::Sim(Sim::new(scenario)), humans)
    } else {
        (
            rt.block_on(app::incidents::live(&config, &r.runbook))?,
            at_terminal(yes, &paused),
        )
    };
    let _lock = r.lock;
    let start = Start::Resume {
        prior: r.records,
        repaired: r.repaired,
    };
    let brief = Brief {
        invoked,
        inputs: r.started.inputs,
        secrets,
        detected_at: Some(r.started.detected_at),
        humans,
        assume_yes: yes,
        ..Brief::new(start, (r.runbook, r.runbook_path), executor)
    };
    rt.block_on(execute(incident::Execution {
        existing: Some(id.to_string()),
        display: on_screen(!rehearsal && std::io::stdout().is_terminal(), paused),
        ..execution(store, templates, brief)
    }))
}

/// The runtime an incident runs on in this process: one thread. A step that
/// settles wakes the scheduler, which starts the next step, all without
/// handing work between threads (each hand-off costs a wake-up, ~0.1–0.5 ms
/// on a small VM, twice per step). Nothing on it blocks for long: the
/// document is rendered on a thread of its own, the terminal is written by
/// one of its own, and a journal append is one write and one `fdatasync`.
/// On a virtual clock, tokio's paused time jumps straight to the next timer,
/// so simulated latencies cost nothing and report exactly.
fn runtime(virtual_clock: bool) -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(virtual_clock)
        .build()
        .map_err(|e| Error::Runtime(format!("failed to start the runtime: {e}")))
}

/// The templates directory in use: the one named, or `./templates` if
/// there is one.
fn templates_dir(named: Option<&Path>) -> Option<PathBuf> {
    match named {
        Some(d) => Some(d.to_path_buf()),
        None => Some(PathBuf::from("templates")).filter(|d| d.is_dir()),
    }
}

/// The built-in templates, with a team's own in their place: from
/// `--templates DIR` (or `QUENCH_TEMPLATES`), else `./templates` if there is
/// one. A broken template is refused before an incident starts, not found
/// when its document is written.
pub(crate) fn load_templates(dir: Option<&Path>) -> Result<Arc<document::Templates>, Error> {
    let dir = templates_dir(dir);
    if let Some(d) = dir.as_ref().filter(|d| !d.is_dir()) {
        return Err(Error::Usage(format!(
            "the templates directory `{}` does not exist",
            d.display()
        )));
    }
    let templates = match dir {
        Some(d) => document::Templates::from_dir(&d),
        None => Ok(document::Templates::builtin()),
    };
    templates
        .map(Arc::new)
        .map_err(|e| Error::Usage(e.to_string()))
}
