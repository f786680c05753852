//! `PackageStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `PackageStore` for `$store` on the sqlx database `$db`.
/// The columns of a package row, from `packages p` (a macro, for `concat!`).
macro_rules! package_columns {
    () => {
        "p.id, p.name, p.access, p.rev, p.description, p.keywords, p.publish_requires_tfa, \
         p.automation_overrides_tfa, p.tokens_refused, p.staged_publishes, \
         p.provenance_required, p.created_at, p.modified_at"
    };
}

/// The columns of a package row, from `packages p`.
pub(crate) const PACKAGE_COLUMNS: &str = package_columns!();

/// The statements that load a package document, in the order they run; each takes the package
/// name (`PACKAGE`) or id (the others) as `$1`. Shared by the sqlx read and SQLite's direct
/// read (`sqlite_reads.rs`), which must return the same document.
pub(crate) mod doc_sql {
    /// The package row, by name.
    pub(crate) const PACKAGE: &str = concat!(
        "SELECT ",
        package_columns!(),
        " FROM packages p WHERE p.name = $1"
    );
    /// Its versions, in publication order, with publisher, provenance and attestation.
    pub(crate) const VERSIONS: &str = "SELECT v.version, v.manifest, v.readme, \
         v.tarball_sha512, v.shasum, v.integrity, v.size, v.deprecated, v.published_at, \
         v.signatures, pr.summary AS provenance, pa.keyid AS attested_by, \
         u.id AS uid, u.name AS uname, u.email AS uemail FROM versions v \
         LEFT JOIN users u ON u.id = v.publisher_id \
         LEFT JOIN provenance pr ON pr.package_id = v.package_id AND pr.version = v.version \
         LEFT JOIN publish_attestations pa \
           ON pa.package_id = v.package_id AND pa.version = v.version \
         WHERE v.package_id = $1 ORDER BY v.published_at, v.version";
    /// Its dist-tags, by tag.
    pub(crate) const DIST_TAGS: &str =
        "SELECT tag, version FROM dist_tags WHERE package_id = $1 ORDER BY tag";
    /// Its maintainers, by name.
    pub(crate) const MAINTAINERS: &str = "SELECT u.id, u.name, u.email FROM maintainers m \
         JOIN users u ON u.id = m.user_id WHERE m.package_id = $1 ORDER BY u.name";
    /// Who starred it, by name.
    pub(crate) const STARS: &str = "SELECT u.name FROM stars s JOIN users u ON u.id = s.user_id \
         WHERE s.package_id = $1 ORDER BY u.name";
}

macro_rules! impl_package_store {
    ($store:ty, $db:ty) => {
        use $crate::sql::packages::{PACKAGE_COLUMNS, doc_sql};

        fn package_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::Package> {
            use sqlx::Row;
            let access: String = r.try_get("access")?;
            let keywords: String = r.try_get("keywords")?;
            Ok($crate::Package {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                access: $crate::Access::parse(&access)
                    .ok_or_else(|| $crate::StoreError::Corrupt(format!("access {access}")))?,
                rev: r.try_get("rev")?,
                description: r.try_get("description")?,
                keywords: serde_json::from_str(&keywords).unwrap_or_default(),
                policy: $crate::PackageTfaPolicy::from_columns(
                    r.try_get("publish_requires_tfa")?,
                    r.try_get("automation_overrides_tfa")?,
                    r.try_get("tokens_refused")?,
                ),
                staged_publishes: r.try_get("staged_publishes")?,
                provenance_required: r.try_get("provenance_required")?,
                created_at: r.try_get("created_at")?,
                modified_at: r.try_get("modified_at")?,
            })
        }

        fn maintainer_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::Maintainer> {
            use sqlx::Row;
            Ok($crate::Maintainer {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                email: r.try_get("email")?,
            })
        }

        async fn maintainers_of(
            conn: &mut <$db as sqlx::Database>::Connection,
            pkg: $crate::PackageId,
        ) -> $crate::StoreResult<Vec<$crate::Maintainer>> {
            let rows = sqlx::query(doc_sql::MAINTAINERS)
            .bind(pkg)
            .fetch_all(&mut *conn)
            .await?;
            rows.iter().map(maintainer_from_row).collect()
        }

        async fn load_doc(
            conn: &mut <$db as sqlx::Database>::Connection,
            name: &str,
        ) -> $crate::StoreResult<Option<$crate::PackageDoc>> {
            use sqlx::Row;
            let Some(row) = sqlx::query(doc_sql::PACKAGE)
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
            else {
                return Ok(None);
            };
            let package = package_from_row(&row)?;
            let rows = sqlx::query(doc_sql::VERSIONS)
            .bind(package.id)
            .fetch_all(&mut *conn)
            .await?;
            let mut versions = Vec::with_capacity(rows.len());
            for r in &rows {
                let uid: Option<i64> = r.try_get("uid")?;
                let publisher = match uid {
                    Some(id) => Some($crate::Maintainer {
                        id,
                        name: r.try_get("uname")?,
                        email: r.try_get("uemail")?,
                    }),
                    None => None,
                };
                versions.push($crate::VersionRecord {
                    version: r.try_get("version")?,
                    manifest: r.try_get("manifest")?,
                    readme: r.try_get("readme")?,
                    tarball_sha512: r.try_get("tarball_sha512")?,
                    shasum: r.try_get("shasum")?,
                    integrity: r.try_get("integrity")?,
                    size: r.try_get("size")?,
                    deprecated: r.try_get("deprecated")?,
                    publisher,
                    published_at: r.try_get("published_at")?,
                    signatures: r.try_get("signatures")?,
                    provenance: r.try_get("provenance")?,
                    attested: r.try_get::<Option<String>, _>("attested_by")?.is_some(),
                });
            }
            let rows = sqlx::query(doc_sql::DIST_TAGS)
            .bind(package.id)
            .fetch_all(&mut *conn)
            .await?;
            let mut dist_tags = Vec::with_capacity(rows.len());
            for r in &rows {
                dist_tags.push((r.try_get("tag")?, r.try_get("version")?));
            }
            let maintainers = maintainers_of(conn, package.id).await?;
            let rows = sqlx::query(doc_sql::STARS)
            .bind(package.id)
            .fetch_all(&mut *conn)
            .await?;
            let mut stars = Vec::with_capacity(rows.len());
            for r in &rows {
                stars.push(r.try_get("name")?);
            }
            Ok(Some($crate::PackageDoc {
                package,
                versions,
                dist_tags,
                maintainers,
                stars,
            }))
        }

        async fn bump(
            conn: &mut <$db as sqlx::Database>::Connection,
            pkg: $crate::PackageId,
            now: i64,
        ) -> $crate::StoreResult<()> {
            let n =
                sqlx::query("UPDATE packages SET rev = rev + 1, modified_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(pkg)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
            if n == 0 {
                return Err($crate::StoreError::NotFound);
            }
            Ok(())
        }

        /// Refuses (`Conflict`) unless the package is at revision `rev`. Inside a write
        /// transaction (writes are serialised), the answer holds until the commit.
        async fn expect_rev(
            conn: &mut <$db as sqlx::Database>::Connection,
            pkg: $crate::PackageId,
            rev: i64,
        ) -> $crate::StoreResult<()> {
            let current: Option<i64> = sqlx::query_scalar("SELECT rev FROM packages WHERE id = $1")
                .bind(pkg)
                .fetch_optional(&mut *conn)
                .await?;
            match current {
                None => Err($crate::StoreError::NotFound),
                Some(r) if r != rev => Err($crate::StoreError::Conflict),
                Some(_) => Ok(()),
            }
        }

        async fn retire(
            conn: &mut <$db as sqlx::Database>::Connection,
            name: &str,
            version: &str,
            now: i64,
        ) -> $crate::StoreResult<()> {
            sqlx::query(
                "INSERT INTO retired_versions (package_name, version, retired_at) \
                 VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(name)
            .bind(version)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn package_name(
            conn: &mut <$db as sqlx::Database>::Connection,
            pkg: $crate::PackageId,
        ) -> $crate::StoreResult<String> {
            sqlx::query_scalar("SELECT name FROM packages WHERE id = $1")
                .bind(pkg)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or($crate::StoreError::NotFound)
        }

        async fn publish_in(
            conn: &mut <$db as sqlx::Database>::Connection,
            v: $crate::NewVersion,
            now: i64,
        ) -> $crate::StoreResult<$crate::Published> {
                let w_tx = conn;
                let retired: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM retired_versions WHERE package_name = $1 AND version = $2",
                )
                .bind(&v.package_name)
                .bind(&v.version.version)
                .fetch_optional(&mut *w_tx)
                .await?;
                if retired.is_some() {
                    return Err($crate::StoreError::VersionExists);
                }
                // A staged version holds its number; approving it takes it off the stage.
                if let Some(id) = &v.staged_id {
                    let n = sqlx::query(
                        "DELETE FROM staged_versions WHERE id = $1 AND package_name = $2 \
                         AND version = $3",
                    )
                    .bind(id)
                    .bind(&v.package_name)
                    .bind(&v.version.version)
                    .execute(&mut *w_tx)
                    .await?
                    .rows_affected();
                    if n != 1 {
                        return Err($crate::StoreError::NotFound);
                    }
                } else {
                    // of a name nobody has yet, only the publisher's own stages count: the
                    // others' go when it takes the name
                    let staged: Option<i64> = sqlx::query_scalar(
                        "SELECT CAST(1 AS BIGINT) FROM staged_versions WHERE package_name = $1 \
                         AND version = $2 AND (owner_id = $3 OR EXISTS (SELECT 1 FROM packages \
                         WHERE name = $1))",
                    )
                    .bind(&v.package_name)
                    .bind(&v.version.version)
                    .bind(v.publisher_id)
                    .fetch_optional(&mut *w_tx)
                    .await?;
                    if staged.is_some() {
                        return Err($crate::StoreError::VersionExists);
                    }
                }
                let existing: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM packages WHERE name = $1")
                        .bind(&v.package_name)
                        .fetch_optional(&mut *w_tx)
                        .await?;
                let keywords = serde_json::to_string(&v.keywords)
                    .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                let mut dropped: Vec<String> = Vec::new();
                let (package_id, created) = match existing {
                    Some(id) => {
                        let m: Option<i64> = sqlx::query_scalar(
                            "SELECT CAST(1 AS BIGINT) FROM maintainers WHERE package_id = $1 AND user_id = $2",
                        )
                        .bind(id)
                        .bind(v.publisher_id)
                        .fetch_optional(&mut *w_tx)
                        .await?;
                        if m.is_none() {
                            return Err($crate::StoreError::NotMaintainer);
                        }
                        let dup: Option<i64> = sqlx::query_scalar(
                            "SELECT CAST(1 AS BIGINT) FROM versions WHERE package_id = $1 AND version = $2",
                        )
                        .bind(id)
                        .bind(&v.version.version)
                        .fetch_optional(&mut *w_tx)
                        .await?;
                        if dup.is_some() {
                            return Err($crate::StoreError::VersionExists);
                        }
                        if v.set_access {
                            sqlx::query("UPDATE packages SET access = $1 WHERE id = $2")
                                .bind(v.access.as_str())
                                .bind(id)
                                .execute(&mut *w_tx)
                                .await?;
                        }
                        (id, false)
                    }
                    None => {
                        let id: i64 = sqlx::query_scalar(
                            "INSERT INTO packages (name, access, rev, description, keywords, \
                             created_at, modified_at) VALUES ($1, $2, 0, $3, $4, $5, $5) \
                             RETURNING id",
                        )
                        .bind(&v.package_name)
                        .bind(v.access.as_str())
                        .bind(&v.description)
                        .bind(&keywords)
                        .bind(now)
                        .fetch_one(&mut *w_tx)
                        .await
                        .map_err($crate::sql::unique_to_conflict)?;
                        sqlx::query("INSERT INTO maintainers (package_id, user_id) VALUES ($1, $2)")
                            .bind(id)
                            .bind(v.publisher_id)
                            .execute(&mut *w_tx)
                            .await?;
                        // A name published again is no longer held for its former maintainers.
                        sqlx::query("DELETE FROM unpublished_names WHERE name = $1")
                            .bind(&v.package_name)
                            .execute(&mut *w_tx)
                            .await?;
                        // What others staged for the name while it was nobody's is not theirs
                        // to release now: it goes (its tarballs for the caller to collect).
                        dropped = sqlx::query_scalar(
                            "DELETE FROM staged_versions WHERE package_name = $1 \
                             AND owner_id <> $2 RETURNING tarball_sha512",
                        )
                        .bind(&v.package_name)
                        .bind(v.publisher_id)
                        .fetch_all(&mut *w_tx)
                        .await?;
                        (id, true)
                    }
                };
                let r = &v.version;
                sqlx::query(
                    "INSERT INTO versions (package_id, version, manifest, readme, \
                     tarball_sha512, shasum, integrity, size, deprecated, publisher_id, \
                     published_at, signatures) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(package_id)
                .bind(&r.version)
                .bind(&r.manifest)
                .bind(&r.readme)
                .bind(&r.tarball_sha512)
                .bind(&r.shasum)
                .bind(&r.integrity)
                .bind(r.size)
                .bind(&r.deprecated)
                .bind(v.publisher_id)
                .bind(now)
                .bind(&r.signatures)
                .execute(&mut *w_tx)
                .await
                .map_err(|e| match $crate::sql::unique_to_conflict(e) {
                    $crate::StoreError::Conflict => $crate::StoreError::VersionExists,
                    other => other,
                })?;
                if let Some(p) = &v.provenance {
                    sqlx::query(
                        "INSERT INTO provenance (package_id, version, predicate_type, bundle, \
                         summary, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                    )
                    .bind(package_id)
                    .bind(&r.version)
                    .bind(&p.predicate_type)
                    .bind(&p.bundle)
                    .bind(&p.summary)
                    .bind(now)
                    .execute(&mut *w_tx)
                    .await?;
                }
                for tag in &v.tags {
                    sqlx::query(
                        "INSERT INTO dist_tags (package_id, tag, version) VALUES ($1, $2, $3) \
                         ON CONFLICT (package_id, tag) DO UPDATE SET version = excluded.version",
                    )
                    .bind(package_id)
                    .bind(tag)
                    .bind(&r.version)
                    .execute(&mut *w_tx)
                    .await?;
                }
                if !created && v.tags.iter().any(|t| t == "latest") {
                    sqlx::query("UPDATE packages SET description = $1, keywords = $2 WHERE id = $3")
                        .bind(&v.description)
                        .bind(&keywords)
                        .bind(package_id)
                        .execute(&mut *w_tx)
                        .await?;
                }
                bump(&mut *w_tx, package_id, now).await?;
                Ok($crate::Published {
                    package_id,
                    created,
                    dropped_blobs: dropped,
                })
            }

        /// Sets one of a package's boolean rules (`column`, a fixed name), in a new revision.
        async fn set_package_flag(
            store: &$store,
            column: &'static str,
            pkg: $crate::PackageId,
            on: bool,
            now: i64,
        ) -> $crate::StoreResult<()> {
            let mut w = store.begin_write().await?;
            let sql = format!("UPDATE packages SET {column} = $1 WHERE id = $2");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(on)
                .bind(pkg)
                .execute(&mut *w.tx)
                .await?;
            bump(&mut *w.tx, pkg, now).await?;
            w.tx.commit().await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::PackageStore for $store {
            async fn unpublished_name(
                &self,
                name: &str,
            ) -> $crate::StoreResult<Option<$crate::UnpublishedName>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT unpublished_at, maintainers FROM unpublished_names WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let ids: String = row.try_get("maintainers")?;
                let maintainers = ids
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse().map_err(|_| {
                            $crate::StoreError::Corrupt(format!(
                                "unpublished_names.maintainers of {name}: {ids:?}"
                            ))
                        })
                    })
                    .collect::<$crate::StoreResult<Vec<$crate::UserId>>>()?;
                Ok(Some($crate::UnpublishedName {
                    unpublished_at: row.try_get("unpublished_at")?,
                    maintainers,
                }))
            }

            async fn package(&self, name: &str) -> $crate::StoreResult<Option<$crate::Package>> {
                let sql = format!("SELECT {PACKAGE_COLUMNS} FROM packages p WHERE p.name = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(package_from_row).transpose()
            }

            async fn package_doc(
                &self,
                name: &str,
            ) -> $crate::StoreResult<Option<$crate::PackageDoc>> {
                if let Some(direct) = self.direct_reads() {
                    return direct.package_doc(name);
                }
                let mut tx = self.begin_read().await?;
                let doc = load_doc(&mut *tx, name).await?;
                tx.commit().await?;
                Ok(doc)
            }

            async fn package_revision(
                &self,
                name: &str,
            ) -> $crate::StoreResult<Option<($crate::PackageId, i64)>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT id, rev FROM packages WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    Some(r) => Ok(Some((r.try_get("id")?, r.try_get("rev")?))),
                    None => Ok(None),
                }
            }

            async fn publish(
                &self,
                v: $crate::NewVersion,
                now: i64,
            ) -> $crate::StoreResult<$crate::Published> {
                let mut w = self.begin_write().await?;
                let p = publish_in(&mut *w.tx, v, now).await?;
                w.tx.commit().await?;
                Ok(p)
            }

            async fn publish_batch(
                &self,
                versions: Vec<$crate::NewVersion>,
                now: i64,
            ) -> $crate::StoreResult<usize> {
                let mut w = self.begin_write().await?;
                let n = versions.len();
                for v in versions {
                    publish_in(&mut *w.tx, v, now).await?;
                }
                w.tx.commit().await?;
                Ok(n)
            }

            async fn set_dist_tag(
                &self,
                pkg: $crate::PackageId,
                tag: &str,
                version: &str,
                now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM versions WHERE package_id = $1 AND version = $2",
                )
                .bind(pkg)
                .bind(version)
                .fetch_optional(&mut *w.tx)
                .await?;
                if exists.is_none() {
                    return Err($crate::StoreError::Precondition("version not found"));
                }
                sqlx::query(
                    "INSERT INTO dist_tags (package_id, tag, version) VALUES ($1, $2, $3) \
                     ON CONFLICT (package_id, tag) DO UPDATE SET version = excluded.version",
                )
                .bind(pkg)
                .bind(tag)
                .bind(version)
                .execute(&mut *w.tx)
                .await?;
                bump(&mut *w.tx, pkg, now).await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn remove_dist_tag(
                &self,
                pkg: $crate::PackageId,
                tag: &str,
                now: i64,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM dist_tags WHERE package_id = $1 AND tag = $2")
                    .bind(pkg)
                    .bind(tag)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok(false);
                }
                bump(&mut *w.tx, pkg, now).await?;
                w.tx.commit().await?;
                Ok(true)
            }

            async fn change_maintainers(
                &self,
                pkg: $crate::PackageId,
                add: &[$crate::UserId],
                remove: &[$crate::UserId],
                now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                for u in add {
                    sqlx::query(
                        "INSERT INTO maintainers (package_id, user_id) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(pkg)
                    .bind(u)
                    .execute(&mut *w.tx)
                    .await?;
                }
                for u in remove {
                    sqlx::query("DELETE FROM maintainers WHERE package_id = $1 AND user_id = $2")
                        .bind(pkg)
                        .bind(u)
                        .execute(&mut *w.tx)
                        .await?;
                }
                let left: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM maintainers WHERE package_id = $1")
                        .bind(pkg)
                        .fetch_one(&mut *w.tx)
                        .await?;
                if left == 0 {
                    return Err($crate::StoreError::Precondition(
                        "a package must keep at least one maintainer",
                    ));
                }
                bump(&mut *w.tx, pkg, now).await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn set_deprecations(
                &self,
                pkg: $crate::PackageId,
                changes: &[(String, Option<String>)],
                now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                for (version, message) in changes {
                    sqlx::query(
                        "UPDATE versions SET deprecated = $1 WHERE package_id = $2 AND version = $3",
                    )
                    .bind(message)
                    .bind(pkg)
                    .bind(version)
                    .execute(&mut *w.tx)
                    .await?;
                }
                bump(&mut *w.tx, pkg, now).await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn remove_versions(
                &self,
                pkg: $crate::PackageId,
                rev: i64,
                versions: &[String],
                dist_tags: &[(String, String)],
                now: i64,
            ) -> $crate::StoreResult<Vec<String>> {
                let mut w = self.begin_write().await?;
                expect_rev(&mut *w.tx, pkg, rev).await?;
                let name = package_name(&mut *w.tx, pkg).await?;
                let mut blobs = Vec::new();
                for v in versions {
                    let sha: Option<String> = sqlx::query_scalar(
                        "DELETE FROM versions WHERE package_id = $1 AND version = $2 \
                         RETURNING tarball_sha512",
                    )
                    .bind(pkg)
                    .bind(v)
                    .fetch_optional(&mut *w.tx)
                    .await?;
                    let Some(sha) = sha else {
                        return Err($crate::StoreError::Precondition("version not found"));
                    };
                    blobs.push(sha);
                    retire(&mut *w.tx, &name, v, now).await?;
                }
                sqlx::query("DELETE FROM dist_tags WHERE package_id = $1")
                    .bind(pkg)
                    .execute(&mut *w.tx)
                    .await?;
                for (tag, version) in dist_tags {
                    sqlx::query(
                        "INSERT INTO dist_tags (package_id, tag, version) VALUES ($1, $2, $3)",
                    )
                    .bind(pkg)
                    .bind(tag)
                    .bind(version)
                    .execute(&mut *w.tx)
                    .await?;
                }
                bump(&mut *w.tx, pkg, now).await?;
                w.tx.commit().await?;
                Ok(blobs)
            }

            async fn delete_package(
                &self,
                pkg: $crate::PackageId,
                rev: i64,
                now: i64,
            ) -> $crate::StoreResult<Vec<String>> {
                use sqlx::Row;
                let mut w = self.begin_write().await?;
                expect_rev(&mut *w.tx, pkg, rev).await?;
                let name = package_name(&mut *w.tx, pkg).await?;
                let rows =
                    sqlx::query("SELECT version, tarball_sha512 FROM versions WHERE package_id = $1")
                        .bind(pkg)
                        .fetch_all(&mut *w.tx)
                        .await?;
                let mut blobs = Vec::with_capacity(rows.len());
                for r in &rows {
                    let version: String = r.try_get("version")?;
                    retire(&mut *w.tx, &name, &version, now).await?;
                    blobs.push(r.try_get("tarball_sha512")?);
                }
                // versions staged for it go with it
                let staged: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM staged_versions WHERE package_name = $1 RETURNING tarball_sha512",
                )
                .bind(&name)
                .fetch_all(&mut *w.tx)
                .await?;
                blobs.extend(staged);
                let maintainers: Vec<i64> = sqlx::query_scalar(
                    "SELECT user_id FROM maintainers WHERE package_id = $1 ORDER BY user_id",
                )
                .bind(pkg)
                .fetch_all(&mut *w.tx)
                .await?;
                let maintainers: Vec<String> = maintainers.iter().map(i64::to_string).collect();
                sqlx::query(
                    "INSERT INTO unpublished_names (name, unpublished_at, maintainers) \
                     VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE SET \
                     unpublished_at = excluded.unpublished_at, maintainers = excluded.maintainers",
                )
                .bind(&name)
                .bind(now)
                .bind(maintainers.join(","))
                .execute(&mut *w.tx)
                .await?;
                for table in ["versions", "dist_tags", "maintainers", "stars"] {
                    let sql = format!("DELETE FROM {table} WHERE package_id = $1");
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .bind(pkg)
                        .execute(&mut *w.tx)
                        .await?;
                }
                sqlx::query("DELETE FROM packages WHERE id = $1")
                    .bind(pkg)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(blobs)
            }

            async fn set_access(
                &self,
                pkg: $crate::PackageId,
                access: $crate::Access,
                now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("UPDATE packages SET access = $1 WHERE id = $2")
                    .bind(access.as_str())
                    .bind(pkg)
                    .execute(&mut *w.tx)
                    .await?;
                bump(&mut *w.tx, pkg, now).await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn set_mfa_policy(
                &self,
                pkg: $crate::PackageId,
                policy: $crate::PackageTfaPolicy,
                now: i64,
            ) -> $crate::StoreResult<()> {
                let (publish_requires_tfa, automation_overrides_tfa) = policy.flags();
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "UPDATE packages SET publish_requires_tfa = $1, automation_overrides_tfa = $2, \
                     tokens_refused = $3 WHERE id = $4",
                )
                .bind(publish_requires_tfa)
                .bind(automation_overrides_tfa)
                .bind(policy.tokens_refused())
                .bind(pkg)
                .execute(&mut *w.tx)
                .await?;
                bump(&mut *w.tx, pkg, now).await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn set_provenance_required(
                &self,
                pkg: $crate::PackageId,
                on: bool,
                now: i64,
            ) -> $crate::StoreResult<()> {
                set_package_flag(self, "provenance_required", pkg, on, now).await
            }

            async fn version_provenance(
                &self,
                name: &str,
                version: &str,
            ) -> $crate::StoreResult<Option<$crate::Provenance>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT pr.predicate_type, pr.bundle, pr.summary FROM provenance pr \
                     JOIN packages p ON p.id = pr.package_id WHERE p.name = $1 AND pr.version = $2",
                )
                .bind(name)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok($crate::Provenance {
                        predicate_type: r.try_get("predicate_type")?,
                        bundle: r.try_get("bundle")?,
                        summary: r.try_get("summary")?,
                    })
                })
                .transpose()
            }

            async fn set_staged_publishes(
                &self,
                pkg: $crate::PackageId,
                on: bool,
                now: i64,
            ) -> $crate::StoreResult<()> {
                set_package_flag(self, "staged_publishes", pkg, on, now).await
            }

            async fn set_star(
                &self,
                pkg: $crate::PackageId,
                user: $crate::UserId,
                star: bool,
                now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                let n = if star {
                    sqlx::query(
                        "INSERT INTO stars (package_id, user_id) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                } else {
                    sqlx::query("DELETE FROM stars WHERE package_id = $1 AND user_id = $2")
                }
                .bind(pkg)
                .bind(user)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                if n > 0 {
                    bump(&mut *w.tx, pkg, now).await?;
                }
                w.tx.commit().await?;
                Ok(())
            }

            async fn starred_by(&self, user: $crate::UserId) -> $crate::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT p.name FROM stars s JOIN packages p ON p.id = s.package_id \
                     WHERE s.user_id = $1 ORDER BY p.name",
                )
                .bind(user)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn packages_of(
                &self,
                user: $crate::UserId,
            ) -> $crate::StoreResult<Vec<$crate::Package>> {
                let sql = format!(
                    "SELECT {PACKAGE_COLUMNS} FROM packages p JOIN maintainers m \
                     ON m.package_id = p.id WHERE m.user_id = $1 ORDER BY p.name"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(package_from_row).collect()
            }

            async fn search(
                &self,
                terms: &[String],
                viewer: Option<$crate::UserId>,
                from: i64,
                size: i64,
            ) -> $crate::StoreResult<(Vec<$crate::SearchHit>, i64)> {
                let mut filter = String::from(
                    "(p.access = 'public' OR EXISTS (SELECT 1 FROM maintainers vm \
                     WHERE vm.package_id = p.id AND vm.user_id = $1))",
                );
                for i in 0..terms.len() {
                    let n = i + 2;
                    filter.push_str(&format!(
                        " AND (lower(p.name) LIKE ${n} ESCAPE '\\' \
                         OR lower(coalesce(p.description, '')) LIKE ${n} ESCAPE '\\' \
                         OR lower(p.keywords) LIKE ${n} ESCAPE '\\')"
                    ));
                }
                let patterns: Vec<String> = terms
                    .iter()
                    .map(|t| format!("%{}%", $crate::sql::like_escape(&t.to_lowercase())))
                    .collect();
                let limit_at = terms.len() + 2;
                let exact_at = terms.len() + 4;
                let sql = format!(
                    "SELECT {PACKAGE_COLUMNS} FROM packages p WHERE {filter} \
                     ORDER BY CASE WHEN p.name = ${exact_at} THEN 0 ELSE 1 END, p.name \
                     LIMIT ${limit_at} OFFSET ${}",
                    limit_at + 1
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(viewer.unwrap_or(-1));
                for p in &patterns {
                    q = q.bind(p);
                }
                let exact = terms.join(" ").to_lowercase();
                let rows = q
                    .bind(size)
                    .bind(from)
                    .bind(exact)
                    .fetch_all(&self.pool)
                    .await?;
                let count_sql = format!("SELECT COUNT(*) FROM packages p WHERE {filter}");
                let mut cq = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
                    .bind(viewer.unwrap_or(-1));
                for p in &patterns {
                    cq = cq.bind(p);
                }
                let total: i64 = cq.fetch_one(&self.pool).await?;
                let mut conn = self.pool.acquire().await?;
                let mut hits = Vec::with_capacity(rows.len());
                for r in &rows {
                    let package = package_from_row(r)?;
                    let latest: Option<String> = sqlx::query_scalar(
                        "SELECT version FROM dist_tags WHERE package_id = $1 AND tag = 'latest'",
                    )
                    .bind(package.id)
                    .fetch_optional(&mut *conn)
                    .await?;
                    let maintainers = maintainers_of(&mut *conn, package.id).await?;
                    hits.push($crate::SearchHit {
                        package,
                        latest,
                        maintainers,
                    });
                }
                Ok((hits, total))
            }

            async fn scope_standing(
                &self,
                scope: &str,
                user: $crate::UserId,
            ) -> $crate::StoreResult<(bool, bool)> {
                let pattern = format!("{}/%", $crate::sql::like_escape(scope));
                let any: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM packages WHERE name LIKE $1 ESCAPE '\\' LIMIT 1",
                )
                .bind(&pattern)
                .fetch_optional(&self.pool)
                .await?;
                let mine: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM packages p JOIN maintainers m ON m.package_id = p.id \
                     WHERE p.name LIKE $1 ESCAPE '\\' AND m.user_id = $2 LIMIT 1",
                )
                .bind(&pattern)
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
                Ok((any.is_some(), mine.is_some()))
            }

            async fn blob_in_use(&self, sha512: &str) -> $crate::StoreResult<bool> {
                let hit: Option<i64> =
                    sqlx::query_scalar(
                        "SELECT CAST(1 AS BIGINT) FROM versions WHERE tarball_sha512 = $1 \
                         UNION ALL SELECT CAST(1 AS BIGINT) FROM staged_versions \
                         WHERE tarball_sha512 = $1 UNION ALL SELECT CAST(1 AS BIGINT) \
                         FROM upstream_tarballs WHERE tarball_sha512 = $1 LIMIT 1",
                    )
                        .bind(sha512)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(hit.is_some())
            }
        }
    };
}

pub(crate) use impl_package_store;
