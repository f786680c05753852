//! Uplinks: a second tessera on loopback is the upstream registry, seeded with packages, that
//! the tests stop and change. The stock npm CLI installs through the registry under test.

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};

/// The upstream: a plain tessera (always SQLite) with a publisher account.
fn upstream() -> (Registry, Npm) {
    let up = Registry::start_on(None, &[]);
    let npm = up.npm_as("publisher");
    (up, npm)
}

/// `[[uplinks]]` naming `up`, as a `TESSERA_UPLINKS` value, with `extra` settings.
fn uplink_var(up: &Registry, extra: &str) -> String {
    format!(
        "[{{name = \"up\", url = \"{}\", max_fails = 1, fail_timeout = \"5m\", timeout = \"10s\"{extra}}}]",
        up.url()
    )
}

/// Publishes `name@version` from a folder with `extra` package.json fields.
fn publish(npm: &Npm, name: &str, version: &str, extra: Value) {
    let dir = npm.package(name, version, extra);
    npm.run_in(&dir, &["publish", "--access", "public"]).ok();
}

fn write_project(dir: &Path, deps: Value) {
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string(&json!({"name": "app", "version": "1.0.0", "private": true, "dependencies": deps}))
            .unwrap(),
    )
    .unwrap();
}

fn installed_version(project: &Path, name: &str) -> String {
    let p = project.join("node_modules").join(name).join("package.json");
    let text = std::fs::read_to_string(&p).unwrap_or_else(|_| panic!("{name} is not installed"));
    serde_json::from_str::<Value>(&text).unwrap()["version"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A fresh install: no lock file, no node_modules, an empty npm cache.
fn fresh_install(npm: &Npm, project: &Path) -> Run {
    let _ = std::fs::remove_dir_all(project.join("node_modules"));
    let _ = std::fs::remove_file(project.join("package-lock.json"));
    let _ = std::fs::remove_dir_all(npm.root().join("cache"));
    npm.run_in(project, &["install", "--no-audit"])
}

#[test]
fn a_tree_mixing_local_and_upstream_packages_installs_and_outlives_the_upstream() {
    let (mut up, up_npm) = upstream();
    publish(&up_npm, "left-pad", "1.0.0", json!({}));
    publish(&up_npm, "left-pad", "1.1.0", json!({}));
    publish(&up_npm, "is-thing", "2.0.0", json!({"dependencies": {"left-pad": "^1.0.0"}}));
    publish(&up_npm, "never-fetched", "1.0.0", json!({}));

    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &uplink_var(&up, ""))]);
    let alice = reg.npm_as("alice");
    publish(&alice, "@acme/app-lib", "1.0.0", json!({"dependencies": {"is-thing": "^2.0.0"}}));

    let project = alice.project("mixed");
    write_project(&project, json!({"@acme/app-lib": "^1.0.0", "left-pad": "1.0.0"}));
    fresh_install(&alice, &project).ok();
    assert_eq!(installed_version(&project, "@acme/app-lib"), "1.0.0");
    assert_eq!(installed_version(&project, "is-thing"), "2.0.0");
    assert_eq!(installed_version(&project, "left-pad"), "1.0.0");
    // every tarball came through this registry
    let lock = std::fs::read_to_string(project.join("package-lock.json")).unwrap();
    let lock: Value = serde_json::from_str(&lock).unwrap();
    for (path, p) in lock["packages"].as_object().unwrap() {
        if let Some(url) = p["resolved"].as_str() {
            assert!(url.starts_with(&reg.url()), "{path} resolved to {url}");
        }
    }

    // the proxied packument keeps the upstream's time and integrity, with links to here
    let http = reg.http();
    let doc = http.get("/left-pad").json();
    let upstream_doc = up.http().get("/left-pad").json();
    assert_eq!(doc["time"]["1.0.0"], upstream_doc["time"]["1.0.0"]);
    assert_eq!(
        doc["versions"]["1.0.0"]["dist"]["integrity"],
        upstream_doc["versions"]["1.0.0"]["dist"]["integrity"]
    );
    assert_eq!(
        doc["versions"]["1.1.0"]["dist"]["tarball"],
        format!("{}left-pad/-/left-pad-1.1.0.tgz", reg.url())
    );
    let one = http.get("/left-pad/1.1.0");
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["version"], "1.1.0");
    assert_eq!(http.get("/left-pad/latest").json()["version"], "1.1.0");

    // the upstream stops; after maxage the packuments are served stale, tarballs from the cache
    up.kill();
    reg.advance(600);
    let stale = http.get("/left-pad");
    assert_eq!(stale.status, 200, "{}", stale.text);
    assert!(stale.header("warning").is_some_and(|w| w.contains("110")), "{:?}", stale.headers);
    fresh_install(&alice, &project).ok();
    assert_eq!(installed_version(&project, "left-pad"), "1.0.0");
    assert_eq!(installed_version(&project, "is-thing"), "2.0.0");

    // what was never fetched gives a clear gateway error, not a 500
    let never = http.get("/never-fetched");
    assert!(
        [502, 503].contains(&never.status),
        "{} {}",
        never.status,
        never.text
    );
    assert!(never.error().contains("never-fetched"), "{}", never.error());
    let tarball = http.get("/left-pad/-/left-pad-1.1.0.tgz");
    assert!([502, 503].contains(&tarball.status), "{} {}", tarball.status, tarball.text);
    assert!(tarball.error().contains("left-pad@1.1.0"), "{}", tarball.error());
    let r = alice.run_in(&project, &["view", "never-fetched", "version", "--fetch-retries=0"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("never-fetched"), "{}", r.all());
}
