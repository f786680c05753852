//! Bad input gets npm's `{"error": …}` with the right status, and changes nothing.

mod common;

use common::*;
use serde_json::{Value, json};

struct Fixture {
    reg: Registry,
    token: String,
}

impl Fixture {
    fn new(env: &[(&str, &str)]) -> Self {
        let reg = Registry::start_with(env);
        let token = reg.signup("alice", "alice-password");
        Fixture { reg, token }
    }

    fn http(&self) -> Http {
        self.reg.http().with_token(&self.token)
    }

    fn publish(&self, name: &str, version: &str, body: &Value) -> Resp {
        let path = format!("/{}", name.replacen('/', "%2f", 1));
        let _ = version;
        self.http().put_json(&path, body)
    }

    fn good(&self, name: &str, version: &str) -> Value {
        let m = json!({"name": name, "version": version});
        publish_body(&self.reg.url(), name, version, &tgz(&m, &[]))
    }

    fn assert_absent(&self, name: &str) {
        let path = format!("/{}", name.replacen('/', "%2f", 1));
        assert_eq!(self.http().get(&path).status, 404, "{name} must not exist");
    }
}

fn assert_error(r: &Resp, status: u16, needle: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    let e = r.error();
    assert!(e.contains(needle), "error {e:?} should mention {needle:?}");
}

#[test]
fn invalid_package_names_are_refused() {
    let f = Fixture::new(&[]);
    for name in [
        "Upper",
        ".dot",
        "_under",
        "has space",
        "node_modules",
        "http",
        "@Scope/x",
        "@s/.x",
        &"x".repeat(215),
    ] {
        let body = f.good(name, "1.0.0");
        let path = format!("/{}", percent(name));
        let r = f.http().put_json(&path, &body);
        assert_eq!(r.status, 400, "{name}: {}", r.text);
        assert!(r.error().contains("name"), "{}", r.text);
    }
    let r = f.http().get("/-/v1/search?text=x");
    assert_eq!(r.json()["total"], 0, "nothing was created");
}

fn percent(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' | '@' => c.to_string(),
            '/' => "%2f".into(),
            c => format!("%{:02X}", c as u32),
        })
        .collect()
}

#[test]
fn invalid_versions_and_mismatches_are_refused() {
    let f = Fixture::new(&[]);
    // not semver
    let mut b = f.good("demo", "1.0.0");
    let v = b["versions"]["1.0.0"].take();
    b["versions"] = json!({"1.0": v});
    assert_error(&f.publish("demo", "1.0", &b), 400, "Invalid version");
    // the tarball says another version
    let m = json!({"name": "demo", "version": "2.0.0"});
    let b = publish_body(&f.reg.url(), "demo", "1.0.0", &tgz(&m, &[]));
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "inside the tarball");
    // the tarball says another name
    let m = json!({"name": "other", "version": "1.0.0"});
    let b = publish_body(&f.reg.url(), "demo", "1.0.0", &tgz(&m, &[]));
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "inside the tarball");
    // the URL and the document disagree
    let b = f.good("demo", "1.0.0");
    assert_error(&f.http().put_json("/other", &b), 400, "does not match");
    // integrity mismatch
    let mut b = f.good("demo", "1.0.0");
    b["versions"]["1.0.0"]["dist"]["integrity"] = json!("sha512-AAAA");
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "Integrity");
    let mut b = f.good("demo", "1.0.0");
    b["versions"]["1.0.0"]["dist"]["shasum"] = json!("0000000000000000000000000000000000000000");
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "shasum");
    // not a tarball at all
    let mut b = f.good("demo", "1.0.0");
    b["_attachments"]["demo-1.0.0.tgz"]["data"] = json!(data_encoding::BASE64.encode(b"hello"));
    b["_attachments"]["demo-1.0.0.tgz"]["length"] = json!(5);
    b["versions"]["1.0.0"]["dist"] = json!({});
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "Invalid tarball");
    // bad base64, wrong length
    let mut b = f.good("demo", "1.0.0");
    b["_attachments"]["demo-1.0.0.tgz"]["data"] = json!("***");
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "base64");
    let mut b = f.good("demo", "1.0.0");
    b["_attachments"]["demo-1.0.0.tgz"]["length"] = json!(1);
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "bytes");
    // path traversal inside the archive
    let m = json!({"name": "demo", "version": "1.0.0"});
    let mut evil = tgz_with_raw_name(&m, "package/../../../etc/cron.d/x");
    let b = publish_body(&f.reg.url(), "demo", "1.0.0", &std::mem::take(&mut evil));
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "unsafe path");
    // two new versions at once, unscoped restricted
    let mut b = f.good("demo", "1.0.0");
    let v = b["versions"]["1.0.0"].clone();
    b["versions"]["1.0.1"] = v;
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "exactly one");
    let mut b = f.good("demo", "1.0.0");
    b["access"] = json!("restricted");
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "Unscoped");
    // a tag that is a range
    let mut b = f.good("demo", "1.0.0");
    b["dist-tags"] = json!({"1.x": "1.0.0"});
    assert_error(&f.publish("demo", "1.0.0", &b), 400, "SemVer range");
    f.assert_absent("demo");
    // then a good one works, and the same version again is a 409
    assert_eq!(
        f.publish("demo", "1.0.0", &f.good("demo", "1.0.0")).status,
        201
    );
    assert_error(
        &f.publish("demo", "1.0.0", &f.good("demo", "1.0.0")),
        409,
        "previously published",
    );
    let doc = f.http().get("/demo").json();
    assert_eq!(doc["versions"].as_object().unwrap().len(), 1);
}

fn tgz_with_raw_name(manifest: &Value, evil: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    for (name, data) in [
        (
            "package/package.json".to_string(),
            serde_json::to_vec(manifest).unwrap(),
        ),
        (evil.to_string(), b"x".to_vec()),
    ] {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(&data);
        raw.resize(raw.len().div_ceil(512) * 512, 0);
    }
    raw.extend_from_slice(&[0; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    gz.finish().unwrap()
}

#[test]
fn bodies_over_the_limit_and_malformed_json() {
    let f = Fixture::new(&[("TESSERA_MAX_BODY_SIZE", "2kb")]);
    let big = vec![b'a'; 5000];
    let m = json!({"name": "demo", "version": "1.0.0"});
    let b = publish_body(
        &f.reg.url(),
        "demo",
        "1.0.0",
        &tgz(&m, &[("package/big.txt", &big)]),
    );
    let mut b = b;
    b["readme"] = json!("x".repeat(4000));
    let r = f.publish("demo", "1.0.0", &b);
    assert_error(&r, 413, "limit");
    f.assert_absent("demo");
    let r = f.http().send(
        "PUT",
        "/demo",
        &[("content-type", "application/json")],
        Some(b"{\"name\": \"demo\", ".to_vec()),
    );
    assert_error(&r, 400, "Malformed JSON");
    let r = f.http().send(
        "PUT",
        "/demo",
        &[("content-type", "application/json")],
        Some(b"[1,2]".to_vec()),
    );
    assert_error(&r, 400, "JSON object");
    let r = f
        .http()
        .put_json("/demo", &json!({"_id": "demo", "whatever": true}));
    assert_error(&r, 400, "Unrecognised");
    f.assert_absent("demo");
    // a NUL in any text (PostgreSQL cannot store one) is refused alike on both backends
    let mut b = f.good("demo", "1.0.0");
    b["versions"]["1.0.0"]["description"] = json!("a\u{0}b");
    let r = f.publish("demo", "1.0.0", &b);
    assert_error(&r, 400, "NUL");
    f.assert_absent("demo");
    let r = f
        .http()
        .post_json("/-/npm/v1/user", &json!({"fullname": "Alice\u{0}"}));
    assert_error(&r, 400, "NUL");
}

#[test]
fn tarball_paths_cannot_escape() {
    let f = Fixture::new(&[]);
    assert_eq!(
        f.publish("demo", "1.0.0", &f.good("demo", "1.0.0")).status,
        201
    );
    for path in [
        "/demo/-/..%2f..%2f..%2fetc%2fpasswd",
        "/demo/-/../../etc/passwd",
        "/demo/-/demo-1.0.0.tgz%00",
        "/demo/-/other-1.0.0.tgz",
        "/demo/-/demo-9.9.9.tgz",
        "/%2e%2e/-/x.tgz",
    ] {
        let r = f.http().get(path);
        assert!(
            r.status == 404 || r.status == 400,
            "{path}: {} {}",
            r.status,
            r.text
        );
    }
    assert_eq!(f.http().get("/demo/-/demo-1.0.0.tgz").status, 200);
}

#[test]
fn writes_need_credentials_and_rights() {
    let f = Fixture::new(&[]);
    assert_eq!(
        f.publish("demo", "1.0.0", &f.good("demo", "1.0.0")).status,
        201
    );
    let anon = f.reg.http();
    let r = anon.put_json("/demo", &f.good("demo", "1.0.1"));
    assert_error(&r, 401, "logged in");
    let r = anon
        .with_token("tsr_notarealtokenatallnotarealtokenatall12")
        .get("/-/whoami");
    assert_eq!(r.status, 401);
    let bob = f.reg.signup("bob", "bob-password");
    let r = f
        .reg
        .http()
        .with_token(&bob)
        .put_json("/demo", &f.good("demo", "1.0.1"));
    assert_error(&r, 403, "permission");
    let r = f.reg.http().with_token(&bob).delete(&format!(
        "/demo/-rev/{}",
        f.http().get("/demo").json()["_rev"].as_str().unwrap()
    ));
    assert_eq!(r.status, 403);
    let r = f
        .reg
        .http()
        .with_token(&bob)
        .post_json("/-/package/demo/access", &json!({"access": "public"}));
    assert_eq!(r.status, 403);
    // an owner change naming an unknown user changes nothing
    let rev = f.http().get("/demo").json()["_rev"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = f.http().put_json(&format!("/demo/-rev/{rev}"), &json!({"_id": "demo", "_rev": rev, "maintainers": [{"name": "alice"}, {"name": "nobody"}]}));
    assert_error(&r, 404, "nobody");
    // a stale revision is a conflict
    let r = f.http().put_json("/demo/-rev/1-0000000000000000", &json!({"_id": "demo", "_rev": "1-0000000000000000", "maintainers": [{"name": "alice"}, {"name": "bob"}]}));
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        f.http().get("/demo").json()["maintainers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        f.http().get("/demo").json()["versions"]
            .as_object()
            .unwrap()
            .len(),
        1
    );
}
