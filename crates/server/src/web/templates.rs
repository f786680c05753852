//! The pages' data, one struct per template in `crates/server/templates/`. askama escapes every
//! value for HTML; only the rendered README and the QR SVG (both made here) are inserted raw.

use askama::Template;

use crate::web::Chrome;

/// An error page.
#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Frame.
    pub chrome: Chrome,
    pub heading: &'static str,
    pub message: String,
}

/// A page with one message.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// Frame.
    pub chrome: Chrome,
    pub heading: String,
    pub message: String,
}

/// Sign-in, step one.
#[derive(Template)]
#[template(path = "signin.html")]
pub struct SigninPage {
    /// Frame.
    pub chrome: Chrome,
    /// What went wrong last time.
    pub error: Option<String>,
    /// The user name typed last time.
    pub name: String,
    /// Whether to offer sign-up.
    pub signup_open: bool,
    /// Where to go after signing in.
    pub next: String,
}

/// Sign-in, step two (2FA).
#[derive(Template)]
#[template(path = "signin_otp.html")]
pub struct SigninOtpPage {
    /// Frame.
    pub chrome: Chrome,
    /// What went wrong last time.
    pub error: Option<String>,
    /// The account has security keys (offer them).
    pub has_keys: bool,
}

/// Sign-up.
#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    /// Frame.
    pub chrome: Chrome,
    /// What went wrong last time.
    pub error: Option<String>,
    /// Typed user name.
    pub name: String,
    /// Typed email.
    pub email: String,
    /// Shortest password.
    pub min_password: usize,
    /// Sign-up is by invitation.
    pub invitation: bool,
    /// Where to go after signing up.
    pub next: String,
    /// The invitation link's secret, when the page was opened from one (empty otherwise).
    pub secret: String,
}

/// Re-authentication before security changes.
#[derive(Template)]
#[template(path = "reauth.html")]
pub struct ReauthPage {
    /// Frame.
    pub chrome: Chrome,
    /// What went wrong last time.
    pub error: Option<String>,
    /// Where to go next.
    pub next: String,
    /// Whether a one-time password is accepted too.
    pub tfa_on: bool,
}

/// A package in a list.
pub struct PackageRow {
    pub name: String,
    /// Latest version.
    pub version: String,
    pub description: String,
    /// Restricted.
    pub private: bool,
}

/// The package list and search.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// Frame.
    pub chrome: Chrome,
    /// Search text.
    pub query: String,
    /// Matches.
    pub total: i64,
    /// Rows.
    pub packages: Vec<PackageRow>,
    /// Packages cached from uplinks (name, uplink), on the unfiltered list.
    pub cached: Vec<(String, String)>,
}

/// A version row.
pub struct VersionRow {
    pub version: String,
    /// Publication date.
    pub published: String,
    /// Publisher.
    pub publisher: String,
    /// Deprecation message.
    pub deprecated: Option<String>,
    /// The key id of its registry signature, if it has one.
    pub signed_by: Option<String>,
    /// Whether the registry's publish attestation of it is logged.
    pub attested: bool,
    /// Where it was built, from its verified provenance.
    pub built: Option<BuiltFrom>,
}

/// Where a version was built, from its verified provenance (as the signing certificate says).
pub struct BuiltFrom {
    /// The source repository.
    pub repository: String,
    /// The commit (abbreviated).
    pub commit: String,
    /// The workflow (build configuration) file's URI.
    pub workflow: String,
    /// The CI run's URI, if it is an `https://` link.
    pub run: Option<String>,
}

impl BuiltFrom {
    /// From a stored provenance summary.
    pub fn of(summary: &str) -> Option<BuiltFrom> {
        let s = crate::provenance::Summary::from_json(summary)?;
        Some(BuiltFrom {
            repository: s.repository.unwrap_or_else(|| s.identity.clone()),
            commit: s.commit.unwrap_or_default().chars().take(12).collect(),
            workflow: s.workflow.unwrap_or(s.identity),
            run: s.run.filter(|r| r.starts_with("https://")),
        })
    }
}

/// A package page.
#[derive(Template)]
#[template(path = "package.html")]
pub struct PackagePage {
    /// Frame.
    pub chrome: Chrome,
    pub name: String,
    pub description: String,
    /// Latest version.
    pub latest: String,
    /// `public` or `restricted`.
    pub access: &'static str,
    /// Restricted.
    pub private: bool,
    /// `none`, `publish` or `automation`.
    pub mfa: &'static str,
    /// What the policy means.
    pub mfa_text: &'static str,
    /// Maintainer names.
    pub maintainers: Vec<String>,
    /// The README, rendered safely.
    pub readme: String,
    /// dist-tags.
    pub tags: Vec<(String, String)>,
    /// Versions, newest first.
    pub versions: Vec<VersionRow>,
    /// Publishes from tokens and trusted publishing must be staged.
    pub staged_publishes: bool,
    /// Publishes must carry a valid provenance bundle (the package's or the registry's rule).
    pub provenance_required: bool,
    /// Versions on the stage (shown to maintainers only): id, version, tag, staged by.
    pub staged: Vec<(String, String, String, String)>,
    /// The uplink a cached package came from (`None`: published here).
    pub uplink: Option<String>,
    /// Of a cached package: its versions kept out by the quarantine, with the reason.
    pub quarantined: Vec<(String, String)>,
}

/// The account page.
#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    /// Frame.
    pub chrome: Chrome,
    /// What went wrong last time.
    pub error: Option<String>,
    pub name: String,
    pub email: String,
    /// Profile fields.
    pub fullname: String,
    /// Profile fields.
    pub homepage: String,
    /// Profile fields.
    pub github: String,
    /// Profile fields.
    pub twitter: String,
    /// Profile fields.
    pub freenode: String,
    /// 2FA in force.
    pub tfa_on: bool,
    /// 2FA mode as npm names it.
    pub tfa_mode: &'static str,
    /// Whether a profile change asks for a one-time password.
    pub otp_needed: bool,
}

/// The 2FA settings page.
#[derive(Template)]
#[template(path = "twofactor.html")]
pub struct TwoFactorPage {
    /// Frame.
    pub chrome: Chrome,
    /// What went wrong last time.
    pub error: Option<String>,
    /// In force.
    pub on: bool,
    /// Mode as npm names it.
    pub mode: &'static str,
    /// Unused recovery codes.
    pub codes_left: i64,
    /// Web-OTP preference.
    pub web_otp: bool,
    /// Registered security keys.
    pub keys: Vec<KeyRow>,
    /// Whether new enrolments may use an authenticator app.
    pub totp_offered: bool,
    /// Whether the account's second factors include an authenticator app.
    pub has_app: bool,
    /// What the registry's key requirement asks of this account, when it has no key yet.
    pub key_required: Option<&'static str>,
}

/// A security key as the 2FA page lists it.
pub struct KeyRow {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// When it was added (ISO 8601).
    pub added: String,
    /// When it was last used (ISO 8601), or "never".
    pub last_used: String,
}

/// The QR code and confirmation form of a pending enrolment.
#[derive(Template)]
#[template(path = "twofactor_setup.html")]
pub struct SetupPage {
    /// Frame.
    pub chrome: Chrome,
    /// What went wrong last time.
    pub error: Option<String>,
    /// The QR code (inline SVG).
    pub qr_svg: String,
    /// The secret in base32.
    pub secret: String,
    /// The pending mode.
    pub mode: &'static str,
    /// How long the setup waits for its confirming code, in words (`"10 minutes"`).
    pub expires_in: String,
    /// Where the confirming code posts.
    pub confirm_action: &'static str,
    /// The confirm button's label.
    pub confirm_label: &'static str,
}

/// Recovery codes, shown once.
#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    /// Frame.
    pub chrome: Chrome,
    pub heading: &'static str,
    /// The codes.
    pub codes: Vec<String>,
    /// A `data:` URL with the codes as text.
    pub download: String,
}

/// A token in the list.
pub struct TokenRow {
    /// Key (hex SHA-256).
    pub key: String,
    /// Shown prefix.
    pub prefix: String,
    /// What it may do and until when.
    pub summary: String,
    /// Creation date.
    pub created: String,
}

/// The tokens page.
#[derive(Template)]
#[template(path = "tokens.html")]
pub struct TokensPage {
    /// Frame.
    pub chrome: Chrome,
    /// What went wrong last time.
    pub error: Option<String>,
    /// Tokens.
    pub tokens: Vec<TokenRow>,
    /// Whether creating asks for a one-time password.
    pub create_otp: bool,
    /// Whether revoking asks for one.
    pub revoke_otp: bool,
    /// Lifetime of a token created without one, in words (`"90 days"`, `"never"`).
    pub default_expiry: String,
    /// The longest expiry in days, or 0 when there is no maximum.
    pub max_days: i64,
}

/// A token, shown once.
#[derive(Template)]
#[template(path = "token_created.html")]
pub struct TokenCreatedPage {
    /// Frame.
    pub chrome: Chrome,
    /// The value.
    pub token: String,
    /// What it may do.
    pub summary: String,
    /// `host:port` for the npm config line.
    pub host: String,
}

/// A security-log entry.
pub struct EventRow {
    /// When.
    pub at: String,
    /// What.
    pub kind: String,
    /// Detail.
    pub detail: String,
    pub ip: String,
    /// User agent.
    pub user_agent: String,
}

/// The security log.
#[derive(Template)]
#[template(path = "security.html")]
pub struct SecurityPage {
    /// Frame.
    pub chrome: Chrome,
    /// Entries, newest first.
    pub events: Vec<EventRow>,
}

/// Approving (or not) something npm asked for in the browser.
#[derive(Template)]
#[template(path = "handshake.html")]
pub struct HandshakePage {
    /// Frame.
    pub chrome: Chrome,
    pub heading: String,
    /// What approving does.
    pub explanation: String,
    /// What went wrong last time.
    pub error: Option<String>,
    /// Where the form posts.
    pub action: String,
    /// Whether a one-time password is asked.
    pub otp_needed: bool,
    /// The approve button's label.
    pub approve_label: &'static str,
    /// Where a security key's confirmation posts, when the account has keys.
    pub key_action: Option<String>,
    /// Only a security key may confirm (the code form offers cancelling alone).
    pub key_only: bool,
}
