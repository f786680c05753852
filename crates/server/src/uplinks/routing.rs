//! Which uplinks a package name is proxied to: `[[packages]]` rules, first match wins.

use crate::uplinks::quarantine;
use crate::uplinks::settings::{MergeMode, PackageRule};

/// A glob over package names: `*` is any run of characters but `/`, `**` any run at all, `?`
/// one character but `/`; everything else is literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<Token>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    One,
    Segment,
    Any,
}

impl Pattern {
    /// Parses a pattern.
    pub fn parse(text: &str) -> Result<Pattern, String> {
        if text.is_empty() || text.len() > 214 || text.chars().any(char::is_whitespace) {
            return Err(format!("{text:?} is not a package-name pattern"));
        }
        let mut parts = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            parts.push(match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    Token::Any
                }
                '*' => Token::Segment,
                '?' => Token::One,
                c => Token::Literal(c),
            });
        }
        Ok(Pattern {
            text: text.to_owned(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether some name in `scope` (`@acme`) might match (conservative: a pattern that can
    /// match a name with a `/` and whose literal start agrees with `@acme/`).
    pub fn could_match_scope(&self, scope: &str) -> bool {
        let crosses_slash = self
            .parts
            .iter()
            .any(|t| matches!(t, Token::Any | Token::Literal('/')));
        if !crosses_slash {
            return false;
        }
        let prefix = format!("{scope}/");
        self.parts
            .iter()
            .map_while(|t| match t {
                Token::Literal(c) => Some(*c),
                _ => None,
            })
            .zip(prefix.chars())
            .all(|(a, b)| a == b)
    }

    /// Whether `name` matches: one pass over the name per token (linear in each).
    pub fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        // which positions in `name` can be reached after each token
        let mut at = vec![false; name.len() + 1];
        at[0] = true;
        for t in &self.parts {
            let mut next = vec![false; name.len() + 1];
            match t {
                Token::Literal(c) => {
                    for i in 0..name.len() {
                        next[i + 1] = at[i] && name[i] == *c;
                    }
                }
                Token::One => {
                    for i in 0..name.len() {
                        next[i + 1] = at[i] && name[i] != '/';
                    }
                }
                Token::Segment => {
                    let mut open = false;
                    for j in 0..=name.len() {
                        open |= at[j];
                        next[j] = open;
                        if j < name.len() && name[j] == '/' {
                            open = false;
                        }
                    }
                }
                Token::Any => {
                    let mut open = false;
                    for j in 0..=name.len() {
                        open |= at[j];
                        next[j] = open;
                    }
                }
            }
            at = next;
        }
        at[name.len()]
    }
}

/// Where the names of one rule come from.
#[derive(Debug, Clone)]
pub struct Route {
    /// The rule's pattern.
    pub pattern: Pattern,
    /// The uplinks to ask, in order, by index into the configured uplinks.
    pub proxy: Vec<usize>,
    /// How local and upstream versions combine.
    pub mode: MergeMode,
    /// Upstream versions kept out.
    pub quarantine: quarantine::Rules,
}

/// The rules, in order.
#[derive(Debug, Clone, Default)]
pub struct Routes {
    routes: Vec<Route>,
}

impl Routes {
    /// Builds the routes from validated configuration. With uplinks but no rules, every name
    /// is proxied to every uplink in order.
    pub fn new(uplinks: &[String], rules: &[PackageRule]) -> Result<Routes, String> {
        let mut routes = Vec::new();
        if rules.is_empty() && !uplinks.is_empty() {
            routes.push(Route {
                pattern: Pattern::parse("**")?,
                proxy: (0..uplinks.len()).collect(),
                mode: MergeMode::default(),
                quarantine: quarantine::Rules::default(),
            });
        }
        for r in rules {
            let proxy = r
                .proxy
                .iter()
                .map(|p| {
                    uplinks
                        .iter()
                        .position(|u| u == p)
                        .ok_or_else(|| format!("{p:?} is not an uplink"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            routes.push(Route {
                pattern: Pattern::parse(&r.pattern)?,
                proxy,
                mode: r.mode,
                quarantine: quarantine::Rules::parse(&r.quarantine)?,
            });
        }
        Ok(Routes { routes })
    }

    /// The first rule matching `name`, if it proxies anywhere.
    pub fn proxied(&self, name: &str) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.pattern.matches(name))
            .filter(|r| !r.proxy.is_empty())
    }

    /// Whether some rule proxies some name of `scope` (so that a first local package there
    /// would take those names from the uplinks).
    pub fn proxies_scope(&self, scope: &str) -> bool {
        let whole = [
            "**".to_string(),
            "@*/*".into(),
            "@*/**".into(),
            format!("{scope}/*"),
            format!("{scope}/**"),
        ];
        for r in &self.routes {
            // a rule matching every name of the scope decides for the rest
            // (a merge rule: its names take from the uplinks whatever is local)
            let merges = r.mode == MergeMode::Merge;
            if whole.iter().any(|w| w == r.pattern.as_str()) {
                return !r.proxy.is_empty() && !merges;
            }
            if !r.proxy.is_empty() && !merges && r.pattern.could_match_scope(scope) {
                return true;
            }
        }
        false
    }

    /// Whether some rule proxies to uplink `i`.
    pub fn proxies_to(&self, i: usize) -> bool {
        self.routes.iter().any(|r| r.proxy.contains(&i))
    }

    /// Whether any rule proxies anywhere.
    pub fn any(&self) -> bool {
        self.routes.iter().any(|r| !r.proxy.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, name: &str) -> bool {
        Pattern::parse(p).unwrap().matches(name)
    }

    #[test]
    fn globs_match_as_verdaccio_users_expect() {
        assert!(m("**", "lodash"));
        assert!(m("**", "@acme/ui"));
        assert!(m("*", "lodash"));
        assert!(!m("*", "@acme/ui"));
        assert!(m("@*/*", "@acme/ui"));
        assert!(!m("@*/*", "lodash"));
        assert!(m("@acme/*", "@acme/ui"));
        assert!(!m("@acme/*", "@acme2/ui"));
        assert!(!m("@acme/*", "@acme"));
        assert!(m("react-*", "react-dom"));
        assert!(!m("react-*", "react"));
        assert!(m("lodash", "lodash"));
        assert!(!m("lodash", "lodash.merge"));
        assert!(m("lodash?merge", "lodash.merge"));
        assert!(m("@acme/**", "@acme/a"));
        assert!(m("*-internal", "billing-internal"));
        assert!(!m("*-internal", "@x/billing-internal"));
        assert!(m("a*b*c", "abc"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy"));
    }

    #[test]
    fn which_patterns_could_reach_into_a_scope() {
        let c = |p: &str, s: &str| Pattern::parse(p).unwrap().could_match_scope(s);
        assert!(c("**", "@types"));
        assert!(c("@*/*", "@types"));
        assert!(c("@types/*", "@types"));
        assert!(c("@types/acme-*", "@types"));
        assert!(c("@t**", "@types"));
        assert!(!c("@acme/*", "@types"));
        assert!(!c("*", "@types"));
        assert!(!c("lodash", "@types"));
        assert!(!c("react-*", "@types"));
        assert!(!c("@typesx/*", "@types"));
    }

    #[test]
    fn a_scope_is_proxied_unless_a_local_rule_covers_it_first() {
        let uplinks = vec!["npmjs".to_string()];
        let r = Routes::new(&uplinks, &[rule("@acme/*", &[]), rule("**", &["npmjs"])]).unwrap();
        assert!(!r.proxies_scope("@acme"));
        assert!(r.proxies_scope("@types"));
        let r = Routes::new(
            &uplinks,
            &[rule("@types/acme-*", &[]), rule("**", &["npmjs"])],
        )
        .unwrap();
        assert!(r.proxies_scope("@types"));
        let r = Routes::new(
            &uplinks,
            &[rule("@types/node", &["npmjs"]), rule("**", &[])],
        )
        .unwrap();
        assert!(r.proxies_scope("@types"));
        assert!(!r.proxies_scope("@acme"));
        let r = Routes::new(&uplinks, &[rule("*", &["npmjs"])]).unwrap();
        assert!(!r.proxies_scope("@acme"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("a b").is_err());
        assert!(Pattern::parse(&"a".repeat(215)).is_err());
    }

    fn rule(p: &str, proxy: &[&str]) -> PackageRule {
        PackageRule {
            pattern: p.into(),
            proxy: proxy.iter().map(|s| s.to_string()).collect(),
            mode: MergeMode::default(),
            quarantine: Default::default(),
        }
    }

    #[test]
    fn the_first_matching_rule_wins_and_a_rule_without_proxy_is_local() {
        let uplinks = vec!["npmjs".to_string(), "mirror".to_string()];
        let r = Routes::new(
            &uplinks,
            &[
                rule("@acme/*", &[]),
                rule("@*/*", &["mirror"]),
                rule("**", &["npmjs", "mirror"]),
            ],
        )
        .unwrap();
        assert!(r.proxied("@acme/ui").is_none());
        assert_eq!(r.proxied("@types/node").unwrap().proxy, vec![1]);
        assert_eq!(r.proxied("react").unwrap().proxy, vec![0, 1]);
        // no rules: everything to every uplink; no uplinks: nothing proxied
        let all = Routes::new(&uplinks, &[]).unwrap();
        assert_eq!(all.proxied("@acme/ui").unwrap().proxy, vec![0, 1]);
        assert!(!Routes::new(&[], &[]).unwrap().any());
        assert!(Routes::new(&uplinks, &[rule("**", &["nope"])]).is_err());
    }
}
