//! `POST /watermark`: composite a stored (`overlay=NAME`) or remote (`overlay_url=URL`)
//! overlay onto the JPEG or PNG body and answer the same format.
//!
//! JPEGs take the DCT path of `rubra-watermark` (only the blocks under the overlay change).
//! The pixel work runs on the blocking pool so the async workers keep serving other requests.
//! The response sends the output's unchanged head, and a JPEG's unchanged tail where it has
//! one, from the request's own buffer (issue #24).

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::extract::{ApiQuery, Caller};
use crate::routes::overlays::{OverlayEntry, OverlayName, Sizing, check_png_header};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, HeaderName};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use rubra_fetch::CacheError;
use rubra_watermark::{Gravity, Options, Placement, Route, WatermarkError, watermark_parts};
use serde::Deserialize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Query parameters of `POST /watermark`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WatermarkQuery {
    /// The name of a stored overlay (or give `overlay_url`).
    overlay: Option<String>,
    /// An overlay PNG on a host the operator allowed (`--fetch-allow`).
    overlay_url: Option<String>,
    /// Where the overlay goes: `north-west`, `north`, …, `south-east` [default `south-east`].
    gravity: Option<String>,
    /// Offset from the gravity point, pixels.
    #[param(minimum = -1048576, maximum = 1048576)]
    dx: Option<i64>,
    /// Offset from the gravity point, pixels.
    #[param(minimum = -1048576, maximum = 1048576)]
    dy: Option<i64>,
    /// Exact placement (with `y`, without gravity, dx and dy).
    #[param(minimum = -1048576, maximum = 1048576)]
    x: Option<i64>,
    /// Exact placement (with `x`).
    #[param(minimum = -1048576, maximum = 1048576)]
    y: Option<i64>,
    /// In [0, 1] [default 1].
    #[param(minimum = 0.0, maximum = 1.0)]
    opacity: Option<f32>,
    /// Scale the overlay by this, in (0, 16] (or give `width`).
    #[param(exclusive_minimum = 0.0, maximum = 16.0)]
    scale: Option<f32>,
    /// Scale the overlay to this width, 1 to 8192 pixels.
    #[param(minimum = 1, maximum = 8192)]
    width: Option<u32>,
    /// An admin's: whose stored overlay.
    client: Option<String>,
}

/// The header naming how the output was made (`jpeg-fast`, `jpeg-coefficients`, …).
pub const ROUTE_HEADER: HeaderName = HeaderName::from_static("x-rubra-watermark-route");

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery, message)
}

/// The sizing, placement and opacity asked for, validated before any work is done.
fn parse_params(q: &WatermarkQuery) -> ApiResult<(Sizing, Placement, f32)> {
    let sizing = match (q.scale, q.width) {
        (Some(_), Some(_)) => return Err(bad("give scale= or width=, not both")),
        (Some(s), None) if s.is_finite() && s > 0.0 && s <= 16.0 => Sizing::Scale(s.to_bits()),
        (Some(s), None) => return Err(bad(format!("scale must be in (0, 16], got {s}"))),
        (None, Some(w)) if (1..=8192).contains(&w) => Sizing::Width(w),
        (None, Some(w)) => return Err(bad(format!("width must be in [1, 8192], got {w}"))),
        (None, None) => Sizing::Native,
    };
    let placement = match (q.x, q.y) {
        (Some(x), Some(y)) => {
            if q.gravity.is_some() || q.dx.is_some() || q.dy.is_some() {
                return Err(bad(
                    "x/y place the overlay exactly: leave out gravity, dx and dy",
                ));
            }
            Placement::Exact { x, y }
        }
        (Some(_), None) | (None, Some(_)) => return Err(bad("give both x and y")),
        (None, None) => {
            let gravity = match q.gravity.as_deref() {
                None => Gravity::SouthEast,
                Some(g) => g.parse::<Gravity>().map_err(|e| bad(e.to_string()))?,
            };
            Placement::gravity(gravity, q.dx.unwrap_or(0), q.dy.unwrap_or(0))
        }
    };
    if [q.dx, q.dy, q.x, q.y]
        .iter()
        .flatten()
        .any(|v| v.unsigned_abs() > 1 << 20)
    {
        return Err(bad("offsets must be within ±1048576 pixels"));
    }
    let opacity = q.opacity.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&opacity) {
        return Err(bad(format!("opacity must be in [0, 1], got {opacity}")));
    }
    Ok((sizing, placement, opacity))
}

fn content_type_ok(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(ct) => {
            let ct = ct
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            ct == "image/jpeg" || ct == "image/png" || ct == "application/octet-stream"
        }
    }
}

/// The overlay the query names, from the stored-overlay cache or the remote cache.
async fn resolve_overlay(
    state: &AppState,
    caller: &rubra_store::Principal,
    q: &WatermarkQuery,
) -> ApiResult<Arc<OverlayEntry>> {
    match (&q.overlay, &q.overlay_url) {
        (Some(name), None) => {
            let name = OverlayName::parse(name)?;
            let client = crate::extract::client_of(state, caller, q.client.as_deref()).await?;
            state
                .overlays
                .get(&state.blobs, &state.admission, caller, &client, &name)
                .await
        }
        (None, Some(url)) => {
            // New bytes are admitted like any image work, by the pixels their PNG header
            // announces, before they are decoded; a cached overlay costs no admission.
            let admission = state.admission.clone();
            let who = caller.clone();
            let admit = move |png: &Bytes| {
                let header = check_png_header(png).map_err(|e| remote_unusable(&e));
                async move {
                    let (w, h) = header?;
                    admission.admit(&who, u64::from(w) * u64::from(h)).await
                }
            };
            let decode = |png: Bytes| OverlayEntry::from_png(&png).map_err(|e| remote_unusable(&e));
            let got = state
                .remote_overlays
                .get_admitted(url, admit, decode)
                .await
                .map_err(|e| match e {
                    CacheError::Fetch(f) => ApiError::from(f),
                    CacheError::Parse(e) | CacheError::Refused(e) => e,
                })?;
            tracing::debug!(outcome = ?got.outcome, "remote overlay");
            Ok(got.value)
        }
        (Some(_), Some(_)) => Err(bad("give overlay= or overlay_url=, not both")),
        (None, None) => Err(bad("overlay=NAME or overlay_url=URL is required")),
    }
}

fn remote_unusable(e: &WatermarkError) -> ApiError {
    ApiError::new(
        ErrorCode::RemoteOverlayUnusable,
        format!("the overlay at overlay_url is not usable: {e}"),
    )
}

fn route_name(r: Route) -> &'static str {
    match r {
        Route::JpegFast => "jpeg-fast",
        Route::JpegCoefficients => "jpeg-coefficients",
        Route::JpegPixels => "jpeg-pixels",
        Route::Png => "png",
        Route::Unchanged => "unchanged",
    }
}

/// `POST /watermark`: the body with the overlay composited, in the body's format.
#[utoipa::path(
    post,
    path = "/watermark",
    tag = "images",
    params(WatermarkQuery),
    request_body(description = "A JPEG or PNG", content(
        (crate::openapi::Binary = "image/jpeg"),
        (crate::openapi::Binary = "image/png"),
        (crate::openapi::Binary = "application/octet-stream"),
    )),
    responses((status = 200, description = "The image with the overlay, in its own format; `X-Rubra-Watermark-Route` says how it was made", content(
        (crate::openapi::Binary = "image/jpeg"),
        (crate::openapi::Binary = "image/png"),
    ))),
)]
#[tracing::instrument(name = "http.watermark", skip_all, fields(bytes, route))]
pub async fn watermark(
    State(state): State<AppState>,
    Caller(who): Caller,
    ApiQuery(q): ApiQuery<WatermarkQuery>,
    req: Request,
) -> ApiResult<Response> {
    let (sizing, placement, opacity) = parse_params(&q)?;
    if !content_type_ok(req.headers()) {
        return Err(ApiError::unsupported_media_type(
            "send the image as image/jpeg or image/png",
        ));
    }
    let body = crate::extract::body_bytes(req).await?;
    if body.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EmptyBody,
            "the request body is empty",
        ));
    }
    tracing::Span::current().record("bytes", body.len());
    let entry = resolve_overlay(&state, &who, &q).await?;
    let opts = Options {
        opacity,
        max_pixels: state.settings.max_pixels,
        ..Options::new(placement)
    };
    // The body's pixels from its header; a header this probe cannot read is charged as the
    // largest image allowed (the watermarker reads it itself and may still refuse it).
    let pixels = rubra_image::probe(&body).map_or(state.settings.max_pixels, |i| i.pixels());
    let (body, done) = state
        .admission
        .run(&who, pixels, move || {
            let overlay = entry.sized(sizing)?;
            let done = watermark_parts(&body, &overlay, &opts)?;
            Ok::<_, WatermarkError>((body, done))
        })
        .await?
        .map_err(|e: WatermarkError| ApiError::from(&e))?;
    tracing::Span::current().record("route", route_name(done.route));
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static(done.format.mime_type()),
            ),
            (
                ROUTE_HEADER,
                HeaderValue::from_static(route_name(done.route)),
            ),
        ],
        axum::body::Body::new(Output::new([
            body.slice(..done.prefix),
            done.rest.into(),
            body.slice(body.len() - done.suffix..),
        ])),
    )
        .into_response())
}

/// A response body of buffers sent one after the other (the input's head, the output's
/// new bytes, the input's tail), with its exact length so that it goes out with a
/// `Content-Length`.
struct Output {
    /// Not sent yet, in order; empty buffers are left out.
    parts: [Option<Bytes>; 3],
}

impl Output {
    fn new(parts: [Bytes; 3]) -> Self {
        Output {
            parts: parts.map(|b| (!b.is_empty()).then_some(b)),
        }
    }
}

impl http_body::Body for Output {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let next = this.parts.iter_mut().find_map(Option::take);
        Poll::Ready(next.map(|b| Ok(http_body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.iter().all(Option::is_none)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        let n = self.parts.iter().flatten().map(Bytes::len).sum::<usize>();
        http_body::SizeHint::with_exact(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> WatermarkQuery {
        serde_urlencoded_like(s)
    }

    /// Builds a query the way axum's `Query` would.
    fn serde_urlencoded_like(s: &str) -> WatermarkQuery {
        let uri: axum::http::Uri = format!("/watermark?{s}").parse().unwrap();
        axum::extract::Query::<WatermarkQuery>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    #[tokio::test]
    async fn output_is_its_parts_in_order_with_its_length() {
        for parts in [
            ["head", "+rest", "+tail"],
            ["", "all", ""],
            ["all", "", ""],
            ["", "", "all"],
            ["he", "", "ad"],
            ["", "", ""],
        ] {
            let body = Output::new(parts.map(Bytes::from));
            let want = parts.concat();
            assert_eq!(
                http_body::Body::size_hint(&body).exact(),
                Some(want.len() as u64)
            );
            assert_eq!(http_body::Body::is_end_stream(&body), want.is_empty());
            let got = axum::body::to_bytes(axum::body::Body::new(body), usize::MAX);
            assert_eq!(got.await.unwrap(), want);
        }
    }

    #[test]
    fn parameters_are_validated() {
        let (s, p, o) = parse_params(&q("overlay=a")).unwrap();
        assert_eq!(
            (s, p, o),
            (
                Sizing::Native,
                Placement::gravity(Gravity::SouthEast, 0, 0),
                1.0
            )
        );
        let (s, p, _) = parse_params(&q("gravity=north&dx=3&dy=-4&width=100")).unwrap();
        assert_eq!(
            (s, p),
            (
                Sizing::Width(100),
                Placement::gravity(Gravity::North, 3, -4)
            )
        );
        let (_, p, o) = parse_params(&q("x=-5&y=7&opacity=0.5")).unwrap();
        assert_eq!((p, o), (Placement::Exact { x: -5, y: 7 }, 0.5));
        for bad in [
            "gravity=up",
            "x=1",
            "x=1&y=2&gravity=north",
            "scale=0",
            "scale=2&width=10",
            "width=0",
            "opacity=1.5",
            "dx=99999999",
        ] {
            assert!(parse_params(&q(bad)).is_err(), "{bad}");
        }
    }
}
