//! The incident document (issue 8): the postmortem sections filled from the
//! journal, the self-contained HTML report with its timeline picture, a
//! team's own templates, and publishing the document from a runbook step.

use serde_json::Value;

use super::mask;
use crate::support::fake_github::{ENGINE_TOKEN, FakeGithub, REPO};
use crate::support::{Output, Test};

/// The throttled rehearsal of the snapshot in tests/cli.rs, with a trigger,
/// and answers to some of the postmortem's questions (not `went_wrong`).
const POSTMORTEM_SCENARIO: &str = r#"
clock: virtual
defaults: { latency: 150ms }
actions:
  aws.deactivate_access_key:
    latency: 400ms
    faults: [ { attempts: 2, error: throttled, retry_after: 1s } ]
  slack.post_message:
    faults: [ { attempts: 1, error: throttled, retry_after: 2s } ]
  aws.lookup_events:
    outputs: { events: 42, event_names: [ListBuckets, GetObject], source_ips: [203.0.113.7] }
manual:
  review: { after: 90s, answer: "Key was committed to a public gist", by: alice }
  went_well: { after: 2m, answer: "The key was dead within seconds", by: alice }
  lucky: { after: 2m, answer: "The gist was found before the weekend", by: bob }
  prevent: { after: 3m, answer: "Pre-commit secret scanning in every repository", by: carol }
"#;

const TRIGGER: &str = "GitHub secret scanning alert #12 on acme/api";

fn rehearse_postmortem() -> (Output, tempfile::TempDir) {
    let (out, dir) = Test::new()
        .file("s.yaml", POSTMORTEM_SCENARIO)
        .args(&[
            "rehearse",
            "aws-access-key-compromise",
            "--scenario",
            "s.yaml",
            "--trigger",
            TRIGGER,
        ])
        .run();
    out.code(0);
    (out, dir)
}

fn read(out: &Output, file: &str) -> String {
    std::fs::read_to_string(out.incident().join(file)).unwrap()
}

fn json(out: &Output) -> Value {
    serde_json::from_str(&read(out, "incident.json")).unwrap()
}

/// `report ID` in the run's store, with `extra` arguments.
fn report(out: &Output, extra: &[&str]) -> Output {
    let id = out
        .incident()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let store = out.dir.join("incidents");
    let mut args = vec!["--store", store.to_str().unwrap(), "report", &id];
    args.extend_from_slice(extra);
    let (o, _d) = Test::new().args(&args).run();
    o
}

/// Every attribute `name="…"` of every `<tag …>` element that has `class`
/// containing `class`, in order.
fn elements<'a>(html: &'a str, tag: &str, class: &str) -> Vec<&'a str> {
    let open = format!("<{tag} class=\"");
    html.match_indices(&open)
        .map(|(i, _)| &html[i..i + html[i..].find('>').unwrap()])
        .filter(|e| {
            let classes = &e[open.len()..];
            classes[..classes.find('"').unwrap()]
                .split(' ')
                .any(|c| c == class)
        })
        .collect()
}

fn attr<'a>(element: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let start = element
        .find(&key)
        .unwrap_or_else(|| panic!("no `{name}` in {element}"))
        + key.len();
    &element[start..start + element[start..].find('"').unwrap()]
}

fn num(element: &str, name: &str) -> f64 {
    attr(element, name).parse().unwrap()
}

#[test]
fn the_postmortem_document_in_markdown() {
    let (out, _d) = rehearse_postmortem();
    insta::assert_snapshot!("postmortem_markdown", mask(&read(&out, "incident.md")));
}

#[test]
fn the_postmortem_document_in_html() {
    let (out, _d) = rehearse_postmortem();
    let html = read(&out, "incident.html");
    insta::assert_snapshot!("postmortem_html", mask(&html));
    // `report --format html` replays the journal into the same file.
    let again = report(&out, &["--format", "html"]);
    again.code(0);
    assert_eq!(again.stdout, html);
}

#[test]
fn each_section_is_filled_from_the_journal() {
    let (out, _d) = rehearse_postmortem();
    let j = json(&out);
    assert_eq!(j["trigger"], TRIGGER);
    assert_eq!(j["date"].as_str().unwrap().len(), 10);
    assert_eq!(j["slo_margin"], "4m 56s");
    let resolution: Vec<&str> = j["resolution"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        resolution,
        [
            "deactivate",
            "revoke_sessions",
            "revoke_role_sessions",
            "delete_old",
            "new_key",
            "store_key",
            "verify_key",
            "redeploy_ecs",
            "lambda_key_id",
            "lambda_secret",
            "kubernetes_secret",
            "kubernetes_restart",
            "verify_dead",
            "seal_sessions",
            "contain"
        ]
    );
    let pm = &j["postmortem"];
    assert_eq!(
        pm["root_cause"][0]["answer"],
        "Key was committed to a public gist"
    );
    assert_eq!(pm["went_well"][0]["by"], "alice");
    assert_eq!(pm["went_wrong"][0]["status"], "not answered yet");
    assert_eq!(
        pm["lucky"][0]["answer"],
        "The gist was found before the weekend"
    );
    assert_eq!(
        (pm["answered"].as_u64(), pm["unanswered"].as_u64()),
        (Some(4), Some(1))
    );
    let item = &pm["action_items"][0];
    assert_eq!(
        item["what"],
        "Pre-commit secret scanning in every repository"
    );
    assert_eq!(item["owner"], "carol");
    // `due: 14d` is a date two weeks after detection.
    let detected =
        chrono::DateTime::parse_from_rfc3339(j["detected_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        item["due"],
        (detected + chrono::Duration::days(14))
            .format("%Y-%m-%d")
            .to_string()
    );
    let people: Vec<String> = j["people"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["who"].as_str().unwrap(),
                p["did"].as_str().unwrap()
            )
        })
        .collect();
    assert!(people[0].starts_with("tester@") && people[0].ends_with("started the incident"));
    assert!(
        people.contains(&"carol answered `prevent`".to_string()),
        "{people:?}"
    );
    let wrong = j["observations"]["went_wrong"].to_string();
    assert!(
        wrong.contains("`deactivate` needed 3 attempts (rate_limited) and waited 2.0s in backoff"),
        "{wrong}"
    );
}

#[test]
fn a_run_nobody_answered_says_so_instead_of_leaving_empty_headings() {
    let (out, _d) = Test::new()
        .args(&["rehearse", "aws-access-key-compromise"])
        .run();
    out.code(0);
    let md = read(&out, "incident.md");
    assert!(
        md.contains("> **4 postmortem questions have no answer yet.**"),
        "{md}"
    );
    for question in [
        "How was AKIAIOSFODNN7EXAMPLE exposed (where was it committed, pasted or logged)? — *nobody has answered yet*",
        "What went well in this response? — *nobody has answered yet*",
        "What went wrong, or took longer than it should have? — *nobody has answered yet*",
        "Where did we get lucky (what could have made this much worse)? — *nobody has answered yet*",
        "| *nobody yet* |",
    ] {
        assert!(md.contains(question), "expected `{question}` in:\n{md}");
    }
    // Under every heading there is something before the next heading of
    // the same or a higher level (a bold line is a level-4 heading).
    let level = |l: &str| {
        if l.starts_with('#') {
            Some(l.chars().take_while(|c| *c == '#').count())
        } else if l.starts_with("**") && l.ends_with("**") {
            Some(4)
        } else {
            None
        }
    };
    let lines: Vec<&str> = md.lines().filter(|l| !l.trim().is_empty()).collect();
    for pair in lines.windows(2) {
        if let (Some(a), Some(b)) = (level(pair[0]), level(pair[1])) {
            assert!(b > a, "`{}` is empty in:\n{md}", pair[0]);
        }
    }
    assert!(!md.ends_with("##"), "{md}");
    let html = read(&out, "incident.html");
    assert!(html.contains("4 postmortem questions have no answer yet."));
    assert_eq!(html.matches("nobody has answered yet").count(), 4);
}

#[test]
fn the_timeline_picture_has_a_bar_per_attempt_and_the_three_lines_where_they_belong() {
    // A 10-second SLO, so the deadline falls on the axis: revocation needs
    // two attempts of 3 s with a 1 s wait between them, and an approval.
    let runbook = r#"
name: quick
slo: { revoke_within: 10s }
steps:
  - { id: revoke, phase: revoke, action: aws.deactivate_access_key, with: { user: u, access_key_id: AKIAIOSFODNN7EXAMPLE }, approval: { approvers: [lead] } }
  - { id: tell, phase: notify, action: slack.post_message, with: { channel: c, text: t } }
  - { id: ask, phase: review, action: manual.task, with: { prompt: "How?" } }
"#;
    let scenario = r#"
actions:
  aws.deactivate_access_key: { latency: 3s, faults: [ { attempts: 1, error: throttled, retry_after: 1s } ] }
  slack.post_message: { latency: 500ms }
manual:
  revoke: { after: 2s, by: lead }
  ask: { after: 1h, answer: "a paste", by: alice }
"#;
    let (out, _d) = Test::new()
        .file("rb.yaml", runbook)
        .file("s.yaml", scenario)
        .args(&["rehearse", "rb.yaml", "--scenario", "s.yaml"])
        .run();
    out.code(0);
    let html = read(&out, "incident.html");
    let j = json(&out);
    let chart = &j["chart"];

    // One bar per attempt the journal started, each on its step's lane.
    let started: Vec<(String, u64)> = read(&out, "journal.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["event"] == "step_started")
        .map(|e| {
            (
                e["step"].as_str().unwrap().to_string(),
                e["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    let bars = elements(&html, "rect", "bar");
    let drawn: Vec<(String, u64)> = bars
        .iter()
        .map(|b| {
            (
                attr(b, "data-step").to_string(),
                attr(b, "data-attempt").parse().unwrap(),
            )
        })
        .collect();
    assert_eq!(drawn.len(), started.len(), "{drawn:?}");
    for s in &started {
        assert!(drawn.contains(s), "no bar for {s:?} in {drawn:?}");
    }
    assert_eq!(started.iter().filter(|s| s.0 == "revoke").count(), 2);
    let class = |b: &str| attr(b, "class").to_string();
    let revoke: Vec<&&str> = bars
        .iter()
        .filter(|b| attr(b, "data-step") == "revoke")
        .collect();
    assert!(class(revoke[0]).contains("phase-revoke"));
    assert!(class(revoke[0]).contains("retried") && class(revoke[1]).contains("succeeded"));

    // The waits: the 1 s backoff between the attempts, and the approval.
    let waits = elements(&html, "line", "wait");
    let kinds: Vec<String> = waits.iter().map(|w| class(w)).collect();
    assert_eq!(kinds, ["wait approval", "wait retry"], "{waits:?}");
    let retry = waits[1];
    assert_eq!(
        num(retry, "x1"),
        num(revoke[0], "x") + num(revoke[0], "width")
    );
    assert_eq!(num(retry, "x2"), num(revoke[1], "x"));

    // The lines sit where their times fall on the axis.
    let (x0, w) = (
        chart["plot_x"].as_f64().unwrap(),
        chart["plot_width"].as_f64().unwrap(),
    );
    let (start, end) = (
        chart["start_ms"].as_f64().unwrap(),
        chart["end_ms"].as_f64().unwrap(),
    );
    let at = |ms: f64| ((x0 + (ms - start) / (end - start) * w) * 10.0).round() / 10.0;
    let ts = |k: &str| chrono::DateTime::parse_from_rfc3339(j[k].as_str().unwrap()).unwrap();
    let revoked_ms = (ts("revoked_at") - ts("detected_at")).num_milliseconds() as f64;
    assert_eq!(revoked_ms, 2_000.0 + 3_000.0 + 1_000.0 + 3_000.0);
    let markers = elements(&html, "line", "marker");
    let x_of = |kind: &str| {
        let m = markers
            .iter()
            .find(|m| attr(m, "data-marker") == kind)
            .unwrap_or_else(|| panic!("no `{kind}` line in {markers:?}"));
        assert_eq!(attr(m, "x1"), attr(m, "x2"), "vertical");
        num(m, "x1")
    };
    assert_eq!(markers.len(), 3);
    assert_eq!(x_of("detection"), at(0.0));
    assert_eq!(x_of("revocation"), at(revoked_ms));
    assert_eq!(x_of("deadline"), at(10_000.0));
    assert!(x_of("detection") < x_of("revocation") && x_of("revocation") < x_of("deadline"));
    // The revoke attempt that succeeded ends on the revocation line.
    assert_eq!(
        num(revoke[1], "x") + num(revoke[1], "width"),
        x_of("revocation")
    );
    // The human's hour is clipped at the end of the axis, and says when it ended.
    let ask = bars.iter().find(|b| attr(b, "data-step") == "ask").unwrap();
    assert_eq!(
        num(ask, "x") + num(ask, "width"),
        chart["plot_end"].as_f64().unwrap()
    );
    assert!(
        html.contains(">→ T+1h00m00.000s</text>"),
        "the clipped bar's end is labelled"
    );
}

#[test]
fn a_deadline_far_beyond_the_response_is_drawn_at_the_end_of_the_axis() {
    let (out, _d) = Test::new()
        .args(&["rehearse", "aws-access-key-compromise"])
        .run();
    out.code(0);
    let j = json(&out);
    let deadline = j["chart"]["markers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "deadline")
        .unwrap()
        .clone();
    assert_eq!(deadline["clipped"], true);
    assert_eq!(deadline["x"], j["chart"]["plot_end"]);
    assert_eq!(deadline["label"], "SLO deadline T+5m →");
}

#[test]
fn the_html_document_is_self_contained() {
    let (out, _d) = rehearse_postmortem();
    let html = read(&out, "incident.html");
    assert!(html.starts_with("<!doctype html>"));
    assert!(
        html.contains("<meta name=\"viewport\""),
        "readable on a phone"
    );
    assert!(html.contains("@media print"), "readable printed");
    for external in ["<script", "<link", "src=", "url(http", "@import"] {
        assert!(!html.contains(external), "`{external}` in the document");
    }
    let links: Vec<&str> = html
        .match_indices("http")
        .map(|(i, _)| &html[i..i + 30.min(html.len() - i)])
        .collect();
    assert!(
        links
            .iter()
            .all(|l| l.starts_with("http://www.w3.org/2000/svg")),
        "{links:?}"
    );
    // Text from the journal is escaped, never markup.
    let (out, _d) = Test::new()
        .args(&[
            "rehearse",
            "vault-token-compromise",
            "--trigger",
            "<script>alert(1)</script> & co",
        ])
        .run();
    out.code(0);
    let html = read(&out, "incident.html");
    assert!(!html.contains("<script>alert"), "unescaped");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
}

/// Debian's chromium, which `scripts/test` installs.
fn chromium() -> std::path::PathBuf {
    ["chromium", "chromium-browser"]
        .iter()
        .flat_map(|name| {
            std::env::var_os("PATH")
                .into_iter()
                .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                .map(move |dir| dir.join(name))
        })
        .find(|p| p.is_file())
        .expect("`chromium` is missing: run `scripts/test`, which installs Debian's chromium")
}

#[test]
fn a_headless_browser_draws_the_html_document() {
    let (out, _d) = rehearse_postmortem();
    let page = out.incident().join("incident.html");
    let profile = tempfile::tempdir().unwrap();
    let shot = profile.path().join("incident.png");
    let status = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!(
                "--user-data-dir={}",
                profile.path().join("profile").display()
            ),
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,2000",
            &format!("file://{}", page.display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("chromium runs");
    assert!(status.success(), "chromium: {status}");

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 2000));
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let colours: std::collections::HashSet<&[u8]> = pixels.iter().map(|p| &p[..3]).collect();
    let inked = pixels
        .iter()
        .filter(|p| p[..3].iter().any(|c| *c < 200))
        .count();
    assert!(
        colours.len() > 50,
        "{} colours: a blank page",
        colours.len()
    );
    assert!(
        inked * 50 > pixels.len(),
        "{inked} dark pixels of {}",
        pixels.len()
    );
    // The timeline picture was drawn: the revoke phase's red fills the bar
    // of the attempt that revoked the key.
    let revoke = [0xc8, 0x32, 0x3c];
    assert!(
        pixels.iter().filter(|p| p[..3] == revoke).count() > 100,
        "no revoke bar in the screenshot"
    );
    if std::env::var_os("QUENCH_UPDATE_SCREENSHOT").is_some() {
        let to = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/incident-report.png");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&shot, &to).unwrap();
    }
}

#[test]
fn a_teams_templates_replace_the_built_in_ones() {
    let (out, _d) = rehearse_postmortem();
    let md = report(&out, &[]);
    md.code(0);
    assert_eq!(md.stdout, read(&out, "incident.md"));

    // `report --template FILE`, for Markdown and for HTML (escaped).
    std::fs::write(
        out.dir.join("short.md.hbs"),
        "{{id}} revoked in {{time_to_revoke}} by {{#each people}}{{#if @first}}{{who}}{{/if}}{{/each}}\n",
    )
    .unwrap();
    std::fs::write(out.dir.join("short.html.hbs"), "<p>{{runbook_path}}</p>\n").unwrap();
    let file = |name: &str| out.dir.join(name).display().to_string();
    let short = report(&out, &["--template", &file("short.md.hbs")]);
    short.code(0);
    assert!(
        short.stdout.contains(" revoked in 3.4s by tester@"),
        "{}",
        short.stdout
    );
    let html = report(
        &out,
        &["--format", "html", "--template", &file("short.html.hbs")],
    );
    html.code(0);
    assert_eq!(
        html.stdout,
        "<p>&lt;built-in&gt;/aws-access-key-compromise.yaml</p>\n"
    );
    let json = report(
        &out,
        &["--format", "json", "--template", &file("short.md.hbs")],
    );
    json.code(2);
    assert!(
        json.stderr.contains("`--format json` has no template"),
        "{}",
        json.stderr
    );

    // A templates directory (`--templates`, `QUENCH_TEMPLATES`, or
    // `./templates`) restyles the documents an incident writes; what it
    // lacks comes from the built-in templates.
    let (out, _d) = Test::new()
        .file("templates/incident.md.hbs", "# {{title}} ({{status}})\n")
        .args(&["rehearse", "vault-token-compromise"])
        .run();
    out.code(0);
    assert_eq!(
        read(&out, "incident.md"),
        "# Compromised Vault token (succeeded)\n"
    );
    assert!(read(&out, "incident.html").contains("<svg class=\"chart\""));
    let (out, _d) = Test::new()
        .file("ours/incident.md.hbs", "ours: {{runbook}}\n")
        .env("QUENCH_TEMPLATES", "ours")
        .args(&["rehearse", "vault-token-compromise"])
        .run();
    out.code(0);
    assert_eq!(read(&out, "incident.md"), "ours: vault-token-compromise\n");

    // A broken template is refused before anything happens.
    let (out, _d) = Test::new()
        .file("ours/incident.html.hbs", "{{#each steps}}unclosed\n")
        .args(&["--templates", "ours", "rehearse", "vault-token-compromise"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("the template `ours/incident.html.hbs` is not valid handlebars"),
        "{}",
        out.stderr
    );
    assert!(!out.dir.join("incidents").exists(), "nothing was started");
}

/// Issue 7: the HTML page's sections are partials a team can replace one at
/// a time; the rest of the page stays the built-in one.
#[test]
fn a_team_replaces_one_section_of_a_document() {
    let (out, _d) = Test::new()
        .file(
            "templates/html/style.hbs",
            "  body { background: #123456; }\n",
        )
        .args(&["rehearse", "vault-token-compromise"])
        .run();
    out.code(0);
    let html = read(&out, "incident.html");
    assert!(
        html.contains("<style>\n  body { background: #123456; }\n</style>"),
        "{html}"
    );
    assert!(
        html.contains("<svg class=\"chart\""),
        "the other sections stay"
    );
    assert!(
        !html.contains("print-color-adjust"),
        "the built-in style is gone"
    );

    // The same for a section of the Markdown document.
    let (out, _d) = Test::new()
        .file(
            "templates/md/people.hbs",
            "## Who\n\n{{#each people}}- {{who}}\n{{/each}}\n",
        )
        .args(&["rehearse", "vault-token-compromise"])
        .run();
    out.code(0);
    let md = read(&out, "incident.md");
    assert!(md.contains("\n## Who\n\n- "), "{md}");
    assert!(!md.contains("## People"), "{md}");
    assert!(md.contains("## Postmortem"), "the other sections stay");

    // A broken section is refused before anything happens, by its path.
    let (out, _d) = Test::new()
        .file("ours/html/people.hbs", "{{#each people}}unclosed\n")
        .args(&["--templates", "ours", "rehearse", "vault-token-compromise"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("the template `ours/html/people.hbs` is not valid handlebars"),
        "{}",
        out.stderr
    );
    assert!(!out.dir.join("incidents").exists(), "nothing was started");
}

/// `quench validate` checks a team's templates too: `run` refuses a broken
/// one before anything happens, so it is found before the incident.
#[test]
fn validate_checks_a_teams_templates() {
    let runbook =
        "name: t\nsteps:\n  - { id: a, phase: review, action: manual.task, with: { prompt: x } }\n";
    let (out, _d) = Test::new()
        .file("rb.yaml", runbook)
        .file(
            "templates/md/people.hbs",
            "## Who\n{{#each people}}- {{who}}\n{{/each}}\n",
        )
        .args(&["validate", "rb.yaml"])
        .run();
    out.code(0);
    assert_eq!(out.stdout, "ok    rb.yaml\nok    templates\n");

    let (out, _d) = Test::new()
        .file("rb.yaml", runbook)
        .file("ours/html/people.hbs", "{{#each people}}unclosed\n")
        .args(&["--templates", "ours", "validate", "rb.yaml"])
        .run();
    out.code(2);
    assert_eq!(out.stdout, "ok    rb.yaml\nerror ours\n");
    assert!(
        out.stderr
            .contains("the template `ours/html/people.hbs` is not valid handlebars"),
        "{}",
        out.stderr
    );

    // Without a templates directory, nothing more is said.
    let (out, _d) = Test::new()
        .file("rb.yaml", runbook)
        .args(&["validate", "rb.yaml"])
        .run();
    out.code(0);
    assert_eq!(out.stdout, "ok    rb.yaml\n");
}

#[test]
fn the_trigger_goes_through_the_redactor() {
    let leaked = "ghp_TriggerLeak0123456789abcdefghijklmn";
    let (out, _d) = Test::new()
        .env("LEAKED", leaked)
        .args(&[
            "rehearse",
            "github-token-compromise",
            "--secret",
            "leaked_token=env:LEAKED",
            "--trigger",
            &format!("alice pasted {leaked} in #general"),
        ])
        .run();
    out.code(0);
    for (path, text) in out.artifacts() {
        assert!(
            !text.contains(leaked),
            "{} holds the secret",
            path.display()
        );
    }
    assert!(
        read(&out, "incident.md")
            .contains("set off by: alice pasted [REDACTED leaked_token sha256:")
    );
}

#[test]
fn an_unknown_postmortem_section_is_pointed_at() {
    let (out, _d) = Test::new()
        .file(
            "rb.yaml",
            "name: t\nsteps:\n  - { id: a, phase: review, action: manual.task, with: { prompt: x, section: went_badly } }\n",
        )
        .args(&["validate", "rb.yaml"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("`went_badly` is not a postmortem section")
            && out.stderr.contains("rb.yaml:3:78")
            && out.stderr.contains("did you mean `went_well`?"),
        "{}",
        out.stderr
    );
}

/// A runbook's document step hands its Markdown to the next step: here a
/// GitHub issue, on a local server that follows GitHub's REST API.
#[test]
fn the_document_step_publishes_the_document_as_a_github_issue() {
    let leaked = "ghp_PublishedLeak0123456789abcdefghijkl";
    let runbook = format!(
        r#"
name: publish
secrets: {{ leaked_token: {{}} }}
steps:
  - {{ id: revoke, phase: revoke, action: github.revoke_credentials, with: {{ credentials: ["{{{{secrets.leaked_token}}}}"] }} }}
  - {{ id: document, phase: document, needs: [revoke], action: incident.document, with: {{ note: "Published to {REPO} by the runbook." }} }}
  - id: publish
    phase: document
    needs: [document]
    action: github.create_issue
    with:
      repo: {REPO}
      title: "Incident {{{{incident.id}}}}"
      body: "{{{{steps.document.outputs.markdown}}}}"
"#
    );
    let api = FakeGithub::start(leaked);
    let (out, _d) = Test::new()
        .file("rb.yaml", &runbook)
        .env("GITHUB_API_URL", &api.url())
        .env("GITHUB_TOKEN", ENGINE_TOKEN)
        .env("LEAKED", leaked)
        .args(&["run", "rb.yaml", "--secret", "leaked_token=env:LEAKED"])
        .run();
    out.code(0);
    let issues = api.issues();
    assert_eq!(issues.len(), 1);
    let body = issues[0]["body"].as_str().unwrap();
    let id = out
        .incident()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(body.starts_with(&format!("# {id}: publish")), "{body}");
    assert!(
        body.contains("Published to acme/deploy by the runbook."),
        "{body}"
    );
    assert!(
        body.contains("| revoke | `revoke` revoke | `github.revoke_credentials` | succeeded |"),
        "{body}"
    );
    assert!(body.contains("`document` attempt 1 started"), "{body}");
    assert!(!body.contains(leaked));
    // The journal keeps the document's size, not a second copy of it.
    let journal = read(&out, "journal.jsonl");
    assert!(
        journal.contains("\"markdown\":\"[the incident document, "),
        "{journal}"
    );
    assert!(!journal.contains("## Time to revoke"));
    let md = read(&out, "incident.md");
    assert!(
        md.contains(&format!("{}/{REPO}/issues/1", api.url())) || md.contains("`publish`"),
        "{md}"
    );
}

/// handlebars' compile time grows with the square of a template's length:
/// a runbook string or a team template too long to compile in good time is
/// refused with its size, before anything is compiled.
#[test]
fn templates_too_long_to_compile_are_refused() {
    let prompt = format!(
        "{{{{#if incident.id}}}}{}{{{{/if}}}}",
        "x".repeat(70 * 1024)
    );
    let runbook = format!(
        "name: t\nsteps:\n  - id: a\n    phase: review\n    action: manual.task\n    with:\n      prompt: \"{prompt}\"\n"
    );
    let (out, _d) = Test::new()
        .file("rb.yaml", &runbook)
        .args(&["validate", "rb.yaml"])
        .run();
    out.code(2);
    assert!(
        out.stderr
            .contains("over the 65536 a runbook's string may have"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--> rb.yaml:7:"), "{}", out.stderr);

    let runbook =
        "name: t\nsteps:\n  - { id: a, phase: review, action: manual.task, with: { prompt: x } }\n";
    let (out, _d) = Test::new()
        .file("rb.yaml", runbook)
        .file("templates/md/people.hbs", &"y".repeat(300 * 1024))
        .args(&["validate", "rb.yaml"])
        .run();
    out.code(2);
    assert!(
        out.stderr.contains(
            "the template `templates/md/people.hbs` is 307200 bytes, over the 262144 bytes a document template may have"
        ),
        "{}",
        out.stderr
    );
}
