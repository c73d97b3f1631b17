//! One live game and its change generator: a seeded, pure step from one version of the
//! game's JSON document to the next, returning exactly the edits a JSON diff would report.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::Value;

/// What an edit did at its path, named as in RFC 6902 (and in the watches API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A value that was not there (a market appended to `markets`).
    Add,
    /// A value that is gone (the last market removed).
    Remove,
    /// A leaf that took a new value (odds, prices, the minute, the score).
    Replace,
}

impl Op {
    /// `add`, `remove` or `replace`.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
            Op::Replace => "replace",
        }
    }
}

/// One change between two consecutive versions of a game's document.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Edit {
    /// JSON Pointer (RFC 6901) into the document: for a removed value its position in
    /// the old version, for an added one its position in the new version.
    pub path: String,
    /// Add, remove or replace.
    pub op: Op,
    /// The value before (`None` for an add).
    pub old: Option<Value>,
    /// The value after (`None` for a remove).
    pub new: Option<Value>,
}

/// A betting market of a game: two selections with prices.
#[derive(Clone, Debug)]
struct Market {
    id: u32,
    kind: usize,
    /// Prices of the two selections in hundredths (185 is 1.85).
    prices: [u32; 2],
}

/// Market kinds: a name and the names of its two selections.
const MARKET_KINDS: [(&str, [&str; 2]); 6] = [
    ("Total goals 2.5", ["over", "under"]),
    ("Both teams to score", ["yes", "no"]),
    ("Handicap -1", ["home", "away"]),
    ("Corners 9.5", ["over", "under"]),
    ("Next goal", ["home", "away"]),
    ("Cards 3.5", ["over", "under"]),
];

const TEAMS: [&str; 24] = [
    "Northbridge United",
    "Eastvale City",
    "Redhill Rovers",
    "Kingsport Athletic",
    "Millbrook Town",
    "Ashford Wanderers",
    "Stonebridge FC",
    "Harbour Albion",
    "Westmoor Rangers",
    "Oakfield Villa",
    "Brackenridge",
    "Lowfield Orient",
    "Castlegate",
    "Fairhaven Borough",
    "Ironworks SC",
    "Marlow Heath",
    "Queensway",
    "Riverside Celtic",
    "Saltmarsh",
    "Thornbury Dynamo",
    "Upton Park Rovers",
    "Valeford",
    "Whitecliff",
    "Yarrow Forest",
];

const LEAGUES: [&str; 4] = [
    "Premier Division",
    "Championship",
    "Northern League",
    "Coastal Cup",
];

/// Markets a game keeps at least and at most.
const MIN_MARKETS: usize = 1;
const MAX_MARKETS: usize = 8;
/// Prices stay within 1.01 and 50.00.
const PRICE_MIN: u32 = 101;
const PRICE_MAX: u32 = 5000;
/// A match ends at minute 90: the minute stops changing there.
const LAST_MINUTE: u32 = 90;

/// A live game: its document and the seeded generator of its next versions.
///
/// The sequence of versions depends only on the seed and the game's id, so two
/// simulators started with the same seed serve the same documents version by version.
#[derive(Clone, Debug)]
pub struct Game {
    id: u32,
    league: &'static str,
    teams: [&'static str; 2],
    minute: u32,
    score: [u32; 2],
    /// home, draw, away in hundredths.
    odds: [u32; 3],
    markets: Vec<Market>,
    next_market_id: u32,
    version: u64,
    rng: fastrand::Rng,
}

/// Serialises a price in hundredths as a JSON number with at most 2 decimals.
///
/// `p / 100.0` is the double nearest to the decimal (IEEE division rounds correctly),
/// so its shortest representation is the 2-decimal literal (`185` → `1.85`).
fn price(p: u32) -> f64 {
    f64::from(p) / 100.0
}

impl Serialize for Market {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (name, sel) = MARKET_KINDS[self.kind];
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("name", name)?;
        m.serialize_entry(sel[0], &price(self.prices[0]))?;
        m.serialize_entry(sel[1], &price(self.prices[1]))?;
        m.end()
    }
}

impl Serialize for Game {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // The member order here is the document order that `step` sorts its edits by.
        let mut m = s.serialize_map(Some(8))?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("league", self.league)?;
        m.serialize_entry(
            "teams",
            &Pair(["home", "away"], [self.teams[0], self.teams[1]]),
        )?;
        m.serialize_entry("minute", &self.minute)?;
        m.serialize_entry("score", &Pair(["home", "away"], self.score))?;
        m.serialize_entry(
            "odds",
            &Triple(
                ["home", "draw", "away"],
                [
                    price(self.odds[0]),
                    price(self.odds[1]),
                    price(self.odds[2]),
                ],
            ),
        )?;
        m.serialize_entry("markets", &self.markets)?;
        m.end()
    }
}

/// A two-member object with fixed member names.
struct Pair<T>([&'static str; 2], [T; 2]);
/// A three-member object with fixed member names.
struct Triple<T>([&'static str; 3], [T; 3]);

impl<T: Serialize> Serialize for Pair<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        for (k, v) in self.0.iter().zip(&self.1) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl<T: Serialize> Serialize for Triple<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        for (k, v) in self.0.iter().zip(&self.1) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A leaf that a version change may touch, in document order (the derived `Ord`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Leaf {
    Minute,
    Score(usize),
    Odds(usize),
    /// Market at this position, selection 0 or 1.
    Market(usize, usize),
}

/// Mixes the simulator seed with a game id so that each game has its own stream.
fn game_seed(seed: u64, id: u32) -> u64 {
    // splitmix64 finaliser: nearby (seed, id) pairs give unrelated streams.
    let mut z = seed ^ u64::from(id).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Game {
    /// Game `id` at version 0, drawn from `seed`.
    pub fn new(id: u32, seed: u64) -> Game {
        let mut rng = fastrand::Rng::with_seed(game_seed(seed, id));
        let home = rng.usize(..TEAMS.len());
        let away = (home + 1 + rng.usize(..TEAMS.len() - 1)) % TEAMS.len();
        let n_markets = rng.usize(2..=5);
        let markets = (0..n_markets)
            .map(|i| Market {
                id: i as u32 + 1,
                kind: i % MARKET_KINDS.len(),
                prices: [rng.u32(140..=320), rng.u32(140..=320)],
            })
            .collect();
        Game {
            id,
            league: LEAGUES[rng.usize(..LEAGUES.len())],
            teams: [TEAMS[home], TEAMS[away]],
            minute: rng.u32(0..=60),
            score: [rng.u32(0..=2), rng.u32(0..=2)],
            odds: [rng.u32(150..=400), rng.u32(280..=380), rng.u32(150..=500)],
            markets,
            next_market_id: n_markets as u32 + 1,
            version: 0,
            rng,
        }
    }

    /// The game's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// How many versions came after the first one (0 for a new game).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// The current document as compact JSON.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(512);
        // Writing plain structs to a Vec cannot fail.
        let _ = self.serialize(&mut serde_json::Serializer::new(&mut out));
        String::from_utf8(out).unwrap_or_default()
    }

    /// The current document as a JSON value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Moves to the next version and returns what changed, in document order.
    ///
    /// A version either changes 1–3 distinct leaves (mostly odds and market prices,
    /// sometimes the minute, rarely the score), appends a market, or removes the last
    /// one. Appending and removing at the end keep an ordered array diff unambiguous:
    /// the common prefix is the whole shorter array, so the edit is reported at
    /// exactly that index. Every edit really changes its value, so the list is what
    /// `rubra_jsondiff::diff` with exact tolerance reports between the two versions.
    pub fn step(&mut self) -> Vec<Edit> {
        self.version += 1;
        let roll = self.rng.u32(..100);
        if roll < 6 && self.markets.len() < MAX_MARKETS {
            return vec![self.append_market()];
        }
        if roll < 10 && self.markets.len() > MIN_MARKETS {
            return vec![self.remove_market()];
        }
        let k = match self.rng.u32(..100) {
            0..50 => 1,
            50..85 => 2,
            _ => 3,
        };
        let mut leaves = Vec::with_capacity(k);
        while leaves.len() < k {
            let leaf = self.pick_leaf();
            if !leaves.contains(&leaf) {
                leaves.push(leaf);
            }
        }
        // Edits are reported in document order, the order of `Leaf`.
        leaves.sort();
        leaves.into_iter().map(|l| self.change_leaf(l)).collect()
    }

    /// A leaf drawn with weights: each of the three odds 15, each market price 5, the
    /// minute 5 (until minute 90), each score 1 (a goal is rare).
    fn pick_leaf(&mut self) -> Leaf {
        let minute_w = if self.minute < LAST_MINUTE { 5 } else { 0 };
        let markets_w = 5 * 2 * self.markets.len() as u32;
        let total = minute_w + 2 + 3 * 15 + markets_w;
        let mut r = self.rng.u32(..total);
        if r < minute_w {
            return Leaf::Minute;
        }
        r -= minute_w;
        if r < 2 {
            return Leaf::Score(r as usize);
        }
        r -= 2;
        if r < 45 {
            return Leaf::Odds((r / 15) as usize);
        }
        r -= 45;
        let r = (r / 5) as usize;
        Leaf::Market(r / 2, r % 2)
    }

    fn change_leaf(&mut self, leaf: Leaf) -> Edit {
        let (path, old, new) = match leaf {
            Leaf::Minute => {
                let old = self.minute;
                self.minute += 1;
                (
                    "/minute".to_owned(),
                    Value::from(old),
                    Value::from(self.minute),
                )
            }
            Leaf::Score(side) => {
                let old = self.score[side];
                self.score[side] += 1;
                let name = ["home", "away"][side];
                (
                    format!("/score/{name}"),
                    Value::from(old),
                    Value::from(self.score[side]),
                )
            }
            Leaf::Odds(i) => {
                let old = self.odds[i];
                let new = move_price(&mut self.rng, old);
                self.odds[i] = new;
                let name = ["home", "draw", "away"][i];
                (
                    format!("/odds/{name}"),
                    Value::from(price(old)),
                    Value::from(price(new)),
                )
            }
            Leaf::Market(m, sel) => {
                let old = self.markets[m].prices[sel];
                let new = move_price(&mut self.rng, old);
                self.markets[m].prices[sel] = new;
                let name = MARKET_KINDS[self.markets[m].kind].1[sel];
                (
                    format!("/markets/{m}/{name}"),
                    Value::from(price(old)),
                    Value::from(price(new)),
                )
            }
        };
        Edit {
            path,
            op: Op::Replace,
            old: Some(old),
            new: Some(new),
        }
    }

    fn append_market(&mut self) -> Edit {
        let id = self.next_market_id;
        self.next_market_id += 1;
        let market = Market {
            id,
            kind: self.rng.usize(..MARKET_KINDS.len()),
            prices: [self.rng.u32(140..=320), self.rng.u32(140..=320)],
        };
        let edit = Edit {
            path: format!("/markets/{}", self.markets.len()),
            op: Op::Add,
            old: None,
            new: Some(market_value(&market)),
        };
        self.markets.push(market);
        edit
    }

    fn remove_market(&mut self) -> Edit {
        let at = self.markets.len() - 1;
        let market = self.markets.remove(at);
        Edit {
            path: format!("/markets/{at}"),
            op: Op::Remove,
            old: Some(market_value(&market)),
            new: None,
        }
    }
}

fn market_value(m: &Market) -> Value {
    m.serialize(serde_json::value::Serializer)
        .unwrap_or(Value::Null)
}

/// A new price near `old`: a step of 0.01–0.25 up or down, kept within bounds and
/// never equal to `old` (an edit that changes nothing would not be a change).
fn move_price(rng: &mut fastrand::Rng, old: u32) -> u32 {
    let step = rng.u32(1..=25);
    let up = rng.bool();
    let new = if up {
        old + step
    } else {
        old.saturating_sub(step)
    };
    let new = new.clamp(PRICE_MIN, PRICE_MAX);
    if new != old {
        new
    } else if old >= PRICE_MAX {
        old - step
    } else {
        old + step
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_have_two_decimals() {
        for p in [101, 110, 185, 200, 333, 4999] {
            let s = Value::from(price(p)).to_string();
            let decimals = s.split('.').nth(1).map_or(0, str::len);
            assert!(decimals <= 2, "{p} → {s}");
        }
    }

    #[test]
    fn move_price_always_moves_and_stays_in_bounds() {
        let mut rng = fastrand::Rng::with_seed(3);
        for old in [PRICE_MIN, PRICE_MIN + 1, 500, PRICE_MAX - 1, PRICE_MAX] {
            for _ in 0..200 {
                let new = move_price(&mut rng, old);
                assert_ne!(new, old);
                assert!((PRICE_MIN..=PRICE_MAX).contains(&new), "{old} → {new}");
            }
        }
    }

    #[test]
    fn same_seed_same_versions() {
        let (mut a, mut b) = (Game::new(4, 99), Game::new(4, 99));
        for _ in 0..50 {
            assert_eq!(a.step(), b.step());
            assert_eq!(a.to_json(), b.to_json());
        }
        assert_ne!(Game::new(4, 99).to_json(), Game::new(4, 100).to_json());
        assert_ne!(Game::new(4, 99).to_json(), Game::new(5, 99).to_json());
    }

    #[test]
    fn document_has_the_live_match_shape() {
        let g = Game::new(1, 7);
        let v: Value = serde_json::from_str(&g.to_json()).unwrap();
        assert_eq!(v["id"], 1);
        assert!(v["teams"]["home"].is_string() && v["teams"]["away"].is_string());
        assert_ne!(v["teams"]["home"], v["teams"]["away"]);
        assert!(v["minute"].is_u64());
        assert!(v["score"]["home"].is_u64());
        for k in ["home", "draw", "away"] {
            assert!(v["odds"][k].as_f64().unwrap() >= 1.01);
        }
        assert!(
            v["markets"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["id"].is_u64())
        );
        assert_eq!(v, g.to_value());
    }
}
