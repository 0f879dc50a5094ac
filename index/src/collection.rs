//! One collection of vectors (the images, or the texts), as a writer holds it: its stored
//! data ([`crate::store`]), the set of live ids, the filterable metadata of each
//! ([`MetaTable`]), and the graphs derived from them ([`crate::graphs`]).

use std::path::Path;
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard};

use sled::{Db, Tree};

use crate::exact::{score_chunk, Scored, TopK, CHUNK};
use crate::filter::Admit;
use crate::graphs::{GraphConfig, Graphs};
use crate::ids::IdSet;
use crate::kernels::dot_le;
use crate::meta_table::MetaTable;
use crate::pairs;
use crate::search::{self, check_vector, Searchable};
use crate::store::keys::Names;
use crate::store::Store;
use crate::sync::{lock, read, write};
use crate::types::{
    CollectionStats, Entry, GraphStatus, Hit, HnswParams, IdFilter, ImageMeta, IndexOptions, Pair,
    Record,
};
use crate::view::CollectionHeader;
use crate::{Id, IndexError};

/// Everything a collection needs from its index at open time.
pub(crate) struct Context<'a> {
    pub db: &'a Db,
    pub meta: &'a Tree,
    pub path: &'a Path,
    pub dim: usize,
    pub options: IndexOptions,
    pub params: HnswParams,
    /// The index is in format 1, being converted: adopt its search view as a segment.
    pub converting: bool,
}

/// A set of keyed vectors with exact and HNSW search. Get one from
/// [`Index::images`](crate::Index::images) or [`Index::texts`](crate::Index::texts).
///
/// All methods take `&self`: writes are serialised internally, searches run alongside them.
pub struct Collection {
    dim: usize,
    options: IndexOptions,
    store: Store,
    live: RwLock<IdSet>,
    /// Always changed after `live` and in the same write, so a search that reads `live` then
    /// the table sees one moment.
    table: RwLock<MetaTable>,
    graphs: Graphs,
    writer: Mutex<()>,
}

impl Collection {
    /// Opens the collection's trees, maps its segments, and repairs what they lack. Also
    /// returns whether the segment list changed (files it no longer names can go).
    pub(crate) fn open(
        ctx: Context<'_>,
        names: Names,
    ) -> Result<(Collection, GraphStatus, bool), IndexError> {
        let store = Store::open(ctx.db, ctx.meta, ctx.path, ctx.dim, names)?;
        let mut live = IdSet::default();
        for id in store.live_ids() {
            live.insert(id?);
        }
        let live = RwLock::new(live);
        let mut table = MetaTable::default();
        for item in store.metas() {
            let (id, meta) = item?;
            table.insert(id, &meta);
        }
        let config = GraphConfig {
            name: names.name,
            dir: ctx.path.join("graph"),
            dim: ctx.dim,
            params: ctx.params,
            options: ctx.options,
        };
        let (graphs, status, changed) = Graphs::open(config, &store, &live, ctx.converting)?;
        let collection = Collection {
            dim: ctx.dim,
            options: ctx.options,
            store,
            live,
            table: RwLock::new(table),
            graphs,
            writer: Mutex::new(()),
        };
        Ok((collection, status, changed))
    }

    /// Stores a batch atomically: records, vectors, ids, hashes and metadata land in one sled
    /// transaction, then the store is flushed to disk, then the tail learns the new vectors
    /// (and is sealed if it is full). A key that already exists is replaced (its old vector
    /// becomes a tombstone). Returns the new ids, in the order of `entries`.
    pub fn upsert_batch(&self, entries: Vec<Entry>) -> Result<Vec<Id>, IndexError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        for entry in &entries {
            check_vector(
                self.dim,
                &String::from_utf8_lossy(&entry.key),
                &entry.vector,
            )?;
        }
        let _writer = lock(&self.writer);
        let (added, removed) = self.store.upsert(&entries)?;
        self.store.flush()?;
        {
            let mut live = write(&self.live);
            let mut table = write(&self.table);
            for (&id, entry) in added.iter().zip(&entries) {
                live.insert(id);
                if let Some(meta) = &entry.meta {
                    table.insert(id, meta);
                }
            }
            for &id in &removed {
                live.remove(id);
                table.remove(id);
            }
        }
        // A key repeated within the batch replaced its own earlier id: that one never
        // needs a graph point.
        let points: Vec<(Id, Vec<f32>)> = added
            .iter()
            .zip(entries)
            .filter(|(id, _)| !removed.contains(id))
            .map(|(&id, entry)| (id, entry.vector))
            .collect();
        if self.graphs.insert(&points) {
            self.graphs.seal_tail(&self.store)?;
        }
        Ok(added)
    }

    /// Removes the records of `keys` (missing keys are ignored) in one transaction, then
    /// flushes. Returns how many records were removed.
    pub fn remove<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<usize, IndexError> {
        let _writer = lock(&self.writer);
        let removed = self.store.remove(keys)?;
        if !removed.is_empty() {
            self.store.flush()?;
            let mut live = write(&self.live);
            let mut table = write(&self.table);
            for &id in &removed {
                live.remove(id);
                table.remove(id);
            }
        }
        Ok(removed.len())
    }

    /// Stores the metadata of records already stored (an index built before metadata was
    /// captured gains it without new vectors), replacing what they had, in one transaction,
    /// then flushes. Ids no longer live are skipped. Returns how many were written.
    pub fn set_meta(&self, items: Vec<(Id, ImageMeta)>) -> Result<usize, IndexError> {
        let _writer = lock(&self.writer);
        let written = self.store.set_meta(&items)?;
        if !written.is_empty() {
            self.store.flush()?;
            let mut table = write(&self.table);
            for (id, meta) in &items {
                if written.contains(id) {
                    table.insert(*id, meta);
                }
            }
        }
        Ok(written.len())
    }

    /// The metadata stored for the live record `id`; `None` when it has none (stored before
    /// metadata was captured) or is not live.
    pub fn meta_of(&self, id: Id) -> Result<Option<ImageMeta>, IndexError> {
        self.store.meta_of(id)
    }

    /// The filterable metadata of every live record, as of now; hold the guard briefly (a
    /// write waits for it).
    pub fn meta_table(&self) -> RwLockReadGuard<'_, MetaTable> {
        read(&self.table)
    }

    /// The record stored under `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Record>, IndexError> {
        self.store.get(key)
    }

    /// The key of the live record with id `id`.
    pub fn key(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError> {
        self.store.key_of(id)
    }

    /// The vector stored under `id`, if its record is live.
    pub fn vector(&self, id: Id) -> Result<Option<Vec<f32>>, IndexError> {
        self.store.vector(id)
    }

    /// A live record whose file has content hash `hash`, with its vector: a renamed or
    /// duplicated file can reuse it instead of being embedded again.
    pub fn lookup_hash(&self, hash: &[u8]) -> Result<Option<(Id, Vec<f32>)>, IndexError> {
        self.store.lookup_hash(hash)
    }

    /// All records, in key order. Use it to find files that left the disk.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Record), IndexError>> + '_ {
        self.store.iter_prefix(&[])
    }

    /// The records whose key starts with `prefix`, in key order: those of one folder, when
    /// keys are paths, without reading the others.
    pub fn iter_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(Vec<u8>, Record), IndexError>> + '_ {
        self.store.iter_prefix(prefix)
    }

    /// Live records.
    pub fn len(&self) -> usize {
        read(&self.live).len()
    }

    /// Whether the collection holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` records most similar to `query` (by dot product), best first; ties rank by id.
    ///
    /// Collections of at most [`IndexOptions::exact_threshold`] records are searched exactly,
    /// larger ones through their HNSW graphs (approximate). With a `filter`, only records
    /// whose id it holds answer (fewer than `k` when fewer pass): it is checked as the graphs
    /// are walked, and a graph that few records of the filter are in is scanned instead
    /// ([`IndexOptions::filter_scan_factor`]).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&IdSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        search::search(self, self.options.into(), query, k, filter)
    }

    /// The exact `k` best records for `query` (whose id `filter` holds): a scan of the stored
    /// vectors, scored in parallel. Ranking: higher dot product first, then lower id.
    pub fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&IdSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        search::exact_search(self, query, k, filter)
    }

    /// The `k` records most similar to the stored record `id`, best first, itself left out
    /// (records with an equal vector, copies of one file, are kept). Empty when `id` is not
    /// live. Searched as [`Collection::search`] searches.
    pub fn neighbours(&self, id: Id, k: usize) -> Result<Vec<Hit>, IndexError> {
        pairs::neighbours(self, self.options.into(), id, k)
    }

    /// Every pair of live records, among those `accept` accepts, whose vectors' dot product
    /// is at least `min_score`: each once, as `a < b`, sorted.
    ///
    /// Never scores all pairs of a large collection: each record asks the graphs for its 16
    /// nearest neighbours (a near-duplicate group of any size still links up through its
    /// members' neighbours), so, as with searches, a pair can be missed. When the accepted
    /// records are at most [`IndexOptions::exact_threshold`], every pair among them is scored
    /// exactly.
    pub fn similar_pairs(
        &self,
        min_score: f32,
        accept: Option<IdFilter<'_>>,
    ) -> Result<Vec<Pair>, IndexError> {
        pairs::similar_pairs(self, self.options.exact_threshold, min_score, accept)
    }

    /// The ids of the live records whose key starts with `prefix`, for a search's filter (a
    /// range of the store's sorted keys).
    pub fn ids_with_prefix(&self, prefix: &[u8]) -> Result<IdSet, IndexError> {
        self.store.ids_with_prefix(prefix)
    }

    /// The ids of the live records `accept` accepts, for a search's filter: one pass over the
    /// records, once per search, never per candidate.
    pub fn ids_where(
        &self,
        mut accept: impl FnMut(&[u8], &Record) -> bool,
    ) -> Result<IdSet, IndexError> {
        let mut ids = IdSet::new();
        for item in self.store.iter_prefix(&[]) {
            let (key, record) = item?;
            if accept(&key, &record) {
                ids.insert(record.id);
            }
        }
        Ok(ids)
    }

    /// Counts for `xsearch status`.
    pub fn stats(&self) -> Result<CollectionStats, IndexError> {
        let live = self.len();
        let graph_points = self.graphs.points();
        Ok(CollectionStats {
            live,
            graph_points,
            tombstones: graph_points.saturating_sub(live),
            generation: self.store.generation()?,
            segments: self.graphs.segment_count(),
            unsealed: self.graphs.unsealed(),
        })
    }

    /// Holds off every other write to this collection while the guard lives (a checkpoint
    /// publishes the records and segments of one moment).
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, ()> {
        lock(&self.writer)
    }

    /// Seals the tail, then rebuilds what the merge policy asks for (segments full of
    /// tombstones, runs of small segments). The caller holds [`Collection::lock_writer`].
    /// Files no longer listed are deleted by the index once it has published a view.
    pub(crate) fn seal_and_merge(&self) -> Result<(), IndexError> {
        self.graphs.seal_tail(&self.store)?;
        self.graphs.merge(&self.store, &self.live)
    }

    /// Deletes the graph files this collection wrote that its list no longer names.
    pub(crate) fn remove_unreferenced_files(&self) -> Result<(), IndexError> {
        self.graphs.remove_unreferenced_files(&self.store)
    }

    /// Every stored metadata, by id, for the read view.
    pub(crate) fn metas(&self) -> impl Iterator<Item = Result<(Id, ImageMeta), IndexError>> + '_ {
        self.store.metas()
    }

    /// What the read view says of this collection.
    pub(crate) fn view_header(&self) -> Result<CollectionHeader, IndexError> {
        Ok(CollectionHeader {
            segments: self.graphs.list().segments,
            records: self.len(),
            data_generation: self.store.generation()?,
        })
    }
}

impl Searchable for Collection {
    fn dim(&self) -> usize {
        self.dim
    }

    fn live_count(&self) -> usize {
        self.len()
    }

    fn admitted_count(&self, filter: &IdSet) -> usize {
        read(&self.live).intersection_len(filter)
    }

    fn graph_candidates(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&IdSet>,
        scan_below: usize,
    ) -> Vec<Scored> {
        let live = read(&self.live);
        let admit = Admit::new(&live, filter, scan_below);
        self.graphs
            .search(query, k, ef, &admit)
            .into_iter()
            .map(|(id, score)| Scored { id, score })
            .collect()
    }

    fn key_of(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError> {
        self.store.key_of(id)
    }

    fn live_ids(&self) -> Vec<Id> {
        read(&self.live).iter().collect()
    }

    fn vector_of(&self, id: Id) -> Result<Option<Vec<f32>>, IndexError> {
        self.store.vector(id)
    }

    /// A scan of the store's vectors, in chunks scored in parallel; with a filter, only the
    /// vectors of its live ids are read.
    fn exact_top(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&IdSet>,
    ) -> Result<Vec<Scored>, IndexError> {
        let mut top = TopK::new(k);
        let mut chunk = Vec::with_capacity(CHUNK);
        let score = |bytes: &sled::IVec| dot_le(query, bytes);
        let mut offer = |id, bytes| {
            chunk.push((id, bytes));
            if chunk.len() == CHUNK {
                score_chunk(&chunk, score, &mut top);
                chunk.clear();
            }
        };
        match filter {
            None => {
                for item in self.store.vectors() {
                    let (id, bytes) = item?;
                    offer(id, bytes);
                }
            }
            Some(filter) => {
                let admitted: Vec<Id> = {
                    let live = read(&self.live);
                    filter.iter().filter(|&id| live.contains(id)).collect()
                };
                for id in admitted {
                    if let Some(bytes) = self.store.vector_bytes(id)? {
                        offer(id, bytes);
                    }
                }
            }
        }
        score_chunk(&chunk, score, &mut top);
        Ok(top.into_sorted())
    }
}
