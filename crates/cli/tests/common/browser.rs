//! A real headless Chromium, driven over WebDriver (Debian's chromium and chromium-driver,
//! installed by .ci/run). The client is a few W3C WebDriver calls over HTTP; chromedriver and
//! the browser are stopped (by PID) when the `Browser` is dropped.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

use super::DEADLINE;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    _profile: TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(DEADLINE))
        .build()
        .into()
}

fn call(method: &str, url: &str, body: Option<Value>) -> Value {
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json");
    let res = match body {
        Some(b) => agent().run(req.body(serde_json::to_vec(&b).unwrap()).unwrap()),
        None => agent().run(req.body(()).unwrap()),
    };
    let mut res = res.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let text = res.body_mut().read_to_string().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile.
    pub fn start() -> Browser {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver must be installed (apt-get install chromium chromium-driver; .ci/run does it)");
        let base = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        loop {
            let ready = agent()
                .get(&format!("{base}/status"))
                .call()
                .ok()
                .map(|mut r| r.body_mut().read_to_string().unwrap_or_default());
            if ready.is_some_and(|t| t.contains("\"ready\":true")) {
                break;
            }
            assert!(start.elapsed() < DEADLINE, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--window-size=1100,860", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps", "--disable-extensions",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let res = call("POST", &format!("{base}/session"), Some(caps));
        let session = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {res}"))
            .to_owned();
        Browser {
            driver,
            base,
            session,
            _profile: profile,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/session/{}{}", self.base, self.session, path)
    }

    /// Adds a WebDriver virtual authenticator: `"ctap2"` (a passkey-capable key with a
    /// resident-key store and user verification) or `"ctap1/u2f"` (a U2F-style key). Returns its
    /// id. It answers WebAuthn ceremonies on every page of this session at once.
    pub fn add_authenticator(&self, protocol: &str) -> String {
        let ctap2 = protocol == "ctap2";
        let res = call(
            "POST",
            &self.url("/webauthn/authenticator"),
            Some(json!({
                "protocol": protocol,
                "transport": "usb",
                "hasResidentKey": ctap2,
                "hasUserVerification": ctap2,
                "isUserConsenting": true,
                "isUserVerified": ctap2,
            })),
        );
        res["value"]
            .as_str()
            .unwrap_or_else(|| panic!("no virtual authenticator: {res}"))
            .to_owned()
    }

    /// The credentials a virtual authenticator holds (id, sign count, …).
    pub fn authenticator_credentials(&self, authenticator: &str) -> Vec<Value> {
        let res = call(
            "GET",
            &self.url(&format!(
                "/webauthn/authenticator/{authenticator}/credentials"
            )),
            None,
        );
        res["value"].as_array().cloned().unwrap_or_default()
    }

    /// Puts a credential (as [`Browser::authenticator_credentials`] returned it) into a virtual
    /// authenticator: a copy of a key, with the counter it had then.
    pub fn add_credential(&self, authenticator: &str, credential: &Value) {
        let mut c = credential.clone();
        if let Some(o) = c.as_object_mut() {
            o.retain(|k, _| {
                [
                    "credentialId",
                    "isResidentCredential",
                    "rpId",
                    "privateKey",
                    "userHandle",
                    "signCount",
                ]
                .contains(&k.as_str())
            });
        }
        let res = call(
            "POST",
            &self.url(&format!(
                "/webauthn/authenticator/{authenticator}/credential"
            )),
            Some(c),
        );
        assert!(
            res["value"]["error"].is_null(),
            "adding a credential: {res}"
        );
    }

    /// Removes a virtual authenticator (as if the key were unplugged).
    pub fn remove_authenticator(&self, authenticator: &str) {
        call(
            "DELETE",
            &self.url(&format!("/webauthn/authenticator/{authenticator}")),
            None,
        );
    }

    /// Opens a URL.
    pub fn goto(&self, url: &str) {
        call("POST", &self.url("/url"), Some(json!({"url": url})));
    }

    /// The current URL.
    pub fn current_url(&self) -> String {
        call("GET", &self.url("/url"), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The page's HTML.
    pub fn source(&self) -> String {
        call("GET", &self.url("/source"), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Finds an element by CSS selector, waiting for it to appear.
    pub fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let res = call(
                "POST",
                &self.url("/element"),
                Some(json!({"using": "css selector", "value": css})),
            );
            if let Some(id) = res["value"][ELEMENT].as_str() {
                return id.to_owned();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no element {css} on {}:\n{}",
                self.current_url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether an element exists now.
    pub fn exists(&self, css: &str) -> bool {
        let res = call(
            "POST",
            &self.url("/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        res["value"][ELEMENT].is_string()
    }

    /// Types into an element.
    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        call(
            "POST",
            &self.url(&format!("/element/{el}/clear")),
            Some(json!({})),
        );
        call(
            "POST",
            &self.url(&format!("/element/{el}/value")),
            Some(json!({"text": text})),
        );
    }

    /// Clicks an element.
    pub fn click(&self, css: &str) {
        let el = self.find(css);
        call(
            "POST",
            &self.url(&format!("/element/{el}/click")),
            Some(json!({})),
        );
    }

    /// Clicks a button that submits a form and waits until the browser has left the page, so
    /// that a form posting back to its own URL is not mistaken for done before it ran.
    pub fn submit(&self, css: &str) {
        let old = self.find("html");
        self.click(css);
        let start = Instant::now();
        loop {
            let res = call("GET", &self.url(&format!("/element/{old}/name")), None);
            if res["value"]["error"].is_string() {
                break;
            }
            assert!(start.elapsed() < DEADLINE, "{css} did not leave the page");
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Saves a PNG of the window under `name` in the screenshot folder (`target/screenshots`,
    /// or `TESSERA_SCREENSHOT_DIR`, which the README's pictures come from).
    pub fn screenshot(&self, name: &str) {
        let png = call("GET", &self.url("/screenshot"), None)["value"]
            .as_str()
            .map(|b| data_encoding::BASE64.decode(b.as_bytes()).unwrap())
            .expect("a screenshot");
        let dir = std::env::var_os("TESSERA_SCREENSHOT_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots")
            });
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    /// The visible text of an element.
    pub fn text(&self, css: &str) -> String {
        let el = self.find(css);
        call("GET", &self.url(&format!("/element/{el}/text")), None)["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the current URL contains `part`.
    pub fn wait_for_url(&self, part: &str) {
        let start = Instant::now();
        while !self.current_url().contains(part) {
            assert!(
                start.elapsed() < DEADLINE,
                "never reached {part}; at {}:\n{}",
                self.current_url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the page's HTML contains `text`.
    pub fn wait_for_text(&self, text: &str) {
        let start = Instant::now();
        while !self.source().contains(text) {
            assert!(
                start.elapsed() < DEADLINE,
                "never saw {text:?} at {}:\n{}",
                self.current_url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `script` in the page as an async function: it calls `done(value)` (its last
    /// argument) and the value comes back.
    pub fn run_async(&self, script: &str) -> Value {
        let res = call(
            "POST",
            &self.url("/execute/async"),
            Some(json!({"script": script, "args": []})),
        );
        res["value"].clone()
    }

    /// Forgets every cookie (a signed-out browser that keeps its authenticators).
    pub fn clear_cookies(&self) {
        call("DELETE", &self.url("/cookie"), None);
    }

    /// The browser's cookies (name → value).
    pub fn cookies(&self) -> Vec<(String, String)> {
        call("GET", &self.url("/cookie"), None)["value"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| {
                        (
                            c["name"].as_str().unwrap_or("").to_owned(),
                            c["value"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The full cookie objects (for attribute checks).
    pub fn cookie_objects(&self) -> Vec<Value> {
        call("GET", &self.url("/cookie"), None)["value"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        call("DELETE", &self.url(""), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
