//! `SecurityKeyStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `SecurityKeyStore` for `$store` on the sqlx database `$db`.
macro_rules! impl_security_key_store {
    ($store:ty, $db:ty) => {
        const KEY_COLUMNS: &str = "id, user_id, name, credential_id, credential, counter, \
             backup_state, created_at, last_used_at";

        fn key_from_row(
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<$crate::SecurityKeyRecord> {
            use sqlx::Row;
            Ok($crate::SecurityKeyRecord {
                id: r.try_get("id")?,
                user_id: r.try_get("user_id")?,
                name: r.try_get("name")?,
                credential_id: r.try_get("credential_id")?,
                credential: r.try_get("credential")?,
                counter: r.try_get("counter")?,
                backup_state: r.try_get("backup_state")?,
                created_at: r.try_get("created_at")?,
                last_used_at: r.try_get("last_used_at")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::SecurityKeyStore for $store {
            async fn add_security_key(
                &self,
                key: $crate::NewSecurityKey,
                mode: $crate::TwoFactorMode,
                recovery_hashes: &[String],
                now: i64,
            ) -> $crate::StoreResult<($crate::SecurityKeyRecord, bool)> {
                let mut w = self.begin_write().await?;
                let active: Option<bool> =
                    sqlx::query_scalar("SELECT pending FROM totp WHERE user_id = $1")
                        .bind(key.user_id)
                        .fetch_optional(&mut *w.tx)
                        .await?;
                let turned_on = active != Some(false);
                if turned_on {
                    // No active 2FA (none, or a TOTP enrolment never confirmed): the key turns
                    // it on, without a TOTP secret.
                    sqlx::query("DELETE FROM totp WHERE user_id = $1")
                        .bind(key.user_id)
                        .execute(&mut *w.tx)
                        .await?;
                    sqlx::query(
                        "INSERT INTO totp (user_id, mode, pending, secret_sealed, started_at, \
                         confirmed_at, has_totp) VALUES ($1, $2, $3, $4, $5, $5, $6)",
                    )
                    .bind(key.user_id)
                    .bind(mode.as_str())
                    .bind(false)
                    .bind(Vec::<u8>::new())
                    .bind(now)
                    .bind(false)
                    .execute(&mut *w.tx)
                    .await?;
                    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                        .bind(key.user_id)
                        .execute(&mut *w.tx)
                        .await?;
                    for h in recovery_hashes {
                        sqlx::query(
                            "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)",
                        )
                        .bind(key.user_id)
                        .bind(h)
                        .execute(&mut *w.tx)
                        .await?;
                    }
                }
                let sql = format!(
                    "INSERT INTO security_keys (user_id, name, credential_id, credential, counter, \
                     backup_state, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     RETURNING {KEY_COLUMNS}"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(key.user_id)
                    .bind(&key.name)
                    .bind(&key.credential_id)
                    .bind(&key.credential)
                    .bind(key.counter)
                    .bind(key.backup_state)
                    .bind(now)
                    .fetch_one(&mut *w.tx)
                    .await
                    .map_err($crate::sql::unique_to_conflict)?;
                let record = key_from_row(&row)?;
                sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(key.user_id)
                    .execute(&mut *w.tx)
                    .await?;
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok((record, turned_on))
            }

            async fn security_keys(
                &self,
                user: $crate::UserId,
            ) -> $crate::StoreResult<Vec<$crate::SecurityKeyRecord>> {
                let sql = format!(
                    "SELECT {KEY_COLUMNS} FROM security_keys WHERE user_id = $1 ORDER BY id"
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(user)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(key_from_row).collect()
            }

            async fn record_key_use(
                &self,
                id: i64,
                credential: &str,
                counter: i64,
                backup_state: bool,
                now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "UPDATE security_keys SET credential = $1, counter = $2, backup_state = $3, \
                     last_used_at = $4 WHERE id = $5",
                )
                .bind(credential)
                .bind(counter)
                .bind(backup_state)
                .bind(now)
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn remove_security_key(
                &self,
                user: $crate::UserId,
                id: i64,
            ) -> $crate::StoreResult<$crate::KeyRemoval> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM security_keys WHERE id = $1 AND user_id = $2")
                    .bind(id)
                    .bind(user)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Ok($crate::KeyRemoval::NotFound);
                }
                let left: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM security_keys WHERE user_id = $1")
                        .bind(user)
                        .fetch_one(&mut *w.tx)
                        .await?;
                let has_totp: Option<bool> =
                    sqlx::query_scalar("SELECT has_totp FROM totp WHERE user_id = $1")
                        .bind(user)
                        .fetch_optional(&mut *w.tx)
                        .await?;
                let last = left == 0 && has_totp != Some(true);
                if last {
                    sqlx::query("DELETE FROM totp WHERE user_id = $1")
                        .bind(user)
                        .execute(&mut *w.tx)
                        .await?;
                    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                        .bind(user)
                        .execute(&mut *w.tx)
                        .await?;
                }
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(if last {
                    $crate::KeyRemoval::RemovedLastFactor
                } else {
                    $crate::KeyRemoval::Removed
                })
            }

            async fn create_ceremony(&self, c: &$crate::Ceremony) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO webauthn_ceremonies (id_hash, user_id, kind, bound_to, state, \
                     created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&c.id_hash)
                .bind(c.user_id)
                .bind(c.kind.as_str())
                .bind(&c.bound_to)
                .bind(&c.state)
                .bind(c.created_at)
                .bind(c.expires_at)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn take_ceremony(
                &self,
                id_hash: &str,
                now: i64,
            ) -> $crate::StoreResult<Option<$crate::Ceremony>> {
                use sqlx::Row;
                let mut w = self.begin_write().await?;
                let row = sqlx::query(
                    "DELETE FROM webauthn_ceremonies WHERE id_hash = $1 RETURNING user_id, kind, \
                     bound_to, state, created_at, expires_at",
                )
                .bind(id_hash)
                .fetch_optional(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                let Some(r) = row else { return Ok(None) };
                let kind: String = r.try_get("kind")?;
                let c = $crate::Ceremony {
                    id_hash: id_hash.to_owned(),
                    user_id: r.try_get("user_id")?,
                    kind: $crate::CeremonyKind::parse(&kind).ok_or_else(|| {
                        $crate::StoreError::Corrupt(format!("ceremony kind {kind}"))
                    })?,
                    bound_to: r.try_get("bound_to")?,
                    state: r.try_get("state")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                };
                Ok((c.expires_at > now).then_some(c))
            }
        }
    };
}

pub(crate) use impl_security_key_store;
