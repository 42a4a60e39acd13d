//! The runbooks a command names, parsed and validated once, not once per
//! command. A file is still read each time (a few microseconds), and parsed
//! again only when its text has changed: an edited runbook is what the next
//! command runs, whatever the file system's timestamps say. A runbook that
//! does not validate is cached too, with its refusal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::app::runbooks::{self, Located};
use crate::runbook::{self, Runbook, SourceFile};

/// A runbook as `load_runbook` gives it: the runbook and where it is from.
pub type Loaded = Arc<(Runbook, String)>;

pub struct Runbooks {
    dir: PathBuf,
    cache: Mutex<HashMap<PathBuf, Entry>>,
    builtin: Mutex<HashMap<String, Result<Loaded, String>>>,
}

struct Entry {
    text: Arc<str>,
    loaded: Result<Loaded, String>,
}

impl Runbooks {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            cache: Mutex::default(),
            builtin: Mutex::default(),
        }
    }

    /// What `app::runbooks::load` gives, as text for the reply when it fails.
    pub fn load(&self, name: &str) -> Result<Loaded, String> {
        match runbooks::locate(&self.dir, name) {
            Located::File(path) => self.file(&path),
            Located::Builtin(text) => {
                let mut builtin = self.builtin.lock().expect("runbook cache lock");
                builtin
                    .entry(name.to_string())
                    .or_insert_with(|| {
                        let shown = format!("<built-in>/{name}.yaml");
                        parsed(SourceFile::new(shown.clone(), text), shown)
                    })
                    .clone()
            }
            Located::Missing => Err(runbooks::not_found(&self.dir, name).to_string()),
        }
    }

    /// `list`: every runbook's name and title, as `app::runbooks::list`.
    pub fn list(&self) -> Vec<(String, String)> {
        let mut out = std::collections::BTreeMap::new();
        for (name, text) in crate::shipped::ALL {
            let title = runbook::parse(SourceFile::new(*name, *text))
                .map(|l| l.runbook.title)
                .unwrap_or_default();
            out.insert(name.to_string(), title);
        }
        for (name, path) in runbooks::files(&self.dir) {
            let title = self
                .file(&path)
                .map(|l| l.0.title.clone())
                .unwrap_or_else(|_| runbooks::NOT_VALID_TITLE.into());
            out.insert(name, title);
        }
        out.into_iter().collect()
    }

    fn file(&self, path: &Path) -> Result<Loaded, String> {
        let source = runbook::read(path).map_err(|e| crate::app::Error::from(e).to_string())?;
        if let Some(entry) = self.cache.lock().expect("runbook cache lock").get(path)
            && entry.text == source.text
        {
            return entry.loaded.clone();
        }
        let text = source.text.clone();
        let loaded = parsed(source, path.display().to_string());
        self.cache.lock().expect("runbook cache lock").insert(
            path.to_path_buf(),
            Entry {
                text,
                loaded: loaded.clone(),
            },
        );
        loaded
    }
}

/// A runbook's text, validated, its warnings printed; `shown` names it.
fn parsed(source: SourceFile, shown: String) -> Result<Loaded, String> {
    let loaded = runbook::parse(source).map_err(|d| crate::app::Error::Invalid(d).to_string())?;
    print_warnings(&loaded.warnings);
    Ok(Arc::new((loaded.runbook, shown)))
}

#[expect(
    clippy::print_stderr,
    reason = "a runbook's warnings, once per version, as `load_runbook` prints them"
)]
fn print_warnings(w: &[runbook::Diagnostic]) {
    for d in w {
        eprintln!("{d}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RB: &str = "name: probe\ntitle: First\nsteps:\n  - id: note\n    phase: notify\n    action: slack.post_message\n    with: { channel: \"#x\", text: hi }\n";

    #[test]
    fn a_runbook_is_parsed_once_and_again_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probe.yaml");
        std::fs::write(&path, RB).unwrap();
        let runbooks = Runbooks::new(dir.path().to_path_buf());
        let first = runbooks.load("probe").unwrap();
        assert_eq!(first.0.title, "First");
        let again = runbooks.load("probe").unwrap();
        assert!(Arc::ptr_eq(&first, &again), "served from the cache");

        // The same size, maybe the same modification time: still seen.
        std::fs::write(&path, RB.replace("First", "Other")).unwrap();
        let changed = runbooks.load("probe").unwrap();
        assert_eq!(changed.0.title, "Other");

        std::fs::write(&path, "name: probe\nsteps: nope\n").unwrap();
        let invalid = runbooks.load("probe").unwrap_err();
        assert!(invalid.contains("probe"), "{invalid}");
        assert_eq!(runbooks.load("probe").unwrap_err(), invalid);

        let missing = runbooks.load("prob").unwrap_err();
        assert!(missing.contains("no runbook `prob`"), "{missing}");
        assert!(missing.contains("did you mean `probe`?"), "{missing}");

        let builtin = runbooks.load("slack-token-compromise").unwrap();
        assert_eq!(builtin.1, "<built-in>/slack-token-compromise.yaml");
        let listed = runbooks.list();
        assert!(listed.iter().any(|(n, _)| n == "slack-token-compromise"));
        assert!(
            listed
                .iter()
                .any(|(n, t)| n == "probe" && t == runbooks::NOT_VALID_TITLE)
        );
    }
}
