//! Appending to and reading back `journal.jsonl`.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::UnboundedSender;

use super::event::{Event, FORMAT_VERSION, Record};
use crate::secret::Redactor;

/// An open journal. Each append is redacted, written as one line and synced
/// to disk before it returns; subscribers then get the record as written.
pub struct Journal {
    path: PathBuf,
    file: File,
    seq: u64,
    redactor: Redactor,
    records: Vec<Record>,
    subscribers: Vec<UnboundedSender<Record>>,
    /// `fdatasync` after each line (off only in tests of other things).
    durable: bool,
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
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            seq: 0,
            redactor,
            records: Vec::new(),
            subscribers: Vec::new(),
            durable: true,
        })
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
        })
    }

    pub fn subscribe(&mut self, tx: UnboundedSender<Record>) {
        self.subscribers.push(tx);
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one event and flushes it to disk. What is kept in memory and
    /// sent on is read back from the redacted line, so every consumer sees
    /// exactly what the journal holds.
    pub fn append(&mut self, ts: DateTime<Utc>, event: Event) -> std::io::Result<Record> {
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
        if self.durable {
            self.file.sync_data()?;
        }
        self.records.push(record.clone());
        self.subscribers
            .retain(|tx| tx.send(record.clone()).is_ok());
        Ok(record)
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
    let file = File::open(path).map_err(|e| ReadError::Io {
        path: shown.clone(),
        reason: e.kind().to_string(),
    })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| ReadError::Io {
            path: shown.clone(),
            reason: e.kind().to_string(),
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let version = serde_json::from_str::<serde_json::Value>(&line)
            .ok()
            .and_then(|v| v.get("v").and_then(|v| v.as_u64()));
        if let Some(found) = version
            && found != u64::from(FORMAT_VERSION)
        {
            return Err(ReadError::Version {
                path: shown,
                line: i + 1,
                found: found as u32,
            });
        }
        let record: Record = serde_json::from_str(&line).map_err(|e| ReadError::Corrupt {
            path: shown.clone(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(record);
    }
    Ok(out)
}
