//! The PostgreSQL store, for several `serve` replicas: journals (one row
//! per record), runbook and scenario copies, documents, and a lease per
//! incident that fences every journal commit (`lease`).
//!
//! Its connections live on a runtime of its own, so that the journal (a
//! synchronous writer, flushed from inside the engine's tasks and from
//! plain threads) can wait for a commit as it waits for `fdatasync`,
//! whatever runtime, paused or not, the incident runs on.

mod connect;
mod lease;
mod schema;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

pub use connect::{DEFAULT_LEASE, OpenError, Settings, is_url};
pub use lease::Lease;

use super::if_found;
use crate::journal::{self, ReadError, Record};
use lease::Leases;

/// The documents an incident's directory holds that are kept in the
/// database.
const DOCUMENTS: &[&str] = &["incident.md", "incident.json", "incident.html"];

pub struct PgStore {
    /// Dropped without waiting: its tasks are the store's own.
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool,
    shown: String,
    /// This process's working copies of the incidents it reads or runs.
    scratch: tempfile::TempDir,
    leases: Arc<Leases>,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("shown", &self.shown)
            .finish()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl PgStore {
    /// Connects, checks the schema and migrates it.
    pub fn open(url: &str, settings: &Settings) -> Result<Self, OpenError> {
        let (config, shown) = connect::config(url, settings)?;
        let connect = |reason: String| OpenError::Connect {
            shown: shown.clone(),
            reason,
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("quench-store")
            .enable_all()
            .build()
            .map_err(|e| connect(e.to_string()))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| connect(e.to_string()))?;
        let scratch = tempfile::Builder::new()
            .prefix("quench-store-")
            .tempdir()
            .map_err(|e| connect(format!("failed to make a working directory: {e}")))?;
        let store = Self {
            rt: Some(rt),
            pool: pool.clone(),
            leases: Arc::new(Leases::new(pool.clone(), settings.lease)),
            shown: shown.clone(),
            scratch,
        };
        let migrated = store.block(async move {
            let mut client = pool.get().await.map_err(|e| connect_reason(&e))?;
            schema::migrate(&mut client)
                .await
                .map_err(|e| format!("schema: {}", db_reason(&e)))
        });
        match migrated {
            Ok(schema::Migrated::Current) => Ok(store),
            Ok(schema::Migrated::Newer(found)) => Err(OpenError::NewerSchema {
                shown,
                found,
                known: schema::VERSION,
            }),
            Err(reason) if reason.starts_with("schema: ") => Err(OpenError::Schema {
                shown,
                reason: reason["schema: ".len()..].to_string(),
            }),
            Err(reason) => Err(connect(reason)),
        }
    }

    pub fn shown(&self) -> &str {
        &self.shown
    }

    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    pub fn lease_duration(&self) -> Duration {
        self.leases.duration
    }

    /// Runs `fut` on the store's runtime and waits for it, from any thread,
    /// in a runtime or not: as a file write waits for the disk.
    fn block<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        spawn_for(self.rt().handle(), fut)
            .recv()
            .expect("the store's runtime runs until the store is dropped")
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt
            .as_ref()
            .expect("the runtime lives as long as the store")
    }

    /// Runs `fut` on the store's runtime, for an async caller.
    pub async fn run<T: Send + 'static>(&self, fut: impl Future<Output = T> + Send + 'static) -> T {
        self.rt()
            .spawn(fut)
            .await
            .expect("store tasks do not panic")
    }

    /// Runs `f` with one of the pool's connections on the store's runtime,
    /// and waits for it.
    fn with_client<T, F, Fut>(&self, f: F) -> std::io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(Object) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send,
    {
        let pool = self.pool.clone();
        self.block(async move { f(pool.get().await.map_err(io)?).await.map_err(io) })
    }

    /// The first column of the rows `sql` selects, with `args` as its
    /// parameters: a task for the store's runtime.
    fn column(
        &self,
        sql: &'static str,
        args: Vec<String>,
    ) -> impl Future<Output = std::io::Result<Vec<String>>> + Send + 'static {
        let pool = self.pool.clone();
        async move {
            let c = pool.get().await.map_err(io)?;
            let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a as _).collect();
            let rows = c.query(sql, &params).await.map_err(io)?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        }
    }

    pub fn taken(&self, id: &str) -> std::io::Result<bool> {
        let id = id.to_string();
        self.with_client(move |c| async move {
            let row = c
                .query_opt("SELECT 1 FROM quench_incidents WHERE id = $1", &[&id])
                .await?;
            Ok(row.is_some())
        })
    }

    /// Whether `key` (a signed request, a delivery) is seen for the first
    /// time by any replica. Keys older than an hour, beyond any signature's
    /// freshness, are forgotten.
    pub fn first_time(&self, key: &str) -> std::io::Result<bool> {
        let key = key.to_string();
        self.with_client(move |c| async move {
            c.execute(
                "DELETE FROM quench_replays WHERE seen_at < now() - interval '1 hour'",
                &[],
            )
            .await?;
            let n = c
                .execute(
                    "INSERT INTO quench_replays (key) VALUES ($1) ON CONFLICT DO NOTHING",
                    &[&key],
                )
                .await?;
            Ok(n == 1)
        })
    }

    /// Takes hook delivery `delivery` of the credential `fingerprint` for
    /// incident `id`: `None` when this replica is the first, else the
    /// incident another replica started for it.
    pub fn take_delivery(
        &self,
        delivery: &str,
        fingerprint: &str,
        id: &str,
    ) -> std::io::Result<Option<String>> {
        let [delivery, fingerprint, id] = [delivery, fingerprint, id].map(str::to_string);
        self.with_client(move |c| async move {
            let taken = c
                .execute(
                    "INSERT INTO quench_deliveries (delivery, fingerprint, incident) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&delivery, &fingerprint, &id],
                )
                .await?;
            if taken == 1 {
                return Ok(None);
            }
            let row = c
                .query_one(
                    "SELECT incident FROM quench_deliveries WHERE delivery = $1 AND fingerprint = $2",
                    &[&delivery, &fingerprint],
                )
                .await?;
            Ok(Some(row.get(0)))
        })
    }

    /// Appends entries to audit log `log` (`chatops`, `hooks`), together.
    pub fn append_audit(&self, log: &str, entries: Vec<String>) -> std::io::Result<()> {
        let log = log.to_string();
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            for entry in &entries {
                tx.execute(
                    "INSERT INTO quench_audit (log, entry) VALUES ($1, $2)",
                    &[&log, entry],
                )
                .await?;
            }
            tx.commit().await
        })
    }

    /// Audit log `log`'s entries that hold `needle`, oldest first.
    pub fn audit(&self, log: &str, needle: &str) -> std::io::Result<Vec<String>> {
        self.block(self.column(
            "SELECT entry FROM quench_audit WHERE log = $1 AND strpos(entry, $2) > 0 ORDER BY id",
            vec![log.to_string(), needle.to_string()],
        ))
    }

    /// Adds a line to incident `id`'s inbox, committed when it returns.
    pub fn push_inbox(&self, id: &str, line: String) -> std::io::Result<()> {
        let id = id.to_string();
        self.with_client(move |c| async move {
            c.execute(
                "INSERT INTO quench_inbox (incident, line) VALUES ($1, $2)",
                &[&id, &line],
            )
            .await?;
            Ok(())
        })
    }

    /// Incident `id`'s inbox, oldest first, each line with its number.
    pub fn inbox(&self, id: &str) -> std::io::Result<Vec<(i64, String)>> {
        let id = id.to_string();
        self.with_client(move |c| async move {
            let rows = c
                .query(
                    "SELECT id, line FROM quench_inbox WHERE incident = $1 ORDER BY id",
                    &[&id],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// Deletes incident `id`'s inbox lines up to number `upto`, journaled.
    pub fn clear_inbox(&self, id: &str, upto: i64) -> std::io::Result<()> {
        let id = id.to_string();
        self.with_client(move |c| async move {
            c.execute(
                "DELETE FROM quench_inbox WHERE incident = $1 AND id <= $2",
                &[&id, &upto],
            )
            .await?;
            Ok(())
        })
    }

    pub fn create(&self, id: &str) -> std::io::Result<PathBuf> {
        let owned = id.to_string();
        let created = self.with_client(move |c| async move {
            c.execute(
                "INSERT INTO quench_incidents (id) VALUES ($1) ON CONFLICT DO NOTHING",
                &[&owned],
            )
            .await
        })?;
        if created == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("incident `{id}` exists"),
            ));
        }
        let dir = self.scratch().join(id);
        crate::private::create_dir(&dir)?;
        Ok(dir)
    }

    /// Begun incidents (with a first record), newest first.
    pub fn list(&self) -> std::io::Result<Vec<String>> {
        self.block(self.column(
            "SELECT id FROM quench_incidents i WHERE EXISTS \
             (SELECT 1 FROM quench_journal j WHERE j.incident = i.id) ORDER BY id DESC",
            Vec::new(),
        ))
    }

    /// The journal's lines, in order.
    fn lines(&self, id: &str) -> std::io::Result<Vec<String>> {
        self.block(self.column(
            "SELECT record FROM quench_journal WHERE incident = $1 ORDER BY seq",
            vec![id.to_string()],
        ))
    }

    pub fn journal(&self, id: &str) -> Result<Vec<Record>, ReadError> {
        let shown = format!("{}#{id}", self.shown);
        let lines = self.lines(id).map_err(|e| ReadError::Io {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        journal::parse(&shown, &(lines.join("\n") + "\n"))
    }

    /// Writes incident `id`'s working copy: its runbook and scenario
    /// copies, its journal as committed, its documents. `None` when it has
    /// not begun.
    pub fn fetch(&self, id: &str) -> std::io::Result<Option<PathBuf>> {
        let owned = id.to_string();
        type Copies = (Option<String>, Option<String>, Vec<(String, Vec<u8>)>);
        let copies: Option<Copies> = self.with_client(move |c| async move {
            let Some(row) = c
                .query_opt(
                    "SELECT runbook, scenario FROM quench_incidents WHERE id = $1",
                    &[&owned],
                )
                .await?
            else {
                return Ok(None);
            };
            let docs = c
                .query(
                    "SELECT name, body FROM quench_documents WHERE incident = $1",
                    &[&owned],
                )
                .await?;
            let docs = docs.iter().map(|r| (r.get(0), r.get(1))).collect();
            Ok(Some((row.get(0), row.get(1), docs)))
        })?;
        let Some((runbook, scenario, docs)) = copies else {
            return Ok(None);
        };
        let lines = self.lines(id)?;
        if lines.is_empty() {
            return Ok(None);
        }
        let dir = self.scratch().join(id);
        crate::private::create_dir_all(&dir)?;
        let write = |name: &str, bytes: &[u8]| crate::private::write(&dir.join(name), bytes);
        if let Some(text) = runbook {
            write("runbook.yaml", text.as_bytes())?;
        }
        if let Some(text) = scenario {
            write("scenario.yaml", text.as_bytes())?;
        }
        for (name, body) in docs.iter().filter(|(n, _)| DOCUMENTS.contains(&n.as_str())) {
            write(name, body)?;
        }
        write("journal.jsonl", (lines.join("\n") + "\n").as_bytes())?;
        Ok(Some(dir))
    }

    /// Keeps a new incident's runbook and scenario copies.
    pub fn seal_new(&self, id: &str, dir: &Path) -> std::io::Result<()> {
        let read = |name: &str| if_found(std::fs::read_to_string(dir.join(name)));
        let (runbook, scenario) = (read("runbook.yaml")?, read("scenario.yaml")?);
        let id = id.to_string();
        self.with_client(move |c| async move {
            c.execute(
                "UPDATE quench_incidents SET runbook = $2, scenario = $3 WHERE id = $1",
                &[&id, &runbook, &scenario],
            )
            .await?;
            Ok(())
        })
    }

    pub fn publish_documents(&self, id: &str, dir: &Path) -> std::io::Result<()> {
        let mut docs = Vec::new();
        for name in DOCUMENTS {
            if let Some(body) = if_found(std::fs::read(dir.join(name)))? {
                docs.push((name.to_string(), body));
            }
        }
        let id = id.to_string();
        self.with_client(move |mut c| async move {
            let tx = c.transaction().await?;
            for (name, body) in &docs {
                tx.execute(
                    "INSERT INTO quench_documents (incident, name, body) VALUES ($1, $2, $3) \
                     ON CONFLICT (incident, name) DO UPDATE SET body = $3, updated_at = now()",
                    &[&id, name, body],
                )
                .await?;
            }
            tx.commit().await
        })
    }

    /// Takes incident `id`'s lease and writes its working copy.
    pub fn lock(&self, id: &str) -> Result<Lease, crate::store::LockError> {
        let lease = self.block(self.leases.clone().claim(id.to_string()))?;
        let lease = Lease::hold(lease, self.leases.clone(), self.rt().handle().clone());
        self.fetch(id).map_err(|e| crate::store::LockError::Io {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
        Ok(lease)
    }

    /// The fenced committer of a journal whose lease this process holds.
    pub fn committer(&self, id: &str) -> std::io::Result<Box<dyn journal::Commit>> {
        let held = self.leases.held(id).ok_or_else(|| {
            io(format!(
                "this process does not hold the lease of incident `{id}`"
            ))
        })?;
        Ok(Box::new(lease::Committer {
            held,
            pool: self.pool.clone(),
            rt: self.rt().handle().clone(),
        }))
    }

    /// Unfinished incidents whose lease has expired: their runner died or
    /// stopped. Those that began (have a first record) only.
    pub async fn orphaned(&self) -> std::io::Result<Vec<String>> {
        let orphaned = self.column(
            "SELECT l.incident FROM quench_leases l \
             JOIN quench_incidents i ON i.id = l.incident \
             WHERE NOT i.finished AND l.expires_at <= clock_timestamp() \
             AND EXISTS (SELECT 1 FROM quench_journal j WHERE j.incident = l.incident) \
             ORDER BY l.incident",
            Vec::new(),
        );
        self.run(orphaned).await
    }
}

/// Runs `fut` on `rt`, for a caller outside it: its result comes through
/// the receiver.
fn spawn_for<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
) -> std::sync::mpsc::Receiver<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx
}

/// Why a connection could not be had, without the settings it was tried
/// with.
fn connect_reason(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_reason(e),
        deadpool_postgres::PoolError::Timeout(_) => "timed out".into(),
        other => other.to_string(),
    }
}

/// A database error with its source (the refused password, the closed
/// port), which `tokio_postgres` keeps apart from its summary.
fn db_reason(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.message().to_string();
    }
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

/// The unique name of this process among the store's runners.
fn owner() -> String {
    let actor = crate::journal::Actor::current();
    format!(
        "{}@{} pid {} #{:04x}",
        actor.user,
        actor.host,
        std::process::id(),
        rand::random::<u16>()
    )
}
