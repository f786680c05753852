//! An offline stand-in for Sigstore's public-good services: a CA (Fulcio), a transparency log
//! (Rekor) and a certificate transparency log, each with a P-256 key made per instance. It
//! issues npm provenance bundles as `npm publish --provenance` produces them (bundle v0.3, a
//! DSSE envelope with an in-toto statement, a `dsse` 0.0.1 log entry with an inclusion promise
//! and proof) and the `trusted_root.json` that verifies them. Certificates are DER written by
//! hand, so the embedded SCT can be signed over the precertificate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use data_encoding::{BASE64, HEXLOWER};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use sha2::{Digest, Sha256, Sha512};

/// The CA's URL in the trusted root.
pub const FULCIO_URL: &str = "https://fulcio.sigstore.test";
/// The transparency log's URL in the trusted root (its checkpoints are signed as its host).
pub const REKOR_URL: &str = "https://rekor.sigstore.test";
/// The certificate transparency log's URL in the trusted root.
pub const CTFE_URL: &str = "https://ctfe.sigstore.test";
/// The media type of the bundles made here, as npm 11 (sigstore-js 4) writes it.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The predicate type of npm's provenance statements.
pub const SLSA_PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";

const REKOR_HOST: &str = "rekor.sigstore.test";
/// Rekor's path for new entries.
pub const REKOR_ENTRIES: &str = "/api/v1/log/entries";
const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

const KEY_USAGE: &[u64] = &[2, 5, 29, 15];
const BASIC_CONSTRAINTS: &[u64] = &[2, 5, 29, 19];
const SUBJECT_KEY_ID: &[u64] = &[2, 5, 29, 14];
const AUTHORITY_KEY_ID: &[u64] = &[2, 5, 29, 35];
const SUBJECT_ALT_NAME: &[u64] = &[2, 5, 29, 17];
const EXT_KEY_USAGE: &[u64] = &[2, 5, 29, 37];
const CODE_SIGNING: &[u64] = &[1, 3, 6, 1, 5, 5, 7, 3, 3];
const CT_PRECERT_SCTS: &[u64] = &[1, 3, 6, 1, 4, 1, 11129, 2, 4, 2];

/// A stand-in for Sigstore's public services: a CA (Fulcio), a transparency log (Rekor) and a
/// CT log, with their keys.
pub struct TestSigstore {
    ca: Key,
    ca_name: Vec<u8>,
    ca_key_id: Vec<u8>,
    ca_cert: Vec<u8>,
    rekor: Key,
    ctlog: Key,
    /// When the instance was made: the start of every key's validity in the trusted root.
    created: i64,
    next_log_index: AtomicU64,
}

/// The CI identity a certificate is issued to (Fulcio's extensions).
#[derive(Clone, Debug)]
pub struct CiIdentity {
    /// The OIDC issuer (`1.3.6.1.4.1.57264.1.8`, and the legacy `.1.1`).
    pub issuer: String,
    /// The URI subject alternative name, which is also the build signer URI (`.1.9`).
    pub san_uri: String,
    /// `.1.12`, e.g. `https://github.com/owner/repo`.
    pub source_repository_uri: String,
    /// `.1.13`, the commit built.
    pub source_repository_digest: String,
    /// `.1.14`, e.g. `refs/heads/main`.
    pub source_repository_ref: String,
    /// `.1.18`, the workflow that ran.
    pub build_config_uri: String,
    /// `.1.21`, the run that signed.
    pub run_invocation_uri: String,
}

impl CiIdentity {
    /// A GitHub Actions job of `repository` (`owner/repo`) running `workflow_file` on `main`,
    /// with its token minted by `issuer`.
    pub fn github(repository: &str, workflow_file: &str, issuer: &str) -> CiIdentity {
        let repo = format!("https://github.com/{repository}");
        let san = format!("{repo}/.github/workflows/{workflow_file}@refs/heads/main");
        CiIdentity {
            issuer: issuer.to_string(),
            san_uri: san.clone(),
            source_repository_uri: repo.clone(),
            source_repository_digest: HEXLOWER.encode(&Sha256::digest(repository)[..20]),
            source_repository_ref: "refs/heads/main".to_string(),
            build_config_uri: san,
            run_invocation_uri: format!("{repo}/actions/runs/1/attempts/1"),
        }
    }
}

impl Default for TestSigstore {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSigstore {
    /// Makes the three keys and the CA's self-signed certificate.
    pub fn new() -> TestSigstore {
        let created = unix_now();
        let ca = Key::generate();
        let ca_name = seq(&[
            &set(&[&seq(&[&oid(&[2, 5, 4, 10]), &utf8("sigstore.test")])]),
            &set(&[&seq(&[&oid(&[2, 5, 4, 3]), &utf8("sigstore")])]),
        ]);
        let ca_key_id = ca.key_id();
        let extensions = [
            // keyCertSign, cRLSign; CA, path length 1
            extension(KEY_USAGE, true, &bit_string(&[0x06], 1)),
            extension(BASIC_CONSTRAINTS, true, &seq(&[TRUE, &uint(&[1])])),
            extension(SUBJECT_KEY_ID, false, &octets(&ca_key_id)),
        ];
        let validity = (created - 86_400, created + 10 * 365 * 86_400);
        let names = (ca_name.as_slice(), ca_name.as_slice());
        let tbs = tbs_certificate(&random_serial(), names, validity, &ca.spki, &extensions);
        let ca_cert = sign_certificate(&ca, tbs);
        TestSigstore {
            ca,
            ca_name,
            ca_key_id,
            ca_cert,
            rekor: Key::generate(),
            ctlog: Key::generate(),
            created,
            next_log_index: AtomicU64::new(1000 + u64::from(random_bytes::<1>()[0])),
        }
    }

    /// Sigstore's `trusted_root.json` for this instance: its log, CA and CT log.
    pub fn trusted_root_json(&self) -> String {
        let start = rfc3339(self.created - 86_400);
        let log = |url: &str, key: &Key| {
            json!({
                "baseUrl": url,
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": BASE64.encode(&key.spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": {"start": start},
                },
                "logId": {"keyId": BASE64.encode(&key.log_id())},
            })
        };
        json!({
            "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
            "tlogs": [log(REKOR_URL, &self.rekor)],
            "certificateAuthorities": [{
                "subject": {"organization": "sigstore.test", "commonName": "sigstore"},
                "uri": FULCIO_URL,
                "certChain": {"certificates": [{"rawBytes": BASE64.encode(&self.ca_cert)}]},
                "validFor": {"start": start},
            }],
            "ctlogs": [log(CTFE_URL, &self.ctlog)],
            "timestampAuthorities": [],
        })
        .to_string()
    }

    /// The provenance bundle `npm publish --provenance` would attach to `name@version` whose
    /// tarball is `tarball`, signed in a job of `id`.
    pub fn provenance_bundle(
        &self,
        name: &str,
        version: &str,
        tarball: &[u8],
        id: &CiIdentity,
    ) -> String {
        self.bundle_for_statement(&provenance_statement(name, version, tarball, id), id)
    }

    /// A bundle over any in-toto `statement`, made as [`Self::provenance_bundle`] makes its own
    /// (for statements that are wrong on purpose).
    pub fn bundle_for_statement(&self, statement: &Value, id: &CiIdentity) -> String {
        let now = unix_now();
        let payload = statement.to_string().into_bytes();
        let leaf = Key::generate();
        let cert = self.leaf_certificate(&leaf, id, now);

        let (type_len, payload_len) = (INTOTO_PAYLOAD_TYPE.len(), payload.len());
        let mut pae =
            format!("DSSEv1 {type_len} {INTOTO_PAYLOAD_TYPE} {payload_len} ").into_bytes();
        pae.extend_from_slice(&payload);
        let signature = leaf.sign(&pae);
        let envelope = json!({
            "payload": BASE64.encode(&payload),
            "payloadType": INTOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": BASE64.encode(&signature)}],
        });

        let body = dsse_entry_body(&envelope, &payload, &signature, &pem(&cert));
        let e = self.log_entry(body, now);
        json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": {
                "certificate": {"rawBytes": BASE64.encode(&cert)},
                "tlogEntries": [{
                    "logIndex": e.log_index.to_string(),
                    "logId": {"keyId": BASE64.encode(&e.log_id)},
                    "kindVersion": {"kind": "dsse", "version": "0.0.1"},
                    "integratedTime": now.to_string(),
                    "inclusionPromise": {"signedEntryTimestamp": BASE64.encode(&e.set)},
                    "inclusionProof": {
                        "logIndex": e.log_index.to_string(),
                        "rootHash": BASE64.encode(&e.root),
                        "treeSize": e.tree_size.to_string(),
                        "hashes": e.hashes.iter().map(|h| BASE64.encode(h)).collect::<Vec<_>>(),
                        "checkpoint": {"envelope": e.checkpoint},
                    },
                    "canonicalizedBody": BASE64.encode(&e.body),
                }],
                "timestampVerificationData": {},
            },
            "dsseEnvelope": envelope,
        })
        .to_string()
    }

    /// Takes `body` (a canonical entry) into the log at `now`: its index, inclusion promise,
    /// inclusion proof and signed checkpoint.
    fn log_entry(&self, body: Vec<u8>, now: i64) -> LogEntry {
        let log_index = self.next_log_index.fetch_add(1, Ordering::Relaxed);
        let log_id = self.rekor.log_id();
        let promise = format!(
            r#"{{"body":"{}","integratedTime":{now},"logID":"{}","logIndex":{log_index}}}"#,
            BASE64.encode(&body),
            HEXLOWER.encode(&log_id),
        );
        let set = self.rekor.sign(promise.as_bytes());

        // The entry is the last leaf of a tree of `log_index + 1` leaves: its proof is the
        // roots of the complete subtrees to its left, one per set bit of the index, lowest
        // first. Nothing can check what those subtrees hold, so their hashes are made up.
        let hashes: Vec<Vec<u8>> = (0..log_index.count_ones())
            .map(|i| Sha256::digest(format!("subtree {log_index} {i}")).to_vec())
            .collect();
        // RFC 6962 §2.1: leaves are hashed after a 0x00, interior nodes after a 0x01.
        let mut root = Sha256::new_with_prefix([0x00])
            .chain_update(&body)
            .finalize()
            .to_vec();
        for hash in &hashes {
            root = Sha256::new_with_prefix([0x01])
                .chain_update(hash)
                .chain_update(&root)
                .finalize()
                .to_vec();
        }
        let tree_size = log_index + 1;
        let note = format!(
            "{REKOR_HOST} - 1193050959916656506\n{tree_size}\n{}\n",
            BASE64.encode(&root)
        );
        let mut note_signature = log_id[..4].to_vec();
        note_signature.extend(self.rekor.sign(note.as_bytes()));
        let checkpoint = format!(
            "{note}\n\u{2014} {REKOR_HOST} {}\n",
            BASE64.encode(&note_signature)
        );
        LogEntry {
            body,
            log_index,
            log_id,
            set,
            root,
            hashes,
            tree_size,
            checkpoint,
        }
    }

    /// What Rekor's `POST /api/v1/log/entries` answers for a `dsse` 0.0.1 proposal
    /// (`proposal` as JSON): the signature is checked against the proposed verifier, as Rekor
    /// does. `Err` is the 400 message.
    pub fn rekor_answer(&self, proposal: &[u8]) -> Result<Value, String> {
        let p: Value = serde_json::from_slice(proposal).map_err(|e| e.to_string())?;
        if p["kind"] != "dsse" || p["apiVersion"] != "0.0.1" {
            return Err("only dsse 0.0.1 entries".into());
        }
        let content = &p["spec"]["proposedContent"];
        let envelope: Value = serde_json::from_str(content["envelope"].as_str().ok_or("envelope")?)
            .map_err(|e| e.to_string())?;
        let verifier = content["verifiers"][0].as_str().ok_or("verifiers")?;
        let verifier_pem = String::from_utf8(
            BASE64
                .decode(verifier.as_bytes())
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let spki = pem_body(&verifier_pem).ok_or("verifier is not a PEM public key")?;
        let payload = BASE64
            .decode(envelope["payload"].as_str().ok_or("payload")?.as_bytes())
            .map_err(|e| e.to_string())?;
        let payload_type = envelope["payloadType"].as_str().ok_or("payloadType")?;
        let signature = BASE64
            .decode(
                envelope["signatures"][0]["sig"]
                    .as_str()
                    .ok_or("sig")?
                    .as_bytes(),
            )
            .map_err(|e| e.to_string())?;
        let mut pae = format!(
            "DSSEv1 {} {payload_type} {} ",
            payload_type.len(),
            payload.len()
        )
        .into_bytes();
        pae.extend_from_slice(&payload);
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            spki.get(26..).ok_or("short key")?,
        )
        .verify(&pae, &signature)
        .map_err(|_| "the signature does not verify with the verifier".to_string())?;
        let now = unix_now();
        let e = self.log_entry(
            dsse_entry_body(&envelope, &payload, &signature, &verifier_pem),
            now,
        );
        let uuid = HEXLOWER.encode(&Sha256::digest(&e.body));
        Ok(json!({ uuid: {
            "body": BASE64.encode(&e.body),
            "integratedTime": now,
            "logID": HEXLOWER.encode(&e.log_id),
            "logIndex": e.log_index,
            "verification": {
                "inclusionProof": {
                    "checkpoint": e.checkpoint,
                    "hashes": e.hashes.iter().map(|h| HEXLOWER.encode(h)).collect::<Vec<_>>(),
                    "logIndex": e.log_index,
                    "rootHash": HEXLOWER.encode(&e.root),
                    "treeSize": e.tree_size,
                },
                "signedEntryTimestamp": BASE64.encode(&e.set),
            },
        }}))
    }

    /// A Fulcio-like code-signing certificate for `leaf`'s key, valid from a minute before
    /// `now` for ten minutes, with an SCT from the CT log embedded.
    fn leaf_certificate(&self, leaf: &Key, id: &CiIdentity, now: i64) -> Vec<u8> {
        let fulcio = |n: u64| [1, 3, 6, 1, 4, 1, 57264, 1, n];
        let mut extensions = vec![
            // digitalSignature
            extension(KEY_USAGE, true, &bit_string(&[0x80], 7)),
            extension(EXT_KEY_USAGE, false, &seq(&[&oid(CODE_SIGNING)])),
            extension(SUBJECT_KEY_ID, false, &octets(&leaf.key_id())),
            // keyIdentifier [0]
            extension(
                AUTHORITY_KEY_ID,
                false,
                &seq(&[&der(0x80, &self.ca_key_id)]),
            ),
            // uniformResourceIdentifier [6]; critical, as the subject is empty
            extension(
                SUBJECT_ALT_NAME,
                true,
                &seq(&[&der(0x86, id.san_uri.as_bytes())]),
            ),
            extension(&fulcio(1), false, id.issuer.as_bytes()),
            extension(&fulcio(8), false, &utf8(&id.issuer)),
        ];
        for (n, value) in [
            (9, &id.san_uri),
            (12, &id.source_repository_uri),
            (13, &id.source_repository_digest),
            (14, &id.source_repository_ref),
            (18, &id.build_config_uri),
            (21, &id.run_invocation_uri),
        ] {
            extensions.push(extension(&fulcio(n), false, &utf8(value)));
        }
        let serial = random_serial();
        let validity = (now - 60, now + 600);
        let subject = seq(&[]);
        let tbs = |extensions: &[Vec<u8>]| {
            let names = (self.ca_name.as_slice(), subject.as_slice());
            tbs_certificate(&serial, names, validity, &leaf.spki, extensions)
        };

        // RFC 6962 §3.2: the log signs the precertificate, i.e. the TBS without the SCT list.
        let timestamp = u64::try_from(now).unwrap() * 1000;
        let precert = tbs(&extensions);
        let mut signed = vec![0, 0];
        signed.extend(timestamp.to_be_bytes());
        signed.extend(1u16.to_be_bytes());
        signed.extend_from_slice(&Sha256::digest(&self.ca.spki));
        signed.extend(&u32::try_from(precert.len()).unwrap().to_be_bytes()[1..]);
        signed.extend(&precert);
        signed.extend(0u16.to_be_bytes());
        let signature = self.ctlog.sign(&signed);
        let mut sct = vec![0];
        sct.extend(self.ctlog.log_id());
        sct.extend(timestamp.to_be_bytes());
        sct.extend(0u16.to_be_bytes());
        sct.extend([4, 3]); // SHA-256, ECDSA
        sct.extend(u16::try_from(signature.len()).unwrap().to_be_bytes());
        sct.extend(signature);
        let mut list = u16::try_from(sct.len() + 2).unwrap().to_be_bytes().to_vec();
        list.extend(u16::try_from(sct.len()).unwrap().to_be_bytes());
        list.extend(sct);
        extensions.push(extension(CT_PRECERT_SCTS, false, &octets(&list)));
        sign_certificate(&self.ca, tbs(&extensions))
    }
}

/// Where an entry sits in the stand-in's log.
struct LogEntry {
    body: Vec<u8>,
    log_index: u64,
    log_id: Vec<u8>,
    set: Vec<u8>,
    root: Vec<u8>,
    hashes: Vec<Vec<u8>>,
    tree_size: u64,
    checkpoint: String,
}

/// A `dsse` 0.0.1 log entry in Rekor's canonical form (keys sorted, no spaces).
fn dsse_entry_body(
    envelope: &Value,
    payload: &[u8],
    signature: &[u8],
    verifier_pem: &str,
) -> Vec<u8> {
    json!({
        "apiVersion": "0.0.1",
        "kind": "dsse",
        "spec": {
            "envelopeHash": {"algorithm": "sha256", "value": hex_sha256(envelope.to_string().as_bytes())},
            "payloadHash": {"algorithm": "sha256", "value": hex_sha256(payload)},
            "signatures": [{
                "signature": BASE64.encode(signature),
                "verifier": BASE64.encode(verifier_pem.as_bytes()),
            }],
        },
    })
    .to_string()
    .into_bytes()
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    BASE64.decode(b64.as_bytes()).ok()
}

/// The in-toto statement npm signs when publishing `name@version` from GitHub Actions: its
/// subject is the package URL and the tarball's SHA-512, its predicate SLSA provenance v1.
pub fn provenance_statement(name: &str, version: &str, tarball: &[u8], id: &CiIdentity) -> Value {
    let purl_name = match name.strip_prefix('@') {
        Some(scoped) => format!("%40{scoped}"),
        None => name.to_string(),
    };
    let workflow = id
        .build_config_uri
        .strip_prefix(&format!("{}/", id.source_repository_uri))
        .unwrap_or(&id.build_config_uri);
    let (path, reference) = workflow.split_once('@').unwrap_or((workflow, ""));
    json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{
            "name": format!("pkg:npm/{purl_name}@{version}"),
            "digest": {"sha512": HEXLOWER.encode(&Sha512::digest(tarball))},
        }],
        "predicateType": SLSA_PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                "externalParameters": {
                    "workflow": {"ref": reference, "repository": id.source_repository_uri, "path": path},
                },
                "internalParameters": {
                    "github": {"event_name": "push", "repository_id": "1", "repository_owner_id": "1"},
                },
                "resolvedDependencies": [{
                    "uri": format!("git+{}@{}", id.source_repository_uri, id.source_repository_ref),
                    "digest": {"gitCommit": id.source_repository_digest},
                }],
            },
            "runDetails": {
                "builder": {"id": "https://github.com/actions/runner/github-hosted"},
                "metadata": {"invocationId": id.run_invocation_uri},
            },
        },
    })
}

/// A P-256 key and its DER SubjectPublicKeyInfo.
struct Key {
    pair: EcdsaKeyPair,
    spki: Vec<u8>,
}

impl Key {
    fn generate() -> Key {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let algorithm = seq(&[
            &oid(&[1, 2, 840, 10045, 2, 1]),
            &oid(&[1, 2, 840, 10045, 3, 1, 7]),
        ]);
        let spki = seq(&[&algorithm, &bit_string(pair.public_key().as_ref(), 0)]);
        Key { pair, spki }
    }

    /// An ECDSA-SHA256 signature, DER-encoded.
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        self.pair.sign(&rng, message).unwrap().as_ref().to_vec()
    }

    /// A log's ID: the SHA-256 of its key (RFC 6962 §3.2).
    fn log_id(&self) -> Vec<u8> {
        Sha256::digest(&self.spki).to_vec()
    }

    /// A subject key identifier (RFC 7093 §2, method 1).
    fn key_id(&self) -> Vec<u8> {
        Sha256::digest(self.pair.public_key().as_ref())[..20].to_vec()
    }
}

/// A v3 TBSCertificate signed with ECDSA-SHA256; `names` are the issuer's and the subject's.
fn tbs_certificate(
    serial: &[u8],
    (issuer, subject): (&[u8], &[u8]),
    (not_before, not_after): (i64, i64),
    spki: &[u8],
    extensions: &[Vec<u8>],
) -> Vec<u8> {
    let extensions: Vec<&[u8]> = extensions.iter().map(Vec::as_slice).collect();
    seq(&[
        &der(0xa0, &uint(&[2])),
        &uint(serial),
        &ecdsa_with_sha256(),
        issuer,
        &seq(&[&utc_time(not_before), &utc_time(not_after)]),
        subject,
        spki,
        &der(0xa3, &seq(&extensions)),
    ])
}

fn sign_certificate(ca: &Key, tbs: Vec<u8>) -> Vec<u8> {
    let signature = ca.sign(&tbs);
    seq(&[&tbs, &ecdsa_with_sha256(), &bit_string(&signature, 0)])
}

fn ecdsa_with_sha256() -> Vec<u8> {
    seq(&[&oid(&[1, 2, 840, 10045, 4, 3, 2])])
}

/// An Extension; `critical` FALSE is left out, as DER requires of a default.
fn extension(id: &[u64], critical: bool, value: &[u8]) -> Vec<u8> {
    let critical: &[u8] = if critical { TRUE } else { &[] };
    seq(&[&oid(id), critical, &octets(value)])
}

/// The BOOLEAN TRUE.
const TRUE: &[u8] = &[0x01, 0x01, 0xff];

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

fn set(parts: &[&[u8]]) -> Vec<u8> {
    der(0x31, &parts.concat())
}

fn octets(bytes: &[u8]) -> Vec<u8> {
    der(0x04, bytes)
}

fn utf8(text: &str) -> Vec<u8> {
    der(0x0c, text.as_bytes())
}

fn bit_string(bytes: &[u8], unused_bits: u8) -> Vec<u8> {
    der(0x03, &[&[unused_bits], bytes].concat())
}

/// A non-negative INTEGER from big-endian bytes without superfluous leading zeros.
fn uint(bytes: &[u8]) -> Vec<u8> {
    let mut content = if bytes[0] & 0x80 != 0 {
        vec![0]
    } else {
        vec![]
    };
    content.extend_from_slice(bytes);
    der(0x02, &content)
}

fn oid(arcs: &[u64]) -> Vec<u8> {
    let mut content = vec![u8::try_from(arcs[0] * 40 + arcs[1]).unwrap()];
    for &arc in &arcs[2..] {
        let mut base128 = vec![(arc & 0x7f) as u8];
        let mut rest = arc >> 7;
        while rest > 0 {
            base128.push(0x80 | (rest & 0x7f) as u8);
            rest >>= 7;
        }
        content.extend(base128.iter().rev());
    }
    der(0x06, &content)
}

/// A UTCTime, which holds years 1950 to 2049.
fn utc_time(unix: i64) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = civil(unix);
    let text = format!("{:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}Z", y % 100);
    der(0x17, text.as_bytes())
}

/// The RFC 3339 UTC time of a Unix time (seconds).
pub fn rfc3339(unix: i64) -> String {
    let (y, mo, d, h, mi, s) = civil(unix);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// UTC calendar date and time of a Unix time (Howard Hinnant's `civil_from_days`).
fn civil(unix: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, secs) = (unix.div_euclid(86_400), unix.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, secs / 3600, secs / 60 % 60, secs % 60)
}

fn pem(der: &[u8]) -> String {
    let b64 = BASE64.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

fn hex_sha256(bytes: &[u8]) -> String {
    HEXLOWER.encode(&Sha256::digest(bytes))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    SystemRandom::new().fill(&mut bytes).unwrap();
    bytes
}

/// A positive 20-byte serial number, as Fulcio's.
fn random_serial() -> [u8; 20] {
    let mut serial = random_bytes::<20>();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial
}

fn unix_now() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(elapsed.as_secs()).unwrap()
}

/// A stand-in Sigstore with its trust root on disk, and npm run against it offline: a preloaded
/// script (`offline_sigstore.js`) hands npm that root where it would fetch Sigstore's.
pub struct Offline {
    /// The stand-in.
    pub sigstore: std::sync::Arc<TestSigstore>,
    /// Its `trusted_root.json`.
    pub root: std::path::PathBuf,
    hook: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Offline {
    /// A new stand-in, its trust root written to a temporary folder.
    pub fn new() -> Offline {
        let dir = tempfile::tempdir().unwrap();
        let sigstore = std::sync::Arc::new(TestSigstore::new());
        let root = dir.path().join("trusted_root.json");
        std::fs::write(&root, sigstore.trusted_root_json()).unwrap();
        let hook = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/common/offline_sigstore.js");
        Offline {
            sigstore,
            root,
            hook,
            _dir: dir,
        }
    }

    /// The stand-in's transparency log, served on a loopback port as Rekor's v1 API serves
    /// `POST /api/v1/log/entries` (for a registry that logs its publish attestations). A
    /// canned reply set on the stub for that path stands for an outage.
    pub fn serve_rekor(&self) -> super::stub::Stub {
        let stub = super::stub::Stub::start();
        let sigstore = self.sigstore.clone();
        stub.answer_with(std::sync::Arc::new(move |req| {
            if req.method != "POST" || req.path != REKOR_ENTRIES {
                return super::stub::Reply {
                    status: 404,
                    ..Default::default()
                };
            }
            match sigstore.rekor_answer(&req.body) {
                Ok(answer) => super::stub::Reply {
                    status: 201,
                    ..super::stub::Reply::json(&answer)
                },
                Err(why) => super::stub::Reply {
                    status: 400,
                    ..super::stub::Reply::json(&json!({"code": 400, "message": why}))
                },
            }
        }));
        stub
    }

    /// The stock `npm publish --provenance-file=…` of the package in `dir` (`name@version`),
    /// with a bundle this stand-in issued to `id` for the tarball npm packs there; returns the
    /// bundle. Panics unless npm says it published.
    pub fn publish_with_provenance(
        &self,
        npm: &super::Npm,
        dir: &std::path::Path,
        (name, version): (&str, &str),
        id: &CiIdentity,
    ) -> String {
        let tgz = npm.packed(dir);
        let bundle = self.sigstore.provenance_bundle(name, version, &tgz, id);
        // outside the package, which npm packs whole
        let file = npm
            .root()
            .join(format!("{}.sigstore", name.replace('/', "-")));
        std::fs::write(&file, &bundle).unwrap();
        let out = self.npm(
            npm,
            dir,
            &[
                "publish",
                &format!("--provenance-file={}", file.display()),
                "--access=public",
            ],
        );
        assert!(
            out.ok().contains(&format!("+ {name}@{version}")),
            "{}",
            out.all()
        );
        bundle
    }

    /// The registry's environment: this trust root.
    pub fn env(&self) -> (&'static str, String) {
        (
            "TESSERA_PROVENANCE__TRUSTED_ROOT",
            self.root.display().to_string(),
        )
    }

    /// npm, offline: its Sigstore trust root is this one (npm asks Sigstore's TUF repository on
    /// the internet otherwise, even for `npm audit signatures` of registry signatures alone).
    pub fn npm(&self, npm: &super::Npm, dir: &std::path::Path, args: &[&str]) -> super::Run {
        let mut cmd = npm.command(dir, args);
        cmd.env("NODE_OPTIONS", format!("--require {}", self.hook.display()))
            .env("TESSERA_TEST_TRUSTED_ROOT", &self.root);
        super::Run::of(cmd)
    }
}
