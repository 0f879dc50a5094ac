//! ftfy 6.3.1's `utf-8-variants` decoder (`ftfy/bad_codecs/utf8_variants.py`): UTF-8 that also
//! accepts CESU-8 surrogate pairs (six bytes for one supplementary character) and Java's
//! two-byte null `C0 80`, as `fix_encoding` decodes bytes holding `0xED` or `0xC0`.
//!
//! The port follows the decoder's steps rather than their intent, because ftfy's regexes use
//! Python's `$`, which also matches just before a final `\n`: `C0 0A` at the very end decodes
//! to U+0000 there, and so it does here.

/// Mirrors `IncrementalDecoder._buffer_decode` with `final=True` and strict errors (what
/// `bytes.decode("utf-8-variants")` runs): `None` where Python raises `UnicodeDecodeError`.
pub(super) fn decode(bytes: &[u8]) -> Option<String> {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    // Mirrors `_buffer_decode_step`, one step per round.
    while !rest.is_empty() {
        let consumed = match find_special(rest) {
            None => {
                out.push_str(std::str::from_utf8(rest).ok()?);
                rest.len()
            }
            Some(cutoff) if cutoff > 0 => {
                out.push_str(std::str::from_utf8(&rest[..cutoff]).ok()?);
                cutoff
            }
            Some(_) if rest[0] == 0xc0 => {
                if rest.len() == 1 {
                    // A lone C0 at the end: the real decoder refuses it.
                    return None;
                }
                out.push('\0');
                2
            }
            Some(_) => {
                let (c, consumed) = decode_surrogates(rest)?;
                out.push_str(&c);
                consumed
            }
        };
        rest = &rest[consumed..];
    }
    Some(out)
}

/// Python's `$` in a pattern without MULTILINE: the end, or just before a final newline.
fn at_end(bytes: &[u8], at: usize) -> bool {
    at == bytes.len() || (at + 1 == bytes.len() && bytes[at] == b'\n')
}

/// Matches one group of the form `(<byte class>|$)` at `*at`, advancing past a byte it takes.
fn group(bytes: &[u8], at: &mut usize, class: impl Fn(u8) -> bool) -> bool {
    if bytes.get(*at).is_some_and(|&b| class(b)) {
        *at += 1;
        true
    } else {
        at_end(bytes, *at)
    }
}

/// Mirrors `SPECIAL_BYTES_RE.search`: where the first Java null (`\xc0(\x80|$)`) or surrogate
/// (`\xed([\xa0-\xbf]|$)([\x80-\xbf]|$)`, which every CESU-8 match also matches) begins.
fn find_special(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len()).find(|&start| {
        let mut at = start + 1;
        match bytes[start] {
            0xc0 => group(bytes, &mut at, |b| b == 0x80),
            0xed => {
                group(bytes, &mut at, |b| (0xa0..=0xbf).contains(&b))
                    && group(bytes, &mut at, |b| (0x80..=0xbf).contains(&b))
            }
            _ => false,
        }
    })
}

/// Mirrors `CESU8_RE.match`.
fn is_cesu8(bytes: &[u8]) -> bool {
    let mut at = 0;
    bytes.first() == Some(&0xed)
        && {
            at += 1;
            group(bytes, &mut at, |b| (0xa0..=0xaf).contains(&b))
        }
        && group(bytes, &mut at, |b| (0x80..=0xbf).contains(&b))
        && group(bytes, &mut at, |b| b == 0xed)
        && group(bytes, &mut at, |b| (0xb0..=0xbf).contains(&b))
        && group(bytes, &mut at, |b| (0x80..=0xbf).contains(&b))
}

/// Mirrors `_buffer_decode_surrogates` at the end of the stream: a CESU-8 pair becomes its
/// character; anything else goes to the real UTF-8 decoder (three bytes of it, or all that is
/// left when fewer than six remain). Returns the text and the bytes consumed.
fn decode_surrogates(bytes: &[u8]) -> Option<(String, usize)> {
    if bytes.len() < 6 {
        return Some((std::str::from_utf8(bytes).ok()?.to_string(), bytes.len()));
    }
    if is_cesu8(bytes) {
        let bits = (u32::from(bytes[1] & 0x0f) << 16)
            + (u32::from(bytes[2] & 0x3f) << 10)
            + (u32::from(bytes[4] & 0x0f) << 6)
            + u32::from(bytes[5] & 0x3f);
        // 0x10000 plus 20 bits is at most U+10FFFF, never a surrogate: always a char.
        let c = char::from_u32(bits + 0x10000)?;
        return Some((c.to_string(), 6));
    }
    // Three bytes are a whole UTF-8 sequence or an error, never an incomplete one.
    Some((std::str::from_utf8(&bytes[..3]).ok()?.to_string(), 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_utf8_decodes_as_utf8() {
        assert_eq!(decode("café ✔".as_bytes()).as_deref(), Some("café ✔"));
        assert_eq!(decode(b"\xed\x9f\xbf").as_deref(), Some("\u{d7ff}"));
        assert_eq!(decode(b"caf\xc3"), None);
        assert_eq!(decode(b""), Some(String::new()));
    }

    #[test]
    fn cesu8_pairs_and_java_nulls() {
        // U+1F600 as CESU-8: the surrogates D83D and DE00, each UTF-8-encoded.
        assert_eq!(
            decode(b"a\xed\xa0\xbd\xed\xb8\x80b").as_deref(),
            Some("a\u{1f600}b")
        );
        assert_eq!(decode(b"a\xc0\x80b").as_deref(), Some("a\0b"));
        // A lone surrogate is refused, as by Python's decoder.
        assert_eq!(decode(b"\xed\xa0\xbdxyz"), None);
        assert_eq!(decode(b"\xed\xa0\xbd"), None);
        assert_eq!(decode(b"\xc0"), None);
        assert_eq!(decode(b"\xc0\x41"), None);
    }

    #[test]
    fn dollar_matches_before_a_final_newline_as_in_python() {
        // Python: b"\xc0\n".decode("utf-8-variants") == "\x00".
        assert_eq!(decode(b"\xc0\n").as_deref(), Some("\0"));
        assert_eq!(decode(b"\xed\n"), None);
        // ... and a CESU-8 pair cut short by one may take that newline as its last byte.
        assert_eq!(
            decode(b"ab\xed\xa0\xbd\xed\xb8\n").as_deref(),
            Some("ab\u{1f60a}")
        );
    }
}
