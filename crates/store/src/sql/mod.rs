//! SQL implementations of the store traits.
//!
//! The SQL is written once, with `$N` placeholders (which SQLite and PostgreSQL both accept),
//! inside macros that are instantiated per sqlx backend. This keeps one copy of every query
//! without sqlx's `Any` driver (whose types are limited) and without generic trait bounds that
//! would drown the code.

pub(crate) mod packages;
pub(crate) mod security_keys;
pub(crate) mod signing;
pub(crate) mod staging;
pub(crate) mod tokens;
pub(crate) mod trust;
pub(crate) mod two_factor;
pub(crate) mod uplinks;
pub(crate) mod users;
pub(crate) mod web;

use crate::StoreError;

/// Maps a unique-constraint violation to [`StoreError::Conflict`].
pub(crate) fn unique_to_conflict(e: sqlx::Error) -> StoreError {
    if let sqlx::Error::Database(db) = &e
        && db.is_unique_violation()
    {
        return StoreError::Conflict;
    }
    StoreError::Database(e)
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
