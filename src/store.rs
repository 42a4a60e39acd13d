//! The incident store: one directory per incident under `--store`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `INC-20261122-231001-7f3a`: the UTC start and a random suffix.
    pub fn new_id(now: DateTime<Utc>) -> String {
        format!(
            "INC-{}-{:04x}",
            now.format("%Y%m%d-%H%M%S"),
            rand::random::<u16>()
        )
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates a new incident's directory; never reuses one.
    pub fn create(&self, id: &str) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.root)?;
        let dir = self.dir(id);
        std::fs::create_dir(&dir)?;
        Ok(dir)
    }

    /// Incident ids, newest first.
    pub fn list(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join("journal.jsonl").is_file())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        ids.sort_by(|a, b| b.cmp(a));
        ids
    }
}
