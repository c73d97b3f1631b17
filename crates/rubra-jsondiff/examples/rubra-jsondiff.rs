//! Stand-alone `rubra-jsondiff A B` binary for benchmarks and manual use; `rubra diff` wires the same `cli::run`.
use clap::Parser;

/// Command line of the stand-alone comparer.
#[derive(Parser)]
#[command(name = "rubra-jsondiff", about = "Compare two JSON documents")]
struct Cli {
    #[command(flatten)]
    args: rubra_jsondiff::cli::DiffArgs,
}

fn main() -> std::process::ExitCode {
    rubra_jsondiff::cli::run(Cli::parse().args)
}
