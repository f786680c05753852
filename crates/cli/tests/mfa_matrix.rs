//! A package's 2FA policy with the real npm clients: every cell of policy
//! (`npm access set mfa=none|publish|automation`) × the publisher's account mode (no 2FA,
//! auth-only, auth-and-writes) × the token it publishes with (its login token, a classic
//! automation token), each tried with `npm publish` without and with `--otp`; and npm 6's
//! `npm access 2fa-required` / `2fa-not-required`.

mod common;

use common::*;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    None,
    Publish,
    Automation,
}

impl Policy {
    fn mfa(self) -> &'static str {
        match self {
            Policy::None => "none",
            Policy::Publish => "publish",
            Policy::Automation => "automation",
        }
    }
}

/// The publisher's account mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Off,
    AuthOnly,
    AuthAndWrites,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Off, Mode::AuthOnly, Mode::AuthAndWrites];

    fn account(self) -> &'static str {
        match self {
            Mode::Off => "no2fa",
            Mode::AuthOnly => "authonly",
            Mode::AuthAndWrites => "authwrites",
        }
    }
}

/// The token `npm publish` runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// The login token (what `npm login` stores): a publish token.
    Login,
    /// A classic automation token (`POST /-/npm/v1/tokens` with `type: automation`).
    Automation,
}

/// What `npm publish` must end with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Exit 0, and the version is in the packument.
    Published,
    /// EOTP: the registry asks for a one-time password (401 `WWW-Authenticate: otp`).
    Eotp,
    /// E403 telling the publisher to turn 2FA on (`npm profile enable-2fa`), whatever the OTP.
    Enable2fa,
}

use Mode::*;
use Policy as P;
use Token::*;
use Want::*;

/// The 18 cells, from `gate::decide` for `Operation::Publish`: a package policy other than
/// `none` refuses accounts without 2FA outright and asks everyone else for an OTP, except that
/// `mfa=automation` lets automation tokens publish without one; with `mfa=none` the account's
/// mode decides (auth-and-writes asks login tokens for an OTP, automation tokens never).
/// The last column is `npm publish --otp=<valid code>`; `None` where the account has no 2FA
/// and so no code to give.
#[rustfmt::skip]
const MATRIX: [(Policy, Mode, Token, Want, Option<Want>); 18] = [
    // policy       publisher      token       no --otp   with --otp
    (P::None,       Off,           Login,      Published, None),
    (P::None,       Off,           Automation, Published, None),
    (P::None,       AuthOnly,      Login,      Published, Some(Published)),
    (P::None,       AuthOnly,      Automation, Published, Some(Published)),
    (P::None,       AuthAndWrites, Login,      Eotp,      Some(Published)),
    (P::None,       AuthAndWrites, Automation, Published, Some(Published)),
    (P::Publish,    Off,           Login,      Enable2fa, None),
    (P::Publish,    Off,           Automation, Enable2fa, None),
    (P::Publish,    AuthOnly,      Login,      Eotp,      Some(Published)),
    (P::Publish,    AuthOnly,      Automation, Eotp,      Some(Published)),
    (P::Publish,    AuthAndWrites, Login,      Eotp,      Some(Published)),
    (P::Publish,    AuthAndWrites, Automation, Eotp,      Some(Published)),
    (P::Automation, Off,           Login,      Enable2fa, None),
    (P::Automation, Off,           Automation, Enable2fa, None),
    (P::Automation, AuthOnly,      Login,      Eotp,      Some(Published)),
    (P::Automation, AuthOnly,      Automation, Published, Some(Published)),
    (P::Automation, AuthAndWrites, Login,      Eotp,      Some(Published)),
    (P::Automation, AuthAndWrites, Automation, Published, Some(Published)),
];

/// A publisher: an account in `mode`, maintainer of the package, with both its tokens.
struct Publisher {
    mode: Mode,
    secret: Option<String>,
    login: Npm,
    automation: Npm,
}

impl Publisher {
    fn new(reg: &Registry, maintainer: &Npm, pkg: &str, mode: Mode) -> Publisher {
        let name = mode.account();
        let password = format!("{name}-password");
        let login = reg.npm_as(name);
        let token = login.token().unwrap();
        maintainer.run(&["owner", "add", name, pkg]).ok();
        let secret = match mode {
            Off => None,
            AuthOnly => Some(reg.enable_2fa(&token, &password, "auth-only").0),
            AuthAndWrites => Some(reg.enable_2fa(&token, &password, "auth-and-writes").0),
        };
        // a classic automation token; minting it takes the OTP when 2FA is on
        reg.advance(30);
        let otp = secret.as_ref().map(|s| reg.otp(s, 0));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(o) = &otp {
            headers.push(("npm-otp", o));
        }
        let r = reg.http().with_token(&token).send(
            "POST",
            "/-/npm/v1/tokens",
            &headers,
            Some(serde_json::to_vec(&json!({"password": password, "type": "automation"})).unwrap()),
        );
        assert_eq!(r.status, 201, "automation token for {name}: {}", r.text);
        assert_eq!(r.json()["type"], "automation");
        let automation = reg.npm();
        automation.set_token(&reg.addr, r.json()["token"].as_str().unwrap());
        Publisher {
            mode,
            secret,
            login,
            automation,
        }
    }

    fn client(&self, token: Token) -> &Npm {
        match token {
            Login => &self.login,
            Automation => &self.automation,
        }
    }
}

fn versions(reg: &Registry, pkg: &str) -> Value {
    let r = reg.http().get(&format!("/{pkg}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["versions"].clone()
}

fn check(reg: &Registry, pkg: &str, version: &str, want: Want, out: &Run, cell: &str) {
    let all = out.all();
    match want {
        Published => assert_eq!(out.code, 0, "{cell}: should publish:\n{all}"),
        Eotp => assert!(
            out.code != 0 && all.contains("EOTP"),
            "{cell}: should ask for an OTP:\n{all}"
        ),
        Enable2fa => assert!(
            out.code != 0
                && all.contains("E403")
                && all.contains("requires two-factor authentication")
                && all.contains("npm profile enable-2fa"),
            "{cell}: should be refused with how to enable 2FA:\n{all}"
        ),
    }
    let there = versions(reg, pkg).get(version).is_some();
    assert_eq!(
        there,
        want == Published,
        "{cell}: {pkg}@{version} in the packument: {there}"
    );
}

/// Runs every cell of `policy` on one registry.
fn policy_cells(policy: Policy) {
    let reg = Registry::start();
    let pkg = format!("mfa-{}", policy.mfa());
    let maintainer = reg.npm_as("maint");
    maintainer.publish(&pkg, "1.0.0", &[]).ok();
    let publishers: Vec<Publisher> = Mode::ALL
        .iter()
        .map(|m| Publisher::new(&reg, &maintainer, &pkg, *m))
        .collect();

    // the policy, set by a maintainer with 2FA through `npm access set mfa=…`
    let token = maintainer.token().unwrap();
    let (secret, _) = reg.enable_2fa(&token, "maint-password", "auth-only");
    // for mfa=none, come back to it from mfa=publish so the setting is seen to take effect
    let steps = match policy {
        P::None => vec![P::Publish, P::None],
        p => vec![p],
    };
    for p in steps {
        reg.advance(30);
        maintainer
            .run(&[
                "access",
                "set",
                &format!("mfa={}", p.mfa()),
                &pkg,
                &format!("--otp={}", reg.otp(&secret, 0)),
            ])
            .ok();
        assert_eq!(
            reg.http().get(&format!("/-/package/{pkg}/access")).json()["mfa"],
            p.mfa()
        );
    }

    let mut patch = 0;
    let mut cells = 0;
    for (p, mode, token, without, with) in MATRIX.iter().filter(|c| c.0 == policy) {
        cells += 1;
        let publisher = publishers.iter().find(|x| x.mode == *mode).unwrap();
        let npm = publisher.client(*token);
        let cell = format!("mfa={} / {mode:?} account / {token:?} token", p.mfa());

        patch += 1;
        let version = format!("1.0.{patch}");
        let out = npm.publish(&pkg, &version, &[]);
        check(
            &reg,
            &pkg,
            &version,
            *without,
            &out,
            &format!("{cell}, no --otp"),
        );

        match (&publisher.secret, with) {
            (Some(secret), Some(want)) => {
                // a fresh time step: the last one may have been used by another credential
                reg.advance(30);
                patch += 1;
                let version = format!("1.0.{patch}");
                let out = npm.publish(&pkg, &version, &[&format!("--otp={}", reg.otp(secret, 0))]);
                check(&reg, &pkg, &version, *want, &out, &format!("{cell}, --otp"));
            }
            (None, None) => {}
            _ => panic!("{cell}: a --otp column exactly where the account has 2FA"),
        }
    }
    assert_eq!(cells, 6);
}

#[test]
fn matrix_policy_none() {
    policy_cells(P::None);
}

#[test]
fn matrix_policy_publish() {
    policy_cells(P::Publish);
}

#[test]
fn matrix_policy_automation() {
    policy_cells(P::Automation);
}

/// npm 6's `npm access 2fa-required` / `2fa-not-required` (`POST /-/package/PKG/access` with
/// `{publish_requires_tfa}`), run with npm 6 itself.
#[test]
fn npm_6_access_2fa_required_and_not_required() {
    let npm6 = ensure_npm(6);
    let reg = Registry::start();
    let alice = reg.npm_as("alice");
    alice.publish("demo6", "1.0.0", &[]).ok();
    let version = alice.run_cli(&npm6, &["--version"]);
    assert!(version.ok().starts_with("6."), "{}", version.all());
    let (secret, _) = reg.enable_2fa(&alice.token().unwrap(), "alice-password", "auth-only");
    let mfa = || reg.http().get("/-/package/demo6/access").json()["mfa"].clone();

    // the policy change takes the OTP, even in auth-only mode
    let out = alice.run_cli(&npm6, &["access", "2fa-required", "demo6"]);
    assert!(out.fails().contains("EOTP"), "{}", out.all());
    assert_eq!(mfa(), "none");

    reg.advance(30);
    let otp = format!("--otp={}", reg.otp(&secret, 0));
    alice
        .run_cli(&npm6, &["access", "2fa-required", "demo6", &otp])
        .ok();
    assert_eq!(mfa(), "publish");
    assert!(
        alice
            .publish("demo6", "1.0.1", &[])
            .fails()
            .contains("EOTP")
    );

    reg.advance(30);
    let otp = format!("--otp={}", reg.otp(&secret, 0));
    alice
        .run_cli(&npm6, &["access", "2fa-not-required", "demo6", &otp])
        .ok();
    assert_eq!(mfa(), "none");
    alice.publish("demo6", "1.0.1", &[]).ok();
}
