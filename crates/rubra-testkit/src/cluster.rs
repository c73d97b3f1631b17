//! A cluster of real `rubra serve` and `rubra worker` processes on one PostgreSQL, one S3
//! bucket and (optionally) one RabbitMQ queue, each process in its own network namespace, for
//! the fault tests and the chaos soak.
//!
//! The harness owns a PostgreSQL server (so it can restart it), puts a [`FaultProxy`] in front
//! of the shared S3 server and broker (so they can go away), and gives every process a veth
//! link to a bridge carrying those services' addresses: a process can be cut off entirely
//! ([`Cluster::cut`]), from one service ([`Cluster::cut_from`]), paused, killed and restarted.
//! Dropping the [`Cluster`] kills the processes and deletes the namespaces, links and the
//! server, also when the test panicked.

mod net;
mod pg;
mod proxy;

pub use net::Service;
pub use proxy::FaultProxy;

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `rubra serve`: the API and every worker.
    Serve,
    /// `rubra worker`: the workers only.
    Worker,
}

/// One Rubra process of the cluster and its namespace.
pub struct Node {
    role: Role,
    index: usize,
    ns: net::Netns,
    ip: Ipv4Addr,
    extra: Vec<String>,
    child: Option<Child>,
    starts: usize,
    paused: bool,
}

impl Node {
    /// `serve` or `worker`.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The API's base URL (`http://10.x.y.z:8080`); meaningful for [`Role::Serve`].
    pub fn base(&self) -> String {
        format!("http://{}:8080", self.ip)
    }

    /// The process id of the running incarnation.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs (a paused one runs).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// CPU seconds (user + system) the running incarnation has used so far.
    pub fn cpu_secs(&self) -> f64 {
        self.pid().map_or(0.0, cpu_secs_of)
    }

    fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.paused = false;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The processes, their namespaces and the services they share.
pub struct Cluster {
    bin: PathBuf,
    dir: tempfile::TempDir,
    // Dropped in field order: processes first, then the servers and the bridge.
    nodes: Vec<Node>,
    s3: FaultProxy,
    /// The proxy in front of the broker, the broker URL through it, the queue.
    amqp: Option<(FaultProxy, String, String)>,
    bucket: String,
    pg: pg::Postgres,
    bridge: net::Bridge,
    admin_key: Option<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        if std::thread::panicking() || std::env::var_os("RUBRA_CLUSTER_KEEP_LOGS").is_some() {
            // Keep the processes' logs of a failed test (or when asked) where it says.
            let keep = std::env::temp_dir().join(format!("rubra-cluster-logs-{}", self.bridge.tag));
            let _ = std::fs::create_dir_all(&keep);
            if let Ok(rd) = std::fs::read_dir(self.dir.path().join("logs")) {
                for e in rd.flatten() {
                    let _ = std::fs::copy(e.path(), keep.join(e.file_name()));
                }
            }
            let _ = std::fs::copy(self.dir.path().join("pg.log"), keep.join("pg.log"));
            eprintln!("cluster logs kept in {}", keep.display());
        }
    }
}

/// CPU seconds (user + system) of process `pid`, from `/proc/PID/stat` (0 when gone).
pub fn cpu_secs_of(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the parenthesised command name: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, a)| a);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    // USER_HZ is 100 on Linux.
    ticks / 100.0
}

/// Stops the PostgreSQL servers and removes the folders of cluster runs whose test process
/// is gone (killed before its drop ran).
fn sweep_stale_dirs() {
    let Ok(rd) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("rubra-cluster.")
            .and_then(|r| r.split('.').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_err() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if let Some(bin) = pg::bindir() {
            pg::stop_at(&bin, &e.path().join("pg"));
        }
        let _ = std::fs::remove_dir_all(e.path());
    }
}

fn required() -> bool {
    std::env::var("RUBRA_TEST_REQUIRE_SERVICES").is_ok_and(|v| v == "1")
}

impl Cluster {
    /// A cluster with no process yet, for `rubra` binary `bin`: its own PostgreSQL, a fresh
    /// bucket on the test S3 server, and with `amqp` a fresh queue on the test broker.
    /// `None` (after printing why the test is skipped) without root, `ip`, PostgreSQL, or the
    /// test S3 server or broker — unless `RUBRA_TEST_REQUIRE_SERVICES=1`, where that fails.
    pub async fn start(test: &str, bin: &Path, amqp: bool) -> Option<Cluster> {
        let missing = if !net::available() {
            Some("root and iproute2 (network namespaces)")
        } else if pg::bindir().is_none() {
            Some("PostgreSQL's initdb")
        } else {
            None
        };
        if let Some(what) = missing {
            assert!(!required(), "{test}: needs {what}");
            eprintln!("SKIPPED {test}: needs {what}");
            return None;
        }
        let bucket = crate::fresh_bucket(test).await?;
        let broker = if amqp {
            Some(crate::amqp_broker(test)?)
        } else {
            None
        };
        net::sweep_stale();
        sweep_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(&format!("rubra-cluster.{}.", std::process::id()))
            .tempdir()
            .expect("temp dir");
        let bridge = net::Bridge::create();
        let pg = pg::Postgres::start(
            pg::bindir().expect("checked above"),
            dir.path(),
            bridge.service(Service::Postgres),
        );
        let s3 = FaultProxy::start(
            SocketAddr::from((bridge.service(Service::S3), 80)),
            bucket.endpoint.trim_start_matches("http://").to_owned(),
        )
        .await;
        let amqp = match broker {
            Some(b) => {
                let hostport = b
                    .url
                    .split('@')
                    .nth(1)
                    .and_then(|r| r.split('/').next())
                    .expect("amqp://user:pass@host:port/vhost")
                    .to_owned();
                let proxy = FaultProxy::start(
                    SocketAddr::from((bridge.service(Service::Amqp), 5672)),
                    hostport.clone(),
                )
                .await;
                let url = b.url.replace(&hostport, &proxy.addr().to_string());
                Some((proxy, url, b.queue))
            }
            None => None,
        };
        std::fs::create_dir_all(dir.path().join("logs")).expect("logs dir");
        Some(Cluster {
            bin: bin.to_owned(),
            dir,
            nodes: Vec::new(),
            s3,
            amqp,
            bucket: bucket.bucket,
            pg,
            bridge,
            admin_key: None,
        })
    }

    /// The database URL (reachable from the test process too).
    pub fn database_url(&self) -> String {
        self.pg.url()
    }

    /// The bucket every process stores in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The S3 endpoint as the processes see it (through the fault proxy).
    pub fn s3_endpoint(&self) -> String {
        format!("http://{}", self.s3.addr())
    }

    /// The fault proxy in front of S3.
    pub fn s3(&self) -> &FaultProxy {
        &self.s3
    }

    /// The fault proxy in front of RabbitMQ, when the cluster has a queue.
    pub fn amqp(&self) -> Option<&FaultProxy> {
        self.amqp.as_ref().map(|a| &a.0)
    }

    /// The broker URL (through the proxy) and the queue, when the cluster has a queue.
    pub fn amqp_url_and_queue(&self) -> Option<(String, String)> {
        self.amqp
            .as_ref()
            .map(|(_, url, queue)| (url.clone(), queue.clone()))
    }

    /// The host's address on the bridge, where the test's own listeners (webhook receivers,
    /// the odds simulator) bind so that every process can reach them.
    pub fn host_ip(&self) -> Ipv4Addr {
        self.bridge.service(Service::Host)
    }

    /// The cluster's folder: the shared data dir (`data/`), the logs (`logs/`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The admin key the first `serve` made; `None` before one started.
    pub fn admin_key(&self) -> Option<&str> {
        self.admin_key.as_deref()
    }

    /// The settings every process gets, before its own `extra`.
    fn common(&self) -> Vec<String> {
        let mut c: Vec<String> = [
            "--data-dir",
            &self.dir.path().join("data").display().to_string(),
            "--database-url",
            &self.pg.url(),
            "--storage",
            &format!("s3://{}/rubra", self.bucket),
            "--s3-endpoint",
            &self.s3_endpoint(),
            "--log-format",
            "json",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if let Some((url, queue)) = self.amqp_url_and_queue() {
            c.extend([
                "--amqp-url".to_owned(),
                url,
                "--amqp-queue".to_owned(),
                queue,
            ]);
        }
        c
    }

    /// Starts a new process of `role` in a namespace of its own with the common settings and
    /// `extra`; a `serve` is waited for until it listens. Answers its index.
    pub fn spawn(&mut self, role: Role, extra: &[String]) -> usize {
        let index = self.nodes.len();
        let ns = net::Netns::create(&self.bridge, index);
        self.nodes.push(Node {
            role,
            index,
            ns,
            ip: self.bridge.node_ip(index),
            extra: extra.to_vec(),
            child: None,
            starts: 0,
            paused: false,
        });
        self.launch(index);
        index
    }

    /// Starts node `i` again (after [`kill`](Self::kill)): the same namespace and settings.
    /// A process that exits at start (a database still recovering, say) is started again, as
    /// a supervisor would, up to 5 times.
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].kill();
        for _ in 1..5 {
            if self.try_launch(i).is_ok() {
                return;
            }
            self.nodes[i].kill();
            std::thread::sleep(Duration::from_secs(1));
        }
        self.launch(i);
    }

    fn launch(&mut self, i: usize) {
        if let Err(e) = self.try_launch(i) {
            panic!("{e}");
        }
    }

    /// Starts node `i`; `Err` (naming its log) when a `serve` exits before it listens.
    fn try_launch(&mut self, i: usize) -> Result<(), String> {
        let common = self.common();
        let node = &mut self.nodes[i];
        node.starts += 1;
        let name = match node.role {
            Role::Serve => "serve",
            Role::Worker => "worker",
        };
        let log_base = self
            .dir
            .path()
            .join("logs")
            .join(format!("{name}{}-{}", node.index, node.starts));
        let out_path = log_base.with_extension("out");
        let stdout = File::create(&out_path).expect("log file");
        let stderr = File::create(log_base.with_extension("log")).expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &node.ns.name])
            .arg(&self.bin)
            .arg(name);
        if node.role == Role::Serve {
            cmd.args(["--listen", &format!("{}:8080", node.ip)]);
        }
        cmd.args(&common)
            .args(&node.extra)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        node.child = Some(cmd.spawn().expect("spawn rubra"));
        if node.role == Role::Serve {
            let until = Instant::now() + Duration::from_secs(60);
            loop {
                let out = std::fs::read_to_string(&out_path).unwrap_or_default();
                if self.admin_key.is_none()
                    && let Some(k) = out.lines().find(|l| l.starts_with("rbk_"))
                {
                    self.admin_key = Some(k.trim().to_owned());
                }
                if out.contains("rubra listening on ") {
                    break;
                }
                let node = &mut self.nodes[i];
                if !(node.is_running() && Instant::now() < until) {
                    return Err(format!(
                        "serve {i} did not start; see {}",
                        log_base.display()
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if self.admin_key.is_none() {
                // Another serve made it first; it is in the shared data dir.
                let k = std::fs::read_to_string(self.dir.path().join("data/admin.key"))
                    .unwrap_or_default();
                self.admin_key = Some(k.trim().to_owned()).filter(|k| !k.is_empty());
            }
        }
        Ok(())
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// Node `i`, mutable (for [`Node::is_running`]).
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        &mut self.nodes[i]
    }

    /// How many processes the cluster has had (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no process was started.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Cuts every link of node `i` (its veth down): the database, S3, the broker and its
    /// clients all stop hearing from it; connections hang rather than fail.
    pub fn cut(&self, i: usize) {
        self.nodes[i].ns.cut();
    }

    /// Undoes [`cut`](Self::cut).
    pub fn heal(&self, i: usize) {
        self.nodes[i].ns.heal();
    }

    /// Cuts node `i` off from `service` only (its packets there are dropped).
    pub fn cut_from(&self, i: usize, service: Service) {
        self.nodes[i].ns.cut_from(self.bridge.service(service));
    }

    /// Undoes [`cut_from`](Self::cut_from).
    pub fn heal_from(&self, i: usize, service: Service) {
        self.nodes[i].ns.heal_from(self.bridge.service(service));
    }

    /// SIGSTOP of node `i`.
    pub fn pause(&mut self, i: usize) {
        self.nodes[i].signal("-STOP");
        self.nodes[i].paused = true;
    }

    /// SIGCONT of node `i`.
    pub fn resume(&mut self, i: usize) {
        self.nodes[i].signal("-CONT");
        self.nodes[i].paused = false;
    }

    /// True while node `i` is paused.
    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// SIGKILL of node `i` (no chance to release its leases).
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// SIGTERM of node `i`, then waits up to `within` for it to finish its shutdown (its last
    /// log lines written); killed if it has not by then. Answers whether it exited by itself.
    pub fn terminate(&mut self, i: usize, within: Duration) -> bool {
        let node = &mut self.nodes[i];
        node.signal("-TERM");
        let end = Instant::now() + within;
        while Instant::now() < end {
            if !node.is_running() {
                node.child = None;
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        node.kill();
        false
    }

    /// CPU seconds used so far by the cluster's PostgreSQL server and all its backends (those
    /// still running).
    pub fn postgres_cpu_secs(&self) -> f64 {
        let Some(main) = self.pg.pid() else {
            return 0.0;
        };
        let mut total = cpu_secs_of(main);
        if let Ok(rd) = std::fs::read_dir("/proc") {
            for e in rd.flatten() {
                let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                    continue;
                };
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit_once(')')
                    .and_then(|(_, a)| a.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<u32>().ok());
                if ppid == Some(main) {
                    total += cpu_secs_of(pid);
                }
            }
        }
        total
    }

    /// Stops PostgreSQL at once (`-m immediate`, like a crash).
    pub fn stop_postgres(&self) {
        self.pg.stop();
    }

    /// Starts PostgreSQL again after [`stop_postgres`](Self::stop_postgres).
    pub fn start_postgres(&self) {
        self.pg.start_again();
    }
}
