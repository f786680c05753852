//! tessera's persistence.
//!
//! The server talks to narrow async traits ([`UserStore`], [`TokenStore`], [`PackageStore`],
//! together [`Store`]) and to a [`BlobStore`] for tarballs. Nothing above this crate knows
//! which database is underneath. The SQL lives once in `sql/`, instantiated per backend:
//! [`SqliteStore`] (embedded) and [`PgStore`] (scale-out).

mod auth_cache;
mod blobs;
mod error;
mod migrations;
mod model;
mod postgres;
mod sql;
mod sqlite;
mod sqlite_reads;
mod traits;
pub mod transfer;

pub use blobs::{BlobBody, BlobStore, S3Options, file_chunks};
pub use error::{StoreError, StoreResult};
pub use migrations::Migrate;
pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use traits::{
    PackageStore, SecurityKeyStore, SecurityLog, SettingsStore, SigningStore, StagingStore, Store,
    TokenStore, TrustStore, TwoFactorStore, UplinkStore, UserStore, WebStore,
};
