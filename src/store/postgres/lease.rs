//! One runner per incident across machines: a lease row with an owner, an
//! epoch and an expiry by the database's clock, renewed every third of its
//! length. Every journal commit checks, in its own transaction, that this
//! process still holds the lease at its epoch: a runner whose lease was
//! taken (it stalled past the expiry, another replica took over) fails
//! its next flush and so never performs the side effect that would follow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use tokio::runtime::Handle;

use super::{db_reason, io, spawn_for};
use crate::journal::{Commit, Event, Outcome, Record};
use crate::store::LockError;

/// The leases this process holds.
pub struct Leases {
    pool: Pool,
    pub duration: Duration,
    owner: String,
    held: Mutex<HashMap<String, Arc<Held>>>,
}

/// One lease held: the epoch that fences every commit.
#[derive(Debug)]
pub struct Held {
    id: String,
    owner: String,
    epoch: i64,
    /// A renewal found it taken: the next commit fails anyway.
    lost: AtomicBool,
}

impl Leases {
    pub fn new(pool: Pool, duration: Duration) -> Self {
        Self {
            pool,
            duration,
            owner: super::owner(),
            held: Mutex::default(),
        }
    }

    fn ms(&self) -> i64 {
        self.duration.as_millis().min(i64::MAX as u128) as i64
    }

    /// Takes the lease of incident `id` if nobody holds it or its holder's
    /// has expired, one epoch up.
    pub async fn claim(self: Arc<Self>, id: String) -> Result<Arc<Held>, LockError> {
        let fail = |reason: String| LockError::Io {
            id: id.clone(),
            reason,
        };
        let c = self.pool.get().await.map_err(|e| fail(e.to_string()))?;
        let row = c
            .query_opt(
                "INSERT INTO quench_leases (incident, owner, epoch, expires_at) \
                 VALUES ($1, $2, 1, clock_timestamp() + $3::bigint * interval '1 millisecond') \
                 ON CONFLICT (incident) DO UPDATE \
                 SET owner = EXCLUDED.owner, epoch = quench_leases.epoch + 1, \
                     expires_at = EXCLUDED.expires_at \
                 WHERE quench_leases.expires_at <= clock_timestamp() \
                 RETURNING epoch",
                &[&id, &self.owner, &self.ms()],
            )
            .await
            .map_err(|e| fail(db_reason(&e)))?;
        let Some(row) = row else {
            let holder = c
                .query_opt(
                    "SELECT owner, epoch, \
                     extract(epoch FROM expires_at - clock_timestamp())::float8 \
                     FROM quench_leases WHERE incident = $1",
                    &[&id],
                )
                .await
                .map_err(|e| fail(db_reason(&e)))?
                .map(|r| {
                    let (owner, epoch, left): (String, i64, f64) = (r.get(0), r.get(1), r.get(2));
                    format!("{owner}, epoch {epoch}, lease for {left:.1} s more")
                })
                .unwrap_or_default();
            return Err(LockError::Held { id, holder });
        };
        let held = Arc::new(Held {
            id: id.clone(),
            owner: self.owner.clone(),
            epoch: row.get(0),
            lost: AtomicBool::new(false),
        });
        self.held
            .lock()
            .expect("leases lock")
            .insert(id, held.clone());
        Ok(held)
    }

    pub fn held(&self, id: &str) -> Option<Arc<Held>> {
        self.held.lock().expect("leases lock").get(id).cloned()
    }

    /// Extends the lease; `false` once another runner has taken it.
    async fn renew(&self, held: &Held) -> Result<bool, String> {
        let c = self.pool.get().await.map_err(|e| e.to_string())?;
        let n = c
            .execute(
                "UPDATE quench_leases SET expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond' \
                 WHERE incident = $1 AND owner = $2 AND epoch = $3 AND expires_at > clock_timestamp()",
                &[&held.id, &held.owner, &held.epoch, &self.ms()],
            )
            .await
            .map_err(|e| db_reason(&e))?;
        Ok(n == 1)
    }

    /// Gives the lease up at once, so that another replica need not wait
    /// for it to expire.
    async fn release(&self, held: &Held) -> Result<(), String> {
        let c = self.pool.get().await.map_err(|e| e.to_string())?;
        c.execute(
            "UPDATE quench_leases SET expires_at = clock_timestamp() \
             WHERE incident = $1 AND owner = $2 AND epoch = $3",
            &[&held.id, &held.owner, &held.epoch],
        )
        .await
        .map_err(|e| db_reason(&e))?;
        Ok(())
    }
}

/// A lease held by this process, renewed until dropped, then released.
pub struct Lease {
    held: Arc<Held>,
    leases: Arc<Leases>,
    renewal: tokio::task::JoinHandle<()>,
    rt: Handle,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease").field("held", &self.held).finish()
    }
}

impl Lease {
    pub(super) fn hold(held: Arc<Held>, leases: Arc<Leases>, rt: Handle) -> Self {
        let renewal = rt.spawn(renew(held.clone(), leases.clone()));
        Self {
            held,
            leases,
            renewal,
            rt,
        }
    }

    pub fn epoch(&self) -> i64 {
        self.held.epoch
    }
}

/// Renews every third of the lease; a renewal the database cannot answer
/// is tried again at the next, until the lease would have expired.
async fn renew(held: Arc<Held>, leases: Arc<Leases>) {
    let every = leases.duration / 3;
    loop {
        tokio::time::sleep(every).await;
        match leases.renew(&held).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(
                    "lost the lease of incident `{}` to another runner: it stops before its next step",
                    held.id
                );
                held.lost.store(true, Ordering::SeqCst);
                return;
            }
            Err(e) => tracing::warn!("failed to renew the lease of `{}`: {e}", held.id),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewal.abort();
        self.leases
            .held
            .lock()
            .expect("leases lock")
            .remove(&self.held.id);
        let (held, leases) = (self.held.clone(), self.leases.clone());
        let released = spawn_for(&self.rt, async move { leases.release(&held).await });
        // Not released, it expires by itself.
        if let Ok(Err(e)) = released.recv_timeout(Duration::from_secs(2)) {
            tracing::warn!("failed to release the lease of `{}`: {e}", self.held.id);
        }
    }
}

/// Commits a journal's records under its lease.
pub struct Committer {
    pub(super) held: Arc<Held>,
    pub(super) pool: Pool,
    pub(super) rt: Handle,
}

/// How long a commit is retried while the database cannot be reached.
const RETRY_FOR: Duration = Duration::from_secs(10);

impl Commit for Committer {
    fn commit(&mut self, records: &[Record]) -> std::io::Result<()> {
        if self.held.lost.load(Ordering::SeqCst) {
            return Err(fenced(&self.held));
        }
        let rows = records
            .iter()
            .map(|r| Ok((r.seq as i64, serde_json::to_string(r)?)))
            .collect::<serde_json::Result<Vec<_>>>()
            .map_err(std::io::Error::other)?;
        let finished = records.iter().any(
            |r| matches!(&r.event, Event::IncidentFinished(f) if f.outcome != Outcome::Interrupted),
        );
        let (held, pool) = (self.held.clone(), self.pool.clone());
        let commit = async move { commit_retrying(&pool, &held, &rows, finished).await };
        spawn_for(&self.rt, commit).recv().map_err(io)?
    }
}

/// Retries a commit that failed for want of the database (a restart, a
/// dropped connection) for [`RETRY_FOR`]; a fenced one fails at once. A
/// retry that finds its rows already there (the first try committed, its
/// answer was lost) has succeeded.
async fn commit_retrying(
    pool: &Pool,
    held: &Held,
    rows: &[(i64, String)],
    finished: bool,
) -> std::io::Result<()> {
    let deadline = Instant::now() + RETRY_FOR;
    let mut first = true;
    loop {
        match commit_once(pool, held, rows, finished, !first).await {
            Ok(()) => return Ok(()),
            Err(Failed::Fenced) => return Err(fenced(held)),
            Err(Failed::Database(reason)) if Instant::now() >= deadline => {
                return Err(io(format!("failed to commit to the store: {reason}")));
            }
            Err(Failed::Database(reason)) => {
                tracing::warn!("journal commit of `{}` failed, retrying: {reason}", held.id);
                first = false;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

enum Failed {
    Fenced,
    Database(String),
}

async fn commit_once(
    pool: &Pool,
    held: &Held,
    rows: &[(i64, String)],
    finished: bool,
    retry: bool,
) -> Result<(), Failed> {
    let db = |e: tokio_postgres::Error| Failed::Database(db_reason(&e));
    let mut c = pool
        .get()
        .await
        .map_err(|e| Failed::Database(e.to_string()))?;
    let tx = c.transaction().await.map_err(db)?;
    // FOR SHARE: a claim by another runner waits for this commit, and then
    // reads every record it made.
    let holds = tx
        .query_opt(
            "SELECT 1 FROM quench_leases WHERE incident = $1 AND owner = $2 AND epoch = $3 \
             AND expires_at > clock_timestamp() FOR SHARE",
            &[&held.id, &held.owner, &held.epoch],
        )
        .await
        .map_err(db)?;
    if holds.is_none() {
        held.lost.store(true, Ordering::SeqCst);
        return Err(Failed::Fenced);
    }
    let (seqs, lines): (Vec<i64>, Vec<String>) = rows.iter().cloned().unzip();
    if retry {
        let there: i64 = tx
            .query_one(
                "SELECT count(*) FROM quench_journal WHERE incident = $1 AND seq = ANY($2)",
                &[&held.id, &seqs],
            )
            .await
            .map_err(db)?
            .get(0);
        if there == seqs.len() as i64 {
            return Ok(());
        }
    }
    tx.execute(
        "INSERT INTO quench_journal (incident, seq, record) \
         SELECT $1, s, r FROM unnest($2::bigint[], $3::text[]) AS t (s, r)",
        &[&held.id, &seqs, &lines],
    )
    .await
    .map_err(db)?;
    if finished {
        tx.execute(
            "UPDATE quench_incidents SET finished = true WHERE id = $1",
            &[&held.id],
        )
        .await
        .map_err(db)?;
    }
    tx.commit().await.map_err(db)
}

fn fenced(held: &Held) -> std::io::Error {
    io(format!(
        "this runner no longer holds the lease of incident `{}` (epoch {}): another runner took it over",
        held.id, held.epoch
    ))
}
