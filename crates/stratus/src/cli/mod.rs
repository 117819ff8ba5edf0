//! The `stratus` command line: `serve`, and operator tools that work on the same data as a
//! running server.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::app::{Application, shutdown_signal};
use crate::config::{Config, Overrides};
use crate::infra::clock::SystemClock;
use crate::platform::Platform;

mod api_keys;
mod identity_pools;
mod mail;
mod photos;
mod posts;
mod stream;
mod todos;
mod users;

pub use api_keys::ApiKeysCommand;
pub use identity_pools::{CredentialsCommand, IdentityPoolsCommand};
pub use mail::MailCommand;
pub use photos::{PhotosCommand, ThumbnailArgs, ThumbnailFormat};
pub use posts::{PostsCommand, SiteCommand};
pub use stream::{DlqCommand, StreamCommand};
pub use todos::TodosCommand;
pub use users::{UsersArgs, UsersCommand};

#[derive(Debug, Parser)]
#[command(name = "stratus", version, about = "A self-hostable serverless backend in one binary")]
pub struct Cli {
    /// TOML configuration file (also `STRATUS_CONFIG`).
    #[arg(long, global = true, env = "STRATUS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory holding all data (each stage in a subdirectory).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Stage whose data to use: dev, test, prod, …
    #[arg(long, global = true)]
    pub stage: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the whole system: edge, API, functions and their triggers, storage, mail.
    Serve(ServeArgs),
    /// Inspect the change stream and its dead letters.
    #[command(subcommand)]
    Stream(StreamCommand),
    /// Read the mail outbox.
    #[command(subcommand)]
    Mail(MailCommand),
    /// Manage the users of a user pool (the same data a running server uses).
    Users(UsersArgs),
    /// Inspect the identity pools and their identities.
    #[command(subcommand)]
    IdentityPools(IdentityPoolsCommand),
    /// Inspect and revoke the temporary AWS credentials handed to identities.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Publish and list blog posts.
    #[command(subcommand)]
    Posts(PostsCommand),
    /// The generated site.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Upload photos to the media bucket.
    #[command(subcommand)]
    Photos(PhotosCommand),
    /// Read users' todos.
    #[command(subcommand)]
    Todos(TodosCommand),
    /// Make, list and revoke the API keys of the usage plans.
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// Make one thumbnail of a photo, exactly as the `thumbnail` function does.
    Thumbnail(ThumbnailArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// HTTPS with a local certificate authority created under the stage's directory (its path
    /// is printed: trust it); plain HTTP is redirected.
    #[arg(long)]
    pub tls: bool,
}

impl Cli {
    /// Loads the configuration this invocation asks for.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let (listen, local_tls) = match &self.command {
            Command::Serve(args) => (args.listen, args.tls),
            _ => (None, false),
        };
        let overrides =
            Overrides { data_dir: self.data_dir.clone(), stage: self.stage.clone(), listen, local_tls };
        Ok(Config::load(self.config.as_deref(), std::env::vars(), &overrides)?)
    }
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(_) => serve(config).await,
        Command::Stream(command) => stream::stream(command, &config),
        Command::Mail(command) => mail::mail(command, &config),
        Command::Users(args) => users::users(args, &config).await,
        Command::IdentityPools(command) => identity_pools::identity_pools(command, &config),
        Command::Credentials(command) => identity_pools::credentials(command, &config).await,
        Command::Posts(command) => posts::posts(command, &config).await,
        Command::Site(SiteCommand::Rebuild) => posts::rebuild_site(&config).await,
        Command::Photos(PhotosCommand::Upload { files, uploader }) => {
            photos::upload_photos(&files, &uploader, &config).await
        }
        Command::Thumbnail(args) => photos::thumbnail(&args, &config),
        Command::Todos(command) => todos::todos(command, &config).await,
        Command::ApiKeys(command) => api_keys::api_keys(command, &config),
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    // A closed stdout (a supervisor that stopped reading) must not stop the server.
    let _ = writeln!(std::io::stdout(), "{}", app.banner());
    app.run(shutdown_signal()).await?;
    Ok(())
}

fn open_platform(config: &Config) -> anyhow::Result<Platform> {
    Platform::open(&config.platform(), Arc::new(SystemClock)).context("cannot open the data directory")
}

/// The server's public URL: configured, or as the stage's server last recorded it (it may
/// listen on port 0), or from the listen address.
fn public_url(config: &Config, platform: &Platform) -> String {
    match (&config.server.public_url, platform.recorded_public_url()) {
        (None, Some(recorded)) => recorded,
        _ => config.server.public_url(config.server.listen),
    }
}

/// Epoch seconds as RFC 3339, for listings.
fn timestamp(epoch_seconds: i64) -> String {
    let time = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(u64::try_from(epoch_seconds).unwrap_or_default());
    humantime::format_rfc3339_seconds(time).to_string()
}

fn progress_bar(length: usize, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(length as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what} {{msg}}"))
    {
        bar.set_style(style);
    }
    bar
}
