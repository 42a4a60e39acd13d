//! Taking over incidents whose runner died. With a database store, every
//! replica looks, every third of a lease, for unfinished incidents whose
//! lease has expired, takes the lease (one replica wins each) and resumes
//! the incident by the rules of `quench resume`: recorded successes never
//! run again, an idempotent step in flight runs again, and a non-idempotent
//! one waits for a human. With Slack, the replica that takes over keeps
//! the incident's status message in the channel it was started from and
//! asks there, with buttons naming the step, whether to run it again
//! (declined: it is held as an open task, for `/quench done`); without
//! Slack it is held at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::humans::SlackHumans;
use super::{Server, done, followers, log};
use crate::app::{self, Error};
use crate::engine::sim::Sim;
use crate::engine::{Brief, Executor, Humans, Start};
use crate::incident::{self, Execution};
use crate::store::Store;

/// Looks for orphaned incidents until shutdown.
pub(super) async fn watch(server: Arc<Server>) {
    let Store::Postgres(pg) = &server.settings.store else {
        return;
    };
    let every = (pg.lease_duration() / 3).max(Duration::from_millis(100));
    // Incidents this replica could not resume (a secret only a human can
    // give): tried once, not at every look.
    let given_up: Arc<Mutex<HashSet<String>>> = Arc::default();
    loop {
        tokio::time::sleep(every).await;
        // Stopping: nothing new is taken over. (Read, not awaited: the
        // signal's sender may be gone, which is no stop.)
        if server.shutdown.borrow().is_some() {
            return;
        }
        let orphaned = match pg.orphaned().await {
            Ok(ids) => ids,
            Err(e) => {
                log(&format!("failed to look for orphaned incidents: {e}"));
                continue;
            }
        };
        for id in orphaned {
            if given_up.lock().expect("given up lock").contains(&id)
                || !server
                    .running
                    .lock()
                    .expect("running lock")
                    .insert(id.clone())
            {
                continue;
            }
            let (s, given_up) = (server.clone(), given_up.clone());
            server.incidents.lock().expect("incidents lock").spawn_on(
                async move {
                    if let Err(why) = resume(&s, &id).await {
                        log(&format!("{id}: not taken over: {why}"));
                        given_up.lock().expect("given up lock").insert(id.clone());
                    }
                    s.running.lock().expect("running lock").remove(&id);
                },
                &server.settings.incidents,
            );
        }
    }
}

/// Takes incident `id` over and runs it to its end. Another replica that
/// took it first is no failure.
async fn resume(server: &Server, id: &str) -> Result<(), String> {
    let templates = server.settings.templates.clone();
    let taken = server
        .blocking(id, move |store, id| {
            app::incidents::resumable(store, id, &templates)
        })
        .await
        .map_err(|e| e.to_string())?;
    let r = match taken {
        Ok(r) => r,
        Err(Error::Conflict(_)) => return Ok(()),
        Err(e) => return Err(e.to_string()),
    };
    log(&format!("{id}: taking over from a runner that stopped"));
    let config = &server.settings.config;
    let rehearsal = r.started.mode.simulated();
    let secrets = app::inputs::resolve_secrets(&r.runbook, &[], rehearsal, config)
        .map_err(|e| format!("{e}: resume it with `quench resume {id} --secret ...`"))?;
    let executor = if rehearsal {
        let scenario = r.scenario().map_err(|e| e.to_string())?;
        Executor::Sim(Sim::new(Arc::new(scenario)))
    } else {
        app::incidents::live(config, &r.runbook)
            .await
            .map_err(|e| e.to_string())?
    };
    let channel = channel_of(server, id).await;
    let (subscribers, status) = followers(server, channel.as_deref(), &r.records);
    // Nobody is at a replica that takes over: a step that may not run
    // twice waits for a human, rehearsal or not, asked where the status
    // message is kept.
    let humans = match channel {
        Some(channel) => Humans::Remote(Arc::new(SlackHumans {
            inbox: Some(server.settings.store.clone()),
            drill: r.started.mode == crate::journal::Mode::Drill,
            ..SlackHumans::new(server, &channel, id, &r.runbook)
        })),
        None => Humans::Nobody,
    };
    let _lease = r.lock;
    let start = Start::Resume {
        prior: r.records,
        repaired: r.repaired,
    };
    let done = incident::execute(Execution {
        store: server.settings.store.clone(),
        id: None,
        existing: Some(id.to_string()),
        brief: Brief {
            inputs: r.started.inputs,
            secrets,
            detected_at: Some(r.started.detected_at),
            humans,
            ..Brief::new(start, (r.runbook, r.runbook_path), executor)
        },
        display: None,
        subscribers,
        shutdown: server.shutdown.clone(),
        scenario_text: None,
        templates: server.settings.templates.clone(),
    })
    .await
    .map_err(|e| e.to_string());
    if let Some(status) = status {
        let _ = status.await;
    }
    let done = done?;
    log(&format!(
        "{} {} (taken over)",
        done.id,
        done.finished.outcome.name().replace('_', " ")
    ));
    Ok(())
}

/// Where incident `id` keeps its status message when this replica can post
/// one: the channel its command came from, as the shared audit log says,
/// else the hooks' channel (a detector's incident, or one started at a
/// terminal).
async fn channel_of(server: &Server, id: &str) -> Option<String> {
    if !server.settings.slack.has_bot_token() {
        return None;
    }
    let started = server.blocking(id, done::started_in).await.ok().flatten();
    started
        .or_else(|| server.settings.config.hooks.channel.clone())
        .filter(|c| !c.is_empty())
}
