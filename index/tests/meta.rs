//! Image metadata: stored with its vector, gone with its record, backfilled onto records
//! stored without it, kept in the in-memory table filters read, and published to readers.

use xsearch_index::{
    Entry, FileStamp, ImageMeta, Index, IndexSpec, MetaFields, Reader, Taken, TakenSource,
};

fn spec() -> IndexSpec {
    IndexSpec {
        model: "test-model".into(),
        dim: 4,
    }
}

fn key(i: u8) -> Vec<u8> {
    format!("/p/{i}.jpg").into_bytes()
}

fn entry(i: u8, meta: Option<ImageMeta>) -> Entry {
    let mut vector = vec![0.0; 4];
    vector[usize::from(i) % 4] = 1.0;
    Entry {
        key: key(i),
        file: Some(FileStamp {
            size: u64::from(i),
            mtime_ns: 0,
            hash: vec![i],
        }),
        vector,
        meta,
    }
}

fn meta(unix: i64, camera: &str) -> ImageMeta {
    ImageMeta {
        taken: Some(Taken {
            unix,
            offset_minutes: Some(120),
            source: TakenSource::Exif,
        }),
        camera: Some(camera.to_owned()),
        width: 4000,
        height: 3000,
        gps: Some((48.858_37, 2.294_481)),
    }
}

fn fields(table: &xsearch_index::MetaTable, id: u64) -> Option<(Option<i64>, Option<String>)> {
    table
        .get(id)
        .map(|MetaFields { taken, camera }| (taken, camera.map(|c| table.camera(c).to_owned())))
}

#[test]
fn metadata_lands_with_its_vector_and_leaves_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    let images = index.images();
    let ids = images
        .upsert_batch(vec![
            entry(1, Some(meta(1_626_278_580, "Canon EOS 5D"))),
            entry(2, None),
        ])
        .unwrap();
    assert_eq!(
        images.meta_of(ids[0]).unwrap(),
        Some(meta(1_626_278_580, "Canon EOS 5D"))
    );
    assert_eq!(images.meta_of(ids[1]).unwrap(), None);
    assert_eq!(
        fields(&images.meta_table(), ids[0]),
        Some((Some(1_626_278_580), Some("Canon EOS 5D".to_owned())))
    );
    assert_eq!(fields(&images.meta_table(), ids[1]), None);

    // Replacing the record replaces its metadata: the old id's is gone with its vector.
    let new = images
        .upsert_batch(vec![entry(1, Some(meta(7, "Apple iPhone 12")))])
        .unwrap()[0];
    assert_eq!(images.meta_of(ids[0]).unwrap(), None);
    assert_eq!(fields(&images.meta_table(), ids[0]), None);
    assert_eq!(
        images.meta_of(new).unwrap(),
        Some(meta(7, "Apple iPhone 12"))
    );
    drop(index);

    // It is durable, and the table is rebuilt from the store on open.
    let index = Index::open(dir.path(), &spec()).unwrap();
    let images = index.images();
    assert_eq!(
        images.meta_of(new).unwrap(),
        Some(meta(7, "Apple iPhone 12"))
    );
    assert_eq!(
        fields(&images.meta_table(), new),
        Some((Some(7), Some("Apple iPhone 12".to_owned())))
    );
    assert_eq!(images.meta_table().len(), 1);

    assert_eq!(images.remove(&[key(1)]).unwrap(), 1);
    assert_eq!(images.meta_of(new).unwrap(), None);
    assert!(images.meta_table().is_empty());
}

#[test]
fn metadata_is_backfilled_onto_live_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    let images = index.images();
    let ids = images
        .upsert_batch(vec![entry(1, None), entry(2, None)])
        .unwrap();
    images.remove(&[key(2)]).unwrap();
    let generation = images.stats().unwrap().generation;
    let written = images
        .set_meta(vec![
            (ids[0], meta(100, "Nikon D750")),
            (ids[1], meta(200, "gone")),
        ])
        .unwrap();
    assert_eq!(written, 1);
    assert_eq!(images.stats().unwrap().generation, generation + 1);
    assert_eq!(images.meta_of(ids[1]).unwrap(), None);
    assert_eq!(
        fields(&images.meta_table(), ids[0]),
        Some((Some(100), Some("Nikon D750".to_owned())))
    );
    assert_eq!(images.meta_table().len(), 1);
    drop(index);
    let index = Index::open(dir.path(), &spec()).unwrap();
    assert_eq!(
        index.images().meta_of(ids[0]).unwrap(),
        Some(meta(100, "Nikon D750"))
    );
}

#[test]
fn readers_see_the_metadata_of_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::open(dir.path(), &spec()).unwrap();
    let ids = index
        .images()
        .upsert_batch(vec![
            entry(1, Some(meta(5, "Sony ILCE-7M3"))),
            entry(2, None),
        ])
        .unwrap();
    index.checkpoint().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(
        reader.images().meta_of(ids[0]),
        Some(&meta(5, "Sony ILCE-7M3"))
    );
    assert_eq!(reader.images().meta_of(ids[1]), None);
    assert_eq!(
        fields(reader.images().meta_table(), ids[0]),
        Some((Some(5), Some("Sony ILCE-7M3".to_owned())))
    );
    assert_eq!(reader.images().meta_table().len(), 1);

    // A backfill changes the data generation, so the next checkpoint publishes it.
    index
        .images()
        .set_meta(vec![(ids[1], ImageMeta::default())])
        .unwrap();
    index.checkpoint().unwrap();
    let reader = Reader::open(dir.path()).unwrap();
    assert_eq!(reader.images().meta_of(ids[1]), Some(&ImageMeta::default()));
    assert_eq!(reader.images().meta_table().len(), 2);
}
