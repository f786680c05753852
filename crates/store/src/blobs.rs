//! The tarball store: content-addressed, write-once blobs behind `object_store`.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::StoreResult;

/// Tarballs keyed by the hex SHA-512 of their bytes.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
}

impl BlobStore {
    /// A store in a local folder (created if missing).
    pub fn local(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| object_store::Error::Generic {
            store: "local",
            source: Box::new(e),
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(BlobStore {
            inner: Arc::new(fs),
        })
    }

    /// A store in memory (for tests).
    pub fn memory() -> Self {
        BlobStore {
            inner: Arc::new(InMemory::new()),
        }
    }

    /// Wraps any object store (S3, …).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>) -> Self {
        BlobStore { inner }
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

    /// Reads a whole tarball; `None` if absent.
    pub async fn get(&self, sha512_hex: &str) -> StoreResult<Option<Bytes>> {
        match self.inner.get(&Self::key(sha512_hex)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a tarball; deleting a missing one is not an error.
    pub async fn delete(&self, sha512_hex: &str) -> StoreResult<()> {
        match self.inner.delete(&Self::key(sha512_hex)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
