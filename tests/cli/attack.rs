//! Attacks on quench's handling of secrets: each test tries one way to make
//! a secret leak, then searches everything the run left, printed and sent
//! for every common encoding of it, and for any piece of it a cut could
//! leave.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::support::fake_api::FakeApi;
use crate::support::fake_slack::{BOT_TOKEN, FakeSlack};
use crate::support::{Output, Test};

/// RFC 3986's unreserved characters, kept by its percent-encoding.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The secret and every common encoding of it, written here independently
/// of quench's redactor: raw, JSON-escaped up to three times, percent-encoded
/// (every byte, RFC 3986, form; either case of hex), base64 (both alphabets,
/// padded or not) and hex.
pub fn encodings(secret: &str) -> Vec<String> {
    let mut out = vec![secret.to_string()];
    let mut escaped = secret.to_string();
    for _ in 0..3 {
        let quoted = serde_json::to_string(&escaped).unwrap();
        escaped = quoted[1..quoted.len() - 1].to_string();
        out.push(escaped.clone());
    }
    for set in [NON_ALPHANUMERIC, RFC3986] {
        let encoded = utf8_percent_encode(secret, set).to_string();
        out.push(lower_hex(&encoded));
        out.push(encoded.replace("%20", "+"));
        out.push(encoded);
    }
    out.push(form_urlencoded::byte_serialize(secret.as_bytes()).collect());
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        out.push(engine.encode(secret));
    }
    let hex: String = secret.bytes().map(|b| format!("{b:02x}")).collect();
    out.push(hex.to_uppercase());
    out.push(hex);
    out
}

fn lower_hex(encoded: &str) -> String {
    let mut out = String::new();
    let mut chars = encoded.chars();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '%' {
            out.extend(chars.by_ref().take(2).map(|h| h.to_ascii_lowercase()));
        }
    }
    out
}

/// Each piece of 10 characters of each encoding of `secret`: what a cut, or
/// a whole form, would leave.
fn pieces(secret: &str) -> Vec<String> {
    let mut out = Vec::new();
    for form in encodings(secret) {
        let chars: Vec<char> = form.chars().collect();
        for w in chars.windows(10) {
            out.push(w.iter().collect());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Fails when any of `places` (a name and its text) holds any piece of
/// `secret`.
pub(crate) fn assert_no_piece(secret: &str, places: &[(String, String)]) {
    let pieces = pieces(secret);
    for (name, text) in places {
        if let Some(p) = pieces.iter().find(|p| text.contains(p.as_str())) {
            panic!("{name} holds `{p}`, a piece of the secret:\n{text}");
        }
    }
}

/// What a run printed and left on disk (the runbook it was given aside).
pub(crate) fn run_places(out: &Output) -> Vec<(String, String)> {
    let mut places = vec![
        ("stdout".to_string(), out.stdout.clone()),
        ("stderr".to_string(), out.stderr.clone()),
    ];
    for (path, text) in out.artifacts() {
        if path.extension().is_some_and(|e| e == "yaml") && !path.ends_with("runbook.yaml") {
            continue;
        }
        places.push((path.display().to_string(), text));
    }
    places
}

/// What the Slack peer was sent.
fn slack_places(slack: &FakeSlack) -> Vec<(String, String)> {
    slack
        .calls()
        .into_iter()
        .map(|c| (format!("slack {}", c.method), c.args.to_string()))
        .collect()
}

/// A runbook that sends the leaked token to an API (in a secret-capable
/// body) and then tells Slack what the API answered.
fn echo_runbook(api: &str, text: &str) -> String {
    format!(
        r##"name: echo
kind: compromise
secrets:
  leaked: {{ description: the leaked token }}
steps:
  - id: call
    phase: revoke
    action: http.request
    with:
      method: POST
      url: "{api}/echo"
      json: {{ token: "{{{{secrets.leaked}}}}" }}
      outputs: {{ echo: /echo }}
  - id: tell
    phase: notify
    needs: [call]
    action: slack.post_message
    with:
      channel: "#sec-incidents"
      text: "{text}"
"##
    )
}

fn live(test: Test, slack: &FakeSlack, secret: &str) -> Test {
    test.env("SLACK_API_URL", &slack.api_url())
        .env("SLACK_BOT_TOKEN", BOT_TOKEN)
        .env("LEAKED", secret)
        .env("QUENCH_LOG", "debug")
}

/// Everything the API was sent but the body of `/echo`, which carries the
/// secret by design (`json` is secret-capable).
fn api_places(api: &FakeApi) -> Vec<(String, String)> {
    api.seen()
        .into_iter()
        .map(|s| {
            let body = if s.path == "/echo" {
                String::new()
            } else {
                s.body
            };
            (
                format!("api {} {}", s.method, s.path),
                format!("{:?} {body}", s.headers),
            )
        })
        .collect()
}

/// The peers of one attack: an API that answers `/echo`, and Slack.
struct Peers {
    api: FakeApi,
    slack: FakeSlack,
}

impl Peers {
    fn start() -> Self {
        Self {
            api: FakeApi::start(),
            slack: FakeSlack::start(&[]),
        }
    }

    /// Runs the echo runbook, its Slack text `text`, with `secret` as the
    /// leaked token.
    fn run(&self, secret: &str, text: &str) -> (Output, tempfile::TempDir) {
        live(Test::new(), &self.slack, secret)
            .file("rb.yaml", &echo_runbook(&self.api.url(), text))
            .args(&["run", "rb.yaml", "--secret", "leaked=env:LEAKED"])
            .run()
    }

    /// Nothing the run left or printed, and nothing the peers were sent but
    /// the secret-capable body, holds a piece of `secret`.
    fn assert_no_piece(&self, secret: &str, out: &Output) {
        let mut places = run_places(out);
        places.extend(slack_places(&self.slack));
        places.extend(api_places(&self.api));
        assert_no_piece(secret, &places);
    }
}

#[test]
fn a_secret_read_through_a_block_scope_is_refused_and_never_sent() {
    const LEAKED: &str = "ghp_BlockScopeBypass0000000000000000001";
    for text in [
        "id {{incident.id}} {{#with incident.id}}tok={{@root.secrets.leaked}}{{/with}}",
        "{{#with incident}}{{../secrets.leaked}}{{/with}}",
        "{{lookup secrets 'leaked'}}",
        "{{#with (lookup secrets 'leaked')}}{{this}}{{/with}}",
        "{{#each inputs.list}}{{lookup ../secrets 'leaked'}}{{/each}}",
        "{{#with (eq 1 1)}}{{secrets.leaked}}{{/with}}",
    ] {
        let peers = Peers::start();
        let (api, slack) = (&peers.api, &peers.slack);
        let runbook = echo_runbook(&api.url(), text);
        let (out, _d) = live(Test::new(), slack, LEAKED)
            .file("rb.yaml", &runbook)
            .args(&["validate", "rb.yaml"])
            .run();
        out.code(2);
        assert!(
            out.stderr.contains("--> rb.yaml:"),
            "{text}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains("may not flow into parameter `text`")
                || out.stderr.contains("template reads"),
            "{text}: {}",
            out.stderr
        );

        let (out, _d) = peers.run(LEAKED, text);
        out.code(2);
        assert!(api.seen().is_empty(), "{text}");
        assert!(slack.calls().is_empty(), "{text}");
        assert_no_piece(LEAKED, &run_places(&out));
    }
}

#[test]
fn what_a_provider_echoes_is_swept_before_it_reaches_slack() {
    const LEAKED: &str = "xoxp-1234-5678/abcd+efgh=Pa\"ss\\word";
    let peers = Peers::start();
    let (api, slack) = (&peers.api, &peers.slack);
    // The API echoes the token back in a plain output, in several encodings.
    let forms = encodings(LEAKED);
    let echo = serde_json::json!({ "echo": forms.join(" | ") }).to_string();
    api.answer("/echo", 200, &[("content-type", "application/json")], &echo);
    let (out, _d) = peers.run(LEAKED, "the API said {{steps.call.outputs.echo}}");
    out.code(0);
    let posts = slack.calls_to("chat.postMessage");
    assert_eq!(posts.len(), 1, "{posts:?}");
    let text = posts[0].args["text"].as_str().unwrap();
    assert!(text.contains("[REDACTED leaked sha256:"), "{text}");
    peers.assert_no_piece(LEAKED, &out);
}

#[test]
fn an_error_that_echoes_a_secret_holds_no_piece_of_it_however_it_is_cut() {
    const LEAKED: &str = "ghp_SuperSecretTokenValue0123456789abcd";
    // The journal keeps 400 characters of an error: these put the cut
    // before the secret, inside it at many places, and after it.
    for before in (240..=310).step_by(5) {
        let peers = Peers::start();
        let api = &peers.api;
        let body = format!(
            r#"{{"message":"{} bad request","echo":{{"token":"{LEAKED}"}}}}"#,
            "x".repeat(before)
        );
        api.answer("/echo", 400, &[("content-type", "application/json")], &body);
        let (out, _d) = peers.run(LEAKED, "failed");
        out.code(1);
        let journal = std::fs::read_to_string(out.incident().join("journal.jsonl")).unwrap();
        assert!(journal.contains("answered 400"), "{journal}");
        peers.assert_no_piece(LEAKED, &out);
    }
}

#[test]
fn an_error_that_echoes_a_secret_in_any_encoding_is_swept() {
    const LEAKED: &str = "Pa\"ss\\word-1234/5678+abcd=efgh ~x";
    for form in encodings(LEAKED) {
        let peers = Peers::start();
        let api = &peers.api;
        let body = serde_json::json!({ "error": "rejected", "echo": form }).to_string();
        api.answer("/echo", 400, &[("content-type", "application/json")], &body);
        let (out, _d) = peers.run(LEAKED, "failed");
        out.code(1);
        peers.assert_no_piece(LEAKED, &out);
    }
}

#[test]
fn a_secret_too_short_to_sweep_is_refused_before_anything_starts() {
    for short in ["ts", "e", "seq", "\"", "1234567"] {
        let peers = Peers::start();
        let api = &peers.api;
        let (out, _d) = peers.run(short, "hi");
        out.code(2);
        assert!(
            out.stderr
                .contains("secret `leaked` is shorter than 8 characters"),
            "{}",
            out.stderr
        );
        assert!(api.seen().is_empty());
        assert!(!out.dir.join("incidents").exists());
    }
}

/// A secret equal to a word the journal is made of cannot unmake it.
#[test]
fn a_secret_that_is_a_word_of_the_journal_leaves_it_whole() {
    for word in ["step_started", "rehearsal", "succeeded", "incident_started"] {
        let peers = Peers::start();
        let (api, slack) = (&peers.api, &peers.slack);
        api.answer(
            "/echo",
            200,
            &[("content-type", "application/json")],
            r#"{"echo":"ok"}"#,
        );
        let (out, _d) = peers.run(word, "done");
        out.code(0);
        let (report, _d) = Test::new()
            .args(&[
                "report",
                out.incident().file_name().unwrap().to_str().unwrap(),
                "--store",
                out.dir.join("incidents").to_str().unwrap(),
            ])
            .run();
        report.code(0);
        assert_eq!(slack.calls_to("chat.postMessage").len(), 1, "{word}");
    }
}

/// An incident's directory and files are its owner's alone, even under a
/// umask that would let anyone read them.
#[test]
fn incident_files_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000 && exec {} rehearse api-key-compromise",
            env!("CARGO_BIN_EXE_quench")
        ))
        .current_dir(dir.path())
        .env_remove("QUENCH_STORE")
        .env_remove("QUENCH_RUNBOOKS")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let mut stack = vec![dir.path().join("incidents")];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", p.display());
                files += 1;
            }
        }
    }
    assert!(files >= 5, "{files}");
}

/// A link a provider answered with is followed from the HTML document only
/// when it is http, https or mailto: a `javascript:` one would run on click.
#[test]
fn a_javascript_link_never_becomes_a_link() {
    let api = FakeApi::start();
    for (i, url) in [
        "javascript:alert(document.cookie)",
        " JavaScript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "https://issues.example/42",
    ]
    .iter()
    .enumerate()
    {
        let path = format!("/issue{i}");
        let body = serde_json::json!({ "html_url": url }).to_string();
        api.answer(&path, 201, &[("content-type", "application/json")], &body);
        let runbook = format!(
            r#"name: links
steps:
  - id: file
    phase: prevent
    action: http.request
    with:
      method: POST
      url: "{}{path}"
      outputs: {{ url: /html_url }}
"#,
            api.url()
        );
        let (out, _d) = Test::new()
            .file("rb.yaml", &runbook)
            .args(&["run", "rb.yaml"])
            .run();
        out.code(0);
        let dir = out.incident();
        let html = std::fs::read_to_string(dir.join("incident.html")).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("incident.json")).unwrap())
                .unwrap();
        let item = &json["postmortem"]["action_items"][0];
        if url.starts_with("https:") {
            assert!(html.contains(&format!("href=\"{url}\"")), "{html}");
            assert_eq!(item["url"], *url);
        } else {
            assert!(
                !html.to_lowercase().contains("href=\" javascript"),
                "{html}"
            );
            assert!(!html.to_lowercase().contains("href=\"javascript"), "{html}");
            assert!(!html.contains("href=\"data:"), "{html}");
            assert!(item["url"].is_null(), "{item}");
            assert!(
                item["what"]
                    .as_str()
                    .unwrap()
                    .contains("its link was not kept"),
                "{item}"
            );
        }
    }
}

/// What a template puts into a Slack message is escaped: a provider's answer
/// cannot mention the channel or hide a link, while the runbook's own text
/// keeps its mrkdwn.
#[test]
fn a_value_cannot_mention_the_channel_or_hide_a_link() {
    const LEAKED: &str = "ghp_MrkdwnInjection000000000000000001";
    let peers = Peers::start();
    let (api, slack) = (&peers.api, &peers.slack);
    let echo =
        serde_json::json!({ "echo": "<!channel> <@U999> <https://evil.example|click> & co" });
    api.answer(
        "/echo",
        200,
        &[("content-type", "application/json")],
        &echo.to_string(),
    );
    let (out, _d) = peers.run(LEAKED, "<!here> the API said: {{steps.call.outputs.echo}}");
    out.code(0);
    let posts = slack.calls_to("chat.postMessage");
    assert_eq!(
        posts[0].args["text"],
        "<!here> the API said: &lt;!channel&gt; &lt;@U999&gt; &lt;https://evil.example|click&gt; &amp; co"
    );
}
