//! The gate: the one place that decides what a sensitive operation needs.
//!
//! Every handler that changes state names its [`Operation`] and asks [`decide`] (through
//! [`enforce`]) before touching the store. The decision depends only on the [`GateInput`]: the
//! operation, the account's 2FA mode, the kind of credential and how far it reaches (granular
//! tokens), the package's 2FA policy and the registry's. docs/2fa-matrix.md is generated from
//! this function (see the `matrix_doc_is_current` test), so the documentation and the code
//! cannot drift apart.

use tessera_store::{Package, TwoFactorMode, User};

use crate::authn::caller::{Caller, CredentialKind};
use crate::authz::policy::{self, RegistryRule};
use crate::authz::token_scope::{self, Reach};
use crate::http::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::two_factor::second_factor::{self, Origin, Satisfied};

/// Every operation the gate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Log in with the password (couch PUT, web login): mints a token or session.
    Login,
    /// Change profile fields (email, full name, …).
    ProfileWrite,
    /// Change the password.
    PasswordChange,
    /// Start 2FA enrolment (password checked by the handler).
    TfaEnable,
    /// Confirm enrolment with the first code (in the body).
    TfaConfirm,
    /// Cancel a pending enrolment.
    TfaCancelPending,
    /// Change the mode of active 2FA.
    TfaModeChange,
    /// Turn 2FA off.
    TfaDisable,
    /// Replace the recovery codes (the old set becomes void).
    RecoveryCodesRegenerate,
    /// Create an API token.
    TokenCreate,
    /// Revoke an API token.
    TokenRevoke,
    /// Publish a version.
    Publish,
    /// Unpublish a version or a package.
    Unpublish,
    /// Deprecate or undeprecate versions.
    Deprecate,
    /// Add or remove maintainers.
    OwnerChange,
    /// Add, move or remove a dist-tag.
    DistTagChange,
    /// Change visibility (`npm access set status=…`).
    AccessChange,
    /// Change the package's 2FA policy (`npm access set mfa=…`).
    PackageMfaChange,
    /// Star or unstar.
    Star,
    /// Revoke the token in use (`npm logout`).
    Logout,
}

impl Operation {
    /// Every operation, in table order.
    pub const ALL: [Operation; 20] = [
        Operation::Login,
        Operation::ProfileWrite,
        Operation::PasswordChange,
        Operation::TfaEnable,
        Operation::TfaConfirm,
        Operation::TfaCancelPending,
        Operation::TfaModeChange,
        Operation::TfaDisable,
        Operation::RecoveryCodesRegenerate,
        Operation::TokenCreate,
        Operation::TokenRevoke,
        Operation::Publish,
        Operation::Unpublish,
        Operation::Deprecate,
        Operation::OwnerChange,
        Operation::DistTagChange,
        Operation::AccessChange,
        Operation::PackageMfaChange,
        Operation::Star,
        Operation::Logout,
    ];

    /// What a user would call it.
    pub fn label(self) -> &'static str {
        match self {
            Operation::Login => "log in",
            Operation::ProfileWrite => "change profile",
            Operation::PasswordChange => "change password",
            Operation::TfaEnable => "start 2FA enrolment",
            Operation::TfaConfirm => "confirm 2FA enrolment",
            Operation::TfaCancelPending => "cancel pending enrolment",
            Operation::TfaModeChange => "change 2FA mode",
            Operation::TfaDisable => "disable 2FA",
            Operation::RecoveryCodesRegenerate => "regenerate recovery codes",
            Operation::TokenCreate => "create token",
            Operation::TokenRevoke => "revoke token",
            Operation::Publish => "publish",
            Operation::Unpublish => "unpublish",
            Operation::Deprecate => "deprecate",
            Operation::OwnerChange => "owner add/rm",
            Operation::DistTagChange => "dist-tag add/rm",
            Operation::AccessChange => "access set status",
            Operation::PackageMfaChange => "access set mfa",
            Operation::Star => "star",
            Operation::Logout => "logout",
        }
    }

    /// Package writes that automation and bypass tokens may do without an OTP.
    pub fn is_automatable_package_write(self) -> bool {
        matches!(
            self,
            Operation::Publish
                | Operation::Unpublish
                | Operation::Deprecate
                | Operation::DistTagChange
        )
    }

    /// Changes to a package: what a package's own 2FA policy and the `publishers` registry
    /// policy cover.
    pub fn is_package_change(self) -> bool {
        self.is_automatable_package_write()
            || matches!(
                self,
                Operation::OwnerChange | Operation::AccessChange | Operation::PackageMfaChange
            )
    }

    /// Operations on the account rather than on a package.
    pub fn is_account_operation(self) -> bool {
        matches!(
            self,
            Operation::ProfileWrite
                | Operation::PasswordChange
                | Operation::TfaEnable
                | Operation::TfaConfirm
                | Operation::TfaCancelPending
                | Operation::TfaModeChange
                | Operation::TfaDisable
                | Operation::RecoveryCodesRegenerate
                | Operation::TokenCreate
                | Operation::TokenRevoke
        )
    }

    /// What an account without 2FA may still do when the registry requires it of everyone.
    fn is_enrolment(self) -> bool {
        matches!(
            self,
            Operation::Login
                | Operation::TfaEnable
                | Operation::TfaConfirm
                | Operation::TfaCancelPending
                | Operation::Logout
        )
    }

    /// Changes to the account or to who controls a package: never done by automation tokens
    /// without the owner's OTP.
    fn is_governance(self) -> bool {
        self.is_account_operation()
            || matches!(
                self,
                Operation::OwnerChange | Operation::AccessChange | Operation::PackageMfaChange
            )
    }
}

/// The account's 2FA state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TfaMode {
    /// No 2FA.
    Off,
    /// Enrolment started, not confirmed: not enforced.
    Pending,
    /// OTP for logins, new credentials, password and 2FA changes.
    AuthOnly,
    /// OTP for all of the above and every write.
    AuthAndWrites,
}

impl TfaMode {
    /// Every mode, in table order.
    pub const ALL: [TfaMode; 4] = [
        TfaMode::Off,
        TfaMode::Pending,
        TfaMode::AuthOnly,
        TfaMode::AuthAndWrites,
    ];

    /// Whether 2FA is in force.
    pub fn is_on(self) -> bool {
        matches!(self, TfaMode::AuthOnly | TfaMode::AuthAndWrites)
    }

    /// npm's name for the mode.
    pub fn label(self) -> &'static str {
        match self {
            TfaMode::Off => "off",
            TfaMode::Pending => "pending",
            TfaMode::AuthOnly => "auth-only",
            TfaMode::AuthAndWrites => "auth-and-writes",
        }
    }
}

/// A package's 2FA policy (`npm access set mfa=…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PackagePolicy {
    /// `mfa=none`: the account's mode decides.
    #[default]
    None,
    /// `mfa=publish`: every change to the package needs an OTP, from any credential.
    Publish,
    /// `mfa=automation`: as `Publish`, but automation and bypass tokens may publish.
    Automation,
}

/// Everything the gate decides from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateInput {
    /// The operation.
    pub op: Operation,
    /// The 2FA mode of the account acted for.
    pub mode: TfaMode,
    /// The kind of credential.
    pub cred: CredentialKind,
    /// How far the credential reaches for this operation.
    pub reach: Reach,
    /// The package's 2FA policy (`None` when no package is involved).
    pub package: PackagePolicy,
    /// What the registry-wide policy enforces now.
    pub registry: RegistryRule,
}

/// What the gate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Go ahead only with a valid one-time password (or recovery code).
    Otp,
    /// Refused, whatever the OTP.
    Deny(Denial),
}

/// Why the gate refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No credential at all.
    LoginRequired,
    /// A read-only token tried to write.
    ReadOnlyToken,
    /// An automation token tried to change the account or a package's control.
    AutomationTokenGovernance,
    /// A granular token tried to act outside its packages.
    OutsideTokenScope,
    /// The package requires 2FA and the caller has none.
    PackageRequires2fa,
    /// Setting a package's 2FA policy needs 2FA on the caller's account.
    PolicyNeeds2fa,
    /// The registry requires 2FA of this account.
    RegistryRequires2fa,
}

const ENABLE_HINT: &str = "Turn it on with `npm profile enable-2fa auth-and-writes`.";

impl Denial {
    /// The error npm shows.
    pub fn error(self) -> ApiError {
        match self {
            Denial::LoginRequired => ApiError::login_required(),
            Denial::ReadOnlyToken => ApiError::forbidden(
                "This token is read-only and cannot be used to change anything. \
                 Create a token with write access (npm token create) or run `npm login`.",
            ),
            Denial::AutomationTokenGovernance => ApiError::forbidden(
                "Automation and 2FA-bypass tokens cannot change accounts, tokens, owners or \
                 access. Run this command with a token from `npm login`.",
            ),
            Denial::OutsideTokenScope => ApiError::forbidden(
                "This token is limited to other packages (or cannot change the account). \
                 Use a token that covers this package, or run `npm login`.",
            ),
            Denial::PackageRequires2fa => ApiError::forbidden(format!(
                "This package requires two-factor authentication for changes. {ENABLE_HINT} \
                 Then use --otp."
            )),
            Denial::PolicyNeeds2fa => ApiError::forbidden(format!(
                "Only a maintainer with two-factor authentication can change this package's 2FA \
                 policy. {ENABLE_HINT}"
            )),
            Denial::RegistryRequires2fa => ApiError::forbidden(format!(
                "This registry requires two-factor authentication for this account. {ENABLE_HINT}"
            )),
        }
    }
}

/// Decides what an operation needs. Pure: the whole 2FA policy is this function.
pub fn decide(input: GateInput) -> Decision {
    use Decision::*;
    use Operation as Op;
    let GateInput {
        op,
        mode,
        cred,
        reach,
        package,
        registry,
    } = input;
    let on = mode.is_on();

    // Login takes a password, not a credential: only the account's mode matters.
    if op == Op::Login {
        return if on { Otp } else { Allow };
    }
    match cred {
        CredentialKind::Anonymous => return Deny(Denial::LoginRequired),
        CredentialKind::ReadOnlyToken if op != Op::Logout => return Deny(Denial::ReadOnlyToken),
        _ => {}
    }
    if reach == Reach::Outside && op != Op::Logout {
        return Deny(Denial::OutsideTokenScope);
    }
    // The registry's requirement on accounts without 2FA.
    if !on {
        match registry {
            RegistryRule::Everyone if !op.is_enrolment() => {
                return Deny(Denial::RegistryRequires2fa);
            }
            RegistryRule::Publishers if op.is_package_change() => {
                return Deny(Denial::RegistryRequires2fa);
            }
            _ => {}
        }
    }
    let automation = cred == CredentialKind::AutomationToken;

    // The package's own policy holds whatever the account's mode.
    if package != PackagePolicy::None && op.is_package_change() {
        if !on {
            return Deny(Denial::PackageRequires2fa);
        }
        if automation && package == PackagePolicy::Automation && op.is_automatable_package_write() {
            return Allow;
        }
        return Otp;
    }
    if op == Op::PackageMfaChange && !on {
        return Deny(Denial::PolicyNeeds2fa);
    }

    if automation {
        if op.is_automatable_package_write() || matches!(op, Op::Star | Op::Logout) {
            return Allow;
        }
        if op.is_governance() {
            return if on {
                Otp
            } else {
                Deny(Denial::AutomationTokenGovernance)
            };
        }
    }

    match (op, mode) {
        (Op::Logout | Op::Star | Op::TfaConfirm | Op::TfaCancelPending | Op::TfaEnable, _) => Allow,
        (_, TfaMode::Off | TfaMode::Pending) => Allow,
        // Setting a package's 2FA policy asks for the second factor in either mode.
        (Op::PackageMfaChange, _) => Otp,
        // auth-only: whatever mints a credential or changes how the account is protected.
        (
            Op::PasswordChange
            | Op::TokenCreate
            | Op::TfaModeChange
            | Op::TfaDisable
            | Op::RecoveryCodesRegenerate,
            TfaMode::AuthOnly,
        ) => Otp,
        (_, TfaMode::AuthOnly) => Allow,
        (_, TfaMode::AuthAndWrites) => Otp,
    }
}

/// Whether a request authenticated with Basic credentials needs the second factor before
/// anything else is decided. Basic credentials are the password itself, so with 2FA on (either
/// mode, not while pending) every such request is a login and needs a code, reads included, as
/// on npm's registry. The operation is then decided by [`decide`] like any other.
pub fn basic_needs_second_factor(mode: TfaMode) -> bool {
    matches!(mode, TfaMode::AuthOnly | TfaMode::AuthAndWrites)
}

/// The 2FA mode of an account.
pub fn account_mode(user: &User) -> TfaMode {
    match user.two_factor {
        None => TfaMode::Off,
        Some(t) if t.pending => TfaMode::Pending,
        Some(t) => match t.mode {
            TwoFactorMode::AuthOnly => TfaMode::AuthOnly,
            TwoFactorMode::AuthAndWrites => TfaMode::AuthAndWrites,
        },
    }
}

/// The 2FA policy of a package.
pub fn package_policy(p: &Package) -> PackagePolicy {
    match (p.publish_requires_tfa, p.automation_overrides_tfa) {
        (false, _) => PackagePolicy::None,
        (true, false) => PackagePolicy::Publish,
        (true, true) => PackagePolicy::Automation,
    }
}

/// What an operation acts on.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// The account itself (profile, password, 2FA, tokens, login).
    Account,
    /// A package, existing or about to be created.
    Package {
        /// Its name.
        name: &'a str,
        /// Its row, if it exists.
        package: Option<&'a Package>,
    },
}

impl<'a> Subject<'a> {
    /// An existing package.
    pub fn of(p: &'a Package) -> Self {
        Subject::Package {
            name: &p.name,
            package: Some(p),
        }
    }
}

/// Asks the gate for `op` by the calling user and enforces the answer.
pub async fn enforce(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    subject: Subject<'_>,
) -> ApiResult<()> {
    let user = caller.require_user_for(op)?;
    enforce_for(state, caller, user, op, subject)
        .await
        .map(|_| ())
}

/// Refuses early what the gate would refuse whatever the second factor (read-only tokens,
/// tokens limited to packages, automation tokens on an account without 2FA, policies), so that
/// such credentials cannot even test the account password. Asks for no OTP.
pub async fn precheck(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    subject: Subject<'_>,
) -> ApiResult<()> {
    let account = caller.require_user_for(op)?;
    let (name, package) = match subject {
        Subject::Account => (None, None),
        Subject::Package { name, package } => (Some(name), package),
    };
    let input = GateInput {
        op,
        mode: account_mode(account),
        cred: caller.kind,
        reach: token_scope::reach(caller.token.as_ref(), name),
        package: package.map(package_policy).unwrap_or_default(),
        registry: policy::current(state).await?.rule(state.clock.now_ms()),
    };
    match decide(input) {
        Decision::Deny(d) => Err(d.error()),
        _ => Ok(()),
    }
}

/// Asks the gate for `op` on `account` (the caller's user, or the account logging in) and
/// enforces the answer: a required second factor is verified here, from the `npm-otp` header.
/// Returns how the second factor was satisfied, if one was needed.
pub async fn enforce_for(
    state: &AppState,
    caller: &Caller,
    account: &User,
    op: Operation,
    subject: Subject<'_>,
) -> ApiResult<Option<Satisfied>> {
    let (name, package) = match subject {
        Subject::Account => (None, None),
        Subject::Package { name, package } => (Some(name), package),
    };
    let reach = if op == Operation::Login {
        Reach::Full
    } else {
        token_scope::reach(caller.token.as_ref(), name)
    };
    let registry = policy::current(state).await?.rule(state.clock.now_ms());
    let input = GateInput {
        op,
        mode: account_mode(account),
        cred: caller.kind,
        reach,
        package: package.map(package_policy).unwrap_or_default(),
        registry,
    };
    match decide(input) {
        Decision::Allow => Ok(None),
        Decision::Deny(d) => Err(d.error()),
        Decision::Otp => {
            // A login mints a new credential: its code is bound to this request alone (or, on
            // the website, to the session it starts).
            let credential = if op == Operation::Login && caller.session.is_none() {
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
            second_factor::verify(state, &origin, account, &credential, caller.otp.as_deref())
                .await
                .map(Some)
        }
    }
}

/// Renders the whole decision table as Markdown: docs/2fa-matrix.md is this text (a test
/// checks it), so the documentation is the code's own answer.
pub fn matrix_markdown() -> String {
    fn cell(d: Decision) -> &'static str {
        match d {
            Decision::Allow => "—",
            Decision::Otp => "**OTP**",
            Decision::Deny(Denial::LoginRequired) => "refused: log in",
            Decision::Deny(Denial::ReadOnlyToken) => "refused: read-only",
            Decision::Deny(Denial::AutomationTokenGovernance) => "refused: use a login token",
            Decision::Deny(Denial::OutsideTokenScope) => "refused: outside token",
            Decision::Deny(Denial::PackageRequires2fa) => "refused: enable 2FA",
            Decision::Deny(Denial::PolicyNeeds2fa) => "refused: enable 2FA",
            Decision::Deny(Denial::RegistryRequires2fa) => "refused: enable 2FA",
        }
    }
    let modes = TfaMode::ALL;
    let base = |op, mode, cred| GateInput {
        op,
        mode,
        cred,
        reach: Reach::Full,
        package: PackagePolicy::None,
        registry: RegistryRule::None,
    };
    let mut out = String::new();
    out.push_str("# 2FA matrix: what each operation needs\n\n");
    out.push_str(
        "Generated from `crates/server/src/gate.rs` (`gate::matrix_markdown`); the test \
         `gate::tests::matrix_doc_is_current` fails when this file and the code disagree. \
         Regenerate with `TESSERA_WRITE_MATRIX=1 cargo test -p tessera-server matrix_doc`.\n\n",
    );
    out.push_str(
        "**OTP**: the request must carry a valid one-time password (or an unused recovery code) \
         in `npm-otp`, else 401 with `WWW-Authenticate: otp`. —: no second factor asked. \
         Refused: 403 (401 for no credential) whatever the OTP. Columns are the account's 2FA \
         mode.\n\n",
    );
    let table = |out: &mut String, rows: &mut dyn Iterator<Item = (String, Vec<Decision>)>| {
        out.push_str(
            "| operation | off | pending | auth-only | auth-and-writes |\n|---|---|---|---|---|\n",
        );
        for (label, cells) in rows {
            let cells: Vec<&str> = cells.into_iter().map(cell).collect();
            out.push_str(&format!("| {label} | {} |\n", cells.join(" | ")));
        }
        out.push('\n');
    };
    let section =
        |out: &mut String, title: &str, note: &str, f: &dyn Fn(Operation, TfaMode) -> GateInput| {
            out.push_str(&format!("## {title}\n\n{note}\n\n"));
            let mut rows = Operation::ALL.iter().map(|op| {
                (
                    op.label().to_owned(),
                    modes.iter().map(|m| decide(f(*op, *m))).collect(),
                )
            });
            table(out, &mut rows);
        };
    section(
        &mut out,
        "Login tokens, classic publish tokens, granular read-write tokens, website sessions",
        "`Basic` credentials (the password itself) follow this table too, and with 2FA on every \
         Basic request needs an OTP, reads included (`gate::basic_needs_second_factor`, tested \
         with the gate). Its code is bound to the client (address and user agent), so one npm \
         command may send it on each of its requests.",
        &|op, m| base(op, m, CredentialKind::PublishToken),
    );
    section(
        &mut out,
        "Automation tokens and granular tokens with `bypass_2fa`",
        "They publish, unpublish, deprecate and move dist-tags without an OTP; they never change \
         the account, tokens, owners or access without the owner's OTP (refused outright when \
         the account has no 2FA to ask for).",
        &|op, m| base(op, m, CredentialKind::AutomationToken),
    );
    section(
        &mut out,
        "Read-only tokens",
        "They read; the only change they can make is revoking themselves (`npm logout`).",
        &|op, m| base(op, m, CredentialKind::ReadOnlyToken),
    );
    section(
        &mut out,
        "Granular tokens limited to some packages, acting outside them",
        "Inside their packages they follow the tables above. Outside, and on the account (profile, \
         password, 2FA, tokens), they are refused; they cannot read private packages outside \
         them either.",
        &|op, m| GateInput {
            reach: Reach::Outside,
            ..base(op, m, CredentialKind::PublishToken)
        },
    );
    for (policy, pname) in [
        (PackagePolicy::Publish, "mfa=publish"),
        (PackagePolicy::Automation, "mfa=automation"),
    ] {
        for (cred, cname) in [
            (CredentialKind::PublishToken, "login and publish tokens"),
            (
                CredentialKind::AutomationToken,
                "automation and bypass tokens",
            ),
        ] {
            out.push_str(&format!(
                "## Packages with `npm access set {pname}`, {cname}\n\n"
            ));
            out.push_str("The package's policy holds whatever the account's mode (rows not shown follow the tables above).\n\n");
            let mut rows = Operation::ALL
                .iter()
                .filter(|op| op.is_package_change())
                .map(|op| {
                    (
                        op.label().to_owned(),
                        modes
                            .iter()
                            .map(|m| {
                                decide(GateInput {
                                    package: policy,
                                    ..base(*op, *m, cred)
                                })
                            })
                            .collect(),
                    )
                });
            table(&mut out, &mut rows);
        }
    }
    for (rule, rname, note) in [
        (
            RegistryRule::Publishers,
            "publishers",
            "Accounts without 2FA cannot change packages.",
        ),
        (
            RegistryRule::Everyone,
            "everyone",
            "Accounts without 2FA can log in only to turn it on (and cannot read as themselves either).",
        ),
    ] {
        out.push_str(&format!("## Registry policy `require_2fa = \"{rname}\"`\n\n{note} During the grace period (`require_2fa_grace_until`) nothing is refused and npm prints a notice instead.\n\n"));
        let mut rows = Operation::ALL.iter().map(|op| {
            (
                op.label().to_owned(),
                modes
                    .iter()
                    .map(|m| {
                        decide(GateInput {
                            registry: rule,
                            ..base(*op, *m, CredentialKind::PublishToken)
                        })
                    })
                    .collect(),
            )
        });
        table(&mut out, &mut rows);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_need_the_second_factor_whenever_2fa_is_on() {
        for mode in TfaMode::ALL {
            let expected = matches!(mode, TfaMode::AuthOnly | TfaMode::AuthAndWrites);
            assert_eq!(basic_needs_second_factor(mode), expected, "{mode:?}");
        }
    }
    use CredentialKind as C;
    use Decision::*;
    use Operation as Op;

    const ALL_CREDS: [C; 6] = [
        C::Anonymous,
        C::Session,
        C::Basic,
        C::PublishToken,
        C::ReadOnlyToken,
        C::AutomationToken,
    ];
    const ALL_POLICIES: [PackagePolicy; 3] = [
        PackagePolicy::None,
        PackagePolicy::Publish,
        PackagePolicy::Automation,
    ];
    const ALL_REACHES: [Reach; 3] = [Reach::Full, Reach::Covered, Reach::Outside];
    const ALL_RULES: [RegistryRule; 3] = [
        RegistryRule::None,
        RegistryRule::Publishers,
        RegistryRule::Everyone,
    ];

    /// The rules, restated as data from the issues and npm's document: per operation, what an
    /// interactive credential needs in auth-only and in auth-and-writes mode.
    const SPEC: &[(Op, Decision, Decision)] = &[
        (Op::Login, Otp, Otp),
        (Op::ProfileWrite, Allow, Otp),
        (Op::PasswordChange, Otp, Otp),
        (Op::TfaEnable, Allow, Allow),
        (Op::TfaConfirm, Allow, Allow),
        (Op::TfaCancelPending, Allow, Allow),
        (Op::TfaModeChange, Otp, Otp),
        (Op::TfaDisable, Otp, Otp),
        (Op::RecoveryCodesRegenerate, Otp, Otp),
        (Op::TokenCreate, Otp, Otp),
        (Op::TokenRevoke, Allow, Otp),
        (Op::Publish, Allow, Otp),
        (Op::Unpublish, Allow, Otp),
        (Op::Deprecate, Allow, Otp),
        (Op::OwnerChange, Allow, Otp),
        (Op::DistTagChange, Allow, Otp),
        (Op::AccessChange, Allow, Otp),
        (Op::PackageMfaChange, Otp, Otp),
        (Op::Star, Allow, Allow),
        (Op::Logout, Allow, Allow),
    ];
    /// Package changes: covered by a package's policy and the `publishers` registry rule.
    const PACKAGE_CHANGES: &[Op] = &[
        Op::Publish,
        Op::Unpublish,
        Op::Deprecate,
        Op::DistTagChange,
        Op::OwnerChange,
        Op::AccessChange,
        Op::PackageMfaChange,
    ];
    /// What automation tokens may do without an OTP.
    const AUTOMATABLE: &[Op] = &[
        Op::Publish,
        Op::Unpublish,
        Op::Deprecate,
        Op::DistTagChange,
        Op::Star,
        Op::Logout,
    ];
    /// What an account without 2FA may do under `require_2fa = "everyone"`.
    const ENROLMENT: &[Op] = &[
        Op::Login,
        Op::TfaEnable,
        Op::TfaConfirm,
        Op::TfaCancelPending,
        Op::Logout,
    ];

    fn expected(i: GateInput) -> Decision {
        let on = matches!(i.mode, TfaMode::AuthOnly | TfaMode::AuthAndWrites);
        let (_, auth_only, auth_and_writes) = *SPEC
            .iter()
            .find(|(o, _, _)| *o == i.op)
            .expect("every operation is specified");
        if i.op == Op::Login {
            return if on { Otp } else { Allow };
        }
        if i.cred == C::Anonymous {
            return Deny(Denial::LoginRequired);
        }
        if i.cred == C::ReadOnlyToken {
            return if i.op == Op::Logout {
                Allow
            } else {
                Deny(Denial::ReadOnlyToken)
            };
        }
        if i.reach == Reach::Outside && i.op != Op::Logout {
            return Deny(Denial::OutsideTokenScope);
        }
        let package_change = PACKAGE_CHANGES.contains(&i.op);
        if !on {
            if i.registry == RegistryRule::Everyone && !ENROLMENT.contains(&i.op) {
                return Deny(Denial::RegistryRequires2fa);
            }
            if i.registry == RegistryRule::Publishers && package_change {
                return Deny(Denial::RegistryRequires2fa);
            }
        }
        if i.package != PackagePolicy::None && package_change {
            return match (on, i.package, i.cred) {
                (false, _, _) => Deny(Denial::PackageRequires2fa),
                (true, PackagePolicy::Automation, C::AutomationToken)
                    if AUTOMATABLE.contains(&i.op) && i.op != Op::Star =>
                {
                    Allow
                }
                _ => Otp,
            };
        }
        if i.op == Op::PackageMfaChange && !on {
            return Deny(Denial::PolicyNeeds2fa);
        }
        if i.cred == C::AutomationToken {
            if AUTOMATABLE.contains(&i.op) {
                return Allow;
            }
            return if on {
                Otp
            } else {
                Deny(Denial::AutomationTokenGovernance)
            };
        }
        match i.mode {
            TfaMode::Off | TfaMode::Pending => Allow,
            TfaMode::AuthOnly => auth_only,
            TfaMode::AuthAndWrites => auth_and_writes,
        }
    }

    fn all_inputs() -> impl Iterator<Item = GateInput> {
        Op::ALL.into_iter().flat_map(|op| {
            TfaMode::ALL.into_iter().flat_map(move |mode| {
                ALL_CREDS.into_iter().flat_map(move |cred| {
                    ALL_REACHES.into_iter().flat_map(move |reach| {
                        ALL_POLICIES.into_iter().flat_map(move |package| {
                            ALL_RULES.into_iter().map(move |registry| GateInput {
                                op,
                                mode,
                                cred,
                                reach,
                                package,
                                registry,
                            })
                        })
                    })
                })
            })
        })
    }

    #[test]
    fn every_combination_matches_the_spec() {
        let mut n = 0;
        for i in all_inputs() {
            assert_eq!(decide(i), expected(i), "{i:?}");
            n += 1;
        }
        assert_eq!(n, 20 * 4 * 6 * 3 * 3 * 3);
    }

    #[test]
    fn sessions_basic_and_publish_tokens_are_alike() {
        for i in all_inputs().filter(|i| i.cred == C::PublishToken) {
            assert_eq!(
                decide(GateInput {
                    cred: C::Session,
                    ..i
                }),
                decide(i)
            );
            assert_eq!(
                decide(GateInput {
                    cred: C::Basic,
                    ..i
                }),
                decide(i)
            );
        }
    }

    #[test]
    fn nothing_is_weaker_with_a_policy_than_without() {
        // adding a package policy or a registry rule never turns a refusal or an OTP into Allow
        let rank = |d: Decision| match d {
            Allow => 0,
            Otp => 1,
            Deny(_) => 2,
        };
        for i in all_inputs()
            .filter(|i| i.package == PackagePolicy::None && i.registry == RegistryRule::None)
        {
            for package in ALL_POLICIES {
                for registry in ALL_RULES {
                    let stricter = decide(GateInput {
                        package,
                        registry,
                        ..i
                    });
                    let automation_exception =
                        i.cred == C::AutomationToken && package == PackagePolicy::Automation;
                    if !automation_exception {
                        assert!(
                            rank(stricter) >= rank(decide(i)),
                            "{i:?} with {package:?}/{registry:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn read_only_tokens_never_write() {
        for i in all_inputs().filter(|i| i.cred == C::ReadOnlyToken) {
            match i.op {
                Op::Login | Op::Logout => assert_ne!(decide(i), Deny(Denial::ReadOnlyToken)),
                _ => assert_eq!(decide(i), Deny(Denial::ReadOnlyToken), "{i:?}"),
            }
        }
    }

    #[test]
    fn matrix_doc_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/2fa-matrix.md");
        let text = matrix_markdown();
        if std::env::var_os("TESSERA_WRITE_MATRIX").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "docs/2fa-matrix.md is stale: run TESSERA_WRITE_MATRIX=1 cargo test -p tessera-server matrix_doc"
        );
    }
}
