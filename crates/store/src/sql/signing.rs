//! `SigningStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `SigningStore` for `$store` on the sqlx database `$db`.
macro_rules! impl_signing_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::SigningStore for $store {
            async fn signing_keys(&self) -> $crate::StoreResult<Vec<$crate::SigningKey>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT keyid, public_key, sealed_private, created_at, expires_at \
                     FROM signing_keys ORDER BY created_at, keyid",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::SigningKey {
                            keyid: r.try_get("keyid")?,
                            public_key: r.try_get("public_key")?,
                            sealed_private: r.try_get("sealed_private")?,
                            created_at: r.try_get("created_at")?,
                            expires_at: r.try_get("expires_at")?,
                        })
                    })
                    .collect()
            }

            async fn add_signing_key(
                &self,
                key: &$crate::SigningKey,
                retire_current_at: Option<i64>,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                match retire_current_at {
                    Some(at) => {
                        sqlx::query(
                            "UPDATE signing_keys SET expires_at = $1 WHERE expires_at IS NULL",
                        )
                        .bind(at)
                        .execute(&mut *w.tx)
                        .await?;
                    }
                    None => {
                        let current: Option<i64> = sqlx::query_scalar(
                            "SELECT CAST(1 AS BIGINT) FROM signing_keys WHERE expires_at IS NULL",
                        )
                        .fetch_optional(&mut *w.tx)
                        .await?;
                        if current.is_some() {
                            return Ok(false);
                        }
                    }
                }
                let inserted = sqlx::query(
                    "INSERT INTO signing_keys (keyid, public_key, sealed_private, created_at, \
                     expires_at) VALUES ($1, $2, $3, $4, NULL)",
                )
                .bind(&key.keyid)
                .bind(&key.public_key)
                .bind(&key.sealed_private)
                .bind(key.created_at)
                .execute(&mut *w.tx)
                .await
                .map_err($crate::sql::unique_to_conflict);
                match inserted {
                    Ok(_) => {}
                    // another instance made the first key at the same moment
                    Err($crate::StoreError::Conflict) if retire_current_at.is_none() => {
                        return Ok(false);
                    }
                    Err(e) => return Err(e),
                }
                w.tx.commit().await?;
                Ok(true)
            }

            async fn reseal_signing_key(
                &self,
                keyid: &str,
                old: &[u8],
                new: &[u8],
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE signing_keys SET sealed_private = $1 \
                     WHERE keyid = $2 AND sealed_private = $3",
                )
                .bind(new)
                .bind(keyid)
                .bind(old)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn versions_to_sign(
                &self,
                after: Option<($crate::PackageId, String)>,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::UnsignedVersion>> {
                use sqlx::Row;
                let (after_package, after_version) = after.unwrap_or((i64::MIN, String::new()));
                // a key id is `SHA256:` and base64, which has no LIKE wildcard in it
                let rows = sqlx::query(
                    "SELECT v.package_id, p.name, v.version, v.integrity, v.published_at, \
                     v.tarball_sha512, v.signatures \
                     FROM versions v JOIN packages p ON p.id = v.package_id \
                     WHERE (v.package_id > $1 OR (v.package_id = $1 AND v.version > $2)) \
                     AND (v.signatures IS NULL OR EXISTS (SELECT 1 FROM signing_keys k \
                       WHERE k.expires_at IS NOT NULL AND k.expires_at <= v.published_at \
                       AND v.signatures LIKE '%\"' || k.keyid || '\"%')) \
                     ORDER BY v.package_id, v.version LIMIT $3",
                )
                .bind(after_package)
                .bind(after_version)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::UnsignedVersion {
                            package_id: r.try_get("package_id")?,
                            name: r.try_get("name")?,
                            version: r.try_get("version")?,
                            integrity: r.try_get("integrity")?,
                            published_at: r.try_get("published_at")?,
                            tarball_sha512: r.try_get("tarball_sha512")?,
                            signatures: r.try_get("signatures")?,
                        })
                    })
                    .collect()
            }

            async fn bump_packument_epoch(&self) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("UPDATE packument_epoch SET value = value + 1 WHERE id = 1")
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn packument_epoch(&self) -> $crate::StoreResult<i64> {
                Ok(
                    sqlx::query_scalar("SELECT value FROM packument_epoch WHERE id = 1")
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn set_version_signatures(
                &self,
                package_id: i64,
                signed: &[(String, Option<String>, String)],
                now: i64,
            ) -> $crate::StoreResult<usize> {
                let mut w = self.begin_write().await?;
                let mut written = 0;
                for (version, old, new) in signed {
                    // only if nobody signed it in the meantime
                    written += sqlx::query(
                        "UPDATE versions SET signatures = $1 WHERE package_id = $2 \
                         AND version = $3 AND (signatures = $4 OR (signatures IS NULL \
                         AND CAST($4 AS TEXT) IS NULL))",
                    )
                    .bind(new)
                    .bind(package_id)
                    .bind(version)
                    .bind(old)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected() as usize;
                }
                if written == 0 {
                    return Ok(0);
                }
                // a new revision: cached packuments are made again, with the signatures
                sqlx::query("UPDATE packages SET rev = rev + 1, modified_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(package_id)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(written)
            }

            async fn versions_to_attest(
                &self,
                after: Option<($crate::PackageId, String)>,
                published_before: i64,
                limit: i64,
            ) -> $crate::StoreResult<Vec<$crate::UnattestedVersion>> {
                use sqlx::Row;
                let (after_package, after_version) = after.unwrap_or((i64::MIN, String::new()));
                let rows = sqlx::query(
                    "SELECT v.package_id, p.name, v.version, v.integrity, v.tarball_sha512, \
                     pa.integrated_at AS replaces \
                     FROM versions v JOIN packages p ON p.id = v.package_id \
                     LEFT JOIN publish_attestations pa \
                       ON pa.package_id = v.package_id AND pa.version = v.version \
                     WHERE (v.package_id > $1 OR (v.package_id = $1 AND v.version > $2)) \
                     AND v.published_at < $3 \
                     AND (pa.keyid IS NULL OR EXISTS (SELECT 1 FROM signing_keys k \
                       WHERE k.keyid = pa.keyid AND k.expires_at IS NOT NULL \
                       AND k.expires_at <= pa.integrated_at)) \
                     ORDER BY v.package_id, v.version LIMIT $4",
                )
                .bind(after_package)
                .bind(after_version)
                .bind(published_before)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok($crate::UnattestedVersion {
                            package_id: r.try_get("package_id")?,
                            name: r.try_get("name")?,
                            version: r.try_get("version")?,
                            integrity: r.try_get("integrity")?,
                            tarball_sha512: r.try_get("tarball_sha512")?,
                            replaces: r.try_get("replaces")?,
                        })
                    })
                    .collect()
            }

            async fn put_publish_attestation(
                &self,
                package_id: $crate::PackageId,
                version: &str,
                a: &$crate::PublishAttestation,
                replaces: Option<i64>,
                now: i64,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let written = match replaces {
                    None => sqlx::query(
                        "INSERT INTO publish_attestations (package_id, version, keyid, bundle, \
                         integrated_at) SELECT $1, $2, $3, $4, $5 \
                         WHERE EXISTS (SELECT 1 FROM versions WHERE package_id = $1 AND version = $2) \
                         ON CONFLICT (package_id, version) DO NOTHING",
                    )
                    .bind(package_id)
                    .bind(version)
                    .bind(&a.keyid)
                    .bind(&a.bundle)
                    .bind(a.integrated_at)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected(),
                    Some(old) => sqlx::query(
                        "UPDATE publish_attestations SET keyid = $1, bundle = $2, \
                         integrated_at = $3 WHERE package_id = $4 AND version = $5 \
                         AND integrated_at = $6",
                    )
                    .bind(&a.keyid)
                    .bind(&a.bundle)
                    .bind(a.integrated_at)
                    .bind(package_id)
                    .bind(version)
                    .bind(old)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected(),
                };
                if written == 0 {
                    return Ok(false);
                }
                if replaces.is_none() {
                    // a new revision: cached packuments are made again, with `dist.attestations`
                    sqlx::query(
                        "UPDATE packages SET rev = rev + 1, modified_at = $1 WHERE id = $2",
                    )
                    .bind(now)
                    .bind(package_id)
                    .execute(&mut *w.tx)
                    .await?;
                }
                w.tx.commit().await?;
                Ok(true)
            }

            async fn version_publish_attestation(
                &self,
                name: &str,
                version: &str,
            ) -> $crate::StoreResult<Option<$crate::PublishAttestation>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT pa.keyid, pa.bundle, pa.integrated_at FROM publish_attestations pa \
                     JOIN packages p ON p.id = pa.package_id WHERE p.name = $1 AND pa.version = $2",
                )
                .bind(name)
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok($crate::PublishAttestation {
                        keyid: r.try_get("keyid")?,
                        bundle: r.try_get("bundle")?,
                        integrated_at: r.try_get("integrated_at")?,
                    })
                })
                .transpose()
            }
        }
    };
}

pub(crate) use impl_signing_store;
