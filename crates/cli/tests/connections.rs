//! Connection limits against clients that hold connections without using them (slowloris): the
//! header, idle and body timeouts and the connection cap, with raw TCP clients.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn addr(reg: &Registry) -> String {
    reg.url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned()
}

/// A client that starts a request and never finishes its headers.
fn slow_client(addr: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"GET /-/ping HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("write");
    s
}

/// Whether the server closed `s` (end of stream or a reset, after any response) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// How many of `streams` the server has closed once `limit` has passed, or once at least
/// `expected` are closed and a short while shows no more closing (polled, blocking on none).
fn count_closed(streams: &mut [TcpStream], expected: usize, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut closed = vec![false; streams.len()];
    let mut buf = [0u8; 1024];
    for s in streams.iter() {
        s.set_nonblocking(true).unwrap();
    }
    let mut sweep = |closed: &mut Vec<bool>| {
        for (s, c) in streams.iter_mut().zip(closed.iter_mut()) {
            if !*c {
                *c = match s.read(&mut buf) {
                    Ok(0) => true,
                    Ok(_) => false,
                    Err(e) => e.kind() != ErrorKind::WouldBlock,
                };
            }
        }
        closed.iter().filter(|c| **c).count()
    };
    while Instant::now() < deadline {
        if sweep(&mut closed) >= expected {
            std::thread::sleep(Duration::from_millis(300));
            return sweep(&mut closed);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    sweep(&mut closed)
}

/// The status of one request on a fresh connection, or `None` if the server closed it unanswered.
fn status_of(addr: &str, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn ping(addr: &str) -> Option<u16> {
    status_of(
        addr,
        b"GET /-/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
}

/// Polls `f` until it holds or `limit` passes.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connections_that_never_finish_their_headers_do_not_starve_the_server() {
    let reg = Registry::start_with(&[("TESSERA_CONNECTIONS__HEADER_TIMEOUT", "2s")]);
    let addr = addr(&reg);
    let mut slow: Vec<TcpStream> = (0..300).map(|_| slow_client(&addr)).collect();
    // Everyone else is still served while they hang.
    assert_eq!(ping(&addr), Some(200));
    // And the server closes them once the header timeout has passed.
    for (i, s) in slow.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(15)),
            "slow connection {i} is still open"
        );
    }
    assert_eq!(ping(&addr), Some(200));
}

#[test]
fn past_the_connection_cap_new_connections_are_closed_at_once() {
    let reg = Registry::start_with(&[
        ("TESSERA_CONNECTIONS__MAX_CONNECTIONS", "20"),
        ("TESSERA_CONNECTIONS__HEADER_TIMEOUT", "60s"),
    ]);
    let addr = addr(&reg);
    assert_eq!(ping(&addr), Some(200));
    // 25 clients for 20 slots: at least 5 are closed unanswered, quickly, rather than left
    // waiting (which ones depends on when the ping above gave its slot back).
    let mut held: Vec<TcpStream> = (0..25).map(|_| slow_client(&addr)).collect();
    let closed = count_closed(&mut held, 5, Duration::from_secs(10));
    assert!(closed >= 5, "only {closed} of 25 connections were closed");
    assert!(closed <= 6, "{closed} of 25 closed: the cap is 20");
    // If the ping's slot came back after the refusals, one slot is free: fill it (connections
    // are accepted in order, so these take it before the ping below).
    let _filler: Vec<TcpStream> = (5..closed).map(|_| slow_client(&addr)).collect();
    assert_eq!(
        ping(&addr),
        None,
        "no slot for a request while the cap is reached"
    );
    // Slots come back as connections end.
    drop(held);
    assert!(
        eventually(Duration::from_secs(10), || ping(&addr) == Some(200)),
        "the server serves again once the held connections closed"
    );
}

#[test]
fn a_stalled_upload_is_closed_and_a_trickled_one_times_out() {
    let reg = Registry::start_with(&[
        ("TESSERA_CONNECTIONS__IDLE_TIMEOUT", "1s"),
        ("TESSERA_CONNECTIONS__BODY_TIMEOUT", "2s"),
    ]);
    let addr = addr(&reg);
    let head = b"PUT /-/user/org.couchdb.user:bob HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
    // Stalled: ten bytes of a thousand, then nothing.
    let mut stalled = TcpStream::connect(&addr).expect("connect");
    stalled.write_all(head).unwrap();
    stalled.write_all(b"{\"name\":\"b").unwrap();
    assert!(closed_within(&mut stalled, Duration::from_secs(15)));
    // Trickled: a byte every 200 ms, never idle for a second, but past the 2 s body deadline.
    let mut trickled = TcpStream::connect(&addr).expect("connect");
    trickled.write_all(head).unwrap();
    trickled
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut answer = Vec::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) {
        if trickled.write_all(b" ").is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match trickled.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    // Ordinary requests are unaffected.
    assert_eq!(ping(&addr), Some(200));
}

/// The names of the server's threads (Linux: `/proc/PID/task/*/comm`).
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the process has exited (a zombie until its parent reaps it) or is gone.
fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

#[test]
#[cfg(target_os = "linux")]
fn serving_threads_share_the_port_no_other_program_can_take_it_and_stop_together() {
    let reg = Registry::start_with(&[("TESSERA_CONNECTIONS__THREADS", "3")]);
    let addr = addr(&reg);
    let serving = || {
        thread_names(reg.pid())
            .iter()
            .filter(|n| n.starts_with("tessera-http"))
            .count()
    };
    assert!(
        eventually(Duration::from_secs(10), || serving() == 3),
        "serving threads: {:?}",
        thread_names(reg.pid())
    );
    // the kernel spreads new connections over the three sockets: every one is served
    let kept: Vec<TcpStream> = (0..24)
        .map(|i| {
            let mut s = TcpStream::connect(&addr).expect("connect");
            s.write_all(b"GET /-/ping HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut buf = [0u8; 512];
            let n = s.read(&mut buf).unwrap_or(0);
            assert!(
                buf[..n].starts_with(b"HTTP/1.1 200"),
                "connection {i}: {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
            s
        })
        .collect();
    // another server on the same port is refused, as with a plain socket, even one that would
    // join with SO_REUSEPORT itself (it is stopped if it does not fail by itself)
    let other = tempfile::tempdir().unwrap();
    let mut second = std::process::Command::new(tessera_bin())
        .args(["serve", "--listen", &addr, "--data"])
        .arg(other.path())
        .env_remove("TESSERA_DATABASE")
        .env_remove("TESSERA_STORAGE")
        .env("TESSERA_CONNECTIONS__THREADS", "2")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run a second tessera");
    let mut status = None;
    eventually(Duration::from_secs(20), || {
        status = second.try_wait().unwrap();
        status.is_some()
    });
    if status.is_none() {
        let _ = second.kill();
        let _ = second.wait();
        panic!("a second server took the port and kept serving");
    }
    assert!(!status.unwrap().success(), "a second server took the port");
    let mut err = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("cannot listen on"), "{err}");
    assert_eq!(ping(&addr), Some(200));
    // SIGTERM stops every serving thread, kept-alive connections included, and the process
    let term = std::process::Command::new("kill")
        .args(["-TERM", &reg.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    assert!(
        eventually(Duration::from_secs(20), || exited(reg.pid())),
        "still running 20 s after SIGTERM; log:\n{}",
        reg.log_text()
    );
    assert!(reg.log_text().contains("stopped"), "{}", reg.log_text());
    drop(kept);
}
