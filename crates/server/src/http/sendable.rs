//! Large response bodies the connection sends with `sendfile` instead of copying them into the
//! socket.
//!
//! Written from memory, every byte of a response is copied by the kernel into the socket's
//! buffers; on a 363 KB gzipped packument that copy was the largest single cost of a response (a
//! fifth of the samples). `sendfile` hands the socket references to page-cache pages instead,
//! as nginx sends its files. So a large body is kept in a file:
//!
//! - [`bytes_of`] writes a rendered body (a packument form, its gzip) to an unnamed temporary
//!   file (`O_TMPFILE`) in the folder [`keep_in`] named (the data folder), and maps it
//!   read-only: to every reader it is ordinary [`Bytes`], whose pages are the file's. A disk file
//!   system is wanted: its page cache holds large folios, where a `memfd` or tmpfs holds 4 KiB
//!   pages, and on those the receiving side paid more per response than the copy saved (measured:
//!   0.71 of nginx with a `memfd`, 0.77 with the copy, 1.03 with a file on ext4). On a tmpfs,
//!   or with no folder named, bodies stay in memory and are copied as before.
//! - [`file`] maps a tarball's own file, when the page cache holds all of it.
//!
//! When hyper hands such a body to the connection ([`crate::http::listener`]), the connection
//! asks [`find`] for the file behind it and sends it with `sendfile`.
//!
//! Whether `sendfile` is the faster way depends on the machine: on one 2-core VM nginx sent a
//! 970 KB body 1.6 times as fast with `sendfile` as without, on another of the same kind
//! (another kernel build) 0.66 times as fast, and there tessera copying from memory went 1.7
//! times as fast as tessera with `sendfile`. So
//! with `connections.sendfile = "auto"` (the default) [`keep_in`] measures both once, on a
//! loopback connection in a thread of its own, and keeps `sendfile` unless copying is clearly
//! faster ([`prefers_sendfile`]). It measures when the machine is quiet ([`QUIET`], waiting up
//! to [`QUIET_WAIT`]), and compares the fastest of several blocks of each way: other work on
//! the machine only ever slows a block, and it slowed the two ways unequally (copying's margin
//! fell from 1.4–1.6 times idle to 1.2 while a client published). Until it has decided, bodies
//! stay in memory and are copied.
//!
//! Safety: the socket may hold references to the pages after the body is dropped, so the file
//! must never change. A temporary file has no name and its one descriptor is ours; nothing
//! writes to it after [`bytes_of`]. A tarball file is written once, under its content's hash,
//! and never changed in place (a deleted one stays readable while it is open).
//!
//! Memory: a temporary file's mapping is populated when it is made, so its pages are counted in
//! the process's resident memory, once, as the heap copy was. A tarball's mapping is not: it adds
//! nothing unless something reads the bytes instead of sending them.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;

use crate::config::SendfileMode;

/// Bodies shorter than this are copied: `sendfile`'s set-up costs more than a copy of a few
/// pages, and the headers before them go out in the same write.
pub const MIN_LEN: usize = 64 * 1024;

/// Where [`bytes_of`] makes its files; unset: nowhere (bodies stay in memory).
static FOLDER: OnceLock<Option<PathBuf>> = OnceLock::new();

/// How many temporary files may be open at once (each holds a descriptor), and how many are.
static MAX_FILES: AtomicUsize = AtomicUsize::new(0);
static LIVE_FILES: AtomicUsize = AtomicUsize::new(0);

/// The share of all CPUs' time busy below which the machine counts as quiet for the measure
/// (an idle server and its host use a few percent).
pub const QUIET: f64 = 0.25;

/// How long the measure waits for a quiet machine before it measures anyway.
pub const QUIET_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Whether large bodies go by `sendfile` (decided by [`keep_in`]; until then, not).
static SENDFILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether large bodies are sent with `sendfile` now.
pub fn sending_files() -> bool {
    SENDFILE.load(Ordering::Relaxed)
}

/// Whether `sendfile` is kept, given how long each way took to send the same bytes: unless
/// copying took less than nine tenths of `sendfile`'s time (noise between the two measures is
/// a few percent; `sendfile` also spares the CPU a copy on a real network card).
pub fn prefers_sendfile(sendfile: std::time::Duration, copy: std::time::Duration) -> bool {
    copy.as_nanos() * 10 >= sendfile.as_nanos() * 9
}

/// Makes [`bytes_of`] keep large bodies in temporary files in `folder`, if unnamed temporary
/// files can be made there and it is not a tmpfs (see the module's notes); the first call
/// decides. Returns whether they will be.
///
/// Each file holds a descriptor while its body lives (in the packument cache, or being sent):
/// at most half of those the process may open beyond `reserved` (kept for connections, the
/// database, the listeners) are used; past that, bodies stay in memory.
pub fn keep_in(folder: &Path, reserved: usize, mode: SendfileMode) -> bool {
    if mode == SendfileMode::Off {
        tracing::info!("large bodies are copied from memory (connections.sendfile = \"off\")");
        return false;
    }
    let max = open_file_limit().saturating_sub(reserved) / 2;
    MAX_FILES.store(max, Ordering::Relaxed);
    if max == 0 {
        tracing::info!(
            reserved,
            "the open-file limit leaves no descriptors for large bodies' files: sent from memory"
        );
    }
    let kept = FOLDER
        .get_or_init(|| {
            #[cfg(target_os = "linux")]
            match linux::usable(folder) {
                Ok(()) => return Some(folder.to_path_buf()),
                Err(why) => tracing::info!(
                    folder = %folder.display(),
                    why,
                    "large bodies are sent from memory"
                ),
            }
            let _ = folder;
            None
        })
        .is_some();
    match (kept, mode) {
        // no body files here: a resident tarball's own file may still go by `sendfile` when
        // asked for, never by a measure that could not be taken
        (false, SendfileMode::On) => SENDFILE.store(true, Ordering::Relaxed),
        (false, _) => {}
        (true, SendfileMode::Auto) => {
            #[cfg(target_os = "linux")]
            {
                let folder = folder.to_path_buf();
                let spawned = std::thread::Builder::new()
                    .name("sendfile-probe".into())
                    .spawn(move || probe(&folder));
                if spawned.is_err() {
                    SENDFILE.store(true, Ordering::Relaxed);
                }
            }
        }
        // "on" (an "off" returned above): said as the measure's verdict is, so that the log
        // always tells how large bodies leave
        (true, _) => {
            SENDFILE.store(true, Ordering::Relaxed);
            tracing::info!(
                "large bodies are sent from files with sendfile (connections.sendfile = \"on\")"
            );
        }
    }
    kept
}

/// The `auto` measure, on its own thread: waits for a quiet machine (the server's start, and
/// whatever starts with it, keeps the cores busy at first), measures, and sets the way.
#[cfg(target_os = "linux")]
fn probe(folder: &Path) {
    std::thread::sleep(std::time::Duration::from_secs(1));
    let quiet = linux::wait_for_quiet(QUIET, QUIET_WAIT);
    let (sendfile, copy) = match linux::measure(folder) {
        Ok(times) => times,
        // the measure failed: the way as before
        Err(e) => {
            SENDFILE.store(true, Ordering::Relaxed);
            tracing::info!(error = %e, "cannot compare sendfile with copying: sendfile kept");
            return;
        }
    };
    let files = prefers_sendfile(sendfile, copy);
    SENDFILE.store(files, Ordering::Relaxed);
    let way = if files {
        "sent from files with sendfile"
    } else {
        "copied from memory: faster here than sendfile"
    };
    tracing::info!(
        sendfile_us = sendfile.as_micros() as u64,
        copy_us = copy.as_micros() as u64,
        quiet,
        "large bodies are {way} (the fastest of {} blocks of {} MiB each way over loopback)",
        linux::BLOCKS,
        linux::BLOCK_MIB,
    );
}

/// The share of CPU time busy between two readings of `/proc/stat`'s first line (`cpu` and
/// its counters: user, nice, system, idle, iowait, …); None if either is unreadable or no
/// time passed. Idle and iowait count as not busy.
pub fn busy_share(before: &str, after: &str) -> Option<f64> {
    fn read(line: &str) -> Option<(u64, u64)> {
        let mut fields = line.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let v: Vec<u64> = fields.map(|f| f.parse().ok()).collect::<Option<_>>()?;
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((v.iter().sum(), idle))
    }
    let ((t0, i0), (t1, i1)) = (read(before)?, read(after)?);
    let total = t1.checked_sub(t0).filter(|&t| t > 0)?;
    let idle = i1.saturating_sub(i0).min(total);
    Some(1.0 - idle as f64 / total as f64)
}

/// `data` as bytes the connection can send with `sendfile`, when it is at least [`MIN_LEN`]
/// long, [`keep_in`] named a folder and another file may be open; else (or when the file
/// cannot be made) as plain bytes.
pub fn bytes_of(data: Vec<u8>) -> Bytes {
    if data.len() < MIN_LEN {
        return Bytes::from(data);
    }
    #[cfg(target_os = "linux")]
    if let Some(Some(folder)) = FOLDER.get().filter(|_| sending_files()) {
        let max = MAX_FILES.load(Ordering::Relaxed);
        if take_slot(&LIVE_FILES, max) {
            match linux::Mapped::temporary(folder, &data) {
                // the slot is given back when the body is dropped
                Ok(mapped) => return Bytes::from_owner(mapped),
                Err(e) => {
                    LIVE_FILES.fetch_sub(1, Ordering::Relaxed);
                    tracing::debug!(error = %e, "no file for a large body: sent from memory");
                }
            }
        }
    }
    Bytes::from(data)
}

/// Takes one of `max` slots counted by `live`; false when all are taken.
fn take_slot(live: &AtomicUsize, max: usize) -> bool {
    live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n < max).then_some(n + 1)
    })
    .is_ok()
}

/// The process's limit on open descriptors (its soft `RLIMIT_NOFILE`); 1024 if unknown.
fn open_file_limit() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct passed to it.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            return usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX);
        }
    }
    1024
}

/// `len` bytes of `file` as bytes the connection sends with `sendfile`, if the file is that long
/// (at least [`MIN_LEN`]) and the page cache holds all of it, so that `sendfile` does not wait
/// for the disk on a serving thread; else `file` back, to be read as a stream.
pub fn file(file: std::fs::File, len: u64) -> Result<Bytes, std::fs::File> {
    #[cfg(target_os = "linux")]
    {
        linux::Mapped::resident(file, len).map(Bytes::from_owner)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = len;
        Err(file)
    }
}

/// The file behind `slice`, if it lies within a body made by [`bytes_of`] or [`file`]: its descriptor and
/// the offset of `slice`'s first byte in it. The descriptor stays open as long as the bytes
/// `slice` borrows from.
#[cfg(target_os = "linux")]
pub fn find(slice: &[u8]) -> Option<(std::os::fd::RawFd, usize)> {
    if slice.len() < MIN_LEN / 2 || !sending_files() {
        return None;
    }
    linux::find(slice.as_ptr() as usize, slice.len())
}

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::BTreeMap;
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd, RawFd};
    use std::path::Path;
    use std::sync::RwLock;

    /// An unnamed file in `folder`, open for reading and writing, gone when closed.
    fn open_temporary(folder: &Path) -> io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(folder)
    }

    /// Whether [`Mapped::temporary`] can make its files in `folder`, and the reason if not.
    pub(super) fn usable(folder: &Path) -> Result<(), String> {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(folder.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
        // SAFETY: a NUL-terminated path and a zeroed struct for the kernel to fill.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statfs(c.as_ptr(), &mut fs) } != 0 {
            return Err(io::Error::last_os_error().to_string());
        }
        if fs.f_type == libc::TMPFS_MAGIC {
            return Err("a tmpfs (4 KiB pages: copying is faster)".into());
        }
        open_temporary(folder)
            .map(drop)
            .map_err(|e| format!("no unnamed temporary files there: {e}"))
    }

    /// How many blocks of each way [`measure`] times, and how large each is.
    pub(super) const BLOCKS: usize = 6;
    pub(super) const BLOCK_MIB: usize = 8;

    /// The first line of `/proc/stat` (all CPUs' time counters).
    pub(super) fn cpu_line() -> Option<String> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        text.lines().next().map(str::to_owned)
    }

    /// Waits until a quarter-second passes with under `quiet` of the machine's CPU time busy;
    /// false if that did not happen within `wait` (or `/proc/stat` cannot be read).
    pub(super) fn wait_for_quiet(quiet: f64, wait: std::time::Duration) -> bool {
        let start = std::time::Instant::now();
        while start.elapsed() < wait {
            let Some(before) = cpu_line() else {
                return false;
            };
            std::thread::sleep(std::time::Duration::from_millis(250));
            match cpu_line().and_then(|after| super::busy_share(&before, &after)) {
                Some(busy) if busy < quiet => return true,
                Some(_) => {}
                None => return false,
            }
        }
        false
    }

    /// How long the fastest block of [`BLOCK_MIB`] 1 MiB bodies took to leave over a loopback
    /// TCP connection and arrive (read by a thread of its own): sent from an unnamed file in `folder`
    /// with `sendfile`, and written from memory; [`BLOCKS`] blocks of each, alternating (which
    /// goes first alternates too), after a warm-up.
    pub(super) fn measure(folder: &Path) -> io::Result<(std::time::Duration, std::time::Duration)> {
        use std::io::{Read, Write};
        use std::time::{Duration, Instant};
        const LEN: usize = 1 << 20;
        // what the bytes are does not matter: nothing on the way looks at them
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        let mut file = open_temporary(folder)?;
        file.write_all(&data)?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
        // another local program may have connected first: only our own connection is measured
        let ours = client.local_addr()?;
        let mut server = loop {
            let (s, peer) = listener.accept()?;
            if peer == ours {
                break s;
            }
        };
        drop(listener);
        // a stalled receiver ends the measure (an error: sendfile is kept), never the thread
        server.set_write_timeout(Some(Duration::from_secs(5)))?;
        client.set_read_timeout(Some(Duration::from_secs(5)))?;
        // the receiver counts what it has read: a block ends when all of it has arrived, so
        // what the sockets' buffers hold at its end is not counted as sent
        let received = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = received.clone();
        let reader = std::thread::spawn(move || {
            // reads of 64 KiB, as Node's sockets make them
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n @ 1..) = client.read(&mut buf) {
                counted.fetch_add(n, std::sync::atomic::Ordering::Release);
            }
        });
        let arrived = |total: usize| -> io::Result<()> {
            let start = Instant::now();
            while received.load(std::sync::atomic::Ordering::Acquire) < total {
                if start.elapsed() > Duration::from_secs(5) {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the receiver stalled",
                    ));
                }
                std::thread::yield_now();
            }
            Ok(())
        };
        let (socket, source) = (server.as_raw_fd(), file.as_raw_fd());
        let send_file = || -> io::Result<()> {
            let mut offset: libc::off_t = 0;
            while (offset as usize) < LEN {
                // SAFETY: two open descriptors and an offset the call advances.
                let n =
                    unsafe { libc::sendfile(socket, source, &mut offset, LEN - offset as usize) };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "sendfile sent nothing",
                    ));
                }
            }
            Ok(())
        };
        let (mut by_file, mut by_copy) = (Duration::MAX, Duration::MAX);
        let mut sent = 0;
        let mut run = || -> io::Result<()> {
            for _ in 0..4 {
                send_file()?;
                server.write_all(&data)?;
                sent += 2 * LEN;
            }
            arrived(sent)?;
            for block in 0..BLOCKS * 2 {
                // file, copy, copy, file, file, copy, …
                let files = (block % 4 == 0) || (block % 4 == 3);
                let t = Instant::now();
                for _ in 0..BLOCK_MIB {
                    if files {
                        send_file()?;
                    } else {
                        server.write_all(&data)?;
                    }
                }
                sent += BLOCK_MIB * LEN;
                arrived(sent)?;
                let took = t.elapsed();
                let fastest = if files { &mut by_file } else { &mut by_copy };
                *fastest = (*fastest).min(took);
            }
            Ok(())
        };
        let result = run();
        let _ = server.shutdown(std::net::Shutdown::Both);
        let _ = reader.join();
        result.map(|()| (by_file, by_copy))
    }

    /// Every live mapped body: its mapping's address → (length, descriptor).
    static REGIONS: RwLock<BTreeMap<usize, (usize, RawFd)>> = RwLock::new(BTreeMap::new());

    pub(super) fn find(addr: usize, len: usize) -> Option<(RawFd, usize)> {
        let regions = REGIONS.read().unwrap_or_else(|p| p.into_inner());
        let (&base, &(size, fd)) = regions.range(..=addr).next_back()?;
        let offset = addr - base;
        (offset + len <= size).then_some((fd, offset))
    }

    /// A file holding a body (a temporary file, or a tarball's) and its read-only mapping.
    pub(super) struct Mapped {
        fd: OwnedFd,
        addr: *const u8,
        len: usize,
        /// Holds one of [`super::LIVE_FILES`]' slots.
        temporary: bool,
    }

    // SAFETY: the mapping is read-only and lives until drop; nothing writes to its file.
    unsafe impl Send for Mapped {}
    unsafe impl Sync for Mapped {}

    /// Maps `len` bytes of `fd` read-only (`populate`: faulted in now) and notes the mapping.
    fn map(fd: OwnedFd, len: usize, populate: bool) -> Result<Mapped, (OwnedFd, io::Error)> {
        let flags = libc::MAP_SHARED | if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: a new mapping of an open descriptor, at an address the kernel picks.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                flags,
                fd.as_raw_fd(),
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err((fd, io::Error::last_os_error()));
        }
        REGIONS
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr as usize, (len, fd.as_raw_fd()));
        Ok(Mapped {
            addr: addr.cast(),
            len,
            fd,
            temporary: false,
        })
    }

    impl Mapped {
        /// An unnamed temporary file in `folder` holding `data`, mapped and populated.
        pub(super) fn temporary(folder: &Path, data: &[u8]) -> io::Result<Self> {
            use std::io::Write;
            let mut file = open_temporary(folder)?;
            file.write_all(data)?;
            let mut mapped = map(OwnedFd::from(file), data.len(), true).map_err(|(_, e)| e)?;
            mapped.temporary = true;
            Ok(mapped)
        }

        /// `file`'s bytes, if the file is `len` (at least [`super::MIN_LEN`]) bytes long and
        /// wholly in the page cache; else `file` back.
        pub(super) fn resident(file: std::fs::File, len: u64) -> Result<Self, std::fs::File> {
            use std::os::unix::fs::MetadataExt;
            let Ok(meta) = file.metadata() else {
                return Err(file);
            };
            // `mincore` tells the truth about a file's pages only to its owner (or a process
            // that may write it); to others it says every page is resident, and a cold
            // tarball would then be read from disk on a serving thread
            // SAFETY: geteuid has no preconditions.
            let euid = unsafe { libc::geteuid() };
            if meta.uid() != euid && euid != 0 {
                return Err(file);
            }
            let len = match usize::try_from(len) {
                Ok(len) if meta.len() == len as u64 && len >= super::MIN_LEN => len,
                _ => return Err(file),
            };
            let mapped = match map(OwnedFd::from(file), len, false) {
                Ok(m) => m,
                Err((fd, _)) => return Err(fd.into()),
            };
            // SAFETY: sysconf has no preconditions.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as usize;
            let mut pages = vec![0u8; len.div_ceil(page)];
            // SAFETY: a page-aligned mapping of `len` bytes, and one byte of `pages` per page.
            let r = unsafe {
                libc::mincore(
                    mapped.addr as *mut libc::c_void,
                    len,
                    pages.as_mut_ptr().cast(),
                )
            };
            if r != 0 || pages.iter().any(|p| p & 1 == 0) {
                return Err(mapped.into_file());
            }
            Ok(mapped)
        }

        /// Unmaps, and gives the file back.
        fn into_file(self) -> std::fs::File {
            self.unmap();
            let this = std::mem::ManuallyDrop::new(self);
            // SAFETY: `this` is never dropped, so its descriptor is moved out exactly once.
            std::fs::File::from(unsafe { std::ptr::read(&this.fd) })
        }

        fn unmap(&self) {
            REGIONS
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(self.addr as usize));
            // SAFETY: the mapping made in `map`, unmapped once (drop, or `into_file`, which
            // skips drop); no slice of it outlives `self`.
            unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len) };
        }
    }

    impl AsRef<[u8]> for Mapped {
        fn as_ref(&self) -> &[u8] {
            // SAFETY: `len` mapped, readable bytes whose file no one writes.
            unsafe { std::slice::from_raw_parts(self.addr, self.len) }
        }
    }

    impl Drop for Mapped {
        fn drop(&mut self) {
            self.unmap();
            if self.temporary {
                super::LIVE_FILES.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// A folder for the tests' files: the workspace's (ignored) target folder, on a disk file
/// system, where clean pages can be dropped (a tmpfs, as /tmp may be, holds them for good).
#[cfg(test)]
pub(crate) fn test_folder() -> PathBuf {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp");
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files_stop_at_their_limit() {
        let live = AtomicUsize::new(0);
        assert!(take_slot(&live, 2));
        assert!(take_slot(&live, 2));
        assert!(!take_slot(&live, 2), "a third of two");
        live.fetch_sub(1, Ordering::Relaxed);
        assert!(take_slot(&live, 2), "a slot given back is taken again");
        assert!(
            !take_slot(&AtomicUsize::new(0), 0),
            "none when none may be open"
        );
        assert!(open_file_limit() > 0);
    }

    #[test]
    fn small_bodies_stay_in_memory() {
        let b = bytes_of(vec![7; MIN_LEN - 1]);
        assert_eq!(&b[..], &vec![7; MIN_LEN - 1][..]);
        #[cfg(target_os = "linux")]
        assert!(find(&b).is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn large_bodies_are_found_with_their_offsets_until_dropped() {
        assert!(
            keep_in(&test_folder(), 0, SendfileMode::On),
            "the target folder takes temporary files"
        );
        let data: Vec<u8> = (0..MIN_LEN * 3).map(|i| (i % 251) as u8).collect();
        let b = bytes_of(data.clone());
        assert_eq!(&b[..], &data[..], "the mapping reads as the data");
        let (fd, off) = find(&b).expect("a body in a file");
        assert_eq!(off, 0);
        let tail = b.slice(MIN_LEN..);
        let (fd2, off2) = find(&tail).expect("a slice of it");
        assert_eq!((fd2, off2), (fd, MIN_LEN));
        // the file holds the same bytes at that offset, and has no name
        let mut buf = vec![0u8; 16];
        // SAFETY: an open descriptor and a buffer of 16 bytes.
        let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), 16, off2 as i64) };
        assert_eq!(n, 16);
        assert_eq!(&buf[..], &data[MIN_LEN..MIN_LEN + 16]);
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
        assert!(
            link.to_string_lossy().ends_with("(deleted)"),
            "{}",
            link.display()
        );
        // a slice that does not lie within it (a copy) is not found
        let copy = data[..MIN_LEN].to_vec();
        assert!(find(&copy).is_none());
        let addr = b.as_ptr() as usize;
        drop((b, tail));
        assert!(
            linux::find(addr, MIN_LEN).is_none(),
            "dropped bodies are forgotten"
        );
    }

    #[test]
    fn busy_share_reads_proc_stat_lines() {
        let before = "cpu  100 0 50 800 50 0 0 0 0 0";
        // 100 more ticks: 30 user, 10 system, 55 idle, 5 iowait
        let after = "cpu  130 0 60 855 55 0 0 0 0 0";
        let busy = busy_share(before, after).unwrap();
        assert!((busy - 0.40).abs() < 1e-9, "{busy}");
        assert_eq!(busy_share(before, before), None, "no time passed");
        assert_eq!(busy_share(after, before), None, "counters going back");
        assert_eq!(busy_share("cpu0 1 2 3 4 5", after), None, "one CPU's line");
        assert_eq!(busy_share("cpu 1 2 x 4 5", after), None, "unreadable");
        assert_eq!(busy_share("cpu 1 2 3", after), None, "too short");
        // an old kernel's four counters
        assert_eq!(busy_share("cpu 0 0 0 10", "cpu 0 0 0 20"), Some(0.0));
        assert_eq!(busy_share("cpu 0 0 0 10", "cpu 5 0 5 10"), Some(1.0));
        #[cfg(target_os = "linux")]
        {
            let line = linux::cpu_line().expect("/proc/stat");
            assert!(line.starts_with("cpu "), "{line}");
            assert!(busy_share(&line, &line).is_none());
        }
    }

    /// The wait ends at once on a machine as quiet as can be asked for (any share below 1.01),
    /// and gives up at its deadline on one no machine is quiet enough for (below 0).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_measure_waits_for_a_quiet_machine_up_to_a_deadline() {
        use std::time::{Duration, Instant};
        let t = Instant::now();
        assert!(linux::wait_for_quiet(1.01, Duration::from_secs(5)));
        assert!(t.elapsed() < Duration::from_secs(5));
        let t = Instant::now();
        assert!(!linux::wait_for_quiet(0.0, Duration::from_millis(600)));
        assert!(t.elapsed() >= Duration::from_millis(600));
    }

    #[test]
    fn sendfile_is_kept_unless_copying_is_clearly_faster() {
        use std::time::Duration;
        let ms = Duration::from_millis;
        assert!(prefers_sendfile(ms(100), ms(100)), "a tie");
        assert!(
            prefers_sendfile(ms(100), ms(95)),
            "copying 5 % faster: noise"
        );
        assert!(prefers_sendfile(ms(100), ms(90)), "at the line");
        assert!(
            !prefers_sendfile(ms(100), ms(89)),
            "copying over 10 % faster"
        );
        assert!(
            !prefers_sendfile(ms(170), ms(100)),
            "as on the VM where it was 1.7x"
        );
        assert!(
            prefers_sendfile(ms(100), ms(160)),
            "as on the VM where sendfile was 1.6x"
        );
    }

    /// The measure sends what it says over a real loopback connection, both ways, and times
    /// both (which way wins is the machine's business, not the test's).
    #[cfg(target_os = "linux")]
    #[test]
    fn both_ways_are_measured_on_a_loopback_connection() {
        let (by_file, by_copy) = linux::measure(&test_folder()).expect("a loopback measure");
        assert!(by_file > std::time::Duration::ZERO);
        assert!(by_copy > std::time::Duration::ZERO);
        assert!(
            linux::measure(&test_folder().join("no-such-folder")).is_err(),
            "no file, no measure"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn temporary_files_are_not_made_on_a_tmpfs_or_nowhere() {
        let shm = std::path::Path::new("/dev/shm");
        let err = linux::usable(shm).expect_err("/dev/shm is a tmpfs");
        assert!(err.contains("tmpfs"), "{err}");
        assert!(linux::usable(&test_folder().join("no-such-folder")).is_err());
        assert_eq!(linux::usable(&test_folder()), Ok(()));
    }

    /// A tarball's file is sent as it is only when it is as long as listed and all in memory;
    /// otherwise it comes back to be streamed (which reports a short file).
    #[cfg(target_os = "linux")]
    #[test]
    fn tarball_files_are_mapped_only_whole_and_resident() {
        use std::os::fd::AsRawFd;
        let data: Vec<u8> = (0..MIN_LEN * 2 + 5).map(|i| (i % 241) as u8).collect();
        let dir = tempfile::tempdir_in(test_folder()).unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, &data).unwrap();
        let open = || std::fs::File::open(&path).unwrap();
        let len = data.len() as u64;
        // just written: in the page cache
        let b = file(open(), len).expect("a resident file");
        assert_eq!(&b[..], &data[..]);
        assert!(find(&b).is_some());
        drop(b);
        assert!(file(open(), len + 1).is_err(), "shorter than listed");
        assert!(file(open(), len - 1).is_err(), "longer than listed");
        let small = dir.path().join("small");
        std::fs::write(&small, &data[..MIN_LEN - 1]).unwrap();
        let f = std::fs::File::open(&small).unwrap();
        assert!(
            file(f, (MIN_LEN - 1) as u64).is_err(),
            "too small to send so"
        );
        // out of the page cache: streamed, so no serving thread waits for the disk
        let f = open();
        f.sync_all().unwrap();
        // SAFETY: an open descriptor.
        let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        assert_eq!(r, 0);
        let back = file(f, len).expect_err("a file out of the page cache is not mapped");
        assert_eq!(
            back.metadata().unwrap().len(),
            len,
            "the same file comes back"
        );
    }
}
