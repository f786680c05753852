//! Consistency checks of what a registry stores, for the concurrency and crash tests: over HTTP
//! (what npm sees) and below it, in the database and the tarball store themselves (opened the
//! way the server opens them, on either backend).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value;
use tessera_store::{BlobStore, PackageDoc, Store, TwoFactorStatus};

use super::{Http, Registry};

/// The digests of a tarball: hex SHA-512 (its address), the `sha512-…` integrity and the hex
/// SHA-1 shasum.
pub fn digests(bytes: &[u8]) -> (String, String, String) {
    use sha1::Digest as _;
    let sha512 = sha2::Sha512::digest(bytes);
    (
        data_encoding::HEXLOWER.encode(&sha512),
        format!("sha512-{}", data_encoding::BASE64.encode(&sha512)),
        data_encoding::HEXLOWER.encode(&sha1::Sha1::digest(bytes)),
    )
}

/// A package as the HTTP API shows it, after [`check_over_http`] checked it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// Version → its `dist.integrity`.
    pub versions: BTreeMap<String, String>,
    /// dist-tag → version.
    pub dist_tags: BTreeMap<String, String>,
    /// Maintainer names.
    pub maintainers: BTreeSet<String>,
}

fn url_path(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

fn string_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads package `name` through `http` and checks what npm relies on, panicking with the
/// details otherwise: every listed version's tarball downloads and matches its `dist.shasum`
/// and `dist.integrity`; every dist-tag points at a listed version and `latest` exists; the
/// abbreviated document lists the same versions with the same integrity; the dist-tags
/// endpoint agrees with both documents; at least one maintainer. `None` when the package does
/// not exist (then its dist-tags are a 404 too).
pub fn check_over_http(http: &Http, name: &str) -> Option<Shown> {
    let path = format!("/{}", name.replacen('/', "%2f", 1));
    let full = http.get(&path);
    let tags_path = format!("/-/package/{}/dist-tags", name.replacen('/', "%2f", 1));
    if full.status == 404 {
        assert_eq!(
            http.get(&tags_path).status,
            404,
            "{name}: no packument but dist-tags"
        );
        return None;
    }
    assert_eq!(full.status, 200, "GET {path}: {}", full.text);
    let doc = full.json();
    let mut versions = BTreeMap::new();
    for (v, meta) in doc["versions"].as_object().expect("versions").iter() {
        let dist = &meta["dist"];
        let integrity = dist["integrity"].as_str().expect("dist.integrity");
        let shasum = dist["shasum"].as_str().expect("dist.shasum");
        let url = dist["tarball"].as_str().expect("dist.tarball");
        let t = http.get(url_path(url));
        assert_eq!(
            t.status, 200,
            "{name}@{v} is listed but its tarball is not served: {}",
            t.text
        );
        let (_, i, s) = digests(&t.bytes);
        assert_eq!(
            (i.as_str(), s.as_str()),
            (integrity, shasum),
            "{name}@{v}: the tarball does not match its dist"
        );
        assert!(
            doc["time"][v].is_string(),
            "{name}@{v} has no publication time"
        );
        versions.insert(v.clone(), integrity.to_owned());
    }
    let dist_tags = string_map(&doc["dist-tags"]);
    for (tag, v) in &dist_tags {
        assert!(
            versions.contains_key(v),
            "{name}: dist-tag {tag} points at {v}, which is not listed ({:?})",
            versions.keys().collect::<Vec<_>>()
        );
    }
    assert!(
        versions.is_empty() || dist_tags.contains_key("latest"),
        "{name}: versions but no latest tag"
    );
    let corgi = http
        .send(
            "GET",
            &path,
            &[("accept", "application/vnd.npm.install-v1+json")],
            None,
        )
        .json();
    let corgi_versions: BTreeMap<String, String> = corgi["versions"]
        .as_object()
        .expect("abbreviated versions")
        .iter()
        .map(|(v, m)| {
            (
                v.clone(),
                m["dist"]["integrity"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        corgi_versions, versions,
        "{name}: the abbreviated document disagrees"
    );
    assert_eq!(
        string_map(&corgi["dist-tags"]),
        dist_tags,
        "{name}: the abbreviated document's dist-tags disagree"
    );
    let endpoint = http.get(&tags_path);
    assert_eq!(endpoint.status, 200, "{}", endpoint.text);
    assert_eq!(
        string_map(&endpoint.json()),
        dist_tags,
        "{name}: the dist-tags endpoint disagrees with the packument"
    );
    let maintainers: BTreeSet<String> = doc["maintainers"]
        .as_array()
        .expect("maintainers")
        .iter()
        .map(|m| m["name"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!maintainers.is_empty(), "{name}: no maintainer");
    Some(Shown {
        versions,
        dist_tags,
        maintainers,
    })
}

/// The registry's database and tarball store, opened as its server opens them.
pub struct Stores {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The tarballs.
    pub blobs: BlobStore,
    // dropped last: the store's pool closes on it
    rt: tokio::runtime::Runtime,
}

impl Stores {
    /// Opens `reg`'s stores (its data directory, or its PostgreSQL database and S3 prefix). The
    /// server may be running or dead: SQLite recovers its write-ahead log on open.
    pub fn open(reg: &Registry) -> Stores {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut config = tessera_server::Config {
            data: reg.data.clone(),
            database_max_connections: 2,
            ..Default::default()
        };
        if let Some(b) = &reg.backend {
            config.database = Some(b.database_url.clone());
            config.storage = Some(b.storage_url.clone());
            config.s3 = tessera_server::config::S3Config {
                endpoint: b.s3_endpoint.clone(),
                region: "us-east-1".into(),
                access_key_id: "test".into(),
                secret_access_key: "test".into(),
                allow_http: true,
            };
        }
        let (store, blobs) = rt
            .block_on(tessera_server::open_stores(
                &config,
                Some(tessera_store::Migrate::Check),
            ))
            .unwrap_or_else(|e| panic!("opening the stores: {e}"));
        Stores { store, blobs, rt }
    }

    /// Runs a store call.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Checks that every tarball a version refers to is stored, with the SHA-512 and integrity
    /// recorded for it. Returns how many stored tarballs no version refers to: orphans, which
    /// a crash between a tarball's write and its metadata's commit (or between an unpublish's
    /// commit and its tarball's deletion) may leave, and which are harmless.
    pub fn check_tarballs(&self) -> usize {
        let refs = self
            .block_on(self.store.tarball_refs())
            .expect("tarball refs");
        let referenced: BTreeSet<&str> = refs.iter().map(|(s, _)| s.as_str()).collect();
        for (sha, integrity) in &refs {
            let bytes = self
                .block_on(self.blobs.get(sha))
                .expect("read a tarball")
                .unwrap_or_else(|| panic!("a version refers to tarball {sha}, which is missing"));
            let (s, i, _) = digests(&bytes);
            assert_eq!(
                (&s, &i),
                (sha, integrity),
                "tarball {sha} does not match its address or integrity"
            );
        }
        let stored = self.block_on(self.blobs.list()).expect("list tarballs");
        stored
            .iter()
            .filter(|s| !referenced.contains(s.as_str()))
            .count()
    }

    /// Reads package `name`'s rows and checks them: each version's tarball is stored and
    /// matches the recorded SHA-512, integrity, shasum and size; each dist-tag points at a
    /// version; `latest` exists; at least one maintainer; a package has at least one version.
    pub fn check_package(&self, name: &str) -> Option<PackageDoc> {
        let doc = self.block_on(self.store.package_doc(name)).expect("read")?;
        assert!(
            !doc.versions.is_empty(),
            "{name}: a package row without versions"
        );
        for v in &doc.versions {
            let bytes = self
                .block_on(self.blobs.get(&v.tarball_sha512))
                .expect("read a tarball")
                .unwrap_or_else(|| panic!("{name}@{}: the tarball is missing", v.version));
            let (s, i, sum) = digests(&bytes);
            assert_eq!(
                (&s, &i, &sum, bytes.len() as i64),
                (&v.tarball_sha512, &v.integrity, &v.shasum, v.size),
                "{name}@{}: the tarball does not match its row",
                v.version
            );
        }
        for (tag, v) in &doc.dist_tags {
            assert!(
                doc.version(v).is_some(),
                "{name}: dist-tag {tag} points at {v}, which has no row"
            );
        }
        assert!(doc.tag("latest").is_some(), "{name}: no latest tag");
        assert!(!doc.maintainers.is_empty(), "{name}: no maintainer");
        Some(doc)
    }

    /// An account's 2FA state and its unused recovery codes, checked for agreement: confirmed
    /// 2FA always has its codes, and neither none nor a pending setup has any.
    pub fn two_factor(&self, user: &str) -> (Option<TwoFactorStatus>, i64) {
        let u = self
            .block_on(self.store.user_by_name(user))
            .expect("read")
            .expect("the account");
        let totp = self.block_on(self.store.totp(u.id)).expect("read totp");
        let codes = self
            .block_on(self.store.recovery_codes_left(u.id))
            .expect("read recovery codes");
        let status = totp.map(|t| t.state.status);
        assert_eq!(
            u.two_factor.map(|t| t.status),
            status,
            "{user}: the account and its TOTP row disagree"
        );
        match status {
            Some(TwoFactorStatus::Active(_)) => assert!(
                codes > 0,
                "{user}: 2FA is on without recovery codes (half-enabled)"
            ),
            _ => assert_eq!(
                codes, 0,
                "{user}: recovery codes without 2FA on (half-disabled)"
            ),
        }
        (status, codes)
    }
}
