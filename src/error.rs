//! The crate's error: each layer's typed error, converted at the boundary.

/// Anything that can go wrong in xsearch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Resolving, reading or running the model.
    #[error(transparent)]
    Model(#[from] crate::model::error::Error),
    /// Decoding an image.
    #[error(transparent)]
    Decode(#[from] crate::decode::DecodeError),
    /// The index (store, graph, lock, model mismatch).
    #[error(transparent)]
    Index(#[from] xsearch_index::IndexError),
    /// A query that could not be parsed.
    #[error(transparent)]
    Query(#[from] crate::query::ParseError),
    /// The terms of a query cancel out.
    #[error("the query's terms cancel each other out\n\nChange their weights or drop one.")]
    EmptyQuery,
    /// A query weight that is not a finite number.
    #[error("query weight {weight} is not a finite number\n\nWeigh terms with ordinary numbers, e.g. `2:beach`.")]
    BadWeight {
        /// The weight.
        weight: f32,
    },
    /// A text longer than [`crate::MAX_TEXT_CHARS`].
    #[error(
        "text \"{start}...\" is {chars} characters long, over the limit of {}\n\nCLIP reads \
         only about the first 300 characters of a text; shorten it.",
        crate::MAX_TEXT_CHARS
    )]
    TextTooLong {
        /// Its first 40 characters.
        start: String,
        /// Its length in characters.
        chars: usize,
    },
    /// A near-duplicate threshold outside (0, 1].
    #[error(
        "near-duplicate threshold {threshold} is not a cosine similarity above 0 and at most \
         1\n\nChoose one such as {}.",
        crate::DEFAULT_THRESHOLD
    )]
    BadThreshold {
        /// The threshold given.
        threshold: f32,
    },
    /// No index where one was expected.
    #[error(
        "{}: no index here\n\nCreate it by opening with OpenMode::Create and ingesting a \
         folder, or open an existing index.",
        path.display()
    )]
    NoIndex {
        /// The index directory.
        path: std::path::PathBuf,
    },
    /// An index operation on an engine opened without an index.
    #[error(
        "this engine has no index\n\nName an index directory in EngineOptions to ingest, \
         search or hold texts."
    )]
    NoIndexOpened,
    /// A change (ingest, adding texts) to an index opened read-only.
    #[error(
        "{}: the index was opened read-only\n\nOpen it with OpenMode::Existing or \
         OpenMode::Create to change it.",
        path.display()
    )]
    ReadOnly {
        /// The index directory.
        path: std::path::PathBuf,
    },
    /// A query term or a lookup named an image id the index does not hold (any more).
    #[error(
        "no indexed image has id {id}\n\nA file gets a new id each time it is indexed again: \
         search again for current ids."
    )]
    UnknownImage {
        /// The id.
        id: crate::ImageId,
    },
    /// The model an index records it was built with cannot be opened any more (moved or
    /// deleted), and no other model was named.
    #[error(
        "{location}: the model this index was built with (fingerprint {fingerprint}) cannot be \
         opened: {}\n\nName the model's new location, or another copy of it, when opening \
         the engine.",
        cause.to_string().split("\n\n").next().unwrap_or_default()
    )]
    RecordedModel {
        /// Where the index says its model was (hub id or directory).
        location: String,
        /// The fingerprint the index records.
        fingerprint: String,
        /// Why it cannot be opened there.
        cause: Box<crate::model::error::Error>,
    },
    /// Records embedded with another model than the index's, refused by [`crate::Engine::import`].
    #[error(
        "{}: these records were embedded with model {records}, but the index holds vectors of \
         model {index}\n\nEmbed the files with the index's model, or import the records into \
         an index of their own.",
        path.display()
    )]
    ForeignRecords {
        /// The index directory.
        path: std::path::PathBuf,
        /// The fingerprint of the records' model.
        records: String,
        /// The fingerprint of the index's model.
        index: String,
    },
    /// Tensor plumbing between the towers and the caller.
    #[error("tensor operation failed: {0}")]
    Tensor(#[from] candle_core::Error),
}
