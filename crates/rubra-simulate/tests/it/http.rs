//! The simulator over HTTP on a real port.

use crate::helpers::{apply, client, fast_sim, wait_until};
use reqwest::StatusCode;
use rubra_simulate::{OddsConfig, OddsSim, SimError};
use serde_json::Value;
use std::time::Duration;

async fn get_json(url: &str) -> Value {
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.json().await.unwrap()
}

async fn post(url: &str) -> Value {
    let r = client().post(url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    r.json().await.unwrap()
}

#[tokio::test]
async fn games_lists_every_game_with_its_url() {
    let sim = fast_sim(5, true).await;
    let list = get_json(&sim.games_url()).await;
    let games = list["games"].as_array().unwrap();
    assert_eq!(games.len(), 5);
    for (i, g) in games.iter().enumerate() {
        let id = i as u32 + 1;
        assert_eq!(g["id"], id);
        assert_eq!(g["url"], sim.game_url(id));
        let doc = get_json(&sim.game_url(id)).await;
        assert_eq!(doc["id"], id);
        let served: Value = serde_json::from_str(&sim.document(id).unwrap()).unwrap();
        assert_eq!(doc, served);
    }
    let r = client().get(sim.game_url(6)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "unknown_game");
    sim.shutdown().await;
}

#[tokio::test]
async fn etag_gives_304_until_the_game_changes() {
    let sim = fast_sim(1, true).await;
    let url = sim.game_url(1);
    let first = client().get(&url).send().await.unwrap();
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong ETag: {etag}"
    );
    let body = first.text().await.unwrap();

    let again = client()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    // A list that holds it, and the weak form, match too (RFC 9110 weak comparison).
    for header in [format!("\"x\", {etag}"), format!("W/{etag}"), "*".into()] {
        let r = client()
            .get(&url)
            .header("if-none-match", header.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{header}");
    }

    sim.resume();
    wait_until("a new version", || !sim.changes().is_empty()).await;
    sim.pause();
    let changed = client()
        .get(&url)
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"], etag.as_str());
    assert_ne!(changed.text().await.unwrap(), body);
    sim.shutdown().await;
}

#[tokio::test]
async fn pause_freezes_every_game_and_resume_restarts_them() {
    let sim = fast_sim(10, true).await;
    // Started paused: nothing moves, however long we look.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sim.changes().is_empty());
    assert_eq!(sim.status().last_seq, 0);

    let st = post(&format!("{}/control/resume", sim.base_url())).await;
    assert_eq!(st["paused"], false);
    wait_until("changes after resume", || sim.changes().len() > 20).await;

    let st = post(&format!("{}/control/pause", sim.base_url())).await;
    assert_eq!(st["paused"], true);
    let frozen = sim.changes().len();
    let docs: Vec<_> = (1..=10).map(|n| sim.document(n).unwrap()).collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sim.changes().len(), frozen);
    assert_eq!(
        docs,
        (1..=10)
            .map(|n| sim.document(n).unwrap())
            .collect::<Vec<_>>()
    );

    sim.resume();
    wait_until("changes after the second resume", || {
        sim.changes().len() > frozen
    })
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn a_game_that_is_down_answers_503_and_comes_back() {
    let sim = fast_sim(3, true).await;
    let base = sim.base_url().to_owned();
    let st = post(&format!("{base}/control/down?game=2")).await;
    assert_eq!(st["down"], serde_json::json!([2]));
    let r = client().get(sim.game_url(2)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "source_down");
    for n in [1, 3] {
        get_json(&sim.game_url(n)).await;
    }

    post(&format!("{base}/control/down")).await;
    for n in 1..=3 {
        let r = client().get(sim.game_url(n)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE, "game {n}");
    }
    sim.set_down(Some(3), false).unwrap();
    get_json(&sim.game_url(3)).await;

    let st = post(&format!("{base}/control/up")).await;
    assert_eq!(st["down"], serde_json::json!([]));
    for n in 1..=3 {
        get_json(&sim.game_url(n)).await;
    }
    assert!(matches!(
        sim.set_down(Some(4), true),
        Err(SimError::UnknownGame(4))
    ));
    let r = client()
        .post(format!("{base}/control/down?game=9"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    sim.shutdown().await;
}

/// The log is the truth: the first documents with every logged change applied, in
/// order, are the documents served now; sequence numbers have no gaps; versions of
/// one game are at least the minimum gap apart.
#[tokio::test]
async fn the_change_log_replays_to_the_served_documents() {
    let sim = fast_sim(4, true).await;
    let mut docs: Vec<Value> = Vec::new();
    for n in 1..=4 {
        docs.push(get_json(&sim.game_url(n)).await);
    }
    sim.resume();
    wait_until("a few hundred changes", || sim.changes().len() > 300).await;
    sim.pause();

    let log = get_json(&format!("{}/changes?since=0", sim.base_url())).await;
    let changes = log["changes"].as_array().unwrap();
    assert_eq!(changes.len(), sim.changes().len());
    assert_eq!(log["next_since"], changes.len() as u64);
    let mut last_version_ts = [(0u64, 0u64); 4];
    for (i, c) in changes.iter().enumerate() {
        assert_eq!(c["seq"], i as u64 + 1);
        let game = c["game"].as_u64().unwrap() as usize;
        let (version, ts) = (c["version"].as_u64().unwrap(), c["ts"].as_u64().unwrap());
        let (last_version, last_ts) = last_version_ts[game - 1];
        if version != last_version {
            assert_eq!(version, last_version + 1, "versions follow each other");
            if last_version > 0 {
                assert!(
                    ts - last_ts >= 20,
                    "game {game} v{version}: {} ms",
                    ts - last_ts
                );
            }
            last_version_ts[game - 1] = (version, ts);
        }
        let op = serde_json::from_value(c["op"].clone()).unwrap();
        let new = (!c["new"].is_null()).then(|| c["new"].clone());
        apply(&mut docs[game - 1], c["path"].as_str().unwrap(), op, new);
    }
    for n in 1..=4u32 {
        assert_eq!(
            docs[n as usize - 1],
            get_json(&sim.game_url(n)).await,
            "game {n}"
        );
    }

    // since, game and limit select from the same log.
    let mid = changes.len() as u64 / 2;
    let tail = get_json(&format!("{}/changes?since={mid}", sim.base_url())).await;
    assert_eq!(tail["changes"][0]["seq"], mid + 1);
    assert_eq!(sim.changes_since(mid).len(), changes.len() - mid as usize);
    let one = get_json(&format!(
        "{}/changes?since=0&game=2&limit=3",
        sim.base_url()
    ))
    .await;
    let one = one["changes"].as_array().unwrap();
    assert_eq!(one.len(), 3);
    assert!(one.iter().all(|c| c["game"] == 2));
    sim.shutdown().await;
}

#[tokio::test]
async fn bad_configurations_are_refused_with_their_key() {
    let cases = [
        (
            OddsConfig {
                games: 0,
                ..OddsConfig::default()
            },
            "games",
        ),
        (
            OddsConfig {
                mean_change: Duration::from_millis(100),
                ..OddsConfig::default()
            },
            "mean_change",
        ),
    ];
    for (config, key) in cases {
        match OddsSim::start(config).await {
            Err(SimError::InvalidConfig { key: k, .. }) => assert_eq!(k, key),
            Err(e) => panic!("{key}: {e}"),
            Ok(_) => panic!("{key}: accepted"),
        }
    }
    let taken = fast_sim(1, true).await;
    let again = OddsSim::start(OddsConfig {
        listen: taken.addr(),
        ..OddsConfig::default()
    })
    .await;
    assert!(matches!(again, Err(SimError::Bind { .. })));
}

#[tokio::test]
async fn the_same_seed_serves_the_same_documents() {
    let config = OddsConfig {
        games: 3,
        seed: 9,
        paused: true,
        ..OddsConfig::default()
    };
    let (a, b) = (
        OddsSim::start(config.clone()).await.unwrap(),
        OddsSim::start(config).await.unwrap(),
    );
    for n in 1..=3 {
        assert_eq!(a.document(n), b.document(n));
    }
    let r = client().get(a.game_url(1)).send().await.unwrap();
    let etag = r.headers()["etag"].clone();
    let r = client()
        .get(b.game_url(1))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NOT_MODIFIED,
        "same seed, same version, same ETag"
    );
}
