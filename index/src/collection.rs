//! One collection of vectors (the images, or the texts): sled holds the records and vectors;
//! HNSW graphs are derived from them, as segments.
//!
//! Every committed vector goes into the *tail*, an hnsw_rs graph in memory. The tail is sealed
//! into a segment file when it reaches [`IndexOptions::segment_points`] points and at every
//! checkpoint; sealed segments never change, are mapped from disk and searched in place. So a
//! writer holds at most one segment's graph in memory whatever the collection's size, opening
//! never loads an hnsw_rs graph, and a run that adds ten photos to a large library writes one
//! small file. Checkpoints merge small segments and compact those full of tombstones (see
//! [`crate::merge`]). A segment that is missing or damaged is rebuilt from the store when the
//! collection opens, as is any vector that no segment holds (committed by a run that stopped
//! before its checkpoint).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use sled::{Db, Tree};

use crate::exact::{score_chunk, Scored, TopK, CHUNK};
use crate::graph::{Graph, HnswParams};
use crate::merge::{self, SegmentCounts};
use crate::segment::{self, fresh_file, Nodes, Segment, SegmentInfo, SegmentList};
use crate::{legacy, Id, IndexError, IndexOptions};

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

/// How the graphs of a collection came to be at open time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphStatus {
    /// The collection has no segment; there is nothing to load.
    Empty,
    /// Every segment loaded as it was written, and together they hold every stored vector.
    Loaded,
    /// Vectors committed after the last checkpoint (by a run that was stopped or killed) were
    /// in no segment: they were inserted into new ones.
    Updated {
        /// Vectors inserted.
        inserted: usize,
    },
    /// Segments were unusable (missing, damaged, or an unreadable list of them): the vectors
    /// they held, and any other vector no segment held, were inserted into new ones.
    Rebuilt {
        /// Why, for the first unusable segment.
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
            GraphStatus::Loaded => write!(f, "graph loaded from its segments"),
            GraphStatus::Updated { inserted } => write!(
                f,
                "{inserted} vectors committed after the last checkpoint (an interrupted run?) \
                 were added to the graph"
            ),
            GraphStatus::Rebuilt { reason, inserted } => {
                write!(
                    f,
                    "graph rebuilt from the store ({inserted} vectors): {reason}"
                )
            }
        }
    }
}

/// Counts describing a collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectionStats {
    /// Live records.
    pub live: usize,
    /// Points in the graphs (sealed segments and the tail), tombstones included.
    pub graph_points: usize,
    /// Graph points whose record was removed or replaced.
    pub tombstones: usize,
    /// Data generation: bumped by every committed batch or removal.
    pub generation: u64,
    /// Sealed segments, each an HNSW graph in its own file.
    pub segments: usize,
    /// Points in the tail, the graph still in memory (sealed at the next checkpoint).
    pub unsealed: usize,
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

    fn insert(&mut self, id: Id) -> bool {
        let (word, bit) = ((id / 64) as usize, id % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let fresh = self.bits[word] & (1 << bit) == 0;
        if fresh {
            self.bits[word] |= 1 << bit;
            self.count += 1;
        }
        fresh
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

    /// Every id in the set, ascending.
    fn iter(&self) -> impl Iterator<Item = Id> + '_ {
        self.bits.iter().enumerate().flat_map(|(word, &bits)| {
            (0..64)
                .filter(move |bit| bits & (1 << bit) != 0)
                .map(move |bit| word as Id * 64 + bit)
        })
    }
}

/// Names of a collection's trees and meta keys.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Names {
    /// Prefix of the meta keys and segment files.
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
    /// The index is in format 1, being converted: adopt its search view as a segment.
    pub converting: bool,
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
    graphs: RwLock<Graphs>,
    writer: Mutex<()>,
}

/// What searches run on: the sealed segments and the tail.
struct Graphs {
    /// What meta says about the segments.
    list: SegmentList,
    /// The segments themselves, in the order of `list.segments`.
    segments: Vec<Segment>,
    /// Vectors committed since the last seal, in this process.
    tail: Graph,
}

impl Graphs {
    fn points(&self) -> usize {
        self.segments.iter().map(Segment::len).sum::<usize>() + self.tail.len()
    }

    /// The `fetch` nearest points of every graph, as `(id, score)`, unordered.
    fn search(&self, query: &[f32], fetch: usize, ef: usize) -> Vec<(Id, f32)> {
        let mut found = self.tail.search(query, fetch, ef);
        for segment in &self.segments {
            found.extend(segment.search(query, fetch, ef));
        }
        found
    }
}

type TxResult<T> = Result<T, ConflictableTransactionError<IndexError>>;

impl Collection {
    /// Opens the collection's trees, maps its segments, and repairs what they lack.
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
            graphs: RwLock::new(Graphs {
                list: SegmentList::default(),
                segments: Vec::new(),
                tail: Graph::new(ctx.params, ctx.options.segment_points),
            }),
            writer: Mutex::new(()),
        };
        {
            let mut live = write(&collection.live);
            for key in collection.ids.iter().keys() {
                let key = key.map_err(|e| collection.store_err(e))?;
                live.insert(collection.decode_id(&key)?);
            }
        }
        let status = collection.load_segments(ctx.converting)?;
        Ok((collection, status))
    }

    /// Maps the segments meta lists, then inserts every live vector that no usable segment
    /// holds into new ones: those of missing or damaged segments, and those committed after
    /// the last seal. Each stored id is checked to be in exactly one segment.
    fn load_segments(&self, converting: bool) -> Result<GraphStatus, IndexError> {
        let (mut list, mut problem) = self.stored_list(converting)?;
        let mut covered = LiveSet::default();
        let mut segments = Vec::new();
        list.segments.retain(|info| {
            let path = self.graph_dir.join(&info.file);
            let loaded = Segment::load(&path, info.checksum, self.dim).and_then(|segment| {
                // Marking stops at the first id held twice; such a segment is dropped whole,
                // so unmark what it marked.
                let marked = segment
                    .ids()
                    .iter()
                    .take_while(|&&id| covered.insert(id))
                    .count();
                if marked == segment.len() {
                    return Ok(segment);
                }
                segment.ids()[..marked]
                    .iter()
                    .for_each(|&id| covered.remove(id));
                Err(format!(
                    "{}: holds ids another segment holds",
                    path.display()
                ))
            });
            match loaded {
                Ok(segment) => {
                    segments.push(segment);
                    true
                }
                Err(reason) => {
                    problem.get_or_insert(reason);
                    false
                }
            }
        });
        // Format 1 views load as segments, but without the half-precision copy that searches
        // walk on: write them again in the current layout (no graph is rebuilt).
        let mut rewritten = false;
        for (info, segment) in list.segments.iter_mut().zip(&mut segments) {
            if segment.is_legacy() {
                (*info, *segment) = self.write_segment(&mut list.files_written, &*segment)?;
                rewritten = true;
            }
        }
        let orphans: Vec<Id> = read(&self.live)
            .iter()
            .filter(|&id| !covered.contains(id))
            .collect();
        drop(covered);
        let built = self.build(&mut list, &orphans)?;
        let changed = !built.is_empty() || problem.is_some() || converting || rewritten;
        for (info, segment) in built {
            list.segments.push(info);
            segments.push(segment);
        }
        let status = match problem {
            Some(reason) => GraphStatus::Rebuilt {
                reason,
                inserted: orphans.len(),
            },
            None if !orphans.is_empty() => GraphStatus::Updated {
                inserted: orphans.len(),
            },
            None if segments.is_empty() => GraphStatus::Empty,
            None => GraphStatus::Loaded,
        };
        if changed {
            self.store_list(&list)?;
            self.flush()?;
        }
        let mut graphs = write(&self.graphs);
        graphs.list = list;
        graphs.segments = segments;
        drop(graphs);
        if changed {
            self.remove_unreferenced_files()?;
        }
        Ok(status)
    }

    /// The list of segments in meta, and why it cannot be used if it cannot (segments are
    /// derived data: an unreadable list means rebuilding them, not an error).
    fn stored_list(&self, converting: bool) -> Result<(SegmentList, Option<String>), IndexError> {
        let stored = self
            .meta
            .get(self.meta_key(SEGMENTS))
            .map_err(|e| self.store_err(e))?;
        Ok(match stored {
            Some(bytes) => match decode::<SegmentList>(&bytes) {
                Ok(list) => (list, None),
                Err(e) => (
                    SegmentList::default(),
                    Some(format!("the list of segments is unreadable: {e}")),
                ),
            },
            None if converting => {
                let view = self
                    .meta
                    .get(self.meta_key(legacy::VIEW))
                    .map_err(|e| self.store_err(e))?;
                match view.as_deref().and_then(legacy::view_as_segment) {
                    Some(adopted) => (
                        SegmentList {
                            files_written: 0,
                            segments: vec![adopted],
                        },
                        None,
                    ),
                    None => (
                        SegmentList::default(),
                        Some("format 1's graph snapshot is not read by format 2".into()),
                    ),
                }
            }
            None => (SegmentList::default(), None),
        })
    }

    /// Builds segments from the stored vectors of `ids` (a new segment every
    /// [`IndexOptions::segment_points`]) and writes their files.
    fn build(
        &self,
        list: &mut SegmentList,
        ids: &[Id],
    ) -> Result<Vec<(SegmentInfo, Segment)>, IndexError> {
        let capacity = self.options.segment_points.max(1);
        let mut built = Vec::new();
        for part in ids.chunks(capacity) {
            let graph = Graph::new(self.params, part.len());
            for chunk in part.chunks(CHUNK) {
                let mut points = Vec::with_capacity(chunk.len());
                for &id in chunk {
                    let vector = self.vector(id)?.ok_or_else(|| {
                        self.corrupt(format!("{}: no vector for live id {id}", self.names.name))
                    })?;
                    points.push((id, vector));
                }
                graph.insert(&points);
            }
            built.push(self.write_segment(&mut list.files_written, &graph)?);
        }
        Ok(built)
    }

    /// Writes `graph` (not empty) as a new segment file and maps it back; `files_written`
    /// is the list's counter of file names.
    fn write_segment(
        &self,
        files_written: &mut u64,
        graph: &dyn Nodes,
    ) -> Result<(SegmentInfo, Segment), IndexError> {
        std::fs::create_dir_all(&self.graph_dir).map_err(|e| IndexError::io(&self.graph_dir, e))?;
        let file = fresh_file(files_written, self.names.name, &self.graph_dir);
        let path = self.graph_dir.join(&file);
        let failed = |message: String| IndexError::Segment {
            path: path.clone(),
            message,
        };
        let checksum = segment::write(graph, self.dim, &path)?
            .ok_or_else(|| failed("the graph is empty".into()))?;
        let segment = Segment::load(&path, checksum, self.dim).map_err(failed)?;
        Ok((SegmentInfo { file, checksum }, segment))
    }

    /// Seals the tail into a segment, if it holds any point. Writers call it holding the
    /// writer lock, so the tail cannot change meanwhile; searches go on during the write.
    fn seal_tail(&self) -> Result<(), IndexError> {
        let mut list = read(&self.graphs).list.clone();
        let sealed = {
            let graphs = read(&self.graphs);
            if graphs.tail.len() == 0 {
                return Ok(());
            }
            self.write_segment(&mut list.files_written, &graphs.tail)?
        };
        list.segments.push(sealed.0);
        self.store_list(&list)?;
        self.flush()?;
        let mut graphs = write(&self.graphs);
        graphs.list = list;
        graphs.segments.push(sealed.1);
        graphs.tail = Graph::new(self.params, self.options.segment_points);
        Ok(())
    }

    /// Stores a batch atomically: records, vectors, ids and hashes land in one sled
    /// transaction, then the store is flushed to disk, then the tail learns the new vectors
    /// (and is sealed if it is full). A key that already exists is replaced (its old vector
    /// becomes a tombstone). Returns the new ids, in the order of `entries`.
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
            added.iter().for_each(|&id| {
                live.insert(id);
            });
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
        let full = {
            let graphs = read(&self.graphs);
            graphs.tail.insert(&points);
            graphs.tail.len() >= self.options.segment_points
        };
        if full {
            self.seal_tail()?;
        }
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
    /// larger ones through their HNSW graphs (approximate). With a `filter`, only accepted keys
    /// are returned; when the graphs cannot find `k` of them the search falls back to exact.
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
        // Tombstones and the filter drop candidates, so ask the graphs for spares then.
        let mut fetch = {
            let points = read(&self.graphs).points();
            if filter.is_none() && points == self.len() {
                k
            } else {
                2 * k + 16
            }
        };
        loop {
            let mut found: Vec<Scored> = {
                let graphs = read(&self.graphs);
                if fetch >= graphs.points() {
                    drop(graphs);
                    return self.exact_search(query, k, filter);
                }
                let live = read(&self.live);
                graphs
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
        let graphs = read(&self.graphs);
        let graph_points = graphs.points();
        Ok(CollectionStats {
            live,
            graph_points,
            tombstones: graph_points.saturating_sub(live),
            generation: self.generation()?,
            segments: graphs.segments.len(),
            unsealed: graphs.tail.len(),
        })
    }

    /// Seals the tail, then rebuilds what the merge policy asks for (segments full of
    /// tombstones, runs of small segments), then deletes the files no longer listed (and any
    /// left half-written by a killed run).
    pub(crate) fn checkpoint(&self) -> Result<(), IndexError> {
        let _writer = lock(&self.writer);
        self.seal_tail()?;
        while let Some(chosen) = self.next_rebuild() {
            self.rebuild(&chosen)?;
        }
        self.remove_unreferenced_files()
    }

    fn next_rebuild(&self) -> Option<Vec<usize>> {
        let graphs = read(&self.graphs);
        let live = read(&self.live);
        let counts: Vec<SegmentCounts> = graphs
            .segments
            .iter()
            .map(|segment| SegmentCounts {
                nodes: segment.len(),
                live: segment
                    .ids()
                    .iter()
                    .filter(|&&id| live.contains(id))
                    .count(),
            })
            .collect();
        merge::next_rebuild(
            &counts,
            self.options.segment_points,
            self.options.compact_fraction,
        )
    }

    /// Replaces the segments at `chosen` (indices into the list) by segments built from
    /// their live vectors. The new files are listed before the old ones are deleted.
    fn rebuild(&self, chosen: &[usize]) -> Result<(), IndexError> {
        let (mut list, ids) = {
            let graphs = read(&self.graphs);
            let live = read(&self.live);
            let mut ids: Vec<Id> = chosen
                .iter()
                .flat_map(|&i| graphs.segments[i].ids())
                .copied()
                .filter(|&id| live.contains(id))
                .collect();
            ids.sort_unstable();
            (graphs.list.clone(), ids)
        };
        let built = self.build(&mut list, &ids)?;
        let keep = |i: &usize| !chosen.contains(i);
        let (new_infos, new_segments): (Vec<SegmentInfo>, Vec<Segment>) = built.into_iter().unzip();
        list.segments = (0..list.segments.len())
            .filter(keep)
            .map(|i| list.segments[i].clone())
            .chain(new_infos)
            .collect();
        // Meta first: until it is flushed, the old segments are the ones on record.
        self.store_list(&list)?;
        self.flush()?;
        let mut graphs = write(&self.graphs);
        let kept = std::mem::take(&mut graphs.segments)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| keep(i))
            .map(|(_, segment)| segment);
        graphs.segments = kept.chain(new_segments).collect();
        graphs.list = list;
        Ok(())
    }

    fn store_list(&self, list: &SegmentList) -> Result<(), IndexError> {
        self.meta
            .insert(self.meta_key(SEGMENTS), encode(list))
            .map_err(|e| self.store_err(e))?;
        Ok(())
    }

    /// Deletes this collection's graph files that meta does not list: segments replaced by a
    /// merge, files half-written by a killed run, and format 1's graph snapshots (all are
    /// named `<collection>-...`).
    fn remove_unreferenced_files(&self) -> Result<(), IndexError> {
        let keep: Vec<PathBuf> = read(&self.graphs)
            .list
            .segments
            .iter()
            .map(|info| self.graph_dir.join(&info.file))
            .collect();
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

    pub(crate) fn meta_key(&self, what: &str) -> Vec<u8> {
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

/// The meta key (after the collection's prefix) of the segment list.
const SEGMENTS: &str = "segments";

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
