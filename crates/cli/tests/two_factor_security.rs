//! Black-box security checks of the second factor: replay, races,
//! throttling, secrets at rest and in responses, and the ordering of factors.

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{Value, json};

/// A registry with alice (2FA auth-and-writes) owning `demo`, and `n` extra tokens of hers.
struct Setup {
    reg: Registry,
    secret: String,
    codes: Vec<String>,
    tokens: Vec<String>,
}

fn setup(extra_tokens: usize) -> Setup {
    setup_with(extra_tokens, &[])
}

fn setup_with(extra_tokens: usize, env: &[(&str, &str)]) -> Setup {
    let reg = Registry::start_with(env);
    let login = reg.signup("alice", "alice-password");
    let http = reg.http().with_token(&login);
    let mut tokens = vec![login.clone()];
    for _ in 0..extra_tokens {
        let r = http.post_json(
            "/-/npm/v1/tokens",
            &json!({"password": "alice-password", "readonly": false, "cidr_whitelist": []}),
        );
        tokens.push(r.json()["token"].as_str().unwrap().to_owned());
    }
    let m = json!({"name": "demo", "version": "1.0.0"});
    let r = http.put_json(
        "/demo",
        &publish_body(&reg.url(), "demo", "1.0.0", &tgz(&m, &[])),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let (secret, codes) = reg.enable_2fa(&login, "alice-password", "auth-and-writes");
    reg.advance(30);
    Setup {
        reg,
        secret,
        codes,
        tokens,
    }
}

#[test]
fn a_code_is_spent_for_other_credentials_but_not_for_its_own() {
    let s = setup(2);
    let code = s.reg.otp(&s.secret, 0);
    assert_eq!(demo_tag(&s.reg, &s.tokens[1], "a", Some(&code)).status, 200);
    // the same token may present it again (npm sends one --otp on every request of a command)
    assert_eq!(demo_tag(&s.reg, &s.tokens[1], "b", Some(&code)).status, 200);
    // another token may not
    let r = demo_tag(&s.reg, &s.tokens[2], "c", Some(&code));
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("otp")));
    assert!(r.error().contains("one-time pass"));
    assert!(
        s.reg
            .http()
            .get("/-/package/demo/dist-tags")
            .json()
            .get("c")
            .is_none(),
        "nothing changed"
    );
    // an older code after a newer one is refused even inside the window
    let newer = s.reg.otp(&s.secret, 1);
    assert_eq!(
        demo_tag(&s.reg, &s.tokens[2], "d", Some(&newer)).status,
        200
    );
    assert_eq!(demo_tag(&s.reg, &s.tokens[1], "e", Some(&code)).status, 401);
    // a login code cannot then be used for a publish
    s.reg.advance(60);
    let code = s.reg.otp(&s.secret, 0);
    let r = s.reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:alice",
        &[("content-type", "application/json"), ("npm-otp", &code)],
        Some(serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"})).unwrap()),
    );
    assert_eq!(r.status, 201);
    let fresh = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        demo_tag(&s.reg, &fresh, "f", Some(&code)).status,
        401,
        "the login spent it"
    );
}

#[test]
fn twenty_racing_requests_with_one_code_succeed_once() {
    let s = setup(20);
    let code = Arc::new(s.reg.otp(&s.secret, 0));
    let reg = Arc::new(s.reg);
    let mut threads = Vec::new();
    for (i, token) in s.tokens[1..].iter().enumerate() {
        let (reg, code, token) = (reg.clone(), code.clone(), token.clone());
        threads.push(std::thread::spawn(move || {
            demo_tag(&reg, &token, &format!("race{i}"), Some(&code)).status
        }));
    }
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    // the losers are refused: as a replay (401), or, while attempts are in flight, by the
    // throttle's reservation (429)
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let tags = reg.http().get("/-/package/demo/dist-tags").json();
    assert_eq!(
        tags.as_object().unwrap().len(),
        2,
        "latest plus the one winner: {tags}"
    );

    let log =
        String::from_utf8_lossy(&reg.admin(&["security-log", "alice"], None).stdout).into_owned();
    assert!(
        !log.contains("otp_failed"),
        "losing a race is not a wrong guess:\n{log}"
    );
    assert!(log.contains("otp_replayed"), "{log}");
    // the same race on logins: exactly one token is issued
    reg.advance(30);
    let code = Arc::new(reg.otp(&s.secret, 0));
    let mut threads = Vec::new();
    for _ in 0..10 {
        let (reg, code) = (reg.clone(), code.clone());
        threads.push(std::thread::spawn(move || {
            reg.http()
                .send(
                    "PUT",
                    "/-/user/org.couchdb.user:alice",
                    &[("content-type", "application/json"), ("npm-otp", &code)],
                    Some(
                        serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"}))
                            .unwrap(),
                    ),
                )
                .text
        }));
    }
    let statuses: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| s.contains("token")).count(),
        1,
        "{statuses:?}"
    );

    // and on a recovery code
    let rc = Arc::new(s.codes[0].clone());
    let mut threads = Vec::new();
    for _ in 0..10 {
        let (reg, rc) = (reg.clone(), rc.clone());
        threads.push(std::thread::spawn(move || {
            reg.http()
                .send(
                    "PUT",
                    "/-/user/org.couchdb.user:alice",
                    &[("content-type", "application/json"), ("npm-otp", &rc)],
                    Some(
                        serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"}))
                            .unwrap(),
                    ),
                )
                .status
        }));
    }
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
}

/// A login with a wrong code: the password is right, the code is not.
fn login_with(reg: &Registry, code: &str) -> Resp {
    reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:alice",
        &[("content-type", "application/json"), ("npm-otp", code)],
        Some(serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"})).unwrap()),
    )
}

#[test]
fn failed_codes_are_throttled_across_every_path() {
    let s = setup(1);
    let t = &s.tokens[0];
    let http = s.reg.http().with_token(t);
    // wrong passwords do not move the second-factor counter
    for _ in 0..3 {
        let r = s.reg.http().put_json(
            "/-/user/org.couchdb.user:alice",
            &json!({"name": "alice", "password": "wrong-password"}),
        );
        assert_eq!(
            (r.status, r.header("www-authenticate")),
            (401, None),
            "no OTP challenge before the password"
        );
    }
    // One token: 2 wrong codes on a write, 3 on token creation…
    for _ in 0..2 {
        assert_eq!(demo_tag(&s.reg, t, "xtag", Some("111111")).status, 401);
    }
    for _ in 0..3 {
        let r = http.send(
            "POST",
            "/-/npm/v1/tokens",
            &[("content-type", "application/json"), ("npm-otp", "222222")],
            Some(serde_json::to_vec(&json!({"password": "alice-password"})).unwrap()),
        );
        assert_eq!(r.status, 401, "{}", r.text);
    }
    // …then even a correct code is refused to it, and the answer does not say whether it was right
    let good = demo_tag(&s.reg, t, "y", Some(&s.reg.otp(&s.secret, 0)));
    let bad = demo_tag(&s.reg, t, "y", Some("333333"));
    assert_eq!(good.status, 429, "{}", good.text);
    assert_eq!(
        (good.status, good.text.clone()),
        (bad.status, bad.text.clone())
    );
    let retry: u64 = good.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 300, "{retry}");
    // Logins spend the account's attempts: 5 wrong codes, then a right one is refused too.
    for _ in 0..5 {
        assert_eq!(login_with(&s.reg, "444444").status, 401);
    }
    assert_eq!(login_with(&s.reg, &s.reg.otp(&s.secret, 0)).status, 429);
    assert!(
        s.reg
            .http()
            .get("/-/package/demo/dist-tags")
            .json()
            .get("y")
            .is_none()
    );
    // once the window has passed, the right code works again
    s.reg.advance(301);
    assert_eq!(
        demo_tag(&s.reg, t, "z", Some(&s.reg.otp(&s.secret, 0))).status,
        200
    );
    let log = s.reg.admin(&["security-log", "alice"], None);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("throttled"), "{log}");
    assert!(log.contains("otp_failed"), "{log}");
}

/// A leaked token (without the password) cannot lock its owner out: its wrong codes spend its
/// own attempts, not the account's; automation tokens cannot even try; and the owner with a
/// recovery code always gets in.
#[test]
fn a_leaked_token_cannot_lock_its_owner_out() {
    // Behind a proxy, so that the attacker's address (X-Forwarded-For) is not the owner's.
    let s = setup_with(1, &[("TESSERA_TRUST_PROXY", "true")]);
    let leaked = &s.tokens[1];
    let profile_write = |token: &str, code: &str| {
        s.reg.http().with_token(token).send(
            "POST",
            "/-/npm/v1/user",
            &[
                ("content-type", "application/json"),
                ("npm-otp", code),
                ("x-forwarded-for", "203.0.113.66"),
            ],
            Some(serde_json::to_vec(&json!({"fullname": "Mallory"})).unwrap()),
        )
    };
    // The leaked token guesses until it is throttled, window after window, to the daily ceiling.
    let mut refused = 0;
    for _ in 0..12 {
        for _ in 0..6 {
            if profile_write(leaked, "000000").status == 429 {
                refused += 1;
            }
        }
        s.reg.advance(5 * 60 + 1);
    }
    assert!(refused > 0, "the leaked token was never throttled");
    for _ in 0..6 {
        profile_write(leaked, "000000");
    }
    assert_eq!(
        profile_write(leaked, &s.reg.otp(&s.secret, 0)).status,
        429,
        "the leaked token itself stays locked"
    );
    // The owner logs in with the password and a code, and mints a token with a code.
    s.reg.align_step();
    let r = login_with(&s.reg, &s.reg.otp(&s.secret, 0));
    assert_eq!(r.status, 201, "{}", r.text);
    let fresh = r.json()["token"].as_str().unwrap().to_owned();
    s.reg.align_step();
    let r = s.reg.http().with_token(&fresh).send(
        "POST",
        "/-/npm/v1/tokens",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &s.reg.otp(&s.secret, 0)),
        ],
        Some(serde_json::to_vec(&json!({"password": "alice-password"})).unwrap()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // An automation token is refused account changes outright, whatever the code, and spends
    // nothing trying.
    let r = s.reg.http().with_token(&fresh).send(
        "POST",
        "/-/npm/v1/tokens",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &s.reg.otp(&s.secret, 0)),
        ],
        Some(
            serde_json::to_vec(&json!({"password": "alice-password", "type": "automation"}))
                .unwrap(),
        ),
    );
    let automation = r.json()["token"].as_str().unwrap().to_owned();
    for code in ["000000".to_owned(), s.reg.otp(&s.secret, 0)] {
        let r = profile_write(&automation, &code);
        assert_eq!(r.status, 403, "{}", r.text);
    }
    // Someone with the password, elsewhere, spends the account's attempts: logins are
    // throttled…
    for _ in 0..5 {
        let r = s.reg.http().send(
            "PUT",
            "/-/user/org.couchdb.user:alice",
            &[
                ("content-type", "application/json"),
                ("npm-otp", "999999"),
                ("x-forwarded-for", "203.0.113.66"),
            ],
            Some(
                serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"}))
                    .unwrap(),
            ),
        );
        assert_eq!(r.status, 401);
    }
    assert_eq!(login_with(&s.reg, &s.reg.otp(&s.secret, 0)).status, 429);
    // …but the owner's recovery code still gets in, and turns 2FA off.
    let r = login_with(&s.reg, &s.codes[0]);
    assert_eq!(r.status, 201, "{}", r.text);
    let rescue = r.json()["token"].as_str().unwrap().to_owned();
    let r = s.reg.http().with_token(&rescue).send(
        "POST",
        "/-/npm/v1/user",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &s.codes[1]),
        ],
        Some(
            serde_json::to_vec(&json!({"tfa": {"password": "alice-password", "mode": "disable"}}))
                .unwrap(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn the_password_comes_before_the_second_factor() {
    let s = setup(0);
    let code = s.reg.otp(&s.secret, 0);
    let put = |pw: &str, otp: Option<&str>| {
        let mut h = vec![("content-type", "application/json")];
        if let Some(o) = otp {
            h.push(("npm-otp", o));
        }
        s.reg.http().send(
            "PUT",
            "/-/user/org.couchdb.user:alice",
            &h,
            Some(serde_json::to_vec(&json!({"name": "alice", "password": pw})).unwrap()),
        )
    };
    let wrong_with_code = put("wrong-password", Some(&code));
    let unknown = s.reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:nobody",
        &[("content-type", "application/json")],
        Some(serde_json::to_vec(&json!({"name": "nobody", "password": "wrong-password"})).unwrap()),
    );
    assert_eq!(wrong_with_code.status, 401);
    assert_eq!(wrong_with_code.header("www-authenticate"), None);
    assert_eq!(
        (wrong_with_code.status, wrong_with_code.text.clone()),
        (unknown.status, unknown.text.clone())
    );
    // the code was not consumed by the failed attempt
    assert_eq!(put("alice-password", Some(&code)).status, 201);
    // extra fields grant nothing
    let r = s.reg.http().put_json(
        "/-/user/org.couchdb.user:alice",
        &json!({"name": "alice", "password": "alice-password", "otp_verified": true, "tfa": false}),
    );
    assert_eq!(r.header("www-authenticate"), Some("otp"));
    // an OTP in the query string is ignored
    let r = s.reg.http().put_json(
        &format!("/-/user/org.couchdb.user:alice?otp={code}"),
        &json!({"name": "alice", "password": "alice-password"}),
    );
    assert_eq!(r.header("www-authenticate"), Some("otp"));
    // malformed codes
    for bad in ["12345", "1234567", "١٢٣٤٥٦", "+12345", &code[1..]] {
        assert_eq!(put("alice-password", Some(bad)).status, 401, "{bad:?}");
    }
}

#[test]
fn basic_credentials_need_the_second_factor_too() {
    let s = setup(0);
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(b"alice:alice-password")
    );
    let r = s
        .reg
        .http()
        .send("GET", "/-/whoami", &[("authorization", &basic)], None);
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("otp")));
    let code = s.reg.otp(&s.secret, 0);
    let r = s.reg.http().send(
        "GET",
        "/-/whoami",
        &[("authorization", &basic), ("npm-otp", &code)],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["username"], "alice");
}

#[test]
fn disabling_needs_the_password_and_a_second_factor() {
    let s = setup(0);
    let http = s.reg.http().with_token(&s.tokens[0]);
    for body in [
        json!({"tfa": false}),
        json!({"tfa": null}),
        json!({"tfa": []}),
        json!({"tfa": {"mode": "disable"}}),
        json!({"tfa": {"password": "alice-password", "mode": "disable"}}),
        json!({"tfa": {"password": "alice-password", "mode": "auth-only"}}),
    ] {
        let r = http.post_json("/-/npm/v1/user", &body);
        assert!(r.status >= 400, "{body}: {}", r.text);
    }
    let r = http.send(
        "POST",
        "/-/npm/v1/user",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &s.reg.otp(&s.secret, 0)),
        ],
        Some(
            serde_json::to_vec(&json!({"tfa": {"password": "wrong-password", "mode": "disable"}}))
                .unwrap(),
        ),
    );
    assert_eq!((r.status, r.header("www-authenticate")), (401, None));
    assert_eq!(
        http.get("/-/npm/v1/user").json()["tfa"],
        json!({"pending": false, "mode": "auth-and-writes"})
    );
    let r = http.send(
        "POST",
        "/-/npm/v1/user",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &s.reg.otp(&s.secret, 0)),
        ],
        Some(
            serde_json::to_vec(&json!({"tfa": {"password": "alice-password", "mode": "disable"}}))
                .unwrap(),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(http.get("/-/npm/v1/user").json()["tfa"], json!(false));
}

#[test]
fn no_secret_leaves_the_server_or_sits_in_the_database_in_clear() {
    let reg = Registry::start();
    let token = reg.signup("alice", "alice-password");
    let http = reg.http().with_token(&token);
    let r = http.post_json(
        "/-/npm/v1/user",
        &json!({"tfa": {"password": "alice-password", "mode": "auth-and-writes"}}),
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let uri = r.json()["tfa"].as_str().unwrap().to_owned();
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let code = reg.otp(&secret, 0);
    let r = http.post_json("/-/npm/v1/user", &json!({"tfa": [code]}));
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let codes: Vec<String> = r.json()["tfa"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    // never shown again
    let profile = http.get("/-/npm/v1/user");
    assert!(!profile.text.contains(&secret));
    assert_eq!(
        profile.json()["tfa"],
        json!({"pending": false, "mode": "auth-and-writes"})
    );
    reg.advance(30);
    let again = http.send(
        "POST",
        "/-/npm/v1/user",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &reg.otp(&secret, 0)),
        ],
        Some(
            serde_json::to_vec(
                &json!({"tfa": {"password": "alice-password", "mode": "auth-and-writes"}}),
            )
            .unwrap(),
        ),
    );
    assert!(!again.text.contains("secret="), "{}", again.text);
    // a few more secrets go through: a token, a recovery code at login
    let r = http.send(
        "PUT",
        "/-/user/org.couchdb.user:alice",
        &[("content-type", "application/json"), ("npm-otp", &codes[1])],
        Some(serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"})).unwrap()),
    );
    let token2 = r.json()["token"].as_str().unwrap().to_owned();
    // the database: no secret, no recovery code, no token, no password in clear
    let bytes = reg.database_bytes();
    assert!(bytes.len() > 1000);
    let raw = tessera_otp::decode_base32(&secret).unwrap();
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(secret.as_bytes()),
        "base32 secret in the database"
    );
    assert!(!contains(&raw), "raw secret in the database");
    assert!(
        !contains(data_encoding::HEXLOWER.encode(&raw).as_bytes()),
        "hex secret in the database"
    );
    for c in &codes {
        assert!(!contains(c.as_bytes()), "recovery code in the database");
    }
    for t in [&token, &token2] {
        assert!(!contains(t.as_bytes()), "token in the database");
    }
    assert!(!contains(b"alice-password"));
    // the key file is private
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(reg.data.join("secret.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // and the server log never saw any of it
    let log = reg.log_text();
    assert!(log.contains("GET"), "the log was captured");
    for needle in [
        secret.as_str(),
        token.as_str(),
        token2.as_str(),
        codes[0].as_str(),
        codes[1].as_str(),
        "alice-password",
        code.as_str(),
    ] {
        assert!(!log.contains(needle), "{needle} leaked into the log");
    }
}

#[test]
fn an_otp_on_a_request_that_needs_none_is_not_spent() {
    let s = setup(2);
    let code = s.reg.otp(&s.secret, 0);
    let r = s
        .reg
        .http()
        .with_token(&s.tokens[1])
        .send("GET", "/demo", &[("npm-otp", &code)], None);
    assert_eq!(r.status, 200);
    let r =
        s.reg
            .http()
            .with_token(&s.tokens[1])
            .send("GET", "/-/whoami", &[("npm-otp", &code)], None);
    assert_eq!(r.status, 200);
    assert_eq!(
        demo_tag(&s.reg, &s.tokens[2], "a", Some(&code)).status,
        200,
        "the reads did not consume it"
    );
}

#[test]
fn security_log_and_admin_reset() {
    let s = setup(1);
    let out = s.reg.admin(&["security-log", "alice"], None);
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    for kind in [
        "tfa_enrolment_started",
        "tfa_enabled",
        "token_created",
        "login",
    ] {
        assert!(log.contains(kind), "{kind} missing from:\n{log}");
    }
    assert!(log.contains("127.0.0.1"));
    let cookie = web_sign_in(&s.reg, "alice", "alice-password", &s.secret);
    let account = |cookie: &str| {
        s.reg
            .http()
            .send("GET", "/-/web/account", &[("cookie", cookie)], None)
            .status
    };
    assert_eq!(account(&cookie), 200, "signed in before the reset");
    // the lost-everything path: an administrator resets 2FA and revokes every token
    let out = s.reg.admin(&["reset-2fa", "alice"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in &s.tokens {
        // the admin CLI is another process: the server learns of it within its 200 ms poll
        poll("the reset to reach the server", || {
            (s.reg.http().with_token(t).get("/-/whoami").status == 401).then_some(())
        });
    }
    poll("the reset to end the website session", || {
        (account(&cookie) != 200).then_some(())
    });
    let r = s
        .reg
        .http()
        .send("GET", "/-/web/account", &[("cookie", &cookie)], None);
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(
        r.header("location").unwrap_or("").contains("/-/web/signin"),
        "{:?}",
        r.headers
    );
    let r = s.reg.http().put_json(
        "/-/user/org.couchdb.user:alice",
        &json!({"name": "alice", "password": "alice-password"}),
    );
    assert_eq!(r.status, 201, "password-only login works again: {}", r.text);
    let t = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        s.reg.http().with_token(&t).get("/-/npm/v1/user").json()["tfa"],
        json!(false)
    );
    let log =
        String::from_utf8_lossy(&s.reg.admin(&["security-log", "alice"], None).stdout).into_owned();
    assert!(log.contains("admin_2fa_reset"), "{log}");
    let _: Value = json!(null);
}

#[test]
fn recovery_codes_work_for_writes_once_and_only_the_address_limits_them() {
    let s = setup(2);
    let rc = s.codes[2].clone();
    // a recovery code, grouped and upper-cased as someone might type it, satisfies a write…
    let typed = format!("{}-{}", rc[..32].to_uppercase(), &rc[32..]);
    assert_eq!(
        demo_tag(&s.reg, &s.tokens[1], "rc1", Some(&typed)).status,
        200
    );
    // …the same credential may repeat it within its command…
    assert_eq!(demo_tag(&s.reg, &s.tokens[1], "rc2", Some(&rc)).status, 200);
    // …nobody else may
    assert_eq!(demo_tag(&s.reg, &s.tokens[2], "rc3", Some(&rc)).status, 401);
    // Wrong recovery codes lock no credential and no account (nobody guesses 256 bits): only
    // the address's limit, 10 in 5 minutes, holds them back.
    for i in 0..5 {
        let wrong = format!("{:064x}", i);
        assert_eq!(
            demo_tag(&s.reg, &s.tokens[2], "rc4", Some(&wrong)).status,
            401
        );
    }
    assert_eq!(
        demo_tag(&s.reg, &s.tokens[2], "rc5", Some(&s.reg.otp(&s.secret, 0))).status,
        200
    );
    for i in 5..10 {
        let wrong = format!("{:064x}", i);
        assert_eq!(
            demo_tag(&s.reg, &s.tokens[2], "rc6", Some(&wrong)).status,
            401
        );
    }
    assert_eq!(
        demo_tag(&s.reg, &s.tokens[2], "rc7", Some(&s.codes[3])).status,
        429
    );
}

#[test]
fn parallel_guesses_get_no_more_checks_than_the_limits() {
    let s = setup(1);
    let reg = Arc::new(s.reg);
    let token = Arc::new(s.tokens[1].clone());
    let mut threads = Vec::new();
    for i in 0..60 {
        let (reg, token) = (reg.clone(), token.clone());
        threads.push(std::thread::spawn(move || {
            demo_tag(&reg, &token, "guess", Some(&format!("{:06}", 100_000 + i))).status
        }));
    }
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 5,
        "only 5 guesses per 5 minutes may be checked, {checked} were: {statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );

    // the password throttle too
    let mut threads = Vec::new();
    for i in 0..40 {
        let reg = reg.clone();
        threads.push(std::thread::spawn(move || {
            reg.http()
                .put_json(
                    "/-/user/org.couchdb.user:alice",
                    &json!({"name": "alice", "password": format!("guess-{i}")}),
                )
                .status
        }));
    }
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(
        checked <= 10,
        "only 10 passwords per 5 minutes may be checked, {checked} were: {statuses:?}"
    );
}

/// Every 2FA change lands in the security log with the client's address and user agent.
#[test]
fn the_security_log_records_mode_changes_and_disabling_with_the_client() {
    let reg = Registry::start();
    let t = reg.signup("alice", "alice-password");
    let (secret, _) = reg.enable_2fa(&t, "alice-password", "auth-and-writes");
    let tfa = |mode: &str, code: &str| {
        reg.http().with_token(&t).send(
            "POST",
            "/-/npm/v1/user",
            &[
                ("content-type", "application/json"),
                ("npm-otp", code),
                (
                    "user-agent",
                    "npm/11.6.2 node/v20.20.2 linux x64 workspaces/false",
                ),
            ],
            Some(
                serde_json::to_vec(&json!({"tfa": {"password": "alice-password", "mode": mode}}))
                    .unwrap(),
            ),
        )
    };
    reg.advance(30);
    let r = tfa("auth-only", &reg.otp(&secret, 0));
    assert_eq!(r.status, 200, "{}", r.text);
    reg.advance(30);
    let r = tfa("disable", &reg.otp(&secret, 0));
    assert_eq!(r.status, 200, "{}", r.text);
    let log =
        String::from_utf8_lossy(&reg.admin(&["security-log", "alice"], None).stdout).into_owned();
    for kind in ["tfa_mode_changed", "tfa_disabled"] {
        let line = log
            .lines()
            .find(|l| l.contains(kind))
            .unwrap_or_else(|| panic!("{kind} missing from:\n{log}"));
        assert!(line.contains("127.0.0.1"), "{line}");
        assert!(line.contains("npm/11.6.2 node/v20.20.2"), "{line}");
    }
    assert!(!log.contains(&secret), "no secret in the log");
}

/// Past the 5-minute window, the hourly (20) and daily (50) limits per account still hold.
#[test]
fn hourly_and_daily_limits_hold_beyond_the_five_minute_window() {
    // the login token has to outlive the day this test spans (sessions last 12 hours)
    let s = setup_with(0, &[("TESSERA_TOKENS__LOGIN_EXPIRY", "never")]);
    let t = &s.tokens[0];
    let wrong5 = || {
        for _ in 0..5 {
            assert_eq!(demo_tag(&s.reg, t, "guess", Some("000000")).status, 401);
        }
        s.reg.advance(5 * 60 + 1);
    };
    let right = |tag: &str| {
        s.reg.align_step();
        demo_tag(&s.reg, t, tag, Some(&s.reg.otp(&s.secret, 0)))
    };
    let retry = |r: &Resp| -> u64 { r.header("retry-after").unwrap().parse().unwrap() };
    // 20 failures in 20 minutes, never more than 5 in any 5 minutes: the hour is used up
    for _ in 0..4 {
        wrong5();
    }
    let r = right("a");
    assert_eq!(r.status, 429, "{}", r.text);
    assert!((300..=3600).contains(&retry(&r)), "{}", retry(&r));
    s.reg.advance(60 * 60);
    assert_eq!(right("b").status, 200, "an hour later it is accepted");
    // 30 more over the next two hours: 50 in a day
    for _ in 0..4 {
        wrong5();
    }
    s.reg.advance(60 * 60);
    for _ in 0..2 {
        wrong5();
    }
    let r = right("c");
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(retry(&r) > 3600, "{}", retry(&r));
    s.reg.advance(24 * 60 * 60);
    assert_eq!(right("d").status, 200, "a day later it is accepted");
}

/// Wrong passwords from elsewhere cannot lock the owner out of an address they signed in from,
/// while a new address stays behind the account's limit.
#[test]
fn wrong_passwords_from_elsewhere_do_not_lock_a_known_address() {
    let reg = Registry::start_with(&[("TESSERA_TRUST_PROXY", "true")]);
    // signing up is the first successful sign-in, from 127.0.0.1
    reg.signup("alice", "alice-password");
    let login_from = |xff: Option<&str>, password: &str| {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(x) = xff {
            headers.push(("x-forwarded-for", x));
        }
        reg.http().send(
            "PUT",
            "/-/user/org.couchdb.user:alice",
            &headers,
            Some(serde_json::to_vec(&json!({"name": "alice", "password": password})).unwrap()),
        )
    };
    for i in 0..10 {
        let r = login_from(Some("203.0.113.66"), &format!("guess-{i}"));
        assert_eq!(r.status, 401, "{}", r.text);
    }
    assert_eq!(
        login_from(Some("203.0.113.66"), "alice-password").status,
        429,
        "the guesser's address is held back"
    );
    assert_eq!(
        login_from(Some("198.51.100.7"), "alice-password").status,
        429,
        "a new address waits for the account's limit"
    );
    let r = login_from(None, "alice-password");
    assert_eq!(
        r.status, 201,
        "the owner's familiar address still gets in: {}",
        r.text
    );
}

/// Signs in on the website over plain HTTP (password, then the current one-time password) and
/// returns the `Cookie` header value of the signed-in session.
fn web_sign_in(reg: &Registry, name: &str, password: &str, secret: &str) -> String {
    let origin = reg.url().trim_end_matches('/').to_owned();
    let mut cookie = String::new();
    let step = |method: &str, path: &str, body: Option<String>, cookie: &mut String| {
        let mut h = vec![("origin", origin.as_str())];
        if !cookie.is_empty() {
            h.push(("cookie", cookie.as_str()));
        }
        if body.is_some() {
            h.push(("content-type", "application/x-www-form-urlencoded"));
        }
        let r = reg
            .http()
            .send(method, path, &h, body.map(String::into_bytes));
        // the form token until the password is accepted, then the session
        for (k, v) in &r.headers {
            if k.eq_ignore_ascii_case("set-cookie")
                && (v.starts_with("tessera_session=") || v.starts_with("tessera_form="))
            {
                *cookie = v.split(';').next().unwrap().to_owned();
            }
        }
        r
    };
    let csrf_of = |text: &str| {
        text.split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .unwrap_or_else(|| panic!("no csrf field in:\n{text}"))
            .to_owned()
    };
    let form = step("GET", "/-/web/signin", None, &mut cookie);
    let csrf = csrf_of(&form.text);
    let r = step(
        "POST",
        "/-/web/signin",
        Some(format!("csrf={csrf}&name={name}&password={password}")),
        &mut cookie,
    );
    assert!(
        r.status == 303 || r.status == 302,
        "{} {}",
        r.status,
        r.text
    );
    let form = step("GET", "/-/web/signin/otp", None, &mut cookie);
    let csrf = csrf_of(&form.text);
    let otp = reg.otp(secret, 0);
    let r = step(
        "POST",
        "/-/web/signin/otp",
        Some(format!("csrf={csrf}&otp={otp}")),
        &mut cookie,
    );
    assert!(
        r.status == 303 || r.status == 302,
        "{} {}",
        r.status,
        r.text
    );
    assert!(
        r.header("location")
            .unwrap_or("")
            .contains("/-/web/account"),
        "{:?}",
        r.headers
    );
    cookie
}

/// `npm profile get` shows when the account last changed, 2FA changes included.
#[test]
fn the_profile_shows_when_2fa_last_changed() {
    let reg = Registry::start();
    let t = reg.signup("alice", "alice-password");
    let before = reg.http().with_token(&t).get("/-/npm/v1/user").json();
    assert_eq!(before["updated"], before["created"]);
    reg.advance(120);
    reg.enable_2fa(&t, "alice-password", "auth-and-writes");
    let after = reg.http().with_token(&t).get("/-/npm/v1/user").json();
    assert_eq!(before["created"], after["created"]);
    assert_ne!(after["updated"], after["created"], "{after}");
}
