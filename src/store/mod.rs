//! The incident store: where each incident's journal, runbook copy and
//! documents are kept, and the lock that lets one process at a time run an
//! incident. A directory with a kernel file lock (the default, one
//! machine), or PostgreSQL with a fenced lease per incident (several
//! `serve` replicas, any of which takes over an incident whose runner died).
//!
//! Either way an incident being run has a local directory (`dir`) that the
//! engine, the documents and the task inbox work in: the store itself for
//! a directory store, a private scratch copy for PostgreSQL, which holds
//! the truth and is copied from on `lock` and `fetch`.

mod dir;
pub mod postgres;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use dir::{DirStore, FileLock};

use crate::journal::{self, Commit, ReadError, Record};

/// What `read` read, or `None` when there was nothing to read.
fn if_found<T>(read: std::io::Result<T>) -> std::io::Result<Option<T>> {
    match read {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[derive(Debug, Clone)]
pub enum Store {
    Dir(DirStore),
    Postgres(Arc<postgres::PgStore>),
}

/// Held while a process runs an incident.
#[derive(Debug)]
pub enum IncidentLock {
    File(FileLock),
    Lease(postgres::Lease),
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("incident `{id}` is being run by another quench ({holder}); wait for it, or stop it")]
    Held { id: String, holder: String },
    #[error("failed to lock incident `{id}`: {reason}")]
    Io { id: String, reason: String },
}

impl Store {
    /// A directory store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store::Dir(DirStore::new(root))
    }

    /// `--store`: a `postgres://` (or `postgresql://`) URL, or a directory.
    /// Connecting to a database checks its schema and migrates it.
    pub fn open(spec: &str, settings: &postgres::Settings) -> Result<Self, postgres::OpenError> {
        if postgres::is_url(spec) {
            Ok(Store::Postgres(Arc::new(postgres::PgStore::open(
                spec, settings,
            )?)))
        } else {
            Ok(Store::new(spec))
        }
    }

    /// `INC-20261122-231001-7f3a`: the UTC start and a random suffix.
    pub fn new_id(now: DateTime<Utc>) -> String {
        format!(
            "INC-{}-{:04x}",
            now.format("%Y%m%d-%H%M%S"),
            rand::random::<u16>()
        )
    }

    /// Where local files live: the store, or the scratch copies of a
    /// database's incidents.
    pub fn root(&self) -> &Path {
        match self {
            Store::Dir(d) => d.root(),
            Store::Postgres(p) => p.scratch(),
        }
    }

    /// How the store is named in messages (never with a password).
    pub fn shown(&self) -> String {
        match self {
            Store::Dir(d) => d.root().display().to_string(),
            Store::Postgres(p) => p.shown().to_string(),
        }
    }

    /// The local directory of incident `id`.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root().join(id)
    }

    /// Whether an incident `id` exists at all (begun or not), so that a new
    /// one never takes its id.
    pub fn taken(&self, id: &str) -> bool {
        match self {
            Store::Dir(d) => d.dir(id).exists(),
            Store::Postgres(p) => p.taken(id).unwrap_or(true),
        }
    }

    /// Whether `key` is seen for the first time by any process sharing this
    /// store. A directory store has one machine, whose server remembers
    /// what it saw itself; a database that cannot answer is logged and the
    /// key taken, as that server has already refused a replay to it.
    pub fn first_time(&self, key: &str) -> bool {
        match self {
            Store::Dir(_) => true,
            Store::Postgres(p) => p.first_time(key).unwrap_or_else(|e| {
                tracing::warn!("failed to check `{}` for a replay: {e}", p.shown());
                true
            }),
        }
    }

    /// Takes hook delivery `delivery` of credential `fingerprint` for a new
    /// incident `id`: `None` when no other process sharing the store took
    /// it, else the incident that did. A directory store has one server,
    /// whose registry of deliveries does this itself; a database that
    /// cannot answer is logged and the delivery taken, as a response
    /// started twice is better than none.
    pub fn take_delivery(&self, delivery: &str, fingerprint: &str, id: &str) -> Option<String> {
        match self {
            Store::Dir(_) => None,
            Store::Postgres(p) => p
                .take_delivery(delivery, fingerprint, id)
                .unwrap_or_else(|e| {
                    tracing::warn!(
                        "failed to take delivery `{delivery}` in `{}`: {e}",
                        p.shown()
                    );
                    None
                }),
        }
    }

    /// Creates a new incident whose id was chosen already.
    pub fn create(&self, id: &str) -> std::io::Result<PathBuf> {
        match self {
            Store::Dir(d) => d.create(id),
            Store::Postgres(p) => p.create(id),
        }
    }

    /// Creates a new incident under a fresh id.
    /// Never reuses one: two incidents started in the same second draw new
    /// suffixes.
    pub fn create_new(&self, now: DateTime<Utc>) -> std::io::Result<(String, PathBuf)> {
        loop {
            let id = Self::new_id(now);
            match self.create(&id) {
                Ok(dir) => return Ok((id, dir)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Incident ids that have begun, newest first.
    pub fn list(&self) -> Vec<String> {
        match self {
            Store::Dir(d) => d.list(),
            Store::Postgres(p) => p.list().unwrap_or_else(|e| {
                tracing::warn!("failed to list incidents in `{}`: {e}", p.shown());
                Vec::new()
            }),
        }
    }

    /// Takes incident `id` for this process. For a database, it takes the
    /// lease (if it has expired) and copies the incident to its local
    /// directory.
    pub fn lock(&self, id: &str) -> Result<IncidentLock, LockError> {
        match self {
            Store::Dir(d) => d.lock(id).map(IncidentLock::File),
            Store::Postgres(p) => p.lock(id).map(IncidentLock::Lease),
        }
    }

    /// The local directory of incident `id` with its journal current, if
    /// the incident has begun; read-only use (`report`, `list`).
    pub fn fetch(&self, id: &str) -> std::io::Result<Option<PathBuf>> {
        match self {
            Store::Dir(d) => {
                let dir = d.dir(id);
                Ok(dir.join("journal.jsonl").is_file().then_some(dir))
            }
            Store::Postgres(p) => p.fetch(id),
        }
    }

    /// Incident `id`'s journal.
    pub fn journal(&self, id: &str) -> Result<Vec<Record>, ReadError> {
        match self {
            Store::Dir(d) => journal::read(&d.dir(id).join("journal.jsonl")),
            Store::Postgres(p) => p.journal(id),
        }
    }

    /// Makes a new incident's copies (runbook, scenario) durable before its
    /// first side effect.
    pub fn seal_new(&self, id: &str, dir: &Path) -> std::io::Result<()> {
        match self {
            Store::Dir(_) => dir::sync_new_incident(dir),
            Store::Postgres(p) => p.seal_new(id, dir),
        }
    }

    /// Where a journal this process holds the lock of commits its records,
    /// besides its local file: `None` for a directory store.
    pub fn committer(&self, id: &str) -> std::io::Result<Option<Box<dyn Commit>>> {
        match self {
            Store::Dir(_) => Ok(None),
            Store::Postgres(p) => p.committer(id).map(Some),
        }
    }

    /// Adds a line (JSON, redacted) to incident `id`'s inbox: a file beside
    /// its journal, or rows every replica reads. Durable when it returns.
    pub fn push_inbox(&self, id: &str, line: String) -> std::io::Result<()> {
        match self {
            Store::Dir(d) => d.push_inbox(id, &line),
            Store::Postgres(p) => p.push_inbox(id, line),
        }
    }

    /// Incident `id`'s inbox, oldest first, each line with its number.
    pub fn inbox(&self, id: &str) -> std::io::Result<Vec<(i64, String)>> {
        match self {
            Store::Dir(d) => d.inbox(id),
            Store::Postgres(p) => p.inbox(id),
        }
    }

    /// Empties incident `id`'s inbox up to line number `upto`, once what
    /// it held is journaled.
    pub fn clear_inbox(&self, id: &str, upto: i64) -> std::io::Result<()> {
        match self {
            Store::Dir(d) => d.clear_inbox(id),
            Store::Postgres(p) => p.clear_inbox(id, upto),
        }
    }

    /// Keeps the documents just written in `dir` with the incident.
    pub fn publish_documents(&self, id: &str, dir: &Path) -> std::io::Result<()> {
        match self {
            Store::Dir(_) => Ok(()),
            Store::Postgres(p) => p.publish_documents(id, dir),
        }
    }
}
