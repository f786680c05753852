//! Provenance: the Sigstore bundle `npm publish --provenance` attaches (`<name>-<version>.sigstore`),
//! verified at publish against the configured Sigstore trust root, and bound to the version and
//! to the package's trusted publishers.
//!
//! A bundle is accepted only if all of these hold:
//! - it is a Sigstore bundle holding a DSSE envelope of an in-toto statement whose predicate is
//!   SLSA provenance (v0.2 or v1);
//! - its one subject is `pkg:npm/<name>@<version>` (a scope's `@` written `%40`, as npm writes
//!   it) with the sha512 of the tarball being published;
//! - the signature, the signing certificate's chain to a certificate authority of the trust
//!   root, the transparency-log entry (inclusion proof and promise) and, when the trust root
//!   has certificate-transparency logs, the certificate's SCT all verify (`sigstore-verify`);
//! - the certificate was issued to a CI workflow (a URI identity, not a person's email), and,
//!   when the package has GitHub or GitLab trusted publishers, to one of them, by the rules
//!   trusted publishing applies to identity tokens (issuer, repository, the job's workflow
//!   file, environment, the immutable ids the publisher was first used with); a package that
//!   requires provenance must have such a publisher;
//! - the DSSE signature names no key id (npm would look it up among the registry's keys).
//!
//! Every check reads the parsed bundle, the one that is verified, and that bundle is what is
//! stored and served (written out again), so a bundle cannot show one thing to a check and
//! another to the verifier or to clients. What was verified is kept as a summary (issuer,
//! repository, commit, workflow, run), which the website shows.

use serde_json::{Map, Value, json};
use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_verify::types::Bundle;
use sigstore_verify::types::bundle::{SignatureContent, VerificationMaterialContent};
use sigstore_verify::{SubjectAltName, VerificationPolicy};
use tessera_store::{Provenance, TrustedPublisher};

use crate::config::{IssuerKind, OidcIssuer};

/// The largest bundle accepted (real ones are about 10 KB).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

/// The DSSE payload type of an in-toto statement.
const INTOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// SLSA provenance v1, what npm 9.5+ attaches.
pub const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
/// SLSA provenance v0.2, what npm 9.5 attached at first.
pub const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";

/// The trust root bundles are verified against.
pub struct ProvenanceVerifier {
    root: TrustedRoot,
    /// Where the root came from, for messages.
    source: String,
}

/// Why a bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Larger than [`MAX_BUNDLE_BYTES`].
    TooLarge(usize),
    /// Anything else; the message says what.
    Invalid(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::TooLarge(n) => write!(
                f,
                "the provenance bundle is {n} bytes; at most {MAX_BUNDLE_BYTES} are accepted"
            ),
            Refusal::Invalid(why) => f.write_str(why),
        }
    }
}

fn invalid(why: impl Into<String>) -> Refusal {
    Refusal::Invalid(why.into())
}

impl ProvenanceVerifier {
    /// The verifier for `trusted_root`: `sigstore` (Sigstore's public-good instance, built in)
    /// or the path of a `trusted_root.json`.
    pub fn load(trusted_root: &str) -> Result<ProvenanceVerifier, String> {
        let (json, source) = match trusted_root {
            "sigstore" => (
                SIGSTORE_PRODUCTION_TRUSTED_ROOT.to_owned(),
                "Sigstore's public trust root".to_owned(),
            ),
            path => (
                std::fs::read_to_string(path)
                    .map_err(|e| format!("provenance.trusted_root: cannot read {path:?}: {e}"))?,
                format!("the trust root {path}"),
            ),
        };
        let root = TrustedRoot::from_json(&json)
            .map_err(|e| format!("provenance.trusted_root {trusted_root:?}: {e}"))?;
        // npm verifies provenance through a transparency log; a root without one (GitHub's
        // own Sigstore, which timestamps instead) would accept what npm refuses
        if root.certificate_authorities.is_empty() || root.tlogs.is_empty() {
            return Err(format!(
                "provenance.trusted_root {trusted_root:?}: it must name at least one certificate \
                 authority and one transparency log"
            ));
        }
        Ok(ProvenanceVerifier { root, source })
    }

    /// Checks the attachment `data` (the bundle as JSON text, or base64 of it) for `name` at
    /// `version` with this `tarball`, and against the package's trusted `publishers`
    /// (`bind`: one of them must be GitHub's or GitLab's and match). Returns what is stored:
    /// the bundle as it was parsed and verified, written out again, so that what is served is
    /// exactly what was checked.
    pub fn verify(
        &self,
        data: &str,
        name: &str,
        version: &str,
        tarball: &[u8],
        publishers: &[TrustedPublisher],
        bind: bool,
    ) -> Result<Provenance, Refusal> {
        if data.len() > MAX_BUNDLE_BYTES * 4 / 3 + 4 {
            return Err(Refusal::TooLarge(data.len()));
        }
        let text = bundle_text(data)?;
        if text.len() > MAX_BUNDLE_BYTES {
            return Err(Refusal::TooLarge(text.len()));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&text)
            .map_err(|e| invalid(format!("the provenance bundle is not JSON: {e}")))?;
        let bundle = Bundle::from_json(&text)
            .map_err(|e| invalid(format!("the provenance bundle cannot be read: {e}")))?;
        // everything below reads the parsed bundle, the one that is verified
        let SignatureContent::DsseEnvelope(dsse) = &bundle.content else {
            return Err(invalid(
                "the provenance bundle holds no DSSE envelope (an attestation)",
            ));
        };
        if dsse.payload_type != INTOTO_PAYLOAD_TYPE {
            return Err(invalid(
                "the provenance bundle's payload is not an in-toto statement",
            ));
        }
        if !dsse.signature.keyid.is_empty() {
            // npm looks a key id up among the registry's keys and aborts its audit without it
            return Err(invalid(
                "the provenance bundle's signature names a key id: provenance is signed by a \
                 Sigstore certificate, not a key",
            ));
        }
        let statement: Value = serde_json::from_slice(dsse.payload.as_bytes())
            .map_err(|e| invalid(format!("the provenance statement is not JSON: {e}")))?;
        let predicate_type = check_statement(&statement, name, version, tarball)?;
        let mut policy = VerificationPolicy::any_identity();
        if self.root.ctlogs.is_empty() {
            // a private Sigstore without certificate transparency
            policy = policy.skip_sct();
        }
        let result =
            sigstore_verify::verify(tarball, &bundle, &policy, &self.root).map_err(|e| {
                invalid(format!(
                    "the provenance bundle does not verify against {}: {e}",
                    self.source
                ))
            })?;
        let cert = result
            .certificate()
            .ok_or_else(|| invalid("the provenance bundle has no signing certificate"))?;
        let Some(SubjectAltName::Uri(identity)) = &cert.identity else {
            return Err(invalid(
                "the provenance was signed by a person (an email identity), not by a CI workflow",
            ));
        };
        let c = &cert.ci_claims;
        let issuer = cert.issuer.clone().unwrap_or_default();
        let summary = Summary {
            predicate_type: predicate_type.clone(),
            issuer: issuer.clone(),
            identity: identity.clone(),
            repository: c.source_repository_uri.clone(),
            commit: c.source_repository_digest.clone(),
            git_ref: c.source_repository_ref.clone(),
            workflow: c.build_config_uri.clone(),
            run: c.run_invocation_uri.clone(),
            logged_at: result.integrated_time().map(|t| t.as_millisecond()),
        };
        let claims = CertClaims {
            issuer,
            repository: c.source_repository_uri.clone(),
            signer: c.build_signer_uri.clone(),
            repository_id: c.source_repository_identifier.clone(),
            owner_id: c.source_repository_owner_identifier.clone(),
            environment: leaf_certificate(&bundle).and_then(deployment_environment),
        };
        check_publishers(&summary, &claims, publishers, bind)?;
        let normalised = bundle
            .to_json()
            .map_err(|e| invalid(format!("the provenance bundle cannot be written: {e}")))?;
        Ok(Provenance {
            predicate_type,
            bundle: normalised,
            summary: summary.to_json().to_string(),
        })
    }
}

impl ProvenanceVerifier {
    /// Verifies a bundle signed with a managed key (the registry's publish attestation):
    /// the signature with `spki` (SubjectPublicKeyInfo DER), the statement's subject against
    /// `tarball`, and the log entry against this trust root, as npm will. Returns when the log
    /// took it (Unix ms).
    pub fn verify_keyed(&self, bundle: &str, tarball: &[u8], spki: &[u8]) -> Result<i64, String> {
        let bundle = Bundle::from_json(bundle).map_err(|e| format!("unreadable bundle: {e}"))?;
        let policy = sigstore_verify::PublicKeyVerificationPolicy::new(
            sigstore_verify::types::DerPublicKey::new(spki.to_vec()),
        );
        let result = sigstore_verify::verify(tarball, &bundle, &policy, &self.root)
            .map_err(|e| format!("it does not verify against {}: {e}", self.source))?;
        result
            .integrated_time()
            .map(|t| t.as_millisecond())
            .ok_or_else(|| "its log entry has no time".to_string())
    }
}

/// The certificate's claims that bind it to a trusted publisher.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertClaims {
    /// The OIDC issuer.
    pub issuer: String,
    /// The source repository's URI.
    pub repository: Option<String>,
    /// The workflow that signed (the job's own workflow, `.1.9`): GitHub's `job_workflow_ref`,
    /// GitLab's `ci_config_ref_uri`, as a URI.
    pub signer: Option<String>,
    /// The repository's immutable id (`.1.15`).
    pub repository_id: Option<String>,
    /// The repository owner's (namespace's) immutable id (`.1.17`).
    pub owner_id: Option<String>,
    /// The deployment environment the job ran in (`.1.23`), if any.
    pub environment: Option<String>,
}

/// The leaf certificate's DER, as the bundle holds it.
fn leaf_certificate(bundle: &Bundle) -> Option<&[u8]> {
    match &bundle.verification_material.content {
        VerificationMaterialContent::Certificate(c) => Some(c.raw_bytes.as_bytes()),
        VerificationMaterialContent::X509CertificateChain { certificates } => {
            certificates.first().map(|c| c.raw_bytes.as_bytes())
        }
        _ => None,
    }
}

/// Fulcio's deployment-environment extension (`1.3.6.1.4.1.57264.1.23`, a UTF8String).
fn deployment_environment(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    use x509_cert::der::asn1::{ObjectIdentifier, Utf8StringRef};
    const OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.23");
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let ext = cert
        .tbs_certificate
        .extensions?
        .into_iter()
        .find(|e| e.extn_id == OID)?;
    Utf8StringRef::from_der(ext.extn_value.as_bytes())
        .ok()
        .map(|s| s.as_str().to_owned())
}

/// What a verified bundle says about where the version was built.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// The statement's predicate type.
    pub predicate_type: String,
    /// The OIDC issuer the certificate was issued through.
    pub issuer: String,
    /// The certificate's identity (the workflow's URI for CI).
    pub identity: String,
    /// The source repository's URI.
    pub repository: Option<String>,
    /// The commit built.
    pub commit: Option<String>,
    /// The ref built (`refs/heads/main`, a tag).
    pub git_ref: Option<String>,
    /// The build configuration (workflow file) URI.
    pub workflow: Option<String>,
    /// The CI run's URI.
    pub run: Option<String>,
    /// When the transparency log recorded it (Unix ms).
    pub logged_at: Option<i64>,
}

impl Summary {
    /// As stored.
    pub fn to_json(&self) -> Value {
        json!({
            "predicateType": self.predicate_type,
            "issuer": self.issuer,
            "identity": self.identity,
            "repository": self.repository,
            "commit": self.commit,
            "ref": self.git_ref,
            "workflow": self.workflow,
            "run": self.run,
            "loggedAt": self.logged_at,
        })
    }

    /// From what was stored (`None` if it is not a summary).
    pub fn from_json(text: &str) -> Option<Summary> {
        let v: Map<String, Value> = serde_json::from_str(text).ok()?;
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Some(Summary {
            predicate_type: s("predicateType")?,
            issuer: s("issuer").unwrap_or_default(),
            identity: s("identity").unwrap_or_default(),
            repository: s("repository"),
            commit: s("commit"),
            git_ref: s("ref"),
            workflow: s("workflow"),
            run: s("run"),
            logged_at: v.get("loggedAt").and_then(Value::as_i64),
        })
    }
}

/// npm's package URL for a version: `pkg:npm/<name>@<version>`, a scope's `@` as `%40`.
pub fn purl(name: &str, version: &str) -> String {
    let name = match name.strip_prefix('@') {
        Some(rest) => format!("%40{rest}"),
        None => name.to_owned(),
    };
    format!("pkg:npm/{name}@{version}")
}

/// The bundle's JSON text from an attachment's `data`: JSON as npm sends it, or base64 of it.
fn bundle_text(data: &str) -> Result<String, Refusal> {
    let trimmed = data.trim();
    if trimmed.starts_with('{') {
        return Ok(trimmed.to_owned());
    }
    let bytes = data_encoding::BASE64
        .decode(trimmed.as_bytes())
        .map_err(|_| invalid("the provenance bundle is neither JSON nor base64 of JSON"))?;
    String::from_utf8(bytes).map_err(|_| invalid("the provenance bundle is not UTF-8 text"))
}

/// Checks the statement's type and its one subject; returns the predicate type.
fn check_statement(
    statement: &Value,
    name: &str,
    version: &str,
    tarball: &[u8],
) -> Result<String, Refusal> {
    let predicate_type = statement
        .get("predicateType")
        .and_then(Value::as_str)
        .unwrap_or("");
    if predicate_type != SLSA_V1 && predicate_type != SLSA_V02 {
        return Err(invalid(format!(
            "the provenance statement's predicate type is {predicate_type:?}, not SLSA provenance \
             ({SLSA_V1})"
        )));
    }
    let subjects = statement
        .get("subject")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [subject] = subjects else {
        return Err(invalid(format!(
            "the provenance statement must have exactly one subject, not {}",
            subjects.len()
        )));
    };
    let expected = purl(name, version);
    let got = subject.get("name").and_then(Value::as_str).unwrap_or("");
    if got != expected {
        return Err(invalid(format!(
            "the provenance statement is for {got:?}, not {expected:?}"
        )));
    }
    let sha512 = crate::npm::tarball::Digests::of(tarball).sha512_hex;
    let digest = subject
        .get("digest")
        .and_then(|d| d.get("sha512"))
        .and_then(Value::as_str)
        .unwrap_or("");
    // exactly as npm compares it
    if digest != sha512 {
        return Err(invalid(
            "the provenance statement's sha512 is not the tarball's: it was made for other bytes",
        ));
    }
    Ok(predicate_type.to_owned())
}

/// When the package has GitHub or GitLab trusted publishers, the certificate must have been
/// issued to one of them, by the rules trusted publishing applies to a CI identity token
/// (repository, the job's workflow file, the environment when configured, and the immutable
/// ids the publisher was first used with). With `bind`, there must be such a publisher.
fn check_publishers(
    s: &Summary,
    c: &CertClaims,
    publishers: &[TrustedPublisher],
    bind: bool,
) -> Result<(), Refusal> {
    let bindable: Vec<_> = publishers
        .iter()
        .filter_map(|p| kind_of(p).map(|k| (p, k)))
        .collect();
    if bindable.is_empty() {
        if bind {
            return Err(invalid(
                "this package requires provenance from a trusted publisher, and has no GitHub \
                 or GitLab one: configure it with `npm trust github` or `npm trust gitlab`",
            ));
        }
        return Ok(());
    }
    let mut why = Vec::new();
    for (p, kind) in bindable {
        match names_publisher(c, p, kind) {
            Ok(()) => return Ok(()),
            Err(e) => why.push(e),
        }
    }
    Err(invalid(format!(
        "the provenance was built by {} ({}), which is not a trusted publisher of this package: \
         {}",
        c.signer.as_deref().unwrap_or(&s.identity),
        s.issuer,
        why.join("; ")
    )))
}

/// Whether the certificate's claims `c` match the trusted publisher `p` of `kind`.
fn names_publisher(c: &CertClaims, p: &TrustedPublisher, kind: IssuerKind) -> Result<(), String> {
    let claims: Map<String, Value> =
        serde_json::from_str(&p.claims).map_err(|_| "an unreadable publisher".to_string())?;
    let bound: Option<Map<String, Value>> = p
        .bound
        .as_deref()
        .and_then(|b| serde_json::from_str(b).ok());
    // the claims a CI identity token of that kind would carry, from the certificate
    let path = |uri: &str| {
        url::Url::parse(uri)
            .ok()
            .map(|u| u.path().trim_start_matches('/').to_owned())
    };
    let mut token = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            token.insert(k.into(), Value::String(v));
        }
    };
    let repository = c.repository.as_deref().and_then(path);
    let signer = c.signer.as_deref();
    match kind {
        IssuerKind::Github => {
            put(
                "repository",
                repository.map(|r| r.trim_end_matches('/').to_owned()),
            );
            put("job_workflow_ref", signer.and_then(path));
            put("repository_id", c.repository_id.clone());
            put("repository_owner_id", c.owner_id.clone());
        }
        IssuerKind::Gitlab => {
            put(
                "project_path",
                repository.map(|r| r.trim_end_matches('/').to_owned()),
            );
            put(
                "ci_config_ref_uri",
                signer
                    .and_then(|s| s.strip_prefix("https://"))
                    .map(str::to_owned),
            );
            put("project_id", c.repository_id.clone());
            put("namespace_id", c.owner_id.clone());
        }
        IssuerKind::Buildkite | IssuerKind::Generic => return Err("not bindable".into()),
    }
    put("environment", c.environment.clone());
    let id = crate::trust::identity::Identity {
        issuer: OidcIssuer {
            issuer: c.issuer.clone(),
            kind,
            jwks_url: None,
        },
        claims: token,
    };
    crate::trust::publishers::matches(kind, &claims, bound.as_ref(), &id).map(drop)
}

fn kind_of(p: &TrustedPublisher) -> Option<IssuerKind> {
    match p.kind.as_str() {
        "github" => Some(IssuerKind::Github),
        "gitlab" => Some(IssuerKind::Gitlab),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(kind: &str, claims: Value) -> TrustedPublisher {
        TrustedPublisher {
            id: "p".into(),
            package: "x".into(),
            kind: kind.into(),
            claims: claims.to_string(),
            permissions: "[]".into(),
            bound: None,
            created_by: 1,
            created_at: 0,
        }
    }

    fn github_cert(repo: &str, file: &str) -> CertClaims {
        CertClaims {
            issuer: "https://token.actions.githubusercontent.com".into(),
            repository: Some(format!("https://github.com/{repo}")),
            signer: Some(format!(
                "https://github.com/{repo}/.github/workflows/{file}@refs/heads/main"
            )),
            repository_id: Some("7".into()),
            owner_id: Some("8".into()),
            environment: None,
        }
    }

    #[test]
    fn purls_are_npms() {
        assert_eq!(purl("left-pad", "1.0.0"), "pkg:npm/left-pad@1.0.0");
        assert_eq!(
            purl("@acme/x", "1.0.0-rc.1"),
            "pkg:npm/%40acme/x@1.0.0-rc.1"
        );
    }

    #[test]
    fn a_bundle_is_bound_to_the_trusted_publishers_as_a_token_would_be() {
        let gh = |extra: Value| {
            let mut claims = json!({"iss": "https://token.actions.githubusercontent.com",
                   "repository": "Acme/Widgets", "workflow_ref": {"file": "release.yml"}});
            claims
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            publisher("github", claims)
        };
        let s = Summary::default();
        let ok = github_cert("acme/widgets", "release.yml");
        assert!(check_publishers(&s, &ok, &[gh(json!({}))], true).is_ok());
        for bad in [
            github_cert("acme/other", "release.yml"),
            github_cert("acme/widgets", "test.yml"),
            github_cert("evil/acme/widgets", "release.yml"),
            CertClaims {
                issuer: "https://gitlab.com".into(),
                ..ok.clone()
            },
            CertClaims {
                signer: None,
                ..ok.clone()
            },
        ] {
            let e = check_publishers(&s, &bad, &[gh(json!({}))], false).unwrap_err();
            assert!(
                e.to_string().contains("not a trusted publisher"),
                "{bad:?}: {e}"
            );
        }
        // the environment, when the publisher names one
        let with_env = gh(json!({"environment": "npm"}));
        assert!(check_publishers(&s, &ok, std::slice::from_ref(&with_env), false).is_err());
        let in_env = CertClaims {
            environment: Some("npm".into()),
            ..ok.clone()
        };
        assert!(check_publishers(&s, &in_env, std::slice::from_ref(&with_env), false).is_ok());
        // the ids it was first used with: a repository made again under the same name fails
        let mut bound = gh(json!({}));
        bound.bound = Some(json!({"repository_id": "7", "repository_owner_id": "8"}).to_string());
        assert!(check_publishers(&s, &ok, std::slice::from_ref(&bound), false).is_ok());
        let remade = CertClaims {
            repository_id: Some("99".into()),
            ..ok.clone()
        };
        assert!(check_publishers(&s, &remade, std::slice::from_ref(&bound), false).is_err());

        // no publisher that can bind: accepted, unless the package requires binding
        assert!(check_publishers(&s, &ok, &[], false).is_ok());
        assert!(check_publishers(&s, &ok, &[], true).is_err());
        let generic = publisher("generic", json!({"iss": "https://ci.example", "sub": "x"}));
        assert!(check_publishers(&s, &ok, std::slice::from_ref(&generic), false).is_ok());
        assert!(check_publishers(&s, &ok, &[generic], true).is_err());

        let gl = publisher(
            "gitlab",
            json!({"iss": "https://gitlab.com", "project_path": "acme/widgets",
                   "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}}),
        );
        let c = CertClaims {
            issuer: "https://gitlab.com".into(),
            repository: Some("https://gitlab.com/acme/widgets".into()),
            signer: Some("https://gitlab.com/acme/widgets//.gitlab-ci.yml@refs/heads/main".into()),
            ..CertClaims::default()
        };
        assert!(check_publishers(&s, &c, std::slice::from_ref(&gl), true).is_ok());
        let other = CertClaims {
            signer: Some("https://gitlab.com/acme/widgets//other.yml@refs/heads/main".into()),
            ..c.clone()
        };
        assert!(check_publishers(&s, &other, &[gl], true).is_err());
    }

    #[test]
    fn the_statement_must_name_this_version_and_these_bytes() {
        let tgz = b"tarball";
        let sha = crate::npm::tarball::Digests::of(tgz).sha512_hex;
        let st = |name: &str, digest: &str, pt: &str| {
            json!({"_type": "https://in-toto.io/Statement/v1", "predicateType": pt,
                   "subject": [{"name": name, "digest": {"sha512": digest}}], "predicate": {}})
        };
        assert_eq!(
            check_statement(
                &st("pkg:npm/%40a/b@1.0.0", &sha, SLSA_V1),
                "@a/b",
                "1.0.0",
                tgz
            ),
            Ok(SLSA_V1.to_owned())
        );
        for (s, why) in [
            (st("pkg:npm/%40a/b@1.0.1", &sha, SLSA_V1), "is for"),
            (st("pkg:npm/@a/b@1.0.0", &sha, SLSA_V1), "is for"),
            (st("pkg:npm/%40a/b@1.0.0", "00", SLSA_V1), "sha512"),
            (
                st("pkg:npm/%40a/b@1.0.0", &sha, "https://example/x"),
                "predicate type",
            ),
            (
                json!({"predicateType": SLSA_V1, "subject": []}),
                "exactly one",
            ),
        ] {
            let e = check_statement(&s, "@a/b", "1.0.0", tgz).unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
    }

    #[test]
    fn attachments_are_json_or_base64_and_bounded() {
        assert_eq!(bundle_text(" {\"a\":1}").unwrap(), "{\"a\":1}");
        assert_eq!(
            bundle_text(&data_encoding::BASE64.encode(b"{\"a\":1}")).unwrap(),
            "{\"a\":1}"
        );
        assert!(bundle_text("%%%").is_err());
        let v = ProvenanceVerifier::load("sigstore").unwrap();
        let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(MAX_BUNDLE_BYTES));
        assert!(matches!(
            v.verify(&huge, "x", "1.0.0", b"", &[], false),
            Err(Refusal::TooLarge(_))
        ));
        assert!(matches!(
            v.verify("{not json", "x", "1.0.0", b"", &[], false),
            Err(Refusal::Invalid(_))
        ));
        assert!(ProvenanceVerifier::load("github").is_err());
        assert!(ProvenanceVerifier::load("/nonexistent/root.json").is_err());
    }
}
