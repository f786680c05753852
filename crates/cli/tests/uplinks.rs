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

/// `@acme/*` local only, everything else from the uplink `up`.
const LOCAL_ACME: &str = "[{pattern = \"@acme/*\"}, {pattern = \"**\", proxy = \"up\"}]";

/// Publishes `name@version` from a folder with `extra` package.json fields.
fn publish(npm: &Npm, name: &str, version: &str, extra: Value) {
    let dir = npm.package(name, version, extra);
    npm.run_in(&dir, &["publish", "--access", "public"]).ok();
}

fn write_project(dir: &Path, deps: Value) {
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string(
            &json!({"name": "app", "version": "1.0.0", "private": true, "dependencies": deps}),
        )
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
    publish(
        &up_npm,
        "is-thing",
        "2.0.0",
        json!({"dependencies": {"left-pad": "^1.0.0"}}),
    );
    publish(&up_npm, "never-fetched", "1.0.0", json!({}));

    let reg = Registry::start_with(&[
        ("TESSERA_UPLINKS", &uplink_var(&up, "")),
        ("TESSERA_PACKAGES", LOCAL_ACME),
    ]);
    let alice = reg.npm_as("alice");
    publish(
        &alice,
        "@acme/app-lib",
        "1.0.0",
        json!({"dependencies": {"is-thing": "^2.0.0"}}),
    );

    let project = alice.project("mixed");
    write_project(
        &project,
        json!({"@acme/app-lib": "^1.0.0", "left-pad": "1.0.0"}),
    );
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

    // the website marks cached packages and their uplink; local ones are not marked
    let page = http.get("/-/web/package/left-pad");
    assert_eq!(page.status, 200);
    assert!(page.text.contains("cached from up"), "{}", page.text);
    assert!(page.text.contains("1.1.0"));
    let list = http.get("/-/web/");
    assert!(list.text.contains("Cached from uplinks") && list.text.contains("is-thing"));
    let local = http.get("/-/web/package/@acme/app-lib");
    assert_eq!(local.status, 200);
    assert!(!local.text.contains("cached from"));

    // the upstream stops; after maxage the packuments are served stale, tarballs from the cache
    up.kill();
    reg.advance(600);
    let stale = http.get("/left-pad");
    assert_eq!(stale.status, 200, "{}", stale.text);
    assert!(
        stale.header("warning").is_some_and(|w| w.contains("110")),
        "{:?}",
        stale.headers
    );
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
    assert!(
        [502, 503].contains(&tarball.status),
        "{} {}",
        tarball.status,
        tarball.text
    );
    assert!(
        tarball.error().contains("left-pad@1.1.0"),
        "{}",
        tarball.error()
    );
    let r = alice.run_in(
        &project,
        &["view", "never-fetched", "version", "--fetch-retries=0"],
    );
    assert_ne!(r.code, 0);
    assert!(r.all().contains("never-fetched"), "{}", r.all());

    // what nobody read for 30 days is pruned, tarballs with it
    let before = reg.count_rows("upstream_tarballs");
    assert!(before >= 2, "{before}");
    reg.advance(31 * 86_400);
    let out = reg.admin(&["cache", "prune", "--older-than", "30d"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("tarballs deleted"), "{said}");
    assert_eq!(reg.count_rows("upstream_tarballs"), 0);
    assert_eq!(reg.count_rows("upstream_packuments"), 0);
    // the local package is untouched
    assert_eq!(http.get("/@acme%2fapp-lib").status, 200);
}

#[test]
fn local_names_and_scopes_never_take_anything_from_the_uplink() {
    let (up, up_npm) = upstream();
    publish(&up_npm, "shared-name", "1.0.0", json!({}));
    publish(&up_npm, "shared-name", "3.0.0", json!({}));
    publish(&up_npm, "@acme/secret", "9.9.9", json!({}));
    publish(&up_npm, "@bob/tools", "1.0.0", json!({}));
    publish(&up_npm, "once-local", "4.0.0", json!({}));

    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &uplink_var(&up, ""))]);
    let alice = reg.npm_as("alice");
    reg.signup("bob", "bob-password");
    let http = reg.http();

    // the first package of a scope that the rules proxy is refused: it would take the whole
    // scope from the uplink
    let dir = alice.package("@acme/app", "1.0.0", json!({}));
    let r = alice.run_in(&dir, &["publish"]);
    assert_ne!(r.code, 0);
    assert!(
        r.all().contains("409") && r.all().contains("first package of the scope @acme"),
        "{}",
        r.all()
    );
    assert_eq!(
        http.get("/@acme%2fsecret").status,
        200,
        "proxied until the scope is ours"
    );
    // an admin allows the scope; from then on nothing of @acme comes from the uplink
    let out = reg.admin(&["allow-name", "@acme"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    alice.run_in(&dir, &["publish"]).ok();
    assert_eq!(http.get("/@acme%2fsecret").status, 404);
    assert_eq!(http.get("/@acme/secret/-/secret-9.9.9.tgz").status, 404);
    assert_eq!(http.get("/@acme/secret/9.9.9").status, 404);
    // a user's name alone does not claim a scope: bob has no packages here
    assert_eq!(http.get("/@bob%2ftools").status, 200);

    // a new unscoped name the uplink has is refused, before any second factor
    let dir = alice.package("shared-name", "4.0.0", json!({}));
    let r = alice.run_in(&dir, &["publish"]);
    assert_ne!(r.code, 0);
    assert!(r.all().contains("409"), "{}", r.all());
    assert!(r.all().contains("dependency confusion"), "{}", r.all());
    assert!(
        r.all().contains("tessera admin allow-name shared-name"),
        "{}",
        r.all()
    );
    // until an admin allows it; then the local package shadows the upstream one entirely
    let out = reg.admin(&["allow-name", "shared-name"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    alice.run_in(&dir, &["publish"]).ok();
    let doc = http.get("/shared-name").json();
    let versions: Vec<&String> = doc["versions"].as_object().unwrap().keys().collect();
    assert_eq!(versions, vec!["4.0.0"]);
    assert_eq!(doc["dist-tags"], json!({"latest": "4.0.0"}));
    assert_eq!(http.get("/shared-name/-/shared-name-3.0.0.tgz").status, 404);
    assert_eq!(http.get("/shared-name/3.0.0").status, 404);
    let project = alice.project("shadow");
    write_project(&project, json!({"shared-name": "*"}));
    fresh_install(&alice, &project).ok();
    assert_eq!(installed_version(&project, "shared-name"), "4.0.0");
    let old = alice.project("shadow-old");
    write_project(&old, json!({"shared-name": "^1.0.0"}));
    assert_ne!(fresh_install(&alice, &old).code, 0);

    // a name published here and then unpublished stays ours: never proxied afterwards
    publish(&alice, "only-here", "1.0.0", json!({}));
    alice.run(&["unpublish", "only-here", "--force"]).ok();
    publish(&up_npm, "only-here", "7.0.0", json!({}));
    assert_eq!(http.get("/only-here").status, 404);

    // a local name that appears upstream later is logged when it is next published
    publish(&alice, "internal-tool", "1.0.0", json!({}));
    publish(&up_npm, "internal-tool", "5.0.0", json!({}));
    publish(&alice, "internal-tool", "1.0.1", json!({}));
    let logged = poll("the local_name_upstream event", || {
        let out = reg.admin(&["security-log", "alice"], None);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.contains("local_name_upstream").then_some(text)
    });
    assert!(logged.contains("internal-tool"), "{logged}");
    assert!(reg.log_text().contains("also exists upstream"));
    assert_eq!(
        http.get("/internal-tool").json()["dist-tags"]["latest"],
        "1.0.1"
    );

    // the admin view lists the uplink and the allowed name
    let out = reg.admin(&["uplinks"], None);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("up\t"), "{text}");
    assert!(text.contains("allowed\tshared-name"), "{text}");
    let out = reg.admin(&["allow-name", "@acme/x"], None);
    assert!(!out.status.success());
}

#[test]
fn upstream_changes_show_after_maxage_and_quarantine_holds_versions_back() {
    let (up, up_npm) = upstream();
    publish(&up_npm, "fresh", "1.0.0", json!({}));
    publish(&up_npm, "young-lib", "1.0.0", json!({}));
    publish(&up_npm, "bad-lib", "1.0.0", json!({}));
    publish(&up_npm, "bad-lib", "1.0.1", json!({}));

    let packages = "[{pattern = \"young-*\", proxy = \"up\", quarantine = {min_age = \"3d\"}}, \
                    {pattern = \"**\", proxy = [\"up\"], quarantine = {deny = [\"bad-lib@>=1.0.1 <2\"]}}]";
    let reg = Registry::start_with(&[
        ("TESSERA_UPLINKS", &uplink_var(&up, ", maxage = \"60s\"")),
        ("TESSERA_PACKAGES", packages),
    ]);
    let http = reg.http();
    assert_eq!(http.get("/fresh").json()["dist-tags"]["latest"], "1.0.0");
    publish(&up_npm, "fresh", "1.1.0", json!({}));
    // within maxage the cached copy is served; after it, the new version shows
    assert_eq!(http.get("/fresh").json()["dist-tags"]["latest"], "1.0.0");
    reg.advance(61);
    assert_eq!(http.get("/fresh").json()["dist-tags"]["latest"], "1.1.0");
    // a name the uplink does not have is remembered as missing briefly, not for hours
    assert_eq!(http.get("/arrives-later").status, 404);
    publish(&up_npm, "arrives-later", "1.0.0", json!({}));
    assert_eq!(http.get("/arrives-later").status, 404);
    reg.advance(31);
    assert_eq!(http.get("/arrives-later").status, 200);
    // a revalidation that finds nothing new is a 304 upstream and changes nothing here
    reg.advance(61);
    let again = http.get("/fresh");
    assert_eq!(again.json()["dist-tags"]["latest"], "1.1.0");

    // a version younger than the rule's minimum age is not served, then is
    let npm = reg.npm();
    let project = npm.project("young");
    write_project(&project, json!({"young-lib": "^1.0.0"}));
    let r = fresh_install(&npm, &project);
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        http.get("/young-lib").json()["versions"]
            .as_object()
            .unwrap()
            .is_empty()
    );
    assert_eq!(http.get("/young-lib/-/young-lib-1.0.0.tgz").status, 403);
    reg.advance(4 * 86_400);
    fresh_install(&npm, &project).ok();
    assert_eq!(installed_version(&project, "young-lib"), "1.0.0");

    // a denied range is kept out and latest moves back to the highest version allowed
    let doc = http.get("/bad-lib").json();
    assert!(doc["versions"].get("1.0.1").is_none());
    assert!(doc["time"].get("1.0.1").is_none());
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    let denied = http.get("/bad-lib/-/bad-lib-1.0.1.tgz");
    assert_eq!(denied.status, 403);
    assert!(denied.error().contains("deny list"), "{}", denied.error());
    let project = npm.project("bad");
    write_project(&project, json!({"bad-lib": "^1.0.0"}));
    fresh_install(&npm, &project).ok();
    assert_eq!(installed_version(&project, "bad-lib"), "1.0.0");

    // a version already served and stored here is refused once a rule denies it (an admin
    // reacting to a bad release): its stored tarball is not served
    let served = http.get("/bad-lib/-/bad-lib-1.0.0.tgz");
    assert_eq!(served.status, 200);
    let packages = "[{pattern = \"young-*\", proxy = \"up\", quarantine = {min_age = \"3d\"}}, \
                    {pattern = \"**\", proxy = [\"up\"], quarantine = {deny = [\"bad-lib@>=1.0.0 <2\"]}}]";
    let reg = reg.restart(&[("TESSERA_PACKAGES", packages)]);
    let http = reg.http();
    let denied = http.get("/bad-lib/-/bad-lib-1.0.0.tgz");
    assert_eq!(denied.status, 403);
    assert!(denied.error().contains("deny list"), "{}", denied.error());
    assert!(
        http.get("/bad-lib").json()["versions"]
            .get("1.0.0")
            .is_none()
    );
    let r = fresh_install(&reg.npm(), &project);
    assert_ne!(r.code, 0, "{}", r.all());
}

#[test]
fn an_upstream_answering_badly_is_refused_logged_and_nothing_is_cached() {
    let stub = stub::Stub::start();
    let uplinks = format!(
        "[{{name = \"stub\", url = \"{}\", timeout = \"2s\", max_fails = 100, max_packument_size = \"64kb\", max_tarball_size = \"64kb\", auth = {{token_env = \"UPSTREAM_TOKEN\"}}, headers = {{X-Tenant = \"acme\"}}}}]",
        stub.url
    );
    let reg = Registry::start_with(&[
        ("TESSERA_UPLINKS", &uplinks),
        ("UPSTREAM_TOKEN", "s3cret-upstream"),
    ]);
    let http = reg.http();

    stub.set(
        "/garbage",
        stub::Reply::bytes(b"<html>hello</html>".to_vec()),
    );
    stub.set(
        "/huge",
        stub::Reply::json(&json!({"name": "huge", "readme": "x".repeat(100_000), "versions": {}})),
    );
    stub.set(
        "/redirected",
        stub::Reply {
            status: 302,
            headers: vec![("location".into(), "http://127.0.0.2:9/redirected".into())],
            ..Default::default()
        },
    );
    let mut slow = stub::Reply::json(&json!({"name": "slow", "versions": {}}));
    slow.drip = Some(std::time::Duration::from_millis(200));
    stub.set("/slow", slow);
    stub.set(
        "/broken",
        stub::Reply {
            status: 500,
            ..Default::default()
        },
    );
    // a package unpublished upstream is a 404 here, not an error
    stub.set(
        "/gone-upstream",
        stub::Reply::json(&json!({"name": "gone-upstream", "time": {"unpublished": {"time": "2026-01-01T00:00:00.000Z"}}})),
    );
    assert_eq!(http.get("/gone-upstream").status, 404);
    for (name, says) in [
        ("garbage", "not JSON"),
        ("huge", "larger than"),
        ("redirected", "another host"),
        ("slow", "timed out"),
        ("broken", "500"),
    ] {
        let r = http.get(&format!("/{name}"));
        assert_eq!(r.status, 502, "{name}: {} {}", r.status, r.text);
        assert!(r.error().contains(says), "{name}: {}", r.error());
    }
    // a tarball that does not match its packument's integrity is refused
    stub.package("tampered", "1.0.0");
    stub.set(
        "/tampered/-/tampered-1.0.0.tgz",
        stub::Reply::bytes(tgz(
            &json!({"name": "tampered", "version": "1.0.0"}),
            &[("package/evil.js", b"2")],
        )),
    );
    let r = http.get("/tampered/-/tampered-1.0.0.tgz");
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(
        r.error().contains("does not match dist.integrity"),
        "{}",
        r.error()
    );
    // an oversized tarball too
    stub.package("fat", "1.0.0");
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    stub.set("/fat/-/fat-1.0.0.tgz", stub::Reply::bytes(big));
    let r = http.get("/fat/-/fat-1.0.0.tgz");
    assert_eq!(r.status, 502, "{}", r.text);
    assert!(r.error().contains("larger than"), "{}", r.error());

    // nothing of it was kept, and every failure was logged
    assert_eq!(reg.count_rows("upstream_tarballs"), 0);
    let kept: i64 = reg.count_rows("upstream_packuments");
    assert_eq!(kept, 2, "only tampered and fat, whose packuments were good");
    let log = reg.log_text();
    for what in [
        "not JSON",
        "larger than",
        "another host",
        "timed out",
        "dist.integrity",
    ] {
        assert!(log.contains(what), "the log does not mention {what}");
    }
    // a good package still goes through
    let good = stub.package("good", "1.0.0");
    let r = http.get("/good/-/good-1.0.0.tgz");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.bytes, good);
    assert_eq!(reg.count_rows("upstream_tarballs"), 1);
    // every request carried the uplink's token (from its variable) and extra header, gzip
    // accepted
    let seen = stub.seen();
    assert!(!seen.is_empty());
    for s in &seen {
        let h = |k: &str| {
            s.headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            h("authorization"),
            Some("Bearer s3cret-upstream"),
            "{}",
            s.path
        );
        assert_eq!(h("x-tenant"), Some("acme"), "{}", s.path);
        assert!(
            h("accept-encoding").is_some_and(|v| v.contains("gzip")),
            "{}",
            s.path
        );
    }
    // the token is not in the log
    assert!(!reg.log_text().contains("s3cret-upstream"));
}

#[test]
fn npm_audit_goes_to_the_uplink_without_local_names_or_says_nothing_was_checked() {
    // no uplink: npm audit works and says nothing was checked
    let plain = Registry::start();
    let npm = plain.npm_as("carol");
    publish(&npm, "solo", "1.0.0", json!({}));
    let project = npm.project("solo-app");
    write_project(&project, json!({"solo": "1.0.0"}));
    fresh_install(&npm, &project).ok();
    let r = npm.run_in(&project, &["audit"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.all().contains("nothing was checked"), "{}", r.all());

    // through an uplink: the advisories come back, local names never leave
    let stub = stub::Stub::start();
    stub.package("left-pad", "1.0.0");
    stub.set(
        "/-/npm/v1/security/advisories/bulk",
        stub::Reply::json(&json!({"left-pad": [{
            "id": 1001, "url": "https://example.test/GHSA-0001", "title": "Pads too much",
            "severity": "high", "vulnerable_versions": "<1.1.0", "cwe": [], "cvss": {"score": 7.5, "vectorString": null}
        }]})),
    );
    let uplinks = format!("[{{name = \"stub\", url = \"{}\"}}]", stub.url);
    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &uplinks)]);
    let alice = reg.npm_as("alice");
    publish(&alice, "internal-secret", "1.0.0", json!({}));
    let project = alice.project("audited");
    write_project(
        &project,
        json!({"left-pad": "1.0.0", "internal-secret": "1.0.0"}),
    );
    fresh_install(&alice, &project).ok();
    let r = alice.run_in(&project, &["audit", "--json"]);
    assert_ne!(r.code, 0, "a high advisory fails npm audit: {}", r.all());
    let report: Value = serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("{}", r.all()));
    assert_eq!(
        report["vulnerabilities"]["left-pad"]["severity"], "high",
        "{report}"
    );
    assert!(report["vulnerabilities"].get("internal-secret").is_none());
    let asked: Vec<stub::Seen> = stub
        .seen()
        .into_iter()
        .filter(|s| s.path.contains("advisories/bulk"))
        .collect();
    assert!(!asked.is_empty());
    for s in &asked {
        let body: Value = serde_json::from_slice(&s.body).unwrap();
        assert!(body.get("left-pad").is_some(), "{body}");
        assert!(
            body.get("internal-secret").is_none(),
            "a local name left: {body}"
        );
    }

    // npm 6's quick audit: the local node goes, the public package nested under it moves up
    stub.set(
        "/-/npm/v1/security/audits/quick",
        stub::Reply::json(&json!({"advisories": {}, "metadata": {"vulnerabilities": {}}})),
    );
    let tree = json!({
        "name": "app", "version": "1.0.0",
        "requires": {"internal-secret": "1.0.0", "left-pad": "1.0.0"},
        "dependencies": {
            "left-pad": {"version": "1.0.0"},
            "internal-secret": {
                "version": "1.0.0",
                "requires": {"left-pad": "2.0.0", "is-thing": "1.0.0"},
                "dependencies": {
                    "left-pad": {"version": "2.0.0"},
                    "is-thing": {"version": "1.0.0", "requires": {"internal-secret": "1.0.0"}}
                }
            }
        }
    });
    let r = reg
        .http()
        .post_json("/-/npm/v1/security/audits/quick", &tree);
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = stub
        .seen()
        .into_iter()
        .rfind(|s| s.path.contains("audits/quick"))
        .expect("the quick audit was forwarded");
    let body: Value = serde_json::from_slice(&sent.body).unwrap();
    assert!(
        !String::from_utf8_lossy(&sent.body).contains("internal-secret"),
        "a local name left: {body}"
    );
    assert_eq!(
        body["dependencies"]["is-thing"]["version"], "1.0.0",
        "{body}"
    );
    assert_eq!(body["requires"]["is-thing"], "1.0.0", "{body}");
    // the name already at the top keeps its place
    assert_eq!(
        body["dependencies"]["left-pad"]["version"], "1.0.0",
        "{body}"
    );
}

#[test]
fn concurrent_misses_make_one_request_and_a_failing_uplink_is_skipped_then_retried() {
    let stub = stub::Stub::start();
    let tgz = stub.package("popular", "1.0.0");
    // slow answers, so that the requests overlap
    stub.drip("/popular", std::time::Duration::from_micros(1500));
    stub.drip(
        "/popular/-/popular-1.0.0.tgz",
        std::time::Duration::from_millis(3),
    );
    let uplinks = format!(
        "[{{name = \"stub\", url = \"{}\", max_fails = 2, fail_timeout = \"60s\", timeout = \"20s\"}}]",
        stub.url
    );
    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &uplinks)]);
    let docs = race(8, |_| reg.http().get("/popular").status);
    assert!(docs.iter().all(|s| *s == 200), "{docs:?}");
    assert_eq!(stub.count("/popular"), 1);
    let tarballs = race(8, |_| reg.http().get("/popular/-/popular-1.0.0.tgz").bytes);
    assert!(tarballs.iter().all(|b| *b == tgz));
    assert_eq!(stub.count("/popular/-/popular-1.0.0.tgz"), 1);

    // two failures in a row open the breaker: the uplink is not asked for a minute
    stub.set(
        "/flaky",
        stub::Reply {
            status: 503,
            ..Default::default()
        },
    );
    assert_eq!(reg.http().get("/flaky").status, 502);
    assert_eq!(reg.http().get("/flaky").status, 502);
    assert_eq!(stub.count("/flaky"), 2);
    stub.package("other", "1.0.0");
    let skipped = reg.http().get("/other");
    assert_eq!(skipped.status, 503);
    assert!(skipped.error().contains("skipped"), "{}", skipped.error());
    assert_eq!(stub.count("/other"), 0);
    // cached packages are still served meanwhile, tarballs too
    assert_eq!(reg.http().get("/popular/-/popular-1.0.0.tgz").status, 200);
    let out = reg.admin(&["uplinks"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("DOWN until"));
    // after fail_timeout one request probes the uplink while the others are still skipped;
    // the probe fails, and the breaker opens again
    reg.advance(61);
    for i in 0..6 {
        let path = format!("/probe-{i}");
        stub.set(
            &path,
            stub::Reply {
                status: 503,
                body: b"still down".to_vec(),
                ..Default::default()
            },
        );
        stub.drip(&path, std::time::Duration::from_millis(100));
    }
    let statuses = race(6, |i| reg.http().get(&format!("/probe-{i}")).status);
    let asked: usize = (0..6).map(|i| stub.count(&format!("/probe-{i}"))).sum();
    assert_eq!(asked, 1, "one probe: {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(reg.http().get("/other").status, 503);
    // after fail_timeout again the probe finds it back, and the breaker closes
    reg.advance(61);
    assert_eq!(reg.http().get("/other").status, 200);
    assert_eq!(stub.count("/other"), 1);
}

#[test]
fn a_merge_rule_serves_a_patched_fork_together_with_the_public_versions() {
    let (mut up, up_npm) = upstream();
    publish(
        &up_npm,
        "left-pad",
        "1.0.0",
        json!({"description": "public"}),
    );
    publish(&up_npm, "left-pad", "1.2.0", json!({}));
    publish(&up_npm, "left-pad", "1.3.0", json!({}));
    up_npm
        .run(&["dist-tag", "add", "left-pad@1.2.0", "legacy"])
        .ok();
    up_npm
        .run(&["dist-tag", "add", "left-pad@1.0.0", "first"])
        .ok();
    publish(&up_npm, "right-pad", "1.0.0", json!({}));
    publish(&up_npm, "mid-pad", "1.0.0", json!({}));

    let rules = "[{pattern = \"left-pad\", proxy = \"up\", mode = \"merge\"}, \
                 {pattern = \"mid-pad\", proxy = \"up\", mode = \"merge\"}, \
                 {pattern = \"ghost-pad\", proxy = \"up\", mode = \"merge\"}, \
                 {pattern = \"**\", proxy = \"up\"}]";
    let reg = Registry::start_with(&[
        ("TESSERA_UPLINKS", &uplink_var(&up, "")),
        ("TESSERA_PACKAGES", rules),
    ]);
    let alice = reg.npm_as("alice");
    let http = reg.http();

    // the rule says the name lives in both places: no 409 for the name
    publish(
        &alice,
        "left-pad",
        "1.3.1",
        json!({"description": "our fork"}),
    );
    // but a number the uplink has is refused (npm 11 sees it in the merged packument and
    // refuses by itself; the server refuses older clients)
    let m = json!({"name": "left-pad", "version": "1.0.0"});
    let r = http.with_token(&alice.token().unwrap()).put_json(
        "/left-pad",
        &publish_body(&reg.url(), "left-pad", "1.0.0", &tgz(&m, &[])),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(
        r.error().contains("exists on the uplink up"),
        "{}",
        r.error()
    );
    // the uplink publishes the fork's number later: the local version wins
    publish(
        &up_npm,
        "left-pad",
        "1.3.1",
        json!({"description": "public"}),
    );
    publish(&up_npm, "left-pad", "1.4.0", json!({}));
    reg.advance(200);
    let doc = http.get("/left-pad").json();
    let mut versions: Vec<&String> = doc["versions"].as_object().unwrap().keys().collect();
    versions.sort();
    assert_eq!(
        versions,
        ["1.0.0", "1.2.0", "1.3.0", "1.3.1", "1.4.0"],
        "{doc}"
    );
    assert_eq!(doc["versions"]["1.3.1"]["description"], "our fork");
    assert_eq!(doc["description"], "our fork");
    // local tags win (latest stays on the fork); the uplink's other tags stay when they point
    // at a version it adds
    assert_eq!(doc["dist-tags"]["latest"], "1.3.1");
    assert_eq!(doc["dist-tags"]["legacy"], "1.2.0");
    assert_eq!(doc["dist-tags"]["first"], "1.0.0");
    assert!(doc["time"]["1.2.0"].is_string());
    let corgi = http.send(
        "GET",
        "/left-pad",
        &[("accept", "application/vnd.npm.install-v1+json")],
        None,
    );
    assert_eq!(corgi.json()["versions"].as_object().unwrap().len(), 5);
    assert_eq!(corgi.json()["dist-tags"], doc["dist-tags"]);
    assert_eq!(http.get("/left-pad/legacy").json()["version"], "1.2.0");

    // npm installs both kinds: the public 1.2.0 through the uplink, the fork from here
    let project = alice.project("merged");
    write_project(&project, json!({"left-pad": "~1.2.0"}));
    fresh_install(&alice, &project).ok();
    assert_eq!(installed_version(&project, "left-pad"), "1.2.0");
    let lock = std::fs::read_to_string(project.join("package-lock.json")).unwrap();
    assert!(
        lock.contains(&format!(
            "{}/left-pad/-/left-pad-1.2.0.tgz",
            reg.url().trim_end_matches('/')
        )),
        "{lock}"
    );
    write_project(&project, json!({"left-pad": "~1.3.1"}));
    fresh_install(&alice, &project).ok();
    assert_eq!(installed_version(&project, "left-pad"), "1.3.1");
    let ours = http.get("/left-pad/-/left-pad-1.3.1.tgz");
    let theirs = up.http().get("/left-pad/-/left-pad-1.3.1.tgz");
    assert_eq!((ours.status, theirs.status), (200, 200));
    assert_ne!(ours.bytes, theirs.bytes, "the local 1.3.1 is served");

    // a number unpublished here is not filled from the uplink (npm 11 wants a tag for a
    // version below the highest one, which the uplink's 1.4.0 is)
    let fork = |v: &str| {
        let dir = alice.package("left-pad", v, json!({}));
        alice.run_in(&dir, &["publish", "--tag", "acme"]).ok();
    };
    fork("1.3.2");
    alice.run(&["unpublish", "left-pad@1.3.2", "--force"]).ok();
    let dir = up_npm.package("left-pad", "1.3.2", json!({}));
    up_npm.run_in(&dir, &["publish", "--tag", "patch"]).ok();
    reg.advance(200);
    let doc = http.get("/left-pad").json();
    assert!(doc["versions"].get("1.3.2").is_none(), "{doc}");
    assert!(doc["dist-tags"].get("patch").is_none(), "{doc}");
    assert_eq!(http.get("/left-pad/1.3.2").status, 404);
    assert_eq!(http.get("/left-pad/-/left-pad-1.3.2.tgz").status, 404);

    // a merge rule changes nothing for other names: right-pad is still the uplink's alone
    let dir = alice.package("right-pad", "2.0.0", json!({}));
    let r = alice.run_in(&dir, &["publish"]);
    assert!(r.all().contains("409"), "{}", r.all());
    // nor is a merged name reported as a local name appearing upstream
    fork("1.3.3");
    assert!(!reg.log_text().contains("also exists upstream"));

    // a merge rule's name the uplink does not have is refused: a private package there would
    // take whatever is published upstream under its name later
    let dir = alice.package("ghost-pad", "1.0.0", json!({}));
    let r = alice.run_in(&dir, &["publish"]);
    assert!(r.all().contains("409"), "{}", r.all());
    assert!(r.all().contains("no uplink has it"), "{}", r.all());

    // a fork unpublished here is not served from the uplink alone afterwards
    let dir = alice.package("mid-pad", "1.0.1", json!({}));
    alice.run_in(&dir, &["publish"]).ok();
    assert_eq!(
        http.get("/mid-pad").json()["versions"]
            .as_object()
            .unwrap()
            .len(),
        2
    );
    alice.run(&["unpublish", "mid-pad", "--force"]).ok();
    assert_eq!(http.get("/mid-pad").status, 404);

    // with the uplink gone, the merged package is served from the cached copy, marked stale;
    // an upstream tarball never fetched is a gateway error, not a 404
    up.kill();
    reg.advance(3600);
    let stale = http.get("/left-pad");
    assert!(
        stale.header("warning").is_some_and(|w| w.contains("110")),
        "{:?}",
        stale.headers
    );
    let doc = stale.json();
    assert_eq!(doc["dist-tags"]["acme"], "1.3.3", "{doc}");
    assert_eq!(doc["dist-tags"]["latest"], "1.3.1", "{doc}");
    assert!(doc["versions"].get("1.4.0").is_some());
    let never = http.get("/left-pad/-/left-pad-1.4.0.tgz");
    assert!([502, 503].contains(&never.status), "{}", never.status);
    write_project(&project, json!({"left-pad": "1.3.3"}));
    fresh_install(&alice, &project).ok();
    assert_eq!(installed_version(&project, "left-pad"), "1.3.3");
}

#[test]
fn a_merge_rule_over_every_name_is_refused_at_start() {
    let data = tempfile::tempdir().unwrap();
    for pattern in ["**", "@*/*", "*"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("--data")
            .arg(data.path())
            .args(["admin", "uplinks"])
            .env(
                "TESSERA_UPLINKS",
                "[{name = \"up\", url = \"http://127.0.0.1:9\"}]",
            )
            .env(
                "TESSERA_PACKAGES",
                format!("[{{pattern = \"{pattern}\", proxy = \"up\", mode = \"merge\"}}]"),
            )
            .output()
            .unwrap();
        assert!(!out.status.success(), "{pattern}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("must name its packages"), "{pattern}: {err}");
    }
}

/// A packument of `name@1.0.0` whose tarball is at `tarball_url`, and the tarball.
fn upstream_doc(name: &str, tarball_url: &str) -> (Value, Vec<u8>) {
    let tgz = tgz(
        &json!({"name": name, "version": "1.0.0"}),
        &[("package/index.js", b"1")],
    );
    let (_, integrity, shasum) = consistency::digests(&tgz);
    let doc = json!({
        "name": name,
        "dist-tags": {"latest": "1.0.0"},
        "time": {"created": "2020-01-01T00:00:00.000Z", "1.0.0": "2020-01-01T00:00:00.000Z"},
        "versions": {"1.0.0": {
            "name": name, "version": "1.0.0",
            "dist": {"tarball": tarball_url, "integrity": integrity, "shasum": shasum}
        }}
    });
    (doc, tgz)
}

#[test]
fn an_uplink_is_reached_through_its_http_proxy() {
    // the uplink's host does not resolve here: only the proxy (a stub) can answer for it
    let proxy = stub::Stub::start();
    let origin = "http://registry.invalid";
    let (doc, tarball) = upstream_doc(
        "via-proxy",
        &format!("{origin}/via-proxy/-/via-proxy-1.0.0.tgz"),
    );
    proxy.set(&format!("{origin}/via-proxy"), stub::Reply::json(&doc));
    proxy.set(
        &format!("{origin}/via-proxy/-/via-proxy-1.0.0.tgz"),
        stub::Reply::bytes(tarball.clone()),
    );
    let uplinks = format!(
        "[{{name = \"up\", url = \"{origin}/\", proxy = \"{}\"}}]",
        proxy.url
    );
    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &uplinks)]);
    let http = reg.http();
    let got = http.get("/via-proxy");
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.json()["dist-tags"]["latest"], "1.0.0");
    let t = http.get("/via-proxy/-/via-proxy-1.0.0.tgz");
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.bytes, tarball);
    // both went to the proxy, in the absolute form a proxy is asked with
    let seen: Vec<String> = proxy.seen().into_iter().map(|s| s.path).collect();
    assert!(seen.contains(&format!("{origin}/via-proxy")), "{seen:?}");
    assert!(
        seen.contains(&format!("{origin}/via-proxy/-/via-proxy-1.0.0.tgz")),
        "{seen:?}"
    );
}

/// Runs `openssl` with `args` in `dir`.
fn openssl(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A process stopped (by its PID) when the test ends, even by a panic.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTPS upstream on loopback: Python's file server behind TLS, with a certificate from a
/// private CA. Returns the server process, its URL, the CA file and the tarball it serves.
fn tls_upstream(dir: &Path, name: &str) -> (Stopped, String, std::path::PathBuf, Vec<u8>) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=tessera test CA",
            "-days",
            "2",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let root = dir.join("www");
    std::fs::create_dir_all(root.join("files")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("https://127.0.0.1:{port}/");
    let (doc, tarball) = upstream_doc(name, &format!("{url}files/{name}-1.0.0.tgz"));
    std::fs::write(root.join(name), serde_json::to_vec(&doc).unwrap()).unwrap();
    std::fs::write(
        root.join("files").join(format!("{name}-1.0.0.tgz")),
        &tarball,
    )
    .unwrap();
    let child = std::process::Command::new("python3")
        .args([
            "-c",
            "import http.server, ssl, sys, os\n\
             os.chdir(sys.argv[1])\n\
             srv = http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[2])), \
             http.server.SimpleHTTPRequestHandler)\n\
             ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n\
             ctx.load_cert_chain(sys.argv[3], sys.argv[4])\n\
             srv.socket = ctx.wrap_socket(srv.socket, server_side=True)\n\
             srv.serve_forever()\n",
        ])
        .arg(&root)
        .arg(port.to_string())
        .arg(dir.join("server.pem"))
        .arg(dir.join("server.key"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3");
    poll("the TLS upstream", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    (Stopped(child), url, dir.join("ca.pem"), tarball)
}

#[test]
fn an_https_uplink_is_trusted_through_its_ca_file_and_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, url, ca, tarball) = tls_upstream(dir.path(), "tls-pkg");

    // with the private CA: served, tarball and all
    let with_ca = format!(
        "[{{name = \"up\", url = \"{url}\", ca = \"{}\"}}]",
        ca.display()
    );
    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &with_ca)]);
    let got = reg.http().get("/tls-pkg");
    assert_eq!(got.status, 200, "{}", got.text);
    let t = reg.http().get("/tls-pkg/-/tls-pkg-1.0.0.tgz");
    assert_eq!(t.status, 200, "{}", t.text);
    assert_eq!(t.bytes, tarball);

    // without it the certificate is not trusted: a clear gateway error, nothing cached
    let without = format!("[{{name = \"up\", url = \"{url}\"}}]");
    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &without)]);
    let refused = reg.http().get("/tls-pkg");
    assert_eq!(refused.status, 502, "{}", refused.text);
    assert!(refused.error().contains("tls-pkg"), "{}", refused.error());
    assert_eq!(reg.count_rows("upstream_packuments"), 0);

    // strict_ssl = false accepts it (Verdaccio's escape hatch, for tests and emergencies)
    let lax = format!("[{{name = \"up\", url = \"{url}\", strict_ssl = false}}]");
    let reg = Registry::start_with(&[("TESSERA_UPLINKS", &lax)]);
    assert_eq!(reg.http().get("/tls-pkg").status, 200);
}
