//! Retention: the sweeper of a running server deletes the delivery log rows older than
//! `retain-deliveries-days` shortly after start, keeps recent ones, and counts what it deleted.

use crate::helpers::spawn_app_with;
use rubra_server::Settings;
use rubra_store::{ClientId, DatabaseUrl, DeliveryAttempt, LogPage, Scope, SubscriptionId, now_ms};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweeper_of_a_running_server_deletes_back_dated_delivery_log_rows() {
    let app = spawn_app_with(|c| c.retain_deliveries_days = Some(1)).await;
    let (id, _key) = app.create_client("a").await;
    let client = ClientId::parse(&id).unwrap();
    // The same database, opened beside the server, to write rows dated in the past.
    let store = rubra_store::open(&DatabaseUrl::default_in(&app.data_dir))
        .await
        .unwrap();
    let row = |at: i64| DeliveryAttempt {
        id: 0,
        notification_seq: 1,
        subscription_id: SubscriptionId::parse("sub_0123456789abcdef").unwrap(),
        client_id: client.clone(),
        attempt: 1,
        at,
        outcome: "delivered".into(),
        status_code: Some(200),
        latency_ms: 1,
        error: None,
    };
    let day = 86_400_000;
    let now = now_ms();
    let rows = vec![
        row(now - 3 * day),
        row(now - day - 60_000),
        row(now - day + 60_000),
        row(now),
    ];
    store.insert_delivery_attempts(&rows).await.unwrap();
    let log = || async {
        store
            .list_delivery_attempts(
                &Scope::Client(client.clone()),
                &LogPage {
                    subscription: None,
                    before_id: None,
                    limit: 100,
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.at)
            .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while log().await.len() > 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper never ran: {:?}",
            log().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        log().await,
        vec![now, now - day + 60_000],
        "the recent rows stay"
    );
    let metrics = app.metrics().await;
    // Other tests' servers share this process's recorder: at least these two were counted.
    let deleted: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("rubra_retention_deleted_total{table=\"delivery_attempts\"} "))
        .unwrap_or_else(|| panic!("no counter in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(deleted >= 2.0, "{deleted}");
}

#[test]
fn retention_settings_default_to_30_days_0_keeps_forever_and_events_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let s = Settings::validate(crate::helpers::test_config(&dir)).unwrap();
    let month = Some(Duration::from_secs(30 * 86_400));
    assert_eq!(
        (s.retain_deliveries, s.retain_watch_changes, s.retain_jobs),
        (month, month, month)
    );
    let mut args = crate::helpers::test_config(&dir);
    args.retain_jobs_days = Some(0);
    args.retain_events_days = Some(0);
    let s = Settings::validate(args).unwrap();
    assert_eq!((s.retain_jobs, s.retain_deliveries), (None, month));
    let mut args = crate::helpers::test_config(&dir);
    args.retain_events_days = Some(7);
    let err = Settings::validate(args).unwrap_err().to_string();
    assert!(err.contains("retain-events-days"), "{err}");
}
