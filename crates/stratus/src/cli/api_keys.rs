//! `stratus api-keys`: the API keys of the stage's usage plans, on the same data as a running
//! server (which sees a new or revoked key within a second).

use std::sync::Arc;

use clap::Subcommand;

use super::open_platform;
use crate::config::Config;
use crate::services::gateway::ApiKeys;

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Make a key for a usage plan of `[gateway.plans]`; the key is printed once, and only its
    /// digest is kept.
    Create {
        #[arg(long)]
        plan: String,
        /// What the key is for (an app, a customer).
        #[arg(long)]
        name: String,
    },
    /// Every key: id, plan, name, when made and revoked.
    List,
    /// Stop a key from working (within a second on a running server).
    Revoke { id: String },
}

pub(super) fn api_keys(command: ApiKeysCommand, config: &Config) -> anyhow::Result<()> {
    let platform = open_platform(config)?;
    let keys = ApiKeys::open(Arc::clone(&platform.db))?;
    let now = platform.clock.now_millis() / 1000;
    match command {
        ApiKeysCommand::Create { plan, name } => {
            if !config.gateway.plans.contains_key(&plan) {
                let plans: Vec<&str> = config.gateway.plans.keys().map(String::as_str).collect();
                anyhow::bail!(
                    "there is no usage plan `{plan}` (the plans in [gateway.plans]: {})",
                    if plans.is_empty() { "none".to_owned() } else { plans.join(", ") }
                );
            }
            let (record, key) = keys.create(&name, &plan, now)?;
            println!("{key}");
            eprintln!(
                "created key {} for plan `{plan}`; it is shown only now: send it as x-api-key",
                record.id
            );
        }
        ApiKeysCommand::List => {
            for key in keys.list()? {
                let state = match key.revoked_at {
                    Some(at) => format!("revoked {}", super::timestamp(at)),
                    None => "active".to_owned(),
                };
                println!(
                    "{}  {:<12}  {:<8}  created {}  {}",
                    key.id,
                    key.plan,
                    state,
                    super::timestamp(key.created_at),
                    key.name
                );
            }
        }
        ApiKeysCommand::Revoke { id } => {
            if !keys.revoke(&id, now)? {
                anyhow::bail!("no active API key `{id}`");
            }
            println!("revoked {id}");
        }
    }
    Ok(())
}
