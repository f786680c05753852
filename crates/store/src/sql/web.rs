//! `WebStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `WebStore` for `$store` on the sqlx database `$db`.
macro_rules! impl_web_store {
    ($store:ty, $db:ty) => {
        fn session_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::Session> {
            use sqlx::Row;
            let stage: String = r.try_get("stage")?;
            Ok($crate::Session {
                id_hash: r.try_get("id_hash")?,
                user_id: r.try_get("user_id")?,
                stage: $crate::SessionStage::parse(&stage)
                    .ok_or_else(|| $crate::StoreError::Corrupt(format!("session stage {stage}")))?,
                csrf: r.try_get("csrf")?,
                created_at: r.try_get("created_at")?,
                last_seen_at: r.try_get("last_seen_at")?,
                authenticated_at: r.try_get("authenticated_at")?,
                otp_attempts: r.try_get("otp_attempts")?,
                return_to: r.try_get("return_to")?,
            })
        }

        async fn insert_session(
            conn: &mut <$db as sqlx::Database>::Connection,
            s: &$crate::Session,
        ) -> $crate::StoreResult<()> {
            sqlx::query(
                "INSERT INTO sessions (id_hash, user_id, stage, csrf, created_at, last_seen_at, \
                 authenticated_at, otp_attempts, return_to) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&s.id_hash)
            .bind(s.user_id)
            .bind(s.stage.as_str())
            .bind(&s.csrf)
            .bind(s.created_at)
            .bind(s.last_seen_at)
            .bind(s.authenticated_at)
            .bind(s.otp_attempts)
            .bind(&s.return_to)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::WebStore for $store {
            async fn create_session(&self, session: &$crate::Session) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                insert_session(&mut *w.tx, session).await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn session(&self, id_hash: &str) -> $crate::StoreResult<Option<$crate::Session>> {
                let row = sqlx::query("SELECT * FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(session_from_row).transpose()
            }

            async fn rotate_session(&self, old_hash: &str, new: &$crate::Session) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(old_hash)
                    .execute(&mut *w.tx)
                    .await?;
                insert_session(&mut *w.tx, new).await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn touch_session(&self, id_hash: &str, now: i64) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id_hash = $2")
                    .bind(now)
                    .bind(id_hash)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn reauthenticate_session(&self, id_hash: &str, now: i64) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("UPDATE sessions SET authenticated_at = $1, last_seen_at = $1 WHERE id_hash = $2")
                    .bind(now)
                    .bind(id_hash)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn bump_session_otp_attempts(&self, id_hash: &str) -> $crate::StoreResult<i64> {
                let mut w = self.begin_write().await?;
                let n: Option<i64> = sqlx::query_scalar(
                    "UPDATE sessions SET otp_attempts = otp_attempts + 1 WHERE id_hash = $1 RETURNING otp_attempts",
                )
                .bind(id_hash)
                .fetch_optional(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(n.unwrap_or(i64::MAX))
            }

            async fn delete_session(&self, id_hash: &str) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn delete_user_sessions(&self, user: $crate::UserId, keep: Option<&str>) -> $crate::StoreResult<u64> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2")
                    .bind(user)
                    .bind(keep.unwrap_or(""))
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                w.tx.commit().await?;
                Ok(n)
            }

            async fn prune_sessions(&self, idle_before: i64, created_before: i64) -> $crate::StoreResult<u64> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2")
                    .bind(idle_before)
                    .bind(created_before)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM handshakes WHERE expires_at < $1")
                    .bind(idle_before)
                    .execute(&mut *w.tx)
                    .await?;
                sqlx::query("DELETE FROM webauthn_ceremonies WHERE expires_at < $1")
                    .bind(idle_before)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(n)
            }

            async fn create_handshake(
                &self,
                kind: $crate::HandshakeKind,
                login_hash: &str,
                done_hash: &str,
                create_account: bool,
                needs_key: bool,
                user: Option<$crate::UserId>,
                now: i64,
                expires_at: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query(
                    "INSERT INTO handshakes (kind, login_hash, done_hash, create_account, user_id, \
                     created_at, expires_at, needs_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(kind.as_str())
                .bind(login_hash)
                .bind(done_hash)
                .bind(create_account)
                .bind(user)
                .bind(now)
                .bind(expires_at)
                .bind(needs_key)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn handshake(&self, login_hash: &str) -> $crate::StoreResult<Option<$crate::Handshake>> {
                use sqlx::Row;
                let row = sqlx::query("SELECT * FROM handshakes WHERE login_hash = $1")
                    .bind(login_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                let Some(r) = row else { return Ok(None) };
                let kind: String = r.try_get("kind")?;
                Ok(Some($crate::Handshake {
                    id: r.try_get("id")?,
                    kind: if kind == "otp" { $crate::HandshakeKind::Otp } else { $crate::HandshakeKind::Login },
                    create_account: r.try_get("create_account")?,
                    needs_key: r.try_get("needs_key")?,
                    user_id: r.try_get("user_id")?,
                    created_at: r.try_get("created_at")?,
                    expires_at: r.try_get("expires_at")?,
                    approved_at: r.try_get("approved_at")?,
                    denied_at: r.try_get("denied_at")?,
                    used_at: r.try_get("used_at")?,
                }))
            }

            async fn approve_handshake(&self, login_hash: &str, user: $crate::UserId, now: i64, with_key: bool) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                // A web-OTP handshake can only be approved by the account it was made for, and
                // one that asked for a key only with a key.
                let n = sqlx::query(
                    "UPDATE handshakes SET approved_at = $1, user_id = $2, approved_with_key = $4 \
                     WHERE login_hash = $3 \
                     AND approved_at IS NULL AND denied_at IS NULL AND used_at IS NULL AND expires_at > $1 \
                     AND (kind = 'login' OR user_id = $2) AND (NOT needs_key OR $4)",
                )
                .bind(now)
                .bind(user)
                .bind(login_hash)
                .bind(with_key)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn deny_handshake(&self, login_hash: &str, now: i64) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE handshakes SET denied_at = $1 WHERE login_hash = $2 AND approved_at IS NULL \
                     AND denied_at IS NULL AND used_at IS NULL",
                )
                .bind(now)
                .bind(login_hash)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn poll_handshake(&self, done_hash: &str, now: i64) -> $crate::StoreResult<$crate::HandshakePoll> {
                use sqlx::Row;
                let mut w = self.begin_write().await?;
                let row = sqlx::query(
                    "UPDATE handshakes SET used_at = $1 WHERE done_hash = $2 AND approved_at IS NOT NULL \
                     AND used_at IS NULL AND expires_at > $1 RETURNING id, kind, user_id",
                )
                .bind(now)
                .bind(done_hash)
                .fetch_optional(&mut *w.tx)
                .await?;
                if let Some(r) = row {
                    let kind: String = r.try_get("kind")?;
                    let user: Option<i64> = r.try_get("user_id")?;
                    w.tx.commit().await?;
                    return Ok(match user {
                        Some(user_id) => $crate::HandshakePoll::Approved {
                            id: r.try_get("id")?,
                            kind: if kind == "otp" { $crate::HandshakeKind::Otp } else { $crate::HandshakeKind::Login },
                            user_id,
                        },
                        None => $crate::HandshakePoll::Gone,
                    });
                }
                let state = sqlx::query(
                    "SELECT denied_at, used_at, expires_at FROM handshakes WHERE done_hash = $1",
                )
                .bind(done_hash)
                .fetch_optional(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                let Some(r) = state else { return Ok($crate::HandshakePoll::Gone) };
                let denied: Option<i64> = r.try_get("denied_at")?;
                let used: Option<i64> = r.try_get("used_at")?;
                let expires: i64 = r.try_get("expires_at")?;
                Ok(if denied.is_some() {
                    $crate::HandshakePoll::Denied
                } else if used.is_some() || expires <= now {
                    $crate::HandshakePoll::Gone
                } else {
                    $crate::HandshakePoll::Pending
                })
            }

            async fn set_handshake_result(&self, id: i64, result_hash: &str) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("UPDATE handshakes SET result_hash = $1 WHERE id = $2")
                    .bind(result_hash)
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn use_web_otp(
                &self,
                user: $crate::UserId,
                result_hash: &str,
                credential: &str,
                now: i64,
                issued_after: i64,
                need_key: bool,
            ) -> $crate::StoreResult<bool> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE handshakes SET result_used_by = $1, result_used_at = $2 \
                     WHERE kind = 'otp' AND user_id = $3 AND result_hash = $4 AND created_at > $5 \
                     AND result_used_at IS NULL AND (approved_with_key OR NOT $6)",
                )
                .bind(credential)
                .bind(now)
                .bind(user)
                .bind(result_hash)
                .bind(issued_after)
                .bind(need_key)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                w.tx.commit().await?;
                Ok(n == 1)
            }

            async fn set_web_otp(&self, user: $crate::UserId, on: bool) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("UPDATE users SET web_otp = $1 WHERE id = $2")
                    .bind(on)
                    .bind(user)
                    .execute(&mut *w.tx)
                    .await?;
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(())
            }
        }
    };
}

pub(crate) use impl_web_store;
