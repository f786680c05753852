//! Package pages: the list and search, and a package's page (README rendered safely, versions,
//! dist-tags, maintainers, the install command, the 2FA policy). Private packages are visible
//! only to their maintainers, as on the npm API.

use std::collections::HashMap;

use axum::extract::{Path, Query};

use tessera_store::Access;

use crate::authz;
use crate::authz::gate::{PackagePolicy, package_policy};
use crate::clock::iso8601;
use crate::npm::versions;
use crate::web::markdown;
use crate::web::templates::{BuiltFrom, HomePage, PackagePage, PackageRow, VersionRow};
use crate::web::{Web, WebError, WebResult};

/// `GET /-/web/?q=…`: packages, optionally searched.
pub async fn home(web: Web, Query(q): Query<HashMap<String, String>>) -> WebResult {
    let viewer = web.caller.user.as_ref();
    if web.state.config.read_requires_auth && viewer.is_none() {
        return Err(WebError::redirect("/-/web/signin?next=%2F-%2Fweb%2F"));
    }
    let query: String = q
        .get("q")
        .map(|s| s.trim().chars().take(200).collect())
        .unwrap_or_default();
    let terms: Vec<String> = query
        .split_whitespace()
        .take(10)
        .map(str::to_owned)
        .collect();
    let (hits, total) = web
        .state
        .store
        .search(&terms, viewer.map(|u| u.id), 0, 200)
        .await?;
    let packages = hits
        .into_iter()
        .map(|h| PackageRow {
            private: h.package.access == Access::Restricted,
            name: h.package.name,
            version: h.latest.unwrap_or_default(),
            description: h.package.description.unwrap_or_default(),
        })
        .collect();
    let mut cached = Vec::new();
    if query.is_empty() && web.state.uplinks.enabled() {
        for (name, uplink) in web.state.store.cached_names("", 200).await? {
            // a name that became local since is not shown as cached
            if !crate::uplinks::Uplinks::claimed_locally(&web.state, &name).await? {
                cached.push((name, uplink));
            }
        }
    }
    Ok(web.page(&HomePage {
        chrome: web.chrome(),
        query,
        total,
        packages,
        cached,
    }))
}

/// `GET /-/web/package/:name`.
pub async fn package(web: Web, Path(name): Path<String>) -> WebResult {
    let user = web.caller.user.as_ref();
    let Ok(reader) = authz::website_reader(&web.state, user) else {
        return Err(WebError::redirect(&format!(
            "/-/web/signin?next={}",
            crate::web::session::encode(&format!("/-/web/package/{name}"))
        )));
    };
    // A package this reader may not see is a 404, exactly as a missing one.
    let doc = match reader.package_doc(&name).await {
        Ok(doc) => doc,
        Err(e) if e.status == axum::http::StatusCode::NOT_FOUND => {
            if let Some(page) = cached_page(&web, &name).await? {
                return Ok(web.page(&page));
            }
            return Err(WebError::package_not_found(user.is_some()));
        }
        Err(e) => return Err(e.into()),
    };
    let latest = doc
        .tag("latest")
        .map(str::to_owned)
        .or_else(|| {
            versions::highest(doc.versions.iter().map(|v| v.version.as_str())).map(str::to_owned)
        })
        .unwrap_or_default();
    let latest_record = doc.version(&latest);
    let readme = latest_record
        .and_then(|r| r.readme.clone())
        .unwrap_or_default();
    let (mfa, mfa_text) = match package_policy(&doc.package) {
        PackagePolicy::None => ("none", "each maintainer's own 2FA mode applies"),
        PackagePolicy::Publish => (
            "publish",
            "every change needs a one-time password from a maintainer with 2FA, even from tokens",
        ),
        PackagePolicy::Automation => (
            "automation",
            "changes need a one-time password, but automation tokens may publish",
        ),
        PackagePolicy::PublishNoTokens => (
            "publish, tokens refused",
            "every change needs a one-time password from a maintainer with 2FA; tokens other \
             than a login's are refused (trusted publishing still works)",
        ),
    };
    // maintainers see what waits on the stage
    let staged = match user.filter(|u| doc.is_maintainer(u.id)) {
        Some(u) => {
            web.state
                .store
                .staged_versions(u.id, Some(&doc.package.name), 0, 100)
                .await?
                .0
        }
        None => Vec::new(),
    };
    let mut versions_rows: Vec<&tessera_store::VersionRecord> = doc.versions.iter().collect();
    versions_rows.sort_by(|a, b| versions::compare(&b.version, &a.version));
    let page = PackagePage {
        chrome: web.chrome(),
        name: doc.package.name.clone(),
        description: doc.package.description.clone().unwrap_or_default(),
        latest,
        access: doc.package.access.as_str(),
        private: doc.package.access == Access::Restricted,
        mfa,
        mfa_text,
        staged_publishes: doc.package.staged_publishes,
        provenance_required: doc.package.provenance_required
            || web.state.config.provenance.required,
        staged: staged
            .into_iter()
            .map(|s| {
                (
                    s.id,
                    s.version,
                    s.tag,
                    format!("{} ({})", s.actor, s.actor_type),
                )
            })
            .collect(),
        maintainers: doc.maintainers.iter().map(|m| m.name.clone()).collect(),
        readme: if readme.is_empty() {
            "<p class=\"muted\">No README.</p>".into()
        } else {
            markdown::render(&readme)
        },
        tags: doc.dist_tags.clone(),
        versions: versions_rows
            .into_iter()
            .map(|v| VersionRow {
                version: v.version.clone(),
                published: iso8601(v.published_at)[..10].to_owned(),
                publisher: v
                    .publisher
                    .as_ref()
                    .map(|p| p.name.clone())
                    .unwrap_or_default(),
                deprecated: v.deprecated.clone(),
                signed_by: v
                    .signatures
                    .as_deref()
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                    .and_then(|s| s[0]["keyid"].as_str().map(str::to_owned)),
                attested: v.attested,
                built: v.provenance.as_deref().and_then(BuiltFrom::of),
            })
            .collect(),
        uplink: None,
        quarantined: Vec::new(),
    };
    Ok(web.page(&page))
}

/// The page of a package cached from an uplink, from the cached copy (the website never asks
/// an uplink itself), as the npm API serves it: the rule's quarantine applied.
async fn cached_page(web: &Web, name: &str) -> Result<Option<PackagePage>, WebError> {
    let state = &web.state;
    let Some(route) = state.uplinks.route(name) else {
        return Ok(None);
    };
    let Some(row) = state.store.cached_packument(name).await? else {
        return Ok(None);
    };
    if row.status != 200
        || state.store.package(name).await?.is_some()
        || crate::uplinks::Uplinks::claimed_locally(state, name).await?
    {
        return Ok(None);
    }
    let Some(body) = crate::uplinks::gunzip(&row.body).ok() else {
        return Ok(None);
    };
    let now = state.clock.now_ms();
    let Ok(p) =
        crate::uplinks::proxied::build(name, &body, &row.uplink, "", &route.quarantine, now)
    else {
        return Ok(None);
    };
    let Some(full) = p.rendered.full() else {
        return Ok(None);
    };
    let doc: serde_json::Value = serde_json::from_slice(&full.body).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let latest = text(&doc["dist-tags"]["latest"]);
    let readme = text(&doc["readme"]);
    let mut tags: Vec<(String, String)> = p
        .rendered
        .dist_tags
        .iter()
        .map(|(t, v)| (t.clone(), v.clone()))
        .collect();
    tags.sort();
    let mut versions_rows: Vec<VersionRow> = doc["versions"]
        .as_object()
        .map(|vs| {
            vs.iter()
                .map(|(v, m)| VersionRow {
                    version: v.clone(),
                    published: text(&doc["time"][v]).chars().take(10).collect(),
                    publisher: text(&m["_npmUser"]["name"]),
                    deprecated: m["deprecated"].as_str().map(str::to_owned),
                    signed_by: m["dist"]["signatures"][0]["keyid"]
                        .as_str()
                        .map(str::to_owned),
                    attested: false,
                    built: None,
                })
                .collect()
        })
        .unwrap_or_default();
    versions_rows.sort_by(|a, b| versions::compare(&b.version, &a.version));
    let mut quarantined: Vec<(String, String)> = p.refused.into_iter().collect();
    quarantined.sort_by(|a, b| versions::compare(&b.0, &a.0));
    Ok(Some(PackagePage {
        chrome: web.chrome(),
        name: name.to_owned(),
        description: text(&doc["description"]),
        latest,
        access: "public",
        private: false,
        mfa: "none",
        mfa_text: "set by the upstream registry",
        staged_publishes: false,
        provenance_required: false,
        staged: Vec::new(),
        maintainers: doc["maintainers"]
            .as_array()
            .map(|ms| ms.iter().map(|m| text(&m["name"])).collect())
            .unwrap_or_default(),
        readme: if readme.is_empty() {
            "<p class=\"muted\">No README.</p>".into()
        } else {
            markdown::render(&readme)
        },
        tags,
        versions: versions_rows,
        uplink: Some(row.uplink),
        quarantined,
    }))
}
