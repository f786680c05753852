//! Whole-package reads from the SQLite file on the calling thread.
//!
//! sqlx runs each SQLite connection on a worker thread of its own and hands every statement,
//! and the rows coming back, between that thread and the caller: loading one package document
//! (a read transaction and five statements) costs more than a dozen thread wake-ups. On a cold
//! cache, with one serving thread per core, those hand-offs dominated the time of a packument
//! read. Here the same statements run directly on the caller's thread, over read-only
//! connections kept in a small pool; in WAL mode a reader never waits for the writer, and a
//! transaction sees one committed state, as the pooled read does.
//!
//! Only the embedded backend with a database file uses this (an in-memory database cannot be
//! opened twice); [`load_doc`] must return exactly what the sqlx query in `sql/packages.rs`
//! returns, which the store's tests check field by field.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row};

use crate::sql::packages::doc_sql;
use crate::{
    Access, Maintainer, Package, PackageDoc, PackageTfaPolicy, StoreError, StoreResult,
    VersionRecord,
};

/// Idle connections kept for reuse; more are opened when more threads read at once, and closed
/// after use past this number.
const KEEP: usize = 4;

/// SQLite's page cache per read connection, in KiB (the operating system's page cache holds
/// the file; SQLite's default is 2 MiB per connection).
const PAGE_CACHE_KIB: i64 = 512;

/// Read-only connections to one database file.
pub(crate) struct DirectReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl DirectReads {
    /// Reads of the database at `path` (which sqlx has opened, in WAL mode).
    pub(crate) fn new(path: &Path) -> Self {
        DirectReads {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> StoreResult<Connection> {
        let c = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        c.busy_timeout(Duration::from_secs(10))?;
        c.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
        Ok(c)
    }

    /// Runs `f` in a read transaction on a pooled connection.
    fn read<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match taken {
            Some(c) => c,
            None => self.open()?,
        };
        let out = {
            let tx = conn.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            out
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < KEEP {
            idle.push(conn);
        }
        Ok(out)
    }

    /// Closes the idle connections (before the pool closes, so that the last connection to
    /// close is a writer's, which checkpoints the WAL; a read-only one cannot).
    pub(crate) fn close(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The package document of `name`, as [`crate::PackageStore::package_doc`] returns it.
    pub(crate) fn package_doc(&self, name: &str) -> StoreResult<Option<PackageDoc>> {
        self.read(|tx| load_doc(tx, name))
    }
}

fn package_from_row(r: &Row<'_>) -> StoreResult<Package> {
    let access: String = r.get("access")?;
    let keywords: String = r.get("keywords")?;
    Ok(Package {
        id: r.get("id")?,
        name: r.get("name")?,
        access: Access::parse(&access)
            .ok_or_else(|| StoreError::Corrupt(format!("access {access}")))?,
        rev: r.get("rev")?,
        description: r.get("description")?,
        keywords: serde_json::from_str(&keywords).unwrap_or_default(),
        policy: PackageTfaPolicy::from_columns(
            r.get("publish_requires_tfa")?,
            r.get("automation_overrides_tfa")?,
            r.get("tokens_refused")?,
        ),
        staged_publishes: r.get("staged_publishes")?,
        provenance_required: r.get("provenance_required")?,
        created_at: r.get("created_at")?,
        modified_at: r.get("modified_at")?,
    })
}

fn version_from_row(r: &Row<'_>) -> StoreResult<VersionRecord> {
    let uid: Option<i64> = r.get("uid")?;
    let publisher = match uid {
        Some(id) => Some(Maintainer {
            id,
            name: r.get("uname")?,
            email: r.get("uemail")?,
        }),
        None => None,
    };
    Ok(VersionRecord {
        version: r.get("version")?,
        manifest: r.get("manifest")?,
        readme: r.get("readme")?,
        tarball_sha512: r.get("tarball_sha512")?,
        shasum: r.get("shasum")?,
        integrity: r.get("integrity")?,
        size: r.get("size")?,
        deprecated: r.get("deprecated")?,
        publisher,
        published_at: r.get("published_at")?,
        signatures: r.get("signatures")?,
        provenance: r.get("provenance")?,
        attested: r.get::<_, Option<String>>("attested_by")?.is_some(),
    })
}

/// Rows of a statement with one parameter, each made by `f`.
fn all<T>(
    tx: &rusqlite::Transaction<'_>,
    sql: &str,
    param: impl rusqlite::ToSql,
    f: impl Fn(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut rows = stmt.query([param])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

/// The statements of the sqlx read ([`doc_sql`]; SQLite takes `$1` as the first parameter).
fn load_doc(tx: &rusqlite::Transaction<'_>, name: &str) -> StoreResult<Option<PackageDoc>> {
    let package = tx
        .prepare_cached(doc_sql::PACKAGE)?
        .query_row([name], |r| Ok(package_from_row(r)))
        .optional()?
        .transpose()?;
    let Some(package) = package else {
        return Ok(None);
    };
    let versions = all(tx, doc_sql::VERSIONS, package.id, version_from_row)?;
    let dist_tags = all(tx, doc_sql::DIST_TAGS, package.id, |r| {
        Ok((r.get("tag")?, r.get("version")?))
    })?;
    let maintainers = all(tx, doc_sql::MAINTAINERS, package.id, |r| {
        Ok(Maintainer {
            id: r.get("id")?,
            name: r.get("name")?,
            email: r.get("email")?,
        })
    })?;
    let stars = all(tx, doc_sql::STARS, package.id, |r| Ok(r.get("name")?))?;
    Ok(Some(PackageDoc {
        package,
        versions,
        dist_tags,
        maintainers,
        stars,
    }))
}
