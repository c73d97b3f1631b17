//! Request rate limits: one token bucket per client (and per admin key), and one per address
//! for requests without a valid key, kept as a GCRA "theoretical arrival time" in a single
//! atomic, in a sharded map so concurrent requests take only a shared read lock and one
//! compare-and-swap.
//!
//! Written here rather than taken from `governor`: its keyed limiter holds one quota for all
//! keys, while clients carry their own limits (set by an admin), and its keyed store pulls in
//! `dashmap`, `quanta`, `spinning_top`, `nonzero_ext` and the `futures` crates. The algorithm
//! is the same (GCRA); it fits in one atomic per bucket.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A rate: `rps` requests per second on average, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Requests per second.
    pub rps: NonZeroU32,
    /// The bucket's size: how many requests may come at once after a quiet spell.
    pub burst: NonZeroU32,
}

impl Limit {
    /// Nanoseconds one request uses up (GCRA's emission interval); at least 1.
    fn interval_ns(self) -> u64 {
        (1_000_000_000 / u64::from(self.rps.get())).max(1)
    }

    /// How far ahead of now the bucket's arrival time may run (GCRA's tolerance).
    fn tolerance_ns(self) -> u64 {
        self.interval_ns()
            .saturating_mul(u64::from(self.burst.get()))
    }
}

/// Shards of the bucket map: a request takes only its shard's read lock.
const SHARDS: usize = 16;

/// A shard is swept (full buckets dropped) when it reaches this many buckets, and afterwards
/// at twice what the sweep left.
const MIN_SWEEP_AT: usize = 64;

/// The token buckets of one process, by subject (a client id or an admin key's hash).
///
/// A bucket is one `AtomicU64`: the time, in ns since the limiter was made, at which the
/// bucket will be full again. A bucket whose time has passed is full, which is the same as
/// having no bucket, so dropping it loses nothing: idle clients' buckets are dropped whenever a
/// shard grows, and memory stays proportional to the clients active in the last
/// `burst / rps` seconds.
#[derive(Debug)]
pub struct RateLimiter {
    epoch: Instant,
    hasher: RandomState,
    shards: Box<[Shard]>,
}

#[derive(Debug)]
struct Shard {
    buckets: RwLock<HashMap<Box<str>, AtomicU64>>,
    sweep_at: AtomicUsize,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            epoch: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS)
                .map(|_| Shard {
                    buckets: RwLock::default(),
                    sweep_at: AtomicUsize::new(MIN_SWEEP_AT),
                })
                .collect(),
        }
    }
}

impl RateLimiter {
    /// Takes one request from `subject`'s bucket under `limit`. When it is empty, answers how
    /// long until the next request would be let through, and takes nothing.
    pub fn check(&self, subject: &str, limit: Limit) -> Result<(), Duration> {
        self.check_n(subject, limit, 1)
    }

    /// Takes `n` units at once from `subject`'s bucket (a batch's items, where the limit is in
    /// items per second): all or none. `n` above the burst can never be let through.
    pub fn check_n(&self, subject: &str, limit: Limit, n: u32) -> Result<(), Duration> {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.check_at(subject, limit, now, n)
    }

    /// [`check_n`](Self::check_n) at `now` ns since the epoch.
    fn check_at(&self, subject: &str, limit: Limit, now: u64, n: u32) -> Result<(), Duration> {
        self.with_bucket(subject, now, |tat| take(tat, limit, now, n))
    }

    /// Runs `f` on `subject`'s bucket, made (full) if it has none. A shard that has grown is
    /// swept first: only full buckets go, their state being the same as a new one's.
    fn with_bucket<R>(&self, subject: &str, now: u64, f: impl FnOnce(&AtomicU64) -> R) -> R {
        let shard = &self.shards[self.hasher.hash_one(subject) as usize % SHARDS];
        {
            let buckets = shard.buckets.read().unwrap_or_else(|e| e.into_inner());
            if let Some(tat) = buckets.get(subject) {
                return f(tat);
            }
        }
        let mut buckets = shard.buckets.write().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= shard.sweep_at.load(Ordering::Relaxed) {
            buckets.retain(|_, tat| tat.load(Ordering::Relaxed) > now);
            shard
                .sweep_at
                .store((buckets.len() * 2).max(MIN_SWEEP_AT), Ordering::Relaxed);
        }
        let tat = buckets
            .entry(subject.into())
            .or_insert_with(|| AtomicU64::new(0));
        f(tat)
    }

    /// Takes `n` units from `subject`'s bucket whatever it holds, and answers how long the
    /// caller must wait before using them (zero while the bucket has them): for pacing a
    /// stream (upload bytes) rather than refusing it. Waits add up in order of the calls.
    pub fn reserve_n(&self, subject: &str, limit: Limit, n: u32) -> Duration {
        let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.reserve_at(subject, limit, now, n)
    }

    /// [`reserve_n`](Self::reserve_n) at `now` ns since the epoch.
    fn reserve_at(&self, subject: &str, limit: Limit, now: u64, n: u32) -> Duration {
        let interval = limit.interval_ns().saturating_mul(u64::from(n));
        let tolerance = limit.tolerance_ns();
        self.with_bucket(subject, now, |tat| {
            let before = tat
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                    Some(t.max(now).saturating_add(interval))
                })
                .unwrap_or_else(|t| t);
            let next = before.max(now).saturating_add(interval);
            Duration::from_nanos((next - now).saturating_sub(tolerance))
        })
    }

    /// Gives back one request taken from `subject`'s bucket under `limit` (a request charged
    /// before it was known whether it should be, that turned out not to be).
    pub fn refund(&self, subject: &str, limit: Limit) {
        let shard = &self.shards[self.hasher.hash_one(subject) as usize % SHARDS];
        let buckets = shard.buckets.read().unwrap_or_else(|e| e.into_inner());
        if let Some(tat) = buckets.get(subject) {
            // Cannot fail: the closure always answers.
            let _ = tat.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_sub(limit.interval_ns()))
            });
        }
    }

    /// Buckets held, for tests of eviction.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.buckets.read().map_or(0, |b| b.len()))
            .sum()
    }
}

/// GCRA on one bucket: `n` units move the arrival time `n` intervals past
/// `max(arrival, now)`, and are refused when that would put it more than the tolerance ahead.
fn take(tat: &AtomicU64, limit: Limit, now: u64, n: u32) -> Result<(), Duration> {
    let interval = limit.interval_ns().saturating_mul(u64::from(n));
    let tolerance = limit.tolerance_ns();
    let mut current = tat.load(Ordering::Relaxed);
    loop {
        let next = current.max(now).saturating_add(interval);
        if next - now > tolerance {
            return Err(Duration::from_nanos(next - now - tolerance));
        }
        match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return Ok(()),
            Err(seen) => current = seen,
        }
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    const SEC: u64 = 1_000_000_000;

    fn limit(rps: u32, burst: u32) -> Limit {
        Limit {
            rps: NonZeroU32::new(rps).expect("rps"),
            burst: NonZeroU32::new(burst).expect("burst"),
        }
    }

    #[test]
    fn a_batch_takes_its_size_all_or_nothing_and_one_above_the_burst_never_passes() {
        let l = RateLimiter::default();
        let lim = limit(1000, 2000);
        let t0 = SEC;
        assert_eq!(l.check_at("a", lim, t0, 1500), Ok(()));
        // 600 more do not fit the 500 left: refused whole, nothing taken.
        assert!(l.check_at("a", lim, t0, 600).is_err());
        assert_eq!(l.check_at("a", lim, t0, 500), Ok(()));
        // After a second, 1 000 more.
        assert!(l.check_at("a", lim, t0 + SEC, 1001).is_err());
        assert_eq!(l.check_at("a", lim, t0 + SEC, 1000), Ok(()));
        assert!(l.check_at("b", lim, t0, 2001).is_err());
    }

    #[test]
    fn reserved_units_are_taken_at_once_and_paced_in_order() {
        let l = RateLimiter::default();
        let lim = limit(1000, 2000);
        let t0 = SEC;
        // Within the burst: no wait.
        assert_eq!(l.reserve_at("a", lim, t0, 1500), Duration::ZERO);
        // Past it: taken anyway, and the waits add up (500 over, then 1 000 more over).
        assert_eq!(l.reserve_at("a", lim, t0, 1000), Duration::from_millis(500));
        assert_eq!(
            l.reserve_at("a", lim, t0, 1000),
            Duration::from_millis(1500)
        );
        // Another subject has its own bucket; a check sees what was reserved.
        assert_eq!(l.reserve_at("b", lim, t0, 10), Duration::ZERO);
        assert!(l.check_at("a", lim, t0 + SEC, 1).is_err());
        assert_eq!(l.check_at("a", lim, t0 + 3 * SEC, 1), Ok(()));
    }

    #[test]
    fn a_burst_is_let_through_then_one_request_per_interval() {
        let l = RateLimiter::default();
        let lim = limit(2, 3);
        let t0 = 10 * SEC;
        for _ in 0..3 {
            assert_eq!(l.check_at("a", lim, t0, 1), Ok(()));
        }
        // Empty: the next token is 0.5 s away.
        assert_eq!(l.check_at("a", lim, t0, 1), Err(Duration::from_millis(500)));
        assert_eq!(
            l.check_at("a", lim, t0 + SEC / 4, 1),
            Err(Duration::from_millis(250))
        );
        assert_eq!(l.check_at("a", lim, t0 + SEC / 2, 1), Ok(()));
        assert!(l.check_at("a", lim, t0 + SEC / 2, 1).is_err());
        // After burst / rps seconds of quiet the whole burst is back, no more.
        let later = t0 + SEC / 2 + 3 * SEC / 2;
        for _ in 0..3 {
            assert_eq!(l.check_at("a", lim, later, 1), Ok(()));
        }
        assert!(l.check_at("a", lim, later, 1).is_err());
    }

    #[test]
    fn refused_requests_take_nothing_and_subjects_are_apart() {
        let l = RateLimiter::default();
        let lim = limit(1, 1);
        assert!(l.check_at("a", lim, SEC, 1).is_ok());
        for _ in 0..100 {
            assert!(l.check_at("a", lim, SEC, 1).is_err());
        }
        // A hammering client waits exactly one interval, not longer for having hammered.
        assert!(l.check_at("a", lim, 2 * SEC, 1).is_ok());
        assert!(l.check_at("b", lim, SEC, 1).is_ok());
    }

    #[test]
    fn a_changed_limit_applies_to_the_existing_bucket() {
        let l = RateLimiter::default();
        for _ in 0..10 {
            assert!(l.check_at("a", limit(1000, 10), SEC, 1).is_ok());
        }
        // Lowered: the bucket, 10 ms ahead, is over a 1/s, burst 1 tolerance.
        assert!(l.check_at("a", limit(1, 1), SEC, 1).is_err());
        // Raised: room again at once.
        assert!(l.check_at("a", limit(1000, 100), SEC, 1).is_ok());
    }

    #[test]
    fn a_refunded_request_can_be_made_again() {
        let l = RateLimiter::default();
        let lim = limit(1, 2);
        assert!(l.check_at("a", lim, SEC, 1).is_ok());
        assert!(l.check_at("a", lim, SEC, 1).is_ok());
        assert!(l.check_at("a", lim, SEC, 1).is_err());
        l.refund("a", lim);
        assert!(l.check_at("a", lim, SEC, 1).is_ok());
        assert!(l.check_at("a", lim, SEC, 1).is_err());
        // A subject without a bucket has nothing to give back, and gets no more than a burst.
        l.refund("b", lim);
        assert!(l.check_at("b", lim, SEC, 1).is_ok());
        assert!(l.check_at("b", lim, SEC, 1).is_ok());
        assert!(l.check_at("b", lim, SEC, 1).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_at_least_one() {
        assert_eq!(retry_after_secs(Duration::from_nanos(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1000)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        let l = RateLimiter::default();
        let lim = limit(1, 1);
        assert!(l.check_at("a", lim, SEC, 1).is_ok());
        let wait = l.check_at("a", lim, SEC + 1, 1).unwrap_err();
        assert_eq!(retry_after_secs(wait), 1);
    }

    #[test]
    fn huge_rates_and_bursts_do_not_overflow() {
        let l = RateLimiter::default();
        let lim = limit(u32::MAX, u32::MAX);
        for _ in 0..1000 {
            assert!(l.check_at("a", lim, u64::MAX / 2, 1).is_ok());
        }
        assert!(l.check_at("b", limit(1, u32::MAX), 0, 1).is_ok());
    }

    #[test]
    fn idle_buckets_are_dropped_so_memory_follows_the_active_clients() {
        let l = RateLimiter::default();
        let lim = limit(10, 1);
        // 10 000 clients, each one request, 1 ms apart: a bucket is full again 100 ms later.
        for i in 0..10_000u64 {
            assert!(l.check_at(&format!("c{i}"), lim, i * 1_000_000, 1).is_ok());
        }
        // At most ~100 are within their 100 ms; sweeps at doubling sizes keep the rest bounded.
        assert!(l.len() <= SHARDS * MIN_SWEEP_AT * 2, "{} buckets", l.len());
        // A bucket in use is never dropped: the last client is still limited.
        assert!(l.check_at("c9999", lim, 9_999 * 1_000_000, 1).is_err());
    }

    #[test]
    fn concurrent_requests_get_exactly_the_burst() {
        let l = Arc::new(RateLimiter::default());
        let lim = limit(1, 1000);
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    (0..500)
                        .filter(|_| l.check_at("a", lim, 5 * SEC, 1).is_ok())
                        .count()
                })
            })
            .collect();
        let allowed: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        assert_eq!(allowed, 1000);
    }
}
