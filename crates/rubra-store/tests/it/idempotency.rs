//! Idempotency keys: claimed once, answered again, refused for another request, let go,
//! and taken over when expired; keys of different subjects are apart.

use rubra_store::{Claim, Store, StoredResponse, now_ms};
use std::sync::Arc;

crate::both_backends!(a_key_is_claimed_once_answered_again_and_expires);

async fn a_key_is_claimed_once_answered_again_and_expires(store: Arc<dyn Store>) {
    let day = 86_400_000;
    let now = now_ms();
    let claim = |subject: &'static str, key: &'static str, hash: &'static str, at: i64| {
        let store = store.clone();
        async move {
            store
                .claim_idempotency_key(subject, key, hash, at, day)
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
