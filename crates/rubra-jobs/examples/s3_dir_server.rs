//! A read-only S3 server over a directory, in Rust, for the benchmarks only.
//!
//! moto (the test S3 server) is single-threaded Python and needs 2-3 s to serve the
//! 827 MB reference object on the benchmark machine, so it cannot show whether a job
//! from S3 meets its 1 s target. This server answers the requests a job makes
//! (`GET` and `HEAD` of `/{bucket}/{key}`, path style) from `ROOT/{bucket}/{key}` with
//! what `object_store` reads: `Content-Length`, `Last-Modified`, an `ETag` (file size
//! and modification time), `Range: bytes=a-[b]` (206 with `Content-Range`) and
//! `If-Match` (412). It does not check signatures and serves no writes: put objects
//! into it by linking files under `ROOT`. Not a test double for correctness (the tests
//! use moto): it only removes the server as the bottleneck of the benchmark.
//!
//! ```text
//! s3_dir_server ROOT [ADDR]      # ADDR defaults to 127.0.0.1:5079
//! ```

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

/// Bytes read from the file per body chunk.
const CHUNK: usize = 1 << 20;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let root: PathBuf = args
        .next()
        .ok_or("usage: s3_dir_server ROOT [ADDR]")?
        .into();
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:5079".into());
    let app = Router::new()
        .route("/{bucket}/{*key}", get(object).head(object))
        .with_state(Arc::new(root));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("s3_dir_server listening on {addr}");
    axum::serve(listener, app).await?;
    Ok(())
}

/// `GET`/`HEAD` of one object, with an optional range and `If-Match`.
async fn object(
    State(root): State<Arc<PathBuf>>,
    UrlPath((bucket, key)): UrlPath<(String, String)>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    let Some(path) = inside(&root, &bucket, &key) else {
        return error(StatusCode::BAD_REQUEST, "InvalidArgument");
    };
    let Ok(meta) = std::fs::metadata(&path) else {
        return error(StatusCode::NOT_FOUND, "NoSuchKey");
    };
    if !meta.is_file() {
        return error(StatusCode::NOT_FOUND, "NoSuchKey");
    }
    let size = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let nanos = modified
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{size:x}-{nanos:x}\"");
    if let Some(want) = headers.get(header::IF_MATCH)
        && want.as_bytes() != etag.as_bytes()
        && want.as_bytes() != b"*"
    {
        return error(StatusCode::PRECONDITION_FAILED, "PreconditionFailed");
    }
    let (status, start, end) = match headers.get(header::RANGE).map(parse_range) {
        None => (StatusCode::OK, 0, size),
        Some(Some((a, b))) if a < size => (
            StatusCode::PARTIAL_CONTENT,
            a,
            b.map_or(size, |b| (b + 1).min(size)),
        ),
        Some(_) => return error(StatusCode::RANGE_NOT_SATISFIABLE, "InvalidRange"),
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, httpdate(modified))
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_TYPE, "text/csv");
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        file_body(path, start, end)
    };
    response
        .body(body)
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "InternalError"))
}

/// Streams `start..end` of the file in 1 MiB chunks read on a blocking thread, a few
/// chunks ahead of the socket.
fn file_body(path: PathBuf, start: u64, end: u64) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => return drop(tx.blocking_send(Err(e))),
        };
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            return drop(tx.blocking_send(Err(e)));
        }
        let mut left = end - start;
        while left > 0 {
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            let got = match file.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) => return drop(tx.blocking_send(Err(e))),
            };
            buf.truncate(got);
            left -= got as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the client went away
            }
        }
    });
    Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// `ROOT/bucket/key`, refusing keys that climb out of the bucket.
fn inside(root: &Path, bucket: &str, key: &str) -> Option<PathBuf> {
    let rel = Path::new(bucket).join(key);
    rel.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then(|| root.join(rel))
}

/// `bytes=a-b` or `bytes=a-` (suffix ranges are not needed by the jobs).
fn parse_range(v: &HeaderValue) -> Option<(u64, Option<u64>)> {
    let (a, b) = v.to_str().ok()?.strip_prefix("bytes=")?.split_once('-')?;
    let a = a.parse().ok()?;
    let b = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    Some((a, b))
}

fn error(status: StatusCode, code: &str) -> Response {
    let xml =
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code></Error>");
    (status, [(header::CONTENT_TYPE, "application/xml")], xml).into_response()
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), which `object_store` requires in
/// `Last-Modified`.
fn httpdate(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
