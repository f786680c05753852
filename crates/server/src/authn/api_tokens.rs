//! API token values: how they are minted and hashed. This is the only place that does either.
//!
//! A token is `tsr_` followed by 40 base62 characters from the OS CSPRNG (≈238 bits). Only its
//! SHA-256 is stored; the hex digest doubles as npm's token `key`. The first characters are kept
//! as a display prefix, which `npm token revoke <full token>` needs.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Every token starts with this, so secret scanners can find leaked ones.
pub const PREFIX: &str = "tsr_";
const BODY_LEN: usize = 40;
const DISPLAY_LEN: usize = 10;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A freshly minted token: the value (shown once) and what is stored.
pub struct Minted {
    /// The full token value, given to the user once.
    pub value: String,
    /// Hex SHA-256 of the value.
    pub hash: String,
    /// The shown prefix.
    pub display_prefix: String,
}

/// Mints a new token.
pub fn mint() -> Minted {
    let value = format!("{PREFIX}{}", random_base62(BODY_LEN));
    Minted {
        hash: hash(&value),
        display_prefix: value[..DISPLAY_LEN].to_owned(),
        value,
    }
}

/// `n` base62 characters from the OS CSPRNG (rejection sampling: no modulo bias).
pub fn random_base62(n: usize) -> String {
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf).expect("the OS random number generator failed");
        for b in buf {
            // 248 = 4 × 62: values at or above it would bias the first characters.
            if b < 248 && out.len() < n {
                out.push(ALPHABET[(b % 62) as usize] as char);
            }
        }
    }
    out
}

/// Hex SHA-256 of a token value.
pub fn hash(value: &str) -> String {
    data_encoding::HEXLOWER.encode(&Sha256::digest(value.as_bytes()))
}

/// Whether a string has the shape of one of our tokens.
pub fn looks_like_token(s: &str) -> bool {
    s.len() == PREFIX.len() + BODY_LEN
        && s.starts_with(PREFIX)
        && s[PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Whether a string has the shape of a token key (a hex SHA-256).
pub fn looks_like_key(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Constant-time equality of two hashes.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_long_random_and_hashed() {
        let a = mint();
        let b = mint();
        assert_ne!(a.value, b.value);
        assert!(looks_like_token(&a.value), "{}", a.value);
        assert_eq!(a.value.len(), 44);
        assert!(a.value.starts_with(&a.display_prefix));
        assert_eq!(a.hash, hash(&a.value));
        assert!(looks_like_key(&a.hash));
        assert!(!a.hash.contains(&a.value[4..]));
        assert!(same_hash(&a.hash, &hash(&a.value)));
        assert!(!same_hash(&a.hash, &b.hash));
    }

    #[test]
    fn base62_is_unbiased_enough() {
        let s = random_base62(62 * 200);
        let mut counts = [0usize; 62];
        for c in s.bytes() {
            counts[ALPHABET.iter().position(|a| *a == c).unwrap()] += 1;
        }
        assert!(counts.iter().all(|c| *c > 100 && *c < 320), "{counts:?}");
    }

    #[test]
    fn shapes() {
        assert!(!looks_like_token("npm_abc"));
        assert!(!looks_like_key("xyz"));
    }
}
