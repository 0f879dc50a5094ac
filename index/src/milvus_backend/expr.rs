//! Milvus boolean expressions for the backend's lookups and a search's [`Conditions`].

use crate::conditions::Conditions;

/// `text` as a Milvus string literal: double quotes, with `\` and `"` escaped.
pub(crate) fn quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        if c == '\\' || c == '"' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// `field in ["a","b"]`.
pub(crate) fn in_list<'a>(field: &str, values: impl IntoIterator<Item = &'a str>) -> String {
    let values: Vec<String> = values.into_iter().map(quote).collect();
    format!("{field} in [{}]", values.join(","))
}

/// The keys starting with `prefix`, as a range of the sorted strings (`prefix` ≤ key <
/// `prefix` with its last character incremented) rather than `like "prefix%"`, so a path's `%`
/// and `_` need no escaping. `None` for an empty prefix (every key).
pub(crate) fn prefix_range(field: &str, prefix: &str) -> Option<String> {
    let last = prefix.chars().last()?;
    let stem = &prefix[..prefix.len() - last.len_utf8()];
    // The next code point; past a surrogate gap or char::MAX, `like` with escapes instead.
    let next = (u32::from(last) + 1..=0x10FFFF).find_map(char::from_u32);
    Some(match next {
        Some(next) => format!(
            "({field} >= {} and {field} < {})",
            quote(prefix),
            quote(&format!("{stem}{next}"))
        ),
        None => format!(
            "{field} like {}",
            quote(&format!("{}%", like_escape(prefix)))
        ),
    })
}

/// `text` with `like`'s wildcards (`%`, `_`) and its escape (`\`) escaped.
fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// The expression of `conditions` on the image collection's scalar fields (`key`, `dated`,
/// `taken`, `camera`); `None` when they accept every image. `key_prefix` must be UTF-8 (keys
/// stored in Milvus are).
pub(crate) fn conditions(conditions: &Conditions, key_prefix: Option<&str>) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(range) = key_prefix.and_then(|prefix| prefix_range("key", prefix)) {
        parts.push(range);
    }
    if let Some(after) = conditions.after_ns {
        let from = Conditions::ceil_seconds(after);
        parts.push(format!("(dated == true and taken >= {from})"));
    }
    if let Some(before) = conditions.before_ns {
        let until = Conditions::ceil_seconds(before);
        parts.push(format!("(dated == true and taken < {until})"));
    }
    if let Some(camera) = &conditions.camera {
        let pattern = format!("%{}%", like_escape(camera));
        parts.push(format!(
            "(camera != \"\" and camera like {})",
            quote(&pattern)
        ));
    }
    (!parts.is_empty()).then(|| parts.join(" and "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!(quote(r#"/a "b"\c"#), r#""/a \"b\"\\c""#);
        assert_eq!(in_list("key", ["x", "y"]), r#"key in ["x","y"]"#);
    }

    #[test]
    fn a_folder_is_a_range_of_keys() {
        assert_eq!(
            prefix_range("key", "/a/b_%/").unwrap(),
            r#"(key >= "/a/b_%/" and key < "/a/b_%0")"#
        );
        assert_eq!(prefix_range("key", ""), None);
        assert_eq!(
            prefix_range("key", "/é").unwrap(),
            r#"(key >= "/é" and key < "/ê")"#
        );
    }

    #[test]
    fn times_round_to_whole_seconds_and_need_a_date_cameras_are_escaped() {
        let c = Conditions {
            key_prefix: None,
            after_ns: Some(1_000_000_000_000),
            before_ns: Some(1_060_000_000_001),
            camera: Some("100%_x".into()),
        };
        assert_eq!(
            conditions(&c, None).unwrap(),
            "(dated == true and taken >= 1000) and (dated == true and taken < 1061) and \
             (camera != \"\" and camera like \"%100\\\\%\\\\_x%\")"
        );
        assert_eq!(conditions(&Conditions::default(), None), None);
    }
}
