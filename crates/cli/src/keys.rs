//! `tessera admin new-key` and `rotate-key`: the keys sealing TOTP secrets at rest.

use anyhow::{Context, bail};

use tessera_server::Config;
use tessera_server::two_factor::sealing::{KEY_FILE, KeyRing};
use tessera_store::Store;

/// Prints a fresh key ring, for `TESSERA_SECRET_KEY` or a `secret.key` shared by instances.
pub fn new_key() {
    print!("{}", KeyRing::generate().to_text());
}

/// Rotates the sealing key and re-seals every stored secret under it.
///
/// With the key file (the default) and a database of its own, a new key is added and made
/// current, the file is rewritten, and every secret is re-sealed; the running server re-reads
/// the file when it changes. With a shared database, where each instance may hold its own copy
/// of the file, no key is made here: `--print-next` prints the next ring to distribute first. With `TESSERA_SECRET_KEY`, which this command
/// cannot change, the operator first puts the new ring (from `--print-next`) into every
/// instance's environment; this command then re-seals under its current (last) key.
/// `--retire-old` then drops the older keys from the key file once nothing uses them.
pub async fn rotate(
    config: &Config,
    store: &std::sync::Arc<dyn Store>,
    retire_old: bool,
    print_next: bool,
) -> anyhow::Result<()> {
    let env = std::env::var("TESSERA_SECRET_KEY").ok();
    let path = config.data.join(KEY_FILE);
    let mut ring = match &env {
        Some(v) => KeyRing::parse(v)?,
        None => KeyRing::parse(
            &std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read the key file {}", path.display()))?,
        )?,
    };
    if print_next {
        ring.rotate()?;
        print!("{}", ring.to_text());
        eprintln!(
            "Give this ring to every instance (TESSERA_SECRET_KEY, comma- or newline-separated), \
             restart them, then run `tessera admin rotate-key` with it to re-seal the secrets."
        );
        return Ok(());
    }
    if env.is_none() && !store.shared() {
        let id = ring.rotate()?;
        ring.write(&config.data)?;
        println!("new key {id} is current in {}", path.display());
    } else if env.is_none() {
        // Other instances hold their own copy of the file: a key made here would be unknown to
        // them, and every 2FA check there would fail until they had it.
        println!(
            "The database is shared by several instances, so no key is made here. To rotate: \
             `tessera admin rotate-key --print-next` prints the ring with a new key; put it in \
             {KEY_FILE} on every instance (they re-read it when it changes), then run \
             `tessera admin rotate-key` again to re-seal. Re-sealing now under the file's current \
             key {}.",
            ring.current_id()
        );
    } else {
        println!(
            "TESSERA_SECRET_KEY is set: re-sealing under its current key {}",
            ring.current_id()
        );
    }

    let current = ring.current_id();
    let mut resealed = 0usize;
    let mut changed_meanwhile = 0usize;
    let mut unreadable = Vec::new();
    for (user, sealed) in store.sealed_secrets().await? {
        if KeyRing::key_id_of(&sealed) == Some(current) {
            continue;
        }
        let Ok(plain) = ring.open(user, &sealed) else {
            unreadable.push(user);
            continue;
        };
        let fresh = ring.seal(user, &plain);
        if store.reseal_secret(user, &sealed, &fresh).await? {
            resealed += 1;
        } else {
            changed_meanwhile += 1;
        }
    }
    println!("re-sealed {resealed} secrets under key {current}");
    // the registry's signing keys are sealed the same way
    let signing = tessera_server::signing::SEALED_FOR;
    let mut keys_resealed = 0usize;
    for k in store.signing_keys().await? {
        if KeyRing::key_id_of(&k.sealed_private) == Some(current) {
            continue;
        }
        let Ok(plain) = ring.open(signing, &k.sealed_private) else {
            bail!(
                "the signing key {} could not be opened with any key in the ring: keep the old \
                 keys until it is found",
                k.keyid
            );
        };
        let fresh = ring.seal(signing, &plain);
        if store
            .reseal_signing_key(&k.keyid, &k.sealed_private, &fresh)
            .await?
        {
            keys_resealed += 1;
        } else {
            changed_meanwhile += 1;
        }
    }
    if keys_resealed > 0 {
        println!("re-sealed {keys_resealed} registry signing keys under key {current}");
    }
    if changed_meanwhile > 0 {
        println!(
            "{changed_meanwhile} secrets changed while this ran (re-enrolled or disabled); run \
             rotate-key again to be sure every secret uses key {current}"
        );
    }
    if !unreadable.is_empty() {
        bail!(
            "{} secrets could not be opened with any key in the ring (accounts {:?}): keep the \
             old keys until they are found",
            unreadable.len(),
            unreadable
        );
    }
    if retire_old {
        let left = store
            .sealed_secrets()
            .await?
            .iter()
            .filter(|(_, s)| KeyRing::key_id_of(s) != Some(current))
            .count()
            + store
                .signing_keys()
                .await?
                .iter()
                .filter(|k| KeyRing::key_id_of(&k.sealed_private) != Some(current))
                .count();
        if left > 0 {
            bail!("{left} secrets still use an older key: not retiring any");
        }
        let old = ring.retire_old();
        match env {
            None => {
                ring.write(&config.data)?;
                println!(
                    "retired keys {old:?}; {} now holds key {current} only",
                    path.display()
                );
            }
            Some(_) => {
                println!(
                    "no secret uses keys {old:?} any more: set TESSERA_SECRET_KEY to this on every instance:"
                );
                print!("{}", ring.to_text());
            }
        }
    }
    Ok(())
}
