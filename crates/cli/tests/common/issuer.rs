//! A stand-in CI identity provider (an OIDC issuer) on a loopback port: an RSA key made with
//! openssl, its JWKS and discovery document served over HTTP, and identity tokens signed with
//! it, as GitHub Actions or GitLab would mint them.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The issuer: its URL, key and the thread serving it.
pub struct Issuer {
    /// `http://127.0.0.1:PORT` (the `iss` of its tokens).
    pub url: String,
    key: EncodingKey,
    /// What GitHub's token endpoint (`/token`) hands out next, and the requests it saw.
    github: Arc<Mutex<GithubEndpoint>>,
    _dir: tempfile::TempDir,
}

/// The stand-in of GitHub Actions' `ACTIONS_ID_TOKEN_REQUEST_URL`.
#[derive(Default)]
struct GithubEndpoint {
    next: Option<String>,
    /// The query strings of the requests that carried [`REQUEST_TOKEN`].
    seen: Vec<String>,
}

/// The bearer a job presents to its token endpoint (`ACTIONS_ID_TOKEN_REQUEST_TOKEN`).
pub const REQUEST_TOKEN: &str = "job-request-token";

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

impl Issuer {
    /// Makes a key and starts serving its JWKS (key id `test-key`).
    pub fn start() -> Issuer {
        let dir = tempfile::tempdir().unwrap();
        let pem: PathBuf = dir.path().join("key.pem");
        openssl(&["genrsa", "-out", pem.to_str().unwrap(), "2048"]);
        let modulus = openssl(&["rsa", "-in", pem.to_str().unwrap(), "-noout", "-modulus"]);
        let hex = modulus.trim().trim_start_matches("Modulus=");
        let n = data_encoding::HEXUPPER.decode(hex.as_bytes()).unwrap();
        let n = data_encoding::BASE64URL_NOPAD.encode(&n);
        let key = EncodingKey::from_rsa_pem(&std::fs::read(&pem).unwrap()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let jwks = json!({"keys": [{"kty": "RSA", "kid": "test-key", "use": "sig", "alg": "RS256", "n": n, "e": "AQAB"}]});
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
        let github = Arc::new(Mutex::new(GithubEndpoint::default()));
        let endpoint = github.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut line = String::new();
                let mut reader = BufReader::new(s.try_clone().unwrap());
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // the rest of the head
                let mut authorized = false;
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                    if h.to_ascii_lowercase().trim()
                        == format!("authorization: bearer {REQUEST_TOKEN}")
                    {
                        authorized = true;
                    }
                    h.clear();
                }
                let target = line.split_whitespace().nth(1).unwrap_or("");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let body = match path {
                    "/.well-known/openid-configuration" => discovery.to_string(),
                    "/jwks" => jwks.to_string(),
                    "/token" if authorized => {
                        let mut e = endpoint.lock().unwrap();
                        e.seen.push(query.to_owned());
                        e.next
                            .take()
                            .map(|t| json!({ "value": t }).to_string())
                            .unwrap_or_default()
                    }
                    _ => String::new(),
                };
                let status = if body.is_empty() {
                    "404 Not Found"
                } else {
                    "200 OK"
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Issuer {
            url,
            key,
            github,
            _dir: dir,
        }
    }

    /// Makes GitHub's token endpoint hand out `token` once.
    pub fn hand_out(&self, token: String) {
        self.github.lock().unwrap().next = Some(token);
    }

    /// The query strings the token endpoint was asked with.
    pub fn requests(&self) -> Vec<String> {
        self.github.lock().unwrap().seen.clone()
    }

    /// A token with these claims (and `iss`, `jti`, `iat`, `nbf`, `exp` around `now` unless
    /// given), signed with the issuer's key.
    pub fn token(&self, now: u64, claims: Value) -> String {
        self.token_with(now, claims, "test-key", &self.key)
    }

    /// As [`Issuer::token`], naming key `kid` and signed with `key`.
    pub fn token_with(&self, now: u64, claims: Value, kid: &str, key: &EncodingKey) -> String {
        let mut c = json!({
            "iss": self.url,
            "jti": format!("jti-{}", rand_suffix()),
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        });
        for (k, v) in claims.as_object().unwrap() {
            c[k] = v.clone();
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &c, key).unwrap()
    }

    /// Another key, which the issuer does not publish.
    pub fn stranger_key() -> EncodingKey {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("other.pem");
        openssl(&["genrsa", "-out", pem.to_str().unwrap(), "2048"]);
        EncodingKey::from_rsa_pem(&std::fs::read(&pem).unwrap()).unwrap()
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// GitHub Actions claims for `repository` running `.github/workflows/<file>`.
pub fn github_claims(aud: &str, repository: &str, file: &str) -> Value {
    json!({
        "aud": aud,
        "sub": format!("repo:{repository}:ref:refs/heads/main"),
        "repository": repository,
        "repository_owner": repository.split('/').next().unwrap(),
        "repository_owner_id": "4242",
        "repository_id": "777",
        "workflow_ref": format!("{repository}/.github/workflows/{file}@refs/heads/main"),
        "job_workflow_ref": format!("{repository}/.github/workflows/{file}@refs/heads/main"),
        "ref": "refs/heads/main",
    })
}
