//! Registry signatures: the stock npm CLI's `npm audit signatures` verifies what tessera
//! signed, across a key rotation, and reports a tampered signature.
//!
//! `npm audit signatures` first asks Sigstore's public TUF repository (on the internet) for a
//! key file named after the registry's host, which exists only for registry.npmjs.org, and then
//! falls back to the registry's `/-/npm/v1/keys`. These tests run offline, so a preloaded script
//! (`common/offline_sigstore.js`, with a stand-in Sigstore's trust root) answers that first
//! question the way the real repository does for any other host ("no such target");
//! everything after it is npm's own code against tessera.

mod common;

use common::sigstore::Offline;
use common::*;
use serde_json::{Value, json};

/// `npm audit signatures` in `project`, with an empty npm cache, offline as described above.
fn audit_signatures(npm: &Npm, project: &std::path::Path, offline: &Offline) -> Run {
    let _ = std::fs::remove_dir_all(npm.root().join("cache"));
    offline.npm(npm, project, &["audit", "signatures"])
}

/// Checks that `npm audit signatures` passed and said `what`.
fn expect_verified(r: &Run, what: &str) {
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.contains(what), "{}", r.all());
}

fn install(npm: &Npm, project: &std::path::Path, deps: Value) {
    std::fs::write(
        project.join("package.json"),
        serde_json::to_string(
            &json!({"name": "app", "version": "1.0.0", "private": true, "dependencies": deps}),
        )
        .unwrap(),
    )
    .unwrap();
    let _ = std::fs::remove_dir_all(project.join("node_modules"));
    let _ = std::fs::remove_file(project.join("package-lock.json"));
    npm.run_in(project, &["install", "--no-audit"]).ok();
}

#[test]
fn npm_audit_signatures_verifies_tessera_packages_across_a_key_rotation() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let offline = Offline::new();
    for (name, version) in [
        ("sig-a", "1.0.0"),
        ("sig-b", "1.0.0"),
        ("@acme/sig-c", "2.0.0"),
    ] {
        let dir = alice.package(name, version, json!({}));
        alice.run_in(&dir, &["publish", "--access", "public"]).ok();
    }
    let http = reg.http();

    // one key, current; every form of the packument carries the signature
    let keys = http.get("/-/npm/v1/keys").json();
    let list = keys["keys"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{keys}");
    assert_eq!(list[0]["expires"], Value::Null);
    assert_eq!(list[0]["keytype"], "ecdsa-sha2-nistp256");
    let first_key = list[0]["keyid"].as_str().unwrap().to_owned();
    assert!(first_key.starts_with("SHA256:"));
    let full = http.get("/sig-a").json();
    assert_eq!(
        full["versions"]["1.0.0"]["dist"]["signatures"][0]["keyid"],
        first_key.as_str()
    );
    let corgi = http
        .send(
            "GET",
            "/sig-a",
            &[("accept", "application/vnd.npm.install-v1+json")],
            None,
        )
        .json();
    assert_eq!(
        corgi["versions"]["1.0.0"]["dist"]["signatures"],
        full["versions"]["1.0.0"]["dist"]["signatures"]
    );
    assert_eq!(
        http.get("/sig-a/1.0.0").json()["dist"]["signatures"],
        full["versions"]["1.0.0"]["dist"]["signatures"]
    );

    // the website shows it per version
    let page = http.get("/-/web/package/sig-a");
    assert_eq!(page.status, 200);
    assert!(page.text.contains(">signed</span>"), "{}", page.text);
    assert!(!page.text.contains(">unsigned</span>"));

    let project = alice.project("signed");
    install(
        &alice,
        &project,
        json!({"sig-a": "1.0.0", "sig-b": "1.0.0", "@acme/sig-c": "2.0.0"}),
    );
    let r = audit_signatures(&alice, &project, &offline);
    expect_verified(&r, "3 packages have verified registry signatures");

    // a rotation: the old key expires now and stays listed; new versions use the new key
    reg.advance(60);
    let out = reg.admin(&["rotate-signing-key"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reg.advance(60);
    let dir = alice.package("sig-a", "1.1.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    let keys = http.get("/-/npm/v1/keys").json();
    let list = keys["keys"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{keys}");
    assert_eq!(list[0]["keyid"], first_key.as_str());
    assert!(list[0]["expires"].is_string(), "{keys}");
    assert_eq!(list[1]["expires"], Value::Null);
    let doc = http.get("/sig-a").json();
    assert_eq!(
        doc["versions"]["1.1.0"]["dist"]["signatures"][0]["keyid"],
        list[1]["keyid"]
    );
    install(
        &alice,
        &project,
        json!({"sig-a": "1.1.0", "sig-b": "1.0.0", "@acme/sig-c": "2.0.0"}),
    );
    let r = audit_signatures(&alice, &project, &offline);
    expect_verified(&r, "3 packages have verified registry signatures");

    // a signature that does not match its version is reported
    let dir = alice.package("sig-t", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    let other = serde_json::to_string(&doc["versions"]["1.1.0"]["dist"]["signatures"]).unwrap();
    reg.sql(&format!(
        "UPDATE versions SET signatures = '{other}' WHERE version = '1.0.0' AND package_id = \
         (SELECT id FROM packages WHERE name = 'sig-t')"
    ));
    install(
        &alice,
        &project,
        json!({"sig-a": "1.1.0", "sig-t": "1.0.0"}),
    );
    let r = audit_signatures(&alice, &project, &offline);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("1 package has an invalid registry signature"),
        "{}",
        r.all()
    );
    assert!(r.stdout.contains("sig-t@1.0.0"), "{}", r.all());
}

#[test]
fn versions_published_before_the_registry_had_keys_are_signed_at_start() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let dir = alice.package("old-pkg", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    // as if published by a tessera without signing keys
    reg.sql("UPDATE versions SET signatures = NULL");
    reg.sql("DELETE FROM signing_keys");
    let reg = reg.restart(&[]);
    let http = reg.http();
    let doc = poll("the old version signed", || {
        let doc = http.get("/old-pkg").json();
        doc["versions"]["1.0.0"]["dist"]["signatures"][0]["keyid"]
            .is_string()
            .then_some(doc)
    });
    let keys = http.get("/-/npm/v1/keys").json();
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["signatures"][0]["keyid"],
        keys["keys"][0]["keyid"]
    );
    let out = reg.admin(&["sign-all"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("signed 0 versions"));
}

#[test]
fn proxied_packages_keep_their_upstream_signatures_and_verify_with_the_upstream_keys() {
    // the upstream is a second tessera, which signs with its own key
    let up = Registry::start_on(None, &[]);
    let publisher = up.npm_as("publisher");
    let dir = publisher.package("public-pkg", "1.0.0", json!({}));
    publisher
        .run_in(&dir, &["publish", "--access", "public"])
        .ok();
    let uplinks = format!("[{{name = \"up\", url = \"{}\"}}]", up.url());
    let reg = Registry::start_with(&[
        ("TESSERA_UPLINKS", &uplinks),
        (
            "TESSERA_PACKAGES",
            "[{pattern = \"@acme/*\"}, {pattern = \"**\", proxy = \"up\"}]",
        ),
    ]);
    let alice = reg.npm_as("alice");
    let offline = Offline::new();
    let dir = alice.package("@acme/local-pkg", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();

    // the keys document lists this registry's key first, then the uplink's
    let keys = reg.http().get("/-/npm/v1/keys").json();
    let upstream = up.http().get("/-/npm/v1/keys").json();
    let ids: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyid"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{keys}");
    assert_eq!(ids[1], upstream["keys"][0]["keyid"].as_str().unwrap());
    let proxied = reg.http().get("/public-pkg").json();
    assert_eq!(
        proxied["versions"]["1.0.0"]["dist"]["signatures"][0]["keyid"],
        upstream["keys"][0]["keyid"]
    );

    let project = alice.project("mixed");
    install(
        &alice,
        &project,
        json!({"public-pkg": "1.0.0", "@acme/local-pkg": "1.0.0"}),
    );
    let r = audit_signatures(&alice, &project, &offline);
    expect_verified(&r, "2 packages have verified registry signatures");
}

#[test]
fn a_publisher_cannot_plant_signatures_and_a_changed_integrity_is_not_signed() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let offline = Offline::new();
    let token = alice.token().unwrap();
    let http = reg.http();
    let keyid = http.get("/-/npm/v1/keys").json()["keys"][0]["keyid"]
        .as_str()
        .unwrap()
        .to_owned();

    // `_` fields npm reads as the registry's word are dropped at publish
    let tgz = tgz(&json!({"name": "planted", "version": "1.0.0"}), &[]);
    let mut body = publish_body(&reg.url(), "planted", "1.0.0", &tgz);
    let planted = json!([{"keyid": keyid, "sig": "MEUCIQ=="}]);
    let v = body["versions"]["1.0.0"].as_object_mut().unwrap();
    v.insert("_signatures".into(), planted.clone());
    v.insert(
        "_attestations".into(),
        json!({"url": "https://evil.example/a"}),
    );
    v.insert("_time".into(), json!("2000-01-01T00:00:00.000Z"));
    v.insert("_resolved".into(), json!("https://evil.example/x.tgz"));
    v.insert("_nodeVersion".into(), json!("20.0.0"));
    let r = http.with_token(&token).put_json("/planted", &body);
    assert_eq!(r.status, 201, "{}", r.text);
    let corgi_accept = [("accept", "application/vnd.npm.install-v1+json")];
    let check = |what: &str| {
        for doc in [
            http.get("/planted").json()["versions"]["1.0.0"].clone(),
            http.send("GET", "/planted", &corgi_accept, None).json()["versions"]["1.0.0"].clone(),
            http.get("/planted/1.0.0").json(),
        ] {
            for f in ["_signatures", "_attestations", "_time", "_resolved"] {
                assert!(doc.get(f).is_none(), "{what}: {f} served: {doc}");
            }
        }
        assert_eq!(
            http.get("/planted").json()["versions"]["1.0.0"]["_nodeVersion"],
            "20.0.0"
        );
    };
    check("published");
    // a version stored before this rule (planted fields in the database) is served without them
    let mut stored: serde_json::Map<String, Value> = serde_json::from_str(
        reg.sql("SELECT manifest FROM versions WHERE version = '1.0.0'")
            .trim(),
    )
    .unwrap();
    stored.insert("_signatures".into(), planted);
    stored.insert(
        "_attestations".into(),
        json!({"url": "https://evil.example/a"}),
    );
    // and as if its publish could not be signed
    reg.sql(&format!(
        "UPDATE versions SET manifest = '{}', signatures = NULL WHERE version = '1.0.0'",
        Value::Object(stored)
    ));
    reg.sql("UPDATE packages SET rev = rev + 1 WHERE name = 'planted'");
    reg.sql("UPDATE packument_epoch SET value = value + 1");
    poll("the server to drop its rendering", || {
        http.get("/planted").json()["versions"]["1.0.0"]["dist"]["signatures"]
            .is_null()
            .then_some(())
    });
    check("stored earlier");
    // npm sees an unsigned version, not a verified one
    let project = alice.project("planted");
    install(&alice, &project, json!({"planted": "1.0.0"}));
    let r = audit_signatures(&alice, &project, &offline);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout
            .contains("1 package has a missing registry signature"),
        "{}",
        r.all()
    );

    // someone who can write the database points the version at another integrity and clears
    // its signature: it is not signed, at start or by sign-all
    let dir = alice.package("victim", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    reg.sql(
        "UPDATE versions SET integrity = 'sha512-AAAA', signatures = NULL WHERE package_id = \
         (SELECT id FROM packages WHERE name = 'victim')",
    );
    let reg = reg.restart(&[]);
    let http = reg.http();
    poll("the start's signing pass", || {
        (reg.log_text()
            .contains("not signing a version whose tarball does not match its metadata")
            && http.get("/planted").json()["versions"]["1.0.0"]["dist"]["signatures"][0]["keyid"]
                .is_string())
        .then_some(())
    });
    let out = reg.admin(&["sign-all"], None);
    let said = String::from_utf8_lossy(&out.stdout);
    // `planted` is signed now (its tarball is what it says); `victim` is left unsigned
    assert!(said.contains("signed 0 versions"), "{said}");
    assert!(said.contains("1 versions were left unsigned"), "{said}");
    assert!(http.get("/victim").json()["versions"]["1.0.0"]["dist"]["signatures"].is_null());
    assert!(
        http.get("/planted").json()["versions"]["1.0.0"]["dist"]["signatures"][0]["keyid"]
            .is_string()
    );
}

#[test]
fn a_compromised_key_is_rotated_out_and_the_versions_it_signed_since_are_signed_again() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let offline = Offline::new();
    let http = reg.http();
    let dir = alice.package("before-leak", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    reg.advance(3600);
    let dir = alice.package("after-leak", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    let old = http.get("/-/npm/v1/keys").json()["keys"][0]["keyid"].clone();
    let leak = http.get("/after-leak").json()["time"]["1.0.0"]
        .as_str()
        .unwrap()
        .to_owned();
    reg.advance(60);

    let bad = reg.admin(
        &["rotate-signing-key", "--compromised-since", "yesterday"],
        None,
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ISO 8601"));
    let out = reg.admin(&["rotate-signing-key", "--compromised-since", &leak], None);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("signed 1 versions again"), "{said}");

    let keys = http.get("/-/npm/v1/keys").json();
    assert_eq!(keys["keys"][0]["keyid"], old);
    assert_eq!(keys["keys"][0]["expires"], leak.as_str());
    let new = keys["keys"][1]["keyid"].clone();
    assert_eq!(
        http.get("/before-leak").json()["versions"]["1.0.0"]["dist"]["signatures"][0]["keyid"],
        old
    );
    // the running server drops its rendering when the admin command's write is seen
    poll("after-leak signed with the new key", || {
        (http.get("/after-leak").json()["versions"]["1.0.0"]["dist"]["signatures"][0]["keyid"]
            == new)
            .then_some(())
    });
    let project = alice.project("leak");
    install(
        &alice,
        &project,
        json!({"before-leak": "1.0.0", "after-leak": "1.0.0"}),
    );
    let r = audit_signatures(&alice, &project, &offline);
    expect_verified(&r, "2 packages have verified registry signatures");

    // an ordinary rotation leaves the old key a few minutes, for publishes under way
    let out = reg.admin(&["rotate-signing-key"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("the old one expires"));
    let keys = http.get("/-/npm/v1/keys").json();
    let expires = keys["keys"][1]["expires"].as_str().unwrap().to_owned();
    assert!(expires.as_str() > leak.as_str(), "{keys}");
}

/// `tessera admin seed` (the bench's data) signs what it writes as a publish does: npm installs
/// seeded packages and verifies their signatures. (The server's own pass that signs unsigned
/// versions ran at its start, before the seeding, so every signature here is the seeder's.)
#[test]
fn seeded_packages_are_signed_as_published_ones_are() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let offline = Offline::new();
    let out = reg.admin(&["seed", "--packages", "3", "--versions", "2"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = alice.project("seeded");
    install(
        &alice,
        &project,
        json!({"seed-0": "^1.0.0", "seed-2": "1.0.1"}),
    );
    let r = audit_signatures(&alice, &project, &offline);
    expect_verified(&r, "2 packages have verified registry signatures");
    let key = reg.http().get("/-/npm/v1/keys").json()["keys"][0]["keyid"].clone();
    let doc = reg.http().get("/seed-1").json();
    for v in ["1.0.0", "1.0.1"] {
        assert_eq!(
            doc["versions"][v]["dist"]["signatures"][0]["keyid"], key,
            "{doc}"
        );
    }
}
