//! A real PostgreSQL for the tests: Debian's server binaries, `initdb` on a
//! temporary directory (as the `postgres` user when the tests run as root,
//! which `initdb` refuses), started with `pg_ctl` on a free loopback port
//! with its socket in that directory, stopped on drop. `scripts/test`
//! installs the `postgresql` package when it is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::peers::free_port;

/// The password of the test database's `quench` role.
pub const PASSWORD: &str = "pg-test-password-7f3a9c";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed: run `scripts/test`, which installs `postgresql`")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("a PostgreSQL server in /usr/lib/postgresql")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Postgres {
    pub fn start() -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        let pg = Postgres {
            bin: bin_dir(),
            port: free_port(),
            as_postgres,
            dir,
        };
        let pwfile = pg.dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        if as_postgres {
            pg.chown(pg.dir.path());
            pg.chown(&pwfile);
        }
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data(),
                "-U",
                "quench",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pwfile.display()),
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.pg_ctl_start();
        pg.psql_on("postgres", "CREATE DATABASE quench");
        pg
    }

    fn chown(&self, path: &Path) {
        let ok = Command::new("chown")
            .args(["postgres:postgres", &path.display().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "chown postgres {}", path.display());
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> std::process::Output {
        let exe = self.bin.join(tool).display().to_string();
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &exe]);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).env("PGPASSWORD", PASSWORD).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn pg_ctl_start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-l", &log, "-o", &opts, "-w", "start"],
        );
    }

    /// Stops the server at once, as a crash would.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    pub fn restart(&self) {
        self.stop();
        self.pg_ctl_start();
    }

    /// The store URL, without its password (given as `PGPASSWORD`).
    pub fn url(&self) -> String {
        format!("postgres://quench@127.0.0.1:{}/quench", self.port)
    }

    fn psql_on(&self, db: &str, sql: &str) -> String {
        let out = self.run(
            "psql",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "quench",
                "-d",
                db,
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs `sql` in the test database; its output, unaligned.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_on("quench", sql)
    }

    /// Everything the database holds for quench, as text.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for table in [
            "quench_incidents",
            "quench_journal",
            "quench_leases",
            "quench_documents",
            "quench_audit",
            "quench_replays",
        ] {
            out += &self.psql(&format!("SELECT t::text FROM {table} t"));
            out.push('\n');
        }
        out
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl").display().to_string();
        let data = self.data();
        let args = ["-D", data.as_str(), "-m", "immediate", "stop"];
        let _ = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--", &exe])
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        };
    }
}
