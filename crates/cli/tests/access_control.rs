//! Who may do what, beyond the second factor: scope ownership, proxies, limited tokens that must
//! not learn more than they reach, and Basic credentials bound to their client.

mod common;

use common::*;
use serde_json::json;

fn publish(reg: &Registry, token: &str, name: &str, version: &str) -> Resp {
    let m = json!({"name": name, "version": version});
    let body = publish_body(&reg.url(), name, version, &tgz(&m, &[]));
    reg.http()
        .with_token(token)
        .put_json(&format!("/{}", name.replacen('/', "%2f", 1)), &body)
}

#[test]
fn scopes_belong_to_their_maintainers() {
    let reg = Registry::start();
    let alice = reg.signup("alice", "alice-password");
    let bob = reg.signup("bob", "bob-password");
    // @alice is alice's before she publishes anything there
    let r = publish(&reg, &bob, "@alice/internal-tool", "1.0.0");
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(
        r.error().contains("belongs to the user alice"),
        "{}",
        r.text
    );
    // a team scope belongs to whoever maintains its packages
    assert_eq!(publish(&reg, &alice, "@acme/a", "1.0.0").status, 201);
    let r = publish(&reg, &bob, "@acme/b", "1.0.0");
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error().contains("npm owner add"), "{}", r.text);
    // once added to one of its packages, bob may publish new ones there
    let rev = reg.http().with_token(&alice).get("/@acme%2fa").json()["_rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = reg.http().with_token(&alice).put_json(
        &format!("/@acme%2fa/-rev/{rev}"),
        &json!({"_id": "@acme/a", "_rev": rev, "maintainers": [{"name": "alice"}, {"name": "bob"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(publish(&reg, &bob, "@acme/b", "1.0.0").status, 201);
    assert_eq!(publish(&reg, &bob, "@bob/mine", "1.0.0").status, 201);
    // open_scopes lifts the rule
    let open = Registry::start_with(&[("TESSERA_OPEN_SCOPES", "true")]);
    open.signup("alice", "alice-password");
    let bob = open.signup("bob", "bob-password");
    assert_eq!(publish(&open, &bob, "@alice/x", "1.0.0").status, 201);
}

#[test]
fn behind_a_proxy_the_client_is_what_the_proxy_appended() {
    let reg = Registry::start_with(&[("TESSERA_TRUST_PROXY", "true")]);
    let t = reg.signup("alice", "alice-password");
    let r = reg.http().with_token(&t).post_json(
        "/-/npm/v1/tokens",
        &json!({"password": "alice-password", "cidr_whitelist": ["10.0.0.0/8"]}),
    );
    let limited = r.json()["token"].as_str().unwrap().to_owned();
    let who = |xff: &str| {
        reg.http()
            .with_token(&limited)
            .send("GET", "/-/whoami", &[("x-forwarded-for", xff)], None)
    };
    // a forged first entry does not help
    let r = who("10.9.9.9, 203.0.113.9");
    assert_eq!(
        (r.status, r.header("www-authenticate")),
        (401, Some("ipaddress"))
    );
    assert_eq!(who("203.0.113.9, 10.1.1.1").status, 200);
}

#[test]
fn limited_tokens_learn_nothing_outside_their_packages() {
    let reg = Registry::start();
    let alice = reg.signup("alice", "alice-password");
    for name in ["@alice/secret", "@alice/secret2", "demo"] {
        assert_eq!(publish(&reg, &alice, name, "1.0.0").status, 201);
    }
    let http = reg.http().with_token(&alice);
    let r = http.post_json("/-/npm/v1/tokens", &json!({"password": "alice-password", "name": "ci", "packages": ["demo"], "packages_and_scopes_permission": "read-only"}));
    let limited = r.json()["token"].as_str().unwrap().to_owned();
    let lim = reg.http().with_token(&limited);
    assert_eq!(
        lim.get("/-/user/alice/package").json(),
        json!({"demo": "write"})
    );
    let s = lim.get("/-/v1/search?text=secret&size=1").json();
    assert_eq!(s["total"], 0, "{s}");
    // it cannot read the account either: not the profile, not the token list; whoami works
    assert_eq!(lim.get("/-/npm/v1/user").status, 403);
    assert_eq!(lim.get("/-/npm/v1/tokens").status, 403);
    assert_eq!(lim.get("/-/whoami").json()["username"], "alice");
    // a token with no access to any package and no selection lists no private package either
    let r = http.post_json("/-/npm/v1/tokens", &json!({"password": "alice-password", "name": "none", "packages_and_scopes_permission": "no-access"}));
    let none = r.json()["token"].as_str().unwrap().to_owned();
    let s = reg
        .http()
        .with_token(&none)
        .get("/-/v1/search?text=secret&size=5")
        .json();
    assert_eq!(s["total"], 0, "{s}");
    let s = http.get("/-/v1/search?text=secret&size=5").json();
    assert_eq!(s["total"], 2, "the login token does list them: {s}");
    // it cannot even test the password: refused before the password is looked at
    for pw in ["alice-password", "wrong-password"] {
        let r = lim.post_json("/-/npm/v1/tokens", &json!({"password": pw}));
        assert_eq!(r.status, 403, "{pw}: {}", r.text);
        let r = lim.post_json(
            "/-/npm/v1/user",
            &json!({"tfa": {"password": pw, "mode": "auth-only"}}),
        );
        assert_eq!(r.status, 403, "{pw}: {}", r.text);
        let r = lim.post_json(
            "/-/npm/v1/user",
            &json!({"password": {"old": pw, "new": "another-password"}}),
        );
        assert_eq!(r.status, 403, "{pw}: {}", r.text);
    }
    // while the owner's full view is unchanged
    assert_eq!(
        http.get("/-/user/alice/package")
            .json()
            .as_object()
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_code_used_over_basic_is_not_reusable_by_another_client() {
    let reg = Registry::start();
    let t = reg.signup("alice", "alice-password");
    let (secret, _) = reg.enable_2fa(&t, "alice-password", "auth-and-writes");
    reg.advance(30);
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(b"alice:alice-password")
    );
    let code = reg.otp(&secret, 0);
    let r = reg.http().send(
        "GET",
        "/-/whoami",
        &[
            ("authorization", &basic),
            ("npm-otp", &code),
            ("user-agent", "npm/11.19.1 laptop"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // the same client repeats it (one npm command, several requests)
    let r = reg.http().send(
        "GET",
        "/-/whoami",
        &[
            ("authorization", &basic),
            ("npm-otp", &code),
            ("user-agent", "npm/11.19.1 laptop"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // another client with the password does not get to turn 2FA off with it
    let r = reg.http().send(
        "POST",
        "/-/npm/v1/user",
        &[
            ("authorization", &basic),
            ("npm-otp", &code),
            ("user-agent", "curl/8 elsewhere"),
            ("content-type", "application/json"),
        ],
        Some(
            serde_json::to_vec(&json!({"tfa": {"password": "alice-password", "mode": "disable"}}))
                .unwrap(),
        ),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(
        reg.http().with_token(&t).get("/-/npm/v1/user").json()["tfa"]["pending"],
        false
    );
}
