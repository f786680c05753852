//! `npm token …` and `npm profile …` with the real npm CLI.

mod common;

use common::*;
use serde_json::{Value, json};

#[test]
fn token_create_list_revoke() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let out = alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--name",
        "ci",
        "--token-description",
        "for ci",
        "--expires",
        "30",
    ]);
    let text = out.ok().to_owned();
    assert!(text.contains("Created token tsr_"), "{}", out.all());
    assert!(text.contains("expires"), "{text}");
    let new_token = text
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    let me = reg.http().with_token(&new_token).get("/-/whoami");
    assert_eq!(me.json()["username"], "alice");

    let list = alice.run(&["token", "list", "--json"]);
    let tokens: Value = serde_json::from_str(list.ok()).unwrap();
    let tokens = tokens.as_array().unwrap();
    assert_eq!(
        tokens.len(),
        1,
        "the new one (the login is a session, not listed)"
    );
    let ci = tokens
        .iter()
        .find(|t| t["token_name"] == "ci")
        .expect("named token listed");
    assert_eq!(ci["description"], "for ci");
    assert!(
        new_token.starts_with(ci["token"].as_str().unwrap()),
        "the shown prefix is a true prefix"
    );
    assert!(ci["expires"].is_string());
    assert!(
        !list.stdout.contains(&new_token),
        "the full value is never listed"
    );

    // revoke by id (a key prefix) …
    let id = &ci["key"].as_str().unwrap()[..8];
    let out = alice.run(&["token", "revoke", id]);
    assert!(out.ok().contains("Removed 1 token"), "{}", out.all());
    assert_eq!(
        reg.http().with_token(&new_token).get("/-/whoami").status,
        401
    );

    // … and by the full token value
    let out = alice.run(&["token", "create", "--password", "alice-password"]);
    let second = out
        .ok()
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    let out = alice.run(&["token", "revoke", &second]);
    assert!(out.ok().contains("Removed 1 token"), "{}", out.all());
    assert_eq!(reg.http().with_token(&second).get("/-/whoami").status, 401);

    // a wrong password creates nothing
    let out = alice.run(&["token", "create", "--password", "wrong-password"]);
    assert!(out.fails().contains("Incorrect password"), "{}", out.all());
    let n = serde_json::from_str::<Value>(alice.run(&["token", "list", "--json"]).ok()).unwrap();
    assert_eq!(n.as_array().unwrap().len(), 0, "{n}");
    // another user's token cannot be revoked
    let bob = reg.npm_as("bob");
    bob.run(&["token", "create", "--password", "bob-password"])
        .ok();
    let bob_key = reg
        .http()
        .with_token(&bob.token().unwrap())
        .get("/-/npm/v1/tokens")
        .json()["objects"][0]["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reg
        .http()
        .with_token(&alice.token().unwrap())
        .delete(&format!("/-/npm/v1/tokens/token/{bob_key}"));
    assert_eq!(r.status, 404);
    assert_eq!(bob.run(&["whoami"]).ok().trim(), "bob");
}

#[test]
fn classic_token_bodies_and_read_only_tokens() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let t = alice.token().unwrap();
    let r = reg.http().with_token(&t).post_json(
        "/-/npm/v1/tokens",
        &json!({"password": "alice-password", "readonly": true, "cidr_whitelist": []}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let ro = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["readonly"], true);
    // the read-only token reads but refuses writes, with a message npm shows
    alice.publish("demo-pkg", "1.0.0", &[]).ok();
    let reader = reg.npm();
    reader.set_token(&reg.addr, &ro);
    assert_eq!(reader.run(&["whoami"]).ok().trim(), "alice");
    reader.run(&["view", "demo-pkg", "version"]).ok();
    let out = reader.publish("demo-pkg", "1.0.1", &[]);
    assert!(out.fails().contains("read-only"), "{}", out.all());
    assert!(
        reader
            .run(&["dist-tag", "add", "demo-pkg@1.0.0", "extra"])
            .fails()
            .contains("read-only")
    );
    assert_eq!(
        reg.http().get("/demo-pkg").json()["versions"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
    // npm 11's granular read-only token, created by the CLI
    let out = alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--packages-and-scopes-permission",
        "read-only",
        "--packages",
        "demo-pkg",
    ]);
    let granular = out
        .ok()
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    reader.set_token(&reg.addr, &granular);
    assert!(
        reader
            .publish("demo-pkg", "1.0.2", &[])
            .fails()
            .contains("read-only")
    );
    let listed = reg.http().with_token(&t).get("/-/npm/v1/tokens").json();
    let g = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "granular")
        .unwrap()
        .clone();
    assert_eq!(g["packages"], json!(["demo-pkg"]));
    assert_eq!(g["packages_and_scopes_permission"], "read-only");
}

#[test]
fn cidr_whitelists_are_enforced() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let out = alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--cidr",
        "10.0.0.0/8",
    ]);
    let text = out.ok().to_owned();
    assert!(text.contains("10.0.0.0/8"), "{text}");
    let outside = text
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    let out = alice.run(&[
        "token",
        "create",
        "--password",
        "alice-password",
        "--cidr",
        "127.0.0.0/8",
    ]);
    let inside = out
        .ok()
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap()
        .to_owned();
    let user = reg.npm();
    user.set_token(&reg.addr, &outside);
    let out = user.run(&["whoami"]).fails();
    assert!(
        out.contains("EAUTHIP") || out.contains("IP address"),
        "{out}"
    );
    let r = reg.http().with_token(&outside).get("/-/whoami");
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("ipaddress"))
    );
    user.set_token(&reg.addr, &inside);
    assert_eq!(user.run(&["whoami"]).ok().trim(), "alice");
    // invalid ranges are refused
    let r = reg.http().with_token(&inside).post_json(
        "/-/npm/v1/tokens",
        &json!({"password": "alice-password", "cidr_whitelist": ["999.1.1.1/8"]}),
    );
    assert_eq!(r.status, 400);
}

#[test]
fn profile_get_and_set() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let get = alice.run(&["profile", "get"]);
    let text = get.ok();
    assert!(text.contains("name: alice"), "{text}");
    assert!(text.contains("email: alice@example.com"), "{text}");
    assert!(text.contains("two-factor auth: disabled"), "{text}");
    for (prop, value) in [
        ("fullname", "Alice Liddell"),
        ("homepage", "https://alice.example.com"),
        ("github", "alice"),
        ("twitter", "alice"),
        ("freenode", "alice"),
    ] {
        let out = alice.run(&["profile", "set", prop, value]);
        assert!(
            out.ok().contains(&format!("Set {prop} to {value}")),
            "{}",
            out.all()
        );
    }
    let out = alice.run(&["profile", "set", "email", "alice@wonderland.example"]);
    out.ok();
    let p: Value = serde_json::from_str(alice.run(&["profile", "get", "--json"]).ok()).unwrap();
    assert_eq!(p["fullname"], "Alice Liddell");
    assert_eq!(p["email"], "alice@wonderland.example");
    assert_eq!(p["email_verified"], false);
    assert_eq!(p["homepage"], "https://alice.example.com");
    // clearing a field
    alice.run(&["profile", "set", "twitter", ""]).ok();
    let p: Value = serde_json::from_str(alice.run(&["profile", "get", "--json"]).ok()).unwrap();
    assert_eq!(p["twitter"], "");
    // bad input changes nothing
    let out = alice.run(&["profile", "set", "email", "not-an-email"]);
    assert!(
        out.fails().contains("Email must be an email address"),
        "{}",
        out.all()
    );
    let p: Value = serde_json::from_str(alice.run(&["profile", "get", "--json"]).ok()).unwrap();
    assert_eq!(p["email"], "alice@wonderland.example");
}

#[test]
fn password_change_needs_the_old_password() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let mut p = alice.pty(alice.root(), &["profile", "set", "password"]);
    p.expect("Current password:").send("wrong-password");
    p.expect("New password:").send("new-password-1");
    p.expect("Again:").send("new-password-1");
    let (out, code) = p.finish();
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("current password is incorrect"), "{out}");

    let mut p = alice.pty(alice.root(), &["profile", "set", "password"]);
    p.expect("Current password:").send("alice-password");
    p.expect("New password:").send("new-password-1");
    p.expect("Again:").send("new-password-1");
    let (out, code) = p.finish();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Set password"), "{out}");
    let login = |pw: &str| {
        reg.http()
            .put_json(
                "/-/user/org.couchdb.user:alice",
                &json!({"name": "alice", "password": pw}),
            )
            .status
    };
    assert_eq!(login("alice-password"), 401);
    assert_eq!(login("new-password-1"), 201);
    // too short
    let t = alice.token().unwrap();
    let r = reg.http().with_token(&t).post_json(
        "/-/npm/v1/user",
        &json!({"password": {"old": "new-password-1", "new": "short"}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(login("new-password-1"), 201);
}

/// npm ≤ 10 creates classic tokens with `{password, readonly, cidr_whitelist}`.
#[test]
fn npm_10_creates_classic_tokens() {
    let npm10 = ensure_npm(10);
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let cmd = alice.command_of(
        &npm10,
        alice.root(),
        &["token", "create", "--read-only", "--cidr=127.0.0.1/32"],
    );
    let mut p = rexpect::session::spawn_with_options(
        cmd,
        rexpect::reader::Options::new()
            .timeout_ms(Some(60_000))
            .strip_ansi_escape_codes(true),
    )
    .unwrap();
    p.exp_string("npm password:").unwrap();
    p.send_line("alice-password").unwrap();
    let out = p.exp_eof().unwrap();
    let value = out
        .split_whitespace()
        .find(|w| w.starts_with("tsr_"))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_owned();
    assert!(out.contains("127.0.0.1/32"), "{out}");
    let listed = reg
        .http()
        .with_token(&alice.token().unwrap())
        .get("/-/npm/v1/tokens")
        .json();
    let t = listed["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["readonly"] == true)
        .unwrap_or_else(|| panic!("{listed}"))
        .clone();
    assert_eq!(t["type"], "read-only");
    assert_eq!(t["cidr_whitelist"], json!(["127.0.0.1/32"]));
    // it reads, and refuses writes
    let ro = reg.http().with_token(&value);
    assert_eq!(ro.get("/-/whoami").json()["username"], "alice");
    alice.publish("demo", "1.0.0", &[]).ok();
    let r = ro.put_json("/-/package/demo/dist-tags/stable", &json!("1.0.0"));
    assert_eq!(r.status, 403, "{}", r.text);
}
