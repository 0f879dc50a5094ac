//! Request parameters: the query string (or a form body) decoded and checked, so the routes
//! see only valid values. Every problem is a 400 that names the parameter.

use std::path::PathBuf;

use xsearch::{ImageId, Query, Term};

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
        let pairs = pairs("like=1&in=%2Fp").unwrap();
        assert!(SearchParams::parse(pairs, true).is_err());
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
