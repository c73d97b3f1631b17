//! A commit whose answer is lost (issue #26): PostgreSQL commits a group of events, but the
//! connection drops before its "COMMIT" answer reaches Rubra — as when PostgreSQL restarts
//! under load. A proxy in front of PostgreSQL forwards the COMMIT and then cuts the
//! connection without passing the answer on. The batch was written, so it must be answered
//! as stored and counted once (a clean-clone CI run of the cluster recovery test counted a
//! batch that had been answered 503).

use rubra_store::{ClientId, NewEvent, Scope, StatsQuery, Timestamp};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP forwarder to PostgreSQL that, once armed, lets the next `COMMIT` through and then
/// cuts that connection before any answer comes back.
struct CommitCutter {
    addr: SocketAddr,
    armed: Arc<AtomicBool>,
}

impl CommitCutter {
    async fn start(upstream: String) -> CommitCutter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let armed_conn = armed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                tokio::spawn(forward(client, server, armed_conn.clone()));
            }
        });
        CommitCutter { addr, armed }
    }
}

/// Pipes one connection both ways until either side closes, or until a `COMMIT` (simple or
/// extended protocol: the statement text ends in a NUL either way) passes while armed.
async fn forward(client: TcpStream, server: TcpStream, armed: Arc<AtomicBool>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let cut_up = cut.clone();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let commit = buf[..n].windows(7).any(|w| w == b"COMMIT\0");
            if commit && armed.swap(false, Ordering::SeqCst) {
                // No answer may pass from now on; give PostgreSQL time to commit.
                cut_up.store(true, Ordering::SeqCst);
                let _ = sw.write_all(&buf[..n]).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                return;
            }
            if sw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cut.load(Ordering::SeqCst) || cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever direction ends first ends the connection: both halves are dropped.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_commit_answer_was_lost_is_answered_stored_and_counted_once() {
    let test = "a_batch_whose_commit_answer_was_lost_is_answered_stored_and_counted_once";
    let Some(url) = rubra_testkit::fresh_postgres(test).await else {
        return;
    };
    let (base, db) = url.rsplit_once('/').unwrap();
    let host_port = base.rsplit_once('@').map_or(base, |(_, h)| h);
    let host_port = host_port.trim_start_matches("postgres://");
    let cutter = CommitCutter::start(host_port.to_owned()).await;
    let proxied = format!(
        "{}{}/{db}?sslmode=disable",
        base.strip_suffix(host_port).unwrap(),
        cutter.addr
    );
    let store = crate::open_with_key(&rubra_store::DatabaseUrl::parse(&proxied).unwrap()).await;
    let c = store
        .create_client("acme", &rubra_store::Actor::system())
        .await
        .unwrap()
        .id;
    let ev = |red: f64, ts: i64| NewEvent {
        client_id: ClientId::clone(&c),
        image_id: None,
        red,
        ts,
    };
    store.insert_events(vec![ev(0.9, 1_000)]).await.unwrap();
    cutter.armed.store(true, Ordering::SeqCst);
    let batch: Vec<NewEvent> = (0..7).map(|i| ev(0.9, 2_000 + i)).collect();
    let answer = store.insert_events(batch).await;
    assert!(
        !cutter.armed.load(Ordering::SeqCst),
        "the batch's COMMIT passed the proxy"
    );
    assert!(
        answer.is_ok(),
        "a written batch is answered stored: {answer:?}"
    );
    let ts = |ms| Timestamp::from_ms(ms).unwrap();
    let q = StatsQuery::new(ts(0), ts(86_400_000), 0.5, None).unwrap();
    let r = store.stats(&Scope::All, &q).await.unwrap();
    assert_eq!((r.total, r.above), (8, 8), "counted once");
}
