//! One-time passwords for tessera: HOTP (RFC 4226) and TOTP (RFC 6238), `otpauth://` URIs,
//! secrets and recovery codes.
//!
//! Pure: nothing here reads the clock or does I/O, except drawing random bytes from the OS
//! CSPRNG for new secrets and codes. Time is always a parameter.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Length of a TOTP secret in bytes (160 bits, RFC 4226 §4's recommendation).
pub const SECRET_LEN: usize = 20;
/// TOTP time step in seconds.
pub const STEP_SECS: u64 = 30;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Number of recovery codes issued at enrolment.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Bytes of entropy in a recovery code (written as 64 hex characters, the shape npm's OTP prompt
/// accepts besides digits).
pub const RECOVERY_CODE_BYTES: usize = 32;

/// The HMAC hash of an OTP. TOTP in tessera uses SHA-1, what every authenticator app supports;
/// the others exist for the RFC 6238 vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA-1.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

fn hmac(alg: Algorithm, key: &[u8], msg: &[u8]) -> Vec<u8> {
    fn run<M: Mac + KeyInit>(key: &[u8], msg: &[u8]) -> Vec<u8> {
        let mut m = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
        m.update(msg);
        m.finalize().into_bytes().to_vec()
    }
    match alg {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, msg),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, msg),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, msg),
    }
}

/// HOTP value of `counter` (RFC 4226 §5.3: dynamic truncation, then modulo 10^digits).
pub fn hotp(alg: Algorithm, key: &[u8], counter: u64, digits: u32) -> u32 {
    let mac = hmac(alg, key, &counter.to_be_bytes());
    let offset = (mac[mac.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    bin % 10u32.pow(digits)
}

/// The time step of a Unix time (T0 = 0).
pub fn step_at(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// The 6-digit SHA-1 code of a step, zero-padded.
pub fn code_for_step(key: &[u8], step: u64) -> String {
    format!(
        "{:0width$}",
        hotp(Algorithm::Sha1, key, step, DIGITS),
        width = DIGITS as usize
    )
}

/// The code an authenticator app shows at `unix_secs`.
pub fn totp(key: &[u8], unix_secs: u64) -> String {
    code_for_step(key, step_at(unix_secs))
}

/// Checks a code: exactly six ASCII digits (surrounding whitespace and inner spaces are
/// removed first, as npm's prompt does), matched in constant time against the steps
/// `now − window ..= now + window`. Returns the matched step.
pub fn verify(key: &[u8], code: &str, unix_secs: u64, window: u64) -> Option<u64> {
    let code = normalize_code(code)?;
    let now = step_at(unix_secs);
    let mut found = None;
    for step in now.saturating_sub(window)..=now.saturating_add(window) {
        let expected = code_for_step(key, step);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && found.is_none() {
            found = Some(step);
        }
    }
    found
}

/// Strips spaces and checks the shape of a TOTP code: six ASCII digits, nothing else.
pub fn normalize_code(code: &str) -> Option<String> {
    let c: String = code.chars().filter(|c| *c != ' ' && *c != '\t').collect();
    (c.len() == DIGITS as usize && c.bytes().all(|b| b.is_ascii_digit())).then_some(c)
}

/// A new random TOTP secret from the OS CSPRNG.
pub fn generate_secret() -> [u8; SECRET_LEN] {
    let mut s = [0u8; SECRET_LEN];
    getrandom::fill(&mut s).expect("the OS random number generator failed");
    s
}

/// Base32 (RFC 4648, no padding) of a secret, as authenticator apps take it.
pub fn secret_base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// Decodes a base32 secret (case-insensitive, padding and spaces ignored).
pub fn decode_base32(s: &str) -> Option<Vec<u8>> {
    let clean: String = s
        .chars()
        .filter(|c| !matches!(c, ' ' | '='))
        .collect::<String>()
        .to_ascii_uppercase();
    data_encoding::BASE32_NOPAD.decode(clean.as_bytes()).ok()
}

/// The `otpauth://totp/<issuer>:<account>?secret=…&issuer=…` URI that authenticator apps scan.
/// SHA-1, 6 digits and 30 s are the defaults and left out, as Google Authenticator expects.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    let enc = |s: &str| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}",
        enc(issuer),
        enc(account),
        secret_base32(secret),
        enc(issuer)
    )
}

/// New recovery codes: [`RECOVERY_CODE_COUNT`] codes of 64 lowercase hex characters (256 bits).
pub fn generate_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODE_COUNT)
        .map(|_| {
            let mut b = [0u8; RECOVERY_CODE_BYTES];
            getrandom::fill(&mut b).expect("the OS random number generator failed");
            data_encoding::HEXLOWER.encode(&b)
        })
        .collect()
}

/// Normalises a typed recovery code (spaces, dashes and case removed); `None` unless it then is
/// 64 hex characters.
pub fn normalize_recovery_code(input: &str) -> Option<String> {
    let c: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '-'))
        .collect::<String>()
        .to_ascii_lowercase();
    (c.len() == RECOVERY_CODE_BYTES * 2 && c.bytes().all(|b| b.is_ascii_hexdigit())).then_some(c)
}

/// The stored form of a recovery code: hex SHA-256 of its normalised value. A plain hash is
/// enough because each code carries 256 bits (NIST 800-63B §5.1.2.2: ≥ 112 bits).
pub fn hash_recovery_code(normalized: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(normalized.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED1: &[u8] = b"12345678901234567890";
    const SEED256: &[u8] = b"12345678901234567890123456789012";
    const SEED512: &[u8] = b"1234567890123456789012345678901234567890123456789012345678901234";

    #[test]
    fn rfc4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (count, want) in expected.iter().enumerate() {
            assert_eq!(
                hotp(Algorithm::Sha1, SEED1, count as u64, 6),
                *want,
                "count {count}"
            );
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        // (time, sha1, sha256, sha512), 8 digits
        let rows: [(u64, u32, u32, u32); 6] = [
            (59, 94287082, 46119246, 90693936),
            (1111111109, 7081804, 68084774, 25091201),
            (1111111111, 14050471, 67062674, 99943326),
            (1234567890, 89005924, 91819424, 93441116),
            (2000000000, 69279037, 90698825, 38618901),
            (20000000000, 65353130, 77737706, 47863826),
        ];
        for (t, s1, s256, s512) in rows {
            let step = step_at(t);
            assert_eq!(hotp(Algorithm::Sha1, SEED1, step, 8), s1, "sha1 at {t}");
            assert_eq!(
                hotp(Algorithm::Sha256, SEED256, step, 8),
                s256,
                "sha256 at {t}"
            );
            assert_eq!(
                hotp(Algorithm::Sha512, SEED512, step, 8),
                s512,
                "sha512 at {t}"
            );
            assert_eq!(
                totp(SEED1, t),
                format!("{:06}", s1 % 1_000_000),
                "6-digit sha1 at {t}"
            );
        }
        // leading zeros are significant (VEC-04)
        assert_eq!(totp(SEED1, 1111111109), "081804");
        // the 64-bit counter (VEC-03)
        assert!(step_at(20000000000) > u32::MAX as u64 / 30);
    }

    #[test]
    fn verify_accepts_the_window_only() {
        let t = 1_795_863_031;
        let now = step_at(t);
        for d in [-1i64, 0, 1] {
            let code = code_for_step(SEED1, (now as i64 + d) as u64);
            assert_eq!(
                verify(SEED1, &code, t, 1),
                Some((now as i64 + d) as u64),
                "offset {d}"
            );
        }
        for d in [-3i64, -2, 2, 3] {
            let code = code_for_step(SEED1, (now as i64 + d) as u64);
            assert_eq!(verify(SEED1, &code, t, 1), None, "offset {d}");
        }
        let prev = code_for_step(SEED1, now - 1);
        assert_eq!(verify(SEED1, &prev, t, 0), None, "window 0 is strict");
        assert_eq!(verify(SEED1, &code_for_step(SEED1, now), t, 0), Some(now));
    }

    #[test]
    fn malformed_codes_are_refused_before_any_hmac() {
        let t = 1_795_863_031;
        let good = totp(SEED1, t);
        assert!(verify(SEED1, &good, t, 1).is_some());
        assert!(
            verify(SEED1, &format!(" {good} "), t, 1).is_some(),
            "whitespace is stripped"
        );
        assert!(verify(SEED1, &format!("{} {}", &good[..3], &good[3..]), t, 1).is_some());
        for bad in [
            "",
            "12345",
            "1234567",
            "١٢٣٤٥٦",
            "+12345",
            "-12345",
            "12345a",
            "0x1234",
            &good[1..],
        ] {
            assert_eq!(normalize_code(bad), None, "{bad:?}");
            assert_eq!(verify(SEED1, bad, t, 1), None, "{bad:?}");
        }
    }

    #[test]
    fn known_peer_value() {
        // oathtool, pyotp and otplib all give 988643 here.
        let key = decode_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(totp(&key, 1795863031), "988643");
    }

    #[test]
    fn secrets_are_random_and_encode() {
        let a = generate_secret();
        let b = generate_secret();
        assert_ne!(a, b);
        let s = secret_base32(&a);
        assert_eq!(s.len(), 32);
        assert_eq!(decode_base32(&s.to_lowercase()).unwrap(), a.to_vec());
    }

    #[test]
    fn otpauth_uri_shape() {
        let uri = otpauth_uri("tessera", "alice", SEED1);
        assert_eq!(
            uri,
            "otpauth://totp/tessera:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=tessera"
        );
        let uri = otpauth_uri("My Registry", "a.b", SEED1);
        assert!(
            uri.starts_with("otpauth://totp/My%20Registry:a%2Eb?secret="),
            "{uri}"
        );
        assert!(uri.ends_with("&issuer=My%20Registry"));
    }

    #[test]
    fn recovery_codes() {
        let codes = generate_recovery_codes();
        assert_eq!(codes.len(), 10);
        for c in &codes {
            assert_eq!(c.len(), 64);
            assert_eq!(normalize_recovery_code(c).as_deref(), Some(c.as_str()));
        }
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
        let c = &codes[0];
        let grouped = format!("{}-{} {}", &c[..16].to_uppercase(), &c[16..32], &c[32..]);
        assert_eq!(
            normalize_recovery_code(&grouped).as_deref(),
            Some(c.as_str())
        );
        assert_eq!(normalize_recovery_code("123456"), None);
        assert_eq!(normalize_recovery_code(&"g".repeat(64)), None);
        assert_eq!(hash_recovery_code(c).len(), 64);
        assert_ne!(hash_recovery_code(c), *c);
    }
}
