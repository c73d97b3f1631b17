//! The HTTP routes, one module per resource, and the router that joins them.

mod audit;
pub(crate) mod clients;
mod dashboard;
mod debug;
pub(crate) mod events;
mod health;
mod images;
mod jobs;
pub(crate) mod keys;
pub(crate) mod messages;
mod notifications;
pub(crate) mod overlays;
mod stats;
pub(crate) mod subscriptions;
mod watches;
mod watermark;

use crate::error::{ApiError, ApiResult};
use crate::middleware;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::Response;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// One page of a list: `next_cursor`, given back as `cursor`, continues it; null on the last
/// page.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    /// This page's items.
    pub items: Vec<T>,
    /// The `cursor` of the next page; null when this is the last.
    pub next_cursor: Option<String>,
}

/// `limit` and `cursor` of a list that is paged in memory.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Items per page, 1 to 1000 [default 100].
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Items per page unless `limit` says otherwise.
const DEFAULT_PAGE: u32 = 100;
/// Most items per page.
const MAX_PAGE: u32 = 1000;

/// The sort key of an item listed oldest first: its creation time as RFC 3339 with
/// milliseconds (which sorts as the times do) and its id, which breaks ties.
pub(crate) fn created_key(created_at: &str, id: &str) -> String {
    format!("{created_at}_{id}")
}

/// One page of `items`, a list small enough to read whole (one client's keys or
/// subscriptions, the clients, …): sorted by `key`, the first `limit` whose key is above
/// `cursor`. A bad `limit` is 400 `invalid_query`.
pub(crate) fn page_of<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<Page<T>> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            crate::error::ErrorCode::InvalidQuery,
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let mut keyed: Vec<(String, T)> = items.drain(..).map(|t| (key(&t), t)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let after: Vec<(String, T)> = keyed
        .into_iter()
        .filter(|(k, _)| cursor.is_none_or(|c| k.as_str() > c))
        .collect();
    let more = after.len() > limit as usize;
    let page: Vec<(String, T)> = after.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        page.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Ok(Page {
        items: page.into_iter().map(|(_, t)| t).collect(),
        next_cursor,
    })
}

/// Every route with its OpenAPI entry: each handler's `#[utoipa::path]` names the path and
/// method it is mounted on, so the router and the document come from the same line.
pub(crate) fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(crate::openapi::ApiDoc::openapi())
        .routes(routes!(dashboard_page))
        .routes(routes!(dashboard_asset))
        .routes(routes!(favicon))
        .routes(routes!(crate::openapi::openapi_json))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(debug::profile))
        .routes(routes!(keys::list_admin, keys::create_admin))
        .routes(routes!(keys::revoke_admin))
        .routes(routes!(audit::list))
        .routes(routes!(clients::list, clients::create))
        .routes(routes!(clients::get, clients::patch))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::revoke))
        .routes(routes!(images::list, images::upload))
        .routes(routes!(images::get, images::head, images::delete))
        .routes(routes!(images::info))
        .routes(routes!(images::red))
        .routes(routes!(jobs::list, jobs::submit))
        .routes(routes!(jobs::active))
        .routes(routes!(jobs::get, jobs::cancel))
        .routes(routes!(events::create))
        .routes(routes!(messages::create))
        .routes(routes!(stats::get))
        .routes(routes!(subscriptions::list, subscriptions::create))
        .routes(routes!(subscriptions::get, subscriptions::delete))
        .routes(routes!(subscriptions::pause))
        .routes(routes!(subscriptions::resume))
        .routes(routes!(subscriptions::rotate_secret))
        .routes(routes!(notifications::log))
        .routes(routes!(notifications::stream))
        .routes(routes!(overlays::list))
        .routes(routes!(overlays::get, overlays::put, overlays::delete))
        .routes(routes!(watermark::watermark))
        .routes(routes!(watches::list, watches::create))
        .routes(routes!(watches::get, watches::delete))
        .routes(routes!(watches::changes))
        .routes(routes!(watches::stream))
}

/// `GET /`: the dashboard page (its handler lives in `dashboard`).
#[utoipa::path(
    get,
    path = "/",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The dashboard", content_type = "text/html"),
        (status = 304, description = "Not modified (`If-None-Match` matched its ETag)"),
    ),
)]
async fn dashboard_page(headers: HeaderMap) -> Response {
    dashboard::page(headers).await
}

/// `GET /assets/{file}`: a script, style or image of the dashboard by its versioned name.
#[utoipa::path(
    get,
    path = "/assets/{file}",
    tag = "meta",
    security(()),
    params(("file" = String, Path, description = "The versioned name the page links, e.g. `app.<hash>.js`")),
    responses(
        (status = 200, description = "The file, cached for a year (its name changes with it)"),
        (status = 304, description = "Not modified (`If-None-Match` matched its ETag)"),
        (status = 404, description = "`not_found`: no such file (or another version of it)", body = crate::error::ErrorBody),
    ),
)]
async fn dashboard_asset(file: Path<String>, headers: HeaderMap) -> Response {
    dashboard::asset(file, headers).await
}

/// `GET /favicon.ico`: the dashboard's icon.
#[utoipa::path(
    get,
    path = "/favicon.ico",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The icon", content_type = "image/x-icon"),
        (status = 304, description = "Not modified (`If-None-Match` matched its ETag)"),
    ),
)]
async fn favicon(headers: HeaderMap) -> Response {
    dashboard::favicon(headers).await
}

/// Builds the whole application router on `state`.
pub fn router(state: AppState) -> Router {
    let (api, _) = api().split_for_parts();
    api.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::idempotency,
        ))
        .layer(DefaultBodyLimit::max(state.settings.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::throttle::throttle_uploads,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            middleware::panic_response,
        ))
        // Outermost, so panics and timeouts carry the headers too.
        .layer(axum::middleware::from_fn(middleware::security_headers))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::of(crate::error::ErrorCode::MethodNotAllowed)
}
