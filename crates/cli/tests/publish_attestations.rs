//! Publish attestations: with `provenance.transparency_log` set, tessera signs an in-toto
//! statement of every publish with its registry key, logs it in that transparency log (a Rekor)
//! and serves it beside the version's provenance; the stock `npm audit signatures` verifies it
//! with the key from `/-/npm/v1/keys`. A log that is down at publish delays the attestation, not
//! the publish, and a key declared compromised has its attestations made again.
//!
//! The log is the offline Sigstore stand-in's (`common::sigstore`), served over HTTP as Rekor's
//! v1 API; npm is given the stand-in's trust root as in the provenance tests.

mod common;

use common::sigstore::{CiIdentity, Offline, REKOR_ENTRIES};
use common::stub::Reply;
use common::*;
use serde_json::{Value, json};

const PUBLISH_V01: &str = "https://github.com/npm/attestation/tree/main/specs/publish/v0.1";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";

/// `npm audit signatures` in `project` with an empty cache, offline.
fn audit(npm: &Npm, project: &std::path::Path, offline: &Offline) -> Run {
    let _ = std::fs::remove_dir_all(npm.root().join("cache"));
    offline.npm(npm, project, &["audit", "signatures"])
}

/// The statement inside an attestation document's entry.
fn statement(entry: &Value) -> Value {
    let payload = entry["bundle"]["dsseEnvelope"]["payload"].as_str().unwrap();
    serde_json::from_slice(&data_encoding::BASE64.decode(payload.as_bytes()).unwrap()).unwrap()
}

/// The hex SHA-512 an `integrity` names.
fn integrity_hex(integrity: &str) -> String {
    let b64 = integrity.strip_prefix("sha512-").unwrap();
    data_encoding::HEXLOWER.encode(&data_encoding::BASE64.decode(b64.as_bytes()).unwrap())
}

/// A registry that logs its attestations in `offline`'s log: the log, its URL, the registry.
fn start_logged(offline: &Offline) -> (common::stub::Stub, String, Registry) {
    let rekor = offline.serve_rekor();
    let (k, v) = offline.env();
    let log = rekor.url.trim_end_matches('/').to_owned();
    let reg = Registry::start_with(&[(k, &v), ("TESSERA_PROVENANCE__TRANSPARENCY_LOG", &log)]);
    (rekor, log, reg)
}

/// Checks that `npm audit signatures` passed and printed each of `lines`.
fn verified(r: &Run, lines: &[&str]) {
    assert_eq!(r.code, 0, "{}", r.all());
    for line in lines {
        assert!(r.stdout.contains(line), "{line}: {}", r.all());
    }
}

#[test]
fn every_publish_is_attested_in_the_log_and_npm_audit_verifies_it() {
    let offline = Offline::new();
    let (rekor, _log, reg) = start_logged(&offline);
    let alice = reg.npm_as("alice");
    let http = reg.http();

    // a plain publish, no provenance: the registry's attestation alone
    let dir = alice.package("plain", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    assert_eq!(rekor.count(REKOR_ENTRIES), 1);
    let key = http.get("/-/npm/v1/keys").json()["keys"][0]["keyid"].clone();
    let doc = http.get("/plain").json();
    let dist = &doc["versions"]["1.0.0"]["dist"];
    assert_eq!(
        dist["attestations"],
        json!({"url": format!("{}/-/npm/v1/attestations/plain@1.0.0",
                              reg.url().trim_end_matches('/'))}),
        "{doc}"
    );
    let abbreviated = http
        .send(
            "GET",
            "/plain",
            &[("accept", "application/vnd.npm.install-v1+json")],
            None,
        )
        .json();
    assert_eq!(
        abbreviated["versions"]["1.0.0"]["dist"]["attestations"],
        dist["attestations"]
    );
    let list = http.get("/-/npm/v1/attestations/plain@1.0.0").json();
    let entries = list["attestations"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list}");
    assert_eq!(entries[0]["predicateType"], PUBLISH_V01);
    let bundle = &entries[0]["bundle"];
    assert_eq!(bundle["dsseEnvelope"]["signatures"][0]["keyid"], key);
    assert_eq!(bundle["verificationMaterial"]["publicKey"]["hint"], key);
    let s = statement(&entries[0]);
    assert_eq!(s["subject"][0]["name"], "pkg:npm/plain@1.0.0");
    assert_eq!(
        s["subject"][0]["digest"]["sha512"],
        integrity_hex(dist["integrity"].as_str().unwrap())
    );
    assert_eq!(s["predicate"]["name"], "plain");
    assert_eq!(s["predicate"]["version"], "1.0.0");
    // the website says so
    let page = http.get("/-/web/package/plain").text;
    assert!(page.contains(">attested</span>"), "{page}");

    // with provenance: both attestations, the registry's first
    let id = CiIdentity::github(
        "acme/widget",
        "release.yml",
        "https://token.actions.githubusercontent.com",
    );
    let dir = alice.package("@acme/widget", "1.0.0", json!({}));
    offline.publish_with_provenance(&alice, &dir, ("@acme/widget", "1.0.0"), &id);
    let list = http
        .get("/-/npm/v1/attestations/@acme%2fwidget@1.0.0")
        .json();
    let types: Vec<&Value> = list["attestations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["predicateType"])
        .collect();
    assert_eq!(types, [PUBLISH_V01, SLSA_V1], "{list}");
    assert_eq!(
        statement(&list["attestations"][0])["subject"][0]["name"],
        "pkg:npm/%40acme/widget@1.0.0"
    );
    assert_eq!(
        http.get("/@acme%2fwidget").json()["versions"]["1.0.0"]["dist"]["attestations"]["provenance"]
            ["predicateType"],
        SLSA_V1
    );

    let project = alice.project("app");
    let install = |deps: Value| {
        std::fs::write(
            project.join("package.json"),
            json!({"name": "app", "version": "1.0.0", "private": true, "dependencies": deps})
                .to_string(),
        )
        .unwrap();
        let _ = std::fs::remove_dir_all(project.join("node_modules"));
        let _ = std::fs::remove_file(project.join("package-lock.json"));
        alice.run_in(&project, &["install", "--no-audit"]).ok();
    };
    install(json!({"plain": "1.0.0", "@acme/widget": "1.0.0"}));
    verified(
        &audit(&alice, &project, &offline),
        &[
            "2 packages have verified registry signatures",
            "2 packages have verified attestations",
        ],
    );

    // the log is down: the publish goes through, unattested, and a pass attests it later
    rekor.set(
        REKOR_ENTRIES,
        Reply {
            status: 503,
            ..Reply::json(&json!({"message": "down"}))
        },
    );
    let dir = alice.package("late", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    assert!(
        http.get("/late").json()["versions"]["1.0.0"]["dist"]["attestations"].is_null(),
        "an attestation without a log entry"
    );
    assert_eq!(http.get("/-/npm/v1/attestations/late@1.0.0").status, 404);
    assert!(reg.log_text().contains("the next pass makes it"));
    // still down: the pass says so and fails
    let out = reg.admin(&["sign-all"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("503"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rekor.unset(REKOR_ENTRIES);
    let out = reg.admin(&["sign-all"], None);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("attested 1 publishes"), "{said}");
    // the running server drops its rendering when it sees the admin command's write
    poll("late attested in the packument", || {
        http.get("/late").json()["versions"]["1.0.0"]["dist"]["attestations"]["url"]
            .is_string()
            .then_some(())
    });
    install(json!({"plain": "1.0.0", "@acme/widget": "1.0.0", "late": "1.0.0"}));
    verified(
        &audit(&alice, &project, &offline),
        &["3 packages have verified attestations"],
    );

    // a key declared compromised since before the first attestation (the log's times are
    // whole seconds): every attestation is made again with the new key
    let first: i64 = reg
        .sql("SELECT MIN(integrated_at) FROM publish_attestations")
        .trim()
        .parse()
        .unwrap();
    let since = common::sigstore::rfc3339(first / 1000 - 1);
    let before = reg.count_rows("publish_attestations");
    let out = reg.admin(&["rotate-signing-key", "--compromised-since", &since], None);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("attested 3 publishes"), "{said}");
    assert_eq!(reg.count_rows("publish_attestations"), before);
    let new_key = http.get("/-/npm/v1/keys").json()["keys"][1]["keyid"].clone();
    assert_ne!(new_key, key);
    poll("plain attested again with the new key", || {
        let list = http.get("/-/npm/v1/attestations/plain@1.0.0").json();
        (list["attestations"][0]["bundle"]["dsseEnvelope"]["signatures"][0]["keyid"] == new_key)
            .then_some(())
    });
    verified(
        &audit(&alice, &project, &offline),
        &["3 packages have verified attestations"],
    );

    // a tampered attestation is reported by npm
    let list = http.get("/-/npm/v1/attestations/late@1.0.0").json();
    let mut forged = list["attestations"][0]["bundle"].clone();
    forged["dsseEnvelope"]["signatures"][0]["sig"] =
        json!(data_encoding::BASE64.encode(&[7u8; 70]));
    reg.sql(&format!(
        "UPDATE publish_attestations SET bundle = '{}' WHERE version = '1.0.0' AND package_id = \
         (SELECT id FROM packages WHERE name = 'late')",
        forged.to_string().replace('\'', "''")
    ));
    let r = audit(&alice, &project, &offline);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.stdout.contains("1 package has an invalid attestation"),
        "{}",
        r.all()
    );
}

#[test]
fn a_log_answer_that_does_not_verify_is_not_stored() {
    let offline = Offline::new();
    let (rekor, log, reg) = start_logged(&offline);
    let alice = reg.npm_as("alice");
    // a log answering an incomplete entry: the publish stands, unattested
    rekor.set(
        REKOR_ENTRIES,
        Reply {
            status: 201,
            ..Reply::json(&json!({"x": {"body": "e30="}}))
        },
    );
    let dir = alice.package("one", "1.0.0", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    assert_eq!(reg.count_rows("publish_attestations"), 0);
    assert!(
        reg.log_text().contains("incomplete log entry"),
        "{}",
        reg.log_text()
    );

    // a log whose entries are signed by a key outside the trust root
    rekor.unset(REKOR_ENTRIES);
    let other = Offline::new();
    let stranger = other.serve_rekor();
    let reg = reg.restart(&[(
        "TESSERA_PROVENANCE__TRANSPARENCY_LOG",
        stranger.url.trim_end_matches('/'),
    )]);
    let out = reg.admin(&["sign-all"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("refused"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stranger.count(REKOR_ENTRIES), 1);
    assert_eq!(reg.count_rows("publish_attestations"), 0);
    assert_eq!(
        reg.http().get("/-/npm/v1/attestations/one@1.0.0").status,
        404
    );

    // the right log again: the server's own pass (at start, for versions over two minutes
    // old) attests it
    reg.advance(300);
    let reg = reg.restart(&[("TESSERA_PROVENANCE__TRANSPARENCY_LOG", &log)]);
    poll("the pass at start attests the version", || {
        (reg.count_rows("publish_attestations") == 1).then_some(())
    });
    let doc = reg.http().get("/-/npm/v1/attestations/one@1.0.0").json();
    assert_eq!(
        doc["attestations"][0]["predicateType"], PUBLISH_V01,
        "{doc}"
    );
}
