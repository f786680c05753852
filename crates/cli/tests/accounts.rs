//! Accounts with the real npm CLI: adduser, login (web fallback and legacy), whoami, logout,
//! ping, and the sign-up modes.

mod common;

use common::*;

/// `npm adduser` at a terminal, answering npm's prompts.
fn adduser(reg: &Registry, npm: &Npm, name: &str, password: &str, email: &str) -> (String, i32) {
    let mut p = npm.pty(npm.root(), &["adduser", "--auth-type=legacy"]);
    p.expect("Username:").send(name);
    p.expect("Password:").send(password);
    p.expect("Email (this will be public):").send(email);
    let _ = reg;
    p.finish()
}

#[test]
fn adduser_whoami_logout_with_the_real_cli() {
    let reg = Registry::start();
    let npm = reg.npm();
    let (out, code) = adduser(&reg, &npm, "carol", "carol-password", "carol@example.com");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Logged in on"), "{out}");
    let token = npm.token().expect("npm stored a token");
    assert!(token.starts_with("tsr_"), "{token}");
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "carol");
    assert_eq!(npm.run(&["ping"]).code, 0);

    // logout revokes the token on the server, not just locally
    let out = npm.run(&["logout"]);
    out.ok();
    assert!(npm.token().is_none());
    let r = reg.http().with_token(&token).get("/-/whoami");
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"tessera\"")
    );
    assert!(npm.run(&["whoami"]).fails().contains("ENEEDAUTH"));
}

#[test]
fn login_falls_back_from_web_login_and_legacy_goes_straight() {
    // With the browser login switched off, npm's default (web) login falls back on the 404.
    let reg = Registry::start_with(&[("TESSERA_WEB__BROWSER_LOGIN", "false")]);
    reg.signup("dave", "dave-password");
    for args in [&["login"][..], &["login", "--auth-type=legacy"][..]] {
        let npm = reg.npm();
        let mut p = npm.pty(npm.root(), args);
        p.expect("Username:").send("dave");
        p.expect("Password:").send("dave-password");
        let (out, code) = p.finish();
        assert_eq!(code, 0, "{args:?}: {out}");
        assert!(out.contains("Logged in on"), "{out}");
        assert_eq!(npm.run(&["whoami"]).ok().trim(), "dave");
    }
    // each login minted its own session token, which npm token list does not show
    let t = reg.npm_as("erin");
    let list = reg
        .http()
        .with_token(&t.token().unwrap())
        .get("/-/npm/v1/tokens")
        .json();
    assert_eq!(list["total"], 0, "{list}");
    let out = reg.admin(&["tokens", "dave"], None);
    let sessions = String::from_utf8_lossy(&out.stdout).into_owned();
    // the signup's and each login's
    assert_eq!(
        sessions.matches("login token (expires").count(),
        3,
        "{sessions}"
    );
}

#[test]
fn wrong_passwords_and_unknown_users_look_the_same() {
    let reg = Registry::start();
    reg.signup("frank", "frank-password");
    let http = reg.http();
    let wrong = http.put_json(
        "/-/user/org.couchdb.user:frank",
        &serde_json::json!({"name": "frank", "password": "nope-nope"}),
    );
    let unknown = http.put_json(
        "/-/user/org.couchdb.user:ghost",
        &serde_json::json!({"name": "ghost", "password": "nope-nope"}),
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(
        (wrong.status, wrong.text.clone()),
        (unknown.status, unknown.text.clone())
    );
    assert_eq!(wrong.header("www-authenticate"), None);
    // npm shows the message
    let npm = reg.npm();
    let mut p = npm.pty(npm.root(), &["login", "--auth-type=legacy"]);
    p.expect("Username:").send("frank");
    p.expect("Password:").send("wrong-password");
    let (out, code) = p.finish();
    assert_ne!(code, 0);
    assert!(out.contains("Incorrect username or password"), "{out}");
    assert!(npm.token().is_none());
    // a stale token in .npmrc does not block login
    npm.set_token(&reg.addr, "tsr_0000000000000000000000000000000000000000");
    let mut p = npm.pty(npm.root(), &["login", "--auth-type=legacy"]);
    p.expect("Username:").send("frank");
    p.expect("Password:").send("frank-password");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "frank");
}

#[test]
fn closed_signup_needs_an_admin() {
    let reg = Registry::start_with(&[("TESSERA_SIGNUP", "closed")]);
    let npm = reg.npm();
    let (out, code) = adduser(&reg, &npm, "gina", "gina-password", "gina@example.com");
    assert_ne!(code, 0);
    assert!(out.contains("Sign-up is closed"), "{out}");
    let out = reg.admin(
        &[
            "user",
            "add",
            "gina",
            "--email",
            "gina@example.com",
            "--password-stdin",
        ],
        Some("gina-password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut p = npm.pty(npm.root(), &["login", "--auth-type=legacy"]);
    p.expect("Username:").send("gina");
    p.expect("Password:").send("gina-password");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    let list = reg.admin(&["user", "list"], None);
    assert!(String::from_utf8_lossy(&list.stdout).contains("gina\tgina@example.com"));
    // duplicate and invalid names are refused
    let dup = reg.admin(
        &[
            "user",
            "add",
            "gina",
            "--email",
            "g@example.com",
            "--password-stdin",
        ],
        Some("another-password\n"),
    );
    assert!(!dup.status.success());
    let bad = reg.admin(
        &[
            "user",
            "add",
            "Bad Name",
            "--email",
            "g@example.com",
            "--password-stdin",
        ],
        Some("another-password\n"),
    );
    assert!(!bad.status.success());
}

/// A form of the website as a visitor without a session gets it: its form-token cookie and
/// the CSRF value in the page.
fn open_form(reg: &Registry, path: &str) -> (Resp, String, String) {
    let page = reg.http().get(path);
    let cookie = page
        .headers
        .iter()
        .filter(|(k, _)| k == "set-cookie")
        .find_map(|(_, v)| {
            v.split(';')
                .next()
                .filter(|c| c.starts_with("tessera_form="))
        })
        .unwrap_or_default()
        .to_owned();
    let csrf = page
        .text
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_owned();
    (page, cookie, csrf)
}

/// Posts a form the way a browser on the registry's own page does.
fn post_form(reg: &Registry, path: &str, cookie: &str, fields: &[(&str, &str)]) -> Resp {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace('@', "%40")))
        .collect();
    let origin = reg.url().trim_end_matches('/').to_owned();
    reg.http().send(
        "POST",
        path,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
            ("cookie", cookie),
        ],
        Some(body.join("&").into_bytes()),
    )
}

/// The link `tessera admin invite` printed.
fn invitation_link(out: &std::process::Output) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_whitespace()
        .find(|w| w.contains("/-/web/invitation/"))
        .unwrap_or_else(|| panic!("no link in {text}"))
        .to_owned()
}

#[test]
fn invitations_are_one_time_secret_links() {
    let reg = Registry::start_with(&[("TESSERA_SIGNUP", "invitation")]);
    let link = invitation_link(&reg.admin(&["invite", "hank", "hank@example.com"], None));
    let path = &link[link.find("/-/web/").unwrap()..];
    let secret = path.rsplit('/').next().unwrap().to_owned();
    assert!(secret.len() >= 32, "{link}");
    // only the secret's hash is stored, and the access log does not show it
    assert!(
        !String::from_utf8_lossy(&reg.database_bytes()).contains(&secret),
        "the secret is in the database"
    );

    // knowing the invited name and email is not enough: npm cannot create the account…
    let npm = reg.npm();
    let (out, code) = adduser(&reg, &npm, "hank", "hank-password", "hank@example.com");
    assert_ne!(code, 0);
    assert!(out.contains("invitation link"), "{out}");
    // …and neither can the website's sign-up form
    let (page, cookie, _) = open_form(&reg, "/-/web/signup");
    assert!(page.text.contains("by invitation"), "{}", page.text);
    assert!(
        !page.text.contains("id=\"password\""),
        "no form without a link"
    );
    // (a hand-made post, with the form token its cookie carries)
    let csrf = cookie.trim_start_matches("tessera_form=").to_owned();
    let r = post_form(
        &reg,
        "/-/web/signup",
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "hank"),
            ("email", "hank@example.com"),
            ("password", "mallory-password"),
        ],
    );
    assert!(
        r.text.contains("invitation link"),
        "{} {}",
        r.status,
        r.text
    );
    assert_eq!(reg.count_rows("users"), 0);

    // a guessed secret opens nothing
    let r = reg
        .http()
        .get("/-/web/invitation/0123456789abcdefghijABCDEFGHIJ01");
    assert_eq!(r.status, 404);
    assert!(r.text.contains("not valid"), "{}", r.text);

    // the link: the name is fixed, whatever the form says
    let (page, cookie, csrf) = open_form(&reg, path);
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains("invited as <strong>hank</strong>"),
        "{}",
        page.text
    );
    let r = post_form(
        &reg,
        path,
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "mallory"),
            ("email", "hank@example.org"),
            ("password", "hank-password"),
        ],
    );
    assert_eq!(r.status, 303, "{}", r.text);
    assert!(reg.http().get("/-/user/org.couchdb.user:mallory").status == 404);
    let hank = reg.http().get("/-/user/org.couchdb.user:hank").json();
    assert_eq!(hank["email"], "hank@example.org");
    // hank logs in with npm from now on
    let r = reg.http().put_json(
        "/-/user/org.couchdb.user:hank",
        &serde_json::json!({"name": "hank", "password": "hank-password"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);

    // the link works once
    let r = reg.http().get(path);
    assert_eq!(r.status, 404);
    let r = post_form(
        &reg,
        path,
        &cookie,
        &[
            ("csrf", &csrf),
            ("email", "x@example.com"),
            ("password", "other-password"),
        ],
    );
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(reg.log_text().contains("/-/web/invitation/[redacted]"));
    assert!(!reg.log_text().contains(&secret));
}

#[test]
fn invitation_links_expire_and_a_new_one_replaces_the_old() {
    let reg = Registry::start_with(&[("TESSERA_SIGNUP", "invitation")]);
    let first = invitation_link(&reg.admin(&["invite", "ivan", "ivan@example.com"], None));
    let second = invitation_link(&reg.admin(&["invite", "ivan", "ivan@example.com"], None));
    let path = |l: &str| l[l.find("/-/web/").unwrap()..].to_owned();
    assert_eq!(reg.http().get(&path(&first)).status, 404, "replaced");
    assert_eq!(reg.http().get(&path(&second)).status, 200);
    let short =
        invitation_link(&reg.admin(&["invite", "judy", "judy@example.com", "--days", "1"], None));
    assert_eq!(reg.http().get(&path(&short)).status, 200);
    reg.advance(86_400 + 60);
    assert_eq!(reg.http().get(&path(&short)).status, 404, "expired");
    assert_eq!(
        reg.http().get(&path(&second)).status,
        200,
        "7 days by default"
    );
    // an existing user cannot be invited
    let out = reg.admin(
        &[
            "user",
            "add",
            "leo",
            "--email",
            "leo@example.com",
            "--password-stdin",
        ],
        Some("leo-password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = reg.admin(&["invite", "leo", "leo@example.com"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn visitors_do_not_write_rows_and_login_handshakes_are_budgeted() {
    let reg = Registry::start_with(&[("TESSERA_WEB__PRUNE_EVERY", "1s")]);
    // the sign-in and sign-up forms store nothing until a form is posted
    for _ in 0..5 {
        let (page, cookie, csrf) = open_form(&reg, "/-/web/signin");
        assert_eq!(page.status, 200);
        assert!(
            cookie.starts_with("tessera_form=") && csrf.len() == 32,
            "{cookie} {csrf}"
        );
        assert_eq!(open_form(&reg, "/-/web/signup").0.status, 200);
    }
    assert_eq!(reg.count_rows("sessions"), 0);
    // a wrong password from the form stores no session either; a right one does
    reg.signup("kate", "kate-password");
    let (_, cookie, csrf) = open_form(&reg, "/-/web/signin");
    let wrong = post_form(
        &reg,
        "/-/web/signin",
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "kate"),
            ("password", "wrong-password"),
        ],
    );
    assert!(
        wrong.text.contains("Incorrect user name or password"),
        "{}",
        wrong.text
    );
    assert_eq!(reg.count_rows("sessions"), 0);
    // the form token must match its cookie
    let forged = post_form(
        &reg,
        "/-/web/signin",
        "tessera_form=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &[
            ("csrf", &csrf),
            ("name", "kate"),
            ("password", "kate-password"),
        ],
    );
    assert_eq!(forged.status, 403, "{}", forged.text);
    let right = post_form(
        &reg,
        "/-/web/signin",
        &cookie,
        &[
            ("csrf", &csrf),
            ("name", "kate"),
            ("password", "kate-password"),
        ],
    );
    assert_eq!(right.status, 303, "{}", right.text);
    assert_eq!(reg.count_rows("sessions"), 1);

    // npm's browser login: 20 handshakes per address in 10 minutes, then 429
    let http = reg.http();
    for i in 0..20 {
        let r = http.post_json("/-/v1/login", &serde_json::json!({}));
        assert_eq!(r.status, 200, "handshake {i}: {}", r.text);
    }
    let r = http.post_json("/-/v1/login", &serde_json::json!({}));
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.header("retry-after").is_some());
    assert_eq!(reg.count_rows("handshakes"), 20);
    // expired rows go on the timer, without any visitor
    reg.advance(13 * 3600);
    poll("expired sessions and handshakes to be pruned", || {
        (reg.count_rows("handshakes") == 0 && reg.count_rows("sessions") == 0).then_some(())
    });
    let r = http.post_json("/-/v1/login", &serde_json::json!({}));
    assert_eq!(r.status, 200, "a new window: {}", r.text);
}

#[test]
fn locked_accounts_cannot_log_in_or_use_tokens() {
    let reg = Registry::start();
    let npm = reg.npm_as("judy");
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "judy");
    assert!(reg.admin(&["user", "lock", "judy"], None).status.success());
    // the admin CLI is another process: the server learns of it within its 200 ms poll
    let t = npm.token().unwrap();
    poll("the lock to reach the server", || {
        (reg.http().with_token(&t).get("/-/whoami").status == 401).then_some(())
    });
    assert!(npm.run(&["whoami"]).fails().contains("E401"));
    let r = reg.http().put_json(
        "/-/user/org.couchdb.user:judy",
        &serde_json::json!({"name": "judy", "password": "judy-password"}),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        reg.admin(&["user", "unlock", "judy"], None)
            .status
            .success()
    );
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "judy");
}

#[test]
fn signup_input_is_validated() {
    let reg = Registry::start();
    let http = reg.http();
    let cases = [
        ("Upper", "password-1", "u@example.com", "lowercase"),
        ("ok-name", "short", "u@example.com", "at least 8"),
        ("ok-name", "password-1", "not-an-email", "email"),
    ];
    for (name, pw, email, needle) in cases {
        let r = http.put_json(
            &format!("/-/user/org.couchdb.user:{name}"),
            &serde_json::json!({"name": name, "password": pw, "email": email}),
        );
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert!(
            r.error().to_lowercase().contains(&needle.to_lowercase()),
            "{}",
            r.text
        );
    }
    let r = http.send(
        "PUT",
        "/-/user/org.couchdb.user:x",
        &[("content-type", "application/json")],
        Some(b"{not json".to_vec()),
    );
    assert_eq!(r.status, 400);
    assert!(r.error().contains("Malformed JSON"));
    let r = http.put_json(
        "/-/user/org.couchdb.user:x",
        &serde_json::json!({"name": "y", "password": "password-1"}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        reg.admin(&["user", "list"], None).stdout.len(),
        0,
        "nothing was created"
    );
}

#[test]
fn ping_and_web_login_fallback_answers() {
    let reg = Registry::start();
    assert_eq!(reg.http().get("/-/ping").status, 200);
    assert_eq!(reg.http().get("/-/ping?write=true").status, 200);
    // npm's browser login: two absolute URLs, the poll pending until the browser approves
    let r = reg.http().post_json("/-/v1/login", &serde_json::json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let login_url = r.json()["loginUrl"].as_str().unwrap().to_owned();
    let done_url = r.json()["doneUrl"].as_str().unwrap().to_owned();
    assert!(
        login_url.starts_with(&format!("{}-/web/cli-login/", reg.url())),
        "{login_url}"
    );
    let done_path = done_url
        .strip_prefix(&format!("http://{}", reg.addr))
        .unwrap()
        .to_owned();
    let poll = reg.http().get(&done_path);
    assert_eq!((poll.status, poll.header("retry-after")), (202, Some("1")));
    assert_eq!(poll.json(), serde_json::json!({}));
    assert_eq!(reg.http().get("/-/v1/done/not-a-real-id").status, 404);
    let off = Registry::start_with(&[("TESSERA_WEB__BROWSER_LOGIN", "false")]);
    assert_eq!(
        off.http()
            .post_json("/-/v1/login", &serde_json::json!({}))
            .status,
        404
    );
    let out = reg.npm().run(&["ping"]);
    assert!(out.all().contains("PONG"), "{}", out.all());
}

/// `tessera serve --config FILE` reads the TOML file (the flag is part of the contract).
#[test]
fn serve_reads_a_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "signup = \"closed\"\n\n[tfa]\nissuer = \"Acme npm\"\n",
    )
    .unwrap();
    let reg = Registry::start_with_args(&["--config", file.to_str().unwrap()]);
    let npm = reg.npm();
    let (out, code) = adduser(&reg, &npm, "hana", "hana-password", "hana@example.com");
    assert_ne!(code, 0);
    assert!(out.contains("Sign-up is closed"), "{out}");
    let out = reg.admin(
        &[
            "user",
            "add",
            "hana",
            "--email",
            "hana@example.com",
            "--password-stdin",
        ],
        Some("hana-password\n"),
    );
    assert!(out.status.success());
    let r = reg.http().put_json(
        "/-/user/org.couchdb.user:hana",
        &serde_json::json!({"name": "hana", "password": "hana-password"}),
    );
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let r = reg.http().with_token(&token).post_json(
        "/-/npm/v1/user",
        &serde_json::json!({"tfa": {"password": "hana-password", "mode": "auth-only"}}),
    );
    let url = r.json()["tfa"].as_str().unwrap().to_owned();
    assert!(url.starts_with("otpauth://totp/Acme%20npm:hana?"), "{url}");
    assert!(url.contains("issuer=Acme%20npm"), "{url}");
}
