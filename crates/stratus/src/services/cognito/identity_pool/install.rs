//! The identity pools opened over the local platform: the configured ones are created on first
//! start (their ids kept) and take their settings from the configuration at every start.

use std::sync::Arc;

use super::store::{PoolRecord, Provider, Store};
use super::{IdentityPoolError, IdentityPools, IdentityPoolsConfig, OpenIdIssuer, provider_name};
use crate::platform::Platform;
use crate::services::cognito::credentials::CredentialStore;
use crate::services::cognito::user_pool::Identity;

impl IdentityPools {
    pub fn open(
        config: &IdentityPoolsConfig,
        platform: &Platform,
        user_pools: Arc<Identity>,
        credentials: Arc<CredentialStore>,
        public_url: &str,
    ) -> Result<Self, IdentityPoolError> {
        let store = Store::open(Arc::clone(&platform.db))?;
        let issuer = format!("{}/cognito-identity", public_url.trim_end_matches('/'));
        let openid = OpenIdIssuer::open(&platform.db, issuer, platform.clock.now_millis().div_euclid(1000))?;
        let pools = Self {
            store,
            user_pools,
            credentials,
            openid,
            clock: Arc::clone(&platform.clock),
            region: platform.region().to_owned(),
        };
        for (name, pool) in &config.pools {
            let user_pool = pools.user_pools.pool_named(&pool.user_pool).ok_or_else(|| {
                IdentityPoolError::InvalidParameter(format!(
                    "identity pool `{name}` trusts user pool `{}`, which is not configured",
                    pool.user_pool
                ))
            })?;
            let mut providers = Vec::new();
            for client in &pool.clients {
                let (_, client_id) =
                    user_pool.clients().iter().find(|(client_name, _)| client_name == client).ok_or_else(|| {
                        IdentityPoolError::InvalidParameter(format!(
                            "identity pool `{name}` trusts app client `{client}`, which user pool `{}` does not have",
                            pool.user_pool
                        ))
                    })?;
                providers.push(Provider {
                    name: provider_name(platform.region(), user_pool.id()),
                    client_id: client_id.clone(),
                });
            }
            let id = match (&pool.id, pools.store.id_named(name)?) {
                (Some(configured), _) => configured.clone(),
                (None, Some(stored)) => stored,
                (None, None) => pools.new_id(),
            };
            let record = PoolRecord {
                id,
                name: name.clone(),
                allow_unauthenticated: pool.allow_unauthenticated,
                providers,
                authenticated_role: Some(pool.authenticated_role.clone()),
                unauthenticated_role: Some(pool.unauthenticated_role.clone()),
                credentials_seconds: i64::try_from(pool.credentials_validity.as_secs()).unwrap_or(3600),
            };
            if !pools.store.put_pool_blocking(&record, pools.now())? {
                return Err(IdentityPoolError::NameTaken(name.clone()));
            }
            tracing::info!(pool = %name, identity_pool_id = %record.id, "identity pool open");
        }
        Ok(pools)
    }
}
