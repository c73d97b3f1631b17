//! The `rubra` binary: parses the command line, sets up telemetry, and hands over to the
//! library crates. Exit codes: 0 success, 1 failure, 2 usage or configuration error.

mod admin;
mod malloc;

use clap::{Parser, Subcommand};
use rubra_server::{Application, ConfigArgs, Settings};
use rubra_telemetry::TelemetryConfig;
use std::process::ExitCode;

/// Rubra: stores client images, measures how red they are, keeps statistics and alerts,
/// stamps watermarks, sums CSV columns, and ships the tools around them.
#[derive(Debug, Parser)]
#[command(name = "rubra", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API and every worker in one process (the embedded default needs no setup).
    Serve(ConfigArgs),
    /// Run workers only, for scale-out (needs a shared PostgreSQL and S3).
    Worker(ConfigArgs),
    /// Create clients and API keys, run migrations.
    Admin(admin::AdminArgs),
    /// Compare two JSON documents (floats equal to 5 decimal places). Exit 0 equal, 1 different, 2 error.
    Diff(rubra_jsondiff::cli::DiffArgs),
    /// Upload every image under a folder to POST /images (skips what the server has).
    Upload(rubra_upload::cli::UploadArgs),
    /// Rank the slowest functions from rubra's JSON logs (files, .gz, or - for stdin).
    Slowlog(rubra_slowlog::cli::SlowlogArgs),
    /// Run simulated JSON sources locally (live games with changing odds) for demos and tests.
    Simulate(rubra_simulate::cli::SimulateArgs),
    /// Print the API's OpenAPI 3.1 document (what `GET /openapi.json` answers).
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => with_runtime(serve(args)),
        Command::Worker(args) => with_runtime(worker(args)),
        Command::Admin(args) => with_runtime(admin::run(args)),
        Command::Diff(args) => rubra_jsondiff::cli::run(args),
        Command::Slowlog(args) => rubra_slowlog::cli::run(args),
        Command::Upload(args) => rubra_upload::cli::run(args),
        Command::Simulate(args) => rubra_simulate::cli::run(args),
        Command::Openapi => {
            println!("{}", rubra_server::openapi_json());
            ExitCode::SUCCESS
        }
    }
}

/// Runs an async command on a multi-threaded runtime and maps its outcome to an exit code.
fn with_runtime(fut: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    // Before any thread starts, so that every heap is made with these settings.
    malloc::tune();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rubra: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(fut) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rubra: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Loads and validates settings, then sets up telemetry from them. A bad setting exits 2.
fn settings_and_telemetry(
    args: ConfigArgs,
) -> Result<(Settings, rubra_telemetry::Telemetry), ExitCode> {
    let settings = Settings::load(args).map_err(|e| {
        eprintln!("rubra: {e}");
        ExitCode::from(2)
    })?;
    let telemetry = rubra_telemetry::init(&TelemetryConfig {
        format: settings.log_format,
        slow_ms: settings.slow_ms,
        filter: settings.log_filter.clone(),
    })
    .map_err(|e| {
        eprintln!("rubra: {e}");
        ExitCode::from(2)
    })?;
    Ok((settings, telemetry))
}

async fn serve(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let (settings, telemetry) = match settings_and_telemetry(args) {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let key_path = settings.data_dir.join("admin.key");
    let app = Application::build(settings, telemetry).await?;
    if let Some(key) = app.admin_key() {
        println!(
            "Admin API key (shown once, also saved to {}):",
            key_path.display()
        );
        println!("{}", key.reveal());
    }
    println!("rubra listening on {}://{}", app.scheme(), app.local_addr());
    app.run_until(rubra_server::shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

async fn worker(args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let (settings, _telemetry) = match settings_and_telemetry(args) {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let services = rubra_server::Services::open(settings).await?;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let workers = rubra_server::workers::spawn(&services, &shutdown);
    tracing::info!(instance = %services.instance_id, "worker started; working until SIGINT/SIGTERM");
    rubra_server::shutdown_signal().await;
    shutdown.cancel();
    workers.join().await;
    tracing::info!("worker stopped");
    Ok(ExitCode::SUCCESS)
}
