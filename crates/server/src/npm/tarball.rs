//! Reading and checking an uploaded package tarball: its digests, and the `package.json` inside,
//! with bounds on what a hostile archive may cost.

use std::io::Read;

use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha512};

/// Resource bounds for reading a tarball.
#[derive(Debug, Clone, Copy)]
pub struct TarballLimits {
    /// Most bytes the archive may unpack to.
    pub max_unpacked: u64,
    /// Most entries it may hold.
    pub max_entries: usize,
    /// Largest `package.json` read.
    pub max_manifest: u64,
}

impl Default for TarballLimits {
    fn default() -> Self {
        TarballLimits {
            max_unpacked: 512 << 20,
            max_entries: 100_000,
            max_manifest: 4 << 20,
        }
    }
}

/// Why a tarball was refused; each message is what the publisher sees.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TarballError {
    /// Not gzip or not tar.
    #[error("tarball is not a valid gzipped tar archive")]
    Corrupt,
    /// Unpacks to more than the limit.
    #[error("tarball unpacks to more than {0} bytes")]
    TooLarge(u64),
    /// Too many entries.
    #[error("tarball contains more than {0} entries")]
    TooManyEntries(usize),
    /// An entry escapes the package folder.
    #[error("tarball entry {0:?} has an unsafe path")]
    UnsafePath(String),
    /// No `package.json` at the top.
    #[error("tarball does not contain package/package.json")]
    NoManifest,
    /// `package.json` is not JSON.
    #[error("package.json in the tarball is not valid JSON")]
    BadManifest,
}

/// The digests npm records for a tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    /// Hex SHA-512: the content address.
    pub sha512_hex: String,
    /// `sha512-<base64>`: `dist.integrity`.
    pub integrity: String,
    /// Hex SHA-1: `dist.shasum`.
    pub shasum: String,
    /// Base64 SHA-1, to check `sha1-…` SRI entries.
    sha1_b64: String,
}

impl Digests {
    /// Computes the digests of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let s512 = Sha512::digest(bytes);
        let s1 = Sha1::digest(bytes);
        Digests {
            sha512_hex: data_encoding::HEXLOWER.encode(&s512),
            integrity: format!("sha512-{}", data_encoding::BASE64.encode(&s512)),
            shasum: data_encoding::HEXLOWER.encode(&s1),
            sha1_b64: data_encoding::BASE64.encode(&s1),
        }
    }

    /// Whether an SRI string (`dist.integrity`, maybe several space-separated hashes) matches.
    /// Every sha512 or sha1 entry must match, and at least one must be present.
    pub fn matches_integrity(&self, sri: &str) -> bool {
        let mut checked = false;
        for entry in sri.split_whitespace() {
            let (algo, rest) = entry.split_once('-').unwrap_or((entry, ""));
            let digest = rest.split('?').next().unwrap_or("");
            let ok = match algo {
                "sha512" => {
                    checked = true;
                    format!("sha512-{digest}") == self.integrity
                }
                "sha1" => {
                    checked = true;
                    digest == self.sha1_b64
                }
                _ => continue,
            };
            if !ok {
                return false;
            }
        }
        checked
    }
}

/// Reads `package.json` from the top folder of a gzipped tar (npm uses `package/`, but any
/// single top folder is accepted, as npm does), checking every entry's path and the totals.
pub fn read_manifest(tgz: &[u8], limits: TarballLimits) -> Result<Value, TarballError> {
    let gz = flate2::read::GzDecoder::new(tgz);
    let mut archive = tar::Archive::new(gz.take(limits.max_unpacked.saturating_add(1 << 20)));
    let mut total: u64 = 0;
    let mut manifest = None;
    let entries = archive.entries().map_err(|_| TarballError::Corrupt)?;
    for (i, entry) in entries.enumerate() {
        if i >= limits.max_entries {
            return Err(TarballError::TooManyEntries(limits.max_entries));
        }
        let mut entry = entry.map_err(|_| TarballError::Corrupt)?;
        let path = entry
            .path()
            .map_err(|_| TarballError::Corrupt)?
            .to_string_lossy()
            .into_owned();
        if path.starts_with('/') || path.split(['/', '\\']).any(|p| p == "..") {
            return Err(TarballError::UnsafePath(path));
        }
        total = total.saturating_add(entry.size());
        if total > limits.max_unpacked {
            return Err(TarballError::TooLarge(limits.max_unpacked));
        }
        let parts: Vec<&str> = path.trim_start_matches("./").split('/').collect();
        if manifest.is_none() && parts.len() == 2 && parts[1] == "package.json" {
            if entry.size() > limits.max_manifest {
                return Err(TarballError::BadManifest);
            }
            let mut text = Vec::with_capacity(entry.size() as usize);
            entry
                .read_to_end(&mut text)
                .map_err(|_| TarballError::Corrupt)?;
            manifest = Some(serde_json::from_slice(&text).map_err(|_| TarballError::BadManifest)?);
        }
    }
    manifest.ok_or(TarballError::NoManifest)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a .tgz from (path, content) pairs.
    pub fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, path, *data).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn digests_match_known_values() {
        let d = Digests::of(b"hello");
        assert_eq!(d.shasum, "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d");
        assert_eq!(
            d.integrity,
            "sha512-m3HSJL1i83hdltRq0+o9czGb+8KJDKra4t/3JRlnPKcjI8PZm6XBHXx6zG4UuMXaDEZjR1wuXDre9G9zvN7AQw=="
        );
        assert!(d.matches_integrity(&d.integrity));
        assert!(d.matches_integrity(&format!(
            "{} sha1-qvTGHdzF6KLavt4PO0gs2a6pQ00=",
            d.integrity
        )));
        assert!(!d.matches_integrity("sha512-AAAA"));
        assert!(!d.matches_integrity("md5-xyz"), "no usable hash");
        assert!(!d.matches_integrity(&format!("{} sha1-AAAA", d.integrity)));
    }

    #[test]
    fn reads_the_manifest() {
        let t = tgz(&[
            ("package/package.json", br#"{"name":"a","version":"1.0.0"}"#),
            ("package/index.js", b"x"),
        ]);
        let m = read_manifest(&t, TarballLimits::default()).unwrap();
        assert_eq!(m["name"], "a");
    }

    #[test]
    fn refuses_hostile_archives() {
        let l = TarballLimits::default();
        assert_eq!(read_manifest(b"not gzip", l), Err(TarballError::Corrupt));
        let t = tgz(&[("package/index.js", b"x")]);
        assert_eq!(read_manifest(&t, l), Err(TarballError::NoManifest));
        let t = tgz(&[("package/package.json", b"{nope")]);
        assert_eq!(read_manifest(&t, l), Err(TarballError::BadManifest));
        let big = vec![b' '; 4096];
        let t = tgz(&[("package/package.json", b"{}"), ("package/big", &big)]);
        let small = TarballLimits {
            max_unpacked: 1000,
            ..l
        };
        assert_eq!(read_manifest(&t, small), Err(TarballError::TooLarge(1000)));
        let t = tgz(&[
            ("package/package.json", b"{}"),
            ("package/a", b""),
            ("package/b", b""),
        ]);
        let few = TarballLimits {
            max_entries: 2,
            ..l
        };
        assert_eq!(read_manifest(&t, few), Err(TarballError::TooManyEntries(2)));
    }

    #[test]
    fn refuses_path_traversal() {
        // tar::Builder refuses `..` itself, so write the header name by hand.
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..20].copy_from_slice(b"package/../../evil.j");
        h.set_size(1);
        h.set_mode(0o644);
        h.set_cksum();
        let mut raw = h.as_bytes().to_vec();
        raw.extend_from_slice(&[b'x'; 512]);
        raw.extend_from_slice(&[0; 1024]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &raw).unwrap();
        let t = gz.finish().unwrap();
        assert!(matches!(
            read_manifest(&t, TarballLimits::default()),
            Err(TarballError::UnsafePath(_))
        ));
    }
}
