//! Configuration: embedded defaults, then a TOML file, then `TESSERA_*` environment variables,
//! then command-line flags (applied by the binary). See docs/configuration.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Who may create an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Signup {
    /// Anyone can `npm adduser`.
    Open,
    /// Only an administrator creates accounts (`tessera admin user add`).
    Closed,
    /// `npm adduser` works for a name and email an administrator invited
    /// (`tessera admin invite NAME EMAIL`).
    Invitation,
}

/// The visibility a package gets when npm sends `access: null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultAccess {
    /// Visible to every reader.
    Public,
    /// Visible to its maintainers only.
    Restricted,
}

/// A size in bytes, written as a number or as `"100mb"`, `"512kb"`, `"1gb"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parses `123`, `10kb`, `100mb`, `1gb` (binary units, case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        let (num, mult) = if let Some(n) = s.strip_suffix("gb") {
            (n, 1u64 << 30)
        } else if let Some(n) = s.strip_suffix("mb") {
            (n, 1 << 20)
        } else if let Some(n) = s.strip_suffix("kb") {
            (n, 1 << 10)
        } else if let Some(n) = s.strip_suffix('b') {
            (n, 1)
        } else {
            (s.as_str(), 1)
        };
        num.trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(mult))
            .map(ByteSize)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n)),
            Raw::S(s) => ByteSize::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid size {s:?}"))),
        }
    }
}

const MINUTE: u64 = 60;
const HOUR: u64 = 60 * MINUTE;
const DAY: u64 = 24 * HOUR;
/// The longest span accepted in configuration: 100 years.
const MAX_SPAN_SECS: u64 = 36_500 * DAY;

/// A length of time, written `"30s"`, `"10m"`, `"12h"` or `"7d"` (a bare number is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span(Duration);

impl Span {
    /// `n` seconds.
    pub const fn seconds(n: u64) -> Span {
        Span(Duration::from_secs(n))
    }

    /// `n` minutes.
    pub const fn minutes(n: u64) -> Span {
        Span::seconds(n * MINUTE)
    }

    /// `n` hours.
    pub const fn hours(n: u64) -> Span {
        Span::seconds(n * HOUR)
    }

    /// `n` days.
    pub const fn days(n: u64) -> Span {
        Span::seconds(n * DAY)
    }

    /// Parses `"30s"`, `"10m"`, `"12h"`, `"7d"` or a bare number of seconds; zero is refused.
    pub fn parse(s: &str) -> Result<Span, String> {
        match parse_secs(s)? {
            0 => Err(format!("must be longer than zero, not {s:?}")),
            n => Ok(Span::seconds(n)),
        }
    }

    /// The span in milliseconds, the unit of the server's clock.
    pub fn as_ms(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }

    /// The span in whole days, rounded down.
    pub fn whole_days(self) -> i64 {
        i64::try_from(self.0.as_secs() / DAY).unwrap_or(i64::MAX)
    }

    /// The span as a [`Duration`].
    pub fn as_duration(self) -> Duration {
        self.0
    }

    /// The span in words for pages: `"10 minutes"`, `"1 day"`.
    pub fn in_words(self) -> String {
        let (n, unit) = self.largest_unit();
        let word = match unit {
            "d" => "day",
            "h" => "hour",
            "m" => "minute",
            _ => "second",
        };
        if n == 1 {
            format!("1 {word}")
        } else {
            format!("{n} {word}s")
        }
    }

    /// The span in the largest unit that divides it exactly: `(12, "h")`.
    fn largest_unit(self) -> (u64, &'static str) {
        let secs = self.0.as_secs();
        [(DAY, "d"), (HOUR, "h"), (MINUTE, "m")]
            .into_iter()
            .find(|(unit, _)| secs > 0 && secs.is_multiple_of(*unit))
            .map_or((secs, "s"), |(unit, suffix)| (secs / unit, suffix))
    }
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, unit) = self.largest_unit();
        write!(f, "{n}{unit}")
    }
}

/// Reads `"30s"`, `"10m"`, `"12h"`, `"7d"` or bare seconds into seconds (zero allowed).
fn parse_secs(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, unit) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], MINUTE),
        Some((i, 'h')) => (&t[..i], HOUR),
        Some((i, 'd')) => (&t[..i], DAY),
        _ => (t, 1),
    };
    let count: u64 = num.trim().parse().map_err(|_| {
        format!("must be a span like \"30s\", \"10m\", \"12h\" or \"7d\", not {s:?}")
    })?;
    match count.checked_mul(unit) {
        Some(n) if n <= MAX_SPAN_SECS => Ok(n),
        _ => Err(format!("is longer than 100 years: {s:?}")),
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = span_text(d)?;
        Span::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Reads a span written as a string or as a bare number of seconds.
fn span_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        N(i64),
        S(String),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::N(n) => n.to_string(),
        Raw::S(s) => s,
    })
}

/// Serde for a lifetime that may be unlimited: `"never"` (or zero) is `None`, else a [`Span`].
mod lifetime {
    use super::{Span, parse_secs, span_text};
    use serde::{Deserializer, Serializer};

    /// Writes `"never"` or the span.
    pub fn serialize<S: Serializer>(v: &Option<Span>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_str("never"),
            Some(span) => s.collect_str(span),
        }
    }

    /// Reads `"never"`, `0` or a span.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Span>, D::Error> {
        let text = span_text(d)?;
        if text.trim() == "never" {
            return Ok(None);
        }
        match parse_secs(&text)
            .map_err(|e| serde::de::Error::custom(format!("{e} (or \"never\")")))?
        {
            0 => Ok(None),
            n => Ok(Some(Span::seconds(n))),
        }
    }
}

/// Old key names, still read: a whole number in the unit their name ends with, moved to the new
/// key as a span. Each entry is the old key, the new key and the seconds in the old unit.
pub const DEPRECATED_KEYS: &[(&str, &str, u64)] = &[
    ("invitation_days", "invitation_expiry", DAY),
    ("tfa.pending_minutes", "tfa.pending", MINUTE),
    ("tokens.default_expiry_days", "tokens.default_expiry", DAY),
    ("tokens.max_expiry_days", "tokens.max_expiry", DAY),
    ("tokens.login_expiry_days", "tokens.login_expiry", DAY),
    ("web.session_idle_minutes", "web.session_idle", MINUTE),
    ("web.session_max_hours", "web.session_max", HOUR),
    ("web.reauth_minutes", "web.reauth", MINUTE),
    ("web.handshake_minutes", "web.handshake", MINUTE),
];

/// Two-factor authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfaConfig {
    /// Issuer shown by authenticator apps (the `otpauth://` issuer).
    pub issuer: String,
    /// Time steps accepted either side of now: 1 (RFC 6238's ±30 s), or 0 for a strict 30 s.
    pub window: u64,
    /// How long a pending enrolment may wait for its confirming code.
    pub pending: Span,
    /// Whether new enrolments may use an authenticator app (TOTP): `allowed`, or `disabled`
    /// (existing ones keep working; new users add a security key). Overridden at run time by
    /// `tessera admin policy`.
    pub totp_enrolment: TotpEnrolment,
    /// Of whom the registry requires a security key or passkey as the second factor: `none`,
    /// `publishers` (for package changes) or `everyone`. Overridden at run time by `tessera
    /// admin policy`.
    pub require_webauthn_for: Requirement,
    /// PEM files of the authenticator attestation roots whose keys may be added (empty: any
    /// key). With a list, browsers are asked for the key's attestation, and a key whose
    /// attestation does not chain to one of these roots is refused.
    pub attestation_roots: Vec<PathBuf>,
}

/// Whether new 2FA enrolments may use an authenticator app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TotpEnrolment {
    /// They may.
    Allowed,
    /// They may not: new second factors are security keys or passkeys.
    Disabled,
}

impl TotpEnrolment {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            TotpEnrolment::Allowed => "allowed",
            TotpEnrolment::Disabled => "disabled",
        }
    }

    /// Parses the configuration word.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "allowed" => Some(TotpEnrolment::Allowed),
            "disabled" => Some(TotpEnrolment::Disabled),
            _ => None,
        }
    }
}

impl Default for TfaConfig {
    fn default() -> Self {
        TfaConfig {
            issuer: "tessera".into(),
            window: 1,
            pending: Span::minutes(10),
            totp_enrolment: TotpEnrolment::Allowed,
            require_webauthn_for: Requirement::None,
            attestation_roots: Vec::new(),
        }
    }
}

/// The registry's configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory: database, tarballs, key file.
    pub data: PathBuf,
    /// The database: unset for SQLite in the data directory, or `postgres://…` for a
    /// PostgreSQL database shared by several instances (scale-out).
    pub database: Option<String>,
    /// Pooled connections per instance (PostgreSQL).
    pub database_max_connections: u32,
    /// Tarball storage: unset for the data directory, or `s3://bucket/prefix` for S3-compatible
    /// object storage (settings in `[s3]` and the standard `AWS_*` variables).
    pub storage: Option<String>,
    /// When schema migrations run: `auto` (at start) or `manual` (`tessera admin migrate`).
    pub migrate: MigrateMode,
    /// S3 settings; unset ones come from `AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_ALLOW_HTTP`.
    pub s3: S3Config,
    /// Public base URL (e.g. `https://npm.example.com/`), used in tarball URLs. When unset,
    /// the request's `Host` is used.
    pub public_url: Option<String>,
    /// Who may create accounts.
    pub signup: Signup,
    /// How long an invitation stays valid.
    pub invitation_expiry: Span,
    /// How long a fully unpublished name stays reserved for its former maintainers (npmjs holds
    /// names for 24 hours).
    pub unpublished_name_hold: Span,
    /// Largest accepted request body (a publish carries the tarball in base64).
    pub max_body_size: ByteSize,
    /// Largest accepted unpacked tarball.
    pub max_unpacked_size: ByteSize,
    /// Visibility of a new scoped package published without `--access`.
    pub scoped_default_access: DefaultAccess,
    /// Refuse anonymous reads (packuments, tarballs, search).
    pub read_requires_auth: bool,
    /// Memory for rendered packuments, in MiB (the read path serves them as cached bytes); 0
    /// sizes it from the machine's memory ([`Config::packument_cache_bytes`]).
    pub packument_cache_mb: usize,
    /// Memory for recently read small tarballs (up to 1 MiB each), in MiB.
    pub tarball_cache_mb: usize,
    /// Let anyone publish new packages into any scope. Off (the default), a scope belongs to the
    /// maintainers of its packages (and `@name` to the user `name` before it has any), which
    /// stops others from squatting a team's scope.
    pub open_scopes: bool,
    /// Shortest accepted password.
    pub min_password_length: usize,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_proxy: bool,
    /// Log filter (`info`, `tessera=debug`, …); `RUST_LOG` wins when set.
    pub log: String,
    /// Two-factor authentication.
    pub tfa: TfaConfig,
    /// Who must have 2FA on: `none`, `publishers` (to change packages) or `everyone` (to do
    /// anything but turn it on). Overridden at run time by `tessera admin policy`.
    pub require_2fa: Requirement,
    /// Until this date (`2027-01-31` or RFC 3339), `require_2fa` only warns (an `npm notice`).
    pub require_2fa_grace_until: Option<String>,
    /// API token lifetimes.
    pub tokens: TokenConfig,
    /// The website and npm's browser login.
    pub web: WebConfig,
    /// Connection limits: timeouts and the connection cap.
    pub connections: ConnectionsConfig,
    /// Trusted publishing: the CI identity providers whose tokens are exchanged for publish
    /// tokens (none by default).
    pub oidc: OidcConfig,
    /// Provenance: the Sigstore bundles `npm publish --provenance` attaches.
    pub provenance: ProvenanceConfig,
    /// Upstream registries (`[[uplinks]]`); none by default.
    pub uplinks: Vec<crate::uplinks::settings::UplinkConfig>,
    /// Which names are proxied to which uplinks (`[[packages]]`), first match wins. With
    /// uplinks and no rules, every name is proxied to every uplink in order.
    pub packages: Vec<crate::uplinks::settings::PackageRule>,
    /// The old key names this configuration was read with, each with its new name and value
    /// (`tfa.pending_minutes: write tfa.pending = "10m"`), for a warning at start.
    #[serde(skip)]
    pub deprecated_names: Vec<String>,
}

/// Provenance (`npm publish --provenance`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProvenanceConfig {
    /// The Sigstore trust root bundles are verified against: `sigstore` (the public-good
    /// instance npm's own provenance uses, built in) or the path of a `trusted_root.json` (a
    /// private Sigstore with a transparency log).
    pub trusted_root: String,
    /// Refuse every publish that carries no valid provenance bundle (a package can require it
    /// on its own too).
    pub required: bool,
    /// The transparency log (a Rekor, v1 API, e.g. `https://rekor.sigstore.dev`) where the
    /// registry logs a publish attestation for every version; unset, none is made. Its key must
    /// be in `trusted_root`, and in the trust root of the clients that verify.
    pub transparency_log: Option<String>,
}

impl Default for ProvenanceConfig {
    fn default() -> Self {
        ProvenanceConfig {
            trusted_root: "sigstore".into(),
            required: false,
            transparency_log: None,
        }
    }
}

/// Trusted publishing (OIDC).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// The identity providers whose tokens are accepted (`[[oidc.issuers]]`).
    pub issuers: Vec<OidcIssuer>,
    /// How long a token from an exchange lives (at most an hour).
    pub token_lifetime: Span,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            issuers: Vec::new(),
            token_lifetime: Span::minutes(15),
        }
    }
}

/// An identity provider whose CI tokens are trusted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcIssuer {
    /// The exact `iss` of its tokens (`https://token.actions.githubusercontent.com`, a GitHub
    /// Enterprise Server's `https://HOST/_services/token`, a GitLab's URL…).
    pub issuer: String,
    /// How its claims are matched: `github`, `gitlab`, `buildkite` or `generic`.
    pub kind: IssuerKind,
    /// Where its keys are (for air-gapped installs); by default from
    /// `<issuer>/.well-known/openid-configuration`.
    #[serde(default)]
    pub jwks_url: Option<String>,
}

/// How an issuer's claims are matched against a trusted publisher.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IssuerKind {
    /// GitHub Actions (github.com or Enterprise Server).
    Github,
    /// GitLab CI (gitlab.com or self-managed).
    Gitlab,
    /// Buildkite.
    Buildkite,
    /// Any other issuer: every claim of the trusted publisher must be equal in the token.
    Generic,
}

impl IssuerKind {
    /// The configuration word, also the trusted publisher's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerKind::Github => "github",
            IssuerKind::Gitlab => "gitlab",
            IssuerKind::Buildkite => "buildkite",
            IssuerKind::Generic => "generic",
        }
    }

    /// Parses the word.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "github" => Some(IssuerKind::Github),
            "gitlab" => Some(IssuerKind::Gitlab),
            "buildkite" => Some(IssuerKind::Buildkite),
            "generic" => Some(IssuerKind::Generic),
            _ => None,
        }
    }
}

/// When schema migrations run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MigrateMode {
    /// At start, by whichever instance starts first (the others wait on the migration lock).
    Auto,
    /// Only by `tessera admin migrate`; a server refuses to start on a schema that is behind.
    Manual,
}

/// S3-compatible object storage settings (empty: take the `AWS_*` variable).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL of a non-AWS store (`http://127.0.0.1:9000`).
    pub endpoint: String,
    /// Region (`us-east-1`).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Allow plain HTTP endpoints.
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Website settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Offer npm's browser login (`npm login` with npm ≥ 9). Off: npm falls back to the
    /// password prompt.
    pub browser_login: bool,
    /// How long a session may stay idle.
    pub session_idle: Span,
    /// How long a session lasts at most.
    pub session_max: Span,
    /// How long after the last sign-in 2FA settings need no re-authentication.
    pub reauth: Span,
    /// How long a browser handshake (npm login, web OTP) stays open.
    pub handshake: Span,
    /// How often expired sessions and handshakes are deleted.
    pub prune_every: Span,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            browser_login: true,
            session_idle: Span::minutes(30),
            session_max: Span::hours(12),
            reauth: Span::minutes(30),
            handshake: Span::minutes(5),
            prune_every: Span::minutes(1),
        }
    }
}

/// Connection limits, against clients that hold connections without using them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionsConfig {
    /// How long a client may take to send a request's headers, and how long a kept-alive
    /// connection may wait for its next request.
    pub header_timeout: Span,
    /// How long a connection may go without sending or receiving a byte mid-request (a stalled
    /// upload or a client that stopped reading its response).
    pub idle_timeout: Span,
    /// How long reading one request body may take in all.
    pub body_timeout: Span,
    /// Open connections at most; past it, new connections are closed at once.
    pub max_connections: usize,
    /// Threads that serve connections, each with a socket of its own on the listen address
    /// (`SO_REUSEPORT`) and a runtime of its own; 0 for one per CPU core.
    pub threads: usize,
    /// How bodies of 64 KiB and more leave: from files with `sendfile`, copied from memory,
    /// or whichever this machine does faster (measured once after start).
    pub sendfile: SendfileMode,
}

/// How large response bodies are sent (`connections.sendfile`): `"auto"`, `"on"` or `"off"`;
/// `true` and `false` (a TOML boolean, or the words) read as `"on"` and `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SendfileMode {
    /// Measured once after start on a loopback connection: `sendfile` unless copying is
    /// clearly faster (on some virtual machines it is, by more than half).
    #[default]
    Auto,
    /// Always from files with `sendfile`, as nginx's `sendfile on`.
    On,
    /// Always copied from memory, as nginx's `sendfile off`.
    Off,
}

impl<'de> Deserialize<'de> for SendfileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SendfileMode;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("one of \"auto\", \"on\", \"off\" (or true, false)")
            }
            fn visit_bool<E: serde::de::Error>(self, on: bool) -> Result<SendfileMode, E> {
                Ok(if on {
                    SendfileMode::On
                } else {
                    SendfileMode::Off
                })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SendfileMode, E> {
                match v {
                    "auto" => Ok(SendfileMode::Auto),
                    "on" | "true" => Ok(SendfileMode::On),
                    "off" | "false" => Ok(SendfileMode::Off),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Default for ConnectionsConfig {
    fn default() -> Self {
        ConnectionsConfig {
            header_timeout: Span::seconds(10),
            idle_timeout: Span::seconds(60),
            body_timeout: Span::minutes(5),
            max_connections: 16_384,
            threads: 0,
            sendfile: SendfileMode::Auto,
        }
    }
}

/// Of whom the registry requires something (2FA in `require_2fa`, a security key in
/// `tfa.require_webauthn_for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Requirement {
    /// No requirement.
    None,
    /// Of those who change packages: accounts without it cannot.
    Publishers,
    /// Of every account: accounts without it can only log in to set it up.
    Everyone,
}

impl Requirement {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Requirement::None => "none",
            Requirement::Publishers => "publishers",
            Requirement::Everyone => "everyone",
        }
    }

    /// Parses the configuration word.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Requirement::None),
            "publishers" => Some(Requirement::Publishers),
            "everyone" => Some(Requirement::Everyone),
            _ => None,
        }
    }
}

/// Lifetimes of API tokens (`None`, written `"never"`: no expiry). The defaults are npm's since
/// 2025: write tokens 7 days (at most 90), read-only tokens 30 days, login sessions 12 hours.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Lifetime of a token that may write, made by `npm token create` without `--expires`.
    #[serde(with = "lifetime")]
    pub default_expiry: Option<Span>,
    /// Longest lifetime `--expires` may ask for a token that may write (`None`: up to 3650
    /// days).
    #[serde(with = "lifetime")]
    pub max_expiry: Option<Span>,
    /// Lifetime of a read-only token made without `--expires`.
    #[serde(with = "lifetime")]
    pub read_only_default_expiry: Option<Span>,
    /// Longest lifetime `--expires` may ask for a read-only token (`None`: up to 3650 days).
    #[serde(with = "lifetime")]
    pub read_only_max_expiry: Option<Span>,
    /// Lifetime of the tokens `npm login` mints (`None`: until `npm logout`).
    #[serde(with = "lifetime")]
    pub login_expiry: Option<Span>,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            default_expiry: Some(Span::days(7)),
            max_expiry: Some(Span::days(90)),
            read_only_default_expiry: Some(Span::days(30)),
            read_only_max_expiry: None,
            login_expiry: Some(Span::hours(12)),
        }
    }
}

/// The lifetime rules for one kind of token: its default and its longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Without `--expires` (`None`: the maximum, or no expiry when there is none either).
    pub default: Option<Span>,
    /// The longest `--expires` (`None`: up to 3650 days).
    pub max: Option<Span>,
}

impl TokenConfig {
    /// The rules for a token that may write, or for a read-only one.
    pub fn lifetimes(&self, read_only: bool) -> Lifetimes {
        if read_only {
            Lifetimes {
                default: self.read_only_default_expiry,
                max: self.read_only_max_expiry,
            }
        } else {
            Lifetimes {
                default: self.default_expiry,
                max: self.max_expiry,
            }
        }
    }
}

/// Parses a date (`2027-01-31`, meaning its start in UTC) or an RFC 3339 time into Unix ms.
pub fn parse_date_ms(s: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:4873".parse().expect("valid default address"),
            data: PathBuf::from("./tessera-data"),
            database: None,
            database_max_connections: 16,
            storage: None,
            migrate: MigrateMode::Auto,
            s3: S3Config::default(),
            public_url: None,
            signup: Signup::Open,
            invitation_expiry: Span::days(7),
            unpublished_name_hold: Span::hours(24),
            max_body_size: ByteSize(100 << 20),
            max_unpacked_size: ByteSize(512 << 20),
            scoped_default_access: DefaultAccess::Restricted,
            read_requires_auth: false,
            open_scopes: false,
            packument_cache_mb: 0,
            tarball_cache_mb: 16,
            min_password_length: 8,
            trust_proxy: false,
            log: "info".into(),
            tfa: TfaConfig::default(),
            require_2fa: Requirement::None,
            require_2fa_grace_until: None,
            tokens: TokenConfig::default(),
            web: WebConfig::default(),
            connections: ConnectionsConfig::default(),
            oidc: OidcConfig::default(),
            provenance: ProvenanceConfig::default(),
            uplinks: Vec::new(),
            packages: Vec::new(),
            deprecated_names: Vec::new(),
        }
    }
}

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML or a value in it is invalid.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// Environment variables that are not configuration keys.
const NOT_KEYS: &[&str] = &["CONFIG", "SECRET_KEY"];

impl Config {
    /// The packument cache's budget in bytes: `packument_cache_mb`, or when that is 0, a
    /// sixteenth of the machine's memory (or its cgroup's limit) between 32 and 256 MiB.
    pub fn packument_cache_bytes(&self) -> usize {
        match self.packument_cache_mb {
            0 => crate::machine::packument_cache_default(crate::machine::memory_bytes()),
            mb => mb.saturating_mul(1 << 20),
        }
    }

    /// Loads defaults, overlaid by `file` (if any), overlaid by `TESSERA_*` variables from `env`.
    ///
    /// `TESSERA_SIGNUP=closed` sets `signup`; nested keys use a double underscore
    /// (`TESSERA_TFA__ISSUER`). Every key of the configuration has its variable, unset options
    /// included. A variable for a key that holds text (its default is a string, or unset) is
    /// read as a string, others as a TOML integer or boolean when they parse as one. The old key names in
    /// [`DEPRECATED_KEYS`] are read in the file and as variables too.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => {
                Some(
                    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                        path: path.to_owned(),
                        source,
                    })?,
                )
            }
            None => None,
        };
        Self::load_text(text.as_deref(), env)
    }

    /// [`Config::load`] with the file's text instead of its path.
    pub fn load_text(
        file: Option<&str>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let mut deprecated_names = Vec::new();
        if let Some(text) = file {
            let mut overlay: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
            rename_deprecated(&mut overlay, &mut deprecated_names)?;
            merge(&mut table, overlay);
        }
        let defaults = default_tree();
        let mut overlay = toml::Table::new();
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("TESSERA_") else {
                continue;
            };
            if NOT_KEYS.contains(&rest) || rest.starts_with("TEST_") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let value = match json_at(&defaults, &path) {
                // Text keys, and the unset options (all text), keep the value as written.
                Some(serde_json::Value::String(_) | serde_json::Value::Null) => {
                    toml::Value::String(v)
                }
                Some(serde_json::Value::Object(_)) => continue,
                // Lists of tables are written as TOML (`[{issuer = "…", kind = "github"}]`).
                Some(serde_json::Value::Array(_)) if v.trim_start().starts_with('[') => {
                    let parsed: Result<toml::Table, _> = format!("v = {v}").parse();
                    match parsed.ok().and_then(|mut t| t.remove("v")) {
                        Some(value) => value,
                        None => {
                            return Err(ConfigError::Invalid(format!(
                                "{k} is not a TOML list: {v}"
                            )));
                        }
                    }
                }
                // Lists of words are written comma-separated.
                Some(serde_json::Value::Array(_)) => toml::Value::Array(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                ),
                Some(_) => scalar(&v),
                None if is_deprecated(&path) => scalar(&v),
                None => continue,
            };
            set_path(&mut overlay, &path, value);
        }
        rename_deprecated(&mut overlay, &mut deprecated_names)?;
        merge(&mut table, overlay);
        let mut config: Config = serde_path_to_error::deserialize(table).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().message();
            if key == "." {
                ConfigError::Invalid(message.to_owned())
            } else {
                ConfigError::Invalid(format!("{key}: {message}"))
            }
        })?;
        if let Some(g) = &config.require_2fa_grace_until
            && parse_date_ms(g).is_none()
        {
            return Err(ConfigError::Invalid(format!(
                "require_2fa_grace_until must be a date like 2027-01-31, not {g:?}"
            )));
        }
        for (prefix, l) in [
            ("", config.tokens.lifetimes(false)),
            ("read_only_", config.tokens.lifetimes(true)),
        ] {
            if let Some(max) = l.max {
                if max < Span::days(1) {
                    return Err(ConfigError::Invalid(format!(
                        "tokens.{prefix}max_expiry must be at least 1d (npm asks for whole days), not {max}"
                    )));
                }
                if l.default.is_some_and(|d| d > max) {
                    return Err(ConfigError::Invalid(format!(
                        "tokens.{prefix}default_expiry is longer than tokens.{prefix}max_expiry"
                    )));
                }
            }
        }
        config.validate()?;
        config.deprecated_names = deprecated_names;
        Ok(config)
    }

    /// Checks the values that flags can change after loading.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let config = self;
        if let Some(db) = &config.database
            && !(db.starts_with("postgres://") || db.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(format!(
                "database must be a postgres:// URL (or unset for SQLite in the data directory), not {:?}",
                redact_url(db)
            )));
        }
        if config.oidc.token_lifetime > Span::hours(1) {
            return Err(ConfigError::Invalid(
                "oidc.token_lifetime must be an hour or less".into(),
            ));
        }
        for i in &config.oidc.issuers {
            let urls = std::iter::once(&i.issuer).chain(i.jwks_url.as_ref());
            if let Some(bad) = urls
                .into_iter()
                .find(|u| !crate::trust::identity::acceptable_url(u))
            {
                return Err(ConfigError::Invalid(format!(
                    "oidc.issuers: {bad:?} must be an https:// URL (http:// only on a loopback address)"
                )));
            }
        }
        if let Some(log) = &config.provenance.transparency_log
            && !crate::trust::identity::acceptable_url(log)
        {
            return Err(ConfigError::Invalid(format!(
                "provenance.transparency_log: {log:?} must be an https:// URL (http:// only on a loopback address)"
            )));
        }
        crate::uplinks::settings::validate(&config.uplinks, &config.packages)?;
        if let Some(st) = &config.storage
            && parse_s3_url(st).is_none()
        {
            return Err(ConfigError::Invalid(format!(
                "storage must be s3://bucket or s3://bucket/prefix (or unset for the data directory), not {st:?}"
            )));
        }
        Ok(())
    }

    /// The grace deadline of `require_2fa`, in Unix ms.
    pub fn grace_until_ms(&self) -> Option<i64> {
        self.require_2fa_grace_until
            .as_deref()
            .and_then(parse_date_ms)
    }

    /// The data directory's database file.
    pub fn database_path(&self) -> PathBuf {
        self.data.join("tessera.db")
    }

    /// The data directory's tarball folder.
    pub fn tarball_dir(&self) -> PathBuf {
        self.data.join("tarballs")
    }
}

/// Splits `s3://bucket/prefix` into the bucket and the (possibly empty) prefix.
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let ok = !bucket.is_empty()
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    ok.then(|| (bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// A database URL with its password hidden (in the user info and in a `password` parameter),
/// for messages and logs.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = redact_userinfo(base);
    match query {
        None => base,
        Some(q) => {
            let params: Vec<String> = q
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.to_ascii_lowercase().contains("password") => {
                        format!("{k}=***")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
    }
}

fn redact_userinfo(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (k, v) in overlay {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// The default configuration as a JSON tree: unlike TOML, it keeps unset options (as `null`),
/// so its leaves are every key there is.
fn default_tree() -> serde_json::Value {
    serde_json::to_value(Config::default()).expect("the configuration serialises")
}

/// The value at `path` in a JSON tree.
fn json_at<'a>(tree: &'a serde_json::Value, path: &[String]) -> Option<&'a serde_json::Value> {
    path.iter().try_fold(tree, |node, key| node.get(key))
}

/// Whether `path` is an old key name listed in [`DEPRECATED_KEYS`].
fn is_deprecated(path: &[String]) -> bool {
    let dotted = path.join(".");
    DEPRECATED_KEYS.iter().any(|(old, _, _)| *old == dotted)
}

/// Moves the old key names in `table` to their new keys, as spans in the old unit, and notes
/// each move in `moved`.
fn rename_deprecated(table: &mut toml::Table, moved: &mut Vec<String>) -> Result<(), ConfigError> {
    for &(old, new, unit_secs) in DEPRECATED_KEYS {
        let old_path: Vec<String> = old.split('.').map(str::to_owned).collect();
        let Some(value) = take_path(table, &old_path) else {
            continue;
        };
        let new_path: Vec<String> = new.split('.').map(str::to_owned).collect();
        if get_path(table, &new_path).is_some() {
            return Err(ConfigError::Invalid(format!(
                "{old} is the old name of {new}: set only one"
            )));
        }
        let (unit, suffix) = match unit_secs {
            DAY => ("days", "d"),
            HOUR => ("hours", "h"),
            _ => ("minutes", "m"),
        };
        let count = value
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "{old} (now {new}) must be a whole number of {unit}, not {value}"
                ))
            })?;
        // The new key reads the span; zero is left for it to accept ("never") or refuse.
        if count
            .checked_mul(unit_secs)
            .is_none_or(|n| n > MAX_SPAN_SECS)
        {
            return Err(ConfigError::Invalid(format!(
                "{old} (now {new}) is longer than 100 years"
            )));
        }
        let span = format!("{count}{suffix}");
        moved.push(format!("{old}: write {new} = {span:?}"));
        set_path(table, &new_path, toml::Value::String(span));
    }
    Ok(())
}

/// Removes and returns the value at `path`.
fn take_path(t: &mut toml::Table, path: &[String]) -> Option<toml::Value> {
    match path {
        [] => None,
        [last] => t.remove(last),
        [first, rest @ ..] => match t.get_mut(first) {
            Some(toml::Value::Table(n)) => take_path(n, rest),
            _ => None,
        },
    }
}

/// The value at `path`.
fn get_path<'a>(t: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    match path {
        [] => None,
        [last] => t.get(last),
        [first, rest @ ..] => match t.get(first) {
            Some(toml::Value::Table(n)) => get_path(n, rest),
            _ => None,
        },
    }
}

fn set_path(t: &mut toml::Table, path: &[String], v: toml::Value) {
    match path {
        [] => {}
        [last] => {
            t.insert(last.clone(), v);
        }
        [first, rest @ ..] => {
            let e = t
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if let toml::Value::Table(n) = e {
                set_path(n, rest, v);
            }
        }
    }
}

fn scalar(s: &str) -> toml::Value {
    if let Ok(i) = s.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match s {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(s.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn load_err(pairs: &[(&str, &str)]) -> String {
        match Config::load(None, env(pairs)) {
            Err(ConfigError::Invalid(e)) => e,
            other => panic!("{pairs:?} loaded: {other:?}"),
        }
    }

    /// Every key's dotted name, from the default configuration with unset options present.
    fn keys() -> Vec<String> {
        fn walk(node: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
            match node {
                serde_json::Value::Object(map) => {
                    for (k, v) in map {
                        let key = if prefix.is_empty() {
                            k.clone()
                        } else {
                            format!("{prefix}.{k}")
                        };
                        walk(v, &key, out);
                    }
                }
                _ => out.push(prefix.to_owned()),
            }
        }
        let mut out = Vec::new();
        walk(&default_tree(), "", &mut out);
        out
    }

    #[test]
    fn spans_parse_print_and_refuse_garbage() {
        assert_eq!(Span::parse("30s"), Ok(Span::seconds(30)));
        assert_eq!(Span::parse("10m"), Ok(Span::minutes(10)));
        assert_eq!(Span::parse(" 12h "), Ok(Span::hours(12)));
        assert_eq!(Span::parse("7d"), Ok(Span::days(7)));
        assert_eq!(Span::parse("90"), Ok(Span::seconds(90)), "bare seconds");
        for bad in [
            "",
            "soon",
            "10 minutes",
            "-5m",
            "1.5h",
            "m",
            "0",
            "0d",
            "99999999999d",
        ] {
            assert!(Span::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(Span::minutes(10).as_ms(), 600_000);
        assert_eq!(Span::days(7).as_ms(), 604_800_000);
        assert_eq!(Span::hours(36).whole_days(), 1);
        for (span, text, words) in [
            (Span::seconds(90), "90s", "90 seconds"),
            (Span::minutes(10), "10m", "10 minutes"),
            (Span::hours(36), "36h", "36 hours"),
            (Span::days(1), "1d", "1 day"),
        ] {
            assert_eq!(span.to_string(), text);
            assert_eq!(Span::parse(text), Ok(span));
            assert_eq!(span.in_words(), words);
        }
    }

    #[test]
    fn spans_serialise_in_the_short_form_and_load_back() {
        let text = toml::to_string(&Config::default()).unwrap();
        for line in [
            "invitation_expiry = \"7d\"",
            "pending = \"10m\"",
            "session_max = \"12h\"",
            "login_expiry = \"12h\"",
            "read_only_max_expiry = \"never\"",
        ] {
            assert!(text.contains(line), "{line} not in {text}");
        }
        let dir = std::env::temp_dir().join(format!("tessera-cfg-rt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, &text).unwrap();
        let c = Config::load(Some(&f), Vec::new()).unwrap();
        assert_eq!(toml::to_string(&c).unwrap(), text);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn old_key_names_load_to_the_same_values() {
        let dir = std::env::temp_dir().join(format!("tessera-cfg-old-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join("old.toml");
        std::fs::write(
            &old,
            "invitation_days = 3\n\
             [tfa]\npending_minutes = 15\n\
             [tokens]\ndefault_expiry_days = 7\nmax_expiry_days = 0\nlogin_expiry_days = 30\n\
             [web]\nsession_idle_minutes = 45\nsession_max_hours = 8\nreauth_minutes = 20\n\
             handshake_minutes = 2\n",
        )
        .unwrap();
        let new = dir.join("new.toml");
        std::fs::write(
            &new,
            "invitation_expiry = \"3d\"\n\
             [tfa]\npending = \"15m\"\n\
             [tokens]\ndefault_expiry = \"7d\"\nmax_expiry = \"never\"\nlogin_expiry = \"30d\"\n\
             [web]\nsession_idle = \"45m\"\nsession_max = \"8h\"\nreauth = \"20m\"\n\
             handshake = \"2m\"\n",
        )
        .unwrap();
        let from_old = Config::load(Some(&old), Vec::new()).unwrap();
        let from_new = Config::load(Some(&new), Vec::new()).unwrap();
        assert_eq!(
            serde_json::to_value(&from_old).unwrap(),
            serde_json::to_value(&from_new).unwrap()
        );
        assert_eq!(from_old.invitation_expiry, Span::days(3));
        assert_eq!(from_old.tfa.pending, Span::minutes(15));
        assert_eq!(from_old.tokens.default_expiry, Some(Span::days(7)));
        assert_eq!(from_old.tokens.max_expiry, None);
        assert_eq!(from_old.tokens.login_expiry, Some(Span::days(30)));
        assert_eq!(from_old.web.session_idle, Span::minutes(45));
        assert_eq!(from_old.web.session_max, Span::hours(8));
        assert_eq!(from_old.web.reauth, Span::minutes(20));
        assert_eq!(from_old.web.handshake, Span::minutes(2));
        assert_eq!(from_old.deprecated_names.len(), 9);
        assert!(
            from_old
                .deprecated_names
                .contains(&"web.session_max_hours: write web.session_max = \"8h\"".to_owned()),
            "{:?}",
            from_old.deprecated_names
        );
        assert!(from_new.deprecated_names.is_empty());
        // a new variable overrides an old name in the file
        let c = Config::load(Some(&old), env(&[("TESSERA_TFA__PENDING", "5m")])).unwrap();
        assert_eq!(c.tfa.pending, Span::minutes(5));
        std::fs::remove_dir_all(dir).ok();

        let c = Config::load(
            None,
            env(&[
                ("TESSERA_WEB__SESSION_MAX_HOURS", "1"),
                ("TESSERA_TOKENS__LOGIN_EXPIRY_DAYS", "0"),
                ("TESSERA_INVITATION_DAYS", "2"),
            ]),
        )
        .unwrap();
        assert_eq!(c.web.session_max, Span::hours(1));
        assert_eq!(c.tokens.login_expiry, None);
        assert_eq!(c.invitation_expiry, Span::days(2));
        let e = load_err(&[
            ("TESSERA_TFA__PENDING_MINUTES", "10"),
            ("TESSERA_TFA__PENDING", "10m"),
        ]);
        assert!(
            e.contains("tfa.pending_minutes") && e.contains("set only one"),
            "{e}"
        );
        let e = load_err(&[("TESSERA_WEB__REAUTH_MINUTES", "ten")]);
        assert!(
            e.contains("web.reauth_minutes") && e.contains("minutes"),
            "{e}"
        );
        let e = load_err(&[("TESSERA_INVITATION_DAYS", "9999999999999")]);
        assert!(
            e.contains("invitation_days") && e.contains("100 years"),
            "{e}"
        );
    }

    /// `connections.sendfile` takes its three words, and booleans (in the file or as the
    /// words) as `"on"`/`"off"`; anything else is refused with the values it takes.
    #[test]
    fn sendfile_takes_its_words_and_booleans() {
        for (value, mode) in [
            ("auto", SendfileMode::Auto),
            ("on", SendfileMode::On),
            ("off", SendfileMode::Off),
            ("true", SendfileMode::On),
            ("false", SendfileMode::Off),
        ] {
            let c = Config::load(None, env(&[("TESSERA_CONNECTIONS__SENDFILE", value)])).unwrap();
            assert_eq!(c.connections.sendfile, mode, "{value}");
        }
        for (text, mode) in [
            ("[connections]\nsendfile = true", SendfileMode::On),
            ("[connections]\nsendfile = false", SendfileMode::Off),
            ("[connections]\nsendfile = \"off\"", SendfileMode::Off),
        ] {
            let c = Config::load_text(Some(text), Vec::new()).unwrap();
            assert_eq!(c.connections.sendfile, mode, "{text}");
        }
        assert_eq!(
            Config::default().connections.sendfile,
            SendfileMode::Auto,
            "auto by default"
        );
        let e = load_err(&[("TESSERA_CONNECTIONS__SENDFILE", "yes")]);
        assert!(
            e.contains("sendfile") && e.contains("\"auto\", \"on\", \"off\""),
            "{e}"
        );
        match Config::load_text(Some("[connections]\nsendfile = 1"), Vec::new()) {
            Err(ConfigError::Invalid(e)) => assert!(e.contains("\"auto\""), "{e}"),
            other => panic!("a number loaded: {other:?}"),
        }
    }

    #[test]
    fn bad_spans_name_their_key() {
        for (var, key) in [
            ("TESSERA_WEB__SESSION_IDLE", "web.session_idle"),
            ("TESSERA_TFA__PENDING", "tfa.pending"),
            ("TESSERA_TOKENS__LOGIN_EXPIRY", "tokens.login_expiry"),
            ("TESSERA_INVITATION_EXPIRY", "invitation_expiry"),
        ] {
            for bad in ["soon", "99999999d"] {
                let e = load_err(&[(var, bad)]);
                assert!(e.starts_with(&format!("{key}: ")), "{var}={bad}: {e}");
            }
        }
        let e = load_err(&[("TESSERA_WEB__REAUTH", "0m")]);
        assert!(e.starts_with("web.reauth: ") && e.contains("zero"), "{e}");
        let e = load_err(&[("TESSERA_SIGNUP", "sometimes")]);
        assert!(e.starts_with("signup: ") && !e.contains('\n'), "{e}");
    }

    #[test]
    fn text_variables_stay_text() {
        let c = Config::load(
            None,
            env(&[
                ("TESSERA_TFA__ISSUER", "2024"),
                ("TESSERA_PUBLIC_URL", "true"),
                ("TESSERA_TFA__WINDOW", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(c.tfa.issuer, "2024");
        assert_eq!(c.public_url.as_deref(), Some("true"));
        assert_eq!(c.tfa.window, 0);
    }

    #[test]
    fn every_key_has_its_variable() {
        let defaults = default_tree();
        let base = serde_json::to_value(Config::load(None, Vec::new()).unwrap()).unwrap();
        // Candidate values for keys that hold strings; numbers and booleans get a changed value.
        let strings = [
            "x-sample",
            "127.0.0.1:1",
            "postgres://db/npm",
            "s3://bucket/prefix",
            "2027-01-31",
            "closed",
            "public",
            "manual",
            "everyone",
            "disabled",
            "[{issuer = \"https://ci.example\", kind = \"github\"}]",
            "[{name = \"npmjs\", url = \"https://registry.npmjs.org/\"}]",
            "[{pattern = \"**\"}]",
            "42m",
            "never",
            "400d",
            "https://rekor.example",
            "on",
        ];
        let keys = keys();
        assert!(keys.len() > 30, "{keys:?}");
        for key in keys {
            let path: Vec<String> = key.split('.').map(str::to_owned).collect();
            let var = format!("TESSERA_{}", path.join("__").to_ascii_uppercase());
            let candidates: Vec<String> = match json_at(&defaults, &path).unwrap() {
                serde_json::Value::Bool(b) => vec![(!b).to_string()],
                serde_json::Value::Number(n) => vec![(n.as_u64().unwrap() + 1).to_string()],
                _ => strings.iter().map(|s| s.to_string()).collect(),
            };
            let set = candidates.iter().any(|value| {
                let Ok(c) = Config::load(None, vec![(var.clone(), value.clone())]) else {
                    return false;
                };
                let mut changed = serde_json::to_value(c).unwrap();
                let new = json_at(&changed, &path).cloned();
                // only this key moved
                let mut node = &mut changed;
                for p in &path[..path.len() - 1] {
                    node = node.get_mut(p).unwrap();
                }
                node[path.last().unwrap()] = json_at(&base, &path).unwrap().clone();
                changed == base && new.as_ref() != json_at(&base, &path)
            });
            assert!(set, "{var} does not set {key}");
        }
    }

    #[test]
    fn the_documentation_lists_every_key() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md"),
        )
        .unwrap();
        // The first cell of each row of the key table names one or more keys in backticks.
        let rows = doc
            .lines()
            .skip_while(|l| !l.starts_with("| key |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'));
        let mut documented: Vec<String> = rows
            .flat_map(|row| {
                let cell = row.split('|').nth(1).unwrap_or_default();
                cell.split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        documented.sort();
        let mut keys = keys();
        keys.sort();
        assert_eq!(documented, keys, "docs/configuration.md's key table");
        // The old names are listed with their new ones.
        let old_rows: Vec<(String, String)> = doc
            .lines()
            .skip_while(|l| !l.starts_with("| old key |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|row| {
                let cells: Vec<&str> = row.split('|').collect();
                (
                    cells[1].trim().trim_matches('`').to_owned(),
                    cells[2].trim().trim_matches('`').to_owned(),
                )
            })
            .collect();
        let listed: Vec<(String, String)> = DEPRECATED_KEYS
            .iter()
            .map(|(old, new, _)| (old.to_string(), new.to_string()))
            .collect();
        assert_eq!(old_rows, listed, "docs/configuration.md's old key names");
    }

    #[test]
    fn defaults_need_no_file() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:4873");
        assert_eq!(c.signup, Signup::Open);
        assert_eq!(c.data, PathBuf::from("./tessera-data"));
    }

    #[test]
    fn database_passwords_and_s3_secrets_are_hidden() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/npm"),
            "postgres://app:***@db:5432/npm"
        );
        assert_eq!(
            redact_url("postgres://db/npm?user=app&password=s3cret&sslmode=require"),
            "postgres://db/npm?user=app&password=***&sslmode=require"
        );
        assert_eq!(
            redact_url("postgres://app@db/npm?sslpassword=x"),
            "postgres://app@db/npm?sslpassword=***"
        );
        assert_eq!(redact_url("sqlite://./x.db"), "sqlite://./x.db");
        let s3 = S3Config {
            secret_access_key: "wJalrXUtnFEMI".into(),
            ..S3Config::default()
        };
        assert!(!format!("{s3:?}").contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn file_then_env_override() {
        let dir = std::env::temp_dir().join(format!("tessera-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("c.toml");
        std::fs::write(&f, "signup = \"invitation\"\nmax_body_size = \"10mb\"\n").unwrap();
        let c = Config::load(Some(&f), Vec::new()).unwrap();
        assert_eq!(c.signup, Signup::Invitation);
        assert_eq!(c.max_body_size, ByteSize(10 << 20));
        let env = vec![
            ("TESSERA_SIGNUP".to_string(), "closed".to_string()),
            ("TESSERA_MAX_BODY_SIZE".to_string(), "2048".to_string()),
            (
                "TESSERA_PUBLIC_URL".to_string(),
                "https://npm.example.com/".to_string(),
            ),
            ("TESSERA_SECRET_KEY".to_string(), "ignored".to_string()),
            ("TESSERA_UNRELATED_THING".to_string(), "ignored".to_string()),
        ];
        let c = Config::load(Some(&f), env).unwrap();
        assert_eq!(c.signup, Signup::Closed);
        assert_eq!(c.max_body_size, ByteSize(2048));
        assert_eq!(c.public_url.as_deref(), Some("https://npm.example.com/"));
        let env = vec![
            ("TESSERA_TFA__ISSUER".to_string(), "Acme npm".to_string()),
            ("TESSERA_TFA__WINDOW".to_string(), "0".to_string()),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.tfa.issuer, "Acme npm");
        assert_eq!(c.tfa.window, 0);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn policy_and_token_settings() {
        let env = vec![
            ("TESSERA_REQUIRE_2FA".to_string(), "publishers".to_string()),
            (
                "TESSERA_REQUIRE_2FA_GRACE_UNTIL".to_string(),
                "2027-01-31".to_string(),
            ),
            ("TESSERA_TOKENS__MAX_EXPIRY".to_string(), "30d".to_string()),
            (
                "TESSERA_TOKENS__DEFAULT_EXPIRY".to_string(),
                "7d".to_string(),
            ),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.require_2fa, Requirement::Publishers);
        assert_eq!(c.grace_until_ms(), Some(1_801_353_600_000));
        assert_eq!(c.tokens.max_expiry, Some(Span::days(30)));
        let bad = vec![(
            "TESSERA_REQUIRE_2FA_GRACE_UNTIL".to_string(),
            "soon".to_string(),
        )];
        assert!(Config::load(None, bad).is_err());
        let bad = vec![("TESSERA_TOKENS__MAX_EXPIRY".to_string(), "5d".to_string())];
        assert!(Config::load(None, bad).is_err(), "default 7d > max 5d");
        let bad = vec![(
            "TESSERA_TOKENS__READ_ONLY_MAX_EXPIRY".to_string(),
            "10d".to_string(),
        )];
        let e = Config::load(None, bad).unwrap_err().to_string();
        assert!(e.contains("tokens.read_only_default_expiry"), "{e}");
        let d = Config::default();
        assert_eq!(d.tokens.lifetimes(false).default, Some(Span::days(7)));
        assert_eq!(d.tokens.lifetimes(false).max, Some(Span::days(90)));
        assert_eq!(d.tokens.lifetimes(true).default, Some(Span::days(30)));
        assert_eq!(d.tokens.lifetimes(true).max, None);
        assert_eq!(d.tokens.login_expiry, Some(Span::hours(12)));
        let bad = vec![("TESSERA_TOKENS__MAX_EXPIRY".to_string(), "12h".to_string())];
        assert!(Config::load(None, bad).is_err(), "npm asks for whole days");
        let env = vec![
            ("TESSERA_TOKENS__MAX_EXPIRY".to_string(), "30d".to_string()),
            (
                "TESSERA_TOKENS__DEFAULT_EXPIRY".to_string(),
                "never".to_string(),
            ),
            (
                "TESSERA_TOKENS__LOGIN_EXPIRY".to_string(),
                "12h".to_string(),
            ),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.tokens.default_expiry, None, "the maximum applies");
        assert_eq!(c.tokens.login_expiry, Some(Span::hours(12)));
        assert_eq!(
            parse_date_ms("2027-01-31T12:00:00Z"),
            Some(1_801_396_800_000)
        );
    }

    #[test]
    fn bad_values_are_reported() {
        let env = vec![("TESSERA_SIGNUP".to_string(), "sometimes".to_string())];
        assert!(matches!(
            Config::load(None, env),
            Err(ConfigError::Invalid(_))
        ));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(ByteSize::parse("1kb"), Some(ByteSize(1024)));
        assert_eq!(ByteSize::parse("3 MB"), Some(ByteSize(3 << 20)));
        assert_eq!(ByteSize::parse("lots"), None);
    }
}
