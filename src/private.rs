//! Files and directories only their owner can open. An incident's files
//! say what an attacker did and how the team answered, so each is made
//! 0600 and each directory 0700, whatever the process's umask.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Creates a directory (failing if it exists), 0700.
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    DirBuilder::new().mode(DIR_MODE).create(path)?;
    std::fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
}

/// Creates a directory and its missing parents; those it makes are 0700.
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match create_dir(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
        other => other,
    }
}

/// Options that make a new file 0600. [`fix`] the file once it is open:
/// the mode given here is narrowed further by the umask.
pub fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Sets an open file's mode to exactly 0600.
pub fn fix(file: &File) -> std::io::Result<()> {
    file.set_permissions(Permissions::from_mode(FILE_MODE))
}

/// Opens (creating it if needed) a file through `options`, 0600.
pub fn open(options: &OpenOptions, path: &Path) -> std::io::Result<File> {
    let file = options.open(path)?;
    fix(&file)?;
    Ok(file)
}

/// Writes a whole new file (replacing one that is there), 0600.
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = open(options().write(true).create(true).truncate(true), path)?;
    file.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_are_exact_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        write(&nested.join("f"), b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(&nested.join("f")), 0o600);
    }
}
