//! Registry signatures: the ECDSA P-256 keys that sign `<name>@<version>:<integrity>` for
//! every version (served as `dist.signatures`), and their public halves at `/-/npm/v1/keys`,
//! which `npm audit signatures` checks against.
//!
//! The first instance to start makes the key; every instance reads it from the store, where its
//! private half is sealed like the TOTP secrets. A rotation (`tessera admin
//! rotate-signing-key`) makes a new current key and gives the old one an `expires`: npm counts
//! a signature when the version was published before its key expired, so versions signed
//! before a rotation keep verifying.

use std::sync::RwLock;

use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_store::{SigningKey, Store};

use crate::http::error::{ApiError, ApiResult};
use crate::two_factor::sealing::Keys;

/// How long a rotated-out key stays valid for new signatures: a publish that read the old key
/// just before a rotation, or an instance whose clock is a little behind, still signs a
/// version dated before the old key's `expires`.
pub const ROTATION_GRACE_MS: i64 = 5 * 60 * 1000;

/// The account id sealing binds a signing key to (no account has it).
pub const SEALED_FOR: i64 = -16;

/// The DER header of a P-256 public key's SubjectPublicKeyInfo (id-ecPublicKey, prime256v1),
/// before the 65-byte uncompressed point.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The current key, ready to sign.
struct Current {
    keyid: String,
    pair: EcdsaKeyPair,
}

/// The registry's signing keys as this instance holds them.
#[derive(Default)]
pub struct Signer {
    current: RwLock<Option<std::sync::Arc<Current>>>,
}

/// A freshly made key: the row to store (its private half sealed).
pub fn generate(keys: &Keys, now: i64) -> Result<SigningKey, String> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| "cannot make a P-256 key".to_string())?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| "cannot read the key just made".to_string())?;
    let spki = spki_of(pair.public_key().as_ref());
    Ok(SigningKey {
        keyid: keyid_of(&spki),
        public_key: data_encoding::BASE64.encode(&spki),
        sealed_private: keys.seal(SEALED_FOR, pkcs8.as_ref()),
        created_at: now,
        expires_at: None,
    })
}

/// The SubjectPublicKeyInfo DER of an uncompressed P-256 point.
pub fn spki_of(point: &[u8]) -> Vec<u8> {
    let mut spki = SPKI_P256_PREFIX.to_vec();
    spki.extend_from_slice(point);
    spki
}

/// Whether `b64` is the base64 SubjectPublicKeyInfo of a P-256 point (the only key npm's
/// registry signatures use).
pub fn is_p256_spki(b64: &str) -> bool {
    data_encoding::BASE64
        .decode(b64.as_bytes())
        .is_ok_and(|d| d.len() == 91 && d[..26] == SPKI_P256_PREFIX && d[26] == 0x04)
}

/// npm's key id: `SHA256:` and the unpadded base64 of the SPKI's SHA-256.
pub fn keyid_of(spki: &[u8]) -> String {
    format!(
        "SHA256:{}",
        data_encoding::BASE64_NOPAD.encode(&Sha256::digest(spki))
    )
}

/// The message a registry signature covers.
pub fn message(name: &str, version: &str, integrity: &str) -> String {
    format!("{name}@{version}:{integrity}")
}

/// `GET /-/npm/v1/keys`'s body for `keys` (npm's shape: `expires` null or an ISO date).
pub fn keys_document(keys: &[SigningKey]) -> Value {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "expires": k.expires_at.map(crate::clock::iso8601),
                "keyid": k.keyid,
                "keytype": "ecdsa-sha2-nistp256",
                "scheme": "ecdsa-sha2-nistp256",
                "key": k.public_key,
            })
        })
        .collect();
    json!({ "keys": keys })
}

impl Signer {
    /// Makes sure the store has a current key (the first instance to start makes it).
    pub async fn ensure_key(store: &dyn Store, keys: &Keys, now: i64) -> ApiResult<()> {
        if let Some(current) = store
            .signing_keys()
            .await?
            .into_iter()
            .find(|k| k.expires_at.is_none())
        {
            // said at start, not at the first publish: this instance's sealing key is not the
            // one the key was sealed with
            if let Err(e) = keys.open(SEALED_FOR, &current.sealed_private) {
                tracing::error!(keyid = %current.keyid, error = %e,
                    "the registry signing key cannot be opened with this instance's sealing \
                     key: versions published here will be unsigned");
            }
            return Ok(());
        }
        let key = generate(keys, now).map_err(ApiError::internal)?;
        if store.add_signing_key(&key, None).await? {
            tracing::info!(keyid = %key.keyid, "made the registry signing key");
        }
        Ok(())
    }

    /// Signs `name@version:integrity` with the current key: `dist.signatures` as JSON text.
    /// The store is asked which key is current, so a rotation made by another process is
    /// followed at the next publish.
    pub async fn sign(
        &self,
        store: &dyn Store,
        keys: &Keys,
        name: &str,
        version: &str,
        integrity: &str,
    ) -> ApiResult<String> {
        let current = self.current(store, keys).await?;
        let rng = SystemRandom::new();
        let sig = current
            .pair
            .sign(&rng, message(name, version, integrity).as_bytes())
            .map_err(|_| ApiError::internal("the registry key could not sign"))?;
        Ok(json!([{
            "keyid": current.keyid,
            "sig": data_encoding::BASE64.encode(sig.as_ref()),
        }])
        .to_string())
    }

    /// Signs `message` with the current key: its key id, the DER signature and the key's
    /// SubjectPublicKeyInfo DER (for a DSSE envelope, whose verifiers need the key itself).
    pub async fn sign_bytes(
        &self,
        store: &dyn Store,
        keys: &Keys,
        message: &[u8],
    ) -> ApiResult<(String, Vec<u8>, Vec<u8>)> {
        let current = self.current(store, keys).await?;
        let sig = current
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|_| ApiError::internal("the registry key could not sign"))?;
        Ok((
            current.keyid.clone(),
            sig.as_ref().to_vec(),
            spki_of(current.pair.public_key().as_ref()),
        ))
    }

    async fn current(&self, store: &dyn Store, keys: &Keys) -> ApiResult<std::sync::Arc<Current>> {
        let all = store.signing_keys().await?;
        let Some(row) = all.iter().find(|k| k.expires_at.is_none()) else {
            return Err(ApiError::internal("the registry has no signing key"));
        };
        if let Some(c) = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            && c.keyid == row.keyid
        {
            return Ok(c.clone());
        }
        let pkcs8 = keys.open(SEALED_FOR, &row.sealed_private).map_err(|e| {
            ApiError::internal(format!(
                "the signing key {} cannot be opened: {e}",
                row.keyid
            ))
        })?;
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
        .map_err(|_| ApiError::internal(format!("the signing key {} is unusable", row.keyid)))?;
        let c = std::sync::Arc::new(Current {
            keyid: row.keyid.clone(),
            pair,
        });
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        Ok(c)
    }
}

/// What [`sign_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SignReport {
    /// Versions signed.
    pub signed: usize,
    /// Versions left unsigned because their stored tarball is missing or does not match their
    /// metadata (see the log).
    pub refused: usize,
}

/// Signs, with the current key, every version that has no signature (published before the
/// registry had keys, or when its key could not be opened) or whose signature is from a key
/// that had expired when it was published (a publish that raced a rotation, or a key
/// declared compromised), and drops this instance's cached renderings of their packages.
///
/// The database alone is not trusted for this: a version is signed only if its stored tarball
/// hashes to its `integrity` and its `package.json` names this package and version, so someone
/// who can write the database but has no sealing key cannot have a changed `integrity` signed.
pub async fn sign_all(state: &crate::state::AppState, now: i64) -> ApiResult<SignReport> {
    let (store, keys, signer) = (state.store.as_ref(), &state.keys, &state.signer);
    let limits = crate::npm::tarball::TarballLimits {
        max_unpacked: state.config.max_unpacked_size.0,
        ..Default::default()
    };
    let mut report = SignReport::default();
    let mut after = None;
    loop {
        let batch = store.versions_to_sign(after.clone(), 200).await?;
        let Some(last) = batch.last() else {
            if report.signed > 0 {
                // the other processes drop their renderings (this one did as it went)
                store.bump_packument_epoch().await?;
            }
            return Ok(report);
        };
        after = Some((last.package_id, last.version.clone()));
        let mut by_package: std::collections::BTreeMap<(i64, &str), Vec<_>> = Default::default();
        for v in &batch {
            let stored = Stored {
                name: &v.name,
                version: &v.version,
                integrity: &v.integrity,
                sha512: &v.tarball_sha512,
            };
            if let Err(why) = tarball_matches(state, stored, limits).await {
                report.refused += 1;
                tracing::error!(package = %v.name, version = %v.version, reason = %why,
                    "not signing a version whose tarball does not match its metadata");
                continue;
            }
            let sigs = signer
                .sign(store, keys, &v.name, &v.version, &v.integrity)
                .await?;
            by_package
                .entry((v.package_id, v.name.as_str()))
                .or_default()
                .push((v.version.clone(), v.signatures.clone(), sigs));
        }
        for ((package, name), signed) in by_package {
            report.signed += store.set_version_signatures(package, &signed, now).await?;
            state.packuments.invalidate(name);
        }
    }
}

/// After a publish: a signing-key rotation that committed while the publish was under way may
/// have left its signature (`signatures`) from a key that had expired when the version was
/// published (npm aborts its audit on those); a signing pass then signs it again.
pub async fn resign_if_rotated(
    state: &crate::state::AppState,
    signatures: Option<&str>,
    published_at: i64,
) {
    let Some(sigs) = signatures else { return };
    let Ok(keys) = state.store.signing_keys().await else {
        return;
    };
    let expired = keys.iter().any(|k| {
        k.expires_at.is_some_and(|e| e <= published_at)
            && sigs.contains(&format!("\"{}\"", k.keyid))
    });
    if expired {
        let s = state.clone();
        tokio::spawn(async move {
            let now = s.clock.now_ms();
            if let Err(e) = sign_all(&s, now).await {
                tracing::error!(error = %e.message, "cannot sign a version again after a rotation");
            }
        });
    }
}

/// A stored version, as the database describes it.
#[derive(Debug, Clone, Copy)]
pub struct Stored<'a> {
    /// The package.
    pub name: &'a str,
    /// The version.
    pub version: &'a str,
    /// `dist.integrity`.
    pub integrity: &'a str,
    /// The tarball's blob key (hex SHA-512).
    pub sha512: &'a str,
}

/// `v`'s stored tarball, if it is the one its metadata describes: it hashes to its `integrity`
/// and its `package.json` names this package and version.
pub async fn tarball_matches(
    state: &crate::state::AppState,
    v: Stored<'_>,
    limits: crate::npm::tarball::TarballLimits,
) -> Result<bytes::Bytes, String> {
    let bytes = state
        .blobs
        .get(v.sha512)
        .await
        .map_err(|e| format!("the tarball cannot be read: {e}"))?
        .ok_or("the tarball is missing")?;
    tokio::task::spawn_blocking({
        let (name, version, integrity, key) = (
            v.name.to_owned(),
            v.version.to_owned(),
            v.integrity.to_owned(),
            v.sha512.to_owned(),
        );
        move || {
            let d = crate::npm::tarball::Digests::of(&bytes);
            if d.sha512_hex != key || !d.matches_integrity(&integrity) {
                return Err("the tarball's digest is not the version's integrity".to_string());
            }
            let inner = crate::npm::tarball::read_manifest(&bytes, limits)
                .map_err(|e| format!("the tarball cannot be read: {e}"))?;
            let inner_version = inner
                .get("version")
                .and_then(Value::as_str)
                .map(crate::npm::versions::clean_version);
            if inner.get("name").and_then(Value::as_str) != Some(name.as_str())
                || inner_version != Some(Ok(version))
            {
                return Err("the tarball's package.json names another package or version".into());
            }
            Ok(bytes)
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    #[test]
    fn a_key_signs_what_npm_verifies() {
        let ring = crate::two_factor::sealing::KeyRing::generate();
        let keys = Keys::fixed(ring);
        let k = generate(&keys, 5).unwrap();
        assert!(k.keyid.starts_with("SHA256:") && !k.keyid.ends_with('='));
        let spki = data_encoding::BASE64
            .decode(k.public_key.as_bytes())
            .unwrap();
        assert_eq!(k.keyid, keyid_of(&spki));
        assert_eq!(spki.len(), 91);
        assert!(is_p256_spki(&k.public_key));
        assert!(!is_p256_spki(&data_encoding::BASE64.encode(&spki[..90])));
        let mut other_curve = spki.clone();
        other_curve[24] ^= 1;
        assert!(!is_p256_spki(&data_encoding::BASE64.encode(&other_curve)));
        assert!(!is_p256_spki("not base64"));
        let pkcs8 = keys.open(SEALED_FOR, &k.sealed_private).unwrap();
        // sealed for the signing key only
        assert!(keys.open(1, &k.sealed_private).is_err());
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng).unwrap();
        let msg = message("@acme/x", "1.0.0", "sha512-abc");
        assert_eq!(msg, "@acme/x@1.0.0:sha512-abc");
        let sig = pair.sign(&rng, msg.as_bytes()).unwrap();
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &spki[26..]);
        assert!(public.verify(msg.as_bytes(), sig.as_ref()).is_ok());
        assert!(
            public
                .verify(b"@acme/x@1.0.1:sha512-abc", sig.as_ref())
                .is_err()
        );

        let doc = keys_document(&[
            SigningKey {
                expires_at: Some(0),
                ..k.clone()
            },
            k.clone(),
        ]);
        assert_eq!(doc["keys"][0]["expires"], "1970-01-01T00:00:00.000Z");
        assert_eq!(doc["keys"][1]["expires"], Value::Null);
        assert_eq!(doc["keys"][1]["keytype"], "ecdsa-sha2-nistp256");
        assert_eq!(doc["keys"][1]["key"], k.public_key);
    }
}
