//! `GET /`, `/assets/{name}` and `/favicon.ico`: the dashboard page and its files, compiled
//! into the binary. The page is static and public; it asks for an API key and calls the JSON
//! API with it, so it sees exactly what the key sees.
//!
//! Every script and style is a file of its own under a versioned name
//! (`/assets/app.<hash>.js`, the hash taken from the bytes compiled in), served with an
//! `ETag` and a year's `max-age`: a new build changes the names the page links, so a browser
//! never runs a stale script and never asks twice for a current one. The page itself is
//! `no-cache` (revalidated by its `ETag`) and carries a strict Content-Security-Policy: no
//! inline script or style at all, nothing from elsewhere, so an injected `<script>`, event
//! handler or `style` attribute does nothing.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

use crate::error::ApiError;

/// The page's policy: only this origin's own files run, and only its API is reached. Images
/// include `blob:` because thumbnails are fetched with the key and shown from memory.
pub const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// How long a versioned asset may be cached: a year (its name changes with its bytes).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// One file of the dashboard: the name the page refers to it by (`{{name}}`), its content
/// type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

/// The page's files. uPlot is vendored unchanged from its npm package (see
/// `assets/vendor/README.md` for the version and licence).
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/app.css"),
    },
    Asset {
        name: "uplot.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/uplot-1.6.32.min.js"),
    },
    Asset {
        name: "uplot.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../../assets/vendor/uplot-1.6.32.min.css"),
    },
];

/// The page template: `{{name}}` stands for the versioned path of the asset `name`.
const TEMPLATE: &str = include_str!("../../assets/dashboard.html");

/// The favicon.
const FAVICON: &[u8] = include_bytes!("../../assets/favicon.ico");

/// The first 16 hex digits of the SHA-256 of `bytes`: the version in an asset's name and its
/// ETag.
fn version(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `app.js` with version `v` → `app.<v>.js`.
fn versioned_name(name: &str, v: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) => format!("{stem}.{v}.{ext}"),
        None => format!("{name}.{v}"),
    }
}

/// The assets' versions, in the order of [`ASSETS`].
static VERSIONS: LazyLock<Vec<String>> =
    LazyLock::new(|| ASSETS.iter().map(|a| version(a.bytes)).collect());

/// The page with every `{{name}}` replaced by its versioned path, and its ETag.
static PAGE: LazyLock<(String, String)> = LazyLock::new(|| {
    let mut page = TEMPLATE.to_owned();
    for (a, v) in ASSETS.iter().zip(VERSIONS.iter()) {
        let path = format!("/assets/{}", versioned_name(a.name, v));
        page = page.replace(&format!("{{{{{}}}}}", a.name), &path);
    }
    let etag = format!("\"{}\"", version(page.as_bytes()));
    (page, etag)
});

/// True when `If-None-Match` names `etag` (or `*`).
fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// A `200` with `body`, or a bodiless `304` when the browser already holds `etag`.
fn cached(
    headers: &HeaderMap,
    etag: &str,
    content_type: &'static str,
    cache: &'static str,
    body: &'static [u8],
) -> Response {
    let common = [(ETAG, etag.to_owned()), (CACHE_CONTROL, cache.to_owned())];
    if not_modified(headers, etag) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (common, [(CONTENT_TYPE, content_type)], body).into_response()
}

/// `GET /`: the dashboard.
pub async fn page(headers: HeaderMap) -> Response {
    let (page, etag) = &*PAGE;
    let mut resp = cached(
        &headers,
        etag,
        "text/html; charset=utf-8",
        "no-cache",
        page.as_bytes(),
    );
    resp.headers_mut().insert(
        CONTENT_SECURITY_POLICY,
        axum::http::HeaderValue::from_static(POLICY),
    );
    resp
}

/// `GET /assets/{file}`: a file of the page by its versioned name; any other name (an old
/// version included) is a 404, so a stale page fails visibly instead of mixing versions.
pub async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let found = ASSETS
        .iter()
        .zip(VERSIONS.iter())
        .find(|(a, v)| versioned_name(a.name, v) == file);
    match found {
        Some((a, v)) => cached(
            &headers,
            &format!("\"{v}\""),
            a.content_type,
            IMMUTABLE,
            a.bytes,
        ),
        None => ApiError::not_found("asset").into_response(),
    }
}

/// `GET /favicon.ico`: kept a day (its name cannot change), revalidated by its ETag.
pub async fn favicon(headers: HeaderMap) -> Response {
    static ETAG_OF: LazyLock<String> = LazyLock::new(|| format!("\"{}\"", version(FAVICON)));
    cached(
        &headers,
        &ETAG_OF,
        "image/x-icon",
        "public, max-age=86400",
        FAVICON,
    )
}

/// The versioned path of the asset `name` (`app.js` → `/assets/app.<hash>.js`).
#[cfg(test)]
fn asset_path(name: &str) -> Option<String> {
    ASSETS
        .iter()
        .zip(VERSIONS.iter())
        .find(|(a, _)| a.name == name)
        .map(|(a, v)| format!("/assets/{}", versioned_name(a.name, v)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_links_every_asset_by_its_versioned_name_and_has_no_inline_code() {
        let (page, _) = &*PAGE;
        assert!(!page.contains("{{"), "an unreplaced placeholder is left");
        for a in ASSETS {
            let path = asset_path(a.name).unwrap();
            assert!(page.contains(&path), "{path} not linked");
        }
        // Under script-src 'self' / style-src 'self' inline code would not run anyway; keep
        // the page honest so nothing silently breaks.
        assert!(!page.contains("<style"), "inline style block");
        assert!(!page.contains("style=\""), "inline style attribute");
        assert!(!page.contains("<script>"), "inline script block");
        assert!(!page.contains(" onclick="), "inline event handler");
    }

    #[test]
    fn a_changed_file_gets_a_new_name() {
        assert_ne!(
            versioned_name("app.js", &version(b"one")),
            versioned_name("app.js", &version(b"two"))
        );
        assert_eq!(versioned_name("app.js", "abc"), "app.abc.js");
    }

    #[test]
    fn if_none_match_lists_and_weak_tags_are_understood() {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, "\"x\", W/\"abc\"".parse().unwrap());
        assert!(not_modified(&h, "\"abc\""));
        assert!(!not_modified(&h, "\"abd\""));
        assert!(!not_modified(&HeaderMap::new(), "\"abc\""));
    }
}
