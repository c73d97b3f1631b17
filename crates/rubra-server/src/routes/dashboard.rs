//! `GET /`: a small dashboard page for a client. The page itself is static and public; it
//! asks for an API key and calls the JSON API with it, so it sees exactly what the key sees.
//!
//! The page is served with a strict Content-Security-Policy: nothing loads from elsewhere,
//! and the only script and style that run are the page's own inline blocks, allowed by their
//! SHA-256 hashes (computed once from the page compiled in, so editing the page cannot leave
//! a stale policy behind). An injected `<script>` or event handler would not run.

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::response::IntoResponse;
use base64::Engine;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// The page, compiled into the binary.
const PAGE: &str = include_str!("../../assets/dashboard.html");

/// The policy for [`PAGE`].
static POLICY: LazyLock<String> = LazyLock::new(|| policy_for(PAGE));

/// `GET /`: the dashboard.
pub async fn page() -> impl IntoResponse {
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-cache"),
            (CONTENT_SECURITY_POLICY, POLICY.as_str()),
        ],
        PAGE,
    )
}

/// The Content-Security-Policy of a page whose scripts and styles are inline blocks.
///
/// Style *attributes* (bar widths set in generated markup) are allowed; they cannot run code.
fn policy_for(page: &str) -> String {
    let scripts = hashes(page, "script");
    let styles = hashes(page, "style");
    format!(
        "default-src 'none'; script-src {scripts}; style-src {styles}; \
         style-src-attr 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// `'sha256-…'` sources for the contents of every `<tag>…</tag>` block of `page`, or
/// `'none'` when it has none.
fn hashes(page: &str, tag: &str) -> String {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        out.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &body[end + close.len()..];
    }
    if out.is_empty() {
        "'none'".to_owned()
    } else {
        out.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_allows_exactly_the_pages_own_blocks() {
        let page = "<style>a{}</style><script>one()</script><p></p><script>two()</script>";
        let p = policy_for(page);
        let h = |s: &str| {
            base64::engine::general_purpose::STANDARD.encode(Sha256::digest(s.as_bytes()))
        };
        assert!(
            p.contains(&format!(
                "script-src 'sha256-{}' 'sha256-{}';",
                h("one()"),
                h("two()")
            )),
            "{p}"
        );
        assert!(
            p.contains(&format!("style-src 'sha256-{}';", h("a{}"))),
            "{p}"
        );
        assert!(p.contains("default-src 'none'") && p.contains("frame-ancestors 'none'"));
        assert!(policy_for("<p>static</p>").contains("script-src 'none'"));
    }

    #[test]
    fn the_dashboard_has_a_script_and_a_style_block_to_hash() {
        assert!(!POLICY.contains("script-src 'none'"), "{}", *POLICY);
        assert!(!POLICY.contains("style-src 'none'"), "{}", *POLICY);
    }
}
