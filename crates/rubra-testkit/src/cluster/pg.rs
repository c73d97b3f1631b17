//! A throwaway PostgreSQL cluster of the cluster harness's own, listening on the bridge, so a
//! test may stop and restart it under load without touching the shared test server.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory of the installed PostgreSQL's `initdb` and `pg_ctl`.
pub(crate) fn bindir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|d| d.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// A running PostgreSQL server (stopped on drop).
pub(crate) struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    addr: Ipv4Addr,
}

/// Runs `cmd` as the `postgres` user (initdb and postgres refuse root).
fn as_postgres(cmd: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(cmd);
    c
}

fn run(mut c: Command, what: &str) {
    let out = c
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Postgres {
    /// `initdb` in `dir/pg` and start on `addr:5432`, trusting the cluster's 10.0.0.0/8.
    pub(crate) fn start(bin: PathBuf, dir: &Path, addr: Ipv4Addr) -> Postgres {
        let data = dir.join("pg");
        std::fs::create_dir_all(&data).expect("pg dir");
        run(
            {
                let mut c = Command::new("chown");
                c.arg("-R").arg("postgres:").arg(dir);
                c
            },
            "chown",
        );
        run(
            {
                let mut c = as_postgres(&bin.join("initdb"));
                c.arg("-D")
                    .arg(&data)
                    .args(["-U", "rubra", "-A", "trust", "--no-sync"]);
                c
            },
            "initdb",
        );
        let hba = data.join("pg_hba.conf");
        let mut conf = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        conf.push_str("\nhost all all 10.0.0.0/8 trust\n");
        std::fs::write(&hba, conf).expect("pg_hba.conf");
        let pg = Postgres {
            bin,
            log: dir.join("pg.log"),
            data,
            addr,
        };
        pg.start_again();
        pg
    }

    /// The URL of the `postgres` database on this server.
    pub(crate) fn url(&self) -> String {
        format!("postgres://rubra@{}:5432/postgres", self.addr)
    }

    /// The postmaster's process id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// Starts the (stopped) server and waits until it accepts connections.
    pub(crate) fn start_again(&self) {
        let opts = format!(
            "-p 5432 -k {} -c listen_addresses={} -c fsync=off -c max_connections=400",
            self.data.display(),
            self.addr
        );
        let mut c = as_postgres(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-o", &opts, "start"]);
        run(c, "pg_ctl start");
    }

    /// Stops the server at once (`-m immediate`: like a crash, no checkpoint; every
    /// connection is cut).
    pub(crate) fn stop(&self) {
        let mut c = as_postgres(&self.bin.join("pg_ctl"));
        c.arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"]);
        run(c, "pg_ctl stop");
    }
}

/// Stops the server of data folder `data` at once, if one runs there.
pub(crate) fn stop_at(bin: &Path, data: &Path) {
    if data.join("postmaster.pid").exists() {
        let _ = as_postgres(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        stop_at(&self.bin, &self.data);
    }
}
