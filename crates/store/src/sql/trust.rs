//! `TrustStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `TrustStore` for `$store` on the sqlx database `$db`.
macro_rules! impl_trust_store {
    ($store:ty, $db:ty) => {
        fn publisher_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::TrustedPublisher> {
            use sqlx::Row;
            Ok($crate::TrustedPublisher {
                id: r.try_get("id")?,
                package: r.try_get("package")?,
                kind: r.try_get("kind")?,
                claims: r.try_get("claims")?,
                permissions: r.try_get("permissions")?,
                bound: r.try_get("bound")?,
                created_by: r.try_get("created_by")?,
                created_at: r.try_get("created_at")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::TrustStore for $store {
            async fn add_trusted_publishers(
                &self,
                ps: &[$crate::TrustedPublisher],
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                for p in ps {
                sqlx::query(
                    "INSERT INTO trusted_publishers (id, package, kind, claims, permissions, \
                     bound, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&p.id)
                .bind(&p.package)
                .bind(&p.kind)
                .bind(&p.claims)
                .bind(&p.permissions)
                .bind(&p.bound)
                .bind(p.created_by)
                .bind(p.created_at)
                .execute(&mut *w.tx)
                .await
                .map_err($crate::sql::unique_to_conflict)?;
                }
                w.tx.commit().await?;
                Ok(())
            }

            async fn trusted_publishers(
                &self,
                package: &str,
            ) -> $crate::StoreResult<Vec<$crate::TrustedPublisher>> {
                let rows = sqlx::query(
                    "SELECT * FROM trusted_publishers WHERE package = $1 ORDER BY created_at, id",
                )
                .bind(package)
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(publisher_from_row).collect()
            }

            async fn remove_trusted_publisher(
                &self,
                package: &str,
                id: &str,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM trusted_publishers WHERE package = $1 AND id = $2")
                    .bind(package)
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn bind_trusted_publisher(
                &self,
                id: &str,
                bound: &str,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE trusted_publishers SET bound = $2 WHERE id = $1 AND bound IS NULL",
                )
                .bind(id)
                .bind(bound)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn use_jti(
                &self,
                jti_hash: &str,
                expires_at: i64,
                now: i64,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                sqlx::query("DELETE FROM oidc_jtis WHERE expires_at <= $1")
                    .bind(now)
                    .execute(&mut *w.tx)
                    .await?;
                let n = sqlx::query(
                    "INSERT INTO oidc_jtis (jti_hash, expires_at) VALUES ($1, $2) \
                     ON CONFLICT (jti_hash) DO NOTHING",
                )
                .bind(jti_hash)
                .bind(expires_at)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }
        }
    };
}

pub(crate) use impl_trust_store;
