//! `StagingStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `StagingStore` for `$store` on the sqlx database `$db`.
macro_rules! impl_staging_store {
    ($store:ty, $db:ty) => {
        fn staged_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::StagedVersion> {
            use sqlx::Row;
            let access: Option<String> = r.try_get("access")?;
            let keywords: String = r.try_get("keywords")?;
            let provenance: Option<String> = r.try_get("provenance")?;
            let provenance = provenance
                .map(|p| serde_json::from_str(&p))
                .transpose()
                .map_err(|e| $crate::StoreError::Corrupt(format!("staged provenance: {e}")))?;
            Ok($crate::StagedVersion {
                id: r.try_get("id")?,
                package_name: r.try_get("package_name")?,
                version: r.try_get("version")?,
                tag: r.try_get("tag")?,
                access: access.as_deref().and_then($crate::Access::parse),
                manifest: r.try_get("manifest")?,
                readme: r.try_get("readme")?,
                tarball_sha512: r.try_get("tarball_sha512")?,
                shasum: r.try_get("shasum")?,
                integrity: r.try_get("integrity")?,
                size: r.try_get("size")?,
                description: r.try_get("description")?,
                keywords: serde_json::from_str(&keywords).unwrap_or_default(),
                owner_id: r.try_get("owner_id")?,
                actor: r.try_get("actor")?,
                actor_type: r.try_get("actor_type")?,
                created_at: r.try_get("created_at")?,
                provenance,
            })
        }

        /// Staged versions `$1` may see: of packages it maintains, and of names nobody has yet
        /// that were staged for it.
        const VISIBLE_STAGED: &str = "(EXISTS (SELECT 1 FROM packages p JOIN maintainers m \
             ON m.package_id = p.id WHERE p.name = s.package_name AND m.user_id = $1) \
             OR (s.owner_id = $1 AND NOT EXISTS (SELECT 1 FROM packages p \
             WHERE p.name = s.package_name)))";

        #[async_trait::async_trait]
        impl $crate::StagingStore for $store {
            async fn stage_version(&self, s: &$crate::StagedVersion) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                let taken: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM retired_versions WHERE package_name = $1 \
                     AND version = $2 UNION ALL SELECT CAST(1 AS BIGINT) FROM versions v \
                     JOIN packages p ON p.id = v.package_id WHERE p.name = $1 AND v.version = $2",
                )
                .bind(&s.package_name)
                .bind(&s.version)
                .fetch_optional(&mut *w.tx)
                .await?;
                if taken.is_some() {
                    return Err($crate::StoreError::VersionExists);
                }
                let package: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM packages WHERE name = $1")
                        .bind(&s.package_name)
                        .fetch_optional(&mut *w.tx)
                        .await?;
                if let Some(id) = package {
                    let m: Option<i64> = sqlx::query_scalar(
                        "SELECT CAST(1 AS BIGINT) FROM maintainers WHERE package_id = $1 \
                         AND user_id = $2",
                    )
                    .bind(id)
                    .bind(s.owner_id)
                    .fetch_optional(&mut *w.tx)
                    .await?;
                    if m.is_none() {
                        return Err($crate::StoreError::NotMaintainer);
                    }
                }
                let keywords = serde_json::to_string(&s.keywords)
                    .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO staged_versions (id, package_name, version, tag, access, \
                     manifest, readme, tarball_sha512, shasum, integrity, size, description, \
                     keywords, owner_id, actor, actor_type, created_at, provenance) VALUES ($1, \
                     $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                )
                .bind(&s.id)
                .bind(&s.package_name)
                .bind(&s.version)
                .bind(&s.tag)
                .bind(s.access.map(|a| a.as_str()))
                .bind(&s.manifest)
                .bind(&s.readme)
                .bind(&s.tarball_sha512)
                .bind(&s.shasum)
                .bind(&s.integrity)
                .bind(s.size)
                .bind(&s.description)
                .bind(&keywords)
                .bind(s.owner_id)
                .bind(&s.actor)
                .bind(&s.actor_type)
                .bind(s.created_at)
                .bind(
                    s.provenance
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?,
                )
                .execute(&mut *w.tx)
                .await
                .map_err(|e| match $crate::sql::unique_to_conflict(e) {
                    $crate::StoreError::Conflict => $crate::StoreError::VersionExists,
                    e => e,
                })?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn staged_version(
                &self,
                id: &str,
            ) -> $crate::StoreResult<Option<$crate::StagedVersion>> {
                let row = sqlx::query("SELECT * FROM staged_versions WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(staged_from_row).transpose()
            }

            async fn staged_version_seen_by(
                &self,
                id: &str,
                viewer: $crate::UserId,
            ) -> $crate::StoreResult<Option<$crate::StagedVersion>> {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT s.* FROM staged_versions s WHERE s.id = $2 AND {VISIBLE_STAGED}"
                )))
                .bind(viewer)
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(staged_from_row).transpose()
            }

            async fn staged_versions(
                &self,
                viewer: $crate::UserId,
                package: Option<&str>,
                offset: i64,
                limit: i64,
            ) -> $crate::StoreResult<(Vec<$crate::StagedVersion>, i64)> {
                let filter = format!("{VISIBLE_STAGED} AND ($2 = '' OR s.package_name = $2)");
                let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT s.* FROM staged_versions s WHERE {filter} \
                     ORDER BY s.created_at, s.id LIMIT $3 OFFSET $4"
                )))
                .bind(viewer)
                .bind(package.unwrap_or(""))
                .bind(limit)
                .bind(offset)
                .fetch_all(&self.pool)
                .await?;
                let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM staged_versions s WHERE {filter}"
                )))
                .bind(viewer)
                .bind(package.unwrap_or(""))
                .fetch_one(&self.pool)
                .await?;
                let items = rows
                    .iter()
                    .map(staged_from_row)
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                Ok((items, total))
            }

            async fn remove_staged(&self, id: &str) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM staged_versions WHERE id = $1")
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }
        }
    };
}

pub(crate) use impl_staging_store;
