//! The store test suite, run against both SQLite and PostgreSQL (and blobs on disk and S3).
//!
//! Each test is written once as `async fn name(store: Arc<dyn Store>)`; `both_backends!`
//! makes a SQLite and a PostgreSQL test of it. The PostgreSQL ones skip (saying so) when no
//! server is configured; `scripts/test.sh` provides one.

// Tests fail loudly on the first unexpected error; that is what unwrap is for here.
#![allow(clippy::unwrap_used)]

mod audit;
mod blobs;
mod clients;
mod idempotency;
mod jobs;
mod keys;
mod lost_commit;
mod messages;
mod notify;
mod pg_tls;
mod retention;
mod secrets;
mod stats;
mod watches;

use rubra_store::{DatabaseUrl, SecretBox, Store};
use std::sync::Arc;

/// Opens a store at `url` with a fresh secret key loaded, as a server start does.
async fn open_with_key(url: &DatabaseUrl) -> Arc<dyn Store> {
    let store = rubra_store::open(url).await.expect("open store");
    let keys = SecretBox::parse(&SecretBox::generate_line()).expect("a generated key parses");
    store
        .use_secret_keys(keys)
        .await
        .expect("load the secret key");
    store
}

/// A fresh SQLite store in its own temporary folder (kept alive by the returned guard).
pub async fn sqlite() -> (Arc<dyn Store>, Option<tempfile::TempDir>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = DatabaseUrl::default_in(dir.path());
    (open_with_key(&url).await, Some(dir))
}

/// A fresh PostgreSQL store in its own database, or `None` when PostgreSQL is not configured.
pub async fn postgres(test: &str) -> Option<(Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let url = rubra_testkit::fresh_postgres(test).await?;
    let url = DatabaseUrl::parse(&url).expect("postgres url");
    Some((open_with_key(&url).await, None))
}

/// Generates `sqlite::$name` and `postgres::$name` tests from `async fn $name(Arc<dyn Store>)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (store, _guard) = $crate::sqlite().await;
                    super::$name(store).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((store, _guard)) = $crate::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(store).await;
                }
            )*
        }
    };
}
