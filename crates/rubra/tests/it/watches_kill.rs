//! Watches against the live-odds simulator, across real processes: every change the simulator
//! made is recorded exactly once and in order, also when the process polling the watches is
//! killed with `kill -9` and another takes them over after the lease expires.
//!
//! Three processes share one database (a SQLite file, and PostgreSQL when configured): the
//! API (`--watch-capacity 0`, it polls nothing), poller A, and poller B started after A died.

use crate::helpers::{create_client, get, start_api, start_worker};

use rubra_simulate::{OddsConfig, OddsSim};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

const GAMES: u32 = 8;

/// Waits until every watch satisfies `done`; returns them.
async fn wait_all(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    rubra_testkit::eventually(Duration::from_secs(45), || async {
        let list = get(http, base, key, "/watches").await;
        let items = list["items"].as_array().unwrap().clone();
        if items.len() == GAMES as usize && items.iter().all(&done) {
            Ok(items)
        } else {
            Err(format!("watches never {what}: {list}"))
        }
    })
    .await
}

/// `path op old new` of each change, values as parsed JSON (1.90 and 1.9 are the same).
fn show(path: &str, op: &str, old: &Value, new: &Value) -> String {
    format!("{path} {op} {old} {new}")
}

async fn killed_poller_is_replaced_and_no_change_is_lost_or_doubled(database_url: Option<String>) {
    let sim = OddsSim::start(OddsConfig {
        games: GAMES,
        seed: 42,
        paused: true,
        ..OddsConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut common = vec![
        "--data-dir".to_owned(),
        dir.path().join("data").display().to_string(),
        "--fetch-allow".to_owned(),
        "127.0.0.1".to_owned(),
        "--watch-lease-ms".to_owned(),
        "2000".to_owned(),
        "--log-format".to_owned(),
        "json".to_owned(),
    ];
    if let Some(url) = database_url {
        common.extend(["--database-url".to_owned(), url]);
    }
    let (_api, base, admin) = start_api(&["--watch-capacity", "0"], &common);
    let http = reqwest::Client::new();
    let key = create_client(&http, &base, &admin, "bookmaker").await;
    let mut game_of = BTreeMap::new();
    for game in 1..=GAMES {
        let resp = http
            .post(format!("{base}/watches"))
            .bearer_auth(&key)
            .json(&json!({"url": sim.game_url(game), "interval_ms": 500}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let w: Value = resp.json().await.unwrap();
        game_of.insert(w["id"].as_str().unwrap().to_owned(), game);
    }

    // Poller A takes every watch and sets the baselines; then the games start changing.
    let mut a = start_worker(&["--job-workers", "0"], &common);
    let held = wait_all(&http, &base, &key, "got a baseline from A", |w| {
        w["baseline_at"].is_string() && w["polled_by"].is_string()
    })
    .await;
    let a_id = held[0]["polled_by"].clone();
    assert!(held.iter().all(|w| w["polled_by"] == a_id), "one poller");
    sim.resume();
    tokio::time::sleep(Duration::from_secs(5)).await;

    // kill -9: A cannot release its leases. Changes made after its last poll wait for B.
    a.0.kill().unwrap();
    a.0.wait().unwrap();
    sim.pause();
    let before_kill = sim.changes().len();
    assert!(before_kill > 0, "the games changed while A polled");
    let _b = start_worker(&["--job-workers", "0"], &common);
    wait_all(&http, &base, &key, "taken over by B", |w| {
        w["polled_by"].is_string() && w["polled_by"] != a_id
    })
    .await;
    sim.resume();
    tokio::time::sleep(Duration::from_secs(4)).await;
    sim.pause();
    // Three intervals: the last versions are polled.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let made = sim.changes();
    assert!(
        made.len() > before_kill,
        "the games changed after the takeover"
    );
    let mut expected: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for c in &made {
        expected.entry(c.game).or_default().push(show(
            &c.path,
            c.op.as_str(),
            c.old.as_ref().unwrap_or(&Value::Null),
            c.new.as_ref().unwrap_or(&Value::Null),
        ));
    }
    let mut recorded_total = 0;
    for (id, game) in &game_of {
        let page = get(&http, &base, &key, &format!("/watches/{id}/changes")).await;
        let recorded: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                show(
                    c["path"].as_str().unwrap(),
                    c["op"].as_str().unwrap(),
                    &c["old"],
                    &c["new"],
                )
            })
            .collect();
        recorded_total += recorded.len();
        assert_eq!(
            recorded,
            expected.remove(game).unwrap_or_default(),
            "game {game}: recorded vs made"
        );
    }
    assert_eq!(recorded_total, made.len());
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_poller_on_sqlite_loses_and_doubles_no_change() {
    killed_poller_is_replaced_and_no_change_is_lost_or_doubled(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_poller_on_postgres_loses_and_doubles_no_change() {
    let Some(url) = rubra_testkit::fresh_postgres("watches_kill_9").await else {
        return;
    };
    killed_poller_is_replaced_and_no_change_is_lost_or_doubled(Some(url)).await;
}
