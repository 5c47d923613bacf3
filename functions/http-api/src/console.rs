//! The representative console: one HTML page, plain JavaScript modules and a
//! style sheet, embedded in the binary and served at `/` and `/console/...`
//! (docs/console.md). The page signs in with the representative token, keeps
//! it in sessionStorage and calls the JSON API with it as a bearer; it never
//! renders what a customer or an agent wrote as markup.
//!
//! Every response carries a strict Content-Security-Policy (scripts, styles
//! and requests from this origin only, no inline script or style, no
//! framing), `X-Content-Type-Options: nosniff` and `Referrer-Policy:
//! no-referrer`.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// The console's routes (not JSON API routes; docs/console.md).
pub const CONSOLE_ROUTES: &[(&str, &str)] = &[("GET", "/"), ("GET", "/console/{asset}")];

pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

const INDEX: &str = include_str!("../console/index.html");

/// The embedded assets: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../console/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../console/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_str!("../console/dom.js")),
    ("views.js", "text/javascript; charset=utf-8", include_str!("../console/views.js")),
    ("console.css", "text/css; charset=utf-8", include_str!("../console/console.css")),
];

/// The console's asset by name, if there is one.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS.iter().find(|(n, _, _)| *n == name).map(|(_, kind, body)| (*kind, *body))
}

fn page(status: StatusCode, content_type: &'static str, body: &'static str) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index() -> Response {
    page(StatusCode::OK, "text/html; charset=utf-8", INDEX)
}

async fn console_asset(Path(name): Path<String>) -> Response {
    match asset(&name) {
        Some((kind, body)) => page(StatusCode::OK, kind, body),
        None => page(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "no such console asset"),
    }
}

/// The console's routes, for the API router to merge.
pub fn router<T: Clone + Send + Sync + 'static>() -> Router<T> {
    Router::new().route("/", get(index)).route("/console/{asset}", get(console_asset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_page_loads_is_embedded_and_nothing_is_inline() {
        for line in INDEX.lines() {
            let line = line.trim();
            if line.starts_with("<script") {
                let src = line.split("src=\"/console/").nth(1).and_then(|s| s.split('"').next());
                let src = src.unwrap_or_else(|| panic!("inline script: {line}"));
                assert!(asset(src).is_some(), "{src} is not embedded");
            }
            assert!(!line.starts_with("<style"), "inline style: {line}");
            assert!(!line.contains(" style=\""), "inline style attribute: {line}");
            assert!(!line.contains(" onclick="), "inline handler: {line}");
        }
        // Modules import each other by relative path; each must be embedded.
        for (_, _, body) in ASSETS {
            for import in body.lines().filter(|l| l.starts_with("import ")) {
                let name = import.split("\"./").nth(1).and_then(|s| s.split('"').next());
                let name = name.unwrap_or_else(|| panic!("import without a relative path: {import}"));
                assert!(asset(name).is_some(), "{name} is imported but not embedded");
            }
        }
    }

    #[test]
    fn scripts_never_write_markup() {
        for (name, _, body) in ASSETS.iter().filter(|(n, _, _)| n.ends_with(".js")) {
            for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
                assert!(!body.contains(forbidden), "{name} uses {forbidden}");
            }
        }
    }
}
