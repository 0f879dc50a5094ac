//! `GET /api/dupes`: the groups of `xsearch dupes`, with ids and thumbnails for the page.

use axum::extract::State;
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::params::{pairs, DupesParams};
use super::App;
use crate::commands::dupes::kind_name;
use crate::output::{score4, JsonPath};

#[derive(Serialize)]
struct Groups {
    groups: Vec<GroupRecord>,
}

/// `xsearch dupes --json`'s group, its files as images the page can show.
#[derive(Serialize)]
struct GroupRecord {
    group: usize,
    kind: &'static str,
    score: f64,
    images: Vec<GroupImage>,
    /// The suggested keeper's id.
    keep: String,
}

#[derive(Serialize)]
struct GroupImage {
    id: String,
    #[serde(flatten)]
    path: JsonPath,
    thumbnail: String,
}

pub async fn dupes(State(app): State<App>, uri: Uri) -> Result<Response, ApiError> {
    let params = DupesParams::parse(pairs(uri.query().unwrap_or(""))?)?;
    // Scores every image against its neighbours: a blocking job like a search, only longer.
    let groups = app
        .blocking(move |app| {
            let groups = app.engine.duplicates(&params.options())?;
            Ok(groups
                .into_iter()
                .enumerate()
                .map(|(i, group)| GroupRecord {
                    group: i + 1,
                    kind: kind_name(group.kind),
                    score: score4(group.score),
                    images: group
                        .paths
                        .iter()
                        .zip(&group.ids)
                        .map(|(path, id)| GroupImage {
                            id: id.to_string(),
                            path: JsonPath::new(path),
                            thumbnail: format!("/api/thumbnail/{id}"),
                        })
                        .collect(),
                    keep: group.keep_id.to_string(),
                })
                .collect())
        })
        .await?;
    Ok(Json(Groups { groups }).into_response())
}
