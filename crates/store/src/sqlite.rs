//! The embedded backend: SQLite in WAL mode, one file in the data directory.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::{Mutex, MutexGuard};

use crate::StoreResult;
use crate::auth_cache::AuthCache;
use crate::migrations::Migrate;
use crate::sql::{
    packages::impl_package_store, security_keys::impl_security_key_store,
    signing::impl_signing_store, staging::impl_staging_store, tokens::impl_token_store,
    trust::impl_trust_store, two_factor::impl_two_factor_store, uplinks::impl_uplink_store,
    users::impl_user_store, web::impl_web_store,
};
use crate::sqlite_reads::DirectReads;
use crate::transfer::impl_transfer;

/// The SQLite store.
///
/// SQLite allows one writer at a time. Write transactions take an in-process lock first, so
/// they queue in order, and then begin `IMMEDIATE`, taking SQLite's write lock at once: a
/// deferred transaction that read first and then wrote would get `SQLITE_BUSY` at once, without
/// waiting, whenever the write lock was still held, and it is, briefly, after a transaction
/// dropped without committing (its rollback runs on the connection's worker thread after the
/// in-process lock is already released).
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    write_lock: Mutex<()>,
    pub(crate) auth_cache: AuthCache,
    migrated: Vec<i64>,
    /// Whole-package reads on the calling thread (a database file only).
    direct: Option<DirectReads>,
}

/// A write transaction and the lock that serialises it.
pub(crate) struct WriteTx<'a> {
    pub(crate) tx: Transaction<'static, Sqlite>,
    _guard: MutexGuard<'a, ()>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs the migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::open_with(path, Migrate::Apply).await
    }

    /// Opens (creating if needed) the database file, applying pending migrations or refusing
    /// to open when the schema is behind, as `migrate` says.
    pub async fn open_with(path: &Path, migrate: Migrate) -> StoreResult<Self> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let mut store = Self::connect(opts, migrate).await?;
        store.direct = Some(DirectReads::new(path));
        Ok(store)
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
        Self::with_pool(pool, Migrate::Apply).await
    }

    async fn connect(opts: SqliteConnectOptions, migrate: Migrate) -> StoreResult<Self> {
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(opts)
            .await?;
        Self::with_pool(pool, migrate).await
    }

    async fn with_pool(pool: SqlitePool, migrate: Migrate) -> StoreResult<Self> {
        let migrator = crate::migrations::sqlite();
        let pending = crate::migrations::pending_sqlite(&migrator, &pool).await?;
        if !pending.is_empty() {
            if migrate == Migrate::Check {
                return Err(crate::migrations::behind(&pending));
            }
            migrator.run(&pool).await?;
        }
        Ok(SqliteStore {
            pool,
            write_lock: Mutex::new(()),
            auth_cache: AuthCache::default(),
            migrated: pending,
            direct: None,
        })
    }

    /// The migrations this open applied.
    pub fn migrations_applied(&self) -> &[i64] {
        &self.migrated
    }

    /// One server per database file: in-process caches need no revalidation (changes from
    /// `tessera admin` reach the server through the auth epoch).
    pub(crate) const SHARED: bool = false;

    pub(crate) async fn begin_write(&self) -> StoreResult<WriteTx<'_>> {
        let guard = self.write_lock.lock().await;
        let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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

    /// After an import with explicit ids: SQLite's AUTOINCREMENT already continues after them.
    pub(crate) async fn continue_ids(&self, _w: &mut WriteTx<'_>) -> StoreResult<()> {
        Ok(())
    }

    /// Called after every write that changes what a token grants.
    pub(crate) fn auth_changed(&self) {
        self.auth_cache.invalidate();
    }

    /// Whole-package reads that skip the pool's worker threads, when the database is a file.
    pub(crate) fn direct_reads(&self) -> Option<&DirectReads> {
        self.direct.as_ref()
    }

    /// The package document of `name` read through the pool, as an in-memory database reads
    /// it (tests compare it with the direct read).
    #[doc(hidden)]
    pub async fn package_doc_pooled(&self, name: &str) -> StoreResult<Option<crate::PackageDoc>> {
        let mut tx = self.begin_read().await?;
        let doc = load_doc(&mut tx, name).await?;
        tx.commit().await?;
        Ok(doc)
    }

    pub(crate) async fn begin_read(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin().await?)
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        if let Some(d) = &self.direct {
            d.close();
        }
        self.pool.close().await;
    }
}

impl_user_store!(SqliteStore, sqlx::Sqlite);
impl_token_store!(SqliteStore, sqlx::Sqlite);
impl_package_store!(SqliteStore, sqlx::Sqlite);
impl_two_factor_store!(SqliteStore, sqlx::Sqlite);
impl_transfer!(SqliteStore, sqlx::Sqlite);
impl_web_store!(SqliteStore, sqlx::Sqlite);
impl_security_key_store!(SqliteStore, sqlx::Sqlite);
impl_trust_store!(SqliteStore, sqlx::Sqlite);
impl_staging_store!(SqliteStore, sqlx::Sqlite);
impl_uplink_store!(SqliteStore, sqlx::Sqlite);
impl_signing_store!(SqliteStore, sqlx::Sqlite);
