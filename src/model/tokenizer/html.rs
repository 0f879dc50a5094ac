//! HTML character references: Python's `html.unescape` and ftfy's stricter `unescape_html`.

use std::sync::OnceLock;

use regex::{Captures, Regex};

use super::tables::{FTFY_UPPER_ENTITIES, HTML5_ENTITIES};

/// Looks `name` up in a sorted `(name, replacement)` table.
fn lookup(table: &'static [(&'static str, &'static str)], name: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(key, _)| key.cmp(&name))
        .ok()
        .map(|index| table[index].1)
}

/// Python's `html._replace_charref` for numeric references: `digits` without `&#` and `;`.
fn numeric_charref(digits: &str, radix: u32) -> String {
    // Python's int() never overflows; anything past u32 is past U+10FFFF either way.
    let Ok(num) = u32::from_str_radix(digits, radix) else {
        return '\u{fffd}'.to_string();
    };
    match num {
        0x00 => return '\u{fffd}'.to_string(),
        0x0d => return '\r'.to_string(),
        // `_invalid_charrefs` maps the C1 range as windows-1252 does (0x81, 0x8d, 0x8f, 0x90
        // and 0x9d stay themselves), which is what ftfy's table holds.
        0x80..=0x9f => return super::tables::C1_TO_WINDOWS_1252[(num - 0x80) as usize].to_string(),
        0xd800..=0xdfff | 0x11_0000.. => return '\u{fffd}'.to_string(),
        _ => {}
    }
    let invalid = matches!(num, 0x01..=0x08 | 0x0b | 0x0e..=0x1f | 0x7f | 0xfdd0..=0xfdef)
        || (num & 0xfffe) == 0xfffe;
    match char::from_u32(num) {
        Some(c) if !invalid => c.to_string(),
        _ => String::new(),
    }
}

/// Python's `html._replace_charref` for a named reference: `name` is the match without `&`,
/// with its `;` if it had one.
fn named_charref(name: &str) -> String {
    if let Some(value) = lookup(HTML5_ENTITIES, name) {
        return value.to_string();
    }
    // The longest prefix of at least two characters that is an entity (only the legacy
    // names without `;` can match, since `;` ends the reference).
    let boundaries: Vec<usize> = name.char_indices().map(|(i, _)| i).collect();
    for &end in boundaries.iter().skip(2).rev() {
        if let Some(value) = lookup(HTML5_ENTITIES, &name[..end]) {
            return format!("{value}{}", &name[end..]);
        }
    }
    format!("&{name}")
}

/// Python 3.11's `html.unescape`: every named and numeric character reference, with the HTML5
/// rules for invalid code points and for legacy names written without `;`.
///
/// One deliberate difference: a decimal reference of more than 4300 digits makes Python raise
/// (its int-to-str limit); here it becomes U+FFFD like any other out-of-range number.
pub(super) fn unescape(text: &str) -> String {
    static CHARREF: OnceLock<Regex> = OnceLock::new();
    if !text.contains('&') {
        return text.to_string();
    }
    let charref = CHARREF.get_or_init(|| {
        Regex::new(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\x0c <&#;]{1,32};?)")
            .expect("html charref regex is valid")
    });
    charref
        .replace_all(text, |caps: &Captures<'_>| {
            let reference = &caps[1];
            if let Some(number) = reference.strip_prefix('#') {
                let number = number.trim_end_matches(';');
                match number.strip_prefix(['x', 'X']) {
                    Some(hex) => numeric_charref(hex, 16),
                    None => numeric_charref(number, 10),
                }
            } else {
                named_charref(reference)
            }
        })
        .into_owned()
}

/// ftfy's `fixes.unescape_html`: only references that end in `;`, html5 names plus all-caps
/// variants of the lower-case ones (`&EACUTE;`), and numeric references that decode whole.
pub(super) fn ftfy_unescape(text: &str) -> String {
    static ENTITY: OnceLock<Regex> = OnceLock::new();
    if !text.contains('&') {
        return text.to_string();
    }
    let entity = ENTITY
        .get_or_init(|| Regex::new(r"&#?[0-9A-Za-z]{1,24};").expect("ftfy entity regex is valid"));
    entity
        .replace_all(text, |caps: &Captures<'_>| {
            // Mirrors ftfy's `_unescape_fixup`.
            let matched = &caps[0];
            let name = &matched[1..];
            if let Some(value) =
                lookup(HTML5_ENTITIES, name).or_else(|| lookup(FTFY_UPPER_ENTITIES, name))
            {
                return value.to_string();
            }
            if matched.starts_with("&#") {
                let unescaped = unescape(matched);
                // Only take a numeric reference that decoded up to and including its `;`.
                if !unescaped.contains(';') {
                    return unescaped;
                }
            }
            matched.to_string()
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(HTML5_ENTITIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(FTFY_UPPER_ENTITIES.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(HTML5_ENTITIES.len(), 2231);
    }

    #[test]
    fn python_unescape_named() {
        assert_eq!(unescape("fish &amp; chips"), "fish & chips");
        assert_eq!(unescape("&amp;amp;"), "&amp;");
        assert_eq!(unescape("&eacute without"), "\u{e9} without");
        assert_eq!(
            unescape("&notit; &notin; &not"),
            "\u{ac}it; \u{2209} \u{ac}"
        );
        assert_eq!(unescape("&ampersand"), "&ersand");
        assert_eq!(unescape("&unknown; &; & x"), "&unknown; &; & x");
        assert_eq!(unescape("&lt&gt"), "<>");
        assert_eq!(unescape("&EACUTE;"), "&EACUTE;");
    }

    #[test]
    fn python_unescape_numeric() {
        assert_eq!(unescape("&#65;&#x42;&#X43&#68"), "ABCD");
        assert_eq!(unescape("&#0;"), "\u{fffd}");
        assert_eq!(unescape("&#13;"), "\r");
        assert_eq!(unescape("&#x80;&#129;&#150;"), "\u{20ac}\u{81}\u{2013}");
        assert_eq!(
            unescape("&#xD800;&#x110000;&#99999999999;"),
            "\u{fffd}\u{fffd}\u{fffd}"
        );
        assert_eq!(
            unescape("a&#1;&#x7f;&#11;&#xfdd0;&#x10FFFF;&#x1FFFE;b"),
            "ab"
        );
        assert_eq!(unescape("&#128512;"), "\u{1f600}");
        assert_eq!(unescape("&#; &#x;"), "&#; &#x;");
    }

    #[test]
    fn ftfy_unescape_is_stricter() {
        assert_eq!(ftfy_unescape("&eacute;t&eacute;"), "\u{e9}t\u{e9}");
        assert_eq!(ftfy_unescape("P&EACUTE;REZ"), "P\u{c9}REZ");
        assert_eq!(ftfy_unescape("STRA&SZLIG;E"), "STRASSE");
        assert_eq!(
            ftfy_unescape("&ntilde; &Ntilde; &NTILDE; &nTILDE;"),
            "ñ Ñ Ñ &nTILDE;"
        );
        assert_eq!(ftfy_unescape("&eacute &amp"), "&eacute &amp");
        assert_eq!(ftfy_unescape("&#x41; &#65a; &#xZZ;"), "A &#65a; &#xZZ;");
        assert_eq!(ftfy_unescape("&amp;amp;"), "&amp;");
    }
}
