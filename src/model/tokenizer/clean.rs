//! open_clip's text clean-up for `clean="lower"`: `whitespace_clean(basic_clean(text)).lower()`.

use super::{ftfy, html};

/// Python's `str.isspace`: Unicode White_Space plus the information separators U+001C..U+001F,
/// which Python counts as whitespace and Rust does not.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Mirrors open_clip's `_clean_lower`: `basic_clean` (ftfy, then `html.unescape` twice, then
/// strip), `whitespace_clean` (`" ".join(text.split())`) and `str.lower`.
pub(super) fn clean_lower(text: &str) -> String {
    let fixed = ftfy::fix_text(text);
    let unescaped = html::unescape(&html::unescape(&fixed));
    // Splitting on runs of whitespace and dropping empty pieces also strips both ends.
    let words: Vec<&str> = unescaped
        .split(is_python_space)
        .filter(|word| !word.is_empty())
        .collect();
    // Rust's to_lowercase, like Python's str.lower, applies the full (multi-character)
    // mappings and the final-sigma rule.
    words.join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapses_and_strips_whitespace() {
        assert_eq!(
            clean_lower("  a \t\n b\r\n\u{a0}c\u{3000}d\u{2003}e  "),
            "a b c d e"
        );
        assert_eq!(clean_lower(""), "");
        assert_eq!(clean_lower(" \t\n"), "");
        // ftfy removes U+001C..U+001F before the split sees them, but the split itself
        // follows Python's isspace.
        assert!(is_python_space('\u{1c}') && is_python_space('\u{85}'));
        assert!(!is_python_space('\u{200b}') && !is_python_space('\u{180e}'));
    }

    #[test]
    fn unescapes_html_twice_after_ftfy() {
        // ftfy's loop unescapes fully, then html.unescape handles what ftfy leaves alone.
        assert_eq!(clean_lower("fish &amp;amp; chips"), "fish & chips");
        assert_eq!(clean_lower("&eacute without"), "\u{e9} without");
        // After a `<` ftfy stops unescaping, so only the two html.unescape rounds apply.
        assert_eq!(clean_lower("a < b &amp;amp;amp; c"), "a < b &amp; c");
        assert_eq!(clean_lower("x&nbsp;&Tab;y"), "x y");
    }

    #[test]
    fn lower_cases_like_python() {
        assert_eq!(clean_lower("ΟΔΟΣ ΑΣ"), "οδος ας");
        assert_eq!(clean_lower("İstanbul"), "i\u{307}stanbul");
        assert_eq!(clean_lower("Straße CAFÉ"), "straße café");
    }
}
