//! The database's schema: migrations embedded in the binary, applied in
//! order at start under a transaction-scoped lock, so replicas starting
//! together migrate once. A database migrated by a newer quench is refused.

use tokio_postgres::Client;

/// Each entry moves the schema one version up; never edit one that shipped.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE quench_incidents (
    id text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now(),
    runbook text,
    scenario text,
    finished boolean NOT NULL DEFAULT false
);
-- One row per journal record, exactly as the JSONL line reads.
CREATE TABLE quench_journal (
    incident text NOT NULL REFERENCES quench_incidents (id),
    seq bigint NOT NULL,
    record text NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident, seq)
);
CREATE FUNCTION quench_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER quench_journal_append_only BEFORE UPDATE OR DELETE ON quench_journal
    FOR EACH ROW EXECUTE FUNCTION quench_append_only();
-- Who runs an incident: expires by the database's clock unless renewed;
-- each new holder raises the epoch, which fences the one before.
CREATE TABLE quench_leases (
    incident text PRIMARY KEY REFERENCES quench_incidents (id),
    owner text NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE TABLE quench_documents (
    incident text NOT NULL REFERENCES quench_incidents (id),
    name text NOT NULL,
    body bytea NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (incident, name)
);
-- The chatops and hooks audit logs, one row per decision.
CREATE TABLE quench_audit (
    id bigserial PRIMARY KEY,
    log text NOT NULL,
    entry text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
-- Signed requests and deliveries already taken, across replicas.
CREATE TABLE quench_replays (
    key text PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
"#,
    r#"
-- Hook deliveries taken, across replicas: one incident per delivery of a
-- credential, whichever replica it reached.
CREATE TABLE quench_deliveries (
    delivery text NOT NULL,
    fingerprint text NOT NULL,
    incident text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (delivery, fingerprint)
);
-- What waits for an incident's runner, from any replica or terminal: task
-- answers, later detections, approvals. Journaled, then deleted, by the
-- process that holds the incident's lease.
CREATE TABLE quench_inbox (
    id bigserial PRIMARY KEY,
    incident text NOT NULL REFERENCES quench_incidents (id),
    line text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX quench_inbox_incident ON quench_inbox (incident, id);
CREATE INDEX quench_audit_log ON quench_audit (log, id);
"#,
];

/// The schema version this binary brings the database to.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// An arbitrary key for `pg_advisory_xact_lock`: migrations, one at a time.
const MIGRATION_LOCK: i64 = 0x7175_656e_6368;

pub enum Migrated {
    Current,
    /// The database is at a newer version than this binary knows.
    Newer(i32),
}

pub async fn migrate(client: &mut Client) -> Result<Migrated, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS quench_schema (version integer NOT NULL)")
        .await?;
    let found: Option<i32> = tx
        .query_opt("SELECT version FROM quench_schema", &[])
        .await?
        .map(|r| r.get(0));
    let found = found.unwrap_or(0);
    if found > VERSION {
        return Ok(Migrated::Newer(found));
    }
    for migration in &MIGRATIONS[found as usize..] {
        tx.batch_execute(migration).await?;
    }
    if found == 0 {
        tx.execute(
            "INSERT INTO quench_schema (version) VALUES ($1)",
            &[&VERSION],
        )
        .await?;
    } else if found < VERSION {
        tx.execute("UPDATE quench_schema SET version = $1", &[&VERSION])
            .await?;
    }
    tx.commit().await?;
    Ok(Migrated::Current)
}
