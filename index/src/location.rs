//! Where an index lives: a directory (the embedded backend) or a Milvus collection, named by a
//! URL. Parsing needs no Milvus client, so a build without the `milvus` feature still
//! recognises a Milvus location and can say that it cannot open it.

use std::path::{Path, PathBuf};

use crate::IndexError;

/// An index location, as `--index` or `XSEARCH_INDEX` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A directory holding an embedded index.
    Dir(PathBuf),
    /// A collection in a Milvus server.
    Milvus(MilvusUrl),
}

/// `milvus://HOST:PORT/COLLECTION` (plain gRPC) or `milvus+tls://HOST:PORT/COLLECTION` (gRPC
/// over TLS, checked against the system's roots). The token, when the server wants one, comes
/// from `XSEARCH_MILVUS_TOKEN` (`user:password` or an API key), never from the URL, so it never
/// shows in a status line, an error or a process list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MilvusUrl {
    /// Whether the connection uses TLS.
    pub tls: bool,
    /// Host name or address.
    pub host: String,
    /// Port (Milvus listens on 19530 unless told otherwise).
    pub port: u16,
    /// The image collection's name; the texts live in `<name>_texts`, the failures in
    /// `<name>_failures`.
    pub collection: String,
    /// How searches and lookups of results wait for recent writes (`?consistency=`).
    pub consistency: Consistency,
}

/// How a search through Milvus sees writes. Reads that decide what an index run writes are
/// strong whatever this says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Every acknowledged write is seen. Milvus makes a search wait for the next time tick of
    /// its write log for that: ~200 ms on a standalone server (`BENCHMARKS.md`).
    #[default]
    Strong,
    /// Writes older than Milvus's graceful time (`common.gracefulTime`, 5 s by default) are
    /// seen, newer ones may not be yet; a search does not wait.
    Bounded,
}

/// The longest collection name: Milvus allows 255 characters, and the text collection adds
/// `_failures`'s 9 at most.
const MAX_NAME: usize = 255 - "_failures".len();

impl Location {
    /// The location `path` names: a Milvus URL when it starts with `milvus://` or
    /// `milvus+tls://`, else a directory.
    pub fn parse(path: &Path) -> Result<Location, IndexError> {
        match path.to_str() {
            Some(text) if text.starts_with("milvus://") || text.starts_with("milvus+tls://") => {
                MilvusUrl::parse(text).map(Location::Milvus)
            }
            _ => Ok(Location::Dir(path.to_path_buf())),
        }
    }
}

impl MilvusUrl {
    /// Parses `milvus[+tls]://HOST:PORT/COLLECTION`.
    pub fn parse(text: &str) -> Result<MilvusUrl, IndexError> {
        let bad = |why: &str| IndexError::BadLocation {
            location: text.to_string(),
            why: why.to_string(),
        };
        let (tls, rest) = if let Some(rest) = text.strip_prefix("milvus+tls://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("milvus://") {
            (false, rest)
        } else {
            return Err(bad("it does not start with milvus:// or milvus+tls://"));
        };
        let (authority, collection) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no collection after the port"))?;
        let (collection, options) = collection.split_once('?').unwrap_or((collection, ""));
        let mut consistency = Consistency::default();
        for option in options.split('&').filter(|o| !o.is_empty()) {
            consistency = match option {
                "consistency=strong" => Consistency::Strong,
                "consistency=bounded" => Consistency::Bounded,
                _ => {
                    return Err(bad(&format!(
                        "`{option}` is not an option; the one option is \
                         `?consistency=strong` (the default) or `?consistency=bounded`"
                    )))
                }
            };
        }
        if authority.contains('@') {
            return Err(bad(
                "credentials do not belong in the URL; set XSEARCH_MILVUS_TOKEN instead",
            ));
        }
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| bad("it names no port (Milvus listens on 19530 by default)"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad("the port is not a number from 1 to 65535"))?;
        if host.is_empty() || port == 0 {
            return Err(bad("it names no host or port"));
        }
        // Milvus's rule for collection names.
        let valid = collection
            .chars()
            .next()
            .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && collection
                .chars()
                .all(|c| c == '_' || c.is_ascii_alphanumeric())
            && collection.len() <= MAX_NAME;
        if !valid {
            return Err(bad(
                "the collection name must start with a letter or `_` and hold only letters, \
                 digits and `_` (at most 246 characters)",
            ));
        }
        Ok(MilvusUrl {
            tls,
            host: host.to_string(),
            port,
            collection: collection.to_string(),
            consistency,
        })
    }

    /// The server's address as the client dials it.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// The URL as a path, for the places that show an index's location.
    pub fn as_path(&self) -> PathBuf {
        PathBuf::from(self.to_string())
    }
}

impl std::fmt::Display for MilvusUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "milvus+tls" } else { "milvus" };
        write!(
            f,
            "{scheme}://{}:{}/{}",
            self.host, self.port, self.collection
        )?;
        match self.consistency {
            Consistency::Strong => Ok(()),
            Consistency::Bounded => f.write_str("?consistency=bounded"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Result<MilvusUrl, String> {
        match Location::parse(Path::new(text)) {
            Ok(Location::Milvus(url)) => Ok(url),
            Ok(Location::Dir(dir)) => Err(format!("a directory: {}", dir.display())),
            Err(err) => Err(err.to_string()),
        }
    }

    #[test]
    fn urls_name_host_port_collection_and_tls() {
        let plain = url("milvus://127.0.0.1:19530/photos").unwrap();
        assert_eq!(
            plain,
            MilvusUrl {
                tls: false,
                host: "127.0.0.1".into(),
                port: 19530,
                collection: "photos".into(),
                consistency: Consistency::Strong,
            }
        );
        assert_eq!(plain.endpoint(), "http://127.0.0.1:19530");
        assert_eq!(plain.to_string(), "milvus://127.0.0.1:19530/photos");
        let tls = url("milvus+tls://db.example:443/_team_1").unwrap();
        assert!(tls.tls);
        assert_eq!(tls.endpoint(), "https://db.example:443");
        assert_eq!(tls.to_string(), "milvus+tls://db.example:443/_team_1");
    }

    #[test]
    fn consistency_is_an_option_of_the_url() {
        let bounded = url("milvus://h:1/photos?consistency=bounded").unwrap();
        assert_eq!(
            (bounded.collection.as_str(), bounded.consistency),
            ("photos", Consistency::Bounded)
        );
        assert_eq!(
            bounded.to_string(),
            "milvus://h:1/photos?consistency=bounded"
        );
        let strong = url("milvus://h:1/photos?consistency=strong").unwrap();
        assert_eq!(strong.consistency, Consistency::Strong);
        assert_eq!(strong.to_string(), "milvus://h:1/photos");
    }

    #[test]
    fn directories_stay_directories() {
        for dir in ["/data/index", "milvus", "./milvus:/x", "milvus:/x"] {
            assert_eq!(
                Location::parse(Path::new(dir)).unwrap(),
                Location::Dir(PathBuf::from(dir))
            );
        }
    }

    #[test]
    fn malformed_urls_say_what_is_wrong() {
        let cases = [
            ("milvus://host/photos", "names no port"),
            ("milvus://host:19530", "names no collection"),
            ("milvus://host:x/photos", "port is not a number"),
            ("milvus://:19530/photos", "no host or port"),
            ("milvus://u:p@host:19530/photos", "XSEARCH_MILVUS_TOKEN"),
            ("milvus://host:19530/9lives", "must start with a letter"),
            ("milvus://host:19530/a-b", "must start with a letter"),
            (
                "milvus://host:19530/p?consistency=eventual",
                "`consistency=eventual` is not",
            ),
            (
                "milvus://host:19530/p?ef=64",
                "the one option is `?consistency=strong`",
            ),
        ];
        for (text, why) in cases {
            let err = url(text).unwrap_err();
            assert!(err.starts_with(text), "{err}");
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
