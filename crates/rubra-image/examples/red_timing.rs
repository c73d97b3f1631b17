//! Medians of the RED stages on one image, one line each, for
//! `bench/red/run.sh`: `name<TAB>wall_ms<TAB>cpu_ms<TAB>red`
//! (medians; cpu = this thread's on-CPU time, robust to a busy machine).
//!
//! usage: red_timing IMAGE [N]

use std::time::Instant;

use rubra_image::{Limits, decode, measure};

/// CPU time of this thread (CLOCK_THREAD_CPUTIME_ID): on a machine shared
/// with other work, the time the code itself took.
fn thread_cpu_ns() -> Option<u64> {
    cpu_time::ThreadTime::try_now()
        .ok()
        .map(|t| t.as_duration().as_nanos() as u64)
}

/// (median wall ms, median thread-CPU ms) of `n` runs of `f`.
fn median_ms<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, f64) {
    std::hint::black_box(f()); // warm up
    let mut wall = Vec::with_capacity(n);
    let mut cpu = Vec::with_capacity(n);
    for _ in 0..n {
        let c = thread_cpu_ns();
        let t = Instant::now();
        std::hint::black_box(f());
        wall.push(t.elapsed().as_secs_f64() * 1000.0);
        if let (Some(a), Some(b)) = (c, thread_cpu_ns()) {
            cpu.push((b - a) as f64 / 1e6);
        }
    }
    let median = |v: &mut Vec<f64>| {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut wall), median(&mut cpu))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: red_timing IMAGE [N]");
        std::process::exit(2);
    };
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let limits = Limits::default();
    let report = match measure(&bytes, &limits) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let red = format!("{:.6}", report.red);
    let probe = median_ms(n * 100, || rubra_image::probe(&bytes));
    let total = median_ms(n, || measure(&bytes, &limits));
    let mut rows = vec![("rubra_probe", probe, "")];
    // A JPEG is counted while it decodes: there is no separate count to time.
    if report.format != rubra_image::ImageFormat::Jpeg {
        let dec = median_ms(n, || decode(&bytes, &limits));
        let decoded = decode(&bytes, &limits).expect("decoded once already");
        let count = median_ms(n * 4, || decoded.red_count());
        rows.push(("rubra_decode", dec, ""));
        rows.push(("rubra_count", count, red.as_str()));
    }
    rows.push(("rubra_measure", total, red.as_str()));
    for (name, (wall, cpu), red) in rows {
        println!("{name}\t{wall:.3}\t{cpu:.3}\t{red}");
    }
}
