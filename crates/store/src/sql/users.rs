//! `UserStore` over SQL, written once for every sqlx backend (see `sql/mod.rs`).

/// Implements `UserStore` for `$store` on the sqlx database `$db`.
macro_rules! impl_user_store {
    ($store:ty, $db:ty) => {
        /// Columns of a user with its 2FA summary; the query joins `totp tf`.
        const USER_COLUMNS: &str = "u.id, u.name, u.email, u.email_verified, u.password_hash, \
             u.fullname, u.homepage, u.twitter, u.github, u.freenode, u.is_admin, u.locked, \
             u.created_at, u.updated_at, tf.mode AS tfa_mode, tf.pending AS tfa_pending, \
             tf.started_at AS tfa_started_at, u.web_otp";
        const USER_FROM: &str = "users u LEFT JOIN totp tf ON tf.user_id = u.id";

        fn user_from_row(r: &<$db as sqlx::Database>::Row) -> $crate::StoreResult<$crate::User> {
            use sqlx::Row;
            Ok($crate::User {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                email: r.try_get("email")?,
                email_verified: r.try_get("email_verified")?,
                password_hash: r.try_get("password_hash")?,
                profile: $crate::Profile {
                    fullname: r.try_get("fullname")?,
                    homepage: r.try_get("homepage")?,
                    twitter: r.try_get("twitter")?,
                    github: r.try_get("github")?,
                    freenode: r.try_get("freenode")?,
                },
                is_admin: r.try_get("is_admin")?,
                locked: r.try_get("locked")?,
                web_otp: r.try_get("web_otp")?,
                two_factor: {
                    let mode: Option<String> = r.try_get("tfa_mode")?;
                    match mode.as_deref().and_then($crate::TwoFactorMode::parse) {
                        Some(mode) => Some($crate::TwoFactor {
                            status: if r
                                .try_get::<Option<bool>, _>("tfa_pending")?
                                .unwrap_or(true)
                            {
                                $crate::TwoFactorStatus::Pending(mode)
                            } else {
                                $crate::TwoFactorStatus::Active(mode)
                            },
                            started_at: r.try_get::<Option<i64>, _>("tfa_started_at")?.unwrap_or(0),
                        }),
                        None => None,
                    }
                },
                created_at: r.try_get("created_at")?,
                updated_at: r.try_get("updated_at")?,
            })
        }

        /// Bumps the shared counter that tells every server to drop its cached token lookups.
        async fn bump_auth_epoch(
            conn: &mut <$db as sqlx::Database>::Connection,
        ) -> $crate::StoreResult<()> {
            sqlx::query("UPDATE auth_epoch SET value = value + 1 WHERE id = 1")
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        async fn select_user(
            conn: &mut <$db as sqlx::Database>::Connection,
            id: i64,
        ) -> $crate::StoreResult<$crate::User> {
            let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.id = $1");
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
                .ok_or($crate::StoreError::NotFound)?;
            user_from_row(&row)
        }

        async fn insert_user(
            conn: &mut <$db as sqlx::Database>::Connection,
            user: &$crate::NewUser,
            now: i64,
        ) -> $crate::StoreResult<$crate::User> {
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO users (name, email, password_hash, is_admin, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
            )
            .bind(&user.name)
            .bind(&user.email)
            .bind(&user.password_hash)
            .bind(user.is_admin)
            .bind(now)
            .fetch_one(&mut *conn)
            .await
            .map_err($crate::sql::unique_to_conflict)?;
            select_user(conn, id).await
        }

        #[async_trait::async_trait]
        impl $crate::UserStore for $store {
            async fn create_user(
                &self,
                user: $crate::NewUser,
                now: i64,
            ) -> $crate::StoreResult<$crate::User> {
                let mut w = self.begin_write().await?;
                let u = insert_user(&mut *w.tx, &user, now).await?;
                w.tx.commit().await?;
                Ok(u)
            }

            async fn create_invited_user(
                &self,
                user: $crate::NewUser,
                secret_hash: &str,
                now: i64,
            ) -> $crate::StoreResult<Option<$crate::User>> {
                let mut w = self.begin_write().await?;
                let taken = sqlx::query(
                    "UPDATE invitations SET used_at = $1 WHERE secret_hash = $2 AND name = $3 \
                     AND used_at IS NULL AND expires_at > $1",
                )
                .bind(now)
                .bind(secret_hash)
                .bind(&user.name)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                if taken != 1 {
                    return Ok(None);
                }
                let u = insert_user(&mut *w.tx, &user, now).await?;
                w.tx.commit().await?;
                Ok(Some(u))
            }

            async fn user_by_name(&self, name: &str) -> $crate::StoreResult<Option<$crate::User>> {
                let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.name = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn user_by_id(
                &self,
                id: $crate::UserId,
            ) -> $crate::StoreResult<Option<$crate::User>> {
                let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} WHERE u.id = $1");
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn list_users(&self) -> $crate::StoreResult<Vec<$crate::User>> {
                let sql = format!("SELECT {USER_COLUMNS} FROM {USER_FROM} ORDER BY u.name");
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(user_from_row).collect()
            }

            async fn touch_user(&self, id: $crate::UserId, now: i64) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                sqlx::query("UPDATE users SET updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn update_profile(
                &self,
                id: $crate::UserId,
                email: &str,
                email_verified: bool,
                profile: &$crate::Profile,
                now: i64,
            ) -> $crate::StoreResult<$crate::User> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE users SET email = $1, email_verified = $2, fullname = $3, \
                     homepage = $4, twitter = $5, github = $6, freenode = $7, updated_at = $8 \
                     WHERE id = $9",
                )
                .bind(email)
                .bind(email_verified)
                .bind(&profile.fullname)
                .bind(&profile.homepage)
                .bind(&profile.twitter)
                .bind(&profile.github)
                .bind(&profile.freenode)
                .bind(now)
                .bind(id)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                let u = select_user(&mut *w.tx, id).await?;
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(u)
            }

            async fn set_password_hash(
                &self,
                id: $crate::UserId,
                hash: &str,
                now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query(
                    "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3",
                )
                .bind(hash)
                .bind(now)
                .bind(id)
                .execute(&mut *w.tx)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(())
            }

            async fn set_locked(
                &self,
                id: $crate::UserId,
                locked: bool,
                now: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                let n = sqlx::query("UPDATE users SET locked = $1, updated_at = $2 WHERE id = $3")
                    .bind(locked)
                    .bind(now)
                    .bind(id)
                    .execute(&mut *w.tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                bump_auth_epoch(&mut *w.tx).await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(())
            }

            async fn invitation(
                &self,
                secret_hash: &str,
                now: i64,
            ) -> $crate::StoreResult<Option<$crate::Invitation>> {
                use sqlx::Row;
                let row = sqlx::query(
                    "SELECT name, email, expires_at FROM invitations WHERE secret_hash = $1 \
                     AND used_at IS NULL AND expires_at > $2",
                )
                .bind(secret_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|r| {
                    Ok($crate::Invitation {
                        name: r.try_get("name")?,
                        email: r.try_get("email")?,
                        expires_at: r.try_get("expires_at")?,
                    })
                })
                .transpose()
            }

            async fn create_invitation(
                &self,
                name: &str,
                email: &str,
                secret_hash: &str,
                now: i64,
                expires_at: i64,
            ) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                // A new invitation replaces any earlier one for the name: one live link each.
                sqlx::query(
                    "UPDATE invitations SET expires_at = $1 WHERE name = $2 AND used_at IS NULL \
                     AND expires_at > $1",
                )
                .bind(now)
                .bind(name)
                .execute(&mut *w.tx)
                .await?;
                sqlx::query(
                    "INSERT INTO invitations (name, email, secret_hash, created_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(name)
                .bind(email)
                .bind(secret_hash)
                .bind(now)
                .bind(expires_at)
                .execute(&mut *w.tx)
                .await?;
                w.tx.commit().await?;
                Ok(())
            }

            async fn auth_epoch(&self) -> $crate::StoreResult<i64> {
                Ok(sqlx::query_scalar("SELECT value FROM auth_epoch WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?)
            }

            fn forget_cached_auth(&self) {
                self.auth_cache.invalidate();
            }

            fn shared(&self) -> bool {
                Self::SHARED
            }
        }
    };
}

pub(crate) use impl_user_store;
