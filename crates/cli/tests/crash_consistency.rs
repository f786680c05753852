//! Crash consistency: the server is killed with SIGKILL (by the PID this test started) at
//! random points while it publishes, unpublishes and turns 2FA on and off, then started again
//! on the same data, and what it stores is checked, below the API (the database and the tarball
//! store, read directly while the server is down) and through it (after the restart):
//! - every version listed has its tarball, matching its recorded SHA-512, integrity and shasum;
//!   no row refers to a missing tarball (a tarball no row refers to is tolerated: a crash
//!   between a tarball's write and its metadata's commit leaves one);
//! - nothing acknowledged is lost: a publish answered 201 is there, an unpublish answered 200 is
//!   gone; a write the crash cut off is either fully there or fully gone (an unpublished version
//!   keeps no dist-tag, its tarball is not served and its number cannot be published again);
//! - 2FA is fully on (the profile says so, writes and logins need a code, recovery codes exist)
//!   or fully off (none of these), never half-enabled.
//!
//! The kill delays are drawn from a seeded generator (printed; `TESSERA_TEST_SEED` replays a
//! run) over the time an uninterrupted batch of the same writes takes. Iterations are bounded.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::consistency::{Stores, check_over_http};
use common::*;
use serde_json::json;
use tessera_store::TwoFactorStatus;

/// Kill-and-restart rounds per test.
const ROUNDS: usize = 40;

/// Uninterrupted rounds first, to measure how long a batch takes.
const CALIBRATION: usize = 2;

/// What became of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Answered with success.
    Done,
    /// Answered with a refusal (the status).
    Refused(u16),
    /// No answer: the server died first. The write may or may not have happened.
    Unknown,
}

fn outcome(r: &Result<Resp, String>, ok: u16) -> Outcome {
    match r {
        Ok(r) if r.status == ok => Outcome::Done,
        Ok(r) => Outcome::Refused(r.status),
        Err(_) => Outcome::Unknown,
    }
}

/// One thread's part of a batch of writes.
type Job<'a, T> = Box<dyn FnOnce() -> T + Send + 'a>;

/// Runs `batch` on its own threads (each returns its results); after `kill_after`, if given,
/// kills the server. Returns the results and how long the batch took.
fn crash_during<T: Send>(
    reg: &mut Registry,
    kill_after: Option<Duration>,
    batch: Vec<Job<'_, T>>,
) -> (Vec<T>, Duration) {
    let start = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = batch.into_iter().map(|f| s.spawn(f)).collect();
        if let Some(d) = kill_after {
            std::thread::sleep(d);
            reg.kill();
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect::<Vec<T>>()
    });
    (results, start.elapsed())
}

/// A delay in `0..window`, drawn from `rng`.
fn delay(rng: &mut Rng, window: Duration) -> Duration {
    Duration::from_micros(rng.below(window.as_micros().max(1) as u64))
}

fn package_tgz(name: &str, version: &str) -> Vec<u8> {
    tgz(
        &json!({"name": name, "version": version}),
        &[(
            "package/index.js",
            format!("module.exports = {version:?};\n").as_bytes(),
        )],
    )
}

fn publish(http: &Http, base: &str, name: &str, version: &str, tgz: &[u8]) -> Outcome {
    let r = http.try_send(
        "PUT",
        &format!("/{name}"),
        &[("content-type", "application/json")],
        Some(serde_json::to_vec(&publish_body(base, name, version, tgz)).unwrap()),
    );
    outcome(&r, 201)
}

/// [`unpublish`], tried again (up to five times) while racing publishes make it a conflict.
fn unpublish_retrying(http: &Http, name: &str, version: &str) -> Outcome {
    let mut o = unpublish(http, name, version);
    for _ in 0..4 {
        if o != Outcome::Refused(409) {
            break;
        }
        o = unpublish(http, name, version);
    }
    o
}

/// `npm unpublish name@version`: the document without the version at the revision read (the
/// step that removes it), then the tarball's DELETE.
fn unpublish(http: &Http, name: &str, version: &str) -> Outcome {
    let doc = match http.try_send("GET", &format!("/{name}?write=true"), &[], None) {
        Ok(r) if r.status == 200 => r.json(),
        Ok(r) => return Outcome::Refused(r.status),
        Err(_) => return Outcome::Unknown,
    };
    let mut doc = doc;
    let rev = doc["_rev"].as_str().unwrap().to_owned();
    doc["versions"].as_object_mut().unwrap().remove(version);
    let r = http.try_send(
        "PUT",
        &format!("/{name}/-rev/{rev}"),
        &[("content-type", "application/json")],
        Some(serde_json::to_vec(&doc).unwrap()),
    );
    let o = outcome(&r, 200);
    if o == Outcome::Done
        && let Ok(d) = http.try_send("GET", &format!("/{name}?write=true"), &[], None)
        && d.status == 200
    {
        let rev = d.json()["_rev"].as_str().unwrap().to_owned();
        let _ = http.try_send(
            "DELETE",
            &format!("/{name}/-/{name}-{version}.tgz/-rev/{rev}"),
            &[],
            None,
        );
    }
    o
}

#[test]
fn publishes_and_unpublishes_killed_at_random_points_leave_a_consistent_store() {
    let mut rng = Rng::seeded("publish/unpublish crashes");
    let mut reg = Registry::start();
    let token = reg.signup("alice", "alice-password");
    let name = "crashy";
    // versions acknowledged and not unpublished since, with their tarballs
    let mut live: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    // versions whose unpublish was acknowledged, or that a cut-off unpublish removed
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let http = reg.http().with_token(&token);
    for i in 0..4 {
        let v = format!("1.0.{i}");
        let t = package_tgz(name, &v);
        assert_eq!(publish(&http, &reg.url(), name, &v, &t), Outcome::Done);
        live.insert(v, t);
    }
    let mut window = Duration::ZERO;
    let mut kills = 0;
    let mut orphans = 0;
    let mut cut_off = 0;
    let mut refused = 0;
    // the first rounds run to the end, to measure the window the kills are spread over
    for round in 0..CALIBRATION + ROUNDS {
        // two publishers of two new versions each, and one unpublisher of two live versions
        let fresh: Vec<(String, Vec<u8>)> = (0..4)
            .map(|i| {
                let v = format!("1.{}.{i}", round + 1);
                let t = package_tgz(name, &v);
                (v, t)
            })
            .collect();
        let candidates: Vec<&String> = live.keys().collect();
        let doomed: Vec<String> = if candidates.len() >= 3 {
            let a = rng.below(candidates.len() as u64) as usize;
            let b = (a + 1 + rng.below(candidates.len() as u64 - 1) as usize) % candidates.len();
            vec![candidates[a].clone(), candidates[b].clone()]
        } else {
            Vec::new()
        };
        let http = reg.http().with_token(&token);
        let base = reg.url();
        let mut batch: Vec<Job<Vec<(String, Outcome)>>> = Vec::new();
        for pair in fresh.chunks(2) {
            let (http, base) = (http.clone(), base.clone());
            batch.push(Box::new(move || {
                pair.iter()
                    .map(|(v, t)| (v.clone(), publish(&http, &base, name, v, t)))
                    .collect()
            }));
        }
        {
            let (http, doomed) = (http.clone(), doomed.clone());
            batch.push(Box::new(move || {
                doomed
                    .iter()
                    .map(|v| (v.clone(), unpublish_retrying(&http, name, v)))
                    .collect()
            }));
        }
        let kill_after = (round >= CALIBRATION).then(|| delay(&mut rng, window));
        let (results, took) = crash_during(&mut reg, kill_after, batch);
        if round < CALIBRATION {
            window = window.max(took + took / 4);
            eprintln!("an uninterrupted batch takes {took:?}");
        }
        let (published, unpublished) = results.split_at(results.len() - 1);
        let published: BTreeMap<&String, &Outcome> =
            published.iter().flatten().map(|(v, o)| (v, o)).collect();
        let unpublished: BTreeMap<&String, &Outcome> =
            unpublished[0].iter().map(|(v, o)| (v, o)).collect();
        let unknown = published
            .values()
            .chain(unpublished.values())
            .filter(|o| ***o == Outcome::Unknown)
            .count();
        cut_off += unknown;
        if round < CALIBRATION {
            assert_eq!(unknown, 0, "nothing is cut off without a kill");
        } else {
            kills += 1;
        }

        // below the API, with the server dead
        reg.kill();
        let stored: BTreeSet<String> = {
            let stores = Stores::open(&reg);
            orphans = stores.check_tarballs();
            stores
                .check_package(name)
                .map(|d| d.versions.into_iter().map(|v| v.version).collect())
                .unwrap_or_default()
        };
        reg = reg.restart(&[]);
        let http = reg.http().with_token(&token);
        let shown: BTreeSet<String> = check_over_http(&reg.http(), name)
            .map(|s| s.versions.into_keys().collect())
            .unwrap_or_default();
        let context = format!(
            "round {round} (kill after {kill_after:?}): published {published:?}, \
             unpublished {unpublished:?}, stored {stored:?}"
        );
        assert_eq!(shown, stored, "{context}: the API shows what is stored");

        for (v, t) in &fresh {
            match published[v] {
                Outcome::Done => assert!(stored.contains(v), "{context}: {v} was acknowledged"),
                Outcome::Refused(s) => panic!("{context}: the publish of {v} was refused: {s}"),
                Outcome::Unknown => {}
            }
            if stored.contains(v) {
                let r = http.get(&format!("/{name}/-/{name}-{v}.tgz"));
                assert_eq!(&r.bytes, t, "{context}: {v} serves what was published");
                live.insert(v.clone(), t.clone());
            }
        }
        for v in &doomed {
            match unpublished[v] {
                Outcome::Done => assert!(!stored.contains(v), "{context}: {v} was unpublished"),
                // a conflict with a racing publish: nothing removed
                Outcome::Refused(409) => {
                    refused += 1;
                    assert!(stored.contains(v), "{context}: {v} was not unpublished")
                }
                Outcome::Refused(s) => panic!("{context}: the unpublish of {v} was refused: {s}"),
                Outcome::Unknown => {}
            }
            if !stored.contains(v) {
                live.remove(v);
                gone.insert(v.clone());
            }
        }
        let expected: BTreeSet<String> = live.keys().cloned().collect();
        assert_eq!(stored, expected, "{context}: nothing else changed");
        // fully gone: no tarball served, and the number is retired
        for v in &gone {
            let r = http.get(&format!("/{name}/-/{name}-{v}.tgz"));
            assert_eq!(r.status, 404, "{context}: {v} was unpublished");
        }
        if let Some(v) = gone
            .iter()
            .nth(rng.below(gone.len().max(1) as u64) as usize)
        {
            let again = publish(&http, &reg.url(), name, v, &package_tgz(name, v));
            assert_eq!(
                again,
                Outcome::Refused(409),
                "{context}: {v} cannot come back"
            );
        }
    }
    eprintln!(
        "{kills} kills over {window:?}, {cut_off} writes cut off, {} versions live, {} unpublished \
         ({refused} unpublishes refused as conflicts five times), {orphans} orphan tarballs at the end",
        live.len(),
        gone.len()
    );
    let stores = Stores::open(&reg);
    stores.check_tarballs();
    stores.check_package(name).unwrap();
}

/// The 2FA state the API reports for the account of `http`'s token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tfa {
    Off,
    Pending,
    On,
}

fn tfa_over_http(http: &Http) -> Tfa {
    let r = http.get("/-/npm/v1/user");
    assert_eq!(r.status, 200, "{}", r.text);
    let tfa = &r.json()["tfa"];
    if tfa == &json!(false) {
        Tfa::Off
    } else if tfa["pending"] == json!(true) {
        Tfa::Pending
    } else {
        assert_eq!(tfa["mode"], "auth-and-writes", "{tfa}");
        Tfa::On
    }
}

fn tfa_in_store(status: Option<TwoFactorStatus>) -> Tfa {
    match status {
        None => Tfa::Off,
        Some(TwoFactorStatus::Pending(_)) => Tfa::Pending,
        Some(TwoFactorStatus::Active(_)) => Tfa::On,
    }
}

/// The code for `secret` at the server time `now` (Unix seconds).
fn code_at(secret: &str, now: u64) -> String {
    let key = tessera_otp::decode_base32(secret).unwrap();
    tessera_otp::code_for_step(&key, tessera_otp::step_at(now))
}

/// What one 2FA batch did.
#[derive(Debug, Default)]
struct TfaBatch {
    /// Enable: the start (`POST {tfa: {password, mode}}`), with the secret it returned.
    start: Option<(Outcome, Option<String>)>,
    /// Enable: the confirmation with the first code (sent only with a secret in hand).
    confirm: Option<Outcome>,
    /// Disable (`POST {tfa: {password, mode: "disable"}}` with a code).
    disable: Option<Outcome>,
}

fn enable(http: &Http, now: u64) -> TfaBatch {
    let r = http.try_send(
        "POST",
        "/-/npm/v1/user",
        &[("content-type", "application/json")],
        Some(
            serde_json::to_vec(
                &json!({"tfa": {"password": "alice-password", "mode": "auth-and-writes"}}),
            )
            .unwrap(),
        ),
    );
    let secret = r.as_ref().ok().filter(|r| r.status == 200).map(|r| {
        let uri = r.json()["tfa"].as_str().unwrap().to_owned();
        uri.split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned()
    });
    let mut b = TfaBatch {
        start: Some((outcome(&r, 200), secret.clone())),
        ..TfaBatch::default()
    };
    if let Some(s) = secret {
        let r = http.try_send(
            "POST",
            "/-/npm/v1/user",
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(&json!({"tfa": [code_at(&s, now)]})).unwrap()),
        );
        b.confirm = Some(outcome(&r, 200));
    }
    b
}

fn disable(http: &Http, secret: &str, now: u64) -> TfaBatch {
    let code = code_at(secret, now);
    let r = http.try_send(
        "POST",
        "/-/npm/v1/user",
        &[("content-type", "application/json"), ("npm-otp", &code)],
        Some(
            serde_json::to_vec(&json!({"tfa": {"password": "alice-password", "mode": "disable"}}))
                .unwrap(),
        ),
    );
    TfaBatch {
        disable: Some(outcome(&r, 200)),
        ..TfaBatch::default()
    }
}

#[test]
fn two_factor_changes_killed_at_random_points_are_all_or_nothing() {
    let mut rng = Rng::seeded("2FA crashes");
    let mut reg = Registry::start();
    let token = reg.signup("alice", "alice-password");
    let http = reg.http().with_token(&token);
    let t = package_tgz("guarded", "1.0.0");
    assert_eq!(
        publish(&http, &reg.url(), "guarded", "1.0.0", &t),
        Outcome::Done
    );
    // the secret of the last enrolment a confirmation was sent for: the one in force if 2FA is on
    let mut secret: Option<String> = None;
    let mut state = Tfa::Off;
    let (mut enable_window, mut disable_window) = (Duration::ZERO, Duration::ZERO);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    // two uninterrupted rounds (an enable, a disable) measure the windows the kills are spread over
    for round in 0..CALIBRATION + ROUNDS {
        // a fresh time step, and past the five-minute windows of the failure throttles (a
        // killed attempt may leave its reservation counted)
        reg.advance(301);
        let now = reg.now_secs();
        let http = reg.http().with_token(&token);
        let enabling = state != Tfa::On;
        let window = if enabling {
            enable_window
        } else {
            disable_window
        };
        let kill_after = (round >= CALIBRATION).then(|| delay(&mut rng, window));
        let on_secret = secret.clone();
        let batch: Vec<Job<TfaBatch>> = vec![Box::new(move || {
            if enabling {
                enable(&http, now)
            } else {
                disable(&http, on_secret.as_deref().unwrap(), now)
            }
        })];
        let (mut results, took) = crash_during(&mut reg, kill_after, batch);
        let b = results.remove(0);
        if round < CALIBRATION {
            let w = took + took / 4;
            if enabling {
                enable_window = w;
            } else {
                disable_window = w;
            }
            eprintln!(
                "an uninterrupted {} takes {took:?}",
                if enabling { "enable" } else { "disable" }
            );
        }
        if let Some((_, Some(s))) = &b.start
            && b.confirm.is_some()
        {
            secret = Some(s.clone());
        }

        // below the API, with the server dead: the account and its TOTP row agree, and
        // recovery codes exist exactly when 2FA is on
        reg.kill();
        let stored = tfa_in_store(Stores::open(&reg).two_factor("alice").0);
        reg = reg.restart(&[]);
        let http = reg.http().with_token(&token);
        let shown = tfa_over_http(&http);
        let context = format!("round {round} (kill after {kill_after:?}): {b:?}");
        assert_eq!(shown, stored, "{context}: the profile shows what is stored");

        // what was acknowledged holds
        if b.confirm == Some(Outcome::Done) {
            assert_eq!(
                shown,
                Tfa::On,
                "{context}: the confirmation was acknowledged"
            );
        }
        if b.disable == Some(Outcome::Done) {
            assert_eq!(shown, Tfa::Off, "{context}: the disable was acknowledged");
        }
        if b.confirm.is_none() && b.disable.is_none() {
            assert_ne!(shown, Tfa::On, "{context}: nothing could turn 2FA on");
        }
        for o in [
            b.start.as_ref().map(|s| &s.0),
            b.confirm.as_ref(),
            b.disable.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            assert!(
                !matches!(o, Outcome::Refused(_)),
                "{context}: a refusal without a crash"
            );
        }

        // and the registry enforces exactly what it shows: a write and a login without a code
        reg.advance(30);
        let write = |otp: Option<&str>| {
            let mut h = vec![("content-type", "application/json")];
            if let Some(o) = otp {
                h.push(("npm-otp", o));
            }
            http.send(
                "PUT",
                "/-/package/guarded/dist-tags/check",
                &h,
                Some(b"\"1.0.0\"".to_vec()),
            )
        };
        let login = reg.http().put_json(
            "/-/user/org.couchdb.user:alice",
            &json!({"name": "alice", "password": "alice-password"}),
        );
        let bare = write(None);
        match shown {
            Tfa::On => {
                assert_eq!(
                    (bare.status, bare.header("www-authenticate")),
                    (401, Some("otp")),
                    "{context}: a write needs a code"
                );
                assert_eq!(
                    (login.status, login.header("www-authenticate")),
                    (401, Some("otp")),
                    "{context}: a login needs a code"
                );
                let code = reg.otp(secret.as_deref().unwrap(), 0);
                let r = write(Some(&code));
                assert_eq!(
                    r.status, 200,
                    "{context}: the code in force works: {}",
                    r.text
                );
            }
            Tfa::Off | Tfa::Pending => {
                assert_eq!(bare.status, 200, "{context}: no code needed: {}", bare.text);
                assert_eq!(login.status, 201, "{context}: {}", login.text);
            }
        }
        let key = format!("{state:?} → {shown:?}");
        *seen.entry(key).or_default() += 1;
        state = shown;
    }
    eprintln!("transitions seen: {seen:?}");
}
