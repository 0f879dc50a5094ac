//! ftfy 6.3.1's mojibake repair, `fix_encoding`: text that is UTF-8 decoded in the wrong
//! single-byte encoding (`cafÃ©`) is encoded back and decoded as UTF-8, when ftfy's badness
//! heuristic says it looks like mojibake. Ported from ftfy's `__init__.py` (the plan),
//! `fixes.py` (the transcoders), `badness.py` and `chardata.py` (the heuristics); the codecs'
//! tables and the regexes are generated from ftfy itself by
//! `fixtures/tokenizer/make_mojibake_tables.py` into `mojibake_tables.rs`.
//!
//! Ordinary text costs one scan: ASCII text, and text the badness regex does not flag, leave
//! at the first test, as in ftfy.

use std::sync::OnceLock;

use regex::bytes::Regex as BytesRegex;
use regex::Regex;

use super::mojibake_tables::{
    ALTERED_UTF8, BADNESS_ALTERNATIVES, CHARMAPS, LOSSY_UTF8, UTF8_CONTINUATION_STRICT,
    UTF8_DETECTOR, WINDOWS_1252_UNDEFINED,
};
use super::tables::C1_TO_WINDOWS_1252;
use super::utf8_variants;

/// Mirrors `ftfy.fix_encoding` (`fix_encoding_and_explain` without the explanation): one
/// repair step after another until the text stops changing. `None` when it is unchanged.
pub(super) fn fix_encoding(text: &str) -> Option<String> {
    let mut fixed = fix_encoding_step(text)?;
    if fixed == text {
        return None;
    }
    while let Some(next) = fix_encoding_step(&fixed) {
        if next == fixed {
            break;
        }
        fixed = next;
    }
    Some(fixed)
}

/// Mirrors `_fix_encoding_one_step_and_explain`; `None` where it returns the text as it is.
fn fix_encoding_step(text: &str) -> Option<String> {
    if text.is_ascii() || !is_bad(text) {
        return None;
    }
    let mut latin_1_possible = false;
    for (encoding, sloppy, table) in &CHARMAPS {
        // `possible_encoding` is exactly "every character is in the table".
        let Some(mut bytes) = encode(text, table) else {
            continue;
        };
        latin_1_possible |= *encoding == "latin-1";
        if *encoding != "macroman" && altered_utf8().is_match(&bytes) {
            bytes = restore_byte_a0(&bytes);
        }
        if *sloppy {
            bytes = replace_lossy_sequences(&bytes);
        }
        let decoded = if bytes.contains(&0xed) || bytes.contains(&0xc0) {
            utf8_variants::decode(&bytes)
        } else {
            String::from_utf8(bytes).ok()
        };
        if decoded.is_some() {
            return decoded;
        }
    }
    if find_utf8_mojibake(text, 0).is_some() {
        let fixed = decode_inconsistent_utf8(text);
        if fixed != text {
            return Some(fixed);
        }
    }
    // ftfy then asks whether "windows-1252" was possible, a name its list never holds (it
    // holds "sloppy-windows-1252"), so latin-1 text always gets the strict windows-1252 try.
    if latin_1_possible {
        if let Some(fixed) = latin_1_as_windows_1252(text) {
            if fixed != text {
                return Some(fixed);
            }
        }
    }
    if text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)) {
        return Some(fix_c1_controls(text));
    }
    None
}

/// Mirrors `badness.is_bad`: whether any of ftfy's unlikely character sequences occurs.
pub(super) fn is_bad(text: &str) -> bool {
    static BADNESS: OnceLock<Regex> = OnceLock::new();
    BADNESS
        .get_or_init(|| {
            Regex::new(&BADNESS_ALTERNATIVES.join("|")).expect("generated badness regex is valid")
        })
        .is_match(text)
}

/// `text.encode(encoding)` for one of `CHARMAPS`' tables, `None` where a character has no byte.
fn encode(text: &str, table: &[char; 256]) -> Option<Vec<u8>> {
    text.chars()
        .map(|c| {
            let ascii = u8::try_from(c).ok().filter(|&b| table[usize::from(b)] == c);
            ascii.or_else(|| {
                let position = table.iter().position(|&t| t == c)?;
                u8::try_from(position).ok()
            })
        })
        .collect()
}

fn altered_utf8() -> &'static BytesRegex {
    static ALTERED: OnceLock<BytesRegex> = OnceLock::new();
    ALTERED.get_or_init(|| BytesRegex::new(ALTERED_UTF8).expect("generated regex is valid"))
}

/// Mirrors `fixes.restore_byte_a0`: put back the `0xA0` bytes that a Windows program turned
/// into spaces inside UTF-8 sequences. First `A_GRAVE_WORD_RE`, `\xc3 (?! |quele|quela|quilo|s )`
/// (the lookahead is why it is hand-ported: the generator checks the pattern is unchanged),
/// becomes `\xc3\xa0 ` ("à" followed by a space); then every `ALTERED_UTF8_RE` match gets its
/// spaces turned into `0xA0`.
fn restore_byte_a0(bytes: &[u8]) -> Vec<u8> {
    const NOT_BEFORE: [&[u8]; 5] = [b" ", b"quele", b"quela", b"quilo", b"s "];
    let mut grave = Vec::with_capacity(bytes.len() + 8);
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at + 1..];
        if bytes[at] == 0xc3
            && rest.first() == Some(&b' ')
            && !NOT_BEFORE.iter().any(|word| rest[1..].starts_with(word))
        {
            grave.extend_from_slice(b"\xc3\xa0 ");
            at += 2;
        } else {
            grave.push(bytes[at]);
            at += 1;
        }
    }
    altered_utf8()
        .replace_all(&grave, |caps: &regex::bytes::Captures| {
            caps[0]
                .iter()
                .map(|&b| if b == b' ' { 0xa0 } else { b })
                .collect::<Vec<u8>>()
        })
        .into_owned()
}

/// Mirrors `fixes.replace_lossy_sequences`: a UTF-8 sequence that lost bytes to `0x1A` (the
/// sloppy codecs' byte for U+FFFD) or `?` becomes the UTF-8 of U+FFFD.
fn replace_lossy_sequences(bytes: &[u8]) -> Vec<u8> {
    static LOSSY: OnceLock<BytesRegex> = OnceLock::new();
    LOSSY
        .get_or_init(|| BytesRegex::new(LOSSY_UTF8).expect("generated regex is valid"))
        .replace_all(bytes, "\u{fffd}".as_bytes())
        .into_owned()
}

/// Mirrors `chardata.UTF8_DETECTOR_RE.search(text, from)`: the next run of characters that
/// look like UTF-8 read as a single-byte encoding, as a byte range. The regex crate has no
/// lookbehind, so the pattern's `(?<! [utf8_continuation_strict])` is checked here: a match
/// right after such a character is refused and the search goes on one character later, as
/// Python's does.
fn find_utf8_mojibake(text: &str, from: usize) -> Option<(usize, usize)> {
    static DETECTOR: OnceLock<Regex> = OnceLock::new();
    let detector =
        DETECTOR.get_or_init(|| Regex::new(UTF8_DETECTOR).expect("generated regex is valid"));
    let mut at = from;
    loop {
        let found = detector.find_at(text, at)?;
        let before = text[..found.start()].chars().next_back();
        if !before.is_some_and(is_continuation_strict) {
            return Some((found.start(), found.end()));
        }
        let first = text[found.start()..].chars().next()?;
        at = found.start() + first.len_utf8();
    }
}

fn is_continuation_strict(c: char) -> bool {
    UTF8_CONTINUATION_STRICT
        .iter()
        .any(|&(lo, hi)| (lo..=hi).contains(&c))
}

/// Mirrors `fixes.decode_inconsistent_utf8`: fix each run of embedded mojibake on its own, when
/// it is shorter than the whole text (so that this cannot recurse forever) and looks bad.
fn decode_inconsistent_utf8(text: &str) -> String {
    let length = text.chars().count();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    while let Some((start, end)) = find_utf8_mojibake(text, copied) {
        let found = &text[start..end];
        out.push_str(&text[copied..start]);
        if found.chars().count() < length && is_bad(found) {
            match fix_encoding(found) {
                Some(fixed) => out.push_str(&fixed),
                None => out.push_str(found),
            }
        } else {
            out.push_str(found);
        }
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// `text.encode("latin-1").decode("windows-1252")` for text that is all latin-1: `None` where
/// a C1 character stands for a byte strict windows-1252 leaves undefined.
fn latin_1_as_windows_1252(text: &str) -> Option<String> {
    text.chars()
        .map(|c| match u8::try_from(c) {
            Ok(b @ 0x80..=0x9f) if WINDOWS_1252_UNDEFINED.contains(&b) => None,
            Ok(b @ 0x80..=0x9f) => Some(C1_TO_WINDOWS_1252[usize::from(b - 0x80)]),
            _ => Some(c),
        })
        .collect()
}

/// Mirrors `fixes.fix_c1_controls`: C1 controls read as windows-1252, as browsers do. Here
/// rather than with the other per-character fixes because the encoding repair uses it too.
pub(super) fn fix_c1_controls(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{80}'..='\u{9f}' => C1_TO_WINDOWS_1252[c as usize - 0x80],
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(text: &str) -> String {
        fix_encoding(text).unwrap_or_else(|| text.to_string())
    }

    /// ftfy's own docstring and README examples.
    #[test]
    fn ftfy_examples() {
        assert_eq!(fixed("sÃ³"), "só");
        assert_eq!(fixed("Ã³"), "ó");
        assert_eq!(fixed("voilÃ le travail"), "voilà le travail");
        assert_eq!(fixed("âœ” No problems"), "✔ No problems");
        assert_eq!(
            fixed("The Mona Lisa doesnÃƒÂ¢Ã¢â€šÂ¬Ã¢â€žÂ¢t have eyebrows."),
            "The Mona Lisa doesn’t have eyebrows."
        );
        assert_eq!(fixed("&ATILDE;&SUP3;"), "&ATILDE;&SUP3;");
        assert_eq!(fixed("â€œ like this â€\u{fffd}"), "“ like this \u{fffd}");
    }

    #[test]
    fn ordinary_text_is_left_alone() {
        for text in [
            "a photo of a cat",
            "café crème brûlée",
            "naïve résumé in São Paulo",
            "Zürich, München, Köln",
            "math: ∑ ∫ √ ∞ ≠ ≤",
            "I love pizza 🍕",
            "東京タワー",
            "Привет, как дела?",
            "",
        ] {
            assert!(!is_bad(text), "{text:?} looks bad");
            assert_eq!(fix_encoding(text), None, "{text:?}");
        }
    }

    #[test]
    fn embedded_mojibake_is_fixed_in_place() {
        assert_eq!(
            fixed("Toda la informaciÃ³n está aquí"),
            "Toda la información está aquí"
        );
    }

    #[test]
    fn restore_byte_a0_keeps_words_after_a_grave() {
        assert_eq!(restore_byte_a0(b"\xc3 la"), b"\xc3\xa0 la");
        assert_eq!(restore_byte_a0(b"\xc3 quele"), b"\xc3\xa0quele");
        assert_eq!(restore_byte_a0(b"\xe2\x80 x"), b"\xe2\x80\xa0x");
        assert_eq!(restore_byte_a0(b"\xe2 \x99"), b"\xe2\xa0\x99");
    }
}
