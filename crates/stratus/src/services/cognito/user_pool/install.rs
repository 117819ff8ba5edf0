//! The user pools opened over the local platform: the stage's database, mailer and clock.

use std::sync::Arc;

use super::{Identity, IdentityConfig, IdentityError, Throttle, UserPool, operator_credentials, store};
use crate::platform::Platform;

impl Identity {
    /// Opens every configured pool of the stage (ids and signing keys are created on first start
    /// and kept), with the operator credentials (configured, or generated once into the stage).
    pub fn open(
        config: &IdentityConfig,
        platform: &Platform,
        public_url: &str,
    ) -> Result<Self, IdentityError> {
        let operator =
            operator_credentials(config, platform.stage_dir()).map_err(IdentityError::OperatorCredentials)?;
        store::migrate(&platform.db)?;
        let mut pools = Vec::new();
        for (name, pool_config) in &config.pools {
            let pool = UserPool::open(
                name,
                pool_config,
                platform.region(),
                public_url,
                Arc::clone(&platform.db),
                Arc::clone(&platform.mailer),
                Arc::clone(&platform.clock),
            )?;
            pools.push(Arc::new(pool));
        }
        Ok(Self { pools, throttle: Throttle::new(config), operator, clock: Arc::clone(&platform.clock) })
    }
}
