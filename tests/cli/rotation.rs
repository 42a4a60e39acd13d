//! Rotations, live: the AWS rotation against moto's IAM (behind a peer
//! that sets when keys were last used), OpenBao for the store, and `tick
//! --now` walking the days forward: the quiet window, then the deletion a
//! week after the old key went off.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::Value;

use crate::aws::{iam, keys, rt};
use crate::support::Test;
use crate::support::fake_api::FakeApi;
use crate::support::fake_slack::{BOT_TOKEN, CHANNEL, CHANNEL_NAME, FakeSlack};
use crate::support::last_used::LastUsedIam;
use crate::support::peers::{self, BAO_ROOT_TOKEN, Peer};

/// Creates `user` with `n` access keys; returns their ids.
fn user_with_keys(moto: &Peer, user: &str, n: usize) -> Vec<String> {
    let iam = iam(moto);
    rt().block_on(async {
        iam.create_user().user_name(user).send().await.unwrap();
        let mut ids = Vec::new();
        for _ in 0..n {
            let out = iam
                .create_access_key()
                .user_name(user)
                .send()
                .await
                .unwrap();
            ids.push(out.access_key().unwrap().access_key_id().to_string());
        }
        ids
    })
}

/// The account moto answers GetCallerIdentity with, signed with this key.
fn caller_with(moto: &Peer, id: &str, secret: &str) -> Option<String> {
    use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
    let conf = aws_sdk_sts::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(Credentials::new(id, secret, None, None, "consumer"))
        .build();
    rt().block_on(async {
        aws_sdk_sts::Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
            .ok()
            .and_then(|o| o.account)
    })
}

fn rotation_test(moto: &Peer, vault: &Peer, iam_peer: &LastUsedIam) -> Test {
    Test::new()
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.url)
        .env("AWS_ENDPOINT_URL_IAM", &iam_peer.url())
        .env("VAULT_ADDR", &vault.url)
        .env("VAULT_TOKEN", BAO_ROOT_TOKEN)
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `quench tick --now at` on the store of the first run.
fn tick(at: DateTime<Utc>, store: &std::path::Path, t: Test) -> crate::support::Output {
    let (out, _d) = t
        .args(&[
            "--store",
            store.to_str().unwrap(),
            "tick",
            "--now",
            &rfc3339(at),
        ])
        .run();
    out
}

#[test]
fn an_aws_key_is_rotated_without_downtime_and_the_old_one_retired_after_it_goes_quiet() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let iam_peer = LastUsedIam::start(&moto.url);
    let old = user_with_keys(&moto, "ci-bot", 1).remove(0);
    let start = Utc::now();
    iam_peer.used(&old, start - Duration::hours(2), "s3", "us-east-1");

    let (out, _d) = rotation_test(&moto, &vault, &iam_peer)
        .args(&["run", "aws-access-key-rotation", "--var", "iam_user=ci-bot"])
        .run();
    out.code(0);
    assert!(
        out.stdout
            .contains("rotation succeeded: waiting: `watch_old`"),
        "{}",
        out.stdout
    );
    let inc = out.incident();
    let store = out.dir.join("incidents");

    // Both keys work while the window runs; consumers read the new one.
    let now_keys = keys(&moto, "ci-bot");
    assert_eq!(now_keys.len(), 2, "{now_keys:?}");
    assert!(now_keys.iter().all(|(_, s)| s == "Active"), "{now_keys:?}");
    let (new, secret) = crate::aws::stored_key(&vault);
    assert_ne!(new, old);
    assert_eq!(
        caller_with(&moto, &new, &secret).as_deref(),
        Some("123456789012")
    );
    let md = std::fs::read_to_string(inc.join("incident.md")).unwrap();
    assert!(
        md.contains("(rotation)") && md.contains("## Quiet window"),
        "{md}"
    );
    assert!(
        md.contains("`watch_old` Watch the old key go quiet: **watching**, a window of 24h"),
        "{md}"
    );

    // Before the window is up, nothing looks again.
    tick(
        start + Duration::hours(3),
        &store,
        rotation_test(&moto, &vault, &iam_peer),
    )
    .code(0);
    assert_eq!(iam_peer.asked().len(), 1, "looked once, in the run");

    // A consumer that was missed used the old key two hours after the
    // switch: when the window is up the rotation says who, and waits a whole
    // window from that use.
    // IAM keeps last use to the second.
    let missed = DateTime::from_timestamp((start + Duration::hours(2)).timestamp(), 0).unwrap();
    iam_peer.used(&old, missed, "ec2", "eu-west-1");
    tick(
        start + Duration::hours(25),
        &store,
        rotation_test(&moto, &vault, &iam_peer),
    )
    .code(0);
    assert!(keys(&moto, "ci-bot").iter().all(|(_, s)| s == "Active"));
    let md = std::fs::read_to_string(inc.join("incident.md")).unwrap();
    assert!(
        md.contains(&format!(
            "is still in use: last by `ec2` in `eu-west-1` at {}",
            rfc3339(missed)
        )),
        "{md}"
    );

    // A day after that use: quiet, so the old key goes off.
    let quiet = missed + Duration::hours(24) + Duration::minutes(1);
    tick(quiet, &store, rotation_test(&moto, &vault, &iam_peer)).code(0);
    let after = keys(&moto, "ci-bot");
    assert!(
        after.contains(&(old.clone(), "Inactive".into())),
        "{after:?}"
    );
    assert!(after.contains(&(new.clone(), "Active".into())), "{after:?}");
    let md = std::fs::read_to_string(inc.join("incident.md")).unwrap();
    assert!(md.contains("| State | **done** |"), "{md}");
    assert!(md.contains("looked 3 time(s)"), "{md}");

    // Deleted a week after it went off, not a week after the rotation began.
    tick(
        start + Duration::days(7) + Duration::hours(6),
        &store,
        rotation_test(&moto, &vault, &iam_peer),
    )
    .code(0);
    assert_eq!(
        keys(&moto, "ci-bot").len(),
        2,
        "not a week since it went off"
    );
    tick(
        quiet + Duration::days(7) + Duration::minutes(1),
        &store,
        rotation_test(&moto, &vault, &iam_peer),
    )
    .code(0);
    assert_eq!(keys(&moto, "ci-bot"), vec![(new, "Active".to_string())]);
    let md = std::fs::read_to_string(inc.join("incident.md")).unwrap();
    assert!(
        md.contains(
            "| revoke | `delete_old` Delete the old key | `aws.delete_access_key` | succeeded |"
        ),
        "{md}"
    );
    // The page says rotation, as the Markdown does, with no compromise SLO.
    let html = std::fs::read_to_string(inc.join("incident.html")).unwrap();
    assert!(html.contains("(rotation)</h1>"), "{html}");
    assert!(html.contains("<h2>Quiet window</h2>"), "{html}");
    assert!(
        !html.contains("Time to revoke") && !html.contains("<b>SLO</b>"),
        "{html}"
    );

    // The new secret is in no file, line or message quench wrote.
    for (path, text) in out.artifacts() {
        assert!(
            !text.contains(&secret),
            "{} holds the new secret",
            path.display()
        );
    }
    assert!(!out.stdout.contains(&secret) && !out.stderr.contains(&secret));
    assert!(iam_peer.asked().iter().all(|k| *k == old));
}

#[test]
fn a_user_with_two_keys_is_refused_before_a_key_is_made() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let iam_peer = LastUsedIam::start(&moto.url);
    let before = user_with_keys(&moto, "ci-bot", 2);
    let (out, _d) = rotation_test(&moto, &vault, &iam_peer)
        .args(&["run", "aws-access-key-rotation", "--var", "iam_user=ci-bot"])
        .run();
    out.code(1);
    let after: Vec<String> = keys(&moto, "ci-bot").into_iter().map(|(k, _)| k).collect();
    assert_eq!(after.len(), 2);
    assert!(before.iter().all(|k| after.contains(k)));
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(md.contains("already has 2 access keys"), "{md}");
    assert!(md.contains("IAM's limit"), "{md}");
    assert!(md.contains("| State | **failed at `new_key`** |"), "{md}");
}

#[test]
fn a_rotation_told_to_fail_while_the_old_key_is_used_fails_and_says_by_whom() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let iam_peer = LastUsedIam::start(&moto.url);
    let old = user_with_keys(&moto, "ci-bot", 1).remove(0);
    let (out, _d) = rotation_test(&moto, &vault, &iam_peer)
        .args(&[
            "run",
            "aws-access-key-rotation",
            "--var",
            "iam_user=ci-bot",
            "--var",
            "while_used=fail",
        ])
        .run();
    out.code(0);
    iam_peer.used(
        &old,
        Utc::now() + Duration::minutes(5),
        "lambda",
        "ap-south-1",
    );
    let store = out.dir.join("incidents");
    let t = tick(
        Utc::now() + Duration::hours(25),
        &store,
        rotation_test(&moto, &vault, &iam_peer),
    );
    t.code(1);
    assert!(keys(&moto, "ci-bot").contains(&(old, "Active".into())));
    let md = std::fs::read_to_string(out.incident().join("incident.md")).unwrap();
    assert!(md.contains("last by `lambda` in `ap-south-1`"), "{md}");
    assert!(md.contains("failed at `watch_old`"), "{md}");
}

/// `quench rotations` as JSON, as of `at`.
fn schedule_status(at: DateTime<Utc>, store: &std::path::Path, t: Test) -> Value {
    let (out, _d) = t
        .args(&[
            "--store",
            store.to_str().unwrap(),
            "rotations",
            "--format",
            "json",
            "--now",
            &rfc3339(at),
        ])
        .run();
    out.code(0);
    serde_json::from_str(&out.stdout).unwrap()
}

#[test]
fn a_scheduled_rotation_is_started_by_tick_when_due_and_listed_with_its_next_due_date() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let iam_peer = LastUsedIam::start(&moto.url);
    let first = user_with_keys(&moto, "ci-bot", 1).remove(0);
    let scheduled = |t: Test| {
        t.file(
            "quench.toml",
            "[[rotations]]\nname = \"ci-bot\"\nrunbook = \"aws-access-key-rotation\"\nevery = \"90d\"\ninputs = { iam_user = \"ci-bot\" }\n",
        )
    };
    let store = tempfile::tempdir().unwrap();
    let store = store.path().join("incidents");
    let start = Utc::now();

    let listed = schedule_status(
        start,
        &store,
        scheduled(rotation_test(&moto, &vault, &iam_peer)),
    );
    assert_eq!(listed[0]["outcome"], "never run", "{listed}");
    assert_eq!(listed[0]["overdue"], false);

    let t = tick(
        start,
        &store,
        scheduled(rotation_test(&moto, &vault, &iam_peer)),
    );
    t.code(0);
    assert!(
        t.stdout.contains("rotation succeeded: waiting"),
        "{}",
        t.stdout
    );
    assert_eq!(keys(&moto, "ci-bot").len(), 2);
    // A second tick does not start it again while it runs.
    tick(
        start + Duration::hours(1),
        &store,
        scheduled(rotation_test(&moto, &vault, &iam_peer)),
    )
    .code(0);
    assert_eq!(keys(&moto, "ci-bot").len(), 2);

    let listed = schedule_status(
        start + Duration::hours(1),
        &store,
        scheduled(rotation_test(&moto, &vault, &iam_peer)),
    );
    let row = &listed[0];
    assert!(
        row["outcome"].as_str().unwrap().starts_with("waiting"),
        "{row}"
    );
    assert!(
        row["next_due"]
            .as_str()
            .unwrap()
            .starts_with(&rfc3339(start + Duration::days(90))[..10]),
        "{row}"
    );

    // The window passes, the old key goes off, and a week later it is deleted.
    tick(
        start + Duration::hours(25),
        &store,
        scheduled(rotation_test(&moto, &vault, &iam_peer)),
    )
    .code(0);
    tick(
        start + Duration::days(9),
        &store,
        scheduled(rotation_test(&moto, &vault, &iam_peer)),
    )
    .code(0);
    let after = keys(&moto, "ci-bot");
    assert_eq!(after.len(), 1, "{after:?}");
    assert_ne!(after[0].0, first);

    // Ninety days on it is overdue, and the next tick rotates again.
    let later = start + Duration::days(91);
    let listed = schedule_status(
        later,
        &store,
        scheduled(rotation_test(&moto, &vault, &iam_peer)),
    );
    assert_eq!(listed[0]["overdue"], true, "{listed}");
    assert_eq!(listed[0]["outcome"], "done", "{listed}");
    tick(
        later,
        &store,
        scheduled(rotation_test(&moto, &vault, &iam_peer)),
    )
    .code(0);
    let again = keys(&moto, "ci-bot");
    assert_eq!(again.len(), 2, "{again:?}");
    assert_eq!(
        std::fs::read_dir(&store)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().join("journal.jsonl").is_file())
            .count(),
        2
    );
}

/// `[[rotations]]` for `ci-bot`, its consumers redeployed by `hook` and
/// its reports posted to the Slack peer's incident channel.
fn scheduled_with(t: Test, hook: &str, slack: &FakeSlack) -> Test {
    t.file(
        "quench.toml",
        &format!(
            "[[rotations]]\nname = \"ci-bot\"\nrunbook = \"aws-access-key-rotation\"\nevery = \"90d\"\nchannel = \"#{CHANNEL_NAME}\"\ninputs = {{ iam_user = \"ci-bot\", redeploy_hook = \"{hook}\" }}\n"
        ),
    )
    .env("SLACK_API_URL", &slack.api_url())
    .env("SLACK_BOT_TOKEN", BOT_TOKEN)
}

/// The journals in `store`: one per incident.
fn journals(store: &std::path::Path) -> Vec<Vec<Value>> {
    std::fs::read_dir(store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("journal.jsonl").is_file())
        .map(|p| crate::support::journal_in(&p))
        .collect()
}

#[test]
fn a_failed_rotation_is_retried_after_its_backoff_as_the_same_incident_and_reported_in_slack() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let iam_peer = LastUsedIam::start(&moto.url);
    let (api, slack) = (FakeApi::start(), FakeSlack::start(&[]));
    let old = user_with_keys(&moto, "ci-bot", 1).remove(0);
    let start = Utc::now();
    iam_peer.used(&old, start - Duration::hours(2), "s3", "us-east-1");
    // The consumers' deploy service is down for the first run's attempts.
    for _ in 0..3 {
        api.answer("/redeploy", 503, &[], "{\"error\": \"deploys paused\"}");
    }
    let hook = format!("{}/redeploy", api.url());
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("incidents");
    let test = || scheduled_with(rotation_test(&moto, &vault, &iam_peer), &hook, &slack);

    let t = tick(start, &store, test());
    t.code(1);
    assert!(
        t.stdout.contains("rotation failed: failed at `redeploy`"),
        "{}",
        t.stdout
    );
    let (new, secret) = crate::aws::stored_key(&vault);
    assert_eq!(keys(&moto, "ci-bot").len(), 2);
    let posted = slack.messages();
    assert_eq!(posted.len(), 1, "{posted:?}");
    assert_eq!(posted[0].channel, CHANNEL);
    assert!(
        posted[0].text.contains("Rotation *ci-bot*")
            && posted[0].text.contains("`redeploy` failed: POST")
            && posted[0].text.contains("503")
            && posted[0].text.contains("`quench tick` retries it at"),
        "{}",
        posted[0].text
    );
    let row = &schedule_status(start + Duration::minutes(30), &store, test())[0];
    assert_eq!(row["outcome"], "failed at `redeploy`", "{row}");
    assert_eq!(row["attempts"], 1, "{row}");
    assert_eq!(row["overdue"], true, "{row}");
    assert_eq!(row["gave_up"], false, "{row}");
    let retry_at = row["next_retry"].as_str().unwrap().to_string();
    let retry_at = DateTime::parse_from_rfc3339(&retry_at)
        .unwrap()
        .with_timezone(&Utc);
    assert!(
        retry_at > start + Duration::minutes(59) && retry_at < start + Duration::minutes(61),
        "{row}"
    );

    // Before the backoff is over, nothing runs and nothing is said.
    tick(start + Duration::minutes(30), &store, test()).code(0);
    assert_eq!(api.seen().len(), 3);
    assert_eq!(slack.messages().len(), 1);

    // After it, the same incident goes on from the failed step: no new key.
    let t = tick(start + Duration::minutes(61), &store, test());
    t.code(0);
    assert!(
        t.stdout
            .contains("rotation succeeded: waiting: `watch_old`"),
        "{}",
        t.stdout
    );
    assert_eq!(api.seen().len(), 4);
    let all = journals(&store);
    assert_eq!(all.len(), 1, "one incident, not a new one");
    let journal = &all[0];
    let retried: Vec<&Value> = journal
        .iter()
        .filter(|r| r["event"] == "incident_retried")
        .collect();
    assert_eq!(retried.len(), 1, "{retried:?}");
    assert_eq!(retried[0]["retry"], 1);
    assert_eq!(retried[0]["steps"], serde_json::json!(["redeploy"]));
    for done in ["old_key", "new_key", "store_vault", "verify_key"] {
        assert_eq!(
            crate::verify::events(journal, "step_succeeded", done).len(),
            1,
            "`{done}` ran once"
        );
    }
    let keys_now = keys(&moto, "ci-bot");
    assert_eq!(keys_now.len(), 2, "{keys_now:?}");
    let posted = slack.messages();
    assert_eq!(posted.len(), 2, "{posted:?}");
    assert!(
        posted[1]
            .text
            .contains("retry 1 of 3 succeeded; it is waiting: `watch_old`"),
        "{}",
        posted[1].text
    );
    let row = &schedule_status(start + Duration::minutes(62), &store, test())[0];
    assert_eq!(row["attempts"], 2, "{row}");
    assert_eq!(row["next_retry"], Value::Null, "{row}");
    assert!(
        row["outcome"].as_str().unwrap().starts_with("waiting"),
        "{row}"
    );

    // The window from the switch (the retry) passes: the old key goes off.
    let t = tick(start + Duration::hours(26), &store, test());
    t.code(0);
    let after = keys(&moto, "ci-bot");
    assert!(
        after.contains(&(old, "Inactive".into())),
        "{after:?}\n{}\n{}",
        t.stdout,
        t.stderr
    );
    assert!(after.contains(&(new, "Active".into())), "{after:?}");
    let inc = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("journal.jsonl").is_file())
        .unwrap();
    let md = std::fs::read_to_string(inc.join("incident.md")).unwrap();
    assert!(md.contains("| State | **done** |"), "{md}");
    assert!(
        md.contains("retry 1 by ") && md.contains("`redeploy` failed and runs again"),
        "{md}"
    );
    assert_eq!(
        slack.messages().len(),
        2,
        "a success after the retry is not news"
    );

    for (path, text) in crate::support::files_under(store_dir.path()) {
        assert!(
            !text.contains(&secret),
            "{} holds the new secret",
            path.display()
        );
    }
    for m in slack.messages() {
        assert!(!m.text.contains(&secret), "{}", m.text);
    }
}

#[test]
fn a_rotation_that_keeps_failing_is_given_up_on_after_three_retries_and_not_retried_again() {
    let (moto, vault) = (peers::moto(), peers::openbao());
    let iam_peer = LastUsedIam::start(&moto.url);
    let (api, slack) = (FakeApi::start(), FakeSlack::start(&[]));
    user_with_keys(&moto, "ci-bot", 1);
    let start = Utc::now();
    // No such deploy service: every attempt is refused for good.
    let hook = format!("{}/no-such-deploy", api.url());
    let store_dir = tempfile::tempdir().unwrap();
    let store = store_dir.path().join("incidents");
    let test = || scheduled_with(rotation_test(&moto, &vault, &iam_peer), &hook, &slack);

    tick(start, &store, test()).code(1);
    // Retries 1 h, 4 h and 16 h after each failure; a tick before one is due
    // does nothing.
    let mut at = start;
    for (retry, backoff) in [(1, 1), (2, 4), (3, 16)] {
        tick(
            at + Duration::hours(backoff) - Duration::minutes(5),
            &store,
            test(),
        )
        .code(0);
        assert_eq!(api.seen().len(), retry, "not retried before {backoff}h");
        at = at + Duration::hours(backoff) + Duration::minutes(1);
        tick(at, &store, test()).code(1);
        assert_eq!(api.seen().len(), retry + 1, "retry {retry}");
    }
    let posted: Vec<String> = slack.messages().into_iter().map(|m| m.text).collect();
    assert_eq!(posted.len(), 4, "{posted:#?}");
    assert!(
        posted[0].contains("failed: `redeploy` failed"),
        "{}",
        posted[0]
    );
    assert!(posted[1].contains("retry 1 of 3 failed"), "{}", posted[1]);
    assert!(posted[2].contains("retry 2 of 3 failed"), "{}", posted[2]);
    assert!(
        posted[3].contains("retry 3 of 3 failed")
            && posted[3].contains("Given up after 4 attempts")
            && !posted[3].contains("retries it at"),
        "{}",
        posted[3]
    );

    // Given up: not again, whenever tick runs, and listed so.
    tick(start + Duration::days(2), &store, test()).code(0);
    // A week on, the old key's deletion is skipped: it was never turned off.
    let t = tick(start + Duration::days(100), &store, test());
    assert!(
        t.stdout
            .contains("`delete_old` skipped: `deactivate_old` did not succeed"),
        "{}",
        t.stdout
    );
    assert_eq!(api.seen().len(), 4);
    assert_eq!(slack.messages().len(), 4);
    assert_eq!(journals(&store).len(), 1);
    let row = &schedule_status(start + Duration::days(100), &store, test())[0];
    assert_eq!(row["gave_up"], true, "{row}");
    assert_eq!(row["attempts"], 4, "{row}");
    assert_eq!(row["overdue"], true, "{row}");
    assert_eq!(row["next_retry"], Value::Null, "{row}");
    let (out, _d) = test()
        .args(&["--store", store.to_str().unwrap(), "rotations"])
        .run();
    out.code(0);
    assert!(
        out.stdout.contains("OVERDUE") && out.stdout.contains("given up"),
        "{}",
        out.stdout
    );
}
