//! Thumbnails: JPEGs of at most `SIDE` pixels a side, orientation applied, made once and kept
//! in `<index>/thumbnails/`, named by the image's id and its file's size and modification time
//! (a file changed in place gets a new thumbnail), written through a temporary file and a
//! rename (a reader never sees half a file), the oldest deleted past a size cap.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::UNIX_EPOCH;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::FilterType;
use xsearch::{Engine, ImageId};

use super::error::ApiError;

/// The longest side of a thumbnail: sharp in a grid cell of a high-density phone screen.
pub const SIDE: u32 = 360;
const QUALITY: u8 = 82;
/// Disk the cache may use; past it, the oldest thumbnails go until it is under 3/4 of it.
const CAP_BYTES: u64 = 1 << 30;

pub struct Thumbs {
    dir: PathBuf,
    cap: u64,
    /// Bytes of thumbnails in the folder, as this process counts them.
    used: Mutex<u64>,
    temp: AtomicU64,
}

/// A thumbnail and the tag that changes with it.
pub struct Thumb {
    pub jpeg: Vec<u8>,
    pub etag: String,
}

impl Thumbs {
    /// The cache in `<index>/thumbnails/`, counting what an earlier run left there and
    /// deleting its unfinished temporary files. Nothing is created until a thumbnail is made.
    pub fn open(index: &Path) -> Self {
        Self::with_cap(index.join("thumbnails"), CAP_BYTES)
    }

    fn with_cap(dir: PathBuf, cap: u64) -> Self {
        let mut used = 0;
        for (path, size, _) in entries(&dir) {
            if path.extension().is_some_and(|e| e == "tmp") {
                let _ = fs::remove_file(path);
            } else {
                used += size;
            }
        }
        Self {
            dir,
            cap,
            used: Mutex::new(used),
            temp: AtomicU64::new(0),
        }
    }

    /// The thumbnail of `path` at `version`, from the cache or made now (and cached, when the
    /// folder can be written: an index on read-only media still gets thumbnails).
    pub fn get(&self, engine: &Engine, path: &Path, version: &str) -> Result<Thumb, ApiError> {
        let file = self.dir.join(format!("{version}.jpg"));
        let etag = format!("\"{version}\"");
        if let Ok(jpeg) = fs::read(&file) {
            return Ok(Thumb { jpeg, etag });
        }
        let image = engine
            .decode_preview(path)
            .map_err(|_| ApiError::not_found())?;
        // Shrunk to fit, never enlarged.
        let small = if image.width().max(image.height()) > SIDE {
            image.resize(SIDE, SIDE, FilterType::Triangle)
        } else {
            image
        };
        let small = small.into_rgb8();
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, QUALITY)
            .encode_image(&small)
            .map_err(|e| {
                eprintln!("xsearch: serve: {}: thumbnail: {e}", path.display());
                ApiError::not_found()
            })?;
        if self.store(&file, &jpeg).is_ok() {
            self.count(jpeg.len() as u64);
        }
        Ok(Thumb { jpeg, etag })
    }

    fn store(&self, file: &Path, jpeg: &[u8]) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let n = self.temp.fetch_add(1, Ordering::Relaxed);
        let temp = self.dir.join(format!(".{}-{n}.tmp", std::process::id()));
        fs::write(&temp, jpeg)?;
        fs::rename(&temp, file).inspect_err(|_| {
            let _ = fs::remove_file(&temp);
        })
    }

    /// Adds a new thumbnail's bytes; past the cap, deletes the oldest until under 3/4 of it.
    fn count(&self, bytes: u64) {
        let mut used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        *used += bytes;
        if *used <= self.cap {
            return;
        }
        let mut files: Vec<_> = entries(&self.dir)
            .filter(|(path, _, _)| path.extension().is_some_and(|e| e == "jpg"))
            .collect();
        files.sort_by_key(|&(_, _, modified)| modified);
        *used = files.iter().map(|(_, size, _)| size).sum();
        for (path, size, _) in files {
            if *used <= self.cap / 4 * 3 {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                *used -= size;
            }
        }
    }
}

/// The indexed file of `id` and its version while it stays as it is: the id, then the file's
/// size and modification time. Names its thumbnail and tags (ETag) both it and the original.
/// `None` when the id is not indexed or its file is no longer a regular file.
pub fn version(engine: &Engine, id: ImageId) -> Result<Option<(PathBuf, String)>, ApiError> {
    let Some(path) = engine.image_path(id)? else {
        return Ok(None);
    };
    let Ok(metadata) = fs::metadata(&path) else {
        return Ok(None);
    };
    if !metadata.is_file() {
        return Ok(None);
    }
    let mtime = metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(Some((path, format!("{id}-{}-{mtime}", metadata.len()))))
}

/// Each file of `dir`: path, size and modification time.
fn entries(dir: &Path) -> impl Iterator<Item = (PathBuf, u64, std::time::SystemTime)> {
    fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let metadata = entry.metadata().ok().filter(fs::Metadata::is_file)?;
            Some((entry.path(), metadata.len(), metadata.modified().ok()?))
        })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn past_the_cap_the_oldest_go_until_three_quarters_remain() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            let path = dir.path().join(format!("{name}.jpg"));
            fs::write(&path, [0u8; 100]).unwrap();
            let file = fs::File::options().write(true).open(&path).unwrap();
            file.set_modified(now - Duration::from_secs(100 - i as u64))
                .unwrap();
        }
        fs::write(dir.path().join(".1-0.tmp"), [0u8; 50]).unwrap();
        let thumbs = Thumbs::with_cap(dir.path().to_path_buf(), 400);
        assert!(!dir.path().join(".1-0.tmp").exists());
        assert_eq!(*thumbs.used.lock().unwrap(), 400);
        // A fifth thumbnail of 100 bytes: 500 > 400, down to 300 or less, the oldest first.
        thumbs
            .store(&dir.path().join("e.jpg"), &[0u8; 100])
            .unwrap();
        thumbs.count(100);
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["c.jpg", "d.jpg", "e.jpg"]);
        assert_eq!(*thumbs.used.lock().unwrap(), 300);
    }
}
