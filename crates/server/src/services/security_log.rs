//! The per-account security log: what happened, when, from where. Entries never hold a secret.

use tessera_store::{SecurityEvent, UserId};

use crate::authn::caller::Caller;
use crate::state::AppState;

/// Kinds of security events.
pub mod kind {
    /// A login (detail: how the second factor was given, if at all).
    pub const LOGIN: &str = "login";
    /// A login refused for a wrong password.
    pub const LOGIN_FAILED: &str = "login_failed";
    /// A wrong one-time password or recovery code.
    pub const OTP_FAILED: &str = "otp_failed";
    /// A valid code presented again by another credential.
    pub const OTP_REPLAYED: &str = "otp_replayed";
    /// A recovery code was used (detail: how many are left).
    pub const RECOVERY_CODE_USED: &str = "recovery_code_used";
    /// Too many failures: attempts are refused for a while.
    pub const THROTTLED: &str = "throttled";
    /// 2FA enrolment started (pending).
    pub const TFA_ENROLMENT_STARTED: &str = "tfa_enrolment_started";
    /// A pending enrolment was cancelled.
    pub const TFA_ENROLMENT_CANCELLED: &str = "tfa_enrolment_cancelled";
    /// 2FA confirmed and enforced.
    pub const TFA_ENABLED: &str = "tfa_enabled";
    /// 2FA mode changed.
    pub const TFA_MODE_CHANGED: &str = "tfa_mode_changed";
    /// 2FA turned off.
    pub const TFA_DISABLED: &str = "tfa_disabled";
    /// An administrator reset 2FA and revoked the tokens.
    pub const ADMIN_2FA_RESET: &str = "admin_2fa_reset";
    /// A token was created (detail: its kind).
    pub const TOKEN_CREATED: &str = "token_created";
    /// A token was revoked.
    pub const TOKEN_REVOKED: &str = "token_revoked";
    /// New recovery codes replaced the old set.
    pub const RECOVERY_CODES_REGENERATED: &str = "recovery_codes_regenerated";
    /// A website session started (detail: how the second factor was given, if at all).
    pub const WEB_SIGNIN: &str = "web_signin";
    /// `npm login` was approved in the browser.
    pub const BROWSER_LOGIN_APPROVED: &str = "browser_login_approved";
    /// The password changed.
    pub const PASSWORD_CHANGED: &str = "password_changed";
    /// The email address changed.
    pub const EMAIL_CHANGED: &str = "email_changed";
    /// A security key was registered (detail: its name).
    pub const KEY_ADDED: &str = "security_key_added";
    /// A security key was removed (detail: its name).
    pub const KEY_REMOVED: &str = "security_key_removed";
    /// A security key confirmed a sign-in or an operation (detail: its name).
    pub const KEY_USED: &str = "security_key_used";
    /// A security key's answer was refused (detail: why, e.g. a counter that went back).
    pub const KEY_FAILED: &str = "security_key_failed";
    /// A trusted publisher was configured for a package (detail: the package and its claims).
    pub const TRUSTED_PUBLISHER_ADDED: &str = "trusted_publisher_added";
    /// A trusted publisher was revoked.
    pub const TRUSTED_PUBLISHER_REMOVED: &str = "trusted_publisher_removed";
    /// A CI identity was exchanged for a publish token (detail: the package and the claims).
    pub const OIDC_EXCHANGE: &str = "oidc_exchange";
    /// A CI identity was refused (detail: the package, the claims and why).
    pub const OIDC_EXCHANGE_REFUSED: &str = "oidc_exchange_refused";
    /// A version was staged for publishing (detail: name@version, id, who staged it).
    pub const VERSION_STAGED: &str = "version_staged";
    /// A staged version was approved and published.
    pub const STAGED_VERSION_APPROVED: &str = "staged_version_approved";
    /// A staged version was rejected.
    pub const STAGED_VERSION_REJECTED: &str = "staged_version_rejected";
    /// A local package's name also exists on an uplink (detail: the name and the uplink).
    pub const LOCAL_NAME_UPSTREAM: &str = "local_name_upstream";
}

/// Appends an event for `user`, with the caller's address and user agent. A failure to write is
/// logged, not returned: the action itself has already happened.
pub async fn record(
    state: &AppState,
    user: UserId,
    caller: &Caller,
    kind: &str,
    detail: impl Into<String>,
) {
    record_from(
        state,
        user,
        &caller.ip.to_string(),
        &caller.user_agent,
        kind,
        detail,
    )
    .await
}

/// Appends an event with an explicit origin (for the admin CLI).
pub async fn record_from(
    state: &AppState,
    user: UserId,
    ip: &str,
    user_agent: &str,
    kind: &str,
    detail: impl Into<String>,
) {
    let ua: String = user_agent.chars().take(256).collect();
    let event = SecurityEvent {
        at: state.clock.now_ms(),
        kind: kind.into(),
        ip: ip.into(),
        user_agent: ua,
        detail: detail.into(),
    };
    if let Err(e) = state.store.log_event(user, event).await {
        tracing::error!(error = %e, user, kind, "could not write the security log");
    }
}
