//! Shared helpers: a simulator per test on port 0, an HTTP client, and applying a
//! change to a document by its JSON Pointer.

use rubra_simulate::{OddsConfig, OddsSim, Op};
use serde_json::Value;
use std::time::Duration;

/// A fast simulator: versions every 20–40 ms, so tests see many without waiting long.
pub async fn fast_sim(games: u32, paused: bool) -> OddsSim {
    OddsSim::start(OddsConfig {
        games,
        seed: 42,
        mean_change: Duration::from_millis(30),
        min_gap: Duration::from_millis(20),
        paused,
        ..OddsConfig::default()
    })
    .await
    .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Waits (up to 20 s, then fails) until `cond` holds: [`rubra_testkit::eventually`] for a
/// condition read without awaiting.
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    rubra_testkit::eventually(Duration::from_secs(20), || {
        let holds = cond();
        async move { if holds { Ok(()) } else { Err(what) } }
    })
    .await
}

/// Applies one change to `doc`: `add` inserts at an array index (or sets a member),
/// `remove` takes it out, `replace` overwrites.
pub fn apply(doc: &mut Value, path: &str, op: Op, new: Option<Value>) {
    if op == Op::Replace {
        *doc.pointer_mut(path).unwrap() = new.unwrap();
        return;
    }
    let (parent, last) = path.rsplit_once('/').unwrap();
    let last = last.replace("~1", "/").replace("~0", "~");
    match (op, doc.pointer_mut(parent).unwrap()) {
        (Op::Add, Value::Array(a)) => a.insert(last.parse().unwrap(), new.unwrap()),
        (Op::Add, Value::Object(o)) => {
            o.insert(last, new.unwrap());
        }
        (Op::Remove, Value::Array(a)) => {
            a.remove(last.parse().unwrap());
        }
        (Op::Remove, Value::Object(o)) => {
            o.remove(&last);
        }
        (op, t) => panic!("cannot {op:?} at {path} in {t}"),
    }
}
