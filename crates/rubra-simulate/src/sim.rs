//! The running simulator: its configuration, the shared state of every game, the
//! scheduler that moves games to their next version, and the handle tests hold.

use crate::SimError;
use crate::game::{Edit, Game, Op};
use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How the simulator runs.
///
/// # The minimum gap
///
/// Two versions of one game are at least [`min_gap`](Self::min_gap) apart (default
/// 1.5 s): every version is served for at least that long. A poller that polls every
/// second, give or take the up to 0.5 s its requests take or drift, therefore fetches
/// every version at least once, so the diffs it computes between consecutive fetches
/// are exactly the changes the simulator made, one version at a time. Were two
/// versions closer than the polling interval, a poll could skip one and see two
/// versions' edits merged (a price moved twice shows as one change, a move and its
/// reversal as none), and no poller could match the change log.
#[derive(Clone, Debug)]
pub struct OddsConfig {
    /// Address to listen on; port 0 picks a free one (default `127.0.0.1:0`).
    pub listen: SocketAddr,
    /// Number of games, with ids `1..=games` (default 100).
    pub games: u32,
    /// Seed of the documents and of the timing (default 1).
    pub seed: u64,
    /// Mean time between two versions of one game (default 2 s).
    pub mean_change: Duration,
    /// Minimum time between two versions of one game (default 1.5 s): see above.
    pub min_gap: Duration,
    /// Start paused: no game changes until [`OddsSim::resume`] (default false).
    pub paused: bool,
    /// Most changes kept in the log; older ones are dropped (default 1 000 000).
    pub log_capacity: usize,
}

impl Default for OddsConfig {
    fn default() -> Self {
        OddsConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            games: 100,
            seed: 1,
            mean_change: Duration::from_secs(2),
            min_gap: Duration::from_millis(1500),
            paused: false,
            log_capacity: 1_000_000,
        }
    }
}

/// Most games one simulator serves.
pub const MAX_GAMES: u32 = 100_000;

impl OddsConfig {
    /// Checks the values; the error names the offending key.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad =
            |key: &'static str, message: String| Err(SimError::InvalidConfig { key, message });
        if self.games == 0 || self.games > MAX_GAMES {
            return bad("games", format!("must be within 1..={MAX_GAMES}"));
        }
        if self.mean_change.is_zero() {
            return bad("mean_change", "must be above zero".into());
        }
        if self.mean_change < self.min_gap {
            return bad(
                "mean_change",
                format!(
                    "{} ms is below min_gap ({} ms): a mean cannot be below a minimum",
                    self.mean_change.as_millis(),
                    self.min_gap.as_millis()
                ),
            );
        }
        if self.log_capacity == 0 {
            return bad("log_capacity", "must be above zero".into());
        }
        Ok(())
    }
}

/// One change the simulator made, as `GET /changes` reports it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Change {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// When the new version became visible, epoch milliseconds.
    pub ts: u64,
    /// The game's id.
    pub game: u32,
    /// The version the change produced (the first change gives version 1).
    pub version: u64,
    /// JSON Pointer into the game's document.
    pub path: String,
    /// Add, remove or replace.
    pub op: Op,
    /// The value before (`null` for an add).
    pub old: Option<Value>,
    /// The value after (`null` for a remove).
    pub new: Option<Value>,
}

/// What `GET /games/{n}` serves for one game.
pub(crate) struct Served {
    pub body: Bytes,
    pub etag: String,
    pub down: bool,
}

struct Slot {
    game: Game,
    body: Bytes,
    etag: String,
    down: bool,
    /// When the current version became visible.
    since: Instant,
    /// When the next version is due (meaningless while paused).
    due: Instant,
}

struct State {
    slots: Vec<Slot>,
    paused: bool,
    log: VecDeque<Change>,
    next_seq: u64,
    /// Draws the times between versions; separate from the games' own generators
    /// so that the documents depend on the seed alone.
    timing: fastrand::Rng,
}

/// Everything the scheduler and the HTTP handlers share.
pub(crate) struct Shared {
    state: Mutex<State>,
    wake: Notify,
    pub(crate) config: OddsConfig,
    pub(crate) base_url: String,
    /// Epoch milliseconds at `origin`: timestamps follow the monotonic clock the
    /// scheduler uses, so the minimum gap shows in them exactly.
    epoch_ms: u64,
    origin: Instant,
}

fn etag(seed: u64, game: &Game) -> String {
    format!("\"{seed:x}-{}-{}\"", game.id(), game.version())
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every update is
        // applied whole before anything can panic), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ts(&self, at: Instant) -> u64 {
        self.epoch_ms + at.saturating_duration_since(self.origin).as_millis() as u64
    }

    /// The document of `game`, or `None` for an unknown id.
    pub(crate) fn served(&self, game: u32) -> Option<Served> {
        let st = self.lock();
        let slot = st.slots.get(index(game)?)?;
        Some(Served {
            body: slot.body.clone(),
            etag: slot.etag.clone(),
            down: slot.down,
        })
    }

    pub(crate) fn versions(&self) -> Vec<(u32, u64)> {
        let st = self.lock();
        st.slots
            .iter()
            .map(|s| (s.game.id(), s.game.version()))
            .collect()
    }

    pub(crate) fn status(&self) -> Status {
        let st = self.lock();
        Status {
            games: self.config.games,
            seed: self.config.seed,
            paused: st.paused,
            down: st
                .slots
                .iter()
                .filter(|s| s.down)
                .map(|s| s.game.id())
                .collect(),
            last_seq: st.next_seq - 1,
            versions: st.slots.iter().map(|s| s.game.version()).sum(),
        }
    }

    pub(crate) fn changes_since(&self, since: u64, game: Option<u32>, limit: usize) -> Vec<Change> {
        let st = self.lock();
        let first = st.log.front().map_or(st.next_seq, |c| c.seq);
        let skip = since.saturating_add(1).saturating_sub(first) as usize;
        st.log
            .iter()
            .skip(skip)
            .filter(|c| game.is_none_or(|g| c.game == g))
            .take(limit)
            .cloned()
            .collect()
    }

    pub(crate) fn set_paused(&self, paused: bool) {
        let mut st = self.lock();
        if st.paused == paused {
            return;
        }
        st.paused = paused;
        if !paused {
            let now = Instant::now();
            let (mean, gap) = (self.config.mean_change, self.config.min_gap);
            let State { slots, timing, .. } = &mut *st;
            for slot in slots {
                // Spread the first versions after a resume over one mean interval
                // rather than firing every overdue game at once, and keep the gap.
                slot.due = (slot.since + gap).max(now + mean.mul_f64(timing.f64()));
            }
        }
        drop(st);
        self.wake.notify_one();
    }

    pub(crate) fn set_down(&self, game: Option<u32>, down: bool) -> Result<(), SimError> {
        let mut st = self.lock();
        match game {
            None => st.slots.iter_mut().for_each(|s| s.down = down),
            Some(g) => {
                let slot = index(g)
                    .and_then(|i| st.slots.get_mut(i))
                    .ok_or(SimError::UnknownGame(g))?;
                slot.down = down;
            }
        }
        Ok(())
    }

    /// Moves every due game to its next version; returns when the next one is due.
    fn tick(&self) -> Option<Instant> {
        let mut st = self.lock();
        if st.paused {
            return None;
        }
        let now = Instant::now();
        let ts = self.ts(now);
        let (mean, gap) = (self.config.mean_change, self.config.min_gap);
        // The part of the mean above the minimum gap is exponential, so versions
        // come as a Poisson-like stream that never violates the gap.
        let extra = mean - gap;
        let State {
            slots,
            log,
            next_seq,
            timing,
            ..
        } = &mut *st;
        let mut next: Option<Instant> = None;
        for slot in slots.iter_mut() {
            if slot.due <= now {
                let edits = slot.game.step();
                slot.body = Bytes::from(slot.game.to_json());
                slot.etag = etag(self.config.seed, &slot.game);
                slot.since = now;
                let exp = -(1.0 - timing.f64()).ln();
                slot.due = now + gap + extra.mul_f64(exp);
                let (game, version) = (slot.game.id(), slot.game.version());
                for Edit { path, op, old, new } in edits {
                    if log.len() == self.config.log_capacity {
                        log.pop_front();
                    }
                    log.push_back(Change {
                        seq: *next_seq,
                        ts,
                        game,
                        version,
                        path,
                        op,
                        old,
                        new,
                    });
                    *next_seq += 1;
                }
            }
            next = Some(next.map_or(slot.due, |n| n.min(slot.due)));
        }
        next
    }
}

fn index(game: u32) -> Option<usize> {
    (game as usize).checked_sub(1)
}

/// The simulator's state as `GET /status` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct Status {
    /// Number of games.
    pub games: u32,
    /// The seed.
    pub seed: u64,
    /// Whether games are frozen.
    pub paused: bool,
    /// Ids of the games that answer 503.
    pub down: Vec<u32>,
    /// Sequence number of the last change (0 before the first).
    pub last_seq: u64,
    /// Versions made so far, all games together.
    pub versions: u64,
}

/// A running simulator: an HTTP server on [`addr`](Self::addr) serving live games whose
/// documents change at random, and the log of every change it made.
///
/// Dropping the handle stops the server and the scheduler (as [`shutdown`](Self::shutdown)
/// does, without waiting).
pub struct OddsSim {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    scheduler: Option<JoinHandle<()>>,
}

impl OddsSim {
    /// Validates `config`, binds its address and starts serving on the current Tokio
    /// runtime.
    pub async fn start(config: OddsConfig) -> Result<OddsSim, SimError> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Bind {
            addr: config.listen,
            source,
        })?;
        let now = Instant::now();
        let epoch_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let slots = (1..=config.games)
            .map(|id| {
                let game = Game::new(id, config.seed);
                Slot {
                    body: Bytes::from(game.to_json()),
                    etag: etag(config.seed, &game),
                    game,
                    down: false,
                    since: now,
                    due: now,
                }
            })
            .collect();
        let state = State {
            slots,
            // Set below through `set_paused`, which draws the first due times.
            paused: true,
            log: VecDeque::new(),
            next_seq: 1,
            timing: fastrand::Rng::with_seed(config.seed ^ 0x5EED_0DD5),
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            wake: Notify::new(),
            base_url: format!("http://{addr}"),
            config,
            epoch_ms,
            origin: now,
        });
        shared.set_paused(shared.config.paused);
        let (stop, stopped) = watch::channel(false);
        let scheduler = tokio::spawn(schedule(shared.clone(), stopped.clone()));
        let server = tokio::spawn(crate::http::serve(listener, shared.clone(), stopped));
        Ok(OddsSim {
            shared,
            addr,
            stop,
            server: Some(server),
            scheduler: Some(scheduler),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `http://ADDR/games`: the list of games and their URLs.
    pub fn games_url(&self) -> String {
        format!("{}/games", self.shared.base_url)
    }

    /// `http://ADDR/games/{n}`: game `n`'s document (ids are `1..=games`).
    pub fn game_url(&self, n: u32) -> String {
        format!("{}/games/{n}", self.shared.base_url)
    }

    /// The configuration it runs with (with the port it got, if 0 was asked).
    pub fn config(&self) -> &OddsConfig {
        &self.shared.config
    }

    /// Every change made so far that the log still holds, oldest first.
    pub fn changes(&self) -> Vec<Change> {
        self.changes_since(0)
    }

    /// The changes with a sequence number above `seq`, oldest first.
    pub fn changes_since(&self, seq: u64) -> Vec<Change> {
        self.shared.changes_since(seq, None, usize::MAX)
    }

    /// Game `n`'s current document as served (also while it is down), or `None`.
    pub fn document(&self, n: u32) -> Option<String> {
        let served = self.shared.served(n)?;
        Some(String::from_utf8_lossy(&served.body).into_owned())
    }

    /// The state: paused, games down, last sequence number.
    pub fn status(&self) -> Status {
        self.shared.status()
    }

    /// Freezes every game: no change is made after this returns.
    pub fn pause(&self) {
        self.shared.set_paused(true);
    }

    /// Lets games change again; each keeps the minimum gap since its last version.
    pub fn resume(&self) {
        self.shared.set_paused(false);
    }

    /// Makes game `game` (or every game, for `None`) answer `503` (`down`) or serve
    /// its document again. A game that is down keeps changing (unless paused), as a
    /// real source behind a failing proxy does: a poller sees the versions it missed
    /// merged into one diff when it comes back.
    pub fn set_down(&self, game: Option<u32>, down: bool) -> Result<(), SimError> {
        self.shared.set_down(game, down)
    }

    /// Stops the scheduler and the server, letting requests in flight finish.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in [self.scheduler.take(), self.server.take()]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
    }
}

impl Drop for OddsSim {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in [self.scheduler.take(), self.server.take()]
            .into_iter()
            .flatten()
        {
            task.abort();
        }
    }
}

/// Sleeps until the next game is due (or a control call wakes it) and applies changes.
async fn schedule(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let next = shared.tick();
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            _ = shared.wake.notified() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
