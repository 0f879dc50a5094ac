//! The index's own meta values: format version, model, dimension and graph parameters,
//! checked on open, and the end of a format 1 conversion.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sled::Tree;

use super::codec::{decode, from_json, to_json};
use crate::types::{HnswParams, IndexSpec};
use crate::{IndexError, FORMAT_VERSION};

/// The format version: a big-endian u32, its own key, so every build can read it.
pub(crate) const META_FORMAT: &str = "format_version";
/// The persisted [`StoredSpec`], JSON.
const META_SPEC: &str = "spec";
/// Where builds before the JSON spec kept its parts (raw bytes, big-endian u64, bincode).
const OLD_MODEL: &str = "model";
const OLD_DIM: &str = "dim";
const OLD_HNSW: &str = "hnsw";

/// The oldest format version that opening converts (to [`FORMAT_VERSION`]).
const OLDEST_CONVERTIBLE: u32 = 1;

/// What an index was created for and with; persisted as JSON under [`META_SPEC`]. New
/// fields take `#[serde(default)]`, so older indexes still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredSpec {
    /// Model fingerprint.
    pub model: String,
    pub dim: usize,
    pub hnsw: HnswParams,
    /// Where the model came from (a hub id or an absolute directory), so later commands
    /// can load it without being told; absent in indexes written before it was recorded.
    #[serde(default)]
    pub model_source: Option<String>,
}

impl StoredSpec {
    pub fn index_spec(&self) -> IndexSpec {
        IndexSpec {
            model: self.model.clone(),
            dim: self.dim,
        }
    }
}

/// Initialises meta for a new index, or checks an existing one against `spec`; returns what
/// the index was created with, and the format version it is in. A spec stored by an older
/// build (bincode and raw bytes under separate keys) is rewritten as JSON.
pub(crate) fn check_meta(
    path: &Path,
    meta: &Tree,
    spec: &IndexSpec,
    hnsw: HnswParams,
) -> Result<(StoredSpec, u32), IndexError> {
    let store = |e| IndexError::store(path, e);
    let corrupt = |what: String| IndexError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let Some(version) = meta.get(META_FORMAT).map_err(store)? else {
        let stored = StoredSpec {
            model: spec.model.clone(),
            dim: spec.dim,
            hnsw,
            model_source: None,
        };
        meta.insert(META_SPEC, to_json(&stored)).map_err(store)?;
        // The version goes last: an index without it is one whose creation did not finish.
        meta.insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes())
            .map_err(store)?;
        meta.flush().map_err(store)?;
        return Ok((stored, FORMAT_VERSION));
    };
    let found = <[u8; 4]>::try_from(version.as_ref())
        .map(u32::from_be_bytes)
        .map_err(|_| corrupt("meta: format version".into()))?;
    if !(OLDEST_CONVERTIBLE..=FORMAT_VERSION).contains(&found) {
        return Err(IndexError::Incompatible {
            path: path.to_path_buf(),
            found,
            supported: FORMAT_VERSION,
        });
    }
    let stored = match meta.get(META_SPEC).map_err(store)? {
        Some(json) => from_json(&json).map_err(|e| corrupt(format!("meta: spec: {e}")))?,
        None => old_spec(path, meta)?,
    };
    let index = stored.index_spec();
    if index != *spec {
        return Err(IndexError::ModelMismatch {
            path: path.to_path_buf(),
            index,
            requested: spec.clone(),
        });
    }
    if meta.get(OLD_MODEL).map_err(store)?.is_some() {
        rewrite_spec(meta, &stored).map_err(store)?;
    }
    Ok((stored, found))
}

/// Replaces the spec with `stored`: durable when this returns.
pub(crate) fn rewrite_spec(meta: &Tree, stored: &StoredSpec) -> Result<(), sled::Error> {
    let mut batch = sled::Batch::default();
    batch.insert(META_SPEC, to_json(stored));
    for old in [OLD_MODEL, OLD_DIM, OLD_HNSW] {
        batch.remove(old);
    }
    meta.apply_batch(batch)?;
    meta.flush()?;
    Ok(())
}

/// The spec as builds before the JSON one stored it.
fn old_spec(path: &Path, meta: &Tree) -> Result<StoredSpec, IndexError> {
    let get = |key| meta.get(key).map_err(|e| IndexError::store(path, e));
    let corrupt = |what: String| IndexError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let model = get(OLD_MODEL)?.unwrap_or_default();
    let dim = get(OLD_DIM)?.unwrap_or_default();
    let hnsw = get(OLD_HNSW)?.unwrap_or_default();
    Ok(StoredSpec {
        model: String::from_utf8_lossy(&model).into_owned(),
        dim: <[u8; 8]>::try_from(dim.as_ref())
            .map(|b| u64::from_be_bytes(b) as usize)
            .map_err(|_| corrupt("meta: dim".into()))?,
        hnsw: decode(&hnsw).map_err(|e| corrupt(format!("meta: hnsw parameters: {e}")))?,
        model_source: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::encode;

    fn spec() -> IndexSpec {
        IndexSpec {
            model: "m".into(),
            dim: 4,
        }
    }

    #[test]
    fn a_spec_stored_by_an_older_build_is_read_once_and_rewritten_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().temporary(true).open().unwrap();
        let meta = db.open_tree("meta").unwrap();
        let hnsw = HnswParams {
            max_connections: 12,
            ef_construction: 99,
        };
        meta.insert(OLD_MODEL, "m").unwrap();
        meta.insert(OLD_DIM, &4u64.to_be_bytes()).unwrap();
        meta.insert(OLD_HNSW, encode(&hnsw)).unwrap();
        meta.insert(META_FORMAT, &2u32.to_be_bytes()).unwrap();

        let (stored, found) =
            check_meta(dir.path(), &meta, &spec(), HnswParams::default()).unwrap();
        assert_eq!((stored.hnsw, found), (hnsw, 2));
        assert_eq!(meta.get(OLD_MODEL).unwrap(), None);
        assert_eq!(meta.get(OLD_HNSW).unwrap(), None);
        let json = meta.get(META_SPEC).unwrap().unwrap();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"model":"m","dim":4,"hnsw":{"max_connections":12,"ef_construction":99},"model_source":null}"#
        );
        // And from then on it is read from the JSON.
        let (again, _) = check_meta(dir.path(), &meta, &spec(), HnswParams::default()).unwrap();
        assert_eq!(again, stored);
    }

    #[test]
    fn json_fields_unknown_to_this_build_are_ignored() {
        let stored: StoredSpec = from_json(
            br#"{"model":"m","dim":4,"hnsw":{"max_connections":16,"ef_construction":150},"later":1}"#,
        )
        .unwrap();
        assert_eq!(stored.index_spec(), spec());
    }
}
