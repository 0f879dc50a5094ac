//! Finding a model: a local directory, or a Hugging Face hub repository fetched into the
//! standard cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`).
//!
//! The cache is always consulted first, so a cached model needs no network. With
//! `HF_HUB_OFFLINE=1` the cache is the only source. Downloads report progress through
//! [`DownloadProgress`]; this module never prints.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::Cache;

use crate::model::error::Error;

/// Hub repository used when `--model` is not given.
pub const DEFAULT_REPO: &str = "timm/resnet50_clip.openai";
/// The config file of an open_clip hub model.
pub const CONFIG_FILE: &str = "open_clip_config.json";
/// The weights file of an open_clip hub model.
pub const WEIGHTS_FILE: &str = "open_clip_model.safetensors";

/// How long to wait for the hub's TCP handshake before declaring it unreachable: `ureq`'s own
/// connect timeout is 30 s and hf-hub 0.4 does not let us shorten it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
            cache_dir: Cache::from_env().path().clone(),
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
        let cache = Cache::new(self.cache_dir.clone()).model(repo.to_string());
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
        let api = ApiBuilder::from_cache(Cache::new(self.cache_dir.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_progress(false)
            .build()
            .map_err(|e| unavailable(format!("cannot set up the hub client: {e}")))?
            .model(repo.to_string());
        let fetch = |file: &str| match cache.get(file) {
            Some(path) => Ok(path),
            None => api
                .download_with_progress(file, Relay(progress))
                .map_err(|e| {
                    unavailable(format!(
                        "download of {file} from {} failed: {e}",
                        self.endpoint
                    ))
                }),
        };
        Ok((fetch(CONFIG_FILE)?, fetch(WEIGHTS_FILE)?))
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

/// Adapts a caller's [`DownloadProgress`] to hf-hub's by-value `Progress`.
struct Relay<'a>(Option<&'a dyn DownloadProgress>);

impl hf_hub::api::Progress for Relay<'_> {
    fn init(&mut self, size: usize, filename: &str) {
        if let Some(p) = self.0 {
            p.start(filename, size as u64);
        }
    }
    fn update(&mut self, size: usize) {
        if let Some(p) = self.0 {
            p.advance(size as u64);
        }
    }
    fn finish(&mut self) {
        if let Some(p) = self.0 {
            p.finish();
        }
    }
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
