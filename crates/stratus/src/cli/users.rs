//! `stratus users`: the user pools' users and groups, on the same data as a running server.

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::{open_platform, public_url};
use crate::config::Config;
use crate::services::cognito::user_pool::{AdminCreateUser, Identity, UserPool, UserRecord, UserStatus};

#[derive(Debug, Args)]
pub struct UsersArgs {
    /// The user pool, by name.
    #[arg(long, default_value = "default")]
    pub pool: String,
    #[command(subcommand)]
    pub command: UsersCommand,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a confirmed user. Without --password a temporary one is generated and printed,
    /// which the user must change at first sign-in.
    Create {
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, env = "STRATUS_NEW_USER_PASSWORD")]
        password: Option<String>,
        /// Groups to add the user to (created when missing).
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// List users, optionally filtered (`email = "a@b.c"`, `username ^= "ad"`).
    List {
        #[arg(long)]
        filter: Option<String>,
    },
    /// Show one user.
    Show { username: String },
    /// Add a user to a group (created when missing).
    AddToGroup { username: String, group: String },
    /// Stop a user from signing in and revoke their sessions.
    Disable { username: String },
    /// Allow a disabled user to sign in again.
    Enable { username: String },
    /// Delete a user and revoke their sessions.
    Delete { username: String },
    /// Start signing tokens with a new key (the old one stays published until its tokens expire).
    RotateKey,
}

pub(super) async fn users(args: UsersArgs, config: &Config) -> anyhow::Result<()> {
    let platform = open_platform(config)?;
    let identity = Identity::open(&config.identity, &platform, &public_url(config, &platform))?;
    let pool =
        identity.pool_named(&args.pool).with_context(|| format!("no user pool named `{}`", args.pool))?;
    match args.command {
        UsersCommand::Create { username, email, password, groups } => {
            create(pool, &username, email, password, &groups).await?;
        }
        UsersCommand::List { filter } => list(pool, filter.as_deref())?,
        UsersCommand::Show { username } => print_user(&pool.admin_get_user(&username)?),
        UsersCommand::AddToGroup { username, group } => {
            ensure_group(pool, &group).await?;
            pool.set_membership(&username, &group, true).await?;
            println!("added `{username}` to `{group}`");
        }
        UsersCommand::Disable { username } => {
            pool.admin_set_enabled(&username, false).await?;
            println!("disabled `{username}`; their sessions are revoked");
        }
        UsersCommand::Enable { username } => {
            pool.admin_set_enabled(&username, true).await?;
            println!("enabled `{username}`");
        }
        UsersCommand::Delete { username } => {
            pool.admin_delete_user(&username).await?;
            println!("deleted `{username}`");
        }
        UsersCommand::RotateKey => {
            let kid = pool.rotate_key().await?;
            println!(
                "pool `{}` now signs with key {kid}; restart running servers to pick it up",
                pool.name()
            );
        }
    }
    Ok(())
}

/// Creates a confirmed user (with a permanent password if one is given) in `groups`.
async fn create(
    pool: &UserPool,
    username: &str,
    email: String,
    password: Option<String>,
    groups: &[String],
) -> anyhow::Result<()> {
    let (temporary, permanent) = match password {
        Some(password) => (password.clone(), Some(password)),
        None => (generated_password(), None),
    };
    let attributes =
        [("email".to_owned(), email), ("email_verified".to_owned(), "true".to_owned())].into_iter().collect();
    let request = AdminCreateUser {
        username: username.to_owned(),
        attributes,
        temporary_password: Some(temporary.clone()),
    };
    pool.admin_create_user(request).await?;
    if let Some(password) = permanent {
        pool.admin_set_user_password(username, &password, true).await?;
    }
    for group in groups {
        ensure_group(pool, group).await?;
        pool.set_membership(username, group, true).await?;
    }
    let user = pool.admin_get_user(username)?;
    print_user(&user);
    if user.status == UserStatus::ForceChangePassword {
        println!("temporary password: {temporary}  (must be changed at first sign-in)");
    }
    Ok(())
}

/// Every user matching `filter`, a page at a time, as a table.
fn list(pool: &UserPool, filter: Option<&str>) -> anyhow::Result<()> {
    println!("{:<24} {:<36} {:<32} {:<22} {:<8} GROUPS", "USERNAME", "SUB", "EMAIL", "STATUS", "ENABLED");
    let mut after: Option<String> = None;
    loop {
        let (users, next) = pool.list_users(filter, 60, after.as_deref())?;
        for user in &users {
            println!(
                "{:<24} {:<36} {:<32} {:<22} {:<8} {}",
                user.username,
                user.sub,
                user.attributes.get("email").map_or("", String::as_str),
                user.status.as_str(),
                user.enabled,
                user.groups.join(",")
            );
        }
        match next {
            Some(next) => after = Some(next),
            None => return Ok(()),
        }
    }
}

async fn ensure_group(pool: &UserPool, group: &str) -> anyhow::Result<()> {
    if !pool.groups()?.iter().any(|existing| existing.name == group) {
        pool.create_group(group, None, None).await?;
    }
    Ok(())
}

fn print_user(user: &UserRecord) {
    println!("username: {}", user.username);
    println!("status:   {}{}", user.status.as_str(), if user.enabled { "" } else { " (disabled)" });
    println!("groups:   {}", user.groups.join(", "));
    println!("mfa:      {}", if user.mfa_enabled { "software token" } else { "off" });
    for (name, value) in &user.attributes {
        println!("  {name} = {value}");
    }
}

/// A temporary password that meets the default policy.
fn generated_password() -> String {
    use rand::Rng as _;
    let mut rng = rand::rngs::OsRng;
    let letters: String = (0..12).map(|_| char::from(rng.gen_range(b'a'..=b'z'))).collect();
    format!("{letters}-A{}!", rng.gen_range(10..100))
}
