//! Times `watermark` on given files in CPU time (this thread's, from
//! /proc/thread-self/schedstat, summed over the run) as well as wall time, so
//! figures stay meaningful on a shared machine; with `threads` > 1 it also reports
//! the combined throughput.
//! Usage: cpu_time IMAGE OVERLAY.png [gravity|X,Y] [iterations] [auto|pixels|parts] [threads]
//! (`parts` times `watermark_parts`, which leaves the output's unchanged head and tail in the
//! input, as the server sends it, instead of `watermark_with`).

use rubra_watermark::{Options, Overlay, Placement, Strategy, watermark_parts, watermark_with};
use std::time::Instant;

fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!(
            "usage: cpu_time IMAGE OVERLAY.png [gravity|X,Y] [iterations] [auto|pixels|parts] [threads]"
        );
        std::process::exit(2);
    }
    let input = std::fs::read(&args[1])?;
    let overlay = Overlay::from_png(&std::fs::read(&args[2])?)?;
    // A gravity (20 px in), or `X,Y`: the overlay's top-left corner exactly.
    let placement = match args.get(3).and_then(|s| s.split_once(',')) {
        Some((x, y)) => Placement::Exact {
            x: x.parse()?,
            y: y.parse()?,
        },
        None => {
            let gravity = args
                .get(3)
                .map(|s| s.parse())
                .transpose()?
                .unwrap_or(rubra_watermark::Gravity::SouthEast);
            Placement::gravity(gravity, 20, 20)
        }
    };
    let iters: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let strategy = if args.get(5).is_some_and(|s| s == "pixels") {
        Strategy::Pixels
    } else {
        Strategy::Auto
    };
    let opts = Options {
        strategy,
        ..Options::new(placement)
    };
    let threads: usize = args.get(6).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let parts = args.get(5).is_some_and(|s| s == "parts");
    let first = watermark_with(&input, &overlay, &opts)?;
    let start = Instant::now();
    let results: Vec<(u64, Vec<u64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut wall = Vec::with_capacity(iters);
                    let c0 = thread_cpu_ns();
                    for _ in 0..iters {
                        let t0 = Instant::now();
                        if parts {
                            let out = watermark_parts(&input, &overlay, &opts).expect("watermark");
                            std::hint::black_box(out);
                        } else {
                            let out = watermark_with(&input, &overlay, &opts).expect("watermark");
                            std::hint::black_box(out);
                        }
                        wall.push(t0.elapsed().as_nanos() as u64);
                    }
                    (thread_cpu_ns() - c0, wall)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_total: u64 = results.iter().map(|r| r.0).sum();
    let mut wall: Vec<u64> = results.into_iter().flat_map(|r| r.1).collect();
    wall.sort_unstable();
    let n = (iters * threads) as f64;
    let cpu_ms = cpu_total as f64 / 1e6 / n;
    println!(
        "route {:?}, out {} bytes, {threads} thread(s): cpu {:.3} ms/image => {:.0} images/s per core; wall median {:.3} ms; throughput {:.0} images/s",
        first.route,
        first.bytes.len(),
        cpu_ms,
        1e3 / cpu_ms,
        wall[wall.len() / 2] as f64 / 1e6,
        n / elapsed
    );
    Ok(())
}
