//! Two-factor authentication with the real npm CLI, flow by flow as npm's 2FA document
//! describes it, plus the black-box security checks.

mod common;

use common::*;
use serde_json::{Value, json};

/// Runs `npm profile enable-2fa [mode]` at a terminal like a user with an authenticator app.
/// Returns the secret, the recovery codes and the transcript.
fn enable_with_cli(
    reg: &Registry,
    npm: &Npm,
    password: &str,
    mode: Option<&str>,
) -> (String, Vec<String>, String) {
    let mut args = vec!["profile", "enable-2fa"];
    args.extend(mode);
    let mut p = npm.pty(npm.root(), &args);
    p.expect(&format!(
        "Enabling two factor authentication for {}",
        mode.unwrap_or("auth-and-writes")
    ));
    p.expect("npm password:").send(password);
    p.expect("Scan into your authenticator app");
    p.expect("Or enter code:");
    let secret = p.expect_regex("[A-Z2-7]{32}");
    p.expect("And an OTP code from your authenticator:");
    p.send(&reg.otp(&secret, 0));
    p.expect("2FA successfully enabled. Below are your recovery codes, please print these out.");
    p.expect("You will need these to recover access to your account if you lose your authentication device.");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    let codes = recovery_codes_in(&out);
    (secret, codes, out)
}

fn recovery_codes_in(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .collect()
}

/// npm's refusal for a missing OTP off a terminal: EOTP, or for `npm owner` (which wraps every
/// error) EOWNERMUTATE with the EOTP message.
fn eotp(out: &str) -> bool {
    (out.contains("EOTP") && out.contains("This operation requires a one-time password"))
        || (out.contains("EOWNERMUTATE") && out.contains("OTP required for authentication"))
}

#[test]
fn enable_auth_and_writes_then_every_write_needs_an_otp() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let bob = reg.npm_as("bob");
    alice.publish("demo-pkg", "1.0.0", &[]).ok();
    alice.publish("demo-pkg", "1.1.0", &[]).ok();

    let (secret, codes, transcript) = enable_with_cli(&reg, &alice, "alice-password", None);
    assert_eq!(codes.len(), 10, "{transcript}");
    assert!(transcript.contains(&secret));
    let get = alice.run(&["profile", "get"]);
    assert!(
        get.ok().contains("two-factor auth: auth-and-writes"),
        "{}",
        get.all()
    );

    // Each write: refused without an OTP (EOTP, nothing changes), accepted with --otp.
    let fails_then_works = |args: &[&str], check: &dyn Fn() -> bool| {
        let out = alice.run(args);
        assert!(eotp(&out.fails()), "{args:?} without --otp: {}", out.all());
        assert!(!check(), "{args:?} changed something without an OTP");
        let otp = format!("--otp={}", reg.otp(&secret, 0));
        let mut with: Vec<&str> = args.to_vec();
        with.push(&otp);
        let out = alice.run(&with);
        assert_eq!(out.code, 0, "{args:?} with --otp: {}", out.all());
        assert!(check(), "{args:?} did not take effect");
    };
    let http = reg.http();
    let dir = alice.package("demo-pkg", "1.2.0", Value::Null);
    let out = alice.run_in(&dir, &["publish"]);
    assert!(eotp(&out.fails()), "{}", out.all());
    assert!(
        http.get("/demo-pkg").json()["versions"]
            .get("1.2.0")
            .is_none()
    );
    let otp = format!("--otp={}", reg.otp(&secret, 0));
    alice.run_in(&dir, &["publish", &otp]).ok();
    assert!(
        http.get("/demo-pkg").json()["versions"]
            .get("1.2.0")
            .is_some()
    );

    fails_then_works(&["dist-tag", "add", "demo-pkg@1.0.0", "stable"], &|| {
        http.get("/demo-pkg").json()["dist-tags"]["stable"] == "1.0.0"
    });
    fails_then_works(&["dist-tag", "rm", "demo-pkg", "stable"], &|| {
        http.get("/demo-pkg").json()["dist-tags"]
            .get("stable")
            .is_none()
    });
    fails_then_works(&["owner", "add", "bob", "demo-pkg"], &|| {
        http.get("/demo-pkg").json()["maintainers"]
            .as_array()
            .unwrap()
            .len()
            == 2
    });
    fails_then_works(&["owner", "rm", "bob", "demo-pkg"], &|| {
        http.get("/demo-pkg").json()["maintainers"]
            .as_array()
            .unwrap()
            .len()
            == 1
    });
    fails_then_works(&["deprecate", "demo-pkg@1.0.0", "old"], &|| {
        http.get("/demo-pkg").json()["versions"]["1.0.0"]["deprecated"] == "old"
    });
    fails_then_works(&["unpublish", "demo-pkg@1.1.0"], &|| {
        http.get("/demo-pkg").json()["versions"]
            .get("1.1.0")
            .is_none()
    });
    alice
        .run_in(
            &alice.package("@alice/vis", "1.0.0", Value::Null),
            &["publish", &format!("--otp={}", reg.otp(&secret, 0))],
        )
        .ok();
    let t = alice.token().unwrap();
    fails_then_works(&["access", "set", "status=public", "@alice/vis"], &|| {
        http.with_token(&t)
            .get("/-/package/@alice%2fvis/visibility")
            .json()["public"]
            == true
    });
    fails_then_works(&["profile", "set", "fullname", "Alice Liddell"], &|| {
        http.with_token(&t).get("/-/npm/v1/user").json()["fullname"] == "Alice Liddell"
    });
    let count = || {
        http.with_token(&t).get("/-/npm/v1/tokens").json()["total"]
            .as_i64()
            .unwrap()
    };
    // (the login is a session, not listed)
    fails_then_works(
        &["token", "create", "--password", "alice-password"],
        &|| count() == 1,
    );
    let second = http.with_token(&t).get("/-/npm/v1/tokens").json()["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["key"] != json!(reg_key(&t)))
        .unwrap()["key"]
        .as_str()
        .unwrap()[..10]
        .to_owned();
    fails_then_works(&["token", "revoke", &second], &|| count() == 0);
    // reads and star need none, and an `--otp` on them is not spent
    let out = alice.run(&["view", "demo-pkg", "version"]);
    out.ok();
    bob.run(&["star", "demo-pkg"]).ok();
    alice.run(&["star", "demo-pkg"]).ok();
    // npm unpublish of the whole package: two requests, one code
    let out = alice.run(&[
        "unpublish",
        "demo-pkg",
        "--force",
        &format!("--otp={}", reg.otp(&secret, 0)),
    ]);
    out.ok();
    assert_eq!(http.get("/demo-pkg").status, 404);
}

fn reg_key(token: &str) -> String {
    use sha2::Digest;
    data_encoding::HEXLOWER.encode(&sha2::Sha256::digest(token.as_bytes()))
}

#[test]
fn npm_prompts_for_the_otp_at_a_terminal() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-and-writes");
    let dir = alice.package("demo-pkg", "1.0.0", Value::Null);
    let mut p = alice.pty(&dir, &["publish"]);
    p.expect("This operation requires a one-time password.");
    p.expect("Enter OTP:");
    p.send(&reg.otp(&secret, 0));
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("+ demo-pkg@1.0.0"), "{out}");
    // a wrong code at the prompt: npm retries once, then fails; nothing is published
    let dir = alice.package("demo-pkg", "1.0.1", Value::Null);
    let mut p = alice.pty(&dir, &["publish"]);
    p.expect("Enter OTP:");
    p.send("000000");
    let (out, code) = p.finish();
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("one-time pass"), "{out}");
    assert!(
        reg.http().get("/demo-pkg").json()["versions"]
            .get("1.0.1")
            .is_none()
    );
}

/// `npm login` at a terminal, answering the OTP prompt with `second`.
fn login_with(npm: &Npm, name: &str, password: &str, second: &str) -> (String, i32) {
    let mut p = npm.pty(npm.root(), &["login", "--auth-type=legacy"]);
    p.expect("Username:").send(name);
    p.expect("Password:").send(password);
    p.expect("Enter OTP:").send(second);
    p.finish()
}

#[test]
fn login_needs_the_otp_or_a_recovery_code() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let (secret, codes) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-only");
    reg.advance(30);
    // non-interactive: EOTP, no token
    let r = reg.http().put_json(
        "/-/user/org.couchdb.user:alice",
        &json!({"name": "alice", "password": "alice-password"}),
    );
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("otp")));
    assert!(r.error().contains("one-time pass"));
    assert!(r.json().get("token").is_none());
    // with the authenticator's code
    let laptop = reg.npm();
    let (out, code) = login_with(&laptop, "alice", "alice-password", &reg.otp(&secret, 0));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Logged in on"), "{out}");
    assert_eq!(laptop.run(&["whoami"]).ok().trim(), "alice");
    // with a recovery code, which then is spent
    let other = reg.npm();
    let (out, code) = login_with(&other, "alice", "alice-password", &codes[0]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(other.run(&["whoami"]).ok().trim(), "alice");
    let third = reg.npm();
    let (out, code) = login_with(&third, "alice", "alice-password", &codes[0]);
    assert_ne!(code, 0, "a recovery code works once: {out}");
    assert!(third.token().is_none());
    // `npm login --otp=…` sends it up front
    reg.advance(30);
    let fourth = reg.npm();
    let mut p = fourth.pty(
        fourth.root(),
        &["login", &format!("--otp={}", reg.otp(&secret, 0))],
    );
    p.expect("Username:").send("alice");
    p.expect("Password:").send("alice-password");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
}

#[test]
fn lost_device_recovery_then_reenrolment() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let (_secret, codes, _) = enable_with_cli(&reg, &alice, "alice-password", None);
    // the phone is gone: log in on a new machine with a recovery code
    let laptop = reg.npm();
    let (out, code) = login_with(&laptop, "alice", "alice-password", &codes[3]);
    assert_eq!(code, 0, "{out}");
    // disable 2FA with the password and another unused recovery code
    let mut p = laptop.pty(laptop.root(), &["profile", "disable-2fa"]);
    p.expect("npm password:").send("alice-password");
    p.expect("Enter OTP:").send(&codes[4]);
    p.expect("Two factor authentication disabled.");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert!(
        laptop
            .run(&["profile", "get"])
            .ok()
            .contains("two-factor auth: disabled")
    );
    // re-enable with a new device: a new secret and new codes
    let (secret2, codes2, _) = enable_with_cli(&reg, &laptop, "alice-password", None);
    assert_eq!(codes2.len(), 10);
    assert!(codes2.iter().all(|c| !codes.contains(c)));
    // the old codes are dead, the new ones work
    let r = reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:alice",
        &[("content-type", "application/json"), ("npm-otp", &codes[5])],
        Some(serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"})).unwrap()),
    );
    assert_eq!(r.status, 401, "old recovery code: {}", r.text);
    let r = reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:alice",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &codes2[0]),
        ],
        Some(serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"})).unwrap()),
    );
    assert_eq!(r.status, 201, "new recovery code: {}", r.text);
    let _ = secret2;
}

#[test]
fn auth_only_mode() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let (secret, _codes, _) = enable_with_cli(&reg, &alice, "alice-password", Some("auth-only"));
    assert!(
        alice
            .run(&["profile", "get"])
            .ok()
            .contains("two-factor auth: auth-only")
    );
    // package writes and profile fields need no OTP
    alice.publish("demo-pkg", "1.0.0", &[]).ok();
    alice
        .run(&["dist-tag", "add", "demo-pkg@1.0.0", "stable"])
        .ok();
    alice.run(&["profile", "set", "fullname", "Alice"]).ok();
    // new credentials and the password do
    let out = alice.run(&["token", "create", "--password", "alice-password"]);
    assert!(eotp(&out.fails()), "{}", out.all());
    alice
        .run(&[
            "token",
            "create",
            "--password",
            "alice-password",
            &format!("--otp={}", reg.otp(&secret, 0)),
        ])
        .ok();
    let t = alice.token().unwrap();
    let r = reg.http().with_token(&t).post_json(
        "/-/npm/v1/user",
        &json!({"password": {"old": "alice-password", "new": "alice-password-2"}}),
    );
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("otp")));
    // mode change needs the OTP, and npm prints the new mode
    let mut p = alice.pty(alice.root(), &["profile", "enable-2fa", "auth-and-writes"]);
    p.expect("npm password:").send("alice-password");
    p.expect("Enter OTP:").send(&reg.otp(&secret, 0));
    p.expect("Two factor authentication mode changed to: auth-and-writes");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert!(
        alice
            .run(&["profile", "get"])
            .ok()
            .contains("two-factor auth: auth-and-writes")
    );
    assert!(eotp(&alice.publish("demo-pkg", "1.0.1", &[]).fails()));
    // already in that mode: npm says so and changes nothing
    let mut p = alice.pty(alice.root(), &["profile", "enable-2fa", "auth-and-writes"]);
    p.expect("Two factor authentication is already enabled and set to auth-and-writes");
    let (_, code) = p.finish();
    assert_eq!(code, 0);
    // disable: password and OTP
    let out = alice.run(&["profile", "disable-2fa"]);
    assert_ne!(out.code, 0, "no terminal, no password: {}", out.all());
    let mut p = alice.pty(alice.root(), &["profile", "disable-2fa"]);
    p.expect("npm password:").send("alice-password");
    p.expect("Enter OTP:").send(&reg.otp(&secret, 0));
    p.expect("Two factor authentication disabled.");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    alice.publish("demo-pkg", "1.0.1", &[]).ok();
}

#[test]
fn mode_change_reply_depends_on_the_npm_version() {
    let reg = Registry::start();
    let token = reg.signup("alice", "alice-password");
    let (secret, _) = reg.enable_2fa(&token, "alice-password", "auth-and-writes");
    let http = reg.http().with_token(&token);
    let body =
        serde_json::to_vec(&json!({"tfa": {"password": "alice-password", "mode": "auth-only"}}))
            .unwrap();
    let code = reg.otp(&secret, 0);
    let r = http.send(
        "POST",
        "/-/npm/v1/user",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &code),
            (
                "user-agent",
                "npm/10.9.0 node/v20.20.2 linux x64 workspaces/false",
            ),
        ],
        Some(body),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"tfa": null}));
    let body = serde_json::to_vec(
        &json!({"tfa": {"password": "alice-password", "mode": "auth-and-writes"}}),
    )
    .unwrap();
    let r = http.send(
        "POST",
        "/-/npm/v1/user",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &code),
            (
                "user-agent",
                "npm/11.19.1 node/v20.20.2 linux x64 workspaces/false",
            ),
        ],
        Some(body),
    );
    assert_eq!(
        r.json(),
        json!({"tfa": {"pending": false, "mode": "auth-and-writes"}})
    );
    assert_eq!(
        http.get("/-/npm/v1/user").json()["tfa"],
        json!({"pending": false, "mode": "auth-and-writes"})
    );
}

#[test]
fn pending_enrolment_is_not_enforced_and_expires() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let http = reg.http().with_token(&alice.token().unwrap());
    let start = |pw: &str| {
        http.post_json(
            "/-/npm/v1/user",
            &json!({"tfa": {"password": pw, "mode": "auth-and-writes"}}),
        )
    };
    // wrong password: nothing starts, and no OTP challenge is offered
    let r = start("wrong-password");
    assert_eq!((r.status, r.header("www-authenticate")), (401, None));
    assert_eq!(http.get("/-/npm/v1/user").json()["tfa"], json!(false));
    let r = start("alice-password");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let uri = r.json()["tfa"].as_str().unwrap().to_owned();
    assert!(
        uri.starts_with("otpauth://totp/tessera:alice?secret="),
        "{uri}"
    );
    assert!(uri.ends_with("&issuer=tessera"));
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(tessera_otp::decode_base32(&secret).unwrap().len(), 20);
    assert_eq!(
        http.get("/-/npm/v1/user").json()["tfa"],
        json!({"pending": true, "mode": "auth-and-writes"})
    );
    // pending is not enforced
    alice.publish("demo-pkg", "1.0.0", &[]).ok();
    assert!(
        alice
            .run(&["profile", "get"])
            .ok()
            .contains("two-factor auth: disabled")
    );
    // a wrong code leaves it pending
    let r = http.post_json("/-/npm/v1/user", &json!({"tfa": ["000000"]}));
    assert_eq!(r.status, 400);
    assert_eq!(http.get("/-/npm/v1/user").json()["tfa"]["pending"], true);
    // re-enabling while pending makes a new secret
    let uri2 = start("alice-password").json()["tfa"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(uri, uri2);
    let secret2 = uri2
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    // a code from the replaced secret does not confirm
    let r = http.post_json("/-/npm/v1/user", &json!({"tfa": [reg.otp(&secret, 0)]}));
    assert_eq!(r.status, 400);
    // the enrolment expires after 10 minutes
    reg.advance(11 * 60);
    let r = http.post_json("/-/npm/v1/user", &json!({"tfa": [reg.otp(&secret2, 0)]}));
    assert_eq!(r.status, 400);
    assert!(r.error().contains("expired"), "{}", r.text);
    assert_eq!(http.get("/-/npm/v1/user").json()["tfa"], json!(false));
    // cancelling a pending one needs the password only
    start("alice-password");
    let r = http.post_json(
        "/-/npm/v1/user",
        &json!({"tfa": {"password": "alice-password", "mode": "disable"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(http.get("/-/npm/v1/user").json()["tfa"], json!(false));
    // client-supplied secrets are ignored
    let r = http.post_json("/-/npm/v1/user", &json!({"tfa": {"password": "alice-password", "mode": "auth-only", "secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"}}));
    assert!(
        !r.json()["tfa"]
            .as_str()
            .unwrap()
            .contains("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")
    );
}

#[test]
fn window_and_issuer_are_configurable() {
    let reg = Registry::start_with(&[
        ("TESSERA_TFA__WINDOW", "0"),
        ("TESSERA_TFA__ISSUER", "Acme npm"),
    ]);
    let token = reg.signup("alice", "alice-password");
    let http = reg.http().with_token(&token);
    let r = http.post_json(
        "/-/npm/v1/user",
        &json!({"tfa": {"password": "alice-password", "mode": "auth-and-writes"}}),
    );
    let uri = r.json()["tfa"].as_str().unwrap().to_owned();
    assert!(
        uri.starts_with("otpauth://totp/Acme%20npm:alice?secret="),
        "{uri}"
    );
    assert!(uri.ends_with("&issuer=Acme%20npm"), "{uri}");
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    // with window 0 the previous step's code no longer confirms, the current one does
    reg.align_step();
    let r = http.post_json("/-/npm/v1/user", &json!({"tfa": [reg.otp(&secret, -1)]}));
    assert_eq!(r.status, 400, "{}", r.text);
    let r = http.post_json("/-/npm/v1/user", &json!({"tfa": [reg.otp(&secret, 0)]}));
    assert_eq!(r.status, 200, "{}", r.text);
}

/// npm ≤ 11.3 (here npm 10) asks for the OTP before the mode change and expects `{tfa: null}`
/// back; it must print that the mode changed too.
#[test]
fn npm_10_changes_the_mode_too() {
    let npm10 = ensure_npm(10);
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-and-writes");
    // run npm 10's own CLI with the same isolated environment
    let node = alice.command_of(
        &npm10,
        alice.root(),
        &["profile", "enable-2fa", "auth-only"],
    );
    let session = rexpect::session::spawn_with_options(
        node,
        rexpect::reader::Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .unwrap();
    let mut p = session;
    p.exp_string("npm password:").unwrap();
    p.send_line("alice-password").unwrap();
    p.exp_string("Enter one-time password:").unwrap();
    p.send_line(&reg.otp(&secret, 0)).unwrap();
    let out = p.exp_eof().unwrap();
    assert!(
        out.contains("Two factor authentication mode changed to: auth-only"),
        "{out}"
    );
    let t = alice.token().unwrap();
    assert_eq!(
        reg.http().with_token(&t).get("/-/npm/v1/user").json()["tfa"],
        json!({"pending": false, "mode": "auth-only"})
    );
}
