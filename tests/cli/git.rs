//! `git.scan_history` against real repositories, built with the `git` CLI
//! (quench itself starts no `git`), read from disk and cloned over git's
//! smart HTTP protocol from `git http-backend` on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::attack::{assert_no_piece, run_places};
use crate::support::fake_github::{ENGINE_TOKEN, FakeGithub, ORG, REPO};
use crate::support::{Output, Test};

const LEAKED: &str = "ghp_LeakedIntoGit0123456789abcdefghijkl";

/// A repository in a directory of its own, outside the test's (whose
/// every file is searched for the secret afterwards).
struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    fn new() -> Repo {
        let repo = Repo {
            dir: tempfile::tempdir().unwrap(),
        };
        repo.git(&["init", "-q", "-b", "main"], "2024-01-01T00:00:00Z");
        repo
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `git` on the repository, blind to the machine's configuration,
    /// at `date`; its output, trimmed.
    fn git(&self, args: &[&str], date: &str) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("HOME", self.path())
            .env("GIT_AUTHOR_NAME", "Dana Dev")
            .env("GIT_AUTHOR_EMAIL", "dana@example.com")
            .env("GIT_COMMITTER_NAME", "Dana Dev")
            .env("GIT_COMMITTER_EMAIL", "dana@example.com")
            .env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date)
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// Writes (or, with `None`, deletes) `files` and commits them at
    /// `date`; the commit's id.
    fn commit(&self, files: &[(&str, Option<&str>)], date: &str) -> String {
        for (name, content) in files {
            let path = self.path().join(name);
            match content {
                Some(text) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(&path, text).unwrap();
                }
                None => std::fs::remove_file(&path).unwrap(),
            }
        }
        self.git(&["add", "-A"], date);
        self.git(&["commit", "-q", "-m", "change"], date);
        self.git(&["rev-parse", "HEAD"], date)
    }
}

/// The commits of the main fixture, oldest first.
struct History {
    repo: Repo,
    /// Added the token to `config/app.env`, tagged `v1`.
    leaked: String,
    /// On `feature`: the token base64-encoded in `auth.txt`, and
    /// percent-encoded in `ci.yml`.
    encoded: String,
}

/// `main`: a first commit, then the token in `config/app.env` (tagged
/// `v1`, annotated), then the token removed. `feature`, from the tagged
/// commit: its base64 and percent-encoded forms added, then a line added
/// above them (which adds no hit: the lines were there already).
fn history() -> History {
    let repo = Repo::new();
    repo.commit(&[("README.md", Some("# app\n"))], "2024-01-01T00:00:00Z");
    let leaked = repo.commit(
        &[(
            "config/app.env",
            Some(&format!("PORT=8080\nGITHUB_TOKEN={LEAKED}\n")),
        )],
        "2024-03-01T10:00:00Z",
    );
    repo.git(&["tag", "-a", "v1", "-m", "v1"], "2024-03-01T10:00:00Z");
    repo.commit(
        &[("config/app.env", Some("PORT=8080\n"))],
        "2024-03-02T10:00:00Z",
    );
    repo.git(
        &["checkout", "-q", "-b", "feature", &leaked],
        "2024-04-01T00:00:00Z",
    );
    let basic = STANDARD.encode(format!("x-access-token:{LEAKED}"));
    let url = utf8_percent_encode(LEAKED, NON_ALPHANUMERIC).to_string();
    let encoded = repo.commit(
        &[
            (
                "auth.txt",
                Some(&format!("a\nb\nAuthorization: Basic {basic}\n")),
            ),
            ("ci.yml", Some(&format!("url: https://ci/?token={url}\n"))),
        ],
        "2024-04-01T12:00:00Z",
    );
    repo.commit(
        &[(
            "auth.txt",
            Some(&format!("first\na\nb\nAuthorization: Basic {basic}\n")),
        )],
        "2024-04-02T12:00:00Z",
    );
    repo.git(&["checkout", "-q", "main"], "2024-04-03T00:00:00Z");
    History {
        repo,
        leaked,
        encoded,
    }
}

/// A runbook that scans `repository` for its `leaked` secret, then writes
/// the document whatever came of it.
fn scan_runbook(with: &str) -> String {
    format!(
        r#"name: scan
secrets:
  leaked: {{ description: the leaked token }}
inputs:
  repository: {{ description: the repository }}
steps:
  - id: history
    name: Where was it committed?
    phase: audit
    action: git.scan_history
    with:
      repository: "{{{{inputs.repository}}}}"
      value: "{{{{secrets.leaked}}}}"
{with}
  - id: document
    phase: document
    settled: [history]
    action: incident.document
"#
    )
}

fn scan(repository: &str, secret: &str, with: &str) -> (Output, tempfile::TempDir) {
    Test::new()
        .file("rb.yaml", &scan_runbook(with))
        .env("LEAKED", secret)
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("repository={repository}"),
            "--secret",
            "leaked=env:LEAKED",
        ])
        .run()
}

fn incident_json(out: &Output) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.incident().join("incident.json")).unwrap())
        .unwrap()
}

fn step(json: &Value, id: &str) -> Value {
    json["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no step `{id}` in {json}"))
        .clone()
}

/// The marker quench shows for `value`, a line of secret `name`.
fn marker(name: &str, value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("[REDACTED {name} sha256:{hex}]")
}

/// Each hit as (commit, path, line, encoding, refs).
fn hits(outputs: &Value) -> Vec<(String, String, u64, String, Vec<String>)> {
    outputs["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["commit"].as_str().unwrap().to_string(),
                h["path"].as_str().unwrap().to_string(),
                h["line"].as_u64().unwrap(),
                h["encoding"].as_str().unwrap().to_string(),
                h["refs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_str().unwrap().to_string())
                    .collect(),
            )
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What the fixture's history holds, as the scan should report it.
fn expected(h: &History) -> Vec<(String, String, u64, String, Vec<String>)> {
    let everywhere = strings(&["refs/heads/feature", "refs/heads/main", "refs/tags/v1"]);
    let feature = strings(&["refs/heads/feature"]);
    vec![
        (
            h.leaked.clone(),
            "config/app.env".into(),
            2,
            "raw".into(),
            everywhere,
        ),
        (
            h.encoded.clone(),
            "auth.txt".into(),
            3,
            "base64".into(),
            feature.clone(),
        ),
        (
            h.encoded.clone(),
            "ci.yml".into(),
            1,
            "url-encoded".into(),
            feature,
        ),
    ]
}

#[test]
fn every_commit_that_added_the_token_is_found_in_any_encoding_with_the_refs_holding_it() {
    let h = history();
    let (out, _d) = scan(h.repo.path().to_str().unwrap(), LEAKED, "");
    out.code(0);
    let json = incident_json(&out);
    let history = step(&json, "history");
    assert_eq!(history["status"], "succeeded", "{history}");
    let outputs = &history["outputs"];
    assert_eq!(hits(outputs), expected(&h));
    assert_eq!(outputs["count"], 3);
    assert_eq!(outputs["leaked_at"], "2024-03-01T10:00:00Z");
    let first = &outputs["hits"][0];
    assert_eq!(first["author"], "Dana Dev <dana@example.com>");
    assert_eq!(first["date"], "2024-03-01T10:00:00Z");
    assert_eq!(first["secret"], marker("leaked", LEAKED));

    // incident.json has them under `leaks`; the document lists them.
    assert_eq!(json["leaks"][0]["count"], 3);
    assert_eq!(json["leaks"][0]["hits"][0]["commit"], h.leaked.as_str());
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    let section = &md[md.find("## Where it leaked").expect("the section")..];
    assert!(
        section.contains(&format!(
            "| `{}` | `config/app.env` | 2 | 2024-03-01T10:00:00Z | `refs/heads/feature`, `refs/heads/main`, `refs/tags/v1` |",
            &h.leaked[..12]
        )),
        "{section}"
    );
    for words in [
        "public forever",
        "Rewriting history is a human decision",
        "git filter-repo --replace-text",
        "git push --force",
        "GitHub Support",
    ] {
        assert!(section.contains(words), "`{words}` in:\n{section}");
    }

    assert_no_piece(LEAKED, &run_places(&out));
}

#[test]
fn raw_only_finds_the_value_as_it_is_and_no_encoding() {
    let h = history();
    let (out, _d) = scan(
        &format!("file://{}", h.repo.path().display()),
        LEAKED,
        "      encodings: false",
    );
    out.code(0);
    let outputs = step(&incident_json(&out), "history")["outputs"].clone();
    assert_eq!(hits(&outputs), expected(&h)[..1]);
    assert_eq!(outputs["count"], 1);
}

#[test]
fn each_token_of_a_leaked_env_is_searched_on_its_own() {
    let one = "ghp_FirstEnvToken000000000000000000000";
    let two = "xoxb-Second-Env-Token-0000000000";
    let env =
        format!("# leaked from ci\nGITHUB_TOKEN={one}\nexport SLACK_TOKEN=\"{two}\"\nPORT=80\n");
    let repo = Repo::new();
    let a = repo.commit(
        &[(
            "deploy.sh",
            Some(&format!("PORT=80\ncurl -H 'token {one}'\n")),
        )],
        "2024-05-01T00:00:00Z",
    );
    let b = repo.commit(
        &[("notify.json", Some(&format!("{{\"token\": \"{two}\"}}\n")))],
        "2024-05-02T00:00:00Z",
    );
    let (out, _d) = scan(repo.path().to_str().unwrap(), &env, "");
    out.code(0);
    let outputs = step(&incident_json(&out), "history")["outputs"].clone();
    let main = strings(&["refs/heads/main"]);
    assert_eq!(
        hits(&outputs),
        [
            (a, "deploy.sh".into(), 2, "raw".into(), main.clone()),
            (b, "notify.json".into(), 1, "raw".into(), main),
        ]
    );
    // Each named by its own marker, as the redactor names it everywhere.
    assert_eq!(outputs["hits"][0]["secret"], marker("leaked", one));
    assert_eq!(outputs["hits"][1]["secret"], marker("leaked", two));
    for secret in [one, two, env.as_str()] {
        assert_no_piece(secret, &run_places(&out));
    }
}

#[test]
fn a_repository_that_cannot_be_opened_fails_the_step_and_the_response_goes_on() {
    let empty = tempfile::tempdir().unwrap();
    let missing = empty.path().join("nowhere");
    for (repository, reason) in [
        (
            missing.display().to_string(),
            format!("the repository `{}` does not exist", missing.display()),
        ),
        (
            empty.path().display().to_string(),
            format!("failed to open the repository `{}`", empty.path().display()),
        ),
        (
            "git@github.com:acme/app.git".into(),
            "is an SSH URL, which quench does not clone".into(),
        ),
    ] {
        let (out, _d) = scan(&repository, LEAKED, "");
        out.code(1);
        let json = incident_json(&out);
        let history = step(&json, "history");
        assert_eq!(history["status"], "failed");
        let error = history["error"].as_str().unwrap();
        assert!(error.contains(&reason), "{error}");
        assert_eq!(step(&json, "document")["status"], "succeeded");
        let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
        assert!(md.contains("The search failed: "), "{md}");
        assert_no_piece(LEAKED, &run_places(&out));
    }
}

#[test]
fn the_github_runbook_searches_the_history_it_is_given_and_skips_it_otherwise() {
    let h = history();
    let api = FakeGithub::start(LEAKED);
    let run = |more: &[&str]| {
        let mut args = vec![
            "run".to_string(),
            "github-token-compromise".into(),
            "--var".into(),
            format!("org={ORG}"),
            "--var".into(),
            format!("repo={REPO}"),
            "--secret".into(),
            "leaked_token=env:LEAKED".into(),
        ];
        args.extend(more.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Test::new()
            .env("GITHUB_API_URL", &api.url())
            .env("GITHUB_TOKEN", ENGINE_TOKEN)
            .env("LEAKED", LEAKED)
            .args(&args)
            .run()
    };
    let given = format!("history_repository={}", h.repo.path().display());
    let (out, _d) = run(&["--var", &given]);
    out.code(0);
    let history = step(&incident_json(&out), "history");
    assert_eq!(history["status"], "succeeded", "{history}");
    assert_eq!(hits(&history["outputs"]), expected(&h));
    assert_no_piece(LEAKED, &run_places(&out));

    let (out, _d) = run(&[]);
    out.code(0);
    let history = step(&incident_json(&out), "history");
    assert_eq!(history["status"], "skipped");
    assert_eq!(
        history["reason"],
        "`when` rendered `no history_repository was given`"
    );
}

#[test]
fn a_repository_is_cloned_over_http_and_the_clone_deleted_after() {
    let h = history();
    let server = GitServer::start(h.repo.path());
    let url = format!("{}/repo.git", server.url);
    let tmp = tempfile::tempdir().unwrap();
    let (out, _d) = Test::new()
        .file("rb.yaml", &scan_runbook(""))
        .env("LEAKED", LEAKED)
        .env("TMPDIR", tmp.path().to_str().unwrap())
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("repository={url}"),
            "--secret",
            "leaked=env:LEAKED",
        ])
        .run();
    out.code(0);
    let history = step(&incident_json(&out), "history");
    assert_eq!(history["status"], "succeeded", "{history}");
    assert_eq!(hits(&history["outputs"]), expected(&h));
    assert!(server.requests() > 0);
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the clone is left behind: {left:?}");
    assert_no_piece(LEAKED, &run_places(&out));
}

#[test]
fn a_token_is_never_sent_in_clear_text() {
    const CLONE_TOKEN: &str = "ghp_CloneReadToken00000000000000000000";
    let h = history();
    let server = GitServer::start(h.repo.path());
    let url = format!("{}/repo.git", server.url);
    let runbook = scan_runbook("      token: \"{{secrets.clone_token}}\"").replace(
        "secrets:\n",
        "secrets:\n  clone_token: { description: a token that reads the repository }\n",
    );
    let (out, _d) = Test::new()
        .file("rb.yaml", &runbook)
        .env("LEAKED", LEAKED)
        .env("CLONE", CLONE_TOKEN)
        .args(&[
            "run",
            "rb.yaml",
            "--var",
            &format!("repository={url}"),
            "--secret",
            "leaked=env:LEAKED",
            "--secret",
            "clone_token=env:CLONE",
        ])
        .run();
    out.code(1);
    let history = step(&incident_json(&out), "history");
    let error = history["error"].as_str().unwrap();
    assert!(
        error.contains("a token is sent over `https://` only"),
        "{error}"
    );
    assert_eq!(server.requests(), 0);
    for secret in [LEAKED, CLONE_TOKEN] {
        assert_no_piece(secret, &run_places(&out));
    }
}

/// git's smart HTTP protocol, served by `git http-backend` (a CGI program)
/// on loopback.
struct GitServer {
    url: String,
    requests: Arc<Mutex<usize>>,
    _root: tempfile::TempDir,
}

#[derive(Clone)]
struct Served {
    root: PathBuf,
    requests: Arc<Mutex<usize>>,
}

impl GitServer {
    /// Serves a bare copy of `repo` as `/repo.git`.
    fn start(repo: &Path) -> GitServer {
        let root = tempfile::tempdir().unwrap();
        let status = Command::new("git")
            .args(["clone", "-q", "--mirror"])
            .arg(repo)
            .arg(root.path().join("repo.git"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .status()
            .unwrap();
        assert!(status.success());
        let served = Served {
            root: root.path().to_path_buf(),
            requests: Arc::new(Mutex::new(0)),
        };
        let requests = served.requests.clone();
        let app = axum::Router::new().fallback(backend).with_state(served);
        let addr = crate::support::serve_on_loopback(app);
        GitServer {
            url: format!("http://{addr}"),
            requests,
            _root: root,
        }
    }

    fn requests(&self) -> usize {
        *self.requests.lock().unwrap()
    }
}

async fn backend(
    State(served): State<Served>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    *served.requests.lock().unwrap() += 1;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (content_type, encoding, protocol) = (
        header("content-type"),
        header("content-encoding"),
        header("git-protocol"),
    );
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("git")
            .arg("http-backend")
            .env_clear()
            .env("GIT_PROJECT_ROOT", &served.root)
            .env("GIT_HTTP_EXPORT_ALL", "1")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("REQUEST_METHOD", method.as_str())
            .env("PATH_INFO", uri.path())
            .env("QUERY_STRING", uri.query().unwrap_or(""))
            .env("CONTENT_TYPE", content_type)
            .env("CONTENT_LENGTH", body.len().to_string())
            .env("HTTP_CONTENT_ENCODING", encoding)
            .env("GIT_PROTOCOL", protocol)
            .env("REMOTE_ADDR", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(&body).unwrap();
        child.wait_with_output().unwrap().stdout
    })
    .await
    .unwrap();
    // A CGI answer: headers, a blank line, the body.
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .expect("a CGI answer");
    let head = String::from_utf8_lossy(&output[..split.0]).into_owned();
    let mut response = Response::builder();
    let mut status = StatusCode::OK;
    for line in head.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("status") {
            let code = value.trim().split(' ').next().unwrap_or("200");
            status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        } else {
            response = response.header(name.trim(), value.trim());
        }
    }
    response
        .status(status)
        .body(axum::body::Body::from(output[split.1..].to_vec()))
        .unwrap()
}
