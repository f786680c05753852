//! Publish attestations: for every version, the registry's own in-toto statement that it
//! accepted the publish (npm's publish predicate, `{name, version, registry}`, about the
//! tarball's purl and SHA-512), in a DSSE envelope signed with the registry signing key,
//! logged in a transparency log (a Rekor) and served as a Sigstore bundle beside the version's
//! provenance. `npm audit signatures` verifies it with the key `/-/npm/v1/keys` lists under
//! the envelope's key id, and the log entry with its Sigstore trust root.
//!
//! They are made only when `provenance.transparency_log` names a log: npm refuses an
//! attestation that no log it trusts has taken, so a registry without one serves none rather
//! than ones every audit would report invalid. The log holds only hashes of the statement and
//! the signature with the registry's public key, not the package's name.
//!
//! A version is attested right after its publish; one the log could not take then (down,
//! slow) is attested by the next pass ([`attest_all`]: at start, every ten minutes, and by
//! `tessera admin sign-all`). A pass also attests again a version whose attestation's key had
//! expired when the log took it (a key declared compromised), which npm would refuse.

use std::time::Duration;

use data_encoding::{BASE64, HEXLOWER};
use serde_json::{Value, json};
use tessera_store::PublishAttestation;

use crate::http::error::ApiResult;
use crate::provenance::purl;
use crate::signing::Stored;
use crate::state::AppState;

/// The publish attestation's predicate type (npm's).
pub const PREDICATE_TYPE: &str = "https://github.com/npm/attestation/tree/main/specs/publish/v0.1";
/// The statement type registry.npmjs.org's publish attestations use.
const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v0.1";
/// DSSE's payload type for in-toto statements.
const PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The bundle format (what npm 11 writes and reads).
const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The longest answer taken from the log.
const MAX_ENTRY_BYTES: usize = 64 * 1024;
/// How old a version must be before a server's pass attests it (younger ones are their
/// publish's to attest).
const PASS_MIN_AGE_MS: i64 = 2 * 60 * 1000;
/// How often a server runs a pass.
pub const PASS_EVERY: Duration = Duration::from_secs(600);

/// The statement for `name@version` whose tarball's SHA-512 is `sha512_hex`, accepted by the
/// registry at `registry`.
pub fn statement(name: &str, version: &str, sha512_hex: &str, registry: &str) -> Value {
    json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": purl(name, version), "digest": {"sha512": sha512_hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"name": name, "version": version, "registry": registry},
    })
}

/// DSSE's pre-authentication encoding of `payload`: what the signature covers.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    m.extend_from_slice(payload);
    m
}

/// A PEM `PUBLIC KEY` block for a SubjectPublicKeyInfo DER.
fn pem(spki: &[u8]) -> String {
    let b64 = BASE64.encode(spki);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    )
}

/// A Rekor (v1 API) the registry logs its attestations in.
pub struct TransparencyLog {
    url: String,
    http: reqwest::Client,
}

impl TransparencyLog {
    /// The log at `url` (its base, e.g. `https://rekor.sigstore.dev`).
    pub fn new(url: &str) -> TransparencyLog {
        TransparencyLog {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("an HTTP client"),
        }
    }

    /// Logs `envelope` (the DSSE envelope as JSON) signed by the key `spki`, as a `dsse` 0.0.1
    /// entry: the bundle's `tlogEntries[0]`.
    async fn log(&self, envelope: &str, spki: &[u8]) -> Result<Value, String> {
        let proposed = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {"proposedContent": {
                "envelope": envelope,
                "verifiers": [BASE64.encode(pem(spki).as_bytes())],
            }},
        });
        let url = format!("{}/api/v1/log/entries", self.url);
        let res = self
            .http
            .post(&url)
            .json(&proposed)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        let status = res.status();
        let body = read_bounded(res).await.map_err(|e| format!("{url}: {e}"))?;
        if status != reqwest::StatusCode::CREATED {
            let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
            return Err(format!("{url} answered {status}: {text}"));
        }
        let answer: Value =
            serde_json::from_slice(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        let entry = answer
            .as_object()
            .filter(|o| o.len() == 1)
            .and_then(|o| o.values().next())
            .ok_or_else(|| format!("{url}: not one log entry"))?;
        tlog_entry(entry).ok_or_else(|| format!("{url}: an incomplete log entry"))
    }
}

/// Reads at most [`MAX_ENTRY_BYTES`] of an answer.
async fn read_bounded(mut res: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > MAX_ENTRY_BYTES {
            return Err(format!("an answer over {MAX_ENTRY_BYTES} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Rekor's answer for one entry, as a bundle's transparency log entry (what sigstore-js makes
/// of it): hex becomes base64, numbers become strings.
fn tlog_entry(e: &Value) -> Option<Value> {
    let hex_to_b64 = |v: &Value| -> Option<String> {
        Some(BASE64.encode(&HEXLOWER.decode(v.as_str()?.as_bytes()).ok()?))
    };
    let int = |v: &Value| v.as_u64().map(|n| n.to_string());
    let body = e.get("body")?.as_str()?;
    let decoded: Value = serde_json::from_slice(&BASE64.decode(body.as_bytes()).ok()?).ok()?;
    let proof = e.pointer("/verification/inclusionProof")?;
    let hashes: Option<Vec<String>> = proof
        .get("hashes")?
        .as_array()?
        .iter()
        .map(hex_to_b64)
        .collect();
    Some(json!({
        "logIndex": int(e.get("logIndex")?)?,
        "logId": {"keyId": hex_to_b64(e.get("logID")?)?},
        "kindVersion": {"kind": decoded.get("kind")?, "version": decoded.get("apiVersion")?},
        "integratedTime": int(e.get("integratedTime")?)?,
        "inclusionPromise": {
            "signedEntryTimestamp": e.pointer("/verification/signedEntryTimestamp")?.as_str()?,
        },
        "inclusionProof": {
            "logIndex": int(proof.get("logIndex")?)?,
            "rootHash": hex_to_b64(proof.get("rootHash")?)?,
            "treeSize": int(proof.get("treeSize")?)?,
            "hashes": hashes?,
            "checkpoint": {"envelope": proof.get("checkpoint")?.as_str()?},
        },
        "canonicalizedBody": body,
    }))
}

/// Attests the publish of a stored version whose tarball is `tarball`: signs the statement,
/// logs it, verifies the bundle as npm will, and stores it (replacing the attestation taken
/// at `replaces`, if any). Returns whether it was stored (not when another instance was
/// first, or the version is gone).
pub async fn attest(
    state: &AppState,
    log: &TransparencyLog,
    package_id: i64,
    v: Stored<'_>,
    tarball: &[u8],
    replaces: Option<i64>,
) -> Result<bool, String> {
    let verifier = state
        .provenance
        .as_ref()
        .ok_or("provenance.trusted_root is unusable, so the log's answer cannot be checked")?;
    let payload = statement(v.name, v.version, v.sha512, &registry_name(state)).to_string();
    let (keyid, sig, spki) = state
        .signer
        .sign_bytes(
            state.store.as_ref(),
            &state.keys,
            &pae(PAYLOAD_TYPE, payload.as_bytes()),
        )
        .await
        .map_err(|e| e.message)?;
    let envelope = json!({
        "payload": BASE64.encode(payload.as_bytes()),
        "payloadType": PAYLOAD_TYPE,
        "signatures": [{"keyid": keyid, "sig": BASE64.encode(&sig)}],
    });
    let entry = log.log(&envelope.to_string(), &spki).await?;
    let bundle = json!({
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": keyid},
            "tlogEntries": [entry],
            "timestampVerificationData": {},
        },
        "dsseEnvelope": envelope,
    })
    .to_string();
    // what the log answered is checked as npm will check it before it is served
    let integrated_at = verifier
        .verify_keyed(&bundle, tarball, &spki)
        .map_err(|e| format!("the logged attestation is refused: {e}"))?;
    let attestation = PublishAttestation {
        keyid,
        bundle,
        integrated_at,
    };
    let now = state.clock.now_ms();
    let stored = state
        .store
        .put_publish_attestation(package_id, v.version, &attestation, replaces, now)
        .await
        .map_err(|e| e.to_string())?;
    if stored {
        state.packuments.invalidate(v.name);
    }
    Ok(stored)
}

/// The `registry` a statement names: `public_url`, else the listen address.
fn registry_name(state: &AppState) -> String {
    match &state.config.public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!("http://{}", state.config.listen),
    }
}

/// After a publish: attests it when a log is configured. A failure leaves the version to the
/// next pass (the publish has happened either way).
pub async fn after_publish(state: &AppState, package_id: i64, v: Stored<'_>, tarball: &[u8]) {
    let Some(log) = &state.transparency_log else {
        return;
    };
    if let Err(e) = attest(state, log, package_id, v, tarball, None).await {
        tracing::warn!(package = v.name, version = v.version, error = %e,
            "the publish attestation is not made yet: the next pass makes it");
    }
}

/// What [`attest_all`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AttestReport {
    /// Versions attested.
    pub attested: usize,
    /// Versions left unattested because their stored tarball is missing or does not match
    /// their metadata (see the log).
    pub refused: usize,
}

/// Attests every version published before `published_before` (Unix ms) that has no publish
/// attestation, or whose attestation's key had expired when the log took it. Stops at the
/// first failure of the log (the rest waits for the next pass). Nothing to do without a log.
pub async fn attest_all(state: &AppState, published_before: i64) -> Result<AttestReport, String> {
    let Some(log) = &state.transparency_log else {
        return Ok(AttestReport::default());
    };
    let limits = crate::npm::tarball::TarballLimits {
        max_unpacked: state.config.max_unpacked_size.0,
        ..Default::default()
    };
    let mut report = AttestReport::default();
    let mut after = None;
    let result = loop {
        let batch = match state
            .store
            .versions_to_attest(after.clone(), published_before, 100)
            .await
        {
            Ok(b) => b,
            Err(e) => break Err(e.to_string()),
        };
        let Some(last) = batch.last() else {
            break Ok(());
        };
        after = Some((last.package_id, last.version.clone()));
        let mut failed = None;
        for u in &batch {
            let v = Stored {
                name: &u.name,
                version: &u.version,
                integrity: &u.integrity,
                sha512: &u.tarball_sha512,
            };
            let tarball = match crate::signing::tarball_matches(state, v, limits).await {
                Ok(t) => t,
                Err(why) => {
                    report.refused += 1;
                    tracing::error!(package = %u.name, version = %u.version, reason = %why,
                        "not attesting a version whose tarball does not match its metadata");
                    continue;
                }
            };
            match attest(state, log, u.package_id, v, &tarball, u.replaces).await {
                Ok(true) => report.attested += 1,
                Ok(false) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            break Err(e);
        }
    };
    if report.attested > 0 {
        // the other processes drop their renderings (this one did as it went)
        state
            .store
            .bump_packument_epoch()
            .await
            .map_err(|e| e.to_string())?;
    }
    result.map(|()| report)
}

/// Runs [`attest_all`] now and every [`PASS_EVERY`], when a log is configured.
pub fn spawn_passes(state: &AppState) {
    if state.transparency_log.is_none() {
        return;
    }
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PASS_EVERY);
        loop {
            tick.tick().await;
            match attest_all(&s, s.clock.now_ms() - PASS_MIN_AGE_MS).await {
                Ok(r) if r.attested == 0 => {}
                Ok(r) => tracing::info!(versions = r.attested, "attested publishes"),
                Err(e) => tracing::warn!(error = %e, "publish attestations wait for the next pass"),
            }
        }
    });
}

/// `GET /-/npm/v1/attestations/…`'s entry for a stored attestation.
pub fn document_entry(a: &PublishAttestation) -> ApiResult<Value> {
    let bundle: Value =
        serde_json::from_str(&a.bundle).map_err(crate::http::error::ApiError::internal)?;
    Ok(json!({"predicateType": PREDICATE_TYPE, "bundle": bundle}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_statement_is_npms_publish_predicate() {
        let s = statement("@acme/x", "1.0.0", "ab12", "https://r.example");
        assert_eq!(s["subject"][0]["name"], "pkg:npm/%40acme/x@1.0.0");
        assert_eq!(s["subject"][0]["digest"]["sha512"], "ab12");
        assert_eq!(s["predicateType"], PREDICATE_TYPE);
        assert_eq!(
            s["predicate"],
            json!({"name": "@acme/x", "version": "1.0.0", "registry": "https://r.example"})
        );
        assert_eq!(
            pae("t/x", b"hello"),
            b"DSSEv1 3 t/x 5 hello".to_vec(),
            "DSSE's pre-authentication encoding"
        );
        let p = pem(&[7u8; 91]);
        assert!(p.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(p.lines().all(|l| l.len() <= 64));
    }

    #[test]
    fn a_rekor_answer_becomes_a_bundle_entry() {
        let body = BASE64.encode(br#"{"apiVersion":"0.0.1","kind":"dsse","spec":{}}"#);
        let answer = json!({
            "body": body,
            "integratedTime": 1700000000u64,
            "logID": "0a0b",
            "logIndex": 42u64,
            "verification": {
                "inclusionProof": {
                    "checkpoint": "cp\n",
                    "hashes": ["ff00"],
                    "logIndex": 7u64,
                    "rootHash": "01",
                    "treeSize": 8u64,
                },
                "signedEntryTimestamp": "c2V0",
            },
        });
        let e = tlog_entry(&answer).unwrap();
        assert_eq!(e["logIndex"], "42");
        assert_eq!(e["logId"]["keyId"], BASE64.encode(&[10, 11]));
        assert_eq!(
            e["kindVersion"],
            json!({"kind": "dsse", "version": "0.0.1"})
        );
        assert_eq!(e["integratedTime"], "1700000000");
        assert_eq!(e["inclusionProof"]["logIndex"], "7");
        assert_eq!(e["inclusionProof"]["hashes"][0], BASE64.encode(&[255, 0]));
        assert_eq!(e["inclusionProof"]["checkpoint"]["envelope"], "cp\n");
        assert_eq!(e["inclusionPromise"]["signedEntryTimestamp"], "c2V0");
        assert_eq!(e["canonicalizedBody"], body);
        // anything missing or malformed is no entry
        for path in ["/logID", "/verification/inclusionProof", "/body"] {
            let mut broken = answer.clone();
            let (parent, key) = path.rsplit_once('/').unwrap();
            broken
                .pointer_mut(if parent.is_empty() { "" } else { parent })
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
            assert!(tlog_entry(&broken).is_none(), "{path}");
        }
        let mut not_hex = answer.clone();
        not_hex["logID"] = json!("zz");
        assert!(tlog_entry(&not_hex).is_none());
    }
}
