//! One collection of vectors (the images, or the texts): sled holds the records and vectors,
//! an HNSW graph is derived from them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Db, Tree};

use crate::exact::{score_chunk, Scored, TopK, CHUNK};
use crate::graph::{Graph, HnswParams, SnapshotInfo};
use crate::view::{self, View, ViewInfo};
use crate::{Id, IndexError, IndexOptions};

/// What identifies a file's content, so unchanged files are skipped and duplicates reuse a vector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Content hash; any algorithm, as long as the caller always uses the same one.
    pub hash: Vec<u8>,
}

/// The stored record of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The id of the record's vector; a new one on every upsert, never reused.
    pub id: Id,
    /// Present for files, absent for texts.
    pub file: Option<FileStamp>,
}

/// One key and its vector, for [`Collection::upsert_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Path bytes for images, UTF-8 text for texts.
    pub key: Vec<u8>,
    /// The file's stamp; its hash becomes findable through [`Collection::lookup_hash`].
    pub file: Option<FileStamp>,
    /// The embedding, L2-normalised by the caller (scores are dot products).
    pub vector: Vec<f32>,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The key of the record (path bytes or text).
    pub key: Vec<u8>,
    /// The record's id.
    pub id: Id,
    /// Dot product with the query.
    pub score: f32,
}

/// A predicate on keys; search returns only records it accepts.
pub type KeyFilter<'a> = &'a (dyn Fn(&[u8]) -> bool + Sync);

/// How the graph of a collection came to be at open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphStatus {
    /// The collection is empty; there is nothing to load.
    Empty,
    /// The snapshot matched the data and was loaded as is.
    Loaded,
    /// The snapshot was older than the data: it was loaded, the records added since were
    /// inserted, and a new snapshot was written.
    Updated {
        /// The data generation the old snapshot covered.
        snapshot_generation: u64,
        /// The data generation now.
        generation: u64,
        /// Vectors inserted to catch up.
        inserted: usize,
    },
    /// The graph was rebuilt from the store, and a new snapshot written.
    Rebuilt {
        /// Why the snapshot could not be used.
        reason: String,
        /// Vectors inserted.
        inserted: usize,
    },
}

impl GraphStatus {
    /// Whether opening had to repair the graph (worth telling the user on stderr).
    pub fn is_repair(&self) -> bool {
        matches!(
            self,
            GraphStatus::Updated { .. } | GraphStatus::Rebuilt { .. }
        )
    }
}

impl fmt::Display for GraphStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphStatus::Empty => write!(f, "empty"),
            GraphStatus::Loaded => write!(f, "graph loaded from its snapshot"),
            GraphStatus::Updated {
                snapshot_generation,
                generation,
                inserted,
            } => write!(
                f,
                "graph snapshot was stale (generation {snapshot_generation}, data at {generation}): \
                 caught up by inserting {inserted} vectors"
            ),
            GraphStatus::Rebuilt { reason, inserted } => {
                write!(f, "graph rebuilt from the store ({inserted} vectors): {reason}")
            }
        }
    }
}

/// Counts describing a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionStats {
    /// Live records.
    pub live: usize,
    /// Points in the graph, tombstones included.
    pub graph_points: usize,
    /// Graph points whose record was removed or replaced.
    pub tombstones: usize,
    /// Data generation: bumped by every committed batch or removal.
    pub generation: u64,
    /// The generation the on-disk snapshot covers, if there is one.
    pub snapshot_generation: Option<u64>,
    /// Whether searches run on the search view mapped at open (until the first write swaps
    /// hnsw_rs's graph in).
    pub searching_view: bool,
}

/// The ids that have a live record: a bitset, since ids are dense counters.
#[derive(Default)]
struct LiveSet {
    bits: Vec<u64>,
    count: usize,
}

impl LiveSet {
    fn contains(&self, id: Id) -> bool {
        let (word, bit) = ((id / 64) as usize, id % 64);
        self.bits.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    fn insert(&mut self, id: Id) {
        let (word, bit) = ((id / 64) as usize, id % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) == 0 {
            self.bits[word] |= 1 << bit;
            self.count += 1;
        }
    }

    fn remove(&mut self, id: Id) {
        let (word, bit) = ((id / 64) as usize, id % 64);
        if let Some(w) = self.bits.get_mut(word) {
            if *w & (1 << bit) != 0 {
                *w &= !(1 << bit);
                self.count -= 1;
            }
        }
    }
}

/// Names of a collection's trees and meta keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Names {
    /// Prefix of the meta keys and snapshot files.
    pub name: &'static str,
    pub records: &'static str,
    pub vectors: &'static str,
    pub hashes: &'static str,
    pub ids: &'static str,
}

/// The image collection keeps the tree names of the format's first design.
pub(crate) const IMAGES: Names = Names {
    name: "images",
    records: "files",
    vectors: "vectors",
    hashes: "hashes",
    ids: "ids",
};

pub(crate) const TEXTS: Names = Names {
    name: "texts",
    records: "texts",
    vectors: "texts.vectors",
    hashes: "texts.hashes",
    ids: "texts.ids",
};

/// Everything a collection needs from its index at open time.
pub(crate) struct Context<'a> {
    pub db: &'a Db,
    pub meta: &'a Tree,
    pub path: &'a Path,
    pub graph_dir: PathBuf,
    pub dim: usize,
    pub options: IndexOptions,
    pub params: HnswParams,
}

/// A set of keyed vectors with exact and HNSW search. Get one from
/// [`Index::images`](crate::Index::images) or [`Index::texts`](crate::Index::texts).
///
/// All methods take `&self`: writes are serialised internally, searches run alongside them.
pub struct Collection {
    names: Names,
    path: PathBuf,
    graph_dir: PathBuf,
    dim: usize,
    options: IndexOptions,
    params: HnswParams,
    db: Db,
    meta: Tree,
    records: Tree,
    vectors: Tree,
    hashes: Tree,
    ids: Tree,
    live: RwLock<LiveSet>,
    graph: RwLock<Searcher>,
    writer: Mutex<()>,
}

/// What searches run on.
enum Searcher {
    /// hnsw_rs's graph, which inserts need.
    Graph(Graph),
    /// The flat view read from its snapshot file: opening costs a few large reads. Writers
    /// swap in hnsw_rs's graph first ([`Collection::ensure_graph`]).
    View(View),
}

impl Searcher {
    fn len(&self) -> usize {
        match self {
            Searcher::Graph(g) => g.len(),
            Searcher::View(v) => v.len(),
        }
    }

    fn search(&self, query: &[f32], knbn: usize, ef: usize) -> Vec<(Id, f32)> {
        match self {
            Searcher::Graph(g) => g.search(query, knbn, ef),
            Searcher::View(v) => v.search(query, knbn, ef),
        }
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<IndexError>>;

impl Collection {
    /// Opens the collection's trees and brings its graph up to date with the store.
    pub(crate) fn open(
        ctx: Context<'_>,
        names: Names,
    ) -> Result<(Collection, GraphStatus), IndexError> {
        let tree = |name: &str| {
            ctx.db
                .open_tree(name)
                .map_err(|e| IndexError::store(ctx.path, e))
        };
        let collection = Collection {
            names,
            path: ctx.path.to_path_buf(),
            graph_dir: ctx.graph_dir,
            dim: ctx.dim,
            options: ctx.options,
            params: ctx.params,
            db: ctx.db.clone(),
            meta: ctx.meta.clone(),
            records: tree(names.records)?,
            vectors: tree(names.vectors)?,
            hashes: tree(names.hashes)?,
            ids: tree(names.ids)?,
            live: RwLock::new(LiveSet::default()),
            graph: RwLock::new(Searcher::Graph(Graph::new(ctx.params, 0))),
            writer: Mutex::new(()),
        };
        {
            let mut live = write(&collection.live);
            for key in collection.ids.iter().keys() {
                let key = key.map_err(|e| collection.store_err(e))?;
                live.insert(collection.decode_id(&key)?);
            }
        }
        let generation = collection.generation()?;
        let current_view = collection
            .view_info()?
            .filter(|info| info.generation == generation);
        if let Some(info) = &current_view {
            let path = collection.graph_dir.join(&info.file);
            if let Ok(view) = View::load(&path, info.checksum, collection.dim) {
                *write(&collection.graph) = Searcher::View(view);
                return Ok((collection, GraphStatus::Loaded));
            }
        }
        let status = collection.init_graph()?;
        // A view for the current data that did not read back is rewritten with the graph.
        if status.is_repair() || current_view.is_some() {
            collection.checkpoint(true)?;
        }
        Ok((collection, status))
    }

    /// Swaps hnsw_rs's graph in for the view, loading (or repairing) it as at open. Writers
    /// call it, holding the writer lock, before they change the store.
    fn ensure_graph(&self) -> Result<(), IndexError> {
        if matches!(*read(&self.graph), Searcher::View(_)) {
            self.init_graph()?;
        }
        Ok(())
    }

    /// Runs `f` on hnsw_rs's graph (see [`Collection::ensure_graph`]).
    fn with_graph<R>(&self, f: impl FnOnce(&Graph) -> R) -> Result<R, IndexError> {
        self.ensure_graph()?;
        match &*read(&self.graph) {
            Searcher::Graph(graph) => Ok(f(graph)),
            Searcher::View(_) => unreachable!("ensure_graph replaced the view"),
        }
    }

    /// Loads the snapshot if it matches the data, catches a stale one up, rebuilds otherwise.
    fn init_graph(&self) -> Result<GraphStatus, IndexError> {
        let generation = self.generation()?;
        let live = read(&self.live).count;
        let rebuilt = |reason: String| -> Result<GraphStatus, IndexError> {
            let graph = Graph::new(self.params, live);
            let inserted = self.insert_stored(&graph, 0)?;
            *write(&self.graph) = Searcher::Graph(graph);
            Ok(GraphStatus::Rebuilt { reason, inserted })
        };
        match self.snapshot_info()? {
            None if live == 0 => Ok(GraphStatus::Empty),
            None => rebuilt("no snapshot".into()),
            Some(info) if info.generation > generation => rebuilt(format!(
                "the snapshot covers generation {}, newer than the data's {generation}",
                info.generation
            )),
            Some(info) => match Graph::load(&self.graph_dir, &info) {
                Ok(graph) if info.generation == generation => {
                    *write(&self.graph) = Searcher::Graph(graph);
                    Ok(GraphStatus::Loaded)
                }
                Ok(graph) => {
                    // Ids are never reused and a vector never changes under its id, so the
                    // stale graph is right for every id it holds: only newer ids are missing.
                    let inserted = self.insert_stored(&graph, info.next_id)?;
                    *write(&self.graph) = Searcher::Graph(graph);
                    Ok(GraphStatus::Updated {
                        snapshot_generation: info.generation,
                        generation,
                        inserted,
                    })
                }
                Err(reason) => rebuilt(format!("unusable snapshot: {reason}")),
            },
        }
    }

    /// Inserts every stored vector with an id of at least `from` into `graph`.
    fn insert_stored(&self, graph: &Graph, from: Id) -> Result<usize, IndexError> {
        let mut batch = Vec::with_capacity(CHUNK);
        let mut inserted = 0;
        for item in self.vectors.range(from.to_be_bytes()..) {
            let (key, bytes) = item.map_err(|e| self.store_err(e))?;
            batch.push((self.decode_id(&key)?, self.decode_vector(&bytes)?));
            if batch.len() == CHUNK {
                graph.insert(&batch);
                inserted += batch.len();
                batch.clear();
            }
        }
        graph.insert(&batch);
        Ok(inserted + batch.len())
    }

    /// Stores a batch atomically: records, vectors, ids and hashes land in one sled
    /// transaction, then the store is flushed to disk, then the graph learns the new vectors.
    /// A key that already exists is replaced (its old vector becomes a tombstone).
    /// Returns the new ids, in the order of `entries`.
    pub fn upsert_batch(&self, entries: Vec<Entry>) -> Result<Vec<Id>, IndexError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        for entry in &entries {
            self.check_vector(&String::from_utf8_lossy(&entry.key), &entry.vector)?;
        }
        let vectors: Vec<Vec<u8>> = entries
            .iter()
            .map(|e| e.vector.iter().flat_map(|x| x.to_le_bytes()).collect())
            .collect();
        let _writer = lock(&self.writer);
        // Before the transaction: loading a stale snapshot catches up on stored ids.
        self.ensure_graph()?;
        let (added, removed) = self.transaction(|meta, records, vector_tree, hashes, ids| {
            let mut next = self.meta_u64(meta.get(self.meta_key("next_id"))?)?;
            let mut added = Vec::with_capacity(entries.len());
            let mut removed = Vec::new();
            for (entry, bytes) in entries.iter().zip(&vectors) {
                let id = next;
                next += 1;
                let record = Record {
                    id,
                    file: entry.file.clone(),
                };
                if let Some(old) = records.insert(entry.key.as_slice(), encode(&record))? {
                    let old: Record = self.decode(&old, "record")?;
                    self.unlink(vector_tree, hashes, ids, &old)?;
                    removed.push(old.id);
                }
                vector_tree.insert(&id.to_be_bytes(), bytes.as_slice())?;
                ids.insert(&id.to_be_bytes(), entry.key.as_slice())?;
                if let Some(file) = &entry.file {
                    hashes.insert(hash_key(&file.hash, id), &[])?;
                }
                added.push(id);
            }
            meta.insert(self.meta_key("next_id"), &next.to_be_bytes())?;
            self.bump_generation(meta)?;
            Ok((added, removed))
        })?;
        self.flush()?;
        {
            let mut live = write(&self.live);
            added.iter().for_each(|&id| live.insert(id));
            removed.iter().for_each(|&id| live.remove(id));
        }
        // A key repeated within the batch replaced its own earlier id: that one never
        // needs a graph point.
        let points: Vec<(Id, Vec<f32>)> = added
            .iter()
            .zip(entries)
            .filter(|(id, _)| !removed.contains(id))
            .map(|(&id, entry)| (id, entry.vector))
            .collect();
        self.with_graph(|graph| graph.insert(&points))?;
        Ok(added)
    }

    /// Removes the records of `keys` (missing keys are ignored) in one transaction, then
    /// flushes. Returns how many records were removed.
    pub fn remove<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<usize, IndexError> {
        let _writer = lock(&self.writer);
        let removed = self.transaction(|meta, records, vectors, hashes, ids| {
            let mut removed = Vec::new();
            for key in keys {
                if let Some(old) = records.remove(key.as_ref())? {
                    let old: Record = self.decode(&old, "record")?;
                    self.unlink(vectors, hashes, ids, &old)?;
                    removed.push(old.id);
                }
            }
            if !removed.is_empty() {
                self.bump_generation(meta)?;
            }
            Ok(removed)
        })?;
        if !removed.is_empty() {
            self.flush()?;
            let mut live = write(&self.live);
            removed.iter().for_each(|&id| live.remove(id));
        }
        Ok(removed.len())
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

    /// A live record whose file has content hash `hash`, with its vector: a renamed or
    /// duplicated file can reuse it instead of being embedded again.
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

    /// All records, in key order. Use it to find files that left the disk.
    pub fn iter(&self) -> impl Iterator<Item = Result<(Vec<u8>, Record), IndexError>> + '_ {
        self.records.iter().map(move |item| {
            let (key, bytes) = item.map_err(|e| self.store_err(e))?;
            Ok((key.to_vec(), self.decode(&bytes, "record")?))
        })
    }

    /// Live records.
    pub fn len(&self) -> usize {
        read(&self.live).count
    }

    /// Whether the collection holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `k` records most similar to `query` (by dot product), best first; ties rank by id.
    ///
    /// Collections of at most [`IndexOptions::exact_threshold`] records are searched exactly,
    /// larger ones through the HNSW graph (approximate). With a `filter`, only accepted keys
    /// are returned; when the graph cannot find `k` of them the search falls back to exact.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<KeyFilter<'_>>,
    ) -> Result<Vec<Hit>, IndexError> {
        self.check_vector("query", query)?;
        if k == 0 {
            return Ok(Vec::new());
        }
        if self.len() <= self.options.exact_threshold {
            return self.exact_search(query, k, filter);
        }
        // Tombstones and the filter drop candidates, so ask the graph for spares then.
        let mut fetch = {
            let graph_points = read(&self.graph).len();
            if filter.is_none() && graph_points == self.len() {
                k
            } else {
                2 * k + 16
            }
        };
        loop {
            let graph_points = read(&self.graph).len();
            if fetch >= graph_points {
                return self.exact_search(query, k, filter);
            }
            let mut found: Vec<Scored> = {
                let live = read(&self.live);
                read(&self.graph)
                    .search(query, fetch, self.options.ef_search)
                    .into_iter()
                    .filter(|&(id, _)| live.contains(id))
                    .map(|(id, score)| Scored { id, score })
                    .collect()
            };
            found.sort();
            // Keys cost a store lookup each: fetch them only until `k` hits are accepted.
            let mut hits = Vec::with_capacity(k);
            for Scored { id, score } in found {
                let Some(key) = self.key_of(id)? else {
                    continue;
                };
                if filter.is_none_or(|accept| accept(&key)) {
                    hits.push(Hit { key, id, score });
                    if hits.len() == k {
                        return Ok(hits);
                    }
                }
            }
            fetch *= 4;
        }
    }

    /// The exact `k` best records for `query`: a scan of every stored vector, scored in
    /// parallel. Ranking: higher dot product first, then lower id.
    pub fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<KeyFilter<'_>>,
    ) -> Result<Vec<Hit>, IndexError> {
        self.check_vector("query", query)?;
        let mut top = TopK::new(k);
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut chunk = Vec::with_capacity(CHUNK);
        for item in self.vectors.iter() {
            let (key, bytes) = item.map_err(|e| self.store_err(e))?;
            let id = self.decode_id(&key)?;
            if bytes.len() != self.dim * 4 {
                return Err(self.corrupt(format!("vector {id} has {} bytes", bytes.len())));
            }
            if let Some(accept) = filter {
                if !self.key_of(id)?.is_some_and(|key| accept(&key)) {
                    continue;
                }
            }
            chunk.push((id, bytes));
            if chunk.len() == CHUNK {
                score_chunk(query, &chunk, &mut top);
                chunk.clear();
            }
        }
        score_chunk(query, &chunk, &mut top);
        let mut hits = Vec::with_capacity(k);
        for Scored { id, score } in top.into_sorted() {
            if let Some(key) = self.key_of(id)? {
                hits.push(Hit { key, id, score });
            }
        }
        Ok(hits)
    }

    /// Counts for `xsearch status`.
    pub fn stats(&self) -> Result<CollectionStats, IndexError> {
        let live = self.len();
        let graph_points = read(&self.graph).len();
        Ok(CollectionStats {
            live,
            graph_points,
            tombstones: graph_points.saturating_sub(live),
            generation: self.generation()?,
            snapshot_generation: self.snapshot_info()?.map(|s| s.generation),
            searching_view: matches!(*read(&self.graph), Searcher::View(_)),
        })
    }

    /// Rebuilds the graph if tombstones exceed [`IndexOptions::compact_fraction`], then
    /// writes a snapshot if the one on disk does not cover the current data, or if `force`
    /// (the one on disk was found unusable).
    pub(crate) fn checkpoint(&self, force: bool) -> Result<(), IndexError> {
        let _writer = lock(&self.writer);
        let compacted = self.compact_if_needed()?;
        let generation = self.generation()?;
        let old = self.snapshot_info()?;
        let old_view = self.view_info()?;
        let covered = |g: Option<u64>| g == Some(generation);
        if !force
            && !compacted
            && covered(old.as_ref().map(|o| o.generation))
            && covered(old_view.as_ref().map(|v| v.generation))
        {
            return Ok(());
        }
        let snapshot_key = self.meta_key("snapshot");
        let view_key = self.meta_key("view");
        self.with_graph(|graph| -> Result<(), IndexError> {
            if graph.len() == 0 {
                for key in [&snapshot_key, &view_key] {
                    self.meta.remove(key).map_err(|e| self.store_err(e))?;
                }
                return Ok(());
            }
            std::fs::create_dir_all(&self.graph_dir)
                .map_err(|e| IndexError::io(&self.graph_dir, e))?;
            let seq = old.as_ref().map_or(0, |o| o.seq + 1);
            let basename = format!("{}-{seq}", self.names.name);
            let mut info = graph.dump(&self.graph_dir, seq, &basename)?;
            info.generation = generation;
            info.next_id = self.meta_u64(
                self.meta
                    .get(self.meta_key("next_id"))
                    .map_err(|e| self.store_err(e))?,
            )?;
            // Named after the snapshot's basename, which hnsw_rs made unique.
            let file = format!("{}.view", info.basename);
            let checksum =
                view::write(graph, self.dim, &self.graph_dir.join(&file))?.unwrap_or((0, 0));
            let view = ViewInfo {
                file,
                generation,
                checksum,
            };
            self.meta
                .insert(&snapshot_key, encode(&info))
                .map_err(|e| self.store_err(e))?;
            self.meta
                .insert(&view_key, encode(&view))
                .map_err(|e| self.store_err(e))?;
            Ok(())
        })??;
        self.flush()?;
        // Only now that meta points elsewhere may the old files go.
        self.remove_unreferenced_files()
    }

    /// Deletes this collection's graph files that meta no longer names: the snapshot and
    /// view just replaced, and any left half-written by a run killed while writing them
    /// (all are named `<collection>-<seq>...` by `checkpoint`).
    fn remove_unreferenced_files(&self) -> Result<(), IndexError> {
        let mut keep: Vec<PathBuf> = Vec::new();
        if let Some(info) = self.snapshot_info()? {
            keep.extend(info.files(&self.graph_dir));
        }
        if let Some(view) = self.view_info()? {
            keep.push(self.graph_dir.join(view.file));
        }
        let prefix = format!("{}-", self.names.name);
        let entries = match std::fs::read_dir(&self.graph_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(IndexError::io(&self.graph_dir, e)),
        };
        for entry in entries {
            let path = entry
                .map_err(|e| IndexError::io(&self.graph_dir, e))?
                .path();
            let ours = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix));
            if ours && !keep.contains(&path) {
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(IndexError::io(path, e))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Rebuilds the graph from the store when tombstones exceed the configured fraction.
    fn compact_if_needed(&self) -> Result<bool, IndexError> {
        let live = self.len();
        let points = read(&self.graph).len();
        let tombstones = points.saturating_sub(live);
        if tombstones == 0 || (tombstones as f64) <= self.options.compact_fraction * points as f64 {
            return Ok(false);
        }
        let graph = Graph::new(self.params, live);
        self.insert_stored(&graph, 0)?;
        *write(&self.graph) = Searcher::Graph(graph);
        Ok(true)
    }

    /// Removes an old record's vector, id and hash entries inside a transaction.
    fn unlink(
        &self,
        vectors: &sled::transaction::TransactionalTree,
        hashes: &sled::transaction::TransactionalTree,
        ids: &sled::transaction::TransactionalTree,
        old: &Record,
    ) -> TxResult<()> {
        vectors.remove(&old.id.to_be_bytes())?;
        ids.remove(&old.id.to_be_bytes())?;
        if let Some(file) = &old.file {
            hashes.remove(hash_key(&file.hash, old.id))?;
        }
        Ok(())
    }

    fn bump_generation(&self, meta: &sled::transaction::TransactionalTree) -> TxResult<()> {
        let key = self.meta_key("generation");
        let generation = self.meta_u64(meta.get(&key)?)?;
        meta.insert(key, &(generation + 1).to_be_bytes())?;
        Ok(())
    }

    /// Runs `f` as one transaction over meta and the collection's four trees.
    fn transaction<T>(
        &self,
        f: impl Fn(
            &sled::transaction::TransactionalTree,
            &sled::transaction::TransactionalTree,
            &sled::transaction::TransactionalTree,
            &sled::transaction::TransactionalTree,
            &sled::transaction::TransactionalTree,
        ) -> TxResult<T>,
    ) -> Result<T, IndexError> {
        (
            &self.meta,
            &self.records,
            &self.vectors,
            &self.hashes,
            &self.ids,
        )
            .transaction(|(meta, records, vectors, hashes, ids)| {
                f(meta, records, vectors, hashes, ids)
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => self.store_err(e),
            })
    }

    fn generation(&self) -> Result<u64, IndexError> {
        self.meta_u64(
            self.meta
                .get(self.meta_key("generation"))
                .map_err(|e| self.store_err(e))?,
        )
    }

    fn view_info(&self) -> Result<Option<ViewInfo>, IndexError> {
        self.meta_record("view", "view info")
    }

    fn snapshot_info(&self) -> Result<Option<SnapshotInfo>, IndexError> {
        self.meta_record("snapshot", "snapshot info")
    }

    /// A bincode record of this collection's in `meta`, if present.
    fn meta_record<T: DeserializeOwned>(
        &self,
        key: &str,
        what: &str,
    ) -> Result<Option<T>, IndexError> {
        match self
            .meta
            .get(self.meta_key(key))
            .map_err(|e| self.store_err(e))?
        {
            Some(bytes) => Ok(Some(self.decode(&bytes, what)?)),
            None => Ok(None),
        }
    }

    fn key_of(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError> {
        Ok(self
            .ids
            .get(id.to_be_bytes())
            .map_err(|e| self.store_err(e))?
            .map(|key| key.to_vec()))
    }

    fn check_vector(&self, key: &str, vector: &[f32]) -> Result<(), IndexError> {
        if vector.len() != self.dim {
            return Err(IndexError::Dimension {
                key: key.to_string(),
                expected: self.dim,
                found: vector.len(),
            });
        }
        if !vector.iter().all(|x| x.is_finite()) {
            return Err(IndexError::NonFinite {
                key: key.to_string(),
            });
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), IndexError> {
        self.db.flush().map_err(|e| self.store_err(e))?;
        Ok(())
    }

    fn meta_key(&self, what: &str) -> Vec<u8> {
        format!("{}.{what}", self.names.name).into_bytes()
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

    fn corrupt(&self, what: String) -> IndexError {
        IndexError::Corrupt {
            path: self.path.clone(),
            what,
        }
    }

    fn store_err(&self, e: sled::Error) -> IndexError {
        IndexError::store(&self.path, e)
    }
}

/// `hashes` keys: the hash's length, the hash, then the id, so one hash can map to several
/// records and a prefix scan finds them all.
fn hash_prefix(hash: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(4 + hash.len() + 8);
    key.extend_from_slice(&(hash.len() as u32).to_be_bytes());
    key.extend_from_slice(hash);
    key
}

fn hash_key(hash: &[u8], id: Id) -> Vec<u8> {
    let mut key = hash_prefix(hash);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Encoding plain structs into a Vec cannot fail: bincode errs only on writer failure
    // or serde features our types do not use.
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("bincode encodes plain structs into a Vec")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(v, _)| v)
}

impl From<IndexError> for ConflictableTransactionError<IndexError> {
    fn from(e: IndexError) -> Self {
        ConflictableTransactionError::Abort(e)
    }
}

// A panic while a lock is held leaves data that is still consistent (sled holds the truth),
// so poisoned locks are entered rather than propagated.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

fn lock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|p| p.into_inner())
}
