//! `UplinkStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `UplinkStore` for `$store` on the sqlx database `$db`.
macro_rules! impl_uplink_store {
    ($store:ty, $db:ty) => {
        fn cached_packument_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::CachedPackument> {
            use sqlx::Row;
            Ok($crate::CachedPackument {
                name: r.try_get("name")?,
                uplink: r.try_get("uplink")?,
                status: r.try_get("status")?,
                etag: r.try_get("etag")?,
                body: r.try_get("body")?,
                fetched_at: r.try_get("fetched_at")?,
                checked_at: r.try_get("checked_at")?,
            })
        }

        fn cached_tarball_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::CachedTarball> {
            use sqlx::Row;
            Ok($crate::CachedTarball {
                name: r.try_get("name")?,
                version: r.try_get("version")?,
                uplink: r.try_get("uplink")?,
                tarball_sha512: r.try_get("tarball_sha512")?,
                integrity: r.try_get("integrity")?,
                size: r.try_get("size")?,
                fetched_at: r.try_get("fetched_at")?,
            })
        }

        fn health_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::UplinkHealth> {
            use sqlx::Row;
            Ok($crate::UplinkHealth {
                uplink: r.try_get("uplink")?,
                fails: r.try_get("fails")?,
                down_until: r.try_get("down_until")?,
                last_error: r.try_get("last_error")?,
                last_failure_at: r.try_get("last_failure_at")?,
                last_success_at: r.try_get("last_success_at")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::UplinkStore for $store {
            async fn cached_packument(
                &self,
                name: &str,
            ) -> $crate::StoreResult<Option<$crate::CachedPackument>> {
                let row = sqlx::query("SELECT * FROM upstream_packuments WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(cached_packument_from_row).transpose()
            }

            async fn put_cached_packument(
                &self,
                p: &$crate::CachedPackument,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO upstream_packuments (name, uplink, status, etag, body, \
                     fetched_at, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (name) DO UPDATE SET uplink = excluded.uplink, \
                     status = excluded.status, etag = excluded.etag, body = excluded.body, \
                     fetched_at = excluded.fetched_at, checked_at = excluded.checked_at",
                )
                .bind(&p.name)
                .bind(&p.uplink)
                .bind(p.status)
                .bind(&p.etag)
                .bind(&p.body)
                .bind(p.fetched_at)
                .bind(p.checked_at)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn touch_cached_packument(
                &self,
                name: &str,
                checked_at: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "UPDATE upstream_packuments SET checked_at = $2 WHERE name = $1 \
                     AND checked_at < $2",
                )
                .bind(name)
                .bind(checked_at)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn forget_cached_packument(&self, name: &str) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("DELETE FROM upstream_packuments WHERE name = $1")
                    .bind(name)
                    .execute(&mut *w.tx)
                    .await?;
                if let Some((low, high)) = $crate::sql::uplinks::scope_range(name) {
                    sqlx::query("DELETE FROM upstream_packuments WHERE name >= $1 AND name < $2")
                        .bind(low)
                        .bind(high)
                        .execute(&mut *w.tx)
                        .await?;
                }
                w.tx.commit().await?;
                Ok(())
            }

            async fn claimed_locally(&self, name: &str) -> $crate::StoreResult<bool> {
                let exact: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM packages WHERE name = $1 UNION ALL \
                     SELECT CAST(1 AS BIGINT) FROM unpublished_names WHERE name = $1 LIMIT 1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                if exact.is_some() {
                    return Ok(true);
                }
                let Some((low, high)) = $crate::sql::uplinks::scope_range(name) else {
                    return Ok(false);
                };
                // a range over the name index (byte order on both backends)
                let scoped: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM packages WHERE name >= $1 AND name < $2 \
                     UNION ALL SELECT CAST(1 AS BIGINT) FROM unpublished_names \
                     WHERE name >= $1 AND name < $2 LIMIT 1",
                )
                .bind(low)
                .bind(high)
                .fetch_optional(&self.pool)
                .await?;
                Ok(scoped.is_some())
            }

            async fn held_versions(&self, name: &str) -> $crate::StoreResult<Vec<String>> {
                Ok(sqlx::query_scalar(
                    "SELECT version FROM retired_versions WHERE package_name = $1 UNION \
                     SELECT version FROM staged_versions WHERE package_name = $1",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn cached_tarballs(
                &self,
                name: &str,
            ) -> $crate::StoreResult<Vec<$crate::CachedTarball>> {
                let rows = sqlx::query(
                    "SELECT * FROM upstream_tarballs WHERE name = $1 ORDER BY version",
                )
                .bind(name)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(cached_tarball_from_row).collect()
            }

            async fn put_cached_tarball(
                &self,
                t: &$crate::CachedTarball,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO upstream_tarballs (name, version, uplink, tarball_sha512, \
                     integrity, size, fetched_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (name, version) DO UPDATE SET uplink = excluded.uplink, \
                     tarball_sha512 = excluded.tarball_sha512, integrity = excluded.integrity, \
                     size = excluded.size, fetched_at = excluded.fetched_at",
                )
                .bind(&t.name)
                .bind(&t.version)
                .bind(&t.uplink)
                .bind(&t.tarball_sha512)
                .bind(&t.integrity)
                .bind(t.size)
                .bind(t.fetched_at)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn cached_names(
                &self,
                after: &str,
                limit: i64,
            ) -> $crate::StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT name, uplink FROM upstream_packuments WHERE status = 200 \
                     AND name > $1 ORDER BY name LIMIT $2",
                )
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn prune_cache(&self, before: i64) -> $crate::StoreResult<(i64, Vec<String>)> {
                let mut w = self.begin_write().await?;
                let shas: Vec<String> = sqlx::query_scalar(
                    "DELETE FROM upstream_tarballs WHERE name IN (SELECT name FROM \
                     upstream_packuments WHERE checked_at < $1) OR name NOT IN (SELECT name \
                     FROM upstream_packuments) RETURNING tarball_sha512",
                )
                .bind(before)
                .fetch_all(&mut *w.tx)
                .await?;
                let n = sqlx::query("DELETE FROM upstream_packuments WHERE checked_at < $1")
                    .bind(before)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                w.tx.commit().await?;
                Ok((n as i64, shas))
            }

            async fn cache_sizes(&self) -> $crate::StoreResult<Vec<$crate::UplinkCacheSize>> {
                let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
                    "SELECT uplink, CAST(SUM(p) AS BIGINT), CAST(SUM(t) AS BIGINT), \
                     CAST(SUM(b) AS BIGINT) FROM (\
                     SELECT uplink, CAST(1 AS BIGINT) AS p, CAST(0 AS BIGINT) AS t, \
                     CAST(0 AS BIGINT) AS b FROM upstream_packuments \
                     UNION ALL SELECT uplink, CAST(0 AS BIGINT), CAST(1 AS BIGINT), \
                     CAST(size AS BIGINT) FROM upstream_tarballs) AS c \
                     GROUP BY uplink ORDER BY uplink",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(uplink, packuments, tarballs, tarball_bytes)| {
                        $crate::UplinkCacheSize {
                            uplink,
                            packuments,
                            tarballs,
                            tarball_bytes,
                        }
                    })
                    .collect())
            }

            async fn uplink_health(&self) -> $crate::StoreResult<Vec<$crate::UplinkHealth>> {
                let rows = sqlx::query("SELECT * FROM uplink_health ORDER BY uplink")
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(health_from_row).collect()
            }

            async fn uplink_health_of(
                &self,
                uplink: &str,
            ) -> $crate::StoreResult<Option<$crate::UplinkHealth>> {
                let row = sqlx::query("SELECT * FROM uplink_health WHERE uplink = $1")
                    .bind(uplink)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(health_from_row).transpose()
            }

            async fn uplink_failed(
                &self,
                uplink: &str,
                error: &str,
                max_fails: i64,
                fail_timeout: i64,
                now: i64,
            ) -> $crate::StoreResult<$crate::UplinkHealth> {
                let mut w = self.begin_write().await?;
                // one statement: racing failures on several instances all count
                let row = sqlx::query(
                    "INSERT INTO uplink_health (uplink, fails, down_until, last_error, \
                     last_failure_at) VALUES ($1, 1, CASE WHEN 1 >= $3 THEN $5 + $4 ELSE 0 END, \
                     $2, $5) ON CONFLICT (uplink) DO UPDATE SET \
                     fails = uplink_health.fails + 1, \
                     down_until = CASE WHEN uplink_health.fails + 1 >= $3 THEN $5 + $4 \
                     ELSE uplink_health.down_until END, \
                     last_error = excluded.last_error, last_failure_at = excluded.last_failure_at \
                     RETURNING *",
                )
                .bind(uplink)
                .bind(error)
                .bind(max_fails)
                .bind(fail_timeout)
                .bind(now)
                .fetch_one(&mut *w.tx)
                .await?;
                let h = health_from_row(&row)?;
                w.tx.commit().await?;
                Ok(h)
            }

            async fn uplink_answered(&self, uplink: &str, now: i64) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO uplink_health (uplink, fails, down_until, last_success_at) \
                     VALUES ($1, 0, 0, $2) ON CONFLICT (uplink) DO UPDATE SET fails = 0, \
                     down_until = 0, last_success_at = excluded.last_success_at",
                )
                .bind(uplink)
                .bind(now)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn take_fetch_lease(
                &self,
                key: &str,
                holder: &str,
                until: i64,
                now: i64,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "INSERT INTO upstream_fetches (key, holder, until) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, \
                     until = excluded.until WHERE upstream_fetches.until <= $4",
                )
                .bind(key)
                .bind(holder)
                .bind(until)
                .bind(now)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn release_fetch_lease(&self, key: &str, holder: &str) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("DELETE FROM upstream_fetches WHERE key = $1 AND holder = $2")
                    .bind(key)
                    .bind(holder)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn allowed_name(
                &self,
                name: &str,
            ) -> $crate::StoreResult<Option<$crate::AllowedName>> {
                let row: Option<(String, String, i64)> = sqlx::query_as(
                    "SELECT name, allowed_by, created_at FROM allowed_names WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(name, allowed_by, created_at)| $crate::AllowedName {
                    name,
                    allowed_by,
                    created_at,
                }))
            }

            async fn set_allowed_name(
                &self,
                name: &str,
                allowed: bool,
                by: &str,
                now: i64,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = if allowed {
                    sqlx::query(
                        "INSERT INTO allowed_names (name, allowed_by, created_at) \
                         VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .bind(by)
                    .bind(now)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected()
                } else {
                    sqlx::query("DELETE FROM allowed_names WHERE name = $1")
                        .bind(name)
                        .execute(&mut *w.tx)
                        .await?
                        .rows_affected()
                };
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn allowed_names(&self) -> $crate::StoreResult<Vec<$crate::AllowedName>> {
                let rows: Vec<(String, String, i64)> = sqlx::query_as(
                    "SELECT name, allowed_by, created_at FROM allowed_names ORDER BY name",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(name, allowed_by, created_at)| $crate::AllowedName {
                        name,
                        allowed_by,
                        created_at,
                    })
                    .collect())
            }
        }
    };
}

pub(crate) use impl_uplink_store;

/// The names of `name`'s scope as a range: `@scope/` up to `@scope0` (`0` follows `/`).
pub(crate) fn scope_range(name: &str) -> Option<(String, String)> {
    let scope = name.strip_prefix('@')?.split_once('/')?.0;
    Some((format!("@{scope}/"), format!("@{scope}0")))
}
