//! What an index directory holds of its images, read through a [`Reader`]: for comparing
//! indexes made different ways (`xsearch index`, `embed --stdin | import`, the Spark job).

use std::collections::BTreeMap;
use std::path::Path;

use xsearch_index::{FileStamp, ImageMeta, Reader};

/// Everything an index holds of its images, by path: stamp, vector bits, metadata; and its
/// failures.
pub type Held = (
    BTreeMap<Vec<u8>, (FileStamp, Vec<u32>, Option<ImageMeta>)>,
    BTreeMap<Vec<u8>, String>,
);

pub fn held(index: &Path) -> Held {
    let reader = Reader::open(index).unwrap();
    let images = reader
        .images()
        .iter()
        .map(|(key, record)| {
            let vector = reader.images().vector(record.id).unwrap();
            let bits = vector.iter().map(|x| x.to_bits()).collect();
            let meta = reader.images().meta_of(record.id).cloned();
            (key.to_vec(), (record.file.clone().unwrap(), bits, meta))
        })
        .collect();
    let failures = reader
        .failures()
        .iter()
        .map(|(key, failure)| (key.clone(), failure.reason.clone()))
        .collect();
    (images, failures)
}
