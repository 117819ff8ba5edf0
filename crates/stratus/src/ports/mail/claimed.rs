//! The sent-log as items of a [`Table`], for deployments where many processes send (Lambda):
//! a send first claims its key with a conditional put, so of two processes handed the same
//! email only one sends; the claim is a lease, so a process that dies mid-send does not block
//! the key for ever (the retry after the lease sends again, with the same Message-ID where the
//! transport keeps it). The local host, one process, uses [`Deduplicated`](super::Deduplicated).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{Email, MailError, Mailer, Sent};
use crate::infra::clock::Clock;
use crate::item;
use crate::ports::table::{Comparison, Condition, Item, KeyAttribute, Table, TableError, TableSpec};

const SENDING: &str = "sending";
const SENT: &str = "sent";

/// The sent-log's table: one item per idempotency key.
pub fn sent_log_spec() -> TableSpec {
    TableSpec::new("mail-sent", KeyAttribute::string("key"))
}

/// A mailer that sends each idempotency key once, across processes.
#[derive(Debug)]
pub struct Claimed<M> {
    inner: M,
    log: Arc<dyn Table>,
    clock: Arc<dyn Clock>,
    /// How long a claim holds off other senders: longer than any send takes.
    lease: Duration,
}

impl<M: Mailer> Claimed<M> {
    pub fn new(inner: M, log: Arc<dyn Table>, clock: Arc<dyn Clock>, lease: Duration) -> Self {
        Self { inner, log, clock, lease }
    }

    fn key(email: &Email) -> Item {
        item! { "key" => email.idempotency_key.as_str() }
    }

    /// Claims the key until `until` (epoch milliseconds): it was never claimed, or an earlier
    /// claim's lease ran out without a send being recorded.
    async fn claim(&self, email: &Email, until: i64) -> Result<Claim, MailError> {
        let now = self.clock.now_millis();
        let mut claim = Self::key(email);
        claim.insert("state".into(), SENDING.into());
        claim.insert("lease_until".into(), until.into());
        let free = Condition::not_exists("key").or(Condition::eq("state", SENDING).and(Condition::compare(
            "lease_until",
            Comparison::Lt,
            now,
        )));
        match self.log.put(claim, Some(free)).await {
            Ok(_) => Ok(Claim::Ours),
            Err(TableError::ConditionFailed) => {
                let entry = self.log.get_consistent(&Self::key(email)).await.map_err(storage)?;
                let sent =
                    entry.as_ref().filter(|entry| entry.get("state").and_then(|s| s.as_s()) == Some(SENT));
                match sent.and_then(|entry| entry.get("message_id")).and_then(|id| id.as_s()) {
                    Some(message_id) => Ok(Claim::AlreadySent(message_id.to_owned())),
                    None => Err(MailError::SendInProgress { key: email.idempotency_key.clone() }),
                }
            }
            Err(error) => Err(storage(error)),
        }
    }
}

enum Claim {
    Ours,
    AlreadySent(String),
}

#[async_trait]
impl<M: Mailer> Mailer for Claimed<M> {
    async fn send(&self, email: &Email) -> Result<Sent, MailError> {
        if email.idempotency_key.is_empty() {
            return Err(MailError::MissingIdempotencyKey);
        }
        let lease = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX);
        let until = self.clock.now_millis().saturating_add(lease);
        if let Claim::AlreadySent(message_id) = self.claim(email, until).await? {
            tracing::info!(message_id = %message_id, "email already sent for this idempotency key; not sending again");
            return Ok(Sent { message_id, duplicate: true });
        }
        let sent = match self.inner.send(email).await {
            Ok(sent) => sent,
            Err(error) => {
                // Give the key back at once so a retry need not wait for the lease.
                let ours = Condition::eq("state", SENDING).and(Condition::eq("lease_until", until));
                if let Err(release) = self.log.delete(&Self::key(email), Some(ours)).await {
                    tracing::warn!(error = %release, "could not release the claim; it lapses with its lease");
                }
                return Err(error);
            }
        };
        let mut entry = Self::key(email);
        entry.insert("state".into(), SENT.into());
        entry.insert("message_id".into(), sent.message_id.as_str().into());
        entry.insert("sent_at".into(), self.clock.now_millis().into());
        self.log.put(entry, None).await.map_err(storage)?;
        Ok(sent)
    }
}

fn storage(error: TableError) -> MailError {
    MailError::Storage(Box::new(error))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::SystemTime;

    use super::*;
    use crate::infra::clock::ManualClock;
    use crate::infra::sqlite::{Database, Synchronous};
    use crate::ports::table::sqlite::SqliteTable;

    #[derive(Debug, Default)]
    struct Counting {
        sends: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    #[async_trait]
    impl Mailer for Arc<Counting> {
        async fn send(&self, email: &Email) -> Result<Sent, MailError> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(MailError::Service("the relay is down".into()));
            }
            self.sends.fetch_add(1, Ordering::SeqCst);
            Ok(Sent { message_id: format!("<{}@test>", email.idempotency_key), duplicate: false })
        }
    }

    fn email() -> Email {
        Email {
            idempotency_key: "welcome/1".into(),
            to: "ada@example.com".into(),
            subject: "Welcome".into(),
            text: "Hello".into(),
            html: None,
            headers: Vec::new(),
        }
    }

    fn mailers(count: usize) -> (Vec<Claimed<Arc<Counting>>>, Arc<Counting>, ManualClock, tempfile::TempDir) {
        let dir = tempfile::TempDir::new().expect("dir");
        let clock = ManualClock::new(SystemTime::now());
        let db = Arc::new(Database::open(&dir.path().join("t.db"), Synchronous::Normal).expect("db"));
        let table: Arc<dyn Table> = Arc::new(
            SqliteTable::open(db, sent_log_spec(), Arc::new(clock.clone()), "local").expect("table"),
        );
        let transport = Arc::new(Counting::default());
        let mailers = (0..count)
            .map(|_| {
                Claimed::new(
                    Arc::clone(&transport),
                    Arc::clone(&table),
                    Arc::new(clock.clone()),
                    Duration::from_secs(60),
                )
            })
            .collect();
        (mailers, transport, clock, dir)
    }

    #[tokio::test]
    async fn two_processes_handed_the_same_email_send_it_once() {
        let (mailers, transport, _clock, _dir) = mailers(2);
        let first = mailers[0].send(&email()).await.expect("send");
        let second = mailers[1].send(&email()).await.expect("second send");
        assert_eq!(transport.sends.load(Ordering::SeqCst), 1);
        assert!(!first.duplicate && second.duplicate);
        assert_eq!(first.message_id, second.message_id);
    }

    #[tokio::test]
    async fn a_claim_blocks_others_until_its_lease_runs_out() {
        let (mailers, transport, clock, _dir) = mailers(2);
        // A process claimed the key and died before sending.
        mailers[0].claim(&email(), clock.now_millis() + 60_000).await.expect("claim");
        let blocked = mailers[1].send(&email()).await;
        assert!(matches!(blocked, Err(MailError::SendInProgress { .. })), "got {blocked:?}");
        clock.advance(Duration::from_secs(61));
        mailers[1].send(&email()).await.expect("the lease ran out");
        assert_eq!(transport.sends.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_failed_send_gives_the_key_back() {
        let (mailers, transport, _clock, _dir) = mailers(1);
        transport.fail.store(true, Ordering::SeqCst);
        assert!(mailers[0].send(&email()).await.is_err());
        transport.fail.store(false, Ordering::SeqCst);
        let sent = mailers[0].send(&email()).await.expect("the retry sends at once");
        assert!(!sent.duplicate);
        assert_eq!(transport.sends.load(Ordering::SeqCst), 1);
    }
}
