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
//! - when the package has GitHub or GitLab trusted publishers, the certificate names one of them:
//!   the same OIDC issuer, repository and workflow (pipeline) file.
//!
//! What was verified is kept as a summary (issuer, repository, commit, workflow, run), which the
//! website shows; the bundle is served to clients as it was sent.

use serde_json::{Map, Value, json};
use sigstore_verify::VerificationPolicy;
use sigstore_verify::trust_root::{
    SIGSTORE_GITHUB_TRUSTED_ROOT, SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot,
};
use sigstore_verify::types::Bundle;
use tessera_store::{Provenance, TrustedPublisher};

use crate::config::IssuerKind;

/// The largest bundle accepted (real ones are about 10 KB).
pub const MAX_BUNDLE_BYTES: usize = 256 * 1024;

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
    /// The verifier for `trusted_root`: `sigstore` (Sigstore's public-good instance, built in),
    /// `github` (GitHub's instance, built in) or the path of a `trusted_root.json`.
    pub fn load(trusted_root: &str) -> Result<ProvenanceVerifier, String> {
        let (json, source) = match trusted_root {
            "sigstore" => (
                SIGSTORE_PRODUCTION_TRUSTED_ROOT.to_owned(),
                "Sigstore's public trust root".to_owned(),
            ),
            "github" => (
                SIGSTORE_GITHUB_TRUSTED_ROOT.to_owned(),
                "GitHub's Sigstore trust root".to_owned(),
            ),
            path => (
                std::fs::read_to_string(path)
                    .map_err(|e| format!("provenance.trusted_root: cannot read {path:?}: {e}"))?,
                format!("the trust root {path}"),
            ),
        };
        let root = TrustedRoot::from_json(&json)
            .map_err(|e| format!("provenance.trusted_root {trusted_root:?}: {e}"))?;
        if root.certificate_authorities.is_empty()
            || (root.tlogs.is_empty() && root.timestamp_authorities.is_empty())
        {
            return Err(format!(
                "provenance.trusted_root {trusted_root:?}: it must name at least one certificate \
                 authority, and a transparency log or a timestamp authority"
            ));
        }
        Ok(ProvenanceVerifier { root, source })
    }

    /// Checks the attachment `data` (the bundle as JSON text, or base64 of it) for `name` at
    /// `version` with this `tarball`, and against the package's trusted `publishers`. Returns
    /// what is stored.
    pub fn verify(
        &self,
        data: &str,
        name: &str,
        version: &str,
        tarball: &[u8],
        publishers: &[TrustedPublisher],
    ) -> Result<Provenance, Refusal> {
        if data.len() > MAX_BUNDLE_BYTES * 4 / 3 + 4 {
            return Err(Refusal::TooLarge(data.len()));
        }
        let text = bundle_text(data)?;
        if text.len() > MAX_BUNDLE_BYTES {
            return Err(Refusal::TooLarge(text.len()));
        }
        let raw: Value = serde_json::from_str(&text)
            .map_err(|e| invalid(format!("the provenance bundle is not JSON: {e}")))?;
        let statement = statement_of(&raw)?;
        let predicate_type = check_statement(&statement, name, version, tarball)?;
        let bundle = Bundle::from_json(&text)
            .map_err(|e| invalid(format!("the provenance bundle cannot be read: {e}")))?;
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
        let c = &cert.ci_claims;
        let summary = Summary {
            predicate_type: predicate_type.clone(),
            issuer: cert.issuer.clone().unwrap_or_default(),
            identity: cert
                .identity
                .as_ref()
                .map(|i| i.as_str().to_owned())
                .unwrap_or_default(),
            repository: c.source_repository_uri.clone(),
            commit: c.source_repository_digest.clone(),
            git_ref: c.source_repository_ref.clone(),
            workflow: c.build_config_uri.clone(),
            run: c.run_invocation_uri.clone(),
            logged_at: result.integrated_time().map(|t| t.as_millisecond()),
        };
        check_publishers(&summary, publishers)?;
        Ok(Provenance {
            predicate_type,
            bundle: text,
            summary: summary.to_json().to_string(),
        })
    }
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

/// The in-toto statement in the bundle's DSSE envelope.
fn statement_of(raw: &Value) -> Result<Value, Refusal> {
    let env = raw
        .get("dsseEnvelope")
        .ok_or_else(|| invalid("the provenance bundle holds no DSSE envelope (an attestation)"))?;
    if env.get("payloadType").and_then(Value::as_str) != Some("application/vnd.in-toto+json") {
        return Err(invalid(
            "the provenance bundle's payload is not an in-toto statement",
        ));
    }
    let payload = env
        .get("payload")
        .and_then(Value::as_str)
        .and_then(|p| data_encoding::BASE64.decode(p.as_bytes()).ok())
        .ok_or_else(|| invalid("the provenance bundle's payload is not base64"))?;
    serde_json::from_slice(&payload)
        .map_err(|e| invalid(format!("the provenance statement is not JSON: {e}")))
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
    if !digest.eq_ignore_ascii_case(&sha512) {
        return Err(invalid(
            "the provenance statement's sha512 is not the tarball's: it was made for other bytes",
        ));
    }
    Ok(predicate_type.to_owned())
}

/// When the package has GitHub or GitLab trusted publishers, the certificate must name one.
fn check_publishers(s: &Summary, publishers: &[TrustedPublisher]) -> Result<(), Refusal> {
    let bindable: Vec<_> = publishers
        .iter()
        .filter(|p| matches!(p.kind.as_str(), "github" | "gitlab"))
        .collect();
    if bindable.is_empty() || bindable.iter().any(|p| names_publisher(s, p)) {
        return Ok(());
    }
    Err(invalid(format!(
        "the provenance was built by {} ({}), which is not a trusted publisher of this package",
        s.workflow.as_deref().unwrap_or(&s.identity),
        s.issuer
    )))
}

/// Whether the certificate summarised in `s` was issued to the trusted publisher `p`.
fn names_publisher(s: &Summary, p: &TrustedPublisher) -> bool {
    let Ok(claims) = serde_json::from_str::<Map<String, Value>>(&p.claims) else {
        return false;
    };
    let want = |k: &str| claims.get(k).and_then(Value::as_str).unwrap_or("");
    let file = |k: &str| {
        claims
            .get(k)
            .and_then(|v| v.get("file"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    if want("iss") != s.issuer || s.issuer.is_empty() {
        return false;
    }
    // the path of a URI (`https://host/owner/repo` → `owner/repo`)
    let path_of = |uri: &str| {
        url::Url::parse(uri)
            .ok()
            .map(|u| u.path().trim_matches('/').to_owned())
    };
    let (Some(repo), Some(workflow)) = (
        s.repository.as_deref().and_then(path_of),
        s.workflow.as_deref(),
    ) else {
        return false;
    };
    let workflow_path = path_of(workflow.split('@').next().unwrap_or("")).unwrap_or_default();
    match kind_of(p) {
        Some(IssuerKind::Github) => {
            let configured = want("repository");
            repo.eq_ignore_ascii_case(configured)
                && workflow_path
                    .strip_suffix(&format!("/.github/workflows/{}", file("workflow_ref")))
                    .is_some_and(|r| r.eq_ignore_ascii_case(configured))
        }
        Some(IssuerKind::Gitlab) => {
            let project = want("project_path");
            repo == project && workflow_path == format!("{project}//{}", file("ci_config_ref_uri"))
        }
        _ => false,
    }
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

    fn github_summary(repo: &str, file: &str) -> Summary {
        Summary {
            predicate_type: SLSA_V1.into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            identity: format!("https://github.com/{repo}/.github/workflows/{file}@refs/heads/main"),
            repository: Some(format!("https://github.com/{repo}")),
            workflow: Some(format!(
                "https://github.com/{repo}/.github/workflows/{file}@refs/heads/main"
            )),
            ..Summary::default()
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
    fn a_bundle_is_bound_to_the_trusted_publishers() {
        let gh = publisher(
            "github",
            json!({"iss": "https://token.actions.githubusercontent.com",
                   "repository": "Acme/Widgets", "workflow_ref": {"file": "release.yml"}}),
        );
        let ok = github_summary("acme/widgets", "release.yml");
        assert!(names_publisher(&ok, &gh));
        assert!(check_publishers(&ok, std::slice::from_ref(&gh)).is_ok());
        for bad in [
            github_summary("acme/other", "release.yml"),
            github_summary("acme/widgets", "test.yml"),
            github_summary("evil/acme/widgets", "release.yml"),
            Summary {
                issuer: "https://gitlab.com".into(),
                ..ok.clone()
            },
        ] {
            assert!(!names_publisher(&bad, &gh), "{bad:?}");
            assert!(check_publishers(&bad, std::slice::from_ref(&gh)).is_err());
        }
        // no publishers, or only kinds a certificate cannot be matched against: not bound
        assert!(check_publishers(&github_summary("a/b", "c.yml"), &[]).is_ok());
        let generic = publisher("generic", json!({"iss": "https://ci.example", "sub": "x"}));
        assert!(check_publishers(&github_summary("a/b", "c.yml"), &[generic]).is_ok());

        let gl = publisher(
            "gitlab",
            json!({"iss": "https://gitlab.com", "project_path": "acme/widgets",
                   "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}}),
        );
        let s = Summary {
            predicate_type: SLSA_V1.into(),
            issuer: "https://gitlab.com".into(),
            repository: Some("https://gitlab.com/acme/widgets".into()),
            workflow: Some(
                "https://gitlab.com/acme/widgets//.gitlab-ci.yml@refs/heads/main".into(),
            ),
            ..Summary::default()
        };
        assert!(names_publisher(&s, &gl));
        let other = Summary {
            workflow: Some("https://gitlab.com/acme/widgets//other.yml@refs/heads/main".into()),
            ..s.clone()
        };
        assert!(!names_publisher(&other, &gl));
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
            v.verify(&huge, "x", "1.0.0", b"", &[]),
            Err(Refusal::TooLarge(_))
        ));
        assert!(matches!(
            v.verify("{not json", "x", "1.0.0", b"", &[]),
            Err(Refusal::Invalid(_))
        ));
        assert!(ProvenanceVerifier::load("github").is_ok());
        assert!(ProvenanceVerifier::load("/nonexistent/root.json").is_err());
    }
}
