//! `TwoFactorStore` and `SecurityLog` over SQL, written once for every sqlx backend.

/// Implements `TwoFactorStore` and `SecurityLog` for `$store` on the sqlx database `$db`.
macro_rules! impl_two_factor_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::TwoFactorStore for $store {
            async fn totp(&self, user: $crate::UserId) -> $crate::StoreResult<Option<$crate::TotpRecord>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT mode, pending, secret_sealed, started_at, last_step, last_credential, \
                     has_totp, offered_at FROM totp WHERE user_id = $1",
                )
                .bind(user)
                .fetch_optional(&self.pool)
                .await?;
                let Some(r) = row else { return Ok(None) };
                let mode: String = r.try_get("mode")?;
                let mode = $crate::TwoFactorMode::parse(&mode)
                    .ok_or_else(|| $crate::StoreError::Corrupt(format!("2fa mode {mode}")))?;
                let pending: bool = r.try_get("pending")?;
                Ok(Some($crate::TotpRecord {
                    user_id: user,
                    state: $crate::TwoFactor {
                        status: if pending {
                            $crate::TwoFactorStatus::Pending(mode)
                        } else {
                            $crate::TwoFactorStatus::Active(mode)
                        },
                        started_at: r.try_get("started_at")?,
                    },
                    secret_sealed: r.try_get("secret_sealed")?,
                    has_totp: r.try_get("has_totp")?,
                    offered_at: r.try_get("offered_at")?,
                    last_step: r.try_get("last_step")?,
                    last_credential: r.try_get("last_credential")?,
                }))
            }

            async fn start_enrolment(
                &self,
                user: $crate::UserId,
                mode: $crate::TwoFactorMode,
                secret_sealed: &[u8],
                now: i64,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "INSERT INTO totp (user_id, mode, pending, secret_sealed, started_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (user_id) DO UPDATE SET mode = excluded.mode, \
                     secret_sealed = excluded.secret_sealed, started_at = excluded.started_at \
                     WHERE totp.pending = $3",
                )
                .bind(user)
                .bind(mode.as_str())
                .bind(true)
                .bind(secret_sealed)
                .bind(now)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(n == 1)
            }

            async fn offer_totp(
                &self,
                user: $crate::UserId,
                secret_sealed: &[u8],
                now: i64,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE totp SET secret_sealed = $2, offered_at = $3 \
                     WHERE user_id = $1 AND pending = $4 AND has_totp = $4",
                )
                .bind(user)
                .bind(secret_sealed)
                .bind(now)
                .bind(false)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn confirm_offered_totp(
                &self,
                user: $crate::UserId,
                offered_at: i64,
                step: i64,
                credential: &str,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE totp SET has_totp = $5, offered_at = NULL, last_step = $3, \
                     last_credential = $4 WHERE user_id = $1 AND offered_at = $2 \
                     AND pending = $6 AND has_totp = $6",
                )
                .bind(user)
                .bind(offered_at)
                .bind(step)
                .bind(credential)
                .bind(true)
                .bind(false)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(n == 1)
            }

            async fn confirm_enrolment(
                &self,
                user: $crate::UserId,
                started_at: i64,
                step: i64,
                credential: &str,
                recovery_hashes: &[String],
                now: i64,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE totp SET pending = $1, confirmed_at = $2, last_step = $3, \
                     last_credential = $4 WHERE user_id = $5 AND pending = $6 AND started_at = $7",
                )
                .bind(false)
                .bind(now)
                .bind(step)
                .bind(credential)
                .bind(user)
                .bind(true)
                .bind(started_at)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                if n != 1 {
                    return Ok(false);
                }
                replace_codes(&mut *w.tx, user, recovery_hashes).await?;
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(true)
            }

            async fn cancel_pending(&self, user: $crate::UserId) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM totp WHERE user_id = $1 AND pending = $2")
                    .bind(user)
                    .bind(true)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(n == 1)
            }

            async fn set_two_factor_mode(
                &self,
                user: $crate::UserId,
                mode: $crate::TwoFactorMode,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("UPDATE totp SET mode = $1 WHERE user_id = $2 AND pending = $3")
                    .bind(mode.as_str())
                    .bind(user)
                    .bind(false)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(n == 1)
            }

            async fn disable_two_factor(&self, user: $crate::UserId) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM totp WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM security_keys WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *w.tx)
                    .await?;
                sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(user)
                    .execute(&mut *w.tx)
                    .await?;
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(n == 1)
            }

            async fn consume_step(
                &self,
                user: $crate::UserId,
                step: i64,
                credential: &str,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE totp SET last_step = $1, last_credential = $2 \
                     WHERE user_id = $3 AND pending = $4 AND (last_step IS NULL OR last_step < $1 \
                     OR (last_step = $1 AND last_credential = $2))",
                )
                .bind(step)
                .bind(credential)
                .bind(user)
                .bind(false)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn use_recovery_code(
                &self,
                user: $crate::UserId,
                code_hash: &str,
                credential: &str,
                now: i64,
                repeat_after: i64,
            ) -> $crate::StoreResult<$crate::RecoveryUse> {
                let mut w = self.begin_write().await?;
                let first = sqlx::query(
                    "UPDATE recovery_codes SET used_at = $1, used_by = $2 \
                     WHERE user_id = $3 AND code_hash = $4 AND used_at IS NULL",
                )
                .bind(now)
                .bind(credential)
                .bind(user)
                .bind(code_hash)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                if first >= 1 {
                    w.tx.commit().await?;
                    return Ok($crate::RecoveryUse::FirstUse);
                }
                let used: Option<(Option<String>, Option<i64>)> = {
                    use sqlx::Row;
                    sqlx::query(
                        "SELECT used_by, used_at FROM recovery_codes WHERE user_id = $1 AND code_hash = $2",
                    )
                    .bind(user)
                    .bind(code_hash)
                    .fetch_optional(&mut *w.tx)
                    .await?
                    .map(|r| -> Result<_, sqlx::Error> { Ok((r.try_get("used_by")?, r.try_get("used_at")?)) })
                    .transpose()?
                };
                w.tx.commit().await?;
                Ok(match used {
                    None => $crate::RecoveryUse::Unknown,
                    Some((by, at)) if by.as_deref() == Some(credential) && at.is_some_and(|a| a > repeat_after) => {
                        $crate::RecoveryUse::Repeat
                    }
                    Some(_) => $crate::RecoveryUse::Spent,
                })
            }

            async fn replace_recovery_codes(
                &self,
                user: $crate::UserId,
                hashes: &[String],
                _now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                replace_codes(&mut *w.tx, user, hashes).await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn sealed_secrets(&self) -> $crate::StoreResult<Vec<($crate::UserId, Vec<u8>)>> {
                Ok(sqlx::query_as(
                    "SELECT user_id, secret_sealed FROM totp WHERE has_totp ORDER BY user_id",
                )
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn reseal_secret(
                &self,
                user: $crate::UserId,
                old: &[u8],
                new: &[u8],
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE totp SET secret_sealed = $1 WHERE user_id = $2 AND secret_sealed = $3",
                )
                .bind(new)
                .bind(user)
                .bind(old)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn recovery_codes_left(&self, user: $crate::UserId) -> $crate::StoreResult<i64> {
                Ok(sqlx::query_scalar(
                    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
                )
                .bind(user)
                .fetch_one(&self.pool)
                .await?)
            }

            async fn record_failure(
                &self,
                kind: $crate::FailureKind,
                user: Option<$crate::UserId>,
                ip: &str,
                now: i64,
                prune_before: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("INSERT INTO auth_failures (kind, user_id, ip, at) VALUES ($1, $2, $3, $4)")
                    .bind(kind.as_str())
                    .bind(user)
                    .bind(ip)
                    .bind(now)
                    .execute(&mut *w.tx)
                    .await?;
                sqlx::query("DELETE FROM auth_failures WHERE kind = $1 AND ip = $2 AND at < $3")
                    .bind(kind.as_str())
                    .bind(ip)
                    .bind(prune_before)
                    .execute(&mut *w.tx)
                    .await?;
                if let Some(u) = user {
                    sqlx::query("DELETE FROM auth_failures WHERE kind = $1 AND user_id = $2 AND at < $3")
                        .bind(kind.as_str())
                        .bind(u)
                        .bind(prune_before)
                        .execute(&mut *w.tx)
                        .await?;
                }
                w.tx.commit().await?;
                Ok(())
            }

            async fn reserve_attempt(
                &self,
                kind: $crate::FailureKind,
                user: Option<$crate::UserId>,
                ip: &str,
                now: i64,
                prune_before: i64,
                account_limits: &[$crate::Limit],
                address_limits: &[$crate::Limit],
            ) -> $crate::StoreResult<Result<i64, i64>> {
                let mut w = self.begin_write().await?;
                self.lock_attempts(&mut w, kind, user, ip).await?;
                sqlx::query("DELETE FROM auth_failures WHERE kind = $1 AND ip = $2 AND at < $3")
                    .bind(kind.as_str())
                    .bind(ip)
                    .bind(prune_before)
                    .execute(&mut *w.tx)
                    .await?;
                let mut wait = None;
                if let Some(u) = user {
                    let times: Vec<i64> = sqlx::query_scalar(
                        "SELECT at FROM auth_failures WHERE kind = $1 AND user_id = $2 AND at >= $3 ORDER BY at",
                    )
                    .bind(kind.as_str())
                    .bind(u)
                    .bind(prune_before)
                    .fetch_all(&mut *w.tx)
                    .await?;
                    wait = $crate::limit_wait(&times, account_limits, now);
                }
                let times: Vec<i64> = sqlx::query_scalar(
                    "SELECT at FROM auth_failures WHERE kind = $1 AND ip = $2 AND at >= $3 ORDER BY at",
                )
                .bind(kind.as_str())
                .bind(ip)
                .bind(prune_before)
                .fetch_all(&mut *w.tx)
                .await?;
                if let Some(x) = $crate::limit_wait(&times, address_limits, now) {
                    wait = Some(wait.map_or(x, |y: i64| y.max(x)));
                }
                if let Some(ms) = wait {
                    w.tx.commit().await?;
                    return Ok(Err(ms));
                }
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO auth_failures (kind, user_id, ip, at) VALUES ($1, $2, $3, $4) RETURNING id",
                )
                .bind(kind.as_str())
                .bind(user)
                .bind(ip)
                .bind(now)
                .fetch_one(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(Ok(id))
            }

            async fn release_attempt(&self, id: i64) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("DELETE FROM auth_failures WHERE id = $1")
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn failures_since(
                &self,
                kind: $crate::FailureKind,
                user: Option<$crate::UserId>,
                ip: Option<&str>,
                since: i64,
            ) -> $crate::StoreResult<Vec<i64>> {
                let rows: Vec<i64> = match (user, ip) {
                    (Some(u), _) => sqlx::query_scalar(
                        "SELECT at FROM auth_failures WHERE kind = $1 AND user_id = $2 AND at >= $3 ORDER BY at",
                    )
                    .bind(kind.as_str())
                    .bind(u)
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?,
                    (None, Some(ip)) => sqlx::query_scalar(
                        "SELECT at FROM auth_failures WHERE kind = $1 AND ip = $2 AND at >= $3 ORDER BY at",
                    )
                    .bind(kind.as_str())
                    .bind(ip)
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await?,
                    (None, None) => Vec::new(),
                };
                Ok(rows)
            }
        }

        async fn replace_codes(
            conn: &mut <$db as sqlx::Database>::Connection,
            user: $crate::UserId,
            hashes: &[String],
        ) -> $crate::StoreResult<()> {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                .bind(user)
                .execute(&mut *conn)
                .await?;
            for h in hashes {
                sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                    .bind(user)
                    .bind(h)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::SecurityLog for $store {
            async fn log_event(&self, user: $crate::UserId, e: $crate::SecurityEvent) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO security_events (user_id, at, kind, ip, user_agent, detail) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(user)
                .bind(e.at)
                .bind(&e.kind)
                .bind(&e.ip)
                .bind(&e.user_agent)
                .bind(&e.detail)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn signed_in_from(
                &self,
                user: $crate::UserId,
                ip: &str,
                kinds: &[&str],
                since: i64,
            ) -> $crate::StoreResult<bool> {
                let mut found = false;
                for kind in kinds {
                    let hit: Option<i64> = sqlx::query_scalar(
                        "SELECT id FROM security_events WHERE user_id = $1 AND ip = $2 AND kind = $3 \
                         AND at >= $4 LIMIT 1",
                    )
                    .bind(user)
                    .bind(ip)
                    .bind(*kind)
                    .bind(since)
                    .fetch_optional(&self.pool)
                    .await?;
                    found |= hit.is_some();
                    if found {
                        break;
                    }
                }
                Ok(found)
            }

            async fn events(&self, user: $crate::UserId, limit: i64) -> $crate::StoreResult<Vec<$crate::SecurityEvent>> {
                use sqlx::Row;
                let rows = sqlx::query(
                    "SELECT at, kind, ip, user_agent, detail FROM security_events WHERE user_id = $1 \
                     ORDER BY at DESC, id DESC LIMIT $2",
                )
                .bind(user)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in &rows {
                    out.push($crate::SecurityEvent {
                        at: r.try_get("at")?,
                        kind: r.try_get("kind")?,
                        ip: r.try_get("ip")?,
                        user_agent: r.try_get("user_agent")?,
                        detail: r.try_get("detail")?,
                    });
                }
                Ok(out)
            }
        }

        #[async_trait::async_trait]
        impl $crate::SettingsStore for $store {
            async fn setting(&self, key: &str) -> $crate::StoreResult<Option<String>> {
                Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn set_setting(&self, key: &str, value: Option<&str>, now: i64) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                match value {
                    Some(v) => {
                        sqlx::query(
                            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                        )
                        .bind(key)
                        .bind(v)
                        .bind(now)
                        .execute(&mut *w.tx)
                        .await?;
                    }
                    None => {
                        sqlx::query("DELETE FROM settings WHERE key = $1").bind(key).execute(&mut *w.tx).await?;
                    }
                }
                w.tx.commit().await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_two_factor_store;
