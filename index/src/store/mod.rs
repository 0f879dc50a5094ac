//! The stored data, the truth every graph is derived from: sled trees per collection
//! (records, vectors, the content-hash multimap, id → key, id → image metadata), the index's
//! meta, and the failures. Every change is one sled transaction, flushed before it is acknowledged.

pub(crate) mod codec;
pub(crate) mod keys;
pub(crate) mod meta;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{Db, Tree};

use codec::{decode, encode, from_json, to_json};
use keys::{hash_key, hash_prefix, Names};

use crate::ids::IdSet;
use crate::types::{Entry, ImageMeta, Record};
use crate::{Id, IndexError};

/// sled's page cache. Its default (1 GiB) lets the cache grow with the store, so an ingest's
/// memory would grow with the library; searches run on the segments, and exact scans (at most
/// `exact_threshold` vectors, 20 MB at 1024-d) stream through, so 64 MiB is plenty.
const STORE_CACHE_BYTES: u64 = 64 << 20;

/// How long opening waits for the store's lock before reporting [`IndexError::Locked`]. sled
/// releases the lock from a background thread a moment after its last handle is dropped, so
/// an index closed by this process can look locked for a few milliseconds; another process
/// holding it still gets the error well within a second.
const LOCK_WAIT: Duration = Duration::from_millis(300);

/// Opens (creating) the sled store of the index in `path`.
pub(crate) fn open_db(path: &Path) -> Result<Db, IndexError> {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let opened = sled::Config::new()
            .path(path.join("store"))
            .cache_capacity(STORE_CACHE_BYTES)
            .open()
            .map_err(|e| IndexError::store(path, e));
        match opened {
            Err(IndexError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            opened => return opened,
        }
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<IndexError>>;

impl From<IndexError> for ConflictableTransactionError<IndexError> {
    fn from(e: IndexError) -> Self {
        ConflictableTransactionError::Abort(e)
    }
}

/// The trees of one collection, and the index's meta tree its counters live in.
pub(crate) struct Store {
    pub names: Names,
    path: PathBuf,
    dim: usize,
    db: Db,
    meta: Tree,
    records: Tree,
    vectors: Tree,
    hashes: Tree,
    ids: Tree,
    metadata: Tree,
}

/// The trees of one collection inside a transaction.
struct Tx<'a> {
    meta: &'a TransactionalTree,
    records: &'a TransactionalTree,
    vectors: &'a TransactionalTree,
    hashes: &'a TransactionalTree,
    ids: &'a TransactionalTree,
    metadata: &'a TransactionalTree,
}

impl Store {
    pub fn open(
        db: &Db,
        meta: &Tree,
        path: &Path,
        dim: usize,
        names: Names,
    ) -> Result<Store, IndexError> {
        let tree = |name: &str| db.open_tree(name).map_err(|e| IndexError::store(path, e));
        Ok(Store {
            names,
            path: path.to_path_buf(),
            dim,
            db: db.clone(),
            meta: meta.clone(),
            records: tree(names.records)?,
            vectors: tree(names.vectors)?,
            hashes: tree(names.hashes)?,
            ids: tree(names.ids)?,
            metadata: tree(names.metadata)?,
        })
    }

    /// Stores a batch in one transaction: each entry gets a fresh id; a key that already
    /// exists is replaced. Returns the new ids (in the order of `entries`) and the replaced
    /// ones. Not yet flushed.
    pub fn upsert(&self, entries: &[Entry]) -> Result<(Vec<Id>, Vec<Id>), IndexError> {
        let vectors: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| e.vector.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        self.transaction(|tx| {
            let mut next = self.meta_u64(tx.meta.get(self.names.meta_key("next_id"))?)?;
            let mut added = Vec::with_capacity(entries.len());
            let mut removed = Vec::new();
            for (entry, bytes) in entries.iter().zip(&vectors) {
                let id = next;
                next += 1;
                let record = Record {
                    id,
                    file: entry.file.clone(),
                };
                if let Some(old) = tx.records.insert(entry.key.as_slice(), encode(&record))? {
                    let old: Record = self.decode(&old, "record")?;
                    unlink(&tx, &old)?;
                    removed.push(old.id);
                }
                tx.vectors.insert(&id.to_be_bytes(), bytes.as_slice())?;
                tx.ids.insert(&id.to_be_bytes(), entry.key.as_slice())?;
                if let Some(file) = &entry.file {
                    tx.hashes.insert(hash_key(&file.hash, id), &[])?;
                }
                if let Some(meta) = &entry.meta {
                    tx.metadata.insert(&id.to_be_bytes(), encode(meta))?;
                }
                added.push(id);
            }
            tx.meta
                .insert(self.names.meta_key("next_id"), &next.to_be_bytes())?;
            self.bump_generation(tx.meta)?;
            Ok((added, removed))
        })
    }

    /// Removes the records of `keys` (missing keys are ignored) in one transaction; returns
    /// the ids removed. Not yet flushed.
    pub fn remove<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Id>, IndexError> {
        self.transaction(|tx| {
            let mut removed = Vec::new();
            for key in keys {
                if let Some(old) = tx.records.remove(key.as_ref())? {
                    let old: Record = self.decode(&old, "record")?;
                    unlink(&tx, &old)?;
                    removed.push(old.id);
                }
            }
            if !removed.is_empty() {
                self.bump_generation(tx.meta)?;
            }
            Ok(removed)
        })
    }

    /// Stores the metadata of live ids, replacing what they had, in one transaction; ids no
    /// longer live are skipped. Returns the ids written. Not yet flushed.
    pub fn set_meta(&self, items: &[(Id, ImageMeta)]) -> Result<Vec<Id>, IndexError> {
        self.transaction(|tx| {
            let mut written = Vec::with_capacity(items.len());
            for (id, meta) in items {
                if tx.ids.get(id.to_be_bytes())?.is_some() {
                    tx.metadata.insert(&id.to_be_bytes(), encode(meta))?;
                    written.push(*id);
                }
            }
            if !written.is_empty() {
                self.bump_generation(tx.meta)?;
            }
            Ok(written)
        })
    }

    /// The metadata stored for `id`.
    pub fn meta_of(&self, id: Id) -> Result<Option<ImageMeta>, IndexError> {
        match self
            .metadata
            .get(id.to_be_bytes())
            .map_err(|e| self.store_err(e))?
        {
            Some(bytes) => Ok(Some(self.decode(&bytes, "image metadata")?)),
            None => Ok(None),
        }
    }

    /// Every stored metadata, by id (only live ids have one).
    pub fn metas(&self) -> impl Iterator<Item = Result<(Id, ImageMeta), IndexError>> + '_ {
        self.metadata.iter().map(move |item| {
            let (key, bytes) = item.map_err(|e| self.store_err(e))?;
            Ok((
                self.decode_id(&key)?,
                self.decode(&bytes, "image metadata")?,
            ))
        })
    }

    /// The record stored under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>, IndexError> {
        match self.records.get(key).map_err(|e| self.store_err(e))? {
            Some(bytes) => Ok(Some(self.decode(&bytes, "record")?)),
            None => Ok(None),
        }
    }

    /// The vector stored under `id`, if its record is live.
    pub fn vector(&self, id: Id) -> Result<Option<Vec<f32>>, IndexError> {
        match self
            .vectors
            .get(id.to_be_bytes())
            .map_err(|e| self.store_err(e))?
        {
            Some(bytes) => Ok(Some(self.decode_vector(&bytes)?)),
            None => Ok(None),
        }
    }

    /// The vector stored under `id` as little-endian f32 bytes, its length checked.
    pub fn vector_bytes(&self, id: Id) -> Result<Option<sled::IVec>, IndexError> {
        let bytes = self
            .vectors
            .get(id.to_be_bytes())
            .map_err(|e| self.store_err(e))?;
        match bytes {
            Some(bytes) if bytes.len() != self.dim * 4 => {
                Err(self.corrupt(format!("vector {id} has {} bytes", bytes.len())))
            }
            bytes => Ok(bytes),
        }
    }

    /// The ids of the records whose key starts with `prefix`.
    pub fn ids_with_prefix(&self, prefix: &[u8]) -> Result<IdSet, IndexError> {
        let mut ids = IdSet::new();
        for item in self.records.scan_prefix(prefix).values() {
            let bytes = item.map_err(|e| self.store_err(e))?;
            ids.insert(self.decode::<Record>(&bytes, "record")?.id);
        }
        Ok(ids)
    }

    /// A live id whose file has content hash `hash`, with its vector.
    pub fn lookup_hash(&self, hash: &[u8]) -> Result<Option<(Id, Vec<f32>)>, IndexError> {
        let prefix = hash_prefix(hash);
        for key in self.hashes.scan_prefix(&prefix).keys() {
            let key = key.map_err(|e| self.store_err(e))?;
            let id = self.decode_id(&key[prefix.len()..])?;
            if let Some(vector) = self.vector(id)? {
                return Ok(Some((id, vector)));
            }
        }
        Ok(None)
    }

    /// The records whose key starts with `prefix` (all of them for an empty one), in key order.
    pub fn iter_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Record), IndexError>> + '_ {
        self.records.scan_prefix(prefix).map(move |item| {
            let (key, bytes) = item.map_err(|e| self.store_err(e))?;
            Ok((key.to_vec(), self.decode(&bytes, "record")?))
        })
    }

    /// Every live id, ascending.
    pub fn live_ids(&self) -> impl Iterator<Item = Result<Id, IndexError>> + '_ {
        self.ids.iter().keys().map(move |key| {
            let key = key.map_err(|e| self.store_err(e))?;
            self.decode_id(&key)
        })
    }

    /// Every live vector as `(id, little-endian f32 bytes)`, by id, its length checked.
    pub fn vectors(&self) -> impl Iterator<Item = Result<(Id, sled::IVec), IndexError>> + '_ {
        self.vectors.iter().map(move |item| {
            let (key, bytes) = item.map_err(|e| self.store_err(e))?;
            let id = self.decode_id(&key)?;
            if bytes.len() != self.dim * 4 {
                return Err(self.corrupt(format!("vector {id} has {} bytes", bytes.len())));
            }
            Ok((id, bytes))
        })
    }

    pub fn key_of(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError> {
        Ok(self
            .ids
            .get(id.to_be_bytes())
            .map_err(|e| self.store_err(e))?
            .map(|key| key.to_vec()))
    }

    /// Data generation: bumped by every committed batch or removal.
    pub fn generation(&self) -> Result<u64, IndexError> {
        self.meta_u64(
            self.meta
                .get(self.names.meta_key("generation"))
                .map_err(|e| self.store_err(e))?,
        )
    }

    /// A JSON value of this collection's meta; `None` when absent.
    pub fn meta_json<T: DeserializeOwned>(
        &self,
        what: &str,
    ) -> Result<Option<Result<T, String>>, IndexError> {
        Ok(self
            .meta_raw(what)?
            .map(|bytes| from_json(&bytes).map_err(|e| e.to_string())))
    }

    /// The raw bytes of a value of this collection's meta.
    pub fn meta_raw(&self, what: &str) -> Result<Option<sled::IVec>, IndexError> {
        self.meta
            .get(self.names.meta_key(what))
            .map_err(|e| self.store_err(e))
    }

    /// A bincode value of this collection's meta (how older builds stored them).
    pub fn meta_bincode<T: DeserializeOwned>(
        &self,
        what: &str,
    ) -> Result<Option<Result<T, String>>, IndexError> {
        Ok(self
            .meta_raw(what)?
            .map(|bytes| decode(&bytes).map_err(|e| e.to_string())))
    }

    /// Stores `value` as JSON under `what`, and removes the keys of `replaces` (where older
    /// builds kept it), atomically. Not yet flushed.
    pub fn set_meta_json<T: serde::Serialize>(
        &self,
        what: &str,
        value: &T,
        replaces: &[&str],
    ) -> Result<(), IndexError> {
        let mut batch = sled::Batch::default();
        batch.insert(self.names.meta_key(what), to_json(value));
        for old in replaces {
            batch.remove(self.names.meta_key(old));
        }
        self.meta.apply_batch(batch).map_err(|e| self.store_err(e))
    }

    pub fn flush(&self) -> Result<(), IndexError> {
        self.db.flush().map_err(|e| self.store_err(e))?;
        Ok(())
    }

    fn bump_generation(&self, meta: &TransactionalTree) -> TxResult<()> {
        let key = self.names.meta_key("generation");
        let generation = self.meta_u64(meta.get(&key)?)?;
        meta.insert(key, &(generation + 1).to_be_bytes())?;
        Ok(())
    }

    /// Runs `f` as one transaction over meta and the collection's trees.
    fn transaction<T>(&self, f: impl Fn(Tx<'_>) -> TxResult<T>) -> Result<T, IndexError> {
        (
            &self.meta,
            &self.records,
            &self.vectors,
            &self.hashes,
            &self.ids,
            &self.metadata,
        )
            .transaction(|(meta, records, vectors, hashes, ids, metadata)| {
                f(Tx {
                    meta,
                    records,
                    vectors,
                    hashes,
                    ids,
                    metadata,
                })
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => self.store_err(e),
            })
    }

    /// A big-endian u64 from meta; absent means 0 (a new collection).
    fn meta_u64(&self, value: Option<sled::IVec>) -> Result<u64, IndexError> {
        match value {
            None => Ok(0),
            Some(bytes) => self.decode_id(&bytes),
        }
    }

    fn decode_id(&self, bytes: &[u8]) -> Result<Id, IndexError> {
        let bytes: [u8; 8] = bytes.try_into().map_err(|_| {
            self.corrupt(format!(
                "{}: an id has {} bytes",
                self.names.name,
                bytes.len()
            ))
        })?;
        Ok(Id::from_be_bytes(bytes))
    }

    fn decode_vector(&self, bytes: &[u8]) -> Result<Vec<f32>, IndexError> {
        if bytes.len() != self.dim * 4 {
            return Err(self.corrupt(format!(
                "{}: a vector has {} bytes, expected {}",
                self.names.vectors,
                bytes.len(),
                self.dim * 4
            )));
        }
        Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T, IndexError> {
        decode(bytes).map_err(|e| self.corrupt(format!("{}: {what}: {e}", self.names.name)))
    }

    pub fn corrupt(&self, what: String) -> IndexError {
        IndexError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }

    fn store_err(&self, e: sled::Error) -> IndexError {
        IndexError::store(&self.path, e)
    }
}

/// Removes an old record's vector, id, hash and metadata entries inside a transaction.
fn unlink(tx: &Tx<'_>, old: &Record) -> TxResult<()> {
    tx.vectors.remove(&old.id.to_be_bytes())?;
    tx.ids.remove(&old.id.to_be_bytes())?;
    tx.metadata.remove(&old.id.to_be_bytes())?;
    if let Some(file) = &old.file {
        tx.hashes.remove(hash_key(&file.hash, old.id))?;
    }
    Ok(())
}
