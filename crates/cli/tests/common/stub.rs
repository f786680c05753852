//! A misbehaving upstream registry on a loopback port: each path answers what the test set
//! (a status, headers, a body, optionally dripped slowly), and every request is recorded.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One canned answer.
#[derive(Clone, Default)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Send the body one byte at a time with this pause between bytes.
    pub drip: Option<Duration>,
}

impl Reply {
    /// A 200 JSON answer.
    pub fn json(v: &serde_json::Value) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::to_vec(v).unwrap(),
            drip: None,
        }
    }

    /// A 200 answer with raw bytes.
    pub fn bytes(body: Vec<u8>) -> Reply {
        Reply {
            status: 200,
            headers: vec![],
            body,
            drip: None,
        }
    }
}

/// A request the stub saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Method.
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Headers (names in lower case).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// The stub.
pub struct Stub {
    /// `http://127.0.0.1:PORT/`
    pub url: String,
    replies: Arc<Mutex<HashMap<String, Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    handler: Arc<Mutex<Option<Handler>>>,
}

/// Answers a request no canned reply is set for.
pub type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

impl Stub {
    /// Starts it; unknown paths answer 404.
    pub fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let replies: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let handler: Arc<Mutex<Option<Handler>>> = Arc::default();
        let (r, s, h) = (replies.clone(), seen.clone(), handler.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let (r, s, h) = (r.clone(), s.clone(), h.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let method = parts.next().unwrap_or("").to_owned();
                    let path = parts.next().unwrap_or("").to_owned();
                    let mut len = 0usize;
                    let mut headers = Vec::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("content-length") {
                                len = v.trim().parse().unwrap_or(0);
                            }
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                        }
                    }
                    let mut body = vec![0; len.min(1 << 24)];
                    let _ = reader.read_exact(&mut body);
                    let request = Seen {
                        method,
                        path: path.clone(),
                        headers,
                        body,
                    };
                    s.lock().unwrap().push(request.clone());
                    let canned = r.lock().unwrap().get(&path).cloned();
                    let dynamic = h.lock().unwrap().clone();
                    let reply = match (canned, dynamic) {
                        (Some(reply), _) => reply,
                        (None, Some(handler)) => handler(&request),
                        (None, None) => Reply {
                            status: 404,
                            body: b"{\"error\":\"Not found\"}".to_vec(),
                            ..Default::default()
                        },
                    };
                    let mut head = format!(
                        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                        reply.status,
                        reply.body.len()
                    );
                    for (k, v) in &reply.headers {
                        head.push_str(&format!("{k}: {v}\r\n"));
                    }
                    head.push_str("\r\n");
                    if conn.write_all(head.as_bytes()).is_err() {
                        return;
                    }
                    match reply.drip {
                        None => {
                            let _ = conn.write_all(&reply.body);
                        }
                        Some(pause) => {
                            for b in &reply.body {
                                if conn.write_all(&[*b]).is_err() {
                                    return;
                                }
                                std::thread::sleep(pause);
                            }
                        }
                    }
                });
            }
        });
        Stub {
            url,
            replies,
            seen,
            handler,
        }
    }

    /// Sets what `path` answers.
    pub fn set(&self, path: &str, reply: Reply) {
        self.replies.lock().unwrap().insert(path.to_owned(), reply);
    }

    /// Takes `path`'s canned answer away (the handler, if any, answers it again).
    pub fn unset(&self, path: &str) {
        self.replies.lock().unwrap().remove(path);
    }

    /// Answers every path without a canned reply with `handler`.
    pub fn answer_with(&self, handler: Handler) {
        *self.handler.lock().unwrap() = Some(handler);
    }

    /// Serves `name@version` (a packument and a small tarball at the stub's own URL); returns
    /// the tarball.
    pub fn package(&self, name: &str, version: &str) -> Vec<u8> {
        let tgz = super::tgz(
            &serde_json::json!({"name": name, "version": version}),
            &[("package/index.js", b"1")],
        );
        let (_, integrity, shasum) = super::consistency::digests(&tgz);
        let bare = name.rsplit('/').next().unwrap_or(name);
        let doc = serde_json::json!({
            "name": name,
            "dist-tags": {"latest": version},
            "time": {"created": "2020-01-01T00:00:00.000Z", "modified": "2020-01-01T00:00:00.000Z",
                     version: "2020-01-01T00:00:00.000Z"},
            "versions": {version: {
                "name": name, "version": version,
                "dist": {"tarball": format!("{}{name}/-/{bare}-{version}.tgz", self.url),
                         "integrity": integrity, "shasum": shasum}
            }}
        });
        // npm's clients (and tessera) ask for scoped packuments as `@scope%2fname`
        self.set(
            &format!("/{}", name.replacen('/', "%2f", 1)),
            Reply::json(&doc),
        );
        self.set(
            &format!("/{name}/-/{bare}-{version}.tgz"),
            Reply::bytes(tgz.clone()),
        );
        tgz
    }

    /// Makes `path`'s answer drip, a byte per `pause`.
    pub fn drip(&self, path: &str, pause: Duration) {
        if let Some(r) = self.replies.lock().unwrap().get_mut(path) {
            r.drip = Some(pause);
        }
    }

    /// How many requests asked for `path`.
    pub fn count(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }

    /// The requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
