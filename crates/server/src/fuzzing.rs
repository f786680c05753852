//! Entry points for the fuzz targets in `fuzz/` (compiled with the `fuzzing` feature only): each
//! runs one parser of outside input on arbitrary bytes and must return, whatever they are,
//! without panicking, hanging or growing without bound.

use serde_json::Value;

use crate::api::packages::{paths, writes};
use crate::npm::tarball::{self, TarballLimits};
use crate::npm::{names, versions};

/// Limits as a publish applies them, small enough for a fuzzer's memory budget.
const LIMITS: TarballLimits = TarballLimits {
    max_unpacked: 8 << 20,
    max_entries: 1_000,
    max_manifest: 1 << 20,
};

/// A publish body (`PUT /:pkg`): JSON, the meaning of the document, its version keys and
/// names, and its base64 tarball with the manifest inside.
pub fn publish_body(bytes: &[u8]) {
    let Ok(Value::Object(doc)) = crate::http::extract::parse_json::<Value>(bytes) else {
        return;
    };
    let _ = writes::classify(&doc);
    if let Some(name) = doc.get("name").and_then(Value::as_str) {
        let _ = names::validate_package_name(name);
    }
    if let Some(Value::Object(versions)) = doc.get("versions") {
        for (v, manifest) in versions {
            let _ = versions::clean_version(v);
            if let Some(n) = manifest.get("name").and_then(Value::as_str) {
                let _ = names::validate_package_name(n);
            }
        }
    }
    if let Some(Value::Object(attachments)) = doc.get("_attachments") {
        for a in attachments.values() {
            if let Some(data) = a.get("data").and_then(Value::as_str)
                && let Ok(tgz) = data_encoding::BASE64.decode(data.as_bytes())
            {
                let _ = tarball::read_manifest(&tgz, LIMITS);
            }
        }
    }
}

/// Package names, tags, user names, emails and the package-namespace URL paths.
pub fn names(text: &str) {
    let _ = names::validate_package_name(text);
    let _ = names::scope_of(text);
    let _ = names::bare_name(text);
    let _ = names::validate_tag(text);
    let _ = names::validate_user_name(text);
    let _ = names::validate_email(text);
    let _ = paths::parse(text);
}

/// Version numbers: cleaning, ordering (a total order: antisymmetric) and the highest of a list.
pub fn versions(text: &str) {
    let parts: Vec<&str> = text.split('\n').take(16).collect();
    for p in &parts {
        let _ = versions::clean_version(p);
    }
    if let [a, b, ..] = parts[..] {
        assert_eq!(versions::compare(a, b), versions::compare(b, a).reverse());
    }
    let _ = versions::highest(parts.iter().copied());
}

/// An uploaded tarball: gzip, then tar, under the publish limits (bombs included).
pub fn tarball(bytes: &[u8]) {
    let _ = tarball::read_manifest(bytes, LIMITS);
}

/// What a client sends as `npm-otp`: six digits, a recovery code, or anything else.
pub fn otp(text: &str) {
    let _ = tessera_otp::normalize_code(text);
    if let Some(rc) = tessera_otp::normalize_recovery_code(text) {
        let _ = tessera_otp::hash_recovery_code(&rc);
    }
    let key = [7u8; 20];
    let _ = tessera_otp::verify(&key, text, 1_795_863_031, 1);
    let _ = tessera_otp::decode_base32(text);
}

/// A configuration file, and environment variables (`KEY=value` lines after a `---` line).
pub fn config(text: &str) {
    let (file, env) = text.split_once("\n---\n").unwrap_or((text, ""));
    let env = env.lines().filter_map(|l| {
        let (k, v) = l.split_once('=')?;
        Some((format!("TESSERA_{k}"), v.to_owned()))
    });
    let _ = crate::config::Config::load_text(Some(file), env);
}

/// Client addresses and CIDR lists: `X-Forwarded-For` values and token whitelists.
pub fn addresses(text: &str) {
    let _ = crate::authn::caller::forwarded_client(text);
    let cidrs: Vec<String> = text.split(',').map(str::to_owned).take(32).collect();
    for ip in ["127.0.0.1", "::1", "::ffff:10.1.2.3", "203.0.113.9"] {
        let _ = crate::authn::caller::ip_allowed(ip.parse().unwrap(), &cidrs);
    }
}

/// A security key's answers (WebAuthn JSON around CBOR attestation objects, COSE keys and
/// authenticator data): checked as a registration against a ceremony begun here, and parsed as
/// an assertion.
pub fn webauthn(text: &str) {
    use std::sync::OnceLock;
    use webauthn_rs::prelude::{
        PublicKeyCredential, RegisterPublicKeyCredential, SecurityKeyRegistration, Uuid, Webauthn,
    };
    static CEREMONY: OnceLock<(Webauthn, SecurityKeyRegistration)> = OnceLock::new();
    let (rp, registration) = CEREMONY.get_or_init(|| {
        let rp = crate::two_factor::security_keys::relying_party("http://localhost:4873")
            .expect("a relying party for localhost");
        let (_, reg) = rp
            .start_securitykey_registration(Uuid::nil(), "fuzz", "fuzz", None, None, None)
            .expect("a registration");
        (rp, reg)
    });
    if let Ok(answer) = serde_json::from_str::<RegisterPublicKeyCredential>(text) {
        let _ = rp.finish_securitykey_registration(&answer, registration);
    }
    let _ = serde_json::from_str::<PublicKeyCredential>(text);
}
