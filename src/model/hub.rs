//! Finding a model: a local directory, or a Hugging Face hub repository fetched into the
//! standard cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`).
//!
//! The cache is always consulted first, so a cached model needs no network. With
//! `HF_HUB_OFFLINE=1` the cache is the only source. Downloads report progress through
//! [`DownloadProgress`]; this module never prints.
//!
//! The cache layout is the Python client's, so both share downloads: under
//! `models--OWNER--NAME/`, `refs/main` names the commit, `snapshots/COMMIT/FILE` points at
//! `blobs/ETAG`, and a blob is written as `blobs/ETAG.incomplete` and renamed when complete.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::model::error::Error;

/// Hub repository used when `--model` is not given.
pub const DEFAULT_REPO: &str = "timm/resnet50_clip.openai";
/// The config file of an open_clip hub model.
pub const CONFIG_FILE: &str = "open_clip_config.json";
/// The weights file of an open_clip hub model.
pub const WEIGHTS_FILE: &str = "open_clip_model.safetensors";

/// How long to wait for the hub's TCP handshake before declaring it unreachable (a machine
/// without network should hear so within seconds, not after a 30 s default).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Redirects within the hub (a renamed repository) followed before giving up.
const MAX_HUB_REDIRECTS: usize = 5;

/// Receives download progress; implementations use interior mutability (the CLI draws a bar).
pub trait DownloadProgress {
    /// A download of `file` (`total_bytes` long) starts.
    fn start(&self, file: &str, total_bytes: u64);
    /// `bytes` more bytes of the current file arrived.
    fn advance(&self, bytes: u64);
    /// The current file is complete.
    fn finish(&self);
}

/// Where and how to look for hub models.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The hub cache directory (the `hub` folder inside `HF_HOME`).
    pub cache_dir: PathBuf,
    /// Base URL of the hub (`HF_ENDPOINT`, default `https://huggingface.co`).
    pub endpoint: String,
    /// Never touch the network (`HF_HUB_OFFLINE`).
    pub offline: bool,
}

impl HubOptions {
    /// Reads `HF_HOME`, `HF_ENDPOINT` and `HF_HUB_OFFLINE` like the Python hub client.
    pub fn from_env() -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "yes" | "on"
                )
            })
            .unwrap_or(false);
        Self {
            cache_dir: default_cache_dir(),
            endpoint: std::env::var("HF_ENDPOINT")
                .unwrap_or_else(|_| "https://huggingface.co".to_string()),
            offline,
        }
    }

    /// Paths of the config and weights of hub repository `repo`, from the cache or, unless
    /// offline, downloaded into it.
    pub fn fetch(
        &self,
        repo: &str,
        progress: Option<&dyn DownloadProgress>,
    ) -> Result<(PathBuf, PathBuf), Error> {
        let unavailable = |reason: String| Error::ModelUnavailable {
            repo: repo.to_string(),
            reason,
        };
        let cache = RepoCache::new(&self.cache_dir, repo);
        if let (Some(config), Some(weights)) = (cache.get(CONFIG_FILE), cache.get(WEIGHTS_FILE)) {
            return Ok((config, weights));
        }
        if self.offline {
            return Err(unavailable(format!(
                "not in the hub cache {} and HF_HUB_OFFLINE is set",
                self.cache_dir.display()
            )));
        }
        self.check_reachable().map_err(&unavailable)?;
        let fetch = |file: &str| match cache.get(file) {
            Some(path) => Ok(path),
            None => self.download(&cache, repo, file, progress).map_err(|e| {
                unavailable(format!(
                    "download of {file} from {} failed: {e}",
                    self.endpoint
                ))
            }),
        };
        Ok((fetch(CONFIG_FILE)?, fetch(WEIGHTS_FILE)?))
    }

    /// Downloads `file` of `repo`'s main branch into the cache; returns its snapshot path.
    fn download(
        &self,
        cache: &RepoCache,
        repo: &str,
        file: &str,
        progress: Option<&dyn DownloadProgress>,
    ) -> Result<PathBuf, String> {
        let url = format!(
            "{}/{repo}/resolve/main/{file}",
            self.endpoint.trim_end_matches('/')
        );
        let agent = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .build();
        let meta = self.metadata(&url)?;
        let blob = cache.dir.join("blobs").join(&meta.etag);
        let blobs = cache.dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| format!("{}: {e}", blobs.display()))?;
        let partial = blob.with_extension("incomplete");
        let response = agent.get(&url).call().map_err(|e| e.to_string())?;
        let written = write_body(response.into_reader(), &partial, file, meta.size, progress)
            .map_err(|e| format!("{}: {e}", partial.display()))?;
        if written != meta.size {
            return Err(format!(
                "received {written} of {} bytes of {file}",
                meta.size
            ));
        }
        std::fs::rename(&partial, &blob).map_err(|e| format!("{}: {e}", blob.display()))?;
        let pointer = cache.link(&meta.commit, file, &meta.etag)?;
        cache.set_main(&meta.commit)?;
        Ok(pointer)
    }

    /// What the hub says of a file before sending it: the commit `main` points at, the
    /// blob's etag and its size. Asks for its first byte, following redirects within the hub
    /// (a renamed repository) by hand and, for a redirect to a storage host, asking it for the
    /// size: the hub's headers are on its own answer, not the storage host's.
    fn metadata(&self, url: &str) -> Result<Metadata, String> {
        let direct = ureq::AgentBuilder::new()
            .timeout_connect(CONNECT_TIMEOUT)
            .redirects(0)
            .build();
        let first_byte = |agent: &ureq::Agent, url: &str| {
            agent
                .get(url)
                .set("Range", "bytes=0-0")
                .call()
                .map_err(|e| e.to_string())
        };
        let mut response = first_byte(&direct, url)?;
        for _ in 0..MAX_HUB_REDIRECTS {
            match response.header("location") {
                Some(location) if is_redirect(response.status()) && location.starts_with('/') => {
                    let url = format!("{}{location}", self.endpoint.trim_end_matches('/'));
                    response = first_byte(&direct, &url)?;
                }
                _ => break,
            }
        }
        let header = |name: &str| {
            response
                .header(name)
                .map(str::to_string)
                .ok_or_else(|| format!("the hub's answer lacks the {name} header"))
        };
        let etag = header("x-linked-etag")
            .or_else(|_| header("etag"))?
            .replace('"', "");
        let commit = header("x-repo-commit")?;
        if [&etag, &commit].iter().any(|s| !is_plain_name(s)) {
            return Err(format!(
                "the hub sent an odd etag {etag:?} or commit {commit:?}"
            ));
        }
        let range = match response.header("location") {
            Some(location) if is_redirect(response.status()) => {
                let agent = ureq::AgentBuilder::new()
                    .timeout_connect(CONNECT_TIMEOUT)
                    .build();
                first_byte(&agent, location)?
                    .header("content-range")
                    .map(str::to_string)
            }
            _ => response.header("content-range").map(str::to_string),
        };
        // `bytes 0-0/SIZE`
        let size = range
            .as_deref()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("the hub sent no usable content-range ({range:?})"))?;
        Ok(Metadata { etag, commit, size })
    }

    /// Fails fast when the endpoint's host does not accept a TCP connection.
    fn check_reachable(&self) -> Result<(), String> {
        let (host, port) = host_port(&self.endpoint)
            .ok_or_else(|| format!("cannot parse hub endpoint {}", self.endpoint))?;
        let addrs = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve hub host {host}: {e}"))?;
        let mut last = format!("hub host {host} has no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
                Ok(_) => return Ok(()),
                Err(e) => last = format!("hub {} unreachable ({e})", self.endpoint),
            }
        }
        Err(last)
    }
}

/// Host and port of an `http(s)://host[:port][/path]` URL (IPv6 hosts in brackets).
fn host_port(url: &str) -> Option<(String, u16)> {
    let (default_port, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (443, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (80, rest)
    } else {
        return None;
    };
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => default_port,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// What the hub says of a file before sending it.
struct Metadata {
    /// The blob's name in the cache.
    etag: String,
    /// The commit `main` points at.
    commit: String,
    /// The file's length.
    size: u64,
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// A commit hash or etag, safe as a file name.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Copies `body` into `path` (created afresh), telling `progress`; returns the bytes written.
fn write_body(
    mut body: impl Read,
    path: &Path,
    file: &str,
    size: u64,
    progress: Option<&dyn DownloadProgress>,
) -> std::io::Result<u64> {
    let mut out = std::fs::File::create(path)?;
    if let Some(p) = progress {
        p.start(file, size);
    }
    let mut buf = vec![0u8; 1 << 16];
    let mut written = 0;
    loop {
        let n = body.read(&mut buf)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
        written += n as u64;
        if let Some(p) = progress {
            p.advance(n as u64);
        }
    }
    out.sync_all()?;
    if let Some(p) = progress {
        p.finish();
    }
    Ok(written)
}

/// One repository's folder in the hub cache.
struct RepoCache {
    dir: PathBuf,
}

impl RepoCache {
    fn new(cache_dir: &Path, repo: &str) -> Self {
        Self {
            dir: cache_dir.join(format!("models--{}", repo.replace('/', "--"))),
        }
    }

    /// The snapshot path of `file` at the commit `refs/main` names, if it is there.
    fn get(&self, file: &str) -> Option<PathBuf> {
        let commit = std::fs::read_to_string(self.dir.join("refs/main")).ok()?;
        let path = self.dir.join("snapshots").join(commit.trim()).join(file);
        path.exists().then_some(path)
    }

    /// Makes `snapshots/COMMIT/FILE` point at `blobs/ETAG` (a relative symbolic link, as the
    /// Python client makes; where links are not available, the blob moves there).
    fn link(&self, commit: &str, file: &str, etag: &str) -> Result<PathBuf, String> {
        let snapshot = self.dir.join("snapshots").join(commit);
        std::fs::create_dir_all(&snapshot).map_err(|e| format!("{}: {e}", snapshot.display()))?;
        let pointer = snapshot.join(file);
        let blob = self.dir.join("blobs").join(etag);
        let _ = std::fs::remove_file(&pointer); // a stale link from an interrupted run
        #[cfg(unix)]
        let linked = std::os::unix::fs::symlink(Path::new("../../blobs").join(etag), &pointer);
        #[cfg(not(unix))]
        let linked = std::fs::rename(&blob, &pointer);
        linked.map_err(|e| format!("{}: {e}", pointer.display()))?;
        if !pointer.exists() {
            return Err(format!(
                "{}: does not lead to {}",
                pointer.display(),
                blob.display()
            ));
        }
        Ok(pointer)
    }

    /// Points `refs/main` at `commit`.
    fn set_main(&self, commit: &str) -> Result<(), String> {
        let refs = self.dir.join("refs");
        std::fs::create_dir_all(&refs).map_err(|e| format!("{}: {e}", refs.display()))?;
        std::fs::write(refs.join("main"), commit).map_err(|e| format!("{}: {e}", refs.display()))
    }
}

/// `$HF_HOME/hub`, else `~/.cache/huggingface/hub`, like the Python client.
fn default_cache_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("HF_HOME") {
        return PathBuf::from(home).join("hub");
    }
    let home = std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .map(PathBuf::from)
        .unwrap_or_default();
    home.join(".cache/huggingface/hub")
}

/// Whether `spec` names a hub repository (`owner/name`) rather than a filesystem path.
pub(crate) fn looks_like_repo_id(spec: &str) -> bool {
    let mut parts = spec.split('/');
    let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s != "."
            && s != ".."
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    valid(owner) && valid(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_host_and_port() {
        assert_eq!(
            host_port("https://huggingface.co"),
            Some(("huggingface.co".into(), 443))
        );
        assert_eq!(
            host_port("http://127.0.0.1:9/x"),
            Some(("127.0.0.1".into(), 9))
        );
        assert_eq!(host_port("http://[::1]:8080"), Some(("::1".into(), 8080)));
        assert_eq!(host_port("ftp://x"), None);
        assert_eq!(host_port("http://"), None);
        assert_eq!(host_port("http://[::1]"), Some(("::1".into(), 80)));
    }

    #[test]
    fn repo_ids_versus_paths() {
        assert!(looks_like_repo_id("timm/resnet50_clip.openai"));
        assert!(!looks_like_repo_id("./models/rn50"));
        assert!(!looks_like_repo_id("/abs/dir"));
        assert!(!looks_like_repo_id("rn50"));
        assert!(!looks_like_repo_id("../x"));
    }
}
