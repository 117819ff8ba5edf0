//! The embedded database every local adapter shares: one SQLite file per stage, in WAL mode,
//! with one writer connection and a pool of readers.
//!
//! Writes run on the blocking pool inside `BEGIN IMMEDIATE`, so a write transaction never fails
//! half-way on a lock upgrade and derived rows (stream records, index entries) commit with the
//! change that caused them. Reads are point lookups measured in microseconds and run inline.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};
use tokio::sync::watch;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot open database {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database worker stopped unexpectedly")]
    Worker(#[source] tokio::task::JoinError),
}

/// How many idle read connections are kept.
const MAX_IDLE_READERS: usize = 8;

pub struct Database {
    path: PathBuf,
    synchronous: Synchronous,
    writer: Arc<Mutex<Connection>>,
    readers: Mutex<Vec<Connection>>,
    /// Bumped after every commit that may have appended stream records; consumers wait on it.
    commits: watch::Sender<u64>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Database {
    /// Opens (creating if needed) the database file in WAL mode. Components then apply their
    /// own schema with [`Database::migrate`].
    pub fn open(path: &Path, synchronous: Synchronous) -> Result<Self, DbError> {
        let writer = open_connection(path, synchronous)?;
        writer
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|source| DbError::Open { path: path.to_owned(), source })?;
        Ok(Self {
            path: path.to_owned(),
            synchronous,
            writer: Arc::new(Mutex::new(writer)),
            readers: Mutex::new(Vec::new()),
            commits: watch::channel(0).0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Applies a schema: idempotent DDL statements owned by one component.
    pub fn migrate(&self, schema: &str) -> Result<(), DbError> {
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        writer.execute_batch(schema)?;
        Ok(())
    }

    /// Runs `work` in one `BEGIN IMMEDIATE` transaction on the blocking pool and commits it when
    /// it returns `Ok`; an `Err` rolls everything back.
    pub async fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T, E> + Send + 'static,
    {
        let writer = Arc::clone(&self.writer);
        let outcome = tokio::task::spawn_blocking(move || {
            let mut connection = writer.lock().unwrap_or_else(PoisonError::into_inner);
            run_transaction(&mut connection, work)
        })
        .await
        .map_err(|e| E::from(DbError::Worker(e)))?;
        if outcome.is_ok() {
            self.commits.send_modify(|generation| *generation += 1);
        }
        outcome
    }

    /// Like [`Database::write`], on the calling thread: for start-up and command-line tools.
    pub fn write_blocking<T, E, F>(&self, work: F) -> Result<T, E>
    where
        E: From<DbError>,
        F: FnOnce(&Transaction<'_>) -> Result<T, E>,
    {
        let outcome = {
            let mut connection = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            run_transaction(&mut connection, work)
        };
        if outcome.is_ok() {
            self.commits.send_modify(|generation| *generation += 1);
        }
        outcome
    }

    /// Runs `work` on a pooled read connection. Readers see the last committed state (WAL).
    pub fn read<T, E, F>(&self, work: F) -> Result<T, E>
    where
        E: From<DbError>,
        F: FnOnce(&Connection) -> Result<T, E>,
    {
        let idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open_connection(&self.path, self.synchronous)?,
        };
        let outcome = work(&connection);
        let mut readers = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if readers.len() < MAX_IDLE_READERS {
            readers.push(connection);
        }
        outcome
    }

    /// A receiver that changes after every commit.
    pub fn subscribe_commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Cheap liveness check for `/readyz`.
    pub fn ping(&self) -> Result<(), DbError> {
        self.read(|connection| {
            connection.query_row("SELECT 1", [], |_| Ok(()))?;
            Ok(())
        })
    }
}

fn run_transaction<T, E, F>(connection: &mut Connection, work: F) -> Result<T, E>
where
    E: From<DbError>,
    F: FnOnce(&Transaction<'_>) -> Result<T, E>,
{
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| E::from(DbError::Sqlite(e)))?;
    let value = work(&transaction)?;
    transaction.commit().map_err(|e| E::from(DbError::Sqlite(e)))?;
    Ok(value)
}

fn open_connection(path: &Path, synchronous: Synchronous) -> Result<Connection, DbError> {
    let open_error = |source| DbError::Open { path: path.to_owned(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let connection = Connection::open_with_flags(path, flags).map_err(open_error)?;
    connection.busy_timeout(Duration::from_secs(5)).map_err(open_error)?;
    let level = match synchronous {
        Synchronous::Normal => "NORMAL",
        Synchronous::Full => "FULL",
    };
    connection.pragma_update(None, "synchronous", level).map_err(open_error)?;
    connection.set_prepared_statement_cache_capacity(64);
    // Plans that do not depend on bound values: otherwise SQLite re-prepares a statement
    // whenever a value its plan looked at is bound again — the LIMIT, the clock compared with
    // the partial expiry index — which is every time it runs.
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(open_error)?;
    Ok(connection)
}

/// `[database]`: how durable a commit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Survives a crash of the process; the last commits may be lost on power loss.
    Normal,
    /// Survives power loss: every commit is fsynced.
    Full,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub synchronous: Synchronous,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { synchronous: Synchronous::Normal }
    }
}
