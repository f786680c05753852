//! tessera's HTTP server: the npm registry API, the website, and the 2FA rules they share.
//!
//! The map, by concern:
//! - `http`: plumbing: the one error type that renders npm's JSON, body extraction, the access
//!   log, `npm-notice` headers.
//! - `authn`: who is calling: credentials (token, Basic, website session), password and token
//!   hashing, failure throttles, npm's browser login handshakes.
//! - `authz`: what the caller may do: the 2FA gate, granular token reach, registry policy.
//! - `two_factor`: enrolment, the one verification of a code, sealing of TOTP secrets.
//! - `services`: account operations shared by the npm API, the website and the admin CLI.
//! - `npm`: npm's formats: names, versions, tarballs, packuments and their cache.
//! - `signing`, `provenance`: registry signatures, and the Sigstore bundles checked at publish.
//! - `api`: the npm API routes (`account/`, `packages/`); `web`: the website.
//! - `config`, `state`, `clock`: configuration, shared state, time.

pub(crate) mod api;
pub mod authn;
pub mod authz;
pub mod clock;
pub mod coalesce;
pub mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod http;
pub mod machine;
pub mod npm;
pub mod provenance;
pub mod publish_attestation;
pub mod services;
pub mod signing;
pub mod state;
pub mod trust;
pub mod two_factor;
pub mod uplinks;
pub(crate) mod web;

use std::sync::Arc;

use axum::Router;

use tessera_store::{BlobStore, Migrate, PgStore, S3Options, SqliteStore, Store};

pub use clock::Clock;
pub use config::Config;
pub use state::AppState;

/// The whole HTTP application.
pub fn app(state: AppState) -> Router {
    api::router(state)
        .layer(axum::middleware::from_fn(http::notice::layer))
        .layer(axum::middleware::from_fn(http::access_log::log))
}

/// Opens the configured store: SQLite or PostgreSQL (`database`), and the tarball folder or S3
/// (`storage`). `migrate` overrides the configured migration mode.
pub async fn open_stores(
    config: &Config,
    migrate: Option<Migrate>,
) -> anyhow_like::Result<(Arc<dyn Store>, BlobStore)> {
    let err = |e: &dyn std::fmt::Display| anyhow_like::Error(e.to_string());
    let migrate = migrate.unwrap_or(match config.migrate {
        config::MigrateMode::Auto => Migrate::Apply,
        config::MigrateMode::Manual => Migrate::Check,
    });
    let needs_dir = config.database.is_none() || config.storage.is_none();
    if needs_dir {
        std::fs::create_dir_all(&config.data).map_err(|e| {
            anyhow_like::Error(format!(
                "cannot create data directory {}: {e}",
                config.data.display()
            ))
        })?;
    }
    let store: Arc<dyn Store> = match &config.database {
        None => Arc::new(
            SqliteStore::open_with(&config.database_path(), migrate)
                .await
                .map_err(|e| err(&e))?,
        ),
        Some(url) => Arc::new(
            PgStore::open(url, config.database_max_connections, migrate)
                .await
                .map_err(|e| {
                    anyhow_like::Error(format!(
                        "cannot open the database {}: {e}",
                        config::redact_url(url)
                    ))
                })?,
        ),
    };
    let blobs = match &config.storage {
        None => BlobStore::local(&config.tarball_dir()).map_err(|e| err(&e))?,
        Some(url) => {
            let (bucket, prefix) = config::parse_s3_url(url)
                .ok_or_else(|| anyhow_like::Error(format!("invalid storage URL {url:?}")))?;
            let s3 = &config.s3;
            let some = |v: &str| (!v.is_empty()).then(|| v.to_owned());
            BlobStore::s3(&S3Options {
                bucket,
                prefix,
                endpoint: some(&s3.endpoint),
                region: some(&s3.region),
                access_key_id: some(&s3.access_key_id),
                secret_access_key: some(&s3.secret_access_key),
                allow_http: s3.allow_http,
            })
            .map_err(|e| anyhow_like::Error(format!("cannot open the storage {url}: {e}")))?
        }
    };
    Ok((store, blobs.with_hot_budget(config.tarball_cache_mb << 20)))
}

/// Builds the application state from the configuration and the process environment
/// (`TESSERA_SECRET_KEY`, and the test clock hooks `TESSERA_TEST_CLOCK_OFFSET_MS` and
/// `TESSERA_TEST_CLOCK_FILE`).
pub async fn open_state(config: Config) -> anyhow_like::Result<AppState> {
    two_factor::security_keys::attestation_roots(&config).map_err(anyhow_like::Error)?;
    provenance::ProvenanceVerifier::load(&config.provenance.trusted_root)
        .map_err(anyhow_like::Error)?;
    let (store, blobs) = open_stores(&config, None).await?;
    let key_env = std::env::var("TESSERA_SECRET_KEY").ok();
    let keys = two_factor::sealing::Keys::load(&config.data, key_env.as_deref(), store.shared())
        .map_err(|e| anyhow_like::Error(e.to_string()))?;
    let hooks = ["TESSERA_TEST_CLOCK_FILE", "TESSERA_TEST_CLOCK_OFFSET_MS"];
    if hooks.iter().any(|h| std::env::var_os(h).is_some()) {
        tracing::warn!(
            "a test clock hook is set ({}): the server's clock is shifted; never do this in production",
            hooks.join(" or ")
        );
    }
    let clock = if let Ok(f) = std::env::var("TESSERA_TEST_CLOCK_FILE") {
        Clock::with_offset_file(f.into())
    } else if let Ok(v) = std::env::var("TESSERA_TEST_CLOCK_OFFSET_MS") {
        Clock::with_offset(v.parse().map_err(|_| {
            anyhow_like::Error("TESSERA_TEST_CLOCK_OFFSET_MS must be an integer".into())
        })?)
    } else {
        Clock::system()
    };
    uplinks::Uplinks::new(&config).map_err(anyhow_like::Error)?;
    signing::Signer::ensure_key(store.as_ref(), &keys, clock.now_ms())
        .await
        .map_err(|e| anyhow_like::Error(format!("the registry signing key: {}", e.message)))?;
    Ok(AppState::new(store, blobs, config, clock, keys))
}

/// Serves `state` on `listeners` (from [`http::listener::bind`]) until `shutdown` resolves,
/// each serving thread running `upkeep` if any.
pub async fn serve(
    listeners: Vec<std::net::TcpListener>,
    state: AppState,
    upkeep: Option<http::listener::Upkeep>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // versions published before the registry had a key are signed in the background
    let s = state.clone();
    tokio::spawn(async move {
        let now = s.clock.now_ms();
        match signing::sign_all(&s, now).await {
            Ok(r) if r.signed == 0 => {}
            Ok(r) => tracing::info!(
                versions = r.signed,
                "signed the versions without a valid signature"
            ),
            Err(e) => tracing::error!(error = %e.message, "cannot sign the unsigned versions"),
        }
    });
    // publish attestations the log could not take at publish, at start and then on a timer
    publish_attestation::spawn_passes(&state);
    // Token lookups and rendered packuments are cached per process; changes made by another
    // process (`tessera admin`, another instance) bump shared counters, polled here.
    let poll = state.clone();
    tokio::spawn(async move {
        let (mut last, mut last_packuments) = (None, None);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tick.tick().await;
            match poll.store.auth_epoch().await {
                Ok(v) => {
                    if last.is_some_and(|l| l != v) {
                        poll.store.forget_cached_auth();
                    }
                    last = Some(v);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the auth epoch"),
            }
            match poll.store.packument_epoch().await {
                Ok(v) => {
                    if last_packuments.is_some_and(|l| l != v) {
                        poll.packuments.clear();
                    }
                    last_packuments = Some(v);
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the packument epoch"),
            }
        }
    });
    // Expired sessions and handshakes go on a timer, not on a visitor's request.
    let prune = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(prune.config.web.prune_every.as_duration());
        loop {
            tick.tick().await;
            let now = prune.clock.now_ms();
            let idle = prune.config.web.session_idle.as_ms();
            let max = prune.config.web.session_max.as_ms();
            match prune.store.prune_sessions(now - idle, now - max).await {
                Ok(n) if n > 0 => tracing::debug!(sessions = n, "pruned expired sessions"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot prune expired sessions"),
            }
        }
    });
    // large bodies are kept in unnamed files beside the data, and sent with `sendfile`, within
    // the descriptors left beside the connections' (and the database's, the listeners')
    http::sendable::keep_in(
        &state.config.data,
        state.config.connections.max_connections + 256,
        state.config.connections.sendfile,
    );
    let limits = state.config.connections.clone();
    http::listener::serve(
        listeners,
        http::entry::Entry::new(state),
        &limits,
        upkeep,
        shutdown,
    )
    .await
}

/// A minimal error type for start-up failures, so this crate needs no `anyhow`.
pub mod anyhow_like {
    /// A start-up error with its message.
    #[derive(Debug)]
    pub struct Error(pub String);
    impl std::fmt::Display for Error {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Error {}
    /// Result alias.
    pub type Result<T> = std::result::Result<T, Error>;
}
