//! Moving a whole registry between backends (`tessera admin export` / `import`): every table,
//! described once here, read as JSON values in one snapshot and written back in batches.

use async_trait::async_trait;
use serde_json::Value;

use crate::StoreResult;

/// A column's type, as both backends store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    /// `INTEGER` / `BIGINT NOT NULL`.
    Int,
    /// Nullable integer.
    OptInt,
    /// `TEXT NOT NULL`.
    Text,
    /// Nullable text.
    OptText,
    /// Boolean (`INTEGER` 0/1 on SQLite).
    Bool,
    /// `BLOB` / `BYTEA`, carried as base64.
    Bytes,
}

/// A table to move.
#[derive(Debug)]
pub struct Table {
    /// Table name.
    pub name: &'static str,
    /// Columns, in order.
    pub cols: &'static [(&'static str, Col)],
    /// Stable order of the rows (the primary key).
    pub order_by: &'static str,
    /// Whether `id` is generated (its sequence must be moved past the imported ids).
    pub identity: bool,
}

use Col::*;

/// Every table with data, parents before children. `auth_epoch`, `packument_epoch` (counters) and
/// `_sqlx_migrations` (each backend's own) are not moved.
pub const TABLES: &[Table] = &[
    Table {
        name: "users",
        cols: &[
            ("id", Int),
            ("name", Text),
            ("email", Text),
            ("email_verified", Bool),
            ("password_hash", Text),
            ("fullname", OptText),
            ("homepage", OptText),
            ("twitter", OptText),
            ("github", OptText),
            ("freenode", OptText),
            ("is_admin", Bool),
            ("locked", Bool),
            ("created_at", Int),
            ("updated_at", Int),
            ("web_otp", Bool),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "invitations",
        cols: &[
            ("id", Int),
            ("name", Text),
            ("email", Text),
            ("created_at", Int),
            ("expires_at", Int),
            ("used_at", OptInt),
            ("secret_hash", OptText),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "tokens",
        cols: &[
            ("id", Int),
            ("user_id", Int),
            ("token_hash", Text),
            ("display_prefix", Text),
            ("kind", Text),
            ("name", OptText),
            ("description", OptText),
            ("readonly", Bool),
            ("bypass_2fa", Bool),
            ("cidr_whitelist", Text),
            ("grants", Text),
            ("expires_at", OptInt),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "packages",
        cols: &[
            ("id", Int),
            ("name", Text),
            ("access", Text),
            ("rev", Int),
            ("description", OptText),
            ("keywords", Text),
            ("publish_requires_tfa", Bool),
            ("automation_overrides_tfa", Bool),
            ("tokens_refused", Bool),
            ("staged_publishes", Bool),
            ("provenance_required", Bool),
            ("created_at", Int),
            ("modified_at", Int),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "versions",
        cols: &[
            ("package_id", Int),
            ("version", Text),
            ("manifest", Text),
            ("readme", OptText),
            ("tarball_sha512", Text),
            ("shasum", Text),
            ("integrity", Text),
            ("size", Int),
            ("deprecated", OptText),
            ("publisher_id", OptInt),
            ("published_at", Int),
            ("signatures", OptText),
        ],
        order_by: "package_id, version",
        identity: false,
    },
    Table {
        name: "provenance",
        cols: &[
            ("package_id", Int),
            ("version", Text),
            ("predicate_type", Text),
            ("bundle", Text),
            ("summary", Text),
            ("created_at", Int),
        ],
        order_by: "package_id, version",
        identity: false,
    },
    Table {
        name: "publish_attestations",
        cols: &[
            ("package_id", Int),
            ("version", Text),
            ("keyid", Text),
            ("bundle", Text),
            ("integrated_at", Int),
        ],
        order_by: "package_id, version",
        identity: false,
    },
    Table {
        name: "retired_versions",
        cols: &[
            ("package_name", Text),
            ("version", Text),
            ("retired_at", Int),
        ],
        order_by: "package_name, version",
        identity: false,
    },
    Table {
        name: "unpublished_names",
        cols: &[
            ("name", Text),
            ("unpublished_at", Int),
            ("maintainers", Text),
        ],
        order_by: "name",
        identity: false,
    },
    Table {
        name: "dist_tags",
        cols: &[("package_id", Int), ("tag", Text), ("version", Text)],
        order_by: "package_id, tag",
        identity: false,
    },
    Table {
        name: "maintainers",
        cols: &[("package_id", Int), ("user_id", Int)],
        order_by: "package_id, user_id",
        identity: false,
    },
    Table {
        name: "stars",
        cols: &[("package_id", Int), ("user_id", Int)],
        order_by: "package_id, user_id",
        identity: false,
    },
    Table {
        name: "totp",
        cols: &[
            ("user_id", Int),
            ("mode", Text),
            ("pending", Bool),
            ("secret_sealed", Bytes),
            ("started_at", Int),
            ("confirmed_at", OptInt),
            ("last_step", OptInt),
            ("last_credential", OptText),
            ("has_totp", Bool),
            ("offered_at", OptInt),
        ],
        order_by: "user_id",
        identity: false,
    },
    Table {
        name: "security_keys",
        cols: &[
            ("id", Int),
            ("user_id", Int),
            ("name", Text),
            ("credential_id", Text),
            ("credential", Text),
            ("counter", Int),
            ("backup_state", Bool),
            ("created_at", Int),
            ("last_used_at", OptInt),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "recovery_codes",
        cols: &[
            ("id", Int),
            ("user_id", Int),
            ("code_hash", Text),
            ("used_at", OptInt),
            ("used_by", OptText),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "auth_failures",
        cols: &[
            ("id", Int),
            ("kind", Text),
            ("user_id", OptInt),
            ("ip", Text),
            ("at", Int),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "security_events",
        cols: &[
            ("id", Int),
            ("user_id", Int),
            ("at", Int),
            ("kind", Text),
            ("ip", Text),
            ("user_agent", Text),
            ("detail", Text),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "settings",
        cols: &[("key", Text), ("value", Text), ("updated_at", Int)],
        order_by: "key",
        identity: false,
    },
    Table {
        name: "sessions",
        cols: &[
            ("id_hash", Text),
            ("user_id", OptInt),
            ("stage", Text),
            ("csrf", Text),
            ("created_at", Int),
            ("last_seen_at", Int),
            ("authenticated_at", Int),
            ("otp_attempts", Int),
            ("return_to", OptText),
        ],
        order_by: "id_hash",
        identity: false,
    },
    Table {
        name: "handshakes",
        cols: &[
            ("id", Int),
            ("kind", Text),
            ("login_hash", Text),
            ("done_hash", Text),
            ("create_account", Bool),
            ("user_id", OptInt),
            ("created_at", Int),
            ("expires_at", Int),
            ("approved_at", OptInt),
            ("denied_at", OptInt),
            ("used_at", OptInt),
            ("result_hash", OptText),
            ("result_used_by", OptText),
            ("result_used_at", OptInt),
            ("needs_key", Bool),
            ("approved_with_key", Bool),
        ],
        order_by: "id",
        identity: true,
    },
    Table {
        name: "trusted_publishers",
        cols: &[
            ("id", Text),
            ("package", Text),
            ("kind", Text),
            ("claims", Text),
            ("permissions", Text),
            ("bound", OptText),
            ("created_by", Int),
            ("created_at", Int),
        ],
        order_by: "id",
        identity: false,
    },
    Table {
        name: "oidc_jtis",
        cols: &[("jti_hash", Text), ("expires_at", Int)],
        order_by: "jti_hash",
        identity: false,
    },
    Table {
        name: "staged_versions",
        cols: &[
            ("id", Text),
            ("package_name", Text),
            ("version", Text),
            ("tag", Text),
            ("access", OptText),
            ("manifest", Text),
            ("readme", OptText),
            ("tarball_sha512", Text),
            ("shasum", Text),
            ("integrity", Text),
            ("size", Int),
            ("description", OptText),
            ("keywords", Text),
            ("owner_id", Int),
            ("actor", Text),
            ("actor_type", Text),
            ("created_at", Int),
            ("provenance", OptText),
        ],
        order_by: "id",
        identity: false,
    },
    Table {
        name: "upstream_packuments",
        cols: &[
            ("name", Text),
            ("uplink", Text),
            ("status", Int),
            ("etag", OptText),
            ("body", Bytes),
            ("fetched_at", Int),
            ("checked_at", Int),
        ],
        order_by: "name",
        identity: false,
    },
    Table {
        name: "upstream_tarballs",
        cols: &[
            ("name", Text),
            ("version", Text),
            ("uplink", Text),
            ("tarball_sha512", Text),
            ("integrity", Text),
            ("size", Int),
            ("fetched_at", Int),
        ],
        order_by: "name, version",
        identity: false,
    },
    Table {
        name: "signing_keys",
        cols: &[
            ("keyid", Text),
            ("public_key", Text),
            ("sealed_private", Bytes),
            ("created_at", Int),
            ("expires_at", OptInt),
        ],
        order_by: "created_at, keyid",
        identity: false,
    },
    Table {
        name: "allowed_names",
        cols: &[("name", Text), ("allowed_by", Text), ("created_at", Int)],
        order_by: "name",
        identity: false,
    },
];

/// Tables deliberately not moved.
pub const NOT_MOVED: &[&str] = &[
    "auth_epoch",
    "packument_epoch",
    "_sqlx_migrations",
    "sqlite_sequence",
    // WebAuthn ceremonies live five minutes: one under way during a move is simply begun again.
    "webauthn_ceremonies",
    // An uplink's breaker and who is fetching what: the new registry learns them afresh.
    "uplink_health",
    "upstream_fetches",
];

/// The table called `name`.
pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

/// One item of an export stream.
#[derive(Debug)]
pub enum ExportItem {
    /// The rows that follow belong to this table.
    Table(&'static Table),
    /// A row, its values in the table's column order.
    Row(Vec<Value>),
}

/// Whole-registry export and import.
#[async_trait]
pub trait Transfer: Send + Sync {
    /// Sends every row of every table, in one consistent snapshot, to `sink`.
    async fn export(&self, sink: tokio::sync::mpsc::Sender<ExportItem>) -> StoreResult<()>;
    /// Whether every table is empty (an import target must be a registry nobody has used yet).
    async fn is_empty(&self) -> StoreResult<bool>;
    /// Inserts rows into `table` in one transaction.
    async fn import_rows(&self, table: &'static Table, rows: Vec<Vec<Value>>) -> StoreResult<()>;
    /// Finishes an import: generated ids continue after the imported ones, and every server
    /// drops what it cached.
    async fn import_finish(&self) -> StoreResult<()>;
    /// Rows in `table`.
    async fn count_rows(&self, table: &'static Table) -> StoreResult<i64>;
    /// Every tarball address the versions and staged versions refer to, with its
    /// `integrity`.
    async fn tarball_refs(&self) -> StoreResult<Vec<(String, String)>>;
}

/// A stored value as JSON.
pub(crate) fn bytes_to_json(b: Vec<u8>) -> Value {
    Value::String(data_encoding::BASE64.encode(&b))
}

/// A JSON value of an import row, checked against the column type.
pub(crate) fn bad(table: &Table, col: &str) -> crate::StoreError {
    crate::StoreError::Corrupt(format!("{}.{col}: value of the wrong type", table.name))
}

/// Decodes base64 bytes.
pub(crate) fn json_to_bytes(table: &Table, col: &str, v: &Value) -> StoreResult<Vec<u8>> {
    v.as_str()
        .and_then(|s| data_encoding::BASE64.decode(s.as_bytes()).ok())
        .ok_or_else(|| bad(table, col))
}

/// Implements `Transfer` for `$store` on the sqlx database `$db`.
macro_rules! impl_transfer {
    ($store:ty, $db:ty) => {
        fn transfer_row(
            t: &$crate::transfer::Table,
            r: &<$db as sqlx::Database>::Row,
        ) -> $crate::StoreResult<Vec<serde_json::Value>> {
            use serde_json::Value;
            use sqlx::Row;
            use $crate::transfer::Col;
            let mut out = Vec::with_capacity(t.cols.len());
            for (i, (_, kind)) in t.cols.iter().enumerate() {
                out.push(match kind {
                    Col::Int => Value::from(r.try_get::<i64, _>(i)?),
                    Col::OptInt => r
                        .try_get::<Option<i64>, _>(i)?
                        .map_or(Value::Null, Value::from),
                    Col::Text => Value::from(r.try_get::<String, _>(i)?),
                    Col::OptText => r
                        .try_get::<Option<String>, _>(i)?
                        .map_or(Value::Null, Value::from),
                    Col::Bool => Value::from(r.try_get::<bool, _>(i)?),
                    Col::Bytes => $crate::transfer::bytes_to_json(r.try_get::<Vec<u8>, _>(i)?),
                });
            }
            Ok(out)
        }

        #[async_trait::async_trait]
        impl $crate::transfer::Transfer for $store {
            async fn export(
                &self,
                sink: tokio::sync::mpsc::Sender<$crate::transfer::ExportItem>,
            ) -> $crate::StoreResult<()> {
                use futures::TryStreamExt;
                use $crate::transfer::ExportItem;
                let mut tx = self.begin_read().await?;
                for t in $crate::transfer::TABLES {
                    if sink.send(ExportItem::Table(t)).await.is_err() {
                        return Ok(());
                    }
                    let cols: Vec<&str> = t.cols.iter().map(|(c, _)| *c).collect();
                    let sql = format!(
                        "SELECT {} FROM {} ORDER BY {}",
                        cols.join(", "),
                        t.name,
                        t.order_by
                    );
                    let mut rows = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch(&mut *tx);
                    while let Some(r) = rows.try_next().await? {
                        if sink
                            .send(ExportItem::Row(transfer_row(t, &r)?))
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn is_empty(&self) -> $crate::StoreResult<bool> {
                // (a signing key is made at the first start: an empty registry may have one)
                for t in $crate::transfer::TABLES
                    .iter()
                    .filter(|t| t.name != "signing_keys")
                {
                    // table names come from the static list, never from input
                    let any: Option<i32> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                        "SELECT 1 FROM {} LIMIT 1",
                        t.name
                    )))
                    .fetch_optional(&self.pool)
                    .await?;
                    if any.is_some() {
                        return Ok(false);
                    }
                }
                Ok(true)
            }

            async fn import_rows(
                &self,
                t: &'static $crate::transfer::Table,
                rows: Vec<Vec<serde_json::Value>>,
            ) -> $crate::StoreResult<()> {
                use $crate::transfer::{Col, bad, json_to_bytes};
                let cols: Vec<&str> = t.cols.iter().map(|(c, _)| *c).collect();
                let marks: Vec<String> = (1..=cols.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "INSERT INTO {} ({}) VALUES ({})",
                    t.name,
                    cols.join(", "),
                    marks.join(", ")
                );
                let mut w = self.begin_write().await?;
                if t.name == "signing_keys" {
                    // the imported registry's keys replace the one the target made at its first
                    // start (it signed nothing: the target was empty)
                    sqlx::query("DELETE FROM signing_keys")
                        .execute(&mut *w.tx)
                        .await?;
                }
                for row in rows {
                    if row.len() != t.cols.len() {
                        return Err($crate::StoreError::Corrupt(format!(
                            "{}: a row has {} values, the table {} columns",
                            t.name,
                            row.len(),
                            t.cols.len()
                        )));
                    }
                    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
                    for ((col, kind), v) in t.cols.iter().zip(row.iter()) {
                        q = match kind {
                            Col::Int => q.bind(v.as_i64().ok_or_else(|| bad(t, col))?),
                            Col::OptInt => q.bind(if v.is_null() {
                                None
                            } else {
                                Some(v.as_i64().ok_or_else(|| bad(t, col))?)
                            }),
                            Col::Text => q.bind(v.as_str().ok_or_else(|| bad(t, col))?.to_owned()),
                            Col::OptText => q.bind(if v.is_null() {
                                None
                            } else {
                                Some(v.as_str().ok_or_else(|| bad(t, col))?.to_owned())
                            }),
                            Col::Bool => q.bind(v.as_bool().ok_or_else(|| bad(t, col))?),
                            Col::Bytes => q.bind(json_to_bytes(t, col, v)?),
                        };
                    }
                    q.execute(&mut *w.tx).await?;
                }
                w.tx.commit().await?;
                Ok(())
            }

            async fn import_finish(&self) -> $crate::StoreResult<()> {
                let mut w = self.begin_write().await?;
                self.continue_ids(&mut w).await?;
                bump_auth_epoch(&mut *w.tx).await?;
                sqlx::query("UPDATE packument_epoch SET value = value + 1 WHERE id = 1")
                    .execute(&mut *w.tx)
                    .await?;
                w.tx.commit().await?;
                self.auth_changed();
                Ok(())
            }

            async fn count_rows(
                &self,
                t: &'static $crate::transfer::Table,
            ) -> $crate::StoreResult<i64> {
                let sql = format!("SELECT COUNT(*) FROM {}", t.name);
                Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&self.pool)
                    .await?)
            }

            async fn tarball_refs(&self) -> $crate::StoreResult<Vec<(String, String)>> {
                Ok(sqlx::query_as(
                    "SELECT tarball_sha512, integrity FROM versions UNION \
                     SELECT tarball_sha512, integrity FROM staged_versions UNION \
                     SELECT tarball_sha512, integrity FROM upstream_tarballs ORDER BY 1",
                )
                .fetch_all(&self.pool)
                .await?)
            }
        }
    };
}
pub(crate) use impl_transfer;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    #[tokio::test]
    async fn the_table_list_matches_the_schema() {
        let store = SqliteStore::in_memory().await.unwrap();
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        for name in &names {
            if NOT_MOVED.contains(&name.as_str()) {
                continue;
            }
            let t = table(name).unwrap_or_else(|| panic!("table {name} is not exported"));
            // a primary key is never null, whatever `notnull` says
            let cols: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT name, upper(type), max(\"notnull\", pk > 0) FROM pragma_table_info('{name}')"
            )))
            .fetch_all(&store.pool)
            .await
            .unwrap();
            let described: Vec<&str> = t.cols.iter().map(|(c, _)| *c).collect();
            let actual: Vec<&str> = cols.iter().map(|(c, _, _)| c.as_str()).collect();
            let mut a = actual.clone();
            let mut d = described.clone();
            a.sort_unstable();
            d.sort_unstable();
            assert_eq!(a, d, "columns of {name}");
            for (col, ty, notnull) in &cols {
                let kind = t.cols.iter().find(|(c, _)| c == col).unwrap().1;
                let ok = match kind {
                    Col::Int | Col::Bool => ty == "INTEGER" && *notnull == 1,
                    Col::OptInt => ty == "INTEGER" && *notnull == 0,
                    Col::Text => ty == "TEXT" && *notnull == 1,
                    Col::OptText => ty == "TEXT" && *notnull == 0,
                    Col::Bytes => ty == "BLOB",
                };
                assert!(
                    ok,
                    "{name}.{col}: {ty} not null={notnull} described as {kind:?}"
                );
            }
        }
        for t in TABLES {
            assert!(
                names.contains(&t.name.to_owned()),
                "{} is not in the schema",
                t.name
            );
        }
    }
}
