//! The rows the store hands out and takes in. Times are Unix milliseconds.

use serde::{Deserialize, Serialize};

/// Primary key of a user.
pub type UserId = i64;
/// Primary key of a package.
pub type PackageId = i64;

/// An account.
#[derive(Debug, Clone)]
pub struct User {
    /// Primary key.
    pub id: UserId,
    /// The npm user name (lowercase).
    pub name: String,
    /// Public email address.
    pub email: String,
    /// Whether the email address was verified.
    pub email_verified: bool,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Editable profile fields (`npm profile set`).
    pub profile: Profile,
    /// Registry administrator.
    pub is_admin: bool,
    /// A locked account can neither log in nor use its tokens.
    pub locked: bool,
    /// Two-factor authentication, if pending or active.
    pub two_factor: Option<TwoFactor>,
    /// Confirm one-time passwords in the browser (npm's web OTP) instead of typing them.
    pub web_otp: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last profile change.
    pub updated_at: i64,
}

/// The free-form profile fields npm lets a user set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// Full name.
    pub fullname: Option<String>,
    /// Home page URL.
    pub homepage: Option<String>,
    /// Twitter handle.
    pub twitter: Option<String>,
    /// GitHub handle.
    pub github: Option<String>,
    /// Freenode handle.
    pub freenode: Option<String>,
}

/// What is needed to create an account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// User name, already validated.
    pub name: String,
    /// Email address, already validated.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Whether the account administers the registry.
    pub is_admin: bool,
}

/// A security key or passkey (WebAuthn) registered as a second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityKeyRecord {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: UserId,
    /// The name its owner gave it.
    pub name: String,
    /// The authenticator's credential id, base64url.
    pub credential_id: String,
    /// The public key and counter as the WebAuthn library keeps them (JSON).
    pub credential: String,
    /// The last signature counter accepted.
    pub counter: i64,
    /// Whether the authenticator said the credential is backed up (a synced passkey).
    pub backup_state: bool,
    /// When it was registered.
    pub created_at: i64,
    /// When it last signed in or confirmed something.
    pub last_used_at: Option<i64>,
}

/// A key to register.
#[derive(Debug, Clone)]
pub struct NewSecurityKey {
    /// Owner.
    pub user_id: UserId,
    /// Its name.
    pub name: String,
    /// Credential id, base64url.
    pub credential_id: String,
    /// The library's credential (JSON).
    pub credential: String,
    /// Signature counter at registration.
    pub counter: i64,
    /// Backed up (synced passkey).
    pub backup_state: bool,
}

/// What removing a key left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRemoval {
    /// No such key of this account.
    NotFound,
    /// Removed; other second factors remain.
    Removed,
    /// Removed, and it was the account's last second factor: 2FA is now off.
    RemovedLastFactor,
}

/// The kind of a WebAuthn ceremony.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyKind {
    /// Registering a new key.
    Register,
    /// Asserting with a registered key.
    Authenticate,
}

impl CeremonyKind {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            CeremonyKind::Register => "register",
            CeremonyKind::Authenticate => "authenticate",
        }
    }

    /// Parses a stored value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "register" => Some(CeremonyKind::Register),
            "authenticate" => Some(CeremonyKind::Authenticate),
            _ => None,
        }
    }
}

/// A WebAuthn ceremony under way: single use, expiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    /// SHA-256 of the id the page holds.
    pub id_hash: String,
    /// The account.
    pub user_id: UserId,
    /// Registration or assertion.
    pub kind: CeremonyKind,
    /// The session or handshake that began it (it must end there).
    pub bound_to: String,
    /// The library's ceremony state (JSON).
    pub state: String,
    /// Start.
    pub created_at: i64,
    /// End.
    pub expires_at: i64,
}

/// An invitation to sign up, as its secret link finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// The user name the account will have.
    pub name: String,
    /// The invitee's email address.
    pub email: String,
    /// When the link stops working (ms).
    pub expires_at: i64,
}

/// A name whose every version was unpublished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpublishedName {
    /// When the last version went (ms).
    pub unpublished_at: i64,
    /// Who maintained it then.
    pub maintainers: Vec<UserId>,
}

/// The kinds of API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    /// Minted by `npm login` / `npm adduser`.
    Login,
    /// A classic publish token (`npm token create` with npm ≤ 10).
    Publish,
    /// A classic read-only token.
    ReadOnly,
    /// A classic automation token (skips the OTP on package writes).
    Automation,
    /// A granular token (npm 11 `npm token create`).
    Granular,
    /// Minted by a trusted-publishing exchange: publishes one package, briefly.
    Oidc,
    /// Minted by a trusted-publishing exchange for a publisher that may only stage: stages
    /// publishes of one package, briefly.
    OidcStage,
}

impl TokenKind {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Login => "login",
            TokenKind::Publish => "publish",
            TokenKind::ReadOnly => "read-only",
            TokenKind::Automation => "automation",
            TokenKind::Granular => "granular",
            TokenKind::Oidc => "oidc",
            TokenKind::OidcStage => "oidc-stage",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "login" => TokenKind::Login,
            "publish" => TokenKind::Publish,
            "read-only" => TokenKind::ReadOnly,
            "automation" => TokenKind::Automation,
            "granular" => TokenKind::Granular,
            "oidc" => TokenKind::Oidc,
            "oidc-stage" => TokenKind::OidcStage,
            _ => return None,
        })
    }
}

/// A granular token's permission on packages, scopes or organisations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Nothing.
    NoAccess,
    /// Reads only.
    ReadOnly,
    /// Reads and writes.
    ReadWrite,
}

impl Permission {
    /// npm's name, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::NoAccess => "no-access",
            Permission::ReadOnly => "read-only",
            Permission::ReadWrite => "read-write",
        }
    }

    /// Parses npm's name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "no-access" => Some(Permission::NoAccess),
            "read-only" => Some(Permission::ReadOnly),
            "read-write" => Some(Permission::ReadWrite),
            _ => None,
        }
    }
}

/// The limits of a granular token, as npm 11 sends them (stored, enforced by the server).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrants {
    /// Packages the token may act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Whether the token covers all of the user's packages.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub packages_all: bool,
    /// Scopes (`@acme`) the token may act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// Organisations the token may act on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orgs: Vec<String>,
    /// Permission on packages and scopes (`None`: not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packages_and_scopes_permission: Option<Permission>,
    /// Permission on organisations (`None`: not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orgs_permission: Option<Permission>,
}

/// An API token as stored: only its hash, never its value.
#[derive(Debug, Clone)]
pub struct Token {
    /// Primary key.
    pub id: i64,
    /// Owner.
    pub user_id: UserId,
    /// Hex SHA-256 of the token value; also npm's `key`.
    pub token_hash: String,
    /// The first characters of the value, shown by `npm token list`.
    pub display_prefix: String,
    /// Kind of token.
    pub kind: TokenKind,
    /// Name given at creation.
    pub name: Option<String>,
    /// Description given at creation.
    pub description: Option<String>,
    /// Stored read-only flag; ask [`Token::read_only`], which also counts the kind.
    pub readonly: bool,
    /// Skips the OTP on package writes.
    pub bypass_2fa: bool,
    /// IPv4/IPv6 CIDR ranges the token may be used from (empty: anywhere).
    pub cidr_whitelist: Vec<String>,
    /// Granular limits.
    pub grants: TokenGrants,
    /// Expiry, if any.
    pub expires_at: Option<i64>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
}

impl Token {
    /// Whether the token refuses every write: a read-only kind, or stored read-only (a granular
    /// token that can write nowhere).
    pub fn read_only(&self) -> bool {
        self.readonly || self.kind == TokenKind::ReadOnly
    }
}

/// What is needed to store a new token.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Owner.
    pub user_id: UserId,
    /// Hex SHA-256 of the value.
    pub token_hash: String,
    /// Shown prefix of the value.
    pub display_prefix: String,
    /// Kind.
    pub kind: TokenKind,
    /// Name.
    pub name: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Read-only.
    pub readonly: bool,
    /// Skips the OTP on package writes.
    pub bypass_2fa: bool,
    /// CIDR ranges.
    pub cidr_whitelist: Vec<String>,
    /// Granular limits.
    pub grants: TokenGrants,
    /// Expiry.
    pub expires_at: Option<i64>,
}

/// Package visibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone allowed to read the registry sees it.
    Public,
    /// Only its maintainers see it.
    Restricted,
}

impl Access {
    /// The name stored in the database (npm's words).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Restricted => "restricted",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "public" => Some(Access::Public),
            "restricted" | "private" => Some(Access::Restricted),
            _ => None,
        }
    }
}

/// A package row.
#[derive(Debug, Clone)]
pub struct Package {
    /// Primary key.
    pub id: PackageId,
    /// Full name, with scope.
    pub name: String,
    /// Visibility.
    pub access: Access,
    /// Revision counter, bumped by every change.
    pub rev: i64,
    /// Description of the latest version (for search).
    pub description: Option<String>,
    /// Keywords of the latest version (for search).
    pub keywords: Vec<String>,
    /// 2FA policy for publishing (`npm access set mfa=…`).
    pub policy: PackageTfaPolicy,
    /// Publishes from tokens and trusted publishing must be staged and approved with 2FA.
    pub staged_publishes: bool,
    /// Publishes must carry a valid provenance bundle.
    pub provenance_required: bool,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub modified_at: i64,
}

/// A package's 2FA policy for writes (`npm access set mfa=none|publish|automation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PackageTfaPolicy {
    /// No package requirement (the account's own 2FA still applies).
    #[default]
    None,
    /// Writes need 2FA; automation tokens do not bypass it.
    Publish,
    /// Writes need 2FA, or an automation token.
    Automation,
    /// Writes need 2FA, and tokens (other than a login's) are refused: npm's "require
    /// two-factor authentication and disallow tokens".
    PublishNoTokens,
}

impl PackageTfaPolicy {
    /// From the stored pair (`publish_requires_tfa`, `automation_overrides_tfa`); an override
    /// without the requirement means nothing.
    pub fn from_flags(publish_requires_tfa: bool, automation_overrides_tfa: bool) -> Self {
        match (publish_requires_tfa, automation_overrides_tfa) {
            (false, _) => PackageTfaPolicy::None,
            (true, false) => PackageTfaPolicy::Publish,
            (true, true) => PackageTfaPolicy::Automation,
        }
    }

    /// The stored pair (`publish_requires_tfa`, `automation_overrides_tfa`).
    pub fn flags(self) -> (bool, bool) {
        match self {
            PackageTfaPolicy::None => (false, false),
            PackageTfaPolicy::Publish | PackageTfaPolicy::PublishNoTokens => (true, false),
            PackageTfaPolicy::Automation => (true, true),
        }
    }

    /// From the stored columns: the pair and `tokens_refused` (which means something only with
    /// `Publish`).
    pub fn from_columns(requires: bool, overrides: bool, tokens_refused: bool) -> Self {
        match Self::from_flags(requires, overrides) {
            PackageTfaPolicy::Publish if tokens_refused => PackageTfaPolicy::PublishNoTokens,
            p => p,
        }
    }

    /// Whether tokens are refused (the third stored column).
    pub fn tokens_refused(self) -> bool {
        self == PackageTfaPolicy::PublishNoTokens
    }
}

/// One published version.
#[derive(Debug, Clone)]
pub struct VersionRecord {
    /// The version string.
    pub version: String,
    /// The version's manifest as JSON text, without `readme` and `dist`.
    pub manifest: String,
    /// The README published with this version.
    pub readme: Option<String>,
    /// Hex SHA-512 of the tarball: its content address.
    pub tarball_sha512: String,
    /// Hex SHA-1 of the tarball (`dist.shasum`).
    pub shasum: String,
    /// `sha512-…` SRI string (`dist.integrity`).
    pub integrity: String,
    /// Tarball size in bytes.
    pub size: i64,
    /// Deprecation message, if deprecated.
    pub deprecated: Option<String>,
    /// Who published it.
    pub publisher: Option<Maintainer>,
    /// Publication time.
    pub published_at: i64,
    /// The registry's signatures (`dist.signatures`, a JSON array), once signed.
    pub signatures: Option<String>,
    /// What its verified provenance says (a [`Provenance::summary`]), if it has one.
    pub provenance: Option<String>,
    /// Whether the registry has attested its publish ([`PublishAttestation`]).
    pub attested: bool,
}

/// The registry's publish attestation of a version: its statement, signed with a registry key
/// and logged in a transparency log, as a Sigstore bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishAttestation {
    /// The registry key that signed it.
    pub keyid: String,
    /// The bundle (JSON).
    pub bundle: String,
    /// When the transparency log took it (Unix ms): npm counts it while its key had not
    /// expired then.
    pub integrated_at: i64,
}

/// A version whose publish the registry has yet to attest, or must attest again because its
/// attestation's key had expired when the log took it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnattestedVersion {
    /// Its package.
    pub package_id: PackageId,
    /// The package's name.
    pub name: String,
    /// The version.
    pub version: String,
    /// `dist.integrity`.
    pub integrity: String,
    /// The blob's key (hex SHA-512 of the tarball).
    pub tarball_sha512: String,
    /// The `integrated_at` of the attestation to replace, if it has one.
    pub replaces: Option<i64>,
}

/// A version's provenance: the Sigstore bundle its publish attached, verified then.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Provenance {
    /// The attested statement's predicate type (`https://slsa.dev/provenance/v1`).
    pub predicate_type: String,
    /// The bundle as the client sent it (JSON).
    pub bundle: String,
    /// What was verified, as JSON: the predicate type, issuer, repository, commit, workflow and
    /// run.
    pub summary: String,
}

/// A registry signing key (ECDSA P-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// `SHA256:<base64 of the SHA-256 of the SPKI>`, as npm names keys.
    pub keyid: String,
    /// The public key: base64 of its SPKI DER.
    pub public_key: String,
    /// The private key (PKCS#8), sealed.
    pub sealed_private: Vec<u8>,
    /// When it was made (Unix ms).
    pub created_at: i64,
    /// When it stopped signing (Unix ms); `None` for the current key.
    pub expires_at: Option<i64>,
}

/// A version to sign: it has no registry signature, or its signature is from a key that had
/// expired when it was published (which npm refuses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsignedVersion {
    /// Its package.
    pub package_id: PackageId,
    /// The package's name.
    pub name: String,
    /// The version.
    pub version: String,
    /// `dist.integrity`.
    pub integrity: String,
    /// Publication time (Unix ms).
    pub published_at: i64,
    /// The blob's key (hex SHA-512 of the tarball).
    pub tarball_sha512: String,
    /// The signatures it has now (JSON), if any.
    pub signatures: Option<String>,
}

/// A maintainer as shown in packuments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Maintainer {
    /// User id.
    pub id: UserId,
    /// User name.
    pub name: String,
    /// Email.
    pub email: String,
}

/// Everything needed to render a packument or decide a write.
#[derive(Debug, Clone)]
pub struct PackageDoc {
    /// The package row.
    pub package: Package,
    /// Versions, in publication order.
    pub versions: Vec<VersionRecord>,
    /// dist-tags, sorted by tag.
    pub dist_tags: Vec<(String, String)>,
    /// Maintainers, sorted by name.
    pub maintainers: Vec<Maintainer>,
    /// Names of users who starred it.
    pub stars: Vec<String>,
}

impl PackageDoc {
    /// Whether `user` maintains the package.
    pub fn is_maintainer(&self, user: UserId) -> bool {
        self.maintainers.iter().any(|m| m.id == user)
    }

    /// The version a dist-tag points at.
    pub fn tag(&self, tag: &str) -> Option<&str> {
        self.dist_tags
            .iter()
            .find(|(t, _)| t == tag)
            .map(|(_, v)| v.as_str())
    }

    /// A version by its string.
    pub fn version(&self, v: &str) -> Option<&VersionRecord> {
        self.versions.iter().find(|r| r.version == v)
    }
}

/// A new version to publish, with its tarball already stored.
#[derive(Debug, Clone)]
pub struct NewVersion {
    /// Package name.
    pub package_name: String,
    /// Visibility for a new package (ignored for an existing one unless `set_access`).
    pub access: Access,
    /// Apply `access` to an existing package too (`npm publish --access`).
    pub set_access: bool,
    /// The version row.
    pub version: VersionRecord,
    /// dist-tags to point at this version.
    pub tags: Vec<String>,
    /// Description for search.
    pub description: Option<String>,
    /// Keywords for search.
    pub keywords: Vec<String>,
    /// The publisher, who must maintain an existing package and becomes maintainer of a new one.
    pub publisher_id: UserId,
    /// The staged version this publish approves (taken off the stage in the same transaction).
    pub staged_id: Option<String>,
    /// Its verified provenance, if its publish attached one.
    pub provenance: Option<Provenance>,
}

/// A version staged for publishing (`npm stage publish`), waiting for a maintainer's approval
/// with a second factor. It holds its version number meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedVersion {
    /// A UUID, as `npm stage list` shows it.
    pub id: String,
    /// The package's name (it may not exist yet).
    pub package_name: String,
    /// The version.
    pub version: String,
    /// The dist-tag it will get.
    pub tag: String,
    /// The visibility asked for with `--access`, if any.
    pub access: Option<Access>,
    /// The version object, as it will be stored.
    pub manifest: String,
    /// The README, if any.
    pub readme: Option<String>,
    /// Hex SHA-512 of the tarball (its blob's address).
    pub tarball_sha512: String,
    /// Hex SHA-1 of the tarball.
    pub shasum: String,
    /// SRI integrity.
    pub integrity: String,
    /// Tarball size in bytes.
    pub size: i64,
    /// Description, for search once published.
    pub description: Option<String>,
    /// Keywords, for search once published.
    pub keywords: Vec<String>,
    /// The account it was staged for: a maintainer, or whoever configured the pending trusted
    /// publisher of a new package.
    pub owner_id: UserId,
    /// Who staged it, as shown: an account name, or the CI identity.
    pub actor: String,
    /// `user`, `token` or `oidc`.
    pub actor_type: String,
    /// When.
    pub created_at: i64,
    /// Its verified provenance, kept for the publish that approves it.
    pub provenance: Option<Provenance>,
}

/// What a successful publish did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The package id.
    pub package_id: PackageId,
    /// Whether the package was created by this publish.
    pub created: bool,
    /// Tarballs of versions other accounts had staged for the name, dropped when this publish
    /// created the package: to be collected if nothing else uses them.
    pub dropped_blobs: Vec<String>,
}

/// One search hit.
#[derive(Debug, Clone)]
pub struct SearchHit {
    /// The package.
    pub package: Package,
    /// Its `latest` version, if any.
    pub latest: Option<String>,
    /// Maintainers.
    pub maintainers: Vec<Maintainer>,
}

/// An active or pending 2FA mode, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwoFactorMode {
    /// OTP for logins, new credentials, password and 2FA changes.
    AuthOnly,
    /// OTP for the above and every write.
    AuthAndWrites,
}

impl TwoFactorMode {
    /// npm's name.
    pub fn as_str(self) -> &'static str {
        match self {
            TwoFactorMode::AuthOnly => "auth-only",
            TwoFactorMode::AuthAndWrites => "auth-and-writes",
        }
    }

    /// Parses npm's name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auth-only" => Some(TwoFactorMode::AuthOnly),
            "auth-and-writes" => Some(TwoFactorMode::AuthAndWrites),
            _ => None,
        }
    }
}

/// Where an account's 2FA stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwoFactorStatus {
    /// Enrolment started, not confirmed: not enforced; the mode asked for.
    Pending(TwoFactorMode),
    /// Confirmed and enforced in this mode.
    Active(TwoFactorMode),
}

impl TwoFactorStatus {
    /// The mode asked for or in force.
    pub fn mode(self) -> TwoFactorMode {
        match self {
            TwoFactorStatus::Pending(m) | TwoFactorStatus::Active(m) => m,
        }
    }

    /// Whether enrolment is not yet confirmed.
    pub fn is_pending(self) -> bool {
        matches!(self, TwoFactorStatus::Pending(_))
    }
}

/// An account's 2FA state, as carried with the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TwoFactor {
    /// Pending or active, with its mode.
    pub status: TwoFactorStatus,
    /// When enrolment started.
    pub started_at: i64,
}

/// The stored TOTP enrolment of an account.
#[derive(Debug, Clone)]
pub struct TotpRecord {
    /// Account.
    pub user_id: UserId,
    /// State.
    pub state: TwoFactor,
    /// The secret, sealed (AES-256-GCM); never stored in clear. Empty without TOTP.
    pub secret_sealed: Vec<u8>,
    /// Whether the account has a TOTP secret (else its second factors are security keys).
    pub has_totp: bool,
    /// When an authenticator app was offered to an account with only keys (its secret waits,
    /// unconfirmed, in `secret_sealed`).
    pub offered_at: Option<i64>,
    /// Last accepted time step.
    pub last_step: Option<i64>,
    /// The credential that consumed `last_step`.
    pub last_credential: Option<String>,
}

/// What became of a recovery code presented as a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryUse {
    /// Unused until now: consumed.
    FirstUse,
    /// Consumed moments ago by the same credential (npm repeats a code within one command).
    Repeat,
    /// A real code, already used by another credential (or too long ago): a replay.
    Spent,
    /// Not a recovery code of this account.
    Unknown,
}

/// What a failure counter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Wrong one-time passwords and recovery codes.
    Otp,
    /// Wrong passwords.
    Password,
}

impl FailureKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Otp => "otp",
            FailureKind::Password => "password",
        }
    }
}

/// A sliding-window limit on failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Window length in milliseconds.
    pub window_ms: i64,
    /// Failures allowed in the window.
    pub max: usize,
}

/// Milliseconds until another attempt is allowed under `limits`, given the failure times
/// (oldest first), or `None` if none is reached.
pub fn limit_wait(times: &[i64], limits: &[Limit], now: i64) -> Option<i64> {
    let mut wait: Option<i64> = None;
    for l in limits {
        let inside: Vec<i64> = times
            .iter()
            .copied()
            .filter(|t| *t > now - l.window_ms)
            .collect();
        if inside.len() >= l.max {
            // the attempt that must age out before one more is allowed
            let t = inside[inside.len() - l.max];
            let w = (t + l.window_ms - now).max(1);
            wait = Some(wait.map_or(w, |x| x.max(w)));
        }
    }
    wait
}

/// A security-log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// When (Unix ms).
    pub at: i64,
    /// What happened (`login`, `otp_failed`, `tfa_enabled`, …).
    pub kind: String,
    /// Client address.
    pub ip: String,
    /// Client user agent.
    pub user_agent: String,
    /// Extra detail (never a secret).
    pub detail: String,
}

/// How far a website session got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStage {
    /// Not signed in (carries the CSRF token of the sign-in form).
    Anonymous,
    /// Password accepted, second factor awaited.
    Partial,
    /// Signed in.
    Full,
}

impl SessionStage {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionStage::Anonymous => "anonymous",
            SessionStage::Partial => "partial",
            SessionStage::Full => "full",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "anonymous" => Some(SessionStage::Anonymous),
            "partial" => Some(SessionStage::Partial),
            "full" => Some(SessionStage::Full),
            _ => None,
        }
    }
}

/// A website session (the cookie holds a random value; only its hash is stored).
#[derive(Debug, Clone)]
pub struct Session {
    /// Hex SHA-256 of the cookie value.
    pub id_hash: String,
    /// The account, once the password was accepted.
    pub user_id: Option<UserId>,
    /// Stage.
    pub stage: SessionStage,
    /// The CSRF token of its forms.
    pub csrf: String,
    /// Creation time (absolute timeout).
    pub created_at: i64,
    /// Last request (idle timeout).
    pub last_seen_at: i64,
    /// Last proof of a factor (re-authentication window).
    pub authenticated_at: i64,
    /// Wrong codes on a partial sign-in.
    pub otp_attempts: i64,
    /// Where to go after signing in.
    pub return_to: Option<String>,
}

/// What a browser handshake is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeKind {
    /// `npm login` in the browser: approval mints a login token.
    Login,
    /// A one-time password confirmed in the browser (npm's web OTP).
    Otp,
}

impl HandshakeKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeKind::Login => "login",
            HandshakeKind::Otp => "otp",
        }
    }
}

/// A browser handshake: npm shows one URL to the user and polls another.
#[derive(Debug, Clone)]
pub struct Handshake {
    /// Row id.
    pub id: i64,
    /// Kind.
    pub kind: HandshakeKind,
    /// `npm adduser` rather than `npm login`.
    pub create_account: bool,
    /// Only a security key may approve it (the registry requires one for the command).
    pub needs_key: bool,
    /// Login: who approved; OTP: the account asked.
    pub user_id: Option<UserId>,
    /// Creation.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// When approved.
    pub approved_at: Option<i64>,
    /// When refused.
    pub denied_at: Option<i64>,
    /// When npm collected the result.
    pub used_at: Option<i64>,
}

/// A trusted publisher: a CI identity allowed to publish a package (by name; the package may
/// not exist yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedPublisher {
    /// A UUID, as `npm trust list` shows it.
    pub id: String,
    /// The package's name.
    pub package: String,
    /// `github`, `gitlab`, `buildkite` or `generic`.
    pub kind: String,
    /// The claims to match, JSON as `npm trust` sends them (canonical: sorted keys).
    pub claims: String,
    /// JSON array of permissions (`createPackage`, `createStagedPackage`).
    pub permissions: String,
    /// JSON of the immutable ids the first exchange saw, once bound.
    pub bound: Option<String>,
    /// Who configured it.
    pub created_by: UserId,
    /// When.
    pub created_at: i64,
}

/// What npm's poll of a handshake finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakePoll {
    /// Unknown, expired or already collected.
    Gone,
    /// Not decided yet.
    Pending,
    /// Refused in the browser.
    Denied,
    /// Approved, and collected by this poll (only one poll ever gets this).
    Approved {
        /// The handshake.
        id: i64,
        /// Kind.
        kind: HandshakeKind,
        /// The account.
        user_id: UserId,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_keep_npm_words_and_refuse_others() {
        for p in [
            Permission::NoAccess,
            Permission::ReadOnly,
            Permission::ReadWrite,
        ] {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        assert_eq!(Permission::parse("admin"), None);
        assert!(
            serde_json::from_str::<TokenGrants>(r#"{"orgs_permission":"read_write"}"#).is_err()
        );
        let g: TokenGrants = serde_json::from_str(r#"{"packages":["a"]}"#).unwrap();
        assert_eq!(g.packages_and_scopes_permission, None);
    }

    #[test]
    fn package_policy_flags_round_trip() {
        for p in [
            PackageTfaPolicy::None,
            PackageTfaPolicy::Publish,
            PackageTfaPolicy::Automation,
        ] {
            let (r, o) = p.flags();
            assert_eq!(PackageTfaPolicy::from_flags(r, o), p);
        }
        assert_eq!(
            PackageTfaPolicy::from_flags(false, true),
            PackageTfaPolicy::None
        );
    }
}

/// An upstream packument as an uplink last sent it, or its negative answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPackument {
    /// Package name.
    pub name: String,
    /// The uplink it came from (its configured name).
    pub uplink: String,
    /// 200, or 404 for a negative answer.
    pub status: i64,
    /// The uplink's ETag, for `If-None-Match`.
    pub etag: Option<String>,
    /// The gzipped JSON (empty for a 404).
    pub body: Vec<u8>,
    /// When the body last changed (Unix ms).
    pub fetched_at: i64,
    /// When the uplink last confirmed it (Unix ms).
    pub checked_at: i64,
}

/// A tarball fetched from an uplink and kept in the blob store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedTarball {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// The uplink it came from.
    pub uplink: String,
    /// Content address (hex SHA-512).
    pub tarball_sha512: String,
    /// `sha512-…` of the stored bytes.
    pub integrity: String,
    /// Size in bytes.
    pub size: i64,
    /// When it was fetched (Unix ms).
    pub fetched_at: i64,
}

/// An uplink's circuit breaker, shared by every instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UplinkHealth {
    /// The uplink's name.
    pub uplink: String,
    /// Failures in a row.
    pub fails: i64,
    /// Skipped until then (Unix ms; 0 when up).
    pub down_until: i64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// When it last failed.
    pub last_failure_at: Option<i64>,
    /// When it last answered.
    pub last_success_at: Option<i64>,
}

/// What one uplink's cache holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UplinkCacheSize {
    /// The uplink's name.
    pub uplink: String,
    /// Packuments held (negative answers included).
    pub packuments: i64,
    /// Tarballs held.
    pub tarballs: i64,
    /// Their bytes.
    pub tarball_bytes: i64,
}

/// An unscoped name an admin allowed to be published although it exists upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedName {
    /// The name.
    pub name: String,
    /// The admin who allowed it.
    pub allowed_by: String,
    /// When (Unix ms).
    pub created_at: i64,
}
