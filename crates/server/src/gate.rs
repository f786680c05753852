//! The gate: the one place that decides what a sensitive operation needs.
//!
//! Every handler that changes state names its [`Operation`] and asks [`decide`] (through
//! [`enforce`]) before touching the store. The decision depends only on the operation, the
//! account's 2FA mode, the kind of credential, and the package's and registry's 2FA policy.
//! docs/2fa-matrix.md is generated from this function (see the `matrix` test), so the
//! documentation and the code cannot drift apart.

use tessera_store::{Package, TwoFactorMode, User};

use crate::auth::{Caller, CredentialKind};
use crate::error::{ApiError, ApiResult};
use crate::second_factor::{self, Origin, Satisfied};
use crate::state::AppState;

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
    /// Change visibility or the package's 2FA policy.
    AccessChange,
    /// Star or unstar.
    Star,
    /// Revoke the token in use (`npm logout`).
    Logout,
}

impl Operation {
    /// Every operation, in table order.
    pub const ALL: [Operation; 18] = [
        Operation::Login,
        Operation::ProfileWrite,
        Operation::PasswordChange,
        Operation::TfaEnable,
        Operation::TfaConfirm,
        Operation::TfaCancelPending,
        Operation::TfaModeChange,
        Operation::TfaDisable,
        Operation::TokenCreate,
        Operation::TokenRevoke,
        Operation::Publish,
        Operation::Unpublish,
        Operation::Deprecate,
        Operation::OwnerChange,
        Operation::DistTagChange,
        Operation::AccessChange,
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
            Operation::TokenCreate => "create token",
            Operation::TokenRevoke => "revoke token",
            Operation::Publish => "publish",
            Operation::Unpublish => "unpublish",
            Operation::Deprecate => "deprecate",
            Operation::OwnerChange => "owner add/rm",
            Operation::DistTagChange => "dist-tag add/rm",
            Operation::AccessChange => "access / mfa change",
            Operation::Star => "star",
            Operation::Logout => "logout",
        }
    }

    /// Package writes that automation and bypass tokens may do without an OTP.
    fn is_automatable_package_write(self) -> bool {
        matches!(
            self,
            Operation::Publish
                | Operation::Unpublish
                | Operation::Deprecate
                | Operation::DistTagChange
        )
    }

    /// Changes to the account or to who controls a package: never done by automation tokens
    /// without the owner's OTP.
    fn is_governance(self) -> bool {
        matches!(
            self,
            Operation::ProfileWrite
                | Operation::PasswordChange
                | Operation::TfaEnable
                | Operation::TfaConfirm
                | Operation::TfaCancelPending
                | Operation::TfaModeChange
                | Operation::TfaDisable
                | Operation::TokenCreate
                | Operation::TokenRevoke
                | Operation::OwnerChange
                | Operation::AccessChange
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

    fn is_on(self) -> bool {
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
    /// `mfa=publish`: every publish needs an OTP, from any credential.
    Publish,
    /// `mfa=automation`: as `Publish`, but automation and bypass tokens may publish.
    Automation,
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
    /// The package requires 2FA and the caller has none.
    PackageRequires2fa,
}

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
            Denial::PackageRequires2fa => ApiError::forbidden(
                "This package requires two-factor authentication to publish. Enable it with \
                 `npm profile enable-2fa auth-and-writes`, then publish with --otp.",
            ),
        }
    }
}

/// Decides what `op` needs. Pure: the whole 2FA policy is this function.
pub fn decide(
    op: Operation,
    mode: TfaMode,
    cred: CredentialKind,
    package: PackagePolicy,
) -> Decision {
    use Decision::*;
    use Operation as Op;

    // Login takes a password, not a credential: only the account's mode matters.
    if op == Op::Login {
        return if mode.is_on() { Otp } else { Allow };
    }
    match cred {
        CredentialKind::Anonymous => return Deny(Denial::LoginRequired),
        CredentialKind::ReadOnlyToken if op != Op::Logout => return Deny(Denial::ReadOnlyToken),
        _ => {}
    }
    let automation = cred == CredentialKind::AutomationToken;

    // The package's own policy on publishing comes first: it holds whatever the account mode.
    if op == Op::Publish && package != PackagePolicy::None {
        if automation && package == PackagePolicy::Automation {
            return Allow;
        }
        if !mode.is_on() {
            return Deny(Denial::PackageRequires2fa);
        }
        return Otp;
    }

    if automation {
        if op.is_automatable_package_write() || matches!(op, Op::Star | Op::Logout) {
            return Allow;
        }
        if op.is_governance() {
            return if mode.is_on() {
                Otp
            } else {
                Deny(Denial::AutomationTokenGovernance)
            };
        }
    }

    match (op, mode) {
        (Op::Logout | Op::Star | Op::TfaConfirm | Op::TfaCancelPending | Op::TfaEnable, _) => Allow,
        (_, TfaMode::Off | TfaMode::Pending) => Allow,
        // auth-only: whatever mints a credential or changes how the account is protected.
        (
            Op::PasswordChange | Op::TokenCreate | Op::TfaModeChange | Op::TfaDisable,
            TfaMode::AuthOnly,
        ) => Otp,
        (_, TfaMode::AuthOnly) => Allow,
        (_, TfaMode::AuthAndWrites) => Otp,
    }
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

/// Asks the gate for `op` by the calling user and enforces the answer.
pub async fn enforce(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    package: Option<&Package>,
) -> ApiResult<()> {
    let user = caller.require_user()?;
    enforce_for(state, caller, user, op, package)
        .await
        .map(|_| ())
}

/// Asks the gate for `op` on `account` (the caller's user, or the account logging in) and
/// enforces the answer: a required second factor is verified here, from the `npm-otp` header.
/// Returns how the second factor was satisfied, if one was needed.
pub async fn enforce_for(
    state: &AppState,
    caller: &Caller,
    account: &User,
    op: Operation,
    package: Option<&Package>,
) -> ApiResult<Option<Satisfied>> {
    let policy = package.map(package_policy).unwrap_or_default();
    match decide(op, account_mode(account), caller.kind, policy) {
        Decision::Allow => Ok(None),
        Decision::Deny(d) => Err(d.error()),
        Decision::Otp => {
            // A login mints a new credential: its code is bound to this request alone.
            let credential = if op == Operation::Login {
                format!("login:{}", crate::api_tokens::random_base62(16))
            } else {
                caller.credential_id()
            };
            let ip = caller.ip.to_string();
            let origin = Origin {
                ip: &ip,
                user_agent: &caller.user_agent,
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
            Decision::Deny(Denial::PackageRequires2fa) => "refused: enable 2FA",
        }
    }
    let modes = [
        TfaMode::Off,
        TfaMode::Pending,
        TfaMode::AuthOnly,
        TfaMode::AuthAndWrites,
    ];
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
         Refused: 403 (401 for no credential) whatever the OTP.\n\n",
    );
    let section = |out: &mut String,
                   title: &str,
                   note: &str,
                   cred: CredentialKind,
                   policy: PackagePolicy| {
        out.push_str(&format!("## {title}\n\n{note}\n\n| operation | off | pending | auth-only | auth-and-writes |\n|---|---|---|---|---|\n"));
        for op in Operation::ALL {
            let cells: Vec<&str> = modes
                .iter()
                .map(|m| cell(decide(op, *m, cred, policy)))
                .collect();
            out.push_str(&format!("| {} | {} |\n", op.label(), cells.join(" | ")));
        }
        out.push('\n');
    };
    section(
        &mut out,
        "Login tokens, classic publish tokens, granular read-write tokens, website sessions",
        "Columns are the account's 2FA mode. `Basic` credentials (the password itself) follow this \
         table too, and with 2FA on every Basic request needs an OTP, reads included.",
        CredentialKind::PublishToken,
        PackagePolicy::None,
    );
    section(
        &mut out,
        "Automation tokens and granular tokens with `bypass_2fa`",
        "They publish, unpublish, deprecate and move dist-tags without an OTP; they never change the \
         account, tokens, owners or access without the owner's OTP (refused outright when the \
         account has no 2FA to ask for).",
        CredentialKind::AutomationToken,
        PackagePolicy::None,
    );
    section(
        &mut out,
        "Read-only tokens",
        "They read; the only change they can make is revoking themselves (`npm logout`).",
        CredentialKind::ReadOnlyToken,
        PackagePolicy::None,
    );
    out.push_str("## Publishing a package with its own policy (`npm access set mfa=…`)\n\n");
    out.push_str("The package's policy decides publishes, whatever the account's mode (other operations follow the tables above).\n\n");
    out.push_str("| package policy | credential | off | pending | auth-only | auth-and-writes |\n|---|---|---|---|---|---|\n");
    for (policy, pname) in [
        (PackagePolicy::Publish, "`mfa=publish`"),
        (PackagePolicy::Automation, "`mfa=automation`"),
    ] {
        for (cred, cname) in [
            (CredentialKind::PublishToken, "login / publish token"),
            (CredentialKind::AutomationToken, "automation / bypass token"),
        ] {
            let cells: Vec<&str> = modes
                .iter()
                .map(|m| cell(decide(Operation::Publish, *m, cred, policy)))
                .collect();
            out.push_str(&format!("| {pname} | {cname} | {} |\n", cells.join(" | ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use CredentialKind as C;
    use Decision::*;
    use Operation as Op;

    const WRITE_CREDS: [C; 3] = [C::Session, C::Basic, C::PublishToken];

    #[test]
    fn without_2fa_everything_is_allowed_for_writers() {
        for op in Op::ALL {
            for cred in WRITE_CREDS {
                for mode in [TfaMode::Off, TfaMode::Pending] {
                    assert_eq!(
                        decide(op, mode, cred, PackagePolicy::None),
                        Allow,
                        "{op:?} {cred:?} {mode:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn read_only_tokens_never_write() {
        for op in Op::ALL {
            for mode in TfaMode::ALL {
                let d = decide(op, mode, C::ReadOnlyToken, PackagePolicy::None);
                match op {
                    Op::Login if mode.is_on() => assert_eq!(d, Otp),
                    Op::Login | Op::Logout => assert_eq!(d, Allow),
                    _ => assert_eq!(d, Deny(Denial::ReadOnlyToken), "{op:?}"),
                }
            }
        }
    }

    #[test]
    fn anonymous_callers_only_log_in() {
        for op in Op::ALL {
            let d = decide(op, TfaMode::Off, C::Anonymous, PackagePolicy::None);
            if op == Op::Login {
                assert_eq!(d, Allow);
            } else {
                assert_eq!(d, Deny(Denial::LoginRequired), "{op:?}");
            }
        }
    }

    /// The rules, restated as data from the issue and npm's document: per operation, what an
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
        (Op::TokenCreate, Otp, Otp),
        (Op::TokenRevoke, Allow, Otp),
        (Op::Publish, Allow, Otp),
        (Op::Unpublish, Allow, Otp),
        (Op::Deprecate, Allow, Otp),
        (Op::OwnerChange, Allow, Otp),
        (Op::DistTagChange, Allow, Otp),
        (Op::AccessChange, Allow, Otp),
        (Op::Star, Allow, Allow),
        (Op::Logout, Allow, Allow),
    ];

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

    fn expected(op: Op, mode: TfaMode, cred: C, policy: PackagePolicy) -> Decision {
        let on = matches!(mode, TfaMode::AuthOnly | TfaMode::AuthAndWrites);
        let (_, auth_only, auth_and_writes) = *SPEC
            .iter()
            .find(|(o, _, _)| *o == op)
            .expect("every operation is specified");
        if op == Op::Login {
            return if on { Otp } else { Allow };
        }
        if cred == C::Anonymous {
            return Deny(Denial::LoginRequired);
        }
        if cred == C::ReadOnlyToken {
            return if op == Op::Logout {
                Allow
            } else {
                Deny(Denial::ReadOnlyToken)
            };
        }
        if op == Op::Publish && policy != PackagePolicy::None {
            return match (policy, cred, on) {
                (PackagePolicy::Automation, C::AutomationToken, _) => Allow,
                (_, _, false) => Deny(Denial::PackageRequires2fa),
                _ => Otp,
            };
        }
        if cred == C::AutomationToken {
            let package_write = matches!(
                op,
                Op::Publish
                    | Op::Unpublish
                    | Op::Deprecate
                    | Op::DistTagChange
                    | Op::Star
                    | Op::Logout
            );
            if package_write {
                return Allow;
            }
            return if on {
                Otp
            } else {
                Deny(Denial::AutomationTokenGovernance)
            };
        }
        match mode {
            TfaMode::Off | TfaMode::Pending => Allow,
            TfaMode::AuthOnly => auth_only,
            TfaMode::AuthAndWrites => auth_and_writes,
        }
    }

    #[test]
    fn every_combination_matches_the_spec() {
        let mut n = 0;
        for op in Op::ALL {
            for mode in TfaMode::ALL {
                for cred in ALL_CREDS {
                    for policy in ALL_POLICIES {
                        assert_eq!(
                            decide(op, mode, cred, policy),
                            expected(op, mode, cred, policy),
                            "{op:?} {mode:?} {cred:?} {policy:?}"
                        );
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 18 * 4 * 6 * 3);
    }

    #[test]
    fn sessions_basic_and_publish_tokens_are_alike() {
        for op in Op::ALL {
            for mode in TfaMode::ALL {
                for policy in ALL_POLICIES {
                    let d = decide(op, mode, C::PublishToken, policy);
                    assert_eq!(decide(op, mode, C::Session, policy), d);
                    assert_eq!(decide(op, mode, C::Basic, policy), d);
                }
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
