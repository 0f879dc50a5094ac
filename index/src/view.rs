//! The read view: one file, `view` in the index directory, that the writer publishes at every
//! checkpoint and readers open without touching the store.
//!
//! It holds what a reader needs: the index's spec, a generation and the time of publishing,
//! per collection the segment files (with their CRCs) and the live records, the images'
//! metadata, and the failures.
//! It is written under a temporary name, synced, and renamed over the old one, so a reader
//! sees the previous view or the new one, never a mix. Segment files are immutable, and the
//! writer deletes one only after publishing a view that no longer names it.
//!
//! Layout: magic, the header (JSON, length first: named fields, so it can grow), the body
//! (records, image metadata and failures in bincode, streamed: one tag byte, then the item), an end tag, and
//! the CRC-32 of everything before it. The body is derived data, rewritten at every publish:
//! a build that changes its layout changes the magic, and an older view is republished by the
//! next writer.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::checksum::Checksummed;
use crate::graphs::list::SegmentInfo;
use crate::store::codec::{decode_prefix, from_json, to_json};
use crate::types::{Failure, HnswParams, ImageMeta, Record};
use crate::{Id, IndexError};

/// The view's file name in the index directory.
pub(crate) const FILE: &str = "view";
/// Where a view is written before it is renamed to [`FILE`].
const TEMP: &str = "view.tmp";
/// `XSREAD01` had no image metadata items; its readers would not know the tag.
const MAGIC: &[u8; 8] = b"XSREAD02";
/// The view an older build published: the next writer replaces it, and until then readers
/// treat the index as one without a view (whose error says what to do), not as corrupt.
const OLD_MAGIC: &[u8; 8] = b"XSREAD01";

const TAG_IMAGE: u8 = 0;
const TAG_TEXT: u8 = 1;
const TAG_FAILURE: u8 = 2;
const TAG_IMAGE_META: u8 = 3;
const TAG_END: u8 = 0xFF;

/// What the view says about the index as a whole (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Header {
    /// The index's format version.
    pub format: u32,
    /// Model fingerprint.
    pub model: String,
    pub dim: usize,
    pub hnsw: HnswParams,
    /// Where the model came from, if recorded.
    #[serde(default)]
    pub model_source: Option<String>,
    /// Bumped by every publish.
    pub generation: u64,
    /// When it was published, milliseconds since the Unix epoch.
    pub published_ms: u64,
    pub images: CollectionHeader,
    pub texts: CollectionHeader,
    pub failures: usize,
}

/// What the view says about one collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CollectionHeader {
    pub segments: Vec<SegmentInfo>,
    /// Live records in the body.
    pub records: usize,
    /// The store's data generation the view was taken at.
    pub data_generation: u64,
}

/// The body of a view, read whole.
#[derive(Debug, Default)]
pub(crate) struct Body {
    pub images: Vec<(Vec<u8>, Record)>,
    pub texts: Vec<(Vec<u8>, Record)>,
    pub image_metas: Vec<(Id, ImageMeta)>,
    pub failures: Vec<(Vec<u8>, Failure)>,
}

/// One item of the body, as the writer streams it.
pub(crate) enum Item<'a> {
    Image(&'a [u8], &'a Record),
    Text(&'a [u8], &'a Record),
    ImageMeta(Id, &'a ImageMeta),
    Failure(&'a [u8], &'a Failure),
}

/// Writes a view: `items` is called with a sink for the body's items. Durable and visible to
/// readers (atomically) when this returns.
pub(crate) fn publish(
    dir: &Path,
    header: &Header,
    items: impl FnOnce(&mut dyn FnMut(Item<'_>) -> Result<(), IndexError>) -> Result<(), IndexError>,
) -> Result<(), IndexError> {
    let temp = dir.join(TEMP);
    let io = |e| IndexError::io(&temp, e);
    let file = File::create(&temp).map_err(io)?;
    let mut out = Checksummed::new(BufWriter::with_capacity(1 << 20, file));
    let json = to_json(header);
    out.write_all(MAGIC).map_err(io)?;
    out.write_all(&(json.len() as u64).to_le_bytes())
        .map_err(io)?;
    out.write_all(&json).map_err(io)?;
    let mut sink = |item: Item<'_>| -> Result<(), IndexError> {
        match item {
            Item::Image(key, record) => write_item(&mut out, TAG_IMAGE, &(key, record)),
            Item::Text(key, record) => write_item(&mut out, TAG_TEXT, &(key, record)),
            Item::ImageMeta(id, meta) => write_item(&mut out, TAG_IMAGE_META, &(id, meta)),
            Item::Failure(key, failure) => write_item(&mut out, TAG_FAILURE, &(key, failure)),
        }
        .map_err(|e| IndexError::io(&temp, std::io::Error::other(e.to_string())))
    };
    items(&mut sink)?;
    out.write_all(&[TAG_END]).map_err(io)?;
    let (crc, _, mut writer) = out.finish();
    writer.write_all(&crc.to_le_bytes()).map_err(io)?;
    let file = writer.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    let target = dir.join(FILE);
    std::fs::rename(&temp, &target).map_err(|e| IndexError::io(&target, e))?;
    // The rename is durable once the directory is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IndexError::io(dir, e))
}

fn write_item<W: Write, T: Serialize>(
    out: &mut W,
    tag: u8,
    item: &T,
) -> Result<(), bincode::error::EncodeError> {
    out.write_all(&[tag])
        .map_err(|inner| bincode::error::EncodeError::Io { inner, index: 0 })?;
    bincode::serde::encode_into_std_write(item, out, bincode::config::standard()).map(drop)
}

/// Why a view could not be read.
fn corrupt(path: &Path, what: impl std::fmt::Display) -> IndexError {
    IndexError::Corrupt {
        path: path.to_path_buf(),
        what: format!("read view: {what}"),
    }
}

/// The path of the view of the index in `dir`, or the typed error saying why there is none:
/// [`IndexError::NoView`] for an index written before views, [`IndexError::NotAnIndex`]
/// for anything else.
fn locate(dir: &Path) -> Result<PathBuf, IndexError> {
    let path = dir.join(FILE);
    if path.is_file() {
        Ok(path)
    } else if dir.join("store").is_dir() {
        Err(IndexError::NoView {
            path: dir.to_path_buf(),
        })
    } else {
        Err(IndexError::NotAnIndex {
            path: dir.to_path_buf(),
        })
    }
}

/// Reads the header only (for [`crate::inspect`]).
pub(crate) fn read_header(dir: &Path) -> Result<Header, IndexError> {
    let path = locate(dir)?;
    let mut file = File::open(&path).map_err(|e| IndexError::io(&path, e))?;
    let mut start = [0u8; 16];
    file.read_exact(&mut start)
        .map_err(|_| corrupt(&path, "cut short"))?;
    let len = header_len(&path, &start)?;
    let mut json = vec![0u8; len];
    file.read_exact(&mut json)
        .map_err(|_| corrupt(&path, "cut short"))?;
    from_json(&json).map_err(|e| corrupt(&path, e))
}

fn header_len(path: &Path, start: &[u8]) -> Result<usize, IndexError> {
    if &start[..8] == OLD_MAGIC {
        return Err(IndexError::NoView {
            path: path.parent().unwrap_or(path).to_path_buf(),
        });
    }
    if &start[..8] != MAGIC {
        return Err(corrupt(path, "not a view written by this build"));
    }
    let len = u64::from_le_bytes(start[8..16].try_into().expect("8 bytes"));
    usize::try_from(len)
        .ok()
        .filter(|&len| len < 1 << 30)
        .ok_or_else(|| corrupt(path, "header length"))
}

/// Reads and checks the whole view.
pub(crate) fn read(dir: &Path) -> Result<(Header, Body), IndexError> {
    let path = locate(dir)?;
    let bytes = std::fs::read(&path).map_err(|e| IndexError::io(&path, e))?;
    if bytes.len() < 16 + 1 + 4 {
        return Err(corrupt(&path, "cut short"));
    }
    let (content, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(content).to_le_bytes() != crc {
        return Err(corrupt(&path, "checksum mismatch"));
    }
    let len = header_len(&path, content)?;
    let json = content
        .get(16..16 + len)
        .ok_or_else(|| corrupt(&path, "cut short"))?;
    let header: Header = from_json(json).map_err(|e| corrupt(&path, e))?;
    let mut rest = &content[16 + len..];
    let mut body = Body::default();
    loop {
        let (&tag, after) = rest
            .split_first()
            .ok_or_else(|| corrupt(&path, "cut short"))?;
        rest = after;
        let bad = |e| corrupt(&path, e);
        match tag {
            TAG_END if rest.is_empty() => break,
            TAG_IMAGE => body.images.push(decode_prefix(&mut rest).map_err(bad)?),
            TAG_TEXT => body.texts.push(decode_prefix(&mut rest).map_err(bad)?),
            TAG_IMAGE_META => body
                .image_metas
                .push(decode_prefix(&mut rest).map_err(bad)?),
            TAG_FAILURE => body.failures.push(decode_prefix(&mut rest).map_err(bad)?),
            _ => return Err(corrupt(&path, "malformed body")),
        }
    }
    Ok((header, body))
}
