//! Rendered packuments, kept per package within a memory budget and invalidated by every write.
//!
//! A reader notes the package's epoch before loading, and stores its rendering only if no
//! write bumped the epoch meanwhile, so a slow read can never put a stale document back after a
//! write invalidated it. Past the budget, the oldest renderings are dropped (a later read renders
//! again from the database).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use crate::npm::packument::Rendered;

#[derive(Default)]
struct Slot {
    epoch: u64,
    rendered: Option<Arc<Rendered>>,
}

#[derive(Default)]
struct Inner {
    /// Bumped by [`PackumentCache::clear`]; a reader's epoch is its slot's plus this, so both
    /// kinds of write are seen (both only grow).
    generation: u64,
    slots: HashMap<String, Slot>,
    order: VecDeque<String>,
    size: usize,
}

impl Inner {
    /// Drops the oldest renderings until the bytes held fit `budget`.
    fn evict_past(&mut self, budget: usize) {
        while self.size > budget {
            let Some(victim) = self.order.pop_front() else {
                break;
            };
            if let Some(s) = self.slots.get_mut(&victim)
                && let Some(r) = s.rendered.take()
            {
                self.size = self.size.saturating_sub(r.weight());
            }
        }
    }
}

/// The cache.
pub struct PackumentCache {
    inner: RwLock<Inner>,
    budget: usize,
}

impl Default for PackumentCache {
    fn default() -> Self {
        Self::with_budget(256 << 20)
    }
}

impl PackumentCache {
    /// A cache holding at most about `budget` bytes of rendered documents.
    pub fn with_budget(budget: usize) -> Self {
        PackumentCache {
            inner: RwLock::default(),
            budget,
        }
    }

    /// The cached rendering for `name` built for `base`, and the current epoch.
    pub fn get(&self, name: &str, base: &str) -> (Option<Arc<Rendered>>, u64) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match inner.slots.get(name) {
            Some(s) => (
                s.rendered.clone().filter(|r| r.base == base),
                s.epoch + inner.generation,
            ),
            None => (None, inner.generation),
        }
    }

    /// Stores a rendering made after reading at `epoch`, unless a write happened since.
    pub fn put(&self, name: &str, epoch: u64, r: Arc<Rendered>) {
        let weight = r.weight();
        if weight > self.budget {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let generation = inner.generation;
        let slot = inner.slots.entry(name.to_owned()).or_default();
        if slot.epoch + generation != epoch {
            return;
        }
        let old = slot.rendered.replace(r).map(|o| o.weight()).unwrap_or(0);
        inner.size = inner.size + weight - old;
        if old == 0 {
            inner.order.push_back(name.to_owned());
        }
        inner.evict_past(self.budget);
    }

    /// Drops every rendering (another process changed packuments); a read under way does not
    /// store what it made.
    pub fn clear(&self) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        inner.generation += 1;
        for s in inner.slots.values_mut() {
            s.rendered = None;
        }
        inner.order.clear();
        inner.size = 0;
    }

    /// Drops the rendering of `name`; called after every committed write to the package.
    pub fn invalidate(&self, name: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let slot = inner.slots.entry(name.to_owned()).or_default();
        slot.epoch += 1;
        if let Some(r) = slot.rendered.take() {
            inner.size = inner.size.saturating_sub(r.weight());
            inner.order.retain(|n| n != name);
        }
    }

    /// Counts `added` bytes that a part made later added to `r`, if `r` is still the cached
    /// rendering of `name`, and evicts the oldest renderings past the budget.
    pub fn grew(&self, name: &str, r: &Arc<Rendered>, added: usize) {
        if added == 0 {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let cached = inner
            .slots
            .get(name)
            .and_then(|s| s.rendered.as_ref())
            .is_some_and(|c| Arc::ptr_eq(c, r));
        if !cached {
            return;
        }
        inner.size += added;
        inner.evict_past(self.budget);
    }

    /// Bytes held.
    pub fn size(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npm::packument::render_all as render;
    use tessera_store::{Access, Package, PackageDoc};

    fn doc(name: &str, rev: i64) -> PackageDoc {
        PackageDoc {
            package: Package {
                id: 1,
                name: name.into(),
                access: Access::Public,
                rev,
                description: None,
                keywords: vec![],
                policy: tessera_store::PackageTfaPolicy::None,
                staged_publishes: false,
                provenance_required: false,
                created_at: 0,
                modified_at: 0,
            },
            versions: vec![],
            dist_tags: vec![],
            maintainers: vec![],
            stars: vec![],
        }
    }

    fn rendered(name: &str, rev: i64) -> Arc<Rendered> {
        Arc::new(render(&doc(name, rev), "http://x"))
    }

    #[test]
    fn a_slow_reader_cannot_put_back_a_stale_document() {
        let c = PackumentCache::default();
        let (_, epoch) = c.get("a", "http://x");
        c.invalidate("a");
        c.put("a", epoch, rendered("a", 1));
        assert!(c.get("a", "http://x").0.is_none());
        let (_, epoch) = c.get("a", "http://x");
        c.put("a", epoch, rendered("a", 2));
        assert_eq!(c.get("a", "http://x").0.unwrap().rev, 2);
        assert!(
            c.get("a", "http://other").0.is_none(),
            "built for another base URL"
        );
    }

    #[test]
    fn clearing_drops_everything_and_stops_readers_under_way() {
        let c = PackumentCache::default();
        let (_, e) = c.get("a", "http://x");
        c.put("a", e, rendered("a", 1));
        let (_, reading_a) = c.get("a", "http://x");
        let (_, reading_b) = c.get("b", "http://x");
        // a slot bumped once and a clear must not sum to an epoch a reader already holds
        c.invalidate("a");
        let (_, after_invalidate) = c.get("a", "http://x");
        c.clear();
        assert!(c.get("a", "http://x").0.is_none());
        assert_eq!(c.size(), 0);
        c.put("a", reading_a, rendered("a", 1));
        c.put("a", after_invalidate, rendered("a", 1));
        c.put("b", reading_b, rendered("b", 1));
        assert!(c.get("a", "http://x").0.is_none());
        assert!(c.get("b", "http://x").0.is_none());
        let (_, e) = c.get("a", "http://x");
        c.put("a", e, rendered("a", 2));
        assert_eq!(c.get("a", "http://x").0.unwrap().rev, 2);
    }

    #[test]
    fn the_budget_evicts_the_oldest() {
        let one = rendered("p0", 1).weight();
        let c = PackumentCache::with_budget(one * 3);
        for i in 0..5 {
            let name = format!("p{i}");
            let (_, e) = c.get(&name, "http://x");
            c.put(&name, e, rendered(&name, 1));
        }
        assert!(c.size() <= one * 3);
        assert!(c.get("p0", "http://x").0.is_none());
        assert!(c.get("p4", "http://x").0.is_some());
        c.invalidate("p4");
        assert!(c.size() <= one * 2);
    }

    #[test]
    fn parts_made_later_are_counted_once_and_released() {
        let doc = doc("a", 1);
        let c = PackumentCache::default();
        let r = Arc::new(crate::npm::packument::render(&doc, "http://x"));
        let (_, e) = c.get("a", "http://x");
        c.put("a", e, r.clone());
        assert_eq!(c.size(), r.weight());
        let added = r.fill(&doc, crate::npm::packument::Part::Abbreviated);
        assert!(added > 0);
        c.grew("a", &r, added);
        assert_eq!(
            r.fill(&doc, crate::npm::packument::Part::Abbreviated),
            0,
            "made once"
        );
        let (_, gz) = r.abbreviated().unwrap().gzip();
        c.grew("a", &r, gz);
        assert_eq!(
            c.size(),
            r.weight(),
            "the cache counts what the rendering holds"
        );
        // growth of a rendering no longer cached is not counted
        let stale = Arc::new(crate::npm::packument::render(&doc, "http://x"));
        c.grew(
            "a",
            &stale,
            stale.fill(&doc, crate::npm::packument::Part::Full),
        );
        assert_eq!(c.size(), r.weight());
        c.invalidate("a");
        assert_eq!(c.size(), 0);
    }
}
