//! Idempotency keys: claimed once, answered again, refused for another request, let go,
//! and taken over when expired; keys of different subjects are apart.

use rubra_store::{
    Claim, IdempotentAnswer, NewEvent, Scope, StatsQuery, Store, StoredResponse, now_ms,
};
use std::sync::Arc;

/// How long an unanswered claim counts as running.
const IN_FLIGHT: i64 = 60_000;

crate::both_backends!(
    a_key_is_claimed_once_answered_again_and_expires,
    a_claim_left_unanswered_by_a_dead_process_is_taken_over_after_the_in_flight_time,
    an_event_batch_keeps_its_answer_in_its_own_transaction_so_a_retry_after_a_crash_is_replayed,
);

async fn a_key_is_claimed_once_answered_again_and_expires(store: Arc<dyn Store>) {
    let day = 86_400_000;
    let now = now_ms();
    let claim = |subject: &'static str, key: &'static str, hash: &'static str, at: i64| {
        let store = store.clone();
        async move {
            store
                .claim_idempotency_key(subject, key, hash, at, day, IN_FLIGHT)
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("cl_a", "k", "h1", now).await, Claim::New);
    assert_eq!(claim("cl_a", "k", "h1", now).await, Claim::InProgress);
    assert_eq!(claim("cl_a", "k", "h2", now).await, Claim::Mismatch);
    assert_eq!(
        claim("cl_b", "k", "h2", now).await,
        Claim::New,
        "subjects are apart"
    );
    let answer = StoredResponse {
        status: 201,
        content_type: Some("application/json".into()),
        body: br#"{"accepted":3}"#.to_vec(),
    };
    store
        .complete_idempotency_key("cl_a", "k", &answer)
        .await
        .unwrap();
    assert_eq!(claim("cl_a", "k", "h1", now).await, Claim::Replay(answer));
    assert_eq!(claim("cl_a", "k", "h2", now).await, Claim::Mismatch);
    // A day later the key is new again, for any request.
    assert_eq!(claim("cl_a", "k", "h2", now + day + 1).await, Claim::New);
    // A key let go (its answer is not to be repeated) is new at once.
    store.release_idempotency_key("cl_b", "k").await.unwrap();
    assert_eq!(claim("cl_b", "k", "h2", now).await, Claim::New);
}

/// The chaos soak (issue #26): a process killed between claiming a key and storing its
/// answer left the key "in use" for its whole day, and every retry got 409.
async fn a_claim_left_unanswered_by_a_dead_process_is_taken_over_after_the_in_flight_time(
    store: Arc<dyn Store>,
) {
    let day = 86_400_000;
    let now = now_ms();
    let claim = |hash: &'static str, at: i64| {
        let store = store.clone();
        async move {
            store
                .claim_idempotency_key("cl_a", "k", hash, at, day, IN_FLIGHT)
                .await
                .unwrap()
        }
    };
    assert_eq!(claim("h1", now).await, Claim::New);
    assert_eq!(
        claim("h1", now + IN_FLIGHT - 1_000).await,
        Claim::InProgress
    );
    // Nobody answered within the in-flight time: the retry runs the request.
    assert_eq!(claim("h1", now + IN_FLIGHT + 1_000).await, Claim::New);
    assert_eq!(
        claim("h1", now + IN_FLIGHT + 2_000).await,
        Claim::InProgress,
        "the retry holds the key now"
    );
    // An answered key is kept for its day, however long ago it was answered.
    let answer = StoredResponse {
        status: 202,
        content_type: None,
        body: Vec::new(),
    };
    store
        .complete_idempotency_key("cl_a", "k", &answer)
        .await
        .unwrap();
    assert_eq!(
        claim("h1", now + 10 * IN_FLIGHT).await,
        Claim::Replay(answer)
    );
}

/// The chaos soak (issue #26) counted one 20-event batch twice: its process was killed after
/// the batch committed but before the answer was stored under its key, and the retry, once the
/// claim counted as abandoned, ran the batch again. The answer now commits with the events:
/// with no `complete_idempotency_key` call at all (the crash), the retry is a replay.
async fn an_event_batch_keeps_its_answer_in_its_own_transaction_so_a_retry_after_a_crash_is_replayed(
    store: Arc<dyn Store>,
) {
    let client = store
        .create_client("a", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let now = now_ms();
    let day = 86_400_000;
    assert_eq!(
        store
            .claim_idempotency_key(client.as_str(), "batch-1", "h", now, day, IN_FLIGHT)
            .await
            .unwrap(),
        Claim::New
    );
    let answer = StoredResponse {
        status: 201,
        content_type: Some("application/json".into()),
        body: br#"{"accepted":2}"#.to_vec(),
    };
    let events = vec![
        NewEvent {
            client_id: client.clone(),
            image_id: None,
            red: 0.5,
            ts: now,
        };
        2
    ];
    store
        .insert_events_answered(
            events,
            Some(IdempotentAnswer {
                subject: client.as_str().to_owned(),
                key: "batch-1".into(),
                response: answer.clone(),
            }),
        )
        .await
        .unwrap();
    // The process dies here. Past the in-flight time, the retry finds the answer.
    let retry = store
        .claim_idempotency_key(
            client.as_str(),
            "batch-1",
            "h",
            now + IN_FLIGHT + 1,
            day,
            IN_FLIGHT,
        )
        .await
        .unwrap();
    assert_eq!(retry, Claim::Replay(answer));
    let counted = store
        .stats(
            &Scope::Client(client),
            &StatsQuery::new(
                rubra_store::Timestamp::from_ms(now - 1).unwrap(),
                rubra_store::Timestamp::from_ms(now + 1).unwrap(),
                0.0,
                None,
            )
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(counted.total, 2);
}
