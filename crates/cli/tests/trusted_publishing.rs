//! Trusted publishing (OIDC): a maintainer with 2FA configures a CI identity with the stock
//! `npm trust`, and a CI job publishes with `npm publish` alone, its identity token exchanged for
//! a short-lived token that can publish nothing else. The CI identity provider is a stand-in on
//! a loopback port (its keys made with openssl, served as JWKS); npm runs as on GitHub Actions
//! (`GITHUB_ACTIONS`, `NPM_ID_TOKEN`).

mod common;

use common::issuer::{Issuer, github_claims};
use common::*;
use serde_json::json;

fn start(issuer: &Issuer) -> Registry {
    let issuers = format!("[{{issuer = \"{}\", kind = \"github\"}}]", issuer.url);
    Registry::start_with(&[("TESSERA_OIDC__ISSUERS", &issuers)])
}

/// The audience npm asks its CI for: `npm:<registry host>`.
const AUD: &str = "npm:127.0.0.1";

/// `npm publish` in `dir` as a GitHub Actions job whose identity token is `id_token`, with no
/// token of its own.
fn ci_publish(npm: &Npm, dir: &std::path::Path, id_token: &str) -> Run {
    let mut cmd = npm.command(dir, &["publish", "--loglevel=verbose"]);
    cmd.env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env("NPM_ID_TOKEN", id_token);
    Run::of(cmd)
}

/// `npm publish` in `dir` as a GitHub Actions job that may ask GitHub for identity tokens
/// (`ACTIONS_ID_TOKEN_REQUEST_URL`, here the stand-in issuer's `/token`).
fn github_job_publish(npm: &Npm, dir: &std::path::Path, issuer: &Issuer) -> Run {
    let mut cmd = npm.command(dir, &["publish", "--loglevel=verbose"]);
    cmd.env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            format!("{}/token?api-version=2.0", issuer.url),
        )
        .env(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            common::issuer::REQUEST_TOKEN,
        )
        .env_remove("NPM_ID_TOKEN");
    Run::of(cmd)
}

fn exchange(reg: &Registry, pkg: &str, id_token: &str) -> Resp {
    reg.http().send(
        "POST",
        &format!("/-/npm/v1/oidc/token/exchange/package/{pkg}"),
        &[("authorization", &format!("Bearer {id_token}"))],
        None,
    )
}

fn security_log(reg: &Registry, name: &str) -> String {
    let out = reg.admin(&["security-log", name], None);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_ci_job_publishes_with_its_identity_through_npm_trust() {
    let issuer = Issuer::start();
    let reg = start(&issuer);
    let alice = reg.npm_as("alice");
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-and-writes");
    let code = |n: i64| {
        reg.advance(30);
        let _ = n;
        reg.otp(&secret, 0)
    };
    alice
        .publish("ci-widget", "1.0.0", &[&format!("--otp={}", code(0))])
        .ok();
    // the maintainer configures the repository's workflow with the stock npm trust
    let out = alice.run(&[
        "trust",
        "github",
        "ci-widget",
        "--repository",
        "acme/widgets",
        "--file",
        "publish.yml",
        "--allow-publish",
        "--yes",
        &format!("--otp={}", code(1)),
    ]);
    assert!(
        out.ok()
            .contains("Trust configuration created successfully"),
        "{}",
        out.all()
    );
    let listed = alice.run(&[
        "trust",
        "list",
        "ci-widget",
        "--json",
        &format!("--otp={}", code(2)),
    ]);
    let listed = listed.ok().to_owned();
    assert!(listed.contains("acme/widgets"), "{listed}");
    assert!(listed.contains("publish.yml"), "{listed}");

    // CI: npm publish with nothing but its identity
    let ci = Npm::new(&reg.url());
    let dir = ci.package("ci-widget", "1.0.1", serde_json::Value::Null);
    let id_token = issuer.token(
        reg.now_secs(),
        github_claims(AUD, "acme/widgets", "publish.yml"),
    );
    let out = ci_publish(&ci, &dir, &id_token);
    assert!(out.ok().contains("+ ci-widget@1.0.1"), "{}", out.all());
    let doc = reg.http().get("/ci-widget").json();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.1", "{doc}");
    // as on GitHub: npm asks the job's token endpoint for a token for this registry
    issuer.hand_out(issuer.token(
        reg.now_secs(),
        github_claims(AUD, "acme/widgets", "publish.yml"),
    ));
    let dir = ci.package("ci-widget", "1.0.3", serde_json::Value::Null);
    let out = github_job_publish(&ci, &dir, &issuer);
    assert!(out.ok().contains("+ ci-widget@1.0.3"), "{}", out.all());
    assert_eq!(
        issuer.requests(),
        ["api-version=2.0&audience=npm%3A127.0.0.1"],
        "the audience npm asked for"
    );
    // the same identity token again: refused, and npm has nothing else to publish with
    let dir = ci.package("ci-widget", "1.0.2", serde_json::Value::Null);
    let out = ci_publish(&ci, &dir, &id_token);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(reg.http().get("/ci-widget").json()["versions"]["1.0.2"].is_null());
    let r = exchange(&reg, "ci-widget", &id_token);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("already exchanged"), "{}", r.text);
    let log = security_log(&reg, "alice");
    assert!(log.contains("oidc_exchange"), "{log}");
    assert!(log.contains("trusted_publisher_added"), "{log}");

    // revoked with npm trust revoke: the next exchange is refused
    let listed: serde_json::Value = serde_json::from_str(
        alice
            .run(&[
                "trust",
                "list",
                "ci-widget",
                "--json",
                &format!("--otp={}", code(3)),
            ])
            .ok(),
    )
    .unwrap_or_else(|e| panic!("{e}: {listed}"));
    let id = listed
        .as_array()
        .map(|a| a[0]["id"].clone())
        .unwrap_or_else(|| listed["id"].clone());
    let id = id.as_str().unwrap().to_owned();
    alice
        .run(&[
            "trust",
            "revoke",
            "ci-widget",
            "--id",
            &id,
            &format!("--otp={}", code(4)),
        ])
        .ok();
    let fresh = issuer.token(
        reg.now_secs(),
        github_claims(AUD, "acme/widgets", "publish.yml"),
    );
    let r = exchange(&reg, "ci-widget", &fresh);
    assert_eq!(r.status, 404, "{}", r.text);
}

/// Identity tokens that must not be exchanged, each refused with its reason and nothing minted;
/// a good one gets a token that publishes its package and nothing else.
#[test]
fn identities_are_checked_and_their_tokens_only_publish() {
    let issuer = Issuer::start();
    let reg = start(&issuer);
    let alice = reg.npm_as("alice");
    let alice_token = alice.token().unwrap();
    let (secret, _) = reg.enable_2fa(&alice_token, "alice-password", "auth-and-writes");
    alice
        .publish(
            "gadget",
            "1.0.0",
            &[&format!("--otp={}", reg.otp(&secret, 0))],
        )
        .ok();
    alice
        .publish(
            "other",
            "1.0.0",
            &[&format!("--otp={}", reg.otp(&secret, 0))],
        )
        .ok();
    reg.advance(30);
    let r = reg.http().with_token(&alice_token).send(
        "POST",
        "/-/package/gadget/trust",
        &[
            ("npm-otp", &reg.otp(&secret, 0)),
            ("content-type", "application/json"),
        ],
        Some(
            json!([{"type": "github", "claims": {"repository": "acme/gadget", "workflow_ref": {"file": "release.yml"}, "environment": "production"}, "permissions": ["createPackage"]}])
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    // a batch with one duplicate adds nothing
    reg.advance(30);
    let r = reg.http().with_token(&alice_token).send(
        "POST",
        "/-/package/gadget/trust",
        &[
            ("npm-otp", &reg.otp(&secret, 0)),
            ("content-type", "application/json"),
        ],
        Some(
            json!([
                {"type": "github", "claims": {"repository": "acme/other", "workflow_ref": {"file": "release.yml"}}},
                {"type": "github", "claims": {"repository": "acme/gadget", "workflow_ref": {"file": "release.yml"}, "environment": "production"}}
            ])
            .to_string()
            .into_bytes(),
        ),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.text.contains("nothing was added"), "{}", r.text);
    assert_eq!(reg.count_rows("trusted_publishers"), 1);
    let now = reg.now_secs();
    let good = || {
        let mut c = github_claims(AUD, "acme/gadget", "release.yml");
        c["environment"] = "production".into();
        c
    };
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = good();
        f(&mut c);
        issuer.token(now, c)
    };
    let b64 =
        |v: serde_json::Value| data_encoding::BASE64URL_NOPAD.encode(v.to_string().as_bytes());
    let payload = b64(good()
        .as_object()
        .cloned()
        .map(|mut c| {
            c.insert("iss".into(), issuer.url.clone().into());
            c.insert("exp".into(), (now + 300).into());
            c.insert("iat".into(), now.into());
            c.insert("jti".into(), "unsigned-1".into());
            serde_json::Value::Object(c)
        })
        .unwrap());
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("not a JWT", "abc.def".into(), 400, "not a JWT"),
        (
            "unsigned (alg none)",
            format!("{}.{payload}.", b64(json!({"alg": "none", "typ": "JWT"}))),
            400,
            "not a JWT",
        ),
        (
            "signed with a shared secret (HS256)",
            format!(
                "{}.{payload}.c2lnbmF0dXJl",
                b64(json!({"alg": "HS256", "typ": "JWT", "kid": "test-key"}))
            ),
            401,
            "not accepted",
        ),
        (
            "oversize",
            format!("{}.{}.x", b64(json!({"alg": "RS256"})), "A".repeat(20_000)),
            400,
            "too large",
        ),
        (
            "another workflow",
            with(&|c| {
                c["job_workflow_ref"] =
                    "acme/gadget/.github/workflows/other.yml@refs/heads/main".into()
            }),
            401,
            "no trusted publisher of gadget matches",
        ),
        (
            "another repository",
            with(&|c| c["repository"] = "evil/gadget".into()),
            401,
            "no trusted publisher",
        ),
        (
            "another environment",
            with(&|c| c["environment"] = "staging".into()),
            401,
            "no trusted publisher",
        ),
        (
            "another registry",
            with(&|c| c["aud"] = "npm:registry.npmjs.org".into()),
            401,
            "not for this registry",
        ),
        ("expired", issuer.token(now - 3600, good()), 401, "expired"),
        (
            "not yet valid",
            issuer.token(now + 3600, good()),
            401,
            "not valid yet",
        ),
        (
            "a key the issuer does not publish",
            issuer.token_with(now, good(), "test-key", &Issuer::stranger_key()),
            401,
            "signature",
        ),
        (
            "an unknown key id",
            issuer.token_with(now, good(), "rotated-away", &Issuer::stranger_key()),
            401,
            "unknown signing key",
        ),
        (
            "an untrusted issuer",
            with(&|c| c["iss"] = "https://ci.evil.example".into()),
            401,
            "not a trusted issuer",
        ),
    ];
    for (what, token, status, message) in &cases {
        let r = exchange(&reg, "gadget", token);
        assert_eq!(r.status, *status, "{what}: {}", r.text);
        assert!(r.text.contains(message), "{what}: {}", r.text);
        assert!(
            r.text.contains("OIDC token exchange error"),
            "{what}: {}",
            r.text
        );
    }
    // a token for another registry, sent with that registry's name as the Host: the audience
    // is this registry's own, whatever the request says
    let foreign = with(&|c| c["aud"] = "npm:other-registry.example".into());
    let r = reg.http().send(
        "POST",
        "/-/npm/v1/oidc/token/exchange/package/gadget",
        &[
            ("authorization", &format!("Bearer {foreign}")),
            ("host", "other-registry.example"),
        ],
        None,
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.text.contains("not for this registry"), "{}", r.text);
    // a package without trusted publishers
    let r = exchange(&reg, "other", &issuer.token(now, good()));
    assert_eq!(r.status, 404, "{}", r.text);
    // gadget's CI asking for a package trusted to another repository's
    reg.advance(30);
    let r = reg.http().with_token(&alice_token).send(
        "POST",
        "/-/package/other/trust",
        &[
            ("npm-otp", &reg.otp(&secret, 0)),
            ("content-type", "application/json"),
        ],
        Some(
            json!([{"type": "github", "claims": {"repository": "acme/other", "workflow_ref": {"file": "release.yml"}}, "permissions": ["createPackage"]}])
                .to_string()
                .into_bytes(),
        ),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let r = exchange(&reg, "other", &issuer.token(now, good()));
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(
        r.text.contains("no trusted publisher of other matches"),
        "{}",
        r.text
    );
    let log = security_log(&reg, "alice");
    assert!(log.contains("oidc_exchange_refused"), "{log}");
    assert!(log.contains("job_workflow_ref"), "{log}");

    // the good one
    let r = exchange(&reg, "gadget", &issuer.token(now, good()));
    assert_eq!(r.status, 201, "{}", r.text);
    let body = r.json();
    assert_eq!(body["token_type"], "oidc", "{body}");
    let token = body["token"].as_str().unwrap().to_owned();
    let http = reg.http().with_token(&token);
    assert_eq!(http.get("/-/whoami").json()["username"], "alice");
    // it publishes gadget (no OTP: the identity was the proof) …
    let ci = Npm::new(&reg.url());
    let addr = reg
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    ci.set_token(&addr, &token);
    let dir = ci.package("gadget", "1.1.0", serde_json::Value::Null);
    ci.run_in(&dir, &["publish"]).ok();
    // … and nothing else
    let r = http.put_json("/-/package/gadget/dist-tags/beta", &json!("1.0.0"));
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("can only publish"), "{}", r.text);
    let out = ci.run(&["unpublish", "gadget@1.0.0"]);
    assert_ne!(out.code, 0, "{}", out.all());
    let dir = ci.package("other", "1.1.0", serde_json::Value::Null);
    assert_ne!(ci.run_in(&dir, &["publish"]).code, 0);
    assert_eq!(http.get("/-/npm/v1/tokens").status, 403);

    // the repository was deleted and created again by someone else (new owner id): refused
    let mut c = good();
    c["repository_owner_id"] = "9999".into();
    let r = exchange(&reg, "gadget", &issuer.token(now, c));
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(security_log(&reg, "alice").contains("was replaced"));
}

/// A pending publisher: configured before the package exists, it creates the package with the
/// CI's first publish. Configuring one needs 2FA and a second factor; others do not see it.
#[test]
fn a_pending_publisher_creates_the_package() {
    let issuer = Issuer::start();
    let reg = start(&issuer);
    let alice = reg.npm_as("alice");
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-and-writes");
    let bob = reg.npm_as("bob");
    let trust = |npm: &Npm, otp: Option<String>| {
        let mut args = vec![
            "trust",
            "github",
            "fresh-widget",
            "--repository",
            "acme/fresh",
            "--file",
            "publish.yml",
            "--allow-publish",
            "--yes",
        ];
        let flag = otp.map(|c| format!("--otp={c}"));
        if let Some(f) = &flag {
            args.push(f);
        }
        npm.run(&args)
    };
    // bob has no 2FA: refused
    let out = trust(&bob, None);
    assert!(out.fails().contains("two-factor"), "{}", out.all());
    trust(&alice, Some(reg.otp(&secret, 0))).ok();
    assert_eq!(reg.http().get("/fresh-widget").status, 404);
    // the name is alice's to create: another account cannot add a pending publisher beside
    // hers (whose CI would then get a token for that account)
    let carol_token = reg.signup("carol", "carol-password");
    let (carol_secret, _) = reg.enable_2fa(&carol_token, "carol-password", "auth-and-writes");
    let carol = Npm::new(&reg.url());
    let addr = reg
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    carol.set_token(&addr, &carol_token);
    reg.advance(30);
    let out = trust(&carol, Some(reg.otp(&carol_secret, 0)));
    assert!(
        out.fails()
            .contains("Another account has a pending trusted publisher"),
        "{}",
        out.all()
    );
    let ci = Npm::new(&reg.url());
    let dir = ci.package("fresh-widget", "0.1.0", serde_json::Value::Null);
    let id_token = issuer.token(
        reg.now_secs(),
        github_claims(AUD, "acme/fresh", "publish.yml"),
    );
    ci_publish(&ci, &dir, &id_token).ok();
    let doc = reg.http().get("/fresh-widget").json();
    assert_eq!(doc["dist-tags"]["latest"], "0.1.0", "{doc}");
    assert_eq!(doc["maintainers"][0]["name"], "alice", "{doc}");
}

/// A GitLab CI job (self-managed GitLab: the stand-in issuer) publishes with `npm trust gitlab`'s
/// configuration and the `NPM_ID_TOKEN` its pipeline defines; another project's or another
/// pipeline file's identity is refused.
#[test]
fn a_gitlab_pipeline_publishes_with_its_identity() {
    let issuer = Issuer::start();
    let issuers = format!("[{{issuer = \"{}\", kind = \"gitlab\"}}]", issuer.url);
    let reg = Registry::start_with(&[("TESSERA_OIDC__ISSUERS", &issuers)]);
    let alice = reg.npm_as("alice");
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-only");
    let code = || {
        reg.advance(30);
        reg.otp(&secret, 0)
    };
    // a pending publisher: the package's first publish comes from the pipeline
    let out = alice.run(&[
        "trust",
        "gitlab",
        "gl-widget",
        "--project",
        "acme/tools/widgets",
        "--file",
        ".gitlab-ci.yml",
        "--allow-publish",
        "--yes",
        &format!("--otp={}", code()),
    ]);
    assert!(
        out.ok()
            .contains("Trust configuration created successfully"),
        "{}",
        out.all()
    );
    let host = issuer.url.trim_start_matches("http://").to_owned();
    let claims = |project: &str, file: &str| {
        json!({
            "aud": AUD,
            "sub": format!("project_path:{project}:ref_type:branch:ref:main"),
            "project_path": project,
            "namespace_id": "31",
            "project_id": "4711",
            "ci_config_ref_uri": format!("{host}/{project}//{file}@refs/heads/main"),
            "ref": "main",
        })
    };
    let pipeline = |version: &str, claims: serde_json::Value| {
        let ci = Npm::new(&reg.url());
        let dir = ci.package("gl-widget", version, serde_json::Value::Null);
        let mut cmd = ci.command(&dir, &["publish", "--loglevel=verbose"]);
        cmd.env("CI", "true")
            .env("GITLAB_CI", "true")
            .env_remove("GITHUB_ACTIONS")
            .env("NPM_ID_TOKEN", issuer.token(reg.now_secs(), claims));
        Run::of(cmd)
    };
    let out = pipeline("1.0.0", claims("acme/tools/widgets", ".gitlab-ci.yml"));
    assert!(out.ok().contains("+ gl-widget@1.0.0"), "{}", out.all());
    let doc = reg.http().get("/gl-widget").json();
    assert_eq!(doc["maintainers"][0]["name"], "alice", "{doc}");
    for (project, file) in [
        ("acme/tools/other", ".gitlab-ci.yml"),
        ("acme/tools/widgets", "release.yml"),
    ] {
        let out = pipeline("1.0.1", claims(project, file));
        assert_ne!(out.code, 0, "{project} {file}: {}", out.all());
    }
    assert!(reg.http().get("/gl-widget").json()["versions"]["1.0.1"].is_null());
    let log = security_log(&reg, "alice");
    assert!(log.contains("oidc_exchange_refused"), "{log}");
    assert!(log.contains("ci_config_ref_uri"), "{log}");
}
