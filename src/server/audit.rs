//! The audit logs, `chatops` (one line per Slack decision) and `hooks`
//! (one per delivery): each decision is kept before the answer that states
//! it leaves. In `STORE/chatops.jsonl` and `STORE/hooks.jsonl` for a
//! directory store; in the database's `quench_audit` table for PostgreSQL,
//! where every replica's decisions are read together.
//!
//! Appends are written and made durable (`fdatasync`, or one transaction)
//! by one thread of its own, in batches: the lines of every request that
//! arrived while the previous batch was being written share the next one
//! (group commit). Fifty commands at once cost a few syncs, not fifty one
//! after the other, and no runtime worker ever waits on the disk: a
//! request waits for its line asynchronously ([`AuditLog::synced`]).

use std::fs::File;
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::store::{Store, postgres::PgStore};

/// Where an audit log's lines go.
pub enum Sink {
    File(File),
    Database(Arc<PgStore>, &'static str),
}

impl Sink {
    /// Log `name` of `store`.
    pub fn open(store: &Store, name: &'static str) -> std::io::Result<Sink> {
        match store {
            Store::Dir(d) => {
                crate::private::create_dir_all(d.root())?;
                let path = d.root().join(format!("{name}.jsonl"));
                let options = crate::private::options().create(true).append(true).clone();
                crate::private::open(&options, &path).map(Sink::File)
            }
            Store::Postgres(p) => Ok(Sink::Database(p.clone(), name)),
        }
    }

    /// Writes a batch of lines, durably; a failure is logged, as before
    /// a full disk did not stop the answers.
    fn write(&mut self, lines: Vec<String>) {
        match self {
            Sink::File(file) => {
                let mut batch = lines.join("\n");
                batch.push('\n');
                // One write per batch: lines never interleave with another
                // writer's.
                let _ = file.write_all(batch.as_bytes());
                let _ = file.sync_data();
            }
            Sink::Database(pg, name) => {
                if let Err(e) = pg.append_audit(name, lines) {
                    tracing::warn!(
                        "failed to keep the `{name}` audit log in `{}`: {e}",
                        pg.shown()
                    );
                }
            }
        }
    }
}

/// Log `name`'s lines that hold `needle` (an incident id; empty: all),
/// oldest first: every replica's, for a database.
pub fn read(store: &Store, name: &str, needle: &str) -> Vec<String> {
    match store {
        Store::Dir(d) => std::fs::read_to_string(d.root().join(format!("{name}.jsonl")))
            .map(|text| {
                text.lines()
                    .filter(|l| l.contains(needle))
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        Store::Postgres(p) => p.audit(name, needle).unwrap_or_else(|e| {
            tracing::warn!(
                "failed to read the `{name}` audit log in `{}`: {e}",
                p.shown()
            );
            Vec::new()
        }),
    }
}

pub struct AuditLog {
    /// The sequence number of the last line appended, and where it went;
    /// locked together so the writer receives lines in sequence order.
    queue: Mutex<(u64, mpsc::Sender<(u64, String)>)>,
    /// The sequence number of the last line on disk.
    synced: watch::Receiver<u64>,
}

impl AuditLog {
    /// Starts the writer thread; it ends when the log is dropped.
    pub fn start(sink: Sink) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<(u64, String)>();
        let (synced_tx, synced) = watch::channel(0);
        std::thread::Builder::new()
            .name("quench-audit".into())
            .spawn(move || write_batches(sink, &rx, &synced_tx))?;
        Ok(Self {
            queue: Mutex::new((0, tx)),
            synced,
        })
    }

    /// Queues one line (without its newline); returns its sequence number.
    pub fn append(&self, line: String) -> u64 {
        let mut queue = self.queue.lock().expect("audit queue lock");
        queue.0 += 1;
        let seq = queue.0;
        // Only fails once the writer is gone, with the process.
        let _ = queue.1.send((seq, line));
        seq
    }

    /// Waits until every line appended so far is on disk (or failed to be
    /// written: as before, a full disk does not stop the answers).
    pub async fn synced(&self) {
        let upto = self.queue.lock().expect("audit queue lock").0;
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|s| *s >= upto).await;
    }
}

fn write_batches(mut sink: Sink, rx: &mpsc::Receiver<(u64, String)>, synced: &watch::Sender<u64>) {
    while let Ok((mut last, line)) = rx.recv() {
        let mut batch = vec![line];
        while let Ok((seq, line)) = rx.try_recv() {
            last = seq;
            batch.push(line);
        }
        sink.write(batch);
        synced.send_replace(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_line_is_on_disk_in_order_once_synced_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chatops.jsonl");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap();
        let log = std::sync::Arc::new(AuditLog::start(Sink::File(file)).unwrap());
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        log.append(format!("{{\"t\":{t},\"i\":{i}}}"));
                    }
                    log.synced().await;
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 100);
        for t in 0..4 {
            let mine: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with(&format!("{{\"t\":{t},")))
                .collect();
            let expected: Vec<String> = (0..25)
                .map(|i| format!("{{\"t\":{t},\"i\":{i}}}"))
                .collect();
            assert_eq!(mine, expected, "each task's lines, whole and in order");
        }
    }
}
