//! Rendered packuments, kept per package and invalidated by every write.
//!
//! A reader notes the package's epoch before loading, and stores its rendering only if no
//! write bumped the epoch meanwhile, so a slow read can never put a stale document back after a
//! write invalidated it.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::packument::Rendered;

#[derive(Default)]
struct Slot {
    epoch: u64,
    rendered: Option<Arc<Rendered>>,
}

/// The cache.
#[derive(Default)]
pub struct PackumentCache {
    slots: RwLock<HashMap<String, Slot>>,
}

impl PackumentCache {
    /// The cached rendering for `name` built for `base`, and the current epoch.
    pub fn get(&self, name: &str, base: &str) -> (Option<Arc<Rendered>>, u64) {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        match slots.get(name) {
            Some(s) => (s.rendered.clone().filter(|r| r.base == base), s.epoch),
            None => (None, 0),
        }
    }

    /// Stores a rendering made after reading at `epoch`, unless a write happened since.
    pub fn put(&self, name: &str, epoch: u64, r: Arc<Rendered>) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(name.to_owned()).or_default();
        if slot.epoch == epoch {
            slot.rendered = Some(r);
        }
    }

    /// Drops the rendering of `name`; called after every committed write to the package.
    pub fn invalidate(&self, name: &str) {
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(name.to_owned()).or_default();
        slot.epoch += 1;
        slot.rendered = None;
    }
}
