//! The `stratus` command line: `serve`, and operator tools that work on the same data as a
//! running server.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use crate::app::{Application, shutdown_signal};
use crate::clock::SystemClock;
use crate::config::{Config, Overrides};
use crate::platform::Platform;

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
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Consumers, their checkpoints, backlog, dead letters and losses.
    Status,
    /// Records that consumers gave up on.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, of one consumer or of all.
    List {
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Deliver dead letters to their consumer again.
    Redrive {
        #[arg(long)]
        consumer: String,
        /// Only these dead letters (by id); all when omitted.
        #[arg(long = "id")]
        ids: Vec<i64>,
    },
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// List messages in the outbox, oldest first.
    Ls,
    /// Print one message (by id or unique id prefix).
    Show { id: String },
}

impl Cli {
    /// Loads the configuration this invocation asks for.
    pub fn load_config(&self) -> anyhow::Result<Config> {
        let listen = match &self.command {
            Command::Serve(args) => args.listen,
            _ => None,
        };
        let overrides = Overrides { data_dir: self.data_dir.clone(), stage: self.stage.clone(), listen };
        Ok(Config::load(self.config.as_deref(), std::env::vars(), &overrides)?)
    }
}

pub async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(_) => serve(config).await,
        Command::Stream(command) => stream(command, &config),
        Command::Mail(command) => mail(command, &config),
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
    Platform::open(config, Arc::new(SystemClock)).context("cannot open the data directory")
}

fn stream(command: StreamCommand, config: &Config) -> anyhow::Result<()> {
    let platform = open_platform(config)?;
    match command {
        StreamCommand::Status => {
            println!(
                "{:<32} {:<24} {:>12} {:>9} {:>6} {:>6}",
                "CONSUMER", "SOURCE", "CHECKPOINT", "PENDING", "DLQ", "LOST"
            );
            for status in platform.stream.consumers()? {
                println!(
                    "{:<32} {:<24} {:>12} {:>9} {:>6} {:>6}",
                    status.name,
                    status.source,
                    status.checkpoint,
                    status.pending,
                    status.dead_letters,
                    status.lost
                );
            }
        }
        StreamCommand::Dlq(DlqCommand::List { consumer }) => {
            let letters = platform.stream.dead_letters(consumer.as_deref())?;
            if letters.is_empty() {
                println!("no dead letters");
            }
            for letter in letters {
                let failed = humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(
                            u64::try_from(letter.failed_at_ms).unwrap_or_default(),
                        ),
                );
                println!(
                    "#{id} consumer={consumer} seq={seq} source={source} attempts={attempts} failed={failed}\n  error: {error}\n  record: {body}",
                    id = letter.id,
                    consumer = letter.consumer,
                    seq = letter.record.seq,
                    source = letter.record.source,
                    attempts = letter.attempts,
                    error = letter.error,
                    body = letter.record.body,
                );
            }
        }
        StreamCommand::Dlq(DlqCommand::Redrive { consumer, ids }) => {
            let chosen = (!ids.is_empty()).then_some(ids.as_slice());
            let count = platform.stream.redrive(&consumer, chosen)?;
            println!("redrove {count} dead letter(s) to `{consumer}`");
        }
    }
    Ok(())
}

fn mail(command: MailCommand, config: &Config) -> anyhow::Result<()> {
    let outbox = open_platform(config)?.outbox()?;
    match command {
        MailCommand::Ls => {
            let entries = outbox.list()?;
            if entries.is_empty() {
                println!("the outbox is empty");
            }
            for entry in entries {
                let written = humantime::format_rfc3339_seconds(entry.written);
                println!("{}  {}  {:<32}  {}", entry.id, written, entry.to, entry.subject);
            }
        }
        MailCommand::Show { id } => print!("{}", outbox.read(&id)?),
    }
    Ok(())
}
