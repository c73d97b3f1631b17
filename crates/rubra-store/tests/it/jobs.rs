//! The CSV job queue: scoping, leases and their expiry, the per-client limit, cancel,
//! retries, the result written once, and claims racing each other.

use rubra_store::{
    ActiveJobs, CancelOutcome, ClaimRequest, ClaimedJob, ClientId, JobColumn, JobFailure, JobId,
    JobPage, JobProgress, JobResult, JobSpec, JobState, LeaseStatus, NewJob, Scope, Store, now_ms,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

crate::both_backends!(
    submit_get_list_and_scope,
    active_counts_follow_the_states,
    expired_lease_is_taken_over_and_the_old_holder_is_fenced,
    result_is_written_once,
    per_client_limit_is_respected,
    per_client_limit_holds_under_concurrent_claims,
    no_job_is_claimed_twice_under_concurrency,
    cancel_queued_running_and_finished,
    expired_lease_of_a_canceled_job_settles_as_canceled,
    transient_failures_retry_with_backoff_then_fail,
    lost_workers_use_up_the_attempts,
    release_requeues_without_counting_the_attempt,
    jobs_submitted_in_the_same_millisecond_are_claimed_in_submission_order,
);

fn spec(source: &str) -> JobSpec {
    JobSpec {
        source: source.to_owned(),
        step: 10,
        delimiter: b',',
        header: true,
        skip_invalid: false,
    }
}

async fn submit(store: &Arc<dyn Store>, client: &ClientId, source: &str) -> JobId {
    let job = store
        .submit_job(&NewJob {
            client_id: client.clone(),
            spec: spec(source),
            max_attempts: 3,
            limit: 1000,
        })
        .await
        .unwrap();
    assert_eq!(job.state, JobState::Queued);
    job.id
}

fn req(owner: &str, lease_ms: u64, limit: u32) -> ClaimRequest {
    ClaimRequest {
        owner: owner.to_owned(),
        lease: Duration::from_millis(lease_ms),
        per_client_limit: limit,
    }
}

async fn claim(
    store: &Arc<dyn Store>,
    owner: &str,
    lease_ms: u64,
    limit: u32,
) -> Option<ClaimedJob> {
    store.claim_job(&req(owner, lease_ms, limit)).await.unwrap()
}

fn result(rows: u64, sum: &str) -> JobResult {
    JobResult {
        rows,
        columns: vec![JobColumn {
            index: 10,
            name: "c10".into(),
            sum: sum.into(),
            skipped: 0,
        }],
    }
}

fn finished(rows: u64) -> JobProgress {
    JobProgress {
        bytes_done: 100,
        bytes_total: Some(100),
        rows,
    }
}

async fn state_of(store: &Arc<dyn Store>, id: &JobId) -> JobState {
    store.get_job(&Scope::All, id).await.unwrap().unwrap().state
}

/// Polls `claim` until it returns a job; fails the test after `deadline`.
async fn claim_within(
    store: &Arc<dyn Store>,
    owner: &str,
    lease_ms: u64,
    deadline: Duration,
) -> ClaimedJob {
    rubra_testkit::eventually(deadline, || async {
        claim(store, owner, lease_ms, 10)
            .await
            .ok_or("no job claimable")
    })
    .await
}

async fn submit_get_list_and_scope(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let mut mine = Vec::new();
    for i in 0..5 {
        mine.push(submit(&store, &a, &format!("data/{i}.csv")).await);
    }
    let theirs = submit(&store, &b, "s3://bucket/key.csv").await;

    let job = store
        .get_job(&Scope::Client(a.clone()), &mine[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.spec, spec("data/0.csv"));
    assert_eq!(job.client_id, a);
    assert_eq!((job.attempts, job.max_attempts), (0, 3));
    assert_eq!(job.progress, JobProgress::default());
    assert!(job.result.is_none() && job.error.is_none() && job.started_at.is_none());
    // Another client's job is invisible; an admin sees it.
    let scope_a = Scope::Client(a.clone());
    assert!(store.get_job(&scope_a, &theirs).await.unwrap().is_none());
    assert!(store.get_job(&Scope::All, &theirs).await.unwrap().is_some());
    assert_eq!(store.cancel_job(&scope_a, &theirs).await.unwrap(), None);
    assert_eq!(state_of(&store, &theirs).await, JobState::Queued);

    // Newest first, paged with the cursor, never showing the other client's job.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_jobs(
                &scope_a,
                &JobPage {
                    state: None,
                    after: after.clone(),
                    limit: 2,
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|j| (j.created_at, j.id.clone()));
        seen.extend(page.into_iter().map(|j| j.id));
    }
    // Same-millisecond submissions are ordered by id; check against created_at, id order.
    let mut by_time = Vec::new();
    for id in &mine {
        let j = store.get_job(&scope_a, id).await.unwrap().unwrap();
        by_time.push((j.created_at, j.id));
    }
    by_time.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| y.1.as_str().cmp(x.1.as_str())));
    let expected: Vec<JobId> = by_time.into_iter().map(|(_, id)| id).collect();
    assert_eq!(seen, expected);

    // The state filter.
    store.cancel_job(&scope_a, &mine[2]).await.unwrap();
    let canceled = store
        .list_jobs(
            &scope_a,
            &JobPage {
                state: Some(JobState::Canceled),
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        canceled.iter().map(|j| &j.id).collect::<Vec<_>>(),
        [&mine[2]]
    );
    let all = store
        .list_jobs(
            &Scope::All,
            &JobPage {
                state: Some(JobState::Queued),
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 5, "4 of acme's and globex's one");
}

async fn active_counts_follow_the_states(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    for i in 0..3 {
        submit(&store, &a, &format!("{i}.csv")).await;
    }
    submit(&store, &b, "b.csv").await;
    let scope_a = Scope::Client(a.clone());
    let active = |s: Scope| {
        let store = store.clone();
        async move { store.active_jobs(&s).await.unwrap() }
    };
    assert_eq!(
        active(scope_a.clone()).await,
        ActiveJobs {
            queued: 3,
            running: 0
        }
    );
    let first = claim(&store, "w1", 10_000, 10).await.unwrap();
    assert_eq!(first.client_id, a, "oldest first");
    assert_eq!(
        active(scope_a.clone()).await,
        ActiveJobs {
            queued: 2,
            running: 1
        }
    );
    assert_eq!(
        active(Scope::All).await,
        ActiveJobs {
            queued: 3,
            running: 1
        }
    );
    store
        .complete_job(&first.lease, &result(1, "1"), &finished(1))
        .await
        .unwrap();
    assert_eq!(
        active(scope_a).await,
        ActiveJobs {
            queued: 2,
            running: 0
        }
    );
    assert_eq!(
        active(Scope::Client(b)).await,
        ActiveJobs {
            queued: 1,
            running: 0
        }
    );
}

async fn expired_lease_is_taken_over_and_the_old_holder_is_fenced(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let id = submit(&store, &a, "x.csv").await;
    let first = claim(&store, "dead-worker", 300, 10).await.unwrap();
    assert_eq!(first.lease.job_id, id);
    assert_eq!(first.lease.attempt, 1);
    assert_eq!(first.lease.owner, "dead-worker");
    // Held: nobody else gets it.
    assert!(claim(&store, "w2", 10_000, 10).await.is_none());
    let progress = JobProgress {
        bytes_done: 100,
        bytes_total: Some(1000),
        rows: 7,
    };
    assert_eq!(
        store
            .heartbeat_job(&first.lease, &progress, Duration::from_millis(300))
            .await
            .unwrap(),
        LeaseStatus::Held
    );
    let job = store.get_job(&Scope::All, &id).await.unwrap().unwrap();
    assert_eq!(job.progress, progress);
    assert_eq!(job.state, JobState::Running);
    assert!(job.started_at.is_some());

    // The holder stops heartbeating: another worker takes over once the lease expires.
    // Taken over after expiry.
    let second = claim_within(&store, "w2", 10_000, Duration::from_secs(5)).await;
    assert_eq!(second.lease.job_id, id);
    assert_eq!(second.lease.attempt, 2);
    let job = store.get_job(&Scope::All, &id).await.unwrap().unwrap();
    assert_eq!(job.progress, JobProgress::default(), "progress restarts");
    assert_eq!(job.attempts, 2);

    // The old holder is fenced off from every write.
    assert_eq!(
        store
            .heartbeat_job(&first.lease, &progress, Duration::from_secs(10))
            .await
            .unwrap(),
        LeaseStatus::Lost
    );
    assert_eq!(
        store
            .complete_job(&first.lease, &result(1, "999"), &finished(1))
            .await
            .unwrap(),
        None
    );
    let failure = JobFailure {
        code: "x".into(),
        message: "x".into(),
    };
    assert_eq!(
        store.fail_job(&first.lease, &failure, None).await.unwrap(),
        None
    );
    assert!(!store.cancel_run(&first.lease).await.unwrap());
    assert!(!store.release_job(&first.lease).await.unwrap());
    assert_eq!(
        store
            .complete_job(&second.lease, &result(3, "42.5"), &finished(3))
            .await
            .unwrap(),
        Some(JobState::Succeeded)
    );
    let job = store.get_job(&Scope::All, &id).await.unwrap().unwrap();
    assert_eq!(job.result, Some(result(3, "42.5")));
    assert_eq!(job.progress.rows, 3);
}

async fn result_is_written_once(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let id = submit(&store, &a, "x.csv").await;
    let c = claim(&store, "w1", 10_000, 10).await.unwrap();
    assert_eq!(
        store
            .complete_job(&c.lease, &result(2, "1.5"), &finished(2))
            .await
            .unwrap(),
        Some(JobState::Succeeded)
    );
    // The same lease again, or a failure after the fact, change nothing.
    assert_eq!(
        store
            .complete_job(&c.lease, &result(9, "9"), &finished(9))
            .await
            .unwrap(),
        None
    );
    let failure = JobFailure {
        code: "internal".into(),
        message: "late".into(),
    };
    assert_eq!(
        store
            .fail_job(&c.lease, &failure, Some(now_ms()))
            .await
            .unwrap(),
        None
    );
    let job = store.get_job(&Scope::All, &id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Succeeded);
    assert_eq!(job.result, Some(result(2, "1.5")));
    assert!(job.error.is_none());
    assert!(job.finished_at.is_some());
    // A finished job is never claimed again.
    assert!(claim(&store, "w2", 10_000, 10).await.is_none());
}

async fn per_client_limit_is_respected(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let b = store
        .create_client("globex", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let a1 = submit(&store, &a, "1.csv").await;
    let a2 = submit(&store, &a, "2.csv").await;
    let a3 = submit(&store, &a, "3.csv").await;
    let b1 = submit(&store, &b, "b.csv").await;
    let mut got = Vec::new();
    while let Some(c) = claim(&store, "w", 10_000, 2).await {
        got.push(c);
    }
    let ids: Vec<&JobId> = got.iter().map(|c| &c.lease.job_id).collect();
    assert_eq!(
        ids,
        [&a1, &a2, &b1],
        "acme's third waits; globex is not starved"
    );
    // One of acme's finishes: its third may run.
    store
        .complete_job(&got[0].lease, &result(1, "1"), &finished(1))
        .await
        .unwrap();
    let next = claim(&store, "w", 10_000, 2).await.unwrap();
    assert_eq!(next.lease.job_id, a3);
    assert!(claim(&store, "w", 10_000, 2).await.is_none());
}

async fn per_client_limit_holds_under_concurrent_claims(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    for i in 0..12 {
        submit(&store, &a, &format!("{i}.csv")).await;
    }
    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for _ in 0..4 {
                    if let Some(c) = claim(&store, &format!("w{w}"), 10_000, 3).await {
                        mine.push(c.lease.job_id);
                    }
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    assert_eq!(all.len(), 3, "exactly the limit runs: {all:?}");
    assert_eq!(
        store.active_jobs(&Scope::All).await.unwrap(),
        ActiveJobs {
            queued: 9,
            running: 3
        }
    );
}

async fn no_job_is_claimed_twice_under_concurrency(store: Arc<dyn Store>) {
    let mut clients = Vec::new();
    for i in 0..4 {
        clients.push(
            store
                .create_client(&format!("c{i}"), &rubra_store::Actor::system())
                .await
                .unwrap()
                .id,
        );
    }
    let mut submitted = HashSet::new();
    for i in 0..40 {
        submitted.insert(submit(&store, &clients[i % 4], &format!("{i}.csv")).await);
    }
    let claimers: Vec<_> = (0..8)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while let Some(c) = claim(&store, &format!("w{w}"), 10_000, 100).await {
                    mine.push(c.lease.job_id);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for c in claimers {
        all.extend(c.await.unwrap());
    }
    let unique: HashSet<JobId> = all.iter().cloned().collect();
    assert_eq!(all.len(), 40, "every job claimed once");
    assert_eq!(unique, submitted);
}

async fn cancel_queued_running_and_finished(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let scope = Scope::Client(a.clone());
    let queued = submit(&store, &a, "q.csv").await;
    assert_eq!(
        store.cancel_job(&scope, &queued).await.unwrap(),
        Some(CancelOutcome::Canceled)
    );
    let job = store.get_job(&scope, &queued).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Canceled);
    assert!(job.finished_at.is_some());
    assert!(claim(&store, "w", 10_000, 10).await.is_none(), "never runs");

    let running = submit(&store, &a, "r.csv").await;
    let c = claim(&store, "w", 10_000, 10).await.unwrap();
    assert_eq!(
        store.cancel_job(&scope, &running).await.unwrap(),
        Some(CancelOutcome::Requested)
    );
    assert_eq!(state_of(&store, &running).await, JobState::Running);
    assert_eq!(
        store
            .heartbeat_job(&c.lease, &JobProgress::default(), Duration::from_secs(10))
            .await
            .unwrap(),
        LeaseStatus::CancelRequested
    );
    assert!(store.cancel_run(&c.lease).await.unwrap());
    assert_eq!(state_of(&store, &running).await, JobState::Canceled);
    assert_eq!(
        store.cancel_job(&scope, &running).await.unwrap(),
        Some(CancelOutcome::AlreadyFinished(JobState::Canceled))
    );

    // A run that completes after the cancel was asked for ends canceled, without a result.
    let late = submit(&store, &a, "l.csv").await;
    let c = claim(&store, "w", 10_000, 10).await.unwrap();
    store.cancel_job(&scope, &late).await.unwrap();
    assert_eq!(
        store
            .complete_job(&c.lease, &result(1, "1"), &finished(1))
            .await
            .unwrap(),
        Some(JobState::Canceled)
    );
    assert!(
        store
            .get_job(&scope, &late)
            .await
            .unwrap()
            .unwrap()
            .result
            .is_none()
    );

    let done = submit(&store, &a, "d.csv").await;
    let c = claim(&store, "w", 10_000, 10).await.unwrap();
    store
        .complete_job(&c.lease, &result(1, "1"), &finished(1))
        .await
        .unwrap();
    assert_eq!(
        store.cancel_job(&scope, &done).await.unwrap(),
        Some(CancelOutcome::AlreadyFinished(JobState::Succeeded))
    );
    let missing = JobId::generate();
    assert_eq!(store.cancel_job(&scope, &missing).await.unwrap(), None);
}

async fn expired_lease_of_a_canceled_job_settles_as_canceled(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let id = submit(&store, &a, "x.csv").await;
    claim(&store, "dead", 200, 10).await.unwrap();
    store
        .cancel_job(&Scope::Client(a.clone()), &id)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        claim(&store, "w2", 10_000, 10).await.is_none(),
        "not taken over"
    );
    assert_eq!(state_of(&store, &id).await, JobState::Canceled);
}

async fn transient_failures_retry_with_backoff_then_fail(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let id = submit(&store, &a, "x.csv").await;
    let failure = JobFailure {
        code: "download_failed".into(),
        message: "connection reset at byte 42".into(),
    };
    for attempt in 1..=3u32 {
        // Claimable again once the backoff is over.
        let c = claim_within(&store, "w", 10_000, Duration::from_secs(5)).await;
        assert_eq!(c.lease.attempt, attempt);
        // Far enough ahead that the claim below comes before it even on a loaded CI box.
        let retry_at = now_ms() + 2_000;
        let state = store
            .fail_job(&c.lease, &failure, Some(retry_at))
            .await
            .unwrap();
        let job = store.get_job(&Scope::All, &id).await.unwrap().unwrap();
        assert_eq!(job.error.as_ref(), Some(&failure));
        if attempt < 3 {
            assert_eq!(state, Some(JobState::Queued));
            assert!(job.finished_at.is_none());
            // Not before its retry time.
            assert!(claim(&store, "w", 10_000, 10).await.is_none());
        } else {
            assert_eq!(state, Some(JobState::Failed), "attempts used up");
            assert!(job.finished_at.is_some());
        }
    }
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert!(claim(&store, "w", 10_000, 10).await.is_none());

    // A final error fails at once.
    let id = submit(&store, &a, "y.csv").await;
    let c = claim(&store, "w", 10_000, 10).await.unwrap();
    let bad = JobFailure {
        code: "csv_invalid_number".into(),
        message: "row 7, column 10: \"abc\" is not a number".into(),
    };
    assert_eq!(
        store.fail_job(&c.lease, &bad, None).await.unwrap(),
        Some(JobState::Failed)
    );
    let job = store.get_job(&Scope::All, &id).await.unwrap().unwrap();
    assert_eq!(job.error, Some(bad));
}

async fn lost_workers_use_up_the_attempts(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let id = submit(&store, &a, "x.csv").await;
    for attempt in 1..=3 {
        let c = claim_within(
            &store,
            &format!("dies-{attempt}"),
            150,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(c.lease.attempt, attempt);
    }
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(claim(&store, "w", 10_000, 10).await.is_none());
    let job = store.get_job(&Scope::All, &id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.error.unwrap().code, "worker_lost");
}

async fn release_requeues_without_counting_the_attempt(store: Arc<dyn Store>) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let id = submit(&store, &a, "x.csv").await;
    let c = claim(&store, "stopping", 10_000, 10).await.unwrap();
    assert!(store.release_job(&c.lease).await.unwrap());
    let job = store.get_job(&Scope::All, &id).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempts, job.max_attempts),
        (JobState::Queued, 1, 4),
        "attempts stay monotonic (they fence leases); one more is allowed instead"
    );
    let again = claim(&store, "w2", 10_000, 10).await.unwrap();
    assert_eq!((again.lease.job_id, again.lease.attempt), (id, 2));
    assert!(!store.release_job(&c.lease).await.unwrap());
}

/// Regression: claims were ordered by (created_at, random id), so jobs submitted within one
/// millisecond ran in random order (and `per_client_limit_is_respected` failed now and then).
async fn jobs_submitted_in_the_same_millisecond_are_claimed_in_submission_order(
    store: Arc<dyn Store>,
) {
    let a = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let mut submitted = Vec::new();
    for i in 0..30 {
        submitted.push(submit(&store, &a, &format!("{i}.csv")).await);
    }
    let mut claimed = Vec::new();
    while let Some(c) = claim(&store, "w", 10_000, 100).await {
        claimed.push(c.lease.job_id);
    }
    assert_eq!(claimed, submitted);
}
