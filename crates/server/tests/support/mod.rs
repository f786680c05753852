//! An in-process test layer: the real router (`tessera_server::app`) on a real SQLite database
//! in a temporary folder, driven with `tower::ServiceExt::oneshot`, and a seeded registry with
//! a caller of every kind. No socket, no child process: a whole permission matrix runs in about
//! a second.

#![allow(dead_code)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

use tessera_server::{AppState, Config};

/// The host every request names; the website's own origin is `http://` + this.
pub const HOST: &str = "registry.test";

/// A registry in process.
pub struct TestApp {
    /// Its state (store, configuration, clock).
    pub state: AppState,
    dir: std::path::PathBuf,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What a request answered.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: axum::http::HeaderMap,
    /// Body as text.
    pub body: String,
}

impl Answer {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// How a request authenticates.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credential.
    None,
    /// `Authorization: Bearer …`.
    Token(String),
    /// A website session: the `Cookie` header value.
    Session(String),
}

impl TestApp {
    /// A fresh registry with the default configuration.
    pub async fn new() -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tessera-inproc-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let config = Config {
            data: dir.clone(),
            ..Config::default()
        };
        let state = tessera_server::open_state(config)
            .await
            .expect("open the registry");
        TestApp { state, dir }
    }

    /// Sends one request through the router.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", HOST);
        match auth {
            Auth::None => {}
            Auth::Token(t) => req = req.header("authorization", format!("Bearer {t}")),
            Auth::Session(c) => req = req.header("cookie", c.as_str()),
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = tessera_server::app(self.state.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .expect("the router answers");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 64 << 20)
            .await
            .expect("body");
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// A JSON request.
    pub async fn json(&self, method: Method, path: &str, auth: &Auth, body: &Value) -> Answer {
        self.call(
            method,
            path,
            auth,
            &[("content-type", "application/json")],
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }

    /// A GET.
    pub async fn get(&self, path: &str, auth: &Auth) -> Answer {
        self.call(Method::GET, path, auth, &[], Vec::new()).await
    }

    /// Signs up `name` (password `NAME-password`) and returns its login token.
    pub async fn sign_up(&self, name: &str) -> String {
        let r = self
            .json(
                Method::PUT,
                &format!("/-/user/org.couchdb.user:{name}"),
                &Auth::None,
                &json!({"name": name, "password": format!("{name}-password"), "email": format!("{name}@example.com")}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "sign-up {name}: {}", r.body);
        r.json()["token"].as_str().unwrap().to_owned()
    }

    /// Creates a token of `owner`'s from the token-create body `fields` (the password is added).
    pub async fn token(&self, owner: &str, login: &str, mut fields: Value) -> String {
        fields["password"] = json!(format!("{owner}-password"));
        let r = self
            .json(
                Method::POST,
                "/-/npm/v1/tokens",
                &Auth::Token(login.to_owned()),
                &fields,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "token: {}", r.body);
        r.json()["token"].as_str().unwrap().to_owned()
    }

    /// Publishes `name@version` with `token`.
    pub async fn publish(&self, token: &str, name: &str, version: &str) -> Answer {
        let tgz = tgz(&json!({"name": name, "version": version}));
        self.json(
            Method::PUT,
            &format!("/{}", name.replacen('/', "%2f", 1)),
            &Auth::Token(token.to_owned()),
            &publish_body(name, version, &tgz),
        )
        .await
    }

    /// Signs `name` in on the website (no 2FA) and returns the session's `Cookie` value.
    pub async fn web_session(&self, name: &str) -> String {
        let page = self.get("/-/web/signin", &Auth::None).await;
        assert!(
            session_cookie(&page).is_none(),
            "the sign-in page stores no session"
        );
        let cookie = form_cookie(&page).expect("the sign-in page sets a form token");
        let csrf = form_value(&page.body, "csrf").expect("a csrf field");
        let form = format!("csrf={csrf}&name={name}&password={name}-password");
        let r = self
            .call(
                Method::POST,
                "/-/web/signin",
                &Auth::Session(cookie),
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("origin", &format!("http://{HOST}")),
                ],
                form.into_bytes(),
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "web sign-in: {}", r.body);
        session_cookie(&r).expect("the signed-in session")
    }
}

/// The session cookie a response sets, as a `Cookie` header value.
pub fn session_cookie(a: &Answer) -> Option<String> {
    cookie_set(a, "tessera_session=")
}

/// The cookie starting with `prefix` a response sets, as a `Cookie` header value.
fn cookie_set(a: &Answer, prefix: &str) -> Option<String> {
    a.headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(prefix))
        .and_then(|c| c.split(';').next())
        .map(str::to_owned)
}

/// The form-token cookie a page for visitors without a session sets, as a `Cookie` value.
pub fn form_cookie(a: &Answer) -> Option<String> {
    cookie_set(a, "tessera_form=")
}

/// The value of the hidden form field `name` in a page.
pub fn form_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\""))?;
    let rest = &html[at..];
    let v = rest.find("value=\"")? + 7;
    let end = rest[v..].find('"')?;
    Some(rest[v..v + end].to_owned())
}

/// A gzipped tarball holding `package/package.json`.
pub fn tgz(manifest: &Value) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let data = serde_json::to_vec(manifest).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "package/package.json", &data[..])
        .unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

/// The body `npm publish` sends for `name@version`.
pub fn publish_body(name: &str, version: &str, tgz: &[u8]) -> Value {
    json!({
        "_id": name,
        "name": name,
        "dist-tags": {"latest": version},
        "versions": {version: {"name": name, "version": version, "_id": format!("{name}@{version}")}},
        "access": null,
        "_attachments": {format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": data_encoding::BASE64.encode(tgz),
            "length": tgz.len()
        }}
    })
}
