//! The web page: one HTML file, one script, one stylesheet, all compiled into the binary (no
//! CDN, no web fonts: it works offline). The ids and classes the browser tests drive are a
//! contract, listed in ARCHITECTURE.md.

use axum::extract::State;
use axum::http::header;
use axum::http::Uri;
use axum::response::{Html, IntoResponse, Response};

use super::params::pairs;
use super::{auth, App};

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/style.css");

/// The page reads its search from the URL itself; here only `?token=` matters.
pub async fn index(State(app): State<App>, uri: Uri) -> Response {
    let found = pairs(uri.query().unwrap_or("")).unwrap_or_default();
    if let Some(response) = auth::take_from_page(&app, &found) {
        return response;
    }
    ([(header::CACHE_CONTROL, "no-cache")], Html(INDEX)).into_response()
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}
