//! Sealing of TOTP secrets at rest: AES-256-GCM under a key kept outside the database.
//!
//! The key comes from `TESSERA_SECRET_KEY` or from `secret.key` in the data directory, created
//! with mode 0600 on first start. A sealed value is `[key id][12-byte random nonce][ciphertext
//! and tag]`, with the owning account bound in as associated data, so a sealed secret copied to
//! another account's row does not open. The key id lets keys be rotated.

use std::collections::BTreeMap;
use std::path::Path;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};

/// File name of the key file in the data directory.
pub const KEY_FILE: &str = "secret.key";
const NONCE_LEN: usize = 12;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The key file or variable is unusable.
    #[error("secret key: {0}")]
    Key(String),
    /// A sealed value could not be opened (wrong key, tampered or corrupt).
    #[error("sealed value cannot be opened")]
    Open,
}

/// The sealing keys: one current key, older ones kept to open values sealed before a rotation.
#[derive(Clone)]
pub struct KeyRing {
    current: u8,
    keys: BTreeMap<u8, [u8; 32]>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current)
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KeyRing {
    /// Parses `id:hex` entries (comma- or newline-separated; a bare hex string is id 1). The last
    /// entry is the current key.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let mut keys = BTreeMap::new();
        let mut current = None;
        for entry in text
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'))
        {
            let (id, hex) = match entry.split_once(':') {
                Some((id, hex)) => (
                    id.trim()
                        .parse::<u8>()
                        .map_err(|_| SealError::Key(format!("bad key id {id:?}")))?,
                    hex.trim(),
                ),
                None => (1, entry),
            };
            if id == 0 {
                return Err(SealError::Key("key id 0 is reserved".into()));
            }
            let bytes = data_encoding::HEXLOWER_PERMISSIVE
                .decode(hex.as_bytes())
                .map_err(|_| SealError::Key("keys must be 64 hex characters".into()))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| SealError::Key("keys must be 32 bytes (64 hex characters)".into()))?;
            keys.insert(id, key);
            current = Some(id);
        }
        let current = current.ok_or_else(|| SealError::Key("no key given".into()))?;
        Ok(KeyRing { current, keys })
    }

    /// A ring with one fresh random key (id 1).
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).expect("the OS random number generator failed");
        KeyRing {
            current: 1,
            keys: BTreeMap::from([(1, k)]),
        }
    }

    /// The ring as written to the key file.
    pub fn to_text(&self) -> String {
        let mut out = String::from(
            "# tessera sealing keys (id:hex); the last line is the current key. Keep this file secret.\n",
        );
        let mut ids: Vec<u8> = self
            .keys
            .keys()
            .copied()
            .filter(|i| *i != self.current)
            .collect();
        ids.push(self.current);
        for id in ids {
            out.push_str(&format!(
                "{id}:{}\n",
                data_encoding::HEXLOWER.encode(&self.keys[&id])
            ));
        }
        out
    }

    /// Adds a new random key and makes it current; returns its id.
    pub fn rotate(&mut self) -> Result<u8, SealError> {
        let id = self
            .keys
            .keys()
            .max()
            .copied()
            .unwrap_or(0)
            .checked_add(1)
            .ok_or_else(|| SealError::Key("too many keys".into()))?;
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).expect("the OS random number generator failed");
        self.keys.insert(id, k);
        self.current = id;
        Ok(id)
    }

    /// The id of the current key.
    pub fn current_id(&self) -> u8 {
        self.current
    }

    /// Loads the ring: `TESSERA_SECRET_KEY` if given, else the key file in `data`, created with
    /// mode 0600 (and a fresh key) when missing.
    pub fn load(data: &Path, env_value: Option<&str>) -> Result<Self, SealError> {
        if let Some(v) = env_value {
            return Self::parse(v);
        }
        let path = data.join(KEY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let ring = Self::generate();
                ring.write(data)?;
                Ok(ring)
            }
            Err(e) => Err(SealError::Key(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the key file (mode 0600), replacing it atomically.
    pub fn write(&self, data: &Path) -> Result<(), SealError> {
        use std::io::Write;
        std::fs::create_dir_all(data).map_err(|e| SealError::Key(e.to_string()))?;
        let tmp = data.join(format!("{KEY_FILE}.tmp"));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts
            .open(&tmp)
            .map_err(|e| SealError::Key(format!("cannot write {}: {e}", tmp.display())))?;
        f.write_all(self.to_text().as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| SealError::Key(e.to_string()))?;
        std::fs::rename(&tmp, data.join(KEY_FILE)).map_err(|e| SealError::Key(e.to_string()))?;
        Ok(())
    }

    /// Seals `plain` for account `user` under the current key.
    pub fn seal(&self, user: i64, plain: &[u8]) -> Vec<u8> {
        let key = &self.keys[&self.current];
        let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random number generator failed");
        let aad = aad(user);
        let ct = cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encryption of a short secret cannot fail");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        out.push(self.current);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        out
    }

    /// Opens a value sealed for account `user`.
    pub fn open(&self, user: i64, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + 16 {
            return Err(SealError::Open);
        }
        let key = self.keys.get(&sealed[0]).ok_or(SealError::Open)?;
        let cipher = Aes256Gcm::new_from_slice(key).expect("32-byte key");
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN]
            .try_into()
            .map_err(|_| SealError::Open)?;
        let aad = aad(user);
        cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Open)
    }

    /// Whether the ring holds key `id`.
    pub fn has(&self, id: u8) -> bool {
        self.keys.contains_key(&id)
    }

    /// Takes `fresh`'s keys and current key, keeping keys only this ring holds for opening.
    pub fn merge_from(&mut self, fresh: KeyRing) {
        self.current = fresh.current;
        self.keys.extend(fresh.keys);
    }

    /// Removes every key but the current one (after all values are resealed under it).
    pub fn retire_old(&mut self) -> Vec<u8> {
        let old: Vec<u8> = self
            .keys
            .keys()
            .copied()
            .filter(|i| *i != self.current)
            .collect();
        for id in &old {
            self.keys.remove(id);
        }
        old
    }

    /// The key id a sealed value was made with.
    pub fn key_id_of(sealed: &[u8]) -> Option<u8> {
        sealed.first().copied()
    }
}

/// Where the key ring came from.
#[derive(Debug, Clone)]
enum KeySource {
    /// `TESSERA_SECRET_KEY`: fixed for the life of the process.
    Env,
    /// The key file in this data directory: re-read when a value sealed under a key id this
    /// process does not know turns up, and before sealing when the file changed
    /// (`tessera admin rotate-key` ran meanwhile).
    File(std::path::PathBuf),
}

/// When the key file was last modified, if it can be read.
fn modified(dir: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(dir.join(KEY_FILE))
        .and_then(|m| m.modified())
        .ok()
}

/// The server's sealing keys: a [`KeyRing`] that follows rotations made by `tessera admin
/// rotate-key` while the server runs.
#[derive(Debug)]
pub struct Keys {
    ring: std::sync::RwLock<KeyRing>,
    source: KeySource,
    /// The key file's modification time when it was last read.
    loaded: std::sync::Mutex<Option<std::time::SystemTime>>,
}

impl Keys {
    /// Loads the ring as [`KeyRing::load`] does, remembering where from. With `require_existing`
    /// (a shared database, where every instance must hold the same key) a missing key is an
    /// error instead of a fresh key.
    pub fn load(
        data: &Path,
        env_value: Option<&str>,
        require_existing: bool,
    ) -> Result<Self, SealError> {
        if env_value.is_none() && require_existing && !data.join(KEY_FILE).exists() {
            return Err(SealError::Key(format!(
                "no sealing key: with a shared database every instance needs the same key. Create \
                 one with `tessera admin new-key` and give it to every instance as TESSERA_SECRET_KEY \
                 (or as {KEY_FILE} in its data directory, here {})",
                data.display()
            )));
        }
        let ring = KeyRing::load(data, env_value)?;
        let source = match env_value {
            Some(_) => KeySource::Env,
            None => KeySource::File(data.to_owned()),
        };
        Ok(Keys {
            ring: std::sync::RwLock::new(ring),
            loaded: std::sync::Mutex::new(env_value.is_none().then(|| modified(data)).flatten()),
            source,
        })
    }

    /// Keys from a fixed ring (tests).
    pub fn fixed(ring: KeyRing) -> Self {
        Keys {
            ring: std::sync::RwLock::new(ring),
            source: KeySource::Env,
            loaded: std::sync::Mutex::new(None),
        }
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, KeyRing> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Seals `plain` for account `user` under the current key, first re-reading the key file if
    /// it changed since it was read, so that a rotation is followed before anything new is
    /// sealed under a key about to be retired.
    pub fn seal(&self, user: i64, plain: &[u8]) -> Vec<u8> {
        if let KeySource::File(dir) = &self.source {
            let now = modified(dir);
            let changed = {
                let loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
                now.is_some() && *loaded != now
            };
            if changed {
                self.reload(dir);
            }
        }
        self.ring().seal(user, plain)
    }

    /// Opens a value sealed for account `user`, re-reading the key file once if the value names
    /// a key this process does not hold.
    pub fn open(&self, user: i64, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let first = self.ring().open(user, sealed);
        if first.is_ok() {
            return first;
        }
        let unknown = KeyRing::key_id_of(sealed).is_some_and(|id| !self.ring().has(id));
        if let (true, KeySource::File(dir)) = (unknown, &self.source)
            && self.reload(dir)
        {
            return self.ring().open(user, sealed);
        }
        first
    }

    /// Re-reads the key file. Its keys join the ring and its current key becomes current; keys
    /// the file no longer holds stay for opening only, so that a secret sealed under a retired
    /// key by a process that had not yet seen the rotation stays readable.
    fn reload(&self, dir: &Path) -> bool {
        let stamp = modified(dir);
        let Some(fresh) = std::fs::read_to_string(dir.join(KEY_FILE))
            .ok()
            .and_then(|t| KeyRing::parse(&t).ok())
        else {
            return false;
        };
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        ring.merge_from(fresh);
        *self.loaded.lock().unwrap_or_else(|e| e.into_inner()) = stamp;
        tracing::info!(
            current = ring.current_id(),
            "sealing keys reloaded from the key file"
        );
        true
    }
}

fn aad(user: i64) -> Vec<u8> {
    format!("tessera-totp-secret:{user}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_for_the_same_account_only() {
        let ring = KeyRing::generate();
        let s = ring.seal(7, b"12345678901234567890");
        assert_eq!(ring.open(7, &s).unwrap(), b"12345678901234567890");
        assert!(ring.open(8, &s).is_err(), "bound to the account");
        assert!(
            !s.windows(20).any(|w| w == b"12345678901234567890"),
            "no plaintext"
        );
        assert_ne!(s, ring.seal(7, b"12345678901234567890"), "random nonce");
        let mut t = s.clone();
        *t.last_mut().unwrap() ^= 1;
        assert!(ring.open(7, &t).is_err(), "tampering is detected");
        assert!(KeyRing::generate().open(7, &s).is_err(), "another key");
        assert!(ring.open(7, b"short").is_err());
    }

    #[test]
    fn rotation_keeps_old_values_readable() {
        let mut ring = KeyRing::generate();
        let old = ring.seal(1, b"secret");
        let id = ring.rotate().unwrap();
        assert_eq!(id, 2);
        let new = ring.seal(1, b"secret");
        assert_eq!(KeyRing::key_id_of(&old), Some(1));
        assert_eq!(KeyRing::key_id_of(&new), Some(2));
        let reread = KeyRing::parse(&ring.to_text()).unwrap();
        assert_eq!(reread.current_id(), 2);
        assert_eq!(reread.open(1, &old).unwrap(), b"secret");
        assert_eq!(reread.open(1, &new).unwrap(), b"secret");
    }

    #[test]
    fn key_file_is_created_private() {
        let dir = std::env::temp_dir().join(format!("tessera-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = KeyRing::load(&dir, None).unwrap();
        let b = KeyRing::load(&dir, None).unwrap();
        let s = a.seal(1, b"x");
        assert_eq!(b.open(1, &s).unwrap(), b"x", "the same key is read back");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_running_server_follows_the_key_file_before_sealing_and_keeps_retired_keys() {
        let dir = std::env::temp_dir().join(format!("tessera-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = KeyRing::generate();
        first.write(&dir).unwrap();
        let keys = Keys::load(&dir, None, true).unwrap();
        let old = keys.seal(1, b"old");
        assert_eq!(KeyRing::key_id_of(&old), Some(1));
        // rotate-key adds key 2 and then retires key 1 in the file while the server runs
        let mut ring = first.clone();
        ring.rotate().unwrap();
        ring.write(&dir).unwrap();
        ring.retire_old();
        ring.write(&dir).unwrap();
        let new = keys.seal(2, b"new");
        assert_eq!(
            KeyRing::key_id_of(&new),
            Some(2),
            "sealed under the new key"
        );
        assert_eq!(keys.open(2, &new).unwrap(), b"new");
        assert_eq!(
            keys.open(1, &old).unwrap(),
            b"old",
            "a retired key still opens"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn env_keys_parse() {
        let hex = "11".repeat(32);
        assert_eq!(KeyRing::parse(&hex).unwrap().current_id(), 1);
        assert_eq!(
            KeyRing::parse(&format!("1:{hex},3:{}", "22".repeat(32)))
                .unwrap()
                .current_id(),
            3
        );
        assert!(KeyRing::parse("abc").is_err());
        assert!(KeyRing::parse("").is_err());
        assert!(KeyRing::parse(&format!("0:{hex}")).is_err());
    }
}
