//! The scale-out backend: PostgreSQL, shared by any number of tessera instances.
//!
//! The SQL is the same as SQLite's (see `sql/`). What differs is how writes are made safe when
//! several processes write at once:
//! - every write transaction first takes one transaction-scoped advisory lock, so writes are
//!   serialised across all instances exactly as SQLite serialises them in one process (the
//!   read-check-write logic of publishing, throttling and 2FA stays correct without retries);
//! - multi-query reads run in one `REPEATABLE READ` snapshot, so a document is never assembled
//!   from two revisions;
//! - token lookups are not cached in memory: a revocation on one instance must be refused on
//!   every other at once, and only the database knows of it.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::StoreResult;
use crate::auth_cache::AuthCache;
use crate::migrations::Migrate;
use crate::sql::{
    packages::impl_package_store, security_keys::impl_security_key_store,
    signing::impl_signing_store, staging::impl_staging_store, tokens::impl_token_store,
    trust::impl_trust_store, two_factor::impl_two_factor_store, uplinks::impl_uplink_store,
    users::impl_user_store, web::impl_web_store,
};
use crate::transfer::impl_transfer;

/// The advisory lock key that serialises writes ("tessera" in ASCII).
const WRITE_LOCK: i64 = 0x0074_6573_7365_7261;

/// The PostgreSQL store.
pub struct PgStore {
    pub(crate) pool: PgPool,
    pub(crate) auth_cache: AuthCache,
    migrated: Vec<i64>,
}

/// A write transaction holding the registry-wide write lock until it ends.
pub(crate) struct WriteTx {
    pub(crate) tx: Transaction<'static, Postgres>,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`) with at most `max_connections` pooled connections.
    pub async fn open(url: &str, max_connections: u32, migrate: Migrate) -> StoreResult<Self> {
        let opts: PgConnectOptions = url.parse()?;
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await?;
        let migrator = crate::migrations::postgres();
        let pending = crate::migrations::pending_postgres(&migrator, &pool).await?;
        if !pending.is_empty() {
            if migrate == Migrate::Check {
                return Err(crate::migrations::behind(&pending));
            }
            migrator.run(&pool).await?;
        }
        Ok(PgStore {
            pool,
            auth_cache: AuthCache::disabled(),
            migrated: pending,
        })
    }

    /// The migrations this open applied.
    pub fn migrations_applied(&self) -> &[i64] {
        &self.migrated
    }

    /// Other processes write the same database: in-process caches must be revalidated.
    pub(crate) const SHARED: bool = true;

    pub(crate) async fn begin_write(&self) -> StoreResult<WriteTx> {
        let mut tx = self.pool.begin().await?;
        // READ COMMITTED whatever the server's default: each statement after the lock must see
        // what the previous lock holder committed (the throttle counts, the conditional UPDATEs).
        sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(WriteTx { tx })
    }

    /// Attempt reservations are already serialised by the write lock every write holds.
    pub(crate) async fn lock_attempts(
        &self,
        _w: &mut WriteTx,
        _kind: crate::FailureKind,
        _user: Option<crate::UserId>,
        _ip: &str,
    ) -> StoreResult<()> {
        Ok(())
    }

    /// After an import with explicit ids: moves each identity sequence past the largest id.
    pub(crate) async fn continue_ids(&self, w: &mut WriteTx) -> StoreResult<()> {
        for t in crate::transfer::TABLES.iter().filter(|t| t.identity) {
            let sql = format!(
                "SELECT setval(pg_get_serial_sequence('{0}', 'id'), \
                 COALESCE((SELECT MAX(id) FROM {0}), 0) + 1, false)",
                t.name
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *w.tx)
                .await?;
        }
        Ok(())
    }

    /// Called after every write that changes what a token grants (nothing is cached here).
    pub(crate) fn auth_changed(&self) {
        self.auth_cache.invalidate();
    }

    /// No direct reads: every read goes through the pool.
    pub(crate) fn direct_reads(&self) -> Option<&crate::sqlite_reads::DirectReads> {
        None
    }

    pub(crate) async fn begin_read(&self) -> StoreResult<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

impl_user_store!(PgStore, sqlx::Postgres);
impl_token_store!(PgStore, sqlx::Postgres);
impl_package_store!(PgStore, sqlx::Postgres);
impl_two_factor_store!(PgStore, sqlx::Postgres);
impl_transfer!(PgStore, sqlx::Postgres);
impl_web_store!(PgStore, sqlx::Postgres);
impl_security_key_store!(PgStore, sqlx::Postgres);
impl_trust_store!(PgStore, sqlx::Postgres);
impl_staging_store!(PgStore, sqlx::Postgres);
impl_uplink_store!(PgStore, sqlx::Postgres);
impl_signing_store!(PgStore, sqlx::Postgres);
