//! Names of a collection's trees, and the layout of the keys inside them.

use crate::Id;

/// Names of a collection's trees and meta keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Names {
    /// Prefix of the meta keys and segment files.
    pub name: &'static str,
    pub records: &'static str,
    pub vectors: &'static str,
    pub hashes: &'static str,
    pub ids: &'static str,
    /// id → [`ImageMeta`](crate::ImageMeta), bincode; added after format 2 was released, so
    /// an older index simply has it empty.
    pub metadata: &'static str,
}

/// The image collection keeps the tree names of the format's first design.
pub(crate) const IMAGES: Names = Names {
    name: "images",
    records: "files",
    vectors: "vectors",
    hashes: "hashes",
    ids: "ids",
    metadata: "metadata",
};

pub(crate) const TEXTS: Names = Names {
    name: "texts",
    records: "texts",
    vectors: "texts.vectors",
    hashes: "texts.hashes",
    ids: "texts.ids",
    metadata: "texts.metadata",
};

impl Names {
    /// The meta key of `what` for this collection.
    pub fn meta_key(&self, what: &str) -> Vec<u8> {
        format!("{}.{what}", self.name).into_bytes()
    }
}

/// `hashes` keys: the hash's length, the hash, then the id, so one hash can map to several
/// records and a prefix scan finds them all.
pub(crate) fn hash_prefix(hash: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + hash.len() + 8);
    key.extend_from_slice(&(hash.len() as u32).to_be_bytes());
    key.extend_from_slice(hash);
    key
}

pub(crate) fn hash_key(hash: &[u8], id: Id) -> Vec<u8> {
    let mut key = hash_prefix(hash);
    key.extend_from_slice(&id.to_be_bytes());
    key
}
