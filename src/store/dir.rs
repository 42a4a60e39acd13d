//! The directory store: one directory per incident under `--store`, and
//! a kernel file lock per incident.

use std::path::{Path, PathBuf};

use chrono::Utc;

use super::{LockError, if_found};

#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates the directory of a new incident whose id was chosen already.
    pub fn create(&self, id: &str) -> std::io::Result<PathBuf> {
        crate::private::create_dir_all(&self.root)?;
        let dir = self.dir(id);
        crate::private::create_dir(&dir)?;
        Ok(dir)
    }

    /// Incident ids, newest first.
    pub fn list(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            // An empty journal is an incident that never began: its
            // process was killed while it was being prepared.
            .filter(|e| {
                std::fs::metadata(e.path().join("journal.jsonl"))
                    .is_ok_and(|m| m.is_file() && m.len() > 0)
            })
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids
    }
}

/// An incident's inbox: `inbox.jsonl` beside its journal.
const INBOX: &str = "inbox.jsonl";

impl DirStore {
    pub fn push_inbox(&self, id: &str, line: &str) -> std::io::Result<()> {
        use std::io::Write;
        let options = crate::private::options().create(true).append(true).clone();
        let mut file = crate::private::open(&options, &self.dir(id).join(INBOX))?;
        writeln!(file, "{line}")?;
        file.sync_data()
    }

    pub fn inbox(&self, id: &str) -> std::io::Result<Vec<(i64, String)>> {
        let text = if_found(std::fs::read_to_string(self.dir(id).join(INBOX)))?;
        let text = text.unwrap_or_default();
        Ok((1..).zip(text.lines().map(str::to_string)).collect())
    }

    /// Removes the inbox: its holder journaled all of it under the lock,
    /// which every writer of the inbox checks after writing.
    pub fn clear_inbox(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir(id).join(INBOX)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Syncs to disk what a new incident's directory holds besides its journal
/// (the copies of its runbook and scenario, which `quench resume` reads),
/// then the directory, which names them and the journal: before the first
/// side effect, so that a power cut cannot lose the record of one.
pub(super) fn sync_new_incident(dir: &Path) -> std::io::Result<()> {
    for copy in ["runbook.yaml", "scenario.yaml"] {
        if let Some(file) = if_found(std::fs::File::open(dir.join(copy)))? {
            file.sync_data()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Held while a process runs an incident: two terminals, two `serve`
/// replicas on one host, or a `resume` racing a `tick` never run the same
/// incident. An OS file lock (flock): the kernel releases it when the holder
/// dies, however it dies, so a stale lock cannot outlive its process.
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

impl DirStore {
    pub fn lock(&self, id: &str) -> Result<FileLock, LockError> {
        use std::io::{Read, Seek, Write};
        let io = |e: std::io::Error| LockError::Io {
            id: id.to_string(),
            reason: e.to_string(),
        };
        let path = self.dir(id).join("lock");
        let mut file = crate::private::open(
            crate::private::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false),
            &path,
        )
        .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LockError::Held {
                    id: id.to_string(),
                    holder: holder.trim().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // Who holds it, for the one who is refused.
        let actor = crate::journal::Actor::current();
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        let holder = format!(
            "pid {} {actor} since {}",
            std::process::id(),
            crate::journal::format_ts(&Utc::now())
        );
        file.write_all(holder.as_bytes()).map_err(io)?;
        Ok(FileLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An incident killed between making its journal and writing its first
    /// record leaves an empty journal, which is no incident.
    #[test]
    fn an_incident_with_an_empty_journal_is_not_listed() {
        let root = tempfile::tempdir().unwrap();
        let store = super::super::Store::new(root.path());
        let (begun, dir) = store.create_new(Utc::now()).unwrap();
        std::fs::write(dir.join("journal.jsonl"), "{}\n").unwrap();
        let (_, dir) = store.create_new(Utc::now()).unwrap();
        std::fs::write(dir.join("journal.jsonl"), "").unwrap();
        assert_eq!(store.list(), vec![begun]);
    }
}
