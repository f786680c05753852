//! pnpm against a registry with 2FA: pnpm 9 and 10 (whose `login` runs npm's) and the current
//! major, 12 (a native client with its own login), each logging in with a one-time password,
//! publishing with `--otp` and at the OTP prompt, and installing what was published.
//!
//! pnpm 12 sends the couch login with the password twice, as `Authorization: Basic` and in the
//! body: the code it sends must be checked once, not once per copy of the password.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// One pnpm with its own home, config and store.
struct Pnpm {
    bin: PathBuf,
    dir: tempfile::TempDir,
    registry: String,
}

impl Pnpm {
    fn new(major: u32, reg: &Registry) -> Pnpm {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("npmrc"),
            format!("registry={}\n", reg.url()),
        )
        .unwrap();
        Pnpm {
            bin: ensure_pnpm(major),
            dir,
            registry: reg.url(),
        }
    }

    fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        let home = self.dir.path();
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .arg(format!("--registry={}", self.registry))
            .current_dir(cwd)
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("XDG_STATE_HOME", home.join("state"))
            .env("npm_config_userconfig", home.join("npmrc"))
            .env("npm_config_cache", home.join("npm-cache"))
            .env("npm_config_registry", &self.registry)
            .env("npm_config_update_notifier", "false")
            .env("npm_config_store_dir", home.join("store"))
            .env("NO_COLOR", "1")
            .env_remove("npm_config_otp")
            .env_remove("PNPM_CONFIG_OTP")
            .env_remove("CI");
        cmd
    }

    fn run(&self, cwd: &Path, args: &[&str]) -> Run {
        Run::of(self.command(cwd, args))
    }

    fn pty(&self, cwd: &Path, args: &[&str]) -> Pty {
        pty_of(self.command(cwd, args))
    }

    /// A package folder to publish.
    fn package(&self, name: &str, version: &str) -> PathBuf {
        let dir = self.dir.path().join("pkgs").join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = serde_json::json!({
            "name": name, "version": version, "main": "index.js", "license": "MIT",
        });
        std::fs::write(dir.join("package.json"), manifest.to_string()).unwrap();
        std::fs::write(
            dir.join("index.js"),
            format!("module.exports = {version:?};\n"),
        )
        .unwrap();
        dir
    }
}

/// Log in with a one-time password, publish with `--otp` and at the prompt, install.
fn log_in_publish_and_install(major: u32) {
    // Without npm's browser login both clients ask for the password at the terminal.
    let reg = Registry::start_with(&[("TESSERA_WEB__BROWSER_LOGIN", "false")]);
    let t = reg.signup("alice", "alice-password");
    let (secret, _) = reg.enable_2fa(&t, "alice-password", "auth-and-writes");
    let pnpm = Pnpm::new(major, &reg);
    let home = pnpm.dir.path().to_owned();
    let version = pnpm.run(&home, &["--version"]);
    assert!(
        version.ok().starts_with(&format!("{major}.")),
        "{}",
        version.all()
    );

    // login: password, then the code at pnpm's (or npm's) OTP prompt
    reg.advance(30);
    let mut p = pnpm.pty(&home, &["login"]);
    p.expect("sername").send("alice");
    p.expect("assword").send("alice-password");
    if major >= 12 {
        p.expect("mail").send("alice@example.com");
    }
    p.expect("Enter OTP").send(&reg.otp(&secret, 0));
    let (out, code) = p.finish();
    assert_eq!(code, 0, "pnpm {major} login: {out}");
    assert!(out.contains("Logged in"), "{out}");
    let whoami = Command::new("npm")
        .args(["whoami", "--registry", &reg.url()])
        .env("npm_config_userconfig", home.join("npmrc"))
        .output()
        .unwrap();
    if major < 12 {
        // pnpm 9 and 10 log in through npm, into npm's config
        assert_eq!(String::from_utf8_lossy(&whoami.stdout).trim(), "alice");
    }

    // publish with --otp
    reg.advance(30);
    let otp = format!("--otp={}", reg.otp(&secret, 0));
    let dir = pnpm.package("pn-demo", "1.0.0");
    let out = pnpm.run(&dir, &["publish", "--no-git-checks", &otp]);
    assert_eq!(out.code, 0, "pnpm {major} publish --otp: {}", out.all());
    // publish at the prompt
    reg.advance(30);
    let dir = pnpm.package("pn-demo", "1.0.1");
    let mut p = pnpm.pty(&dir, &["publish", "--no-git-checks"]);
    p.expect("Enter OTP").send(&reg.otp(&secret, 0));
    let (out, code) = p.finish();
    assert_eq!(code, 0, "pnpm {major} publish at the prompt: {out}");
    let doc = reg.http().get("/pn-demo").json();
    assert_eq!(doc["dist-tags"]["latest"], "1.0.1", "{doc}");
    assert!(doc["versions"]["1.0.0"].is_object());
    // a publish without a code is refused without one at hand (no terminal)
    let dir = pnpm.package("pn-demo", "1.0.2");
    let out = pnpm.run(&dir, &["publish", "--no-git-checks"]);
    assert_ne!(out.code, 0, "{}", out.all());
    assert!(reg.http().get("/pn-demo").json()["versions"]["1.0.2"].is_null());

    // install
    let project = home.join("project");
    std::fs::create_dir_all(&project).unwrap();
    std::fs::write(
        project.join("package.json"),
        r#"{"name":"project","version":"1.0.0","private":true}"#,
    )
    .unwrap();
    let out = pnpm.run(&project, &["add", "pn-demo@1.0.0"]);
    assert_eq!(out.code, 0, "pnpm {major} add: {}", out.all());
    let installed = std::fs::read_to_string(project.join("node_modules/pn-demo/index.js"))
        .unwrap_or_else(|e| panic!("pnpm {major} installed nothing: {e}\n{}", out.all()));
    assert!(installed.contains("1.0.0"), "{installed}");
}

#[test]
fn pnpm_9_logs_in_publishes_and_installs_with_2fa() {
    log_in_publish_and_install(9);
}

#[test]
fn pnpm_10_logs_in_publishes_and_installs_with_2fa() {
    log_in_publish_and_install(10);
}

#[test]
fn pnpm_12_logs_in_publishes_and_installs_with_2fa() {
    log_in_publish_and_install(12);
}

/// The request pnpm 12 sends, by hand: Basic credentials and the password in the body, then
/// the same with a fresh code. The code is accepted once for the login; a second login with
/// the same code is refused (it is spent), so checking it once does not weaken replay
/// protection.
#[test]
fn a_couch_login_with_basic_credentials_checks_its_code_once() {
    let reg = Registry::start();
    let t = reg.signup("bob", "bob-password");
    let (secret, _) = reg.enable_2fa(&t, "bob-password", "auth-only");
    reg.advance(30);
    let basic = format!(
        "Basic {}",
        data_encoding::BASE64.encode(b"bob:bob-password")
    );
    let body = serde_json::json!({"name": "bob", "password": "bob-password"}).to_string();
    let login = |otp: Option<&str>| {
        let mut h = vec![
            ("authorization", basic.as_str()),
            ("content-type", "application/json"),
            ("user-agent", "pnpm/12.24.0 npm/? node/v20 linux x64"),
        ];
        if let Some(o) = otp {
            h.push(("npm-otp", o));
        }
        reg.http().send(
            "PUT",
            "/-/user/org.couchdb.user:bob",
            &h,
            Some(body.clone().into_bytes()),
        )
    };
    let first = login(None);
    assert_eq!(first.status, 401, "{}", first.text);
    assert_eq!(first.header("www-authenticate"), Some("otp"));
    let code = reg.otp(&secret, 0);
    let second = login(Some(&code));
    assert_eq!(second.status, 201, "{}", second.text);
    assert!(second.json()["token"].as_str().unwrap().starts_with("tsr_"));
    let replay = login(Some(&code));
    assert_eq!(replay.status, 401, "a spent code: {}", replay.text);
}
