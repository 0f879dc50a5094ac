//! Finding the image files under the folders a user names.
//!
//! Choices, all deliberate:
//! - Symbolic links are not followed unless asked; when they are, loops are reported, not fatal.
//! - Hidden entries (names starting with `.`, such as `.thumbnails` or `.git`) are skipped below
//!   the roots: they hold caches and copies, not photos.
//! - A file is a candidate when its extension is an image format we know of (supported or not,
//!   so an unsupported `.heic` is reported rather than silently ignored), or when it has no
//!   or an unknown extension and its first bytes are an image signature. Videos (by extension
//!   or signature) are found so that the summary can count them; other files (sidecars,
//!   documents) are ignored without a word.
//! - Special files (FIFOs, sockets, devices) and symbolic links that lead nowhere are never
//!   opened (a FIFO would block the walk, a device never ends): they are yielded as
//!   [`Found::Special`] so the run can count them.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use walkdir::WalkDir;

use crate::decode::format::{self, Support};

/// A file found by the walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Absolute path.
    pub path: PathBuf,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 when the platform has none).
    pub mtime_ns: i64,
}

/// What the walk finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// An image file (decodable or not: an unsupported one is reported by the decoder).
    Image(Candidate),
    /// A video file (by extension, or by content for unknown extensions): only counted.
    Video(PathBuf),
    /// A file that is not a regular file (FIFO, socket, device) or a symbolic link to nothing:
    /// skipped without being opened.
    Special {
        /// The entry.
        path: PathBuf,
        /// What it is, in words ("a FIFO (named pipe)").
        kind: &'static str,
    },
}

/// Something the walk could not look at; the walk goes on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct WalkError {
    /// The entry concerned (the root itself when it cannot be read at all).
    pub path: PathBuf,
    /// What went wrong, in words.
    pub reason: String,
}

/// How to walk.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalkOptions {
    /// Follow symbolic links (loops are detected and reported).
    pub follow_symlinks: bool,
    /// Which files of a camera RAW + JPEG pair to index.
    pub raw_pairs: RawPairs,
}

/// Which files of a RAW + JPEG pair (`IMG_0001.CR2` beside `IMG_0001.JPG`: the same name up to
/// the extension, case-insensitive, in the same folder) the walk yields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RawPairs {
    /// Only the JPEG: the camera developed it from the same shot, so the RAW's preview would
    /// only add a near-duplicate to every search.
    #[default]
    JpegOnly,
    /// Both files.
    Both,
}

/// Walks `roots` (folders or single files) in a stable order, yielding image candidates,
/// videos, special files and the errors met on the way.
pub fn walk(
    roots: &[PathBuf],
    options: WalkOptions,
) -> impl Iterator<Item = Result<Found, WalkError>> + '_ {
    roots.iter().flat_map(move |root| {
        let root_abs = std::path::absolute(root).unwrap_or_else(|_| root.clone());
        let mut jpegs = JpegStems::default();
        WalkDir::new(root_abs)
            .follow_links(options.follow_symlinks)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| entry.depth() == 0 || !is_hidden(entry.file_name()))
            .filter_map(move |entry| match entry {
                Ok(entry) if entry.file_type().is_file() => {
                    let paired = options.raw_pairs == RawPairs::JpegOnly
                        && format::has_raw_extension(entry.path())
                        && jpegs.has_pair(entry.path());
                    if paired {
                        None
                    } else {
                        candidate(entry.path()).transpose()
                    }
                }
                Ok(entry) => special(&entry).map(Ok),
                Err(err) => Some(Err(walk_error(&err, root))),
            })
    })
}

/// The stems (ASCII lower-cased) of the JPEG files in the folder last asked about: the walk
/// lists a folder's files together, so each folder is read about once, not once per RAW file.
#[derive(Default)]
struct JpegStems {
    folder: Option<PathBuf>,
    stems: HashSet<Vec<u8>>,
}

impl JpegStems {
    /// Whether a JPEG with the same stem as `raw` lies beside it.
    fn has_pair(&mut self, raw: &Path) -> bool {
        let (Some(folder), Some(stem)) = (raw.parent(), raw.file_stem()) else {
            return false;
        };
        if self.folder.as_deref() != Some(folder) {
            // An unreadable folder has no pairs: its RAW files are then indexed themselves.
            self.stems = std::fs::read_dir(folder)
                .into_iter()
                .flatten()
                .filter_map(|entry| {
                    let path = entry.ok()?.path();
                    format::has_jpeg_extension(&path)
                        .then(|| path.file_stem().map(stem_key))
                        .flatten()
                })
                .collect();
            self.folder = Some(folder.to_path_buf());
        }
        self.stems.contains(&stem_key(stem))
    }
}

fn stem_key(stem: &std::ffi::OsStr) -> Vec<u8> {
    stem.as_encoded_bytes().to_ascii_lowercase()
}

/// `roots` made absolute, less those that another root's walk covers (a folder named twice, or
/// a folder inside another that the walk enters), so no file is visited twice.
pub fn distinct_roots(roots: &[PathBuf], options: WalkOptions) -> Vec<PathBuf> {
    let roots: Vec<PathBuf> = roots
        .iter()
        .map(|r| std::path::absolute(r).unwrap_or_else(|_| r.clone()))
        .collect();
    // Only the same path or an ancestor can cover a root: each root's ancestors are looked up,
    // so a watcher's change set of thousands of paths costs their depth, not their square.
    let named: HashSet<&Path> = roots.iter().map(PathBuf::as_path).collect();
    let mut seen = HashSet::new();
    roots
        .iter()
        .filter(|root| {
            // Of a folder named twice, the first is kept.
            seen.insert(root.as_path())
                && !root
                    .ancestors()
                    .skip(1)
                    .any(|outer| named.contains(outer) && reaches(outer, root, options))
        })
        .cloned()
        .collect()
}

/// Whether walking `outer` visits `inner`: it lies below `outer` through entries the walk
/// enters (not hidden, and not symbolic links unless they are followed).
pub fn reaches(outer: &Path, inner: &Path, options: WalkOptions) -> bool {
    let Ok(rest) = inner.strip_prefix(outer) else {
        return false;
    };
    let mut path = outer.to_path_buf();
    rest.components().all(|component| {
        path.push(component);
        !is_hidden(component.as_os_str()) && (options.follow_symlinks || !path.is_symlink())
    })
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.as_encoded_bytes().first() == Some(&b'.')
}

fn walk_error(err: &walkdir::Error, root: &Path) -> WalkError {
    let path = err.path().unwrap_or(root).to_path_buf();
    let reason = if let Some(ancestor) = err.loop_ancestor() {
        format!("symbolic link loop back to {}; skipped", ancestor.display())
    } else if let Some(io) = err.io_error() {
        match io.kind() {
            std::io::ErrorKind::PermissionDenied => {
                "permission denied; skipped (grant read access to index it)".to_owned()
            }
            std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
            _ => io.to_string(),
        }
    } else {
        err.to_string()
    };
    WalkError { path, reason }
}

/// A walked entry that is neither a regular file nor a folder (nor, when links are not
/// followed, a link to one of them): FIFOs, sockets, devices and dangling links. A link that
/// leads somewhere is not followed unless asked, as before, and is not special.
fn special(entry: &walkdir::DirEntry) -> Option<Found> {
    let kind = entry.file_type();
    if kind.is_dir() {
        return None;
    }
    let kind = if kind.is_symlink() {
        match std::fs::metadata(entry.path()) {
            Err(_) => "a symbolic link that leads nowhere",
            Ok(_) => return None,
        }
    } else {
        crate::decode::special_kind(&entry.metadata().ok()?)?
    };
    Some(Found::Special {
        path: entry.path().to_path_buf(),
        kind,
    })
}

/// `Ok(None)` when the file is neither an image candidate nor a video.
fn candidate(path: &Path) -> Result<Option<Found>, WalkError> {
    match format::by_extension(path).or_else(|| signature(path)) {
        Some(Support::Decoded | Support::Recognised) => {}
        Some(Support::Video) => return Ok(Some(Found::Video(path.to_path_buf()))),
        Some(Support::NotImage) | None => return Ok(None),
    }
    Candidate::at(path).map(|candidate| Some(Found::Image(candidate)))
}

impl Candidate {
    /// The file at `path` (made absolute, links not resolved, as the walk names files) with
    /// its size and modification time, whatever its content: for files named one by one.
    pub fn at(path: &Path) -> Result<Candidate, WalkError> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(err) => {
                let reason = match err.kind() {
                    std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
                    _ => err.to_string(),
                };
                return Err(WalkError { path, reason });
            }
        };
        let mtime_ns = metadata
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        Ok(Candidate {
            path,
            size: metadata.len(),
            mtime_ns,
        })
    }
}

/// What the first bytes of the file say it is (an image the decoder handles, a video, or
/// `None`). Unreadable files answer `None`: they are not reported unless their extension says
/// image.
fn signature(path: &Path) -> Option<Support> {
    let mut head = [0u8; format::SIGNATURE_LEN];
    let n = File::open(path).and_then(|mut f| f.read(&mut head)).ok()?;
    format::by_signature(&head[..n])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(found: &[Candidate], root: &Path) -> Vec<String> {
        found
            .iter()
            .map(|c| c.path.strip_prefix(root).unwrap().display().to_string())
            .collect()
    }

    const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn finds_images_and_videos_by_extension_or_signature_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::absolute(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/.thumbnails")).unwrap();
        std::fs::write(root.join("a/x.JPG"), b"not really a jpeg").unwrap();
        std::fs::write(root.join("a/y.heic"), b"heic").unwrap();
        std::fs::write(root.join("a/no_extension"), PNG_MAGIC).unwrap();
        std::fs::write(root.join("a/notes.txt"), PNG_MAGIC).unwrap();
        std::fs::write(root.join("a/clip.mp4"), b"video").unwrap();
        std::fs::write(root.join("a/.thumbnails/t.jpg"), b"thumb").unwrap();
        std::fs::write(root.join("a/.hidden.png"), PNG_MAGIC).unwrap();
        // A Matroska video under an unknown extension: told by its EBML signature.
        std::fs::write(root.join("a/movie.bin"), b"\x1a\x45\xdf\xa3\x9f\x42\x86").unwrap();
        let all: Vec<Found> = walk(std::slice::from_ref(&root), WalkOptions::default())
            .collect::<Result<_, _>>()
            .unwrap();
        let (mut found, mut videos) = (Vec::new(), Vec::new());
        for item in all {
            match item {
                Found::Image(candidate) => found.push(candidate),
                Found::Video(path) => videos.push(path),
                special => panic!("{special:?}"),
            }
        }
        assert_eq!(
            names(&found, &root),
            ["a/no_extension", "a/x.JPG", "a/y.heic"]
        );
        assert_eq!(videos, [root.join("a/clip.mp4"), root.join("a/movie.bin")]);
        assert_eq!(found[1].size, 17);
        assert!(found.iter().all(|c| c.path.is_absolute() && c.mtime_ns > 0));
    }

    #[test]
    fn a_raw_file_beside_a_same_named_jpeg_is_left_out_unless_asked() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::absolute(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/sub")).unwrap();
        for name in [
            "a/IMG_0001.CR2",
            "a/img_0001.Jpeg",
            "a/IMG_0002.NEF",
            "a/IMG_0002.png",
            "a/sub/IMG_0001.dng",
            "a/sub/IMG_0003.ARW",
            "a/sub/IMG_0003.jpg",
        ] {
            std::fs::write(root.join(name), b"x").unwrap();
        }
        let found = |raw_pairs| {
            let options = WalkOptions {
                raw_pairs,
                ..WalkOptions::default()
            };
            let found: Vec<Candidate> = walk(std::slice::from_ref(&root), options)
                .map(|item| match item.unwrap() {
                    Found::Image(candidate) => candidate,
                    other => panic!("only images here: {other:?}"),
                })
                .collect();
            names(&found, &root)
        };
        assert_eq!(
            found(RawPairs::JpegOnly),
            [
                "a/IMG_0002.NEF",
                "a/IMG_0002.png",
                "a/img_0001.Jpeg",
                "a/sub/IMG_0001.dng",
                "a/sub/IMG_0003.jpg",
            ]
        );
        assert_eq!(found(RawPairs::Both).len(), 7);
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_reported_and_the_walk_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::absolute(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/p.png"), PNG_MAGIC).unwrap();
        std::os::unix::fs::symlink(&root, root.join("d/loop")).unwrap();

        let plain: Vec<_> = walk(std::slice::from_ref(&root), WalkOptions::default()).collect();
        assert_eq!(plain.len(), 1, "links are not followed by default");

        let followed: Vec<_> = walk(
            std::slice::from_ref(&root),
            WalkOptions {
                follow_symlinks: true,
                ..WalkOptions::default()
            },
        )
        .collect();
        let errors: Vec<_> = followed.iter().filter_map(|r| r.as_ref().err()).collect();
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].reason.contains("symbolic link loop"),
            "{}",
            errors[0]
        );
        assert_eq!(followed.iter().filter(|r| r.is_ok()).count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn fifos_and_dangling_links_are_yielded_as_special_without_being_opened() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::absolute(dir.path()).unwrap();
        std::fs::write(root.join("a.png"), PNG_MAGIC).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("pipe.jpg"))
            .status()
            .unwrap();
        assert!(status.success());
        std::os::unix::fs::symlink(root.join("gone.jpg"), root.join("dangling.jpg")).unwrap();
        std::os::unix::fs::symlink(root.join("a.png"), root.join("link.png")).unwrap();
        let found: Vec<Found> = walk(std::slice::from_ref(&root), WalkOptions::default())
            .collect::<Result<_, _>>()
            .unwrap();
        let kinds: Vec<(String, &str)> = found
            .iter()
            .map(|f| match f {
                Found::Image(c) => (names(std::slice::from_ref(c), &root)[0].clone(), "image"),
                Found::Special { path, kind } => (
                    path.strip_prefix(&root).unwrap().display().to_string(),
                    *kind,
                ),
                Found::Video(path) => panic!("no videos here: {}", path.display()),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                ("a.png".to_owned(), "image"),
                (
                    "dangling.jpg".to_owned(),
                    "a symbolic link that leads nowhere"
                ),
                ("pipe.jpg".to_owned(), "a FIFO (named pipe)"),
            ]
        );
    }

    #[test]
    fn roots_another_root_walks_into_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::path::absolute(dir.path()).unwrap();
        for sub in ["a/b", "a/.hidden", "c"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let roots =
            |names: &[&str]| -> Vec<PathBuf> { names.iter().map(|n| root.join(n)).collect() };
        let kept = |names: &[&str]| distinct_roots(&roots(names), WalkOptions::default());
        assert_eq!(kept(&["a", "a/b", "c", "a"]), roots(&["a", "c"]));
        assert_eq!(kept(&["a/b", "a"]), roots(&["a"]));
        // The walk of `a` skips hidden folders: one named on its own is walked on its own.
        assert_eq!(kept(&["a", "a/.hidden"]), roots(&["a", "a/.hidden"]));
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(root.join("c"), root.join("a/link")).unwrap();
            assert_eq!(kept(&["a", "a/link"]), roots(&["a", "a/link"]));
            let follow = WalkOptions {
                follow_symlinks: true,
                ..WalkOptions::default()
            };
            assert_eq!(
                distinct_roots(&roots(&["a", "a/link"]), follow),
                roots(&["a"])
            );
        }
    }

    #[test]
    fn a_missing_root_is_an_error_naming_it() {
        let errors: Vec<_> =
            walk(&[PathBuf::from("/no/such/dir")], WalkOptions::default()).collect();
        assert_eq!(errors.len(), 1);
        let err = errors[0].as_ref().unwrap_err();
        assert_eq!(err.path, Path::new("/no/such/dir"));
        assert_eq!(err.reason, "no such file or directory");
    }
}
