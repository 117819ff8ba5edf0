//! The user pools opened over the local platform: the stage's database, mailer and clock.

use std::sync::Arc;

use super::pool::PoolDeps;
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
        let deps = PoolDeps {
            db: Arc::clone(&platform.db),
            mailer: Arc::clone(&platform.mailer),
            clock: Arc::clone(&platform.clock),
            region: platform.region().to_owned(),
            public_url: public_url.to_owned(),
        };
        let pools = config
            .pools
            .iter()
            .map(|(name, pool_config)| UserPool::open(name, pool_config, &deps).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(Self { pools, throttle: Throttle::new(config), operator, clock: Arc::clone(&platform.clock) })
    }
}
