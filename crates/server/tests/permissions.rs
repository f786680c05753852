//! The permission matrix of both front ends, in process: every route that names a package ×
//! every kind of caller × a public package, a private one and a missing one. The expected
//! answers are the door's rules written as data:
//! - a package the caller may not see is a 404 on every route and verb, with the very body a
//!   missing package gets (the website's page too); a publish over it gets what a publish of a
//!   new name would;
//! - anonymous writes are 401 (whether the package exists or not);
//! - a visible package the caller does not maintain reads 200 and refuses writes with 403
//!   (stars excepted: any reader may star), as do read-only tokens and tokens limited to other
//!   packages.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use support::{Auth, TestApp};

/// The packages of the matrix.
const PUBLIC: &str = "demo";
const PRIVATE: &str = "@alice/secret";
const MISSING: &str = "@alice/nothing";

/// Callers of the npm API and of the website.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// bob's login token (not a maintainer).
    Bob,
    /// bob's read-only token.
    BobReadOnly,
    /// alice's granular token limited to another package.
    AliceLimited,
    /// alice's login token (the maintainer): reads only, so the matrix changes nothing.
    Alice,
    /// bob signed in on the website.
    BobWeb,
    /// alice signed in on the website.
    AliceWeb,
}

const API_CALLERS: [Who; 5] = [
    Who::Anonymous,
    Who::Bob,
    Who::BobReadOnly,
    Who::AliceLimited,
    Who::Alice,
];
const WEB_CALLERS: [Who; 3] = [Who::Anonymous, Who::BobWeb, Who::AliceWeb];

/// One route of the matrix.
#[derive(Debug, Clone, Copy)]
struct Route {
    /// What npm command or page it serves.
    name: &'static str,
    /// The router pattern it exercises (checked against the routers' source).
    pattern: &'static str,
    method: &'static str,
    write: bool,
}

const ROUTES: &[Route] = &[
    Route {
        name: "packument",
        pattern: "/{pkg}",
        method: "GET",
        write: false,
    },
    Route {
        name: "version",
        pattern: "/{pkg}/{version}",
        method: "GET",
        write: false,
    },
    Route {
        name: "tarball",
        pattern: "/{pkg}/-/{file}",
        method: "GET",
        write: false,
    },
    Route {
        name: "dist-tag ls",
        pattern: "/-/package/{pkg}/dist-tags",
        method: "GET",
        write: false,
    },
    Route {
        name: "access get",
        pattern: "/-/package/{pkg}/access",
        method: "GET",
        write: false,
    },
    Route {
        name: "collaborators",
        pattern: "/-/package/{pkg}/collaborators",
        method: "GET",
        write: false,
    },
    Route {
        name: "visibility",
        pattern: "/-/package/{pkg}/visibility",
        method: "GET",
        write: false,
    },
    Route {
        name: "dist-tag add",
        pattern: "/-/package/{pkg}/dist-tags/{tag}",
        method: "PUT",
        write: true,
    },
    Route {
        name: "dist-tag rm",
        pattern: "/-/package/{pkg}/dist-tags/{tag}",
        method: "DELETE",
        write: true,
    },
    Route {
        name: "access set",
        pattern: "/-/package/{pkg}/access",
        method: "POST",
        write: true,
    },
    Route {
        name: "owner add",
        pattern: "/{pkg}/-rev/{rev}",
        method: "PUT",
        write: true,
    },
    Route {
        name: "deprecate",
        pattern: "/{pkg}/-rev/{rev}",
        method: "PUT",
        write: true,
    },
    Route {
        name: "star",
        pattern: "/{pkg}",
        method: "PUT",
        write: true,
    },
    Route {
        name: "unpublish",
        pattern: "/{pkg}/-rev/{rev}",
        method: "DELETE",
        write: true,
    },
    Route {
        name: "unpublish version",
        pattern: "/{pkg}/-/{file}/-rev/{rev}",
        method: "DELETE",
        write: true,
    },
    Route {
        name: "publish",
        pattern: "/{pkg}",
        method: "PUT",
        write: true,
    },
    Route {
        name: "stage publish",
        pattern: "/-/stage/package/{pkg}",
        method: "POST",
        write: true,
    },
    Route {
        name: "trust list",
        pattern: "/-/package/{pkg}/trust",
        method: "GET",
        // a governance read: it needs a maintainer with 2FA and a second factor
        write: true,
    },
    Route {
        name: "trust add",
        pattern: "/-/package/{pkg}/trust",
        method: "POST",
        write: true,
    },
    Route {
        name: "trust revoke",
        pattern: "/-/package/{pkg}/trust/{id}",
        method: "DELETE",
        write: true,
    },
    Route {
        name: "oidc exchange",
        pattern: "/-/npm/v1/oidc/token/exchange/package/{pkg}",
        method: "POST",
        write: true,
    },
    Route {
        name: "web package page",
        pattern: "/-/web/package/{*name}",
        method: "GET",
        write: false,
    },
];

/// The seeded registry and a credential for each caller.
struct World {
    app: TestApp,
    bob: String,
    bob_ro: String,
    alice: String,
    alice_limited: String,
    bob_web: String,
    alice_web: String,
}

impl World {
    fn auth(&self, who: Who) -> Auth {
        match who {
            Who::Anonymous => Auth::None,
            Who::Bob => Auth::Token(self.bob.clone()),
            Who::BobReadOnly => Auth::Token(self.bob_ro.clone()),
            Who::AliceLimited => Auth::Token(self.alice_limited.clone()),
            Who::Alice => Auth::Token(self.alice.clone()),
            Who::BobWeb => Auth::Session(self.bob_web.clone()),
            Who::AliceWeb => Auth::Session(self.alice_web.clone()),
        }
    }
}

async fn seed() -> World {
    let app = TestApp::new().await;
    let alice = app.sign_up("alice").await;
    let bob = app.sign_up("bob").await;
    for name in [PUBLIC, PRIVATE] {
        let r = app.publish(&alice, name, "1.0.0").await;
        assert_eq!(r.status, StatusCode::CREATED, "{name}: {}", r.body);
    }
    let bob_ro = app.token("bob", &bob, json!({"readonly": true})).await;
    let alice_limited = app
        .token(
            "alice",
            &alice,
            json!({"name": "other", "packages": ["other"], "packages_and_scopes_permission": "read-write"}),
        )
        .await;
    let bob_web = app.web_session("bob").await;
    let alice_web = app.web_session("alice").await;
    World {
        app,
        bob,
        bob_ro,
        alice,
        alice_limited,
        bob_web,
        alice_web,
    }
}

/// Whether `who` sees `pkg`.
fn sees(who: Who, pkg: &str) -> bool {
    match pkg {
        PUBLIC => true,
        PRIVATE => matches!(who, Who::Alice | Who::AliceWeb),
        _ => false,
    }
}

/// The answer the rules give.
fn expected(route: &Route, who: Who, pkg: &str) -> StatusCode {
    let web = route.pattern.starts_with("/-/web/");
    if web {
        return if sees(who, pkg) {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
    }
    if route.write && who == Who::Anonymous {
        return StatusCode::UNAUTHORIZED;
    }
    if route.name == "oidc exchange" {
        // its bearer must be a CI identity token: a registry token is not even a JWT, and the
        // answer says nothing about the package
        return StatusCode::BAD_REQUEST;
    }
    let creates = matches!(
        route.name,
        "publish" | "stage publish" | "trust list" | "trust add" | "trust revoke"
    );
    if creates && !sees(who, pkg) {
        // A publish (a stage, a pending trusted publisher) may create a package: the scope
        // belongs to alice, and alice's limited token does not reach it, whether the name is
        // taken or not.
        return StatusCode::FORBIDDEN;
    }
    if !sees(who, pkg) {
        return StatusCode::NOT_FOUND;
    }
    if !route.write {
        return StatusCode::OK;
    }
    match (route.name, who) {
        ("star", Who::Bob) => StatusCode::OK,
        _ => StatusCode::FORBIDDEN,
    }
}

/// Sends `route` on `pkg` as `who`.
async fn send(w: &World, route: &Route, who: Who, pkg: &str, rev: &str) -> support::Answer {
    let enc = pkg.replacen('/', "%2f", 1);
    let file = format!("{}-1.0.0.tgz", pkg.rsplit('/').next().unwrap());
    let auth = w.auth(who);
    let app = &w.app;
    let method: Method = route.method.parse().unwrap();
    match route.name {
        "packument" => app.get(&format!("/{enc}"), &auth).await,
        "version" => app.get(&format!("/{enc}/1.0.0"), &auth).await,
        "tarball" => app.get(&format!("/{pkg}/-/{file}"), &auth).await,
        "dist-tag ls" => app.get(&format!("/-/package/{enc}/dist-tags"), &auth).await,
        "access get" => app.get(&format!("/-/package/{enc}/access"), &auth).await,
        "collaborators" => {
            app.get(&format!("/-/package/{enc}/collaborators"), &auth)
                .await
        }
        "visibility" => {
            app.get(&format!("/-/package/{enc}/visibility"), &auth)
                .await
        }
        "dist-tag add" => {
            let path = format!("/-/package/{enc}/dist-tags/beta");
            app.json(method, &path, &auth, &json!("1.0.0")).await
        }
        "dist-tag rm" => {
            let path = format!("/-/package/{enc}/dist-tags/beta");
            app.call(method, &path, &auth, &[], Vec::new()).await
        }
        "access set" => {
            let path = format!("/-/package/{enc}/access");
            app.json(method, &path, &auth, &json!({"access": "restricted"}))
                .await
        }
        "owner add" => {
            let body = json!({"_id": pkg, "_rev": rev, "maintainers": [{"name": "alice"}, {"name": "bob"}]});
            app.json(method, &format!("/{enc}/-rev/{rev}"), &auth, &body)
                .await
        }
        "deprecate" => {
            let body = json!({"_id": pkg, "_rev": rev, "name": pkg, "versions": {
                "1.0.0": {"name": pkg, "version": "1.0.0", "deprecated": "old"}}});
            app.json(method, &format!("/{enc}/-rev/{rev}"), &auth, &body)
                .await
        }
        "star" => {
            let body = json!({"_id": pkg, "users": {"bob": true}});
            app.json(method, &format!("/{enc}"), &auth, &body).await
        }
        "unpublish" => {
            app.call(
                method,
                &format!("/{enc}/-rev/{rev}"),
                &auth,
                &[],
                Vec::new(),
            )
            .await
        }
        "unpublish version" => {
            let path = format!("/{pkg}/-/{file}/-rev/{rev}");
            app.call(method, &path, &auth, &[], Vec::new()).await
        }
        "publish" => {
            let tgz = support::tgz(&json!({"name": pkg, "version": "1.0.1"}));
            let body = support::publish_body(pkg, "1.0.1", &tgz);
            app.json(method, &format!("/{enc}"), &auth, &body).await
        }
        "stage publish" => {
            let tgz = support::tgz(&json!({"name": pkg, "version": "1.0.1"}));
            let body = support::publish_body(pkg, "1.0.1", &tgz);
            app.json(method, &format!("/-/stage/package/{enc}"), &auth, &body)
                .await
        }
        "oidc exchange" => {
            let path = format!("/-/npm/v1/oidc/token/exchange/package/{enc}");
            app.call(method, &path, &auth, &[], Vec::new()).await
        }
        "trust list" => app.get(&format!("/-/package/{enc}/trust"), &auth).await,
        "trust add" => {
            let body = json!([{"type": "github", "claims": {"repository": "bob/x",
                "workflow_ref": {"file": "p.yml"}}, "permissions": ["createPackage"]}]);
            app.json(method, &format!("/-/package/{enc}/trust"), &auth, &body)
                .await
        }
        "trust revoke" => {
            let path = format!("/-/package/{enc}/trust/00000000-0000-4000-8000-000000000000");
            app.call(method, &path, &auth, &[], Vec::new()).await
        }
        "web package page" => app.get(&format!("/-/web/package/{pkg}"), &auth).await,
        other => panic!("no request for {other}"),
    }
}

#[tokio::test]
async fn every_package_route_of_both_front_ends_answers_by_the_rules() {
    let started = std::time::Instant::now();
    let w = seed().await;
    let rev_of = |doc: Value| doc["_rev"].as_str().unwrap_or("1-x").to_owned();
    let mut revs = std::collections::HashMap::new();
    for pkg in [PUBLIC, PRIVATE] {
        let enc = pkg.replacen('/', "%2f", 1);
        let doc = w
            .app
            .get(&format!("/{enc}"), &Auth::Token(w.alice.clone()))
            .await;
        revs.insert(pkg, rev_of(doc.json()));
    }
    let mut failures = Vec::new();
    let mut cells = 0;
    for route in ROUTES {
        let web = route.pattern.starts_with("/-/web/");
        let callers: &[Who] = if web { &WEB_CALLERS } else { &API_CALLERS };
        for &who in callers {
            if route.write && who == Who::Alice {
                continue; // the maintainer's own writes would change the registry under the matrix
            }
            for pkg in [PUBLIC, PRIVATE, MISSING] {
                let rev = revs.get(pkg).cloned().unwrap_or_else(|| "1-x".into());
                let got = send(&w, route, who, pkg, &rev).await;
                let want = expected(route, who, pkg);
                cells += 1;
                if got.status != want {
                    failures.push(format!(
                        "{} {who:?} {pkg}: {} (wanted {want}): {}",
                        route.name,
                        got.status,
                        got.body.chars().take(160).collect::<String>()
                    ));
                    continue;
                }
                // A package the caller may not see answers exactly as a missing one.
                if pkg == PRIVATE && !sees(who, PRIVATE) {
                    let missing = send(&w, route, who, MISSING, "1-x").await;
                    let same = if web {
                        got.body.replace("secret", "nothing") == missing.body
                    } else {
                        got.body == missing.body
                    };
                    if missing.status != got.status || !same {
                        failures.push(format!(
                            "{} {who:?}: the private package's answer differs from a missing one's: {:?} vs {:?}",
                            route.name, got.body, missing.body
                        ));
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells broke the rules:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(cells > 200, "{cells} cells");
    eprintln!("{cells} cells in {:?}", started.elapsed());
}

/// Every route pattern of the two routers that names a package is in the matrix.
#[test]
fn the_matrix_covers_every_package_route() {
    let src = |f: &str| {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).unwrap()
    };
    let routers = src("src/api/mod.rs") + &src("src/web/mod.rs");
    let mut missing = Vec::new();
    // `.route(` and its pattern, on one line or (as rustfmt writes long ones) the next
    for (at, _) in routers.match_indices(".route(") {
        let rest = routers[at + 7..].trim_start();
        let Some(rest) = rest.strip_prefix('"') else {
            continue;
        };
        let pattern = &rest[..rest.find('"').unwrap()];
        let names_a_package = pattern.contains("{pkg}") || pattern.contains("/package/");
        if names_a_package && !ROUTES.iter().any(|r| r.pattern == pattern) {
            missing.push(pattern.to_owned());
        }
    }
    // The package namespace itself (`/{pkg}`, `/{pkg}/-rev/{rev}`, tarballs) is routed by hand
    // (api/packages/paths.rs); its forms are in the matrix by name.
    for form in [
        "/{pkg}",
        "/{pkg}/{version}",
        "/{pkg}/-/{file}",
        "/{pkg}/-rev/{rev}",
    ] {
        assert!(ROUTES.iter().any(|r| r.pattern == form), "{form}");
    }
    assert!(missing.is_empty(), "routes outside the matrix: {missing:?}");
}

/// The account routes of the npm API (whoami, profile, tokens, 2FA) × caller: anonymous callers
/// are asked to log in; read-only tokens read the account but change nothing; tokens limited to
/// some packages cannot touch the account at all; automation tokens read it but never change
/// it; `whoami` answers every authenticated caller.
#[tokio::test]
async fn every_account_route_answers_by_the_rules() {
    let w = seed().await;
    let automation = w
        .app
        .token("bob", &w.bob, json!({"type": "automation"}))
        .await;
    let callers = [
        ("anonymous", Auth::None),
        ("login", Auth::Token(w.bob.clone())),
        ("read-only", Auth::Token(w.bob_ro.clone())),
        ("limited", Auth::Token(w.alice_limited.clone())),
        ("automation", Auth::Token(automation)),
    ];
    // (route, expected status per caller in the order above)
    type Row = (&'static str, [u16; 5]);
    let rows: [Row; 7] = [
        ("whoami", [401, 200, 200, 200, 200]),
        ("profile get", [401, 200, 200, 403, 200]),
        ("profile set", [401, 200, 403, 403, 403]),
        ("token list", [401, 200, 200, 403, 200]),
        ("token create", [401, 201, 403, 403, 403]),
        ("token revoke", [401, 404, 403, 403, 403]),
        // last: it starts an enrolment for bob (pending, so nothing is enforced)
        ("enable 2fa", [401, 200, 403, 403, 403]),
    ];
    let mut failures = Vec::new();
    for (route, want) in rows {
        for ((who, auth), want) in callers.iter().zip(want) {
            let app = &w.app;
            let got = match route {
                "whoami" => app.get("/-/whoami", auth).await,
                "profile get" => app.get("/-/npm/v1/user", auth).await,
                "profile set" => {
                    let body = json!({"fullname": format!("Bob ({who})")});
                    app.json(Method::POST, "/-/npm/v1/user", auth, &body).await
                }
                "token list" => app.get("/-/npm/v1/tokens", auth).await,
                "token create" => {
                    let body = json!({"password": "bob-password", "readonly": true});
                    app.json(Method::POST, "/-/npm/v1/tokens", auth, &body)
                        .await
                }
                "enable 2fa" => {
                    let body =
                        json!({"tfa": {"password": "bob-password", "mode": "auth-and-writes"}});
                    app.json(Method::POST, "/-/npm/v1/user", auth, &body).await
                }
                "token revoke" => {
                    let path = format!("/-/npm/v1/tokens/token/{}", "0".repeat(64));
                    app.call(Method::DELETE, &path, auth, &[], Vec::new()).await
                }
                other => panic!("{other}"),
            };
            if got.status.as_u16() != want {
                failures.push(format!(
                    "{route} as {who}: {} (wanted {want}): {}",
                    got.status,
                    got.body.chars().take(160).collect::<String>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The website's account pages × caller: anonymous visitors are sent to sign in (and come back
/// after), signed-in users get their own page; every form POST needs the site's origin and
/// the session's CSRF token, whoever sends it.
#[tokio::test]
async fn every_website_account_page_answers_by_the_rules() {
    let w = seed().await;
    let pages = [
        "/-/web/account",
        "/-/web/account/security",
        "/-/web/account/2fa",
        "/-/web/tokens",
    ];
    let mut failures = Vec::new();
    for page in pages {
        let anon = w.app.get(page, &Auth::None).await;
        let to = anon
            .headers
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or("");
        if anon.status != StatusCode::SEE_OTHER || !to.starts_with("/-/web/signin?next=") {
            failures.push(format!("{page} anonymous: {} {to}", anon.status));
        }
        let bob = w.app.get(page, &Auth::Session(w.bob_web.clone())).await;
        if bob.status != StatusCode::OK || !bob.body.contains("bob") {
            failures.push(format!("{page} as bob: {}", bob.status));
        }
    }
    let posts = [
        "/-/web/account/profile",
        "/-/web/account/2fa/enable",
        "/-/web/account/2fa/disable",
        "/-/web/tokens",
        "/-/web/tokens/revoke",
        "/-/web/signout",
    ];
    let origin = format!("http://{}", support::HOST);
    for path in posts {
        for (what, headers) in [
            ("no origin", vec![]),
            ("another origin", vec![("origin", "https://evil.example")]),
            ("no csrf token", vec![("origin", origin.as_str())]),
        ] {
            let mut h = vec![("content-type", "application/x-www-form-urlencoded")];
            h.extend(headers);
            let r = w
                .app
                .call(
                    Method::POST,
                    path,
                    &Auth::Session(w.bob_web.clone()),
                    &h,
                    b"email=evil%40example.com".to_vec(),
                )
                .await;
            if r.status != StatusCode::FORBIDDEN {
                failures.push(format!("POST {path} with {what}: {}", r.status));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
