//! The tarball store: content-addressed, write-once blobs behind `object_store`.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::StoreResult;

/// Tarballs keyed by the hex SHA-512 of their bytes, with the recently read small ones kept in
/// memory (they never change: the key is their content).
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    hot: Arc<HotCache>,
}

/// A tarball to serve: whole bytes (small or cached) or a stream of chunks (large).
pub enum BlobBody {
    /// The whole tarball.
    Whole(Bytes),
    /// The tarball's chunks as the store delivers them.
    Stream(futures::stream::BoxStream<'static, std::io::Result<Bytes>>),
    /// A large tarball in the data folder: its file, open, and its length. [`file_chunks`]
    /// streams it; a server may instead send the file as it is.
    File(std::fs::File, u64),
}

/// Where an S3 blob store lives; `None` settings come from the `AWS_*` variables.
#[derive(Clone, Default)]
pub struct S3Options {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix inside the bucket (may be empty).
    pub prefix: String,
    /// Endpoint URL of a non-AWS store.
    pub endpoint: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Access key id.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Allow plain HTTP.
    pub allow_http: bool,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Largest tarball kept in memory.
const HOT_ITEM_MAX: usize = 1 << 20;
/// How much of a large tarball in the data folder is read at a time. Measured on a 3 MB
/// tarball, 64 to 512 KiB served alike; 1 MiB chunks served a third fewer.
const FILE_CHUNK: usize = 128 << 10;

/// The next `len` bytes of `file`, up to [`FILE_CHUNK`] at a time: read on the calling thread
/// when the page cache holds them (as nginx reads), else on a blocking thread. A file shorter
/// than `len` ends the stream in an error.
pub fn file_chunks(
    file: std::fs::File,
    len: u64,
) -> futures::stream::BoxStream<'static, std::io::Result<Bytes>> {
    use futures::StreamExt;
    futures::stream::try_unfold((file, len), |(file, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = FILE_CHUNK.min(usize::try_from(left).unwrap_or(FILE_CHUNK));
        let (file, chunk) = match read_cached(&file, want)? {
            Some(chunk) => (file, chunk),
            None => tokio::task::spawn_blocking(move || {
                let buf = read_blocking(&file, want)?;
                Ok::<_, std::io::Error>((file, buf))
            })
            .await
            .map_err(std::io::Error::other)??,
        };
        if chunk.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the tarball file is shorter than its listed size",
            ));
        }
        let left = left.saturating_sub(chunk.len() as u64);
        Ok(Some((Bytes::from(chunk), (file, left))))
    })
    .boxed()
}

/// Up to `want` bytes from `file`'s position, if the page cache holds at least the first of
/// them: `preadv2` with `RWF_NOWAIT` never waits for the disk. `None` means "read it on a
/// blocking thread" (nothing cached, or a kernel or file system without `RWF_NOWAIT`).
#[cfg(target_os = "linux")]
fn read_cached(file: &std::fs::File, want: usize) -> std::io::Result<Option<Vec<u8>>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = Vec::with_capacity(want);
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: want,
    };
    // SAFETY: the iovec points at `want` bytes of `buf`'s allocation, which outlives the call;
    // offset -1 reads at (and advances) the file's position, as `read` does.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, -1, libc::RWF_NOWAIT) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EAGAIN | libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL | libc::EINTR) => {
                Ok(None)
            }
            _ => Err(e),
        };
    }
    if n == 0 {
        // the end of the file, or nothing cached on a kernel that reports it this way: the
        // blocking read tells them apart
        return Ok(None);
    }
    // SAFETY: the kernel wrote the first `n` (≤ `want`) bytes.
    unsafe { buf.set_len(n as usize) };
    Ok(Some(buf))
}

/// Up to `want` bytes from `file`'s position, waiting for the disk if need be (no zeroing of
/// the buffer first).
fn read_blocking(file: &std::fs::File, want: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::with_capacity(want);
    file.take(want as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Elsewhere every chunk is read on a blocking thread.
#[cfg(not(target_os = "linux"))]
fn read_cached(_file: &std::fs::File, _want: usize) -> std::io::Result<Option<Vec<u8>>> {
    Ok(None)
}

/// Memory budget of the kept tarballs unless [`BlobStore::with_hot_budget`] sets another.
const HOT_BUDGET: usize = 16 << 20;

/// Hashes a tarball's key (its SHA-512 in hex) by its first 32 characters only, with the
/// process's random SipHash key: 128 bits of a digest tell keys apart as well as 512 do, and a
/// three fourths of the hashing are saved on every cached read. Equality still compares whole keys.
#[derive(Default, Clone)]
struct DigestKeys(std::collections::hash_map::RandomState);

impl std::hash::BuildHasher for DigestKeys {
    type Hasher = Prefixed;

    fn build_hasher(&self) -> Prefixed {
        Prefixed(self.0.build_hasher())
    }
}

/// A hasher fed at most the first 32 bytes of each write.
struct Prefixed(std::collections::hash_map::DefaultHasher);

impl std::hash::Hasher for Prefixed {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(&bytes[..bytes.len().min(32)]);
    }

    fn finish(&self) -> u64 {
        self.0.finish()
    }
}

/// Recently read tarballs, oldest evicted first, within a memory budget.
struct HotCache(Mutex<HotInner>, usize);

impl Default for HotCache {
    fn default() -> Self {
        HotCache(Mutex::default(), HOT_BUDGET)
    }
}

#[derive(Default)]
struct HotInner {
    map: HashMap<String, Bytes, DigestKeys>,
    order: VecDeque<String>,
    size: usize,
}

impl HotCache {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map
            .get(key)
            .cloned()
    }

    fn put(&self, key: &str, bytes: &Bytes) {
        if bytes.len() > HOT_ITEM_MAX {
            return;
        }
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if c.map.contains_key(key) {
            return;
        }
        if bytes.len() > self.1 {
            return;
        }
        while c.size + bytes.len() > self.1 {
            let Some(old) = c.order.pop_front() else {
                break;
            };
            if let Some(b) = c.map.remove(&old) {
                c.size -= b.len();
            }
        }
        c.size += bytes.len();
        c.order.push_back(key.to_owned());
        c.map.insert(key.to_owned(), bytes.clone());
    }

    fn remove(&self, key: &str) {
        let mut c = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = c.map.remove(key) {
            c.size -= b.len();
            c.order.retain(|k| k != key);
        }
    }
}

impl BlobStore {
    /// A store in a local folder (created if missing).
    ///
    /// A write returns once the tarball and its directory entry are on stable storage (fsync):
    /// a publish commits its metadata only after its tarball is written, and that order must
    /// survive a power cut, not only a crash of the process, or the database could keep a
    /// version whose tarball the file system lost. (S3 acknowledges a write once it is durable.)
    pub fn local(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| object_store::Error::Generic {
            store: "local",
            source: Box::new(e),
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)?.with_fsync(true);
        Ok(BlobStore {
            inner: Arc::new(fs),
            hot: Arc::default(),
        })
    }

    /// A store in an S3 bucket, under `prefix`. Unset settings come from the standard `AWS_*`
    /// variables (`AWS_ENDPOINT`, `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_ALLOW_HTTP`), so any S3-compatible store works.
    pub fn s3(opts: &S3Options) -> StoreResult<Self> {
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&opts.bucket);
        if let Some(v) = &opts.endpoint {
            b = b.with_endpoint(v);
        }
        if let Some(v) = &opts.region {
            b = b.with_region(v);
        }
        if let Some(v) = &opts.access_key_id {
            b = b.with_access_key_id(v);
        }
        if let Some(v) = &opts.secret_access_key {
            b = b.with_secret_access_key(v);
        }
        if opts.allow_http {
            b = b.with_allow_http(true);
        }
        let s3 = b.build()?;
        let inner: Arc<dyn ObjectStore> = if opts.prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(
                s3,
                ObjectPath::from(opts.prefix.as_str()),
            ))
        };
        Ok(BlobStore {
            inner,
            hot: Arc::default(),
        })
    }

    /// This store keeping at most about `bytes` of recently read small tarballs in memory.
    pub fn with_hot_budget(self, bytes: usize) -> Self {
        BlobStore {
            inner: self.inner,
            hot: Arc::new(HotCache(Mutex::default(), bytes)),
        }
    }

    /// A store in memory (for tests).
    pub fn memory() -> Self {
        BlobStore {
            inner: Arc::new(InMemory::new()),
            hot: Arc::default(),
        }
    }

    /// Wraps any object store (S3, …).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>) -> Self {
        BlobStore {
            inner,
            hot: Arc::default(),
        }
    }

    fn key(sha512_hex: &str) -> ObjectPath {
        let a = sha512_hex.get(0..2).unwrap_or("00");
        let b = sha512_hex.get(2..4).unwrap_or("00");
        ObjectPath::from(format!("tarballs/{a}/{b}/{sha512_hex}"))
    }

    /// Stores `bytes` under their content address; storing the same bytes twice is a no-op.
    pub async fn put(&self, sha512_hex: &str, bytes: Bytes) -> StoreResult<()> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self
            .inner
            .put_opts(&Self::key(sha512_hex), PutPayload::from(bytes), opts)
            .await
        {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// A small tarball from the memory cache, if it is there: what [`BlobStore::open`] answers
    /// first, without a future to await.
    pub fn cached(&self, sha512_hex: &str) -> Option<Bytes> {
        self.hot.get(sha512_hex)
    }

    /// Opens a tarball for serving; `None` if absent. Small ones (up to the memory cache's item
    /// limit) come whole and are kept in memory; larger ones stream from the store, chunk by
    /// chunk, without being held in memory.
    pub async fn open(&self, sha512_hex: &str) -> StoreResult<Option<BlobBody>> {
        if let Some(b) = self.hot.get(sha512_hex) {
            return Ok(Some(BlobBody::Whole(b)));
        }
        match self.inner.get(&Self::key(sha512_hex)).await {
            Ok(r) if r.meta.size as usize <= HOT_ITEM_MAX => {
                let b = r.bytes().await?;
                self.hot.put(sha512_hex, &b);
                Ok(Some(BlobBody::Whole(b)))
            }
            Ok(r) => {
                use futures::StreamExt;
                let len = r.range.end - r.range.start;
                Ok(Some(match r.payload {
                    // object_store reads a file 8 KiB at a time, each on a blocking thread:
                    // a 3 MB tarball took 384 hops (166 req/s where nginx served 1,553)
                    object_store::GetResultPayload::File(file, _) => BlobBody::File(file, len),
                    payload => BlobBody::Stream(
                        object_store::GetResult { payload, ..r }
                            .into_stream()
                            .map(|c| c.map_err(std::io::Error::other))
                            .boxed(),
                    ),
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole tarball; `None` if absent.
    pub async fn get(&self, sha512_hex: &str) -> StoreResult<Option<Bytes>> {
        if let Some(b) = self.hot.get(sha512_hex) {
            return Ok(Some(b));
        }
        match self.inner.get(&Self::key(sha512_hex)).await {
            Ok(r) => {
                let b = r.bytes().await?;
                self.hot.put(sha512_hex, &b);
                Ok(Some(b))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The content addresses of every stored tarball.
    pub async fn list(&self) -> StoreResult<Vec<String>> {
        use futures::TryStreamExt;
        let prefix = ObjectPath::from("tarballs");
        let metas: Vec<object_store::ObjectMeta> =
            self.inner.list(Some(&prefix)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_owned))
            .filter(|n| n.len() == 128 && n.bytes().all(|c| c.is_ascii_hexdigit()))
            .collect())
    }

    /// Whether a tarball is stored (asks the store itself, not the memory cache).
    pub async fn exists(&self, sha512_hex: &str) -> StoreResult<bool> {
        match self.inner.head(&Self::key(sha512_hex)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a tarball; deleting a missing one is not an error.
    pub async fn delete(&self, sha512_hex: &str) -> StoreResult<()> {
        self.hot.remove(sha512_hex);
        match self.inner.delete(&Self::key(sha512_hex)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_once_read_cached_delete() {
        let b = BlobStore::memory();
        b.put("ab12", Bytes::from_static(b"one")).await.unwrap();
        b.put("ab12", Bytes::from_static(b"two")).await.unwrap();
        assert_eq!(
            b.get("ab12").await.unwrap().unwrap(),
            Bytes::from_static(b"one"),
            "write-once"
        );
        assert_eq!(
            b.get("ab12").await.unwrap().unwrap(),
            Bytes::from_static(b"one"),
            "from memory"
        );
        b.delete("ab12").await.unwrap();
        assert!(
            b.get("ab12").await.unwrap().is_none(),
            "deleting forgets the cached copy"
        );
        assert!(b.get("nope").await.unwrap().is_none());
        assert!(!b.exists("ab12").await.unwrap());
        b.put("ab12", Bytes::from_static(b"one")).await.unwrap();
        assert!(b.exists("ab12").await.unwrap());
    }

    #[tokio::test]
    async fn cached_tarballs_whose_keys_share_a_long_prefix_stay_apart() {
        let b = BlobStore::memory();
        let prefix = "0123456789abcdef".repeat(4);
        let (one, two) = (format!("{prefix}aa"), format!("{prefix}bb"));
        b.put(&one, Bytes::from_static(b"one")).await.unwrap();
        b.put(&two, Bytes::from_static(b"two")).await.unwrap();
        assert!(b.cached(&one).is_none(), "kept in memory once read");
        b.get(&one).await.unwrap();
        b.get(&two).await.unwrap();
        assert_eq!(b.cached(&one).unwrap(), Bytes::from_static(b"one"));
        assert_eq!(b.cached(&two).unwrap(), Bytes::from_static(b"two"));
        assert!(
            b.cached(&prefix).is_none(),
            "the prefix alone is another key"
        );
        b.delete(&one).await.unwrap();
        assert!(b.cached(&one).is_none());
        assert_eq!(b.cached(&two).unwrap(), Bytes::from_static(b"two"));
    }

    #[tokio::test]
    async fn large_tarballs_stream_and_small_ones_come_whole() {
        use futures::TryStreamExt;
        let b = BlobStore::memory();
        let big: Vec<u8> = (0..HOT_ITEM_MAX + 4096).map(|i| (i % 251) as u8).collect();
        b.put("big", Bytes::from(big.clone())).await.unwrap();
        b.put("small", Bytes::from_static(b"tiny")).await.unwrap();
        b.hot.remove("big");
        b.hot.remove("small");
        match b.open("big").await.unwrap().unwrap() {
            BlobBody::Stream(s) => {
                let chunks: Vec<Bytes> = s.try_collect().await.unwrap();
                assert_eq!(chunks.concat(), big);
            }
            _ => panic!("a large tarball in memory must stream"),
        }
        assert!(b.hot.get("big").is_none(), "not kept in memory");
        match b.open("small").await.unwrap().unwrap() {
            BlobBody::Whole(w) => assert_eq!(&w[..], b"tiny"),
            _ => panic!("a small tarball comes whole"),
        }
        assert!(b.hot.get("small").is_some(), "and is kept");
        assert!(b.open("none").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_large_tarball_in_a_folder_comes_as_its_file_and_streams_in_file_chunks() {
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let b = BlobStore::local(dir.path()).unwrap();
        let big: Vec<u8> = (0..3 * HOT_ITEM_MAX + 17)
            .map(|i| (i % 251) as u8)
            .collect();
        b.put("big", Bytes::from(big.clone())).await.unwrap();
        match b.open("big").await.unwrap().unwrap() {
            BlobBody::File(file, len) => {
                assert_eq!(len, big.len() as u64);
                let chunks: Vec<Bytes> = file_chunks(file, len).try_collect().await.unwrap();
                assert!(chunks.iter().all(|c| c.len() <= FILE_CHUNK));
                assert_eq!(chunks.concat(), big);
            }
            _ => panic!("a large tarball in a folder comes as its file"),
        }
    }

    /// A tarball file cut short on disk (a bad restore, a full disk) must not be served as a
    /// complete body: the stream ends in an error, and the server drops the connection.
    #[tokio::test]
    async fn a_tarball_file_shorter_than_its_listed_size_ends_in_an_error() {
        use futures::StreamExt;
        use std::io::{Seek, Write};
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&[7u8; 1000]).unwrap();
        f.rewind().unwrap();
        let mut s = file_chunks(f, 5000);
        assert_eq!(s.next().await.unwrap().unwrap().len(), 1000);
        let e = s.next().await.unwrap().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
        assert!(s.next().await.is_none(), "nothing after the error");
    }

    #[test]
    fn cached_and_blocking_reads_take_turns_on_one_file() {
        use std::io::Write;
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 253) as u8).collect();
        f.write_all(&data).unwrap();
        use std::io::Seek;
        f.rewind().unwrap();
        let mut got = Vec::new();
        for i in 0.. {
            let part = if i % 2 == 0 {
                // just written, so the page cache holds it (on Linux)
                let cached = read_cached(&f, 3000).unwrap();
                if cfg!(target_os = "linux") && got.len() < data.len() {
                    assert!(cached.is_some(), "read {i} was not served from the cache");
                }
                cached.unwrap_or_default()
            } else {
                read_blocking(&f, 3000).unwrap()
            };
            if part.is_empty() && got.len() == data.len() {
                break;
            }
            got.extend_from_slice(&part);
            assert!(i < 20, "no end");
        }
        assert_eq!(got, data);
    }

    #[test]
    fn the_memory_budget_holds() {
        let c = HotCache::default();
        let big = Bytes::from(vec![0u8; HOT_ITEM_MAX]);
        for i in 0..(HOT_BUDGET / HOT_ITEM_MAX + 5) {
            c.put(&format!("k{i}"), &big);
        }
        let inner = c.0.lock().unwrap();
        assert!(inner.size <= HOT_BUDGET);
        assert!(!inner.map.contains_key("k0"), "the oldest went first");
        drop(inner);
        c.put("huge", &Bytes::from(vec![0u8; HOT_ITEM_MAX + 1]));
        assert!(c.get("huge").is_none(), "large tarballs are not kept");
    }
}
