//! Security keys and passkeys (WebAuthn) on the website, in a real headless Chromium whose
//! WebDriver virtual authenticators play the keys: a CTAP2 passkey-capable key and a U2F-style
//! key. The first key turns 2FA on and shows recovery codes; sign-in takes the key after the
//! password; a second key needs the first; a cloned key (its counter going back) is refused.
//!
//! Browsers refuse IP addresses as WebAuthn origins, so the pages are opened at
//! `http://localhost:PORT` (the registry still listens on 127.0.0.1).

mod common;

use common::browser::Browser;
use common::*;
use serde_json::json;

/// The registry's address as the browser must use it.
fn site(reg: &Registry) -> String {
    reg.url().replace("127.0.0.1", "localhost")
}

fn sign_in_with_password(b: &Browser, reg: &Registry, name: &str, password: &str) {
    b.goto(&format!("{}-/web/signin", site(reg)));
    b.type_into("#name", name);
    b.type_into("#password", password);
    b.submit("#signin");
}

/// Adds a key from the 2FA page (typing `otp` when given); waits for the page that follows.
fn add_key(b: &Browser, reg: &Registry, name: &str, password: &str, otp: Option<&str>) {
    b.goto(&format!("{}-/web/account/2fa", site(reg)));
    b.type_into("#key-name", name);
    b.type_into("#key-password", password);
    if let Some(code) = otp {
        b.type_into("#key-otp", code);
    }
    b.click("#add-key");
}

/// Waits until the 2FA page lists a key named `name`.
fn wait_for_key(b: &Browser, reg: &Registry, name: &str) {
    poll(&format!("the key {name} to be listed"), || {
        if b.current_url().contains("/-/web/account/2fa") && b.exists("#key-list") {
            let listed = b.text("#key-list");
            if listed.lines().any(|l| l.starts_with(name)) {
                return Some(());
            }
        }
        if b.exists(".key-error") || b.exists("#error") {
            panic!("refused: {}", b.source());
        }
        let _ = reg;
        None
    });
}

/// The recovery codes the page shows.
fn shown_recovery_codes(b: &Browser) -> Vec<String> {
    b.source()
        .split("<li class=\"mono\">")
        .skip(1)
        .filter_map(|s| s.split("</li>").next().map(str::to_owned))
        .collect()
}

fn security_log(reg: &Registry, name: &str) -> String {
    let out = reg.admin(&["security-log", name], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn first_key_turns_2fa_on_and_signs_in(protocol: &str) {
    let reg = Registry::start();
    let token = reg.signup("alice", "alice-password");
    let b = Browser::start();
    let authenticator = b.add_authenticator(protocol);
    sign_in_with_password(&b, &reg, "alice", "alice-password");
    b.wait_for_url("/-/web/account");

    // the first key: 2FA on (auth-and-writes by default), recovery codes shown once
    add_key(&b, &reg, "my key", "alice-password", None);
    b.wait_for_text("Two-factor authentication is on");
    b.screenshot(&format!("key-added-{}", protocol.replace('/', "-")));
    let codes = shown_recovery_codes(&b);
    assert_eq!(codes.len(), 10, "{}", b.source());
    let profile = reg.http().with_token(&token).get("/-/npm/v1/user").json();
    assert_eq!(profile["tfa"]["mode"], "auth-and-writes", "{profile}");
    assert_eq!(profile["tfa"]["pending"], false, "{profile}");
    // the npm API now asks for a second factor; a recovery code answers it (no TOTP here)
    let r = reg
        .http()
        .with_token(&token)
        .post_json("/-/npm/v1/user", &json!({"fullname": "Alice"}));
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("www-authenticate"), Some("otp"));
    let log = security_log(&reg, "alice");
    assert!(log.contains("security_key_added"), "{log}");
    assert!(log.contains("tfa_enabled"), "{log}");

    // signing in again: the password, then the key
    b.clear_cookies();
    sign_in_with_password(&b, &reg, "alice", "alice-password");
    b.wait_for_url("/-/web/signin/otp");
    b.screenshot(&format!("signin-key-{}", protocol.replace('/', "-")));
    b.click("#use-key");
    b.wait_for_url("/-/web/account");
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    b.wait_for_text("my key");
    assert!(
        !b.text("#key-list").contains("never"),
        "{}",
        b.text("#key-list")
    );
    let log = security_log(&reg, "alice");
    assert!(log.contains("security_key_used"), "{log}");
    assert!(log.contains("password and security key (my key)"), "{log}");
    assert_eq!(b.authenticator_credentials(&authenticator).len(), 1);
}

#[test]
fn a_passkey_turns_2fa_on_and_signs_in() {
    first_key_turns_2fa_on_and_signs_in("ctap2");
}

#[test]
fn a_u2f_key_turns_2fa_on_and_signs_in() {
    first_key_turns_2fa_on_and_signs_in("ctap1/u2f");
}

#[test]
fn another_key_needs_a_second_factor_and_totp_accounts_add_keys_with_a_code() {
    let reg = Registry::start();
    let token = reg.signup("bob", "bob-password");
    let b = Browser::start();
    let first = b.add_authenticator("ctap2");
    sign_in_with_password(&b, &reg, "bob", "bob-password");
    b.wait_for_url("/-/web/account");
    add_key(&b, &reg, "first", "bob-password", None);
    b.wait_for_text("Two-factor authentication is on");
    let codes = shown_recovery_codes(&b);

    // the page asks the server for options: with keys, it must first assert with one of them
    let session = b
        .cookies()
        .into_iter()
        .find(|(n, _)| n == "tessera_session")
        .map(|(n, v)| format!("{n}={v}"))
        .unwrap();
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    let csrf = b
        .source()
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    // (by hand, as the browser would send it: to the localhost origin)
    let origin = site(&reg).trim_end_matches('/').to_owned();
    let host = origin.trim_start_matches("http://").to_owned();
    let begin = reg.http().send(
        "POST",
        "/-/web/account/keys/begin",
        &[
            ("cookie", &session),
            ("x-csrf-token", &csrf),
            ("origin", &origin),
            ("host", &host),
        ],
        None,
    );
    assert_eq!(begin.status, 200, "{}", begin.text);
    let options = begin.json();
    assert!(options["publicKey"]["challenge"].is_string(), "{options}");
    assert!(
        options["assert"]["publicKey"]["allowCredentials"][0]["id"].is_string(),
        "{options}"
    );
    // a key posted with the password alone is refused, and nothing is stored
    let form = format!(
        "csrf={csrf}&name=sneaky&password=bob-password&ceremony={}&credential=%7B%7D",
        options["ceremony"].as_str().unwrap()
    );
    let r = reg.http().send(
        "POST",
        "/-/web/account/keys",
        &[
            ("cookie", &session),
            ("origin", &origin),
            ("host", &host),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        Some(form.into_bytes()),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("one-time password"), "{}", r.text);

    // the first key is lost: another one is added with a recovery code
    b.remove_authenticator(&first);
    let second = b.add_authenticator("ctap1/u2f");
    add_key(&b, &reg, "second", "bob-password", Some(&codes[0]));
    wait_for_key(&b, &reg, "second");
    b.screenshot("2fa-keys");
    assert_eq!(b.authenticator_credentials(&second).len(), 1);
    let profile = reg.http().with_token(&token).get("/-/npm/v1/user").json();
    assert_eq!(profile["tfa"]["mode"], "auth-and-writes", "{profile}");
    // a wrong password refuses it, and nothing is stored
    b.remove_authenticator(&second);
    b.add_authenticator("ctap2");
    add_key(&b, &reg, "third", "wrong-password", Some(&codes[1]));
    b.wait_for_text("Incorrect password");
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    assert!(!b.text("#key-list").contains("third"));

    // an account with TOTP adds a key with a one-time password
    let t = reg.signup("carol", "carol-password");
    let (secret, _) = reg.enable_2fa(&t, "carol-password", "auth-only");
    reg.advance(30);
    let c = Browser::start();
    c.add_authenticator("ctap2");
    c.goto(&format!("{}-/web/signin", site(&reg)));
    c.type_into("#name", "carol");
    c.type_into("#password", "carol-password");
    c.submit("#signin");
    c.wait_for_url("/-/web/signin/otp");
    assert!(!c.exists("#use-key"), "no key yet");
    c.type_into("#otp", &reg.otp(&secret, 0));
    c.click("#verify");
    c.wait_for_url("/-/web/account");
    // without a code: refused
    add_key(&c, &reg, "carol key", "carol-password", None);
    c.wait_for_text("one-time password");
    c.goto(&format!("{}-/web/account/2fa", site(&reg)));
    assert!(!c.exists("#key-list"), "no key stored");
    reg.advance(30);
    add_key(
        &c,
        &reg,
        "carol key",
        "carol-password",
        Some(&reg.otp(&secret, 0)),
    );
    wait_for_key(&c, &reg, "carol key");
    let profile = reg.http().with_token(&t).get("/-/npm/v1/user").json();
    assert_eq!(
        profile["tfa"]["mode"], "auth-only",
        "the mode stays: {profile}"
    );
}

#[test]
fn a_cloned_key_whose_counter_goes_back_is_refused() {
    let reg = Registry::start();
    reg.signup("dave", "dave-password");
    let b = Browser::start();
    let key = b.add_authenticator("ctap2");
    sign_in_with_password(&b, &reg, "dave", "dave-password");
    b.wait_for_url("/-/web/account");
    add_key(&b, &reg, "original", "dave-password", None);
    b.wait_for_text("Two-factor authentication is on");
    // a copy of the key as it was, before two more uses of the original
    let copy = b.authenticator_credentials(&key).remove(0);
    for _ in 0..2 {
        b.clear_cookies();
        sign_in_with_password(&b, &reg, "dave", "dave-password");
        b.wait_for_url("/-/web/signin/otp");
        b.click("#use-key");
        b.wait_for_url("/-/web/account");
    }
    b.remove_authenticator(&key);
    let clone = b.add_authenticator("ctap2");
    b.add_credential(&clone, &copy);
    b.clear_cookies();
    sign_in_with_password(&b, &reg, "dave", "dave-password");
    b.wait_for_url("/-/web/signin/otp");
    b.click("#use-key");
    b.wait_for_text("may have been copied");
    assert!(
        b.current_url().contains("/-/web/signin"),
        "{}",
        b.current_url()
    );
    let log = security_log(&reg, "dave");
    assert!(log.contains("counter went back"), "{log}");
}

/// npm (11) against an account whose second factor is a key: every write sends npm to the
/// browser (`authUrl`), where the key confirms it; npm then goes on with a one-time code that
/// is good for one write.
#[test]
fn npm_commands_are_confirmed_in_the_browser_with_a_key() {
    let reg = Registry::start();
    let token = reg.signup("erin", "erin-password");
    let b = Browser::start();
    b.add_authenticator("ctap2");
    sign_in_with_password(&b, &reg, "erin", "erin-password");
    b.wait_for_url("/-/web/account");
    add_key(&b, &reg, "erin key", "erin-password", None);
    b.wait_for_text("Two-factor authentication is on");
    let npm = Npm::new(&site(&reg));
    let addr = site(&reg)
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    npm.set_token(&addr, &token);

    let confirm = |p: &mut Pty| {
        p.expect("Authenticate your account at:");
        let url = p.expect_regex(r"http://localhost:\d+/-/web/confirm/[A-Za-z0-9]+");
        b.goto(&url);
        b.screenshot("web-otp-key");
        b.click("#approve-key");
        b.wait_for_text("Confirmed");
    };
    for version in ["1.0.0", "1.0.1"] {
        let dir = npm.package("keyed", version, serde_json::Value::Null);
        let mut p = npm.pty(&dir, &["publish"]);
        confirm(&mut p);
        p.expect(&format!("+ keyed@{version}"));
        let (out, code) = p.finish();
        assert_eq!(code, 0, "{out}");
    }
    // an unpublish is two writes (the document, then the tarball), confirmed once
    let mut p = npm.pty(npm.root(), &["unpublish", "keyed@1.0.1"]);
    confirm(&mut p);
    p.expect("- keyed@1.0.1");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    let doc = reg.http().get("/keyed").json();
    assert!(doc["versions"]["1.0.1"].is_null(), "{doc}");
    assert_eq!(doc["dist-tags"]["latest"], "1.0.0");
    let log = security_log(&reg, "erin");
    assert!(log.contains("security_key_used"), "{log}");
    // without a terminal npm cannot open the browser flow: it stops, and nothing is written
    let dir = npm.package("keyed", "1.0.2", serde_json::Value::Null);
    let out = npm.run_in(&dir, &["publish"]);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(reg.http().get("/keyed").json()["versions"]["1.0.2"].is_null());
}

/// Keys are removed on the website with a second factor (a key, or a code), or by an
/// administrator; the last one takes 2FA with it.
#[test]
fn keys_are_removed_with_a_second_factor_or_by_an_administrator() {
    let reg = Registry::start();
    let token = reg.signup("fay", "fay-password");
    let b = Browser::start();
    b.add_authenticator("ctap2");
    sign_in_with_password(&b, &reg, "fay", "fay-password");
    b.wait_for_url("/-/web/account");
    add_key(&b, &reg, "fay key", "fay-password", None);
    b.wait_for_text("Two-factor authentication is on");
    let listed = reg.admin(&["user", "keys", "fay"], None);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("fay key") && listed.contains("never used"),
        "{listed}"
    );
    let id: String = listed.split('\t').next().unwrap().trim().to_owned();

    // a wrong code refuses the removal
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    b.type_into(&format!("#remove-otp-{id}"), "000000");
    b.click(&format!("#remove-key-{id}"));
    b.wait_for_text("invalid or was already used");
    // the key itself confirms it: the last factor goes, and 2FA with it
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    b.click(&format!("#remove-key-{id}"));
    poll("2FA to be off", || {
        let p = reg.http().with_token(&token).get("/-/npm/v1/user").json();
        (p["tfa"] == serde_json::Value::Bool(false)).then_some(())
    });
    let log = security_log(&reg, "fay");
    assert!(log.contains("security_key_removed"), "{log}");
    assert!(log.contains("last key removed"), "{log}");

    // an administrator removes a key (a lost one, after checking who asks)
    let t = reg.signup("gus", "gus-password");
    let g = Browser::start();
    g.add_authenticator("ctap1/u2f");
    sign_in_with_password(&g, &reg, "gus", "gus-password");
    g.wait_for_url("/-/web/account");
    add_key(&g, &reg, "gus key", "gus-password", None);
    g.wait_for_text("Two-factor authentication is on");
    let listed = reg.admin(&["user", "keys", "gus"], None);
    let id: String = String::from_utf8_lossy(&listed.stdout)
        .split('\t')
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let out = reg.admin(&["user", "keys", "gus", "--remove", "999999"], None);
    assert!(!out.status.success());
    let out = reg.admin(&["user", "keys", "gus", "--remove", &id], None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && text.contains("2FA is now off"),
        "{text}"
    );
    poll("the admin's change to reach the server", || {
        let p = reg.http().with_token(&t).get("/-/npm/v1/user").json();
        (p["tfa"] == serde_json::Value::Bool(false)).then_some(())
    });
    assert!(security_log(&reg, "gus").contains("by an administrator"));
}

/// Runs a sign-in assertion in the page (with `static/keys.js`'s helpers) and returns what the
/// form would post — the ceremony id, the answer and the CSRF token — without posting it.
fn captured_signin_answer(b: &Browser) -> serde_json::Value {
    let v = b.run_async(
        r#"const done = arguments[arguments.length - 1];
        const csrf = document.querySelector('input[name="csrf"]').value;
        fetch('/-/web/signin/key/begin', {method: 'POST', headers: {'x-csrf-token': csrf}})
          .then((r) => r.json())
          .then(async (o) => {
            const c = await navigator.credentials.get(decodeOptions(o));
            done({ceremony: o.ceremony, credential: assertion(c), csrf});
          })
          .catch((e) => done({error: String(e)}));"#,
    );
    assert!(v["error"].is_null(), "{v}");
    v
}

/// `answer` with its client data rewritten to name `origin` (its signature no longer matches).
fn with_client_origin(answer: &str, origin: &str) -> String {
    use data_encoding::BASE64URL_NOPAD;
    let mut v: serde_json::Value = serde_json::from_str(answer).unwrap();
    let field = &mut v["response"]["clientDataJSON"];
    let raw = BASE64URL_NOPAD
        .decode(field.as_str().unwrap().trim_end_matches('=').as_bytes())
        .unwrap();
    let mut client: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    client["origin"] = origin.into();
    *field = BASE64URL_NOPAD.encode(client.to_string().as_bytes()).into();
    v.to_string()
}

/// Posts a sign-in answer by hand to `reg`, with the browser's session, as a page of the
/// origin the browser had open (`page_origin`) would.
fn post_signin_answer(
    reg: &Registry,
    page_origin: &str,
    session: &str,
    csrf: &str,
    ceremony: &str,
    answer: &str,
) -> Resp {
    let host = site(reg);
    post_answer(reg, (&host, page_origin), session, csrf, (ceremony, answer))
}

/// [`post_signin_answer`] to the registry reached as `site_origin` (its Host header), from a page
/// of that origin.
fn post_signin_answer_to(
    reg: &Registry,
    site_origin: &str,
    session: &str,
    csrf: &str,
    ceremony: &str,
    answer: &str,
) -> Resp {
    post_answer(
        reg,
        (site_origin, site_origin),
        session,
        csrf,
        (ceremony, answer),
    )
}

fn post_answer(
    reg: &Registry,
    (site_origin, page_origin): (&str, &str),
    session: &str,
    csrf: &str,
    (ceremony, answer): (&str, &str),
) -> Resp {
    let origin = page_origin.trim_end_matches('/').to_owned();
    let host = site_origin
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    let body = format!(
        "csrf={}&ceremony={}&credential={}",
        enc(csrf),
        enc(ceremony),
        enc(answer)
    );
    reg.http().send(
        "POST",
        "/-/web/signin/key",
        &[
            ("cookie", session),
            ("origin", &origin),
            ("host", &host),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        Some(body.into_bytes()),
    )
}

fn session_of(b: &Browser) -> String {
    b.cookies()
        .into_iter()
        .find(|(n, _)| n == "tessera_session")
        .map(|(n, v)| format!("{n}={v}"))
        .expect("a session")
}

/// Malformed answers, a spent or expired ceremony and another account's answer are refused with
/// a message, logged, and sign nobody in.
#[test]
fn bad_key_answers_are_refused_and_logged() {
    let reg = Registry::start();
    reg.signup("hal", "hal-password");
    reg.signup("ida", "ida-password");
    let b = Browser::start();
    b.add_authenticator("ctap2");
    for (name, password) in [("hal", "hal-password"), ("ida", "ida-password")] {
        b.clear_cookies();
        sign_in_with_password(&b, &reg, name, password);
        b.wait_for_url("/-/web/account");
        add_key(&b, &reg, &format!("{name} key"), password, None);
        b.wait_for_text("Two-factor authentication is on");
    }
    // hal's partial sign-in, and two answers of his key
    b.clear_cookies();
    sign_in_with_password(&b, &reg, "hal", "hal-password");
    b.wait_for_url("/-/web/signin/otp");
    let hal = session_of(&b);
    let first = captured_signin_answer(&b);
    let second = captured_signin_answer(&b);
    let (csrf, c1, c2) = (
        first["csrf"].as_str().unwrap(),
        first["ceremony"].as_str().unwrap(),
        second["ceremony"].as_str().unwrap(),
    );
    // malformed: refused, and the ceremony is spent
    let r = post_signin_answer(&reg, &site(&reg), &hal, csrf, c1, "{\"id\": 1}");
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("malformed"), "{}", r.text);
    // a spent ceremony, even with a good answer
    let r = post_signin_answer(
        &reg,
        &site(&reg),
        &hal,
        csrf,
        c1,
        first["credential"].as_str().unwrap(),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("expired or was already used"), "{}", r.text);
    // an answer for another ceremony
    let r = post_signin_answer(
        &reg,
        &site(&reg),
        &hal,
        csrf,
        c2,
        first["credential"].as_str().unwrap(),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("answered another request"), "{}", r.text);
    // an answer whose client data names another origin (a phishing page's): refused before its
    // signature is even looked at
    let port = site(&reg)
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let phishing = format!("http://tessera.localhost:{port}");
    let fresh = captured_signin_answer(&b);
    let r = post_signin_answer(
        &reg,
        &site(&reg),
        &hal,
        csrf,
        fresh["ceremony"].as_str().unwrap(),
        &with_client_origin(fresh["credential"].as_str().unwrap(), &phishing),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.to_lowercase().contains("origin"), "{}", r.text);
    // the same answer posted to the registry under another name: the origin now matches, but
    // the key signed for the relying party `localhost`, not `tessera.localhost` (a new partial
    // sign-in: the refusals above used up the last one's attempts)
    b.clear_cookies();
    sign_in_with_password(&b, &reg, "hal", "hal-password");
    b.wait_for_url("/-/web/signin/otp");
    let hal = session_of(&b);
    let fresh = captured_signin_answer(&b);
    let r = post_signin_answer_to(
        &reg,
        &phishing,
        &hal,
        fresh["csrf"].as_str().unwrap(),
        fresh["ceremony"].as_str().unwrap(),
        &with_client_origin(fresh["credential"].as_str().unwrap(), &phishing),
    );
    assert_eq!(r.status, 401, "{} {:?}", r.text, r.headers);
    assert!(r.text.contains("relying party"), "{}", r.text);
    // an expired ceremony
    let late = captured_signin_answer(&b);
    let csrf = late["csrf"].as_str().unwrap();
    reg.advance(6 * 60);
    let r = post_signin_answer(
        &reg,
        &site(&reg),
        &hal,
        csrf,
        late["ceremony"].as_str().unwrap(),
        late["credential"].as_str().unwrap(),
    );
    assert!(r.text.contains("expired"), "{} {}", r.status, r.text);
    // nobody got signed in by any of it
    let account = reg
        .http()
        .send("GET", "/-/web/account", &[("cookie", &hal)], None);
    assert_eq!(account.status, 303, "still a partial sign-in");

    // ida's key answering hal's ceremony: not one of hal's keys
    b.clear_cookies();
    sign_in_with_password(&b, &reg, "ida", "ida-password");
    b.wait_for_url("/-/web/signin/otp");
    let ida_answer = captured_signin_answer(&b);
    b.clear_cookies();
    sign_in_with_password(&b, &reg, "hal", "hal-password");
    b.wait_for_url("/-/web/signin/otp");
    let hal = session_of(&b);
    let hal_answer = captured_signin_answer(&b);
    let r = post_signin_answer(
        &reg,
        &site(&reg),
        &hal,
        hal_answer["csrf"].as_str().unwrap(),
        hal_answer["ceremony"].as_str().unwrap(),
        ida_answer["credential"].as_str().unwrap(),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    let log = security_log(&reg, "hal");
    assert!(log.contains("security_key_failed"), "{log}");
    assert!(log.contains("malformed answer"), "{log}");
    assert!(log.contains("unknown, used or expired"), "{log}");
    assert!(log.contains("the answer names another origin"), "{log}");
    assert!(log.contains("signed for another relying party"), "{log}");
}

/// Two instances on one PostgreSQL database (and S3): a sign-in ceremony begun on A completes
/// on B, since its state is in the database; behind one public origin, both instances are the
/// same relying party.
#[test]
fn a_ceremony_begun_on_one_instance_completes_on_another() {
    let backend = SharedBackend::new();
    let a = Registry::start_on(Some(backend.clone()), &[]);
    let origin = site(&a);
    let b_reg = Registry::start_on(Some(backend), &[("TESSERA_PUBLIC_URL", origin.as_str())]);
    a.signup("jan", "jan-password");
    let b = Browser::start();
    b.add_authenticator("ctap2");
    sign_in_with_password(&b, &a, "jan", "jan-password");
    b.wait_for_url("/-/web/account");
    add_key(&b, &a, "jan key", "jan-password", None);
    b.wait_for_text("Two-factor authentication is on");
    b.clear_cookies();
    sign_in_with_password(&b, &a, "jan", "jan-password");
    b.wait_for_url("/-/web/signin/otp");
    let session = session_of(&b);
    // begun on A (in the page), answered to B
    let answer = captured_signin_answer(&b);
    let r = post_signin_answer(
        &b_reg,
        &origin,
        &session,
        answer["csrf"].as_str().unwrap(),
        answer["ceremony"].as_str().unwrap(),
        answer["credential"].as_str().unwrap(),
    );
    assert_eq!(r.status, 303, "{}", r.text);
    let signed_in = r
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("tessera_session="))
        .map(|(_, v)| v.split(';').next().unwrap().to_owned())
        .expect("a new session");
    for reg in [&a, &b_reg] {
        let page = reg
            .http()
            .send("GET", "/-/web/account", &[("cookie", &signed_in)], None);
        assert_eq!(page.status, 200, "signed in on both instances");
    }
    // and it cannot be answered again, on either
    let again = post_signin_answer(
        &a,
        &origin,
        &session,
        answer["csrf"].as_str().unwrap(),
        answer["ceremony"].as_str().unwrap(),
        answer["credential"].as_str().unwrap(),
    );
    assert_ne!(again.status, 200);
    assert!(!again.headers.iter().any(|(k, v)| k == "set-cookie"
        && v.starts_with("tessera_session=")
        && !v.contains("Max-Age=0")));
}

/// Signs in on the website with the password and a one-time password.
fn sign_in_with_code(b: &Browser, reg: &Registry, name: &str, password: &str, code: &str) {
    sign_in_with_password(b, reg, name, password);
    b.wait_for_url("/-/web/signin/otp");
    b.type_into("#otp", code);
    b.click("#verify");
}

/// Sets the registry-wide policy and waits until the registry follows it (`seen` is true).
fn set_policy(reg: &Registry, args: &[&str], shown: &str, seen: impl Fn() -> bool) {
    let mut all = vec!["policy"];
    all.extend_from_slice(args);
    let out = reg.admin(&all, None);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(shown), "{text}");
    poll("the policy to be followed", || seen().then_some(()));
}

/// `tfa.totp_enrolment = "disabled"`: new enrolments with an authenticator app are refused
/// (npm and the website point to keys), while accounts that have one keep using it, and new
/// users turn 2FA on with a key.
#[test]
fn totp_enrolment_can_be_retired() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-and-writes");
    let bob = reg.npm_as("bob");
    let bob_token = bob.token().unwrap();
    set_policy(
        &reg,
        &["--totp-enrolment", "disabled"],
        "tfa.totp_enrolment = disabled (set by tessera admin policy)",
        || {
            let r = reg.http().with_token(&bob_token).post_json(
                "/-/npm/v1/user",
                &json!({"tfa": {"password": "bob-password", "mode": "auth-and-writes"}}),
            );
            r.status == 403
        },
    );
    // npm profile enable-2fa, as a user runs it: refused with where to go instead
    let mut p = bob.pty(bob.root(), &["profile", "enable-2fa"]);
    p.expect("npm password:").send("bob-password");
    p.expect("no longer offers authenticator apps");
    let (out, code) = p.finish();
    assert_ne!(code, 0, "{out}");
    let profile = reg
        .http()
        .with_token(&bob_token)
        .get("/-/npm/v1/user")
        .json();
    assert_eq!(profile["tfa"], serde_json::Value::Bool(false), "{profile}");
    // alice's authenticator app keeps working
    alice
        .publish(
            "alices",
            "1.0.0",
            &[&format!("--otp={}", reg.otp(&secret, 0))],
        )
        .ok();
    // the website offers keys only, and a key turns 2FA on
    let b = Browser::start();
    b.add_authenticator("ctap2");
    sign_in_with_password(&b, &reg, "bob", "bob-password");
    b.wait_for_url("/-/web/account");
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    assert!(b.exists("#totp-disabled"), "{}", b.source());
    assert!(!b.exists("#enable-2fa"));
    add_key(&b, &reg, "bob key", "bob-password", None);
    b.wait_for_text("Two-factor authentication is on");
    // and back
    let out = reg.admin(&["policy", "--reset"], None);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("tfa.totp_enrolment = allowed (from the configuration)")
    );
}

/// `tfa.require_webauthn_for = "publishers"`: package changes take only a key (npm's
/// `--otp` with an app's code sends the user to the browser, where only the key confirms);
/// accounts without a key cannot publish; other operations take any second factor.
#[test]
fn keys_can_be_required_for_package_changes() {
    let reg = Registry::start();
    let carol_token = reg.signup("carol", "carol-password");
    let (secret, codes) = reg.enable_2fa(&carol_token, "carol-password", "auth-and-writes");
    let dave = reg.npm_as("dave");
    let (dave_secret, _) =
        reg.enable_2fa(&dave.token().unwrap(), "dave-password", "auth-and-writes");
    reg.advance(30);
    let b = Browser::start();
    b.add_authenticator("ctap2");
    sign_in_with_code(&b, &reg, "carol", "carol-password", &reg.otp(&secret, 0));
    b.wait_for_url("/-/web/account");
    reg.advance(30);
    add_key(
        &b,
        &reg,
        "carol key",
        "carol-password",
        Some(&reg.otp(&secret, 0)),
    );
    wait_for_key(&b, &reg, "carol key");
    set_policy(
        &reg,
        &["--require-webauthn-for", "publishers"],
        "tfa.require_webauthn_for = publishers (set by tessera admin policy)",
        || {
            // (without a code: refused either way, and nothing written)
            let out = dave.publish("daves", "1.0.0", &[]);
            out.code != 0
                && out
                    .all()
                    .contains("requires a security key or passkey for this account")
        },
    );
    reg.advance(30);
    let out = dave.publish(
        "daves",
        "1.0.0",
        &[&format!("--otp={}", reg.otp(&dave_secret, 0))],
    );
    assert!(out.fails().contains("403"), "{}", out.all());
    assert!(reg.http().get("/daves").status == 404, "nothing published");

    let npm = Npm::new(&site(&reg));
    let addr = site(&reg)
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    npm.set_token(&addr, &carol_token);
    // an app's code or a recovery code is not a key: without a terminal npm stops there
    reg.advance(30);
    let dir = npm.package("carols", "1.0.0", serde_json::Value::Null);
    for code in [reg.otp(&secret, 0), codes[0].clone()] {
        let out = npm.run_in(&dir, &["publish", &format!("--otp={code}")]);
        assert_ne!(out.code, 0, "{}", out.all());
    }
    assert_eq!(reg.http().get("/carols").status, 404, "nothing published");
    // at a terminal, npm opens the browser confirmation, which offers only the key
    let mut p = npm.pty(
        &dir,
        &["publish", &format!("--otp={}", reg.otp(&secret, 0))],
    );
    p.expect("Authenticate your account at:");
    let url = p.expect_regex(r"http://localhost:\d+/-/web/confirm/[A-Za-z0-9]+");
    b.goto(&url);
    assert!(b.exists("#key-only"), "{}", b.source());
    assert!(!b.exists("#otp"), "no code field");
    b.click("#approve-key");
    b.wait_for_text("Confirmed");
    p.expect("+ carols@1.0.0");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    // outside package changes any second factor still counts
    reg.advance(30);
    npm.run(&[
        "profile",
        "set",
        "fullname",
        "Carol",
        &format!("--otp={}", reg.otp(&secret, 0)),
    ])
    .ok();
    // the recovery code refused above was not spent
    let r = reg.http().send(
        "PUT",
        "/-/user/org.couchdb.user:carol",
        &[("npm-otp", &codes[0]), ("content-type", "application/json")],
        Some(
            json!({"name": "carol", "password": "carol-password"})
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// `tfa.require_webauthn_for = "everyone"`: an account without a key may only sign in and add
/// one (with its app's code); then only the key counts, and a recovery code still logs in.
#[test]
fn keys_can_be_required_of_everyone() {
    let reg = Registry::start();
    let erin = reg.npm_as("erin");
    let erin_token = erin.token().unwrap();
    let (secret, codes) = reg.enable_2fa(&erin_token, "erin-password", "auth-only");
    set_policy(
        &reg,
        &["--require-webauthn-for", "everyone"],
        "tfa.require_webauthn_for = everyone (set by tessera admin policy)",
        || {
            let out = erin.run(&["view", "anything"]);
            out.code != 0 && out.all().contains("requires a security key or passkey")
        },
    );
    // the website lets erin in with her app's code, says what is required, and takes a key
    reg.advance(30);
    let b = Browser::start();
    b.add_authenticator("ctap2");
    sign_in_with_code(&b, &reg, "erin", "erin-password", &reg.otp(&secret, 0));
    b.wait_for_url("/-/web/account");
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    assert!(b.exists("#key-required"), "{}", b.source());
    reg.advance(30);
    add_key(
        &b,
        &reg,
        "erin key",
        "erin-password",
        Some(&reg.otp(&secret, 0)),
    );
    wait_for_key(&b, &reg, "erin key");
    assert!(!b.exists("#key-required"));
    erin.run(&["whoami"]).ok();
    // a login with the app's code is refused (and the answer points to the browser); with a
    // recovery code it goes through
    reg.advance(30);
    let login = |code: &str| {
        reg.http().send(
            "PUT",
            "/-/user/org.couchdb.user:erin",
            &[("npm-otp", code), ("content-type", "application/json")],
            Some(
                json!({"name": "erin", "password": "erin-password"})
                    .to_string()
                    .into_bytes(),
            ),
        )
    };
    let r = login(&reg.otp(&secret, 0));
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(
        r.text
            .contains("codes from an authenticator app do not count"),
        "{}",
        r.text
    );
    assert!(r.json()["authUrl"].is_string(), "{}", r.text);
    let r = login(&codes[1]);
    assert_eq!(r.status, 201, "{}", r.text);
    // the website's sign-in takes the key, not the code
    b.clear_cookies();
    reg.advance(30);
    sign_in_with_code(&b, &reg, "erin", "erin-password", &reg.otp(&secret, 0));
    b.wait_for_text("codes from an authenticator app do not count");
    b.click("#use-key");
    b.wait_for_url("/-/web/account");
}

/// `tfa.attestation_roots`: only keys whose attestation chains to a listed root can be added.
/// Another maker's root (made here with openssl) refuses the browser's virtual authenticator,
/// with a message and a security-log entry, and nothing is stored. (Admission is tested with a
/// software authenticator and its own CA in the server's unit tests: Chromium's virtual
/// authenticator attests with a self-signed certificate that is not a CA, which no allow-list
/// of roots can admit.)
#[test]
fn an_attestation_allow_list_admits_only_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-maker.pem");
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=Another key maker"])
        .arg("-keyout")
        .arg(dir.path().join("other-maker.key"))
        .arg("-out")
        .arg(&other)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let reg = Registry::start_with(&[("TESSERA_TFA__ATTESTATION_ROOTS", other.to_str().unwrap())]);
    reg.signup("ivy", "ivy-password");
    let b = Browser::start();
    b.add_authenticator("ctap2");
    sign_in_with_password(&b, &reg, "ivy", "ivy-password");
    b.wait_for_url("/-/web/account");
    add_key(&b, &reg, "ivy key", "ivy-password", None);
    b.wait_for_text("this key's attestation is not one of them");
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    assert!(!b.exists("#key-list"), "nothing stored");
    assert!(
        security_log(&reg, "ivy").contains("registration refused"),
        "{}",
        security_log(&reg, "ivy")
    );
    // the page asked the browser for the key's attestation
    assert!(
        reg.log_text()
            .contains("a key outside the attestation allow-list")
    );
}

/// An account whose second factors are keys adds an authenticator app on the website (the
/// password, and one of its keys); the app's codes count only once its first code confirmed it.
#[test]
fn a_keys_only_account_adds_an_authenticator_app() {
    let reg = Registry::start();
    let token = reg.signup("kim", "kim-password");
    let b = Browser::start();
    b.add_authenticator("ctap2");
    sign_in_with_password(&b, &reg, "kim", "kim-password");
    b.wait_for_url("/-/web/account");
    add_key(&b, &reg, "kim key", "kim-password", None);
    b.wait_for_text("Two-factor authentication is on");
    b.goto(&format!("{}-/web/account/2fa", site(&reg)));
    b.type_into("#app-password", "kim-password");
    b.click("#add-app");
    b.wait_for_url("/-/web/account/2fa/app");
    let secret = b.text("#secret").trim().to_owned();
    assert_eq!(secret.len(), 32, "{secret}");
    let npm = Npm::new(&reg.url());
    let addr = reg
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    npm.set_token(&addr, &token);
    let set_name = |name: &str, code: &str| {
        npm.run(&["profile", "set", "fullname", name, &format!("--otp={code}")])
    };
    // not yet confirmed: its codes do not count
    let out = set_name("Kim", &reg.otp(&secret, 0));
    assert_ne!(out.code, 0, "{}", out.all());
    // a wrong first code keeps the setup open; the right one adds the app
    b.type_into("#code", "000000");
    b.click("#confirm-2fa");
    b.wait_for_text("does not match");
    reg.advance(30);
    b.type_into("#code", &reg.otp(&secret, 0));
    b.click("#confirm-2fa");
    b.wait_for_url("/-/web/account/2fa");
    wait_for_key(&b, &reg, "kim key");
    assert!(!b.exists("#add-app"), "one app is enough");
    reg.advance(30);
    set_name("Kim", &reg.otp(&secret, 0)).ok();
    let profile = reg.http().with_token(&token).get("/-/npm/v1/user").json();
    assert_eq!(profile["fullname"], "Kim", "{profile}");
    assert!(security_log(&reg, "kim").contains("authenticator app added beside security keys"));
}
