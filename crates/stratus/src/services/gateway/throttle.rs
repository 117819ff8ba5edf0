//! The stage's throttles (GCRA, `governor`): one over every API of the stage, and one per
//! configured method — API Gateway's stage and method throttling.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::http::Method;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultDirectRateLimiter, NotUntil, RateLimiter};

use super::config::Throttle;
use super::plans::throttle_quota;

pub(crate) struct Throttles {
    stage: DefaultDirectRateLimiter,
    methods: HashMap<String, DefaultDirectRateLimiter>,
}

impl std::fmt::Debug for Throttles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttles")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// How long until a refused request would be admitted.
pub(crate) fn wait(not_until: &NotUntil<<DefaultClock as governor::clock::Clock>::Instant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

impl Throttles {
    pub(crate) fn new(rate: u32, burst: u32, methods: &BTreeMap<String, Throttle>) -> Self {
        let methods = methods
            .iter()
            .map(|(route, throttle)| {
                (route.clone(), RateLimiter::direct(throttle_quota(throttle.rate, throttle.burst)))
            })
            .collect();
        Self { stage: RateLimiter::direct(throttle_quota(rate, burst)), methods }
    }

    /// Admits one request to `path` (as the API declares it: `/v1/todos/{id}`), or says how long
    /// to wait. A request a method's throttle refuses still counts against the stage's, as on
    /// API Gateway.
    pub(crate) fn admit(&self, method: &Method, path: &str) -> Result<(), Duration> {
        self.stage.check().map_err(|refused| wait(&refused))?;
        if self.methods.is_empty() {
            return Ok(());
        }
        match self.methods.get(&format!("{method} {path}")) {
            Some(method) => method.check().map_err(|refused| wait(&refused)),
            None => Ok(()),
        }
    }
}
