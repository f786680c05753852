//! Password hashing: Argon2id with the OWASP parameters (m = 19 MiB, t = 2, p = 1), run off the
//! async threads, at most [`PARALLEL`] at a time (each takes 19 MiB: a burst of logins must not
//! take gigabytes). This is the only place that hashes or checks a password.

use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use crate::http::error::ApiError;

/// Argon2 computations allowed at once.
pub const PARALLEL: usize = 8;

fn permits() -> &'static tokio::sync::Semaphore {
    static SEM: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    SEM.get_or_init(|| tokio::sync::Semaphore::new(PARALLEL))
}

/// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
pub async fn hash(password: &str) -> Result<String, ApiError> {
    let pw = password.to_owned();
    let _permit = permits().acquire().await.map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(pw.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)
}

/// Checks a password against a stored PHC string.
pub async fn verify(stored: &str, password: &str) -> bool {
    let (stored, pw) = (stored.to_owned(), password.to_owned());
    let Ok(_permit) = permits().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || verify_sync(&stored, &pw))
        .await
        .unwrap_or(false)
}

fn verify_sync(stored: &str, pw: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Burns the same time as a real check, for unknown users, so that response timing does not
/// tell which user names exist.
pub async fn verify_dummy(password: &str) {
    static DUMMY: OnceLock<String> = OnceLock::new();
    let pw = password.to_owned();
    let _permit = permits().acquire().await;
    let _ = tokio::task::spawn_blocking(move || {
        let stored = DUMMY.get_or_init(|| {
            Argon2::default()
                .hash_password(b"tessera-dummy-password")
                .map(|h| h.to_string())
                .unwrap_or_default()
        });
        verify_sync(stored, &pw)
    })
    .await;
}

/// The outcome of a throttled password check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password is right.
    Right,
    /// It is wrong (or the account does not exist); `now_over` when this failure reached a limit.
    Wrong {
        /// The account is now at a limit.
        now_over: bool,
    },
}

/// The Argon2 work a password check does: every path does one, so that response timing tells
/// neither whether the user exists nor whether the password was empty.
#[derive(Debug, PartialEq, Eq)]
enum Work<'a> {
    /// Verify against this stored hash.
    Verify(&'a str),
    /// Verify against a dummy hash: the answer is "wrong" whatever it says.
    Dummy,
}

fn work_for<'a>(user: Option<&'a tessera_store::User>, password: &str) -> Work<'a> {
    match user {
        Some(u) if !password.is_empty() => Work::Verify(&u.password_hash),
        _ => Work::Dummy,
    }
}

/// Checks a password for `user` (or burns the same time for an unknown user), counted by the
/// password throttle of the account and of `ip` (429 while either is at its limit).
pub async fn check_throttled(
    state: &crate::state::AppState,
    user: Option<&tessera_store::User>,
    password: &str,
    ip: &str,
) -> Result<PasswordCheck, ApiError> {
    let attempt = crate::authn::throttle::begin_password(state, user.map(|u| u.id), ip).await?;
    let right = match work_for(user, password) {
        Work::Verify(stored) => verify(stored, password).await,
        Work::Dummy => {
            verify_dummy(password).await;
            false
        }
    };
    if right {
        attempt.succeeded(state).await?;
        Ok(PasswordCheck::Right)
    } else {
        Ok(PasswordCheck::Wrong {
            now_over: attempt.failed(state).await?,
        })
    }
}

/// Checks a new password against the policy (length only, as NIST 800-63B advises).
pub fn check_policy(password: &str, min_len: usize) -> Result<(), ApiError> {
    let n = password.chars().count();
    if n < min_len {
        return Err(ApiError::bad_request(format!(
            "Password must be at least {min_len} characters long"
        )));
    }
    if n > 1024 {
        return Err(ApiError::bad_request(
            "Password must be at most 1024 characters long",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_with_argon2id_and_verifies() {
        let h = hash("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify(&h, "correct horse").await);
        assert!(!verify(&h, "wrong horse").await);
        assert!(!verify("not a hash", "x").await);
        assert_ne!(h, hash("correct horse").await.unwrap(), "salted");
    }

    #[test]
    fn every_check_does_the_argon2_work() {
        let user = tessera_store::User {
            id: 1,
            name: "alice".into(),
            email: String::new(),
            email_verified: false,
            password_hash: "$argon2id$stored".into(),
            profile: Default::default(),
            is_admin: false,
            locked: false,
            two_factor: None,
            web_otp: false,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(
            work_for(Some(&user), "pw"),
            Work::Verify("$argon2id$stored")
        );
        // an empty password for a real user costs what a wrong one for an unknown user does
        assert_eq!(work_for(Some(&user), ""), Work::Dummy);
        assert_eq!(work_for(None, ""), Work::Dummy);
        assert_eq!(work_for(None, "pw"), Work::Dummy);
    }

    #[test]
    fn policy() {
        assert!(check_policy("short", 8).is_err());
        assert!(check_policy("long enough", 8).is_ok());
    }
}
