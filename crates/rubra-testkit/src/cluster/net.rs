//! Network namespaces for the cluster: one bridge on the host holding the services' addresses,
//! and one namespace per Rubra process joined to it by a veth pair, so a process's links can
//! be cut (the veth down, or a blackhole route to one service) and healed.
//!
//! Every name carries the test process's pid, so a later run deletes what a killed test run
//! left behind ([`sweep_stale`]).

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Runs `ip ARGS…`; panics with its stderr when it fails.
pub(crate) fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip: {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `ip ARGS…`, ignoring failure (clean-up of what may be gone already).
fn ip_quiet(args: &[&str]) {
    let _ = Command::new("ip").args(args).output();
}

/// True when this process may make namespaces: root, with `ip` installed.
pub(crate) fn available() -> bool {
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    });
    root && Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Deletes the namespaces and bridges of cluster runs whose test process is gone.
pub(crate) fn sweep_stale() {
    let alive = |pid: &str| std::path::Path::new(&format!("/proc/{pid}")).exists();
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if let Some(rest) = name.strip_prefix("rbc-")
                && let Some(pid) = rest.split('-').next()
                && !alive(pid)
            {
                ip_quiet(&["netns", "del", name]);
            }
        }
    }
    if let Ok(out) = Command::new("ip")
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "7: rbc1a2b3: <…> … alias rbc-pid-1234"
            let Some(name) = line.split(": ").nth(1) else {
                continue;
            };
            if !name.starts_with("rbc") {
                continue;
            }
            if let Some(pid) = line.split("alias rbc-pid-").nth(1)
                && !alive(pid.trim())
            {
                ip_quiet(&["link", "del", name]);
            }
        }
    }
}

/// A service address on the bridge, one per kind, so one can be cut alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The test's own listeners: webhook receivers, the odds simulator.
    Host,
    /// PostgreSQL.
    Postgres,
    /// The S3 server (through its fault proxy).
    S3,
    /// RabbitMQ (through its fault proxy).
    Amqp,
}

impl Service {
    fn host_octet(self) -> u8 {
        match self {
            Service::Host => 1,
            Service::Postgres => 2,
            Service::S3 => 3,
            Service::Amqp => 4,
        }
    }
}

/// The bridge and the subnet of one cluster.
pub(crate) struct Bridge {
    pub(crate) tag: String,
    pub(crate) name: String,
    subnet: [u8; 2],
}

static SEQ: AtomicU32 = AtomicU32::new(0);

impl Bridge {
    /// Makes the bridge `rbc<tag>` with the four service addresses of a fresh 10.x.y.0/24.
    pub(crate) fn create() -> Bridge {
        let pid = std::process::id();
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let routes = Command::new("ip")
            .args(["-4", "route", "show", "table", "all"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let mut rng = fastrand::Rng::with_seed(u64::from(pid) << 20 ^ u64::from(n));
        let subnet = loop {
            let s = [rng.u8(100..250), rng.u8(0..=255)];
            if !routes.contains(&format!("10.{}.{}.", s[0], s[1])) {
                break s;
            }
        };
        let tag = format!(
            "{:05x}",
            (pid.wrapping_mul(31) ^ n.wrapping_mul(7919)) & 0xfffff
        );
        let name = format!("rbc{tag}");
        ip(&["link", "add", &name, "type", "bridge"]);
        let b = Bridge { tag, name, subnet };
        ip(&["link", "set", &b.name, "alias", &format!("rbc-pid-{pid}")]);
        for s in [Service::Host, Service::Postgres, Service::S3, Service::Amqp] {
            let addr = format!("{}/24", b.service(s));
            ip(&["addr", "add", &addr, "dev", &b.name]);
        }
        ip(&["link", "set", &b.name, "up"]);
        b
    }

    /// The host address of `service`.
    pub(crate) fn service(&self, service: Service) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], service.host_octet())
    }

    /// The address of process `i` inside its namespace.
    pub(crate) fn node_ip(&self, i: usize) -> Ipv4Addr {
        let last = u8::try_from(10 + i).expect("at most 245 processes");
        Ipv4Addr::new(10, self.subnet[0], self.subnet[1], last)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        ip_quiet(&["link", "del", &self.name]);
    }
}

/// One process's namespace and its veth pair to the bridge.
pub(crate) struct Netns {
    pub(crate) name: String,
    pub(crate) host_end: String,
}

impl Netns {
    /// Makes namespace `rbc-<pid>-<tag>-<i>` with address [`Bridge::node_ip`]`(i)`.
    pub(crate) fn create(bridge: &Bridge, i: usize) -> Netns {
        let name = format!("rbc-{}-{}-{i}", std::process::id(), bridge.tag);
        let host_end = format!("rbc{}h{i}", bridge.tag);
        let inner = format!("rbc{}n{i}", bridge.tag);
        ip(&["netns", "add", &name]);
        let ns = Netns { name, host_end };
        ip(&[
            "link",
            "add",
            &ns.host_end,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
            "netns",
            &ns.name,
        ]);
        ip(&["link", "set", &ns.host_end, "master", &bridge.name]);
        ip(&["link", "set", &ns.host_end, "up"]);
        let addr = format!("{}/24", bridge.node_ip(i));
        ip(&["-n", &ns.name, "addr", "add", &addr, "dev", &inner]);
        ip(&["-n", &ns.name, "link", "set", &inner, "up"]);
        ip(&["-n", &ns.name, "link", "set", "lo", "up"]);
        ns
    }

    /// Takes the link down: nothing goes in or out (connections time out, none is refused).
    pub(crate) fn cut(&self) {
        ip(&["link", "set", &self.host_end, "down"]);
    }

    /// Brings the link back up.
    pub(crate) fn heal(&self) {
        ip(&["link", "set", &self.host_end, "up"]);
    }

    /// Drops everything this namespace sends to `addr` (a blackhole route), the rest flows.
    pub(crate) fn cut_from(&self, addr: Ipv4Addr) {
        ip(&[
            "-n",
            &self.name,
            "route",
            "replace",
            "blackhole",
            &format!("{addr}/32"),
        ]);
    }

    /// Removes the blackhole route to `addr`.
    pub(crate) fn heal_from(&self, addr: Ipv4Addr) {
        ip_quiet(&[
            "-n",
            &self.name,
            "route",
            "del",
            "blackhole",
            &format!("{addr}/32"),
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it the host end.
        ip_quiet(&["netns", "del", &self.name]);
        ip_quiet(&["link", "del", &self.host_end]);
    }
}
