//! `stratus todos`: a user's todos as the operator sees them, on the same data as a running
//! server (read from the table itself, never a cache).

use std::sync::Arc;

use anyhow::Context as _;
use clap::Subcommand;

use super::{open_platform, public_url};
use crate::apps::todos::store::{self, Listing, Owner, Sort, TodoStore};
use crate::config::Config;
use crate::services::cognito::user_pool::Identity;

#[derive(Debug, Subcommand)]
pub enum TodosCommand {
    /// A user's todos in their manual order, with their count and limit.
    List {
        /// The user: a username of the pool, or a `sub`.
        #[arg(long)]
        user: String,
        /// The user pool, by name.
        #[arg(long, default_value = "default")]
        pool: String,
        /// Only open (`--done false`) or finished (`--done true`) todos.
        #[arg(long)]
        done: Option<bool>,
    },
}

pub(super) async fn todos(command: TodosCommand, config: &Config) -> anyhow::Result<()> {
    let TodosCommand::List { user, pool, done } = command;
    let platform = open_platform(config)?;
    let identity = Identity::open(&config.identity, &platform, &public_url(config, &platform))?;
    let pool = identity.pool_named(&pool).with_context(|| format!("no user pool named `{pool}`"))?;
    // A username first; what is not one is taken as a `sub` (a deleted user's todos remain).
    let sub = pool.admin_get_user(&user).map(|record| record.sub).unwrap_or(user);
    let table = platform.table(store::table_spec())?;
    let todos = TodoStore::new(Arc::new(table), Arc::clone(&platform.clock), config.todos.store_limits());
    let owner = Owner::new(sub);
    let mut listing = Listing { done, sort: Sort::Position, limit: 100, ..Listing::default() };
    let mut shown = 0;
    loop {
        let page = todos.list(&owner, &listing).await?;
        for todo in &page.todos {
            let due = todo.due.as_ref().map_or("", |due| due.text.as_str());
            let mark = if todo.done { "x" } else { " " };
            println!(
                "[{mark}] {}  {}  due {due:<20}  p{}  v{}  {}",
                todo.id,
                todo.position.as_str(),
                todo.priority,
                todo.version,
                todo.title
            );
        }
        shown += page.todos.len();
        match page.next {
            Some(next) => listing.cursor = Some(next),
            None => break,
        }
    }
    let count = todos.count(&owner).await?;
    println!(
        "{shown} shown; {count} todos of at most {} for {}",
        config.todos.max_todos_per_user,
        owner.sub()
    );
    Ok(())
}
