//! Schema migrations, embedded in the binary (one list per backend).

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// The SQLite migrations, in order.
const SQLITE: &[(i64, &str, &str)] = &[
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
