//! Scale-out: two tessera processes on one PostgreSQL database and one S3 server (moto), and
//! a registry moved from SQLite + folder to PostgreSQL + S3 by `tessera admin export/import`.
//! Everything security-relevant must hold across the instances.

mod common;

use std::sync::Arc;

use common::browser::Browser;
use common::*;
use serde_json::json;

/// Two instances, A and B, on one fresh backend.
fn pair() -> (Registry, Registry) {
    let backend = SharedBackend::new();
    let a = Registry::start_on(Some(backend.clone()), &[]);
    let b = Registry::start_on(Some(backend), &[]);
    (a, b)
}

fn login(reg: &Registry, otp: Option<&str>) -> Resp {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(o) = otp {
        headers.push(("npm-otp", o));
    }
    reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:alice",
        &headers,
        Some(serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"})).unwrap()),
    )
}

#[test]
fn publish_on_a_install_from_b_and_every_read_on_b_is_fresh() {
    let (a, b) = pair();
    let npm_a = a.npm();
    let token = a.signup("alice", "alice-password");
    npm_a.set_token(&a.addr, &token);
    let run = npm_a.publish("shared-pkg", "1.0.0", &[]);
    run.ok();

    // B serves the package (from the shared database and the S3 tarball)
    let npm_b = b.npm();
    let proj = npm_b.project("app");
    npm_b.run_in(&proj, &["install", "shared-pkg"]).ok();
    assert!(proj.join("node_modules/shared-pkg/package.json").exists());

    // B has it cached now; every later change on A is visible on B's very next read
    let read_b = |accept: Option<&str>| {
        let mut h = vec![];
        if let Some(x) = accept {
            h.push(("accept", x));
        }
        b.http().send("GET", "/shared-pkg", &h, None).json()
    };
    assert_eq!(read_b(None)["dist-tags"]["latest"], "1.0.0");
    npm_a.publish("shared-pkg", "1.1.0", &[]).ok();
    let doc = read_b(None);
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0", "publish seen at once");
    let corgi = read_b(Some("application/vnd.npm.install-v1+json"));
    assert!(corgi["versions"].get("1.1.0").is_some(), "abbreviated too");
    // both instances serve the one signing key, and A signed with it
    let keys = b.http().get("/-/npm/v1/keys").json();
    assert_eq!(keys, a.http().get("/-/npm/v1/keys").json());
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    assert_eq!(
        doc["versions"]["1.1.0"]["dist"]["signatures"][0]["keyid"],
        keys["keys"][0]["keyid"]
    );
    npm_a
        .run(&["dist-tag", "add", "shared-pkg@1.0.0", "stable"])
        .ok();
    assert_eq!(read_b(None)["dist-tags"]["stable"], "1.0.0", "dist-tag");
    npm_a
        .run(&["deprecate", "shared-pkg@1.0.0", "use 1.1"])
        .ok();
    assert_eq!(
        read_b(None)["versions"]["1.0.0"]["deprecated"],
        "use 1.1",
        "deprecate"
    );
    npm_a.run(&["unpublish", "shared-pkg@1.1.0"]).ok();
    assert!(
        read_b(None)["versions"].get("1.1.0").is_none(),
        "unpublish seen at once"
    );
    npm_a
        .publish("@alice/scoped", "1.0.0", &["--access=public"])
        .ok();
    assert_eq!(b.http().get("/@alice%2fscoped").status, 200);
    npm_a
        .run(&["access", "set", "status=private", "@alice/scoped"])
        .ok();
    assert_eq!(
        b.http().get("/@alice%2fscoped").status,
        404,
        "a restricted package disappears for anonymous readers of B at once"
    );
    npm_a.run(&["owner", "add", "bob", "shared-pkg"]).fails();
    b.signup("bob", "bob-password1");
    npm_a.run(&["owner", "add", "bob", "shared-pkg"]).ok();
    let maintainers = read_b(None)["maintainers"].to_string();
    assert!(
        maintainers.contains("bob"),
        "owner change seen at once: {maintainers}"
    );
    // and the tarball of the remaining version still downloads from B
    let tgz = b
        .http()
        .with_token(&token)
        .get("/shared-pkg/-/shared-pkg-1.0.0.tgz");
    assert_eq!(tgz.status, 200);
}

#[test]
fn two_factor_state_codes_and_throttling_are_shared() {
    let (a, b) = pair();
    let token = a.signup("alice", "alice-password");
    let http = a.http().with_token(&token);
    let m = json!({"name": "demo", "version": "1.0.0"});
    assert_eq!(
        http.put_json(
            "/demo",
            &publish_body(&a.url(), "demo", "1.0.0", &tgz(&m, &[]))
        )
        .status,
        201
    );
    // enable 2FA on A: a login on B needs the OTP
    let (secret, codes) = a.enable_2fa(&token, "alice-password", "auth-and-writes");
    a.advance(30);
    let r = login(&b, None);
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("otp")));
    // the same code is refused on B after A accepted it
    let code = a.otp(&secret, 0);
    assert_eq!(login(&a, Some(&code)).status, 201);
    let r = login(&b, Some(&code));
    assert_eq!(r.status, 401, "replayed on B: {}", r.text);
    // a recovery code spent on B is spent on A
    assert_eq!(login(&b, Some(&codes[0])).status, 201);
    assert_eq!(login(&a, Some(&codes[0])).status, 401);

    // 20 racing requests with one code, spread over both: exactly one succeeds
    a.advance(30);
    let mut tokens = Vec::new();
    for _ in 0..20 {
        let r = http.send(
            "POST",
            "/-/npm/v1/tokens",
            &[
                ("content-type", "application/json"),
                ("npm-otp", &a.otp(&secret, 0)),
            ],
            Some(serde_json::to_vec(&json!({"password": "alice-password"})).unwrap()),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        tokens.push(r.json()["token"].as_str().unwrap().to_owned());
    }
    a.advance(30);
    let code = Arc::new(a.otp(&secret, 0));
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut threads = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let reg = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (code, t) = (code.clone(), t.clone());
        threads.push(std::thread::spawn(move || {
            demo_tag(&reg, &t, &format!("race{i}"), Some(&code)).status
        }));
    }
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 401, 429].contains(s)),
        "{statuses:?}"
    );
    let tags = b.http().get("/-/package/demo/dist-tags").json();
    assert_eq!(tags.as_object().unwrap().len(), 2, "{tags}");

    // throttling counts across both: wrong codes alternate between A and B
    a.advance(30);
    for i in 0..5 {
        let reg = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            demo_tag(reg, &tokens[0], "wrong", Some("000000")).status,
            401
        );
    }
    for reg in [&a, &b] {
        let r = demo_tag(reg, &tokens[0], "right", Some(&reg.otp(&secret, 0)));
        assert_eq!(
            r.status, 429,
            "throttled on both after 5 failures: {}",
            r.text
        );
    }
}

#[test]
fn a_token_revoked_on_a_is_refused_on_b_at_once() {
    let (a, b) = pair();
    let token = a.signup("alice", "alice-password");
    let whoami = |reg: &Registry| reg.http().with_token(&token).get("/-/whoami");
    // B knows the token (and would cache it, were caching safe here)
    for _ in 0..3 {
        assert_eq!(whoami(&b).status, 200);
    }
    let r =
        a.http()
            .with_token(&token)
            .send("DELETE", &format!("/-/user/token/{token}"), &[], None);
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    assert_eq!(whoami(&b).status, 401, "refused on B immediately");
    // a locked account too
    let token2 = a.signup("bob", "bob-password1");
    assert_eq!(b.http().with_token(&token2).get("/-/whoami").status, 200);
    let out = a.admin(&["user", "lock", "bob"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(b.http().with_token(&token2).get("/-/whoami").status, 401);
}

#[test]
fn sessions_and_browser_logins_work_across_instances() {
    let (a, b) = pair();
    a.signup("alice", "alice-password");
    // `npm login` against A prints a browser URL; the browser is served by B
    let npm = a.npm();
    let mut p = npm.pty(npm.root(), &["login"]);
    p.expect("Login at:");
    let url_a = p.expect_regex(r"http://127\.0\.0\.1:\d+/-/web/cli-login/[A-Za-z0-9]+");
    let url_b = url_a.replace(&a.addr, &b.addr);
    assert_ne!(url_a, url_b);
    let browser = Browser::start();
    browser.goto(&url_b);
    browser.wait_for_url("/-/web/signin");
    browser.type_into("#name", "alice");
    browser.type_into("#password", "alice-password");
    browser.click("#signin");
    browser.wait_for_url("/-/web/cli-login/");
    browser.click("#approve");
    browser.wait_for_text("npm is now logged in as alice");
    // npm, polling A, gets the token B's page approved
    p.expect("Logged in on");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "alice");
    // the session made on B is honoured by A (cookies are per host, not per port)
    let cookie = browser
        .cookies()
        .into_iter()
        .find(|(n, _)| n == "tessera_session")
        .map(|(_, v)| v)
        .expect("a session cookie");
    let c = format!("tessera_session={cookie}");
    let page = a
        .http()
        .send("GET", "/-/web/account", &[("cookie", &c)], None);
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("alice"));
    // signing out on A ends it on B
    browser.goto(&format!("{}-/web/account", a.url()));
    browser.click("form[action='/-/web/signout'] button");
    let start = std::time::Instant::now();
    while b
        .http()
        .send("GET", "/-/web/account", &[("cookie", &c)], None)
        .status
        == 200
    {
        assert!(start.elapsed() < DEADLINE, "the session is gone everywhere");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn export_from_sqlite_import_into_postgres_and_s3_and_carry_on() {
    // a registry on SQLite with accounts, 2FA, tokens and packages
    let src = Registry::start_on(None, &[]);
    let token = src.signup("alice", "alice-password");
    let npm = src.npm();
    npm.set_token(&src.addr, &token);
    npm.publish("moved-pkg", "1.0.0", &[]).ok();
    npm.publish("moved-pkg", "1.1.0", &[]).ok();
    npm.publish("@alice/private", "1.0.0", &[]).ok();
    let bob = src.signup("bob", "bob-password1");
    // dist-tags, a deprecation, a second maintainer, a star, a package policy
    npm.run(&["dist-tag", "add", "moved-pkg@1.0.0", "legacy"])
        .ok();
    npm.run(&["deprecate", "moved-pkg@1.0.0", "use 1.1"]).ok();
    npm.run(&["owner", "add", "bob", "moved-pkg"]).ok();
    let bob_npm = src.npm();
    bob_npm.set_token(&src.addr, &bob);
    bob_npm.run(&["star", "moved-pkg"]).ok();
    let (secret, codes) = src.enable_2fa(&token, "alice-password", "auth-and-writes");
    src.advance(30);
    npm.run(&[
        "access",
        "set",
        "mfa=publish",
        "@alice/private",
        &format!("--otp={}", src.otp(&secret, 0)),
    ])
    .ok();
    // a version waiting on the stage moves with its tarball
    let staged_out = npm.run_in(
        &npm.package("moved-pkg", "3.0.0", serde_json::Value::Null),
        &["stage", "publish"],
    );
    let staged_out = staged_out.ok();
    let staged_id: String = staged_out
        [staged_out.find("staged with id ").expect("a stage id") + 15..]
        .chars()
        .take(36)
        .collect();
    let staged_tgz = src
        .http()
        .with_token(&token)
        .get(&format!("/-/stage/{staged_id}/tarball"));
    assert_eq!(staged_tgz.status, 200);
    let packument_before = src.http().get("/moved-pkg").json();
    let log_before = String::from_utf8_lossy(&src.admin(&["security-log", "alice"], None).stdout)
        .lines()
        .count();

    let dump = tempfile::tempdir().unwrap();
    let out_dir = dump.path().join("export");
    let out = src.admin(&["export", "--out", out_dir.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tarballs"), "{text}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["tables"]["users"], 2);
    assert_eq!(manifest["tarballs"], 4, "the staged one too");
    #[cfg(unix)]
    {
        // hashes and sealed secrets inside: readable by the owner only
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out_dir), 0o700);
        assert_eq!(mode(&out_dir.join("tables")), 0o700);
        assert_eq!(mode(&out_dir.join("tables/users.jsonl")), 0o600);
        assert_eq!(mode(&out_dir.join("manifest.json")), 0o600);
    }

    // import into PostgreSQL + S3, with the source's sealing key
    let key = std::fs::read_to_string(src.data.join("secret.key")).unwrap();
    let backend = SharedBackend::with_key(Some(key));
    let dst = Registry::start_on(Some(backend.clone()), &[]);
    let out = dst.admin(&["import", out_dir.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("verified"), "{text}");
    // importing twice is refused, and changes nothing; so is importing over a target that has
    // only a browser session or a setting (every table must be empty)
    let again = dst.admin(&["import", out_dir.to_str().unwrap()], None);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty")
            || String::from_utf8_lossy(&again.stderr).contains("already has")
    );

    // the imported registry works as before: tokens, packages, 2FA, recovery codes
    let http = dst.http().with_token(&token);
    assert_eq!(http.get("/-/whoami").json()["username"], "alice");
    assert_eq!(
        dst.http().with_token(&bob).get("/-/whoami").json()["username"],
        "bob"
    );
    let moved = http.get(&format!("/-/stage/{staged_id}/tarball"));
    assert_eq!(
        moved.bytes, staged_tgz.bytes,
        "the staged tarball came along"
    );
    // everything a reader sees is as it was: tags, deprecation, maintainers, stars, times
    let packument_after = dst.http().get("/moved-pkg").json();
    for key in ["dist-tags", "maintainers", "users", "time", "name", "_rev"] {
        assert_eq!(packument_after[key], packument_before[key], "{key}");
    }
    assert_eq!(
        packument_after["versions"]["1.0.0"]["deprecated"],
        "use 1.1"
    );
    assert_eq!(
        dst.http()
            .with_token(&token)
            .get("/-/package/@alice%2fprivate/access")
            .json()["mfa"],
        "publish"
    );
    let log_after = String::from_utf8_lossy(&dst.admin(&["security-log", "alice"], None).stdout)
        .lines()
        .count();
    assert_eq!(log_after, log_before, "the security log came along");
    let npm_dst = dst.npm();
    npm_dst.set_token(&dst.addr, &token);
    let proj = npm_dst.project("app");
    npm_dst
        .run_in(&proj, &["install", "moved-pkg@1.0.0", "@alice/private"])
        .ok();
    assert!(
        proj.join("node_modules/@alice/private/package.json")
            .exists()
    );
    assert_eq!(
        dst.http().get("/@alice%2fprivate").status,
        404,
        "still restricted"
    );
    // past the step the source spent on `access set` (its clock ran 30 s ahead)
    dst.advance(60);
    let r = login(&dst, None);
    assert_eq!(r.status, 401, "2FA still on");
    assert_eq!(login(&dst, Some(&dst.otp(&secret, 0))).status, 201);
    assert_eq!(login(&dst, Some(&codes[3])).status, 201);
    // new writes get fresh ids after the imported ones
    dst.advance(30);
    let r = npm_dst.publish(
        "moved-pkg",
        "2.0.0",
        &[&format!("--otp={}", dst.otp(&secret, 0))],
    );
    r.ok();
    let bob2 = dst.signup("carol", "carol-password");
    assert_eq!(
        dst.http().with_token(&bob2).get("/-/whoami").json()["username"],
        "carol"
    );

    // and back: export from PostgreSQL + S3, import into a fresh SQLite registry
    let back_dir = dump.path().join("back");
    let out = dst.admin(&["export", "--out", back_dir.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let home = Registry::start_on(None, &[]);
    std::fs::write(home.data.join("secret.key"), backend.secret_key.as_bytes()).unwrap();
    let out = home.admin(&["import", back_dir.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        home.http().with_token(&bob2).get("/-/whoami").json()["username"],
        "carol"
    );
    let doc = home.http().get("/moved-pkg").json();
    assert_eq!(doc["dist-tags"]["latest"], "2.0.0");
    let tgz = home.http().get("/moved-pkg/-/moved-pkg-2.0.0.tgz");
    assert_eq!(tgz.status, 200);
}

/// An instance configured the way an operator might: `--database` and `--storage` flags, and
/// S3 settings only in the standard `AWS_*` variables. It serves what the other wrote.
#[test]
fn an_instance_started_with_flags_and_aws_variables_shares_the_registry() {
    let backend = SharedBackend::new();
    let a = Registry::start_on(Some(backend.clone()), &[]);
    let b = Registry::start_on_with_flags(backend);
    let token = a.signup("alice", "alice-password");
    let npm = a.npm();
    npm.set_token(&a.addr, &token);
    npm.publish("flagged", "1.0.0", &[]).ok();
    let on_b = b.npm();
    on_b.set_token(&b.addr, &token);
    let project = on_b.project("uses-flagged");
    on_b.run_in(&project, &["install", "flagged@1.0.0"]).ok();
    assert!(project.join("node_modules/flagged/package.json").exists());
    // and B writes where A reads: the same bucket and database
    on_b.publish("flagged", "1.1.0", &[]).ok();
    assert_eq!(
        a.http().get("/flagged").json()["dist-tags"]["latest"],
        "1.1.0"
    );
    let project = npm.project("uses-flagged-again");
    npm.run_in(&project, &["install", "flagged@1.1.0"]).ok();
}

/// The documented rotation with several instances, each holding its own copy of the key file:
/// no key is made on one host; the next ring is installed everywhere, then secrets are
/// re-sealed; every instance follows without a restart.
#[test]
fn rotating_the_sealing_key_across_instances() {
    let (a, b) = pair();
    let t = a.signup("alice", "alice-password");
    let (secret, _) = a.enable_2fa(&t, "alice-password", "auth-and-writes");
    let admin_ok = |args: &[&str]| {
        let out = a.admin(args, None);
        assert!(
            out.status.success(),
            "tessera admin {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let refused = admin_ok(&["rotate-key"]);
    assert!(refused.contains("no key is made here"), "{refused}");
    let next = admin_ok(&["rotate-key", "--print-next"]);
    for reg in [&a, &b] {
        let f = reg.data.join("secret.key");
        std::fs::write(&f, &next).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
    let out = admin_ok(&["rotate-key"]);
    assert!(out.contains("re-sealed 1 secrets under key 2"), "{out}");
    // B opens a secret sealed under key 2 (it re-reads its file)…
    a.advance(30);
    assert_eq!(login(&b, Some(&a.otp(&secret, 0))).status, 201);
    // …and seals a new enrolment under key 2, which A opens
    let bob = b.signup("bob", "bob-password1");
    let (bob_secret, _) = b.enable_2fa(&bob, "bob-password1", "auth-only");
    a.advance(30);
    let r = a.http().send(
        "PUT",
        "/-/user/org.couchdb.user:bob",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &a.otp(&bob_secret, 0)),
        ],
        Some(serde_json::to_vec(&json!({"name": "bob", "password": "bob-password1"})).unwrap()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // retiring key 1 from A's file leaves both instances working
    let out = admin_ok(&["rotate-key", "--retire-old"]);
    assert!(out.contains("retired keys [1]"), "{out}");
    a.advance(30);
    assert_eq!(login(&b, Some(&a.otp(&secret, 0))).status, 201);
    a.advance(30);
    assert_eq!(login(&a, Some(&a.otp(&secret, 0))).status, 201);
}

/// `tessera admin migrate` on PostgreSQL: a manual-migration server refuses the empty schema,
/// the admin command applies it once; and two instances starting together on a fresh database
/// (automatic migrations) both come up.
#[test]
fn migrations_on_postgres_manual_and_concurrent() {
    let backend = SharedBackend::new();
    let dir = tempfile::tempdir().unwrap();
    let cmd = |args: &[&str]| {
        let mut c = std::process::Command::new(tessera_bin());
        c.args(args)
            .arg("--database")
            .arg(&backend.database_url)
            .arg("--data")
            .arg(dir.path().join("data"))
            .env("TESSERA_MIGRATE", "manual")
            .env(
                "TESSERA_SECRET_KEY",
                backend.secret_key.trim().replace('\n', ","),
            );
        for (k, v) in backend.aws_env() {
            c.env(k, v);
        }
        c.env("TESSERA_STORAGE", &backend.storage_url);
        c
    };
    let out = cmd(&["serve", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tessera admin migrate"), "{err}");
    let out = cmd(&["admin", "migrate"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied migrations"));
    let out = cmd(&["admin", "migrate"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("up to date"));
    // the migrated database serves
    let reg = Registry::start_on(Some(backend.clone()), &[("TESSERA_MIGRATE", "manual")]);
    reg.signup("alice", "alice-password");

    // a fresh database, two instances racing to migrate it
    let fresh = SharedBackend::new();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Registry::start_on(Some(fresh.clone()), &[]));
        let b = s.spawn(|| Registry::start_on(Some(fresh.clone()), &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let t = a.signup("carol", "carol-password");
    assert_eq!(
        b.http().with_token(&t).get("/-/whoami").json()["username"],
        "carol"
    );
}

/// Trusted publishing across instances: an identity token exchanged on A is refused on B (its
/// `jti` is spent in the shared database), and a version staged on A is approved on B.
#[test]
fn an_identity_token_spent_on_a_is_refused_on_b() {
    let issuer = common::issuer::Issuer::start();
    let issuers = format!("[{{issuer = \"{}\", kind = \"github\"}}]", issuer.url);
    let env = [("TESSERA_OIDC__ISSUERS", issuers.as_str())];
    let backend = SharedBackend::new();
    let a = Registry::start_on(Some(backend.clone()), &env);
    let b = Registry::start_on(Some(backend), &env);
    let token = a.signup("alice", "alice-password");
    let npm_a = a.npm();
    npm_a.set_token(&a.addr, &token);
    npm_a.publish("ci-pkg", "1.0.0", &[]).ok();
    let (secret, _) = a.enable_2fa(&token, "alice-password", "auth-only");
    a.advance(30);
    let r = a.http().with_token(&token).send(
        "POST",
        "/-/package/ci-pkg/trust",
        &[
            ("npm-otp", &a.otp(&secret, 0)),
            ("content-type", "application/json"),
        ],
        Some(
            json!([{"type": "github", "claims": {"repository": "acme/ci-pkg", "workflow_ref": {"file": "p.yml"}}, "permissions": ["createPackage", "createStagedPackage"]}])
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id_token = issuer.token(
        a.now_secs(),
        common::issuer::github_claims("npm:127.0.0.1", "acme/ci-pkg", "p.yml"),
    );
    let exchange = |reg: &Registry| {
        reg.http().send(
            "POST",
            "/-/npm/v1/oidc/token/exchange/package/ci-pkg",
            &[("authorization", &format!("Bearer {id_token}"))],
            None,
        )
    };
    let r = exchange(&a);
    assert_eq!(r.status, 201, "{}", r.text);
    let minted = r.json()["token"].as_str().unwrap().to_owned();
    let r = exchange(&b);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("already exchanged"), "{}", r.text);
    // the minted token stages on A; the maintainer approves on B
    let m = json!({"name": "ci-pkg", "version": "1.1.0"});
    let r = a.http().with_token(&minted).send(
        "POST",
        "/-/stage/package/ci-pkg",
        &[("content-type", "application/json")],
        Some(
            serde_json::to_vec(&publish_body(&a.url(), "ci-pkg", "1.1.0", &tgz(&m, &[]))).unwrap(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let stage_id = r.json()["stageId"].as_str().unwrap().to_owned();
    b.advance(30);
    let r = b.http().with_token(&token).send(
        "POST",
        &format!("/-/stage/{stage_id}/approve"),
        &[("npm-otp", &b.otp(&secret, 0))],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        a.http().get("/ci-pkg").json()["dist-tags"]["latest"],
        "1.1.0"
    );
}

#[test]
fn two_instances_share_the_uplink_cache_and_breaker_and_fetch_a_tarball_once() {
    let stub = stub::Stub::start();
    let tgz = stub.package("shared-dep", "1.0.0");
    stub.drip(
        "/shared-dep/-/shared-dep-1.0.0.tgz",
        std::time::Duration::from_millis(4),
    );
    let uplinks = format!(
        "[{{name = \"stub\", url = \"{}\", max_fails = 1, fail_timeout = \"60s\", timeout = \"20s\"}}]",
        stub.url
    );
    let backend = SharedBackend::new();
    let env = [("TESSERA_UPLINKS", uplinks.as_str())];
    let a = Registry::start_on(Some(backend.clone()), &env);
    let b = Registry::start_on(Some(backend), &env);

    // A fetches the packument; B serves it from the shared cache without asking
    assert_eq!(a.http().get("/shared-dep").status, 200);
    assert_eq!(b.http().get("/shared-dep").status, 200);
    assert_eq!(stub.count("/shared-dep"), 1);
    // both ask for the tarball at once: one fetch, both served
    let got = race(2, |i| {
        [&a, &b][i].http().get("/shared-dep/-/shared-dep-1.0.0.tgz")
    });
    for r in &got {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.bytes, tgz);
    }
    assert_eq!(stub.count("/shared-dep/-/shared-dep-1.0.0.tgz"), 1);

    // B serves a cached scoped package until A makes its scope local: then never again
    stub.package("@corp/lib", "1.0.0");
    assert_eq!(b.http().get("/@corp%2flib").status, 200);
    let out = a.admin(&["allow-name", "@corp"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alice = a.npm_as("alice");
    alice.publish("@corp/app", "1.0.0", &[]).ok();
    assert_eq!(b.http().get("/@corp%2flib").status, 404);
    assert_eq!(b.http().get("/@corp/lib/-/lib-1.0.0.tgz").status, 404);

    // a failure seen by A opens the breaker for B too
    stub.set(
        "/flaky",
        stub::Reply {
            status: 500,
            ..Default::default()
        },
    );
    assert_eq!(a.http().get("/flaky").status, 502);
    stub.package("later", "1.0.0");
    let r = b.http().get("/later");
    assert_eq!(r.status, 503);
    assert!(r.error().contains("skipped"), "{}", r.error());
    assert_eq!(stub.count("/later"), 0);
    // and B still installs what is cached
    let npm = b.npm();
    let project = npm.project("cached");
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"cached","version":"1.0.0","private":true,"dependencies":{"shared-dep":"1.0.0"}}"#,
    )
    .unwrap();
    npm.run_in(&project, &["install", "--no-audit"]).ok();
}
