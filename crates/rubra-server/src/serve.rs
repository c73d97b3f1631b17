//! The accept loop: at most `max-connections` open at once (the rest wait in the listen
//! backlog, as nginx stops accepting at `worker_connections`), request headers within
//! `header-timeout`, silent connections closed after `idle-timeout`, and a graceful stop that
//! lets the requests in flight finish.
//!
//! `axum::serve` has none of these limits, so connections are driven with hyper directly:
//! HTTP/1.1, or HTTP/2 when the client opens with the HTTP/2 preface (prior knowledge), as
//! `axum::serve` did.

use crate::settings::Settings;
use axum::Router;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rubra_telemetry::metrics;
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// The first bytes of every HTTP/2 connection with prior knowledge (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How long a stopping server waits for the requests in flight beyond the request timeout
/// before it gives up on them (a download to a client that stopped reading).
const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// The connection limits of one server.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_timeout: Duration,
    idle_timeout: Duration,
}

/// The default cap on open connections: 10 000, or three quarters of the open-file limit when
/// that is lower (the rest stays for the database, the blobs and outgoing webhooks).
pub fn default_max_connections() -> usize {
    let soft_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        });
    match soft_limit {
        Some(n) => (n / 4 * 3).clamp(1, 10_000),
        None => 10_000,
    }
}

/// Serves `app` on `listener` until `stop` completes, then stops accepting, lets every
/// connection finish its request in flight (at most the request timeout and a grace period),
/// and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: &Settings,
    stop: impl std::future::Future<Output = ()>,
) {
    let limits = Limits {
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
    };
    // Settings bound it to a u32, so `acquire_many` below can take every permit.
    let max = u32::try_from(settings.max_connections).unwrap_or(u32::MAX);
    let open = Arc::new(Semaphore::new(max as usize));
    let stopping = CancellationToken::new();
    let mut stop = pin!(stop);
    loop {
        // A free place first: at the cap, connections wait in the kernel's backlog.
        let permit = tokio::select! {
            () = &mut stop => break,
            p = Arc::clone(&open).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, _peer) = tokio::select! {
            () = &mut stop => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(connection(
            stream,
            app.clone(),
            limits,
            permit,
            stopping.clone(),
        ));
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    stopping.cancel();
    let drained = open.acquire_many(max);
    if tokio::time::timeout(settings.request_timeout + DRAIN_GRACE, drained)
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after the request timeout; closing them with the process"
        );
    }
}

/// An accept error: a connection that failed before it was accepted is nothing to wait for;
/// anything else (out of file descriptors) is logged and retried after a pause, so that the
/// loop does not spin.
async fn accept_failed(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The place of an open connection: counted in `rubra_connections_open` until dropped.
struct Place(#[allow(dead_code)] OwnedSemaphorePermit);

impl Place {
    fn new(permit: OwnedSemaphorePermit) -> Place {
        metrics::gauge!("rubra_connections_open").increment(1.0);
        Place(permit)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!("rubra_connections_open").decrement(1.0);
    }
}

/// Serves one connection until the client closes it, it times out, or the server stops.
async fn connection(
    mut stream: TcpStream,
    app: Router,
    limits: Limits,
    permit: OwnedSemaphorePermit,
    stopping: CancellationToken,
) {
    let _place = Place::new(permit);
    let first = tokio::select! {
        r = tokio::time::timeout(limits.header_timeout, read_preface(&mut stream)) => match r {
            Ok(Ok(first)) => first,
            // Closed before a byte, a read error, or silence: nothing to answer.
            Ok(Err(_)) | Err(_) => return,
        },
        // A stopping server does not wait for a connection that has not said anything.
        () = stopping.cancelled() => return,
    };
    let h2 = first.as_slice() == H2_PREFACE;
    let activity = Activity::new();
    let io = TokioIo::new(Tracked {
        prefix: first,
        at: 0,
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service = TowerToHyperService::new(app);
    if h2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(io, service);
        drive(conn, &activity, limits, &stopping).await;
    } else {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(io, service);
        drive(conn, &activity, limits, &stopping).await;
    }
}

/// A hyper connection that can be asked to finish its request in flight and close.
trait Graceful: std::future::Future<Output = Result<(), hyper::Error>> {
    fn stop(self: Pin<&mut Self>);
}

type Io = TokioIo<Tracked>;
type Service = TowerToHyperService<Router>;

impl Graceful for http1::Connection<Io, Service> {
    fn stop(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl Graceful for http2::Connection<Io, Service, TokioExecutor> {
    fn stop(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Runs `conn` to its end. When the server stops, or nothing moved on the connection for the
/// idle timeout, it finishes its request in flight and closes; if it then stays silent for
/// another idle timeout (a client that stopped reading), it is dropped.
async fn drive<C: Graceful>(
    conn: C,
    activity: &Activity,
    limits: Limits,
    stopping: &CancellationToken,
) {
    let mut conn = pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = stopping.cancelled(), if !closing => {
                conn.as_mut().stop();
                closing = true;
            }
            () = activity.silent_for(limits.idle_timeout) => {
                if closing {
                    tracing::debug!("connection silent after closing: dropped");
                    return;
                }
                conn.as_mut().stop();
                closing = true;
            }
        }
    }
}

/// Reads the first bytes: as many as it takes to tell the HTTP/2 preface from anything else
/// (one, for an HTTP/1 request). Fails when the client closes first.
async fn read_preface(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(H2_PREFACE.len());
    while buf.len() < H2_PREFACE.len() && H2_PREFACE.starts_with(&buf) {
        let mut chunk = [0u8; 24];
        let want = H2_PREFACE.len() - buf.len();
        let n = stream.read(&mut chunk[..want]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(buf)
}

/// When bytes last moved on a connection, in ms since it opened.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `limit`.
    async fn silent_for(&self, limit: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// The connection's socket, replaying the bytes read to choose the protocol and noting when
/// bytes move.
struct Tracked {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
