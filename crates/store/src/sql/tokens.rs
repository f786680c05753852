//! `TokenStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `TokenStore` for `$store` on the sqlx database `$db`.
macro_rules! impl_token_store {
    ($store:ty, $db:ty) => {
        const TOKEN_COLUMNS: &str = "t.id AS t_id, t.user_id, t.token_hash, t.display_prefix, \
             t.kind, t.name AS t_name, t.description, t.readonly, t.bypass_2fa, t.cidr_whitelist, \
             t.grants, t.expires_at, t.created_at AS t_created_at, t.updated_at AS t_updated_at";

        fn token_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::Token> {
            use sqlx::Row;
            let kind: String = r.try_get("kind")?;
            let cidr: String = r.try_get("cidr_whitelist")?;
            let grants: String = r.try_get("grants")?;
            Ok($crate::Token {
                id: r.try_get("t_id")?,
                user_id: r.try_get("user_id")?,
                token_hash: r.try_get("token_hash")?,
                display_prefix: r.try_get("display_prefix")?,
                kind: $crate::TokenKind::parse(&kind)
                    .ok_or_else(|| $crate::StoreError::Corrupt(format!("token kind {kind}")))?,
                name: r.try_get("t_name")?,
                description: r.try_get("description")?,
                readonly: r.try_get("readonly")?,
                bypass_2fa: r.try_get("bypass_2fa")?,
                cidr_whitelist: serde_json::from_str(&cidr)
                    .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?,
                grants: serde_json::from_str(&grants)
                    .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?,
                expires_at: r.try_get("expires_at")?,
                created_at: r.try_get("t_created_at")?,
                updated_at: r.try_get("t_updated_at")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::TokenStore for $store {
            async fn create_token(
                &self,
                t: $crate::NewToken,
                now: i64,
            ) -> $crate::StoreResult<$crate::Token> {
                let mut w = self.begin_write().await?;
                let cidr = serde_json::to_string(&t.cidr_whitelist)
                    .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                let grants = serde_json::to_string(&t.grants)
                    .map_err(|e| $crate::StoreError::Corrupt(e.to_string()))?;
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO tokens (user_id, token_hash, display_prefix, kind, name, \
                     description, readonly, bypass_2fa, cidr_whitelist, grants, expires_at, \
                     created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) RETURNING id",
                )
                .bind(t.user_id)
                .bind(&t.token_hash)
                .bind(&t.display_prefix)
                .bind(t.kind.as_str())
                .bind(&t.name)
                .bind(&t.description)
                .bind(t.readonly)
                .bind(t.bypass_2fa)
                .bind(cidr)
                .bind(grants)
                .bind(t.expires_at)
                .bind(now)
                .fetch_one(&mut *w.tx)
                .await
                .map_err($crate::sql::unique_to_conflict)?;
                let sql = format!("SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_one(&mut *w.tx)
                    .await?;
                let token = token_from_row(&row)?;
                w.tx.commit().await?;
                Ok(token)
            }

            async fn token_by_hash(
                &self,
                hash: &str,
            ) -> $crate::StoreResult<Option<($crate::Token, $crate::User)>> {
                if let Some(hit) = self.auth_cache.get(hash) {
                    return Ok(Some(hit));
                }
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS}, {USER_COLUMNS} FROM tokens t \
                     JOIN users u ON u.id = t.user_id LEFT JOIN totp tf ON tf.user_id = u.id \
                     WHERE t.token_hash = $1"
                );
                let epoch = self.auth_cache.epoch();
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(hash)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Ok(None),
                    Some(r) => {
                        let (token, user) = (token_from_row(&r)?, user_from_row(&r)?);
                        self.auth_cache.put(hash, epoch, &token, &user);
                        Ok(Some((token, user)))
                    }
                }
            }

            async fn tokens_expiring(
                &self,
                user: Option<$crate::UserId>,
                now: i64,
                before: i64,
            ) -> $crate::StoreResult<Vec<($crate::Token, String)>> {
                use sqlx::Row;
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS}, u.name AS owner_name FROM tokens t \
                     JOIN users u ON u.id = t.user_id \
                     WHERE t.expires_at > $1 AND t.expires_at <= $2 \
                     AND ($3 IS NULL OR t.user_id = $3) \
                     ORDER BY t.expires_at, t.id"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(now)
                    .bind(before)
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok((token_from_row(r)?, r.try_get("owner_name")?)))
                    .collect()
            }

            async fn list_tokens(
                &self,
                user: $crate::UserId,
                logins: bool,
                offset: i64,
                limit: i64,
            ) -> $crate::StoreResult<(Vec<$crate::Token>, i64)> {
                use sqlx::Row;
                let sql = format!(
                    "SELECT {TOKEN_COLUMNS} FROM tokens t WHERE t.user_id = $1 \
                     AND ($4 OR t.kind <> 'login') \
                     ORDER BY t.created_at DESC, t.id DESC LIMIT $2 OFFSET $3"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .bind(limit)
                    .bind(offset)
                    .bind(logins)
                    .fetch_all(&self.pool)
                    .await?;
                let total: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM tokens WHERE user_id = $1 \
                     AND ($2 OR kind <> 'login')",
                )
                    .bind(user)
                    .bind(logins)
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
                let tokens = rows.iter().map(token_from_row).collect::<Result<_, _>>()?;
                Ok((tokens, total))
            }

            async fn delete_token(
                &self,
                user: $crate::UserId,
                hash: &str,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM tokens WHERE user_id = $1 AND token_hash = $2")
                    .bind(user)
                    .bind(hash)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(n == 1)
            }

            async fn delete_user_tokens(&self, user: $crate::UserId) -> $crate::StoreResult<u64> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM tokens WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(n)
            }
        }
    };
}

pub(crate) use impl_token_store;
