//! Failure counters: wrong one-time passwords and wrong passwords, counted in sliding windows in
//! the database (so every instance shares them), per account and per client address.
//!
//! The figures are PyPI's: for the second factor, per account 5
//! in 5 minutes, 20 in an hour, 50 in a day, and per address 10 in 5 minutes, 50 in an hour; for
//! passwords, 10 in 5 minutes per account and per address. The two counters are separate: a wrong
//! password never moves the second-factor counter, so nobody without the password can lock an
//! account's 2FA.
//!
//! Second-factor attempts spend one of three budgets ([`Budget`]): the account's, when the
//! password was just proven (a login, Basic credentials); the credential's own, for a token or a
//! website session, so that a leaked token can lock only itself and never its owner's logins;
//! or the address's alone, for codes that carry hundreds of bits (recovery codes, web-OTP
//! codes), which nobody guesses, so the owner with a recovery code always gets in.
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

/// How long a successful sign-in makes its address known to the account.
pub const KNOWN_ADDRESS_MS: i64 = 30 * DAY;

/// Reserves one password attempt for `user` (if known) from `ip`. Wrong passwords are counted
/// per address (10 in 5 minutes) and per account (10 in 5 minutes), except that an address the
/// account signed in from (password and, with 2FA, a code) in the last 30 days is held only by
/// its own limit: someone elsewhere failing on purpose cannot lock the owner out of a familiar
/// address. A new address stays behind the account's limit, so a distributed guesser is still
/// slowed down.
pub async fn begin_password(
    state: &AppState,
    user: Option<UserId>,
    ip: &str,
) -> ApiResult<Attempt> {
    let known = match user {
        Some(u) => {
            let since = state.clock.now_ms() - KNOWN_ADDRESS_MS;
            let kinds = [
                crate::services::security_log::kind::LOGIN,
                crate::services::security_log::kind::WEB_SIGNIN,
            ];
            state.store.signed_in_from(u, ip, &kinds, since).await?
        }
        None => false,
    };
    let mut attempt = begin(state, FailureKind::Password, user.filter(|_| !known), ip).await?;
    if known {
        attempt.address = Some(ip.to_owned());
    }
    Ok(attempt)
}

/// Whose second-factor attempts a check spends, besides the client address's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget<'a> {
    /// The account's: the password was just proven (a login, Basic credentials).
    Account(UserId),
    /// One credential's own (a token or a website session, by its id): its failures never
    /// spend the account's attempts, and past its limits only it is refused.
    Credential(&'a str),
    /// The address's alone: codes of hundreds of bits (recovery codes, web-OTP codes).
    Address,
}

/// The budget a second-factor check spends: see [`Budget`]. `login` says the check completes a
/// sign-in with the password (even on a website session being started).
pub fn budget_for<'a>(account: UserId, credential: &'a str, code: &str, login: bool) -> Budget<'a> {
    let high_entropy = tessera_otp::normalize_recovery_code(code).is_some()
        || code
            .trim()
            .starts_with(crate::authn::handshakes::WEB_OTP_PREFIX);
    if high_entropy {
        Budget::Address
    } else if !login && (credential.starts_with("token:") || credential.starts_with("session:")) {
        Budget::Credential(credential)
    } else {
        Budget::Account(account)
    }
}

/// The key a credential's failures are counted under (in place of an address).
fn credential_key(credential: &str) -> String {
    let h = crate::authn::api_tokens::hash(credential);
    format!("credential:{}", &h[..32])
}

/// A reserved attempt: counted as a failure unless [`Attempt::succeeded`] gives it back.
#[must_use = "an attempt must end as succeeded or failed"]
pub struct Attempt {
    ids: Vec<i64>,
    kind: FailureKind,
    user: Option<UserId>,
    credential: Option<String>,
    /// The address whose limit is watched instead of the account's (a known address).
    address: Option<String>,
}

/// Reserves one second-factor attempt against `budget` and the address; 429 with
/// `Retry-After` when either is at a limit.
pub async fn begin_second_factor(
    state: &AppState,
    budget: Budget<'_>,
    ip: &str,
) -> ApiResult<Attempt> {
    let kind = FailureKind::Otp;
    match budget {
        Budget::Account(user) => begin(state, kind, Some(user), ip).await,
        Budget::Address => begin(state, kind, None, ip).await,
        Budget::Credential(credential) => {
            let key = credential_key(credential);
            let now = state.clock.now_ms();
            let own = state
                .store
                .reserve_attempt(kind, None, &key, now, now - DAY, &[], OTP_PER_ACCOUNT)
                .await?
                .map_err(|ms| too_many(kind, ms))?;
            let address = match begin(state, kind, None, ip).await {
                Ok(a) => a,
                Err(e) => {
                    state.store.release_attempt(own).await?;
                    return Err(e);
                }
            };
            Ok(Attempt {
                ids: [vec![own], address.ids].concat(),
                kind,
                user: None,
                credential: Some(key),
                address: None,
            })
        }
    }
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
        Ok(id) => Ok(Attempt {
            ids: vec![id],
            kind,
            user,
            credential: None,
            address: None,
        }),
        Err(ms) => Err(too_many(kind, ms)),
    }
}

impl Attempt {
    /// The attempt succeeded (or was not a guess): it does not count.
    pub async fn succeeded(self, state: &AppState) -> ApiResult<()> {
        for id in self.ids {
            state.store.release_attempt(id).await?;
        }
        Ok(())
    }

    /// The attempt failed and stays counted. Returns whether the account (or the credential)
    /// is now at a limit (the moment worth a security-log entry).
    pub async fn failed(self, state: &AppState) -> ApiResult<bool> {
        let now = state.clock.now_ms();
        let (per_account, per_address) = limits(self.kind);
        let (times, limits) = match (self.user, &self.credential, &self.address) {
            (Some(u), _, _) => (
                state
                    .store
                    .failures_since(self.kind, Some(u), None, now - DAY)
                    .await?,
                per_account,
            ),
            (None, Some(key), _) => (
                state
                    .store
                    .failures_since(self.kind, None, Some(key), now - DAY)
                    .await?,
                per_account,
            ),
            (None, None, Some(ip)) => (
                state
                    .store
                    .failures_since(self.kind, None, Some(ip), now - DAY)
                    .await?,
                per_address,
            ),
            (None, None, None) => return Ok(false),
        };
        Ok(limit_wait(&times, limits, now).is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        let rc = "a".repeat(64);
        // logins and Basic credentials spend the account's attempts
        assert_eq!(budget_for(7, "login:x", "123456", true), Budget::Account(7));
        assert_eq!(
            budget_for(7, "basic:7:ab", "123456", false),
            Budget::Account(7)
        );
        assert_eq!(
            budget_for(7, "session:s", "123456", true),
            Budget::Account(7)
        );
        // tokens and sessions their own
        assert_eq!(
            budget_for(7, "token:t", "123456", false),
            Budget::Credential("token:t")
        );
        assert_eq!(
            budget_for(7, "session:s", "123 456", false),
            Budget::Credential("session:s")
        );
        // recovery and web-OTP codes the address's alone, from any credential
        assert_eq!(budget_for(7, "token:t", &rc, false), Budget::Address);
        assert_eq!(budget_for(7, "login:x", &rc, true), Budget::Address);
        assert_eq!(budget_for(7, "token:t", "wotp_abc", false), Budget::Address);
        assert_ne!(credential_key("token:a"), credential_key("token:b"));
    }

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
