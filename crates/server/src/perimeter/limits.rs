//! Abuse limits: token buckets per API key and per client address, and a guard against guessing
//! keys that slows, then refuses, the failures of one subject (a key id being guessed at, or the
//! address a stream of unusable keys comes from).
//!
//! The guard only ever acts on failures: a request with a valid key is never slowed or refused by
//! it, so a web page that makes the browser send bad keys to 127.0.0.1 cannot lock the owner's
//! own clients out. IPv6 addresses are grouped by /64, the block one host can rotate through.
//!
//! State is sharded behind short-lived mutexes (never held across an await) and swept when it
//! grows; a sweep that frees too little drops the oldest windows, so neither memory nor the work
//! of one request grows with the number of addresses a caller cycles through.

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

/// Whose failures are counted together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A key id that exists, presented with the wrong secret (or revoked, or expired).
    Key(String),
    /// Keys that are malformed or name no key, from one address (IPv6: its /64).
    Address(IpAddr),
}

impl Subject {
    pub fn address(address: IpAddr) -> Subject {
        Subject::Address(address_group(address))
    }
}

/// The address that stands for a client in the limits: IPv4 as it is, IPv6 by its /64 (an
/// IPv4-mapped address as the IPv4 address).
pub fn address_group(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

/// Counts authentication failures per [`Subject`] in one-minute windows.
pub struct FailureGuard {
    /// Subjects with recorded failures; while zero, a failure check needs no lock at all.
    tracked: AtomicUsize,
    slowdown_after: u32,
    lockout_after: u32,
    lockout: Duration,
    shards: [Mutex<HashMap<Subject, Failures>>; SHARDS],
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

    fn shard(&self, subject: &Subject) -> std::sync::MutexGuard<'_, HashMap<Subject, Failures>> {
        self.shards[(self.hasher.hash_one(subject) as usize) % SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// How long `subject`'s failures are still refused outright, if they are.
    pub fn locked(&self, subject: &Subject, now: Instant) -> Option<Duration> {
        if self.tracked.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let entries = self.shard(subject);
        let until = entries.get(subject)?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts one more failure of `subject` and says what it costs.
    pub fn record_failure(&self, subject: Subject, now: Instant) -> Penalty {
        let mut entries = self.shard(&subject);
        if entries.len() >= SWEEP_AT {
            let before = entries.len();
            entries.retain(|_, f| {
                f.locked_until.is_some_and(|u| u > now) || now.duration_since(f.window_start) < WINDOW
            });
            if entries.len() > SWEEP_AT / 2 {
                // Everything is recent: keep the newest half, so the next sweep is far away.
                let mut starts: Vec<Instant> = entries.values().map(|f| f.window_start).collect();
                let middle = starts.len() / 2;
                let (_, cut, _) = starts.select_nth_unstable(middle);
                let cut = *cut;
                entries.retain(|_, f| f.window_start > cut);
            }
            self.tracked.fetch_sub(before - entries.len(), Ordering::Relaxed);
        }
        let entry = entries.entry(subject).or_insert_with(|| {
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

    /// Subjects tracked now, for tests of the bound.
    pub fn tracked(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
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
        let subject = Subject::Key("abcd1234".into());
        let now = Instant::now();
        assert_eq!(guard.record_failure(subject.clone(), now), Penalty::None);
        assert_eq!(guard.record_failure(subject.clone(), now), Penalty::None);
        assert_eq!(
            guard.record_failure(subject.clone(), now),
            Penalty::Delay(DELAY_STEP)
        );
        assert_eq!(
            guard.record_failure(subject.clone(), now),
            Penalty::Lockout(Duration::from_secs(30))
        );
        assert_eq!(guard.locked(&subject, now), Some(Duration::from_secs(30)));
        assert_eq!(guard.locked(&subject, now + Duration::from_secs(31)), None);
        let other = Subject::address("127.0.0.10".parse().unwrap());
        assert_eq!(guard.locked(&other, now), None, "subjects are counted apart");
        assert_eq!(guard.record_failure(other.clone(), now), Penalty::None);
        assert_eq!(
            guard.record_failure(other, now + WINDOW),
            Penalty::None,
            "a new window starts from zero"
        );
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        let a = Subject::address("2001:db8:1:2::1".parse().unwrap());
        let b = Subject::address("2001:db8:1:2:ffff:1:2:3".parse().unwrap());
        let c = Subject::address("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(
            Subject::address("::ffff:192.0.2.7".parse().unwrap()),
            Subject::address("192.0.2.7".parse().unwrap())
        );
    }

    #[test]
    fn a_caller_cycling_addresses_keeps_the_guard_bounded() {
        let guard = FailureGuard::new(10, 30, Duration::from_secs(300));
        let now = Instant::now();
        for i in 0..(SHARDS * SWEEP_AT * 3) as u32 {
            let at = now + Duration::from_micros(u64::from(i));
            guard.record_failure(Subject::address(IpAddr::from(i.to_be_bytes())), at);
        }
        assert!(
            guard.tracked() <= SHARDS * SWEEP_AT,
            "{} tracked",
            guard.tracked()
        );
    }
}
