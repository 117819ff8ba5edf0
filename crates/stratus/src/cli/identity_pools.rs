//! `stratus identity-pools` and `stratus credentials`: the identity pools, their identities, and
//! the temporary credentials handed out, on the same data as a running server.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;

use super::{open_platform, public_url};
use crate::config::Config;
use crate::platform::Platform;
use crate::services::cognito::credentials::CredentialStore;
use crate::services::cognito::identity_pool::IdentityPools;
use crate::services::cognito::user_pool::Identity;

#[derive(Debug, Subcommand)]
pub enum IdentityPoolsCommand {
    /// List the identity pools: id, trusted app clients, roles.
    List,
    /// List a pool's identities (by pool name or id), with the user-pool user each belongs to.
    Identities { pool: String },
    /// The identities of a user-pool user (by `sub`), in every pool.
    Of { sub: String },
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// List the temporary credentials still valid, of one identity or all.
    List {
        #[arg(long)]
        identity: Option<String>,
    },
    /// Revoke every valid temporary credential of an identity at once.
    Revoke { identity: String },
}

struct Opened {
    _platform: Platform,
    pools: IdentityPools,
    credentials: Arc<CredentialStore>,
}

fn open(config: &Config) -> anyhow::Result<Opened> {
    let platform = open_platform(config)?;
    let url = public_url(config, &platform);
    let user_pools = Arc::new(Identity::open(&config.identity, &platform, &url)?);
    let credentials = Arc::new(
        CredentialStore::open(Arc::clone(&platform.db)).context("cannot open the credentials store")?,
    );
    let pools =
        IdentityPools::open(&config.identity_pools, &platform, user_pools, Arc::clone(&credentials), &url)?;
    Ok(Opened { _platform: platform, pools, credentials })
}

pub(super) fn identity_pools(command: IdentityPoolsCommand, config: &Config) -> anyhow::Result<()> {
    let opened = open(config)?;
    match command {
        IdentityPoolsCommand::List => {
            println!("{:<16} {:<48} {:<6} ROLES (authenticated, guest)", "NAME", "ID", "GUESTS");
            for pool in opened.pools.pools(None, 60)? {
                println!(
                    "{:<16} {:<48} {:<6} {}, {}",
                    pool.name,
                    pool.id,
                    pool.allow_unauthenticated,
                    pool.authenticated_role.as_deref().unwrap_or("-"),
                    pool.unauthenticated_role.as_deref().unwrap_or("-"),
                );
                for provider in &pool.providers {
                    println!("  trusts {} client {}", provider.name, provider.client_id);
                }
            }
        }
        IdentityPoolsCommand::Identities { pool } => {
            let id = match opened.pools.id_named(&pool)? {
                Some(id) => id,
                None => pool,
            };
            println!("{:<48} {:<38} LAST CREDENTIALS", "IDENTITY", "USER (sub)");
            let mut after: Option<String> = None;
            loop {
                let page = opened.pools.identities(&id, after.as_deref(), 60)?;
                for identity in &page {
                    let user = identity.login.as_ref().map_or("(guest)", |(_, sub)| sub.as_str());
                    println!("{:<48} {:<38} {}", identity.id, user, super::timestamp(identity.last_modified));
                }
                match page.last() {
                    Some(last) if page.len() == 60 => after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        IdentityPoolsCommand::Of { sub } => {
            for identity in opened.pools.identities_of(&sub)? {
                println!("{}  (pool {})", identity.id, identity.pool_id);
            }
        }
    }
    Ok(())
}

pub(super) async fn credentials(command: CredentialsCommand, config: &Config) -> anyhow::Result<()> {
    let opened = open(config)?;
    let now = opened.pools.now();
    match command {
        CredentialsCommand::List { identity } => {
            println!("{:<22} {:<48} {:<22} ROLE", "ACCESS KEY", "IDENTITY", "EXPIRES");
            for live in opened.credentials.live(identity.as_deref(), now)? {
                println!(
                    "{:<22} {:<48} {:<22} {}",
                    live.access_key_id,
                    live.identity_id,
                    super::timestamp(live.expires_at),
                    live.role_arn
                );
            }
        }
        CredentialsCommand::Revoke { identity } => {
            opened.pools.identity(&identity)?;
            let revoked = opened.credentials.revoke_identity(&identity, now).await?;
            println!("revoked {revoked} credential(s) of {identity}; requests signed with them now fail");
        }
    }
    Ok(())
}
