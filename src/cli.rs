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
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::app::inputs::{
    InputMode, parse_detected_at, parse_leaked_at, resolve_inputs, resolve_secrets,
};
use crate::app::plan::plan;
use crate::app::{self, Error};
use crate::config::Config;
use crate::document::{self, Report};
use crate::engine::sim::Sim;
use crate::engine::{self, Executor, Humans, Start};
use crate::incident;
use crate::journal;
use crate::providers::{self, Live};
use crate::runbook::{self, LoadError, Runbook, SourceFile, human};
use crate::scenario::{ClockMode, Scenario};
use crate::secret::Secret;
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
`quench rehearse` runs the same runbook against simulated providers, and with `--pace` plays it \
as a drill: scenario latencies in wall-clock time, people answering, scored in `quench drills`.\n\n\
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
    /// Where incidents are kept: a directory (default `incidents`), or a
    /// `postgres://USER@HOST:PORT/DATABASE` URL without a password, for
    /// several `serve` replicas; default `store` in quench.toml.
    #[arg(long, global = true, env = "QUENCH_STORE", value_name = "DIR|URL")]
    pub store: Option<String>,
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
    Run(RunArgs),
    /// Rehearse a runbook against simulated providers: touches nothing real.
    Rehearse(RehearseArgs),
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
    /// Run what has come due: follow-up steps (`after:`), steps watching
    /// for a condition, and scheduled rotations (`[[rotations]]`). A
    /// rotation whose run failed is retried, the same incident, 1h, 4h and
    /// 16h after each failure, then given up on; its `channel` is told.
    Tick {
        /// Decide what is due as of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Approve approvals in your name.
        #[arg(long)]
        yes: bool,
    },
    /// Scheduled rotations (`[[rotations]]` in quench.toml): last run, how
    /// it stands, next due, overdue, and for a failed run its attempts and
    /// when `quench tick` retries it (or that it was given up on).
    Rotations {
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
        /// As of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
    },
    /// The monthly key review: every AWS access key, the GitHub
    /// organization's fine-grained tokens and the Vault tokens the engine
    /// can list, flagging old, unused, doubled, unexpiring and admin ones
    /// (`[audit]` in quench.toml). Exit 1 when anything is flagged, 2 when
    /// a configured source cannot be read.
    Audit {
        /// How the review is printed: a table, JSON, or Markdown.
        #[arg(long, value_enum, default_value = "table")]
        format: AuditFormat,
        /// Evaluate as of this time (RFC 3339) instead of now.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Start the scheduled rotation (`[[rotations]]` whose `iam_user`
        /// owns it) of every AWS key older than its maximum age, each once
        /// you approve it.
        #[arg(long)]
        rotate: bool,
        /// With `--rotate`: approve every rotation without asking.
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
    /// List the drills played (`rehearse --pace`, `/quench drill`), oldest
    /// first, with their scorecards' figures: time to revoke, the first
    /// acknowledgement, targets met, injects.
    Drills {
        /// Only the drills of this runbook.
        runbook: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: ListFormat,
    },
    /// List runbooks or incidents.
    List {
        #[arg(value_enum, default_value = "runbooks")]
        what: ListWhat,
    },
    /// Every action, its parameters (secret-capable ones marked) and outputs.
    Providers,
    /// The Slack endpoint (slash commands at `/slack/commands`, buttons at
    /// `/slack/interactions`) and the detectors' webhooks (`/hooks/github`,
    /// `/hooks/aws`, `/hooks/generic/NAME`, as `[hooks]` and `[[triggers]]`
    /// allow). Slack needs SLACK_SIGNING_SECRET; SLACK_BOT_TOKEN for status
    /// messages and approvals.
    Serve {
        /// Address to listen on.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
        listen: String,
    },
    /// Approve a step a running incident waits on (one `quench serve`
    /// started from a detector), or decline it with `--deny`. A
    /// `[[chatops.allow]]` rule must let your user name `approve` its
    /// runbook.
    Approve {
        incident: String,
        step: String,
        /// Decline instead: the step is skipped.
        #[arg(long)]
        deny: bool,
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

/// `quench run`'s arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
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
    /// When the credential leaked (RFC 3339): the commit, paste or log line
    /// that exposed it. The audit window starts here (`incident.leaked_at`,
    /// `incident.leaked_ago`); without it, 90 days before detection.
    #[arg(long, value_name = "RFC3339")]
    leaked_at: Option<String>,
    /// What set the response off, for the document: "GitHub secret
    /// scanning alert #12", "reported by alice in #security".
    #[arg(long, value_name = "TEXT")]
    trigger: Option<String>,
    /// Approve every approval in your name; leave manual tasks open.
    #[arg(long)]
    yes: bool,
}

/// `quench rehearse`'s arguments.
#[derive(Debug, Args)]
pub struct RehearseArgs {
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
    /// An input value.
    #[arg(long = "var", value_name = "K=V")]
    vars: Vec<String>,
    /// A secret, read from `env:VAR`, `file:PATH` or `stdin`; a placeholder
    /// stands in for each one not given.
    #[arg(long = "secret", value_name = "K=SOURCE")]
    secrets: Vec<String>,
    /// When the leak was detected (RFC 3339); the SLO clock starts here.
    #[arg(long, value_name = "RFC3339")]
    detected_at: Option<String>,
    /// When the credential leaked (RFC 3339): where the audit window starts.
    #[arg(long, value_name = "RFC3339", conflicts_with = "all")]
    leaked_at: Option<String>,
    /// What set the drill off, for the document.
    #[arg(long, value_name = "TEXT")]
    trigger: Option<String>,
    /// Play it as a drill: the scenario's latencies kept in wall-clock time
    /// (`real`) or N times faster (`20x`); the approvals and tasks the
    /// scenario does not script are asked at the terminal. Its journal's
    /// mode is `drill`.
    #[arg(long, value_name = "real|Nx", value_parser = crate::scenario::parse_pace, conflicts_with = "all")]
    pace: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Md,
    Json,
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AuditFormat {
    Table,
    Json,
    Md,
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

/// The global flags every command reads.
struct Globals {
    config: Option<PathBuf>,
    templates: Option<PathBuf>,
    runbooks: PathBuf,
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
    let Cli {
        config,
        templates,
        runbooks,
        command,
        store,
        ..
    } = cli;
    let cli = Globals {
        config,
        templates,
        runbooks,
    };
    let store = || open_store(store.as_deref(), cli.config.as_deref());
    match command {
        Command::Validate { paths } => validate(&cli.runbooks, paths, cli.templates.as_deref()),
        Command::Plan { runbook, vars } => {
            let (rb, path) = load_runbook(&cli.runbooks, &runbook)?;
            let inputs = resolve_inputs(&rb, &vars, InputMode::Plan)?;
            print!("{}", plan(&rb, &path, &inputs));
            Ok(0)
        }
        Command::Run(args) => run_live(&cli, store()?, invoked, args),
        Command::Rehearse(args) => rehearse_command(&cli, store()?, args),
        Command::Resume {
            incident,
            secrets,
            yes,
        } => resume(&cli, store()?, &incident, &secrets, yes, invoked),
        Command::Tick { now, yes } => tick(&cli, store()?, now.as_deref(), yes),
        Command::Rotations { format, now } => {
            rotations(cli.config.as_deref(), &store()?, format, now.as_deref())
        }
        Command::Audit {
            format,
            now,
            rotate,
            yes,
        } => audit_command(
            &cli,
            &store()?,
            format,
            now.as_deref(),
            rotate.then_some(yes),
        ),
        Command::Report {
            incident,
            format,
            template,
        } => report(
            cli.templates.as_deref(),
            &store()?,
            &incident,
            format,
            template.as_deref(),
        ),
        Command::Drills { runbook, format } => {
            let drills = app::drills::list(&store()?, runbook.as_deref());
            match format {
                ListFormat::Table => print!("{}", app::drills::table(&drills)),
                ListFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&drills)
                        .map_err(|e| Error::Runtime(e.to_string()))?
                ),
            }
            Ok(0)
        }
        Command::List { what } => {
            let store = match what {
                ListWhat::Runbooks => Store::new("incidents"),
                _ => store()?,
            };
            list(&cli.runbooks, &store, what);
            Ok(0)
        }
        Command::Serve { listen } => {
            let templates = load_templates(cli.templates.as_deref())?;
            serve(
                cli.config.as_deref(),
                store()?,
                cli.runbooks,
                &listen,
                templates,
            )
        }
        Command::Approve {
            incident,
            step,
            deny,
        } => approve(cli.config.as_deref(), &store()?, &incident, &step, !deny),
        generated @ (Command::Completions { .. }
        | Command::Man
        | Command::Schema { .. }
        | Command::Providers) => print_generated(&generated),
    }
}

/// `quench run`: a live incident at the terminal.
fn run_live(
    cli: &Globals,
    store: Store,
    invoked: Option<engine::Clock>,
    args: RunArgs,
) -> Result<u8, Error> {
    let RunArgs {
        runbook,
        vars,
        secrets,
        detected_at,
        leaked_at,
        trigger,
        yes,
    } = args;
    let templates = load_templates(cli.templates.as_deref())?;
    let (source, shown) = app::runbooks::read(&cli.runbooks, &runbook)?;
    let (loaded, path) = app::runbooks::validate(source, shown)?;
    print_warnings(&loaded.warnings);
    let rb = loaded.runbook;
    let inputs = resolve_inputs(&rb, &vars, InputMode::Run)?;
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let secrets = resolve_secrets(&rb, &secrets, false, &config)?;
    let detected_at = parse_detected_at(detected_at.as_deref())?;
    let leaked_at = parse_leaked_at(leaked_at.as_deref(), detected_at)?;
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
        leaked_at,
        executor: Executor::Live(Box::new(live)),
        humans,
        assume_yes: yes,
        paused,
        live_display: std::io::stdout().is_terminal(),
    }))
}

/// `quench rehearse`: one runbook, or every runbook, against `sim`.
fn rehearse_command(cli: &Globals, store: Store, args: RehearseArgs) -> Result<u8, Error> {
    let RehearseArgs {
        runbook,
        all,
        scenario,
        vars,
        secrets,
        detected_at,
        leaked_at,
        trigger,
        pace,
    } = args;
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
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
    let leaked_at = parse_leaked_at(leaked_at.as_deref(), detected_at)?;
    rehearse(Rehearsal {
        store,
        config: &config,
        runbook: rb,
        path,
        scenario,
        vars: &vars,
        secrets: &secrets,
        detected_at,
        leaked_at,
        quiet: false,
        trigger,
        templates,
        pace,
    })
}

/// `quench report`: the document again, from the journal.
fn report(
    templates_dir: Option<&Path>,
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
    let mut templates = (*load_templates(templates_dir)?).clone();
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
        None => println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| Error::Runtime(e.to_string()))?
        ),
    }
    Ok(0)
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
                let summary = store
                    .journal(&id)
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
    leaked_at: Option<DateTime<Utc>>,
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
async fn execute(x: Execution) -> Result<u8, Error> {
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
        leaked_at: x.leaked_at,
        detection: None,
        pool: None,
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
    if follow_ups {
        println!(
            "{id} follow-ups {}",
            finished.outcome.name().replace('_', " ")
        );
    } else if let Some(rotation) = rotation {
        println!(
            "{id} rotation {}: {}",
            finished.outcome.name().replace('_', " "),
            rotation.state
        );
    } else {
        println!(
            "{id} {}: {ttr}; {}",
            finished.outcome.name().replace('_', " "),
            finished.proof.summary(finished.detected_at)
        );
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

fn serve(
    config: Option<&Path>,
    store: Store,
    runbooks: PathBuf,
    listen: &str,
    templates: Arc<document::Templates>,
) -> Result<u8, Error> {
    let config = Config::load(config).map_err(|e| Error::Usage(e.to_string()))?;
    let signing_secret = slack_signing_secret(&config)?;
    let built =
        crate::providers::slack::Slack::build(&config.providers.slack).map_err(Error::Usage)?;
    if let Some(why) = &built.no_token {
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
            slack: built.slack,
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

fn preflight_live(rb: &Runbook, live: &Live) -> Result<(), Error> {
    incident::preflight_live(rb, live).map_err(Error::Usage)
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

fn validate(
    runbooks_dir: &Path,
    paths: Vec<PathBuf>,
    templates: Option<&Path>,
) -> Result<u8, Error> {
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

fn tick(cli: &Globals, store: Store, now: Option<&str>, yes: bool) -> Result<u8, Error> {
    let templates = load_templates(cli.templates.as_deref())?;
    let now = parse_now(now)?;
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let schedules = app::rotations::schedules(&config.rotations)?;
    let rt = incident_runtime()?;
    let before = app::rotations::status(&store, &schedules, now);
    let mut worst = 0u8;
    let mut ids = store.list();
    ids.reverse();
    for id in ids {
        let code = match tick_one(&store, &id, now, &config, &rt, yes, &templates) {
            Ok(code) => code,
            Err(e @ Error::Invalid(_)) => return Err(e),
            Err(e) => {
                eprintln!("error: {id}: {e}");
                1
            }
        };
        worst = worst.max(code);
    }
    let r = Rotation {
        runbooks: &cli.runbooks,
        store: &store,
        config: &config,
        rt: &rt,
        yes,
        templates: &templates,
    };
    for due in app::rotations::status(&store, &schedules, now)
        .into_iter()
        .filter(|s| s.due || s.retry_due)
    {
        let Some(schedule) = schedules.iter().find(|s| s.name == due.name) else {
            continue;
        };
        let started = if due.retry_due {
            retry_rotation(&r, schedule, now)
        } else {
            start_rotation(&r, schedule, now)
        };
        let code = match started {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: rotation `{}`: {e}", schedule.name);
                e.exit_code().max(1)
            }
        };
        worst = worst.max(code);
    }
    report_rotations(&r, &schedules, &before, now);
    Ok(worst)
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

/// Starts a scheduled rotation that has come due, as of `now`, unless
/// another `tick` is starting it.
fn start_rotation(
    r: &Rotation,
    schedule: &app::rotations::Schedule,
    now: DateTime<Utc>,
) -> Result<u8, Error> {
    let Some((_lock, status)) = locked_status(r.store, schedule, now)? else {
        return Ok(0);
    };
    if !status.due {
        return Ok(0);
    }
    let why = format!(
        "scheduled rotation `{}` (every {})",
        schedule.name, schedule.every_text
    );
    run_rotation(r, schedule, now, why)
}

/// Retries the failed last run of `schedule`, the same incident, once its
/// backoff is over: its failed steps run again, nothing that succeeded
/// does. Left alone while another process holds the schedule or the
/// incident.
fn retry_rotation(
    r: &Rotation,
    schedule: &app::rotations::Schedule,
    now: DateTime<Utc>,
) -> Result<u8, Error> {
    let Some((_lock, status)) = locked_status(r.store, schedule, now)? else {
        return Ok(0);
    };
    let Some(id) = status.last_incident.filter(|_| status.retry_due) else {
        return Ok(0);
    };
    let _incident = match r.store.lock(&id) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{id}: skipped: {e}");
            return Ok(0);
        }
    };
    let records = r
        .store
        .journal(&id)
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let started = app::incidents::started(&id, &records)?;
    let (mut rb, shown) = app::incidents::stored_runbook(&r.store.dir(&id))?;
    app::incidents::gate(&mut rb, &records);
    if rb.hash != started.runbook_sha256 {
        return Err(Error::Runtime(format!(
            "`{shown}` is not the runbook the incident started with (sha256 differs): it was edited"
        )));
    }
    let used = rb.steps.iter().map(|s| s.action.provider).collect();
    let live = r.rt.block_on(Live::build(r.config, &used));
    preflight_live(&rb, &live)?;
    r.rt.block_on(execute(Execution {
        quiet: false,
        scenario_text: None,
        invoked: Some(engine::Clock::at(now.max(Utc::now()))),
        store: r.store.clone(),
        start: Start::Retry { prior: records },
        trigger: None,
        templates: r.templates.clone(),
        existing: Some(id),
        runbook: rb,
        runbook_path: shown,
        inputs: started.inputs,
        secrets: Vec::new(),
        detected_at: Some(started.detected_at),
        leaked_at: None,
        executor: Executor::Live(Box::new(live)),
        humans: Humans::Nobody,
        assume_yes: r.yes,
        paused: Arc::new(AtomicBool::new(false)),
        live_display: false,
    }))
}

/// Says what this `tick` did to each scheduled rotation that failed, was
/// retried or was given up on: printed, and posted to its `channel`
/// through the Slack provider when it names one.
fn report_rotations(
    r: &Rotation,
    schedules: &[app::rotations::Schedule],
    before: &[app::rotations::Status],
    now: DateTime<Utc>,
) {
    let after = app::rotations::status(r.store, schedules, now);
    let mut slack = None;
    for (schedule, status) in schedules.iter().zip(&after) {
        let was = before.iter().find(|b| b.name == status.name);
        let Some(text) = app::rotations::report(was, status) else {
            continue;
        };
        println!("{text}");
        let Some(channel) = &schedule.channel else {
            continue;
        };
        let built =
            slack.get_or_insert_with(|| providers::slack::Slack::build(&r.config.providers.slack));
        let posted = match built {
            Ok(b) if b.no_token.is_none() => {
                r.rt.block_on(b.slack.post(channel, &text, None, None))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Ok(b) => Err(b.no_token.clone().unwrap_or_default()),
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = posted {
            eprintln!(
                "error: rotation `{}`: failed to tell `{channel}`: {e}",
                schedule.name
            );
        }
    }
}

/// Starts `schedule`'s rotation now, whether or not it is due, unless
/// another process is starting it: `why` says what started it.
fn begin_rotation(
    r: &Rotation,
    schedule: &app::rotations::Schedule,
    now: DateTime<Utc>,
    why: String,
) -> Result<u8, Error> {
    let _lock = match rotation_lock(r.store, schedule)? {
        Some(l) => l,
        None => return Ok(0),
    };
    run_rotation(r, schedule, now, why)
}

/// The schedule's lock, and its status read again under it: one starter
/// (or retrier) per schedule. `None` while another process holds it.
fn locked_status(
    store: &Store,
    schedule: &app::rotations::Schedule,
    now: DateTime<Utc>,
) -> Result<Option<(crate::store::IncidentLock, app::rotations::Status)>, Error> {
    let Some(lock) = rotation_lock(store, schedule)? else {
        return Ok(None);
    };
    let status = app::rotations::status(store, std::slice::from_ref(schedule), now);
    Ok(status.into_iter().next().map(|s| (lock, s)))
}

/// The schedule's own lock: one starter at a time.
fn rotation_lock(
    store: &Store,
    schedule: &app::rotations::Schedule,
) -> Result<Option<crate::store::IncidentLock>, Error> {
    let lock_id = format!("rotation-{}", schedule.name);
    crate::private::create_dir_all(&store.dir(&lock_id)).map_err(|e| {
        Error::Runtime(format!(
            "failed to make `{}`: {e}",
            store.dir(&lock_id).display()
        ))
    })?;
    match store.lock(&lock_id) {
        Ok(l) => Ok(Some(l)),
        Err(e) => {
            eprintln!("rotation `{}`: skipped: {e}", schedule.name);
            Ok(None)
        }
    }
}

/// Runs `schedule`'s runbook as a new live incident, its schedule's lock held.
fn run_rotation(
    r: &Rotation,
    schedule: &app::rotations::Schedule,
    now: DateTime<Utc>,
    why: String,
) -> Result<u8, Error> {
    let Rotation {
        runbooks,
        store,
        config,
        rt,
        yes,
        templates,
    } = *r;
    let (rb, path) = load_runbook(runbooks, &schedule.runbook)?;
    let vars: Vec<String> = schedule
        .inputs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let inputs = resolve_inputs(&rb, &vars, InputMode::Run)?;
    let used = rb.steps.iter().map(|s| s.action.provider).collect();
    let live = rt.block_on(Live::build(config, &used));
    preflight_live(&rb, &live)?;
    rt.block_on(execute(Execution {
        quiet: false,
        scenario_text: None,
        invoked: Some(engine::Clock::at(now.max(Utc::now()))),
        store: store.clone(),
        start: Start::Fresh,
        trigger: Some(why),
        templates: templates.clone(),
        existing: None,
        runbook: rb,
        runbook_path: path,
        inputs,
        secrets: Vec::new(),
        detected_at: None,
        leaked_at: None,
        executor: Executor::Live(Box::new(live)),
        humans: Humans::Nobody,
        assume_yes: yes,
        paused: Arc::new(AtomicBool::new(false)),
        live_display: false,
    }))
}

/// `quench rotations`: every schedule, as a table or JSON.
fn rotations(
    config: Option<&Path>,
    store: &Store,
    format: ListFormat,
    now: Option<&str>,
) -> Result<u8, Error> {
    let now = parse_now(now)?;
    let config = Config::load(config).map_err(|e| Error::Usage(e.to_string()))?;
    let schedules = app::rotations::schedules(&config.rotations)?;
    let rows = app::rotations::status(store, &schedules, now);
    if let ListFormat::Json = format {
        let text =
            serde_json::to_string_pretty(&rows).map_err(|e| Error::Runtime(e.to_string()))?;
        println!("{text}");
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no rotations are scheduled: add `[[rotations]]` to quench.toml");
        return Ok(0);
    }
    println!(
        "{:<24} {:<26} {:<12} {:<26} {:<26} {:<8} {:<8} {:<26} outcome",
        "rotation", "runbook", "every", "last run", "next due", "overdue", "attempts", "next retry"
    );
    for r in rows {
        let retry = match (&r.next_retry, r.gave_up) {
            (Some(at), _) => at.as_str(),
            (None, true) => "given up",
            (None, false) => "—",
        };
        println!(
            "{:<24} {:<26} {:<12} {:<26} {:<26} {:<8} {:<8} {:<26} {}",
            r.name,
            r.runbook,
            r.every,
            r.last_run.as_deref().unwrap_or("—"),
            r.next_due,
            if r.overdue { "OVERDUE" } else { "" },
            r.attempts,
            retry,
            r.outcome
        );
    }
    Ok(0)
}

/// `quench audit [--rotate [--yes]]`: the review, then the rotations it
/// calls for when asked (`rotate` is `Some(yes)`).
fn audit_command(
    cli: &Globals,
    store: &Store,
    format: AuditFormat,
    now: Option<&str>,
    rotate: Option<bool>,
) -> Result<u8, Error> {
    let now = parse_now(now)?;
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let rt = incident_runtime()?;
    let review = audit(&config, store, format, now, &rt)?;
    if let Some(yes) = rotate {
        let templates = load_templates(cli.templates.as_deref())?;
        let rotation = Rotation {
            runbooks: &cli.runbooks,
            store,
            config: &config,
            rt: &rt,
            yes,
            templates: &templates,
        };
        rotate_overdue(&rotation, &review, now)?;
    }
    Ok(review.exit_code())
}

/// `quench audit`: the review, printed; its exit code says what it found.
fn audit(
    config: &Config,
    store: &Store,
    format: AuditFormat,
    now: DateTime<Utc>,
    rt: &tokio::runtime::Runtime,
) -> Result<app::audit::Audit, Error> {
    let rotating = app::rotations::running_inputs(store);
    let review = rt.block_on(app::audit::review(config, &rotating, now))?;
    match format {
        AuditFormat::Table => print!("{}", review.table()),
        AuditFormat::Md => print!("{}", review.markdown()),
        AuditFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&review).map_err(|e| Error::Runtime(e.to_string()))?
        ),
    }
    for s in review.sources.iter().filter(|s| s.state == "failed") {
        eprintln!(
            "error: failed to read `{}`: {}",
            s.source,
            s.detail.as_deref().unwrap_or("")
        );
    }
    Ok(review)
}

/// What starting a scheduled rotation needs.
struct Rotation<'a> {
    runbooks: &'a Path,
    store: &'a Store,
    config: &'a Config,
    rt: &'a tokio::runtime::Runtime,
    yes: bool,
    templates: &'a Arc<document::Templates>,
}

/// `quench audit --rotate`: for each AWS key the review found too old, the
/// schedule that rotates its user's key, started once a human approves.
fn rotate_overdue(
    r: &Rotation,
    review: &app::audit::Audit,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let schedules = app::rotations::schedules(&r.config.rotations)?;
    let asks = r.yes || std::io::stdin().is_terminal();
    for c in review
        .credentials
        .iter()
        .filter(|c| c.source == "aws" && c.flags.iter().any(|f| f.starts_with("older than")))
    {
        let Some(schedule) = schedules
            .iter()
            .find(|s| s.inputs.get("iam_user") == Some(&c.owner))
        else {
            eprintln!(
                "`{}` of `{}`: no `[[rotations]]` names iam_user = \"{}\"; not rotated",
                c.id, c.owner, c.owner
            );
            continue;
        };
        let question = format!(
            "rotate `{}` of `{}` now with rotation `{}`?",
            c.id, c.owner, schedule.name
        );
        if !asks {
            eprintln!("{question} not without a terminal: pass `--yes` to approve");
            continue;
        }
        if !r.yes && !approved(&question)? {
            continue;
        }
        let why = format!("quench audit: `{}` is {}", c.id, c.flags.join(", "));
        let code = begin_rotation(r, schedule, now, why)?;
        eprintln!(
            "rotation `{}` started for `{}`: exit {code}",
            schedule.name, c.id
        );
    }
    Ok(())
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

/// Runs the follow-ups of incident `id` that are due at `now`, if any, and
/// if no other process holds the incident.
fn tick_one(
    store: &Store,
    id: &str,
    now: DateTime<Utc>,
    config: &Config,
    rt: &tokio::runtime::Runtime,
    yes: bool,
    templates: &Arc<document::Templates>,
) -> Result<u8, Error> {
    let read = || store.journal(id).map_err(|e| Error::Runtime(e.to_string()));
    let inbox = app::tasks::has_inbox(store, id);
    if app::incidents::due(&read()?, now).is_empty() && !inbox {
        return Ok(0);
    }
    // One runner per incident: a `resume` or another `tick` holding the
    // incident is left alone, and the journal is read again under the lock.
    let _lock = match store.lock(id) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{id}: skipped: {e}");
            return Ok(0);
        }
    };
    app::tasks::record_inbox(store, id, &crate::secret::Redactor::new(), templates)?;
    let records = read()?;
    let due = app::incidents::due(&records, now);
    if due.is_empty() {
        return Ok(0);
    }
    let started = app::incidents::started(id, &records)?;
    let (mut rb, shown) = app::incidents::stored_runbook(&store.dir(id))?;
    app::incidents::gate(&mut rb, &records);
    let executor = match started.mode {
        journal::Mode::Rehearsal | journal::Mode::Drill => {
            Executor::Sim(Sim::new(Arc::new(Scenario::default())))
        }
        journal::Mode::Live => {
            let used = rb
                .steps
                .iter()
                .filter(|s| due.contains(&s.id.to_string()))
                .map(|s| s.action.provider)
                .collect();
            Executor::Live(Box::new(rt.block_on(Live::build(config, &used))))
        }
    };
    let humans = match &executor {
        Executor::Sim(sim) => Humans::Simulated(Arc::new(sim.scenario().clone())),
        Executor::Live(_) => Humans::Nobody,
    };
    rt.block_on(execute(Execution {
        quiet: false,
        scenario_text: None,
        // As of `--now`: what is due then is run and journaled then.
        invoked: Some(engine::Clock::at(now.max(Utc::now()))),
        store: store.clone(),
        start: Start::FollowUps {
            prior: records,
            now,
        },
        trigger: None,
        templates: templates.clone(),
        existing: Some(id.to_string()),
        runbook: rb,
        runbook_path: shown,
        inputs: started.inputs,
        secrets: Vec::new(),
        detected_at: None,
        leaked_at: None,
        executor,
        humans,
        assume_yes: yes,
        paused: Arc::new(AtomicBool::new(false)),
        live_display: false,
    }))
}

fn resume(
    cli: &Globals,
    store: Store,
    id: &str,
    secrets: &[String],
    yes: bool,
    invoked: Option<engine::Clock>,
) -> Result<u8, Error> {
    let config = cli.config.as_deref();
    let templates = load_templates(cli.templates.as_deref())?;
    let r = app::incidents::resumable(&store, id, &templates)?;
    if let Some(repaired) = &r.repaired {
        eprintln!("{id}: {repaired}");
    }
    let config = Config::load(config).map_err(|e| Error::Usage(e.to_string()))?;
    let rehearsal = r.started.mode.simulated();
    let secrets = resolve_secrets(&r.runbook, secrets, rehearsal, &config)?;
    let scenario = match std::fs::read_to_string(r.dir.join("scenario.yaml")) {
        Ok(text) => Scenario::parse(SourceFile::new(
            r.dir.join("scenario.yaml").display().to_string(),
            text,
        ))
        .map_err(Error::Invalid)?,
        Err(_) => Scenario::default(),
    };
    // A drill carries on as a drill, at its pace.
    let scenario = match journal::IncidentView::fold(&r.records).drill_pace {
        Some(pace) => scenario.into_drill(pace),
        None => scenario,
    };
    // One thread, as for `run` (see `incident_runtime`).
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if rehearsal && scenario.clock == ClockMode::Virtual {
        builder.start_paused(true);
    }
    let rt = builder
        .build()
        .map_err(|e| Error::Runtime(format!("failed to start the runtime: {e}")))?;
    let paused = Arc::new(AtomicBool::new(false));
    let (executor, humans) = if rehearsal {
        let scenario = Arc::new(scenario);
        let humans = drill_humans(&scenario, &paused);
        (Executor::Sim(Sim::new(scenario)), humans)
    } else {
        let used = r.runbook.steps.iter().map(|s| s.action.provider).collect();
        let live = rt.block_on(Live::build(&config, &used));
        preflight_live(&r.runbook, &live)?;
        let humans = if std::io::stdin().is_terminal() && !yes {
            Humans::terminal(paused.clone())
        } else {
            Humans::Nobody
        };
        (Executor::Live(Box::new(live)), humans)
    };
    let live_display = !rehearsal && std::io::stdout().is_terminal();
    let _lock = r.lock;
    rt.block_on(execute(Execution {
        quiet: false,
        store,
        scenario_text: None,
        trigger: None,
        templates,
        invoked,
        start: Start::Resume {
            prior: r.records,
            repaired: r.repaired,
        },
        existing: Some(id.to_string()),
        runbook: r.runbook,
        runbook_path: r.runbook_path,
        inputs: r.started.inputs,
        secrets,
        detected_at: Some(r.started.detected_at),
        leaked_at: None,
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
    leaked_at: Option<DateTime<Utc>>,
    /// Print nothing while it runs (`rehearse --all` prints a table).
    quiet: bool,
    trigger: Option<String>,
    templates: Arc<document::Templates>,
    /// A drill's pace (`--pace`).
    pace: Option<u32>,
}

fn rehearse(r: Rehearsal<'_>) -> Result<u8, Error> {
    let rb = r.runbook;
    let inputs = resolve_inputs(&rb, r.vars, InputMode::Rehearse)?;
    let secrets = resolve_secrets(&rb, r.secrets, true, r.config)?;
    let scenario_text = match &r.scenario {
        Some(p) => Some(std::fs::read_to_string(p).map_err(|e| {
            Error::Usage(format!("failed to read `{}`: {}", p.display(), e.kind()))
        })?),
        None => None,
    };
    let scenario = match &r.scenario {
        Some(p) => Scenario::load(p)?,
        None => Scenario::default(),
    };
    scenario.check_against(&rb).map_err(Error::Invalid)?;
    let scenario = Arc::new(match r.pace {
        Some(pace) => scenario.into_drill(pace),
        None => scenario,
    });
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    // A virtual clock: tokio's paused time jumps straight to the next
    // timer, so simulated latencies cost nothing and report exactly.
    if scenario.clock == ClockMode::Virtual {
        builder.start_paused(true);
    }
    let rt = builder
        .build()
        .map_err(|e| Error::Runtime(format!("failed to start the runtime: {e}")))?;
    let live_display = scenario.clock == ClockMode::Realtime && std::io::stdout().is_terminal();
    let paused = Arc::new(AtomicBool::new(false));
    let humans = drill_humans(&scenario, &paused);
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
        leaked_at: r.leaked_at,
        executor: Executor::Sim(Sim::new(scenario)),
        humans,
        assume_yes: false,
        paused,
        live_display,
        quiet: r.quiet,
        trigger: r.trigger,
        templates: r.templates,
    }))
}

/// Who answers a rehearsal's approvals and tasks: the scenario; in a
/// drill, the people at the terminal what it does not script.
fn drill_humans(scenario: &Arc<Scenario>, paused: &Arc<AtomicBool>) -> Humans {
    match scenario.drill {
        Some(_) => Humans::Drill {
            scenario: scenario.clone(),
            people: Box::new(if std::io::stdin().is_terminal() {
                Humans::terminal(paused.clone())
            } else {
                Humans::Nobody
            }),
        },
        None => Humans::Simulated(scenario.clone()),
    }
}

/// Every runbook in the directory (the built-in ones if it has none),
/// rehearsed with its examples, as CI would on every runbook change.
fn rehearse_all(
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
                scenario: None,
                vars: &[],
                secrets: &[],
                detected_at,
                leaked_at: None,
                quiet: true,
                trigger: None,
                templates: templates.clone(),
                pace: None,
            })
        });
        let id = store.list().into_iter().find(|i| !before.contains(i));
        let report = id.as_ref().and_then(|id| {
            store
                .journal(id)
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
fn incident_runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
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
