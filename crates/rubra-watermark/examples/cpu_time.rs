//! Times `watermark` on given files in CPU time (this thread's, from
//! /proc/thread-self/schedstat) as well as wall time, so figures stay meaningful on
//! a shared machine. Usage: cpu_time IMAGE OVERLAY.png [gravity] [iterations] [pixels]

use rubra_watermark::{Options, Overlay, Placement, Strategy, watermark_with};
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
        eprintln!("usage: cpu_time IMAGE OVERLAY.png [gravity] [iterations] [pixels]");
        std::process::exit(2);
    }
    let input = std::fs::read(&args[1])?;
    let overlay = Overlay::from_png(&std::fs::read(&args[2])?)?;
    let gravity = args
        .get(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(rubra_watermark::Gravity::SouthEast);
    let iters: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(200);
    let strategy = if args.get(5).is_some_and(|s| s == "pixels") {
        Strategy::Pixels
    } else {
        Strategy::Auto
    };
    let opts = Options {
        strategy,
        ..Options::new(Placement::gravity(gravity, 20, 20))
    };
    let first = watermark_with(&input, &overlay, &opts)?;
    let mut cpu = Vec::with_capacity(iters);
    let mut wall = Vec::with_capacity(iters);
    for _ in 0..iters {
        let (c0, t0) = (thread_cpu_ns(), Instant::now());
        let out = watermark_with(&input, &overlay, &opts)?;
        std::hint::black_box(out);
        wall.push(t0.elapsed().as_nanos() as u64);
        cpu.push(thread_cpu_ns() - c0);
    }
    cpu.sort_unstable();
    wall.sort_unstable();
    let ms = |v: u64| v as f64 / 1e6;
    println!(
        "route {:?}, out {} bytes: cpu median {:.3} ms (min {:.3}), wall median {:.3} ms => {:.0} images/s per core",
        first.route,
        first.bytes.len(),
        ms(cpu[iters / 2]),
        ms(cpu[0]),
        ms(wall[iters / 2]),
        1e9 / cpu[iters / 2] as f64
    );
    Ok(())
}
