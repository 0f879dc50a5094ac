//! The routes: the page and its assets, and the JSON API under `/api/`. No route takes a path:
//! images are named by their index ids, so only indexed files are ever read, and anything
//! else (`..`, escapes, absolute paths, unknown ids) is the same 404.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::{from_fn, from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use tower_http::timeout::RequestBodyTimeoutLayer;
use xsearch::decode::format::{by_signature, Support};
use xsearch::decode::{read_file, DecodeLimits};
use xsearch::{format_taken, ImageId, SearchOptions, Term};

use super::error::ApiError;
use super::params::{pairs, SearchParams};
use super::thumbs;
use super::{auth, page, App};
use crate::output::{score4, JsonPath};

/// The largest upload: a 100-megapixel JPEG is about this size.
pub const UPLOAD_LIMIT: usize = 32 << 20;

/// How long browsers may reuse a thumbnail or an original before asking again (by ETag).
const CACHE_CONTROL: &str = "private, max-age=3600";

pub fn router(app: App, timeout: Duration) -> Router {
    Router::new()
        .route("/", get(page::index))
        .route("/app.js", get(page::script))
        .route("/style.css", get(page::style))
        .route("/api/search", get(search_get).post(search_post))
        .route("/api/texts", get(texts))
        .route("/api/status", get(status))
        .route("/api/dupes", get(super::dupes::dupes))
        .route("/api/thumbnail/{id}", get(thumbnail))
        .route("/api/image/{id}", get(image))
        .fallback(|| async { ApiError::not_found() })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        })
        .layer(from_fn_with_state(app.clone(), auth::require))
        .layer(DefaultBodyLimit::max(UPLOAD_LIMIT))
        .layer(RequestBodyTimeoutLayer::new(timeout))
        .layer(from_fn(secure))
        .with_state(app)
}

/// Headers on every response: nothing may be sniffed into another type, the page runs only
/// its own scripts and styles and loads only from this server, no other site may frame it,
/// and no address leaks in a Referer. No CORS header: other origins' scripts cannot read the
/// API.
async fn secure(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[derive(Serialize)]
struct Results<T> {
    results: Vec<T>,
}

#[derive(Serialize)]
struct ImageResult {
    rank: usize,
    score: f64,
    id: String,
    #[serde(flatten)]
    path: JsonPath,
    /// ISO 8601, when known, as `xsearch query --json` gives it.
    #[serde(skip_serializing_if = "Option::is_none")]
    taken: Option<String>,
    thumbnail: String,
    image: String,
}

#[derive(Serialize)]
struct TextResult {
    rank: usize,
    score: f64,
    text: String,
}

async fn search_get(State(app): State<App>, uri: Uri) -> Result<Response, ApiError> {
    let params = SearchParams::parse(pairs(uri.query().unwrap_or(""))?, false)?;
    search(app, params, None).await
}

/// `POST /api/search`: an image as the body (raw, or a multipart form's file, whose other
/// fields are parameters), or a form of parameters (for queries too long for a URL).
async fn search_post(
    State(app): State<App>,
    uri: Uri,
    request: Request,
) -> Result<Response, ApiError> {
    let mut found = pairs(uri.query().unwrap_or(""))?;
    let kind = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let (parts, body) = request.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > UPLOAD_LIMIT as u64) {
        return Err(ApiError::too_large(UPLOAD_LIMIT));
    }
    let bytes = axum::body::to_bytes(body, UPLOAD_LIMIT)
        .await
        .map_err(body_error)?;
    let image = match kind.as_str() {
        "application/x-www-form-urlencoded" => {
            let form = std::str::from_utf8(&bytes)
                .map_err(|_| ApiError::bad_request("the form is not valid UTF-8"))?;
            found.extend(pairs(form)?);
            None
        }
        "multipart/form-data" => {
            let request = Request::from_parts(parts, Body::from(bytes));
            let mut form = Multipart::from_request(request, &())
                .await
                .map_err(|e| ApiError::bad_request(e.body_text()))?;
            let mut image = None;
            while let Some(field) = form
                .next_field()
                .await
                .map_err(|e| ApiError::new(e.status(), e.body_text()))?
            {
                let name = field.name().unwrap_or_default().to_owned();
                let is_file = field.file_name().is_some() || name == "image";
                let data = field
                    .bytes()
                    .await
                    .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
                if is_file {
                    if image.replace(data).is_some() {
                        return Err(ApiError::bad_request("send one image at a time"));
                    }
                } else {
                    let value = String::from_utf8(data.to_vec())
                        .map_err(|_| ApiError::bad_request("a form field is not valid UTF-8"))?;
                    found.push((name, value));
                }
            }
            Some(image.ok_or_else(|| ApiError::bad_request("the form holds no image file"))?)
        }
        // The content decides the format, never the type a client claims.
        "" | "application/octet-stream" => Some(bytes),
        kind if kind.starts_with("image/") => Some(bytes),
        kind => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "{kind:.60}: send an image, a multipart form with one, or a form of parameters"
                ),
            ))
        }
    };
    if image.as_ref().is_some_and(Bytes::is_empty) {
        return Err(ApiError::bad_request("the upload is empty"));
    }
    search(app, SearchParams::parse(found, false)?, image).await
}

/// What went wrong reading a body: too long (413), too slow (408), or cut off (400).
fn body_error(err: axum::Error) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return ApiError::too_large(UPLOAD_LIMIT);
        }
        if e.is::<tower_http::timeout::TimeoutError>() {
            return ApiError::new(StatusCode::REQUEST_TIMEOUT, "the body came too slowly");
        }
        cause = e.source();
    }
    ApiError::bad_request("the body could not be read")
}

async fn search(
    app: App,
    params: SearchParams,
    image: Option<Bytes>,
) -> Result<Response, ApiError> {
    let results = app
        .blocking(move |app| {
            let mut query = params.query()?.unwrap_or_default();
            if let Some(bytes) = image {
                query = query.with(
                    1.0,
                    Term::Image(
                        app.engine
                            .decode_bytes(&bytes)
                            .map_err(xsearch::Error::from)?,
                    ),
                );
            }
            if query.terms.is_empty() {
                return Err(ApiError::bad_request(
                    "empty query: give q (text), like (an image id) or an image",
                ));
            }
            let hits = app.engine.search(&query, &params.options())?;
            Ok(hits
                .into_iter()
                .enumerate()
                .skip(params.offset)
                .map(|(i, hit)| ImageResult {
                    rank: i + 1,
                    score: score4(hit.score),
                    id: hit.id.to_string(),
                    path: JsonPath::new(&hit.path),
                    taken: hit.taken.as_ref().map(format_taken),
                    thumbnail: format!("/api/thumbnail/{}", hit.id),
                    image: format!("/api/image/{}", hit.id),
                })
                .collect())
        })
        .await?;
    Ok(Json(Results { results }).into_response())
}

async fn texts(State(app): State<App>, uri: Uri) -> Result<Response, ApiError> {
    let params = SearchParams::parse(pairs(uri.query().unwrap_or(""))?, true)?;
    let results = app
        .blocking(move |app| {
            let query = params.query()?.ok_or_else(|| {
                ApiError::bad_request("empty query: give q (text) or like (an image id)")
            })?;
            let hits = app
                .engine
                .search_texts(&query, &SearchOptions::new(params.k))?;
            Ok(hits
                .into_iter()
                .enumerate()
                .map(|(i, hit)| TextResult {
                    rank: i + 1,
                    score: score4(hit.score),
                    text: hit.text,
                })
                .collect())
        })
        .await?;
    Ok(Json(Results::<TextResult> { results }).into_response())
}

/// Failures listed at most; `failures_total` counts them all.
const MAX_FAILURES: usize = 1000;

#[derive(Serialize)]
struct StatusRecord {
    index: String,
    model: Option<String>,
    fingerprint: String,
    dim: usize,
    images: usize,
    texts: usize,
    failures_total: usize,
    failures: Vec<FailureRecord>,
    /// What the watcher does, with `--watch`.
    indexing: Option<super::watcher::Indexing>,
}

#[derive(Serialize)]
struct FailureRecord {
    #[serde(flatten)]
    path: JsonPath,
    reason: String,
}

async fn status(State(app): State<App>, uri: Uri) -> Result<Response, ApiError> {
    if uri.query().is_some_and(|q| !q.is_empty()) {
        return Err(ApiError::bad_request("status takes no parameters"));
    }
    let record = app
        .blocking(|app| {
            let status = app.engine.status()?;
            Ok(StatusRecord {
                index: status.index.to_string_lossy().into_owned(),
                model: status.model,
                fingerprint: status.fingerprint,
                dim: status.dim,
                images: status.images,
                texts: status.texts,
                failures_total: status.failures.len(),
                failures: status
                    .failures
                    .into_iter()
                    .take(MAX_FAILURES)
                    .map(|f| FailureRecord {
                        path: JsonPath::new(&f.path),
                        reason: f.reason,
                    })
                    .collect(),
                indexing: app.indexing.as_ref().map(|p| p.snapshot()),
            })
        })
        .await?;
    Ok(Json(record).into_response())
}

/// The id in `/api/thumbnail/ID` or `/api/image/ID`; anything else there is a 404.
fn id_of(
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<ImageId, ApiError> {
    let Path(text) = path.map_err(|_| ApiError::not_found())?;
    text.parse().map_err(|_| ApiError::not_found())
}

/// A response that is the client's copy if its `If-None-Match` names `etag`.
fn cached(headers: &HeaderMap, etag: &str) -> Option<Response> {
    let given = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    given.split(',').any(|tag| tag.trim() == etag).then(|| {
        (
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag.to_owned()),
                (header::CACHE_CONTROL, CACHE_CONTROL.to_owned()),
            ],
        )
            .into_response()
    })
}

async fn thumbnail(
    State(app): State<App>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    app.blocking(move |app| {
        let (file, version) = thumbs::version(&app.engine, id)?.ok_or_else(ApiError::not_found)?;
        if let Some(response) = cached(&headers, &format!("\"{version}\"")) {
            return Ok(response);
        }
        let thumb = app.thumbs.get(&app.engine, &file, &version)?;
        Ok((
            [
                (header::CONTENT_TYPE, "image/jpeg".to_owned()),
                (header::CACHE_CONTROL, CACHE_CONTROL.to_owned()),
                (header::ETAG, thumb.etag),
            ],
            thumb.jpeg,
        )
            .into_response())
    })
    .await
}

async fn image(
    State(app): State<App>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = id_of(path)?;
    app.blocking(move |app| {
        let (file, version) = thumbs::version(&app.engine, id)?.ok_or_else(ApiError::not_found)?;
        let etag = format!("\"{version}\"");
        if let Some(response) = cached(&headers, &etag) {
            return Ok(response);
        }
        // The same bounded read as decoding: a regular file, within the size limit. And still
        // an image: a photo replaced by a link to another file does not serve that file.
        let bytes =
            read_file(&file, &DecodeLimits::default()).map_err(|_| ApiError::not_found())?;
        if by_signature(&bytes) != Some(Support::Decoded) {
            return Err(ApiError::not_found());
        }
        Ok((
            [
                (header::CONTENT_TYPE, content_type(&bytes).to_owned()),
                (header::CACHE_CONTROL, CACHE_CONTROL.to_owned()),
                (header::ETAG, etag),
            ],
            bytes,
        )
            .into_response())
    })
    .await
}

/// The type the content says (with `nosniff`, browsers take it as given); bytes of a format
/// a browser cannot show download instead.
fn content_type(bytes: &[u8]) -> &'static str {
    match image::guess_format(bytes) {
        Ok(format) => format.to_mime_type(),
        Err(_) => "application/octet-stream",
    }
}
