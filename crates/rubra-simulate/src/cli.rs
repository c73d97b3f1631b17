//! The `rubra simulate` command line: `rubra simulate odds` runs the live-odds simulator
//! until Ctrl-C. Exit codes: 0 stopped by Ctrl-C, 1 cannot listen, 2 bad arguments.

use crate::{OddsConfig, OddsSim, SimError};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

/// Arguments of `rubra simulate`.
#[derive(Clone, Debug, clap::Args)]
#[command(about = "Run simulated JSON sources locally, for demos, tests and benchmarks")]
pub struct SimulateArgs {
    /// What to simulate.
    #[command(subcommand)]
    pub source: Source,
}

/// The sources that can be simulated.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum Source {
    /// Live games whose odds change at random (seeded); logs every change it makes.
    Odds(OddsArgs),
}

/// Arguments of `rubra simulate odds`.
#[derive(Clone, Debug, clap::Args)]
#[command(
    after_help = "Endpoints: GET /games, GET /games/{n} (ETag, If-None-Match -> 304), \
GET /changes?since=SEQ[&game=N], GET /status, POST /control/pause|resume, \
POST /control/down|up[?game=N].\n\n\
Two versions of one game are at least --min-gap-ms apart, so a poller polling every second \
sees every version with the default 1500 ms."
)]
pub struct OddsArgs {
    /// Number of games, with ids 1..=N.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub games: u32,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8090", value_name = "ADDR")]
    pub listen: SocketAddr,
    /// Seed of the documents and timings [default: random, printed].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Mean time between two versions of one game, in milliseconds.
    #[arg(long, default_value_t = 2000, value_name = "MS")]
    pub mean_change_ms: u64,
    /// Minimum time between two versions of one game, in milliseconds.
    #[arg(long, default_value_t = 1500, value_name = "MS")]
    pub min_gap_ms: u64,
    /// Start paused (POST /control/resume starts the games).
    #[arg(long)]
    pub paused: bool,
}

impl OddsArgs {
    /// The simulator configuration these arguments ask for.
    pub fn config(&self) -> OddsConfig {
        OddsConfig {
            listen: self.listen,
            games: self.games,
            seed: self.seed.unwrap_or_else(|| fastrand::u64(..)),
            mean_change: Duration::from_millis(self.mean_change_ms),
            min_gap: Duration::from_millis(self.min_gap_ms),
            paused: self.paused,
            ..OddsConfig::default()
        }
    }
}

/// Runs `rubra simulate …` until Ctrl-C.
pub fn run(args: SimulateArgs) -> ExitCode {
    let Source::Odds(odds) = args.source;
    let config = odds.config();
    if let Err(e) = config.validate() {
        eprintln!("rubra simulate: {e}");
        return ExitCode::from(2);
    }
    // One thread is plenty for a few hundred requests a second and leaves the cores to
    // the program under test.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rubra simulate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match odds_until_ctrl_c(config).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e @ SimError::InvalidConfig { .. }) => {
                eprintln!("rubra simulate: {e}");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("rubra simulate: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn odds_until_ctrl_c(config: OddsConfig) -> Result<(), SimError> {
    let (games, seed, paused) = (config.games, config.seed, config.paused);
    let sim = OddsSim::start(config).await?;
    println!("rubra simulate listening on {}", sim.base_url());
    println!(
        "games: {} ({games} games, seed {seed}{}); changes: {}/changes?since=0",
        sim.games_url(),
        if paused { ", paused" } else { "" },
        sim.base_url()
    );
    // Without a signal handler the default action ends the process just as well.
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        source: Source,
    }

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_match_the_documented_rule() {
        let cli = Cli::parse_from(["simulate", "odds", "--seed", "5"]);
        let Source::Odds(args) = cli.source;
        let c = args.config();
        assert_eq!((c.games, c.seed, c.paused), (100, 5, false));
        assert_eq!(c.mean_change, Duration::from_secs(2));
        assert_eq!(c.min_gap, Duration::from_millis(1500));
        assert!(c.validate().is_ok());
    }

    #[test]
    fn a_mean_below_the_minimum_gap_is_refused() {
        let cli = Cli::parse_from(["simulate", "odds", "--mean-change-ms", "100"]);
        let Source::Odds(args) = cli.source;
        let err = args.config().validate().unwrap_err();
        assert!(err.to_string().contains("mean_change"), "{err}");
    }
}
