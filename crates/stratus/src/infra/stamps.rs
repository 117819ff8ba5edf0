//! Stamps that keep a cache from storing what a concurrent change made stale. A reader that
//! misses takes the stamp of its key's stripe, reads the source, and fills the cache only if
//! the stamp is unchanged; whatever changes a key bumps the stamp under the same lock as it
//! changes the cache. So a read overtaken by a change never lands, whatever the interleaving.

use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Mutex, PoisonError};

/// Stripes: enough that unrelated keys rarely share one.
const STRIPES: usize = 1024;

/// Counters per stripe of keys, bumped under the lock by whatever changes a slot.
#[derive(Debug)]
pub(crate) struct Stamps {
    stripes: Box<[Mutex<u64>]>,
    hasher: RandomState,
}

impl Stamps {
    pub(crate) fn new() -> Self {
        Self { stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(), hasher: RandomState::new() }
    }

    fn stripe(&self, key: &impl Hash) -> &Mutex<u64> {
        let stripe = usize::try_from(self.hasher.hash_one(key) % STRIPES as u64).unwrap_or_default();
        &self.stripes[stripe]
    }

    pub(crate) fn current(&self, key: &impl Hash) -> u64 {
        *self.stripe(key).lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `fill` if nothing changed the key's stripe since `stamp` was taken.
    pub(crate) fn fill_if_unchanged(&self, key: &impl Hash, stamp: u64, fill: impl FnOnce()) {
        let guard = self.stripe(key).lock().unwrap_or_else(PoisonError::into_inner);
        if *guard == stamp {
            fill();
        }
    }

    /// Runs `change` and bumps the stripe, so reads in flight do not fill what it changed.
    pub(crate) fn change(&self, key: &impl Hash, change: impl FnOnce()) {
        let mut guard = self.stripe(key).lock().unwrap_or_else(PoisonError::into_inner);
        *guard += 1;
        change();
    }

    /// Bumps the key's stripe: what was read before no longer matches.
    pub(crate) fn bump(&self, key: &impl Hash) {
        *self.stripe(key).lock().unwrap_or_else(PoisonError::into_inner) += 1;
    }

    pub(crate) fn bump_all(&self) {
        for stripe in &self.stripes {
            *stripe.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        }
    }
}
