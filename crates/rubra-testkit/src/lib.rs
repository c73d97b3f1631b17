//! Test support: real PostgreSQL databases and S3 buckets for the integration tests, and
//! [`eventually`] for waiting on background work.
//!
//! `scripts/test.sh` starts a throwaway PostgreSQL cluster and an S3 server (moto) and exports
//! `RUBRA_TEST_DATABASE_URL` and `RUBRA_TEST_S3_ENDPOINT`. Each test then gets its own fresh
//! database or bucket from here. Under a plain `cargo test` those variables are unset and the
//! tests that need them print that they were skipped and return — unless
//! `RUBRA_TEST_REQUIRE_SERVICES=1` (set by the script and CI), where a missing service fails.
#![deny(missing_docs)]

use rubra_store::random_id;
use sqlx::Connection;

pub mod cluster;
pub mod tls;

mod eventually;
pub use eventually::{eventually, eventually_blocking};

fn required() -> bool {
    std::env::var("RUBRA_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

fn skip(test: &str, what: &str, var: &str) {
    assert!(!required(), "{test}: {what} required but {var} is not set");
    eprintln!("SKIPPED {test}: needs {what}; set {var} or run scripts/test.sh");
}

/// A fresh, empty PostgreSQL database for one test, as a URL; `None` (after printing that the
/// test is skipped) when no PostgreSQL server is configured.
pub async fn fresh_postgres(test: &str) -> Option<String> {
    let Ok(admin_url) = std::env::var("RUBRA_TEST_DATABASE_URL") else {
        skip(test, "PostgreSQL", "RUBRA_TEST_DATABASE_URL");
        return None;
    };
    let name = format!("rubra_test_{}", random_id(6));
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("{test}: cannot reach PostgreSQL at {admin_url}: {e}"));
    // The name is generated here from hex digits only, so formatting it into SQL is safe.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{test}: CREATE DATABASE failed: {e}"));
    let base = admin_url
        .rsplit_once('/')
        .map_or(admin_url.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}

/// An S3 server with a fresh bucket for one test.
#[derive(Debug, Clone)]
pub struct S3Bucket {
    /// The server's endpoint, e.g. `http://127.0.0.1:5000`.
    pub endpoint: String,
    /// The new bucket's name.
    pub bucket: String,
}

impl S3Bucket {
    /// The `--storage` URL for this bucket with a key prefix.
    pub fn storage_url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix)
    }
}

/// A fresh bucket on the test S3 server; `None` (after printing that the test is skipped)
/// when no S3 server is configured.
pub async fn fresh_bucket(test: &str) -> Option<S3Bucket> {
    let Ok(endpoint) = std::env::var("RUBRA_TEST_S3_ENDPOINT") else {
        skip(test, "an S3 server", "RUBRA_TEST_S3_ENDPOINT");
        return None;
    };
    let bucket = format!("rubra-test-{}", random_id(6));
    // moto creates a bucket on an unsigned PUT of its path, like path-style CreateBucket.
    let resp = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{test}: cannot reach the S3 server at {endpoint}: {e}"));
    assert!(
        resp.status().is_success(),
        "{test}: CreateBucket answered {}",
        resp.status()
    );
    Some(S3Bucket { endpoint, bucket })
}

/// A RabbitMQ broker for one test: its URL, a fresh queue name, and the command that stops
/// and starts it.
#[derive(Debug, Clone)]
pub struct AmqpBroker {
    /// `amqp://guest:guest@127.0.0.1:PORT/%2f`.
    pub url: String,
    /// A queue name no other test uses.
    pub queue: String,
    /// The broker's control script (`ctl stop`, `ctl start`), when the test script made one.
    pub ctl: Option<String>,
}

/// The test RabbitMQ broker with a fresh queue name; `None` (after printing that the test is
/// skipped) when no broker is configured (`RUBRA_TEST_AMQP_URL`).
pub fn amqp_broker(test: &str) -> Option<AmqpBroker> {
    let Ok(url) = std::env::var("RUBRA_TEST_AMQP_URL") else {
        skip(test, "RabbitMQ", "RUBRA_TEST_AMQP_URL");
        return None;
    };
    Some(AmqpBroker {
        url,
        queue: format!("rubra-test-{}", random_id(6)),
        ctl: std::env::var("RUBRA_TEST_AMQP_CTL").ok(),
    })
}
