//! Usage plans: which API keys may call the APIs that require one, how fast (a GCRA limiter
//! per key, `governor`), and how much per day, week or month. Quota use is counted in memory
//! and written to the database every second and at shutdown, so a restart keeps it (a crash
//! forgets at most the last second's, in the callers' favour).

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use time::OffsetDateTime;

use super::config::{PlanConfig, QuotaPeriod};
use super::keys::{ApiKey, ApiKeys, KeyHash, hash_key};
use crate::infra::clock::Clock;
use crate::infra::sqlite::DbError;

/// How long a key's record is trusted before it is read again (on the stage's clock), so a
/// key revoked by the CLI stops working within this.
const KEY_RECHECK_MILLIS: i64 = 1000;
/// Keys remembered at once (known or not): memory stays bounded whatever keys clients send.
const REMEMBERED_KEYS: usize = 200_000;

/// Why a request was refused, as API Gateway answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No key, an unknown or revoked one: 403 `Forbidden`.
    Forbidden,
    /// Over the plan's rate: 429 `Too Many Requests`.
    Throttled { retry_after: Duration },
    /// The period's quota is used up: 429 `Limit Exceeded`.
    LimitExceeded { retry_after: Duration },
}

struct Plan {
    config: PlanConfig,
    limiter: DefaultKeyedRateLimiter<String>,
}

#[derive(Debug, Clone, Copy)]
struct Usage {
    period_start: i64,
    /// When the period ends (epoch seconds): until then the count goes on.
    period_end: i64,
    used: u64,
    unwritten: u64,
}

pub(crate) struct UsagePlans {
    plans: HashMap<String, Plan>,
    keys: ApiKeys,
    /// Keys as last read, and when.
    known: quick_cache::sync::Cache<KeyHash, (Option<Arc<ApiKey>>, i64)>,
    usage: Mutex<HashMap<String, Usage>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for UsagePlans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsagePlans")
            .field("plans", &self.plans.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

pub(crate) fn throttle_quota(rate: u32, burst: u32) -> Quota {
    let nonzero = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(nonzero(rate)).allow_burst(nonzero(burst))
}

/// The start of the period `now` (epoch seconds) is in, and the start of the next one.
fn period(period: QuotaPeriod, now: i64) -> (i64, i64) {
    let Ok(instant) = OffsetDateTime::from_unix_timestamp(now) else { return (now, now + 86_400) };
    let midnight = instant.replace_time(time::Time::MIDNIGHT);
    let (start, end) = match period {
        QuotaPeriod::Day => (midnight, midnight + time::Duration::DAY),
        QuotaPeriod::Week => {
            let start =
                midnight - time::Duration::days(i64::from(midnight.weekday().number_days_from_monday()));
            (start, start + time::Duration::WEEK)
        }
        QuotaPeriod::Month => {
            let start = midnight.replace_day(1).unwrap_or(midnight);
            let end = match start.month() {
                time::Month::December => {
                    start.replace_year(start.year() + 1).and_then(|s| s.replace_month(time::Month::January))
                }
                month => start.replace_month(month.next()),
            };
            (start, end.unwrap_or(start + time::Duration::days(31)))
        }
    };
    (start.unix_timestamp(), end.unix_timestamp())
}

fn seconds(count: i64) -> Duration {
    Duration::from_secs(u64::try_from(count).unwrap_or_default())
}

impl UsagePlans {
    pub(crate) fn new(plans: &BTreeMap<String, PlanConfig>, keys: ApiKeys, clock: Arc<dyn Clock>) -> Self {
        let plans = plans
            .iter()
            .map(|(name, config)| {
                let limiter = RateLimiter::keyed(throttle_quota(config.rate, config.burst));
                (name.clone(), Plan { config: config.clone(), limiter })
            })
            .collect();
        let known = quick_cache::sync::Cache::new(REMEMBERED_KEYS);
        Self { plans, keys, known, usage: Mutex::new(HashMap::new()), clock }
    }

    fn key(&self, presented: &str, now: i64) -> Result<Option<Arc<ApiKey>>, DbError> {
        let hash = hash_key(presented);
        if let Some((known, read_at)) = self.known.get(&hash)
            && now.saturating_sub(read_at) < KEY_RECHECK_MILLIS
        {
            return Ok(known);
        }
        let found = self.keys.find(&hash)?.filter(|key| key.revoked_at.is_none()).map(Arc::new);
        self.known.insert(hash, (found.clone(), now));
        Ok(found)
    }

    /// Admits one request carrying `presented` (the `x-api-key` header), or says why not.
    pub(crate) fn admit(&self, presented: Option<&str>) -> Result<(), Refusal> {
        let presented = presented.filter(|key| !key.is_empty()).ok_or(Refusal::Forbidden)?;
        let now_millis = self.clock.now_millis();
        let key = match self.key(presented, now_millis) {
            Ok(Some(key)) => key,
            Ok(None) => return Err(Refusal::Forbidden),
            Err(error) => {
                // The store cannot say: refuse, as for a key it does not know.
                tracing::error!(error = %crate::infra::telemetry::error_chain(&error), "cannot read API keys");
                return Err(Refusal::Forbidden);
            }
        };
        let plan = self.plans.get(&key.plan).ok_or(Refusal::Forbidden)?;
        if let Err(not_until) = plan.limiter.check_key(&key.id) {
            return Err(Refusal::Throttled { retry_after: super::throttle::wait(&not_until) });
        }
        let Some(quota) = plan.config.quota else { return Ok(()) };
        let now = now_millis.div_euclid(1000);
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = match usage.get_mut(&key.id) {
            Some(entry) if (entry.period_start..entry.period_end).contains(&now) => entry,
            _ => {
                // First use this period in this process: what earlier processes counted.
                let (start, end) = period(plan.config.period, now);
                let used = self.keys.used(&key.id, start).unwrap_or_default();
                let fresh = Usage { period_start: start, period_end: end, used, unwritten: 0 };
                usage.entry(key.id.clone()).insert_entry(fresh).into_mut()
            }
        };
        if entry.used >= quota {
            return Err(Refusal::LimitExceeded { retry_after: seconds(entry.period_end - now) });
        }
        entry.used += 1;
        entry.unwritten += 1;
        Ok(())
    }

    /// Writes the counted use; called every second and at shutdown.
    pub(crate) async fn flush(&self) {
        let unwritten: Vec<(String, i64, u64)> = {
            let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
            usage
                .iter_mut()
                .filter(|(_, usage)| usage.unwritten > 0)
                .map(|(id, usage)| (id.clone(), usage.period_start, std::mem::take(&mut usage.unwritten)))
                .collect()
        };
        if unwritten.is_empty() {
            return;
        }
        if let Err(error) = self.keys.add_usage(unwritten.clone()).await {
            tracing::error!(error = %crate::infra::telemetry::error_chain(&error), "cannot record API key usage; retrying");
            let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, period_start, count) in unwritten {
                if let Some(entry) = usage.get_mut(&id).filter(|entry| entry.period_start == period_start) {
                    entry.unwritten += count;
                }
            }
        }
    }

    /// Forgets idle keys' limiter state, so memory follows the keys in use.
    pub(crate) fn prune(&self) {
        for plan in self.plans.values() {
            plan.limiter.retain_recent();
        }
        let now = self.clock.now_millis().div_euclid(1000);
        let mut usage = self.usage.lock().unwrap_or_else(PoisonError::into_inner);
        usage.retain(|_, entry| entry.unwritten > 0 || entry.period_start >= now - 31 * 86_400);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_at_utc_midnight_monday_and_the_first() {
        // Thursday 2026-12-03 18:50:00 UTC.
        let now = 1_796_323_800;
        assert_eq!(period(QuotaPeriod::Day, now), (1_796_256_000, 1_796_342_400));
        assert_eq!(period(QuotaPeriod::Week, now), (1_795_996_800, 1_796_601_600), "Monday 2026-11-30");
        assert_eq!(period(QuotaPeriod::Month, now), (1_796_083_200, 1_798_761_600), "Dec 1 to Jan 1");
    }
}
