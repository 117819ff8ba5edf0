//! The todos installed: `/v1/todos` over the stage's `todos` table (behind the read cache), with
//! attachments in the identity pools' own folders of the attachments bucket.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;

use super::TodosConfig;
use super::api::{self, Folders, TodosContext, TodosState};
use super::model::Todo;
use super::store::{self, TodoStore};
use crate::component::{ChangeHook, InstallError, Installer};
use crate::infra::http::Problem;
use crate::infra::http::body::BodyLimit;
use crate::services::cognito::identity_pool::IdentityPools;
use crate::services::gateway::{ApiOptions, Scope};

/// A user's folders are the ids of their identities in the stage's identity pools.
#[derive(Debug)]
struct IdentityFolders(Arc<IdentityPools>);

#[async_trait]
impl Folders for IdentityFolders {
    async fn of(&self, sub: &str) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
        let identities = self.0.identities_of(sub)?;
        Ok(identities.into_iter().map(|identity| identity.id).collect())
    }
}

pub(crate) fn install(
    with: &mut Installer<'_>,
    config: &TodosConfig,
    pools: &Arc<IdentityPools>,
) -> Result<Router, InstallError> {
    // A change to a user's todos, by whoever, ends that user's cached responses (and only
    // theirs), and is pushed to their WebSocket connections.
    let gateway = Arc::clone(with.gateway);
    let forget_owner: ChangeHook = Box::new(move |change| {
        let partition = change.dynamodb.keys.get("pk").and_then(|pk| pk.as_s());
        if let Some(sub) = partition.and_then(|pk| pk.strip_prefix("USER#")) {
            gateway.forget_caller(sub);
        }
        if let Some((sub, id, todo)) = store::changed_todo(change) {
            let message = serde_json::json!({
                "type": "todo", "event": change.event_name, "id": id, "todo": todo.as_ref().map(Todo::view),
            });
            gateway.connections().push(&sub, &message.to_string());
        }
    });
    let table = with.table(store::table_spec(), Some(forget_owner))?;
    let todos = TodoStore::new(table.cached, Arc::clone(&with.platform.clock), config.store_limits());
    let files = with
        .platform
        .buckets
        .bucket(&config.attachments_bucket)
        .map_err(|e| InstallError::open("todos' attachments bucket", e))?;
    let state = TodosState::new(TodosContext {
        todos,
        authorizer: Arc::clone(with.authorizer),
        folders: Arc::new(IdentityFolders(Arc::clone(pools))),
        files,
        config: config.clone(),
    });
    let api = with
        .host
        .http_function(api::router(state), BodyLimit::new(config.max_body_bytes, Problem::body_refused));
    Ok(with.gateway.wrap(
        api,
        ApiOptions {
            requires_key: true,
            max_body_bytes: config.max_body_bytes,
            strict_query: true,
            cache: Some(Scope::Caller),
        },
    ))
}
