//! Expected escape sequences are spelt out by hand from the protocol specifications; PNG
//! payloads are checked by decoding them back to the exact pixels.

use super::*;
use image::Rgba;

const RED: [u8; 3] = [255, 0, 0];
const GREEN: [u8; 3] = [0, 255, 0];
const BLUE: [u8; 3] = [0, 0, 255];
const WHITE: [u8; 3] = [255, 255, 255];

fn rgb(w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| Rgb(pixel(x, y))))
}

/// Red, green / blue, white.
fn two_by_two() -> DynamicImage {
    rgb(2, 2, |x, y| {
        [[RED, GREEN], [BLUE, WHITE]][y as usize][x as usize]
    })
}

fn one_by_three() -> DynamicImage {
    rgb(1, 3, |_, y| {
        [[10, 20, 30], [40, 50, 60], [70, 80, 90]][y as usize]
    })
}

fn preview(img: &DynamicImage, protocol: Protocol, cols: u16, rows: u16) -> String {
    let mut out = Vec::new();
    write_preview(&mut out, img, protocol, cols, rows).unwrap();
    String::from_utf8(out).unwrap()
}

fn decode_png(base64_text: &str) -> RgbaImage {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(base64_text)
        .unwrap();
    image::load_from_memory_with_format(&bytes, ImageFormat::Png)
        .unwrap()
        .to_rgba8()
}

/// The base64 text between `prefix` and `suffix`, asserting both.
fn between<'a>(text: &'a str, prefix: &str, suffix: &str) -> &'a str {
    assert!(text.starts_with(prefix), "{text:?} lacks prefix {prefix:?}");
    assert!(text.ends_with(suffix), "{text:?} lacks suffix {suffix:?}");
    &text[prefix.len()..text.len() - suffix.len()]
}

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |name| {
        vars.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    }
}

#[test]
fn detect_from_environment() {
    let cases: &[(&[(&str, &str)], Protocol)] = &[
        (&[], Protocol::Blocks),
        (&[("TERM", "xterm-256color")], Protocol::Blocks),
        (&[("KITTY_WINDOW_ID", "1")], Protocol::Kitty),
        (&[("KITTY_WINDOW_ID", "")], Protocol::Blocks),
        (&[("TERM", "xterm-kitty")], Protocol::Kitty),
        (&[("TERM", "xterm-ghostty")], Protocol::Kitty),
        (&[("TERM_PROGRAM", "iTerm.app")], Protocol::Iterm2),
        (&[("TERM_PROGRAM", "WezTerm")], Protocol::Iterm2),
        (&[("LC_TERMINAL", "iTerm2")], Protocol::Iterm2),
        (&[("TERM", "foot")], Protocol::Sixel),
        (&[("TERM", "foot-extra")], Protocol::Sixel),
        (&[("TERM", "mlterm")], Protocol::Sixel),
        (&[("TERM", "xterm-sixel")], Protocol::Sixel),
        (&[("TERM", "xterm"), ("MLTERM", "3.9.3")], Protocol::Sixel),
        // Kitty's variables leak into tmux, whose panes cannot show kitty images.
        (
            &[
                ("KITTY_WINDOW_ID", "1"),
                ("TMUX", "/tmp/tmux-1000/default,1,0"),
            ],
            Protocol::Blocks,
        ),
        (
            &[("XSEARCH_PREVIEW", "sixel"), ("TERM", "xterm-kitty")],
            Protocol::Sixel,
        ),
        (
            &[("XSEARCH_PREVIEW", "Kitty"), ("TMUX", "x")],
            Protocol::Kitty,
        ),
        (&[("XSEARCH_PREVIEW", "iterm2")], Protocol::Iterm2),
        (
            &[("XSEARCH_PREVIEW", "blocks"), ("TERM", "foot")],
            Protocol::Blocks,
        ),
        (
            &[("XSEARCH_PREVIEW", "png"), ("TERM", "foot")],
            Protocol::Sixel,
        ),
    ];
    for (vars, expected) in cases {
        assert_eq!(Protocol::detect(env(vars)), *expected, "{vars:?}");
    }
}

#[test]
fn nothing_written_for_an_empty_box() {
    for protocol in [
        Protocol::Kitty,
        Protocol::Iterm2,
        Protocol::Sixel,
        Protocol::Blocks,
    ] {
        assert_eq!(preview(&two_by_two(), protocol, 0, 5), "");
        assert_eq!(preview(&two_by_two(), protocol, 5, 0), "");
    }
}

#[test]
fn blocks_two_by_two() {
    assert_eq!(
        preview(&two_by_two(), Protocol::Blocks, 2, 1),
        "\x1b[38;2;255;0;0;48;2;0;0;255m▀\x1b[38;2;0;255;0;48;2;255;255;255m▀\x1b[0m\n"
    );
}

#[test]
fn blocks_odd_height_keeps_default_background() {
    assert_eq!(
        preview(&one_by_three(), Protocol::Blocks, 1, 2),
        "\x1b[38;2;10;20;30;48;2;40;50;60m▀\x1b[0m\n\x1b[38;2;70;80;90;49m▀\x1b[0m\n"
    );
}

#[test]
fn blocks_shrink_keeps_aspect_and_never_enlarges() {
    let quadrants = rgb(4, 4, |x, y| {
        [[RED, GREEN], [BLUE, WHITE]][y as usize / 2][x as usize / 2]
    });
    let expected = "\x1b[38;2;255;0;0;48;2;0;0;255m▀\x1b[38;2;0;255;0;48;2;255;255;255m▀\x1b[0m\n";
    assert_eq!(preview(&quadrants, Protocol::Blocks, 2, 1), expected);
    // A big box leaves a small image as it is.
    assert_eq!(preview(&two_by_two(), Protocol::Blocks, 80, 40), expected);
    // 4x2 into a 2x4-pixel box is width-limited: 2x1, one half-filled row.
    let halves = rgb(4, 2, |x, _| if x < 2 { RED } else { BLUE });
    assert_eq!(
        preview(&halves, Protocol::Blocks, 2, 2),
        "\x1b[38;2;255;0;0;49m▀\x1b[38;2;0;0;255;49m▀\x1b[0m\n"
    );
}

#[test]
fn blocks_draw_transparency_over_black() {
    let img = DynamicImage::ImageRgba8(RgbaImage::from_fn(1, 2, |_, y| {
        Rgba([[255, 255, 255, 128], [200, 100, 0, 0]][y as usize])
    }));
    assert_eq!(
        preview(&img, Protocol::Blocks, 1, 1),
        "\x1b[38;2;128;128;128;48;2;0;0;0m▀\x1b[0m\n"
    );
}

#[test]
fn sixel_two_by_two() {
    // Registers are cube indices 36r + 6g + b: blue 5, green 30, red 180, white 215.
    assert_eq!(
        preview(&two_by_two(), Protocol::Sixel, 1, 1),
        "\x1bPq\"1;1;2;2\
         #5;2;0;0;100#30;2;0;100;0#180;2;100;0;0#215;2;100;100;100\
         #5A$#30?@$#180@$#215?A\
         \x1b\\\n"
    );
}

#[test]
fn sixel_one_by_three_takes_the_grey_ramp() {
    // 128 is grey level 12 (8 + 10 * 12) exactly, register 216 + 12; 128/255 = 50 %.
    assert_eq!(
        preview(&rgb(1, 3, |_, _| [128; 3]), Protocol::Sixel, 1, 1),
        "\x1bPq\"1;1;1;3#228;2;50;50;50#228F\x1b\\\n"
    );
}

#[test]
fn sixel_runs_are_compressed_and_trailing_blanks_dropped() {
    let img = rgb(10, 1, |x, _| if (5..7).contains(&x) { GREEN } else { RED });
    assert_eq!(
        preview(&img, Protocol::Sixel, 1, 1),
        "\x1bPq\"1;1;10;1#30;2;0;100;0#180;2;100;0;0#30!5?@@$#180!5@??@@@\x1b\\\n"
    );
}

#[test]
fn sixel_bands_of_six_rows() {
    assert_eq!(
        preview(&rgb(1, 7, |_, _| [0; 3]), Protocol::Sixel, 1, 1),
        "\x1bPq\"1;1;1;7#0;2;0;0;0#0~-#0@\x1b\\\n"
    );
}

#[test]
fn sixel_shrinks_to_the_cell_box() {
    let text = preview(&rgb(100, 100, |_, _| WHITE), Protocol::Sixel, 2, 1);
    assert!(
        text.starts_with("\x1bPq\"1;1;20;20#215;2;100;100;100"),
        "{text:?}"
    );
}

#[test]
fn rle_threshold() {
    for (sixels, expected) in [
        ("", ""),
        ("@@@", "@@@"),
        ("@@@@", "!4@"),
        ("~~~~~A?", "!5~A?"),
    ] {
        let mut text = String::new();
        push_rle(&mut text, sixels.as_bytes());
        assert_eq!(text, expected);
    }
}

#[test]
fn palette_picks_nearest() {
    assert_eq!(palette_index([0, 0, 0]), 0);
    assert_eq!(palette_index([255, 255, 255]), 215);
    assert_eq!(palette_index([250, 3, 3]), 180);
    assert_eq!(palette_index([153, 102, 51]), 36 * 3 + 6 * 2 + 1);
    assert_eq!(palette_index([20, 18, 16]), 216 + 1);
    assert_eq!(palette_index([240, 240, 240]), 216 + 23);
}

#[test]
fn kitty_one_chunk() {
    let text = preview(&two_by_two(), Protocol::Kitty, 4, 2);
    let payload = between(&text, "\x1b_Gf=100,a=T,q=2,c=4,r=2,m=0;", "\x1b\\\n");
    assert_eq!(decode_png(payload), two_by_two().to_rgba8());
}

#[test]
fn kitty_cells_follow_the_aspect_ratio() {
    // 1x3 in a 40x80-pixel box: 27x80 pixels, i.e. 3x4 cells.
    let text = preview(&one_by_three(), Protocol::Kitty, 4, 4);
    let payload = between(&text, "\x1b_Gf=100,a=T,q=2,c=3,r=4,m=0;", "\x1b\\\n");
    assert_eq!(decode_png(payload), one_by_three().to_rgba8());
}

#[test]
fn kitty_chunk_boundaries() {
    let cases = [
        (
            "A".repeat(4096),
            format!(
                "\x1b_Gf=100,a=T,q=2,c=3,r=2,m=0;{}\x1b\\\n",
                "A".repeat(4096)
            ),
        ),
        (
            "A".repeat(4097),
            format!(
                "\x1b_Gf=100,a=T,q=2,c=3,r=2,m=1;{}\x1b\\\x1b_Gm=0;A\x1b\\\n",
                "A".repeat(4096)
            ),
        ),
        (
            "A".repeat(4096) + &"B".repeat(4096),
            format!(
                "\x1b_Gf=100,a=T,q=2,c=3,r=2,m=1;{}\x1b\\\x1b_Gm=0;{}\x1b\\\n",
                "A".repeat(4096),
                "B".repeat(4096)
            ),
        ),
    ];
    for (payload, expected) in cases {
        let mut out = Vec::new();
        write_kitty(&mut out, 3, 2, &payload).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            expected,
            "payload of {}",
            payload.len()
        );
    }
}

#[test]
fn kitty_many_chunks_reassemble() {
    // Noise does not compress, so the PNG spans several chunks.
    let mut state = 0x2545_f491_u32;
    let noise = DynamicImage::ImageRgba8(RgbaImage::from_fn(64, 64, |_, _| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        Rgba(state.to_le_bytes())
    }));
    // 64x64 fits the 70x80-pixel box of 7x4 cells unscaled; its aspect fills 7x3.5 -> 4 rows.
    let text = preview(&noise, Protocol::Kitty, 7, 4);
    let body = text.strip_suffix('\n').unwrap();
    let escapes: Vec<&str> = body.split_terminator("\x1b\\").collect();
    assert!(escapes.len() > 2, "{} escapes", escapes.len());
    let mut payload = String::new();
    for (i, escape) in escapes.iter().enumerate() {
        let header = match i {
            0 => "\x1b_Gf=100,a=T,q=2,c=7,r=4,m=1;",
            _ if i + 1 == escapes.len() => "\x1b_Gm=0;",
            _ => "\x1b_Gm=1;",
        };
        let chunk = escape.strip_prefix(header).unwrap();
        assert!(
            chunk.len() == 4096 || i + 1 == escapes.len(),
            "chunk {i}: {}",
            chunk.len()
        );
        payload += chunk;
    }
    assert_eq!(decode_png(&payload), noise.to_rgba8());
}

#[test]
fn iterm2_two_by_two() {
    let text = preview(&two_by_two(), Protocol::Iterm2, 4, 2);
    let payload = between(
        &text,
        "\x1b]1337;File=inline=1;width=4;height=2;preserveAspectRatio=1:",
        "\x07\n",
    );
    assert_eq!(decode_png(payload), two_by_two().to_rgba8());
}

#[test]
fn iterm2_payload_is_shrunk_to_the_box() {
    let text = preview(&rgb(400, 200, |_, _| BLUE), Protocol::Iterm2, 4, 1);
    let payload = between(
        &text,
        "\x1b]1337;File=inline=1;width=4;height=1;preserveAspectRatio=1:",
        "\x07\n",
    );
    let png = decode_png(payload);
    assert_eq!(png.dimensions(), (40, 20));
    assert!(png.pixels().all(|p| p.0 == [0, 0, 255, 255]));
}

#[test]
fn fit_rounds_and_keeps_one_pixel() {
    assert_eq!(fit(4000, 3000, 200, 200), (200, 150));
    assert_eq!(fit(1, 3, 40, 80), (27, 80));
    assert_eq!(fit(10_000, 1, 40, 40), (40, 1));
    assert_eq!(fit(u32::MAX, u32::MAX - 1, 10, 10), (10, 10));
}
