//! ftfy 6.3.1's `fix_text` in its default configuration, as open_clip's `basic_clean` runs it.
//!
//! Here: `unescape_html` ("auto"), `fix_c1_controls`, `fix_latin_ligatures`,
//! `fix_character_width`, `uncurl_quotes`, `fix_line_breaks`, `remove_terminal_escapes`,
//! `remove_control_chars`, NFC, the repeat-until-stable loop of `fix_and_explain` and the
//! line-by-line segmentation of `fix_text`. `fix_encoding` (mojibake repair, driven by ftfy's
//! badness heuristic) is in `mojibake.rs`, its `utf-8-variants` decoder in `utf8_variants.rs`.
//! `fix_surrogates` has nothing to do: a Rust `str` cannot hold surrogates, and no decoder ftfy
//! runs produces one.

use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use super::html::ftfy_unescape;
use super::mojibake::{fix_c1_controls, fix_encoding};
use super::tables::{CONTROL_CHARS, LIGATURES, WIDTH_MAP};

/// ftfy's `TextFixerConfig.max_decode_length`: the longest segment fixed in one piece.
const MAX_DECODE_LENGTH: usize = 1_000_000;

/// Mirrors `ftfy.fix_text`: fixes `text` one line (or `MAX_DECODE_LENGTH` characters) at a
/// time. As in ftfy, the first segment that contains `<` turns HTML unescaping off for it and
/// for every segment after it, since the text is probably real HTML.
pub(super) fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut unescape_html = true;
    let mut rest = text;
    while !rest.is_empty() {
        let end = segment_end(rest);
        let (segment, tail) = rest.split_at(end);
        if segment.contains('<') {
            unescape_html = false;
        }
        out.push_str(&fix_segment(segment, unescape_html));
        rest = tail;
    }
    out
}

/// The byte length of the first segment of `text`: up to and including the first `\n`, but at
/// most `MAX_DECODE_LENGTH` characters.
fn segment_end(text: &str) -> usize {
    for (count, (index, c)) in text.char_indices().enumerate() {
        if count == MAX_DECODE_LENGTH {
            return index;
        }
        if c == '\n' {
            return index + 1;
        }
    }
    text.len()
}

/// Mirrors `ftfy.fix_and_explain`: apply every fixer in ftfy's order until the text stops
/// changing.
fn fix_segment(segment: &str, unescape_html: bool) -> String {
    let mut text = segment.to_string();
    loop {
        let mut fixed = if unescape_html {
            ftfy_unescape(&text)
        } else {
            text.clone()
        };
        if let Some(repaired) = fix_encoding(&fixed) {
            fixed = repaired;
        }
        fixed = fix_c1_controls(&fixed);
        fixed = map_chars(&fixed, fix_latin_ligature);
        fixed = map_chars(&fixed, fix_character_width);
        fixed = map_chars(&fixed, uncurl_quote);
        fixed = fix_line_breaks(&fixed);
        fixed = remove_terminal_escapes(&fixed);
        fixed.retain(|c| !is_control_char(c));
        fixed = fixed.nfc().collect();
        if fixed == text {
            return fixed;
        }
        text = fixed;
    }
}

/// A character replacement, as ftfy's `str.translate` tables and one-character regexes are.
enum Replacement {
    Keep,
    Char(char),
    Str(&'static str),
}

fn map_chars(text: &str, replace: fn(char) -> Replacement) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match replace(c) {
            Replacement::Keep => out.push(c),
            Replacement::Char(r) => out.push(r),
            Replacement::Str(s) => out.push_str(s),
        }
    }
    out
}

fn lookup(table: &'static [(char, &'static str)], c: char) -> Replacement {
    match table.binary_search_by_key(&c, |&(key, _)| key) {
        Ok(index) => Replacement::Str(table[index].1),
        Err(_) => Replacement::Keep,
    }
}

/// Mirrors `fixes.fix_latin_ligatures`.
fn fix_latin_ligature(c: char) -> Replacement {
    lookup(LIGATURES, c)
}

/// Mirrors `fixes.fix_character_width`: fullwidth ASCII, halfwidth katakana and hangul, and the
/// ideographic space to their ordinary forms.
fn fix_character_width(c: char) -> Replacement {
    lookup(WIDTH_MAP, c)
}

/// Mirrors `fixes.uncurl_quotes`.
fn uncurl_quote(c: char) -> Replacement {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => Replacement::Char('\''),
        '\u{201c}'..='\u{201f}' => Replacement::Char('"'),
        _ => Replacement::Keep,
    }
}

/// Mirrors `fixes.fix_line_breaks`: CRLF, CR, U+2028, U+2029 and U+0085 become `\n`.
fn fix_line_breaks(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}', '\u{85}'], "\n")
}

/// Mirrors `fixes.remove_terminal_escapes` (ANSI colour and cursor sequences).
fn remove_terminal_escapes(text: &str) -> String {
    static ANSI: OnceLock<Regex> = OnceLock::new();
    if !text.contains('\x1b') {
        return text.to_string();
    }
    // Python's `\d` in a str pattern is any Unicode decimal digit, as is regex's.
    let ansi =
        ANSI.get_or_init(|| Regex::new(r"\x1b\[[\d;]*[a-zA-Z]").expect("ansi regex is valid"));
    ansi.replace_all(text, "").into_owned()
}

/// Mirrors `fixes.remove_control_chars`: the controls that have no visible effect.
fn is_control_char(c: char) -> bool {
    CONTROL_CHARS.iter().any(|&(lo, hi)| (lo..=hi).contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ftfy_docstring_examples() {
        assert_eq!(
            fix_text("Broken text&hellip; it&#x2019;s \u{fb02}ubberi\u{fb01}c!"),
            "Broken text\u{2026} it's flubberific!"
        );
        assert_eq!(fix_text("ＬＯＵＤ　ＮＯＩＳＥＳ"), "LOUD NOISES");
        assert_eq!(fix_text("Ｕﾀｰﾝ"), "Uターン");
        assert_eq!(fix_text("\u{fb02}u\u{fb03}e\u{fb06}"), "fluffiest");
        assert_eq!(
            fix_text("\u{201c}here\u{2019}s a test\u{201d}"),
            "\"here's a test\""
        );
        assert_eq!(
            fix_text("\x1b[36;44mI'm blue, da ba dee\x1b[0m"),
            "I'm blue, da ba dee"
        );
    }

    #[test]
    fn line_breaks_and_controls() {
        assert_eq!(fix_text("a\r\nb\rc\u{2028}d\u{2029}e"), "a\nb\nc\nd\ne");
        // U+0085 is a C1 control, so fix_c1_controls turns it into an ellipsis first.
        assert_eq!(fix_text("what \u{85} is"), "what \u{2026} is");
        assert_eq!(
            fix_text("a\x00b\x07c\x7fd\u{feff}e\u{fffc}f\tg"),
            "abcdef\tg"
        );
        assert_eq!(fix_text("\u{80}\u{81}\u{9f}"), "\u{20ac}\u{81}\u{178}");
    }

    #[test]
    fn nfc_and_repeat_until_stable() {
        assert_eq!(fix_text("cafe\u{301}"), "caf\u{e9}");
        // The loop unescapes one level per round until nothing changes.
        assert_eq!(fix_text("&amp;amp;amp;"), "&");
        // ŉ splits into U+02BC + n, and uncurl_quotes, later in the round, straightens U+02BC.
        assert_eq!(fix_text("\u{149}"), "'n");
    }

    #[test]
    fn a_less_than_sign_stops_unescaping_from_its_line_on() {
        assert_eq!(fix_text("&amp; a\n&amp; <\n&amp;"), "& a\n&amp; <\n&amp;");
    }

    #[test]
    fn segments_split_after_newlines() {
        assert_eq!(segment_end("ab\ncd"), 3);
        assert_eq!(segment_end("abcd"), 4);
        assert_eq!(segment_end(""), 0);
    }
}
