//! Retry delays: exponential backoff with jitter, and `Retry-After`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest wait between two attempts, whatever the attempt number.
pub const MAX_DELAY: Duration = Duration::from_secs(10);
/// The longest `Retry-After` honoured, so a confused server cannot stall a run.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// The delay before retry number `attempt` (0-based): `base · 2^attempt`,
/// capped at [`MAX_DELAY`], then "equal jitter" (a random point in its upper
/// half) so that many workers do not retry in lockstep.
pub fn delay(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20)).min(MAX_DELAY);
    let half = exp / 2;
    let nanos = half.as_nanos() as u64;
    let jitter = if nanos == 0 {
        0
    } else {
        random_u64() % (nanos + 1)
    };
    half + Duration::from_nanos(jitter)
}

/// Parses a `Retry-After` header given in seconds (the form servers use for
/// 429 and 503); an HTTP date or garbage gives `None` (plain backoff then).
pub fn retry_after(value: &str) -> Option<Duration> {
    let secs: u64 = value.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// A non-cryptographic random number (splitmix64 over a shared counter seeded
/// from the clock): enough for jitter and multipart boundaries.
pub fn random_u64() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    if STATE.load(Ordering::Relaxed) == 0 {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id()).rotate_left(32);
        let _ = STATE.compare_exchange(0, seed | 1, Ordering::Relaxed, Ordering::Relaxed);
    }
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let base = Duration::from_millis(100);
        for attempt in 0..30 {
            let d = delay(base, attempt);
            let exp = base.saturating_mul(1u32 << attempt.min(20)).min(MAX_DELAY);
            assert!(d >= exp / 2 && d <= exp, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(retry_after("99999"), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn random_numbers_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
