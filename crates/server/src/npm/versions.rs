//! Version numbers: SemVer 2.0.0 as npm's `semver` reads them.

use std::cmp::Ordering;

/// Normalises a version as npm's `semver.clean` does (trims, drops a leading `v` or `=`, drops
/// build metadata) and checks it. Returns the clean string.
pub fn clean_version(raw: &str) -> Result<String, String> {
    let t = raw.trim().trim_start_matches(['=', 'v']);
    if t.len() > 256 {
        return Err("Version is longer than 256 characters".into());
    }
    let mut v = semver::Version::parse(t).map_err(|_| format!("Invalid version: {raw:?}"))?;
    v.build = semver::BuildMetadata::EMPTY;
    Ok(v.to_string())
}

/// Orders two version strings by SemVer precedence (invalid ones sort first, by text).
pub fn compare(a: &str, b: &str) -> Ordering {
    match (semver::Version::parse(a), semver::Version::parse(b)) {
        (Ok(x), Ok(y)) => x.cmp_precedence(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Greater,
        (Err(_), Ok(_)) => Ordering::Less,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

/// The highest version of a set, preferring releases over prereleases (npm's pick for a new
/// `latest` after the old one is unpublished).
pub fn highest<'a>(versions: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let all: Vec<&str> = versions.collect();
    let release = all
        .iter()
        .copied()
        .filter(|v| {
            semver::Version::parse(v)
                .map(|p| p.pre.is_empty())
                .unwrap_or(false)
        })
        .max_by(|a, b| compare(a, b));
    release.or_else(|| all.iter().copied().max_by(|a, b| compare(a, b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_npm() {
        assert_eq!(clean_version("1.2.3").unwrap(), "1.2.3");
        assert_eq!(clean_version(" v1.2.3 ").unwrap(), "1.2.3");
        assert_eq!(clean_version("=1.2.3").unwrap(), "1.2.3");
        assert_eq!(clean_version("1.2.3+build.5").unwrap(), "1.2.3");
        assert_eq!(clean_version("1.0.0-beta.2").unwrap(), "1.0.0-beta.2");
        for bad in [
            "", "1", "1.2", "1.2.3.4", "01.2.3", "1.2.3-", "latest", "a.b.c", "1.2.3 4",
        ] {
            assert!(clean_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn orders_by_precedence() {
        let mut v = vec!["1.0.0", "0.9.9", "1.0.0-beta.10", "1.0.0-beta.2"];
        v.sort_by(|a, b| compare(a, b));
        assert_eq!(v, ["0.9.9", "1.0.0-beta.2", "1.0.0-beta.10", "1.0.0"]);
    }

    #[test]
    fn highest_prefers_releases() {
        assert_eq!(highest(["1.0.0", "2.0.0-rc.1"].into_iter()), Some("1.0.0"));
        assert_eq!(highest(["1.0.0-a", "1.0.0-b"].into_iter()), Some("1.0.0-b"));
        assert_eq!(highest(std::iter::empty()), None);
    }
}
