//! The accept loop: HTTP/1.1 connections served by hyper, with the limits that keep clients
//! which hold connections without using them (slowloris) from starving everyone else.
//!
//! - A request's headers must arrive within `connections.header_timeout`, which also bounds how
//!   long a kept-alive connection waits for its next request (hyper's header-read timer).
//! - A connection that moves no byte in either direction for `connections.idle_timeout` while a
//!   request is in flight (a stalled upload, a client that stopped reading) is closed.
//! - At most `connections.max_connections` are open at once; past it a new connection is closed
//!   as soon as it is accepted, so the accept queue keeps draining.
//!
//! Request bodies have their own total deadline (`connections.body_timeout`, in
//! [`crate::http::extract`]).
//!
//! Connections are served as nginx serves them: `connections.threads` threads (one per core by
//! default), each with a single-threaded runtime and a socket of its own bound to the listen
//! address with `SO_REUSEPORT`, so the kernel spreads new connections over the threads and a
//! connection's requests never hop between threads. On the bench's 2-core machine this served
//! small reads about a fifth faster than one work-stealing runtime, whose wake-ups between worker
//! threads cost more than the requests themselves. The work a handler hands off (file reads,
//! password hashes) goes to its thread's blocking pool; the background work (signing passes,
//! cache polls, pruning) stays on the main runtime.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::config::ConnectionsConfig;

/// Blocking threads (file reads, password hashes) of all serving threads together, shared out
/// among them (at least 2 each): under 64 downloads of a 3 MB tarball, each blocking thread holds
/// a read-ahead buffer, and 512 of them (tokio's default) held nearly 290 MB.
const BLOCKING_THREADS: usize = 16;

/// Binds the sockets [`serve`] takes: `threads` of them (0 for one per core) on `addr`, with
/// `SO_REUSEADDR` and `SO_REUSEPORT`, each with an accept queue of `backlog`. With port 0 the
/// first picks the port and the others bind to it.
///
/// A port that another program (or another `tessera serve`) listens on is refused, as a plain
/// bind would refuse it: a socket without `SO_REUSEPORT` is bound first to find out, then closed.
pub fn bind(
    addr: std::net::SocketAddr,
    threads: usize,
    backlog: u32,
) -> io::Result<Vec<std::net::TcpListener>> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let socket = |addr: std::net::SocketAddr, reuseport: bool| -> io::Result<TcpListener> {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        #[cfg(unix)]
        {
            socket.set_reuseaddr(true)?;
            if reuseport {
                socket.set_reuseport(true)?;
            }
        }
        #[cfg(not(unix))]
        let _ = reuseport;
        socket.bind(addr)?;
        socket.listen(backlog)
    };
    let probe = socket(addr, false)?;
    if threads == 1 {
        return Ok(vec![probe.into_std()?]);
    }
    let mut addr = probe.local_addr()?;
    drop(probe);
    let mut out = Vec::with_capacity(threads);
    for _ in 0..threads {
        let listener = socket(addr, true)?;
        addr = listener.local_addr()?;
        out.push(listener.into_std()?);
    }
    Ok(out)
}

/// Work a serving thread does for itself on a timer: `run` every `every`, on that thread (the
/// binary returns the thread's free allocator memory to the OS this way).
#[derive(Clone, Copy)]
pub struct Upkeep {
    /// How often.
    pub every: Duration,
    /// What (a plain function: it runs between requests and must be quick).
    pub run: fn(),
}

/// Serves `app` on `listeners` (from [`bind`]), each on a thread of its own with a
/// single-threaded runtime, under `limits` (the connection cap is shared), until `shutdown`
/// resolves; then lets open requests finish (for at most 30 seconds). Each thread also runs
/// `upkeep`, if any.
pub async fn serve(
    listeners: Vec<std::net::TcpListener>,
    app: crate::http::entry::Entry,
    limits: &ConnectionsConfig,
    upkeep: Option<Upkeep>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let (ended, mut ends) = tokio::sync::mpsc::unbounded_channel();
    let threads = listeners.len();
    let blocking = (BLOCKING_THREADS / threads.max(1)).max(2);
    // A connection a thread opened (to PostgreSQL, S3, an uplink) is driven by that thread's
    // runtime and may be in use by the others: no runtime is dropped before every thread has
    // drained its requests.
    let drained = Arc::new(std::sync::Barrier::new(threads));
    for (i, listener) in listeners.into_iter().enumerate() {
        let (app, limits, slots, ended) =
            (app.clone(), limits.clone(), slots.clone(), ended.clone());
        let (mut stopped, drained) = (stopped.clone(), drained.clone());
        std::thread::Builder::new()
            .name(format!("tessera-http-{i}"))
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .max_blocking_threads(blocking)
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ended.send(Err(e));
                        drained.wait();
                        return;
                    }
                };
                let run = std::panic::AssertUnwindSafe(|| {
                    rt.block_on(async move {
                        if let Some(u) = upkeep {
                            tokio::spawn(async move {
                                let start = tokio::time::Instant::now() + u.every;
                                let mut tick = tokio::time::interval_at(start, u.every);
                                loop {
                                    tick.tick().await;
                                    (u.run)();
                                }
                            });
                        }
                        let listener = TcpListener::from_std(listener)?;
                        let stop = async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        };
                        serve_one(listener, app, &limits, slots, stop).await
                    })
                });
                let result = std::panic::catch_unwind(run)
                    .unwrap_or_else(|_| Err(io::Error::other("a serving thread panicked")));
                let _ = ended.send(result);
                drained.wait();
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
    }
    drop(ended);
    // a thread that ends before the shutdown failed: stop the others and report it
    let mut first = tokio::select! {
        () = shutdown => None,
        r = ends.recv() => Some(r.unwrap_or(Ok(()))),
    };
    let _ = stop.send(true);
    let mut left = threads - usize::from(first.is_some());
    while left > 0 {
        let Some(r) = ends.recv().await else { break };
        left -= 1;
        if first.is_none() || matches!(first, Some(Ok(()))) {
            first = Some(r);
        }
    }
    match first {
        Some(Err(e)) => Err(e),
        _ => Ok(()),
    }
}

/// The accept loop of one serving thread.
async fn serve_one(
    listener: TcpListener,
    app: crate::http::entry::Entry,
    limits: &ConnectionsConfig,
    slots: Arc<Semaphore>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let graceful = GracefulShutdown::new();
    let header_timeout = limits.header_timeout.as_duration();
    let idle_timeout = limits.idle_timeout.as_duration();
    let mut refused_logged_at: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            if refused_logged_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                tracing::warn!(
                    max = limits.max_connections,
                    "connection limit reached: closing new connections"
                );
                refused_logged_at = Some(Instant::now());
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let body_timeout = limits.body_timeout.as_duration();
        let service = app
            .clone()
            .map_request(move |req: hyper::Request<Incoming>| {
                let mut req = req.map(|b| axum::body::Body::new(Deadline::new(b, body_timeout)));
                req.extensions_mut().insert(ConnectInfo(peer));
                req
            });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(io, TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            tokio::select! {
                result = conn => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, %peer, "connection ended with an error");
                    }
                }
                () = activity.stalled(idle_timeout) => {
                    tracing::debug!(%peer, "connection idle mid-request: closed");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(30)) => {
            tracing::warn!("requests still open 30 s after shutdown began: closing them");
        }
    }
    Ok(())
}

/// When a connection last moved a byte, and whether it is waiting for a request (hyper's
/// header timer covers that wait).
#[derive(Clone)]
struct Activity(Arc<AtomicU64>);

impl Activity {
    fn new() -> Self {
        Activity(Arc::new(AtomicU64::new(now_ms())))
    }

    fn touch(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    /// Resolves once no byte has moved for `limit`.
    async fn stalled(&self, limit: Duration) {
        let limit_ms = limit.as_millis() as u64;
        loop {
            let last = self.0.load(Ordering::Relaxed);
            let idle = now_ms().saturating_sub(last);
            if idle >= limit_ms {
                return;
            }
            tokio::time::sleep(Duration::from_millis(limit_ms - idle)).await;
        }
    }
}

fn now_ms() -> u64 {
    static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A TCP stream that notes every byte it moves.
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        #[cfg(target_os = "linux")]
        if let Some(r) = self.poll_send_file(cx, bufs) {
            if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
                self.activity.touch();
            }
            return r;
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Bytes the tests' connections sent with `sendfile`.
#[cfg(all(test, target_os = "linux"))]
static SENT_BY_SENDFILE: AtomicU64 = AtomicU64::new(0);

#[cfg(target_os = "linux")]
impl Watched {
    /// Writes `bufs` if one of them lies in a body made by [`crate::http::sendable`] (a large
    /// packument form, a tarball's file): the buffers before it (the response's head) with
    /// `MSG_MORE`, so they leave in the body's first packet, then the body from its file with
    /// `sendfile`. `None` when there is no such
    /// body: the caller writes `bufs` as usual.
    fn poll_send_file(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Option<Poll<io::Result<usize>>> {
        use std::os::fd::AsRawFd;
        use tokio::io::Interest;

        let (at, (file, offset)) = bufs
            .iter()
            .enumerate()
            .find_map(|(i, b)| crate::http::sendable::find(b).map(|f| (i, f)))?;
        let head = &bufs[..at];
        let head_len: usize = head.iter().map(|b| b.len()).sum();
        let body_len = bufs[at].len();
        let socket = self.inner.as_raw_fd();
        Some(loop {
            match self.inner.poll_write_ready(cx) {
                Poll::Pending => break Poll::Pending,
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
            let sent = self.inner.try_io(Interest::WRITABLE, || {
                let mut sent = 0;
                if head_len > 0 {
                    // SAFETY: `head`'s slices are live for the call and `IoSlice` has the
                    // layout of `iovec`.
                    let msg = libc::msghdr {
                        msg_iov: head.as_ptr() as *mut libc::iovec,
                        msg_iovlen: head.len() as _,
                        ..unsafe { std::mem::zeroed() }
                    };
                    let n =
                        unsafe { libc::sendmsg(socket, &msg, libc::MSG_MORE | libc::MSG_NOSIGNAL) };
                    if n < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    sent = n as usize;
                    if sent < head_len {
                        return Ok(sent);
                    }
                }
                let mut off = offset as libc::off_t;
                // SAFETY: two open descriptors; `file` stays open while `bufs` borrows its body.
                let n = unsafe { libc::sendfile(socket, file, &mut off, body_len) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    // the head went out: report it; the body (or the error) comes on the next
                    // call
                    return if sent > 0 { Ok(sent) } else { Err(e) };
                }
                #[cfg(test)]
                SENT_BY_SENDFILE.fetch_add(n as u64, Ordering::Relaxed);
                Ok(sent + n as usize)
            });
            match sent {
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    continue;
                }
                // a file `sendfile` cannot read (a file system without it): write the bytes
                // from the mapping instead
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
                    ) =>
                {
                    break Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
                }
                r => break Poll::Ready(r),
            }
        })
    }
}

/// A request body that fails once its deadline has passed. The timer is set on the first read:
/// most requests (every `GET`) never read a body, and need none.
struct Deadline<B> {
    inner: B,
    deadline: tokio::time::Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Deadline<B> {
    fn new(inner: B, limit: Duration) -> Self {
        Deadline {
            inner,
            deadline: tokio::time::Instant::now() + limit,
            sleep: None,
        }
    }
}

/// The error a body past its deadline ends with; [`crate::http::extract`] answers 408 for it.
#[derive(Debug)]
pub struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body took too long to arrive")
    }
}

impl std::error::Error for BodyTimedOut {}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = bytes::Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let deadline = self.deadline;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;

    use super::*;

    fn set_buffer(fd: i32, option: i32, bytes: i32) {
        // SAFETY: an open socket and a valid option value.
        let r = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&bytes as *const i32).cast(),
                std::mem::size_of::<i32>() as u32,
            )
        };
        assert_eq!(r, 0);
    }

    /// A body made for `sendfile` goes out whole, after its head, over a socket whose send
    /// buffer holds a few kilobytes (so every response takes many partial writes), twice on one
    /// kept-alive connection; and it did go through `sendfile`.
    #[test]
    fn sendable_bodies_go_out_whole_under_back_pressure() {
        assert!(crate::http::sendable::keep_in(
            &crate::http::sendable::test_folder(),
            0,
            crate::config::SendfileMode::On,
        ));
        let data: Vec<u8> = (0..(1usize << 20) + 4321)
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        let body = crate::http::sendable::bytes_of(data.clone());
        assert!(
            crate::http::sendable::find(&body).is_some(),
            "a sendable body"
        );
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = std_listener.local_addr().unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let server = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::from_std(std_listener).unwrap();
                let (stream, _) = listener.accept().await.unwrap();
                set_buffer(stream.as_raw_fd(), libc::SO_SNDBUF, 4096);
                stream.set_nodelay(true).unwrap(); // as `serve_one` sets it
                let io = TokioIo::new(Watched {
                    inner: stream,
                    activity: Activity::new(),
                });
                let service = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        Ok::<_, Infallible>(hyper::Response::new(axum::body::Body::from(body)))
                    }
                });
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await
                    .unwrap();
            });
        });
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let before = SENT_BY_SENDFILE.load(Ordering::Relaxed);
        for last in [false, true] {
            let close = if last { "connection: close\r\n" } else { "" };
            write!(client, "GET / HTTP/1.1\r\nhost: t\r\n{close}\r\n").unwrap();
            // the head, byte by byte up to its blank line
            let mut head = Vec::new();
            let mut byte = [0u8];
            while !head.ends_with(b"\r\n\r\n") {
                client.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
                assert!(head.len() < 4096, "no end of head");
            }
            let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert!(
                head.contains(&format!("content-length: {}\r\n", data.len())),
                "{head}"
            );
            let mut got = vec![0u8; data.len()];
            client.read_exact(&mut got).unwrap();
            assert!(got == data, "the body differs");
        }
        let mut rest = Vec::new();
        client.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "nothing after the second body");
        server.join().unwrap();
        let sent = SENT_BY_SENDFILE.load(Ordering::Relaxed) - before;
        // all but the last few kilobytes of each (a remainder under half of `MIN_LEN` is copied)
        let min = 2 * (data.len() - crate::http::sendable::MIN_LEN / 2) as u64;
        assert!(sent >= min, "sendfile sent {sent} bytes");
    }

    use std::convert::Infallible;
}
