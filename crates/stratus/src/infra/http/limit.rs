//! Requests allowed per client address per minute (GCRA, via `governor`), for the endpoints
//! anyone may call: sign-in, subscriptions.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

pub struct AddressLimit {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
}

impl fmt::Debug for AddressLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AddressLimit")
    }
}

impl AddressLimit {
    /// `count` requests a minute, and as a burst (0 is taken as 1).
    pub fn per_minute(count: u32) -> Self {
        let count = NonZeroU32::new(count).unwrap_or(NonZeroU32::MIN);
        Self { limiter: RateLimiter::keyed(Quota::per_minute(count)) }
    }

    /// One request from `address`; refused with how long until it may try again.
    pub fn check(&self, address: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&address)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets idle addresses so the limiter's memory stays bounded.
    pub fn prune(&self) {
        self.limiter.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_a_wait_and_others_are_not_affected() {
        let limit = AddressLimit::per_minute(2);
        let (one, two) = (IpAddr::from([192, 0, 2, 1]), IpAddr::from([192, 0, 2, 2]));
        assert!(limit.check(one).is_ok() && limit.check(one).is_ok());
        let wait = limit.check(one).expect_err("a third within the minute");
        assert!(wait > Duration::from_secs(20) && wait <= Duration::from_secs(30), "{wait:?}");
        assert!(limit.check(two).is_ok());
    }
}
