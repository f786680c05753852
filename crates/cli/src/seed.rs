//! `tessera admin seed`: synthetic packages for benchmarks, written straight into the store in
//! large transactions (thousands of packages a second), each version with a real tarball and
//! signed with the registry key as a publish would be (an unsigned version would be signed by
//! the server's start-up pass, whose writes would then run under the benchmark's reads).

use std::io::Write;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;

use tessera_server::AppState;
use tessera_server::npm::tarball::Digests;
use tessera_store::{Access, NewUser, NewVersion, VersionRecord};

/// One tarball: `package/package.json` and an `index.js`.
fn tarball(name: &str, version: &str) -> Vec<u8> {
    let manifest = serde_json::json!({"name": name, "version": version, "description": format!("{name}, seeded for benchmarks"), "main": "index.js", "license": "MIT"});
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in [
        (
            "package/package.json",
            serde_json::to_vec(&manifest).unwrap_or_default(),
        ),
        (
            "package/index.js",
            format!("module.exports = {:?};\n", format!("{name}@{version}")).into_bytes(),
        ),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let _ = b.append_data(&mut h, path, &data[..]);
    }
    let tar = b.into_inner().unwrap_or_default();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = gz.write_all(&tar);
    gz.finish().unwrap_or_default()
}

/// Seeds `packages` × `versions`.
pub async fn run(
    state: &AppState,
    packages: usize,
    versions: usize,
    prefix: &str,
) -> anyhow::Result<()> {
    let now = state.clock.now_ms();
    let user = match state.store.user_by_name("seed").await? {
        Some(u) => u,
        None => {
            let pw = tessera_server::authn::api_tokens::random_base62(32);
            let hash = tessera_server::authn::passwords::hash(&pw)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            state
                .store
                .create_user(
                    NewUser {
                        name: "seed".into(),
                        email: "seed@localhost.invalid".into(),
                        password_hash: hash,
                        is_admin: false,
                    },
                    now,
                )
                .await?
        }
    };
    let (store, keys) = (state.store.as_ref(), &state.keys);
    tessera_server::signing::Signer::ensure_key(store, keys, now)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let start = Instant::now();
    let mut batch = Vec::new();
    let mut done = 0usize;
    for p in 0..packages {
        let name = format!("{prefix}{p}");
        for v in 0..versions {
            let version = format!("1.{}.{}", v / 1000, v % 1000);
            let tgz = tarball(&name, &version);
            let d = Digests::of(&tgz);
            let manifest = serde_json::json!({"name": name, "version": version, "description": format!("{name}, seeded for benchmarks"), "main": "index.js", "license": "MIT", "dependencies": {}});
            let signatures = state
                .signer
                .sign(store, keys, &name, &version, &d.integrity)
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            batch.push((
                d.sha512_hex.clone(),
                Bytes::from(tgz.clone()),
                NewVersion {
                    package_name: name.clone(),
                    access: Access::Public,
                    set_access: false,
                    version: VersionRecord {
                        version: version.clone(),
                        manifest: manifest.to_string(),
                        readme: Some(format!("# {name}\n\nSeeded for benchmarks.\n")),
                        tarball_sha512: d.sha512_hex,
                        shasum: d.shasum,
                        integrity: d.integrity,
                        size: tgz.len() as i64,
                        deprecated: None,
                        publisher: None,
                        published_at: now,
                        signatures: Some(signatures),
                        provenance: None,
                        attested: false,
                    },
                    tags: vec!["latest".into()],
                    description: Some(format!("{name}, seeded for benchmarks")),
                    keywords: vec!["seed".into()],
                    publisher_id: user.id,
                    staged_id: None,
                    provenance: None,
                },
            ));
            if batch.len() >= 2000 {
                done += flush(state, &mut batch, now).await?;
                eprint!(
                    "\rseeded {done} versions ({:.0}/s)",
                    done as f64 / start.elapsed().as_secs_f64()
                );
            }
        }
    }
    done += flush(state, &mut batch, now).await?;
    eprintln!(
        "\rseeded {done} versions of {packages} packages in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn flush(
    state: &AppState,
    batch: &mut Vec<(String, Bytes, NewVersion)>,
    now: i64,
) -> anyhow::Result<usize> {
    let items = std::mem::take(batch);
    let puts = items
        .iter()
        .map(|(sha, bytes, _)| state.blobs.put(sha, bytes.clone()));
    for r in futures::future::join_all(puts).await {
        r.context("storing a seeded tarball")?;
    }
    let versions: Vec<NewVersion> = items.into_iter().map(|(_, _, v)| v).collect();
    Ok(state.store.publish_batch(versions, now).await?)
}
