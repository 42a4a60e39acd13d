//! Appending to and reading back `journal.jsonl`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

use super::event::{Event, FORMAT_VERSION, Record};
use crate::secret::Redactor;

/// An open journal. Each append is redacted, written as one line and synced
/// to disk before it returns; subscribers get the record as written, sent
/// by the flush that makes it durable ([`Journal::sync`]).
pub struct Journal {
    path: PathBuf,
    file: File,
    seq: u64,
    redactor: Redactor,
    records: Vec<Record>,
    subscribers: Vec<Box<dyn Subscriber>>,
    /// Records written since the subscribers were last sent any: they get
    /// them at the next flush, or when the journal is dropped.
    undelivered: Vec<Record>,
    /// `fdatasync` after each line (off only in tests of other things).
    durable: bool,
    /// Lines written since the last `fdatasync`.
    unsynced: bool,
    /// How many times it was flushed to disk.
    flushes: Arc<AtomicU64>,
    /// Crash tests only: abort the process right after this record is on
    /// disk, as SIGKILL would (`QUENCH_FAULT_ABORT_AFTER_SEQ`).
    abort_after: Option<u64>,
    /// Where records are committed besides the file, which is then only a
    /// working copy: a database, each flush one fenced transaction.
    committer: Option<Box<dyn Commit>>,
    /// Records written since the last commit.
    uncommitted: Vec<Record>,
}

/// Commits records where they are kept for good, or refuses them (a lease
/// lost to another runner): refused, the journal's flush fails, and with
/// it the side effect that was to follow.
pub trait Commit: Send {
    fn commit(&mut self, records: &[Record]) -> std::io::Result<()>;
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
        crate::private::open(
            crate::private::options().create_new(true).append(true),
            path,
        )
    }

    /// A new journal, written to `file`: the empty file at `path`, made by
    /// [`Journal::create_file`].
    pub fn with_file(path: &Path, file: File, redactor: Redactor) -> Self {
        Self::new(path, file, redactor, Vec::new())
    }

    /// Opens an existing journal to append to it; `prior` is what it holds.
    pub fn append_to(path: &Path, redactor: Redactor, prior: Vec<Record>) -> std::io::Result<Self> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self::new(path, file, redactor, prior))
    }

    fn new(path: &Path, file: File, redactor: Redactor, prior: Vec<Record>) -> Self {
        Self {
            path: path.to_path_buf(),
            file,
            seq: prior.last().map_or(0, |r| r.seq),
            redactor,
            records: prior,
            subscribers: Vec::new(),
            undelivered: Vec::new(),
            durable: true,
            unsynced: false,
            flushes: Arc::default(),
            abort_after: abort_after(),
            committer: None,
            uncommitted: Vec::new(),
        }
    }

    /// Commits every flush to `committer`; the file is then a working copy,
    /// written but not synced.
    pub fn commit_to(&mut self, committer: Box<dyn Commit>) {
        self.committer = Some(committer);
        self.durable = false;
    }

    pub fn subscribe(&mut self, tx: impl Subscriber + 'static) {
        self.subscribers.push(Box::new(tx));
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

    /// Takes what it holds, once it is done with: it holds nothing after.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
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

    /// Sends the subscribers what they have not had yet, and flushes to
    /// disk what was written since the last flush, if anything.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if let Some(committer) = &mut self.committer
            && !self.uncommitted.is_empty()
        {
            committer.commit(&self.uncommitted)?;
            self.uncommitted.clear();
        }
        self.deliver();
        if self.unsynced && self.durable {
            self.file.sync_data()?;
            self.flushes.fetch_add(1, Ordering::Relaxed);
        }
        self.unsynced = false;
        Ok(())
    }

    /// Sends the subscribers what was written since they were last sent
    /// anything: done by each flush, so a step's result and the next step's
    /// start reach them together. Every record is flushed before anything
    /// waits, so none is held back from them for long.
    fn deliver(&mut self) {
        for record in self.undelivered.drain(..) {
            self.subscribers.retain(|tx| tx.send(record.clone()));
        }
    }

    fn write(
        &mut self,
        ts: DateTime<Utc>,
        mut event: Event,
        sync: bool,
    ) -> std::io::Result<Record> {
        self.seq += 1;
        event.to_whole_ms();
        let record = Record {
            v: FORMAT_VERSION,
            seq: self.seq,
            ts: super::event::whole_ms(ts),
            event,
        };
        let record = self.redacted(record)?;
        let mut line = serde_json::to_string(&record).map_err(std::io::Error::other)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.unsynced = true;
        tracing::info!(
            target: "quench::journal",
            seq = record.seq,
            event = record.event.name(),
            step = record.event.step().unwrap_or_default(),
            "{}",
            record.event.describe()
        );
        self.records.push(record.clone());
        if !self.subscribers.is_empty() {
            self.undelivered.push(record.clone());
        }
        if self.committer.is_some() {
            self.uncommitted.push(record.clone());
        }
        if sync || self.abort_after == Some(record.seq) {
            self.sync()?;
        }
        if self.abort_after == Some(record.seq) {
            std::process::abort();
        }
        Ok(record)
    }
}

impl Journal {
    /// The record with every secret swept from its values, before they are
    /// serialised: escaping cannot hide one, and no secret can unmake the
    /// record, since the values that are its structure (the event's name,
    /// the mode, an outcome, a step's phase) are left as they are. A record
    /// that held one is read back, so that what consumers get is what the
    /// journal holds.
    fn redacted(&self, record: Record) -> std::io::Result<Record> {
        if self.redactor.is_empty() {
            return Ok(record);
        }
        let mut value = serde_json::to_value(&record).map_err(std::io::Error::other)?;
        let Value::Object(map) = &mut value else {
            return Ok(record);
        };
        let structure: Vec<(String, Value)> = ["event", "mode", "outcome"]
            .into_iter()
            .filter_map(|k| map.remove_entry(k))
            .collect();
        let mut phases = Vec::new();
        if let Some(Value::Array(steps)) = map.get_mut("steps") {
            for step in steps.iter_mut().filter_map(Value::as_object_mut) {
                phases.push(step.remove("phase"));
            }
        }
        if !self.redactor.redact_value(&mut value) {
            return Ok(record);
        }
        let Value::Object(map) = &mut value else {
            return Ok(record);
        };
        map.extend(structure);
        if let Some(Value::Array(steps)) = map.get_mut("steps") {
            let steps = steps.iter_mut().filter_map(Value::as_object_mut);
            for (step, phase) in steps.zip(phases) {
                if let Some(phase) = phase {
                    step.insert("phase".into(), phase);
                }
            }
        }
        serde_json::from_value(value).map_err(std::io::Error::other)
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.deliver();
    }
}

/// Where a journal sends each record it writes: a task of the runtime, or
/// a thread of its own, which can wait for the next one with a deadline.
pub trait Subscriber: Send {
    /// Sends it on; `false` once nobody listens.
    fn send(&self, record: Record) -> bool;
}

impl Subscriber for UnboundedSender<Record> {
    fn send(&self, record: Record) -> bool {
        UnboundedSender::send(self, record).is_ok()
    }
}

impl Subscriber for std::sync::mpsc::Sender<Record> {
    fn send(&self, record: Record) -> bool {
        std::sync::mpsc::Sender::send(self, record).is_ok()
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use serde_json::json;

    use super::*;
    use crate::journal::{Actor, Finished, Mode, Outcome, StepInfo, TaskMeta, format_ts};
    use crate::runbook::Phase;
    use crate::secret::Secret;

    /// Subscribers get records in the order written, sent by the
    /// flush that makes them durable (a step's result and the next step's
    /// start together), and what is left when the journal is dropped.
    #[test]
    fn subscribers_get_records_with_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal =
            Journal::create(&dir.path().join("journal.jsonl"), Redactor::new()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        journal.subscribe(tx);
        let started = |step: &str| Event::StepStarted {
            step: step.into(),
            attempt: 1,
            params: None,
        };
        let seqs = |rx: &std::sync::mpsc::Receiver<Record>| -> Vec<u64> {
            rx.try_iter().map(|r| r.seq).collect()
        };
        journal.append_unsynced(Utc::now(), started("a")).unwrap();
        assert_eq!(seqs(&rx), [] as [u64; 0], "not before it is flushed");
        journal.append(Utc::now(), started("b")).unwrap();
        assert_eq!(seqs(&rx), [1, 2]);
        journal.append_unsynced(Utc::now(), started("c")).unwrap();
        journal.sync().unwrap();
        assert_eq!(seqs(&rx), [3]);
        journal.append_unsynced(Utc::now(), started("d")).unwrap();
        drop(journal);
        assert_eq!(seqs(&rx), [4]);
        assert!(
            rx.recv().is_err(),
            "the journal is gone: the channel closes"
        );
    }

    /// A record whose line held no secret is sent on as it was
    /// made, not parsed back from its line; it must be what that line reads
    /// back as, times to the millisecond and floats to the last bit.
    #[test]
    fn a_record_is_what_its_line_reads_back_as() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let redactor = Redactor::new();
        redactor.add(&Secret::new("token", "s3cr3t-value"));
        let mut journal = Journal::create(&path, redactor).unwrap();
        // Sub-millisecond times, which a line cannot hold.
        let at =
            |ms: i64| Utc.timestamp_nanos(1_796_000_000_000_000_000 + ms * 1_000_000 + 123_456);
        let actor = Actor {
            user: "ana".into(),
            host: "laptop".into(),
        };
        let events = vec![
            Event::IncidentStarted {
                incident: "INC-1".into(),
                runbook: "rb".into(),
                title: "A title".into(),
                runbook_path: "rb.yaml".into(),
                runbook_sha256: "ab".into(),
                mode: Mode::Live,
                detected_at: at(-5),
                leaked_at: Some(at(-86_400_000)),
                started_at: at(0),
                slo_ms: 300_000,
                inputs: [("key".to_string(), "k-1".to_string())].into(),
                secrets: vec!["token".into()],
                by: actor.clone(),
                steps: vec![StepInfo {
                    id: "revoke".into(),
                    title: "Revoke".into(),
                    phase: Phase::Revoke,
                    action: "http.request".into(),
                    needs: vec![],
                    deferred: false,
                    after_ms: Some(5),
                    section: None,
                    proves_dead: true,
                }],
                trigger: Some("a scanner".into()),
                description: None,
                kind: None,
            },
            Event::StepStarted {
                step: "revoke".into(),
                attempt: 1,
                params: Some(
                    json!({"url": "https://x", "n": [1, -2, 0.1, 1e300, 2.2250738585072014e-308]}),
                ),
            },
            Event::StepSucceeded {
                step: "revoke".into(),
                attempt: 1,
                outputs: json!({"f": 0.30000000000000004, "big": u64::MAX, "s": "é\n\"x\""})
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            Event::CredentialProvenDead {
                step: "revoke".into(),
                at: at(6),
            },
            // A secret in it: read back from the redacted line.
            Event::StepFailed {
                step: "revoke".into(),
                attempt: 2,
                class: "permanent".into(),
                error: "echoed s3cr3t-value".into(),
            },
            Event::StepScheduled {
                step: "later".into(),
                due_at: at(86_400_000),
            },
            Event::TaskOpened {
                step: "t".into(),
                prompt: "How?".into(),
                task: TaskMeta {
                    assignee: Some("@ana".into()),
                    due: None,
                },
            },
            Event::IncidentFinished(Finished {
                outcome: Outcome::Succeeded,
                revoked_at: Some(at(7)),
                time_to_revoke_ms: Some(12),
                slo_met: true,
                credential_dead_at: Some(at(8)),
                time_to_dead_ms: Some(13),
            }),
        ];
        let mut written = Vec::new();
        for (i, event) in events.into_iter().enumerate() {
            written.push(journal.append(at(i as i64), event).unwrap());
        }
        let read = read(&path).unwrap();
        assert_eq!(read, written);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("s3cr3t-value"));
        assert!(
            matches!(&written[4].event, Event::StepFailed { error, .. } if !error.contains("s3cr3t"))
        );
    }

    #[test]
    fn times_read_as_they_did_with_a_format_string() {
        for ns in [
            0,
            1_796_000_000_123_456_789,
            4_102_444_799_999_999_999,
            999_999,
        ] {
            let t = Utc.timestamp_nanos(ns);
            assert_eq!(
                format_ts(&t),
                t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
        }
    }
}
