//! The change stream: an append-only log in the stage's SQLite database that every committed
//! table change and object event is written to, in the same transaction as the change itself.
//! Named consumers read it in order with durable checkpoints (see [`consumer`]), with DynamoDB
//! Streams → Lambda semantics: batches, retries with backoff, bisection, partial batch
//! responses, dead letters and a retention window.

mod config;
pub use config::{StartingPosition, StreamConfig};

pub(crate) mod consumer;
mod filter;

use std::sync::Arc;
use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::Value;

use crate::infra::clock::Clock;
use crate::infra::sqlite::{Database, DbError};

pub use consumer::{Attempt, BodyFilter, ConsumerSpec, Deliver, DeliveryOptions, Outcome};
pub use filter::{EventFilter, FilterError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stream_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    -- NULL for every consumer of the source; a consumer's name for redriven records.
    target TEXT,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stream_records_by_source ON stream_records (source, seq);
CREATE TABLE IF NOT EXISTS stream_consumers (
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    checkpoint INTEGER NOT NULL,
    lost INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stream_dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    failed_at INTEGER NOT NULL
);
";

/// Creates the stream's tables; every component that appends records calls it first.
pub fn migrate(db: &Database) -> Result<(), DbError> {
    db.migrate(SCHEMA)
}

/// Appends a record inside the caller's transaction; returns its sequence number.
pub(crate) fn append(
    transaction: &Transaction<'_>,
    source: &str,
    created_at_ms: i64,
    body: &str,
) -> rusqlite::Result<u64> {
    transaction
        .prepare_cached("INSERT INTO stream_records (source, created_at, body) VALUES (?1, ?2, ?3)")?
        .execute(params![source, created_at_ms, body])?;
    Ok(u64::try_from(transaction.last_insert_rowid()).unwrap_or_default())
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("no stream consumer named `{name}`")]
    UnknownConsumer { name: String },
    #[error("consumer `{name}` already reads `{existing}`, not `{requested}`")]
    ConsumerSourceMismatch { name: String, existing: String, requested: String },
    #[error("invalid consumer name `{name}`: use 1-64 characters of a-z, 0-9, '-' and '_'")]
    InvalidConsumerName { name: String },
    #[error("no dead letter {id} for consumer `{consumer}`")]
    UnknownDeadLetter { consumer: String, id: i64 },
    #[error("storage failure")]
    Storage(#[from] DbError),
    #[error("stored record {seq} is corrupt")]
    Corrupt {
        seq: u64,
        #[source]
        source: serde_json::Error,
    },
}

impl From<rusqlite::Error> for StreamError {
    fn from(error: rusqlite::Error) -> Self {
        Self::Storage(DbError::Sqlite(error))
    }
}

/// One record as consumers receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub seq: u64,
    pub source: String,
    pub created_at_ms: i64,
    /// The event in AWS's JSON shape, without its sequence number (see [`Record::seq`]).
    pub body: Value,
}

/// A record a consumer gave up on.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub record: Record,
    pub error: String,
    pub attempts: u32,
    pub failed_at_ms: i64,
}

/// A consumer's position, for operators and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsumerStatus {
    pub name: String,
    pub source: String,
    pub checkpoint: u64,
    /// Records of its source after the checkpoint.
    pub pending: u64,
    pub dead_letters: u64,
    /// Records trimmed by retention before this consumer processed them.
    pub lost: u64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrimReport {
    pub trimmed: u64,
    /// Consumers that had not processed some of the trimmed records, and how many.
    pub lagging: Vec<(String, u64)>,
}

#[derive(Debug)]
pub struct StreamLog {
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
}

impl StreamLog {
    pub fn open(db: Arc<Database>, clock: Arc<dyn Clock>) -> Result<Self, StreamError> {
        migrate(&db)?;
        Ok(Self { db, clock })
    }

    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    pub fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Registers a consumer (idempotent) and returns its checkpoint.
    pub fn register_consumer(
        &self,
        name: &str,
        source: &str,
        start: StartingPosition,
    ) -> Result<u64, StreamError> {
        let name_ok = (1..=64).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !name_ok {
            return Err(StreamError::InvalidConsumerName { name: name.to_owned() });
        }
        self.db.write_blocking(|transaction| {
            let existing: Option<(String, i64)> = transaction
                .query_row("SELECT source, checkpoint FROM stream_consumers WHERE name = ?1", [name], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            if let Some((existing_source, checkpoint)) = existing {
                if existing_source != source {
                    return Err(StreamError::ConsumerSourceMismatch {
                        name: name.to_owned(),
                        existing: existing_source,
                        requested: source.to_owned(),
                    });
                }
                return Ok(u64::try_from(checkpoint).unwrap_or_default());
            }
            let checkpoint: i64 = match start {
                StartingPosition::TrimHorizon => 0,
                StartingPosition::Latest => {
                    transaction
                        .query_row("SELECT COALESCE(MAX(seq), 0) FROM stream_records", [], |row| row.get(0))?
                }
            };
            transaction.execute(
                "INSERT INTO stream_consumers (name, source, checkpoint) VALUES (?1, ?2, ?3)",
                params![name, source, checkpoint],
            )?;
            Ok(u64::try_from(checkpoint).unwrap_or_default())
        })
    }

    /// Up to `limit` records of the consumer's source after `after`, in order.
    pub fn read_after(
        &self,
        consumer: &str,
        source: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Record>, StreamError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT seq, created_at, body FROM stream_records
                 WHERE source = ?1 AND seq > ?2 AND (target IS NULL OR target = ?3)
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = statement.query_map(params![source, after as i64, consumer, limit as i64], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
            })?;
            let mut records = Vec::new();
            for row in rows {
                let (seq, created_at_ms, body) = row?;
                let seq = u64::try_from(seq).unwrap_or_default();
                let body =
                    serde_json::from_str(&body).map_err(|source| StreamError::Corrupt { seq, source })?;
                records.push(Record { seq, source: source.to_owned(), created_at_ms, body });
            }
            Ok(records)
        })
    }

    /// The newest sequence number a consumer has yet to see (0 when none).
    pub fn latest_for(&self, consumer: &str, source: &str) -> Result<u64, StreamError> {
        self.db.read(|connection| {
            let latest: i64 = connection.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM stream_records
                 WHERE source = ?1 AND (target IS NULL OR target = ?2)",
                params![source, consumer],
                |row| row.get(0),
            )?;
            Ok(u64::try_from(latest).unwrap_or_default())
        })
    }

    pub fn checkpoint(&self, consumer: &str) -> Result<u64, StreamError> {
        self.db.read(|connection| {
            let checkpoint: Option<i64> = connection
                .query_row("SELECT checkpoint FROM stream_consumers WHERE name = ?1", [consumer], |row| {
                    row.get(0)
                })
                .optional()?;
            checkpoint
                .map(|value| u64::try_from(value).unwrap_or_default())
                .ok_or_else(|| StreamError::UnknownConsumer { name: consumer.to_owned() })
        })
    }

    /// Moves a consumer's checkpoint forward and records its dead letters, atomically.
    pub async fn advance(
        &self,
        consumer: &str,
        checkpoint: u64,
        dead: Vec<(Record, String, u32)>,
    ) -> Result<(), StreamError> {
        let consumer = consumer.to_owned();
        let now = self.clock.now_millis();
        self.db
            .write(move |transaction| {
                for (record, error, attempts) in &dead {
                    transaction
                        .prepare_cached(
                            "INSERT INTO stream_dead_letters
                             (consumer, seq, source, created_at, body, error, attempts, failed_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                        )?
                        .execute(params![
                            consumer,
                            record.seq as i64,
                            record.source,
                            record.created_at_ms,
                            record.body.to_string(),
                            error,
                            attempts,
                            now
                        ])?;
                }
                transaction
                    .prepare_cached(
                        "UPDATE stream_consumers SET checkpoint = MAX(checkpoint, ?2) WHERE name = ?1",
                    )?
                    .execute(params![consumer, checkpoint as i64])?;
                Ok::<_, StreamError>(())
            })
            .await
    }

    fn ensure_consumer(&self, consumer: &str) -> Result<(), StreamError> {
        self.checkpoint(consumer).map(|_| ())
    }

    /// Dead letters, oldest first; of one consumer or of all.
    pub fn dead_letters(&self, consumer: Option<&str>) -> Result<Vec<DeadLetter>, StreamError> {
        if let Some(name) = consumer {
            self.ensure_consumer(name)?;
        }
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id, consumer, seq, source, created_at, body, error, attempts, failed_at
                 FROM stream_dead_letters WHERE ?1 IS NULL OR consumer = ?1 ORDER BY id",
            )?;
            let rows = statement.query_map([consumer], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, String>(6)?,
                    row.get::<_, u32>(7)?,
                    row.get::<_, i64>(8)?,
                ))
            })?;
            let mut letters = Vec::new();
            for row in rows {
                let (id, consumer, seq, source, created_at_ms, body, error, attempts, failed_at_ms) = row?;
                let seq = u64::try_from(seq).unwrap_or_default();
                let body =
                    serde_json::from_str(&body).map_err(|source| StreamError::Corrupt { seq, source })?;
                letters.push(DeadLetter {
                    id,
                    consumer,
                    record: Record { seq, source, created_at_ms, body },
                    error,
                    attempts,
                    failed_at_ms,
                });
            }
            Ok(letters)
        })
    }

    /// Sends a consumer's dead letters (all, or the given ids) back to it as new records;
    /// returns how many. Other consumers of the source do not see them.
    pub fn redrive(&self, consumer: &str, ids: Option<&[i64]>) -> Result<usize, StreamError> {
        self.ensure_consumer(consumer)?;
        let letters = self.dead_letters(Some(consumer))?;
        let chosen: Vec<&DeadLetter> = match ids {
            None => letters.iter().collect(),
            Some(ids) => {
                for id in ids {
                    if !letters.iter().any(|letter| letter.id == *id) {
                        return Err(StreamError::UnknownDeadLetter {
                            consumer: consumer.to_owned(),
                            id: *id,
                        });
                    }
                }
                letters.iter().filter(|letter| ids.contains(&letter.id)).collect()
            }
        };
        let now = self.clock.now_millis();
        self.db.write_blocking(|transaction| {
            for letter in &chosen {
                transaction.execute(
                    "INSERT INTO stream_records (source, target, created_at, body) VALUES (?1, ?2, ?3, ?4)",
                    params![letter.record.source, consumer, now, letter.record.body.to_string()],
                )?;
                transaction.execute("DELETE FROM stream_dead_letters WHERE id = ?1", [letter.id])?;
            }
            Ok::<_, StreamError>(())
        })?;
        Ok(chosen.len())
    }

    /// Positions of all consumers.
    pub fn consumers(&self) -> Result<Vec<ConsumerStatus>, StreamError> {
        self.db.read(|connection| {
            let mut statement = connection.prepare_cached(
                "SELECT c.name, c.source, c.checkpoint, c.lost,
                    (SELECT COUNT(*) FROM stream_records r WHERE r.source = c.source
                        AND r.seq > c.checkpoint AND (r.target IS NULL OR r.target = c.name)),
                    (SELECT COUNT(*) FROM stream_dead_letters d WHERE d.consumer = c.name)
                 FROM stream_consumers c ORDER BY c.name",
            )?;
            let rows = statement.query_map([], |row| {
                Ok(ConsumerStatus {
                    name: row.get(0)?,
                    source: row.get(1)?,
                    checkpoint: row.get::<_, i64>(2)?.try_into().unwrap_or_default(),
                    lost: row.get::<_, i64>(3)?.try_into().unwrap_or_default(),
                    pending: row.get::<_, i64>(4)?.try_into().unwrap_or_default(),
                    dead_letters: row.get::<_, i64>(5)?.try_into().unwrap_or_default(),
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Deletes records older than `retention`. Records that an active consumer had not yet
    /// processed are counted against it and reported at error level: never skipped silently.
    pub async fn trim(&self, retention: Duration, active: &[String]) -> Result<TrimReport, StreamError> {
        let cutoff = self.clock.now_millis() - i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        let active = active.to_vec();
        let report = self
            .db
            .write(move |transaction| {
                let last_trimmed: i64 = transaction.query_row(
                    "SELECT COALESCE(MAX(seq), 0) FROM stream_records WHERE created_at < ?1",
                    [cutoff],
                    |row| row.get(0),
                )?;
                if last_trimmed == 0 {
                    return Ok(TrimReport::default());
                }
                let mut lagging = Vec::new();
                for name in &active {
                    let missed: i64 = transaction.query_row(
                        "SELECT COUNT(*) FROM stream_records r JOIN stream_consumers c ON c.name = ?1
                         WHERE r.source = c.source AND r.seq > c.checkpoint AND r.seq <= ?2
                           AND (r.target IS NULL OR r.target = c.name)",
                        params![name, last_trimmed],
                        |row| row.get(0),
                    )?;
                    if missed > 0 {
                        transaction.execute(
                            "UPDATE stream_consumers SET lost = lost + ?2 WHERE name = ?1",
                            params![name, missed],
                        )?;
                        lagging.push((name.clone(), u64::try_from(missed).unwrap_or_default()));
                    }
                }
                let trimmed =
                    transaction.execute("DELETE FROM stream_records WHERE seq <= ?1", [last_trimmed])?;
                Ok::<_, StreamError>(TrimReport { trimmed: trimmed as u64, lagging })
            })
            .await?;
        for (consumer, missed) in &report.lagging {
            tracing::error!(
                consumer = %consumer,
                missed,
                "stream consumer fell behind the retention window: records were trimmed before it processed them"
            );
        }
        if report.trimmed > 0 {
            tracing::debug!(trimmed = report.trimmed, "stream retention trimmed old records");
        }
        Ok(report)
    }
}
