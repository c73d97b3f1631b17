//! `GET /`: a small dashboard page for a client. The page itself is static and public; it
//! asks for an API key and calls the JSON API with it, so it sees exactly what the key sees.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::IntoResponse;

/// The page, compiled into the binary.
const PAGE: &str = include_str!("../../assets/dashboard.html");

/// `GET /`: the dashboard.
pub async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
}
