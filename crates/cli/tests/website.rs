//! The website in a real headless Chromium: sign-in with 2FA, 2FA settings shared with the
//! CLI, recovery codes, tokens, npm's browser login and web OTP, CSRF, sessions.

mod common;

use common::browser::Browser;
use common::*;
use serde_json::{Value, json};

fn sign_in(b: &Browser, reg: &Registry, name: &str, password: &str) {
    b.goto(&format!("{}-/web/signin", reg.url()));
    b.type_into("#name", name);
    b.type_into("#password", password);
    b.submit("#signin");
}

fn second_step(b: &Browser, code: &str) {
    b.wait_for_url("/-/web/signin/otp");
    b.type_into("#otp", code);
    b.click("#verify");
}

fn session_cookie(b: &Browser) -> Option<String> {
    b.cookies()
        .into_iter()
        .find(|(n, _)| n == "tessera_session")
        .map(|(_, v)| v)
}

/// An HTTP client that presents a browser's session cookie.
fn with_cookie<'a>(reg: &'a Registry, cookie: &str) -> impl Fn(&str) -> Resp + 'a {
    let c = format!("tessera_session={cookie}");
    move |path: &str| reg.http().send("GET", path, &[("cookie", &c)], None)
}

#[test]
fn sign_in_with_an_otp() {
    let reg = Registry::start();
    let t = reg.signup("alice", "alice-password");
    let (secret, codes) = reg.enable_2fa(&t, "alice-password", "auth-and-writes");
    reg.advance(30);
    let b = Browser::start();
    // a wrong password and an unknown user read the same
    sign_in(&b, &reg, "alice", "wrong-password");
    let wrong = b.text("#error");
    sign_in(&b, &reg, "nobody", "wrong-password");
    assert_eq!(wrong, b.text("#error"));
    assert_eq!(wrong, "Incorrect user name or password.");
    b.screenshot("signin-error");
    assert!(
        session_cookie(&b).is_none(),
        "showing the form and wrong passwords store no session"
    );
    sign_in(&b, &reg, "alice", "alice-password");
    // the password alone is not enough
    b.wait_for_url("/-/web/signin/otp");
    b.screenshot("signin-otp");
    let before = session_cookie(&b).expect("a partial session after the password");
    assert!(
        with_cookie(&reg, &session_cookie(&b).unwrap())("/-/web/account")
            .header("location")
            .unwrap()
            .contains("signin")
    );
    b.type_into("#otp", "000000");
    b.click("#verify");
    assert!(b.text("#error").contains("not valid"));
    second_step(&b, &reg.otp(&secret, 0));
    b.wait_for_url("/-/web/account");
    assert_eq!(b.text("#tfa-mode"), "auth-and-writes");
    b.screenshot("account");
    // a new session id at sign-in; the old one is dead
    let after = session_cookie(&b).unwrap();
    assert_ne!(before, after);
    let old = with_cookie(&reg, &before)("/-/web/account");
    assert_eq!(old.status, 303);
    assert_eq!(with_cookie(&reg, &after)("/-/web/account").status, 200);
    let c = b
        .cookie_objects()
        .into_iter()
        .find(|c| c["name"] == "tessera_session")
        .unwrap();
    assert_eq!(c["httpOnly"], true);
    assert_eq!(c["sameSite"], "Lax");
    // pages carry the security headers
    let page = with_cookie(&reg, &after)("/-/web/account");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(
        page.header("content-security-policy")
            .unwrap()
            .contains("default-src 'none'")
    );
    // sign out ends it server-side
    b.submit("header form button");
    b.wait_for_url("/-/web/");
    assert_eq!(with_cookie(&reg, &after)("/-/web/account").status, 303);
    // a recovery code works at the second step too, once
    sign_in(&b, &reg, "alice", "alice-password");
    second_step(&b, &codes[0]);
    b.wait_for_url("/-/web/account");
    b.submit("header form button");
    sign_in(&b, &reg, "alice", "alice-password");
    second_step(&b, &codes[0]);
    assert!(b.text("#error").contains("not valid"));
    let log =
        String::from_utf8_lossy(&reg.admin(&["security-log", "alice"], None).stdout).into_owned();
    assert!(
        log.contains("web_signin\t127.0.0.1\tpassword and one-time password"),
        "{log}"
    );
    assert!(log.contains("recovery_code_used"), "{log}");
}

#[test]
fn two_factor_set_on_the_web_is_what_npm_sees() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let b = Browser::start();
    sign_in(&b, &reg, "alice", "alice-password");
    b.wait_for_url("/-/web/account");
    assert_eq!(b.text("#tfa-mode"), "disabled");
    b.click("#manage-2fa");
    b.type_into("#password", "alice-password");
    b.click("#enable-2fa");
    b.wait_for_url("/-/web/account/2fa/setup");
    assert!(b.source().contains("<svg"), "the QR code is inline SVG");
    b.screenshot("2fa-setup");
    let secret = b.text("#secret");
    assert_eq!(secret.len(), 32);
    assert!(!b.current_url().contains(&secret));
    b.type_into("#code", &reg.otp(&secret, 0));
    b.click("#confirm-2fa");
    b.wait_for_text("Two-factor authentication is on");
    b.screenshot("recovery-codes");
    let codes: Vec<String> = b
        .text("#codes")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 64));
    let download = b.find("#download");
    let _ = download;
    assert!(
        b.source()
            .contains("download=\"tessera-recovery-codes.txt\"")
    );
    // the CLI sees it
    let get = alice.run(&["profile", "get"]);
    assert!(
        get.ok().contains("two-factor auth: auth-and-writes"),
        "{}",
        get.all()
    );
    assert!(alice.publish("demo", "1.0.0", &[]).fails().contains("EOTP"));
    // and a recovery code from the page works for npm
    let r = reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:alice",
        &[("content-type", "application/json"), ("npm-otp", &codes[0])],
        Some(serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"})).unwrap()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

#[test]
fn two_factor_set_with_npm_shows_on_the_web_and_codes_can_be_regenerated() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let mut p = alice.pty(alice.root(), &["profile", "enable-2fa", "auth-only"]);
    p.expect("npm password:").send("alice-password");
    p.expect("Or enter code:");
    let secret = p.expect_regex("[A-Z2-7]{32}");
    p.expect("And an OTP code from your authenticator:")
        .send(&reg.otp(&secret, 0));
    p.expect("2FA successfully enabled");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    let old_codes: Vec<String> = out
        .split_whitespace()
        .filter(|w| w.len() == 64)
        .map(str::to_owned)
        .collect();
    assert_eq!(old_codes.len(), 10);
    reg.advance(30);
    let b = Browser::start();
    sign_in(&b, &reg, "alice", "alice-password");
    second_step(&b, &reg.otp(&secret, 0));
    b.wait_for_url("/-/web/account");
    assert_eq!(b.text("#tfa-mode"), "auth-only");
    // regenerate the recovery codes (password and OTP): the old set dies
    b.click("#manage-2fa");
    b.wait_for_url("/-/web/account/2fa");
    b.screenshot("2fa-settings");
    b.type_into("#rc-password", "alice-password");
    b.type_into("#rc-otp", &reg.otp(&secret, 0));
    b.click("#regenerate");
    b.wait_for_text("New recovery codes");
    let new_codes: Vec<String> = b
        .text("#codes")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(new_codes.len(), 10);
    let login = |code: &str| {
        reg.http()
            .send(
                "PUT",
                "/-/user/org.couchdb.user:alice",
                &[("content-type", "application/json"), ("npm-otp", code)],
                Some(
                    serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"}))
                        .unwrap(),
                ),
            )
            .status
    };
    assert_eq!(login(&old_codes[0]), 401, "an old code fails");
    assert_eq!(login(&new_codes[0]), 201, "a new one works");
    // change the mode on the web; npm sees it
    reg.advance(30);
    b.goto(&format!("{}-/web/account/2fa", reg.url()));
    b.click("#mode option[value=auth-and-writes]");
    b.type_into("#mode-otp", &reg.otp(&secret, 0));
    b.submit("#change-mode");
    b.wait_for_url("/-/web/account/2fa");
    assert!(
        alice
            .run(&["profile", "get"])
            .ok()
            .contains("two-factor auth: auth-and-writes")
    );
    // turn it off on the web (password and OTP)
    reg.advance(30);
    b.type_into("#off-password", "alice-password");
    b.type_into("#off-otp", &reg.otp(&secret, 0));
    b.submit("#disable-2fa");
    b.wait_for_url("/-/web/account/2fa");
    assert!(
        alice
            .run(&["profile", "get"])
            .ok()
            .contains("two-factor auth: disabled")
    );
}

#[test]
fn tokens_are_created_and_revoked_on_the_web() {
    let reg = Registry::start();
    let t = reg.signup("alice", "alice-password");
    let (secret, _) = reg.enable_2fa(&t, "alice-password", "auth-and-writes");
    reg.advance(30);
    let b = Browser::start();
    sign_in(&b, &reg, "alice", "alice-password");
    second_step(&b, &reg.otp(&secret, 0));
    b.wait_for_url("/-/web/account");
    b.goto(&format!("{}-/web/tokens", reg.url()));
    b.screenshot("tokens");
    b.type_into("#tname", "ci");
    b.type_into("#packages", "demo");
    b.type_into("#expires", "7");
    b.type_into("#tpassword", "alice-password");
    b.type_into("#totp", &reg.otp(&secret, 0));
    b.click("#create-token");
    b.wait_for_text("Token created");
    b.screenshot("token-created");
    let token = b.text("#new-token");
    assert!(token.starts_with("tsr_"));
    assert_eq!(
        reg.http().with_token(&token).get("/-/whoami").json()["username"],
        "alice"
    );
    let listed = reg.http().with_token(&t).get("/-/npm/v1/tokens").json();
    let ci = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["token_name"] == "ci")
        .unwrap()
        .clone();
    assert_eq!(ci["packages"], json!(["demo"]));
    // revoke it from the list
    b.goto(&format!("{}-/web/tokens", reg.url()));
    let key = ci["key"].as_str().unwrap();
    b.type_into(
        &format!("form:has(button[data-key=\"{key}\"]) input[name=otp]"),
        &reg.otp(&secret, 0),
    );
    b.submit(&format!("button[data-key=\"{key}\"]"));
    b.wait_for_url("/-/web/tokens");
    assert_eq!(reg.http().with_token(&token).get("/-/whoami").status, 401);
    // without the OTP nothing is created
    b.type_into("#tname", "nope");
    b.type_into("#tpassword", "alice-password");
    b.type_into("#totp", "000000");
    b.click("#create-token");
    b.wait_for_text("one-time pass");
    assert_eq!(
        reg.http().with_token(&t).get("/-/npm/v1/tokens").json()["total"],
        0,
        "none but the login session, which is not listed"
    );
    // every kind takes a name, a description, an expiry and address ranges…
    let tokens = format!("{}-/web/tokens", reg.url());
    reg.advance(30);
    b.goto(&tokens);
    b.type_into("#tname", "release");
    b.type_into("#tdescription", "the release job");
    b.click("#kind option[value=automation]");
    b.type_into("#expires", "3");
    b.type_into("#cidr", "127.0.0.1/32");
    b.type_into("#tpassword", "alice-password");
    b.type_into("#totp", &reg.otp(&secret, 0));
    b.submit("#create-token");
    b.wait_for_text("Token created");
    // …and granular tokens every grant the API knows
    reg.advance(30);
    b.goto(&tokens);
    b.type_into("#tname", "org-reader");
    b.type_into("#orgs", "acme");
    b.click("#orgs_permission option[value=read-only]");
    b.click("#permission option[value=no-access]");
    b.click("#packages_all");
    b.type_into("#tpassword", "alice-password");
    b.type_into("#totp", &reg.otp(&secret, 0));
    b.submit("#create-token");
    b.wait_for_text("Token created");
    let listed = reg.http().with_token(&t).get("/-/npm/v1/tokens").json();
    let find = |name: &str| {
        listed["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["token_name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {listed}"))
            .clone()
    };
    let release = find("release");
    assert_eq!(release["type"], "automation");
    assert_eq!(release["description"], "the release job");
    assert_eq!(release["cidr_whitelist"], json!(["127.0.0.1/32"]));
    let expires = release["expires"].as_str().unwrap().to_owned();
    let created = release["created"].as_str().unwrap().to_owned();
    assert!(
        expires > created && expires[..10] != created[..10],
        "{expires} vs {created}"
    );
    let org = find("org-reader");
    assert_eq!(org["type"], "granular");
    assert_eq!(org["orgs"], json!(["acme"]));
    assert_eq!(org["orgs_permission"], "read-only");
    assert_eq!(org["packages_all"], true);
    assert_eq!(org["packages_and_scopes_permission"], "no-access");
    assert_eq!(org["readonly"], true);
}

#[test]
fn npm_login_in_the_browser_with_an_otp() {
    let reg = Registry::start();
    let t = reg.signup("alice", "alice-password");
    let (secret, _) = reg.enable_2fa(&t, "alice-password", "auth-and-writes");
    reg.advance(30);
    let npm = reg.npm();
    let mut p = npm.pty(npm.root(), &["login"]);
    p.expect("Login at:");
    let url = p.expect_regex(r"http://127\.0\.0\.1:\d+/-/web/cli-login/[A-Za-z0-9]+");
    let b = Browser::start();
    b.goto(&url);
    // not signed in: sign in first (with the OTP), then back to the approval
    b.wait_for_url("/-/web/signin");
    b.type_into("#name", "alice");
    b.type_into("#password", "alice-password");
    b.click("#signin");
    second_step(&b, &reg.otp(&secret, 0));
    b.wait_for_url("/-/web/cli-login/");
    b.screenshot("npm-login-approve");
    // approving mints a credential: the second factor again (the same code, same session)
    b.type_into("#otp", &reg.otp(&secret, 0));
    b.click("#approve");
    b.wait_for_text("npm is now logged in as alice");
    b.screenshot("npm-login-done");
    p.expect("Logged in on");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "alice");
    // the link is single-use
    b.goto(&url);
    b.wait_for_text("This request has expired");
}

/// npm 11's plain `npm adduser` (the README's first step): the account is created in the
/// browser, then npm is logged in to it.
#[test]
fn npm_adduser_creates_the_account_in_the_browser() {
    let reg = Registry::start();
    let npm = reg.npm();
    let mut p = npm.pty(npm.root(), &["adduser"]);
    p.expect("Create your account at:");
    let url = p.expect_regex(r"http://127\.0\.0\.1:\d+/-/web/cli-login/[A-Za-z0-9]+");
    let b = Browser::start();
    b.goto(&url);
    b.wait_for_url("/-/web/signup");
    b.screenshot("signup");
    b.type_into("#name", "newbie");
    b.type_into("#email", "newbie@example.com");
    b.type_into("#password", "newbie-password");
    b.submit("#signup");
    b.wait_for_url("/-/web/cli-login/");
    b.click("#approve");
    b.wait_for_text("npm is now logged in as newbie");
    p.expect("Logged in on");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "newbie");
    // and the account is a real one: its password works in the terminal too
    let legacy = reg.npm();
    let mut p = legacy.pty(legacy.root(), &["login", "--auth-type=legacy"]);
    p.expect("Username:").send("newbie");
    p.expect("Password:").send("newbie-password");
    p.expect("Logged in on");
    assert_eq!(p.finish().1, 0);
}

#[test]
fn npm_login_in_the_browser_can_be_refused_and_expires() {
    let reg = Registry::start();
    reg.signup("alice", "alice-password");
    let r = reg.http().post_json("/-/v1/login", &json!({}));
    let login = r.json()["loginUrl"].as_str().unwrap().to_owned();
    let done = r.json()["doneUrl"]
        .as_str()
        .unwrap()
        .replace(&format!("http://{}", reg.addr), "");
    let b = Browser::start();
    sign_in(&b, &reg, "alice", "alice-password");
    b.wait_for_url("/-/web/account");
    b.goto(&login);
    b.click("#deny");
    b.wait_for_text("Cancelled");
    assert_eq!(
        reg.http().get(&done).status,
        403,
        "npm falls back to the password prompt"
    );
    // an abandoned one expires after 5 minutes
    let r = reg.http().post_json("/-/v1/login", &json!({}));
    let login = r.json()["loginUrl"].as_str().unwrap().to_owned();
    let done = r.json()["doneUrl"]
        .as_str()
        .unwrap()
        .replace(&format!("http://{}", reg.addr), "");
    assert_eq!(reg.http().get(&done).status, 202);
    reg.advance(6 * 60);
    assert_eq!(reg.http().get(&done).status, 404);
    b.goto(&login);
    b.wait_for_text("This request has expired");
}

#[test]
fn web_otp_confirms_npm_commands_in_the_browser() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-and-writes");
    reg.advance(30);
    let b = Browser::start();
    sign_in(&b, &reg, "alice", "alice-password");
    second_step(&b, &reg.otp(&secret, 0));
    b.wait_for_url("/-/web/account");
    b.goto(&format!("{}-/web/account/2fa", reg.url()));
    assert_eq!(b.text("#web-otp"), "off");
    b.type_into("#wo-otp", &reg.otp(&secret, 0));
    b.submit("#toggle-web-otp");
    b.wait_for_url("/-/web/account/2fa");
    assert_eq!(b.text("#web-otp"), "on");
    // npm publish now sends the user to the browser instead of prompting
    reg.advance(30);
    let dir = alice.package("demo", "1.0.0", Value::Null);
    let mut p = alice.pty(&dir, &["publish"]);
    p.expect("Authenticate your account at:");
    let url = p.expect_regex(r"http://127\.0\.0\.1:\d+/-/web/confirm/[A-Za-z0-9]+");
    b.goto(&url);
    b.find("#otp");
    b.screenshot("web-otp-confirm");
    b.type_into("#otp", &reg.otp(&secret, 0));
    b.click("#approve");
    b.wait_for_text("Confirmed");
    p.expect("+ demo@1.0.0");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    // the code npm got is not reusable by another credential
    assert!(
        reg.http().get("/demo").json()["versions"]
            .get("1.0.0")
            .is_some()
    );
}

#[test]
fn an_invitation_link_creates_the_account_in_the_browser() {
    let reg = Registry::start_with(&[("TESSERA_SIGNUP", "invitation")]);
    let out = reg.admin(&["invite", "mia", "mia@example.com"], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    let link = text
        .split_whitespace()
        .find(|w| w.contains("/-/web/invitation/"))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_owned();
    // (the admin command does not know the test's port: it names `listen` from its config)
    let link = format!(
        "{}{}",
        reg.url().trim_end_matches('/'),
        &link[link.find("/-/web/").unwrap()..]
    );
    let b = Browser::start();
    b.goto(&link);
    b.find("#name");
    assert!(
        b.source().contains("value=\"mia\" readonly"),
        "the invited name, fixed: {}",
        b.source()
    );
    b.type_into("#password", "mia-password");
    b.screenshot("invitation");
    b.submit("#signup");
    b.wait_for_url("/-/web/account");
    assert!(b.source().contains("mia"));
    // the link is spent
    b.goto(&link);
    b.wait_for_text("not valid");
    // and npm logs in with the chosen password
    let npm = reg.npm();
    let mut p = npm.pty(npm.root(), &["login", "--auth-type=legacy"]);
    p.expect("Username:").send("mia");
    p.expect("Password:").send("mia-password");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "mia");
}

#[test]
fn forms_without_the_csrf_token_or_from_another_origin_are_refused() {
    let reg = Registry::start();
    reg.signup("alice", "alice-password");
    let b = Browser::start();
    sign_in(&b, &reg, "alice", "alice-password");
    b.wait_for_url("/-/web/account");
    let cookie = format!("tessera_session={}", session_cookie(&b).unwrap());
    let page = reg
        .http()
        .send("GET", "/-/web/account", &[("cookie", &cookie)], None);
    let csrf = page
        .text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let post = |body: &str, origin: Option<&str>| {
        let mut h = vec![
            ("cookie", cookie.as_str()),
            ("content-type", "application/x-www-form-urlencoded"),
        ];
        if let Some(o) = origin {
            h.push(("origin", o));
        }
        reg.http().send(
            "POST",
            "/-/web/account/profile",
            &h,
            Some(body.as_bytes().to_vec()),
        )
    };
    let own = reg.url().trim_end_matches('/').to_owned();
    assert_eq!(
        post("email=evil%40example.com", Some(&own)).status,
        403,
        "no token"
    );
    assert_eq!(
        post("csrf=wrong&email=evil%40example.com", Some(&own)).status,
        403,
        "wrong token"
    );
    assert_eq!(
        post(
            &format!("csrf={csrf}&email=evil%40example.com"),
            Some("https://evil.example")
        )
        .status,
        403,
        "another origin"
    );
    let r = post(&format!("csrf={csrf}&email=evil%40example.com"), None);
    assert_eq!(r.status, 403, "neither Origin nor Referer");
    assert!(
        r.text.contains("did not say which site sent it"),
        "the refusal names the missing origin: {}",
        r.text
    );
    // an unknown page of the site is the site's HTML 404, not the npm API's JSON
    let r = reg.http().get("/-/web/no-such-page");
    assert_eq!(r.status, 404);
    assert!(
        r.text.contains("<html") || r.text.contains("<!DOCTYPE"),
        "{}",
        r.text
    );
    assert_eq!(
        reg.http()
            .with_token(&reg.signup("bob", "bob-password"))
            .get("/-/user/org.couchdb.user:alice")
            .json()["email"],
        "alice@example.com"
    );
    // a NUL in a field is refused before anything is stored
    assert_eq!(
        post(&format!("csrf={csrf}&fullname=a%00b"), Some(&own)).status,
        400
    );
    let ok = post(&format!("csrf={csrf}&email=new%40example.com"), Some(&own));
    assert_eq!(ok.status, 303, "{}", ok.text);
    // state-changing actions never answer GET
    assert_eq!(
        reg.http()
            .send(
                "GET",
                "/-/web/account/2fa/disable",
                &[("cookie", &cookie)],
                None
            )
            .status,
        405
    );
}

#[test]
fn package_pages_and_privacy() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let dir = alice.package("demo", "1.0.0", json!({"description": "a demo package"}));
    std::fs::write(
        dir.join("README.md"),
        "# Demo\n\n<script>alert(1)</script>\n\n[click](javascript:alert(2))\n\nUse **it**.\n",
    )
    .unwrap();
    alice.run_in(&dir, &["publish"]).ok();
    alice.publish("@alice/secret", "1.0.0", &[]).ok();
    let b = Browser::start();
    b.goto(&format!("{}-/web/", reg.url()));
    b.wait_for_text("demo");
    b.screenshot("packages");
    assert!(
        !b.source().contains("@alice/secret"),
        "private packages are hidden"
    );
    b.goto(&format!("{}-/web/package/demo", reg.url()));
    b.wait_for_text("npm install demo");
    b.screenshot("package");
    let html = b.source();
    assert!(html.contains("<strong>it</strong>"));
    assert!(
        !html.contains("<script>alert(1)"),
        "raw HTML is shown as text"
    );
    assert!(!html.contains("javascript:"), "script links are dropped");
    assert_eq!(b.text("#mfa"), "none");
    // A private package is a 404 to others, worded as for a missing one.
    b.goto(&format!("{}-/web/package/@alice/secret", reg.url()));
    b.wait_for_text("or it is private");
    let private = b.source();
    b.goto(&format!("{}-/web/package/@alice/nothing", reg.url()));
    b.wait_for_text("or it is private");
    assert_eq!(
        private.replace("secret", "nothing"),
        b.source(),
        "a private package and a missing one look the same"
    );
    sign_in(&b, &reg, "alice", "alice-password");
    b.wait_for_url("/-/web/account");
    b.goto(&format!("{}-/web/package/@alice/secret", reg.url()));
    b.wait_for_text("npm install @alice/secret");
    b.goto(&format!("{}-/web/account/security", reg.url()));
    b.wait_for_text("web_signin");
    b.screenshot("security-log");
}

#[test]
fn sessions_time_out_and_security_settings_ask_again() {
    let reg = Registry::start();
    reg.signup("alice", "alice-password");
    let b = Browser::start();
    sign_in(&b, &reg, "alice", "alice-password");
    b.wait_for_url("/-/web/account");
    // active but signed in long ago: 2FA settings need the password again
    for _ in 0..2 {
        reg.advance(20 * 60);
        b.goto(&format!("{}-/web/account", reg.url()));
        b.wait_for_text("Account: alice");
    }
    b.goto(&format!("{}-/web/account/2fa", reg.url()));
    b.wait_for_url("/-/web/reauth");
    b.screenshot("reauth");
    b.type_into("#secret", "wrong-password");
    b.click("#reauth");
    b.wait_for_text("did not match");
    b.type_into("#secret", "alice-password");
    b.click("#reauth");
    b.wait_for_url("/-/web/account/2fa");
    b.wait_for_text("Turn on two-factor authentication");
    // idle for longer than the idle timeout: signed out
    reg.advance(31 * 60);
    b.goto(&format!("{}-/web/account", reg.url()));
    b.wait_for_url("/-/web/signin");
}

#[test]
fn sessions_rotate_on_2fa_changes_end_after_the_absolute_timeout_and_sign_in_is_throttled() {
    let reg = Registry::start_with(&[("TESSERA_WEB__SESSION_MAX", "1h")]);
    reg.signup("alice", "alice-password");
    let b = Browser::start();
    sign_in(&b, &reg, "alice", "alice-password");
    b.wait_for_url("/-/web/account");
    let first = session_cookie(&b).unwrap();
    // turning 2FA on rotates the session id, and the old id is dead
    b.click("#manage-2fa");
    b.type_into("#password", "alice-password");
    b.click("#enable-2fa");
    b.wait_for_url("/-/web/account/2fa/setup");
    let secret = b.text("#secret");
    b.type_into("#code", &reg.otp(&secret, 0));
    b.click("#confirm-2fa");
    b.wait_for_text("Two-factor authentication is on");
    let second = session_cookie(&b).unwrap();
    assert_ne!(first, second);
    assert_eq!(with_cookie(&reg, &first)("/-/web/account").status, 303);
    assert_eq!(with_cookie(&reg, &second)("/-/web/account").status, 200);
    let account = format!("{}-/web/account", reg.url());
    // signed in 40 minutes ago and active since: re-authenticate with a one-time password
    for _ in 0..2 {
        reg.advance(20 * 60);
        b.goto(&account);
        b.wait_for_text("Account: alice");
    }
    b.goto(&format!("{}-/web/account/2fa", reg.url()));
    b.wait_for_url("/-/web/reauth");
    b.type_into("#secret", &reg.otp(&secret, 0));
    b.submit("#reauth");
    b.wait_for_url("/-/web/account/2fa");
    // active all along, but an hour after sign-in the session ends (the absolute timeout)
    reg.advance(15 * 60);
    b.goto(&account);
    b.wait_for_text("Account: alice");
    reg.advance(10 * 60);
    b.goto(&account);
    b.wait_for_url("/-/web/signin");
    // wrong passwords on the website count where the API's do: after 10, even the right
    // password is refused, on the website and by `npm login`
    for _ in 0..10 {
        sign_in(&b, &reg, "alice", "wrong-password");
        assert_eq!(b.text("#error"), "Incorrect user name or password.");
    }
    sign_in(&b, &reg, "alice", "alice-password");
    assert!(
        b.text("#error").contains("Too many failed"),
        "{}",
        b.source()
    );
    let r = reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:alice",
        &[("content-type", "application/json")],
        Some(serde_json::to_vec(&json!({"name": "alice", "password": "alice-password"})).unwrap()),
    );
    assert_eq!(r.status, 429, "{}", r.text);
    // the moment the website's failures crossed the limit is in the security log, as the API's
    let log = reg.admin(&["security-log", "alice"], None);
    let log = String::from_utf8_lossy(&log.stdout);
    assert!(log.contains("throttled"), "{log}");
    assert!(log.contains("website, password"), "{log}");
}

#[test]
fn the_session_cookie_is_secure_behind_an_https_origin() {
    // (signed in by hand: the sign-in form sets only its form token, then the post a session)
    let sign_in = |reg: &Registry, origin: &str| {
        reg.signup("alice", "alice-password");
        let page = reg.http().get("/-/web/signin");
        let form = page.header("set-cookie").unwrap().to_owned();
        let token = form.split(';').next().unwrap().to_owned();
        let csrf = token.split('=').nth(1).unwrap().to_owned();
        let r = reg.http().send(
            "POST",
            "/-/web/signin",
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("origin", origin),
                ("cookie", &token),
            ],
            Some(format!("csrf={csrf}&name=alice&password=alice-password").into_bytes()),
        );
        assert_eq!(r.status, 303, "{}", r.text);
        (form, r.header("set-cookie").unwrap().to_owned())
    };
    let plain = Registry::start();
    let origin = plain.url().trim_end_matches('/').to_owned();
    let (form, cookie) = sign_in(&plain, &origin);
    assert!(form.starts_with("tessera_form="), "{form}");
    assert!(cookie.starts_with("tessera_session="), "{cookie}");
    assert!(
        !cookie.contains("Secure") && !form.contains("Secure"),
        "{cookie}"
    );
    let reg = Registry::start_with(&[("TESSERA_PUBLIC_URL", "https://npm.example.test/")]);
    let (form, cookie) = sign_in(&reg, "https://npm.example.test");
    assert!(form.starts_with("__Host-tessera_form="), "{form}");
    assert!(cookie.starts_with("__Host-tessera_session="), "{cookie}");
    for part in ["; Path=/", "; HttpOnly", "; SameSite=Lax", "; Secure"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    for part in ["; Path=/", "; HttpOnly", "; SameSite=Strict", "; Secure"] {
        assert!(form.contains(part), "{form} lacks {part}");
    }
    assert!(
        !cookie.contains("Domain=") && !form.contains("Domain="),
        "{cookie}"
    );
}
