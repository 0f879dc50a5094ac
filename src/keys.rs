//! How an image's path becomes its key in the index and back: the bytes the OS gives, so names
//! that are not UTF-8 survive. Ingest writes keys, searches and status read them.

use std::path::{Path, PathBuf};

/// The index key of a path.
pub(crate) fn path_key(path: &Path) -> Vec<u8> {
    path.as_os_str().as_encoded_bytes().to_vec()
}

/// The path of an index key, inverse of [`path_key`].
pub(crate) fn key_path(key: &[u8]) -> PathBuf {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        PathBuf::from(std::ffi::OsStr::from_bytes(key))
    }
    #[cfg(not(unix))]
    {
        PathBuf::from(String::from_utf8_lossy(key).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_paths() {
        let path = Path::new("/photos/été/a b.jpg");
        assert_eq!(path_key(path), "/photos/été/a b.jpg".as_bytes());
        assert_eq!(key_path(&path_key(path)), path);
    }
}
