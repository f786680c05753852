//! An upstream packument made ready to serve: checked, filtered by the quarantine, its tarball
//! links pointed at this registry, everything else (`time`, `dist.signatures`,
//! `dist.attestations`, readme, maintainers) kept as the uplink sent it. Pure.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::config::parse_date_ms;
use crate::npm::packument::{
    self, CORGI_FIELDS, Encoded, Rendered, has_install_script, tarball_url,
};
use crate::npm::versions;
use crate::uplinks::quarantine;

/// Where an upstream version's tarball is, and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDist {
    /// The tarball's URL at the uplink.
    pub url: String,
    /// `dist.integrity` (`sha512-…`, possibly several hashes).
    pub integrity: Option<String>,
    /// `dist.shasum` (hex SHA-1).
    pub shasum: Option<String>,
    /// The SHA-512 `integrity` names, decoded once here so that reads compare without
    /// decoding it again.
    sha512: Option<[u8; 64]>,
}

impl UpstreamDist {
    /// The dist of a version whose tarball is at `url`, with its `integrity` and `shasum`.
    pub fn new(url: String, integrity: Option<String>, shasum: Option<String>) -> UpstreamDist {
        let sha512 = integrity.as_deref().and_then(sha512_raw_of_integrity);
        UpstreamDist {
            url,
            integrity,
            shasum,
            sha512,
        }
    }

    /// Whether `sha512_hex` (lower-case hex) is the SHA-512 `integrity` names; `None` when it
    /// names none (or none that can be read).
    pub fn sha512_is(&self, sha512_hex: &str) -> Option<bool> {
        let want = self.sha512.as_ref()?;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let got = sha512_hex.as_bytes();
        Some(
            got.len() == 128
                && want.iter().zip(got.chunks_exact(2)).all(|(b, pair)| {
                    pair[0] == HEX[usize::from(b >> 4)] && pair[1] == HEX[usize::from(b & 15)]
                }),
        )
    }

    /// Whether `integrity` has a `sha512-` entry that cannot be read (a refusal, never a fall
    /// back to SHA-1).
    pub fn sha512_unreadable(&self) -> bool {
        self.sha512.is_none()
            && self
                .integrity
                .as_deref()
                .is_some_and(|i| i.contains("sha512-"))
    }
}

/// A proxied packument ready to serve.
#[derive(Debug)]
pub struct Proxied {
    /// The forms, as for a local package.
    pub rendered: Rendered,
    /// The served versions' tarballs at the uplink.
    pub dists: HashMap<String, UpstreamDist>,
    /// Versions the quarantine keeps out, with the reason.
    pub refused: HashMap<String, String>,
}

/// Why an upstream packument cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unusable {
    /// The package was unpublished upstream (npm keeps a stub with `time.unpublished`): as a
    /// 404.
    Unpublished,
    /// The document is not a packument of this name (nothing of it is kept).
    Bad(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unusable::Unpublished => f.write_str("it was unpublished"),
            Unusable::Bad(why) => f.write_str(why),
        }
    }
}

/// Checks an uplink's packument of `name` and makes it ready to serve at `base`, at `now`.
/// Versions that are not usable (not a version number, no tarball, nothing to check it
/// against) are left out; an error says what is wrong with the document as a whole.
pub fn build(
    name: &str,
    body: &[u8],
    uplink: &str,
    base: &str,
    rules: &quarantine::Rules,
    now: i64,
) -> Result<Proxied, Unusable> {
    let bad = |m: String| Unusable::Bad(m);
    let doc: Value = serde_json::from_slice(body).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Value::Object(mut doc) = doc else {
        return Err(bad("not a JSON object".into()));
    };
    match doc.get("name") {
        Some(Value::String(n)) if n == name => {}
        Some(Value::String(n)) => return Err(bad(format!("it describes {n:?}, not {name:?}"))),
        _ => return Err(bad("it has no name".into())),
    }
    let unpublished = doc.get("time").and_then(|t| t.get("unpublished")).is_some();
    let Some(Value::Object(upstream_versions)) = doc.remove("versions") else {
        if unpublished {
            return Err(Unusable::Unpublished);
        }
        return Err(bad("it has no versions object".into()));
    };
    let times: Map<String, Value> = match doc.remove("time") {
        Some(Value::Object(t)) => t,
        _ => Map::new(),
    };
    let time_ms = |v: &str| times.get(v).and_then(Value::as_str).and_then(parse_date_ms);

    let mut kept = Map::new();
    let mut dists = HashMap::new();
    let mut refused = HashMap::new();
    for (v, manifest) in upstream_versions {
        // a version npm could not install is left out, not the whole package
        let Value::Object(mut m) = manifest else {
            continue;
        };
        if semver::Version::parse(&v).is_err()
            || m.get("version")
                .and_then(Value::as_str)
                .is_some_and(|x| x != v)
        {
            continue;
        }
        let Some(Value::Object(dist)) = m.get_mut("dist") else {
            continue;
        };
        let Some(url) = dist
            .get("tarball")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            continue;
        };
        let integrity = dist
            .get("integrity")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let shasum = dist
            .get("shasum")
            .and_then(Value::as_str)
            .map(str::to_owned);
        if integrity.is_none() && shasum.is_none() {
            continue;
        }
        if let Some(why) = rules.refuses(name, &v, time_ms(&v), now) {
            refused.insert(v, why);
            continue;
        }
        dist.insert("tarball".into(), Value::String(tarball_url(base, name, &v)));
        packument::drop_private_fields(&mut m);
        m.insert("name".into(), Value::String(name.to_owned()));
        m.insert("version".into(), Value::String(v.clone()));
        dists.insert(v.clone(), UpstreamDist::new(url, integrity, shasum));
        kept.insert(v, Value::Object(m));
    }

    // tags on versions kept out move back to the highest kept version below them
    let mut dist_tags = HashMap::new();
    if let Some(Value::Object(tags)) = doc.get("dist-tags") {
        for (tag, v) in tags {
            let Some(v) = v.as_str() else { continue };
            let target = if kept.contains_key(v) {
                Some(v.to_owned())
            } else if refused.contains_key(v) {
                // the highest kept version below it, a release if there is one
                // (`versions::highest` prefers releases)
                versions::highest(
                    kept.keys()
                        .map(String::as_str)
                        .filter(|k| versions::compare(k, v).is_lt()),
                )
                .map(str::to_owned)
            } else {
                None
            };
            if let Some(t) = target {
                dist_tags.insert(tag.clone(), t);
            }
        }
    }
    let tags_json: Map<String, Value> = {
        let mut t: Vec<_> = dist_tags.iter().collect();
        t.sort();
        t.into_iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    };

    let mut time = Map::new();
    for (k, t) in &times {
        if k == "created" || k == "modified" || kept.contains_key(k) {
            time.insert(k.clone(), t.clone());
        }
    }
    let modified = times
        .get("modified")
        .cloned()
        .unwrap_or_else(|| Value::String(crate::clock::iso8601(now)));

    let mut corgi_versions = Map::new();
    let mut version_docs = HashMap::new();
    for (v, m) in &kept {
        let Value::Object(m) = m else { continue };
        let mut corgi = Map::new();
        for f in CORGI_FIELDS {
            if let Some(x) = m.get(*f) {
                corgi.insert((*f).into(), x.clone());
            }
        }
        if !corgi.contains_key("hasInstallScript") && has_install_script(m) {
            corgi.insert("hasInstallScript".into(), Value::Bool(true));
        }
        for f in ["dist", "deprecated"] {
            if let Some(x) = m.get(f) {
                corgi.insert(f.into(), x.clone());
            }
        }
        corgi_versions.insert(v.clone(), Value::Object(corgi));
        version_docs.insert(
            v.clone(),
            Bytes::from(serde_json::to_vec(m).unwrap_or_default()),
        );
    }

    doc.remove("_attachments");
    doc.insert("dist-tags".into(), Value::Object(tags_json.clone()));
    doc.insert("versions".into(), Value::Object(kept));
    doc.insert("time".into(), Value::Object(time));
    let full = serde_json::to_vec(&Value::Object(doc)).map_err(|e| bad(e.to_string()))?;
    let mut abbreviated = Map::new();
    abbreviated.insert("name".into(), Value::String(name.to_owned()));
    abbreviated.insert("modified".into(), modified);
    abbreviated.insert("dist-tags".into(), Value::Object(tags_json));
    abbreviated.insert("versions".into(), Value::Object(corgi_versions));
    let abbreviated =
        serde_json::to_vec(&Value::Object(abbreviated)).map_err(|e| bad(e.to_string()))?;

    let (full_tag, corgi_tag) = (etag(&full, 'f'), etag(&abbreviated, 'a'));
    Ok(Proxied {
        rendered: packument::prebuilt(
            base,
            uplink,
            dist_tags,
            Encoded::new(full, full_tag),
            Encoded::new(abbreviated, corgi_tag),
            version_docs,
        ),
        dists,
        refused,
    })
}

/// An ETag naming the bytes served (the base URL and the quarantine are in them).
fn etag(body: &[u8], form: char) -> String {
    let d = Sha256::digest(body);
    format!("\"up-{}-{form}\"", data_encoding::HEXLOWER.encode(&d[..12]))
}

/// The hex SHA-512 an integrity string asks for, if it names one (`sha512-<base64>`; of
/// several hashes, the SHA-512 one).
pub fn sha512_of_integrity(integrity: &str) -> Option<String> {
    sha512_raw_of_integrity(integrity).map(|raw| data_encoding::HEXLOWER.encode(&raw))
}

/// The first readable SHA-512 of an SRI `integrity` string, as bytes.
fn sha512_raw_of_integrity(integrity: &str) -> Option<[u8; 64]> {
    integrity.split_whitespace().find_map(|h| {
        let b64 = h.strip_prefix("sha512-")?;
        let b64 = b64.split('?').next()?;
        let raw = data_encoding::BASE64.decode(b64.as_bytes()).ok()?;
        raw.try_into().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Span;
    use crate::uplinks::settings::Quarantine;
    use serde_json::json;

    fn upstream() -> Vec<u8> {
        serde_json::to_vec(&json!({
            "_id": "left-pad",
            "_rev": "12-abc",
            "name": "left-pad",
            "description": "pads",
            "readme": "# left-pad",
            "maintainers": [{"name": "someone", "email": "s@example.com"}],
            "dist-tags": {"latest": "1.3.0", "next": "2.0.0-rc.1"},
            "time": {
                "created": "2016-03-01T00:00:00.000Z",
                "modified": "2026-12-01T00:00:00.000Z",
                "1.2.0": "2018-01-01T00:00:00.000Z",
                "1.3.0": "2026-12-03T00:00:00.000Z",
                "2.0.0-rc.1": "2026-12-03T12:00:00.000Z"
            },
            "versions": {
                "1.2.0": {"name": "left-pad", "version": "1.2.0", "dependencies": {},
                    "scripts": {"postinstall": "node x"},
                    "dist": {"tarball": "https://registry.example/left-pad/-/left-pad-1.2.0.tgz",
                             "integrity": "sha512-AAAA", "shasum": "ab",
                             "signatures": [{"keyid": "SHA256:x", "sig": "MEUC"}],
                             "attestations": {"url": "https://registry.example/att", "provenance": {}}}},
                "1.3.0": {"name": "left-pad", "version": "1.3.0",
                    "dist": {"tarball": "https://registry.example/left-pad/-/left-pad-1.3.0.tgz",
                             "integrity": "sha512-BBBB"}},
                "2.0.0-rc.1": {"name": "left-pad", "version": "2.0.0-rc.1",
                    "dist": {"tarball": "https://registry.example/left-pad/-/left-pad-2.0.0-rc.1.tgz",
                             "shasum": "cd"}}
            },
            "_attachments": {}
        }))
        .unwrap()
    }

    fn now() -> i64 {
        parse_date_ms("2026-12-04T00:00:00Z").unwrap()
    }

    fn json_of(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn links_point_here_and_time_and_signatures_are_kept() {
        let p = build(
            "left-pad",
            &upstream(),
            "npmjs",
            "http://tessera.test",
            &Default::default(),
            now(),
        )
        .unwrap();
        let full = json_of(&p.rendered.full().unwrap().body);
        let v = &full["versions"]["1.2.0"];
        assert_eq!(
            v["dist"]["tarball"],
            "http://tessera.test/left-pad/-/left-pad-1.2.0.tgz"
        );
        assert_eq!(v["dist"]["signatures"][0]["keyid"], "SHA256:x");
        assert_eq!(
            v["dist"]["attestations"]["url"],
            "https://registry.example/att"
        );
        assert_eq!(full["time"]["1.2.0"], "2018-01-01T00:00:00.000Z");
        assert_eq!(full["time"]["created"], "2016-03-01T00:00:00.000Z");
        assert_eq!(full["readme"], "# left-pad");
        assert!(full.get("_attachments").is_none());
        let corgi = json_of(&p.rendered.abbreviated().unwrap().body);
        assert_eq!(corgi["modified"], "2026-12-01T00:00:00.000Z");
        assert_eq!(corgi["versions"]["1.2.0"]["hasInstallScript"], true);
        assert_eq!(
            corgi["versions"]["1.2.0"]["dist"]["signatures"][0]["sig"],
            "MEUC"
        );
        assert!(corgi["versions"]["1.2.0"].get("scripts").is_none());
        assert_eq!(
            p.dists["1.3.0"].url,
            "https://registry.example/left-pad/-/left-pad-1.3.0.tgz"
        );
        assert_eq!(p.rendered.upstream.as_deref(), Some("npmjs"));
        assert!(p.rendered.version_doc("2.0.0-rc.1").is_some());
    }

    #[test]
    fn quarantined_versions_go_and_their_tags_move_back() {
        let rules = quarantine::Rules::parse(&Quarantine {
            min_age: Some(Span::days(3)),
            ..Default::default()
        })
        .unwrap();
        let p = build("left-pad", &upstream(), "npmjs", "http://t", &rules, now()).unwrap();
        let full = json_of(&p.rendered.full().unwrap().body);
        assert_eq!(full["dist-tags"]["latest"], "1.2.0");
        assert_eq!(full["dist-tags"]["next"], "1.2.0");
        assert!(full["versions"].get("1.3.0").is_none());
        assert!(full["time"].get("1.3.0").is_none());
        assert!(p.refused["1.3.0"].contains("younger"));
        assert!(!p.dists.contains_key("1.3.0"));
    }

    #[test]
    fn garbage_is_refused_with_a_reason_and_bad_versions_are_left_out() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"<html>".to_vec(), "not JSON"),
            (b"[1]".to_vec(), "not a JSON object"),
            (br#"{"name":"other","versions":{}}"#.to_vec(), "describes"),
            (br#"{"versions":{}}"#.to_vec(), "no name"),
            (br#"{"name":"left-pad"}"#.to_vec(), "no versions"),
        ];
        for (body, want) in cases {
            let e = build("left-pad", &body, "u", "http://t", &Default::default(), 0).unwrap_err();
            assert!(e.to_string().contains(want), "{e} should say {want}");
        }
        let gone = br#"{"name":"left-pad","time":{"unpublished":{"time":"2026-01-01T00:00:00Z"}}}"#;
        assert_eq!(
            build("left-pad", gone, "u", "http://t", &Default::default(), 0).unwrap_err(),
            Unusable::Unpublished
        );
        let mixed = br#"{"name":"left-pad","dist-tags":{"latest":"1.0.0"},"versions":{
            "1.0.0":{"dist":{"tarball":"x","shasum":"a"}},
            "1.0.1":{"dist":{}},
            "1.0.2":{"dist":{"tarball":"x"}},
            "nope":{"dist":{"tarball":"x","shasum":"a"}},
            "1.0.3":"text",
            "1.0.4":{"version":"9.9.9","dist":{"tarball":"x","shasum":"a"}}}}"#;
        let p = build("left-pad", mixed, "u", "http://t", &Default::default(), 0).unwrap();
        let mut kept: Vec<&String> = p.dists.keys().collect();
        kept.sort();
        assert_eq!(kept, vec!["1.0.0"]);
    }

    #[test]
    fn a_refused_latest_moves_back_to_a_release_not_a_prerelease() {
        let body = br#"{"name":"a","dist-tags":{"latest":"2.0.0"},"versions":{
            "1.0.0":{"dist":{"tarball":"x","shasum":"a"}},
            "2.0.0-rc.1":{"dist":{"tarball":"x","shasum":"a"}},
            "2.0.0":{"dist":{"tarball":"x","shasum":"a"}}}}"#;
        let rules = quarantine::Rules::parse(&Quarantine {
            deny: vec!["a@2.0.0".into()],
            ..Default::default()
        })
        .unwrap();
        let p = build("a", body, "u", "http://t", &rules, 0).unwrap();
        assert_eq!(p.rendered.dist_tags["latest"], "1.0.0");
    }

    #[test]
    fn integrity_strings_give_their_sha512() {
        let raw = [7u8; 64];
        let b64 = data_encoding::BASE64.encode(&raw);
        let hex = data_encoding::HEXLOWER.encode(&raw);
        assert_eq!(
            sha512_of_integrity(&format!("sha512-{b64}")),
            Some(hex.clone())
        );
        assert_eq!(
            sha512_of_integrity(&format!("sha1-AAAA sha512-{b64}")),
            Some(hex)
        );
        assert_eq!(sha512_of_integrity("sha1-AAAA"), None);
        assert_eq!(sha512_of_integrity("sha512-short"), None);
    }

    #[test]
    fn a_dist_compares_hex_digests_with_the_sha512_it_names() {
        let raw: Vec<u8> = (0u8..64).map(|i| i.wrapping_mul(37)).collect();
        let b64 = data_encoding::BASE64.encode(&raw);
        let hex = data_encoding::HEXLOWER.encode(&raw);
        let d = |i: &str| UpstreamDist::new("u".into(), Some(i.into()), None);
        let named = d(&format!("sha1-AAAA sha512-{b64}"));
        assert_eq!(named.sha512_is(&hex), Some(true));
        assert!(!named.sha512_unreadable());
        // any other digest, a prefix, a longer string, upper case: not the one named
        let mut other = hex.clone().into_bytes();
        other[127] = if other[127] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            named.sha512_is(std::str::from_utf8(&other).unwrap()),
            Some(false)
        );
        assert_eq!(named.sha512_is(&hex[..126]), Some(false));
        assert_eq!(named.sha512_is(&format!("{hex}00")), Some(false));
        assert_eq!(named.sha512_is(&hex.to_uppercase()), Some(false));
        assert_eq!(named.sha512_is(""), Some(false));
        // no SHA-512, or one that cannot be read: nothing to compare, and the latter says so
        assert_eq!(d("sha1-AAAA").sha512_is(&hex), None);
        assert!(!d("sha1-AAAA").sha512_unreadable());
        let short = d("sha512-short");
        assert_eq!(short.sha512_is(&hex), None);
        assert!(short.sha512_unreadable());
        let none = UpstreamDist::new("u".into(), None, Some("ab".into()));
        assert_eq!(none.sha512_is(&hex), None);
        assert!(!none.sha512_unreadable());
    }
}
