//! The command line: clap definitions, and what each command does. The only
//! module that prints (besides the display).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::config::Config;
use crate::document::{self, Report};
use crate::engine::{self, Executor, Humans, Incident, Start};
use crate::journal::{self, Journal, Outcome};
use crate::providers::{self, Live, sim::Sim};
use crate::runbook::diagnostic::did_you_mean;
use crate::runbook::template::render_value;
use crate::runbook::{self, Diagnostics, LoadError, Runbook, SourceFile, human};
use crate::scenario::{ClockMode, Scenario};
use crate::secret::{Redactor, Secret, SecretSource};
use crate::shipped;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "quench",
    version,
    about = "Run the response to a leaked credential: revoke, replace, audit, notify, update, document, review, prevent",
    long_about = "quench runs an incident-response runbook (YAML) for a leaked API key or token: \
it revokes the credential at its source within minutes, then replaces it, reviews the audit \
logs, notifies the team, updates consumers and writes a timestamped incident document. \
`quench rehearse` runs the same runbook against simulated providers for tabletop drills.\n\n\
Exit codes: 0 all steps succeeded and revocation met its SLO; 1 a step failed or the incident \
was aborted; 2 bad input (runbook, flags); 3 every step succeeded but revocation missed its \
SLO; 130 interrupted (the journal is consistent)."
)]
pub struct Cli {
    /// Provider endpoints and credential sources; default `quench.toml` if present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where incidents are kept.
    #[arg(long, global = true, env = "QUENCH_STORE", default_value = "incidents")]
    pub store: PathBuf,
    /// Where runbooks named on the command line are looked up.
    #[arg(
        long,
        global = true,
        env = "QUENCH_RUNBOOKS",
        default_value = "runbooks"
    )]
    pub runbooks: PathBuf,
    /// Document templates (`incident.md.hbs`, `incident.html.hbs`) that
    /// replace the built-in ones; default `templates` if present.
    #[arg(long, global = true, env = "QUENCH_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbooks (and rehearsal scenarios) without touching the network.
    Validate {
        /// Files or directories; default: the runbooks directory.
        paths: Vec<PathBuf>,
    },
    /// Show what would run, in order, rendered and redacted.
    Plan {
        runbook: String,
        #[arg(long = "var", value_name = "K=V")]
        vars: Vec<String>,
    },
    /// Respond to a live incident.
    Run {
        runbook: String,
        /// An input value.
        #[arg(long = "var", value_name = "K=V")]
        vars: Vec<String>,
        /// A secret, read from `env:VAR`, `file:PATH` or `stdin` (never a literal).
        #[arg(long = "secret", value_name = "K=SOURCE")]
        secrets: Vec<String>,
        /// When the leak was detected (RFC 3339); the SLO clock starts here.
        #[arg(long, value_name = "RFC3339")]
        detected_at: Option<String>,
        /// What set the response off, for the document: "GitHub secret
        /// scanning alert #12", "reported by alice in #security".
        #[arg(long, value_name = "TEXT")]
        trigger: Option<String>,
        /// Approve every approval in your name; leave manual tasks open.
        #[arg(long)]
        yes: bool,
    },
    /// Rehearse a runbook against simulated providers: touches nothing real.
    Rehearse {
        runbook: String,
        /// A scenario file: latencies, injected faults, human response times.
        #[arg(long)]
        scenario: Option<PathBuf>,
        #[arg(long = "var", value_name = "K=V")]
        vars: Vec<String>,
        #[arg(long = "secret", value_name = "K=SOURCE")]
        secrets: Vec<String>,
        #[arg(long, value_name = "RFC3339")]
        detected_at: Option<String>,
        /// What set the drill off, for the document.
        #[arg(long, value_name = "TEXT")]
        trigger: Option<String>,
    },
    /// Run follow-up steps (`after:`) that have come due, once each.
    Tick {
        /// Decide what is due as of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Approve approvals in your name.
        #[arg(long)]
        yes: bool,
    },
    /// Print an incident's document: Markdown, JSON, or one self-contained
    /// HTML file with a timeline picture.
    Report {
        incident: String,
        #[arg(long, value_enum, default_value = "md")]
        format: Format,
        /// Render with this handlebars file instead (md and html).
        #[arg(long, value_name = "FILE")]
        template: Option<PathBuf>,
    },
    /// List runbooks or incidents.
    List {
        #[arg(value_enum, default_value = "runbooks")]
        what: ListWhat,
    },
    /// Every action, its parameters (secret-capable ones marked) and outputs.
    Providers,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Md,
    Json,
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListWhat {
    Runbooks,
    Incidents,
}

/// Expected failures map to the documented exit codes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Invalid(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

impl From<LoadError> for CliError {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid(d) => CliError::Invalid(d),
            io => CliError::Usage(io.to_string()),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            match &e {
                CliError::Invalid(d) => eprintln!("{d}"),
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

pub fn run(cli: Cli) -> Result<u8, CliError> {
    let store = Store::new(&cli.store);
    match cli.command {
        Command::Validate { paths } => validate(&cli.runbooks, paths),
        Command::Plan { runbook, vars } => {
            let (rb, path) = load_runbook(&cli.runbooks, &runbook)?;
            let inputs = resolve_inputs(&rb, &vars, InputMode::Plan)?;
            print!("{}", plan(&rb, &path, &inputs));
            Ok(0)
        }
        Command::Run {
            runbook,
            vars,
            secrets,
            detected_at,
            trigger,
            yes,
        } => {
            let templates = load_templates(cli.templates.as_deref())?;
            let (rb, path) = load_runbook(&cli.runbooks, &runbook)?;
            let inputs = resolve_inputs(&rb, &vars, InputMode::Run)?;
            let secrets = resolve_secrets(&rb, &secrets, false)?;
            let detected_at = parse_detected_at(detected_at.as_deref())?;
            let config =
                Config::load(cli.config.as_deref()).map_err(|e| CliError::Usage(e.to_string()))?;
            let stdin_tty = std::io::stdin().is_terminal();
            let paused = Arc::new(AtomicBool::new(false));
            let humans = if stdin_tty && !yes {
                Humans::terminal(paused.clone())
            } else {
                Humans::Nobody
            };
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| CliError::Runtime(format!("failed to start the runtime: {e}")))?;
            let used = rb.steps.iter().map(|s| s.action.provider).collect();
            let live = rt.block_on(Live::build(&config, &used));
            preflight_live(&rb, &live)?;
            rt.block_on(execute(Execution {
                store,
                start: Start::Fresh,
                existing: None,
                runbook: rb,
                runbook_path: path,
                inputs,
                secrets,
                detected_at,
                trigger,
                templates,
                executor: Executor::Live(Box::new(live)),
                humans,
                assume_yes: yes,
                paused,
                live_display: std::io::stdout().is_terminal(),
            }))
        }
        Command::Rehearse {
            runbook,
            scenario,
            vars,
            secrets,
            detected_at,
            trigger,
        } => {
            let templates = load_templates(cli.templates.as_deref())?;
            let (rb, path) = load_runbook(&cli.runbooks, &runbook)?;
            let inputs = resolve_inputs(&rb, &vars, InputMode::Rehearse)?;
            let secrets = resolve_secrets(&rb, &secrets, true)?;
            let detected_at = parse_detected_at(detected_at.as_deref())?;
            let scenario = match scenario {
                Some(p) => Scenario::load(&p)?,
                None => Scenario::default(),
            };
            scenario.check_against(&rb).map_err(CliError::Invalid)?;
            let scenario = Arc::new(scenario);
            let mut builder = tokio::runtime::Builder::new_current_thread();
            builder.enable_all();
            // A virtual clock: tokio's paused time jumps straight to the next
            // timer, so simulated latencies cost nothing and report exactly.
            if scenario.clock == ClockMode::Virtual {
                builder.start_paused(true);
            }
            let rt = builder
                .build()
                .map_err(|e| CliError::Runtime(format!("failed to start the runtime: {e}")))?;
            let live_display =
                scenario.clock == ClockMode::Realtime && std::io::stdout().is_terminal();
            rt.block_on(execute(Execution {
                store,
                start: Start::Fresh,
                existing: None,
                runbook: rb,
                runbook_path: path,
                inputs,
                secrets,
                detected_at,
                trigger,
                templates,
                executor: Executor::Sim(Sim::new(scenario.clone())),
                humans: Humans::Simulated(scenario),
                assume_yes: false,
                paused: Arc::new(AtomicBool::new(false)),
                live_display,
            }))
        }
        Command::Tick { now, yes } => {
            let templates = load_templates(cli.templates.as_deref())?;
            tick(cli.config.as_deref(), store, now.as_deref(), yes, templates)
        }
        Command::Report {
            incident,
            format,
            template,
        } => {
            let kind = match format {
                Format::Md => Some(document::Kind::Markdown),
                Format::Html => Some(document::Kind::Html),
                Format::Json => None,
            };
            let mut templates = (*load_templates(cli.templates.as_deref())?).clone();
            if let Some(file) = &template {
                let Some(kind) = kind else {
                    return Err(CliError::Usage(
                        "`--format json` has no template: `--template` goes with `md` or `html`"
                            .into(),
                    ));
                };
                templates = templates
                    .with_file(kind, file)
                    .map_err(|e| CliError::Usage(e.to_string()))?;
            }
            let dir = store.dir(&incident);
            if !dir.join("journal.jsonl").is_file() {
                let known = store.list();
                let help = did_you_mean(&incident, known.iter().map(String::as_str))
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return Err(CliError::Usage(format!(
                    "no incident `{incident}` in `{}`{help}",
                    store.root().display()
                )));
            }
            let records = journal::read(&dir.join("journal.jsonl"))
                .map_err(|e| CliError::Runtime(e.to_string()))?;
            let report =
                Report::from_records(&records).map_err(|e| CliError::Runtime(e.to_string()))?;
            match kind {
                Some(kind) => print!(
                    "{}",
                    templates
                        .render(kind, &report)
                        .map_err(|e| CliError::Usage(e.to_string()))?
                ),
                None => println!(
                    "{}",
                    serde_json::to_string_pretty(&report)
                        .map_err(|e| CliError::Runtime(e.to_string()))?
                ),
            }
            Ok(0)
        }
        Command::List { what } => {
            match what {
                ListWhat::Runbooks => {
                    for (name, title, origin) in list_runbooks(&cli.runbooks) {
                        println!("{name:<32} {title}  [{origin}]");
                    }
                }
                ListWhat::Incidents => {
                    for id in store.list() {
                        let summary = journal::read(&store.dir(&id).join("journal.jsonl"))
                            .ok()
                            .and_then(|r| Report::from_records(&r).ok())
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
            Ok(0)
        }
        Command::Providers => {
            print!("{}", providers_text());
            Ok(0)
        }
    }
}

struct Execution {
    store: Store,
    /// A new incident, or the follow-ups of an existing one.
    start: Start,
    /// The existing incident, for follow-ups.
    existing: Option<String>,
    runbook: Runbook,
    runbook_path: String,
    inputs: BTreeMap<String, String>,
    secrets: Vec<Secret>,
    detected_at: Option<DateTime<Utc>>,
    trigger: Option<String>,
    templates: Arc<document::Templates>,
    executor: Executor,
    humans: Humans,
    assume_yes: bool,
    paused: Arc<AtomicBool>,
    live_display: bool,
}

async fn execute(x: Execution) -> Result<u8, CliError> {
    let redactor = Redactor::new();
    for s in &x.secrets {
        redactor.add(s);
    }
    if let Executor::Live(live) = &x.executor {
        for s in live.credentials() {
            redactor.add(&s);
        }
    }
    let (id, dir, mut journal, prior) = match (&x.start, &x.existing) {
        (Start::FollowUps { prior, .. }, Some(id)) => {
            let dir = x.store.dir(id);
            let journal =
                Journal::append_to(&dir.join("journal.jsonl"), redactor.clone(), prior.clone())
                    .map_err(|e| {
                        CliError::Runtime(format!(
                            "failed to open the journal in `{}`: {e}",
                            dir.display()
                        ))
                    })?;
            (id.clone(), dir, journal, prior.clone())
        }
        _ => {
            let id = Store::new_id(Utc::now());
            let dir = x.store.create(&id).map_err(|e| {
                CliError::Usage(format!(
                    "failed to create the incident in `{}`: {e}",
                    x.store.root().display()
                ))
            })?;
            std::fs::write(dir.join("runbook.yaml"), x.runbook.source.text.as_bytes()).map_err(
                |e| {
                    CliError::Runtime(format!(
                        "failed to write `{}`: {e}",
                        dir.join("runbook.yaml").display()
                    ))
                },
            )?;
            let journal =
                Journal::create(&dir.join("journal.jsonl"), redactor.clone()).map_err(|e| {
                    CliError::Runtime(format!(
                        "failed to create the journal in `{}`: {e}",
                        dir.display()
                    ))
                })?;
            (id, dir, journal, Vec::new())
        }
    };

    // Consumers of the journal: the display, and the document rewriter.
    let (display_tx, display_rx) = tokio::sync::mpsc::unbounded_channel();
    let (doc_tx, mut doc_rx) = tokio::sync::mpsc::unbounded_channel();
    journal.subscribe(display_tx);
    journal.subscribe(doc_tx);
    let style = if x.live_display {
        crate::display::Style::Live
    } else {
        crate::display::Style::Plain
    };
    let detected = prior.first().and_then(|r| match &r.event {
        journal::Event::IncidentStarted { detected_at, .. } => Some(*detected_at),
        _ => None,
    });
    let display = tokio::spawn(crate::display::run(
        style,
        display_rx,
        x.paused.clone(),
        detected,
    ));
    let doc_dir = dir.clone();
    let doc_templates = x.templates.clone();
    let documenter = tokio::spawn(async move {
        let mut records = prior;
        while let Some(r) = doc_rx.recv().await {
            let settle = r.event.is_step_terminal();
            records.push(r);
            if settle {
                let _ = document::write(&doc_dir, &records, &doc_templates);
            }
        }
        document::write(&doc_dir, &records, &doc_templates)
    });

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = shutdown_tx.send(true);
    });

    let runbook = Arc::new(x.runbook);
    let result = engine::run(
        Incident {
            id: id.clone(),
            dir: dir.clone(),
            runbook: runbook.clone(),
            runbook_path: x.runbook_path,
            inputs: x.inputs,
            secrets: x.secrets,
            detected_at: x.detected_at,
            trigger: x.trigger,
            executor: x.executor,
            humans: x.humans,
            assume_yes: x.assume_yes,
            redactor: redactor.clone(),
            journal,
            start: x.start,
            templates: x.templates,
        },
        shutdown_rx,
    )
    .await;
    // The engine has dropped the journal: both consumers drain and stop.
    let _ = display.await;
    let doc = documenter.await;
    let finished = result.map_err(|e| CliError::Runtime(redactor.redact(&e.to_string())))?;
    if let Ok(Err(e)) = doc {
        return Err(CliError::Runtime(format!(
            "failed to write the incident document: {e}"
        )));
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
    if x.existing.is_some() {
        println!(
            "{id} follow-ups {}",
            finished.outcome.name().replace('_', " ")
        );
    } else {
        println!("{id} {}: {ttr}", finished.outcome.name().replace('_', " "));
    }
    println!("document: {}", dir.join("incident.md").display());
    Ok(match finished.outcome {
        Outcome::Succeeded => 0,
        Outcome::Failed => 1,
        Outcome::SloMissed => 3,
        Outcome::Interrupted => 130,
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut term) = signal(SignalKind::terminate()) else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The built-in templates, with a team's own in their place: from
/// `--templates DIR` (or `QUENCH_TEMPLATES`), else `./templates` if there is
/// one. A broken template is refused before an incident starts, not found
/// when its document is written.
fn load_templates(dir: Option<&Path>) -> Result<Arc<document::Templates>, CliError> {
    let dir = match dir {
        Some(d) if !d.is_dir() => {
            return Err(CliError::Usage(format!(
                "the templates directory `{}` does not exist",
                d.display()
            )));
        }
        Some(d) => Some(d.to_path_buf()),
        None => Some(PathBuf::from("templates")).filter(|d| d.is_dir()),
    };
    let templates = match dir {
        Some(d) => document::Templates::from_dir(&d),
        None => Ok(document::Templates::builtin()),
    };
    templates
        .map(Arc::new)
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// A path, or a name looked up in the runbooks directory and then among the
/// runbooks built into quench.
fn load_runbook(dir: &Path, arg: &str) -> Result<(Runbook, String), CliError> {
    let as_path = Path::new(arg);
    let path = if as_path.is_file() {
        as_path.to_path_buf()
    } else {
        let candidate = dir.join(format!("{arg}.yaml"));
        if candidate.is_file() {
            candidate
        } else if let Some(text) = shipped::get(arg) {
            let shown = format!("<built-in>/{arg}.yaml");
            let loaded =
                runbook::parse(SourceFile::new(shown.clone(), text)).map_err(CliError::Invalid)?;
            print_warnings(&loaded.warnings);
            return Ok((loaded.runbook, shown));
        } else {
            let names: Vec<String> = list_runbooks(dir).into_iter().map(|(n, _, _)| n).collect();
            let help = did_you_mean(arg, names.iter().map(String::as_str))
                .map(|h| format!(": {h}"))
                .unwrap_or_else(|| ": `quench list` shows the runbooks".into());
            return Err(CliError::Usage(format!(
                "no runbook `{arg}` (not a file, not in `{}`, not built in){help}",
                dir.display()
            )));
        }
    };
    let loaded = runbook::load(&path)?;
    print_warnings(&loaded.warnings);
    Ok((loaded.runbook, path.display().to_string()))
}

fn print_warnings(w: &[runbook::Diagnostic]) {
    for d in w {
        eprintln!("{d}\n");
    }
}

fn list_runbooks(dir: &Path) -> Vec<(String, String, String)> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (name, text) in shipped::ALL {
        let title = runbook::parse(SourceFile::new(*name, *text))
            .map(|l| l.runbook.title)
            .unwrap_or_default();
        out.insert(name.to_string(), (title, "built in".into()));
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let name = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                let title = runbook::load(&p)
                    .map(|l| l.runbook.title)
                    .unwrap_or_else(|_| "(does not validate: run `quench validate`)".into());
                out.insert(name, (title, p.display().to_string()));
            }
        }
    }
    out.into_iter().map(|(n, (t, o))| (n, t, o)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InputMode {
    Run,
    Rehearse,
    Plan,
}

fn resolve_inputs(
    rb: &Runbook,
    vars: &[String],
    mode: InputMode,
) -> Result<BTreeMap<String, String>, CliError> {
    let mut values = BTreeMap::new();
    for v in vars {
        let Some((k, val)) = v.split_once('=') else {
            return Err(CliError::Usage(format!("`--var {v}` is not K=V")));
        };
        if rb.secrets.iter().any(|s| s.name == k) {
            return Err(CliError::Usage(format!(
                "`{k}` is a secret, and a secret is never accepted in argv: pass `--secret {k}=env:VAR` (or file:PATH, stdin)"
            )));
        }
        let Some(input) = rb.input(k) else {
            let help = did_you_mean(k, rb.inputs.iter().map(|i| i.name.as_str()))
                .map(|h| format!(" ({h})"))
                .unwrap_or_else(|| {
                    let names: Vec<_> = rb.inputs.iter().map(|i| format!("`{}`", i.name)).collect();
                    format!(" (inputs: {})", names.join(", "))
                });
            return Err(CliError::Usage(format!(
                "`{}` has no input `{k}`{help}",
                rb.name
            )));
        };
        if let Some(re) = &input.pattern
            && !re.is_match(val)
        {
            return Err(CliError::Usage(format!(
                "input `{k}` = `{val}` does not match its pattern `{}`",
                re.as_str()
            )));
        }
        values.insert(k.to_string(), val.to_string());
    }
    let mut missing = Vec::new();
    for i in &rb.inputs {
        if values.contains_key(&i.name) {
            continue;
        }
        let fallback = match mode {
            InputMode::Run => i.default.clone(),
            InputMode::Rehearse => i.default.clone().or_else(|| i.example.clone()),
            InputMode::Plan => i
                .default
                .clone()
                .or_else(|| i.example.clone())
                .or_else(|| Some(format!("<{}>", i.name))),
        };
        match fallback {
            Some(v) => {
                values.insert(i.name.clone(), v);
            }
            None => missing.push(i),
        }
    }
    if !missing.is_empty() {
        let lines: Vec<String> = missing
            .iter()
            .map(|i| {
                format!(
                    "  --var {}=…   {}{}",
                    i.name,
                    i.description.as_deref().unwrap_or(""),
                    i.example
                        .as_deref()
                        .map(|e| format!(" (e.g. {e})"))
                        .unwrap_or_default()
                )
            })
            .collect();
        return Err(CliError::Usage(format!(
            "`{}` needs {}:\n{}",
            rb.name,
            if missing.len() == 1 {
                "an input"
            } else {
                "inputs"
            },
            lines.join("\n")
        )));
    }
    Ok(values)
}

fn resolve_secrets(
    rb: &Runbook,
    given: &[String],
    rehearsal: bool,
) -> Result<Vec<Secret>, CliError> {
    let mut out = Vec::new();
    for g in given {
        let Some((k, source)) = g.split_once('=') else {
            return Err(CliError::Usage(
                "`--secret` takes K=SOURCE, where SOURCE is `env:VAR`, `file:PATH` or `stdin`"
                    .into(),
            ));
        };
        if !rb.secrets.iter().any(|s| s.name == k) {
            let help = did_you_mean(k, rb.secrets.iter().map(|s| s.name.as_str()))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(CliError::Usage(format!(
                "`{}` declares no secret `{k}`{help}",
                rb.name
            )));
        }
        let source = SecretSource::parse(source)
            .map_err(|e| CliError::Usage(format!("secret `{k}`: {e}")))?;
        out.push(
            source
                .read(k)
                .map_err(|e| CliError::Usage(format!("secret `{k}`: {e}")))?,
        );
    }
    for decl in &rb.secrets {
        if out.iter().any(|s| s.name() == decl.name) {
            continue;
        }
        if rehearsal {
            // A rehearsal needs no real secret: a placeholder stands in, and
            // is redacted like a real one.
            out.push(Secret::new(
                &decl.name,
                format!("rehearsal-placeholder-{}", decl.name),
            ));
        } else {
            return Err(CliError::Usage(format!(
                "`{}` needs secret `{}`{}: pass `--secret {}=env:VAR` (or file:PATH, stdin)",
                rb.name,
                decl.name,
                decl.description
                    .as_deref()
                    .map(|d| format!(" ({d})"))
                    .unwrap_or_default(),
                decl.name
            )));
        }
    }
    Ok(out)
}

fn parse_detected_at(s: Option<&str>) -> Result<Option<DateTime<Utc>>, CliError> {
    let Some(s) = s else { return Ok(None) };
    let t = DateTime::parse_from_rfc3339(s)
        .map_err(|e| {
            CliError::Usage(format!(
                "`--detected-at {s}` is not an RFC 3339 time ({e}), e.g. 2026-11-22T23:10:01Z"
            ))
        })?
        .with_timezone(&Utc);
    if t > Utc::now() + chrono::Duration::minutes(1) {
        return Err(CliError::Usage(format!(
            "`--detected-at {s}` is in the future"
        )));
    }
    Ok(Some(t))
}

/// Refuses, before anything happens, a live run that needs a provider that
/// cannot act (not built, not configured). Notifications are exempt: they
/// are skipped with the reason instead.
fn preflight_live(rb: &Runbook, live: &Live) -> Result<(), CliError> {
    let blocked: Vec<String> = rb
        .steps
        .iter()
        .filter(|s| s.phase != runbook::Phase::Notify && !s.deferred)
        .filter_map(|s| {
            live.unavailable(s.action)
                .map(|why| format!("  `{}` ({}): {why}", s.id, s.action.name))
        })
        .collect();
    if blocked.is_empty() {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "`{}` cannot run live: nothing was done.\n{}\n`quench rehearse {}` runs it against simulated providers.",
        rb.name,
        blocked.join("\n"),
        rb.name
    )))
}

/// The plan: every step in order, parameters rendered with inputs and with
/// placeholders for secrets and for outputs not produced yet.
pub fn plan(rb: &Runbook, path: &str, inputs: &BTreeMap<String, String>) -> String {
    let mut steps_ctx = serde_json::Map::new();
    for s in &rb.steps {
        let outs: serde_json::Map<String, Value> = s
            .outputs
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    Value::String(format!("<{}.{}>", s.id, o.name)),
                )
            })
            .collect();
        steps_ctx.insert(s.id.to_string(), json!({ "outputs": outs }));
    }
    let secrets: serde_json::Map<String, Value> = rb
        .secrets
        .iter()
        .map(|s| {
            (
                s.name.clone(),
                Value::String(format!("[REDACTED {}]", s.name)),
            )
        })
        .collect();
    let ctx = json!({
        "inputs": inputs,
        "secrets": secrets,
        "steps": steps_ctx,
        "incident": {"id": "<incident id>", "mode": "live", "runbook": rb.name, "started_at": "<start>", "detected_at": "<detection>"},
    });
    let mut out = format!(
        "plan for `{}` ({}) from {path}\nrevoke within {} of detection\n\n",
        rb.name,
        rb.title,
        human(rb.revoke_within)
    );
    for (n, s) in rb.steps.iter().enumerate() {
        let mut flags = vec![
            format!("timeout {}", human(s.timeout)),
            format!(
                "{} attempt{}",
                s.retry.attempts,
                if s.retry.attempts == 1 { "" } else { "s" }
            ),
        ];
        if s.on_failure == runbook::OnFailure::Abort {
            flags.push("abort on failure".into());
        }
        out.push_str(&format!(
            "{:>2}. {} [{}] {}  ({})\n",
            n + 1,
            s.id,
            s.phase,
            s.action.name,
            flags.join(", ")
        ));
        if let Some(name) = &s.name {
            out.push_str(&format!("      {name}\n"));
        }
        if s.needs.is_empty() {
            out.push_str("      starts at once\n");
        } else {
            let needs: Vec<_> = s.needs.iter().map(|n| n.as_str()).collect();
            out.push_str(&format!("      after {}\n", needs.join(", ")));
        }
        if let Some(a) = s.after {
            out.push_str(&format!(
                "      follow-up: due {} after the incident starts\n",
                human(a)
            ));
        } else if s.deferred {
            out.push_str("      follow-up: runs after the follow-ups it needs\n");
        }
        if let Some(w) = &s.when {
            out.push_str(&format!("      when: {w}\n"));
        }
        if let Some(a) = &s.approval {
            out.push_str(&format!(
                "      needs approval{}\n",
                if a.approvers.is_empty() {
                    String::new()
                } else {
                    format!(" from {}", a.approvers.join(", "))
                }
            ));
        }
        let rendered = render_value(&Value::Object(s.with.clone()), &ctx)
            .unwrap_or_else(|e| Value::String(format!("<cannot render: {e}>")));
        if let Value::Object(map) = rendered {
            for (k, v) in map {
                let shown = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                out.push_str(&format!("      {k}: {shown}\n"));
            }
        }
    }
    out
}

fn providers_text() -> String {
    let mut out = String::new();
    for p in providers::Provider::ALL {
        let state = if p.is_built() {
            "live"
        } else {
            "declared; rehearsal only in this build"
        };
        out.push_str(&format!("{p} ({state})\n"));
        for a in p.actions() {
            out.push_str(&format!(
                "  {}  — {}{}\n",
                a.name,
                a.doc,
                if a.idempotent { " [idempotent]" } else { "" }
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

fn validate(runbooks_dir: &Path, paths: Vec<PathBuf>) -> Result<u8, CliError> {
    let paths = if paths.is_empty() {
        vec![runbooks_dir.to_path_buf()]
    } else {
        paths
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
            return Err(CliError::Usage(format!("`{}` does not exist", p.display())));
        }
    }
    if files.is_empty() {
        return Err(CliError::Usage(
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
            Err(LoadError::Invalid(d)) => {
                bad += 1;
                eprintln!("{d}\n");
                println!("error {}", f.display());
            }
            Err(e) => {
                bad += 1;
                eprintln!("error: {e}");
                println!("error {}", f.display());
            }
        }
    }
    Ok(if bad > 0 { 2 } else { 0 })
}

/// Releases a lock file when dropped.
struct LockFile(PathBuf);

impl Drop for LockFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn tick(
    config: Option<&Path>,
    store: Store,
    now: Option<&str>,
    yes: bool,
    templates: Arc<document::Templates>,
) -> Result<u8, CliError> {
    let now = match now {
        Some(n) => DateTime::parse_from_rfc3339(n)
            .map_err(|e| CliError::Usage(format!("`--now {n}` is not an RFC 3339 time ({e})")))?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let config = Config::load(config).map_err(|e| CliError::Usage(e.to_string()))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("failed to start the runtime: {e}")))?;
    let mut worst = 0u8;
    let mut ids = store.list();
    ids.reverse();
    for id in ids {
        let dir = store.dir(&id);
        let records = match journal::read(&dir.join("journal.jsonl")) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {id}: {e}");
                worst = worst.max(1);
                continue;
            }
        };
        let states = engine::replay::settled(&records);
        let due: Vec<&String> = states
            .scheduled
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(step, _)| step)
            .collect();
        if due.is_empty() {
            continue;
        }
        // One tick per incident at a time.
        let lock_path = dir.join("tick.lock");
        if std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock_path)
            .is_err()
        {
            eprintln!(
                "{id}: skipped: another `quench tick` holds `{}`",
                lock_path.display()
            );
            continue;
        }
        let _lock = LockFile(lock_path);
        let Some(journal::Event::IncidentStarted { mode, inputs, .. }) =
            records.first().map(|r| r.event.clone())
        else {
            eprintln!("error: {id}: the journal does not start with `incident_started`");
            worst = worst.max(1);
            continue;
        };
        let shown = dir.join("runbook.yaml").display().to_string();
        let text = std::fs::read_to_string(dir.join("runbook.yaml"))
            .map_err(|e| CliError::Runtime(format!("failed to read `{shown}`: {e}")))?;
        let rb = runbook::parse(SourceFile::new(shown.clone(), text))
            .map_err(CliError::Invalid)?
            .runbook;
        let executor = match mode {
            journal::Mode::Rehearsal => Executor::Sim(Sim::new(Arc::new(Scenario::default()))),
            journal::Mode::Live => {
                let used = rb
                    .steps
                    .iter()
                    .filter(|s| due.contains(&&s.id.to_string()))
                    .map(|s| s.action.provider)
                    .collect();
                Executor::Live(Box::new(rt.block_on(Live::build(&config, &used))))
            }
        };
        let humans = match &executor {
            Executor::Sim(sim) => Humans::Simulated(Arc::new(sim.scenario().clone())),
            Executor::Live(_) => Humans::Nobody,
        };
        let code = rt.block_on(execute(Execution {
            store: store.clone(),
            start: Start::FollowUps {
                prior: records,
                now,
            },
            existing: Some(id.clone()),
            runbook: rb,
            runbook_path: shown,
            inputs,
            secrets: Vec::new(),
            detected_at: None,
            trigger: None,
            templates: templates.clone(),
            executor,
            humans,
            assume_yes: yes,
            paused: Arc::new(AtomicBool::new(false)),
            live_display: false,
        }))?;
        worst = worst.max(code);
    }
    Ok(worst)
}
