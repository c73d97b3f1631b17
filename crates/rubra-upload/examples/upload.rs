//! `rubra upload` as a standalone binary, until the `rubra` binary wires it in.

use clap::Parser;

/// Upload every image under a folder to a Rubra server.
#[derive(Parser)]
struct Cmd {
    #[command(flatten)]
    args: rubra_upload::cli::UploadArgs,
}

fn main() -> std::process::ExitCode {
    rubra_upload::cli::run(Cmd::parse().args)
}
