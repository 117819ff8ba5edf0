//! The deployment's adapters, opened once per execution environment from Lambda's environment:
//! tables on DynamoDB, buckets on S3, mail through SES with the sent-log on DynamoDB, access
//! tokens checked against the user pool's JWKS.
//!
//! Environment (the SAM template sets it): the settings as for `stratus serve` (`STRATUS_*`:
//! `STRATUS_MAIL__FROM`, `STRATUS_SERVER__PUBLIC_URL`, the apps' sections), and the wiring of
//! the deployment under [`WIRING`], which the settings do not read: `STRATUS_AWS_TABLE_<NAME>`
//! and `STRATUS_AWS_BUCKET_<NAME>` name the real table and bucket behind the code's `<name>`
//! (upper case, `-` as `_`); `STRATUS_AWS_USER_POOL_ISSUER`, `STRATUS_AWS_USER_POOL_CLIENT_IDS`
//! (comma-separated) and optionally `STRATUS_AWS_USER_POOL_DISCOVERY_URL`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use object_store::ObjectStore;
use stratus::config::{Config, Overrides};
use stratus::infra::clock::{Clock, SystemClock};
use stratus::ports::mail::{Claimed, Mailer, parse_sender, sent_log_spec};
use stratus::ports::table::{Table, TableSpec};
use stratus::services::cognito::authorizer::{Authorizer, RemoteIssuer};

use crate::dynamodb::{DynamoTable, WhenMissing};
use crate::mail::SesMailer;
use crate::objects::{S3Buckets, S3Settings};

/// The prefix of the deployment's wiring variables.
pub(crate) const WIRING: &str = "STRATUS_AWS_";

/// Longer than any send takes, shorter than a stream's retry: a crashed send is retried.
const MAIL_LEASE: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    #[error("invalid configuration")]
    Config(#[source] stratus::config::ConfigError),
    #[error("cannot open table `{table}`")]
    Table {
        table: String,
        #[source]
        source: stratus::ports::table::TableError,
    },
    #[error(transparent)]
    Bucket(#[from] crate::objects::ObjectsError),
    #[error(transparent)]
    Mail(#[from] stratus::ports::mail::MailError),
    #[error("cannot build the authorizer's HTTP client")]
    Authorizer(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// What the functions are built from.
#[derive(Debug)]
pub struct Ports {
    pub config: Config,
    pub clock: Arc<dyn Clock>,
    pub public_url: String,
    dynamodb: aws_sdk_dynamodb::Client,
    table_names: HashMap<String, String>,
    buckets: S3Buckets,
    ses: aws_sdk_sesv2::Client,
    issuer: Option<RemoteIssuer>,
}

impl Ports {
    /// From the process environment, as Lambda gives it.
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, PortsError> {
        Self::new(sdk, &std::env::vars().collect(), S3Settings::from_env())
    }

    /// From `env` (variable → value), with buckets reached through `buckets`.
    pub fn new(
        sdk: &SdkConfig,
        env: &HashMap<String, String>,
        buckets: S3Settings,
    ) -> Result<Self, PortsError> {
        let settings = env.iter().filter(|(name, _)| !name.starts_with(WIRING));
        let settings = settings.map(|(name, value)| (name.clone(), value.clone()));
        let config = Config::load(None, settings, &Overrides::default()).map_err(PortsError::Config)?;
        let table_names = env
            .iter()
            .filter_map(|(name, value)| {
                Some((logical(name.strip_prefix("STRATUS_AWS_TABLE_")?), value.clone()))
            })
            .collect();
        let issuer = env.get("STRATUS_AWS_USER_POOL_ISSUER").map(|issuer| RemoteIssuer {
            issuer: issuer.clone(),
            client_ids: env
                .get("STRATUS_AWS_USER_POOL_CLIENT_IDS")
                .map(|ids| {
                    ids.split(',').map(|id| id.trim().to_owned()).filter(|id| !id.is_empty()).collect()
                })
                .unwrap_or_default(),
            discovery_url: env.get("STRATUS_AWS_USER_POOL_DISCOVERY_URL").cloned(),
        });
        let public_url =
            config.server.public_url.clone().unwrap_or_default().trim_end_matches('/').to_owned();
        Ok(Self {
            config,
            clock: Arc::new(SystemClock),
            public_url,
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            table_names,
            buckets: S3Buckets::new(buckets),
            ses: aws_sdk_sesv2::Client::new(sdk),
            issuer,
        })
    }

    /// The table the code calls `spec.name`; it must exist with that key schema.
    pub async fn table(&self, spec: TableSpec) -> Result<Arc<dyn Table>, PortsError> {
        let name = self.table_names.get(&spec.name).cloned().unwrap_or_else(|| spec.name.clone());
        let logical = spec.name.clone();
        let table = DynamoTable::open(self.dynamodb.clone(), spec, name, WhenMissing::Fail)
            .await
            .map_err(|source| PortsError::Table { table: logical, source })?;
        Ok(Arc::new(table.with_clock(Arc::clone(&self.clock))))
    }

    pub fn bucket(&self, name: &str) -> Result<Arc<dyn ObjectStore>, PortsError> {
        Ok(self.buckets.bucket(name)?)
    }

    /// SES from the configured sender (`mail.from`), each key sent once across instances.
    pub async fn mailer(&self) -> Result<Arc<dyn Mailer>, PortsError> {
        let transport = SesMailer::new(self.ses.clone(), parse_sender(&self.config.mail.from)?, None);
        let log = self.table(sent_log_spec()).await?;
        Ok(Arc::new(Claimed::new(transport, log, Arc::clone(&self.clock), MAIL_LEASE)))
    }

    /// Access tokens of the user pool (`STRATUS_AWS_USER_POOL_ISSUER`), checked in the function
    /// too: API Gateway's authorizer is one guard, not the only one.
    pub fn authorizer(&self) -> Result<Arc<Authorizer>, PortsError> {
        let issuers: Vec<RemoteIssuer> = self.issuer.iter().cloned().collect();
        let authorizer = Authorizer::new(Vec::new(), &issuers, Arc::clone(&self.clock))
            .map_err(|error| PortsError::Authorizer(Box::new(error)))?;
        Ok(Arc::new(authorizer))
    }
}

/// `BLOG` → `blog`, `MAIL_SENT` → `mail-sent`.
fn logical(variable: &str) -> String {
    variable.to_ascii_lowercase().replace('_', "-")
}
