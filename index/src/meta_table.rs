//! The filterable metadata of every live image, in memory: what a search filter checks for each
//! candidate while the graph is walked, without a store lookup. The writer's collection keeps
//! it in step with its upserts and removals; a reader builds it from the view.

use std::collections::HashMap;

use crate::types::ImageMeta;
use crate::Id;

/// A camera, interned: a filter on the camera's name is decided once per distinct camera
/// ([`MetaTable::cameras`]), then checked per candidate by comparing ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CameraId(pub u32);

/// The fields of one image that filters check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFields {
    /// Capture time, seconds since the Unix epoch (UTC).
    pub taken: Option<i64>,
    /// The camera, if known.
    pub camera: Option<CameraId>,
}

/// Per live image id, its [`MetaFields`]. Ids without metadata (stored before it was
/// captured, not yet backfilled) are absent.
#[derive(Debug, Default)]
pub struct MetaTable {
    fields: HashMap<Id, MetaFields>,
    /// Every camera seen, indexed by [`CameraId`]; never shrinks (there are few).
    cameras: Vec<String>,
    camera_ids: HashMap<String, CameraId>,
}

impl MetaTable {
    pub(crate) fn with_capacity(ids: usize) -> MetaTable {
        MetaTable {
            fields: HashMap::with_capacity(ids),
            ..MetaTable::default()
        }
    }

    /// The fields of `id`, if it has metadata.
    pub fn get(&self, id: Id) -> Option<MetaFields> {
        self.fields.get(&id).copied()
    }

    /// The name of a camera.
    pub fn camera(&self, camera: CameraId) -> &str {
        &self.cameras[camera.0 as usize]
    }

    /// Every camera seen, with its id (some may no longer have a live image).
    pub fn cameras(&self) -> impl Iterator<Item = (CameraId, &str)> + '_ {
        self.cameras
            .iter()
            .enumerate()
            .map(|(i, name)| (CameraId(i as u32), name.as_str()))
    }

    /// Every id with metadata and its fields, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (Id, MetaFields)> + '_ {
        self.fields.iter().map(|(&id, &fields)| (id, fields))
    }

    /// Ids with metadata.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether no id has metadata.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub(crate) fn insert(&mut self, id: Id, meta: &ImageMeta) {
        let camera = meta.camera.as_ref().map(|name| {
            if let Some(&camera) = self.camera_ids.get(name) {
                return camera;
            }
            let camera = CameraId(self.cameras.len() as u32);
            self.cameras.push(name.clone());
            self.camera_ids.insert(name.clone(), camera);
            camera
        });
        let taken = meta.taken.map(|t| t.unix);
        self.fields.insert(id, MetaFields { taken, camera });
    }

    pub(crate) fn remove(&mut self, id: Id) {
        self.fields.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Taken, TakenSource};

    #[test]
    fn cameras_are_interned_and_removal_keeps_them() {
        let mut table = MetaTable::default();
        let meta = |camera: &str, unix| ImageMeta {
            taken: Some(Taken {
                unix,
                offset_minutes: None,
                source: TakenSource::Exif,
            }),
            camera: Some(camera.to_owned()),
            ..ImageMeta::default()
        };
        table.insert(1, &meta("Canon EOS 5D", 10));
        table.insert(2, &meta("Apple iPhone 12", 20));
        table.insert(3, &meta("Canon EOS 5D", 30));
        table.insert(4, &ImageMeta::default());
        let canon = table.get(1).unwrap().camera.unwrap();
        assert_eq!(table.get(3).unwrap().camera, Some(canon));
        assert_eq!(table.camera(canon), "Canon EOS 5D");
        assert_eq!(
            table.get(2),
            Some(MetaFields {
                taken: Some(20),
                camera: Some(CameraId(1))
            })
        );
        assert_eq!(
            table.get(4),
            Some(MetaFields {
                taken: None,
                camera: None
            })
        );
        table.remove(1);
        assert_eq!(table.get(1), None);
        assert_eq!(table.len(), 3);
        assert_eq!(table.cameras().count(), 2);
    }
}
