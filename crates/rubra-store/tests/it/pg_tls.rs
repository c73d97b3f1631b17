//! PostgreSQL over TLS: the URL's `sslmode` and `sslrootcert` are honoured, against a
//! throwaway cluster with `ssl = on` serving a certificate from a CA this test makes. One
//! cluster serves every case, so the test takes a few seconds.

use rubra_store::{DatabaseUrl, PgStore, StoreError};
use rubra_testkit::tls::{TestCa, TlsPostgres};

/// Whether the session of `store`'s connection runs over TLS, as the server sees it.
async fn uses_tls(store: &PgStore) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_ssl")
}

/// Opens the store as `rubra serve` does (connect, then migrate).
async fn open(url: &str) -> Result<(), StoreError> {
    let store = rubra_store::open(&DatabaseUrl::parse(url)?).await?;
    store.ping().await
}

#[tokio::test]
async fn postgres_tls_honours_sslmode_and_sslrootcert() {
    let ca = TestCa::new("rubra test CA");
    // Issued for "localhost" only: 127.0.0.1 reaches the same server under a name the
    // certificate does not list, which tells verify-ca from verify-full.
    let Some(pg) = TlsPostgres::start(
        "postgres_tls_honours_sslmode_and_sslrootcert",
        &ca.issue(&["localhost"]),
    ) else {
        return;
    };
    let right_ca = pg.dir().join("right-ca.pem");
    std::fs::write(&right_ca, ca.pem()).unwrap();
    let other_ca = pg.dir().join("other-ca.pem");
    std::fs::write(&other_ca, TestCa::new("another CA").pem()).unwrap();
    let right = right_ca.display();
    let other = other_ca.display();

    for (mode, tls) in [("disable", false), ("prefer", true), ("require", true)] {
        let store = PgStore::connect(&pg.url("127.0.0.1", &format!("sslmode={mode}")))
            .await
            .unwrap_or_else(|e| panic!("sslmode={mode} connects: {e}"));
        assert_eq!(uses_tls(&store).await, tls, "sslmode={mode}");
    }

    // The whole start (connect and migrate) over a verified connection.
    let url = pg.url(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={right}"),
    );
    open(&url)
        .await
        .unwrap_or_else(|e| panic!("verify-full with the right CA opens the store: {e}"));
    let store = PgStore::connect(&url).await.unwrap();
    assert!(uses_tls(&store).await);

    // verify-ca checks the CA but not the name.
    let url = pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={right}"),
    );
    open(&url)
        .await
        .unwrap_or_else(|e| panic!("verify-ca with the right CA ignores the name: {e}"));

    // verify-full checks the name too.
    let url = pg.url(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={right}"),
    );
    let err = open(&url).await.expect_err("a name the certificate lacks");
    assert!(matches!(err, StoreError::DatabaseTls(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("not trusted") && msg.contains("host name"),
        "{msg}"
    );

    // Another CA: refused at start, saying why.
    for mode in ["verify-ca", "verify-full"] {
        let url = pg.url("localhost", &format!("sslmode={mode}&sslrootcert={other}"));
        let err = open(&url).await.expect_err("a certificate from another CA");
        let msg = err.to_string();
        assert!(
            msg.contains("certificate") && msg.contains("not trusted"),
            "sslmode={mode}: {msg}"
        );
        assert!(msg.contains("sslrootcert"), "sslmode={mode}: {msg}");
    }
}

#[tokio::test]
async fn sslmode_require_refuses_a_server_without_tls() {
    // The shared test server of scripts/test.sh runs without TLS.
    let Some(url) =
        rubra_testkit::fresh_postgres("sslmode_require_refuses_a_server_without_tls").await
    else {
        return;
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    open(&format!("{url}{sep}sslmode=prefer"))
        .await
        .expect("prefer falls back to plain");
    let err = open(&format!("{url}{sep}sslmode=require"))
        .await
        .expect_err("require without TLS on the server");
    assert!(matches!(err, StoreError::DatabaseTls(_)), "{err:?}");
    assert!(err.to_string().contains("TLS"), "{err}");
}
