//! Operations: rotating the key that seals TOTP secrets (with the key file and with
//! `TESSERA_SECRET_KEY`), and explicit schema migrations.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

fn login(reg: &Registry, otp: &str) -> u16 {
    login_as(reg, "alice", "alice-password", otp)
}

fn login_as(reg: &Registry, name: &str, password: &str, otp: &str) -> u16 {
    reg.http()
        .send(
            "PUT",
            &format!("/-/user/org.couchdb.user:{name}"),
            &[("content-type", "application/json"), ("npm-otp", otp)],
            Some(serde_json::to_vec(&json!({"name": name, "password": password})).unwrap()),
        )
        .status
}

fn admin_ok(reg: &Registry, args: &[&str]) -> String {
    let out = reg.admin(args, None);
    assert!(
        out.status.success(),
        "tessera admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn key_ids(ring: &str) -> Vec<String> {
    ring.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').next().unwrap().to_owned())
        .collect()
}

#[test]
fn rotating_the_key_file_reseals_every_secret_while_the_server_runs() {
    let reg = Registry::start();
    let t = reg.signup("alice", "alice-password");
    let (secret, _) = reg.enable_2fa(&t, "alice-password", "auth-and-writes");
    // a second account with a pending enrolment: its secret is sealed too
    let bob = reg.signup("bob", "bob-password1");
    let r = reg.http().with_token(&bob).post_json(
        "/-/npm/v1/user",
        &json!({"tfa": {"password": "bob-password1", "mode": "auth-only"}}),
    );
    assert_eq!(r.status, 200);
    let key_file = reg.data.join("secret.key");
    assert_eq!(key_ids(&std::fs::read_to_string(&key_file).unwrap()), ["1"]);

    let out = if on_postgres() {
        // a shared database: rotate-key makes no key itself; the operator installs the next
        // ring on every instance first
        let refused = admin_ok(&reg, &["rotate-key"]);
        assert!(refused.contains("no key is made here"), "{refused}");
        assert!(
            refused.contains("re-sealed 0 secrets under key 1"),
            "{refused}"
        );
        let next = admin_ok(&reg, &["rotate-key", "--print-next"]);
        std::fs::write(&key_file, next).unwrap();
        admin_ok(&reg, &["rotate-key"])
    } else {
        let out = admin_ok(&reg, &["rotate-key"]);
        assert!(out.contains("new key 2"), "{out}");
        out
    };
    assert!(out.contains("re-sealed 2 secrets under key 2"), "{out}");
    assert_eq!(
        key_ids(&std::fs::read_to_string(&key_file).unwrap()),
        ["1", "2"]
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "still private");
    }
    // the running server picks the new key up from the file
    reg.advance(30);
    assert_eq!(login(&reg, &reg.otp(&secret, 0)), 201);

    // nothing uses key 1 any more: retire it; a restarted server only has key 2
    let out = admin_ok(&reg, &["rotate-key", "--retire-old"]);
    assert!(
        out.contains("retired keys [1, 2]") || out.contains("retired keys"),
        "{out}"
    );
    // (a shared database retires without making a key: key 2 stays)
    let last = if on_postgres() { "2" } else { "3" };
    assert_eq!(
        key_ids(&std::fs::read_to_string(&key_file).unwrap()),
        [last]
    );
    // the running server follows the file before sealing: an enrolment right after the
    // retirement is sealed under the new current key, not a retired one
    let carol = reg.signup("carol", "carol-password");
    let (carol_secret, _) = reg.enable_2fa(&carol, "carol-password", "auth-only");
    let reg = reg.restart(&[]);
    reg.advance(30);
    assert_eq!(
        login(&reg, &reg.otp(&secret, 0)),
        201,
        "the secret opens with the last key only"
    );
    assert_eq!(
        login_as(&reg, "carol", "carol-password", &reg.otp(&carol_secret, 0)),
        201,
        "sealed under the last key by the running server"
    );
    assert_eq!(login(&reg, "000000"), 401);
}

#[test]
fn rotating_a_key_given_in_the_environment() {
    let ring1 = String::from_utf8(
        Command::new(tessera_bin())
            .args(["admin", "new-key"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let one_line = |ring: &str| {
        ring.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .collect::<Vec<_>>()
            .join(",")
    };
    let env1 = one_line(&ring1);
    let reg = Registry::start_with(&[("TESSERA_SECRET_KEY", &env1)]);
    if !on_postgres() {
        assert!(
            !reg.data.join("secret.key").exists(),
            "no key file with the variable"
        );
    }
    let t = reg.signup("alice", "alice-password");
    let (secret, _) = reg.enable_2fa(&t, "alice-password", "auth-only");

    // 1. the next ring: the old key and a new current one
    let next = admin_ok(&reg, &["rotate-key", "--print-next"]);
    assert_eq!(key_ids(&next), ["1", "2"]);
    let env2 = one_line(&next);
    // 2. every instance restarts with it: old secrets still open
    let reg = reg.restart(&[("TESSERA_SECRET_KEY", &env2)]);
    reg.advance(30);
    assert_eq!(login(&reg, &reg.otp(&secret, 0)), 201);
    // 3. re-seal under key 2 and get the ring without key 1
    let out = reg.admin(&["rotate-key", "--retire-old"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.contains("re-sealed 1 secrets under key 2"), "{out}");
    let final_ring: String = out.lines().filter(|l| l.starts_with("2:")).collect();
    assert!(!final_ring.is_empty(), "{out}");
    // 4. with only key 2, the secret still opens
    let reg = reg.restart(&[("TESSERA_SECRET_KEY", &final_ring)]);
    reg.advance(30);
    assert_eq!(login(&reg, &reg.otp(&secret, 0)), 201);
    // and a server given only the old key cannot open it: rotation really re-sealed
    let old_only: String = env1.clone();
    let reg = reg.restart(&[("TESSERA_SECRET_KEY", &old_only)]);
    reg.advance(30);
    let status = login(&reg, &reg.otp(&secret, 0));
    assert_ne!(status, 201, "the old key no longer opens the secret");
}

#[test]
fn manual_migrations_are_run_by_the_admin_command() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // a server set to manual migrations refuses an empty (old) schema
    let out = Command::new(tessera_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("TESSERA_MIGRATE", "manual")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tessera admin migrate"), "{err}");
    // the admin command applies them, once
    let run = |args: &[&str]| {
        let out = Command::new(tessera_bin())
            .args(args)
            .arg("--data")
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run(&["admin", "migrate"]);
    assert!(first.contains("applied migrations [1, 2, 3, "), "{first}");
    let second = run(&["admin", "migrate"]);
    assert!(second.contains("up to date"), "{second}");
    // now a manual-migration server starts on it
    let mut child = Command::new(tessera_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .env("TESSERA_MIGRATE", "manual")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.contains("tessera listening on"), "{first:?}");
}

/// An export whose tarball was altered or removed is refused by `import`, which names it.
#[test]
fn import_refuses_an_altered_or_incomplete_export() {
    let src = Registry::start();
    let alice = src.npm_as("alice");
    alice.publish("kept", "1.0.0", &[]).ok();
    let dump = tempfile::tempdir().unwrap();
    let out_dir = dump.path().join("export");
    admin_ok(&src, &["export", "--out", out_dir.to_str().unwrap()]);
    let tarballs: Vec<std::path::PathBuf> = std::fs::read_dir(out_dir.join("tarballs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(tarballs.len(), 1);
    let original = std::fs::read(&tarballs[0]).unwrap();
    // one byte changed
    let mut altered = original.clone();
    altered[100] ^= 0xff;
    std::fs::write(&tarballs[0], &altered).unwrap();
    let dst = Registry::start();
    let out = dst.admin(&["import", out_dir.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let name = tarballs[0].file_name().unwrap().to_str().unwrap();
    assert!(err.contains(&name[..16]), "{err}");
    assert_eq!(dst.http().get("/kept").status, 404, "nothing imported");
    // missing altogether: the rows would point at nothing
    std::fs::remove_file(&tarballs[0]).unwrap();
    let dst = Registry::start();
    let out = dst.admin(&["import", out_dir.to_str().unwrap()], None);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.contains(&name[..16]), "{err}");
    // put back, it imports and verifies
    std::fs::write(&tarballs[0], &original).unwrap();
    let dst = Registry::start();
    let text = admin_ok(&dst, &["import", out_dir.to_str().unwrap()]);
    assert!(text.contains("verified"), "{text}");
    assert_eq!(
        dst.http().get("/kept").json()["dist-tags"]["latest"],
        "1.0.0"
    );
}
