//! `/images` and `/red`: store images content-addressed, measure their red level, record one
//! statistics event per new measurement.
//!
//! Order matters for "nothing half-written, nothing accepted lost". An upload measures all
//! parts first (so a bad part stores nothing), then writes every new blob (each atomically),
//! then commits all new records and their events in one transaction: a multipart upload that
//! fails on the way leaves none of its parts stored, and a crash leaves unreferenced blobs,
//! never a record without bytes. A delete removes the record first, then the bytes, so a
//! failure between the two leaves an unreferenced blob, never a record without bytes. Should
//! a record still lose its bytes (storage lost them), uploading the image again restores them.

use super::Page;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiQuery, Caller};
use crate::quotas::{self, Quota};
use crate::state::AppState;
use crate::timefmt::{format_ms, query_timestamp};
use axum::Json;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    IF_RANGE, RANGE,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use rubra_image::{Limits, RedReport};
use rubra_store::{
    ClientId, ImageId, ImagePage, ImageRecord, NewEvent, Principal, Scope, Timestamp,
    image_blob_key, now_ms,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `?client=` — whose data an admin acts on (clients always act on their own).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OwnerQuery {
    /// An admin's: the client to act for.
    client: Option<String>,
}

/// A multipart form of images: every file part is one.
#[derive(ToSchema)]
#[allow(dead_code)] // Only its schema is used: `read_images` reads the parts.
struct ImageForm {
    /// The images (any part name).
    #[schema(value_type = Vec<crate::openapi::Binary>)]
    file: Vec<u8>,
}

/// The answer to `POST /images`: one info for a raw body, an array for a multipart form.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Uploaded {
    /// A raw body's image.
    One(ImageInfo),
    /// A form's images, in part order.
    Many(Vec<ImageInfo>),
}

/// The answer to `POST /red`.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedAnswer {
    /// The red level, in [0, 1].
    red: f64,
    /// Pixels across.
    width: u32,
    /// Pixels down.
    height: u32,
    /// `jpeg`, `png`, `gif` or `webp`.
    format: &'static str,
}

/// The client an upload or measurement belongs to.
/// The JSON form of an image record.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageInfo {
    /// Its id: a hash of its bytes (and its ETag).
    id: String,
    /// `jpeg`, `png`, `gif` or `webp`.
    format: String,
    /// Pixels across.
    width: u32,
    /// Pixels down.
    height: u32,
    /// Its size.
    bytes: u64,
    /// The red level, in [0, 1].
    red: f64,
    /// When it was first stored (RFC 3339, UTC, ms).
    created_at: String,
}

impl From<&ImageRecord> for ImageInfo {
    fn from(r: &ImageRecord) -> Self {
        ImageInfo {
            id: r.id.to_string(),
            format: r.format.clone(),
            width: r.width,
            height: r.height,
            bytes: r.bytes,
            red: r.red,
            created_at: format_ms(r.created_at),
        }
    }
}

fn image_error(e: &rubra_image::Error) -> ApiError {
    ApiError::foreign(e.http_status(), e.code(), e.to_string())
}

/// Content types accepted for a raw body: the four image types, or none/binary (then the
/// bytes decide). The header is only a hint either way.
fn raw_content_type_ok(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(ct) => {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            ct.starts_with("image/") || ct == "application/octet-stream"
        }
    }
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"))
}

/// The images in a request: the raw body, or every file part of a multipart form.
async fn read_images(req: Request) -> ApiResult<(Vec<Bytes>, bool)> {
    if is_multipart(req.headers()) {
        let mut form = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::new(ErrorCode::BadMultipart, e.body_text()))?;
        let mut parts = Vec::new();
        while let Some(field) = form.next_field().await.map_err(multipart_error)? {
            if field.file_name().is_none() && field.content_type().is_none() {
                continue; // a plain form value, not a file
            }
            parts.push(field.bytes().await.map_err(multipart_error)?);
        }
        if parts.is_empty() {
            return Err(ApiError::new(
                ErrorCode::NoFiles,
                "the multipart form has no file part",
            ));
        }
        Ok((parts, true))
    } else {
        if !raw_content_type_ok(req.headers()) {
            return Err(ApiError::unsupported_media_type(
                "send the image as image/jpeg, image/png, image/gif or image/webp, \
                 or as multipart/form-data file parts",
            ));
        }
        let body = crate::extract::body_bytes(req).await?;
        if body.is_empty() {
            return Err(ApiError::new(
                ErrorCode::EmptyBody,
                "the request body is empty",
            ));
        }
        Ok((vec![body], false))
    }
}

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::body_too_large()
    } else {
        ApiError::new(ErrorCode::BadMultipart, e.body_text())
    }
}

/// Measures on the blocking pool: decoding is CPU work that must not stall the event loop.
/// The header is probed first (microseconds, nothing decoded) so that the image's pixels are
/// admitted (or refused at once) before any decoding; the admission is held for as long as
/// the decoding runs, and charged to `who` (the key that sent the request, also when an
/// admin acts for a client). The `image.measure` span runs on the blocking thread, so its
/// busy time is the CPU time.
async fn measure(
    state: &AppState,
    who: &rubra_store::Principal,
    bytes: Bytes,
) -> ApiResult<RedReport> {
    let limits = limits(state);
    let info = rubra_image::probe_within(&bytes, &limits).map_err(|e| image_error(&e))?;
    let span = tracing::info_span!("image.measure", bytes = bytes.len());
    state
        .admission
        .run(who, info.pixels(), move || {
            span.in_scope(|| rubra_image::measure(&bytes, &limits))
        })
        .await?
        .map_err(|e| image_error(&e))
}

fn limits(state: &AppState) -> Limits {
    Limits::with_max_pixels(state.settings.max_pixels)
}

/// `POST /images`: a raw image or a multipart form of several.
#[utoipa::path(
    post,
    path = "/images",
    tag = "images",
    params(OwnerQuery),
    request_body(
        description = "One raw image (the bytes decide its type), or a multipart form of several",
        content(
            (crate::openapi::Binary = "image/*"),
            (crate::openapi::Binary = "application/octet-stream"),
            (ImageForm = "multipart/form-data"),
        ),
    ),
    responses(
        (status = 201, description = "Stored; at least one image is new", body = Uploaded),
        (status = 200, description = "Every image was stored before", body = Uploaded),
    ),
)]
#[tracing::instrument(name = "http.images.upload", skip_all)]
pub async fn upload(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<OwnerQuery>,
    req: Request,
) -> ApiResult<Response> {
    let client = crate::extract::client_of(&state, &who, q.client.as_deref()).await?;
    let (parts, multipart) = read_images(req).await?;
    let scope = Scope::Client(client.clone());

    // Measure everything before storing anything: one bad part refuses the whole request.
    let mut known = Vec::with_capacity(parts.len());
    let mut fresh = Vec::new();
    for (i, bytes) in parts.into_iter().enumerate() {
        let id = ImageId::of(&bytes);
        if let Some(existing) = state.store.find_image(&scope, &id).await? {
            restore_missing_bytes(&state, &existing, bytes).await?;
            known.push(Some(existing));
            continue;
        }
        let report = measure(&state, &who, bytes.clone()).await.map_err(|e| {
            if multipart {
                e.with_context(&format!("file part {}", i + 1))
            } else {
                e
            }
        })?;
        let record = ImageRecord {
            client_id: client.clone(),
            id: id.clone(),
            format: report.format.as_str().to_owned(),
            width: report.width,
            height: report.height,
            bytes: bytes.len() as u64,
            red: report.red,
            created_at: now_ms(),
        };
        fresh.push((bytes, record));
        known.push(None);
    }

    check_image_bytes(
        &state,
        &client,
        fresh.iter().map(|(b, _)| b.len() as u64).sum(),
    )
    .await?;
    // Every new blob first, then every new record in one transaction: a failure on the way
    // stores no record at all (the blobs written before it stay unreferenced, and an upload
    // of the same bytes later writes them again).
    for (bytes, record) in &fresh {
        state
            .blobs
            .put(&image_blob_key(&client, &record.id), bytes.clone())
            .await?;
    }
    let records: Vec<ImageRecord> = fresh.into_iter().map(|(_, r)| r).collect();
    let mut inserted = state.store.insert_images(&records).await?.into_iter();
    let mut infos = Vec::with_capacity(known.len());
    let mut any_created = false;
    for slot in known {
        let record = match slot {
            Some(existing) => existing,
            None => {
                let (record, created) = inserted
                    .next()
                    .ok_or_else(|| ApiError::internal(&"the store answered too few images"))?;
                any_created |= created;
                record
            }
        };
        infos.push(ImageInfo::from(&record));
    }
    let status = if any_created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = match infos.pop() {
        Some(one) if !multipart => Uploaded::One(one),
        None if !multipart => return Err(ApiError::internal(&"a raw upload held no image")),
        last => {
            infos.extend(last);
            Uploaded::Many(infos)
        }
    };
    Ok((status, Json(body)).into_response())
}

/// Refuses new images of `adding` bytes that would take the client past its stored-bytes
/// quota (unlimited by default: then nothing is read).
async fn check_image_bytes(state: &AppState, client: &ClientId, adding: u64) -> ApiResult<()> {
    if adding == 0 {
        return Ok(());
    }
    let limit = quotas::limit(state, client, Quota::ImageBytes).await?;
    if limit == u64::MAX {
        return Ok(());
    }
    let stored = state.store.stored_image_bytes(client).await?;
    if stored.saturating_add(adding) > limit {
        return Err(quotas::exceeded(
            Quota::ImageBytes,
            limit,
            &format!("this client stores {stored} bytes of images and these are {adding} more"),
        ));
    }
    Ok(())
}

/// Writes an already recorded image's bytes again when they are missing from storage (lost,
/// or an earlier delete removed them after its record had been restored): an upload makes
/// the image whole, whatever state it found.
async fn restore_missing_bytes(state: &AppState, rec: &ImageRecord, bytes: Bytes) -> ApiResult<()> {
    let key = image_blob_key(&rec.client_id, &rec.id);
    if !state.blobs.exists(&key).await? {
        tracing::warn!(image = %rec.id, "image record without bytes: writing them again");
        state.blobs.put(&key, bytes).await?;
    }
    Ok(())
}

/// The caller's image with this id: 404 for a malformed id, a missing image, or another
/// client's image alike.
async fn find_visible(state: &AppState, who: &Principal, id: &str) -> ApiResult<ImageRecord> {
    let id = ImageId::parse(id).ok_or_else(|| ApiError::not_found("image"))?;
    state
        .store
        .find_image(&who.scope(), &id)
        .await?
        .ok_or_else(|| ApiError::not_found("image"))
}

/// `HEAD /images/{id}`: 200 if the caller has it, else 404 — without reading the bytes.
#[utoipa::path(
    head,
    path = "/images/{id}",
    tag = "images",
    params(("id" = String, Path, description = "The image's id")),
    responses((status = 200, description = "The caller has it: `Content-Type` and `Content-Length` say what `GET` answers")),
)]
#[tracing::instrument(name = "http.images.head", skip_all, fields(image = %id))]
pub async fn head(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let rec = find_visible(&state, &who, &id).await?;
    Ok((
        [
            (CONTENT_TYPE, mime_of(&rec.format).to_owned()),
            (CONTENT_LENGTH, rec.bytes.to_string()),
        ],
        Body::empty(),
    )
        .into_response())
}

fn mime_of(format: &str) -> &'static str {
    match format {
        "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        _ => "application/octet-stream",
    }
}

/// `GET /images/{id}`: the bytes with their content type. The id is the ETag (the bytes
/// under an id never change): `If-None-Match` naming it answers 304 without reading them;
/// one `Range: bytes=…` answers 206 with that part (416 when it lies past the end; several
/// ranges, or an `If-Range` naming another ETag, answer the whole image).
#[utoipa::path(
    get,
    path = "/images/{id}",
    tag = "images",
    params(
        ("id" = String, Path, description = "The image's id"),
        ("If-None-Match" = Option<String>, Header, description = "An ETag the caller holds: 304 when it is this image's"),
        ("Range" = Option<String>, Header, description = "One `bytes=` range: 206 with that part"),
        ("If-Range" = Option<String>, Header, description = "Honour `Range` only while the ETag is this"),
    ),
    responses(
        (status = 200, description = "The image", content(
            (crate::openapi::Binary = "image/jpeg"),
            (crate::openapi::Binary = "image/png"),
            (crate::openapi::Binary = "image/gif"),
            (crate::openapi::Binary = "image/webp"),
        )),
        (status = 206, description = "The asked part of the image", content(
            (crate::openapi::Binary = "image/jpeg"),
            (crate::openapi::Binary = "image/png"),
            (crate::openapi::Binary = "image/gif"),
            (crate::openapi::Binary = "image/webp"),
        )),
        (status = 304, description = "Not modified: `If-None-Match` named this image"),
        (status = 416, description = "The range lies past the end", body = crate::error::ErrorBody),
    ),
)]
#[tracing::instrument(name = "http.images.get", skip_all, fields(image = %id))]
pub async fn get(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let rec = find_visible(&state, &who, &id).await?;
    let etag = format!("\"{}\"", rec.id);
    let cached = [
        // Content-addressed: the bytes under an id never change.
        (
            CACHE_CONTROL,
            "private, max-age=31536000, immutable".to_owned(),
        ),
        (ETAG, etag.clone()),
    ];
    if header_str(&headers, IF_NONE_MATCH).is_some_and(|v| etag_matches(v, &etag)) {
        return Ok((StatusCode::NOT_MODIFIED, cached).into_response());
    }
    let bytes = state
        .blobs
        .get(&image_blob_key(&rec.client_id, &rec.id))
        .await?
        .ok_or_else(|| ApiError::not_found("image bytes"))?;
    let content_type = (CONTENT_TYPE, mime_of(&rec.format).to_owned());
    let accept = (ACCEPT_RANGES, "bytes".to_owned());
    let range = header_str(&headers, RANGE)
        .filter(|_| header_str(&headers, IF_RANGE).is_none_or(|v| etag_matches(v, &etag)));
    let total = bytes.len() as u64;
    match range.map(|r| byte_range(r, total)) {
        Some(Ranged::Part(start, end)) => {
            let part = bytes.slice(start as usize..=end as usize);
            let content_range = (CONTENT_RANGE, format!("bytes {start}-{end}/{total}"));
            Ok((
                StatusCode::PARTIAL_CONTENT,
                cached,
                [content_type, accept, content_range],
                part,
            )
                .into_response())
        }
        Some(Ranged::Unsatisfiable) => Ok((
            StatusCode::RANGE_NOT_SATISFIABLE,
            [(CONTENT_RANGE, format!("bytes */{total}"))],
            ApiError::new(
                ErrorCode::RangeNotSatisfiable,
                format!("the image has {total} bytes"),
            ),
        )
            .into_response()),
        Some(Ranged::Whole) | None => Ok((cached, [content_type, accept], bytes).into_response()),
    }
}

/// A header's value as text, if it is.
fn header_str(headers: &HeaderMap, name: axum::http::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether an `If-None-Match` or `If-Range` value names `etag` (weak or strong) or is `*`.
fn etag_matches(value: &str, etag: &str) -> bool {
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// What a `Range` header asks of a body of `total` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Ranged {
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// Nothing of it lies within the body.
    Unsatisfiable,
    /// The whole body: the header is not one single byte range this answers.
    Whole,
}

/// Reads one `bytes=START-END`, `bytes=START-` or `bytes=-SUFFIX` range (RFC 9110 §14.1.2).
fn byte_range(value: &str, total: u64) -> Ranged {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim().is_empty(), number(first), number(last)) {
        // The last SUFFIX bytes.
        (true, _, Some(suffix)) => {
            if suffix == 0 || total == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(total.saturating_sub(suffix), total - 1)
            }
        }
        (false, Some(start), end) if last.trim().is_empty() || end.is_some() => {
            if start >= total {
                return Ranged::Unsatisfiable;
            }
            match end {
                Some(end) if end < start => Ranged::Whole,
                Some(end) => Ranged::Part(start, end.min(total - 1)),
                None => Ranged::Part(start, total - 1),
            }
        }
        _ => Ranged::Whole,
    }
}

/// `GET /images/{id}/info`.
#[utoipa::path(
    get,
    path = "/images/{id}/info",
    tag = "images",
    params(("id" = String, Path, description = "The image's id")),
    responses((status = 200, description = "What is known of the image", body = ImageInfo)),
)]
#[tracing::instrument(name = "http.images.info", skip_all, fields(image = %id))]
pub async fn info(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<ImageInfo>> {
    Ok(Json(ImageInfo::from(
        &find_visible(&state, &who, &id).await?,
    )))
}

/// `DELETE /images/{id}`: the record first, then the bytes (see the module docs).
#[utoipa::path(
    delete,
    path = "/images/{id}",
    tag = "images",
    params(("id" = String, Path, description = "The image's id")),
    responses((status = 204, description = "Deleted")),
)]
#[tracing::instrument(name = "http.images.delete", skip_all, fields(image = %id))]
pub async fn delete(
    State(state): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let rec = find_visible(&state, &who, &id).await?;
    if !state
        .store
        .delete_image(&Scope::Client(rec.client_id.clone()), &rec.id)
        .await?
    {
        // A concurrent delete won; it removes the bytes.
        return Ok(StatusCode::NO_CONTENT);
    }
    // The image is gone for the client now. Bytes left behind by a failure here are
    // unreferenced, and an upload of the same image writes them again.
    if let Err(e) = state
        .blobs
        .delete(&image_blob_key(&rec.client_id, &rec.id))
        .await
    {
        tracing::warn!(image = %rec.id, error = %e, "image deleted, but its bytes were not");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Query of `GET /images`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only images stored at or after this instant (RFC 3339 or epoch ms).
    #[param(schema_with = crate::openapi::instant_in)]
    from: Option<String>,
    /// Only images stored before this instant (RFC 3339 or epoch ms).
    #[param(schema_with = crate::openapi::instant_in)]
    to: Option<String>,
    /// Images per page, 1 to 1000 [default 50].
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[+-]?[0-9]{1,18}_[0-9a-fA-F]{64}$")]
    cursor: Option<String>,
}

/// `GET /images?from=&to=&limit=&cursor=`: a page of infos, newest first.
#[utoipa::path(
    get,
    path = "/images",
    tag = "images",
    params(ListQuery),
    responses((status = 200, description = "A page of images, newest first", body = Page<ImageInfo>)),
)]
#[tracing::instrument(name = "http.images.list", skip_all)]
pub async fn list(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<ImageInfo>>> {
    let bad = |m: String| ApiError::new(ErrorCode::InvalidQuery, m);
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(bad("limit must be between 1 and 1000".into()));
    }
    let page = ImagePage {
        from: q
            .from
            .as_deref()
            .map(|s| query_timestamp("from", s).map(Timestamp::as_ms))
            .transpose()?,
        to: q
            .to
            .as_deref()
            .map(|s| query_timestamp("to", s).map(Timestamp::as_ms))
            .transpose()?,
        after: q.cursor.as_deref().map(parse_cursor).transpose()?,
        limit,
    };
    let rows = state.store.list_images(&who.scope(), &page).await?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| format!("{}_{}", r.created_at, r.id)))
        .flatten();
    Ok(Json(Page {
        items: rows.iter().map(ImageInfo::from).collect(),
        next_cursor: next,
    }))
}

fn parse_cursor(c: &str) -> ApiResult<(i64, ImageId)> {
    let bad = || {
        ApiError::new(
            ErrorCode::InvalidCursor,
            "the cursor is not one this API returned",
        )
    };
    let (ts, id) = c.split_once('_').ok_or_else(bad)?;
    Ok((
        ts.parse().map_err(|_| bad())?,
        ImageId::parse(id).ok_or_else(bad)?,
    ))
}

/// `POST /red`: measure and record the event, store nothing.
#[utoipa::path(
    post,
    path = "/red",
    tag = "images",
    params(OwnerQuery),
    request_body(
        description = "One raw image (the bytes decide its type), or a multipart form of exactly one",
        content(
            (crate::openapi::Binary = "image/*"),
            (crate::openapi::Binary = "application/octet-stream"),
            (ImageForm = "multipart/form-data"),
        ),
    ),
    responses((status = 200, description = "Measured and recorded as an event", body = RedAnswer)),
)]
#[tracing::instrument(name = "http.red", skip_all)]
pub async fn red(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<OwnerQuery>,
    req: Request,
) -> ApiResult<Json<RedAnswer>> {
    let client = crate::extract::client_of(&state, &who, q.client.as_deref()).await?;
    let (mut parts, multipart) = read_images(req).await?;
    if multipart && parts.len() != 1 {
        return Err(ApiError::new(
            ErrorCode::OneFile,
            "POST /red measures exactly one image",
        ));
    }
    let bytes = parts.remove(0);
    let report = measure(&state, &who, bytes).await?;
    let event = NewEvent {
        client_id: client,
        image_id: None,
        red: report.red,
        ts: now_ms(),
    };
    state.store.insert_event(&event).await?;
    Ok(Json(RedAnswer {
        red: report.red,
        width: report.width,
        height: report.height,
        format: report.format.as_str(),
    }))
}
