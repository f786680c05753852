//! Who may create a package in a scope.

use tessera_store::User;

use crate::http::error::{ApiError, ApiResult};
use crate::npm::names::scope_of;
use crate::state::AppState;

/// Checks that `user` may create the package `name`: unscoped names are free; a scope belongs
/// to the maintainers of its packages, and, before it has any, `@name` to the user `name`
/// (unless `open_scopes`). Admins may publish anywhere.
pub(crate) async fn check_new_package(state: &AppState, name: &str, user: &User) -> ApiResult<()> {
    let Some(scope) = scope_of(name) else {
        return Ok(());
    };
    check_scope(state, scope, user).await
}

async fn check_scope(state: &AppState, scope: &str, user: &User) -> ApiResult<()> {
    if state.config.open_scopes || user.is_admin {
        return Ok(());
    }
    let (taken, member) = state.store.scope_standing(scope, user.id).await?;
    if member {
        return Ok(());
    }
    if taken {
        return Err(ApiError::forbidden(format!(
            "The scope {scope} belongs to the maintainers of its packages. Ask one of them to add you \
             to a package in it (npm owner add), or publish under your own scope."
        )));
    }
    let owner = &scope[1..];
    if owner != user.name && state.store.user_by_name(owner).await?.is_some() {
        return Err(ApiError::forbidden(format!(
            "The scope {scope} belongs to the user {owner}. Publish under your own scope (@{}).",
            user.name
        )));
    }
    Ok(())
}
