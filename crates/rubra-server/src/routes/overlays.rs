//! `/overlays`: PNG watermarks and overlays stored per client in the blob store under
//! `overlays/{client_id}/{name}.png`; their decoded form is kept by
//! [`OverlayCache`](crate::overlay_cache::OverlayCache).

use super::{Page, page_of};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ActingAs, ApiQuery, Caller, client_of};
use crate::quotas::{self, Quota};
use crate::state::AppState;
use crate::timefmt::format_ms;
use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::header::{CONTENT_TYPE, ETAG};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rubra_store::{Action, Change, ClientId};
use rubra_watermark::WatermarkError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub(crate) use crate::overlay_cache::check_png_header;
pub use crate::overlay_cache::{OverlayEntry, OverlayName, Sizing};
use crate::overlay_cache::{blob_key, version_of};

/// Largest overlay PNG accepted, in bytes.
pub const MAX_OVERLAY_BYTES: usize = 8 * 1024 * 1024;

/// `?client=` — whose overlays an admin acts on.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OwnerQuery {
    /// An admin's: the client to act for.
    client: Option<String>,
}

/// `GET /overlays` query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// An admin's: whose overlays.
    client: Option<String>,
    /// Items per page, 1 to 1000 [default 100].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn blob_prefix(client: &ClientId) -> String {
    format!("overlays/{client}")
}

/// The JSON form of a stored overlay.
#[derive(Debug, Serialize, ToSchema)]
pub struct OverlayInfo {
    /// Its name.
    name: String,
    /// Its size.
    bytes: u64,
    /// Pixels across (in the answer to `PUT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    /// Pixels down (in the answer to `PUT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    /// When it was stored (RFC 3339, UTC, ms).
    updated_at: String,
}

fn watermark_error(e: &WatermarkError) -> ApiError {
    ApiError::from(e).with_context("overlay")
}

fn png_content_type_ok(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(ct) => {
            let ct = ct.split(';').next().unwrap_or("").trim();
            ct.eq_ignore_ascii_case("image/png")
                || ct.eq_ignore_ascii_case("application/octet-stream")
        }
    }
}

/// `PUT /overlays/{name}`: store a PNG (201 when new, 200 when replaced).
#[utoipa::path(
    put,
    path = "/overlays/{name}",
    tag = "overlays",
    params(
        ("name" = String, Path, description = "1-64 of `A-Z a-z 0-9 . _ -`, not starting with a dot", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"),
        OwnerQuery,
    ),
    request_body(description = "A PNG of at most 8 MiB and 4096 x 4096 pixels", content(
        (crate::openapi::Binary = "image/png"),
        (crate::openapi::Binary = "application/octet-stream"),
    )),
    responses(
        (status = 201, description = "Stored", body = OverlayInfo),
        (status = 200, description = "Replaced", body = OverlayInfo),
    ),
)]
#[tracing::instrument(name = "http.overlays.put", skip_all, fields(name = %name))]
pub async fn put(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<OwnerQuery>,
    req: Request,
) -> ApiResult<Response> {
    let name = OverlayName::parse(&name)?;
    let client = client_of(&state, &who, q.client.as_deref()).await?;
    if !png_content_type_ok(req.headers()) {
        return Err(ApiError::unsupported_media_type(
            "send the overlay as image/png",
        ));
    }
    let body = crate::extract::body_bytes(req).await?;
    if body.len() > MAX_OVERLAY_BYTES {
        return Err(ApiError::new(
            ErrorCode::OverlayTooLarge,
            format!("an overlay may be at most {MAX_OVERLAY_BYTES} bytes"),
        ));
    }
    if body.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyBody,
            "the request body is empty",
        ));
    }
    // Decoding is admitted like any image work, by the pixels its header announces.
    let (w, h) = check_png_header(&body).map_err(|e| watermark_error(&e))?;
    let admitted = state
        .admission
        .admit(&who, u64::from(w) * u64::from(h))
        .await?;
    let png = body.clone();
    let entry = tokio::task::spawn_blocking(move || {
        let _admitted = admitted;
        OverlayEntry::from_png(&png)
    })
    .await
    .map_err(|e| ApiError::internal(&e))?
    .map_err(|e| watermark_error(&e))?;
    let key = blob_key(&client, &name);
    // Check-and-store under one lock, so two uploads at once cannot both pass a quota here.
    let _quota_lock = state.overlays.quota_lock().await;
    let existed = check_quotas(&state, &client, &name, body.len() as u64).await?;
    let (width, height) = (entry.base.width(), entry.base.height());
    // Overlays have no database row to share a transaction with: the audit row goes first,
    // so no overlay changes unrecorded (a failed blob write leaves the row of an attempt).
    let change = Change::new(Some(&client), Action::OverlayPut, name.as_str()).with_detail(
        serde_json::json!({ "bytes": body.len(), "width": width, "height": height,
                            "replaced": existed }),
    );
    state.store.record_audit(&actor, &change).await?;
    state.blobs.put(&key, body.clone()).await?;
    match state.blobs.head(&key).await? {
        Some(meta) => {
            state
                .overlays
                .insert((client, name.clone()), Arc::new(entry), version_of(&meta))
        }
        None => state.overlays.remove(&client, &name),
    }
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let info = OverlayInfo {
        name: name.0,
        bytes: body.len() as u64,
        width: Some(width),
        height: Some(height),
        updated_at: format_ms(rubra_store::now_ms()),
    };
    Ok((status, Json(info)).into_response())
}

/// Refuses an overlay that would pass the client's overlay quotas (count, and bytes of all
/// together, the overlay it replaces not counted); answers whether `name` exists already.
async fn check_quotas(
    state: &AppState,
    client: &ClientId,
    name: &OverlayName,
    bytes: u64,
) -> ApiResult<bool> {
    let prefix = blob_prefix(client);
    let stored = state.blobs.list(&prefix).await?;
    let key = blob_key(client, name);
    let replaced = stored.iter().find(|m| m.key == key).map(|m| m.size);
    let count = stored.len() as u64 - u64::from(replaced.is_some());
    let own = quotas::own(state, client).await?;
    let max_count = Quota::Overlays.allowed(&own, &state.settings);
    if count + 1 > max_count {
        return Err(quotas::exceeded(
            Quota::Overlays,
            max_count,
            &format!("this client already stores {count} overlays"),
        ));
    }
    let total: u64 = stored.iter().map(|m| m.size).sum::<u64>() - replaced.unwrap_or(0);
    let max_bytes = Quota::OverlayBytes.allowed(&own, &state.settings);
    if total.saturating_add(bytes) > max_bytes {
        return Err(quotas::exceeded(
            Quota::OverlayBytes,
            max_bytes,
            &format!("this client's overlays take {total} bytes and this one {bytes} more"),
        ));
    }
    Ok(replaced.is_some())
}

/// `GET /overlays/{name}`: the stored PNG.
#[utoipa::path(
    get,
    path = "/overlays/{name}",
    tag = "overlays",
    params(
        ("name" = String, Path, description = "1-64 of `A-Z a-z 0-9 . _ -`, not starting with a dot", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"),
        OwnerQuery,
    ),
    responses((status = 200, description = "The stored PNG", content_type = "image/png", body = crate::openapi::Binary)),
)]
#[tracing::instrument(name = "http.overlays.get", skip_all, fields(name = %name))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<OwnerQuery>,
) -> ApiResult<Response> {
    let name = OverlayName::parse(&name)?;
    let client = client_of(&state, &who, q.client.as_deref()).await?;
    let key = blob_key(&client, &name);
    let meta = state.blobs.head(&key).await?;
    let bytes = state
        .blobs
        .get(&key)
        .await?
        .ok_or_else(|| ApiError::not_found("overlay"))?;
    let mut resp = ([(CONTENT_TYPE, "image/png")], bytes).into_response();
    if let Some(tag) = meta.and_then(|m| m.e_tag)
        && let Ok(v) = format!("\"{}\"", tag.trim_matches('"')).parse()
    {
        resp.headers_mut().insert(ETAG, v);
    }
    Ok(resp)
}

/// `DELETE /overlays/{name}`: 204, or 404 when there is none.
#[utoipa::path(
    delete,
    path = "/overlays/{name}",
    tag = "overlays",
    params(
        ("name" = String, Path, description = "1-64 of `A-Z a-z 0-9 . _ -`, not starting with a dot", pattern = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"),
        OwnerQuery,
    ),
    responses((status = 204, description = "Deleted")),
)]
#[tracing::instrument(name = "http.overlays.delete", skip_all, fields(name = %name))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    ActingAs(actor): ActingAs,
    Path(name): Path<String>,
    ApiQuery(q): ApiQuery<OwnerQuery>,
) -> ApiResult<StatusCode> {
    let name = OverlayName::parse(&name)?;
    let client = client_of(&state, &who, q.client.as_deref()).await?;
    let key = blob_key(&client, &name);
    if !state.blobs.exists(&key).await? {
        return Err(ApiError::not_found("overlay"));
    }
    let change = Change::new(Some(&client), Action::OverlayDelete, name.as_str());
    state.store.record_audit(&actor, &change).await?;
    state.blobs.delete(&key).await?;
    state.overlays.remove(&client, &name);
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /overlays`: `{"items": [{"name","bytes","updated_at"}], "next_cursor"}`, sorted by
/// name (the cursor is the last name of the page).
#[utoipa::path(
    get,
    path = "/overlays",
    tag = "overlays",
    params(ListQuery),
    responses((status = 200, description = "The stored overlays, sorted by name", body = Page<OverlayInfo>)),
)]
#[tracing::instrument(name = "http.overlays.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<OverlayInfo>>> {
    let client = client_of(&state, &who, q.client.as_deref()).await?;
    let prefix = blob_prefix(&client);
    let overlays: Vec<OverlayInfo> = state
        .blobs
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|m| {
            let name = m
                .key
                .strip_prefix(prefix.as_str())?
                .strip_prefix('/')?
                .strip_suffix(".png")?;
            (!name.contains('/')).then(|| OverlayInfo {
                name: name.to_owned(),
                bytes: m.size,
                width: None,
                height: None,
                updated_at: format_ms(m.last_modified_ms),
            })
        })
        .collect();
    Ok(Json(page_of(
        overlays,
        |o: &OverlayInfo| o.name.clone(),
        q.limit,
        q.cursor.as_deref(),
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        for ok in ["logo", "a", "Beard-2.v1_final", &"x".repeat(64)] {
            assert!(OverlayName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "a/b",
            "..",
            "a b",
            "ü",
            &"x".repeat(65),
            "a%2Fb",
        ] {
            assert!(OverlayName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn png_header_is_checked_before_decoding() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
        png.extend_from_slice(&100_000u32.to_be_bytes());
        png.extend_from_slice(&100_000u32.to_be_bytes());
        let err = OverlayEntry::from_png(&png).unwrap_err();
        assert_eq!(err.http_status(), 413);
        assert_eq!(
            OverlayEntry::from_png(b"GIF89a").unwrap_err().http_status(),
            415
        );
        assert_eq!(
            OverlayEntry::from_png(b"\x89PNG\r\n\x1a\n")
                .unwrap_err()
                .http_status(),
            400
        );
    }
}
