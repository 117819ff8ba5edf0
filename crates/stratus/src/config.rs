//! Configuration: embedded defaults < optional TOML file < environment (`STRATUS_SECTION__KEY`)
//! < command-line flags. Loaded and validated once in `main`, then passed down by value.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use serde::{Deserialize, Serialize};

use crate::media::thumbnail::DecodeLimits;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {} does not exist", path.display())]
    MissingFile { path: PathBuf },
    #[error("invalid configuration")]
    Parse(#[source] Box<figment::Error>),
    #[error("invalid configuration: `{key}` {problem}")]
    Invalid { key: &'static str, problem: String },
}

/// Values given on the command line; they override every other source.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub stage: Option<String>,
    pub listen: Option<SocketAddr>,
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
    pub blog: BlogConfig,
    pub edge: EdgeConfig,
    pub gateway: GatewayConfig,
    pub media: MediaConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// The URL clients use to reach this server (links, token issuers). Defaults to
    /// `http://<listen address>`.
    pub public_url: Option<String>,
    /// A new connection's first request head (request line and headers) must arrive within
    /// this time; a later one within this time of its first byte.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A keep-alive connection waiting for its next request is closed after this long.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// A request body has this long, plus one second for every `body_min_rate` bytes it has
    /// delivered, to arrive whole (Apache's `RequestReadTimeout body=…,MinRate=…`).
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// Bytes per second a request body must keep up, on average, once `body_timeout` has passed.
    pub body_min_rate: u64,
    /// A response the client has stopped reading for this long is abandoned and its
    /// connection closed.
    #[serde(with = "humantime_serde")]
    pub send_timeout: Duration,
    /// Connections open at once; beyond, a new connection is answered 503 and closed. Lowered
    /// at start-up to what the process's file descriptor limit allows.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client: its /64), at most
    /// `max_connections`; beyond, a new connection is answered 429 and closed. Behind a reverse
    /// proxy, raise it.
    pub max_connections_per_address: usize,
    /// After a shutdown signal, how long in-flight requests may take before their connections
    /// are closed.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Who may read `/metrics` (Prometheus text): `loopback` clients only, `any` client, or
    /// `off`.
    pub metrics: MetricsAccess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAccess {
    Loopback,
    Any,
    Off,
}

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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TableConfig {
    /// How often expired items (TTL) are deleted in the background.
    #[serde(with = "humantime_serde")]
    pub ttl_sweep_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartingPosition {
    /// A new consumer starts with the oldest record still retained.
    TrimHorizon,
    /// A new consumer starts after the newest record.
    Latest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    #[serde(with = "humantime_serde")]
    pub retention: Duration,
    pub batch_size: usize,
    #[serde(with = "humantime_serde")]
    pub batching_window: Duration,
    /// Invocations of a single failing record before it is dead-lettered.
    pub max_attempts: u32,
    /// A failing record older than this is dead-lettered without further attempts.
    #[serde(with = "humantime_serde")]
    pub max_record_age: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_initial: Duration,
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    pub bisect_on_error: bool,
    pub starting_position: StartingPosition,
    /// How often consumers look for records written by other processes (the CLI).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub trim_interval: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FunctionsConfig {
    /// Invocations of HTTP functions running at once. A slot is taken once the request body
    /// has arrived and given back when the response is ready, never held by a slow socket.
    pub http_concurrency: usize,
    /// How long a request may wait for a free HTTP slot before it is answered 503.
    #[serde(with = "humantime_serde")]
    pub http_queue_timeout: Duration,
    /// An HTTP function running longer than this is answered 504.
    #[serde(with = "humantime_serde")]
    pub http_timeout: Duration,
    /// Largest request body of an HTTP function that sets no limit of its own (413 beyond).
    pub max_body_bytes: usize,
    /// Invocations of stream and object-event functions running at once, in slots of their own
    /// that HTTP requests never take.
    pub background_concurrency: usize,
    /// A background invocation running longer than this fails (and is retried like any failure).
    #[serde(with = "humantime_serde")]
    pub background_timeout: Duration,
    /// `/readyz` reports unavailable once either pool has had no free slot for this long.
    #[serde(with = "humantime_serde")]
    pub saturation_threshold: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// One `.eml` file per message under `<stage dir>/outbox`.
    Outbox,
    Smtp,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    pub transport: MailTransport,
    /// Sender of every message, e.g. `Stratus <no-reply@example.com>`.
    pub from: String,
    pub smtp: SmtpConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No encryption: only for a relay on the same host.
    None,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    /// A PEM certificate to trust in addition to the public roots, for relays with a private CA.
    pub ca_file: Option<PathBuf>,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("timeout", &self.timeout)
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// How long an anonymous GET response of the API may be answered from memory (0s: never).
    /// Changes to the data behind it clear it sooner.
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    /// Memory for cached responses, in bytes.
    pub cache_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// The bucket photos are uploaded to and served from under `/media/`.
    pub bucket: String,
    /// Long edges of the thumbnails made for every photo (never larger than the photo).
    pub thumbnail_widths: Vec<u32>,
    /// Formats of every thumbnail: `jpeg`, `webp`.
    pub thumbnail_formats: Vec<crate::media::thumbnail::OutputFormat>,
    /// Largest photo accepted, in pixels (width × height, read from the header).
    pub max_pixels: u64,
    /// Memory one decode may take, in bytes, known from the header before decoding: a PNG,
    /// WebP or GIF is decoded whole (4 bytes a pixel for RGBA, plus an RGB copy); a JPEG only at
    /// the scale its largest thumbnail needs, except progressive ones, which hold 2 bytes a pixel
    /// and component. At most one decode runs per core.
    pub max_decode_bytes: u64,
    /// Largest upload accepted, in bytes (413 beyond).
    pub max_upload_bytes: usize,
    /// Widths the edge makes on request (`/media/<key>?w=640&format=webp`); others get 400.
    pub variant_widths: Vec<u32>,
    /// How long a presigned upload URL stays valid.
    #[serde(with = "humantime_serde")]
    pub upload_link_ttl: Duration,
}

impl MediaConfig {
    pub fn decode_limits(&self) -> DecodeLimits {
        DecodeLimits { max_pixels: self.max_pixels, max_bytes: self.max_decode_bytes }
    }
}

impl Default for MediaConfig {
    fn default() -> Self {
        use crate::media::thumbnail::OutputFormat;
        Self {
            bucket: "media".into(),
            thumbnail_widths: vec![256, 1024],
            thumbnail_formats: vec![OutputFormat::Jpeg, OutputFormat::Webp],
            max_pixels: DecodeLimits::DEFAULT.max_pixels,
            max_decode_bytes: DecodeLimits::DEFAULT.max_bytes,
            max_upload_bytes: 25 * 1024 * 1024,
            variant_widths: vec![320, 640, 960, 1280, 1920],
            upload_link_ttl: Duration::from_secs(15 * 60),
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self { cache_ttl: Duration::from_secs(60), cache_bytes: 16 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Memory for hot objects (and their compressed variants), in bytes.
    pub cache_bytes: u64,
    /// Sent with every page the edge serves.
    pub content_security_policy: String,
    /// Permanent redirects, path → location (`"/old" = "/posts/new/"`).
    pub redirects: BTreeMap<String, String>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            cache_bytes: 64 * 1024 * 1024,
            content_security_policy:
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                                      frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
                    .into(),
            redirects: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlogConfig {
    /// The user-pool group whose members write posts.
    pub authors_group: String,
    /// Largest request body the posts API accepts (413 beyond).
    pub max_body_bytes: usize,
    /// Posts per page when a listing does not say, and on the site's index pages.
    pub page_size: usize,
    /// The site's name, in every page and the feed.
    pub title: String,
    pub description: String,
    /// The private bucket the generated pages are written to (served only by the edge).
    pub site_bucket: String,
    /// Entries in the Atom feed.
    pub feed_entries: usize,
    /// Subscriptions accepted per client address per minute (and as a burst); beyond, 429
    /// with `Retry-After`.
    pub subscribe_per_address_per_minute: u32,
    /// How long an unsubscribe link stays valid.
    #[serde(with = "humantime_serde")]
    pub unsubscribe_link_ttl: Duration,
}

impl Default for BlogConfig {
    fn default() -> Self {
        Self {
            authors_group: "authors".into(),
            max_body_bytes: 1024 * 1024,
            page_size: 10,
            title: "Stratus Blog".into(),
            description: "Notes, written rarely and read often.".into(),
            site_bucket: "site".into(),
            feed_entries: 20,
            subscribe_per_address_per_minute: 5,
            unsubscribe_link_ttl: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// User pools by name; a pool `default` with a client `app` always exists.
    pub pools: BTreeMap<String, PoolConfig>,
    /// The access key id operators sign Admin* requests with (SigV4).
    pub operator_access_key_id: String,
    /// Its secret; when unset, one is generated on first start and kept in
    /// `<stage dir>/identity/operator-credentials` (readable by the owner only).
    pub operator_secret_access_key: Option<String>,
    /// Sign-in attempts allowed per username per minute (and as a burst).
    pub sign_in_per_user_per_minute: u32,
    /// Requests to the identity endpoint allowed per client address per minute.
    pub requests_per_address_per_minute: u32,
    /// Other OpenID Connect issuers whose access tokens the API accepts (e.g. a real Cognito
    /// pool).
    pub issuers: Vec<RemoteIssuer>,
}

impl fmt::Debug for IdentityConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityConfig")
            .field("pools", &self.pools)
            .field("operator_access_key_id", &self.operator_access_key_id)
            .field(
                "operator_secret_access_key",
                &self.operator_secret_access_key.as_ref().map(|_| "<redacted>"),
            )
            .field("sign_in_per_user_per_minute", &self.sign_in_per_user_per_minute)
            .field("requests_per_address_per_minute", &self.requests_per_address_per_minute)
            .field("issuers", &self.issuers)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// `<region>_<9 alphanumerics>`; generated on first start and kept when unset.
    pub id: Option<String>,
    /// App clients by name.
    pub clients: BTreeMap<String, ClientConfig>,
    pub password_policy: PasswordPolicy,
    #[serde(with = "humantime_serde")]
    pub access_token_validity: Duration,
    #[serde(with = "humantime_serde")]
    pub id_token_validity: Duration,
    #[serde(with = "humantime_serde")]
    pub refresh_token_validity: Duration,
    /// Sender name in verification and reset emails.
    pub email_subject_prefix: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// 26 lowercase alphanumerics; generated on first start and kept when unset.
    pub id: Option<String>,
}

/// Cognito's password policy; the defaults are Cognito's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    pub minimum_length: usize,
    pub require_lowercase: bool,
    pub require_uppercase: bool,
    pub require_numbers: bool,
    pub require_symbols: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteIssuer {
    /// The issuer URL (`iss`), e.g. `https://cognito-idp.us-east-1.amazonaws.com/us-east-1_AbCdEf123`;
    /// its discovery document and JWKS are fetched from it.
    pub issuer: String,
    /// App client ids whose tokens are accepted.
    pub client_ids: Vec<String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        let pool = PoolConfig {
            clients: BTreeMap::from([("app".to_owned(), ClientConfig::default())]),
            ..PoolConfig::default()
        };
        Self {
            pools: BTreeMap::from([("default".to_owned(), pool)]),
            operator_access_key_id: "STRATUSOPERATOR".into(),
            operator_secret_access_key: None,
            sign_in_per_user_per_minute: 10,
            requests_per_address_per_minute: 300,
            issuers: Vec::new(),
        }
    }
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            id: None,
            clients: BTreeMap::new(),
            password_policy: PasswordPolicy::default(),
            access_token_validity: Duration::from_secs(3600),
            id_token_validity: Duration::from_secs(3600),
            refresh_token_validity: Duration::from_secs(30 * 24 * 3600),
            email_subject_prefix: "Stratus".into(),
        }
    }
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            minimum_length: 8,
            require_lowercase: true,
            require_uppercase: true,
            require_numbers: true,
            require_symbols: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Pretty on a terminal, JSON otherwise.
    Auto,
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A `tracing` filter directive, e.g. `info,stratus=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            stage: "dev".into(),
            data_dir: PathBuf::from("data"),
            region: "us-east-1".into(),
            server: ServerConfig::default(),
            database: DatabaseConfig { synchronous: Synchronous::Normal },
            table: TableConfig { ttl_sweep_interval: Duration::from_secs(5) },
            stream: StreamConfig::default(),
            functions: FunctionsConfig::default(),
            mail: MailConfig::default(),
            identity: IdentityConfig::default(),
            blog: BlogConfig::default(),
            edge: EdgeConfig::default(),
            gateway: GatewayConfig::default(),
            media: MediaConfig::default(),
            log: LogConfig { format: LogFormat::Auto, filter: "info".into() },
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(10),
            body_min_rate: 1024,
            send_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_address: 256,
            shutdown_grace: Duration::from_secs(10),
            metrics: MetricsAccess::Loopback,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self { synchronous: Synchronous::Normal }
    }
}

impl Default for TableConfig {
    fn default() -> Self {
        Config::default().table
    }
}

impl Default for StreamConfig {
    fn default() -> Self {
        let day = Duration::from_secs(24 * 60 * 60);
        Self {
            retention: day,
            batch_size: 100,
            batching_window: Duration::ZERO,
            max_attempts: 5,
            max_record_age: day,
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            bisect_on_error: true,
            starting_position: StartingPosition::TrimHorizon,
            poll_interval: Duration::from_secs(1),
            trim_interval: Duration::from_secs(60),
        }
    }
}

impl Default for FunctionsConfig {
    fn default() -> Self {
        Self {
            http_concurrency: 64,
            http_queue_timeout: Duration::from_secs(1),
            // API Gateway's integration timeout.
            http_timeout: Duration::from_secs(29),
            max_body_bytes: 1024 * 1024,
            background_concurrency: 16,
            background_timeout: Duration::from_secs(30),
            saturation_threshold: Duration::from_secs(5),
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            transport: MailTransport::Outbox,
            from: "Stratus <no-reply@localhost>".into(),
            smtp: SmtpConfig::default(),
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            host: String::new(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password: None,
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Config::default().log
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
        let config: Config = figment.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// The directory holding this stage's database, buckets and outbox.
    pub fn stage_dir(&self) -> PathBuf {
        self.data_dir.join(&self.stage)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| Err(ConfigError::Invalid { key, problem: problem.into() });
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
        if let Some(url) = &self.server.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return invalid("server.public_url", "must start with http:// or https://");
        }
        let stream = &self.stream;
        if !(1..=10_000).contains(&stream.batch_size) {
            return invalid("stream.batch_size", "must be between 1 and 10000");
        }
        if stream.max_attempts == 0 {
            return invalid("stream.max_attempts", "must be at least 1");
        }
        if stream.retention < Duration::from_secs(60) {
            return invalid("stream.retention", "must be at least 1m");
        }
        if stream.backoff_initial > stream.backoff_max {
            return invalid("stream.backoff_initial", "must not exceed stream.backoff_max");
        }
        if stream.poll_interval.is_zero() || stream.trim_interval.is_zero() {
            return invalid("stream.poll_interval", "and stream.trim_interval must be positive");
        }
        if self.table.ttl_sweep_interval.is_zero() {
            return invalid("table.ttl_sweep_interval", "must be positive");
        }
        self.validate_server()?;
        self.validate_functions()?;
        if let Err(e) = self.mail.from.parse::<lettre::message::Mailbox>() {
            return invalid("mail.from", &format!("is not a valid mailbox: {e}"));
        }
        if self.mail.transport == MailTransport::Smtp && self.mail.smtp.host.is_empty() {
            return invalid("mail.smtp.host", "is required when mail.transport = \"smtp\"");
        }
        if let Some(ca_file) = &self.mail.smtp.ca_file
            && !ca_file.is_file()
        {
            return invalid(
                "mail.smtp.ca_file",
                &format!("names {}, which is not a file", ca_file.display()),
            );
        }
        if self.mail.smtp.username.is_some() != self.mail.smtp.password.is_some() {
            return invalid("mail.smtp.username", "and mail.smtp.password must be set together");
        }
        self.validate_identity()?;
        self.validate_blog()
    }

    fn validate_server(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| Err(ConfigError::Invalid { key, problem: problem.into() });
        let server = &self.server;
        let positive = [
            ("server.header_read_timeout", server.header_read_timeout),
            ("server.idle_timeout", server.idle_timeout),
            ("server.body_timeout", server.body_timeout),
            ("server.send_timeout", server.send_timeout),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, timeout)| timeout.is_zero()) {
            return invalid(key, "must be positive");
        }
        if server.body_min_rate == 0 {
            return invalid("server.body_min_rate", "must be at least 1 byte per second");
        }
        if server.max_connections == 0 {
            return invalid("server.max_connections", "must be at least 1");
        }
        if server.max_connections_per_address == 0 {
            return invalid("server.max_connections_per_address", "must be at least 1");
        }
        Ok(())
    }

    fn validate_functions(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| Err(ConfigError::Invalid { key, problem: problem.into() });
        let functions = &self.functions;
        if functions.http_concurrency == 0 {
            return invalid("functions.http_concurrency", "must be at least 1");
        }
        if functions.background_concurrency == 0 {
            return invalid("functions.background_concurrency", "must be at least 1");
        }
        if functions.http_timeout.is_zero() {
            return invalid("functions.http_timeout", "must be positive");
        }
        if functions.background_timeout.is_zero() {
            return invalid("functions.background_timeout", "must be positive");
        }
        if functions.saturation_threshold.is_zero() {
            return invalid("functions.saturation_threshold", "must be positive");
        }
        if !(1024..=64 * 1024 * 1024).contains(&functions.max_body_bytes) {
            return invalid("functions.max_body_bytes", "must be between 1 KiB and 64 MiB");
        }
        Ok(())
    }

    fn validate_blog(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| Err(ConfigError::Invalid { key, problem: problem.into() });
        if self.blog.authors_group.is_empty() {
            return invalid("blog.authors_group", "must not be empty");
        }
        if !(1024..=64 * 1024 * 1024).contains(&self.blog.max_body_bytes) {
            return invalid("blog.max_body_bytes", "must be between 1 KiB and 64 MiB");
        }
        if !(1..=100).contains(&self.blog.page_size) {
            return invalid("blog.page_size", "must be between 1 and 100");
        }
        if self.blog.title.trim().is_empty() {
            return invalid("blog.title", "must not be empty");
        }
        if crate::blobs::validate_bucket_name(&self.blog.site_bucket).is_err() {
            return invalid("blog.site_bucket", "must be a valid bucket name");
        }
        if !(1..=500).contains(&self.blog.feed_entries) {
            return invalid("blog.feed_entries", "must be between 1 and 500");
        }
        if self.blog.subscribe_per_address_per_minute == 0 {
            return invalid("blog.subscribe_per_address_per_minute", "must be at least 1");
        }
        if self.blog.unsubscribe_link_ttl < Duration::from_secs(3600) {
            return invalid("blog.unsubscribe_link_ttl", "must be at least 1h");
        }
        let media = &self.media;
        if crate::blobs::validate_bucket_name(&media.bucket).is_err() || media.bucket == self.blog.site_bucket
        {
            return invalid("media.bucket", "must be a valid bucket name other than blog.site_bucket");
        }
        if media.thumbnail_widths.is_empty()
            || media.thumbnail_widths.iter().any(|w| !(16..=4096).contains(w))
        {
            return invalid("media.thumbnail_widths", "must list widths between 16 and 4096");
        }
        if media.variant_widths.iter().any(|w| !(16..=4096).contains(w)) {
            return invalid("media.variant_widths", "must list widths between 16 and 4096");
        }
        if !(Duration::from_secs(60)..=Duration::from_secs(7 * 24 * 3600)).contains(&media.upload_link_ttl) {
            return invalid("media.upload_link_ttl", "must be between 1m and 7days");
        }
        if media.thumbnail_formats.is_empty() {
            return invalid("media.thumbnail_formats", "must list at least one of jpeg, webp");
        }
        if !(1_000_000..=1_000_000_000).contains(&media.max_pixels) {
            return invalid("media.max_pixels", "must be between 1 and 1000 megapixels");
        }
        if !(16 * 1024 * 1024..=16 * 1024 * 1024 * 1024).contains(&media.max_decode_bytes) {
            return invalid("media.max_decode_bytes", "must be between 16 MiB and 16 GiB");
        }
        if !(1024..=1024 * 1024 * 1024).contains(&media.max_upload_bytes) {
            return invalid("media.max_upload_bytes", "must be between 1 KiB and 1 GiB");
        }
        if self.edge.cache_bytes < 1024 * 1024 {
            return invalid("edge.cache_bytes", "must be at least 1 MiB");
        }
        if let Some((from, to)) =
            self.edge.redirects.iter().find(|(from, to)| !from.starts_with('/') || to.is_empty())
        {
            return Err(ConfigError::Invalid {
                key: "edge.redirects",
                problem: format!("`{from}` → `{to}`: paths start with '/' and locations are not empty"),
            });
        }
        Ok(())
    }

    fn validate_identity(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: String| Err(ConfigError::Invalid { key, problem });
        let identity = &self.identity;
        if identity.operator_access_key_id.len() < 4 {
            return invalid("identity.operator_access_key_id", "must be at least 4 characters".into());
        }
        if identity.operator_secret_access_key.as_ref().is_some_and(|secret| secret.len() < 16) {
            return invalid("identity.operator_secret_access_key", "must be at least 16 characters".into());
        }
        if identity.sign_in_per_user_per_minute == 0 || identity.requests_per_address_per_minute == 0 {
            return invalid(
                "identity.sign_in_per_user_per_minute",
                "and requests_per_address_per_minute must be positive".into(),
            );
        }
        for (name, pool) in &identity.pools {
            let pool_id_ok = |id: &str| {
                id.split_once('_').is_some_and(|(region, suffix)| {
                    !region.is_empty()
                        && suffix.len() == 9
                        && suffix.chars().all(|c| c.is_ascii_alphanumeric())
                })
            };
            if let Some(id) = &pool.id
                && !pool_id_ok(id)
            {
                return invalid(
                    "identity.pools.<name>.id",
                    format!("`{id}` of pool `{name}` must look like <region>_<9 alphanumerics>"),
                );
            }
            if pool.clients.is_empty() {
                return invalid(
                    "identity.pools.<name>.clients",
                    format!("pool `{name}` needs at least one app client"),
                );
            }
            for (client, config) in &pool.clients {
                if let Some(id) = &config.id
                    && !(id.len() == 26 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
                {
                    return invalid(
                        "identity.pools.<name>.clients.<name>.id",
                        format!("`{id}` of client `{client}` must be 26 lowercase letters and digits"),
                    );
                }
            }
            let token_range = Duration::from_secs(5 * 60)..=Duration::from_secs(24 * 3600);
            if !token_range.contains(&pool.access_token_validity)
                || !token_range.contains(&pool.id_token_validity)
            {
                return invalid(
                    "identity.pools.<name>.access_token_validity",
                    format!("and id_token_validity of pool `{name}` must be between 5m and 1day"),
                );
            }
            let refresh_range = Duration::from_secs(3600)..=Duration::from_secs(3650 * 24 * 3600);
            if !refresh_range.contains(&pool.refresh_token_validity) {
                return invalid(
                    "identity.pools.<name>.refresh_token_validity",
                    format!("of pool `{name}` must be between 1h and 3650days"),
                );
            }
            if !(6..=99).contains(&pool.password_policy.minimum_length) {
                return invalid(
                    "identity.pools.<name>.password_policy.minimum_length",
                    format!("of pool `{name}` must be between 6 and 99"),
                );
            }
        }
        for issuer in &identity.issuers {
            if !issuer.issuer.starts_with("https://") && !issuer.issuer.starts_with("http://") {
                return invalid(
                    "identity.issuers.issuer",
                    format!("`{}` must be an http(s) URL", issuer.issuer),
                );
            }
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
