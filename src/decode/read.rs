//! Reading an image file, bounded: the one place xsearch reads a file it is asked to decode.
//!
//! - Only regular files are read. A device (`/dev/zero`), a FIFO or a socket would never end or
//!   never answer, so the file type is checked before opening, and checked again on the open
//!   handle (the name may have been replaced in between). The open itself is non-blocking, so
//!   a FIFO swapped in at the last moment cannot hang us either.
//! - The file's size is checked against [`DecodeLimits::max_file_bytes`] from its metadata,
//!   before any byte is read, and the read stops one byte past the limit in case the file grows
//!   while we read it: memory stays bounded whatever the file claims.

use std::fs::{File, Metadata};
use std::io::Read;
use std::path::Path;

use super::{DecodeError, DecodeLimits};

/// The bytes of the regular file at `path`, at most `limits.max_file_bytes` of them.
pub fn read_file(path: &Path, limits: &DecodeLimits) -> Result<Vec<u8>, DecodeError> {
    read_up_to(path, limits, None)
}

/// The first `len` bytes of the regular file at `path` (all of it when shorter), under the
/// same checks as [`read_file`]: for a caller that needs only a header.
pub fn read_head(path: &Path, limits: &DecodeLimits, len: u64) -> Result<Vec<u8>, DecodeError> {
    read_up_to(path, limits, Some(len))
}

fn read_up_to(
    path: &Path,
    limits: &DecodeLimits,
    head: Option<u64>,
) -> Result<Vec<u8>, DecodeError> {
    let io = |source| DecodeError::Io {
        path: Some(path.to_path_buf()),
        source,
    };
    let cap = limits.max_file_bytes;
    check(path, &std::fs::metadata(path).map_err(io)?, cap)?;
    let file = open_nonblocking(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    check(path, &metadata, cap)?;
    let want = head.map_or(cap.saturating_add(1), |head| head.min(cap));
    let len = usize::try_from(metadata.len().min(want)).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(len.saturating_add(1));
    file.take(want).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > cap {
        // It grew past the limit while we read it.
        return Err(DecodeError::FileTooLarge {
            path: Some(path.to_path_buf()),
            size: bytes.len() as u64,
            limit: cap,
        });
    }
    Ok(bytes)
}

fn check(path: &Path, metadata: &Metadata, cap: u64) -> Result<(), DecodeError> {
    if let Some(kind) = special_kind(metadata) {
        return Err(DecodeError::NotAFile {
            path: Some(path.to_path_buf()),
            kind,
        });
    }
    if metadata.len() > cap {
        return Err(DecodeError::FileTooLarge {
            path: Some(path.to_path_buf()),
            size: metadata.len(),
            limit: cap,
        });
    }
    Ok(())
}

/// What a file that is not a regular file is, in words; `None` for a regular file.
pub fn special_kind(metadata: &Metadata) -> Option<&'static str> {
    let kind = metadata.file_type();
    if kind.is_file() {
        return None;
    }
    if kind.is_dir() {
        return Some("a directory");
    }
    if kind.is_symlink() {
        return Some("a symbolic link");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return Some("a FIFO (named pipe)");
        }
        if kind.is_socket() {
            return Some("a socket");
        }
        if kind.is_char_device() {
            return Some("a character device");
        }
        if kind.is_block_device() {
            return Some("a block device");
        }
    }
    Some("not a regular file")
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK only matters for FIFOs and devices, which the checks around the open refuse;
    // on a regular file it changes nothing.
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// `bytes` in words with a binary unit: `1.5 GiB`, `256 MiB`, `700 bytes`.
pub(super) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_size(700), "700 bytes");
        assert_eq!(human_size(256 << 20), "256 MiB");
        assert_eq!(human_size(1_610_612_736), "1.5 GiB");
        assert_eq!(human_size(300_000_000), "286 MiB");
    }

    #[cfg(unix)]
    #[test]
    fn devices_and_fifos_are_refused_before_any_read() {
        let limits = DecodeLimits::default();
        let err = read_file(Path::new("/dev/zero"), &limits).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/zero: not a regular file: it is a character device"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.jpg");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read_file(&fifo, &limits).unwrap_err();
        assert!(matches!(
            err,
            DecodeError::NotAFile {
                kind: "a FIFO (named pipe)",
                ..
            }
        ));
    }

    #[test]
    fn a_file_over_the_cap_is_refused_from_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.jpg");
        let file = File::create(&path).unwrap();
        file.set_len(300_000_000).unwrap(); // sparse: costs no disk
        let limits = DecodeLimits {
            max_file_bytes: 256 << 20,
            ..DecodeLimits::default()
        };
        let err = read_file(&path, &limits).unwrap_err();
        assert_eq!(
            err.reason(),
            "file is 286 MiB, over the 256 MiB limit for an image"
        );
        std::fs::write(&path, b"12345").unwrap();
        let tiny = DecodeLimits {
            max_file_bytes: 5,
            ..DecodeLimits::default()
        };
        assert_eq!(read_file(&path, &tiny).unwrap(), b"12345");
        assert_eq!(read_head(&path, &tiny, 3).unwrap(), b"123");
        assert_eq!(read_head(&path, &tiny, 9).unwrap(), b"12345");
    }
}
