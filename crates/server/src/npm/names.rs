//! npm's naming rules for packages, users and dist-tags (validate-npm-package-name,
//! npm-user-validate), applied to everything that creates a name.

/// Node's built-in modules: npm refuses them as new package names.
const BUILTINS: &[&str] = &[
    "assert",
    "async_hooks",
    "buffer",
    "child_process",
    "cluster",
    "console",
    "constants",
    "crypto",
    "dgram",
    "diagnostics_channel",
    "dns",
    "domain",
    "events",
    "fs",
    "http",
    "http2",
    "https",
    "inspector",
    "module",
    "net",
    "os",
    "path",
    "perf_hooks",
    "process",
    "punycode",
    "querystring",
    "readline",
    "repl",
    "stream",
    "string_decoder",
    "sys",
    "timers",
    "tls",
    "trace_events",
    "tty",
    "url",
    "util",
    "v8",
    "vm",
    "wasi",
    "worker_threads",
    "zlib",
];

/// Characters `encodeURIComponent` leaves alone, minus the ones npm forbids (`~'!()*`).
fn url_safe(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn check_part(part: &str, what: &str) -> Result<(), String> {
    if part.is_empty() {
        return Err(format!("{what} cannot be empty"));
    }
    if part.starts_with('.') {
        return Err(format!("{what} cannot start with a period"));
    }
    if part.starts_with('_') {
        return Err(format!("{what} cannot start with an underscore"));
    }
    if part.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("{what} can no longer contain capital letters"));
    }
    if let Some(c) = part.chars().find(|c| !url_safe(*c)) {
        return Err(format!(
            "{what} can only contain URL-friendly characters (found {c:?})"
        ));
    }
    Ok(())
}

/// Checks a name for a new package; the error is the sentence npm users see.
pub fn validate_package_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("package name cannot be empty".into());
    }
    if name.len() > 214 {
        return Err("package name can no longer contain more than 214 characters".into());
    }
    if name.trim() != name {
        return Err("package name cannot contain leading or trailing spaces".into());
    }
    if let Some(rest) = name.strip_prefix('@') {
        let Some((scope, pkg)) = rest.split_once('/') else {
            return Err("scoped package names must look like @scope/name".into());
        };
        check_part(scope, "package scope")?;
        check_part(pkg, "package name")?;
        return Ok(());
    }
    check_part(name, "package name")?;
    if name == "node_modules" || name == "favicon.ico" {
        return Err(format!("{name} is a blacklisted name"));
    }
    if BUILTINS.contains(&name) {
        return Err(format!("{name} is a core module name"));
    }
    Ok(())
}

/// Checks a name that may exist on another registry from before npm's current rules (capital
/// letters, core-module names such as `events`): what a proxied read accepts.
pub fn validate_existing_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 214 || name.trim() != name {
        return Err("not a package name".into());
    }
    let parts: Vec<&str> = match name.strip_prefix('@') {
        Some(rest) => match rest.split_once('/') {
            Some((scope, pkg)) => vec![scope, pkg],
            None => return Err("scoped package names must look like @scope/name".into()),
        },
        None => vec![name],
    };
    for part in parts {
        if part.is_empty() || part.starts_with('.') || part.starts_with('_') {
            return Err("not a package name".into());
        }
        if let Some(c) = part.chars().find(|c| !url_safe(*c)) {
            return Err(format!("a package name cannot contain {c:?}"));
        }
    }
    Ok(())
}

/// The scope of a package name (`@acme` for `@acme/x`), if any.
pub fn scope_of(name: &str) -> Option<&str> {
    if name.starts_with('@') {
        name.split_once('/').map(|(s, _)| s)
    } else {
        None
    }
}

/// The name without its scope (`x` for `@acme/x`): the tarball file's stem.
pub fn bare_name(name: &str) -> &str {
    match name.split_once('/') {
        Some((_, b)) if name.starts_with('@') => b,
        _ => name,
    }
}

/// Checks a user name (npm-user-validate).
pub fn validate_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Username cannot be empty".into());
    }
    if name.len() > 214 {
        return Err("Username may not be longer than 214 characters".into());
    }
    if name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err("Username must be lowercase".into());
    }
    if name.starts_with('.') {
        return Err("Username may not start with \".\"".into());
    }
    if !name.chars().all(url_safe) {
        return Err("Username may not contain non-url-safe chars".into());
    }
    Ok(())
}

/// Checks an email address loosely (something@something.tld, no spaces, ≤ 254 characters).
pub fn validate_email(email: &str) -> Result<(), String> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.starts_with('.') && !d.ends_with('.') && !d.contains('@'));
    if ok {
        Ok(())
    } else {
        Err("Email must be an email address".into())
    }
}

/// Checks a dist-tag name. npm refuses tags that are valid semver ranges, because
/// `npm install pkg@<tag>` could not tell them apart.
pub fn validate_tag(tag: &str) -> Result<(), String> {
    if tag.is_empty() || tag.len() > 128 {
        return Err("Tag name must be between 1 and 128 characters".into());
    }
    if !tag.chars().all(|c| url_safe(c) || c == '+') {
        return Err(format!(
            "Tag name {tag:?} can only contain URL-friendly characters"
        ));
    }
    let t = tag.trim_start_matches(['v', 'V', '=']);
    if t.starts_with(|c: char| c.is_ascii_digit()) || matches!(tag, "x" | "X" | "*") {
        return Err(format!("Tag name {tag:?} must not be a valid SemVer range"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_before_the_current_rules_are_read() {
        for ok in ["JSONStream", "events", "@Scope/X", "lodash.merge"] {
            assert!(validate_existing_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".x",
            "_x",
            "@s",
            "@/x",
            "a b",
            "a/b",
            "@s/x/y",
            "a%2f",
            &"a".repeat(215),
        ] {
            assert!(validate_existing_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn package_names_follow_npm() {
        for ok in [
            "demo",
            "demo-pkg",
            "a.b_c",
            "@alice/scoped",
            "@a-b/c.d",
            "x".repeat(214).as_str(),
        ] {
            assert_eq!(validate_package_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".hidden",
            "_under",
            "Upper",
            "@alice/Upper",
            "@Alice/x",
            "with space",
            " lead",
            "trail ",
            "a/b",
            "@scope",
            "@/x",
            "@scope/",
            "emoji✓",
            "bang!",
            "tilde~",
            "paren(",
            "star*",
            "quote'",
            "node_modules",
            "favicon.ico",
            "http",
            "fs",
            "@s/.x",
            "@_s/x",
            "x".repeat(215).as_str(),
            "a%2fb",
            "../etc",
        ] {
            assert!(
                validate_package_name(bad).is_err(),
                "{bad:?} should be refused"
            );
        }
    }

    #[test]
    fn scope_helpers() {
        assert_eq!(scope_of("@alice/x"), Some("@alice"));
        assert_eq!(scope_of("x"), None);
        assert_eq!(bare_name("@alice/x"), "x");
        assert_eq!(bare_name("x"), "x");
    }

    #[test]
    fn user_names() {
        assert!(validate_user_name("alice").is_ok());
        assert!(validate_user_name("a.b-c_d").is_ok());
        for bad in ["", "Alice", ".a", "a b", "a/b", "a:b", "é"] {
            assert!(validate_user_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails() {
        assert!(validate_email("a@example.com").is_ok());
        for bad in ["", "a", "a@b", "@b.c", "a@.b", "a b@c.d", "a@b.c."] {
            assert!(validate_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tags() {
        for ok in ["latest", "next", "beta", "canary-2", "rc"] {
            assert!(validate_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1.0.0", "v1", "1.x", "x", "*", "=1", "has space", "a/b"] {
            assert!(validate_tag(bad).is_err(), "{bad:?}");
        }
    }
}
