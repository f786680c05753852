//! `mode = "merge"`: a local package and an uplink's package of the same name served as one.
//! Pure.
//!
//! Local versions win, and so do local dist-tags; the uplink adds the versions whose numbers
//! were never used here (not published, unpublished or staged) and the tags the local package
//! does not have, when they point at a version served. Everything else in the document (readme,
//! maintainers, description, `_rev`) is the local package's.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::npm::packument::{self, Encoded, Rendered};

/// The merged rendering of `local` (every form made) and `upstream` (a proxied rendering from
/// `uplink`), leaving out the upstream versions numbered as one of `held`.
pub fn merge(
    local: &Rendered,
    upstream: &Rendered,
    held: &[String],
    uplink: &str,
) -> Result<Rendered, String> {
    let (Some(lf), Some(la), Some(ld)) = (local.full(), local.abbreviated(), local.version_docs())
    else {
        return Err("the local rendering is not complete".into());
    };
    let (Some(uf), Some(ua), Some(ud)) = (
        upstream.full(),
        upstream.abbreviated(),
        upstream.version_docs(),
    ) else {
        return Err("the upstream rendering is not complete".into());
    };
    // the upstream versions served: numbers never used here
    let added: HashSet<&str> = ud
        .keys()
        .map(String::as_str)
        .filter(|v| !ld.contains_key(*v) && !held.iter().any(|h| h == v))
        .collect();

    let mut dist_tags = local.dist_tags.clone();
    for (tag, v) in &upstream.dist_tags {
        if !dist_tags.contains_key(tag) && added.contains(v.as_str()) {
            dist_tags.insert(tag.clone(), v.clone());
        }
    }
    let tags_json = {
        let mut t: Vec<_> = dist_tags.iter().collect();
        t.sort();
        Value::Object(
            t.into_iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
        )
    };

    let full = {
        let mut doc = object(&lf.body, "local")?;
        let up = object(&uf.body, "upstream")?;
        add_versions(&mut doc, &up, &added);
        let mut time = take_object(&mut doc, "time");
        if let Some(Value::Object(t)) = up.get("time") {
            for v in &added {
                if let Some(at) = t.get(*v) {
                    time.insert((*v).to_owned(), at.clone());
                }
            }
            if let Some(m) = later(time.get("modified"), t.get("modified")) {
                time.insert("modified".into(), m);
            }
        }
        doc.insert("time".into(), Value::Object(time));
        doc.insert("dist-tags".into(), tags_json.clone());
        serde_json::to_vec(&Value::Object(doc)).map_err(|e| e.to_string())?
    };
    let abbreviated = {
        let mut doc = object(&la.body, "local")?;
        let up = object(&ua.body, "upstream")?;
        add_versions(&mut doc, &up, &added);
        if let Some(m) = later(doc.get("modified"), up.get("modified")) {
            doc.insert("modified".into(), m);
        }
        doc.insert("dist-tags".into(), tags_json);
        serde_json::to_vec(&Value::Object(doc)).map_err(|e| e.to_string())?
    };
    let mut version_docs: HashMap<String, Bytes> = ld.clone();
    for v in &added {
        if let Some(d) = ud.get(*v) {
            version_docs.insert((*v).to_owned(), d.clone());
        }
    }

    let (full_tag, corgi_tag) = (etag(&full, 'f'), etag(&abbreviated, 'a'));
    let mut r = packument::prebuilt(
        &local.base,
        uplink,
        dist_tags,
        Encoded::new(full, full_tag),
        Encoded::new(abbreviated, corgi_tag),
        version_docs,
    );
    r.package_id = local.package_id;
    r.rev = local.rev;
    r.access = local.access;
    r.maintainer_ids = local.maintainer_ids.clone();
    r.tarballs = local.tarballs.clone();
    Ok(r)
}

fn object(body: &[u8], which: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(format!("the {which} packument is not a JSON object")),
    }
}

fn take_object(doc: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match doc.remove(key) {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// Puts the `added` versions of `up` into `doc`'s versions.
fn add_versions(doc: &mut Map<String, Value>, up: &Map<String, Value>, added: &HashSet<&str>) {
    let mut versions = take_object(doc, "versions");
    if let Some(Value::Object(uv)) = up.get("versions") {
        for (v, m) in uv {
            if added.contains(v.as_str()) {
                versions.insert(v.clone(), m.clone());
            }
        }
    }
    doc.insert("versions".into(), Value::Object(versions));
}

/// The later of two ISO 8601 timestamps (both in UTC, as registries write them).
fn later(a: Option<&Value>, b: Option<&Value>) -> Option<Value> {
    match (a.and_then(Value::as_str), b.and_then(Value::as_str)) {
        (Some(x), Some(y)) => Some(Value::String(x.max(y).to_owned())),
        (Some(x), None) | (None, Some(x)) => Some(Value::String(x.to_owned())),
        (None, None) => None,
    }
}

/// An ETag naming the merged bytes.
fn etag(body: &[u8], form: char) -> String {
    let d = Sha256::digest(body);
    format!("\"mg-{}-{form}\"", data_encoding::HEXLOWER.encode(&d[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::npm::packument::TarballRef;
    use serde_json::json;

    fn rendering(doc: Value, tags: &[(&str, &str)]) -> Rendered {
        let abbreviated = json!({
            "name": doc["name"],
            "modified": doc["time"]["modified"],
            "dist-tags": doc["dist-tags"],
            "versions": doc["versions"],
        });
        let docs = doc["versions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(v, m)| (v.clone(), Bytes::from(serde_json::to_vec(m).unwrap())))
            .collect();
        packument::prebuilt(
            "http://reg",
            "up",
            tags.iter()
                .map(|(t, v)| ((*t).to_owned(), (*v).to_owned()))
                .collect(),
            Encoded::new(serde_json::to_vec(&doc).unwrap(), "\"f\"".into()),
            Encoded::new(serde_json::to_vec(&abbreviated).unwrap(), "\"a\"".into()),
            docs,
        )
    }

    fn local() -> Rendered {
        let mut r = rendering(
            json!({
                "name": "left-pad", "readme": "our fork", "_rev": "3-abc",
                "dist-tags": {"latest": "1.3.1-acme.1"},
                "time": {"created": "2026-01-01T00:00:00.000Z", "modified": "2026-02-01T00:00:00.000Z",
                         "1.0.0": "2026-01-01T00:00:00.000Z", "1.3.1-acme.1": "2026-02-01T00:00:00.000Z"},
                "versions": {
                    "1.0.0": {"name": "left-pad", "version": "1.0.0", "description": "ours"},
                    "1.3.1-acme.1": {"name": "left-pad", "version": "1.3.1-acme.1"}
                }
            }),
            &[("latest", "1.3.1-acme.1")],
        );
        r.package_id = 7;
        r.rev = 3;
        r.tarballs = ["1.0.0", "1.3.1-acme.1"]
            .iter()
            .map(|v| {
                (
                    (*v).to_owned(),
                    TarballRef {
                        sha512: format!("sha-{v}"),
                        size: 1,
                    },
                )
            })
            .collect();
        r
    }

    fn upstream() -> Rendered {
        rendering(
            json!({
                "name": "left-pad", "readme": "public",
                "dist-tags": {"latest": "1.3.0", "next": "2.0.0-rc.1", "old": "1.2.0", "first": "1.0.0"},
                "time": {"created": "2016-01-01T00:00:00.000Z", "modified": "2026-03-01T00:00:00.000Z",
                         "1.0.0": "2016-01-01T00:00:00.000Z", "1.2.0": "2017-01-01T00:00:00.000Z",
                         "1.3.0": "2018-01-01T00:00:00.000Z", "2.0.0-rc.1": "2026-03-01T00:00:00.000Z"},
                "versions": {
                    "1.0.0": {"name": "left-pad", "version": "1.0.0", "description": "theirs"},
                    "1.2.0": {"name": "left-pad", "version": "1.2.0"},
                    "1.3.0": {"name": "left-pad", "version": "1.3.0"},
                    "2.0.0-rc.1": {"name": "left-pad", "version": "2.0.0-rc.1"}
                }
            }),
            &[
                ("latest", "1.3.0"),
                ("next", "2.0.0-rc.1"),
                ("old", "1.2.0"),
                ("first", "1.0.0"),
            ],
        )
    }

    fn json_of(b: &Bytes) -> Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn local_versions_and_tags_win_and_the_uplink_fills_unused_numbers() {
        let m = merge(&local(), &upstream(), &["1.2.0".into()], "npmjs").unwrap();
        let full = json_of(&m.full().unwrap().body);
        let mut versions: Vec<&String> = full["versions"].as_object().unwrap().keys().collect();
        versions.sort();
        // 1.2.0 was unpublished here: its number is not filled from the uplink
        assert_eq!(versions, ["1.0.0", "1.3.0", "1.3.1-acme.1", "2.0.0-rc.1"]);
        assert_eq!(full["versions"]["1.0.0"]["description"], "ours");
        assert_eq!(full["readme"], "our fork");
        assert_eq!(full["_rev"], "3-abc");
        assert_eq!(
            full["dist-tags"],
            json!({"latest": "1.3.1-acme.1", "next": "2.0.0-rc.1"})
        );
        assert_eq!(full["time"]["1.3.0"], "2018-01-01T00:00:00.000Z");
        assert_eq!(full["time"]["1.0.0"], "2026-01-01T00:00:00.000Z");
        assert!(full["time"].get("1.2.0").is_none());
        assert_eq!(full["time"]["modified"], "2026-03-01T00:00:00.000Z");
        assert_eq!(full["time"]["created"], "2026-01-01T00:00:00.000Z");

        let corgi = json_of(&m.abbreviated().unwrap().body);
        assert_eq!(corgi["dist-tags"], full["dist-tags"]);
        assert_eq!(corgi["versions"].as_object().unwrap().len(), 4, "{corgi}");
        assert_eq!(corgi["modified"], "2026-03-01T00:00:00.000Z");

        assert_eq!(
            json_of(m.version_doc("1.0.0").unwrap())["description"],
            "ours"
        );
        assert!(m.version_doc("1.3.0").is_some());
        assert!(m.version_doc("1.2.0").is_none());
        // local identity, local tarballs; the served tags for `GET /:pkg/:tag`
        assert_eq!((m.package_id, m.rev), (7, 3));
        assert_eq!(m.upstream.as_deref(), Some("npmjs"));
        assert!(m.tarballs.contains_key("1.0.0") && !m.tarballs.contains_key("1.3.0"));
        assert_eq!(
            m.dist_tags.get("next").map(String::as_str),
            Some("2.0.0-rc.1")
        );
        assert!(!m.dist_tags.contains_key("old") && !m.dist_tags.contains_key("first"));
        assert!(m.full().unwrap().etag.starts_with("\"mg-"));
    }

    #[test]
    fn nothing_to_add_leaves_the_local_versions() {
        let m = merge(
            &local(),
            &upstream(),
            &["1.2.0".into(), "1.3.0".into(), "2.0.0-rc.1".into()],
            "npmjs",
        )
        .unwrap();
        let full = json_of(&m.full().unwrap().body);
        assert_eq!(full["versions"].as_object().unwrap().len(), 2);
        assert_eq!(full["dist-tags"], json!({"latest": "1.3.1-acme.1"}));
    }
}
