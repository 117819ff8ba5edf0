//! Attempt limits (GCRA, via `governor`): sign-in and code attempts per username, and requests
//! per client address. Unknown usernames are throttled exactly like known ones, so the limits
//! reveal nothing about who exists.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::IdentityError;
use crate::infra::http::AddressLimit;
use crate::services::cognito::user_pool::IdentityConfig;

pub struct Throttle {
    per_user: DefaultKeyedRateLimiter<String>,
    per_address: AddressLimit,
}

impl std::fmt::Debug for Throttle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Throttle")
    }
}

impl Throttle {
    pub fn new(config: &IdentityConfig) -> Self {
        let per_minute = |count: u32| Quota::per_minute(NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN));
        Self {
            per_user: RateLimiter::keyed(per_minute(config.sign_in_per_user_per_minute)),
            per_address: AddressLimit::per_minute(config.requests_per_address_per_minute),
        }
    }

    /// One sign-in or code attempt for `username` of `pool_id`.
    pub fn attempt(&self, pool_id: &str, username: &str) -> Result<(), IdentityError> {
        let key = format!("{pool_id}/{}", username.to_lowercase());
        self.per_user.check_key(&key).map_err(|_| IdentityError::TooManyRequests)
    }

    /// One request from `address`.
    pub fn request(&self, address: IpAddr) -> Result<(), IdentityError> {
        self.per_address.check(address).map_err(|_| IdentityError::TooManyRequests)
    }

    /// Forgets idle keys so the limiters' memory stays bounded.
    pub fn prune(&self) {
        self.per_user.retain_recent();
        self.per_address.prune();
    }
}
