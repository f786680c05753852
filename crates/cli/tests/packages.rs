//! Package commands with the real npm CLI: publish, view, install, dist-tag, owner, deprecate,
//! unpublish, access, search, star.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn publish_view_and_install_unscoped_and_scoped() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let out = alice.publish("demo-pkg", "1.0.0", &[]);
    assert!(out.ok().contains("+ demo-pkg@1.0.0"), "{}", out.all());
    let out = alice.publish("@alice/scoped", "1.0.0", &["--access", "public"]);
    assert!(out.ok().contains("+ @alice/scoped@1.0.0"), "{}", out.all());
    alice.publish("demo-pkg", "1.1.0", &[]).ok();

    let view = alice.run(&["view", "demo-pkg", "--json"]);
    let v: Value = serde_json::from_str(view.ok()).unwrap();
    assert_eq!(v["version"], "1.1.0");
    assert_eq!(v["versions"], json!(["1.0.0", "1.1.0"]));
    assert_eq!(v["maintainers"][0], "alice <alice@example.com>");
    assert_eq!(
        v["dist"]["tarball"],
        format!("{}demo-pkg/-/demo-pkg-1.1.0.tgz", reg.url())
    );

    // The scoped tarball URL is the registry's own, not npm's bogus one.
    let v: Value =
        serde_json::from_str(alice.run(&["view", "@alice/scoped", "--json"]).ok()).unwrap();
    assert_eq!(
        v["dist"]["tarball"],
        format!("{}@alice/scoped/-/scoped-1.0.0.tgz", reg.url())
    );

    // Another user installs both into a project, from a cold cache, anonymously too.
    let bob = reg.npm_as("bob");
    let app = bob.project("app");
    bob.run_in(&app, &["install", "demo-pkg", "@alice/scoped@1.0.0"])
        .ok();
    let installed = std::fs::read_to_string(app.join("node_modules/demo-pkg/index.js")).unwrap();
    assert!(installed.contains("demo-pkg@1.1.0"));
    assert!(app.join("node_modules/@alice/scoped/package.json").exists());
    let anon = reg.npm();
    let app = anon.project("anon-app");
    anon.run_in(&app, &["install", "demo-pkg@1.0.0"]).ok();
    let installed = std::fs::read_to_string(app.join("node_modules/demo-pkg/index.js")).unwrap();
    assert!(installed.contains("demo-pkg@1.0.0"));
}

#[test]
fn read_path_serves_full_and_abbreviated_documents_and_tarballs() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    alice.publish("demo-pkg", "1.0.0", &[]).ok();
    let http = reg.http();
    let full = http.get("/demo-pkg");
    assert_eq!(full.status, 200);
    let f = full.json();
    assert_eq!(f["name"], "demo-pkg");
    assert!(f["_rev"].as_str().unwrap().starts_with('1'));
    assert!(f["time"]["1.0.0"].is_string());
    assert!(f["readme"].as_str().unwrap().contains("Version 1.0.0"));
    let integrity = f["versions"]["1.0.0"]["dist"]["integrity"]
        .as_str()
        .unwrap()
        .to_owned();

    let corgi = http.send(
        "GET",
        "/demo-pkg",
        &[(
            "accept",
            "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*",
        )],
        None,
    );
    assert_eq!(corgi.status, 200);
    assert!(
        corgi
            .header("content-type")
            .unwrap()
            .starts_with("application/vnd.npm.install-v1+json")
    );
    let c = corgi.json();
    assert!(c.get("readme").is_none());
    assert_eq!(
        c["versions"]["1.0.0"]["dist"]["integrity"],
        integrity.as_str()
    );
    // ?write=true always gets the full document
    let w = http.send(
        "GET",
        "/demo-pkg?write=true",
        &[("accept", "application/vnd.npm.install-v1+json")],
        None,
    );
    assert!(w.json().get("_rev").is_some());

    // ETag revalidation
    let etag = full.header("etag").unwrap().to_owned();
    let again = http.send("GET", "/demo-pkg", &[("if-none-match", &etag)], None);
    assert_eq!(again.status, 304);

    // the tarball, and the encodings of scoped names
    let t = http.get("/demo-pkg/-/demo-pkg-1.0.0.tgz");
    assert_eq!(t.status, 200);
    assert_eq!(t.header("content-type"), Some("application/octet-stream"));
    alice
        .publish("@alice/x", "1.0.0", &["--access", "public"])
        .ok();
    for path in ["/@alice%2fx", "/@alice%2Fx", "/@alice/x"] {
        assert_eq!(http.get(path).status, 200, "{path}");
    }
    assert_eq!(http.get("/@alice/x/-/x-1.0.0.tgz").status, 200);
    assert_eq!(http.get("/demo-pkg/1.0.0").json()["version"], "1.0.0");
    assert_eq!(http.get("/demo-pkg/latest").json()["version"], "1.0.0");
    assert_eq!(http.get("/no-such-pkg").status, 404);
    assert_eq!(http.get("/no-such-pkg").error(), "Not found");
}

/// Every form a reader may have cached: full, abbreviated, abbreviated gzipped (sent plain while
/// it is under a kilobyte), as JSON.
fn all_forms(reg: &Registry, name: &str) -> Vec<serde_json::Value> {
    const CORGI: &str = "application/vnd.npm.install-v1+json";
    let http = reg.http();
    let full = http.get(&format!("/{name}"));
    let corgi = http.send("GET", &format!("/{name}"), &[("accept", CORGI)], None);
    let gz = http.send(
        "GET",
        &format!("/{name}"),
        &[("accept", CORGI), ("accept-encoding", "gzip")],
        None,
    );
    let mut plain = Vec::new();
    if corgi.bytes.len() < 1024 {
        assert_eq!(gz.header("content-encoding"), None, "too small to compress");
        plain = gz.bytes.clone();
    } else {
        assert_eq!(gz.header("content-encoding"), Some("gzip"));
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.bytes[..]), &mut plain)
            .unwrap();
    }
    vec![
        full.json(),
        corgi.json(),
        serde_json::from_slice(&plain).unwrap(),
    ]
}

/// npm asks for the abbreviated form with `accept-encoding: gzip`: under a kilobyte it comes
/// plain (compressing would save a hundred bytes or so), past that gzipped, and both are what
/// npm installs from.
#[test]
fn small_packuments_come_plain_and_larger_ones_gzipped() {
    const CORGI: &str = "application/vnd.npm.install-v1+json";
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let http = reg.http();
    let mut seen_gzip = false;
    for minor in 0..8 {
        alice.publish("grows", &format!("1.{minor}.0"), &[]).ok();
        let plain = http.send("GET", "/grows", &[("accept", CORGI)], None);
        let gz = http.send(
            "GET",
            "/grows",
            &[("accept", CORGI), ("accept-encoding", "gzip")],
            None,
        );
        assert_eq!(gz.status, 200);
        if plain.bytes.len() < 1024 {
            assert_eq!(gz.header("content-encoding"), None, "1.{minor}.0");
            assert_eq!(gz.bytes, plain.bytes);
            assert_eq!(gz.header("etag"), plain.header("etag"));
        } else {
            assert_eq!(gz.header("content-encoding"), Some("gzip"), "1.{minor}.0");
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz.bytes[..]), &mut body)
                .unwrap();
            assert_eq!(body, plain.bytes);
            assert_ne!(gz.header("etag"), plain.header("etag"));
            seen_gzip = true;
            break;
        }
    }
    assert!(seen_gzip, "the abbreviated form never passed a kilobyte");
    // npm installs from the gzipped form
    let app = alice.project("grows-app");
    alice.run_in(&app, &["install", "grows@1"]).ok();
    assert!(app.join("node_modules/grows/package.json").exists());
}

#[test]
fn every_write_is_seen_by_the_very_next_read() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    reg.signup("bob", "bob-password1");
    alice.publish("fresh", "1.0.0", &[]).ok();
    let http = reg.http();
    // warm every form, and keep the ETag a client would revalidate with
    let forms = all_forms(&reg, "fresh");
    assert!(forms.iter().all(|f| f["dist-tags"]["latest"] == "1.0.0"));
    assert_eq!(http.get("/fresh/1.0.0").json()["version"], "1.0.0");
    let etag = http.get("/fresh").header("etag").unwrap().to_owned();
    let still = |etag: &str| {
        http.send("GET", "/fresh", &[("if-none-match", etag)], None)
            .status
    };
    assert_eq!(still(&etag), 304);

    alice.publish("fresh", "1.1.0", &[]).ok();
    for f in all_forms(&reg, "fresh") {
        assert_eq!(f["dist-tags"]["latest"], "1.1.0", "publish: {f}");
        assert!(f["versions"].get("1.1.0").is_some());
    }
    assert_eq!(http.get("/fresh/latest").json()["version"], "1.1.0");
    assert_eq!(still(&etag), 200, "the old ETag no longer matches");

    alice
        .run(&["dist-tag", "add", "fresh@1.0.0", "stable"])
        .ok();
    for f in all_forms(&reg, "fresh") {
        assert_eq!(f["dist-tags"]["stable"], "1.0.0", "dist-tag add: {f}");
    }
    assert_eq!(http.get("/fresh/stable").json()["version"], "1.0.0");
    alice.run(&["dist-tag", "rm", "fresh", "stable"]).ok();
    for f in all_forms(&reg, "fresh") {
        assert!(f["dist-tags"].get("stable").is_none(), "dist-tag rm: {f}");
    }

    alice.run(&["deprecate", "fresh@1.0.0", "old"]).ok();
    for f in all_forms(&reg, "fresh") {
        assert_eq!(
            f["versions"]["1.0.0"]["deprecated"], "old",
            "deprecate: {f}"
        );
    }
    assert_eq!(http.get("/fresh/1.0.0").json()["deprecated"], "old");

    alice.run(&["owner", "add", "bob", "fresh"]).ok();
    let full = http.get("/fresh").json();
    assert!(
        full["maintainers"].to_string().contains("bob"),
        "owner add: {full}"
    );

    alice.run(&["unpublish", "fresh@1.1.0"]).ok();
    for f in all_forms(&reg, "fresh") {
        assert!(f["versions"].get("1.1.0").is_none(), "unpublish: {f}");
    }
    assert_eq!(http.get("/fresh/-/fresh-1.1.0.tgz").status, 404);
    assert_eq!(http.get("/fresh/1.1.0").status, 404);

    // access: a scoped package goes private, and anonymous readers lose it at once
    alice
        .publish("@alice/fresh", "1.0.0", &["--access", "public"])
        .ok();
    assert_eq!(http.get("/@alice%2ffresh").status, 200);
    assert_eq!(http.get("/@alice/fresh/-/fresh-1.0.0.tgz").status, 200);
    alice
        .run(&["access", "set", "status=private", "@alice/fresh"])
        .ok();
    assert_eq!(http.get("/@alice%2ffresh").status, 404, "access");
    assert_eq!(http.get("/@alice/fresh/-/fresh-1.0.0.tgz").status, 404);

    // unpublishing the whole package: gone, and a new package of the same name starts afresh
    alice.run(&["unpublish", "fresh", "--force"]).ok();
    assert_eq!(http.get("/fresh").status, 404);
    alice.publish("fresh", "2.0.0", &[]).ok();
    for f in all_forms(&reg, "fresh") {
        assert_eq!(f["dist-tags"]["latest"], "2.0.0", "republished: {f}");
        assert!(f["versions"].get("1.0.0").is_none());
    }
}

#[test]
fn dist_tags_add_ls_rm() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    let t = alice.token().unwrap();
    for name in ["demo-pkg", "@alice/tagged"] {
        let path = name.replacen('/', "%2f", 1);
        alice.publish(name, "1.0.0", &["--access", "public"]).ok();
        alice.publish(name, "2.0.0-beta.1", &["--tag", "beta"]).ok();
        let ls = alice.run(&["dist-tag", "ls", name]);
        assert!(ls.ok().contains("beta: 2.0.0-beta.1"), "{}", ls.all());
        assert!(ls.ok().contains("latest: 1.0.0"));
        let add = alice.run(&["dist-tag", "add", &format!("{name}@1.0.0"), "stable"]);
        assert!(
            add.ok().contains(&format!("+stable: {name}@1.0.0")),
            "{}",
            add.all()
        );
        let rm = alice.run(&["dist-tag", "rm", name, "beta"]);
        assert!(
            rm.ok().contains(&format!("-beta: {name}@2.0.0-beta.1")),
            "{}",
            rm.all()
        );
        let tags = reg
            .http()
            .get(&format!("/-/package/{path}/dist-tags"))
            .json();
        assert_eq!(tags, json!({"latest": "1.0.0", "stable": "1.0.0"}));
        // visible in the packument at once
        assert_eq!(
            reg.http().get(&format!("/{path}")).json()["dist-tags"]["stable"],
            "1.0.0"
        );
        // a tag to a version that does not exist, a range-like tag, removing latest
        assert!(
            alice
                .run(&["dist-tag", "add", &format!("{name}@9.9.9"), "x9"])
                .fails()
                .contains("not published")
        );
        let r = reg.http().with_token(&t).send(
            "PUT",
            &format!("/-/package/{path}/dist-tags/1.x"),
            &[("content-type", "application/json")],
            Some(b"\"1.0.0\"".to_vec()),
        );
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(
            reg.http()
                .with_token(&t)
                .delete(&format!("/-/package/{path}/dist-tags/latest"))
                .status,
            400
        );
        // only maintainers
        assert!(
            bob.run(&["dist-tag", "add", &format!("{name}@1.0.0"), "evil"])
                .fails()
                .contains("403")
        );
        assert_eq!(
            reg.http()
                .get(&format!("/-/package/{path}/dist-tags"))
                .json()
                .get("evil"),
            None
        );
    }
}

#[test]
fn owners_add_ls_rm() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    // the scoped one stays restricted: bob sees it only once he is an owner
    for name in ["demo-pkg", "@alice/owned"] {
        let path = name.replacen('/', "%2f", 1);
        alice.publish(name, "1.0.0", &[]).ok();
        // not his: a visible package is a 403; alice's scope refuses him whether the package
        // exists or not, so the answer does not tell him that it does
        let refused = "403";
        let out = bob.publish(name, "1.0.1", &[]).fails();
        assert!(out.contains(refused), "{out}");
        if name.starts_with('@') {
            assert!(out.contains("belongs to"), "{out}");
        }
        let add = alice.run(&["owner", "add", "bob", name]);
        assert!(
            add.ok().contains(&format!("+ bob ({name})")),
            "{}",
            add.all()
        );
        let ls = bob.run(&["owner", "ls", name]);
        assert!(
            ls.ok().contains("alice <alice@example.com>")
                && ls.ok().contains("bob <bob@example.com>"),
            "{}",
            ls.all()
        );
        // bob may publish now
        bob.publish(name, "1.0.1", &[]).ok();
        let rm = bob.run(&["owner", "rm", "alice", name]);
        assert!(
            rm.ok().contains(&format!("- alice ({name})")),
            "{}",
            rm.all()
        );
        assert!(alice.publish(name, "1.0.2", &[]).fails().contains(refused));
        // an unknown user
        let out = bob.run(&["owner", "add", "nobody", name]).fails();
        assert!(out.contains("nobody"), "{out}");
        // the last owner cannot be removed (npm refuses client-side; the server does too)
        let t = bob.token().unwrap();
        let http = reg.http().with_token(&t);
        let rev = http.get(&format!("/{path}")).json()["_rev"]
            .as_str()
            .unwrap()
            .to_owned();
        let r = http.put_json(
            &format!("/{path}/-rev/{rev}"),
            &json!({"_id": name, "_rev": rev, "maintainers": []}),
        );
        assert_eq!(r.status, 400);
        assert_eq!(
            http.get(&format!("/{path}")).json()["maintainers"],
            json!([{"name": "bob", "email": "bob@example.com"}])
        );
    }
    // alice no longer sees the restricted package she gave away
    assert_eq!(
        reg.http()
            .with_token(&alice.token().unwrap())
            .get("/@alice%2fowned")
            .status,
        404
    );
}

#[test]
fn deprecate_and_undeprecate() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    for name in ["demo-pkg", "@alice/old"] {
        let path = name.replacen('/', "%2f", 1);
        alice.publish(name, "1.0.0", &["--access", "public"]).ok();
        alice.publish(name, "1.1.0", &[]).ok();
        alice
            .run(&["deprecate", &format!("{name}@<1.1.0"), "use 1.1.0"])
            .ok();
        let doc = reg.http().get(&format!("/{path}")).json();
        assert_eq!(doc["versions"]["1.0.0"]["deprecated"], "use 1.1.0");
        assert!(doc["versions"]["1.1.0"].get("deprecated").is_none());
        let view = alice.run(&["view", &format!("{name}@1.0.0"), "deprecated"]);
        assert!(view.ok().contains("use 1.1.0"));
        alice.run(&["undeprecate", &format!("{name}@1.0.0")]).ok();
        assert!(
            reg.http().get(&format!("/{path}")).json()["versions"]["1.0.0"]
                .get("deprecated")
                .is_none()
        );
        assert!(
            bob.run(&["deprecate", name, "mine now"])
                .fails()
                .contains("403")
        );
        assert!(
            reg.http().get(&format!("/{path}")).json()["versions"]["1.1.0"]
                .get("deprecated")
                .is_none()
        );
    }
}

#[test]
fn unpublish_a_version_then_the_package() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    alice.publish("demo-pkg", "1.0.0", &[]).ok();
    alice.publish("demo-pkg", "1.1.0", &[]).ok();
    let bob = reg.npm_as("bob");
    assert!(
        bob.run(&["unpublish", "demo-pkg@1.1.0"])
            .fails()
            .contains("403")
    );
    let out = alice.run(&["unpublish", "demo-pkg@1.1.0"]);
    assert!(out.ok().contains("- demo-pkg@1.1.0"), "{}", out.all());
    let doc = reg.http().get("/demo-pkg").json();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    assert!(doc["versions"].get("1.1.0").is_none());
    assert_eq!(reg.http().get("/demo-pkg/-/demo-pkg-1.1.0.tgz").status, 404);
    // an unpublished version number cannot be reused
    let again = alice.publish("demo-pkg", "1.1.0", &["--force"]);
    assert!(
        again.fails().contains("previously published"),
        "{}",
        again.all()
    );
    let out = alice.run(&["unpublish", "demo-pkg", "--force"]);
    assert!(out.ok().contains("- demo-pkg"), "{}", out.all());
    assert_eq!(reg.http().get("/demo-pkg").status, 404);
    // the scoped path too
    alice
        .publish("@alice/gone", "1.0.0", &["--access", "public"])
        .ok();
    alice.publish("@alice/gone", "1.0.1", &[]).ok();
    alice.run(&["unpublish", "@alice/gone@1.0.1"]).ok();
    assert_eq!(
        reg.http().get("/@alice%2fgone").json()["dist-tags"]["latest"],
        "1.0.0"
    );
    alice
        .run(&["unpublish", "@alice/gone@1.0.0", "--force"])
        .ok();
    assert_eq!(reg.http().get("/@alice%2fgone").status, 404);
}

#[test]
fn a_fully_unpublished_name_is_held_for_its_former_maintainers() {
    let reg = Registry::start_with(&[("TESSERA_UNPUBLISHED_NAME_HOLD", "2h")]);
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    let carol = reg.npm_as("carol");
    alice.publish("held-pkg", "1.0.0", &[]).ok();
    alice.run(&["owner", "add", "bob", "held-pkg"]).ok();
    alice.publish("other-pkg", "1.0.0", &[]).ok();
    alice.run(&["unpublish", "held-pkg", "--force"]).ok();
    alice.run(&["unpublish", "other-pkg", "--force"]).ok();
    assert_eq!(reg.http().get("/held-pkg").status, 404);

    // someone else cannot take the name at once…
    let taken = carol.publish("held-pkg", "2.0.0", &[]);
    let err = taken.fails();
    assert!(
        err.contains("403") && err.contains("only its former maintainers"),
        "{}",
        taken.all()
    );
    assert_eq!(reg.http().get("/held-pkg").status, 404);
    // …nor through the API with a fresh name's body
    let tgz = tgz(
        &serde_json::json!({"name": "held-pkg", "version": "2.0.1"}),
        &[],
    );
    let body = publish_body(&reg.url(), "held-pkg", "2.0.1", &tgz);
    let r = reg
        .http()
        .with_token(&carol.token().unwrap())
        .put_json("/held-pkg", &body);
    assert_eq!(r.status, 403, "{}", r.text);
    // …but a former maintainer (not only the one who unpublished) can
    bob.publish("held-pkg", "2.0.0", &[]).ok();
    assert_eq!(
        reg.http().get("/held-pkg").json()["dist-tags"]["latest"],
        "2.0.0"
    );
    let owners = bob.run(&["owner", "ls", "held-pkg"]);
    assert!(owners.ok().contains("bob"), "{}", owners.all());
    assert!(
        !owners.ok().contains("alice"),
        "a new package: its publisher alone"
    );

    // after the hold, anyone may publish the name
    reg.advance(2 * 3600 + 60);
    carol.publish("other-pkg", "3.0.0", &[]).ok();
    assert_eq!(
        reg.http().get("/other-pkg").json()["dist-tags"]["latest"],
        "3.0.0"
    );
}

#[test]
fn access_status_hides_restricted_packages() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    // scoped packages default to restricted, like npmjs
    alice.publish("@alice/secret", "1.0.0", &[]).ok();
    assert!(
        alice
            .run(&["access", "get", "status", "@alice/secret"])
            .ok()
            .contains("@alice/secret: private")
    );
    assert_eq!(reg.http().get("/@alice%2fsecret").status, 404);
    assert_eq!(
        reg.http().get("/@alice/secret/-/secret-1.0.0.tgz").status,
        404
    );
    assert!(bob.run(&["view", "@alice/secret"]).fails().contains("404"));
    let app = bob.project("app");
    assert!(
        bob.run_in(&app, &["install", "@alice/secret"])
            .fails()
            .contains("404")
    );
    assert!(
        alice
            .run(&["view", "@alice/secret", "version"])
            .ok()
            .contains("1.0.0")
    );
    // bob cannot flip it
    assert!(
        bob.run(&["access", "set", "status=public", "@alice/secret"])
            .fails()
            .contains("404")
    );
    alice
        .run(&["access", "set", "status=public", "@alice/secret"])
        .ok();
    assert!(
        alice
            .run(&["access", "get", "status", "@alice/secret"])
            .ok()
            .contains("@alice/secret: public")
    );
    bob.run_in(&app, &["install", "@alice/secret"]).ok();
    alice
        .run(&["access", "set", "status=private", "@alice/secret"])
        .ok();
    assert_eq!(reg.http().get("/@alice%2fsecret").status, 404);
    // collaborators and packages lists
    let c = alice.run(&["access", "list", "collaborators", "@alice/secret", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(c.ok()).unwrap(),
        json!({"alice": "read-write"})
    );
    alice.publish("open-pkg", "1.0.0", &[]).ok();
    let p = alice.run(&["access", "list", "packages", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(p.ok()).unwrap(),
        json!({"@alice/secret": "read-write", "open-pkg": "read-write"})
    );
    let p = bob.run(&["access", "list", "packages", "alice", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(p.ok()).unwrap(),
        json!({"open-pkg": "read-write"})
    );
    // an unscoped package cannot be restricted
    let t = alice.token().unwrap();
    let r = reg.http().with_token(&t).post_json(
        "/-/package/open-pkg/access",
        &json!({"access": "restricted"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        reg.http().get("/-/package/open-pkg/access").json()["access"],
        "public"
    );
}

#[test]
fn search_and_stars() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    alice.run_in(&alice.package("left-pad", "1.0.0", json!({"keywords": ["padding", "strings"], "description": "pads strings on the left"})), &["publish"]).ok();
    alice.publish("right-pad", "1.0.0", &[]).ok();
    alice.publish("@alice/hidden-pad", "1.0.0", &[]).ok();
    let anon = reg.npm();
    let s = anon.run(&["search", "pad", "--json"]);
    let hits: Value = serde_json::from_str(s.ok()).unwrap();
    let names: Vec<&str> = hits
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"left-pad") && names.contains(&"right-pad"),
        "{names:?}"
    );
    assert!(
        !names.contains(&"@alice/hidden-pad"),
        "restricted packages are not searchable by others"
    );
    let s = alice.run(&["search", "padding"]);
    assert!(s.ok().contains("left-pad"), "{}", s.all());
    let s = alice.run(&["search", "hidden", "--json"]);
    assert!(s.ok().contains("@alice/hidden-pad"));

    let bob = reg.npm_as("bob");
    bob.run(&["star", "left-pad"]).ok();
    assert_eq!(reg.http().get("/left-pad").json()["users"]["bob"], true);
    let stars = bob.run(&["stars"]);
    assert!(stars.ok().contains("left-pad"), "{}", stars.all());
    bob.run(&["unstar", "left-pad"]).ok();
    assert!(
        reg.http().get("/left-pad").json()["users"]
            .get("bob")
            .is_none()
    );
    // scoped packages are starred the same way; a restricted one cannot be seen, so not starred
    alice
        .publish("@alice/open-pad", "1.0.0", &["--access", "public"])
        .ok();
    bob.run(&["star", "@alice/open-pad"]).ok();
    assert_eq!(
        reg.http().get("/@alice%2fopen-pad").json()["users"]["bob"],
        true
    );
    assert!(
        bob.run(&["star", "@alice/hidden-pad"])
            .fails()
            .contains("404")
    );
    // `npm access get status` answers for unscoped packages too
    let status = alice.run(&["access", "get", "status", "left-pad"]);
    assert!(status.ok().contains("public"), "{}", status.all());
}

#[test]
fn publish_with_tags_access_and_new_versions() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    alice
        .publish("@alice/pub", "1.0.0", &["--access", "public"])
        .ok();
    assert_eq!(
        reg.http().get("/-/package/@alice%2fpub/visibility").json(),
        json!({"public": true})
    );
    alice
        .publish("@alice/pub", "1.1.0-rc.1", &["--tag", "next"])
        .ok();
    let doc = reg.http().get("/@alice%2fpub").json();
    assert_eq!(
        doc["dist-tags"],
        json!({"latest": "1.0.0", "next": "1.1.0-rc.1"})
    );
    // republishing the same version
    let again = alice.publish("@alice/pub", "1.0.0", &["--force"]);
    let out = again.fails();
    assert!(
        out.contains("409") && out.contains("previously published"),
        "{out}"
    );
    // the scoped package is readable by anyone now
    let bob = reg.npm();
    let app = bob.project("app");
    bob.run_in(&app, &["install", "@alice/pub@next"]).ok();
    let pj: Value = serde_json::from_str(
        &std::fs::read_to_string(app.join("node_modules/@alice/pub/package.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(pj["version"], "1.1.0-rc.1");
}

/// A publish whose tarball cannot be stored leaves no version behind (the tarball is written
/// before the metadata commits), and the next try works. SQLite + folder only: the failure is
/// made by putting a file where the tarball folder belongs.
#[test]
fn a_failed_tarball_write_leaves_no_version() {
    if on_postgres() {
        return;
    }
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    alice.publish("sturdy", "1.0.0", &[]).ok();
    let tarballs = reg.data.join("tarballs");
    let aside = reg.data.join("tarballs.aside");
    std::fs::rename(&tarballs, &aside).unwrap();
    std::fs::write(&tarballs, b"not a folder").unwrap();
    let out = alice.publish("sturdy", "1.1.0", &["--fetch-retries=0"]);
    assert!(out.fails().contains("500"), "{}", out.all());
    let doc = reg.http().get("/sturdy").json();
    assert!(doc["versions"].get("1.1.0").is_none(), "{doc}");
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    std::fs::remove_file(&tarballs).unwrap();
    std::fs::rename(&aside, &tarballs).unwrap();
    alice.publish("sturdy", "1.1.0", &[]).ok();
    let project = alice.project("uses-sturdy");
    alice.run_in(&project, &["install", "sturdy@1.1.0"]).ok();
}

/// A tarball larger than the memory cache's item limit is streamed from storage, and npm
/// installs it intact (npm checks its integrity).
#[test]
fn large_tarballs_stream_and_install_intact() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let dir = alice.package("bulky", "1.0.0", Value::Null);
    // 3 MB that gzip cannot shrink (xorshift noise)
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..3 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(dir.join("blob.bin"), &noise).unwrap();
    alice.run_in(&dir, &["publish"]).ok();
    let meta = reg.http().get("/bulky").json();
    let path = meta["versions"]["1.0.0"]["dist"]["tarball"]
        .as_str()
        .unwrap()
        .replace(&format!("http://{}", reg.addr), "");
    let tgz = reg.http().get(&path);
    assert_eq!(tgz.status, 200);
    assert!(tgz.bytes.len() > 3 << 20, "{}", tgz.bytes.len());
    let project = alice.project("uses-bulky");
    alice.run_in(&project, &["install", "bulky@1.0.0"]).ok();
    let installed = std::fs::read(project.join("node_modules/bulky/blob.bin")).unwrap();
    assert!(installed == noise, "the installed file differs");
}

/// Publishes `wide@1.0.0`, whose every packument form passes 64 KiB (gzipped too), and checks
/// that each form reads back whole and the same twice.
fn large_packument_reads_back_whole(reg: &Registry, alice: &Npm) {
    const CORGI: &str = "application/vnd.npm.install-v1+json";
    // 6,000 dev dependencies with names gzip cannot shrink much: every form passes 64 KiB,
    // gzipped too; npm installs none of a dependency's dev dependencies
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut dev = serde_json::Map::new();
    for _ in 0..6000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        dev.insert(format!("d{x:016x}"), Value::from("1.0.0"));
    }
    let dir = alice.package("wide", "1.0.0", json!({ "devDependencies": dev }));
    alice.run_in(&dir, &["publish"]).ok();
    let http = reg.http();
    let forms: [&[(&str, &str)]; 3] = [
        &[],
        &[("accept", CORGI)],
        &[("accept", CORGI), ("accept-encoding", "gzip")],
    ];
    for headers in forms {
        let first = http.send("GET", "/wide", headers, None);
        assert_eq!(first.status, 200, "{headers:?}");
        assert!(
            first.bytes.len() >= 64 << 10,
            "{headers:?}: {}",
            first.bytes.len()
        );
        let mut json = first.bytes.clone();
        if first.header("content-encoding") == Some("gzip") {
            json.clear();
            std::io::Read::read_to_end(
                &mut flate2::read::GzDecoder::new(&first.bytes[..]),
                &mut json,
            )
            .unwrap();
        }
        let doc: Value = serde_json::from_slice(&json).unwrap();
        let deps = doc["versions"]["1.0.0"]["devDependencies"]
            .as_object()
            .unwrap();
        assert_eq!(deps, &dev, "{headers:?}");
        // again, now from the cache: the same bytes
        let again = http.send("GET", "/wide", headers, None);
        assert!(
            again.bytes == first.bytes,
            "{headers:?}: a second read differs"
        );
        assert_eq!(again.header("etag"), first.header("etag"));
    }
}

/// The unnamed files in the data folder the registry holds open.
fn unnamed_files_held(reg: &Registry) -> usize {
    let data = std::fs::canonicalize(&reg.data).unwrap();
    std::fs::read_dir(format!("/proc/{}/fd", reg.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.starts_with(&data) && l.to_string_lossy().ends_with("(deleted)"))
        .count()
}

/// With `connections.sendfile = "on"`, a packument form of 64 KiB and more is kept in an
/// unnamed file in the data folder and sent from it (`sendfile`): every form of such a package
/// reads back whole, the same on every read, and npm installs from the gzipped abbreviated
/// form, which is large too.
#[test]
fn large_packuments_are_sent_from_files_and_npm_installs_from_them() {
    let reg = Registry::start_with(&[("TESSERA_CONNECTIONS__SENDFILE", "on")]);
    let alice = reg.npm_as("alice");
    large_packument_reads_back_whole(&reg, &alice);
    // the large forms live in unnamed files in the data folder while the registry holds them
    let held = unnamed_files_held(&reg);
    assert!(held >= 3, "{held} unnamed files in the data folder");
    // the log says so, as it says the measure's verdict
    assert!(
        reg.log_text()
            .contains("large bodies are sent from files with sendfile (connections.sendfile"),
        "{}",
        reg.log_text()
    );
    let app = alice.project("wide-app");
    alice.run_in(&app, &["install", "wide@1"]).ok();
    assert!(app.join("node_modules/wide/package.json").exists());
}

/// With `"off"` the same forms are copied from memory (no file is made for them), and with
/// `"auto"`, the default, the registry measures both ways once after start and logs which it
/// keeps; the forms read back whole either way.
#[test]
fn large_packuments_are_copied_with_sendfile_off_and_auto_picks_a_way() {
    let off = Registry::start_with(&[("TESSERA_CONNECTIONS__SENDFILE", "off")]);
    large_packument_reads_back_whole(&off, &off.npm_as("alice"));
    assert_eq!(unnamed_files_held(&off), 0, "no file with sendfile off");
    assert!(
        off.log_text().contains("copied from memory"),
        "{}",
        off.log_text()
    );

    let auto = Registry::start();
    let chosen = poll("the sendfile measure's verdict", || {
        let log = auto.log_text();
        log.lines()
            .find(|l| l.contains("large bodies are"))
            .map(str::to_owned)
    });
    assert!(
        chosen.contains("sendfile_us") && chosen.contains("copy_us"),
        "{chosen}"
    );
    large_packument_reads_back_whole(&auto, &auto.npm_as("alice"));
    let held = unnamed_files_held(&auto);
    if chosen.contains("sent from files") {
        assert!(
            held >= 3,
            "{held} unnamed files, though sendfile was kept: {chosen}"
        );
    } else {
        assert_eq!(
            held, 0,
            "unnamed files, though copying was chosen: {chosen}"
        );
    }
}
