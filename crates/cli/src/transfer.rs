//! `tessera admin export` and `import`: a whole registry as a folder (one JSON-lines file per
//! table, the tarballs by content address, and a manifest with the counts), to move between
//! SQLite + a folder and PostgreSQL + S3. An import checks the counts and every tarball's
//! integrity afterwards.

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

use tessera_store::transfer::{ExportItem, TABLES};
use tessera_store::{BlobStore, Store};

/// The manifest's format name.
const FORMAT: &str = "tessera-export";
/// The manifest's format version (2: signing keys, signatures and provenance; 3: publish
/// attestations).
const FORMAT_VERSION: u32 = 3;
/// The oldest format version still read: an older export lacks only tables added since, which
/// are then imported empty.
const OLDEST_FORMAT_VERSION: u32 = 2;
/// Rows inserted per transaction.
const BATCH: usize = 500;

/// `manifest.json`.
#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    format_version: u32,
    tessera_version: String,
    created_at: String,
    tables: BTreeMap<String, u64>,
    tarballs: u64,
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::new(len)
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({eta})")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_owned());
    pb
}

/// The hex SHA-512 and the npm `integrity` of `bytes`.
fn digests(bytes: &[u8]) -> (String, String) {
    let d = Sha512::digest(bytes);
    (
        data_encoding::HEXLOWER.encode(&d),
        format!("sha512-{}", data_encoding::BASE64.encode(&d)),
    )
}

/// Creates a folder only its owner can read (0700 on Unix).
fn private_dir(path: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(path)?;
    #[cfg(unix)]
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
    Ok(())
}

/// Creates a file only its owner can read (0600 on Unix).
fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

/// Writes the registry behind `store` and `blobs` into the new folder `out`.
pub async fn export(
    store: &std::sync::Arc<dyn Store>,
    blobs: &BlobStore,
    out: &Path,
) -> anyhow::Result<()> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!("{} exists and is not empty", out.display());
    }
    // The tables hold password, token and recovery-code hashes and sealed TOTP secrets: the
    // folder and its files are readable by their owner only.
    for dir in [out.to_owned(), out.join("tables"), out.join("tarballs")] {
        private_dir(&dir)?;
    }

    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let producer = {
        let store = store.clone();
        tokio::spawn(async move { store.export(tx).await })
    };
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    let mut file: Option<(String, BufWriter<std::fs::File>)> = None;
    let spinner = bar(0, "rows");
    spinner
        .set_style(ProgressStyle::with_template("{msg:>10} {pos} rows").expect("a valid template"));
    while let Some(item) = rx.recv().await {
        match item {
            ExportItem::Table(t) => {
                if let Some((_, mut w)) = file.take() {
                    w.flush()?;
                }
                let path = out.join("tables").join(format!("{}.jsonl", t.name));
                file = Some((t.name.to_owned(), BufWriter::new(private_file(&path)?)));
                counts.insert(t.name.to_owned(), 0);
                spinner.set_message(t.name);
            }
            ExportItem::Row(row) => {
                let (name, w) = file.as_mut().context("a row before its table")?;
                serde_json::to_writer(&mut *w, &row)?;
                w.write_all(b"\n")?;
                *counts.get_mut(name.as_str()).expect("counted table") += 1;
                spinner.inc(1);
            }
        }
    }
    if let Some((_, mut w)) = file.take() {
        w.flush()?;
    }
    producer.await??;
    spinner.finish_and_clear();

    let refs = store.tarball_refs().await?;
    let pb = bar(refs.len() as u64, "tarballs");
    let mut missing = Vec::new();
    let mut written = 0u64;
    for (sha, integrity) in &refs {
        match blobs.get(sha).await? {
            Some(bytes) if digests(&bytes) == (sha.clone(), integrity.clone()) => {
                private_file(&out.join("tarballs").join(sha))?.write_all(&bytes)?;
                written += 1;
            }
            Some(_) => missing.push(format!("{sha} (content does not match its address)")),
            None => missing.push(format!("{sha} (missing)")),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();

    let manifest = Manifest {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        tessera_version: env!("CARGO_PKG_VERSION").into(),
        created_at: tessera_server::clock::iso8601(tessera_server::Clock::system().now_ms()),
        tables: counts.clone(),
        tarballs: written,
    };
    private_file(&out.join("manifest.json"))?.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
    let rows: u64 = counts.values().sum();
    println!(
        "exported {rows} rows in {} tables and {written} tarballs to {}",
        counts.len(),
        out.display()
    );
    println!(
        "TOTP secrets stay sealed with this registry's key: the target needs the same key \
         (secret.key or TESSERA_SECRET_KEY)."
    );
    if !missing.is_empty() {
        bail!(
            "{} tarballs could not be exported: {}",
            missing.len(),
            missing.join(", ")
        );
    }
    Ok(())
}

/// Loads the folder `dir` into the empty registry behind `store` and `blobs`, then verifies it.
pub async fn import(
    store: &std::sync::Arc<dyn Store>,
    blobs: &BlobStore,
    dir: &Path,
) -> anyhow::Result<()> {
    let manifest: Manifest = serde_json::from_slice(
        &std::fs::read(dir.join("manifest.json"))
            .with_context(|| format!("{} has no manifest.json", dir.display()))?,
    )
    .context("manifest.json is not a tessera export")?;
    if manifest.format != FORMAT
        || !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&manifest.format_version)
    {
        bail!(
            "unsupported export format {} version {}",
            manifest.format,
            manifest.format_version
        );
    }
    if !store.is_empty().await? {
        bail!(
            "the target registry is not empty (it has accounts, packages, sessions or settings): \
             import into a new database with no instance serving it"
        );
    }

    // Tarballs first: a version row never points at a tarball that is not there yet.
    let names: Vec<String> = std::fs::read_dir(dir.join("tarballs"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    let pb = bar(names.len() as u64, "tarballs");
    for name in &names {
        let bytes = std::fs::read(dir.join("tarballs").join(name))?;
        if digests(&bytes).0 != *name {
            bail!("tarballs/{name}: the content does not match its address");
        }
        blobs.put(name, Bytes::from(bytes)).await?;
        pb.inc(1);
    }
    pb.finish_and_clear();

    let total: u64 = manifest.tables.values().sum();
    let pb = bar(total, "rows");
    for t in TABLES {
        let path = dir.join("tables").join(format!("{}.jsonl", t.name));
        if !path.exists() {
            if manifest.tables.get(t.name).copied().unwrap_or(0) > 0 {
                bail!("tables/{}.jsonl is missing", t.name);
            }
            continue;
        }
        pb.set_message(t.name);
        let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
        let mut batch = Vec::with_capacity(BATCH);
        for (n, line) in reader.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let row: Vec<serde_json::Value> = serde_json::from_str(&line)
                .with_context(|| format!("tables/{}.jsonl line {}", t.name, n + 1))?;
            batch.push(row);
            if batch.len() == BATCH {
                let rows = std::mem::take(&mut batch);
                pb.inc(rows.len() as u64);
                store
                    .import_rows(t, rows)
                    .await
                    .with_context(|| format!("importing {}", t.name))?;
            }
        }
        if !batch.is_empty() {
            pb.inc(batch.len() as u64);
            store
                .import_rows(t, batch)
                .await
                .with_context(|| format!("importing {}", t.name))?;
        }
    }
    store.import_finish().await?;
    pb.finish_and_clear();

    verify(store, blobs, &manifest).await
}

/// Checks the imported counts against the manifest and every referenced tarball against its
/// address and its version's `integrity`, reading them back from the target storage.
async fn verify(
    store: &std::sync::Arc<dyn Store>,
    blobs: &BlobStore,
    manifest: &Manifest,
) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    for t in TABLES {
        let want = manifest.tables.get(t.name).copied().unwrap_or(0);
        let got = store.count_rows(t).await?;
        if got != want as i64 {
            problems.push(format!("{}: {got} rows, the export has {want}", t.name));
        }
    }
    let refs = store.tarball_refs().await?;
    let pb = bar(refs.len() as u64, "verifying");
    let mut checked = 0u64;
    for (sha, integrity) in &refs {
        match blobs.get(sha).await? {
            Some(bytes) if digests(&bytes) == (sha.clone(), integrity.clone()) => checked += 1,
            Some(_) => problems.push(format!("tarball {sha}: content does not match")),
            None => problems.push(format!("tarball {sha}: missing")),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if !problems.is_empty() {
        bail!(
            "the import does not match the export:\n  {}",
            problems.join("\n  ")
        );
    }
    let rows: u64 = manifest.tables.values().sum();
    println!(
        "imported {rows} rows in {} tables and {} tarballs; verified: every table's count, and \
         {checked} tarballs against their SHA-512 and integrity",
        manifest.tables.len(),
        manifest.tarballs
    );
    Ok(())
}
