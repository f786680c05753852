//! What a granular token may reach: the packages, scopes and organisations it was created for,
//! with their permissions (`no-access`, `read-only`, `read-write`).
//!
//! A granular token names packages (`packages`), scopes (`scopes`), organisations (`orgs`, which
//! own the scope of the same name here) or everything (`packages_all`). A token that names none
//! of them reaches every package, with `packages_and_scopes_permission` (default read-write).
//! A token limited to some packages cannot touch the account (profile, password, 2FA, tokens),
//! cannot write outside its packages and cannot see private packages outside them; public
//! packages stay readable, as they are to anyone.

use tessera_store::{Permission, Token, TokenGrants, TokenKind};

use crate::npm::names::scope_of;

/// A permission as given, read-write when not given.
fn given(p: Option<Permission>) -> Permission {
    p.unwrap_or(Permission::ReadWrite)
}

/// How far a credential reaches for one operation: an input of the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reach {
    /// Not limited to some packages.
    #[default]
    Full,
    /// Limited, and this package is among those it may write.
    Covered,
    /// Limited, and this target is outside it.
    Outside,
}

/// Whether the token is limited to some packages, scopes or organisations.
pub fn is_limited(t: &Token) -> bool {
    has_grants(t)
        && (!t.grants.packages.is_empty()
            || !t.grants.scopes.is_empty()
            || !t.grants.orgs.is_empty()
            || t.grants.packages_all)
}

/// Whether the token's reach is its grants: granular tokens, and the tokens of a trusted
/// publishing exchange (granted their one package).
fn has_grants(t: &Token) -> bool {
    matches!(
        t.kind,
        TokenKind::Granular | TokenKind::Oidc | TokenKind::OidcStage
    )
}

/// The token's permission on a package, or `None` when the package is outside its selection.
pub fn permission(t: &Token, package: &str) -> Option<Permission> {
    let g = &t.grants;
    if !has_grants(t) {
        return Some(if t.read_only() {
            Permission::ReadOnly
        } else {
            Permission::ReadWrite
        });
    }
    let pkg_perm = given(g.packages_and_scopes_permission);
    if !is_limited(t) {
        return Some(pkg_perm);
    }
    let mut best: Option<Permission> = None;
    let mut grant = |p: Permission| best = Some(best.map_or(p, |b| b.max(p)));
    if g.packages_all || g.packages.iter().any(|p| p == package) {
        grant(pkg_perm);
    }
    if let Some(scope) = scope_of(package) {
        if g.scopes.iter().any(|s| s == scope) {
            grant(pkg_perm);
        }
        if g.orgs
            .iter()
            .any(|o| format!("@{}", o.trim_start_matches('@')) == scope)
        {
            grant(given(g.orgs_permission));
        }
    }
    best
}

/// Reach of a token for a write to `package` (`None`: an account operation).
pub fn reach(token: Option<&Token>, package: Option<&str>) -> Reach {
    let Some(t) = token else { return Reach::Full };
    if !is_limited(t) {
        return Reach::Full;
    }
    match package {
        Some(p) if permission(t, p) == Some(Permission::ReadWrite) => Reach::Covered,
        _ => Reach::Outside,
    }
}

/// Whether a token may read a private package.
pub fn may_read_private(token: Option<&Token>, package: &str) -> bool {
    match token {
        None => true,
        Some(t) => permission(t, package).is_some_and(|p| p >= Permission::ReadOnly),
    }
}

/// Whether a token may read private packages wherever their owners are its account's (no token:
/// yes). A token limited to some packages may not (searching would list the others), nor one
/// whose blanket permission is `no-access`.
pub fn reads_private_everywhere(token: Option<&Token>) -> bool {
    match token {
        None => true,
        Some(t) if !has_grants(t) => true,
        Some(t) => {
            !is_limited(t) && given(t.grants.packages_and_scopes_permission) >= Permission::ReadOnly
        }
    }
}

/// Whether a granular token can write anything at all (else it is treated as read-only).
pub fn can_write_somewhere(g: &TokenGrants) -> bool {
    let package_selection = !g.packages.is_empty() || !g.scopes.is_empty() || g.packages_all;
    let unrestricted = !package_selection && g.orgs.is_empty();
    let packages_rw = given(g.packages_and_scopes_permission) == Permission::ReadWrite;
    let orgs_rw = given(g.orgs_permission) == Permission::ReadWrite;
    (packages_rw && (package_selection || unrestricted)) || (!g.orgs.is_empty() && orgs_rw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::TokenGrants;

    fn token(grants: TokenGrants) -> Token {
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
            grants,
            expires_at: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn unlimited_tokens_reach_everything() {
        let t = token(TokenGrants::default());
        assert_eq!(reach(Some(&t), Some("x")), Reach::Full);
        assert_eq!(reach(Some(&t), None), Reach::Full);
        assert_eq!(reach(None, None), Reach::Full);
    }

    #[test]
    fn packages_scopes_and_orgs() {
        let t = token(TokenGrants {
            packages: vec!["demo".into()],
            scopes: vec!["@alice".into()],
            orgs: vec!["acme".into()],
            packages_and_scopes_permission: Some(Permission::ReadWrite),
            orgs_permission: Some(Permission::ReadOnly),
            ..Default::default()
        });
        assert_eq!(reach(Some(&t), Some("demo")), Reach::Covered);
        assert_eq!(reach(Some(&t), Some("@alice/x")), Reach::Covered);
        assert_eq!(reach(Some(&t), Some("other")), Reach::Outside);
        assert_eq!(
            reach(Some(&t), Some("@acme/x")),
            Reach::Outside,
            "org access is read-only"
        );
        assert_eq!(
            reach(Some(&t), None),
            Reach::Outside,
            "no account operations"
        );
        assert!(may_read_private(Some(&t), "@acme/x"));
        assert!(may_read_private(Some(&t), "demo"));
        assert!(!may_read_private(Some(&t), "@bob/secret"));
    }

    #[test]
    fn no_access_and_packages_all() {
        let t = token(TokenGrants {
            packages: vec!["demo".into()],
            packages_and_scopes_permission: Some(Permission::NoAccess),
            ..Default::default()
        });
        assert_eq!(reach(Some(&t), Some("demo")), Reach::Outside);
        assert!(!may_read_private(Some(&t), "demo"));
        let all = token(TokenGrants {
            packages_all: true,
            ..Default::default()
        });
        assert_eq!(reach(Some(&all), Some("anything")), Reach::Covered);
        assert_eq!(reach(Some(&all), None), Reach::Outside);
    }

    #[test]
    fn private_packages_in_search() {
        assert!(reads_private_everywhere(None));
        let blanket = |p: &str| {
            token(TokenGrants {
                packages_and_scopes_permission: Permission::parse(p),
                ..Default::default()
            })
        };
        assert!(reads_private_everywhere(Some(&blanket("read-only"))));
        assert!(!reads_private_everywhere(Some(&blanket("no-access"))));
        let limited = token(TokenGrants {
            packages: vec!["demo".into()],
            ..Default::default()
        });
        assert!(!reads_private_everywhere(Some(&limited)));
    }

    #[test]
    fn write_capability() {
        let g = |p: Option<&str>, orgs: &[&str], op: Option<&str>| TokenGrants {
            packages_and_scopes_permission: p.map(|p| Permission::parse(p).unwrap()),
            orgs: orgs.iter().map(|o| o.to_string()).collect(),
            orgs_permission: op.map(|p| Permission::parse(p).unwrap()),
            ..Default::default()
        };
        assert!(can_write_somewhere(&g(None, &[], None)));
        assert!(!can_write_somewhere(&g(Some("read-only"), &[], None)));
        assert!(can_write_somewhere(&g(
            Some("read-only"),
            &["acme"],
            Some("read-write")
        )));
        assert!(
            !can_write_somewhere(&g(None, &["acme"], Some("read-only"))),
            "only a read-only org selected"
        );
    }
}
