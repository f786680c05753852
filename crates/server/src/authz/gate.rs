//! The 2FA rules: what a sensitive operation needs, as a table.
//!
//! [`RULES`] has one row per [`Operation`]: what it needs in each 2FA mode, what automation
//! tokens may do, whether a package's policy and the registry's rules cover it. [`decide`]
//! reads the row and applies the layers in a fixed order (credential, token reach, the
//! package's rules on tokens, registry
//! policy, package policy, automation, account mode); nothing in it names an operation. When it
//! asks for a second factor it also says which kinds count ([`Factors`]): any, or a security key
//! where the registry requires keys.
//! docs/2fa-matrix.md is generated from this module (`matrix_doc_is_current`), so the
//! documentation and the code cannot drift apart. The door that calls it is [`crate::authz`].

use tessera_store::{Package, PackageTfaPolicy, TwoFactorMode, TwoFactorStatus, User};

use crate::authn::caller::CredentialKind;
use crate::authz::policy::{KeyRule, RegistryRule};
use crate::authz::token_scope::Reach;
use crate::http::error::ApiError;

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
    /// Add a security key or passkey (the first turns 2FA on).
    KeyAdd,
    /// Remove a security key or passkey.
    KeyRemove,
    /// Add an authenticator app to an account whose second factors are keys.
    TotpAdd,
    /// List, add or revoke a package's trusted publishers (`npm trust`).
    TrustChange,
    /// Stage a version for publishing (`npm stage publish`): its second factor is asked when
    /// it is approved.
    Stage,
    /// Approve or reject a staged version (`npm stage approve|reject`).
    StageDecide,
}

impl Operation {
    /// Every operation, in table order.
    pub const ALL: [Operation; 26] = [
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
        Operation::KeyAdd,
        Operation::KeyRemove,
        Operation::TotpAdd,
        Operation::TrustChange,
        Operation::Stage,
        Operation::StageDecide,
    ];

    /// The operation's row in [`RULES`].
    pub fn rule(self) -> &'static Rule {
        RULES
            .iter()
            .find(|r| r.op == self)
            .expect("every operation has a row")
    }

    /// What a user would call it.
    pub fn label(self) -> &'static str {
        self.rule().label
    }
}

/// What an operation needs in one 2FA mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing more than the credential.
    Nothing,
    /// A one-time password (or recovery code).
    Otp,
}

/// Which credentials an operation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credentials {
    /// The password is the credential (a login): only the account's mode matters.
    Password,
    /// Any credential, read-only tokens and tokens limited to other packages included.
    Any,
    /// A credential that may write, reaching the target.
    Writer,
}

/// What automation and 2FA-bypass tokens get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Automation {
    /// Done without an OTP, whatever the account's mode.
    Allowed,
    /// Governance: refused outright, whatever the code. A leaked automation token must not be
    /// able to change the account or who controls a package, nor to spend the account's
    /// one-time-password attempts trying.
    Never,
}

/// One row of the rules.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// The operation.
    pub op: Operation,
    /// What a user would call it.
    pub label: &'static str,
    /// The credentials it takes.
    pub credentials: Credentials,
    /// What it needs in `auth-only` mode.
    pub auth_only: Need,
    /// What it needs in `auth-and-writes` mode.
    pub auth_and_writes: Need,
    /// What automation tokens get.
    pub automation: Automation,
    /// A change to a package: covered by the package's 2FA policy and the registry's
    /// `publishers` rule.
    pub package_change: bool,
    /// Allowed to an account without 2FA when the registry requires it of everyone.
    pub enrolment: bool,
    /// Refused to an account without 2FA, whatever the credential.
    pub needs_2fa: bool,
    /// Starts authenticator-app (TOTP) enrolment: refused while the registry offers none.
    pub totp_enrolment: bool,
    /// Done by a trusted-publishing token (which does nothing else).
    pub oidc: bool,
    /// May name a package that does not exist yet (a publish creates it; a pending trusted
    /// publisher is configured before it).
    pub creates: bool,
    /// Asks no second factor for itself: one is asked when what it did is approved
    /// (staging), so the package's and the registry's second-factor rules wait for then.
    pub deferred: bool,
    /// A publish that could have been staged: refused to tokens and trusted publishing where
    /// the package requires their publishes to be staged.
    pub stageable: bool,
}

const fn row(
    op: Operation,
    label: &'static str,
    (auth_only, auth_and_writes): (Need, Need),
    automation: Automation,
) -> Rule {
    Rule {
        op,
        label,
        credentials: Credentials::Writer,
        auth_only,
        auth_and_writes,
        automation,
        package_change: false,
        enrolment: false,
        needs_2fa: false,
        totp_enrolment: false,
        oidc: false,
        creates: false,
        deferred: false,
        stageable: false,
    }
}

const fn package(r: Rule) -> Rule {
    Rule {
        package_change: true,
        ..r
    }
}

const fn enrolment(r: Rule) -> Rule {
    Rule {
        enrolment: true,
        ..r
    }
}

const NONE: (Need, Need) = (Need::Nothing, Need::Nothing);
const WRITES: (Need, Need) = (Need::Nothing, Need::Otp);
const ALWAYS: (Need, Need) = (Need::Otp, Need::Otp);

/// The rules, one row per operation. In `auth-only` mode the second factor guards whatever
/// mints a credential or changes how the account is protected; in `auth-and-writes` mode also
/// every other change. Automation tokens do package writes alone and never governance.
pub const RULES: [Rule; 26] = {
    use Automation::{Allowed, Never};
    use Operation as Op;
    [
        Rule {
            credentials: Credentials::Password,
            ..enrolment(row(Op::Login, "log in", ALWAYS, Allowed))
        },
        row(Op::ProfileWrite, "change profile", WRITES, Never),
        row(Op::PasswordChange, "change password", ALWAYS, Never),
        Rule {
            totp_enrolment: true,
            ..enrolment(row(Op::TfaEnable, "start 2FA enrolment", NONE, Never))
        },
        enrolment(row(Op::TfaConfirm, "confirm 2FA enrolment", NONE, Never)),
        enrolment(row(
            Op::TfaCancelPending,
            "cancel pending enrolment",
            NONE,
            Never,
        )),
        row(Op::TfaModeChange, "change 2FA mode", ALWAYS, Never),
        row(Op::TfaDisable, "disable 2FA", ALWAYS, Never),
        row(
            Op::RecoveryCodesRegenerate,
            "regenerate recovery codes",
            ALWAYS,
            Never,
        ),
        row(Op::TokenCreate, "create token", ALWAYS, Never),
        row(Op::TokenRevoke, "revoke token", WRITES, Never),
        Rule {
            oidc: true,
            creates: true,
            stageable: true,
            ..package(row(Op::Publish, "publish", WRITES, Allowed))
        },
        package(row(Op::Unpublish, "unpublish", WRITES, Allowed)),
        package(row(Op::Deprecate, "deprecate", WRITES, Allowed)),
        package(row(Op::OwnerChange, "owner add/rm", WRITES, Never)),
        package(row(Op::DistTagChange, "dist-tag add/rm", WRITES, Allowed)),
        package(row(Op::AccessChange, "access set status", WRITES, Never)),
        Rule {
            needs_2fa: true,
            ..package(row(Op::PackageMfaChange, "access set mfa", ALWAYS, Never))
        },
        row(Op::Star, "star", NONE, Allowed),
        Rule {
            credentials: Credentials::Any,
            ..enrolment(row(Op::Logout, "logout", NONE, Allowed))
        },
        enrolment(row(Op::KeyAdd, "add security key", ALWAYS, Never)),
        row(Op::KeyRemove, "remove security key", ALWAYS, Never),
        Rule {
            totp_enrolment: true,
            ..row(Op::TotpAdd, "add authenticator app", ALWAYS, Never)
        },
        Rule {
            needs_2fa: true,
            creates: true,
            ..package(row(Op::TrustChange, "trust list/add/revoke", ALWAYS, Never))
        },
        Rule {
            oidc: true,
            creates: true,
            deferred: true,
            ..package(row(Op::Stage, "stage publish", NONE, Allowed))
        },
        Rule {
            needs_2fa: true,
            creates: true,
            ..package(row(Op::StageDecide, "stage approve/reject", ALWAYS, Never))
        },
    ]
};

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
    /// npm's "require two-factor authentication and disallow tokens": as `Publish`, and
    /// tokens other than a login's are refused (trusted publishing still works).
    PublishNoTokens,
}

/// Whether a package requires its publishes from tokens and trusted publishing to be staged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Staging {
    /// They may publish directly.
    #[default]
    Optional,
    /// They may only stage; a maintainer approves with a second factor.
    Required,
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
    /// Whether the package (or a trusted publisher that may only stage) requires staging.
    pub staging: Staging,
    /// What the registry-wide policy enforces now.
    pub registry: RegistryRule,
    /// Of whom the registry requires security keys.
    pub key_rule: KeyRule,
    /// Whether the account has a security key or passkey.
    pub has_keys: bool,
    /// Whether the registry offers authenticator-app (TOTP) enrolment.
    pub totp_enrolment: bool,
}

/// What the gate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead.
    Allow,
    /// Go ahead only with a second factor of one of these kinds.
    Otp(Factors),
    /// Refused, whatever the OTP.
    Deny(Denial),
}

/// Which kinds of second factor satisfy an [`Decision::Otp`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Factors {
    /// A code from the authenticator app, a recovery code, a confirmation in the browser, or a
    /// security key.
    Any,
    /// A security key (directly, or through a browser confirmation given with one), or a
    /// recovery code: the registry requires keys, and this operation is how a user who lost
    /// theirs gets back in and adds a new one.
    KeyOrRecovery,
    /// A security key, directly or through a browser confirmation given with one.
    Key,
}

impl Factors {
    /// Whether a code from the authenticator app counts.
    pub fn takes_totp(self) -> bool {
        self == Factors::Any
    }

    /// Whether a recovery code counts.
    pub fn takes_recovery_code(self) -> bool {
        self != Factors::Key
    }
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
    /// The registry requires a security key of this account and it has none.
    RegistryRequiresKey,
    /// The registry no longer offers authenticator-app (TOTP) enrolment.
    TotpEnrolmentDisabled,
    /// A trusted-publishing token tried anything but publishing its package.
    OidcTokenPublishesOnly,
    /// The package refuses tokens other than a login's.
    TokensRefused,
    /// The package requires publishes from tokens and trusted publishing to be staged.
    MustBeStaged,
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
                 policy or its trusted publishers, or approve a staged publish. {ENABLE_HINT}"
            )),
            Denial::TokensRefused => ApiError::forbidden(
                "This package requires two-factor authentication and refuses tokens: run \
                 `npm login` and use --otp, or publish from CI with trusted publishing.",
            ),
            Denial::MustBeStaged => ApiError::forbidden(
                "This publish must be staged: run `npm stage publish`, then a maintainer \
                 approves it with two-factor authentication (`npm stage approve <id>`).",
            ),
            Denial::RegistryRequires2fa => ApiError::forbidden(format!(
                "This registry requires two-factor authentication for this account. {ENABLE_HINT}"
            )),
            Denial::RegistryRequiresKey => ApiError::forbidden(
                "This registry requires a security key or passkey for this account. Add one on \
                 the registry's website (Account, Two-factor authentication), then try again.",
            ),
            Denial::OidcTokenPublishesOnly => ApiError::forbidden(
                "A trusted-publishing token can only publish the package it was issued for.",
            ),
            Denial::TotpEnrolmentDisabled => ApiError::forbidden(
                "This registry no longer offers authenticator apps for new two-factor \
                 enrolments. Add a security key or passkey on the registry's website (Account, \
                 Two-factor authentication) instead.",
            ),
        }
    }
}

/// Decides what an operation needs from its row in [`RULES`]. Pure: the whole 2FA policy is
/// the table and the order of these layers.
pub fn decide(input: GateInput) -> Decision {
    use Decision::*;
    let GateInput {
        op,
        mode,
        cred,
        reach,
        package,
        staging,
        registry,
        key_rule,
        has_keys,
        totp_enrolment,
    } = input;
    let rule = op.rule();
    let on = mode.is_on();
    // Where the registry requires keys of this account, only a key (or, to get back in, a
    // recovery code) is a second factor; an account without keys may only add one.
    let key_required = match key_rule {
        KeyRule::None => false,
        KeyRule::Publishers => rule.package_change,
        KeyRule::Everyone => true,
    };
    let factors = match (key_required && has_keys, rule.enrolment) {
        (false, _) => Factors::Any,
        (true, true) => Factors::KeyOrRecovery,
        (true, false) => Factors::Key,
    };
    let need = |n: Need| match n {
        Need::Nothing => Allow,
        Need::Otp => Otp(factors),
    };
    // A token created to be used alone (not a login's) enforces 2FA on package changes, as
    // npm's write tokens do since 2025: in auth-only mode too. Bypass tokens are the way out.
    let enforced = cred == CredentialKind::PublishToken && rule.package_change;
    let by_mode = || match mode {
        TfaMode::Off | TfaMode::Pending => Allow,
        TfaMode::AuthOnly if enforced => need(rule.auth_and_writes),
        TfaMode::AuthOnly => need(rule.auth_only),
        TfaMode::AuthAndWrites => need(rule.auth_and_writes),
    };

    // 1. The credential: a login takes the password, so only the account's mode matters;
    //    read-only tokens never write; automation tokens never govern.
    match (rule.credentials, cred) {
        (Credentials::Password, _) => return by_mode(),
        (_, CredentialKind::Anonymous) => return Deny(Denial::LoginRequired),
        (Credentials::Writer, CredentialKind::ReadOnlyToken) => {
            return Deny(Denial::ReadOnlyToken);
        }
        (Credentials::Writer, CredentialKind::AutomationToken)
            if rule.automation == Automation::Never =>
        {
            return Deny(Denial::AutomationTokenGovernance);
        }
        (Credentials::Writer, CredentialKind::OidcToken) if !rule.oidc => {
            return Deny(Denial::OidcTokenPublishesOnly);
        }
        _ => {}
    }
    // 2. How far a granular token reaches.
    if reach == Reach::Outside && rule.credentials == Credentials::Writer {
        return Deny(Denial::OutsideTokenScope);
    }
    // 3. The package's rules on tokens: refused altogether, or limited to staging.
    let created_token = matches!(
        cred,
        CredentialKind::PublishToken | CredentialKind::AutomationToken
    );
    if rule.package_change && package == PackagePolicy::PublishNoTokens && created_token {
        return Deny(Denial::TokensRefused);
    }
    if rule.stageable
        && staging == Staging::Required
        && (created_token || cred == CredentialKind::OidcToken)
    {
        return Deny(Denial::MustBeStaged);
    }
    // A trusted-publishing token is the CI identity its maintainers configured, checked at the
    // exchange: no account factor or policy applies to what it may do.
    if cred == CredentialKind::OidcToken {
        return Allow;
    }
    // 4. The registry's requirement on accounts without 2FA.
    if !on {
        let refused = match registry {
            RegistryRule::Everyone => !rule.enrolment,
            RegistryRule::Publishers => rule.package_change,
            RegistryRule::None => false,
        };
        if refused {
            return Deny(Denial::RegistryRequires2fa);
        }
    }
    // staging waits for an approval that will take a key; where keys are required of
    // everyone, an account without one may still only add one
    let waits = rule.deferred && key_rule == KeyRule::Publishers;
    if key_required && !has_keys && !rule.enrolment && !waits {
        return Deny(Denial::RegistryRequiresKey);
    }
    if rule.totp_enrolment && !totp_enrolment {
        return Deny(Denial::TotpEnrolmentDisabled);
    }
    let automation = cred == CredentialKind::AutomationToken;
    // 5. The package's own policy holds whatever the account's mode.
    if package != PackagePolicy::None && rule.package_change && !rule.deferred {
        if !on {
            return Deny(Denial::PackageRequires2fa);
        }
        let automated = automation && rule.automation == Automation::Allowed;
        return if automated && package == PackagePolicy::Automation {
            Allow
        } else {
            Otp(factors)
        };
    }
    if rule.needs_2fa && !on {
        return Deny(Denial::PolicyNeeds2fa);
    }
    // 6. Automation tokens.
    if automation {
        // Only their `Allowed` rows are left: the others were refused with the credential.
        return Allow;
    }
    // 7. The account's mode.
    by_mode()
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
        Some(t) => match t.status {
            TwoFactorStatus::Pending(_) => TfaMode::Pending,
            TwoFactorStatus::Active(TwoFactorMode::AuthOnly) => TfaMode::AuthOnly,
            TwoFactorStatus::Active(TwoFactorMode::AuthAndWrites) => TfaMode::AuthAndWrites,
        },
    }
}

/// The 2FA policy of a package.
pub fn package_policy(p: &Package) -> PackagePolicy {
    match p.policy {
        PackageTfaPolicy::None => PackagePolicy::None,
        PackageTfaPolicy::Publish => PackagePolicy::Publish,
        PackageTfaPolicy::Automation => PackagePolicy::Automation,
        PackageTfaPolicy::PublishNoTokens => PackagePolicy::PublishNoTokens,
    }
}

/// Whether a package requires staging of publishes from tokens and trusted publishing.
pub fn package_staging(p: &Package) -> Staging {
    if p.staged_publishes {
        Staging::Required
    } else {
        Staging::Optional
    }
}

/// The rules themselves, one row per operation, as Markdown.
fn rules_table(out: &mut String) {
    let need = |n: Need| match n {
        Need::Nothing => "—",
        Need::Otp => "**OTP**",
    };
    let yes = |b: bool| if b { "yes" } else { "—" };
    out.push_str("## The rules\n\n");
    out.push_str(
        "One row per operation; every table below is computed from these rows by `gate::decide`, \
         which applies them in a fixed order: the credential, a granular token's reach, the \
         package's rules on tokens, the registry's policy, the package's policy, automation \
         tokens, the account's mode. A *deferred* row asks its second factor when what it did is \
         approved (staging), so the package's policy and a key requirement wait for then.\n\n",
    );
    out.push_str(
        "| operation | credentials | auth-only | auth-and-writes | automation tokens | package change | while enrolling | needs 2FA on | deferred |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &RULES {
        let credentials = match r.credentials {
            Credentials::Password => "the password",
            Credentials::Any => "any",
            Credentials::Writer => "may write",
        };
        let automation = match r.automation {
            Automation::Allowed => "alone",
            Automation::Never => "refused",
        };
        out.push_str(&format!(
            "| {} | {credentials} | {} | {} | {automation} | {} | {} | {} | {} |\n",
            r.label,
            need(r.auth_only),
            need(r.auth_and_writes),
            yes(r.package_change),
            yes(r.enrolment),
            yes(r.needs_2fa),
            yes(r.deferred),
        ));
    }
    out.push('\n');
}

/// Renders the whole decision table as Markdown: docs/2fa-matrix.md is this text (a test
/// checks it), so the documentation is the code's own answer.
pub fn matrix_markdown() -> String {
    fn cell(d: Decision) -> &'static str {
        match d {
            Decision::Allow => "—",
            Decision::Otp(Factors::Any) => "**OTP**",
            Decision::Otp(Factors::KeyOrRecovery) => "**key** or recovery code",
            Decision::Otp(Factors::Key) => "**key**",
            Decision::Deny(Denial::LoginRequired) => "refused: log in",
            Decision::Deny(Denial::ReadOnlyToken) => "refused: read-only",
            Decision::Deny(Denial::AutomationTokenGovernance) => "refused: use a login token",
            Decision::Deny(Denial::OutsideTokenScope) => "refused: outside token",
            Decision::Deny(Denial::PackageRequires2fa) => "refused: enable 2FA",
            Decision::Deny(Denial::PolicyNeeds2fa) => "refused: enable 2FA",
            Decision::Deny(Denial::RegistryRequires2fa) => "refused: enable 2FA",
            Decision::Deny(Denial::RegistryRequiresKey) => "refused: add a key",
            Decision::Deny(Denial::TotpEnrolmentDisabled) => "refused: add a key instead",
            Decision::Deny(Denial::OidcTokenPublishesOnly) => "refused: publishes only",
            Decision::Deny(Denial::TokensRefused) => "refused: no tokens",
            Decision::Deny(Denial::MustBeStaged) => "refused: stage it",
        }
    }
    let modes = TfaMode::ALL;
    let base = |op, mode, cred| GateInput {
        op,
        mode,
        cred,
        reach: Reach::Full,
        package: PackagePolicy::None,
        staging: Staging::Optional,
        registry: RegistryRule::None,
        key_rule: KeyRule::None,
        has_keys: false,
        totp_enrolment: true,
    };
    let mut out = String::new();
    out.push_str("# 2FA matrix: what each operation needs\n\n");
    out.push_str(
        "Generated from the rules table in `crates/server/src/authz/gate.rs` \
         (`gate::matrix_markdown`); the test `matrix_doc_is_current` fails when this file and the \
         code disagree. Regenerate with \
         `TESSERA_WRITE_MATRIX=1 cargo test -p tessera-server matrix_doc`. Why a request needed \
         an OTP, or got a 404 or 403, is decided in one module, `crates/server/src/authz/`: \
         visibility first (a package the caller may not see is a 404, as a missing one), then \
         maintainers (403), then these rules.\n\n",
    );
    rules_table(&mut out);
    out.push_str(
        "## What each credential needs\n\n**OTP**: a second factor of any kind: a code from the authenticator app or an unused \
         recovery code in `npm-otp`, a confirmation in the browser (npm's web OTP), or a \
         security key or passkey; without one, 401 with `WWW-Authenticate: otp` (and, for \
         accounts with keys or that prefer it, `authUrl`/`doneUrl`). **key**: only a security \
         key or passkey counts, directly on the website or through the browser confirmation; \
         **key** or recovery code: also an unused recovery code. —: no second factor asked. \
         Refused: 403 (401 for no credential) whatever the second factor. Columns are the \
         account's 2FA mode.\n\n",
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
        "Login tokens (`npm login`), website sessions",
        "`Basic` credentials (the password itself) follow this table too, and with 2FA on every \
         Basic request needs an OTP, reads included (`gate::basic_needs_second_factor`, tested \
         with the rules). Its code is bound to the client (address and user agent), so one npm \
         command may send it on each of its requests.",
        &|op, m| base(op, m, CredentialKind::LoginToken),
    );
    section(
        &mut out,
        "Classic publish tokens, granular read-write tokens",
        "Tokens created to be used alone (`npm token create` without `--bypass-2fa`) enforce \
         2FA on package changes, as npm's write tokens do since 2025: in auth-only mode too. \
         Classic automation tokens and `--bypass-2fa` tokens do not (next table).",
        &|op, m| base(op, m, CredentialKind::PublishToken),
    );
    section(
        &mut out,
        "Automation tokens and granular tokens with `bypass_2fa`",
        "They publish, unpublish, deprecate and move dist-tags without an OTP; they never change \
         the account, tokens, owners or access, whatever the code (so a leaked one cannot spend \
         the account's one-time-password attempts either).",
        &|op, m| base(op, m, CredentialKind::AutomationToken),
    );
    section(
        &mut out,
        "Trusted-publishing tokens (from an OIDC exchange)",
        "They publish (or stage) the one package they were issued for, whatever the account's \
         mode and the package's or registry's policy (the exchange checked the CI identity \
         against the package's trusted publishers); everything else is refused. A token from a \
         trusted publisher allowed only `createStagedPackage` is decided as for a package that \
         requires staging (below).",
        &|op, m| GateInput {
            reach: Reach::Covered,
            ..base(op, m, CredentialKind::OidcToken)
        },
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
        (
            PackagePolicy::PublishNoTokens,
            "mfa=publish` and tokens refused (`tokens_refused",
        ),
    ] {
        for (cred, cname) in [
            (
                CredentialKind::LoginToken,
                "login tokens and website sessions",
            ),
            (CredentialKind::PublishToken, "publish and granular tokens"),
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
                .filter(|op| op.rule().package_change)
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
    out.push_str(
        "## Packages that require staging (`staged_publishes`)\n\nPublishes from tokens and \
         trusted publishing must be staged; a maintainer approves them with a second factor. \
         Login tokens and website sessions publish as above. Staging itself asks no second \
         factor in any mode; the approval asks it whatever the mode.\n\n",
    );
    for (cred, cname, reach) in [
        (CredentialKind::LoginToken, "Login tokens", Reach::Full),
        (
            CredentialKind::PublishToken,
            "Publish and granular tokens",
            Reach::Full,
        ),
        (
            CredentialKind::AutomationToken,
            "Automation and bypass tokens",
            Reach::Full,
        ),
        (
            CredentialKind::OidcToken,
            "Trusted-publishing tokens",
            Reach::Covered,
        ),
    ] {
        out.push_str(&format!("### {cname}\n\n"));
        let mut rows = Operation::ALL
            .iter()
            .filter(|op| {
                matches!(
                    op,
                    Operation::Publish | Operation::Stage | Operation::StageDecide
                )
            })
            .map(|op| {
                (
                    op.label().to_owned(),
                    modes
                        .iter()
                        .map(|m| {
                            decide(GateInput {
                                staging: Staging::Required,
                                reach,
                                ..base(*op, *m, cred)
                            })
                        })
                        .collect(),
                )
            });
        table(&mut out, &mut rows);
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
        out.push_str(&format!("## Registry policy `require_2fa = \"{rname}\"`\n\nLogin tokens and website sessions (created tokens add their own rules, above). {note} During the grace period (`require_2fa_grace_until`) nothing is refused and npm prints a notice instead.\n\n"));
        let mut rows = Operation::ALL.iter().map(|op| {
            (
                op.label().to_owned(),
                modes
                    .iter()
                    .map(|m| {
                        decide(GateInput {
                            registry: rule,
                            ..base(*op, *m, CredentialKind::LoginToken)
                        })
                    })
                    .collect(),
            )
        });
        table(&mut out, &mut rows);
    }
    for (rule, rname, note) in [
        (
            KeyRule::Publishers,
            "publishers",
            "Package changes take only a security key or passkey as the second factor; accounts \
             without a key cannot change packages until they add one.",
        ),
        (
            KeyRule::Everyone,
            "everyone",
            "Every second factor must be a security key or passkey (a recovery code still lets \
             a user who lost theirs log in and add a new one); accounts without a key can log in \
             only to add one.",
        ),
    ] {
        for (has_keys, who) in [
            (true, "accounts with keys"),
            (false, "accounts without keys"),
        ] {
            out.push_str(&format!(
                "## Registry policy `tfa.require_webauthn_for = \"{rname}\"`, {who}\n\nLogin tokens and website sessions. {note}\n\n"
            ));
            let mut rows = Operation::ALL.iter().map(|op| {
                (
                    op.label().to_owned(),
                    modes
                        .iter()
                        .map(|m| {
                            decide(GateInput {
                                key_rule: rule,
                                has_keys,
                                ..base(*op, *m, CredentialKind::LoginToken)
                            })
                        })
                        .collect(),
                )
            });
            table(&mut out, &mut rows);
        }
    }
    out.push_str(
        "## Registry policy `tfa.totp_enrolment = \"disabled\"`\n\nNew enrolments with an \
         authenticator app are refused (`start 2FA enrolment` answers 403 and points to the \
         website's security keys); accounts that already use one keep it, and every other row \
         is as above.\n",
    );
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

    const ALL_CREDS: [C; 8] = [
        C::Anonymous,
        C::Session,
        C::Basic,
        C::LoginToken,
        C::PublishToken,
        C::ReadOnlyToken,
        C::AutomationToken,
        C::OidcToken,
    ];
    const ALL_POLICIES: [PackagePolicy; 4] = [
        PackagePolicy::None,
        PackagePolicy::Publish,
        PackagePolicy::Automation,
        PackagePolicy::PublishNoTokens,
    ];
    const ALL_STAGINGS: [Staging; 2] = [Staging::Optional, Staging::Required];
    const ALL_REACHES: [Reach; 3] = [Reach::Full, Reach::Covered, Reach::Outside];
    const ALL_KEY_RULES: [KeyRule; 3] = [KeyRule::None, KeyRule::Publishers, KeyRule::Everyone];

    /// How much a decision asks: stricter policies may only raise it.
    fn rank(d: Decision) -> u8 {
        match d {
            Allow => 0,
            Otp(Factors::Any) => 1,
            Otp(Factors::KeyOrRecovery) => 2,
            Otp(Factors::Key) => 3,
            Deny(_) => 4,
        }
    }
    const ALL_RULES: [RegistryRule; 3] = [
        RegistryRule::None,
        RegistryRule::Publishers,
        RegistryRule::Everyone,
    ];

    /// npm's two-factor document, as facts about the table: in auth-only mode the second
    /// factor guards logging in and removing 2FA (and here whatever mints a credential or
    /// changes the password or 2FA); in auth-and-writes mode also profile and password changes,
    /// tokens, and every change to a package.
    #[test]
    fn the_table_says_what_npm_documents() {
        let otp_in_auth_only = [
            Op::Login,
            Op::PasswordChange,
            Op::TfaModeChange,
            Op::TfaDisable,
            Op::RecoveryCodesRegenerate,
            Op::TokenCreate,
            Op::PackageMfaChange,
            Op::KeyAdd,
            Op::KeyRemove,
            Op::TotpAdd,
            Op::TrustChange,
            Op::StageDecide,
        ];
        let otp_in_auth_and_writes = [
            Op::ProfileWrite,
            Op::TokenRevoke,
            Op::Publish,
            Op::Unpublish,
            Op::Deprecate,
            Op::OwnerChange,
            Op::DistTagChange,
            Op::AccessChange,
        ];
        for op in Op::ALL {
            let r = op.rule();
            let expected_auth_only = if otp_in_auth_only.contains(&op) {
                Need::Otp
            } else {
                Need::Nothing
            };
            assert_eq!(r.auth_only, expected_auth_only, "{op:?} in auth-only");
            if otp_in_auth_only.contains(&op) || otp_in_auth_and_writes.contains(&op) {
                assert_eq!(r.auth_and_writes, Need::Otp, "{op:?} in auth-and-writes");
            }
        }
        // Enrolling, starring and logging out never ask.
        for op in [
            Op::TfaEnable,
            Op::TfaConfirm,
            Op::TfaCancelPending,
            Op::Star,
            Op::Logout,
            Op::Stage,
        ] {
            assert_eq!(
                (op.rule().auth_only, op.rule().auth_and_writes),
                NONE,
                "{op:?}"
            );
        }
    }

    #[test]
    fn one_row_per_operation_in_order() {
        assert_eq!(RULES.len(), Op::ALL.len());
        for (row, op) in RULES.iter().zip(Op::ALL) {
            assert_eq!(row.op, op);
        }
    }

    #[test]
    fn automation_tokens_write_packages_and_never_govern() {
        for i in all_inputs().filter(|i| i.cred == C::AutomationToken) {
            let r = i.op.rule();
            if r.automation == Automation::Never && r.credentials == Credentials::Writer {
                assert!(matches!(decide(i), Deny(_)), "{i:?}");
            }
        }
        for op in [Op::Publish, Op::Unpublish, Op::Deprecate, Op::DistTagChange] {
            for mode in TfaMode::ALL {
                let i = GateInput {
                    op,
                    mode,
                    cred: C::AutomationToken,
                    reach: Reach::Full,
                    package: PackagePolicy::None,
                    staging: Staging::Optional,
                    registry: RegistryRule::None,
                    key_rule: KeyRule::None,
                    has_keys: false,
                    totp_enrolment: true,
                };
                assert_eq!(decide(i), Allow, "{i:?}");
            }
        }
    }

    #[test]
    fn without_a_credential_only_a_login_goes_on() {
        for i in all_inputs().filter(|i| i.cred == C::Anonymous) {
            match i.op {
                Op::Login => assert_ne!(decide(i), Deny(Denial::LoginRequired)),
                _ => assert_eq!(decide(i), Deny(Denial::LoginRequired), "{i:?}"),
            }
        }
    }

    #[test]
    fn a_token_outside_its_packages_can_only_log_out() {
        for i in all_inputs().filter(|i| i.reach == Reach::Outside) {
            let d = decide(i);
            match (i.op, i.cred) {
                (Op::Login | Op::Logout, _) | (_, C::Anonymous | C::ReadOnlyToken) => {}
                (_, C::AutomationToken) if i.op.rule().automation == Automation::Never => {
                    assert_eq!(d, Deny(Denial::AutomationTokenGovernance), "{i:?}")
                }
                (_, C::OidcToken) if !i.op.rule().oidc => {
                    assert_eq!(d, Deny(Denial::OidcTokenPublishesOnly), "{i:?}")
                }
                _ => assert_eq!(d, Deny(Denial::OutsideTokenScope), "{i:?}"),
            }
        }
    }

    #[test]
    fn stricter_modes_never_ask_less() {
        let rank = rank;
        for i in all_inputs().filter(|i| i.mode == TfaMode::AuthOnly) {
            let stricter = decide(GateInput {
                mode: TfaMode::AuthAndWrites,
                ..i
            });
            assert!(rank(stricter) >= rank(decide(i)), "{i:?}");
            // Pending is not enforced: it is the same as off.
            assert_eq!(
                decide(GateInput {
                    mode: TfaMode::Pending,
                    ..i
                }),
                decide(GateInput {
                    mode: TfaMode::Off,
                    ..i
                }),
                "{i:?}"
            );
        }
    }

    #[test]
    fn without_2fa_nothing_asks_for_a_code() {
        for i in all_inputs().filter(|i| !i.mode.is_on()) {
            assert!(!matches!(decide(i), Otp(_)), "{i:?}");
        }
    }

    #[test]
    fn registry_rules_spare_enrolment() {
        for i in all_inputs()
            .filter(|i| i.registry == RegistryRule::Everyone && !i.mode.is_on())
            .filter(|i| i.reach == Reach::Full && i.package == PackagePolicy::None)
            .filter(|i| i.staging == Staging::Optional)
            .filter(|i| matches!(i.cred, C::Session | C::Basic | C::PublishToken))
        {
            let refused = decide(i) == Deny(Denial::RegistryRequires2fa);
            assert_eq!(refused, !i.op.rule().enrolment, "{i:?}");
        }
    }

    fn all_inputs() -> impl Iterator<Item = GateInput> {
        Op::ALL.into_iter().flat_map(|op| {
            TfaMode::ALL.into_iter().flat_map(move |mode| {
                ALL_CREDS.into_iter().flat_map(move |cred| {
                    ALL_REACHES.into_iter().flat_map(move |reach| {
                        ALL_POLICIES.into_iter().flat_map(move |package| {
                            ALL_STAGINGS.into_iter().flat_map(move |staging| {
                                ALL_RULES.into_iter().flat_map(move |registry| {
                                    ALL_KEY_RULES.into_iter().flat_map(move |key_rule| {
                                        [(false, true), (true, true), (false, false), (true, false)]
                                            .into_iter()
                                            .map(move |(has_keys, totp_enrolment)| GateInput {
                                                op,
                                                mode,
                                                cred,
                                                reach,
                                                package,
                                                staging,
                                                registry,
                                                key_rule,
                                                has_keys,
                                                totp_enrolment,
                                            })
                                    })
                                })
                            })
                        })
                    })
                })
            })
        })
    }

    #[test]
    fn every_combination_is_decided() {
        assert_eq!(all_inputs().count(), 26 * 4 * 8 * 3 * 4 * 2 * 3 * 3 * 2 * 2);
    }

    #[test]
    fn sessions_basic_login_and_publish_tokens_are_alike() {
        // a login token is the account's session on the command line; a publish token differs
        // from it only where the package's rules single out tokens
        for i in all_inputs().filter(|i| i.cred == C::LoginToken) {
            for other in [C::Session, C::Basic] {
                assert_eq!(decide(GateInput { cred: other, ..i }), decide(i), "{i:?}");
            }
            let rule = i.op.rule();
            let singled_out = (rule.package_change && i.package == PackagePolicy::PublishNoTokens)
                || (rule.stageable && i.staging == Staging::Required)
                || (rule.package_change && i.mode == TfaMode::AuthOnly);
            if !singled_out {
                assert_eq!(
                    decide(GateInput {
                        cred: C::PublishToken,
                        ..i
                    }),
                    decide(i),
                    "{i:?}"
                );
            }
        }
    }

    #[test]
    fn created_write_tokens_enforce_2fa_on_package_changes() {
        // in auth-only mode a login's token publishes as the account's mode says; a created
        // token asks the second factor as in auth-and-writes (bypass tokens do not)
        for i in all_inputs().filter(|i| {
            i.cred == C::PublishToken && i.mode == TfaMode::AuthOnly && i.op.rule().package_change
        }) {
            let d = decide(i);
            let strict = decide(GateInput {
                mode: TfaMode::AuthAndWrites,
                ..i
            });
            assert_eq!(d, strict, "{i:?}");
            if i.op.rule().auth_and_writes == Need::Otp && !matches!(d, Deny(_)) {
                assert!(matches!(d, Otp(_)), "{i:?}");
            }
        }
    }

    #[test]
    fn packages_that_refuse_tokens_refuse_every_created_token() {
        for i in all_inputs().filter(|i| i.package == PackagePolicy::PublishNoTokens) {
            let rule = i.op.rule();
            let d = decide(i);
            if !rule.package_change || i.reach == Reach::Outside {
                continue;
            }
            match i.cred {
                C::PublishToken => assert_eq!(d, Deny(Denial::TokensRefused), "{i:?}"),
                C::AutomationToken if rule.automation == Automation::Allowed => {
                    assert_eq!(d, Deny(Denial::TokensRefused), "{i:?}")
                }
                // a login's token and the website are the people; trusted publishing is the CI
                C::LoginToken | C::Session | C::Basic | C::OidcToken => {
                    assert_ne!(d, Deny(Denial::TokensRefused), "{i:?}")
                }
                _ => {}
            }
            // otherwise it is mfa=publish
            if matches!(i.cred, C::LoginToken | C::Session | C::Basic) {
                assert_eq!(
                    d,
                    decide(GateInput {
                        package: PackagePolicy::Publish,
                        ..i
                    }),
                    "{i:?}"
                );
            }
        }
    }

    #[test]
    fn staging_defers_the_second_factor_to_a_person() {
        for i in all_inputs().filter(|i| i.reach != Reach::Outside) {
            let d = decide(i);
            match i.op {
                // staging asks no second factor, whatever the mode and the policies
                Op::Stage => assert!(!matches!(d, Otp(_)), "{i:?}"),
                // approving or rejecting always asks one, from an account with 2FA, and never
                // takes an automation, bypass or trusted-publishing token
                Op::StageDecide => {
                    match i.cred {
                        C::AutomationToken => {
                            assert_eq!(d, Deny(Denial::AutomationTokenGovernance), "{i:?}")
                        }
                        C::OidcToken => {
                            assert_eq!(d, Deny(Denial::OidcTokenPublishesOnly), "{i:?}")
                        }
                        _ => {}
                    }
                    assert!(matches!(d, Otp(_) | Deny(_)), "{i:?}");
                    if !i.mode.is_on() {
                        assert!(matches!(d, Deny(_)), "{i:?}");
                    }
                }
                // where the package requires it, tokens and trusted publishing only stage
                Op::Publish
                    if i.staging == Staging::Required
                        && matches!(
                            i.cred,
                            C::PublishToken | C::AutomationToken | C::OidcToken
                        )
                        && d != Deny(Denial::TokensRefused) =>
                {
                    assert_eq!(d, Deny(Denial::MustBeStaged), "{i:?}")
                }
                _ => {}
            }
        }
        // staging is allowed to exactly the credentials that may publish
        for i in all_inputs().filter(|i| i.op == Op::Stage && i.staging == Staging::Optional) {
            let publish = decide(GateInput {
                op: Op::Publish,
                ..i
            });
            let stage = decide(i);
            assert_eq!(
                matches!(stage, Deny(_)),
                matches!(
                    publish,
                    Deny(
                        Denial::LoginRequired
                            | Denial::ReadOnlyToken
                            | Denial::OutsideTokenScope
                            | Denial::OidcTokenPublishesOnly
                            | Denial::RegistryRequires2fa
                            | Denial::TokensRefused
                            | Denial::AutomationTokenGovernance
                    )
                ) || (publish == Deny(Denial::RegistryRequiresKey)
                    && i.key_rule == KeyRule::Everyone),
                "{i:?}: stage {stage:?}, publish {publish:?}"
            );
        }
    }

    #[test]
    fn nothing_is_weaker_with_a_policy_than_without() {
        // adding a package policy or a registry rule never turns a refusal or an OTP into Allow
        let rank = rank;
        for i in all_inputs().filter(|i| {
            i.package == PackagePolicy::None
                && i.staging == Staging::Optional
                && i.registry == RegistryRule::None
                && i.key_rule == KeyRule::None
                && i.totp_enrolment
        }) {
            for (package, staging) in ALL_POLICIES
                .into_iter()
                .flat_map(|p| ALL_STAGINGS.map(|s| (p, s)))
            {
                for (registry, key_rule) in ALL_RULES.into_iter().zip(ALL_KEY_RULES) {
                    let stricter = decide(GateInput {
                        package,
                        staging,
                        registry,
                        key_rule,
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
    fn without_a_key_rule_every_factor_counts() {
        for i in all_inputs().filter(|i| i.key_rule == KeyRule::None) {
            assert!(
                !matches!(decide(i), Otp(Factors::Key | Factors::KeyOrRecovery)),
                "{i:?}"
            );
            // and whether the account has keys changes nothing
            assert_eq!(
                decide(GateInput {
                    has_keys: !i.has_keys,
                    ..i
                }),
                decide(i),
                "{i:?}"
            );
        }
    }

    #[test]
    fn where_keys_are_required_only_keys_count() {
        for i in all_inputs().filter(|i| i.key_rule != KeyRule::None && i.totp_enrolment) {
            let rule = i.op.rule();
            let covered = i.key_rule == KeyRule::Everyone || rule.package_change;
            let d = decide(i);
            if !covered {
                // outside the requirement, exactly as without it
                assert_eq!(
                    d,
                    decide(GateInput {
                        key_rule: KeyRule::None,
                        ..i
                    }),
                    "{i:?}"
                );
                continue;
            }
            match d {
                Otp(f) if i.has_keys => {
                    let expected = if rule.enrolment {
                        Factors::KeyOrRecovery
                    } else {
                        Factors::Key
                    };
                    assert_eq!(f, expected, "{i:?}");
                }
                // an account without keys gets no second-factor demand it could not meet,
                // except on the rows that let it log in and add one
                Otp(f) => {
                    assert!(rule.enrolment, "{i:?}");
                    assert_eq!(f, Factors::Any, "{i:?}");
                }
                Deny(Denial::RegistryRequiresKey) => {
                    assert!(!i.has_keys && !rule.enrolment, "{i:?}")
                }
                Deny(_) | Allow => {}
            }
            let waits = rule.deferred && i.key_rule == KeyRule::Publishers;
            if !i.has_keys
                && !rule.enrolment
                && !waits
                && i.package != PackagePolicy::PublishNoTokens
                && i.staging == Staging::Optional
                && matches!(
                    i.cred,
                    C::Session | C::Basic | C::LoginToken | C::PublishToken
                )
                && i.reach == Reach::Full
                && (i.mode.is_on() || i.registry == RegistryRule::None)
                && (i.mode.is_on() || i.package == PackagePolicy::None)
                && (!rule.needs_2fa || i.mode.is_on())
            {
                assert_eq!(d, Deny(Denial::RegistryRequiresKey), "{i:?}");
            }
        }
    }

    #[test]
    fn a_key_can_always_be_added_and_its_removal_needs_a_factor() {
        // Adding a key is how an account meets a key requirement: no key rule refuses it, and
        // with 2FA on it asks for a second factor the account can give (its code before it has
        // a key; a key or a recovery code after).
        for i in all_inputs().filter(|i| i.op == Op::KeyAdd && i.cred == C::Session) {
            let d = decide(i);
            assert_ne!(d, Deny(Denial::RegistryRequiresKey), "{i:?}");
            if i.mode.is_on() && i.reach == Reach::Full {
                let expected = if i.key_rule == KeyRule::Everyone && i.has_keys {
                    Factors::KeyOrRecovery
                } else {
                    Factors::Any
                };
                assert_eq!(d, Otp(expected), "{i:?}");
            }
        }
        for i in all_inputs().filter(|i| {
            i.op == Op::KeyRemove
                && i.cred == C::Session
                && i.mode.is_on()
                && i.has_keys
                && i.reach == Reach::Full
        }) {
            assert!(matches!(decide(i), Otp(_)), "{i:?}");
        }
    }

    #[test]
    fn disabling_totp_enrolment_refuses_only_new_apps() {
        for i in all_inputs().filter(|i| !i.totp_enrolment) {
            let d = decide(i);
            let with = decide(GateInput {
                totp_enrolment: true,
                ..i
            });
            if i.op.rule().totp_enrolment && matches!(with, Allow | Otp(_)) {
                assert_eq!(d, Deny(Denial::TotpEnrolmentDisabled), "{i:?}");
            } else {
                assert_eq!(d, with, "{i:?}");
            }
        }
    }

    #[test]
    fn trusted_publishing_tokens_only_publish_their_package() {
        for i in all_inputs().filter(|i| i.cred == C::OidcToken) {
            let d = decide(i);
            let rule = i.op.rule();
            match (rule.credentials, rule.oidc, i.reach) {
                (Credentials::Password | Credentials::Any, _, _) => {}
                (Credentials::Writer, false, _) => {
                    assert_eq!(d, Deny(Denial::OidcTokenPublishesOnly), "{i:?}")
                }
                (Credentials::Writer, true, Reach::Outside) => {
                    assert_eq!(d, Deny(Denial::OutsideTokenScope), "{i:?}")
                }
                (Credentials::Writer, true, _)
                    if rule.stageable && i.staging == Staging::Required =>
                {
                    assert_eq!(d, Deny(Denial::MustBeStaged), "{i:?}")
                }
                // whatever the account's mode and the policies: the exchange checked the CI
                (Credentials::Writer, true, _) => assert_eq!(d, Allow, "{i:?}"),
            }
        }
        let oidc: Vec<Op> = Op::ALL.into_iter().filter(|op| op.rule().oidc).collect();
        assert_eq!(oidc, [Op::Publish, Op::Stage]);
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
