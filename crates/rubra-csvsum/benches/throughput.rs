//! In-memory throughput of the summer: one thread and all cores, on a CSV
//! shaped like the reference file (40 columns, integers and 2-place decimals).
//!
//! `cargo bench -p rubra-csvsum` measures 64 MiB; under `cargo test` it only
//! runs a small smoke pass.

use std::hint::black_box;
use std::time::Instant;

use rubra_csvsum::{Control, SumOptions, Summer, sum_bytes};

fn csv(rows: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rows * 280);
    let header: Vec<String> = (1..=40).map(|i| format!("c{i}")).collect();
    out.extend_from_slice(header.join(",").as_bytes());
    out.push(b'\n');
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..rows {
        for c in 0..40 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let cell = if c % 2 == 0 {
                (x % 1_000_000).to_string()
            } else {
                format!("{}.{:02}", x % 1000, x % 100)
            };
            out.extend_from_slice(cell.as_bytes());
            out.push(if c == 39 { b'\n' } else { b',' });
        }
    }
    out
}

fn median_gbps(data: &[u8], runs: usize, f: impl Fn(&[u8])) -> f64 {
    let mut t: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            f(data);
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    data.len() as f64 / t[runs / 2] / 1e9
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (rows, runs) = if full { (240_000, 9) } else { (2_000, 1) };
    let data = csv(rows);
    let options = SumOptions::default();
    let one = median_gbps(&data, runs, |d| {
        let mut s = Summer::new(options.clone()).expect("options");
        s.feed(d).expect("feed");
        black_box(s.finish().expect("sum"));
    });
    let all = median_gbps(&data, runs, |d| {
        let control = Control {
            min_region: 1 << 20,
            ..Control::default()
        };
        black_box(sum_bytes(d, &options, &control).expect("sum"));
    });
    println!(
        "{} MiB in memory: Summer 1 thread {one:.2} GB/s, sum_bytes all cores {all:.2} GB/s",
        data.len() >> 20
    );
}
