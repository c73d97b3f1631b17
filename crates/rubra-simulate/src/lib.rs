//! Simulated JSON sources on a local HTTP server, for the watches' tests, their benchmark
//! and demos: live football games whose odds change at random, seeded, with a log of
//! every change made so that a poller's record can be checked against the truth.
//!
//! ```no_run
//! # async fn demo() -> Result<(), rubra_simulate::SimError> {
//! use rubra_simulate::{OddsConfig, OddsSim};
//!
//! let sim = OddsSim::start(OddsConfig { games: 3, seed: 7, ..OddsConfig::default() }).await?;
//! println!("game 1 at {}", sim.game_url(1));
//! sim.pause();
//! for change in sim.changes() {
//!     println!("{} {} {} {:?} → {:?}", change.game, change.op.as_str(), change.path, change.old, change.new);
//! }
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! # HTTP
//!
//! - `GET /games` → `{"games": [{"id", "url", "version"}]}`.
//! - `GET /games/{n}` → game `n`'s document with a strong `ETag`; `If-None-Match`
//!   with it → `304`; `503` while the game is down, `404` for an unknown id.
//! - `GET /changes?since=SEQ[&game=N][&limit=L]` → `{"changes": [{"seq", "ts", "game",
//!   "version", "path", "op", "old", "new"}], "next_since"}`: `ts` in epoch ms, `path` a
//!   JSON Pointer into the game's document, `op` `add|remove|replace`, `old`/`new` JSON
//!   values (`null` when absent).
//! - `GET /status`; `POST /control/pause`, `/control/resume`, `/control/down[?game=N]`,
//!   `/control/up[?game=N]` (no `game`: all of them); each answers with the status.
//!
//! # The changes
//!
//! Each reported change is exactly what `rubra_jsondiff::diff` with exact tolerance and
//! ordered arrays reports between the two versions (the integration tests check it for
//! many seeds), and two versions of a game are at least [`OddsConfig::min_gap`] apart,
//! so a poller polling faster than that sees every version.
#![deny(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
mod game;
mod http;
mod sim;

pub use game::{Edit, Game, Op};
pub use sim::{Change, MAX_GAMES, OddsConfig, OddsSim, Status};

/// Everything that can go wrong starting or steering a simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A configuration value is out of range.
    #[error("invalid {key}: {message}")]
    InvalidConfig {
        /// The key, as named in [`OddsConfig`].
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// No game has this id.
    #[error("no game {0}: ids are 1..=games")]
    UnknownGame(u32),
}
