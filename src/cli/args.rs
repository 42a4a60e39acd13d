//! The command line's shape: its commands, flags and their help, as clap reads them.

use super::*;

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
    pub runbook: String,
    /// An input value.
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// A secret, read from `env:VAR`, `file:PATH` or `stdin` (never a literal).
    #[arg(long = "secret", value_name = "K=SOURCE")]
    pub secrets: Vec<String>,
    /// When the leak was detected (RFC 3339); the SLO clock starts here.
    #[arg(long, value_name = "RFC3339")]
    pub detected_at: Option<String>,
    /// When the credential leaked (RFC 3339): the commit, paste or log line
    /// that exposed it. The audit window starts here (`incident.leaked_at`,
    /// `incident.leaked_ago`); without it, 90 days before detection.
    #[arg(long, value_name = "RFC3339")]
    pub leaked_at: Option<String>,
    /// What set the response off, for the document: "GitHub secret
    /// scanning alert #12", "reported by alice in #security".
    #[arg(long, value_name = "TEXT")]
    pub trigger: Option<String>,
    /// Approve every approval in your name; leave manual tasks open.
    #[arg(long)]
    pub yes: bool,
}

/// `quench rehearse`'s arguments.
#[derive(Debug, Default, Args)]
pub struct RehearseArgs {
    /// A runbook path or name (not with --all).
    #[arg(required_unless_present = "all")]
    pub runbook: Option<String>,
    /// Rehearse every runbook in the runbooks directory and print a
    /// summary; exits 1 if any failed, else 3 if any missed its SLO.
    #[arg(long, conflicts_with_all = ["runbook", "scenario", "vars", "secrets"])]
    pub all: bool,
    /// A scenario file: latencies, injected faults, human response times.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// An input value.
    #[arg(long = "var", value_name = "K=V")]
    pub vars: Vec<String>,
    /// A secret, read from `env:VAR`, `file:PATH` or `stdin`; a placeholder
    /// stands in for each one not given.
    #[arg(long = "secret", value_name = "K=SOURCE")]
    pub secrets: Vec<String>,
    /// When the leak was detected (RFC 3339); the SLO clock starts here.
    #[arg(long, value_name = "RFC3339")]
    pub detected_at: Option<String>,
    /// When the credential leaked (RFC 3339): where the audit window starts.
    #[arg(long, value_name = "RFC3339", conflicts_with = "all")]
    pub leaked_at: Option<String>,
    /// What set the drill off, for the document.
    #[arg(long, value_name = "TEXT")]
    pub trigger: Option<String>,
    /// Play it as a drill: the scenario's latencies kept in wall-clock time
    /// (`real`) or N times faster (`20x`); the approvals and tasks the
    /// scenario does not script are asked at the terminal. Its journal's
    /// mode is `drill`.
    #[arg(long, value_name = "real|Nx", value_parser = crate::scenario::parse_pace, conflicts_with = "all")]
    pub pace: Option<u32>,
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
