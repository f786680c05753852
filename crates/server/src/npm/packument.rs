//! Packument assembly: the full document and npm's abbreviated ("corgi") form, built from
//! stored rows. Pure: no I/O.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::http::HeaderValue;
use bytes::Bytes;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use tessera_store::{Access, PackageDoc, UserId};

use crate::clock::iso8601;
use crate::npm::names::bare_name;
use crate::npm::versions;

/// The `_`-prefixed fields a version object may carry from its publisher or an uplink. Every
/// other `_` field is dropped, at publish and when serving: npm's client reads some of them
/// (`_signatures`, `_attestations`, `_integrity`, `_resolved`, `_time`) as the registry's
/// word when `dist` says nothing, so a publisher must not be able to plant them.
pub const PUBLISHER_UNDERSCORE_FIELDS: &[&str] = &[
    "_id",
    "_npmUser",
    "_hasShrinkwrap",
    "_nodeVersion",
    "_npmVersion",
];

/// Drops the `_` fields of a version object that are not in
/// [`PUBLISHER_UNDERSCORE_FIELDS`].
pub fn drop_private_fields(m: &mut Map<String, Value>) {
    m.retain(|k, _| !k.starts_with('_') || PUBLISHER_UNDERSCORE_FIELDS.contains(&k.as_str()));
}

/// Fields the abbreviated form keeps per version (npm registry docs, plus what npm's installer
/// reads).
pub(crate) const CORGI_FIELDS: &[&str] = &[
    "name",
    "version",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "bin",
    "directories",
    "engines",
    "_hasShrinkwrap",
    "os",
    "cpu",
    "libc",
    "funding",
    "license",
    "acceptDependencies",
    "hasInstallScript",
];

/// Top-level fields copied from the latest version into the full document.
const LATEST_FIELDS: &[&str] = &[
    "description",
    "homepage",
    "keywords",
    "repository",
    "author",
    "bugs",
    "license",
    "contributors",
];

/// Forms shorter than this are sent uncompressed even to a client that takes gzip.
pub const GZIP_MIN_BYTES: usize = 1024;

/// Where a version's tarball is.
#[derive(Debug, Clone)]
pub struct TarballRef {
    /// Content address (hex SHA-512).
    pub sha512: String,
    /// Size in bytes.
    pub size: i64,
}

/// One form of a packument, with its ETags (precomputed: serving it is a clone of
/// reference-counted bytes and header values) and its gzip, made on the first request for it.
/// Bodies of 64 KiB and more are made with [`crate::http::sendable::bytes_of`], so the
/// connection sends them with `sendfile`.
#[derive(Debug)]
pub struct Encoded {
    /// The JSON.
    pub body: Bytes,
    gzip: OnceLock<Bytes>,
    /// ETag of the plain JSON.
    pub etag: String,
    /// The ETag as a header value.
    pub etag_header: HeaderValue,
    /// ETag of the gzipped JSON.
    pub etag_gzip_header: HeaderValue,
}

impl Encoded {
    /// A form made of `body`, with `etag` (quoted).
    pub(crate) fn new(body: Vec<u8>, etag: String) -> Self {
        let gz_etag = format!("{}-gz\"", etag.trim_end_matches('"'));
        Encoded {
            body: crate::http::sendable::bytes_of(body),
            gzip: OnceLock::new(),
            etag_header: HeaderValue::from_str(&etag).expect("an ASCII ETag"),
            etag_gzip_header: HeaderValue::from_str(&gz_etag).expect("an ASCII ETag"),
            etag,
        }
    }

    /// The gzipped JSON, and the bytes this call added to the rendering (0 when it was made
    /// before).
    pub fn gzip(&self) -> (Bytes, usize) {
        if let Some(g) = self.gzip.get() {
            return (g.clone(), 0);
        }
        let made = {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(self.body.len() / 4 + 64),
                flate2::Compression::default(),
            );
            let _ = e.write_all(&self.body);
            crate::http::sendable::bytes_of(e.finish().unwrap_or_default())
        };
        let added = if self.gzip.set(made).is_ok() {
            self.gzip.get().map_or(0, Bytes::len)
        } else {
            0
        };
        (self.gzip.get().cloned().unwrap_or_default(), added)
    }

    fn weight(&self) -> usize {
        self.body.len() + self.gzip.get().map_or(0, Bytes::len) + self.etag.len() * 3 + 160
    }
}

fn docs_weight(d: &HashMap<String, Bytes>) -> usize {
    d.iter().map(|(v, b)| v.len() + b.len() + 80).sum()
}

/// What a request needs from a rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Visibility, maintainers, tarball addresses, dist-tags (tarball downloads).
    Meta,
    /// The full document.
    Full,
    /// The abbreviated document.
    Abbreviated,
    /// Each version's manifest (`GET /:pkg/:version`).
    Versions,
}

/// A packument rendered once per package revision, ready to serve. The metadata is always
/// there; each form is made the first time a request needs it (a registry with many packages
/// then holds only what clients ask for: npm asks for the abbreviated form, gzipped).
#[derive(Debug)]
pub struct Rendered {
    /// The package it was built from (a package deleted and published again gets a new id).
    pub package_id: i64,
    /// The package revision it was built from.
    pub rev: i64,
    /// The base URL its tarball links use.
    pub base: String,
    /// Visibility.
    pub access: Access,
    /// Who may see it when restricted.
    pub maintainer_ids: Vec<UserId>,
    /// Tarballs by version.
    pub tarballs: HashMap<String, TarballRef>,
    /// dist-tags (for `GET /:pkg/:tag`).
    pub dist_tags: HashMap<String, String>,
    /// The uplink it was proxied from (`None`: a local package).
    pub upstream: Option<String>,
    full: OnceLock<Encoded>,
    abbreviated: OnceLock<Encoded>,
    version_docs: OnceLock<HashMap<String, Bytes>>,
}

/// What a rendering holds besides its documents and per-version entries: the struct itself,
/// its hash tables, header values, the allocator's rounding and the cache's own entry for it.
/// Measured: 100,000 one-version packages, each read once as npm reads them (the abbreviated
/// form, under [`GZIP_MIN_BYTES`] so never gzipped), grew the server's resident memory by about
/// 2.5 KB each, of which the rest of [`Rendered::weight`] counts about 1.2 KB.
const FIXED_WEIGHT: usize = 1280;

impl Rendered {
    /// Approximate bytes held by this rendering (what the cache budget counts).
    pub fn weight(&self) -> usize {
        let tarballs: usize = self.tarballs.keys().map(|v| v.len() * 2 + 128 + 96).sum();
        let tags: usize = self
            .dist_tags
            .iter()
            .map(|(t, v)| t.len() + v.len() + 64)
            .sum();
        let docs = self.version_docs.get().map_or(0, docs_weight);
        self.full.get().map_or(0, Encoded::weight)
            + self.abbreviated.get().map_or(0, Encoded::weight)
            + docs
            + tarballs
            + tags
            + self.maintainer_ids.len() * 8
            + self.base.len()
            + FIXED_WEIGHT
    }

    /// Whether `part` is there.
    pub fn has(&self, part: Part) -> bool {
        match part {
            Part::Meta => true,
            Part::Full => self.full.get().is_some(),
            Part::Abbreviated => self.abbreviated.get().is_some(),
            Part::Versions => self.version_docs.get().is_some(),
        }
    }

    /// Makes `part` from `doc`, which must be this rendering's package revision; returns the
    /// bytes added.
    pub fn fill(&self, doc: &PackageDoc, part: Part) -> usize {
        debug_assert_eq!(
            (doc.package.id, doc.package.rev),
            (self.package_id, self.rev)
        );
        fn set<T>(cell: &OnceLock<T>, value: T, weight: usize) -> usize {
            if cell.set(value).is_ok() { weight } else { 0 }
        }
        match part {
            Part::Meta => 0,
            Part::Full if self.full.get().is_none() => {
                let e = full_form(doc, &self.base);
                let w = e.weight();
                set(&self.full, e, w)
            }
            Part::Abbreviated if self.abbreviated.get().is_none() => {
                let e = abbreviated_form(doc, &self.base);
                let w = e.weight();
                set(&self.abbreviated, e, w)
            }
            Part::Versions if self.version_docs.get().is_none() => {
                let d = version_docs(doc, &self.base);
                let w = docs_weight(&d);
                set(&self.version_docs, d, w)
            }
            _ => 0,
        }
    }

    /// The full document (made by [`fill`](Self::fill) with [`Part::Full`]).
    pub fn full(&self) -> Option<&Encoded> {
        self.full.get()
    }

    /// The abbreviated document.
    pub fn abbreviated(&self) -> Option<&Encoded> {
        self.abbreviated.get()
    }

    /// One version's manifest, as in the full document.
    pub fn version_doc(&self, version: &str) -> Option<&Bytes> {
        self.version_docs.get()?.get(version)
    }

    /// Every version's manifest, when made.
    pub fn version_docs(&self) -> Option<&HashMap<String, Bytes>> {
        self.version_docs.get()
    }
}

/// The `_rev` string of a revision: `<n>-<16 hex>`, URL-safe.
pub fn rev_string(name: &str, rev: i64) -> String {
    let d = Sha256::digest(format!("{name}\0{rev}").as_bytes());
    format!("{rev}-{}", data_encoding::HEXLOWER.encode(&d[..8]))
}

/// The tarball URL of a version: `<base>/<name>/-/<bare name>-<version>.tgz`.
pub fn tarball_url(base: &str, name: &str, version: &str) -> String {
    format!("{base}/{name}/-/{}-{version}.tgz", bare_name(name))
}

/// Where npm fetches a version's attestations (`dist.attestations.url`), a scope's `/` written
/// `%2f` as registry.npmjs.org writes it.
pub fn attestations_url(base: &str, name: &str, version: &str) -> String {
    format!(
        "{base}/-/npm/v1/attestations/{}@{version}",
        name.replacen('/', "%2f", 1)
    )
}

/// The version `latest` points at, or the highest one.
fn latest_version(doc: &PackageDoc) -> Option<&str> {
    doc.tag("latest")
        .filter(|v| doc.version(v).is_some())
        .or_else(|| versions::highest(doc.versions.iter().map(|v| v.version.as_str())))
}

/// The metadata of a packument; [`Rendered::fill`] adds the forms.
pub fn render(doc: &PackageDoc, base: &str) -> Rendered {
    Rendered {
        package_id: doc.package.id,
        rev: doc.package.rev,
        base: base.to_owned(),
        access: doc.package.access,
        maintainer_ids: doc.maintainers.iter().map(|m| m.id).collect(),
        tarballs: doc
            .versions
            .iter()
            .map(|v| {
                (
                    v.version.clone(),
                    TarballRef {
                        sha512: v.tarball_sha512.clone(),
                        size: v.size,
                    },
                )
            })
            .collect(),
        dist_tags: doc.dist_tags.iter().cloned().collect(),
        upstream: None,
        full: OnceLock::new(),
        abbreviated: OnceLock::new(),
        version_docs: OnceLock::new(),
    }
}

/// A rendering of a proxied packument, every form made: `tarballs` is empty (the uplinks
/// module knows where its tarballs are) and the package id and revision are -1.
pub fn prebuilt(
    base: &str,
    uplink: &str,
    dist_tags: HashMap<String, String>,
    full: Encoded,
    abbreviated: Encoded,
    version_docs: HashMap<String, Bytes>,
) -> Rendered {
    let r = Rendered {
        package_id: -1,
        rev: -1,
        base: base.to_owned(),
        access: Access::Public,
        maintainer_ids: Vec::new(),
        tarballs: HashMap::new(),
        dist_tags,
        upstream: Some(uplink.to_owned()),
        full: OnceLock::new(),
        abbreviated: OnceLock::new(),
        version_docs: OnceLock::new(),
    };
    let _ = r.full.set(full);
    let _ = r.abbreviated.set(abbreviated);
    let _ = r.version_docs.set(version_docs);
    r
}

/// A rendering with every part made (tests, tools).
pub fn render_all(doc: &PackageDoc, base: &str) -> Rendered {
    let r = render(doc, base);
    for part in [Part::Full, Part::Abbreviated, Part::Versions] {
        r.fill(doc, part);
    }
    r
}

fn maintainers_json(doc: &PackageDoc) -> Vec<Value> {
    doc.maintainers
        .iter()
        .map(|m| json!({"name": m.name, "email": m.email}))
        .collect()
}

fn dist_tags_json(doc: &PackageDoc) -> Map<String, Value> {
    doc.dist_tags
        .iter()
        .map(|(t, v)| (t.clone(), Value::String(v.clone())))
        .collect()
}

/// Each version's manifest as the full document shows it, in publication order.
fn manifests(doc: &PackageDoc, base: &str) -> Vec<Map<String, Value>> {
    let name = &doc.package.name;
    let maintainers = maintainers_json(doc);
    doc.versions
        .iter()
        .map(|v| {
            let mut m: Map<String, Value> = serde_json::from_str(&v.manifest).unwrap_or_default();
            drop_private_fields(&mut m);
            m.insert("name".into(), Value::String(name.clone()));
            m.insert("version".into(), Value::String(v.version.clone()));
            m.insert("_id".into(), Value::String(format!("{name}@{}", v.version)));
            let mut dist = json!({
                "integrity": v.integrity,
                "shasum": v.shasum,
                "tarball": tarball_url(base, name, &v.version),
            });
            if let Some(sigs) = v
                .signatures
                .as_deref()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
                .filter(Value::is_array)
            {
                dist["signatures"] = sigs;
            }
            let provenance = v
                .provenance
                .as_deref()
                .and_then(crate::provenance::Summary::from_json);
            if let Some(p) = provenance {
                dist["attestations"] = json!({
                    "url": attestations_url(base, name, &v.version),
                    "provenance": {"predicateType": p.predicate_type},
                });
            } else if v.attested {
                // the registry's publish attestation alone
                dist["attestations"] = json!({"url": attestations_url(base, name, &v.version)});
            }
            m.insert("dist".into(), dist);
            if let Some(msg) = &v.deprecated {
                m.insert("deprecated".into(), Value::String(msg.clone()));
            }
            if let Some(p) = &v.publisher {
                m.insert("_npmUser".into(), json!({"name": p.name, "email": p.email}));
            }
            m.insert("maintainers".into(), Value::Array(maintainers.clone()));
            m
        })
        .collect()
}

/// The ETag of a form: the revision, the base URL it links to, and the form.
fn etag(doc: &PackageDoc, base: &str, form: char) -> String {
    let rev = rev_string(&doc.package.name, doc.package.rev);
    let d = Sha256::digest(base.as_bytes());
    format!(
        "\"{rev}-{}-{form}\"",
        data_encoding::HEXLOWER.encode(&d[..4])
    )
}

fn full_form(doc: &PackageDoc, base: &str) -> Encoded {
    let name = &doc.package.name;
    let manifests = manifests(doc, base);
    let mut full_versions = Map::new();
    let mut time = Map::new();
    time.insert(
        "created".into(),
        Value::String(iso8601(doc.package.created_at)),
    );
    time.insert(
        "modified".into(),
        Value::String(iso8601(doc.package.modified_at)),
    );
    for (v, m) in doc.versions.iter().zip(&manifests) {
        time.insert(v.version.clone(), Value::String(iso8601(v.published_at)));
        full_versions.insert(v.version.clone(), Value::Object(m.clone()));
    }
    let latest = latest_version(doc);
    let latest_manifest = latest.and_then(|l| {
        doc.versions
            .iter()
            .position(|v| v.version == l)
            .map(|i| &manifests[i])
    });
    let mut full = Map::new();
    full.insert("_id".into(), Value::String(name.clone()));
    full.insert(
        "_rev".into(),
        Value::String(rev_string(name, doc.package.rev)),
    );
    full.insert("name".into(), Value::String(name.clone()));
    if let Some(m) = latest_manifest {
        for f in LATEST_FIELDS {
            if let Some(x) = m.get(*f) {
                full.insert((*f).into(), x.clone());
            }
        }
    }
    full.insert("dist-tags".into(), Value::Object(dist_tags_json(doc)));
    full.insert("versions".into(), Value::Object(full_versions));
    full.insert("time".into(), Value::Object(time));
    full.insert("maintainers".into(), Value::Array(maintainers_json(doc)));
    let users: Map<String, Value> = doc
        .stars
        .iter()
        .map(|u| (u.clone(), Value::Bool(true)))
        .collect();
    full.insert("users".into(), Value::Object(users));
    let latest_record = latest.and_then(|l| doc.version(l));
    full.insert(
        "readme".into(),
        Value::String(
            latest_record
                .and_then(|r| r.readme.clone())
                .unwrap_or_default(),
        ),
    );
    if let Some(f) = latest_manifest.and_then(|m| m.get("readmeFilename")) {
        full.insert("readmeFilename".into(), f.clone());
    }
    Encoded::new(
        serde_json::to_vec(&Value::Object(full)).unwrap_or_default(),
        etag(doc, base, 'f'),
    )
}

fn abbreviated_form(doc: &PackageDoc, base: &str) -> Encoded {
    let mut versions = Map::new();
    for (v, m) in doc.versions.iter().zip(manifests(doc, base)) {
        let mut corgi = Map::new();
        for f in CORGI_FIELDS {
            if let Some(x) = m.get(*f) {
                corgi.insert((*f).into(), x.clone());
            }
        }
        if !corgi.contains_key("hasInstallScript") && has_install_script(&m) {
            corgi.insert("hasInstallScript".into(), Value::Bool(true));
        }
        corgi.insert("dist".into(), m["dist"].clone());
        if let Some(d) = m.get("deprecated") {
            corgi.insert("deprecated".into(), d.clone());
        }
        versions.insert(v.version.clone(), Value::Object(corgi));
    }
    let corgi = json!({
        "name": doc.package.name,
        "modified": iso8601(doc.package.modified_at),
        "dist-tags": dist_tags_json(doc),
        "versions": versions,
    });
    Encoded::new(
        serde_json::to_vec(&corgi).unwrap_or_default(),
        etag(doc, base, 'a'),
    )
}

fn version_docs(doc: &PackageDoc, base: &str) -> HashMap<String, Bytes> {
    doc.versions
        .iter()
        .zip(manifests(doc, base))
        .map(|(v, m)| {
            (
                v.version.clone(),
                Bytes::from(serde_json::to_vec(&m).unwrap_or_default()),
            )
        })
        .collect()
}

/// Whether a manifest runs a script at install (npm's `hasInstallScript`).
pub(crate) fn has_install_script(m: &Map<String, Value>) -> bool {
    m.get("scripts")
        .and_then(Value::as_object)
        .is_some_and(|s| {
            ["preinstall", "install", "postinstall"]
                .iter()
                .any(|k| s.contains_key(*k))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_store::{Maintainer, Package, VersionRecord};

    fn doc() -> PackageDoc {
        let alice = Maintainer {
            id: 1,
            name: "alice".into(),
            email: "alice@example.com".into(),
        };
        let v = |ver: &str, t: i64, dep: Option<&str>| VersionRecord {
            version: ver.into(),
            manifest: format!(
                r#"{{"name":"@alice/demo","version":"{ver}","description":"d {ver}","scripts":{{"postinstall":"x"}},"dependencies":{{"a":"^1"}},"readmeFilename":"README.md"}}"#
            ),
            readme: Some(format!("readme {ver}")),
            tarball_sha512: format!("sha-{ver}"),
            shasum: "abc".into(),
            integrity: "sha512-xyz".into(),
            size: 100,
            deprecated: dep.map(str::to_owned),
            publisher: Some(alice.clone()),
            published_at: t,
            signatures: None,
            provenance: None,
            attested: false,
        };
        PackageDoc {
            package: Package {
                id: 7,
                name: "@alice/demo".into(),
                access: Access::Public,
                rev: 3,
                description: None,
                keywords: vec![],
                policy: tessera_store::PackageTfaPolicy::None,
                staged_publishes: false,
                provenance_required: false,
                created_at: 1000,
                modified_at: 3000,
            },
            versions: vec![v("1.0.0", 1000, Some("old")), v("1.1.0", 2000, None)],
            dist_tags: vec![
                ("latest".into(), "1.0.0".into()),
                ("next".into(), "1.1.0".into()),
            ],
            maintainers: vec![alice],
            stars: vec!["bob".into()],
        }
    }

    #[test]
    fn full_form_has_what_npm_reads() {
        let r = render_all(&doc(), "http://reg.test");
        let v: Value = serde_json::from_slice(&r.full().unwrap().body).unwrap();
        assert_eq!(v["_id"], "@alice/demo");
        assert_eq!(v["_rev"], rev_string("@alice/demo", 3));
        assert_eq!(v["dist-tags"]["latest"], "1.0.0");
        assert_eq!(v["description"], "d 1.0.0", "top level follows latest");
        assert_eq!(v["readme"], "readme 1.0.0");
        assert_eq!(v["readmeFilename"], "README.md");
        assert_eq!(v["maintainers"][0]["name"], "alice");
        assert_eq!(v["users"]["bob"], true);
        assert_eq!(v["time"]["1.1.0"], "1970-01-01T00:00:02.000Z");
        assert_eq!(v["time"]["created"], "1970-01-01T00:00:01.000Z");
        let ver = &v["versions"]["1.0.0"];
        assert_eq!(ver["_id"], "@alice/demo@1.0.0");
        assert_eq!(
            ver["dist"]["tarball"],
            "http://reg.test/@alice/demo/-/demo-1.0.0.tgz"
        );
        assert_eq!(ver["dist"]["integrity"], "sha512-xyz");
        assert_eq!(ver["deprecated"], "old");
        assert_eq!(ver["_npmUser"]["name"], "alice");
        assert!(v["versions"]["1.1.0"].get("deprecated").is_none());
        assert_eq!(r.tarballs["1.1.0"].sha512, "sha-1.1.0");
    }

    #[test]
    fn abbreviated_form_is_small() {
        let r = render_all(&doc(), "http://reg.test");
        let v: Value = serde_json::from_slice(&r.abbreviated().unwrap().body).unwrap();
        assert_eq!(v["name"], "@alice/demo");
        assert_eq!(v["modified"], "1970-01-01T00:00:03.000Z");
        let ver = v["versions"]["1.0.0"].as_object().unwrap();
        assert_eq!(ver["dependencies"]["a"], "^1");
        assert_eq!(ver["hasInstallScript"], true);
        assert_eq!(ver["deprecated"], "old");
        assert!(ver.get("description").is_none());
        assert!(ver.get("scripts").is_none());
        let full = r.full().unwrap();
        assert!(r.abbreviated().unwrap().body.len() < full.body.len());
        let before = r.weight();
        let (gz, added) = full.gzip();
        assert!(
            added > 0 && r.weight() == before + added,
            "the gzip is counted once made"
        );
        assert_eq!(full.gzip().1, 0, "and made once");
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
        assert_eq!(plain, full.body.to_vec(), "the gzip is of the same bytes");
    }

    #[test]
    fn etags_change_with_revision_and_base() {
        let a = render_all(&doc(), "http://reg.test");
        let b = render_all(&doc(), "http://other.test");
        let mut d = doc();
        d.package.rev = 4;
        let c = render_all(&d, "http://reg.test");
        let (af, bf, cf) = (a.full().unwrap(), b.full().unwrap(), c.full().unwrap());
        assert_ne!(af.etag, bf.etag);
        assert_ne!(af.etag, cf.etag);
        assert_ne!(af.etag, a.abbreviated().unwrap().etag);
        assert_ne!(af.etag_header, af.etag_gzip_header);
    }

    #[test]
    fn revs_are_url_safe() {
        let r = rev_string("@a/b", 12);
        assert!(r.starts_with("12-"));
        assert!(r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    }
}
