//! The use cases, below both doors (the command line and the Slack server):
//! finding and loading a runbook, resolving its inputs and secrets, and
//! planning it. `cli` and `server` are adapters over these; neither imports
//! the other's use cases.
//!
//! - `audit`     — the monthly key review: every credential, what is flagged
//! - `authz`     — who may do what: `[[chatops.allow]]`
//! - `approvals` — an approval given from any door, authorized once
//! - `drills`    — the drills in the store, with their scorecards
//! - `runbooks`  — locate, read, validate and list runbooks
//! - `incidents` — an incident in the store: found, locked, read to go on
//! - `inputs`    — a runbook's inputs, secrets and detection time, checked
//! - `plan`      — what a run would do, rendered and redacted
//! - `rotations` — scheduled rotations: last run, next due, which are due
//! - `tasks`     — a task's answer or a later detection, journaled under the incident's lock

pub mod approvals;
pub mod audit;
pub mod authz;
pub mod drills;
pub mod incidents;
pub mod inputs;
pub mod plan;
pub mod rotations;
pub mod runbooks;
pub mod tasks;

use crate::runbook::{Diagnostics, LoadError};

/// An expected failure of a use case, mapped to the documented exit codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Invalid(_) => 2,
            Error::Runtime(_) => 1,
            Error::Conflict(_) => 4,
        }
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        match e {
            LoadError::Invalid(d) => Error::Invalid(d),
            io => Error::Usage(io.to_string()),
        }
    }
}
