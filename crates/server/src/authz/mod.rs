//! Authorisation: the one door every request of both front ends goes through.
//!
//! [`authorize`] runs, in this order, for an operation and its subject:
//! 1. **visibility**: a package the caller may not see answers 404, exactly as a missing one,
//!    whatever the verb ([`Reader::sees`]);
//! 2. **maintainers**: a change to a visible package by someone who does not maintain it answers
//!    403 with one message; a new scoped package needs the scope ([`scope`]);
//! 3. **the 2FA rules** ([`gate`], a table): refusals answer 403 at once; a required second
//!    factor is checked by [`Permit::confirm`], after the handler has validated its input, so a
//!    malformed request never spends a one-time password.
//!
//! Reads go through [`reader`]. `token_scope` says what a granular token reaches; `policy` holds
//! the registry-wide 2FA requirement.

pub mod gate;
mod name_hold;
pub mod policy;
mod scope;
pub mod token_scope;

use tessera_store::{Access, Package, PackageDoc, Token, TokenKind, User};

use crate::authn::caller::Caller;
use crate::authz::gate::{
    Decision, Denial, Factors, GateInput, Operation, Staging, account_mode, package_policy,
    package_staging,
};
use crate::authz::policy::{KeyRule, RegistryRule};
use crate::authz::token_scope::Reach;
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::two_factor::second_factor::{self, Origin, Satisfied};
use crate::two_factor::security_keys::has_keys;

/// What an operation acts on.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// The caller's own account (profile, password, 2FA, tokens).
    Account,
    /// Another account's credential: logging in as it (the password was checked), or revoking
    /// one of its tokens with that token (`npm logout`).
    AccountOf(&'a User),
    /// A package, by name (it may not exist yet for a publish).
    Package(&'a str),
}

/// An operation the door let through, waiting for its second factor if the rules ask for one.
#[must_use = "a permit does nothing until it is confirmed"]
pub struct Permit {
    op: Operation,
    account: User,
    decision: Decision,
    doc: Option<PackageDoc>,
}

/// What a confirmed [`Permit`] hands over.
pub struct Authorized {
    /// The package acted on, if it exists (a publish may create it).
    pub doc: Option<PackageDoc>,
    /// How the second factor was satisfied, if one was needed.
    pub second_factor: Option<Satisfied>,
}

impl Permit {
    /// The package acted on, if it exists.
    pub fn doc(&self) -> Option<&PackageDoc> {
        self.doc.as_ref()
    }

    /// Whether [`Permit::confirm`] will ask for a one-time password.
    pub fn needs_otp(&self) -> bool {
        matches!(self.decision, Decision::Otp(_))
    }

    /// Which kinds of second factor count, when one is needed.
    pub fn factors(&self) -> Option<Factors> {
        match self.decision {
            Decision::Otp(f) => Some(f),
            _ => None,
        }
    }

    /// As [`Permit::confirm`], with a security key's answer as the second factor (when the rules
    /// ask for one; the answer is checked whenever it is given). Returns the key used.
    pub async fn confirm_with_key(
        self,
        state: &AppState,
        answer: crate::two_factor::security_keys::Answer<'_>,
        ip: &str,
    ) -> Result<
        (Authorized, tessera_store::SecurityKeyRecord),
        crate::two_factor::security_keys::AssertionFailed,
    > {
        if let Decision::Deny(d) = self.decision {
            return Err(crate::two_factor::security_keys::AssertionFailed {
                error: d.error(),
                detail: "security key: refused by the rules".into(),
            });
        }
        if answer.user.id != self.account.id {
            return Err(crate::two_factor::security_keys::AssertionFailed {
                error: ApiError::forbidden("This key answers for another account."),
                detail: "security key: answered for another account".into(),
            });
        }
        let key = crate::two_factor::security_keys::finish_assertion(state, answer, ip).await?;
        let second_factor = self.needs_otp().then_some(Satisfied::SecurityKey);
        Ok((
            Authorized {
                doc: self.doc,
                second_factor,
            },
            key,
        ))
    }

    /// Checks the second factor when the rules ask for one (from the caller's `npm-otp`, or
    /// the code typed in a website form) and hands over what was authorised.
    pub async fn confirm(self, state: &AppState, caller: &Caller) -> ApiResult<Authorized> {
        let second_factor = match self.decision {
            Decision::Allow => None,
            Decision::Deny(d) => return Err(d.error()),
            Decision::Otp(factors) => {
                // A login mints a new credential: its code is bound to this request alone (or,
                // on the website, to the session it starts).
                let credential = if self.op == Operation::Login && caller.session.is_none() {
                    format!("login:{}", crate::authn::api_tokens::random_base62(16))
                } else {
                    caller.credential_id()
                };
                let ip = caller.ip.to_string();
                let origin = Origin {
                    ip: &ip,
                    user_agent: &caller.user_agent,
                    base_url: Some(&caller.base_url),
                };
                let otp = caller.otp.as_deref();
                let login = self.op == Operation::Login;
                let how = second_factor::verify_as(
                    state,
                    &origin,
                    &self.account,
                    &credential,
                    otp,
                    login,
                    factors,
                )
                .await?;
                Some(how)
            }
        };
        Ok(Authorized {
            doc: self.doc,
            second_factor,
        })
    }
}

/// The door: visibility, then maintainers, then the 2FA rules' refusals, for `op` on `target`.
/// The returned [`Permit`] checks the second factor when confirmed.
pub async fn authorize(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    target: Target<'_>,
) -> ApiResult<Permit> {
    let account = match target {
        Target::AccountOf(u) => u,
        Target::Account | Target::Package(_) => caller.require_account()?,
    };
    let mut doc = None;
    let mut name = None;
    let mut hidden = false;
    if let Target::Package(n) = target {
        name = Some(n);
        match package_for(state, caller, op, n, account).await? {
            Found::Visible(d) => doc = Some(*d),
            Found::New => {}
            Found::Hidden => hidden = true,
        }
    }
    let policy = policy::current(state).await?;
    let key_rule = policy.key_rule();
    let has_keys = key_rule != KeyRule::None && has_keys(state, account.id).await?;
    let input = GateInput {
        op,
        mode: account_mode(account),
        cred: caller.kind,
        reach: if op == Operation::Login {
            Reach::Full
        } else {
            token_scope::reach(caller.token.as_ref(), name)
        },
        package: doc
            .as_ref()
            .map(|d| package_policy(&d.package))
            .unwrap_or_default(),
        // a trusted publisher allowed only to stage mints tokens that are decided as for a
        // package that requires staging
        staging: if caller
            .token
            .as_ref()
            .is_some_and(|t| t.kind == TokenKind::OidcStage)
        {
            Staging::Required
        } else {
            doc.as_ref()
                .map(|d| package_staging(&d.package))
                .unwrap_or_default()
        },
        registry: policy.rule(state.clock.now_ms()),
        key_rule,
        has_keys,
        totp_enrolment: policy.totp_enrolment_allowed(),
    };
    let decision = gate::decide(input);
    if let Decision::Deny(d) = decision {
        return Err(d.error());
    }
    if hidden {
        // A publish over a package the caller cannot see: refused as a new name would have
        // been, else as the name it is, taken.
        return Err(ApiError::not_found());
    }
    Ok(Permit {
        op,
        account: account.clone(),
        decision,
        doc,
    })
}

/// [`authorize`] and [`Permit::confirm`] in one, for operations with nothing to validate in
/// between.
pub async fn enforce(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    target: Target<'_>,
) -> ApiResult<Authorized> {
    authorize(state, caller, op, target)
        .await?
        .confirm(state, caller)
        .await
}

/// The account whose own data (profile, token list) the caller may read: refused to a token
/// limited to some packages, which may not touch the account at all.
pub fn account_reader(caller: &Caller) -> ApiResult<&User> {
    let user = caller.require_account()?;
    if caller.token.as_ref().is_some_and(token_scope::is_limited) {
        return Err(Denial::OutsideTokenScope.error());
    }
    Ok(user)
}

/// The door's refusals for `op` on `target`, without asking for the second factor: for handlers
/// that check the password first, so that a credential the door refuses cannot test it.
pub async fn precheck(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    target: Target<'_>,
) -> ApiResult<()> {
    authorize(state, caller, op, target).await.map(drop)
}

/// Whether `op` on the caller's account would ask for a one-time password (a website form shows
/// the field then). Refusals count as no.
pub async fn asks_otp(state: &AppState, caller: &Caller, op: Operation) -> bool {
    match authorize(state, caller, op, Target::Account).await {
        Ok(p) => p.needs_otp(),
        Err(_) => false,
    }
}

/// Whether the registry requires 2FA (or a security key) of everyone now and `user` has none:
/// such an account may only set it up (and log in and out to do so). The refusal says which.
pub async fn limited_to_enrolment(state: &AppState, user: &User) -> ApiResult<Option<Denial>> {
    let policy = policy::current(state).await?;
    if !account_mode(user).is_on() && policy.rule(state.clock.now_ms()) == RegistryRule::Everyone {
        return Ok(Some(Denial::RegistryRequires2fa));
    }
    let keyless = policy.key_rule() == KeyRule::Everyone && !has_keys(state, user.id).await?;
    Ok(keyless.then_some(Denial::RegistryRequiresKey))
}

/// Steps 1 and 2 for a package: loads it if the caller may see it (404 otherwise, or when it is
/// missing, except for a publish, which may create it), and checks that the caller maintains it
/// (or, for a new scoped package, may publish in the scope).
async fn package_for(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    name: &str,
    user: &User,
) -> ApiResult<Found> {
    let doc = state.store.package_doc(name).await?;
    let reader = Reader {
        state,
        user: Some(user),
        token: caller.token.as_ref(),
    };
    match doc {
        Some(doc) if reader.sees_doc(&doc) => {
            if op.rule().package_change && !doc.is_maintainer(user.id) {
                return Err(not_a_maintainer(op, name));
            }
            Ok(Found::Visible(Box::new(doc)))
        }
        // A publish may create the package: a name the caller cannot see gets the checks a
        // new one would (the scope, then the rules), so the answer does not say it is taken
        // unless they all pass.
        found if op.rule().creates => {
            scope::check_new_package(state, name, user).await?;
            if found.is_some() {
                return Ok(Found::Hidden);
            }
            name_hold::check(state, name, user).await?;
            // what an uplink has (a name, or a scope the rules proxy) is not taken here unless
            // an admin allowed it; checked where a version is uploaded (approving a staged
            // one, rejecting it and trusted-publisher changes create nothing themselves)
            if matches!(op, Operation::Publish | Operation::Stage) {
                state.uplinks.check_new_name(state, name).await?;
            }
            Ok(Found::New)
        }
        _ => Err(ApiError::not_found()),
    }
}

/// What the door found under a package name.
enum Found {
    /// A package the caller sees.
    Visible(Box<PackageDoc>),
    /// No package (a publish creates it).
    New,
    /// A package the caller may not see (a publish is refused as for a new name, else 404).
    Hidden,
}

/// The one answer to a change of a visible package by someone who does not maintain it.
fn not_a_maintainer(op: Operation, name: &str) -> ApiError {
    ApiError::forbidden(format!(
        "You do not have permission to {} \"{name}\": only its maintainers can. \
         Are you logged in as the correct user?",
        op.label()
    ))
}

/// Whether a reader (`user`, with `token` if it came with one) sees the package `name` with
/// this visibility and these maintainers. Pure: the whole visibility rule.
fn visible(
    user: Option<&User>,
    token: Option<&Token>,
    name: &str,
    access: Access,
    maintainers: &[i64],
) -> bool {
    if access == Access::Restricted && !token_scope::may_read_private(token, name) {
        return false;
    }
    match (access, user) {
        (_, Some(u)) if u.is_admin => true,
        (Access::Public, _) => true,
        (Access::Restricted, Some(u)) => maintainers.contains(&u.id),
        (Access::Restricted, None) => false,
    }
}

/// Who reads: the caller's account (if any) and token, once the read checks passed.
pub struct Reader<'a> {
    state: &'a AppState,
    user: Option<&'a User>,
    token: Option<&'a Token>,
}

/// The reader behind a request: refuses a rejected credential, an account the registry limits
/// to enrolling in 2FA, and anonymous callers when reads need an account.
pub fn reader<'a>(state: &'a AppState, caller: &'a Caller) -> ApiResult<Reader<'a>> {
    if let Some(e) = &caller.refused {
        return Err(e.clone());
    }
    if let Some(d) = caller.enrolment_only {
        return Err(d.error());
    }
    let mut reader = website_reader(state, caller.user.as_ref())?;
    reader.token = caller.token.as_ref();
    Ok(reader)
}

/// The reader of a website page: an account or nobody. Anonymous readers are refused (401) when
/// the registry requires authentication to read.
pub fn website_reader<'a>(state: &'a AppState, user: Option<&'a User>) -> ApiResult<Reader<'a>> {
    if state.config.read_requires_auth && user.is_none() {
        return Err(ApiError::login_required());
    }
    Ok(Reader {
        state,
        user,
        token: None,
    })
}

impl<'a> Reader<'a> {
    /// The account reading, if any.
    pub fn user(&self) -> Option<&'a User> {
        self.user
    }

    /// Whether this reader sees the package `name` with this visibility and maintainers. A
    /// granular token limited to other packages does not see private packages outside them;
    /// administrators see everything.
    pub fn sees(&self, name: &str, access: Access, maintainers: &[i64]) -> bool {
        visible(self.user, self.token, name, access, maintainers)
    }

    /// The account whose private packages a search may list: the reader's, unless its token
    /// may not read private packages everywhere (a token limited to some packages searches
    /// public packages only, since filtering after paging would leak counts; its own private
    /// packages stay readable by name).
    pub fn search_viewer(&self) -> Option<i64> {
        self.user
            .filter(|_| token_scope::reads_private_everywhere(self.token))
            .map(|u| u.id)
    }

    fn sees_doc(&self, doc: &PackageDoc) -> bool {
        let ids: Vec<i64> = doc.maintainers.iter().map(|m| m.id).collect();
        self.sees(&doc.package.name, doc.package.access, &ids)
    }

    /// The package row, if this reader sees it; 404 otherwise, as for a missing package.
    pub async fn package(&self, name: &str) -> ApiResult<Package> {
        let pkg = self
            .state
            .store
            .package(name)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if pkg.access == Access::Public && self.sees(name, pkg.access, &[]) {
            return Ok(pkg);
        }
        Ok(self.package_doc(name).await?.package)
    }

    /// The whole package document, if this reader sees it; 404 otherwise.
    pub async fn package_doc(&self, name: &str) -> ApiResult<PackageDoc> {
        let doc = self
            .state
            .store
            .package_doc(name)
            .await?
            .ok_or_else(ApiError::not_found)?;
        if self.sees_doc(&doc) {
            Ok(doc)
        } else {
            Err(ApiError::not_found())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::TokenGrants;

    fn user(id: i64, is_admin: bool) -> User {
        User {
            id,
            name: format!("u{id}"),
            email: String::new(),
            email_verified: false,
            password_hash: String::new(),
            profile: Default::default(),
            is_admin,
            locked: false,
            two_factor: None,
            web_otp: false,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn granular(packages: &[&str], permission: &str) -> Token {
        Token {
            id: 1,
            user_id: 1,
            token_hash: String::new(),
            display_prefix: String::new(),
            kind: TokenKind::Granular,
            name: None,
            description: None,
            readonly: false,
            bypass_2fa: false,
            cidr_whitelist: vec![],
            grants: TokenGrants {
                packages: packages.iter().map(|p| p.to_string()).collect(),
                packages_and_scopes_permission: Some(
                    tessera_store::Permission::parse(permission).unwrap(),
                ),
                ..Default::default()
            },
            expires_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    /// Every reader against a public and a restricted package maintained by user 1.
    #[test]
    fn who_sees_what() {
        let maintainer = user(1, false);
        let other = user(2, false);
        let admin = user(3, true);
        let covering = granular(&["@a/p"], "read-only");
        let elsewhere = granular(&["other"], "read-write");
        let no_access = granular(&["@a/p"], "no-access");
        let m = [1];
        // (reader, token, sees public, sees restricted)
        let table: [(Option<&User>, Option<&Token>, bool, bool); 9] = [
            (None, None, true, false),
            (Some(&maintainer), None, true, true),
            (Some(&other), None, true, false),
            (Some(&admin), None, true, true),
            (Some(&maintainer), Some(&covering), true, true),
            (Some(&maintainer), Some(&elsewhere), true, false),
            (Some(&maintainer), Some(&no_access), true, false),
            (Some(&admin), Some(&elsewhere), true, false),
            (Some(&other), Some(&covering), true, false),
        ];
        for (i, (u, t, public, restricted)) in table.into_iter().enumerate() {
            assert_eq!(visible(u, t, "@a/p", Access::Public, &m), public, "row {i}");
            assert_eq!(
                visible(u, t, "@a/p", Access::Restricted, &m),
                restricted,
                "row {i}"
            );
        }
    }
}
