//! Schema migrations, embedded in the binary (one list per backend).

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The SQLite migrations, in order.
pub(crate) const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "core",
        include_str!("../migrations/sqlite/0001_core.sql"),
    ),
    (
        2,
        "two_factor",
        include_str!("../migrations/sqlite/0002_two_factor.sql"),
    ),
    (
        3,
        "settings",
        include_str!("../migrations/sqlite/0003_settings.sql"),
    ),
    (4, "web", include_str!("../migrations/sqlite/0004_web.sql")),
    (
        5,
        "auth_epoch",
        include_str!("../migrations/sqlite/0005_auth_epoch.sql"),
    ),
    (
        6,
        "hardening",
        include_str!("../migrations/sqlite/0006_hardening.sql"),
    ),
    (
        7,
        "security_keys",
        include_str!("../migrations/sqlite/0007_security_keys.sql"),
    ),
    (
        8,
        "key_policies",
        include_str!("../migrations/sqlite/0008_key_policies.sql"),
    ),
    (
        9,
        "trusted_publishing",
        include_str!("../migrations/sqlite/0009_trusted_publishing.sql"),
    ),
    (
        10,
        "staged_publishing",
        include_str!("../migrations/sqlite/0010_staged_publishing.sql"),
    ),
    (
        11,
        "uplinks",
        include_str!("../migrations/sqlite/0011_uplinks.sql"),
    ),
    (
        12,
        "signing",
        include_str!("../migrations/sqlite/0012_signing.sql"),
    ),
    (
        13,
        "packument_epoch",
        include_str!("../migrations/sqlite/0013_packument_epoch.sql"),
    ),
    (
        14,
        "provenance",
        include_str!("../migrations/sqlite/0014_provenance.sql"),
    ),
    (
        15,
        "publish_attestations",
        include_str!("../migrations/sqlite/0015_publish_attestations.sql"),
    ),
];

/// The PostgreSQL migrations, in order (the same schema as SQLite's, in PostgreSQL's types).
const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../migrations/postgres/0001_schema.sql"),
    ),
    (
        2,
        "hardening",
        include_str!("../migrations/postgres/0002_hardening.sql"),
    ),
    (
        3,
        "security_keys",
        include_str!("../migrations/postgres/0003_security_keys.sql"),
    ),
    (
        4,
        "key_policies",
        include_str!("../migrations/postgres/0004_key_policies.sql"),
    ),
    (
        5,
        "trusted_publishing",
        include_str!("../migrations/postgres/0005_trusted_publishing.sql"),
    ),
    (
        6,
        "staged_publishing",
        include_str!("../migrations/postgres/0006_staged_publishing.sql"),
    ),
    (
        7,
        "uplinks",
        include_str!("../migrations/postgres/0007_uplinks.sql"),
    ),
    (
        8,
        "signing",
        include_str!("../migrations/postgres/0008_signing.sql"),
    ),
    (
        9,
        "packument_epoch",
        include_str!("../migrations/postgres/0009_packument_epoch.sql"),
    ),
    (
        10,
        "provenance",
        include_str!("../migrations/postgres/0010_provenance.sql"),
    ),
    (
        11,
        "publish_attestations",
        include_str!("../migrations/postgres/0011_publish_attestations.sql"),
    ),
];

fn migrator(list: &[(i64, &'static str, &'static str)]) -> Migrator {
    Migrator::with_migrations(
        list.iter()
            .map(|(version, name, sql)| {
                Migration::new(
                    *version,
                    Cow::Borrowed(*name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// The migrator for SQLite.
pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

/// The migrator for PostgreSQL.
pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES)
}

/// When schema migrations run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Migrate {
    /// Apply pending migrations while opening (the default).
    #[default]
    Apply,
    /// Refuse to open a database whose schema is behind (run `tessera admin migrate`).
    Check,
}

/// The versions of `migrator` not applied (successfully) to the database behind `pool`.
macro_rules! pending_fn {
    ($name:ident, $db:ty) => {
        /// The migration versions not yet applied.
        pub(crate) async fn $name(
            migrator: &Migrator,
            pool: &sqlx::Pool<$db>,
        ) -> crate::StoreResult<Vec<i64>> {
            let applied: Vec<(i64, bool)> =
                sqlx::query_as("SELECT version, success FROM _sqlx_migrations")
                    .fetch_all(pool)
                    .await
                    .unwrap_or_default();
            Ok(migrator
                .iter()
                .map(|m| m.version)
                .filter(|v| !applied.iter().any(|(a, ok)| a == v && *ok))
                .collect())
        }
    };
}
pending_fn!(pending_sqlite, sqlx::Sqlite);
pending_fn!(pending_postgres, sqlx::Postgres);

/// The error for a schema that is behind while migrations are not applied automatically.
pub(crate) fn behind(pending: &[i64]) -> crate::StoreError {
    crate::StoreError::Schema(format!(
        "the database schema is behind (migrations {pending:?} are not applied): run `tessera admin migrate`, or set migrate = \"auto\""
    ))
}
