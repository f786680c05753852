//! Provenance: the stock npm CLI publishes with a Sigstore provenance bundle
//! (`npm publish --provenance-file`, what `--provenance` does on a CI runner), tessera verifies
//! it against its configured trust root and serves it as `dist.attestations`, and
//! `npm audit signatures` verifies it. Bad bundles are refused with nothing stored, and a
//! package or the whole registry can require provenance.
//!
//! Sigstore's public services are out of reach here, so the tests run their own stand-in
//! (`common::sigstore`: a CA, a transparency log and a CT log with keys made per test) and give
//! tessera its `trusted_root.json` as `provenance.trusted_root`. npm fetches its trust root
//! through Sigstore's TUF repository; a preloaded script (`common/offline_sigstore.js`) hands it
//! the same file instead. Everything else is npm's own code.

mod common;

use common::sigstore::{CiIdentity, Offline, TestSigstore, provenance_statement};
use common::*;
use serde_json::{Value, json};

/// The OIDC issuer named in the stand-in certificates when no trusted publisher is involved.
const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";

#[test]
fn npm_publishes_with_provenance_and_npm_audit_verifies_it() {
    let offline = Offline::new();
    let (k, v) = offline.env();
    let reg = Registry::start_with(&[(k, &v)]);
    let alice = reg.npm_as("alice");

    let id = CiIdentity::github("acme/widget", "release.yml", GITHUB_ISSUER);
    let dir = alice.package("@acme/widget", "1.0.0", json!({}));
    let bundle = offline.publish_with_provenance(&alice, &dir, ("@acme/widget", "1.0.0"), &id);
    // a package without provenance beside it
    let plain = alice.package("plain", "1.0.0", json!({}));
    alice.run_in(&plain, &["publish"]).ok();

    let http = reg.http();
    for doc in [
        http.get("/@acme%2fwidget").json()["versions"]["1.0.0"].clone(),
        http.send(
            "GET",
            "/@acme%2fwidget",
            &[("accept", "application/vnd.npm.install-v1+json")],
            None,
        )
        .json()["versions"]["1.0.0"]
            .clone(),
        http.get("/@acme%2fwidget/1.0.0").json(),
    ] {
        let att = &doc["dist"]["attestations"];
        assert_eq!(
            att["url"],
            format!(
                "{}/-/npm/v1/attestations/@acme%2fwidget@1.0.0",
                reg.url().trim_end_matches('/')
            ),
            "{doc}"
        );
        assert_eq!(
            att["provenance"]["predicateType"],
            "https://slsa.dev/provenance/v1"
        );
    }
    assert!(http.get("/plain").json()["versions"]["1.0.0"]["dist"]["attestations"].is_null());

    // the bundle is served as it was sent, under either spelling of the scoped name
    let sent: Value = serde_json::from_str(&bundle).unwrap();
    for path in [
        "/-/npm/v1/attestations/@acme%2fwidget@1.0.0",
        "/-/npm/v1/attestations/@acme/widget@1.0.0",
    ] {
        let r = http.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let doc = r.json();
        assert_eq!(doc["attestations"][0]["bundle"], sent);
        assert_eq!(
            doc["attestations"][0]["predicateType"],
            "https://slsa.dev/provenance/v1"
        );
    }
    assert_eq!(http.get("/-/npm/v1/attestations/plain@1.0.0").status, 404);
    assert_eq!(http.get("/-/npm/v1/attestations/plain@9.9.9").status, 404);
    assert_eq!(http.get("/-/npm/v1/attestations/plain@latest").status, 400);

    // the website says where it was built
    let page = http.get("/-/web/package/@acme%2fwidget").text;
    assert!(page.contains(">provenance</span>"), "{page}");
    assert!(page.contains("https://github.com/acme/widget"), "{page}");
    assert!(page.contains("release.yml"), "{page}");
    assert!(page.contains("/actions/runs/1/attempts/1"), "{page}");

    // npm verifies the registry signatures and the attestation
    let project = alice.project("app");
    std::fs::write(
        project.join("package.json"),
        json!({"name": "app", "version": "1.0.0", "private": true,
               "dependencies": {"@acme/widget": "1.0.0", "plain": "1.0.0"}})
        .to_string(),
    )
    .unwrap();
    alice.run_in(&project, &["install", "--no-audit"]).ok();
    let _ = std::fs::remove_dir_all(alice.root().join("cache"));
    let r = offline.npm(&alice, &project, &["audit", "signatures"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("2 packages have verified registry signatures"),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains("1 package has a verified attestation"),
        "{}",
        r.all()
    );

    // a tampered attestation is reported by npm
    let mut forged = sent.clone();
    forged["dsseEnvelope"]["signatures"][0]["sig"] =
        json!(data_encoding::BASE64.encode(&[7u8; 70]));
    reg.sql(&format!(
        "UPDATE provenance SET bundle = '{}'",
        forged.to_string().replace('\'', "''")
    ));
    let _ = std::fs::remove_dir_all(alice.root().join("cache"));
    let r = offline.npm(&alice, &project, &["audit", "signatures"]);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("1 package has an invalid attestation"),
        "{}",
        r.all()
    );
}

/// `npm trust github <name> --repository <repository> --file release.yml`, with a fresh code.
fn trust_github(reg: &Registry, npm: &Npm, secret: &str, name: &str, repository: &str) {
    reg.advance(30);
    let out = npm.run(&[
        "trust",
        "github",
        name,
        "--repository",
        repository,
        "--file",
        "release.yml",
        "--allow-publish",
        "--yes",
        &format!("--otp={}", reg.otp(secret, 0)),
    ]);
    assert!(
        out.ok()
            .contains("Trust configuration created successfully"),
        "{}",
        out.all()
    );
}

/// A publish body for `name@1.0.0` with `tgz` and, if given, a `.sigstore` attachment.
fn body_with(reg: &Registry, name: &str, tgz: &[u8], bundle: Option<String>) -> Value {
    let mut body = publish_body(&reg.url(), name, "1.0.0", tgz);
    if let Some(b) = bundle {
        body["_attachments"][format!("{name}-1.0.0.sigstore")] = json!({
            "content_type": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "data": b,
            "length": b.len(),
        });
    }
    body
}

#[test]
fn bad_bundles_are_refused_before_anything_is_stored() {
    let offline = Offline::new();
    let (k, v) = offline.env();
    let issuer = common::issuer::Issuer::start();
    let issuers = format!("[{{issuer = \"{}\", kind = \"github\"}}]", issuer.url);
    let reg = Registry::start_with(&[(k, &v), ("TESSERA_OIDC__ISSUERS", &issuers)]);
    let token = reg.signup("bob", "bob-password-1");
    let http = reg.http().with_token(&token);
    let s = &offline.sigstore;
    let id = CiIdentity::github("acme/widget", "release.yml", GITHUB_ISSUER);
    let tgz = tgz(&json!({"name": "widget", "version": "1.0.0"}), &[]);
    let good = s.provenance_bundle("widget", "1.0.0", &tgz, &id);

    let foreign = TestSigstore::new().provenance_bundle("widget", "1.0.0", &tgz, &id);
    let other_name =
        s.bundle_for_statement(&provenance_statement("gadget", "1.0.0", &tgz, &id), &id);
    let other_bytes = s.provenance_bundle("widget", "1.0.0", b"other bytes", &id);
    let mut forged: Value = serde_json::from_str(&good).unwrap();
    forged["dsseEnvelope"]["signatures"][0]["sig"] =
        json!(data_encoding::BASE64.encode(&[7u8; 70]));
    let mut not_provenance = provenance_statement("widget", "1.0.0", &tgz, &id);
    not_provenance["predicateType"] = json!("https://example.com/not-provenance");
    // npm compares the digest exactly, and looks a key id up among the registry's keys: either
    // would abort `npm audit signatures` for every project depending on the package
    let mut upper = provenance_statement("widget", "1.0.0", &tgz, &id);
    let hex = upper["subject"][0]["digest"]["sha512"]
        .as_str()
        .unwrap()
        .to_uppercase();
    upper["subject"][0]["digest"]["sha512"] = json!(hex);
    let mut keyed: Value = serde_json::from_str(&good).unwrap();
    keyed["dsseEnvelope"]["signatures"][0]["keyid"] = json!("SHA256:somekey");
    let huge = format!("{{\"padding\": \"{}\"}}", "x".repeat(300 * 1024));
    for (what, bundle, status, says) in [
        ("another package", other_name, 400, "pkg:npm/gadget@1.0.0"),
        ("other bytes", other_bytes, 400, "made for other bytes"),
        ("another Sigstore", foreign, 400, "does not verify"),
        (
            "a forged signature",
            forged.to_string(),
            400,
            "does not verify",
        ),
        (
            "another predicate",
            s.bundle_for_statement(&not_provenance, &id),
            400,
            "not SLSA provenance",
        ),
        ("not JSON", "{\"mediaType\": ".to_string(), 400, "not JSON"),
        (
            "not a bundle",
            "{\"hello\": 1}".to_string(),
            400,
            "cannot be read",
        ),
        (
            "an upper-case digest",
            s.bundle_for_statement(&upper, &id),
            400,
            "made for other bytes",
        ),
        ("a key id", keyed.to_string(), 400, "names a key id"),
        ("garbage", "%%%".to_string(), 400, "neither JSON nor base64"),
        ("a huge bundle", huge, 413, "at most"),
    ] {
        let r = http.put_json("/widget", &body_with(&reg, "widget", &tgz, Some(bundle)));
        assert_eq!(r.status, status, "{what}: {}", r.text);
        assert!(r.text.contains(says), "{what}: {}", r.text);
        assert_eq!(reg.http().get("/widget").status, 404, "{what}: stored");
    }
    assert_eq!(reg.count_rows("provenance"), 0);
    assert_eq!(reg.count_rows("versions"), 0);

    // a bundle for another version's attachment name is refused too
    let mut body = body_with(&reg, "widget", &tgz, None);
    body["_attachments"]["widget-2.0.0.sigstore"] = json!({"data": good});
    let r = http.put_json("/widget", &body);
    assert_eq!(r.status, 400, "{}", r.text);

    // base64 of the bundle is accepted, as well as the JSON npm sends
    let b64 = data_encoding::BASE64.encode(good.as_bytes());
    let r = http.put_json("/widget", &body_with(&reg, "widget", &tgz, Some(b64)));
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(reg.count_rows("provenance"), 1);

    // a package with a trusted publisher takes provenance only from that publisher
    let (secret, _) = reg.enable_2fa(&token, "bob-password-1", "auth-and-writes");
    let bob = reg.npm();
    bob.set_token(&reg.addr, &token);
    trust_github(&reg, &bob, &secret, "widget", "acme/widget");
    let tgz2 = common::tgz(&json!({"name": "widget", "version": "1.0.1"}), &[]);
    let publish_101 = |id: &CiIdentity| {
        let mut body = publish_body(&reg.url(), "widget", "1.0.1", &tgz2);
        let b = s.provenance_bundle("widget", "1.0.1", &tgz2, id);
        body["_attachments"]["widget-1.0.1.sigstore"] = json!({"data": b});
        reg.advance(30);
        http.send(
            "PUT",
            "/widget",
            &[
                ("content-type", "application/json"),
                ("npm-otp", &reg.otp(&secret, 0)),
            ],
            Some(body.to_string().into_bytes()),
        )
    };
    // built by the same repository, but through the publisher's issuer and another workflow
    let wrong = CiIdentity::github("acme/widget", "test.yml", &issuer.url);
    let r = publish_101(&wrong);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("not a trusted publisher"), "{}", r.text);
    let other_repo = CiIdentity::github("evil/widget", "release.yml", &issuer.url);
    assert_eq!(publish_101(&other_repo).status, 400);
    let right = CiIdentity::github("acme/widget", "release.yml", &issuer.url);
    let r = publish_101(&right);
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(reg.count_rows("provenance"), 2);
}

#[test]
fn a_package_or_the_registry_can_require_provenance() {
    let offline = Offline::new();
    let (k, v) = offline.env();
    let issuer = common::issuer::Issuer::start();
    let issuers = format!("[{{issuer = \"{}\", kind = \"github\"}}]", issuer.url);
    let reg = Registry::start_with(&[(k, &v), ("TESSERA_OIDC__ISSUERS", &issuers)]);
    let token = reg.signup("carol", "carol-password-1");
    let http = reg.http().with_token(&token);
    // changing a package's policy takes a maintainer with 2FA
    let (secret, _) = reg.enable_2fa(&token, "carol-password-1", "auth-only");
    let carol = reg.npm();
    carol.set_token(&reg.addr, &token);
    let id = CiIdentity::github("acme/strict", "release.yml", &issuer.url);
    let tgz_of = |v: &str| common::tgz(&json!({"name": "strict", "version": v}), &[]);
    let body = |v: &str, bundle: bool| {
        let tgz = tgz_of(v);
        let mut body = publish_body(&reg.url(), "strict", v, &tgz);
        if bundle {
            let b = offline.sigstore.provenance_bundle("strict", v, &tgz, &id);
            body["_attachments"][format!("strict-{v}.sigstore")] = json!({"data": b});
        }
        body
    };
    assert_eq!(http.put_json("/strict", &body("1.0.0", false)).status, 201);
    // staged before the rule, approved after it
    let dir = carol.package("strict", "1.5.0", Value::Null);
    let staged = carol.run_in(&dir, &["stage", "publish"]);
    let out = staged.ok().to_owned();
    let at = out.find("staged with id ").expect("a stage id") + "staged with id ".len();
    let stage_id: String = out[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect();
    reg.advance(30);
    let r = http.send(
        "POST",
        "/-/package/strict/access",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &reg.otp(&secret, 0)),
        ],
        Some(br#"{"provenance_required": true}"#.to_vec()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        http.get("/-/package/strict/access").json()["provenance_required"],
        true
    );
    let r = http.put_json("/strict", &body("1.1.0", false));
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.text.contains("This package requires provenance"),
        "{}",
        r.text
    );
    // a package that requires provenance requires it from one of its trusted publishers
    let r = http.put_json("/strict", &body("1.1.0", true));
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("from a trusted publisher"), "{}", r.text);
    trust_github(&reg, &carol, &secret, "strict", "acme/strict");
    assert_eq!(http.put_json("/strict", &body("1.1.0", true)).status, 201);
    let page = reg.http().get("/-/web/package/strict").text;
    assert!(page.contains("id=\"provenance-required\""), "{page}");
    reg.advance(30);
    let out = carol.run(&[
        "stage",
        "approve",
        &stage_id,
        &format!("--otp={}", reg.otp(&secret, 0)),
    ]);
    assert!(
        out.fails().contains("This package requires provenance"),
        "{}",
        out.all()
    );
    assert!(http.get("/strict").json()["versions"]["1.5.0"].is_null());

    // the stock npm client shows the refusal
    let out = carol.publish("strict", "1.2.0", &[]);
    assert!(
        out.fails().contains("This package requires provenance"),
        "{}",
        out.all()
    );

    // registry-wide
    let reg = Registry::start_with(&[(k, &v), ("TESSERA_PROVENANCE__REQUIRED", "true")]);
    let token = reg.signup("dave", "dave-password-1");
    let http = reg.http().with_token(&token);
    let tgz = tgz_of("1.0.0");
    let r = http.put_json(
        "/strict",
        &publish_body(&reg.url(), "strict", "1.0.0", &tgz),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.text.contains("This registry requires provenance"),
        "{}",
        r.text
    );
    let mut ok = publish_body(&reg.url(), "strict", "1.0.0", &tgz);
    ok["_attachments"]["strict-1.0.0.sigstore"] =
        json!({"data": offline.sigstore.provenance_bundle("strict", "1.0.0", &tgz, &id)});
    assert_eq!(http.put_json("/strict", &ok).status, 201);
}

#[test]
fn a_proxied_version_keeps_its_uplinks_attestations() {
    let offline = Offline::new();
    let (k, v) = offline.env();
    // the upstream is a second tessera, which takes the bundle
    let up = Registry::start_with(&[(k, &v)]);
    let token = up.signup("publisher", "publisher-password-1");
    let id = CiIdentity::github("acme/upstream-pkg", "release.yml", GITHUB_ISSUER);
    let tgz = common::tgz(&json!({"name": "upstream-pkg", "version": "1.0.0"}), &[]);
    let bundle = offline
        .sigstore
        .provenance_bundle("upstream-pkg", "1.0.0", &tgz, &id);
    let r = up.http().with_token(&token).put_json(
        "/upstream-pkg",
        &body_with(&up, "upstream-pkg", &tgz, Some(bundle)),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let uplinks = format!("[{{name = \"up\", url = \"{}\"}}]", up.url());
    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &uplinks)]);
    let http = reg.http();
    let doc = http.get("/upstream-pkg").json();
    assert!(
        doc["versions"]["1.0.0"]["dist"]["attestations"]["url"].is_string(),
        "{doc}"
    );
    let r = http.get("/-/npm/v1/attestations/upstream-pkg@1.0.0");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json(),
        up.http()
            .get("/-/npm/v1/attestations/upstream-pkg@1.0.0")
            .json()
    );
    // only versions the proxied packument lists are asked for
    assert_eq!(
        http.get("/-/npm/v1/attestations/upstream-pkg@9.9.9").status,
        404
    );
    assert_eq!(http.get("/-/npm/v1/attestations/nowhere@1.0.0").status, 404);

    // npm, installing through this registry, verifies the upstream's attestation
    let npm = reg.npm();
    let project = npm.project("app");
    std::fs::write(
        project.join("package.json"),
        json!({"name": "app", "version": "1.0.0", "private": true,
               "dependencies": {"upstream-pkg": "1.0.0"}})
        .to_string(),
    )
    .unwrap();
    npm.run_in(&project, &["install", "--no-audit"]).ok();
    let _ = std::fs::remove_dir_all(npm.root().join("cache"));
    let r = offline.npm(&npm, &project, &["audit", "signatures"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("1 package has a verified attestation"),
        "{}",
        r.all()
    );
}
