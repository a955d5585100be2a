//! Storage: SQLite by default (one file, WAL, fsync on commit), Postgres by
//! URL, through sqlx's `Any` driver. SQL in this crate stays portable:
//! `$N` parameters, TEXT ids, BIGINT milliseconds, BIGINT 0/1 flags.

use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::Executor;
use std::path::Path;
use std::time::Duration;

/// The embedded migrations (`control-api/migrations`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Why the database could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// The URL names no supported database.
    #[error("storage.database_url {url:?}: use sqlite://PATH or postgres://…")]
    BadUrl {
        /// The URL given.
        url: String,
    },
    /// Connecting failed.
    #[error("opening the database {url}: {source}")]
    Connect {
        /// Where.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database: {0}")]
    Query(#[from] sqlx::Error),
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    /// SQLite (the default).
    Sqlite,
    /// Postgres.
    Postgres,
}

/// The connection pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    /// The pool.
    pub pool: AnyPool,
    /// Which database.
    pub kind: DbKind,
}

impl Db {
    /// The SQLite URL for a file in `dir` (created if missing).
    pub fn sqlite_url(dir: &Path) -> String {
        format!("sqlite://{}?mode=rwc", dir.join("vocelio.db").display())
    }

    /// Open the database at `url` and bring its schema up to date.
    ///
    /// SQLite runs in WAL mode with `synchronous=FULL`: a committed write
    /// survives a crash or power loss, and readers never block the writer.
    pub async fn open(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let kind = if url.starts_with("sqlite:") {
            DbKind::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            DbKind::Postgres
        } else {
            return Err(DbError::BadUrl { url: url.into() });
        };
        let mut options = AnyPoolOptions::new().acquire_timeout(Duration::from_secs(10));
        if kind == DbKind::Sqlite {
            // One writer at a time is SQLite's model; a small pool serves readers.
            options = options.max_connections(4).after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(
                        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
                         PRAGMA busy_timeout=10000; PRAGMA foreign_keys=ON;",
                    )
                    .await?;
                    Ok(())
                })
            });
        } else {
            options = options.max_connections(16);
        }
        let pool = options
            .connect(url)
            .await
            .map_err(|source| DbError::Connect {
                url: redact(url),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(Db { pool, kind })
    }

    /// A transaction that writes. On SQLite it takes the write lock at
    /// `BEGIN` (`IMMEDIATE`), waiting out `busy_timeout` for it: a deferred
    /// transaction that reads first and then writes fails at once with
    /// `SQLITE_BUSY` when another connection wrote in between.
    pub async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
        match self.kind {
            DbKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            DbKind::Postgres => self.pool.begin().await,
        }
    }

    /// An in-memory SQLite database (tests).
    pub async fn memory() -> Result<Db, DbError> {
        // One connection: every connection to `:memory:` is its own database.
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await
            .map_err(|source| DbError::Connect {
                url: "sqlite::memory:".into(),
                source,
            })?;
        MIGRATOR.run(&pool).await?;
        Ok(Db {
            pool,
            kind: DbKind::Sqlite,
        })
    }
}

/// A URL with its password hidden, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// A new random id with a resource prefix: `ag_3f9c…` (16 hex digits).
pub fn new_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    // getrandom only fails on platforms without an entropy source.
    if getrandom::fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = t.to_le_bytes();
    }
    format!("{prefix}_{}", hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrates_a_fresh_file_and_reopens_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = Db::sqlite_url(dir.path());
        let db = Db::open(&url).await.unwrap();
        sqlx::query("INSERT INTO dnc (e164, reason, created_ms) VALUES ($1, $2, $3)")
            .bind("+15550001111")
            .bind("asked")
            .bind(1_i64)
            .execute(&db.pool)
            .await
            .unwrap();
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(mode.0, "wal");
        db.pool.close().await;
        let db = Db::open(&url).await.unwrap();
        let n: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM dnc")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(n.0, 1);
    }

    #[tokio::test]
    async fn bad_urls_say_what_is_supported() {
        let e = Db::open("mysql://x").await.unwrap_err();
        assert!(e.to_string().contains("sqlite://"), "{e}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@db:5432/v"),
            "postgres://u:***@db:5432/v"
        );
        assert_eq!(redact("sqlite:///x.db"), "sqlite:///x.db");
    }

    #[test]
    fn ids_have_a_prefix_and_differ() {
        let a = new_id("ag");
        assert!(a.starts_with("ag_") && a.len() == 19, "{a}");
        assert_ne!(a, new_id("ag"));
    }
}
