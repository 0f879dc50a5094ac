//! Thumbnails of hits in the terminal: kitty and iTerm2 inline images, sixel, or
//! half-block characters in 24-bit colour where no graphics protocol is known to work.
//!
//! Nothing here queries the terminal (a query can hang on terminals that never answer), so the
//! protocol comes from the environment and the cell size is assumed: [`CELL_WIDTH`] x
//! [`CELL_HEIGHT`] pixels, i.e. cells twice as tall as wide.

use std::io::{self, Cursor, Write};

use base64::Engine as _;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, RgbaImage};

/// Assumed width of a terminal cell in pixels; sizes the sixel raster and the PNG payloads.
pub const CELL_WIDTH: u32 = 10;
/// Assumed height of a terminal cell in pixels.
pub const CELL_HEIGHT: u32 = 20;

/// Kitty limits one graphics escape to 4096 bytes of base64 payload.
const KITTY_CHUNK: usize = 4096;

/// How a thumbnail is drawn in the terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The kitty graphics protocol (kitty, Ghostty).
    Kitty,
    /// iTerm2's inline images, OSC 1337 (iTerm2, WezTerm).
    Iterm2,
    /// DEC sixel graphics (foot, mlterm, xterm built with sixel).
    Sixel,
    /// Upper-half blocks in 24-bit colour: works in any truecolour terminal.
    Blocks,
}

impl Protocol {
    /// Parses the names `XSEARCH_PREVIEW` accepts: `kitty`, `iterm2`, `sixel`, `blocks`
    /// (ASCII case-insensitive).
    pub fn from_name(name: &str) -> Option<Protocol> {
        [
            ("kitty", Protocol::Kitty),
            ("iterm2", Protocol::Iterm2),
            ("sixel", Protocol::Sixel),
            ("blocks", Protocol::Blocks),
        ]
        .into_iter()
        .find(|(known, _)| name.eq_ignore_ascii_case(known))
        .map(|(_, protocol)| protocol)
    }

    /// Picks the protocol from environment variables, read through `env` (pass
    /// `|name| std::env::var(name).ok()` in the binary, a fake in tests).
    ///
    /// `XSEARCH_PREVIEW=kitty|iterm2|sixel|blocks` wins; an unknown value is ignored. Inside
    /// tmux (`TMUX` set) graphics need passthrough we do not do, so it is blocks. Otherwise
    /// `KITTY_WINDOW_ID`, `TERM=xterm-kitty` or Ghostty give kitty; `TERM_PROGRAM=iTerm.app` or
    /// `WezTerm` (or `LC_TERMINAL=iTerm2`, which survives ssh) give iTerm2; a `TERM` containing
    /// `sixel`, foot, or mlterm give sixel; anything else is blocks. An xterm with sixel cannot
    /// be told apart without querying the terminal, so it needs the override.
    pub fn detect(env: impl Fn(&str) -> Option<String>) -> Protocol {
        let var = |name: &str| env(name).filter(|value| !value.is_empty());
        if let Some(protocol) = var("XSEARCH_PREVIEW").and_then(|name| Protocol::from_name(&name)) {
            return protocol;
        }
        if var("TMUX").is_some() {
            return Protocol::Blocks;
        }
        let term = var("TERM").unwrap_or_default();
        let program = var("TERM_PROGRAM").unwrap_or_default();
        if var("KITTY_WINDOW_ID").is_some()
            || term == "xterm-kitty"
            || term == "xterm-ghostty"
            || program == "ghostty"
        {
            Protocol::Kitty
        } else if program == "iTerm.app"
            || program == "WezTerm"
            || var("LC_TERMINAL").as_deref() == Some("iTerm2")
        {
            Protocol::Iterm2
        } else if term.contains("sixel")
            || term.starts_with("foot")
            || term.starts_with("mlterm")
            || var("MLTERM").is_some()
        {
            Protocol::Sixel
        } else {
            Protocol::Blocks
        }
    }
}

/// Writes a thumbnail of `img` at most `cols` x `rows` terminal cells to `out`, followed by a
/// newline, so the next output starts on the line below it. Nothing is written when `cols` or
/// `rows` is 0.
///
/// Kitty and iTerm2 get the largest cell box of the image's aspect ratio that fits, and the
/// terminal scales the PNG into it. Sixel and blocks draw pixels directly and never enlarge:
/// sixel fits `cols * CELL_WIDTH` x `rows * CELL_HEIGHT` pixels, blocks one pixel per column
/// and two per row. Transparent pixels are drawn over black there.
pub fn write_preview(
    out: &mut impl Write,
    img: &DynamicImage,
    protocol: Protocol,
    cols: u16,
    rows: u16,
) -> io::Result<()> {
    let (cols, rows) = (u32::from(cols), u32::from(rows));
    if cols == 0 || rows == 0 || img.width() == 0 || img.height() == 0 {
        return Ok(());
    }
    match protocol {
        Protocol::Kitty | Protocol::Iterm2 => {
            let (box_w, box_h) = (cols * CELL_WIDTH, rows * CELL_HEIGHT);
            let (fit_w, fit_h) = fit(img.width(), img.height(), box_w, box_h);
            let cells_w = div_round(fit_w, CELL_WIDTH).clamp(1, cols);
            let cells_h = div_round(fit_h, CELL_HEIGHT).clamp(1, rows);
            let payload = base64::engine::general_purpose::STANDARD
                .encode(png(&thumbnail(img, box_w, box_h))?);
            if protocol == Protocol::Kitty {
                write_kitty(out, cells_w, cells_h, &payload)
            } else {
                writeln!(
                    out,
                    "\x1b]1337;File=inline=1;width={cells_w};height={cells_h};\
                     preserveAspectRatio=1:{payload}\x07"
                )
            }
        }
        Protocol::Sixel => write_sixel(
            out,
            &flatten(&thumbnail(img, cols * CELL_WIDTH, rows * CELL_HEIGHT)),
        ),
        Protocol::Blocks => write_blocks(out, &flatten(&thumbnail(img, cols, rows * 2))),
    }
}

/// The largest size with the aspect ratio of `w` x `h` inside `box_w` x `box_h`, each side at
/// least 1.
fn fit(w: u32, h: u32, box_w: u32, box_h: u32) -> (u32, u32) {
    // Cross-multiplied in u64 so the comparison is exact.
    if u64::from(w) * u64::from(box_h) >= u64::from(h) * u64::from(box_w) {
        (box_w, scale_round(h, box_w, w).max(1))
    } else {
        (scale_round(w, box_h, h).max(1), box_h)
    }
}

/// `value * num / den`, rounded half up.
fn scale_round(value: u32, num: u32, den: u32) -> u32 {
    let (value, num, den) = (u64::from(value), u64::from(num), u64::from(den));
    // Never above `num` when `value <= den`, which `fit` guarantees; saturate anyway.
    u32::try_from((2 * value * num + den) / (2 * den)).unwrap_or(u32::MAX)
}

fn div_round(value: u32, den: u32) -> u32 {
    scale_round(value, 1, den)
}

/// `img` shrunk to fit `box_w` x `box_h`, never enlarged.
fn thumbnail(img: &DynamicImage, box_w: u32, box_h: u32) -> RgbaImage {
    if img.width() <= box_w && img.height() <= box_h {
        return img.to_rgba8();
    }
    let (w, h) = fit(img.width(), img.height(), box_w, box_h);
    img.thumbnail_exact(w, h).to_rgba8()
}

/// Composites over black, for the encoders that have no transparency.
fn flatten(img: &RgbaImage) -> RgbImage {
    RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b, a] = img.get_pixel(x, y).0;
        // Rounded `c * a / 255`; the result is at most 255, so the narrowing cannot fail.
        let over_black = |c: u8| ((u16::from(c) * u16::from(a) + 127) / 255) as u8;
        Rgb([over_black(r), over_black(g), over_black(b)])
    })
}

fn png(img: &RgbaImage) -> io::Result<Vec<u8>> {
    let mut bytes = Cursor::new(Vec::new());
    img.write_to(&mut bytes, ImageFormat::Png)
        .map_err(io::Error::other)?;
    Ok(bytes.into_inner())
}

/// Kitty graphics protocol: transmit and display (`a=T`) a PNG (`f=100`) scaled into
/// `cols` x `rows` cells, with responses suppressed (`q=2`) so nothing comes back on stdin.
/// The payload goes in chunks of 4096 bytes, `m=1` on all but the last.
fn write_kitty(out: &mut impl Write, cols: u32, rows: u32, payload: &str) -> io::Result<()> {
    let chunks: Vec<&[u8]> = payload.as_bytes().chunks(KITTY_CHUNK).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        if i == 0 {
            write!(out, "\x1b_Gf=100,a=T,q=2,c={cols},r={rows},")?;
        } else {
            out.write_all(b"\x1b_G")?;
        }
        write!(out, "m={};", u8::from(i + 1 < chunks.len()))?;
        out.write_all(chunk)?;
        out.write_all(b"\x1b\\")?;
    }
    out.write_all(b"\n")
}

/// Sixel palette register of the colour nearest to `rgb` among the 6x6x6 cube (registers
/// 0..216, levels `0, 51, .., 255`) and 24 greys (registers 216..240, levels `8, 18, .., 238`),
/// the layout of xterm's 256 colours, which keeps photos' greys from banding.
fn palette_index([r, g, b]: [u8; 3]) -> u8 {
    // The cube is separable, so the nearest level per channel is the nearest cube colour.
    let level = |c: u8| (u16::from(c) + 25) / 51;
    let cube = (36 * level(r) + 6 * level(g) + level(b)) as u8;
    let mean = (u16::from(r) + u16::from(g) + u16::from(b)) / 3;
    let grey = (mean.saturating_sub(3) / 10).min(23) as u8;
    let grey_index = 216 + grey;
    let distance = |index: u8| {
        let [pr, pg, pb] = palette_rgb(index);
        [(r, pr), (g, pg), (b, pb)]
            .iter()
            .map(|&(c, p)| (i32::from(c) - i32::from(p)).pow(2))
            .sum::<i32>()
    };
    if distance(grey_index) < distance(cube) {
        grey_index
    } else {
        cube
    }
}

fn palette_rgb(index: u8) -> [u8; 3] {
    if index < 216 {
        [index / 36, index / 6 % 6, index % 6].map(|level| level * 51)
    } else {
        [8 + 10 * (index - 216); 3]
    }
}

/// Sixel: DCS `q`, raster attributes (1:1 pixels, width, height), the palette registers in
/// use (RGB in percent), then bands of 6 pixel rows: per colour `#n` and one sixel character
/// per column (`?` + bits, top row = bit 0), repeats as `!count`, `$` back to the band's start
/// for the next colour, `-` to the next band.
fn write_sixel(out: &mut impl Write, img: &RgbImage) -> io::Result<()> {
    let (w, h) = img.dimensions();
    let indices: Vec<u8> = img.pixels().map(|p| palette_index(p.0)).collect();
    let mut used = [false; 256];
    indices.iter().for_each(|&i| used[usize::from(i)] = true);

    let mut text = format!("\x1bPq\"1;1;{w};{h}");
    for index in (0..=255u8).filter(|&i| used[usize::from(i)]) {
        let [r, g, b] = palette_rgb(index).map(|c| div_round(u32::from(c) * 100, 255));
        text += &format!("#{index};2;{r};{g};{b}");
    }
    let width = w as usize;
    let at = |x: u32, y: u32| indices[y as usize * width + x as usize];
    let mut row = Vec::with_capacity(width);
    for band_top in (0..h).step_by(6) {
        if band_top > 0 {
            text.push('-');
        }
        let band = band_top..(band_top + 6).min(h);
        let mut in_band = [false; 256];
        for y in band.clone() {
            (0..w).for_each(|x| in_band[usize::from(at(x, y))] = true);
        }
        let mut first = true;
        for index in (0..=255u8).filter(|&i| in_band[usize::from(i)]) {
            row.clear();
            row.extend((0..w).map(|x| {
                let bits = band.clone().fold(0u8, |bits, y| {
                    bits | u8::from(at(x, y) == index) << (y - band_top)
                });
                b'?' + bits
            }));
            // Empty sixels at the end of a row draw nothing.
            let len = row
                .iter()
                .rposition(|&c| c != b'?')
                .map_or(0, |last| last + 1);
            if !first {
                text.push('$');
            }
            first = false;
            text += &format!("#{index}");
            push_rle(&mut text, &row[..len]);
        }
    }
    text += "\x1b\\\n";
    out.write_all(text.as_bytes())
}

/// Appends `sixels`, runs of four or more as `!count` + character (shorter runs are no longer
/// when spelt out).
fn push_rle(text: &mut String, sixels: &[u8]) {
    for run in sixels.chunk_by(|a, b| a == b) {
        let c = char::from(run[0]);
        if run.len() >= 4 {
            text.push_str(&format!("!{}{c}", run.len()));
        } else {
            text.extend(std::iter::repeat_n(c, run.len()));
        }
    }
}

/// Blocks: each cell is `▀` with the upper pixel as foreground and the lower as background in
/// 24-bit colour; an odd last row keeps the default background. Attributes reset at line end.
fn write_blocks(out: &mut impl Write, img: &RgbImage) -> io::Result<()> {
    let mut text = String::new();
    for top in (0..img.height()).step_by(2) {
        for x in 0..img.width() {
            let [r, g, b] = img.get_pixel(x, top).0;
            text += &format!("\x1b[38;2;{r};{g};{b};");
            match (top + 1 < img.height()).then(|| img.get_pixel(x, top + 1).0) {
                Some([r, g, b]) => text += &format!("48;2;{r};{g};{b}m▀"),
                None => text += "49m▀",
            }
        }
        text += "\x1b[0m\n";
    }
    out.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests;
