//! The local platform: the embedded adapters behind every port, opened from the configuration
//! for one stage. The server and the command-line tools open the same platform, so the CLI
//! works on the data of a running server.
//!
//! Layout of a stage directory: `stratus.db` (tables, change stream, sent-log), `buckets/<name>/`
//! (objects), `outbox/` (emails, with the outbox transport), `public-url` (where the server
//! serves it).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use crate::infra::clock::Clock;
use crate::infra::sqlite::{Database, DatabaseConfig, DbError, Synchronous};
use crate::infra::telemetry::error_chain;
use crate::ports::blobs::{BlobError, Buckets, BucketsConfig};
use crate::ports::mail::{
    Deduplicated, MailConfig, MailError, MailTransport, Mailer, OutboxMailer, SmtpMailer, parse_sender,
};
use crate::ports::stream::{StreamError, StreamLog};
use crate::ports::table::sqlite::SqliteTable;
use crate::ports::table::{TableError, TableSpec};

/// Where the server records the URL it serves the stage at.
const PUBLIC_URL_FILE: &str = "public-url";

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("cannot create the data directory {}", path.display())]
    DataDirectory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// What a platform is opened from: the stage, where its data lives, its region, and the sections
/// of the adapters it opens (`config::Config::platform` gives them).
#[derive(Debug, Clone)]
pub struct PlatformSettings {
    pub stage: String,
    pub stage_dir: PathBuf,
    pub region: String,
    pub database: DatabaseConfig,
    pub mail: MailConfig,
    pub buckets: BucketsConfig,
}

#[derive(Debug)]
pub struct Platform {
    settings: PlatformSettings,
    pub clock: Arc<dyn Clock>,
    pub db: Arc<Database>,
    pub stream: Arc<StreamLog>,
    pub buckets: Arc<Buckets>,
    pub mailer: Arc<dyn Mailer>,
    tables: Mutex<Vec<SqliteTable>>,
}

impl Platform {
    pub fn open(config: &PlatformSettings, clock: Arc<dyn Clock>) -> Result<Self, PlatformError> {
        let stage_dir = config.stage_dir.clone();
        std::fs::create_dir_all(&stage_dir)
            .map_err(|source| PlatformError::DataDirectory { path: stage_dir.clone(), source })?;
        let db = Arc::new(Database::open(&stage_dir.join("stratus.db"), config.database.synchronous)?);
        let stream = Arc::new(StreamLog::open(Arc::clone(&db), Arc::clone(&clock))?);
        let durable = config.database.synchronous == Synchronous::Full;
        let buckets = Arc::new(Buckets::new(
            &stage_dir.join("buckets"),
            Arc::clone(&db),
            Arc::clone(&clock),
            &config.region,
            durable,
            &config.buckets,
            &crate::ports::blobs::stage_key_path(&stage_dir),
        )?);
        let from = parse_sender(&config.mail.from)?;
        let mailer: Arc<dyn Mailer> = match config.mail.transport {
            MailTransport::Outbox => {
                let outbox = OutboxMailer::new(&stage_dir.join("outbox"), from)?;
                Arc::new(Deduplicated::new(outbox, Arc::clone(&db), Arc::clone(&clock))?)
            }
            MailTransport::Smtp => {
                let smtp = SmtpMailer::new(&config.mail.smtp, from)?;
                Arc::new(Deduplicated::new(smtp, Arc::clone(&db), Arc::clone(&clock))?)
            }
        };
        Ok(Self {
            settings: config.clone(),
            clock,
            db,
            stream,
            buckets,
            mailer,
            tables: Mutex::new(Vec::new()),
        })
    }

    /// The stage's name (`dev`, `prod`, …).
    pub fn stage(&self) -> &str {
        &self.settings.stage
    }

    /// The directory holding the stage's database, buckets and outbox.
    pub fn stage_dir(&self) -> &std::path::Path {
        &self.settings.stage_dir
    }

    /// Records the URL the stage is served at, so that tools working on the same stage (the
    /// CLI rendering pages, issuing tokens) use the server's, even when it listens on port 0.
    pub fn record_public_url(&self, url: &str) -> std::io::Result<()> {
        std::fs::write(self.settings.stage_dir.join(PUBLIC_URL_FILE), url)
    }

    /// The URL the stage's server last recorded, if any.
    pub fn recorded_public_url(&self) -> Option<String> {
        let recorded = std::fs::read_to_string(self.settings.stage_dir.join(PUBLIC_URL_FILE)).ok()?;
        let url = recorded.trim();
        (!url.is_empty()).then(|| url.to_owned())
    }

    /// The region reported in events and identifiers.
    pub fn region(&self) -> &str {
        &self.settings.region
    }

    /// Opens (creating on first use) a table of this stage; its expired items are swept by
    /// [`Platform::sweep_expired`].
    pub fn table(&self, spec: TableSpec) -> Result<SqliteTable, TableError> {
        let table =
            SqliteTable::open(Arc::clone(&self.db), spec, Arc::clone(&self.clock), &self.settings.region)?;
        self.tables.lock().unwrap_or_else(PoisonError::into_inner).push(table.clone());
        Ok(table)
    }

    /// The outbox of this stage, for reading what was sent.
    pub fn outbox(&self) -> Result<OutboxMailer, MailError> {
        OutboxMailer::new(&self.settings.stage_dir.join("outbox"), parse_sender(&self.settings.mail.from)?)
    }

    /// Deletes expired items of every open table; returns how many.
    pub async fn sweep_expired(&self) -> usize {
        let tables = self.tables.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let mut swept = 0;
        for table in tables {
            loop {
                match table.sweep_expired(500).await {
                    Ok(0) => break,
                    Ok(count) => swept += count,
                    Err(error) => {
                        tracing::error!(error = %error_chain(&error), "TTL sweep failed");
                        break;
                    }
                }
            }
        }
        swept
    }
}
