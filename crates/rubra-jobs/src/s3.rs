//! Summing an S3 object while it downloads, resuming broken downloads.
//!
//! The calling task downloads; a blocking thread parses (through
//! [`rubra_csvsum::sum_chunks`], on all cores) the chunks it receives over a
//! bounded channel, so download and parsing overlap and memory stays bounded.
//! A broken body is resumed from the last byte received with a range request
//! carrying `If-Match: <first ETag>`; if the object changed, the parser is
//! told to start over and the download restarts from byte 0.

use std::cell::Cell;
use std::io;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use rubra_csvsum::{Control, SumOptions, Summary, sum_chunks};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

use crate::{JobError, RunControl, RunEnv};

/// Body chunks buffered between the download and the parser. hyper hands out
/// chunks of up to about 400 KiB from a fast server, so this bounds the buffer
/// to a few MiB. (It was 128: up to ~50 MiB of buffered body whenever the
/// download outran the parser, which made the job's peak memory depend on
/// timing; measured 51 and 80 MiB peak RSS of `run_job` on the 0.8 and 1.6 GB
/// files.) The parser keeps the chunks it has taken in its batches anyway.
const CHANNEL: usize = 16;
/// How often a waiting download looks at the cancel flag and the stall clock.
const TICK: Duration = Duration::from_millis(50);
/// Marks the I/O error the parser's chunk iterator returns when the download
/// stopped without delivering the whole object.
const DOWNLOAD_STOPPED: &str = "download stopped";

enum Msg {
    Data(Bytes),
    /// The object changed: everything sent so far is void.
    Restart,
    /// The whole object was sent.
    End,
}

/// How one request ended when it did not deliver the rest of the object.
enum Failure {
    /// Worth another attempt; the text says what happened and where.
    Retry(String),
    /// The object is not the one we started with.
    Changed(String),
    /// No retry can help.
    Fatal(JobError),
    Canceled,
    /// The parser stopped (an error in the CSV, or cancel): nothing to do.
    ParserGone,
}

pub(crate) async fn run(
    bucket: &str,
    key: &str,
    options: &SumOptions,
    env: &RunEnv,
    control: &RunControl,
) -> Result<Summary, JobError> {
    options.validate()?;
    let store = env.s3_store(bucket)?;
    let location = ObjectPath::from(key);
    let (tx, rx) = mpsc::channel(CHANNEL);
    let parser = {
        let options = options.clone();
        let control = control.clone();
        let threads = env.threads;
        tokio::task::spawn_blocking(move || parse(rx, &options, &control, threads))
    };
    let download = Download {
        store: store.as_ref(),
        location: &location,
        bucket,
        key,
        env,
        control,
        tx,
    }
    .run()
    .await;
    let parsed = parser
        .await
        .map_err(|e| JobError::Internal(format!("parser task: {e}")))?;
    if control.is_canceled() {
        return Err(JobError::Canceled);
    }
    match (download, parsed) {
        (Err(e), _) => Err(e),
        (Ok(()), Ok(summary)) => Ok(summary),
        (Ok(()), Err(e)) => Err(e.into()),
    }
}

/// The parser thread: sums the chunks as they arrive, starting over with
/// fresh counters when told the object changed.
fn parse(
    mut rx: mpsc::Receiver<Msg>,
    options: &SumOptions,
    control: &RunControl,
    threads: usize,
) -> Result<Summary, rubra_csvsum::CsvSumError> {
    loop {
        let counters = control.progress.restart();
        let restarted = Cell::new(false);
        let chunks = std::iter::from_fn(|| match rx.blocking_recv() {
            Some(Msg::Data(b)) => Some(Ok(b)),
            Some(Msg::End) => None,
            Some(Msg::Restart) => {
                restarted.set(true);
                Some(Err(io::Error::other("the object changed")))
            }
            None => Some(Err(io::Error::other(DOWNLOAD_STOPPED))),
        });
        let control = Control {
            cancel: Some(control.cancel.as_ref()),
            progress: Some(&counters),
            threads,
            min_region: 0,
        };
        let result = sum_chunks(chunks, options, &control);
        if !restarted.get() {
            return result;
        }
    }
}

struct Download<'a> {
    store: &'a dyn ObjectStore,
    location: &'a ObjectPath,
    bucket: &'a str,
    key: &'a str,
    env: &'a RunEnv,
    control: &'a RunControl,
    tx: mpsc::Sender<Msg>,
}

/// Where the download stands between attempts.
#[derive(Default)]
struct State {
    /// Bytes of the current version of the object handed to the parser.
    offset: u64,
    /// ETag of the version being read (from its first response).
    etag: Option<String>,
    /// Size of that version.
    size: u64,
}

impl Download<'_> {
    async fn run(self) -> Result<(), JobError> {
        let mut state = State::default();
        let mut attempts = 0u32;
        loop {
            if self.control.is_canceled() {
                return Err(JobError::Canceled);
            }
            attempts += 1;
            let cause = match self.attempt(&mut state).await {
                Ok(()) => {
                    // The parser may already be gone (a CSV error): fine.
                    let _ = self.tx.send(Msg::End).await;
                    return Ok(());
                }
                Err(Failure::ParserGone) => return Ok(()),
                Err(Failure::Canceled) => return Err(JobError::Canceled),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(cause)) => cause,
                Err(Failure::Changed(cause)) => {
                    let sent_any = state.offset > 0;
                    state = State::default();
                    if sent_any && self.tx.send(Msg::Restart).await.is_err() {
                        return Ok(());
                    }
                    cause
                }
            };
            if attempts >= self.env.retry.max_attempts {
                return Err(JobError::DownloadFailed {
                    bucket: self.bucket.to_owned(),
                    key: self.key.to_owned(),
                    attempts,
                    cause,
                });
            }
            let wait = sleep(self.env.retry.delay(attempts));
            if self.or_cancel(wait).await.is_none() {
                return Err(JobError::Canceled);
            }
        }
    }

    /// Runs `fut`, giving up (`None`) if the job is canceled meanwhile.
    async fn or_cancel<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::pin!(fut);
        loop {
            tokio::select! {
                out = &mut fut => return Some(out),
                () = sleep(TICK) => if self.control.is_canceled() { return None },
            }
        }
    }

    /// One GET: the whole object, or the rest of it from `state.offset`.
    async fn attempt(&self, state: &mut State) -> Result<(), Failure> {
        let at = state.offset;
        let mut get = GetOptions::default();
        if at > 0 {
            get.range = Some(GetRange::Offset(at));
            get.if_match = state.etag.clone();
        }
        let request = timeout(
            self.env.request_timeout,
            self.store.get_opts(self.location, get),
        );
        let response = match self.or_cancel(request).await {
            None => return Err(Failure::Canceled),
            Some(Err(_)) => {
                return Err(Failure::Retry(format!(
                    "no response within {:?} at byte {at}",
                    self.env.request_timeout
                )));
            }
            Some(Ok(Err(e))) => return Err(self.classify(e, at)),
            Some(Ok(Ok(r))) => r,
        };
        if at == 0 {
            state.etag = response.meta.e_tag.clone();
            state.size = response.meta.size;
            self.control.progress.set_total(state.size);
        } else {
            if response.meta.e_tag != state.etag {
                return Err(Failure::Changed(format!(
                    "the object changed at byte {at} (ETag {:?} → {:?})",
                    state.etag, response.meta.e_tag
                )));
            }
            if response.range.start != at {
                return Err(Failure::Retry(format!(
                    "asked for bytes from {at}, got {}..",
                    response.range.start
                )));
            }
        }
        let mut body = response.into_stream();
        let tick = sleep(TICK);
        tokio::pin!(tick);
        let mut last_data = Instant::now();
        loop {
            if self.control.is_canceled() {
                return Err(Failure::Canceled);
            }
            tokio::select! {
                biased;
                item = body.next() => match item {
                    Some(Ok(bytes)) => {
                        let n = bytes.len() as u64;
                        if self.tx.send(Msg::Data(bytes)).await.is_err() {
                            return Err(Failure::ParserGone);
                        }
                        state.offset += n;
                        last_data = Instant::now();
                    }
                    Some(Err(e)) => {
                        return Err(Failure::Retry(format!(
                            "{} at byte {}", chain(&e), state.offset
                        )));
                    }
                    None if state.offset >= state.size => return Ok(()),
                    None => {
                        return Err(Failure::Retry(format!(
                            "the body ended early at byte {} of {}", state.offset, state.size
                        )));
                    }
                },
                () = &mut tick => {
                    tick.as_mut().reset(Instant::now() + TICK);
                    if last_data.elapsed() >= self.env.stall_timeout {
                        return Err(Failure::Retry(format!(
                            "stalled: no data for {:?} at byte {}",
                            self.env.stall_timeout, state.offset
                        )));
                    }
                }
            }
        }
    }

    fn classify(&self, e: object_store::Error, at: u64) -> Failure {
        use object_store::Error as E;
        match e {
            E::Precondition { .. } => {
                Failure::Changed(format!("the object changed at byte {at} (If-Match failed)"))
            }
            E::NotFound { .. } if at == 0 => Failure::Fatal(JobError::ObjectNotFound {
                bucket: self.bucket.to_owned(),
                key: self.key.to_owned(),
            }),
            // Deleted while we read it: it changed.
            E::NotFound { .. } => Failure::Changed(format!("the object disappeared at byte {at}")),
            E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
                Failure::Fatal(JobError::AccessDenied {
                    bucket: self.bucket.to_owned(),
                    key: self.key.to_owned(),
                    message: chain(&e),
                })
            }
            e => Failure::Retry(format!("{} at byte {at}", chain(&e))),
        }
    }
}

/// An error and its sources, joined with `: ` (without repeating a source
/// already quoted in its parent's message).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}
