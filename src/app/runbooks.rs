//! Finding a runbook by path or name (the runbooks directory, then those
//! built into quench), reading and validating it, and listing them all.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::Error;
use crate::runbook::diagnostic::did_you_mean;
use crate::runbook::{self, Loaded, SourceFile};
use crate::shipped;

/// A path, or a name looked up in the runbooks directory and then among the
/// runbooks built into quench: the runbook, its warnings, and the name it
/// is shown by.
pub fn load(dir: &Path, arg: &str) -> Result<(Loaded, String), Error> {
    let (source, shown) = match locate(dir, arg) {
        Located::File(path) => (runbook::read(&path)?, path.display().to_string()),
        Located::Builtin(text) => {
            let shown = format!("<built-in>/{arg}.yaml");
            (SourceFile::new(shown.clone(), text), shown)
        }
        Located::Missing => return Err(not_found(dir, arg)),
    };
    let loaded = runbook::parse(source).map_err(Error::Invalid)?;
    Ok((loaded, shown))
}

/// Where [`load`] finds a runbook, without reading it.
pub enum Located {
    File(PathBuf),
    Builtin(&'static str),
    Missing,
}

pub fn locate(dir: &Path, arg: &str) -> Located {
    let as_path = Path::new(arg);
    if as_path.is_file() {
        return Located::File(as_path.to_path_buf());
    }
    let candidate = dir.join(format!("{arg}.yaml"));
    if candidate.is_file() {
        Located::File(candidate)
    } else if let Some(text) = shipped::get(arg) {
        Located::Builtin(text)
    } else {
        Located::Missing
    }
}

/// The error for a runbook [`locate`] did not find.
pub fn not_found(dir: &Path, arg: &str) -> Error {
    let names = names(dir);
    let help = did_you_mean(arg, names.iter().map(String::as_str))
        .map(|h| format!(": {h}"))
        .unwrap_or_else(|| ": `quench list` shows the runbooks".into());
    Error::Usage(format!(
        "no runbook `{arg}` (not a file, not in `{}`, not built in){help}",
        dir.display()
    ))
}

/// The names [`list`] lists, without reading the files: the built-in
/// runbooks', then the runbooks directory's.
pub fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = shipped::ALL.iter().map(|(n, _)| n.to_string()).collect();
    names.extend(files(dir).into_iter().map(|(name, _)| name));
    names.sort();
    names.dedup();
    names
}

/// The `.yaml`/`.yml` files of the runbooks directory, by name.
pub fn files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .map(|p| {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            (name, p)
        })
        .collect()
}

/// What `list` shows as the title of a runbook that does not validate.
pub const NOT_VALID_TITLE: &str = "(does not validate: run `quench validate`)";

/// Every runbook: its name, title, and where it is from.
pub fn list(dir: &Path) -> Vec<(String, String, String)> {
    let mut out: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (name, text) in shipped::ALL {
        let title = runbook::parse(SourceFile::new(*name, *text))
            .map(|l| l.runbook.title)
            .unwrap_or_default();
        out.insert(name.to_string(), (title, "built in".into()));
    }
    for (name, p) in files(dir) {
        let title = runbook::load(&p)
            .map(|l| l.runbook.title)
            .unwrap_or_else(|_| NOT_VALID_TITLE.into());
        out.insert(name, (title, p.display().to_string()));
    }
    out.into_iter().map(|(n, (t, o))| (n, t, o)).collect()
}
