//! Configuration: embedded defaults, then a TOML file, then `TESSERA_*` environment variables,
//! then command-line flags (applied by the binary). See docs/configuration.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// Two-factor authentication settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfaConfig {
    /// Issuer shown by authenticator apps (the `otpauth://` issuer).
    pub issuer: String,
    /// Time steps accepted either side of now: 1 (RFC 6238's ±30 s), or 0 for a strict 30 s.
    pub window: u64,
    /// Minutes a pending enrolment may wait for its confirming code.
    pub pending_minutes: u64,
}

impl Default for TfaConfig {
    fn default() -> Self {
        TfaConfig {
            issuer: "tessera".into(),
            window: 1,
            pending_minutes: 10,
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
    /// Days an invitation stays valid.
    pub invitation_days: u32,
    /// Largest accepted request body (a publish carries the tarball in base64).
    pub max_body_size: ByteSize,
    /// Largest accepted unpacked tarball.
    pub max_unpacked_size: ByteSize,
    /// Visibility of a new scoped package published without `--access`.
    pub scoped_default_access: DefaultAccess,
    /// Refuse anonymous reads (packuments, tarballs, search).
    pub read_requires_auth: bool,
    /// Memory for rendered packuments, in MiB (the read path serves them as cached bytes).
    pub packument_cache_mb: usize,
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
    pub require_2fa: Require2fa,
    /// Until this date (`2027-01-31` or RFC 3339), `require_2fa` only warns (an `npm notice`).
    pub require_2fa_grace_until: Option<String>,
    /// API token lifetimes.
    pub tokens: TokenConfig,
    /// The website and npm's browser login.
    pub web: WebConfig,
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
    /// Minutes a session may stay idle.
    pub session_idle_minutes: u64,
    /// Hours a session lasts at most.
    pub session_max_hours: u64,
    /// Minutes after the last sign-in during which 2FA settings need no re-authentication.
    pub reauth_minutes: u64,
    /// Minutes a browser handshake (npm login, web OTP) stays open.
    pub handshake_minutes: u64,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            browser_login: true,
            session_idle_minutes: 30,
            session_max_hours: 12,
            reauth_minutes: 30,
            handshake_minutes: 5,
        }
    }
}

/// The registry-wide 2FA requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Require2fa {
    /// No requirement.
    None,
    /// Accounts without 2FA cannot change packages.
    Publishers,
    /// Accounts without 2FA can only log in to turn it on.
    Everyone,
}

impl Require2fa {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            Require2fa::None => "none",
            Require2fa::Publishers => "publishers",
            Require2fa::Everyone => "everyone",
        }
    }

    /// Parses the configuration word.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Require2fa::None),
            "publishers" => Some(Require2fa::Publishers),
            "everyone" => Some(Require2fa::Everyone),
            _ => None,
        }
    }
}

/// Lifetimes of API tokens, in days (0: no expiry).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    /// Lifetime of a token made by `npm token create` without `--expires`.
    pub default_expiry_days: u32,
    /// Longest lifetime `--expires` may ask for.
    pub max_expiry_days: u32,
    /// Lifetime of the tokens `npm login` mints.
    pub login_expiry_days: u32,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            default_expiry_days: 90,
            max_expiry_days: 365,
            login_expiry_days: 0,
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
            invitation_days: 7,
            max_body_size: ByteSize(100 << 20),
            max_unpacked_size: ByteSize(512 << 20),
            scoped_default_access: DefaultAccess::Restricted,
            read_requires_auth: false,
            open_scopes: false,
            packument_cache_mb: 256,
            min_password_length: 8,
            trust_proxy: false,
            log: "info".into(),
            tfa: TfaConfig::default(),
            require_2fa: Require2fa::None,
            require_2fa_grace_until: None,
            tokens: TokenConfig::default(),
            web: WebConfig::default(),
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
    /// Loads defaults, overlaid by `file` (if any), overlaid by `TESSERA_*` variables from `env`.
    ///
    /// `TESSERA_SIGNUP=closed` sets `signup`; nested keys use a double underscore
    /// (`TESSERA_TFA__ISSUER`). Values are read as TOML scalars when they parse as one, else as
    /// strings.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let known = table.clone();
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            let overlay: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
            merge(&mut table, overlay);
        }
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("TESSERA_") else {
                continue;
            };
            if NOT_KEYS.contains(&rest) || rest.starts_with("TEST_") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
            let optional_key = path.len() == 1
                && matches!(
                    path[0].as_str(),
                    "public_url" | "require_2fa_grace_until" | "database" | "storage"
                );
            if !(has_path(&known, &path) || optional_key) {
                continue;
            }
            set_path(&mut table, &path, scalar(&v));
        }
        let config: Config = table
            .try_into::<Config>()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(g) = &config.require_2fa_grace_until
            && parse_date_ms(g).is_none()
        {
            return Err(ConfigError::Invalid(format!(
                "require_2fa_grace_until must be a date like 2027-01-31, not {g:?}"
            )));
        }
        if config.tokens.max_expiry_days > 0
            && config.tokens.default_expiry_days > config.tokens.max_expiry_days
        {
            return Err(ConfigError::Invalid(
                "tokens.default_expiry_days is longer than tokens.max_expiry_days".into(),
            ));
        }
        config.validate()?;
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

fn has_path(t: &toml::Table, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => t.contains_key(last),
        [first, rest @ ..] => {
            matches!(t.get(first), Some(toml::Value::Table(n)) if has_path(n, rest))
        }
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
            (
                "TESSERA_TOKENS__MAX_EXPIRY_DAYS".to_string(),
                "30".to_string(),
            ),
            (
                "TESSERA_TOKENS__DEFAULT_EXPIRY_DAYS".to_string(),
                "7".to_string(),
            ),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.require_2fa, Require2fa::Publishers);
        assert_eq!(c.grace_until_ms(), Some(1_801_353_600_000));
        assert_eq!(c.tokens.max_expiry_days, 30);
        let bad = vec![(
            "TESSERA_REQUIRE_2FA_GRACE_UNTIL".to_string(),
            "soon".to_string(),
        )];
        assert!(Config::load(None, bad).is_err());
        let bad = vec![(
            "TESSERA_TOKENS__MAX_EXPIRY_DAYS".to_string(),
            "30".to_string(),
        )];
        assert!(Config::load(None, bad).is_err(), "default 90 > max 30");
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
