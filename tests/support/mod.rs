//! The test builder that drives the real `quench` binary, and the local
//! peers it talks to.

pub mod fake_api;
pub mod fake_cloudtrail;
pub mod fake_github;
pub mod fake_kubernetes;
pub mod fake_slack;
pub mod last_used;
pub mod lossy_iam;
pub mod peers;
pub mod postgres;
pub mod strict_sts;

use std::path::PathBuf;
use std::process::{Command, Stdio};

pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub dir: PathBuf,
}

impl Test {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("tempdir"),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
        }
    }

    /// Writes a file under the test's working directory.
    pub fn file(self, name: &str, content: &str) -> Self {
        let p = self.dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// Writes a file of raw bytes (which need not be UTF-8).
    pub fn file_bytes(self, name: &str, content: &[u8]) -> Self {
        std::fs::write(self.dir.path().join(name), content).unwrap();
        self
    }

    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn stdin(mut self, s: &str) -> Self {
        self.stdin = Some(s.into());
        self
    }

    /// Runs quench in the test's directory; returns its output and keeps the
    /// directory (the store) for inspection.
    pub fn run(self) -> (Output, tempfile::TempDir) {
        let mut cmd = self.command();
        let mut child = cmd.spawn().expect("quench starts");
        if let Some(input) = &self.stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().expect("quench ran");
        (
            Output {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                dir: self.dir.path().to_path_buf(),
            },
            self.dir,
        )
    }

    /// Starts quench and leaves it running (`quench serve`).
    pub fn spawn(self) -> Running {
        let child = self.command().spawn().expect("quench starts");
        Running {
            child: Some(child),
            dir: self.dir,
        }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_quench"));
        cmd.args(&self.args)
            .current_dir(self.dir.path())
            .env_remove("QUENCH_STORE")
            .env_remove("QUENCH_RUNBOOKS")
            // Only what a test sets reaches quench: no credentials or
            // endpoints of the machine, and no probing of the EC2 metadata
            // service (it is not on loopback).
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/nonexistent/quench-test")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/quench-test")
            .env("USER", "tester")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            });
        for k in [
            "AWS_PROFILE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_CLOUDTRAIL",
            "AWS_ENDPOINT_URL_IAM",
            "AWS_ENDPOINT_URL_STS",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "BAO_ADDR",
            "BAO_TOKEN",
            "GITHUB_TOKEN",
            "GITHUB_API_URL",
            "SLACK_BOT_TOKEN",
            "SLACK_SIGNING_SECRET",
            "SLACK_API_URL",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// A quench that keeps running; killed when dropped.
pub struct Running {
    pub child: Option<std::process::Child>,
    pub dir: tempfile::TempDir,
}

impl Running {
    /// Sends SIGTERM and waits for the exit; returns the exit code and output.
    pub fn terminate(&mut self) -> Output {
        let child = self.child.take().expect("still running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let out = child.wait_with_output().expect("quench exits");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir.path().to_path_buf(),
        }
    }
}

impl Running {
    /// Waits for it to exit by itself, up to `within` (then kills it).
    pub fn terminate_when_done(&mut self, within: std::time::Duration) -> Output {
        let mut child = self.child.take().expect("still running");
        let start = std::time::Instant::now();
        while child.try_wait().expect("wait works").is_none() {
            if start.elapsed() > within {
                let _ = child.kill();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let out = child.wait_with_output().expect("quench exits");
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            dir: self.dir.path().to_path_buf(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Output {
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The one incident this run left in the store.
    pub fn incident(&self) -> PathBuf {
        let store = self.dir.join("incidents");
        let mut dirs: Vec<_> = std::fs::read_dir(&store)
            .unwrap_or_else(|e| {
                panic!(
                    "no store at {}: {e}\n{}\n{}",
                    store.display(),
                    self.stdout,
                    self.stderr
                )
            })
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs.pop().unwrap()
    }

    /// Every file the run left behind, with its contents.
    pub fn artifacts(&self) -> Vec<(PathBuf, String)> {
        files_under(&self.dir)
    }
}

/// The records of the incident in `dir`, as JSON.
pub fn journal_in(dir: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("journal.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every file under `dir`, with its contents.
pub fn files_under(dir: &std::path::Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
    }
    out
}

/// Serves `app` on a free loopback port, on a thread and runtime of its own
/// (so it answers whatever the test's own threads do), and says where.
pub fn serve_on_loopback(app: axum::Router) -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

/// A spawned `quench serve --listen 127.0.0.1:0`: the address it printed on
/// its first line, and its stdout, kept open because quench writes to it
/// until it stops.
pub fn serving(running: &mut Running) -> (String, std::io::BufReader<std::process::ChildStdout>) {
    use std::io::BufRead;
    let stdout = running.child.as_mut().unwrap().stdout.take().unwrap();
    let mut stdout = std::io::BufReader::new(stdout);
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    (addr, stdout)
}

/// One HTTP/1.1 POST on its own connection, with `headers` (its
/// `Content-Type` among them); (status, body).
pub fn post(addr: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw.split("\r\n\r\n").nth(1).unwrap_or_default().to_string();
    (status, body)
}

/// Sends a request a test peer received on to `upstream` (moto), as it came.
pub async fn forward(
    upstream: &str,
    method: axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> reqwest::Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = reqwest::Client::new().request(method, format!("{upstream}{path}"));
    for (k, v) in headers {
        if k != "host" && k != "content-length" {
            request = request.header(k, v);
        }
    }
    request.body(body).send().await.unwrap()
}

/// Relays `upstream`'s answer to the test peer's caller.
pub async fn relay(answer: reqwest::Response) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = axum::http::StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/xml")
        .to_string();
    let text = answer.bytes().await.unwrap();
    (status, [("content-type", content_type)], text).into_response()
}
