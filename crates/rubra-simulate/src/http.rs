//! The simulator's HTTP API: the games (with `ETag` and `304`), the change log, and the
//! control endpoints that pause the games or take sources down.

use crate::sim::{Change, Shared};
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::watch;

/// The router over the shared state (also usable in-process with `oneshot`).
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/games", get(games))
        .route("/games/{n}", get(game))
        .route("/changes", get(changes))
        .route("/status", get(status))
        .route("/control/pause", post(pause))
        .route("/control/resume", post(resume))
        .route("/control/down", post(down))
        .route("/control/up", post(up))
        .with_state(shared)
}

/// Serves until `stop` turns true, then lets requests in flight finish.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    // An accept error other than a closed listener is retried inside axum; serve only
    // returns on shutdown, so there is nothing left to report here.
    let _ = axum::serve(listener, router(shared))
        .with_graceful_shutdown(stopped)
        .await;
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn unknown_game(n: u32) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "unknown_game",
        format!("no game {n}: ids are 1..=games"),
    )
}

async fn games(State(sh): State<Arc<Shared>>) -> Response {
    let games: Vec<_> = sh
        .versions()
        .into_iter()
        .map(|(id, version)| {
            json!({"id": id, "url": format!("{}/games/{id}", sh.base_url), "version": version})
        })
        .collect();
    Json(json!({ "games": games })).into_response()
}

/// Whether an `If-None-Match` header matches `etag` (weak comparison, as RFC 9110 asks).
fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| {
            let t = t.trim();
            t.strip_prefix("W/").unwrap_or(t)
        })
        .any(|t| t == "*" || t == etag)
}

async fn game(State(sh): State<Arc<Shared>>, Path(n): Path<u32>, headers: HeaderMap) -> Response {
    let Some(served) = sh.served(n) else {
        return unknown_game(n);
    };
    if served.down {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "source_down",
            format!("game {n} is down (POST /control/up?game={n} brings it back)"),
        );
    }
    // The ETag is ASCII made here, so it is always a valid header value.
    let etag = HeaderValue::from_str(&served.etag).unwrap_or(HeaderValue::from_static("\"\""));
    let no_cache = HeaderValue::from_static("no-cache");
    if none_match(&headers, &served.etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(ETAG, etag), (CACHE_CONTROL, no_cache)],
        )
            .into_response();
    }
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/json")),
            (ETAG, etag),
            (CACHE_CONTROL, no_cache),
        ],
        served.body,
    )
        .into_response()
}

#[derive(Deserialize)]
struct ChangesQuery {
    #[serde(default)]
    since: u64,
    game: Option<u32>,
    limit: Option<usize>,
}

async fn changes(State(sh): State<Arc<Shared>>, Query(q): Query<ChangesQuery>) -> Response {
    let limit = q.limit.unwrap_or(usize::MAX);
    let list: Vec<Change> = sh.changes_since(q.since, q.game, limit);
    // With a game filter or a limit the caller resumes after the last change it got;
    // the log's last sequence number is the answer when nothing new matched.
    let next_since = list
        .last()
        .map_or_else(|| sh.status().last_seq.max(q.since), |c| c.seq);
    Json(json!({"changes": list, "next_since": next_since})).into_response()
}

async fn status(State(sh): State<Arc<Shared>>) -> Response {
    Json(sh.status()).into_response()
}

async fn pause(State(sh): State<Arc<Shared>>) -> Response {
    sh.set_paused(true);
    Json(sh.status()).into_response()
}

async fn resume(State(sh): State<Arc<Shared>>) -> Response {
    sh.set_paused(false);
    Json(sh.status()).into_response()
}

#[derive(Deserialize)]
struct GameQuery {
    game: Option<u32>,
}

async fn down(State(sh): State<Arc<Shared>>, Query(q): Query<GameQuery>) -> Response {
    set_down(&sh, q.game, true)
}

async fn up(State(sh): State<Arc<Shared>>, Query(q): Query<GameQuery>) -> Response {
    set_down(&sh, q.game, false)
}

fn set_down(sh: &Shared, game: Option<u32>, down: bool) -> Response {
    match sh.set_down(game, down) {
        Ok(()) => Json(sh.status()).into_response(),
        Err(_) => unknown_game(game.unwrap_or(0)),
    }
}
