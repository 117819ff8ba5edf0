//! `stratus mail`: the file outbox.

use clap::Subcommand;

use super::open_platform;
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// List messages in the outbox, oldest first.
    Ls,
    /// Print one message (by id or unique id prefix).
    Show { id: String },
}

pub(super) fn mail(command: MailCommand, config: &Config) -> anyhow::Result<()> {
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
