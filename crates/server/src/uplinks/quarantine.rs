//! Quarantine: upstream versions kept out of a rule's packuments and tarballs (too young,
//! denied by name and range, or published after a freeze date). Pure.

use nodejs_semver::{Range, Version};

use crate::config::parse_date_ms;
use crate::uplinks::settings::Quarantine;

/// A rule's quarantine, parsed.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    min_age_ms: Option<i64>,
    deny: Vec<(String, Option<Range>)>,
    freeze_ms: Option<i64>,
}

impl Rules {
    /// Parses the configuration.
    pub fn parse(q: &Quarantine) -> Result<Rules, String> {
        let deny = q
            .deny
            .iter()
            .map(|entry| parse_deny(entry))
            .collect::<Result<_, _>>()?;
        let freeze_ms = match &q.freeze {
            None => None,
            Some(d) => Some(parse_date_ms(d).ok_or_else(|| {
                format!("quarantine.freeze must be a date like 2026-11-01, not {d:?}")
            })?),
        };
        Ok(Rules {
            min_age_ms: q.min_age.map(|s| s.as_ms()),
            deny,
            freeze_ms,
        })
    }

    /// Whether the rule keeps nothing out.
    pub fn is_empty(&self) -> bool {
        self.min_age_ms.is_none() && self.deny.is_empty() && self.freeze_ms.is_none()
    }

    /// Why `name@version`, published at `published` (Unix ms, if the uplink said), is kept out
    /// at `now`; `None` if it is served.
    pub fn refuses(
        &self,
        name: &str,
        version: &str,
        published: Option<i64>,
        now: i64,
    ) -> Option<String> {
        for (n, range) in &self.deny {
            if n != name {
                continue;
            }
            match range {
                None => return Some(format!("{name} is on the deny list")),
                Some(r) => {
                    let hit = Version::parse(version)
                        .map(|v| v.satisfies_with_prerelease(r, true))
                        // a version npm cannot parse is not served from a denied name
                        .unwrap_or(true);
                    if hit {
                        return Some(format!("{name}@{version} is on the deny list ({r})"));
                    }
                }
            }
        }
        if let Some(freeze) = self.freeze_ms {
            match published {
                Some(t) if t <= freeze => {}
                Some(_) => {
                    return Some(format!(
                        "{name}@{version} was published after the freeze date"
                    ));
                }
                None => {
                    return Some(format!(
                        "{name}@{version} has no publish time to check against the freeze date"
                    ));
                }
            }
        }
        if let Some(min) = self.min_age_ms {
            match published {
                Some(t) if now.saturating_sub(t) >= min => {}
                Some(_) => {
                    return Some(format!(
                        "{name}@{version} is younger than the quarantine's minimum age"
                    ));
                }
                None => {
                    return Some(format!(
                        "{name}@{version} has no publish time to check its age"
                    ));
                }
            }
        }
        None
    }
}

/// `name@range`, `@scope/name@range`, or a bare name (every version).
fn parse_deny(entry: &str) -> Result<(String, Option<Range>), String> {
    let entry = entry.trim();
    let at = entry
        .char_indices()
        .skip(1)
        .find(|(_, c)| *c == '@')
        .map(|(i, _)| i);
    let (name, range) = match at {
        Some(i) => (&entry[..i], Some(&entry[i + 1..])),
        None => (entry, None),
    };
    if crate::npm::names::validate_package_name(name).is_err() {
        return Err(format!("quarantine.deny: {entry:?} is not name@range"));
    }
    let range = match range {
        None => None,
        Some(r) => Some(
            Range::parse(r)
                .map_err(|e| format!("quarantine.deny: {entry:?} has no valid npm range ({e})"))?,
        ),
    };
    Ok((name.to_owned(), range))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Span;

    const DAY: i64 = 86_400_000;

    fn rules(min_age: Option<u64>, deny: &[&str], freeze: Option<&str>) -> Rules {
        Rules::parse(&Quarantine {
            min_age: min_age.map(Span::days),
            deny: deny.iter().map(|s| s.to_string()).collect(),
            freeze: freeze.map(str::to_owned),
        })
        .unwrap()
    }

    #[test]
    fn deny_lists_take_names_and_npm_ranges() {
        let r = rules(
            None,
            &[
                "event-stream@3.3.6",
                "ua-parser-js@>=0.7.29 <0.7.30 || 1.0.0",
                "@evil/pkg",
                "colors@^1.4.1",
            ],
            None,
        );
        assert!(r.refuses("event-stream", "3.3.6", None, 0).is_some());
        assert!(r.refuses("event-stream", "3.3.5", None, 0).is_none());
        assert!(r.refuses("ua-parser-js", "0.7.29", None, 0).is_some());
        assert!(r.refuses("ua-parser-js", "1.0.0", None, 0).is_some());
        assert!(r.refuses("ua-parser-js", "0.7.30", None, 0).is_none());
        assert!(r.refuses("@evil/pkg", "9.9.9", None, 0).is_some());
        assert!(r.refuses("colors", "1.4.2-beta.0", None, 0).is_some());
        assert!(r.refuses("colors", "1.4.0", None, 0).is_none());
        assert!(r.refuses("other", "1.0.0", None, 0).is_none());
        assert!(rules(None, &[], None).is_empty());
        for bad in ["x@not a range!", "@", "a b@1"] {
            let q = Quarantine {
                deny: vec![bad.into()],
                ..Default::default()
            };
            assert!(Rules::parse(&q).is_err(), "{bad}");
        }
    }

    #[test]
    fn age_and_freeze_need_a_publish_time() {
        let now = 100 * DAY;
        let r = rules(Some(3), &[], None);
        assert!(r.refuses("a", "1.0.0", Some(now - 2 * DAY), now).is_some());
        assert!(r.refuses("a", "1.0.0", Some(now - 3 * DAY), now).is_none());
        assert!(r.refuses("a", "1.0.0", None, now).is_some());
        let f = rules(None, &[], Some("2026-11-01"));
        let freeze = parse_date_ms("2026-11-01").unwrap();
        assert!(f.refuses("a", "1.0.0", Some(freeze), now).is_none());
        assert!(f.refuses("a", "1.0.0", Some(freeze + 1), now).is_some());
        assert!(f.refuses("a", "1.0.0", None, now).is_some());
        let q = Quarantine {
            freeze: Some("yesterday".into()),
            ..Default::default()
        };
        assert!(Rules::parse(&q).is_err());
    }
}
