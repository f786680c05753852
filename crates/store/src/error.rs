//! The store's error type.

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique name is already taken (user, package).
    #[error("already exists")]
    Conflict,
    /// The row to change does not exist.
    #[error("not found")]
    NotFound,
    /// A precondition checked inside the transaction no longer holds.
    #[error("{0}")]
    Precondition(&'static str),
    /// The version was published before (and perhaps unpublished since).
    #[error("version already published")]
    VersionExists,
    /// The caller does not maintain the package.
    #[error("not a maintainer")]
    NotMaintainer,
    /// A database failure.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A database failure in a read on the calling thread (the embedded backend's direct reads).
    #[error("database error: {0}")]
    DirectRead(#[from] rusqlite::Error),
    /// A migration failure.
    #[error("migration error: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database schema does not match this version of tessera.
    #[error("{0}")]
    Schema(String),
    /// A blob store failure.
    #[error("blob store error: {0}")]
    Blob(#[from] object_store::Error),
    /// Stored data that cannot be decoded.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Result alias for store calls.
pub type StoreResult<T> = Result<T, StoreError>;
