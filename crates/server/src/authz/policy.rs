//! The registry-wide 2FA policy: `require_2fa` (with an optional grace period during which it
//! only warns), `tfa.require_webauthn_for` and `tfa.totp_enrolment` from the configuration, each
//! overridden at run time by `tessera admin policy` (stored in the database so every instance
//! sees it).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tessera_store::User;

use crate::authz::gate::{self, TfaMode};
use crate::clock::iso8601;
use crate::config::{Requirement, TotpEnrolment, parse_date_ms};
use crate::http::error::ApiResult;
use crate::state::AppState;

/// Settings key of the requirement.
pub const KEY_REQUIRE: &str = "require_2fa";
/// Settings key of the grace deadline.
pub const KEY_GRACE: &str = "require_2fa_grace_until";
/// Settings key of the security-key requirement.
pub const KEY_REQUIRE_WEBAUTHN: &str = "require_webauthn_for";
/// Settings key of whether authenticator-app enrolment is offered.
pub const KEY_TOTP_ENROLMENT: &str = "totp_enrolment";
/// How long an instance reuses the policy it read (a change reaches every instance within it).
const CACHE_TTL: Duration = Duration::from_secs(2);

/// The effective registry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryPolicy {
    /// The requirement.
    pub require: Requirement,
    /// Until when it only warns (Unix ms).
    pub grace_until: Option<i64>,
    /// Of whom security keys are required.
    pub require_webauthn_for: Requirement,
    /// Whether new enrolments may use an authenticator app.
    pub totp_enrolment: TotpEnrolment,
}

/// Of whom the registry requires a security key: an input of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyRule {
    /// Of no one: every kind of second factor counts.
    #[default]
    None,
    /// Package changes take only a key; accounts without one cannot change packages.
    Publishers,
    /// Every second factor is a key; accounts without one can only add one.
    Everyone,
}

/// What the policy enforces at a given moment: an input of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RegistryRule {
    /// Nothing (no requirement, or still in the grace period).
    #[default]
    None,
    /// Accounts without 2FA cannot change packages.
    Publishers,
    /// Accounts without 2FA can only turn it on.
    Everyone,
}

impl RegistryPolicy {
    /// What is enforced at `now`.
    pub fn rule(&self, now: i64) -> RegistryRule {
        if self.in_grace(now) {
            return RegistryRule::None;
        }
        match self.require {
            Requirement::None => RegistryRule::None,
            Requirement::Publishers => RegistryRule::Publishers,
            Requirement::Everyone => RegistryRule::Everyone,
        }
    }

    /// Of whom security keys are required.
    pub fn key_rule(&self) -> KeyRule {
        match self.require_webauthn_for {
            Requirement::None => KeyRule::None,
            Requirement::Publishers => KeyRule::Publishers,
            Requirement::Everyone => KeyRule::Everyone,
        }
    }

    /// Whether new enrolments may use an authenticator app.
    pub fn totp_enrolment_allowed(&self) -> bool {
        self.totp_enrolment == TotpEnrolment::Allowed
    }

    /// Whether a requirement exists but is not enforced yet.
    pub fn in_grace(&self, now: i64) -> bool {
        self.require != Requirement::None && self.grace_until.is_some_and(|g| now < g)
    }

    /// The `npm notice` an account without 2FA gets during the grace period.
    pub fn grace_notice(&self, user: &User, now: i64) -> Option<String> {
        let on = matches!(
            gate::account_mode(user),
            TfaMode::AuthOnly | TfaMode::AuthAndWrites
        );
        if on || !self.in_grace(now) {
            return None;
        }
        let what = match self.require {
            Requirement::Publishers => "to publish or change packages",
            _ => "to use this registry",
        };
        let when = iso8601(self.grace_until.unwrap_or(now));
        Some(format!(
            "This registry will require two-factor authentication {what} from {}. Turn it on now: npm profile enable-2fa auth-and-writes",
            &when[..10]
        ))
    }
}

/// A small per-instance cache of the policy.
#[derive(Default)]
pub struct PolicyCache(Mutex<Option<(Instant, RegistryPolicy)>>);

/// The effective policy: the database's override if any, else the configuration.
pub async fn current(state: &AppState) -> ApiResult<RegistryPolicy> {
    if let Some((at, p)) = *state
        .policy_cache
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        && at.elapsed() < CACHE_TTL
    {
        return Ok(p);
    }
    let p = load(state).await?;
    *state
        .policy_cache
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), p));
    Ok(p)
}

/// Reads the policy without the cache.
pub async fn load(state: &AppState) -> ApiResult<RegistryPolicy> {
    let require = match state.store.setting(KEY_REQUIRE).await? {
        Some(v) => Requirement::parse(&v).unwrap_or(state.config.require_2fa),
        None => state.config.require_2fa,
    };
    let grace_until = match state.store.setting(KEY_GRACE).await? {
        Some(v) if v.is_empty() => None,
        Some(v) => parse_date_ms(&v),
        None => state.config.grace_until_ms(),
    };
    let require_webauthn_for = match state.store.setting(KEY_REQUIRE_WEBAUTHN).await? {
        Some(v) => Requirement::parse(&v).unwrap_or(state.config.tfa.require_webauthn_for),
        None => state.config.tfa.require_webauthn_for,
    };
    let totp_enrolment = match state.store.setting(KEY_TOTP_ENROLMENT).await? {
        Some(v) => TotpEnrolment::parse(&v).unwrap_or(state.config.tfa.totp_enrolment),
        None => state.config.tfa.totp_enrolment,
    };
    Ok(RegistryPolicy {
        require,
        grace_until,
        require_webauthn_for,
        totp_enrolment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_period_only_warns() {
        let p = RegistryPolicy {
            require: Requirement::Publishers,
            grace_until: Some(1000),
            require_webauthn_for: Requirement::None,
            totp_enrolment: TotpEnrolment::Allowed,
        };
        assert_eq!(p.rule(999), RegistryRule::None);
        assert!(p.in_grace(999));
        assert_eq!(p.rule(1000), RegistryRule::Publishers);
        assert!(!p.in_grace(1000));
        let q = RegistryPolicy {
            require: Requirement::Everyone,
            grace_until: None,
            require_webauthn_for: Requirement::None,
            totp_enrolment: TotpEnrolment::Allowed,
        };
        assert_eq!(q.rule(0), RegistryRule::Everyone);
        let none = RegistryPolicy {
            require: Requirement::None,
            grace_until: Some(1000),
            require_webauthn_for: Requirement::None,
            totp_enrolment: TotpEnrolment::Allowed,
        };
        assert!(!none.in_grace(0));
    }
}
