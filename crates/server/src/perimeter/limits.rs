//! Abuse limits: token buckets per API key and per client address, and a guard against guessing
//! keys that slows, then locks out, an address after repeated authentication failures.
//!
//! State is sharded behind short-lived mutexes (never held across an await) and swept when it
//! grows, so a caller cycling through addresses cannot grow it without bound.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

const SHARDS: usize = 8;
/// Entries a shard may hold before idle ones are swept.
const SWEEP_AT: usize = 4096;

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// A token bucket per key: `rate` per second sustained, bursts up to twice that.
pub struct RateLimiter<K> {
    rate: f64,
    burst: f64,
    hasher: RandomState,
    shards: [Mutex<HashMap<K, Bucket>>; SHARDS],
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    pub fn new(rate_per_second: u32) -> RateLimiter<K> {
        let rate = f64::from(rate_per_second.max(1));
        RateLimiter {
            rate,
            burst: rate * 2.0,
            hasher: RandomState::new(),
            shards: Default::default(),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let shard = &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS];
        let mut buckets = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= SWEEP_AT {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * rate < burst);
        }
        // Look up before inserting: the entry API would clone the key on every request.
        if !buckets.contains_key(key) {
            buckets.insert(
                key.clone(),
                Bucket {
                    tokens: self.burst,
                    updated: now,
                },
            );
        }
        let Some(bucket) = buckets.get_mut(key) else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }
}

/// What the guessing guard says about one more failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Penalty {
    None,
    /// Answer, but only after this long.
    Delay(Duration),
    /// Refuse this address for this long.
    Lockout(Duration),
}

struct Failures {
    count: u32,
    window_start: Instant,
    locked_until: Option<Instant>,
}

/// Counts authentication failures per address in one-minute windows.
pub struct FailureGuard {
    /// Addresses with recorded failures; while zero, a success needs no lock at all.
    tracked: AtomicUsize,
    slowdown_after: u32,
    lockout_after: u32,
    lockout: Duration,
    shards: [Mutex<HashMap<IpAddr, Failures>>; SHARDS],
    hasher: RandomState,
}

const WINDOW: Duration = Duration::from_secs(60);
const DELAY_STEP: Duration = Duration::from_millis(250);
const DELAY_MAX: Duration = Duration::from_secs(2);

impl FailureGuard {
    pub fn new(slowdown_after: u32, lockout_after: u32, lockout: Duration) -> FailureGuard {
        FailureGuard {
            tracked: AtomicUsize::new(0),
            slowdown_after,
            lockout_after,
            lockout,
            shards: Default::default(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, address: &IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.shards[(self.hasher.hash_one(address) as usize) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How long `address` is still locked out, if it is.
    pub fn locked(&self, address: &IpAddr, now: Instant) -> Option<Duration> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let entries = self.shard(address);
        let until = entries.get(address)?.locked_until?;
        (until > now).then(|| until - now)
    }

    pub fn record_failure(&self, address: IpAddr, now: Instant) -> Penalty {
        let mut entries = self.shard(&address);
        if entries.len() >= SWEEP_AT {
            let before = entries.len();
            entries.retain(|_, f| {
                f.locked_until.is_some_and(|u| u > now) || now.duration_since(f.window_start) < WINDOW
            });
            self.tracked.fetch_sub(before - entries.len(), Ordering::Relaxed);
        }
        let entry = entries.entry(address).or_insert_with(|| {
            self.tracked.fetch_add(1, Ordering::Relaxed);
            Failures {
                count: 0,
                window_start: now,
                locked_until: None,
            }
        });
        if now.duration_since(entry.window_start) >= WINDOW && entry.locked_until.is_none_or(|u| u <= now) {
            *entry = Failures {
                count: 0,
                window_start: now,
                locked_until: None,
            };
        }
        entry.count += 1;
        if entry.count >= self.lockout_after {
            entry.locked_until = Some(now + self.lockout);
            Penalty::Lockout(self.lockout)
        } else if entry.count > self.slowdown_after {
            Penalty::Delay((DELAY_STEP * (entry.count - self.slowdown_after)).min(DELAY_MAX))
        } else {
            Penalty::None
        }
    }

    /// A successful authentication clears the count: a typo fixed is not an attack.
    pub fn record_success(&self, address: &IpAddr) {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut entries = self.shard(address);
        if entries.get(address).is_some_and(|f| f.locked_until.is_none()) && entries.remove(address).is_some()
        {
            self.tracked.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_then_the_rate() {
        let limiter = RateLimiter::new(10);
        let start = Instant::now();
        for _ in 0..20 {
            limiter.check(&"k", start).unwrap();
        }
        let wait = limiter.check(&"k", start).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        limiter.check(&"other", start).unwrap();
        limiter.check(&"k", start + Duration::from_millis(100)).unwrap();
    }

    #[test]
    fn failures_slow_down_then_lock_out_and_the_window_resets() {
        let guard = FailureGuard::new(2, 4, Duration::from_secs(30));
        let address: IpAddr = "127.0.0.9".parse().unwrap();
        let now = Instant::now();
        assert_eq!(guard.record_failure(address, now), Penalty::None);
        assert_eq!(guard.record_failure(address, now), Penalty::None);
        assert_eq!(guard.record_failure(address, now), Penalty::Delay(DELAY_STEP));
        assert_eq!(
            guard.record_failure(address, now),
            Penalty::Lockout(Duration::from_secs(30))
        );
        assert_eq!(guard.locked(&address, now), Some(Duration::from_secs(30)));
        guard.record_success(&address);
        assert!(
            guard.locked(&address, now).is_some(),
            "a lockout is not lifted by a success"
        );
        assert_eq!(guard.locked(&address, now + Duration::from_secs(31)), None);
        let other: IpAddr = "127.0.0.10".parse().unwrap();
        assert_eq!(guard.record_failure(other, now), Penalty::None);
        assert_eq!(
            guard.record_failure(other, now + WINDOW),
            Penalty::None,
            "a new window starts from zero"
        );
    }
}
