//! Accounts: signing up, checking a password to sign in, changing the profile and the password.
//! One implementation for `npm adduser`/`npm login`, the website and `tessera admin`; each front
//! end only turns its input into these types and the outcome into its answer.

use tessera_store::{NewUser, Profile, StoreError, User};

use crate::authn::api_tokens;
use crate::authn::passwords::{self, PasswordCheck};
use crate::config::Signup;
use crate::http::error::{ApiError, ApiResult};
use crate::npm::names;
use crate::services::security_log::{self, kind};
use crate::state::AppState;

/// The client behind a request, for the throttles and the security log.
#[derive(Debug, Clone, Copy)]
pub struct Client<'a> {
    /// Its address.
    pub ip: &'a str,
    /// Its user agent.
    pub user_agent: &'a str,
}

/// Which front end asks, for the security log and for who may sign up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The npm API.
    Npm,
    /// The website.
    Website,
    /// `tessera admin`: sign-up is never closed to it.
    Admin,
}

impl Channel {
    fn note(self, what: &str) -> String {
        match self {
            Channel::Npm | Channel::Admin => what.to_owned(),
            Channel::Website => format!("website, {what}"),
        }
    }
}

/// A new account.
#[derive(Debug, Clone)]
pub struct SignUp {
    pub name: String,
    pub email: String,
    /// Password, checked against the policy.
    pub password: String,
    /// Administrator (only through [`Channel::Admin`]).
    pub admin: bool,
    /// The secret of the invitation link, when sign-up is by invitation.
    pub invitation: Option<String>,
}

/// Why a sign-up did not create the account.
#[derive(Debug)]
pub enum SignUpError {
    /// The name, email or password breaks a rule: the message says which.
    Invalid(String),
    /// Sign-up is closed on this registry.
    Closed,
    /// Sign-up is by invitation and this name and email have none.
    NotInvited,
    /// The name is taken.
    NameTaken,
    /// Anything else (storage).
    Failed(ApiError),
}

impl From<ApiError> for SignUpError {
    fn from(e: ApiError) -> Self {
        SignUpError::Failed(e)
    }
}

/// Creates an account, as the registry's sign-up mode allows through `channel`.
pub async fn sign_up(
    state: &AppState,
    input: SignUp,
    channel: Channel,
) -> Result<User, SignUpError> {
    names::validate_user_name(&input.name).map_err(SignUpError::Invalid)?;
    names::validate_email(&input.email).map_err(SignUpError::Invalid)?;
    passwords::check_policy(&input.password, state.config.min_password_length)
        .map_err(|e| SignUpError::Invalid(e.message))?;
    let mode = match channel {
        Channel::Admin => Signup::Open,
        _ if input.admin => return Err(SignUpError::Closed),
        _ => state.config.signup,
    };
    if mode == Signup::Closed {
        return Err(SignUpError::Closed);
    }
    let new = NewUser {
        name: input.name,
        email: input.email,
        password_hash: passwords::hash(&input.password).await?,
        is_admin: input.admin,
    };
    let now = state.clock.now_ms();
    let created = match (mode, input.invitation) {
        (Signup::Invitation, Some(secret)) if !secret.is_empty() => {
            let hash = api_tokens::hash(&secret);
            state.store.create_invited_user(new, &hash, now).await
        }
        (Signup::Invitation, _) => Ok(None),
        _ => state.store.create_user(new, now).await.map(Some),
    };
    match created {
        Ok(Some(u)) => {
            tracing::info!(user = %u.name, ?channel, "account created");
            Ok(u)
        }
        Ok(None) => Err(SignUpError::NotInvited),
        Err(StoreError::Conflict) => Err(SignUpError::NameTaken),
        Err(e) => Err(SignUpError::Failed(e.into())),
    }
}

/// A new invitation: the link to give the invitee, and when it stops working.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// The sign-up page for this invitation; its last segment is the one-time secret.
    pub link: String,
    /// When the link expires (ms).
    pub expires_at: i64,
}

/// Where invitation links point: the sign-up page under `base_url`.
pub const INVITATION_PATH: &str = "/-/web/invitation/";

/// Invites `name` (with `email`) to sign up through a one-time secret link, valid for
/// `lifetime_ms`. Only the secret's hash is stored: the link is shown once, to the inviter.
/// A new invitation for the same name replaces the earlier one.
pub async fn invite(
    state: &AppState,
    name: &str,
    email: &str,
    lifetime_ms: i64,
    base_url: &str,
) -> Result<NewInvitation, SignUpError> {
    names::validate_user_name(name).map_err(SignUpError::Invalid)?;
    names::validate_email(email).map_err(SignUpError::Invalid)?;
    if state
        .store
        .user_by_name(name)
        .await
        .map_err(ApiError::from)?
        .is_some()
    {
        return Err(SignUpError::NameTaken);
    }
    let secret = api_tokens::random_base62(32);
    let now = state.clock.now_ms();
    let expires_at = now + lifetime_ms;
    state
        .store
        .create_invitation(name, email, &api_tokens::hash(&secret), now, expires_at)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(user = %name, "invitation created");
    Ok(NewInvitation {
        link: format!(
            "{}{INVITATION_PATH}{secret}",
            base_url.trim_end_matches('/')
        ),
        expires_at,
    })
}

/// Why a password did not sign the user in.
#[derive(Debug)]
pub enum SignInError {
    /// Unknown user or wrong password (never said which).
    Wrong,
    /// The account is locked by an administrator.
    Locked,
    /// Throttled (429 with `Retry-After`), or a storage failure.
    Refused(ApiError),
}

/// Checks `password` for the account `user` (looked up by the caller; `None` when the name is
/// unknown, which costs the same time). Counted by the password throttles; a wrong password is
/// in the account's security log, and so is the moment it crosses a limit. The second factor
/// is the caller's next step (the door's `Login` rule).
pub async fn check_password(
    state: &AppState,
    user: Option<User>,
    password: &str,
    client: Client<'_>,
    channel: Channel,
) -> Result<User, SignInError> {
    let check = passwords::check_throttled(state, user.as_ref(), password, client.ip)
        .await
        .map_err(SignInError::Refused)?;
    let user = match (user, check) {
        (Some(u), PasswordCheck::Right) => u,
        (Some(u), PasswordCheck::Wrong { now_over }) => {
            tracing::info!(user = %u.name, ip = client.ip, "sign-in failed: wrong password");
            let note = channel.note("wrong password");
            log(state, &u, client, kind::LOGIN_FAILED, note).await;
            if now_over {
                log(state, &u, client, kind::THROTTLED, channel.note("password")).await;
            }
            return Err(SignInError::Wrong);
        }
        (None, _) => {
            tracing::info!(ip = client.ip, "sign-in failed: unknown user");
            return Err(SignInError::Wrong);
        }
    };
    if user.locked {
        return Err(SignInError::Locked);
    }
    Ok(user)
}

/// What a profile change sets: the email address and the free-form fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileChange {
    pub email: String,
    /// Full name, homepage and the rest.
    pub profile: Profile,
}

/// Applies a profile change (already authorised) and returns the account as it now is. A new
/// email address is unverified and goes in the security log.
pub async fn update_profile(
    state: &AppState,
    user: &User,
    change: ProfileChange,
    client: Client<'_>,
    channel: Channel,
) -> ApiResult<User> {
    let email = change.email.trim().to_owned();
    names::validate_email(&email).map_err(ApiError::bad_request)?;
    if email == user.email && change.profile == user.profile {
        return Ok(user.clone());
    }
    let verified = user.email_verified && email == user.email;
    let updated = state
        .store
        .update_profile(
            user.id,
            &email,
            verified,
            &change.profile,
            state.clock.now_ms(),
        )
        .await?;
    if email != user.email {
        let note = if channel == Channel::Website {
            "website"
        } else {
            ""
        };
        log(state, user, client, kind::EMAIL_CHANGED, note.into()).await;
    }
    Ok(updated)
}

/// Sets a new password (already authorised, the old one checked), after the password policy.
pub async fn change_password(
    state: &AppState,
    user: &User,
    new_password: &str,
    client: Client<'_>,
) -> ApiResult<()> {
    passwords::check_policy(new_password, state.config.min_password_length)?;
    let hash = passwords::hash(new_password).await?;
    state
        .store
        .set_password_hash(user.id, &hash, state.clock.now_ms())
        .await?;
    log(state, user, client, kind::PASSWORD_CHANGED, String::new()).await;
    tracing::info!(user = %user.name, "password changed");
    Ok(())
}

async fn log(state: &AppState, user: &User, client: Client<'_>, what: &str, detail: String) {
    security_log::record_from(state, user.id, client.ip, client.user_agent, what, detail).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_website_notes_itself_in_the_log() {
        assert_eq!(Channel::Npm.note("wrong password"), "wrong password");
        assert_eq!(
            Channel::Website.note("wrong password"),
            "website, wrong password"
        );
    }
}
