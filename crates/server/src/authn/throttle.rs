//! Failure counters: wrong one-time passwords and wrong passwords, counted in sliding windows in
//! the database (so every instance shares them), per account and per client address.
//!
//! The figures are PyPI's: for the second factor, per account 5
//! in 5 minutes, 20 in an hour, 50 in a day, and per address 10 in 5 minutes, 50 in an hour; for
//! passwords, 10 in 5 minutes per account and per address. The two counters are separate: a wrong
//! password never moves the second-factor counter, so nobody without the password can lock an
//! account's 2FA.
//!
//! Every check is a reservation ([`begin`]): the store counts and records the attempt in one
//! transaction before anything is verified, and a successful attempt gives it back. So a burst
//! of parallel guesses gets no more checks than the limits allow, and a throttled answer is
//! given before anything is checked, so it reveals nothing.

use tessera_store::{FailureKind, Limit, UserId, limit_wait};

use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// Second-factor failures per account.
pub const OTP_PER_ACCOUNT: &[Limit] = &[
    Limit {
        window_ms: 5 * MIN,
        max: 5,
    },
    Limit {
        window_ms: HOUR,
        max: 20,
    },
    Limit {
        window_ms: DAY,
        max: 50,
    },
];
/// Second-factor failures per client address.
pub const OTP_PER_ADDRESS: &[Limit] = &[
    Limit {
        window_ms: 5 * MIN,
        max: 10,
    },
    Limit {
        window_ms: HOUR,
        max: 50,
    },
];
/// Password failures per account.
pub const PASSWORD_PER_ACCOUNT: &[Limit] = &[Limit {
    window_ms: 5 * MIN,
    max: 10,
}];
/// Password failures per client address.
pub const PASSWORD_PER_ADDRESS: &[Limit] = &[Limit {
    window_ms: 5 * MIN,
    max: 10,
}];

fn limits(kind: FailureKind) -> (&'static [Limit], &'static [Limit]) {
    match kind {
        FailureKind::Otp => (OTP_PER_ACCOUNT, OTP_PER_ADDRESS),
        FailureKind::Password => (PASSWORD_PER_ACCOUNT, PASSWORD_PER_ADDRESS),
    }
}

/// Seconds until another attempt is allowed, if a limit is reached.
pub fn retry_after(times: &[i64], limits: &[Limit], now: i64) -> Option<u64> {
    limit_wait(times, limits, now).map(|ms| ((ms + 999) / 1000).max(1) as u64)
}

fn too_many(kind: FailureKind, ms: i64) -> ApiError {
    let secs = ((ms + 999) / 1000).max(1) as u64;
    let what = match kind {
        FailureKind::Otp => "one-time password",
        FailureKind::Password => "login",
    };
    ApiError::too_many(
        format!("Too many failed {what} attempts. Try again in {secs} seconds."),
        secs,
    )
}

/// A reserved attempt: counted as a failure unless [`Attempt::succeeded`] gives it back.
#[must_use = "an attempt must end as succeeded or failed"]
pub struct Attempt {
    id: i64,
    kind: FailureKind,
    user: Option<UserId>,
}

/// Reserves one attempt for the account (if known) and the address; 429 with `Retry-After`
/// when either is at a limit.
pub async fn begin(
    state: &AppState,
    kind: FailureKind,
    user: Option<UserId>,
    ip: &str,
) -> ApiResult<Attempt> {
    let now = state.clock.now_ms();
    let (per_account, per_address) = limits(kind);
    match state
        .store
        .reserve_attempt(kind, user, ip, now, now - DAY, per_account, per_address)
        .await?
    {
        Ok(id) => Ok(Attempt { id, kind, user }),
        Err(ms) => Err(too_many(kind, ms)),
    }
}

impl Attempt {
    /// The attempt succeeded (or was not a guess): it does not count.
    pub async fn succeeded(self, state: &AppState) -> ApiResult<()> {
        state.store.release_attempt(self.id).await?;
        Ok(())
    }

    /// The attempt failed and stays counted. Returns whether the account is now at a limit (the
    /// moment worth a security-log entry).
    pub async fn failed(self, state: &AppState) -> ApiResult<bool> {
        let Some(u) = self.user else { return Ok(false) };
        let now = state.clock.now_ms();
        let times = state
            .store
            .failures_since(self.kind, Some(u), None, now - DAY)
            .await?;
        Ok(limit_wait(&times, limits(self.kind).0, now).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_in_five_minutes() {
        let now = 10 * DAY;
        let four: Vec<i64> = (0..4).map(|i| now - 60_000 + i).collect();
        assert_eq!(retry_after(&four, OTP_PER_ACCOUNT, now), None);
        let five: Vec<i64> = (0..5).map(|i| now - 60_000 + i * 1000).collect();
        // the oldest of the five leaves the 5-minute window 4 minutes from now
        assert_eq!(retry_after(&five, OTP_PER_ACCOUNT, now), Some(240));
        let old: Vec<i64> = (0..5).map(|i| now - 6 * MIN + i).collect();
        assert_eq!(retry_after(&old, OTP_PER_ACCOUNT, now), None);
    }

    #[test]
    fn hourly_and_daily_ceilings() {
        let now = 10 * DAY;
        let hour: Vec<i64> = (0..20).map(|i| now - HOUR + 1000 + i * 170_000).collect();
        assert!(retry_after(&hour, OTP_PER_ACCOUNT, now).is_some());
        let day: Vec<i64> = (0..50).map(|i| now - DAY + 1000 + i * 1_700_000).collect();
        assert!(retry_after(&day, OTP_PER_ACCOUNT, now).unwrap() > 0);
        assert_eq!(retry_after(&day[..49], OTP_PER_ACCOUNT, now), None);
    }
}
