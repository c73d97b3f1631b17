//! The accept loop: at most `max-connections` open at once (the rest wait in the listen
//! backlog, as nginx stops accepting at `worker_connections`) and `max-connections-per-ip`
//! from one address (the rest are closed at accept), request headers within `header-timeout`,
//! connections without a request in flight closed after `idle-timeout` (HTTP/2 ones after
//! `header-timeout`, whatever frames they send), and a graceful stop that lets the requests
//! in flight finish. Each request carries its peer's address (`ConnectInfo<SocketAddr>`).
//!
//! `axum::serve` has none of these limits, so connections are driven with hyper directly:
//! HTTP/1.1, or HTTP/2 when the client opens with the HTTP/2 preface (prior knowledge, or
//! after choosing `h2` by ALPN), as `axum::serve` did. With `--tls-cert` every connection
//! starts with a TLS handshake, which must finish within the header timeout like the headers
//! it carries.

use crate::settings::Settings;
use axum::Router;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::{http1, http2};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rubra_telemetry::metrics;
use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
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
    per_address: usize,
}

/// The default cap on open connections: 10 000, or three quarters of the open-file limit when
/// that is lower (the rest stays for the database, the blobs and outgoing webhooks). The
/// limit is first raised as far as this process may ([`raise_open_file_limit`]).
pub fn default_max_connections() -> usize {
    match raise_open_file_limit() {
        Some(n) => usize::try_from(n / 4 * 3)
            .unwrap_or(usize::MAX)
            .clamp(1, 10_000),
        None => 10_000,
    }
}

/// Raises the soft limit on open files to the hard limit (a default soft limit of 1 024 would
/// cap the connections far below what the machine can hold), and answers the soft limit in
/// force afterwards (`None`: unlimited, or not known).
pub fn raise_open_file_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    // An unlimited hard limit cannot be the soft one: the kernel's own ceiling is.
    let ceiling = limit.maximum.or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
    });
    if let (Some(current), Some(ceiling)) = (limit.current, ceiling)
        && current < ceiling
    {
        limit.current = Some(ceiling);
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, current, ceiling, "cannot raise the open-file limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The address a client is counted under for per-address limits: an IPv4 address (also when
/// it arrives mapped into IPv6), or an IPv6 address's /64 network, which one subscriber
/// usually holds whole.
pub fn client_address(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let network = v6.to_bits() & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from_bits(network))
        }
    }
}

/// Serves `app` on `listener` (over TLS with `tls`) until `stop` completes, then stops
/// accepting, lets every connection finish its request in flight (at most the request timeout
/// and a grace period), and returns.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    settings: &Settings,
    stop: impl std::future::Future<Output = ()>,
) {
    let limits = Limits {
        header_timeout: settings.header_timeout,
        idle_timeout: settings.idle_timeout,
        per_address: settings.max_connections_per_ip,
    };
    let addresses = Arc::new(Addresses::default());
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
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
        };
        let Some(address) = Addresses::enter(&addresses, peer.ip(), limits.per_address) else {
            // Closed at once (the place goes back with `permit`): one address cannot hold
            // every connection.
            metrics::counter!(
                "rubra_rejected_requests_total",
                "reason" => "connections_per_ip"
            )
            .increment(1);
            tracing::debug!(%peer, "connection refused: its address is at max-connections-per-ip");
            continue;
        };
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        tokio::spawn(connection(
            stream,
            tls.clone(),
            peer,
            app.clone(),
            limits,
            Place::new(permit, address),
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

/// Open connections per client address ([`client_address`]).
#[derive(Debug, Default)]
struct Addresses {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl Addresses {
    /// Counts a connection from `ip`, unless that address already has `cap` open.
    fn enter(this: &Arc<Addresses>, ip: IpAddr, cap: usize) -> Option<AddressPlace> {
        let ip = client_address(ip);
        let mut open = this.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(AddressPlace {
            addresses: Arc::clone(this),
            ip,
        })
    }
}

/// One connection counted against its address until dropped.
#[derive(Debug)]
struct AddressPlace {
    addresses: Arc<Addresses>,
    ip: IpAddr,
}

impl Drop for AddressPlace {
    fn drop(&mut self) {
        let mut open = self
            .addresses
            .open
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                // Addresses without a connection take no memory.
                open.remove(&self.ip);
            }
        }
    }
}

/// The place of an open connection, in the global cap and its address's: counted in
/// `rubra_connections_open` until dropped.
struct Place {
    _permit: OwnedSemaphorePermit,
    _address: AddressPlace,
}

impl Place {
    fn new(permit: OwnedSemaphorePermit, address: AddressPlace) -> Place {
        metrics::gauge!("rubra_connections_open").increment(1.0);
        Place {
            _permit: permit,
            _address: address,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::gauge!("rubra_connections_open").decrement(1.0);
    }
}

/// Serves one connection until the client closes it, it times out, or the server stops.
async fn connection(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    place: Place,
    stopping: CancellationToken,
) {
    let _place = place;
    // The handshake counts against the header timeout: a client that never finishes it holds
    // a place just like one that never sends its headers.
    let opening = async {
        let mut stream = match tls {
            Some(acceptor) => Stream::Tls(Box::new(acceptor.accept(stream).await?)),
            None => Stream::Plain(stream),
        };
        let first = read_preface(&mut stream).await?;
        Ok::<_, io::Error>((stream, first))
    };
    let (stream, first) = tokio::select! {
        r = tokio::time::timeout(limits.header_timeout, opening) => match r {
            Ok(Ok(opened)) => opened,
            // Closed before a byte, a failed handshake, a read error, or silence: nothing to
            // answer.
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection closed before its first request");
                return;
            }
            Err(_) => return,
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
    let service = Service {
        app: TowerToHyperService::new(app),
        peer,
        activity: Arc::clone(&activity),
    };
    if h2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(io, service);
        // Between requests an HTTP/2 connection is held to the header timeout: there is no
        // header read to time out, and PINGs or SETTINGS must not keep it open.
        let unused = limits.header_timeout.min(limits.idle_timeout);
        drive(conn, &activity, unused, limits, &stopping).await;
    } else {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .serve_connection(io, service);
        drive(conn, &activity, limits.idle_timeout, limits, &stopping).await;
    }
}

/// The application as one connection serves it: each request carries the peer's address and
/// counts as in flight on the connection until its response body is done with.
#[derive(Clone)]
struct Service {
    app: TowerToHyperService<Router>,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<InFlightBody>;
    type Error = Infallible;
    type Future =
        Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::new(&self.activity);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let response = self.app.call(req);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| InFlightBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A request in flight on its connection, from its headers to the end of its response.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A response body that keeps its request in flight until it is dropped.
struct InFlightBody {
    body: axum::body::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A hyper connection that can be asked to finish its request in flight and close.
trait Graceful: std::future::Future<Output = Result<(), hyper::Error>> {
    fn stop(self: Pin<&mut Self>);
}

type Io = TokioIo<Tracked>;

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

/// Runs `conn` to its end. When the server stops, when no request has been in flight for
/// `unused`, or when requests are in flight but nothing moved on the connection for the idle
/// timeout, it finishes its requests in flight and closes; if it then stays that way again
/// (a client that stopped reading, or an HTTP/2 client that does not answer the closing
/// PING), it is dropped.
async fn drive<C: Graceful>(
    conn: C,
    activity: &Activity,
    unused: Duration,
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
                activity.closing();
                closing = true;
            }
            () = activity.idle(unused, limits.idle_timeout) => {
                if closing {
                    tracing::debug!("connection still open after closing: dropped");
                    return;
                }
                conn.as_mut().stop();
                activity.closing();
                closing = true;
            }
        }
    }
}

/// Reads the first bytes: as many as it takes to tell the HTTP/2 preface from anything else
/// (one, for an HTTP/1 request). Fails when the client closes first.
async fn read_preface(stream: &mut Stream) -> io::Result<Vec<u8>> {
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

/// What a connection is doing: its requests in flight, and when (in ms since it opened) bytes
/// last moved and its last request ended.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    request_ended_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            request_ended_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last_ms.store(self.now_ms(), Ordering::Relaxed);
    }

    /// A request in flight is done (its response sent, or abandoned).
    fn request_ended(&self) {
        // Stamped before the count drops, so a connection never looks unused since long ago.
        self.request_ended_ms
            .store(self.now_ms(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The connection was asked to close: from now on, its limits start again.
    fn closing(&self) {
        let now = self.now_ms();
        self.request_ended_ms.store(now, Ordering::Relaxed);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Completes once no request has been in flight for `unused`, or requests are in flight
    /// but nothing has moved for `silent`. Bytes without a request (PINGs, a drip of header
    /// bytes) do not count as use.
    async fn idle(&self, unused: Duration, silent: Duration) {
        loop {
            let (since_ms, limit) = if self.in_flight.load(Ordering::Relaxed) == 0 {
                (self.request_ended_ms.load(Ordering::Relaxed), unused)
            } else {
                (self.last_ms.load(Ordering::Relaxed), silent)
            };
            let deadline = self.opened + Duration::from_millis(since_ms) + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline.into()).await;
        }
    }
}

/// A connection's byte stream: the socket itself, or TLS over it.
enum Stream {
    Plain(TcpStream),
    // Boxed: a TLS session is a few hundred bytes, and most servers run without one.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connection's stream, replaying the bytes read to choose the protocol and noting when
/// bytes move.
struct Tracked {
    prefix: Vec<u8>,
    at: usize,
    inner: Stream,
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
