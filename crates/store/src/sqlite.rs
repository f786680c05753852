//! The embedded backend: SQLite in WAL mode, one file in the data directory.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::StoreResult;
use crate::auth_cache::AuthCache;
use crate::sql::{
    packages::impl_package_store, tokens::impl_token_store, two_factor::impl_two_factor_store,
    users::impl_user_store, web::impl_web_store,
};

/// The SQLite store.
///
/// SQLite allows one writer at a time. Write transactions take an in-process lock first, so
/// they queue in order instead of failing with `SQLITE_BUSY` when a deferred transaction tries
/// to upgrade its read lock.
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    write_lock: Mutex<()>,
    pub(crate) auth_cache: AuthCache,
}

/// A write transaction and the lock that serialises it.
pub(crate) struct WriteTx<'a> {
    pub(crate) tx: Transaction<'static, Sqlite>,
    _guard: MutexGuard<'a, ()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Self::connect(opts).await
    }

    /// Opens a private in-memory database (for unit tests).
    pub async fn in_memory() -> StoreResult<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts)
            .await?;
        Self::with_pool(pool).await
    }

    async fn connect(opts: SqliteConnectOptions) -> StoreResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(opts)
            .await?;
        Self::with_pool(pool).await
    }

    async fn with_pool(pool: SqlitePool) -> StoreResult<Self> {
        crate::migrations::sqlite().run(&pool).await?;
        Ok(SqliteStore {
            pool,
            write_lock: Mutex::new(()),
            auth_cache: AuthCache::default(),
        })
    }

    pub(crate) async fn begin_write(&self) -> StoreResult<WriteTx<'_>> {
        let guard = self.write_lock.lock().await;
        let tx = self.pool.begin().await?;
        Ok(WriteTx { tx, _guard: guard })
    }

    /// Serialises attempt reservations. SQLite has one writer, and every write transaction here
    /// already holds the write lock, so there is nothing more to lock.
    pub(crate) async fn lock_attempts(
        &self,
        _w: &mut WriteTx<'_>,
        _kind: crate::FailureKind,
        _user: Option<crate::UserId>,
        _ip: &str,
    ) -> StoreResult<()> {
        Ok(())
    }

    /// Called after every write that changes what a token grants.
    pub(crate) fn auth_changed(&self) {
        self.auth_cache.invalidate();
    }

    pub(crate) async fn begin_read(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin().await?)
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_user_store!(SqliteStore, sqlx::Sqlite);
impl_token_store!(SqliteStore, sqlx::Sqlite);
impl_package_store!(SqliteStore, sqlx::Sqlite);
impl_two_factor_store!(SqliteStore, sqlx::Sqlite);
impl_web_store!(SqliteStore, sqlx::Sqlite);
