//! A TCP forwarder on a bridge address in front of a service on loopback (the shared S3
//! server, the shared broker) that can be turned off: [`FaultProxy::set_down`] cuts every open
//! connection and closes each new one at once, as a service that went away would;
//! [`FaultProxy::set_rate`] slows its answers down (a slow store keeps a job running).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// A forwarder `listen → upstream` with an off switch (stopped on drop).
pub struct FaultProxy {
    addr: SocketAddr,
    down: watch::Sender<bool>,
    refused: Arc<AtomicU64>,
    rate: Arc<AtomicU64>,
    task: AbortHandle,
}

/// Copies `from` to `to`, at most `rate` bytes a second when `rate` is not 0.
async fn paced_copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    rate: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let r = rate.load(Ordering::Relaxed);
        let want = if r == 0 {
            buf.len()
        } else {
            usize::try_from(r / 20)
                .unwrap_or(buf.len())
                .clamp(1, buf.len())
        };
        match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
        if r != 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let _ = to.shutdown().await;
}

impl FaultProxy {
    /// Listens on `listen` and forwards each connection to `upstream` (`host:port`).
    pub async fn start(listen: SocketAddr, upstream: String) -> FaultProxy {
        let listener = TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| panic!("fault proxy cannot listen on {listen}: {e}"));
        let addr = listener.local_addr().expect("bound address");
        let (down, _) = watch::channel(false);
        let refused = Arc::new(AtomicU64::new(0));
        let rate = Arc::new(AtomicU64::new(0));
        let (d, r, pace) = (down.clone(), refused.clone(), rate.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mut off = d.subscribe();
                if *off.borrow_and_update() {
                    r.fetch_add(1, Ordering::Relaxed);
                    drop(client);
                    continue;
                }
                let upstream = upstream.clone();
                let pace = pace.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let (mut cr, cw) = client.into_split();
                    let (sr, mut sw) = server.into_split();
                    let up = async {
                        let _ = tokio::io::copy(&mut cr, &mut sw).await;
                        let _ = sw.shutdown().await;
                    };
                    tokio::select! {
                        _ = async { tokio::join!(up, paced_copy(sr, cw, pace)) } => {}
                        _ = off.wait_for(|down| *down) => {}
                    }
                });
            }
        })
        .abort_handle();
        FaultProxy {
            addr,
            down,
            refused,
            rate,
            task,
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `true`: cut every open connection and refuse new ones; `false`: forward again.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }

    /// Answers at most `bytes_per_sec` a second on each connection (0: at full speed).
    pub fn set_rate(&self, bytes_per_sec: u64) {
        self.rate.store(bytes_per_sec, Ordering::Relaxed);
    }

    /// How many connections were refused while down.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.set_down(true);
        self.task.abort();
    }
}
