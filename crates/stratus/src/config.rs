//! Configuration: embedded defaults < optional TOML file < environment (`STRATUS_SECTION__KEY`)
//! < command-line flags. Loaded and validated once in `main`, then passed down by value.
//!
//! Each section belongs to its component, which defines, defaults and validates it
//! (`http::ServerConfig`, `blog::BlogConfig`, …); this module only aggregates the sections and
//! layers the sources.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};

use crate::apps::blog::BlogConfig;
use crate::apps::media::MediaConfig;
use crate::apps::todos::TodosConfig;
use crate::infra::http::ServerConfig;
use crate::infra::settings::{Invalid, invalid};
use crate::infra::sqlite::DatabaseConfig;
use crate::infra::telemetry::LogConfig;
use crate::platform::PlatformSettings;
use crate::ports::blobs::BucketsConfig;
use crate::ports::mail::MailConfig;
use crate::ports::stream::StreamConfig;
use crate::ports::table::TableConfig;
use crate::services::cognito::identity_pool::IdentityPoolsConfig;
use crate::services::cognito::user_pool::IdentityConfig;
use crate::services::edge::EdgeConfig;
use crate::services::functions::FunctionsConfig;
use crate::services::gateway::GatewayConfig;
use crate::services::iam::IamConfig;
use crate::services::s3::S3Config;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {} does not exist", path.display())]
    MissingFile { path: PathBuf },
    #[error("invalid configuration")]
    Parse(#[source] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Invalid),
}

/// Values given on the command line; they override every other source.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub stage: Option<String>,
    pub listen: Option<SocketAddr>,
    /// `serve --tls`: HTTPS with the stage's local CA.
    pub local_tls: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Namespaces all data (tables, buckets, outbox): `dev`, `test`, `prod`, …
    pub stage: String,
    /// Root of all state; each stage lives in its own subdirectory.
    pub data_dir: PathBuf,
    /// Region reported in events and identifiers, as AWS clients expect one.
    pub region: String,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub table: TableConfig,
    pub stream: StreamConfig,
    pub functions: FunctionsConfig,
    pub mail: MailConfig,
    pub identity: IdentityConfig,
    pub identity_pools: IdentityPoolsConfig,
    pub iam: IamConfig,
    pub s3: S3Config,
    pub buckets: BucketsConfig,
    pub blog: BlogConfig,
    pub todos: TodosConfig,
    pub edge: EdgeConfig,
    pub gateway: GatewayConfig,
    pub media: MediaConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stage: "dev".into(),
            data_dir: PathBuf::from("data"),
            region: "us-east-1".into(),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            table: TableConfig::default(),
            stream: StreamConfig::default(),
            functions: FunctionsConfig::default(),
            mail: MailConfig::default(),
            identity: IdentityConfig::default(),
            identity_pools: IdentityPoolsConfig::default(),
            iam: IamConfig::default(),
            s3: S3Config::default(),
            buckets: BucketsConfig::default(),
            blog: BlogConfig::default(),
            todos: TodosConfig::default(),
            edge: EdgeConfig::default(),
            gateway: GatewayConfig::default(),
            media: MediaConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (which must exist when given), then `STRATUS_*` variables of
    /// `env`, then `overrides`, and validates the result.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::MissingFile { path: path.to_owned() });
            }
            figment = figment.merge(Toml::file_exact(path));
        }
        figment = figment.merge(EnvVars::new(env));
        if let Some(data_dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", data_dir));
        }
        if let Some(stage) = &overrides.stage {
            figment = figment.merge(Serialized::default("stage", stage));
        }
        if let Some(listen) = overrides.listen {
            figment = figment.merge(Serialized::default("server.listen", listen));
        }
        if overrides.local_tls {
            figment = figment.merge(Serialized::default("server.tls.mode", "local"));
        }
        let config: Config = figment.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// The directory holding this stage's database, buckets and outbox.
    pub fn stage_dir(&self) -> PathBuf {
        self.data_dir.join(&self.stage)
    }

    /// What the stage's platform (the local adapters) is opened from.
    pub fn platform(&self) -> PlatformSettings {
        PlatformSettings {
            stage: self.stage.clone(),
            stage_dir: self.stage_dir(),
            region: self.region.clone(),
            database: self.database.clone(),
            mail: self.mail.clone(),
            buckets: self.buckets.clone(),
        }
    }

    /// Checks the settings that belong to no component, then each component's section, then
    /// the rules between sections.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_stage()?;
        self.server.validate()?;
        self.table.validate()?;
        self.stream.validate()?;
        self.functions.validate()?;
        self.mail.validate()?;
        self.identity.validate()?;
        self.identity_pools.validate()?;
        self.iam.validate()?;
        self.s3.validate()?;
        self.buckets.validate()?;
        self.blog.validate()?;
        self.todos.validate()?;
        self.gateway.validate()?;
        self.media.validate()?;
        self.edge.validate()?;
        if self.media.bucket == self.blog.site_bucket {
            return Err(
                Invalid { key: "media.bucket", problem: "must not be blog.site_bucket".into() }.into()
            );
        }
        self.validate_roles()?;
        Ok(())
    }

    /// Every role an identity pool hands out is one IAM knows.
    fn validate_roles(&self) -> Result<(), Invalid> {
        for (name, pool) in &self.identity_pools.pools {
            if let Some(role) = [&pool.authenticated_role, &pool.unauthenticated_role]
                .into_iter()
                .find(|role| !self.iam.has_role(role))
            {
                return invalid(
                    "identity_pools.<name>.authenticated_role",
                    format!(
                        "identity pool `{name}` names `{role}`, which is not a role of [iam] (nor a built-in one)"
                    ),
                );
            }
        }
        Ok(())
    }

    fn validate_stage(&self) -> Result<(), Invalid> {
        let stage_ok = self.stage.len() <= 32
            && self.stage.starts_with(|c: char| c.is_ascii_lowercase())
            && self.stage.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !stage_ok {
            return invalid("stage", "must be 1-32 characters of a-z, 0-9 and '-', starting with a letter");
        }
        if self.data_dir.as_os_str().is_empty() {
            return invalid("data_dir", "must not be empty");
        }
        if self.region.is_empty()
            || !self.region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return invalid("region", "must be a region name such as us-east-1");
        }
        Ok(())
    }
}

/// `STRATUS_SECTION__KEY=value` → `section.key = value`, read from the given variables rather
/// than the process environment so tests can pass their own. `STRATUS_CONFIG` names the file
/// and is not a key.
#[derive(Debug)]
struct EnvVars(Vec<(String, String)>);

impl EnvVars {
    fn new(env: impl IntoIterator<Item = (String, String)>) -> Self {
        let vars = env
            .into_iter()
            .filter(|(name, _)| name.starts_with("STRATUS_") && name != "STRATUS_CONFIG")
            .collect();
        Self(vars)
    }
}

impl figment::Provider for EnvVars {
    fn metadata(&self) -> figment::Metadata {
        figment::Metadata::named("environment variable")
            .interpolater(|_, path| format!("STRATUS_{}", path.join("__").to_ascii_uppercase()))
    }

    fn data(&self) -> Result<figment::value::Map<figment::Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (name, value) in &self.0 {
            let key = name["STRATUS_".len()..].to_ascii_lowercase().replace("__", ".");
            if key.is_empty() {
                continue;
            }
            let value: Value = value.parse().unwrap_or_else(|never| match never {});
            insert_dotted(&mut dict, &key, value);
        }
        Ok(figment::Profile::Default.collect(dict))
    }
}

fn insert_dotted(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let entry = dict.entry(head.to_owned()).or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_dotted(inner, rest, value);
            }
        }
    }
}
