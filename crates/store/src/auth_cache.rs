//! A cache of token lookups (`token_by_hash`), so that authenticating a request is a hash-map
//! lookup rather than a database query, with immediate revocation: every store write that can
//! change what a token grants (a token deleted, an account locked or changed, 2FA changed) bumps
//! an epoch, and an entry read before the bump is never served after it. In scale-out mode the
//! backend also bumps the epoch when another instance announces such a write.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::{Token, User};

/// Most entries kept; past it the cache starts over.
const MAX_ENTRIES: usize = 50_000;

/// The cache.
#[derive(Default)]
pub struct AuthCache {
    /// Off for shared databases: another instance's revocation must be seen at once, and only
    /// the database knows of it.
    disabled: bool,
    epoch: AtomicU64,
    map: RwLock<HashMap<String, (u64, Token, User)>>,
}

impl AuthCache {
    /// A cache that never holds anything (every lookup goes to the database).
    pub fn disabled() -> Self {
        AuthCache {
            disabled: true,
            ..Default::default()
        }
    }

    /// The current epoch (read it before querying, to [`put`](Self::put) the result).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A cached lookup still valid in the current epoch.
    pub fn get(&self, hash: &str) -> Option<(Token, User)> {
        if self.disabled {
            return None;
        }
        let now = self.epoch();
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        match map.get(hash) {
            Some((e, t, u)) if *e == now => Some((t.clone(), u.clone())),
            _ => None,
        }
    }

    /// Stores a lookup made in `epoch`, unless a write has happened since.
    pub fn put(&self, hash: &str, epoch: u64, token: &Token, user: &User) {
        if self.disabled {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if self.epoch() != epoch {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(hash.to_owned(), (epoch, token.clone(), user.clone()));
    }

    /// Forgets everything: called after every write that changes what a token grants.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        map.clear();
    }
}
