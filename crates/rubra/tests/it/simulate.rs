//! `rubra simulate odds`: its help, and a run that prints its URL and serves the games.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use crate::helpers::rubra;

#[test]
fn simulate_odds_help_names_every_flag() {
    let out = rubra()
        .args(["simulate", "odds", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--games",
        "--listen",
        "--seed",
        "--mean-change-ms",
        "--min-gap-ms",
        "--paused",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn simulate_odds_with_bad_values_exits_2() {
    let out = rubra()
        .args([
            "simulate",
            "odds",
            "--mean-change-ms",
            "10",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mean_change"));
}

#[test]
fn simulate_odds_prints_its_url_and_serves_the_games() {
    let mut child = rubra()
        .args([
            "simulate",
            "odds",
            "--games",
            "3",
            "--listen",
            "127.0.0.1:0",
            "--seed",
            "7",
            "--paused",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .strip_prefix("rubra simulate listening on ")
        .unwrap_or_else(|| panic!("first line: {first}"))
        .to_owned();
    let second = lines.next().unwrap().unwrap();
    assert!(second.contains(&format!("{base}/games")), "{second}");
    assert!(second.contains("seed 7"), "{second}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let list: Value = rt.block_on(async {
        reqwest::get(format!("{base}/games"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let _ = child.kill();
    let _ = child.wait();
    let games = list["games"].as_array().unwrap();
    assert_eq!(games.len(), 3);
    assert_eq!(games[2]["url"], format!("{base}/games/3"));
}
