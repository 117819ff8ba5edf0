//! The sent-log decorator: a key already in the log is not sent again.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tokio::sync::Mutex;

use super::{Email, MailError, Mailer, Sent};
use crate::infra::clock::Clock;
use crate::infra::sqlite::{Database, DbError};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS mail_sent (
    idempotency_key TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    sent_at INTEGER NOT NULL
);
";

/// Sends of the same key within this process are serialised on one of these locks.
const STRIPES: usize = 16;

#[derive(Debug)]
pub struct Deduplicated<M> {
    inner: M,
    db: Arc<Database>,
    clock: Arc<dyn Clock>,
    stripes: Vec<Mutex<()>>,
}

impl<M: Mailer> Deduplicated<M> {
    pub fn new(inner: M, db: Arc<Database>, clock: Arc<dyn Clock>) -> Result<Self, MailError> {
        db.migrate(SCHEMA)?;
        let stripes = (0..STRIPES).map(|_| Mutex::new(())).collect();
        Ok(Self { inner, db, clock, stripes })
    }

    fn stripe(&self, key: &str) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        key.hash(&mut hasher);
        &self.stripes[(hasher.finish() as usize) % STRIPES]
    }

    fn already_sent(&self, key: &str) -> Result<Option<String>, MailError> {
        self.db.read(|connection| {
            Ok(connection
                .prepare_cached("SELECT message_id FROM mail_sent WHERE idempotency_key = ?1")?
                .query_row([key], |row| row.get(0))
                .optional()?)
        })
    }
}

#[async_trait]
impl<M: Mailer> Mailer for Deduplicated<M> {
    async fn send(&self, email: &Email) -> Result<Sent, MailError> {
        let _serialised = self.stripe(&email.idempotency_key).lock().await;
        if let Some(message_id) = self.already_sent(&email.idempotency_key)? {
            tracing::info!(message_id = %message_id, "email already sent for this idempotency key; not sending again");
            return Ok(Sent { message_id, duplicate: true });
        }
        let sent = self.inner.send(email).await?;
        let (key, message_id, now) =
            (email.idempotency_key.clone(), sent.message_id.clone(), self.clock.now_millis());
        self.db
            .write(move |transaction| {
                transaction
                    .prepare_cached(
                        "INSERT INTO mail_sent (idempotency_key, message_id, sent_at) VALUES (?1, ?2, ?3)
                         ON CONFLICT (idempotency_key) DO NOTHING",
                    )?
                    .execute(params![key, message_id, now])?;
                Ok::<_, MailError>(())
            })
            .await?;
        Ok(sent)
    }
}

impl From<DbError> for MailError {
    fn from(error: DbError) -> Self {
        Self::Storage(Box::new(error))
    }
}

impl From<rusqlite::Error> for MailError {
    fn from(error: rusqlite::Error) -> Self {
        Self::from(DbError::Sqlite(error))
    }
}
