//! Verification of the second factor: the one place that checks a one-time password or a
//! recovery code, for every path (login, writes, token creation, 2FA changes).
//!
//! Order of checks: the throttle first (so a throttled answer reveals nothing), then the code's
//! shape, then the TOTP against the sealed secret in the configured window, then the atomic
//! consumption of its time step. Wrong codes count towards the throttle; replays of a real code
//! are refused and logged but not counted (they are not guesses, and racing requests of one
//! user must not lock the account). The same credential may present the code it just used again
//! (npm sends one `--otp` on every request of a command); any other credential is refused.
//! Recovery codes are accepted wherever an OTP is, each once (with the same short grace for the
//! credential that used it).

use tessera_store::{HandshakeKind, RecoveryUse, User};

use crate::authn::handshakes;
use crate::authn::throttle;
use crate::authz::gate::Factors;
use crate::http::error::{ApiError, ApiResult};
use crate::services::security_log::{self, kind};
use crate::state::AppState;

/// How long the credential that used a recovery code may present it again (one npm command).
const RECOVERY_REPEAT_MS: i64 = 5 * 60 * 1000;

/// Where a second factor came from, for throttling and the security log.
pub struct Origin<'a> {
    pub ip: &'a str,
    pub user_agent: &'a str,
    /// The registry's base URL, for a web-OTP challenge (`None`: none offered).
    pub base_url: Option<&'a str>,
}

/// The challenge npm answers with its OTP prompt (or EOTP off a terminal).
pub fn challenge() -> ApiError {
    ApiError::otp_required(
        "You must provide a one-time pass. Upgrade your client to npm@latest in order to use 2FA.",
    )
}

/// The challenge where the registry requires a security key: npm confirms in the browser.
fn key_challenge(factors: Factors) -> ApiError {
    let also = if factors.takes_recovery_code() {
        " (or give an unused recovery code if you lost your key)"
    } else {
        ""
    };
    ApiError::otp_required(format!(
        "This registry requires a security key or passkey here: codes from an authenticator app \
         do not count. Confirm with your key in the browser{also}."
    ))
}

fn invalid() -> ApiError {
    ApiError::otp_required(
        "This one-time pass is invalid or was already used. Enter a current code from your \
         authenticator app, or an unused recovery code.",
    )
}

/// What satisfied the second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Satisfied {
    /// A TOTP code.
    Totp,
    /// A recovery code.
    RecoveryCode,
    /// A confirmation in the browser (web OTP).
    WebConfirmation,
    /// A security key or passkey.
    SecurityKey,
}

impl Satisfied {
    /// How a sign-in was authenticated, for the security log.
    pub fn describe(how: Option<Satisfied>) -> &'static str {
        match how {
            None => "password (no 2FA)",
            Some(Satisfied::Totp) => "password and one-time password",
            Some(Satisfied::RecoveryCode) => "password and recovery code",
            Some(Satisfied::WebConfirmation) => "password and browser confirmation",
            Some(Satisfied::SecurityKey) => "password and security key",
        }
    }
}

/// Checks `code` as the second factor of `account`, presented by `credential` (a token or a
/// website session spends its own attempts; see [`throttle::Budget`]). Every kind counts.
pub async fn verify(
    state: &AppState,
    origin: &Origin<'_>,
    account: &User,
    credential: &str,
    code: Option<&str>,
) -> ApiResult<Satisfied> {
    verify_as(
        state,
        origin,
        account,
        credential,
        code,
        false,
        Factors::Any,
    )
    .await
}

/// Whether `code` is one of the kinds `factors` takes, by its shape alone (a web-OTP code
/// still has to have been confirmed with a key when only keys count; the store checks that).
fn acceptable_kind(code: &str, factors: Factors) -> bool {
    if factors.takes_totp() || code.starts_with(handshakes::WEB_OTP_PREFIX) {
        return true;
    }
    factors.takes_recovery_code()
        && tessera_otp::normalize_code(code).is_none()
        && tessera_otp::normalize_recovery_code(code).is_some()
}

/// [`verify`] for the second step of a sign-in with the password (`login`), which spends the
/// account's attempts whatever the credential the code is bound to, taking only `factors`.
pub async fn verify_as(
    state: &AppState,
    origin: &Origin<'_>,
    account: &User,
    credential: &str,
    code: Option<&str>,
    login: bool,
    factors: Factors,
) -> ApiResult<Satisfied> {
    let code = code.filter(|c| !c.trim().is_empty());
    // Where only a key counts, a code of another kind is not even checked (nor counted as a
    // guess): the answer is the challenge, which sends npm to the browser.
    let key_only = !factors.takes_totp();
    let refused_kind = key_only && code.is_some_and(|c| !acceptable_kind(c, factors));
    let Some(code) = code.filter(|_| !refused_kind) else {
        // Accounts that prefer it confirm in the browser: npm opens `authUrl` and polls
        // `doneUrl` for a one-time code (npm ≥ 8.15).
        // Accounts with security keys always do: a key cannot be typed into a terminal.
        let confirm_in_browser = key_only
            || account.web_otp
            || (origin.base_url.is_some()
                && crate::two_factor::security_keys::has_keys(state, account.id).await?);
        let mut e = if key_only {
            key_challenge(factors)
        } else {
            challenge()
        };
        if confirm_in_browser && let Some(base) = origin.base_url {
            let urls = handshakes::open(
                state,
                HandshakeKind::Otp,
                Some(account.id),
                false,
                key_only,
                base,
            )
            .await?;
            let mut extra = serde_json::Map::new();
            extra.insert("authUrl".into(), urls.browser.into());
            extra.insert("doneUrl".into(), urls.done.into());
            e.extra = Some(extra);
        }
        return Err(e);
    };
    let budget = throttle::budget_for(account.id, credential, code, login);
    let attempt = throttle::begin_second_factor(state, budget, origin.ip).await?;
    match check(state, origin, account, credential, code, key_only).await {
        Ok(Checked::Satisfied(how)) => {
            attempt.succeeded(state).await?;
            Ok(how)
        }
        // A replay is refused and logged, but not counted as a guess: the code was real.
        Ok(Checked::Replay(what)) => {
            attempt.succeeded(state).await?;
            security_log::record_from(
                state,
                account.id,
                origin.ip,
                origin.user_agent,
                kind::OTP_REPLAYED,
                what,
            )
            .await;
            Err(invalid())
        }
        Ok(Checked::Wrong) => {
            let over = attempt.failed(state).await?;
            security_log::record_from(
                state,
                account.id,
                origin.ip,
                origin.user_agent,
                kind::OTP_FAILED,
                "",
            )
            .await;
            if over {
                security_log::record_from(
                    state,
                    account.id,
                    origin.ip,
                    origin.user_agent,
                    kind::THROTTLED,
                    "second factor",
                )
                .await;
            }
            Err(invalid())
        }
        Err(e) => {
            attempt.succeeded(state).await.ok();
            Err(e)
        }
    }
}

/// What checking a code found.
enum Checked {
    Satisfied(Satisfied),
    Replay(&'static str),
    Wrong,
}

async fn check(
    state: &AppState,
    origin: &Origin<'_>,
    account: &User,
    credential: &str,
    code: &str,
    need_key: bool,
) -> ApiResult<Checked> {
    let now = state.clock.now_ms();
    if code.starts_with(handshakes::WEB_OTP_PREFIX) {
        let hash = crate::authn::api_tokens::hash(code.trim());
        let ok = state
            .store
            .use_web_otp(
                account.id,
                &hash,
                credential,
                now,
                // the handshake's own lifetime, and a minute for npm to collect and send the code
                now - state.config.web.handshake.as_ms() - 60_000,
                need_key,
            )
            .await?;
        return Ok(if ok && need_key {
            Checked::Satisfied(Satisfied::SecurityKey)
        } else if ok {
            Checked::Satisfied(Satisfied::WebConfirmation)
        } else {
            Checked::Wrong
        });
    }
    if let Some(digits) = tessera_otp::normalize_code(code) {
        let Some(record) = state
            .store
            .totp(account.id)
            .await?
            .filter(|r| !r.state.status.is_pending() && r.has_totp)
        else {
            return Ok(Checked::Wrong);
        };
        let secret = state
            .keys
            .open(account.id, &record.secret_sealed)
            .map_err(ApiError::internal)?;
        let Some(step) = tessera_otp::verify(
            &secret,
            &digits,
            (now / 1000) as u64,
            state.config.tfa.window,
        ) else {
            return Ok(Checked::Wrong);
        };
        if state
            .store
            .consume_step(account.id, step as i64, credential)
            .await?
        {
            return Ok(Checked::Satisfied(Satisfied::Totp));
        }
        return Ok(Checked::Replay(
            "a code already used by another credential was presented again",
        ));
    }
    if let Some(rc) = tessera_otp::normalize_recovery_code(code) {
        let hash = tessera_otp::hash_recovery_code(&rc);
        return Ok(
            match state
                .store
                .use_recovery_code(account.id, &hash, credential, now, now - RECOVERY_REPEAT_MS)
                .await?
            {
                RecoveryUse::FirstUse => {
                    let left = state
                        .store
                        .recovery_codes_left(account.id)
                        .await
                        .unwrap_or(0);
                    security_log::record_from(
                        state,
                        account.id,
                        origin.ip,
                        origin.user_agent,
                        kind::RECOVERY_CODE_USED,
                        format!("{left} recovery codes left"),
                    )
                    .await;
                    Checked::Satisfied(Satisfied::RecoveryCode)
                }
                RecoveryUse::Repeat => Checked::Satisfied(Satisfied::RecoveryCode),
                RecoveryUse::Spent => Checked::Replay("a used recovery code was presented again"),
                RecoveryUse::Unknown => Checked::Wrong,
            },
        );
    }
    Ok(Checked::Wrong)
}
