//! The command line: clap definitions, and what each command does. The only
//! module that prints (besides the display).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::config::Config;
use crate::document::{self, Report};
use crate::engine::{self, Executor, Humans, Start};
use crate::incident;
use crate::journal::{self, Outcome};
use crate::providers::{self, Live, sim::Sim};
use crate::runbook::diagnostic::did_you_mean;
use crate::runbook::template::render_value;
use crate::runbook::{self, Diagnostics, LoadError, Runbook, SourceFile, human};
use crate::scenario::{ClockMode, Scenario};
use crate::secret::{Secret, SecretSource};
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
SLO; 4 the incident is being run by another quench; 130 interrupted (the journal is consistent: \
`quench resume` carries on)."
)]
pub struct Cli {
    /// Provider endpoints and credential sources; default `quench.toml` if present.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr as text or JSON (level from `QUENCH_LOG`, default `warn`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: crate::logging::LogFormat,
    /// Document templates (`incident.md.hbs`, `incident.html.hbs`) that
    /// replace the built-in ones; default `templates` if present.
    #[arg(long, global = true, env = "QUENCH_TEMPLATES", value_name = "DIR")]
    pub templates: Option<PathBuf>,
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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check runbooks, rehearsal scenarios and the document templates
    /// (`--templates`, or `./templates`) without touching the network.
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
        /// A runbook path or name (not with --all).
        #[arg(required_unless_present = "all")]
        runbook: Option<String>,
        /// Rehearse every runbook in the runbooks directory and print a
        /// summary; exits 1 if any failed, else 3 if any missed its SLO.
        #[arg(long, conflicts_with_all = ["runbook", "scenario", "vars", "secrets"])]
        all: bool,
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
    /// Continue an interrupted incident from its journal.
    Resume {
        incident: String,
        /// The runbook's secrets again (quench never stores them).
        #[arg(long = "secret", value_name = "K=SOURCE")]
        secrets: Vec<String>,
        /// Re-run steps that were in flight and are not idempotent, and
        /// approve approvals, in your name.
        #[arg(long)]
        yes: bool,
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
    /// The Slack endpoint: slash commands (`/slack/commands`) and buttons
    /// (`/slack/interactions`). Needs SLACK_SIGNING_SECRET; SLACK_BOT_TOKEN for
    /// status messages and approvals.
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
        listen: String,
    },
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Print the JSON Schema of runbooks or scenarios (for editors).
    Schema {
        #[arg(value_enum, default_value = "runbook")]
        what: SchemaWhat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Md,
    Json,
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SchemaWhat {
    Runbook,
    Scenario,
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
    /// Another process holds the incident.
    #[error("{0}")]
    Conflict(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Invalid(_) => 2,
            CliError::Runtime(_) => 1,
            CliError::Conflict(_) => 4,
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
                CliError::Invalid(d) => eprintln!("{d}"),
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

pub fn run(cli: Cli, invoked: Option<engine::Clock>) -> Result<u8, CliError> {
    let store = Store::new(&cli.store);
    match cli.command {
        Command::Validate { paths } => validate(&cli.runbooks, paths, cli.templates.as_deref()),
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
            let (source, shown) = read_runbook(&cli.runbooks, &runbook)?;
            let (rb, path) = validate_runbook(source, shown)?;
            let inputs = resolve_inputs(&rb, &vars, InputMode::Run)?;
            let config =
                Config::load(cli.config.as_deref()).map_err(|e| CliError::Usage(e.to_string()))?;
            let secrets = resolve_secrets(&rb, &secrets, false, &config)?;
            let detected_at = parse_detected_at(detected_at.as_deref())?;
            let stdin_tty = std::io::stdin().is_terminal();
            let paused = Arc::new(AtomicBool::new(false));
            let humans = if stdin_tty && !yes {
                Humans::terminal(paused.clone())
            } else {
                Humans::Nobody
            };
            crate::logging::startup("runbook loaded");
            let rt = incident_runtime()?;
            let used = rb.steps.iter().map(|s| s.action.provider).collect();
            let live = rt.block_on(Live::build(&config, &used));
            preflight_live(&rb, &live)?;
            crate::logging::startup("providers built");
            rt.block_on(execute(Execution {
                quiet: false,
                trigger,
                templates,
                scenario_text: None,
                invoked,
                store,
                start: Start::Fresh,
                existing: None,
                runbook: rb,
                runbook_path: path,
                inputs,
                secrets,
                detected_at,
                executor: Executor::Live(Box::new(live)),
                humans,
                assume_yes: yes,
                paused,
                live_display: std::io::stdout().is_terminal(),
            }))
        }
        Command::Rehearse {
            runbook,
            all,
            scenario,
            vars,
            secrets,
            detected_at,
            trigger,
        } => {
            let config =
                Config::load(cli.config.as_deref()).map_err(|e| CliError::Usage(e.to_string()))?;
            let templates = load_templates(cli.templates.as_deref())?;
            if all {
                return rehearse_all(
                    &cli.runbooks,
                    &store,
                    &config,
                    detected_at.as_deref(),
                    &templates,
                );
            }
            let runbook = runbook.unwrap_or_default();
            let (rb, path) = load_runbook(&cli.runbooks, &runbook)?;
            let detected_at = parse_detected_at(detected_at.as_deref())?;
            rehearse(Rehearsal {
                store,
                config: &config,
                runbook: rb,
                path,
                scenario,
                vars: &vars,
                secrets: &secrets,
                detected_at,
                quiet: false,
                trigger,
                templates,
            })
        }
        Command::Resume {
            incident,
            secrets,
            yes,
        } => {
            let templates = load_templates(cli.templates.as_deref())?;
            resume(
                cli.config.as_deref(),
                store,
                &incident,
                &secrets,
                yes,
                invoked,
                templates,
            )
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
            let dir = incident_dir(&store, &incident)?;
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
        Command::Serve { listen } => {
            let templates = load_templates(cli.templates.as_deref())?;
            serve(
                cli.config.as_deref(),
                store,
                cli.runbooks,
                &listen,
                templates,
            )
        }
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "quench", &mut std::io::stdout());
            Ok(0)
        }
        Command::Man => {
            use clap::CommandFactory;
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|e| CliError::Runtime(format!("failed to render the man page: {e}")))?;
            print!("{}", String::from_utf8_lossy(&page));
            Ok(0)
        }
        Command::Schema { what } => {
            let schema = match what {
                SchemaWhat::Runbook => crate::schema::runbook(),
                SchemaWhat::Scenario => crate::schema::scenario(),
            };
            print!("{}", crate::schema::to_text(&schema));
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
    /// The rehearsal's scenario, kept with the incident so `resume` can use it.
    scenario_text: Option<String>,
    invoked: Option<engine::Clock>,
    /// A new incident, or the follow-ups of an existing one.
    start: Start,
    /// The existing incident, for follow-ups.
    existing: Option<String>,
    runbook: Runbook,
    runbook_path: String,
    inputs: BTreeMap<String, String>,
    secrets: Vec<Secret>,
    detected_at: Option<DateTime<Utc>>,
    executor: Executor,
    humans: Humans,
    assume_yes: bool,
    paused: Arc<AtomicBool>,
    live_display: bool,
    /// Show nothing while it runs and print no summary.
    quiet: bool,
    /// What set the response off (`--trigger`), for the document.
    trigger: Option<String>,
    templates: Arc<document::Templates>,
}

/// Runs an incident at the terminal: Ctrl-C or SIGTERM stops it cleanly,
/// and the outcome is printed and mapped to the exit code.
async fn execute(x: Execution) -> Result<u8, CliError> {
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(None);
    tokio::spawn(async move {
        let signal = wait_for_signal().await;
        let _ = shutdown_tx.send(Some(signal.to_string()));
    });
    let follow_ups = matches!(x.start, Start::FollowUps { .. });
    let quiet = x.quiet;
    let done = incident::execute(incident::Execution {
        store: x.store,
        id: None,
        start: x.start,
        existing: x.existing,
        runbook: x.runbook,
        runbook_path: x.runbook_path,
        inputs: x.inputs,
        secrets: x.secrets,
        detected_at: x.detected_at,
        executor: x.executor,
        humans: x.humans,
        assume_yes: x.assume_yes,
        by: journal::Actor::current(),
        invoked: x.invoked,
        scenario_text: x.scenario_text,
        trigger: x.trigger,
        templates: x.templates,
        display: (!quiet).then_some(incident::DisplaySettings {
            live: x.live_display,
            paused: x.paused,
        }),
        subscribers: Vec::new(),
        shutdown: shutdown_rx,
    })
    .await
    .map_err(|e| match e {
        incident::IncidentError::Setup(m) => CliError::Usage(m),
        incident::IncidentError::Runtime(m) => CliError::Runtime(m),
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
    if follow_ups {
        println!(
            "{id} follow-ups {}",
            finished.outcome.name().replace('_', " ")
        );
    } else {
        println!("{id} {}: {ttr}", finished.outcome.name().replace('_', " "));
    }
    println!("document: {}", done.dir.join("incident.md").display());
    Ok(code)
}

fn serve(
    config: Option<&Path>,
    store: Store,
    runbooks: PathBuf,
    listen: &str,
    templates: Arc<document::Templates>,
) -> Result<u8, CliError> {
    let config = Config::load(config).map_err(|e| CliError::Usage(e.to_string()))?;
    let signing_secret = crate::config::credential(
        "slack_signing_secret",
        config.providers.slack.signing_secret.as_deref(),
        &["SLACK_SIGNING_SECRET"],
    )
    .map_err(|e| CliError::Usage(e.to_string()))?
    .ok_or_else(|| {
        CliError::Usage(
            "no Slack signing secret: set SLACK_SIGNING_SECRET or [providers.slack] signing_secret (the app's Basic Information page shows it)".into(),
        )
    })?;
    let built =
        crate::providers::slack::Slack::build(&config.providers.slack).map_err(CliError::Usage)?;
    if let Some(why) = &built.no_token {
        eprintln!(
            "warning: {why}: commands are answered, but no status message is kept and nobody can approve"
        );
    }
    if config.chatops.allow.is_empty() {
        eprintln!("warning: no `[[chatops.allow]]` rules: every command will be denied");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("failed to start the runtime: {e}")))?;
    let incidents = crate::server::incident_runtime()
        .map_err(|e| CliError::Runtime(format!("failed to start the runtime: {e}")))?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| CliError::Usage(format!("failed to listen on `{listen}`: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::Runtime(e.to_string()))?;
        println!("quench serve: listening on http://{addr} (POST /slack/commands, /slack/interactions)");
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
            slack: built.slack,
            now: crate::server::unix_now,
            incidents: incidents.handle().clone(),
        };
        crate::server::run(listener, settings, shutdown_rx)
            .await
            .map_err(|e| CliError::Runtime(format!("the server failed: {e}")))?;
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

/// A path, or a name looked up in the runbooks directory and then among the
/// runbooks built into quench.
pub(crate) fn load_runbook(dir: &Path, arg: &str) -> Result<(Runbook, String), CliError> {
    let (source, shown) = read_runbook(dir, arg)?;
    validate_runbook(source, shown)
}

/// Finds and reads a runbook, as [`load_runbook`] does, without validating
/// it: its text, and the name it is shown by.
fn read_runbook(dir: &Path, arg: &str) -> Result<(SourceFile, String), CliError> {
    match locate_runbook(dir, arg) {
        Located::File(path) => Ok((runbook::read(&path)?, path.display().to_string())),
        Located::Builtin(text) => {
            let shown = format!("<built-in>/{arg}.yaml");
            Ok((SourceFile::new(shown.clone(), text), shown))
        }
        Located::Missing => Err(no_runbook(dir, arg)),
    }
}

/// Validates a runbook [`read_runbook`] read, and prints its warnings.
fn validate_runbook(source: SourceFile, shown: String) -> Result<(Runbook, String), CliError> {
    let loaded = runbook::parse(source).map_err(CliError::Invalid)?;
    print_warnings(&loaded.warnings);
    Ok((loaded.runbook, shown))
}

/// Where [`load_runbook`] finds a runbook, without reading it.
pub(crate) enum Located {
    File(PathBuf),
    Builtin(&'static str),
    Missing,
}

pub(crate) fn locate_runbook(dir: &Path, arg: &str) -> Located {
    let as_path = Path::new(arg);
    if as_path.is_file() {
        return Located::File(as_path.to_path_buf());
    }
    let candidate = dir.join(format!("{arg}.yaml"));
    if candidate.is_file() {
        Located::File(candidate)
    } else if let Some(text) = shipped::get(arg) {
        Located::Builtin(text)
    } else {
        Located::Missing
    }
}

/// The error for a runbook [`locate_runbook`] did not find.
pub(crate) fn no_runbook(dir: &Path, arg: &str) -> CliError {
    let names = runbook_names(dir);
    let help = did_you_mean(arg, names.iter().map(String::as_str))
        .map(|h| format!(": {h}"))
        .unwrap_or_else(|| ": `quench list` shows the runbooks".into());
    CliError::Usage(format!(
        "no runbook `{arg}` (not a file, not in `{}`, not built in){help}",
        dir.display()
    ))
}

/// The names [`list_runbooks`] lists, without reading the files: the
/// built-in runbooks', then the runbooks directory's.
pub(crate) fn runbook_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = shipped::ALL.iter().map(|(n, _)| n.to_string()).collect();
    names.extend(runbook_files(dir).into_iter().map(|(name, _)| name));
    names.sort();
    names.dedup();
    names
}

/// The `.yaml`/`.yml` files of the runbooks directory, by name.
pub(crate) fn runbook_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            (name, p)
        })
        .collect()
}

fn print_warnings(w: &[runbook::Diagnostic]) {
    for d in w {
        eprintln!("{d}\n");
    }
}

/// What `list` shows as the title of a runbook that does not validate.
pub(crate) const NOT_VALID_TITLE: &str = "(does not validate: run `quench validate`)";

pub(crate) fn list_runbooks(dir: &Path) -> Vec<(String, String, String)> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (name, text) in shipped::ALL {
        let title = runbook::parse(SourceFile::new(*name, *text))
            .map(|l| l.runbook.title)
            .unwrap_or_default();
        out.insert(name.to_string(), (title, "built in".into()));
    }
    for (name, p) in runbook_files(dir) {
        let title = runbook::load(&p)
            .map(|l| l.runbook.title)
            .unwrap_or_else(|_| NOT_VALID_TITLE.into());
        out.insert(name, (title, p.display().to_string()));
    }
    out.into_iter().map(|(n, (t, o))| (n, t, o)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InputMode {
    Run,
    Rehearse,
    Plan,
}

pub(crate) fn resolve_inputs(
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

pub(crate) fn resolve_secrets(
    rb: &Runbook,
    given: &[String],
    rehearsal: bool,
    config: &Config,
) -> Result<Vec<Secret>, CliError> {
    let mut out = Vec::new();
    for g in given {
        let Some((k, source)) = g.split_once('=') else {
            return Err(CliError::Usage(
                "`--secret` takes K=SOURCE, where SOURCE is `env:VAR`, `file:PATH`, `stdin` or `vault:MOUNT/PATH#FIELD`"
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
        let secret = match &source {
            SecretSource::Vault { mount, path, field } => {
                read_from_vault(config, mount, path, field).map(|value| Secret::new(k, value))
            }
            other => other.read(k).map_err(|e| e.to_string()),
        }
        .and_then(|s| {
            crate::secret::check_len(k, s.expose()).map_err(|e| e.to_string())?;
            Ok(s)
        });
        out.push(secret.map_err(|e| CliError::Usage(format!("secret `{k}`: {e}")))?);
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

/// Reads `vault:MOUNT/PATH#FIELD` with the engine's Vault settings, before
/// the incident starts.
fn read_from_vault(
    config: &Config,
    mount: &str,
    path: &str,
    field: &str,
) -> Result<String, String> {
    let vault = crate::providers::vault::Vault::build(
        &config.providers.vault,
        crate::providers::http::client()?,
    )?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start the runtime: {e}"))?;
    rt.block_on(vault.kv_get(mount, path, field))
        .map(|(_, value, _)| value)
        .map_err(|e| format!("failed to read it from Vault: {}", e.message))
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

fn preflight_live(rb: &Runbook, live: &Live) -> Result<(), CliError> {
    incident::preflight_live(rb, live).map_err(CliError::Usage)
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

fn validate(
    runbooks_dir: &Path,
    paths: Vec<PathBuf>,
    templates: Option<&Path>,
) -> Result<u8, CliError> {
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
    let rt = incident_runtime()?;
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
        // One runner per incident: a `resume` or another `tick` holding the
        // incident is left alone, and the journal is read again under the lock.
        let _lock = match store.lock(&id) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{id}: skipped: {e}");
                continue;
            }
        };
        let records = match journal::read(&dir.join("journal.jsonl")) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {id}: {e}");
                worst = worst.max(1);
                continue;
            }
        };
        let due: Vec<String> = engine::replay::settled(&records)
            .scheduled
            .into_iter()
            .filter(|(_, at)| *at <= now)
            .map(|(step, _)| step)
            .collect();
        if due.is_empty() {
            continue;
        }
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
                    .filter(|s| due.contains(&s.id.to_string()))
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
            quiet: false,
            scenario_text: None,
            invoked: None,
            store: store.clone(),
            start: Start::FollowUps {
                prior: records,
                now,
            },
            trigger: None,
            templates: templates.clone(),
            existing: Some(id.clone()),
            runbook: rb,
            runbook_path: shown,
            inputs,
            secrets: Vec::new(),
            detected_at: None,
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

fn incident_dir(store: &Store, id: &str) -> Result<PathBuf, CliError> {
    let dir = store.dir(id);
    if dir.join("journal.jsonl").is_file() {
        return Ok(dir);
    }
    let known = store.list();
    let help = did_you_mean(id, known.iter().map(String::as_str))
        .map(|h| format!(" ({h})"))
        .unwrap_or_default();
    Err(CliError::Usage(format!(
        "no incident `{id}` in `{}`{help}",
        store.root().display()
    )))
}

fn resume(
    config: Option<&Path>,
    store: Store,
    id: &str,
    secrets: &[String],
    yes: bool,
    invoked: Option<engine::Clock>,
    templates: Arc<document::Templates>,
) -> Result<u8, CliError> {
    let dir = incident_dir(&store, id)?;
    let _lock = store.lock(id).map_err(|e| match e {
        crate::store::LockError::Held { .. } => CliError::Conflict(e.to_string()),
        other => CliError::Runtime(other.to_string()),
    })?;
    let (records, repaired) = journal::read_for_append(&dir.join("journal.jsonl"))
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    if let Some(r) = &repaired {
        eprintln!("{id}: {r}");
    }
    let state = engine::replay::settled(&records);
    if let Some(outcome) = state.finished
        && outcome != Outcome::Interrupted
    {
        return Err(CliError::Usage(format!(
            "incident `{id}` already finished ({}): nothing to resume",
            outcome.name().replace('_', " ")
        )));
    }
    let Some(journal::Event::IncidentStarted {
        mode,
        inputs,
        runbook_sha256,
        detected_at,
        ..
    }) = records.first().map(|r| r.event.clone())
    else {
        return Err(CliError::Runtime(format!(
            "the journal of `{id}` does not start with `incident_started`"
        )));
    };
    let shown = dir.join("runbook.yaml").display().to_string();
    let text = std::fs::read_to_string(dir.join("runbook.yaml"))
        .map_err(|e| CliError::Runtime(format!("failed to read `{shown}`: {e}")))?;
    let rb = runbook::parse(SourceFile::new(shown.clone(), text))
        .map_err(CliError::Invalid)?
        .runbook;
    if rb.hash != runbook_sha256 {
        return Err(CliError::Runtime(format!(
            "`{shown}` is not the runbook the incident started with (sha256 differs): it was edited"
        )));
    }
    let config = Config::load(config).map_err(|e| CliError::Usage(e.to_string()))?;
    let rehearsal = mode == journal::Mode::Rehearsal;
    let secrets = resolve_secrets(&rb, secrets, rehearsal, &config)?;
    let scenario = match std::fs::read_to_string(dir.join("scenario.yaml")) {
        Ok(text) => Scenario::parse(SourceFile::new(
            dir.join("scenario.yaml").display().to_string(),
            text,
        ))
        .map_err(CliError::Invalid)?,
        Err(_) => Scenario::default(),
    };
    // One thread, as for `run` (see `incident_runtime`).
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if rehearsal && scenario.clock == ClockMode::Virtual {
        builder.start_paused(true);
    }
    let rt = builder
        .build()
        .map_err(|e| CliError::Runtime(format!("failed to start the runtime: {e}")))?;
    let paused = Arc::new(AtomicBool::new(false));
    let (executor, humans) = if rehearsal {
        let scenario = Arc::new(scenario);
        (
            Executor::Sim(Sim::new(scenario.clone())),
            Humans::Simulated(scenario),
        )
    } else {
        let used = rb.steps.iter().map(|s| s.action.provider).collect();
        let live = rt.block_on(Live::build(&config, &used));
        preflight_live(&rb, &live)?;
        let humans = if std::io::stdin().is_terminal() && !yes {
            Humans::terminal(paused.clone())
        } else {
            Humans::Nobody
        };
        (Executor::Live(Box::new(live)), humans)
    };
    let live_display = !rehearsal && std::io::stdout().is_terminal();
    rt.block_on(execute(Execution {
        quiet: false,
        store,
        scenario_text: None,
        trigger: None,
        templates,
        invoked,
        start: Start::Resume {
            prior: records,
            repaired,
        },
        existing: Some(id.to_string()),
        runbook: rb,
        runbook_path: shown,
        inputs,
        secrets,
        detected_at: Some(detected_at),
        executor,
        humans,
        assume_yes: yes,
        paused,
        live_display,
    }))
}

struct Rehearsal<'a> {
    store: Store,
    config: &'a Config,
    runbook: Runbook,
    path: String,
    scenario: Option<PathBuf>,
    vars: &'a [String],
    secrets: &'a [String],
    detected_at: Option<DateTime<Utc>>,
    /// Print nothing while it runs (`rehearse --all` prints a table).
    quiet: bool,
    trigger: Option<String>,
    templates: Arc<document::Templates>,
}

fn rehearse(r: Rehearsal<'_>) -> Result<u8, CliError> {
    let rb = r.runbook;
    let inputs = resolve_inputs(&rb, r.vars, InputMode::Rehearse)?;
    let secrets = resolve_secrets(&rb, r.secrets, true, r.config)?;
    let scenario_text = match &r.scenario {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            CliError::Usage(format!("failed to read `{}`: {}", p.display(), e.kind()))
        })?),
        None => None,
    };
    let scenario = match &r.scenario {
        Some(p) => Scenario::load(p)?,
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
    let live_display = scenario.clock == ClockMode::Realtime && std::io::stdout().is_terminal();
    rt.block_on(execute(Execution {
        scenario_text,
        invoked: None,
        store: r.store,
        start: Start::Fresh,
        existing: None,
        runbook: rb,
        runbook_path: r.path,
        inputs,
        secrets,
        detected_at: r.detected_at,
        executor: Executor::Sim(Sim::new(scenario.clone())),
        humans: Humans::Simulated(scenario),
        assume_yes: false,
        paused: Arc::new(AtomicBool::new(false)),
        live_display,
        quiet: r.quiet,
        trigger: r.trigger,
        templates: r.templates,
    }))
}

/// Every runbook in the directory (the built-in ones if it has none),
/// rehearsed with its examples, as CI would on every runbook change.
fn rehearse_all(
    dir: &Path,
    store: &Store,
    config: &Config,
    detected_at: Option<&str>,
    templates: &Arc<document::Templates>,
) -> Result<u8, CliError> {
    let detected_at = parse_detected_at(detected_at)?;
    let mut names: Vec<String> = list_runbooks(dir)
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
                scenario: None,
                vars: &[],
                secrets: &[],
                detected_at,
                quiet: true,
                trigger: None,
                templates: templates.clone(),
            })
        });
        let id = store.list().into_iter().find(|i| !before.contains(i));
        let report = id.as_ref().and_then(|id| {
            journal::read(&store.dir(id).join("journal.jsonl"))
                .ok()
                .and_then(|r| Report::from_records(&r).ok())
        });
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

/// The built-in templates, with a team's own in their place: from
/// `--templates DIR` (or `QUENCH_TEMPLATES`), else `./templates` if there is
/// one. A broken template is refused before an incident starts, not found
/// when its document is written.
/// The runtime an incident runs on in this process: one thread. A step that
/// settles wakes the scheduler, which starts the next step, all without
/// handing work between threads (each hand-off costs a wake-up, ~0.1–0.5 ms
/// on a small VM, twice per step). Nothing on it blocks for long: the
/// document is rendered on a thread of its own, the terminal is written by
/// one of its own, and a journal append is one write and one `fdatasync`.
fn incident_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("failed to start the runtime: {e}")))
}

/// The templates directory in use: the one named, or `./templates` if
/// there is one.
fn templates_dir(named: Option<&Path>) -> Option<PathBuf> {
    match named {
        Some(d) => Some(d.to_path_buf()),
        None => Some(PathBuf::from("templates")).filter(|d| d.is_dir()),
    }
}

pub(crate) fn load_templates(dir: Option<&Path>) -> Result<Arc<document::Templates>, CliError> {
    let dir = templates_dir(dir);
    if let Some(d) = dir.as_ref().filter(|d| !d.is_dir()) {
        return Err(CliError::Usage(format!(
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
        .map_err(|e| CliError::Usage(e.to_string()))
}
