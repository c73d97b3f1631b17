//! Writes a synthetic rubra JSON log for benchmarks: `gen_log BYTES [SEED] > file`.
//!
//! Request trees of span closes (handler → service → store calls, children closing before
//! parents, ids reused like tracing does) across 40 functions with log-normal-ish durations,
//! interleaved with events, slow-span warnings and ~0.01 % malformed lines.

use std::io::{self, BufWriter, Write};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Roughly log-normal: base × 2^(uniform 0..4).
    fn duration(&mut self, base: u64) -> u64 {
        let e = (self.next() % 4000) as f64 / 1000.0;
        (base as f64 * e.exp2()) as u64
    }
}

const HANDLERS: [&str; 8] = [
    "post_image",
    "get_image",
    "head_image",
    "get_stats",
    "post_job",
    "get_job",
    "list_images",
    "delete_image",
];
const SERVICES: [&str; 12] = [
    "measure_red",
    "decode",
    "encode",
    "watermark",
    "overlay",
    "sniff",
    "hash",
    "thumbnail",
    "authorize",
    "validate",
    "enqueue",
    "notify",
];
const STORE: [&str; 20] = [
    "insert_image",
    "get_image",
    "find_by_sha",
    "insert_stat",
    "rollup",
    "lease_job",
    "complete_job",
    "insert_key",
    "lookup_key",
    "put_blob",
    "get_blob",
    "list_images",
    "count_images",
    "delete_image",
    "insert_outbox",
    "claim_outbox",
    "touch_lease",
    "insert_watch",
    "get_watch",
    "migrate",
];

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let limit: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(200 << 20);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(42);
    let mut rng = Rng(seed | 1);
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut written = 0u64;
    let mut t_us: u64 = 1_798_761_600_000_000; // 2027-01-01T00:00:00Z in µs
    let mut line = String::with_capacity(512);
    let mut n = 0u64;
    while written < limit {
        n += 1;
        // One request: handler id 1, a few service spans (ids 2..), each with store calls.
        let handler = HANDLERS[rng.below(8) as usize];
        let mut next_id = 2;
        let mut child_wall = 0;
        let mut lines = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let sid = next_id;
            next_id += 1;
            let mut store_wall = 0;
            for _ in 0..rng.below(4) {
                let f = STORE[rng.below(20) as usize];
                let wall = rng.duration(40_000);
                let busy = wall / 3;
                store_wall += wall;
                lines.push(("rubra_store::sqlite", f, next_id, sid, busy, wall));
                next_id += 1;
            }
            let f = SERVICES[rng.below(12) as usize];
            let wall = store_wall + rng.duration(100_000);
            child_wall += wall;
            lines.push(("rubra_image", f, sid, 1, wall - store_wall / 2, wall));
        }
        let wall = child_wall + rng.duration(50_000);
        for (target, name, id, parent, busy, w) in lines {
            t_us += 3;
            line.clear();
            push_close(&mut line, t_us, target, name, id, Some(parent), busy, w, n);
            written += line.len() as u64;
            out.write_all(line.as_bytes())?;
        }
        t_us += 5;
        line.clear();
        push_close(
            &mut line,
            t_us,
            "rubra_server::routes",
            handler,
            1,
            None,
            wall / 2,
            wall,
            n,
        );
        if rng.below(10) == 0 {
            line.push_str(&format!(
                "{{\"ts\":\"{}\",\"level\":\"INFO\",\"kind\":\"event\",\"target\":\"rubra_server\",\"file\":\"crates/rubra-server/src/lib.rs\",\"line\":77,\"message\":\"request done\",\"fields\":{{\"status\":200,\"request\":{n}}},\"span_id\":1,\"span\":\"{handler}\",\"spans\":[\"{handler}\"]}}\n",
                ts(t_us)
            ));
        }
        if rng.below(10_000) == 0 {
            line.push_str(
                "{\"ts\":\"2027-01-01T00:00:00Z\",\"kind\":\"span_close\",\"name\":\"tru\n",
            );
        }
        written += line.len() as u64;
        out.write_all(line.as_bytes())?;
    }
    out.flush()
}

#[allow(clippy::too_many_arguments)]
fn push_close(
    line: &mut String,
    t_us: u64,
    target: &str,
    name: &str,
    id: u64,
    parent: Option<u64>,
    busy: u64,
    wall: u64,
    request: u64,
) {
    use std::fmt::Write as _;
    let _ = write!(
        line,
        "{{\"ts\":\"{}\",\"level\":\"INFO\",\"kind\":\"span_close\",\"name\":\"{name}\",\"target\":\"{target}\",\"file\":\"crates/{target}/src/lib.rs\",\"line\":{},\"span_id\":{id}",
        ts(t_us),
        10 + name.len()
    );
    if let Some(p) = parent {
        let _ = write!(line, ",\"parent_id\":{p}");
    }
    let _ = writeln!(
        line,
        ",\"busy_ns\":{busy},\"idle_ns\":{},\"wall_ns\":{wall},\"fields\":{{\"request\":{request},\"client\":\"c{}\"}}}}",
        wall - busy,
        request % 17
    );
}

fn ts(t_us: u64) -> String {
    let secs = t_us / 1_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        t_us % 1_000_000
    )
}
