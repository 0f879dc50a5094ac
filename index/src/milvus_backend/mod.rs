//! The Milvus backend: an index whose records and vectors live in a Milvus collection, so that
//! several machines can write into and search one index.
//!
//! One location `milvus://HOST:PORT/NAME` is three collections: `NAME` (images), `NAME_texts`
//! and `NAME_failures`. Images and texts share one schema: `id` (Int64 primary key), `key`
//! (the path or the text), the file's `size`, `mtime_ns` and content `hash` (hex), `has_meta`
//! and `meta` (the [`ImageMeta`] as JSON, for [`Milvus::meta_of`]), the filterable fields
//! `dated`, `taken` (capture time, Unix seconds) and `camera` (lower case, `""` when unknown),
//! and `vector`, under an HNSW index with inner product (our scores are dot products). The
//! image collection's properties record the model: `xsearch.fingerprint`, `xsearch.dim` and
//! `xsearch.model_source`.
//!
//! Ids: a 63-bit hash of the key and the content hash, not a counter, so machines writing one
//! collection need no coordination, a retried batch writes the same rows again (an upsert),
//! and a changed file gets a new id as with the embedded index.
//!
//! Every read asks for strong consistency: a lookup sees every write acknowledged before it,
//! whoever made it, which incremental runs need (a file is skipped only if its record is
//! there).
//!
//! The client is async; the backend owns a small runtime and blocks on it, so the crate's API
//! stays synchronous. Call it from plain threads, not from inside another async runtime's task.

// Row readers return the client's own error (about 128 bytes, not ours to shrink), turned into
// an `IndexError` as soon as they return.
#![allow(clippy::result_large_err)]

mod expr;

use std::collections::HashMap;
use std::future::Future;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use milvus::v2::prelude::{
    ClientV2, CollectionSchema, ConnectConfig, ConsistencyLevel, CreateCollectionRequest, DataType,
    DeleteRequest, DescribeCollectionRequest, FieldSchema, HasCollectionRequest, IndexParam,
    IndexType, InsertRequest, MetricType, QueryRequest, QueryResults, ResultRow, SearchRequest,
    SearchVectors, UpsertRequest,
};
use serde_json::json;

use crate::backend::{Backend, RecordIter, Records};
use crate::conditions::Conditions;
use crate::location::{Consistency, MilvusUrl};
use crate::remote::{Part, Remote};
use crate::types::{Entry, Failure, FileStamp, Hit, ImageMeta, IndexSpec, Record};
use crate::{Id, IndexError};

/// The image collection's property holding the model fingerprint.
const FINGERPRINT: &str = "xsearch.fingerprint";
/// ... the embedding width.
const DIM: &str = "xsearch.dim";
/// ... where the model came from (the first writer's hub id or directory).
const SOURCE: &str = "xsearch.model_source";

/// Milvus's longest VarChar.
const MAX_VARCHAR: u32 = 65_535;
/// Rows asked for per query page (Milvus's result window is 16 384 rows by default).
const PAGE: usize = 4_096;
/// How long connecting may take before the server is declared absent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused creation waits for the collection another writer is creating.
const CREATE_WAIT: Duration = Duration::from_secs(30);
/// HNSW parameters of the vector index: those of the embedded index ([`crate::HnswParams`]).
const HNSW_M: usize = 16;
const HNSW_EF_CONSTRUCTION: usize = 150;
/// The search beam: the embedded index's default ([`crate::IndexOptions::ef_search`]).
const EF_SEARCH: usize = 192;

/// The client and the runtime it runs on, shared by the collections.
struct Client {
    url: String,
    runtime: tokio::runtime::Runtime,
    client: ClientV2,
    /// The consistency of searches and of the lookups that read their results (the URL's
    /// `?consistency=`); the reads that decide what an index run writes are always strong.
    searches: ConsistencyLevel,
}

impl Client {
    /// Runs `request` to completion, naming `what` failed if it does.
    fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, milvus::v2::error::Error>>,
    ) -> Result<T, IndexError> {
        self.runtime
            .block_on(request)
            .map_err(|err| self.error(what, err))
    }

    /// Upserts whole rows into `collection` (`what`, for the error).
    fn upsert(
        &self,
        collection: &str,
        rows: Vec<serde_json::Value>,
        what: &str,
    ) -> Result<(), IndexError> {
        let insert = InsertRequest::builder()
            .collection_name(collection)
            .rows(rows)
            .build()
            .map_err(validation)?;
        let upsert = UpsertRequest::builder()
            .insert(insert)
            .build()
            .map_err(validation)?;
        self.call(what, self.client.upsert(upsert))?;
        Ok(())
    }

    fn error(&self, what: &str, err: impl std::fmt::Display) -> IndexError {
        IndexError::Milvus {
            url: self.url.clone(),
            what: what.to_string(),
            message: err.to_string(),
        }
    }
}

/// An index in Milvus. Opened by [`Milvus::open`]; implements [`Backend`] for writing, and has
/// the reads a search needs.
pub struct Milvus {
    client: Arc<Client>,
    path: PathBuf,
    spec: IndexSpec,
    model_source: Option<String>,
    images: MilvusRecords,
    texts: MilvusRecords,
    failures: String,
}

/// One collection of records in Milvus.
pub struct MilvusRecords {
    client: Arc<Client>,
    name: String,
    kind: Part,
}

/// What a Milvus index records about its model.
struct Info {
    fingerprint: String,
    dim: usize,
    model_source: Option<String>,
}

impl Milvus {
    /// Connects to the server of `url` and opens its collections. With `expect`, they must
    /// have been made for its spec's model; with a model source too, missing collections are
    /// created for them. A missing collection is otherwise [`IndexError::NoCollection`].
    pub fn open(
        url: &MilvusUrl,
        expect: Option<(&IndexSpec, Option<&str>)>,
    ) -> Result<Milvus, IndexError> {
        let client = connect(url)?;
        let info = match (read_info(&client, url)?, expect) {
            (Some(info), _) => info,
            (None, Some((spec, Some(source)))) => {
                create_collections(&client, url, spec, source)?;
                // Read back: when another writer made it first, maybe for another model, its
                // record of the model is the one that counts.
                read_info(&client, url)?.ok_or_else(|| IndexError::NoCollection {
                    url: url.to_string(),
                })?
            }
            (None, _) => {
                return Err(IndexError::NoCollection {
                    url: url.to_string(),
                })
            }
        };
        let milvus = Milvus::from_info(client, url, info);
        if let Some((spec, _)) = expect {
            if milvus.spec != *spec {
                return Err(IndexError::ModelMismatch {
                    path: milvus.path,
                    index: milvus.spec,
                    requested: spec.clone(),
                });
            }
        }
        Ok(milvus)
    }

    fn from_info(client: Arc<Client>, url: &MilvusUrl, info: Info) -> Milvus {
        let records = |name: String, kind| MilvusRecords {
            client: Arc::clone(&client),
            name,
            kind,
        };
        Milvus {
            images: records(url.collection.clone(), Part::Images),
            texts: records(texts_name(url), Part::Texts),
            failures: failures_name(url),
            path: url.as_path(),
            spec: IndexSpec {
                model: info.fingerprint,
                dim: info.dim,
            },
            model_source: info.model_source,
            client,
        }
    }
}

impl MilvusRecords {
    /// Live records.
    pub fn len(&self) -> Result<usize, IndexError> {
        let response = self.client.call(
            &format!("count the records of {}", self.name),
            self.client.client.query(
                QueryRequest::builder()
                    .collection_name(&self.name)
                    .output_fields(["count(*)"])
                    .consistency_level(self.client.searches)
                    .build()
                    .map_err(validation)?,
            ),
        )?;
        let count = first_row(&self.client, response.results(), |row| {
            row.get_i64("count(*)")
        })?;
        Ok(count.unwrap_or(0).max(0) as usize)
    }

    /// Whether the collection holds no record.
    pub fn is_empty(&self) -> Result<bool, IndexError> {
        Ok(self.len()? == 0)
    }

    /// The `k` records most similar to `query` (inner product), best first, among those
    /// `conditions` accept. Approximate, through Milvus's HNSW index, with the embedded index's
    /// beam (at least `k`).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        conditions: Option<&Conditions>,
    ) -> Result<Vec<Hit>, IndexError> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let filter = match conditions {
            Some(conditions) => {
                let prefix = conditions
                    .key_prefix
                    .as_deref()
                    .map(|prefix| self.text(prefix))
                    .transpose()?;
                expr::conditions(conditions, prefix)
            }
            None => None,
        };
        let mut request = SearchRequest::builder()
            .collection_name(&self.name)
            .vector_field("vector")
            .vectors(SearchVectors::Float(vec![query.to_vec()]))
            .output_fields(["key"])
            .limit(k as i64)
            .metric_type(MetricType::Ip)
            .extra_params(HashMap::from([(
                "ef".to_string(),
                EF_SEARCH.max(k).to_string(),
            )]))
            .consistency_level(self.client.searches);
        if let Some(filter) = filter {
            request = request.filter(filter);
        }
        let response = self.client.call(
            &format!("search {}", self.name),
            self.client
                .client
                .search(request.build().map_err(validation)?),
        )?;
        let mut hits = Vec::new();
        let read = |row: &ResultRow<'_>| -> Result<Hit, milvus::v2::error::Error> {
            Ok(Hit {
                key: row.get_str("key")?.as_bytes().to_vec(),
                id: row.get_i64("id")? as Id,
                score: row.get_f32("score")?,
            })
        };
        for result in response.results().iter() {
            // Milvus before 2.4 (2.3.5 standalone) does not name the primary key in a search
            // result, which the client needs to make rows: it is our `id`.
            let mut result = result.clone();
            if result.get_primary_field_name().is_empty() {
                result.set_primary_field_name("id");
            }
            let rows = result
                .rows()
                .map_err(|e| self.client.error("read a search result", e))?;
            for row in rows {
                hits.push(read(&row).map_err(|e| self.client.error("read a search result", e))?);
            }
        }
        Ok(hits)
    }

    /// The key of the record `id`.
    pub fn key(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError> {
        self.lookup(&format!("id == {}", id as i64), "key", |row| {
            Ok(row.get_str("key")?.as_bytes().to_vec())
        })
    }

    /// The vector of the record `id`.
    pub fn vector(&self, id: Id) -> Result<Option<Vec<f32>>, IndexError> {
        self.lookup(&format!("id == {}", id as i64), "vector", |row| {
            Ok(row.get_float_vector("vector")?.to_vec())
        })
    }

    /// The metadata of the record `id`, if it has some.
    pub fn meta_of(&self, id: Id) -> Result<Option<ImageMeta>, IndexError> {
        let json = self.lookup(
            &format!("id == {} and has_meta == true", id as i64),
            "meta",
            |row| Ok(row.get_str("meta")?.to_string()),
        )?;
        json.map(|json| {
            serde_json::from_str(&json).map_err(|err| IndexError::Corrupt {
                path: PathBuf::from(&self.client.url),
                what: format!("the metadata of record {id}: {err}"),
            })
        })
        .transpose()
    }

    /// `field` of the first row `filter` selects, read by `read`, at the consistency of
    /// searches (these read a hit's key, vector or metadata).
    fn lookup<T>(
        &self,
        filter: &str,
        field: &str,
        read: impl Fn(&ResultRow<'_>) -> Result<T, milvus::v2::error::Error>,
    ) -> Result<Option<T>, IndexError> {
        let rows = self.query(self.client.searches, filter, &[field], Some(1), read)?;
        Ok(rows.into_iter().next())
    }

    /// The rows `filter` selects at consistency `level`, each read by `read`, all pages of
    /// them (or `limit`).
    fn query<T>(
        &self,
        level: ConsistencyLevel,
        filter: &str,
        fields: &[&str],
        limit: Option<usize>,
        read: impl Fn(&ResultRow<'_>) -> Result<T, milvus::v2::error::Error>,
    ) -> Result<Vec<T>, IndexError> {
        query_rows(&self.client, &self.name, level, filter, fields, limit, read)
    }

    /// `bytes` as the UTF-8 text Milvus stores; a key that is not UTF-8 (a path with invalid
    /// bytes, possible on Unix) cannot be stored.
    fn text<'a>(&self, bytes: &'a [u8]) -> Result<&'a str, IndexError> {
        std::str::from_utf8(bytes).map_err(|_| IndexError::Unsupported {
            location: self.client.url.clone(),
            what: format!("the path {}", String::from_utf8_lossy(bytes)),
            why: "Milvus stores keys as UTF-8 text, and this path is not; rename the file or \
                  index it into a directory index"
                .to_string(),
        })
    }

    /// The full row of `entry` under `id`.
    fn row(&self, id: i64, entry: &Entry) -> Result<serde_json::Value, IndexError> {
        let key = self.text(&entry.key)?;
        let (size, mtime_ns, hash) = match &entry.file {
            Some(file) => (file.size as i64, file.mtime_ns, hex(&file.hash)),
            None => (0, 0, String::new()),
        };
        let meta = entry.meta.as_ref();
        let taken = meta.and_then(|meta| meta.taken);
        let camera = meta
            .and_then(|meta| meta.camera.as_deref())
            .map(str::to_lowercase)
            .unwrap_or_default();
        let meta_json = match meta {
            Some(meta) => serde_json::to_string(meta).map_err(|err| IndexError::Corrupt {
                path: PathBuf::from(&self.client.url),
                what: format!("the metadata of {key}: {err}"),
            })?,
            None => String::new(),
        };
        Ok(json!({
            "id": id,
            "key": key,
            "size": size,
            "mtime_ns": mtime_ns,
            "hash": hash,
            "has_meta": meta.is_some(),
            "meta": meta_json,
            "dated": taken.is_some(),
            "taken": taken.map_or(0, |taken| taken.unix),
            "camera": camera,
            "vector": entry.vector,
        }))
    }

    /// Upserts whole rows.
    fn upsert_rows(&self, rows: Vec<serde_json::Value>) -> Result<(), IndexError> {
        if rows.is_empty() {
            return Ok(());
        }
        self.client
            .upsert(&self.name, rows, &format!("write to {}", self.name))
    }

    fn delete(&self, filter: String) -> Result<(), IndexError> {
        self.client.call(
            &format!("delete from {}", self.name),
            self.client.client.delete(
                DeleteRequest::builder()
                    .collection_name(&self.name)
                    .filter(filter)
                    .build()
                    .map_err(validation)?,
            ),
        )?;
        Ok(())
    }

    fn record(&self, row: &ResultRow<'_>) -> Result<(Vec<u8>, Record), milvus::v2::error::Error> {
        let key = row.get_str("key")?.as_bytes().to_vec();
        let file = match self.kind {
            Part::Images => Some(FileStamp {
                size: row.get_i64("size")? as u64,
                mtime_ns: row.get_i64("mtime_ns")?,
                hash: unhex(row.get_str("hash")?),
            }),
            Part::Texts => None,
        };
        let id = row.get_i64("id")? as Id;
        Ok((key, Record { id, file }))
    }
}

const RECORD_FIELDS: [&str; 5] = ["id", "key", "size", "mtime_ns", "hash"];

impl Records for MilvusRecords {
    fn upsert_batch(&self, entries: Vec<Entry>) -> Result<Vec<Id>, IndexError> {
        let mut ids = Vec::with_capacity(entries.len());
        let mut rows = Vec::with_capacity(entries.len());
        for entry in &entries {
            if entry.vector.iter().any(|x| !x.is_finite()) {
                return Err(IndexError::NonFinite {
                    key: String::from_utf8_lossy(&entry.key).into_owned(),
                });
            }
            let hash = entry.file.as_ref().map_or(&[][..], |file| &file.hash[..]);
            let id = record_id(&entry.key, hash);
            rows.push(self.row(id, entry)?);
            ids.push(id);
        }
        self.upsert_rows(rows)?;
        // The keys' earlier records (another content, another id) go after the new ones are
        // in: a failure between the two leaves an old row beside the new, never neither.
        if !entries.is_empty() {
            let keys = entries
                .iter()
                .map(|entry| self.text(&entry.key))
                .collect::<Result<Vec<_>, _>>()?;
            let ids_list: Vec<String> = ids.iter().map(i64::to_string).collect();
            self.delete(format!(
                "{} and not (id in [{}])",
                expr::in_list("key", keys),
                ids_list.join(",")
            ))?;
        }
        Ok(ids.into_iter().map(|id| id as Id).collect())
    }

    fn remove_keys(&self, keys: &[Vec<u8>]) -> Result<usize, IndexError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let keys = keys
            .iter()
            .map(|key| self.text(key))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = expr::in_list("key", keys);
        let present = self.query(ConsistencyLevel::Strong, &filter, &["id"], None, |row| {
            row.get_i64("id")
        })?;
        if !present.is_empty() {
            self.delete(filter)?;
        }
        Ok(present.len())
    }

    fn set_meta(&self, items: Vec<(Id, ImageMeta)>) -> Result<usize, IndexError> {
        if items.is_empty() {
            return Ok(0);
        }
        // Milvus replaces whole rows: read each record's row, then write it back with its
        // metadata.
        let metas: HashMap<i64, ImageMeta> = items
            .into_iter()
            .map(|(id, meta)| (id as i64, meta))
            .collect();
        let ids: Vec<String> = metas.keys().map(i64::to_string).collect();
        let stored = self.query(
            ConsistencyLevel::Strong,
            &format!("id in [{}]", ids.join(",")),
            &["id", "key", "size", "mtime_ns", "hash", "vector"],
            None,
            |row| {
                let (key, record) = self.record(row)?;
                Ok((key, record, row.get_float_vector("vector")?.to_vec()))
            },
        )?;
        let mut rows = Vec::with_capacity(stored.len());
        for (key, record, vector) in stored {
            let entry = Entry {
                key,
                file: record.file,
                vector,
                meta: metas.get(&(record.id as i64)).cloned(),
            };
            rows.push(self.row(record.id as i64, &entry)?);
        }
        let written = rows.len();
        self.upsert_rows(rows)?;
        Ok(written)
    }

    fn has_meta(&self, id: Id) -> Result<bool, IndexError> {
        let rows = self.query(
            ConsistencyLevel::Strong,
            &format!("id == {}", id as i64),
            &["has_meta"],
            Some(1),
            |row| row.get_bool("has_meta"),
        )?;
        Ok(rows.first().copied().unwrap_or(false))
    }

    fn get(&self, key: &[u8]) -> Result<Option<Record>, IndexError> {
        let filter = format!("key == {}", expr::quote(self.text(key)?));
        let rows = self.query(
            ConsistencyLevel::Strong,
            &filter,
            &RECORD_FIELDS,
            Some(1),
            |row| self.record(row),
        )?;
        Ok(rows.into_iter().next().map(|(_, record)| record))
    }

    fn lookup_hash(&self, hash: &[u8]) -> Result<Option<(Id, Vec<f32>)>, IndexError> {
        let filter = format!("hash == {}", expr::quote(&hex(hash)));
        let rows = self.query(
            ConsistencyLevel::Strong,
            &filter,
            &["id", "vector"],
            Some(1),
            |row| {
                Ok((
                    row.get_i64("id")? as Id,
                    row.get_float_vector("vector")?.to_vec(),
                ))
            },
        )?;
        Ok(rows.into_iter().next())
    }

    /// Reads every matching record at once (Milvus returns no key order), then sorts them.
    fn with_prefix(&self, prefix: &[u8]) -> Result<RecordIter<'_>, IndexError> {
        let filter =
            expr::prefix_range("key", self.text(prefix)?).unwrap_or_else(|| "id >= 0".to_string());
        let mut records = self.query(
            ConsistencyLevel::Strong,
            &filter,
            &RECORD_FIELDS,
            None,
            |row| self.record(row),
        )?;
        records.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Box::new(records.into_iter().map(Ok)))
    }
}

impl Remote for Milvus {
    fn spec(&self) -> &IndexSpec {
        &self.spec
    }

    fn model_source(&self) -> Option<&str> {
        self.model_source.as_deref()
    }

    fn count(&self, part: Part) -> Result<usize, IndexError> {
        self.part(part).len()
    }

    fn search(
        &self,
        part: Part,
        query: &[f32],
        k: usize,
        conditions: Option<&Conditions>,
    ) -> Result<Vec<Hit>, IndexError> {
        self.part(part).search(query, k, conditions)
    }

    fn key(&self, id: Id) -> Result<Option<Vec<u8>>, IndexError> {
        self.images.key(id)
    }

    fn vector(&self, id: Id) -> Result<Option<Vec<f32>>, IndexError> {
        self.images.vector(id)
    }

    fn meta_of(&self, id: Id) -> Result<Option<ImageMeta>, IndexError> {
        self.images.meta_of(id)
    }
}

impl Milvus {
    fn part(&self, part: Part) -> &MilvusRecords {
        match part {
            Part::Images => &self.images,
            Part::Texts => &self.texts,
        }
    }
}

impl Backend for Milvus {
    fn location(&self) -> &Path {
        &self.path
    }

    fn images(&self) -> &dyn Records {
        &self.images
    }

    fn texts(&self) -> &dyn Records {
        &self.texts
    }

    fn record_failure(&self, key: &[u8], reason: &str) -> Result<(), IndexError> {
        let key = self.images.text(key)?;
        let time_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let row = json!({
            "key": key,
            "reason": reason,
            "time_s": time_s as i64,
            "vector": [0.0, 0.0],
        });
        self.client
            .upsert(&self.failures, vec![row], "record a failure")
    }

    fn clear_failure(&self, key: &[u8]) -> Result<bool, IndexError> {
        if self.failure(key)?.is_none() {
            return Ok(false);
        }
        let filter = format!("key == {}", expr::quote(self.images.text(key)?));
        self.client.call(
            "forget a failure",
            self.client.client.delete(
                DeleteRequest::builder()
                    .collection_name(&self.failures)
                    .filter(filter)
                    .build()
                    .map_err(validation)?,
            ),
        )?;
        Ok(true)
    }

    fn failure(&self, key: &[u8]) -> Result<Option<Failure>, IndexError> {
        let filter = format!("key == {}", expr::quote(self.images.text(key)?));
        let rows = query_rows(
            &self.client,
            &self.failures,
            ConsistencyLevel::Strong,
            &filter,
            &["reason", "time_s"],
            Some(1),
            |row| {
                Ok(Failure {
                    reason: row.get_str("reason")?.to_string(),
                    time_s: row.get_i64("time_s")?.max(0) as u64,
                })
            },
        )?;
        Ok(rows.into_iter().next())
    }

    fn failures(&self) -> Result<Vec<(Vec<u8>, Failure)>, IndexError> {
        let mut failures = query_rows(
            &self.client,
            &self.failures,
            ConsistencyLevel::Strong,
            "key >= \"\"",
            &["key", "reason", "time_s"],
            None,
            |row| {
                Ok((
                    row.get_str("key")?.as_bytes().to_vec(),
                    Failure {
                        reason: row.get_str("reason")?.to_string(),
                        time_s: row.get_i64("time_s")?.max(0) as u64,
                    },
                ))
            },
        )?;
        failures.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(failures)
    }

    /// Nothing to do: Milvus makes every acknowledged write durable and, at strong
    /// consistency, visible to every reader.
    fn checkpoint(&self) -> Result<(), IndexError> {
        Ok(())
    }
}

/// The rows of `collection` that `filter` selects, each read by `read`: `limit` of them, or
/// all, page by page (offset and limit: Milvus's query iterator needs a collection id that
/// milvus-lite does not give). Milvus refuses a window past its `maxQueryResultWindow`
/// (16 384 rows by default): reading more is its error, never a silent cut.
fn query_rows<T>(
    client: &Client,
    collection: &str,
    level: ConsistencyLevel,
    filter: &str,
    fields: &[&str],
    limit: Option<usize>,
    read: impl Fn(&ResultRow<'_>) -> Result<T, milvus::v2::error::Error>,
) -> Result<Vec<T>, IndexError> {
    let what = format!("query {collection}");
    let page = limit.unwrap_or(PAGE).min(PAGE);
    let mut rows = Vec::new();
    loop {
        let request = QueryRequest::builder()
            .collection_name(collection)
            .filter(filter)
            .output_fields(fields.iter().copied())
            .offset(rows.len() as i64)
            .limit(page as i64)
            .consistency_level(level)
            .build()
            .map_err(validation)?;
        let response = client.call(&what, client.client.query(request))?;
        let got = read_rows(client, response.results(), &read)?;
        let last = got.len() < page;
        rows.extend(got);
        if last || limit.is_some() {
            return Ok(rows);
        }
    }
}

fn read_rows<T>(
    client: &Client,
    results: &QueryResults,
    read: &impl Fn(&ResultRow<'_>) -> Result<T, milvus::v2::error::Error>,
) -> Result<Vec<T>, IndexError> {
    let mut out = Vec::new();
    for row in results
        .rows()
        .map_err(|e| client.error("read a query result", e))?
    {
        out.push(read(&row).map_err(|e| client.error("read a query result", e))?);
    }
    Ok(out)
}

fn first_row<T>(
    client: &Client,
    results: &QueryResults,
    read: impl Fn(&ResultRow<'_>) -> Result<T, milvus::v2::error::Error>,
) -> Result<Option<T>, IndexError> {
    Ok(read_rows(client, results, &read)?.into_iter().next())
}

/// A request the client refused to build: a bug of ours, said as a Milvus error.
fn validation(err: milvus::v2::error::Error) -> IndexError {
    IndexError::Milvus {
        url: String::new(),
        what: "build a request".to_string(),
        message: err.to_string(),
    }
}

fn connect(url: &MilvusUrl) -> Result<Arc<Client>, IndexError> {
    let address = format!("{}:{}", url.host, url.port);
    let no_milvus = |reason: String| IndexError::NoMilvus {
        url: url.to_string(),
        address: address.clone(),
        reason,
    };
    // The client retries a refused connection until its timeout: a plain TCP connection
    // first says at once that nothing listens there (or the name does not resolve).
    probe(&address).map_err(no_milvus)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("xsearch-milvus")
        .enable_all()
        .build()
        .map_err(|err| no_milvus(format!("could not start the client's runtime: {err}")))?;
    let mut config = ConnectConfig::new().uri(url.endpoint());
    if let Ok(token) = std::env::var("XSEARCH_MILVUS_TOKEN") {
        if !token.is_empty() {
            config = config.token(token);
        }
    }
    let client = runtime
        .block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, ClientV2::new(&config)).await })
        .map_err(|_| no_milvus(format!("no answer in {} s", CONNECT_TIMEOUT.as_secs())))?
        .map_err(|err| no_milvus(err.to_string()))?;
    Ok(Arc::new(Client {
        url: url.to_string(),
        runtime,
        client,
        searches: match url.consistency {
            Consistency::Strong => ConsistencyLevel::Strong,
            Consistency::Bounded => ConsistencyLevel::Bounded,
        },
    }))
}

/// Whether something accepts TCP connections at `address` (`host:port`), on any of the
/// addresses the host name resolves to, within the connect timeout.
fn probe(address: &str) -> Result<(), String> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|err| format!("the host name does not resolve: {err}"))?
        .collect();
    let mut last = String::from("the host name resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(err) => last = err.to_string(),
        }
    }
    Err(last)
}

fn texts_name(url: &MilvusUrl) -> String {
    format!("{}_texts", url.collection)
}

fn failures_name(url: &MilvusUrl) -> String {
    format!("{}_failures", url.collection)
}

/// The model the image collection records; `None` when it does not exist.
fn read_info(client: &Client, url: &MilvusUrl) -> Result<Option<Info>, IndexError> {
    if !has_collection(client, &url.collection)? {
        return Ok(None);
    }
    let described = client.call(
        "describe the collection",
        client.client.describe_collection(
            DescribeCollectionRequest::builder()
                .collection_name(&url.collection)
                .build()
                .map_err(validation)?,
        ),
    )?;
    let properties = described.description().get_properties();
    let not_ours = || IndexError::NotAnIndex {
        path: url.as_path(),
    };
    let fingerprint = properties.get(FINGERPRINT).ok_or_else(not_ours)?.clone();
    let dim = properties
        .get(DIM)
        .and_then(|dim| dim.parse().ok())
        .ok_or_else(not_ours)?;
    Ok(Some(Info {
        fingerprint,
        dim,
        model_source: properties.get(SOURCE).cloned(),
    }))
}

/// Creates the three collections; the image collection last, since its existence is what
/// says the index exists (a creation cut short is finished by the next).
fn create_collections(
    client: &Client,
    url: &MilvusUrl,
    spec: &IndexSpec,
    model_source: &str,
) -> Result<(), IndexError> {
    create(
        client,
        &failures_name(url),
        failure_schema(),
        2,
        HashMap::new(),
    )?;
    create(
        client,
        &texts_name(url),
        record_schema(spec.dim),
        spec.dim,
        HashMap::new(),
    )?;
    let properties = HashMap::from([
        (FINGERPRINT.to_string(), spec.model.clone()),
        (DIM.to_string(), spec.dim.to_string()),
        (SOURCE.to_string(), model_source.to_string()),
    ]);
    create(
        client,
        &url.collection,
        record_schema(spec.dim),
        spec.dim,
        properties,
    )
}

fn create(
    client: &Client,
    name: &str,
    schema: CollectionSchema,
    dim: usize,
    properties: HashMap<String, String>,
) -> Result<(), IndexError> {
    if has_collection(client, name)? {
        return Ok(());
    }
    // A tiny vector (the failures' placeholder) gains nothing from a graph.
    let index = if dim <= 2 {
        IndexParam::new()
            .field_name("vector")
            .index_type(IndexType::Flat)
            .metric_type(MetricType::Ip)
    } else {
        IndexParam::new()
            .field_name("vector")
            .index_type(IndexType::Hnsw)
            .metric_type(MetricType::Ip)
            .extra_params(HashMap::from([
                ("M".to_string(), HNSW_M.to_string()),
                (
                    "efConstruction".to_string(),
                    HNSW_EF_CONSTRUCTION.to_string(),
                ),
            ]))
    };
    let created = client.call(
        &format!("create the collection {name}"),
        client.client.create_collection(
            CreateCollectionRequest::builder()
                .collection_name(name)
                .schema(schema)
                .index_params(vec![index])
                .properties(properties)
                .consistency_level(ConsistencyLevel::Strong)
                .build()
                .map_err(validation)?,
        ),
    );
    match created {
        // Another writer is making it (several machines or Spark tasks opening a new index at
        // once): theirs is made by the same code. Milvus may refuse ours before it lists
        // theirs, so wait for it to appear.
        Err(err) => {
            let started = Instant::now();
            while started.elapsed() < CREATE_WAIT {
                if has_collection(client, name)? {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(err)
        }
        created => created,
    }
}

fn has_collection(client: &Client, name: &str) -> Result<bool, IndexError> {
    let exists = client.call(
        "list its collections",
        client.client.has_collection(
            HasCollectionRequest::builder()
                .collection_name(name)
                .build()
                .map_err(validation)?,
        ),
    )?;
    Ok(exists.exists())
}

fn field(name: &str, data_type: DataType) -> FieldSchema {
    FieldSchema::new().name(name).data_type(data_type)
}

fn varchar(name: &str) -> FieldSchema {
    field(name, DataType::VarChar).max_length(MAX_VARCHAR)
}

fn record_schema(dim: usize) -> CollectionSchema {
    CollectionSchema::new()
        .add_field(
            field("id", DataType::Int64)
                .primary_key(true)
                .auto_id(false),
        )
        .add_field(varchar("key"))
        .add_field(field("size", DataType::Int64))
        .add_field(field("mtime_ns", DataType::Int64))
        .add_field(varchar("hash"))
        .add_field(field("has_meta", DataType::Bool))
        .add_field(varchar("meta"))
        .add_field(field("dated", DataType::Bool))
        .add_field(field("taken", DataType::Int64))
        .add_field(varchar("camera"))
        .add_field(field("vector", DataType::FloatVector).dimension(dim as u32))
}

fn failure_schema() -> CollectionSchema {
    CollectionSchema::new()
        .add_field(varchar("key").primary_key(true).auto_id(false))
        .add_field(varchar("reason"))
        .add_field(field("time_s", DataType::Int64))
        // Milvus wants a vector field in every collection; failures have none of their own.
        .add_field(field("vector", DataType::FloatVector).dimension(2))
}

/// The id of `key`'s record with content `hash`: 63 bits of their BLAKE3 hash, the same on
/// every machine, positive as Milvus's Int64 wants.
fn record_id(key: &[u8], hash: &[u8]) -> i64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&(key.len() as u64).to_le_bytes());
    hasher.update(key);
    hasher.update(hash);
    let bytes: [u8; 8] = hasher.finalize().as_bytes()[..8]
        .try_into()
        .expect("a BLAKE3 hash has 32 bytes");
    (u64::from_le_bytes(bytes) >> 1) as i64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_stable_and_depend_on_key_and_content() {
        let a = record_id(b"/p/a.jpg", b"h1");
        assert!(a >= 0);
        assert_eq!(a, record_id(b"/p/a.jpg", b"h1"));
        assert_ne!(a, record_id(b"/p/a.jpg", b"h2"));
        assert_ne!(a, record_id(b"/p/b.jpg", b"h1"));
        // The key's length is hashed first, so a key and hash cannot trade bytes.
        assert_ne!(record_id(b"ab", b"c"), record_id(b"a", b"bc"));
    }

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0xab, 0xff];
        assert_eq!(hex(&bytes), "0001abff");
        assert_eq!(unhex(&hex(&bytes)), bytes);
    }
}
