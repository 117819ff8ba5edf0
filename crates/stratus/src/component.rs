//! What a component is installed with, and how installing it can fail. A component (the blog,
//! photos, the edge, and later the others) opens itself from the stage's platform, registers its
//! functions with their triggers on the host, and hands back its HTTP routes; `app` only lists
//! the components.

use std::sync::Arc;

use crate::platform::Platform;
use crate::ports::events::BatchResponse;
use crate::ports::stream::StreamConfig;
use crate::ports::table::cached::CachedTable;
use crate::ports::table::change::TableChange;
use crate::ports::table::{Table, TableConfig, TableSpec};
use crate::services::cognito::authorizer::Authorizer;
use crate::services::functions::{FunctionsConfig, Host, HostError};
use crate::services::gateway::Gateway;

/// The shared dependencies every component is installed with.
#[derive(Debug)]
pub(crate) struct Installer<'a> {
    pub platform: &'a Platform,
    /// Where the component registers its functions.
    pub host: &'a mut Host,
    /// Checks access tokens for the component's HTTP functions.
    pub authorizer: &'a Arc<Authorizer>,
    /// The URL clients reach the server at (links, feeds, presigned URLs).
    pub public_url: &'a str,
    /// Batching and retries of the component's stream and object triggers.
    pub stream: &'a StreamConfig,
    /// Limits of the component's HTTP functions.
    pub functions: &'a FunctionsConfig,
    /// The read cache in front of the components' tables.
    pub table: &'a TableConfig,
    /// The layer around every API: throttles, API keys, the response cache.
    pub gateway: &'a Arc<Gateway>,
}

/// What a component does with each change to its table once the read cache has forgotten it
/// (e.g. forget the gateway's cached responses built from it).
pub(crate) type ChangeHook = Box<dyn Fn(&TableChange) + Send + Sync>;

/// A component's table, opened by [`Installer::table`].
#[derive(Debug, Clone)]
pub(crate) struct OpenTable {
    /// For the component's APIs: behind the read cache when `[table] cache_ttl` is set.
    pub cached: Arc<dyn Table>,
    /// For the functions its changes trigger: they must read what the change left, and the
    /// cache may not have heard of a change another process made yet.
    pub direct: Arc<dyn Table>,
    /// The table's change stream.
    pub source: String,
}

impl Installer<'_> {
    /// Opens the stage's table `spec`; with the read cache on, the cache is put in front of it.
    /// One `<table>-caches-invalidate` function on its stream makes the cache forget what
    /// others change, then runs `on_change` — in that order, so nothing built after the hook
    /// ran can come from a cache that had not yet heard of the change.
    pub(crate) fn table(
        &mut self,
        spec: TableSpec,
        on_change: Option<ChangeHook>,
    ) -> Result<OpenTable, InstallError> {
        let table = self.platform.table(spec).map_err(|e| InstallError::open("table", e))?;
        let source = table.stream_source().to_owned();
        let direct: Arc<dyn Table> = Arc::new(table);
        let cache = self.table.cache().map(|settings| {
            Arc::new(CachedTable::new(Arc::clone(&direct), Arc::clone(&self.platform.clock), settings))
        });
        if cache.is_some() || on_change.is_some() {
            let name = format!("{}-caches-invalidate", direct.spec().name);
            let invalidated = cache.clone();
            let trigger = crate::services::functions::StreamTrigger::new(self.stream);
            self.host.on_table_change(&name, &source, trigger, move |_, changes| {
                for change in &changes {
                    if let Some(cache) = &invalidated {
                        cache.invalidate(change);
                    }
                    if let Some(hook) = &on_change {
                        hook(change);
                    }
                }
                async { Ok(BatchResponse::success()) }
            })?;
        }
        let cached = match cache {
            Some(cache) => cache as Arc<dyn Table>,
            None => Arc::clone(&direct),
        };
        Ok(OpenTable { cached, direct, source })
    }
}
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot open the {component}")]
    Open {
        component: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Host(#[from] HostError),
}

impl InstallError {
    pub fn open(component: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Open { component, source: Box::new(source) }
    }
}
