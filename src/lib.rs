//! quench: an incident-response runbook engine for leaked credentials.
//!
//! - `cli`       — the command line: clap definitions and each command
//! - `app`       — the use cases both doors share: runbooks, inputs, plans
//! - `config`    — `quench.toml`: credential sources, endpoints, chatops rules
//! - `secret`    — `Secret`, where secrets come from, the `Redactor`
//! - `server`    — `quench serve`: Slack's slash command and buttons, verified and authorized
//! - `runbook`   — YAML runbooks: raw shapes, validation, the model, templates
//! - `scenario`  — rehearsal scenarios: latency, faults, human timings
//! - `schema`    — JSON Schemas for runbooks and scenarios, from the loader's types
//! - `providers` — every action's declaration, and the live providers
//! - `engine`    — runs a runbook: DAG scheduling, timeouts, retries, SLO clock
//! - `journal`   — versioned events, the append-only journal, reading it back
//! - `document`  — the incident document (JSON, Markdown, HTML), replayed from the journal
//! - `incident`  — one incident end to end: store, journal consumers, engine, and the inbox it journals
//! - `display`   — what a terminal (or a pipe) shows while an incident runs
//! - `logging`   — tracing to stderr, text or JSON, swept for secrets
//! - `mrkdwn`    — escaping values for Slack messages
//! - `store`     — where incidents are kept (a directory, or PostgreSQL) and who runs each
//! - `time`      — durations and instants as runbooks and documents write them
//! - `private`   — files and directories only their owner can open
//! - `shipped`   — the runbooks built into the binary

pub mod app;
pub mod cli;
pub mod config;
pub mod display;
pub mod document;
pub mod engine;
pub mod incident;
pub mod journal;
pub mod logging;
pub mod mrkdwn;
pub mod private;
pub mod providers;
pub mod runbook;
pub mod scenario;
pub mod schema;
pub mod secret;
pub mod server;
pub mod shipped;
pub mod store;
pub mod time;
