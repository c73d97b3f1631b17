//! How jobs reach their inputs: what they may read, S3 settings, retry policy,
//! timeouts, and the per-bucket client cache. Built once at start-up and
//! shared by all jobs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, RetryConfig};

use crate::{JobError, SourcePolicy};

/// How to reach the S3-compatible store.
///
/// Credentials and the region come from the usual AWS environment variables
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, …,
/// read by [`AmazonS3Builder::from_env`]); the fields here override them.
/// Requests are path-style (`{endpoint}/{bucket}/{key}`).
#[derive(Clone, Debug, Default)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:5000`; `None` keeps the
    /// environment's (or AWS's own).
    pub endpoint: Option<String>,
    /// Allow plain `http://` endpoints.
    pub allow_http: bool,
    /// Region; `None` keeps the environment's (default `us-east-1`).
    pub region: Option<String>,
}

/// When and how often a broken download is tried again.
///
/// The delay before retry `n` (1-based) is a random value in
/// `[d/2, d]` with `d = min(cap, base × 2^(n-1))` ("equal jitter").
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Requests allowed per job, the first one included: the job fails when
    /// that many attempts have failed. Counts every failure (a dropped
    /// connection, a 503, a stall, a timeout, the object changing), not only
    /// consecutive ones, so a flaky store cannot keep a job alive forever.
    pub max_attempts: u32,
    /// First backoff delay.
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `retry` (1-based), with jitter.
    pub fn delay(&self, retry: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20));
        let d = exp.min(self.backoff_cap);
        let half = d / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Everything a job needs besides its source and options. Share one
/// (behind an `Arc`) between all jobs of a process: S3 clients, with their
/// connection pools, are cached per bucket.
#[derive(Debug)]
pub struct RunEnv {
    /// What jobs may read (nothing by default).
    pub sources: SourcePolicy,
    /// The S3 store.
    pub s3: S3Config,
    /// Retries of broken downloads.
    pub retry: RetryPolicy,
    /// Longest wait for the response headers of one request (connect
    /// included); longer counts as a failed attempt.
    pub request_timeout: Duration,
    /// Longest time without a single body byte before an attempt is
    /// abandoned and the download resumed.
    pub stall_timeout: Duration,
    /// Local files: memory-map them (fastest; see
    /// [`rubra_csvsum::sum_file`]: a file truncated while it is read can
    /// crash the process with SIGBUS) or read them with `pread` (safe, a
    /// little more CPU).
    pub local_mmap: bool,
    /// Parser threads for one job; 0 means one per core.
    pub threads: usize,
    stores: Mutex<HashMap<String, Arc<AmazonS3>>>,
}

impl Default for RunEnv {
    fn default() -> Self {
        Self::new(S3Config::default())
    }
}

impl RunEnv {
    /// Most S3 clients kept at once; past it the cache starts over (clients
    /// are cheap to rebuild, and a policy normally allows a few buckets).
    pub const MAX_CACHED_STORES: usize = 64;

    /// An environment with the given S3 settings, nothing readable (set
    /// [`RunEnv::sources`]), and default retries
    /// (10 attempts, 100 ms → 10 s), a 30 s request timeout, a 20 s stall
    /// timeout, memory-mapped local files and all cores.
    pub fn new(s3: S3Config) -> Self {
        Self {
            sources: SourcePolicy::default(),
            s3,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(20),
            local_mmap: true,
            threads: 0,
            stores: Mutex::new(HashMap::new()),
        }
    }

    /// The client for `bucket`, built on first use and cached (at most
    /// [`RunEnv::MAX_CACHED_STORES`] clients). Does not consult
    /// [`RunEnv::sources`]: [`run`](crate::run) does before calling it.
    ///
    /// `object_store`'s own retries are switched off (`max_retries = 0`) and
    /// so is its whole-request timeout: this crate resumes broken bodies
    /// itself (it must know the offset and the ETag to start over when the
    /// object changes, count attempts per job, detect stalls, and stay
    /// cancelable), and a whole-request timeout would abort large objects.
    pub fn s3_store(&self, bucket: &str) -> Result<Arc<AmazonS3>, JobError> {
        let mut stores = self.stores.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = stores.get(bucket) {
            return Ok(s.clone());
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(self.s3.allow_http)
                    .with_timeout_disabled()
                    .with_connect_timeout(self.request_timeout),
            );
        if let Some(e) = &self.s3.endpoint {
            b = b.with_endpoint(e);
        }
        if let Some(r) = &self.s3.region {
            b = b.with_region(r);
        }
        let store = Arc::new(b.build().map_err(|e| JobError::S3Config(e.to_string()))?);
        if stores.len() >= Self::MAX_CACHED_STORES {
            stores.clear();
        }
        stores.insert(bucket.to_owned(), store.clone());
        Ok(store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_cache_is_bounded() {
        let env = RunEnv::new(S3Config {
            endpoint: Some("http://127.0.0.1:1".into()),
            allow_http: true,
            region: Some("us-east-1".into()),
        });
        for i in 0..RunEnv::MAX_CACHED_STORES * 3 {
            env.s3_store(&format!("bucket-{i}")).expect("client");
        }
        let cached = env
            .stores
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        assert!(
            cached <= RunEnv::MAX_CACHED_STORES,
            "{cached} clients cached"
        );
    }

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        let p = RetryPolicy {
            max_attempts: 5,
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_millis(1000),
        };
        for (retry, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (40, 1000),
        ] {
            let d = p.delay(retry).as_millis();
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d} ms");
        }
    }
}
