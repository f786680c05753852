//! Trusted publishers: what `npm trust` configures (validated into a canonical form) and whether
//! a verified CI identity matches one, per provider.
//!
//! - **github**: `repository` (`owner/repo`, case-insensitive) and the workflow file, which
//!   must be the file of `job_workflow_ref` (the workflow that runs the publish job), in that
//!   repository's `.github/workflows/`; `environment` when configured.
//! - **gitlab**: `project_path` and the file of `ci_config_ref_uri` (`host/<project_path>//<file>@ref`);
//!   `environment` when configured.
//! - **buildkite**: `organization_slug` and `pipeline_slug`.
//! - **generic**: every configured claim equal in the token.
//!
//! The first accepted exchange binds the publisher to the immutable ids it saw (GitHub's
//! `repository_owner_id` and `repository_id`, GitLab's `namespace_id` and `project_id`): a
//! repository deleted and created again under the same name by someone else no longer matches.

use serde_json::{Map, Value, json};

use crate::config::{IssuerKind, OidcIssuer};
use crate::http::error::{ApiError, ApiResult};
use crate::trust::identity::Identity;

/// Permission to publish.
pub const CREATE_PACKAGE: &str = "createPackage";
/// Permission to stage a publish.
pub const CREATE_STAGED_PACKAGE: &str = "createStagedPackage";

/// A trusted publisher as the client sent it, checked: its kind, canonical claims (with the
/// issuer under `iss`) and permissions.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The provider.
    pub kind: IssuerKind,
    /// The claims to match, with `iss`.
    pub claims: Map<String, Value>,
    /// The permissions.
    pub permissions: Vec<String>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::bad_request(msg)
}

fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> ApiResult<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 256)
        .ok_or_else(|| {
            bad(format!(
                "claims.{name} is required (text of 1 to 256 characters)"
            ))
        })
}

/// A workflow or pipeline file name: `publish.yml`, not a path.
fn file_name(v: Option<&Value>, what: &str) -> ApiResult<String> {
    let file = v
        .and_then(|f| f.get("file"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let ok = (file.ends_with(".yml") || file.ends_with(".yaml"))
        && !file.contains("..")
        && !file.starts_with('/')
        && file.len() <= 256;
    if !ok {
        return Err(bad(format!(
            "{what}.file must be a file name ending in .yml or .yaml"
        )));
    }
    Ok(file.to_owned())
}

/// Checks one configuration from `POST /-/package/<pkg>/trust` against the configured issuers.
pub fn parse(body: &Value, issuers: &[OidcIssuer]) -> ApiResult<Config> {
    let o = body
        .as_object()
        .ok_or_else(|| bad("Each trust configuration must be an object"))?;
    let kind_word = o.get("type").and_then(Value::as_str).unwrap_or("");
    let kind = IssuerKind::parse(kind_word).ok_or_else(|| {
        bad(format!(
            "Unknown trusted publisher type {kind_word:?}: use github, gitlab, buildkite or generic"
        ))
    })?;
    let claims = o
        .get("claims")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("claims is required"))?;
    // the issuer: named, or the only one of this kind
    let of_kind: Vec<&OidcIssuer> = issuers.iter().filter(|i| i.kind == kind).collect();
    let issuer = match claims.get("iss").and_then(Value::as_str) {
        Some(iss) => of_kind.iter().find(|i| i.issuer == iss).ok_or_else(|| {
            bad(format!(
                "{iss} is not a {} issuer of this registry",
                kind.as_str()
            ))
        })?,
        None => match of_kind.as_slice() {
            [one] => one,
            [] => {
                return Err(bad(format!(
                    "This registry trusts no {} issuer: its administrator adds one under \
                     [[oidc.issuers]]",
                    kind.as_str()
                )));
            }
            _ => {
                return Err(bad(format!(
                    "This registry trusts several {} issuers: name one in claims.iss",
                    kind.as_str()
                )));
            }
        },
    };
    let mut out = Map::new();
    out.insert("iss".into(), issuer.issuer.clone().into());
    match kind {
        IssuerKind::Github => {
            let repository = text(claims, "repository")?;
            if repository.split('/').count() != 2 || repository.split('/').any(str::is_empty) {
                return Err(bad("claims.repository must be owner/repository"));
            }
            out.insert("repository".into(), repository.into());
            let file = file_name(claims.get("workflow_ref"), "claims.workflow_ref")?;
            if file.contains('/') {
                return Err(bad(
                    "claims.workflow_ref.file must be just a file, not a path",
                ));
            }
            out.insert("workflow_ref".into(), json!({ "file": file }));
        }
        IssuerKind::Gitlab => {
            out.insert("project_path".into(), text(claims, "project_path")?.into());
            let file = file_name(claims.get("ci_config_ref_uri"), "claims.ci_config_ref_uri")?;
            out.insert("ci_config_ref_uri".into(), json!({ "file": file }));
        }
        IssuerKind::Buildkite => {
            for name in ["organization_slug", "pipeline_slug"] {
                out.insert(name.into(), text(claims, name)?.into());
            }
        }
        IssuerKind::Generic => {
            for (k, v) in claims {
                if k == "iss" {
                    continue;
                }
                let v = v
                    .as_str()
                    .filter(|s| !s.is_empty() && s.len() <= 256)
                    .ok_or_else(|| {
                        bad(format!("claims.{k} must be text of 1 to 256 characters"))
                    })?;
                out.insert(k.clone(), v.into());
            }
            if out.len() < 2 {
                return Err(bad("A generic trusted publisher needs at least one claim"));
            }
        }
    }
    if matches!(kind, IssuerKind::Github | IssuerKind::Gitlab)
        && let Some(env) = claims.get("environment")
    {
        let env = env
            .as_str()
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .ok_or_else(|| bad("claims.environment must be text"))?;
        out.insert("environment".into(), env.into());
    }
    let permissions = match o.get("permissions") {
        None | Some(Value::Null) => vec![CREATE_PACKAGE.to_owned()],
        Some(Value::Array(a)) if !a.is_empty() => {
            let mut ps = Vec::with_capacity(a.len());
            for p in a {
                match p.as_str() {
                    Some(p @ (CREATE_PACKAGE | CREATE_STAGED_PACKAGE)) => {
                        if !ps.iter().any(|q| q == p) {
                            ps.push(p.to_owned());
                        }
                    }
                    _ => {
                        return Err(bad(format!(
                            "Unknown permission {p}: use {CREATE_PACKAGE} or {CREATE_STAGED_PACKAGE}"
                        )));
                    }
                }
            }
            ps
        }
        Some(_) => return Err(bad("permissions must be a non-empty list")),
    };
    Ok(Config {
        kind,
        claims: out,
        permissions,
    })
}

/// The immutable ids a provider's tokens carry, that a publisher is bound to at first use.
fn immutable_ids(kind: IssuerKind) -> &'static [&'static str] {
    match kind {
        IssuerKind::Github => &["repository_owner_id", "repository_id"],
        IssuerKind::Gitlab => &["namespace_id", "project_id"],
        IssuerKind::Buildkite | IssuerKind::Generic => &[],
    }
}

/// Whether `id` matches a publisher of `kind` with these stored `claims` (and `bound` ids).
/// `Ok(Some(ids))`: matched, and these ids should be bound now; `Err(why)`: not matched.
pub fn matches(
    kind: IssuerKind,
    claims: &Map<String, Value>,
    bound: Option<&Map<String, Value>>,
    id: &Identity,
) -> Result<Option<Map<String, Value>>, String> {
    if id.issuer.kind != kind
        || claims.get("iss").and_then(Value::as_str) != Some(&id.issuer.issuer)
    {
        return Err("another issuer".into());
    }
    let want = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    let got = |name: &str| id.claim(name).unwrap_or_default();
    let file_of = |name: &str| {
        claims
            .get(name)
            .and_then(|v| v.get("file"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    match kind {
        IssuerKind::Github => {
            let repository = want("repository");
            if !got("repository").eq_ignore_ascii_case(repository) {
                return Err(format!(
                    "repository is {:?}, not {repository:?}",
                    got("repository")
                ));
            }
            // `owner/repo/.github/workflows/<file>@ref`: names compare as GitHub does (owner
            // and repository case-insensitively, the file exactly)
            let file = file_of("workflow_ref");
            let job = got("job_workflow_ref");
            let path = job.split('@').next().unwrap_or("");
            let ok = path
                .strip_suffix(&format!("/.github/workflows/{file}"))
                .is_some_and(|repo| repo.eq_ignore_ascii_case(repository));
            if !ok {
                return Err(format!(
                    "job_workflow_ref is {job:?}, not {repository}/.github/workflows/{file}@…"
                ));
            }
        }
        IssuerKind::Gitlab => {
            let project = want("project_path");
            if got("project_path") != project {
                return Err(format!(
                    "project_path is {:?}, not {project:?}",
                    got("project_path")
                ));
            }
            let uri = got("ci_config_ref_uri");
            let before_ref = uri.split('@').next().unwrap_or("");
            let host = url::Url::parse(&id.issuer.issuer)
                .ok()
                .and_then(|u| {
                    let h = u.host_str()?.to_owned();
                    Some(match u.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h,
                    })
                })
                .unwrap_or_default();
            let ok = before_ref
                .split_once("//")
                .is_some_and(|(host_and_project, file)| {
                    host_and_project == format!("{host}/{project}")
                        && file == file_of("ci_config_ref_uri")
                });
            if !ok {
                return Err(format!(
                    "ci_config_ref_uri is {uri:?}, not …/{project}//{}@…",
                    file_of("ci_config_ref_uri")
                ));
            }
        }
        IssuerKind::Buildkite | IssuerKind::Generic => {
            for (k, v) in claims {
                if k == "iss" {
                    continue;
                }
                let v = v.as_str().unwrap_or("");
                if v.is_empty() || id.claim(k).as_deref() != Some(v) {
                    return Err(format!("{k} is {:?}, not {v:?}", got(k)));
                }
            }
        }
    }
    if let Some(env) = claims.get("environment").and_then(Value::as_str)
        && !got("environment").eq_ignore_ascii_case(env)
    {
        return Err(format!(
            "environment is {:?}, not {env:?}",
            got("environment")
        ));
    }
    let mut seen = Map::new();
    for name in immutable_ids(kind) {
        if let Some(v) = id.claim(name) {
            seen.insert((*name).into(), v.into());
        }
    }
    match bound {
        Some(b) => {
            for (k, v) in b {
                if seen.get(k) != Some(v) {
                    return Err(format!(
                        "{k} is {:?}, but this publisher was first used with {v}: the repository \
                         was replaced",
                        seen.get(k)
                    ));
                }
            }
            Ok(None)
        }
        None => Ok((!seen.is_empty()).then_some(seen)),
    }
}

/// The claims that decided, for the security log.
pub fn describe(id: &Identity) -> String {
    let keys = [
        "repository",
        "job_workflow_ref",
        "environment",
        "project_path",
        "ci_config_ref_uri",
        "organization_slug",
        "pipeline_slug",
        "sub",
    ];
    let mut parts = vec![format!("iss={}", id.issuer.issuer)];
    for k in keys {
        if let Some(v) = id.claim(k) {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(url: &str, kind: IssuerKind) -> OidcIssuer {
        OidcIssuer {
            issuer: url.into(),
            kind,
            jwks_url: None,
        }
    }

    fn identity(i: &OidcIssuer, claims: Value) -> Identity {
        Identity {
            issuer: i.clone(),
            claims: claims.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn configurations_are_checked_and_name_their_issuer() {
        let gh = issuer(
            "https://token.actions.githubusercontent.com",
            IssuerKind::Github,
        );
        let ghe = issuer(
            "https://ghe.example.com/_services/token",
            IssuerKind::Github,
        );
        let one = [gh.clone()];
        let c = parse(
            &json!({"type": "github", "claims": {"repository": "acme/w", "workflow_ref": {"file": "p.yml"}}}),
            &one,
        )
        .unwrap();
        assert_eq!(c.claims["iss"], gh.issuer);
        assert_eq!(c.permissions, [CREATE_PACKAGE]);
        let bad = |body: Value, issuers: &[OidcIssuer], needle: &str| {
            let e = parse(&body, issuers).unwrap_err();
            assert!(e.message.contains(needle), "{}: {}", body, e.message);
        };
        bad(
            json!({"type": "github", "claims": {"repository": "acme/w", "workflow_ref": {"file": "p.yml"}}}),
            &[],
            "trusts no github issuer",
        );
        bad(
            json!({"type": "github", "claims": {"repository": "acme/w", "workflow_ref": {"file": "p.yml"}}}),
            &[gh.clone(), ghe.clone()],
            "name one in claims.iss",
        );
        bad(
            json!({"type": "github", "claims": {"repository": "acme", "workflow_ref": {"file": "p.yml"}}}),
            &one,
            "owner/repository",
        );
        bad(
            json!({"type": "github", "claims": {"repository": "acme/w", "workflow_ref": {"file": "p.sh"}}}),
            &one,
            ".yml",
        );
        bad(
            json!({"type": "github", "claims": {"repository": "acme/w", "workflow_ref": {"file": "../p.yml"}}}),
            &one,
            ".yml",
        );
        bad(
            json!({"type": "github", "claims": {"repository": "acme/w", "workflow_ref": {"file": "p.yml"}}, "permissions": ["everything"]}),
            &one,
            "Unknown permission",
        );
        bad(
            json!({"type": "jenkins", "claims": {}}),
            &one,
            "Unknown trusted publisher type",
        );
        // several issuers of a kind: the configuration names one
        let c = parse(
            &json!({"type": "github", "claims": {"iss": ghe.issuer, "repository": "acme/w", "workflow_ref": {"file": "p.yml"}}}),
            &[gh, ghe.clone()],
        )
        .unwrap();
        assert_eq!(c.claims["iss"], ghe.issuer);
    }

    #[test]
    fn gitlab_matches_the_project_and_its_ci_file() {
        let gl = issuer("https://gitlab.example.com", IssuerKind::Gitlab);
        let c = parse(
            &json!({"type": "gitlab", "claims": {"project_path": "acme/w", "ci_config_ref_uri": {"file": ".gitlab-ci.yml"}, "environment": "prod"}}),
            std::slice::from_ref(&gl),
        )
        .unwrap();
        let token = |path: &str, uri: &str, env: &str| {
            identity(
                &gl,
                json!({"project_path": path, "ci_config_ref_uri": uri, "environment": env, "namespace_id": "5", "project_id": "6"}),
            )
        };
        let good = token(
            "acme/w",
            "gitlab.example.com/acme/w//.gitlab-ci.yml@refs/heads/main",
            "prod",
        );
        let bound = matches(IssuerKind::Gitlab, &c.claims, None, &good)
            .unwrap()
            .unwrap();
        assert_eq!(bound["project_id"], "6");
        assert!(matches(IssuerKind::Gitlab, &c.claims, Some(&bound), &good).is_ok());
        for bad in [
            token(
                "acme/x",
                "gitlab.example.com/acme/x//.gitlab-ci.yml@refs/heads/main",
                "prod",
            ),
            token(
                "acme/w",
                "gitlab.example.com/acme/w//other.yml@refs/heads/main",
                "prod",
            ),
            token(
                "acme/w",
                "gitlab.example.com/evil/w//.gitlab-ci.yml@refs/heads/main",
                "prod",
            ),
            token(
                "acme/w",
                "gitlab.example.com/other/acme/w//.gitlab-ci.yml@refs/heads/main",
                "prod",
            ),
            token(
                "acme/w",
                "gitlab.example.com/acme/w//.gitlab-ci.yml@refs/heads/main",
                "dev",
            ),
        ] {
            assert!(
                matches(IssuerKind::Gitlab, &c.claims, Some(&bound), &bad).is_err(),
                "{:?}",
                bad.claims
            );
        }
        // a token of another issuer never matches
        let other = issuer("https://gitlab.com", IssuerKind::Gitlab);
        let foreign = identity(&other, json!(good.claims));
        assert!(matches(IssuerKind::Gitlab, &c.claims, None, &foreign).is_err());
    }

    #[test]
    fn buildkite_and_generic_issuers_match_every_configured_claim() {
        let bk = issuer("https://agent.buildkite.com", IssuerKind::Buildkite);
        let c = parse(
            &json!({"type": "buildkite", "claims": {"organization_slug": "acme", "pipeline_slug": "release"}}),
            std::slice::from_ref(&bk),
        )
        .unwrap();
        let ok = identity(
            &bk,
            json!({"organization_slug": "acme", "pipeline_slug": "release"}),
        );
        assert!(matches(IssuerKind::Buildkite, &c.claims, None, &ok).is_ok());
        let no = identity(
            &bk,
            json!({"organization_slug": "acme", "pipeline_slug": "nightly"}),
        );
        assert!(matches(IssuerKind::Buildkite, &c.claims, None, &no).is_err());
        let g = issuer("https://ci.example.com", IssuerKind::Generic);
        let c = parse(
            &json!({"type": "generic", "claims": {"project": "widgets", "branch": "main"}}),
            std::slice::from_ref(&g),
        )
        .unwrap();
        let ok = identity(
            &g,
            json!({"project": "widgets", "branch": "main", "extra": 1}),
        );
        assert!(matches(IssuerKind::Generic, &c.claims, None, &ok).is_ok());
        let missing = identity(&g, json!({"project": "widgets"}));
        assert!(matches(IssuerKind::Generic, &c.claims, None, &missing).is_err());
        assert!(parse(&json!({"type": "generic", "claims": {}}), &[g]).is_err());
    }

    #[test]
    fn github_matches_the_jobs_own_workflow_and_the_first_owner() {
        let gh = issuer(
            "https://token.actions.githubusercontent.com",
            IssuerKind::Github,
        );
        let c = parse(
            &json!({"type": "github", "claims": {"repository": "Acme/W", "workflow_ref": {"file": "p.yml"}}}),
            std::slice::from_ref(&gh),
        )
        .unwrap();
        let token = |job: &str, owner: &str| {
            identity(
                &gh,
                json!({"repository": "acme/w", "job_workflow_ref": job, "repository_owner_id": owner, "repository_id": 9}),
            )
        };
        let good = token("acme/w/.github/workflows/p.yml@refs/tags/v1", "1");
        let bound = matches(IssuerKind::Github, &c.claims, None, &good)
            .unwrap()
            .unwrap();
        assert_eq!(bound["repository_id"], "9", "numbers are kept as text");
        // a reusable workflow in another repository is named by its own file
        let reusable = token("acme/shared/.github/workflows/p.yml@main", "1");
        assert!(matches(IssuerKind::Github, &c.claims, Some(&bound), &reusable).is_err());
        // the file name is exact; owner and repository are not case-sensitive
        let shouting = token("ACME/W/.github/workflows/p.yml@main", "1");
        assert!(matches(IssuerKind::Github, &c.claims, Some(&bound), &shouting).is_ok());
        let other_file = token("acme/w/.github/workflows/P.yml@main", "1");
        assert!(matches(IssuerKind::Github, &c.claims, Some(&bound), &other_file).is_err());
        let lookalike = token("acme/w-evil/.github/workflows/p.yml@main", "1");
        assert!(matches(IssuerKind::Github, &c.claims, Some(&bound), &lookalike).is_err());
        let replaced = token("acme/w/.github/workflows/p.yml@main", "2");
        let why = matches(IssuerKind::Github, &c.claims, Some(&bound), &replaced).unwrap_err();
        assert!(why.contains("replaced"), "{why}");
    }
}
