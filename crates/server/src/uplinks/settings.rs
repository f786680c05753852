//! The uplinks' configuration: `[[uplinks]]` (upstream registries, with Verdaccio's names and
//! defaults) and `[[packages]]` (which names are proxied where, first match wins).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::{ByteSize, ConfigError, Span};

/// An upstream registry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UplinkConfig {
    /// Its name, used by `[[packages]].proxy`.
    pub name: String,
    /// Its base URL (`https://registry.npmjs.org/`).
    pub url: String,
    /// Longest wait for one request, body included.
    #[serde(default = "defaults::timeout")]
    pub timeout: Span,
    /// How long a fetched packument is served before it is revalidated (`If-None-Match`).
    #[serde(default = "defaults::maxage")]
    pub maxage: Span,
    /// How long a name the uplink does not have is remembered as missing.
    #[serde(default = "defaults::negative_maxage")]
    pub negative_maxage: Span,
    /// How long the uplink is skipped after `max_fails` failures in a row.
    #[serde(default = "defaults::fail_timeout")]
    pub fail_timeout: Span,
    /// Failures in a row that open its circuit breaker.
    #[serde(default = "defaults::max_fails")]
    pub max_fails: u32,
    /// Keep fetched tarballs (off: stream them through, fetched again each time).
    #[serde(default = "defaults::yes")]
    pub cache: bool,
    /// Credentials sent to it.
    #[serde(default)]
    pub auth: Option<UplinkAuth>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// An HTTP(S) proxy to reach it through (`http://proxy.internal:3128`).
    #[serde(default)]
    pub proxy: Option<String>,
    /// A PEM file of extra CA certificates to trust (a company CA).
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Check its TLS certificate (off only for testing).
    #[serde(default = "defaults::yes")]
    pub strict_ssl: bool,
    /// Largest packument accepted from it.
    #[serde(default = "defaults::max_packument_size")]
    pub max_packument_size: ByteSize,
    /// Largest tarball accepted from it.
    #[serde(default = "defaults::max_tarball_size")]
    pub max_tarball_size: ByteSize,
    /// Forward `npm audit` to it (its advisories endpoints).
    #[serde(default = "defaults::yes")]
    pub audit: bool,
}

/// Credentials for an uplink, as Verdaccio writes them.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct UplinkAuth {
    /// `bearer` (the default) or `basic` (the token is then `base64(user:password)`).
    #[serde(rename = "type", default = "defaults::bearer")]
    pub kind: String,
    /// The token itself.
    #[serde(default)]
    pub token: Option<String>,
    /// The environment variable holding the token.
    #[serde(default)]
    pub token_env: Option<String>,
}

impl std::fmt::Debug for UplinkAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UplinkAuth")
            .field("kind", &self.kind)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .field("token_env", &self.token_env)
            .finish()
    }
}

impl UplinkAuth {
    /// The `Authorization` header value, reading `token_env` now.
    pub fn header(&self) -> Result<String, String> {
        let token = match (&self.token, &self.token_env) {
            (Some(t), _) => t.clone(),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| format!("the environment variable {var} (auth.token_env) is unset"))?,
            (None, None) => return Err("auth needs token or token_env".into()),
        };
        match self.kind.as_str() {
            "bearer" => Ok(format!("Bearer {token}")),
            "basic" => Ok(format!("Basic {token}")),
            other => Err(format!("auth.type must be bearer or basic, not {other:?}")),
        }
    }
}

/// How a name's local packages and an uplink's versions combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MergeMode {
    /// A name that exists here (or whose scope is owned here, or that was ever published here)
    /// is served from here only; any other name comes from the uplinks.
    #[default]
    LocalShadowsUpstream,
    /// A local package and the uplink's package of the same name are served as one: local
    /// versions and dist-tags win, the uplink adds versions whose numbers were never used here
    /// and tags the local package lacks. For patched forks of public packages only: a rule in
    /// this mode must name its packages (no `**`, `*`, `@*/…`), because any name it covers can
    /// take versions from the uplink.
    Merge,
}

impl MergeMode {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            MergeMode::LocalShadowsUpstream => "local-shadows-upstream",
            MergeMode::Merge => "merge",
        }
    }
}

/// Which names a rule covers, and where they come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PackageRule {
    /// A glob over package names: `@acme/*`, `@*/*`, `lodash`, `react-*`, `**`.
    pub pattern: String,
    /// The uplinks to ask, in order (a single name is accepted too); none: local only.
    #[serde(default, deserialize_with = "one_or_many")]
    pub proxy: Vec<String>,
    /// How local and upstream versions combine.
    #[serde(default)]
    pub mode: MergeMode,
    /// Upstream versions to keep out.
    #[serde(default)]
    pub quarantine: Quarantine,
}

/// Upstream versions kept out of a rule's packuments and tarballs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Quarantine {
    /// Versions younger than this are not served (`"3d"`).
    pub min_age: Option<Span>,
    /// `name@range` entries (npm ranges) never served: `"event-stream@3.3.6"`.
    pub deny: Vec<String>,
    /// Versions published after this date (`2026-11-01` or RFC 3339) are not served.
    pub freeze: Option<String>,
}

/// Whether a pattern for `mode = "merge"` names its packages: its scope (if any) is spelled
/// out, and it is not made of wildcards only (`**`, `*`, `*/*`).
pub fn merge_names_its_packages(pattern: &str) -> bool {
    let wild = |s: &str| s.chars().all(|c| matches!(c, '*' | '?' | '/'));
    match pattern.strip_prefix('@') {
        Some(rest) => {
            let scope = rest.split('/').next().unwrap_or("");
            !scope.is_empty() && !scope.contains(['*', '?'])
        }
        // (`*` also matches a scope: `*/utils` would cover `@anyone/utils`)
        None => !pattern.contains("**") && !pattern.contains('/') && !wild(pattern),
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s.split_whitespace().map(str::to_owned).collect(),
        OneOrMany::Many(v) => v,
    })
}

mod defaults {
    use crate::config::{ByteSize, Span};
    pub fn timeout() -> Span {
        Span::seconds(30)
    }
    pub fn maxage() -> Span {
        Span::minutes(2)
    }
    pub fn negative_maxage() -> Span {
        Span::seconds(30)
    }
    pub fn fail_timeout() -> Span {
        Span::minutes(5)
    }
    pub fn max_fails() -> u32 {
        2
    }
    pub fn yes() -> bool {
        true
    }
    pub fn bearer() -> String {
        "bearer".into()
    }
    pub fn max_packument_size() -> ByteSize {
        ByteSize(64 << 20)
    }
    pub fn max_tarball_size() -> ByteSize {
        ByteSize(256 << 20)
    }
}

/// Checks the uplinks and the rules together.
pub fn validate(uplinks: &[UplinkConfig], rules: &[PackageRule]) -> Result<(), ConfigError> {
    let bad = |m: String| Err(ConfigError::Invalid(m));
    let mut names = std::collections::HashSet::new();
    for u in uplinks {
        if u.name.is_empty()
            || !u
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return bad(format!(
                "uplinks: {:?} is not a name (letters, digits, - _ .)",
                u.name
            ));
        }
        if !names.insert(u.name.as_str()) {
            return bad(format!("uplinks: {:?} is named twice", u.name));
        }
        match url::Url::parse(&u.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
            _ => {
                return bad(format!(
                    "uplinks.{}: url must be an http:// or https:// URL, not {:?}",
                    u.name, u.url
                ));
            }
        }
        if let Some(p) = &u.proxy
            && url::Url::parse(p).is_err()
        {
            return bad(format!(
                "uplinks.{}: proxy must be a URL, not {p:?}",
                u.name
            ));
        }
        if let Some(a) = &u.auth {
            if !matches!(a.kind.as_str(), "bearer" | "basic") {
                return bad(format!(
                    "uplinks.{}: auth.type must be bearer or basic, not {:?}",
                    u.name, a.kind
                ));
            }
            if a.token.is_none() && a.token_env.is_none() {
                return bad(format!("uplinks.{}: auth needs token or token_env", u.name));
            }
        }
        if u.max_fails == 0 {
            return bad(format!("uplinks.{}: max_fails must be at least 1", u.name));
        }
    }
    for r in rules {
        crate::uplinks::routing::Pattern::parse(&r.pattern)
            .map_err(|e| ConfigError::Invalid(format!("packages: {e}")))?;
        for p in &r.proxy {
            if !names.contains(p.as_str()) {
                return bad(format!(
                    "packages {:?}: proxy names {p:?}, which is not an uplink",
                    r.pattern
                ));
            }
        }
        if r.mode == MergeMode::Merge {
            if r.proxy.is_empty() {
                return bad(format!(
                    "packages {:?}: mode \"merge\" needs proxy (the uplinks to merge with)",
                    r.pattern
                ));
            }
            if !merge_names_its_packages(&r.pattern) {
                return bad(format!(
                    "packages {:?}: mode \"merge\" lets an uplink add versions to every name the \
                     pattern covers, so the pattern must name its packages (a name, a scope such \
                     as \"@acme/*\", or a prefix such as \"react-*\"), not every name or every scope",
                    r.pattern
                ));
            }
        }
        crate::uplinks::quarantine::Rules::parse(&r.quarantine)
            .map_err(|e| ConfigError::Invalid(format!("packages {:?}: {e}", r.pattern)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::merge_names_its_packages as names;

    #[test]
    fn a_merge_rule_must_name_its_packages() {
        for ok in [
            "left-pad",
            "react-*",
            "*-patched",
            "@acme/*",
            "@acme/**",
            "@types/node",
        ] {
            assert!(names(ok), "{ok}");
        }
        for wide in [
            "**", "*", "?*", "*/*", "@*/*", "@*/**", "@a*/x", "@?/x", "@/x", "a**", "*/utils",
            "*acme/*", "*/*-fork",
        ] {
            assert!(!names(wide), "{wide}");
        }
    }
}
