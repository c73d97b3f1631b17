//! A stand-alone `slowlog` binary for benchmarks and manual use:
//! `cargo run --release -p rubra-slowlog --example slowlog -- FILE…`.

use clap::Parser;
use rubra_slowlog::cli::{SlowlogArgs, run};

#[derive(Parser)]
#[command(name = "slowlog")]
struct Cli {
    #[command(flatten)]
    args: SlowlogArgs,
}

fn main() -> std::process::ExitCode {
    run(Cli::parse().args)
}
