//! Reading a `postgres://` URL: where the password may come from (a secret
//! source or libpq's `PGPASSWORD`, never the URL), libpq's variables for
//! what the URL leaves out, and how the database is named in messages.

use std::str::FromStr;
use std::time::Duration;

use crate::secret::SecretSource;

/// What a PostgreSQL store is opened with, besides its URL.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A secret source for the password (`env:VAR`, `file:PATH`).
    pub password: Option<String>,
    /// How long a runner's lease lasts unless renewed.
    pub lease: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            password: None,
            lease: DEFAULT_LEASE,
        }
    }
}

impl Settings {
    /// From `[postgres]` in quench.toml (its lease was checked when read).
    pub fn from_config(c: &crate::config::PostgresConfig) -> Self {
        let lease = c
            .lease
            .as_deref()
            .and_then(|l| crate::time::parse_duration(l).ok());
        Self {
            password: c.password.clone(),
            lease: lease.unwrap_or(DEFAULT_LEASE),
        }
    }
}

/// A lease outlives a runner this long: the time another replica waits
/// before it takes over an incident whose runner died.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "the store URL holds a password, which would show in argv, the environment and logs: \
         remove it and give it as `[postgres] password = \"env:VAR\"` (or `file:PATH`) in \
         quench.toml, or in `PGPASSWORD`"
    )]
    PasswordInUrl,
    #[error("`{0}` is not a PostgreSQL URL: write `postgres://USER@HOST:PORT/DATABASE`")]
    BadUrl(String),
    #[error("failed to read the store's password: {0}")]
    Password(String),
    #[error("failed to connect to the store `{shown}`: {reason}")]
    Connect { shown: String, reason: String },
    #[error(
        "the store `{shown}` has schema version {found}; this quench knows up to version {known}: upgrade quench"
    )]
    NewerSchema {
        shown: String,
        found: i32,
        known: i32,
    },
    #[error("failed to prepare the store `{shown}`: {reason}")]
    Schema { shown: String, reason: String },
}

pub fn is_url(spec: &str) -> bool {
    spec.starts_with("postgres://") || spec.starts_with("postgresql://")
}

/// The connection's settings and how it is named in messages:
/// `postgres://USER@HOST:PORT/DATABASE`, never with a password.
pub fn config(
    url: &str,
    settings: &Settings,
) -> Result<(tokio_postgres::Config, String), OpenError> {
    // The URL is never repeated in an error: it may hold a password.
    let withheld = || OpenError::BadUrl("<the URL>".into());
    let mut config = tokio_postgres::Config::from_str(url).map_err(|_| withheld())?;
    if config.get_password().is_some() {
        return Err(OpenError::PasswordInUrl);
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if config.get_hosts().is_empty() {
        let host = env("PGHOST").unwrap_or_else(|| "localhost".into());
        for h in host.split(',') {
            config.host(h);
        }
    }
    if config.get_ports().is_empty()
        && let Some(port) = env("PGPORT")
    {
        config.port(port.parse().map_err(|_| withheld())?);
    }
    if config.get_user().is_none() {
        let user = env("PGUSER").unwrap_or_else(|| crate::journal::Actor::current().user);
        config.user(user);
    }
    if config.get_dbname().is_none()
        && let Some(db) = env("PGDATABASE")
    {
        config.dbname(db);
    }
    let password = match &settings.password {
        Some(source) => Some(
            SecretSource::parse(source)
                .and_then(|s| s.read("store password"))
                .map_err(|e| OpenError::Password(e.to_string()))?
                .expose()
                .to_string(),
        ),
        None => env("PGPASSWORD"),
    };
    if let Some(p) = password {
        config.password(p);
    }
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("quench");
    let shown = shown(&config);
    Ok((config, shown))
}

fn shown(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        config.get_user().unwrap_or_default(),
        config
            .get_dbname()
            .or(config.get_user())
            .unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_the_url_is_refused_without_repeating_it() {
        let e = config(
            "postgres://quench:hunter2-secret@db.example:5432/quench",
            &Settings::default(),
        )
        .unwrap_err();
        assert!(matches!(e, OpenError::PasswordInUrl));
        assert!(!e.to_string().contains("hunter2"));
    }

    #[test]
    fn the_shown_name_has_host_port_user_and_database() {
        let (_, shown) = config(
            "postgres://quench@db.example:6543/incidents",
            &Settings::default(),
        )
        .unwrap();
        assert_eq!(shown, "postgres://quench@db.example:6543/incidents");
    }

    #[test]
    fn a_bad_url_is_not_repeated() {
        let e = config(
            "postgres://a:b:c@@/x?sslmode=nonsense",
            &Settings::default(),
        )
        .unwrap_err();
        assert!(!e.to_string().contains("nonsense"), "{e}");
    }
}
