//! The state every handler shares.

use std::ops::Deref;
use std::sync::Arc;

use tessera_store::{BlobStore, Store};

use crate::authz::policy::PolicyCache;
use crate::clock::Clock;
use crate::config::Config;
use crate::npm::packument_cache::PackumentCache;
use crate::two_factor::sealing::Keys;

/// Shared, cheaply clonable application state.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// What [`AppState`] holds.
pub struct Inner {
    pub store: Arc<dyn Store>,
    pub blobs: BlobStore,
    pub config: Config,
    pub clock: Clock,
    /// Rendered packuments.
    pub packuments: PackumentCache,
    /// One rendering per package at a time: concurrent misses wait for the first.
    pub renders: crate::coalesce::Locks,
    /// Keys sealing TOTP secrets.
    pub keys: Keys,
    /// The registry-wide 2FA policy, as last read.
    pub policy_cache: PolicyCache,
    /// Rows unauthenticated requests may create, per address.
    pub anonymous_rows: crate::authn::address_budget::AddressBudget,
    /// Trusted-publishing issuers' keys, as last fetched.
    pub oidc_keys: crate::trust::identity::IssuerKeys,
    /// Upstream registries and what this instance holds of their packages.
    pub uplinks: crate::uplinks::Uplinks,
    /// The registry's signing key, as last read.
    pub signer: crate::signing::Signer,
    /// Verifies provenance bundles (`None`: the configured trust root is unusable, and
    /// bundles are refused).
    pub provenance: Option<crate::provenance::ProvenanceVerifier>,
    /// Where publish attestations are logged (`provenance.transparency_log`), if anywhere.
    pub transparency_log: Option<crate::publish_attestation::TransparencyLog>,
}

impl AppState {
    /// Builds the state.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: BlobStore,
        config: Config,
        clock: Clock,
        keys: Keys,
    ) -> Self {
        let packuments = PackumentCache::with_budget(config.packument_cache_bytes());
        let uplinks = crate::uplinks::Uplinks::new(&config).unwrap_or_else(|e| {
            tracing::error!(error = %e, "the uplinks cannot be used");
            crate::uplinks::Uplinks::none()
        });
        let transparency_log = config
            .provenance
            .transparency_log
            .as_deref()
            .map(crate::publish_attestation::TransparencyLog::new);
        let provenance =
            crate::provenance::ProvenanceVerifier::load(&config.provenance.trusted_root)
                .map_err(|e| tracing::error!(error = %e, "provenance cannot be verified"))
                .ok();
        AppState(Arc::new(Inner {
            store,
            blobs,
            config,
            clock,
            packuments,
            renders: Default::default(),
            keys,
            policy_cache: PolicyCache::default(),
            anonymous_rows: Default::default(),
            oidc_keys: Default::default(),
            uplinks,
            signer: Default::default(),
            transparency_log,
            provenance,
        }))
    }
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
