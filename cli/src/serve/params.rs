//! Request parameters: the query string (or a form body) decoded and checked, so the routes
//! see only valid values. Every problem is a 400 that names the parameter.

use std::path::PathBuf;
use std::time::SystemTime;

use xsearch::{DupesOptions, ImageId, Query, SearchOptions, Sort, Term};

use super::error::ApiError;

/// Most results one request returns (`k`).
pub const MAX_K: usize = 1000;
/// How deep paging goes: `offset + k` stays within the CLI's bound on one search.
pub const MAX_DEPTH: usize = crate::commands::query::MAX_K;
/// Results when `k` is not given.
const DEFAULT_K: usize = 50;

/// Decodes `a=1&b=x+y` (percent-escapes and `+` for a space), keeping repeated names in order.
pub fn pairs(raw: &str) -> Result<Vec<(String, String)>, ApiError> {
    raw.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

fn decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "a `%` escape in the query is not `%` and two hex digits",
                        )
                    })?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("the query is not valid UTF-8"))
}

/// What a search asks for, checked.
#[derive(Debug, Default)]
pub struct SearchParams {
    /// Text terms in the CLI's syntax; never file paths.
    pub q: Option<String>,
    /// Indexed images to search like.
    pub like: Vec<ImageId>,
    pub k: usize,
    pub offset: usize,
    /// The folder filter.
    pub within: Option<PathBuf>,
    /// The score floor: no result scores below it.
    pub min_score: Option<f32>,
    /// Only images taken at or after this instant.
    pub after: Option<SystemTime>,
    /// Only images taken before this instant.
    pub before: Option<SystemTime>,
    /// Only images whose camera contains this text, ignoring case.
    pub camera: Option<String>,
    pub sort: Sort,
}

impl SearchParams {
    /// Parses the parameters of `/api/search` (`texts`: of `/api/texts`, which takes no
    /// filter and no paging).
    pub fn parse(pairs: Vec<(String, String)>, texts: bool) -> Result<Self, ApiError> {
        let mut params = SearchParams {
            k: DEFAULT_K,
            ..SearchParams::default()
        };
        let mut seen = Vec::new();
        for (name, value) in pairs {
            let repeatable = name == "like";
            if !repeatable && seen.contains(&name) {
                return Err(ApiError::bad_request(format!("`{name}` is given twice")));
            }
            match (name.as_str(), texts) {
                ("q", _) => params.q = Some(value).filter(|q| !q.trim().is_empty()),
                ("like", _) => params.like.push(value.parse().map_err(|_| {
                    ApiError::bad_request(format!("like={value:.40}: not an image id"))
                })?),
                ("k", _) => params.k = number(&name, &value, 1, MAX_K)?,
                ("offset", false) => params.offset = number(&name, &value, 0, MAX_DEPTH - 1)?,
                ("in", false) => params.within = Some(within(&value)?),
                ("min_score", false) => params.min_score = Some(score(&value)?),
                ("after", false) => params.after = Some(date(&name, &value)?),
                ("before", false) => params.before = Some(date(&name, &value)?),
                ("camera", false) => params.camera = Some(value).filter(|c| !c.trim().is_empty()),
                ("sort", false) => params.sort = sort(&value)?,
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "unknown parameter `{name:.40}`"
                    )))
                }
            }
            seen.push(name);
        }
        if params.offset + params.k > MAX_DEPTH {
            return Err(ApiError::bad_request(format!(
                "offset + k is over {MAX_DEPTH}: page no deeper"
            )));
        }
        Ok(params)
    }

    /// The options of the filters and the order, for the first `offset + k` hits.
    pub fn options(&self) -> SearchOptions {
        let mut options = SearchOptions::new(self.offset + self.k).sort(self.sort);
        if let Some(dir) = &self.within {
            options = options.within(dir);
        }
        if let Some(after) = self.after {
            options = options.after(after);
        }
        if let Some(before) = self.before {
            options = options.before(before);
        }
        if let Some(camera) = &self.camera {
            options = options.camera(camera);
        }
        if let Some(floor) = self.min_score {
            options = options.min_score(floor);
        }
        options
    }

    /// The query of `q` and the `like` images; `None` when they are both absent.
    pub fn query(&self) -> Result<Option<Query>, ApiError> {
        let mut query = match &self.q {
            Some(q) => Query::parse_texts(q).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => Query::default(),
        };
        for id in &self.like {
            query = query.with(1.0, Term::Indexed(*id));
        }
        Ok(Some(query).filter(|q| !q.terms.is_empty()))
    }
}

/// What `/api/dupes` asks for, checked.
#[derive(Debug, Default)]
pub struct DupesParams {
    pub threshold: Option<f32>,
    pub within: Option<PathBuf>,
}

impl DupesParams {
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut params = DupesParams::default();
        for (name, value) in pairs {
            match name.as_str() {
                "threshold" if params.threshold.is_none() => {
                    params.threshold = Some(threshold(&value)?);
                }
                "in" if params.within.is_none() => params.within = Some(within(&value)?),
                "threshold" | "in" => {
                    return Err(ApiError::bad_request(format!("`{name}` is given twice")))
                }
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "unknown parameter `{name:.40}`"
                    )))
                }
            }
        }
        Ok(params)
    }

    pub fn options(&self) -> DupesOptions {
        let mut options = DupesOptions::default();
        if let Some(threshold) = self.threshold {
            options = options.threshold(threshold);
        }
        if let Some(dir) = &self.within {
            options = options.within(dir);
        }
        options
    }
}

/// A similarity above 0 and at most 1, as `xsearch dupes --threshold` takes.
fn threshold(value: &str) -> Result<f32, ApiError> {
    value
        .parse::<f32>()
        .ok()
        .filter(|t| *t > 0.0 && *t <= 1.0)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "threshold={value:.40}: give a number above 0 and at most 1"
            ))
        })
}

fn number(name: &str, value: &str, min: usize, max: usize) -> Result<usize, ApiError> {
    value
        .parse::<usize>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{name}={value:.40}: give a whole number from {min} to {max}"
            ))
        })
}

/// The folder filter must be absolute: the server's working directory means nothing to a
/// client.
fn within(value: &str) -> Result<PathBuf, ApiError> {
    let dir = PathBuf::from(value);
    if dir.is_absolute() {
        Ok(dir)
    } else {
        Err(ApiError::bad_request(format!(
            "in={value:.40}: give an absolute folder, e.g. /photos/2024"
        )))
    }
}

/// A date as the CLI's `--after` and `--before` take it, in the server's time zone unless it
/// names one.
fn date(name: &str, value: &str) -> Result<SystemTime, ApiError> {
    crate::date::parse(value)
        .map(|date| date.instant)
        .map_err(|examples| ApiError::bad_request(format!("{name}={value:.40}: {examples}")))
}

fn sort(value: &str) -> Result<Sort, ApiError> {
    match value {
        "score" => Ok(Sort::Score),
        "date" => Ok(Sort::Date),
        _ => Err(ApiError::bad_request(format!(
            "sort={value:.40}: give score or date"
        ))),
    }
}

fn score(value: &str) -> Result<f32, ApiError> {
    value
        .parse::<f32>()
        .ok()
        .filter(|s| (-1.0..=1.0).contains(s))
        .ok_or_else(|| {
            ApiError::bad_request(format!("min_score={value:.40}: give a number from -1 to 1"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(raw: &str) -> Result<SearchParams, String> {
        SearchParams::parse(pairs(raw).map_err(|e| e.message)?, false).map_err(|e| e.message)
    }

    #[test]
    fn escapes_and_repeats_decode() {
        let params = search("q=red+circle%21&like=2a&like=0&k=5&offset=10&in=%2Fp%2Fq").unwrap();
        assert_eq!(params.q.as_deref(), Some("red circle!"));
        assert_eq!(params.like, [ImageId(42), ImageId(0)]);
        assert_eq!((params.k, params.offset), (5, 10));
        assert_eq!(params.within, Some(PathBuf::from("/p/q")));
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for (raw, said) in [
            ("k=0", "k=0"),
            ("k=-1", "k=-1"),
            ("k=1001", "k=1001"),
            ("k=99999999999999999999999", "k=9999"),
            ("k=1&k=2", "`k` is given twice"),
            ("offset=9990&k=20", "offset + k"),
            ("like=..", "like=.."),
            ("like=%2e%2e%2Fetc", "like=../etc"),
            ("in=photos", "in=photos"),
            ("min_score=2", "min_score=2"),
            (
                "after=2021-13-01",
                "after=2021-13-01: expected an ISO 8601 date",
            ),
            ("before=yesterday", "before=yesterday"),
            ("sort=name", "sort=name: give score or date"),
            ("path=/etc/passwd", "unknown parameter `path`"),
            ("q=%ff", "not valid UTF-8"),
            ("q=%g1", "two hex digits"),
            ("q=%4", "two hex digits"),
        ] {
            let err = search(raw).unwrap_err();
            assert!(err.contains(said), "{raw}: {err}");
        }
    }

    #[test]
    fn texts_take_no_filters() {
        for raw in [
            "like=1&in=%2Fp",
            "q=a&after=2021-01-01",
            "q=a&camera=x",
            "q=a&sort=date",
        ] {
            assert!(
                SearchParams::parse(pairs(raw).unwrap(), true).is_err(),
                "{raw}"
            );
        }
    }

    #[test]
    fn a_query_is_never_a_file() {
        let query = search("q=%2Fetc%2Fpasswd")
            .unwrap()
            .query()
            .unwrap()
            .unwrap();
        assert!(matches!(&query.terms[0].term, Term::Text(t) if t == "/etc/passwd"));
        assert!(search("q=+++").unwrap().query().unwrap().is_none());
    }
}
