//! Granular and automation tokens, per-package 2FA policy (`npm access set mfa=…`) and the
//! registry-wide `require_2fa`, with the real npm CLI.

mod common;

use common::*;
use serde_json::{Value, json};

fn created_token(run: &Run) -> String {
    run.ok()
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .expect("a token was printed")
        .to_owned()
}

/// A client using `token` instead of the login token.
fn client(reg: &Registry, token: &str) -> Npm {
    let npm = reg.npm();
    npm.set_token(&reg.addr, token);
    npm
}

#[test]
fn granular_tokens_reach_only_their_packages() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    alice.publish("demo", "1.0.0", &[]).ok();
    alice.publish("other", "1.0.0", &[]).ok();
    alice.publish("@alice/priv", "1.0.0", &[]).ok();
    alice.publish("@acme/thing", "1.0.0", &[]).ok();

    let only_demo = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--name",
        "ci",
        "--packages",
        "demo",
        "--packages-and-scopes-permission",
        "read-write",
    ]));
    let ci = client(&reg, &only_demo);
    ci.publish("demo", "1.0.1", &[]).ok();
    let out = ci.publish("other", "1.0.1", &[]);
    assert!(
        out.fails().contains("limited to other packages"),
        "{}",
        out.all()
    );
    assert!(
        ci.run(&["dist-tag", "add", "other@1.0.0", "stable"])
            .fails()
            .contains("403")
    );
    // it reads public packages, not private ones outside it
    ci.run(&["view", "other", "version"]).ok();
    assert!(ci.run(&["view", "@alice/priv"]).fails().contains("404"));
    assert_eq!(
        reg.http()
            .with_token(&only_demo)
            .get("/@alice%2fpriv")
            .status,
        404
    );
    let hits = reg
        .http()
        .with_token(&only_demo)
        .get("/-/v1/search?text=priv")
        .json();
    assert_eq!(hits["total"], 0);
    // and it cannot touch the account
    assert!(
        ci.run(&["profile", "set", "fullname", "Mallory"])
            .fails()
            .contains("403")
    );
    assert!(
        ci.run(&["token", "create", "--password", "alice-password"])
            .fails()
            .contains("403")
    );
    assert_eq!(ci.run(&["whoami"]).ok().trim(), "alice");

    // scopes, including packages not yet published there
    let scoped = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--scopes",
        "@alice",
    ]));
    let sc = client(&reg, &scoped);
    sc.publish("@alice/priv", "1.0.1", &[]).ok();
    sc.publish("@alice/fresh", "1.0.0", &[]).ok();
    assert!(sc.publish("demo", "1.0.2", &[]).fails().contains("403"));
    sc.run(&["view", "@alice/priv", "version"]).ok();

    // organisations (the scope of the same name), read-only: private reads yes, writes no
    let org = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--orgs",
        "acme",
        "--orgs-permission",
        "read-only",
    ]));
    let o = client(&reg, &org);
    o.run(&["view", "@acme/thing", "version"]).ok();
    assert!(
        o.publish("@acme/thing", "1.0.1", &[])
            .fails()
            .contains("read-only")
    );

    // no-access: not even private reads of its own packages
    let none = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--packages",
        "@alice/priv",
        "--packages-and-scopes-permission",
        "no-access",
    ]));
    assert_eq!(
        reg.http().with_token(&none).get("/@alice%2fpriv").status,
        404
    );

    // all packages: every package, still not the account
    let all = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--packages-all",
    ]));
    let a = client(&reg, &all);
    a.publish("other", "1.0.2", &[]).ok();
    assert!(
        a.run(&["profile", "set", "fullname", "X"])
            .fails()
            .contains("403")
    );

    // npm token list shows names, permissions and expiry
    let list = alice.run(&["token", "list"]);
    let text = list.ok();
    assert!(
        text.contains("name ci (read-write: demo · expires"),
        "{text}"
    );
    assert!(text.contains("(read-write: @alice · expires"), "{text}");
    assert!(text.contains("orgs read-only: acme"), "{text}");
    // the login is a session, which npm token list does not show
    assert!(!text.contains("login token"), "{text}");
}

#[test]
fn token_lifetimes() {
    // The old key names (now `tokens.max_expiry = "30d"`, `tokens.default_expiry = "7d"`), kept
    // here on purpose: existing deployments set them.
    let reg = Registry::start_with(&[
        ("TESSERA_TOKENS__MAX_EXPIRY_DAYS", "30"),
        ("TESSERA_TOKENS__DEFAULT_EXPIRY_DAYS", "7"),
    ]);
    let alice = reg.npm_as("alice");
    let out = alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--expires",
        "31",
    ]);
    assert!(out.fails().contains("from 1 to 30"), "{}", out.all());
    let short = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--expires",
        "1",
    ]));
    let default = alice.run(&["token", "create", "--password", "alice-password", "--json"]);
    let v: Value = serde_json::from_str(default.ok()).unwrap();
    let expires = v["expires"].as_str().expect("a default expiry");
    let days = (parse_iso(expires) - reg.now_secs() as i64) / 86400;
    assert!((6..=7).contains(&days), "{expires}");
    let user = client(&reg, &short);
    assert_eq!(user.run(&["whoami"]).ok().trim(), "alice");
    reg.advance(2 * 86400);
    let out = user.run(&["whoami"]).fails();
    assert!(out.contains("E401"), "{out}");
    let r = reg.http().with_token(&short).get("/-/whoami");
    assert_eq!(r.status, 401);
    assert!(r.error().contains("expired"), "{}", r.text);
}

fn parse_iso(s: &str) -> i64 {
    let d = &s[..10];
    let days = {
        let (y, m, dd): (i64, i64, i64) = (
            d[..4].parse().unwrap(),
            d[5..7].parse().unwrap(),
            d[8..10].parse().unwrap(),
        );
        // days from civil (Howard Hinnant)
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + dd - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146097 + doe - 719468
    };
    days * 86400
}

#[test]
fn automation_and_bypass_tokens_skip_the_otp_for_package_writes_only() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    let _ = bob;
    alice.publish("demo", "1.0.0", &[]).ok();
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-and-writes");
    // minting one needs the OTP
    let out = alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--bypass-2fa",
    ]);
    assert!(out.fails().contains("EOTP"), "{}", out.all());
    let bypass = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--bypass-2fa",
        &format!("--otp={}", reg.otp(&secret, 0)),
    ]));
    let r = reg.http().with_token(&alice.token().unwrap()).send(
        "POST",
        "/-/npm/v1/tokens",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &reg.otp(&secret, 0)),
        ],
        Some(
            serde_json::to_vec(&json!({"password": "alice-password", "type": "automation"}))
                .unwrap(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["type"], "automation");
    let automation = r.json()["token"].as_str().unwrap().to_owned();

    for (i, token) in [bypass, automation].iter().enumerate() {
        // each credential needs a step nobody else has used
        reg.advance(30);
        let ci = client(&reg, token);
        // package writes: no OTP
        ci.publish("demo", &format!("1.{}.0", i + 1), &[]).ok();
        ci.run(&[
            "dist-tag",
            "add",
            &format!("demo@1.{}.0", i + 1),
            &format!("ci{i}"),
        ])
        .ok();
        ci.run(&["deprecate", "demo@1.0.0", "old"]).ok();
        ci.publish("demo", &format!("1.{}.1", i + 1), &[]).ok();
        ci.run(&["unpublish", &format!("demo@1.{}.1", i + 1)]).ok();
        // account and governance: refused outright, with or without a code
        let otp = format!("--otp={}", reg.otp(&secret, 0));
        for args in [
            vec!["owner", "add", "bob", "demo"],
            vec!["profile", "set", "fullname", "CI"],
            vec!["token", "create", "--password", "alice-password"],
            vec!["access", "set", "mfa=none", "demo"],
        ] {
            for with_otp in [false, true] {
                let mut args = args.clone();
                if with_otp {
                    args.push(&otp);
                }
                let out = ci.run(&args);
                let all = out.fails();
                assert!(all.contains("403"), "{args:?}: {all}");
                assert!(
                    !all.contains("EOTP"),
                    "{args:?}: never asks for a code: {all}"
                );
            }
        }
    }
}

#[test]
fn automation_tokens_never_govern_an_account_without_2fa() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    reg.signup("bob", "bob-password");
    alice.publish("demo", "1.0.0", &[]).ok();
    let bypass = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--bypass-2fa",
    ]));
    let ci = client(&reg, &bypass);
    ci.publish("demo", "1.0.1", &[]).ok();
    let out = ci.run(&["owner", "add", "bob", "demo"]);
    assert!(
        out.fails().contains("use a token from `npm login`") || out.all().contains("npm login"),
        "{}",
        out.all()
    );
    assert!(
        ci.run(&["token", "create", "--password", "alice-password"])
            .fails()
            .contains("403")
    );
}

#[test]
fn package_mfa_policy() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    alice.publish("demo", "1.0.0", &[]).ok();
    alice.run(&["owner", "add", "bob", "demo"]).ok();
    // without 2FA, nobody can set a policy
    assert!(
        alice
            .run(&["access", "set", "mfa=publish", "demo"])
            .fails()
            .contains("Only a maintainer with two-factor")
    );
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-only");
    let bypass = created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--bypass-2fa",
        &format!("--otp={}", reg.otp(&secret, 0)),
    ]));
    // setting it needs the OTP even in auth-only mode
    assert!(
        alice
            .run(&["access", "set", "mfa=publish", "demo"])
            .fails()
            .contains("EOTP")
    );
    alice
        .run(&[
            "access",
            "set",
            "mfa=publish",
            "demo",
            &format!("--otp={}", reg.otp(&secret, 0)),
        ])
        .ok();
    assert_eq!(
        reg.http().get("/-/package/demo/access").json()["mfa"],
        "publish"
    );
    // every publish now needs an OTP, whatever the account mode (auth-only asks none normally)…
    assert!(alice.publish("demo", "1.0.1", &[]).fails().contains("EOTP"));
    alice
        .publish(
            "demo",
            "1.0.1",
            &[&format!("--otp={}", reg.otp(&secret, 0))],
        )
        .ok();
    // …even from a bypass token…
    let ci = client(&reg, &bypass);
    assert!(ci.publish("demo", "1.0.2", &[]).fails().contains("EOTP"));
    // …and a maintainer without 2FA is told how to turn it on
    let out = bob.publish("demo", "1.0.3", &[]);
    assert!(
        out.fails().contains("npm profile enable-2fa"),
        "{}",
        out.all()
    );
    assert!(
        bob.run(&["dist-tag", "add", "demo@1.0.0", "bobs"])
            .fails()
            .contains("403")
    );
    // mfa=automation lets automation and bypass tokens publish
    alice
        .run(&[
            "access",
            "set",
            "mfa=automation",
            "demo",
            &format!("--otp={}", reg.otp(&secret, 0)),
        ])
        .ok();
    assert_eq!(
        reg.http().get("/-/package/demo/access").json(),
        json!({"name": "demo", "access": "public", "mfa": "automation", "publish_requires_tfa": true, "automation_token_overrides_tfa": true, "tokens_refused": false, "staged_publishes": false, "provenance_required": false})
    );
    ci.publish("demo", "1.0.4", &[]).ok();
    assert!(alice.publish("demo", "1.0.5", &[]).fails().contains("EOTP"));
    // npm 6–8's `npm access 2fa-not-required` body
    let r = reg.http().with_token(&alice.token().unwrap()).send(
        "POST",
        "/-/package/demo/access",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &reg.otp(&secret, 0)),
        ],
        Some(serde_json::to_vec(&json!({"publish_requires_tfa": false})).unwrap()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        reg.http().get("/-/package/demo/access").json()["mfa"],
        "none"
    );
    bob.publish("demo", "1.0.6", &[]).ok();
}

#[test]
fn registry_requires_2fa_of_publishers() {
    let reg = Registry::start_with(&[("TESSERA_REQUIRE_2FA", "publishers")]);
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    let out = bob.publish("bobs", "1.0.0", &[]);
    let all = out.fails();
    assert!(
        all.contains("requires two-factor authentication")
            && all.contains("npm profile enable-2fa"),
        "{all}"
    );
    // reads and the account still work
    bob.run(&["whoami"]).ok();
    bob.run(&["profile", "set", "fullname", "Bob"]).ok();
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-and-writes");
    alice
        .publish(
            "alices",
            "1.0.0",
            &[&format!("--otp={}", reg.otp(&secret, 0))],
        )
        .ok();
    // an administrator lifts it at run time
    let out = reg.admin(&["policy", "--require-2fa", "none"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("require_2fa = none (set by tessera admin policy)")
    );
    poll("the policy change", || {
        (bob.publish("bobs", "1.0.0", &[]).code == 0).then_some(())
    });
}

#[test]
fn registry_requires_2fa_of_everyone() {
    let reg = Registry::start_with(&[("TESSERA_REQUIRE_2FA", "everyone")]);
    let carol = reg.npm_as("carol");
    let publisher = reg.npm_as("dave");
    let _ = publisher;
    // logged in, but only to turn 2FA on
    assert_eq!(carol.run(&["whoami"]).ok().trim(), "carol");
    let out = carol.run(&["view", "anything"]);
    assert!(
        out.fails().contains("requires two-factor authentication"),
        "{}",
        out.all()
    );
    assert!(
        carol
            .publish("carols", "1.0.0", &[])
            .fails()
            .contains("403")
    );
    let t = carol.token().unwrap();
    assert_eq!(
        reg.http().with_token(&t).get("/-/npm/v1/tokens").status,
        403
    );
    // npm profile enable-2fa works end to end
    let mut p = carol.pty(carol.root(), &["profile", "enable-2fa"]);
    p.expect("npm password:").send("carol-password");
    p.expect("Or enter code:");
    let secret = p.expect_regex("[A-Z2-7]{32}");
    p.expect("And an OTP code from your authenticator:")
        .send(&reg.otp(&secret, 0));
    p.expect("2FA successfully enabled");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    carol
        .publish(
            "carols",
            "1.0.0",
            &[&format!("--otp={}", reg.otp(&secret, 0))],
        )
        .ok();
    carol.run(&["view", "carols", "version"]).ok();
}

#[test]
fn grace_period_warns_with_an_npm_notice() {
    let reg = Registry::start_with(&[
        ("TESSERA_REQUIRE_2FA", "publishers"),
        ("TESSERA_REQUIRE_2FA_GRACE_UNTIL", "2099-01-01"),
    ]);
    let bob = reg.npm_as("bob");
    let out = bob.publish("bobs", "1.0.0", &[]);
    out.ok();
    assert!(out.all().contains("npm notice This registry will require two-factor authentication to publish or change packages from 2099-01-01"), "{}", out.all());
    let shown = reg.admin(&["policy"], None);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("grace period until 2099-01-01"));
    // the grace period ends: refused
    reg.admin(&["policy", "--grace-until", "2020-01-01"], None);
    let mut patch = 0;
    poll("the grace period to end", || {
        patch += 1;
        let out = bob.publish("bobs", &format!("1.0.{patch}"), &[]);
        out.all()
            .contains("requires two-factor authentication")
            .then_some(())
    });
}

#[test]
fn admin_lists_and_revokes_tokens() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    created_token(&alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--name",
        "ci",
        "--packages",
        "demo",
    ]));
    let out = reg.admin(&["tokens", "alice"], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("ci (read-write: demo"), "{text}");
    let out = reg.admin(&["tokens", "alice", "--revoke-all"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked 2 tokens"));
    let t = alice.token().unwrap();
    poll("the revocation to reach the server", || {
        (reg.http().with_token(&t).get("/-/whoami").status == 401).then_some(())
    });
    assert!(alice.run(&["whoami"]).fails().contains("E401"));
}

/// npm's token rules since 2025, as defaults: write tokens 7 days (at most 90), read-only tokens
/// 30 days, `npm login` a 12-hour session that `npm token list` does not show, and created write
/// tokens enforcing 2FA on package changes unless made with `--bypass-2fa`.
#[test]
fn npm_2025_token_rules() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let login = alice.token().unwrap();
    alice.publish("demo", "1.0.0", &[]).ok();
    let (secret, _) = reg.enable_2fa(&login, "alice-password", "auth-only");
    let code = || {
        reg.advance(30);
        reg.otp(&secret, 0)
    };
    // `npm token create` with these words (and the password, --json and a fresh code)
    let create = |words: &str| {
        let mut all = vec!["token", "create", "--password", "alice-password", "--json"];
        all.extend(words.split(' '));
        let otp = format!("--otp={}", code());
        all.push(&otp);
        let out = alice.run(&all);
        let v: Value =
            serde_json::from_str(out.ok()).unwrap_or_else(|e| panic!("{e}: {}", out.all()));
        v
    };
    let days_left = |v: &Value| {
        let expires = parse_iso(v["expires"].as_str().expect("an expiry"));
        let created = parse_iso(v["created"].as_str().expect("a creation time"));
        (expires - created + 3600) / 86400
    };
    let write = create("--name ci --packages demo --packages-and-scopes-permission read-write");
    assert_eq!(days_left(&write), 7, "{write}");
    let read = create("--name mirror --packages-all --packages-and-scopes-permission read-only");
    assert_eq!(days_left(&read), 30, "{read}");
    let long_read = create(
        "--name archive --packages-all --packages-and-scopes-permission read-only --expires 400",
    );
    assert_eq!(days_left(&long_read), 400, "{long_read}");
    let otp = format!("--otp={}", code());
    let mut args: Vec<&str> =
        "token create --password alice-password --name long --packages-all --packages-and-scopes-permission read-write --expires 91"
            .split(' ')
            .collect();
    args.push(&otp);
    let out = alice.run(&args);
    assert!(out.fails().contains("from 1 to 90"), "{}", out.all());
    let bypass = create(
        "--name release --packages demo --packages-and-scopes-permission read-write --bypass-2fa",
    );

    // the login is a session: not in npm token list, in the administrator's listing
    let listed = alice.run(&["token", "list"]).ok().to_owned();
    assert!(!listed.contains("login token"), "{listed}");
    assert!(listed.contains("ci (read-write: demo"), "{listed}");
    let admin = String::from_utf8_lossy(&reg.admin(&["tokens", "alice"], None).stdout).into_owned();
    assert!(admin.contains("login token (expires"), "{admin}");

    // auth-only: the login publishes as the mode says, a created write token asks the code,
    // a bypass token does not
    alice.publish("demo", "1.0.1", &[]).ok();
    let ci = client(&reg, write["token"].as_str().unwrap());
    assert!(ci.publish("demo", "1.0.2", &[]).fails().contains("EOTP"));
    ci.publish("demo", "1.0.2", &[&format!("--otp={}", code())])
        .ok();
    client(&reg, bypass["token"].as_str().unwrap())
        .publish("demo", "1.0.3", &[])
        .ok();

    // what lapses soon, for the administrator
    let expiring = |span: &str| {
        let out = reg.admin(&["tokens", "--expiring", span], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // (login sessions are short by design: left out)
    let soon = expiring("1d");
    assert!(soon.trim().is_empty(), "{soon}");
    let week = expiring("8d");
    assert!(
        week.contains("ci (read-write: demo") && week.contains("release"),
        "{week}"
    );
    assert!(!week.contains("mirror"), "{week}");
    assert!(expiring("31d").contains("mirror"));
    assert!(!expiring("31d").contains("archive"));
    let out = reg.admin(&["tokens", "bob", "--expiring", "31d"], None);
    assert!(!out.status.success(), "no such user");
    let out = reg.admin(&["tokens", "--expiring", "7"], None);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("with its unit"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reg.signup("bob", "bob-password");
    let out = reg.admin(&["tokens", "bob", "--expiring", "31d"], None);
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "only bob's"
    );

    // the session ends after 12 hours (not before); created tokens go on
    reg.advance(11 * 3600 + 50 * 60);
    assert_eq!(alice.run(&["whoami"]).ok().trim(), "alice");
    reg.advance(15 * 60);
    assert!(alice.run(&["whoami"]).fails().contains("E401"));
    let r = reg.http().with_token(&login).get("/-/whoami");
    assert!(r.error().contains("expired"), "{}", r.text);
    assert_eq!(ci.run(&["whoami"]).ok().trim(), "alice");
}
