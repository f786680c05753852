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
    // each login minted its own token
    let t = reg.npm_as("erin");
    let list = reg
        .http()
        .with_token(&t.token().unwrap())
        .get("/-/npm/v1/tokens")
        .json();
    assert_eq!(list["total"], 1);
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

#[test]
fn invitation_signup() {
    let reg = Registry::start_with(&[("TESSERA_SIGNUP", "invitation")]);
    let out = reg.admin(&["invite", "hank", "hank@example.com"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // the wrong email is not invited
    let npm = reg.npm();
    let (out, code) = adduser(&reg, &npm, "hank", "hank-password", "other@example.com");
    assert_ne!(code, 0);
    assert!(out.contains("by invitation"), "{out}");
    let (out, code) = adduser(&reg, &npm, "hank", "hank-password", "hank@example.com");
    assert_eq!(code, 0, "{out}");
    assert_eq!(npm.run(&["whoami"]).ok().trim(), "hank");
    // an invitation works once
    let r = reg.http().put_json(
        "/-/user/org.couchdb.user:ivan",
        &serde_json::json!({"name": "ivan", "password": "ivan-password", "email": "hank@example.com"}),
    );
    assert_eq!(r.status, 403);
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
