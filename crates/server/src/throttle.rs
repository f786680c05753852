//! Failure counters: wrong one-time passwords and wrong passwords, counted in sliding windows in
//! the database (so every instance shares them), per account and per client address.
//!
//! The figures are PyPI's (security-requirements.md RL-02): for the second factor, per account 5
//! in 5 minutes, 20 in an hour, 50 in a day, and per address 10 in 5 minutes, 50 in an hour; for
//! passwords, 10 in 5 minutes per account and per address. The two counters are separate: a wrong
//! password never moves the second-factor counter, so nobody without the password can lock an
//! account's 2FA.

use tessera_store::{FailureKind, UserId};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A sliding-window limit.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Window length in milliseconds.
    pub window_ms: i64,
    /// Failures allowed in the window.
    pub max: usize,
}

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

/// Seconds until another attempt is allowed, if a limit is reached. `times` are the failure
/// times (oldest first).
pub fn retry_after(times: &[i64], limits: &[Limit], now: i64) -> Option<u64> {
    let mut wait: Option<i64> = None;
    for l in limits {
        let inside: Vec<i64> = times
            .iter()
            .copied()
            .filter(|t| *t > now - l.window_ms)
            .collect();
        if inside.len() >= l.max {
            // the attempt that must age out before one more is allowed
            let t = inside[inside.len() - l.max];
            let w = t + l.window_ms - now;
            wait = Some(wait.map_or(w, |x| x.max(w)));
        }
    }
    wait.map(|ms| ((ms + 999) / 1000).max(1) as u64)
}

/// Refuses with 429 and `Retry-After` while the account or the address is over a limit. Called
/// before anything is checked, so the answer says nothing about whether the guess was right.
pub async fn check(
    state: &AppState,
    kind: FailureKind,
    user: Option<UserId>,
    ip: &str,
) -> ApiResult<()> {
    let now = state.clock.now_ms();
    let (per_account, per_address) = limits(kind);
    let mut wait = None;
    if let Some(u) = user {
        let times = state
            .store
            .failures_since(kind, Some(u), None, now - DAY)
            .await?;
        wait = retry_after(&times, per_account, now);
    }
    let times = state
        .store
        .failures_since(kind, None, Some(ip), now - DAY)
        .await?;
    if let Some(w) = retry_after(&times, per_address, now) {
        wait = Some(wait.map_or(w, |x: u64| x.max(w)));
    }
    match wait {
        None => Ok(()),
        Some(secs) => Err(ApiError::too_many(
            match kind {
                FailureKind::Otp => format!(
                    "Too many failed one-time password attempts. Try again in {secs} seconds."
                ),
                FailureKind::Password => {
                    format!("Too many failed login attempts. Try again in {secs} seconds.")
                }
            },
            secs,
        )),
    }
}

/// Records a failure. Returns whether the account is now over a limit (the moment worth a
/// security-log entry).
pub async fn record(
    state: &AppState,
    kind: FailureKind,
    user: Option<UserId>,
    ip: &str,
) -> ApiResult<bool> {
    let now = state.clock.now_ms();
    state
        .store
        .record_failure(kind, user, ip, now, now - DAY)
        .await?;
    let Some(u) = user else { return Ok(false) };
    let times = state
        .store
        .failures_since(kind, Some(u), None, now - DAY)
        .await?;
    Ok(retry_after(&times, limits(kind).0, now).is_some())
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
        // 20 failures spread over the last hour, 4 per 10-minute slice: under 5/5min, at 20/h
        let hour: Vec<i64> = (0..20).map(|i| now - HOUR + 1000 + i * 170_000).collect();
        assert!(retry_after(&hour, OTP_PER_ACCOUNT, now).is_some());
        let day: Vec<i64> = (0..50).map(|i| now - DAY + 1000 + i * 1_700_000).collect();
        let w = retry_after(&day, OTP_PER_ACCOUNT, now).unwrap();
        assert!(w > 0);
        assert_eq!(retry_after(&day[..49], OTP_PER_ACCOUNT, now), None);
    }
}
