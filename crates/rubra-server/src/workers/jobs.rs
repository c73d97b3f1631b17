//! The CSV job worker: claims jobs from the store's queue, runs them with `rubra_jobs`,
//! heartbeats the lease (storing progress, learning of cancels), and writes the outcome.
//!
//! One claim loop per process fills up to `job-workers` slots. It polls the queue, and is
//! also woken at once when this process accepts a job ([`JobRuns::wake`]), so the embedded default
//! starts a job without waiting for a poll. A job canceled through this process stops at
//! once ([`JobRuns::cancel_local`]); through another process, at this worker's next heartbeat (≤ 1 s).
//! A lost lease (the job was taken over after this process stalled) stops the run and
//! writes nothing. On shutdown, running jobs are stopped and given back to the queue.

use crate::services::Services;
use crate::wake::JobRuns;
use rubra_jobs::{JobError, JobSource, RunControl, RunEnv, S3Config, SourcePolicy, SumOptions};
use rubra_store::{
    ClaimRequest, ClaimedJob, JobColumn, JobFailure, JobProgress, JobResult, LeaseStatus, Store,
    now_ms,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

/// How long a lease lasts without a heartbeat: a dead worker's job moves on after this.
pub const LEASE: Duration = Duration::from_secs(10);
/// How often a running job's lease is extended (and its progress and cancel flag exchanged).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often an idle worker looks for work (plus up to half again of jitter).
pub const POLL: Duration = Duration::from_millis(500);

/// What jobs may read, as the operator configured it.
pub(crate) fn source_policy(settings: &crate::settings::Settings) -> SourcePolicy {
    SourcePolicy {
        local_root: settings.jobs_local_root.clone(),
        s3_allow: settings.jobs_s3_allow.clone(),
    }
}

struct Ctx {
    store: Arc<dyn Store>,
    env: RunEnv,
    owner: String,
    runs: JobRuns,
    shutdown: CancellationToken,
}

/// Starts the claim loop, unless `job-workers` is 0.
pub(crate) fn spawn(services: &Services, shutdown: &CancellationToken) -> Option<JoinHandle<()>> {
    let slots = services.settings.job_workers as usize;
    if slots == 0 {
        return None;
    }
    let endpoint = services.settings.s3_endpoint.clone();
    let allow_http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"))
        || std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v == "true" || v == "1");
    let mut env = RunEnv::new(S3Config {
        endpoint,
        allow_http,
        region: None,
    });
    // A memory-mapped file truncated underneath would kill the whole server with SIGBUS.
    env.local_mmap = false;
    // What jobs may read, as configured now: a job queued under a wider policy is refused.
    env.sources = source_policy(&services.settings);
    let ctx = Arc::new(Ctx {
        store: services.store.clone(),
        env,
        owner: services.instance_id.to_string(),
        runs: services.wakeups.jobs.clone(),
        shutdown: shutdown.clone(),
    });
    let limit = services.settings.jobs_per_client;
    Some(tokio::spawn(claim_loop(ctx, slots, limit)))
}

#[tracing::instrument(name = "worker.jobs", skip_all, fields(slots, owner = %ctx.owner))]
async fn claim_loop(ctx: Arc<Ctx>, slots: usize, per_client_limit: u32) {
    let free = Arc::new(Semaphore::new(slots));
    let mut running = JoinSet::new();
    let req = ClaimRequest {
        owner: ctx.owner.clone(),
        lease: LEASE,
        per_client_limit,
    };
    loop {
        while running.try_join_next().is_some() {}
        let permit = tokio::select! {
            p = free.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = ctx.shutdown.cancelled() => break,
        };
        // Registered before the claim, so a job queued while it runs still wakes us.
        let rung = ctx.runs.notified();
        tokio::pin!(rung);
        rung.as_mut().enable();
        match ctx.store.claim_job(&req).await {
            Ok(Some(job)) => {
                let ctx = ctx.clone();
                running.spawn(async move {
                    run_job(&ctx, job).await;
                    drop(permit);
                    // A slot (and maybe the client's limit) is free again.
                    ctx.runs.wake();
                });
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "claiming a job failed; retrying"),
        }
        drop(permit);
        let jitter = POLL.mul_f64(fastrand::f64() / 2.0);
        tokio::select! {
            () = &mut rung => {}
            () = tokio::time::sleep(POLL + jitter) => {}
            () = ctx.shutdown.cancelled() => break,
        }
    }
    // Running jobs see the shutdown themselves, stop, and give their jobs back.
    while running.join_next().await.is_some() {}
}

fn options(job: &ClaimedJob) -> SumOptions {
    SumOptions {
        step: job.spec.step as usize,
        delimiter: job.spec.delimiter,
        header: job.spec.header,
        skip_invalid: job.spec.skip_invalid,
    }
}

fn to_result(s: &rubra_jobs::Summary) -> JobResult {
    JobResult {
        rows: s.rows,
        columns: s
            .columns
            .iter()
            .map(|c| JobColumn {
                index: c.index as u64,
                name: c.name.clone(),
                sum: c.sum.clone(),
                skipped: c.skipped,
            })
            .collect(),
    }
}

/// Delay before the next attempt after a transient failure: 2 s, 4 s, 8 s, … up to a
/// minute, with jitter.
fn backoff(attempt: u32) -> Duration {
    let full = Duration::from_secs(2)
        .saturating_mul(1 << attempt.saturating_sub(1).min(5))
        .min(Duration::from_secs(60));
    full / 2 + (full / 2).mul_f64(fastrand::f64())
}

/// Why a run stopped before it finished.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    None,
    Canceled,
    Shutdown,
    LeaseLost,
}

#[tracing::instrument(
    name = "worker.jobs.run", skip_all,
    fields(job = %job.lease.job_id, attempt = job.lease.attempt, client = %job.client_id)
)]
async fn run_job(ctx: &Ctx, job: ClaimedJob) {
    let lease = &job.lease;
    let source = match JobSource::parse(&job.spec.source, &ctx.env.sources) {
        Ok(s) => s,
        Err(e) => {
            let failure = JobFailure {
                code: e.code().to_owned(),
                message: e.to_string(),
            };
            if let Err(e) = ctx.store.fail_job(lease, &failure, None).await {
                tracing::warn!(error = %e, "recording the failure failed");
            }
            return;
        }
    };
    let control = RunControl::new();
    ctx.runs.started(&lease.job_id, control.clone());
    let started = Instant::now();
    let opts = options(&job);
    let run = rubra_jobs::run(&source, &opts, &ctx.env, &control);
    tokio::pin!(run);
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut held_until = Instant::now() + LEASE;
    let mut stop = Stop::None;
    let snapshot = |control: &RunControl| {
        let snap = control.progress.snapshot();
        JobProgress {
            bytes_done: snap.bytes_done,
            bytes_total: snap.bytes_total,
            rows: snap.rows,
        }
    };
    let outcome = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = beat.tick() => {
                let progress = snapshot(&control);
                match ctx.store.heartbeat_job(lease, &progress, LEASE).await {
                    Ok(LeaseStatus::Held) => held_until = Instant::now() + LEASE,
                    Ok(LeaseStatus::CancelRequested) => {
                        held_until = Instant::now() + LEASE;
                        if stop == Stop::None {
                            tracing::info!("cancel requested; stopping");
                            stop = Stop::Canceled;
                        }
                        control.cancel();
                    }
                    Ok(LeaseStatus::Lost) => {
                        tracing::warn!("lease lost (taken over); stopping without writing");
                        stop = Stop::LeaseLost;
                        control.cancel();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "heartbeat failed");
                        if Instant::now() >= held_until {
                            tracing::warn!("lease expired without a heartbeat; stopping");
                            stop = Stop::LeaseLost;
                            control.cancel();
                        }
                    }
                }
            }
            () = ctx.shutdown.cancelled(), if stop == Stop::None => {
                stop = Stop::Shutdown;
                control.cancel();
            }
        }
    };
    ctx.runs.finished(&lease.job_id);
    let store = &ctx.store;
    let written = match (&outcome, stop) {
        (_, Stop::LeaseLost) => return,
        (Ok(summary), _) => {
            tracing::info!(
                rows = summary.rows,
                secs = started.elapsed().as_secs_f64(),
                "job finished"
            );
            let mut progress = snapshot(&control);
            progress.rows = summary.rows;
            if let Some(total) = progress.bytes_total {
                progress.bytes_done = total;
            }
            store
                .complete_job(lease, &to_result(summary), &progress)
                .await
                .map(|s| s.is_some())
        }
        (Err(JobError::Canceled), Stop::Shutdown) => store.release_job(lease).await,
        // Canceled here, through `cancel_local`, or seen on a heartbeat.
        (Err(JobError::Canceled), _) => store.cancel_run(lease).await,
        (Err(e), _) => {
            let failure = JobFailure {
                code: e.code().to_owned(),
                message: e.to_string(),
            };
            let retry_at = e.is_transient().then(|| {
                now_ms().saturating_add(
                    i64::try_from(backoff(lease.attempt).as_millis()).unwrap_or(i64::MAX),
                )
            });
            tracing::warn!(code = e.code(), error = %e, transient = e.is_transient(), "job failed");
            store
                .fail_job(lease, &failure, retry_at)
                .await
                .map(|s| s.is_some())
        }
    };
    match written {
        Ok(true) => {}
        Ok(false) => tracing::warn!("lease lost before the outcome was written; discarded"),
        // The lease then expires and another worker runs the job again.
        Err(e) => tracing::warn!(error = %e, "writing the outcome failed"),
    }
}
