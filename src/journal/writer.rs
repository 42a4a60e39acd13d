//! Appending to and reading back `journal.jsonl`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;

use super::event::{Event, FORMAT_VERSION, Record};
use crate::secret::Redactor;

/// An open journal. Each append is redacted, written as one line and synced
/// to disk before it returns; subscribers get the record as written.
pub struct Journal {
    path: PathBuf,
    file: File,
    seq: u64,
    redactor: Redactor,
    records: Vec<Record>,
    subscribers: Vec<Subscriber>,
    /// `fdatasync` after each line (off only in tests of other things).
    durable: bool,
    /// Lines written since the last `fdatasync`.
    unsynced: bool,
    /// How many times it was flushed to disk.
    flushes: Arc<AtomicU64>,
    /// Crash tests only: abort the process right after this record is on
    /// disk, as SIGKILL would (`QUENCH_FAULT_ABORT_AFTER_SEQ`).
    abort_after: Option<u64>,
}

fn abort_after() -> Option<u64> {
    std::env::var("QUENCH_FAULT_ABORT_AFTER_SEQ")
        .ok()?
        .parse()
        .ok()
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("seq", &self.seq)
            .finish()
    }
}

impl Journal {
    pub fn create(path: &Path, redactor: Redactor) -> std::io::Result<Self> {
        Ok(Self::with_file(path, Self::create_file(path)?, redactor))
    }

    /// Creates a new, empty journal file, to be written through
    /// [`Journal::with_file`].
    pub fn create_file(path: &Path) -> std::io::Result<File> {
        OpenOptions::new().create_new(true).append(true).open(path)
    }

    /// A new journal, written to `file`: the empty file at `path`, made by
    /// [`Journal::create_file`].
    pub fn with_file(path: &Path, file: File, redactor: Redactor) -> Self {
        Self {
            path: path.to_path_buf(),
            file,
            seq: 0,
            redactor,
            records: Vec::new(),
            subscribers: Vec::new(),
            durable: true,
            unsynced: false,
            flushes: Arc::default(),
            abort_after: abort_after(),
        }
    }

    /// Opens an existing journal to append to it; `prior` is what it holds.
    pub fn append_to(path: &Path, redactor: Redactor, prior: Vec<Record>) -> std::io::Result<Self> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            seq: prior.last().map_or(0, |r| r.seq),
            redactor,
            records: prior,
            subscribers: Vec::new(),
            durable: true,
            unsynced: false,
            flushes: Arc::default(),
            abort_after: abort_after(),
        })
    }

    pub fn subscribe(&mut self, tx: impl Into<Subscriber>) {
        self.subscribers.push(tx.into());
    }

    /// Counts the flushes to disk, from now on (for tests of their cost).
    pub fn flush_counter(&self) -> Arc<AtomicU64> {
        self.flushes.clone()
    }

    /// The sequence number of the last record written.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event and flushes it to disk, with any written before it.
    /// What is kept in memory and sent on is read back from the redacted
    /// line, so every consumer sees exactly what the journal holds.
    pub fn append(&mut self, ts: DateTime<Utc>, event: Event) -> std::io::Result<Record> {
        self.write(ts, event, true)
    }

    /// Writes one event, to be flushed to disk by the next [`append`] or
    /// [`sync`], whichever comes first. For what an effect *left*, a
    /// step's result: written at once (so a crash mid-flush cannot lose
    /// it to a later record) and made durable together with the record of
    /// the next effect, one `fdatasync` per step instead of two. The caller
    /// syncs before anything waits.
    ///
    /// [`append`]: Journal::append
    /// [`sync`]: Journal::sync
    pub fn append_unsynced(&mut self, ts: DateTime<Utc>, event: Event) -> std::io::Result<Record> {
        self.write(ts, event, false)
    }

    /// Flushes to disk what was written since the last flush, if anything.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if self.unsynced && self.durable {
            self.file.sync_data()?;
            self.flushes.fetch_add(1, Ordering::Relaxed);
        }
        self.unsynced = false;
        Ok(())
    }

    fn write(&mut self, ts: DateTime<Utc>, event: Event, sync: bool) -> std::io::Result<Record> {
        self.seq += 1;
        let record = Record {
            v: FORMAT_VERSION,
            seq: self.seq,
            ts,
            event,
        };
        let line = serde_json::to_string(&record).map_err(std::io::Error::other)?;
        let mut line = self.redactor.redact(&line);
        let record: Record = serde_json::from_str(&line).map_err(std::io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.unsynced = true;
        tracing::info!(
            target: "quench::journal",
            seq = record.seq,
            event = record.event.name(),
            step = record.event.step().unwrap_or_default(),
            "{}",
            crate::document::describe(&record.event)
        );
        self.records.push(record.clone());
        // Sent before the flush, so the display and the document work on
        // it while the disk does (a step's result is sent unflushed in any
        // case). Only effects wait for the flush.
        self.subscribers.retain(|tx| tx.send(record.clone()));
        if sync || self.abort_after == Some(record.seq) {
            self.sync()?;
        }
        if self.abort_after == Some(record.seq) {
            std::process::abort();
        }
        Ok(record)
    }
}

/// Where a journal sends each record it writes: a task of the runtime, or
/// a thread of its own, which can wait for the next one with a deadline.
#[derive(Debug)]
pub enum Subscriber {
    Task(UnboundedSender<Record>),
    Thread(std::sync::mpsc::Sender<Record>),
}

impl Subscriber {
    /// Whether it is still listening.
    fn send(&self, record: Record) -> bool {
        match self {
            Subscriber::Task(tx) => tx.send(record).is_ok(),
            Subscriber::Thread(tx) => tx.send(record).is_ok(),
        }
    }
}

impl From<UnboundedSender<Record>> for Subscriber {
    fn from(tx: UnboundedSender<Record>) -> Self {
        Subscriber::Task(tx)
    }
}

impl From<std::sync::mpsc::Sender<Record>> for Subscriber {
    fn from(tx: std::sync::mpsc::Sender<Record>) -> Self {
        Subscriber::Thread(tx)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("failed to read `{path}`: {reason}")]
    Io { path: String, reason: String },
    #[error("`{path}` line {line} is not a journal record ({reason})")]
    Corrupt {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("`{path}` line {line} is journal format v{found}; this quench reads v{FORMAT_VERSION}")]
    Version {
        path: String,
        line: usize,
        found: u32,
    },
}

/// Reads a whole journal. A damaged line is an error naming it, never
/// skipped.
pub fn read(path: &Path) -> Result<Vec<Record>, ReadError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ReadError::Io {
        path: shown.clone(),
        reason: e.kind().to_string(),
    })?;
    parse(&shown, &text)
}

/// Parses journal text; `path` names it in errors.
pub fn parse(path: &str, text: &str) -> Result<Vec<Record>, ReadError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let version = serde_json::from_str::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("v").and_then(|v| v.as_u64()));
        if let Some(found) = version
            && found != u64::from(FORMAT_VERSION)
        {
            return Err(ReadError::Version {
                path: path.to_string(),
                line: i + 1,
                found: found.min(u64::from(u32::MAX)) as u32,
            });
        }
        let record: Record = serde_json::from_str(line).map_err(|e| ReadError::Corrupt {
            path: path.to_string(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        if let Some(prev) = out.last().map(|r: &Record| r.seq)
            && record.seq != prev + 1
        {
            return Err(ReadError::Corrupt {
                path: path.to_string(),
                line: i + 1,
                reason: format!(
                    "record {} follows record {prev}: records are missing",
                    record.seq
                ),
            });
        }
        out.push(record);
    }
    Ok(out)
}

/// Reads a journal to carry on writing it. The one damage a crash can do —
/// a last line cut off mid-write, with no newline — is cut away and said;
/// any other damage is an error.
pub fn read_for_append(path: &Path) -> Result<(Vec<Record>, Option<String>), ReadError> {
    let shown = path.display().to_string();
    let io = |e: std::io::Error| ReadError::Io {
        path: shown.clone(),
        reason: e.kind().to_string(),
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    match parse(&shown, &text) {
        Ok(records) => Ok((records, None)),
        Err(ReadError::Corrupt { line, .. })
            if !text.ends_with('\n') && line == text.lines().count() =>
        {
            let keep = text.rfind('\n').map_or(0, |i| i + 1);
            let records = parse(&shown, &text[..keep])?;
            let file = OpenOptions::new().write(true).open(path).map_err(io)?;
            file.set_len(keep as u64).map_err(io)?;
            file.sync_data().map_err(io)?;
            let cut = text.len() - keep;
            Ok((
                records,
                Some(format!(
                    "cut {cut} bytes of a record torn by a crash mid-write (line {line})"
                )),
            ))
        }
        Err(e) => Err(e),
    }
}
