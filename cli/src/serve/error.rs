//! The API's errors: a status and a sentence, sent as `{"error":"..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// The one answer for anything a client may not see or that is not there: unknown and
    /// malformed ids, paths outside the routes. It says nothing about why.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }

    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is over {} MiB", limit >> 20),
        )
    }
}

impl From<xsearch::Error> for ApiError {
    /// What the client got wrong is a 400 (a 404 for an id the index does not hold); the
    /// rest is the server's trouble, a 500 whose cause goes to stderr, not to the client.
    fn from(err: xsearch::Error) -> Self {
        use xsearch::Error as E;
        match &err {
            E::Query(_) | E::EmptyQuery | E::BadWeight { .. } | E::TextTooLong { .. } => {
                Self::bad_request(first_paragraph(&err))
            }
            E::Decode(_) => Self::bad_request(format!(
                "the upload is not an image xsearch can read: {}",
                first_paragraph(&err)
            )),
            E::UnknownImage { .. } => Self::not_found(),
            _ => {
                eprintln!(
                    "xsearch: serve: {}",
                    crate::output::error_message(&err.into())
                );
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

/// The library's messages end with a blank line and advice for a library caller: the client
/// gets the first part.
fn first_paragraph(err: &dyn std::fmt::Display) -> String {
    let text = err.to_string();
    text.split("\n\n").next().unwrap_or_default().to_owned()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}
