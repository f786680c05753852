//! Uplinks: packages proxied from upstream registries and cached here, so that one registry
//! serves a team's private packages and everything public.
//!
//! - `settings`: `[[uplinks]]` and `[[packages]]`.
//! - `routing`: which uplinks a name goes to (first matching rule).
//! - `client`: HTTP to an uplink, with its caps and redirect rule.
//! - `proxied`: an upstream packument made ready to serve (pure).
//! - `quarantine`: upstream versions kept out (pure).
//! - `merged`: a local package and an uplink's served as one (`mode = "merge"`, pure).
//!
//! The rule that keeps dependency confusion out lives here, in [`Uplinks::claimed_locally`]
//! and in the read path's order: a name that exists here, that was ever published here, or
//! whose scope is owned here never takes anything from an uplink. The one exception is a name
//! an admin's rule puts in `mode = "merge"`, where taking versions from the uplink is the point.

pub mod client;
pub mod merged;
pub mod proxied;
pub mod quarantine;
pub mod routing;
pub mod settings;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use axum::http::StatusCode;
use bytes::Bytes;
use sha2::{Digest, Sha512};
use tessera_store::{CachedPackument, CachedTarball};

use crate::config::Config;
use crate::http::error::{ApiError, ApiResult};
use crate::npm::names::{scope_of, validate_existing_name};
use crate::npm::packument::{Rendered, TarballRef};
use crate::state::AppState;
use client::{Fetched, UplinkClient};
use proxied::UpstreamDist;
use routing::{Route, Routes};
use settings::{MergeMode, UplinkConfig};

/// A proxied package as this instance holds it in memory.
#[derive(Debug)]
pub struct Entry {
    /// The uplink it came from (index into the configured uplinks).
    pub uplink: usize,
    /// The forms served (every one made).
    pub rendered: Arc<Rendered>,
    dists: HashMap<String, UpstreamDist>,
    refused: HashMap<String, String>,
    /// Tarballs already in the blob store, by version.
    tarballs: RwLock<HashMap<String, TarballRef>>,
    /// When the uplink last confirmed it (Unix ms).
    checked_at: AtomicI64,
    /// No uplink could be asked at the last try: served stale until `retry_at`.
    stale: AtomicBool,
    retry_at: AtomicI64,
    /// The local packument cache's epoch for the name when the name was found not local.
    local_epoch: u64,
    /// Whether the name's rule merges it with the local package (`mode = "merge"`; the rules
    /// are fixed for the process's life, so this is decided once, not per read).
    merges: bool,
    /// Merged with the local package (`mode = "merge"`): the last merged rendering.
    merged: std::sync::Mutex<Option<Arc<Rendered>>>,
}

impl Entry {
    /// Whether the last revalidation failed (the document may be out of date).
    pub fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Relaxed)
    }

    fn weight(&self) -> usize {
        self.rendered.weight() + self.dists.len() * 200
    }
}

/// A name the uplinks do not have, remembered briefly.
#[derive(Debug)]
struct Missing {
    checked_at: i64,
    local_epoch: u64,
}

#[derive(Debug)]
enum Slot {
    Found(Arc<Entry>),
    Missing(Missing),
}

#[derive(Default)]
struct Memory {
    slots: HashMap<String, Slot>,
    order: VecDeque<String>,
    size: usize,
}

/// The uplinks, their routes, and what this instance holds of their packages.
pub struct Uplinks {
    configs: Vec<UplinkConfig>,
    clients: Vec<UplinkClient>,
    routes: Routes,
    memory: RwLock<Memory>,
    budget: usize,
    names: crate::coalesce::Locks,
    files: crate::coalesce::Locks,
    /// This instance's name in fetch leases.
    instance: String,
    /// Tarball fetches under way (each holds a tarball in memory).
    fetches: Arc<tokio::sync::Semaphore>,
    /// Bumped by every [`Uplinks::forget`]: a fetch that began before a name (or its scope)
    /// became local does not put its result in memory afterwards.
    generation: std::sync::atomic::AtomicU64,
    /// Each uplink's registry signing keys, as last fetched (Unix ms, the keys).
    keys: tokio::sync::Mutex<HashMap<usize, (i64, Vec<serde_json::Value>)>>,
    /// Uplinks whose half-open probe this instance holds (released at the probe's outcome).
    probing: std::sync::Mutex<std::collections::HashSet<usize>>,
}

/// How long an uplink's signing keys are kept before they are asked for again.
const KEYS_MAXAGE_MS: i64 = 10 * 60 * 1000;
/// How long a request for an uplink's keys may take (the keys document waits for it).
const KEYS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Tarball fetches from uplinks at once, per instance.
pub const FETCHES: usize = 16;

/// A tarball to serve.
pub struct Tarball {
    /// The bytes, or the stored blob.
    pub body: tessera_store::BlobBody,
    /// Size in bytes.
    pub size: i64,
    /// Content address.
    pub sha512: String,
}

impl Uplinks {
    /// No uplinks: every name is local.
    pub fn none() -> Uplinks {
        Uplinks {
            configs: Vec::new(),
            clients: Vec::new(),
            routes: Routes::default(),
            memory: RwLock::default(),
            budget: 0,
            names: Default::default(),
            files: Default::default(),
            instance: crate::npm::ids::new_uuid(),
            fetches: Arc::new(tokio::sync::Semaphore::new(FETCHES)),
            generation: Default::default(),
            keys: Default::default(),
            probing: Default::default(),
        }
    }

    /// Builds the clients and routes (reading CA files and token variables).
    pub fn new(config: &Config) -> Result<Uplinks, String> {
        let ua = format!("tessera/{} (uplink)", env!("CARGO_PKG_VERSION"));
        let clients = config
            .uplinks
            .iter()
            .map(|u| UplinkClient::new(u, &ua).map_err(|e| format!("uplink {}: {e}", u.name)))
            .collect::<Result<Vec<_>, _>>()?;
        let names: Vec<String> = config.uplinks.iter().map(|u| u.name.clone()).collect();
        Ok(Uplinks {
            configs: config.uplinks.clone(),
            clients,
            routes: Routes::new(&names, &config.packages)?,
            budget: config.packument_cache_bytes() / 2,
            ..Uplinks::none()
        })
    }

    /// Whether any name is proxied.
    pub fn enabled(&self) -> bool {
        self.routes.any()
    }

    /// The configured uplinks.
    pub fn configs(&self) -> &[UplinkConfig] {
        &self.configs
    }

    /// The rule proxying `name`, if one does.
    pub fn route(&self, name: &str) -> Option<&Route> {
        self.routes.proxied(name)
    }

    /// The uplink's configured name.
    pub fn name_of(&self, i: usize) -> &str {
        &self.configs[i].name
    }

    /// The in-memory entry for `name`, if it is fresh at `now`, was built for `base`, and the
    /// name is still not local (`epoch` is the local packument cache's epoch for it). Serving
    /// it needs no database.
    pub fn fresh_entry(&self, name: &str, base: &str, epoch: u64, now: i64) -> Option<Arc<Entry>> {
        let e = self.remembered(name, base, epoch, now).flatten()?;
        // a merged name's entry holds only the uplink's half
        (!e.merges).then_some(e)
    }

    /// Whether `name`'s rule merges local and upstream versions (`mode = "merge"`).
    pub fn merges(&self, name: &str) -> bool {
        self.route(name).is_some_and(|r| r.mode == MergeMode::Merge)
    }

    /// The local package `local` (as the read path rendered it) merged with the uplink's
    /// package in `entry`: made once per local revision and uplink copy.
    pub async fn merged(
        &self,
        state: &AppState,
        name: &str,
        local: &Arc<Rendered>,
        entry: &Arc<Entry>,
    ) -> ApiResult<Arc<Rendered>> {
        let same = |m: &Rendered| {
            (m.package_id, m.rev, m.base.as_str()) == (local.package_id, local.rev, &local.base)
        };
        if let Some(m) = entry
            .merged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && same(m)
        {
            return Ok(m.clone());
        }
        let Some(doc) = state.store.package_doc(name).await? else {
            return Ok(local.clone());
        };
        let whole = crate::npm::packument::render_all(&doc, &local.base);
        let held = state.store.held_versions(name).await?;
        let m = merged::merge(&whole, &entry.rendered, &held, self.name_of(entry.uplink))
            .map_err(|e| ApiError::internal(format!("merging {name}: {e}")))?;
        let m = Arc::new(m);
        *entry.merged.lock().unwrap_or_else(|e| e.into_inner()) = Some(m.clone());
        Ok(m)
    }

    fn is_fresh(&self, e: &Entry, now: i64) -> bool {
        if e.is_stale() {
            return now < e.retry_at.load(Ordering::Relaxed);
        }
        now - e.checked_at.load(Ordering::Relaxed) < self.configs[e.uplink].maxage.as_ms()
    }

    /// Drops what this instance holds of `name` (a local package took it), and of every name
    /// in its scope.
    pub fn forget(&self, name: &str) {
        let mut memory = self.memory.write().unwrap_or_else(|e| e.into_inner());
        self.generation.fetch_add(1, Ordering::SeqCst);
        let scope = scope_of(name).map(|s| format!("{s}/"));
        let gone: Vec<String> = memory
            .slots
            .keys()
            .filter(|k| *k == name || scope.as_ref().is_some_and(|s| k.starts_with(s.as_str())))
            .cloned()
            .collect();
        for k in gone {
            if let Some(Slot::Found(e)) = memory.slots.remove(&k) {
                memory.size = memory.size.saturating_sub(e.weight());
            }
            memory.order.retain(|n| *n != k);
        }
    }

    /// Keeps `slot` for `name`, unless something was forgotten since `generation` was read
    /// (the fetch that made it began before a name became local).
    fn remember(&self, name: &str, slot: Slot, generation: u64) {
        let weight = match &slot {
            Slot::Found(e) => e.weight(),
            Slot::Missing(_) => name.len() + 64,
        };
        if weight > self.budget {
            return;
        }
        let mut memory = self.memory.write().unwrap_or_else(|e| e.into_inner());
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let old = match memory.slots.insert(name.to_owned(), slot) {
            Some(Slot::Found(e)) => e.weight(),
            Some(Slot::Missing(_)) => name.len() + 64,
            None => {
                memory.order.push_back(name.to_owned());
                0
            }
        };
        memory.size = memory.size + weight - old;
        while memory.size > self.budget {
            let Some(victim) = memory.order.pop_front() else {
                break;
            };
            match memory.slots.remove(&victim) {
                Some(Slot::Found(e)) => memory.size = memory.size.saturating_sub(e.weight()),
                Some(Slot::Missing(_)) => {
                    memory.size = memory.size.saturating_sub(victim.len() + 64)
                }
                None => {}
            }
        }
    }

    /// Whether `name` belongs here whatever the uplinks have: a package of that name exists
    /// or was fully unpublished here, or (for a scoped name) its scope has, or had, packages
    /// here. Such a name never takes anything from an uplink.
    pub async fn claimed_locally(state: &AppState, name: &str) -> ApiResult<bool> {
        Ok(state.store.claimed_locally(name).await?)
    }

    /// The proxied packument of `name`, which is not a local package (`epoch`: the local
    /// packument cache's epoch for it, read before that was checked). `None` when no rule
    /// proxies it, it is claimed locally, or no uplink has it; an error when no uplink could
    /// be asked and nothing is cached.
    pub async fn packument(
        &self,
        state: &AppState,
        name: &str,
        base: &str,
        epoch: u64,
    ) -> ApiResult<Option<Arc<Entry>>> {
        // an upper-case scope is no registry's: never proxied (it would dodge the claim check
        // of its lower-case twin)
        if validate_existing_name(name).is_err()
            || scope_of(name).is_some_and(|s| s.chars().any(|c| c.is_ascii_uppercase()))
        {
            return Ok(None);
        }
        let Some(route) = self.route(name) else {
            return Ok(None);
        };
        let now = state.clock.now_ms();
        if let Some(found) = self.remembered(name, base, epoch, now) {
            return self.still_not_local(state, route, name, found).await;
        }
        let _held = self.names.lock(name).await;
        // whoever held the lock before may have fetched it
        let now = state.clock.now_ms();
        if let Some(found) = self.remembered(name, base, epoch, now) {
            return self.still_not_local(state, route, name, found).await;
        }
        self.refresh(state, route, name, base, epoch).await
    }

    /// With a shared database, another instance may have made the name (or its scope) local
    /// since this one cached it: checked before anything remembered is served.
    async fn still_not_local(
        &self,
        state: &AppState,
        route: &Route,
        name: &str,
        found: Option<Arc<Entry>>,
    ) -> ApiResult<Option<Arc<Entry>>> {
        if found.is_some()
            && route.mode != MergeMode::Merge
            && state.store.shared()
            && Self::claimed_locally(state, name).await?
        {
            self.forget(name);
            return Ok(None);
        }
        Ok(found)
    }

    /// What memory says, if it is fresh: `Some(Some(entry))`, `Some(None)` for a name known
    /// missing, `None` to ask.
    fn remembered(
        &self,
        name: &str,
        base: &str,
        epoch: u64,
        now: i64,
    ) -> Option<Option<Arc<Entry>>> {
        let memory = self.memory.read().unwrap_or_else(|e| e.into_inner());
        match memory.slots.get(name)? {
            Slot::Found(e) if e.local_epoch == epoch && e.rendered.base == base => {
                self.is_fresh(e, now).then(|| Some(e.clone()))
            }
            Slot::Missing(m) if m.local_epoch == epoch => {
                let ttl = self
                    .route(name)
                    .and_then(|r| r.proxy.first())
                    .map_or(0, |i| self.configs[*i].negative_maxage.as_ms());
                (now - m.checked_at < ttl).then_some(None)
            }
            _ => None,
        }
    }

    async fn refresh(
        &self,
        state: &AppState,
        route: &Route,
        name: &str,
        base: &str,
        epoch: u64,
    ) -> ApiResult<Option<Arc<Entry>>> {
        let generation = self.generation.load(Ordering::SeqCst);
        // first, always: a local or claimed name never comes from an uplink, whatever is cached
        // (unless the rule merges the two)
        let merges = route.mode == MergeMode::Merge;
        if !merges && Self::claimed_locally(state, name).await? {
            return Ok(None);
        }
        let now = state.clock.now_ms();
        let stored = state.store.cached_packument(name).await?;
        let uplink_of = |s: &CachedPackument| self.configs.iter().position(|c| c.name == s.uplink);
        // another instance may have refreshed it
        if let Some(s) = &stored
            && s.status == 200
            && let Some(i) = uplink_of(s)
            && route.proxy.contains(&i)
            && now - s.checked_at < self.configs[i].maxage.as_ms()
        {
            return self
                .entry_from_row(state, route, s, i, base, epoch, false, generation)
                .await;
        }
        // the uplinks in order; an uplink that fails stops the search (a later one must not
        // answer for a name the failing one may have)
        let mut failure: Option<(StatusCode, String)> = None;
        for &i in &route.proxy {
            let client = &self.clients[i];
            let cfg = &self.configs[i];
            if let Some(why) = self.skipped(state, i, now).await? {
                failure = Some((StatusCode::SERVICE_UNAVAILABLE, why));
                break;
            }
            let etag = stored
                .as_ref()
                .filter(|s| s.uplink == cfg.name && s.status == 200)
                .and_then(|s| s.etag.clone());
            match client.packument(name, etag.as_deref()).await {
                Ok(Fetched::NotModified) => {
                    self.answered(state, i).await;
                    let Some(s) = stored.as_ref() else {
                        continue;
                    };
                    state.store.touch_cached_packument(name, now).await?;
                    let mut s = s.clone();
                    s.checked_at = now;
                    return self
                        .entry_from_row(state, route, &s, i, base, epoch, false, generation)
                        .await;
                }
                Ok(Fetched::Body(body, etag)) => {
                    self.answered(state, i).await;
                    match proxied::build(name, &body, &cfg.name, base, &route.quarantine, now) {
                        Ok(p) => {
                            let row = CachedPackument {
                                name: name.to_owned(),
                                uplink: cfg.name.clone(),
                                status: 200,
                                etag,
                                body: gzip(&body),
                                fetched_at: now,
                                checked_at: now,
                            };
                            state.store.put_cached_packument(&row).await?;
                            // a publish may have taken the name meanwhile: it wins, and the
                            // copy just stored goes
                            if !merges && Self::claimed_locally(state, name).await? {
                                state.store.forget_cached_packument(name).await?;
                                return Ok(None);
                            }
                            let entry = self
                                .entry(state, name, i, p, now, epoch, generation)
                                .await?;
                            return Ok(Some(entry));
                        }
                        // the first uplink that knows the package decides: it is gone
                        Err(proxied::Unusable::Unpublished) => break,
                        Err(proxied::Unusable::Bad(why)) => {
                            let msg = format!("sent an unusable packument for {name}: {why}");
                            self.failed(state, i, &msg, false).await;
                            failure =
                                Some((StatusCode::BAD_GATEWAY, format!("{} {msg}", cfg.name)));
                            break;
                        }
                    }
                }
                Ok(Fetched::NotFound) => {
                    self.answered(state, i).await;
                }
                Err(e) => {
                    self.failed(state, i, &e.message, e.unwell).await;
                    failure = Some((
                        StatusCode::BAD_GATEWAY,
                        format!("{} {}", cfg.name, e.message),
                    ));
                    break;
                }
            }
        }
        let Some((status, why)) = failure else {
            // no uplink has it: remembered briefly, in memory only (random names write no
            // rows); a copy cached before is marked gone
            if stored.as_ref().is_some_and(|s| s.status == 200) {
                state
                    .store
                    .put_cached_packument(&CachedPackument {
                        name: name.to_owned(),
                        uplink: self.configs[route.proxy[0]].name.clone(),
                        status: 404,
                        etag: None,
                        body: Vec::new(),
                        fetched_at: now,
                        checked_at: now,
                    })
                    .await?;
            }
            self.remember(
                name,
                Slot::Missing(Missing {
                    checked_at: now,
                    local_epoch: epoch,
                }),
                generation,
            );
            return Ok(None);
        };
        // stale if error: the last good copy, marked stale and retried shortly
        if let Some(s) = stored.as_ref().filter(|s| s.status == 200)
            && let Some(i) = uplink_of(s)
            && route.proxy.contains(&i)
        {
            tracing::warn!(package = name, failure = %why, "serving a stale packument");
            return self
                .entry_from_row(state, route, s, i, base, epoch, true, generation)
                .await;
        }
        let message =
            format!("{name} could not be fetched from its uplink and is not cached: {why}");
        tracing::warn!(package = name, "{message}");
        Err(ApiError::new(status, message))
    }

    #[allow(clippy::too_many_arguments)]
    async fn entry_from_row(
        &self,
        state: &AppState,
        route: &Route,
        s: &CachedPackument,
        i: usize,
        base: &str,
        epoch: u64,
        stale: bool,
        generation: u64,
    ) -> ApiResult<Option<Arc<Entry>>> {
        let now = state.clock.now_ms();
        if s.status != 200 {
            self.remember(
                &s.name,
                Slot::Missing(Missing {
                    checked_at: s.checked_at,
                    local_epoch: epoch,
                }),
                generation,
            );
            return Ok(None);
        }
        let body = gunzip(&s.body).map_err(|e| {
            ApiError::internal(format!(
                "the cached packument of {} is corrupt: {e}",
                s.name
            ))
        })?;
        let p = proxied::build(&s.name, &body, &s.uplink, base, &route.quarantine, now).map_err(
            |e| {
                ApiError::internal(format!(
                    "the cached packument of {} is unusable: {e}",
                    s.name
                ))
            },
        )?;
        let entry = self
            .entry(state, &s.name, i, p, s.checked_at, epoch, generation)
            .await?;
        if stale {
            entry.stale.store(true, Ordering::Relaxed);
            // retried after a short pause, not on every request
            entry.retry_at.store(now + 2_000, Ordering::Relaxed);
        }
        Ok(Some(entry))
    }

    #[allow(clippy::too_many_arguments)]
    async fn entry(
        &self,
        state: &AppState,
        name: &str,
        i: usize,
        p: proxied::Proxied,
        checked_at: i64,
        epoch: u64,
        generation: u64,
    ) -> ApiResult<Arc<Entry>> {
        let tarballs = state
            .store
            .cached_tarballs(name)
            .await?
            .into_iter()
            .filter(|t| {
                p.dists
                    .get(&t.version)
                    .is_some_and(|d| row_fits(t, self.name_of(i), d))
            })
            .map(|t| {
                (
                    t.version,
                    TarballRef {
                        sha512: t.tarball_sha512,
                        size: t.size,
                    },
                )
            })
            .collect();
        let entry = Arc::new(Entry {
            uplink: i,
            rendered: Arc::new(p.rendered),
            dists: p.dists,
            refused: p.refused,
            tarballs: RwLock::new(tarballs),
            checked_at: AtomicI64::new(checked_at),
            stale: AtomicBool::new(false),
            retry_at: AtomicI64::new(0),
            local_epoch: epoch,
            merges: self.merges(name),
            merged: Default::default(),
        });
        self.remember(name, Slot::Found(entry.clone()), generation);
        Ok(entry)
    }

    /// Why uplink `i` must not be asked at `now`, if it must not: its breaker is open, or it is
    /// half-open (`fail_timeout` passed) and another request is the one probe that checks
    /// whether it is back. `None`: ask it (a request that takes the probe asks too).
    async fn skipped(&self, state: &AppState, i: usize, now: i64) -> ApiResult<Option<String>> {
        let cfg = &self.configs[i];
        let Some(h) = state.store.uplink_health_of(&cfg.name).await? else {
            return Ok(None);
        };
        let last = h.last_error.as_deref().unwrap_or("?");
        if h.down_until > now {
            return Ok(Some(format!(
                "{} is skipped after {} failures in a row (last: {last}) until {}",
                cfg.name,
                h.fails,
                crate::clock::iso8601(h.down_until)
            )));
        }
        if h.fails < i64::from(cfg.max_fails) {
            return Ok(None);
        }
        // half-open: one request (across instances) asks; an answer closes the breaker, a
        // failure opens it again
        let probe = format!("probe:{}", cfg.name);
        let until = now + cfg.timeout.as_ms() + 5_000;
        if state
            .store
            .take_fetch_lease(&probe, &self.instance, until, now)
            .await?
        {
            // The health read above may predate a probe that failed and let go of the lease
            // since (it records the failure first): then the breaker is open again, and this
            // request is not a second probe.
            let reopened = state
                .store
                .uplink_health_of(&cfg.name)
                .await?
                .filter(|h| h.down_until > now);
            if let Some(h) = reopened {
                if let Err(e) = state
                    .store
                    .release_fetch_lease(&probe, &self.instance)
                    .await
                {
                    tracing::warn!(error = %e, "cannot end an uplink probe");
                }
                let last = h.last_error.as_deref().unwrap_or("?");
                return Ok(Some(format!(
                    "{} is skipped after {} failures in a row (last: {last}) until {}",
                    cfg.name,
                    h.fails,
                    crate::clock::iso8601(h.down_until)
                )));
            }
            self.probing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(i);
            return Ok(None);
        }
        Ok(Some(format!(
            "{} is skipped after {} failures in a row (last: {last}) while another request \
             checks whether it is back",
            cfg.name, h.fails
        )))
    }

    /// Ends this instance's half-open probe of uplink `i`, if it holds one.
    async fn probe_done(&self, state: &AppState, i: usize) {
        let held = self
            .probing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&i);
        if held {
            let probe = format!("probe:{}", self.configs[i].name);
            if let Err(e) = state
                .store
                .release_fetch_lease(&probe, &self.instance)
                .await
            {
                tracing::warn!(error = %e, "cannot end an uplink probe");
            }
        }
    }

    async fn answered(&self, state: &AppState, i: usize) {
        let now = state.clock.now_ms();
        if let Err(e) = state
            .store
            .uplink_answered(&self.configs[i].name, now)
            .await
        {
            tracing::warn!(error = %e, "cannot record an uplink's answer");
        }
        // after the breaker is closed: a request in between finds the probe still taken
        self.probe_done(state, i).await;
    }

    /// Logs a failure; one that says the uplink is unwell (a transport error, a timeout, a 5xx)
    /// counts against its breaker, any other (a refusal, a redirect elsewhere, a body too large,
    /// garbage) is an answer: the uplink is up.
    async fn failed(&self, state: &AppState, i: usize, error: &str, unwell: bool) {
        let cfg = &self.configs[i];
        tracing::warn!(uplink = %cfg.name, error, "uplink failed");
        if !unwell {
            self.answered(state, i).await;
            return;
        }
        let now = state.clock.now_ms();
        let recorded = state
            .store
            .uplink_failed(
                &cfg.name,
                error,
                i64::from(cfg.max_fails),
                cfg.fail_timeout.as_ms(),
                now,
            )
            .await;
        // after the breaker is open again: a request in between finds the probe still taken
        self.probe_done(state, i).await;
        match recorded {
            Ok(h) if h.down_until > now && h.fails == i64::from(cfg.max_fails) => {
                tracing::warn!(uplink = %cfg.name, until = %crate::clock::iso8601(h.down_until),
                    "uplink is down: skipped until then");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot record an uplink's failure"),
        }
    }

    /// The tarball of `version` of the proxied package `entry`: from the blob store when it
    /// was fetched before (whatever the uplink's state), else fetched once (across instances),
    /// checked against the packument's integrity, stored and served.
    pub async fn tarball(
        &self,
        state: &AppState,
        name: &str,
        version: &str,
        entry: &Arc<Entry>,
    ) -> ApiResult<Tarball> {
        if let Some(why) = entry.refused.get(version) {
            return Err(ApiError::forbidden(format!(
                "{why} (quarantined by this registry)"
            )));
        }
        let Some(dist) = entry.dists.get(version) else {
            return Err(ApiError::not_found_msg(format!(
                "version not found: {version}"
            )));
        };
        if let Some(t) = self.stored_tarball(state, name, version, entry).await? {
            return Ok(t);
        }
        let key = format!("{name}@{version}");
        let _held = self.files.lock(&key).await;
        let cfg = &self.configs[entry.uplink];
        let lease = format!("tarball:{key}");
        let deadline = tokio::time::Instant::now() + cfg.timeout.as_duration() * 2;
        // the lease is asked for at most once a second (a write); the stored row every 100 ms
        let mut next_try = tokio::time::Instant::now();
        loop {
            if let Some(t) = self.stored_tarball(state, name, version, entry).await? {
                return Ok(t);
            }
            let now = state.clock.now_ms();
            if let Some(h) = state.store.uplink_health_of(&cfg.name).await?
                && h.down_until > now
            {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!(
                        "{key} was never fetched and its uplink {} is down until {} (last error: {})",
                        cfg.name,
                        crate::clock::iso8601(h.down_until),
                        h.last_error.as_deref().unwrap_or("?")
                    ),
                ));
            }
            // one instance fetches at a time; the others wait for its row, and take over if it
            // gives up. A fetch slot is taken first, so that a lease is never held while
            // waiting for one (it could run out, and another instance fetch too).
            if tokio::time::Instant::now() >= next_try {
                next_try = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
                let permit = self
                    .fetches
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| ApiError::internal("the fetch limit was closed"))?;
                // another instance may have stored it while this one waited for a slot
                if let Some(t) = self.stored_tarball(state, name, version, entry).await? {
                    return Ok(t);
                }
                let now = state.clock.now_ms();
                let until = now + cfg.timeout.as_ms() + 5_000;
                if !cfg.cache
                    || state
                        .store
                        .take_fetch_lease(&lease, &self.instance, until, now)
                        .await?
                {
                    if let Some(why) = self.skipped(state, entry.uplink, now).await? {
                        let _ = state
                            .store
                            .release_fetch_lease(&lease, &self.instance)
                            .await;
                        return Err(ApiError::new(
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("{key} was never fetched and {why}"),
                        ));
                    }
                    return self
                        .fetch_detached(state, name, version, dist, entry, lease, permit)
                        .await;
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{key} is being fetched by another instance; try again"),
                ));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Fetches in a task of its own, so that a client going away does not cut a fetch (and its
    /// lease) short; at most [`FETCHES`] at once per instance.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_detached(
        &self,
        state: &AppState,
        name: &str,
        version: &str,
        dist: &UpstreamDist,
        entry: &Arc<Entry>,
        lease: String,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) -> ApiResult<Tarball> {
        let (state, name, version, dist, entry) = (
            state.clone(),
            name.to_owned(),
            version.to_owned(),
            dist.clone(),
            entry.clone(),
        );
        let task = tokio::spawn(async move {
            let up = &state.uplinks;
            let fetched = up
                .fetch_tarball(&state, &name, &version, &dist, &entry)
                .await;
            drop(permit);
            if up.configs[entry.uplink].cache {
                let _ = state.store.release_fetch_lease(&lease, &up.instance).await;
            }
            fetched
        });
        task.await.map_err(ApiError::internal)?
    }

    async fn fetch_tarball(
        &self,
        state: &AppState,
        name: &str,
        version: &str,
        dist: &UpstreamDist,
        entry: &Entry,
    ) -> ApiResult<Tarball> {
        let i = entry.uplink;
        let cfg = &self.configs[i];
        let key = format!("{name}@{version}");
        let url = self.clients[i]
            .tarball_url(&dist.url, name)
            .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, format!("{key}: {e}")))?;
        let bytes = match self.clients[i].tarball(url).await {
            Ok(b) => {
                self.answered(state, i).await;
                b
            }
            Err(e) => {
                self.failed(state, i, &e.message, e.unwell).await;
                return Err(ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "{key} could not be fetched from {}: {}",
                        cfg.name, e.message
                    ),
                ));
            }
        };
        let sha512 = data_encoding::HEXLOWER.encode(&Sha512::digest(&bytes));
        if let Err(why) = check_integrity(&bytes, &sha512, dist) {
            tracing::warn!(uplink = %cfg.name, package = %key, "{why}: nothing stored");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("{key} from {}: {why}; nothing was stored", cfg.name),
            ));
        }
        let size = bytes.len() as i64;
        if cfg.cache {
            state.blobs.put(&sha512, bytes.clone()).await?;
            let raw = data_encoding::HEXLOWER
                .decode(sha512.as_bytes())
                .map_err(ApiError::internal)?;
            state
                .store
                .put_cached_tarball(&CachedTarball {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    uplink: cfg.name.clone(),
                    tarball_sha512: sha512.clone(),
                    integrity: format!("sha512-{}", data_encoding::BASE64.encode(&raw)),
                    size,
                    fetched_at: state.clock.now_ms(),
                })
                .await?;
            entry
                .tarballs
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(
                    version.to_owned(),
                    TarballRef {
                        sha512: sha512.clone(),
                        size,
                    },
                );
        }
        Ok(Tarball {
            body: tessera_store::BlobBody::Whole(bytes),
            size,
            sha512,
        })
    }

    /// The stored tarball of `version`, if one is stored and it is the one the packument
    /// names (a tarball cached from another uplink, or before the uplink changed it, is not).
    /// A proxied tarball already stored here and held in the memory cache: what
    /// [`Uplinks::tarball`] answers first, without a future to await. `None` sends the read
    /// the whole way (which also refuses a quarantined version).
    pub fn cached_tarball(
        &self,
        state: &AppState,
        version: &str,
        entry: &Entry,
    ) -> Option<Tarball> {
        if entry.refused.contains_key(version) {
            return None;
        }
        let dist = entry.dists.get(version)?;
        let tarballs = entry.tarballs.read().unwrap_or_else(|e| e.into_inner());
        let t = tarballs
            .get(version)
            .filter(|t| matches_dist(&t.sha512, dist))?;
        let bytes = state.blobs.cached(&t.sha512)?;
        Some(Tarball {
            body: tessera_store::BlobBody::Whole(bytes),
            size: t.size,
            sha512: t.sha512.clone(),
        })
    }

    async fn stored_tarball(
        &self,
        state: &AppState,
        name: &str,
        version: &str,
        entry: &Entry,
    ) -> ApiResult<Option<Tarball>> {
        let Some(dist) = entry.dists.get(version) else {
            return Ok(None);
        };
        let known = entry
            .tarballs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(version)
            .cloned();
        let t = match known {
            Some(t) => t,
            None => {
                // another instance (or an earlier entry) may have stored it
                let rows = state.store.cached_tarballs(name).await?;
                let uplink = self.name_of(entry.uplink);
                let Some(row) = rows
                    .into_iter()
                    .find(|r| r.version == version && row_fits(r, uplink, dist))
                else {
                    return Ok(None);
                };
                let t = TarballRef {
                    sha512: row.tarball_sha512,
                    size: row.size,
                };
                entry
                    .tarballs
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(version.to_owned(), t.clone());
                t
            }
        };
        if !matches_dist(&t.sha512, dist) {
            return Ok(None);
        }
        Ok(state.blobs.open(&t.sha512).await?.map(|body| Tarball {
            body,
            size: t.size,
            sha512: t.sha512,
        }))
    }

    /// Refuses to create the unscoped local package `name` when an uplink has it and no admin
    /// allowed it (dependency confusion: the local package would shadow the public one), or
    /// when no uplink can be asked.
    pub async fn check_new_name(&self, state: &AppState, name: &str) -> ApiResult<()> {
        if let Some(scope) = scope_of(name) {
            // a scope's first package here takes the whole scope from the uplinks: refused
            // while any rule proxies some name of the scope, not only this name's rule
            if !self.routes.proxies_scope(scope)
                || state.store.claimed_locally(name).await?
                || state.store.allowed_name(scope).await?.is_some()
            {
                return match self.merges(name) {
                    true => self.check_new_merged_name(state, name).await,
                    false => Ok(()),
                };
            }
            return Err(ApiError::conflict(format!(
                "{name} would be the first package of the scope {scope} here: from then on every \
                 {scope} package would be served from here only, never from an uplink. \
                 Keep the scope local with a [[packages]] rule for \"{scope}/*\" without proxy, \
                 before any rule that proxies it, or ask an admin to allow the scope \
                 (tessera admin allow-name {scope})."
            )));
        }
        if self.merges(name) {
            return self.check_new_merged_name(state, name).await;
        }
        if self.route(name).is_none() {
            return Ok(());
        }
        if state.store.allowed_name(name).await?.is_some() {
            return Ok(());
        }
        let base = self.check_base(state, name);
        // an epoch no read has: what this check fetches is never served from memory as if the
        // name were known not to be local
        match self.packument(state, name, &base, u64::MAX).await {
            Ok(None) => Ok(()),
            Ok(Some(e)) => Err(ApiError::conflict(format!(
                "{name} exists on the uplink {}: a package of that name published here would \
                 shadow it for everyone installing through this registry (dependency confusion). \
                 Publish it under a scope, or ask an admin to allow the name (tessera admin \
                 allow-name {name}).",
                self.name_of(e.uplink)
            ))),
            Err(e) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "cannot check whether {name} exists upstream, so it cannot be created yet: {}",
                    e.message
                ),
            )),
        }
    }

    /// A merge rule's name is meant to exist in both places: its first package here must be a
    /// fork of one an uplink has. A new private package under a merge rule would take whatever
    /// is published upstream under its name later (dependency confusion), so it is refused
    /// unless an admin allowed the name.
    async fn check_new_merged_name(&self, state: &AppState, name: &str) -> ApiResult<()> {
        if state.store.allowed_name(name).await?.is_some() {
            return Ok(());
        }
        if let Some(scope) = scope_of(name)
            && state.store.allowed_name(scope).await?.is_some()
        {
            return Ok(());
        }
        let base = self.check_base(state, name);
        match self.packument(state, name, &base, u64::MAX).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ApiError::conflict(format!(
                "{name} is covered by a merge rule, but no uplink has it: a new package here \
                 would take any version published upstream under its name later (dependency \
                 confusion). Publish it under a name no merge rule covers, or ask an admin to \
                 allow it (tessera admin allow-name {name})."
            ))),
            Err(e) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "cannot check whether {name} exists upstream, so it cannot be created yet: {}",
                    e.message
                ),
            )),
        }
    }

    /// Refuses to publish here a version number that the uplink has, for a name a merge rule
    /// covers: one number would name two tarballs (npm 11 refuses it itself, from the merged
    /// packument; older clients do not). When the uplink cannot be asked the publish goes on:
    /// the local version wins if the uplink has the number too.
    pub async fn check_merged_version(
        &self,
        state: &AppState,
        name: &str,
        version: &str,
    ) -> ApiResult<()> {
        if !self.merges(name) {
            return Ok(());
        }
        let base = self.check_base(state, name);
        match self.packument(state, name, &base, u64::MAX).await {
            Ok(Some(e)) if e.dists.contains_key(version) || e.refused.contains_key(version) => {
                Err(ApiError::conflict(format!(
                    "You cannot publish over the previously published versions: {version} \
                     ({name}@{version} exists on the uplink {}, merged with this package).",
                    self.name_of(e.uplink)
                )))
            }
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::warn!(package = name, version, error = %e.message,
                    "cannot check a merged package's uplink for the version published");
                Ok(())
            }
        }
    }

    /// The base URL for a check's fetch (links in it are never served from it).
    fn check_base(&self, state: &AppState, name: &str) -> String {
        self.base_in_memory(name).unwrap_or_else(|| {
            state
                .config
                .public_url
                .clone()
                .unwrap_or_else(|| "http://localhost".into())
                .trim_end_matches('/')
                .to_owned()
        })
    }

    fn base_in_memory(&self, name: &str) -> Option<String> {
        let memory = self.memory.read().unwrap_or_else(|e| e.into_inner());
        match memory.slots.get(name)? {
            Slot::Found(e) => Some(e.rendered.base.clone()),
            Slot::Missing(_) => None,
        }
    }

    /// After a publish to the existing unscoped local package `name`: logs a warning (and a
    /// security-log event) when an uplink has a package of the same name.
    pub fn watch_local_name(&self, state: &AppState, name: &str, user: tessera_store::UserId) {
        if scope_of(name).is_some() {
            return;
        }
        let Some(route) = self.route(name).filter(|r| r.mode != MergeMode::Merge) else {
            return;
        };
        let first = route.proxy[0];
        let (state, name) = (state.clone(), name.to_owned());
        tokio::spawn(async move {
            let up = &state.uplinks;
            if let Ok(Fetched::Body(..)) = up.clients[first].packument(&name, None).await {
                let uplink = up.name_of(first).to_owned();
                tracing::warn!(package = %name, uplink = %uplink,
                    "a local package's name also exists upstream; it is served from here only");
                crate::services::security_log::record_from(
                    &state,
                    user,
                    "-",
                    "tessera",
                    crate::services::security_log::kind::LOCAL_NAME_UPSTREAM,
                    format!("{name} also exists on the uplink {uplink}; served from here only"),
                )
                .await;
            }
        });
    }

    /// The signing keys of every uplink a rule proxies to, so that `npm audit signatures`
    /// verifies the `dist.signatures` proxied packages keep: fetched at most every ten
    /// minutes per uplink, the last good answer kept while an uplink cannot be asked.
    pub async fn upstream_keys(&self, state: &AppState) -> Vec<serde_json::Value> {
        let now = state.clock.now_ms();
        // the stale ones are fetched outside the lock; meanwhile other requests serve the last
        // keys, and the next try is in a minute if this one fails
        let stale: Vec<usize> = {
            let mut cache = self.keys.lock().await;
            (0..self.clients.len())
                .filter(|&i| self.routes.proxies_to(i))
                .filter(|i| {
                    let fresh = cache
                        .get(i)
                        .is_some_and(|(at, _)| now - at < KEYS_MAXAGE_MS);
                    if !fresh {
                        let old = cache.remove(i).map(|(_, k)| k).unwrap_or_default();
                        cache.insert(*i, (now - KEYS_MAXAGE_MS + 60_000, old));
                    }
                    !fresh
                })
                .collect()
        };
        let fetched = futures::future::join_all(stale.into_iter().map(|i| async move {
            (
                i,
                tokio::time::timeout(KEYS_TIMEOUT, self.clients[i].keys()).await,
            )
        }))
        .await;
        let mut cache = self.keys.lock().await;
        for (i, got) in fetched {
            match got {
                Ok(Ok(keys)) => {
                    cache.insert(i, (now, keys));
                }
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e,
                        _ => "timed out".into(),
                    };
                    tracing::warn!(uplink = %self.configs[i].name, error = %why,
                        "cannot fetch the uplink's signing keys");
                }
            }
        }
        let lists: Vec<&[serde_json::Value]> = (0..self.clients.len())
            .filter(|&i| self.routes.proxies_to(i))
            .filter_map(|i| cache.get(&i).map(|(_, k)| k.as_slice()))
            .collect();
        merge_uplink_keys(&lists)
    }

    /// The attestations document of a proxied version, from the uplink its packument came from
    /// (`None`: the name is not proxied, the version is not one it serves, or the uplink has
    /// no attestations for it). Only versions the proxied packument lists (quarantined ones
    /// left out) are asked for, so a caller cannot make the registry ask its uplinks anything
    /// else.
    pub async fn proxied_attestations(
        &self,
        state: &AppState,
        name: &str,
        version: &str,
        base: &str,
    ) -> ApiResult<Option<Bytes>> {
        let (_, epoch) = state.packuments.get(name, base);
        let Some(entry) = self.packument(state, name, base, epoch).await? else {
            return Ok(None);
        };
        if !entry.dists.contains_key(version) {
            return Ok(None);
        }
        self.attestations_from(&[entry.uplink], name, version).await
    }

    /// The attestations document of a merge-rule package's upstream version, from the first
    /// uplink of its rule that has one.
    pub async fn merged_attestations(&self, name: &str, version: &str) -> ApiResult<Option<Bytes>> {
        let Some(route) = self.routes.proxied(name) else {
            return Ok(None);
        };
        self.attestations_from(&route.proxy, name, version).await
    }

    async fn attestations_from(
        &self,
        uplinks: &[usize],
        name: &str,
        version: &str,
    ) -> ApiResult<Option<Bytes>> {
        let mut failed = None;
        for &i in uplinks {
            match tokio::time::timeout(
                KEYS_TIMEOUT * 2,
                self.clients[i].attestations(name, version),
            )
            .await
            {
                Ok(Ok(Some(body))) => return Ok(Some(body)),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => failed = Some(e),
                Err(_) => failed = Some("timed out".into()),
            }
        }
        match failed {
            Some(e) => Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                format!("The uplink's attestations for {name}@{version} cannot be fetched: {e}"),
            )),
            None => Ok(None),
        }
    }

    /// The uplink `npm audit` goes to (its index and client): the first one allowed to serve
    /// audits.
    pub fn audit_uplink(&self) -> Option<(usize, &UplinkClient)> {
        self.configs
            .iter()
            .position(|c| c.audit)
            .map(|i| (i, &self.clients[i]))
    }
}

/// The uplinks' key lists as one: a key id listed twice with the same key once, and a key id
/// two uplinks claim with different keys not at all (neither can be trusted to speak for it).
pub fn merge_uplink_keys(lists: &[&[serde_json::Value]]) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = Vec::new();
    let mut disputed = std::collections::HashSet::new();
    for k in lists.iter().flat_map(|l| l.iter()) {
        match out.iter().find(|o| o["keyid"] == k["keyid"]) {
            Some(o) if o["key"] != k["key"] => {
                disputed.insert(k["keyid"].to_string());
            }
            Some(_) => {}
            None => out.push(k.clone()),
        }
    }
    out.retain(|k| !disputed.contains(&k["keyid"].to_string()));
    out
}

/// Removes the cached packages no read revalidated since `before` (`tessera admin cache
/// prune`): their packuments, their tarball rows, and the tarballs nothing else uses (deleted,
/// then re-checked, so that a racing publish or fetch of the same bytes gets its blob back).
/// Returns the packuments, tarball rows and tarballs removed.
pub async fn prune_cache(state: &AppState, before: i64) -> ApiResult<(i64, usize, usize)> {
    let (packuments, shas) = state.store.prune_cache(before).await?;
    let rows = shas.len();
    let mut unused = Vec::new();
    for sha in shas {
        if !state.store.blob_in_use(&sha).await? && !unused.contains(&sha) {
            unused.push(sha);
        }
    }
    let deleted = unused.len();
    crate::api::packages::unpublish::collect_blobs(state, unused).await;
    Ok((packuments, rows, deleted))
}

/// Whether a cached tarball row may serve `dist` of `uplink`: checked against its SHA-512 when
/// the packument has one, else (SHA-1 only) only when the same uplink's packument led to it, as
/// the row's bytes were checked against that uplink's `shasum` and not this one.
fn row_fits(row: &CachedTarball, uplink: &str, dist: &UpstreamDist) -> bool {
    dist.sha512_is(&row.tarball_sha512)
        .unwrap_or(row.uplink == uplink)
}

/// Whether a stored tarball's SHA-512 is the one `dist` asks for (when it names one).
fn matches_dist(sha512_hex: &str, dist: &UpstreamDist) -> bool {
    dist.sha512_is(sha512_hex).unwrap_or(true)
}

/// Checks fetched bytes against the packument's `dist.integrity` (SHA-512) or, for old
/// packages that only have one, `dist.shasum` (SHA-1). A `sha512-` entry that cannot be read
/// is a refusal, not a fall back to SHA-1.
pub fn check_integrity(bytes: &[u8], sha512_hex: &str, dist: &UpstreamDist) -> Result<(), String> {
    if dist.sha512_unreadable() {
        return Err("dist.integrity has a SHA-512 that cannot be read".into());
    }
    if let Some(same) = dist.sha512_is(sha512_hex) {
        return if same {
            Ok(())
        } else {
            Err("the tarball does not match dist.integrity".into())
        };
    }
    if let Some(want) = &dist.shasum {
        let got = data_encoding::HEXLOWER.encode(&sha1::Sha1::digest(bytes));
        return if want.eq_ignore_ascii_case(&got) {
            Ok(())
        } else {
            Err("the tarball does not match dist.shasum".into())
        };
    }
    Err("the packument gives no SHA-512 or SHA-1 to check the tarball against".into())
}

fn gzip(body: &Bytes) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(body);
    e.finish().unwrap_or_default()
}

/// A cached packument's JSON (the store keeps it gzipped).
pub fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_id_two_uplinks_claim_with_different_keys_is_dropped() {
        let k = |id: &str, key: &str| serde_json::json!({"keyid": id, "key": key});
        let a = [k("A", "1"), k("S", "same"), k("X", "a's")];
        let b = [k("B", "2"), k("S", "same"), k("X", "b's")];
        let ids: Vec<String> = merge_uplink_keys(&[&a, &b])
            .iter()
            .map(|k| k["keyid"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["A", "S", "B"]);
    }

    #[test]
    fn integrity_is_checked_by_sha512_then_sha1() {
        let bytes = b"tarball bytes";
        let sha512 = data_encoding::HEXLOWER.encode(&Sha512::digest(bytes));
        let sri = format!(
            "sha512-{}",
            data_encoding::BASE64.encode(&Sha512::digest(bytes))
        );
        let sha1 = data_encoding::HEXLOWER.encode(&sha1::Sha1::digest(bytes));
        let d = |i: Option<&str>, s: Option<&str>| {
            UpstreamDist::new("x".into(), i.map(str::to_owned), s.map(str::to_owned))
        };
        assert!(check_integrity(bytes, &sha512, &d(Some(&sri), None)).is_ok());
        assert!(check_integrity(b"other", &"0".repeat(128), &d(Some(&sri), None)).is_err());
        // a SHA-512 that does not match is not saved by a matching SHA-1
        assert!(check_integrity(b"other", &"0".repeat(128), &d(Some(&sri), Some(&sha1))).is_err());
        assert!(check_integrity(bytes, &sha512, &d(None, Some(&sha1.to_uppercase()))).is_ok());
        assert!(check_integrity(bytes, &sha512, &d(Some("sha1-xyz"), Some("00"))).is_err());
        assert!(check_integrity(bytes, &sha512, &d(None, None)).is_err());

        // a cached row serves another uplink's packument only by SHA-512
        let row = CachedTarball {
            name: "p".into(),
            version: "1.0.0".into(),
            uplink: "a".into(),
            tarball_sha512: sha512.clone(),
            integrity: sri.clone(),
            size: 13,
            fetched_at: 0,
        };
        assert!(row_fits(&row, "b", &d(Some(&sri), None)));
        assert!(!row_fits(
            &row,
            "a",
            &d(Some(&format!("sha512-{}", "A".repeat(86) + "==")), None)
        ));
        assert!(row_fits(&row, "a", &d(None, Some(&sha1))));
        assert!(!row_fits(&row, "b", &d(None, Some(&sha1))));
    }

    #[test]
    fn stored_packuments_round_trip_through_gzip() {
        let body = Bytes::from_static(br#"{"name":"a"}"#);
        assert_eq!(gunzip(&gzip(&body)).unwrap(), body.to_vec());
        assert!(gunzip(b"not gzip").is_err());
    }
}
