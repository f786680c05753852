//! Staged publishing with the stock `npm stage`: a version is uploaded without a second factor
//! (by a maintainer, a token or a CI identity) and waits until a maintainer approves it with
//! one, or rejects it. Packages can require it of tokens and CI, or refuse tokens altogether.

mod common;

use common::issuer::{Issuer, github_claims};
use common::*;
use serde_json::{Value, json};

/// The audience npm asks its CI for: `npm:<registry host>`.
const AUD: &str = "npm:127.0.0.1";

/// A fresh one-time password for `secret`: each in a step nobody used before.
fn code(reg: &Registry, secret: &str) -> String {
    reg.advance(30);
    reg.otp(secret, 0)
}

/// The stage id in `npm stage publish`'s output (`+ name@1.0.0 (staged with id <uuid>)`).
fn stage_id(out: &str) -> String {
    let at = out
        .find("staged with id ")
        .unwrap_or_else(|| panic!("no stage id in: {out}"));
    out[at + "staged with id ".len()..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit() || *c == '-')
        .collect()
}

/// `npm stage publish` in a fresh copy of `name@version`.
fn stage(npm: &Npm, name: &str, version: &str, args: &[&str]) -> Run {
    let dir = npm.package(name, version, Value::Null);
    let mut all = vec!["stage", "publish"];
    all.extend_from_slice(args);
    npm.run_in(&dir, &all)
}

/// `npm publish` of `name@version` with a fresh code.
fn publish_2fa(npm: &Npm, reg: &Registry, secret: &str, name: &str, version: &str) {
    npm.publish(name, version, &[&format!("--otp={}", code(reg, secret))])
        .ok();
}

/// `npm stage approve|reject <id> --otp=<a fresh code>`.
fn decide(npm: &Npm, reg: &Registry, secret: &str, verb: &str, id: &str) -> Run {
    npm.run(&["stage", verb, id, &format!("--otp={}", code(reg, secret))])
}

fn versions(reg: &Registry, name: &str) -> Vec<String> {
    let doc = reg.http().get(&format!("/{name}")).json();
    let mut v: Vec<String> = doc["versions"]
        .as_object()
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn security_log(reg: &Registry, name: &str) -> String {
    let out = reg.admin(&["security-log", name], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An npm client whose only credential is `token`.
fn client(reg: &Registry, token: &str) -> Npm {
    let npm = reg.npm();
    npm.set_token(&reg.addr, token);
    npm
}

/// Makes a token for `alice` with the body's settings (an OTP from `secret`).
fn make_token(reg: &Registry, login: &str, secret: &str, body: Value) -> String {
    let r = reg.http().with_token(login).send(
        "POST",
        "/-/npm/v1/tokens",
        &[
            ("content-type", "application/json"),
            ("npm-otp", &code(reg, secret)),
        ],
        Some(serde_json::to_vec(&body).unwrap()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()["token"].as_str().unwrap().to_owned()
}

/// Sets the package's publishing rules as its maintainer (`POST /-/package/:pkg/access`).
fn set_rules(reg: &Registry, login: &str, secret: &str, pkg: &str, body: Value) -> Resp {
    reg.http().with_token(login).send(
        "POST",
        &format!("/-/package/{pkg}/access"),
        &[
            ("content-type", "application/json"),
            ("npm-otp", &code(reg, secret)),
        ],
        Some(serde_json::to_vec(&body).unwrap()),
    )
}

#[test]
fn a_maintainer_stages_then_approves_or_rejects_with_a_second_factor() {
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    let login = alice.token().unwrap();
    let (secret, _) = reg.enable_2fa(&login, "alice-password", "auth-and-writes");
    publish_2fa(&alice, &reg, &secret, "widget", "1.0.0");

    // staging asks no second factor, even in auth-and-writes mode
    let out = stage(&alice, "widget", "1.1.0", &[]);
    let staged = out.ok().to_owned();
    assert!(
        staged.contains("+ widget@1.1.0 (staged with id "),
        "{}",
        out.all()
    );
    let id = stage_id(&staged);
    assert_eq!(versions(&reg, "widget"), ["1.0.0"], "nothing published yet");

    // the number is held: neither a publish nor another stage can take it
    let out = alice.publish(
        "widget",
        "1.1.0",
        &[&format!("--otp={}", code(&reg, &secret))],
    );
    assert!(out.fails().contains("cannot publish over"), "{}", out.all());
    let out = stage(&alice, "widget", "1.1.0", &[]);
    assert!(
        out.fails().contains("staged versions: 1.1.0"),
        "{}",
        out.all()
    );

    // list, view and download, as npm shows them
    let out = alice.run(&["stage", "list"]);
    let listed = out.ok();
    assert!(listed.contains(&id), "{listed}");
    assert!(listed.contains("widget"), "{listed}");
    assert!(listed.contains("alice (user)"), "{listed}");
    let json: Value = serde_json::from_str(alice.run(&["stage", "list", "--json"]).ok()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json[0]["packageName"], "widget");
    assert_eq!(json[0]["version"], "1.1.0");
    assert_eq!(json[0]["tag"], "latest");
    let out = alice.run(&["stage", "list", "other-package"]);
    assert!(
        out.ok()
            .contains("No staged versions of package name \"other-package\""),
        "{}",
        out.all()
    );
    let view: Value =
        serde_json::from_str(alice.run(&["stage", "view", &id, "--json"]).ok()).unwrap();
    assert_eq!(view["id"], id.as_str());
    assert_eq!(view["actorType"], "user");
    let out = alice.run(&["stage", "download", &id]);
    let file = alice.root().join(format!("widget-1.1.0-{id}.tgz"));
    assert!(file.exists(), "{}", out.all());
    let fetched = reg
        .http()
        .with_token(&login)
        .get(&format!("/-/stage/{id}/tarball"));
    assert_eq!(fetched.bytes, std::fs::read(&file).unwrap());

    // nobody else sees it: another account, or no account at all
    let bob = reg.npm_as("bob");
    assert!(
        bob.run(&["stage", "list"])
            .ok()
            .contains("No staged packages found")
    );
    let out = bob.run(&["stage", "view", &id]);
    assert!(out.fails().contains("404"), "{}", out.all());
    assert_eq!(reg.http().get(&format!("/-/stage/{id}")).status, 401);
    let out = bob.run(&["stage", "approve", &id, "--otp=123456"]);
    assert!(out.fails().contains("404"), "{}", out.all());

    // approving asks the second factor: npm prompts for it at a terminal
    let out = alice.run(&["stage", "approve", &id]);
    assert!(out.fails().contains("EOTP"), "{}", out.all());
    let mut p = alice.pty(alice.root(), &["stage", "approve", &id]);
    p.expect("Enter OTP:");
    p.send(&code(&reg, &secret));
    let (out, status) = p.finish();
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("approved and published successfully"), "{out}");
    let doc = reg.http().get("/widget").json();
    assert_eq!(doc["dist-tags"]["latest"], "1.1.0", "{doc}");
    assert_eq!(
        doc["versions"]["1.1.0"]["_npmUser"]["name"], "alice",
        "{doc}"
    );
    assert_eq!(
        reg.http()
            .get(
                &doc["versions"]["1.1.0"]["dist"]["tarball"]
                    .as_str()
                    .unwrap()[reg.url().trim_end_matches('/').len()..]
            )
            .bytes,
        std::fs::read(&file).unwrap(),
        "the approved tarball is the staged one"
    );
    // approved once: gone from the stage
    let out = decide(&alice, &reg, &secret, "approve", &id);
    assert!(out.fails().contains("404"), "{}", out.all());
    assert!(
        alice
            .run(&["stage", "list"])
            .ok()
            .contains("No staged packages found")
    );

    // a rejected version is gone, and its number free again
    let out = stage(&alice, "widget", "1.2.0", &["--tag", "next"]);
    let id = stage_id(out.ok());
    let out = decide(&alice, &reg, &secret, "reject", &id);
    assert!(out.ok().contains("has been rejected"), "{}", out.all());
    assert_eq!(
        reg.http()
            .with_token(&login)
            .get(&format!("/-/stage/{id}"))
            .status,
        404
    );
    assert_eq!(versions(&reg, "widget"), ["1.0.0", "1.1.0"]);
    publish_2fa(&alice, &reg, &secret, "widget", "1.2.0");

    // a new package can be staged too: it exists once approved, with its stager's approval
    let out = stage(&alice, "brand-new", "0.1.0", &[]);
    let id = stage_id(out.ok());
    assert_eq!(reg.http().get("/brand-new").status, 404);
    let out = bob.run(&["stage", "view", &id]);
    assert!(out.fails().contains("404"), "{}", out.all());
    decide(&alice, &reg, &secret, "approve", &id).ok();
    assert_eq!(versions(&reg, "brand-new"), ["0.1.0"]);

    // another account's stage of a free name neither holds the number nor outlives the name
    // being taken: it is not theirs to release into someone else's package
    let id = stage_id(stage(&bob, "contested", "1.0.0", &[]).ok());
    publish_2fa(&alice, &reg, &secret, "contested", "1.0.0");
    let out = bob.run(&["stage", "view", &id]);
    assert!(out.fails().contains("404"), "{}", out.all());
    assert_eq!(reg.count_rows("staged_versions"), 0);

    let log = security_log(&reg, "alice");
    for kind in [
        "version_staged",
        "staged_version_approved",
        "staged_version_rejected",
    ] {
        assert!(log.contains(kind), "{kind}: {log}");
    }
}

#[test]
fn approving_needs_2fa_and_a_person() {
    let reg = Registry::start();
    let carol = reg.npm_as("carol");
    carol.publish("plain", "1.0.0", &[]).ok();
    // without 2FA, staging works but nobody can approve: that is what staging is for
    let id = stage_id(stage(&carol, "plain", "1.0.1", &[]).ok());
    let out = carol.run(&["stage", "approve", &id]);
    assert!(
        out.fails().contains("two-factor authentication"),
        "{}",
        out.all()
    );
    assert_eq!(versions(&reg, "plain"), ["1.0.0"]);

    // with 2FA: a bypass token stages but cannot approve; the login approves
    let login = carol.token().unwrap();
    let (secret, _) = reg.enable_2fa(&login, "carol-password", "auth-only");
    let bypass = make_token(
        &reg,
        &login,
        &secret,
        json!({"password": "carol-password", "name": "ci", "bypass_2fa": true}),
    );
    let ci = client(&reg, &bypass);
    let out = stage(&ci, "plain", "1.0.2", &[]);
    let second = stage_id(out.ok());
    let listed: Value = serde_json::from_str(ci.run(&["stage", "list", "--json"]).ok()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let view: Value =
        serde_json::from_str(ci.run(&["stage", "view", &second, "--json"]).ok()).unwrap();
    assert_eq!(view["actorType"], "token", "{view}");
    for (id, verb) in [(&id, "approve"), (&second, "reject")] {
        let out = decide(&ci, &reg, &secret, verb, id);
        assert!(
            out.fails().contains("Automation and 2FA-bypass tokens"),
            "{verb}: {}",
            out.all()
        );
    }
    // a wrong code approves nothing
    let out = carol.run(&["stage", "approve", &second, "--otp=000000"]);
    assert_ne!(out.code, 0, "{}", out.all());
    assert_eq!(versions(&reg, "plain"), ["1.0.0"]);
    for id in [&id, &second] {
        decide(&carol, &reg, &secret, "approve", id).ok();
    }
    assert_eq!(versions(&reg, "plain"), ["1.0.0", "1.0.1", "1.0.2"]);

    // bad ids: npm checks the shape; the registry answers 404 to anything unknown
    let r = reg.http().with_token(&login).get("/-/stage/not-a-uuid");
    assert_eq!(r.status, 404, "{}", r.text);
    let r = reg
        .http()
        .with_token(&login)
        .get("/-/stage/00000000-0000-4000-8000-000000000000/tarball");
    assert_eq!(r.status, 404, "{}", r.text);
    let r = reg
        .http()
        .with_token(&login)
        .get("/-/stage?perPage=0&page=-3");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["total"], 0);
    // a malformed upload stages nothing
    let r = reg.http().with_token(&bypass).send(
        "POST",
        "/-/stage/package/plain",
        &[("content-type", "application/json")],
        Some(b"{\"versions\": 3}".to_vec()),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    let body = publish_body(&reg.url(), "plain", "2.0.0", b"not a tarball");
    let r = reg.http().with_token(&bypass).send(
        "POST",
        "/-/stage/package/plain",
        &[("content-type", "application/json")],
        Some(serde_json::to_vec(&body).unwrap()),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(reg.count_rows("staged_versions"), 0);
}

#[test]
fn packages_can_require_staging_or_refuse_tokens() {
    let issuer = Issuer::start();
    let issuers = format!("[{{issuer = \"{}\", kind = \"github\"}}]", issuer.url);
    let reg = Registry::start_with(&[("TESSERA_OIDC__ISSUERS", &issuers)]);
    let alice = reg.npm_as("alice");
    let login = alice.token().unwrap();
    let (secret, _) = reg.enable_2fa(&login, "alice-password", "auth-and-writes");
    publish_2fa(&alice, &reg, &secret, "gizmo", "1.0.0");

    // a trusted publisher that may only stage: CI stages, its direct publish is refused
    let out = alice.run(&[
        "trust",
        "github",
        "gizmo",
        "--repository",
        "acme/gizmo",
        "--file",
        "release.yml",
        "--allow-stage-publish",
        "--yes",
        &format!("--otp={}", code(&reg, &secret)),
    ]);
    assert!(out.ok().contains("created successfully"), "{}", out.all());
    let ci = Npm::new(&reg.url());
    let ci_run = |version: &str, args: &[&str]| {
        let dir = ci.package("gizmo", version, Value::Null);
        let mut cmd = ci.command(&dir, args);
        let id_token = issuer.token(
            reg.now_secs(),
            github_claims(AUD, "acme/gizmo", "release.yml"),
        );
        cmd.env("CI", "true")
            .env("GITHUB_ACTIONS", "true")
            .env("NPM_ID_TOKEN", id_token);
        Run::of(cmd)
    };
    let out = ci_run("1.1.0", &["publish"]);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(out.all().contains("must be staged"), "{}", out.all());
    let out = ci_run("1.1.0", &["stage", "publish"]);
    let id = stage_id(out.ok());
    let view: Value =
        serde_json::from_str(alice.run(&["stage", "view", &id, "--json"]).ok()).unwrap();
    assert_eq!(view["actorType"], "oidc", "{view}");
    assert!(
        view["actor"].as_str().unwrap().contains("acme/gizmo"),
        "{view}"
    );
    decide(&alice, &reg, &secret, "approve", &id).ok();
    assert_eq!(versions(&reg, "gizmo"), ["1.0.0", "1.1.0"]);

    // the package requires staging of every token
    let automation = make_token(
        &reg,
        &login,
        &secret,
        json!({"password": "alice-password", "type": "automation"}),
    );
    let bot = client(&reg, &automation);
    bot.publish("gizmo", "1.2.0", &[]).ok();
    let r = set_rules(
        &reg,
        &login,
        &secret,
        "gizmo",
        json!({"staged_publishes": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = reg.http().get("/-/package/gizmo/access");
    assert_eq!(r.json()["staged_publishes"], true, "{}", r.text);
    let out = bot.publish("gizmo", "1.3.0", &[]);
    assert!(out.fails().contains("must be staged"), "{}", out.all());
    let id = stage_id(stage(&bot, "gizmo", "1.3.0", &[]).ok());
    // a person publishes directly, with the second factor
    alice
        .publish(
            "gizmo",
            "1.4.0",
            &["--tag", "next", &format!("--otp={}", code(&reg, &secret))],
        )
        .ok();
    decide(&alice, &reg, &secret, "approve", &id).ok();
    assert_eq!(
        versions(&reg, "gizmo"),
        ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"]
    );

    // npm's "require 2FA and disallow tokens": only with mfa=publish, checked before the code
    let r = set_rules(
        &reg,
        &login,
        &secret,
        "gizmo",
        json!({"tokens_refused": true}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("mfa=publish"), "{}", r.text);
    alice
        .run(&[
            "access",
            "set",
            "mfa=publish",
            "gizmo",
            &format!("--otp={}", code(&reg, &secret)),
        ])
        .ok();
    let r = set_rules(
        &reg,
        &login,
        &secret,
        "gizmo",
        json!({"tokens_refused": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let out = stage(&bot, "gizmo", "1.5.0", &[]);
    assert!(out.fails().contains("refuses tokens"), "{}", out.all());
    let granular = make_token(
        &reg,
        &login,
        &secret,
        json!({"password": "alice-password", "name": "rw", "packages": ["gizmo"], "packages_and_scopes_permission": "read-write"}),
    );
    let out = client(&reg, &granular).publish(
        "gizmo",
        "1.5.0",
        &[&format!("--otp={}", code(&reg, &secret))],
    );
    assert!(out.fails().contains("refuses tokens"), "{}", out.all());
    // trusted publishing still stages, and the login still publishes with its code
    let id = stage_id(ci_run("1.5.0", &["stage", "publish"]).ok());
    decide(&alice, &reg, &secret, "approve", &id).ok();
    publish_2fa(&alice, &reg, &secret, "gizmo", "1.6.0");
    // npm access set mfa=automation ends the refusal
    alice
        .run(&[
            "access",
            "set",
            "mfa=automation",
            "gizmo",
            &format!("--otp={}", code(&reg, &secret)),
        ])
        .ok();
    let access = reg.http().get("/-/package/gizmo/access").json();
    assert_eq!(access["tokens_refused"], false, "{access}");
    assert_eq!(access["mfa"], "automation", "{access}");
    let page = reg.http().get("/-/web/package/gizmo").text;
    assert!(page.contains("id=\"staging\""), "{page}");
}
