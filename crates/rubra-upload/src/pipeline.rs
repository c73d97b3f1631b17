//! The run itself: walk, check the server, then workers that read, hash, ask
//! `HEAD`, and post — one file or one batch at a time each.

use crate::body::{Body, Source, boundary};
use crate::http::{Answer, Api};
use crate::progress::Progress;
use crate::report::{Failure, FileResult, Outcome, Report};
use crate::walk::{Candidate, WalkOptions, unreadable, walk};
use crate::{Options, UploadError};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::AsyncReadExt;

/// Files up to this size are read once into memory, hashed and sent from
/// there; larger ones are hashed in a streaming pass and streamed again into
/// the request, so a worker never holds more than this (times the batch).
pub const MEMORY_LIMIT: u64 = 8 * 1024 * 1024;

/// An all-zero id: `HEAD` on it checks reachability and the key at once.
const PROBE_ID: &str = "0000000000000000000000000000000000000000000000000000000000000000";

struct Ctx {
    api: Api,
    opts: Options,
    queue: Mutex<VecDeque<Candidate>>,
    progress: Arc<Progress>,
    abort: Mutex<Option<String>>,
}

/// What one worker learned about one file.
struct Done {
    file: FileResult,
    failure: Option<Failure>,
    posted: bool,
}

pub(crate) async fn run(dir: &Path, opts: &Options) -> Result<Report, UploadError> {
    let start = Instant::now();
    if opts.concurrency == 0 || opts.batch == 0 {
        return Err(UploadError::Usage(
            "concurrency and batch must be at least 1".into(),
        ));
    }
    if !opts.server.starts_with("http://") {
        return Err(UploadError::Usage(format!(
            "--server must be an http:// URL (plain HTTP only), got {:?}",
            opts.server
        )));
    }
    let walk_opts = WalkOptions {
        recursive: opts.recursive,
        include: opts.include.clone(),
        exclude: opts.exclude.clone(),
        max_size: opts.max_size,
    };
    let root = dir.to_path_buf();
    let found = tokio::task::spawn_blocking(move || walk(&root, &walk_opts))
        .await
        .map_err(|e| UploadError::Usage(format!("walk panicked: {e}")))?
        .map_err(|source| UploadError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;

    let api = Api::new(
        &opts.server,
        &opts.key,
        opts.concurrency,
        opts.timeout,
        opts.retries,
        opts.backoff_base,
    )
    .map_err(|e| UploadError::Usage(format!("HTTP client: {e}")))?;
    match api.head_image(PROBE_ID).await {
        Ok(a) if a.status == 401 || a.status == 403 => {
            return Err(UploadError::BadKey {
                status: a.status,
                message: a.error().1,
            });
        }
        Ok(a) if a.status == 200 || a.status == 404 => {}
        Ok(a) => {
            let (code, message) = a.error();
            return Err(UploadError::Unreachable {
                server: opts.server.clone(),
                reason: format!("HEAD /images answered {}: {code}: {message}", a.status),
            });
        }
        Err(reason) => {
            return Err(UploadError::Unreachable {
                server: opts.server.clone(),
                reason,
            });
        }
    }

    let mut report = Report {
        dry_run: opts.dry_run,
        ..Report::default()
    };
    for (_, reason) in &found.skipped {
        report.skip(*reason);
    }
    report.failed.extend(found.failed);
    let total_bytes = found.images.iter().map(|c| c.size).sum();
    let progress = Progress::start(opts.progress, found.images.len() as u64, total_bytes);
    let ctx = Arc::new(Ctx {
        api,
        opts: opts.clone(),
        queue: Mutex::new(found.images.into()),
        progress: Arc::clone(&progress),
        abort: Mutex::new(None),
    });
    let workers: Vec<_> = (0..opts.concurrency)
        .map(|_| tokio::spawn(worker(Arc::clone(&ctx))))
        .collect();
    for w in workers {
        let done = w
            .await
            .map_err(|e| UploadError::Usage(format!("worker panicked: {e}")))?;
        for d in done {
            match d.file.outcome {
                Outcome::Uploaded => report.uploaded += 1,
                Outcome::AlreadyThere => report.already_there += 1,
                Outcome::WouldUpload => report.would_upload += 1,
                Outcome::Failed => {}
            }
            if d.posted {
                report.uploaded_bytes += d.file.bytes;
            }
            report.failed.extend(d.failure);
            report.files.push(d.file);
        }
    }
    progress.finish();
    report.files.sort_by(|a, b| a.path.cmp(&b.path));
    report.failed.sort_by(|a, b| a.path.cmp(&b.path));
    report.retries = ctx.api.retried.load(Ordering::Relaxed);
    report.sent_bytes = ctx.api.sent.load(Ordering::Relaxed);
    report.aborted = lock(&ctx.abort).clone();
    report.elapsed_ms = start.elapsed().as_millis() as u64;
    Ok(report)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn worker(ctx: Arc<Ctx>) -> Vec<Done> {
    let mut out = Vec::new();
    loop {
        if lock(&ctx.abort).is_some() {
            break;
        }
        let batch: Vec<Candidate> = {
            let mut q = lock(&ctx.queue);
            let n = ctx.opts.batch.min(q.len());
            q.drain(..n).collect()
        };
        if batch.is_empty() {
            break;
        }
        let done = if batch.len() == 1 {
            let c = batch.into_iter().next().expect("one");
            vec![one(&ctx, c).await]
        } else {
            many(&ctx, batch).await
        };
        for d in &done {
            ctx.progress.file_done(d.file.bytes, d.failure.as_ref());
        }
        out.extend(done);
    }
    out
}

/// A file read and hashed, ready to post.
struct Ready {
    c: Candidate,
    id: String,
    src: Source,
}

enum Checked {
    Ready(Ready),
    Finished(Done),
}

/// Reads and hashes `c`, and asks the server whether it has it.
async fn check(ctx: &Ctx, c: Candidate) -> Checked {
    let (id, src) = match read_and_hash(&c).await {
        Ok(x) => x,
        Err(e) => return Checked::Finished(failed(&c, None, unreadable(c.rel.clone(), &e))),
    };
    if ctx.opts.skip_existing {
        match ctx.api.head_image(&id).await {
            Ok(a) if a.status == 200 => {
                return Checked::Finished(finished(&c, &id, Outcome::AlreadyThere, false));
            }
            Ok(a) if a.status == 404 => {}
            Ok(a) => return Checked::Finished(refused(ctx, &c, Some(&id), &a)),
            Err(e) => return Checked::Finished(failed(&c, Some(&id), network(&c, e))),
        }
    }
    if ctx.opts.dry_run {
        return Checked::Finished(finished(&c, &id, Outcome::WouldUpload, false));
    }
    Checked::Ready(Ready { c, id, src })
}

async fn one(ctx: &Ctx, c: Candidate) -> Done {
    match check(ctx, c).await {
        Checked::Finished(d) => d,
        Checked::Ready(r) => post_one(ctx, r).await,
    }
}

async fn post_one(ctx: &Ctx, r: Ready) -> Done {
    let body = Body::raw(r.src.clone());
    match ctx.api.post_images(&body, r.c.kind.content_type()).await {
        Ok(a) if a.status == 200 || a.status == 201 => match parse_ids(&a.body, false).as_deref() {
            Some([got]) => accepted(&r, got, a.status),
            _ => failed(&r.c, Some(&r.id), bad_answer(&r.c, &a)),
        },
        Ok(a) => refused(ctx, &r.c, Some(&r.id), &a),
        Err(e) => failed(&r.c, Some(&r.id), network(&r.c, e)),
    }
}

async fn many(ctx: &Ctx, batch: Vec<Candidate>) -> Vec<Done> {
    let mut out = Vec::new();
    let mut ready = Vec::new();
    for c in batch {
        match check(ctx, c).await {
            Checked::Finished(d) => out.push(d),
            Checked::Ready(r) => ready.push(r),
        }
    }
    match ready.len() {
        0 => return out,
        1 => {
            let r = ready.pop().expect("one");
            out.push(post_one(ctx, r).await);
            return out;
        }
        _ => {}
    }
    let b = boundary();
    let names: Vec<&str> = ready
        .iter()
        .map(|r| r.c.rel.rsplit('/').next().unwrap_or(&r.c.rel))
        .collect();
    let parts: Vec<(&str, &str, Source)> = ready
        .iter()
        .zip(&names)
        .map(|(r, n)| (*n, r.c.kind.content_type(), r.src.clone()))
        .collect();
    let body = Body::multipart(&b, &parts);
    let ctype = format!("multipart/form-data; boundary={b}");
    match ctx.api.post_images(&body, &ctype).await {
        Ok(a) if a.status == 200 || a.status == 201 => match parse_ids(&a.body, true) {
            Some(ids) if ids.len() == ready.len() => {
                // The array does not say which entries were new when the
                // status is 201; count them all as uploaded then.
                out.extend(
                    ready
                        .iter()
                        .zip(&ids)
                        .map(|(r, got)| accepted(r, got, a.status)),
                );
            }
            _ => out.extend(
                ready
                    .iter()
                    .map(|r| failed(&r.c, Some(&r.id), bad_answer(&r.c, &a))),
            ),
        },
        Ok(a) if a.status == 401 || a.status == 403 => {
            out.extend(ready.iter().map(|r| refused(ctx, &r.c, Some(&r.id), &a)));
        }
        // One bad file fails the whole form: send each alone to find it, so the
        // good ones still arrive and the report names the bad one.
        Ok(a) if a.status < 500 && a.status != 429 => {
            for r in ready {
                out.push(post_one(ctx, r).await);
            }
        }
        Ok(a) => out.extend(ready.iter().map(|r| refused(ctx, &r.c, Some(&r.id), &a))),
        Err(e) => out.extend(
            ready
                .iter()
                .map(|r| failed(&r.c, Some(&r.id), network(&r.c, e.clone()))),
        ),
    }
    out
}

/// Reads `c` whole when small (one allocation, hashed and sent from memory),
/// or hashes it in a streaming pass when large.
async fn read_and_hash(c: &Candidate) -> std::io::Result<(String, Source)> {
    if c.size <= MEMORY_LIMIT {
        let bytes = Bytes::from(tokio::fs::read(&c.path).await?);
        let id = hex(&Sha256::digest(&bytes));
        return Ok((id, Source::Memory(bytes)));
    }
    let mut f = tokio::fs::File::open(&c.path).await?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(&hasher.finalize()), Source::File(c.path.clone(), len)))
}

fn hex(digest: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(digest.len() * 2);
    for b in digest {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// The `id`s in a `POST /images` answer: one object, or an array of them.
fn parse_ids(body: &[u8], array: bool) -> Option<Vec<String>> {
    #[derive(serde::Deserialize)]
    struct Info {
        id: String,
    }
    if array {
        serde_json::from_slice::<Vec<Info>>(body)
            .ok()
            .map(|v| v.into_iter().map(|i| i.id).collect())
    } else {
        serde_json::from_slice::<Info>(body)
            .ok()
            .map(|i| vec![i.id])
    }
}

fn accepted(r: &Ready, got: &str, status: u16) -> Done {
    if got != r.id {
        let f = Failure {
            path: r.c.rel.clone(),
            status: Some(status),
            code: "changed_while_uploading".into(),
            message: format!("hashed as {} but the server stored {got}", r.id),
        };
        return failed(&r.c, Some(&r.id), f);
    }
    let outcome = if status == 201 {
        Outcome::Uploaded
    } else {
        Outcome::AlreadyThere
    };
    finished(&r.c, &r.id, outcome, true)
}

fn finished(c: &Candidate, id: &str, outcome: Outcome, posted: bool) -> Done {
    Done {
        file: FileResult {
            path: c.rel.clone(),
            id: Some(id.to_owned()),
            bytes: c.size,
            outcome,
        },
        failure: None,
        posted,
    }
}

fn failed(c: &Candidate, id: Option<&str>, failure: Failure) -> Done {
    Done {
        file: FileResult {
            path: c.rel.clone(),
            id: id.map(str::to_owned),
            bytes: c.size,
            outcome: Outcome::Failed,
        },
        failure: Some(failure),
        posted: false,
    }
}

/// A final non-success answer; a rejected key stops the whole run.
fn refused(ctx: &Ctx, c: &Candidate, id: Option<&str>, a: &Answer) -> Done {
    let (code, message) = a.error();
    if a.status == 401 || a.status == 403 {
        lock(&ctx.abort).get_or_insert_with(|| {
            format!("the server rejected the API key ({}): {message}", a.status)
        });
    }
    failed(
        c,
        id,
        Failure {
            path: c.rel.clone(),
            status: Some(a.status),
            code,
            message,
        },
    )
}

fn network(c: &Candidate, reason: String) -> Failure {
    Failure {
        path: c.rel.clone(),
        status: None,
        code: "network".into(),
        message: reason,
    }
}

fn bad_answer(c: &Candidate, a: &Answer) -> Failure {
    Failure {
        path: c.rel.clone(),
        status: Some(a.status),
        code: "bad_answer".into(),
        message: "the server's answer has no image id".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_sha256() {
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn ids_from_object_or_array() {
        assert_eq!(
            parse_ids(br#"{"id":"ab","red":0.1}"#, false),
            Some(vec!["ab".to_owned()])
        );
        assert_eq!(
            parse_ids(br#"[{"id":"a"},{"id":"b"}]"#, true),
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(parse_ids(b"oops", false), None);
    }
}
