//! `stratus stream`: consumers, backlog and dead letters of the change stream.

use clap::Subcommand;

use super::open_platform;
use crate::config::Config;

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

pub(super) fn stream(command: StreamCommand, config: &Config) -> anyhow::Result<()> {
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
