//! Reading an index without its store: a [`Reader`] opens the last published read view and
//! the segments it names, with plain reads and read-only maps. It takes no lock and creates or
//! changes nothing, so any number of readers work while a writer writes, and an index on
//! read-only media can be searched.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::exact::{score_chunk, Scored, TopK, CHUNK};
use crate::filter::Admit;
use crate::ids::IdSet;
use crate::kernels::dot;
use crate::meta_table::MetaTable;
use crate::pairs;
use crate::search::{self, Searchable};
use crate::segment::Segment;
use crate::types::{
    CollectionStats, Failure, Hit, IdFilter, ImageMeta, IndexInfo, IndexOptions, IndexSpec,
    IndexStats, Pair, Record,
};
use crate::view::{self, CollectionHeader, Header};
use crate::{Id, IndexError};

/// How often a reader re-reads the view when a segment it names has just been deleted (by a
/// writer that published a newer view meanwhile). Each retry follows a newer publish, so a
/// few suffice unless a writer publishes continuously.
const RETRIES: usize = 8;

/// What is known about an index without opening it: read from its view, with no lock and
/// no write. See [`IndexInfo`].
pub fn inspect(dir: impl AsRef<Path>) -> Result<IndexInfo, IndexError> {
    Ok(info(&view::read_header(dir.as_ref())?))
}

fn info(header: &Header) -> IndexInfo {
    IndexInfo {
        format: header.format,
        model_fingerprint: header.model.clone(),
        model_source: header.model_source.clone(),
        dim: header.dim,
        hnsw: header.hnsw,
        generation: header.generation,
        published: UNIX_EPOCH + Duration::from_millis(header.published_ms),
    }
}

/// A read-only index: the state its writer last published (at its last checkpoint).
///
/// ```
/// use xsearch_index::{Entry, Index, IndexSpec, Reader};
///
/// # fn main() -> Result<(), xsearch_index::IndexError> {
/// let dir = tempfile::tempdir().unwrap();
/// let spec = IndexSpec { model: "clip-rn50".into(), dim: 2 };
/// let index = Index::open(dir.path(), &spec)?;
/// index.images().upsert_batch(vec![
///     Entry { key: b"/photos/sea.jpg".to_vec(), file: None, vector: vec![1.0, 0.0], meta: None },
/// ])?;
/// index.checkpoint()?; // publishes what readers see
/// let reader = Reader::open(dir.path())?;
/// assert_eq!(reader.images().search(&[0.8, 0.6], 1, None)?[0].key, b"/photos/sea.jpg");
/// # Ok(())
/// # }
/// ```
pub struct Reader {
    path: PathBuf,
    info: IndexInfo,
    images: ReadCollection,
    texts: ReadCollection,
    failures: Vec<(Vec<u8>, Failure)>,
}

impl Reader {
    /// Opens the index in `dir` for reading, with default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Reader, IndexError> {
        Reader::open_with(dir, IndexOptions::default())
    }

    /// Opens the index in `dir` for reading (`options`: how to search; the rest is ignored).
    ///
    /// Fails with [`IndexError::NoView`] if the index has not been opened by a writer of this
    /// version since it was written, [`IndexError::NotAnIndex`] if `dir` holds no index, and
    /// [`IndexError::Incompatible`] for another format.
    pub fn open_with(dir: impl AsRef<Path>, options: IndexOptions) -> Result<Reader, IndexError> {
        let path = dir.as_ref().to_path_buf();
        let mut attempt = 0;
        loop {
            let (header, body) = view::read(&path)?;
            if header.format != crate::FORMAT_VERSION {
                return Err(IndexError::Incompatible {
                    path,
                    found: header.format,
                    supported: crate::FORMAT_VERSION,
                });
            }
            let graph_dir = path.join("graph");
            let load = |h: &CollectionHeader, records, metas| {
                ReadCollection::load(&graph_dir, &header, h, records, metas, options)
            };
            match load(&header.images, body.images, body.image_metas)
                .and_then(|images| Ok((images, load(&header.texts, body.texts, Vec::new())?)))
            {
                Ok((images, texts)) => {
                    return Ok(Reader {
                        info: info(&header),
                        path,
                        images,
                        texts,
                        failures: body.failures,
                    })
                }
                Err(Missing::Segment(_)) if attempt < RETRIES => attempt += 1,
                Err(Missing::Segment(reason)) | Err(Missing::Other(reason)) => {
                    return Err(IndexError::Corrupt { path, what: reason })
                }
            }
        }
    }

    /// The image collection (keys: path bytes).
    pub fn images(&self) -> &ReadCollection {
        &self.images
    }

    /// The text collection (keys: UTF-8 texts).
    pub fn texts(&self) -> &ReadCollection {
        &self.texts
    }

    /// The model, dimension, format and freshness of what this reader sees.
    pub fn info(&self) -> &IndexInfo {
        &self.info
    }

    /// Fails with [`IndexError::ModelMismatch`] unless the index was built for `spec`.
    pub fn check_spec(&self, spec: &IndexSpec) -> Result<(), IndexError> {
        let index = IndexSpec {
            model: self.info.model_fingerprint.clone(),
            dim: self.info.dim,
        };
        if index == *spec {
            return Ok(());
        }
        Err(IndexError::ModelMismatch {
            path: self.path.clone(),
            index,
            requested: spec.clone(),
        })
    }

    /// Every recorded failure, in key order.
    pub fn failures(&self) -> &[(Vec<u8>, Failure)] {
        &self.failures
    }

    /// Counts of both collections and of failures.
    pub fn stats(&self) -> IndexStats {
        IndexStats {
            images: self.images.stats(),
            texts: self.texts.stats(),
            failures: self.failures.len(),
        }
    }

    /// The index directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Why a collection could not be loaded from a view.
enum Missing {
    /// A segment file is gone: a writer replaced it after this view was read.
    Segment(String),
    Other(String),
}

/// One collection as a [`Reader`] sees it: the segments and live records of the view.
pub struct ReadCollection {
    dim: usize,
    options: IndexOptions,
    segments: Vec<Segment>,
    records: BTreeMap<Vec<u8>, Record>,
    keys: HashMap<Id, Vec<u8>>,
    live: IdSet,
    /// By id, ascending (the writer publishes them in id order; sorted again in case).
    metas: Vec<(Id, ImageMeta)>,
    table: MetaTable,
    generation: u64,
    /// Where each live id's vector is: (segment, node). Built on first use: searches do not
    /// need it, and a fresh query process should not pay for it.
    places: OnceLock<HashMap<Id, (usize, u32)>>,
}

impl ReadCollection {
    fn load(
        graph_dir: &Path,
        header: &Header,
        collection: &CollectionHeader,
        records: Vec<(Vec<u8>, Record)>,
        mut metas: Vec<(Id, ImageMeta)>,
        options: IndexOptions,
    ) -> Result<ReadCollection, Missing> {
        let mut segments = Vec::with_capacity(collection.segments.len());
        for info in &collection.segments {
            let path = graph_dir.join(&info.file);
            segments.push(
                Segment::load(&path, info.checksum, header.dim).map_err(|e| {
                    if e.missing {
                        Missing::Segment(e.reason)
                    } else {
                        Missing::Other(e.reason)
                    }
                })?,
            );
        }
        let mut live = IdSet::default();
        let mut keys = HashMap::with_capacity(records.len());
        for (key, record) in &records {
            live.insert(record.id);
            keys.insert(record.id, key.clone());
        }
        if !metas.is_sorted_by_key(|(id, _)| *id) {
            metas.sort_unstable_by_key(|(id, _)| *id);
        }
        let mut table = MetaTable::with_capacity(metas.len());
        for (id, meta) in &metas {
            table.insert(*id, meta);
        }
        Ok(ReadCollection {
            dim: header.dim,
            options,
            segments,
            records: records.into_iter().collect(),
            keys,
            live,
            metas,
            table,
            generation: collection.data_generation,
            places: OnceLock::new(),
        })
    }

    /// The `k` records most similar to `query`, best first; as
    /// [`Collection::search`](crate::Collection::search), on the same algorithm.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&IdSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        search::search(self, self.options.into(), query, k, filter)
    }

    /// The exact `k` best records for `query` (whose id `filter` holds): a scan of the
    /// segments' vectors.
    pub fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&IdSet>,
    ) -> Result<Vec<Hit>, IndexError> {
        search::exact_search(self, query, k, filter)
    }

    /// As [`Collection::neighbours`](crate::Collection::neighbours): the `k` records most
    /// similar to the stored record `id`, itself left out.
    pub fn neighbours(&self, id: Id, k: usize) -> Result<Vec<Hit>, IndexError> {
        pairs::neighbours(self, self.options.into(), id, k)
    }

    /// As [`Collection::similar_pairs`](crate::Collection::similar_pairs): the pairs of live
    /// records (accepted by `accept`) whose dot product is at least `min_score`.
    pub fn similar_pairs(
        &self,
        min_score: f32,
        accept: Option<IdFilter<'_>>,
    ) -> Result<Vec<Pair>, IndexError> {
        pairs::similar_pairs(self, self.options.exact_threshold, min_score, accept)
    }

    /// The vector of the live record `id`.
    pub fn vector(&self, id: Id) -> Option<&[f32]> {
        let places = self.places.get_or_init(|| {
            let mut places = HashMap::with_capacity(self.records.len());
            for (s, segment) in self.segments.iter().enumerate() {
                for (node, &id) in segment.ids().iter().enumerate() {
                    if self.live.contains(id) {
                        places.insert(id, (s, node as u32));
                    }
                }
            }
            places
        });
        let &(segment, node) = places.get(&id)?;
        Some(self.segments[segment].vector(node))
    }

    /// The ids of the records whose key starts with `prefix`, for a search's filter (a range
    /// of the sorted keys in memory).
    pub fn ids_with_prefix(&self, prefix: &[u8]) -> IdSet {
        self.records
            .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .map(|(_, record)| record.id)
            .collect()
    }

    /// The ids of the records `accept` accepts, for a search's filter: one pass over the
    /// records in memory, once per search, never per candidate.
    pub fn ids_where(&self, mut accept: impl FnMut(&[u8], &Record) -> bool) -> IdSet {
        self.records
            .iter()
            .filter(|(key, record)| accept(key, record))
            .map(|(_, record)| record.id)
            .collect()
    }

    /// The record stored under `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Record> {
        self.records.get(key)
    }

    /// All records, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Record)> + '_ {
        self.records.iter().map(|(k, r)| (k.as_slice(), r))
    }

    /// The metadata of the live record `id`; as
    /// [`Collection::meta_of`](crate::Collection::meta_of).
    pub fn meta_of(&self, id: Id) -> Option<&ImageMeta> {
        let at = self.metas.binary_search_by_key(&id, |(id, _)| *id).ok()?;
        Some(&self.metas[at].1)
    }

    /// The filterable metadata of every live record in the view.
    pub fn meta_table(&self) -> &MetaTable {
        &self.table
    }

    /// The key of the live record with id `id`.
    pub fn key(&self, id: Id) -> Option<&[u8]> {
        self.keys.get(&id).map(Vec::as_slice)
    }

    /// Live records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the collection holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Counts, as [`Collection::stats`](crate::Collection::stats) gives them (a view has no
    /// tail: `unsealed` is 0).
    pub fn stats(&self) -> CollectionStats {
        let graph_points = self.segments.iter().map(Segment::len).sum();
        CollectionStats {
            live: self.len(),
            graph_points,
            tombstones: graph_points.saturating_sub(self.len()),
            generation: self.generation,
            segments: self.segments.len(),
            unsealed: 0,
        }
    }
}

impl Searchable for ReadCollection {
    fn dim(&self) -> usize {
        self.dim
    }

    fn live_count(&self) -> usize {
        self.len()
    }

    fn admitted_count(&self, filter: &IdSet) -> usize {
        self.live.intersection_len(filter)
    }

    fn graph_candidates(
        &self,
        query: &[f32],
        k: usize,
        ef: usize,
        filter: Option<&IdSet>,
        scan_below: usize,
    ) -> Vec<Scored> {
        let admit = Admit::new(&self.live, filter, scan_below);
        self.segments
            .iter()
            .flat_map(|segment| segment.search(query, k, ef, &admit))
            .map(|(id, score)| Scored { id, score })
            .collect()
    }

    fn key_of(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError> {
        Ok(self.keys.get(&id).cloned())
    }

    fn live_ids(&self) -> Vec<Id> {
        self.live.iter().collect()
    }

    fn vector_of(&self, id: Id) -> Result<Option<Vec<f32>>, IndexError> {
        Ok(self.vector(id).map(<[f32]>::to_vec))
    }

    /// A scan of the live nodes' f32 vectors in the segments (those `filter` holds), in
    /// chunks scored in parallel.
    fn exact_top(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&IdSet>,
    ) -> Result<Vec<Scored>, IndexError> {
        let admit = Admit::new(&self.live, filter, 0);
        let mut top = TopK::new(k);
        let mut chunk = Vec::with_capacity(CHUNK);
        let score = |vector: &&[f32]| dot(query, vector);
        for (id, vector) in self.segments.iter().flat_map(Segment::nodes) {
            if !admit.admits(id) {
                continue;
            }
            chunk.push((id, vector));
            if chunk.len() == CHUNK {
                score_chunk(&chunk, score, &mut top);
                chunk.clear();
            }
        }
        score_chunk(&chunk, score, &mut top);
        Ok(top.into_sorted())
    }
}

// Readers serve many threads at once (the server's searches).
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Reader>();
};

/// Milliseconds since the Unix epoch, for a view's publish time.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
