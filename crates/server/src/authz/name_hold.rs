//! The hold on fully unpublished names: for `unpublished_name_hold` after a package's last
//! version goes, only the people who maintained it then may publish the name again. Without
//! it, anyone could take over a name at once and serve new code to everyone who depends on it.

use tessera_store::User;

use crate::clock::iso8601;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Refuses a publish that would create `name` while it is held for other users.
pub async fn check(state: &AppState, name: &str, user: &User) -> ApiResult<()> {
    let Some(held) = state.store.unpublished_name(name).await? else {
        return Ok(());
    };
    let until = held
        .unpublished_at
        .saturating_add(state.config.unpublished_name_hold.as_ms());
    if held_for_others(until, state.clock.now_ms(), &held.maintainers, user.id) {
        return Err(ApiError::forbidden(format!(
            "\"{name}\" was unpublished on {}. Until {} only its former maintainers can publish \
             it again.",
            iso8601(held.unpublished_at),
            iso8601(until)
        )));
    }
    Ok(())
}

/// Whether a hold that ends at `until` stops `user` at `now`.
fn held_for_others(until: i64, now: i64, maintainers: &[i64], user: i64) -> bool {
    now < until && !maintainers.contains(&user)
}

#[cfg(test)]
mod tests {
    use super::held_for_others;

    #[test]
    fn the_hold_stops_others_until_it_ends() {
        assert!(held_for_others(100, 99, &[1, 2], 3));
        assert!(!held_for_others(100, 100, &[1, 2], 3), "ended");
        assert!(!held_for_others(100, 0, &[1, 2], 2), "a former maintainer");
        assert!(held_for_others(100, 0, &[], 1), "nobody left to publish it");
    }
}
