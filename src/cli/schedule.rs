//! What cron runs and what it reports: `tick` (follow-ups, inboxes, scheduled rotations
//! and their retries), `rotations` and `audit`.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use super::*;

pub(super) fn tick(cli: &Cli, store: Store, now: Option<&str>, yes: bool) -> Result<u8, Error> {
    let templates = load_templates(cli.templates.as_deref())?;
    let now = parse_now(now)?;
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let schedules = app::rotations::schedules(&config.rotations)?;
    let rt = runtime(false)?;
    let before = app::rotations::status(&store, &schedules, now);
    let r = Cron {
        runbooks: &cli.runbooks,
        store: &store,
        config: &config,
        rt: &rt,
        yes,
        templates: &templates,
    };
    let mut worst = 0u8;
    let mut ids = store.list();
    ids.reverse();
    for id in ids {
        let code = match tick_one(&r, &id, now) {
            Ok(code) => code,
            Err(e @ Error::Invalid(_)) => return Err(e),
            Err(e) => {
                eprintln!("error: {id}: {e}");
                1
            }
        };
        worst = worst.max(code);
    }
    for due in app::rotations::status(&store, &schedules, now)
        .into_iter()
        .filter(|s| s.due || s.retry_due)
    {
        let Some(schedule) = schedules.iter().find(|s| s.name == due.name) else {
            continue;
        };
        let code = match start_or_retry(&r, schedule, due.retry_due, now) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: rotation `{}`: {e}", schedule.name);
                e.exit_code().max(1)
            }
        };
        worst = worst.max(code);
    }
    report_rotations(&r, &schedules, &before, now);
    Ok(worst)
}

/// Starts `schedule`'s rotation if it has come due as of `now`, or with
/// `retry` retries its failed last run once its backoff is over. Under
/// the schedule's lock, its status read again: one `tick` does it, and
/// another leaves it alone.
pub(super) fn start_or_retry(
    r: &Cron,
    schedule: &app::rotations::Schedule,
    retry: bool,
    now: DateTime<Utc>,
) -> Result<u8, Error> {
    let Some(_lock) = rotation_lock(r.store, schedule)? else {
        return Ok(0);
    };
    let status = app::rotations::status(r.store, std::slice::from_ref(schedule), now);
    let Some(status) = status.into_iter().next() else {
        return Ok(0);
    };
    match status.last_incident {
        Some(id) if retry && status.retry_due => retry_rotation(r, id, now),
        _ if !retry && status.due => {
            let why = format!(
                "scheduled rotation `{}` (every {})",
                schedule.name, schedule.every_text
            );
            run_rotation(r, schedule, now, why)
        }
        _ => Ok(0),
    }
}

/// Retries the failed last run of a schedule, incident `id`: its failed
/// steps run again, nothing that succeeded does. Left alone while another
/// process holds the incident.
pub(super) fn retry_rotation(r: &Cron, id: String, now: DateTime<Utc>) -> Result<u8, Error> {
    let Some(_incident) = lock_or_skip(r.store, &id, &id) else {
        return Ok(0);
    };
    let records = r
        .store
        .journal(&id)
        .map_err(|e| Error::Runtime(e.to_string()))?;
    let started = app::incidents::started(&id, &records)?;
    let (rb, shown) = app::incidents::unedited_runbook(&r.store.dir(&id), &started, &records)?;
    let live = r.rt.block_on(app::incidents::live(r.config, &rb))?;
    let start = Start::Retry { prior: records };
    let brief = Brief {
        invoked: Some(engine::Clock::at(now.max(Utc::now()))),
        inputs: started.inputs,
        detected_at: Some(started.detected_at),
        assume_yes: r.yes,
        ..Brief::new(start, (rb, shown), live)
    };
    r.rt.block_on(execute(incident::Execution {
        existing: Some(id),
        ..execution(r.store.clone(), r.templates.clone(), brief)
    }))
}

/// Says what this `tick` did to each scheduled rotation that failed, was
/// retried or was given up on: printed, and posted to its `channel`
/// through the Slack provider when it names one.
pub(super) fn report_rotations(
    r: &Cron,
    schedules: &[app::rotations::Schedule],
    before: &[app::rotations::Status],
    now: DateTime<Utc>,
) {
    let after = app::rotations::status(r.store, schedules, now);
    let mut slack = None;
    for (schedule, status) in schedules.iter().zip(&after) {
        let was = before.iter().find(|b| b.name == status.name);
        let Some(text) = app::rotations::report(was, status) else {
            continue;
        };
        println!("{text}");
        let Some(channel) = &schedule.channel else {
            continue;
        };
        let built =
            slack.get_or_insert_with(|| providers::slack::Slack::build(&r.config.providers.slack));
        let posted = match built {
            Ok(s) => match s.no_token() {
                None => {
                    r.rt.block_on(s.post(channel, &text, None, None))
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                Some(why) => Err(why.to_string()),
            },
            Err(e) => Err(e.clone()),
        };
        if let Err(e) = posted {
            eprintln!(
                "error: rotation `{}`: failed to tell `{channel}`: {e}",
                schedule.name
            );
        }
    }
}

/// Starts `schedule`'s rotation now, whether or not it is due, unless
/// another process is starting it: `why` says what started it.
pub(super) fn begin_rotation(
    r: &Cron,
    schedule: &app::rotations::Schedule,
    now: DateTime<Utc>,
    why: String,
) -> Result<u8, Error> {
    let Some(_lock) = rotation_lock(r.store, schedule)? else {
        return Ok(0);
    };
    run_rotation(r, schedule, now, why)
}

/// The schedule's own lock: one starter at a time.
pub(super) fn rotation_lock(
    store: &Store,
    schedule: &app::rotations::Schedule,
) -> Result<Option<crate::store::IncidentLock>, Error> {
    let lock_id = format!("rotation-{}", schedule.name);
    crate::private::create_dir_all(&store.dir(&lock_id)).map_err(|e| {
        Error::Runtime(format!(
            "failed to make `{}`: {e}",
            store.dir(&lock_id).display()
        ))
    })?;
    Ok(lock_or_skip(
        store,
        &lock_id,
        &format!("rotation `{}`", schedule.name),
    ))
}

/// The lock of `id`, or `None` while another process holds it: `shown` is
/// then skipped, and said so.
fn lock_or_skip(store: &Store, id: &str, shown: &str) -> Option<crate::store::IncidentLock> {
    store
        .lock(id)
        .inspect_err(|e| eprintln!("{shown}: skipped: {e}"))
        .ok()
}

/// Runs `schedule`'s runbook as a new live incident, its schedule's lock held.
pub(super) fn run_rotation(
    r: &Cron,
    schedule: &app::rotations::Schedule,
    now: DateTime<Utc>,
    why: String,
) -> Result<u8, Error> {
    let Cron {
        runbooks,
        store,
        config,
        rt,
        yes,
        templates,
    } = *r;
    let (rb, path) = load_runbook(runbooks, &schedule.runbook)?;
    let vars: Vec<String> = schedule
        .inputs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let inputs = resolve_inputs(&rb, &vars, InputMode::Run)?;
    let live = rt.block_on(app::incidents::live(config, &rb))?;
    let brief = Brief {
        invoked: Some(engine::Clock::at(now.max(Utc::now()))),
        trigger: Some(why),
        inputs,
        assume_yes: yes,
        ..Brief::new(Start::Fresh, (rb, path), live)
    };
    rt.block_on(execute(execution(store.clone(), templates.clone(), brief)))
}

/// `quench rotations`: every schedule, as a table or JSON.
pub(super) fn rotations(
    config: Option<&Path>,
    store: &Store,
    format: ListFormat,
    now: Option<&str>,
) -> Result<u8, Error> {
    let now = parse_now(now)?;
    let config = Config::load(config).map_err(|e| Error::Usage(e.to_string()))?;
    let schedules = app::rotations::schedules(&config.rotations)?;
    let rows = app::rotations::status(store, &schedules, now);
    if let ListFormat::Json = format {
        print_json(&rows)?;
        return Ok(0);
    }
    if rows.is_empty() {
        println!("no rotations are scheduled: add `[[rotations]]` to quench.toml");
        return Ok(0);
    }
    println!(
        "{:<24} {:<26} {:<12} {:<26} {:<26} {:<8} {:<8} {:<26} outcome",
        "rotation", "runbook", "every", "last run", "next due", "overdue", "attempts", "next retry"
    );
    for r in rows {
        let retry = match (&r.next_retry, r.gave_up) {
            (Some(at), _) => at.as_str(),
            (None, true) => "given up",
            (None, false) => "—",
        };
        println!(
            "{:<24} {:<26} {:<12} {:<26} {:<26} {:<8} {:<8} {:<26} {}",
            r.name,
            r.runbook,
            r.every,
            r.last_run.as_deref().unwrap_or("—"),
            r.next_due,
            if r.overdue { "OVERDUE" } else { "" },
            r.attempts,
            retry,
            r.outcome
        );
    }
    Ok(0)
}

/// `quench audit [--rotate [--yes]]`: the review, then the rotations it
/// calls for when asked (`rotate` is `Some(yes)`).
pub(super) fn audit_command(
    cli: &Cli,
    store: &Store,
    format: AuditFormat,
    now: Option<&str>,
    rotate: Option<bool>,
) -> Result<u8, Error> {
    let now = parse_now(now)?;
    let config = Config::load(cli.config.as_deref()).map_err(|e| Error::Usage(e.to_string()))?;
    let rt = runtime(false)?;
    let review = audit(&config, store, format, now, &rt)?;
    if let Some(yes) = rotate {
        let templates = load_templates(cli.templates.as_deref())?;
        let rotation = Cron {
            runbooks: &cli.runbooks,
            store,
            config: &config,
            rt: &rt,
            yes,
            templates: &templates,
        };
        rotate_overdue(&rotation, &review, now)?;
    }
    Ok(review.exit_code())
}

/// `quench audit`: the review, printed; its exit code says what it found.
pub(super) fn audit(
    config: &Config,
    store: &Store,
    format: AuditFormat,
    now: DateTime<Utc>,
    rt: &tokio::runtime::Runtime,
) -> Result<app::audit::Audit, Error> {
    let rotating = app::rotations::running_inputs(store);
    let review = rt.block_on(app::audit::review(config, &rotating, now))?;
    match format {
        AuditFormat::Table => print!("{}", review.table()),
        AuditFormat::Md => print!("{}", review.markdown()),
        AuditFormat::Json => print_json(&review)?,
    }
    for s in review.sources.iter().filter(|s| s.state == "failed") {
        eprintln!(
            "error: failed to read `{}`: {}",
            s.source,
            s.detail.as_deref().unwrap_or("")
        );
    }
    Ok(review)
}

/// What the incidents cron starts (`tick`, `audit --rotate`) run with.
pub(super) struct Cron<'a> {
    runbooks: &'a Path,
    store: &'a Store,
    config: &'a Config,
    rt: &'a tokio::runtime::Runtime,
    yes: bool,
    templates: &'a Arc<document::Templates>,
}

/// `quench audit --rotate`: for each AWS key the review found too old, the
/// schedule that rotates its user's key, started once a human approves.
pub(super) fn rotate_overdue(
    r: &Cron,
    review: &app::audit::Audit,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let schedules = app::rotations::schedules(&r.config.rotations)?;
    let asks = r.yes || std::io::stdin().is_terminal();
    for c in review
        .credentials
        .iter()
        .filter(|c| c.source == "aws" && c.flags.iter().any(|f| f.starts_with("older than")))
    {
        let Some(schedule) = schedules
            .iter()
            .find(|s| s.inputs.get("iam_user") == Some(&c.owner))
        else {
            eprintln!(
                "`{}` of `{}`: no `[[rotations]]` names iam_user = \"{}\"; not rotated",
                c.id, c.owner, c.owner
            );
            continue;
        };
        let question = format!(
            "rotate `{}` of `{}` now with rotation `{}`?",
            c.id, c.owner, schedule.name
        );
        if !asks {
            eprintln!("{question} not without a terminal: pass `--yes` to approve");
            continue;
        }
        if !r.yes && !approved(&question)? {
            continue;
        }
        let why = format!("quench audit: `{}` is {}", c.id, c.flags.join(", "));
        let code = begin_rotation(r, schedule, now, why)?;
        eprintln!(
            "rotation `{}` started for `{}`: exit {code}",
            schedule.name, c.id
        );
    }
    Ok(())
}

/// Runs the follow-ups of incident `id` that are due at `now`, if any, and
/// if no other process holds the incident.
pub(super) fn tick_one(r: &Cron, id: &str, now: DateTime<Utc>) -> Result<u8, Error> {
    let store = r.store;
    let read = || store.journal(id).map_err(|e| Error::Runtime(e.to_string()));
    let inbox = app::tasks::has_inbox(store, id);
    if app::incidents::due(&read()?, now).is_empty() && !inbox {
        return Ok(0);
    }
    // One runner per incident: a `resume` or another `tick` holding the
    // incident is left alone, and the journal is read again under the lock.
    let Some(_lock) = lock_or_skip(store, id, id) else {
        return Ok(0);
    };
    app::tasks::record_inbox(store, id, &crate::secret::Redactor::new(), r.templates)?;
    let records = read()?;
    let due = app::incidents::due(&records, now);
    if due.is_empty() {
        return Ok(0);
    }
    let started = app::incidents::started(id, &records)?;
    let (mut rb, shown) = app::incidents::stored_runbook(&store.dir(id))?;
    app::incidents::gate(&mut rb, &records);
    let (executor, humans) = match started.mode {
        journal::Mode::Rehearsal | journal::Mode::Drill => app::incidents::simulated(),
        journal::Mode::Live => {
            let used = rb
                .steps
                .iter()
                .filter(|s| due.contains(&s.id.to_string()))
                .map(|s| s.action.provider)
                .collect();
            let live = r.rt.block_on(Live::build(r.config, &used));
            (Executor::Live(Box::new(live)), Humans::Nobody)
        }
    };
    let start = Start::FollowUps {
        prior: records,
        now,
    };
    let brief = Brief {
        // As of `--now`: what is due then is run and journaled then.
        invoked: Some(engine::Clock::at(now.max(Utc::now()))),
        inputs: started.inputs,
        humans,
        assume_yes: r.yes,
        ..Brief::new(start, (rb, shown), executor)
    };
    r.rt.block_on(execute(incident::Execution {
        existing: Some(id.to_string()),
        ..execution(store.clone(), r.templates.clone(), brief)
    }))
}
