//! HTTP to one uplink: keep-alive, gzip, an optional proxy and CA, redirects only within the
//! uplink's own origin, a deadline per request (body included) and a cap on every body.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};

use crate::uplinks::settings::UplinkConfig;

/// What an uplink answered for a packument.
#[derive(Debug)]
pub enum Fetched {
    /// A (new) document, with its ETag.
    Body(Bytes, Option<String>),
    /// The cached document is still current (304).
    NotModified,
    /// The uplink does not have the name (404).
    NotFound,
}

/// Why a request to an uplink failed, and whether it counts against the uplink's breaker
/// (transport errors, timeouts and 5xx do; a refusal or a body that is too large does not, so
/// that a client cannot take the uplink down for everyone by asking for odd names).
#[derive(Debug, Clone)]
pub struct Failure {
    /// What happened, for the log and the client.
    pub message: String,
    /// Whether it says the uplink is unwell.
    pub unwell: bool,
}

impl Failure {
    fn unwell(message: String) -> Failure {
        Failure {
            message,
            unwell: true,
        }
    }

    fn refused(message: String) -> Failure {
        Failure {
            message,
            unwell: false,
        }
    }

    /// A transport error: the uplink is unwell, unless it only redirected elsewhere (a refusal
    /// of ours, which says nothing of its health).
    fn transport(e: reqwest::Error) -> Failure {
        if e.is_redirect() {
            Failure::refused(describe(e))
        } else {
            Failure::unwell(describe(e))
        }
    }

    fn of_status(s: StatusCode, what: String) -> Failure {
        let message = format!("answered {s} for {what}");
        if s.is_server_error() {
            Failure::unwell(message)
        } else {
            Failure::refused(message)
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// One uplink's client.
#[derive(Debug)]
pub struct UplinkClient {
    /// The uplink's configured name.
    pub name: String,
    base: Url,
    http: reqwest::Client,
    headers: HeaderMap,
    max_packument: u64,
    max_tarball: u64,
}

impl UplinkClient {
    /// Builds the client; reads the CA file and `auth.token_env` now.
    pub fn new(cfg: &UplinkConfig, user_agent: &str) -> Result<UplinkClient, String> {
        let mut base = Url::parse(&cfg.url).map_err(|e| format!("url: {e}"))?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let origin = base.origin();
        let mut b = reqwest::Client::builder()
            .user_agent(user_agent)
            .timeout(cfg.timeout.as_duration())
            .connect_timeout(cfg.timeout.as_duration().min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(90))
            .gzip(true)
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("too many redirects")
                } else if attempt.url().origin() != origin {
                    let host = attempt.url().host_str().unwrap_or("?").to_owned();
                    attempt.error(format!(
                        "a redirect to another host ({host}) is not followed"
                    ))
                } else {
                    attempt.follow()
                }
            }));
        if let Some(p) = &cfg.proxy {
            b = b.proxy(reqwest::Proxy::all(p).map_err(|e| format!("proxy: {e}"))?);
        }
        if let Some(ca) = &cfg.ca {
            let pem = std::fs::read(ca).map_err(|e| format!("ca {}: {e}", ca.display()))?;
            for c in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("ca {}: {e}", ca.display()))?
            {
                b = b.add_root_certificate(c);
            }
        }
        if !cfg.strict_ssl {
            b = b.tls_danger_accept_invalid_certs(true);
        }
        let mut headers = HeaderMap::new();
        for (k, v) in &cfg.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("header {k:?}"))?;
            let value = HeaderValue::from_str(v).map_err(|_| format!("header {k:?}: bad value"))?;
            headers.insert(name, value);
        }
        if let Some(a) = &cfg.auth {
            let mut v = HeaderValue::from_str(&a.header()?)
                .map_err(|_| "auth: the token is not a header value".to_string())?;
            v.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, v);
        }
        Ok(UplinkClient {
            name: cfg.name.clone(),
            base,
            http: b.build().map_err(|e| e.to_string())?,
            headers,
            max_packument: cfg.max_packument_size.0,
            max_tarball: cfg.max_tarball_size.0,
        })
    }

    /// The uplink's base URL.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Where the uplink serves `name`'s packument (`@scope%2fname` for scoped names).
    pub fn packument_url(&self, name: &str) -> Result<Url, String> {
        let encoded = name.replacen('/', "%2f", 1);
        self.base.join(&encoded).map_err(|e| e.to_string())
    }

    /// Where to fetch a tarball the uplink's packument links to: the link itself when it is on
    /// the uplink's origin under its base path, else the same file name under the uplink's own
    /// URL (a packument never makes this registry fetch from another host, or outside the
    /// uplink's path with its credentials).
    pub fn tarball_url(&self, linked: &str, name: &str) -> Result<Url, String> {
        if let Ok(u) = Url::parse(linked)
            && u.origin() == self.base.origin()
            && u.path().starts_with(self.base.path())
            && !u.path().contains("/../")
            && !u.path().to_ascii_lowercase().contains("%2e")
            && !u.path().to_ascii_lowercase().contains("%5c")
        {
            return Ok(u);
        }
        let file = linked
            .rsplit('/')
            .next()
            .filter(|f| {
                f.ends_with(".tgz")
                    && !f.starts_with('.')
                    && f.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
            })
            .ok_or_else(|| format!("the tarball link {linked:?} names no .tgz file"))?;
        self.base
            .join(&format!("{}/-/{file}", name.replacen('/', "%2f", 1)))
            .map_err(|e| e.to_string())
    }

    /// `GET` the packument of `name`, revalidating `etag` if given.
    pub async fn packument(&self, name: &str, etag: Option<&str>) -> Result<Fetched, Failure> {
        let mut req = self
            .http
            .get(self.packument_url(name).map_err(Failure::refused)?)
            .headers(self.headers.clone())
            .header(header::ACCEPT, "application/json");
        if let Some(e) = etag {
            req = req.header(header::IF_NONE_MATCH, e);
        }
        let res = req.send().await.map_err(Failure::transport)?;
        match res.status() {
            StatusCode::NOT_MODIFIED if etag.is_some() => Ok(Fetched::NotModified),
            StatusCode::NOT_FOUND => Ok(Fetched::NotFound),
            StatusCode::OK => {
                let etag = res
                    .headers()
                    .get(header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = read_capped(res, self.max_packument, "packument").await?;
                Ok(Fetched::Body(body, etag))
            }
            s => Err(Failure::of_status(s, format!("the packument of {name}"))),
        }
    }

    /// `GET /-/npm/v1/attestations/<name>@<version>`: the uplink's attestations document for a
    /// version (`None`: it has none), checked to be JSON with an `attestations` array.
    pub async fn attestations(&self, name: &str, version: &str) -> Result<Option<Bytes>, String> {
        let spec = format!("{}@{version}", name.replacen('/', "%2f", 1));
        let path = format!("-/npm/v1/attestations/{spec}");
        let Some((body, doc)) = self.get_json(&path, "attestations", 4 << 20, false).await? else {
            return Ok(None);
        };
        if !doc
            .get("attestations")
            .is_some_and(serde_json::Value::is_array)
        {
            return Err("its attestations document has no attestations array".into());
        }
        Ok(Some(body))
    }

    /// `GET /-/npm/v1/keys`: the uplink's registry signing keys, each checked to have npm's
    /// shape (a 404 or 400 is a registry without keys).
    pub async fn keys(&self) -> Result<Vec<serde_json::Value>, String> {
        let Some((_, doc)) = self
            .get_json("-/npm/v1/keys", "keys", 1 << 20, true)
            .await?
        else {
            return Ok(Vec::new());
        };
        let keys = doc
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or("its keys document has no keys array")?;
        Ok(keys
            .iter()
            .filter(|k| {
                let text = |f: &str| k.get(f).and_then(serde_json::Value::as_str);
                let p256 = |f: &str| k.get(f).is_none() || text(f) == Some("ecdsa-sha2-nistp256");
                text("keyid").is_some_and(|s| !s.is_empty() && s.len() <= 200)
                    && text("key").is_some_and(crate::signing::is_p256_spki)
                    && p256("keytype")
                    && p256("scheme")
                    && (k.get("expires").is_some_and(serde_json::Value::is_null)
                        || text("expires")
                            .is_some_and(|s| crate::config::parse_date_ms(s).is_some()))
            })
            .map(|k| {
                serde_json::json!({
                    "expires": k["expires"],
                    "keyid": k["keyid"],
                    "keytype": k.get("keytype").cloned().unwrap_or("ecdsa-sha2-nistp256".into()),
                    "scheme": k.get("scheme").cloned().unwrap_or("ecdsa-sha2-nistp256".into()),
                    "key": k["key"],
                })
            })
            .collect())
    }

    /// `GET <path>` below the uplink's URL as a JSON document of at most `max` bytes (`what`
    /// names it in errors): its bytes and value, or `None` for a 404 (and a 400 when
    /// `none_on_400`).
    async fn get_json(
        &self,
        path: &str,
        what: &str,
        max: u64,
        none_on_400: bool,
    ) -> Result<Option<(Bytes, serde_json::Value)>, String> {
        let url = self.base.join(path).map_err(|e| e.to_string())?;
        let res = self
            .http
            .get(url)
            .headers(self.headers.clone())
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(describe)?;
        match res.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::BAD_REQUEST if none_on_400 => return Ok(None),
            s => return Err(format!("its {what} answered {s}")),
        }
        let body = read_capped(res, max, what).await.map_err(|f| f.message)?;
        let doc =
            serde_json::from_slice(&body).map_err(|e| format!("its {what} are not JSON: {e}"))?;
        Ok(Some((body, doc)))
    }

    /// `GET` a tarball, whole.
    pub async fn tarball(&self, url: Url) -> Result<Bytes, Failure> {
        let res = self
            .http
            .get(url.clone())
            .headers(self.headers.clone())
            .header(header::ACCEPT, "application/octet-stream")
            .send()
            .await
            .map_err(Failure::transport)?;
        match res.status() {
            StatusCode::OK => read_capped(res, self.max_tarball, "tarball").await,
            s => Err(Failure::of_status(s, url.path().to_owned())),
        }
    }

    /// `POST`s a body to `path` under the uplink (the audit endpoints), as the client sent it.
    pub async fn post(
        &self,
        path: &str,
        body: Bytes,
        content_type: Option<&HeaderValue>,
        content_encoding: Option<&HeaderValue>,
    ) -> Result<(StatusCode, Option<HeaderValue>, Bytes), String> {
        let url = self
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| e.to_string())?;
        let mut req = self.http.post(url).headers(self.headers.clone()).body(body);
        if let Some(t) = content_type {
            req = req.header(header::CONTENT_TYPE, t);
        }
        if let Some(e) = content_encoding {
            req = req.header(header::CONTENT_ENCODING, e);
        }
        let res = req.send().await.map_err(describe)?;
        let status = res.status();
        let ctype = res.headers().get(header::CONTENT_TYPE).cloned();
        let body = read_capped(res, self.max_packument, "answer")
            .await
            .map_err(|f| f.message)?;
        Ok((status, ctype, body))
    }
}

/// Reads a body, refusing it past `max` bytes (after decompression).
async fn read_capped(mut res: reqwest::Response, max: u64, what: &str) -> Result<Bytes, Failure> {
    let too_large = || Failure::refused(format!("its {what} is larger than {max} bytes"));
    if res.content_length().is_some_and(|n| n > max) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = res.chunk().await.map_err(Failure::transport)? {
        if (buf.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// A transport error in a few words, with its cause.
fn describe(e: reqwest::Error) -> String {
    use std::error::Error;
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not be reached"
    } else if e.is_redirect() {
        "redirected badly"
    } else if e.is_decode() || e.is_body() {
        "sent a broken body"
    } else {
        "failed"
    };
    let mut cause = String::new();
    let mut src = e.source();
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({cause})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> UplinkClient {
        let cfg: UplinkConfig = toml::from_str(&format!("name = \"u\"\nurl = \"{url}\"")).unwrap();
        UplinkClient::new(&cfg, "tessera-test").unwrap()
    }

    #[test]
    fn packument_and_tarball_urls_stay_on_the_uplink() {
        let c = client("https://registry.example/npm");
        assert_eq!(
            c.packument_url("@types/node").unwrap().as_str(),
            "https://registry.example/npm/@types%2fnode"
        );
        assert_eq!(
            c.packument_url("lodash").unwrap().as_str(),
            "https://registry.example/npm/lodash"
        );
        // a link on the uplink's origin is used as is
        assert_eq!(
            c.tarball_url(
                "https://registry.example/npm/cdn/lodash-1.0.0.tgz",
                "lodash"
            )
            .unwrap()
            .as_str(),
            "https://registry.example/npm/cdn/lodash-1.0.0.tgz"
        );
        // a link elsewhere is fetched from the uplink, by file name
        assert_eq!(
            c.tarball_url("http://169.254.169.254/x/lodash-1.0.0.tgz", "lodash")
                .unwrap()
                .as_str(),
            "https://registry.example/npm/lodash/-/lodash-1.0.0.tgz"
        );
        assert_eq!(
            c.tarball_url(
                "https://evil.example/@types/node/-/node-1.0.0.tgz",
                "@types/node"
            )
            .unwrap()
            .as_str(),
            "https://registry.example/npm/@types%2fnode/-/node-1.0.0.tgz"
        );
        assert!(
            c.tarball_url("https://evil.example/metadata", "lodash")
                .is_err()
        );
        // on the uplink's host but outside its path, or climbing out of it: by file name
        assert_eq!(
            c.tarball_url("https://registry.example/admin/lodash-1.0.0.tgz", "lodash")
                .unwrap()
                .as_str(),
            "https://registry.example/npm/lodash/-/lodash-1.0.0.tgz"
        );
        assert_eq!(
            c.tarball_url(
                "https://registry.example/npm/%2e%2e/x/lodash-1.0.0.tgz",
                "lodash"
            )
            .unwrap()
            .as_str(),
            "https://registry.example/npm/lodash/-/lodash-1.0.0.tgz"
        );
        assert!(
            c.tarball_url("https://evil.example/..%5c..%5cx.tgz", "lodash")
                .is_err()
        );
        assert!(
            c.tarball_url("https://evil.example/a\\..\\b.tgz", "lodash")
                .is_err()
        );
    }
}
