//! How values are encoded in the store.
//!
//! Records and failures, many and small, are bincode (compact, and their layout is part of
//! the format version). Persisted parameters (the index's spec, a collection's list of
//! segments) are JSON, whose fields are named: a field added later reads as its
//! `#[serde(default)]` from an older index, so growing them needs no format bump. Indexes
//! written before that stored those parameters in bincode under other keys; they are read
//! once, written again as JSON, and the old keys removed (see [`super::meta`]).

use serde::{de::DeserializeOwned, Serialize};

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain structs into a Vec cannot fail: bincode errs only on writer failure
    // or serde features our types do not use.
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("bincode encodes plain structs into a Vec")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(v, _)| v)
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Our parameter structs have string keys and plain fields: serde_json cannot fail on them.
    serde_json::to_vec(value).expect("serde_json encodes plain structs")
}

pub(crate) fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Decodes one bincode value from the front of `bytes`, and moves past it.
pub(crate) fn decode_prefix<T: DeserializeOwned>(
    bytes: &mut &[u8],
) -> Result<T, bincode::error::DecodeError> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())?;
    *bytes = &bytes[used..];
    Ok(value)
}
