//! One task per key at a time: concurrent misses for the same name wait for the first one's
//! work instead of doing their own (request coalescing within an instance): an uplink's fetch
//! of a packument or a tarball, a packument's rendering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

type Lock = Arc<tokio::sync::Mutex<()>>;

/// Per-key async locks, dropped when nobody holds or waits for them.
#[derive(Default)]
pub struct Locks {
    map: Arc<Mutex<HashMap<String, Lock>>>,
}

/// A held key; the next waiter goes on when it drops.
pub struct Held {
    key: String,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
    map: Arc<Mutex<HashMap<String, Lock>>>,
}

impl Locks {
    /// Waits for `key`.
    pub async fn lock(&self, key: &str) -> Held {
        let lock = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(key.to_owned()).or_default().clone()
        };
        let guard = lock.lock_owned().await;
        Held {
            key: key.to_owned(),
            guard: Some(guard),
            map: self.map.clone(),
        }
    }

    /// Keys held or waited for (tests).
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(guard) = self.guard.take() {
            // the map's reference and this guard's: nobody else waits
            let last = Arc::strong_count(tokio::sync::OwnedMutexGuard::mutex(&guard)) <= 2;
            drop(guard);
            if last {
                map.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn one_holder_per_key_and_keys_are_dropped_after_use() {
        let locks = Arc::new(Locks::default());
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (locks, inside, most) = (locks.clone(), inside.clone(), most.clone());
            tasks.push(tokio::spawn(async move {
                let _h = locks.lock("lodash").await;
                let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(n, Ordering::SeqCst);
                tokio::task::yield_now().await;
                inside.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        assert!(locks.is_empty());
        // other keys do not wait
        let _a = locks.lock("a").await;
        let _b = locks.lock("b").await;
        assert_eq!(locks.len(), 2);
    }
}
