//! Test harness: the real `tessera` binary on a free loopback port with a temporary data
//! directory, the real `npm` CLI with a throwaway home, userconfig and cache, a pty for npm's
//! prompts, and a small HTTP client for black-box checks.

#![allow(dead_code)]

pub mod browser;
pub mod consistency;
pub mod issuer;
pub mod sigstore;
pub mod stub;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// How long any single wait may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Whether the suite runs on PostgreSQL + S3 (`TESSERA_TEST_BACKEND=postgres`) instead of the
/// embedded SQLite + folder.
pub fn on_postgres() -> bool {
    std::env::var("TESSERA_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// A moto S3 server started by this test process, stopped (by PID) when dropped.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl Moto {
    /// Starts `moto_server` (from `TESSERA_TEST_MOTO`, `.ci/venv`, or the `PATH`).
    pub fn start() -> Moto {
        let bin = std::env::var("TESSERA_TEST_MOTO").unwrap_or_else(|_| {
            let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/venv/bin/moto_server");
            if venv.exists() {
                venv.display().to_string()
            } else {
                "moto_server".into()
            }
        });
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {bin} (the S3 server for these tests; .ci/run installs it): {e}"
                )
            });
        let endpoint = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < DEADLINE, "moto_server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Moto { child, endpoint }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bucket every S3 test uses (each backend gets its own prefix in it).
pub const BUCKET: &str = "tessera-test";

/// One PostgreSQL database and one S3 prefix, shared by every registry started on it (several
/// instances), dropped when the last holder goes.
pub struct SharedBackend {
    /// The database name.
    pub db_name: String,
    /// `postgres://…/db_name`
    pub database_url: String,
    /// `s3://bucket/prefix`
    pub storage_url: String,
    /// The S3 endpoint.
    pub s3_endpoint: String,
    /// The sealing key every instance shares.
    pub secret_key: String,
    /// The test clock every instance shares (`Registry::advance` on any moves them all).
    pub clock_file: PathBuf,
    _clock_dir: TempDir,
    _moto: Option<Moto>,
}

fn pg_base() -> String {
    std::env::var("TESSERA_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
        .trim_end_matches('/')
        .to_owned()
}

/// Runs one SQL statement with `psql` on the server's `postgres` database.
pub fn psql(sql: &str) {
    let out = Command::new("psql")
        .arg(format!("{}/postgres", pg_base()))
        .args(["-v", "ON_ERROR_STOP=1", "-qAtc", sql])
        .output()
        .expect("psql (the PostgreSQL client) must be installed: .ci/run installs it");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl SharedBackend {
    /// A fresh database and S3 prefix. S3 is the server in `TESSERA_TEST_S3_ENDPOINT` (with the
    /// bucket made), else a moto server started for this backend.
    pub fn new() -> std::sync::Arc<SharedBackend> {
        Self::with_key(None)
    }

    /// A fresh backend whose instances use `key` (a key ring), or a new key.
    pub fn with_key(key: Option<String>) -> std::sync::Arc<SharedBackend> {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let db_name = format!(
            "tessera_test_{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        psql(&format!("CREATE DATABASE \"{db_name}\""));
        let (s3_endpoint, moto) = match std::env::var("TESSERA_TEST_S3_ENDPOINT") {
            Ok(e) => (e, None),
            Err(_) => {
                let m = Moto::start();
                (m.endpoint.clone(), Some(m))
            }
        };
        create_bucket(&s3_endpoint);
        let secret_key = key.unwrap_or_else(|| {
            let out = Command::new(tessera_bin())
                .args(["admin", "new-key"])
                .output()
                .expect("tessera admin new-key");
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        });
        let clock_dir = tempfile::tempdir().unwrap();
        std::sync::Arc::new(SharedBackend {
            clock_file: clock_dir.path().join("clock-offset-ms"),
            _clock_dir: clock_dir,
            database_url: format!("{}/{db_name}", pg_base()),
            storage_url: format!("s3://{BUCKET}/{db_name}"),
            db_name,
            s3_endpoint,
            secret_key,
            _moto: moto,
        })
    }

    /// The standard variables object_store reads for S3, plus the shared test clock.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.s3_endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_ALLOW_HTTP", "true"),
            (
                "TESSERA_TEST_CLOCK_FILE",
                &self.clock_file.display().to_string(),
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// The `TESSERA_*` variables that put a registry on this backend.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("TESSERA_DATABASE", self.database_url.as_str()),
            ("TESSERA_STORAGE", self.storage_url.as_str()),
            ("TESSERA_S3__ENDPOINT", self.s3_endpoint.as_str()),
            ("TESSERA_S3__REGION", "us-east-1"),
            ("TESSERA_S3__ACCESS_KEY_ID", "test"),
            ("TESSERA_S3__SECRET_ACCESS_KEY", "test"),
            ("TESSERA_S3__ALLOW_HTTP", "true"),
            (
                "TESSERA_TEST_CLOCK_FILE",
                &self.clock_file.display().to_string(),
            ),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for SharedBackend {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .arg(format!("{}/postgres", pg_base()))
            .args([
                "-qAtc",
                &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db_name),
            ])
            .output();
    }
}

/// Creates the test bucket on an S3 server (signed, as moto wants; an existing bucket is fine).
pub fn create_bucket(endpoint: &str) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            "test:test",
            "-X",
            "PUT",
            &format!("{endpoint}/{BUCKET}"),
        ])
        .output()
        .expect("curl");
    let code = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        code == "200" || code == "409",
        "cannot create the bucket on {endpoint}: HTTP {code}"
    );
}

/// `PUT /-/package/demo/dist-tags/TAG` → 1.0.0 with `token`, and `otp` in `npm-otp` if given.
pub fn demo_tag(reg: &Registry, token: &str, tag: &str, otp: Option<&str>) -> Resp {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(o) = otp {
        headers.push(("npm-otp", o));
    }
    reg.http().with_token(token).send(
        "PUT",
        &format!("/-/package/demo/dist-tags/{tag}"),
        &headers,
        Some(b"\"1.0.0\"".to_vec()),
    )
}

/// A running registry, stopped (by PID) when dropped.
pub struct Registry {
    child: Child,
    /// The shared database and storage, when not on the embedded backend.
    pub backend: Option<std::sync::Arc<SharedBackend>>,
    /// The data directory.
    pub data: PathBuf,
    /// `127.0.0.1:PORT`
    pub addr: String,
    /// The `TESSERA_*` variables it was started with (admin commands get them too).
    env: Vec<(String, String)>,
    clock_file: PathBuf,
    _dir: TempDir,
    /// Everything the server wrote to stderr (its log), collected in the background.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// The path of the binary under test.
pub fn tessera_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tessera")
}

impl Registry {
    /// Starts a registry with its embedded defaults.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a registry with extra `TESSERA_*` environment variables, on the suite's backend.
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let backend = on_postgres().then(SharedBackend::new);
        Self::start_on(backend, env)
    }

    /// Starts one more instance on `backend` (scale-out tests), with its own data directory.
    pub fn start_on(backend: Option<std::sync::Arc<SharedBackend>>, env: &[(&str, &str)]) -> Self {
        Self::start_on_with(backend, env, false)
    }

    /// As [`Registry::start_on`], but the backend is given the way an operator might: the
    /// `--database` and `--storage` flags, and S3 settings in the standard `AWS_*` variables.
    pub fn start_on_with_flags(backend: std::sync::Arc<SharedBackend>) -> Self {
        Self::start_on_with(Some(backend), &[], true)
    }

    fn start_on_with(
        backend: Option<std::sync::Arc<SharedBackend>>,
        env: &[(&str, &str)],
        flags: bool,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut all: Vec<(String, String)> = Vec::new();
        let mut args: Vec<String> = Vec::new();
        if let Some(b) = &backend {
            if flags {
                all.extend(b.aws_env());
                args = vec![
                    "--database".into(),
                    b.database_url.clone(),
                    "--storage".into(),
                    b.storage_url.clone(),
                ];
            } else {
                all.extend(b.env());
            }
            // every instance holds the same sealing key, in its data directory
            std::fs::create_dir_all(&data).unwrap();
            let key = data.join("secret.key");
            std::fs::write(&key, &b.secret_key).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut reg = Self::start_in(dir, data, &all, &args);
        if let Some(b) = &backend {
            reg.clock_file = b.clock_file.clone();
        }
        reg.backend = backend;
        reg
    }

    /// Starts a registry (SQLite, its own data directory) with extra `tessera serve` arguments.
    pub fn start_with_args(args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        Self::start_in(dir, data, &[], args)
    }

    fn start_in(dir: TempDir, data: PathBuf, env: &[(String, String)], args: &[&str]) -> Self {
        let clock_file = dir.path().join("clock-offset-ms");
        let mut cmd = Command::new(tessera_bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(&data)
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("TESSERA_SECRET_KEY")
            .env("TESSERA_LOG", "info")
            .env("TESSERA_TEST_CLOCK_FILE", &clock_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start tessera");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log2.lock().unwrap().push_str(&line);
                log2.lock().unwrap().push('\n');
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!(
                "tessera did not report its address; log:\n{}",
                log.lock().unwrap()
            )
        });
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|r| r.split('/').next())
            .unwrap_or_else(|| panic!("unexpected first line: {line}"))
            .to_owned();
        Registry {
            child,
            backend: None,
            data,
            addr,
            env: env.to_vec(),
            clock_file,
            _dir: dir,
            log,
        }
    }

    /// Stops the server and starts it again on the same data (and backend, clock and
    /// variables), with `extra` variables on top.
    pub fn restart(mut self, extra: &[(&str, &str)]) -> Registry {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        let mut env = self.env.clone();
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut reg = Self::start_in(dir, self.data.clone(), &env, &[]);
        reg.clock_file = self.clock_file.clone();
        reg.backend = self.backend.take();
        reg
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, by its PID (a crash: no shutdown, nothing flushed), and
    /// reaps it. The data stays: [`Registry::restart`] starts it again on the same data.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Moves the server's clock forward by `secs` (the test hook `TESSERA_TEST_CLOCK_FILE`).
    pub fn advance(&self, secs: i64) {
        let now: i64 = std::fs::read_to_string(&self.clock_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        std::fs::write(&self.clock_file, (now + secs * 1000).to_string()).unwrap();
    }

    /// The server's idea of now, in Unix seconds.
    pub fn now_secs(&self) -> u64 {
        let offset: i64 = std::fs::read_to_string(&self.clock_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let sys = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        ((sys + offset) / 1000) as u64
    }

    /// Moves the server's clock to one second into the next 30-second step, so a test has a
    /// whole step before the next boundary (for strict-window checks).
    pub fn align_step(&self) {
        let into = (self.now_secs() % 30) as i64;
        self.advance(30 - into + 1);
    }

    /// The code an authenticator app shows now for `secret` (base32), `steps` time steps away.
    pub fn otp(&self, secret: &str, steps: i64) -> String {
        let key = tessera_otp::decode_base32(secret).expect("base32 secret");
        let step = tessera_otp::step_at(self.now_secs()) as i64 + steps;
        tessera_otp::code_for_step(&key, step as u64)
    }

    /// Turns 2FA on over the API for the account of `token`; returns the secret and the
    /// recovery codes.
    pub fn enable_2fa(&self, token: &str, password: &str, mode: &str) -> (String, Vec<String>) {
        let http = self.http().with_token(token);
        let r = http.post_json(
            "/-/npm/v1/user",
            &serde_json::json!({"tfa": {"password": password, "mode": mode}}),
        );
        assert_eq!(r.status, 200, "enable: {}", r.text);
        let uri = r.json()["tfa"].as_str().unwrap().to_owned();
        let secret = uri
            .split("secret=")
            .nth(1)
            .unwrap()
            .split('&')
            .next()
            .unwrap()
            .to_owned();
        let r = http.post_json(
            "/-/npm/v1/user",
            &serde_json::json!({"tfa": [self.otp(&secret, 0)]}),
        );
        assert_eq!(r.status, 200, "confirm: {}", r.text);
        let codes = r.json()["tfa"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        (secret, codes)
    }

    /// The registry URL npm is pointed at.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// An HTTP client for this registry.
    pub fn http(&self) -> Http {
        Http {
            base: format!("http://{}", self.addr),
            token: None,
        }
    }

    /// Creates an account over the API and returns its login token.
    pub fn signup(&self, name: &str, password: &str) -> String {
        let r = self.http().put_json(
            &format!("/-/user/org.couchdb.user:{name}"),
            &serde_json::json!({"name": name, "password": password, "email": format!("{name}@example.com")}),
        );
        assert_eq!(r.status, 201, "signup {name}: {}", r.text);
        r.json()["token"].as_str().unwrap().to_owned()
    }

    /// A fresh npm client pointed at this registry.
    pub fn npm(&self) -> Npm {
        Npm::new(&self.url())
    }

    /// A fresh npm client, logged in as a new account `name` (created over the API).
    pub fn npm_as(&self, name: &str) -> Npm {
        let token = self.signup(name, &format!("{name}-password"));
        let npm = self.npm();
        npm.set_token(&self.addr, &token);
        npm
    }

    /// Runs `tessera admin …` on this registry's data directory.
    pub fn admin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(tessera_bin());
        cmd.arg("admin").args(args).arg("--data").arg(&self.data);
        cmd.env_remove("TESSERA_SECRET_KEY")
            .env("TESSERA_TEST_CLOCK_FILE", &self.clock_file);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        run_with_stdin(cmd, stdin)
    }

    /// Everything the database holds, as bytes: the SQLite files, or a `pg_dump` of the
    /// PostgreSQL database (to check that no secret sits there in clear).
    pub fn database_bytes(&self) -> Vec<u8> {
        match &self.backend {
            None => {
                let mut bytes = Vec::new();
                for f in ["tessera.db", "tessera.db-wal"] {
                    if let Ok(b) = std::fs::read(self.data.join(f)) {
                        bytes.extend(b);
                    }
                }
                bytes
            }
            Some(b) => {
                let out = Command::new("pg_dump")
                    .args(["--data-only", &b.database_url])
                    .output()
                    .expect("pg_dump");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            }
        }
    }

    /// Runs one SQL statement behind the server's back (SQLite through Python's sqlite3
    /// module, PostgreSQL through psql) and returns what it printed: for tests that read or
    /// tamper with stored data.
    pub fn sql(&self, statement: &str) -> String {
        let out = match &self.backend {
            None => Command::new("python3")
                .args([
                    "-c",
                    "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
                     r=c.execute(sys.argv[2]).fetchall(); c.commit(); \
                     [print('|'.join(str(x) for x in row)) for row in r]",
                ])
                .arg(self.data.join("tessera.db"))
                .arg(statement)
                .output()
                .expect("python3"),
            Some(b) => Command::new("psql")
                .args([&b.database_url, "-qAtc", statement])
                .output()
                .expect("psql"),
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The number of rows in `table`, read behind the server's back.
    pub fn count_rows(&self, table: &str) -> i64 {
        assert!(table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        self.sql(&format!("select count(*) from {table}"))
            .parse()
            .expect("a count")
    }

    /// The server's log so far.
    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command, feeding `stdin`, and collects its output.
pub fn run_with_stdin(mut cmd: Command, stdin: Option<&str>) -> Output {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("wait")
}

/// What a command printed.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Runs `cmd` without a terminal and collects what it printed.
    pub fn of(cmd: Command) -> Run {
        let out = run_with_stdin(cmd, None);
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// Asserts success and returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "command failed:\n{}", self.all());
        &self.stdout
    }

    /// Asserts failure and returns all output.
    pub fn fails(&self) -> String {
        assert_ne!(self.code, 0, "command should have failed:\n{}", self.all());
        self.all()
    }
}

/// A real npm CLI with its own home, userconfig and cache.
pub struct Npm {
    dir: TempDir,
    registry: String,
}

impl Npm {
    /// A client for `registry`.
    pub fn new(registry: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        std::fs::write(dir.path().join("npmrc"), format!("registry={registry}\n")).unwrap();
        Npm {
            dir,
            registry: registry.to_owned(),
        }
    }

    /// The throwaway folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The userconfig file.
    pub fn userconfig(&self) -> PathBuf {
        self.dir.path().join("npmrc")
    }

    /// The userconfig's contents.
    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.userconfig()).unwrap_or_default()
    }

    /// Stores a token for the registry in the userconfig.
    pub fn set_token(&self, addr: &str, token: &str) {
        let mut text = self.config_text();
        text.retain(|_| true);
        let text: String = text
            .lines()
            .filter(|l| !l.contains(":_authToken="))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(
            self.userconfig(),
            format!("{text}//{addr}/:_authToken={token}\n"),
        )
        .unwrap();
    }

    /// The token stored for the registry, if any.
    pub fn token(&self) -> Option<String> {
        self.config_text()
            .lines()
            .find_map(|l| l.split(":_authToken=").nth(1).map(str::to_owned))
    }

    /// The `npm` command with the isolated environment.
    pub fn command(&self, cwd: &Path, args: &[&str]) -> Command {
        self.isolated(Command::new("npm"), cwd, args)
    }

    /// Another npm's CLI script (see [`ensure_npm`]) run by `node`, with the same isolated
    /// environment as [`Npm::command`].
    pub fn command_of(&self, cli: &Path, cwd: &Path, args: &[&str]) -> Command {
        let mut node = Command::new("node");
        node.arg(cli);
        self.isolated(node, cwd, args)
    }

    fn isolated(&self, mut cmd: Command, cwd: &Path, args: &[&str]) -> Command {
        cmd.args(args)
            .current_dir(cwd)
            .env("HOME", self.dir.path().join("home"))
            .env("npm_config_userconfig", self.userconfig())
            .env("npm_config_cache", self.dir.path().join("cache"))
            .env("npm_config_registry", &self.registry)
            .env("npm_config_update_notifier", "false")
            .env("npm_config_fund", "false")
            .env("npm_config_audit", "false")
            .env("npm_config_color", "false")
            .env("NO_COLOR", "1")
            .env_remove("npm_config_otp");
        cmd
    }

    /// Runs npm without a terminal (prompts fail) in `cwd`.
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Run {
        Run::of(self.command(cwd, args))
    }

    /// Runs another npm's CLI script (see [`ensure_npm`]) without a terminal in the client's
    /// own folder.
    pub fn run_cli(&self, cli: &Path, args: &[&str]) -> Run {
        Run::of(self.command_of(cli, self.dir.path(), args))
    }

    /// Runs npm without a terminal in the client's own folder.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(self.dir.path(), args)
    }

    /// Runs npm in a pseudo-terminal, for its interactive prompts.
    pub fn pty(&self, cwd: &Path, args: &[&str]) -> Pty {
        pty_of(self.command(cwd, args))
    }

    /// Writes a package folder and returns its path.
    pub fn package(&self, name: &str, version: &str, extra: Value) -> PathBuf {
        let dir = self
            .dir
            .path()
            .join("pkgs")
            .join(name.replace('/', "__"))
            .join(version);
        std::fs::create_dir_all(&dir).unwrap();
        let mut manifest = serde_json::json!({
            "name": name,
            "version": version,
            "description": format!("{name} for tests"),
            "main": "index.js",
            "license": "MIT",
        });
        if let (Value::Object(m), Value::Object(e)) = (&mut manifest, extra) {
            m.extend(e);
        }
        std::fs::write(
            dir.join("package.json"),
            serde_json::to_string_pretty(&manifest).unwrap(),
        )
        .unwrap();
        std::fs::write(
            dir.join("index.js"),
            format!("module.exports = {:?};\n", format!("{name}@{version}")),
        )
        .unwrap();
        std::fs::write(
            dir.join("README.md"),
            format!("# {name}\n\nVersion {version}.\n"),
        )
        .unwrap();
        dir
    }

    /// Publishes a fresh package folder; returns what npm printed.
    pub fn publish(&self, name: &str, version: &str, args: &[&str]) -> Run {
        let dir = self.package(name, version, Value::Null);
        let mut all = vec!["publish"];
        all.extend_from_slice(args);
        self.run_in(&dir, &all)
    }

    /// `npm pack` in `dir`: the tarball npm will publish (npm packs byte for byte alike).
    pub fn packed(&self, dir: &Path) -> Vec<u8> {
        let out = self.run_in(dir, &["pack", "--json", "--pack-destination", "."]);
        let list: Value = serde_json::from_str(out.ok()).unwrap();
        let file = list[0]["filename"].as_str().unwrap();
        let bytes = std::fs::read(dir.join(file)).unwrap();
        std::fs::remove_file(dir.join(file)).unwrap();
        bytes
    }

    /// A new empty project folder.
    pub fn project(&self, name: &str) -> PathBuf {
        let dir = self.dir.path().join("projects").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("package.json"),
            format!("{{\"name\":\"{name}\",\"version\":\"1.0.0\",\"private\":true}}"),
        )
        .unwrap();
        dir
    }
}

/// Another major version of the npm CLI, installed from the npm registry once per target
/// directory into `CARGO_TARGET_TMPDIR/npmMAJOR` (`.ci/run` fills `npm6` ahead of the tests);
/// returns its CLI script, to run with `node` ([`Npm::command_of`], [`Npm::run_cli`]).
pub fn ensure_npm(major: u32) -> PathBuf {
    install_once(
        &format!("npm{major}"),
        &format!("npm@{major}"),
        "node_modules/npm/bin/npm-cli.js",
    )
}

/// Installs `spec` with npm into `CARGO_TARGET_TMPDIR/folder` unless `marker` (a path in it)
/// is there already; returns the marker's path.
fn install_once(folder: &str, spec: &str, marker: &str) -> PathBuf {
    // tests of one binary run in parallel: one installs, the others wait
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
    let path = dir.join(marker);
    if !path.exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(spec)
            .output()
            .unwrap_or_else(|e| panic!("npm install {spec}: {e}"));
        assert!(
            out.status.success() && path.exists(),
            "installing {spec} into {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    path
}

/// A major version of pnpm, installed from the npm registry once per target directory into
/// `CARGO_TARGET_TMPDIR/pnpmMAJOR` (`.ci/run` fills them ahead of the tests); returns its
/// `pnpm` command. pnpm 9 and 10 are JavaScript; pnpm 12 is a native binary its package links
/// in place when installed.
pub fn ensure_pnpm(major: u32) -> PathBuf {
    install_once(
        &format!("pnpm{major}"),
        &format!("pnpm@{major}"),
        "node_modules/.bin/pnpm",
    )
}

/// Runs `cmd` in a pseudo-terminal, for its interactive prompts.
pub fn pty_of(cmd: Command) -> Pty {
    let session = rexpect::session::spawn_with_options(
        cmd,
        rexpect::reader::Options::new()
            .timeout_ms(Some(DEADLINE.as_millis() as u64))
            .strip_ansi_escape_codes(true),
    )
    .expect("spawn in a pty");
    Pty {
        session,
        seen: String::new(),
    }
}

/// An npm process in a pseudo-terminal.
pub struct Pty {
    session: rexpect::session::PtySession,
    /// Everything read so far.
    pub seen: String,
}

impl Pty {
    /// Waits for `text` (panics with the transcript after the deadline).
    pub fn expect(&mut self, text: &str) -> &mut Self {
        match self.session.exp_string(text) {
            Ok(before) => {
                self.seen.push_str(&before);
                self.seen.push_str(text);
            }
            Err(e) => panic!(
                "waiting for {text:?}: {e}\ntranscript so far:\n{}",
                self.seen
            ),
        }
        self
    }

    /// Waits for a regular expression; returns the matched text.
    pub fn expect_regex(&mut self, re: &str) -> String {
        match self.session.exp_regex(re) {
            Ok((before, matched)) => {
                self.seen.push_str(&before);
                self.seen.push_str(&matched);
                matched
            }
            Err(e) => panic!("waiting for /{re}/: {e}\ntranscript so far:\n{}", self.seen),
        }
    }

    /// Types a line.
    pub fn send(&mut self, line: &str) -> &mut Self {
        self.session.send_line(line).expect("write to pty");
        self
    }

    /// Waits for the end and returns the rest of the output and the exit code.
    pub fn finish(&mut self) -> (String, i32) {
        let rest = self.session.exp_eof().unwrap_or_default();
        self.seen.push_str(&rest);
        let code = match self.session.process_mut().wait() {
            Ok(rexpect::process::WaitStatus::Exited(_, c)) => c,
            _ => -1,
        };
        (self.seen.clone(), code)
    }
}

/// An HTTP response.
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers (lower-case names).
    pub headers: Vec<(String, String)>,
    /// Body text (empty when the body is not UTF-8).
    pub text: String,
    /// Body bytes.
    pub bytes: Vec<u8>,
}

impl Resp {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    /// A header value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `error` of an npm error body.
    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// A tiny HTTP client for black-box checks.
#[derive(Clone)]
pub struct Http {
    base: String,
    token: Option<String>,
}

impl Http {
    /// The same client sending `Authorization: Bearer token`.
    pub fn with_token(&self, token: &str) -> Http {
        Http {
            base: self.base.clone(),
            token: Some(token.to_owned()),
        }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(DEADLINE))
            .build()
            .into()
    }

    /// Sends a request with optional extra headers and body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Resp {
        self.exchange(method, path, headers, body, false)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Http::send`], but a transport failure (a refused or reset connection, an answer
    /// cut short: the server died) is returned instead of failing the test.
    pub fn try_send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Result<Resp, String> {
        self.exchange(method, path, headers, body, true)
    }

    fn exchange(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
        whole_body: bool,
    ) -> Result<Resp, String> {
        let url = format!("{}{}", self.base, path);
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let agent = Self::agent();
        let res = match body {
            Some(b) => agent.run(req.body(b).unwrap()),
            None => agent.run(req.body(()).unwrap()),
        };
        let mut res = res.map_err(|e| format!("{method} {url}: {e}"))?;
        let status = res.status().as_u16();
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let bytes = res.body_mut().with_config().limit(64 << 20).read_to_vec();
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) if whole_body => return Err(format!("{method} {url}: reading the body: {e}")),
            Err(_) => Vec::new(),
        };
        let text = String::from_utf8(bytes.clone()).unwrap_or_default();
        Ok(Resp {
            status,
            headers,
            text,
            bytes,
        })
    }

    /// GET.
    pub fn get(&self, path: &str) -> Resp {
        self.send("GET", path, &[], None)
    }

    /// PUT of a JSON body.
    pub fn put_json(&self, path: &str, body: &Value) -> Resp {
        self.send(
            "PUT",
            path,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(body).unwrap()),
        )
    }

    /// POST of a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Resp {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(serde_json::to_vec(body).unwrap()),
        )
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Resp {
        self.send("DELETE", path, &[], None)
    }
}

/// Polls `f` until it returns `Some` or the deadline passes.
pub fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Builds a publish body the way npm does, for black-box tests that need to bend it.
pub fn publish_body(registry: &str, name: &str, version: &str, tgz: &[u8]) -> Value {
    use sha1::Digest as _;
    let sha512 = sha2::Sha512::digest(tgz);
    let sha1 = sha1::Sha1::digest(tgz);
    let integrity = format!("sha512-{}", data_encoding::BASE64.encode(&sha512));
    let bare = name.rsplit('/').next().unwrap();
    serde_json::json!({
        "_id": name,
        "name": name,
        "description": "x",
        "dist-tags": {"latest": version},
        "versions": {version: {
            "name": name, "version": version, "description": "x", "readme": "x",
            "_id": format!("{name}@{version}"),
            "dist": {"integrity": integrity, "shasum": data_encoding::HEXLOWER.encode(&sha1),
                     "tarball": format!("{registry}{name}/-/{bare}-{version}.tgz")}
        }},
        "access": null,
        "_attachments": {format!("{name}-{version}.tgz"): {
            "content_type": "application/octet-stream",
            "data": data_encoding::BASE64.encode(tgz),
            "length": tgz.len()
        }}
    })
}

/// A gzipped tarball holding `package/package.json` and the given extra files.
pub fn tgz(manifest: &Value, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, data).unwrap();
    };
    add(
        "package/package.json",
        &serde_json::to_vec(manifest).unwrap(),
    );
    for (p, d) in files {
        add(p, d);
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    gz.finish().unwrap()
}

/// A small seeded random generator (SplitMix64) for randomized tests: the seed comes from
/// `TESSERA_TEST_SEED` or the clock, and is printed so that a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    /// A generator for the test `what`, seeded from `TESSERA_TEST_SEED` or the clock.
    pub fn seeded(what: &str) -> Rng {
        let seed = std::env::var("TESSERA_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{what}: seed {seed} (replay with TESSERA_TEST_SEED={seed})");
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Runs `f(0)` … `f(n - 1)` on `n` threads released together, and returns their results in
/// order.
pub fn race<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (f, barrier) = (&f, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
